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
//!   holds an uncommitted one. So the state a SNAP sends (`encode_state` of
//!   the tree once the applier reached the commit point the peer names, with
//!   no later commit handed over meanwhile) is exactly the state at that
//!   zxid, and a TRUNC never reaches below what the tree holds.
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
use super::forward::{AppMessage, Forwarding};
use super::sequencer::{Forwarder, Sequencer};
use super::{Entry, Origin, Proposal, MAX_PROPOSALS_IN_FLIGHT};
use engine::persist::{decode_state, decode_txn, encode_state, encode_txn};
use engine::storage::{DurableWait, Storage, StorageError, Ticket};
use engine::txn::Txn as EngineTxn;
use engine::types::Zxid;
use net::mailbox::{Mail, Postman, Submission};
use net::shared::{Mode, ReplicaView, Shared};
use parking_lot::Mutex;
use quorum::transport::{Transport, TransportConfig};
use quorum::wire::{Channel, Envelope};
use quorum::{Action, Epochs, Message, Peer, Prng, Role, ServerId, SyncMode};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything an ensemble member's pipeline needs beyond standalone's.
pub struct ReplicaSetup {
    pub quorum: quorum::Config,
    pub transport: TransportConfig,
    /// Where acceptedEpoch and currentEpoch are kept.
    pub epochs_path: PathBuf,
    /// One quorum tick; the peer's limits are counted in these.
    pub tick: Duration,
}

/// Txns the peer keeps in memory beyond its floor, to sync a lagging
/// learner by DIFF; a learner further behind is sent SNAP.
const DIFF_WINDOW: usize = 50_000;
/// A state larger than this (decompressed) from a leader is refused.
const MAX_STATE_BYTES: u64 = 8 << 30;
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
    let durable = quorum::Durable {
        epochs,
        floor: qz(floor),
        log: Vec::new(),
    };
    let seed = shared.clock.wall_ms() as u64 ^ (setup.quorum.id.0 << 48);
    let peer =
        Peer::recover(setup.quorum.clone(), Prng::from_seed(seed), durable).map_err(|error| {
            StorageError::Io {
                path: setup.epochs_path.clone(),
                source: std::io::Error::other(error.to_string()),
            }
        })?;
    let listen = setup.transport.listen;
    let (transport, inbound) = Transport::start(setup.transport)
        .map_err(|source| io_error(Path::new(&listen.quorum.to_string()), source))?;
    let transport = Arc::new(transport);
    let forwarding = Arc::new(Forwarding::default());
    let control = Arc::new(Control::default());
    let (proposals, proposals_rx) = crossbeam_channel::bounded(MAX_PROPOSALS_IN_FLIGHT);
    // Unbounded: the driver must never block on the applier (a SNAP being
    // encoded holds it back), or its pings stop. What queues is bounded by
    // the commits of that time.
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
        epochs_path: setup.epochs_path,
        snapshot_in: None,
        local: VecDeque::new(),
        serving: None,
        tick: setup.tick,
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
    epochs_path: PathBuf,
    /// The state attached to the last SNAP received.
    snapshot_in: Option<Vec<u8>>,
    local: VecDeque<Item>,
    serving: Option<Serving>,
    tick: Duration,
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
            self.watch_leader_link();
            self.report_durable()?;
            self.execute()?;
            self.update_role()?;
        }
    }

    fn receive(&mut self, from: ServerId, envelope: Envelope) {
        let Envelope { message, snapshot } = envelope;
        if let Message::App { payload } = message {
            self.receive_app(from, &payload);
            return;
        }
        if snapshot.is_some() {
            self.snapshot_in = snapshot;
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
            AppMessage::Digest { .. } => {}
            AppMessage::Forward(forwards) => {
                for forward in forwards {
                    if self
                        .shared
                        .submit
                        .send(Submission::Forwarded(forward))
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
        if let Some(Serving::Learner { leader, .. }) = self.serving {
            if self.ticks % TOUCH_EVERY_TICKS == 0 {
                self.send_touches(leader);
            }
        }
        // Forwarded requests whose answer never came (a dropped message):
        // their connections close and the clients retry.
        if self.ticks % 20 == 0 && self.forwarding.len() > 0 {
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
        if self.ticks % DIGEST_EVERY_TICKS == 0 {
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

    /// Keeps the in-memory log to about `DIFF_WINDOW` txns.
    fn compact(&mut self) {
        let len = self.peer.log_len();
        if len < DIFF_WINDOW * 2 {
            return;
        }
        let floor = self.peer.log_floor();
        let applied = self.peer.applied();
        let cut = self
            .peer
            .log_after(floor)
            .nth(len - DIFF_WINDOW)
            .map(|t| t.zxid);
        if let Some(cut) = cut.filter(|cut| *cut <= applied) {
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
                        appends.push(decode_txn(&txn.data).map_err(|error| {
                            StorageError::Encode(format!("txn {} from the log: {error}", txn.zxid))
                        })?);
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
            let ticket = self.storage.append(appends)?;
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
                tracing::info!(%after, "log truncated (TRUNC)");
                self.peer.persisted(qz(after));
            }
            Action::InstallSnapshot { zxid } => {
                self.settle_appends()?;
                let bytes = self.snapshot_in.take().ok_or_else(|| {
                    StorageError::Snapshot("SNAP without the leader's state".into())
                })?;
                let tree = decode_compressed_state(&bytes)?;
                if tree.last_zxid() != ez(zxid) {
                    return Err(StorageError::Snapshot(format!(
                        "the leader's state is at {}, not {}",
                        tree.last_zxid(),
                        ez(zxid)
                    )));
                }
                self.storage.install(&tree)?;
                tracing::info!(zxid = %ez(zxid), nodes = tree.node_count(), "installed the leader's state (SNAP)");
                self.local.clear();
                self.handed = tree.last_zxid();
                let _ = self.to_applier.send(ApplierInput::Install(Box::new(tree)));
                self.peer.persisted(zxid);
            }
            Action::PersistEpochs(epochs) => {
                store_epochs(&self.epochs_path, epochs)?;
                self.peer.persisted_epochs();
            }
            Action::Commit { upto } => self.commit(ez(upto)),
        }
        Ok(())
    }

    fn send(&mut self, to: ServerId, message: Message) -> Result<(), StorageError> {
        let Message::NewLeader {
            sync: SyncMode::Snap { zxid },
            ..
        } = &message
        else {
            self.transport.send(to, message);
            return Ok(());
        };
        // The state at the SNAP zxid: every commit up to it is handed over
        // and none after, so once the applier reaches it the tree is it.
        // A thread of its own takes the read lock (before any later commit
        // can be applied: the driver waits for that) and encodes, so the
        // driver goes on pinging and acking while a large tree is copied.
        let zxid = ez(*zxid);
        self.wait_applied(zxid);
        let shared = Arc::clone(&self.shared);
        let transport = Arc::clone(&self.transport);
        let (locked, locked_rx) = crossbeam_channel::bounded(1);
        let spawned = std::thread::Builder::new()
            .name("snap-sender".into())
            .spawn(move || {
                let tree = shared.tree.read();
                let _ = locked.send(());
                if tree.last_zxid() != zxid {
                    tracing::warn!(tree = %tree.last_zxid(), %zxid, "state not at the SNAP zxid; not sent");
                    return;
                }
                let state = match encode_state(&tree) {
                    Ok(state) => state,
                    Err(error) => {
                        tracing::error!(%error, "cannot encode the state for SNAP");
                        return;
                    }
                };
                drop(tree);
                let compressed = match zstd::bulk::compress(&state, 1) {
                    Ok(compressed) => compressed,
                    Err(error) => {
                        tracing::error!(%error, "cannot compress the state for SNAP");
                        return;
                    }
                };
                tracing::info!(to = to.0, %zxid, bytes = compressed.len(), "sending the state (SNAP)");
                transport.send_envelope(
                    to,
                    Envelope {
                        message,
                        snapshot: Some(compressed),
                    },
                );
            });
        match spawned {
            // Once it holds the lock the tree stays at `zxid` for it.
            Ok(_) => {
                let _ = locked_rx.recv();
            }
            Err(error) => {
                tracing::warn!(%error, "cannot start the SNAP sender; the learner will retry")
            }
        }
        Ok(())
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
            let abandoned = self.forwarding.abandon_all();
            self.close(abandoned);
            self.shared.close_all_connections();
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

    /// Publishes where this server stands, for 4lw, AdminServer, metrics.
    fn publish(&mut self) {
        let learners = self.peer.learners();
        self.view.learners = learners.len();
        self.view.synced_followers = learners.iter().filter(|l| l.1 && l.2).count();
        self.view.synced_observers = learners.iter().filter(|l| !l.1 && l.2).count();
        self.shared.replica.set(self.view.clone());
    }
}

fn decode_compressed_state(bytes: &[u8]) -> Result<engine::tree::DataTree, StorageError> {
    let mut state = Vec::new();
    zstd::stream::read::Decoder::new(bytes)
        .and_then(|decoder| decoder.take(MAX_STATE_BYTES).read_to_end(&mut state))
        .map_err(|e| StorageError::Snapshot(format!("the leader's state: {e}")))?;
    decode_state(&state).map_err(|e| StorageError::Snapshot(format!("the leader's state: {e}")))
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
    let temp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|error| io_error(path, error))
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
