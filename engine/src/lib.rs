//! The coordination state machine: the znode tree and its stats, ACL checks,
//! the session table, the watch registry, the `Txn` type with its
//! deterministic `apply`, the prep step that turns a request into a `Txn`, and
//! the `Storage` seam that durability backends implement. No sockets, threads
//! or clocks: time comes in as arguments and is carried inside txns.

pub mod acl;
pub mod apply;
pub mod native;
pub mod path;
pub mod persist;
pub mod prep;
pub mod read;
pub mod request;
#[cfg(feature = "rocksdb")]
pub mod rocks;
pub mod session;
pub mod storage;
pub mod tree;
pub mod txn;
pub mod types;
pub mod watch;

/// Periodic durable copies of the tree that shorten the log, whatever the
/// backend: native snapshots, RocksDB checkpoints. The server's snapshot
/// schedule drives one of these from a background thread.
pub trait Checkpointer: Send + Sync {
    /// Writes a (fuzzy) copy of `tree` while writes go on; says what it wrote.
    fn take(
        &self,
        tree: &parking_lot::RwLock<tree::DataTree>,
    ) -> Result<String, storage::StorageError>;

    /// Removes what no longer serves recovery, keeping at least `retain`
    /// copies where the backend keeps several; returns how many files or
    /// items were removed.
    fn purge(&self, retain: usize) -> Result<usize, storage::StorageError>;
}
