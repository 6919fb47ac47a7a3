//! The messages peers exchange. Their wire encoding is the transport's business
//! (the server's peer transport); here they are plain values. Every message
//! after election carries the learner's `session`, a random id the learner picks
//! when it connects to a leader: it plays the part of Apache's TCP connection,
//! so that a late or duplicated message from an earlier connection is ignored
//! instead of being mistaken for part of the current one.

use crate::{Epoch, Membership, ServerId, Txn, Zxid};

/// A vote in fast leader election. Field order is the comparison order: a vote
/// wins over another by peer epoch, then last zxid, then server id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vote {
    /// The proposed leader's currentEpoch (Apache's peerEpoch).
    pub epoch: Epoch,
    /// The proposed leader's last logged zxid.
    pub zxid: Zxid,
    /// The proposed leader.
    pub leader: ServerId,
}

/// What a peer is doing, as reported in its notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// How a learner's log is brought in line with the leader's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// The learner's log is a prefix of the leader's: append the txns.
    Diff,
    /// The learner holds a suffix the leader's history does not: drop every
    /// txn after `after` (the last zxid both share), then append the txns.
    Trunc { after: Zxid },
    /// The learner is too far behind (or the leader's log no longer reaches
    /// back to it): install the leader's state as of `zxid`, then append the
    /// txns. The state itself is the drivers' to move (see `Action::Send`).
    Snap { zxid: Zxid },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Fast leader election: the sender's vote in election `round`.
    Notification {
        vote: Vote,
        round: u64,
        state: PeerState,
    },

    /// Election channel, beside a notification from a peer whose active
    /// membership came from a change (`version` is that change's zxid): a
    /// peer that missed the change (down when it committed) adopts it, so it
    /// neither waits for a quorum of voters that are gone nor counts them.
    Membership {
        version: Zxid,
        membership: Membership,
    },

    /// Discovery, learner → leader: FOLLOWERINFO (or OBSERVERINFO) with the
    /// learner's acceptedEpoch.
    FollowerInfo { session: u64, accepted_epoch: Epoch },
    /// Discovery, leader → learner: LEADERINFO with the new epoch.
    LeaderInfo { session: u64, epoch: Epoch },
    /// Discovery, learner → leader: ACKEPOCH with what the leader needs to
    /// choose DIFF, TRUNC or SNAP.
    AckEpoch {
        session: u64,
        current_epoch: Epoch,
        last_zxid: Zxid,
        /// The zxid of the learner's snapshot: every txn up to it is committed.
        floor: Zxid,
        /// The last zxid of each epoch in the learner's log above `floor`.
        epoch_ends: Vec<Zxid>,
    },

    /// Synchronization, leader → learner: the DIFF / TRUNC / SNAP packets and
    /// NEWLEADER in one message, since a learner must take them as one unit.
    /// `txns` run up to the leader's last zxid when it was sent.
    NewLeader {
        session: u64,
        epoch: Epoch,
        sync: SyncMode,
        txns: Vec<Txn>,
    },
    /// Synchronization, learner → leader: ACK of the NEWLEADER of `epoch`,
    /// sent only once the learner's log holds everything up to `zxid` durably
    /// and its currentEpoch is durably `epoch`. (The epoch tells a late ack
    /// of an earlier NEWLEADER on the same session from this one: a leader
    /// that steps down and is elected again keeps its learners' sessions.)
    AckNewLeader {
        session: u64,
        epoch: Epoch,
        zxid: Zxid,
    },
    /// Synchronization, leader → learner: UPTODATE; `committed` is the
    /// leader's commit point.
    UpToDate { session: u64, committed: Zxid },

    /// Broadcast, leader → follower. `prev` is the zxid right before `txn` in
    /// the leader's log, so a follower notices a gap.
    Proposal { session: u64, prev: Zxid, txn: Txn },
    /// Broadcast, learner → leader: the follower's log holds the leader's
    /// history durably up to `zxid` (cumulative). Also its heartbeat.
    Ack { session: u64, zxid: Zxid },
    /// Broadcast, leader → follower: everything up to `zxid` is committed.
    Commit { session: u64, zxid: Zxid },
    /// Broadcast, leader → observer: committed txns after `prev` and the
    /// commit point.
    Inform {
        session: u64,
        prev: Zxid,
        txns: Vec<Txn>,
        committed: Zxid,
    },
    /// Leader → learner each tick: liveness, plus the leader's last zxid and
    /// commit point so a learner notices lost proposals and commits.
    Ping {
        session: u64,
        last_zxid: Zxid,
        committed: Zxid,
    },

    /// Leader → voters: confirm that you still follow me (ReadIndex). Sent
    /// for reads waiting on `Peer::read_index`; `round` only grows.
    ReadPing { session: u64, round: u64 },
    /// Voter → leader: the answer to the `ReadPing` of `round`.
    ReadAck { session: u64, round: u64 },

    /// The driver's own traffic between servers (a learner's forwarded
    /// client requests and session touches): opaque bytes on the quorum
    /// channel. [`Peer::step`](crate::Peer::step) ignores it; the driver
    /// takes it off before stepping.
    App { payload: Vec<u8> },
}

impl Message {
    /// The learner session a post-election message belongs to.
    pub fn session(&self) -> Option<u64> {
        match self {
            Message::Notification { .. } | Message::Membership { .. } | Message::App { .. } => None,
            Message::FollowerInfo { session, .. }
            | Message::LeaderInfo { session, .. }
            | Message::AckEpoch { session, .. }
            | Message::NewLeader { session, .. }
            | Message::AckNewLeader { session, .. }
            | Message::UpToDate { session, .. }
            | Message::Proposal { session, .. }
            | Message::Ack { session, .. }
            | Message::Commit { session, .. }
            | Message::Inform { session, .. }
            | Message::Ping { session, .. }
            | Message::ReadPing { session, .. }
            | Message::ReadAck { session, .. } => Some(*session),
        }
    }
}
