//! The memory-resident znode tree: every node's data, ACL, stat and kind, the
//! index of ephemerals by session, the container and TTL sets the reaper
//! scans, the session table, and an order-independent digest. It is plain
//! state: validation lives in prep, the meaning of a txn in apply, locking in
//! the caller (one writer, the applier; many readers).
//!
//! Layout, chosen for a small footprint at millions of znodes: one `HashMap`
//! from the full path (an `Arc<str>`) to a boxed node, so the table's slots,
//! of which it keeps up to twice as many as it has entries, are 24 bytes
//! rather than a whole node; each node holds its children in a set that is
//! only allocated once the node has a child, whose entries share the child's
//! path with the map's key (the set hashes them by their last component);
//! ACL lists are interned in a reference-counted table and nodes hold a `u32`
//! index (as the reference's ACL cache does). The stored stat is the
//! reference's persisted stat: its cversion counts creates, and clients see
//! `2 * cversion - numChildren`. Measured (`footprint` test, release): about
//! 360 bytes per znode of 100 data bytes at 1M znodes (465 with the nodes
//! inline and children's names allocated apart): the node's box and its
//! data, 112 bytes each with malloc's overhead, the path 48, the map's slots
//! about 50, the parent's set about 35. A slab of nodes indexed by a `u32`
//! hash table, with children as `u32` sets, is the known next step when
//! memory matters.
//!
//! Mutations are `pub(crate)` and belong to apply; `restore_*` rebuild a
//! tree from a snapshot, and `PreparedNode` is the part of restoring a node
//! that needs no tree, so that it can run on another thread. Creates,
//! deletes and setData report to `quota`, which keeps the quota stats nodes
//! current.
//!
//! Invariants (checked by `check_invariants` in tests): every node but `/`
//! has its parent in the map and its name in the parent's children; the
//! ephemeral, container and TTL indexes list exactly the nodes of that kind,
//! and the quota index exactly the paths with a quota stats node;
//! ACL reference counts equal the number of nodes using each list; `digest`
//! equals the wrapping sum of every node's hash.

use std::collections::{HashMap, HashSet};

/// The tree's maps hash with ahash: several times faster than SipHash on
/// short paths, and still keyed per process against collision floods.
type Map<K, V> = HashMap<K, V, ahash::RandomState>;
type Set<K> = HashSet<K, ahash::RandomState>;
use std::sync::Arc;

use crate::path::{name_of, parent_of};
use crate::quota::{self, QuotaIndex};
use crate::txn::NodeKind;
use crate::types::{Acl, ErrorCode, SessionId, Stat, Zxid};

/// The persisted part of a stat; `dataLength`, `numChildren` and the client's
/// view of `ephemeralOwner` are derived.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
struct NodeStat {
    czxid: i64,
    mzxid: i64,
    pzxid: i64,
    ctime: i64,
    mtime: i64,
    version: i32,
    /// Number of child creates (the reference's persisted meaning).
    cversion: i32,
    aversion: i32,
}

#[derive(Debug)]
struct Node {
    data: Option<Box<[u8]>>,
    acl: u32,
    stat: NodeStat,
    kind: NodeKind,
    /// `None` until the node gets a child: most znodes are leaves. Boxed so
    /// a leaf pays 8 bytes here rather than an empty set's 48.
    #[allow(clippy::box_collection)]
    children: Option<Box<Set<ChildName>>>,
}

/// A child in its parent's set of children: the child's path, shared with
/// the node map's key (one allocation per node, not two), standing for its
/// last component, by which the set hashes and compares it.
#[derive(Debug)]
struct ChildName(Arc<str>);

impl ChildName {
    fn name(&self) -> &str {
        name_of(&self.0)
    }
}

impl std::borrow::Borrow<str> for ChildName {
    fn borrow(&self) -> &str {
        self.name()
    }
}

// Hash and Eq agree with `str`'s on the name, as `Borrow<str>` requires.
impl std::hash::Hash for ChildName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl PartialEq for ChildName {
    fn eq(&self, other: &ChildName) -> bool {
        self.name() == other.name()
    }
}

impl Eq for ChildName {}

impl Node {
    fn num_children(&self) -> usize {
        self.children.as_ref().map_or(0, |c| c.len())
    }
}

/// Interned ACL lists with reference counts, so a million nodes sharing
/// `world:anyone` hold one list.
#[derive(Debug, Default)]
struct AclTable {
    lists: Vec<Option<(Arc<[Acl]>, u64)>>,
    index: Map<Arc<[Acl]>, u32>,
    free: Vec<u32>,
}

impl AclTable {
    fn intern(&mut self, acl: &[Acl]) -> u32 {
        if let Some(&slot) = self.index.get(acl) {
            if let Some(Some((_, refs))) = self.lists.get_mut(slot as usize) {
                *refs += 1;
            }
            return slot;
        }
        let list: Arc<[Acl]> = Arc::from(acl);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.lists[slot as usize] = Some((list.clone(), 1));
                slot
            }
            None => {
                let slot = u32::try_from(self.lists.len()).expect("more than 2^32 distinct ACLs");
                self.lists.push(Some((list.clone(), 1)));
                slot
            }
        };
        self.index.insert(list, slot);
        slot
    }

    fn release(&mut self, slot: u32) {
        let entry = self.lists.get_mut(slot as usize);
        let Some(entry) = entry else {
            debug_assert!(false, "release of unknown ACL slot {slot}");
            return;
        };
        let drop_it = match entry {
            Some((_, refs)) => {
                *refs -= 1;
                *refs == 0
            }
            None => {
                debug_assert!(false, "release of free ACL slot {slot}");
                false
            }
        };
        if drop_it {
            if let Some((list, _)) = entry.take() {
                self.index.remove(&list);
            }
            self.free.push(slot);
        }
    }

    fn get(&self, slot: u32) -> &[Acl] {
        match self.lists.get(slot as usize) {
            Some(Some((list, _))) => list,
            _ => &[],
        }
    }

    fn get_shared(&self, slot: u32) -> Arc<[Acl]> {
        match self.lists.get(slot as usize) {
            Some(Some((list, _))) => list.clone(),
            _ => Arc::from(Vec::new()),
        }
    }
}

/// A read-only view of one znode.
#[derive(Clone, Copy)]
pub struct NodeRef<'a> {
    tree: &'a DataTree,
    path: &'a str,
    node: &'a Node,
}

impl<'a> NodeRef<'a> {
    pub fn path(&self) -> &'a str {
        self.path
    }
    /// `None` for null data (ZK-BEHAVIOURS 10), which is not the same as empty.
    pub fn data(&self) -> Option<&'a [u8]> {
        self.node.data.as_deref()
    }
    pub fn acl(&self) -> &'a [Acl] {
        self.tree.acls.get(self.node.acl)
    }
    /// The interned ACL list itself, shared rather than copied.
    pub fn acl_shared(&self) -> Arc<[Acl]> {
        self.tree.acls.get_shared(self.node.acl)
    }
    pub fn kind(&self) -> NodeKind {
        self.node.kind
    }
    pub fn num_children(&self) -> usize {
        self.node.num_children()
    }
    /// Child names (not paths), in no particular order.
    pub fn children(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.node
            .children
            .iter()
            .flat_map(|c| c.iter())
            .map(ChildName::name)
    }
    /// The children's full paths, shared with the tree rather than copied,
    /// in no particular order.
    pub fn child_paths(&self) -> impl Iterator<Item = Arc<str>> + 'a {
        self.node
            .children
            .iter()
            .flat_map(|c| c.iter())
            .map(|child| Arc::clone(&child.0))
    }
    pub fn czxid(&self) -> i64 {
        self.node.stat.czxid
    }
    pub fn mzxid(&self) -> i64 {
        self.node.stat.mzxid
    }
    pub fn pzxid(&self) -> i64 {
        self.node.stat.pzxid
    }
    pub fn mtime(&self) -> i64 {
        self.node.stat.mtime
    }
    pub fn version(&self) -> i32 {
        self.node.stat.version
    }
    pub fn aversion(&self) -> i32 {
        self.node.stat.aversion
    }
    /// The persisted cversion: the number of child creates. Sequential
    /// suffixes are taken from it.
    pub fn cversion(&self) -> i32 {
        self.node.stat.cversion
    }
    /// The stat as the reference keeps it internally: raw ephemeralOwner
    /// (containers and TTL nodes encoded) and the persisted cversion.
    pub fn stored_stat(&self) -> Stat {
        let s = &self.node.stat;
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: self.node.kind.ephemeral_owner(),
            data_length: data_length(self.node.data.as_deref()),
            num_children: clamp_i32(self.node.num_children()),
            pzxid: s.pzxid,
        }
    }
    /// The stat a client sees: ephemeralOwner 0 for containers and TTL nodes
    /// (ZK-BEHAVIOURS 9) and cversion counting creates and deletes
    /// (`2 * creates - live children`, hence -1 on a fresh `/`).
    pub fn stat(&self) -> Stat {
        let mut stat = self.stored_stat();
        stat.ephemeral_owner = self.node.kind.client_ephemeral_owner();
        stat.cversion = stat
            .cversion
            .wrapping_mul(2)
            .wrapping_sub(stat.num_children);
        stat
    }
}

/// A node as a snapshot recorded it, with its allocations made and its
/// digest hash computed: the part of restoring a node that needs no tree,
/// so a restore can do it on another thread than the one building the tree
/// (`DataTree::restore_prepared`).
pub struct PreparedNode {
    path: Arc<str>,
    /// The same path for the parent's children, cloned here: counting a
    /// reference is cheapest on the thread that made it.
    child: ChildName,
    /// Its ACL slot is set, and it is boxed, when it joins a tree: the
    /// thread that builds the tree writes it into memory of its own.
    node: Node,
    hash: u64,
    /// How many children to make room for if this is the parent's first.
    siblings: usize,
}

impl PreparedNode {
    /// `stat` is the stored form (`NodeRef::stored_stat`: persisted
    /// cversion); its ephemeralOwner, dataLength and numChildren are ignored
    /// in favour of `kind`, `data` and the tree.
    pub fn new(path: &str, data: Option<&[u8]>, kind: NodeKind, stat: &Stat) -> PreparedNode {
        let node = Node {
            data: data.map(Box::from),
            acl: 0,
            stat: NodeStat {
                czxid: stat.czxid,
                mzxid: stat.mzxid,
                pzxid: stat.pzxid,
                ctime: stat.ctime,
                mtime: stat.mtime,
                version: stat.version,
                cversion: stat.cversion,
                aversion: stat.aversion,
            },
            kind,
            children: None,
        };
        let hash = node_hash(path, &node);
        let path: Arc<str> = Arc::from(path);
        PreparedNode {
            child: ChildName(Arc::clone(&path)),
            path,
            node,
            hash,
            siblings: 0,
        }
    }

    /// Says the parent had `count` children when the snapshot recorded it:
    /// if this is the first to be restored, the parent's set of children is
    /// made that big at once rather than grown, rehashing, as they arrive.
    pub fn expect_siblings(&mut self, count: usize) {
        self.siblings = count;
    }
}

fn data_length(data: Option<&[u8]>) -> i32 {
    clamp_i32(data.map_or(0, |d| d.len()))
}

fn clamp_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Why a tree mutation did not happen. Apply treats these as replay
/// artefacts (tolerated) or divergence (fatal), never as client answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TreeError {
    NoNode,
    NodeExists,
    NotEmpty,
}

impl TreeError {
    pub fn code(self) -> ErrorCode {
        match self {
            TreeError::NoNode => ErrorCode::NoNode,
            TreeError::NodeExists => ErrorCode::NodeExists,
            TreeError::NotEmpty => ErrorCode::NotEmpty,
        }
    }
}

pub struct DataTree {
    /// Nodes are boxed: the map's slots, of which a hash table keeps up to
    /// twice as many as it has entries, then hold a pointer rather than a
    /// whole node.
    nodes: Map<Arc<str>, Box<Node>>,
    acls: AclTable,
    ephemerals: Map<SessionId, Set<Box<str>>>,
    containers: Set<Box<str>>,
    ttls: Set<Box<str>>,
    sessions: Map<SessionId, i32>,
    /// Paths with a quota (see `quota`). Derived from the nodes, rebuilt
    /// on restore.
    quotas: QuotaIndex,
    last_zxid: Zxid,
    data_size: u64,
    digest: u64,
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new()
    }
}

impl std::fmt::Debug for DataTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataTree")
            .field("nodes", &self.nodes.len())
            .field("last_zxid", &self.last_zxid)
            .field("digest", &self.digest)
            .finish()
    }
}

pub const ROOT: &str = "/";
pub const ZOOKEEPER: &str = "/zookeeper";
pub const QUOTA: &str = "/zookeeper/quota";
pub const CONFIG: &str = "/zookeeper/config";

impl DataTree {
    /// A fresh tree as the reference starts: `/`, `/zookeeper`,
    /// `/zookeeper/quota` and `/zookeeper/config`, every zxid and time 0,
    /// empty (not null) data, `world:anyone` ALL except `/zookeeper/config`,
    /// which is read-only with aversion -1 (ZK-BEHAVIOURS 1, 7).
    pub fn new() -> DataTree {
        let mut tree = DataTree {
            nodes: Map::default(),
            acls: AclTable::default(),
            ephemerals: Map::default(),
            containers: Set::default(),
            ttls: Set::default(),
            sessions: Map::default(),
            quotas: QuotaIndex::default(),
            last_zxid: Zxid::ZERO,
            data_size: 0,
            digest: 0,
        };
        let open = Acl::open_unsafe();
        let read = Acl::read_unsafe();
        tree.insert_unlinked(
            Arc::from(ROOT),
            Some(&[]),
            &open,
            NodeKind::Persistent,
            NodeStat::default(),
        );
        for (path, acl, aversion) in [
            (ZOOKEEPER, &open, 0),
            (QUOTA, &open, 0),
            (CONFIG, &read, -1),
        ] {
            let stat = NodeStat {
                aversion,
                ..NodeStat::default()
            };
            let path: Arc<str> = Arc::from(path);
            if let Some(parent) = tree.nodes.get_mut(parent_of(&path)) {
                DataTree::link(parent, ChildName(path.clone()), 0);
            }
            tree.insert_unlinked(path, Some(&[]), acl, NodeKind::Persistent, stat);
        }
        tree
    }

    /// Inserts a node whose parent already lists its name (or the root),
    /// without touching the parent's stat.
    fn insert_unlinked(
        &mut self,
        path: Arc<str>,
        data: Option<&[u8]>,
        acl: &[Acl],
        kind: NodeKind,
        stat: NodeStat,
    ) {
        let node = Box::new(Node {
            data: data.map(Box::from),
            acl: self.acls.intern(acl),
            stat,
            kind,
            children: None,
        });
        let hash = node_hash(&path, &node);
        self.add_node(path, node, hash);
    }

    /// The bookkeeping of a new node (`hash` is its `node_hash`) whose
    /// parent already lists it and whose ACL is interned.
    fn add_node(&mut self, path: Arc<str>, node: Box<Node>, hash: u64) {
        self.data_size += node_size(&path, node.data.as_deref());
        self.digest = self.digest.wrapping_add(hash);
        self.index_kind(&path, node.kind);
        self.quotas.node_added(&path);
        let replaced = self.nodes.insert(path, node);
        debug_assert!(replaced.is_none(), "a node inserted twice");
    }

    /// Adds a child to its parent's children. Returns false, changing
    /// nothing, when the parent already lists it (the node exists). A new
    /// set gets room for `capacity` children. Children are not part of a
    /// node's hash, so the digest is unaffected.
    fn link(parent: &mut Node, child: ChildName, capacity: usize) -> bool {
        match parent.children.as_mut() {
            Some(children) => children.insert(child),
            None => {
                let mut children = Set::with_capacity_and_hasher(capacity, Default::default());
                children.insert(child);
                parent.children = Some(Box::new(children));
                true
            }
        }
    }

    fn index_kind(&mut self, path: &str, kind: NodeKind) {
        match kind {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(session) => {
                self.ephemerals
                    .entry(session)
                    .or_default()
                    .insert(Box::from(path));
            }
            NodeKind::Container => {
                self.containers.insert(Box::from(path));
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(Box::from(path));
            }
        }
    }

    fn unindex_kind(&mut self, path: &str, kind: NodeKind) {
        match kind {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(session) => {
                if let Some(set) = self.ephemerals.get_mut(&session) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&session);
                    }
                }
            }
            NodeKind::Container => {
                self.containers.remove(path);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(path);
            }
        }
    }

    /// Runs `f` on the node at `path`, keeping the digest current. Returns
    /// false when there is no such node.
    fn with_node<F: FnOnce(&mut Node)>(&mut self, path: &str, f: F) -> bool {
        let Some(node) = self.nodes.get_mut(path) else {
            return false;
        };
        let before = node_hash(path, node);
        f(node);
        let after = node_hash(path, node);
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        true
    }

    // ---- reads ----

    /// The node at `path`. `""` is an alias of `/` (ZK-BEHAVIOURS 5); no
    /// other normalisation happens.
    pub fn get<'a>(&'a self, path: &'a str) -> Option<NodeRef<'a>> {
        let path = if path.is_empty() { ROOT } else { path };
        let (key, node) = self.nodes.get_key_value(path)?;
        Some(NodeRef {
            tree: self,
            path: key,
            node,
        })
    }

    pub fn contains(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// The client's view of the stat at `path`.
    pub fn stat_for_client(&self, path: &str) -> Option<Stat> {
        self.get(path).map(|n| n.stat())
    }

    /// The zxid of the last txn applied.
    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Sum over nodes of path length plus data length, as the reference
    /// counts it for `mntr`'s approximate data size.
    pub fn approximate_data_size(&self) -> u64 {
        self.data_size
    }

    /// The session's ephemeral paths, sorted.
    pub fn ephemerals(&self, session: SessionId) -> Vec<String> {
        let mut paths: Vec<String> = self
            .ephemerals
            .get(&session)
            .map(|set| set.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default();
        paths.sort();
        paths
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|s| s.len()).sum()
    }

    /// Sessions owning at least one ephemeral, sorted, for `dump`.
    pub fn sessions_with_ephemerals(&self) -> Vec<SessionId> {
        let mut sessions: Vec<SessionId> = self.ephemerals.keys().copied().collect();
        sessions.sort();
        sessions
    }

    /// Live sessions and their negotiated timeouts (in no particular order).
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, i32)> + '_ {
        self.sessions.iter().map(|(s, t)| (*s, *t))
    }

    pub fn session_timeout(&self, session: SessionId) -> Option<i32> {
        self.sessions.get(&session).copied()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Order-independent hash over every node's path, stored stat and data:
    /// equal trees give equal digests whatever order they were built in.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// What replicas compare to catch divergence: `digest` plus the ACL
    /// lists in use (each weighted by how many nodes use it) and the
    /// session table. O(ACL lists + sessions), not O(nodes): which node
    /// holds which list is covered only through its aversion in the stat.
    pub fn replica_digest(&self) -> u64 {
        let mut sum = self.digest;
        for (list, refs) in self.acls.lists.iter().flatten() {
            let mut bytes = Vec::new();
            for acl in list.iter() {
                bytes.extend_from_slice(&acl.perms.to_le_bytes());
                for part in [&acl.id.scheme, &acl.id.id] {
                    bytes.extend_from_slice(&(part.len() as u32).to_le_bytes());
                    bytes.extend_from_slice(part.as_bytes());
                }
            }
            let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
            sum = sum.wrapping_add(hash.wrapping_mul(*refs).rotate_left(17));
        }
        for (session, timeout_ms) in self.sessions() {
            let mut bytes = [0u8; 12];
            bytes[..8].copy_from_slice(&session.0.to_le_bytes());
            bytes[8..].copy_from_slice(&timeout_ms.to_le_bytes());
            sum = sum.wrapping_add(xxhash_rust::xxh3::xxh3_64(&bytes).rotate_left(29));
        }
        sum
    }

    /// Paths the reaper should try to delete: empty containers that have had
    /// a child (cversion > 0), and childless TTL nodes not modified for
    /// longer than their TTL. Sorted, so the reaper's order is stable.
    pub fn reap_candidates(&self, now_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for path in &self.containers {
            if let Some(node) = self.nodes.get(&**path) {
                if node.num_children() == 0 && node.stat.cversion > 0 {
                    out.push(path.to_string());
                }
            }
        }
        for path in &self.ttls {
            if let Some(node) = self.nodes.get(&**path) {
                if let NodeKind::Ttl(ttl_ms) = node.kind {
                    let elapsed = now_ms.saturating_sub(node.stat.mtime);
                    if node.num_children() == 0 && ttl_ms != 0 && elapsed > ttl_ms {
                        out.push(path.to_string());
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Every path in the tree, sorted (tests, `dump`-like tools).
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.nodes.keys().map(|p| p.to_string()).collect();
        paths.sort();
        paths
    }

    // ---- mutations (the applier's) ----

    pub(crate) fn set_last_zxid(&mut self, zxid: Zxid) {
        self.last_zxid = zxid;
    }

    pub(crate) fn add_session(&mut self, session: SessionId, timeout_ms: i32) {
        self.sessions.insert(session, timeout_ms);
    }

    pub(crate) fn remove_session(&mut self, session: SessionId) {
        self.sessions.remove(&session);
    }

    /// Creates a node. The parent's cversion becomes `parent_cversion` and
    /// its pzxid `zxid` only if that moves cversion forward, so replaying a
    /// create over a fuzzy snapshot never winds the parent back.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create_node(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        kind: NodeKind,
        parent_cversion: i32,
        zxid: Zxid,
        time_ms: i64,
    ) -> Result<(), TreeError> {
        if path == ROOT || !path.starts_with('/') {
            return Err(TreeError::NodeExists);
        }
        let parent = parent_of(path);
        let Some(parent_node) = self.nodes.get_mut(parent) else {
            return Err(TreeError::NoNode);
        };
        let name = name_of(path);
        if parent_node
            .children
            .as_ref()
            .is_some_and(|c| c.contains(name))
        {
            return Err(TreeError::NodeExists);
        }
        let key: Arc<str> = Arc::from(path);
        DataTree::link(parent_node, ChildName(key.clone()), 0);
        if parent_cversion > parent_node.stat.cversion {
            let before = node_hash(parent, parent_node);
            parent_node.stat.cversion = parent_cversion;
            parent_node.stat.pzxid = zxid.0;
            let after = node_hash(parent, parent_node);
            self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        }
        let stat = NodeStat {
            czxid: zxid.0,
            mzxid: zxid.0,
            pzxid: zxid.0,
            ctime: time_ms,
            mtime: time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
        };
        self.insert_unlinked(key, data, acl, kind, stat);
        quota::created(self, path, data);
        Ok(())
    }

    /// Deletes a childless node. The parent's pzxid moves forward to
    /// `zxid`, even when the node is already gone (a replay over a fuzzy
    /// snapshot), as in the reference; a delete does not change the
    /// parent's persisted cversion.
    pub(crate) fn delete_node(&mut self, path: &str, zxid: Zxid) -> Result<(), TreeError> {
        if path == ROOT {
            return Err(TreeError::NoNode);
        }
        let state = match self.nodes.get(path) {
            None => Err(TreeError::NoNode),
            // Never orphan children, whatever the log says (a replay may
            // meet a later incarnation of the node that has some).
            Some(node) if node.num_children() > 0 => Err(TreeError::NotEmpty),
            Some(_) => Ok(()),
        };
        let unlink = state.is_ok();
        let parent = parent_of(path);
        self.with_node(parent, |node| {
            if unlink {
                if let Some(children) = node.children.as_mut() {
                    children.remove(name_of(path));
                    if children.is_empty() {
                        node.children = None;
                    }
                }
            }
            if zxid.0 > node.stat.pzxid {
                node.stat.pzxid = zxid.0;
            }
        });
        state?;
        let Some(node) = self.nodes.remove(path) else {
            return Err(TreeError::NoNode);
        };
        self.digest = self.digest.wrapping_sub(node_hash(path, &node));
        self.data_size = self
            .data_size
            .saturating_sub(node_size(path, node.data.as_deref()));
        self.acls.release(node.acl);
        self.unindex_kind(path, node.kind);
        self.quotas.node_removed(path);
        quota::deleted(self, path, node.data.as_ref().map_or(0, |d| d.len()));
        Ok(())
    }

    /// A replayed create found its path taken, by this incarnation or a
    /// later one (a fuzzy snapshot, or a delete that could not run because
    /// the later incarnation has children). Resets the node to what the
    /// create made — content, kind, fresh stat — keeping its children: the
    /// txns after this one, replayed in turn, bring it forward again.
    pub(crate) fn recreate_node(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        kind: NodeKind,
        zxid: Zxid,
        time_ms: i64,
    ) {
        let stat = Stat {
            czxid: zxid.0,
            mzxid: zxid.0,
            ctime: time_ms,
            mtime: time_ms,
            pzxid: zxid.0,
            ..Stat::default()
        };
        // The node exists, so this cannot fail.
        let _ = self.restore_node(path, data, acl, kind, &stat);
    }

    /// A replayed create found its node already present: move the parent's
    /// cversion (and with it pzxid) forward as the create would have.
    pub(crate) fn advance_parent(&mut self, parent: &str, cversion: i32, zxid: Zxid) {
        self.with_node(parent, |node| {
            if cversion > node.stat.cversion {
                node.stat.cversion = cversion;
                node.stat.pzxid = zxid.0;
            }
        });
    }

    pub(crate) fn set_data(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        version: i32,
        zxid: Zxid,
        time_ms: i64,
    ) -> Result<(), TreeError> {
        let before = quota::before_set_data(self, path);
        let mut old_len = 0;
        let found = self.with_node(path, |node| {
            old_len = node.data.as_ref().map_or(0, |d| d.len());
            node.data = data.map(Box::from);
            node.stat.version = version;
            node.stat.mzxid = zxid.0;
            node.stat.mtime = time_ms;
        });
        if !found {
            return Err(TreeError::NoNode);
        }
        let new_len = data.map_or(0, |d| d.len());
        self.data_size = self.data_size.saturating_sub(old_len as u64) + new_len as u64;
        quota::data_set(self, path, before, old_len, new_len);
        Ok(())
    }

    /// Sets `/zookeeper/config` to a member's config file's member list, as
    /// the reference does at start-up: the `server.N` lines and `version=`,
    /// version -1, mtime the start time, zxids untouched. Each member sets
    /// its own, so while no txn has written the node (mzxid 0) its data,
    /// version and mtime are not in the digest (see `node_hash`). Once a
    /// reconfig txn has, the node is the ensemble's, and this leaves it be.
    pub fn set_static_config(&mut self, data: &[u8], time_ms: i64) {
        let Some(node) = self.nodes.get(CONFIG) else {
            return;
        };
        if node.stat.mzxid != 0 {
            return;
        }
        let old_len = node.data.as_ref().map_or(0, |d| d.len());
        self.with_node(CONFIG, |node| {
            node.data = Some(Box::from(data));
            node.stat.version = -1;
            node.stat.mtime = time_ms;
        });
        self.data_size = self.data_size.saturating_sub(old_len as u64) + data.len() as u64;
    }

    // ---- what quota accounting needs (`quota`) ----

    pub(crate) fn quota_index(&self) -> &QuotaIndex {
        &self.quotas
    }

    /// Replaces the data of the node at `path` in place: no version, mzxid
    /// or mtime change, as the reference rewrites a quota's stats node.
    /// Nothing happens if the node is absent or already holds `data`.
    pub(crate) fn rewrite_in_place(&mut self, path: &str, data: &[u8]) {
        let Some(node) = self.nodes.get(path) else {
            return;
        };
        let old_len = node.data.as_ref().map_or(0, |d| d.len());
        if node.data.as_deref() == Some(data) {
            return;
        }
        self.with_node(path, |node| node.data = Some(Box::from(data)));
        self.data_size = self.data_size.saturating_sub(old_len as u64) + data.len() as u64;
    }

    pub(crate) fn set_acl(
        &mut self,
        path: &str,
        acl: &[Acl],
        aversion: i32,
    ) -> Result<(), TreeError> {
        let Some(node) = self.nodes.get(path) else {
            return Err(TreeError::NoNode);
        };
        let old = node.acl;
        let new = self.acls.intern(acl);
        self.with_node(path, |node| {
            node.acl = new;
            node.stat.aversion = aversion;
        });
        self.acls.release(old);
        Ok(())
    }

    // ---- restoring (snapshot loading) ----

    /// Inserts a node as a snapshot recorded it, or overwrites the content
    /// (data, ACL, kind, stat; not children) of one already present, such as
    /// the built-in nodes. `stat` is the stored form (see
    /// `PreparedNode::new`). The parent must already be present: restore
    /// parents first.
    pub fn restore_node(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        kind: NodeKind,
        stat: &Stat,
    ) -> Result<(), TreeError> {
        self.restore_prepared(PreparedNode::new(path, data, kind, stat), acl)
    }

    /// `restore_node` for a node prepared beforehand, possibly on another
    /// thread.
    pub fn restore_prepared(
        &mut self,
        prepared: PreparedNode,
        acl: &[Acl],
    ) -> Result<(), TreeError> {
        let PreparedNode {
            path,
            child,
            mut node,
            hash,
            siblings,
        } = prepared;
        // The snapshot's child count is a hint from the file: no node can
        // have more children than there is room left for nodes.
        let siblings = siblings.min(self.nodes.capacity() - self.nodes.len());
        // The common case is a node not present yet: one lookup of the
        // parent checks that it exists and lists the new name (a parent
        // lists a name exactly when that node exists).
        if &*path != ROOT && path.starts_with('/') {
            let Some(parent) = self.nodes.get_mut(parent_of(&path)) else {
                return Err(TreeError::NoNode);
            };
            if DataTree::link(parent, child, siblings) {
                node.acl = self.acls.intern(acl);
                self.add_node(path, Box::new(node), hash);
                return Ok(());
            }
        }
        let Some(old) = self.nodes.get(&*path) else {
            return Err(TreeError::NoNode);
        };
        let (old_kind, old_acl, old_size) =
            (old.kind, old.acl, node_size(&path, old.data.as_deref()));
        let new_acl = self.acls.intern(acl);
        let new_size = node_size(&path, node.data.as_deref());
        let Node {
            data, kind, stat, ..
        } = node;
        self.with_node(&path, |old| {
            old.data = data;
            old.acl = new_acl;
            old.kind = kind;
            old.stat = stat;
        });
        self.acls.release(old_acl);
        self.unindex_kind(&path, old_kind);
        self.index_kind(&path, kind);
        self.data_size = self.data_size.saturating_sub(old_size) + new_size;
        Ok(())
    }

    /// Makes room for `additional` more nodes, so a restore of known size
    /// neither rehashes the node map as it grows nor holds the old and the
    /// new table at once. A hint: if the memory is refused, the map grows as
    /// nodes arrive instead.
    pub fn reserve(&mut self, additional: usize) {
        let _ = self.nodes.try_reserve(additional);
    }

    /// Records a live session, as a snapshot's session table lists it.
    pub fn restore_session(&mut self, session: SessionId, timeout_ms: i32) {
        self.sessions.insert(session, timeout_ms);
    }

    /// Sets the zxid the restored state is known to include (for a fuzzy
    /// snapshot: the zxid it was started at, so replay begins after it).
    pub fn restore_last_zxid(&mut self, zxid: Zxid) {
        self.last_zxid = zxid;
    }

    /// Verifies the structural invariants listed in the module doc. O(n):
    /// for tests and debug checks only.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut digest = 0u64;
        let mut size = 0u64;
        let mut acl_refs: HashMap<u32, u64> = HashMap::new();
        for (path, node) in &self.nodes {
            digest = digest.wrapping_add(node_hash(path, node));
            size += node_size(path, node.data.as_deref());
            *acl_refs.entry(node.acl).or_default() += 1;
            if &**path != ROOT {
                let parent = self
                    .nodes
                    .get(parent_of(path))
                    .ok_or_else(|| format!("{path}: parent missing"))?;
                if !parent
                    .children
                    .as_ref()
                    .is_some_and(|c| c.contains(name_of(path)))
                {
                    return Err(format!("{path}: not in parent's children"));
                }
            }
            for child in node.children.iter().flat_map(|c| c.iter()) {
                let child_path = &*child.0;
                if parent_of(child_path) != &**path {
                    return Err(format!("{child_path}: listed as a child of {path}"));
                }
                if !self.nodes.contains_key(child_path) {
                    return Err(format!("{child_path}: listed child missing"));
                }
            }
            if node.children.as_ref().is_some_and(|c| c.is_empty()) {
                return Err(format!("{path}: empty allocated children set"));
            }
            let indexed = match node.kind {
                NodeKind::Persistent => true,
                NodeKind::Ephemeral(s) => {
                    self.ephemerals.get(&s).is_some_and(|e| e.contains(&**path))
                }
                NodeKind::Container => self.containers.contains(&**path),
                NodeKind::Ttl(_) => self.ttls.contains(&**path),
            };
            if !indexed {
                return Err(format!("{path}: missing from its kind index"));
            }
        }
        let indexed_total = self.ephemeral_count() + self.containers.len() + self.ttls.len();
        let kinded_total = self
            .nodes
            .values()
            .filter(|n| n.kind != NodeKind::Persistent)
            .count();
        if indexed_total != kinded_total {
            return Err(format!(
                "kind indexes list {indexed_total} nodes, tree has {kinded_total}"
            ));
        }
        let quota_paths: Vec<&str> = self
            .nodes
            .keys()
            .filter_map(|path| quota::stats_owner(path))
            .collect();
        if quota_paths.len() != self.quotas.len()
            || !quota_paths.iter().all(|path| self.quotas.contains(path))
        {
            return Err(format!(
                "quota index lists {} paths, the tree has stats nodes for {quota_paths:?}",
                self.quotas.len()
            ));
        }
        if digest != self.digest {
            return Err("digest out of date".into());
        }
        if size != self.data_size {
            return Err(format!("data size {} != {size}", self.data_size));
        }
        for (slot, entry) in self.acls.lists.iter().enumerate() {
            let want = acl_refs.get(&(slot as u32)).copied().unwrap_or(0);
            let have = entry.as_ref().map_or(0, |(_, refs)| *refs);
            if want != have {
                return Err(format!("ACL slot {slot}: {have} refs, {want} users"));
            }
        }
        Ok(())
    }
}

fn node_size(path: &str, data: Option<&[u8]>) -> u64 {
    (path.len() + data.map_or(0, |d| d.len())) as u64
}

/// A node's contribution to the tree digest: xxh3 (fixed, seedless, the
/// same on every machine and version of this crate) over the path, the
/// path's length, the stat and the data, so replicas that hold the same tree
/// compute the same sum. xxh3 hashes megabyte values at memory speed, where
/// a byte-at-a-time hash made every large setData pay for its digest.
fn node_hash(path: &str, node: &Node) -> u64 {
    if path == CONFIG && node.stat.mzxid == 0 {
        // Each member writes its own static config here at start-up
        // (`set_static_config`): members agree on the rest of its stat.
        let stat = NodeStat {
            version: 0,
            mtime: 0,
            ..node.stat
        };
        return stat_data_hash(path, &stat, node.kind.ephemeral_owner(), Some(&[]));
    }
    stat_data_hash(
        path,
        &node.stat,
        node.kind.ephemeral_owner(),
        node.data.as_deref(),
    )
}

fn stat_data_hash(path: &str, s: &NodeStat, owner: i64, data: Option<&[u8]>) -> u64 {
    let mut fixed = [0u8; 8 * 7 + 4 * 3];
    let words = [s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime, owner];
    for (slot, value) in fixed.chunks_exact_mut(8).zip(words) {
        slot.copy_from_slice(&value.to_le_bytes());
    }
    let data_len = data.map_or(u64::MAX, |data| data.len() as u64);
    fixed[48..56].copy_from_slice(&data_len.to_le_bytes());
    for (slot, value) in fixed[56..]
        .chunks_exact_mut(4)
        .zip([s.version, s.cversion, s.aversion])
    {
        slot.copy_from_slice(&value.to_le_bytes());
    }
    let parts: [&[u8]; 4] = [
        path.as_bytes(),
        &(path.len() as u64).to_le_bytes(),
        &fixed,
        data.unwrap_or(&[]),
    ];
    // xxh3 over one buffer equals the streaming hasher over the same bytes
    // in pieces; the one-shot form is several times cheaper for the small
    // nodes that make up most trees (restore hashes every node), so small
    // nodes are gathered into a stack buffer first.
    const GATHER_BYTES: usize = 512;
    let total: usize = parts.iter().map(|part| part.len()).sum();
    if total <= GATHER_BYTES {
        let mut buffer = [0u8; GATHER_BYTES];
        let mut at = 0;
        for part in parts {
            buffer[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        return xxhash_rust::xxh3::xxh3_64(&buffer[..total]);
    }
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Vec<Acl> {
        Acl::open_unsafe()
    }

    #[track_caller]
    fn check_stat(tree: &DataTree, path: &str, expected: &str) {
        let stat = tree.stat_for_client(path).expect("node exists");
        let got = format!(
            "czxid={} mzxid={} pzxid={} ctime={} mtime={} v={} cv={} av={} owner={} len={} n={}",
            stat.czxid,
            stat.mzxid,
            stat.pzxid,
            stat.ctime,
            stat.mtime,
            stat.version,
            stat.cversion,
            stat.aversion,
            stat.ephemeral_owner,
            stat.data_length,
            stat.num_children
        );
        assert_eq!(got, expected, "stat of {path}");
    }

    // ZK-BEHAVIOURS 1: the initial tree's stats.
    #[test]
    fn fresh_tree_matches_reference() {
        let tree = DataTree::new();
        check_stat(
            &tree,
            "/",
            "czxid=0 mzxid=0 pzxid=0 ctime=0 mtime=0 v=0 cv=-1 av=0 owner=0 len=0 n=1",
        );
        check_stat(
            &tree,
            "/zookeeper",
            "czxid=0 mzxid=0 pzxid=0 ctime=0 mtime=0 v=0 cv=-2 av=0 owner=0 len=0 n=2",
        );
        check_stat(
            &tree,
            "/zookeeper/quota",
            "czxid=0 mzxid=0 pzxid=0 ctime=0 mtime=0 v=0 cv=0 av=0 owner=0 len=0 n=0",
        );
        check_stat(
            &tree,
            "/zookeeper/config",
            "czxid=0 mzxid=0 pzxid=0 ctime=0 mtime=0 v=0 cv=0 av=-1 owner=0 len=0 n=0",
        );
        assert_eq!(
            tree.get("/zookeeper/config").map(|n| n.acl().to_vec()),
            Some(Acl::read_unsafe())
        );
        assert_eq!(tree.get("/").map(|n| n.acl().to_vec()), Some(open()));
        assert_eq!(
            tree.get("").map(|n| n.path()),
            Some("/"),
            "\"\" aliases the root"
        );
        assert_eq!(
            tree.get("/").and_then(|n| n.data()),
            Some(&[][..]),
            "empty, not null"
        );
        assert_eq!(tree.node_count(), 4);
        tree.check_invariants().unwrap();
    }

    #[test]
    fn create_delete_bookkeeping() {
        let mut tree = DataTree::new();
        let fresh_digest = tree.digest();
        tree.create_node("/a", None, &open(), NodeKind::Persistent, 1, Zxid(1), 10)
            .unwrap();
        tree.create_node(
            "/a/e",
            Some(b"x"),
            &open(),
            NodeKind::Ephemeral(SessionId(7)),
            1,
            Zxid(2),
            20,
        )
        .unwrap();
        assert_eq!(
            tree.create_node("/a/e", None, &open(), NodeKind::Persistent, 2, Zxid(3), 30),
            Err(TreeError::NodeExists)
        );
        assert_eq!(
            tree.create_node("/b/c", None, &open(), NodeKind::Persistent, 1, Zxid(3), 30),
            Err(TreeError::NoNode)
        );
        check_stat(
            &tree,
            "/a",
            "czxid=1 mzxid=1 pzxid=2 ctime=10 mtime=10 v=0 cv=1 av=0 owner=0 len=0 n=1",
        );
        assert_eq!(tree.ephemerals(SessionId(7)), vec!["/a/e".to_string()]);
        tree.check_invariants().unwrap();
        tree.delete_node("/a/e", Zxid(4)).unwrap();
        // cversion as clients see it counts the delete too.
        check_stat(
            &tree,
            "/a",
            "czxid=1 mzxid=1 pzxid=4 ctime=10 mtime=10 v=0 cv=2 av=0 owner=0 len=0 n=0",
        );
        assert!(tree.ephemerals(SessionId(7)).is_empty());
        tree.delete_node("/a", Zxid(5)).unwrap();
        tree.check_invariants().unwrap();
        assert_ne!(
            tree.digest(),
            fresh_digest,
            "root's pzxid and cversion moved"
        );
        assert_eq!(
            tree.approximate_data_size(),
            DataTree::new().approximate_data_size()
        );
    }

    #[test]
    fn replica_digest_sees_acls_and_sessions_that_the_digest_does_not() {
        let build = |perms: i32, session: Option<i64>| {
            let mut tree = DataTree::new();
            let acl = vec![Acl {
                perms,
                id: crate::types::Id::new("digest", "u:x"),
            }];
            tree.create_node("/a", None, &acl, NodeKind::Persistent, 1, Zxid(1), 0)
                .unwrap();
            if let Some(session) = session {
                tree.restore_session(SessionId(session), 4000);
            }
            tree
        };
        let base = build(3, Some(7));
        assert_eq!(base.replica_digest(), build(3, Some(7)).replica_digest());
        let other_acl = build(31, Some(7));
        assert_eq!(base.digest(), other_acl.digest());
        assert_ne!(base.replica_digest(), other_acl.replica_digest());
        let other_session = build(3, Some(8));
        assert_ne!(base.replica_digest(), other_session.replica_digest());
        assert_ne!(base.replica_digest(), build(3, None).replica_digest());
    }

    #[test]
    fn acl_table_interns_and_releases() {
        let mut tree = DataTree::new();
        let custom = vec![Acl {
            perms: 3,
            id: crate::types::Id::new("digest", "u:x"),
        }];
        tree.create_node("/a", None, &custom, NodeKind::Persistent, 1, Zxid(1), 0)
            .unwrap();
        tree.create_node("/b", None, &custom, NodeKind::Persistent, 2, Zxid(2), 0)
            .unwrap();
        tree.check_invariants().unwrap();
        tree.set_acl("/a", &open(), 1).unwrap();
        tree.delete_node("/b", Zxid(3)).unwrap();
        tree.check_invariants().unwrap();
        assert_eq!(tree.acls.index.len(), 2, "custom list dropped");
    }

    #[test]
    fn reap_candidates_follow_container_manager() {
        let mut tree = DataTree::new();
        tree.create_node("/c", None, &open(), NodeKind::Container, 1, Zxid(1), 0)
            .unwrap();
        tree.create_node("/t", None, &open(), NodeKind::Ttl(100), 2, Zxid(2), 1000)
            .unwrap();
        assert!(
            tree.reap_candidates(1100).is_empty(),
            "unused container, TTL not passed"
        );
        assert_eq!(tree.reap_candidates(1101), vec!["/t".to_string()]);
        tree.create_node("/c/x", None, &open(), NodeKind::Persistent, 1, Zxid(3), 0)
            .unwrap();
        assert_eq!(tree.reap_candidates(0), Vec::<String>::new());
        tree.delete_node("/c/x", Zxid(4)).unwrap();
        assert_eq!(tree.reap_candidates(0), vec!["/c".to_string()]);
        check_stat(
            &tree,
            "/t",
            "czxid=2 mzxid=2 pzxid=2 ctime=1000 mtime=1000 v=0 cv=0 av=0 owner=0 len=0 n=0",
        );
        assert_eq!(
            tree.get("/t").map(|n| n.stored_stat().ephemeral_owner),
            Some((0xFFi64 << 56) | 100)
        );
    }

    /// Each member writes its own static config to /zookeeper/config: the
    /// digests (and so replicas' comparisons) do not see it.
    #[test]
    fn the_static_config_is_not_in_the_digests() {
        let mut tree = DataTree::new();
        let (digest, replica) = (tree.digest(), tree.replica_digest());
        tree.set_static_config(b"server.1=a:1:2:participant\nversion=0", 1234);
        let node = tree.get(CONFIG).unwrap();
        assert_eq!(
            node.data(),
            Some(&b"server.1=a:1:2:participant\nversion=0"[..])
        );
        assert_eq!((node.stat().version, node.stat().mtime), (-1, 1234));
        assert_eq!((tree.digest(), tree.replica_digest()), (digest, replica));
        tree.check_invariants().unwrap();
        // Written by a txn, it is the ensemble's: in the digest, and kept.
        tree.set_data(CONFIG, Some(b"x"), -1, Zxid(5), 99).unwrap();
        let written = tree.digest();
        assert_ne!(written, digest);
        tree.set_static_config(b"other", 100);
        assert_eq!(tree.get(CONFIG).unwrap().data(), Some(&b"x"[..]));
        assert_eq!(tree.digest(), written);
        tree.check_invariants().unwrap();
    }

    /// The digest is compared across restarts and versions: these values
    /// were computed by the original streaming-hasher implementation and
    /// must never change. Covers empty, null, small and large (> the
    /// one-shot buffer) data, and every node kind.
    #[test]
    fn digest_values_are_stable() {
        let mut tree = DataTree::new();
        let fresh = tree.digest();
        let big: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        let nodes: [(&str, Option<&[u8]>, NodeKind); 6] = [
            ("/a", Some(b"hello"), NodeKind::Persistent),
            ("/a/e", None, NodeKind::Ephemeral(SessionId(0x1234))),
            ("/c", Some(&[]), NodeKind::Container),
            ("/t", Some(&[9; 100]), NodeKind::Ttl(60_000)),
            ("/big", Some(&big), NodeKind::Persistent),
            ("/a/mid", Some(&big[..300]), NodeKind::Persistent),
        ];
        for (i, (path, data, kind)) in nodes.into_iter().enumerate() {
            let i = i as i64 + 1;
            tree.create_node(path, data, &open(), kind, i as i32, Zxid(i), 1000 * i)
                .unwrap();
        }
        tree.set_data("/a", Some(b"world"), 3, Zxid(9), 9000)
            .unwrap();
        assert_eq!(fresh, 0x439b_46e1_ffb3_8175);
        assert_eq!(tree.digest(), 0xb5d4_3aeb_1544_b4c4);
    }

    /// `node_hash` gathers small nodes into one buffer for one-shot xxh3:
    /// on both sides of the gathering limit it equals the streaming hasher
    /// over the same pieces, which is how the digest was first defined.
    #[test]
    fn one_shot_hash_equals_streaming() {
        fn streaming(path: &str, node: &Node) -> u64 {
            let s = &node.stat;
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            hasher.update(path.as_bytes());
            hasher.update(&(path.len() as u64).to_le_bytes());
            for word in [s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime] {
                hasher.update(&word.to_le_bytes());
            }
            hasher.update(&node.kind.ephemeral_owner().to_le_bytes());
            let data_len = node.data.as_ref().map_or(u64::MAX, |d| d.len() as u64);
            hasher.update(&data_len.to_le_bytes());
            for word in [s.version, s.cversion, s.aversion] {
                hasher.update(&word.to_le_bytes());
            }
            if let Some(data) = &node.data {
                hasher.update(data);
            }
            hasher.digest()
        }
        let stat = Stat {
            czxid: 1,
            mzxid: -2,
            pzxid: 3 << 40,
            ctime: 4,
            mtime: 5,
            version: 6,
            cversion: -7,
            aversion: 8,
            ..Stat::default()
        };
        let lengths = (0..40).chain(400..=460).chain([4096]);
        let data = lengths.map(|len| Some((0..len).map(|i| i as u8).collect::<Vec<u8>>()));
        for data in [None].into_iter().chain(data) {
            let prepared = PreparedNode::new(
                "/some/path",
                data.as_deref(),
                NodeKind::Ephemeral(SessionId(9)),
                &stat,
            );
            assert_eq!(
                prepared.hash,
                streaming("/some/path", &prepared.node),
                "{:?} data bytes",
                data.as_ref().map(Vec::len)
            );
        }
    }

    #[test]
    fn digest_is_order_independent() {
        let mut a = DataTree::new();
        let mut b = DataTree::new();
        a.create_node(
            "/x",
            Some(b"1"),
            &open(),
            NodeKind::Persistent,
            1,
            Zxid(1),
            0,
        )
        .unwrap();
        a.create_node(
            "/y",
            Some(b"2"),
            &open(),
            NodeKind::Persistent,
            2,
            Zxid(2),
            0,
        )
        .unwrap();
        b.create_node(
            "/y",
            Some(b"2"),
            &open(),
            NodeKind::Persistent,
            2,
            Zxid(2),
            0,
        )
        .unwrap();
        b.create_node(
            "/x",
            Some(b"1"),
            &open(),
            NodeKind::Persistent,
            1,
            Zxid(1),
            0,
        )
        .unwrap();
        assert_eq!(a.digest(), b.digest());
        a.set_data("/x", None, 1, Zxid(3), 5).unwrap();
        assert_ne!(a.digest(), b.digest(), "null and \"1\" differ");
    }
}

#[cfg(test)]
mod footprint {
    use super::*;

    fn rss_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Memory for 1M znodes of 100 bytes under 1000 parents. Prints, does
    /// not assert (`cargo test -p engine --release footprint -- --ignored
    /// --nocapture`).
    #[test]
    #[ignore]
    fn million_znodes() {
        let before = rss_kb();
        let mut tree = DataTree::new();
        let acl = Acl::open_unsafe();
        let data = [7u8; 100];
        let mut zxid = 0;
        for p in 0..1000 {
            zxid += 1;
            let parent = format!("/p{p:04}");
            tree.create_node(
                &parent,
                Some(&data),
                &acl,
                NodeKind::Persistent,
                p + 1,
                Zxid(zxid),
                0,
            )
            .unwrap();
            for c in 0..999 {
                zxid += 1;
                let path = format!("{parent}/n{c:06}");
                tree.create_node(
                    &path,
                    Some(&data),
                    &acl,
                    NodeKind::Persistent,
                    c + 1,
                    Zxid(zxid),
                    0,
                )
                .unwrap();
            }
        }
        let after = rss_kb();
        println!(
            "{} znodes: {} MiB RSS, {} bytes/znode",
            tree.node_count(),
            (after - before) / 1024,
            (after - before) * 1024 / tree.node_count() as u64
        );
    }
}
