//! `zk-bench`: a pipelined ZooKeeper load generator. It speaks the wire
//! protocol itself through `net::proto` (no client library), so it measures
//! the server rather than a client's threading. Works against Apache
//! ZooKeeper and `zk-server` alike.
//!
//! Not here: the workloads' mechanics (`run.rs`) and the socket (`conn.rs`).
//! This file parses arguments and prints the report.
//!
//! Invariant: a run with any failed request (by ZooKeeper error code, or a
//! lost connection counted as ConnectionLoss) prints a loud ERROR line and
//! exits 1, so scripts cannot mistake a broken run for a fast one.

mod compare;
mod failover;
mod run;

use benches::{cluster, conn, parse_duration};

use clap::{Parser, Subcommand};
use engine::types::ErrorCode;
use run::{Outcome, Plan, Workload};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

/// Pipelined ZooKeeper load generator.
#[derive(Parser, Debug)]
#[command(name = "zk-bench", version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Server address, host:port; several (repeated or comma-separated,
    /// a connect string) spread the connections over them round-robin.
    #[arg(long, default_value = "127.0.0.1:2181", value_delimiter = ',')]
    server: Vec<String>,
    /// Client connections (one session and one thread each).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Requests kept in flight per connection.
    #[arg(long, default_value_t = 32)]
    inflight: usize,
    #[arg(long, value_enum, default_value = "read")]
    workload: Workload,
    /// Number of /bench/k<i> keys.
    #[arg(long, default_value_t = 10000)]
    keys: usize,
    /// Bytes of data per key and per write.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Measured time (after warmup), e.g. 10s, 500ms, 2m. Ignored with --ops.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many measured ops instead of after --duration.
    #[arg(long)]
    ops: Option<u64>,
    /// Unmeasured time before the measured window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// mixed: reads per write.
    #[arg(long, default_value_t = 10)]
    read_ratio: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Do not create /bench and its keys first.
    #[arg(long)]
    no_setup: bool,
    /// Delete what this tool created under /bench afterwards.
    #[arg(long)]
    cleanup: bool,
    /// Speak TLS (to a secureClientPort), trusting the CA certificates in
    /// this PEM file.
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// The client certificate (PEM) to present, for ssl.clientAuth=need.
    #[arg(long, requires = "tls_ca")]
    tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// The name the server's certificate must carry.
    #[arg(long, default_value = "localhost")]
    tls_server_name: String,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Start the targets, run the same load against each in alternation,
    /// print medians and ratios (see benches/README.md).
    Compare(CompareArgs),
    /// Start an ensemble of each target, kill -9 and SIGSTOP its leader
    /// under write load, measure election time and write unavailability
    /// (see benches/README.md).
    Failover(FailoverArgs),
}

/// How `compare` and `failover` run the servers.
#[derive(clap::Args, Debug)]
struct LaunchArgs {
    /// zk-server binary; default: the one beside this zk-bench.
    #[arg(long)]
    zk_server: Option<std::path::PathBuf>,
    #[arg(long, default_value = compare::DEBIAN_ZOOKEEPER_JAR)]
    zookeeper_jar: std::path::PathBuf,
    #[arg(long, default_value = "java")]
    java: String,
    /// Extra JVM options for Apache ZooKeeper, space-separated (e.g. "-Xmx2g").
    #[arg(long, default_value = "")]
    jvm_flags: String,
}

impl LaunchArgs {
    fn launch(self) -> cluster::Launch {
        cluster::Launch {
            zk_server: self.zk_server.unwrap_or_else(|| {
                std::env::current_exe()
                    .map(|exe| exe.with_file_name("zk-server"))
                    .unwrap_or_else(|_| "zk-server".into())
            }),
            zookeeper_jar: self.zookeeper_jar,
            java: self.java,
            jvm_flags: self
                .jvm_flags
                .split_whitespace()
                .map(String::from)
                .collect(),
        }
    }
}

#[derive(clap::Args, Debug)]
struct FailoverArgs {
    /// Comma-separated: zk-server, zk-server-rocksdb, zk-server-linearizable, zookeeper.
    #[arg(long, default_value = "zk-server,zookeeper", value_delimiter = ',')]
    targets: Vec<String>,
    /// Nodes per ensemble.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Rounds that kill -9 the leader.
    #[arg(long, default_value_t = 5)]
    kills: usize,
    /// Rounds that SIGSTOP the leader (SIGCONT once writes succeed again).
    #[arg(long, default_value_t = 3)]
    pauses: usize,
    /// Writer sessions, round-robin over the nodes, one setData at a time.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Steady write load before each round and after the last.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    steady: Duration,
    /// A writer whose request takes longer starts a new session on the
    /// next node.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    request_timeout: Duration,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Keep --dir afterwards (logs and data).
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    launch: LaunchArgs,
    #[arg(long)]
    json: bool,
}

fn parse_targets(names: &[String]) -> Result<Vec<compare::Kind>, String> {
    let targets = names
        .iter()
        .map(|t| compare::Kind::parse(t.trim()))
        .collect::<Result<Vec<_>, String>>()?;
    if targets.is_empty() {
        return Err("--targets is empty".to_string());
    }
    Ok(targets)
}

fn failover_main(args: FailoverArgs) -> ExitCode {
    let targets = match parse_targets(&args.targets) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::from(2);
        }
    };
    if args.nodes < 3 {
        eprintln!("ERROR: --nodes must be at least 3 (a quorum that survives a leader)");
        return ExitCode::from(2);
    }
    let settings = failover::Settings {
        targets,
        nodes: args.nodes,
        kills: args.kills,
        pauses: args.pauses,
        writers: args.writers.max(1),
        steady: args.steady,
        request_timeout: args.request_timeout.max(Duration::from_millis(10)),
        value_size: args.value_size,
        dir: args.dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("zk-bench-failover-{}", std::process::id()))
        }),
        keep: args.keep,
        launch: args.launch.launch(),
        json: args.json,
    };
    match failover::failover(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: failover failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Args, Debug)]
struct CompareArgs {
    /// Comma-separated: zk-server, zk-server-rocksdb, zk-server-linearizable, zookeeper.
    #[arg(long, default_value = "zk-server,zookeeper", value_delimiter = ',')]
    targets: Vec<String>,
    /// Ratios are over this target's medians (default: zookeeper if a
    /// target, else the last target).
    #[arg(long)]
    baseline: Option<String>,
    /// Nodes per target: 1 runs each standalone, 3 or 5 an ensemble
    /// (connections round-robin over its nodes).
    #[arg(long, default_value_t = 1)]
    ensemble: usize,
    /// With --ensemble > 1, also run each target standalone: the cost of
    /// replication, same load.
    #[arg(long)]
    with_standalone: bool,
    /// Rounds; each target runs each workload once per round.
    #[arg(long, default_value_t = 3)]
    pairs: usize,
    /// Comma-separated workloads for the throughput phase.
    #[arg(
        long,
        value_enum,
        default_value = "read,mixed,write",
        value_delimiter = ','
    )]
    workloads: Vec<Workload>,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    #[arg(long, default_value_t = 32)]
    inflight: usize,
    #[arg(long, default_value_t = 10000)]
    keys: usize,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Measured time of each throughput run.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Znodes for the memory / restart / snapshot phases; 0 skips them.
    #[arg(long, default_value_t = 1_000_000)]
    big_tree: usize,
    /// Length of the write-only run with snapshots; 0s skips it.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    snapshot_run: Duration,
    /// snapCount during the snapshot run (both servers start a snapshot
    /// every snapCount/2..snapCount txns).
    #[arg(long, default_value_t = 1_000_000)]
    snap_count: u64,
    /// Where the servers keep their data (one filesystem for all);
    /// default: a new directory under the system temp dir.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Keep --dir afterwards (logs and data).
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    launch: LaunchArgs,
    #[arg(long)]
    json: bool,
}

fn compare_main(args: CompareArgs) -> ExitCode {
    let targets = match parse_targets(&args.targets) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::from(2);
        }
    };
    let baseline = match args.baseline.as_deref().map(compare::Kind::parse) {
        Some(Ok(kind)) if targets.contains(&kind) => kind,
        Some(Ok(kind)) => {
            eprintln!("ERROR: baseline {} is not one of the targets", kind.name());
            return ExitCode::from(2);
        }
        Some(Err(e)) => {
            eprintln!("ERROR: {e}");
            return ExitCode::from(2);
        }
        None if targets.contains(&compare::Kind::Reference) => compare::Kind::Reference,
        None => targets[targets.len() - 1],
    };
    let settings = compare::Settings {
        targets,
        baseline,
        ensemble: args.ensemble.max(1),
        with_standalone: args.with_standalone,
        pairs: args.pairs.max(1),
        workloads: args.workloads,
        connections: args.connections.max(1),
        inflight: args.inflight.max(1),
        keys: args.keys.max(1),
        value_size: args.value_size,
        duration: args.duration,
        warmup: args.warmup,
        big_tree: args.big_tree,
        snapshot_run: args.snapshot_run,
        snap_count: args.snap_count.max(2),
        dir: args.dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("zk-bench-compare-{}", std::process::id()))
        }),
        keep: args.keep,
        launch: args.launch.launch(),
        json: args.json,
    };
    match compare::compare(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: compare failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// "10s", "250ms", "2m", "1.5s" or a bare number of seconds.
fn error_name(code: i32) -> String {
    match ErrorCode::from_code(code) {
        Some(c) => format!("{c:?}({code})"),
        None => format!("code{code}"),
    }
}

fn ms(hist: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    hist.value_at_quantile(q) as f64 / 1000.0
}

fn report_json(plan: &Plan, out: &Outcome) -> serde_json::Value {
    let errors: serde_json::Map<String, serde_json::Value> = out
        .errors
        .iter()
        .map(|(code, n)| (code.to_string(), serde_json::Value::from(*n)))
        .collect();
    serde_json::json!({
        "workload": plan.workload.name(),
        "server": plan.server,
        "connections": plan.connections,
        "inflight": plan.inflight,
        "keys": plan.keys,
        "value_size": plan.value_size,
        "ops": out.ops,
        "seconds": out.seconds,
        "ops_per_sec": ops_per_sec(out),
        "p50_ms": ms(&out.hist, 0.5),
        "p90_ms": ms(&out.hist, 0.9),
        "p99_ms": ms(&out.hist, 0.99),
        "p999_ms": ms(&out.hist, 0.999),
        "max_ms": out.hist.max() as f64 / 1000.0,
        "errors": errors,
    })
}

fn ops_per_sec(out: &Outcome) -> f64 {
    if out.seconds > 0.0 {
        out.ops as f64 / out.seconds
    } else {
        0.0
    }
}

fn report_table(plan: &Plan, out: &Outcome) {
    let errors = if out.errors.is_empty() {
        "none".to_string()
    } else {
        out.errors
            .iter()
            .map(|(c, n)| format!("{}={n}", error_name(*c)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "{:<9} {:>9} {:>10} {:>7} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8}  errors",
        "workload", "conn×k", "ops", "secs", "ops/s", "p50ms", "p90ms", "p99ms", "p99.9ms", "maxms"
    );
    println!(
        "{:<9} {:>9} {:>10} {:>7.2} {:>11.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}  {}",
        plan.workload.name(),
        format!("{}×{}", plan.connections, plan.inflight),
        out.ops,
        out.seconds,
        ops_per_sec(out),
        ms(&out.hist, 0.5),
        ms(&out.hist, 0.9),
        ms(&out.hist, 0.99),
        ms(&out.hist, 0.999),
        out.hist.max() as f64 / 1000.0,
        errors
    );
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    match args.command.take() {
        Some(Sub::Compare(compare)) => return compare_main(compare),
        Some(Sub::Failover(failover)) => return failover_main(failover),
        None => {}
    }
    let workload = args.workload;
    let tls = match &args.tls_ca {
        None => None,
        Some(ca) => match conn::Tls::new(
            ca,
            args.tls_cert.as_deref(),
            args.tls_key.as_deref(),
            &args.tls_server_name,
        ) {
            Ok(tls) => Some(tls),
            Err(error) => {
                eprintln!("zk-bench: TLS: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let plan = Plan {
        server: args.server.join(","),
        connections: args.connections.max(1),
        // Sessions and watch are request/response by nature.
        inflight: match workload {
            Workload::Sessions | Workload::Watch => 1,
            _ => args.inflight.max(1),
        },
        workload,
        keys: args.keys.max(1),
        value_size: args.value_size,
        duration: args.duration,
        ops: args.ops,
        warmup: args.warmup,
        read_ratio: args.read_ratio,
        progress: run::Progress::for_stderr(),
        timeline: false,
        tls,
    };
    let mut setup_errors = BTreeMap::new();
    if !args.no_setup {
        match run::setup(&plan) {
            Ok(errors) => setup_errors = errors,
            Err(e) => {
                eprintln!("ERROR: setup against {} failed: {e}", plan.server);
                return ExitCode::FAILURE;
            }
        }
    }
    if !setup_errors.is_empty() {
        let list: Vec<_> = setup_errors
            .iter()
            .map(|(c, n)| format!("{}={n}", error_name(*c)))
            .collect();
        eprintln!("ERROR: setup failed requests: {}", list.join(" "));
        return ExitCode::FAILURE;
    }
    let outcome = run::run(&plan);
    if args.json {
        println!("{}", report_json(&plan, &outcome));
    } else {
        report_table(&plan, &outcome);
    }
    let mut failed = !outcome.errors.is_empty();
    if failed {
        let total: u64 = outcome.errors.values().sum();
        eprintln!(
            "ERROR: {total} request(s) failed during the {} run; results are not valid",
            plan.workload.name()
        );
    }
    if args.cleanup {
        match run::cleanup(&plan) {
            Ok(errors) if errors.is_empty() => {}
            Ok(errors) => {
                eprintln!("ERROR: cleanup failed requests: {errors:?}");
                failed = true;
            }
            Err(e) => {
                eprintln!("ERROR: cleanup failed: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn error_names_are_readable() {
        assert_eq!(error_name(-101), "NoNode(-101)");
        assert_eq!(error_name(-9999), "code-9999");
    }
}
