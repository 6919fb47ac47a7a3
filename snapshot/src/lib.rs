//! Fuzzy snapshot files: framing, compression, checksums, naming and
//! retention of the engine's periodic snapshots.
//!
//! The engine streams its state (ACL table, znodes, sessions) through a
//! [`SnapshotWriter`] as opaque byte records tagged with a [`Section`]; this
//! crate frames them, compresses them as one zstd stream, checksums them and
//! publishes the file atomically under `snapshot.<start zxid in hex>`. A
//! [`SnapshotReader`] maps a file and hands the records back in order.
//! [`list`], [`newest_valid`] and [`purge`] manage a directory of them.
//!
//! What it is not: it knows nothing of znodes, sessions or ACLs (it does not
//! depend on `engine`), nothing of the WAL, and it never decides *when* to
//! snapshot. See `FORMAT.md` for the bytes on disk and what a crash at each
//! step leaves behind.
//!
//! Invariant: a file named `snapshot.<16 hex digits>` in a snapshot directory
//! was completely written and fsynced before it got that name; every byte read
//! back is covered by a crc32c that is checked before the caller can act on
//! the whole (the entry stream's crc is checked when iteration reaches its
//! end). Corruption is always an [`Error::Corrupt`] value, never a panic.

mod dir;
mod format;
mod reader;
mod writer;

use std::io;
use std::path::PathBuf;

pub use dir::{list, newest_valid, purge, PurgeReport, ValidSnapshot, MIN_RETAIN_COUNT};
pub use format::{
    file_name, Header, Section, Trailer, FORMAT_VERSION, HEADER_BYTES, MAX_ENTRY_BYTES,
    TRAILER_BYTES,
};
pub use reader::{Entries, SectionSummary, SnapshotReader, Summary};
pub use writer::SnapshotWriter;

/// Where in a snapshot file a [`Error::Corrupt`] offset points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// A byte offset in the file itself (header, trailer, sizes).
    File,
    /// A byte offset in the uncompressed entry stream, i.e. after zstd
    /// decoding; the compressed position of a zstd error is not knowable.
    Stream,
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Region::File => "file",
            Region::Stream => "entry stream",
        })
    }
}

/// Everything that can go wrong writing, reading or managing snapshots.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused an operation on `path`.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The file's bytes do not form a valid snapshot. Recovery skips such a
    /// file and falls back to an older one (see [`newest_valid`]).
    #[error("corrupt snapshot {file} at {region} offset {offset}: {what}; see zk-snaprepair")]
    Corrupt {
        file: PathBuf,
        region: Region,
        offset: u64,
        what: String,
    },
    /// The caller passed an entry larger than [`MAX_ENTRY_BYTES`]; nothing was
    /// written for it and the writer is still usable.
    #[error("snapshot entry of {len} bytes exceeds the {max}-byte limit")]
    EntryTooLarge { len: usize, max: usize },
    /// The caller said the snapshot finished before it started.
    #[error("snapshot end zxid {end_zxid:#x} is before its start zxid {start_zxid:#x}")]
    EndBeforeStart { start_zxid: u64, end_zxid: u64 },
    /// An earlier write to this snapshot failed; the compressor's state is
    /// unknown, so the snapshot is abandoned and its temp file removed on drop.
    #[error("{path}: an earlier write failed; this snapshot is abandoned")]
    Poisoned { path: PathBuf },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the error says the file's content is bad, as opposed to the
    /// file being unreachable. `zk-snaprepair` and recovery use the difference
    /// in their messages.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }
}
