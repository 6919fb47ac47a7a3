//! Zab, ZooKeeper's atomic broadcast, as a state machine that does no I/O: it
//! reads no clock, socket or file and spawns nothing. A driver feeds a [`Peer`]
//! messages ([`Peer::step`]), ticks ([`Peer::tick`]), storage completions
//! ([`Peer::persisted`], [`Peer::persisted_epochs`]) and client writes
//! ([`Peer::propose`]), and carries out the [`Action`]s it returns
//! ([`Peer::take_actions`]). Its only randomness is the seeded [`Prng`] it is
//! given, so its output depends on its inputs and the seed alone. To it a txn
//! is opaque bytes with a zxid; `zxid = epoch << 32 | counter`.
//!
//! # Phases
//!
//! 1. **Election** (Apache's fast leader election). A LOOKING peer votes for
//!    itself (its durable currentEpoch, its last logged zxid, its id) in a new
//!    round (logical clock) and sends the vote to every voter. A notification
//!    from a later round moves it to that round; within a round it adopts any
//!    vote that wins over its own by (epoch, zxid, server id) and re-sends. When
//!    a quorum of voters' votes in its round equal its own it decides: leader if
//!    the vote names it, follower otherwise (it waits one tick for stragglers
//!    unless every voter has voted). Peers that are FOLLOWING or LEADING answer a
//!    LOOKING peer's notification with their own; a LOOKING peer (or an
//!    observer) that hears a quorum of voters name one leader, and hears that
//!    leader say it leads, joins it. Notifications are re-sent every
//!    `election_timeout_ticks`. Election is only a hint: the safety of
//!    everything below comes from discovery, not from who won the vote.
//! 2. **Discovery.** Each learner sends FOLLOWERINFO (its acceptedEpoch). When
//!    a quorum of voters (the leader included) has, the leader picks a new
//!    epoch above every acceptedEpoch it has seen, **persists it as its own
//!    acceptedEpoch** and sends LEADERINFO(epoch). A learner accepts it if it is
//!    above its acceptedEpoch, or equal to it and accepted from this same leader
//!    (a reconnection); it **persists acceptedEpoch = (epoch, leader)** and only
//!    then sends ACKEPOCH (currentEpoch, last zxid, snapshot zxid, last zxid of
//!    each epoch in its log). Recording the leader with the epoch means no voter
//!    acknowledges two leaders for one epoch, so at most one leader per epoch
//!    gathers a quorum. A leader that sees a voter with a later currentEpoch, or
//!    the same one and a later zxid, gives up and goes back to election.
//! 3. **Synchronization.** Once a quorum of voters has sent ACKEPOCH the
//!    leader's log is the epoch's initial history. For each learner it finds the
//!    last zxid both logs share (the learner's snapshot zxid, or for each epoch
//!    in both logs the smaller of the two last zxids of that epoch) and sends one
//!    NEWLEADER message that carries DIFF (append what follows), TRUNC (drop the
//!    learner's suffix after the shared zxid, then append) or SNAP (install the
//!    leader's state, when the shared zxid is below the leader's log floor or
//!    not in its log: a learner's recovered state past what it knows settled
//!    may end in an abandoned epoch's proposals, which SNAP replaces). The
//!    learner applies it to its log, and **only when every write it caused is
//!    durable does it persist currentEpoch = epoch; only when that is durable
//!    does it ACK NEWLEADER**. The leader is its own follower: once its history
//!    is durable it persists its currentEpoch, and it establishes the epoch
//!    only with its own ack *and* a quorum of voters' acks (a leader whose
//!    durable currentEpoch lagged the txns it committed could lose a later
//!    election to a peer without them). It then commits the whole initial
//!    history and sends UPTODATE; the learner applies nothing before it, and
//!    takes the commit point from COMMIT / UPTODATE, never from NEWLEADER.
//!    Learners that arrive later are synchronized the same way, proposals and
//!    commits made meanwhile follow their NEWLEADER, and UPTODATE answers
//!    their ack.
//! 4. **Broadcast.** [`Peer::propose`] on the established leader assigns the
//!    next zxid, appends locally and sends PROPOSAL to followers. A follower
//!    appends and ACKs (cumulatively) **only what is durable**, and only after
//!    its NEWLEADER ack; the leader counts its own durable appends like any
//!    voter's. A zxid commits when a quorum of voters holds it durably; commits
//!    go out in zxid order as COMMIT (followers) or INFORM with the txns
//!    (observers, which never count). Every peer emits [`Action::Commit`] up to
//!    the smaller of the commit point and its own durable log.
//! 5. **Failure detection.** The leader sends PING every tick; learners send
//!    their current message (an ACK, once synchronized) every tick. A learner
//!    that hears nothing for `sync_limit_ticks`, or is not synchronized within
//!    `init_limit_ticks`, goes back to election; one that sees a gap in the
//!    proposal stream reconnects. A leader not established within
//!    `init_limit_ticks`, or that has heard from less than a quorum of voters in
//!    the last `sync_limit_ticks`, steps down. A leader whose zxid counter would
//!    pass `max_counter` steps down too, so that the next leader starts a new
//!    epoch and no zxid ever wraps.
//!
//! Not here: session touches and forwarding of learners' client requests
//! (the driver carries them in [`Message::App`], which the peer ignores),
//! moving a SNAP's state (the server's driver streams it in chunks ahead of
//! the NEWLEADER), and what a membership change says (the driver's
//! [`Config::reconfig_of`] reads it out of a txn). The peer
//! keeps its log above its snapshot floor in memory (payloads included, to
//! send DIFFs); the driver bounds it with [`Peer::compact`].
//!
//! # Reconfiguration
//!
//! A txn that [`Config::reconfig_of`] maps to a [`Membership`] changes the
//! ensemble. From the moment a peer logs it (proposed, received, or found
//! in its recovered state) until it applies it, that membership is
//! *pending*, and every quorum the peer counts — votes, discovery, the
//! NEWLEADER acks, commits at or after its zxid, liveness, read indexes —
//! must be a majority of the active voters **and** of the pending ones
//! (joint consensus). Once the peer applies it, it is active alone
//! ([`Action::Activate`]; the driver records it durably before anything
//! else), and a peer that no longer votes steps down or rejoins in its new
//! role. A leader proposes one change at a time. Because a pending change
//! needs both majorities, the old and the new voters can never commit
//! apart: any quorum a peer counts meets every quorum that may have
//! committed (the simulation reconfigures at random and checks it).
//! Peers outside the membership (servers joining) may learn from the
//! leader as non-voters, and their votes count for no one; so that a
//! voter-to-be can acknowledge the change, the leader sends PROPOSALs to
//! every voter of the active or pending membership and INFORMs to the rest.
//!
//! # Durability
//!
//! Storage actions ([`Action::Append`], [`Action::Truncate`],
//! [`Action::InstallSnapshot`]) are executed in order; [`Peer::persisted`]`(z)`
//! says the one ending at zxid `z` (the last txn appended, the truncation point,
//! the snapshot zxid) and all before it are durable. [`Action::PersistEpochs`]
//! writes acceptedEpoch (with its leader) and currentEpoch, and is confirmed by
//! [`Peer::persisted_epochs`], in order. The peer never acts on an epoch or a
//! txn before it is confirmed durable: no ACKEPOCH before acceptedEpoch, no
//! NEWLEADER ack before the synced log and then currentEpoch, no proposal ACK
//! before the proposal.
//!
//! # What the driver guarantees
//!
//! Storage actions are carried out in the order emitted, and each completion
//! is reported once. Messages may be lost, duplicated, delayed or reordered:
//! every message after election carries the learner's session (a random id
//! per connection, standing in for Apache's TCP connection), learners resend
//! their current step every tick, and a learner that sees a gap in the
//! proposal stream (each PROPOSAL names the zxid before it) reconnects and is
//! synchronized again. For SNAP the leader's driver delivers its state machine
//! as of the snapshot zxid, or a later committed state (see [`Action::Send`]).
//!
//! # Invariants (checked by the simulation after every step)
//!
//! - At most one leader establishes itself per epoch.
//! - A follower acknowledges only proposals it holds durably, and NEWLEADER
//!   only once its disk holds the synced log and the new currentEpoch.
//! - A txn commits only when a quorum of voters holds it durably.
//! - A committed txn is never lost, reordered or applied twice: every peer's
//!   applied sequence is a prefix of one global committed sequence.
//! - A new leader's initial history contains every txn committed in an
//!   earlier epoch.
//!
//! # Wire format
//!
//! [`wire`] encodes every message, the SNAP trailer a leader's driver attaches
//! and the connection handshake (magic, version, sender id, ensemble
//! fingerprint, channel) as checksummed, size-bounded frames; it is pure, and
//! its decoders treat peer bytes as untrusted. With the `transport` feature,
//! [`transport`] carries those frames over TCP on each server's election and
//! quorum ports (threads and sockets, kept out of the core): sends never
//! block, strangers are refused at the handshake, a bad frame closes one
//! connection, and links reconnect on their own.
//!
//! [`sim`] runs whole ensembles in one thread under a seeded scheduler (loss,
//! duplication, delay, reordering, symmetric and one-way partitions, crashes
//! that keep only what was durable, slow and stalled disks, drifting ticks).
//! `cargo test -p quorum` runs a bounded set of seeds, the regression
//! scenarios for ZOOKEEPER-3911, -4394, -4643, -4646, -4685, -4785 and -4925
//! (`tests/regressions.rs`) and hand-driven peer tests; a failing seed is
//! printed and `SIM_SEED=<seed> cargo test -p quorum sim` replays it with a
//! trace; `SIM_SEEDS=<n>` runs n seeds per ensemble shape.

mod log;
mod message;
mod peer;
mod prng;
pub mod sim;
#[cfg(feature = "transport")]
pub mod transport;
pub mod wire;

use std::collections::BTreeSet;
use std::fmt;

pub use message::{Message, PeerState, SyncMode, Vote};
pub use peer::{Peer, Role};
pub use prng::Prng;

/// A ZooKeeper transaction id: `epoch << 32 | counter`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Zxid(pub u64);

impl Zxid {
    pub const ZERO: Zxid = Zxid(0);

    pub fn new(epoch: Epoch, counter: u32) -> Zxid {
        Zxid((u64::from(epoch.0) << 32) | u64::from(counter))
    }

    pub fn epoch(self) -> Epoch {
        Epoch((self.0 >> 32) as u32)
    }

    pub fn counter(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Debug for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A leader's epoch: the high 32 bits of every zxid it assigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u32);

/// A server's `myid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ServerId(pub u64);

/// A txn as the quorum sees it: opaque bytes with a zxid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn {
    pub zxid: Zxid,
    pub data: Vec<u8>,
}

/// The durable epoch record: Apache's acceptedEpoch and currentEpoch files,
/// plus the leader the accepted epoch came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Epochs {
    /// The last epoch this peer accepted in discovery (LEADERINFO).
    pub accepted: Epoch,
    /// The leader `accepted` was accepted from (`None` before any).
    pub accepted_leader: Option<ServerId>,
    /// The last epoch whose NEWLEADER this peer acknowledged (or, for a
    /// leader, established).
    pub current: Epoch,
}

/// What a peer recovers from storage at start-up.
#[derive(Clone, Debug, Default)]
pub struct Durable {
    pub epochs: Epochs,
    /// The zxid of the snapshot the log starts after; the driver's state
    /// machine holds exactly the txns up to it.
    pub floor: Zxid,
    /// The durable log after `floor`, in zxid order.
    pub log: Vec<Txn>,
    /// The highest zxid at or below `floor` known committed: a snapshot the
    /// driver took of its applied state, say (a SNAP's installed state is
    /// not known committed: its leader may never have established). A
    /// driver that replays its whole log into its state at start-up, as the
    /// server does, passes that state's last zxid as `floor` and what it
    /// knows committed here (zero, if it records nothing): the txns between
    /// may be proposals of an abandoned epoch, which a leader replaces by
    /// SNAP (a state cannot be truncated). A peer refuses a SNAP below it.
    pub settled: Zxid,
}

/// Who votes and who observes. Ids in neither may still learn from a leader
/// (a server about to join), as non-voters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    pub voters: BTreeSet<ServerId>,
    pub observers: BTreeSet<ServerId>,
}

impl Membership {
    /// True if `ids` hold a majority of the voters.
    pub fn is_quorum(&self, ids: &BTreeSet<ServerId>) -> bool {
        ids.intersection(&self.voters).count() > self.voters.len() / 2
    }

    pub fn is_member(&self, id: ServerId) -> bool {
        self.voters.contains(&id) || self.observers.contains(&id)
    }
}

/// `Config::reconfig_of` unless set: no txn changes the membership.
fn no_reconfig(_: &[u8]) -> Option<Membership> {
    None
}

/// `Config::max_diff_bytes` unless set.
pub const DEFAULT_MAX_DIFF_BYTES: usize = 64 << 20;

/// The ensemble and the peer's timing, in ticks.
#[derive(Clone, Debug)]
pub struct Config {
    pub id: ServerId,
    /// The active membership: the last one this peer knows committed.
    pub voters: BTreeSet<ServerId>,
    pub observers: BTreeSet<ServerId>,
    /// The zxid of the txn that made `voters` and `observers` active (zero
    /// for the static config).
    pub version: Zxid,
    /// A membership logged after `version` and not known committed: the
    /// driver's recovered state ends with it. Quorums are joint until it
    /// applies (see the crate docs).
    pub pending: Option<(Zxid, Membership)>,
    /// Which txns change the membership, and to what. A pure function of the
    /// txn's bytes, so every peer reads the same change out of the same txn.
    pub reconfig_of: fn(&[u8]) -> Option<Membership>,
    /// Ticks between re-sent election notifications.
    pub election_timeout_ticks: u32,
    /// Ticks a leader or learner may spend in discovery and synchronization.
    pub init_limit_ticks: u32,
    /// Ticks of silence after which a learner or a leader gives up.
    pub sync_limit_ticks: u32,
    /// The last zxid counter a leader may assign in one epoch.
    pub max_counter: u32,
    /// The most txn data a DIFF or TRUNC may carry; a learner that lacks
    /// more is sent SNAP, which streams (Apache's `snapshotSizeFactor`
    /// makes the same choice by comparing with the snapshot's size). It
    /// bounds the one NEWLEADER message that carries them.
    pub max_diff_bytes: usize,
    /// UNSAFE, for testing the testers only: a leader commits what it has
    /// logged itself, without waiting for a quorum. It breaks Zab on
    /// purpose (a deposed leader's commits are lost), so that zk-chaos can
    /// show its checkers catch lost acknowledged writes. Never set outside
    /// such a test.
    pub unsafe_commit_alone: bool,
}

impl Config {
    /// A config with Apache's default limits (initLimit 10, syncLimit 5).
    pub fn new(id: ServerId, voters: BTreeSet<ServerId>, observers: BTreeSet<ServerId>) -> Config {
        Config {
            id,
            voters,
            observers,
            version: Zxid::ZERO,
            pending: None,
            reconfig_of: no_reconfig,
            election_timeout_ticks: 2,
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            max_counter: u32::MAX,
            max_diff_bytes: DEFAULT_MAX_DIFF_BYTES,
            unsafe_commit_alone: false,
        }
    }

    /// A voter of the active membership.
    pub fn is_voter(&self, id: ServerId) -> bool {
        self.voters.contains(&id)
    }

    /// A member of the active membership.
    pub fn is_member(&self, id: ServerId) -> bool {
        self.voters.contains(&id) || self.observers.contains(&id)
    }

    /// The active membership.
    pub fn membership(&self) -> Membership {
        Membership {
            voters: self.voters.clone(),
            observers: self.observers.clone(),
        }
    }
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a message. For a `NewLeader` with `SyncMode::Snap { zxid }` the
    /// driver delivers its state machine's state with it; when this action
    /// comes, the state is exactly the state at `zxid` (every `Commit` up to
    /// `zxid` came before it and none after), and a driver that copies it
    /// while later commits apply must bring the copy to one committed
    /// state, at `zxid` or after.
    Send { to: ServerId, message: Message },
    /// Append txns to the log; report with `persisted(last zxid)`.
    Append { txns: Vec<Txn> },
    /// Drop every logged txn after `after`; report with `persisted(after)`.
    Truncate { after: Zxid },
    /// Replace state and log with the snapshot received in the last
    /// `NewLeader` (SNAP); report with `persisted(zxid)`. If the state the
    /// driver received is at a later committed zxid, the txns up to it that
    /// the peer then appends are durable already (in that state): report
    /// them persisted without writing them again, and skip their commits.
    InstallSnapshot { zxid: Zxid },
    /// Write the epoch record; report with `persisted_epochs()`.
    PersistEpochs(Epochs),
    /// Apply every logged txn up to `upto` to the state machine.
    Commit { upto: Zxid },
    /// The membership changed by the txn at `zxid` is active: it was
    /// applied (a `Commit` covering it came first). Record it durably before
    /// carrying out the next action: after a restart the peer must be
    /// configured with it (`Config::version`, voters, observers).
    Activate { zxid: Zxid, membership: Membership },
    /// The answer to `Peer::read_index(ctx)`: a read that waits until the
    /// state machine has applied `zxid` sees every txn committed before the
    /// call. `None`: this peer is not (or no longer) the established leader.
    ReadIndex { ctx: u64, zxid: Option<Zxid> },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("not the established leader (leader: {leader:?})")]
    NotLeader { leader: Option<ServerId> },
    #[error("epoch {epoch:?} has used its last zxid counter; the leader stepped down so the next epoch can start")]
    EpochExhausted { epoch: Epoch },
    #[error("a membership change is already in progress")]
    ReconfigInProgress,
    #[error("invalid quorum config: {reason}")]
    Config { reason: String },
    #[error("cannot compact to {zxid}: it must be applied and durable")]
    Compact { zxid: Zxid },
}
