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
//! snapshot recorded (`restore::Replay`). A snapshot whose digest does not
//! match is set aside, with a warning, for the next older one, as long as
//! the log still reaches back to it; if none is left, the first mismatch is
//! the error.
//!
//! `install` (Zab SNAP) replaces the whole state through a staging directory:
//! the new snapshot is written to `install/`, which a rename to
//! `install.ready/` commits; then the log and the old snapshots are removed
//! and the new snapshot moved into place. Opening finishes a committed
//! install a crash interrupted and discards an uncommitted one.

use crate::persist::{self, SnapshotCursor, SnapshotRecord};
use crate::restore::{restore_pipelined, Replay, ReplayError, RestoreError};
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
/// The highest zxid below which the log may have been cut (segments purged
/// behind a snapshot, or dropped by an install), in hex; 0 in a directory
/// whose log was never cut. Written, synced, before the cut. Recovery from
/// the empty state (no usable snapshot) needs a log that was never cut.
/// Directories from before it have none (`reaches_back` then judges).
const LOG_CUT_FILE: &str = "log_cut";
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
            let loaded = load_snapshot(&config.snapshot_dir, database_id, None);
            let opened = opening.map(|opening| {
                opening
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            (loaded, opened)
        });
        let loaded = loaded?;
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
        let (tree, snapshot, replayed) = recover_state(&config, database_id, loaded)?;
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
        let loaded = load_snapshot(&self.config.snapshot_dir, self.database_id, None)?;
        let (tree, _, _) = recover_state(&self.config, self.database_id, loaded)?;
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

    fn sync_stats(&self) -> Option<Arc<crate::storage::SyncStats>> {
        Some(self.wal.sync_stats())
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
    // The install drops the whole log.
    write_log_cut(dir, tree.last_zxid())?;
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

    fn durable(&self) -> Result<Ticket, StorageError> {
        self.0
            .durable()
            .map(|durable| Ticket(durable.seq))
            .map_err(wal_error)
    }

    fn wakeups(&self) -> crossbeam_channel::Receiver<()> {
        self.0.wakeups()
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
            write_log_cut(&self.dir, Zxid(i64::try_from(oldest).unwrap_or(i64::MAX)))?;
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

/// The newest snapshot that reads back whole, restored, among those started
/// before zxid `below` (all, if `None`); an empty tree if there is none. A
/// bad snapshot is skipped with a warning (the log before it is kept by
/// purge, so an older snapshot plus more replay still works). Each
/// candidate is decoded once, straight into the tree: its checksums are
/// verified as its entries stream by, and a tree built from a snapshot that
/// turns out bad at its end is dropped.
fn load_snapshot(
    dir: &Path,
    database_id: u64,
    below: Option<u64>,
) -> Result<(DataTree, Loaded), StorageError> {
    let mut newest = below.is_none();
    for (zxid, path) in snapshot::list(dir).map_err(snapshot_error)? {
        if below.is_some_and(|below| zxid >= below) {
            continue;
        }
        match load_one(&path, zxid, database_id) {
            Ok((tree, loaded)) => return Ok((tree, Loaded { newest, ..loaded })),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipping unreadable snapshot")
            }
        }
        newest = false;
    }
    let empty = Loaded {
        start: Zxid::ZERO,
        end: None,
        newest,
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
    /// No newer snapshot was passed over for this one (there is none, or
    /// this is the newest): the log is known to reach back to it, as purge
    /// keeps it for the oldest snapshot retained.
    newest: bool,
}

/// Recovery after `loaded`, the newest snapshot that reads back: the log is
/// replayed over it, and if that ends in a digest mismatch (the snapshot is
/// not the state it claims) over the next older one, down to an empty tree,
/// as long as the log reaches back that far; otherwise the first mismatch is
/// the error. Returns the tree, the snapshot used and the number of txns
/// replayed.
fn recover_state(
    config: &NativeConfig,
    database_id: u64,
    loaded: (DataTree, Loaded),
) -> Result<(DataTree, Loaded, u64), StorageError> {
    let (mut tree, mut loaded) = loaded;
    let mut refused: Option<StorageError> = None;
    loop {
        let complete = if loaded.end.is_none() {
            // The empty state: the log must hold every txn there ever was.
            match read_log_cut(&config.snapshot_dir)? {
                Some(Zxid(0)) => Ok(()),
                Some(cut) => Err(StorageError::Corrupt {
                    file: config.snapshot_dir.join(LOG_CUT_FILE),
                    offset: 0,
                    what: format!(
                        "no usable snapshot, and the log was cut behind one at {cut}: the \
                         state before it is gone (move the data directory away to resync \
                         this member from the ensemble, or restore a snapshot)"
                    ),
                }),
                None => reaches_back(&config.log_dir, loaded.start),
            }
        } else if !loaded.newest {
            reaches_back(&config.log_dir, loaded.start)
        } else {
            Ok(())
        };
        {
            if let Err(error) = complete {
                if let Some(refused) = refused {
                    tracing::warn!(
                        snapshot_zxid = %loaded.start, %error,
                        "no older snapshot to fall back to"
                    );
                    return Err(refused);
                }
                return Err(error);
            }
        }
        match replay(&config.log_dir, &loaded, &mut tree) {
            Ok(replayed) => {
                if refused.is_some() {
                    tracing::warn!(
                        snapshot_zxid = %loaded.start, replayed,
                        "recovered from an older snapshot after a newer one did not match its log"
                    );
                }
                return Ok((tree, loaded, replayed));
            }
            Err(Refusal::Diverged(error)) => {
                let start = zxid_u64(loaded.start);
                tracing::warn!(
                    snapshot_zxid = %loaded.start, %error,
                    "snapshot does not match its log; falling back to an older snapshot"
                );
                refused.get_or_insert(error);
                (tree, loaded) = load_snapshot(&config.snapshot_dir, database_id, Some(start))?;
            }
            Err(Refusal::Fatal(error)) => return Err(error),
        }
    }
}

/// Whether the log still holds every txn after `start`: its oldest segment
/// begins at or before the next zxid. Purge only drops segments wholly
/// before the oldest snapshot it keeps, so this fails when recovery falls
/// back further than that.
fn reaches_back(log_dir: &Path, start: Zxid) -> Result<(), StorageError> {
    let segments = wal::segments(log_dir).map_err(wal_error)?;
    // From the empty state, a log that begins with the first zxid an
    // ensemble assigns (epoch 1, counter 1) begins at the beginning too:
    // nothing can come before it, and segments are only ever purged behind
    // a snapshot. (Found by zk-chaos: a member whose only snapshot was
    // damaged refused to start although its log was whole.)
    let from_the_start = |first: u64| start == Zxid::ZERO && first == zxid_u64(Zxid::new(1, 1));
    match segments.first() {
        Some((first, path))
            if *first > zxid_u64(start).saturating_add(1) && !from_the_start(*first) =>
        {
            Err(StorageError::Corrupt {
                file: path.clone(),
                offset: 0,
                what: format!(
                    "recovery needs the log from zxid {:#x}, after snapshot {start}, \
                     but it begins at {first:#x}",
                    zxid_u64(start).saturating_add(1)
                ),
            })
        }
        _ => Ok(()),
    }
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
        newest: true,
    };
    Ok((tree, loaded))
}

/// Why `replay` refused a snapshot.
enum Refusal {
    /// The digest did not match at the snapshot's end: an older snapshot
    /// may still do.
    Diverged(StorageError),
    /// Anything else (the log is unreadable, or does not reach the end).
    Fatal(StorageError),
}

/// Replays every logged txn after the snapshot's start onto `tree`, checking
/// the tree against the snapshot's digest when it reaches the snapshot's
/// end; returns how many txns were replayed.
fn replay(log_dir: &Path, snapshot: &Loaded, tree: &mut DataTree) -> Result<u64, Refusal> {
    let end = snapshot
        .end
        .as_ref()
        .map(|(end, digest, _)| (*end, *digest));
    let refused = |error: ReplayError| {
        let corrupt = StorageError::Corrupt {
            file: snapshot
                .end
                .as_ref()
                .map_or_else(|| log_dir.to_path_buf(), |(_, _, file)| file.clone()),
            offset: 0,
            what: error.describe("snapshot"),
        };
        match error {
            ReplayError::Diverged { .. } => Refusal::Diverged(corrupt),
            ReplayError::Short { .. } | ReplayError::Skipped { .. } => Refusal::Fatal(corrupt),
        }
    };
    let mut replay = Replay::new(snapshot.start, end);
    replay.begin(tree).map_err(refused)?;
    let reader = wal::Reader::open(log_dir, zxid_u64(snapshot.start).saturating_add(1))
        .map_err(|error| Refusal::Fatal(wal_error(error)))?;
    for record in reader {
        let record = record.map_err(|error| Refusal::Fatal(wal_error(error)))?;
        let txn = decode_logged(log_dir, &record).map_err(Refusal::Fatal)?;
        replay.txn(tree, &txn).map_err(refused)?;
    }
    replay.finish(tree).map_err(refused)
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
            // A new directory: its log was never cut.
            write_log_cut(dir, Zxid(0))?;
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

fn read_log_cut(dir: &Path) -> Result<Option<Zxid>, StorageError> {
    let path = dir.join(LOG_CUT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => u64::from_str_radix(text.trim(), 16)
            .ok()
            .and_then(|zxid| i64::try_from(zxid).ok())
            .map(|zxid| Some(Zxid(zxid)))
            .ok_or_else(|| StorageError::Corrupt {
                file: path.clone(),
                offset: 0,
                what: format!("not a zxid: {:?}", text.trim()),
            }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StorageError::Io { path, source }),
    }
}

/// Records, durably, that the log may lack txns up to `zxid` (before the
/// cut is made). Keeps the highest value.
fn write_log_cut(dir: &Path, zxid: Zxid) -> Result<(), StorageError> {
    if read_log_cut(dir)
        .ok()
        .flatten()
        .is_some_and(|cut| cut >= zxid)
        && zxid != Zxid(0)
    {
        return Ok(());
    }
    let path = dir.join(LOG_CUT_FILE);
    let temp = dir.join(format!("{LOG_CUT_FILE}.tmp"));
    let io = |source| StorageError::Io {
        path: path.clone(),
        source,
    };
    std::fs::write(&temp, format!("{:016x}\n", zxid_u64(zxid))).map_err(io)?;
    std::fs::File::open(&temp)
        .and_then(|file| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&temp, &path).map_err(io)?;
    sync_dir(dir)
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

    /// An ensemble member's log starts at epoch 1 (0x100000001). With its
    /// only snapshot damaged, recovery falls back to the empty state and
    /// replays the whole log, instead of refusing because the log does not
    /// begin at zxid 1 (regression: zk-chaos, a flipped byte in the newest
    /// and only snapshot).
    #[test]
    fn a_damaged_only_snapshot_falls_back_to_the_whole_log_of_an_ensemble() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (digest, only) = {
            let mut storage = NativeStorage::open(config(dir.path())).expect("open");
            let (tree, _) = recovered(&mut storage);
            let mut prep = prep_at(Zxid::new(1, 0));
            write(
                &mut storage,
                &tree,
                &mut prep,
                &[create("/a"), create("/b")],
            );
            let only = storage
                .snapshotter()
                .take(&tree)
                .expect("snapshot")
                .location;
            write(&mut storage, &tree, &mut prep, &[create("/c")]);
            let digest = tree.read().digest();
            (digest, only)
        };
        let mut bytes = std::fs::read(&only).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&only, bytes).expect("write");
        let mut storage = NativeStorage::open(config(dir.path())).expect("reopen");
        let (tree, last) = storage.recover().expect("recover from the whole log");
        assert_eq!(last, Zxid::new(1, 3));
        assert_eq!(tree.digest(), digest);
    }

    /// After an install (which drops the whole log) the installed snapshot
    /// is the only base: with it gone, recovery must refuse rather than
    /// replay the later log over an empty tree (regression: zk-chaos, the
    /// newest and only snapshot deleted; the member then failed applying
    /// a setData to a node its tree lacked).
    #[test]
    fn without_its_snapshot_a_cut_log_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let installed = {
            let mut storage = NativeStorage::open(config(dir.path())).expect("open");
            let (tree, _) = recovered(&mut storage);
            let mut prep = prep_at(Zxid::new(3, 0));
            write(
                &mut storage,
                &tree,
                &mut prep,
                &[create("/a"), create("/b")],
            );
            storage.install(&tree.read()).expect("install");
            write(&mut storage, &tree, &mut prep, &[create("/c")]);
            snapshot::list(dir.path()).expect("list")[0].1.clone()
        };
        std::fs::remove_file(&installed).expect("delete the snapshot");
        match NativeStorage::open(config(dir.path())).err() {
            Some(StorageError::Corrupt { file, what, .. }) => {
                assert!(file.ends_with(LOG_CUT_FILE), "{file:?}");
                assert!(what.contains("cut behind"), "{what}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Writes a snapshot of `tree` as it is now, started at its last zxid,
    /// recording `digest` (the right one, or a wrong one for tests of what
    /// recovery does with a snapshot that does not match its log).
    fn write_snapshot(dir: &Path, database_id: u64, tree: &DataTree, digest: u64) -> PathBuf {
        let start = zxid_u64(tree.last_zxid());
        let mut writer =
            snapshot::SnapshotWriter::create(dir, start, database_id, 1).expect("create");
        write_chunks(&mut writer, |cursor, records| {
            cursor.next_chunk(tree, SNAPSHOT_CHUNK_NODES, records)
        })
        .expect("write");
        writer.finish(digest, start).expect("finish")
    }

    /// Review 1.1: a snapshot whose replay ends in a digest
    /// mismatch is set aside for the next older one, which the log still
    /// reaches back to, instead of refusing to start.
    #[test]
    fn a_snapshot_that_does_not_match_its_log_falls_back_to_an_older_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let digest = {
            let mut storage = NativeStorage::open(config(dir.path())).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            write(&mut storage, &tree, &mut prep, &[create("/a")]);
            storage.snapshotter().take(&tree).expect("snapshot");
            write(&mut storage, &tree, &mut prep, &[create("/b")]);
            let wrong = tree.read().digest() ^ 1;
            write_snapshot(dir.path(), storage.database_id, &tree.read(), wrong);
            write(&mut storage, &tree, &mut prep, &[create("/c")]);
            let digest = tree.read().digest();
            digest
        };
        let mut storage = NativeStorage::open(config(dir.path())).expect("reopen");
        let (tree, last) = storage.recover().expect("recover");
        assert_eq!(last, Zxid(3));
        assert_eq!(tree.digest(), digest);
        // `recover` after a truncate or install goes the same way.
        storage.recovered = None;
        let (tree, _) = storage.recover().expect("recover again");
        assert_eq!(tree.digest(), digest);
    }

    /// When the log no longer reaches back to the older snapshot, falling
    /// back would lose txns: the mismatch is the error.
    #[test]
    fn no_fallback_to_a_snapshot_the_log_does_not_reach_back_to() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = NativeConfig {
            segment_max_bytes: 4096,
            ..config(dir.path())
        };
        let bad = {
            let mut storage = NativeStorage::open(config.clone()).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            write(&mut storage, &tree, &mut prep, &[create("/a")]);
            storage.snapshotter().take(&tree).expect("snapshot");
            for i in 0..200 {
                write(
                    &mut storage,
                    &tree,
                    &mut prep,
                    &[create(&format!("/n{i:0>40}"))],
                );
            }
            let wrong = tree.read().digest() ^ 1;
            let bad = write_snapshot(dir.path(), storage.database_id, &tree.read(), wrong);
            let purged = storage.wal.purge_before(100).expect("purge");
            assert!(!purged.is_empty(), "the log rolled into several segments");
            bad
        };
        let error = NativeStorage::open(config)
            .err()
            .expect("nothing to fall back to");
        match error {
            StorageError::Corrupt { file, what, .. } => {
                assert_eq!(file, bad);
                assert!(what.contains("has digest"), "{what}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// Review 1.1 end to end: a snapshot walked while creates under a quota
    /// land between its chunks recovers, and to the live tree.
    #[test]
    fn fuzzy_snapshot_with_quota_recovers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (digest, start, last) = {
            let mut storage = NativeStorage::open(config(dir.path())).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            let stats = crate::request::Request::Create {
                op: crate::types::OpCode::Create,
                request: crate::request::CreateRequest {
                    path: "/zookeeper/quota/q/zookeeper_stats".into(),
                    data: Some(b"count=0,bytes=0".to_vec()),
                    acl: Acl::open_unsafe(),
                    flags: 0,
                    ttl: -1,
                },
            };
            let setquota = [
                create("/q"),
                create("/q/a"),
                create("/zookeeper/quota/q"),
                stats,
            ];
            write(&mut storage, &tree, &mut prep, &setquota);
            let start = tree.read().last_zxid();
            let mut writer = snapshot::SnapshotWriter::create(
                dir.path(),
                zxid_u64(start),
                storage.database_id,
                1,
            )
            .expect("create");
            let mut step = 0;
            write_chunks(&mut writer, |cursor, records| {
                cursor.next_chunk(&tree.read(), 1, records);
                step += 1;
                write(
                    &mut storage,
                    &tree,
                    &mut prep,
                    &[create(&format!("/q/c{step}"))],
                );
            })
            .expect("write");
            let (digest, end) = (tree.read().digest(), tree.read().last_zxid());
            writer.finish(digest, zxid_u64(end)).expect("finish");
            write(&mut storage, &tree, &mut prep, &[create("/q/after")]);
            let (digest, last) = (tree.read().digest(), tree.read().last_zxid());
            (digest, start, last)
        };
        let mut storage = NativeStorage::open(config(dir.path())).expect("reopen");
        let (tree, _) = storage.recover().expect("recover");
        assert_eq!(tree.digest(), digest);
        crate::quota::check(&tree).expect("quota stats current");
        // From the fuzzy snapshot, not by falling back to replaying the
        // whole log over an empty tree.
        let loaded = load_snapshot(dir.path(), storage.database_id, None).expect("load");
        let (_, used, replayed) =
            recover_state(&config(dir.path()), storage.database_id, loaded).expect("recover");
        assert_eq!((used.start, replayed), (start, (last.0 - start.0) as u64));
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
