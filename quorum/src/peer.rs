//! One Zab peer: election, discovery, synchronization and broadcast as a state
//! machine over messages, ticks and storage completions (see the crate docs for
//! the protocol). It never blocks and never performs I/O; everything it wants
//! done is an `Action` in `take_actions`.
//!
//! Invariant: the peer acts on an epoch or a txn only after the driver has
//! confirmed it durable (`persisted_epochs`, `persisted`), and it tells the
//! driver to apply (`Action::Commit`) only txns that are both committed and
//! durable in its own log.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::mem;

use crate::log::Log;
use crate::message::{Message, PeerState, SyncMode, Vote};
use crate::{Action, Config, Durable, Epoch, Epochs, Error, Membership, Prng, ServerId, Txn, Zxid};

/// The learner state, borrowing only `self.state` (callers know the role).
macro_rules! learning {
    ($peer:ident) => {
        match &mut $peer.state {
            State::Learning(l) => l,
            _ => unreachable!("learner state expected"),
        }
    };
}

/// The leader state, borrowing only `self.state` (callers know the role).
macro_rules! leading {
    ($peer:ident) => {
        match &mut $peer.state {
            State::Leading(l) => l,
            _ => unreachable!("leader state expected"),
        }
    };
}

/// What a peer currently is, for the driver and for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Looking,
    Following {
        leader: ServerId,
    },
    Observing {
        leader: ServerId,
    },
    /// `established` once a quorum acknowledged NEWLEADER and the leader's
    /// currentEpoch is durable; only then does it accept proposals.
    Leading {
        epoch: Option<Epoch>,
        established: bool,
    },
}

pub struct Peer {
    config: Config,
    prng: Prng,
    log: Log,
    /// The durable epoch record.
    epochs: Epochs,
    /// Epoch records written but not yet confirmed, oldest first.
    epochs_pending: VecDeque<Epochs>,
    /// Storage operations emitted so far (Append, Truncate, InstallSnapshot).
    ops_emitted: u64,
    /// Operations confirmed durable: every one up to this count.
    ops_durable: u64,
    /// Unconfirmed operations: (number, the zxid `persisted` will name).
    ops_pending: VecDeque<(u64, Zxid)>,
    /// The highest zxid known committed in the current session.
    committed: Zxid,
    /// The highest zxid of the driver's state: handed to it in
    /// `Action::Commit`, installed by SNAP, or recovered at start-up.
    applied: Zxid,
    /// The highest applied zxid known committed: a commit this peer saw, or
    /// the recovered state's `Durable::settled`. State above it (replayed
    /// from the log at start-up, or a SNAP of a leader not yet established)
    /// may belong to an abandoned epoch, and a leader may replace it by
    /// SNAP; nothing at or below it is ever taken back.
    settled: Zxid,
    /// The election round (Apache's logical clock).
    round: u64,
    vote: Vote,
    state: State,
    actions: Vec<Action>,
    /// A pending membership (`config.pending`) logged at or below the log's
    /// floor: what a truncation of the log falls back to.
    floor_pending: Option<(Zxid, Membership)>,
}

enum State {
    Looking(Looking),
    Learning(Learner),
    Leading(Leader),
}

#[derive(Default)]
struct Looking {
    /// Voters' votes in this round, ours included.
    votes: BTreeMap<ServerId, Vote>,
    /// Votes of peers that already follow or lead, whatever their round.
    out_of_election: BTreeMap<ServerId, (Vote, u64, PeerState)>,
    ticks: u32,
    /// A quorum agrees but not every voter has voted: decide on the next tick.
    decide_on_tick: bool,
    /// Voters the driver reported unreachable (the leader whose loss started
    /// this election) and not heard from since: no vote is awaited from them.
    unreachable: BTreeSet<ServerId>,
    /// Peers that sent us a notification while we looked: notified too,
    /// voters or not here (they may vote in a change we have not logged).
    heard: BTreeSet<ServerId>,
    /// Ticks during which we do not join an existing leader: it just refused
    /// us (its epoch is below one we accepted), and asking again at message
    /// speed would only spin.
    hold_off_ticks: u32,
}

struct Learner {
    leader: ServerId,
    session: u64,
    observer: bool,
    phase: LearnerPhase,
    session_ticks: u32,
    silent_ticks: u32,
    lag_ticks: u32,
    /// From the leader's last PING: its last zxid and commit point.
    leader_last: Zxid,
    leader_committed: Zxid,
    /// The last zxid the NEWLEADER message brought the log to.
    sync_upto: Zxid,
    last_ack: Option<Zxid>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LearnerPhase {
    SentInfo,
    /// LEADERINFO accepted; waiting for acceptedEpoch to be durable.
    AcceptingEpoch(Epoch),
    EpochAcked(Epoch),
    /// NEWLEADER applied to the log; waiting for operations up to `op`.
    Syncing {
        epoch: Epoch,
        op: u64,
    },
    /// Log synced; waiting for currentEpoch to be durable.
    PersistingCurrent(Epoch),
    AckedNewLeader(Epoch),
    UpToDate(Epoch),
}

impl LearnerPhase {
    /// NEWLEADER has been applied: the log is the leader's history prefix.
    fn in_sync(self) -> bool {
        matches!(
            self,
            LearnerPhase::Syncing { .. }
                | LearnerPhase::PersistingCurrent(_)
                | LearnerPhase::AckedNewLeader(_)
                | LearnerPhase::UpToDate(_)
        )
    }
}

struct Leader {
    phase: LeaderPhase,
    /// The new epoch, once chosen.
    epoch: Epoch,
    learners: BTreeMap<ServerId, Link>,
    ticks: u32,
    /// The last zxid of the initial history.
    history_end: Zxid,
    /// The last `ReadPing` round sent.
    read_round: u64,
    /// Reads waiting for a quorum to answer their round: ctx, the commit
    /// point when asked, the round. Rounds increase along the queue.
    reads: VecDeque<(u64, Zxid, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeaderPhase {
    /// Collecting FOLLOWERINFO.
    Discovery,
    /// New epoch chosen; waiting for acceptedEpoch to be durable.
    PersistingAccepted,
    /// LEADERINFO sent; collecting ACKEPOCH.
    Proposing,
    /// NEWLEADER sent; collecting acks. The leader is its own follower: it
    /// counts itself once its history is durable and then its currentEpoch.
    Syncing,
    /// Established.
    Broadcast,
}

/// The leader's view of one learner connection.
struct Link {
    session: u64,
    phase: LinkPhase,
    accepted: Epoch,
    ack_epoch: Option<AckEpochInfo>,
    /// Highest zxid the learner says it holds durably (after NEWLEADER).
    acked: Option<Zxid>,
    /// Last zxid sent to the learner (NEWLEADER, PROPOSAL, INFORM).
    sent_upto: Zxid,
    silent_ticks: u32,
    /// The highest `ReadPing` round the learner answered.
    read_round: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LinkPhase {
    Info,
    EpochSent,
    EpochAcked,
    Syncing,
    Synced,
}

#[derive(Clone, Debug)]
struct AckEpochInfo {
    last_zxid: Zxid,
    floor: Zxid,
    epoch_ends: Vec<Zxid>,
}

impl Peer {
    /// A peer with empty storage.
    pub fn new(config: Config, prng: Prng) -> Result<Peer, Error> {
        Peer::recover(config, prng, Durable::default())
    }

    /// A peer restarted from what its storage kept. It starts LOOKING.
    pub fn recover(config: Config, prng: Prng, durable: Durable) -> Result<Peer, Error> {
        if config.voters.is_empty() {
            return Err(Error::Config {
                reason: "no voters".into(),
            });
        }
        if config
            .voters
            .intersection(&config.observers)
            .next()
            .is_some()
        {
            return Err(Error::Config {
                reason: "a server is both voter and observer".into(),
            });
        }
        let log = Log::recovered(durable.floor, durable.log);
        let floor = log.floor();
        let settled = durable.settled.min(floor);
        let id = config.id;
        let floor_pending = config
            .pending
            .clone()
            .filter(|(zxid, _)| *zxid > config.version && *zxid <= floor);
        let mut peer = Peer {
            config,
            prng,
            log,
            epochs: durable.epochs,
            epochs_pending: VecDeque::new(),
            ops_emitted: 0,
            ops_durable: 0,
            ops_pending: VecDeque::new(),
            committed: settled,
            applied: floor,
            settled,
            round: 0,
            vote: Vote {
                epoch: Epoch(0),
                zxid: Zxid::ZERO,
                leader: id,
            },
            state: State::Looking(Looking::default()),
            actions: Vec::new(),
            floor_pending,
        };
        peer.config.pending = peer
            .config
            .pending
            .take()
            .filter(|(z, _)| *z > peer.config.version);
        let logged = newest_change(&peer.config, peer.log.entries().iter().map(|e| &e.txn));
        if logged.is_some() {
            peer.config.pending = logged;
        }
        peer.start_election();
        Ok(peer)
    }

    pub fn take_actions(&mut self) -> Vec<Action> {
        mem::take(&mut self.actions)
    }

    pub fn id(&self) -> ServerId {
        self.config.id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn role(&self) -> Role {
        match &self.state {
            State::Looking(_) => Role::Looking,
            State::Learning(l) if l.observer => Role::Observing { leader: l.leader },
            State::Learning(l) => Role::Following { leader: l.leader },
            State::Leading(l) => Role::Leading {
                epoch: (l.phase != LeaderPhase::Discovery).then_some(l.epoch),
                established: l.phase == LeaderPhase::Broadcast,
            },
        }
    }

    /// The epoch this peer leads, once established.
    pub fn established_epoch(&self) -> Option<Epoch> {
        match &self.state {
            State::Leading(l) if l.phase == LeaderPhase::Broadcast => Some(l.epoch),
            _ => None,
        }
    }

    /// The epoch this peer serves clients in: the established leader's, or
    /// a learner's once UPTODATE arrived. `None` while electing or syncing.
    pub fn serving_epoch(&self) -> Option<Epoch> {
        match &self.state {
            State::Leading(l) if l.phase == LeaderPhase::Broadcast => Some(l.epoch),
            State::Learning(Learner {
                phase: LearnerPhase::UpToDate(epoch),
                ..
            }) => Some(*epoch),
            _ => None,
        }
    }

    /// On a leader, each learner connected to it: (id, voter, synced).
    pub fn learners(&self) -> Vec<(ServerId, bool, bool)> {
        match &self.state {
            State::Leading(l) => l
                .learners
                .iter()
                .map(|(&id, link)| {
                    (
                        id,
                        voting(&self.config, id),
                        link.phase == LinkPhase::Synced,
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The membership change logged and not yet applied, if any.
    pub fn pending_membership(&self) -> Option<&(Zxid, Membership)> {
        self.config.pending.as_ref()
    }

    /// On an established leader, the servers whose logs follow its own: the
    /// leader and its synchronized learners (a membership change is only
    /// worth proposing when a quorum of its voters is among them).
    pub fn synced(&self) -> BTreeSet<ServerId> {
        match &self.state {
            State::Leading(l) if l.phase == LeaderPhase::Broadcast => l
                .learners
                .iter()
                .filter(|(_, link)| link.phase == LinkPhase::Synced)
                .map(|(&id, _)| id)
                .chain([self.config.id])
                .collect(),
            _ => BTreeSet::new(),
        }
    }

    /// The driver installed a SNAP's state (`Action::InstallSnapshot`), whose
    /// last membership change is `latest`: it is pending until this peer
    /// knows the state committed. Call it while carrying out that action.
    pub fn installed_membership(&mut self, latest: Option<(Zxid, Membership)>) {
        let Some((zxid, membership)) = latest else {
            return;
        };
        if zxid <= self.config.version {
            return;
        }
        self.floor_pending = Some((zxid, membership.clone()));
        if self.config.pending.is_none() {
            self.config.pending = Some((zxid, membership));
        }
    }

    /// The leader this peer follows or is, as far as it knows.
    pub fn leader(&self) -> Option<ServerId> {
        match &self.state {
            State::Looking(_) => None,
            State::Learning(l) => Some(l.leader),
            State::Leading(_) => Some(self.config.id),
        }
    }

    /// The durable epoch record.
    pub fn epochs(&self) -> Epochs {
        self.epochs
    }

    pub fn committed(&self) -> Zxid {
        self.committed
    }

    pub fn applied(&self) -> Zxid {
        self.applied
    }

    /// The highest applied zxid known committed (see `Durable::settled`).
    pub fn settled(&self) -> Zxid {
        self.settled
    }

    pub fn last_zxid(&self) -> Zxid {
        self.log.last()
    }

    pub fn log_floor(&self) -> Zxid {
        self.log.floor()
    }

    /// True while learning and waiting for the leader's NEWLEADER: ACKEPOCH
    /// sent, no NEWLEADER taken yet in this session.
    pub fn awaiting_new_leader(&self) -> bool {
        matches!(&self.state, State::Learning(l) if matches!(l.phase, LearnerPhase::EpochAcked(_)))
    }

    /// The leader and session of the learning this peer is in, if any.
    pub fn learning(&self) -> Option<(ServerId, u64)> {
        match &self.state {
            State::Learning(l) => Some((l.leader, l.session)),
            _ => None,
        }
    }

    /// The txns of the in-memory log (durable or not) above the floor.
    pub fn log_txns(&self) -> impl DoubleEndedIterator<Item = &Txn> {
        self.log.entries().iter().map(|e| &e.txn)
    }

    /// The txns of the in-memory log after `zxid`, in order.
    pub fn log_after(&self, zxid: Zxid) -> impl Iterator<Item = &Txn> {
        self.log.after(zxid).iter().map(|e| &e.txn)
    }

    /// The summed size of the in-memory log's txns above its floor.
    pub fn log_bytes(&self) -> usize {
        self.log.bytes()
    }

    /// How many txns the in-memory log holds above its floor.
    pub fn log_len(&self) -> usize {
        self.log.entries().len()
    }

    /// The election round.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The current vote.
    pub fn vote(&self) -> Vote {
        self.vote
    }

    // ---- inputs -------------------------------------------------------------

    /// A message from another peer.
    pub fn step(&mut self, from: ServerId, message: Message) {
        // Anyone may ask (a server about to join learns from the leader as a
        // non-voter); only voters' votes and acks are ever counted.
        if from == self.config.id {
            return;
        }
        let message = match message {
            Message::Notification { vote, round, state } => {
                self.on_notification(from, vote, round, state);
                return;
            }
            Message::Membership {
                version,
                membership,
            } => {
                // Only a peer that activated a change sends this: it is
                // committed. Nothing logged at or before it can still be
                // pending (it is either that change's past or abandoned).
                if version > self.config.version && !membership.voters.is_empty() {
                    self.set_active(version, membership);
                }
                return;
            }
            Message::App { .. } => return,
            message => message,
        };
        match &self.state {
            State::Leading(_) => self.on_leader_message(from, message),
            State::Learning(l) if l.leader == from && message.session() == Some(l.session) => {
                self.on_learner_message(message)
            }
            _ => {}
        }
    }

    /// The driver's transport lost its connection to `id` and could not get
    /// it back: a learner of `id` goes back to election at once instead of
    /// waiting out `sync_limit_ticks` of silence. (A crashed leader's
    /// connections close at once; a paused one's do not, and silence still
    /// detects it.)
    ///
    /// While looking, no vote is awaited from `id` until it is heard from:
    /// the election decides as soon as every other voter has voted instead
    /// of waiting out the finalize tick for a vote that cannot come.
    pub fn peer_unreachable(&mut self, id: ServerId) {
        if matches!(&self.state, State::Learning(l) if l.leader == id) {
            self.start_election();
        }
        if let State::Looking(looking) = &mut self.state {
            if id != self.config.id && voting(&self.config, id) {
                looking.unreachable.insert(id);
                self.check_election();
            }
        }
    }

    /// One tick of time passed.
    pub fn tick(&mut self) {
        match &self.state {
            State::Looking(_) => self.tick_looking(),
            State::Learning(_) => self.tick_learner(),
            State::Leading(_) => self.tick_leader(),
        }
    }

    /// Every storage operation up to the one ending at `zxid` is durable.
    pub fn persisted(&mut self, zxid: Zxid) {
        let Some(i) = self.ops_pending.iter().position(|&(_, end)| end == zxid) else {
            return;
        };
        let (op, _) = self.ops_pending[i];
        self.ops_pending.drain(..=i);
        self.ops_durable = op;
        match &self.state {
            State::Looking(_) => {}
            State::Learning(_) => self.learner_durable(),
            State::Leading(l) => match l.phase {
                LeaderPhase::Syncing => self.check_newleader_quorum(),
                LeaderPhase::Broadcast => self.check_commit(),
                _ => {}
            },
        }
    }

    /// The oldest unconfirmed `PersistEpochs` is durable.
    pub fn persisted_epochs(&mut self) {
        let Some(epochs) = self.epochs_pending.pop_front() else {
            return;
        };
        self.epochs = epochs;
        let me = self.config.id;
        let own = self.own_vote();
        match &mut self.state {
            State::Looking(looking) => {
                // currentEpoch landed while we look (written as leader or
                // learner before we gave up): our own vote is better now,
                // and the vote we started with would lose to peers whose
                // history is older than ours.
                if own > self.vote {
                    self.vote = own;
                    looking.votes.insert(me, own);
                    self.broadcast_notification();
                    self.check_election();
                }
            }
            State::Learning(l) => match l.phase {
                LearnerPhase::AcceptingEpoch(e)
                    if epochs.accepted == e && epochs.accepted_leader == Some(l.leader) =>
                {
                    l.phase = LearnerPhase::EpochAcked(e);
                    self.send_ack_epoch();
                }
                LearnerPhase::PersistingCurrent(e) if epochs.current == e => {
                    l.phase = LearnerPhase::AckedNewLeader(e);
                    let (leader, message) = (
                        l.leader,
                        Message::AckNewLeader {
                            session: l.session,
                            epoch: e,
                            zxid: l.sync_upto,
                        },
                    );
                    self.send(leader, message);
                    self.send_ack();
                }
                _ => {}
            },
            State::Leading(l) => match l.phase {
                LeaderPhase::PersistingAccepted
                    if epochs.accepted == l.epoch && epochs.accepted_leader == Some(me) =>
                {
                    l.phase = LeaderPhase::Proposing;
                    let ids: Vec<ServerId> = l.learners.keys().copied().collect();
                    for id in ids {
                        self.send_leader_info(id);
                    }
                    self.check_epoch_acks();
                }
                LeaderPhase::Syncing if epochs.current == l.epoch => self.check_newleader_quorum(),
                _ => {}
            },
        }
    }

    /// A client write, on the established leader: returns the zxid assigned.
    /// A read index for linearizable reads (the approach of etcd's
    /// ReadIndex): the commit point now, returned in `Action::ReadIndex`
    /// once a quorum of voters has answered a `ReadPing` sent after this
    /// call, which proves that no other leader had established by then, so
    /// nothing committed before the call is missing from it. One call may
    /// serve any number of reads. A peer that is not the established leader
    /// answers `None` at once; one that stops leading answers `None` for
    /// every read still waiting.
    pub fn read_index(&mut self, ctx: u64) {
        let committed = self.committed;
        let l = match &mut self.state {
            State::Leading(l) if l.phase == LeaderPhase::Broadcast => l,
            _ => {
                self.actions.push(Action::ReadIndex { ctx, zxid: None });
                return;
            }
        };
        l.read_round += 1;
        let round = l.read_round;
        l.reads.push_back((ctx, committed, round));
        let pings: Vec<(ServerId, u64)> = l
            .learners
            .iter()
            .filter(|(id, link)| voting(&self.config, **id) && link.phase == LinkPhase::Synced)
            .map(|(&id, link)| (id, link.session))
            .collect();
        for (id, session) in pings {
            self.send(id, Message::ReadPing { session, round });
        }
        self.check_reads();
    }

    /// Answers the waiting reads whose round a quorum has answered.
    fn check_reads(&mut self) {
        let State::Leading(l) = &mut self.state else {
            return;
        };
        while let Some(&(ctx, zxid, round)) = l.reads.front() {
            let answered: BTreeSet<ServerId> = l
                .learners
                .iter()
                .filter(|(_, link)| link.phase == LinkPhase::Synced && link.read_round >= round)
                .map(|(&id, _)| id)
                .chain([self.config.id])
                .collect();
            if !has_quorum(&self.config, &answered) {
                return;
            }
            l.reads.pop_front();
            self.actions.push(Action::ReadIndex {
                ctx,
                zxid: Some(zxid),
            });
        }
    }

    /// Leadership ends: no waiting read can be answered any more.
    fn fail_reads(&mut self) {
        if let State::Leading(l) = &mut self.state {
            for (ctx, _, _) in l.reads.drain(..) {
                self.actions.push(Action::ReadIndex { ctx, zxid: None });
            }
        }
    }

    pub fn propose(&mut self, data: Vec<u8>) -> Result<Zxid, Error> {
        let last = self.log.last();
        let State::Leading(leader) = &self.state else {
            return Err(Error::NotLeader {
                leader: self.leader(),
            });
        };
        if leader.phase != LeaderPhase::Broadcast {
            return Err(Error::NotLeader { leader: None });
        }
        let epoch = leader.epoch;
        if self.config.pending.is_some() && (self.config.reconfig_of)(&data).is_some() {
            return Err(Error::ReconfigInProgress);
        }
        let counter = if last.epoch() == epoch {
            u64::from(last.counter()) + 1
        } else {
            1
        };
        if counter > u64::from(self.config.max_counter) {
            // Moving to a new epoch needs a new discovery; stepping down gets
            // one, and the re-election very likely picks this peer again.
            self.start_election();
            return Err(Error::EpochExhausted { epoch });
        }
        let txn = Txn {
            zxid: Zxid::new(epoch, counter as u32),
            data,
        };
        let zxid = txn.zxid;
        let op = self.emit_op(
            Action::Append {
                txns: vec![txn.clone()],
            },
            zxid,
        );
        self.log.append(txn.clone(), op);
        self.note_logged(std::slice::from_ref(&txn));
        let mut sends = Vec::new();
        if let State::Leading(leader) = &mut self.state {
            for (&id, link) in leader.learners.iter_mut() {
                if voting(&self.config, id)
                    && matches!(link.phase, LinkPhase::Syncing | LinkPhase::Synced)
                {
                    // A learner that was sent INFORMs until now (a voter-to-be
                    // of the pending membership) first gets what it lacks.
                    for entry in self.log.after(link.sent_upto) {
                        sends.push((
                            id,
                            Message::Proposal {
                                session: link.session,
                                prev: link.sent_upto,
                                txn: entry.txn.clone(),
                            },
                        ));
                        link.sent_upto = entry.txn.zxid;
                    }
                }
            }
        }
        for (id, message) in sends {
            self.send(id, message);
        }
        Ok(zxid)
    }

    /// The driver took a snapshot of its applied state at `upto`: forget the
    /// log up to it. Later learners behind it are sent SNAP.
    pub fn compact(&mut self, upto: Zxid) -> Result<(), Error> {
        let durable = self
            .log
            .durable_last(self.ops_durable)
            .is_some_and(|d| d >= upto);
        if upto > self.settled || !self.log.contains(upto) || !durable {
            return Err(Error::Compact { zxid: upto });
        }
        self.log.compact(upto);
        if let Some(pending) = self.config.pending.clone().filter(|(z, _)| *z <= upto) {
            self.floor_pending = Some(pending);
        }
        Ok(())
    }

    // ---- helpers ------------------------------------------------------------

    fn send(&mut self, to: ServerId, message: Message) {
        self.actions.push(Action::Send { to, message });
    }

    fn emit_op(&mut self, action: Action, end: Zxid) -> u64 {
        self.ops_emitted += 1;
        self.ops_pending.push_back((self.ops_emitted, end));
        self.actions.push(action);
        self.ops_emitted
    }

    fn persist_epochs(&mut self, epochs: Epochs) {
        self.epochs_pending.push_back(epochs);
        self.actions.push(Action::PersistEpochs(epochs));
    }

    /// The epoch record as it will be once every pending write lands.
    fn latest_epochs(&self) -> Epochs {
        self.epochs_pending.back().copied().unwrap_or(self.epochs)
    }

    fn durable_last(&self) -> Option<Zxid> {
        self.log.durable_last(self.ops_durable)
    }

    fn is_durable(&self, zxid: Zxid) -> bool {
        self.durable_last().is_some_and(|d| d >= zxid)
    }

    /// A voter's vote for itself; a non-voter's loses to every vote (it may
    /// never lead), so it only carries the best one it hears.
    fn own_vote(&self) -> Vote {
        if !voting(&self.config, self.config.id) {
            return Vote {
                epoch: Epoch(0),
                zxid: Zxid::ZERO,
                leader: ServerId(0),
            };
        }
        Vote {
            epoch: self.epochs.current,
            zxid: self.log.last(),
            leader: self.config.id,
        }
    }

    fn peer_state(&self) -> PeerState {
        match &self.state {
            State::Looking(_) => PeerState::Looking,
            State::Learning(l) if l.observer => PeerState::Observing,
            State::Learning(_) => PeerState::Following,
            State::Leading(_) => PeerState::Leading,
        }
    }

    fn notification(&self) -> Message {
        Message::Notification {
            vote: self.vote,
            round: self.round,
            state: self.peer_state(),
        }
    }

    /// Emit `Commit` up to what is both committed and durable here, once this
    /// peer is in broadcast (an established leader or an up-to-date learner).
    fn apply(&mut self) {
        let allowed = match &self.state {
            State::Looking(_) => false,
            State::Learning(l) => matches!(l.phase, LearnerPhase::UpToDate(_)),
            State::Leading(l) => l.phase == LeaderPhase::Broadcast,
        };
        let Some(durable) = self.durable_last() else {
            return;
        };
        let target = self.committed.min(durable);
        if allowed && target > self.applied && self.log.contains(target) {
            self.applied = target;
            self.actions.push(Action::Commit { upto: target });
        }
        if allowed {
            self.settled = self.settled.max(self.committed.min(self.applied));
            let known = self.committed.min(self.applied);
            if self
                .config
                .pending
                .as_ref()
                .is_some_and(|(z, _)| *z <= known)
            {
                self.activate();
            }
        }
    }

    // ---- membership ---------------------------------------------------------

    /// Txns just logged: the newest membership change among them is pending.
    fn note_logged(&mut self, txns: &[Txn]) {
        if let Some(change) = newest_change(&self.config, txns.iter()) {
            self.config.pending = Some(change);
        }
    }

    /// The log lost its suffix or was replaced: the pending change is the
    /// newest one still logged, or the one at or below the floor.
    fn rescan_pending(&mut self) {
        self.config.pending = self
            .floor_pending
            .clone()
            .filter(|(z, _)| *z > self.config.version && *z <= self.log.floor());
        let logged = newest_change(&self.config, self.log.entries().iter().map(|e| &e.txn));
        if logged.is_some() {
            self.config.pending = logged;
        }
    }

    /// The pending change is applied and committed: it is the membership.
    fn activate(&mut self) {
        if let Some((zxid, membership)) = self.config.pending.take() {
            self.set_active(zxid, membership);
        }
    }

    /// `membership`, changed by the committed txn at `zxid`, is active.
    fn set_active(&mut self, zxid: Zxid, membership: Membership) {
        let me = self.config.id;
        let was_member = self.config.is_member(me);
        self.config.voters = membership.voters.clone();
        self.config.observers = membership.observers.clone();
        self.config.version = zxid;
        self.floor_pending = None;
        self.actions.push(Action::Activate { zxid, membership });
        // A later change already logged is the pending one now.
        self.rescan_pending();
        // A member the change removed leaves its leader, and may learn
        // again only as any non-member does (so a later change can add it
        // back while it runs).
        let removed = was_member && !self.config.is_member(me);
        let voter = voting(&self.config, me);
        match &mut self.state {
            // Count again, under the new membership.
            State::Looking(_) => self.start_election(),
            State::Leading(_) if !voter => self.start_election(),
            State::Learning(_) if removed => self.start_election(),
            State::Learning(l) => l.observer = !voter,
            _ => {}
        }
    }

    // ---- election -----------------------------------------------------------

    fn start_election(&mut self) {
        self.fail_reads();
        self.round += 1;
        // Commit knowledge belongs to a session; the next leader restates it.
        self.committed = self.settled;
        self.vote = self.own_vote();
        let mut looking = Looking::default();
        if voting(&self.config, self.config.id) {
            looking.votes.insert(self.config.id, self.vote);
        }
        self.state = State::Looking(looking);
        self.broadcast_notification();
        self.check_election();
    }

    fn broadcast_notification(&mut self) {
        let message = self.notification();
        let mut to = all_voters(&self.config);
        if let State::Looking(looking) = &self.state {
            to.extend(looking.heard.iter().copied());
        }
        let voters: Vec<ServerId> = to.into_iter().filter(|&v| v != self.config.id).collect();
        for voter in voters {
            self.send(voter, message.clone());
        }
    }

    fn on_notification(&mut self, from: ServerId, vote: Vote, round: u64, state: PeerState) {
        if self.config.version > Zxid::ZERO {
            // The sender may have missed a change (see Message::Membership).
            let message = Message::Membership {
                version: self.config.version,
                membership: self.config.membership(),
            };
            self.send(from, message);
        }
        let own = self.own_vote();
        if let State::Learning(l) = &self.state {
            if l.leader == from && state == PeerState::Looking && round > self.round {
                // Our leader gave up and is electing again (its connection
                // to us would have closed): so do we, with its notification.
                self.start_election();
            }
        }
        let State::Looking(looking) = &mut self.state else {
            // Tell a peer that is still looking whom we follow or lead.
            if state == PeerState::Looking {
                let message = self.notification();
                self.send(from, message);
            }
            return;
        };
        looking.unreachable.remove(&from);
        match state {
            // Every peer's vote is heard, and only voters' are counted (every
            // quorum check takes the voters out of the set). A peer that is
            // not a voter here may be one in a change this peer has not
            // logged yet; it votes for itself, and if it is the best
            // candidate the voters that lack the change must take up its
            // vote too, or they elect another that cannot win the change's
            // quorum, again and again. A peer that votes nowhere votes for no
            // one (`own_vote`) and only carries the best vote it heard.
            //
            // So a non-voter follows the rounds and the best vote too, and
            // answers like a voter: the voters of a change it lacks count on
            // its vote, and it may be the only one that can tell them it
            // exists. Every peer that has written to us hears our
            // notifications (`Looking::heard`), once at least; we answer a
            // worse vote or an older round with ours, and never a better
            // one, so answers go one way and never ping-pong.
            PeerState::Looking => {
                let first = looking.heard.insert(from);
                // A candidate we may take up: a voter here, or one that says
                // itself it votes (in a change we lack). A vote for a peer
                // that votes nowhere any more must not go round for ever.
                let eligible = vote.leader == from || voting(&self.config, vote.leader);
                if round > self.round {
                    self.round = round;
                    looking.votes.clear();
                    self.vote = if eligible { own.max(vote) } else { own };
                    looking.votes.insert(self.config.id, self.vote);
                    looking.votes.insert(from, vote);
                    self.broadcast_notification();
                } else if round < self.round {
                    if eligible && vote > self.vote {
                        // Not a vote of this round, but a better candidate
                        // than ours, still looking: take it up. Otherwise
                        // voters whose rounds keep moving ahead together can
                        // agree on a worse leader again and again before the
                        // best one's notifications catch up (and with joint
                        // quorums that leader may need the best one's vote).
                        self.vote = vote;
                        looking.votes.insert(self.config.id, vote);
                        self.broadcast_notification();
                        self.check_election();
                    } else {
                        let message = self.notification();
                        self.send(from, message);
                    }
                    return;
                } else {
                    looking.votes.insert(from, vote);
                    if eligible && vote > self.vote {
                        self.vote = vote;
                        looking.votes.insert(self.config.id, vote);
                        self.broadcast_notification();
                    } else if vote < self.vote || first {
                        // `from` may never have had our vote: it was still
                        // following when our notification came, and answered
                        // it instead of counting it, or it is not among those
                        // we notify. Tell it rather than leave both waiting
                        // for the resend.
                        let message = self.notification();
                        self.send(from, message);
                    }
                }
                self.check_election();
                let leader = self.vote.leader;
                self.check_out_of_election(leader);
            }
            PeerState::Following | PeerState::Leading => {
                looking.out_of_election.insert(from, (vote, round, state));
                self.check_out_of_election(vote.leader);
            }
            PeerState::Observing => {}
        }
    }

    fn check_election(&mut self) {
        let vote = self.vote;
        let State::Looking(looking) = &mut self.state else {
            return;
        };
        if !voting(&self.config, self.config.id) {
            return;
        }
        let agreeing = agreeing(&looking.votes, vote);
        if !has_quorum(&self.config, &agreeing) {
            looking.decide_on_tick = false;
            return;
        }
        let awaited = all_voters(&self.config)
            .iter()
            .filter(|v| !looking.votes.contains_key(v) && !looking.unreachable.contains(v))
            .count();
        if awaited == 0 {
            self.decide();
        } else {
            // Like Apache's finalize wait: a better vote may still be on its way.
            looking.decide_on_tick = true;
        }
    }

    /// Peers already following or leading: join `leader` if a quorum of voters
    /// names it and it says itself that it leads.
    fn check_out_of_election(&mut self, leader: ServerId) {
        let me = self.config.id;
        let State::Looking(looking) = &self.state else {
            return;
        };
        if looking.hold_off_ticks > 0 {
            return;
        }
        if leader == me {
            return;
        }
        // Those that follow or lead it, and those still electing that vote
        // for it: under joint quorums neither kind may be a quorum alone.
        let naming: BTreeSet<ServerId> = looking
            .out_of_election
            .iter()
            .filter(|(_, (v, _, _))| v.leader == leader)
            .map(|(&id, _)| id)
            .chain(
                looking
                    .votes
                    .iter()
                    .filter(|(_, v)| v.leader == leader)
                    .map(|(&id, _)| id),
            )
            .collect();
        let Some(&(vote, round, PeerState::Leading)) = looking.out_of_election.get(&leader) else {
            return;
        };
        if has_quorum(&self.config, &naming) {
            self.vote = vote;
            self.round = self.round.max(round);
            self.become_learner(leader);
        }
    }

    fn decide(&mut self) {
        if self.vote.leader == self.config.id {
            self.become_leader();
        } else {
            self.become_learner(self.vote.leader);
        }
    }

    fn tick_looking(&mut self) {
        let timeout = self.config.election_timeout_ticks.max(1);
        let State::Looking(looking) = &mut self.state else {
            return;
        };
        looking.ticks += 1;
        looking.hold_off_ticks = looking.hold_off_ticks.saturating_sub(1);
        let resend = looking.ticks >= timeout;
        if resend {
            looking.ticks = 0;
        }
        if looking.decide_on_tick {
            looking.decide_on_tick = false;
            let vote = self.vote;
            if has_quorum(&self.config, &agreeing(&looking.votes, vote)) {
                self.decide();
                return;
            }
        }
        if resend {
            self.broadcast_notification();
        }
    }

    // ---- learner (follower or observer) ---------------------------------------

    fn become_learner(&mut self, leader: ServerId) {
        self.committed = self.settled;
        let session = self.prng.next_u64();
        self.fail_reads();
        self.state = State::Learning(Learner {
            leader,
            session,
            observer: !voting(&self.config, self.config.id),
            phase: LearnerPhase::SentInfo,
            session_ticks: 0,
            silent_ticks: 0,
            lag_ticks: 0,
            leader_last: Zxid::ZERO,
            leader_committed: Zxid::ZERO,
            sync_upto: Zxid::ZERO,
            last_ack: None,
        });
        let accepted_epoch = self.latest_epochs().accepted;
        self.send(
            leader,
            Message::FollowerInfo {
                session,
                accepted_epoch,
            },
        );
    }

    fn send_ack_epoch(&mut self) {
        let (leader, session) = {
            let l = learning!(self);
            (l.leader, l.session)
        };
        let message = Message::AckEpoch {
            session,
            current_epoch: self.epochs.current,
            last_zxid: self.log.last(),
            floor: self.log.floor(),
            epoch_ends: self.log.epoch_ends(),
        };
        self.send(leader, message);
    }

    /// ACK what is durable, once NEWLEADER has been acknowledged.
    fn send_ack(&mut self) {
        let Some(durable) = self.durable_last() else {
            return;
        };
        let l = learning!(self);
        if !matches!(
            l.phase,
            LearnerPhase::AckedNewLeader(_) | LearnerPhase::UpToDate(_)
        ) {
            return;
        }
        if l.last_ack.is_some_and(|a| a >= durable) {
            return;
        }
        l.last_ack = Some(durable);
        let (leader, message) = (
            l.leader,
            Message::Ack {
                session: l.session,
                zxid: durable,
            },
        );
        self.send(leader, message);
    }

    fn on_learner_message(&mut self, message: Message) {
        let l = learning!(self);
        l.silent_ticks = 0;
        let phase = l.phase;
        let leader = l.leader;
        let is_observer = l.observer;
        match message {
            Message::LeaderInfo { epoch, .. } if phase == LearnerPhase::SentInfo => {
                let latest = self.latest_epochs();
                if epoch > latest.accepted {
                    learning!(self).phase = LearnerPhase::AcceptingEpoch(epoch);
                    self.persist_epochs(Epochs {
                        accepted: epoch,
                        accepted_leader: Some(leader),
                        ..latest
                    });
                } else if epoch == latest.accepted && latest.accepted_leader == Some(leader) {
                    // Reconnecting to the leader whose epoch we already accepted.
                    if self.epochs.accepted == epoch && self.epochs.accepted_leader == Some(leader)
                    {
                        learning!(self).phase = LearnerPhase::EpochAcked(epoch);
                        self.send_ack_epoch();
                    } else {
                        learning!(self).phase = LearnerPhase::AcceptingEpoch(epoch);
                    }
                } else {
                    // An epoch we may not accept: another leader has it, or a
                    // later one exists.
                    self.start_election();
                    if let State::Looking(looking) = &mut self.state {
                        looking.hold_off_ticks = self.config.election_timeout_ticks.max(1) * 2;
                    }
                }
            }
            Message::NewLeader {
                epoch, sync, txns, ..
            } if phase == LearnerPhase::EpochAcked(epoch) => {
                self.apply_sync(epoch, sync, txns);
            }
            Message::UpToDate { committed, .. } => {
                if let LearnerPhase::AckedNewLeader(epoch) = phase {
                    learning!(self).phase = LearnerPhase::UpToDate(epoch);
                    self.committed = self.committed.max(committed);
                    self.apply();
                }
            }
            // The leader sends a voter of its active or pending membership
            // PROPOSALs and anyone else INFORMs; which one this learner is
            // can change with the membership, so it takes either.
            Message::Proposal { prev, txn, .. } if phase.in_sync() => {
                self.accept_txns(prev, vec![txn]);
            }
            Message::Inform {
                prev,
                txns,
                committed,
                ..
            } if phase.in_sync() => {
                let continued = self.accept_txns(prev, txns);
                if continued {
                    self.committed = self.committed.max(committed);
                    self.apply();
                }
            }
            Message::Commit { zxid, .. } if phase.in_sync() => {
                self.committed = self.committed.max(zxid);
                self.apply();
            }
            Message::ReadPing { session, round } if phase.in_sync() && !is_observer => {
                self.send(leader, Message::ReadAck { session, round });
            }
            Message::Ping {
                last_zxid,
                committed,
                ..
            } => {
                let l = learning!(self);
                l.leader_last = l.leader_last.max(last_zxid);
                l.leader_committed = l.leader_committed.max(committed);
                if phase.in_sync() {
                    self.committed = self.committed.max(committed);
                    self.apply();
                }
            }
            _ => {}
        }
    }

    /// Append txns that continue the log right after `prev`; a gap means a lost
    /// message, and the learner reconnects to be synchronized again. Returns
    /// false if it reconnected.
    fn accept_txns(&mut self, prev: Zxid, txns: Vec<Txn>) -> bool {
        let mut batch: Vec<Txn> = Vec::new();
        let mut last = self.log.last();
        let mut expected = prev;
        for txn in txns {
            if txn.zxid <= last {
                // A duplicate of something we already have.
                expected = txn.zxid;
                continue;
            }
            if expected != last || txn.zxid <= expected {
                let leader = learning!(self).leader;
                self.become_learner(leader);
                return false;
            }
            expected = txn.zxid;
            last = txn.zxid;
            batch.push(txn);
        }
        if let Some(end) = batch.last().map(|t| t.zxid) {
            let op = self.emit_op(
                Action::Append {
                    txns: batch.clone(),
                },
                end,
            );
            self.note_logged(&batch);
            for txn in batch {
                self.log.append(txn, op);
            }
        }
        true
    }

    fn apply_sync(&mut self, epoch: Epoch, sync: SyncMode, txns: Vec<Txn>) {
        match sync {
            SyncMode::Diff => {}
            SyncMode::Trunc { after } => {
                if after < self.applied {
                    // Never un-apply: a leader asking this lacks committed txns.
                    self.start_election();
                    return;
                }
                self.log.truncate_after(after);
                self.emit_op(Action::Truncate { after }, after);
                self.rescan_pending();
            }
            SyncMode::Snap { zxid } => {
                // Never take back settled state: a leader asking this lacks
                // committed txns. State above it may go: a leader's state
                // lacks it only if it was never committed.
                if zxid < self.settled {
                    self.start_election();
                    return;
                }
                let op = self.emit_op(Action::InstallSnapshot { zxid }, zxid);
                self.log.install(zxid, op);
                // What the state holds, the driver says (installed_membership).
                self.floor_pending = None;
                self.config.pending = None;
                // Not known committed until UPTODATE: a leader not yet
                // established may send state its successor does not keep.
                self.applied = zxid;
            }
        }
        let mut batch: Vec<Txn> = Vec::new();
        for txn in txns {
            let last = batch.last().map_or(self.log.last(), |t| t.zxid);
            if txn.zxid <= last {
                let leader = learning!(self).leader;
                self.become_learner(leader);
                return;
            }
            batch.push(txn);
        }
        if let Some(end) = batch.last().map(|t| t.zxid) {
            let op = self.emit_op(
                Action::Append {
                    txns: batch.clone(),
                },
                end,
            );
            self.note_logged(&batch);
            for txn in batch {
                self.log.append(txn, op);
            }
        }
        let op = self.ops_emitted;
        let upto = self.log.last();
        let l = learning!(self);
        l.phase = LearnerPhase::Syncing { epoch, op };
        l.sync_upto = upto;
        self.learner_durable();
    }

    /// Storage caught up: move synchronization on, or ACK.
    fn learner_durable(&mut self) {
        match learning!(self).phase {
            LearnerPhase::Syncing { epoch, op } if self.ops_durable >= op => {
                // ZOOKEEPER-4643: currentEpoch only after the synced log is durable.
                let latest = self.latest_epochs();
                if latest.current == epoch && self.epochs.current == epoch {
                    let l = learning!(self);
                    l.phase = LearnerPhase::AckedNewLeader(epoch);
                    let (leader, message) = (
                        l.leader,
                        Message::AckNewLeader {
                            session: l.session,
                            epoch,
                            zxid: l.sync_upto,
                        },
                    );
                    self.send(leader, message);
                } else {
                    learning!(self).phase = LearnerPhase::PersistingCurrent(epoch);
                    self.persist_epochs(Epochs {
                        current: epoch,
                        ..latest
                    });
                }
            }
            LearnerPhase::AckedNewLeader(_) | LearnerPhase::UpToDate(_) => {
                self.send_ack();
                self.apply();
            }
            _ => {}
        }
    }

    fn tick_learner(&mut self) {
        let init_limit = self.config.init_limit_ticks;
        let sync_limit = self.config.sync_limit_ticks;
        let last = self.log.last();
        let l = learning!(self);
        l.session_ticks += 1;
        l.silent_ticks += 1;
        let up_to_date = matches!(l.phase, LearnerPhase::UpToDate(_));
        if (!up_to_date && l.session_ticks > init_limit) || l.silent_ticks > sync_limit {
            self.start_election();
            return;
        }
        if up_to_date {
            // A PING says the leader has more than we received: a proposal or
            // inform was lost. Allow for pings overtaking proposals in flight.
            let behind = if l.observer {
                l.leader_committed > last
            } else {
                l.leader_last > last
            };
            l.lag_ticks = if behind { l.lag_ticks + 1 } else { 0 };
            if l.lag_ticks > 2 {
                let leader = l.leader;
                self.become_learner(leader);
                return;
            }
        }
        // Re-send the current step's message: the transport may lose it.
        let (leader, session, phase, sync_upto) = (l.leader, l.session, l.phase, l.sync_upto);
        match phase {
            LearnerPhase::SentInfo => {
                let accepted_epoch = self.latest_epochs().accepted;
                self.send(
                    leader,
                    Message::FollowerInfo {
                        session,
                        accepted_epoch,
                    },
                );
            }
            LearnerPhase::EpochAcked(_) => self.send_ack_epoch(),
            LearnerPhase::AckedNewLeader(epoch) => {
                self.send(
                    leader,
                    Message::AckNewLeader {
                        session,
                        epoch,
                        zxid: sync_upto,
                    },
                );
            }
            LearnerPhase::UpToDate(_) => {
                if let Some(durable) = self.durable_last() {
                    self.send(
                        leader,
                        Message::Ack {
                            session,
                            zxid: durable,
                        },
                    );
                }
            }
            _ => {}
        }
    }

    // ---- leader -------------------------------------------------------------

    fn become_leader(&mut self) {
        self.committed = self.settled;
        self.state = State::Leading(Leader {
            phase: LeaderPhase::Discovery,
            epoch: Epoch(0),
            learners: BTreeMap::new(),
            ticks: 0,
            history_end: Zxid::ZERO,
            read_round: 0,
            reads: VecDeque::new(),
        });
        self.check_discovery();
    }

    fn check_discovery(&mut self) {
        let latest = self.latest_epochs();
        let me = self.config.id;
        let l = match &mut self.state {
            State::Leading(l) if l.phase == LeaderPhase::Discovery => l,
            _ => return,
        };
        let joined: BTreeSet<ServerId> = l.learners.keys().copied().chain([me]).collect();
        if !has_quorum(&self.config, &joined) {
            return;
        }
        let highest = l
            .learners
            .values()
            .map(|link| link.accepted)
            .max()
            .unwrap_or_default()
            .max(latest.accepted);
        let Some(next) = highest.0.checked_add(1) else {
            return;
        };
        l.epoch = Epoch(next);
        l.phase = LeaderPhase::PersistingAccepted;
        self.persist_epochs(Epochs {
            accepted: Epoch(next),
            accepted_leader: Some(me),
            ..latest
        });
    }

    fn send_leader_info(&mut self, id: ServerId) {
        let l = leading!(self);
        let epoch = l.epoch;
        let Some(link) = l.learners.get_mut(&id) else {
            return;
        };
        if link.phase == LinkPhase::Info {
            link.phase = LinkPhase::EpochSent;
        }
        let message = Message::LeaderInfo {
            session: link.session,
            epoch,
        };
        self.send(id, message);
    }

    fn check_epoch_acks(&mut self) {
        let l = leading!(self);
        if l.phase != LeaderPhase::Proposing {
            return;
        }
        let acked: BTreeSet<ServerId> = l
            .learners
            .iter()
            .filter(|(_, link)| link.ack_epoch.is_some())
            .map(|(&id, _)| id)
            .chain([self.config.id])
            .collect();
        if !has_quorum(&self.config, &acked) {
            return;
        }
        let history_end = self.log.last();
        let l = leading!(self);
        l.phase = LeaderPhase::Syncing;
        l.history_end = history_end;
        let ready: Vec<ServerId> = l
            .learners
            .iter()
            .filter(|(_, link)| link.phase == LinkPhase::EpochAcked)
            .map(|(&id, _)| id)
            .collect();
        for id in ready {
            self.send_new_leader(id);
        }
        self.check_newleader_quorum();
    }

    /// How to bring a learner to the leader's log: the last zxid both hold is
    /// the learner's snapshot zxid or, for an epoch both logs contain, the
    /// smaller of their last zxids in it (txns of one epoch come from its one
    /// leader in order, so two logs agree on an epoch's common part).
    fn sync_plan(&self, info: &AckEpochInfo) -> (SyncMode, Zxid) {
        let mut common = info.floor;
        for &end in &info.epoch_ends {
            if let Some(mine) = self.log.last_of_epoch(end.epoch()) {
                common = common.max(mine.min(end));
            }
        }
        // Too much to carry in one NEWLEADER: SNAP instead, but only from a
        // state at or after what the learner holds, never taking it back.
        let too_big = || {
            let bytes: usize = self
                .log
                .after(common)
                .iter()
                .map(|e| e.txn.data.len())
                .sum();
            bytes > self.config.max_diff_bytes && self.applied >= common
        };
        if common < self.log.floor() || !self.log.contains(common) || too_big() {
            (SyncMode::Snap { zxid: self.applied }, self.applied)
        } else if info.last_zxid > common {
            (SyncMode::Trunc { after: common }, common)
        } else {
            (SyncMode::Diff, common)
        }
    }

    fn send_new_leader(&mut self, id: ServerId) {
        let last = self.log.last();
        let l = leading!(self);
        let epoch = l.epoch;
        let Some(link) = l.learners.get(&id) else {
            return;
        };
        let Some(info) = link.ack_epoch.clone() else {
            return;
        };
        let session = link.session;
        let (sync, from) = self.sync_plan(&info);
        let txns: Vec<Txn> = self.log.after(from).iter().map(|e| e.txn.clone()).collect();
        let l = leading!(self);
        if let Some(link) = l.learners.get_mut(&id) {
            link.phase = LinkPhase::Syncing;
            link.sent_upto = last;
        }
        self.send(
            id,
            Message::NewLeader {
                session,
                epoch,
                sync,
                txns,
            },
        );
    }

    fn check_newleader_quorum(&mut self) {
        let (phase, epoch, history_end) = {
            let l = leading!(self);
            (l.phase, l.epoch, l.history_end)
        };
        if phase != LeaderPhase::Syncing {
            return;
        }
        // Our own NEWLEADER ack, by the follower's rule (ZOOKEEPER-4643):
        // currentEpoch only once the history is durable.
        let history_durable = self.is_durable(history_end);
        let latest = self.latest_epochs();
        if history_durable && latest.current != epoch {
            self.persist_epochs(Epochs {
                current: epoch,
                ..latest
            });
        }
        let own = history_durable && self.epochs.current == epoch;
        let me = self.config.id;
        let l = leading!(self);
        let acked: BTreeSet<ServerId> = l
            .learners
            .iter()
            .filter(|(_, link)| link.phase == LinkPhase::Synced)
            .map(|(&id, _)| id)
            .chain([me])
            .collect();
        // Our own ack is required, not just counted: a leader whose durable
        // currentEpoch is older than the txns it commits could, after a
        // crash, lose an election to a peer that lacks them, and be
        // truncated.
        if own && has_quorum(&self.config, &acked) {
            self.establish();
        }
    }

    fn establish(&mut self) {
        let l = leading!(self);
        l.phase = LeaderPhase::Broadcast;
        let history_end = l.history_end;
        self.committed = self.committed.max(history_end);
        let committed = self.committed;
        let l = leading!(self);
        let synced: Vec<(ServerId, u64)> = l
            .learners
            .iter()
            .filter(|(_, link)| link.phase == LinkPhase::Synced)
            .map(|(&id, link)| (id, link.session))
            .collect();
        for (id, session) in synced {
            self.send(id, Message::UpToDate { session, committed });
        }
        self.apply();
    }

    fn on_leader_message(&mut self, from: ServerId, message: Message) {
        if let Message::FollowerInfo {
            session,
            accepted_epoch,
        } = message
        {
            self.on_follower_info(from, session, accepted_epoch);
            return;
        }
        let l = leading!(self);
        let (phase, term) = (l.phase, l.epoch);
        let Some(link) = l.learners.get_mut(&from) else {
            return;
        };
        if message.session() != Some(link.session) {
            return;
        }
        link.silent_ticks = 0;
        let link_phase = link.phase;
        let is_voter = voting(&self.config, from);
        match message {
            Message::AckEpoch {
                current_epoch,
                last_zxid,
                floor,
                epoch_ends,
                ..
            } => {
                if link_phase == LinkPhase::EpochSent {
                    // A voter with a later history than ours: we must not lead.
                    if is_voter
                        && (current_epoch, last_zxid) > (self.epochs.current, self.log.last())
                    {
                        self.start_election();
                        return;
                    }
                    let link = leading!(self).learners.get_mut(&from).expect("link");
                    link.ack_epoch = Some(AckEpochInfo {
                        last_zxid,
                        floor,
                        epoch_ends,
                    });
                    link.phase = LinkPhase::EpochAcked;
                    match phase {
                        LeaderPhase::Proposing => self.check_epoch_acks(),
                        LeaderPhase::Syncing | LeaderPhase::Broadcast => self.send_new_leader(from),
                        _ => {}
                    }
                } else if link_phase == LinkPhase::Syncing {
                    // Our NEWLEADER may have been lost: send it again.
                    self.send_new_leader(from);
                }
            }
            // A late ack of an earlier term's NEWLEADER is not this one's.
            Message::AckNewLeader { epoch, .. } if epoch != term => {}
            Message::AckNewLeader { zxid, .. } => match link_phase {
                LinkPhase::Syncing => {
                    let link = leading!(self).learners.get_mut(&from).expect("link");
                    link.phase = LinkPhase::Synced;
                    link.acked = Some(zxid);
                    let session = link.session;
                    match phase {
                        LeaderPhase::Syncing => self.check_newleader_quorum(),
                        LeaderPhase::Broadcast => {
                            let committed = self.committed;
                            self.send(from, Message::UpToDate { session, committed });
                            self.check_commit();
                        }
                        _ => {}
                    }
                }
                LinkPhase::Synced if phase == LeaderPhase::Broadcast => {
                    let (session, committed) = (link.session, self.committed);
                    self.send(from, Message::UpToDate { session, committed });
                }
                _ => {}
            },
            // An ACK before the NEWLEADER ack falls through to `_` and is
            // ignored, not an error (ZOOKEEPER-4685): the NEWLEADER ack covers it.
            // Every synced learner's acks are kept; quorums count voters only.
            Message::Ack { zxid, .. } if link_phase == LinkPhase::Synced => {
                link.acked = Some(link.acked.map_or(zxid, |a| a.max(zxid)));
                if phase == LeaderPhase::Broadcast {
                    self.check_commit();
                }
            }
            Message::ReadAck { round, .. } if link_phase == LinkPhase::Synced && is_voter => {
                link.read_round = link.read_round.max(round);
                self.check_reads();
            }
            _ => {}
        }
    }

    fn on_follower_info(&mut self, from: ServerId, session: u64, accepted_epoch: Epoch) {
        let l = leading!(self);
        let phase = l.phase;
        if let Some(link) = l.learners.get_mut(&from) {
            if link.session == session {
                link.silent_ticks = 0;
                if link.phase >= LinkPhase::EpochSent && link.phase < LinkPhase::Syncing {
                    self.send_leader_info(from);
                }
                return;
            }
        }
        // A voter that already accepted our epoch or a later one can never
        // join this attempt; before we are established, make way for an
        // election that picks a later epoch.
        let chosen = !matches!(phase, LeaderPhase::Discovery | LeaderPhase::Broadcast);
        if chosen && voting(&self.config, from) && accepted_epoch > l.epoch {
            self.start_election();
            return;
        }
        l.learners.insert(
            from,
            Link {
                session,
                phase: LinkPhase::Info,
                accepted: accepted_epoch,
                ack_epoch: None,
                acked: None,
                sent_upto: Zxid::ZERO,
                silent_ticks: 0,
                read_round: 0,
            },
        );
        match phase {
            LeaderPhase::Discovery => self.check_discovery(),
            LeaderPhase::PersistingAccepted => {}
            _ => self.send_leader_info(from),
        }
    }

    fn check_commit(&mut self) {
        let own = self.durable_last();
        let l = leading!(self);
        if l.phase != LeaderPhase::Broadcast {
            return;
        }
        let mut acked: Vec<(ServerId, Zxid)> = l
            .learners
            .iter()
            .filter(|(_, link)| link.phase == LinkPhase::Synced)
            .filter_map(|(&id, link)| link.acked.map(|a| (id, a)))
            .collect();
        acked.extend(own.map(|own| (self.config.id, own)));
        let candidate = if self.config.unsafe_commit_alone {
            own
        } else {
            // The highest zxid held by a majority of the active voters; at
            // or after a pending change, of its voters too.
            let highest = |joint: bool| {
                let mut values: Vec<Zxid> = acked.iter().map(|&(_, z)| z).collect();
                values.sort_unstable_by(|a, b| b.cmp(a));
                values.dedup();
                values.into_iter().find(|&z| {
                    let holders: BTreeSet<ServerId> = acked
                        .iter()
                        .filter(|&&(_, a)| a >= z)
                        .map(|&(id, _)| id)
                        .collect();
                    quorum_of(&self.config.voters, &holders)
                        && (!joint
                            || self
                                .config
                                .pending
                                .as_ref()
                                .is_none_or(|(_, m)| m.is_quorum(&holders)))
                })
            };
            match &self.config.pending {
                None => highest(false),
                Some((change, _)) => match highest(false) {
                    Some(old) if old >= *change => {
                        let before = self.log.before(*change);
                        highest(true).max(Some(before))
                    }
                    old => old,
                },
            }
        };
        if let Some(candidate) = candidate {
            if candidate > self.committed && self.log.contains(candidate) {
                self.committed = candidate;
                self.broadcast_commit();
            }
        }
        self.apply();
    }

    fn broadcast_commit(&mut self) {
        let committed = self.committed;
        let mut sends = Vec::new();
        let l = match &mut self.state {
            State::Leading(l) => l,
            _ => return,
        };
        for (&id, link) in l.learners.iter_mut() {
            if !matches!(link.phase, LinkPhase::Syncing | LinkPhase::Synced) {
                continue;
            }
            if voting(&self.config, id) {
                sends.push((
                    id,
                    Message::Commit {
                        session: link.session,
                        zxid: committed,
                    },
                ));
            } else {
                let prev = link.sent_upto;
                let txns: Vec<Txn> = self
                    .log
                    .after(prev)
                    .iter()
                    .take_while(|e| e.txn.zxid <= committed)
                    .map(|e| e.txn.clone())
                    .collect();
                if let Some(last) = txns.last() {
                    link.sent_upto = last.zxid;
                }
                sends.push((
                    id,
                    Message::Inform {
                        session: link.session,
                        prev,
                        txns,
                        committed,
                    },
                ));
            }
        }
        for (id, message) in sends {
            self.send(id, message);
        }
    }

    fn tick_leader(&mut self) {
        let init_limit = self.config.init_limit_ticks;
        let sync_limit = self.config.sync_limit_ticks;
        let last = self.log.last();
        let committed = self.committed;
        let l = leading!(self);
        l.ticks += 1;
        for link in l.learners.values_mut() {
            link.silent_ticks += 1;
        }
        if l.phase != LeaderPhase::Broadcast && l.ticks > init_limit {
            self.start_election();
            return;
        }
        let forget = init_limit.max(sync_limit) * 2;
        l.learners.retain(|_, link| link.silent_ticks <= forget);
        let resend = self.config.election_timeout_ticks.max(1);
        if l.phase != LeaderPhase::Broadcast && l.ticks % resend == 0 {
            // A voter that does not know it votes (it missed the pending
            // change) never asks who leads: tell the voters not yet here.
            let joined: BTreeSet<ServerId> = l.learners.keys().copied().collect();
            let message = self.notification();
            for voter in all_voters(&self.config) {
                if voter != self.config.id && !joined.contains(&voter) {
                    self.send(voter, message.clone());
                }
            }
        }
        let l = leading!(self);
        if l.phase == LeaderPhase::Broadcast {
            let live: BTreeSet<ServerId> = l
                .learners
                .iter()
                .filter(|(_, link)| {
                    link.phase == LinkPhase::Synced && link.silent_ticks <= sync_limit
                })
                .map(|(&id, _)| id)
                .chain([self.config.id])
                .collect();
            if !has_quorum(&self.config, &live) {
                self.start_election();
                return;
            }
        }
        let pings: Vec<(ServerId, Message)> = l
            .learners
            .iter()
            .map(|(&id, link)| {
                (
                    id,
                    Message::Ping {
                        session: link.session,
                        last_zxid: last,
                        committed,
                    },
                )
            })
            .collect();
        for (id, message) in pings {
            self.send(id, message);
        }
    }
}

// ---- quorums ----------------------------------------------------------------

/// True if `ids` hold a majority of `voters`.
/// The newest membership change among `txns` after the active one.
fn newest_change<'a>(
    config: &Config,
    txns: impl Iterator<Item = &'a Txn>,
) -> Option<(Zxid, Membership)> {
    txns.filter(|txn| txn.zxid > config.version)
        .filter_map(|txn| (config.reconfig_of)(&txn.data).map(|m| (txn.zxid, m)))
        .last()
}

fn quorum_of(voters: &BTreeSet<ServerId>, ids: &BTreeSet<ServerId>) -> bool {
    ids.intersection(voters).count() > voters.len() / 2
}

/// True if `ids` are a quorum: a majority of the active voters and, while a
/// change is pending, of its voters too.
fn has_quorum(config: &Config, ids: &BTreeSet<ServerId>) -> bool {
    quorum_of(&config.voters, ids)
        && config
            .pending
            .as_ref()
            .is_none_or(|(_, membership)| membership.is_quorum(ids))
}

/// A voter of the active or of the pending membership: someone whose votes
/// and acks count.
fn voting(config: &Config, id: ServerId) -> bool {
    config.voters.contains(&id)
        || config
            .pending
            .as_ref()
            .is_some_and(|(_, membership)| membership.voters.contains(&id))
}

/// The voters of the active and the pending memberships.
fn all_voters(config: &Config) -> BTreeSet<ServerId> {
    let mut voters = config.voters.clone();
    if let Some((_, membership)) = &config.pending {
        voters.extend(membership.voters.iter().copied());
    }
    voters
}

/// The peers whose vote is `vote`.
fn agreeing(votes: &BTreeMap<ServerId, Vote>, vote: Vote) -> BTreeSet<ServerId> {
    votes
        .iter()
        .filter(|(_, v)| **v == vote)
        .map(|(&id, _)| id)
        .collect()
}
