//! Issue 14 §4: zk-logdump and zk-snaprepair on a RocksDB-backend data
//! directory written by the real `RocksStorage`: the same lines as for the
//! native backend holding the same txns, JSON, filters, --stats, --verify on
//! intact and damaged logs, the checkpoint's tree, check's exit codes,
//! repair by cutting a damaged log tail, and reading beside an open
//! storage (a live server holds the lock).

#![cfg(feature = "rocksdb")]

mod common;

use common::*;
use engine::types::Zxid;

/// Both backends' dumps of the same txns, without their snapshot or
/// checkpoint (a checkpoint drops the RocksDB log it covers).
fn both() -> (tempfile::TempDir, tempfile::TempDir) {
    let native = tempfile::tempdir().expect("temp dir");
    build(native.path(), false);
    let rocks = tempfile::tempdir().expect("temp dir");
    build_rocks(rocks.path(), false);
    (native, rocks)
}

/// The same txns print the same lines on either backend, with every
/// filter, and the data dir and its `rocksdb` subdirectory both work.
#[test]
fn logdump_prints_the_same_lines_as_for_the_native_log() {
    let (native, rocks) = both();
    let filters: [&[&str]; 6] = [
        &[],
        &["--op", "setData"],
        &["--from", "0x2", "--to", "11"],
        &["--path", "/n1"],
        &["--session", "0x1234"],
        &["--session", "7"],
    ];
    for filter in filters {
        let run = |dir: &std::path::Path| {
            let mut args = vec![text(dir)];
            args.extend_from_slice(filter);
            let run = logdump(&args);
            assert_eq!(run.status, 0, "{filter:?}: {}", run.stderr);
            run.stdout
        };
        let expected = run(native.path());
        assert_eq!(run(rocks.path()), expected, "{filter:?}");
        assert_eq!(run(&rocks_dir(rocks.path())), expected, "{filter:?}");
    }
    let lines = logdump(&[text(rocks.path())]).stdout;
    assert_eq!(lines.lines().count() as u64, TXNS);
    assert_eq!(
        lines.lines().next(),
        Some("0x1 2023-11-14T22:13:20.000Z 0x1234 0 createSession - timeout=30000ms")
    );
}

/// JSON lines carry the same fields, except where the txn was read: the
/// database directory and the key instead of a segment and an offset.
#[test]
fn json_lines_match_the_native_ones_but_for_their_location() {
    let (native, rocks) = both();
    let parse = |stdout: &str| -> Vec<serde_json::Value> {
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    };
    let native_lines = parse(&logdump(&[text(native.path()), "--json"]).stdout);
    let rocks_run = logdump(&[text(rocks.path()), "--json"]);
    assert_eq!(rocks_run.status, 0, "{}", rocks_run.stderr);
    let rocks_lines = parse(&rocks_run.stdout);
    assert_eq!(rocks_lines.len() as u64, TXNS);
    for (mut from_native, mut from_rocks) in native_lines.into_iter().zip(rocks_lines) {
        let zxid = from_rocks["zxid"].as_u64().expect("zxid");
        assert_eq!(from_rocks["key"], format!("{zxid:016x}"));
        assert_eq!(from_rocks["file"], text(&rocks_dir(rocks.path())));
        assert!(from_rocks.get("offset").is_none());
        for field in ["file", "offset", "key"] {
            from_native.as_object_mut().expect("object").remove(field);
            from_rocks.as_object_mut().expect("object").remove(field);
        }
        assert_eq!(from_native, from_rocks);
    }
}

#[test]
fn stats_count_the_same_ops() {
    let (native, rocks) = both();
    let ops = |dir: &std::path::Path| {
        let run = logdump(&[text(dir), "--stats", "--json"]);
        assert_eq!(run.status, 0, "{}", run.stderr);
        let value: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("json");
        let counts: Vec<(String, serde_json::Value)> = value["ops"]
            .as_object()
            .expect("ops")
            .iter()
            .map(|(op, entry)| (op.clone(), entry["count"].clone()))
            .collect();
        (counts, value["records"].clone(), value["gap_count"].clone())
    };
    assert_eq!(ops(rocks.path()), ops(native.path()));
    let text_stats = logdump(&[text(rocks.path()), "--stats"]);
    assert!(
        text_stats.stdout.contains("zxids 0x1–0x1d"),
        "{}",
        text_stats.stdout
    );
    assert!(
        text_stats.stdout.contains("gaps: none"),
        "{}",
        text_stats.stdout
    );
}

/// With a checkpoint the log starts right after it; --verify checks that,
/// every entry, and the checkpoint's entries.
#[test]
fn verify_passes_an_intact_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    build_rocks(dir.path(), true);
    let run = logdump(&[text(dir.path()), "--verify"]);
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "ok, {} records, zxids 0xc–0x1d",
            TXNS - SNAPSHOT_AFTER
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("ok, checkpoint generation 1, start 0xb, end 0xb"),
        "{}",
        run.stdout
    );
    let json = logdump(&[text(dir.path()), "--verify", "--json"]);
    let value: serde_json::Value = serde_json::from_str(json.stdout.trim()).expect("json");
    assert_eq!(value["ok"], true);
    assert_eq!(value["bad_key"], serde_json::Value::Null);
    assert_eq!(value["checkpoint"]["start_zxid"], SNAPSHOT_AFTER);
}

/// A garbage value in the log CF: --verify names its key, a dump shows it
/// undecodable, both exit 1.
#[test]
fn verify_names_the_first_bad_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    build_rocks(dir.path(), false);
    damage_rocks_log(dir.path(), 20);
    let run = logdump(&[text(dir.path()), "--verify"]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "19 intact records before the first problem (first bad key 0000000000000014)"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("does not decode"), "{}", run.stdout);
    let json = logdump(&[text(dir.path()), "--verify", "--json"]);
    assert_eq!(json.status, 1);
    let value: serde_json::Value = serde_json::from_str(json.stdout.trim()).expect("json");
    assert_eq!(value["ok"], false);
    assert_eq!(value["bad_key"], "0000000000000014");
    assert_eq!(value["records"], 19);

    let dump = logdump(&[text(dir.path())]);
    assert_eq!(dump.status, 1, "{}", dump.stderr);
    assert_eq!(dump.stdout.lines().count() as u64, TXNS);
    assert!(
        dump.stdout.contains("0x14 undecodable payload"),
        "{}",
        dump.stdout
    );
    assert!(
        dump.stderr.contains("key 0000000000000014"),
        "{}",
        dump.stderr
    );
}

/// The checkpoint's tree lists the same nodes and sessions as the native
/// snapshot taken at the same zxid, after a summary naming its range.
#[test]
fn tree_lists_the_checkpoint_like_a_snapshot() {
    let native = tempfile::tempdir().expect("temp dir");
    build(native.path(), true);
    let rocks = tempfile::tempdir().expect("temp dir");
    build_rocks(rocks.path(), true);
    let snapshots = snapshot::list(native.path()).expect("list");
    let from_snapshot = logdump(&[text(&snapshots[0].1), "--tree"]);
    assert_eq!(from_snapshot.status, 0, "{}", from_snapshot.stderr);
    let from_checkpoint = logdump(&[text(rocks.path()), "--tree", "--from", "0x1e"]);
    assert_eq!(from_checkpoint.status, 0, "{}", from_checkpoint.stderr);
    assert!(
        from_checkpoint
            .stdout
            .contains("generation 1, start zxid 0xb, end zxid 0xb"),
        "{}",
        from_checkpoint.stdout
    );
    let listing = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .filter(|line| line.starts_with('/') || line.starts_with("session "))
            .map(str::to_string)
            .collect()
    };
    assert!(listing(&from_snapshot.stdout).len() > 10);
    assert_eq!(
        listing(&from_checkpoint.stdout),
        listing(&from_snapshot.stdout)
    );
}

#[test]
fn check_passes_a_clean_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    build_rocks(dir.path(), true);
    let run = snaprepair(&["check", text(dir.path())]);
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("the log replays it to its end 0xb with the recorded digest"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("clean"), "{}", run.stdout);
    let repair = snaprepair(&["repair", text(dir.path())]);
    assert_eq!(repair.status, 0, "{}", repair.stdout);
    assert!(repair.stdout.contains("nothing lost"), "{}", repair.stdout);
}

/// A damaged entry after the checkpoint's end: check exits 1 naming it, a
/// dry run changes nothing, --apply keeps a copy and cuts the log before
/// it, and the server then recovers exactly the txns before.
#[test]
fn repair_cuts_the_log_before_a_damaged_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    build_rocks(dir.path(), true);
    damage_rocks_log(dir.path(), 20);
    assert!(recover_rocks(dir.path()).is_err(), "the server refuses it");
    let check = snaprepair(&["check", text(dir.path())]);
    assert_eq!(check.status, 1, "{}{}", check.stdout, check.stderr);
    let problem = check
        .stdout
        .lines()
        .find(|line| line.starts_with("PROBLEM"))
        .expect("a problem line");
    assert!(
        problem.contains("key 0000000000000014 (zxid 0x14)"),
        "{problem}"
    );

    let before = contents(dir.path());
    let dry = snaprepair(&["repair", text(dir.path())]);
    assert_eq!(dry.status, 1, "{}{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout.contains("lost zxids 0x14–0x1d (10 log entries)"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("dry run"), "{}", dry.stdout);
    assert!(contents(dir.path()) == before, "a dry run changed files");

    // --out repairs a copy. Copying opens the original as RocksDB's only
    // writer, which rolls RocksDB's own MANIFEST, WAL and LOG files as any
    // open does; what it holds stays as it was, damage included.
    let dump_before = logdump(&[text(dir.path()), "--json"]).stdout;
    let out = tempfile::tempdir().expect("temp dir");
    let copy = out.path().join("fixed");
    let into = snaprepair(&["repair", text(dir.path()), "--out", text(&copy), "--apply"]);
    assert_eq!(into.status, 1, "{}{}", into.stdout, into.stderr);
    let (_, last) = recover_rocks(&copy).expect("the repaired copy opens");
    assert_eq!(last, Zxid(19));
    assert_eq!(logdump(&[text(dir.path()), "--json"]).stdout, dump_before);

    let apply = snaprepair(&["repair", text(dir.path()), "--apply"]);
    assert_eq!(apply.status, 1, "{}{}", apply.stdout, apply.stderr);
    assert!(
        apply.stdout.contains("repaired: lost zxids 0x14–0x1d"),
        "{}",
        apply.stdout
    );
    let (tree, last) = recover_rocks(dir.path()).expect("the server opens it");
    assert_eq!(last, Zxid(19));
    assert!(tree.get("/n17").is_some());
    let quarantine = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.to_string_lossy().contains("quarantine-"))
        .expect("a quarantine folder");
    // The original, damage included, is kept whole.
    let kept = logdump(&[text(&quarantine.join("rocksdb")), "--verify"]);
    assert_eq!(kept.status, 1, "{} {}", kept.stdout, kept.stderr);
    assert!(
        kept.stdout.contains("first bad key 0000000000000014"),
        "{}",
        kept.stdout
    );
    let again = snaprepair(&["check", text(dir.path())]);
    assert_eq!(again.status, 0, "{}", again.stdout);
}

/// The "live server" case: the storage is open (its lock held, its writer
/// running) while the tools read; a repair that would write refuses.
#[test]
fn tools_read_beside_an_open_storage() {
    let dir = tempfile::tempdir().expect("temp dir");
    build_rocks(dir.path(), true);
    let storage = engine::rocks::RocksStorage::open(rocks_config(dir.path())).expect("open");
    let dump = logdump(&[text(dir.path())]);
    assert_eq!(dump.status, 0, "{}", dump.stderr);
    assert_eq!(dump.stdout.lines().count() as u64, TXNS - SNAPSHOT_AFTER);
    let verify = logdump(&[text(dir.path()), "--verify"]);
    assert_eq!(verify.status, 0, "{}{}", verify.stdout, verify.stderr);
    let check = snaprepair(&["check", text(dir.path())]);
    assert_eq!(check.status, 0, "{}{}", check.stdout, check.stderr);
    let out = tempfile::tempdir().expect("temp dir");
    let copy = out.path().join("copy");
    let refused = snaprepair(&["repair", text(dir.path()), "--out", text(&copy), "--apply"]);
    assert_eq!(refused.status, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("in use by a running server"),
        "{}",
        refused.stderr
    );
    drop(storage);
}

/// A directory that only looks like a RocksDB database is named, not
/// misread, and nothing is written to it.
#[test]
fn a_directory_that_does_not_open_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rocks = rocks_dir(dir.path());
    std::fs::create_dir(&rocks).expect("mkdir");
    std::fs::write(rocks.join("CURRENT"), "MANIFEST-000005\n").expect("write");
    std::fs::write(rocks.join("IDENTITY"), "id\n").expect("write");
    let before = contents(dir.path());
    let dump = logdump(&[text(dir.path())]);
    assert_eq!(dump.status, 2, "{}{}", dump.stdout, dump.stderr);
    assert!(
        dump.stderr.contains("RocksDB data directory"),
        "{}",
        dump.stderr
    );
    let check = snaprepair(&["check", text(dir.path())]);
    assert_ne!(check.status, 0, "{}{}", check.stdout, check.stderr);
    assert!(contents(dir.path()) == before, "reading changed files");
}

/// RocksDB's own damage (here its MANIFEST is gone, so RocksDB cannot open
/// the database): check says so, and repair runs RocksDB's repair on it
/// after copying it aside, which rebuilds the MANIFEST from the table
/// files and the WAL; the server then recovers every txn.
#[test]
fn rocksdb_damage_goes_to_rocksdb_repair() {
    let dir = tempfile::tempdir().expect("temp dir");
    build_rocks(dir.path(), true);
    let manifests: Vec<_> = std::fs::read_dir(rocks_dir(dir.path()))
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.to_string_lossy().contains("MANIFEST-"))
        .collect();
    assert!(!manifests.is_empty());
    for manifest in &manifests {
        std::fs::remove_file(manifest).expect("remove");
    }
    let check = snaprepair(&["check", text(dir.path())]);
    assert_eq!(check.status, 1, "{}{}", check.stdout, check.stderr);
    assert!(
        check
            .stdout
            .contains("PROBLEM: RocksDB cannot open the database"),
        "{}",
        check.stdout
    );
    let dry = snaprepair(&["repair", text(dir.path())]);
    assert_eq!(dry.status, 1, "{}{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout.contains("run RocksDB's repair"),
        "{}",
        dry.stdout
    );
    let apply = snaprepair(&["repair", text(dir.path()), "--apply"]);
    assert!(
        apply
            .stdout
            .contains("repaired: the database checks clean now"),
        "{}{}",
        apply.stdout,
        apply.stderr
    );
    let (_, last) = recover_rocks(dir.path()).expect("the server opens it");
    assert_eq!(last, Zxid(TXNS as i64));
}
