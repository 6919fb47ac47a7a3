//! The snapshot schedule: counts applied txns and starts a background
//! snapshot (native) or checkpoint (RocksDB) when one is due, and purges old
//! ones on `autopurge.purgeInterval`. One background job at a time; a
//! snapshot reads the applied tree only, so it never holds a txn that is not
//! committed.

use engine::Checkpointer;
use net::shared::Shared;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Counts applied txns and starts a snapshot thread when one is due (never
/// two at once).
pub(super) struct SnapshotSchedule {
    policy: SnapshotPolicy,
    since_last: u64,
    due_at: u64,
    seed: u64,
    running: Option<std::thread::JoinHandle<()>>,
    last_purge: Instant,
}

impl SnapshotSchedule {
    pub(super) fn new(policy: SnapshotPolicy) -> SnapshotSchedule {
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
    pub(super) fn applied(&mut self, txns: u64, shared: &Arc<Shared>) {
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

    /// Waits for a running snapshot to end: the applier calls it before it
    /// swaps the live tree for another (a SNAP's), so that no walk reads
    /// part of one tree and part of the other.
    pub(super) fn wait_idle(&mut self) {
        if let Some(thread) = self.running.take() {
            let _ = thread.join();
        }
    }

    pub(super) fn finish(self) {
        if let Some(thread) = self.running {
            let _ = thread.join();
        }
    }
}
