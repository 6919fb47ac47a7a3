//! zk-snaprepair against a data directory written by the real storage code:
//! check on clean and damaged directories, a dry run that changes nothing,
//! in-place repair the server then opens (recovering exactly the txns before
//! the damage, originals kept in quarantine), and repair into a new dir.

mod common;

use common::*;
use engine::types::Zxid;

/// The record damaged in these tests: after the snapshot's zxid (0xb).
const DAMAGED: u64 = 20;

#[test]
fn check_passes_a_clean_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), true);
    let run = snaprepair(&["check", text(dir.path())]);
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("valid, start 0xb"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("valid, {TXNS} records, zxids 0x1–0x1d")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("clean"), "{}", run.stdout);
    // Nothing to do for repair either.
    let repair = snaprepair(&["repair", text(dir.path())]);
    assert_eq!(repair.status, 0, "{}", repair.stdout);
    assert!(repair.stdout.contains("nothing lost"), "{}", repair.stdout);
}

#[test]
fn check_names_file_and_offset_of_a_flipped_bit() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), true);
    let (file, offset) = flip_record(dir.path(), DAMAGED);
    let run = snaprepair(&["check", text(dir.path())]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|line| line.starts_with("PROBLEM"))
        .expect("a problem line");
    assert!(line.contains(text(&file)), "{line}");
    assert!(
        line.contains(&format!("corrupt at offset {offset}")),
        "{line}"
    );
}

#[test]
fn torn_tail_of_the_newest_segment_is_not_a_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), false);
    let file = segment(dir.path());
    // Half a frame after the last record: what a crash mid-write leaves.
    let end = record_offset(&file, TXNS) + 200;
    let mut bytes = std::fs::read(&file).expect("read");
    let at = usize::try_from(end).expect("fits");
    bytes[at..at + 6].copy_from_slice(&[40, 0, 0, 0, 1, 2]);
    std::fs::write(&file, bytes).expect("write");
    let run = snaprepair(&["check", text(dir.path())]);
    assert_eq!(run.status, 0, "{}", run.stdout);
    assert!(run.stdout.contains("torn tail"), "{}", run.stdout);
}

#[test]
fn dry_run_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), true);
    flip_record(dir.path(), DAMAGED);
    let before = contents(dir.path());
    let run = snaprepair(&["repair", text(dir.path())]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("dry run"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!(
            "lost zxids 0x{DAMAGED:x}–0x{TXNS:x} ({} txns)",
            TXNS - DAMAGED + 1
        )),
        "{}",
        run.stdout
    );
    assert_eq!(contents(dir.path()), before);
}

#[test]
fn repair_in_place_recovers_the_txns_before_the_damage() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), true);
    let (file, _) = flip_record(dir.path(), DAMAGED);
    let damaged_log = std::fs::read(&file).expect("read");
    // The server refuses the damaged log.
    assert!(engine::native::NativeStorage::open(config(dir.path())).is_err());

    let run = snaprepair(&["repair", text(dir.path()), "--apply"]);
    assert_eq!(run.status, 1, "data was lost: {}{}", run.stdout, run.stderr);
    let lost = format!(
        "lost zxids 0x{DAMAGED:x}–0x{TXNS:x} ({} txns)",
        TXNS - DAMAGED + 1
    );
    assert!(
        run.stdout.contains(&format!("repaired: {lost}")),
        "{}",
        run.stdout
    );

    let (tree, last) = recover(dir.path());
    assert_eq!(last, Zxid(DAMAGED as i64 - 1));
    // zxid 0x13 created /n17 (the last kept create); 0x14 created /n18.
    assert!(tree.get("/n17").is_some());
    assert!(tree.get("/n18").is_none());
    tree.check_invariants().expect("invariants");

    // The originals are in the quarantine folder, unchanged.
    let quarantine = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("quarantine-"))
        })
        .expect("a quarantine folder");
    let name = file.file_name().expect("name");
    assert_eq!(
        std::fs::read(quarantine.join(name)).expect("original log"),
        damaged_log
    );
    assert!(quarantine.join("database_id").exists());
    assert_eq!(snapshot::list(&quarantine).expect("list").len(), 1);

    // And the repaired directory checks clean.
    let check = snaprepair(&["check", text(dir.path())]);
    assert_eq!(check.status, 0, "{}", check.stdout);
}

#[test]
fn repair_into_a_new_directory_leaves_the_original() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = tempfile::tempdir().expect("temp dir");
    let target = out.path().join("repaired");
    build(dir.path(), true);
    flip_record(dir.path(), DAMAGED);
    let before = contents(dir.path());
    let run = snaprepair(&[
        "repair",
        text(dir.path()),
        "--out",
        text(&target),
        "--apply",
    ]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(contents(dir.path()), before);
    assert_eq!(
        std::fs::read(target.join("database_id")).expect("id"),
        std::fs::read(dir.path().join("database_id")).expect("id")
    );
    let (tree, last) = recover(&target);
    assert_eq!(last, Zxid(DAMAGED as i64 - 1));
    assert!(tree.get("/n17").is_some());
}

#[test]
fn damage_before_the_snapshot_keeps_the_snapshot() {
    // Damage at zxid 5, before the snapshot's start (0xb): the snapshot
    // reflects it, and the intact records 0xc.. after it complete the
    // snapshot, so nothing is lost; the rewritten log starts at 0xc.
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), true);
    flip_record(dir.path(), 5);
    let check = snaprepair(&["check", text(dir.path())]);
    assert_eq!(
        check.status, 1,
        "the server would refuse it: {}",
        check.stdout
    );
    let run = snaprepair(&["repair", text(dir.path()), "--apply"]);
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("repaired: nothing lost"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "rewrite the log with {} txns after 0xb up to 0x{TXNS:x}",
            TXNS - 11
        )),
        "{}",
        run.stdout
    );
    let (tree, last) = recover(dir.path());
    assert_eq!(last, Zxid(TXNS as i64));
    assert!(tree.get("/n16").is_some());
    assert!(tree.get("/n17").is_none());
    let segments = wal::segments(dir.path()).expect("list");
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0].0, 0xc);
}

#[test]
fn corrupt_snapshot_falls_back_to_the_whole_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), true);
    let snapshot = snapshot::list(dir.path()).expect("list")[0].1.clone();
    let mut bytes = std::fs::read(&snapshot).expect("read");
    bytes[60] ^= 0x01;
    std::fs::write(&snapshot, bytes).expect("write");
    let check = snaprepair(&["check", text(dir.path())]);
    assert_eq!(check.status, 1, "{}", check.stdout);
    assert!(
        check
            .stdout
            .contains(&format!("PROBLEM: snapshot {}: corrupt", text(&snapshot))),
        "{}",
        check.stdout
    );

    let run = snaprepair(&["repair", text(dir.path()), "--apply"]);
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("no snapshot: the log is replayed from the start"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("repaired: nothing lost"),
        "{}",
        run.stdout
    );
    assert!(
        !snapshot.exists(),
        "the corrupt snapshot moved to quarantine"
    );
    let (tree, last) = recover(dir.path());
    assert_eq!(last, Zxid(TXNS as i64));
    assert!(tree.get("/n16").is_some());
    assert!(tree.get("/n17").is_none());
}

/// Rewrites the fixture's log as many small segments, as a long-running
/// server would leave it.
fn split_log(dir: &std::path::Path) {
    let file = segment(dir);
    let records: Vec<wal::Record> = {
        let segment = wal::SegmentFile::open(&file).expect("open");
        let scan = segment.scan().expect("scan");
        scan.map(|record| wal::Record {
            zxid: record.zxid,
            payload: record.payload.to_vec(),
        })
        .collect()
    };
    std::fs::remove_file(&file).expect("remove");
    let database_id = u64::from_str_radix(
        std::fs::read_to_string(dir.join("database_id"))
            .expect("id")
            .trim(),
        16,
    )
    .expect("hex");
    let config = wal::WalConfig {
        database_id,
        io: wal::IoMode::Pwrite,
        pre_alloc_bytes: 4096,
        segment_max_bytes: 300,
        ..wal::WalConfig::new(dir)
    };
    let (log, _) = wal::Wal::open(config).expect("open wal");
    for record in records {
        let seq = log.append(vec![record]).expect("append");
        log.wait_durable(seq).expect("durable");
    }
}

#[test]
fn damage_in_a_middle_segment_loses_every_later_segment() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), true);
    split_log(dir.path());
    let segments = wal::segments(dir.path()).expect("list");
    assert!(segments.len() >= 4, "{segments:?}");
    // Damage the second record of a middle segment.
    let (first_zxid, middle) = segments[segments.len() / 2].clone();
    let offset = record_offset(&middle, first_zxid + 1);
    let mut bytes = std::fs::read(&middle).expect("read");
    bytes[usize::try_from(offset).expect("fits") + 20] ^= 0x40;
    std::fs::write(&middle, bytes).expect("write");

    let check = snaprepair(&["check", text(dir.path())]);
    assert_eq!(check.status, 1, "{}", check.stdout);
    assert!(
        check
            .stdout
            .contains(&format!("{}: corrupt at offset {offset}", text(&middle)))
            || check.stdout.contains(&format!(
                "{}: torn record at offset {offset}",
                text(&middle)
            )),
        "{}",
        check.stdout
    );

    let run = snaprepair(&["repair", text(dir.path()), "--apply"]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let damaged = first_zxid + 1;
    let lost = format!(
        "lost zxids 0x{damaged:x}–0x{TXNS:x} ({} txns)",
        TXNS - damaged + 1
    );
    assert!(run.stdout.contains(&lost), "{}", run.stdout);
    let (_, last) = recover(dir.path());
    assert_eq!(last, Zxid(i64::try_from(first_zxid).expect("small")));
}

#[test]
fn separate_log_dir_is_checked_and_repaired() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_dir = dir.path().join("txnlog");
    build_in(dir.path(), &log_dir, true);
    let clean = snaprepair(&["check", text(dir.path()), "--log-dir", text(&log_dir)]);
    assert_eq!(clean.status, 0, "{}", clean.stdout);

    let (file, offset) = flip_record(&log_dir, DAMAGED);
    let check = snaprepair(&["check", text(dir.path()), "--log-dir", text(&log_dir)]);
    assert_eq!(check.status, 1, "{}", check.stdout);
    assert!(check
        .stdout
        .contains(&format!("{}: corrupt at offset {offset}", text(&file))));
    let run = snaprepair(&[
        "repair",
        text(dir.path()),
        "--log-dir",
        text(&log_dir),
        "--apply",
    ]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let (_, last) = recover_in(dir.path(), &log_dir);
    assert_eq!(last, Zxid(DAMAGED as i64 - 1));
    // No staging directory is left behind in the log dir.
    let leftovers: Vec<_> = std::fs::read_dir(&log_dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").file_name())
        .filter(|name| !name.to_string_lossy().starts_with("log."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Built without the `rocksdb` feature the tools read the native backend
/// only; on a RocksDB data directory they say what it is, how to rebuild
/// them to read it, and change nothing. (With the feature: tests/rocksdb.rs.)
#[cfg(not(feature = "rocksdb"))]
#[test]
fn rocksdb_directory_is_named_not_misread() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rocks = dir.path().join("rocksdb");
    std::fs::create_dir(&rocks).expect("mkdir");
    // The two files every RocksDB database directory has.
    std::fs::write(rocks.join("CURRENT"), "MANIFEST-000005\n").expect("write");
    std::fs::write(rocks.join("IDENTITY"), "id\n").expect("write");
    for run in [
        snaprepair(&["check", text(dir.path())]),
        snaprepair(&["repair", text(dir.path()), "--apply"]),
        logdump(&[text(dir.path())]),
    ] {
        assert_eq!(run.status, 2, "{}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("RocksDB data directory"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("ldb"), "{}", run.stderr);
        assert!(run.stderr.contains("--features rocksdb"), "{}", run.stderr);
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
    assert_eq!(left.len(), 1, "nothing created or moved");
}

/// A committed but unfinished state install: the tools refuse to judge the
/// files it replaces, and say how to finish it.
#[test]
fn pending_install_is_named_not_misread() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("install.ready")).expect("mkdir");
    for run in [
        snaprepair(&["check", text(dir.path())]),
        snaprepair(&["repair", text(dir.path()), "--apply"]),
    ] {
        assert_eq!(run.status, 2, "{}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("install.ready"), "{}", run.stderr);
        assert!(
            run.stderr.contains("Start the server once"),
            "{}",
            run.stderr
        );
    }
}

/// The zxid a directory's `log_cut` marker holds.
fn log_cut(dir: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("log_cut")).ok()?;
    u64::from_str_radix(text.trim(), 16).ok()
}

/// Found by zk-chaos (seed 2046): a member whose only snapshot was damaged
/// and whose log had been cut behind it refused to start, as it should; but
/// zk-snaprepair, reading no marker, replayed that log from the empty state
/// ("repaired: nothing lost") and the member refused again. It must refuse
/// as the server does, saying the state before the cut is gone.
#[test]
fn a_log_cut_behind_a_damaged_snapshot_is_not_replayed_from_the_empty_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), true);
    // What purge records before it drops the segments behind the snapshot.
    std::fs::write(
        dir.path().join("log_cut"),
        format!("{SNAPSHOT_AFTER:016x}\n"),
    )
    .expect("marker");
    let snapshot = snapshot::list(dir.path()).expect("list")[0].1.clone();
    let mut bytes = std::fs::read(&snapshot).expect("read");
    bytes[60] ^= 0x01;
    std::fs::write(&snapshot, bytes).expect("write");
    let before = contents(dir.path());
    // The server refuses it.
    assert!(engine::native::NativeStorage::open(config(dir.path())).is_err());

    let check = snaprepair(&["check", text(dir.path())]);
    assert_eq!(check.status, 1, "{}", check.stdout);
    assert!(
        check
            .stdout
            .contains("the log was cut behind a snapshot at 0xb"),
        "{}",
        check.stdout
    );
    let run = snaprepair(&["repair", text(dir.path()), "--apply"]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("cannot repair"), "{}", run.stdout);
    assert_eq!(
        contents(dir.path()),
        before,
        "a refused repair writes nothing"
    );
}

#[test]
fn a_repair_that_drops_the_log_behind_its_snapshot_records_the_cut() {
    for out in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        build(dir.path(), true);
        flip_record(dir.path(), DAMAGED);
        assert_eq!(
            log_cut(dir.path()),
            Some(0),
            "a new directory was never cut"
        );
        let target = dir.path().join("repaired");
        let mut args = vec!["repair", text(dir.path()), "--apply"];
        if out {
            args.extend(["--out", text(&target)]);
        }
        let run = snaprepair(&args);
        assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
        let repaired = if out { target.as_path() } else { dir.path() };
        // The rewritten log holds only txns after the kept snapshot.
        assert_eq!(log_cut(repaired), Some(SNAPSHOT_AFTER), "{}", run.stdout);
        let (_, last) = recover(repaired);
        assert_eq!(last, Zxid(DAMAGED as i64 - 1));
    }
}
