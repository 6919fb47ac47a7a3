//! The seam between the tree and durability. The pipeline hands every batch of
//! txns to a `Storage` before applying them, and applies (and so answers and
//! fires watches for) a txn only once `append` has returned for its batch.
//! Backends — the native WAL + snapshots, RocksDB — implement this trait,
//! and `contract` tests hold both to the same behaviour.
//!
//! Besides the commit path, the trait carries what replication needs: read
//! the log from a zxid (Zab DIFF), drop the log after a zxid (TRUNC), replace
//! the whole state (SNAP), and checkpoints that shorten the log.

use crate::tree::DataTree;
use crate::txn::Txn;
use crate::types::Zxid;
use std::path::PathBuf;
use std::sync::Arc;
pub use wal::SyncStats;

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
    /// `read_log` was asked for txns the log no longer holds: they were
    /// folded into a checkpoint. The reader needs a whole state instead.
    #[error("the log holds txns after {floor} only, not after {after}")]
    LogCompacted { after: Zxid, floor: Zxid },
    /// `truncate_after` would cut below state a checkpoint already holds;
    /// nothing was changed. Only `install` can roll that state back.
    #[error("cannot truncate after {zxid}: a checkpoint holds state up to {checkpoint}")]
    TruncateBelowCheckpoint { zxid: Zxid, checkpoint: Zxid },
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

    /// The durable state: the tree and the last zxid in it. The first call
    /// hands over what opening the backend recovered; later calls read it
    /// from disk again (after `truncate_after`, say). Call it with no append
    /// outstanding.
    fn recover(&mut self) -> Result<(DataTree, Zxid), StorageError>;

    /// Durable txns logged after `after`, oldest first, at most `max` of
    /// them; fewer than `max` means the log ends there. Fails with
    /// `LogCompacted` when `after` is below `log_floor()`.
    fn read_log(&self, after: Zxid, max: usize) -> Result<Vec<Txn>, StorageError>;

    /// The log holds every durable txn after this zxid; those at or below it
    /// may live only in a checkpoint.
    fn log_floor(&self) -> Result<Zxid, StorageError>;

    /// Drops every logged txn after `zxid` (Zab TRUNC: a follower's
    /// proposals the new leader never committed), once the appends queued
    /// before it are written. Appends then continue after `zxid`. Refuses
    /// with `TruncateBelowCheckpoint`, changing nothing, if a checkpoint
    /// holds state past `zxid`. The tree in memory is the caller's to
    /// rebuild, with `recover`.
    fn truncate_after(&mut self, zxid: Zxid) -> Result<(), StorageError>;

    /// Makes `tree`, as of its last zxid, the whole durable state: the
    /// checkpoints and the entire log are replaced (Zab SNAP). A crash part
    /// way leaves the old state or the new one, never a mix. Appends then
    /// continue after the tree's last zxid. Call it with no append
    /// outstanding.
    fn install(&mut self, tree: &DataTree) -> Result<(), StorageError>;

    /// Takes checkpoints of the live tree from another thread.
    fn checkpointer(&self) -> Arc<dyn Checkpointer>;

    /// A short name for logs and `conf`.
    fn name(&self) -> &'static str;

    /// The log writer's batch sizes and sync times, for metrics (the
    /// reference's `fsynctime` among them), if the backend keeps them. Taken
    /// once, before the storage moves to the pipeline; the handle is updated
    /// as the writer goes.
    fn sync_stats(&self) -> Option<Arc<SyncStats>> {
        None
    }
}

/// Periodic durable copies of the tree that shorten the log, whatever the
/// backend: native snapshots, RocksDB checkpoints. The server's snapshot
/// schedule drives one of these from a background thread.
pub trait Checkpointer: Send + Sync {
    /// Writes a (fuzzy) copy of `tree` while writes go on.
    fn take(&self, tree: &parking_lot::RwLock<DataTree>) -> Result<Checkpoint, StorageError>;

    /// Removes what no longer serves recovery, keeping at least `retain`
    /// copies where the backend keeps several; returns how many files or
    /// items were removed.
    fn purge(&self, retain: usize) -> Result<usize, StorageError>;
}

/// One checkpoint: the tree walked from `start` while writes went on until
/// `end`. It plus the logged txns in (`start`, `end`] is exactly the tree
/// at `end`, whose digest was `digest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub start: Zxid,
    pub end: Zxid,
    pub digest: u64,
    /// Where it was written, for the server's log.
    pub location: String,
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}..{})", self.location, self.start, self.end)
    }
}

/// Names one `append` call; tickets grow with every call.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Ticket(pub u64);

/// How a backend reports durability: blocking (`wait`) or as events
/// (`wakeups` + `durable`), for a pipeline that selects over its inputs.
pub trait DurableWait: Send + Sync {
    /// Returns once everything appended up to `ticket` is durable, or the
    /// error that makes it never so (after which the server stops).
    fn wait(&self, ticket: Ticket) -> Result<(), StorageError>;

    /// Every append up to this ticket is durable (Ticket(0): none yet).
    /// Does not block. Fails once nothing more can become durable.
    fn durable(&self) -> Result<Ticket, StorageError>;

    /// A wake-up channel: it holds a message whenever `durable` has moved
    /// since the receiver last looked (at most one pending), and
    /// disconnects once nothing more can become durable; then `durable`
    /// says why.
    fn wakeups(&self) -> crossbeam_channel::Receiver<()>;
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

/// Helpers the backends' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::{commit_in_place, Storage};
    use crate::prep::{Prep, PrepConfig};
    use crate::request::{CreateRequest, Request};
    use crate::tree::DataTree;
    use crate::txn::Txn;
    use crate::types::{Acl, OpCode, SessionId, Zxid};
    use parking_lot::RwLock;

    /// A prep for a tree whose last zxid is `last`, extended types off.
    pub(crate) fn prep_at(last: Zxid) -> Prep {
        Prep::new(
            last,
            PrepConfig {
                extended_types_enabled: false,
            },
        )
    }

    /// A persistent node at `path` whose data is its path.
    pub(crate) fn create(path: &str) -> Request {
        Request::Create {
            op: OpCode::Create,
            request: CreateRequest {
                path: path.to_string(),
                data: Some(path.as_bytes().to_vec()),
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl: -1,
            },
        }
    }

    /// What `storage` recovered, held as the pipeline holds the tree, and a
    /// prep to write on top of it.
    pub(crate) fn recovered(storage: &mut dyn Storage) -> (RwLock<DataTree>, Prep) {
        let (tree, last) = storage.recover().expect("recover");
        (RwLock::new(tree), prep_at(last))
    }

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

/// The `Storage` contract, written once against `dyn Storage` and run on
/// every backend (`contract::native::*`, `contract::rocksdb::*`).
#[cfg(test)]
mod contract {
    use super::testing::{create, prep_at, recovered};
    use super::{commit_in_place, Storage, StorageError};
    use crate::apply::apply;
    use crate::prep::Prep;
    use crate::tree::DataTree;
    use crate::txn::Txn;
    use crate::types::{SessionId, Zxid};
    use parking_lot::RwLock;
    use std::path::Path;

    /// Opens a backend's storage in a directory, as a restart would.
    trait Backend {
        fn open(dir: &Path) -> Box<dyn Storage>;
    }

    struct Native;

    impl Backend for Native {
        fn open(dir: &Path) -> Box<dyn Storage> {
            let config = crate::native::NativeConfig {
                snapshot_dir: dir.to_path_buf(),
                log_dir: dir.join("log"),
                pre_alloc_bytes: 4096,
                force_sync: true,
                io: wal::IoMode::Auto,
                // A segment per batch or so, so purging moves the log floor.
                segment_max_bytes: 256,
            };
            Box::new(crate::native::NativeStorage::open(config).expect("open native"))
        }
    }

    #[cfg(feature = "rocksdb")]
    struct Rocks;

    #[cfg(feature = "rocksdb")]
    impl Backend for Rocks {
        fn open(dir: &Path) -> Box<dyn Storage> {
            let config = crate::rocks::RocksConfig {
                dir: dir.join("rocksdb"),
                force_sync: true,
            };
            Box::new(crate::rocks::RocksStorage::open(config).expect("open rocksdb"))
        }
    }

    /// A storage, the tree it feeds, and every txn committed through it.
    struct Node {
        storage: Box<dyn Storage>,
        tree: RwLock<DataTree>,
        prep: Prep,
        txns: Vec<Txn>,
    }

    impl Node {
        fn open<B: Backend>(dir: &Path) -> Node {
            let mut storage = B::open(dir);
            let (tree, prep) = recovered(&mut *storage);
            Node {
                storage,
                tree,
                prep,
                txns: Vec::new(),
            }
        }

        /// Commits one batch of creates named `{prefix}{i}`.
        fn create(&mut self, prefix: &str, count: usize) {
            let txns: Vec<Txn> = {
                let tree = self.tree.read();
                (0..count)
                    .map(|i| {
                        let request = create(&format!("{prefix}{i}"));
                        self.prep
                            .prep(&tree, SessionId(1), 0, &[], &request, 1_000)
                            .expect("prep")
                    })
                    .collect()
            };
            let last = commit_in_place(&mut *self.storage, &self.tree, &txns).expect("commit");
            self.prep.applied(last);
            self.txns.extend(txns);
        }

        /// `count` batches of `per_batch` creates.
        fn create_batches(&mut self, prefix: &str, count: usize, per_batch: usize) {
            for batch in 0..count {
                self.create(&format!("{prefix}{batch}_"), per_batch);
            }
        }

        fn last(&self) -> Zxid {
            self.tree.read().last_zxid()
        }

        fn digest(&self) -> u64 {
            self.tree.read().digest()
        }

        /// After a truncate or install: rebuild the tree from storage.
        fn reload(&mut self) {
            let (tree, last) = self.storage.recover().expect("recover");
            *self.tree.write() = tree;
            self.prep = prep_at(last);
        }
    }

    /// The tree `txns` build from nothing.
    fn replayed(txns: &[Txn]) -> DataTree {
        let mut tree = DataTree::new();
        for txn in txns {
            apply(&mut tree, txn);
        }
        tree
    }

    fn zxids(txns: &[Txn]) -> Vec<i64> {
        txns.iter().map(|txn| txn.zxid.0).collect()
    }

    fn read_log_returns_the_durable_log_in_order<B: Backend>() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = Node::open::<B>(dir.path());
        node.create_batches("/a", 6, 5);
        let storage = &node.storage;
        assert_eq!(storage.log_floor().expect("floor"), Zxid::ZERO);
        let all = storage.read_log(Zxid::ZERO, usize::MAX).expect("read");
        assert_eq!(all, node.txns);
        let tail = storage.read_log(Zxid(10), 100).expect("read");
        assert_eq!(tail, node.txns[10..]);
        let some = storage.read_log(Zxid(12), 5).expect("read");
        assert_eq!(zxids(&some), (13..=17).collect::<Vec<_>>());
        assert!(storage.read_log(Zxid(30), 10).expect("read").is_empty());
        assert!(storage.read_log(Zxid(99), 10).expect("read").is_empty());
        // The same after a restart.
        let txns = std::mem::take(&mut node.txns);
        drop(node);
        let node = Node::open::<B>(dir.path());
        assert_eq!(node.storage.read_log(Zxid(3), 4).expect("read"), txns[3..7]);
    }

    /// Checkpoints let a backend drop the log behind them. Whatever it keeps,
    /// the log is whole above its floor, and asking below it is an error.
    fn the_log_is_whole_above_its_floor<B: Backend>() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = Node::open::<B>(dir.path());
        let checkpointer = node.storage.checkpointer();
        let mut starts = Vec::new();
        for round in 0..4 {
            node.create_batches(&format!("/r{round}_"), 2, 5);
            let checkpoint = checkpointer.take(&node.tree).expect("checkpoint");
            assert_eq!(
                (checkpoint.start, checkpoint.end),
                (node.last(), node.last())
            );
            assert_eq!(checkpoint.digest, node.digest());
            starts.push(checkpoint.start);
        }
        checkpointer.purge(3).expect("purge");
        node.create("/after", 3);
        let floor = node.storage.log_floor().expect("floor");
        assert!(floor > Zxid::ZERO, "nothing was dropped from the log");
        assert!(floor <= *starts.last().expect("checkpoints"));
        let above = node.storage.read_log(floor, usize::MAX).expect("read");
        let expected: Vec<Txn> = node
            .txns
            .iter()
            .filter(|txn| txn.zxid > floor)
            .cloned()
            .collect();
        assert_eq!(above, expected);
        let below = Zxid(floor.0 - 1);
        match node.storage.read_log(below, 10) {
            Err(StorageError::LogCompacted { after, floor: f }) => {
                assert_eq!((after, f), (below, floor))
            }
            other => panic!("read below the floor: {other:?}"),
        }
    }

    fn truncate_drops_the_tail_and_appends_go_on<B: Backend>() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = Node::open::<B>(dir.path());
        node.create_batches("/a", 4, 5);
        // In the middle of a batch.
        node.storage.truncate_after(Zxid(12)).expect("truncate");
        node.reload();
        node.txns.truncate(12);
        assert_eq!(node.last(), Zxid(12));
        assert_eq!(node.digest(), replayed(&node.txns).digest());
        assert_eq!(
            node.storage.read_log(Zxid::ZERO, usize::MAX).expect("read"),
            node.txns
        );
        // A different history continues from there, and survives a restart.
        node.create("/b", 4);
        assert_eq!(node.last(), Zxid(16));
        let (digest, txns) = (node.digest(), node.txns.clone());
        assert_eq!(digest, replayed(&txns).digest());
        drop(node);
        let node = Node::open::<B>(dir.path());
        assert_eq!((node.last(), node.digest()), (Zxid(16), digest));
        assert_eq!(
            node.storage.read_log(Zxid::ZERO, usize::MAX).expect("read"),
            txns
        );
        // Truncating at or past the end changes nothing.
        let mut node = node;
        node.storage.truncate_after(Zxid(40)).expect("truncate");
        node.reload();
        assert_eq!((node.last(), node.digest()), (Zxid(16), digest));
    }

    fn truncate_below_a_checkpoint_is_refused<B: Backend>() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = Node::open::<B>(dir.path());
        node.create_batches("/a", 2, 5);
        node.storage
            .checkpointer()
            .take(&node.tree)
            .expect("checkpoint");
        node.create("/b", 5);
        match node.storage.truncate_after(Zxid(5)) {
            Err(StorageError::TruncateBelowCheckpoint { zxid, checkpoint }) => {
                assert_eq!((zxid, checkpoint), (Zxid(5), Zxid(10)))
            }
            other => panic!("truncate below a checkpoint: {other:?}"),
        }
        // Nothing changed.
        let digest = node.digest();
        node.reload();
        assert_eq!((node.last(), node.digest()), (Zxid(15), digest));
        // At the checkpoint's end is allowed.
        node.storage.truncate_after(Zxid(10)).expect("truncate");
        node.reload();
        assert_eq!(node.last(), Zxid(10));
        assert_eq!(node.digest(), replayed(&node.txns[..10]).digest());
    }

    /// The installed state replaces everything, whether it is ahead of the
    /// old one or behind it.
    fn install_replaces_the_state_and_the_log<B: Backend>() {
        for (old_batches, new_batches) in [(2, 6), (6, 2)] {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut node = Node::open::<B>(dir.path());
            node.create_batches("/old", old_batches, 5);
            node.storage
                .checkpointer()
                .take(&node.tree)
                .expect("checkpoint");
            node.create("/old_tail", 3);

            let other = tempfile::tempdir().expect("temp dir");
            let mut leader = Node::open::<B>(other.path());
            leader.create_batches("/new", new_batches, 5);
            let installed = leader.tree.read();
            node.storage.install(&installed).expect("install");
            node.reload();
            assert_eq!(
                (node.last(), node.digest()),
                (leader.last(), leader.digest())
            );
            assert!(node.tree.read().get("/old0_0").is_none());
            let floor = node.storage.log_floor().expect("floor");
            assert!(floor <= leader.last());
            assert!(node
                .storage
                .read_log(floor, usize::MAX)
                .expect("read")
                .is_empty());

            // Appends go on from the installed state, and all of it survives
            // a restart.
            node.txns = leader.txns.clone();
            drop(installed);
            node.create("/next", 4);
            let digest = node.digest();
            assert_eq!(digest, replayed(&node.txns).digest());
            let last = node.last();
            drop(node);
            let node = Node::open::<B>(dir.path());
            assert_eq!((node.last(), node.digest()), (last, digest));
            assert!(node.tree.read().get("/old_tail0").is_none());
        }
    }

    /// A checkpoint taken while writes go on reports a range whose end
    /// matches its digest, and recovery lands exactly on the live tree.
    fn fuzzy_checkpoint_reports_a_consistent_range<B: Backend>() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = Node::open::<B>(dir.path());
        node.create_batches("/n", 20, 100);
        let checkpointer = node.storage.checkpointer();
        let checkpoint = std::thread::scope(|scope| {
            let tree = &node.tree;
            let taking = scope.spawn(|| checkpointer.take(tree).expect("checkpoint"));
            let mut round = 0;
            while !taking.is_finished() || round < 5 {
                let txns: Vec<Txn> = {
                    let tree = node.tree.read();
                    (0..4)
                        .map(|i| {
                            let request = create(&format!("/w{round}_{i}"));
                            node.prep
                                .prep(&tree, SessionId(1), 0, &[], &request, 1_000)
                                .expect("prep")
                        })
                        .collect()
                };
                let last = commit_in_place(&mut *node.storage, &node.tree, &txns).expect("commit");
                node.prep.applied(last);
                node.txns.extend(txns);
                round += 1;
            }
            taking.join().expect("checkpoint thread")
        });
        assert!(checkpoint.start <= checkpoint.end);
        let at_end: Vec<Txn> = node
            .txns
            .iter()
            .filter(|txn| txn.zxid <= checkpoint.end)
            .cloned()
            .collect();
        assert_eq!(replayed(&at_end).digest(), checkpoint.digest);
        let (last, digest) = (node.last(), node.digest());
        drop((checkpointer, node));
        let node = Node::open::<B>(dir.path());
        assert_eq!((node.last(), node.digest()), (last, digest));
    }

    /// `recover` after the first call reads the state from disk again.
    fn recover_again_reads_the_current_state<B: Backend>() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = Node::open::<B>(dir.path());
        node.create("/a", 7);
        let (tree, last) = node.storage.recover().expect("recover");
        assert_eq!((last, tree.digest()), (Zxid(7), node.digest()));
    }

    /// Durability as events: after an append is synced, a wake-up is
    /// pending and `durable` has reached its ticket; nothing blocks.
    fn durability_is_reported_as_events<B: Backend>() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = Node::open::<B>(dir.path());
        let durability = node.storage.waiter();
        let wakeups = durability.wakeups();
        let before = durability.durable().expect("durable");
        let txns: Vec<Txn> = {
            let tree = node.tree.read();
            vec![node
                .prep
                .prep(&tree, SessionId(1), 0, &[], &create("/e"), 1_000)
                .expect("prep")]
        };
        let ticket = node.storage.append(&txns).expect("append");
        assert!(ticket > before);
        wakeups
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a wake-up after the sync");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while durability.durable().expect("durable") < ticket {
            assert!(std::time::Instant::now() < deadline, "never became durable");
            let _ = wakeups.recv_timeout(std::time::Duration::from_millis(100));
        }
    }

    /// The stats hook: every backend reports its log writes, each batch
    /// counted once with its txns, before its durability is reported (so a
    /// waiter that has returned sees them).
    fn sync_stats_count_the_log_writes<B: Backend>() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = Node::open::<B>(dir.path());
        let stats = node
            .storage
            .sync_stats()
            .expect("the backend reports its log writes");
        let (batches, syncs) = (stats.batches(), stats.syncs());
        let txns = stats.batch_records().summary(&[]).sum;
        let bytes = stats.batch_bytes().summary(&[]).sum;
        node.create("/s", 5);
        node.create("/t", 1);
        assert_eq!(stats.batches() - batches, 2);
        assert_eq!(stats.syncs() - syncs, 2);
        assert_eq!(stats.batch_records().summary(&[]).sum - txns, 6);
        assert!(stats.batch_bytes().summary(&[]).sum - bytes > 6 * "/s0".len() as u64);
        assert_eq!(stats.sync_time_us().count(), stats.syncs());
    }

    macro_rules! on_every_backend {
        ($($test:ident),* $(,)?) => {
            mod native {
                $(#[test]
                fn $test() {
                    super::$test::<super::Native>()
                })*
            }
            #[cfg(feature = "rocksdb")]
            mod rocksdb {
                $(#[test]
                fn $test() {
                    super::$test::<super::Rocks>()
                })*
            }
        };
    }

    on_every_backend!(
        read_log_returns_the_durable_log_in_order,
        the_log_is_whole_above_its_floor,
        truncate_drops_the_tail_and_appends_go_on,
        truncate_below_a_checkpoint_is_refused,
        install_replaces_the_state_and_the_log,
        fuzzy_checkpoint_reports_a_consistent_range,
        recover_again_reads_the_current_state,
        durability_is_reported_as_events,
        sync_stats_count_the_log_writes,
    );
}
