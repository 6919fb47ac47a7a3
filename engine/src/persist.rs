//! Byte encodings of what storage keeps: txns (one per WAL record) and the
//! records a snapshot is made of. The only module that names `bincode`
//! (its development has ended; keeping it behind this seam means a format
//! change touches one file). Decoding treats its input as untrusted: sizes
//! are bounded and a bad record is an error, never a panic.
//!
//! Also the tree's side of fuzzy snapshots: `SnapshotCursor` walks the tree
//! in chunks, parents before children, so a background writer can release
//! the tree's lock between chunks while writes continue; recovery restores
//! the records in order and replays the log from the snapshot's start zxid
//! (DESIGN.md invariant 6).

use crate::tree::{DataTree, TreeError, ROOT};
use crate::txn::{NodeKind, Txn};
use crate::types::{Acl, SessionId, Stat, Zxid};
use serde::{Deserialize, Serialize};

/// No single record may decode to more than this (jute.maxbuffer-sized data
/// plus a large ACL list fits many times over).
const MAX_RECORD_BYTES: usize = 64 << 20;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_RECORD_BYTES>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("undecodable record: {0}")]
    Decode(String),
    #[error("record has {0} trailing bytes")]
    Trailing(usize),
    #[error("unencodable record: {0}")]
    Encode(String),
}

pub fn encode_txn(txn: &Txn) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(txn, config())
        .map_err(|error| CodecError::Encode(error.to_string()))
}

pub fn decode_txn(bytes: &[u8]) -> Result<Txn, CodecError> {
    decode_exact(bytes)
}

/// One element of a snapshot. Nodes come parents first.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum SnapshotRecord {
    Node {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        kind: NodeKind,
        stat: Stat,
    },
    Session {
        session: SessionId,
        timeout_ms: i32,
    },
}

pub fn encode_record(record: &SnapshotRecord) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(record, config())
        .map_err(|error| CodecError::Encode(error.to_string()))
}

pub fn decode_record(bytes: &[u8]) -> Result<SnapshotRecord, CodecError> {
    decode_exact(bytes)
}

fn decode_exact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|error| CodecError::Decode(error.to_string()))?;
    match bytes.len() - used {
        0 => Ok(value),
        extra => Err(CodecError::Trailing(extra)),
    }
}

/// Where a chunked walk of the tree stands: paths still to visit (each
/// visited node pushes its children), then the session table.
pub struct SnapshotCursor {
    pending: Vec<String>,
    sessions_done: bool,
}

impl Default for SnapshotCursor {
    fn default() -> Self {
        SnapshotCursor::new()
    }
}

impl SnapshotCursor {
    pub fn new() -> SnapshotCursor {
        SnapshotCursor {
            pending: vec![ROOT.to_string()],
            sessions_done: false,
        }
    }

    pub fn is_done(&self) -> bool {
        self.pending.is_empty() && self.sessions_done
    }

    /// Appends up to `max_nodes` node records (then, once the walk is over,
    /// every session) to `out`. Between calls the tree may change: a node
    /// deleted meanwhile is skipped, one created under an already visited
    /// parent is missed; replay from the snapshot's start zxid repairs both.
    pub fn next_chunk(&mut self, tree: &DataTree, max_nodes: usize, out: &mut Vec<SnapshotRecord>) {
        let mut taken = 0;
        while taken < max_nodes {
            let Some(path) = self.pending.pop() else {
                break;
            };
            let Some(node) = tree.get(&path) else {
                continue;
            };
            for child in node.children() {
                self.pending.push(crate::path::join(&path, child));
            }
            out.push(SnapshotRecord::Node {
                path: node.path().to_string(),
                data: node.data().map(<[u8]>::to_vec),
                acl: node.acl().to_vec(),
                kind: node.kind(),
                stat: node.stored_stat(),
            });
            taken += 1;
        }
        if self.pending.is_empty() && !self.sessions_done {
            out.extend(
                tree.sessions()
                    .map(|(session, timeout_ms)| SnapshotRecord::Session {
                        session,
                        timeout_ms,
                    }),
            );
            self.sessions_done = true;
        }
    }
}

/// Rebuilds a tree from snapshot records (in the order written) and marks it
/// as containing everything up to `start_zxid`; the caller replays the log
/// after that.
pub fn restore(
    records: impl IntoIterator<Item = SnapshotRecord>,
    start_zxid: Zxid,
) -> Result<DataTree, TreeError> {
    let mut tree = DataTree::new();
    for record in records {
        match record {
            SnapshotRecord::Node {
                path,
                data,
                acl,
                kind,
                stat,
            } => {
                tree.restore_node(&path, data.as_deref(), &acl, kind, &stat)?;
            }
            SnapshotRecord::Session {
                session,
                timeout_ms,
            } => tree.restore_session(session, timeout_ms),
        }
    }
    tree.restore_last_zxid(start_zxid);
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{apply, apply_replay};
    use crate::prep::{Prep, PrepConfig};
    use crate::request::{CreateRequest, Request};
    use crate::types::OpCode;
    use proptest::prelude::*;

    fn create(path: &str, data: &[u8], flags: i32) -> Request {
        Request::Create {
            op: OpCode::Create,
            request: CreateRequest {
                path: path.to_string(),
                data: Some(data.to_vec()),
                acl: Acl::open_unsafe(),
                flags,
                ttl: -1,
            },
        }
    }

    /// Preps and applies `requests` on `tree`, returning the txns.
    fn run(tree: &mut DataTree, prep: &mut Prep, requests: &[Request]) -> Vec<Txn> {
        let session = SessionId(7);
        let mut txns = Vec::new();
        for (cxid, request) in requests.iter().enumerate() {
            let txn = prep
                .prep(tree, session, cxid as i32, &[], request, 1_000)
                .expect("a write");
            apply(tree, &txn);
            prep.applied(txn.zxid);
            txns.push(txn);
        }
        txns
    }

    /// A fresh tree with session 7 open, and a prep to go with it.
    fn fresh() -> (DataTree, Prep) {
        let mut tree = DataTree::new();
        let mut prep = Prep::new(
            Zxid::ZERO,
            PrepConfig {
                extended_types_enabled: true,
            },
        );
        apply(
            &mut tree,
            &prep.prep_create_session(SessionId(7), 30_000, 1_000),
        );
        (tree, prep)
    }

    fn snapshot(tree: &DataTree, chunk: usize) -> Vec<SnapshotRecord> {
        let mut cursor = SnapshotCursor::new();
        let mut records = Vec::new();
        while !cursor.is_done() {
            cursor.next_chunk(tree, chunk, &mut records);
        }
        records
    }

    #[test]
    fn txn_round_trips_through_bytes() {
        let mut tree = DataTree::new();
        let mut prep = Prep::new(
            Zxid::ZERO,
            PrepConfig {
                extended_types_enabled: true,
            },
        );
        let session_txn = prep.prep_create_session(SessionId(7), 30_000, 1_000);
        apply(&mut tree, &session_txn);
        let txns = run(
            &mut tree,
            &mut prep,
            &[create("/a", b"x", 0), create("/a/b", b"", 1)],
        );
        for txn in txns.iter().chain([&session_txn]) {
            let bytes = encode_txn(txn).expect("encodes");
            assert_eq!(&decode_txn(&bytes).expect("decodes"), txn);
        }
    }

    #[test]
    fn snapshot_restores_an_equal_tree() {
        let (mut tree, mut prep) = fresh();
        let requests: Vec<Request> = (0..50)
            .map(|i| create(&format!("/n{}", i % 10), format!("v{i}").as_bytes(), 2))
            .chain([create("/n1/e", b"e", 1)])
            .collect();
        run(&mut tree, &mut prep, &requests);
        let records = snapshot(&tree, 7);
        let bytes: Vec<Vec<u8>> = records
            .iter()
            .map(|r| encode_record(r).expect("encodes"))
            .collect();
        let decoded = bytes.iter().map(|b| decode_record(b).expect("decodes"));
        let restored = restore(decoded, tree.last_zxid()).expect("restores");
        assert_eq!(restored.digest(), tree.digest());
        assert_eq!(restored.node_count(), tree.node_count());
        assert_eq!(
            restored.ephemerals(SessionId(7)),
            tree.ephemerals(SessionId(7))
        );
        assert_eq!(restored.sessions().count(), 1);
        restored.check_invariants().expect("invariants hold");
    }

    /// DESIGN.md invariant 6: a snapshot taken while writes continue, plus
    /// replay of the log from its start zxid, gives the live tree.
    #[test]
    fn fuzzy_snapshot_plus_replay_converges() {
        let (mut tree, mut prep) = fresh();
        run(
            &mut tree,
            &mut prep,
            &(0..20)
                .map(|i| create(&format!("/p{i}"), b"x", 0))
                .collect::<Vec<_>>(),
        );
        let start = tree.last_zxid();
        let mut cursor = SnapshotCursor::new();
        let mut records = Vec::new();
        let mut later = Vec::new();
        let mut step = 0;
        while !cursor.is_done() {
            cursor.next_chunk(&tree, 3, &mut records);
            // Writes land between chunks: creates, deletes, data changes.
            step += 1;
            let requests = [
                create(&format!("/p{}/c{step}", step % 20), b"y", 0),
                Request::SetData {
                    path: format!("/p{}", (step * 7) % 20),
                    data: Some(vec![1; step]),
                    version: -1,
                },
                Request::Delete {
                    path: format!("/p{}/c{}", (step + 5) % 20, step.saturating_sub(3)),
                    version: -1,
                },
            ];
            later.extend(run(&mut tree, &mut prep, &requests));
        }
        let mut restored = restore(records, start).expect("restores");
        for txn in &later {
            apply_replay(&mut restored, txn);
        }
        assert_eq!(
            restored.digest(),
            tree.digest(),
            "replay over the fuzzy snapshot diverged"
        );
        restored.check_invariants().expect("invariants hold");
    }

    proptest! {
        /// Decoders are fed untrusted bytes: errors, never panics.
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_txn(&bytes);
            let _ = decode_record(&bytes);
        }
    }
}
