//! Quota accounting: the stats node `/zookeeper/quota/<p>/zookeeper_stats`
//! of a quota path `<p>` holds `count=N,bytes=M<rest>`, the number of
//! znodes and the sum of their data lengths in `<p>`'s subtree (`<p>`
//! included), as the reference keeps it. Limits are only reported, never
//! enforced (the reference's default), so `zookeeper_limits` plays no part.
//!
//! Invariant: a stats node's data is a function of the rest of the tree and
//! of the last data a client wrote to it, never of the order things
//! happened in. `N` and `M` count the subtree as it is now, leaving out
//! `/zookeeper/quota` and the subtrees of nested quota paths (a node is
//! counted by its deepest quota, the one whose stats the reference updates);
//! `<rest>` is what followed the numbers in the data of the client's last
//! create or setData of the stats node (empty if that did not parse), so a
//! client cannot set the numbers. Apply keeps it by deltas, which is cheap;
//! `recount` and `recount_all` compute it from scratch, and give the same
//! bytes. That is what lets recovery replay the log over a fuzzy snapshot,
//! where a delta may be counted twice or not at all (the stats node and the
//! subtree were captured at different moments), and then recount once to
//! reach the live tree exactly, digest included.
//!
//! Where this departs from the reference, only for trees its own zkCli
//! does not make: a path is a quota path when it has a stats node (the
//! reference tracks paths with a limits node, leaving a stats node without
//! one frozen at a value only the history explains); a client's create or
//! setData of a stats node keeps its text after the numbers but not the
//! numbers (the reference keeps a setData's whole text and drops a
//! create's); and a nested quota's subtree is not counted by the enclosing
//! quota, also when the enclosing stats node is created (the reference
//! counts it then and never after).

use crate::path::parent_of;
use crate::tree::{DataTree, QUOTA, ROOT};
use std::collections::HashSet;

pub const STATS_NODE: &str = "zookeeper_stats";

/// The quota paths: those with a stats node. Derived from the nodes, kept
/// by the tree as nodes come and go (restore included).
#[derive(Debug, Default)]
pub(crate) struct QuotaIndex {
    paths: HashSet<Box<str>, ahash::RandomState>,
}

impl QuotaIndex {
    /// Notes that a node now exists at `path`.
    pub(crate) fn node_added(&mut self, path: &str) {
        if let Some(quota_path) = stats_owner(path) {
            self.paths.insert(Box::from(quota_path));
        }
    }

    /// Notes that the node at `path` is gone.
    pub(crate) fn node_removed(&mut self, path: &str) {
        if let Some(quota_path) = stats_owner(path) {
            self.paths.remove(quota_path);
        }
    }

    pub(crate) fn contains(&self, quota_path: &str) -> bool {
        self.paths.contains(quota_path)
    }

    pub(crate) fn len(&self) -> usize {
        self.paths.len()
    }

    /// The quota that counts the node at `path`: the longest quota path that
    /// is `path` or one of its ancestors (the root never is one).
    fn deepest(&self, path: &str) -> Option<String> {
        if self.paths.is_empty() || !counted(path) {
            return None;
        }
        self.at_or_above(path)
    }

    /// The quota that would count `quota_path`'s subtree if it had no stats
    /// node: the deepest quota strictly above it.
    fn enclosing(&self, quota_path: &str) -> Option<String> {
        if self.paths.is_empty() || !counted(quota_path) || quota_path == ROOT {
            return None;
        }
        self.at_or_above(parent_of(quota_path))
    }

    fn at_or_above(&self, path: &str) -> Option<String> {
        let mut candidate = path;
        while candidate != ROOT && !candidate.is_empty() {
            if self.paths.contains(candidate) {
                return Some(candidate.to_string());
            }
            candidate = parent_of(candidate);
        }
        None
    }

    /// Every quota path, sorted.
    fn sorted(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.paths.iter().map(|p| p.to_string()).collect();
        paths.sort();
        paths
    }
}

/// Whether a node at `path` is counted by quotas: everything but
/// `/zookeeper/quota` and what is under it, where the stats nodes live
/// (counting them would make every stats update change a stats node).
fn counted(path: &str) -> bool {
    match path.strip_prefix(QUOTA) {
        Some(rest) => !(rest.is_empty() || rest.starts_with('/')),
        None => true,
    }
}

/// For `/zookeeper/quota/<p>/zookeeper_stats`, the quota path `<p>`.
pub fn stats_owner(path: &str) -> Option<&str> {
    let inner = path
        .strip_prefix(QUOTA)?
        .strip_suffix(STATS_NODE)?
        .strip_suffix('/')?;
    (inner.starts_with('/') && inner.len() > 1).then_some(inner)
}

/// The stats node of quota path `quota_path`.
pub fn stats_path(quota_path: &str) -> String {
    format!("{QUOTA}{quota_path}/{STATS_NODE}")
}

/// Splits `count=N,bytes=M<rest>` (the reference's stats text, which may go
/// on with `=;key=value` pairs) into its numbers and the rest.
fn parse_stats(data: &[u8]) -> Option<(i64, i64, &str)> {
    let text = std::str::from_utf8(data).ok()?;
    let after_count = text.strip_prefix("count=")?;
    let (count, after) = after_count.split_once(",bytes=")?;
    let digits = after
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
        .map_or(after.len(), |(i, _)| i);
    let (bytes, rest) = after.split_at(digits);
    Some((count.parse().ok()?, bytes.parse().ok()?, rest))
}

/// The part of stats data a client owns: what follows the numbers, or
/// nothing if the data does not parse.
fn rest_of(data: Option<&[u8]>) -> &str {
    data.and_then(parse_stats).map_or("", |(_, _, rest)| rest)
}

fn stats_text(count: i64, bytes: i64, rest: &str) -> Vec<u8> {
    format!("count={count},bytes={bytes}{rest}").into_bytes()
}

fn data_len(data: Option<&[u8]>) -> i64 {
    data.map_or(0, |d| d.len() as i64)
}

// ---- called by the tree's mutations (apply) ----

/// A node was created at `path` with `data`.
pub(crate) fn created(tree: &mut DataTree, path: &str, data: Option<&[u8]>) {
    if let Some(quota_path) = stats_owner(path) {
        // A new quota: its subtree is counted afresh, and stops counting
        // for the quota that enclosed it.
        let quota_path = quota_path.to_string();
        recount(tree, &quota_path);
        if let Some(outer) = tree.quota_index().enclosing(&quota_path) {
            recount(tree, &outer);
        }
        return;
    }
    adjust(tree, path, 1, data_len(data));
}

/// The node at `path`, which held `data_len` bytes, was deleted.
pub(crate) fn deleted(tree: &mut DataTree, path: &str, data_len: usize) {
    if let Some(quota_path) = stats_owner(path) {
        // The quota is gone: the enclosing one counts its subtree again.
        if let Some(outer) = tree.quota_index().enclosing(quota_path) {
            recount(tree, &outer);
        }
        return;
    }
    adjust(tree, path, -1, -(data_len as i64));
}

/// What `data_set` needs to know from before a setData of `path`: for a
/// stats node, the numbers it held.
pub(crate) fn before_set_data(tree: &DataTree, path: &str) -> Option<(i64, i64)> {
    stats_owner(path)?;
    let (count, bytes, _) = tree.get(path)?.data().and_then(parse_stats)?;
    Some((count, bytes))
}

/// The data of `path` went from `old_len` to `new_len` bytes; `before` is
/// what `before_set_data` said.
pub(crate) fn data_set(
    tree: &mut DataTree,
    path: &str,
    before: Option<(i64, i64)>,
    old_len: usize,
    new_len: usize,
) {
    if let Some(quota_path) = stats_owner(path) {
        // The client's write keeps its rest; the numbers stay the server's,
        // which were current (or, if they did not parse, are counted).
        let rest = rest_of(tree.get(path).and_then(|node| node.data())).to_string();
        match before {
            Some((count, bytes)) => {
                let text = stats_text(count, bytes, &rest);
                tree.rewrite_in_place(path, &text);
            }
            None => recount(tree, quota_path),
        }
        return;
    }
    adjust(tree, path, 0, new_len as i64 - old_len as i64);
}

/// Moves the stats of the quota counting `path` by the given deltas.
fn adjust(tree: &mut DataTree, path: &str, count_diff: i64, bytes_diff: i64) {
    let Some(quota_path) = tree.quota_index().deepest(path) else {
        return;
    };
    let stats_path = stats_path(&quota_path);
    let Some(node) = tree.get(&stats_path) else {
        return;
    };
    match node.data().and_then(parse_stats) {
        Some((count, bytes, rest)) => {
            let text = stats_text(
                count.wrapping_add(count_diff),
                bytes.wrapping_add(bytes_diff),
                rest,
            );
            tree.rewrite_in_place(&stats_path, &text);
        }
        // Data that is not stats (say, written before this version) has no
        // numbers to move: count them.
        None => recount(tree, &quota_path),
    }
}

// ---- the recount API ----

/// The count and bytes of `quota_path`'s subtree as the module doc defines
/// them, walking it: O(size of the subtree).
pub fn count(tree: &DataTree, quota_path: &str) -> (i64, i64) {
    let index = tree.quota_index();
    let (mut count, mut bytes) = (0i64, 0i64);
    let mut stack = vec![std::sync::Arc::<str>::from(quota_path)];
    while let Some(path) = stack.pop() {
        if !counted(&path) || (&*path != quota_path && index.contains(&path)) {
            continue;
        }
        let Some(node) = tree.get(&path) else {
            continue;
        };
        count += 1;
        bytes += data_len(node.data());
        stack.extend(node.child_paths());
    }
    (count, bytes)
}

/// Rewrites the stats node of `quota_path` (if it has one) from a fresh
/// count of its subtree, keeping the client's rest.
pub fn recount(tree: &mut DataTree, quota_path: &str) {
    let stats_path = stats_path(quota_path);
    let Some(node) = tree.get(&stats_path) else {
        return;
    };
    let rest = rest_of(node.data()).to_string();
    let (count, bytes) = count(tree, quota_path);
    tree.rewrite_in_place(&stats_path, &stats_text(count, bytes, &rest));
}

/// Recounts every quota. Each node is walked at most once (nested quotas'
/// subtrees are left out of the enclosing count), so this is O(tree); on a
/// tree whose stats are current it changes nothing. Recovery calls it
/// where replay over a fuzzy snapshot reaches the snapshot's end.
pub fn recount_all(tree: &mut DataTree) {
    for quota_path in tree.quota_index().sorted() {
        recount(tree, &quota_path);
    }
}

/// Checks that every stats node holds what `recount` would write: the
/// invariant in the module doc. O(tree), for tests.
pub fn check(tree: &DataTree) -> Result<(), String> {
    for quota_path in tree.quota_index().sorted() {
        let stats_path = stats_path(&quota_path);
        let Some(node) = tree.get(&stats_path) else {
            return Err(format!("{quota_path}: indexed without a stats node"));
        };
        let (count, bytes) = count(tree, &quota_path);
        let want = stats_text(count, bytes, rest_of(node.data()));
        if node.data() != Some(&want[..]) {
            return Err(format!(
                "{stats_path}: {:?}, a recount gives {:?}",
                node.data().map(String::from_utf8_lossy),
                String::from_utf8_lossy(&want)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::NodeKind;
    use crate::types::{Acl, Zxid};

    /// Builds a tree from `path=data` lines (created in order, `-path`
    /// deletes, `path:=data` sets data) and renders every stats node.
    #[track_caller]
    fn check_ops(ops: &str, expected: &str) {
        let mut tree = DataTree::new();
        for (i, line) in ops
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let zxid = Zxid(i as i64 + 1);
            if let Some(path) = line.strip_prefix('-') {
                tree.delete_node(path, zxid).expect("delete");
            } else if let Some((path, data)) = line.split_once(":=") {
                tree.set_data(path, Some(data.as_bytes()), 1, zxid, 0)
                    .expect("set");
            } else {
                let (path, data) = line.split_once('=').unwrap_or((line, ""));
                let parent = tree.get(parent_of(path)).map_or(0, |n| n.cversion());
                tree.create_node(
                    path,
                    Some(data.as_bytes()),
                    &Acl::open_unsafe(),
                    NodeKind::Persistent,
                    parent + 1,
                    zxid,
                    0,
                )
                .expect("create");
            }
            check(&tree).expect("stats current after every op");
            tree.check_invariants().expect("tree invariants");
        }
        let got: Vec<String> = tree
            .paths()
            .into_iter()
            .filter(|p| stats_owner(p).is_some())
            .map(|p| {
                let data = tree.get(&p).and_then(|n| n.data()).unwrap_or(&[]);
                format!("{p} {}", String::from_utf8_lossy(data))
            })
            .collect();
        assert_eq!(got.join("\n"), expected.trim());
        // A recount changes nothing on a tree kept by apply.
        let digest = tree.digest();
        recount_all(&mut tree);
        assert_eq!(tree.digest(), digest);
    }

    // As zkCli's setquota makes it: counted at creation, then kept.
    #[test]
    fn stats_follow_the_subtree() {
        check_ops(
            "
            /q=x
            /q/a=yy
            /zookeeper/quota/q
            /zookeeper/quota/q/zookeeper_limits=count=10,bytes=-1
            /zookeeper/quota/q/zookeeper_stats=count=0,bytes=0
            /q/b=zzz
            /q/b/c
            /q/a:=yyyy
            -/q/b/c
            /other=not counted
            ",
            "/zookeeper/quota/q/zookeeper_stats count=3,bytes=8",
        );
    }

    // The numbers are the server's; what follows them is the client's.
    #[test]
    fn client_writes_keep_the_numbers() {
        check_ops(
            "
            /q=x
            /zookeeper/quota/q
            /zookeeper/quota/q/zookeeper_stats=count=7,bytes=7=;countHardLimit=5
            /q/a=yy
            /zookeeper/quota/q/zookeeper_stats:=count=100,bytes=0=;byteHardLimit=1
            /q/b=zzz
            ",
            "/zookeeper/quota/q/zookeeper_stats count=3,bytes=6=;byteHardLimit=1",
        );
        check_ops(
            "
            /q=x
            /zookeeper/quota/q
            /zookeeper/quota/q/zookeeper_stats=garbage
            /q/a=yy
            /zookeeper/quota/q/zookeeper_stats:=more garbage
            ",
            "/zookeeper/quota/q/zookeeper_stats count=2,bytes=3",
        );
    }

    // A nested quota counts its subtree; the enclosing one leaves it out,
    // and takes it back when the nested stats node goes.
    #[test]
    fn nested_quotas_count_apart() {
        check_ops(
            "
            /q=x
            /q/in=yy
            /q/in/deep=zzz
            /zookeeper/quota/q
            /zookeeper/quota/q/zookeeper_stats=count=0,bytes=0
            /zookeeper/quota/q/in
            /zookeeper/quota/q/in/zookeeper_stats=count=0,bytes=0
            /q/in/more=4444
            /q/out=55555
            ",
            "
/zookeeper/quota/q/in/zookeeper_stats count=3,bytes=9
/zookeeper/quota/q/zookeeper_stats count=2,bytes=6",
        );
        check_ops(
            "
            /q=x
            /q/in=yy
            /zookeeper/quota/q
            /zookeeper/quota/q/zookeeper_stats=count=0,bytes=0
            /zookeeper/quota/q/in
            /zookeeper/quota/q/in/zookeeper_stats=count=0,bytes=0
            -/zookeeper/quota/q/in/zookeeper_stats
            /q/in/more=4444
            ",
            "/zookeeper/quota/q/zookeeper_stats count=3,bytes=7",
        );
    }

    // A quota on /zookeeper counts /zookeeper and /zookeeper/config, never
    // the quota nodes themselves.
    #[test]
    fn quota_nodes_are_not_counted() {
        check_ops(
            "
            /zookeeper/quota/zookeeper
            /zookeeper/quota/zookeeper/zookeeper_stats=count=0,bytes=0
            /zookeeper/quota/x=123
            /zookeeper/config/y=12
            ",
            "/zookeeper/quota/zookeeper/zookeeper_stats count=3,bytes=2",
        );
    }
}
