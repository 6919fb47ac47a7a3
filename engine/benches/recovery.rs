//! Recovery time and bytes on disk of each storage backend: N znodes of 100
//! bytes (default 1,000,000; `RECOVERY_ZNODES` overrides) loaded through the
//! backend in batches of 1,000 with fsync on, then recovered from the log
//! alone, then a snapshot / checkpoint is taken and recovery runs again.
//! Prints a table; asserts only that recovery gives back the same tree.
//!
//! `cargo bench -p engine --bench recovery` (native only), or with
//! `--features rocksdb` for both backends side by side.

use engine::native::{NativeConfig, NativeStorage};
use engine::prep::{Prep, PrepConfig};
use engine::request::{CreateRequest, Request};
use engine::storage::Storage;
use engine::txn::Txn;
use engine::types::{Acl, OpCode, SessionId, Zxid};
use parking_lot::RwLock;
use std::path::Path;
use std::time::{Duration, Instant};

const BATCH: usize = 1_000;

/// Opens a backend on `dir` (recovering what is there).
type Open = fn(&Path) -> Box<dyn Storage>;

fn open_native(dir: &Path) -> Box<dyn Storage> {
    let storage = NativeStorage::open(NativeConfig {
        snapshot_dir: dir.to_path_buf(),
        log_dir: dir.to_path_buf(),
        pre_alloc_bytes: 64 << 20,
        force_sync: true,
        io: wal::IoMode::Pwrite,
        segment_max_bytes: engine::native::DEFAULT_SEGMENT_MAX_BYTES,
    })
    .expect("open native");
    Box::new(storage)
}

#[cfg(feature = "rocksdb")]
fn open_rocksdb(dir: &Path) -> Box<dyn Storage> {
    let storage = engine::rocks::RocksStorage::open(engine::rocks::RocksConfig {
        dir: dir.join("rocksdb"),
        force_sync: true,
    })
    .expect("open rocksdb");
    Box::new(storage)
}

fn bytes_on_disk(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => bytes_on_disk(&entry.path()),
            // Allocated blocks, not the length: preallocated log space counts
            // only once written.
            Ok(metadata) => std::os::unix::fs::MetadataExt::blocks(&metadata) * 512,
            Err(_) => 0,
        })
        .sum()
}

struct Figures {
    load: Duration,
    log_recovery: Duration,
    checkpoint: Duration,
    checkpoint_recovery: Duration,
    bytes: u64,
}

fn run(open: Open, znodes: usize) -> Figures {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let mut storage = open(dir.path());
    let (tree, last) = storage.recover().expect("recover");
    let tree = RwLock::new(tree);
    let mut prep = Prep::new(
        last,
        PrepConfig {
            extended_types_enabled: false,
        },
    );
    let value = vec![b'v'; 100];
    for chunk_start in (0..znodes).step_by(BATCH) {
        let chunk_end = (chunk_start + BATCH).min(znodes);
        let txns: Vec<Txn> = {
            let tree = tree.read();
            (chunk_start..chunk_end)
                .map(|i| {
                    // 1,000 parents of up to 1,000 children each.
                    let path = if i % 1_000 == 0 {
                        format!("/p{}", i / 1_000)
                    } else {
                        format!("/p{}/n{}", i / 1_000, i)
                    };
                    let request = Request::Create {
                        op: OpCode::Create,
                        request: CreateRequest {
                            path,
                            data: Some(value.clone()),
                            acl: Acl::open_unsafe(),
                            flags: 0,
                            ttl: -1,
                        },
                    };
                    prep.prep(&tree, SessionId(1), 0, &[], &request, 1_700_000_000_000)
                        .expect("a write")
                })
                .collect()
        };
        let last =
            engine::storage::commit_in_place(storage.as_mut(), &tree, &txns).expect("commit");
        prep.applied(last);
    }
    let load = started.elapsed();
    let digest = tree.read().digest();
    drop(storage);

    let recover = || {
        let started = Instant::now();
        let mut storage = open(dir.path());
        let (recovered, last) = storage.recover().expect("recover");
        let elapsed = started.elapsed();
        assert_eq!(recovered.digest(), digest, "recovery gave a different tree");
        assert_eq!(last, Zxid(znodes as i64));
        (elapsed, storage)
    };
    let (log_recovery, storage) = recover();
    let checkpointer = storage.checkpointer();
    let started = Instant::now();
    checkpointer.take(&tree).expect("checkpoint");
    let checkpoint = started.elapsed();
    drop((storage, checkpointer));
    let (checkpoint_recovery, _) = recover();
    Figures {
        load,
        log_recovery,
        checkpoint,
        checkpoint_recovery,
        bytes: bytes_on_disk(dir.path()),
    }
}

fn main() {
    let znodes: usize = std::env::var("RECOVERY_ZNODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    #[allow(unused_mut)]
    let mut backends: Vec<(&str, Open)> = vec![("native", open_native)];
    #[cfg(feature = "rocksdb")]
    backends.push(("rocksdb", open_rocksdb));
    println!("{znodes} znodes of 100 bytes, loaded in batches of {BATCH} with fsync on");
    println!(
        "{:<8} {:>10} {:>16} {:>12} {:>20} {:>12}",
        "backend", "load", "recover (log)", "checkpoint", "recover (checkpoint)", "disk MiB"
    );
    for (name, open) in backends {
        let f = run(open, znodes);
        println!(
            "{name:<8} {:>10.2?} {:>16.2?} {:>12.2?} {:>20.2?} {:>12.1}",
            f.load,
            f.log_recovery,
            f.checkpoint,
            f.checkpoint_recovery,
            f.bytes as f64 / (1 << 20) as f64
        );
    }
}
