//! The replicated transaction record: what prep decided a write does, with
//! every result already computed. A `Txn` is what the log stores and what
//! every replica applies; it is not a request (no client-chosen versions or
//! sequential flags remain) and it carries no behaviour beyond data.
//!
//! Invariant (DESIGN.md 5 and 6): a txn carries ABSOLUTE results — the final
//! path with its sequential suffix, the node kind with its owner or TTL, the
//! parent's resulting cversion, the resulting data/ACL version — so `apply`
//! needs no clock and no counters of its own, and re-applying a txn already
//! reflected in a fuzzy snapshot converges to the same tree.

use serde::{Deserialize, Serialize};

use crate::types::{Acl, ErrorCode, OpCode, SessionId, Zxid};

/// One write, sequenced: its zxid, the leader's clock when it was prepped,
/// and the session and client xid it answers.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Txn {
    pub zxid: Zxid,
    pub time_ms: i64,
    pub session: SessionId,
    pub cxid: i32,
    pub op: TxnOp,
}

/// What kind of znode a create makes. ZooKeeper packs this into the
/// `ephemeralOwner` stat field; we keep it explicit and derive the stat value
/// (see `NodeKind::ephemeral_owner`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum NodeKind {
    Persistent,
    Ephemeral(SessionId),
    Container,
    /// A persistent node reaped once it has no children and `mtime + ttl_ms`
    /// has passed.
    Ttl(i64),
}

/// The reference encodes containers as owner `0x8000000000000000` and TTL
/// nodes as `0xFF << 56 | ttl`: what the stored stat (and the digest) holds.
const CONTAINER_OWNER: i64 = i64::MIN;
const TTL_OWNER_MASK: i64 = 0xFF << 56;

impl NodeKind {
    /// The raw `ephemeralOwner` value the reference stores internally.
    pub fn ephemeral_owner(self) -> i64 {
        match self {
            NodeKind::Persistent => 0,
            NodeKind::Ephemeral(session) => session.0,
            NodeKind::Container => CONTAINER_OWNER,
            NodeKind::Ttl(ttl_ms) => TTL_OWNER_MASK | (ttl_ms & 0x00FF_FFFF_FFFF_FFFF),
        }
    }
    /// What clients see in `Stat.ephemeralOwner`: containers and TTL nodes
    /// report 0 (ZK-BEHAVIOURS 9).
    pub fn client_ephemeral_owner(self) -> i64 {
        match self {
            NodeKind::Ephemeral(session) => session.0,
            _ => 0,
        }
    }
    pub fn is_ephemeral(self) -> bool {
        matches!(self, NodeKind::Ephemeral(_))
    }
}

/// A create with its outcome decided.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CreateTxn {
    /// The request opcode (Create, Create2, CreateContainer, CreateTtl): it
    /// decides whether the reply carries a stat.
    pub op: OpCode,
    /// The final path, sequential suffix included.
    pub path: String,
    /// Encoded as bytes (a length, then the bytes: what a sequence of `u8`
    /// also is in bincode), so decoding copies it at once.
    #[serde(with = "serde_bytes")]
    pub data: Option<Vec<u8>>,
    /// Already validated, deduplicated and with `auth` entries resolved.
    pub acl: Vec<Acl>,
    pub kind: NodeKind,
    /// The parent's cversion after this create; its pzxid becomes the txn's
    /// zxid.
    pub parent_cversion: i32,
}

/// The effect of a txn. Sub-ops of a `Multi` share the outer txn's zxid and
/// time.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum TxnOp {
    CreateSession {
        timeout_ms: i32,
    },
    /// Deletes `paths` — the session's ephemerals, including ones prepped
    /// but not yet applied when the close was prepped — then any other
    /// ephemeral the session still owns (none, in forward operation), and
    /// drops the session. Carrying the paths lets a replay over a fuzzy
    /// snapshot move each parent's pzxid even where the node is already
    /// gone, as the reference's CloseSessionTxn does.
    CloseSession {
        paths: Vec<String>,
    },
    Create(CreateTxn),
    /// Deletes `path`; the parent's pzxid becomes the zxid (its cversion is
    /// not changed by a delete, as in the reference).
    Delete {
        path: String,
    },
    /// The reaper's delete of an empty container or expired TTL node: the
    /// same effect as `Delete`, a distinct record so the reply and logs say
    /// what it was.
    DeleteContainer {
        path: String,
    },
    SetData {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Option<Vec<u8>>,
        /// The node's data version after this write.
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        /// The node's ACL version after this write.
        aversion: i32,
    },
    /// A version check inside a multi that passed: no effect, a `Check`
    /// result.
    Check {
        path: String,
    },
    /// A multi: either every sub-op is a success record, or it failed and
    /// every entry is `Error` (the failing op's code, 0 before it,
    /// RuntimeInconsistency after it — ZK-BEHAVIOURS 3) and nothing changes.
    Multi(Vec<TxnOp>),
    /// A failed write: consumes a zxid, changes nothing, answers `code`.
    Error(ErrorCode),
    /// A membership change (the reconfig request): `/zookeeper/config` takes
    /// `data`, the new member list in the reference's text, with version -1
    /// as there; the reply is the node's data and stat. The quorum layer
    /// reads the change out of the txn (`reconfig_data`). Last, so the
    /// encodings of the other ops keep their tags.
    Reconfig {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
}

impl TxnOp {
    /// True when applying this op changes nothing in the tree.
    pub fn is_error(&self) -> bool {
        matches!(self, TxnOp::Error(_))
    }
}
