//! The RocksDB storage backend: the same contract as the native one (group
//! committed appends, a ticket resolves when its batch is synced, fuzzy
//! checkpoints while writes go on), kept in one RocksDB database instead of
//! WAL segments and snapshot files. It is not a second encoding: txns and
//! tree records are the `persist` bytes the native backend writes.
//!
//! Layout, two column families:
//! - `log`: key = zxid as big-endian u64 (so key order is zxid order),
//!   value = `persist::encode_txn`.
//! - `state`: the tree as of the last checkpoint. `m` holds the meta (the
//!   checkpoint's generation, start and end zxids and the digest at its
//!   end); entries are keyed `g` + generation (BE u64) + `n` + path for
//!   nodes and `s` + session id for sessions. A path sorts after every
//!   proper prefix of it, so iterating one generation in key order yields
//!   parents before children.
//!
//! Invariant: the meta names a generation that was written completely, and
//! the log holds every txn after the meta's start zxid. A checkpoint (and an
//! install) writes a new generation beside the old one and switches to it in
//! one atomic batch that also drops the old generation and the log up to the
//! new start zxid (all of it, for an install); a crash before that batch
//! leaves the old checkpoint and the whole log. Recovery restores the
//! generation, then replays the log after its start (`restore::Replay`),
//! which converges over a fuzzy checkpoint (DESIGN.md invariant 6), and
//! checks the digest when replay reaches the checkpoint's end. There is no
//! older checkpoint to fall back to: a mismatch refuses to open. A failed
//! log write poisons the backend: it is never retried.

use crate::persist::{self, SnapshotCursor, SnapshotRecord};
use crate::restore::{restore_pipelined, Replay, ReplayError, RestoreError};
use crate::storage::{
    Checkpoint, Checkpointer, DurableWait, Storage, StorageError, SyncStats, Ticket,
};
use crate::tree::DataTree;
use crate::txn::Txn;
use crate::types::Zxid;
use parking_lot::{Condvar, Mutex, RwLock};
use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, MemtableFactory, Options, WriteBatch,
    WriteOptions,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod inspect;
pub use inspect::{rocksdb_repair, CheckpointEntry, CheckpointMeta, Inspect, LoggedTxn, Offline};

const LOG_CF: &str = "log";
const STATE_CF: &str = "state";
const META_KEY: &[u8] = b"m";
const GENERATION_TAG: u8 = b'g';
const NODE_TAG: u8 = b'n';
const SESSION_TAG: u8 = b's';
/// Sorts after every 8-byte log key: the exclusive end of "the whole log".
const LOG_END_KEY: [u8; 9] = [0xff; 9];
/// Nodes written per hold of the tree's read lock while checkpointing, so
/// writers wait at most for one chunk (as for native snapshots).
const CHECKPOINT_CHUNK_NODES: usize = 1_000;
const KEEP_INFO_LOGS: usize = 5;

#[derive(Clone, Debug)]
pub struct RocksConfig {
    /// The database directory (the server uses `<dataDir>/rocksdb`).
    pub dir: PathBuf,
    /// `forceSync`; false is unsafe (acknowledged writes may be lost).
    pub force_sync: bool,
}

pub struct RocksStorage {
    db: Arc<rocksdb::DB>,
    config: RocksConfig,
    queue: Arc<Queue>,
    writer: Option<std::thread::JoinHandle<()>>,
    next_ticket: u64,
    recovered: Option<(DataTree, Zxid)>,
    /// One checkpoint at a time, and none during a truncate or install.
    running: Arc<Mutex<()>>,
    /// The current checkpoint's meta, as last written: reading it back from
    /// `state` while a checkpoint fills the memtable would be slow.
    meta: Arc<Mutex<Meta>>,
}

/// What the appender and the writer thread share.
struct Queue {
    state: Mutex<QueueState>,
    /// The writer waits here for work.
    work: Condvar,
    /// Waiters wait here for `durable` to move.
    done: Condvar,
    /// Wake-up channels (capacity 1) of `DurableWait::wakeups`.
    wakers: Mutex<Vec<crossbeam_channel::Sender<()>>>,
    /// The writer's batch sizes and sync times, as the native WAL keeps them.
    sync_stats: Arc<SyncStats>,
}

impl Queue {
    /// `durable` moved, or (with `ended`) nothing more will become durable:
    /// waiters and wake-up channels learn of it.
    fn durable_moved(&self, ended: bool) {
        self.done.notify_all();
        let mut wakers = self.wakers.lock();
        if ended {
            wakers.clear();
        } else {
            wakers.retain(|sender| {
                !matches!(
                    sender.try_send(()),
                    Err(crossbeam_channel::TrySendError::Disconnected(()))
                )
            });
        }
    }
}

/// One txn to log: (zxid, `persist::encode_txn` bytes).
type LogRecord = (u64, Vec<u8>);

#[derive(Default)]
struct QueueState {
    /// Appended, not yet handed to RocksDB: (ticket, its records).
    pending: Vec<(u64, Vec<LogRecord>)>,
    /// Every ticket up to this one is durable.
    durable: u64,
    /// The zxid of the last durable txn written since opening.
    durable_zxid: Option<u64>,
    poisoned: bool,
    closing: bool,
    /// The writer thread has returned: nothing more becomes durable.
    stopped: bool,
    /// Tests make the next write fail to see the poisoning.
    #[cfg(test)]
    fail_next: bool,
}

/// The `state` column family's meta entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    generation: u64,
    start: u64,
    /// The zxid and digest at the checkpoint's end.
    end: u64,
    digest: u64,
    /// Nodes in the tree at the end: sizes the tree on recovery.
    nodes: u64,
}

const META_BYTES: usize = 40;

impl Meta {
    /// A new database: generation 0 is empty, its tree is a fresh one.
    fn empty() -> Meta {
        Meta {
            generation: 0,
            start: 0,
            end: 0,
            digest: DataTree::new().digest(),
            nodes: 0,
        }
    }

    fn encode(&self) -> [u8; META_BYTES] {
        let mut bytes = [0u8; META_BYTES];
        for (slot, value) in bytes.chunks_exact_mut(8).zip([
            self.generation,
            self.start,
            self.end,
            self.digest,
            self.nodes,
        ]) {
            slot.copy_from_slice(&value.to_be_bytes());
        }
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Meta> {
        let bytes: &[u8; META_BYTES] = bytes.try_into().ok()?;
        let mut values = bytes
            .chunks_exact(8)
            .map(|chunk| u64::from_be_bytes(chunk.try_into().unwrap_or_default()));
        Some(Meta {
            generation: values.next()?,
            start: values.next()?,
            end: values.next()?,
            digest: values.next()?,
            nodes: values.next()?,
        })
    }
}

impl RocksStorage {
    /// Opens (creating if needed) the database and recovers the state.
    pub fn open(config: RocksConfig) -> Result<RocksStorage, StorageError> {
        std::fs::create_dir_all(&config.dir).map_err(|source| StorageError::Io {
            path: config.dir.clone(),
            source,
        })?;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // RocksDB's own info logs (LOG.old.*) would otherwise pile up, one
        // per start-up, by the thousand.
        options.set_keep_log_file_num(KEEP_INFO_LOGS);
        // One thread writes each column family; the vector memtable below
        // cannot take concurrent writes anyway.
        options.set_allow_concurrent_memtable_write(false);
        // `state` is written in bulk, a whole tree per checkpoint, in the
        // tree walk's order, and read back only by recovery: a vector
        // memtable appends each entry and sorts once at flush, where the
        // default skiplist pays a sorted insert per entry.
        let mut state_options = Options::default();
        state_options.set_memtable_factory(MemtableFactory::Vector);
        let families = [
            ColumnFamilyDescriptor::new(LOG_CF, Options::default()),
            ColumnFamilyDescriptor::new(STATE_CF, state_options),
        ];
        let db = rocksdb::DB::open_cf_descriptors(&options, &config.dir, families)
            .map_err(|error| db_error(&config.dir, error))?;
        let db = Arc::new(db);
        let (tree, meta, replayed) = load(&db, &config.dir)?;
        let last = tree.last_zxid();
        tracing::info!(
            checkpoint_zxid = meta.start, replayed, %last, nodes = tree.node_count(),
            "recovered from the rocksdb checkpoint and log"
        );
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            wakers: Mutex::new(Vec::new()),
            sync_stats: Arc::new(SyncStats::new()),
        });
        let writer = {
            let db = Arc::clone(&db);
            let queue = Arc::clone(&queue);
            let dir = config.dir.clone();
            let sync = config.force_sync;
            std::thread::Builder::new()
                .name("rocksdb-writer".into())
                .spawn(move || {
                    write_loop(&db, &queue, &dir, sync);
                    queue.state.lock().stopped = true;
                    queue.durable_moved(true);
                })
                .map_err(|source| StorageError::Io {
                    path: config.dir.clone(),
                    source,
                })?
        };
        Ok(RocksStorage {
            db,
            config,
            queue,
            writer: Some(writer),
            next_ticket: 0,
            recovered: Some((tree, last)),
            running: Arc::new(Mutex::new(())),
            meta: Arc::new(Mutex::new(meta)),
        })
    }

    fn make_checkpointer(&self) -> RocksCheckpointer {
        RocksCheckpointer {
            db: Arc::clone(&self.db),
            dir: self.config.dir.clone(),
            force_sync: self.config.force_sync,
            queue: Arc::clone(&self.queue),
            running: Arc::clone(&self.running),
            meta: Arc::clone(&self.meta),
        }
    }

    /// Waits until everything appended so far is written.
    fn drain(&self) -> Result<(), StorageError> {
        QueueWaiter(Arc::clone(&self.queue)).wait(Ticket(self.next_ticket))
    }

    /// Writes `batch` synced (if `forceSync`), unless the log writer failed.
    fn write_synced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        if self.queue.state.lock().poisoned {
            return Err(StorageError::Poisoned);
        }
        let mut options = WriteOptions::default();
        options.set_sync(self.config.force_sync);
        self.db
            .write_opt(batch, &options)
            .map_err(|error| db_error(&self.config.dir, error))
    }

    #[cfg(test)]
    fn fail_next_write(&self) {
        self.queue.state.lock().fail_next = true;
    }
}

impl Drop for RocksStorage {
    fn drop(&mut self) {
        self.queue.state.lock().closing = true;
        self.queue.work.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Storage for RocksStorage {
    fn append(&mut self, txns: &[Txn]) -> Result<Ticket, StorageError> {
        let mut records = Vec::with_capacity(txns.len());
        for txn in txns {
            let payload = persist::encode_txn(txn)
                .map_err(|error| StorageError::Encode(error.to_string()))?;
            let zxid = u64::try_from(txn.zxid.0)
                .map_err(|_| StorageError::Encode(format!("negative zxid {}", txn.zxid)))?;
            records.push((zxid, payload));
        }
        let mut state = self.queue.state.lock();
        if state.poisoned {
            return Err(StorageError::Poisoned);
        }
        self.next_ticket += 1;
        state.pending.push((self.next_ticket, records));
        drop(state);
        self.queue.work.notify_one();
        Ok(Ticket(self.next_ticket))
    }

    fn waiter(&self) -> Arc<dyn DurableWait> {
        Arc::new(QueueWaiter(Arc::clone(&self.queue)))
    }

    fn recover(&mut self) -> Result<(DataTree, Zxid), StorageError> {
        if let Some(recovered) = self.recovered.take() {
            return Ok(recovered);
        }
        self.drain()?;
        let _no_checkpoint = self.running.lock();
        let (tree, _, _) = load(&self.db, &self.config.dir)?;
        let last = tree.last_zxid();
        Ok((tree, last))
    }

    fn read_log(&self, after: Zxid, max: usize) -> Result<Vec<Txn>, StorageError> {
        let floor = self.log_floor()?;
        if after < floor {
            return Err(StorageError::LogCompacted { after, floor });
        }
        let durable = self.queue.state.lock().durable_zxid;
        let log = cf(&self.db, &self.config.dir, LOG_CF)?;
        let from = zxid_u64(after).saturating_add(1).to_be_bytes();
        let mut txns = Vec::new();
        for entry in self
            .db
            .iterator_cf(log, IteratorMode::From(&from, Direction::Forward))
        {
            if txns.len() >= max {
                break;
            }
            let (key, value) = entry.map_err(|error| db_error(&self.config.dir, error))?;
            let txn = decode_logged(&self.config.dir, &key, &value)?;
            // What this process writes shows only once durable; what was
            // there at open was durable already.
            if durable.is_some_and(|durable| zxid_u64(txn.zxid) > durable) {
                break;
            }
            txns.push(txn);
        }
        Ok(txns)
    }

    fn log_floor(&self) -> Result<Zxid, StorageError> {
        let start = self.meta.lock().start;
        zxid_i64(&self.config.dir, start)
    }

    fn truncate_after(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        self.drain()?;
        let _no_checkpoint = self.running.lock();
        let end = self.meta.lock().end;
        let checkpoint = zxid_i64(&self.config.dir, end)?;
        if checkpoint > zxid {
            return Err(StorageError::TruncateBelowCheckpoint { zxid, checkpoint });
        }
        let log = cf(&self.db, &self.config.dir, LOG_CF)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            log,
            &zxid_u64(zxid).saturating_add(1).to_be_bytes()[..],
            &LOG_END_KEY[..],
        );
        self.write_synced(batch)?;
        self.recovered = None;
        Ok(())
    }

    fn install(&mut self, tree: &DataTree) -> Result<(), StorageError> {
        self.drain()?;
        let checkpointer = self.make_checkpointer();
        let _no_checkpoint = self.running.lock();
        let last = zxid_u64(tree.last_zxid());
        let meta = Meta {
            generation: 0,
            start: last,
            end: last,
            digest: tree.digest(),
            nodes: tree.node_count() as u64,
        };
        checkpointer.write_state_with(
            |cursor, records| cursor.next_chunk(tree, CHECKPOINT_CHUNK_NODES, records),
            |generation| Meta { generation, ..meta },
            &LOG_END_KEY,
        )?;
        self.recovered = None;
        Ok(())
    }

    fn checkpointer(&self) -> Arc<dyn Checkpointer> {
        Arc::new(self.make_checkpointer())
    }

    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn sync_stats(&self) -> Option<Arc<SyncStats>> {
        Some(Arc::clone(&self.queue.sync_stats))
    }
}

/// The writer thread: takes everything queued while the previous write was
/// syncing and writes it as one batch (group commit).
fn write_loop(db: &rocksdb::DB, queue: &Queue, dir: &Path, sync: bool) {
    let mut options = WriteOptions::default();
    options.set_sync(sync);
    loop {
        let (batch, fail) = {
            let mut state = queue.state.lock();
            while state.pending.is_empty() && !state.closing {
                queue.work.wait(&mut state);
            }
            if state.pending.is_empty() || state.poisoned {
                // Closing with nothing left, or nothing more may be written.
                return;
            }
            let taken = std::mem::take(&mut state.pending);
            #[cfg(test)]
            let fail = std::mem::take(&mut state.fail_next);
            #[cfg(not(test))]
            let fail = false;
            (taken, fail)
        };
        let Some(log) = db.cf_handle(LOG_CF) else {
            poison(queue, "the log column family is missing");
            return;
        };
        let mut write = WriteBatch::default();
        let mut last = None;
        let mut last_zxid = None;
        let mut records_written = 0u64;
        for (ticket, records) in &batch {
            for (zxid, payload) in records {
                write.put_cf(log, zxid.to_be_bytes(), payload);
                last_zxid = Some(*zxid);
                records_written += 1;
            }
            last = Some(*ticket);
        }
        let bytes = u64::try_from(write.size_in_bytes()).unwrap_or(u64::MAX);
        let started = std::time::Instant::now();
        let result = if fail {
            Err("injected write failure".to_string())
        } else {
            db.write_opt(write, &options)
                .map_err(|error| db_error(dir, error).to_string())
        };
        match result {
            Ok(()) => {
                let synced = sync.then(|| started.elapsed());
                queue
                    .sync_stats
                    .record_batch(records_written, bytes, synced);
                let mut state = queue.state.lock();
                if let Some(last) = last {
                    state.durable = state.durable.max(last);
                }
                state.durable_zxid = last_zxid.or(state.durable_zxid);
                drop(state);
                queue.durable_moved(false);
            }
            Err(error) => {
                poison(queue, &error);
                return;
            }
        }
    }
}

fn poison(queue: &Queue, why: &str) {
    tracing::error!(
        error = why,
        "rocksdb log write failed; storage refuses further writes"
    );
    let mut state = queue.state.lock();
    state.poisoned = true;
    state.pending.clear();
    drop(state);
    queue.durable_moved(true);
}

struct QueueWaiter(Arc<Queue>);

impl DurableWait for QueueWaiter {
    fn wait(&self, ticket: Ticket) -> Result<(), StorageError> {
        let mut state = self.0.state.lock();
        loop {
            if state.durable >= ticket.0 {
                return Ok(());
            }
            if state.poisoned {
                return Err(StorageError::Poisoned);
            }
            if state.stopped {
                // The writer has gone: this ticket will never be written.
                return Err(StorageError::Poisoned);
            }
            self.0.done.wait(&mut state);
        }
    }

    fn durable(&self) -> Result<Ticket, StorageError> {
        // A stopped writer (the storage was closed) leaves what it made
        // durable durable; only a failed write poisons.
        let state = self.0.state.lock();
        if state.poisoned {
            return Err(StorageError::Poisoned);
        }
        Ok(Ticket(state.durable))
    }

    fn wakeups(&self) -> crossbeam_channel::Receiver<()> {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        let state = self.0.state.lock();
        if !(state.poisoned || state.stopped) {
            self.0.wakers.lock().push(sender);
        }
        receiver
    }
}

/// Writes fuzzy checkpoints of a live tree into the `state` column family.
#[derive(Clone)]
pub struct RocksCheckpointer {
    db: Arc<rocksdb::DB>,
    dir: PathBuf,
    force_sync: bool,
    /// To refuse work once the log writer has failed (poisoned).
    queue: Arc<Queue>,
    /// One checkpoint at a time: two would write the same generation.
    running: Arc<Mutex<()>>,
    /// Shared with `RocksStorage`: updated once a switch is written.
    meta: Arc<Mutex<Meta>>,
}

impl RocksCheckpointer {
    /// Walks the tree in chunks, releasing the read lock between them,
    /// writes it as a new generation of `state`, then switches the meta to
    /// it and drops the old generation and the log up to the walk's start
    /// zxid, all in one batch.
    pub fn checkpoint(&self, tree: &RwLock<DataTree>) -> Result<Checkpoint, StorageError> {
        let _one = self.running.lock();
        let start = tree.read().last_zxid();
        let start_u64 = zxid_u64(start);
        let meta = self.write_state_with(
            |cursor, records| cursor.next_chunk(&tree.read(), CHECKPOINT_CHUNK_NODES, records),
            |generation| {
                // After the walk: the tree as it stands now is what the log
                // after `start` leads to.
                let tree = tree.read();
                Meta {
                    generation,
                    start: start_u64,
                    end: zxid_u64(tree.last_zxid()),
                    digest: tree.digest(),
                    nodes: tree.node_count() as u64,
                }
            },
            &start_u64.saturating_add(1).to_be_bytes(),
        )?;
        Ok(Checkpoint {
            start,
            end: zxid_i64(&self.dir, meta.end)?,
            digest: meta.digest,
            location: self.dir.display().to_string(),
        })
    }

    /// Writes the records `next_chunk` yields as the next generation, then
    /// in one synced batch switches the meta to it (`meta_for` is given the
    /// generation, once the walk is over), drops the old generation and the
    /// log below `log_cut`. The caller holds `running`.
    fn write_state_with(
        &self,
        mut next_chunk: impl FnMut(&mut SnapshotCursor, &mut Vec<SnapshotRecord>),
        meta_for: impl FnOnce(u64) -> Meta,
        log_cut: &[u8],
    ) -> Result<Meta, StorageError> {
        if self.queue.state.lock().poisoned {
            return Err(StorageError::Poisoned);
        }
        let db = &*self.db;
        let state_cf = cf(db, &self.dir, STATE_CF)?;
        let log_cf = cf(db, &self.dir, LOG_CF)?;
        let old = *self.meta.lock();
        let generation = old.generation.wrapping_add(1);
        // Leftovers of a checkpoint a crash interrupted.
        db.delete_range_cf(
            state_cf,
            generation_prefix(generation),
            generation_prefix(u64::MAX),
        )
        .map_err(|error| db_error(&self.dir, error))?;

        // The generation bypasses RocksDB's WAL (written once, not twice)
        // and is flushed to table files before the switch refers to it.
        let mut unlogged = WriteOptions::default();
        unlogged.disable_wal(true);
        let mut cursor = SnapshotCursor::new();
        let mut records = Vec::with_capacity(CHECKPOINT_CHUNK_NODES);
        while !cursor.is_done() {
            next_chunk(&mut cursor, &mut records);
            let mut batch = WriteBatch::default();
            for record in records.drain(..) {
                let key = record_key(generation, &record);
                let bytes = persist::encode_record(&record)
                    .map_err(|error| StorageError::Encode(error.to_string()))?;
                batch.put_cf(state_cf, key, bytes);
            }
            db.write_opt(batch, &unlogged)
                .map_err(|error| db_error(&self.dir, error))?;
        }
        db.flush_cf(state_cf)
            .map_err(|error| db_error(&self.dir, error))?;

        let meta = meta_for(generation);
        let mut switch = WriteBatch::default();
        switch.put_cf(state_cf, META_KEY, meta.encode());
        switch.delete_range_cf(
            state_cf,
            generation_prefix(old.generation),
            generation_prefix(generation),
        );
        switch.delete_range_cf(log_cf, &0u64.to_be_bytes()[..], log_cut);
        let mut options = WriteOptions::default();
        options.set_sync(self.force_sync);
        db.write_opt(switch, &options)
            .map_err(|error| db_error(&self.dir, error))?;
        *self.meta.lock() = meta;
        Ok(meta)
    }
}

impl Checkpointer for RocksCheckpointer {
    fn take(&self, tree: &RwLock<DataTree>) -> Result<Checkpoint, StorageError> {
        self.checkpoint(tree)
    }

    /// A checkpoint already dropped the log it made obsolete and the older
    /// generation; RocksDB's compaction reclaims the space. Nothing to do.
    fn purge(&self, _retain: usize) -> Result<usize, StorageError> {
        Ok(0)
    }
}

fn generation_prefix(generation: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(GENERATION_TAG);
    key.extend_from_slice(&generation.to_be_bytes());
    key
}

fn record_key(generation: u64, record: &SnapshotRecord) -> Vec<u8> {
    let mut key = generation_prefix(generation);
    match record {
        SnapshotRecord::Node { path, .. } => {
            key.push(NODE_TAG);
            key.extend_from_slice(path.as_bytes());
        }
        SnapshotRecord::Session { session, .. } => {
            key.push(SESSION_TAG);
            key.extend_from_slice(&session.0.to_be_bytes());
        }
    }
    key
}

/// The current checkpoint's meta; `Meta::empty()` for a new database.
fn read_meta(db: &rocksdb::DB, dir: &Path) -> Result<Meta, StorageError> {
    let state = cf(db, dir, STATE_CF)?;
    let Some(bytes) = db
        .get_cf(state, META_KEY)
        .map_err(|error| db_error(dir, error))?
    else {
        return Ok(Meta::empty());
    };
    let meta = Meta::decode(&bytes).ok_or_else(|| {
        corrupt(
            dir,
            format!(
                "checkpoint meta has {} bytes, not {META_BYTES}",
                bytes.len()
            ),
        )
    })?;
    if meta.end < meta.start {
        return Err(corrupt(
            dir,
            format!(
                "checkpoint meta ends at {:#x}, before its start {:#x}",
                meta.end, meta.start
            ),
        ));
    }
    Ok(meta)
}

/// The state: the checkpointed tree plus the log replayed after it, with the
/// checkpoint's meta and the number of txns replayed.
fn load(db: &rocksdb::DB, dir: &Path) -> Result<(DataTree, Meta, u64), StorageError> {
    let meta = read_meta(db, dir)?;
    let start = zxid_i64(dir, meta.start)?;
    let end = zxid_i64(dir, meta.end)?;
    let state = cf(db, dir, STATE_CF)?;
    let prefix = generation_prefix(meta.generation);
    let mut tree = restore_pipelined(start, expected_nodes(db, state, &meta), |sink| {
        // Looked up again: a handle may not cross threads.
        let state = cf(db, dir, STATE_CF)?;
        for entry in db.iterator_cf(state, IteratorMode::From(&prefix, Direction::Forward)) {
            let (key, value) = entry.map_err(|error| db_error(dir, error))?;
            if !key.starts_with(&prefix) || !sink(&value) {
                break;
            }
        }
        Ok(())
    })
    .map_err(|error| match error {
        RestoreError::Read(error) => error,
        RestoreError::Decode(error) => corrupt(dir, format!("a checkpoint entry: {error}")),
        RestoreError::Tree(error) => {
            corrupt(dir, format!("inconsistent checkpoint node: {error:?}"))
        }
        RestoreError::Spawn(source) => StorageError::Io {
            path: dir.to_path_buf(),
            source,
        },
    })?;
    // A checkpoint is the only state there is (the switch to it dropped
    // the older one and the log it covered): a replay that does not match
    // has nothing to fall back to.
    let refused = |error: ReplayError| corrupt(dir, error.describe("checkpoint"));
    let mut replay = Replay::new(start, Some((end, meta.digest)));
    replay.begin(&mut tree).map_err(refused)?;
    let log = cf(db, dir, LOG_CF)?;
    let from = meta.start.saturating_add(1).to_be_bytes();
    for entry in db.iterator_cf(log, IteratorMode::From(&from, Direction::Forward)) {
        let (key, value) = entry.map_err(|error| db_error(dir, error))?;
        let txn = decode_logged(dir, &key, &value)?;
        replay.txn(&mut tree, &txn).map_err(refused)?;
    }
    let replayed = replay.finish(&tree).map_err(refused)?;
    Ok((tree, meta, replayed))
}

/// The meta's node count, to size the tree: a hint that a damaged meta could
/// inflate, so capped by what the column family's files could hold.
fn expected_nodes(db: &rocksdb::DB, state: &rocksdb::ColumnFamily, meta: &Meta) -> usize {
    let property = |name| {
        db.property_int_value_cf(state, name)
            .ok()
            .flatten()
            .unwrap_or(0)
    };
    let bytes = property("rocksdb.total-sst-files-size")
        .saturating_add(property("rocksdb.cur-size-all-mem-tables"));
    usize::try_from(meta.nodes.min(bytes / 16)).unwrap_or(0)
}

fn decode_logged(dir: &Path, key: &[u8], value: &[u8]) -> Result<Txn, StorageError> {
    persist::decode_txn(value).map_err(|error| {
        corrupt(
            dir,
            format!("logged txn {:?} does not decode: {error}", key),
        )
    })
}

fn cf<'a>(
    db: &'a rocksdb::DB,
    dir: &Path,
    name: &str,
) -> Result<&'a rocksdb::ColumnFamily, StorageError> {
    db.cf_handle(name).ok_or_else(|| missing_cf(dir, name))
}

fn zxid_u64(zxid: Zxid) -> u64 {
    // Zxids the tree holds are never negative: they start at 0 and grow.
    u64::try_from(zxid.0).unwrap_or(0)
}

fn zxid_i64(dir: &Path, zxid: u64) -> Result<Zxid, StorageError> {
    i64::try_from(zxid)
        .map(Zxid)
        .map_err(|_| corrupt(dir, format!("zxid {zxid:#x} out of range")))
}

fn corrupt(dir: &Path, what: String) -> StorageError {
    StorageError::Corrupt {
        file: dir.to_path_buf(),
        offset: 0,
        what,
    }
}

fn missing_cf(dir: &Path, name: &str) -> StorageError {
    corrupt(dir, format!("column family {name} is missing"))
}

fn db_error(dir: &Path, error: rocksdb::Error) -> StorageError {
    StorageError::Io {
        path: dir.to_path_buf(),
        source: std::io::Error::other(error.into_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::apply;
    use crate::request::Request;
    use crate::storage::testing::{create, prep_at, recovered, write};
    use crate::types::{Acl, SessionId};

    fn config(dir: &Path) -> RocksConfig {
        RocksConfig {
            dir: dir.join("rocksdb"),
            force_sync: true,
        }
    }

    fn set(path: &str, data: &[u8]) -> Request {
        Request::SetData {
            path: path.to_string(),
            data: Some(data.to_vec()),
            version: -1,
        }
    }

    fn delete(path: &str) -> Request {
        Request::Delete {
            path: path.to_string(),
            version: -1,
        }
    }

    fn creates(prefix: &str, count: usize) -> Vec<Request> {
        (0..count)
            .map(|i| create(&format!("{prefix}{i}")))
            .collect()
    }

    fn log_len(storage: &RocksStorage) -> usize {
        let log = storage.db.cf_handle(LOG_CF).expect("log cf");
        storage.db.iterator_cf(log, IteratorMode::Start).count()
    }

    #[test]
    fn restart_recovers_checkpoint_plus_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let digest = {
            let mut storage = RocksStorage::open(config(dir.path())).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            assert_eq!(tree.read().last_zxid(), Zxid::ZERO);
            write(&mut storage, &tree, &mut prep, &creates("/a", 50));
            let start = storage
                .make_checkpointer()
                .checkpoint(&tree)
                .expect("checkpoint");
            assert_eq!(start.start, Zxid(50));
            // The checkpoint dropped the log it covers.
            assert_eq!(log_len(&storage), 0);
            write(&mut storage, &tree, &mut prep, &creates("/b", 50));
            write(
                &mut storage,
                &tree,
                &mut prep,
                &[delete("/a3"), set("/a4", b"x")],
            );
            assert_eq!(log_len(&storage), 52);
            let digest = tree.read().digest();
            digest
        };
        let mut storage = RocksStorage::open(config(dir.path())).expect("reopen");
        let (tree, last) = storage.recover().expect("recover");
        assert_eq!(last, Zxid(102));
        assert_eq!(tree.digest(), digest);
        tree.check_invariants().expect("invariants");
        assert!(tree.get("/a3").is_none());
    }

    /// A second checkpoint replaces the first: deleted nodes do not come back.
    #[test]
    fn a_newer_checkpoint_replaces_the_older_generation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let digest = {
            let mut storage = RocksStorage::open(config(dir.path())).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            write(&mut storage, &tree, &mut prep, &creates("/a", 10));
            storage
                .make_checkpointer()
                .checkpoint(&tree)
                .expect("checkpoint");
            write(
                &mut storage,
                &tree,
                &mut prep,
                &[delete("/a1"), delete("/a2")],
            );
            storage
                .make_checkpointer()
                .checkpoint(&tree)
                .expect("checkpoint");
            assert_eq!(log_len(&storage), 0);
            let digest = tree.read().digest();
            digest
        };
        let mut storage = RocksStorage::open(config(dir.path())).expect("reopen");
        let (tree, last) = storage.recover().expect("recover");
        assert_eq!(last, Zxid(12));
        assert_eq!(tree.digest(), digest);
        assert!(tree.get("/a1").is_none());
        let state = storage.db.cf_handle(STATE_CF).expect("state cf");
        let old = generation_prefix(1);
        let leftovers = storage
            .db
            .iterator_cf(state, IteratorMode::Start)
            .filter_map(Result::ok)
            .filter(|(key, _)| key.starts_with(&old))
            .count();
        assert_eq!(leftovers, 0, "generation 1 was dropped");
    }

    /// Checkpoints taken while another thread keeps writing (so the walk is
    /// fuzzy) still recover to exactly the final tree.
    #[test]
    fn fuzzy_checkpoint_under_writes_converges() {
        let dir = tempfile::tempdir().expect("temp dir");
        let digest = {
            let mut storage = RocksStorage::open(config(dir.path())).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            write(&mut storage, &tree, &mut prep, &creates("/n", 3_000));
            let checkpointer = storage.make_checkpointer();
            std::thread::scope(|scope| {
                let walker = scope.spawn(|| {
                    for _ in 0..3 {
                        checkpointer.checkpoint(&tree).expect("checkpoint");
                    }
                });
                let mut round = 0;
                while !walker.is_finished() || round < 20 {
                    let i = round % 3_000;
                    write(
                        &mut storage,
                        &tree,
                        &mut prep,
                        &[
                            set(&format!("/n{i}"), format!("v{round}").as_bytes()),
                            delete(&format!("/n{}", 2_999 - i)),
                            create(&format!("/n{}", 2_999 - i)),
                            create(&format!("/m{round}")),
                        ],
                    );
                    round += 1;
                }
            });
            let digest = tree.read().digest();
            digest
        };
        let mut storage = RocksStorage::open(config(dir.path())).expect("reopen");
        let (tree, _) = storage.recover().expect("recover");
        assert_eq!(tree.digest(), digest);
        tree.check_invariants().expect("invariants");
    }

    /// A checkpoint cut short (its generation partly written, the meta never
    /// switched) changes nothing: recovery uses the previous one plus the log,
    /// and the next checkpoint overwrites the leftovers.
    #[test]
    fn an_interrupted_checkpoint_is_ignored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let digest = {
            let mut storage = RocksStorage::open(config(dir.path())).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            write(&mut storage, &tree, &mut prep, &creates("/a", 5));
            storage
                .make_checkpointer()
                .checkpoint(&tree)
                .expect("checkpoint");
            write(&mut storage, &tree, &mut prep, &[delete("/a0")]);
            // What a crash mid-walk would leave: a stray node of generation 2.
            let state = storage.db.cf_handle(STATE_CF).expect("state cf");
            let stray = SnapshotRecord::Node {
                path: "/stray".into(),
                data: None,
                acl: Acl::open_unsafe(),
                kind: crate::txn::NodeKind::Persistent,
                stat: crate::types::Stat::default(),
            };
            storage
                .db
                .put_cf(
                    state,
                    record_key(2, &stray),
                    persist::encode_record(&stray).expect("encode"),
                )
                .expect("put");
            let digest = tree.read().digest();
            digest
        };
        let mut storage = RocksStorage::open(config(dir.path())).expect("reopen");
        let (tree, _) = storage.recover().expect("recover");
        assert_eq!(tree.digest(), digest);
        assert!(tree.get("/stray").is_none());
        let tree = RwLock::new(tree);
        storage
            .make_checkpointer()
            .checkpoint(&tree)
            .expect("checkpoint");
        drop(storage);
        let mut storage = RocksStorage::open(config(dir.path())).expect("reopen");
        let (tree, _) = storage.recover().expect("recover");
        assert_eq!(tree.digest(), digest);
    }

    /// Review 1.1 on RocksDB: a checkpoint walked while creates under a
    /// quota land between its chunks recovers, and to the live tree.
    #[test]
    fn fuzzy_checkpoint_with_quota_recovers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let digest = {
            let mut storage = RocksStorage::open(config(dir.path())).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            let stats = Request::Create {
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
            let checkpointer = storage.make_checkpointer();
            let mut step = 0;
            checkpointer
                .write_state_with(
                    |cursor, records| {
                        cursor.next_chunk(&tree.read(), 1, records);
                        step += 1;
                        write(
                            &mut storage,
                            &tree,
                            &mut prep,
                            &[create(&format!("/q/c{step}"))],
                        );
                    },
                    |generation| {
                        let tree = tree.read();
                        Meta {
                            generation,
                            start: zxid_u64(start),
                            end: zxid_u64(tree.last_zxid()),
                            digest: tree.digest(),
                            nodes: tree.node_count() as u64,
                        }
                    },
                    &zxid_u64(start).saturating_add(1).to_be_bytes(),
                )
                .expect("checkpoint");
            write(&mut storage, &tree, &mut prep, &[create("/q/after")]);
            let digest = tree.read().digest();
            digest
        };
        let mut storage = RocksStorage::open(config(dir.path())).expect("reopen");
        let (tree, _) = storage.recover().expect("recover");
        assert_eq!(tree.digest(), digest);
        crate::quota::check(&tree).expect("quota stats current");
    }

    /// RocksDB keeps one checkpoint and drops the log it covers, so a
    /// checkpoint whose replay does not match its digest has nothing to
    /// fall back to: opening refuses, naming the mismatch.
    #[test]
    fn a_checkpoint_that_does_not_match_its_log_refuses_to_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let mut storage = RocksStorage::open(config(dir.path())).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            write(&mut storage, &tree, &mut prep, &creates("/a", 3));
            storage
                .make_checkpointer()
                .checkpoint(&tree)
                .expect("checkpoint");
            let mut meta = *storage.meta.lock();
            meta.digest ^= 1;
            let state = storage.db.cf_handle(STATE_CF).expect("state cf");
            storage
                .db
                .put_cf(state, META_KEY, meta.encode())
                .expect("put");
        }
        match RocksStorage::open(config(dir.path())).err() {
            Some(StorageError::Corrupt { what, .. }) => {
                assert!(what.contains("checkpoint recorded"), "{what}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_write_poisons_the_backend() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut storage = RocksStorage::open(config(dir.path())).expect("open");
        let (tree, mut prep) = recovered(&mut storage);
        write(&mut storage, &tree, &mut prep, &[create("/ok")]);
        let txn = prep
            .prep(&tree.read(), SessionId(1), 0, &[], &create("/lost"), 1_000)
            .expect("prep");
        storage.fail_next_write();
        let ticket = storage.append(&[txn]).expect("append");
        assert!(matches!(
            storage.waiter().wait(ticket),
            Err(StorageError::Poisoned)
        ));
        assert!(matches!(storage.append(&[]), Err(StorageError::Poisoned)));
        assert!(matches!(
            storage.make_checkpointer().checkpoint(&tree),
            Err(StorageError::Poisoned)
        ));
        drop(storage);
        // The failed batch was never written; what was durable stays.
        let mut storage = RocksStorage::open(config(dir.path())).expect("reopen");
        let (tree, last) = storage.recover().expect("recover");
        assert_eq!(last, Zxid(1));
        assert!(tree.get("/ok").is_some() && tree.get("/lost").is_none());
    }

    /// Appends made while a write is syncing resolve together, in order.
    #[test]
    fn many_appends_before_waiting_all_become_durable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut storage = RocksStorage::open(config(dir.path())).expect("open");
        let (tree, last) = storage.recover().expect("recover");
        let mut prep = prep_at(last);
        let mut tickets = Vec::new();
        let mut tree = tree;
        for i in 0..200 {
            let txn = prep
                .prep(
                    &tree,
                    SessionId(1),
                    0,
                    &[],
                    &create(&format!("/g{i}")),
                    1_000,
                )
                .expect("prep");
            tickets.push(storage.append(std::slice::from_ref(&txn)).expect("append"));
            apply(&mut tree, &txn);
            prep.applied(tree.last_zxid());
        }
        let waiter = storage.waiter();
        for ticket in tickets.iter().rev() {
            waiter.wait(*ticket).expect("durable");
        }
        assert_eq!(log_len(&storage), 200);
        drop(storage);
        let mut storage = RocksStorage::open(config(dir.path())).expect("reopen");
        let (recovered, last) = storage.recover().expect("recover");
        assert_eq!(last, Zxid(200));
        assert_eq!(recovered.digest(), tree.digest());
    }
}
