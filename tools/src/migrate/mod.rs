//! `zk-migrate`: moving an Apache ZooKeeper (3.4 to 3.9) data directory into
//! ours, and ours out as an Apache snapshot.
//!
//! `import` decodes Apache's `version-2/` files (`snapfile`: snapshots,
//! plain, gzip or snappy-java; `txnlog`: txn logs; both jute, `jute`), builds
//! a `DataTree` from the newest snapshot that passes its checks, replays the
//! log after it (`convert` turns each Apache txn into one of ours, applied
//! with `engine::apply::apply_replay`, which tolerates a fuzzy snapshot as
//! Apache's replay does), checks Apache's recorded digests (`digest`), and
//! installs the tree into an empty data directory through the chosen
//! backend's `Storage::install`. `export` recovers our tree and writes it as
//! a plain Apache snapshot.
//!
//! Not a server: nothing here serves clients, and the source directory is
//! only read.
//!
//! Invariants: the source is opened read-only; the target must be empty (no
//! data is ever overwritten); every decoder bounds what it allocates by the
//! bytes it has, so damaged input is an error, never a panic.

pub mod convert;
pub mod digest;
pub mod export;
pub mod import;
pub mod jute;
pub mod snapfile;
pub mod txnlog;

use std::path::{Path, PathBuf};

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The input does not decode: `what` (a file) at `offset`.
    #[error("{what}: offset {offset}: {why}")]
    Malformed {
        what: String,
        offset: u64,
        why: String,
    },
    /// The files decode but cannot make a tree (no valid snapshot, a gap in
    /// the log, a node without its parent, ...).
    #[error("{0}")]
    Unusable(String),
    #[error("storage: {0}")]
    Storage(#[from] engine::storage::StorageError),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Our storage backends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Native,
    RocksDb,
}

impl Backend {
    pub fn parse(name: &str) -> Result<Backend, String> {
        match name {
            "native" => Ok(Backend::Native),
            "rocksdb" => Ok(Backend::RocksDb),
            other => Err(format!("unknown backend {other:?} (native or rocksdb)")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::RocksDb => "rocksdb",
        }
    }
}

/// Where the server keeps the RocksDB backend inside `dataDir`.
pub const ROCKSDB_SUBDIR: &str = "rocksdb";

/// Names of the plain files in `dir`, sorted.
fn file_names(dir: &Path) -> Result<Vec<String>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::io(dir, source))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::io(dir, source))?;
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// `dir/version-2` if it exists, else `dir` itself if it holds Apache
/// files, so either the dataDir or its `version-2` can be named.
pub fn version_dir(dir: &Path) -> PathBuf {
    let nested = dir.join("version-2");
    if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Progress on long runs: a line on stderr at most every second, once the
/// work has run for a second (small directories print nothing). On a
/// terminal the line is redrawn in place; otherwise each is a plain line.
pub struct Ticker {
    started: std::time::Instant,
    last: std::time::Instant,
    terminal: bool,
    drawn: bool,
    enabled: bool,
}

impl Ticker {
    pub fn new(enabled: bool) -> Ticker {
        let now = std::time::Instant::now();
        Ticker {
            started: now,
            last: now,
            terminal: crate::stderr_is_terminal(),
            drawn: false,
            enabled,
        }
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Says `line` if a second has passed since the last one. `line` is
    /// only built then.
    pub fn tick(&mut self, line: impl FnOnce() -> String) {
        if !self.enabled || self.last.elapsed() < std::time::Duration::from_secs(1) {
            return;
        }
        self.last = std::time::Instant::now();
        let text = line();
        if self.terminal {
            eprint!("\r\x1b[K{text}");
            self.drawn = true;
        } else {
            eprintln!("zk-migrate: {text}");
        }
    }

    pub fn finish(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
            self.drawn = false;
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.finish();
    }
}
