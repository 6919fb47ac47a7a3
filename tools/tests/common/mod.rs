//! Shared fixture for the tools' integration tests: a data directory made by
//! the real storage code (`engine::native::NativeStorage`, or with feature
//! `rocksdb` `engine::rocks::RocksStorage`: prep, append, apply, snapshot or
//! checkpoint), the same txns on either backend, helpers to damage it, and
//! runners for the binaries. Not a test itself; each test file uses what it
//! needs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use engine::native::{NativeConfig, NativeStorage};
use engine::prep::{Prep, PrepConfig};
use engine::request::{CreateRequest, Request};
use engine::storage::Storage;
use engine::tree::DataTree;
use engine::txn::Txn;
use engine::types::{Acl, OpCode, SessionId, Zxid};
use parking_lot::RwLock;

pub const SESSION: i64 = 0x1234;
/// Txns in the fixture: a session, 20 creates, 5 setData, 3 deletes.
pub const TXNS: u64 = 29;
pub const CREATES: u64 = 20;
pub const SET_DATAS: u64 = 5;
pub const DELETES: u64 = 3;
/// The snapshot is taken after this many txns (zxid 0xb).
pub const SNAPSHOT_AFTER: u64 = 11;

pub fn config(dir: &Path) -> NativeConfig {
    config_in(dir, dir)
}

/// dataDir and a separate dataLogDir.
pub fn config_in(dir: &Path, log_dir: &Path) -> NativeConfig {
    NativeConfig {
        snapshot_dir: dir.to_path_buf(),
        log_dir: log_dir.to_path_buf(),
        pre_alloc_bytes: 64 << 10,
        force_sync: true,
        io: wal::IoMode::Pwrite,
        segment_max_bytes: engine::native::DEFAULT_SEGMENT_MAX_BYTES,
    }
}

fn create(path: &str, data: &[u8]) -> Request {
    Request::Create {
        op: OpCode::Create,
        request: CreateRequest {
            path: path.to_string(),
            data: Some(data.to_vec()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
    }
}

/// Writes one txn the way the pipeline does: prep, append, wait, apply.
fn write(storage: &mut dyn Storage, tree: &RwLock<DataTree>, prep: &mut Prep, txn: Txn) {
    let last = engine::storage::commit_in_place(storage, tree, std::slice::from_ref(&txn))
        .expect("commit");
    prep.applied(last);
}

/// Builds the fixture in `dir` (dataDir = dataLogDir): zxid 1 creates the
/// session, 2..=21 create /n0../n19 with data "v<i>", 22..=26 set /n0../n4
/// to "w<i>", 27..=29 delete /n17../n19. A snapshot is taken after zxid 0xb
/// when `with_snapshot`.
pub fn build(dir: &Path, with_snapshot: bool) {
    build_in(dir, dir, with_snapshot)
}

/// `build` with the log in `log_dir`.
pub fn build_in(dir: &Path, log_dir: &Path, with_snapshot: bool) {
    let mut storage = NativeStorage::open(config_in(dir, log_dir)).expect("open");
    write_fixture(&mut storage, with_snapshot);
}

/// The fixture's txns through any backend; the snapshot or checkpoint
/// through the `Storage` trait's checkpointer.
fn write_fixture(storage: &mut dyn Storage, with_snapshot: bool) {
    let (tree, last) = storage.recover().expect("recover");
    assert_eq!(last, Zxid::ZERO);
    let tree = RwLock::new(tree);
    let mut prep = Prep::new(
        last,
        PrepConfig {
            extended_types_enabled: false,
        },
    );
    let txn = prep.prep_create_session(SessionId(SESSION), 30_000, 1_700_000_000_000);
    write(storage, &tree, &mut prep, txn);
    let mut requests: Vec<Request> = (0..CREATES)
        .map(|i| create(&format!("/n{i}"), format!("v{i}").as_bytes()))
        .collect();
    requests.extend((0..SET_DATAS).map(|i| Request::SetData {
        path: format!("/n{i}"),
        data: Some(format!("w{i}").into_bytes()),
        version: -1,
    }));
    requests.extend((CREATES - DELETES..CREATES).map(|i| Request::Delete {
        path: format!("/n{i}"),
        version: -1,
    }));
    for (cxid, request) in requests.iter().enumerate() {
        let txn = {
            let tree = tree.read();
            let cxid = i32::try_from(cxid).expect("small");
            prep.prep(
                &tree,
                SessionId(SESSION),
                cxid,
                &[],
                request,
                1_700_000_000_000,
            )
            .expect("a write")
        };
        write(storage, &tree, &mut prep, txn);
        if with_snapshot && tree.read().last_zxid() == Zxid(SNAPSHOT_AFTER as i64) {
            storage.checkpointer().take(&tree).expect("snapshot");
        }
    }
    assert_eq!(tree.read().last_zxid(), Zxid(TXNS as i64));
}

/// The single segment file of the fixture.
pub fn segment(dir: &Path) -> PathBuf {
    let segments = wal::segments(dir).expect("list");
    assert_eq!(segments.len(), 1, "fixture has one segment");
    segments[0].1.clone()
}

/// Offset of the record with `zxid` in `file`.
pub fn record_offset(file: &Path, zxid: u64) -> u64 {
    let segment = wal::SegmentFile::open(file).expect("open segment");
    let scan = segment.scan().expect("scan");
    let found = scan.into_iter().find(|record| record.zxid == zxid);
    found.expect("record present").offset
}

/// Flips one payload byte of the record with `zxid` in the log in `dir`;
/// returns the segment and the record's offset.
pub fn flip_record(dir: &Path, zxid: u64) -> (PathBuf, u64) {
    let file = segment(dir);
    let offset = record_offset(&file, zxid);
    let mut bytes = std::fs::read(&file).expect("read");
    let at = usize::try_from(offset).expect("fits") + 20;
    bytes[at] ^= 0x40;
    std::fs::write(&file, bytes).expect("write");
    (file, offset)
}

pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

fn finish(output: Output) -> Run {
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub fn logdump(args: &[&str]) -> Run {
    finish(
        Command::new(env!("CARGO_BIN_EXE_zk-logdump"))
            .args(args)
            .output()
            .expect("run zk-logdump"),
    )
}

pub fn snaprepair(args: &[&str]) -> Run {
    finish(
        Command::new(env!("CARGO_BIN_EXE_zk-snaprepair"))
            .args(args)
            .output()
            .expect("run zk-snaprepair"),
    )
}

pub fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Every file under `dir` with its contents, for "nothing changed" checks.
pub fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                found.push((path, bytes));
            }
        }
    }
    found.sort();
    found
}

/// Opens the directory as the server would and returns the recovered tree.
pub fn recover(dir: &Path) -> (DataTree, Zxid) {
    recover_in(dir, dir)
}

pub fn recover_in(dir: &Path, log_dir: &Path) -> (DataTree, Zxid) {
    let mut storage =
        NativeStorage::open(config_in(dir, log_dir)).expect("server opens the directory");
    storage.recover().expect("recover")
}

/// Where a RocksDB-backend data directory keeps its database.
pub fn rocks_dir(dir: &Path) -> PathBuf {
    dir.join("rocksdb")
}

#[cfg(feature = "rocksdb")]
pub fn rocks_config(dir: &Path) -> engine::rocks::RocksConfig {
    engine::rocks::RocksConfig {
        dir: rocks_dir(dir),
        force_sync: true,
    }
}

/// `build` on the RocksDB backend, in `dir/rocksdb` as the server keeps it:
/// the same txns; with `with_checkpoint` a checkpoint after zxid 0xb,
/// which drops the log up to it.
#[cfg(feature = "rocksdb")]
pub fn build_rocks(dir: &Path, with_checkpoint: bool) {
    let mut storage = engine::rocks::RocksStorage::open(rocks_config(dir)).expect("open");
    write_fixture(&mut storage, with_checkpoint);
}

/// Overwrites the log entry of `zxid` with bytes that are no txn, with the
/// server stopped: what a foreign writer or a bad disk would leave.
#[cfg(feature = "rocksdb")]
pub fn damage_rocks_log(dir: &Path, zxid: u64) {
    let offline = engine::rocks::Offline::open(&rocks_dir(dir)).expect("offline");
    offline
        .put_raw_log_entry(&zxid.to_be_bytes(), b"\xffnot a txn")
        .expect("damage");
}

/// Opens the RocksDB directory as the server would and recovers it.
#[cfg(feature = "rocksdb")]
pub fn recover_rocks(dir: &Path) -> Result<(DataTree, Zxid), engine::storage::StorageError> {
    let mut storage = engine::rocks::RocksStorage::open(rocks_config(dir))?;
    storage.recover()
}
