//! End-to-end tests of the replicated benchmarks against `zk-server` alone
//! (Apache ZooKeeper ensembles take a JVM per node; the subcommands treat
//! both kinds the same way): `compare --ensemble 3 --with-standalone` must
//! start a 3-node ensemble and a standalone server, spread the load, and
//! report ratios and the cost of replication; `failover` must kill and
//! pause a leader, see a new one take writes, and bring the old one back.
//!
//! Not performance tests: figures are only checked to be measured
//! (positive, finite).

use std::path::PathBuf;
use std::process::Command;

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

fn zk_server() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let built = Command::new(cargo)
        .args(["build", "-p", "server"])
        .current_dir(workspace())
        .status()
        .expect("run cargo build");
    assert!(built.success(), "zk-server did not build");
    workspace().join("target/debug/zk-server")
}

fn run_json(args: &[&str], dir: &std::path::Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_zk-bench"))
        .args(args)
        .arg("--zk-server")
        .arg(zk_server())
        .arg("--dir")
        .arg(dir)
        .arg("--json")
        .output()
        .expect("run zk-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON {e}: {stdout}"))
}

/// `compare --ensemble 3 --with-standalone` with the given workloads; checks
/// the rows, the per-size ratios and the cost-of-replication table.
fn compare_ensemble_and_standalone(workloads: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run_json(
        &[
            "compare",
            "--targets",
            "zk-server",
            "--ensemble",
            "3",
            "--with-standalone",
            "--pairs",
            "1",
            "--workloads",
            workloads,
            "--duration",
            "0.5s",
            "--warmup",
            "0s",
            "--connections",
            "6",
            "--inflight",
            "4",
            "--keys",
            "100",
        ],
        &dir.path().join("runs"),
    );
    let count = workloads.split(',').count();
    let rows = report["throughput"].as_array().expect("throughput rows");
    assert_eq!(rows.len(), 2 * count, "{report}");
    let nodes: Vec<u64> = rows.iter().filter_map(|r| r["nodes"].as_u64()).collect();
    assert_eq!(nodes, [3, 1].repeat(count), "{report}");
    for row in rows {
        positive(&row["median"]["ops_per_sec"], "median ops/s");
        // Each is its own size's baseline.
        assert_eq!(row["ratio"]["ops_per_sec"], 1.0, "{row}");
    }
    let cost = report["replication"].as_array().expect("replication rows");
    assert_eq!(cost.len(), count, "{report}");
    for row in cost {
        positive(&row["ratio"]["ops_per_sec"], "replication ratio");
    }
    assert!(report.get("big_tree").is_none(), "{report}");
    assert!(!dir.path().join("runs").exists(), "--dir left behind");
}

/// A 3-node ensemble beside a standalone server, every workload. (It once
/// found fresh sessions answered SessionExpired: the leader tracked a
/// learner's new session only once it applied it.)
#[test]
fn compare_runs_an_ensemble_beside_a_standalone_server() {
    compare_ensemble_and_standalone("read,mixed,write");
}

#[test]
fn failover_kills_and_pauses_the_leader_and_measures_both() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run_json(
        &[
            "failover",
            "--targets",
            "zk-server",
            "--kills",
            "1",
            "--pauses",
            "1",
            "--steady",
            "0.5s",
            "--writers",
            "3",
        ],
        &dir.path().join("runs"),
    );
    let targets = report["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 1, "{report}");
    let row = &targets[0];
    let rounds = row["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2, "{report}");
    for round in rounds {
        assert_ne!(round["old_leader"], round["new_leader"], "{round}");
        positive(&round["election_ms"], "election");
        positive(&round["unavailable_ms"], "unavailable");
        positive(&round["rejoin_ms"], "rejoin");
    }
    for action in ["kill", "pause"] {
        assert_eq!(row[action]["rounds"], 1, "{row}");
        positive(&row[action]["election_ms"]["max"], "max election");
    }
    positive(&row["writes"], "writes");
    assert!(row["false_elections"].is_u64(), "{row}");
    assert!(!dir.path().join("runs").exists(), "--dir left behind");
}
