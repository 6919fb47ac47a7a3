//! The session workload: what ZooKeeper promises one session, checked as
//! the client runs.
//!
//! Each client keeps one session across connections: when one fails it
//! resumes the session on the next member, with the highest zxid it has
//! seen. It owns `/chaos/s{id}`, which only it writes, with increasing
//! values, and watches the registers the register clients write. Checked:
//!
//! - FIFO: replies come in the order of the requests (a pipelined batch of
//!   writes and reads of its own node);
//! - its own writes: a read right after an acknowledged write in the same
//!   batch returns it; any read returns a value at least the session's
//!   newest acknowledged or read one (never an older state), written by
//!   this client at some time;
//! - monotonic zxids: every reply's zxid is at least the one before, in
//!   this session, whichever member answered;
//! - watches: a change a watch covers is never visible to the session
//!   before the watch's notification arrived.
//!
//! A new session (the old one expired) restarts the per-session checks.

use crate::{OP_TIMEOUT, ROOT};
use benches::conn::{create_request, Conn, Resume};
use engine::request::{Request, Response};
use engine::types::{EventType, OpCode};
use net::proto::{decode_event, decode_reply, NOTIFICATION_XID};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Short enough to expire during some faults, long enough to survive most.
const SESSION_TIMEOUT_MS: i32 = 6_000;
/// Writes (each followed by a read) per pipelined batch.
const BATCH: u64 = 4;

/// What the session clients checked and found.
#[derive(Default, Debug)]
pub struct SessionReport {
    pub checks: u64,
    pub anomalies: Vec<String>,
    /// Connections after the first that resumed a session.
    pub resumed: u64,
    /// Sessions found expired on resuming, replaced by new ones.
    pub expired: u64,
}

/// The checks of one session, fed what the client sends and receives.
#[derive(Debug, Default)]
struct Checker {
    /// The highest reply zxid in this session.
    zxid: i64,
    /// The newest value of the own node this session wrote (acknowledged)
    /// or read: later reads return it or something newer.
    floor: u64,
    /// Watches armed on this connection: path → version seen when armed.
    watches: BTreeMap<String, i32>,
    checks: u64,
}

impl Checker {
    fn reply(&mut self, zxid: i64) -> Result<(), String> {
        self.checks += 1;
        if zxid < self.zxid {
            return Err(format!(
                "reply zxid {zxid:#x} after {:#x}: an older state",
                self.zxid
            ));
        }
        self.zxid = zxid;
        Ok(())
    }

    /// An acknowledged write of the own node.
    fn wrote(&mut self, value: u64) {
        self.floor = self.floor.max(value);
    }

    /// A read of the own node. `expected`: the write just before it in the
    /// same batch, acknowledged. `written`: every value this client ever
    /// sent (whatever the outcome), and the initial 0.
    fn read_own(
        &mut self,
        value: u64,
        expected: Option<u64>,
        written: &BTreeSet<u64>,
    ) -> Result<(), String> {
        self.checks += 1;
        if let Some(expected) = expected {
            if value != expected {
                return Err(format!(
                    "read {value} right after its acknowledged write of {expected}"
                ));
            }
        }
        if !written.contains(&value) {
            return Err(format!("read {value}, which it never wrote"));
        }
        if value < self.floor {
            return Err(format!(
                "read {value} after having written or read {}",
                self.floor
            ));
        }
        self.floor = value;
        Ok(())
    }

    fn armed(&mut self, path: &str, version: i32) {
        self.watches.insert(path.to_string(), version);
    }

    fn notified(&mut self, path: &str) {
        self.watches.remove(path);
    }

    /// A read of a watched path: a newer version than the armed one means
    /// the change is visible, so its notification must have come first.
    fn read_watched(&mut self, path: &str, version: i32) -> Result<(), String> {
        self.checks += 1;
        match self.watches.get(path) {
            Some(&armed) if version > armed => Err(format!(
                "{path} visible at version {version} but the watch armed at version {armed} has not fired"
            )),
            _ => Ok(()),
        }
    }

    /// Watches do not survive the connection here (no SetWatches sent).
    fn new_connection(&mut self) {
        self.watches.clear();
    }
}

/// A reply, or a failure that ends the connection.
enum Failure {
    /// The connection failed: outcomes of what is unanswered are unknown.
    Lost,
    /// A check failed.
    Anomaly(String),
}

impl From<io::Error> for Failure {
    fn from(_: io::Error) -> Failure {
        Failure::Lost
    }
}

/// One client's connection and session.
struct Session<'a> {
    id: usize,
    addresses: &'a [String],
    node: usize,
    conn: Conn,
    checker: Checker,
    /// Every value sent to the own node.
    written: BTreeSet<u64>,
    next: u64,
    own: String,
    report: &'a Mutex<SessionReport>,
}

impl Session<'_> {
    fn describe(&self, what: &str) -> String {
        let session = self.conn.resume(0).session_id;
        format!(
            "session: client {} session {session:#x} via {}: {what}",
            self.id, self.addresses[self.node]
        )
    }

    /// Reads the reply to `xid`, handling the notifications before it.
    fn reply(&mut self, xid: i32, op: OpCode) -> Result<Response, Failure> {
        loop {
            let header = self.conn.read_reply()?;
            if header.xid == NOTIFICATION_XID {
                let event = decode_event(self.conn.body()).map_err(|_| Failure::Lost)?;
                if event.event_type == EventType::NodeDataChanged {
                    self.checker.notified(&event.path);
                }
                continue;
            }
            if header.xid != xid {
                return Err(Failure::Anomaly(format!(
                    "reply to xid {} where xid {xid} was next: out of order",
                    header.xid
                )));
            }
            self.checker.reply(header.zxid).map_err(Failure::Anomaly)?;
            if header.err != 0 {
                return Ok(Response::Empty);
            }
            let (_, reply) = decode_reply(op, self.conn.body()).map_err(|_| Failure::Lost)?;
            return Ok(reply.body);
        }
    }

    /// Writes and reads of the own node, pipelined.
    fn batch(&mut self) -> Result<(), Failure> {
        let mut sent = Vec::new();
        for _ in 0..BATCH {
            self.next += 1;
            let value = self.next;
            self.written.insert(value);
            let set = Request::SetData {
                path: self.own.clone(),
                data: Some(value.to_string().into_bytes()),
                version: -1,
            };
            let get = Request::GetData {
                path: self.own.clone(),
                watch: false,
            };
            sent.push((self.conn.queue(&set)?.0, value));
            sent.push((self.conn.queue(&get)?.0, value));
        }
        self.conn.flush()?;
        let mut acked = None;
        for (i, (xid, value)) in sent.into_iter().enumerate() {
            if i % 2 == 0 {
                match self.reply(xid, OpCode::SetData)? {
                    Response::Stat(_) => {
                        self.checker.wrote(value);
                        acked = Some(value);
                    }
                    _ => acked = None,
                }
            } else if let Response::GetData { data, .. } = self.reply(xid, OpCode::GetData)? {
                let read = crate::parse_value(data).unwrap_or(u64::MAX);
                self.checker
                    .read_own(read, acked, &self.written)
                    .map_err(Failure::Anomaly)?;
            }
        }
        Ok(())
    }

    /// Reads the own node alone (after a reconnect: whatever landed of the
    /// writes whose answers were lost).
    fn read_own(&mut self) -> Result<(), Failure> {
        let get = Request::GetData {
            path: self.own.clone(),
            watch: false,
        };
        let (xid, _) = self.conn.queue(&get)?;
        self.conn.flush()?;
        if let Response::GetData { data, .. } = self.reply(xid, OpCode::GetData)? {
            let read = crate::parse_value(data).unwrap_or(u64::MAX);
            self.checker
                .read_own(read, None, &self.written)
                .map_err(Failure::Anomaly)?;
        }
        Ok(())
    }

    /// Reads a register, arming a watch on it unless one is armed.
    fn read_register(&mut self, key: usize) -> Result<(), Failure> {
        let path = crate::register_path(key);
        let watch = !self.checker.watches.contains_key(&path);
        let get = Request::GetData {
            path: path.clone(),
            watch,
        };
        let (xid, _) = self.conn.queue(&get)?;
        self.conn.flush()?;
        if let Response::GetData { stat, .. } = self.reply(xid, OpCode::GetData)? {
            self.checker
                .read_watched(&path, stat.version)
                .map_err(Failure::Anomaly)?;
            if watch {
                self.checker.armed(&path, stat.version);
            }
        }
        Ok(())
    }
}

/// Connects to the members in turn from `*node`, resuming `resume` if
/// given; Ok(None) when that session has expired.
fn connect(
    addresses: &[String],
    node: &mut usize,
    resume: Option<&Resume>,
    stop: &AtomicBool,
) -> Option<io::Result<Conn>> {
    while !stop.load(Ordering::Relaxed) {
        match Conn::open(
            &addresses[*node],
            OP_TIMEOUT,
            None,
            SESSION_TIMEOUT_MS,
            resume,
        ) {
            Ok(conn) => return Some(Ok(conn)),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && resume.is_some() => {
                return Some(Err(e));
            }
            Err(_) => {
                *node = (*node + 1) % addresses.len();
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    None
}

pub fn client(
    addresses: &[String],
    id: usize,
    seed: u64,
    stop: &AtomicBool,
    report: &Mutex<SessionReport>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut node = id % addresses.len();
    let own = format!("{ROOT}/s{id}");
    let mut written = BTreeSet::from([0]);
    let mut next = 0;
    let mut resume: Option<Resume> = None;
    let mut checker = Checker::default();
    let mut checks = 0;
    'sessions: while !stop.load(Ordering::Relaxed) {
        let conn = match connect(addresses, &mut node, resume.as_ref(), stop) {
            None => break,
            Some(Ok(conn)) => conn,
            Some(Err(_)) => {
                // Expired: a new session, whose checks start afresh.
                report.lock().unwrap().expired += 1;
                resume = None;
                checks += checker.checks;
                checker = Checker::default();
                continue;
            }
        };
        if resume.is_some() {
            report.lock().unwrap().resumed += 1;
        }
        checker.new_connection();
        let mut session = Session {
            id,
            addresses,
            node,
            conn,
            checker,
            written: std::mem::take(&mut written),
            next,
            own: own.clone(),
            report,
        };
        let outcome = (|| {
            // The own node, once (it may exist from an earlier session).
            let (xid, _) = session
                .conn
                .queue(&create_request(own.clone(), b"0".to_vec()))?;
            session.conn.flush()?;
            session.reply(xid, OpCode::Create)?;
            session.read_own()?;
            while !stop.load(Ordering::Relaxed) {
                if rng.gen_bool(0.5) {
                    session.batch()?;
                } else {
                    session.read_register(rng.gen_range(0..3))?;
                }
                std::thread::sleep(Duration::from_millis(rng.gen_range(0..=20)));
            }
            Ok::<(), Failure>(())
        })();
        if let Err(Failure::Anomaly(what)) = &outcome {
            let line = session.describe(what);
            session.report.lock().unwrap().anomalies.push(line);
        }
        resume = Some(session.conn.resume(session.checker.zxid));
        (checker, written, next) = (session.checker, session.written, session.next);
        if matches!(outcome, Err(Failure::Anomaly(_))) {
            // One report per session is enough to show it.
            break 'sessions;
        }
        node = (node + 1) % addresses.len();
    }
    checks += checker.checks;
    report.lock().unwrap().checks += checks;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxids_may_repeat_but_never_go_back() {
        let mut c = Checker::default();
        assert!(c.reply(5).is_ok());
        assert!(c.reply(5).is_ok());
        assert!(c.reply(9).is_ok());
        assert!(c.reply(7).is_err());
    }

    #[test]
    fn own_reads_see_the_write_before_them_and_never_an_older_state() {
        let written = BTreeSet::from([0, 1, 2, 3]);
        let mut c = Checker::default();
        assert!(c.read_own(0, None, &written).is_ok());
        c.wrote(1);
        assert!(c.read_own(1, Some(1), &written).is_ok());
        // A write whose answer was lost may have landed.
        assert!(c.read_own(3, None, &written).is_ok());
        // Older than what it already read.
        assert!(c.read_own(2, None, &written).is_err());
        // Not the write just acknowledged.
        let mut c = Checker::default();
        c.wrote(2);
        assert!(c.read_own(1, Some(2), &written).is_err());
        // Never written.
        assert!(Checker::default().read_own(7, None, &written).is_err());
    }

    #[test]
    fn a_change_is_not_visible_before_its_notification() {
        let mut c = Checker::default();
        c.armed("/chaos/reg0", 4);
        assert!(c.read_watched("/chaos/reg0", 4).is_ok());
        assert!(c.read_watched("/chaos/reg0", 5).is_err());
        c.notified("/chaos/reg0");
        assert!(c.read_watched("/chaos/reg0", 5).is_ok());
        c.armed("/chaos/reg1", 1);
        c.new_connection();
        assert!(c.read_watched("/chaos/reg1", 9).is_ok());
    }
}
