//! Apache ZooKeeper's tree digest (digest version 2), computed over one of
//! our trees, so the digests an Apache snapshot or txn records can be
//! checked against the tree an import built, and an export can record one
//! Apache checks on load.
//!
//! The digest is the wrapping sum, over every node outside `/zookeeper/`, of
//! a CRC-32 of the node's path (`""` for the root), its data if not null,
//! and its persisted stat (czxid, mzxid, pzxid, ctime, mtime as longs;
//! version, cversion, aversion as ints; ephemeralOwner as a long; all
//! big-endian).
//!
//! Invariant: equal trees, in content and persisted stats, give equal
//! digests whatever order they were built in.

use engine::tree::{DataTree, NodeRef};

/// The subtree Apache leaves out of the digest (its quota stats are
/// maintained locally on each server).
const EXCLUDED: &str = "/zookeeper/";

/// One node's part of the digest.
pub fn node_digest(node: &NodeRef<'_>) -> u64 {
    let path = node.path();
    if path.starts_with(EXCLUDED) {
        return 0;
    }
    let stat = node.stored_stat();
    let mut crc = crc32fast::Hasher::new();
    crc.update(if path == "/" { b"" } else { path.as_bytes() });
    if let Some(data) = node.data() {
        crc.update(data);
    }
    let mut fixed = [0u8; 60];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        fixed[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&stat.czxid.to_be_bytes());
    put(&stat.mzxid.to_be_bytes());
    put(&stat.pzxid.to_be_bytes());
    put(&stat.ctime.to_be_bytes());
    put(&stat.mtime.to_be_bytes());
    put(&stat.version.to_be_bytes());
    put(&stat.cversion.to_be_bytes());
    put(&stat.aversion.to_be_bytes());
    put(&stat.ephemeral_owner.to_be_bytes());
    crc.update(&fixed);
    u64::from(crc.finalize())
}

/// The digest of the whole tree, as Apache would compute it. O(nodes).
pub fn apache_digest(tree: &DataTree) -> i64 {
    let mut sum = 0u64;
    for path in tree.paths() {
        if let Some(node) = tree.get(&path) {
            sum = sum.wrapping_add(node_digest(&node));
        }
    }
    sum as i64
}
