//! Client requests and replies as typed records, independent of the wire.
//! `net` decodes jute frames into `Request` and encodes `Response`; `engine`
//! gives them meaning. A request's opcode decides the shape of its reply (a
//! `create` answers a path, a `create2` a path and a stat), so the opcode
//! travels with the request.

use crate::types::{Acl, AddWatchMode, ErrorCode, Id, OpCode, Stat, WatcherType};
use serde::{Deserialize, Serialize};

/// One create, as sent by `create` (1), `create2` (15), `createContainer` (19)
/// or `createTTL` (21). `flags` is kept raw: validating it is prep's job, so a
/// bad mode is answered with the reference's error code, not a closed socket.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CreateRequest {
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    /// `createTTL` only; -1 when the request carried none.
    pub ttl: i64,
}

/// One operation inside `multi` (14) or `multiRead` (22). Both records may carry
/// any of these; prep rejects reads in `multi` and the read path rejects writes
/// in `multiRead`, as the reference does.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum MultiOp {
    /// `op` is Create, Create2, CreateContainer or CreateTtl.
    Create {
        op: OpCode,
        request: CreateRequest,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    GetChildren {
        path: String,
    },
    GetData {
        path: String,
    },
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Request {
    /// `op` is Create, Create2, CreateContainer or CreateTtl.
    Create {
        op: OpCode,
        request: CreateRequest,
    },
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    GetChildren2 {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    /// A top-level check (only meaningful inside multi).
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<MultiOp>),
    MultiRead(Vec<MultiOp>),
    CheckWatches {
        path: String,
        watcher_type: WatcherType,
    },
    RemoveWatches {
        path: String,
        watcher_type: WatcherType,
    },
    SetAuth {
        auth_type: i32,
        scheme: String,
        auth: Vec<u8>,
    },
    /// `setWatches` (101) leaves the two persistent lists empty.
    SetWatches {
        relative_zxid: i64,
        data: Vec<String>,
        exist: Vec<String>,
        child: Vec<String>,
        persistent: Vec<String>,
        persistent_recursive: Vec<String>,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: AddWatchMode,
    },
    WhoAmI,
    /// `sasl` (102). No SASL mechanism is offered; the reference without one
    /// answers with a null token, and so do we, so clients that try SASL
    /// first carry on unauthenticated.
    Sasl {
        token: Option<Vec<u8>>,
    },
    CloseSession,
    /// `reconfig` (16): an incremental change (`joining` specs, `leaving`
    /// ids, comma-separated) or a whole new member list (`new_members`),
    /// from the config version the client read (`from_config`, -1 for any).
    Reconfig {
        joining: Option<String>,
        leaving: Option<String>,
        new_members: Option<String>,
        from_config: i64,
    },
}

impl Request {
    /// True for requests that change the tree or the session table and so go
    /// through prep and the log. Everything else is answered by the I/O thread
    /// (or, for `sync`, after the writes before it).
    /// Reads of the tree's state, the ones `readConsistency=linearizable`
    /// fences (not pings, watch registrations or session requests).
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Request::Exists { .. }
                | Request::GetData { .. }
                | Request::GetAcl { .. }
                | Request::GetChildren { .. }
                | Request::GetChildren2 { .. }
                | Request::MultiRead(_)
                | Request::GetEphemerals { .. }
                | Request::GetAllChildrenNumber { .. }
        )
    }

    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create { .. }
                | Request::Delete { .. }
                | Request::SetData { .. }
                | Request::SetAcl { .. }
                | Request::Check { .. }
                | Request::Multi(_)
                | Request::CloseSession
                | Request::Reconfig { .. }
        )
    }
}

/// The result of one op inside a multi or multiRead reply.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MultiResult {
    Create { path: String },
    Create2 { path: String, stat: Stat },
    Delete,
    SetData { stat: Stat },
    Check,
    GetChildren { children: Vec<String> },
    GetData { data: Option<Vec<u8>>, stat: Stat },
    Error(ErrorCode),
}

/// One identity as `whoAmI` reports it (`ClientInfo`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ClientInfo {
    pub auth_scheme: String,
    pub user: String,
}

impl From<&Id> for ClientInfo {
    fn from(id: &Id) -> ClientInfo {
        ClientInfo {
            auth_scheme: id.scheme.clone(),
            user: id.id.clone(),
        }
    }
}

/// A reply body. Error replies carry `Response::Empty`; a failed `multi` is the
/// exception (error 0 in the header, per-op codes inside).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Response {
    Empty,
    Create {
        path: String,
    },
    Create2 {
        path: String,
        stat: Stat,
    },
    /// exists, setData, setACL.
    Stat(Stat),
    GetData {
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    GetChildren2 {
        children: Vec<String>,
        stat: Stat,
    },
    Sync {
        path: String,
    },
    Multi(Vec<MultiResult>),
    GetEphemerals {
        paths: Vec<String>,
    },
    GetAllChildrenNumber {
        total: i32,
    },
    WhoAmI {
        ids: Vec<ClientInfo>,
    },
    /// `SetSASLResponse`.
    Sasl {
        token: Option<Vec<u8>>,
    },
    /// A successful addWatch. Not `Empty`: the reference answers with an
    /// `ErrorResponse { err: 0 }` body (four zero bytes) and the Java client
    /// reads it, failing the connection if it is missing.
    AddWatch,
}

/// A reply's error code and body; the zxid and xid are added by the caller.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Reply {
    pub err: ErrorCode,
    pub body: Response,
}

impl Reply {
    pub fn ok(body: Response) -> Reply {
        Reply {
            err: ErrorCode::Ok,
            body,
        }
    }
    pub fn error(err: ErrorCode) -> Reply {
        Reply {
            err,
            body: Response::Empty,
        }
    }
}
