//! The benchmark itself: setup and cleanup of the `/bench` tree, and one
//! thread per connection driving a workload with K requests pipelined.
//! Not here: argument parsing and report formatting (`main.rs`), the wire
//! (`conn.rs`).
//!
//! Invariant: a request is timed from the moment it is flushed to the socket
//! until its reply is read, and only requests sent inside the measured window
//! (after warmup) are recorded. Replies on one connection come back in send
//! order (a ZooKeeper guarantee), so the in-flight queue is a FIFO.

use crate::conn::{create_request as create, Conn};
use engine::request::{MultiOp, MultiResult, Request, Response};
use engine::types::{ErrorCode, OpCode};
use hdrhistogram::Histogram;
use net::proto::{decode_event, decode_reply, NOTIFICATION_XID};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// Error code used for a connection that failed (I/O or protocol error).
pub const CONNECTION_LOSS: i32 = -4;

pub const ROOT: &str = "/bench";
pub const CHURN_DIR: &str = "/bench/churn";
pub const WATCH_NODE: &str = "/bench/watch";

/// Also the `--workload(s)` values, by their lower-case names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    Read,
    Mixed,
    Write,
    Churn,
    Multi,
    Watch,
    Sessions,
    Large,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Read => "read",
            Workload::Mixed => "mixed",
            Workload::Write => "write",
            Workload::Churn => "churn",
            Workload::Multi => "multi",
            Workload::Watch => "watch",
            Workload::Sessions => "sessions",
            Workload::Large => "large",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    /// A connect string: one `host:port`, or several joined by commas
    /// (connection `i` uses the `i mod n`-th, see `node`).
    pub server: String,
    pub connections: usize,
    pub inflight: usize,
    pub workload: Workload,
    pub keys: usize,
    pub value_size: usize,
    pub duration: Duration,
    pub ops: Option<u64>,
    pub warmup: Duration,
    pub read_ratio: u32,
    pub progress: Progress,
    /// Keep every measured op's send time and latency (`Outcome::samples`),
    /// to split a run by what the server was doing when (compare's snapshot
    /// phase). 8 bytes per op.
    pub timeline: bool,
    /// Speak TLS to a secure client port.
    pub tls: Option<crate::conn::Tls>,
}

/// One measured op of a timeline run.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When it was sent, in ms after the measured window opened.
    pub sent_ms: u32,
    pub latency_us: u32,
}

/// What one run measured.
pub struct Outcome {
    pub ops: u64,
    pub seconds: f64,
    /// Latencies in microseconds.
    pub hist: Histogram<u64>,
    /// Count of failed requests by ZooKeeper error code.
    pub errors: BTreeMap<i32, u64>,
    /// Every measured op, when the plan asked for a timeline; unordered.
    pub samples: Vec<Sample>,
}

/// Per-thread results, merged at the end.
struct Tally {
    ops: u64,
    hist: Histogram<u64>,
    errors: BTreeMap<i32, u64>,
    /// `Some(start of the measured window)` on a timeline run.
    timeline: Option<Instant>,
    samples: Vec<Sample>,
}

impl Tally {
    fn new(timeline: Option<Instant>) -> Tally {
        Tally {
            ops: 0,
            // Auto-resizing, three significant figures: no value is refused.
            hist: Histogram::new(3).unwrap_or_else(|_| unreachable_hist()),
            errors: BTreeMap::new(),
            timeline,
            samples: Vec::new(),
        }
    }
    fn error(&mut self, code: i32) {
        *self.errors.entry(code).or_insert(0) += 1;
    }
    fn record(&mut self, since: Instant) {
        let micros = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.ops += 1;
        let _ = self.hist.record(micros.max(1));
        if let Some(measure_from) = self.timeline {
            let sent_ms = since.saturating_duration_since(measure_from).as_millis();
            self.samples.push(Sample {
                sent_ms: u32::try_from(sent_ms).unwrap_or(u32::MAX),
                latency_us: u32::try_from(micros).unwrap_or(u32::MAX),
            });
        }
    }
}

/// `Histogram::new(3)` only fails for sigfig > 5; keep a fallback anyway
/// rather than a panic.
fn unreachable_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).unwrap_or_else(|_| std::process::abort())
}

/// Shared clock and stop conditions of the measured phase.
struct Window {
    measure_from: Instant,
    end: Option<Instant>,
    ops_limit: Option<u64>,
    /// Requests started inside the window (for --ops).
    started: AtomicU64,
    /// Ops completed so far, warmup included (for progress only).
    done: AtomicU64,
    stop: AtomicBool,
}

impl Window {
    /// Whether a new request may be sent now; claims one of --ops if so.
    fn may_send(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if self.end.is_some_and(|end| now >= end) {
            self.stop.store(true, Ordering::Relaxed);
            return false;
        }
        if let Some(limit) = self.ops_limit {
            if now >= self.measure_from && self.started.fetch_add(1, Ordering::Relaxed) >= limit {
                self.stop.store(true, Ordering::Relaxed);
                return false;
            }
        }
        true
    }
    fn measuring(&self, at: Instant) -> bool {
        at >= self.measure_from
    }
}

/// The address connection `connection` uses from a connect string: the
/// nodes in turn (round-robin), so N connections over M nodes put N/M (±1)
/// on each. Empty entries are skipped; an empty string gives itself.
pub fn node(server: &str, connection: usize) -> &str {
    let nodes: Vec<&str> = server
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if nodes.is_empty() {
        return server;
    }
    nodes[connection % nodes.len()]
}

pub fn key_path(i: usize) -> String {
    format!("{ROOT}/k{i}")
}

/// Sends `requests` over one connection with `window` in flight; returns
/// error counts, ignoring codes in `ok_codes`.
fn pipeline(
    conn: &mut Conn,
    requests: impl IntoIterator<Item = Request>,
    window: usize,
    ok_codes: &[ErrorCode],
    errors: &mut BTreeMap<i32, u64>,
) -> io::Result<()> {
    let mut requests = requests.into_iter();
    let mut inflight = VecDeque::new();
    loop {
        while inflight.len() < window.max(1) {
            match requests.next() {
                Some(r) => inflight.push_back(conn.queue(&r)?.0),
                None => break,
            }
        }
        conn.flush()?;
        let Some(xid) = inflight.pop_front() else {
            return Ok(());
        };
        let err = conn.read_reply_to(xid)?.err;
        if err != 0 && !ok_codes.iter().any(|c| c.code() == err) {
            *errors.entry(err).or_insert(0) += 1;
        }
    }
}

/// Creates `/bench`, its helper nodes and the keys (existing nodes are kept).
pub fn setup(plan: &Plan) -> io::Result<BTreeMap<i32, u64>> {
    let mut errors = BTreeMap::new();
    // Through the first node: an ensemble forwards the creates to its leader.
    let mut conn = Conn::connect(node(&plan.server, 0), plan.tls.as_ref())?;
    let exists = [ErrorCode::NodeExists];
    let dirs = [ROOT, CHURN_DIR, WATCH_NODE].map(|p| create(p.to_string(), Vec::new()));
    pipeline(&mut conn, dirs, 1, &exists, &mut errors)?;
    let _ = conn.close();
    let threads = plan.connections.clamp(1, 8);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let plan = plan.clone();
            std::thread::spawn(move || -> io::Result<BTreeMap<i32, u64>> {
                let mut errors = BTreeMap::new();
                let mut conn = Conn::connect(node(&plan.server, 0), plan.tls.as_ref())?;
                let value = vec![b'x'; plan.value_size];
                let reqs = (t..plan.keys)
                    .step_by(threads)
                    .map(|i| create(key_path(i), value.clone()));
                pipeline(&mut conn, reqs, 64, &exists, &mut errors)?;
                let _ = conn.close();
                Ok(errors)
            })
        })
        .collect();
    for h in handles {
        let part = h
            .join()
            .map_err(|_| io::Error::other("setup thread panicked"))??;
        merge(&mut errors, &part);
    }
    Ok(errors)
}

/// Deletes everything under `/bench` that this tool creates.
pub fn cleanup(plan: &Plan) -> io::Result<BTreeMap<i32, u64>> {
    let mut errors = BTreeMap::new();
    let mut conn = Conn::connect(node(&plan.server, 0), plan.tls.as_ref())?;
    let gone = [ErrorCode::NoNode, ErrorCode::NotEmpty];
    let (xid, op) = conn.queue(&Request::GetChildren {
        path: CHURN_DIR.to_string(),
        watch: false,
    })?;
    conn.flush()?;
    conn.read_reply_to(xid)?;
    let mut children = Vec::new();
    if let Ok((_, reply)) = decode_reply(op, conn.body()) {
        if let Response::GetChildren { children: c } = reply.body {
            children = c;
        }
    }
    let deletes = children
        .into_iter()
        .map(|c| format!("{CHURN_DIR}/{c}"))
        .chain((0..plan.keys).map(key_path))
        .chain([CHURN_DIR, WATCH_NODE, ROOT].map(String::from))
        .map(|path| Request::Delete { path, version: -1 });
    pipeline(&mut conn, deletes, 64, &gone, &mut errors)?;
    let _ = conn.close();
    Ok(errors)
}

fn merge(into: &mut BTreeMap<i32, u64>, from: &BTreeMap<i32, u64>) {
    for (code, n) in from {
        *into.entry(*code).or_insert(0) += n;
    }
}

/// Chooses requests for one connection.
struct Generator {
    workload: Workload,
    rng: StdRng,
    keys: usize,
    value: Vec<u8>,
    read_ratio: u32,
    counter: u64,
    /// churn: per pipeline slot, the node this slot created and must delete.
    churn: Vec<Option<String>>,
    churn_prefix: String,
}

impl Generator {
    fn key(&mut self) -> String {
        key_path(self.rng.gen_range(0..self.keys.max(1)))
    }
    fn get(&mut self) -> Request {
        Request::GetData {
            path: self.key(),
            watch: false,
        }
    }
    fn set(&mut self) -> Request {
        Request::SetData {
            path: self.key(),
            data: Some(self.value.clone()),
            version: -1,
        }
    }
    fn next(&mut self, slot: usize) -> Request {
        self.counter += 1;
        match self.workload {
            Workload::Read => self.get(),
            Workload::Write => self.set(),
            Workload::Mixed => {
                // The last request of each cycle of read_ratio + 1 is the write.
                if self.counter % (u64::from(self.read_ratio) + 1) == u64::from(self.read_ratio) {
                    self.set()
                } else {
                    self.get()
                }
            }
            Workload::Large => {
                if self.counter % 2 == 1 {
                    self.set()
                } else {
                    self.get()
                }
            }
            Workload::Churn => match self.churn.get_mut(slot).and_then(Option::take) {
                Some(path) => Request::Delete { path, version: -1 },
                None => {
                    let path = format!("{}-{}", self.churn_prefix, self.counter);
                    if let Some(s) = self.churn.get_mut(slot) {
                        *s = Some(path.clone());
                    }
                    create(path, self.value.clone())
                }
            },
            Workload::Multi => {
                let n = self.rng.gen_range(4..=8);
                let ops = (0..n)
                    .map(|_| {
                        let path = self.key();
                        if self.rng.gen_ratio(1, 4) {
                            MultiOp::Check { path, version: -1 }
                        } else {
                            MultiOp::SetData {
                                path,
                                data: Some(self.value.clone()),
                                version: -1,
                            }
                        }
                    })
                    .collect();
                Request::Multi(ops)
            }
            // Not pipelined workloads; never asked.
            Workload::Watch | Workload::Sessions => Request::Ping,
        }
    }
}

/// Error code of a reply; for multi the first failing op's code (a failed
/// multi has 0 in its header).
fn reply_error(conn: &Conn, op: OpCode, header_err: i32) -> i32 {
    if header_err != 0 || op != OpCode::Multi {
        return header_err;
    }
    match decode_reply(op, conn.body()) {
        Ok((_, reply)) => match reply.body {
            Response::Multi(results) => results
                .iter()
                .find_map(|r| match r {
                    MultiResult::Error(code)
                        if *code != ErrorCode::Ok && *code != ErrorCode::RuntimeInconsistency =>
                    {
                        Some(code.code())
                    }
                    _ => None,
                })
                .unwrap_or(0),
            _ => 0,
        },
        Err(_) => ErrorCode::MarshallingError.code(),
    }
}

fn pipelined_worker(plan: &Plan, window: &Window, thread: usize, tally: &mut Tally) {
    if let Err(_e) = pipelined_loop(plan, window, thread, tally) {
        tally.error(CONNECTION_LOSS);
    }
}

fn pipelined_loop(
    plan: &Plan,
    window: &Window,
    thread: usize,
    tally: &mut Tally,
) -> io::Result<()> {
    let mut conn = Conn::connect(node(&plan.server, thread), plan.tls.as_ref())?;
    let k = plan.inflight.max(1);
    let nonce = std::process::id();
    let mut gen = Generator {
        workload: plan.workload,
        rng: StdRng::from_entropy(),
        keys: plan.keys,
        value: vec![b'v'; plan.value_size],
        read_ratio: plan.read_ratio,
        counter: 0,
        churn: vec![None; k],
        churn_prefix: format!("{CHURN_DIR}/c{nonce}-{thread}"),
    };
    // (xid, op, slot, sent)
    let mut inflight: VecDeque<(i32, OpCode, usize, Instant)> = VecDeque::with_capacity(k);
    let send = |conn: &mut Conn,
                gen: &mut Generator,
                inflight: &mut VecDeque<(i32, OpCode, usize, Instant)>,
                slot: usize|
     -> io::Result<()> {
        let request = gen.next(slot);
        let (xid, op) = conn.queue(&request)?;
        conn.flush()?;
        inflight.push_back((xid, op, slot, Instant::now()));
        Ok(())
    };
    for slot in 0..k {
        if !window.may_send() {
            break;
        }
        send(&mut conn, &mut gen, &mut inflight, slot)?;
    }
    while let Some((xid, op, slot, sent)) = inflight.pop_front() {
        let header = conn.read_reply_to(xid)?;
        let err = reply_error(&conn, op, header.err);
        if err == 0 {
            window.done.fetch_add(1, Ordering::Relaxed);
        }
        if window.measuring(sent) {
            if err == 0 {
                tally.record(sent);
            } else {
                tally.error(err);
            }
        }
        if window.may_send() {
            send(&mut conn, &mut gen, &mut inflight, slot)?;
        }
    }
    // Churn nodes created but not yet deleted stay until --cleanup.
    let _ = conn.close();
    Ok(())
}

fn sessions_worker(plan: &Plan, window: &Window, thread: usize, tally: &mut Tally) {
    let server = node(&plan.server, thread);
    while window.may_send() {
        let sent = Instant::now();
        let result = Conn::connect(server, plan.tls.as_ref()).and_then(Conn::close);
        if matches!(result, Ok(0)) {
            window.done.fetch_add(1, Ordering::Relaxed);
        }
        if !window.measuring(sent) {
            continue;
        }
        match result {
            Ok(0) => tally.record(sent),
            Ok(code) => tally.error(code),
            Err(_) => tally.error(CONNECTION_LOSS),
        }
    }
}

/// Shared state of the watch workload's rounds.
struct WatchRound {
    barrier: Barrier,
    /// When the writer sent setData.
    fired: Mutex<Option<Instant>>,
    /// Latest notification receipt this round.
    last_seen: Mutex<Option<Instant>>,
    /// Set by the writer between rounds; everyone leaves together.
    done: AtomicBool,
    /// A participant failed; the others leave at the next round boundary.
    broken: AtomicBool,
}

impl WatchRound {
    /// Counts a failure (a ZooKeeper error code, or a lost connection) and
    /// breaks the round.
    fn fail(&self, tally: &mut Tally, code: i32) {
        tally.error(code);
        self.broken.store(true, Ordering::Relaxed);
    }

    /// Fails the round unless `reply` is a success.
    fn expect_ok(&self, tally: &mut Tally, reply: io::Result<i32>) {
        match reply {
            Ok(0) => {}
            Ok(code) => self.fail(tally, code),
            Err(_) => self.fail(tally, CONNECTION_LOSS),
        }
    }
}

/// Thread 0 writes `/bench/watch`; every other thread is a watcher session.
/// One op = one round: all watchers armed, one setData, until the last
/// watcher has its notification.
fn watch_worker(
    plan: &Plan,
    window: &Window,
    thread: usize,
    round: &WatchRound,
    tally: &mut Tally,
) {
    let mut conn = Conn::connect(node(&plan.server, thread), plan.tls.as_ref());
    if conn.is_err() {
        round.fail(tally, CONNECTION_LOSS);
    }
    let value = vec![b'w'; plan.value_size];
    loop {
        // Arm (watchers) then barrier A.
        if thread != 0 {
            if let Ok(c) = conn.as_mut() {
                let armed = c.call(&Request::GetData {
                    path: WATCH_NODE.to_string(),
                    watch: true,
                });
                round.expect_ok(tally, armed);
            }
        }
        round.barrier.wait();
        if round.broken.load(Ordering::Relaxed) {
            break;
        }
        if thread == 0 {
            let sent = Instant::now();
            if let Ok(mut f) = round.fired.lock() {
                *f = Some(sent);
            }
            if let Ok(c) = conn.as_mut() {
                let set = c.call(&Request::SetData {
                    path: WATCH_NODE.to_string(),
                    data: Some(value.clone()),
                    version: -1,
                });
                round.expect_ok(tally, set);
            }
        } else if let Ok(c) = conn.as_mut() {
            match wait_notification(c) {
                Ok(at) => {
                    if let Ok(mut last) = round.last_seen.lock() {
                        *last = Some(last.map_or(at, |l| l.max(at)));
                    }
                }
                Err(_) => round.fail(tally, CONNECTION_LOSS),
            }
        }
        round.barrier.wait();
        if thread == 0 {
            let fired = round.fired.lock().ok().and_then(|mut f| f.take());
            let last = round.last_seen.lock().ok().and_then(|mut l| l.take());
            if let (Some(fired), Some(last)) = (fired, last) {
                if window.measuring(fired) && !round.broken.load(Ordering::Relaxed) {
                    let micros = u64::try_from(last.saturating_duration_since(fired).as_micros())
                        .unwrap_or(u64::MAX);
                    tally.ops += 1;
                    let _ = tally.hist.record(micros.max(1));
                    window.done.fetch_add(1, Ordering::Relaxed);
                }
            }
            if !window.may_send() {
                round.done.store(true, Ordering::Relaxed);
            }
        }
        round.barrier.wait();
        if round.done.load(Ordering::Relaxed) || round.broken.load(Ordering::Relaxed) {
            break;
        }
    }
    if let Ok(c) = conn {
        let _ = c.close();
    }
}

/// Reads until a watch notification arrives; returns when it was read.
fn wait_notification(conn: &mut Conn) -> io::Result<Instant> {
    loop {
        let header = conn.read_reply()?;
        if header.xid == NOTIFICATION_XID {
            let at = Instant::now();
            decode_event(conn.body())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            return Ok(at);
        }
    }
}

/// How a run shows progress on stderr while it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Off,
    /// One line redrawn every second (stderr is a terminal).
    Terminal,
    /// A plain line every `LINE_EVERY` (stderr is a file or a pipe: a CI
    /// log gets lines, not carriage returns).
    Lines,
}

impl Progress {
    const LINE_EVERY: u64 = 5;

    /// Terminal or plain lines, by what stderr is.
    pub fn for_stderr() -> Progress {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            Progress::Terminal
        } else {
            Progress::Lines
        }
    }
}

/// Runs the measured phase (warmup included) and merges the threads' results.
pub fn run(plan: &Plan) -> Outcome {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let window = Arc::new(Window {
        measure_from,
        end: match plan.ops {
            Some(_) => None,
            None => Some(measure_from + plan.duration),
        },
        ops_limit: plan.ops,
        started: AtomicU64::new(0),
        done: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let threads = match plan.workload {
        // One writer plus at least one watcher.
        Workload::Watch => plan.connections.max(2),
        _ => plan.connections.max(1),
    };
    let round = Arc::new(WatchRound {
        barrier: Barrier::new(threads),
        fired: Mutex::new(None),
        last_seen: Mutex::new(None),
        done: AtomicBool::new(false),
        broken: AtomicBool::new(false),
    });
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let plan = plan.clone();
            let window = Arc::clone(&window);
            let round = Arc::clone(&round);
            std::thread::spawn(move || {
                let mut tally = Tally::new(plan.timeline.then_some(measure_from));
                match plan.workload {
                    Workload::Sessions => sessions_worker(&plan, &window, t, &mut tally),
                    Workload::Watch => watch_worker(&plan, &window, t, &round, &mut tally),
                    _ => pipelined_worker(&plan, &window, t, &mut tally),
                }
                tally
            })
        })
        .collect();
    let style = plan.progress;
    let progress = (style != Progress::Off).then(|| {
        let window = Arc::clone(&window);
        std::thread::spawn(move || {
            let (mut last, mut seconds) = (0, 0u64);
            while !window.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                seconds += 1;
                let done = window.done.load(Ordering::Relaxed);
                let phase = if Instant::now() < window.measure_from {
                    "warmup"
                } else {
                    "measuring"
                };
                match style {
                    Progress::Terminal => {
                        eprint!("\r{phase}: {done} ops, {} ops/s      ", done - last);
                        last = done;
                    }
                    Progress::Lines if seconds % Progress::LINE_EVERY == 0 => {
                        let rate = (done - last) / Progress::LINE_EVERY;
                        eprintln!("zk-bench: {phase}: {done} ops, {rate} ops/s");
                        last = done;
                    }
                    _ => {}
                }
            }
            if style == Progress::Terminal {
                eprintln!();
            }
        })
    });
    let mut total = Tally::new(None);
    for h in handles {
        match h.join() {
            Ok(mut t) => {
                total.samples.append(&mut t.samples);
                total.ops += t.ops;
                let _ = total.hist.add(&t.hist);
                merge(&mut total.errors, &t.errors);
            }
            Err(_) => total.error(ErrorCode::SystemError.code()),
        }
    }
    let finished = Instant::now();
    window.stop.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.join();
    }
    Outcome {
        ops: total.ops,
        seconds: finished
            .saturating_duration_since(measure_from)
            .as_secs_f64(),
        hist: total.hist,
        errors: total.errors,
        samples: total.samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections are spread over the nodes of a connect string in turn.
    #[test]
    fn connections_round_robin_over_the_nodes() {
        let servers = "a:1, b:2,c:3,";
        let picked: Vec<&str> = (0..7).map(|i| node(servers, i)).collect();
        assert_eq!(picked, ["a:1", "b:2", "c:3", "a:1", "b:2", "c:3", "a:1"]);
        assert_eq!(node("127.0.0.1:2181", 5), "127.0.0.1:2181");
        assert_eq!(node("", 3), "");
    }
}
