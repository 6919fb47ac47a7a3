//! The commit pipeline: one thread that sequences every write. It takes
//! whatever submissions have queued up as one batch, preps each into a txn
//! (assigning zxids), hands the batch to `Storage`, and only once that returns
//! applies the txns to the tree in zxid order, posting watch events and
//! replies to the owning I/O threads while it holds the tree's write lock.
//!
//! Batching is the group commit: every write that arrives while a batch is
//! being made durable rides in the next one, with no timer. Session expiry and
//! the container/TTL reaper run here too, as txns like any other.

use engine::apply::apply;
use engine::prep::Prep;
use engine::request::{Reply, Request, Response};
use engine::storage::Storage;
use engine::txn::Txn;
use engine::types::{ErrorCode, SessionId, WatcherId};
use net::mailbox::{Mail, Postman, Submission};
use net::reactor::now_ms;
use net::shared::Shared;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Submissions taken into one batch at most, so one burst cannot delay the
/// replies of the first writes in it for long.
const MAX_BATCH: usize = 4096;

pub struct Pipeline {
    pub shared: Arc<Shared>,
    pub storage: Box<dyn Storage>,
    pub prep: Prep,
    pub submissions: crossbeam_channel::Receiver<Submission>,
    pub tick_ms: u64,
    pub container_check_interval_ms: u64,
}

/// Who is waiting for a txn's outcome.
enum Origin {
    Client { conn: WatcherId, xid: i32 },
    CreateSession { conn: WatcherId, timeout_ms: i32 },
    CloseSession { conn: WatcherId, xid: i32 },
    Expiry,
    Reaper,
}

enum Entry {
    Txn {
        txn: Txn,
        origin: Origin,
    },
    /// Answered without a txn, in its place in the batch.
    Refused {
        conn: WatcherId,
        xid: i32,
        err: ErrorCode,
    },
    Sync {
        conn: WatcherId,
        xid: i32,
        path: String,
    },
}

impl Pipeline {
    pub fn run(mut self) -> Result<(), engine::storage::StorageError> {
        let tick = Duration::from_millis(self.tick_ms.max(1));
        let reap_every = Duration::from_millis(self.container_check_interval_ms.max(1));
        let mut next_tick = Instant::now() + tick;
        let mut next_reap = Instant::now() + reap_every;
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            if self.shared.is_shutting_down() {
                return Ok(());
            }
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.submissions.recv_timeout(wait) {
                Ok(first) => {
                    let shared = Arc::clone(&self.shared);
                    let tree = shared.tree.read();
                    self.prep_submission(&tree, first, &mut entries);
                    while entries.len() < MAX_BATCH {
                        let Ok(next) = self.submissions.try_recv() else {
                            break;
                        };
                        self.prep_submission(&tree, next, &mut entries);
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + tick;
                self.expire_sessions(&mut entries);
            }
            if now >= next_reap {
                next_reap = now + reap_every;
                self.reap(&mut entries);
            }
            if !entries.is_empty() {
                self.commit(&mut entries)?;
            }
        }
    }

    fn prep_submission(
        &mut self,
        tree: &engine::tree::DataTree,
        submission: Submission,
        entries: &mut Vec<Entry>,
    ) {
        let now = now_ms();
        match submission {
            Submission::CreateSession { conn, timeout_ms } => {
                let session = self.shared.sessions.lock().next_session_id();
                let txn = self.prep.prep_create_session(session, timeout_ms, now);
                entries.push(Entry::Txn {
                    txn,
                    origin: Origin::CreateSession { conn, timeout_ms },
                });
            }
            Submission::Sync { conn, xid, path } => entries.push(Entry::Sync { conn, xid, path }),
            Submission::Rejected {
                conn,
                session,
                xid,
                err,
            } => {
                let txn = self.prep.prep_error(session, xid, err, now);
                entries.push(Entry::Txn {
                    txn,
                    origin: Origin::Client { conn, xid },
                });
            }
            Submission::Write {
                conn,
                session,
                xid,
                request: Request::CloseSession,
                ..
            } => {
                self.shared.sessions.lock().set_closing(session);
                let txn = self.prep.prep_close_session(tree, session, xid, now);
                entries.push(Entry::Txn {
                    txn,
                    origin: Origin::CloseSession { conn, xid },
                });
            }
            Submission::Write {
                conn,
                session,
                xid,
                request,
                auth,
            } => match self.prep.prep(tree, session, xid, &auth, &request, now) {
                Ok(txn) => entries.push(Entry::Txn {
                    txn,
                    origin: Origin::Client { conn, xid },
                }),
                Err(err) => entries.push(Entry::Refused { conn, xid, err }),
            },
        }
    }

    fn expire_sessions(&mut self, entries: &mut Vec<Entry>) {
        let now = now_ms();
        let expired = self.shared.sessions.lock().expired(now);
        if expired.is_empty() {
            return;
        }
        let tree = self.shared.tree.read();
        for session in expired {
            tracing::info!(%session, "expiring session: timeout exceeded");
            let txn = self.prep.prep_close_session(&tree, session, 0, now);
            entries.push(Entry::Txn {
                txn,
                origin: Origin::Expiry,
            });
        }
    }

    /// Deletes empty containers and expired TTL nodes, as the reference's
    /// container manager does.
    fn reap(&mut self, entries: &mut Vec<Entry>) {
        let now = now_ms();
        let tree = self.shared.tree.read();
        for path in tree.reap_candidates(now) {
            if let Ok(txn) = self.prep.prep_delete_container(&tree, &path, now) {
                tracing::debug!(path, "reaping container or expired TTL node");
                entries.push(Entry::Txn {
                    txn,
                    origin: Origin::Reaper,
                });
            }
        }
    }

    /// Makes the batch durable, then applies it and answers.
    fn commit(&mut self, entries: &mut Vec<Entry>) -> Result<(), engine::storage::StorageError> {
        let txns: Vec<Txn> = entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Txn { txn, .. } => Some(txn.clone()),
                _ => None,
            })
            .collect();
        if !txns.is_empty() {
            if let Err(error) = self.storage.append(&txns) {
                tracing::error!(%error, "storage failed; the server stops");
                self.shared.begin_shutdown();
                return Err(error);
            }
        }
        let shared = Arc::clone(&self.shared);
        let mut postman = Postman::new(&shared.mailboxes);
        let mut tree = shared.tree.write();
        for entry in entries.drain(..) {
            match entry {
                Entry::Txn { txn, origin } => {
                    let outcome = apply(&mut tree, &txn);
                    for (path, event_type) in &outcome.events {
                        for (conn, event) in shared.watches.trigger(path, *event_type) {
                            postman.post(Mail::Event { conn, event });
                        }
                    }
                    self.settle(&mut postman, txn.zxid, txn.session, origin, outcome.reply);
                }
                Entry::Refused { conn, xid, err } => {
                    let zxid = tree.last_zxid();
                    postman.post(Mail::Reply {
                        conn,
                        xid,
                        zxid,
                        reply: Reply::error(err),
                    });
                }
                Entry::Sync { conn, xid, path } => {
                    let zxid = tree.last_zxid();
                    postman.post(Mail::Reply {
                        conn,
                        xid,
                        zxid,
                        reply: Reply::ok(Response::Sync { path }),
                    });
                }
            }
        }
        let last = tree.last_zxid();
        drop(tree);
        drop(postman);
        self.prep.applied(last);
        Ok(())
    }

    /// Session bookkeeping and the reply, once a txn is applied.
    fn settle(
        &self,
        postman: &mut Postman<'_>,
        zxid: engine::types::Zxid,
        session: SessionId,
        origin: Origin,
        reply: Reply,
    ) {
        match origin {
            Origin::Client { conn, xid } => postman.post(Mail::Reply {
                conn,
                xid,
                zxid,
                reply,
            }),
            Origin::CreateSession { conn, timeout_ms } => {
                self.shared
                    .sessions
                    .lock()
                    .add(session, timeout_ms, now_ms());
                self.shared.owners.lock().insert(session, conn);
                postman.post(Mail::SessionCreated {
                    conn,
                    session,
                    timeout_ms,
                });
            }
            Origin::CloseSession { conn, xid } => {
                self.forget_session(session);
                postman.post(Mail::Reply {
                    conn,
                    xid,
                    zxid,
                    reply,
                });
                postman.post(Mail::Close { conn });
            }
            Origin::Expiry => {
                if let Some(conn) = self.forget_session(session) {
                    postman.post(Mail::Close { conn });
                }
            }
            Origin::Reaper => {}
        }
    }

    /// Drops a closed session; returns the connection it was attached to.
    fn forget_session(&self, session: SessionId) -> Option<WatcherId> {
        self.shared.sessions.lock().remove(session);
        self.shared.owners.lock().remove(&session)
    }
}
