//! `zk-bench compare`: the same load against several servers in one run,
//! alternating between them (A B A B ...), so a noisy machine slows every
//! target alike and the ratios stay meaningful. Targets are `zk-server` on
//! either storage backend and Apache ZooKeeper from Debian's `zookeeper`
//! package; this module starts and stops them itself, each on a free
//! loopback port with its data under one directory (one filesystem).
//!
//! Three phases:
//! 1. Throughput: each workload, `pairs` rounds, every target once a round.
//! 2. A big tree (`--big-tree` znodes of `--value-size` bytes): load time,
//!    resident memory after loading, bytes on disk, then `pairs` rounds of
//!    restart-to-serving (first successful getData of the last key) and
//!    resident memory after the restart.
//! 3. Snapshots under load: a write-only run on the big tree with
//!    `--snap-count` set, polling `mntr`'s `snapshottime` summary (the
//!    reference prints the same keys) to find when snapshots ran, and
//!    splitting the run's latencies into ops sent during one and outside.
//!
//! Not here: the load itself (`run.rs`). Nothing is installed: a missing
//! jar or binary is an error naming what to install or build.
//!
//! Invariant: every server this starts is stopped (SIGTERM, then SIGKILL)
//! however the run ends — `Target` kills its child on drop.

use crate::conn::Conn;
use crate::run::{self, Outcome, Plan, Sample, Workload};
use engine::request::Request;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The jar Debian's `zookeeper` package installs; its manifest's
/// `Class-Path` names the dependencies beside it.
pub const DEBIAN_ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// snapCount outside the snapshot phase: the reference's default, on both.
const DEFAULT_SNAP_COUNT: u64 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `zk-server` with `storage.backend=native`.
    Native,
    /// `zk-server` with `storage.backend=rocksdb`.
    Rocks,
    /// Apache ZooKeeper's `ZooKeeperServerMain`.
    Reference,
}

impl Kind {
    pub fn parse(name: &str) -> Result<Kind, String> {
        match name {
            "zk-server" | "native" => Ok(Kind::Native),
            "zk-server-rocksdb" | "rocksdb" => Ok(Kind::Rocks),
            "zookeeper" | "reference" => Ok(Kind::Reference),
            other => Err(format!(
                "unknown target {other:?}: use zk-server, zk-server-rocksdb or zookeeper"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Native => "zk-server",
            Kind::Rocks => "zk-server-rocksdb",
            Kind::Reference => "zookeeper",
        }
    }
}

/// Everything `compare` was asked to do.
#[derive(Clone, Debug)]
pub struct Settings {
    pub targets: Vec<Kind>,
    /// Ratios are each target's median over this one's.
    pub baseline: Kind,
    pub pairs: usize,
    pub workloads: Vec<Workload>,
    pub connections: usize,
    pub inflight: usize,
    pub keys: usize,
    pub value_size: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Znodes in phase 2's tree; 0 skips phases 2 and 3.
    pub big_tree: usize,
    /// Length of phase 3's write run; zero skips it.
    pub snapshot_run: Duration,
    pub snap_count: u64,
    pub dir: PathBuf,
    pub keep: bool,
    pub zk_server: PathBuf,
    pub zookeeper_jar: PathBuf,
    pub java: String,
    /// Extra JVM options for the reference (e.g. `-Xmx2g`); none by default.
    pub jvm_flags: Vec<String>,
    pub json: bool,
}

/// One server under test: its directory, config, port and process.
struct Target {
    kind: Kind,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Monotonic restarts, to keep each start's log.
    starts: u32,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Target {
    fn new(kind: Kind, root: &Path, index: usize) -> io::Result<Target> {
        let dir = root.join(format!("{index}-{}", kind.name()));
        std::fs::create_dir_all(&dir)?;
        Ok(Target {
            kind,
            dir,
            port: free_port()?,
            child: None,
            starts: 0,
        })
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The settings every target shares (fsync on, the reference's defaults
    /// otherwise), plus what this kind needs. Every target's AdminServer is
    /// off: a benchmark binds nothing but its client ports.
    fn write_config(&self, snap_count: u64) -> io::Result<PathBuf> {
        let mut cfg = format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
             clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nforceSync=yes\n\
             snapCount={snap_count}\n4lw.commands.whitelist=*\n\
             admin.enableServer=false\n",
            self.data_dir().display(),
            self.port
        );
        match self.kind {
            Kind::Native => cfg.push_str("storage.backend=native\n"),
            Kind::Rocks => cfg.push_str("storage.backend=rocksdb\n"),
            Kind::Reference => {}
        }
        let path = self.dir.join("zoo.cfg");
        std::fs::write(&path, cfg)?;
        Ok(path)
    }

    /// Starts the server (not waiting for it) and returns the spawn instant.
    fn start(&mut self, settings: &Settings, snap_count: u64) -> io::Result<Instant> {
        self.stop();
        let cfg = self.write_config(snap_count)?;
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("server-{}.log", self.starts)))?;
        let mut command = match self.kind {
            Kind::Native | Kind::Rocks => Command::new(&settings.zk_server),
            Kind::Reference => {
                let mut java = Command::new(&settings.java);
                java.args(&settings.jvm_flags)
                    .arg("-cp")
                    .arg(&settings.zookeeper_jar)
                    .arg("org.apache.zookeeper.server.ZooKeeperServerMain");
                java
            }
        };
        command
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let started = Instant::now();
        self.child = Some(command.spawn()?);
        Ok(started)
    }

    /// Waits until a session can read `path` (`None`: until one connects)
    /// and returns when it first could. A new attempt starts every 20 ms
    /// on its own thread rather than one after another: a server may
    /// accept a connection while still loading and leave it unanswered
    /// (Apache ZooKeeper does), and waiting out such an attempt would add
    /// its timeout to the figure. Stalled attempts end when the server
    /// answers, stops, or after `Conn`'s 30 s read timeout.
    fn wait_serving(&mut self, path: Option<&str>, limit: Duration) -> io::Result<Instant> {
        let deadline = Instant::now() + limit;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Instant>();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(io::Error::other(format!(
                        "{} exited during start-up ({status}); see {}",
                        self.kind.name(),
                        self.dir.display()
                    )));
                }
            }
            let address = self.address();
            let path = path.map(str::to_string);
            let ready_tx = ready_tx.clone();
            std::thread::spawn(move || {
                let ready = Conn::connect(&address, None).and_then(|mut conn| match path {
                    None => Ok(true),
                    Some(path) => Ok(conn.call(&Request::GetData { path, watch: false })? == 0),
                });
                if matches!(ready, Ok(true)) {
                    let _ = ready_tx.send(Instant::now());
                }
            });
            if let Ok(at) = ready_rx.recv_timeout(Duration::from_millis(20)) {
                return Ok(at);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} not serving after {limit:?}", self.kind.name()),
                ));
            }
        }
    }

    /// SIGTERM, then SIGKILL after 60 s.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: plain kill(2) on our own child's pid, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Resident set size of the server process, bytes.
    fn rss(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    }

    fn disk_bytes(&self) -> u64 {
        dir_size(&self.data_dir())
    }
}

/// Bytes allocated on disk under `path` (what `du` counts: preallocated
/// but sparse space is not charged).
fn dir_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// The `snapshottime` summary from `mntr`: (count, total ms).
fn snapshot_time(address: &str) -> io::Result<(u64, u64)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"mntr")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('\t'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    match (value("zk_cnt_snapshottime"), value("zk_sum_snapshottime")) {
        (Some(count), Some(total)) => Ok((count, total)),
        _ => Err(io::Error::other("mntr has no snapshottime summary")),
    }
}

/// When snapshots ran, in ms since `origin`, found by polling `mntr` every
/// 100 ms: a count that went up by one between two polls means a snapshot
/// of (sum delta) ms ended between them; it is placed ending at the
/// midpoint (±50 ms). Polls where two finished are split evenly.
struct SnapshotWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(f64, f64)>>,
}

impl SnapshotWatch {
    fn start(address: String, origin: Instant) -> SnapshotWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut windows = Vec::new();
            let mut last: Option<(Instant, u64, u64)> = None;
            while !flag.load(Ordering::Relaxed) {
                if let Ok((count, total)) = snapshot_time(&address) {
                    let now = Instant::now();
                    if let Some((then, count0, total0)) = last {
                        if count > count0 {
                            let n = (count - count0) as f64;
                            let each = total.saturating_sub(total0) as f64 / n;
                            let mid = (then + (now - then) / 2)
                                .saturating_duration_since(origin)
                                .as_secs_f64()
                                * 1000.0;
                            for i in 0..(count - count0) {
                                let end = mid - each * (n - 1.0 - i as f64);
                                windows.push((end - each, end));
                            }
                        }
                    }
                    last = Some((now, count, total));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            windows
        });
        SnapshotWatch { stop, thread }
    }

    fn finish(self) -> Vec<(f64, f64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        })
}

fn ms(outcome: &Outcome, q: f64) -> f64 {
    outcome.hist.value_at_quantile(q) as f64 / 1000.0
}

fn ops_per_sec(outcome: &Outcome) -> f64 {
    if outcome.seconds > 0.0 {
        outcome.ops as f64 / outcome.seconds
    } else {
        0.0
    }
}

/// A failure that makes the comparison invalid.
fn failed(what: &str, outcome: &Outcome) -> io::Result<()> {
    if outcome.errors.is_empty() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{what}: failed requests {:?} (error code → count)",
        outcome.errors
    )))
}

fn plan(settings: &Settings, server: String, workload: Workload, keys: usize) -> Plan {
    Plan {
        server,
        connections: settings.connections,
        inflight: match workload {
            Workload::Sessions | Workload::Watch => 1,
            _ => settings.inflight,
        },
        workload,
        keys,
        value_size: settings.value_size,
        duration: settings.duration,
        ops: None,
        warmup: settings.warmup,
        read_ratio: 10,
        progress: crate::run::Progress::Off,
        timeline: false,
        tls: None,
    }
}

fn setup(plan: &Plan) -> io::Result<()> {
    let errors = run::setup(plan)?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "setup of {} keys on {}: failed requests {errors:?}",
            plan.keys, plan.server
        )))
    }
}

/// Prints progress to stderr: phases take minutes.
fn say(message: impl std::fmt::Display) {
    eprintln!("[compare] {message}");
}

/// Runs the whole comparison; the report goes to stdout.
pub fn compare(settings: &Settings) -> io::Result<()> {
    check_installed(settings)?;
    std::fs::create_dir_all(&settings.dir)?;
    let mut targets = settings
        .targets
        .iter()
        .enumerate()
        .map(|(i, kind)| Target::new(*kind, &settings.dir, i))
        .collect::<io::Result<Vec<_>>>()?;
    let result = run_phases(settings, &mut targets);
    for target in &mut targets {
        target.stop();
    }
    drop(targets);
    if !settings.keep {
        let _ = std::fs::remove_dir_all(&settings.dir);
    }
    let report = result?;
    if settings.json {
        println!("{report}");
    } else {
        print!("{}", render(settings, &report));
    }
    Ok(())
}

fn check_installed(settings: &Settings) -> io::Result<()> {
    let ours = settings
        .targets
        .iter()
        .any(|k| matches!(k, Kind::Native | Kind::Rocks));
    if ours && !settings.zk_server.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no zk-server at {} (build it: cargo build --release -p server, with --features rocksdb for the RocksDB target, or pass --zk-server)",
                settings.zk_server.display()
            ),
        ));
    }
    if settings.targets.contains(&Kind::Reference) && !settings.zookeeper_jar.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no Apache ZooKeeper at {} (install Debian's package: apt-get install zookeeper default-jre-headless)",
                settings.zookeeper_jar.display()
            ),
        ));
    }
    Ok(())
}

fn run_phases(settings: &Settings, targets: &mut [Target]) -> io::Result<Value> {
    let mut report = json!({
        "settings": {
            "targets": settings.targets.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "baseline": settings.baseline.name(),
            "pairs": settings.pairs,
            "connections": settings.connections,
            "inflight": settings.inflight,
            "keys": settings.keys,
            "value_size": settings.value_size,
            "duration_s": settings.duration.as_secs_f64(),
            "warmup_s": settings.warmup.as_secs_f64(),
            "big_tree": settings.big_tree,
            "snap_count": settings.snap_count,
            "dir": settings.dir.display().to_string(),
            "jvm_flags": settings.jvm_flags,
        },
    });
    report["throughput"] = throughput_phase(settings, targets)?;
    if settings.big_tree > 0 {
        report["big_tree"] = big_tree_phase(settings, targets)?;
        if !settings.snapshot_run.is_zero() {
            report["snapshots"] = snapshot_phase(settings, targets)?;
        }
    }
    Ok(report)
}

/// Phase 1: every workload, `pairs` rounds, each target once per round.
fn throughput_phase(settings: &Settings, targets: &mut [Target]) -> io::Result<Value> {
    if settings.workloads.is_empty() {
        return Ok(json!([]));
    }
    for target in targets.iter_mut() {
        target.start(settings, DEFAULT_SNAP_COUNT)?;
        target.wait_serving(None, Duration::from_secs(120))?;
        setup(&plan(
            settings,
            target.address(),
            Workload::Read,
            settings.keys,
        ))?;
    }
    let mut rows = Vec::new();
    for workload in &settings.workloads {
        // runs[target] = one outcome per round
        let mut runs: Vec<Vec<Value>> = vec![Vec::new(); targets.len()];
        for round in 0..settings.pairs {
            for (i, target) in targets.iter().enumerate() {
                say(format_args!(
                    "{} round {}/{}: {}",
                    workload.name(),
                    round + 1,
                    settings.pairs,
                    target.kind.name()
                ));
                let outcome = run::run(&plan(settings, target.address(), *workload, settings.keys));
                failed(
                    &format!("{} on {}", workload.name(), target.kind.name()),
                    &outcome,
                )?;
                runs[i].push(json!({
                    "ops_per_sec": ops_per_sec(&outcome),
                    "p50_ms": ms(&outcome, 0.5),
                    "p99_ms": ms(&outcome, 0.99),
                    "p999_ms": ms(&outcome, 0.999),
                }));
            }
        }
        for (i, target) in targets.iter().enumerate() {
            rows.push(json!({
                "workload": workload.name(),
                "target": target.kind.name(),
                "runs": runs[i],
            }));
        }
    }
    for target in targets.iter_mut() {
        target.stop();
    }
    summarise(&mut rows, settings.baseline, &["workload"]);
    Ok(Value::Array(rows))
}

/// Adds `median`, `min`, `max` for each measure of `runs`, and the ratio of
/// each median to the baseline's row with the same `group` fields.
fn summarise(rows: &mut [Value], baseline: Kind, group: &[&str]) {
    for row in rows.iter_mut() {
        let runs = row["runs"].as_array().cloned().unwrap_or_default();
        let Some(first) = runs.first().and_then(Value::as_object) else {
            continue;
        };
        let measures: Vec<String> = first.keys().cloned().collect();
        for measure in measures {
            let values: Vec<f64> = runs.iter().filter_map(|r| r[&measure].as_f64()).collect();
            if values.is_empty() {
                continue;
            }
            let (lo, hi) = min_max(&values);
            row["median"][&measure] = json!(median(&values));
            row["min"][&measure] = json!(lo);
            row["max"][&measure] = json!(hi);
        }
    }
    let snapshot = rows.to_vec();
    for row in rows.iter_mut() {
        let base = snapshot.iter().find(|other| {
            other["target"] == baseline.name() && group.iter().all(|g| other[*g] == row[*g])
        });
        let Some(base) = base else { continue };
        let Some(medians) = row["median"].as_object().cloned() else {
            continue;
        };
        for (measure, value) in medians {
            put_ratio(row, &measure, &value, &base["median"][&measure]);
        }
    }
}

/// Sets `row.ratio.<key>` to ours / theirs when both are numbers and
/// theirs is positive.
fn put_ratio(row: &mut Value, key: &str, ours: &Value, theirs: &Value) {
    if let (Some(ours), Some(theirs)) = (ours.as_f64(), theirs.as_f64()) {
        if theirs > 0.0 {
            row["ratio"][key] = json!(ours / theirs);
        }
    }
}

/// Phase 2: load the big tree into each target in turn, then alternate
/// restarts.
fn big_tree_phase(settings: &Settings, targets: &mut [Target]) -> io::Result<Value> {
    let n = settings.big_tree;
    let last_key = run::key_path(n - 1);
    let mut loads = Vec::new();
    for target in targets.iter_mut() {
        // A fresh data directory: phase 1's data would change the sizes.
        let _ = std::fs::remove_dir_all(target.data_dir());
        say(format_args!(
            "loading {n} znodes into {}",
            target.kind.name()
        ));
        target.start(settings, DEFAULT_SNAP_COUNT)?;
        target.wait_serving(None, Duration::from_secs(120))?;
        let mut load = plan(settings, target.address(), Workload::Read, n);
        load.connections = load.connections.max(8);
        let started = Instant::now();
        setup(&load)?;
        let load_s = started.elapsed().as_secs_f64();
        // Let the last snapshot of the load finish before measuring.
        std::thread::sleep(Duration::from_secs(2));
        let rss = target.rss().unwrap_or(0);
        target.stop();
        loads.push(json!({
            "target": target.kind.name(),
            "load_s": load_s,
            "rss_after_load_bytes": rss,
            "disk_bytes": target.disk_bytes(),
            "runs": [],
        }));
    }
    for round in 0..settings.pairs {
        for (i, target) in targets.iter_mut().enumerate() {
            say(format_args!(
                "restart {}/{}: {}",
                round + 1,
                settings.pairs,
                target.kind.name()
            ));
            let spawned = target.start(settings, DEFAULT_SNAP_COUNT)?;
            let serving = target.wait_serving(Some(&last_key), Duration::from_secs(600))?;
            let serving_s = serving.saturating_duration_since(spawned).as_secs_f64();
            // Resident memory once the restart has settled.
            std::thread::sleep(Duration::from_secs(1));
            let rss = target.rss().unwrap_or(0) as f64;
            target.stop();
            if let Some(runs) = loads[i]["runs"].as_array_mut() {
                runs.push(json!({
                    "start_to_serving_s": serving_s,
                    "rss_after_restart_bytes": rss,
                }));
            }
        }
    }
    summarise(&mut loads, settings.baseline, &[]);
    // Single measurements become ratios too.
    let base = loads
        .iter()
        .find(|row| row["target"] == settings.baseline.name())
        .cloned();
    if let Some(base) = base {
        for row in loads.iter_mut() {
            for key in ["load_s", "rss_after_load_bytes", "disk_bytes"] {
                let ours = row[key].clone();
                put_ratio(row, key, &ours, &base[key]);
            }
        }
    }
    Ok(Value::Array(loads))
}

/// Phase 3: write-only on the big tree with snapshots due every
/// ~`snap_count` txns; latencies split by whether a snapshot was running
/// when the op was sent.
fn snapshot_phase(settings: &Settings, targets: &mut [Target]) -> io::Result<Value> {
    let mut rows = Vec::new();
    for target in targets.iter_mut() {
        say(format_args!(
            "write-only with snapshots ({} s): {}",
            settings.snapshot_run.as_secs(),
            target.kind.name()
        ));
        target.start(settings, settings.snap_count)?;
        target.wait_serving(None, Duration::from_secs(600))?;
        let mut write = plan(
            settings,
            target.address(),
            Workload::Write,
            settings.big_tree,
        );
        write.duration = settings.snapshot_run;
        write.timeline = true;
        let origin = Instant::now() + write.warmup;
        let watch = SnapshotWatch::start(target.address(), origin);
        let outcome = run::run(&write);
        // Catch a snapshot that ends just after the run.
        std::thread::sleep(Duration::from_millis(300));
        let windows = watch.finish();
        target.stop();
        failed(&format!("write-only on {}", target.kind.name()), &outcome)?;
        rows.push(split_by_windows(
            target.kind,
            &outcome,
            &windows,
            settings.snapshot_run,
        ));
    }
    Ok(Value::Array(rows))
}

/// Throughput and percentiles of the ops sent while a snapshot ran and of
/// the others.
fn split_by_windows(kind: Kind, outcome: &Outcome, windows: &[(f64, f64)], run: Duration) -> Value {
    let run_ms = run.as_secs_f64() * 1000.0;
    let inside = |sample: &Sample| {
        let t = f64::from(sample.sent_ms);
        windows.iter().any(|(from, to)| t >= *from && t < *to)
    };
    let clipped: Vec<(f64, f64)> = windows
        .iter()
        .map(|(from, to)| (from.max(0.0), to.min(run_ms)))
        .filter(|(from, to)| to > from)
        .collect();
    let during_ms: f64 = clipped.iter().map(|(from, to)| to - from).sum();
    let mut during = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant figures");
    let mut outside = during.clone();
    for sample in &outcome.samples {
        let hist = if inside(sample) {
            &mut during
        } else {
            &mut outside
        };
        let _ = hist.record(u64::from(sample.latency_us).max(1));
    }
    let side = |hist: &hdrhistogram::Histogram<u64>, span_ms: f64| {
        json!({
            "ops": hist.len(),
            "ops_per_sec": if span_ms > 0.0 { hist.len() as f64 / (span_ms / 1000.0) } else { 0.0 },
            "p50_ms": hist.value_at_quantile(0.5) as f64 / 1000.0,
            "p99_ms": hist.value_at_quantile(0.99) as f64 / 1000.0,
            "p999_ms": hist.value_at_quantile(0.999) as f64 / 1000.0,
        })
    };
    let durations: Vec<f64> = windows.iter().map(|(from, to)| to - from).collect();
    json!({
        "target": kind.name(),
        "snapshots": windows.len(),
        "snapshot_ms_median": median(&durations),
        "snapshot_share": if run_ms > 0.0 { during_ms / run_ms } else { 0.0 },
        "whole": {
            "ops_per_sec": ops_per_sec(outcome),
            "p99_ms": ms(outcome, 0.99),
        },
        "during": side(&during, during_ms),
        "outside": side(&outside, (run_ms - during_ms).max(0.0)),
    })
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn ratio(row: &Value, key: &str) -> String {
    match row["ratio"][key].as_f64() {
        Some(r) => format!("{r:.2}×"),
        None => "–".to_string(),
    }
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

/// The human report: one table per phase, medians with the spread
/// (min–max) over the rounds, ratios against the baseline.
fn render(settings: &Settings, report: &Value) -> String {
    let mut out = String::new();
    let base = settings.baseline.name();
    let _ = writeln!(
        out,
        "throughput: {} connections × {} in flight, {} keys, {}-byte values; {} rounds of {:.0}s (+{:.0}s warmup), targets alternating; medians (min–max); ratios over {base}",
        settings.connections,
        settings.inflight,
        settings.keys,
        settings.value_size,
        settings.pairs,
        settings.duration.as_secs_f64(),
        settings.warmup.as_secs_f64(),
    );
    let _ = writeln!(
        out,
        "{:<9} {:<18} {:>26} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "workload", "target", "ops/s (min–max)", "p50ms", "p99ms", "p99.9ms", "×ops/s", "×p99"
    );
    for row in report["throughput"].as_array().into_iter().flatten() {
        let med = &row["median"];
        let spread = format!(
            "{:.0} ({:.0}–{:.0})",
            num(&med["ops_per_sec"]),
            num(&row["min"]["ops_per_sec"]),
            num(&row["max"]["ops_per_sec"])
        );
        let _ = writeln!(
            out,
            "{:<9} {:<18} {:>26} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>8}",
            row["workload"].as_str().unwrap_or("?"),
            row["target"].as_str().unwrap_or("?"),
            spread,
            num(&med["p50_ms"]),
            num(&med["p99_ms"]),
            num(&med["p999_ms"]),
            ratio(row, "ops_per_sec"),
            ratio(row, "p99_ms"),
        );
    }
    if let Some(rows) = report["big_tree"].as_array() {
        let _ = writeln!(
            out,
            "\n{} znodes of {} bytes: load, memory, disk, and {} restarts (start to first getData of the last key), alternating; ratios over {base}",
            settings.big_tree, settings.value_size, settings.pairs
        );
        let _ = writeln!(
            out,
            "{:<18} {:>8} {:>14} {:>10} {:>26} {:>14} {:>8} {:>8}",
            "target",
            "load s",
            "RSS load MiB",
            "disk MiB",
            "start→serving s (min–max)",
            "RSS rst MiB",
            "×RSS",
            "×start"
        );
        for row in rows {
            let med = &row["median"];
            let spread = format!(
                "{:.2} ({:.2}–{:.2})",
                num(&med["start_to_serving_s"]),
                num(&row["min"]["start_to_serving_s"]),
                num(&row["max"]["start_to_serving_s"])
            );
            let _ = writeln!(
                out,
                "{:<18} {:>8.1} {:>14.0} {:>10.1} {:>26} {:>14.0} {:>8} {:>8}",
                row["target"].as_str().unwrap_or("?"),
                num(&row["load_s"]),
                mib(num(&row["rss_after_load_bytes"])),
                mib(num(&row["disk_bytes"])),
                spread,
                mib(num(&med["rss_after_restart_bytes"])),
                ratio(row, "rss_after_load_bytes"),
                ratio(row, "start_to_serving_s"),
            );
        }
    }
    if let Some(rows) = report["snapshots"].as_array() {
        let _ = writeln!(
            out,
            "\nwrite-only on the {}-znode tree for {:.0}s with snapCount={}: ops sent while a snapshot ran vs the others",
            settings.big_tree,
            settings.snapshot_run.as_secs_f64(),
            settings.snap_count
        );
        let _ = writeln!(
            out,
            "{:<18} {:>5} {:>9} {:>6} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
            "target",
            "snaps",
            "median ms",
            "share",
            "ops/s out",
            "ops/s during",
            "p50 out",
            "p50 during",
            "p99 out",
            "p99 during"
        );
        for row in rows {
            let _ = writeln!(
                out,
                "{:<18} {:>5} {:>9.0} {:>5.0}% {:>12.0} {:>12.0} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
                row["target"].as_str().unwrap_or("?"),
                row["snapshots"].as_u64().unwrap_or(0),
                num(&row["snapshot_ms_median"]),
                num(&row["snapshot_share"]) * 100.0,
                num(&row["outside"]["ops_per_sec"]),
                num(&row["during"]["ops_per_sec"]),
                num(&row["outside"]["p50_ms"]),
                num(&row["during"]["p50_ms"]),
                num(&row["outside"]["p99_ms"]),
                num(&row["during"]["p99_ms"]),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spread() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(min_max(&[3.0, 1.0, 2.0]), (1.0, 3.0));
    }

    #[test]
    fn ratios_are_against_the_baseline_of_the_same_workload() {
        let mut rows = vec![
            json!({"workload": "read", "target": "zk-server", "runs": [{"ops_per_sec": 300.0}, {"ops_per_sec": 100.0}, {"ops_per_sec": 200.0}]}),
            json!({"workload": "read", "target": "zookeeper", "runs": [{"ops_per_sec": 50.0}, {"ops_per_sec": 100.0}, {"ops_per_sec": 150.0}]}),
            json!({"workload": "write", "target": "zk-server", "runs": [{"ops_per_sec": 30.0}]}),
            json!({"workload": "write", "target": "zookeeper", "runs": [{"ops_per_sec": 10.0}]}),
        ];
        summarise(&mut rows, Kind::Reference, &["workload"]);
        assert_eq!(rows[0]["median"]["ops_per_sec"], 200.0);
        assert_eq!(rows[0]["min"]["ops_per_sec"], 100.0);
        assert_eq!(rows[0]["max"]["ops_per_sec"], 300.0);
        assert_eq!(rows[0]["ratio"]["ops_per_sec"], 2.0);
        assert_eq!(rows[1]["ratio"]["ops_per_sec"], 1.0);
        assert_eq!(rows[2]["ratio"]["ops_per_sec"], 3.0);
    }

    #[test]
    fn samples_split_by_snapshot_windows() {
        let mut hist = hdrhistogram::Histogram::<u64>::new(3).expect("hist");
        let mut samples = Vec::new();
        // 1000 ms run: ops every ms; slow (10 ms) inside 200..400, fast outside.
        for t in 0..1000u32 {
            let latency_us = if (200..400).contains(&t) {
                10_000
            } else {
                1_000
            };
            let _ = hist.record(u64::from(latency_us));
            samples.push(Sample {
                sent_ms: t,
                latency_us,
            });
        }
        let outcome = Outcome {
            ops: 1000,
            seconds: 1.0,
            hist,
            errors: Default::default(),
            samples,
        };
        let row = split_by_windows(
            Kind::Native,
            &outcome,
            &[(200.0, 400.0)],
            Duration::from_secs(1),
        );
        assert_eq!(row["snapshots"], 1);
        assert_eq!(row["during"]["ops"], 200);
        assert_eq!(row["outside"]["ops"], 800);
        assert!((num(&row["snapshot_share"]) - 0.2).abs() < 1e-9);
        assert!((num(&row["during"]["ops_per_sec"]) - 1000.0).abs() < 1e-6);
        assert!((num(&row["during"]["p99_ms"]) - 10.0).abs() < 0.1);
        assert!((num(&row["outside"]["p99_ms"]) - 1.0).abs() < 0.01);
    }
}
