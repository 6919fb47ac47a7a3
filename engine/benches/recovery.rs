//! Recovery time of the native backend: N znodes of 100 bytes (default
//! 1,000,000; `RECOVERY_ZNODES` overrides), recovered once from the log
//! alone and once from a snapshot plus an empty log tail. Prints figures;
//! asserts only that recovery gives back the same tree.
//!
//! `cargo bench -p engine --bench recovery`

use engine::native::{NativeConfig, NativeStorage};
use engine::prep::{Prep, PrepConfig};
use engine::request::{CreateRequest, Request};
use engine::storage::Storage;
use engine::txn::Txn;
use engine::types::{Acl, OpCode, SessionId, Zxid};
use parking_lot::RwLock;
use std::time::Instant;

const BATCH: usize = 1_000;

fn main() {
    let znodes: usize = std::env::var("RECOVERY_ZNODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = NativeConfig {
        snapshot_dir: dir.path().to_path_buf(),
        log_dir: dir.path().join("log"),
        pre_alloc_bytes: 64 << 20,
        force_sync: true,
        io: wal::IoMode::Pwrite,
    };

    let started = Instant::now();
    let mut storage = NativeStorage::open(config.clone()).expect("open");
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
        let last = engine::storage::commit_in_place(&mut storage, &tree, &txns).expect("commit");
        prep.applied(last);
    }
    let digest = tree.read().digest();
    println!(
        "loaded {znodes} znodes of 100 bytes in {:.2?} (batches of {BATCH}, fsync on)",
        started.elapsed()
    );
    drop(storage);

    let started = Instant::now();
    let mut reopened = NativeStorage::open(config.clone()).expect("reopen");
    let (recovered, last) = reopened.recover().expect("recover");
    println!(
        "recovery from the log alone: {:.2?} (last zxid {last})",
        started.elapsed()
    );
    assert_eq!(recovered.digest(), digest);
    drop(recovered);

    let started = Instant::now();
    let path = reopened.snapshotter().take(&tree).expect("snapshot");
    let snapshot_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "snapshot written in {:.2?} ({:.1} MiB)",
        started.elapsed(),
        snapshot_bytes as f64 / (1 << 20) as f64
    );
    drop(reopened);

    let started = Instant::now();
    let mut reopened = NativeStorage::open(config).expect("reopen");
    let (recovered, last) = reopened.recover().expect("recover");
    println!(
        "recovery from the snapshot: {:.2?} (last zxid {last})",
        started.elapsed()
    );
    assert_eq!(recovered.digest(), digest);
    assert_eq!(last, Zxid(znodes as i64));
}
