//! End-to-end test of `zk-bench` against a real `zk-server`: every workload
//! runs for about a second with small numbers and must report ops and no
//! errors, in both output formats; a run with failing requests must exit 1.
//!
//! Not a performance test: the numbers are not checked, only that the tool
//! drives the server correctly. The server is `target/debug/zk-server`,
//! built first with `cargo build -p server` (it belongs to another package,
//! so `CARGO_BIN_EXE_` cannot name it).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const WORKLOADS: [&str; 8] = [
    "read", "mixed", "write", "churn", "multi", "watch", "sessions", "large",
];

/// Stops the server however the test ends.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds and starts zk-server; None (with a loud message) if it cannot be
/// built outside CI.
fn start_server() -> Option<Server> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let built = Command::new(cargo)
        .args(["build", "-p", "server"])
        // The same features as the workspace build CI runs, so the binary
        // the Python suite uses later is not rebuilt without RocksDB.
        .args(if cfg!(feature = "rocksdb") {
            &["--features", "rocksdb"][..]
        } else {
            &[][..]
        })
        .current_dir(workspace())
        .status();
    let binary = workspace().join("target/debug/zk-server");
    if !matches!(built, Ok(s) if s.success()) || !binary.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "zk-server could not be built"
        );
        eprintln!("!!!!! SKIPPING zk-bench integration test: no {binary:?} !!!!!");
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write zoo.cfg");
    let child = Command::new(binary)
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start zk-server");
    let server = Server {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "zk-server did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(server)
}

fn bench(server: &Server, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zk-bench"))
        .args([
            "--server",
            &format!("127.0.0.1:{}", server.port),
            "--connections",
            "4",
            "--inflight",
            "4",
            "--warmup",
            "0s",
        ])
        .args(extra)
        .args(if extra.contains(&"--keys") {
            &[][..]
        } else {
            &["--keys", "100"][..]
        })
        .output()
        .expect("run zk-bench")
}

#[test]
fn every_workload_runs_cleanly_against_zk_server() {
    let Some(server) = start_server() else {
        return;
    };
    for (i, workload) in WORKLOADS.iter().enumerate() {
        // Every workload once as JSON; the first also as the human table.
        let duration = if *workload == "large" { "0.5s" } else { "1s" };
        let mut args = vec!["--workload", workload, "--duration", duration, "--json"];
        if *workload == "large" {
            args.extend(["--value-size", "100000", "--keys", "8"]);
        }
        let out = bench(&server, &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{workload}: exit {:?}\n{stdout}\n{stderr}",
            out.status
        );
        let report: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{workload}: bad JSON {e}: {stdout}"));
        assert_eq!(report["workload"], *workload);
        assert!(
            report["ops"].as_u64().unwrap_or(0) > 0,
            "{workload}: {report}"
        );
        assert_eq!(report["errors"], serde_json::json!({}), "{workload}");
        for field in [
            "ops_per_sec",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "p999_ms",
            "max_ms",
            "seconds",
        ] {
            assert!(report[field].is_number(), "{workload}: {field} in {report}");
        }
        if i == 0 {
            let out = bench(&server, &["--workload", workload, "--ops", "500"]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "table run: {stdout}");
            assert!(
                stdout.contains("p99.9ms") && stdout.contains("read"),
                "{stdout}"
            );
        }
    }
    // Cleanup removes /bench; reading keys that are gone must fail loudly.
    let out = bench(&server, &["--workload", "read", "--ops", "10", "--cleanup"]);
    assert!(out.status.success());
    let out = bench(
        &server,
        &["--workload", "read", "--ops", "50", "--no-setup", "--json"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("ERROR"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert!(
        report["errors"]["-101"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
}
