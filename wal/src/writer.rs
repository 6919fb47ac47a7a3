//! Group-commit WAL writer. `Wal::open` checks every segment and repairs a
//! torn tail; then one thread owns the files and the io_uring instance.
//! Appends queue to it; each time it wakes it takes everything queued (up to
//! a byte bound), writes it as one batch closed by a commit marker in one
//! write, and fsyncs once, so appends that arrive during an fsync form the
//! next batch with no added delay.
//!
//! Not the byte format (`format`), nor a reader (`reader`), nor anything
//! that knows what a record means.
//!
//! Invariants: zxids strictly increase across appends (asserted at append);
//! a sequence number is reported durable only after its batch's fsync
//! returned, and a batch is written only after the previous one's fsync
//! returned (so an intact batch proves every earlier one was synced); a
//! failed write or fsync, or the writer thread ending in any way, poisons
//! the WAL for good and wakes every waiter.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use parking_lot::{Condvar, Mutex};

use crate::dir;
use crate::format::{self, SegmentHeader, SegmentScan, Tail};
use crate::io::Backend;
use crate::reader::SegmentFile;
use crate::stats::SyncStats;
use crate::{Error, IoMode, Record, WalConfig};

/// Commands queued to the writer thread; the bound keeps memory in check and
/// pushes back on appenders when the disk falls behind.
const QUEUE_MAX: usize = 4096;
/// The writer stops adding appends to a batch past this many bytes.
const BATCH_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Notifications buffered per subscriber before new ones are dropped.
const SUBSCRIBER_QUEUE_MAX: usize = 1024;
/// Zeros are written in blocks of this size when a tail is cleared.
const ZERO_BLOCK_BYTES: usize = 64 * 1024;

/// How far the log is durable: every append up to `seq`, whose last record
/// has `zxid` (None while nothing was ever appended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    pub seq: u64,
    pub zxid: Option<u64>,
}

/// What `Wal::open` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// zxid of the last valid record, if any.
    pub last_zxid: Option<u64>,
    /// Bytes of a torn tail that were zeroed.
    pub truncated_bytes: u64,
    /// Segment files in the log after open.
    pub segments: usize,
    /// Files removed: an unfinished roll-over's temporary file, or a newest
    /// segment that held no record.
    pub removed: Vec<PathBuf>,
    /// "io_uring" or "pwrite".
    pub io: &'static str,
}

/// Whether this kernel lets us set up an io_uring instance.
pub fn uring_available() -> bool {
    Backend::uring().is_ok()
}

struct DurableState {
    durable: Durable,
    poisoned: bool,
}

struct Shared {
    state: Mutex<DurableState>,
    changed: Condvar,
    fsyncs: AtomicU64,
    /// Each batch's size and sync time, for the server's metrics.
    sync_stats: Arc<SyncStats>,
    poisoned: AtomicBool,
    subscribers: Mutex<Vec<Sender<Durable>>>,
    /// Wake-up channels (capacity 1): a message means `durable` moved.
    wakers: Mutex<Vec<Sender<()>>>,
    /// Test hook: the next batch fails as a failed fsync would.
    #[cfg(test)]
    fail_next_sync: AtomicBool,
    /// Test hook: the writer thread panics at the next batch.
    #[cfg(test)]
    panic_next_batch: AtomicBool,
}

impl Shared {
    fn publish(&self, durable: Durable) {
        {
            let mut state = self.state.lock();
            assert!(
                durable.seq >= state.durable.seq,
                "durable sequence went back: {} after {}",
                durable.seq,
                state.durable.seq
            );
            state.durable = durable;
        }
        self.changed.notify_all();
        let mut subscribers = self.subscribers.lock();
        // A full queue means the subscriber has a wake-up pending and will
        // read `Wal::durable()`; a disconnected one is dropped.
        subscribers.retain(|sender| {
            !matches!(sender.try_send(durable), Err(TrySendError::Disconnected(_)))
        });
        drop(subscribers);
        self.wakers
            .lock()
            .retain(|sender| !matches!(sender.try_send(()), Err(TrySendError::Disconnected(_))));
    }

    fn poison(&self, error: &Error) {
        tracing::error!(%error, "WAL poisoned: no further writes or syncs");
        self.close();
    }

    /// Ends the log for every caller: later calls and every waiter get
    /// `Error::Poisoned`. Idempotent.
    fn close(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
        self.state.lock().poisoned = true;
        self.changed.notify_all();
        // Dropping the senders tells subscribers the stream ended.
        self.subscribers.lock().clear();
        self.wakers.lock().clear();
    }
}

/// Held by the writer thread for as long as it runs: however the thread
/// ends (a failed write, the hang-up when the `Wal` is dropped, or a panic
/// unwinding through `run`), dropping it closes the log, so no waiter is
/// left blocked on a durability that will never come.
struct WriterExit(Arc<Shared>);

impl Drop for WriterExit {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the WAL writer thread panicked; WAL poisoned");
        }
        self.0.close();
    }
}

enum Command {
    Append {
        seq: u64,
        records: Vec<Record>,
    },
    Truncate {
        zxid: u64,
        reply: Sender<Result<Option<u64>, Error>>,
    },
    Purge {
        zxid: u64,
        reply: Sender<Result<Vec<PathBuf>, Error>>,
    },
}

struct Appender {
    next_seq: u64,
    last_zxid: Option<u64>,
}

/// The write-ahead log. Owns the writer thread; dropping it finishes the
/// queued appends and stops the thread.
pub struct Wal {
    shared: Arc<Shared>,
    appender: Mutex<Appender>,
    commands: Option<Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

struct Active {
    file: File,
    path: PathBuf,
    /// The segment's format version: batches are appended only to one of
    /// `format::FORMAT_VERSION`; an older one is closed by a roll-over.
    version: u32,
    /// Offset where the next record goes.
    position: u64,
    /// File length: preallocated space ends here.
    allocated: u64,
}

struct Writer {
    config: WalConfig,
    backend: Backend,
    /// Every segment, oldest first, the active one last.
    segments: Vec<(u64, PathBuf)>,
    active: Option<Active>,
    buffer: Vec<u8>,
    shared: Arc<Shared>,
}

static URING_WARNING: std::sync::Once = std::sync::Once::new();

fn choose_backend(mode: IoMode) -> Result<Backend, Error> {
    match mode {
        IoMode::Pwrite => Ok(Backend::Pwrite),
        IoMode::IoUring => Backend::uring().map_err(|source| Error::IoUringUnavailable { source }),
        IoMode::Auto => match Backend::uring() {
            Ok(backend) => Ok(backend),
            Err(error) => {
                URING_WARNING.call_once(|| {
                    tracing::warn!(%error, "io_uring unavailable; the WAL uses pwrite + fdatasync");
                });
                Ok(Backend::Pwrite)
            }
        },
    }
}

fn header_offset() -> u64 {
    u64::try_from(format::HEADER_BYTES).unwrap_or(32)
}

/// Overwrites `[from, to)` of `file` with zeros (not synced).
fn write_zeros(file: &File, path: &Path, from: u64, to: u64) -> Result<(), Error> {
    let zeros = vec![0u8; ZERO_BLOCK_BYTES];
    let mut at = from;
    while at < to {
        let len = usize::try_from(to - at)
            .unwrap_or(ZERO_BLOCK_BYTES)
            .min(ZERO_BLOCK_BYTES);
        let block = zeros.get(..len).unwrap_or(&zeros);
        file.write_all_at(block, at)
            .map_err(|e| Error::io(path, e))?;
        at += u64::try_from(block.len()).unwrap_or(u64::MAX);
    }
    Ok(())
}

fn open_for_append(path: &Path, position: u64, version: u32) -> Result<Active, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let allocated = file.metadata().map_err(|e| Error::io(path, e))?.len();
    Ok(Active {
        file,
        path: path.to_path_buf(),
        version,
        position,
        allocated,
    })
}

impl Wal {
    /// Opens the log in `config.dir` (creating the directory if needed):
    /// checks every record of every segment, zeros a torn tail of the newest
    /// segment (an unfinished last batch: nothing in it was acknowledged),
    /// and refuses with `Error::Corrupt` a bad record anywhere else (damage
    /// followed by an intact batch, or in an older segment).
    pub fn open(config: WalConfig) -> Result<(Wal, OpenReport), Error> {
        let dir_path = config.dir.clone();
        // First, so a refused io_uring leaves the directory untouched.
        let mut backend = choose_backend(config.io)?;
        fs::create_dir_all(&dir_path).map_err(|e| Error::io(&dir_path, e))?;
        let (mut segments, temporaries) = dir::list(&dir_path)?;
        let mut removed = Vec::new();
        for temp in temporaries {
            fs::remove_file(&temp).map_err(|e| Error::io(&temp, e))?;
            removed.push(temp);
        }

        let mut checks = Vec::with_capacity(segments.len());
        let mut versions = Vec::with_capacity(segments.len());
        let mut previous_zxid: Option<u64> = None;
        let count = segments.len();
        for (index, (first_zxid, path)) in segments.iter().enumerate() {
            let segment = SegmentFile::open(path)?;
            let header = segment.header()?;
            if header.database_id != config.database_id {
                return Err(Error::WrongDatabase {
                    file: path.clone(),
                    expected: config.database_id,
                    found: header.database_id,
                });
            }
            if header.first_zxid != *first_zxid {
                return Err(Error::Corrupt {
                    file: path.clone(),
                    offset: 0,
                });
            }
            let check = segment.check()?;
            versions.push(header.version);
            let newest = index + 1 == count;
            match check.tail {
                Tail::Clean => {}
                Tail::Torn { offset, .. } if !newest => {
                    return Err(Error::Corrupt {
                        file: path.clone(),
                        offset,
                    });
                }
                Tail::Torn { .. } => {}
                Tail::Corrupt { offset, .. } => {
                    return Err(Error::Corrupt {
                        file: path.clone(),
                        offset,
                    });
                }
            }
            if let (Some(first), Some(previous)) = (check.first_record_zxid, previous_zxid) {
                if first <= previous {
                    return Err(Error::Corrupt {
                        file: path.clone(),
                        offset: header_offset(),
                    });
                }
            }
            previous_zxid = check.last_zxid.or(previous_zxid);
            checks.push(check);
        }

        // A newest segment without records is what a crash right after a
        // roll-over leaves: remove it so its name cannot claim zxids that
        // will be written elsewhere.
        let mut truncated_bytes = 0;
        while let (Some((_, path)), Some(check)) = (segments.last(), checks.last()) {
            if check.records > 0 {
                if let Tail::Torn {
                    offset,
                    garbage_end,
                    ..
                } = check.tail
                {
                    let file = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| Error::io(path, e))?;
                    write_zeros(&file, path, offset, garbage_end)?;
                    backend.sync(&file).map_err(|e| Error::io(path, e))?;
                    truncated_bytes = garbage_end - offset;
                    tracing::warn!(file = %path.display(), offset, bytes = truncated_bytes, "zeroed the torn tail of the WAL");
                }
                break;
            }
            fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            removed.push(path.clone());
            segments.pop();
            checks.pop();
            versions.pop();
        }
        if !removed.is_empty() {
            dir::sync_dir(&dir_path)?;
        }

        let last_zxid = checks.iter().rev().find_map(|check| check.last_zxid);
        let active = match (segments.last(), checks.last(), versions.last()) {
            (Some((_, path)), Some(check), Some(version)) => {
                Some(open_for_append(path, check.data_end, *version)?)
            }
            _ => None,
        };
        let report = OpenReport {
            last_zxid,
            truncated_bytes,
            segments: segments.len(),
            removed,
            io: backend.name(),
        };

        let shared = Arc::new(Shared {
            state: Mutex::new(DurableState {
                durable: Durable {
                    seq: 0,
                    zxid: last_zxid,
                },
                poisoned: false,
            }),
            changed: Condvar::new(),
            fsyncs: AtomicU64::new(0),
            sync_stats: Arc::new(SyncStats::new()),
            poisoned: AtomicBool::new(false),
            subscribers: Mutex::new(Vec::new()),
            wakers: Mutex::new(Vec::new()),
            #[cfg(test)]
            fail_next_sync: AtomicBool::new(false),
            #[cfg(test)]
            panic_next_batch: AtomicBool::new(false),
        });
        let writer = Writer {
            config,
            backend,
            segments,
            active,
            buffer: Vec::new(),
            shared: Arc::clone(&shared),
        };
        let (sender, receiver) = crossbeam_channel::bounded(QUEUE_MAX);
        let thread = std::thread::Builder::new()
            .name("wal-writer".to_string())
            .spawn(move || writer.run(receiver))
            .map_err(|e| Error::io(&dir_path, e))?;
        let wal = Wal {
            shared,
            appender: Mutex::new(Appender {
                next_seq: 1,
                last_zxid,
            }),
            commands: Some(sender),
            thread: Some(thread),
        };
        Ok((wal, report))
    }

    fn check_poisoned(&self) -> Result<(), Error> {
        if self.shared.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        let sender = self.commands.as_ref().ok_or(Error::Poisoned)?;
        // The writer only hangs up after poisoning the log.
        sender.send(command).map_err(|_| Error::Poisoned)
    }

    /// Queues `records` for the writer and returns at once with the
    /// sequence number to pass to `wait_durable`. zxids must strictly
    /// increase, across calls too (asserted: a caller that breaks this has
    /// lost track of its own log). Blocks only when the queue is full.
    pub fn append(&self, records: Vec<Record>) -> Result<u64, Error> {
        self.check_poisoned()?;
        if let Some(record) = records
            .iter()
            .find(|r| r.payload.len() > format::MAX_PAYLOAD_BYTES)
        {
            return Err(Error::RecordTooLarge {
                zxid: record.zxid,
                len: record.payload.len(),
                limit: format::MAX_PAYLOAD_BYTES,
            });
        }
        let mut appender = self.appender.lock();
        let mut last = appender.last_zxid;
        for record in &records {
            if let Some(previous) = last {
                assert!(
                    record.zxid > previous,
                    "WAL append out of order: zxid {:#x} after {:#x}",
                    record.zxid,
                    previous
                );
            }
            last = Some(record.zxid);
        }
        let seq = appender.next_seq;
        self.send(Command::Append { seq, records })?;
        appender.next_seq += 1;
        appender.last_zxid = last;
        Ok(seq)
    }

    /// Blocks until every append up to `seq` is durable.
    pub fn wait_durable(&self, seq: u64) -> Result<(), Error> {
        {
            let appender = self.appender.lock();
            assert!(
                seq < appender.next_seq,
                "waiting for append {seq}, but only {} were made",
                appender.next_seq - 1
            );
        }
        let mut state = self.shared.state.lock();
        loop {
            if state.poisoned {
                return Err(Error::Poisoned);
            }
            if state.durable.seq >= seq {
                return Ok(());
            }
            self.shared.changed.wait(&mut state);
        }
    }

    /// How far the log is durable now.
    pub fn durable(&self) -> Result<Durable, Error> {
        let state = self.shared.state.lock();
        if state.poisoned {
            return Err(Error::Poisoned);
        }
        Ok(state.durable)
    }

    /// A channel that receives a `Durable` after each batch is synced, for a
    /// pipeline that selects on it. If the receiver lags by more than a
    /// bounded number of notifications, newer ones are dropped until it
    /// catches up: treat a notification as a wake-up and read `durable()`.
    /// The channel disconnects when the WAL is poisoned or dropped.
    pub fn subscribe(&self) -> Receiver<Durable> {
        let (sender, receiver) = crossbeam_channel::bounded(SUBSCRIBER_QUEUE_MAX);
        if !self.shared.poisoned.load(Ordering::SeqCst) {
            self.shared.subscribers.lock().push(sender);
        }
        receiver
    }

    /// A wake-up channel: it holds a message whenever `durable()` has moved
    /// since the receiver last looked (one pending message at most, so it
    /// never lags), and disconnects once nothing more can become durable
    /// (poisoned or dropped).
    pub fn wakeups(&self) -> Receiver<()> {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        if !self.shared.poisoned.load(Ordering::SeqCst) {
            self.shared.wakers.lock().push(sender);
        }
        receiver
    }

    /// zxid of the last record appended (durable or not).
    pub fn last_zxid(&self) -> Option<u64> {
        self.appender.lock().last_zxid
    }

    /// Number of fsyncs the writer has issued (for tests and benchmarks).
    pub fn fsync_count(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::SeqCst)
    }

    /// The writer's batch sizes and sync times, updated as it goes; the
    /// handle stays valid after the `Wal` is dropped.
    pub fn sync_stats(&self) -> Arc<SyncStats> {
        Arc::clone(&self.shared.sync_stats)
    }

    /// Removes every record with a zxid above `zxid` (Zab TRUNC, repair),
    /// after the appends already queued are written. Returns the zxid of the
    /// last record left. Later appends continue from there.
    pub fn truncate_after(&self, zxid: u64) -> Result<Option<u64>, Error> {
        self.check_poisoned()?;
        // Held throughout, so no append slips in between the truncation and
        // the new last zxid.
        let mut appender = self.appender.lock();
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Truncate { zxid, reply })?;
        let last = answer.recv().map_err(|_| Error::Poisoned)??;
        appender.last_zxid = last;
        Ok(last)
    }

    /// Deletes the segments whose records all precede `zxid`, keeping the
    /// one that contains it and never the segment being written. Returns the
    /// deleted paths.
    pub fn purge_before(&self, zxid: u64) -> Result<Vec<PathBuf>, Error> {
        self.check_poisoned()?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Purge { zxid, reply })?;
        answer.recv().map_err(|_| Error::Poisoned)?
    }

    /// Test hook: the next batch fails as a failed fsync would.
    #[cfg(test)]
    fn fail_next_sync(&self) {
        self.shared.fail_next_sync.store(true, Ordering::SeqCst);
    }

    /// Test hook: the writer thread panics at the next batch, as a bug in
    /// it would.
    #[cfg(test)]
    fn panic_next_batch(&self) {
        self.shared.panic_next_batch.store(true, Ordering::SeqCst);
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Hanging up lets the writer finish what is queued, then exit.
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("WAL writer thread panicked");
            }
        }
    }
}

impl Writer {
    fn run(mut self, commands: Receiver<Command>) {
        let _exit = WriterExit(Arc::clone(&self.shared));
        let mut carried: Option<Command> = None;
        loop {
            let command = match carried.take() {
                Some(command) => command,
                None => match commands.recv() {
                    Ok(command) => command,
                    Err(_) => return,
                },
            };
            let result = match command {
                Command::Append { seq, records } => {
                    self.buffer.clear();
                    let mut batch = Batch::default();
                    self.encode(&mut batch, seq, &records);
                    // Everything that queued while the last batch synced
                    // joins this one: that is the group commit.
                    // A batch never spans segments, so it is also kept
                    // within a segment's size (one large append may pass it).
                    let batch_max = usize::try_from(self.config.segment_max_bytes)
                        .unwrap_or(usize::MAX)
                        .min(BATCH_MAX_BYTES);
                    while self.buffer.len() < batch_max {
                        match commands.try_recv() {
                            Ok(Command::Append { seq, records }) => {
                                self.encode(&mut batch, seq, &records)
                            }
                            Ok(other) => {
                                carried = Some(other);
                                break;
                            }
                            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                        }
                    }
                    self.write_batch(&batch)
                }
                Command::Truncate { zxid, reply } => match self.truncate_after(zxid) {
                    Ok(last) => {
                        let _ = reply.send(Ok(last));
                        Ok(())
                    }
                    Err(error) => {
                        self.shared.poison(&error);
                        let _ = reply.send(Err(error));
                        return;
                    }
                },
                Command::Purge { zxid, reply } => {
                    // A failed delete loses no data: report it, do not poison.
                    let _ = reply.send(self.purge_before(zxid));
                    Ok(())
                }
            };
            if let Err(error) = result {
                self.shared.poison(&error);
                return;
            }
        }
    }

    fn encode(&mut self, batch: &mut Batch, seq: u64, records: &[Record]) {
        assert!(seq > batch.last_seq, "append sequence out of order");
        batch.last_seq = seq;
        for record in records {
            if let Some(previous) = batch.last_zxid {
                assert!(record.zxid > previous, "batch zxids out of order");
            }
            batch.first_zxid.get_or_insert(record.zxid);
            batch.last_zxid = Some(record.zxid);
            batch.records += 1;
            format::encode_record(&mut self.buffer, record.zxid, &record.payload);
        }
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), Error> {
        let (Some(first_zxid), Some(last_zxid)) = (batch.first_zxid, batch.last_zxid) else {
            // Only empty appends: nothing to write, they are durable as is.
            let zxid = self.shared.state.lock().durable.zxid;
            self.shared.publish(Durable {
                seq: batch.last_seq,
                zxid,
            });
            return Ok(());
        };
        // The marker goes out in the same write as the records: it costs no
        // extra system call or sync, and on disk it proves the batch whole.
        let batch_bytes = self.buffer.len();
        format::encode_marker(&mut self.buffer, last_zxid, batch_bytes);
        let len = u64::try_from(self.buffer.len()).unwrap_or(u64::MAX);
        let roll = match &self.active {
            None => true,
            Some(active) => {
                // A segment of an older version (an old data directory) is
                // closed: a file holds one version's frames.
                active.version != format::FORMAT_VERSION
                    || (active.position > header_offset()
                        && active.position.saturating_add(len) > self.config.segment_max_bytes)
            }
        };
        if roll {
            self.roll_over(first_zxid)?;
        }
        let sync = self.config.force_sync;
        let Some(active) = self.active.as_mut() else {
            unreachable!("roll_over always leaves an active segment");
        };
        let end = active.position.saturating_add(len);
        if end > active.allocated {
            // Grow by whole preallocation blocks past the batch's end.
            let block = self.config.pre_alloc_bytes.max(1);
            let new_len = end.div_ceil(block).saturating_mul(block);
            dir::preallocate(&active.file, &active.path, new_len)?;
            active.allocated = new_len;
        }
        #[cfg(test)]
        if self.shared.panic_next_batch.swap(false, Ordering::SeqCst) {
            panic!("injected WAL writer panic");
        }
        #[cfg(test)]
        if self.shared.fail_next_sync.swap(false, Ordering::SeqCst) {
            return Err(Error::io(
                &active.path,
                std::io::Error::other("injected fsync failure"),
            ));
        }
        // Timed on both io paths the same way: from handing the batch to the
        // kernel until it is durable (io_uring links the write and the sync
        // in one submission, so the two cannot be told apart there).
        let started = std::time::Instant::now();
        self.backend
            .write_batch(&active.file, &self.buffer, active.position, sync)
            .map_err(|e| Error::io(&active.path, e))?;
        let synced = sync.then(|| started.elapsed());
        if sync {
            self.shared.fsyncs.fetch_add(1, Ordering::SeqCst);
        }
        self.shared
            .sync_stats
            .record_batch(batch.records, len, synced);
        active.position = end;
        self.shared.publish(Durable {
            seq: batch.last_seq,
            zxid: batch.last_zxid,
        });
        Ok(())
    }

    fn roll_over(&mut self, first_zxid: u64) -> Result<(), Error> {
        let header = SegmentHeader::new(self.config.database_id, first_zxid);
        let (file, path, allocated) = dir::create_segment(
            &self.config.dir,
            header,
            &[],
            self.config.pre_alloc_bytes,
            self.config.force_sync,
        )?;
        if let Some((last_first, _)) = self.segments.last() {
            assert!(
                first_zxid > *last_first,
                "new segment {first_zxid:#x} after {last_first:#x}"
            );
        }
        self.segments.push((first_zxid, path.clone()));
        self.active = Some(Active {
            file,
            path,
            version: header.version,
            position: header_offset(),
            allocated,
        });
        Ok(())
    }

    fn truncate_after(&mut self, zxid: u64) -> Result<Option<u64>, Error> {
        // Newest segments go first, so a crash part-way leaves a log that is
        // a prefix of the old one plus some of its tail, never a gap.
        let mut removed_any = false;
        while let Some((first_zxid, path)) = self.segments.last() {
            if *first_zxid <= zxid {
                break;
            }
            if self
                .active
                .as_ref()
                .is_some_and(|active| &active.path == path)
            {
                self.active = None;
            }
            fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            self.segments.pop();
            removed_any = true;
        }
        if removed_any {
            dir::sync_dir(&self.config.dir)?;
        }
        let Some((_, path)) = self.segments.last().cloned() else {
            self.active = None;
            return Ok(None);
        };
        // Find where the records above zxid start in the remaining segment.
        let segment = SegmentFile::open(&path)?;
        let header = segment.header()?;
        let bytes = segment.bytes();
        let mut scan = SegmentScan::new(bytes, header.first_zxid);
        let mut cut = None;
        let mut last_kept = None;
        for record in scan.by_ref() {
            if record.zxid > zxid {
                cut = Some(record.offset);
                break;
            }
            last_kept = Some(record.zxid);
        }
        let Some(cut) = cut else {
            // Nothing above zxid here: appends go on after the last batch.
            for _ in scan.by_ref() {}
            let data_end = scan.committed().end;
            drop(segment);
            let active = match self.active.take() {
                Some(active) if active.path == path => active,
                _ => open_for_append(&path, data_end, header.version)?,
            };
            self.active = Some(active);
            return self.last_zxid_from(last_kept);
        };
        // The kept records after the last marker before the cut (all of
        // them in a version 1 segment) need a marker of their own.
        let unmarked_from = if header.version == format::FORMAT_VERSION_1 {
            header_offset()
        } else {
            scan.committed().end
        };
        let kept = usize::try_from(cut)
            .ok()
            .and_then(|cut| bytes.get(format::HEADER_BYTES..cut))
            .ok_or_else(|| Error::Corrupt {
                file: path.clone(),
                offset: cut,
            })?;
        let mut marker = Vec::with_capacity(format::MARKER_BYTES);
        if let Some(last) = last_kept.filter(|_| cut > unmarked_from) {
            let batch_bytes = usize::try_from(cut - unmarked_from).unwrap_or(usize::MAX);
            format::encode_marker(&mut marker, last, batch_bytes);
        }
        // The segment is rewritten, not zeroed in place: zeros over several
        // batches could reach the disk in any order on power loss and leave
        // an intact batch after a zeroed one, which open must take for
        // corruption. The rename swaps the new file in whole; a reader's map
        // of the old one stays valid.
        let (file, new_path, allocated) = dir::create_segment(
            &self.config.dir,
            SegmentHeader::new(header.database_id, header.first_zxid),
            &[kept, &marker],
            self.config.pre_alloc_bytes,
            self.config.force_sync,
        )?;
        assert_eq!(new_path, path, "a truncated segment keeps its name");
        let position = header_offset()
            .saturating_add(u64::try_from(kept.len() + marker.len()).unwrap_or(u64::MAX));
        drop(segment);
        if self.config.force_sync {
            self.shared.fsyncs.fetch_add(1, Ordering::SeqCst);
        }
        self.active = Some(Active {
            file,
            path,
            version: format::FORMAT_VERSION,
            position,
            allocated,
        });
        self.last_zxid_from(last_kept)
    }

    /// The last zxid in the log after a truncation kept `last_kept` in the
    /// newest segment, published as the durable zxid.
    fn last_zxid_from(&mut self, last_kept: Option<u64>) -> Result<Option<u64>, Error> {
        // Only a segment without records keeps nothing; the last zxid then
        // lies in an older segment.
        let mut last = last_kept;
        for (_, older) in self.segments.iter().rev().skip(1) {
            if last.is_some() {
                break;
            }
            let segment = SegmentFile::open(older)?;
            last = segment.scan()?.last().map(|record| record.zxid);
        }
        self.shared.state.lock().durable.zxid = last;
        Ok(last)
    }

    fn purge_before(&mut self, zxid: u64) -> Result<Vec<PathBuf>, Error> {
        let mut deleted = Vec::new();
        // Segment i holds only zxids below segment i+1's first zxid.
        while self.segments.len() >= 2 {
            let next_first = self
                .segments
                .get(1)
                .map(|(first, _)| *first)
                .unwrap_or(u64::MAX);
            if next_first > zxid {
                break;
            }
            let (_, path) = self.segments.remove(0);
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            deleted.push(path);
        }
        if !deleted.is_empty() {
            dir::sync_dir(&self.config.dir)?;
        }
        Ok(deleted)
    }
}

#[derive(Default)]
struct Batch {
    last_seq: u64,
    /// Records encoded into it.
    records: u64,
    first_zxid: Option<u64>,
    last_zxid: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::Reader;

    /// Runs `test` once per io path. The same assertions hold for both.
    fn for_each_mode(test: impl Fn(IoMode)) {
        let mut modes = vec![IoMode::Pwrite];
        if uring_available() {
            modes.push(IoMode::IoUring);
        } else {
            eprintln!(
                "!!! io_uring is NOT available on this machine: only the pwrite path is tested"
            );
        }
        for mode in modes {
            test(mode);
        }
    }

    /// Small blocks so a few hundred records span several segments.
    fn config(dir: &Path, io: IoMode) -> WalConfig {
        WalConfig {
            dir: dir.to_path_buf(),
            pre_alloc_bytes: 1024,
            force_sync: true,
            database_id: 7,
            io,
            segment_max_bytes: 4096,
        }
    }

    fn payload(zxid: u64, generation: u8) -> Vec<u8> {
        let length = usize::try_from(zxid % 7).unwrap_or(0) * 5;
        let mut bytes = format!("gen{generation} zxid {zxid}:").into_bytes();
        bytes.resize(bytes.len() + length, generation);
        bytes
    }

    fn records(zxids: std::ops::RangeInclusive<u64>, generation: u8) -> Vec<Record> {
        zxids
            .map(|zxid| Record {
                zxid,
                payload: payload(zxid, generation),
            })
            .collect()
    }

    fn open(dir: &Path, io: IoMode) -> (Wal, OpenReport) {
        Wal::open(config(dir, io)).expect("open")
    }

    fn read_from(dir: &Path, zxid: u64) -> Vec<Record> {
        Reader::open(dir, zxid)
            .expect("reader")
            .collect::<Result<Vec<_>, _>>()
            .expect("read")
    }

    /// Appends each record on its own and waits for the last.
    fn append_each(wal: &Wal, records: Vec<Record>) {
        let mut seq = 0;
        for record in records {
            seq = wal.append(vec![record]).expect("append");
        }
        wal.wait_durable(seq).expect("durable");
    }

    fn segment_paths(dir: &Path) -> Vec<PathBuf> {
        dir::list(dir)
            .expect("list")
            .0
            .into_iter()
            .map(|(_, path)| path)
            .collect()
    }

    /// Offsets of every record in a segment, and the end of the last one.
    fn record_offsets(path: &Path) -> (Vec<u64>, u64) {
        let segment = SegmentFile::open(path).expect("segment");
        let mut scan = segment.scan().expect("scan");
        let offsets = scan.by_ref().map(|record| record.offset).collect();
        (offsets, scan.data_end())
    }

    /// Appends each batch and waits for it before the next, so each is
    /// written as one batch of its own.
    fn append_batches(wal: &Wal, batches: impl IntoIterator<Item = Vec<Record>>) {
        for batch in batches {
            let seq = wal.append(batch).expect("append");
            wal.wait_durable(seq).expect("durable");
        }
    }

    /// (start, end) of every committed batch in a segment, marker included.
    fn batch_spans(path: &Path) -> Vec<(u64, u64)> {
        let segment = SegmentFile::open(path).expect("segment");
        let mut scan = segment.scan().expect("scan");
        let mut spans = Vec::new();
        let mut start = header_offset();
        loop {
            let more = scan.next().is_some();
            let end = scan.committed().end;
            if end > start {
                spans.push((start, end));
                start = end;
            }
            if !more {
                return spans;
            }
        }
    }

    fn copy_dir(from: &Path) -> tempfile::TempDir {
        let to = tempfile::tempdir().expect("tempdir");
        for entry in fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            fs::copy(entry.path(), to.path().join(entry.file_name())).expect("copy");
        }
        to
    }

    // Records written in batches across several segments read back in
    // order, from the start and from the middle, before and after reopening.
    #[test]
    fn round_trip_across_segments() {
        for_each_mode(|mode| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (wal, report) = open(dir.path(), mode);
            assert_eq!(report.last_zxid, None);
            let all = records(1..=300, 1);
            let mut seq = 0;
            for chunk in all.chunks(7) {
                seq = wal.append(chunk.to_vec()).expect("append");
            }
            wal.wait_durable(seq).expect("durable");
            assert_eq!(wal.durable().expect("durable").zxid, Some(300));
            drop(wal);
            assert!(
                segment_paths(dir.path()).len() > 3,
                "{mode:?}: expected several segments"
            );
            assert_eq!(read_from(dir.path(), 0), all);
            assert_eq!(read_from(dir.path(), 150), all[149..].to_vec());

            let (wal, report) = open(dir.path(), mode);
            assert_eq!((report.last_zxid, report.truncated_bytes), (Some(300), 0));
            append_each(&wal, records(301..=320, 1));
            drop(wal);
            assert_eq!(read_from(dir.path(), 1), records(1..=320, 1));
        });
    }

    /// The crash table of a torn last batch. Batches 1..=2 and 3..=3 are on
    /// disk; whichever byte of the last batch (4..=5: records and marker) a
    /// crash stopped at, and whatever the rest of it holds (zeros, garbage, a
    /// file that ends there, one wrong byte), open cuts that whole batch and
    /// keeps every earlier one; appends go on and survive a reopen. A damage
    /// that leaves the bytes as they were leaves the batch whole.
    #[test]
    fn torn_last_batch_at_every_byte() {
        for_each_mode(|mode| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (wal, _) = open(dir.path(), mode);
            append_batches(
                &wal,
                [records(1..=2, 1), records(3..=3, 1), records(4..=5, 1)],
            );
            drop(wal);
            let path = segment_paths(dir.path()).pop().expect("segment");
            let (start, end) = *batch_spans(&path).last().expect("batches");
            let name = path.file_name().expect("name").to_owned();
            let original = fs::read(&path).expect("read");
            let span = |bytes: &[u8]| -> Vec<u8> {
                let range =
                    usize::try_from(start).expect("fits")..usize::try_from(end).expect("fits");
                bytes.get(range).map(<[u8]>::to_vec).unwrap_or_default()
            };
            for cut in start..end {
                for damage in ["zeros", "garbage", "shorter file", "one wrong byte"] {
                    let copy = copy_dir(dir.path());
                    let path = copy.path().join(&name);
                    let file = OpenOptions::new().write(true).open(&path).expect("open");
                    let rest = usize::try_from(end - cut).expect("fits");
                    match damage {
                        "zeros" => write_zeros(&file, &path, cut, end).expect("zeros"),
                        "garbage" => file.write_all_at(&vec![0xA5; rest], cut).expect("garbage"),
                        "shorter file" => file.set_len(cut).expect("set_len"),
                        _ => {
                            let at = usize::try_from(cut).expect("fits");
                            file.write_all_at(&[original[at] ^ 0x20], cut)
                                .expect("byte")
                        }
                    }
                    drop(file);
                    let whole = span(&fs::read(&path).expect("read")) == span(&original);
                    let (wal, report) = open(copy.path(), mode);
                    let context = format!("{mode:?} {damage} from {cut}");
                    if whole {
                        assert_eq!(report.last_zxid, Some(5), "{context}");
                        continue;
                    }
                    assert_eq!(report.last_zxid, Some(3), "{context}");
                    assert_eq!(read_from(copy.path(), 0), records(1..=3, 1), "{context}");
                    append_batches(&wal, [records(4..=6, 2)]);
                    drop(wal);
                    let mut expected = records(1..=3, 1);
                    expected.extend(records(4..=6, 2));
                    assert_eq!(read_from(copy.path(), 0), expected, "{context}");
                    let (_, report) = open(copy.path(), mode);
                    assert_eq!(
                        (report.last_zxid, report.truncated_bytes),
                        (Some(6), 0),
                        "{context}"
                    );
                }
            }
        });
    }

    /// Power loss may persist the pages of the last batch in any order: a
    /// later record and the marker on disk while an earlier record of the
    /// same batch is not. Nothing in that batch was acknowledged (that waits
    /// for its fsync), so open cuts it as a torn tail and starts, rather than
    /// refusing as for corruption. Every pattern of lost 4 KiB pages of a
    /// batch spanning several pages is tried, then each record lost alone.
    #[test]
    fn last_batch_pages_lost_in_any_order_are_torn() {
        const PAGE: u64 = 4096;
        for_each_mode(|mode| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut config = config(dir.path(), mode);
            config.segment_max_bytes = 1 << 20;
            let (wal, _) = Wal::open(config.clone()).expect("open");
            let big: Vec<Record> = (3..=6u64)
                .map(|zxid| Record {
                    zxid,
                    payload: vec![u8::try_from(zxid).unwrap_or(0) | 0x80; 3000],
                })
                .collect();
            append_batches(&wal, [records(1..=2, 1), big]);
            drop(wal);
            let path = segment_paths(dir.path()).pop().expect("segment");
            let (start, end) = *batch_spans(&path).last().expect("batches");
            let (offsets, _) = record_offsets(&path);
            let pages: Vec<(u64, u64)> = (start / PAGE..=(end - 1) / PAGE)
                .map(|page| ((page * PAGE).max(start), ((page + 1) * PAGE).min(end)))
                .collect();
            assert!(pages.len() >= 3, "the batch spans {} pages", pages.len());
            let mut losses: Vec<Vec<(u64, u64)>> = (1..(1u32 << pages.len()))
                .map(|mask| {
                    let lost = pages
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0);
                    lost.map(|(_, range)| *range).collect()
                })
                .collect();
            // Each record of the batch but the last, alone.
            losses.extend(
                offsets
                    .windows(2)
                    .skip(2)
                    .map(|pair| vec![(pair[0], pair[1])]),
            );
            for lost in losses {
                let copy = copy_dir(dir.path());
                let copied = copy.path().join(path.file_name().expect("name"));
                let file = OpenOptions::new().write(true).open(&copied).expect("open");
                for (from, to) in &lost {
                    write_zeros(&file, &copied, *from, *to).expect("zeros");
                }
                drop(file);
                let mut reopen = config.clone();
                reopen.dir = copy.path().to_path_buf();
                let (_, report) = Wal::open(reopen)
                    .unwrap_or_else(|error| panic!("{mode:?} lost {lost:?}: {error}"));
                assert_eq!(report.last_zxid, Some(2), "{mode:?} lost {lost:?}");
                // Every page lost is no torn tail at all, just the end.
                let all_lost = lost.len() == pages.len();
                assert_eq!(
                    report.truncated_bytes == 0,
                    all_lost,
                    "{mode:?} lost {lost:?}"
                );
                assert_eq!(
                    read_from(copy.path(), 0),
                    records(1..=2, 1),
                    "{mode:?} lost {lost:?}"
                );
            }
        });
    }

    /// One wrong byte anywhere in a batch that an intact batch follows (a
    /// record's length, crc, zxid or payload, or its marker) is corruption:
    /// the writer starts a batch only after the previous one's fsync, so
    /// that batch was synced. Open refuses, naming the file and the offset
    /// of the frame holding the byte, and pointing at zk-snaprepair.
    #[test]
    fn damage_before_an_intact_batch_is_refused() {
        for_each_mode(|mode| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (wal, _) = open(dir.path(), mode);
            append_batches(
                &wal,
                [records(1..=2, 1), records(3..=5, 1), records(6..=6, 1)],
            );
            drop(wal);
            let path = segment_paths(dir.path()).pop().expect("segment");
            let (start, end) = batch_spans(&path)[1];
            let (offsets, _) = record_offsets(&path);
            let mut frames: Vec<u64> = offsets
                .into_iter()
                .filter(|offset| (start..end).contains(offset))
                .collect();
            frames.push(end - u64::try_from(format::MARKER_BYTES).expect("fits"));
            for at in start..end {
                let expected = frames.iter().rev().find(|frame| **frame <= at).copied();
                let copy = copy_dir(dir.path());
                let copied = copy.path().join(path.file_name().expect("name"));
                let mut bytes = fs::read(&copied).expect("read");
                let index = usize::try_from(at).expect("index");
                bytes[index] ^= 0x04;
                fs::write(&copied, &bytes).expect("write");
                match Wal::open(config(copy.path(), mode)) {
                    Err(error @ Error::Corrupt { .. }) => {
                        let Error::Corrupt { ref file, offset } = error else {
                            unreachable!()
                        };
                        assert_eq!((file, Some(offset)), (&copied, expected), "flip at {at}");
                        assert!(error.to_string().contains("zk-snaprepair"));
                    }
                    Err(other) => panic!("flip at {at}: {other}"),
                    Ok(_) => panic!("flip at {at}: open accepted a corrupt log"),
                }
            }
        });
    }

    // A bad tail in a segment that is not the newest is never a torn write:
    // its last batch was synced before the next segment was made.
    #[test]
    fn bad_tail_in_older_segment_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), IoMode::Pwrite);
        append_each(&wal, records(1..=200, 1));
        drop(wal);
        let first = segment_paths(dir.path())
            .into_iter()
            .next()
            .expect("segment");
        let (offsets, end) = record_offsets(&first);
        let last = *offsets.last().expect("records");
        let (last_batch, _) = *batch_spans(&first).last().expect("batches");
        let file = OpenOptions::new().write(true).open(&first).expect("open");
        write_zeros(&file, &first, last + 3, end).expect("zeros");
        drop(file);
        match Wal::open(config(dir.path(), IoMode::Pwrite)) {
            Err(Error::Corrupt { file, offset }) => assert_eq!((file, offset), (first, last_batch)),
            other => panic!(
                "expected corruption, got {:?}",
                other.map(|(_, report)| report)
            ),
        }
    }

    /// A version 1 segment: `records`, then `tail` (a torn write, say), then
    /// preallocated zeros.
    fn write_version_1(dir: &Path, records: &[Record], tail: &[u8]) -> PathBuf {
        let first_zxid = records.first().map_or(1, |record| record.zxid);
        let mut bytes = format::encode_header(SegmentHeader {
            version: format::FORMAT_VERSION_1,
            database_id: 7,
            first_zxid,
        })
        .to_vec();
        for record in records {
            format::encode_record(&mut bytes, record.zxid, &record.payload);
        }
        bytes.extend_from_slice(tail);
        bytes.resize(bytes.len() + 512, 0);
        let path = dir.join(dir::segment_name(first_zxid));
        fs::write(&path, &bytes).expect("write");
        path
    }

    fn version(path: &Path) -> u32 {
        SegmentFile::open(path)
            .expect("open")
            .header()
            .expect("header")
            .version
    }

    /// Data directories from before commit markers still open. A version 1
    /// segment keeps its own rules: a torn last record is cut and the whole
    /// records before it stay; a bad record a valid one follows is refused.
    /// Appends go to a new version 2 segment, and a truncation into the old
    /// segment rewrites it in version 2.
    #[test]
    fn version_1_segments_still_open() {
        for_each_mode(|mode| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut torn = Vec::new();
            format::encode_record(&mut torn, 6, &payload(6, 1));
            torn.truncate(torn.len() - 4);
            let old = write_version_1(dir.path(), &records(1..=5, 1), &torn);
            let (wal, report) = open(dir.path(), mode);
            assert_eq!(report.last_zxid, Some(5));
            assert!(report.truncated_bytes > 0);
            assert_eq!(read_from(dir.path(), 0), records(1..=5, 1));
            append_batches(&wal, [records(6..=8, 2), records(9..=9, 2)]);
            drop(wal);
            let paths = segment_paths(dir.path());
            assert_eq!(paths.len(), 2, "appends start a new segment");
            assert_eq!(
                (version(&paths[0]), version(&paths[1])),
                (1, format::FORMAT_VERSION)
            );
            let mut expected = records(1..=5, 1);
            expected.extend(records(6..=9, 2));
            assert_eq!(read_from(dir.path(), 0), expected);
            let (wal, report) = open(dir.path(), mode);
            assert_eq!((report.last_zxid, report.truncated_bytes), (Some(9), 0));
            assert_eq!(wal.truncate_after(3).expect("truncate"), Some(3));
            drop(wal);
            assert_eq!(segment_paths(dir.path()), vec![old.clone()]);
            assert_eq!(version(&old), format::FORMAT_VERSION);
            let (wal, report) = open(dir.path(), mode);
            assert_eq!(report.last_zxid, Some(3));
            append_batches(&wal, [records(4..=4, 3)]);
            drop(wal);
            let mut expected = records(1..=3, 1);
            expected.extend(records(4..=4, 3));
            assert_eq!(read_from(dir.path(), 0), expected);

            let corrupt = tempfile::tempdir().expect("tempdir");
            let path = write_version_1(corrupt.path(), &records(1..=5, 1), &[]);
            let (offsets, _) = record_offsets(&path);
            let mut bytes = fs::read(&path).expect("read");
            bytes[usize::try_from(offsets[1] + 20).expect("fits")] ^= 0x01;
            fs::write(&path, &bytes).expect("write");
            match Wal::open(config(corrupt.path(), mode)) {
                Err(Error::Corrupt { file, offset }) => {
                    assert_eq!((file, offset), (path, offsets[1]))
                }
                other => panic!("expected corruption, got {:?}", other.map(|(_, r)| r)),
            }
        });
    }

    /// TRUNC inside a batch: the kept records of that batch get a marker of
    /// their own, so they survive a reopen; the ones above the zxid are gone.
    #[test]
    fn truncate_inside_a_batch_survives_reopen() {
        for_each_mode(|mode| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (wal, _) = open(dir.path(), mode);
            append_batches(
                &wal,
                [records(1..=2, 1), records(3..=7, 1), records(8..=9, 1)],
            );
            assert_eq!(wal.truncate_after(5).expect("truncate"), Some(5));
            assert_eq!(wal.durable().expect("durable").zxid, Some(5));
            drop(wal);
            let (wal, report) = open(dir.path(), mode);
            assert_eq!((report.last_zxid, report.truncated_bytes), (Some(5), 0));
            assert_eq!(read_from(dir.path(), 0), records(1..=5, 1));
            append_batches(&wal, [records(6..=6, 2)]);
            drop(wal);
            let mut expected = records(1..=5, 1);
            expected.extend(records(6..=6, 2));
            assert_eq!(read_from(dir.path(), 0), expected);
        });
    }

    // Many threads appending at once: everything becomes durable, in the
    // order appended, with fewer fsyncs than appends (group commit).
    #[test]
    fn concurrent_appends_are_group_committed() {
        for_each_mode(|mode| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut config = config(dir.path(), mode);
            config.segment_max_bytes = 1 << 20;
            config.pre_alloc_bytes = 1 << 16;
            let (wal, _) = Wal::open(config).expect("open");
            let next_zxid = Mutex::new(1u64);
            const THREADS: u64 = 8;
            const EACH: u64 = 100;
            std::thread::scope(|scope| {
                for _ in 0..THREADS {
                    scope.spawn(|| {
                        let mut seq = 0;
                        for _ in 0..EACH {
                            // zxids are assigned and appended under one lock,
                            // as the sequencer does.
                            let mut zxid = next_zxid.lock();
                            seq = wal.append(records(*zxid..=*zxid, 1)).expect("append");
                            *zxid += 1;
                        }
                        wal.wait_durable(seq).expect("durable");
                    });
                }
            });
            let total = THREADS * EACH;
            assert_eq!(wal.durable().expect("durable").zxid, Some(total));
            let fsyncs = wal.fsync_count();
            assert!(
                fsyncs < total,
                "{mode:?}: {fsyncs} fsyncs for {total} appends"
            );
            drop(wal);
            assert_eq!(read_from(dir.path(), 0), records(1..=total, 1));
        });
    }

    // The figures behind the server's `fsynctime` and `zkrs_wal_*` metrics:
    // each written batch counts once, with its records and its bytes on disk
    // (marker included), and only synced batches count as syncs.
    #[test]
    fn sync_stats_count_syncs_and_batch_sizes() {
        for_each_mode(|mode| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (wal, _) = open(dir.path(), mode);
            let stats = wal.sync_stats();
            assert_eq!((stats.batches(), stats.syncs()), (0, 0));
            append_batches(&wal, [records(1..=3, 1), records(4..=4, 1)]);
            assert_eq!((stats.batches(), stats.syncs()), (2, 2), "{mode:?}");
            let txns = stats.batch_records().summary(&[500]);
            assert_eq!((txns.count, txns.sum, txns.min, txns.max), (2, 4, 1, 3));
            let paths = segment_paths(dir.path());
            assert_eq!(paths.len(), 1);
            let on_disk: u64 = batch_spans(&paths[0])
                .iter()
                .map(|(start, end)| end - start)
                .sum();
            let bytes = stats.batch_bytes().summary(&[]);
            assert_eq!((bytes.count, bytes.sum), (2, on_disk), "{mode:?}");
            assert_eq!(stats.sync_time_us().count(), 2);
            drop(wal);

            let unsynced = tempfile::tempdir().expect("tempdir");
            let mut config = config(unsynced.path(), mode);
            config.force_sync = false;
            let (wal, _) = Wal::open(config).expect("open");
            let stats = wal.sync_stats();
            append_batches(&wal, [records(1..=2, 1)]);
            assert_eq!((stats.batches(), stats.syncs()), (1, 0), "{mode:?}");
        });
    }

    // After a failed fsync every call answers Poisoned, and subscribers see
    // their channel close.
    #[test]
    fn failed_sync_poisons() {
        for_each_mode(|mode| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (wal, _) = open(dir.path(), mode);
            let notifications = wal.subscribe();
            append_each(&wal, records(1..=3, 1));
            // Appends may share a batch, so notifications may skip seqs.
            let mut seen = 0;
            while seen < 3 {
                let durable = notifications.recv().expect("notification");
                assert!(durable.seq > seen);
                seen = durable.seq;
            }
            assert_eq!(
                wal.durable().expect("durable"),
                Durable {
                    seq: 3,
                    zxid: Some(3)
                }
            );
            wal.fail_next_sync();
            let seq = wal
                .append(records(4..=4, 1))
                .expect("queued before the failure");
            assert!(matches!(wal.wait_durable(seq), Err(Error::Poisoned)));
            assert!(matches!(wal.wait_durable(1), Err(Error::Poisoned)));
            assert!(matches!(
                wal.append(records(5..=5, 1)),
                Err(Error::Poisoned)
            ));
            assert!(matches!(wal.durable(), Err(Error::Poisoned)));
            assert!(matches!(wal.purge_before(1), Err(Error::Poisoned)));
            while notifications.recv().is_ok() {}
            drop(wal);
            let (_, report) = open(dir.path(), mode);
            assert_eq!(report.last_zxid, Some(3));
        });
    }

    // A panic in the writer thread poisons the WAL like a failed fsync: a
    // waiter gets Poisoned instead of blocking forever, later calls fail,
    // subscribers see their channel close, and dropping the WAL returns.
    #[test]
    fn writer_panic_wakes_waiters_with_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), IoMode::Pwrite);
        append_each(&wal, records(1..=2, 1));
        let notifications = wal.subscribe();
        let wal = Arc::new(wal);
        wal.panic_next_batch();
        let seq = wal
            .append(records(3..=3, 1))
            .expect("queued before the panic");
        let (sender, receiver) = std::sync::mpsc::channel();
        let waiter = Arc::clone(&wal);
        let waiting = std::thread::spawn(move || {
            let _ = sender.send(waiter.wait_durable(seq));
        });
        // Bounded: before the fix the waiter blocks for good.
        let answer = receiver
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the waiter was never woken after the writer panicked");
        assert!(matches!(answer, Err(Error::Poisoned)), "{answer:?}");
        assert!(matches!(wal.wait_durable(1), Err(Error::Poisoned)));
        assert!(matches!(wal.durable(), Err(Error::Poisoned)));
        assert!(matches!(
            wal.append(records(4..=4, 1)),
            Err(Error::Poisoned)
        ));
        assert!(matches!(wal.truncate_after(1), Err(Error::Poisoned)));
        assert!(matches!(wal.purge_before(1), Err(Error::Poisoned)));
        while notifications.recv().is_ok() {}
        waiting.join().expect("waiter");
        // The last handle: dropping it joins the dead writer, and returns.
        drop(wal);
        let (_, report) = open(dir.path(), IoMode::Pwrite);
        assert_eq!(report.last_zxid, Some(2));
    }

    // Zab TRUNC: records above the zxid go, in the active segment and in
    // whole later segments; appends continue from there and survive reopen.
    #[test]
    fn truncate_after_then_append() {
        for_each_mode(|mode| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (wal, _) = open(dir.path(), mode);
            append_each(&wal, records(1..=200, 1));
            let segments_before = segment_paths(dir.path()).len();
            assert_eq!(wal.truncate_after(42).expect("truncate"), Some(42));
            assert!(segment_paths(dir.path()).len() < segments_before);
            assert_eq!(read_from(dir.path(), 0), records(1..=42, 1));
            append_each(&wal, records(43..=60, 2));
            assert_eq!(wal.truncate_after(1000).expect("no-op"), Some(60));
            drop(wal);
            let mut expected = records(1..=42, 1);
            expected.extend(records(43..=60, 2));
            assert_eq!(read_from(dir.path(), 0), expected);
            let (wal, report) = open(dir.path(), mode);
            assert_eq!(report.last_zxid, Some(60));
            assert_eq!(wal.truncate_after(0).expect("truncate all"), None);
            append_each(&wal, records(5..=6, 3));
            drop(wal);
            assert_eq!(read_from(dir.path(), 0), records(5..=6, 3));
        });
    }

    // Purge deletes whole segments before the zxid, keeps the one holding
    // it, and the log still opens and reads from there.
    #[test]
    fn purge_before_keeps_the_segment_holding_the_zxid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), IoMode::Pwrite);
        append_each(&wal, records(1..=300, 1));
        let before = dir::list(dir.path()).expect("list").0;
        assert!(before.len() > 3);
        let (third_first, _) = before[2].clone();
        let deleted = wal.purge_before(third_first + 1).expect("purge");
        assert_eq!(deleted, vec![before[0].1.clone(), before[1].1.clone()]);
        assert_eq!(
            wal.purge_before(u64::MAX).expect("purge").len(),
            before.len() - 3
        );
        assert_eq!(
            segment_paths(dir.path()),
            vec![before.last().expect("last").1.clone()]
        );
        append_each(&wal, records(301..=310, 1));
        drop(wal);
        let newest_first = before.last().expect("last").0;
        let (_, report) = open(dir.path(), IoMode::Pwrite);
        assert_eq!(report.last_zxid, Some(310));
        assert_eq!(read_from(dir.path(), 0), records(newest_first..=310, 1));
    }

    // A crash during roll-over leaves a temporary file or a newest segment
    // with no record; open removes both and appends go on in the old one.
    #[test]
    fn unfinished_roll_over_is_cleaned_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), IoMode::Pwrite);
        append_each(&wal, records(1..=3, 1));
        drop(wal);
        let header = SegmentHeader::new(7, 4);
        let (_, empty, _) =
            dir::create_segment(dir.path(), header, &[], 1024, false).expect("segment");
        let temp = dir.path().join("log.0000000000000005.tmp");
        fs::write(&temp, b"ZKRS").expect("temp");
        let (wal, report) = open(dir.path(), IoMode::Pwrite);
        assert_eq!(report.removed, vec![temp, empty]);
        assert_eq!((report.last_zxid, report.segments), (Some(3), 1));
        append_each(&wal, records(4..=5, 1));
        drop(wal);
        assert_eq!(read_from(dir.path(), 0), records(1..=5, 1));
    }

    // Segments of another database are refused; oversized records are an
    // error value, not a panic.
    #[test]
    fn wrong_database_and_oversized_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), IoMode::Pwrite);
        let huge = Record {
            zxid: 1,
            payload: vec![0; format::MAX_PAYLOAD_BYTES + 1],
        };
        assert!(matches!(
            wal.append(vec![huge]),
            Err(Error::RecordTooLarge { zxid: 1, .. })
        ));
        append_each(&wal, records(1..=2, 1));
        drop(wal);
        let mut other = config(dir.path(), IoMode::Pwrite);
        other.database_id = 8;
        assert!(matches!(
            Wal::open(other),
            Err(Error::WrongDatabase {
                expected: 8,
                found: 7,
                ..
            })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        // Whatever bytes follow a valid header, open and the reader return
        // values (records, Corrupt, a repaired tail) and never panic; after
        // a successful open, appends work and the reader agrees with it.
        #[test]
        fn open_and_read_arbitrary_segments(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            valid in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..5),
            old in proptest::prelude::any::<bool>(),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let version = if old { format::FORMAT_VERSION_1 } else { format::FORMAT_VERSION };
            let header = SegmentHeader { version, database_id: 7, first_zxid: 1 };
            let mut bytes = format::encode_header(header).to_vec();
            for (index, payload) in valid.iter().enumerate() {
                let zxid = index as u64 + 1;
                if old {
                    format::encode_record(&mut bytes, zxid, payload);
                } else {
                    format::encode_batch(&mut bytes, [(zxid, payload.as_slice())]);
                }
            }
            bytes.extend_from_slice(&body);
            fs::write(dir.path().join(dir::segment_name(1)), &bytes).expect("write");
            let read: Vec<_> = Reader::open(dir.path(), 0).expect("reader").collect();
            let mut config = config(dir.path(), IoMode::Pwrite);
            config.force_sync = false;
            if let Ok((wal, report)) = Wal::open(config) {
                let kept = read_from(dir.path(), 0);
                proptest::prop_assert!(kept.len() >= valid.len());
                proptest::prop_assert_eq!(report.last_zxid, kept.last().map(|r| r.zxid));
                proptest::prop_assert!(read.len() >= kept.len());
                let next = report.last_zxid.unwrap_or(0) + 1;
                append_each(&wal, records(next..=next, 9));
                drop(wal);
                proptest::prop_assert_eq!(read_from(dir.path(), 0).len(), kept.len() + 1);
            }
        }
    }

    // Appends must increase: a caller that reuses a zxid has lost track.
    #[test]
    #[should_panic(expected = "out of order")]
    fn out_of_order_append_is_asserted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), IoMode::Pwrite);
        let _ = wal.append(records(5..=5, 1));
        let _ = wal.append(records(5..=5, 1));
    }
}
