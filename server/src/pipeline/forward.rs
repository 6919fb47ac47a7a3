//! A learner's side of client writes: every write, session creation and
//! sync a learner's clients send goes to the leader as a `Forward`, and the
//! learner remembers who asked. The leader turns each into exactly one txn;
//! when that txn is applied here the applier finds the request again by the
//! txn's (session, cxid) and answers it. Since txns apply in zxid order and
//! the leader sequences one learner's forwards in the order sent, a
//! session's replies keep its order (DESIGN.md invariant 1).
//!
//! What travels between servers besides Zab is an `AppMessage`, encoded by
//! `engine::persist` and carried in `quorum::Message::App`.

use super::Origin;
use engine::persist::{decode_value, encode_value, CodecError};
use engine::types::{SessionId, WatcherId};
use net::mailbox::Forward;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The driver's traffic between servers, beside Zab's own messages.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum AppMessage {
    /// Learner → leader: client requests, in the order received.
    Forward(Vec<Forward>),
    /// Learner → leader: sessions of its clients that were active since the
    /// last touch (the reference's learner session touches in PING).
    Touch(Vec<SessionId>),
    /// Leader → learners, every second: the leader's tree had this
    /// `DataTree::replica_digest` at `zxid`. A learner whose tree differs
    /// at the same zxid has diverged and stops.
    Digest { zxid: i64, digest: u64 },
    /// Leader → a learner being sent SNAP: frame `seq` of the walk of the
    /// tree started at `start`, zstd-compressed records (see `snap`).
    SnapRecords {
        session: u64,
        seq: u64,
        start: i64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Leader → the same learner, after the records: committed txns the
    /// walk ran under that the NEWLEADER does not carry.
    SnapTail {
        session: u64,
        seq: u64,
        txns: Vec<TailTxn>,
    },
    /// Learner → leader, under linearizable reads: a read index for `ctx`.
    ReadIndex { ctx: u64 },
    /// Leader → that learner: the read index (the leader's commit point
    /// confirmed by a quorum), or None if it does not lead.
    ReadIndexReply { ctx: u64, zxid: Option<i64> },
}

/// A committed txn in a SNAP's tail, as `engine::persist::encode_txn` wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TailTxn {
    pub zxid: i64,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl AppMessage {
    pub(crate) fn encode(&self) -> Result<Vec<u8>, CodecError> {
        encode_value(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<AppMessage, CodecError> {
        decode_value(bytes)
    }
}

/// Who is waiting on this learner for a forwarded request.
#[derive(Debug)]
pub(crate) enum Waiting {
    /// Answered like a local request of the same origin.
    Origin(Origin),
    /// A sync: answered `Sync { path }` once its marker txn is applied.
    Sync {
        conn: WatcherId,
        xid: i32,
        path: String,
    },
}

impl Waiting {
    fn conn(&self) -> Option<WatcherId> {
        match self {
            Waiting::Origin(Origin::Client { conn, .. })
            | Waiting::Origin(Origin::CreateSession { conn, .. })
            | Waiting::Origin(Origin::CloseSession { conn, .. })
            | Waiting::Sync { conn, .. } => Some(*conn),
            Waiting::Origin(_) => None,
        }
    }
}

/// Forwarded requests not yet answered, by (session, cxid).
#[derive(Default)]
pub(crate) struct Forwarding {
    waiting: Mutex<HashMap<(SessionId, i32), (Waiting, Instant)>>,
}

impl Forwarding {
    pub(crate) fn wait(&self, session: SessionId, cxid: i32, waiting: Waiting) {
        self.waiting
            .lock()
            .insert((session, cxid), (waiting, Instant::now()));
    }

    /// The request a txn answers, if one of ours is waiting for it.
    pub(crate) fn take(&self, session: SessionId, cxid: i32) -> Option<Waiting> {
        self.waiting
            .lock()
            .remove(&(session, cxid))
            .map(|(waiting, _)| waiting)
    }

    /// Forgets every waiting request and returns their connections: the
    /// leader they went to is gone, and so are those answers.
    pub(crate) fn abandon_all(&self) -> Vec<WatcherId> {
        let mut waiting = self.waiting.lock();
        waiting
            .drain()
            .filter_map(|(_, (waiting, _))| waiting.conn())
            .collect()
    }

    /// Forgets requests waiting longer than `limit` and returns their
    /// connections, to be closed: the transport may drop a message, and a
    /// client must not wait forever for it. Its client reconnects and asks
    /// again, as after any lost connection.
    pub(crate) fn overdue(&self, limit: Duration) -> Vec<WatcherId> {
        let now = Instant::now();
        let mut waiting = self.waiting.lock();
        let late: Vec<(SessionId, i32)> = waiting
            .iter()
            .filter(|(_, (_, since))| now.duration_since(*since) > limit)
            .map(|(key, _)| *key)
            .collect();
        late.into_iter()
            .filter_map(|key| waiting.remove(&key).and_then(|(w, _)| w.conn()))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::request::Request;

    #[test]
    fn app_messages_round_trip_and_refuse_garbage() {
        let message = AppMessage::Forward(vec![
            Forward::Write {
                session: SessionId(7),
                xid: 3,
                request: Request::Delete {
                    path: "/a".into(),
                    version: -1,
                },
                auth: vec![],
            },
            Forward::Sync {
                session: SessionId(7),
                xid: 4,
            },
        ]);
        let bytes = message.encode().unwrap();
        match AppMessage::decode(&bytes).unwrap() {
            AppMessage::Forward(forwards) => assert_eq!(forwards.len(), 2),
            other => panic!("decoded {other:?}"),
        }
        assert!(AppMessage::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(AppMessage::decode(&[0xff; 9]).is_err());
    }

    #[test]
    fn waiting_requests_are_found_once_and_time_out() {
        let forwarding = Forwarding::default();
        let conn = WatcherId::new(0, 1);
        forwarding.wait(
            SessionId(1),
            5,
            Waiting::Origin(Origin::Client { conn, xid: 5 }),
        );
        assert!(forwarding.take(SessionId(1), 4).is_none());
        assert!(forwarding.take(SessionId(1), 5).is_some());
        assert!(forwarding.take(SessionId(1), 5).is_none());
        forwarding.wait(
            SessionId(2),
            1,
            Waiting::Sync {
                conn,
                xid: 1,
                path: "/".into(),
            },
        );
        assert!(forwarding.overdue(Duration::from_secs(60)).is_empty());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(forwarding.overdue(Duration::from_millis(1)), vec![conn]);
        assert_eq!(forwarding.len(), 0);
    }
}
