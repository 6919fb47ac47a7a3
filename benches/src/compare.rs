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

pub use crate::cluster::Kind;
use crate::cluster::{Cluster, Launch};
use crate::run::{self, Outcome, Plan, Sample, Workload};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::cluster::DEBIAN_ZOOKEEPER_JAR;

/// snapCount outside the snapshot phase: the reference's default, on both.
const DEFAULT_SNAP_COUNT: u64 = 100_000;

/// Everything `compare` was asked to do.
#[derive(Clone, Debug)]
pub struct Settings {
    pub targets: Vec<Kind>,
    /// Ratios are each target's median over this one's (of the same size).
    pub baseline: Kind,
    /// Nodes per target: 1 is standalone, 3 or 5 an ensemble.
    pub ensemble: usize,
    /// With `ensemble` > 1, also run every target standalone (the cost of
    /// replication).
    pub with_standalone: bool,
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
    pub launch: Launch,
    pub json: bool,
}

type Target = Cluster;

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
    settings.launch.check(&settings.targets)?;
    std::fs::create_dir_all(&settings.dir)?;
    crate::cluster::on_signal_kill_servers();
    let mut sizes = vec![settings.ensemble.max(1)];
    if settings.with_standalone && settings.ensemble > 1 {
        sizes.push(1);
    }
    let mut targets = Vec::new();
    for size in &sizes {
        for kind in &settings.targets {
            let index = targets.len();
            targets.push(Target::new(*kind, &settings.dir, index, *size)?);
        }
    }
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

fn run_phases(settings: &Settings, targets: &mut [Target]) -> io::Result<Value> {
    let mut report = json!({
        "settings": {
            "targets": settings.targets.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "baseline": settings.baseline.name(),
            "ensemble": settings.ensemble,
            "with_standalone": settings.with_standalone,
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
            "jvm_flags": settings.launch.jvm_flags,
        },
    });
    report["throughput"] = throughput_phase(settings, targets)?;
    if settings.ensemble > 1 {
        report["replication"] = Value::Array(replication_cost(
            report["throughput"]
                .as_array()
                .map_or(&[][..], Vec::as_slice),
        ));
    }
    if settings.big_tree > 0 && settings.ensemble > 1 {
        say("the big-tree and snapshot phases run standalone only; skipped with --ensemble");
    } else if settings.big_tree > 0 {
        report["big_tree"] = big_tree_phase(settings, targets)?;
        if !settings.snapshot_run.is_zero() {
            report["snapshots"] = snapshot_phase(settings, targets)?;
        }
    }
    Ok(report)
}

/// Phase 1: every workload, `pairs` rounds, each target once per round.
/// Every target (all nodes of every ensemble) is up for the whole phase;
/// only the one under load does more than idle.
fn throughput_phase(settings: &Settings, targets: &mut [Target]) -> io::Result<Value> {
    if settings.workloads.is_empty() {
        return Ok(json!([]));
    }
    let last_key = run::key_path(settings.keys - 1);
    for target in targets.iter_mut() {
        say(format_args!("starting {}", target.label()));
        target.start(&settings.launch, DEFAULT_SNAP_COUNT)?;
        target.wait_serving(None, Duration::from_secs(120))?;
        setup(&plan(
            settings,
            target.connect_string(),
            Workload::Read,
            settings.keys,
        ))?;
        // Followers apply the setup's creates after the leader answered.
        target.wait_serving(Some(&last_key), Duration::from_secs(120))?;
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
                    target.label()
                ));
                let outcome = run::run(&plan(
                    settings,
                    target.connect_string(),
                    *workload,
                    settings.keys,
                ));
                failed(
                    &format!("{} on {}", workload.name(), target.label()),
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
                "nodes": target.size(),
                "label": target.label(),
                "runs": runs[i],
            }));
        }
    }
    for target in targets.iter_mut() {
        target.stop();
    }
    summarise(&mut rows, settings.baseline, &["workload", "nodes"]);
    Ok(Value::Array(rows))
}

/// The cost of replication: for every ensemble row of phase 1 that has a
/// standalone row of the same target and workload, the ensemble's medians
/// over the standalone's (ops/s below 1 is the throughput replication
/// costs; p99 above 1 the latency it adds).
fn replication_cost(rows: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for row in rows {
        if row["nodes"].as_u64().unwrap_or(1) <= 1 {
            continue;
        }
        let standalone = rows.iter().find(|other| {
            other["nodes"].as_u64() == Some(1)
                && other["target"] == row["target"]
                && other["workload"] == row["workload"]
        });
        let Some(standalone) = standalone else {
            continue;
        };
        let mut cost = json!({
            "workload": row["workload"],
            "target": row["target"],
            "nodes": row["nodes"],
            "ensemble": row["median"],
            "standalone": standalone["median"],
        });
        for key in ["ops_per_sec", "p50_ms", "p99_ms", "p999_ms"] {
            let ours = row["median"][key].clone();
            put_ratio(&mut cost, key, &ours, &standalone["median"][key]);
        }
        out.push(cost);
    }
    out
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
        target.remove_data();
        say(format_args!(
            "loading {n} znodes into {}",
            target.kind.name()
        ));
        target.start(&settings.launch, DEFAULT_SNAP_COUNT)?;
        target.wait_serving(None, Duration::from_secs(120))?;
        let mut load = plan(settings, target.connect_string(), Workload::Read, n);
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
            let spawned = target.start(&settings.launch, DEFAULT_SNAP_COUNT)?;
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
        target.start(&settings.launch, settings.snap_count)?;
        target.wait_serving(None, Duration::from_secs(600))?;
        let mut write = plan(
            settings,
            target.connect_string(),
            Workload::Write,
            settings.big_tree,
        );
        write.duration = settings.snapshot_run;
        write.timeline = true;
        let origin = Instant::now() + write.warmup;
        let watch = SnapshotWatch::start(target.connect_string(), origin);
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
        "throughput: {} connections × {} in flight{}, {} keys, {}-byte values; {} rounds of {:.0}s (+{:.0}s warmup), targets alternating; medians (min–max); ratios over {base} of the same size",
        settings.connections,
        settings.inflight,
        if settings.ensemble > 1 { ", round-robin over the nodes" } else { "" },
        settings.keys,
        settings.value_size,
        settings.pairs,
        settings.duration.as_secs_f64(),
        settings.warmup.as_secs_f64(),
    );
    let _ = writeln!(
        out,
        "{:<9} {:<20} {:>26} {:>8} {:>8} {:>8} {:>8} {:>8}",
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
            "{:<9} {:<20} {:>26} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>8}",
            row["workload"].as_str().unwrap_or("?"),
            row["label"].as_str().unwrap_or("?"),
            spread,
            num(&med["p50_ms"]),
            num(&med["p99_ms"]),
            num(&med["p999_ms"]),
            ratio(row, "ops_per_sec"),
            ratio(row, "p99_ms"),
        );
    }
    if let Some(rows) = report["replication"]
        .as_array()
        .filter(|rows| !rows.is_empty())
    {
        let _ = writeln!(
            out,
            "\nthe cost of replication: each ensemble's medians over the same target standalone, same load"
        );
        let _ = writeln!(
            out,
            "{:<9} {:<20} {:>12} {:>12} {:>8} {:>8} {:>8} {:>8}",
            "workload", "target", "ops/s ens", "ops/s alone", "×ops/s", "×p50", "×p99", "×p99.9"
        );
        for row in rows {
            let _ = writeln!(
                out,
                "{:<9} {:<20} {:>12.0} {:>12.0} {:>8} {:>8} {:>8} {:>8}",
                row["workload"].as_str().unwrap_or("?"),
                crate::cluster::label(
                    Kind::parse(row["target"].as_str().unwrap_or("?")).unwrap_or(Kind::Native),
                    usize::try_from(row["nodes"].as_u64().unwrap_or(1)).unwrap_or(1),
                ),
                num(&row["ensemble"]["ops_per_sec"]),
                num(&row["standalone"]["ops_per_sec"]),
                ratio(row, "ops_per_sec"),
                ratio(row, "p50_ms"),
                ratio(row, "p99_ms"),
                ratio(row, "p999_ms"),
            );
        }
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

    /// Each ensemble row is set against the standalone row of the same
    /// target and workload, and nothing else.
    #[test]
    fn replication_cost_is_ensemble_over_standalone() {
        let row = |workload: &str, target: &str, nodes: u64, ops: f64, p99: f64| {
            json!({"workload": workload, "target": target, "nodes": nodes,
                   "median": {"ops_per_sec": ops, "p99_ms": p99}})
        };
        let rows = vec![
            row("write", "zk-server", 3, 50.0, 4.0),
            row("write", "zookeeper", 3, 20.0, 9.0),
            row("write", "zk-server", 1, 100.0, 2.0),
            row("read", "zk-server", 1, 300.0, 1.0),
            row("read", "zk-server", 3, 600.0, 1.0),
        ];
        let cost = replication_cost(&rows);
        assert_eq!(cost.len(), 2, "zookeeper×3 has no standalone row: {cost:?}");
        assert_eq!(cost[0]["workload"], "write");
        assert_eq!(cost[0]["ratio"]["ops_per_sec"], 0.5);
        assert_eq!(cost[0]["ratio"]["p99_ms"], 2.0);
        assert_eq!(cost[1]["workload"], "read");
        assert_eq!(cost[1]["ratio"]["ops_per_sec"], 2.0);
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
