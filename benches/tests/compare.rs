//! End-to-end test of `zk-bench compare`: with tiny settings it must start
//! every target itself, run all three phases, stop the servers, and report
//! medians, ratios over the baseline, memory, disk, restart times and the
//! snapshot split. Apache ZooKeeper (Debian's `zookeeper` package) is a
//! target when installed, and must be in CI, where `.ci/test` installs it.
//!
//! Not a performance test: no figure is compared with another, only that
//! each is measured (positive, finite) and where it belongs.

use std::path::{Path, PathBuf};
use std::process::Command;

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn positive(value: &serde_json::Value, what: &str) -> f64 {
    let v = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {value}"));
    assert!(v.is_finite() && v > 0.0, "{what}: {v}");
    v
}

/// The server is built with RocksDB when this crate is (`--features
/// rocksdb`, as CI builds every feature), and the RocksDB target compared.
const SERVER_FEATURES: &[&str] = if cfg!(feature = "rocksdb") {
    &["--features", "rocksdb"]
} else {
    &[]
};

/// A target other than the default baseline, so the ratio column is tested.
const BASELINE: &str = if cfg!(feature = "rocksdb") {
    "zk-server-rocksdb"
} else {
    "zk-server"
};

#[test]
fn compare_runs_every_phase_and_stops_its_servers() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let built = Command::new(cargo)
        .args(["build", "-p", "server"])
        .args(SERVER_FEATURES)
        .current_dir(workspace())
        .status()
        .expect("run cargo build");
    assert!(built.success(), "zk-server did not build");
    let zk_server = workspace().join("target/debug/zk-server");
    let with_reference = Path::new(ZOOKEEPER_JAR).is_file();
    assert!(
        with_reference || std::env::var_os("CI").is_none(),
        "CI must have Apache ZooKeeper at {ZOOKEEPER_JAR}"
    );
    if !with_reference {
        eprintln!("!!!!! zk-bench compare test runs without Apache ZooKeeper: {ZOOKEEPER_JAR} missing !!!!!");
    }
    let mut targets = vec!["zk-server"];
    if cfg!(feature = "rocksdb") {
        targets.push("zk-server-rocksdb");
    }
    if with_reference {
        targets.push("zookeeper");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_zk-bench"))
        .args(["compare", "--targets", &targets.join(",")])
        .args(["--baseline", BASELINE, "--pairs", "2"])
        .args(["--workloads", "read,write", "--duration", "0.5s"])
        .args(["--warmup", "0s", "--connections", "4", "--inflight", "4"])
        .args(["--keys", "100", "--big-tree", "3000"])
        .args(["--snapshot-run", "3s", "--snap-count", "2000", "--json"])
        .arg("--zk-server")
        .arg(&zk_server)
        .arg("--dir")
        .arg(dir.path().join("runs"))
        .output()
        .expect("run zk-bench compare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON {e}: {stdout}"));

    let rows = report["throughput"].as_array().expect("throughput rows");
    assert_eq!(rows.len(), 2 * targets.len(), "{report}");
    for row in rows {
        assert_eq!(row["runs"].as_array().map(Vec::len), Some(2), "{row}");
        positive(&row["median"]["ops_per_sec"], "median ops/s");
        positive(&row["median"]["p99_ms"], "median p99");
        let ratio = positive(&row["ratio"]["ops_per_sec"], "ratio");
        if row["target"] == BASELINE {
            assert!((ratio - 1.0).abs() < 1e-9, "baseline ratio {row}");
        }
    }

    let big = report["big_tree"].as_array().expect("big tree rows");
    assert_eq!(big.len(), targets.len());
    for row in big {
        positive(&row["load_s"], "load time");
        positive(&row["rss_after_load_bytes"], "RSS after load");
        positive(&row["disk_bytes"], "disk bytes");
        positive(&row["median"]["start_to_serving_s"], "start to serving");
        positive(
            &row["median"]["rss_after_restart_bytes"],
            "RSS after restart",
        );
        positive(&row["ratio"]["start_to_serving_s"], "start ratio");
    }

    // With snapCount 2000 and thousands of writes a second, every target
    // snapshots during the 3 s run (each reports snapshottime in mntr).
    let snaps = report["snapshots"].as_array().expect("snapshot rows");
    assert_eq!(snaps.len(), targets.len());
    for row in snaps {
        assert!(row["snapshots"].as_u64().unwrap_or(0) >= 1, "{row}");
        let during = row["during"]["ops"].as_u64().unwrap_or(0);
        let outside = row["outside"]["ops"].as_u64().unwrap_or(0);
        assert!(during + outside > 0, "{row}");
        positive(&row["whole"]["ops_per_sec"], "write ops/s");
    }

    // Everything was stopped and, without --keep, removed.
    assert!(!dir.path().join("runs").exists(), "--dir left behind");
}

#[test]
fn compare_names_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_zk-bench"))
        .args(["compare", "--targets", "zookeeper", "--zookeeper-jar"])
        .arg("/nonexistent/zookeeper.jar")
        .output()
        .expect("run zk-bench compare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("apt-get install zookeeper"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_zk-bench"))
        .args(["compare", "--targets", "etcd"])
        .output()
        .expect("run zk-bench compare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown target"), "{stderr}");
}
