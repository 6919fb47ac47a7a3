//! The applier: the only writer of the tree. Proposals queue here in zxid
//! order; `commit(upto)` applies every queued txn up to that zxid, posting
//! watch events and replies to the owning I/O threads' mailboxes while it
//! holds the tree's write lock, so no read can see a change before its
//! connection has been sent the change's events (DESIGN.md invariant 2).
//! Entries without a txn (refusals, syncs) are answered in their place, once
//! everything sequenced before them is applied.
//!
//! The write lock is held for a bounded slice of txns at a time, never a
//! whole proposal: every read on every I/O thread and the sequencer's prep
//! wait for it. Each txn is applied and answered whole inside one slice, so
//! a reader sees a txn entirely or not at all (a multi is one txn).

use super::forward::{Forwarding, Waiting};
use super::log::Appended;
use super::snapshots::SnapshotSchedule;
use super::{Entry, Logged, Origin, Proposal, MAX_PROPOSALS_IN_FLIGHT};
use engine::apply::apply;
use engine::request::{Reply, Response};
use engine::storage::{DurableWait, StorageError};
use engine::tree::DataTree;
use engine::txn::Txn;
use engine::types::{SessionId, WatcherId, Zxid};
use net::mailbox::{Mail, Postman};
use net::shared::{ReadIndexRequest, Shared};
use parking_lot::RwLockWriteGuard;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one hold of the write lock may last before it is released to
/// waiting readers. Releasing costs the applier a wait for every reader that
/// then takes the lock (an I/O thread holds it for one pass over its
/// connections), so it is released by time, not after every few txns.
pub(super) const SLICE: Duration = Duration::from_micros(200);
/// The clock is read once per this many txns (a system call on some VMs).
pub(super) const SLICE_CHECK_TXNS: usize = 16;

enum Item {
    Txn(Txn, Origin),
    Untxn(Entry),
}

pub(super) struct Applier {
    shared: Arc<Shared>,
    queue: VecDeque<Item>,
    /// Everything up to here may be applied.
    committed: Zxid,
    applied: Arc<AtomicI64>,
    snapshots: Option<SnapshotSchedule>,
    /// On a learner: the forwarded requests this server answers.
    forwarding: Option<Arc<Forwarding>>,
    /// The leader's digests to compare against, oldest first.
    checks: VecDeque<(Zxid, u64)>,
    /// Linearizable reads' fences waiting for the tree.
    fences: Fences,
}

impl Applier {
    pub(super) fn new(
        shared: Arc<Shared>,
        applied: Zxid,
        snapshots: Option<SnapshotSchedule>,
    ) -> Applier {
        Applier {
            shared,
            queue: VecDeque::new(),
            committed: applied,
            applied: Arc::new(AtomicI64::new(applied.0)),
            snapshots,
            forwarding: None,
            checks: VecDeque::new(),
            fences: Fences::default(),
        }
    }

    /// An ensemble member's applier, which answers its forwarded requests.
    pub(super) fn with_forwarding(self, forwarding: Arc<Forwarding>) -> Applier {
        Applier {
            forwarding: Some(forwarding),
            ..self
        }
    }

    /// The last applied zxid, as the sequencer reads it.
    pub(super) fn applied_handle(&self) -> Arc<AtomicI64> {
        Arc::clone(&self.applied)
    }

    /// Queues a proposal behind those before it; nothing of it is applied
    /// or answered before `commit` covers its txns.
    pub(super) fn propose(&mut self, proposal: Proposal) {
        let mut txns = proposal.txns.into_iter();
        for entry in proposal.entries {
            match entry {
                Entry::Txn(origin) => {
                    let txn = txns.next().expect("one txn per Entry::Txn");
                    self.queue.push_back(Item::Txn(txn, origin));
                }
                untxn => self.queue.push_back(Item::Untxn(untxn)),
            }
        }
        debug_assert!(txns.next().is_none(), "a txn without its entry");
    }

    /// Everything up to `upto` is committed: applies and answers what that
    /// releases.
    pub(super) fn commit(&mut self, upto: Zxid) {
        self.committed = self.committed.max(upto);
        self.apply_ready();
    }

    fn ready(&self) -> bool {
        match self.queue.front() {
            None => false,
            Some(Item::Txn(txn, _)) => txn.zxid <= self.committed,
            Some(Item::Untxn(_)) => true,
        }
    }

    /// Applies and answers every queued entry that no longer waits for a
    /// commit.
    pub(super) fn apply_ready(&mut self) {
        if !self.ready() {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let mut postman = Postman::new(&shared.mailboxes);
        let mut tree = shared.tree.write();
        let mut slice_started = Instant::now();
        let (mut txns, mut in_slice) = (0u64, 0);
        while self.ready() {
            match self.queue.pop_front() {
                Some(Item::Txn(txn, origin)) => {
                    self.apply_one(&mut tree, &mut postman, txn, origin);
                    txns += 1;
                    in_slice += 1;
                    if in_slice == SLICE_CHECK_TXNS && slice_started.elapsed() >= SLICE {
                        // Readers queued behind the lock go first; what was
                        // posted so far is delivered meanwhile.
                        self.applied.store(tree.last_zxid().0, Ordering::Release);
                        postman.wake_all();
                        RwLockWriteGuard::bump(&mut tree);
                        slice_started = Instant::now();
                    }
                    if in_slice == SLICE_CHECK_TXNS {
                        in_slice = 0;
                    }
                }
                Some(Item::Untxn(entry)) => answer_untxn(&tree, &mut postman, entry),
                None => break,
            }
        }
        self.applied.store(tree.last_zxid().0, Ordering::Release);
        drop(tree);
        drop(postman);
        if let Some(schedule) = self.snapshots.as_mut() {
            schedule.applied(txns, &self.shared);
        }
    }

    fn apply_one(
        &mut self,
        tree: &mut DataTree,
        postman: &mut Postman<'_>,
        txn: Txn,
        origin: Origin,
    ) {
        if let engine::txn::TxnOp::Create(create) = &txn.op {
            net::failpoint::check(net::failpoint::APPLIER, &create.path);
        }
        let outcome = apply(tree, &txn);
        self.shared.post_watch_events(&outcome.events, postman);
        if self
            .checks
            .front()
            .is_some_and(|(zxid, _)| *zxid <= txn.zxid)
        {
            self.check_digest(tree);
        }
        let origin = match origin {
            Origin::Replicated => match self.waiting(&txn) {
                Some(Waiting::Origin(origin)) => origin,
                Some(Waiting::Sync { conn, xid, path }) => {
                    postman.post(Mail::Reply {
                        conn,
                        xid,
                        zxid: txn.zxid,
                        reply: Reply::ok(Response::Sync { path }),
                    });
                    return;
                }
                None => Origin::Replicated,
            },
            origin => origin,
        };
        self.settle(postman, &txn, origin, outcome.reply);
    }

    /// Queues the leader's digest at `zxid` for comparison, and compares
    /// at once if the tree is there already.
    pub(super) fn expect_digest(&mut self, zxid: Zxid, digest: u64) {
        if self.checks.len() >= 8 {
            self.checks.pop_front();
        }
        self.checks.push_back((zxid, digest));
        let shared = Arc::clone(&self.shared);
        let tree = shared.tree.read();
        self.check_digest(&tree);
    }

    /// Compares the tree with the leader's digests at its zxid; ones it has
    /// passed without stopping at (a SNAP skipped them) are dropped. A
    /// mismatch means this replica diverged: it stops rather than serve
    /// or spread a state no other replica has.
    fn check_digest(&mut self, tree: &DataTree) {
        let at = tree.last_zxid();
        while let Some(&(zxid, digest)) = self.checks.front() {
            if zxid > at {
                return;
            }
            self.checks.pop_front();
            if zxid < at {
                continue;
            }
            let ours = tree.replica_digest();
            if ours != digest {
                tracing::error!(
                    %zxid, ours = format!("{ours:#x}"), leader = format!("{digest:#x}"),
                    "this replica's tree differs from the leader's at the same zxid; stopping \
                     (move the data directory away to resynchronize from the leader)"
                );
                self.shared.begin_shutdown();
            } else {
                tracing::trace!(%zxid, "tree digest matches the leader's");
            }
        }
    }

    /// The forwarded request of ours a txn answers, if any.
    fn waiting(&self, txn: &Txn) -> Option<Waiting> {
        self.forwarding.as_ref()?.take(txn.session, txn.cxid)
    }

    /// Session bookkeeping and the reply, once a txn is applied.
    fn settle(&self, postman: &mut Postman<'_>, txn: &Txn, origin: Origin, reply: Reply) {
        let (zxid, session) = (txn.zxid, txn.session);
        match origin {
            // A connection-level error, as in the reference (ZOOKEEPER-710):
            // the connection the session moved away from is closed, not
            // answered, so its client reconnects instead of going on there.
            Origin::Client { conn, .. }
                if txn.op == engine::txn::TxnOp::Error(engine::types::ErrorCode::SessionMoved) =>
            {
                tracing::info!(%session, "session moved to another server; closing its old connection");
                postman.post(Mail::Close { conn });
            }
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
            Origin::Internal => {}
            // Another server's txn: only the session table follows it here.
            Origin::Replicated => match &txn.op {
                engine::txn::TxnOp::CreateSession { timeout_ms } => {
                    // A leader tracks a learner's session from its prep on
                    // (and may have marked it closing since): keep that.
                    let mut sessions = self.shared.sessions.lock();
                    if sessions.get(session).is_none() {
                        sessions.add(session, *timeout_ms, self.shared.clock.monotonic_ms());
                    }
                }
                engine::txn::TxnOp::CloseSession { .. } => {
                    if let Some(conn) = self.forget_session(session) {
                        postman.post(Mail::Close { conn });
                    }
                }
                _ => {}
            },
        }
    }

    /// Replaces the tree by a state the leader sent (Zab SNAP), already
    /// made durable by the driver. The session table follows the new tree.
    /// Frees the live tree while a SNAP streams in (the member serves no
    /// one meanwhile), so that it never holds two whole trees: an empty
    /// one stands in until `install` brings the leader's state or the
    /// driver's own, reloaded from disk. `applied` keeps its value, and
    /// nothing is applied or snapshotted in between.
    pub(super) fn release(&mut self) {
        if let Some(schedule) = self.snapshots.as_mut() {
            schedule.wait_idle();
        }
        let old = std::mem::take(&mut *self.shared.tree.write());
        self.checks.clear();
        self.queue.clear();
        let nodes = old.node_count();
        let started = std::time::Instant::now();
        drop(old);
        tracing::info!(
            nodes,
            drop_ms = started.elapsed().as_millis() as u64,
            "released the live tree for a SNAP"
        );
    }

    pub(super) fn install(&mut self, tree: DataTree) {
        if let Some(schedule) = self.snapshots.as_mut() {
            schedule.wait_idle();
        }
        let last = tree.last_zxid();
        let now = self.shared.clock.monotonic_ms();
        {
            let mut live = self.shared.tree.write();
            let mut sessions = self.shared.sessions.lock();
            let keep: std::collections::HashMap<SessionId, i32> = tree.sessions().collect();
            for session in sessions.ids() {
                if !keep.contains_key(&session) {
                    sessions.remove(session);
                }
            }
            for (&session, &timeout_ms) in &keep {
                if sessions.get(session).is_none() {
                    sessions.add(session, timeout_ms, now);
                }
            }
            *live = tree;
            self.applied.store(last.0, Ordering::Release);
        }
        self.committed = last;
        self.queue.clear();
    }

    /// Drops a closed session; returns the connection it was attached to.
    fn forget_session(&self, session: SessionId) -> Option<WatcherId> {
        self.shared.sessions.lock().remove(session);
        self.shared.migrated_sessions.lock().remove(&session);
        self.shared.owners.lock().remove(&session)
    }

    pub(super) fn finish(self) {
        if let Some(schedule) = self.snapshots {
            schedule.finish();
        }
    }
}

fn answer_untxn(tree: &DataTree, postman: &mut Postman<'_>, entry: Entry) {
    let zxid = tree.last_zxid();
    match entry {
        Entry::Refused { conn, xid, err } => postman.post(Mail::Reply {
            conn,
            xid,
            zxid,
            reply: Reply::error(err),
        }),
        Entry::Sync { conn, xid, path } => postman.post(Mail::Reply {
            conn,
            xid,
            zxid,
            reply: Reply::ok(Response::Sync { path }),
        }),
        Entry::Txn(_) => unreachable!("txn entries are queued as Item::Txn"),
    }
}

/// The applier thread, standalone: a txn durable here is committed. It
/// selects over logged proposals and the backend's durability wake-ups, and
/// commits each append once the backend's durable ticket has reached it.
pub(super) fn run(
    mut applier: Applier,
    shared: Arc<Shared>,
    logged: crossbeam_channel::Receiver<Logged>,
    durability: Arc<dyn DurableWait>,
) -> Result<(), StorageError> {
    // None once the backend has closed it: nothing more becomes durable.
    let mut wakeups = Some(durability.wakeups());
    let mut in_flight: VecDeque<Appended> = VecDeque::new();
    let mut logged_open = true;
    let result = loop {
        if !logged_open && in_flight.is_empty() {
            break Ok(());
        }
        // Appends not yet durable are bounded: past the bound the channel
        // fills and the sequencer waits.
        let (no_proposals, no_wakeups) = (crossbeam_channel::never(), crossbeam_channel::never());
        let take_more = logged_open && in_flight.len() < MAX_PROPOSALS_IN_FLIGHT;
        crossbeam_channel::select! {
            recv(if take_more { &logged } else { &no_proposals }) -> next => match next {
                Ok(Logged { proposal, appended }) => {
                    applier.propose(proposal);
                    in_flight.extend(appended);
                }
                Err(_) => logged_open = false,
            },
            recv(wakeups.as_ref().unwrap_or(&no_wakeups)) -> woken => {
                if woken.is_err() {
                    wakeups = None;
                }
            }
        }
        // Whatever woke us, commit what is durable now: a wake-up may have
        // come before the proposal it covers.
        let durable = match durability.durable() {
            Ok(durable) => durable,
            Err(error) => {
                tracing::error!(%error, "storage failed; the server stops");
                shared.begin_shutdown();
                break Err(error);
            }
        };
        let mut upto = None;
        while in_flight.front().is_some_and(|next| next.ticket <= durable) {
            upto = in_flight.pop_front().map(|appended| appended.last);
        }
        match upto {
            Some(upto) => applier.commit(upto),
            // Proposals without txns need no durability.
            None => applier.apply_ready(),
        };
        if wakeups.is_none() && !in_flight.is_empty() {
            // The backend closed with appends that will never be durable.
            let error = StorageError::Poisoned;
            tracing::error!(%error, "storage closed with writes not yet durable; the server stops");
            shared.begin_shutdown();
            break Err(error);
        }
    };
    applier.finish();
    result
}

/// What the quorum driver hands an ensemble member's applier: only what is
/// committed.
pub(super) enum ApplierInput {
    /// Committed txns (and answers without one) in order: apply them now.
    Apply(Proposal),
    /// The leader's whole state (SNAP), durable already, or the member's
    /// own reloaded from disk after a SNAP that did not install.
    Install(Box<DataTree>),
    /// A SNAP stream begins: free the live tree (`Applier::release`).
    Release,
    /// Read fences to pass once the tree holds `zxid` (linearizable reads).
    ReadReady {
        zxid: Zxid,
        waiters: Vec<ReadIndexRequest>,
    },
    /// This member stopped serving: every read fence waiting here fails.
    FailReads,
    /// The leader's `replica_digest` at a zxid, to compare when there.
    Check { zxid: Zxid, digest: u64 },
}

/// The applier thread of an ensemble member: the driver decides what is
/// committed, so everything it sends is applied at once.
pub(super) fn run_replica(mut applier: Applier, inputs: crossbeam_channel::Receiver<ApplierInput>) {
    let delay = net::failpoint::value(net::failpoint::APPLIER_DELAY)
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(Duration::from_millis);
    match delay {
        None => {
            for input in inputs {
                applier.handle(input);
            }
        }
        // Test-only lag: each input is handled `delay` after it arrived, a
        // steady lag rather than one that grows with every commit.
        Some(delay) => {
            let (stamped, lagged) = crossbeam_channel::unbounded();
            std::thread::spawn(move || {
                for input in inputs {
                    if stamped.send((Instant::now() + delay, input)).is_err() {
                        return;
                    }
                }
            });
            for (due, input) in lagged {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                applier.handle(input);
            }
        }
    }
    applier.finish();
}

impl Applier {
    fn handle(&mut self, input: ApplierInput) {
        match input {
            ApplierInput::Apply(proposal) => {
                let last = proposal.last_zxid();
                self.propose(proposal);
                match last {
                    Some(last) => self.commit(last),
                    None => self.apply_ready(),
                }
            }
            ApplierInput::Install(tree) => self.install(*tree),
            ApplierInput::Release => self.release(),
            ApplierInput::ReadReady { zxid, waiters } => self.fences.push(zxid, waiters),
            ApplierInput::FailReads => self.fences.fail(&self.shared),
            ApplierInput::Check { zxid, digest } => self.expect_digest(zxid, digest),
        }
        let applied = Zxid(self.applied.load(Ordering::Acquire));
        self.fences.release(applied, &self.shared);
    }
}

/// Read fences waiting for the tree to reach a read index, lowest first.
#[derive(Default)]
pub(super) struct Fences {
    waiting: std::collections::BTreeMap<Zxid, Vec<ReadIndexRequest>>,
}

impl Fences {
    fn push(&mut self, zxid: Zxid, waiters: Vec<ReadIndexRequest>) {
        self.waiting.entry(zxid).or_default().extend(waiters);
    }

    /// Passes every fence whose index the tree has reached. The tree's
    /// write lock is not held: an I/O thread takes the read lock before it
    /// reads its mail, so it sees at least `applied`.
    fn release(&mut self, applied: Zxid, shared: &Shared) {
        if self
            .waiting
            .first_key_value()
            .is_none_or(|(zxid, _)| *zxid > applied)
        {
            return;
        }
        let later = self.waiting.split_off(&Zxid(applied.0.saturating_add(1)));
        let ready = std::mem::replace(&mut self.waiting, later);
        post_fences(shared, ready.into_values().flatten(), true);
    }

    fn fail(&mut self, shared: &Shared) {
        let all = std::mem::take(&mut self.waiting);
        post_fences(shared, all.into_values().flatten(), false);
    }
}

pub(super) fn post_fences(
    shared: &Shared,
    waiters: impl IntoIterator<Item = ReadIndexRequest>,
    ok: bool,
) {
    let mut postman = Postman::new(&shared.mailboxes);
    for ReadIndexRequest { thread, ticket } in waiters {
        postman.post(Mail::ReadFence { thread, ticket, ok });
    }
}
