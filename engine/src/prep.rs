//! Prep: turns a write request into a `Txn`, deciding every outcome up
//! front — validation, ACL checks, versions, the sequential suffix, the node
//! kind — against the tree plus the changes already prepped but not yet
//! applied (DESIGN.md invariant 4). It is the reference's
//! PrepRequestProcessor: checks run in its order so the error a client sees
//! is the reference's.
//!
//! It is not apply (it never touches the tree) and not the session tracker
//! (liveness is the caller's); it does refuse an ephemeral create for a
//! session that is not live or is being closed, so no ephemeral can outlive
//! its session's closeSession txn.
//!
//! Invariant: after `prep` returns txn `z`, every later prep sees the tree
//! as it will be once `z` is applied: the pending overlay holds the newest
//! prepped state of every path touched by a txn not yet applied, and
//! `applied(z)` drops exactly the entries the tree now reflects. A failed
//! write (or failed multi) consumes a zxid and leaves the overlay unchanged.
//! Prep runs under the tree's read lock, so its work is linear in the
//! request: a multi's own changes are a map, ACL lists are deduplicated
//! through a set, and `PrepLimits` caps ops per multi and entries per ACL.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::acl;
use crate::path::{self, parent_of};
use crate::request::{CreateRequest, MultiOp, Request};
use crate::tree::{DataTree, CONFIG, QUOTA, ROOT, ZOOKEEPER};
use crate::txn::{CreateTxn, NodeKind, Txn, TxnOp};
use crate::types::{perms, Acl, CreateMode, ErrorCode, Id, OpCode, SessionId, Zxid};

/// The largest TTL the reference accepts: it must fit in 40 bits of the
/// ephemeralOwner encoding.
pub const MAX_TTL_MS: i64 = (1 << 40) - 1;

#[derive(Clone, Copy, Debug, Default)]
pub struct PrepConfig {
    /// `zookeeper.extendedTypesEnabled`: allows TTL nodes.
    pub extended_types_enabled: bool,
}

/// `maxMultiOps`' default: ten times the reference's later
/// `multiRead.maxOps` (1000) and far above real transactions (tens of ops),
/// yet below the ~50k ops a 1 MiB frame can carry, so one multi's prep and
/// its apply under the tree's write lock stay bounded.
pub const DEFAULT_MAX_MULTI_OPS: usize = 10_000;
/// `maxAclEntries`' default: real ACLs have a handful of entries.
pub const DEFAULT_MAX_ACL_ENTRIES: usize = 1024;

/// Bounds on what one request may make prep do (ours; the reference has
/// none). Prep runs on the sequencer under the tree's read lock, where a
/// slow request stalls every reader and writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrepLimits {
    /// `maxMultiOps`: a multi of more ops fails as a whole, BadArguments.
    pub max_multi_ops: usize,
    /// `maxAclEntries`: a longer ACL list (given, or once `auth` expands)
    /// is InvalidACL.
    pub max_acl_entries: usize,
}

impl Default for PrepLimits {
    fn default() -> PrepLimits {
        PrepLimits {
            max_multi_ops: DEFAULT_MAX_MULTI_OPS,
            max_acl_entries: DEFAULT_MAX_ACL_ENTRIES,
        }
    }
}

/// What prep needs to know of a node: the reference's ChangeRecord minus
/// what no check reads.
#[derive(Clone, Debug)]
struct NodeState {
    version: i32,
    /// Persisted meaning: number of child creates.
    cversion: i32,
    aversion: i32,
    child_count: i32,
    kind: NodeKind,
    acl: Arc<[Acl]>,
    mtime: i64,
}

#[derive(Clone, Debug)]
struct Pending {
    /// The txn that produced this state; dropped once it is applied.
    zxid: Zxid,
    /// `None`: deleted.
    state: Option<NodeState>,
}

pub struct Prep {
    config: PrepConfig,
    limits: PrepLimits,
    last_zxid: Zxid,
    pending: HashMap<String, Pending>,
    /// Paths each pending txn touched, in zxid order.
    log: VecDeque<(Zxid, Vec<String>)>,
    /// Sessions created (true) or closed (false) by txns not yet applied.
    sessions: HashMap<SessionId, (Zxid, bool)>,
}

/// The tree as prep sees it while preparing one request: the tree, then the
/// pending overlay, then this request's own changes (so later ops of a
/// multi see earlier ones, and a failed multi leaves nothing behind).
struct View<'a> {
    tree: &'a DataTree,
    pending: &'a HashMap<String, Pending>,
    /// This request's changes: the newest state of each path it touched. A
    /// map, so a multi's n ops cost n lookups, not n² compares.
    scratch: HashMap<String, Option<NodeState>>,
    now_ms: i64,
    max_acl_entries: usize,
}

/// The root has two spellings in the reference ("" is an alias of "/");
/// pending entries always use "/".
fn key(path: &str) -> &str {
    if path.is_empty() {
        ROOT
    } else {
        path
    }
}

impl<'a> View<'a> {
    fn new(
        tree: &'a DataTree,
        pending: &'a HashMap<String, Pending>,
        now_ms: i64,
        limits: PrepLimits,
    ) -> View<'a> {
        View {
            tree,
            pending,
            scratch: HashMap::new(),
            now_ms,
            max_acl_entries: limits.max_acl_entries,
        }
    }

    fn get(&self, path: &str) -> Option<NodeState> {
        let path = key(path);
        if let Some(state) = self.scratch.get(path) {
            return state.clone();
        }
        if let Some(pending) = self.pending.get(path) {
            return pending.state.clone();
        }
        let node = self.tree.get(path)?;
        Some(NodeState {
            version: node.version(),
            cversion: node.cversion(),
            aversion: node.aversion(),
            child_count: i32::try_from(node.num_children()).unwrap_or(i32::MAX),
            kind: node.kind(),
            acl: node.acl_shared(),
            mtime: node.mtime(),
        })
    }

    fn record(&self, path: &str) -> Result<NodeState, ErrorCode> {
        self.get(path).ok_or(ErrorCode::NoNode)
    }

    /// Records `path`'s newest state, replacing any earlier one.
    fn set(&mut self, path: &str, state: Option<NodeState>) {
        self.scratch.insert(key(path).to_string(), state);
    }

    /// The reference's "delete" validation: a slash somewhere, no NUL, and
    /// not one of the four built-in nodes. Returns the parent path.
    fn parent_for_delete(path: &str) -> Result<&str, ErrorCode> {
        if !path.contains('/') || path.contains('\0') || is_special(path) {
            return Err(ErrorCode::BadArguments);
        }
        Ok(parent_of(path))
    }

    fn delete(&mut self, path: &str, version: i32, auth: &[Id]) -> Result<TxnOp, ErrorCode> {
        let parent_path = Self::parent_for_delete(path)?;
        let mut parent = self.record(parent_path)?;
        if !acl::check(&parent.acl, perms::DELETE, auth) {
            return Err(ErrorCode::NoAuth);
        }
        let node = self.record(path)?;
        check_version(node.version, version)?;
        if node.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        parent.child_count -= 1;
        self.set(parent_path, Some(parent));
        self.set(path, None);
        Ok(TxnOp::Delete {
            path: path.to_string(),
        })
    }

    fn set_data(
        &mut self,
        path: &str,
        data: &Option<Vec<u8>>,
        version: i32,
        auth: &[Id],
    ) -> Result<TxnOp, ErrorCode> {
        path::validate(path, false)?;
        let mut node = self.record(path)?;
        if !acl::check(&node.acl, perms::WRITE, auth) {
            return Err(ErrorCode::NoAuth);
        }
        let new_version = check_version(node.version, version)?;
        node.version = new_version;
        node.mtime = self.now_ms;
        self.set(path, Some(node));
        Ok(TxnOp::SetData {
            path: path.to_string(),
            data: data.clone(),
            version: new_version,
        })
    }

    fn set_acl(
        &mut self,
        path: &str,
        acl_list: &[Acl],
        version: i32,
        auth: &[Id],
    ) -> Result<TxnOp, ErrorCode> {
        path::validate(path, false)?;
        let fixed = acl::fixup(acl_list, auth, self.max_acl_entries)?;
        let mut node = self.record(path)?;
        if !acl::check(&node.acl, perms::ADMIN, auth) {
            return Err(ErrorCode::NoAuth);
        }
        let new_aversion = check_version(node.aversion, version)?;
        node.aversion = new_aversion;
        // Unlike the reference, later preps check against the new list.
        node.acl = Arc::from(fixed.as_slice());
        self.set(path, Some(node));
        Ok(TxnOp::SetAcl {
            path: path.to_string(),
            acl: fixed,
            aversion: new_aversion,
        })
    }

    fn check(&mut self, path: &str, version: i32, auth: &[Id]) -> Result<TxnOp, ErrorCode> {
        path::validate(path, false)?;
        let node = self.record(path)?;
        if !acl::check(&node.acl, perms::READ, auth) {
            return Err(ErrorCode::NoAuth);
        }
        check_version(node.version, version)?;
        Ok(TxnOp::Check {
            path: path.to_string(),
        })
    }

    /// A create whose effective opcode and kind are decided; runs the
    /// reference's checks from path validation on.
    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        op: OpCode,
        mode: CreateMode,
        kind: NodeKind,
        request: &CreateRequest,
        auth: &[Id],
    ) -> Result<TxnOp, ErrorCode> {
        let path = request.path.as_str();
        if !path.contains('/') || path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = parent_of(path);
        let fixed = acl::fixup(&request.acl, auth, self.max_acl_entries)?;
        let mut parent = self.record(parent_path)?;
        if !acl::check(&parent.acl, perms::CREATE, auth) {
            return Err(ErrorCode::NoAuth);
        }
        let final_path = if mode.is_sequential() {
            // `%010d` of the persisted cversion, as the reference (a
            // negative value keeps its sign: "-000000001").
            format!("{path}{:010}", parent.cversion)
        } else {
            path.to_string()
        };
        path::validate(&final_path, false)?;
        if self.get(&final_path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if parent.kind.is_ephemeral() {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let parent_cversion = parent.cversion.wrapping_add(1);
        parent.cversion = parent_cversion;
        parent.child_count += 1;
        self.set(parent_path, Some(parent));
        let acl_shared: Arc<[Acl]> = Arc::from(fixed.as_slice());
        self.set(
            &final_path,
            Some(NodeState {
                version: 0,
                cversion: 0,
                aversion: 0,
                child_count: 0,
                kind,
                acl: acl_shared,
                mtime: self.now_ms,
            }),
        );
        Ok(TxnOp::Create(CreateTxn {
            op,
            path: final_path,
            data: request.data.clone(),
            acl: fixed,
            kind,
            parent_cversion,
        }))
    }
}

fn is_special(path: &str) -> bool {
    matches!(path, ROOT | ZOOKEEPER | QUOTA | CONFIG)
}

/// `expected` -1 matches any version; returns the version after the write.
fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// How a multi's create op is treated: the reference rebuilds it from its
/// flags, so the wire opcode mostly does not matter inside a multi.
enum MultiCreate {
    Op(OpCode),
    /// A TTL mode under a non-TTL opcode: the reference fails the whole
    /// multi with MarshallingError.
    Marshalling,
}

fn multi_create_op(op: OpCode, flags: i32) -> MultiCreate {
    let ttl_flags = flags == CreateMode::PersistentWithTtl.flags()
        || flags == CreateMode::PersistentSequentialWithTtl.flags();
    if ttl_flags {
        return if op == OpCode::CreateTtl {
            MultiCreate::Op(OpCode::CreateTtl)
        } else {
            MultiCreate::Marshalling
        };
    }
    if flags == CreateMode::Container.flags() {
        MultiCreate::Op(OpCode::CreateContainer)
    } else {
        MultiCreate::Op(OpCode::Create)
    }
}

impl Prep {
    pub fn new(last_zxid: Zxid, config: PrepConfig) -> Prep {
        Prep {
            config,
            limits: PrepLimits::default(),
            last_zxid,
            pending: HashMap::new(),
            log: VecDeque::new(),
            sessions: HashMap::new(),
        }
    }

    /// Starts over after `last_zxid` with nothing pending: a new leader
    /// preps against its applied tree, in its new epoch.
    pub fn reset(&mut self, last_zxid: Zxid) {
        self.last_zxid = last_zxid;
        self.pending.clear();
        self.log.clear();
        self.sessions.clear();
    }

    /// The same prep, enforcing `limits` instead of the defaults.
    pub fn with_limits(self, limits: PrepLimits) -> Prep {
        Prep { limits, ..self }
    }

    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid
    }

    /// Number of paths with a pending (prepped, unapplied) change.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    fn next_zxid(&mut self) -> Zxid {
        self.last_zxid = self.last_zxid.next();
        self.last_zxid
    }

    fn txn(&mut self, session: SessionId, cxid: i32, now_ms: i64, op: TxnOp) -> Txn {
        let zxid = self.next_zxid();
        Txn {
            zxid,
            time_ms: now_ms,
            session,
            cxid,
            op,
        }
    }

    /// Makes a view's changes pending under `zxid`.
    fn commit(&mut self, zxid: Zxid, scratch: HashMap<String, Option<NodeState>>) {
        if scratch.is_empty() {
            return;
        }
        let mut paths = Vec::with_capacity(scratch.len());
        for (path, state) in scratch {
            self.pending.insert(path.clone(), Pending { zxid, state });
            paths.push(path);
        }
        self.log.push_back((zxid, paths));
    }

    fn session_live(&self, tree: &DataTree, session: SessionId) -> bool {
        match self.sessions.get(&session) {
            Some((_, live)) => *live,
            None => tree.session_timeout(session).is_some(),
        }
    }

    /// Validates `request` against tree + pending changes, assigns the next
    /// zxid and returns the txn. Failed writes still return a txn
    /// (`TxnOp::Error`, or a multi of error results): they consume a zxid
    /// (ZK-BEHAVIOURS 2). `Err(code)` means: answer `code` without consuming
    /// a zxid — a top-level `check` (ZK-BEHAVIOURS 21) or a request that is
    /// not a write.
    pub fn prep(
        &mut self,
        tree: &DataTree,
        session: SessionId,
        cxid: i32,
        auth: &[Id],
        request: &Request,
        now_ms: i64,
    ) -> Result<Txn, ErrorCode> {
        match request {
            Request::CloseSession => {
                return Ok(self.prep_close_session(tree, session, cxid, now_ms))
            }
            // The reference (3.8.0) crashes on a top-level check; we answer
            // without consuming a zxid.
            Request::Check { .. } => return Err(ErrorCode::Unimplemented),
            _ => {}
        }
        let mut view = View::new(tree, &self.pending, now_ms, self.limits);
        let result = match request {
            Request::Create { op, request } => {
                self.prep_create(&mut view, session, *op, request, auth)
            }
            Request::Delete { path, version } => view.delete(path, *version, auth),
            Request::SetData {
                path,
                data,
                version,
            } => view.set_data(path, data, *version, auth),
            Request::SetAcl { path, acl, version } => view.set_acl(path, acl, *version, auth),
            Request::Multi(ops) => Ok(self.prep_multi(&mut view, session, ops, auth)),
            _ => return Err(ErrorCode::Unimplemented),
        };
        let scratch = std::mem::take(&mut view.scratch);
        let op = match result {
            Ok(op) => op,
            Err(code) => TxnOp::Error(code),
        };
        let failed = match &op {
            TxnOp::Error(_) => true,
            TxnOp::Multi(ops) => ops.iter().any(TxnOp::is_error),
            _ => false,
        };
        let txn = self.txn(session, cxid, now_ms, op);
        if !failed {
            self.commit(txn.zxid, scratch);
        }
        Ok(txn)
    }

    /// The reference's create checks up to the point where the path is
    /// looked at: the mode, TTL rules and the session, for a top-level
    /// create whose opcode decides the node kind.
    fn prep_create(
        &self,
        view: &mut View,
        session: SessionId,
        op: OpCode,
        request: &CreateRequest,
        auth: &[Id],
    ) -> Result<TxnOp, ErrorCode> {
        let mode = CreateMode::from_flags(request.flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() && !self.config.extended_types_enabled {
            return Err(ErrorCode::Unimplemented);
        }
        let kind = match op {
            OpCode::CreateTtl => {
                // A TTL mode needs 0 < ttl <= 2^40-1; a non-TTL mode under
                // createTTL is refused (3.8.0 accepts it with ttl < 0 and
                // then falls over applying it: ZK-BEHAVIOURS 21).
                if !mode.is_ttl() || request.ttl <= 0 || request.ttl > MAX_TTL_MS {
                    return Err(ErrorCode::BadArguments);
                }
                NodeKind::Ttl(request.ttl)
            }
            // Opcodes without a TTL field: a TTL mode has ttl -1, invalid.
            _ if mode.is_ttl() => return Err(ErrorCode::BadArguments),
            // The opcode makes the container, whatever the mode says
            // (ZK-BEHAVIOURS 9).
            OpCode::CreateContainer => NodeKind::Container,
            OpCode::Create | OpCode::Create2 => {
                if mode.is_ephemeral() {
                    NodeKind::Ephemeral(session)
                } else {
                    // As in 3.8.0, a container mode under create/create2
                    // makes a plain persistent node.
                    NodeKind::Persistent
                }
            }
            _ => return Err(ErrorCode::Unimplemented),
        };
        if kind.is_ephemeral() && !self.session_live(view.tree, session) {
            return Err(ErrorCode::SessionExpired);
        }
        view.create(op, mode, kind, request, auth)
    }

    /// A create inside a multi: the reference rebuilds the op from its
    /// flags (container flags make a container, TTL flags need the createTTL
    /// opcode) and reports create2 as a plain create.
    fn prep_multi_create(
        &self,
        view: &mut View,
        session: SessionId,
        op: OpCode,
        request: &CreateRequest,
        auth: &[Id],
    ) -> Result<Result<TxnOp, ErrorCode>, ErrorCode> {
        match multi_create_op(op, request.flags) {
            MultiCreate::Marshalling => Err(ErrorCode::MarshallingError),
            MultiCreate::Op(effective) => {
                let mut request = request.clone();
                if effective != OpCode::CreateTtl {
                    request.ttl = -1;
                }
                Ok(self.prep_create(view, session, effective, &request, auth))
            }
        }
    }

    fn prep_multi(
        &self,
        view: &mut View,
        session: SessionId,
        ops: &[MultiOp],
        auth: &[Id],
    ) -> TxnOp {
        // A read inside a multi: the reference refuses the whole request
        // while decoding it, after taking a zxid (ZK-BEHAVIOURS 4).
        if ops
            .iter()
            .any(|op| matches!(op, MultiOp::GetChildren { .. } | MultiOp::GetData { .. }))
        {
            return TxnOp::Error(ErrorCode::MarshallingError);
        }
        // Ours (the reference has no cap): refused whole, as a read-only
        // multiRead over the cap is (engine::read::OVER_BUDGET).
        if ops.len() > self.limits.max_multi_ops {
            return TxnOp::Error(ErrorCode::BadArguments);
        }
        let mut results = Vec::with_capacity(ops.len());
        let mut failed_at = None;
        for (i, op) in ops.iter().enumerate() {
            let result = match op {
                MultiOp::Create { op, request } => {
                    match self.prep_multi_create(view, session, *op, request, auth) {
                        Ok(result) => result,
                        Err(code) => {
                            view.scratch.clear();
                            return TxnOp::Error(code);
                        }
                    }
                }
                MultiOp::Delete { path, version } => view.delete(path, *version, auth),
                MultiOp::SetData {
                    path,
                    data,
                    version,
                } => view.set_data(path, data, *version, auth),
                MultiOp::Check { path, version } => view.check(path, *version, auth),
                MultiOp::GetChildren { .. } | MultiOp::GetData { .. } => {
                    Err(ErrorCode::MarshallingError)
                }
            };
            match result {
                Ok(txn_op) => results.push(txn_op),
                Err(code) => {
                    failed_at = Some((i, code));
                    break;
                }
            }
        }
        let Some((failed, code)) = failed_at else {
            return TxnOp::Multi(results);
        };
        // ZK-BEHAVIOURS 3: ok before the failing op, its code, then
        // RuntimeInconsistency; nothing of the multi stays pending.
        view.scratch.clear();
        let results = (0..ops.len())
            .map(|i| {
                TxnOp::Error(match i.cmp(&failed) {
                    std::cmp::Ordering::Less => ErrorCode::Ok,
                    std::cmp::Ordering::Equal => code,
                    std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                })
            })
            .collect();
        TxnOp::Multi(results)
    }

    /// A write whose body the codec could not parse: the reference still
    /// turns it into an error txn, so it consumes a zxid (ZK-BEHAVIOURS 2).
    pub fn prep_error(
        &mut self,
        session: SessionId,
        cxid: i32,
        code: ErrorCode,
        now_ms: i64,
    ) -> Txn {
        self.txn(session, cxid, now_ms, TxnOp::Error(code))
    }

    /// A reconfig request: `decide` gets the zxid the txn will have (the
    /// version the new member list carries) and returns the list's text for
    /// `/zookeeper/config`, or why the request is refused (an error txn,
    /// consuming the zxid as the reference does).
    pub fn prep_reconfig(
        &mut self,
        session: SessionId,
        cxid: i32,
        now_ms: i64,
        decide: impl FnOnce(Zxid) -> Result<Vec<u8>, ErrorCode>,
    ) -> Txn {
        let op = match decide(self.last_zxid.next()) {
            Ok(data) => TxnOp::Reconfig { data },
            Err(code) => TxnOp::Error(code),
        };
        self.txn(session, cxid, now_ms, op)
    }

    pub fn prep_create_session(&mut self, session: SessionId, timeout_ms: i32, now_ms: i64) -> Txn {
        let txn = self.txn(session, 0, now_ms, TxnOp::CreateSession { timeout_ms });
        self.sessions.insert(session, (txn.zxid, true));
        txn
    }

    /// closeSession: the session's ephemerals — in the tree and in the
    /// pending overlay — become pending deletes, so a request prepped after
    /// this one sees them gone (and their parents one child lighter).
    pub fn prep_close_session(
        &mut self,
        tree: &DataTree,
        session: SessionId,
        cxid: i32,
        now_ms: i64,
    ) -> Txn {
        let mut doomed: Vec<String> = tree
            .ephemerals(session)
            .into_iter()
            .filter(|path| !self.pending.contains_key(path.as_str()))
            .collect();
        doomed.extend(
            self.pending
                .iter()
                .filter(|(_, p)| {
                    p.state
                        .as_ref()
                        .is_some_and(|s| s.kind == NodeKind::Ephemeral(session))
                })
                .map(|(path, _)| path.clone()),
        );
        doomed.sort();
        let mut view = View::new(tree, &self.pending, now_ms, self.limits);
        for path in &doomed {
            let parent_path = parent_of(path);
            if let Some(mut parent) = view.get(parent_path) {
                parent.child_count -= 1;
                view.set(parent_path, Some(parent));
            }
            view.set(path, None);
        }
        let scratch = std::mem::take(&mut view.scratch);
        let txn = self.txn(session, cxid, now_ms, TxnOp::CloseSession { paths: doomed });
        self.commit(txn.zxid, scratch);
        self.sessions.insert(session, (txn.zxid, false));
        txn
    }

    /// The reaper's delete of an empty container or an expired TTL node
    /// (the reference's deleteContainer, with no ACL check). Rechecked
    /// against pending changes: a node that gained a child, was refreshed
    /// by a setData, or was replaced by a node of another kind is left
    /// alone. `Err` means there is nothing to do (no zxid is consumed).
    pub fn prep_delete_container(
        &mut self,
        tree: &DataTree,
        path: &str,
        now_ms: i64,
    ) -> Result<Txn, ErrorCode> {
        let mut view = View::new(tree, &self.pending, now_ms, self.limits);
        let parent_path = View::parent_for_delete(path)?;
        let node = view.record(path)?;
        if node.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        match node.kind {
            NodeKind::Container => {}
            NodeKind::Ttl(ttl_ms) if now_ms.saturating_sub(node.mtime) > ttl_ms => {}
            _ => return Err(ErrorCode::BadVersion),
        }
        let mut parent = view.record(parent_path)?;
        parent.child_count -= 1;
        view.set(parent_path, Some(parent));
        view.set(path, None);
        let scratch = std::mem::take(&mut view.scratch);
        let txn = self.txn(
            SessionId(0),
            0,
            now_ms,
            TxnOp::DeleteContainer {
                path: path.to_string(),
            },
        );
        self.commit(txn.zxid, scratch);
        Ok(txn)
    }

    /// The applier has applied everything up to `zxid`: drop pending
    /// changes the tree now reflects. Call after the tree is updated.
    pub fn applied(&mut self, zxid: Zxid) {
        while let Some((txn_zxid, _)) = self.log.front() {
            if *txn_zxid > zxid {
                break;
            }
            let Some((_, paths)) = self.log.pop_front() else {
                break;
            };
            for path in paths {
                if self.pending.get(&path).is_some_and(|p| p.zxid <= zxid) {
                    self.pending.remove(&path);
                }
            }
        }
        self.sessions.retain(|_, (z, _)| *z > zxid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::sim::*;
    use crate::request::Request;

    #[track_caller]
    fn check(sim: &mut Sim, request: Request, expected: &str) {
        assert_eq!(sim.write(request), expected);
    }

    // ZK-BEHAVIOURS 1: the first sequential child of `/` is 0000000000.
    #[test]
    fn first_sequential_under_root() {
        let mut sim = Sim::new();
        assert_eq!(sim.stat("/"), "c0 m0 p0 v0 cv-1 av0 eo0 dl0 nc1");
        check(&mut sim, create("/", 2), "create /0000000000");
        assert_eq!(sim.stat("/"), "c0 m0 p2 v0 cv0 av0 eo0 dl0 nc2");
        check(&mut sim, create("/q-", 2), "create /q-0000000001");
        check(&mut sim, delete("/q-0000000001", -1), "ok");
        check(&mut sim, create("/q-", 2), "create /q-0000000002");
        assert_eq!(
            sim.stat("/"),
            "c0 m0 p5 v0 cv3 av0 eo0 dl0 nc3",
            "3 creates and a delete after -1"
        );
    }

    // ZK-BEHAVIOURS 2: failed writes consume a zxid, the session txns too.
    #[test]
    fn failed_writes_consume_zxids() {
        let mut sim = Sim::new();
        assert_eq!(sim.prep.last_zxid(), Zxid(1), "createSession");
        check(&mut sim, create("/a", 0), "create /a");
        check(&mut sim, create("/a", 0), "NodeExists");
        check(&mut sim, delete("/b", -1), "NoNode");
        check(&mut sim, set_data("/a", b"x", 7), "BadVersion");
        check(&mut sim, create("/a/", 0), "BadArguments");
        check(&mut sim, Request::Multi(vec![]), "multi []");
        assert_eq!(sim.prep.last_zxid(), Zxid(7));
        assert_eq!(sim.tree.last_zxid(), Zxid(7));
        assert_eq!(
            sim.stat("/a"),
            "c2 m2 p2 v0 cv0 av0 eo0 dl0 nc0",
            "failed ops changed nothing"
        );
        // A top-level check is answered without a zxid.
        check(
            &mut sim,
            Request::Check {
                path: "/a".into(),
                version: 0,
            },
            "refused Unimplemented",
        );
        assert_eq!(sim.prep.last_zxid(), Zxid(7));
    }

    // ZK-BEHAVIOURS 3 and 4.
    #[test]
    fn multi_results() {
        let mut sim = Sim::new();
        check(&mut sim, create("/a", 0), "create /a");
        check(
            &mut sim,
            Request::Multi(vec![
                m_create("/b", 0),
                m_check("/a", 0),
                m_set("/a", b"x", 0),
            ]),
            "multi [create /b, check, set v1]",
        );
        check(
            &mut sim,
            Request::Multi(vec![
                m_create("/c", 0),
                m_delete("/nope", -1),
                m_set("/a", b"y", -1),
            ]),
            "multi [Ok, NoNode, RuntimeInconsistency]",
        );
        assert_eq!(
            sim.read(get_data("/c", false)),
            "NoNode",
            "failed multi changed nothing"
        );
        assert_eq!(
            sim.read(get_data("/a", false)).split(' ').nth(1),
            Some("\"x\"")
        );
        // Later ops see earlier ones; a read inside is MarshallingError.
        check(
            &mut sim,
            Request::Multi(vec![
                m_create("/d", 0),
                m_create("/d/e", 0),
                m_delete("/d/e", 0),
            ]),
            "multi [create /d, create /d/e, delete]",
        );
        let zxid = sim.prep.last_zxid();
        check(
            &mut sim,
            Request::Multi(vec![
                m_create("/f", 0),
                MultiOp::GetData { path: "/a".into() },
            ]),
            "MarshallingError",
        );
        assert_eq!(sim.prep.last_zxid(), zxid.next(), "consumes a zxid");
        assert_eq!(sim.read(get_data("/f", false)), "NoNode");
    }

    #[test]
    fn multi_create_opcodes_follow_flags() {
        let mut sim = Sim::new();
        let container = MultiOp::Create {
            op: OpCode::Create,
            request: create_req("/c", None, 4),
        };
        let create2 = MultiOp::Create {
            op: OpCode::Create2,
            request: create_req("/p", None, 0),
        };
        let mut ttl = create_req("/t", None, 5);
        ttl.ttl = 100;
        let ttl_op = MultiOp::Create {
            op: OpCode::CreateTtl,
            request: ttl.clone(),
        };
        check(
            &mut sim,
            Request::Multi(vec![container, create2, ttl_op]),
            "multi [create2 /c, create /p, create2 /t]",
        );
        assert_eq!(
            sim.tree.get("/c").map(|n| n.kind()),
            Some(NodeKind::Container)
        );
        assert_eq!(
            sim.tree.get("/t").map(|n| n.kind()),
            Some(NodeKind::Ttl(100))
        );
        // A TTL mode under a non-TTL opcode fails the whole multi.
        let bad = MultiOp::Create {
            op: OpCode::Create,
            request: ttl,
        };
        check(
            &mut sim,
            Request::Multi(vec![m_create("/x", 0), bad]),
            "MarshallingError",
        );
    }

    // ZK-BEHAVIOURS 5 and 6.
    #[test]
    fn create_path_rules() {
        let mut sim = Sim::new();
        check(&mut sim, create("/a", 0), "create /a");
        check(&mut sim, create("/a/./b", 0), "NoNode");
        check(&mut sim, create("//a", 0), "BadArguments");
        check(&mut sim, create("/a\0b", 0), "BadArguments");
        check(&mut sim, create("a", 0), "BadArguments");
        check(&mut sim, create("", 0), "BadArguments");
        check(&mut sim, create("/a/", 0), "BadArguments");
        check(&mut sim, create("/a/", 2), "create /a/0000000000");
        check(&mut sim, create("/", 0), "NodeExists");
        check(&mut sim, create("/x/y", 0), "NoNode");
        check(&mut sim, create("/a/\u{1}", 0), "BadArguments");
        check(&mut sim, create("/a/.", 0), "BadArguments");
    }

    // ZK-BEHAVIOURS 7.
    #[test]
    fn zookeeper_subtree_rules() {
        let mut sim = Sim::new();
        check(&mut sim, create("/zookeeper/x", 0), "create /zookeeper/x");
        check(
            &mut sim,
            create("/zookeeper/quota/x", 0),
            "create /zookeeper/quota/x",
        );
        assert!(sim.write(set_data("/", b"r", -1)).starts_with("stat"));
        assert!(sim
            .write(set_data("/zookeeper", b"z", -1))
            .starts_with("stat"));
        check(&mut sim, delete("/", -1), "BadArguments");
        check(&mut sim, delete("/zookeeper", -1), "BadArguments");
        check(&mut sim, delete("/zookeeper/quota", -1), "BadArguments");
        check(&mut sim, delete("/zookeeper/config", -1), "BadArguments");
        check(&mut sim, set_data("/zookeeper/config", b"c", -1), "NoAuth");
        check(&mut sim, create("/zookeeper/config/x", 0), "NoAuth");
        check(&mut sim, delete("/zookeeper/x", -1), "ok");
    }

    // ZK-BEHAVIOURS 8 and the reference's error precedence.
    #[test]
    fn acl_rules_and_precedence() {
        let mut sim = Sim::new();
        let mut request = create_req("/a", None, 0);
        request.acl = vec![];
        check(
            &mut sim,
            create_with(OpCode::Create, request.clone()),
            "InvalidAcl",
        );
        request.acl = vec![Acl {
            perms: perms::ALL,
            id: Id::new("auth", ""),
        }];
        check(
            &mut sim,
            create_with(OpCode::Create, request.clone()),
            "InvalidAcl",
        );
        // Authenticated: `auth` becomes the session's digest id.
        let user = Id::new("digest", &acl::digest_id("u:p"));
        sim.auth.push(user.clone());
        check(
            &mut sim,
            create_with(OpCode::Create, request.clone()),
            "create /a",
        );
        assert_eq!(
            sim.read(Request::GetAcl { path: "/a".into() }),
            format!("acl digest:{}:31", user.id)
        );
        // Without the identity: writes are refused, getACL is too (no READ/ADMIN).
        sim.auth.pop();
        check(&mut sim, set_data("/a", b"x", -1), "NoAuth");
        check(&mut sim, create("/a/b", 0), "NoAuth");
        assert_eq!(sim.read(get_data("/a", false)), "NoAuth");
        // InvalidACL is checked before the parent's existence, NoAuth after.
        let mut orphan = create_req("/none/x", None, 0);
        orphan.acl = vec![Acl {
            perms: 1,
            id: Id::new("world", "nobody"),
        }];
        check(&mut sim, create_with(OpCode::Create, orphan), "InvalidAcl");
        check(&mut sim, create("/a/x/y", 0), "NoNode");
        // delete: parent's DELETE permission before the node's existence.
        request.path = "/b".into();
        request.acl = vec![Acl {
            perms: perms::READ,
            id: Id::new("world", "anyone"),
        }];
        check(
            &mut sim,
            create_with(OpCode::Create, request.clone()),
            "create /b",
        );
        check(&mut sim, delete("/b/missing", -1), "NoAuth");
        check(&mut sim, delete("/b", 5), "BadVersion");
        // Superuser bypasses everything.
        sim.auth.push(Id::new("super", ""));
        check(
            &mut sim,
            set_data("/a", b"x", -1),
            "stat [c4 m12 p4 v1 cv0 av0 eo0 dl1 nc0]",
        );
    }

    #[test]
    fn acl_duplicates_and_odd_perms_are_kept_as_given() {
        let mut sim = Sim::new();
        let mut request = create_req("/a", None, 0);
        let odd = Acl {
            perms: 99,
            id: Id::new("world", "anyone"),
        };
        request.acl = vec![
            odd.clone(),
            odd.clone(),
            Acl {
                perms: 0,
                id: Id::new("ip", "10.0.0.0/8"),
            },
        ];
        check(&mut sim, create_with(OpCode::Create, request), "create /a");
        assert_eq!(
            sim.read(Request::GetAcl { path: "/a".into() }),
            "acl world:anyone:99,ip:10.0.0.0/8:0"
        );
        let set_acl = |acl: Vec<Acl>, version| Request::SetAcl {
            path: "/a".into(),
            acl,
            version,
        };
        // 99 has no ADMIN bit: ACL is checked before the version.
        check(&mut sim, set_acl(Acl::read_unsafe(), 1), "NoAuth");
        sim.auth.push(Id::new("super", ""));
        check(&mut sim, set_acl(Acl::read_unsafe(), 1), "BadVersion");
        check(&mut sim, set_acl(vec![], 0), "InvalidAcl");
        assert!(sim.write(set_acl(Acl::read_unsafe(), 0)).contains("av1"));
        sim.auth.pop();
        check(&mut sim, set_acl(Acl::open_unsafe(), -1), "NoAuth");
    }

    // ZK-BEHAVIOURS 9 and 21.
    #[test]
    fn ttl_and_container_rules() {
        let mut sim = Sim::new();
        let ttl_req = |path: &str, flags: i32, ttl: i64| {
            let mut request = create_req(path, None, flags);
            request.ttl = ttl;
            create_with(OpCode::CreateTtl, request)
        };
        check(&mut sim, ttl_req("/t", 5, 0), "BadArguments");
        check(&mut sim, ttl_req("/t", 5, MAX_TTL_MS + 1), "BadArguments");
        check(&mut sim, ttl_req("/t", 0, -1), "BadArguments");
        check(&mut sim, ttl_req("/t", 0, 100), "BadArguments");
        check(&mut sim, ttl_req("/t", 9, 100), "BadArguments");
        check(&mut sim, create("/t", 5), "BadArguments");
        let created = sim.write(ttl_req("/t", 6, MAX_TTL_MS));
        assert!(created.starts_with("create2 /t0000000000 ["), "{created}");
        assert!(
            created.contains("eo0 "),
            "TTL nodes report owner 0: {created}"
        );
        let container = create_with(OpCode::CreateContainer, create_req("/c", None, 0));
        let created = sim.write(container);
        assert!(
            created.starts_with("create2 /c [") && created.contains("eo0 "),
            "{created}"
        );
        assert_eq!(
            sim.tree.get("/c").map(|n| n.kind()),
            Some(NodeKind::Container)
        );
        // A container mode under plain create makes a persistent node (3.8.0).
        check(&mut sim, create("/p", 4), "create /p");
        assert_eq!(
            sim.tree.get("/p").map(|n| n.kind()),
            Some(NodeKind::Persistent)
        );

        let mut off = Sim::with_config(PrepConfig {
            extended_types_enabled: false,
        });
        check(&mut off, ttl_req("/t", 5, 100), "Unimplemented");
        check(&mut off, create("/t", 5), "Unimplemented");
        check(&mut off, ttl_req("/t", 0, 100), "BadArguments");
    }

    // ZK-BEHAVIOURS 10.
    #[test]
    fn null_data_stays_null() {
        let mut sim = Sim::new();
        check(
            &mut sim,
            create_with(OpCode::Create, create_req("/n", None, 0)),
            "create /n",
        );
        assert_eq!(
            sim.read(get_data("/n", false)),
            "data null [c2 m2 p2 v0 cv0 av0 eo0 dl0 nc0]"
        );
        check(&mut sim, create("/e", 0), "create /e");
        assert!(sim.read(get_data("/e", false)).starts_with("data \"\""));
    }

    #[test]
    fn ephemerals_cannot_have_children() {
        let mut sim = Sim::new();
        check(&mut sim, create("/e", 1), "create /e");
        check(&mut sim, create("/e/x", 0), "NoChildrenForEphemerals");
        check(&mut sim, create("/e/x", 2), "NoChildrenForEphemerals");
        assert_eq!(
            sim.stat("/e"),
            format!("c2 m2 p2 v0 cv0 av0 eo{} dl0 nc0", 0x100)
        );
    }

    // DESIGN.md invariant 4: prep sees pending changes.
    #[test]
    fn pending_changes_are_seen() {
        let mut sim = Sim::new();
        let first = sim.prep(create("/a", 0)).unwrap();
        let second = sim.prep(create("/a", 0)).unwrap();
        assert_eq!(second.op, TxnOp::Error(ErrorCode::NodeExists));
        let child = sim.prep(create("/a/b", 0)).unwrap();
        let seq1 = sim.prep(create("/a/s", 2)).unwrap();
        let seq2 = sim.prep(create("/a/s", 2)).unwrap();
        let set1 = sim.prep(set_data("/a", b"1", 0)).unwrap();
        let set2 = sim.prep(set_data("/a", b"2", 1)).unwrap();
        let stale = sim.prep(set_data("/a", b"3", 1)).unwrap();
        let not_empty = sim.prep(delete("/a", -1)).unwrap();
        assert_eq!(stale.op, TxnOp::Error(ErrorCode::BadVersion));
        assert_eq!(not_empty.op, TxnOp::Error(ErrorCode::NotEmpty));
        let replies: Vec<String> = [
            first, second, child, seq1, seq2, set1, set2, stale, not_empty,
        ]
        .into_iter()
        .map(|txn| render(&sim.apply(txn)))
        .collect();
        assert_eq!(
            replies,
            [
                "create /a",
                "NodeExists",
                "create /a/b",
                "create /a/s0000000001",
                "create /a/s0000000002",
                "stat [c2 m7 p6 v1 cv3 av0 eo0 dl1 nc3]",
                "stat [c2 m8 p6 v2 cv3 av0 eo0 dl1 nc3]",
                "BadVersion",
                "NotEmpty",
            ]
        );
        assert_eq!(sim.prep.pending_count(), 0, "everything applied");
    }

    #[test]
    fn close_session_is_seen_by_later_preps() {
        let mut sim = Sim::new();
        check(&mut sim, create("/p", 0), "create /p");
        check(&mut sim, create("/p/e1", 1), "create /p/e1");
        let pending_ephemeral = sim.prep(create("/p/e2", 1)).unwrap();
        let close = sim.prep.prep_close_session(&sim.tree, sim.session, 9, 5000);
        let under = sim.prep(create("/p/e2/x", 0)).unwrap();
        assert_eq!(under.op, TxnOp::Error(ErrorCode::NoNode));
        let resurrect = sim.prep(create("/p/e3", 1)).unwrap();
        assert_eq!(
            resurrect.op,
            TxnOp::Error(ErrorCode::SessionExpired),
            "no ephemeral outlives its session"
        );
        let delete_parent = sim.prep(delete("/p", -1)).unwrap();
        assert_eq!(
            delete_parent.op,
            TxnOp::Delete { path: "/p".into() },
            "parent is empty once closed"
        );
        for txn in [pending_ephemeral, close, under, resurrect, delete_parent] {
            sim.apply(txn);
        }
        assert!(!sim.tree.contains("/p"));
        assert_eq!(sim.tree.ephemeral_count(), 0);
        assert_eq!(sim.tree.session_count(), 0);
    }

    #[test]
    fn failed_multi_leaves_nothing_pending() {
        let mut sim = Sim::new();
        let failed = sim
            .prep(Request::Multi(vec![
                m_create("/a", 0),
                m_create("/a/b", 0),
                m_delete("/zz", -1),
            ]))
            .unwrap();
        let later = sim.prep(create("/a", 2)).unwrap();
        assert_eq!(
            sim.prep.pending_count(),
            2,
            "only the later create's root and node"
        );
        assert_eq!(render(&sim.apply(failed)), "multi [Ok, Ok, NoNode]");
        assert_eq!(render(&sim.apply(later)), "create /a0000000000");
    }

    /// A session whose prep enforces `max_multi_ops` and `max_acl_entries`.
    fn limited(max_multi_ops: usize, max_acl_entries: usize) -> Sim {
        let mut sim = Sim::new();
        let config = PrepConfig {
            extended_types_enabled: true,
        };
        sim.prep = Prep::new(sim.prep.last_zxid(), config).with_limits(PrepLimits {
            max_multi_ops,
            max_acl_entries,
        });
        sim
    }

    fn ip_acl(count: usize) -> Vec<Acl> {
        (0..count)
            .map(|i| Acl {
                perms: perms::ALL,
                id: Id::new("ip", &format!("10.0.0.{i}")),
            })
            .collect()
    }

    // Review 1.5: a multi of more ops than the cap fails as a whole,
    // consuming a zxid like every failed write (ZK-BEHAVIOURS 2).
    #[test]
    fn multi_over_the_op_cap_is_refused() {
        let mut sim = limited(3, 8);
        let creates =
            |names: &[&str]| Request::Multi(names.iter().map(|n| m_create(n, 0)).collect());
        check(
            &mut sim,
            creates(&["/a", "/b", "/c"]),
            "multi [create /a, create /b, create /c]",
        );
        let zxid = sim.prep.last_zxid();
        check(&mut sim, creates(&["/d", "/e", "/f", "/g"]), "BadArguments");
        assert_eq!(sim.prep.last_zxid(), zxid.next());
        assert_eq!(sim.read(get_data("/d", false)), "NoNode");
        assert_eq!(sim.prep.pending_count(), 0);
    }

    // Review 1.5: the ACL cap holds for create, create in a multi and setACL.
    #[test]
    fn acl_cap_applies_to_every_acl_list() {
        let mut sim = limited(10, 2);
        let mut request = create_req("/a", None, 0);
        request.acl = ip_acl(3);
        check(
            &mut sim,
            create_with(OpCode::Create, request.clone()),
            "InvalidAcl",
        );
        let multi = Request::Multi(vec![MultiOp::Create {
            op: OpCode::Create,
            request: request.clone(),
        }]);
        check(&mut sim, multi, "multi [InvalidAcl]");
        request.acl = ip_acl(2);
        check(&mut sim, create_with(OpCode::Create, request), "create /a");
        sim.auth.push(Id::new("super", ""));
        let set_acl = |acl: Vec<Acl>| Request::SetAcl {
            path: "/a".into(),
            acl,
            version: -1,
        };
        check(&mut sim, set_acl(ip_acl(3)), "InvalidAcl");
        assert!(sim.write(set_acl(ip_acl(1))).contains("av1"));
    }

    // The scratch keeps one state per path, the newest: later ops of the
    // multi and later preps see it.
    #[test]
    fn scratch_keeps_the_newest_state_per_path() {
        let mut sim = Sim::new();
        check(
            &mut sim,
            Request::Multi(vec![
                m_create("/x", 0),
                m_set("/x", b"1", 0),
                m_delete("/x", 1),
                m_create("/x", 0),
                m_set("/x", b"2", 0),
            ]),
            "multi [create /x, set v1, delete, create /x, set v1]",
        );
        let pending = sim.prep(set_data("/x", b"3", 1)).unwrap();
        assert!(
            matches!(pending.op, TxnOp::SetData { version: 2, .. }),
            "{pending:?}"
        );
        let stale = sim.prep(set_data("/x", b"4", 1)).unwrap();
        assert_eq!(stale.op, TxnOp::Error(ErrorCode::BadVersion));
        sim.apply(pending);
        sim.apply(stale);
        assert_eq!(sim.stat("/x").split(' ').nth(3), Some("v2"));
    }

    // Review 1.5: a multi of many creates looks its paths up in a map, not
    // by scanning every earlier op (19k creates did O(n^2) compares under
    // the tree's read lock).
    #[test]
    fn big_multi_preps_through_a_map() {
        let mut sim = limited(50_000, 8);
        let view = View::new(&sim.tree, &sim.prep.pending, 0, sim.prep.limits);
        let _scratch_is_a_map: &HashMap<String, Option<NodeState>> = &view.scratch;
        let ops: Vec<MultiOp> = (0..20_000)
            .map(|i| m_create(&format!("/n{i:05}"), 0))
            .collect();
        let txn = sim.prep(Request::Multi(ops)).unwrap();
        let reply = sim.apply(txn);
        assert_eq!(reply.err, ErrorCode::Ok);
        assert!(matches!(&reply.body, crate::request::Response::Multi(r) if r.len() == 20_000));
        assert!(sim.tree.contains("/n19999"));
        assert_eq!(sim.prep.pending_count(), 0);
    }

    #[test]
    fn delete_container_rechecks() {
        let mut sim = Sim::new();
        let container = create_with(OpCode::CreateContainer, create_req("/c", None, 0));
        sim.write(container);
        let mut ttl = create_req("/t", None, 5);
        ttl.ttl = 50;
        sim.write(create_with(OpCode::CreateTtl, ttl));
        check(&mut sim, create("/p", 0), "create /p");
        check(&mut sim, create("/c/x", 0), "create /c/x");
        let now = sim.now_ms;
        assert_eq!(
            sim.prep.prep_delete_container(&sim.tree, "/c", now).err(),
            Some(ErrorCode::NotEmpty)
        );
        check(&mut sim, delete("/c/x", -1), "ok");
        assert_eq!(sim.tree.reap_candidates(now), vec!["/c".to_string()]);
        assert_eq!(
            sim.prep.prep_delete_container(&sim.tree, "/p", now).err(),
            Some(ErrorCode::BadVersion)
        );
        assert_eq!(
            sim.prep.prep_delete_container(&sim.tree, "/t", now).err(),
            Some(ErrorCode::BadVersion)
        );
        let txn = sim
            .prep
            .prep_delete_container(&sim.tree, "/c", now)
            .unwrap();
        assert_eq!(
            sim.prep.prep_delete_container(&sim.tree, "/c", now).err(),
            Some(ErrorCode::NoNode)
        );
        assert_eq!(render(&sim.apply(txn)), "ok");
        let later = now + 100;
        assert_eq!(sim.tree.reap_candidates(later), vec!["/t".to_string()]);
        let txn = sim
            .prep
            .prep_delete_container(&sim.tree, "/t", later)
            .unwrap();
        sim.apply(txn);
        assert!(!sim.tree.contains("/t") && !sim.tree.contains("/c"));
        assert_eq!(
            sim.prep.prep_delete_container(&sim.tree, "/", later).err(),
            Some(ErrorCode::BadArguments)
        );
    }
}
