//! Deterministic apply: the only code that changes a live `DataTree`
//! (snapshot loading builds one with `DataTree::restore_*`). Given a
//! txn it makes the change, says which watches fire (in the reference's
//! order) and builds the reply. It reads no clock and makes no decision prep
//! has not already made: every result it writes comes from the txn.
//!
//! Invariant (DESIGN.md 5, 6): the resulting tree depends only on the tree
//! and the txn. `apply` is for forward operation: txns arrive in zxid order
//! and match the tree. A mismatch means prep and the tree disagree, so this
//! server has diverged from what it logged; it panics, in every build,
//! because a diverged replica is worse than a stopped one. `apply_replay`
//! is for recovery over a fuzzy snapshot, where a txn may already be
//! reflected: mismatches are tolerated and converge to the same state (the
//! quota stats once `quota::recount_all` has run, see `restore::Replay`).

use crate::path::parent_of;
use crate::request::{MultiResult, Reply, Response};
use crate::tree::{DataTree, TreeError};
use crate::txn::{CreateTxn, NodeKind, Txn, TxnOp};
use crate::types::{Acl, ErrorCode, EventType, OpCode, Stat, Zxid};
use std::sync::Arc;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ApplyOutcome {
    pub reply: Reply,
    /// Watch triggers in firing order; hand each to `WatchRegistry::trigger`.
    pub events: Vec<Fired>,
}

/// One watch trigger of an applied txn.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Fired {
    pub path: String,
    pub event_type: EventType,
    /// The ACL a watcher needs READ on to be sent the event, as the
    /// reference checks at delivery: the changed node's (taken before a
    /// delete removes it), the parent's for NodeChildrenChanged. A recursive
    /// watch set higher up is checked against this node, not its own.
    pub acl: Arc<[Acl]>,
}

/// Applies `txn` in forward operation. Panics if `txn.zxid` does not follow
/// the tree's last zxid, or if the txn does not match the tree (a create
/// whose node exists, a delete or setData of a missing node, a closeSession
/// listing a node the session does not own): either would diverge replicas.
pub fn apply(tree: &mut DataTree, txn: &Txn) -> ApplyOutcome {
    assert!(
        txn.zxid > tree.last_zxid(),
        "apply out of order: {} after {}",
        txn.zxid,
        tree.last_zxid()
    );
    apply_inner(tree, txn, false)
}

/// Applies `txn` during recovery: order is not asserted (the tree's last
/// zxid only moves forward) and a txn whose effect is already present is
/// tolerated, as the reference does when replaying its log over a fuzzy
/// snapshot.
pub fn apply_replay(tree: &mut DataTree, txn: &Txn) -> ApplyOutcome {
    apply_inner(tree, txn, true)
}

fn apply_inner(tree: &mut DataTree, txn: &Txn, replay: bool) -> ApplyOutcome {
    let mut applier = Applier {
        tree,
        txn,
        replay,
        events: Vec::new(),
    };
    let reply = applier.top_level();
    let events = applier.events;
    if txn.zxid > tree.last_zxid() {
        tree.set_last_zxid(txn.zxid);
    }
    ApplyOutcome { reply, events }
}

struct Applier<'a> {
    tree: &'a mut DataTree,
    txn: &'a Txn,
    replay: bool,
    events: Vec<Fired>,
}

/// The outcome of one op, before it is shaped as a top-level reply or a
/// multi result.
enum Done {
    Created {
        op: OpCode,
        path: String,
        stat: Stat,
    },
    Deleted,
    Stat(Stat),
    Checked,
    Nothing,
    Failed(ErrorCode),
}

impl Applier<'_> {
    fn zxid(&self) -> Zxid {
        self.txn.zxid
    }

    /// The ACL of `path` now (empty, which guards nothing, if it is gone).
    fn acl_of(&self, path: &str) -> Arc<[Acl]> {
        self.tree
            .get(path)
            .map(|node| node.acl_shared())
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    fn fire(&mut self, path: &str, event_type: EventType, acl: Arc<[Acl]>) {
        self.events.push(Fired {
            path: path.to_string(),
            event_type,
            acl,
        });
    }

    /// A tree mismatch: expected during replay; in forward operation the
    /// tree and the log have diverged, which is fatal.
    fn mismatch(&self, what: &str, path: &str, err: TreeError) {
        assert!(
            self.replay,
            "apply {}: {what} {path} does not match the tree ({err:?}): \
             the tree has diverged from the log",
            self.zxid()
        );
    }

    /// setData, and the reconfig that writes /zookeeper/config.
    fn set_data(&mut self, what: &str, path: &str, data: Option<&[u8]>, version: i32) -> Done {
        let zxid = self.zxid();
        match self
            .tree
            .set_data(path, data, version, zxid, self.txn.time_ms)
        {
            Ok(()) => {
                self.fire(path, EventType::NodeDataChanged, self.acl_of(path));
                Done::Stat(self.client_stat(path))
            }
            Err(err) => {
                self.mismatch(what, path, err);
                Done::Failed(ErrorCode::NoNode)
            }
        }
    }

    fn top_level(&mut self) -> Reply {
        let txn = self.txn;
        match &txn.op {
            TxnOp::CreateSession { timeout_ms } => {
                self.tree.add_session(txn.session, *timeout_ms);
                Reply::ok(Response::Empty)
            }
            TxnOp::CloseSession { paths } => {
                for path in paths {
                    if !self.replay {
                        let owner = self.tree.get(path).map(|n| n.kind());
                        assert_eq!(
                            owner,
                            Some(NodeKind::Ephemeral(txn.session)),
                            "apply {}: closeSession of {} lists {path}, which it does not own: \
                             the tree has diverged from the log",
                            txn.zxid,
                            txn.session
                        );
                    }
                    self.delete(path);
                }
                // Ephemerals the txn did not list (never, in forward
                // operation): the session is gone, so they go too.
                for path in self.tree.ephemerals(txn.session) {
                    self.mismatch("closeSession", &path, TreeError::NodeExists);
                    self.delete(&path);
                }
                self.tree.remove_session(txn.session);
                Reply::ok(Response::Empty)
            }
            TxnOp::Reconfig { data } => match self.op(&txn.op) {
                Done::Stat(stat) => Reply::ok(Response::GetData {
                    data: Some(data.clone()),
                    stat,
                }),
                Done::Failed(code) => Reply::error(code),
                _ => unreachable!("a reconfig applies as a setData"),
            },
            TxnOp::Multi(ops) => {
                // Every sub-op of a failed multi is an error record; nothing
                // of it is applied.
                let results = ops.iter().map(|op| self.multi_op(op)).collect();
                Reply::ok(Response::Multi(results))
            }
            op => match self.op(op) {
                Done::Created {
                    op: OpCode::Create,
                    path,
                    ..
                } => Reply::ok(Response::Create { path }),
                Done::Created { path, stat, .. } => Reply::ok(Response::Create2 { path, stat }),
                Done::Deleted | Done::Checked | Done::Nothing => Reply::ok(Response::Empty),
                Done::Stat(stat) => Reply::ok(Response::Stat(stat)),
                Done::Failed(code) => Reply::error(code),
            },
        }
    }

    fn multi_op(&mut self, op: &TxnOp) -> MultiResult {
        match self.op(op) {
            Done::Created {
                op: OpCode::Create,
                path,
                ..
            } => MultiResult::Create { path },
            Done::Created { path, stat, .. } => MultiResult::Create2 { path, stat },
            Done::Deleted => MultiResult::Delete,
            Done::Stat(stat) => MultiResult::SetData { stat },
            Done::Checked => MultiResult::Check,
            Done::Nothing => MultiResult::Error(ErrorCode::Ok),
            Done::Failed(code) => MultiResult::Error(code),
        }
    }

    fn op(&mut self, op: &TxnOp) -> Done {
        match op {
            TxnOp::Create(create) => self.create(create),
            TxnOp::Delete { path } | TxnOp::DeleteContainer { path } => {
                if self.delete(path) {
                    Done::Deleted
                } else {
                    Done::Failed(ErrorCode::NoNode)
                }
            }
            TxnOp::SetData {
                path,
                data,
                version,
            } => self.set_data("setData", path, data.as_deref(), *version),
            TxnOp::Reconfig { data } => {
                self.set_data("reconfig", crate::tree::CONFIG, Some(data), -1)
            }
            TxnOp::SetAcl {
                path,
                acl,
                aversion,
            } => match self.tree.set_acl(path, acl, *aversion) {
                Ok(()) => Done::Stat(self.client_stat(path)),
                Err(err) => {
                    self.mismatch("setACL", path, err);
                    Done::Failed(ErrorCode::NoNode)
                }
            },
            TxnOp::Check { .. } => Done::Checked,
            TxnOp::Error(code) => Done::Failed(*code),
            // Nested multis and session ops inside a multi are never prepped:
            // fatal in forward operation; a log that holds one is answered
            // rather than acted on.
            TxnOp::Multi(_) | TxnOp::CreateSession { .. } | TxnOp::CloseSession { .. } => {
                assert!(
                    self.replay,
                    "apply {}: {op:?} inside a multi was never prepped",
                    self.zxid()
                );
                tracing::error!(
                    zxid = %self.zxid(), ?op,
                    "replayed a multi holding a multi or a session op; ignored"
                );
                Done::Nothing
            }
        }
    }

    fn client_stat(&self, path: &str) -> Stat {
        self.tree.stat_for_client(path).unwrap_or_default()
    }

    fn create(&mut self, create: &CreateTxn) -> Done {
        let zxid = self.zxid();
        let path = &create.path;
        let result = self.tree.create_node(
            path,
            create.data.as_deref(),
            &create.acl,
            create.kind,
            create.parent_cversion,
            zxid,
            self.txn.time_ms,
        );
        match result {
            Ok(()) => {
                self.fire(path, EventType::NodeCreated, self.acl_of(path));
                let parent = parent_of(path);
                self.fire(parent, EventType::NodeChildrenChanged, self.acl_of(parent));
                Done::Created {
                    op: create.op,
                    path: path.clone(),
                    stat: self.client_stat(path),
                }
            }
            Err(err) => {
                self.mismatch("create", path, err);
                if err == TreeError::NodeExists && self.replay {
                    // The path is taken in the snapshot: reset the node to
                    // what this create made (later txns bring it forward)
                    // and move the parent's cversion and pzxid forward as
                    // the create did.
                    self.tree.recreate_node(
                        path,
                        create.data.as_deref(),
                        &create.acl,
                        create.kind,
                        zxid,
                        self.txn.time_ms,
                    );
                    self.tree
                        .advance_parent(parent_of(path), create.parent_cversion, zxid);
                }
                Done::Failed(err.code())
            }
        }
    }

    /// Deletes one node, recording its events. False if it was not there.
    fn delete(&mut self, path: &str) -> bool {
        let acl = self.acl_of(path);
        match self.tree.delete_node(path, self.zxid()) {
            Ok(()) => {
                self.fire(path, EventType::NodeDeleted, acl);
                let parent = parent_of(path);
                self.fire(parent, EventType::NodeChildrenChanged, self.acl_of(parent));
                true
            }
            Err(err) => {
                self.mismatch("delete", path, err);
                false
            }
        }
    }
}

/// A small in-memory pipeline (prep → apply → watches) shared by the unit
/// tests of prep, apply and read, so an API change touches one place.
#[cfg(test)]
pub(crate) mod sim {
    use super::*;
    use crate::prep::{Prep, PrepConfig};
    use crate::read::{read, ReadContext};
    use crate::request::{CreateRequest, MultiOp, Request};
    use crate::types::{Acl, Id, SessionId, WatcherId};
    use crate::watch::WatchRegistry;

    pub struct Sim {
        pub tree: DataTree,
        pub prep: Prep,
        pub watches: WatchRegistry,
        pub session: SessionId,
        pub auth: Vec<Id>,
        pub now_ms: i64,
        /// Every txn applied, in order.
        pub log: Vec<Txn>,
        /// Watch events delivered, rendered "watcher:Type:path".
        pub events: Vec<String>,
    }

    impl Sim {
        pub fn new() -> Sim {
            Sim::with_config(PrepConfig {
                extended_types_enabled: true,
            })
        }

        pub fn with_config(config: PrepConfig) -> Sim {
            let mut sim = Sim {
                tree: DataTree::new(),
                prep: Prep::new(Zxid::ZERO, config),
                watches: WatchRegistry::new(),
                session: SessionId(0x100),
                auth: vec![Id::new("ip", "127.0.0.1")],
                now_ms: 1000,
                log: Vec::new(),
                events: Vec::new(),
            };
            let txn = sim
                .prep
                .prep_create_session(sim.session, 30_000, sim.now_ms);
            sim.apply(txn);
            sim
        }

        /// Preps without applying (the txn stays pending).
        pub fn prep(&mut self, request: Request) -> Result<Txn, ErrorCode> {
            self.now_ms += 1;
            self.prep.prep(
                &self.tree,
                self.session,
                1,
                &self.auth,
                &request,
                self.now_ms,
            )
        }

        pub fn apply(&mut self, txn: Txn) -> Reply {
            let outcome = apply(&mut self.tree, &txn);
            self.prep.applied(txn.zxid);
            for fired in &outcome.events {
                for (w, e) in self.watches.trigger(&fired.path, fired.event_type) {
                    self.events
                        .push(format!("{}:{:?}:{}", w.0, e.event_type, e.path));
                }
            }
            self.log.push(txn);
            debug_assert_eq!(self.tree.check_invariants(), Ok(()));
            outcome.reply
        }

        /// Preps and applies one write; renders the reply.
        pub fn write(&mut self, request: Request) -> String {
            match self.prep(request) {
                Ok(txn) => render(&self.apply(txn)),
                Err(code) => format!("refused {code:?}"),
            }
        }

        pub fn read(&mut self, request: Request) -> String {
            let ctx = ReadContext {
                session: self.session,
                auth: &self.auth,
                watcher: WatcherId(self.session.0 as u64),
                watches: &self.watches,
            };
            render(&read(&self.tree, &ctx, &request))
        }

        pub fn stat(&self, path: &str) -> String {
            self.tree
                .stat_for_client(path)
                .map_or("none".to_string(), |s| render_stat(&s))
        }
    }

    pub fn render_stat(s: &Stat) -> String {
        format!(
            "c{} m{} p{} v{} cv{} av{} eo{} dl{} nc{}",
            s.czxid,
            s.mzxid,
            s.pzxid,
            s.version,
            s.cversion,
            s.aversion,
            s.ephemeral_owner,
            s.data_length,
            s.num_children
        )
    }

    fn render_data(data: &Option<Vec<u8>>) -> String {
        match data {
            None => "null".to_string(),
            Some(d) => format!("{:?}", String::from_utf8_lossy(d)),
        }
    }

    pub fn render(reply: &Reply) -> String {
        if reply.err != ErrorCode::Ok {
            return format!("{:?}", reply.err);
        }
        match &reply.body {
            Response::Empty | Response::AddWatch => "ok".to_string(),
            Response::Create { path } => format!("create {path}"),
            Response::Create2 { path, stat } => format!("create2 {path} [{}]", render_stat(stat)),
            Response::Stat(stat) => format!("stat [{}]", render_stat(stat)),
            Response::GetData { data, stat } => {
                format!("data {} [{}]", render_data(data), render_stat(stat))
            }
            Response::GetAcl { acl, .. } => {
                let acl: Vec<String> = acl
                    .iter()
                    .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
                    .collect();
                format!("acl {}", acl.join(","))
            }
            Response::GetChildren { children } | Response::GetChildren2 { children, .. } => {
                let mut children = children.clone();
                children.sort();
                format!("children {}", children.join(","))
            }
            Response::Multi(results) => {
                let results: Vec<String> = results
                    .iter()
                    .map(|r| match r {
                        MultiResult::Create { path } => format!("create {path}"),
                        MultiResult::Create2 { path, .. } => format!("create2 {path}"),
                        MultiResult::Delete => "delete".to_string(),
                        MultiResult::SetData { stat } => format!("set v{}", stat.version),
                        MultiResult::Check => "check".to_string(),
                        MultiResult::GetChildren { children } => {
                            let mut children = children.clone();
                            children.sort();
                            format!("children {}", children.join(","))
                        }
                        MultiResult::GetData { data, .. } => format!("data {}", render_data(data)),
                        MultiResult::Error(code) => format!("{code:?}"),
                    })
                    .collect();
                format!("multi [{}]", results.join(", "))
            }
            Response::GetAllChildrenNumber { total } => format!("total {total}"),
            Response::GetEphemerals { paths } => {
                let mut paths = paths.clone();
                paths.sort();
                format!("ephemerals {}", paths.join(","))
            }
            other => format!("{other:?}"),
        }
    }

    // ---- the scenario language shared with the reference runner ----

    fn parse_acl(spec: &str) -> Vec<Acl> {
        match spec {
            "open" => return Acl::open_unsafe(),
            "read" => return Acl::read_unsafe(),
            "none" => return Vec::new(),
            _ => {}
        }
        spec.split(',')
            .map(|item| {
                let (scheme, rest) = item.split_once(':').expect("scheme:id:perms");
                let (id, perms) = rest.rsplit_once(':').expect("scheme:id:perms");
                Acl {
                    perms: perms.parse().expect("perms"),
                    id: Id::new(scheme, id),
                }
            })
            .collect()
    }

    fn data_of(token: &str) -> Option<Vec<u8>> {
        (token != "-").then(|| token.as_bytes().to_vec())
    }

    fn num<T: std::str::FromStr>(token: &str) -> T {
        token
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {token}"))
    }

    fn opcode(token: &str) -> OpCode {
        OpCode::from_code(num(token)).expect("opcode")
    }

    fn sub_op(tokens: &[&str]) -> MultiOp {
        match tokens {
            ["create", op, flags, path, rest @ ..] => {
                let mut request = create_req(path, Some(b""), num(flags));
                if let [ttl] = rest {
                    request.ttl = num(ttl);
                }
                MultiOp::Create {
                    op: opcode(op),
                    request,
                }
            }
            ["delete", path, version] => m_delete(path, num(version)),
            ["set", path, data, version] => MultiOp::SetData {
                path: path.to_string(),
                data: data_of(data),
                version: num(version),
            },
            ["check", path, version] => m_check(path, num(version)),
            ["get", path] => MultiOp::GetData {
                path: path.to_string(),
            },
            ["children", path] => MultiOp::GetChildren {
                path: path.to_string(),
            },
            _ => panic!("bad multi op {tokens:?}"),
        }
    }

    fn sub_ops(text: &str) -> Vec<MultiOp> {
        text.split(';')
            .map(|part| part.split_whitespace().collect::<Vec<_>>())
            .filter(|tokens| !tokens.is_empty())
            .map(|tokens| sub_op(&tokens))
            .collect()
    }

    fn list(token: &str) -> Vec<String> {
        if token == "-" {
            Vec::new()
        } else {
            token.split(',').map(str::to_string).collect()
        }
    }

    impl Sim {
        /// Runs one scenario line and renders it as the reference runner
        /// does: `line => result @zxid`.
        pub fn run_line(&mut self, line: &str) -> String {
            if let Some(rest) = line.strip_prefix("pipe") {
                return format!("{line} => {}", self.pipe(rest));
            }
            let tokens: Vec<&str> = line
                .split_whitespace()
                .map(|t| if t == "''" { "" } else { t })
                .collect();
            let write = |sim: &mut Sim, request: Request| match sim.prep(request) {
                Ok(txn) => {
                    let zxid = txn.zxid;
                    (render(&sim.apply(txn)), Some(zxid))
                }
                Err(code) => (format!("refused {code:?}"), None),
            };
            let read = |sim: &mut Sim, request: Request| (sim.read(request), None);
            let (out, zxid) = match tokens.as_slice() {
                ["create", op, flags, path, rest @ ..] => {
                    let mut request = create_req(path, Some(b""), num(flags));
                    if let Some(acl) = rest.first() {
                        request.acl = parse_acl(acl);
                    }
                    if let Some(data) = rest.get(1) {
                        request.data = data_of(data);
                    }
                    write(self, create_with(opcode(op), request))
                }
                ["createttl", flags, ttl, path] => {
                    let mut request = create_req(path, Some(b""), num(flags));
                    request.ttl = num(ttl);
                    write(self, create_with(OpCode::CreateTtl, request))
                }
                ["delete", path, version] => write(self, delete(path, num(version))),
                ["set", path, data, version] => write(
                    self,
                    Request::SetData {
                        path: path.to_string(),
                        data: data_of(data),
                        version: num(version),
                    },
                ),
                ["setacl", path, version, acl] => write(
                    self,
                    Request::SetAcl {
                        path: path.to_string(),
                        acl: parse_acl(acl),
                        version: num(version),
                    },
                ),
                ["get", path] => read(self, get_data(path, false)),
                ["getw", path] => read(self, get_data(path, true)),
                ["exists", path] => read(
                    self,
                    Request::Exists {
                        path: path.to_string(),
                        watch: false,
                    },
                ),
                ["existsw", path] => read(
                    self,
                    Request::Exists {
                        path: path.to_string(),
                        watch: true,
                    },
                ),
                ["children", path] => read(
                    self,
                    Request::GetChildren2 {
                        path: path.to_string(),
                        watch: false,
                    },
                ),
                ["childrenw", path] => read(
                    self,
                    Request::GetChildren2 {
                        path: path.to_string(),
                        watch: true,
                    },
                ),
                ["getacl", path] => read(
                    self,
                    Request::GetAcl {
                        path: path.to_string(),
                    },
                ),
                ["multi", ..] => write(self, Request::Multi(sub_ops(&line["multi".len()..]))),
                ["multiread", ..] => read(
                    self,
                    Request::MultiRead(sub_ops(&line["multiread".len()..])),
                ),
                ["auth", scheme, auth] => {
                    match crate::acl::authenticate(scheme, auth.as_bytes(), Some(SUPER_DIGEST)) {
                        Ok(ids) => {
                            for id in ids {
                                if !self.auth.contains(&id) {
                                    self.auth.push(id);
                                }
                            }
                            return format!("{line} => ok");
                        }
                        Err(code) => return format!("{line} => {code:?}"),
                    }
                }
                ["allchildren", path] => read(
                    self,
                    Request::GetAllChildrenNumber {
                        path: path.to_string(),
                    },
                ),
                ["ephemerals", rest @ ..] => read(
                    self,
                    Request::GetEphemerals {
                        prefix: rest.first().unwrap_or(&"").to_string(),
                    },
                ),
                ["addwatch", path, mode] => {
                    let mode = match *mode {
                        "0" => crate::types::AddWatchMode::Persistent,
                        _ => crate::types::AddWatchMode::PersistentRecursive,
                    };
                    read(
                        self,
                        Request::AddWatch {
                            path: path.to_string(),
                            mode,
                        },
                    )
                }
                [kind @ ("checkwatch" | "removewatch"), path, t] => {
                    let watcher_type = match *t {
                        "1" => crate::types::WatcherType::Children,
                        "2" => crate::types::WatcherType::Data,
                        _ => crate::types::WatcherType::Any,
                    };
                    let path = path.to_string();
                    let request = if *kind == "checkwatch" {
                        Request::CheckWatches { path, watcher_type }
                    } else {
                        Request::RemoveWatches { path, watcher_type }
                    };
                    read(self, request)
                }
                ["setwatches", rel, data, exist, child] => {
                    let ctx = crate::read::ReadContext {
                        session: self.session,
                        auth: &self.auth,
                        watcher: WatcherId(self.session.0 as u64),
                        watches: &self.watches,
                    };
                    let fired = crate::read::set_watches(
                        &self.tree,
                        &ctx,
                        num(rel),
                        &list(data),
                        &list(exist),
                        &list(child),
                        &[],
                        &[],
                    );
                    for e in fired {
                        self.events.push(format!("0:{:?}:{}", e.event_type, e.path));
                    }
                    return format!("{line} => ok");
                }
                ["events"] => {
                    let events: Vec<String> = self
                        .events
                        .drain(..)
                        .map(|e| {
                            e.split_once(':')
                                .map_or(e.clone(), |(_, rest)| rest.to_string())
                        })
                        .collect();
                    return format!("{line} => events {}", events.join(" "));
                }
                _ => panic!("bad scenario line {line:?}"),
            };
            let zxid = zxid.unwrap_or(self.tree.last_zxid());
            let own = format!("eo{} ", self.session.0);
            format!("{line} => {} @{}", out.replace(&own, "eoS "), zxid.0)
        }

        /// `pipe a | b | ...`: preps every write before applying any, as a
        /// client that pipelines its requests makes the reference do.
        fn pipe(&mut self, commands: &str) -> String {
            let mut txns = Vec::new();
            for command in commands.split('|') {
                let tokens: Vec<&str> = command.split_whitespace().collect();
                let request = match tokens.as_slice() {
                    ["create", op, flags, path] => {
                        create_with(opcode(op), create_req(path, Some(b""), num(flags)))
                    }
                    ["delete", path, version] => delete(path, num(version)),
                    ["set", path, data, version] => Request::SetData {
                        path: path.to_string(),
                        data: data_of(data),
                        version: num(version),
                    },
                    _ => panic!("bad pipe command {command:?}"),
                };
                txns.push(self.prep(request).expect("a write"));
            }
            let own = format!("eo{} ", self.session.0);
            txns.into_iter()
                .map(|txn| {
                    let zxid = txn.zxid;
                    let out = render(&self.apply(txn)).replace(&own, "eoS ");
                    format!("{out} @{}", zxid.0)
                })
                .collect::<Vec<_>>()
                .join(" | ")
        }

        /// Runs a scenario; returns the rendered lines.
        pub fn run(&mut self, scenario: &str) -> String {
            scenario
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(|l| self.run_line(l))
                .collect::<Vec<_>>()
                .join("\n")
        }
    }

    /// The super digest both sides run with (`super:test`).
    pub const SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";

    // ---- request builders ----

    pub fn create_req(path: &str, data: Option<&[u8]>, flags: i32) -> CreateRequest {
        CreateRequest {
            path: path.to_string(),
            data: data.map(<[u8]>::to_vec),
            acl: Acl::open_unsafe(),
            flags,
            ttl: -1,
        }
    }

    pub fn create(path: &str, flags: i32) -> Request {
        Request::Create {
            op: OpCode::Create,
            request: create_req(path, Some(b""), flags),
        }
    }

    pub fn create_with(op: OpCode, request: CreateRequest) -> Request {
        Request::Create { op, request }
    }

    pub fn delete(path: &str, version: i32) -> Request {
        Request::Delete {
            path: path.to_string(),
            version,
        }
    }

    pub fn set_data(path: &str, data: &[u8], version: i32) -> Request {
        Request::SetData {
            path: path.to_string(),
            data: Some(data.to_vec()),
            version,
        }
    }

    pub fn get_data(path: &str, watch: bool) -> Request {
        Request::GetData {
            path: path.to_string(),
            watch,
        }
    }

    pub fn m_create(path: &str, flags: i32) -> MultiOp {
        MultiOp::Create {
            op: OpCode::Create,
            request: create_req(path, Some(b""), flags),
        }
    }

    pub fn m_delete(path: &str, version: i32) -> MultiOp {
        MultiOp::Delete {
            path: path.to_string(),
            version,
        }
    }

    pub fn m_set(path: &str, data: &[u8], version: i32) -> MultiOp {
        MultiOp::SetData {
            path: path.to_string(),
            data: Some(data.to_vec()),
            version,
        }
    }

    pub fn m_check(path: &str, version: i32) -> MultiOp {
        MultiOp::Check {
            path: path.to_string(),
            version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sim::Sim;

    /// Prints a scenario's rendering (`SCENARIO=file cargo test -p engine
    /// print_scenario -- --ignored --nocapture`), for comparing with the
    /// reference runner's output.
    #[test]
    #[ignore]
    fn print_scenario() {
        let Ok(file) = std::env::var("SCENARIO") else {
            return;
        };
        let text = std::fs::read_to_string(file).unwrap();
        println!("{}", Sim::new().run(&text));
    }

    /// Scenarios run against Apache ZooKeeper 3.8.0 (Debian's package, one
    /// raw-protocol session, extended types on, super digest `super:test`),
    /// with the reference's answers recorded after `=>` and the zxid in its
    /// reply header after `@`. Each test replays the left-hand sides
    /// through prep → apply → read and must render the same lines.
    #[track_caller]
    fn check_reference(recorded: &str) {
        let recorded = recorded.trim();
        let scenario: String = recorded
            .lines()
            .map(|line| line.split(" => ").next().unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n");
        let got = Sim::new().run(&scenario);
        for (want, have) in recorded.lines().zip(got.lines()) {
            assert_eq!(have, want);
        }
        assert_eq!(got.lines().count(), recorded.lines().count());
    }

    /// A reconfig txn writes the new member list to /zookeeper/config as the
    /// reference does (version -1, mzxid and mtime the txn's), fires its
    /// data watches, and answers with the node's data and stat.
    #[test]
    fn a_reconfig_writes_the_config_node() {
        use crate::request::Response;
        use crate::tree::{DataTree, CONFIG};
        use crate::txn::{Txn, TxnOp};
        use crate::types::{EventType, SessionId, Zxid};
        let mut tree = DataTree::new();
        let data = b"server.1=a:1:2:participant\nversion=100000001".to_vec();
        let txn = Txn {
            zxid: Zxid(0x1_0000_0001),
            time_ms: 1_700_000_000_000,
            session: SessionId(1),
            cxid: 1,
            op: TxnOp::Reconfig { data: data.clone() },
        };
        let outcome = super::apply(&mut tree, &txn);
        let Response::GetData {
            data: Some(answered),
            stat,
        } = outcome.reply.body
        else {
            panic!("{:?}", outcome.reply);
        };
        assert_eq!(answered, data);
        assert_eq!(
            (stat.version, stat.mzxid, stat.mtime),
            (-1, 0x1_0000_0001, 1_700_000_000_000)
        );
        assert_eq!(tree.get(CONFIG).unwrap().data(), Some(&data[..]));
        assert_eq!(outcome.events.len(), 1);
        assert_eq!(outcome.events[0].event_type, EventType::NodeDataChanged);
    }

    // ZK-BEHAVIOURS 1-6: fresh tree, zxid consumption, multi results, paths.
    #[test]
    fn reference_basics() {
        check_reference(BASICS);
    }

    // ZK-BEHAVIOURS 7-8: ACL validation and checks, /zookeeper rules, error precedence.
    #[test]
    fn reference_acls() {
        check_reference(ACLS);
    }

    // Watch registration and firing, persistent and recursive watches,
    // checkWatches/removeWatches, setWatches, ephemerals, unvalidated read paths.
    #[test]
    fn reference_watches() {
        check_reference(WATCHES);
    }

    // ZK-BEHAVIOURS 9-10: TTL and container rules, create modes in and out of multi.
    #[test]
    fn reference_modes() {
        check_reference(MODES);
    }

    // ---- property tests of tree invariants under random op sequences ----

    use super::{apply, apply_replay};
    use crate::prep::{Prep, PrepConfig};
    use crate::request::{CreateRequest, MultiOp, Request};
    use crate::tree::DataTree;
    use crate::txn::Txn;
    use crate::types::{Acl, EventType, Id, OpCode, SessionId, Zxid};
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The paths ops pick from: a small tree, and quotas on `/a` and,
    /// nested in it, `/a/x` (review 1.1: quota stats must converge too).
    const PATHS: [&str; 12] = [
        "/a",
        "/b",
        "/a/x",
        "/a/y",
        "/b/x",
        "/a/x/z",
        "/a/",
        "/zookeeper/quota/a",
        "/zookeeper/quota/a/zookeeper_stats",
        "/zookeeper/quota/a/zookeeper_limits",
        "/zookeeper/quota/a/x",
        "/zookeeper/quota/a/x/zookeeper_stats",
    ];

    #[derive(Clone, Debug)]
    enum Step {
        /// A write by the live session at this index (modulo their count).
        Write(usize, Request),
        NewSession,
        CloseSession(usize),
        DeleteContainer(usize),
        /// In batched runs: apply everything prepped so far.
        Flush,
    }

    fn path() -> impl Strategy<Value = String> {
        (0..PATHS.len()).prop_map(|i| PATHS[i].to_string())
    }

    fn data() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            Just(Some(vec![])),
            Just(Some(b"x".to_vec())),
            Just(Some(b"yy".to_vec())),
            Just(Some(b"count=0,bytes=0".to_vec())),
            Just(Some(b"count=5,bytes=-1=;countHardLimit=3".to_vec())),
        ]
    }

    fn create_op() -> impl Strategy<Value = (OpCode, CreateRequest)> {
        let op = prop_oneof![
            Just(OpCode::Create),
            Just(OpCode::Create2),
            Just(OpCode::CreateContainer),
            Just(OpCode::CreateTtl)
        ];
        (op, path(), data(), 0..7i32).prop_map(|(op, path, data, flags)| {
            let ttl = if op == OpCode::CreateTtl { 25 } else { -1 };
            (
                op,
                CreateRequest {
                    path,
                    data,
                    acl: Acl::open_unsafe(),
                    flags,
                    ttl,
                },
            )
        })
    }

    fn multi_op() -> impl Strategy<Value = MultiOp> {
        prop_oneof![
            create_op().prop_map(|(op, request)| MultiOp::Create { op, request }),
            (path(), -1..2i32).prop_map(|(path, version)| MultiOp::Delete { path, version }),
            (path(), data(), -1..3i32).prop_map(|(path, data, version)| MultiOp::SetData {
                path,
                data,
                version
            }),
            (path(), -1..3i32).prop_map(|(path, version)| MultiOp::Check { path, version }),
        ]
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            4 => create_op().prop_map(|(op, request)| Request::Create { op, request }),
            2 => (path(), -1..2i32).prop_map(|(path, version)| Request::Delete { path, version }),
            2 => (path(), data(), -1..3i32)
                .prop_map(|(path, data, version)| Request::SetData { path, data, version }),
            1 => (path(), -1..2i32).prop_map(|(path, version)| Request::SetAcl {
                path,
                acl: vec![Acl { perms: 31, id: Id::new("world", "anyone") }],
                version,
            }),
            2 => prop::collection::vec(multi_op(), 0..4).prop_map(Request::Multi),
        ]
    }

    /// Random steps, half the time after setting a quota on `/a` the way
    /// zkCli's setquota does.
    fn steps() -> impl Strategy<Value = Vec<Step>> {
        (any::<bool>(), prop::collection::vec(step(), 1..60)).prop_map(|(quota, steps)| {
            let setquota = [
                ("/a", "x"),
                ("/zookeeper/quota/a", ""),
                ("/zookeeper/quota/a/zookeeper_limits", "count=10,bytes=-1"),
                ("/zookeeper/quota/a/zookeeper_stats", "count=0,bytes=0"),
            ];
            let setquota = setquota.iter().map(|(path, data)| {
                let request = CreateRequest {
                    path: path.to_string(),
                    data: Some(data.as_bytes().to_vec()),
                    acl: Acl::open_unsafe(),
                    flags: 0,
                    ttl: -1,
                };
                Step::Write(
                    0,
                    Request::Create {
                        op: OpCode::Create,
                        request,
                    },
                )
            });
            let prefix: Vec<Step> = if quota {
                setquota.collect()
            } else {
                Vec::new()
            };
            prefix.into_iter().chain(steps).collect()
        })
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            12 => (0..3usize, request()).prop_map(|(s, r)| Step::Write(s, r)),
            1 => Just(Step::NewSession),
            1 => (0..3usize).prop_map(Step::CloseSession),
            1 => (0..PATHS.len()).prop_map(Step::DeleteContainer),
            3 => Just(Step::Flush),
        ]
    }

    /// Everything observable about a tree, for equality checks.
    fn dump(tree: &DataTree) -> String {
        let mut out = Vec::new();
        for path in tree.paths() {
            let node = tree.get(&path).expect("listed path exists");
            out.push(format!(
                "{path} {:?} {:?} {:?} {:?}",
                node.stored_stat(),
                node.data(),
                node.acl(),
                node.kind()
            ));
        }
        let mut sessions: Vec<(SessionId, i32)> = tree.sessions().collect();
        sessions.sort();
        out.push(format!(
            "sessions {sessions:?} last {} digest {}",
            tree.last_zxid(),
            tree.digest()
        ));
        out.join("\n")
    }

    struct Run {
        tree: DataTree,
        txns: Vec<Txn>,
        replies: Vec<String>,
    }

    /// Per-node expectations derived from the event stream: client cversion
    /// counts NodeChildrenChanged events since creation, pzxid is the zxid
    /// of the last one.
    #[derive(Default)]
    struct Model {
        cversion: HashMap<String, i32>,
        pzxid: HashMap<String, i64>,
    }

    impl Model {
        fn new() -> Model {
            let mut model = Model::default();
            for (path, cv) in [
                ("/", -1),
                ("/zookeeper", -2),
                ("/zookeeper/quota", 0),
                ("/zookeeper/config", 0),
            ] {
                model.cversion.insert(path.to_string(), cv);
                model.pzxid.insert(path.to_string(), 0);
            }
            model
        }

        fn observe(&mut self, zxid: Zxid, events: &[crate::apply::Fired]) {
            for crate::apply::Fired {
                path, event_type, ..
            } in events
            {
                match event_type {
                    EventType::NodeCreated => {
                        self.cversion.insert(path.clone(), 0);
                        self.pzxid.insert(path.clone(), zxid.0);
                    }
                    EventType::NodeDeleted => {
                        self.cversion.remove(path);
                        self.pzxid.remove(path);
                    }
                    EventType::NodeChildrenChanged => {
                        *self.cversion.get_mut(path).expect("parent known") += 1;
                        self.pzxid.insert(path.clone(), zxid.0);
                    }
                    _ => {}
                }
            }
        }

        fn check(&self, tree: &DataTree) -> Result<(), TestCaseError> {
            prop_assert_eq!(self.cversion.len(), tree.node_count());
            for (path, cv) in &self.cversion {
                let node = tree.get(path).expect("model node in tree");
                let stat = node.stat();
                prop_assert_eq!(stat.cversion, *cv, "cversion of {}", path);
                prop_assert_eq!(stat.pzxid, self.pzxid[path], "pzxid of {}", path);
                prop_assert_eq!(stat.num_children as usize, node.children().count());
            }
            Ok(())
        }
    }

    fn run(steps: &[Step], batched: bool) -> Result<Run, TestCaseError> {
        let mut tree = DataTree::new();
        let mut prep = Prep::new(
            Zxid::ZERO,
            PrepConfig {
                extended_types_enabled: true,
            },
        );
        let mut model = Model::new();
        let mut live: Vec<SessionId> = Vec::new();
        let mut next_session = 0x10;
        let mut queue: Vec<Txn> = Vec::new();
        let mut out = Run {
            tree: DataTree::new(),
            txns: Vec::new(),
            replies: Vec::new(),
        };
        let flush = |tree: &mut DataTree,
                     prep: &mut Prep,
                     queue: &mut Vec<Txn>,
                     out: &mut Run,
                     model: &mut Model| {
            for txn in queue.drain(..) {
                let outcome = apply(tree, &txn);
                prep.applied(txn.zxid);
                model.observe(txn.zxid, &outcome.events);
                tree.check_invariants().map_err(TestCaseError::fail)?;
                crate::quota::check(tree).map_err(TestCaseError::fail)?;
                model.check(tree)?;
                out.replies.push(format!("{:?}", outcome.reply));
                out.txns.push(txn);
            }
            Ok::<(), TestCaseError>(())
        };
        for (i, step) in steps.iter().enumerate() {
            let now_ms = 1000 + 10 * i as i64;
            let txn = match step {
                Step::Write(s, request) => {
                    let session = live
                        .get(s % live.len().max(1))
                        .copied()
                        .unwrap_or(SessionId(1));
                    prep.prep(&tree, session, i as i32, &[], request, now_ms)
                        .ok()
                }
                Step::NewSession => {
                    next_session += 1;
                    live.push(SessionId(next_session));
                    Some(prep.prep_create_session(SessionId(next_session), 10_000, now_ms))
                }
                Step::CloseSession(s) if !live.is_empty() => {
                    let session = live.remove(s % live.len());
                    Some(prep.prep_close_session(&tree, session, i as i32, now_ms))
                }
                Step::CloseSession(_) => None,
                Step::DeleteContainer(p) => {
                    prep.prep_delete_container(&tree, PATHS[*p], now_ms).ok()
                }
                Step::Flush => None,
            };
            queue.extend(txn);
            if !batched || matches!(step, Step::Flush) {
                flush(&mut tree, &mut prep, &mut queue, &mut out, &mut model)?;
            }
        }
        flush(&mut tree, &mut prep, &mut queue, &mut out, &mut model)?;
        prop_assert_eq!(prep.pending_count(), 0);
        out.tree = tree;
        Ok(out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn tree_invariants_hold(steps in steps()) {
            let one_by_one = run(&steps, false)?;
            // DESIGN.md invariant 4: prepping several before applying gives the
            // same txns and answers as prepping each after the last applied.
            let batched = run(&steps, true)?;
            prop_assert_eq!(&one_by_one.txns, &batched.txns);
            prop_assert_eq!(&one_by_one.replies, &batched.replies);
            prop_assert_eq!(dump(&one_by_one.tree), dump(&batched.tree));

            // Invariant 5: the same txns on a fresh tree give the same tree.
            let mut again = DataTree::new();
            for txn in &one_by_one.txns {
                apply(&mut again, txn);
            }
            prop_assert_eq!(again.digest(), one_by_one.tree.digest());
            prop_assert_eq!(dump(&again), dump(&one_by_one.tree));
        }

        // Invariant 6: replaying txns k.. over a state that already reflects
        // txns up to m >= k converges to the state after all txns.
        #[test]
        fn replay_converges(steps in steps(), k in any::<prop::sample::Index>(), m in any::<prop::sample::Index>()) {
            let full = run(&steps, false)?;
            let n = full.txns.len();
            let k = k.index(n + 1);
            let m = k + m.index(n - k + 1);
            let mut tree = DataTree::new();
            for txn in &full.txns[..m] {
                apply(&mut tree, txn);
            }
            // As recovery sees it: a snapshot started after txn k, ended
            // after txn m with this digest.
            let end = (tree.last_zxid(), tree.digest());
            tree.restore_last_zxid(zxid_before(&full.txns, k));
            replay_as_recovery(&mut tree, &full.txns, k, end)?;
            prop_assert_eq!(dump(&tree), dump(&full.tree));
        }
    }

    /// The zxid of the txn before `txns[k]`: where a snapshot started after
    /// `k` txns says replay begins.
    fn zxid_before(txns: &[Txn], k: usize) -> Zxid {
        k.checked_sub(1).map_or(Zxid::ZERO, |i| txns[i].zxid)
    }

    /// Replays `txns[k..]` over `tree` as recovery does (`restore::Replay`),
    /// for a snapshot that started after txn `k` and recorded `end` (zxid
    /// and digest), checking the tree's invariants after every txn.
    fn replay_as_recovery(
        tree: &mut DataTree,
        txns: &[Txn],
        k: usize,
        end: (Zxid, u64),
    ) -> Result<(), TestCaseError> {
        let fail = |error: crate::restore::ReplayError| TestCaseError::fail(error.to_string());
        let mut replay = crate::restore::Replay::new(zxid_before(txns, k), Some(end));
        replay.begin(tree).map_err(fail)?;
        for txn in &txns[k..] {
            replay.txn(tree, txn).map_err(fail)?;
            tree.check_invariants().map_err(TestCaseError::fail)?;
        }
        replay.finish(tree).map_err(fail)?;
        Ok(())
    }

    /// Emulates a fuzzy snapshot started after txn `k`: a depth-first walk
    /// that copies each node as it is when visited, while txns `k..m` keep
    /// being applied in between (`advance` says how many before each
    /// visit). Nodes created behind the walk are missed, nodes deleted ahead
    /// of it are skipped, and parents and children come from different
    /// moments — what the reference's snapshots look like. Returns the
    /// snapshot and its end: the live tree's last zxid and digest once the
    /// walk is over.
    fn fuzzy_snapshot(txns: &[Txn], k: usize, m: usize, advance: &[u8]) -> (DataTree, (Zxid, u64)) {
        let mut live = DataTree::new();
        for txn in &txns[..k] {
            apply(&mut live, txn);
        }
        let mut snap = DataTree::new();
        for (session, timeout) in live.sessions() {
            snap.restore_session(session, timeout);
        }
        snap.restore_last_zxid(live.last_zxid());
        let mut next = k;
        let mut advance = advance.iter().copied().cycle();
        let mut stack = vec!["/".to_string()];
        while let Some(path) = stack.pop() {
            for _ in 0..advance.next().unwrap_or(0) % 3 {
                if next < m {
                    apply(&mut live, &txns[next]);
                    next += 1;
                }
            }
            let Some(node) = live.get(&path) else {
                continue;
            };
            snap.restore_node(
                &path,
                node.data(),
                node.acl(),
                node.kind(),
                &node.stored_stat(),
            )
            .expect("parent restored first");
            let mut children: Vec<String> = node
                .children()
                .map(|c| crate::path::join(&path, c))
                .collect();
            children.sort();
            stack.extend(children.into_iter().rev());
        }
        (snap, (live.last_zxid(), live.digest()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        // Invariant 6 with a fuzzy snapshot: replaying txns k.. converges.
        #[test]
        fn replay_over_fuzzy_snapshot_converges(
            steps in steps(),
            k in any::<prop::sample::Index>(),
            m in any::<prop::sample::Index>(),
            advance in prop::collection::vec(any::<u8>(), 1..16),
        ) {
            let full = run(&steps, false)?;
            let n = full.txns.len();
            let k = k.index(n + 1);
            let m = k + m.index(n - k + 1);
            let (mut tree, end) = fuzzy_snapshot(&full.txns, k, m, &advance);
            tree.check_invariants().map_err(TestCaseError::fail)?;
            replay_as_recovery(&mut tree, &full.txns, k, end)?;
            prop_assert_eq!(dump(&tree), dump(&full.tree));
        }
    }

    // ---- review 1.7: a forward apply that does not match is fatal ----

    use crate::txn::{CreateTxn, NodeKind, TxnOp};

    /// A txn at zxid 1 by session 7.
    fn txn(op: TxnOp) -> Txn {
        Txn {
            zxid: Zxid(1),
            time_ms: 1_000,
            session: SessionId(7),
            cxid: 0,
            op,
        }
    }

    fn create_txn(path: &str, kind: NodeKind) -> TxnOp {
        TxnOp::Create(CreateTxn {
            op: OpCode::Create,
            path: path.to_string(),
            data: None,
            acl: Acl::open_unsafe(),
            kind,
            parent_cversion: 1,
        })
    }

    /// A tree holding `/a` (persistent) and `/e` (session 8's ephemeral),
    /// at zxid 2: what every mismatch test starts from.
    fn tree_with_nodes() -> DataTree {
        let mut tree = DataTree::new();
        for op in [
            create_txn("/a", NodeKind::Persistent),
            create_txn("/e", NodeKind::Ephemeral(SessionId(8))),
        ] {
            let zxid = Zxid(tree.last_zxid().0 + 1);
            let mut txn = txn(op);
            txn.zxid = zxid;
            if let TxnOp::Create(create) = &mut txn.op {
                create.parent_cversion = zxid.0 as i32;
            }
            apply(&mut tree, &txn);
        }
        tree
    }

    /// The txns that do not match `tree_with_nodes`, each applied after it.
    fn mismatched() -> Vec<TxnOp> {
        vec![
            create_txn("/a", NodeKind::Persistent),
            create_txn("/missing/x", NodeKind::Persistent),
            TxnOp::Delete {
                path: "/missing".into(),
            },
            TxnOp::SetData {
                path: "/missing".into(),
                data: None,
                version: 1,
            },
            TxnOp::SetAcl {
                path: "/missing".into(),
                acl: Acl::open_unsafe(),
                aversion: 1,
            },
            TxnOp::Multi(vec![TxnOp::Delete {
                path: "/missing".into(),
            }]),
            TxnOp::Multi(vec![TxnOp::Multi(Vec::new())]),
            TxnOp::Multi(vec![TxnOp::CreateSession { timeout_ms: 1 }]),
            // The txns' session, 7, does not own /e; /gone does not exist.
            TxnOp::CloseSession {
                paths: vec!["/e".into()],
            },
            TxnOp::CloseSession {
                paths: vec!["/gone".into()],
            },
        ]
    }

    /// Every mismatched txn panics in forward operation, in every build
    /// profile (the checks are `assert!`, not `debug_assert!`), and is
    /// tolerated by replay, which may meet it over a fuzzy snapshot.
    #[test]
    fn a_mismatched_forward_apply_panics() {
        for op in mismatched() {
            let mut txn = txn(op);
            txn.zxid = Zxid(3);
            let forward = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                apply(&mut tree_with_nodes(), &txn)
            }));
            let message = forward.expect_err(&format!("{:?} must panic", txn.op));
            let message = message
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            assert!(
                message.contains("diverged") || message.contains("never prepped"),
                "{:?}: {message}",
                txn.op
            );
            let mut tree = tree_with_nodes();
            apply_replay(&mut tree, &txn);
            tree.check_invariants()
                .expect("replay keeps the tree whole");
        }
    }

    /// The same, as the test harness sees it.
    #[test]
    #[should_panic(expected = "does not match the tree")]
    fn a_forward_delete_of_a_missing_node_panics() {
        let mut txn = txn(TxnOp::Delete {
            path: "/missing".into(),
        });
        txn.zxid = Zxid(3);
        apply(&mut tree_with_nodes(), &txn);
    }

    // DESIGN.md invariant 4 against the reference: requests pipelined by one
    // client are prepped while earlier ones are pending.
    #[test]
    fn reference_pipelined() {
        check_reference(PIPELINED);
    }

    const PIPELINED: &str = r#"
pipe create 1 0 /a | create 1 0 /a | create 1 0 /a/b | create 1 2 /a/s | create 1 2 /a/s | set /a 1 0 | set /a 2 1 | set /a 3 1 | delete /a -1 => create /a @2 | NodeExists @3 | create /a/b @4 | create /a/s0000000001 @5 | create /a/s0000000002 @6 | stat [c2 m7 p6 v1 cv3 av0 eo0 dl1 nc3] @7 | stat [c2 m8 p6 v2 cv3 av0 eo0 dl1 nc3] @8 | BadVersion @9 | NotEmpty @10
pipe delete /a/b 0 | delete /a/b 0 | create 1 0 /a/b/c | create 1 2 /a/s | delete /a/s0000000001 -1 | create 15 2 /a/s => ok @11 | NoNode @12 | NoNode @13 | create /a/s0000000003 @14 | ok @15 | create2 /a/s0000000004 [c16 m16 p16 v0 cv0 av0 eo0 dl0 nc0] @16
pipe create 1 1 /e | create 1 0 /e/x | delete /e -1 | create 1 0 /e/x | create 1 0 /e => create /e @17 | NoChildrenForEphemerals @18 | ok @19 | NoNode @20 | create /e @21
children /a => children s0000000002,s0000000003,s0000000004 @21
exists /a => stat [c2 m8 p16 v2 cv7 av0 eo0 dl1 nc3] @21
"#;

    const BASICS: &str = r#"
exists / => stat [c0 m0 p0 v0 cv-1 av0 eo0 dl0 nc1] @1
exists /zookeeper => stat [c0 m0 p0 v0 cv-2 av0 eo0 dl0 nc2] @1
exists /zookeeper/quota => stat [c0 m0 p0 v0 cv0 av0 eo0 dl0 nc0] @1
exists /zookeeper/config => stat [c0 m0 p0 v0 cv0 av-1 eo0 dl0 nc0] @1
getacl /zookeeper/config => acl world:anyone:1 @1
get /zookeeper/config => data "" [c0 m0 p0 v0 cv0 av-1 eo0 dl0 nc0] @1
create 1 2 / => create /0000000000 @2
exists / => stat [c0 m0 p2 v0 cv0 av0 eo0 dl0 nc2] @2
create 1 2 /q- => create /q-0000000001 @3
delete /q-0000000001 -1 => ok @4
create 1 2 /q- => create /q-0000000002 @5
exists / => stat [c0 m0 p5 v0 cv3 av0 eo0 dl0 nc3] @5
create 1 0 /a => create /a @6
create 1 0 /a => NodeExists @7
delete /b -1 => NoNode @8
set /a x 7 => BadVersion @9
create 1 0 /a/ => BadArguments @10
multi => multi [] @11
exists /a => stat [c6 m6 p6 v0 cv0 av0 eo0 dl0 nc0] @11
create 1 0 /a/./b => NoNode @12
create 1 0 //a => BadArguments @13
create 1 0 a => BadArguments @14
create 1 0 /a/ => BadArguments @15
create 1 2 /a/ => create /a/0000000000 @16
create 1 0 / => NodeExists @17
create 1 0 /x/y => NoNode @18
create 1 0 /a/. => BadArguments @19
multi create 1 0 /b; check /a 0; set /a x 0 => multi [create /b, check, set v1] @20
multi create 1 0 /c; delete /nope -1; set /a y -1 => multi [Ok, NoNode, RuntimeInconsistency] @21
get /c => NoNode @21
get /a => data "x" [c6 m20 p16 v1 cv1 av0 eo0 dl1 nc1] @21
multi create 1 0 /d; create 1 0 /d/e; delete /d/e 0 => multi [create /d, create /d/e, delete] @22
multi create 1 0 /f; get /a => MarshallingError @23
get /f => NoNode @23
multi create 1 4 /mc; create 15 0 /mp; create 19 0 /mq; create 21 5 /mt 100 => multi [create2 /mc, create /mp, create /mq, create2 /mt] @24
exists /mc => stat [c24 m24 p24 v0 cv0 av0 eo0 dl0 nc0] @24
exists /mq => stat [c24 m24 p24 v0 cv0 av0 eo0 dl0 nc0] @24
multiread get /a; children /a; get /nope; children / => multi [data "x", children 0000000000, NoNode, children 0000000000,a,b,d,mc,mp,mq,mt,q-0000000002,zookeeper] @24
multiread get /a; set /a z -1 => MarshallingError @24
allchildren / => total 13 @24
allchildren /a => total 1 @24
allchildren /zookeeper => total 2 @24
"#;

    const ACLS: &str = r#"
create 1 0 /a none => InvalidAcl @2
create 1 0 /a auth::31 => InvalidAcl @3
create 1 0 /a world:nobody:31 => InvalidAcl @4
create 1 0 /a digest:nocolon:31 => InvalidAcl @5
create 1 0 /a digest:u::31 => InvalidAcl @6
create 1 0 /a digest:u:h:z:31 => InvalidAcl @7
create 1 0 /a ip:1.2.3:31 => InvalidAcl @8
create 1 0 /a ip:1.2.3.4/33:31 => InvalidAcl @9
create 1 0 /a super::31 => InvalidAcl @10
create 1 0 /a ip:10.0.0.0/8:31 => create /a @11
create 1 0 /b world:anyone:99,world:anyone:99,ip:10.0.0.0/8:0 => create /b @12
getacl /b => acl world:anyone:99,ip:10.0.0.0/8:0 @12
create 1 0 /none/x world:nobody:1 => InvalidAcl @13
create 1 0 /none/x auth::31 => InvalidAcl @14
auth digest u:p => ok
create 1 0 /c auth::31 => create /c @15
getacl /c => acl digest:u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=:31 @15
create 1 0 /d auth::1,digest:u:ZK:2 => create /d @16
getacl /d => acl digest:u:x:1,digest:u:x:2 @16
create 1 0 /r read => create /r @17
create 1 0 /r/x => NoAuth @18
delete /r/missing -1 => NoAuth @19
delete /r 5 => BadVersion @20
set /r x 3 => NoAuth @21
setacl /r 3 open => NoAuth @22
setacl /r -1 none => InvalidAcl @23
create 1 0 /w world:anyone:3 => create /w @24
setacl /w 0 read => NoAuth @25
getacl /w => acl world:anyone:3 @25
create 1 0 /rd digest:other:HASH:17 => create /rd @26
getacl /rd => NoAuth @26
create 1 0 /rr digest:other:HASH:1,world:anyone:16 => create /rr @27
getacl /rr => acl digest:other:HASH:1,world:anyone:16 @27
create 1 0 /nr digest:other:HASH:31 => create /nr @28
getacl /nr => NoAuth @28
get /nr => NoAuth @28
children /nr => NoAuth @28
allchildren /nr => NoAuth @28
exists /nr => stat [c28 m28 p28 v0 cv0 av0 eo0 dl0 nc0] @28
delete /nr 0 => ok @29
auth digest super:test => ok
get /nr => NoNode @29
set /nr y -1 => NoNode @30
getacl /nr => NoNode @30
delete /nr 7 => NoNode @31
delete /nr -1 => NoNode @32
delete / -1 => BadArguments @33
delete /zookeeper -1 => BadArguments @34
delete /zookeeper/quota -1 => BadArguments @35
delete /zookeeper/config -1 => BadArguments @36
set /zookeeper/config c -1 => stat [c0 m37 p0 v1 cv0 av-1 eo0 dl1 nc0] @37
set / r -1 => stat [c0 m38 p29 v1 cv9 av0 eo0 dl1 nc9] @38
set /zookeeper z -1 => stat [c0 m39 p0 v1 cv-2 av0 eo0 dl1 nc2] @39
create 1 0 /zookeeper/x => create /zookeeper/x @40
create 1 0 /zookeeper/quota/x => create /zookeeper/quota/x @41
create 1 0 /zookeeper/config/x => create /zookeeper/config/x @42
"#;

    const WATCHES: &str = r#"
create 1 0 /a => create /a @2
getw /a => data "" [c2 m2 p2 v0 cv0 av0 eo0 dl0 nc0] @2
childrenw /a => children  @2
existsw /nope => NoNode @2
getw /missing => NoNode @2
childrenw /missing => NoNode @2
create 1 0 /a/b => create /a/b @3
events => events NodeChildrenChanged:/a
set /a x -1 => stat [c2 m4 p3 v1 cv1 av0 eo0 dl1 nc1] @4
events => events NodeDataChanged:/a
create 1 0 /nope => create /nope @5
events => events NodeCreated:/nope
set /a y -1 => stat [c2 m6 p3 v2 cv1 av0 eo0 dl1 nc1] @6
events => events 
getw /a => data "y" [c2 m6 p3 v2 cv1 av0 eo0 dl1 nc1] @6
childrenw /a => children b @6
delete /a/b -1 => ok @7
events => events NodeChildrenChanged:/a
delete /a -1 => ok @8
events => events NodeDeleted:/a
create 1 0 /p => create /p @9
addwatch /p 0 => ok @9
addwatch /r 1 => ok @9
create 1 0 /r => create /r @10
create 1 0 /r/x => create /r/x @11
set /r/x 1 -1 => stat [c11 m12 p11 v1 cv0 av0 eo0 dl1 nc0] @12
create 1 0 /p/c => create /p/c @13
set /p d -1 => stat [c9 m14 p13 v1 cv1 av0 eo0 dl1 nc1] @14
delete /p/c -1 => ok @15
events => events NodeCreated:/r NodeCreated:/r/x NodeDataChanged:/r/x NodeChildrenChanged:/p NodeDataChanged:/p NodeChildrenChanged:/p
checkwatch /p 1 => ok @15
checkwatch /p 2 => ok @15
checkwatch /r 1 => ok @15
checkwatch /r 2 => ok @15
checkwatch /r/x 3 => NoWatcher @15
checkwatch /zz 3 => NoWatcher @15
removewatch /zz 3 => NoWatcher @15
getw /p => data "d" [c9 m14 p15 v1 cv2 av0 eo0 dl1 nc0] @15
set /p e -1 => stat [c9 m16 p15 v2 cv2 av0 eo0 dl1 nc0] @16
set /p f -1 => stat [c9 m17 p15 v3 cv2 av0 eo0 dl1 nc0] @17
events => events NodeDataChanged:/p
existsw /r => stat [c10 m10 p11 v0 cv1 av0 eo0 dl0 nc1] @17
checkwatch /r 2 => ok @17
removewatch /r 2 => ok @17
checkwatch /r 3 => ok @17
removewatch /r 1 => ok @17
checkwatch /r 3 => NoWatcher @17
set /r/x 2 -1 => stat [c11 m18 p11 v2 cv0 av0 eo0 dl1 nc0] @18
events => events 
getw /r/x => data "2" [c11 m18 p11 v2 cv0 av0 eo0 dl1 nc0] @18
childrenw /r/x => children  @18
delete /r/x -1 => ok @19
events => events NodeDeleted:/r/x
existsw '' => stat [c0 m0 p10 v0 cv4 av0 eo0 dl0 nc4] @19
getw '' => data "" [c0 m0 p10 v0 cv4 av0 eo0 dl0 nc4] @19
exists /a/ => NoNode @19
get a => NoNode @19
get //r => NoNode @19
childrenw /r => children  @19
create 1 1 /r/e1 => create /r/e1 @20
create 1 3 /r/e => create /r/e0000000002 @21
create 1 0 /r/e1/x => NoChildrenForEphemerals @22
create 1 2 /r/e1/ => NoChildrenForEphemerals @23
ephemerals => ephemerals /r/e0000000002,/r/e1 @23
ephemerals /r/e0 => ephemerals /r/e0000000002 @23
ephemerals /r/e1 => ephemerals /r/e1 @23
ephemerals / => ephemerals /r/e0000000002,/r/e1 @23
ephemerals /x => ephemerals  @23
events => events NodeChildrenChanged:/r
setwatches 0 /r,/gone /r,/gone /r,/gone => ok
events => events NodeDataChanged:/r NodeDeleted:/gone NodeCreated:/r NodeChildrenChanged:/r NodeDeleted:/gone
set /r z -1 => stat [c10 m24 p21 v1 cv4 av0 eo0 dl1 nc2] @24
create 1 0 /gone => create /gone @25
events => events NodeCreated:/gone
"#;

    const MODES: &str = r#"
createttl 5 0 /t => BadArguments @2
createttl 5 1099511627776 /t => BadArguments @3
createttl 0 100 /t => BadArguments @4
createttl 9 100 /t => BadArguments @5
createttl 4 100 /t => BadArguments @6
createttl 5 1099511627775 /t => create2 /t [c7 m7 p7 v0 cv0 av0 eo0 dl0 nc0] @7
createttl 6 100 /ts => create2 /ts0000000001 [c8 m8 p8 v0 cv0 av0 eo0 dl0 nc0] @8
create 1 5 /t5 => BadArguments @9
create 15 6 /t6 => BadArguments @10
create 19 5 /c5 => BadArguments @11
create 19 0 /c => create2 /c [c12 m12 p12 v0 cv0 av0 eo0 dl0 nc0] @12
create 19 2 /cs => create2 /cs0000000003 [c13 m13 p13 v0 cv0 av0 eo0 dl0 nc0] @13
create 19 1 /ce => create2 /ce [c14 m14 p14 v0 cv0 av0 eo0 dl0 nc0] @14
create 19 7 /bad => BadArguments @15
create 1 7 /bad => BadArguments @16
create 1 -1 /bad => BadArguments @17
create 1 4 /p4 => create /p4 @18
create 15 4 /p15 => create2 /p15 [c19 m19 p19 v0 cv0 av0 eo0 dl0 nc0] @19
create 15 0 /n open - => create2 /n [c20 m20 p20 v0 cv0 av0 eo0 dl0 nc0] @20
get /n => data null [c20 m20 p20 v0 cv0 av0 eo0 dl0 nc0] @20
exists /c => stat [c12 m12 p12 v0 cv0 av0 eo0 dl0 nc0] @20
exists /ce => stat [c14 m14 p14 v0 cv0 av0 eo0 dl0 nc0] @20
create 1 0 /ce/child => create /ce/child @21
create 1 1 /c/eph => create /c/eph @22
exists /c => stat [c12 m12 p22 v0 cv1 av0 eo0 dl0 nc1] @22
multi create 21 5 /mt 100; create 1 0 /mt/x => multi [create2 /mt, create /mt/x] @23
multi create 1 0 /ok; create 1 5 /mt2 => MarshallingError @24
get /ok => NoNode @24
multi create 1 5 /mt2; create 1 0 /ok2 => MarshallingError @25
multi create 21 0 /m0 100; create 21 4 /m4 100 => multi [create /m0, create2 /m4] @26
exists /m0 => stat [c26 m26 p26 v0 cv0 av0 eo0 dl0 nc0] @26
exists /m4 => stat [c26 m26 p26 v0 cv0 av0 eo0 dl0 nc0] @26
multi delete /zz -1; create 1 5 /mt3 => multi [NoNode, RuntimeInconsistency] @27
multi create 1 9 /m9 => multi [BadArguments] @28
multi create 15 1 /meph; create 1 0 /meph/x => multi [Ok, NoChildrenForEphemerals] @29
multi => multi [] @30
multi check /c 0; check /c 5 => multi [Ok, BadVersion] @31
multi set /c x 0; set /c y 0 => multi [Ok, BadVersion] @32
multi set /c x 0; set /c y 1 => multi [set v1, set v2] @33
get /c => data "y" [c12 m33 p22 v2 cv1 av0 eo0 dl1 nc1] @33
multi delete /c/eph 0; delete /c 0 => multi [Ok, BadVersion] @34
exists /c => stat [c12 m33 p22 v2 cv1 av0 eo0 dl1 nc1] @34
create 1 2 /c/ => create /c/0000000001 @35
create 15 0 /seq => create2 /seq [c36 m36 p36 v0 cv0 av0 eo0 dl0 nc0] @36
create 1 2 /seq/ => create /seq/0000000000 @37
create 1 2 /seq/ => create /seq/0000000001 @38
delete /seq/0000000000 -1 => ok @39
create 1 2 /seq/x => create /seq/x0000000002 @40
set /seq data 0 => stat [c36 m41 p40 v1 cv4 av0 eo0 dl4 nc2] @41
set /seq data 0 => BadVersion @42
set /seq - 1 => stat [c36 m43 p40 v2 cv4 av0 eo0 dl0 nc2] @43
get /seq => data null [c36 m43 p40 v2 cv4 av0 eo0 dl0 nc2] @43
"#;
}
