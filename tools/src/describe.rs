//! How the tools show a txn to a person or a script: op names, the paths a
//! txn touches, a one-line payload summary and a JSON object of details.
//!
//! Not a decoder (that is `engine::persist::decode_txn`) and not a filter
//! (`logdump` decides what to print). Invariant: every function here is total
//! over any `Txn` a decoder produced; data bytes are escaped, never printed
//! raw, so a dump of arbitrary payloads stays one line per txn.

use engine::txn::{NodeKind, Txn, TxnOp};
use engine::types::{Acl, OpCode};
use serde_json::{json, Value};

/// Data bytes shown in a line summary; the rest is elided.
const DATA_PREVIEW_BYTES: usize = 16;

/// The op's name as ZooKeeper spells its opcode (`create2`, `setACL`).
pub fn op_name(op: &TxnOp) -> &'static str {
    match op {
        TxnOp::CreateSession { .. } => "createSession",
        TxnOp::CloseSession { .. } => "closeSession",
        TxnOp::Create(create) => match create.op {
            OpCode::Create2 => "create2",
            OpCode::CreateContainer => "createContainer",
            OpCode::CreateTtl => "createTTL",
            _ => "create",
        },
        TxnOp::Delete { .. } => "delete",
        TxnOp::DeleteContainer { .. } => "deleteContainer",
        TxnOp::SetData { .. } => "setData",
        TxnOp::SetAcl { .. } => "setACL",
        TxnOp::Check { .. } => "check",
        TxnOp::Multi(_) => "multi",
        TxnOp::Error(_) => "error",
        TxnOp::Reconfig { .. } => "reconfig",
    }
}

/// True if `name` names `op` or, for a multi, one of its sub-ops. Case is
/// ignored, and `create` also matches `create2`, `createContainer` and
/// `createTTL` (they are all creates to someone looking for creates).
pub fn op_matches(op: &TxnOp, name: &str) -> bool {
    let own = op_name(op);
    if own.eq_ignore_ascii_case(name) {
        return true;
    }
    if name.eq_ignore_ascii_case("create") && matches!(op, TxnOp::Create(_)) {
        return true;
    }
    match op {
        TxnOp::Multi(ops) => ops.iter().any(|sub| op_matches(sub, name)),
        _ => false,
    }
}

/// The main path of an op: the node it writes (none for session ops, error
/// records and a multi).
pub fn op_path(op: &TxnOp) -> Option<&str> {
    match op {
        TxnOp::Create(create) => Some(&create.path),
        TxnOp::Delete { path }
        | TxnOp::DeleteContainer { path }
        | TxnOp::SetData { path, .. }
        | TxnOp::SetAcl { path, .. }
        | TxnOp::Check { path } => Some(path),
        TxnOp::Reconfig { .. } => Some(engine::tree::CONFIG),
        TxnOp::CreateSession { .. }
        | TxnOp::CloseSession { .. }
        | TxnOp::Multi(_)
        | TxnOp::Error(_) => None,
    }
}

/// Every path the op touches, sub-ops and a close's ephemerals included.
pub fn touched_paths(op: &TxnOp) -> Vec<&str> {
    let mut paths = Vec::new();
    collect_paths(op, &mut paths);
    paths
}

fn collect_paths<'a>(op: &'a TxnOp, out: &mut Vec<&'a str>) {
    match op {
        TxnOp::CloseSession { paths } => out.extend(paths.iter().map(String::as_str)),
        TxnOp::Multi(ops) => ops.iter().for_each(|sub| collect_paths(sub, out)),
        other => out.extend(op_path(other)),
    }
}

/// The path column of a dump line: the op's path, or for a multi its first
/// sub-op's, or `-`.
pub fn display_path(op: &TxnOp) -> &str {
    match op {
        TxnOp::Multi(ops) => ops.iter().find_map(op_path).unwrap_or("-"),
        other => op_path(other).unwrap_or("-"),
    }
}

/// Bytes as a quoted, escaped preview: printable ASCII as is, the rest as
/// `\xNN`, cut after `DATA_PREVIEW_BYTES` with `...`.
pub fn preview(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for byte in bytes.iter().take(DATA_PREVIEW_BYTES) {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(*byte));
            }
            0x20..=0x7e => out.push(char::from(*byte)),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push('"');
    if bytes.len() > DATA_PREVIEW_BYTES {
        out.push_str("...");
    }
    out
}

fn data_summary(data: &Option<Vec<u8>>) -> String {
    match data {
        None => "data=null".to_string(),
        Some(bytes) => format!("len={} data={}", bytes.len(), preview(bytes)),
    }
}

fn kind_name(kind: NodeKind) -> String {
    match kind {
        NodeKind::Persistent => "persistent".to_string(),
        NodeKind::Ephemeral(session) => format!("ephemeral(0x{:x})", session.0 as u64),
        NodeKind::Container => "container".to_string(),
        NodeKind::Ttl(ttl_ms) => format!("ttl({ttl_ms}ms)"),
    }
}

/// The payload summary of one op, without its name or path.
pub fn summary(op: &TxnOp) -> String {
    match op {
        TxnOp::CreateSession { timeout_ms } => format!("timeout={timeout_ms}ms"),
        TxnOp::CloseSession { paths } => format!("ephemerals={}", paths.len()),
        TxnOp::Create(create) => format!(
            "{} kind={} acl={} pcversion={}",
            data_summary(&create.data),
            kind_name(create.kind),
            create.acl.len(),
            create.parent_cversion
        ),
        TxnOp::Delete { .. } | TxnOp::DeleteContainer { .. } | TxnOp::Check { .. } => String::new(),
        TxnOp::SetData { data, version, .. } => {
            format!("{} version={version}", data_summary(data))
        }
        TxnOp::SetAcl { acl, aversion, .. } => format!("acl={} aversion={aversion}", acl.len()),
        TxnOp::Multi(ops) => {
            let parts: Vec<String> = ops.iter().map(one_line).collect();
            format!("[{}]", parts.join("; "))
        }
        TxnOp::Error(code) => format!("code={} ({code:?})", *code as i32),
        TxnOp::Reconfig { data } => {
            let members = String::from_utf8_lossy(data)
                .lines()
                .filter(|l| l.starts_with("server."))
                .count();
            format!("members={members}")
        }
    }
}

/// Name, path (if any) and summary of an op, as a multi lists its sub-ops.
fn one_line(op: &TxnOp) -> String {
    let mut line = op_name(op).to_string();
    if let Some(path) = op_path(op) {
        line.push(' ');
        line.push_str(path);
    }
    let summary = summary(op);
    if !summary.is_empty() {
        line.push(' ');
        line.push_str(&summary);
    }
    line
}

fn acl_json(acl: &[Acl]) -> Value {
    Value::Array(
        acl.iter()
            .map(
                |entry| json!({"perms": entry.perms, "scheme": entry.id.scheme, "id": entry.id.id}),
            )
            .collect(),
    )
}

fn data_json(data: &Option<Vec<u8>>) -> Value {
    match data {
        None => json!({"data_len": Value::Null}),
        Some(bytes) => json!({"data_len": bytes.len(), "data_preview": preview(bytes)}),
    }
}

/// The op-specific fields of a `--json` line.
pub fn details(op: &TxnOp) -> Value {
    let mut value = match op {
        TxnOp::CreateSession { timeout_ms } => json!({"timeout_ms": timeout_ms}),
        TxnOp::CloseSession { paths } => json!({"ephemerals": paths}),
        TxnOp::Create(create) => {
            let mut value = data_json(&create.data);
            if let Value::Object(map) = &mut value {
                map.insert("path".into(), json!(create.path));
                map.insert("kind".into(), json!(kind_name(create.kind)));
                map.insert("acl".into(), acl_json(&create.acl));
                map.insert("parent_cversion".into(), json!(create.parent_cversion));
            }
            value
        }
        TxnOp::Delete { path } | TxnOp::DeleteContainer { path } | TxnOp::Check { path } => {
            json!({"path": path})
        }
        TxnOp::SetData {
            path,
            data,
            version,
        } => {
            let mut value = data_json(data);
            if let Value::Object(map) = &mut value {
                map.insert("path".into(), json!(path));
                map.insert("version".into(), json!(version));
            }
            value
        }
        TxnOp::SetAcl {
            path,
            acl,
            aversion,
        } => json!({"path": path, "acl": acl_json(acl), "aversion": aversion}),
        TxnOp::Multi(ops) => json!({"ops": ops.iter().map(details).collect::<Vec<_>>()}),
        TxnOp::Error(code) => json!({"code": *code as i32, "name": format!("{code:?}")}),
        TxnOp::Reconfig { data } => {
            json!({"path": engine::tree::CONFIG, "config": String::from_utf8_lossy(data)})
        }
    };
    if let Value::Object(map) = &mut value {
        map.insert("op".into(), json!(op_name(op)));
    }
    value
}

/// The human line for a txn: zxid, time, session, cxid, op, path, summary.
pub fn txn_line(txn: &Txn) -> String {
    let mut line = format!(
        "0x{:x} {} 0x{:x} {} {} {}",
        txn.zxid.0,
        crate::iso_time(txn.time_ms),
        txn.session.0 as u64,
        txn.cxid,
        op_name(&txn.op),
        display_path(&txn.op)
    );
    let summary = summary(&txn.op);
    if !summary.is_empty() {
        line.push(' ');
        line.push_str(&summary);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::txn::CreateTxn;
    use engine::types::{ErrorCode, SessionId, Zxid};

    fn create(path: &str, data: &[u8]) -> TxnOp {
        TxnOp::Create(CreateTxn {
            op: OpCode::Create,
            path: path.to_string(),
            data: Some(data.to_vec()),
            acl: Acl::open_unsafe(),
            kind: NodeKind::Persistent,
            parent_cversion: 1,
        })
    }

    #[track_caller]
    fn check(op: TxnOp, expected: &str) {
        let txn = Txn {
            zxid: Zxid(0x1_0000_0005),
            time_ms: 1_000,
            session: SessionId(-1),
            cxid: 3,
            op,
        };
        assert_eq!(txn_line(&txn), expected);
    }

    #[test]
    fn lines_show_every_column() {
        check(
            create("/a", b"hi\n"),
            "0x100000005 1970-01-01T00:00:01.000Z 0xffffffffffffffff 3 create /a \
             len=3 data=\"hi\\x0a\" kind=persistent acl=1 pcversion=1",
        );
        check(
            TxnOp::Delete {
                path: "/a".to_string(),
            },
            "0x100000005 1970-01-01T00:00:01.000Z 0xffffffffffffffff 3 delete /a",
        );
        check(
            TxnOp::Multi(vec![
                create("/m", b""),
                TxnOp::SetData {
                    path: "/n".to_string(),
                    data: None,
                    version: 2,
                },
            ]),
            "0x100000005 1970-01-01T00:00:01.000Z 0xffffffffffffffff 3 multi /m \
             [create /m len=0 data=\"\" kind=persistent acl=1 pcversion=1; \
             setData /n data=null version=2]",
        );
        check(
            TxnOp::Error(ErrorCode::NoNode),
            "0x100000005 1970-01-01T00:00:01.000Z 0xffffffffffffffff 3 error - code=-101 (NoNode)",
        );
    }

    #[test]
    fn long_data_is_cut() {
        assert_eq!(preview(&[b'x'; 20]), "\"xxxxxxxxxxxxxxxx\"...");
    }

    #[test]
    fn op_filter_sees_into_multis() {
        let multi = TxnOp::Multi(vec![create("/a", b"")]);
        assert!(op_matches(&multi, "CREATE"));
        assert!(op_matches(&multi, "multi"));
        assert!(!op_matches(&multi, "delete"));
        assert_eq!(touched_paths(&multi), vec!["/a"]);
    }
}
