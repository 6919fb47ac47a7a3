//! `zk-migrate` over data directories written by a real Apache ZooKeeper 3.8
//! (`tests/data/apache-3.8/`, made by its `make.py`: one per snapshot
//! compression, same workload), and damaged copies of them: what an import
//! preserves, that every snapshot plus the log after it gives the same tree,
//! fallback past a damaged snapshot, a torn log tail, errors for a bad
//! checksum and a gap, and export read back.

use std::path::{Path, PathBuf};

use engine::tree::DataTree;
use engine::txn::NodeKind;
use engine::types::{perms, Zxid};
use tools::migrate::export::{self, ExportOptions};
use tools::migrate::import::{self, ImportOptions, ImportReport};
use tools::migrate::{Backend, Error};

const COMPRESSIONS: [&str; 3] = ["plain", "gz", "snappy"];
/// The fixture's last txn: the workload's own closeSession.
const LAST_ZXID: i64 = 0x31;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/apache-3.8")
        .join(name)
}

/// A copy of a fixture to damage.
fn copy_fixture(name: &str, into: &Path) -> PathBuf {
    let to = into.join(name).join("version-2");
    std::fs::create_dir_all(&to).expect("mkdir");
    for entry in std::fs::read_dir(fixture(name).join("version-2")).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
    into.join(name)
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("version-2"))
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    // By the zxid in the name.
    found.sort_by_key(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let hex = name.split('.').nth(1).unwrap_or("0");
        u64::from_str_radix(hex, 16).unwrap_or(0)
    });
    found
}

fn options(from: &Path, to: &Path, backend: Backend) -> ImportOptions {
    ImportOptions {
        from: from.to_path_buf(),
        log_dir: None,
        to: to.to_path_buf(),
        backend,
        ignore_digest: false,
        progress: false,
    }
}

fn recover(dir: &Path, backend: Backend) -> DataTree {
    let mut storage = import::open_storage(dir, None, backend).expect("open");
    storage.recover().expect("recover").0
}

fn import_to(from: &Path, to: &Path, backend: Backend) -> (ImportReport, DataTree) {
    let report = import::import(&options(from, to, backend)).expect("import");
    (report, recover(to, backend))
}

/// Everything the fixture's workload left, as our tree holds it.
fn assert_workload_tree(tree: &DataTree, what: &str) {
    tree.check_invariants().expect("invariants");
    assert_eq!(tree.last_zxid(), Zxid(LAST_ZXID), "{what}");
    let a = tree.get("/a").expect("/a");
    assert_eq!(a.data(), Some(&b"tail2"[..]), "{what}");
    assert_eq!(
        a.version(),
        4,
        "{what}: setData in a multi, then three more"
    );
    // Two sequential creates and an ephemeral: the sequence counter.
    assert_eq!(a.cversion(), 3, "{what}");
    assert!(tree.contains("/a/seq-0000000000") && tree.contains("/a/seq-0000000001"));
    // The live session and its ephemeral; the workload's closed session is gone.
    assert_eq!(tree.session_count(), 1, "{what}");
    let (session, timeout) = tree.sessions().next().expect("a session");
    assert_eq!(timeout, 30_000, "{what}");
    assert_eq!(
        tree.get("/a/eph").expect("ephemeral").kind(),
        NodeKind::Ephemeral(session),
        "{what}"
    );
    assert_eq!(tree.ephemerals(session), vec!["/a/eph".to_string()]);
    // A digest ACL, as Apache resolved `auth`.
    let secret = tree.get("/secret").expect("/secret");
    assert_eq!(secret.acl().len(), 1);
    assert_eq!(secret.acl()[0].id.scheme, "digest");
    assert!(
        secret.acl()[0].id.id.starts_with("bob:"),
        "{:?}",
        secret.acl()
    );
    assert_eq!(secret.acl()[0].perms, perms::ALL);
    let n01 = tree.get("/n01").expect("/n01");
    assert_eq!(n01.aversion(), 1);
    assert_eq!(n01.acl()[0].perms, perms::READ);
    assert_eq!(
        tree.get("/box").expect("container").kind(),
        NodeKind::Container
    );
    assert_eq!(
        tree.get("/ttl").expect("ttl").kind(),
        NodeKind::Ttl(600_000)
    );
    // The applied multi deleted /n00; the failed one created nothing.
    assert!(!tree.contains("/n00"), "{what}");
    assert!(!tree.contains("/never"), "{what}: a failed multi applied");
    assert!(tree.contains("/n29"));
}

#[test]
fn imports_real_apache_dirs_of_every_compression() {
    let temp = tempfile::tempdir().expect("temp");
    let mut digests = Vec::new();
    for name in COMPRESSIONS {
        let to = temp.path().join(format!("ours-{name}"));
        let (report, tree) = import_to(&fixture(name), &to, Backend::Native);
        assert!(
            report.digests_checked >= 1,
            "{name}: no digest checked: {report:?}"
        );
        assert!(report.replayed > 0, "{name}: the log after the snapshot");
        assert_workload_tree(&tree, name);
        // Stats survive exactly: a node the log never touched again keeps
        // the snapshot's.
        let n29 = tree.get("/n29").expect("/n29");
        assert_eq!((n29.czxid(), n29.mzxid()), (n29.pzxid(), n29.czxid()));
        // The imported sessions are listed, so the server accepts the
        // Apache-issued passwords their clients hold.
        let listed = std::fs::read_to_string(to.join(engine::session::MIGRATED_SESSIONS_FILE))
            .expect("migrated_sessions written");
        let mut sessions: Vec<_> = tree.sessions().map(|(session, _)| session).collect();
        sessions.sort();
        assert_eq!(
            engine::session::decode_migrated_sessions(&listed),
            Ok(sessions),
            "{name}"
        );
        digests.push(tree.digest());
    }
    // Three runs of one workload differ in times and session ids only, so
    // their digests differ; each was checked against Apache's own digest.
    assert_eq!(digests.len(), 3);
}

#[test]
fn every_snapshot_plus_the_log_after_it_gives_the_same_tree() {
    let temp = tempfile::tempdir().expect("temp");
    for name in COMPRESSIONS {
        let whole = temp.path().join(format!("whole-{name}"));
        let (_, expected) = import_to(&fixture(name), &whole, Backend::Native);
        let snapshots = files(&fixture(name), "snapshot.");
        assert!(snapshots.len() >= 3, "{name}: {snapshots:?}");
        // Keep only the oldest k snapshots: the import starts further back
        // and replays more of the log (down to snapshot.0, the whole log).
        for keep in 1..snapshots.len() {
            let dir = copy_fixture(name, &temp.path().join(format!("{name}-{keep}")));
            for newer in &files(&dir, "snapshot.")[keep..] {
                std::fs::remove_file(newer).expect("rm");
            }
            let to = dir.with_extension("ours");
            let (report, tree) = import_to(&dir, &to, Backend::Native);
            assert_eq!(
                tree.digest(),
                expected.digest(),
                "{name} from {:?}: {report:?}",
                report.snapshot
            );
            assert_workload_tree(&tree, name);
        }
    }
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_an_older_one() {
    let temp = tempfile::tempdir().expect("temp");
    for name in COMPRESSIONS {
        let (_, expected) = import_to(
            &fixture(name),
            &temp.path().join(format!("ref-{name}")),
            Backend::Native,
        );
        for damage in ["flip", "truncate"] {
            let dir = copy_fixture(name, &temp.path().join(format!("{name}-{damage}")));
            let newest = files(&dir, "snapshot.").pop().expect("a snapshot");
            let mut bytes = std::fs::read(&newest).expect("read");
            match damage {
                "flip" => {
                    let middle = bytes.len() / 2;
                    bytes[middle] ^= 0x55;
                }
                _ => bytes.truncate(bytes.len() - 7),
            }
            std::fs::write(&newest, &bytes).expect("write");
            let to = dir.with_extension("ours");
            let (report, tree) = import_to(&dir, &to, Backend::Native);
            assert!(
                report
                    .notes
                    .iter()
                    .any(|n| n.starts_with("skipped snapshot")
                        && n.contains(newest.to_str().unwrap_or("?"))),
                "{name} {damage}: {:?}",
                report.notes
            );
            assert_ne!(report.snapshot.as_ref().map(|s| &s.0), Some(&newest));
            assert_eq!(tree.digest(), expected.digest(), "{name} {damage}");
        }
    }
}

#[test]
fn a_bad_log_checksum_is_an_error_and_nothing_is_written() {
    let temp = tempfile::tempdir().expect("temp");
    let dir = copy_fixture("plain", temp.path());
    let last_log = files(&dir, "log.").pop().expect("a log");
    let mut bytes = std::fs::read(&last_log).expect("read");
    // Inside the first entry's body (file header 16, checksum 8, length 4,
    // then the TxnHeader): its clientId.
    bytes[16 + 12 + 3] ^= 0xff;
    std::fs::write(&last_log, &bytes).expect("write");
    let to = temp.path().join("ours");
    let error = import::import(&options(&dir, &to, Backend::Native)).expect_err("bad checksum");
    let text = error.to_string();
    assert!(
        text.contains("checksum mismatch") && text.contains("offset 16"),
        "{text}"
    );
    assert!(!to.exists(), "nothing may be written on an error");
}

#[test]
fn a_torn_log_tail_ends_the_log() {
    let temp = tempfile::tempdir().expect("temp");
    let dir = copy_fixture("plain", temp.path());
    let last_log = files(&dir, "log.").pop().expect("a log");
    let bytes = std::fs::read(&last_log).expect("read");
    // Drop the zeroed tail, then cut the last entry (closeSession) short.
    let used = bytes.len() - 64;
    std::fs::write(&last_log, &bytes[..used - 5]).expect("write");
    let to = temp.path().join("ours");
    let (report, tree) = import_to(&dir, &to, Backend::Native);
    assert_eq!(tree.last_zxid(), Zxid(LAST_ZXID - 1), "{report:?}");
    assert!(
        report.notes.iter().any(|n| n.contains("torn by a crash")),
        "{:?}",
        report.notes
    );
    // The workload's session did not get to close.
    assert_eq!(tree.session_count(), 2);
}

#[test]
fn a_gap_in_the_log_is_refused() {
    let temp = tempfile::tempdir().expect("temp");
    let dir = copy_fixture("plain", temp.path());
    // The oldest snapshot only, and the middle log file gone.
    for newer in &files(&dir, "snapshot.")[1..] {
        std::fs::remove_file(newer).expect("rm");
    }
    let logs = files(&dir, "log.");
    std::fs::remove_file(&logs[1]).expect("rm");
    let error = import::import(&options(&dir, &temp.path().join("ours"), Backend::Native))
        .expect_err("a gap");
    assert!(error.to_string().contains("missing"), "{error}");
}

#[test]
fn refuses_a_target_that_is_not_empty_and_a_dir_without_apache_files() {
    let temp = tempfile::tempdir().expect("temp");
    let to = temp.path().join("ours");
    std::fs::create_dir_all(&to).expect("mkdir");
    std::fs::write(to.join("keep-me"), b"x").expect("write");
    let error =
        import::import(&options(&fixture("plain"), &to, Backend::Native)).expect_err("not empty");
    assert!(error.to_string().contains("not empty"), "{error}");
    assert_eq!(std::fs::read(to.join("keep-me")).expect("kept"), b"x");

    let empty = temp.path().join("empty");
    std::fs::create_dir_all(empty.join("version-2")).expect("mkdir");
    let error = import::import(&options(&empty, &temp.path().join("t2"), Backend::Native))
        .expect_err("no files");
    assert!(matches!(error, Error::Unusable(_)), "{error}");
}

#[test]
fn export_then_import_gives_the_same_tree() {
    let temp = tempfile::tempdir().expect("temp");
    let ours = temp.path().join("ours");
    let (_, tree) = import_to(&fixture("plain"), &ours, Backend::Native);
    let apache = temp.path().join("apache");
    let report = export::export(&ExportOptions {
        from: ours.clone(),
        log_dir: None,
        to: apache.clone(),
        progress: false,
    })
    .expect("export");
    assert_eq!(report.nodes, tree.node_count());
    assert_eq!(
        report.snapshot.file_name().and_then(|n| n.to_str()),
        Some("snapshot.31")
    );
    // Exporting again into the same place is refused.
    let again = export::export(&ExportOptions {
        from: ours,
        log_dir: None,
        to: apache.clone(),
        progress: false,
    });
    assert!(again.is_err());
    // The export alone (no log) imports back to the same tree, and its
    // digest section agrees.
    let back = temp.path().join("back");
    let (report, again) = import_to(&apache, &back, Backend::Native);
    assert_eq!(report.replayed, 0);
    assert_eq!(report.digests_checked, 1, "{:?}", report.notes);
    assert_eq!(again.digest(), tree.digest());
    assert_eq!(again.last_zxid(), tree.last_zxid());
    assert_eq!(
        again.sessions().collect::<Vec<_>>(),
        tree.sessions().collect::<Vec<_>>()
    );
}

#[test]
fn the_binary_prints_a_summary_and_the_password_caveat() {
    let temp = tempfile::tempdir().expect("temp");
    let to = temp.path().join("ours");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_zk-migrate"))
        .args(["import", "--from"])
        .arg(fixture("gz"))
        .arg("--to")
        .arg(&to)
        .output()
        .expect("run zk-migrate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 sessions, 1 ephemerals, last zxid 0x31"),
        "{stdout}"
    );
    assert!(stdout.contains("migrated_sessions"), "{stdout}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_zk-migrate"))
        .args(["import", "--backend", "leveldb", "--from", "x", "--to", "y"])
        .output()
        .expect("run zk-migrate");
    assert_eq!(output.status.code(), Some(2));
}

#[cfg(feature = "rocksdb")]
#[test]
fn imports_into_rocksdb_and_exports_from_it() {
    let temp = tempfile::tempdir().expect("temp");
    let to = temp.path().join("ours");
    let (_, tree) = import_to(&fixture("snappy"), &to, Backend::RocksDb);
    assert!(to.join("rocksdb").is_dir());
    assert_workload_tree(&tree, "rocksdb");
    let apache = temp.path().join("apache");
    let report = export::export(&ExportOptions {
        from: to,
        log_dir: None,
        to: apache.clone(),
        progress: false,
    })
    .expect("export");
    assert_eq!(report.backend, "rocksdb");
    let (_, back) = import_to(&apache, &temp.path().join("back"), Backend::Native);
    assert_eq!(back.digest(), tree.digest());
}
