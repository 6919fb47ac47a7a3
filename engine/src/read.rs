//! Reads, answered on the I/O thread under the tree's read lock: exists,
//! getData, getACL, getChildren(2), multiRead, getEphemerals,
//! getAllChildrenNumber, the watch requests (checkWatches, removeWatches,
//! addWatch, setWatches) and whoAmI. As in the reference, reads do not
//! validate paths (ZK-BEHAVIOURS 5), watches are registered only where the
//! reference registers them, and ACL READ is checked by getData,
//! getChildren, getAllChildrenNumber and getACL (READ or ADMIN) only.
//!
//! It never changes the tree; the only state it touches is the watch
//! registry. Writes, sync ordering and setAuth belong to the caller.
//!
//! Invariant: a read copies at most `ReadLimits::max_response_bytes` out of
//! the tree. Each reply's encoded size is charged piece by piece before the
//! piece is copied, and a read that passes the budget (or a multiRead of
//! more than `max_multi_ops` ops) is answered BadArguments, so the work one
//! request does under the read lock is bounded by the budget, not by what
//! it asks for.

use crate::acl;
use crate::path::join;
use crate::request::{ClientInfo, MultiOp, MultiResult, Reply, Request, Response};
use crate::tree::DataTree;
use crate::types::{
    perms, AddWatchMode, ErrorCode, EventType, Id, KeeperState, SessionId, WatcherEvent, WatcherId,
};
use crate::watch::WatchRegistry;

pub struct ReadContext<'a> {
    pub session: SessionId,
    /// The connection's identities (its `ip` id first, then setAuth ids).
    pub auth: &'a [Id],
    /// Where watches set by this read are registered.
    pub watcher: WatcherId,
    pub watches: &'a WatchRegistry,
}

/// What one read may cost. Every reply is built against a budget: the
/// running total of the bytes it will encode to (reply header included) is
/// checked as each piece is added, before that piece is copied out of the
/// tree, so a small request cannot make the server copy gigabytes under the
/// read lock (review 1.4: ~65k `getData` of a 1 MB node fit in one 1 MiB
/// multiRead frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// `maxResponseBytes` (ours): the largest reply frame body a read may
    /// produce.
    pub max_response_bytes: usize,
    /// `maxMultiOps` (ours): the most ops one multiRead may carry.
    pub max_multi_ops: usize,
}

/// 16 times the default `jute.maxbuffer`. Clients refuse frames of their
/// own `jute.maxbuffer` or more (the Java client's default is 0xfffff), so
/// a larger reply reaches only clients configured for it; it stays well
/// under the 64 MiB of unsent output after which a connection is closed,
/// and bounds what one read can pin on an I/O thread.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// What a getData reply adds to the data it carries (header, length,
/// stat): a budget smaller than `jute.maxbuffer` plus this could refuse to
/// read back a node that was accepted.
pub const GET_DATA_OVERHEAD_BYTES: usize = REPLY_HEADER_BYTES + LEN_BYTES + STAT_BYTES;

impl Default for ReadLimits {
    fn default() -> ReadLimits {
        ReadLimits {
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_multi_ops: crate::prep::DEFAULT_MAX_MULTI_OPS,
        }
    }
}

/// The refusal of a read whose reply would pass the budget, or a multiRead
/// with too many ops. Apache ZooKeeper 3.8 has no such bound (an oversized
/// reply reaches the client, whose `jute.maxbuffer` check then drops the
/// connection: a retry loop, never an answer). The reference's later
/// `multiRead.maxOps` / `multiRead.maxResponseBytes` guards answer
/// BadArguments, so we do too, for every read: like them it is not
/// retryable, unlike ConnectionLoss.
pub const OVER_BUDGET: ErrorCode = ErrorCode::BadArguments;

// Wire sizes of the pieces of a reply, as net::proto encodes them.
/// ReplyHeader: xid, zxid, err.
const REPLY_HEADER_BYTES: usize = 16;
/// A jute length or count, and an int.
const LEN_BYTES: usize = 4;
const STAT_BYTES: usize = 68;
/// MultiHeader: type, done, err (each result, and the end marker).
const MULTI_HEADER_BYTES: usize = 9;

/// The bytes a reply may still grow by.
struct Budget {
    left: usize,
    /// Set by the first charge that did not fit: from then on the read is
    /// refused, whatever error code carried the failure up.
    exceeded: bool,
}

impl Budget {
    fn new(limits: &ReadLimits) -> Budget {
        Budget {
            left: limits.max_response_bytes,
            exceeded: false,
        }
    }

    /// Takes `bytes` from the budget, or refuses the read.
    fn charge(&mut self, bytes: usize) -> Result<(), ErrorCode> {
        match self.left.checked_sub(bytes) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => {
                self.exceeded = true;
                Err(OVER_BUDGET)
            }
        }
    }

    /// A jute `ustring` / `buffer`.
    fn charge_string(&mut self, text: &str) -> Result<(), ErrorCode> {
        self.charge(LEN_BYTES.saturating_add(text.len()))
    }

    fn charge_strings(&mut self, strings: &[String]) -> Result<(), ErrorCode> {
        self.charge(LEN_BYTES)?;
        strings.iter().try_for_each(|text| self.charge_string(text))
    }
}

/// Answers a read under the default limits (tests and tools).
pub fn read(tree: &DataTree, ctx: &ReadContext, request: &Request) -> Reply {
    read_bounded(tree, ctx, request, &ReadLimits::default())
}

/// Answers a read. `SetWatches` must go through `set_watches`, which can
/// return the events to deliver at once; here it answers Unimplemented, as
/// do writes and setAuth (the caller routes those elsewhere). A reply that
/// would pass `limits.max_response_bytes`, or a multiRead of more than
/// `limits.max_multi_ops` ops, is answered `OVER_BUDGET` instead, having
/// copied at most one budget's worth of data.
pub fn read_bounded(
    tree: &DataTree,
    ctx: &ReadContext,
    request: &Request,
    limits: &ReadLimits,
) -> Reply {
    if let Request::MultiRead(ops) = request {
        let is_read =
            |op: &MultiOp| matches!(op, MultiOp::GetChildren { .. } | MultiOp::GetData { .. });
        if let Some(position) = ops.iter().position(|op| !is_read(op)) {
            // Observed on 3.8.0: the refusal carries an empty result list
            // when the write comes first, and no body after a read.
            let body = if position == 0 {
                Response::Multi(Vec::new())
            } else {
                Response::Empty
            };
            return Reply {
                err: ErrorCode::MarshallingError,
                body,
            };
        }
        if ops.len() > limits.max_multi_ops {
            return Reply::error(OVER_BUDGET);
        }
    }
    let mut budget = Budget::new(limits);
    let answer = budget
        .charge(REPLY_HEADER_BYTES)
        .and_then(|()| read_inner(tree, ctx, request, &mut budget));
    match answer {
        Ok(body) => Reply::ok(body),
        Err(code) => Reply::error(code),
    }
}

/// A read's answer, its size charged to `budget` as it is built. Replies
/// of a fixed size (a stat, a count) are charged too, so the total is the
/// reply's size whatever the request.
fn read_inner(
    tree: &DataTree,
    ctx: &ReadContext,
    request: &Request,
    budget: &mut Budget,
) -> Result<Response, ErrorCode> {
    match request {
        Request::Exists { path, watch } => {
            if path.contains('\0') {
                return Err(ErrorCode::BadArguments);
            }
            // An exists watch is set whether or not the node exists.
            if *watch {
                ctx.watches.add_data(path, ctx.watcher);
            }
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            budget.charge(STAT_BYTES)?;
            Ok(Response::Stat(node.stat()))
        }
        Request::GetData { path, watch } => {
            let (data, stat) = get_data(tree, ctx, path, *watch, budget)?;
            Ok(Response::GetData { data, stat })
        }
        Request::GetAcl { path } => {
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            let node_acl = node.acl();
            if !acl::check(node_acl, perms::READ | perms::ADMIN, ctx.auth) {
                return Err(ErrorCode::NoAuth);
            }
            // Redaction only shortens ids, so the stored list's size bounds
            // the reply's.
            budget.charge(LEN_BYTES + STAT_BYTES)?;
            for entry in node_acl {
                budget.charge(LEN_BYTES)?;
                budget.charge_string(&entry.id.scheme)?;
                budget.charge_string(&entry.id.id)?;
            }
            let acl = if acl::check(node_acl, perms::ADMIN, ctx.auth) {
                node_acl.to_vec()
            } else {
                acl::redact(node_acl)
            };
            Ok(Response::GetAcl {
                acl,
                stat: node.stat(),
            })
        }
        Request::GetChildren { path, watch } => {
            let (children, _) = get_children(tree, ctx, path, *watch, budget)?;
            Ok(Response::GetChildren { children })
        }
        Request::GetChildren2 { path, watch } => {
            budget.charge(STAT_BYTES)?;
            let (children, stat) = get_children(tree, ctx, path, *watch, budget)?;
            Ok(Response::GetChildren2 { children, stat })
        }
        Request::Sync { path } => {
            budget.charge_string(path)?;
            Ok(Response::Sync { path: path.clone() })
        }
        Request::Ping => Ok(Response::Empty),
        Request::MultiRead(ops) => multi_read(tree, ctx, ops, budget),
        Request::CheckWatches { path, watcher_type } => {
            if ctx.watches.contains(path, ctx.watcher, *watcher_type) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        Request::RemoveWatches { path, watcher_type } => {
            if ctx.watches.remove(path, ctx.watcher, *watcher_type) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        Request::AddWatch { path, mode } => {
            // 3.8.0 checks neither existence nor ACL here.
            let recursive = *mode == AddWatchMode::PersistentRecursive;
            budget.charge(LEN_BYTES)?;
            ctx.watches.add_persistent(path, ctx.watcher, recursive);
            Ok(Response::AddWatch)
        }
        Request::GetEphemerals { prefix } => {
            let all = tree.ephemerals(ctx.session);
            let trimmed = prefix.trim();
            let paths = if trimmed.is_empty() || trimmed == "/" {
                all
            } else {
                all.into_iter()
                    .filter(|p| p.starts_with(prefix.as_str()))
                    .collect()
            };
            // The tree hands the list over already built; the budget still
            // keeps it off the wire.
            budget.charge_strings(&paths)?;
            Ok(Response::GetEphemerals { paths })
        }
        Request::GetAllChildrenNumber { path } => {
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            if !acl::check(node.acl(), perms::READ, ctx.auth) {
                return Err(ErrorCode::NoAuth);
            }
            let total = all_children_number(tree, path);
            budget.charge(LEN_BYTES)?;
            Ok(Response::GetAllChildrenNumber {
                total: i32::try_from(total).unwrap_or(i32::MAX),
            })
        }
        Request::WhoAmI => {
            // A connection's identity list grows with every setAuth.
            budget.charge(LEN_BYTES)?;
            let mut ids = Vec::with_capacity(ctx.auth.len());
            for id in ctx.auth {
                let user = acl::user_name(id);
                budget.charge_string(&id.scheme)?;
                budget.charge_string(&user)?;
                ids.push(ClientInfo {
                    auth_scheme: id.scheme.clone(),
                    user,
                });
            }
            Ok(Response::WhoAmI { ids })
        }
        Request::SetWatches { .. }
        | Request::SetAuth { .. }
        | Request::Sasl { .. }
        | Request::Create { .. }
        | Request::Delete { .. }
        | Request::SetData { .. }
        | Request::SetAcl { .. }
        | Request::Check { .. }
        | Request::Multi(_)
        | Request::CloseSession
        | Request::Reconfig { .. } => Err(ErrorCode::Unimplemented),
    }
}

/// getData's data and stat; the budget is charged before the data is
/// copied.
fn get_data(
    tree: &DataTree,
    ctx: &ReadContext,
    path: &str,
    watch: bool,
    budget: &mut Budget,
) -> Result<(Option<Vec<u8>>, crate::types::Stat), ErrorCode> {
    let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
    if !acl::check(node.acl(), perms::READ, ctx.auth) {
        return Err(ErrorCode::NoAuth);
    }
    let data_bytes = node.data().map_or(0, <[u8]>::len);
    budget.charge(
        LEN_BYTES
            .saturating_add(data_bytes)
            .saturating_add(STAT_BYTES),
    )?;
    if watch {
        ctx.watches.add_data(path, ctx.watcher);
    }
    Ok((node.data().map(<[u8]>::to_vec), node.stat()))
}

/// getChildren's names (the stat is the caller's to charge); each name is
/// charged before it is copied, so a node with millions of children costs
/// at most one budget.
fn get_children(
    tree: &DataTree,
    ctx: &ReadContext,
    path: &str,
    watch: bool,
    budget: &mut Budget,
) -> Result<(Vec<String>, crate::types::Stat), ErrorCode> {
    let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
    if !acl::check(node.acl(), perms::READ, ctx.auth) {
        return Err(ErrorCode::NoAuth);
    }
    budget.charge(LEN_BYTES)?;
    let mut children = Vec::new();
    for child in node.children() {
        budget.charge_string(child)?;
        children.push(child.to_string());
    }
    if watch {
        ctx.watches.add_child(path, ctx.watcher);
    }
    Ok((children, node.stat()))
}

/// multiRead: a write inside refuses the whole request (MarshallingError,
/// ZK-BEHAVIOURS 4); otherwise each op answers on its own, errors included.
/// No watches are set. Passing the budget refuses the whole request: no
/// op's result is worth more than the others'.
fn multi_read(
    tree: &DataTree,
    ctx: &ReadContext,
    ops: &[MultiOp],
    budget: &mut Budget,
) -> Result<Response, ErrorCode> {
    let all_reads = ops
        .iter()
        .all(|op| matches!(op, MultiOp::GetChildren { .. } | MultiOp::GetData { .. }));
    if !all_reads {
        return Err(ErrorCode::MarshallingError);
    }
    // The end marker.
    budget.charge(MULTI_HEADER_BYTES)?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        budget.charge(MULTI_HEADER_BYTES)?;
        let result = match op {
            MultiOp::GetChildren { path } => get_children(tree, ctx, path, false, budget)
                .map(|(children, _)| MultiResult::GetChildren { children }),
            MultiOp::GetData { path } => get_data(tree, ctx, path, false, budget)
                .map(|(data, stat)| MultiResult::GetData { data, stat }),
            _ => Err(ErrorCode::MarshallingError),
        };
        let result = match result {
            Ok(result) => result,
            Err(_) if budget.exceeded => return Err(OVER_BUDGET),
            Err(code) => {
                // An error result is an ErrorResponse: one int.
                budget.charge(LEN_BYTES)?;
                MultiResult::Error(code)
            }
        };
        results.push(result);
    }
    Ok(Response::Multi(results))
}

/// Descendants of `path` (not counting it). The reference counts map keys
/// under `path + "/"`; for `/` it leaves out the root, and for its alias ""
/// every key, the root's included.
fn all_children_number(tree: &DataTree, path: &str) -> usize {
    if path.is_empty() {
        return tree.node_count();
    }
    let mut count = 0;
    let mut stack = vec![path.to_string()];
    while let Some(current) = stack.pop() {
        let Some(node) = tree.get(&current) else {
            continue;
        };
        for child in node.children() {
            count += 1;
            stack.push(join(&current, child));
        }
    }
    count
}

/// setWatches / setWatches2 after a reconnect: each watch either fires at
/// once, because the node changed since `relative_zxid` (the last zxid the
/// client saw), or is registered. Data watch: deleted → NodeDeleted, mzxid
/// newer → NodeDataChanged. Exist watch: exists now → NodeCreated. Child
/// watch: deleted → NodeDeleted, pzxid newer → NodeChildrenChanged.
/// Persistent and recursive watches are registered. Returns the events to
/// send now (before the reply), in list order.
#[allow(clippy::too_many_arguments)]
pub fn set_watches(
    tree: &DataTree,
    ctx: &ReadContext,
    relative_zxid: i64,
    data: &[String],
    exist: &[String],
    child: &[String],
    persistent: &[String],
    persistent_recursive: &[String],
) -> Vec<WatcherEvent> {
    let mut events = Vec::new();
    let mut fire = |event_type: EventType, path: &str| {
        events.push(WatcherEvent {
            event_type,
            state: KeeperState::SyncConnected,
            path: path.to_string(),
        });
    };
    for path in data {
        match tree.get(path) {
            None => fire(EventType::NodeDeleted, path),
            Some(node) if node.mzxid() > relative_zxid => fire(EventType::NodeDataChanged, path),
            Some(_) => ctx.watches.add_data(path, ctx.watcher),
        }
    }
    for path in exist {
        match tree.get(path) {
            Some(_) => fire(EventType::NodeCreated, path),
            None => ctx.watches.add_data(path, ctx.watcher),
        }
    }
    for path in child {
        match tree.get(path) {
            None => fire(EventType::NodeDeleted, path),
            Some(node) if node.pzxid() > relative_zxid => {
                fire(EventType::NodeChildrenChanged, path)
            }
            Some(_) => ctx.watches.add_child(path, ctx.watcher),
        }
    }
    for path in persistent {
        ctx.watches.add_persistent(path, ctx.watcher, false);
    }
    for path in persistent_recursive {
        ctx.watches.add_persistent(path, ctx.watcher, true);
    }
    events
}

/// `set_watches` for a `Request::SetWatches`; None for any other request.
pub fn set_watches_request(
    tree: &DataTree,
    ctx: &ReadContext,
    request: &Request,
) -> Option<Vec<WatcherEvent>> {
    match request {
        Request::SetWatches {
            relative_zxid,
            data,
            exist,
            child,
            persistent,
            persistent_recursive,
        } => Some(set_watches(
            tree,
            ctx,
            *relative_zxid,
            data,
            exist,
            child,
            persistent,
            persistent_recursive,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::sim::*;
    use crate::request::Request;

    #[track_caller]
    fn check(sim: &mut Sim, request: Request, expected: &str) {
        assert_eq!(sim.read(request), expected);
    }

    #[test]
    fn who_am_i_lists_identities() {
        let mut sim = Sim::new();
        sim.auth.push(Id::new("digest", "u:hash"));
        sim.auth.push(Id::new("super", ""));
        let reply = sim.read(Request::WhoAmI);
        assert_eq!(
            reply,
            "WhoAmI { ids: [ClientInfo { auth_scheme: \"ip\", user: \"127.0.0.1\" }, \
             ClientInfo { auth_scheme: \"digest\", user: \"u\" }, \
             ClientInfo { auth_scheme: \"super\", user: \"\" }] }"
        );
    }

    #[test]
    fn all_children_number_counts_descendants() {
        let mut sim = Sim::new();
        for path in ["/a", "/a/b", "/a/b/c", "/a/d", "/e"] {
            sim.write(create(path, 0));
        }
        let count = |path: &str| Request::GetAllChildrenNumber {
            path: path.to_string(),
        };
        check(&mut sim, count("/a"), "total 3");
        check(&mut sim, count("/a/b/c"), "total 0");
        // The reference leaves the root out for "/" and counts it for "".
        check(&mut sim, count("/"), "total 8");
        check(&mut sim, count(""), "total 9");
        check(&mut sim, count("/a/"), "NoNode");
    }

    #[test]
    fn set_watches_goes_through_its_own_function() {
        let mut sim = Sim::new();
        let request = Request::SetWatches {
            relative_zxid: 0,
            data: vec!["/gone".into()],
            exist: vec!["/".into()],
            child: vec![],
            persistent: vec!["/p".into()],
            persistent_recursive: vec!["/r".into()],
        };
        check(&mut sim, request.clone(), "Unimplemented");
        let ctx = ReadContext {
            session: sim.session,
            auth: &sim.auth,
            watcher: WatcherId(7),
            watches: &sim.watches,
        };
        let events = set_watches_request(&sim.tree, &ctx, &request).expect("a setWatches");
        let events: Vec<String> = events
            .iter()
            .map(|e| format!("{:?}:{}", e.event_type, e.path))
            .collect();
        assert_eq!(events, ["NodeDeleted:/gone", "NodeCreated:/"]);
        assert!(sim
            .watches
            .contains("/p", WatcherId(7), crate::types::WatcherType::Children));
        assert!(sim
            .watches
            .contains("/r", WatcherId(7), crate::types::WatcherType::Data));
        assert!(set_watches_request(&sim.tree, &ctx, &Request::Ping).is_none());
    }

    #[test]
    fn get_acl_redacts_digests_without_admin() {
        let mut sim = Sim::new();
        let mut request = create_req("/s", None, 0);
        request.acl = vec![
            crate::types::Acl {
                perms: perms::READ,
                id: Id::new("world", "anyone"),
            },
            crate::types::Acl {
                perms: perms::ALL,
                id: Id::new("digest", "admin:secret"),
            },
        ];
        sim.write(create_with(crate::types::OpCode::Create, request));
        check(
            &mut sim,
            Request::GetAcl { path: "/s".into() },
            "acl world:anyone:1,digest:admin:x:31",
        );
        sim.auth.push(Id::new("digest", "admin:secret"));
        check(
            &mut sim,
            Request::GetAcl { path: "/s".into() },
            "acl world:anyone:1,digest:admin:secret:31",
        );
    }

    /// Counts the bytes the current thread allocates, so a test can tell a
    /// refused reply from one built and then thrown away.
    mod counting {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        pub struct Counting;

        thread_local! {
            static ALLOCATED: Cell<usize> = const { Cell::new(0) };
        }

        // SAFETY: every call is forwarded to the system allocator unchanged;
        // the counter is a const-initialised thread-local without a
        // destructor, so touching it never allocates.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                ALLOCATED.with(|a| a.set(a.get().saturating_add(layout.size())));
                System.alloc(layout)
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                System.dealloc(ptr, layout)
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                ALLOCATED.with(|a| a.set(a.get().saturating_add(new_size)));
                System.realloc(ptr, layout, new_size)
            }
        }

        #[global_allocator]
        static GLOBAL: Counting = Counting;

        /// Bytes allocated on this thread while `f` ran.
        pub fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
            let before = ALLOCATED.with(Cell::get);
            let value = f();
            (value, ALLOCATED.with(Cell::get) - before)
        }
    }

    fn limits(max_response_bytes: usize, max_multi_ops: usize) -> ReadLimits {
        ReadLimits {
            max_response_bytes,
            max_multi_ops,
        }
    }

    /// Renders `request` answered under `limits`.
    fn read_with(sim: &Sim, request: &Request, limits: &ReadLimits) -> String {
        let ctx = ReadContext {
            session: sim.session,
            auth: &sim.auth,
            watcher: WatcherId(1),
            watches: &sim.watches,
        };
        render(&read_bounded(&sim.tree, &ctx, request, limits))
    }

    fn sim_with_node(path: &str, data_bytes: usize) -> Sim {
        let mut sim = Sim::new();
        let request = create_req(path, Some(&vec![7u8; data_bytes]), 0);
        sim.write(create_with(crate::types::OpCode::Create, request));
        sim
    }

    fn multi_get_data(path: &str, ops: usize) -> Request {
        Request::MultiRead(
            (0..ops)
                .map(|_| MultiOp::GetData {
                    path: path.to_string(),
                })
                .collect(),
        )
    }

    // Review 1.4: one small multiRead of getData on a big node asks for a
    // reply far larger than its frame. It is refused once the running total
    // passes the budget, before the data is copied, not after.
    #[test]
    fn multi_read_past_the_budget_is_refused_before_it_is_built() {
        let sim = sim_with_node("/big", 64 * 1024);
        let request = multi_get_data("/big", 200);
        let (reply, allocated) =
            counting::allocated_by(|| read_with(&sim, &request, &limits(256 * 1024, 1000)));
        assert_eq!(reply, "BadArguments");
        assert!(
            allocated < 1024 * 1024,
            "{allocated} bytes allocated for a refused 12.8 MB reply"
        );
        // Within the budget the same request is answered.
        let reply = read_with(&sim, &multi_get_data("/big", 3), &limits(256 * 1024, 1000));
        assert!(reply.starts_with("multi [data"), "{reply}");
    }

    // The budget counts the bytes the reply encodes to, header included: a
    // getData of d bytes is 16 (header) + 4 + d + 68 (stat).
    #[test]
    fn budget_is_the_encoded_reply_size() {
        let sim = sim_with_node("/n", 1000);
        let request = Request::GetData {
            path: "/n".into(),
            watch: false,
        };
        assert!(read_with(&sim, &request, &limits(1088, 1)).starts_with("data"));
        assert_eq!(read_with(&sim, &request, &limits(1087, 1)), "BadArguments");
        // multiRead: 9-byte header per result, 9-byte end marker.
        let two = multi_get_data("/n", 2);
        let exact = 16 + 2 * (9 + 4 + 1000 + 68) + 9;
        assert!(read_with(&sim, &two, &limits(exact, 2)).starts_with("multi"));
        assert_eq!(read_with(&sim, &two, &limits(exact - 1, 2)), "BadArguments");
        // Errors inside a multiRead count too (9 + 4 each).
        let missing = multi_get_data("/missing", 100);
        assert_eq!(
            read_with(&sim, &missing, &limits(16 + 100 * 13 + 8, 100)),
            "BadArguments"
        );
        assert!(read_with(&sim, &missing, &limits(16 + 100 * 13 + 9, 100)).starts_with("multi"));
    }

    // getChildren of a node with many children has the same shape.
    #[test]
    fn get_children_past_the_budget_is_refused() {
        let mut sim = Sim::new();
        sim.write(create("/p", 0));
        for i in 0..100 {
            sim.write(create(&format!("/p/child-{i:04}"), 0));
        }
        // 16 header + 4 count + 100 * (4 + 10 name bytes).
        let exact = 16 + 4 + 100 * 14;
        let children = Request::GetChildren {
            path: "/p".into(),
            watch: true,
        };
        assert_eq!(
            read_with(&sim, &children, &limits(exact - 1, 10)),
            "BadArguments"
        );
        assert_eq!(sim.watches.count(), 0, "a refused read sets no watch");
        assert!(read_with(&sim, &children, &limits(exact, 10)).starts_with("children"));
        let children2 = Request::GetChildren2 {
            path: "/p".into(),
            watch: false,
        };
        assert_eq!(
            read_with(&sim, &children2, &limits(exact + 67, 10)),
            "BadArguments"
        );
        assert!(read_with(&sim, &children2, &limits(exact + 68, 10)).starts_with("children"));
        let multi = Request::MultiRead(vec![MultiOp::GetChildren { path: "/p".into() }; 3]);
        assert_eq!(
            read_with(&sim, &multi, &limits(3 * exact, 10)),
            "BadArguments"
        );
    }

    // The other replies whose size the client controls: getACL, whoAmI,
    // getEphemerals.
    #[test]
    fn other_variable_replies_are_bounded() {
        let mut sim = sim_with_node("/a", 0);
        for i in 0..50 {
            sim.write(create(&format!("/e{i:03}"), 1));
        }
        let ephemerals = Request::GetEphemerals { prefix: "/".into() };
        // 16 + 4 + 50 * (4 + 5).
        assert_eq!(
            read_with(&sim, &ephemerals, &limits(469, 1)),
            "BadArguments"
        );
        assert!(read_with(&sim, &ephemerals, &limits(470, 1)).starts_with("ephemerals"));
        for i in 0..20 {
            sim.auth
                .push(Id::new("digest", &format!("user{i:02}:hash")));
        }
        assert_eq!(
            read_with(&sim, &Request::WhoAmI, &limits(100, 1)),
            "BadArguments"
        );
        // world:anyone:31 = 4 + (4 + 5) + (4 + 6), with a stat.
        let acl = Request::GetAcl { path: "/a".into() };
        assert_eq!(
            read_with(&sim, &acl, &limits(16 + 4 + 23 + 67, 1)),
            "BadArguments"
        );
        assert!(read_with(&sim, &acl, &limits(16 + 4 + 23 + 68, 1)).starts_with("acl"));
    }

    // Review 1.5: the op count of a multiRead is capped too.
    #[test]
    fn multi_read_op_cap() {
        let sim = sim_with_node("/n", 0);
        let at_cap = multi_get_data("/n", 5);
        assert!(read_with(&sim, &at_cap, &limits(1 << 20, 5)).starts_with("multi"));
        let over = multi_get_data("/n", 6);
        assert_eq!(read_with(&sim, &over, &limits(1 << 20, 5)), "BadArguments");
    }

    #[test]
    fn writes_are_not_answered_here() {
        let mut sim = Sim::new();
        check(&mut sim, create("/a", 0), "Unimplemented");
        check(&mut sim, Request::CloseSession, "Unimplemented");
        check(
            &mut sim,
            Request::Sync { path: "/x".into() },
            "Sync { path: \"/x\" }",
        );
        check(
            &mut sim,
            Request::Exists {
                path: "/a\0".into(),
                watch: true,
            },
            "BadArguments",
        );
        assert_eq!(sim.watches.count(), 0, "no watch on a refused exists");
    }
}
