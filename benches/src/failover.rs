//! `zk-bench failover`: how long an ensemble cannot take writes when its
//! leader crashes (`kill -9`) or freezes (SIGSTOP), for `zk-server` and
//! Apache ZooKeeper in one run, one target after the other, each a fresh
//! N-node ensemble on loopback with the reference's timing defaults
//! (tickTime 2000, initLimit 10, syncLimit 5).
//!
//! While a target runs, a few writer sessions spread over all nodes do
//! setData one at a time; a writer whose connection drops or whose request
//! takes longer than `--request-timeout` starts a new session on the next
//! node. Every successful write's completion time is kept. Each round:
//! a steady phase, then the leader is killed (or paused), and the round
//! measures
//! - election: from the signal until a surviving node says `Mode: leader`
//!   in `srvr` and a setData through it succeeds;
//! - unavailability: the longest gap between successful writes (of any
//!   writer) around the signal;
//!
//! then the node is restarted (or continued) and the round waits until it
//! serves again. A monitor polls `srvr` on every node every 100 ms and
//! counts "false elections": the settled leader changing, or a node
//! answering in a mode other than leader or follower, during a steady phase.
//!
//! Not here: process handling (`cluster.rs`) and throughput (`compare`).
//!
//! Invariant: every node started is stopped however the run ends (the
//! `Cluster`'s nodes kill their process groups on drop), and a paused node
//! is continued first.

use crate::cluster::{self, Cluster, Kind, Launch};
use crate::conn::Conn;
use crate::run;
use engine::request::{CreateRequest, Request};
use engine::types::{Acl, OpCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The reference's snapCount default; the runs are too short to snapshot.
const SNAP_COUNT: u64 = 100_000;
/// Writes from before the signal that the unavailability window includes.
const GAP_LEAD: Duration = Duration::from_secs(1);
/// How long after writes resumed the window still looks for a longer gap.
const GAP_TAIL: Duration = Duration::from_secs(2);
/// The longest wait for a new leader, or for a node to serve again.
const RECOVERY_LIMIT: Duration = Duration::from_secs(120);
const MONITOR_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
pub struct Settings {
    pub targets: Vec<Kind>,
    pub nodes: usize,
    pub kills: usize,
    pub pauses: usize,
    pub writers: usize,
    /// Before each round and after the last: writes run, nothing is done
    /// to the ensemble, and the monitor counts false elections.
    pub steady: Duration,
    pub request_timeout: Duration,
    pub value_size: usize,
    pub dir: PathBuf,
    pub keep: bool,
    pub launch: Launch,
    pub json: bool,
}

fn say(message: impl std::fmt::Display) {
    eprintln!("[failover] {message}");
}

/// Runs every target; the report goes to stdout.
pub fn failover(settings: &Settings) -> io::Result<()> {
    settings.launch.check(&settings.targets)?;
    std::fs::create_dir_all(&settings.dir)?;
    crate::cluster::on_signal_kill_servers();
    let mut rows = Vec::new();
    let mut result = Ok(());
    for (index, kind) in settings.targets.iter().enumerate() {
        match run_target(settings, *kind, index) {
            Ok(row) => rows.push(row),
            Err(e) => {
                result = Err(io::Error::other(format!("{}: {e}", kind.name())));
                break;
            }
        }
    }
    if !settings.keep {
        let _ = std::fs::remove_dir_all(&settings.dir);
    }
    result?;
    let report = json!({
        "settings": {
            "targets": settings.targets.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "nodes": settings.nodes,
            "kills": settings.kills,
            "pauses": settings.pauses,
            "writers": settings.writers,
            "steady_s": settings.steady.as_secs_f64(),
            "request_timeout_ms": settings.request_timeout.as_secs_f64() * 1000.0,
            "tick_time_ms": 2000, "init_limit": 10, "sync_limit": 5,
        },
        "targets": rows,
    });
    if settings.json {
        println!("{report}");
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// Successful writes' completion times, ms since the target's origin, and
/// the failures by ZooKeeper error code (a dropped or timed-out connection
/// counts as ConnectionLoss, -4).
#[derive(Default)]
struct Successes {
    times_ms: Mutex<Vec<f64>>,
    errors: Mutex<BTreeMap<i32, u64>>,
}

impl Successes {
    fn error(&self, code: i32) {
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(code).or_insert(0) += 1;
        }
    }
    fn errors(&self) -> BTreeMap<i32, u64> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
    fn push(&self, at_ms: f64) {
        if let Ok(mut times) = self.times_ms.lock() {
            times.push(at_ms);
        }
    }
    fn snapshot(&self) -> Vec<f64> {
        self.times_ms.lock().map(|t| t.clone()).unwrap_or_default()
    }
    fn any_after(&self, at_ms: f64) -> bool {
        self.times_ms
            .lock()
            .map(|t| t.iter().rev().take(64).any(|&x| x > at_ms))
            .unwrap_or(false)
    }
}

fn since_ms(origin: Instant) -> f64 {
    origin.elapsed().as_secs_f64() * 1000.0
}

fn set_data(path: &str, value: &[u8]) -> Request {
    Request::SetData {
        path: path.to_string(),
        data: Some(value.to_vec()),
        version: -1,
    }
}

/// One writer: setData of its own key, one at a time; on any failure a new
/// session on the next node.
#[allow(clippy::too_many_arguments)]
fn writer(
    nodes: Vec<String>,
    first: usize,
    key: String,
    value: Vec<u8>,
    timeout: Duration,
    origin: Instant,
    stop: Arc<AtomicBool>,
    successes: Arc<Successes>,
) {
    let mut at = first;
    let mut conn: Option<Conn> = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match Conn::connect_timeout(&nodes[at % nodes.len()], timeout, None) {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    at += 1;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let reply = c.call(&set_data(&key, &value));
        match reply {
            Ok(0) => successes.push(since_ms(origin)),
            _ => {
                successes.error(*reply.as_ref().unwrap_or(&run::CONNECTION_LOSS));
                // Dropping the connection abandons its session; it expires
                // on its own.
                conn = None;
                at += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.close();
    }
}

/// What the monitor makes of one poll of every node's `srvr` Mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Poll {
    /// One node leads, every other that answered follows.
    Settled(usize),
    /// A node answered in another mode, or two lead.
    Disturbed,
    /// Nobody that answered leads (nodes silent or not serving): no verdict.
    Unknown,
}

fn classify(modes: &[Option<String>]) -> Poll {
    let mut leader = None;
    for (i, mode) in modes.iter().enumerate() {
        match mode.as_deref() {
            None | Some("follower") => {}
            Some("leader") if leader.is_none() => leader = Some(i),
            Some(_) => return Poll::Disturbed,
        }
    }
    leader.map_or(Poll::Unknown, Poll::Settled)
}

/// Counts false elections from successive polls: during a steady phase,
/// a leader other than the one it began with, or a disturbed ensemble,
/// counts once until the ensemble settles on a leader again.
#[derive(Debug, Default)]
struct ElectionCounter {
    known: Option<usize>,
    disturbed: bool,
    false_elections: u64,
}

impl ElectionCounter {
    fn observe(&mut self, poll: Poll, steady: bool) {
        if !steady {
            if let Poll::Settled(leader) = poll {
                self.known = Some(leader);
            }
            self.disturbed = false;
            return;
        }
        match poll {
            Poll::Settled(leader) if Some(leader) == self.known => self.disturbed = false,
            Poll::Settled(leader) => {
                if !self.disturbed && self.known.is_some() {
                    self.false_elections += 1;
                }
                self.known = Some(leader);
                self.disturbed = false;
            }
            Poll::Disturbed => {
                if !self.disturbed {
                    self.false_elections += 1;
                }
                self.disturbed = true;
            }
            Poll::Unknown => {}
        }
    }
}

struct Monitor {
    steady: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    false_elections: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    fn start(addresses: Vec<String>) -> Monitor {
        let steady = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let false_elections = Arc::new(AtomicU64::new(0));
        let (s, st, fe) = (
            Arc::clone(&steady),
            Arc::clone(&stop),
            Arc::clone(&false_elections),
        );
        let thread = std::thread::spawn(move || {
            let mut counter = ElectionCounter::default();
            while !st.load(Ordering::Relaxed) {
                let polled = Instant::now();
                // Read the phase before polling, so a poll that started in
                // a steady phase but ran into a signal still counts as
                // steady only if the phase is steady again after it.
                let before = s.load(Ordering::SeqCst);
                let modes: Vec<Option<String>> = addresses
                    .iter()
                    .map(|a| {
                        cluster::four_letter(a, "srvr", Duration::from_millis(300))
                            .ok()
                            .as_deref()
                            .and_then(cluster::parse_mode)
                    })
                    .collect();
                let steady_now = before && s.load(Ordering::SeqCst);
                counter.observe(classify(&modes), steady_now);
                fe.store(counter.false_elections, Ordering::Relaxed);
                std::thread::sleep(MONITOR_EVERY.saturating_sub(polled.elapsed()));
            }
        });
        Monitor {
            steady,
            stop,
            false_elections,
            thread: Some(thread),
        }
    }

    fn set_steady(&self, steady: bool) {
        self.steady.store(steady, Ordering::SeqCst);
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.false_elections.load(Ordering::Relaxed)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The longest gap between consecutive successes in `[from_ms, to_ms]`, as
/// (start, end): a window with no success at all is one gap from edge to
/// edge.
pub fn longest_gap(times_ms: &[f64], from_ms: f64, to_ms: f64) -> (f64, f64) {
    let mut inside: Vec<f64> = times_ms
        .iter()
        .copied()
        .filter(|t| *t >= from_ms && *t <= to_ms)
        .collect();
    if inside.is_empty() {
        return (from_ms, to_ms);
    }
    inside.sort_by(f64::total_cmp);
    inside
        .windows(2)
        .map(|pair| (pair[0], pair[1]))
        .fold((inside[0], inside[0]), |longest, gap| {
            if gap.1 - gap.0 > longest.1 - longest.0 {
                gap
            } else {
                longest
            }
        })
}

/// What one kill or pause measured.
#[derive(Clone, Debug)]
struct Round {
    action: &'static str,
    old_leader: usize,
    new_leader: usize,
    election_ms: f64,
    unavailable_ms: f64,
    /// From the signal until the longest gap ended: when writes came back.
    resumed_ms: f64,
    /// From restart (or SIGCONT) until the node served again.
    rejoin_ms: f64,
}

/// Waits for a node other than `exclude` to say it leads and take a write.
fn await_leader(
    cluster: &Cluster,
    exclude: usize,
    timeout: Duration,
    value: &[u8],
) -> io::Result<(Instant, usize)> {
    let deadline = Instant::now() + RECOVERY_LIMIT;
    let addresses = cluster.addresses();
    while Instant::now() < deadline {
        for (i, address) in addresses.iter().enumerate() {
            if i == exclude {
                continue;
            }
            let mode = cluster::four_letter(address, "srvr", Duration::from_millis(300))
                .ok()
                .as_deref()
                .and_then(cluster::parse_mode);
            if mode.as_deref() != Some("leader") {
                continue;
            }
            if let Ok(mut conn) = Conn::connect_timeout(address, timeout, None) {
                if matches!(conn.call(&set_data(PROBE, value)), Ok(0)) {
                    let at = Instant::now();
                    let _ = conn.close();
                    return Ok((at, i));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no new leader took a write within {RECOVERY_LIMIT:?}"),
    ))
}

const PROBE: &str = "/bench/failover-probe";

fn writer_key(i: usize) -> String {
    format!("/bench/failover-w{i}")
}

fn create(path: &str) -> Request {
    Request::Create {
        op: OpCode::Create,
        request: CreateRequest {
            path: path.to_string(),
            data: Some(Vec::new()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
    }
}

/// Creates `/bench`, the probe and every writer's key, through node 0,
/// then the next. A session that is refused with SessionExpired is
/// replaced by a new one on the next node, as a client would, but loudly:
/// a fresh session should never expire.
fn create_keys(cluster: &Cluster, writers: usize) -> io::Result<()> {
    let paths: Vec<String> = [run::ROOT.to_string(), PROBE.to_string()]
        .into_iter()
        .chain((0..writers).map(writer_key))
        .collect();
    let mut attempt = 0;
    'session: loop {
        let node = &cluster.nodes[attempt % cluster.size()];
        let mut conn = Conn::connect(&node.address(), None)?;
        for path in &paths {
            let code = conn.call(&create(path))?;
            // NodeExists: kept from an earlier run or attempt.
            if code == 0 || code == -110 {
                continue;
            }
            if code == -112 && attempt < 5 {
                say(format_args!(
                    "WARNING: {}: create {path} through node {}: SessionExpired on a fresh session; retrying with a new session",
                    cluster.label(),
                    node.id
                ));
                attempt += 1;
                continue 'session;
            }
            return Err(io::Error::other(format!("create {path}: error {code}")));
        }
        let _ = conn.close();
        return Ok(());
    }
}

fn leader_of(cluster: &Cluster) -> io::Result<usize> {
    let deadline = Instant::now() + RECOVERY_LIMIT;
    while Instant::now() < deadline {
        if let Some(leader) = cluster::settled_leader(&cluster.modes()) {
            return Ok(leader);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(io::Error::other(format!(
        "{}: no settled leader (modes {:?})",
        cluster.label(),
        cluster.modes()
    )))
}

fn run_target(settings: &Settings, kind: Kind, index: usize) -> io::Result<Value> {
    let mut cluster = Cluster::new(kind, &settings.dir, index, settings.nodes)?;
    say(format_args!("starting {}", cluster.label()));
    cluster.start(&settings.launch, SNAP_COUNT)?;
    cluster.wait_serving(None, RECOVERY_LIMIT)?;
    create_keys(&cluster, settings.writers)?;
    cluster.wait_serving(Some(&writer_key(settings.writers - 1)), RECOVERY_LIMIT)?;

    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let successes = Arc::new(Successes::default());
    let value = vec![b'f'; settings.value_size];
    let writers: Vec<_> = (0..settings.writers)
        .map(|i| {
            let nodes = cluster.addresses();
            let (stop, successes, value) =
                (Arc::clone(&stop), Arc::clone(&successes), value.clone());
            let timeout = settings.request_timeout;
            std::thread::spawn(move || {
                writer(
                    nodes,
                    i,
                    writer_key(i),
                    value,
                    timeout,
                    origin,
                    stop,
                    successes,
                )
            })
        })
        .collect();
    let monitor = Monitor::start(cluster.addresses());
    let result = rounds(settings, &mut cluster, &monitor, origin, &successes, &value);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    let false_elections = monitor.finish();
    let writes = successes.snapshot().len();
    let write_errors: serde_json::Map<String, Value> = successes
        .errors()
        .iter()
        .map(|(code, n)| (code.to_string(), json!(n)))
        .collect();
    cluster.stop();
    let rounds = result?;
    let summary = |action: &str| {
        let of: Vec<&Round> = rounds.iter().filter(|r| r.action == action).collect();
        let stat = |f: fn(&Round) -> f64| {
            let values: Vec<f64> = of.iter().map(|r| f(r)).collect();
            json!({
                "median": median(&values),
                "max": values.iter().copied().fold(f64::NAN, f64::max),
            })
        };
        json!({
            "rounds": of.len(),
            "election_ms": stat(|r| r.election_ms),
            "unavailable_ms": stat(|r| r.unavailable_ms),
            "resumed_ms": stat(|r| r.resumed_ms),
            "rejoin_ms": stat(|r| r.rejoin_ms),
        })
    };
    Ok(json!({
        "target": kind.name(),
        "nodes": settings.nodes,
        "writes": writes,
        "write_errors": write_errors,
        "false_elections": false_elections,
        "kill": summary("kill"),
        "pause": summary("pause"),
        "rounds": rounds.iter().map(|r| json!({
            "action": r.action,
            "old_leader": cluster.nodes[r.old_leader].id,
            "new_leader": cluster.nodes[r.new_leader].id,
            "election_ms": r.election_ms,
            "unavailable_ms": r.unavailable_ms,
            "resumed_ms": r.resumed_ms,
            "rejoin_ms": r.rejoin_ms,
        })).collect::<Vec<_>>(),
    }))
}

fn rounds(
    settings: &Settings,
    cluster: &mut Cluster,
    monitor: &Monitor,
    origin: Instant,
    successes: &Successes,
    value: &[u8],
) -> io::Result<Vec<Round>> {
    let plan = std::iter::repeat_n("kill", settings.kills)
        .chain(std::iter::repeat_n("pause", settings.pauses))
        .collect::<Vec<_>>();
    let mut out = Vec::new();
    for (n, action) in plan.iter().enumerate() {
        let old_leader = leader_of(cluster)?;
        monitor.set_steady(true);
        std::thread::sleep(settings.steady);
        monitor.set_steady(false);
        // The steady phase may have moved the leader; act on the current one.
        let old_leader = cluster::settled_leader(&cluster.modes()).unwrap_or(old_leader);
        say(format_args!(
            "{} {}/{}: {} of node {}",
            cluster.label(),
            n + 1,
            plan.len(),
            action,
            cluster.nodes[old_leader].id
        ));
        let signalled = Instant::now();
        let signalled_ms = since_ms(origin);
        if *action == "kill" {
            cluster.nodes[old_leader].kill();
        } else {
            cluster.nodes[old_leader].pause();
        }
        let (elected, new_leader) =
            await_leader(cluster, old_leader, settings.request_timeout, value)?;
        let election_ms = elected.saturating_duration_since(signalled).as_secs_f64() * 1000.0;
        // Let the writers find their way back, then look at the window.
        let elected_ms = elected.saturating_duration_since(origin).as_secs_f64() * 1000.0;
        let resumed_by = Instant::now() + RECOVERY_LIMIT;
        while !successes.any_after(elected_ms) {
            if Instant::now() > resumed_by {
                return Err(io::Error::other("writes did not resume"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(GAP_TAIL);
        let times = successes.snapshot();
        let (gap_start, gap_end) = longest_gap(
            &times,
            signalled_ms - GAP_LEAD.as_secs_f64() * 1000.0,
            since_ms(origin),
        );
        let unavailable_ms = gap_end - gap_start;
        let resumed_ms = gap_end - signalled_ms;
        let rejoin_started = Instant::now();
        if *action == "kill" {
            cluster.start_node(old_leader, &settings.launch, SNAP_COUNT)?;
        } else {
            cluster.nodes[old_leader].resume();
        }
        cluster.wait_node_serving(old_leader, None, RECOVERY_LIMIT)?;
        // Every node settled before the next steady phase.
        leader_of(cluster)?;
        let rejoin_ms = rejoin_started.elapsed().as_secs_f64() * 1000.0;
        say(format_args!(
            "  election {election_ms:.0} ms, writes unavailable {unavailable_ms:.0} ms, node {} back after {rejoin_ms:.0} ms",
            cluster.nodes[old_leader].id
        ));
        out.push(Round {
            action,
            old_leader,
            new_leader,
            election_ms,
            unavailable_ms,
            resumed_ms,
            rejoin_ms,
        });
    }
    monitor.set_steady(true);
    std::thread::sleep(settings.steady);
    monitor.set_steady(false);
    Ok(out)
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

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn render(report: &Value) -> String {
    let mut out = String::new();
    let s = &report["settings"];
    let _ = writeln!(
        out,
        "failover: {}-node ensembles, tickTime 2000 / initLimit 10 / syncLimit 5, {} writers (setData, one at a time, round-robin over the nodes, {} ms request timeout); medians (max) in ms",
        s["nodes"], s["writers"], s["request_timeout_ms"]
    );
    let _ = writeln!(
        out,
        "{:<18} {:<6} {:>6} {:>18} {:>18} {:>18} {:>18} {:>8}",
        "target", "signal", "rounds", "election", "unavailable", "resumed", "rejoin", "false el"
    );
    for row in report["targets"].as_array().into_iter().flatten() {
        for action in ["kill", "pause"] {
            let a = &row[action];
            if a["rounds"].as_u64().unwrap_or(0) == 0 {
                continue;
            }
            let cell =
                |key: &str| format!("{:.0} ({:.0})", num(&a[key]["median"]), num(&a[key]["max"]));
            let _ = writeln!(
                out,
                "{:<18} {:<6} {:>6} {:>18} {:>18} {:>18} {:>18} {:>8}",
                row["target"].as_str().unwrap_or("?"),
                if action == "kill" { "KILL" } else { "STOP" },
                a["rounds"],
                cell("election_ms"),
                cell("unavailable_ms"),
                cell("resumed_ms"),
                cell("rejoin_ms"),
                row["false_elections"],
            );
        }
    }
    for row in report["targets"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{}: {} writes; failed writes by error code (each moved its writer to a new session): {}",
            row["target"].as_str().unwrap_or("?"),
            row["writes"],
            row["write_errors"]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_is_found_inside_the_window() {
        let times = [0.0, 10.0, 20.0, 500.0, 510.0, 900.0, 5000.0];
        // Writes every 10 ms, then 480 ms without, then 390 ms without.
        assert_eq!(longest_gap(&times, 0.0, 1000.0), (20.0, 500.0));
        // The window starts after the first gap.
        assert_eq!(longest_gap(&times, 400.0, 1000.0), (510.0, 900.0));
        // Nothing inside: the whole window was unavailable.
        assert_eq!(longest_gap(&times, 1000.0, 3000.0), (1000.0, 3000.0));
        // Unsorted input is fine.
        assert_eq!(longest_gap(&[30.0, 0.0, 10.0], 0.0, 100.0), (10.0, 30.0));
    }

    fn modes(list: &[Option<&str>]) -> Vec<Option<String>> {
        list.iter().map(|m| m.map(str::to_string)).collect()
    }

    #[test]
    fn polls_are_settled_disturbed_or_unknown() {
        let (f, l) = (Some("follower"), Some("leader"));
        assert_eq!(classify(&modes(&[f, l, f])), Poll::Settled(1));
        // A silent node does not unsettle the others.
        assert_eq!(classify(&modes(&[None, l, f])), Poll::Settled(1));
        assert_eq!(classify(&modes(&[l, l, f])), Poll::Disturbed);
        assert_eq!(classify(&modes(&[f, Some("looking"), f])), Poll::Disturbed);
        assert_eq!(classify(&modes(&[f, None, f])), Poll::Unknown);
    }

    /// Only leader changes and disturbances seen in a steady phase count,
    /// each once however many polls it lasts.
    #[test]
    fn false_elections_count_changes_in_steady_phases_only() {
        let mut counter = ElectionCounter::default();
        let settled = |i| Poll::Settled(i);
        // Not steady: the leader moves as the benchmark kills it.
        for poll in [settled(0), Poll::Unknown, settled(1)] {
            counter.observe(poll, false);
        }
        assert_eq!(counter.false_elections, 0);
        // Steady, same leader, a silent poll in between: nothing.
        for poll in [settled(1), Poll::Unknown, settled(1)] {
            counter.observe(poll, true);
        }
        assert_eq!(counter.false_elections, 0);
        // An election of its own: disturbed for three polls, then node 2.
        for poll in [
            Poll::Disturbed,
            Poll::Disturbed,
            Poll::Disturbed,
            settled(2),
            settled(2),
        ] {
            counter.observe(poll, true);
        }
        assert_eq!(counter.false_elections, 1);
        // A leader change seen without the disturbance between.
        counter.observe(settled(0), true);
        assert_eq!(counter.false_elections, 2);
    }
}
