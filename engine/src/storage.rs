//! The seam between the tree and durability. The pipeline hands every batch of
//! txns to a `Storage` before applying them, and applies (and so answers and
//! fires watches for) a txn only once `append` has returned for its batch.
//! Backends — the native WAL + snapshots, RocksDB — implement this trait;
//! `MemStorage` keeps nothing and is what a server without durability uses.

use crate::tree::DataTree;
use crate::txn::Txn;
use crate::types::Zxid;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("storage refuses further writes after a failed sync")]
    Poisoned,
}

pub trait Storage: Send {
    /// Makes `txns` durable, in order; returns once they are. Group commit
    /// falls out of the caller: it passes every txn prepped since the last
    /// call as one batch.
    fn append(&mut self, txns: &[Txn]) -> Result<(), StorageError>;

    /// Rebuilds the state at start-up: the tree and the last zxid in it.
    fn recover(&mut self) -> Result<(DataTree, Zxid), StorageError>;

    /// A short name for logs and `conf`.
    fn name(&self) -> &'static str;
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
    fn append(&mut self, txns: &[Txn]) -> Result<(), StorageError> {
        self.appended += txns.len() as u64;
        Ok(())
    }

    fn recover(&mut self) -> Result<(DataTree, Zxid), StorageError> {
        Ok((DataTree::new(), Zxid::ZERO))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
