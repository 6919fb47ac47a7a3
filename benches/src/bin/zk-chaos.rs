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
use engine::types::{ErrorCode, OpCode};
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
    /// native or rocksdb.
    #[arg(long, default_value = "native")]
    backend: String,
    /// sequential (ZooKeeper's reads) or linearizable.
    #[arg(long, default_value = "sequential")]
    read_consistency: String,
    /// Length of each run's fault phase.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Comma-separated: kill, kill-leader, kill-majority, pause,
    /// pause-leader, partition, partition-leader, bridge, one-way, disk.
    #[arg(
        long,
        default_value = "kill,kill-leader,kill-majority,pause,pause-leader,partition,partition-leader,bridge,one-way,disk"
    )]
    nemesis: String,
    /// Comma-separated: register, set.
    #[arg(long, default_value = "register,set")]
    workload: String,
    /// Client threads.
    #[arg(long, default_value_t = 6)]
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

/// One client thread: operations until stopped, reconnecting to the next
/// member when a connection fails (a new session each time).
fn client(shared: Arc<Shared>, id: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let nodes = shared.addresses.len();
    let workloads: Vec<&str> = shared.args.workload.split(',').map(str::trim).collect();
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
        let workload = workloads[rng.gen_range(0..workloads.len())];
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
        let outcome: std::io::Result<bool> = match workload {
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

// ---- the network between members ------------------------------------------------

/// One peer link (the higher id dials the lower, so one TCP connection per
/// channel carries both directions) through a proxy of ours, which can stop
/// forwarding either direction: a partition, silent as a real one (no
/// connection is closed; the peers' failure detection must notice).
#[derive(Default)]
struct Link {
    /// Bytes from the dialer (higher index) to the listener are held.
    block_down: AtomicBool,
    /// Bytes from the listener back to the dialer are held.
    block_up: AtomicBool,
}

/// The proxies of every peer link, by (higher index, lower index).
struct Network {
    links: BTreeMap<(usize, usize), Arc<Link>>,
    stop: Arc<AtomicBool>,
}

impl Network {
    /// A proxy per link and channel; `cluster.peer_ports` points each
    /// dialer at them.
    fn start(cluster: &mut Cluster) -> std::io::Result<Network> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut links = BTreeMap::new();
        for high in 0..cluster.size() {
            for low in 0..high {
                let link = Arc::new(Link::default());
                let (quorum, election) = cluster.nodes[low].peer_ports();
                let mut local = [0u16; 2];
                for (slot, port) in [quorum, election].into_iter().enumerate() {
                    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
                    local[slot] = listener.local_addr()?.port();
                    let (link, stop) = (Arc::clone(&link), Arc::clone(&stop));
                    std::thread::spawn(move || proxy(listener, port, link, stop));
                }
                cluster.peer_ports.insert((high, low), (local[0], local[1]));
                links.insert((high, low), link);
            }
        }
        Ok(Network { links, stop })
    }

    fn link(&self, a: usize, b: usize) -> &Link {
        &self.links[&(a.max(b), a.min(b))]
    }

    /// Stops the bytes from `from` to `to`.
    fn cut(&self, from: usize, to: usize) {
        let link = self.link(from, to);
        if from > to {
            link.block_down.store(true, Ordering::Relaxed);
        } else {
            link.block_up.store(true, Ordering::Relaxed);
        }
    }

    fn heal(&self) {
        for link in self.links.values() {
            link.block_down.store(false, Ordering::Relaxed);
            link.block_up.store(false, Ordering::Relaxed);
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.heal();
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn proxy(listener: std::net::TcpListener, upstream: u16, link: Arc<Link>, stop: Arc<AtomicBool>) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        let down = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let _ = down.set_nonblocking(false);
        let Ok(up) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
            continue;
        };
        let _ = (down.set_nodelay(true), up.set_nodelay(true));
        for (from, to, upward) in [(&down, &up, false), (&up, &down, true)] {
            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                continue;
            };
            let (link, stop) = (Arc::clone(&link), Arc::clone(&stop));
            std::thread::spawn(move || pump(from, to, &link, upward, &stop));
        }
    }
}

/// Copies one direction, holding the bytes while that direction is cut.
fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    link: &Link,
    upward: bool,
    stop: &AtomicBool,
) {
    use std::io::Read as _;
    let blocked = if upward {
        &link.block_up
    } else {
        &link.block_down
    };
    let mut buf = vec![0u8; 64 << 10];
    loop {
        while blocked.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while blocked.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if stop.load(Ordering::Relaxed) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
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
}

/// Reads what one member holds under /chaos, after a sync there.
fn final_state(address: &str, keys: usize) -> Result<(Vec<Option<u64>>, BTreeSet<String>), String> {
    let mut conn =
        Conn::connect_timeout(address, Duration::from_secs(10), None).map_err(|e| e.to_string())?;
    let sync = Request::Sync {
        path: ROOT.to_string(),
    };
    call(&mut conn, OpCode::Sync, &sync).map_err(|e| e.to_string())?;
    let mut registers = Vec::new();
    for key in 0..keys {
        let get = Request::GetData {
            path: register_path(key),
            watch: false,
        };
        match call(&mut conn, OpCode::GetData, &get).map_err(|e| e.to_string())? {
            (0, Response::GetData { data, .. }) => registers.push(parse_value(data)),
            (code, _) => return Err(format!("getData reg{key}: error {code}")),
        }
    }
    let list = Request::GetChildren {
        path: format!("{ROOT}/set"),
        watch: false,
    };
    let children = match call(&mut conn, OpCode::GetChildren, &list).map_err(|e| e.to_string())? {
        (0, Response::GetChildren { children }) => children.into_iter().collect(),
        (code, _) => return Err(format!("getChildren: error {code}")),
    };
    Ok((registers, children))
}

fn run_once(args: &Args, seed: u64, dir: &Path, launch: &Launch) -> Result<Report, String> {
    let kind = match args.backend.as_str() {
        "native" => Kind::Native,
        "rocksdb" => Kind::Rocks,
        other => return Err(format!("unknown backend {other:?}: use native or rocksdb")),
    };
    let mut cluster = Cluster::new(kind, dir, 0, args.nodes).map_err(|e| e.to_string())?;
    cluster.extra_config = format!("readConsistency={}\n", args.read_consistency);
    if args.lag_node_ms > 0 {
        cluster.node_env.push((
            0,
            "ZK_FAILPOINTS".into(),
            format!("applier-delay={}", args.lag_node_ms),
        ));
    }
    let network = Network::start(&mut cluster).map_err(|e| e.to_string())?;
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
        let mut paths = vec![ROOT.to_string(), format!("{ROOT}/set")];
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
        addresses: cluster.addresses(),
        epoch: Instant::now(),
        stop: AtomicBool::new(false),
        history: Mutex::new(Vec::new()),
        args: args.clone(),
    });
    let threads: Vec<_> = (0..args.clients)
        .map(|id| {
            let shared = Arc::clone(&shared);
            let seed = seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            std::thread::spawn(move || client(shared, id, seed))
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let nemeses: Vec<String> = args
        .nemesis
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut schedule = Vec::new();
    let mut report = Report::default();
    let end = Instant::now() + args.duration;
    let mut failed = None;
    while Instant::now() < end && !nemeses.is_empty() {
        std::thread::sleep(Duration::from_millis(rng.gen_range(500..2000)));
        let at = shared.epoch.elapsed().as_secs_f64();
        let nemesis = &nemeses[rng.gen_range(0..nemeses.len())];
        let Some(undo) = inject(&mut cluster, &network, &mut rng, nemesis, &mut schedule, at)
        else {
            continue;
        };
        report.faults += 1;
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
        report
            .anomalies
            .push(format!("not serving after healing: {e}"));
        print_schedule(&schedule);
        return Ok(report);
    }
    report.ops = history.len();
    report.reads = history.iter().filter(|o| o.kind == Kind2::Read).count();
    report.writes = history.iter().filter(|o| o.kind == Kind2::Write).count();
    report.creates = history.iter().filter(|o| o.kind == Kind2::Create).count();
    report.unknown = history.iter().filter(|o| o.end_us.is_none()).count();

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
        match final_state(address, args.keys) {
            Ok((registers, children)) => {
                let lost: Vec<&String> = acked.difference(&children).collect();
                let unexpected: Vec<&String> = children.difference(&attempted).collect();
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
                states.insert(i, (registers, children));
            }
            Err(e) => report
                .anomalies
                .push(format!("node {}: final read failed: {e}", i + 1)),
        }
    }
    if let Some((_, first)) = states.iter().next() {
        for (i, state) in &states {
            if state != first {
                report.anomalies.push(format!(
                    "node {} holds another state than node 1 after healing (registers {:?} vs {:?})",
                    i + 1,
                    state.0,
                    first.0
                ));
            }
        }
    }
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
        zookeeper_jar: PathBuf::new(),
        java: String::new(),
        jvm_flags: Vec::new(),
    };
    if let Err(e) = launch.check(&[Kind::Native]) {
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
            "[chaos] run {} seed {seed}: {} ops ({} reads, {} writes, {} creates, {} unknown), {} faults, {} anomalies",
            run + 1,
            report.ops,
            report.reads,
            report.writes,
            report.creates,
            report.unknown,
            report.faults,
            report.anomalies.len()
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
        total.anomalies.extend(report.anomalies);
    }
    if kept.is_empty() && !args.keep {
        let _ = std::fs::remove_dir_all(&out);
    }
    println!(
        "CHAOS runs={} ok={ok} anomalies={} lost_acked={} unexpected={} undecided={} ops={} unknown={} faults={} seed={first_seed}",
        args.runs,
        total.anomalies.len(),
        total.lost_acked,
        total.unexpected,
        total.undecided,
        total.ops,
        total.unknown,
        total.faults
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
