//! The commit pipeline: three stages between the I/O threads and the tree,
//! each the sole owner of what it changes, so that replication plugs in at
//! the seams between them.
//!
//! ```text
//! Submission ─▶ sequencer ──▶ log ──Proposal + ticket──▶ applier ─▶ Mail
//!               prep, zxids   Storage::append            propose; commit(upto) when the
//!               (owns Prep)   (owns Storage)             backend's durability events say
//!                                                        so; applies in zxid order (the
//!                                                        tree's only writer)
//! ```
//!
//! The applier is driven by two inputs: `propose` (a batch in zxid order,
//! logged or being logged) and `commit(upto)`. Standalone, a txn durable here
//! is committed: the applier thread selects over proposals and the
//! backend's durability wake-ups, and commits each append once its ticket is
//! durable. Under Zab the quorum layer takes the durability events (to ACK)
//! and calls `commit` when a quorum has acked; neither stage changes.
//!
//! Invariants (DESIGN.md 1, 2, 7): nothing is answered and no watch fires for
//! a txn before it is committed; entries are answered in the order they were
//! sequenced, so a session's replies keep its order; a txn's watch events are
//! posted under the tree's write lock with the txn, before any read can see
//! it. Group commit falls out of the shape: every write that arrives while a
//! batch is syncing is prepped into the next one, with no timer.

mod applier;
mod forward;
mod log;
pub mod reconfig;
pub mod replica;
mod sequencer;
mod snap;
mod snapshots;
#[cfg(test)]
mod tests;

pub use snapshots::SnapshotPolicy;

use applier::Applier;
use engine::prep::Prep;
use engine::storage::{Storage, StorageError};
use engine::txn::Txn;
use engine::types::{ErrorCode, WatcherId, Zxid};
use net::mailbox::Submission;
use net::shared::Shared;
use sequencer::Sequencer;
use std::sync::Arc;

/// Batches sequenced but not yet applied, at most; past this the sequencer
/// waits, and outstanding requests back up to the I/O threads' limits.
const MAX_PROPOSALS_IN_FLIGHT: usize = 64;

pub struct Pipeline {
    pub shared: Arc<Shared>,
    pub storage: Box<dyn Storage>,
    pub prep: Prep,
    pub submissions: crossbeam_channel::Receiver<Submission>,
    pub tick_ms: u64,
    pub container_check_interval_ms: u64,
    /// When to write snapshots, for a backend that takes them.
    pub snapshots: Option<SnapshotPolicy>,
    /// Set for an ensemble member: the quorum driver takes the log's place.
    pub replica: Option<replica::ReplicaSetup>,
    /// How reconfig requests are answered.
    pub reconfig: reconfig::Rules,
}

/// Who is waiting for a txn's outcome.
#[derive(Debug)]
enum Origin {
    Client {
        conn: WatcherId,
        xid: i32,
    },
    CreateSession {
        conn: WatcherId,
        timeout_ms: i32,
    },
    CloseSession {
        conn: WatcherId,
        xid: i32,
    },
    Expiry,
    /// The server's own txn that no one waits for: the container/TTL
    /// reaper's deletes, the first leader's versioning of the static list.
    Internal,
    /// In an ensemble: another server's txn, or a learner's forwarded
    /// request (answered by the learner that holds it, see `forward`).
    Replicated,
}

/// One sequenced entry, answered in its place.
#[derive(Debug)]
enum Entry {
    /// The next txn of the proposal's `txns`.
    Txn(Origin),
    /// Answered without a txn.
    Refused {
        conn: WatcherId,
        xid: i32,
        err: ErrorCode,
    },
    /// Answered once everything sequenced before it is applied.
    Sync {
        conn: WatcherId,
        xid: i32,
        path: String,
    },
}

/// What the sequencer hands to the log: txns in zxid order (contiguous, so
/// the log appends them without a copy) and every entry in sequence order,
/// the `Entry::Txn`s naming `txns` one by one.
#[derive(Debug, Default)]
struct Proposal {
    txns: Vec<Txn>,
    entries: Vec<Entry>,
}

impl Proposal {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn last_zxid(&self) -> Option<Zxid> {
        self.txns.last().map(|txn| txn.zxid)
    }

    fn push_txn(&mut self, txn: Txn, origin: Origin) {
        self.txns.push(txn);
        self.entries.push(Entry::Txn(origin));
    }
}

/// A proposal and, if it has txns, its append in flight.
struct Logged {
    proposal: Proposal,
    appended: Option<log::Appended>,
}

impl Pipeline {
    /// Runs the sequencer and the log on this thread and the applier on a
    /// thread of its own, until shutdown or a storage failure. Whichever
    /// stops first, the server stops: without the pipeline it could only
    /// serve stale reads.
    pub fn run(self) -> Result<(), StorageError> {
        let shared = Arc::clone(&self.shared);
        let result = self.run_stages();
        shared.begin_shutdown();
        result
    }

    fn run_stages(self) -> Result<(), StorageError> {
        let Pipeline {
            shared,
            storage,
            prep,
            submissions,
            tick_ms,
            container_check_interval_ms,
            snapshots,
            replica,
            reconfig,
        } = self;
        if let Some(setup) = replica {
            let applier = Applier::new(
                Arc::clone(&shared),
                prep.last_zxid(),
                snapshots.map(snapshots::SnapshotSchedule::new),
            );
            let sequencer = Sequencer::new(
                Arc::clone(&shared),
                prep,
                tick_ms,
                container_check_interval_ms,
                applier.applied_handle(),
                reconfig::Reconfigs::new(reconfig, true),
            );
            return replica::run(setup, shared, storage, sequencer, applier, submissions);
        }
        let log = log::Log::new(storage);
        // At most this many proposals between sequencer and applier: past it
        // the sequencer waits, and requests back up to the I/O threads'
        // outstanding limits.
        let (logged, logged_rx) = crossbeam_channel::bounded::<Logged>(MAX_PROPOSALS_IN_FLIGHT);
        let durability = log.durability();
        let applier = Applier::new(
            Arc::clone(&shared),
            prep.last_zxid(),
            snapshots.map(snapshots::SnapshotSchedule::new),
        );
        let applied = applier.applied_handle();
        let applier_shared = Arc::clone(&shared);
        let applier = std::thread::Builder::new()
            .name("applier".into())
            .spawn(move || applier::run(applier, applier_shared, logged_rx, durability))
            .map_err(|source| StorageError::Io {
                path: "applier thread".into(),
                source,
            })?;
        let sequenced = Sequencer::new(
            Arc::clone(&shared),
            prep,
            tick_ms,
            container_check_interval_ms,
            applied,
            reconfig::Reconfigs::new(reconfig, false),
        )
        .run(submissions, log, logged);
        // The sequencer dropped its end of `logged`: the applier finishes
        // what is queued and returns.
        let applied = applier.join().unwrap_or(Ok(()));
        sequenced.and(applied)
    }
}
