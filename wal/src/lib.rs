//! Write-ahead log: preallocated segment files of zxid-stamped byte records,
//! appended by one group-committing writer thread (io_uring, or `pwrite` +
//! `fdatasync` where io_uring is refused), read back through `memmap2`.
//!
//! The WAL is not a txn log in any sense the engine would recognise: it
//! stores opaque payloads, each with a zxid, and knows nothing of what they
//! mean. It does not decide what is committed; it only says what is durable.
//!
//! Invariants: zxids in the log strictly increase across records and
//! segments; each batch is written with a commit marker after its records,
//! and nothing is reported durable before the fsync of its batch has
//! returned (unless `force_sync` is off); after a failed write or fsync, or
//! once the writer thread has ended (a panic included), every call and every
//! waiter answers `Error::Poisoned` and nothing is retried.

mod dir;
pub mod format;
mod io;
mod reader;
pub mod stats;
mod writer;

use std::io as stdio;
use std::path::PathBuf;

pub use format::{RecordRef, ScanStop, SegmentScan};
pub use reader::{Reader, SegmentFile};
pub use stats::SyncStats;
pub use writer::{uring_available, Durable, OpenReport, Wal};

/// The segment files in `dir` as (first zxid, path), oldest first; for tools
/// such as `zk-logdump` that walk them with `SegmentFile`.
pub fn segments(dir: &std::path::Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    Ok(dir::list(dir)?.0)
}

/// One record: a zxid and the opaque bytes stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub zxid: u64,
    pub payload: Vec<u8>,
}

/// How the writer thread performs its writes and syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// io_uring when the kernel allows it, else `pwrite` + `fdatasync` (with
    /// one warning in the log).
    #[default]
    Auto,
    /// io_uring or fail to open.
    IoUring,
    /// `pwrite` + `fdatasync`.
    Pwrite,
}

/// What `Wal::open` needs.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// The directory of segment files (ZooKeeper's `dataLogDir`).
    pub dir: PathBuf,
    /// Segments grow in blocks of this many bytes, so appends rarely change
    /// the file size (which would make `fdatasync` flush metadata too).
    pub pre_alloc_bytes: u64,
    /// When false, writes are never synced: a power loss may lose or tear
    /// records already reported durable. Unsafe; for tests and benchmarks.
    pub force_sync: bool,
    /// Written in every segment header; a segment with another id is refused.
    pub database_id: u64,
    pub io: IoMode,
    /// A batch that would carry a non-empty segment past this size starts a
    /// new segment.
    pub segment_max_bytes: u64,
}

impl WalConfig {
    /// Defaults matching ZooKeeper's: 64 MiB preallocation, sync on.
    pub fn new(dir: impl Into<PathBuf>) -> WalConfig {
        WalConfig {
            dir: dir.into(),
            pre_alloc_bytes: 64 * 1024 * 1024,
            force_sync: true,
            database_id: 0,
            io: IoMode::Auto,
            segment_max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The WAL's one error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: stdio::Error },
    #[error("corrupt record in {file} at offset {offset}; see zk-snaprepair")]
    Corrupt { file: PathBuf, offset: u64 },
    #[error("{file} belongs to database {found}, expected {expected}")]
    WrongDatabase {
        file: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("record for zxid {zxid:#x} has {len} bytes, above the limit of {limit}")]
    RecordTooLarge { zxid: u64, len: usize, limit: usize },
    #[error("io_uring unavailable: {source}")]
    IoUringUnavailable { source: stdio::Error },
    #[error("a write or fsync of the WAL failed earlier, or its writer thread died; the log is poisoned")]
    Poisoned,
}

impl Error {
    fn io(path: impl Into<PathBuf>, source: stdio::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
