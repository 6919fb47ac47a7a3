//! The seam between the tree and durability. The pipeline hands every batch of
//! txns to a `Storage` before applying them, and applies (and so answers and
//! fires watches for) a txn only once `append` has returned for its batch.
//! Backends — the native WAL + snapshots, RocksDB — implement this trait;
//! `MemStorage` keeps nothing and is what a server without durability uses.

use crate::tree::DataTree;
use crate::txn::Txn;
use crate::types::Zxid;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("storage refuses further writes after a failed sync")]
    Poisoned,
    #[error("corrupt data in {file} at offset {offset} ({what}); see zk-snaprepair")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("log: {0}")]
    Wal(String),
    #[error("snapshot: {0}")]
    Snapshot(String),
    #[error("cannot encode a txn: {0}")]
    Encode(String),
}

pub trait Storage: Send {
    /// Starts making `txns` durable, in order after everything appended
    /// before, and returns at once with a ticket for them. Group commit falls
    /// out of this: the caller appends the next batch while the previous one
    /// is being synced, and the backend merges what queues up meanwhile.
    fn append(&mut self, txns: &[Txn]) -> Result<Ticket, StorageError>;

    /// A waiter another thread (the applier) uses to learn when a ticket's
    /// txns are durable.
    fn waiter(&self) -> Arc<dyn DurableWait>;

    /// Rebuilds the state at start-up: the tree and the last zxid in it.
    fn recover(&mut self) -> Result<(DataTree, Zxid), StorageError>;

    /// A short name for logs and `conf`.
    fn name(&self) -> &'static str;
}

/// Names one `append` call; tickets grow with every call.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Ticket(pub u64);

pub trait DurableWait: Send + Sync {
    /// Returns once everything appended up to `ticket` is durable, or the
    /// error that makes it never so (after which the server stops).
    fn wait(&self, ticket: Ticket) -> Result<(), StorageError>;
}

/// Appends `txns`, waits until they are durable and applies them: the
/// pipeline's commit path on one thread, for tests, benchmarks and tools that
/// build data directories. Returns the tree's last zxid after applying.
pub fn commit_in_place(
    storage: &mut dyn Storage,
    tree: &parking_lot::RwLock<DataTree>,
    txns: &[Txn],
) -> Result<Zxid, StorageError> {
    let ticket = storage.append(txns)?;
    storage.waiter().wait(ticket)?;
    let mut tree = tree.write();
    for txn in txns {
        crate::apply::apply(&mut tree, txn);
    }
    Ok(tree.last_zxid())
}

/// Keeps nothing: every append is "durable" at once, and recovery yields a
/// fresh tree.
#[derive(Default)]
pub struct MemStorage {
    appended: u64,
}

impl MemStorage {
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    pub fn appended(&self) -> u64 {
        self.appended
    }
}

impl Storage for MemStorage {
    fn append(&mut self, txns: &[Txn]) -> Result<Ticket, StorageError> {
        self.appended += txns.len() as u64;
        Ok(Ticket(self.appended))
    }

    fn waiter(&self) -> Arc<dyn DurableWait> {
        Arc::new(Immediate)
    }

    fn recover(&mut self) -> Result<(DataTree, Zxid), StorageError> {
        Ok((DataTree::new(), Zxid::ZERO))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

/// Everything is durable as soon as it is appended.
struct Immediate;

impl DurableWait for Immediate {
    fn wait(&self, _ticket: Ticket) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Helpers the backends' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::{commit_in_place, Storage};
    use crate::prep::Prep;
    use crate::request::Request;
    use crate::tree::DataTree;
    use crate::txn::Txn;
    use crate::types::SessionId;
    use parking_lot::RwLock;

    /// Preps `requests` as session 1, then appends, waits and applies them
    /// like the pipeline does.
    pub(crate) fn write(
        storage: &mut dyn Storage,
        tree: &RwLock<DataTree>,
        prep: &mut Prep,
        requests: &[Request],
    ) {
        let txns: Vec<Txn> = {
            let tree = tree.read();
            requests
                .iter()
                .map(|r| {
                    prep.prep(&tree, SessionId(1), 0, &[], r, 1_000)
                        .expect("write")
                })
                .collect()
        };
        let last = commit_in_place(storage, tree, &txns).expect("commit");
        prep.applied(last);
    }
}
