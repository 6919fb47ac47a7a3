//! WAL append latency percentiles under group commit, beside the raw
//! `fdatasync` floor of the same disk, measured in the same run. Each of
//! `WAL_BENCH_THREADS` (default 32) clients appends one 128-byte record and
//! waits until it is durable, again and again, for `WAL_BENCH_SECONDS`
//! (default 5); the floor is one thread doing write + fdatasync in a loop.
//! Prints throughput and p50/p99/p99.9/max (hdrhistogram).
//!
//! `cargo bench -p wal --bench latency`

use hdrhistogram::Histogram;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wal::{IoMode, Record, Wal, WalConfig};

const PAYLOAD_BYTES: usize = 128;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn report(name: &str, ops: u64, elapsed: Duration, latencies: &Histogram<u64>) {
    println!(
        "{name:<22} {:>10.0} ops/s   p50 {:>6} us   p99 {:>6} us   p99.9 {:>6} us   max {:>6} us",
        ops as f64 / elapsed.as_secs_f64(),
        latencies.value_at_quantile(0.50),
        latencies.value_at_quantile(0.99),
        latencies.value_at_quantile(0.999),
        latencies.max(),
    );
}

fn floor(dir: &std::path::Path, duration: Duration) -> f64 {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("floor"))
        .expect("file");
    file.set_len(64 << 20).expect("preallocate");
    let payload = [7u8; PAYLOAD_BYTES];
    let mut latencies = histogram();
    let (mut ops, mut offset) = (0u64, 0u64);
    let started = Instant::now();
    while started.elapsed() < duration {
        let begun = Instant::now();
        file.write_all_at(&payload, offset).expect("write");
        file.sync_data().expect("fdatasync");
        latencies
            .record(begun.elapsed().as_micros() as u64)
            .expect("record");
        offset = (offset + PAYLOAD_BYTES as u64) % (60 << 20);
        ops += 1;
    }
    let elapsed = started.elapsed();
    report("fdatasync floor", ops, elapsed, &latencies);
    ops as f64 / elapsed.as_secs_f64()
}

fn group_commit(dir: &std::path::Path, io: IoMode, threads: u64, duration: Duration) -> f64 {
    let config = WalConfig {
        io,
        ..WalConfig::new(dir)
    };
    let (wal, report_open) = Wal::open(config).expect("open wal");
    let wal = Arc::new(wal);
    let next_zxid = Arc::new(Mutex::new(1u64));
    let ops = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (wal, next_zxid, ops) =
                (Arc::clone(&wal), Arc::clone(&next_zxid), Arc::clone(&ops));
            std::thread::spawn(move || {
                let mut latencies = histogram();
                while started.elapsed() < duration {
                    let begun = Instant::now();
                    // zxids must reach the WAL in order: take one and append
                    // under the same lock, then wait outside it.
                    let seq = {
                        let mut zxid = next_zxid.lock().expect("zxid lock");
                        let seq = wal
                            .append(vec![Record {
                                zxid: *zxid,
                                payload: vec![7; PAYLOAD_BYTES],
                            }])
                            .expect("append");
                        *zxid += 1;
                        seq
                    };
                    wal.wait_durable(seq).expect("durable");
                    latencies
                        .record(begun.elapsed().as_micros() as u64)
                        .expect("record");
                    ops.fetch_add(1, Ordering::Relaxed);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = histogram();
    for worker in workers {
        latencies
            .add(worker.join().expect("worker"))
            .expect("merge");
    }
    let elapsed = started.elapsed();
    let ops = ops.load(Ordering::Relaxed);
    report(
        &format!("wal {} x{threads}", report_open.io),
        ops,
        elapsed,
        &latencies,
    );
    println!(
        "{:<22} {:>10.1} appends per fsync",
        "",
        ops as f64 / wal.fsync_count().max(1) as f64
    );
    ops as f64 / elapsed.as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let threads = env_or("WAL_BENCH_THREADS", 32);
    let duration = Duration::from_secs(env_or("WAL_BENCH_SECONDS", 5));
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("bench dir");
    let floor_rate = floor(root.path(), duration);
    for (name, io) in [("uring", IoMode::IoUring), ("pwrite", IoMode::Pwrite)] {
        if matches!(io, IoMode::IoUring) && !wal::uring_available() {
            println!("io_uring unavailable on this machine; skipped");
            continue;
        }
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        let rate = group_commit(&dir, io, threads, duration);
        println!(
            "{:<22} {:>10.1}x the fdatasync floor",
            "",
            rate / floor_rate
        );
    }
}
