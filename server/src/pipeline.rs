//! The commit pipeline: two threads between the I/O threads and the tree.
//!
//! The *sequencer* takes whatever submissions have queued up as one batch,
//! preps each into a txn (assigning zxids; prep sees the changes of batches
//! not yet applied), hands the batch to `Storage::append`, and goes straight
//! on to the next batch. The *applier* takes batches in order, waits until
//! storage says a batch is durable, then applies its txns to the tree in zxid
//! order, posting watch events and replies to the owning I/O threads while it
//! holds the tree's write lock (DESIGN.md invariants 2 and 7).
//!
//! Group commit falls out of this shape: every write that arrives while a
//! batch is being synced is prepped into the next one, with no timer. Session
//! expiry and the container/TTL reaper run in the sequencer, as txns like any
//! other.

use engine::apply::apply;
use engine::prep::Prep;
use engine::request::{Reply, Request, Response};
use engine::storage::{DurableWait, Storage, StorageError, Ticket};
use engine::tree::DataTree;
use engine::txn::Txn;
use engine::types::{ErrorCode, SessionId, WatcherId, Zxid};
use engine::Checkpointer;
use net::mailbox::{Mail, Postman, Submission};
use net::shared::Shared;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Submissions taken into one batch at most, so one burst cannot delay the
/// replies of the first writes in it for long.
const MAX_BATCH: usize = 4096;
/// Batches prepped but not yet applied, at most; past this the sequencer
/// waits, and outstanding requests back up to the I/O threads' limits.
const MAX_BATCHES_IN_FLIGHT: usize = 64;
/// How long the sequencer waits for work before looking at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

pub struct Pipeline {
    pub shared: Arc<Shared>,
    pub storage: Box<dyn Storage>,
    pub prep: Prep,
    pub submissions: crossbeam_channel::Receiver<Submission>,
    pub tick_ms: u64,
    pub container_check_interval_ms: u64,
    /// When to write snapshots, for a backend that takes them.
    pub snapshots: Option<SnapshotPolicy>,
}

/// A snapshot every `snap_count` txns or so (randomised in
/// [snap_count/2 + 1, snap_count] as the reference does, so the servers of an
/// ensemble do not all snapshot at once), written by a background thread
/// while writes go on.
pub struct SnapshotPolicy {
    /// The backend's snapshot (native) or checkpoint (RocksDB) writer.
    pub snapshotter: Arc<dyn Checkpointer>,
    pub snap_count: u32,
    pub retain_count: usize,
    /// `autopurge.purgeInterval`: how often old snapshots and the log
    /// segments only they needed are removed; None (interval 0) never.
    pub purge_every: Option<Duration>,
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

struct Batch {
    entries: Vec<Entry>,
    ticket: Option<Ticket>,
}

impl Pipeline {
    /// Runs the sequencer on this thread and the applier on a new one, until
    /// shutdown or a storage failure.
    pub fn run(self) -> Result<(), StorageError> {
        let (batches, applier_batches) = crossbeam_channel::bounded(MAX_BATCHES_IN_FLIGHT);
        let applied = Arc::new(AtomicI64::new(self.prep.last_zxid().0));
        let mut this = self;
        let applier = Applier {
            shared: Arc::clone(&this.shared),
            durable: this.storage.waiter(),
            applied: Arc::clone(&applied),
            snapshots: this.snapshots.take().map(SnapshotSchedule::new),
        };
        let applier = std::thread::Builder::new()
            .name("applier".into())
            .spawn(move || applier.run(applier_batches))
            .map_err(|source| StorageError::Io {
                path: "applier thread".into(),
                source,
            })?;
        let shared = Arc::clone(&this.shared);
        let sequenced = Sequencer {
            pipeline: this,
            applied,
        }
        .run(batches);
        // Whichever stage stops first, for whatever reason, the server stops:
        // without the pipeline it could only serve stale reads.
        shared.begin_shutdown();
        let applied = applier.join().unwrap_or_else(|_| {
            tracing::error!("the applier panicked");
            Ok(())
        });
        sequenced.and(applied)
    }
}

struct Sequencer {
    pipeline: Pipeline,
    /// The last zxid the applier has applied.
    applied: Arc<AtomicI64>,
}

impl Sequencer {
    fn run(mut self, batches: crossbeam_channel::Sender<Batch>) -> Result<(), StorageError> {
        let tick = Duration::from_millis(self.pipeline.tick_ms.max(1));
        let reap_every = Duration::from_millis(self.pipeline.container_check_interval_ms.max(1));
        let mut next_tick = Instant::now() + tick;
        let mut next_reap = Instant::now() + reap_every;
        let shared = Arc::clone(&self.pipeline.shared);
        loop {
            if shared.is_shutting_down() {
                return Ok(());
            }
            let mut entries = Vec::new();
            // Wake at least every SHUTDOWN_POLL to notice a shutdown promptly.
            let wait = next_tick
                .saturating_duration_since(Instant::now())
                .min(SHUTDOWN_POLL);
            let first = match self.pipeline.submissions.recv_timeout(wait) {
                Ok(first) => Some(first),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
            };
            {
                let tree = shared.tree.read();
                // Read under the lock: the tree holds at least this much, so
                // the pending changes dropped here are all visible in it.
                self.pipeline
                    .prep
                    .applied(Zxid(self.applied.load(Ordering::Acquire)));
                if let Some(first) = first {
                    self.prep_submission(&tree, first, &mut entries);
                    while entries.len() < MAX_BATCH {
                        let Ok(next) = self.pipeline.submissions.try_recv() else {
                            break;
                        };
                        self.prep_submission(&tree, next, &mut entries);
                    }
                }
                let now = Instant::now();
                if now >= next_tick {
                    next_tick = now + tick;
                    self.expire_sessions(&tree, &mut entries);
                }
                if now >= next_reap {
                    next_reap = now + reap_every;
                    self.reap(&tree, &mut entries);
                }
            }
            if entries.is_empty() {
                continue;
            }
            let txns: Vec<Txn> = entries
                .iter()
                .filter_map(|entry| match entry {
                    Entry::Txn { txn, .. } => Some(txn.clone()),
                    _ => None,
                })
                .collect();
            let ticket = if txns.is_empty() {
                None
            } else {
                match self.pipeline.storage.append(&txns) {
                    Ok(ticket) => Some(ticket),
                    Err(error) => {
                        tracing::error!(%error, "storage failed; the server stops");
                        shared.begin_shutdown();
                        return Err(error);
                    }
                }
            };
            if batches.send(Batch { entries, ticket }).is_err() {
                // The applier stopped (storage failure): it said why.
                return Ok(());
            }
        }
    }

    fn prep_submission(
        &mut self,
        tree: &DataTree,
        submission: Submission,
        entries: &mut Vec<Entry>,
    ) {
        let shared = &self.pipeline.shared;
        let now = shared.clock.wall_ms();
        // Every write of a session that is closing or gone is refused, as the
        // reference's checkSession does (an error txn, consuming a zxid):
        // otherwise writes pipelined after a closeSession, or sent by a
        // connection whose session expired, would be applied under a dead
        // session's id.
        let refused = |session: SessionId| {
            !shared
                .sessions
                .lock()
                .get(session)
                .is_some_and(|info| !info.closing)
        };
        let prep = &mut self.pipeline.prep;
        match submission {
            Submission::CreateSession { conn, timeout_ms } => {
                let session = shared.sessions.lock().next_session_id();
                let txn = prep.prep_create_session(session, timeout_ms, now);
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
                let txn = prep.prep_error(session, xid, err, now);
                entries.push(Entry::Txn {
                    txn,
                    origin: Origin::Client { conn, xid },
                });
            }
            Submission::Write {
                conn,
                session,
                xid,
                ..
            } if refused(session) => {
                let txn = prep.prep_error(session, xid, ErrorCode::SessionExpired, now);
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
                shared.sessions.lock().set_closing(session);
                let txn = prep.prep_close_session(tree, session, xid, now);
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
            } => match {
                if let Request::Create { request, .. } = &request {
                    net::failpoint::check(net::failpoint::SEQUENCER, &request.path);
                }
                prep.prep(tree, session, xid, &auth, &request, now)
            } {
                Ok(txn) => entries.push(Entry::Txn {
                    txn,
                    origin: Origin::Client { conn, xid },
                }),
                Err(err) => entries.push(Entry::Refused { conn, xid, err }),
            },
        }
    }

    fn expire_sessions(&mut self, tree: &DataTree, entries: &mut Vec<Entry>) {
        let clock = &self.pipeline.shared.clock;
        let now = clock.wall_ms();
        let expired = self
            .pipeline
            .shared
            .sessions
            .lock()
            .expired(clock.monotonic_ms());
        for session in expired {
            tracing::info!(%session, "expiring session: timeout exceeded");
            let txn = self.pipeline.prep.prep_close_session(tree, session, 0, now);
            entries.push(Entry::Txn {
                txn,
                origin: Origin::Expiry,
            });
        }
    }

    /// Deletes empty containers and expired TTL nodes, as the reference's
    /// container manager does.
    fn reap(&mut self, tree: &DataTree, entries: &mut Vec<Entry>) {
        let now = self.pipeline.shared.clock.wall_ms();
        for path in tree.reap_candidates(now) {
            if let Ok(txn) = self.pipeline.prep.prep_delete_container(tree, &path, now) {
                tracing::debug!(path, "reaping container or expired TTL node");
                entries.push(Entry::Txn {
                    txn,
                    origin: Origin::Reaper,
                });
            }
        }
    }
}

struct Applier {
    shared: Arc<Shared>,
    durable: Arc<dyn DurableWait>,
    applied: Arc<AtomicI64>,
    snapshots: Option<SnapshotSchedule>,
}

impl Applier {
    fn run(mut self, batches: crossbeam_channel::Receiver<Batch>) -> Result<(), StorageError> {
        for batch in batches {
            if let Some(ticket) = batch.ticket {
                if let Err(error) = self.durable.wait(ticket) {
                    tracing::error!(%error, "storage failed; the server stops");
                    self.shared.begin_shutdown();
                    return Err(error);
                }
            }
            let txns = batch
                .entries
                .iter()
                .filter(|entry| matches!(entry, Entry::Txn { .. }))
                .count();
            self.apply(batch.entries);
            if let Some(schedule) = self.snapshots.as_mut() {
                schedule.applied(txns as u64, &self.shared);
            }
        }
        if let Some(schedule) = self.snapshots.take() {
            schedule.finish();
        }
        Ok(())
    }

    /// Applies a durable batch and answers it.
    fn apply(&self, entries: Vec<Entry>) {
        let shared = &*self.shared;
        let mut postman = Postman::new(&shared.mailboxes);
        let mut tree = shared.tree.write();
        for entry in entries {
            match entry {
                Entry::Txn { txn, origin } => {
                    if let engine::txn::TxnOp::Create(create) = &txn.op {
                        net::failpoint::check(net::failpoint::APPLIER, &create.path);
                    }
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
        self.applied.store(tree.last_zxid().0, Ordering::Release);
        drop(tree);
    }

    /// Session bookkeeping and the reply, once a txn is applied.
    fn settle(
        &self,
        postman: &mut Postman<'_>,
        zxid: Zxid,
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
                self.shared.sessions.lock().add(
                    session,
                    timeout_ms,
                    self.shared.clock.monotonic_ms(),
                );
                self.shared.owners.lock().insert(session, conn);
                postman.post(Mail::SessionCreated {
                    conn,
                    session,
                    timeout_ms,
                });
            }
            Origin::CloseSession { conn, xid } => {
                // The session may have reattached elsewhere between the
                // closeSession's submission and its prep: that connection is
                // closed too, or it would go on serving a session whose
                // ephemerals are gone.
                let owner = self.forget_session(session);
                postman.post(Mail::Reply {
                    conn,
                    xid,
                    zxid,
                    reply,
                });
                postman.post(Mail::Close { conn });
                if let Some(owner) = owner.filter(|owner| *owner != conn) {
                    postman.post(Mail::Close { conn: owner });
                }
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

/// Counts applied txns and starts a snapshot thread when one is due (never
/// two at once).
struct SnapshotSchedule {
    policy: SnapshotPolicy,
    since_last: u64,
    due_at: u64,
    seed: u64,
    running: Option<std::thread::JoinHandle<()>>,
    last_purge: Instant,
}

impl SnapshotSchedule {
    fn new(policy: SnapshotPolicy) -> SnapshotSchedule {
        let seed = net::clock::wall_ms() as u64 | 1;
        let mut schedule = SnapshotSchedule {
            policy,
            since_last: 0,
            due_at: 0,
            seed,
            running: None,
            last_purge: Instant::now(),
        };
        schedule.due_at = schedule.next_threshold();
        schedule
    }

    fn next_threshold(&mut self) -> u64 {
        // xorshift: spreading snapshots needs no better randomness.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let half = u64::from(self.policy.snap_count / 2);
        half + 1 + self.seed % (u64::from(self.policy.snap_count) - half)
    }

    /// Called after each applied batch: starts a snapshot when one is due,
    /// and a purge when the purge interval has passed (one background job
    /// at a time; a due job waits for the next batch).
    fn applied(&mut self, txns: u64, shared: &Arc<Shared>) {
        self.since_last += txns;
        if self
            .running
            .as_ref()
            .is_some_and(|thread| !thread.is_finished())
        {
            return;
        }
        let snapshot_due = self.since_last >= self.due_at;
        let purge_due = self
            .policy
            .purge_every
            .is_some_and(|every| self.last_purge.elapsed() >= every);
        if !snapshot_due && !purge_due {
            return;
        }
        if snapshot_due {
            self.since_last = 0;
            self.due_at = self.next_threshold();
        }
        if purge_due {
            self.last_purge = Instant::now();
        }
        let snapshotter = Arc::clone(&self.policy.snapshotter);
        let retain_count = self.policy.retain_count;
        let shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                if snapshot_due {
                    let started = Instant::now();
                    match snapshotter.take(&shared.tree) {
                        Ok(written) => {
                            shared.stats.snapshot_taken(started.elapsed());
                            tracing::info!(
                                start = %written.start,
                                end = %written.end,
                                location = %written.location,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "snapshot written"
                            )
                        }
                        // A failed snapshot loses nothing: the log still has every txn.
                        Err(error) => tracing::warn!(%error, "snapshot failed"),
                    }
                }
                if purge_due {
                    match snapshotter.purge(retain_count) {
                        Ok(removed) if removed > 0 => {
                            tracing::info!(files = removed, "purged old snapshots and log segments")
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "purge failed"),
                    }
                }
            });
        match spawned {
            Ok(thread) => self.running = Some(thread),
            Err(error) => tracing::warn!(%error, "cannot start the snapshot thread"),
        }
    }

    fn finish(self) {
        if let Some(thread) = self.running {
            let _ = thread.join();
        }
    }
}
