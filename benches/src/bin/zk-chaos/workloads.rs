//! The queue and lock workloads and their checkers.
//!
//! - queue: producers create sequential znodes under `/chaos/queue` holding
//!   a unique value; consumers take the lowest child by reading and deleting
//!   it. Every acknowledged enqueue is consumed exactly once or still queued
//!   at the end; nothing is consumed twice or without having been enqueued.
//! - lock: ZooKeeper's lock recipe with ephemeral-sequential znodes under
//!   `/chaos/lock`. A client holds the lock from the answer that showed its
//!   node lowest; it confirms the hold with writes to its node (a write
//!   succeeds only while the node, and so its session, lives). The harness
//!   checks that no two holds overlap in real time, counting a hold from
//!   the grant's answer to the sending of its last acknowledged
//!   confirmation: between those instants the committed state had that
//!   client as the holder, whatever happened to sessions afterwards.

use crate::{call, Shared, OP_TIMEOUT, ROOT};
use benches::conn::Conn;
use engine::request::{CreateRequest, Request, Response};
use engine::types::{Acl, ErrorCode, OpCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub fn queue_path() -> String {
    format!("{ROOT}/queue")
}

pub fn lock_path() -> String {
    format!("{ROOT}/lock")
}

/// A lock client's session timeout: short, so an abandoned holder's node
/// goes soon and the others get their turn during a run.
const LOCK_SESSION_MS: i32 = 4_000;
/// How long a lock client waits its turn before giving up the attempt.
const WAIT_LIMIT: Duration = Duration::from_secs(15);

fn create(path: String, data: Vec<u8>, flags: i32) -> Request {
    Request::Create {
        op: OpCode::Create,
        request: CreateRequest {
            path,
            data: Some(data),
            acl: Acl::open_unsafe(),
            flags,
            ttl: -1,
        },
    }
}

const SEQUENTIAL: i32 = 2;
const EPHEMERAL_SEQUENTIAL: i32 = 3;

// ---- queue ------------------------------------------------------------------

/// What the queue clients did: values by outcome.
#[derive(Default, Debug)]
pub struct QueueLog {
    pub enqueued: Vec<u64>,
    /// Enqueues lost with their connection: in the queue, or never.
    pub enqueue_unknown: Vec<u64>,
    pub consumed: Vec<u64>,
    /// Deletes lost with their connection: consumed, or still queued.
    pub consume_unknown: Vec<u64>,
    /// Items read whose data was not a value.
    pub garbled: Vec<String>,
}

impl QueueLog {
    pub fn ops(&self) -> usize {
        self.enqueued.len()
            + self.enqueue_unknown.len()
            + self.consumed.len()
            + self.consume_unknown.len()
    }
}

/// One queue client: enqueue or dequeue at random until stopped, a new
/// session on the next member whenever a connection fails.
pub fn queue_client(shared: &Shared, id: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let nodes = shared.addresses.len();
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
        let ok = if rng.gen_bool(0.5) {
            counter += 1;
            let value = ((id as u64 + 1) << 40) | counter;
            let request = create(
                format!("{}/item-", queue_path()),
                value.to_string().into_bytes(),
                SEQUENTIAL,
            );
            let outcome = call(c, OpCode::Create, &request);
            let mut log = shared.queue.lock().unwrap();
            match outcome {
                Ok((0, _)) => log.enqueued.push(value),
                Ok(_) => {}
                Err(_) => log.enqueue_unknown.push(value),
            }
            matches!(outcome, Ok((0, _)))
        } else {
            dequeue(shared, c, &mut rng)
        };
        if !ok {
            conn = None;
            node = (node + 1) % nodes;
        }
        std::thread::sleep(Duration::from_millis(
            rng.gen_range(0..=shared.args.think_ms),
        ));
    }
}

/// Takes one of the lowest items; false when the connection should go.
fn dequeue(shared: &Shared, c: &mut Conn, rng: &mut StdRng) -> bool {
    let list = Request::GetChildren {
        path: queue_path(),
        watch: false,
    };
    let mut children = match call(c, OpCode::GetChildren, &list) {
        Ok((0, Response::GetChildren { children })) => children,
        _ => return false,
    };
    if children.is_empty() {
        return true;
    }
    children.sort();
    // One of the lowest few, so that consumers do not all race for one.
    let child = &children[rng.gen_range(0..children.len().min(3))];
    let path = format!("{}/{child}", queue_path());
    let get = Request::GetData {
        path: path.clone(),
        watch: false,
    };
    let value = match call(c, OpCode::GetData, &get) {
        Ok((0, Response::GetData { data, .. })) => crate::parse_value(data),
        // Another consumer took it first.
        Ok((code, _)) if code == ErrorCode::NoNode.code() => return true,
        _ => return false,
    };
    let Some(value) = value else {
        shared.queue.lock().unwrap().garbled.push(child.clone());
        return true;
    };
    let outcome = call(c, OpCode::Delete, &Request::Delete { path, version: -1 });
    let mut log = shared.queue.lock().unwrap();
    match outcome {
        Ok((0, _)) => log.consumed.push(value),
        Ok((code, _)) if code == ErrorCode::NoNode.code() => return true,
        Ok(_) => return false,
        Err(_) => {
            log.consume_unknown.push(value);
            return false;
        }
    }
    true
}

/// The queue's anomalies given what is still queued at the end (child name
/// → value, `None` when its data is not a value).
pub fn check_queue(log: &QueueLog, remaining: &BTreeMap<String, Option<u64>>) -> Vec<String> {
    let mut anomalies: Vec<String> = log
        .garbled
        .iter()
        .map(|child| format!("queue: {child} read without a value"))
        .collect();
    let attempted: BTreeSet<u64> = log
        .enqueued
        .iter()
        .chain(&log.enqueue_unknown)
        .copied()
        .collect();
    let mut consumed: BTreeMap<u64, usize> = BTreeMap::new();
    for v in &log.consumed {
        *consumed.entry(*v).or_default() += 1;
    }
    let mut queued: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for (child, value) in remaining {
        match value {
            Some(v) => queued.entry(*v).or_default().push(child),
            None => anomalies.push(format!("queue: {child} holds no value")),
        }
    }
    for (v, times) in &consumed {
        if *times > 1 {
            anomalies.push(format!("queue: {v:#x} consumed {times} times"));
        }
        if let Some(children) = queued.get(v) {
            anomalies.push(format!(
                "queue: {v:#x} consumed and still queued as {children:?}"
            ));
        }
        if !attempted.contains(v) {
            anomalies.push(format!("queue: {v:#x} consumed but never enqueued"));
        }
    }
    for (v, children) in &queued {
        if children.len() > 1 {
            anomalies.push(format!("queue: {v:#x} queued twice, as {children:?}"));
        }
        if !attempted.contains(v) {
            anomalies.push(format!("queue: {v:#x} queued but never enqueued"));
        }
    }
    let maybe: BTreeSet<u64> = log.consume_unknown.iter().copied().collect();
    let lost: Vec<u64> = log
        .enqueued
        .iter()
        .filter(|v| !consumed.contains_key(v) && !queued.contains_key(v) && !maybe.contains(v))
        .copied()
        .collect();
    if !lost.is_empty() {
        anomalies.push(format!(
            "queue: {} acknowledged items neither consumed nor queued, e.g. {:#x?}",
            lost.len(),
            &lost[..lost.len().min(3)]
        ));
    }
    anomalies
}

// ---- lock -------------------------------------------------------------------

/// One confirmed hold of the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    pub client: usize,
    /// The holder's znode name under /chaos/lock.
    pub node: String,
    /// When the answer granting the lock arrived.
    pub acquired_us: u64,
    /// When the last acknowledged confirmation was sent.
    pub confirmed_us: u64,
}

/// One lock client: acquire, hold a little while confirming, release; each
/// attempt in a session of its own, abandoned on any failure.
pub fn lock_client(shared: &Shared, id: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let nodes = shared.addresses.len();
    let mut node = id % nodes;
    while !shared.stop.load(Ordering::Relaxed) {
        let conn = Conn::open(
            &shared.addresses[node],
            OP_TIMEOUT,
            None,
            LOCK_SESSION_MS,
            None,
        );
        let healthy = match conn {
            Ok(mut c) => {
                let (holding, healthy) = hold_once(shared, &mut c, id, &mut rng);
                shared.locks.lock().unwrap().extend(holding);
                if healthy {
                    let _ = c.close();
                }
                healthy
            }
            Err(_) => false,
        };
        if !healthy {
            node = (node + 1) % nodes;
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One acquisition in `c`'s session: the confirmed hold, if any, and
/// whether the session is still healthy (false: abandon it).
fn hold_once(
    shared: &Shared,
    c: &mut Conn,
    id: usize,
    rng: &mut StdRng,
) -> (Option<Holding>, bool) {
    let request = create(
        format!("{}/n-", lock_path()),
        Vec::new(),
        EPHEMERAL_SEQUENTIAL,
    );
    let mine = match call(c, OpCode::Create, &request) {
        Ok((0, Response::Create { path })) => path,
        _ => return (None, false),
    };
    let name = mine.rsplit('/').next().unwrap_or_default().to_string();
    let list = Request::GetChildren {
        path: lock_path(),
        watch: false,
    };
    // Poll until ours is the lowest: every answer also keeps the session.
    let give_up = std::time::Instant::now() + WAIT_LIMIT;
    let acquired_us = loop {
        if shared.stop.load(Ordering::Relaxed) || std::time::Instant::now() > give_up {
            return (None, true);
        }
        match call(c, OpCode::GetChildren, &list) {
            Ok((0, Response::GetChildren { children })) => {
                let now = shared.now_us();
                if !children.contains(&name) {
                    // Our session ended and took the node with it.
                    return (None, false);
                }
                if children.iter().min() == Some(&name) {
                    break now;
                }
            }
            _ => return (None, false),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut confirmed_us = None;
    for round in 0..rng.gen_range(1..=5u32) {
        std::thread::sleep(Duration::from_millis(rng.gen_range(10..60)));
        let sent = shared.now_us();
        let confirm = Request::SetData {
            path: mine.clone(),
            data: Some(round.to_string().into_bytes()),
            version: -1,
        };
        match call(c, OpCode::SetData, &confirm) {
            Ok((0, _)) => confirmed_us = Some(sent),
            _ => break,
        }
    }
    let holding = confirmed_us.map(|confirmed_us| Holding {
        client: id,
        node: name,
        acquired_us,
        confirmed_us,
    });
    // A failed release abandons the session, and its node goes with it.
    let released = call(
        c,
        OpCode::Delete,
        &Request::Delete {
            path: mine,
            version: -1,
        },
    );
    (holding, matches!(released, Ok((0, _))))
}

/// Two holds that overlap in real time.
pub fn check_locks(holdings: &[Holding]) -> Vec<String> {
    let mut sorted: Vec<&Holding> = holdings.iter().collect();
    sorted.sort_by_key(|h| h.acquired_us);
    let mut anomalies = Vec::new();
    // The hold reaching furthest so far: an overlap with any earlier hold
    // is an overlap with it.
    let mut reach: Option<&Holding> = None;
    for h in sorted {
        if let Some(r) = reach {
            if h.acquired_us < r.confirmed_us {
                anomalies.push(format!(
                    "lock: client {} ({}) held it {:.3}s..{:.3}s while client {} ({}) held it {:.3}s..{:.3}s",
                    h.client,
                    h.node,
                    h.acquired_us as f64 / 1e6,
                    h.confirmed_us as f64 / 1e6,
                    r.client,
                    r.node,
                    r.acquired_us as f64 / 1e6,
                    r.confirmed_us as f64 / 1e6,
                ));
            }
        }
        if reach.is_none_or(|r| h.confirmed_us > r.confirmed_us) {
            reach = Some(h);
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(enqueued: &[u64], unknown: &[u64], consumed: &[u64], maybe: &[u64]) -> QueueLog {
        QueueLog {
            enqueued: enqueued.to_vec(),
            enqueue_unknown: unknown.to_vec(),
            consumed: consumed.to_vec(),
            consume_unknown: maybe.to_vec(),
            garbled: Vec::new(),
        }
    }

    fn queued(items: &[(&str, u64)]) -> BTreeMap<String, Option<u64>> {
        items
            .iter()
            .map(|(name, v)| (name.to_string(), Some(*v)))
            .collect()
    }

    #[test]
    fn the_queue_checker_accepts_exactly_once_and_unknown_outcomes() {
        // 1 consumed, 2 queued, 3 (unknown enqueue) never arrived, 4 was
        // taken by a delete of unknown outcome, 5 (unknown enqueue) queued.
        let log = log(&[1, 2, 4], &[3, 5], &[1], &[4]);
        let left = queued(&[("item-02", 2), ("item-05", 5)]);
        assert_eq!(check_queue(&log, &left), Vec::<String>::new());
    }

    #[test]
    fn the_queue_checker_finds_loss_duplicates_and_inventions() {
        let lost = check_queue(&log(&[1, 2], &[], &[1], &[]), &queued(&[]));
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(lost[0].contains("neither consumed nor queued"));

        let twice = check_queue(&log(&[1], &[], &[1, 1], &[]), &queued(&[]));
        assert!(
            twice.iter().any(|a| a.contains("consumed 2 times")),
            "{twice:?}"
        );

        let both = check_queue(&log(&[1], &[], &[1], &[]), &queued(&[("item-01", 1)]));
        assert!(both.iter().any(|a| a.contains("still queued")), "{both:?}");

        let invented = check_queue(&log(&[], &[], &[7], &[]), &queued(&[("item-09", 9)]));
        assert_eq!(invented.len(), 2, "{invented:?}");

        let doubled = check_queue(
            &log(&[1], &[], &[], &[]),
            &queued(&[("item-01", 1), ("item-02", 1)]),
        );
        assert!(
            doubled.iter().any(|a| a.contains("queued twice")),
            "{doubled:?}"
        );
    }

    fn hold(client: usize, acquired_us: u64, confirmed_us: u64) -> Holding {
        Holding {
            client,
            node: format!("n-{client}"),
            acquired_us,
            confirmed_us,
        }
    }

    #[test]
    fn the_lock_checker_finds_two_holders_at_once() {
        let fine = [hold(1, 0, 10), hold(2, 10, 20), hold(3, 25, 30)];
        assert!(check_locks(&fine).is_empty());
        let overlap = [hold(1, 0, 10), hold(2, 9, 20)];
        assert_eq!(check_locks(&overlap).len(), 1);
        // A long hold overlapping one that began after a short one ended.
        let nested = [hold(1, 0, 100), hold(2, 10, 20), hold(3, 30, 40)];
        assert_eq!(check_locks(&nested).len(), 2);
    }
}
