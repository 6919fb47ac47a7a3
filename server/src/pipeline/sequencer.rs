//! The sequencer: the one place zxids are assigned. It takes whatever
//! submissions have queued up, preps each into a txn (or an answer without
//! one) against the tree plus the changes of proposals not yet applied, adds
//! session expiry and the container/TTL reaper when their tick is due, and
//! hands the result on as one proposal.
//!
//! `sequence` is the whole step, on the caller's thread with the tree's read
//! lock held by the caller and time from `Shared::clock`, so tests drive it
//! by hand. `run` is the thread around it: it waits for work or the next
//! tick, holds the read lock only while prepping one bounded batch, and waits
//! for a free slot of the in-flight window before handing a proposal on.

use super::forward::{AppMessage, Forwarding, Waiting};
use super::log::Log;
use super::reconfig::Reconfigs;
use super::replica::{Control, SequencerMode};
use super::{Entry, Logged, Origin, Proposal};
use engine::prep::Prep;
use engine::request::Request;
use engine::storage::StorageError;
use engine::tree::DataTree;
use engine::types::{ErrorCode, SessionId, Zxid};
use net::mailbox::{Forward, Submission};
use net::shared::Shared;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Submissions taken into one proposal at most, so one burst neither holds
/// the tree's read lock for long nor delays the replies of its first writes.
pub(super) const MAX_BATCH: usize = 1024;
/// How long the sequencer waits for work before looking at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

pub(super) struct Sequencer {
    shared: Arc<Shared>,
    prep: Prep,
    tick_ms: i64,
    reap_every_ms: i64,
    /// Monotonic deadlines of the next session-expiry tick and reaper pass.
    next_tick_ms: i64,
    next_reap_ms: i64,
    /// The last zxid the applier has applied: prep drops the pending changes
    /// the tree now holds.
    applied: Arc<AtomicI64>,
    /// On an ensemble's leader: the server each session's requests come
    /// through (`None` standalone, where a session has one server).
    owners: Option<HashMap<SessionId, Owner>>,
    reconfigs: Reconfigs,
}

/// Where a session is attached, as its leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// A connection of the leader itself.
    Here,
    /// A connection of this learner.
    Learner(u64),
}

/// The reference's session owner check: a session's requests must come
/// through the server it last attached to. A session with no owner yet (a
/// new leader knows none) takes the first one to ask. closeSession is never
/// checked (expiry closes sessions nobody owns), as in the reference.
fn moved(owners: &mut Option<HashMap<SessionId, Owner>>, session: SessionId, from: Owner) -> bool {
    let Some(owners) = owners.as_mut() else {
        return false;
    };
    *owners.entry(session).or_insert(from) != from
}

fn set_owner(owners: &mut Option<HashMap<SessionId, Owner>>, session: SessionId, owner: Owner) {
    if let Some(owners) = owners.as_mut() {
        owners.insert(session, owner);
    }
}

impl Sequencer {
    pub(super) fn new(
        shared: Arc<Shared>,
        prep: Prep,
        tick_ms: u64,
        container_check_interval_ms: u64,
        applied: Arc<AtomicI64>,
        reconfigs: Reconfigs,
    ) -> Sequencer {
        let now = shared.clock.monotonic_ms();
        let tick_ms = i64::try_from(tick_ms.max(1)).unwrap_or(i64::MAX);
        let reap_every_ms = i64::try_from(container_check_interval_ms.max(1)).unwrap_or(i64::MAX);
        Sequencer {
            shared,
            prep,
            tick_ms,
            reap_every_ms,
            next_tick_ms: now.saturating_add(tick_ms),
            next_reap_ms: now.saturating_add(reap_every_ms),
            applied,
            owners: None,
            reconfigs,
        }
    }

    /// What the quorum driver publishes for reconfig requests.
    pub(super) fn membership_view(
        &self,
    ) -> Arc<parking_lot::Mutex<super::reconfig::MembershipView>> {
        self.reconfigs.view()
    }

    pub(super) fn run(
        mut self,
        submissions: crossbeam_channel::Receiver<Submission>,
        mut log: Log,
        logged: crossbeam_channel::Sender<Logged>,
    ) -> Result<(), StorageError> {
        let shared = Arc::clone(&self.shared);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            if !self.next_batch(&submissions, &mut batch) {
                return Ok(());
            }
            let proposal = {
                let tree = shared.tree.read();
                self.sequence(&tree, batch.drain(..))
            };
            if proposal.is_empty() {
                continue;
            }
            let appended = match log.append(&proposal) {
                Ok(appended) => appended,
                Err(error) => {
                    tracing::error!(%error, "storage failed; the server stops");
                    shared.begin_shutdown();
                    return Err(error);
                }
            };
            // With every slot of the channel taken the applier is behind
            // (waiting for durability): this is where the backlog stops.
            // A closed channel means the applier stopped (storage failure),
            // and it said why.
            if !hand_on(&shared, &logged, Logged { proposal, appended }) {
                return Ok(());
            }
        }
    }

    /// Tracks session owners as a leader does (tests drive a leader's
    /// sequencer through `sequence` without its thread).
    #[cfg(test)]
    pub(super) fn track_owners(&mut self) {
        self.owners = Some(HashMap::new());
    }

    /// The sequencer of an ensemble member. Leading, it preps as standalone
    /// does and hands each proposal to the quorum driver, which proposes it
    /// through Zab; following or observing, it forwards every submission to
    /// the leader; otherwise (electing, syncing) it drops them, since their
    /// connections are being closed. Expiry and the reaper run only on the
    /// leader.
    pub(super) fn run_replica(
        mut self,
        submissions: crossbeam_channel::Receiver<Submission>,
        proposals: crossbeam_channel::Sender<Proposal>,
        control: Arc<Control>,
        forwarder: Forwarder,
    ) -> Result<(), StorageError> {
        let shared = Arc::clone(&self.shared);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut generation = 0;
        let mut mode = SequencerMode::Stopped;
        loop {
            if !self.next_batch(&submissions, &mut batch) {
                return Ok(());
            }
            if let Some((next_generation, next_mode)) = control.changed(generation) {
                generation = next_generation;
                mode = next_mode;
                self.owners = None;
                if let SequencerMode::Lead { first } = mode {
                    // Everything before `first` is applied (the driver waited
                    // for it): prep starts over against the tree.
                    self.prep.reset(first);
                    self.reconfigs.reset();
                    self.owners = Some(HashMap::new());
                    let now = shared.clock.monotonic_ms();
                    self.next_tick_ms = now.saturating_add(self.tick_ms);
                    self.next_reap_ms = now.saturating_add(self.reap_every_ms);
                }
            }
            match mode {
                SequencerMode::Stopped => batch.clear(),
                SequencerMode::Follow { leader } => forwarder.forward(leader, batch.drain(..)),
                SequencerMode::Lead { .. } => {
                    let proposal = {
                        let tree = shared.tree.read();
                        self.sequence(&tree, batch.drain(..))
                    };
                    if !proposal.is_empty() && !hand_on(&shared, &proposals, proposal) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Waits for work or the next tick (at most `SHUTDOWN_POLL`), then
    /// takes whatever else has queued, up to `MAX_BATCH`. False once the
    /// server is stopping or the submissions channel has closed.
    fn next_batch(
        &self,
        submissions: &crossbeam_channel::Receiver<Submission>,
        batch: &mut Vec<Submission>,
    ) -> bool {
        let shared = &self.shared;
        if shared.is_shutting_down() {
            return false;
        }
        let until_tick = self.next_tick_ms - shared.clock.monotonic_ms();
        let wait = Duration::from_millis(until_tick.max(0) as u64).min(SHUTDOWN_POLL);
        match submissions.recv_timeout(wait) {
            Ok(first) => batch.push(first),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return false,
        }
        while batch.len() < MAX_BATCH {
            let Ok(next) = submissions.try_recv() else {
                break;
            };
            batch.push(next);
        }
        true
    }

    /// Preps `submissions` in order, plus expiry and reaping if their time
    /// has come, into one proposal. `tree` is the applied tree, read-locked
    /// by the caller.
    pub(super) fn sequence(
        &mut self,
        tree: &DataTree,
        submissions: impl IntoIterator<Item = Submission>,
    ) -> Proposal {
        // Read under the lock: the tree holds at least this much, so the
        // pending changes dropped here are all visible in it.
        self.prep
            .applied(Zxid(self.applied.load(Ordering::Acquire)));
        let mut proposal = Proposal::default();
        let clock = self.shared.clock.as_ref();
        if let Some(txn) = self.reconfigs.version_static(&mut self.prep, tree, clock) {
            proposal.push_txn(txn, Origin::Internal);
        }
        for submission in submissions {
            self.prep_submission(tree, submission, &mut proposal);
        }
        let now = self.shared.clock.monotonic_ms();
        if now >= self.next_tick_ms {
            self.next_tick_ms = now.saturating_add(self.tick_ms);
            self.expire_sessions(tree, now, &mut proposal);
        }
        if now >= self.next_reap_ms {
            self.next_reap_ms = now.saturating_add(self.reap_every_ms);
            self.reap(tree, &mut proposal);
        }
        proposal
    }

    fn prep_submission(
        &mut self,
        tree: &DataTree,
        submission: Submission,
        proposal: &mut Proposal,
    ) {
        let shared = &self.shared;
        let now = shared.clock.wall_ms();
        // Every write of a session that is closing or gone is refused, as the
        // reference's checkSession does (an error txn, consuming a zxid):
        // otherwise writes pipelined after a closeSession, or sent by a
        // connection whose session expired, would be applied under a dead
        // session's id.
        let refused = |session: SessionId| {
            shared
                .sessions
                .lock()
                .get(session)
                .is_none_or(|info| info.closing)
        };
        let applied = &*self.applied;
        let prep = &mut self.prep;
        let owners = &mut self.owners;
        let reconfigs = &mut self.reconfigs;
        match submission {
            Submission::Attach { session } => set_owner(owners, session, Owner::Here),
            Submission::CreateSession { conn, timeout_ms } => {
                let session = shared.sessions.lock().next_session_id();
                set_owner(owners, session, Owner::Here);
                let txn = prep.prep_create_session(session, timeout_ms, now);
                proposal.push_txn(txn, Origin::CreateSession { conn, timeout_ms });
            }
            Submission::Sync { conn, xid, path } => {
                proposal.entries.push(Entry::Sync { conn, xid, path })
            }
            Submission::Rejected {
                conn,
                session,
                xid,
                err,
            } => {
                let err = if moved(owners, session, Owner::Here) {
                    ErrorCode::SessionMoved
                } else {
                    err
                };
                let txn = prep.prep_error(session, xid, err, now);
                proposal.push_txn(txn, Origin::Client { conn, xid });
            }
            Submission::Forwarded { from, forward } => {
                let from = Owner::Learner(from);
                let writer = Writer {
                    prep,
                    reconfigs,
                    tree,
                    applied,
                    now,
                };
                if let Some(txn) = prep_forwarded(writer, shared, owners, from, forward, refused) {
                    proposal.push_txn(txn, Origin::Replicated);
                }
            }
            Submission::Write {
                conn, session, xid, ..
            } if refused(session) => {
                let txn = prep.prep_error(session, xid, ErrorCode::SessionExpired, now);
                proposal.push_txn(txn, Origin::Client { conn, xid });
            }
            Submission::Write {
                conn,
                session,
                xid,
                request: Request::CloseSession,
                ..
            } => {
                shared.sessions.lock().set_closing(session);
                if let Some(owners) = owners.as_mut() {
                    owners.remove(&session);
                }
                let txn = prep.prep_close_session(tree, session, xid, now);
                proposal.push_txn(txn, Origin::CloseSession { conn, xid });
            }
            Submission::Write {
                conn, session, xid, ..
            } if moved(owners, session, Owner::Here) => {
                let txn = prep.prep_error(session, xid, ErrorCode::SessionMoved, now);
                proposal.push_txn(txn, Origin::Client { conn, xid });
            }
            Submission::Write {
                conn,
                session,
                xid,
                request,
                auth,
            } => {
                if let Request::Create { request, .. } = &request {
                    net::failpoint::check(net::failpoint::SEQUENCER, &request.path);
                }
                let mut writer = Writer {
                    prep,
                    reconfigs,
                    tree,
                    applied,
                    now,
                };
                match writer.prep(session, xid, &auth, &request) {
                    Ok(txn) => proposal.push_txn(txn, Origin::Client { conn, xid }),
                    Err(err) => proposal.entries.push(Entry::Refused { conn, xid, err }),
                }
            }
        }
    }

    fn expire_sessions(&mut self, tree: &DataTree, monotonic_ms: i64, proposal: &mut Proposal) {
        let now = self.shared.clock.wall_ms();
        let expired = self.shared.sessions.lock().expired(monotonic_ms);
        for session in expired {
            tracing::info!(%session, "expiring session: timeout exceeded");
            if let Some(owners) = self.owners.as_mut() {
                owners.remove(&session);
            }
            let txn = self.prep.prep_close_session(tree, session, 0, now);
            proposal.push_txn(txn, Origin::Expiry);
        }
    }

    /// Deletes empty containers and expired TTL nodes, as the reference's
    /// container manager does.
    fn reap(&mut self, tree: &DataTree, proposal: &mut Proposal) {
        let now = self.shared.clock.wall_ms();
        for path in tree.reap_candidates(now) {
            if let Ok(txn) = self.prep.prep_delete_container(tree, &path, now) {
                tracing::debug!(path, "reaping container or expired TTL node");
                proposal.push_txn(txn, Origin::Internal);
            }
        }
    }
}

/// Hands `item` to the next stage, waiting while its channel is full (the
/// in-flight window) and looking at the shutdown flag meanwhile. False once
/// the server is stopping or the next stage is gone.
fn hand_on<T>(shared: &Shared, to: &crossbeam_channel::Sender<T>, mut item: T) -> bool {
    loop {
        match to.send_timeout(item, SHUTDOWN_POLL) {
            Ok(()) => return true,
            Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                if shared.is_shutting_down() {
                    return false;
                }
                item = back;
            }
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return false,
        }
    }
}

/// Prep of one write, a reconfig included.
struct Writer<'a> {
    prep: &'a mut Prep,
    reconfigs: &'a mut Reconfigs,
    tree: &'a DataTree,
    /// The applier's last applied zxid, read only for a reconfig.
    applied: &'a AtomicI64,
    now: i64,
}

impl Writer<'_> {
    fn prep(
        &mut self,
        session: SessionId,
        xid: i32,
        auth: &[engine::types::Id],
        request: &Request,
    ) -> Result<engine::txn::Txn, ErrorCode> {
        match request {
            Request::Reconfig { .. } => Ok(self.reconfigs.prep(
                self.prep,
                self.tree,
                Zxid(self.applied.load(Ordering::Acquire)),
                session,
                xid,
                auth,
                request,
                self.now,
            )),
            _ => self
                .prep
                .prep(self.tree, session, xid, auth, request, self.now),
        }
    }
}

/// A learner's request on the leader: always exactly one txn, a refusal an
/// error txn, so that the learner answers it when the txn reaches it (an
/// `Attach` is none: it only moves the session's owner).
fn prep_forwarded(
    mut writer: Writer<'_>,
    shared: &Shared,
    owners: &mut Option<HashMap<SessionId, Owner>>,
    from: Owner,
    forward: Forward,
    refused: impl Fn(SessionId) -> bool,
) -> Option<engine::txn::Txn> {
    let now = writer.now;
    let tree = writer.tree;
    Some(match forward {
        Forward::Attach { session } => {
            set_owner(owners, session, from);
            return None;
        }
        Forward::CreateSession {
            session,
            timeout_ms,
        } => {
            set_owner(owners, session, from);
            // Tracked from now, not from when the leader applies it: the
            // learner answers its client once it has applied the txn, and
            // that client's next write may reach this sequencer before the
            // leader's own applier got there (the reference registers the
            // session when it preps it, too).
            shared
                .sessions
                .lock()
                .add(session, timeout_ms, shared.clock.monotonic_ms());
            writer.prep.prep_create_session(session, timeout_ms, now)
        }
        Forward::Rejected { session, xid, err } => {
            let err = if moved(owners, session, from) {
                ErrorCode::SessionMoved
            } else {
                err
            };
            writer.prep.prep_error(session, xid, err, now)
        }
        Forward::Sync { session, xid } => writer.prep.prep_error(session, xid, ErrorCode::Ok, now),
        Forward::Write { session, xid, .. } if refused(session) => {
            writer
                .prep
                .prep_error(session, xid, ErrorCode::SessionExpired, now)
        }
        Forward::Write {
            session,
            xid,
            request: Request::CloseSession,
            ..
        } => {
            shared.sessions.lock().set_closing(session);
            if let Some(owners) = owners.as_mut() {
                owners.remove(&session);
            }
            writer.prep.prep_close_session(tree, session, xid, now)
        }
        Forward::Write { session, xid, .. } if moved(owners, session, from) => writer
            .prep
            .prep_error(session, xid, ErrorCode::SessionMoved, now),
        Forward::Write {
            session,
            xid,
            request,
            auth,
        } => match writer.prep(session, xid, &auth, &request) {
            Ok(txn) => txn,
            Err(err) => writer.prep.prep_error(session, xid, err, now),
        },
    })
}

/// Forwarded requests are sent in messages of about this many bytes at most.
const MAX_FORWARD_BYTES: usize = 8 << 20;

/// About how many bytes a forward takes: its payloads dominate.
fn forward_size(forward: &Forward) -> usize {
    let data = |data: &Option<Vec<u8>>| data.as_ref().map_or(0, Vec::len);
    let request = match forward {
        Forward::Write { request, .. } => request,
        _ => return 32,
    };
    64 + match request {
        Request::Create { request, .. } => request.path.len() + data(&request.data),
        Request::SetData { path, data: d, .. } => path.len() + data(d),
        Request::Multi(ops) => ops
            .iter()
            .map(|op| match op {
                engine::request::MultiOp::Create { request, .. } => {
                    request.path.len() + data(&request.data) + 32
                }
                engine::request::MultiOp::SetData { path, data: d, .. } => {
                    path.len() + data(d) + 32
                }
                _ => 64,
            })
            .sum(),
        _ => 64,
    }
}

/// A learner's sequencer output: submissions become `Forward`s sent to the
/// leader in one message per batch, and the requests are remembered in
/// `Forwarding` until their txns come back.
pub(super) struct Forwarder {
    pub shared: Arc<Shared>,
    pub forwarding: Arc<Forwarding>,
    pub send: Box<dyn Fn(u64, Vec<u8>) + Send>,
}

impl Forwarder {
    fn forward(&self, leader: u64, submissions: impl Iterator<Item = Submission>) {
        let shared = &self.shared;
        let mut forwards = Vec::new();
        let mut bytes = 0;
        for submission in submissions {
            let (session, xid, waiting, forward) = match submission {
                Submission::Write {
                    conn,
                    session,
                    xid,
                    request,
                    auth,
                } => {
                    let origin = match request {
                        Request::CloseSession => Origin::CloseSession { conn, xid },
                        _ => Origin::Client { conn, xid },
                    };
                    let forward = Forward::Write {
                        session,
                        xid,
                        request,
                        auth: auth.as_ref().clone(),
                    };
                    (session, xid, Waiting::Origin(origin), forward)
                }
                Submission::Rejected {
                    conn,
                    session,
                    xid,
                    err,
                } => (
                    session,
                    xid,
                    Waiting::Origin(Origin::Client { conn, xid }),
                    Forward::Rejected { session, xid, err },
                ),
                Submission::Sync { conn, xid, path } => {
                    let Some(session) = shared.session_of(conn) else {
                        continue;
                    };
                    (
                        session,
                        xid,
                        Waiting::Sync { conn, xid, path },
                        Forward::Sync { session, xid },
                    )
                }
                Submission::CreateSession { conn, timeout_ms } => {
                    let session = shared.sessions.lock().next_session_id();
                    (
                        session,
                        0,
                        Waiting::Origin(Origin::CreateSession { conn, timeout_ms }),
                        Forward::CreateSession {
                            session,
                            timeout_ms,
                        },
                    )
                }
                Submission::Attach { session } => {
                    forwards.push(Forward::Attach { session });
                    continue;
                }
                // Only a leader takes forwarded requests.
                Submission::Forwarded { .. } => continue,
            };
            self.forwarding.wait(session, xid, waiting);
            bytes += forward_size(&forward);
            forwards.push(forward);
            // One message stays well inside a peer frame.
            if bytes >= MAX_FORWARD_BYTES {
                self.send(leader, std::mem::take(&mut forwards));
                bytes = 0;
            }
        }
        self.send(leader, forwards);
    }

    fn send(&self, leader: u64, forwards: Vec<Forward>) {
        if forwards.is_empty() {
            return;
        }
        match AppMessage::Forward(forwards).encode() {
            Ok(payload) => (self.send)(leader, payload),
            Err(error) => tracing::error!(%error, "cannot encode forwarded requests"),
        }
    }
}
