//! Zab SNAP as a stream: how a leader hands its whole state to a learner
//! without holding the tree still, or a second copy of it, while the state
//! travels.
//!
//! The leader walks its live tree in chunks, as the fuzzy snapshotter does,
//! taking the read lock for one chunk at a time, so commits go on being
//! applied meanwhile. The walk starts with the tree exactly at the SNAP zxid
//! `start` and ends with it at some later `end`; what it saw is a fuzzy
//! snapshot, and that plus the committed txns in (`start`, `end`] is exactly
//! the state at `end`. So the stream is, on the quorum channel, in order:
//!
//! ```text
//! SnapRecords × n   the walk's records, ~1 MiB each, zstd-compressed
//! SnapTail × m      committed txns in (last txn of the NEWLEADER, end]
//! NEWLEADER (SNAP)  with a `Trailer`: start, end, digests, frame count
//! ```
//!
//! The learner restores the records into a new tree on a thread of its own
//! as they arrive (memory: that tree and a few chunks), and when NEWLEADER
//! comes replays the NEWLEADER's txns up to `end` and then the tail over it
//! (`engine::restore::Replay`, the recovery code for fuzzy snapshots), checks
//! both digests at `end`, and only then lets the peer take the NEWLEADER.
//! The peer still sees "install the state at `start`, then log the txns
//! after it"; the driver installs the state at `end` instead and skips the
//! appends the installed state already holds. A stream that breaks anywhere
//! is dropped whole and the NEWLEADER with it: the learner's sync times out
//! and it starts over, as after any lost packet.
//!
//! Every frame is untrusted input: counts, sizes and decompressed lengths
//! are bounded before anything is allocated for them.

use super::forward::{AppMessage, TailTxn};
use engine::persist::{decode_txn, decode_value, encode_record, encode_value, SnapshotCursor};
use engine::restore::{restore_pipelined, Replay, RestoreError};
use engine::tree::DataTree;
use engine::types::Zxid;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

/// Nodes walked under one read lock.
const WALK_NODES: usize = 1024;
/// A records frame is closed once its records reach this many bytes.
pub(super) const CHUNK_BYTES: usize = 1 << 20;
/// A tail frame is closed once its txns reach this many bytes.
const TAIL_FRAME_BYTES: usize = 4 << 20;
/// No records frame decompresses to more than this (a chunk is closed after
/// ~1 MiB, so only one very large node could come near it).
const MAX_CHUNK_RAW_BYTES: u64 = 48 << 20;
/// A state larger than this (decompressed) is refused.
const MAX_STATE_BYTES: u64 = 8 << 30;
/// Tail txn bytes a learner buffers before it refuses the stream.
const MAX_TAIL_BYTES: usize = 1 << 30;
/// Chunks waiting between the driver and the restoring thread.
const CHUNKS_IN_FLIGHT: usize = 16;

/// What ends a stream; it travels attached to the NEWLEADER.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Trailer {
    /// The zxid the tree was at when the walk began: the SNAP zxid.
    pub start: i64,
    /// The zxid the tree was at when the walk ended.
    pub end: i64,
    /// `DataTree::digest` and `replica_digest` of the state at `end`.
    pub digest: u64,
    pub replica_digest: u64,
    /// Frames (records, then tail) sent before the NEWLEADER.
    pub frames: u64,
}

impl Trailer {
    pub(super) fn encode(&self) -> Result<Vec<u8>, String> {
        encode_value(self).map_err(|e| e.to_string())
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Trailer, String> {
        decode_value(bytes).map_err(|e| format!("SNAP trailer: {e}"))
    }
}

/// Where a finished walk left the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct WalkEnd {
    pub end: Zxid,
    pub digest: u64,
    pub replica_digest: u64,
    /// Records frames emitted.
    pub frames: u64,
}

/// Walks `tree`, which must be at `start` when the walk takes its first read
/// lock (`locked` is called once it holds it, so the caller may let commits
/// go on from there), and hands each compressed records chunk to `emit`.
/// Stops with an error when `emit` returns false or `cancel` is set.
pub(super) fn walk(
    tree: &RwLock<DataTree>,
    start: Zxid,
    locked: impl FnOnce(),
    cancel: &AtomicBool,
    mut emit: impl FnMut(u64, Vec<u8>) -> bool,
) -> Result<WalkEnd, String> {
    let mut cursor = SnapshotCursor::new();
    let mut records = Vec::with_capacity(WALK_NODES);
    let mut raw = Vec::with_capacity(CHUNK_BYTES + (CHUNK_BYTES >> 2));
    let mut frames = 0u64;
    {
        let guard = tree.read();
        locked();
        if guard.last_zxid() != start {
            return Err(format!(
                "the tree is at {}, not at the SNAP zxid {start}",
                guard.last_zxid()
            ));
        }
        cursor.next_chunk(&guard, WALK_NODES, &mut records);
    }
    loop {
        for record in records.drain(..) {
            let bytes = encode_record(&record).map_err(|e| e.to_string())?;
            let len = u32::try_from(bytes.len()).map_err(|_| "a record over 4 GiB".to_string())?;
            raw.extend_from_slice(&len.to_le_bytes());
            raw.extend_from_slice(&bytes);
        }
        let done = cursor.is_done();
        if raw.len() >= CHUNK_BYTES || (done && !raw.is_empty()) {
            let compressed = zstd::bulk::compress(&raw, 1).map_err(|e| e.to_string())?;
            raw.clear();
            if cancel.load(Ordering::Acquire) || !emit(frames, compressed) {
                return Err("the stream was cancelled".into());
            }
            frames += 1;
        }
        if done {
            break;
        }
        cursor.next_chunk(&tree.read(), WALK_NODES, &mut records);
    }
    let tree = tree.read();
    Ok(WalkEnd {
        end: tree.last_zxid(),
        digest: tree.digest(),
        replica_digest: tree.replica_digest(),
        frames,
    })
}

/// Groups the tail's txns into frames of at most ~`TAIL_FRAME_BYTES`.
pub(super) fn tail_frames(txns: impl Iterator<Item = TailTxn>) -> Vec<Vec<TailTxn>> {
    let mut frames = Vec::new();
    let mut frame = Vec::new();
    let mut bytes = 0;
    for txn in txns {
        bytes += txn.data.len() + 16;
        frame.push(txn);
        if bytes >= TAIL_FRAME_BYTES {
            frames.push(std::mem::take(&mut frame));
            bytes = 0;
        }
    }
    if !frame.is_empty() {
        frames.push(frame);
    }
    frames
}

/// A learner's stream in progress: records restoring on a thread of their
/// own, tail txns kept until the NEWLEADER.
pub(super) struct Incoming {
    session: u64,
    start: Zxid,
    next: u64,
    feed: Option<crossbeam_channel::Sender<Vec<u8>>>,
    restoring: Option<std::thread::JoinHandle<Result<DataTree, String>>>,
    tail: Vec<TailTxn>,
    tail_bytes: usize,
}

impl Incoming {
    /// A stream whose first records frame (`seq` 0) just arrived.
    pub(super) fn start(session: u64, start: Zxid) -> Result<Incoming, String> {
        let (feed, chunks) = crossbeam_channel::bounded::<Vec<u8>>(CHUNKS_IN_FLIGHT);
        let restoring = std::thread::Builder::new()
            .name("snap-restore".into())
            .spawn(move || restore_chunks(start, chunks))
            .map_err(|e| format!("cannot start restoring: {e}"))?;
        Ok(Incoming {
            session,
            start,
            next: 0,
            feed: Some(feed),
            restoring: Some(restoring),
            tail: Vec::new(),
            tail_bytes: 0,
        })
    }

    pub(super) fn session(&self) -> u64 {
        self.session
    }

    /// The next records frame. Blocks while the restoring thread is
    /// `CHUNKS_IN_FLIGHT` frames behind.
    pub(super) fn records(&mut self, seq: u64, start: Zxid, data: Vec<u8>) -> Result<(), String> {
        self.expect(seq)?;
        if start != self.start || !self.tail.is_empty() {
            return Err("records out of place in the stream".into());
        }
        let feed = self.feed.as_ref().ok_or("the stream is closed")?;
        feed.send(data)
            .map_err(|_| "the restore stopped early".to_string())
    }

    pub(super) fn tail(&mut self, seq: u64, txns: Vec<TailTxn>) -> Result<(), String> {
        self.expect(seq)?;
        for txn in txns {
            self.tail_bytes += txn.data.len() + 16;
            if self.tail_bytes > MAX_TAIL_BYTES {
                return Err("the tail is too large".into());
            }
            if self.tail.last().is_some_and(|last| last.zxid >= txn.zxid) {
                return Err("tail txns out of order".into());
            }
            self.tail.push(txn);
        }
        Ok(())
    }

    fn expect(&mut self, seq: u64) -> Result<(), String> {
        if seq != self.next {
            return Err(format!("frame {seq} where {} was due", self.next));
        }
        self.next += 1;
        Ok(())
    }

    /// Ends the stream with its NEWLEADER: the restored tree with `txns`
    /// (the NEWLEADER's, up to the trailer's end) and the tail replayed over
    /// it, checked against the trailer's digests. The tree is at `end`.
    pub(super) fn finish(
        mut self,
        trailer: &Trailer,
        txns: &[quorum::Txn],
    ) -> Result<DataTree, String> {
        drop(self.feed.take());
        let mut tree = self
            .restoring
            .take()
            .expect("joined once")
            .join()
            .map_err(|_| "the restoring thread panicked".to_string())??;
        if trailer.frames != self.next {
            return Err(format!(
                "the trailer counts {} frames, {} arrived",
                trailer.frames, self.next
            ));
        }
        if Zxid(trailer.start) != self.start {
            return Err("the trailer's start is not the records' start".into());
        }
        let end = Zxid(trailer.end);
        let mut replay = Replay::new(self.start, Some((end, trailer.digest)));
        let describe = |e: engine::restore::ReplayError| e.describe("SNAP");
        replay.begin(&mut tree).map_err(describe)?;
        let newleader = txns
            .iter()
            .take_while(|t| t.zxid.0 as i64 <= trailer.end)
            .map(|t| (t.zxid.0 as i64, t.data.as_slice()));
        let tail = self.tail.iter().map(|t| (t.zxid, t.data.as_slice()));
        for (zxid, data) in newleader.chain(tail) {
            if tree.last_zxid() >= end {
                break;
            }
            let txn = decode_txn(data).map_err(|e| format!("txn {zxid:#x}: {e}"))?;
            if txn.zxid != Zxid(zxid) {
                return Err(format!("txn {zxid:#x} names zxid {}", txn.zxid));
            }
            replay.txn(&mut tree, &txn).map_err(describe)?;
        }
        replay.finish(&tree).map_err(describe)?;
        if tree.replica_digest() != trailer.replica_digest {
            return Err(format!(
                "ACLs or sessions differ from the leader's at {end}: digest {:#x}, the leader's {:#x}",
                tree.replica_digest(),
                trailer.replica_digest
            ));
        }
        Ok(tree)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        drop(self.feed.take());
        if let Some(restoring) = self.restoring.take() {
            let _ = restoring.join();
        }
    }
}

/// The restoring thread: decompresses each chunk (bounded), splits it into
/// records and builds the tree from them.
fn restore_chunks(
    start: Zxid,
    chunks: crossbeam_channel::Receiver<Vec<u8>>,
) -> Result<DataTree, String> {
    restore_pipelined(start, 0, |sink| {
        let mut total = 0u64;
        let mut raw = Vec::new();
        for chunk in chunks {
            raw.clear();
            zstd::stream::read::Decoder::new(chunk.as_slice())
                .map_err(|e| format!("records frame: {e}"))?
                .take(MAX_CHUNK_RAW_BYTES + 1)
                .read_to_end(&mut raw)
                .map_err(|e| format!("records frame: {e}"))?;
            if raw.len() as u64 > MAX_CHUNK_RAW_BYTES {
                return Err("a records frame decompresses past its bound".to_string());
            }
            total += raw.len() as u64;
            if total > MAX_STATE_BYTES {
                return Err(format!("the state is over {MAX_STATE_BYTES} bytes"));
            }
            let mut rest = raw.as_slice();
            while !rest.is_empty() {
                let len = rest
                    .get(..4)
                    .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                    .ok_or("a truncated record length")?;
                let record = rest.get(4..4 + len).ok_or("a record runs past its frame")?;
                if !sink(record) {
                    return Ok(());
                }
                rest = &rest[4 + len..];
            }
        }
        Ok(())
    })
    .map_err(|error| match error {
        RestoreError::Read(error) => error,
        RestoreError::Decode(error) => format!("a record does not decode: {error}"),
        RestoreError::Tree(error) => format!("the records do not form a tree: {error:?}"),
        RestoreError::Spawn(error) => format!("cannot start decoding: {error}"),
    })
}

/// The records frame `seq` of a stream, as it travels.
pub(super) fn records_message(session: u64, seq: u64, start: Zxid, data: Vec<u8>) -> AppMessage {
    AppMessage::SnapRecords {
        session,
        seq,
        start: start.0,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::persist::encode_txn;
    use engine::prep::{Prep, PrepConfig};
    use engine::request::{CreateRequest, Request};
    use engine::txn::Txn as EngineTxn;
    use engine::types::{Acl, OpCode, SessionId};

    /// Writes to a leader's tree one txn at a time, as its applier does:
    /// each under the write lock.
    struct Writer {
        prep: Prep,
        log: Vec<EngineTxn>,
    }

    impl Writer {
        fn write(&mut self, tree: &RwLock<DataTree>, request: Request) {
            let mut tree = tree.write();
            let Ok(txn) = self.prep.prep(&tree, SessionId(1), 0, &[], &request, 1_000) else {
                return;
            };
            engine::apply::apply(&mut tree, &txn);
            self.prep.applied(txn.zxid);
            self.log.push(txn);
        }

        fn create(&mut self, tree: &RwLock<DataTree>, path: &str, bytes: usize) {
            let request = CreateRequest {
                path: path.to_string(),
                data: Some(vec![b'x'; bytes]),
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl: -1,
            };
            self.write(
                tree,
                Request::Create {
                    op: OpCode::Create,
                    request,
                },
            );
        }

        /// Writes that touch parts a walk has seen and parts it has not.
        fn churn(&mut self, tree: &RwLock<DataTree>, round: usize) {
            for i in 0..20 {
                let n = (round * 37 + i * 11) % 300;
                self.create(tree, &format!("/p{n}/new{round}-{i}"), 100);
                let path = format!("/p{}/c{}", (n + 150) % 300, (round + i) % 10);
                self.write(tree, Request::Delete { path, version: -1 });
                let path = format!("/p{}", (n * 7) % 300);
                let data = Some(vec![round as u8; 50]);
                let version = -1;
                self.write(
                    tree,
                    Request::SetData {
                        path,
                        data,
                        version,
                    },
                );
            }
        }

        fn txns(&self, after: Zxid, upto: Zxid) -> impl Iterator<Item = &EngineTxn> {
            self.log
                .iter()
                .filter(move |t| t.zxid > after && t.zxid <= upto)
        }
    }

    fn quorum_txn(txn: &EngineTxn) -> quorum::Txn {
        quorum::Txn {
            zxid: quorum::Zxid(txn.zxid.0 as u64),
            data: encode_txn(txn).expect("encode"),
        }
    }

    fn tail_txn(txn: &EngineTxn) -> TailTxn {
        TailTxn {
            zxid: txn.zxid.0,
            data: encode_txn(txn).expect("encode"),
        }
    }

    /// 300 parents with ten 2 KB children each: some six records frames.
    fn populated() -> (RwLock<DataTree>, Writer) {
        let tree = RwLock::new(DataTree::new());
        let mut writer = Writer {
            prep: Prep::new(Zxid(0), PrepConfig::default()),
            log: Vec::new(),
        };
        for p in 0..300 {
            writer.create(&tree, &format!("/p{p}"), 10);
            for c in 0..10 {
                writer.create(&tree, &format!("/p{p}/c{c}"), 2_000);
            }
        }
        (tree, writer)
    }

    /// Walks `tree` with `writer` committing after every records frame;
    /// returns the frames, the start and where the walk ended.
    fn walk_under_writes(
        tree: &RwLock<DataTree>,
        writer: &mut Writer,
    ) -> (Vec<(u64, Vec<u8>)>, Zxid, WalkEnd) {
        let start = tree.read().last_zxid();
        let mut frames = Vec::new();
        let walked = walk(
            tree,
            start,
            || {},
            &AtomicBool::new(false),
            |seq, data| {
                frames.push((seq, data));
                writer.churn(tree, seq as usize);
                true
            },
        )
        .expect("walk");
        (frames, start, walked)
    }

    fn trailer(start: Zxid, walked: &WalkEnd, frames: u64) -> Trailer {
        Trailer {
            start: start.0,
            end: walked.end.0,
            digest: walked.digest,
            replica_digest: walked.replica_digest,
            frames,
        }
    }

    #[test]
    fn a_stream_taken_under_writes_restores_the_state_at_its_end() {
        let (tree, mut writer) = populated();
        let (frames, start, walked) = walk_under_writes(&tree, &mut writer);
        assert!(frames.len() >= 4, "{} frames", frames.len());
        assert!(walked.end > start, "writes ran during the walk");
        // The leader went on committing after the walk: those are not the
        // stream's business.
        writer.churn(&tree, 999);
        // NEWLEADER carries the txns after `start` the leader had when it
        // chose SNAP (here: half the walk's); the tail has the rest.
        let during: Vec<&EngineTxn> = writer.txns(start, walked.end).collect();
        let (newleader, rest) = during.split_at(during.len() / 2);
        let newleader: Vec<quorum::Txn> = newleader.iter().map(|t| quorum_txn(t)).collect();
        let tails = tail_frames(rest.iter().map(|t| tail_txn(t)));

        let mut incoming = Incoming::start(9, start).expect("start");
        for (seq, data) in frames {
            incoming.records(seq, start, data).expect("records");
        }
        let mut seq = walked.frames;
        for frame in tails {
            incoming.tail(seq, frame).expect("tail");
            seq += 1;
        }
        let restored = incoming
            .finish(&trailer(start, &walked, seq), &newleader)
            .expect("finish");

        // The leader's state at the walk's end, rebuilt from its log.
        let mut expected = DataTree::new();
        for txn in writer.txns(Zxid(0), walked.end) {
            engine::apply::apply(&mut expected, txn);
        }
        assert_eq!(restored.last_zxid(), walked.end);
        assert_eq!(restored.digest(), expected.digest());
        assert_eq!(restored.replica_digest(), expected.replica_digest());
        assert_eq!(restored.node_count(), expected.node_count());
    }

    #[test]
    fn a_stream_without_writes_needs_no_replay() {
        let (tree, _) = populated();
        let start = tree.read().last_zxid();
        let mut frames = Vec::new();
        let walked = walk(
            &tree,
            start,
            || {},
            &AtomicBool::new(false),
            |seq, data| {
                frames.push((seq, data));
                true
            },
        )
        .expect("walk");
        assert_eq!(walked.end, start);
        let mut incoming = Incoming::start(1, start).expect("start");
        for (seq, data) in frames {
            incoming.records(seq, start, data).expect("records");
        }
        let restored = incoming
            .finish(&trailer(start, &walked, walked.frames), &[])
            .expect("finish");
        assert_eq!(restored.digest(), tree.read().digest());
    }

    #[test]
    fn a_walk_refuses_a_tree_not_at_the_snap_zxid_and_stops_when_cancelled() {
        let (tree, _) = populated();
        let at = tree.read().last_zxid();
        let error = walk(
            &tree,
            Zxid(at.0 - 1),
            || {},
            &AtomicBool::new(false),
            |_, _| true,
        );
        assert!(error.is_err());
        let cancelled = walk(&tree, at, || {}, &AtomicBool::new(true), |_, _| true);
        assert!(cancelled.is_err());
        let refused = walk(&tree, at, || {}, &AtomicBool::new(false), |_, _| false);
        assert!(refused.is_err());
    }

    /// Every way a stream can be broken ends in an error, never a panic or
    /// a tree that is not the leader's.
    #[test]
    fn a_broken_stream_is_refused() {
        let (tree, mut writer) = populated();
        let (frames, start, walked) = walk_under_writes(&tree, &mut writer);
        let during: Vec<quorum::Txn> = writer.txns(start, walked.end).map(quorum_txn).collect();
        let good = trailer(start, &walked, walked.frames);
        let feed = |skip: Option<u64>, corrupt: Option<u64>| {
            let mut incoming = Incoming::start(9, start).expect("start");
            for (seq, data) in &frames {
                if Some(*seq) == skip {
                    continue;
                }
                let mut data = data.clone();
                if Some(*seq) == corrupt {
                    let mid = data.len() / 2;
                    data[mid] ^= 0x5a;
                    data.truncate(mid + 10);
                }
                if incoming.records(*seq, start, data).is_err() {
                    return Err("refused a frame".to_string());
                }
            }
            incoming.finish(&good, &during)
        };
        assert!(feed(None, None).is_ok());
        assert!(feed(Some(1), None).is_err(), "a missing frame");
        assert!(feed(None, Some(2)).is_err(), "a damaged frame");
        // Txns missing before the end: replay cannot reach it.
        let mut incoming = Incoming::start(9, start).expect("start");
        for (seq, data) in frames.clone() {
            incoming.records(seq, start, data).expect("records");
        }
        assert!(incoming.finish(&good, &during[..during.len() / 2]).is_err());
        // A trailer whose digest is not the state's.
        let mut incoming = Incoming::start(9, start).expect("start");
        for (seq, data) in frames.clone() {
            incoming.records(seq, start, data).expect("records");
        }
        let wrong = Trailer {
            digest: good.digest ^ 1,
            ..good.clone()
        };
        assert!(incoming.finish(&wrong, &during).is_err());
        // Garbage for records: a clear error.
        let mut incoming = Incoming::start(9, start).expect("start");
        let _ = incoming.records(0, start, vec![0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]);
        let _ = incoming.records(1, start, zstd::bulk::compress(&[9, 0, 0, 0, 1], 1).unwrap());
        assert!(incoming.finish(&good, &during).is_err());
        assert!(Trailer::decode(&[1, 2, 3]).is_err());
    }
}
