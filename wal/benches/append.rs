//! Append throughput of the WAL with group commit, beside the floor the same
//! disk sets: one small write plus `fdatasync`, back to back. The ratio of
//! appends per second to syncs per second is what group commit buys.
//!
//! Not a correctness test, and not a comparison with Apache ZooKeeper (that
//! lives in `benches/`). Files go under cargo's target tmp dir, so both
//! figures come from the same disk in the same run.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wal::{IoMode, Record, Wal, WalConfig};

const PAYLOAD_BYTES: usize = 128;
const THREADS: u64 = 8;

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("bench dir")
}

/// One write and one fdatasync per iteration: the latency floor.
fn fdatasync_floor(c: &mut Criterion) {
    let dir = bench_dir();
    let path = dir.path().join("floor");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("file");
    file.set_len(64 * 1024 * 1024).expect("preallocate");
    let payload = [7u8; PAYLOAD_BYTES];
    let mut offset = 0u64;
    let mut group = c.benchmark_group("wal");
    group.throughput(Throughput::Elements(1));
    group.bench_function("fdatasync_floor", |b| {
        b.iter(|| {
            file.write_all_at(&payload, offset).expect("write");
            file.sync_data().expect("sync");
            offset = (offset + PAYLOAD_BYTES as u64) % (60 * 1024 * 1024);
        })
    });
    group.finish();
}

/// THREADS appenders, each appending one record and waiting for it, as
/// clients of a busy server do; reports appends per second.
fn group_commit(c: &mut Criterion) {
    let mut modes = vec![("pwrite", IoMode::Pwrite)];
    if wal::uring_available() {
        modes.push(("io_uring", IoMode::IoUring));
    } else {
        eprintln!("!!! io_uring unavailable: benchmarking pwrite only");
    }
    let mut group = c.benchmark_group("wal");
    group.throughput(Throughput::Elements(THREADS));
    for (name, io) in modes {
        let dir = bench_dir();
        let mut config = WalConfig::new(dir.path());
        config.io = io;
        let (wal, _) = Wal::open(config).expect("open");
        let next_zxid = Mutex::new(1u64);
        group.bench_function(format!("group_commit_{name}_{THREADS}_threads"), |b| {
            b.iter_custom(|iterations| {
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for _ in 0..THREADS {
                        scope.spawn(|| {
                            for _ in 0..iterations {
                                let seq = {
                                    let mut zxid = next_zxid.lock().expect("lock");
                                    let record = Record {
                                        zxid: *zxid,
                                        payload: vec![1; PAYLOAD_BYTES],
                                    };
                                    *zxid += 1;
                                    wal.append(vec![record]).expect("append")
                                };
                                wal.wait_durable(seq).expect("durable");
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        let appends = next_zxid.lock().map(|zxid| *zxid - 1).unwrap_or(0);
        eprintln!(
            "{name}: {appends} appends, {} fsyncs ({:.1} appends per fsync)",
            wal.fsync_count(),
            appends as f64 / wal.fsync_count().max(1) as f64
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3));
    targets = fdatasync_floor, group_commit
}
criterion_main!(benches);
