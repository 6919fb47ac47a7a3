//! zk-logdump against a data directory written by the real storage code:
//! lines, JSON, filters, --verify on clean and damaged logs, --stats and
//! snapshot --tree / summary.

mod common;

use common::*;

#[test]
fn prints_one_line_per_txn() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), false);
    let run = logdump(&[text(dir.path())]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len() as u64, TXNS, "{}", run.stdout);
    assert_eq!(
        lines[0],
        "0x1 2023-11-14T22:13:20.000Z 0x1234 0 createSession - timeout=30000ms"
    );
    assert_eq!(
        lines[1],
        "0x2 2023-11-14T22:13:20.000Z 0x1234 0 create /n0 len=2 data=\"v0\" \
         kind=persistent acl=1 pcversion=1"
    );
    assert!(
        lines[21].contains(" setData /n0 len=2 data=\"w0\" version=1"),
        "{}",
        lines[21]
    );
    assert!(lines[28].ends_with(" delete /n19"), "{}", lines[28]);
}

#[test]
fn filters_select_txns() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), false);
    let path = text(dir.path());
    let count = |args: &[&str]| {
        let run = logdump(args);
        assert_eq!(run.status, 0, "{}", run.stderr);
        run.stdout.lines().count()
    };
    assert_eq!(count(&[path, "--op", "setData"]) as u64, SET_DATAS);
    assert_eq!(count(&[path, "--from", "0x2", "--to", "11"]), 10);
    // /n1 and /n10../n19: creates, one setData, three deletes.
    assert_eq!(count(&[path, "--path", "/n1"]), 11 + 1 + 3);
    assert_eq!(count(&[path, "--session", "0x1234"]) as u64, TXNS);
    assert_eq!(count(&[path, "--session", "7"]), 0);
    let run = logdump(&[path, "--from", "zz"]);
    assert_eq!(run.status, 2);
}

#[test]
fn json_lines_parse_with_the_right_zxids() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), false);
    let run = logdump(&[text(dir.path()), "--json"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let zxids: Vec<u64> = run
        .stdout
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert!(value["file"].as_str().expect("file").contains("log."));
            assert!(value["offset"].as_u64().expect("offset") >= 32);
            assert_eq!(value["session"], "0x1234");
            value["zxid"].as_u64().expect("zxid")
        })
        .collect();
    assert_eq!(zxids, (1..=TXNS).collect::<Vec<_>>());
    let second: serde_json::Value =
        serde_json::from_str(run.stdout.lines().nth(1).expect("two lines")).expect("json");
    assert_eq!(second["op"], "create");
    assert_eq!(second["path"], "/n0");
    assert_eq!(second["details"]["data_len"], 2);
}

#[test]
fn verify_passes_a_clean_log_and_names_a_flipped_bit() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), false);
    let clean = logdump(&[text(dir.path()), "--verify"]);
    assert_eq!(clean.status, 0, "{}{}", clean.stdout, clean.stderr);
    assert!(
        clean.stdout.contains(&format!("ok, {TXNS} records")),
        "{}",
        clean.stdout
    );

    let (file, offset) = flip_record(dir.path(), 15);
    let damaged = logdump(&[text(&file), "--verify"]);
    assert_eq!(damaged.status, 1, "{}", damaged.stdout);
    assert!(
        damaged
            .stdout
            .contains(&format!("bad record at offset {offset}")),
        "{}",
        damaged.stdout
    );
    assert!(damaged.stdout.contains("corrupt"), "{}", damaged.stdout);
    // A plain dump shows the records before the damage and warns.
    let dump = logdump(&[text(&file)]);
    assert_eq!(dump.status, 1);
    assert_eq!(dump.stdout.lines().count(), 14);
    assert!(
        dump.stderr.contains(&format!("offset {offset}")),
        "{}",
        dump.stderr
    );
}

#[test]
fn stats_count_ops() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), false);
    let run = logdump(&[text(dir.path()), "--stats"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let count = |op: &str| -> u64 {
        let line = run
            .stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(op))
            .unwrap_or_else(|| panic!("no {op} row in {}", run.stdout));
        line.split_whitespace()
            .nth(1)
            .expect("count")
            .parse()
            .expect("number")
    };
    assert_eq!(count("create"), CREATES);
    assert_eq!(count("setData"), SET_DATAS);
    assert_eq!(count("delete"), DELETES);
    assert_eq!(count("createSession"), 1);
    assert!(
        run.stdout.contains(&format!("records: {TXNS} ")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("zxids 0x1–0x1d"), "{}", run.stdout);
    assert!(run.stdout.contains("gaps: none"), "{}", run.stdout);

    let json = logdump(&[text(dir.path()), "--stats", "--json"]);
    let value: serde_json::Value = serde_json::from_str(json.stdout.trim()).expect("json");
    assert_eq!(value["ops"]["create"]["count"], CREATES);
    // A filtered range leaves a gap-free sequence too.
    let ranged = logdump(&[text(dir.path()), "--stats", "--from", "5", "--to", "9"]);
    assert!(ranged.stdout.contains("records: 5 "), "{}", ranged.stdout);
}

#[test]
fn snapshot_tree_and_summary() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), true);
    let snapshots = snapshot::list(dir.path()).expect("list");
    assert_eq!(snapshots.len(), 1);
    let file = snapshots[0].1.clone();

    let tree = logdump(&[text(&file), "--tree"]);
    assert_eq!(tree.status, 0, "{}", tree.stderr);
    let paths: Vec<&str> = tree
        .stdout
        .lines()
        .filter(|line| line.starts_with('/'))
        .map(|line| line.split(' ').next().expect("path"))
        .collect();
    // Root, /zookeeper (+ /zookeeper/quota, ... if the engine has them),
    // and /n0../n9 created by zxid 0xb.
    for i in 0..10 {
        assert!(
            paths.contains(&format!("/n{i}").as_str()),
            "{}",
            tree.stdout
        );
    }
    assert!(!paths.contains(&"/n10"), "{}", tree.stdout);
    let mut sorted = paths.clone();
    sorted.sort_by(|l, r| l.split('/').cmp(r.split('/')));
    assert_eq!(paths, sorted);
    assert!(tree.stdout.contains("/n3 czxid=0x5 "), "{}", tree.stdout);
    assert!(
        tree.stdout.contains("session 0x1234 timeout=30000ms"),
        "{}",
        tree.stdout
    );

    let summary = logdump(&[text(&file)]);
    assert_eq!(summary.status, 0, "{}", summary.stderr);
    assert!(
        summary.stdout.contains("start zxid 0xb"),
        "{}",
        summary.stdout
    );
    assert!(
        summary.stdout.contains("checksums ok"),
        "{}",
        summary.stdout
    );

    // A directory lists its snapshots only with --tree.
    let dir_dump = logdump(&[text(dir.path())]);
    assert_eq!(dir_dump.stdout.lines().count() as u64, TXNS);
}

#[test]
fn verify_json_reports_the_bad_offset() {
    let dir = tempfile::tempdir().expect("temp dir");
    build(dir.path(), false);
    let (_, offset) = flip_record(dir.path(), 3);
    let run = logdump(&[text(dir.path()), "--verify", "--json"]);
    assert_eq!(run.status, 1, "{}", run.stdout);
    let value: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("json");
    assert_eq!(value["ok"], false);
    assert_eq!(value["bad_offset"], offset);
    assert_eq!(value["records"], 2);
}
