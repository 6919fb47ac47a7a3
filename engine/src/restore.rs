//! Rebuilding a tree from a stream of encoded snapshot records on two
//! threads. Reading and decoding a record (decompression, checksums, and
//! allocating and hashing the node) costs about as much as linking it into
//! the tree, so a `snapshot-decode` thread does the first while the caller's
//! thread does the second. Both backends restore through this: the native
//! one from a snapshot file, RocksDB from a checkpoint generation.
//!
//! Memory stays bounded: at most `BATCHES_IN_FLIGHT` batches of prepared
//! records wait between the threads, beside the growing tree.
//!
//! Also the second half of recovery, shared the same way: `Replay` applies
//! the logged txns after a fuzzy snapshot's start (`apply_replay`), recounts
//! the quota stats where replay reaches the snapshot's end (the one thing
//! replay cannot converge on by itself, see `quota`), and checks there that
//! the tree has the digest the snapshot recorded.
//!
//! A recovery that takes more than a second says so in the log as it goes
//! (`RecoveryProgress`: counts and rate once a second, then a summary), so an
//! operator watching a restart of a big data directory sees it move.

use crate::apply::apply_replay;
use crate::persist::{CodecError, PreparedRecord, RecordDecoder, Restorer};
use crate::tree::{DataTree, TreeError};
use crate::txn::Txn;
use crate::types::Zxid;
use std::time::{Duration, Instant};

/// Records the decoding thread hands over at a time (some 80 KiB).
pub(crate) const BATCH_RECORDS: usize = 512;
/// Batches in flight from the decoding thread.
pub(crate) const BATCHES_IN_FLIGHT: usize = 8;

#[derive(Debug)]
pub enum RestoreError<E> {
    /// The source of records failed.
    Read(E),
    /// A record does not decode.
    Decode(CodecError),
    /// The records do not form a tree (an orphan, a duplicate).
    Tree(TreeError),
    /// The decoding thread could not be started.
    Spawn(std::io::Error),
}

/// Logs a long recovery step's progress: nothing for a step that ends within
/// `QUIET`, then a line every `QUIET` with the count so far and the rate, and
/// a summary at the end. The clock is read once per `CHECK_EVERY` items.
pub struct RecoveryProgress {
    what: &'static str,
    started: Instant,
    last_line: Instant,
    count: u64,
    /// Items added since the clock was last read.
    unchecked: u64,
    spoke: bool,
}

impl RecoveryProgress {
    const QUIET: Duration = Duration::from_secs(1);
    const CHECK_EVERY: u64 = 4096;

    /// `what` names the items, e.g. "snapshot nodes", "log txns".
    pub fn new(what: &'static str) -> RecoveryProgress {
        let now = Instant::now();
        RecoveryProgress {
            what,
            started: now,
            last_line: now,
            count: 0,
            unchecked: 0,
            spoke: false,
        }
    }

    pub fn add(&mut self, items: u64) {
        self.count += items;
        self.unchecked += items;
        if self.unchecked >= Self::CHECK_EVERY {
            self.unchecked = 0;
            if let Some(line) = self.line(Instant::now()) {
                tracing::info!("{line}");
            }
        }
    }

    /// The progress line due at `now`, if one is.
    fn line(&mut self, now: Instant) -> Option<String> {
        if now.duration_since(self.last_line) < Self::QUIET {
            return None;
        }
        self.last_line = now;
        self.spoke = true;
        Some(format!(
            "recovering: {} {} so far ({:.0}/s)",
            self.count,
            self.what,
            rate(self.count, now.duration_since(self.started))
        ))
    }

    /// The summary, if the step was long enough to have been reported.
    fn summary(&self, now: Instant) -> Option<String> {
        let elapsed = now.duration_since(self.started);
        (self.spoke || elapsed >= Self::QUIET).then(|| {
            format!(
                "recovered {} {} in {:.1} s ({:.0}/s)",
                self.count,
                self.what,
                elapsed.as_secs_f64(),
                rate(self.count, elapsed)
            )
        })
    }

    pub fn finish(&self) {
        if let Some(summary) = self.summary(Instant::now()) {
            tracing::info!("{summary}");
        }
    }
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-3)
}

/// Restores the tree whose encoded records (`persist::encode_record`, parents
/// before children) `read` produces, marked as holding everything up to
/// `start`. `read` runs on the decoding thread and passes each record to the
/// sink it is given; when the sink returns false the restore has failed, and
/// `read` should stop and return. `expected_nodes` sizes the tree up front
/// (a hint: pass a bounded figure, 0 if unknown).
pub fn restore_pipelined<E: Send>(
    start: Zxid,
    expected_nodes: usize,
    read: impl FnOnce(&mut dyn FnMut(&[u8]) -> bool) -> Result<(), E> + Send,
) -> Result<DataTree, RestoreError<E>> {
    std::thread::scope(|scope| {
        let (batches, received) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT);
        let decoding = std::thread::Builder::new()
            .name("snapshot-decode".into())
            .spawn_scoped(scope, move || decode(read, batches))
            .map_err(RestoreError::Spawn)?;
        let mut restorer = Restorer::new(start, expected_nodes);
        let mut progress = RecoveryProgress::new("snapshot records");
        let mut built = Ok(());
        'receive: for batch in received.iter() {
            progress.add(batch.len() as u64);
            for record in batch {
                if let Err(error) = restorer.restore_prepared(record) {
                    built = Err(error);
                    break 'receive;
                }
            }
        }
        // Hanging up stops the decoding thread if the tree refused a record.
        drop(received);
        decoding
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        built.map_err(RestoreError::Tree)?;
        progress.finish();
        Ok(restorer.finish())
    })
}

/// The decoding thread: prepares what `read` yields and sends it in
/// batches, until `read` is done or the receiver hangs up.
fn decode<E>(
    read: impl FnOnce(&mut dyn FnMut(&[u8]) -> bool) -> Result<(), E>,
    batches: std::sync::mpsc::SyncSender<Vec<PreparedRecord>>,
) -> Result<(), RestoreError<E>> {
    let mut decoder = RecordDecoder::default();
    // A record may add two prepared ones (an ACL list, then the node).
    let mut batch = Vec::with_capacity(BATCH_RECORDS + 1);
    let mut failed = None;
    let mut hung_up = false;
    let read = read(&mut |bytes| {
        if let Err(error) = decoder.decode(bytes, &mut batch) {
            failed = Some(error);
            return false;
        }
        if batch.len() >= BATCH_RECORDS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_RECORDS + 1));
            if batches.send(full).is_err() {
                // The tree refused a record; the builder reports it.
                hung_up = true;
                return false;
            }
        }
        true
    });
    if let Some(error) = failed {
        return Err(RestoreError::Decode(error));
    }
    read.map_err(RestoreError::Read)?;
    if !hung_up {
        // A hang-up here also means the builder has an error to report.
        let _ = batches.send(batch);
    }
    Ok(())
}

/// Replays the log over a tree restored from a fuzzy snapshot that was
/// started at `start` and, if it recorded them, ended at zxid `end` with
/// tree digest `digest`. Invariant: the tree is accepted only if replay
/// passes through `end` and has `digest` there.
pub struct Replay {
    start: Zxid,
    end: Option<(Zxid, u64)>,
    replayed: u64,
    progress: RecoveryProgress,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("replayed", &self.replayed)
            .finish()
    }
}

/// Why replay refused a snapshot.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ReplayError {
    /// At the snapshot's end the tree's digest differs from the recorded
    /// one: the snapshot (or the log it was replayed with) is not the state
    /// it claims. An older snapshot may still be good.
    Diverged {
        end: Zxid,
        digest: u64,
        recorded: u64,
    },
    /// The log ends before the snapshot's end.
    Short { last: Zxid, end: Zxid },
    /// The log goes from before the snapshot's end to after it without
    /// holding the end's txn.
    Skipped { end: Zxid, next: Zxid },
}

impl ReplayError {
    /// The error in words, calling the snapshot `what` ("snapshot",
    /// "checkpoint").
    pub fn describe(&self, what: &str) -> String {
        match self {
            ReplayError::Diverged {
                end,
                digest,
                recorded,
            } => format!(
                "the tree replayed to the {what}'s end zxid {end} has digest {digest:#x}, \
                 the {what} recorded {recorded:#x}"
            ),
            ReplayError::Short { last, end } => {
                format!("the log ends at {last} but the {what} needs it up to {end}")
            }
            ReplayError::Skipped { end, next } => {
                format!("the log has no txn {end}, the {what}'s end, but goes on at {next}")
            }
        }
    }
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe("snapshot"))
    }
}

impl Replay {
    /// A replay over a tree restored from a snapshot started at `start`;
    /// `end` is the snapshot's end zxid and its digest there, if recorded.
    pub fn new(start: Zxid, end: Option<(Zxid, u64)>) -> Replay {
        Replay {
            start,
            end,
            replayed: 0,
            progress: RecoveryProgress::new("log txns"),
        }
    }

    /// Checks a tree that is at the snapshot's end before any replay (a
    /// snapshot no write ran under). Call once, before the first txn.
    pub fn begin(&mut self, tree: &mut DataTree) -> Result<(), ReplayError> {
        self.check_end(tree)
    }

    /// Replays one logged txn; txns at or before the start are skipped.
    pub fn txn(&mut self, tree: &mut DataTree, txn: &Txn) -> Result<(), ReplayError> {
        if txn.zxid <= self.start {
            return Ok(());
        }
        if let Some((end, _)) = self.end {
            if tree.last_zxid() < end && txn.zxid > end {
                return Err(ReplayError::Skipped {
                    end,
                    next: txn.zxid,
                });
            }
        }
        apply_replay(tree, txn);
        self.replayed += 1;
        self.progress.add(1);
        self.check_end(tree)
    }

    /// Ends the replay once the log is exhausted; returns how many txns
    /// were replayed.
    pub fn finish(&self, tree: &DataTree) -> Result<u64, ReplayError> {
        if let Some((end, _)) = self.end {
            if tree.last_zxid() < end {
                return Err(ReplayError::Short {
                    last: tree.last_zxid(),
                    end,
                });
            }
        }
        self.progress.finish();
        Ok(self.replayed)
    }

    fn check_end(&self, tree: &mut DataTree) -> Result<(), ReplayError> {
        let Some((end, recorded)) = self.end else {
            return Ok(());
        };
        if tree.last_zxid() != end {
            return Ok(());
        }
        // Between the start and the end the snapshot saw quota stats nodes
        // and the subtrees they count at different moments; the stats are
        // a function of the tree (`quota`), so one recount makes them what
        // the live tree had. With nothing replayed there was no such window.
        if self.replayed > 0 {
            crate::quota::recount_all(tree);
        }
        if tree.digest() != recorded {
            return Err(ReplayError::Diverged {
                end,
                digest: tree.digest(),
                recorded,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod progress_tests {
    use super::RecoveryProgress;
    use std::time::Duration;

    #[test]
    fn a_quick_recovery_says_nothing_a_long_one_reports_each_second() {
        let mut progress = RecoveryProgress::new("log txns");
        let start = progress.started;
        progress.count = 10;
        assert_eq!(progress.line(start + Duration::from_millis(500)), None);
        assert_eq!(progress.summary(start + Duration::from_millis(500)), None);
        progress.count = 3_000;
        let line = progress
            .line(start + Duration::from_millis(1_500))
            .expect("a line after a second");
        assert!(line.contains("3000 log txns so far (2000/s)"), "{line}");
        assert_eq!(progress.line(start + Duration::from_millis(1_900)), None);
        let summary = progress
            .summary(start + Duration::from_secs(3))
            .expect("a summary");
        assert!(
            summary.contains("recovered 3000 log txns in 3.0 s (1000/s)"),
            "{summary}"
        );
    }
}
