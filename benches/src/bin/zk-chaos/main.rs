//! zk-chaos: fault injection on real processes with a linearizability
//! checker.
//!
//! Each run starts an ensemble of the real `zk-server` on loopback, drives
//! client workloads through the real protocol from several threads, injects
//! faults from a schedule drawn from the run's seed, records every
//! invocation and completion (ok, or unknown when the connection was lost
//! first), heals, and checks:
//!
//! - register: per key, the history of reads and writes is linearizable (a
//!   Wing–Gong search with Lowe's memo of visited states, bounded). Reads
//!   are `sync` + `getData` under `readConsistency=sequential` (what
//!   ZooKeeper offers for an up-to-date read) and plain `getData` under
//!   `linearizable`;
//! - set: unique creates; after healing, every member holds every
//!   acknowledged create and nothing never attempted;
//! - convergence: after healing, every member holds the same registers and
//!   set.
//!
//! The last line is `CHAOS runs=.. ok=.. anomalies=.. lost_acked=.. ...`; the
//! exit status is non-zero on any anomaly, and a failing run's directory
//! (server logs, history, schedule) is kept and named. The schedule comes
//! from the seed; the servers' own timing does not, so a seed replays the
//! faults, not every interleaving.

use benches::cluster::{self, Cluster, Kind, Launch};
use benches::conn::{create_request, Conn};
use benches::parse_duration;
use clap::Parser;
use engine::request::{Request, Response};
use engine::types::{ErrorCode, OpCode, Stat};
use net::proto::decode_reply;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod network;
mod session;
mod workloads;

use network::Network;
use workloads::{Holding, QueueLog};

const ROOT: &str = "/chaos";
/// How long a client waits for one answer before calling it lost.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// States the register search may visit per key before it gives up.
const CHECK_LIMIT: usize = 2_000_000;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "zk-chaos",
    about = "Faults on a real ensemble, with a linearizability checker"
)]
struct Args {
    /// Runs, each with its own seed (seed, seed + 1, ...).
    #[arg(long, default_value_t = 1)]
    runs: u64,
    /// The first run's seed; 0 picks one from the clock.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// native, rocksdb, or zookeeper: Apache ZooKeeper (the reference the
    /// harness itself is checked against; no disk faults or clock skew).
    #[arg(long, default_value = "native")]
    backend: String,
    /// Apache ZooKeeper's jar, for --backend zookeeper.
    #[arg(long, default_value = cluster::DEBIAN_ZOOKEEPER_JAR)]
    zookeeper_jar: PathBuf,
    #[arg(long, default_value = "java")]
    java: String,
    /// Each member's quorum tick runs at 100% ± up to this many percent of
    /// tickTime, drawn per run (test-only: needs a zk-server built with
    /// --features failpoints); 0 keeps every clock alike.
    #[arg(long, default_value_t = 40)]
    clock_skew: u32,
    /// sequential (ZooKeeper's reads) or linearizable.
    #[arg(long, default_value = "sequential")]
    read_consistency: String,
    /// Length of each run's fault phase.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Comma-separated: kill, kill-leader, kill-majority, pause,
    /// pause-leader, partition, partition-leader, bridge, one-way, slow,
    /// lossy, client-cut, disk.
    #[arg(
        long,
        default_value = "kill,kill-leader,kill-majority,pause,pause-leader,partition,partition-leader,bridge,one-way,slow,lossy,client-cut,disk"
    )]
    nemesis: String,
    /// Comma-separated: register, set, queue, lock, session; client
    /// threads take them in turn.
    #[arg(long, default_value = "register,set,queue,lock,session")]
    workload: String,
    /// Client threads.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Registers.
    #[arg(long, default_value_t = 3)]
    keys: usize,
    /// Most a client waits between two operations, ms.
    #[arg(long, default_value_t = 20)]
    think_ms: u64,
    /// Where runs keep their servers and histories; default: a new
    /// directory under the system temp dir. Passing runs are removed
    /// unless --keep.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    keep: bool,
    /// zk-server binary; default: the one beside this zk-chaos.
    #[arg(long)]
    zk_server: Option<PathBuf>,
    /// Self-test: node 1's applier lags this many ms per commit (needs a
    /// zk-server built with --features failpoints).
    #[arg(long, default_value_t = 0)]
    lag_node_ms: u64,
    /// Self-test: under sequential consistency, read without the `sync`
    /// first, which ZooKeeper does not promise to be linearizable.
    #[arg(long)]
    unsynced_reads: bool,
    /// Self-test: a broken ensemble whose leaders commit without a quorum
    /// (failpoint `commit-alone`; needs the failpoints): a deposed leader's
    /// acknowledged writes are lost, and the checks must say so.
    #[arg(long)]
    unsafe_commit_alone: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind2 {
    Read,
    Write,
    Create,
}

/// One operation: `end` None when its outcome is unknown (the connection
/// was lost before the answer).
#[derive(Clone, Debug)]
struct Op {
    client: usize,
    node: usize,
    kind: Kind2,
    /// Register index, or the set element's number for Create.
    key: usize,
    value: u64,
    start_us: u64,
    end_us: Option<u64>,
}

struct Shared {
    addresses: Vec<String>,
    epoch: Instant,
    stop: AtomicBool,
    history: Mutex<Vec<Op>>,
    session: Mutex<session::SessionReport>,
    queue: Mutex<QueueLog>,
    locks: Mutex<Vec<Holding>>,
    args: Args,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn linearizable(&self) -> bool {
        self.args.read_consistency == "linearizable"
    }
}

fn register_path(key: usize) -> String {
    format!("{ROOT}/reg{key}")
}

fn set_path(element: u64) -> String {
    format!("{ROOT}/set/e{element:016x}")
}

/// Calls and decodes; an I/O error is an unknown outcome.
fn call(conn: &mut Conn, op: OpCode, request: &Request) -> std::io::Result<(i32, Response)> {
    let code = conn.call(request)?;
    if code != 0 {
        return Ok((code, Response::Empty));
    }
    let (_, reply) = decode_reply(op, conn.body())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    Ok((code, reply.body))
}

fn parse_value(data: Option<Vec<u8>>) -> Option<u64> {
    std::str::from_utf8(&data?).ok()?.parse().ok()
}

/// The workload client thread `id` runs: the listed ones in turn.
fn workload_of(args: &Args, id: usize) -> &str {
    let workloads: Vec<&str> = args.workload.split(',').map(str::trim).collect();
    workloads[id % workloads.len()]
}

/// One client thread: operations until stopped, reconnecting to the next
/// member when a connection fails (a new session each time).
fn client(shared: Arc<Shared>, id: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let nodes = shared.addresses.len();
    let workload = workload_of(&shared.args, id).to_string();
    let mut node = id % nodes;
    let mut conn: Option<Conn> = None;
    let mut counter = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            match Conn::connect_timeout(&shared.addresses[node], OP_TIMEOUT, None) {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    node = (node + 1) % nodes;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            continue;
        };
        counter += 1;
        let key = rng.gen_range(0..shared.args.keys.max(1));
        let value = ((id as u64 + 1) << 40) | counter;
        let start_us = shared.now_us();
        let mut op = Op {
            client: id,
            node,
            kind: Kind2::Read,
            key,
            value: 0,
            start_us,
            end_us: None,
        };
        let outcome: std::io::Result<bool> = match workload.as_str() {
            "set" => {
                op.kind = Kind2::Create;
                op.key = value as usize;
                op.value = value;
                call(c, OpCode::Create, &create_request(set_path(value), vec![]))
                    .map(|(code, _)| code == 0)
            }
            _ if rng.gen_bool(0.5) => {
                op.kind = Kind2::Write;
                op.value = value;
                let request = Request::SetData {
                    path: register_path(key),
                    data: Some(value.to_string().into_bytes()),
                    version: -1,
                };
                call(c, OpCode::SetData, &request).map(|(code, _)| code == 0)
            }
            _ => {
                let synced = shared.linearizable() || shared.args.unsynced_reads || {
                    let sync = Request::Sync {
                        path: register_path(key),
                    };
                    matches!(call(c, OpCode::Sync, &sync), Ok((0, _)))
                };
                let get = Request::GetData {
                    path: register_path(key),
                    watch: false,
                };
                match synced.then(|| call(c, OpCode::GetData, &get)) {
                    Some(Ok((0, Response::GetData { data, .. }))) => match parse_value(data) {
                        Some(v) => {
                            op.value = v;
                            Ok(true)
                        }
                        None => Ok(false),
                    },
                    Some(Ok(_)) | None => Ok(false),
                    Some(Err(e)) => Err(e),
                }
            }
        };
        match outcome {
            Ok(true) => {
                op.end_us = Some(shared.now_us());
                shared.history.lock().unwrap().push(op);
            }
            // Answered with an error: it did not happen. A read that
            // failed tells nothing either way.
            Ok(false) => {
                conn = None;
                node = (node + 1) % nodes;
            }
            Err(_) => {
                // Lost: a write may still take effect, later or never.
                if op.kind != Kind2::Read {
                    shared.history.lock().unwrap().push(op);
                }
                conn = None;
                node = (node + 1) % nodes;
            }
        }
        if shared.args.think_ms > 0 {
            std::thread::sleep(Duration::from_millis(
                rng.gen_range(0..=shared.args.think_ms),
            ));
        }
    }
}

// ---- the register checker ---------------------------------------------------

/// One register operation for the search: reads and writes of values.
#[derive(Clone, Copy, Debug)]
struct RegOp {
    write: bool,
    value: u64,
    start: u64,
    /// u64::MAX for a write of unknown outcome.
    end: u64,
    required: bool,
}

/// Whether the register history is linearizable: some order of its
/// operations respecting real time (one that ended before another began
/// comes first) in which every read returns the latest write. Writes of
/// unknown outcome may take effect any time after they began, or never.
/// Err(states) when the search visited more than `limit` states.
fn linearizable(ops: &[RegOp], initial: u64, limit: usize) -> Result<bool, usize> {
    let mut ops = ops.to_vec();
    ops.sort_by_key(|o| o.start);
    let n = ops.len();
    let words = n.div_ceil(64).max(1);
    let mut required = vec![0u64; words];
    for (i, op) in ops.iter().enumerate() {
        if op.required {
            required[i / 64] |= 1 << (i % 64);
        }
    }
    let done = |mask: &[u64]| mask.iter().zip(&required).all(|(m, r)| m & r == *r);
    let taken = |mask: &[u64], i: usize| mask[i / 64] >> (i % 64) & 1 == 1;
    let first_open = |mask: &[u64]| {
        mask.iter()
            .position(|w| *w != u64::MAX)
            .map_or(n, |w| w * 64 + mask[w].trailing_ones() as usize)
    };
    let mut seen: HashSet<(Vec<u64>, u64)> = HashSet::new();
    let mut stack = vec![(vec![0u64; words], initial)];
    while let Some((mask, value)) = stack.pop() {
        if done(&mask) {
            return Ok(true);
        }
        if seen.contains(&(mask.clone(), value)) {
            continue;
        }
        if seen.len() >= limit {
            return Err(seen.len());
        }
        let lo = first_open(&mask);
        // The next one must begin before every open one has ended.
        let mut first_end = u64::MAX;
        let mut candidates = Vec::new();
        for (i, op) in ops.iter().enumerate().skip(lo) {
            if op.start > first_end {
                break;
            }
            if taken(&mask, i) {
                continue;
            }
            first_end = first_end.min(op.end);
            candidates.push(i);
        }
        for i in candidates {
            let op = ops[i];
            if op.start > first_end || (!op.write && op.value != value) {
                continue;
            }
            let mut next = mask.clone();
            next[i / 64] |= 1 << (i % 64);
            stack.push((next, if op.write { op.value } else { value }));
        }
        seen.insert((mask, value));
    }
    Ok(false)
}

fn reg_ops(history: &[Op], key: usize) -> Vec<(RegOp, Op)> {
    history
        .iter()
        .filter(|o| o.key == key && matches!(o.kind, Kind2::Read | Kind2::Write))
        .map(|o| {
            (
                RegOp {
                    write: o.kind == Kind2::Write,
                    value: o.value,
                    start: o.start_us,
                    end: o.end_us.unwrap_or(u64::MAX),
                    required: o.end_us.is_some(),
                },
                o.clone(),
            )
        })
        .collect()
}

/// The shortest prefix (by start time) that is already not linearizable,
/// its last operations printed: the smallest excerpt that shows it.
fn excerpt(ops: &[(RegOp, Op)]) -> String {
    let mut sorted = ops.to_vec();
    sorted.sort_by_key(|(r, _)| r.start);
    let fails = |n: usize| {
        let prefix: Vec<RegOp> = sorted[..n].iter().map(|(r, _)| *r).collect();
        linearizable(&prefix, 0, CHECK_LIMIT) == Ok(false)
    };
    let (mut lo, mut hi) = (0, sorted.len());
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if fails(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let mut out = String::new();
    for (_, op) in &sorted[hi.saturating_sub(12)..hi] {
        let _ = writeln!(out, "    {}", describe(op));
    }
    out
}

fn describe(op: &Op) -> String {
    let what = match op.kind {
        Kind2::Read => format!("read reg{} -> {:#x}", op.key, op.value),
        Kind2::Write => format!("write reg{} := {:#x}", op.key, op.value),
        Kind2::Create => format!("create e{:016x}", op.value),
    };
    let end = op
        .end_us
        .map_or("unknown".to_string(), |e| format!("{:.3}s", e as f64 / 1e6));
    format!(
        "client {} via node {}: {what}  [{:.3}s .. {end}]",
        op.client,
        op.node + 1,
        op.start_us as f64 / 1e6
    )
}

// ---- the nemesis --------------------------------------------------------------

/// Applies one fault and returns what undoes it.
enum Heal {
    Restart(Vec<usize>),
    Resume(Vec<usize>),
    Network,
    /// A node stopped with its data damaged: restart it; if it refuses to
    /// start, repair its directory with zk-snaprepair as an operator would.
    Disk(usize),
}

/// The data directory's files whose names start with `prefix`, by name
/// (zxid order).
fn data_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    files
}

/// Segments are preallocated: the written part ends at the last non-zero byte.
fn used(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Zeroes the last few written bytes of a log segment: a torn last write.
fn tear_tail(path: &Path, rng: &mut StdRng) -> std::io::Result<String> {
    let mut bytes = std::fs::read(path)?;
    let end = used(&bytes);
    let torn = rng.gen_range(1..=64usize).min(end);
    bytes[end - torn..end].fill(0);
    std::fs::write(path, &bytes)?;
    Ok(format!("tore the last {torn} bytes of {}", file_name(path)))
}

/// Damages a stopped node's native data directory one way, at random: a
/// torn log tail, a flipped byte in a segment or in the newest snapshot, or
/// the newest snapshot deleted (a torn tail where there is no snapshot yet).
fn damage(dir: &Path, rng: &mut StdRng) -> std::io::Result<String> {
    let logs = data_files(dir, "log.");
    let snapshots = data_files(dir, "snapshot.");
    let choice = match rng.gen_range(0..4) {
        2 | 3 if snapshots.is_empty() => 0,
        choice => choice,
    };
    match (choice, logs.last(), snapshots.last()) {
        (0, Some(last), _) => tear_tail(last, rng),
        (1, Some(_), _) => {
            let path = &logs[rng.gen_range(0..logs.len())];
            let mut bytes = std::fs::read(path)?;
            let end = used(&bytes);
            if end == 0 {
                return Ok(format!("left {} alone (empty)", file_name(path)));
            }
            let at = rng.gen_range(0..end);
            bytes[at] ^= 0x5a;
            std::fs::write(path, &bytes)?;
            Ok(format!(
                "flipped byte {at} of {} ({end} written)",
                file_name(path)
            ))
        }
        (2, _, Some(newest)) => {
            let mut bytes = std::fs::read(newest)?;
            let at = rng.gen_range(0..bytes.len().max(1));
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 0x5a;
            }
            std::fs::write(newest, &bytes)?;
            Ok(format!("flipped byte {at} of {}", file_name(newest)))
        }
        (3, _, Some(newest)) => {
            std::fs::remove_file(newest)?;
            Ok(format!("deleted {}", file_name(newest)))
        }
        _ => Ok("found nothing to damage".to_string()),
    }
}

fn leader_index(cluster: &Cluster) -> Option<usize> {
    cluster::settled_leader(&cluster.modes())
}

fn inject(
    cluster: &mut Cluster,
    network: &Network,
    rng: &mut StdRng,
    nemesis: &str,
    log: &mut Vec<String>,
    at: f64,
) -> Option<Heal> {
    let n = cluster.size();
    let pick = |rng: &mut StdRng| rng.gen_range(0..n);
    match nemesis {
        "kill" => {
            let i = pick(rng);
            cluster.nodes[i].kill();
            log.push(format!("{at:7.3}s kill -9 node {}", i + 1));
            Some(Heal::Restart(vec![i]))
        }
        "kill-leader" => {
            let i = leader_index(cluster)?;
            cluster.nodes[i].kill();
            log.push(format!("{at:7.3}s kill -9 node {} (the leader)", i + 1));
            Some(Heal::Restart(vec![i]))
        }
        "kill-majority" => {
            let mut all: Vec<usize> = (0..n).collect();
            for k in (1..all.len()).rev() {
                all.swap(k, rng.gen_range(0..=k));
            }
            all.truncate(n / 2 + 1);
            for &i in &all {
                cluster.nodes[i].kill();
            }
            let names: Vec<String> = all.iter().map(|i| (i + 1).to_string()).collect();
            log.push(format!(
                "{at:7.3}s kill -9 nodes {} (a majority)",
                names.join(",")
            ));
            Some(Heal::Restart(all))
        }
        "pause" => {
            let i = pick(rng);
            cluster.nodes[i].pause();
            log.push(format!("{at:7.3}s SIGSTOP node {}", i + 1));
            Some(Heal::Resume(vec![i]))
        }
        "pause-leader" => {
            let i = leader_index(cluster)?;
            cluster.nodes[i].pause();
            log.push(format!("{at:7.3}s SIGSTOP node {} (the leader)", i + 1));
            Some(Heal::Resume(vec![i]))
        }
        "partition" => {
            // Two sides at random, each side whole.
            let side: Vec<bool> = (0..n).map(|_| rng.gen_bool(0.5)).collect();
            for a in 0..n {
                for b in 0..n {
                    if side[a] != side[b] {
                        network.cut(a, b);
                    }
                }
            }
            let group = |s: bool| plus_one(&(0..n).filter(|&i| side[i] == s).collect::<Vec<_>>());
            log.push(format!(
                "{at:7.3}s partition {:?} | {:?}",
                group(true),
                group(false)
            ));
            Some(Heal::Network)
        }
        "partition-leader" => {
            let leader = leader_index(cluster)?;
            for other in (0..n).filter(|&i| i != leader) {
                network.cut(leader, other);
                network.cut(other, leader);
            }
            log.push(format!(
                "{at:7.3}s partition the leader, node {}, from the rest",
                leader + 1
            ));
            Some(Heal::Network)
        }
        "bridge" if n >= 3 => {
            // One member sees both halves, which do not see each other.
            let bridge = pick(rng);
            let others: Vec<usize> = (0..n).filter(|&i| i != bridge).collect();
            let (left, right) = others.split_at(others.len() / 2);
            for &a in left {
                for &b in right {
                    network.cut(a, b);
                    network.cut(b, a);
                }
            }
            log.push(format!(
                "{at:7.3}s bridge: {:?} | node {} | {:?}",
                plus_one(left),
                bridge + 1,
                plus_one(right)
            ));
            Some(Heal::Network)
        }
        "slow" => {
            let i = pick(rng);
            let ms = rng.gen_range(50..=400);
            network.slow(i, ms);
            log.push(format!(
                "{at:7.3}s every link of node {} {ms} ms slower",
                i + 1
            ));
            Some(Heal::Network)
        }
        "lossy" => {
            let i = pick(rng);
            network.lossy(i, 20, 5);
            log.push(format!(
                "{at:7.3}s the links of node {} stall (2%) and reset (0.5%) per chunk",
                i + 1
            ));
            Some(Heal::Network)
        }
        "client-cut" => {
            let i = pick(rng);
            network.cut_clients(i);
            log.push(format!(
                "{at:7.3}s clients cut off from node {} (peers still reach it)",
                i + 1
            ));
            Some(Heal::Network)
        }
        "one-way" => {
            // The leader still hears everyone, and nobody hears it.
            let leader = leader_index(cluster)?;
            for other in (0..n).filter(|&i| i != leader) {
                network.cut(leader, other);
            }
            log.push(format!(
                "{at:7.3}s one-way: nothing from the leader, node {}, arrives",
                leader + 1
            ));
            Some(Heal::Network)
        }
        "disk" => {
            if cluster.kind != Kind::Native {
                log.push(format!(
                    "{at:7.3}s disk faults need the native backend; skipped"
                ));
                return None;
            }
            let i = pick(rng);
            cluster.nodes[i].kill();
            let done = damage(&cluster.nodes[i].data_dir(), rng)
                .unwrap_or_else(|e| format!("could not damage its data: {e}"));
            log.push(format!("{at:7.3}s kill -9 node {}, then {done}", i + 1));
            Some(Heal::Disk(i))
        }
        other => {
            log.push(format!("{at:7.3}s unknown nemesis {other:?} skipped"));
            None
        }
    }
}

fn heal(
    cluster: &mut Cluster,
    network: &Network,
    launch: &Launch,
    heal: Heal,
    log: &mut Vec<String>,
    at: f64,
) -> Result<(), String> {
    match heal {
        Heal::Restart(nodes) => {
            for &i in &nodes {
                cluster
                    .start_node(i, launch, SNAP_COUNT)
                    .map_err(|e| format!("restart node {}: {e}", i + 1))?;
            }
            log.push(format!(
                "{at:7.3}s restart {nodes:?}",
                nodes = plus_one(&nodes)
            ));
        }
        Heal::Resume(nodes) => {
            for &i in &nodes {
                cluster.nodes[i].resume();
            }
            log.push(format!(
                "{at:7.3}s SIGCONT {nodes:?}",
                nodes = plus_one(&nodes)
            ));
        }
        Heal::Network => {
            network.heal();
            log.push(format!("{at:7.3}s network healed"));
        }
        Heal::Disk(i) => {
            let start = |cluster: &mut Cluster| {
                cluster
                    .start_node(i, launch, SNAP_COUNT)
                    .map_err(|e| format!("restart node {}: {e}", i + 1))
            };
            start(cluster)?;
            log.push(format!("{at:7.3}s restart [{}] on its damaged data", i + 1));
            // It recovers (and serves) or refuses to start; nothing else.
            let deadline = Instant::now() + Duration::from_secs(30);
            let refusal = loop {
                if let Some(refusal) = cluster.nodes[i].exited() {
                    break refusal;
                }
                if matches!(
                    cluster.nodes[i].mode().as_deref(),
                    Some("leader" | "follower")
                ) {
                    log.push(format!("        node {} recovered and serves", i + 1));
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "node {} neither serves nor exits on its damaged data",
                        i + 1
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            log.push(format!(
                "        node {} refused to start: {refusal}",
                i + 1
            ));
            let repair = std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|d| d.join("zk-snaprepair")))
                .unwrap_or_else(|| PathBuf::from("zk-snaprepair"));
            let output = std::process::Command::new(&repair)
                .args(["repair", "--apply"])
                .arg(cluster.nodes[i].data_dir())
                .output()
                .map_err(|e| format!("{}: {e}", repair.display()))?;
            let said = String::from_utf8_lossy(&output.stdout);
            let last = said.lines().last().unwrap_or("").to_string();
            log.push(format!(
                "        zk-snaprepair repair --apply: {} ({last})",
                output.status
            ));
            if !output.status.success() {
                // Nothing consistent is left: as an operator would, move the
                // data away (keeping myid) and let the member resync from
                // the others.
                let data = cluster.nodes[i].data_dir();
                let aside = data.with_extension(format!("damaged-{}", (at * 1000.0) as u64));
                std::fs::rename(&data, &aside)
                    .map_err(|e| format!("move {}: {e}", data.display()))?;
                std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
                let _ = std::fs::copy(aside.join("myid"), data.join("myid"));
                log.push(format!(
                    "        moved its data to {}; it resyncs",
                    aside.display()
                ));
            }
            start(cluster)?;
            cluster
                .wait_node_serving(i, None, Duration::from_secs(30))
                .map_err(|e| format!("node {} does not serve after zk-snaprepair: {e}", i + 1))?;
            log.push(format!("        node {} serves after the repair", i + 1));
        }
    }
    Ok(())
}

fn plus_one(nodes: &[usize]) -> Vec<usize> {
    nodes.iter().map(|i| i + 1).collect()
}

/// Small, so that snapshots (and purges) happen during a run.
const SNAP_COUNT: u64 = 2_000;

// ---- a run ----------------------------------------------------------------------

#[derive(Default, Debug)]
struct Report {
    ops: usize,
    reads: usize,
    writes: usize,
    creates: usize,
    unknown: usize,
    anomalies: Vec<String>,
    lost_acked: usize,
    unexpected: usize,
    undecided: usize,
    faults: usize,
    queue_ops: usize,
    lock_holds: usize,
    session_checks: u64,
    sessions_resumed: u64,
    sessions_expired: u64,
    availability: Availability,
}

/// How the ensemble served writes (register writes and set creates) while
/// faults came and went.
#[derive(Default, Debug, Clone)]
struct Availability {
    /// Acknowledged writes per second from the first fault to the healing.
    writes_per_s: f64,
    /// Per fault: the longest time without an acknowledged write from its
    /// injection to the next one's (or the healing), seconds.
    gaps: Vec<f64>,
}

fn availability(history: &[Op], injected: &[u64], healed_us: u64) -> Availability {
    let mut ends: Vec<u64> = history
        .iter()
        .filter(|o| o.kind != Kind2::Read)
        .filter_map(|o| o.end_us)
        .collect();
    ends.sort_unstable();
    let Some(&first) = injected.first() else {
        return Availability::default();
    };
    let acked = ends
        .iter()
        .filter(|&&e| e >= first && e < healed_us)
        .count();
    let gaps = injected
        .iter()
        .enumerate()
        .map(|(i, &from)| {
            let to = injected.get(i + 1).copied().unwrap_or(healed_us);
            let mut last = from;
            let mut longest = 0;
            for &e in ends.iter().filter(|&&e| e > from && e < to) {
                longest = longest.max(e - last);
                last = e;
            }
            longest.max(to.saturating_sub(last)) as f64 / 1e6
        })
        .collect();
    Availability {
        writes_per_s: acked as f64 / ((healed_us - first).max(1) as f64 / 1e6),
        gaps,
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// What one member holds under /chaos after healing: every znode's data
/// and stat, but for the lock recipe's (ephemeral, and so still going as
/// abandoned sessions expire).
#[derive(PartialEq, Eq, Debug)]
struct FinalState {
    tree: BTreeMap<String, (Option<Vec<u8>>, Stat)>,
}

impl FinalState {
    fn value(&self, path: &str) -> Option<u64> {
        self.tree
            .get(path)
            .and_then(|(data, _)| parse_value(data.clone()))
    }

    fn registers(&self, keys: usize) -> Vec<Option<u64>> {
        (0..keys).map(|k| self.value(&register_path(k))).collect()
    }

    /// The children of `dir`, by name.
    fn children<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.tree
            .range(format!("{dir}/")..)
            .map(|(path, _)| path.as_str())
            .take_while(move |path| path.strip_prefix(dir).is_some_and(|p| p.starts_with('/')))
            .filter_map(move |path| path.get(dir.len() + 1..))
            .filter(|name| !name.contains('/'))
    }

    fn set(&self) -> BTreeSet<String> {
        self.children(&format!("{ROOT}/set"))
            .map(str::to_string)
            .collect()
    }

    /// Queued items: child name → value.
    fn queue(&self) -> BTreeMap<String, Option<u64>> {
        let dir = workloads::queue_path();
        self.children(&dir)
            .map(|child| (child.to_string(), self.value(&format!("{dir}/{child}"))))
            .collect()
    }
}

/// Reads what one member holds under /chaos, after a sync there.
fn final_state(address: &str) -> Result<FinalState, String> {
    let mut conn =
        Conn::connect_timeout(address, Duration::from_secs(10), None).map_err(|e| e.to_string())?;
    let sync = Request::Sync {
        path: ROOT.to_string(),
    };
    call(&mut conn, OpCode::Sync, &sync).map_err(|e| e.to_string())?;
    let mut tree = BTreeMap::new();
    let mut todo = vec![ROOT.to_string()];
    while let Some(path) = todo.pop() {
        if path == workloads::lock_path() {
            continue;
        }
        let get = Request::GetData {
            path: path.clone(),
            watch: false,
        };
        match call(&mut conn, OpCode::GetData, &get).map_err(|e| e.to_string())? {
            (0, Response::GetData { data, stat }) => tree.insert(path.clone(), (data, stat)),
            (code, _) => return Err(format!("getData {path}: error {code}")),
        };
        let list = Request::GetChildren {
            path: path.clone(),
            watch: false,
        };
        match call(&mut conn, OpCode::GetChildren, &list).map_err(|e| e.to_string())? {
            (0, Response::GetChildren { children }) => {
                todo.extend(children.into_iter().map(|c| format!("{path}/{c}")))
            }
            (code, _) => return Err(format!("getChildren {path}: error {code}")),
        }
    }
    Ok(FinalState { tree })
}

fn backend(name: &str) -> Result<Kind, String> {
    match name {
        "native" => Ok(Kind::Native),
        "rocksdb" => Ok(Kind::Rocks),
        "zookeeper" => Ok(Kind::Reference),
        other => Err(format!(
            "unknown backend {other:?}: use native, rocksdb or zookeeper"
        )),
    }
}

const WORKLOADS: [&str; 5] = ["register", "set", "queue", "lock", "session"];

fn run_once(args: &Args, seed: u64, dir: &Path, launch: &Launch) -> Result<Report, String> {
    let kind = backend(&args.backend)?;
    let mut cluster = Cluster::new(kind, dir, 0, args.nodes).map_err(|e| e.to_string())?;
    let mut schedule = Vec::new();
    if kind.ours() {
        cluster.extra_config = format!("readConsistency={}\n", args.read_consistency);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0063_6c6f_636b);
        let mut ticks = Vec::new();
        for i in 0..cluster.size() {
            let mut failpoints = Vec::new();
            if i == 0 && args.lag_node_ms > 0 {
                failpoints.push(format!("applier-delay={}", args.lag_node_ms));
            }
            if args.unsafe_commit_alone {
                failpoints.push("commit-alone=unsafe".to_string());
            }
            if args.clock_skew > 0 {
                let skew = args.clock_skew.min(90) as i64;
                let percent = 100 + rng.gen_range(-skew..=skew);
                failpoints.push(format!("tick-percent={percent}"));
                ticks.push(format!("node {} {percent}%", i + 1));
            }
            if !failpoints.is_empty() {
                cluster
                    .node_env
                    .push((i, "ZK_FAILPOINTS".into(), failpoints.join(",")));
            }
        }
        if !ticks.is_empty() {
            schedule.push(format!("  0.000s quorum ticks: {}", ticks.join(", ")));
        }
    }
    let network = Network::start(&mut cluster, seed).map_err(|e| e.to_string())?;
    cluster
        .start(launch, SNAP_COUNT)
        .map_err(|e| e.to_string())?;
    cluster
        .wait_serving(None, Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    {
        let mut conn =
            Conn::connect_timeout(&cluster.nodes[0].address(), Duration::from_secs(10), None)
                .map_err(|e| e.to_string())?;
        let mut paths = vec![
            ROOT.to_string(),
            format!("{ROOT}/set"),
            workloads::queue_path(),
            workloads::lock_path(),
        ];
        paths.extend((0..args.keys).map(register_path));
        for path in paths {
            let code = conn
                .call(&create_request(path.clone(), b"0".to_vec()))
                .map_err(|e| e.to_string())?;
            if code != 0 {
                return Err(format!("create {path}: {:?}", ErrorCode::from_code(code)));
            }
        }
    }
    let shared = Arc::new(Shared {
        addresses: network.client_addresses(),
        epoch: Instant::now(),
        stop: AtomicBool::new(false),
        history: Mutex::new(Vec::new()),
        session: Mutex::new(session::SessionReport::default()),
        queue: Mutex::new(QueueLog::default()),
        locks: Mutex::new(Vec::new()),
        args: args.clone(),
    });
    let threads: Vec<_> = (0..args.clients)
        .map(|id| {
            let shared = Arc::clone(&shared);
            let seed = seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            std::thread::spawn(move || match workload_of(&shared.args, id) {
                "session" => {
                    session::client(&shared.addresses, id, seed, &shared.stop, &shared.session)
                }
                "queue" => workloads::queue_client(&shared, id, seed),
                "lock" => workloads::lock_client(&shared, id, seed),
                _ => client(shared, id, seed),
            })
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let nemeses: Vec<String> = args
        .nemesis
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut report = Report::default();
    let end = Instant::now() + args.duration;
    let mut failed = None;
    let mut injected = Vec::new();
    while Instant::now() < end && !nemeses.is_empty() {
        std::thread::sleep(Duration::from_millis(rng.gen_range(500..2000)));
        let at = shared.epoch.elapsed().as_secs_f64();
        let nemesis = &nemeses[rng.gen_range(0..nemeses.len())];
        let Some(undo) = inject(&mut cluster, &network, &mut rng, nemesis, &mut schedule, at)
        else {
            continue;
        };
        report.faults += 1;
        injected.push(shared.now_us());
        std::thread::sleep(Duration::from_millis(rng.gen_range(500..3000)));
        let at = shared.epoch.elapsed().as_secs_f64();
        if let Err(e) = heal(&mut cluster, &network, launch, undo, &mut schedule, at) {
            failed = Some(e);
            break;
        }
    }
    if nemeses.is_empty() {
        std::thread::sleep(args.duration);
    }
    // Every node up, then the workload stops and the checks begin.
    let at = shared.epoch.elapsed().as_secs_f64();
    let healed_us = shared.now_us();
    network.heal();
    schedule.push(format!("{at:7.3}s healed; clients stop"));
    let serving = cluster.wait_serving(None, Duration::from_secs(60));
    shared.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    std::fs::write(dir.join("schedule.txt"), schedule.join("\n") + "\n").ok();
    let history = std::mem::take(&mut *shared.history.lock().unwrap());
    write_history(&dir.join("history.txt"), &history);
    if let Some(e) = failed {
        report
            .anomalies
            .push(format!("the harness could not heal: {e}"));
    }
    if let Err(e) = serving {
        // The checks still run: the members that serve may show more.
        report
            .anomalies
            .push(format!("not serving after healing: {e}"));
    }
    report.ops = history.len();
    report.reads = history.iter().filter(|o| o.kind == Kind2::Read).count();
    report.writes = history.iter().filter(|o| o.kind == Kind2::Write).count();
    report.creates = history.iter().filter(|o| o.kind == Kind2::Create).count();
    report.unknown = history.iter().filter(|o| o.end_us.is_none()).count();
    report.availability = availability(&history, &injected, healed_us);

    // Registers: linearizable per key.
    for key in 0..args.keys {
        let ops = reg_ops(&history, key);
        let plain: Vec<RegOp> = ops.iter().map(|(r, _)| *r).collect();
        match linearizable(&plain, 0, CHECK_LIMIT) {
            Ok(true) => {}
            Ok(false) => report.anomalies.push(format!(
                "reg{key}: not linearizable ({} ops); the shortest failing prefix ends:\n{}",
                ops.len(),
                excerpt(&ops)
            )),
            Err(states) => {
                report.undecided += 1;
                eprintln!("[chaos] reg{key}: undecided after {states} states");
            }
        }
    }
    // Set and convergence: every member after healing.
    let acked: BTreeSet<String> = history
        .iter()
        .filter(|o| o.kind == Kind2::Create && o.end_us.is_some())
        .map(|o| format!("e{:016x}", o.value))
        .collect();
    let attempted: BTreeSet<String> = history
        .iter()
        .filter(|o| o.kind == Kind2::Create)
        .map(|o| format!("e{:016x}", o.value))
        .collect();
    let mut states = BTreeMap::new();
    for (i, address) in cluster.addresses().iter().enumerate() {
        match final_state(address) {
            Ok(state) => {
                let set = state.set();
                let lost: Vec<&String> = acked.difference(&set).collect();
                let unexpected: Vec<&String> = set.difference(&attempted).collect();
                if !lost.is_empty() {
                    report.lost_acked += lost.len();
                    report.anomalies.push(format!(
                        "node {}: {} acknowledged creates missing, e.g. {:?}",
                        i + 1,
                        lost.len(),
                        &lost[..lost.len().min(3)]
                    ));
                }
                if !unexpected.is_empty() {
                    report.unexpected += unexpected.len();
                    report.anomalies.push(format!(
                        "node {}: {} elements never attempted, e.g. {:?}",
                        i + 1,
                        unexpected.len(),
                        &unexpected[..unexpected.len().min(3)]
                    ));
                }
                states.insert(i, state);
            }
            Err(e) => report
                .anomalies
                .push(format!("node {}: final read failed: {e}", i + 1)),
        }
    }
    if let Some((_, first)) = states.iter().next() {
        for (i, state) in &states {
            if state != first {
                let differ: Vec<&String> = state
                    .tree
                    .iter()
                    .filter(|(path, node)| first.tree.get(*path) != Some(node))
                    .chain(
                        first
                            .tree
                            .iter()
                            .filter(|(p, _)| !state.tree.contains_key(*p)),
                    )
                    .map(|(path, _)| path)
                    .take(3)
                    .collect();
                report.anomalies.push(format!(
                    "node {} holds another tree than node 1 after healing ({} vs {} znodes; registers {:?} vs {:?}; differing e.g. {differ:?})",
                    i + 1,
                    state.tree.len(),
                    first.tree.len(),
                    state.registers(args.keys),
                    first.registers(args.keys),
                ));
            }
        }
        let queue = shared.queue.lock().unwrap();
        report.queue_ops = queue.ops();
        report
            .anomalies
            .extend(workloads::check_queue(&queue, &first.queue()));
    }
    let locks = shared.locks.lock().unwrap();
    report.lock_holds = locks.len();
    report.anomalies.extend(workloads::check_locks(&locks));
    let session = shared.session.lock().unwrap();
    report.session_checks = session.checks;
    report.sessions_resumed = session.resumed;
    report.sessions_expired = session.expired;
    report.anomalies.extend(session.anomalies.iter().cloned());
    if !report.anomalies.is_empty() {
        print_schedule(&schedule);
    }
    cluster.stop();
    Ok(report)
}

fn print_schedule(schedule: &[String]) {
    eprintln!("[chaos] nemesis schedule:");
    for line in schedule {
        eprintln!("    {line}");
    }
}

fn write_history(path: &Path, history: &[Op]) {
    let mut sorted: Vec<&Op> = history.iter().collect();
    sorted.sort_by_key(|o| o.start_us);
    if let Ok(mut file) = std::fs::File::create(path) {
        for op in sorted {
            let _ = writeln!(file, "{}", describe(op));
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    cluster::on_signal_kill_servers();
    let zk_server = args.zk_server.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("zk-server")))
            .unwrap_or_else(|| PathBuf::from("zk-server"))
    });
    let launch = Launch {
        zk_server,
        zookeeper_jar: args.zookeeper_jar.clone(),
        java: args.java.clone(),
        jvm_flags: Vec::new(),
    };
    let kind = match backend(&args.backend) {
        Ok(kind) => kind,
        Err(e) => {
            eprintln!("zk-chaos: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(unknown) = args
        .workload
        .split(',')
        .map(str::trim)
        .find(|w| !WORKLOADS.contains(w))
    {
        eprintln!(
            "zk-chaos: unknown workload {unknown:?}: use {}",
            WORKLOADS.join(", ")
        );
        return ExitCode::from(2);
    }
    if let Err(e) = launch.check(&[kind]) {
        eprintln!("zk-chaos: {e}");
        return ExitCode::from(2);
    }
    if !matches!(
        args.read_consistency.as_str(),
        "sequential" | "linearizable"
    ) {
        eprintln!("zk-chaos: --read-consistency is sequential or linearizable");
        return ExitCode::from(2);
    }
    let first_seed = if args.seed == 0 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    } else {
        args.seed
    };
    let out = args.out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("zk-chaos-{}-{first_seed}", std::process::id()))
    });
    let mut total = Report::default();
    let mut rates = Vec::new();
    let mut ok = 0;
    let mut kept = Vec::new();
    for run in 0..args.runs {
        let seed = first_seed + run;
        let dir = out.join(format!("run{run}-seed{seed}"));
        let _ = std::fs::create_dir_all(&dir);
        eprintln!(
            "[chaos] run {}/{} seed {seed}: {} nodes, {}, {} reads, {:?}, nemesis {}",
            run + 1,
            args.runs,
            args.nodes,
            args.backend,
            args.read_consistency,
            args.duration,
            args.nemesis
        );
        let report = match run_once(&args, seed, &dir, &launch) {
            Ok(report) => report,
            Err(e) => Report {
                anomalies: vec![format!("the run could not start: {e}")],
                ..Report::default()
            },
        };
        eprintln!(
            "[chaos] run {} seed {seed}: {} ops ({} reads, {} writes, {} creates, {} unknown), {} queue ops, {} lock holds, {} session checks ({} resumed, {} expired), {} faults, {} anomalies",
            run + 1,
            report.ops,
            report.reads,
            report.writes,
            report.creates,
            report.unknown,
            report.queue_ops,
            report.lock_holds,
            report.session_checks,
            report.sessions_resumed,
            report.sessions_expired,
            report.faults,
            report.anomalies.len()
        );
        eprintln!(
            "[chaos] run {} seed {seed}: {:.0} acknowledged writes/s under faults; longest write gap per fault: median {:.2}s, max {:.2}s",
            run + 1,
            report.availability.writes_per_s,
            median(&report.availability.gaps),
            report.availability.gaps.iter().copied().fold(0.0, f64::max)
        );
        for anomaly in &report.anomalies {
            eprintln!("[chaos] ANOMALY (seed {seed}): {anomaly}");
        }
        if report.anomalies.is_empty() {
            ok += 1;
            if !args.keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
        } else {
            eprintln!(
                "[chaos] kept {} (server logs, history.txt, schedule.txt)",
                dir.display()
            );
            kept.push(dir);
        }
        total.ops += report.ops;
        total.unknown += report.unknown;
        total.faults += report.faults;
        total.lost_acked += report.lost_acked;
        total.unexpected += report.unexpected;
        total.undecided += report.undecided;
        total.queue_ops += report.queue_ops;
        total.lock_holds += report.lock_holds;
        total.session_checks += report.session_checks;
        rates.push(report.availability.writes_per_s);
        total.availability.gaps.extend(report.availability.gaps);
        total.anomalies.extend(report.anomalies);
    }
    if kept.is_empty() && !args.keep {
        let _ = std::fs::remove_dir_all(&out);
    }
    println!(
        "CHAOS runs={} ok={ok} anomalies={} lost_acked={} unexpected={} undecided={} ops={} unknown={} queue_ops={} lock_holds={} session_checks={} faults={} writes_per_s={:.0} gap_median_s={:.2} gap_max_s={:.2} seed={first_seed}",
        args.runs,
        total.anomalies.len(),
        total.lost_acked,
        total.unexpected,
        total.undecided,
        total.ops,
        total.unknown,
        total.queue_ops,
        total.lock_holds,
        total.session_checks,
        total.faults,
        median(&rates),
        median(&total.availability.gaps),
        total.availability.gaps.iter().copied().fold(0.0, f64::max)
    );
    if total.anomalies.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(value: u64, start: u64, end: u64) -> RegOp {
        RegOp {
            write: true,
            value,
            start,
            end,
            required: true,
        }
    }

    fn r(value: u64, start: u64, end: u64) -> RegOp {
        RegOp {
            write: false,
            ..w(value, start, end)
        }
    }

    #[test]
    fn the_checker_accepts_overlap_and_finds_stale_reads() {
        assert_eq!(
            linearizable(&[w(1, 0, 10), r(0, 1, 2), r(1, 3, 4)], 0, 1000),
            Ok(true)
        );
        assert_eq!(
            linearizable(&[w(1, 0, 10), r(1, 1, 2), r(0, 3, 4)], 0, 1000),
            Ok(false)
        );
        assert_eq!(linearizable(&[w(1, 0, 1), r(0, 2, 3)], 0, 1000), Ok(false));
        let lost = RegOp {
            end: u64::MAX,
            required: false,
            ..w(2, 5, 6)
        };
        assert_eq!(
            linearizable(&[w(1, 0, 1), lost, r(1, 7, 8), r(2, 9, 10)], 0, 1000),
            Ok(true)
        );
        assert_eq!(
            linearizable(&[w(1, 0, 1), lost, r(1, 7, 8)], 0, 1000),
            Ok(true)
        );
        assert_eq!(
            linearizable(&[w(1, 0, 1), lost, r(2, 7, 8), r(1, 9, 10)], 0, 1000),
            Ok(false)
        );
    }

    #[test]
    fn a_final_state_lists_the_children_of_a_directory_only() {
        let node = |data: &str| (Some(data.as_bytes().to_vec()), Stat::default());
        let tree = [
            "/chaos/set",
            "/chaos/set/e1",
            "/chaos/set/e2",
            "/chaos/set/e2/x",
            "/chaos/setx",
        ]
        .into_iter()
        .map(|p| (p.to_string(), node("7")))
        .collect();
        let state = FinalState { tree };
        assert_eq!(
            state.set(),
            BTreeSet::from(["e1".to_string(), "e2".to_string()])
        );
        assert_eq!(state.value("/chaos/set/e1"), Some(7));
        assert!(state.queue().is_empty());
    }

    #[test]
    fn the_checker_handles_long_sequential_histories() {
        let mut ops = Vec::new();
        for i in 0..5_000u64 {
            ops.push(w(i + 1, i * 10, i * 10 + 4));
            ops.push(r(i + 1, i * 10 + 5, i * 10 + 9));
        }
        assert_eq!(linearizable(&ops, 0, CHECK_LIMIT), Ok(true));
        ops.push(r(3, 60_000, 60_001));
        assert_eq!(linearizable(&ops, 0, CHECK_LIMIT), Ok(false));
    }
}
