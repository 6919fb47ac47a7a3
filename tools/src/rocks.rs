//! What both tools check in a RocksDB-backend data directory (feature
//! `rocksdb`), read through `engine::rocks::Inspect`: a walk of the `log`
//! column family against the checkpoint (`scan_log`) and of the
//! checkpoint's entries (`scan_checkpoint`). `rocks_logdump` and
//! `rocks_snaprepair` print and act on what they find.
//!
//! Read-only, and safe beside a live server: `Inspect` is a RocksDB
//! secondary instance, a view as of opening.
//!
//! Invariant: a `LogScan` names the first entry that breaks the log the
//! checkpoint needs (unreadable, a key that is no zxid, a value that does
//! not decode or holds another zxid, a missing zxid), and every entry
//! before it was intact and in sequence from the checkpoint's start.

use std::path::Path;

use engine::persist::SnapshotRecord;
use engine::rocks::{CheckpointMeta, Inspect};
use engine::txn::Txn;

use crate::logdump::key_hex;
use crate::{hex, zxid_follows, Progress};

/// Opens the database, saying what it is when it does not open.
pub(crate) fn open(dir: &Path) -> Result<Inspect, String> {
    Inspect::open(dir)
        .map_err(|error| format!("a RocksDB data directory that does not open: {error}"))
}

/// The first entry that breaks the log.
#[derive(Debug, Clone)]
pub(crate) struct LogFault {
    /// Its key; `None` when RocksDB could not read on (the key is unknown).
    pub key: Option<Vec<u8>>,
    /// The zxid its key names, if any.
    pub zxid: Option<u64>,
    pub why: String,
    /// RocksDB itself failed to read (a damaged table file): below what
    /// dropping entries can mend.
    pub unreadable: bool,
}

impl LogFault {
    /// "key 00..05 (zxid 0x5)".
    pub fn place(&self) -> String {
        match (&self.key, self.zxid) {
            (Some(key), Some(zxid)) => format!("key {} (zxid {})", key_hex(key), hex(zxid)),
            (Some(key), None) => format!("key {}", key_hex(key)),
            (None, _) => "an unreadable spot".to_string(),
        }
    }
}

/// What a walk of the log against the checkpoint found.
#[derive(Debug, Default)]
pub(crate) struct LogScan {
    /// Every entry read.
    pub entries: u64,
    /// Intact entries before the fault (those below the start included).
    pub intact: u64,
    /// zxid range of the intact entries above the checkpoint's start.
    pub first: Option<u64>,
    pub last: Option<u64>,
    /// Intact entries at or below the checkpoint's start: left over (a
    /// checkpoint drops them), skipped by replay, harmless.
    pub below_start: u64,
    pub fault: Option<LogFault>,
    /// Entries from the fault on, the fault included.
    pub from_fault: u64,
    /// Highest zxid a key names at or after the fault.
    pub last_after_fault: Option<u64>,
    /// Bytes (keys and values) read.
    pub bytes: u64,
}

impl LogScan {
    /// "zxids 0x1–0x1d" or "no txns after the checkpoint".
    pub fn range(&self) -> String {
        match (self.first, self.last) {
            (Some(first), Some(last)) => format!("zxids {}–{}", hex(first), hex(last)),
            _ => "no txns after the checkpoint".to_string(),
        }
    }

    /// The zxid the intact log reaches: its last txn, or the checkpoint's
    /// start when it has none.
    pub fn reached(&self, start: u64) -> u64 {
        self.last.unwrap_or(start).max(start)
    }
}

/// Walks the whole log. `start` is the checkpoint's start zxid: the first
/// txn above it must be the next zxid. `each` sees every intact txn above
/// `start`, in order, until the fault.
pub(crate) fn scan_log(
    inspect: &Inspect,
    start: u64,
    progress: &mut Progress,
    mut each: impl FnMut(&Txn),
) -> Result<LogScan, String> {
    let mut scan = LogScan::default();
    let entries = inspect.log(0).map_err(|error| error.to_string())?;
    let mut previous = start;
    for entry in entries {
        progress.advance(1);
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                if scan.fault.is_none() {
                    scan.fault = Some(LogFault {
                        key: None,
                        zxid: None,
                        why: format!(
                            "RocksDB cannot read the log past {}: {error}",
                            hex(previous)
                        ),
                        unreadable: true,
                    });
                }
                break;
            }
        };
        scan.entries += 1;
        scan.bytes = scan.bytes.saturating_add(entry.bytes);
        if scan.fault.is_some() {
            scan.from_fault += 1;
            if entry.zxid > scan.last_after_fault {
                scan.last_after_fault = entry.zxid;
            }
            continue;
        }
        // Recovery reads the log from the key after the start on; what sorts
        // before it is never read.
        if entry.key.as_slice() < &start.saturating_add(1).to_be_bytes()[..] {
            scan.intact += 1;
            scan.below_start += 1;
            continue;
        }
        let why = match (entry.zxid, &entry.txn) {
            (None, _) => Some(format!("the key has {} bytes: not a zxid", entry.key.len())),
            (Some(_), Err(error)) => Some(format!("does not decode: {error}")),
            (Some(zxid), Ok(txn)) if u64::try_from(txn.zxid.0).ok() != Some(zxid) => {
                Some(format!("holds txn {}, not {}", txn.zxid, hex(zxid)))
            }
            (Some(zxid), Ok(_)) if !zxid_follows(previous, zxid) => Some(if scan.first.is_none() {
                format!(
                    "the log after the checkpoint starts at {}, not right after its start {}: \
                     the txns in between are missing",
                    hex(zxid),
                    hex(start)
                )
            } else {
                format!(
                    "zxid {} does not follow {}: the txns in between are missing",
                    hex(zxid),
                    hex(previous)
                )
            }),
            (Some(_), Ok(_)) => None,
        };
        if let Some(why) = why {
            scan.fault = Some(LogFault {
                key: Some(entry.key.clone()),
                zxid: entry.zxid,
                why,
                unreadable: false,
            });
            scan.from_fault = 1;
            scan.last_after_fault = entry.zxid;
            continue;
        }
        scan.intact += 1;
        let (Some(zxid), Ok(txn)) = (entry.zxid, &entry.txn) else {
            continue;
        };
        scan.first.get_or_insert(zxid);
        scan.last = Some(zxid);
        previous = zxid;
        each(txn);
    }
    Ok(scan)
}

/// What a walk of the checkpoint's entries found.
#[derive(Debug, Default)]
pub(crate) struct CheckpointScan {
    pub entries: u64,
    pub nodes: u64,
    pub sessions: u64,
    pub bytes: u64,
    /// The first entry that is unreadable or does not decode: (where, why).
    pub fault: Option<String>,
}

/// Walks the checkpoint `meta` names; `each` sees every decoded record.
pub(crate) fn scan_checkpoint(
    inspect: &Inspect,
    meta: &CheckpointMeta,
    progress: &mut Progress,
    mut each: impl FnMut(SnapshotRecord),
) -> Result<CheckpointScan, String> {
    let mut scan = CheckpointScan::default();
    let entries = inspect
        .checkpoint(meta)
        .map_err(|error| error.to_string())?;
    for entry in entries {
        progress.advance(1);
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                scan.fault.get_or_insert(format!(
                    "RocksDB cannot read the checkpoint past its {} entries: {error}",
                    scan.entries
                ));
                break;
            }
        };
        scan.entries += 1;
        scan.bytes = scan.bytes.saturating_add(entry.bytes);
        match entry.record {
            Ok(record) => {
                match record {
                    SnapshotRecord::Node { .. } => scan.nodes += 1,
                    SnapshotRecord::Session { .. } => scan.sessions += 1,
                }
                each(record);
            }
            Err(error) => {
                scan.fault.get_or_insert(format!(
                    "the checkpoint entry with key {} does not decode: {error}",
                    key_hex(&entry.key)
                ));
            }
        }
    }
    if scan.fault.is_none() && meta.written && scan.nodes == 0 {
        scan.fault = Some(format!(
            "the meta names checkpoint generation {} but it has no nodes",
            meta.generation
        ));
    }
    Ok(scan)
}

/// The meta in one line.
pub(crate) fn describe_meta(meta: &CheckpointMeta) -> String {
    if !meta.written {
        return "no checkpoint yet (the log holds everything)".to_string();
    }
    format!(
        "checkpoint generation {}, start {}, end {}, {} nodes, digest {:016x}",
        meta.generation,
        hex(meta.start),
        hex(meta.end),
        meta.nodes,
        meta.digest
    )
}
