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

/// Answers a read. `SetWatches` must go through `set_watches`, which can
/// return the events to deliver at once; here it answers Unimplemented, as
/// do writes and setAuth (the caller routes those elsewhere).
pub fn read(tree: &DataTree, ctx: &ReadContext, request: &Request) -> Reply {
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
    }
    match read_inner(tree, ctx, request) {
        Ok(body) => Reply::ok(body),
        Err(code) => Reply::error(code),
    }
}

fn read_inner(
    tree: &DataTree,
    ctx: &ReadContext,
    request: &Request,
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
            Ok(Response::Stat(node.stat()))
        }
        Request::GetData { path, watch } => {
            let (data, stat) = get_data(tree, ctx, path, *watch)?;
            Ok(Response::GetData { data, stat })
        }
        Request::GetAcl { path } => {
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            let node_acl = node.acl();
            if !acl::check(node_acl, perms::READ | perms::ADMIN, ctx.auth) {
                return Err(ErrorCode::NoAuth);
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
            let (children, _) = get_children(tree, ctx, path, *watch)?;
            Ok(Response::GetChildren { children })
        }
        Request::GetChildren2 { path, watch } => {
            let (children, stat) = get_children(tree, ctx, path, *watch)?;
            Ok(Response::GetChildren2 { children, stat })
        }
        Request::Sync { path } => Ok(Response::Sync { path: path.clone() }),
        Request::Ping => Ok(Response::Empty),
        Request::MultiRead(ops) => multi_read(tree, ctx, ops),
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
            Ok(Response::GetEphemerals { paths })
        }
        Request::GetAllChildrenNumber { path } => {
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            if !acl::check(node.acl(), perms::READ, ctx.auth) {
                return Err(ErrorCode::NoAuth);
            }
            let total = all_children_number(tree, path);
            Ok(Response::GetAllChildrenNumber {
                total: i32::try_from(total).unwrap_or(i32::MAX),
            })
        }
        Request::WhoAmI => {
            let ids = ctx
                .auth
                .iter()
                .map(|id| ClientInfo {
                    auth_scheme: id.scheme.clone(),
                    user: acl::user_name(id),
                })
                .collect();
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
        | Request::CloseSession => Err(ErrorCode::Unimplemented),
    }
}

fn get_data(
    tree: &DataTree,
    ctx: &ReadContext,
    path: &str,
    watch: bool,
) -> Result<(Option<Vec<u8>>, crate::types::Stat), ErrorCode> {
    let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
    if !acl::check(node.acl(), perms::READ, ctx.auth) {
        return Err(ErrorCode::NoAuth);
    }
    if watch {
        ctx.watches.add_data(path, ctx.watcher);
    }
    Ok((node.data().map(<[u8]>::to_vec), node.stat()))
}

fn get_children(
    tree: &DataTree,
    ctx: &ReadContext,
    path: &str,
    watch: bool,
) -> Result<(Vec<String>, crate::types::Stat), ErrorCode> {
    let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
    if !acl::check(node.acl(), perms::READ, ctx.auth) {
        return Err(ErrorCode::NoAuth);
    }
    let children = node.children().map(str::to_string).collect();
    if watch {
        ctx.watches.add_child(path, ctx.watcher);
    }
    Ok((children, node.stat()))
}

/// multiRead: a write inside refuses the whole request (MarshallingError,
/// ZK-BEHAVIOURS 4); otherwise each op answers on its own, errors included.
/// No watches are set.
fn multi_read(tree: &DataTree, ctx: &ReadContext, ops: &[MultiOp]) -> Result<Response, ErrorCode> {
    let all_reads = ops
        .iter()
        .all(|op| matches!(op, MultiOp::GetChildren { .. } | MultiOp::GetData { .. }));
    if !all_reads {
        return Err(ErrorCode::MarshallingError);
    }
    let results = ops
        .iter()
        .map(|op| {
            let result = match op {
                MultiOp::GetChildren { path } => get_children(tree, ctx, path, false)
                    .map(|(children, _)| MultiResult::GetChildren { children }),
                MultiOp::GetData { path } => get_data(tree, ctx, path, false)
                    .map(|(data, stat)| MultiResult::GetData { data, stat }),
                _ => Err(ErrorCode::MarshallingError),
            };
            result.unwrap_or_else(MultiResult::Error)
        })
        .collect();
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
