//! Apache ZooKeeper txns and stats in our engine's terms: a decoded log
//! entry becomes a `Txn` that `engine::apply::apply_replay` applies, and a
//! persisted stat's raw ephemeralOwner becomes a `NodeKind`.
//!
//! Both sides carry absolute results (the final path, the parent's cversion
//! after a create, the version after a setData or setACL), so the mapping is
//! field for field; the one computed value is the parent cversion of the
//! oldest creates, which recorded none (Apache then takes the parent's plus
//! one, as this does from the tree being replayed into).
//!
//! Invariant: converting reads the tree and never changes it.

use engine::path::parent_of;
use engine::tree::DataTree;
use engine::txn::{CreateTxn, NodeKind, Txn, TxnOp};
use engine::types::{ErrorCode, OpCode, SessionId, Zxid};

use super::txnlog::{Entry, Record};

/// Apache's owner value for containers.
const CONTAINER_OWNER: i64 = i64::MIN;
/// The top byte Apache's extended ephemeral types (TTL) set.
const EXTENDED_MASK: i64 = 0xFF << 56;
/// Below the top byte, two bytes select the extended type (0: TTL) and the
/// rest is the TTL in milliseconds.
const TTL_MASK: i64 = 0x0000_00FF_FFFF_FFFF;
const EXTENDED_TYPE_MASK: i64 = 0x00FF_FF00_0000_0000;

/// The kind a stored ephemeralOwner encodes. An extended value of a type
/// other than TTL (none exists yet) is taken as the session it would be
/// without extended types.
pub fn kind_of_owner(owner: i64) -> NodeKind {
    if owner == 0 {
        NodeKind::Persistent
    } else if owner == CONTAINER_OWNER {
        NodeKind::Container
    } else if owner & EXTENDED_MASK == EXTENDED_MASK && owner & EXTENDED_TYPE_MASK == 0 {
        NodeKind::Ttl(owner & TTL_MASK)
    } else {
        NodeKind::Ephemeral(SessionId(owner))
    }
}

/// The engine txn for `entry`, as of `tree` (the tree replayed up to the
/// entry before).
pub fn to_txn(entry: &Entry, tree: &DataTree) -> Txn {
    let header = &entry.header;
    let session = SessionId(header.client_id);
    let op = match &entry.record {
        Record::Multi(records) => TxnOp::Multi(multi_ops(records, session, tree)),
        record => to_op(record, session, tree),
    };
    Txn {
        zxid: Zxid(header.zxid),
        time_ms: header.time,
        session,
        cxid: header.cxid,
        op,
    }
}

/// A multi's sub-ops. Apache logs a failed multi with the ops before the
/// failing one as they would have been and the failing one as an error; one
/// error record makes the whole multi failed, every other op then an error
/// too (Ok before the first error, RuntimeInconsistency after it), so
/// nothing of it applies — the all-error multi our engine logs for a
/// failure.
fn multi_ops(records: &[Record], session: SessionId, tree: &DataTree) -> Vec<TxnOp> {
    let failed = records
        .iter()
        .any(|record| matches!(record, Record::Error { .. }));
    if !failed {
        return records
            .iter()
            .map(|record| to_op(record, session, tree))
            .collect();
    }
    let mut after_error = false;
    records
        .iter()
        .map(|record| match record {
            Record::Error { .. } => {
                after_error = true;
                to_op(record, session, tree)
            }
            _ if after_error => TxnOp::Error(ErrorCode::RuntimeInconsistency),
            _ => TxnOp::Error(ErrorCode::Ok),
        })
        .collect()
}

fn to_op(record: &Record, session: SessionId, tree: &DataTree) -> TxnOp {
    let create = |op: OpCode,
                  path: &str,
                  data: &Option<Vec<u8>>,
                  acl: &[engine::types::Acl],
                  kind: NodeKind,
                  parent_cversion: i32| {
        let parent_cversion = if parent_cversion == -1 {
            tree.get(parent_of(path))
                .map_or(0, |parent| parent.cversion().wrapping_add(1))
        } else {
            parent_cversion
        };
        TxnOp::Create(CreateTxn {
            op,
            path: path.to_string(),
            data: data.clone(),
            acl: acl.to_vec(),
            kind,
            parent_cversion,
        })
    };
    match record {
        Record::CreateSession { timeout_ms } => TxnOp::CreateSession {
            timeout_ms: *timeout_ms,
        },
        Record::CloseSession { paths } => TxnOp::CloseSession {
            // Without a list, the session's ephemerals in the tree: what
            // Apache's replay deletes.
            paths: paths.clone().unwrap_or_else(|| tree.ephemerals(session)),
        },
        Record::Create {
            op,
            path,
            data,
            acl,
            ephemeral,
            parent_cversion,
        } => {
            let kind = if *ephemeral {
                NodeKind::Ephemeral(session)
            } else {
                NodeKind::Persistent
            };
            create(*op, path, data, acl, kind, *parent_cversion)
        }
        Record::CreateContainer {
            path,
            data,
            acl,
            parent_cversion,
        } => create(
            OpCode::CreateContainer,
            path,
            data,
            acl,
            NodeKind::Container,
            *parent_cversion,
        ),
        Record::CreateTtl {
            path,
            data,
            acl,
            parent_cversion,
            ttl_ms,
        } => create(
            OpCode::CreateTtl,
            path,
            data,
            acl,
            NodeKind::Ttl(*ttl_ms),
            *parent_cversion,
        ),
        Record::Delete { path, container } => {
            if *container {
                TxnOp::DeleteContainer { path: path.clone() }
            } else {
                TxnOp::Delete { path: path.clone() }
            }
        }
        // A reconfig: the member list it wrote, as our reconfig txns carry it.
        Record::SetData { path, data, .. } if path == engine::tree::CONFIG => TxnOp::Reconfig {
            data: data.clone().unwrap_or_default(),
        },
        Record::SetData {
            path,
            data,
            version,
        } => TxnOp::SetData {
            path: path.clone(),
            data: data.clone(),
            version: *version,
        },
        Record::SetAcl { path, acl, version } => TxnOp::SetAcl {
            path: path.clone(),
            acl: acl.clone(),
            aversion: *version,
        },
        Record::Check { path, .. } => TxnOp::Check { path: path.clone() },
        // A code this engine has no name for still changes nothing.
        Record::Error { code } => {
            TxnOp::Error(ErrorCode::from_code(*code).unwrap_or(ErrorCode::SystemError))
        }
        // Never decoded: `decode_record` refuses a multi inside a multi.
        Record::Multi(_) => TxnOp::Error(ErrorCode::MarshallingError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::txnlog::TxnHeader;

    #[test]
    fn a_multi_with_an_error_record_applies_nothing() {
        let tree = DataTree::new();
        let entry = Entry {
            offset: 0,
            header: TxnHeader {
                client_id: 7,
                cxid: 1,
                zxid: 5,
                time: 1_000,
                kind: OpCode::Multi.code(),
            },
            record: Record::Multi(vec![
                Record::Create {
                    op: OpCode::Create,
                    path: "/never".into(),
                    data: None,
                    acl: engine::types::Acl::open_unsafe(),
                    ephemeral: false,
                    parent_cversion: 1,
                },
                Record::Error { code: -103 },
                Record::Delete {
                    path: "/zookeeper".into(),
                    container: false,
                },
            ]),
            digest: None,
        };
        let txn = to_txn(&entry, &tree);
        assert_eq!(
            txn.op,
            TxnOp::Multi(vec![
                TxnOp::Error(ErrorCode::Ok),
                TxnOp::Error(ErrorCode::BadVersion),
                TxnOp::Error(ErrorCode::RuntimeInconsistency),
            ])
        );
    }

    #[test]
    fn a_reconfig_becomes_ours_and_other_set_data_stays() {
        let tree = DataTree::new();
        let entry = |path: &str, kind: OpCode| Entry {
            offset: 0,
            header: TxnHeader {
                client_id: 7,
                cxid: 1,
                zxid: 0x1_0000_0005,
                time: 1_000,
                kind: kind.code(),
            },
            record: Record::SetData {
                path: path.into(),
                data: Some(b"server.1=a:1:2:participant\nversion=100000005".to_vec()),
                version: -1,
            },
            digest: None,
        };
        let txn = to_txn(&entry(engine::tree::CONFIG, OpCode::Reconfig), &tree);
        assert_eq!(
            txn.op,
            TxnOp::Reconfig {
                data: b"server.1=a:1:2:participant\nversion=100000005".to_vec()
            }
        );
        let txn = to_txn(&entry("/app", OpCode::SetData), &tree);
        assert!(matches!(txn.op, TxnOp::SetData { .. }), "{:?}", txn.op);
    }

    #[test]
    fn owners_decode_to_kinds_and_back() {
        for kind in [
            NodeKind::Persistent,
            NodeKind::Container,
            NodeKind::Ttl(60_000),
            NodeKind::Ephemeral(SessionId(0x0100_0123_4567_0001)),
        ] {
            assert_eq!(kind_of_owner(kind.ephemeral_owner()), kind);
        }
    }
}
