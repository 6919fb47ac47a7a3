//! The quorum driver: an ensemble member's log stage. One thread owns the
//! Zab `quorum::Peer`, the `Storage` and the peer transport, and carries out
//! what the peer asks (send, append, truncate, install, persist epochs,
//! commit). Around it the pipeline's other stages keep their jobs:
//!
//! ```text
//! leader:   Submission ─▶ sequencer ─Proposal─▶ driver: Peer::propose ─▶ Append + PROPOSALs
//!           (local, and learners'        │              quorum of durable ACKs
//!            Forwards)                   ▼
//!                                        Commit(upto) ─▶ applier: apply, answer, fire watches
//! learner:  Submission ─▶ sequencer ─Forward─▶ leader ... PROPOSAL ─▶ driver: Append, ACK when
//!           (remembered in Forwarding)          durable; COMMIT ─▶ applier: apply and answer
//!                                               the forwarded requests it finds by (session, cxid)
//! ```
//!
//! Rules this keeps:
//! - The applier sees only committed txns, in zxid order; the tree never
//!   holds an uncommitted one. So a SNAP's walk of the tree (`snap`), begun
//!   once the applier reached the commit point the peer names and before
//!   any later commit is handed over, starts at exactly that zxid and sees
//!   only committed states after it; and a TRUNC never reaches below what
//!   the tree holds.
//! - At start-up the recovered tree is the peer's floor, as if it were one
//!   snapshot: its txns are not offered for DIFF, so a learner behind it is
//!   sent SNAP; every sync decision stays safe because a floor the leader
//!   does not hold always gets SNAP.
//! - Clients are served only while the peer leads an established epoch or
//!   follows one up to date (`net::shared::Replica`). Leaving that state
//!   closes every client connection and forgets forwarded requests, as
//!   Apache does; the clients reconnect to a serving member.
//! - A new leader's sequencer starts only once the applier has applied the
//!   whole initial history, with prep reset to the new epoch, so the zxid
//!   prep assigns is the one the peer assigns (checked on every proposal).

use super::applier::{run_replica as run_applier, Applier, ApplierInput};
use super::forward::{AppMessage, Forwarding, TailTxn};
use super::reconfig::{Members, MembershipView};
use super::sequencer::{Forwarder, Sequencer};
use super::snap::{self, Incoming, Trailer, WalkEnd};
use super::{Entry, Origin, Proposal, MAX_PROPOSALS_IN_FLIGHT};
use crate::config::ServerSpec;
use engine::persist::{decode_txn, encode_txn};
use engine::storage::{DurableWait, Storage, StorageError, Ticket};
use engine::tree::DataTree;
use engine::txn::{Txn as EngineTxn, TxnOp};
use engine::types::Zxid;
use net::mailbox::{Mail, Postman, Submission};
use net::shared::{Mode, ReadIndexRequest, ReplicaView, Shared};
use parking_lot::Mutex;
use quorum::transport::{Transport, TransportConfig};
use quorum::wire::{Channel, Envelope};
use quorum::{Action, Epochs, Message, Peer, Prng, Role, ServerId, SyncMode};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything an ensemble member's pipeline needs beyond standalone's.
pub struct ReplicaSetup {
    pub quorum: quorum::Config,
    pub transport: TransportConfig,
    /// Where acceptedEpoch and currentEpoch are kept.
    pub epochs_path: PathBuf,
    /// The config file this server started from: an activated membership
    /// is written next to it, as the reference does.
    pub config_file: Option<PathBuf>,
    /// The member list in force, with addresses (`quorum`'s version).
    pub servers: BTreeMap<u64, ServerSpec>,
    /// One quorum tick; the peer's limits are counted in these.
    pub tick: Duration,
    /// With `readonlymode.enabled`: how long to be looking before serving
    /// read-only clients.
    pub read_only_after: Option<Duration>,
}

/// Txns the peer keeps in memory beyond its floor, to sync a lagging
/// learner by DIFF; a learner further behind is sent SNAP.
const DIFF_WINDOW: usize = 50_000;
/// A SNAP stream waits while this many bytes are queued to its learner.
const SNAP_QUEUED_BYTES: usize = 8 << 20;
/// Messages held back for a learner while its SNAP streams; beyond this the
/// stream is dropped and the learner syncs again.
const SNAP_MAX_HELD: usize = 50_000;
/// A learner asks the leader again for a read index unanswered this long
/// (the request or its answer was lost with a connection).
const READ_INDEX_RETRY: Duration = Duration::from_millis(500);
/// A forwarded request unanswered this long has its connection closed.
const OVERDUE_FORWARD: Duration = Duration::from_secs(30);
/// Ticks between the leader's digests to its learners (one second).
const DIGEST_EVERY_TICKS: u64 = 20;
/// Ticks between a learner's session touches to the leader.
const TOUCH_EVERY_TICKS: u64 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SequencerMode {
    /// Not serving: submissions are dropped (their connections close).
    Stopped,
    /// A learner's: forward everything to `leader`.
    Follow { leader: u64 },
    /// The leader's: prep, with the first zxid after `first`.
    Lead { first: Zxid },
}

/// How the driver tells the sequencer thread what it is now.
pub(super) struct Control {
    state: Mutex<(u64, SequencerMode)>,
}

impl Default for Control {
    fn default() -> Control {
        Control {
            state: Mutex::new((0, SequencerMode::Stopped)),
        }
    }
}

impl Control {
    fn set(&self, mode: SequencerMode) {
        let mut state = self.state.lock();
        state.0 += 1;
        state.1 = mode;
    }

    /// The mode, if it changed since `generation`.
    pub(super) fn changed(&self, generation: u64) -> Option<(u64, SequencerMode)> {
        let state = self.state.lock();
        (state.0 != generation).then_some(*state)
    }
}

/// What the driver serves as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Serving {
    Leader { epoch: u32 },
    Learner { leader: u64, observer: bool },
}

/// A leader's sequenced entries not yet committed, in sequence order.
enum Item {
    Txn(EngineTxn, Origin),
    Untxn(Entry),
}

fn qz(zxid: Zxid) -> quorum::Zxid {
    quorum::Zxid(zxid.0 as u64)
}

fn ez(zxid: quorum::Zxid) -> Zxid {
    Zxid(zxid.0 as i64)
}

fn io_error(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The tick this member counts in: `tickTime`, unless the test-only
/// failpoint `tick-percent=<p>` makes its clock run at p% of the others'
/// (zk-chaos's clock nemesis: members whose timeouts disagree).
fn skewed(tick: Duration) -> Duration {
    match net::failpoint::value(net::failpoint::TICK_PERCENT).and_then(|p| p.parse::<u32>().ok()) {
        Some(percent) if percent > 0 => tick * percent / 100,
        _ => tick,
    }
}

/// Runs an ensemble member's pipeline until shutdown or a storage failure:
/// the sequencer and the applier on threads of their own, the driver here.
pub(super) fn run(
    setup: ReplicaSetup,
    shared: Arc<Shared>,
    storage: Box<dyn Storage>,
    sequencer: Sequencer,
    applier: Applier,
    submissions: crossbeam_channel::Receiver<Submission>,
) -> Result<(), StorageError> {
    let epochs = load_epochs(&setup.epochs_path)?;
    let floor = shared.tree.read().last_zxid();
    // The whole log was replayed into the tree: a floor that may end in
    // proposals of an abandoned epoch, none of it known committed (nothing
    // records what was), so a leader may replace it by SNAP.
    let durable = quorum::Durable {
        epochs,
        floor: qz(floor),
        log: Vec::new(),
        settled: quorum::Zxid::ZERO,
    };
    let seed = shared.clock.wall_ms() as u64 ^ (setup.quorum.id.0 << 48);
    let peer =
        Peer::recover(setup.quorum.clone(), Prng::from_seed(seed), durable).map_err(|error| {
            StorageError::Io {
                path: setup.epochs_path.clone(),
                source: std::io::Error::other(error.to_string()),
            }
        })?;
    let mut members = Members::new(
        setup.quorum.id.0,
        setup.config_file,
        setup.servers,
        setup.quorum.version.0,
    );
    if let Some(text) = crate::ensemble::written_config(&shared.tree.read()) {
        members.logged(&text);
    }
    let listen = setup.transport.listen;
    let (transport, inbound) = Transport::start(setup.transport)
        .map_err(|source| io_error(Path::new(&listen.quorum.to_string()), source))?;
    transport.set_peers(members.peers());
    let transport = Arc::new(transport);
    let membership_view = sequencer.membership_view();
    let forwarding = Arc::new(Forwarding::default());
    let control = Arc::new(Control::default());
    let (proposals, proposals_rx) = crossbeam_channel::bounded(MAX_PROPOSALS_IN_FLIGHT);
    // Unbounded: the driver must never block on the applier (a large batch
    // of commits, say), or its pings stop. What queues is bounded by the
    // commits of that time.
    let (to_applier, applier_rx) = crossbeam_channel::unbounded();
    let applied = applier.applied_handle();
    let applier = applier.with_forwarding(Arc::clone(&forwarding));
    let spawn_error = |source| io_error(Path::new("pipeline thread"), source);
    let applier = std::thread::Builder::new()
        .name("applier".into())
        .spawn(move || run_applier(applier, applier_rx))
        .map_err(spawn_error)?;
    let sender = Arc::clone(&transport);
    let forwarder = Forwarder {
        shared: Arc::clone(&shared),
        forwarding: Arc::clone(&forwarding),
        send: Box::new(move |to, payload| sender.send(ServerId(to), Message::App { payload })),
    };
    let sequencer_control = Arc::clone(&control);
    let sequencer = std::thread::Builder::new()
        .name("sequencer".into())
        .spawn(move || sequencer.run_replica(submissions, proposals, sequencer_control, forwarder))
        .map_err(spawn_error)?;
    tracing::info!(
        id = setup.quorum.id.0,
        voters = setup.quorum.voters.len(),
        observers = setup.quorum.observers.len(),
        %floor,
        "joining the ensemble"
    );
    let durability = storage.waiter();
    let mut driver = Driver {
        shared: Arc::clone(&shared),
        peer,
        transport: Arc::clone(&transport),
        storage,
        durability,
        in_flight: VecDeque::new(),
        to_applier,
        applied,
        handed: floor,
        control,
        forwarding,
        members,
        membership_view,
        epochs_path: setup.epochs_path,
        snapshot_in: None,
        incoming: None,
        released: None,
        installed: Zxid(0),
        snaps_out: HashMap::new(),
        damaged_snap_sent: false,
        snap_done: crossbeam_channel::unbounded(),
        local: VecDeque::new(),
        reads_waiting: Vec::new(),
        reads_out: HashMap::new(),
        next_read: 0,
        serving: None,
        tick: skewed(setup.tick),
        read_only_after: setup.read_only_after,
        ticks: 0,
        looking_since: Instant::now(),
        role: Role::Looking,
        view: ReplicaView {
            mode: Mode::Looking,
            voters: setup.quorum.voters.len(),
            ..ReplicaView::default()
        },
    };
    driver.publish();
    let result = driver.run(&inbound, &proposals_rx);
    shared.begin_shutdown();
    drop(driver);
    let sequenced = sequencer.join().unwrap_or(Ok(()));
    let _ = applier.join();
    if let Ok(transport) = Arc::try_unwrap(transport) {
        transport.shutdown();
    }
    result.and(sequenced)
}

/// A SNAP stream to one learner, on the leader: the walk runs on a thread
/// of its own; the NEWLEADER and everything the peer sends the learner after
/// it wait here until the walk's records are queued.
struct SnapOut {
    session: u64,
    start: Zxid,
    new_leader: Message,
    held: Vec<Message>,
    cancel: Arc<AtomicBool>,
    /// Test-only (failpoint `snap-sender`): this stream's frame 1 is damaged.
    damaged: bool,
}

/// Read fences asked (`Peer::read_index`, or of the leader), by ctx.
enum ReadBatch {
    /// This member's I/O threads' fences.
    Local {
        waiters: Vec<ReadIndexRequest>,
        sent: Instant,
    },
    /// On the leader: a learner's, answered with its own ctx.
    Remote { learner: ServerId, ctx: u64 },
}

/// A walk's result, from its thread.
struct SnapDone {
    to: ServerId,
    session: u64,
    walked: Result<WalkEnd, String>,
}

struct Driver {
    shared: Arc<Shared>,
    peer: Peer,
    transport: Arc<Transport>,
    storage: Box<dyn Storage>,
    durability: Arc<dyn DurableWait>,
    /// Appends not yet reported durable to the peer: ticket, last zxid.
    in_flight: VecDeque<(Ticket, quorum::Zxid)>,
    to_applier: crossbeam_channel::Sender<ApplierInput>,
    /// The applier's last applied zxid.
    applied: Arc<AtomicI64>,
    /// The last zxid handed to the applier as committed.
    handed: Zxid,
    control: Arc<Control>,
    forwarding: Arc<Forwarding>,
    /// The member lists in force and logged, with their addresses.
    members: Members,
    /// What the sequencer reads to answer reconfig requests.
    membership_view: Arc<parking_lot::Mutex<MembershipView>>,
    epochs_path: PathBuf,
    /// On a learner: the state the last SNAP stream brought, restored and
    /// brought to the stream's end, for the peer's InstallSnapshot.
    snapshot_in: Option<DataTree>,
    /// On a learner: the SNAP stream arriving.
    incoming: Option<Incoming>,
    /// On a learner: the live tree was freed for the SNAP stream of this
    /// leader and session (`Applier::release`). Until that SNAP installs,
    /// the applier holds an empty stand-in; if it never does, the state is
    /// reloaded from disk (`reload`).
    released: Option<(ServerId, u64)>,
    /// The zxid of the last state installed: appends at or below it are in
    /// that state already.
    installed: Zxid,
    /// On a leader: SNAP streams going out, by learner.
    snaps_out: HashMap<ServerId, SnapOut>,
    /// Test-only: a damaged stream (failpoint `snap-sender`) reached its
    /// NEWLEADER; later ones are whole.
    damaged_snap_sent: bool,
    /// Walks that ended, from the threads that ran them.
    snap_done: (
        crossbeam_channel::Sender<SnapDone>,
        crossbeam_channel::Receiver<SnapDone>,
    ),
    local: VecDeque<Item>,
    /// Linearizable reads: I/O threads' fences not asked yet (held while
    /// not serving), and those asked.
    reads_waiting: Vec<ReadIndexRequest>,
    reads_out: HashMap<u64, ReadBatch>,
    next_read: u64,
    serving: Option<Serving>,
    tick: Duration,
    read_only_after: Option<Duration>,
    ticks: u64,
    looking_since: Instant,
    /// The peer's role when last looked at, to trace its changes.
    role: Role,
    view: ReplicaView,
}

impl Driver {
    fn run(
        &mut self,
        inbound: &crossbeam_channel::Receiver<(ServerId, Envelope)>,
        proposals: &crossbeam_channel::Receiver<Proposal>,
    ) -> Result<(), StorageError> {
        // None once the backend closed it: nothing more becomes durable.
        let mut wakeups = Some(self.durability.wakeups());
        let never = crossbeam_channel::never();
        // Only wakes the loop: watch_leader_link looks at every turn.
        let link_down = self.transport.link_down();
        let snap_done = self.snap_done.1.clone();
        let read_index = self.shared.read_index.1.clone();
        let mut next_tick = Instant::now() + self.tick;
        loop {
            if self.shared.is_shutting_down() {
                return Ok(());
            }
            let timeout = next_tick.saturating_duration_since(Instant::now());
            crossbeam_channel::select! {
                recv(inbound) -> next => match next {
                    Ok((from, envelope)) => self.receive(from, envelope),
                    Err(_) => return Ok(()),
                },
                recv(proposals) -> next => {
                    if let Ok(proposal) = next {
                        self.propose(proposal)?;
                    }
                }
                recv(link_down) -> _ => {}
                recv(read_index) -> request => {
                    if let Ok(request) = request {
                        self.reads_waiting.push(request);
                    }
                }
                recv(snap_done) -> done => {
                    if let Ok(done) = done {
                        self.snap_walked(done);
                    }
                }
                recv(wakeups.as_ref().unwrap_or(&never)) -> woken => {
                    if woken.is_err() {
                        wakeups = None;
                    }
                }
                default(timeout) => {}
            }
            // Whatever else is ready, up to a bound, before acting.
            for _ in 0..256 {
                match inbound.try_recv() {
                    Ok((from, envelope)) => self.receive(from, envelope),
                    Err(_) => break,
                }
            }
            for _ in 0..MAX_PROPOSALS_IN_FLIGHT {
                match proposals.try_recv() {
                    Ok(proposal) => self.propose(proposal)?,
                    Err(_) => break,
                }
            }
            if Instant::now() >= next_tick {
                next_tick += self.tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.tick;
                }
                self.on_tick();
            }
            self.reads_waiting.extend(read_index.try_iter());
            self.watch_leader_link();
            self.report_durable()?;
            self.ask_reads();
            self.execute()?;
            self.check_released()?;
            // Read-only mode ends before a role that serves begins.
            self.update_read_only();
            self.update_role()?;
            self.update_read_only();
        }
    }

    fn receive(&mut self, from: ServerId, envelope: Envelope) {
        let Envelope { message, snapshot } = envelope;
        if let Message::App { payload } = message {
            self.receive_app(from, &payload);
            return;
        }
        if let Message::NewLeader {
            session,
            sync: SyncMode::Snap { zxid },
            txns,
            ..
        } = &message
        {
            if !self.peer.awaiting_new_leader() || self.snapshot_in.is_some() {
                // A NEWLEADER sent again (the leader answering a duplicated
                // ACKEPOCH): its stream is not needed, but the peer still
                // sees the message (it may ACK it again).
                tracing::info!("a SNAP stream no NEWLEADER was waiting for; dropped");
                self.incoming = None;
                self.peer.step(from, message);
                return;
            }
            // The peer takes a SNAP only with its state ready.
            match self.finish_incoming(*session, ez(*zxid), snapshot.as_deref(), txns) {
                Ok(tree) => self.snapshot_in = Some(tree),
                Err(error) => {
                    tracing::warn!(from = from.0, %error, "SNAP stream refused; syncing again");
                    return;
                }
            }
        }
        self.peer.step(from, message);
    }

    /// A learner's forwarded requests and touches, on the leader; the
    /// leader's digests, on a learner.
    fn receive_app(&mut self, from: ServerId, payload: &[u8]) {
        let message = match AppMessage::decode(payload) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(from = from.0, %error, "undecodable message from a peer; dropped");
                return;
            }
        };
        let message = match message {
            AppMessage::SnapRecords {
                session,
                seq,
                start,
                data,
            } => {
                self.snap_records(from, session, seq, Zxid(start), data);
                return;
            }
            AppMessage::SnapTail { session, seq, txns } => {
                self.snap_tail(from, session, seq, txns);
                return;
            }
            message => message,
        };
        if let AppMessage::ReadIndexReply { ctx, zxid } = message {
            if matches!(self.serving, Some(Serving::Learner { leader, .. }) if leader == from.0) {
                self.read_answered(ctx, zxid.map(Zxid));
            }
            return;
        }
        if let AppMessage::Digest { zxid, digest } = message {
            if matches!(self.serving, Some(Serving::Learner { leader, .. }) if leader == from.0) {
                let zxid = Zxid(zxid);
                let _ = self.to_applier.send(ApplierInput::Check { zxid, digest });
            }
            return;
        }
        if !matches!(self.serving, Some(Serving::Leader { .. })) {
            return;
        }
        match message {
            AppMessage::Digest { .. }
            | AppMessage::SnapRecords { .. }
            | AppMessage::SnapTail { .. }
            | AppMessage::ReadIndexReply { .. } => {}
            AppMessage::ReadIndex { ctx } => {
                self.next_read += 1;
                let mine = self.next_read;
                self.reads_out
                    .insert(mine, ReadBatch::Remote { learner: from, ctx });
                self.peer.read_index(mine);
            }
            AppMessage::Forward(forwards) => {
                for forward in forwards {
                    if self
                        .shared
                        .submit
                        .send(Submission::Forwarded {
                            from: from.0,
                            forward,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
            AppMessage::Touch(sessions) => {
                let now = self.shared.clock.monotonic_ms();
                let mut tracker = self.shared.sessions.lock();
                for session in sessions {
                    tracker.touch(session, now);
                }
            }
        }
    }

    /// A proposal from the leader's sequencer: each txn through Zab.
    fn propose(&mut self, proposal: Proposal) -> Result<(), StorageError> {
        if !matches!(self.serving, Some(Serving::Leader { .. })) {
            // Sequenced before this server stopped leading: its clients'
            // connections are being closed.
            return Ok(());
        }
        let mut txns = proposal.txns.into_iter();
        for entry in proposal.entries {
            let Entry::Txn(origin) = entry else {
                self.local.push_back(Item::Untxn(entry));
                continue;
            };
            let txn = txns.next().expect("one txn per Entry::Txn");
            let bytes = encode_txn(&txn).map_err(|e| StorageError::Encode(e.to_string()))?;
            let size = bytes.len();
            match self.peer.propose(bytes) {
                Ok(zxid) => {
                    assert_eq!(
                        ez(zxid),
                        txn.zxid,
                        "prep and the quorum peer assigned different zxids"
                    );
                    self.record_proposal_size(size);
                    self.local.push_back(Item::Txn(txn, origin));
                }
                Err(quorum::Error::ReconfigInProgress) => {
                    // The sequencer's view was a tick stale: the change
                    // fails, under the zxid prep gave it.
                    let refused = EngineTxn {
                        op: TxnOp::Error(engine::types::ErrorCode::ReconfigInProgress),
                        ..txn
                    };
                    let bytes =
                        encode_txn(&refused).map_err(|e| StorageError::Encode(e.to_string()))?;
                    match self.peer.propose(bytes) {
                        Ok(zxid) => assert_eq!(ez(zxid), refused.zxid),
                        Err(error) => {
                            tracing::warn!(%error, "proposal refused; dropping the rest of the batch");
                            return Ok(());
                        }
                    }
                    self.local.push_back(Item::Txn(refused, origin));
                }
                Err(error) => {
                    tracing::warn!(%error, "proposal refused; dropping the rest of the batch");
                    return Ok(());
                }
            }
        }
        self.hand_untxns();
        Ok(())
    }

    fn record_proposal_size(&mut self, size: usize) {
        let view = &mut self.view;
        view.last_proposal_size = size;
        view.max_proposal_size = view.max_proposal_size.max(size);
        view.min_proposal_size = match view.min_proposal_size {
            0 => size,
            min => min.min(size),
        };
    }

    /// Answers without a txn at the front of the leader's queue: everything
    /// sequenced before them is with the applier already.
    fn hand_untxns(&mut self) {
        let mut proposal = Proposal::default();
        while matches!(self.local.front(), Some(Item::Untxn(_))) {
            if let Some(Item::Untxn(entry)) = self.local.pop_front() {
                proposal.entries.push(entry);
            }
        }
        if !proposal.is_empty() {
            let _ = self.to_applier.send(ApplierInput::Apply(proposal));
        }
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        self.peer.tick();
        self.retry_reads();
        if let Some(Serving::Learner { leader, .. }) = self.serving {
            if self.ticks.is_multiple_of(TOUCH_EVERY_TICKS) {
                self.send_touches(leader);
            }
        }
        // Forwarded requests whose answer never came (a dropped message):
        // their connections close and the clients retry.
        if self.ticks.is_multiple_of(20) && self.forwarding.len() > 0 {
            // Generous: this only catches a dropped message, and a loaded
            // leader (or one copying a large SNAP) may take seconds.
            let limit = OVERDUE_FORWARD.max(self.tick * self.peer.config().sync_limit_ticks * 4);
            let overdue = self.forwarding.overdue(limit);
            if !overdue.is_empty() {
                tracing::warn!(
                    count = overdue.len(),
                    "forwarded requests unanswered; closing their connections"
                );
                self.close(overdue);
            }
        }
        if self.ticks.is_multiple_of(DIGEST_EVERY_TICKS) {
            self.send_digest();
        }
        self.compact();
        self.publish();
    }

    /// The leader's tree digest at its applied zxid, to every learner.
    fn send_digest(&self) {
        if !matches!(self.serving, Some(Serving::Leader { .. })) {
            return;
        }
        let (zxid, digest) = {
            let tree = self.shared.tree.read();
            (tree.last_zxid(), tree.replica_digest())
        };
        let Ok(payload) = (AppMessage::Digest {
            zxid: zxid.0,
            digest,
        })
        .encode() else {
            return;
        };
        for (id, _, synced) in self.peer.learners() {
            if synced {
                self.transport.send(
                    id,
                    Message::App {
                        payload: payload.clone(),
                    },
                );
            }
        }
    }

    /// A learner whose connection to its leader is down elects again at
    /// once, without waiting for silence: a crashed leader's sockets close
    /// at once. Checked on every turn of the loop, not only on ticks, so a
    /// follower woken by another's election notification joins it at once.
    fn watch_leader_link(&mut self) {
        let Some(Serving::Learner { leader, .. }) = self.serving else {
            return;
        };
        let leader = ServerId(leader);
        if self.transport.is_connected_on(leader, Channel::Quorum) {
            return;
        }
        tracing::info!(
            leader = leader.0,
            "lost the connection to the leader; electing"
        );
        self.peer.peer_unreachable(leader);
    }

    /// Sessions of this learner's clients that are alive here.
    fn send_touches(&self, leader: u64) {
        let now = self.shared.clock.monotonic_ms();
        let owned: Vec<_> = self.shared.owners.lock().keys().copied().collect();
        let tracker = self.shared.sessions.lock();
        let live: Vec<_> = owned
            .into_iter()
            .filter(|session| {
                tracker
                    .get(*session)
                    .is_some_and(|info| !info.closing && info.expires_at_ms > now)
            })
            .collect();
        drop(tracker);
        if live.is_empty() {
            return;
        }
        if let Ok(payload) = AppMessage::Touch(live).encode() {
            self.transport
                .send(ServerId(leader), Message::App { payload });
        }
    }

    /// Keeps the in-memory log to about `DIFF_WINDOW` txns and the peer's
    /// `max_diff_bytes` of them: a learner further behind is sent SNAP
    /// either way, so more would only hold memory.
    fn compact(&mut self) {
        let len = self.peer.log_len();
        let max_bytes = self.peer.config().max_diff_bytes;
        let over = len >= DIFF_WINDOW * 2 || self.peer.log_bytes() >= max_bytes.saturating_mul(2);
        // A SNAP stream's tail comes from this log.
        if !over || !self.snaps_out.is_empty() {
            return;
        }
        // The newest txns that fit both bounds stay; the cut is the one
        // before them.
        let mut kept = (0usize, 0usize);
        let cut = self.peer.log_txns().rev().find(|txn| {
            kept = (kept.0 + 1, kept.1 + txn.data.len());
            kept.0 > DIFF_WINDOW || kept.1 > max_bytes
        });
        let applied = self.peer.applied();
        if let Some(cut) = cut.map(|t| t.zxid).filter(|cut| *cut <= applied) {
            if let Err(error) = self.peer.compact(cut) {
                tracing::debug!(%error, "log compaction deferred");
            }
        }
    }

    fn close(&self, conns: Vec<engine::types::WatcherId>) {
        let mut postman = Postman::new(&self.shared.mailboxes);
        for conn in conns {
            postman.post(Mail::Close { conn });
        }
    }

    /// Tells the peer which appends are durable now.
    fn report_durable(&mut self) -> Result<(), StorageError> {
        if self.in_flight.is_empty() {
            return Ok(());
        }
        let durable = self.durability.durable()?;
        let mut last = None;
        while self
            .in_flight
            .front()
            .is_some_and(|(ticket, _)| *ticket <= durable)
        {
            last = self.in_flight.pop_front().map(|(_, zxid)| zxid);
        }
        if let Some(zxid) = last {
            self.peer.persisted(zxid);
        }
        Ok(())
    }

    /// Waits until every append is durable, and says so: storage actions
    /// that replace the log must come after them.
    fn settle_appends(&mut self) -> Result<(), StorageError> {
        if let Some(&(ticket, _)) = self.in_flight.back() {
            self.durability.wait(ticket)?;
        }
        self.report_durable()
    }

    /// Carries out the peer's actions in order, until it has none.
    fn execute(&mut self) -> Result<(), StorageError> {
        loop {
            let actions = self.peer.take_actions();
            if actions.is_empty() {
                return Ok(());
            }
            let mut appends: Vec<EngineTxn> = Vec::new();
            let mut last_append = None;
            for action in actions {
                if let Action::Append { txns } = action {
                    for txn in txns {
                        let decoded = decode_txn(&txn.data).map_err(|error| {
                            StorageError::Encode(format!("txn {} from the log: {error}", txn.zxid))
                        })?;
                        if let TxnOp::Reconfig { data } = &decoded.op {
                            if self.members.logged(data) {
                                self.transport.set_peers(self.members.peers());
                            }
                        }
                        appends.push(decoded);
                        last_append = Some(txn.zxid);
                    }
                    continue;
                }
                self.flush_appends(&mut appends, &mut last_append)?;
                self.act(action)?;
            }
            self.flush_appends(&mut appends, &mut last_append)?;
        }
    }

    fn flush_appends(
        &mut self,
        appends: &mut Vec<EngineTxn>,
        last: &mut Option<quorum::Zxid>,
    ) -> Result<(), StorageError> {
        if let Some(last) = last.take() {
            // What the last SNAP installed is durable already.
            let installed = self.installed;
            appends.retain(|txn| txn.zxid > installed);
            let ticket = if appends.is_empty() {
                self.durability.durable()?
            } else {
                self.storage.append(appends)?
            };
            self.in_flight.push_back((ticket, last));
            appends.clear();
        }
        Ok(())
    }

    fn act(&mut self, action: Action) -> Result<(), StorageError> {
        match action {
            Action::Send { to, message } => self.send(to, message)?,
            Action::Append { .. } => unreachable!("appends are batched by execute"),
            Action::Truncate { after } => {
                self.settle_appends()?;
                let after = ez(after);
                let applied = Zxid(self.applied.load(Ordering::Acquire));
                assert!(
                    applied <= after,
                    "TRUNC after {after} below the applied {applied}: the tree held an uncommitted txn"
                );
                self.storage.truncate_after(after)?;
                self.members.truncate(after.0 as u64);
                self.transport.set_peers(self.members.peers());
                tracing::info!(%after, "log truncated (TRUNC)");
                self.peer.persisted(qz(after));
            }
            Action::InstallSnapshot { zxid } => {
                self.settle_appends()?;
                // The stream's state, at its end: at or after `zxid`.
                let tree = self.snapshot_in.take().ok_or_else(|| {
                    StorageError::Snapshot("SNAP without the leader's state".into())
                })?;
                if tree.last_zxid() < ez(zxid) {
                    return Err(StorageError::Snapshot(format!(
                        "the leader's state is at {}, before {}",
                        tree.last_zxid(),
                        ez(zxid)
                    )));
                }
                self.storage.install(&tree)?;
                tracing::info!(
                    zxid = %ez(zxid), end = %tree.last_zxid(), nodes = tree.node_count(),
                    "installed the leader's state (SNAP)"
                );
                self.installed = tree.last_zxid();
                self.released = None;
                self.local.clear();
                self.handed = tree.last_zxid();
                // The state's last change is pending until this peer knows
                // it committed.
                let latest = crate::ensemble::written_config(&tree).and_then(|text| {
                    if self.members.logged(&text) {
                        self.transport.set_peers(self.members.peers());
                    }
                    crate::ensemble::change_of_text(&text)
                });
                self.peer.installed_membership(latest);
                let _ = self.to_applier.send(ApplierInput::Install(Box::new(tree)));
                self.peer.persisted(zxid);
            }
            Action::PersistEpochs(epochs) => {
                store_epochs(&self.epochs_path, epochs)?;
                self.peer.persisted_epochs();
            }
            Action::Commit { upto } => self.commit(ez(upto)),
            Action::Activate { zxid, membership } => {
                let version = zxid.0;
                let written = self
                    .members
                    .activate(version)
                    .map_err(|error| io_error(Path::new("dynamic config file"), error))?;
                if !written {
                    tracing::warn!(
                        version = format!("{version:x}"),
                        "activated a change whose txn this server has not seen"
                    );
                }
                self.transport.set_peers(self.members.peers());
                self.move_listeners();
                self.view.voters = membership.voters.len();
                tracing::info!(version = format!("{version:x}"), voters = ?membership.voters,
                               observers = ?membership.observers, "membership change active");
                self.publish();
            }
            Action::ReadIndex { ctx, zxid } => match self.reads_out.remove(&ctx) {
                Some(ReadBatch::Remote { learner, ctx }) => {
                    let reply = AppMessage::ReadIndexReply {
                        ctx,
                        zxid: zxid.map(|z| ez(z).0),
                    };
                    if let Ok(payload) = reply.encode() {
                        self.transport.send(learner, Message::App { payload });
                    }
                }
                Some(batch @ ReadBatch::Local { .. }) => {
                    self.reads_out.insert(ctx, batch);
                    self.read_answered(ctx, zxid.map(ez));
                }
                None => {}
            },
        }
        Ok(())
    }

    fn send(&mut self, to: ServerId, message: Message) -> Result<(), StorageError> {
        if let Message::NewLeader {
            session,
            sync: SyncMode::Snap { zxid },
            ..
        } = &message
        {
            let (session, zxid) = (*session, ez(*zxid));
            self.start_snap(to, session, zxid, message);
            return Ok(());
        }
        if let Some(out) = self.snaps_out.get_mut(&to) {
            // PINGs go ahead: they keep the learner's peer from giving up on
            // a leader busy streaming, and mean nothing to it before the
            // NEWLEADER but that.
            let ping = matches!(message, Message::Ping { .. });
            if message
                .session()
                .is_some_and(|session| session != out.session)
            {
                // The learner connected again: this stream is for nobody.
                self.cancel_snap(to);
            } else if message.session() == Some(out.session) && !ping {
                out.held.push(message);
                if out.held.len() > SNAP_MAX_HELD {
                    tracing::warn!(to = to.0, "learner too far behind its SNAP stream; dropped");
                    self.cancel_snap(to);
                }
                return Ok(());
            }
        }
        self.transport.send(to, message);
        Ok(())
    }

    /// Streams the state at `zxid` to a learner (see `snap`): a thread walks
    /// the tree and queues its records; the NEWLEADER and what follows it
    /// wait until the walk is over (`snap_walked`).
    fn start_snap(&mut self, to: ServerId, session: u64, zxid: Zxid, new_leader: Message) {
        self.cancel_snap(to);
        // Every commit up to `zxid` is handed over and none after, so once
        // the applier reaches it the tree is at `zxid`. The walk's thread
        // takes the read lock before the driver may hand over a later
        // commit (it waits for that), then lets commits go on.
        self.wait_applied(zxid);
        let cancel = Arc::new(AtomicBool::new(false));
        let shared = Arc::clone(&self.shared);
        let transport = Arc::clone(&self.transport);
        let done = self.snap_done.0.clone();
        let stop = Arc::clone(&cancel);
        let (locked, locked_rx) = crossbeam_channel::bounded(1);
        // Every stream to that learner until one damaged stream has been
        // sent whole to its end (an earlier one may be cancelled).
        let damaged = !self.damaged_snap_sent
            && net::failpoint::hit(net::failpoint::SNAP_SENDER, &to.0.to_string());
        let spawned = std::thread::Builder::new()
            .name("snap-sender".into())
            .spawn(move || {
                let started = Instant::now();
                let mut bytes = 0usize;
                let emit = |seq: u64, mut data: Vec<u8>| {
                    if seq == 1 && damaged {
                        tracing::warn!(to = to.0, "failpoint: damaging SNAP frame 1");
                        data.iter_mut().for_each(|b| *b ^= 0x5a);
                    }
                    bytes += data.len();
                    let message = snap::records_message(session, seq, zxid, data);
                    send_snap_frame(&transport, &shared, &stop, to, message)
                };
                let walked = snap::walk(
                    &shared.tree,
                    zxid,
                    || {
                        let _ = locked.send(());
                    },
                    &stop,
                    emit,
                );
                match &walked {
                    Ok(walked) => tracing::info!(
                        to = to.0, start = %zxid, end = %walked.end, frames = walked.frames, bytes,
                        ms = started.elapsed().as_millis() as u64,
                        "SNAP records sent"
                    ),
                    Err(error) => tracing::warn!(to = to.0, %error, "SNAP stream stopped"),
                }
                let _ = done.send(SnapDone {
                    to,
                    session,
                    walked,
                });
            });
        match spawned {
            Ok(_) => {
                // Once it holds the lock the tree is at `zxid` for it.
                let _ = locked_rx.recv();
                self.snaps_out.insert(
                    to,
                    SnapOut {
                        session,
                        start: zxid,
                        new_leader,
                        held: Vec::new(),
                        cancel,
                        damaged,
                    },
                );
            }
            Err(error) => {
                tracing::warn!(%error, "cannot start the SNAP sender; the learner will retry")
            }
        }
    }

    fn cancel_snap(&mut self, to: ServerId) {
        if let Some(out) = self.snaps_out.remove(&to) {
            out.cancel.store(true, Ordering::Release);
        }
    }

    /// A walk is over: the tail, the NEWLEADER with its trailer, and what
    /// was held back follow its records.
    fn snap_walked(&mut self, done: SnapDone) {
        if self
            .snaps_out
            .get(&done.to)
            .is_none_or(|out| out.session != done.session)
        {
            return;
        }
        let out = self.snaps_out.remove(&done.to).expect("looked up");
        let Ok(walked) = done.walked else {
            return;
        };
        let Message::NewLeader { txns, .. } = &out.new_leader else {
            unreachable!("a stream starts with a NEWLEADER");
        };
        // The tail: committed txns after the NEWLEADER's own, up to the end.
        let after = txns.last().map_or(out.start, |t| ez(t.zxid)).max(out.start);
        let tail: Vec<TailTxn> = self
            .peer
            .log_after(qz(after))
            .take_while(|t| ez(t.zxid) <= walked.end)
            .map(|t| TailTxn {
                zxid: t.zxid.0 as i64,
                data: t.data.clone(),
            })
            .collect();
        let reaches = tail.last().map_or(after, |t| Zxid(t.zxid)) >= walked.end;
        if !reaches {
            tracing::warn!(to = done.to.0, end = %walked.end, "the log no longer holds the SNAP's tail");
            return;
        }
        let mut frames = walked.frames;
        for txns in snap::tail_frames(tail.into_iter()) {
            let message = AppMessage::SnapTail {
                session: out.session,
                seq: frames,
                txns,
            };
            match message.encode() {
                Ok(payload) => self.transport.send(done.to, Message::App { payload }),
                Err(error) => {
                    tracing::warn!(%error, "cannot encode a SNAP tail");
                    return;
                }
            }
            frames += 1;
        }
        let trailer = Trailer {
            start: out.start.0,
            end: walked.end.0,
            digest: walked.digest,
            replica_digest: walked.replica_digest,
            frames,
        };
        let trailer = match trailer.encode() {
            Ok(trailer) => trailer,
            Err(error) => {
                tracing::warn!(%error, "cannot encode a SNAP trailer");
                return;
            }
        };
        let again = net::failpoint::hit_once(net::failpoint::SNAP_RESEND, &done.to.0.to_string())
            .then(|| out.new_leader.clone());
        self.damaged_snap_sent |= out.damaged;
        self.transport.send_envelope(
            done.to,
            Envelope {
                message: out.new_leader,
                snapshot: Some(trailer),
            },
        );
        for message in out.held {
            self.transport.send(done.to, message);
        }
        if let Some(new_leader) = again {
            // Test-only: the stream and NEWLEADER once more, as when the
            // leader answers a duplicated ACKEPOCH.
            tracing::warn!(to = done.to.0, "failpoint: sending the SNAP stream again");
            self.start_snap(done.to, out.session, out.start, new_leader);
        }
    }

    /// A records frame of the SNAP stream from the leader being followed.
    fn snap_records(&mut self, from: ServerId, session: u64, seq: u64, start: Zxid, data: Vec<u8>) {
        if !self.follows(from) {
            return;
        }
        if seq == 0 {
            self.incoming = None;
            match Incoming::start(session, start) {
                Ok(incoming) => self.incoming = Some(incoming),
                Err(error) => {
                    tracing::warn!(%error, "cannot receive a SNAP");
                    return;
                }
            }
            // This member serves no one until the SNAP installs: its tree
            // can go, so that it never holds two. Only before this session's
            // NEWLEADER: a stream sent again after it (the leader answering
            // a duplicated ACKEPOCH) finds a tree that is live, and is
            // refused at its end like any stray stream.
            if self.released.is_none()
                && self.peer.learning() == Some((from, session))
                && self.peer.awaiting_new_leader()
            {
                self.released = Some((from, session));
                let _ = self.to_applier.send(ApplierInput::Release);
            }
        }
        let Some(incoming) = self.incoming.as_mut().filter(|i| i.session() == session) else {
            return;
        };
        if let Err(error) = incoming.records(seq, start, data) {
            tracing::warn!(from = from.0, %error, "SNAP stream broken");
            self.incoming = None;
        }
    }

    fn snap_tail(&mut self, from: ServerId, session: u64, seq: u64, txns: Vec<TailTxn>) {
        if !self.follows(from) {
            return;
        }
        let Some(incoming) = self.incoming.as_mut().filter(|i| i.session() == session) else {
            return;
        };
        if let Err(error) = incoming.tail(seq, txns) {
            tracing::warn!(from = from.0, %error, "SNAP stream broken");
            self.incoming = None;
        }
    }

    /// The state a SNAP NEWLEADER ends, restored and brought to its end.
    fn finish_incoming(
        &mut self,
        session: u64,
        zxid: Zxid,
        trailer: Option<&[u8]>,
        txns: &[quorum::Txn],
    ) -> Result<DataTree, String> {
        let incoming = self
            .incoming
            .take()
            .filter(|i| i.session() == session)
            .ok_or("no stream for this NEWLEADER")?;
        let trailer = Trailer::decode(trailer.ok_or("a SNAP without its trailer")?)?;
        if Zxid(trailer.start) != zxid {
            return Err(format!(
                "the stream starts at {}, the NEWLEADER at {zxid}",
                Zxid(trailer.start)
            ));
        }
        let started = Instant::now();
        let tree = incoming.finish(&trailer, txns)?;
        tracing::info!(
            start = %zxid, end = %tree.last_zxid(), nodes = tree.node_count(),
            finish_ms = started.elapsed().as_millis() as u64,
            "received the leader's state (SNAP)"
        );
        Ok(tree)
    }

    /// Asks for one read index covering every fence waiting, if serving:
    /// of the peer on the leader, of the leader on a learner.
    fn ask_reads(&mut self) {
        if self.reads_waiting.is_empty() {
            return;
        }
        let Some(serving) = self.serving else {
            return;
        };
        self.next_read += 1;
        let ctx = self.next_read;
        let waiters = std::mem::take(&mut self.reads_waiting);
        let sent = Instant::now();
        self.reads_out
            .insert(ctx, ReadBatch::Local { waiters, sent });
        match serving {
            Serving::Leader { .. } => self.peer.read_index(ctx),
            Serving::Learner { leader, .. } => self.send_read_index(ServerId(leader), ctx),
        }
    }

    fn send_read_index(&self, leader: ServerId, ctx: u64) {
        if let Ok(payload) = (AppMessage::ReadIndex { ctx }).encode() {
            self.transport.send(leader, Message::App { payload });
        }
    }

    /// A read index for one of this member's batches: the applier passes
    /// its fences once the tree holds `zxid`. Without one (the leader asked
    /// no longer leads) the batch waits: a learner asks again on a tick, and
    /// a member that stops serving fails every fence.
    fn read_answered(&mut self, ctx: u64, zxid: Option<Zxid>) {
        let Some(ReadBatch::Local { waiters, .. }) = self.reads_out.remove(&ctx) else {
            return;
        };
        match zxid {
            Some(zxid) => {
                let _ = self
                    .to_applier
                    .send(ApplierInput::ReadReady { zxid, waiters });
            }
            None => self.reads_waiting.extend(waiters),
        }
    }

    /// A learner's read index requests unanswered for `READ_INDEX_RETRY`
    /// are asked again (same ctx; a second answer finds nothing).
    fn retry_reads(&mut self) {
        let Some(Serving::Learner { leader, .. }) = self.serving else {
            return;
        };
        let now = Instant::now();
        let mut again = Vec::new();
        for (&ctx, batch) in &mut self.reads_out {
            if let ReadBatch::Local { sent, .. } = batch {
                if now.duration_since(*sent) >= READ_INDEX_RETRY {
                    *sent = now;
                    again.push(ctx);
                }
            }
        }
        for ctx in again {
            self.send_read_index(ServerId(leader), ctx);
        }
    }

    /// Serving stopped: no fence can pass until the member serves again,
    /// and its connections are closed; the I/O threads are told so.
    fn fail_reads(&mut self) {
        let mut waiters = std::mem::take(&mut self.reads_waiting);
        for (_, batch) in self.reads_out.drain() {
            if let ReadBatch::Local { waiters: w, .. } = batch {
                waiters.extend(w);
            }
        }
        super::applier::post_fences(&self.shared, waiters, false);
        let _ = self.to_applier.send(ApplierInput::FailReads);
    }

    /// After the peer's actions: a freed tree waits only for the SNAP of its
    /// own stream, still arriving or just brought to its end. Anything else
    /// (the stream broke or was refused, the peer left that learning) and
    /// the member reloads its state from disk.
    fn check_released(&mut self) -> Result<(), StorageError> {
        // Taken by InstallSnapshot if the peer accepted it.
        let finished = self.snapshot_in.take().is_some();
        let Some(stream) = self.released else {
            if finished {
                tracing::info!("a SNAP stream no NEWLEADER was waiting for; dropped");
            }
            return Ok(());
        };
        let arriving = self
            .incoming
            .as_ref()
            .is_some_and(|i| i.session() == stream.1);
        if arriving && !finished && self.peer.learning() == Some(stream) {
            return Ok(());
        }
        tracing::warn!(
            leader = stream.0 .0,
            role = ?self.peer.role(),
            "the SNAP stream ended without installing; reloading this member's state from disk"
        );
        self.reload()
    }

    /// Rebuilds this member as a restart would, without the process
    /// stopping: the state recovered from storage (every durable txn, as the
    /// peer's floor, none of it settled) and a new peer on the persisted
    /// epochs. The log's uncommitted suffix, if any, is in that floor as
    /// after any restart: the leader replaces it by SNAP. (Reloading the tree alone under the old
    /// peer would not do: the tree would hold txns the peer has as
    /// uncommitted.)
    fn reload(&mut self) -> Result<(), StorageError> {
        self.settle_appends()?;
        self.in_flight.clear();
        self.incoming = None;
        self.snapshot_in = None;
        self.released = None;
        let started = Instant::now();
        let (tree, _) = self.storage.recover()?;
        let floor = tree.last_zxid();
        let durable = quorum::Durable {
            epochs: load_epochs(&self.epochs_path)?,
            floor: qz(floor),
            log: Vec::new(),
            settled: quorum::Zxid::ZERO,
        };
        let config = self.peer.config().clone();
        let seed = self.shared.clock.wall_ms() as u64 ^ (config.id.0 << 48) ^ floor.0 as u64;
        self.peer = Peer::recover(config, Prng::from_seed(seed), durable).map_err(|error| {
            StorageError::Io {
                path: self.epochs_path.clone(),
                source: std::io::Error::other(error.to_string()),
            }
        })?;
        self.local.clear();
        self.handed = floor;
        self.installed = floor;
        tracing::info!(
            %floor, nodes = tree.node_count(), ms = started.elapsed().as_millis() as u64,
            "reloaded this member's state from disk"
        );
        let _ = self.to_applier.send(ApplierInput::Install(Box::new(tree)));
        Ok(())
    }

    /// Whether the peer is a learner of `leader`.
    fn follows(&self, leader: ServerId) -> bool {
        matches!(
            self.peer.role(),
            Role::Following { leader: l } | Role::Observing { leader: l } if l == leader
        )
    }

    /// Hands the applier every txn up to `upto`, with the origins of the
    /// leader's own.
    fn commit(&mut self, upto: Zxid) {
        if upto <= self.handed {
            return;
        }
        let mut proposal = Proposal::default();
        for txn in self.peer.log_after(qz(self.handed)) {
            let zxid = ez(txn.zxid);
            if zxid > upto {
                break;
            }
            // Our own sequenced txns carry their origin; a stale one (from
            // before a change of leader) is dropped.
            while matches!(self.local.front(), Some(Item::Txn(t, _)) if t.zxid < zxid) {
                self.local.pop_front();
            }
            match self.local.front() {
                Some(Item::Txn(t, _)) if t.zxid == zxid => {
                    if let Some(Item::Txn(t, origin)) = self.local.pop_front() {
                        proposal.push_txn(t, origin);
                    }
                    while matches!(self.local.front(), Some(Item::Untxn(_))) {
                        if let Some(Item::Untxn(entry)) = self.local.pop_front() {
                            proposal.entries.push(entry);
                        }
                    }
                }
                _ => match decode_txn(&txn.data) {
                    Ok(decoded) => proposal.push_txn(decoded, Origin::Replicated),
                    Err(error) => panic!("committed txn {zxid} does not decode: {error}"),
                },
            }
        }
        self.handed = upto;
        if !proposal.is_empty() {
            let _ = self.to_applier.send(ApplierInput::Apply(proposal));
        }
    }

    /// Blocks until the applier has applied everything handed to it up to
    /// `zxid` (or shutdown).
    fn wait_applied(&self, zxid: Zxid) {
        let target = zxid.min(self.handed);
        while Zxid(self.applied.load(Ordering::Acquire)) < target {
            if self.shared.is_shutting_down() {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Follows the peer's role: serving starts and stops here.
    fn update_role(&mut self) -> Result<(), StorageError> {
        if self.peer.role() != self.role {
            self.role = self.peer.role();
            tracing::debug!(
                role = ?self.role,
                round = self.peer.round(),
                since_looking_ms = self.looking_since.elapsed().as_millis() as u64,
                "role changed"
            );
        }
        let now = match (self.peer.role(), self.peer.serving_epoch()) {
            (Role::Leading { .. }, Some(epoch)) => Some(Serving::Leader { epoch: epoch.0 }),
            (Role::Following { leader }, Some(_)) => Some(Serving::Learner {
                leader: leader.0,
                observer: false,
            }),
            (Role::Observing { leader }, Some(_)) => Some(Serving::Learner {
                leader: leader.0,
                observer: true,
            }),
            _ => None,
        };
        if now == self.serving {
            return Ok(());
        }
        if let Some(was) = self.serving.take() {
            let stats = self.transport.stats();
            tracing::info!(
                ?was,
                role = ?self.peer.role(),
                dropped_full = stats.dropped_full,
                dropped_disconnected = stats.dropped_disconnected,
                "stopped serving; closing client connections"
            );
            self.control.set(SequencerMode::Stopped);
            self.local.clear();
            for (_, out) in self.snaps_out.drain() {
                out.cancel.store(true, Ordering::Release);
            }
            let abandoned = self.forwarding.abandon_all();
            self.close(abandoned);
            self.shared.close_all_connections();
            self.fail_reads();
            self.looking_since = Instant::now();
            self.view.mode = Mode::Looking;
            self.view.leader = None;
        }
        match now {
            None => {}
            Some(Serving::Leader { epoch }) => {
                // Prep must see the whole initial history in the tree.
                self.wait_applied(self.handed);
                let now_ms = self.shared.clock.monotonic_ms();
                self.shared.sessions.lock().renew_all(now_ms);
                // Before the sequencer leads: it must see a pending change.
                self.publish_membership();
                self.control.set(SequencerMode::Lead {
                    first: Zxid::new(epoch, 0),
                });
                self.view.mode = Mode::Leader;
                self.view.leader = Some(self.peer.id().0);
                self.view.epoch = epoch;
            }
            Some(Serving::Learner { leader, observer }) => {
                self.control.set(SequencerMode::Follow { leader });
                self.view.mode = if observer {
                    Mode::Observer
                } else {
                    Mode::Follower
                };
                self.view.leader = Some(leader);
                self.view.epoch = self.peer.serving_epoch().map_or(0, |e| e.0);
            }
        }
        if now.is_some() {
            self.view.last_election_ms = self.looking_since.elapsed().as_millis() as u64;
            tracing::info!(
                mode = self.view.mode.as_str(),
                leader = ?self.view.leader,
                epoch = self.view.epoch,
                election_ms = self.view.last_election_ms,
                "serving"
            );
        }
        self.serving = now;
        self.publish();
        Ok(())
    }

    /// Read-only mode (`readonlymode.enabled`): once this server has been
    /// electing for `read_only_after` it serves clients that asked for it
    /// from the state it has; as soon as an election ends (before syncing,
    /// as the reference stops its read-only server) those connections close
    /// and their sessions, which no txn made, are forgotten. The clients
    /// then find a read-write server themselves.
    fn update_read_only(&mut self) {
        let Some(after) = self.read_only_after else {
            return;
        };
        let looking = self.peer.role() == Role::Looking && self.serving.is_none();
        let read_only = self.view.mode == Mode::ReadOnly;
        if looking && !read_only && self.looking_since.elapsed() >= after {
            tracing::info!(
                looking_ms = self.looking_since.elapsed().as_millis() as u64,
                "no quorum; serving read-only clients"
            );
            self.view.mode = Mode::ReadOnly;
            self.view.leader = None;
            self.publish();
        } else if read_only && !looking {
            tracing::info!(role = ?self.peer.role(), "election over; closing read-only connections");
            self.view.mode = Mode::Looking;
            self.publish();
            self.shared.close_all_connections();
            let local: Vec<_> = self.shared.read_only_sessions.lock().drain().collect();
            let mut sessions = self.shared.sessions.lock();
            for session in local {
                sessions.remove(session);
            }
        }
    }

    /// An activated list that moved this server's ports: listen on the new
    /// ones (the old ones close; connections made through them stay).
    fn move_listeners(&self) {
        self.move_client_port();
        let Some(mut want) = self.members.own_peer_addr() else {
            return;
        };
        let now = self.transport.local_addr();
        // Listening on every address (quorumListenOnAllIPs) stays so.
        for (want, now) in [
            (&mut want.election, now.election),
            (&mut want.quorum, now.quorum),
        ] {
            if now.ip().is_unspecified() {
                want.set_ip(now.ip());
            }
        }
        if want == now {
            return;
        }
        if let Err(error) = self.transport.rebind(want) {
            tracing::error!(%error, election = %want.election, quorum = %want.quorum,
                            "cannot listen on this server's new peer ports; keeping the old ones");
        }
    }

    fn move_client_port(&self) {
        let Some(mut want) = self.members.own_client_addr() else {
            return;
        };
        let Some(now) = *self.shared.client_addr.lock() else {
            return;
        };
        if now.ip().is_unspecified() && want.ip().is_unspecified() {
            want.set_ip(now.ip());
        }
        if want == now {
            return;
        }
        match std::net::TcpListener::bind(want) {
            Ok(listener) => self.shared.move_client_port(listener),
            Err(error) => tracing::error!(%error, address = %want,
                                          "cannot listen on this server's new client port; keeping the old one"),
        }
    }

    /// What the sequencer needs to answer reconfig requests.
    fn publish_membership(&self) {
        let mut view = self.membership_view.lock();
        view.pending = self.peer.pending_membership().is_some();
        view.synced = self.peer.synced().into_iter().map(|id| id.0).collect();
    }

    /// Publishes where this server stands, for 4lw, AdminServer, metrics,
    /// and the reconfig view.
    fn publish(&mut self) {
        self.publish_membership();
        let learners = self.peer.learners();
        self.view.learners = learners.len();
        self.view.synced_followers = learners.iter().filter(|l| l.1 && l.2).count();
        self.view.synced_observers = learners.iter().filter(|l| !l.1 && l.2).count();
        self.shared.replica.set(self.view.clone());
    }
}

/// Queues one frame of a SNAP stream, first waiting while the learner's
/// queue holds `SNAP_QUEUED_BYTES`; false when the stream must stop (it was
/// cancelled, the link went down, the server is stopping).
fn send_snap_frame(
    transport: &Transport,
    shared: &Shared,
    cancel: &AtomicBool,
    to: ServerId,
    message: AppMessage,
) -> bool {
    loop {
        if cancel.load(Ordering::Acquire)
            || shared.is_shutting_down()
            || !transport.is_connected_on(to, Channel::Quorum)
        {
            return false;
        }
        if transport
            .queued_bytes(to, Channel::Quorum)
            .is_some_and(|queued| queued < SNAP_QUEUED_BYTES)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    match message.encode() {
        Ok(payload) => {
            transport.send(to, Message::App { payload });
            true
        }
        Err(error) => {
            tracing::warn!(%error, "cannot encode a SNAP frame");
            false
        }
    }
}

/// acceptedEpoch (with its leader) and currentEpoch, as three lines.
fn load_epochs(path: &Path) -> Result<Epochs, StorageError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Epochs::default()),
        Err(error) => return Err(io_error(path, error)),
    };
    parse_epochs(&text).map_err(|what| StorageError::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        what,
    })
}

fn parse_epochs(text: &str) -> Result<Epochs, String> {
    let mut epochs = Epochs::default();
    let mut seen = 0;
    for line in text.lines() {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("bad line {line:?}"))?;
        let number = |value: &str| {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("bad number in {line:?}"))
        };
        match key.trim() {
            "acceptedEpoch" => epochs.accepted = quorum::Epoch(number(value)? as u32),
            "acceptedLeader" => {
                epochs.accepted_leader = match value.trim() {
                    "none" => None,
                    id => Some(ServerId(number(id)?)),
                }
            }
            "currentEpoch" => epochs.current = quorum::Epoch(number(value)? as u32),
            other => return Err(format!("unknown key {other:?}")),
        }
        seen += 1;
    }
    if seen != 3 {
        return Err(format!("{seen} of 3 entries"));
    }
    Ok(epochs)
}

/// Writes the epochs durably: a temp file synced, renamed over, and the
/// directory synced, so a crash leaves the old record or the new one.
fn store_epochs(path: &Path, epochs: Epochs) -> Result<(), StorageError> {
    let text = format!(
        "acceptedEpoch={}\nacceptedLeader={}\ncurrentEpoch={}\n",
        epochs.accepted.0,
        epochs
            .accepted_leader
            .map_or_else(|| "none".to_string(), |id| id.0.to_string()),
        epochs.current.0
    );
    crate::dynamic_config::replace_file(path, text.as_bytes())
        .map_err(|error| io_error(path, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quorum_epochs");
        assert_eq!(load_epochs(&path).unwrap(), Epochs::default());
        let epochs = Epochs {
            accepted: quorum::Epoch(7),
            accepted_leader: Some(ServerId(3)),
            current: quorum::Epoch(6),
        };
        store_epochs(&path, epochs).unwrap();
        assert_eq!(load_epochs(&path).unwrap(), epochs);
    }

    #[test]
    fn damaged_epochs_are_refused() {
        for text in [
            "",
            "acceptedEpoch=1\n",
            "acceptedEpoch=x\nacceptedLeader=none\ncurrentEpoch=1\n",
            "acceptedEpoch=1\nacceptedLeader=none\nsomething=1\n",
        ] {
            assert!(parse_epochs(text).is_err(), "{text:?}");
        }
    }
}
