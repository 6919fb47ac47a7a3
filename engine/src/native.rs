//! The native storage backend: every txn is a record in the `wal` (group
//! committed; a ticket resolves when its batch is synced), and the tree is
//! periodically written to a `snapshot` file, fuzzily, while writes go on.
//!
//! Recovery loads the newest valid snapshot (invalid ones are skipped with a
//! warning by the snapshot crate), then replays every logged txn after the
//! snapshot's start zxid with `apply_replay`, which converges over a fuzzy
//! snapshot (DESIGN.md invariant 6). Opening the WAL truncates a torn tail of
//! its last segment and refuses a corrupt record in the middle of the log
//! (invariant 7): that error names the file and the offset. Replay must reach
//! the snapshot's end zxid, where the tree's digest must equal the one the
//! snapshot recorded; otherwise the snapshot is refused.
//!
//! `install` (Zab SNAP) replaces the whole state through a staging directory:
//! the new snapshot is written to `install/`, which a rename to
//! `install.ready/` commits; then the log and the old snapshots are removed
//! and the new snapshot moved into place. Opening finishes a committed
//! install a crash interrupted and discards an uncommitted one.

use crate::apply::apply_replay;
use crate::persist::{self, SnapshotCursor, SnapshotRecord};
use crate::restore::{restore_pipelined, RestoreError};
use crate::storage::{DurableWait, Storage, StorageError, Ticket};
use crate::tree::DataTree;
use crate::txn::Txn;
use crate::types::Zxid;
use parking_lot::RwLock;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Nodes written per hold of the tree's read lock while snapshotting, so
/// writers wait at most for one chunk.
const SNAPSHOT_CHUNK_NODES: usize = 1_000;
const SNAPSHOT_ZSTD_LEVEL: i32 = 1;
const DATABASE_ID_FILE: &str = "database_id";
/// Where `install` writes the new snapshot (in the snapshot directory).
const INSTALL_STAGING: &str = "install";
/// The staging directory once the install is committed.
const INSTALL_READY: &str = "install.ready";

#[derive(Clone, Debug)]
pub struct NativeConfig {
    /// Snapshots (`dataDir`).
    pub snapshot_dir: PathBuf,
    /// WAL segments (`dataLogDir`).
    pub log_dir: PathBuf,
    pub pre_alloc_bytes: u64,
    /// `forceSync`; false is unsafe (acknowledged writes may be lost).
    pub force_sync: bool,
    /// How the log writes and syncs (`wal::IoMode`).
    pub io: wal::IoMode,
    /// A log segment is closed and a new one started past this size.
    pub segment_max_bytes: u64,
}

/// Log segments of ZooKeeper's default size limit.
pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 64 * 1024 * 1024;

pub struct NativeStorage {
    wal: Arc<wal::Wal>,
    config: NativeConfig,
    database_id: u64,
    recovered: Option<(DataTree, Zxid)>,
    /// The last zxid of the state as recovered, installed or truncated to:
    /// with no log segment at all, nothing after it exists.
    base: Zxid,
    /// Held while a snapshot is written, and by `truncate_after` and
    /// `install`, so neither runs under a snapshot of the state it replaces.
    snapshotting: Arc<parking_lot::Mutex<()>>,
}

impl NativeStorage {
    /// Opens (creating if needed) the data directories and recovers the state.
    pub fn open(config: NativeConfig) -> Result<NativeStorage, StorageError> {
        for dir in [&config.snapshot_dir, &config.log_dir] {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let database_id = database_id(&config.snapshot_dir)?;
        finish_install(&config.snapshot_dir, Finish::LogClosed(&config.log_dir))?;
        let wal_config = wal::WalConfig {
            pre_alloc_bytes: config.pre_alloc_bytes,
            force_sync: config.force_sync,
            database_id,
            io: config.io,
            segment_max_bytes: config.segment_max_bytes,
            ..wal::WalConfig::new(&config.log_dir)
        };
        // Opening the log checks every record in it and needs nothing from
        // the snapshot, so it runs beside the snapshot's restore.
        let (loaded, opened) = std::thread::scope(|scope| {
            let opening = std::thread::Builder::new()
                .name("wal-open".into())
                .spawn_scoped(scope, || wal::Wal::open(wal_config));
            let loaded = load_snapshot(&config.snapshot_dir, database_id);
            let opened = opening.map(|opening| {
                opening
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            (loaded, opened)
        });
        let (mut tree, snapshot) = loaded?;
        let (wal, report) = opened
            .map_err(|source| StorageError::Io {
                path: config.log_dir.clone(),
                source,
            })?
            .map_err(wal_error)?;
        if report.truncated_bytes > 0 {
            tracing::warn!(
                bytes = report.truncated_bytes,
                "truncated a torn record at the end of the log"
            );
        }
        let replayed = replay(&config.log_dir, &snapshot, &mut tree)?;
        let last = tree.last_zxid();
        tracing::info!(
            snapshot_zxid = %snapshot.start, replayed, %last, nodes = tree.node_count(), io = report.io,
            "recovered from snapshot and log"
        );
        Ok(NativeStorage {
            wal: Arc::new(wal),
            config,
            database_id,
            recovered: Some((tree, last)),
            base: last,
            snapshotting: Arc::new(parking_lot::Mutex::new(())),
        })
    }

    /// What the server's snapshot thread needs; shareable across threads.
    pub fn snapshotter(&self) -> Snapshotter {
        Snapshotter {
            wal: Arc::clone(&self.wal),
            dir: self.config.snapshot_dir.clone(),
            database_id: self.database_id,
            running: Arc::clone(&self.snapshotting),
        }
    }

    /// The end zxid of every snapshot that opens (a damaged one is skipped,
    /// as recovery skips it).
    fn snapshot_ends(&self) -> Result<Vec<Zxid>, StorageError> {
        let mut ends = Vec::new();
        for (_, path) in snapshot::list(&self.config.snapshot_dir).map_err(snapshot_error)? {
            if let Ok(reader) = snapshot::SnapshotReader::open(&path) {
                ends.push(zxid_i64(reader.trailer().end_zxid, &path)?);
            }
        }
        Ok(ends)
    }
}

impl Storage for NativeStorage {
    fn append(&mut self, txns: &[Txn]) -> Result<Ticket, StorageError> {
        let mut records = Vec::with_capacity(txns.len());
        for txn in txns {
            let payload = persist::encode_txn(txn)
                .map_err(|error| StorageError::Encode(error.to_string()))?;
            let zxid = u64::try_from(txn.zxid.0)
                .map_err(|_| StorageError::Encode(format!("negative zxid {}", txn.zxid)))?;
            records.push(wal::Record { zxid, payload });
        }
        self.wal.append(records).map(Ticket).map_err(wal_error)
    }

    fn waiter(&self) -> Arc<dyn DurableWait> {
        Arc::new(WalWaiter(Arc::clone(&self.wal)))
    }

    fn recover(&mut self) -> Result<(DataTree, Zxid), StorageError> {
        if let Some(recovered) = self.recovered.take() {
            return Ok(recovered);
        }
        let (mut tree, snapshot) = load_snapshot(&self.config.snapshot_dir, self.database_id)?;
        replay(&self.config.log_dir, &snapshot, &mut tree)?;
        let last = tree.last_zxid();
        Ok((tree, last))
    }

    fn read_log(&self, after: Zxid, max: usize) -> Result<Vec<Txn>, StorageError> {
        let floor = self.log_floor()?;
        if after < floor {
            return Err(StorageError::LogCompacted { after, floor });
        }
        // A reader may see records written but not yet synced.
        let Some(durable) = self.wal.durable().map_err(wal_error)?.zxid else {
            return Ok(Vec::new());
        };
        let reader = wal::Reader::open(&self.config.log_dir, zxid_u64(after).saturating_add(1))
            .map_err(wal_error)?;
        let mut txns = Vec::new();
        for record in reader {
            let record = record.map_err(wal_error)?;
            if txns.len() >= max || record.zxid > durable {
                break;
            }
            txns.push(decode_logged(&self.config.log_dir, &record)?);
        }
        Ok(txns)
    }

    fn log_floor(&self) -> Result<Zxid, StorageError> {
        let segments = wal::segments(&self.config.log_dir).map_err(wal_error)?;
        let Some((first, path)) = segments.first() else {
            return Ok(self.base);
        };
        // Segments are only purged to make room behind a snapshot: with
        // none, the log still starts at the beginning.
        if snapshot::list(&self.config.snapshot_dir)
            .map_err(snapshot_error)?
            .is_empty()
        {
            return Ok(Zxid::ZERO);
        }
        // The log is contiguous from its first record, which opens the
        // oldest segment.
        zxid_i64(first.saturating_sub(1), path)
    }

    fn truncate_after(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        let _no_snapshot = self.snapshotting.lock();
        if let Some(checkpoint) = self.snapshot_ends()?.into_iter().max() {
            if checkpoint > zxid {
                return Err(StorageError::TruncateBelowCheckpoint { zxid, checkpoint });
            }
        }
        let last = self.wal.truncate_after(zxid_u64(zxid)).map_err(wal_error)?;
        if last.is_none() {
            self.base = self.base.min(zxid);
        }
        self.recovered = None;
        Ok(())
    }

    fn install(&mut self, tree: &DataTree) -> Result<(), StorageError> {
        let _no_snapshot = self.snapshotting.lock();
        let dir = &self.config.snapshot_dir;
        stage_install(dir, self.database_id, tree)?;
        finish_install(dir, Finish::LogOpen(&self.wal))?;
        self.base = tree.last_zxid();
        self.recovered = None;
        Ok(())
    }

    fn checkpointer(&self) -> Arc<dyn crate::Checkpointer> {
        Arc::new(self.snapshotter())
    }

    fn name(&self) -> &'static str {
        "native"
    }
}

/// Writes `tree` as a snapshot in the staging directory, then commits the
/// install by renaming that to `install.ready`.
fn stage_install(dir: &Path, database_id: u64, tree: &DataTree) -> Result<(), StorageError> {
    let staging = dir.join(INSTALL_STAGING);
    remove_dir(&staging)?;
    create_dir(&staging)?;
    let last = zxid_u64(tree.last_zxid());
    let mut writer =
        snapshot::SnapshotWriter::create(&staging, last, database_id, SNAPSHOT_ZSTD_LEVEL)
            .map_err(snapshot_error)?;
    write_chunks(&mut writer, |cursor, records| {
        cursor.next_chunk(tree, SNAPSHOT_CHUNK_NODES, records)
    })?;
    writer.finish(tree.digest(), last).map_err(snapshot_error)?;
    // The commit point: from here on, opening finishes the install.
    rename(&staging, &dir.join(INSTALL_READY))?;
    sync_dir(dir)
}

/// Whether the log is open (a live install) or not yet (at open).
enum Finish<'a> {
    LogOpen(&'a wal::Wal),
    LogClosed(&'a Path),
}

/// Completes a committed install, if one is in `dir`: drops the whole log
/// and every snapshot, then moves the installed snapshot into place. Each
/// step can be repeated, so a crash anywhere in here is finished by the next
/// open. Also removes an uncommitted install's staging directory.
fn finish_install(dir: &Path, log: Finish<'_>) -> Result<(), StorageError> {
    remove_dir(&dir.join(INSTALL_STAGING))?;
    let ready = dir.join(INSTALL_READY);
    if !ready.is_dir() {
        return Ok(());
    }
    let installed = snapshot::list(&ready).map_err(snapshot_error)?;
    if let Some((_, from)) = installed.first() {
        match log {
            Finish::LogOpen(wal) => {
                wal.truncate_after(0).map_err(wal_error)?;
            }
            Finish::LogClosed(log_dir) => {
                for (_, segment) in wal::segments(log_dir).map_err(wal_error)? {
                    std::fs::remove_file(&segment).map_err(|source| StorageError::Io {
                        path: segment.clone(),
                        source,
                    })?;
                }
                sync_dir(log_dir)?;
            }
        }
        for (_, old) in snapshot::list(dir).map_err(snapshot_error)? {
            std::fs::remove_file(&old).map_err(|source| StorageError::Io {
                path: old.clone(),
                source,
            })?;
        }
        let name = from.file_name().unwrap_or_default();
        rename(from, &dir.join(name))?;
        sync_dir(dir)?;
    }
    remove_dir(&ready)?;
    sync_dir(dir)
}

fn remove_dir(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_dir_all(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(StorageError::Io {
            path: path.to_path_buf(),
            source: error,
        }),
        _ => Ok(()),
    }
}

fn create_dir(path: &Path) -> Result<(), StorageError> {
    std::fs::create_dir(path).map_err(|source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    std::fs::rename(from, to).map_err(|source| StorageError::Io {
        path: from.to_path_buf(),
        source,
    })
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|source| StorageError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Feeds the records `next_chunk` yields to a snapshot, in sections.
fn write_chunks(
    writer: &mut snapshot::SnapshotWriter,
    mut next_chunk: impl FnMut(&mut SnapshotCursor, &mut Vec<SnapshotRecord>),
) -> Result<(), StorageError> {
    let mut cursor = SnapshotCursor::new();
    let mut records = Vec::with_capacity(SNAPSHOT_CHUNK_NODES);
    while !cursor.is_done() {
        next_chunk(&mut cursor, &mut records);
        for record in records.drain(..) {
            let section = match record {
                SnapshotRecord::Node { .. } => snapshot::Section::Nodes,
                SnapshotRecord::Session { .. } => snapshot::Section::Sessions,
            };
            let bytes = persist::encode_record(&record)
                .map_err(|error| StorageError::Encode(error.to_string()))?;
            writer.entry(section, &bytes).map_err(snapshot_error)?;
        }
    }
    Ok(())
}

struct WalWaiter(Arc<wal::Wal>);

impl DurableWait for WalWaiter {
    fn wait(&self, ticket: Ticket) -> Result<(), StorageError> {
        self.0.wait_durable(ticket.0).map_err(wal_error)
    }
}

/// Writes fuzzy snapshots of a live tree and purges what they make obsolete.
#[derive(Clone)]
pub struct Snapshotter {
    wal: Arc<wal::Wal>,
    dir: PathBuf,
    database_id: u64,
    /// One snapshot at a time, and none during a truncate or install.
    running: Arc<parking_lot::Mutex<()>>,
}

impl Snapshotter {
    /// Walks the tree in chunks, releasing the read lock between them, and
    /// writes a snapshot named by the zxid it started from.
    pub fn take(&self, tree: &RwLock<DataTree>) -> Result<crate::Checkpoint, StorageError> {
        let _one = self.running.lock();
        let start = tree.read().last_zxid();
        let mut writer = snapshot::SnapshotWriter::create(
            &self.dir,
            zxid_u64(start),
            self.database_id,
            SNAPSHOT_ZSTD_LEVEL,
        )
        .map_err(snapshot_error)?;
        write_chunks(&mut writer, |cursor, records| {
            cursor.next_chunk(&tree.read(), SNAPSHOT_CHUNK_NODES, records)
        })?;
        let (digest, end) = {
            let tree = tree.read();
            (tree.digest(), tree.last_zxid())
        };
        let path = writer
            .finish(digest, zxid_u64(end))
            .map_err(snapshot_error)?;
        Ok(crate::Checkpoint {
            start,
            end,
            digest,
            location: path.display().to_string(),
        })
    }

    /// Keeps the newest `retain_count` snapshots (at least 3) and the log
    /// segments the oldest of them needs; removes the rest.
    pub fn purge(&self, retain_count: usize) -> Result<Vec<PathBuf>, StorageError> {
        let report = snapshot::purge(&self.dir, retain_count).map_err(snapshot_error)?;
        let mut removed = report.removed;
        if let Some(oldest) = report.oldest_retained_zxid {
            removed.extend(
                self.wal
                    .purge_before(oldest.saturating_add(1))
                    .map_err(wal_error)?,
            );
        }
        Ok(removed)
    }
}

impl crate::Checkpointer for Snapshotter {
    fn take(&self, tree: &RwLock<DataTree>) -> Result<crate::Checkpoint, StorageError> {
        Snapshotter::take(self, tree)
    }

    fn purge(&self, retain: usize) -> Result<usize, StorageError> {
        Snapshotter::purge(self, retain).map(|removed| removed.len())
    }
}

/// The newest snapshot that reads back whole, restored; an empty tree if
/// there is none. A bad snapshot is skipped with a warning (the log before
/// it is kept by purge, so an older snapshot plus more replay still works).
/// Each candidate is decoded once, straight into the tree: its checksums
/// are verified as its entries stream by, and a tree built from a snapshot
/// that turns out bad at its end is dropped.
fn load_snapshot(dir: &Path, database_id: u64) -> Result<(DataTree, Loaded), StorageError> {
    for (zxid, path) in snapshot::list(dir).map_err(snapshot_error)? {
        match load_one(&path, zxid, database_id) {
            Ok(loaded) => return Ok(loaded),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipping unreadable snapshot")
            }
        }
    }
    let empty = Loaded {
        start: Zxid::ZERO,
        end: None,
    };
    Ok((DataTree::new(), empty))
}

/// Where a restored snapshot leaves recovery.
#[derive(Debug)]
struct Loaded {
    /// Replay starts after this zxid.
    start: Zxid,
    /// The snapshot's end zxid, the tree's digest there and the file: replay
    /// must reach that zxid and find that digest.
    end: Option<(Zxid, u64, PathBuf)>,
}

fn load_one(path: &Path, zxid: u64, database_id: u64) -> Result<(DataTree, Loaded), StorageError> {
    let corrupt = |what: String| StorageError::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        what,
    };
    let reader = snapshot::SnapshotReader::open(path).map_err(snapshot_error)?;
    if reader.header().database_id != database_id {
        return Err(corrupt("snapshot belongs to another database".into()));
    }
    let start = zxid_i64(zxid, path)?;
    let trailer = reader.trailer();
    // The entry count sizes the node map up front. It is only a hint, and
    // one a damaged trailer could inflate: no entry compresses to less than
    // a few bytes, so it is capped by the compressed size.
    let expected = trailer.entry_count.min(trailer.compressed_bytes / 4);
    let expected = usize::try_from(expected).unwrap_or(0);
    let tree = restore_pipelined(start, expected, |sink| {
        let mut entries = reader.entries();
        let mut payload = Vec::new();
        while entries
            .next_into(&mut payload)
            .map_err(snapshot_error)?
            .is_some()
        {
            if !sink(&payload) {
                break;
            }
        }
        Ok(())
    })
    .map_err(|error| match error {
        RestoreError::Read(error) => error,
        RestoreError::Decode(error) => corrupt(error.to_string()),
        RestoreError::Tree(error) => corrupt(format!("inconsistent node: {error:?}")),
        RestoreError::Spawn(source) => StorageError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let end = zxid_i64(trailer.end_zxid, path)?;
    let loaded = Loaded {
        start,
        end: Some((end, trailer.digest, path.to_path_buf())),
    };
    Ok((tree, loaded))
}

/// Replays every logged txn after the snapshot's start onto `tree`, checking
/// the tree against the snapshot's digest when it reaches the snapshot's
/// end; returns how many txns were replayed.
fn replay(log_dir: &Path, snapshot: &Loaded, tree: &mut DataTree) -> Result<u64, StorageError> {
    let start = snapshot.start;
    let check_end = |tree: &DataTree| match &snapshot.end {
        Some((end, digest, file)) if tree.last_zxid() == *end && tree.digest() != *digest => {
            Err(StorageError::Corrupt {
                file: file.clone(),
                offset: 0,
                what: format!(
                    "the tree replayed to the snapshot's end zxid {end} has digest {:#x}, \
                     the snapshot recorded {digest:#x}",
                    tree.digest()
                ),
            })
        }
        _ => Ok(()),
    };
    check_end(tree)?;
    let mut replayed = 0;
    let reader =
        wal::Reader::open(log_dir, zxid_u64(start).saturating_add(1)).map_err(wal_error)?;
    for record in reader {
        let record = record.map_err(wal_error)?;
        let txn = decode_logged(log_dir, &record)?;
        if txn.zxid <= start {
            continue;
        }
        apply_replay(tree, &txn);
        replayed += 1;
        check_end(tree)?;
    }
    if let Some((end, _, file)) = &snapshot.end {
        if tree.last_zxid() < *end {
            return Err(StorageError::Corrupt {
                file: file.clone(),
                offset: 0,
                what: format!(
                    "the log ends at {} but the snapshot needs it up to {end}",
                    tree.last_zxid()
                ),
            });
        }
    }
    Ok(replayed)
}

fn decode_logged(log_dir: &Path, record: &wal::Record) -> Result<Txn, StorageError> {
    persist::decode_txn(&record.payload).map_err(|error| StorageError::Corrupt {
        file: log_dir.to_path_buf(),
        offset: 0,
        what: format!("txn {:#x} does not decode: {error}", record.zxid),
    })
}

/// The id written in every segment and snapshot header, so files of two
/// databases are never mixed. Made once per data directory.
fn database_id(dir: &Path) -> Result<u64, StorageError> {
    let path = dir.join(DATABASE_ID_FILE);
    let io = |source| StorageError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => u64::from_str_radix(text.trim(), 16).map_err(|_| StorageError::Corrupt {
            file: path.clone(),
            offset: 0,
            what: format!("not a database id: {:?}", text.trim()),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos() as u64)
                .unwrap_or(0);
            let id = now ^ (u64::from(std::process::id()) << 48);
            let temp = dir.join(format!("{DATABASE_ID_FILE}.tmp"));
            std::fs::write(&temp, format!("{id:016x}\n")).map_err(io)?;
            std::fs::File::open(&temp)
                .and_then(|file| file.sync_all())
                .map_err(io)?;
            std::fs::rename(&temp, &path).map_err(io)?;
            std::fs::File::open(dir)
                .and_then(|file| file.sync_all())
                .map_err(io)?;
            Ok(id)
        }
        Err(error) => Err(io(error)),
    }
}

fn zxid_u64(zxid: Zxid) -> u64 {
    // Zxids the tree holds are never negative: they start at 0 and grow.
    u64::try_from(zxid.0).unwrap_or(0)
}

fn zxid_i64(zxid: u64, file: &Path) -> Result<Zxid, StorageError> {
    i64::try_from(zxid)
        .map(Zxid)
        .map_err(|_| StorageError::Corrupt {
            file: file.to_path_buf(),
            offset: 0,
            what: format!("zxid {zxid:#x} out of range"),
        })
}

fn wal_error(error: wal::Error) -> StorageError {
    match error {
        wal::Error::Corrupt { file, offset } => StorageError::Corrupt {
            file,
            offset,
            what: "corrupt log record".into(),
        },
        wal::Error::Poisoned => StorageError::Poisoned,
        other => StorageError::Wal(other.to_string()),
    }
}

fn snapshot_error(error: snapshot::Error) -> StorageError {
    StorageError::Snapshot(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testing::{create, prep_at, recovered, write};
    use crate::types::Acl;

    fn config(dir: &Path) -> NativeConfig {
        NativeConfig {
            snapshot_dir: dir.to_path_buf(),
            log_dir: dir.join("log"),
            pre_alloc_bytes: 1 << 20,
            force_sync: true,
            io: wal::IoMode::Auto,
            segment_max_bytes: DEFAULT_SEGMENT_MAX_BYTES,
        }
    }

    #[test]
    fn restart_recovers_snapshot_plus_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let digest = {
            let mut storage = NativeStorage::open(config(dir.path())).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            assert_eq!(tree.read().last_zxid(), Zxid::ZERO);
            write(
                &mut storage,
                &tree,
                &mut prep,
                &(0..50)
                    .map(|i| create(&format!("/a{i}")))
                    .collect::<Vec<_>>(),
            );
            storage.snapshotter().take(&tree).expect("snapshot");
            write(
                &mut storage,
                &tree,
                &mut prep,
                &(0..50)
                    .map(|i| create(&format!("/b{i}")))
                    .collect::<Vec<_>>(),
            );
            let digest = tree.read().digest();
            digest
        };
        let mut storage = NativeStorage::open(config(dir.path())).expect("reopen");
        let (tree, last) = storage.recover().expect("recover");
        assert_eq!(last, Zxid(100));
        assert_eq!(tree.digest(), digest);
        tree.check_invariants().expect("invariants");
    }

    /// A snapshot whose nodes do not fit a tree (here: orphans, many more
    /// than the decoding thread can have in flight) is skipped like a
    /// damaged one, and the thread decoding it stops rather than waiting
    /// forever to hand over records nobody takes.
    #[test]
    fn inconsistent_snapshot_is_skipped() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(NativeStorage::open(config(dir.path())).expect("open"));
        let database_id = database_id(dir.path()).expect("database id");
        let mut writer =
            snapshot::SnapshotWriter::create(dir.path(), 5, database_id, 1).expect("create");
        for i in 0..4 * crate::restore::BATCH_RECORDS * crate::restore::BATCHES_IN_FLIGHT {
            let record = SnapshotRecord::Node {
                path: format!("/missing/n{i}"),
                data: None,
                acl: Acl::open_unsafe(),
                kind: crate::txn::NodeKind::Persistent,
                stat: crate::types::Stat::default(),
            };
            let bytes = persist::encode_record(&record).expect("encodes");
            writer
                .entry(snapshot::Section::Nodes, &bytes)
                .expect("entry");
        }
        writer.finish(0, 5).expect("finish");
        let error = load_one(&dir.path().join(snapshot::file_name(5)), 5, database_id)
            .expect_err("orphans refused");
        assert!(matches!(error, StorageError::Corrupt { .. }), "{error:?}");
        let mut storage = NativeStorage::open(config(dir.path())).expect("reopen");
        let (tree, last) = storage.recover().expect("recover");
        assert_eq!(last, Zxid::ZERO);
        assert_eq!(tree.node_count(), DataTree::new().node_count());
    }

    /// A damaged newest snapshot is skipped: the older one plus a longer
    /// replay gives the same tree.
    #[test]
    fn damaged_snapshot_falls_back_to_an_older_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (digest, newest) = {
            let mut storage = NativeStorage::open(config(dir.path())).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            write(&mut storage, &tree, &mut prep, &[create("/a")]);
            storage.snapshotter().take(&tree).expect("snapshot");
            write(&mut storage, &tree, &mut prep, &[create("/b")]);
            let newest = storage
                .snapshotter()
                .take(&tree)
                .expect("snapshot")
                .location;
            write(&mut storage, &tree, &mut prep, &[create("/c")]);
            let digest = tree.read().digest();
            (digest, newest)
        };
        let mut bytes = std::fs::read(&newest).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&newest, bytes).expect("write");
        let mut storage = NativeStorage::open(config(dir.path())).expect("reopen");
        let (tree, last) = storage.recover().expect("recover");
        assert_eq!(last, Zxid(3));
        assert_eq!(tree.digest(), digest);
    }

    /// An install cut short by a crash: before its commit point the old
    /// state stays, after it the next open finishes the install, whichever
    /// step it stopped at.
    #[test]
    fn an_interrupted_install_rolls_back_or_forward() {
        let build = |prefix: &str, count: usize| {
            let mut tree = DataTree::new();
            let mut prep = prep_at(Zxid::ZERO);
            for i in 0..count {
                let txn = prep
                    .prep(
                        &tree,
                        crate::types::SessionId(1),
                        0,
                        &[],
                        &create(&format!("{prefix}{i}")),
                        1_000,
                    )
                    .expect("prep");
                crate::apply::apply(&mut tree, &txn);
                prep.applied(tree.last_zxid());
            }
            tree
        };
        let installed = build("/new", 8);
        let state_of = |dir: &Path| {
            let mut storage = NativeStorage::open(config(dir)).expect("open");
            let (tree, last) = storage.recover().expect("recover");
            (last, tree.digest())
        };
        let old_state = |dir: &Path| {
            let mut storage = NativeStorage::open(config(dir)).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            write(
                &mut storage,
                &tree,
                &mut prep,
                &[create("/old0"), create("/old1")],
            );
            storage.snapshotter().take(&tree).expect("snapshot");
            write(&mut storage, &tree, &mut prep, &[create("/old2")]);
            let state = (tree.read().last_zxid(), tree.read().digest());
            (state, storage.database_id)
        };

        // Staged, never committed: the old state stays.
        let dir = tempfile::tempdir().expect("temp dir");
        let (old, database_id) = old_state(dir.path());
        stage_install(dir.path(), database_id, &installed).expect("stage");
        rename(
            &dir.path().join(INSTALL_READY),
            &dir.path().join(INSTALL_STAGING),
        )
        .expect("uncommit");
        assert_eq!(state_of(dir.path()), old);
        assert!(!dir.path().join(INSTALL_STAGING).exists());

        // Committed, nothing else done: the open finishes it.
        let new = (installed.last_zxid(), installed.digest());
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, database_id) = old_state(dir.path());
        stage_install(dir.path(), database_id, &installed).expect("stage");
        assert_eq!(state_of(dir.path()), new);
        assert!(!dir.path().join(INSTALL_READY).exists());
        assert_eq!(snapshot::list(dir.path()).expect("list").len(), 1);

        // Committed and moved into place, the empty directory left over.
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, database_id) = old_state(dir.path());
        stage_install(dir.path(), database_id, &installed).expect("stage");
        finish_install(dir.path(), Finish::LogClosed(&dir.path().join("log"))).expect("finish");
        create_dir(&dir.path().join(INSTALL_READY)).expect("leftover");
        assert_eq!(state_of(dir.path()), new);
        assert!(!dir.path().join(INSTALL_READY).exists());
    }
}
