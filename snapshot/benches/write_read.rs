//! Criterion throughput of snapshot writing and reading: one million entries
//! of about 150 bytes (a typical small znode record), written through
//! `SnapshotWriter` (including fsync and rename) and decoded back through
//! `SnapshotReader::entries`. Reports MB/s of uncompressed payload.
//!
//! Not a correctness test; the payload generator is deterministic so runs
//! compare like with like.

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use snapshot::{Section, SnapshotReader, SnapshotWriter};

const ENTRIES: usize = 1_000_000;
const ENTRY_BYTES: usize = 150;
const LEVEL: i32 = 3;

/// A znode-like record: a path, some data, stat-like numbers. Compresses
/// roughly as real trees do (paths share prefixes, data varies).
fn record(index: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(format!("/app/service-{}/member-{index:010}", index % 97).as_bytes());
    let mut state = (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while out.len() < ENTRY_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes()[..4]);
        out.extend_from_slice(b"data");
    }
    out.truncate(ENTRY_BYTES);
}

fn write_snapshot(dir: &Path, start_zxid: u64) -> std::path::PathBuf {
    let mut writer = SnapshotWriter::create(dir, start_zxid, 1, LEVEL).expect("create");
    let mut buffer = Vec::with_capacity(ENTRY_BYTES);
    for index in 0..ENTRIES {
        record(index, &mut buffer);
        writer.entry(Section::Nodes, &buffer).expect("entry");
    }
    writer.finish(0, start_zxid).expect("finish")
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes((ENTRIES * ENTRY_BYTES) as u64));

    let mut zxid = 1;
    group.bench_function("write_1m_x150B", |b| {
        b.iter(|| {
            zxid += 1;
            let path = write_snapshot(dir.path(), zxid);
            std::fs::remove_file(path).expect("remove");
        })
    });

    let path = write_snapshot(dir.path(), 1);
    group.bench_function("read_1m_x150B", |b| {
        b.iter(|| {
            let reader = SnapshotReader::open(&path).expect("open");
            let mut bytes = 0usize;
            for item in reader.entries() {
                let (_, payload) = item.expect("entry");
                bytes += payload.len();
            }
            assert_eq!(bytes, ENTRIES * ENTRY_BYTES);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
