//! What the offline tools (`zk-logdump`, `zk-snaprepair`) need of a
//! RocksDB-backend database: a read-only view (`Inspect`) of the checkpoint
//! meta, the logged txns and the checkpoint's records, safe beside a live
//! server; and, for a repair with the server stopped, a writer (`Offline`)
//! that can copy the database aside, drop a damaged log tail, or run
//! RocksDB's own repair.
//!
//! Not a second decoder: keys are the layout `rocks` documents and values
//! go through `persist`. Not a policy either: what counts as damage and what
//! a repair may drop is decided by the tools.
//!
//! Invariant: `Inspect` never writes into the database directory (RocksDB's
//! secondary instance keeps its own info log in a temporary directory of
//! its own, removed on drop), and `Offline` opens only when no server holds
//! the database's lock.

use super::{
    cf, db_error, expected_nodes, generation_prefix, missing_cf, read_meta, zxid_i64, Meta, LOG_CF,
    LOG_END_KEY, STATE_CF,
};
use crate::persist::{self, SnapshotRecord};
use crate::restore::{restore_pipelined, RestoreError};
use crate::storage::StorageError;
use crate::tree::DataTree;
use crate::txn::Txn;
use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Attempts to open a secondary: the primary may delete a WAL file between
/// the secondary listing and reading it (a flush finished meanwhile).
const SECONDARY_OPEN_ATTEMPTS: usize = 3;

/// The checkpoint meta as the tools show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointMeta {
    /// The generation of `state` entries the checkpoint consists of.
    pub generation: u64,
    /// The zxid the checkpoint walk started at: the log holds every txn
    /// after it.
    pub start: u64,
    /// The zxid at the walk's end and the tree's digest there.
    pub end: u64,
    pub digest: u64,
    /// Nodes in the tree at the end.
    pub nodes: u64,
    /// False for a database that never checkpointed (no meta entry): the
    /// checkpoint is then the empty tree.
    pub written: bool,
}

impl CheckpointMeta {
    fn from_meta(meta: Meta, written: bool) -> CheckpointMeta {
        CheckpointMeta {
            generation: meta.generation,
            start: meta.start,
            end: meta.end,
            digest: meta.digest,
            nodes: meta.nodes,
            written,
        }
    }

    fn to_meta(self) -> Meta {
        Meta {
            generation: self.generation,
            start: self.start,
            end: self.end,
            digest: self.digest,
            nodes: self.nodes,
        }
    }
}

/// One entry of the `log` column family.
#[derive(Debug)]
pub struct LoggedTxn {
    pub key: Vec<u8>,
    /// The zxid the key names; `None` if the key is not 8 bytes.
    pub zxid: Option<u64>,
    /// Key and value bytes.
    pub bytes: u64,
    /// The value decoded, or why it does not decode.
    pub txn: Result<Txn, String>,
}

/// One entry of the checkpoint's generation in `state`.
#[derive(Debug)]
pub struct CheckpointEntry {
    pub key: Vec<u8>,
    /// Key and value bytes.
    pub bytes: u64,
    pub record: Result<SnapshotRecord, String>,
}

/// A read-only view of a RocksDB-backend database.
///
/// Opened as a RocksDB *secondary* instance, not a read-only one: both
/// leave the primary's lock alone, but a read-only instance opens table
/// files lazily, so one that the live server's compaction unlinks
/// meanwhile is gone when it is first read; a secondary opened with
/// `max_open_files = -1` holds every table file open from the start
/// (RocksDB's documented requirement for reading beside a primary), and
/// it tolerates the WAL tail the primary is still writing. The view is the
/// database as of opening: later writes are not seen, so the meta, the
/// checkpoint and the log read from one `Inspect` belong together.
pub struct Inspect {
    // Declared before `secondary`: the instance closes before its
    // directory is removed.
    db: rocksdb::DB,
    dir: PathBuf,
    _secondary: TempDir,
}

impl Inspect {
    /// Opens the database in `dir` (the server's `<dataDir>/rocksdb`).
    pub fn open(dir: &Path) -> Result<Inspect, StorageError> {
        let families = list_families(dir)?;
        let mut options = Options::default();
        options.create_if_missing(false);
        options.set_max_open_files(-1);
        let mut last_error = None;
        for _ in 0..SECONDARY_OPEN_ATTEMPTS {
            let secondary = TempDir::new(dir)?;
            match rocksdb::DB::open_cf_as_secondary(&options, dir, secondary.0.as_path(), &families)
            {
                Ok(db) => {
                    return Ok(Inspect {
                        db,
                        dir: dir.to_path_buf(),
                        _secondary: secondary,
                    })
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.map_or_else(|| missing_cf(dir, LOG_CF), |error| db_error(dir, error)))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current checkpoint's meta; a damaged meta is an error.
    pub fn meta(&self) -> Result<CheckpointMeta, StorageError> {
        let state = cf(&self.db, &self.dir, STATE_CF)?;
        let written = self
            .db
            .get_cf(state, super::META_KEY)
            .map_err(|error| db_error(&self.dir, error))?
            .is_some();
        let meta = read_meta(&self.db, &self.dir)?;
        Ok(CheckpointMeta::from_meta(meta, written))
    }

    /// The `log` entries with keys from zxid `from` on, in key (= zxid)
    /// order. A RocksDB read error ends the iteration with that error.
    pub fn log(
        &self,
        from: u64,
    ) -> Result<impl Iterator<Item = Result<LoggedTxn, StorageError>> + '_, StorageError> {
        let log = cf(&self.db, &self.dir, LOG_CF)?;
        let start = from.to_be_bytes();
        let entries = self
            .db
            .iterator_cf(log, IteratorMode::From(&start, Direction::Forward));
        Ok(entries.map(|entry| {
            let (key, value) = entry.map_err(|error| db_error(&self.dir, error))?;
            let zxid = <[u8; 8]>::try_from(&key[..]).ok().map(u64::from_be_bytes);
            let txn = match zxid {
                Some(_) => persist::decode_txn(&value).map_err(|error| error.to_string()),
                None => Err(format!("the key has {} bytes, not 8", key.len())),
            };
            Ok(LoggedTxn {
                bytes: entry_bytes(&key, &value),
                key: key.into_vec(),
                zxid,
                txn,
            })
        }))
    }

    /// The entries of the checkpoint `meta` names, in key order (parents
    /// before children, then sessions).
    pub fn checkpoint(
        &self,
        meta: &CheckpointMeta,
    ) -> Result<impl Iterator<Item = Result<CheckpointEntry, StorageError>> + '_, StorageError>
    {
        let state = cf(&self.db, &self.dir, STATE_CF)?;
        let prefix = generation_prefix(meta.generation);
        let entries = self
            .db
            .iterator_cf(state, IteratorMode::From(&prefix, Direction::Forward));
        Ok(entries
            .take_while(move |entry| match entry {
                Ok((key, _)) => key.starts_with(&prefix),
                Err(_) => true,
            })
            .map(|entry| {
                let (key, value) = entry.map_err(|error| db_error(&self.dir, error))?;
                Ok(CheckpointEntry {
                    bytes: entry_bytes(&key, &value),
                    record: persist::decode_record(&value).map_err(|error| error.to_string()),
                    key: key.into_vec(),
                })
            }))
    }

    /// The checkpoint's tree as restored, before any replay (so fuzzy: its
    /// digest is the meta's only after replaying the log to `meta.end`).
    /// Restored the way recovery does it (`restore_pipelined`).
    pub fn restore(&self, meta: &CheckpointMeta) -> Result<DataTree, StorageError> {
        let dir = &self.dir;
        let db = &self.db;
        let start = zxid_i64(dir, meta.start)?;
        let state = cf(db, dir, STATE_CF)?;
        let expected = expected_nodes(db, state, &meta.to_meta());
        let prefix = generation_prefix(meta.generation);
        restore_pipelined(start, expected, |sink| {
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
            RestoreError::Decode(error) => {
                super::corrupt(dir, format!("a checkpoint entry: {error}"))
            }
            RestoreError::Tree(error) => {
                super::corrupt(dir, format!("inconsistent checkpoint node: {error:?}"))
            }
            RestoreError::Spawn(source) => StorageError::Io {
                path: dir.to_path_buf(),
                source,
            },
        })
    }

    /// RocksDB's estimate of the entries in the log (for progress lines).
    pub fn estimated_log_entries(&self) -> u64 {
        self.estimated_keys(LOG_CF)
    }

    /// RocksDB's estimate of the entries in `state` (every generation).
    pub fn estimated_state_entries(&self) -> u64 {
        self.estimated_keys(STATE_CF)
    }

    fn estimated_keys(&self, name: &str) -> u64 {
        self.db
            .cf_handle(name)
            .and_then(|family| {
                self.db
                    .property_int_value_cf(family, "rocksdb.estimate-num-keys")
                    .ok()
                    .flatten()
            })
            .unwrap_or(0)
    }
}

/// The database opened as its only writer, for a repair with the server
/// stopped.
pub struct Offline {
    db: rocksdb::DB,
    dir: PathBuf,
}

impl Offline {
    /// Opens the database for writing. While a server (or anything else)
    /// holds it, RocksDB's `LOCK` refuses, and so does this, with an
    /// `Io` error of kind `ResourceBusy`: a repair beside a live server
    /// would race its writes.
    pub fn open(dir: &Path) -> Result<Offline, StorageError> {
        let families = list_families(dir)?;
        let mut options = Options::default();
        options.create_if_missing(false);
        options.set_keep_log_file_num(super::KEEP_INFO_LOGS);
        match rocksdb::DB::open_cf(&options, dir, &families) {
            Ok(db) => Ok(Offline {
                db,
                dir: dir.to_path_buf(),
            }),
            Err(error) if is_lock_error(&error) => Err(StorageError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::ResourceBusy,
                    format!(
                        "the database is in use (its LOCK is held, by a running server?): {}",
                        error.into_string()
                    ),
                ),
            }),
            Err(error) => Err(db_error(dir, error)),
        }
    }

    /// Writes a complete, openable copy of the database to `to` (a RocksDB
    /// checkpoint: table files hard-linked when on the same file system,
    /// the rest copied). `to` must not exist.
    pub fn copy_to(&self, to: &Path) -> Result<(), StorageError> {
        let checkpoint =
            rocksdb::checkpoint::Checkpoint::new(&self.db).map_err(|e| db_error(&self.dir, e))?;
        checkpoint
            .create_checkpoint(to)
            .map_err(|error| db_error(to, error))
    }

    /// Deletes every log entry with a key at or after `key` (a damaged
    /// entry and everything after it), in one synced write.
    pub fn drop_log_from(&self, key: &[u8]) -> Result<(), StorageError> {
        let log = cf(&self.db, &self.dir, LOG_CF)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(log, key, &LOG_END_KEY[..]);
        // A garbage key of 9+ 0xff bytes sorts at or after the range's
        // end; it is deleted on its own.
        if key >= &LOG_END_KEY[..] {
            batch.delete_cf(log, key);
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|error| db_error(&self.dir, error))
    }

    /// Writes `value` under `key` in the log as they are, synced. It exists
    /// for the tools' tests, which damage a database the way a bad disk or
    /// a foreign writer would; nothing in a server or a repair calls it.
    #[doc(hidden)]
    pub fn put_raw_log_entry(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let log = cf(&self.db, &self.dir, LOG_CF)?;
        let mut options = WriteOptions::default();
        options.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.put_cf(log, key, value);
        self.db
            .write_opt(batch, &options)
            .map_err(|error| db_error(&self.dir, error))
    }
}

/// RocksDB's own repair (`DB::repair`) of the database in `dir`, which must
/// not be open anywhere. It works below the meaning of the entries: it
/// rebuilds the MANIFEST from the table files it finds, turns what the
/// WAL holds into table files, and sets aside table files it cannot read
/// (in `dir/lost/`). What it cannot give back is what those files held;
/// whether the result is still a consistent checkpoint plus log is for
/// `zk-snaprepair check` to say afterwards.
pub fn rocksdb_repair(dir: &Path) -> Result<(), StorageError> {
    let mut options = Options::default();
    options.create_if_missing(false);
    rocksdb::DB::repair(&options, dir).map_err(|error| db_error(dir, error))
}

fn entry_bytes(key: &[u8], value: &[u8]) -> u64 {
    u64::try_from(key.len().saturating_add(value.len())).unwrap_or(u64::MAX)
}

/// The column families a database has: every one must be named to open it.
fn list_families(dir: &Path) -> Result<Vec<String>, StorageError> {
    let families =
        rocksdb::DB::list_cf(&Options::default(), dir).map_err(|error| db_error(dir, error))?;
    for needed in [LOG_CF, STATE_CF] {
        if !families.iter().any(|name| name == needed) {
            return Err(missing_cf(dir, needed));
        }
    }
    Ok(families)
}

/// RocksDB reports a held lock as an I/O error naming the `LOCK` file
/// ("While lock file: …/LOCK: Resource temporarily unavailable", or "lock
/// hold by current process" within one process).
fn is_lock_error(error: &rocksdb::Error) -> bool {
    let message = error.as_ref();
    message.contains("/LOCK") || message.contains("lock hold by current process")
}

/// A directory of our own for the secondary instance's info log, removed
/// when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(db_dir: &Path) -> Result<TempDir, StorageError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "zk-rocks-secondary-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path).map_err(|source| StorageError::Io {
            path: db_dir.to_path_buf(),
            source,
        })?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{RocksConfig, RocksStorage};
    use super::*;
    use crate::restore::Replay;
    use crate::storage::testing::{create, recovered, write};
    use crate::storage::Storage;
    use crate::types::Zxid;

    fn config(dir: &Path) -> RocksConfig {
        RocksConfig {
            dir: dir.join("rocksdb"),
            force_sync: true,
        }
    }

    fn creates(prefix: &str, count: usize) -> Vec<crate::request::Request> {
        (0..count)
            .map(|i| create(&format!("{prefix}{i}")))
            .collect()
    }

    /// The tools' view of a live database: meta, log and checkpoint are
    /// read while the storage is open and its lock held, and the
    /// checkpoint plus the log replays to the live tree's digest.
    #[test]
    fn inspect_reads_beside_an_open_storage() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut storage = RocksStorage::open(config(dir.path())).expect("open");
        let (tree, mut prep) = recovered(&mut storage);
        write(&mut storage, &tree, &mut prep, &creates("/a", 10));
        storage
            .make_checkpointer()
            .checkpoint(&tree)
            .expect("checkpoint");
        write(&mut storage, &tree, &mut prep, &creates("/b", 5));

        let inspect = Inspect::open(&config(dir.path()).dir).expect("inspect beside the server");
        let meta = inspect.meta().expect("meta");
        assert!(meta.written);
        assert_eq!((meta.start, meta.end), (10, 10));
        let logged: Vec<LoggedTxn> = inspect
            .log(0)
            .expect("log")
            .collect::<Result<_, _>>()
            .expect("reads");
        let zxids: Vec<Option<u64>> = logged.iter().map(|entry| entry.zxid).collect();
        assert_eq!(zxids, (11..=15).map(Some).collect::<Vec<_>>());
        assert!(logged.iter().all(|entry| entry.txn.is_ok()));
        let records = inspect
            .checkpoint(&meta)
            .expect("checkpoint")
            .collect::<Result<Vec<_>, _>>()
            .expect("reads");
        assert!(records.iter().all(|entry| entry.record.is_ok()));
        assert!(records.len() >= 10, "{}", records.len());

        let mut restored = inspect.restore(&meta).expect("restore");
        let mut replay = Replay::new(Zxid(10), Some((Zxid(10), meta.digest)));
        replay.begin(&mut restored).expect("digest at the end");
        for entry in &logged {
            let txn = entry.txn.as_ref().expect("decodes");
            replay.txn(&mut restored, txn).expect("replays");
        }
        replay.finish(&restored).expect("reaches the end");
        assert_eq!(restored.digest(), tree.read().digest());

        // The server holds the lock: a writer for repairs is refused.
        match Offline::open(&config(dir.path()).dir) {
            Err(StorageError::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::ResourceBusy, "{source}")
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("opened a database a server holds"),
        }
    }

    /// A damaged log entry shows as an undecodable txn; dropping the tail
    /// from it leaves a database the server opens, with the txns before.
    #[test]
    fn a_damaged_log_tail_is_seen_and_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rocks_dir = config(dir.path()).dir;
        {
            let mut storage = RocksStorage::open(config(dir.path())).expect("open");
            let (tree, mut prep) = recovered(&mut storage);
            write(&mut storage, &tree, &mut prep, &creates("/a", 6));
        }
        {
            let offline = Offline::open(&rocks_dir).expect("offline");
            offline
                .put_raw_log_entry(&4u64.to_be_bytes(), b"garbage")
                .expect("damage");
        }
        let inspect = Inspect::open(&rocks_dir).expect("inspect");
        let logged: Vec<LoggedTxn> = inspect
            .log(0)
            .expect("log")
            .collect::<Result<_, _>>()
            .expect("reads");
        let bad: Vec<Option<u64>> = logged
            .iter()
            .filter(|entry| entry.txn.is_err())
            .map(|entry| entry.zxid)
            .collect();
        assert_eq!(bad, vec![Some(4)]);
        drop(inspect);
        assert!(RocksStorage::open(config(dir.path())).is_err());

        let offline = Offline::open(&rocks_dir).expect("offline");
        let copy = dir.path().join("copy");
        offline.copy_to(&copy).expect("copy");
        offline
            .drop_log_from(&4u64.to_be_bytes())
            .expect("drop the tail");
        drop(offline);
        let mut storage = RocksStorage::open(config(dir.path())).expect("opens");
        let (_, last) = storage.recover().expect("recover");
        assert_eq!(last, Zxid(3));
        // The copy is the database as it was, damage included.
        let copied = Inspect::open(&copy).expect("copy opens");
        let entries = copied.log(0).expect("log").count();
        assert_eq!(entries, 6);
    }

    #[test]
    fn a_directory_that_is_no_database_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(Inspect::open(dir.path()).is_err());
        assert!(Offline::open(dir.path()).is_err());
    }
}
