//! The two hand-offs between I/O threads and the commit pipeline.
//!
//! I/O threads send `Submission`s (writes, syncs, session creation) down one
//! channel to the single sequencer. The pipeline answers through each I/O
//! thread's `Mailbox`: replies, watch events, finished handshakes and orders
//! to close a connection, followed by a `mio::Waker` nudge. The reactor's
//! `fourlw` thread posts four-letter words' answers the same way.
//!
//! Invariant (DESIGN.md 2, "watch before data"): the applier posts a change's
//! watch events while it still holds the tree's write lock, and an I/O thread
//! drains its mailbox while holding the read lock, before it serves reads. So
//! any read that can see a change is answered after that change's events.

use engine::request::{Reply, Request};
use engine::types::{ErrorCode, Id, SessionId, WatcherEvent, WatcherId, Zxid};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Work for the pipeline. Everything here is answered through a mailbox,
/// in submission order per connection.
#[derive(Debug)]
pub enum Submission {
    /// A write (or a top-level check) from an established session.
    Write {
        conn: WatcherId,
        session: SessionId,
        xid: i32,
        request: Request,
        auth: Arc<Vec<Id>>,
    },
    /// A write whose body did not parse: answered with `err`, consuming a
    /// zxid as the reference does.
    Rejected {
        conn: WatcherId,
        session: SessionId,
        xid: i32,
        err: engine::types::ErrorCode,
    },
    /// `sync`: answered once every write submitted before it is applied.
    Sync {
        conn: WatcherId,
        xid: i32,
        path: String,
    },
    /// A handshake without a session id: create one.
    CreateSession { conn: WatcherId, timeout_ms: i32 },
    /// A learner's client request, on the leader: prepped like a local one,
    /// answered by the learner when the txn reaches it. `from` is the
    /// learner's server id.
    Forwarded { from: u64, forward: Forward },
    /// A session with an id attached to a connection of this server (a
    /// client reconnected): in an ensemble its leader then takes the
    /// session's requests from this server only, and answers SessionMoved
    /// to any still coming through another (the reference's session owner).
    Attach { session: SessionId },
}

/// What a learner sends its leader for one client request. Each becomes
/// exactly one txn (a refusal an error txn), so the learner answers every
/// forwarded request when that txn commits, in zxid order, which keeps each
/// session's replies in order. The learner finds its request again by the
/// txn's (session, cxid). `Attach` alone is no request: it makes the learner
/// the session's owner on the leader, in order with its requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Forward {
    Write {
        session: SessionId,
        xid: i32,
        request: Request,
        auth: Vec<Id>,
    },
    Rejected {
        session: SessionId,
        xid: i32,
        err: ErrorCode,
    },
    /// The learner chose the id (its server id is in the top byte).
    CreateSession { session: SessionId, timeout_ms: i32 },
    /// Answered by the learner once the marker txn it becomes is applied
    /// there: by then the learner holds every write the leader had
    /// sequenced before it.
    Sync { session: SessionId, xid: i32 },
    /// The session attached to a connection of the learner.
    Attach { session: SessionId },
}

#[derive(Debug)]
pub enum Mail {
    /// The answer to a `Submission::Write` or `Sync`.
    Reply {
        conn: WatcherId,
        xid: i32,
        zxid: Zxid,
        reply: Reply,
    },
    Event {
        conn: WatcherId,
        event: WatcherEvent,
    },
    /// The answer to `Submission::CreateSession`.
    SessionCreated {
        conn: WatcherId,
        session: SessionId,
        timeout_ms: i32,
    },
    /// Close the connection once what is queued for it is flushed: its
    /// session expired, was closed, or moved to another connection.
    Close { conn: WatcherId },
    /// A four-letter word's answer, rendered off the I/O thread: written as
    /// it is, then the connection is closed.
    Text { conn: WatcherId, text: String },
    /// The read fence `ticket` of I/O thread `thread` passed (see
    /// `shared::ReadIndexRequest`); with `ok` false it cannot pass (this
    /// member stopped serving), and the reads waiting on it are refused.
    ReadFence {
        thread: usize,
        ticket: u64,
        ok: bool,
    },
}

impl Mail {
    /// The connection the mail is for; none for a thread's read fence.
    pub fn conn(&self) -> Option<WatcherId> {
        match self {
            Mail::Reply { conn, .. }
            | Mail::Event { conn, .. }
            | Mail::SessionCreated { conn, .. }
            | Mail::Close { conn }
            | Mail::Text { conn, .. } => Some(*conn),
            Mail::ReadFence { .. } => None,
        }
    }

    /// The I/O thread the mail goes to.
    pub fn thread(&self) -> usize {
        match self {
            Mail::ReadFence { thread, .. } => *thread,
            mail => mail.conn().map_or(0, |conn| conn.thread()),
        }
    }
}

/// One I/O thread's inbox. Senders push and wake; the owner swaps the whole
/// queue out in one lock.
pub struct Mailbox {
    queue: Mutex<Vec<Mail>>,
    /// Connections accepted by another thread and handed to this one.
    incoming: Mutex<Vec<(crate::tls::Stream, std::net::SocketAddr)>>,
    waker: mio::Waker,
}

impl Mailbox {
    pub fn new(waker: mio::Waker) -> Mailbox {
        Mailbox {
            queue: Mutex::new(Vec::new()),
            incoming: Mutex::new(Vec::new()),
            waker,
        }
    }

    /// Queues without waking; call `wake` once after a batch.
    pub fn post(&self, mail: Mail) {
        self.queue.lock().push(mail);
    }

    pub fn wake(&self) {
        // A failed wake means the poll is gone: the thread is shutting down.
        let _ = self.waker.wake();
    }

    pub fn has_mail(&self) -> bool {
        !self.queue.lock().is_empty()
    }

    pub fn hand_over(&self, stream: crate::tls::Stream, peer: std::net::SocketAddr) {
        self.incoming.lock().push((stream, peer));
        self.wake();
    }

    pub fn take_incoming(&self) -> Vec<(crate::tls::Stream, std::net::SocketAddr)> {
        std::mem::take(&mut *self.incoming.lock())
    }

    pub fn drain(&self, into: &mut Vec<Mail>) {
        let mut queue = self.queue.lock();
        if into.is_empty() {
            std::mem::swap(&mut *queue, into);
        } else {
            into.append(&mut queue);
        }
    }
}

/// Posts mail to the right I/O thread and remembers which ones to wake.
pub struct Postman<'a> {
    mailboxes: &'a [Mailbox],
    touched: u64,
}

impl<'a> Postman<'a> {
    pub fn new(mailboxes: &'a [Mailbox]) -> Postman<'a> {
        assert!(mailboxes.len() <= 64, "at most 64 I/O threads");
        Postman {
            mailboxes,
            touched: 0,
        }
    }

    pub fn post(&mut self, mail: Mail) {
        let thread = mail.thread();
        // A connection id always names one of our threads; a stray one is a bug.
        let mailbox = &self.mailboxes[thread];
        mailbox.post(mail);
        self.touched |= 1 << thread;
    }

    pub fn wake_all(&mut self) {
        for (thread, mailbox) in self.mailboxes.iter().enumerate() {
            if self.touched & (1 << thread) != 0 {
                mailbox.wake();
            }
        }
        self.touched = 0;
    }
}

impl Drop for Postman<'_> {
    fn drop(&mut self) {
        self.wake_all();
    }
}
