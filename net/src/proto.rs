//! ZooKeeper's client records on the wire: the connect handshake, request
//! frames into `engine::request::Request`, `Reply` values into reply frames,
//! and watch notifications. Encoders for requests and decoders for replies
//! exist too, for tests and for clients written against this crate.
//!
//! Not here: what a request means (engine), framing of the socket stream and
//! the jute.maxbuffer bound (the reactor), four-letter words (`fourlw`).
//!
//! Invariant: decoding never panics and, apart from a malformed request
//! header, auth packet or connect request, never makes a frame fatal. The
//! reference answers a well-framed request whose body does not parse with
//! MarshallingError and keeps the connection, so `decode_request` reports such
//! frames as `Decoded::Rejected`; only what the reference closes on is an
//! `Err`. Every encoder writes one whole frame (length prefix back-patched)
//! straight into the caller's buffer.
//!
//! Facts about the reference (Apache ZooKeeper 3.8.0) that shape this file,
//! each observed with a raw socket:
//! - Trailing bytes after a record are ignored.
//! - A null path is MarshallingError for most requests, but setData, setACL,
//!   sync, getEphemerals, addWatch and removeWatches treat it like an empty
//!   string (their reference code paths do not dereference it first).
//! - A null ACL list is an empty one (InvalidACL from prep), a null ACL
//!   scheme is the empty scheme (InvalidACL too), a null ACL id is
//!   MarshallingError.
//! - Ping replies always carry xid -2, whatever xid the ping had.
//! - A connect request without the trailing readOnly byte gets a response
//!   without it.

use crate::jute::{
    self, put_bool, put_buffer, put_int, put_len, put_long, put_string, DecodeError, Reader,
};
use engine::request::{ClientInfo, CreateRequest, MultiOp, MultiResult, Reply, Request, Response};
use engine::types::{
    Acl, AddWatchMode, ErrorCode, EventType, Id, KeeperState, OpCode, Stat, WatcherEvent,
    WatcherType,
};

pub use crate::jute::DEFAULT_MAX_BUFFER;

/// xid of watch notifications.
pub const NOTIFICATION_XID: i32 = -1;
/// xid clients give pings; the reference answers every ping with it.
pub const PING_XID: i32 = -2;
/// xid clients give auth packets (the reply echoes whatever was sent).
pub const AUTH_XID: i32 = -4;
/// xid clients give setWatches (the reply echoes whatever was sent).
pub const SET_WATCHES_XID: i32 = -8;

/// Bytes of a `Stat` on the wire.
const STAT_BYTES: usize = 68;
/// Smallest encoding of one ACL: perms plus two empty strings.
const ACL_MIN_BYTES: usize = 12;
/// Smallest encoding of one `ClientInfo`: two empty strings.
const CLIENT_INFO_MIN_BYTES: usize = 8;
/// `ReplyHeader`: xid, zxid, err.
const REPLY_HEADER_BYTES: usize = 16;

/// The first frame a client sends. `passwd` is empty when the client sent a
/// null buffer (the reference accepts that, and any length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// `None` when the client (an old one) ended the record before the
    /// readOnly byte; it must then get a response without one too.
    pub read_only: Option<bool>,
}

/// The server's answer to a `ConnectRequest`. The reference refuses an
/// expired session or a wrong password with protocol 0, timeout 0, session 0
/// and sixteen zero bytes of password, then closes the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: bool,
}

/// `RequestHeader`: the first eight bytes of every request frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestHeader {
    pub xid: i32,
    pub op: i32,
}

impl RequestHeader {
    /// Whether the reference consumes a zxid when it answers this request
    /// with `code` from `Decoded::Rejected` (ZK-BEHAVIOURS 2): requests its
    /// prep stage turns into txns get an error txn even when their body does
    /// not parse. The exception is reconfig, whose body is parsed before a txn
    /// exists: only the ReconfigDisabled answer to a well-formed one uses a
    /// zxid.
    pub fn rejection_consumes_zxid(&self, code: ErrorCode) -> bool {
        use OpCode::*;
        match OpCode::from_code(self.op) {
            Some(Reconfig) => code == ErrorCode::ReconfigDisabled,
            Some(
                Create | Create2 | CreateContainer | CreateTtl | Delete | DeleteContainer | SetData
                | SetAcl | Check | Multi | CreateSession | CloseSession,
            ) => true,
            _ => false,
        }
    }
}

/// `ReplyHeader`: the first sixteen bytes of every reply and notification.
/// `err` stays raw so a client can report a code it does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

/// What one request frame asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A request to serve. For a ping the header's xid is already -2, the xid
    /// the reference answers every ping with.
    Request(RequestHeader, Request),
    /// Opcode not known: reply Unimplemented (zxid -1, ZK-BEHAVIOURS 11), then close.
    /// Also notification (0) and sasl (102): we offer no SASL, and answering
    /// sasl needs a reply shape (`SetSASLResponse`) the engine does not have.
    UnknownOp(RequestHeader),
    /// Well-formed frame whose content the reference answers with an error code
    /// instead of closing: MarshallingError for a body that does not parse
    /// (truncated, bad length, null where a value is needed, an unknown op
    /// inside a multi, removeWatches/checkWatches type 0, addWatch mode 2;
    /// ZK-BEHAVIOURS 17) or for createSession sent as a request;
    /// ReconfigDisabled for reconfig; BadArguments for deleteContainer (the
    /// reference reads its path from the whole frame, header included, and
    /// the header's zero bytes always make that path invalid). Reply with the
    /// code, keep the connection; see `RequestHeader::rejection_consumes_zxid`.
    Rejected(RequestHeader, ErrorCode),
}

/// Decodes a `ConnectRequest`. `body` is the frame without its length prefix.
/// Err → the reference closes the connection without answering.
pub fn decode_connect(body: &[u8]) -> Result<ConnectRequest, DecodeError> {
    let mut reader = Reader::new(body);
    let protocol_version = reader.read_int("protocol version")?;
    let last_zxid_seen = reader.read_long("last zxid seen")?;
    let timeout_ms = reader.read_int("session timeout")?;
    let session_id = reader.read_long("session id")?;
    let passwd = reader.read_buffer("password")?.unwrap_or_default();
    // Old clients stop here; anything after the readOnly byte is ignored.
    let read_only = if reader.is_empty() {
        None
    } else {
        Some(reader.read_bool("read only")?)
    };
    Ok(ConnectRequest {
        protocol_version,
        last_zxid_seen,
        timeout_ms,
        session_id,
        passwd,
        read_only,
    })
}

/// Appends a `ConnectResponse` frame, readOnly byte included. For a client
/// whose request had no readOnly byte use `encode_connect_response_for`.
pub fn encode_connect_response(resp: &ConnectResponse, out: &mut Vec<u8>) {
    encode_connect_response_for(resp, true, out);
}

/// Appends a `ConnectResponse` frame shaped for the client: the reference
/// writes the trailing readOnly byte only when the client's request had one
/// (`ConnectRequest::read_only.is_some()`).
pub fn encode_connect_response_for(
    resp: &ConnectResponse,
    client_sent_read_only: bool,
    out: &mut Vec<u8>,
) {
    let start = jute::begin_frame(out, 25 + resp.passwd.len());
    put_int(out, resp.protocol_version);
    put_int(out, resp.timeout_ms);
    put_long(out, resp.session_id);
    jute::put_bytes(out, &resp.passwd);
    if client_sent_read_only {
        put_bool(out, resp.read_only);
    }
    jute::end_frame(out, start);
}

/// Appends a `ConnectRequest` frame; the readOnly byte only when `Some`.
pub fn encode_connect_request(req: &ConnectRequest, out: &mut Vec<u8>) {
    let start = jute::begin_frame(out, 29 + req.passwd.len());
    put_int(out, req.protocol_version);
    put_long(out, req.last_zxid_seen);
    put_int(out, req.timeout_ms);
    put_long(out, req.session_id);
    jute::put_bytes(out, &req.passwd);
    if let Some(read_only) = req.read_only {
        put_bool(out, read_only);
    }
    jute::end_frame(out, start);
}

/// Decodes a `ConnectResponse` frame body. A missing readOnly byte reads as
/// false.
pub fn decode_connect_response(body: &[u8]) -> Result<ConnectResponse, DecodeError> {
    let mut reader = Reader::new(body);
    let protocol_version = reader.read_int("protocol version")?;
    let timeout_ms = reader.read_int("session timeout")?;
    let session_id = reader.read_long("session id")?;
    let passwd = reader.read_buffer("password")?.unwrap_or_default();
    let read_only = !reader.is_empty() && reader.read_bool("read only")?;
    Ok(ConnectResponse {
        protocol_version,
        timeout_ms,
        session_id,
        passwd,
        read_only,
    })
}

/// Why a request body was not turned into a `Request`.
enum Refusal {
    /// The body does not parse: MarshallingError, connection kept.
    Malformed(DecodeError),
    /// The reference answers this request with a fixed code.
    Code(ErrorCode),
    /// Not an operation a client may send: Unimplemented, then close.
    Unknown,
    /// The reference closes the connection (a malformed auth packet).
    Close(DecodeError),
}

impl From<DecodeError> for Refusal {
    fn from(error: DecodeError) -> Refusal {
        Refusal::Malformed(error)
    }
}

/// Decodes one request frame. `body` = one frame without its length prefix.
/// Err → malformed: the caller closes this one connection. That is only a
/// frame shorter than the eight-byte header or a malformed auth packet; any
/// other body that does not parse is `Decoded::Rejected` with
/// MarshallingError, as the reference answers it.
pub fn decode_request(body: &[u8]) -> Result<Decoded, DecodeError> {
    let mut reader = Reader::new(body);
    let xid = reader.read_int("request xid")?;
    let op = reader.read_int("request type")?;
    let header = RequestHeader { xid, op };
    let Some(code) = OpCode::from_code(op) else {
        return Ok(Decoded::UnknownOp(header));
    };
    match decode_body(code, &mut reader) {
        Ok(Request::Ping) => Ok(Decoded::Request(
            RequestHeader { xid: PING_XID, op },
            Request::Ping,
        )),
        Ok(request) => Ok(Decoded::Request(header, request)),
        Err(Refusal::Code(code)) => Ok(Decoded::Rejected(header, code)),
        Err(Refusal::Malformed(error)) => {
            tracing::debug!(xid, op, %error, "request body does not parse; answering MarshallingError");
            Ok(Decoded::Rejected(header, ErrorCode::MarshallingError))
        }
        Err(Refusal::Unknown) => Ok(Decoded::UnknownOp(header)),
        Err(Refusal::Close(error)) => Err(error),
    }
}

fn decode_body(op: OpCode, reader: &mut Reader<'_>) -> Result<Request, Refusal> {
    use OpCode::*;
    let request = match op {
        Create | Create2 | CreateContainer => Request::Create {
            op,
            request: read_create(reader, false)?,
        },
        CreateTtl => Request::Create {
            op,
            request: read_create(reader, true)?,
        },
        Delete => Request::Delete {
            path: read_path(reader)?,
            version: reader.read_int("version")?,
        },
        Exists => Request::Exists {
            path: read_path(reader)?,
            watch: reader.read_bool("watch")?,
        },
        GetData => Request::GetData {
            path: read_path(reader)?,
            watch: reader.read_bool("watch")?,
        },
        SetData => Request::SetData {
            path: read_nullable_path(reader)?,
            data: reader.read_buffer("data")?,
            version: reader.read_int("version")?,
        },
        GetAcl => Request::GetAcl {
            path: read_path(reader)?,
        },
        SetAcl => Request::SetAcl {
            path: read_nullable_path(reader)?,
            acl: read_acl_list(reader)?,
            version: reader.read_int("version")?,
        },
        GetChildren => Request::GetChildren {
            path: read_path(reader)?,
            watch: reader.read_bool("watch")?,
        },
        GetChildren2 => Request::GetChildren2 {
            path: read_path(reader)?,
            watch: reader.read_bool("watch")?,
        },
        Sync => Request::Sync {
            path: read_nullable_path(reader)?,
        },
        // Pings may carry junk; the reference never reads their body.
        Ping => Request::Ping,
        Check => Request::Check {
            path: read_path(reader)?,
            version: reader.read_int("version")?,
        },
        Multi => Request::Multi(read_multi_ops(reader)?),
        MultiRead => Request::MultiRead(read_multi_ops(reader)?),
        CheckWatches => Request::CheckWatches {
            path: read_path(reader)?,
            watcher_type: read_watcher_type(reader)?,
        },
        RemoveWatches => Request::RemoveWatches {
            path: read_nullable_path(reader)?,
            watcher_type: read_watcher_type(reader)?,
        },
        Auth => read_auth(reader).map_err(Refusal::Close)?,
        SetWatches | SetWatches2 => read_set_watches(reader, op == SetWatches2)?,
        GetEphemerals => Request::GetEphemerals {
            prefix: read_nullable_path(reader)?,
        },
        GetAllChildrenNumber => Request::GetAllChildrenNumber {
            path: read_path(reader)?,
        },
        AddWatch => {
            let path = read_nullable_path(reader)?;
            let offset = reader.offset();
            let mode = match reader.read_int("add watch mode")? {
                0 => AddWatchMode::Persistent,
                1 => AddWatchMode::PersistentRecursive,
                value => {
                    let value = i64::from(value);
                    return Err(DecodeError::InvalidValue {
                        what: "add watch mode",
                        offset,
                        value,
                    }
                    .into());
                }
            };
            Request::AddWatch { path, mode }
        }
        WhoAmI => Request::WhoAmI,
        CloseSession => Request::CloseSession,
        Reconfig => {
            // Parsed only so a malformed one is answered as the reference
            // does; dynamic reconfiguration is disabled, as by default there.
            for what in ["joining servers", "leaving servers", "new members"] {
                reader.skip_buffer(what)?;
            }
            reader.read_long("current config id")?;
            return Err(Refusal::Code(ErrorCode::ReconfigDisabled));
        }
        DeleteContainer => return Err(Refusal::Code(ErrorCode::BadArguments)),
        CreateSession => return Err(Refusal::Code(ErrorCode::MarshallingError)),
        Sasl => Request::Sasl {
            token: reader.read_buffer("sasl token")?,
        },
        Notification | Error => return Err(Refusal::Unknown),
    };
    Ok(request)
}

/// A path that must not be null.
fn read_path(reader: &mut Reader<'_>) -> Result<String, DecodeError> {
    reader.read_string("path")
}

/// A path where the reference treats null like the empty string.
fn read_nullable_path(reader: &mut Reader<'_>) -> Result<String, DecodeError> {
    Ok(reader.read_ustring("path")?.unwrap_or_default())
}

fn read_create(reader: &mut Reader<'_>, with_ttl: bool) -> Result<CreateRequest, DecodeError> {
    let path = read_path(reader)?;
    let data = reader.read_buffer("data")?;
    let acl = read_acl_list(reader)?;
    let flags = reader.read_int("create flags")?;
    let ttl = if with_ttl {
        reader.read_long("ttl")?
    } else {
        -1
    };
    Ok(CreateRequest {
        path,
        data,
        acl,
        flags,
        ttl,
    })
}

/// `vector<ACL>`; null is an empty list, which prep answers with InvalidACL.
fn read_acl_list(reader: &mut Reader<'_>) -> Result<Vec<Acl>, DecodeError> {
    let Some(count) = reader.read_count("acl count", ACL_MIN_BYTES)? else {
        return Ok(Vec::new());
    };
    let mut acl = Vec::with_capacity(count);
    for _ in 0..count {
        let perms = reader.read_int("acl perms")?;
        let scheme = reader.read_ustring("acl scheme")?.unwrap_or_default();
        let id = reader.read_string("acl id")?;
        acl.push(Acl {
            perms,
            id: Id { scheme, id },
        });
    }
    Ok(acl)
}

fn read_watcher_type(reader: &mut Reader<'_>) -> Result<WatcherType, DecodeError> {
    let offset = reader.offset();
    match reader.read_int("watcher type")? {
        1 => Ok(WatcherType::Children),
        2 => Ok(WatcherType::Data),
        3 => Ok(WatcherType::Any),
        value => Err(DecodeError::InvalidValue {
            what: "watcher type",
            offset,
            value: i64::from(value),
        }),
    }
}

/// `AuthPacket`. A null auth buffer is reported as the empty scheme: the
/// reference answers it exactly like an unknown scheme (AuthFailed, close).
fn read_auth(reader: &mut Reader<'_>) -> Result<Request, DecodeError> {
    let auth_type = reader.read_int("auth type")?;
    let scheme = reader.read_ustring("auth scheme")?.unwrap_or_default();
    Ok(match reader.read_buffer("auth data")? {
        Some(auth) => Request::SetAuth {
            auth_type,
            scheme,
            auth,
        },
        None => Request::SetAuth {
            auth_type,
            scheme: String::new(),
            auth: Vec::new(),
        },
    })
}

/// `SetWatches` (three lists) or `SetWatches2` (five). Null lists or null
/// paths in them are MarshallingError, as in the reference.
fn read_set_watches(reader: &mut Reader<'_>, five_lists: bool) -> Result<Request, DecodeError> {
    fn list(reader: &mut Reader<'_>, what: &'static str) -> Result<Vec<String>, DecodeError> {
        let offset = reader.offset();
        reader
            .read_string_vector(what)?
            .ok_or(DecodeError::Null { what, offset })
    }
    let relative_zxid = reader.read_long("relative zxid")?;
    let data = list(reader, "data watches")?;
    let exist = list(reader, "exist watches")?;
    let child = list(reader, "child watches")?;
    let (persistent, persistent_recursive) = if five_lists {
        (
            list(reader, "persistent watches")?,
            list(reader, "persistent recursive watches")?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Request::SetWatches {
        relative_zxid,
        data,
        exist,
        child,
        persistent,
        persistent_recursive,
    })
}

/// The ops of a multi or multiRead: `MultiHeader` + record pairs until a
/// header with done set (its type and err are not looked at). An op type the
/// reference does not accept in a multi makes the whole request
/// MarshallingError. The watch flag of getChildren/getData ops is dropped:
/// `MultiOp` has no place for it and the Java client always sends false.
fn read_multi_ops(reader: &mut Reader<'_>) -> Result<Vec<MultiOp>, DecodeError> {
    use OpCode::*;
    let mut ops = Vec::new();
    loop {
        let offset = reader.offset();
        let op_type = reader.read_int("multi op type")?;
        let done = reader.read_bool("multi done flag")?;
        reader.read_int("multi op err")?;
        if done {
            return Ok(ops);
        }
        let op = match OpCode::from_code(op_type) {
            Some(op @ (Create | Create2 | CreateContainer)) => MultiOp::Create {
                op,
                request: read_create(reader, false)?,
            },
            Some(CreateTtl) => MultiOp::Create {
                op: CreateTtl,
                request: read_create(reader, true)?,
            },
            Some(Delete) => MultiOp::Delete {
                path: read_path(reader)?,
                version: reader.read_int("version")?,
            },
            Some(SetData) => MultiOp::SetData {
                path: read_path(reader)?,
                data: reader.read_buffer("data")?,
                version: reader.read_int("version")?,
            },
            Some(Check) => MultiOp::Check {
                path: read_path(reader)?,
                version: reader.read_int("version")?,
            },
            Some(GetChildren) => {
                let path = read_path(reader)?;
                reader.read_bool("watch")?;
                MultiOp::GetChildren { path }
            }
            Some(GetData) => {
                let path = read_path(reader)?;
                reader.read_bool("watch")?;
                MultiOp::GetData { path }
            }
            _ => {
                let value = i64::from(op_type);
                return Err(DecodeError::InvalidValue {
                    what: "multi op type",
                    offset,
                    value,
                });
            }
        };
        ops.push(op);
    }
}

/// The opcode a request is normally sent with: the create variant it names;
/// setWatches2 when persistent watches are listed, setWatches otherwise.
pub fn request_op(request: &Request) -> OpCode {
    match request {
        Request::Create { op, .. } => *op,
        Request::Delete { .. } => OpCode::Delete,
        Request::Exists { .. } => OpCode::Exists,
        Request::GetData { .. } => OpCode::GetData,
        Request::SetData { .. } => OpCode::SetData,
        Request::GetAcl { .. } => OpCode::GetAcl,
        Request::SetAcl { .. } => OpCode::SetAcl,
        Request::GetChildren { .. } => OpCode::GetChildren,
        Request::GetChildren2 { .. } => OpCode::GetChildren2,
        Request::Sync { .. } => OpCode::Sync,
        Request::Ping => OpCode::Ping,
        Request::Check { .. } => OpCode::Check,
        Request::Multi(_) => OpCode::Multi,
        Request::MultiRead(_) => OpCode::MultiRead,
        Request::CheckWatches { .. } => OpCode::CheckWatches,
        Request::RemoveWatches { .. } => OpCode::RemoveWatches,
        Request::SetAuth { .. } => OpCode::Auth,
        Request::SetWatches {
            persistent,
            persistent_recursive,
            ..
        } => {
            if persistent.is_empty() && persistent_recursive.is_empty() {
                OpCode::SetWatches
            } else {
                OpCode::SetWatches2
            }
        }
        Request::GetEphemerals { .. } => OpCode::GetEphemerals,
        Request::GetAllChildrenNumber { .. } => OpCode::GetAllChildrenNumber,
        Request::AddWatch { .. } => OpCode::AddWatch,
        Request::WhoAmI => OpCode::WhoAmI,
        Request::Sasl { .. } => OpCode::Sasl,
        Request::CloseSession => OpCode::CloseSession,
    }
}

/// Appends a request frame. `header.op` is written as given (see
/// `request_op`); the body follows `request`, except that `SetWatches` writes
/// the two persistent lists only when `header.op` is setWatches2 (105).
pub fn encode_request(header: &RequestHeader, request: &Request, out: &mut Vec<u8>) {
    let start = jute::begin_frame(out, 8 + request_size_hint(request));
    put_int(out, header.xid);
    put_int(out, header.op);
    match request {
        Request::Create { op, request } => put_create(out, request, *op == OpCode::CreateTtl),
        Request::Delete { path, version } | Request::Check { path, version } => {
            put_string(out, path);
            put_int(out, *version);
        }
        Request::Exists { path, watch }
        | Request::GetData { path, watch }
        | Request::GetChildren { path, watch }
        | Request::GetChildren2 { path, watch } => {
            put_string(out, path);
            put_bool(out, *watch);
        }
        Request::SetData {
            path,
            data,
            version,
        } => {
            put_string(out, path);
            put_buffer(out, data.as_deref());
            put_int(out, *version);
        }
        Request::GetAcl { path }
        | Request::Sync { path }
        | Request::GetAllChildrenNumber { path }
        | Request::GetEphemerals { prefix: path } => put_string(out, path),
        Request::SetAcl { path, acl, version } => {
            put_string(out, path);
            put_acl_list(out, acl);
            put_int(out, *version);
        }
        Request::Ping | Request::WhoAmI | Request::CloseSession => {}
        Request::Sasl { token } => put_buffer(out, token.as_deref()),
        Request::Multi(ops) | Request::MultiRead(ops) => put_multi_ops(out, ops),
        Request::CheckWatches { path, watcher_type }
        | Request::RemoveWatches { path, watcher_type } => {
            put_string(out, path);
            put_int(out, *watcher_type as i32);
        }
        Request::SetAuth {
            auth_type,
            scheme,
            auth,
        } => {
            put_int(out, *auth_type);
            put_string(out, scheme);
            jute::put_bytes(out, auth);
        }
        Request::SetWatches {
            relative_zxid,
            data,
            exist,
            child,
            persistent,
            persistent_recursive,
        } => {
            put_long(out, *relative_zxid);
            jute::put_string_vector(out, data);
            jute::put_string_vector(out, exist);
            jute::put_string_vector(out, child);
            if header.op == OpCode::SetWatches2.code() {
                jute::put_string_vector(out, persistent);
                jute::put_string_vector(out, persistent_recursive);
            }
        }
        Request::AddWatch { path, mode } => {
            put_string(out, path);
            put_int(out, *mode as i32);
        }
    }
    jute::end_frame(out, start);
}

/// A cheap estimate of a request body's size, for reserving once.
fn request_size_hint(request: &Request) -> usize {
    match request {
        Request::Create { request, .. } => {
            32 + request.path.len()
                + request.data.as_ref().map_or(0, Vec::len)
                + 24 * request.acl.len()
        }
        Request::SetData { path, data, .. } => 16 + path.len() + data.as_ref().map_or(0, Vec::len),
        Request::Multi(ops) | Request::MultiRead(ops) => 16 + 64 * ops.len(),
        Request::SetWatches {
            data,
            exist,
            child,
            persistent,
            persistent_recursive,
            ..
        } => {
            8 + [data, exist, child, persistent, persistent_recursive]
                .iter()
                .map(|list| jute::string_vector_size(list))
                .sum::<usize>()
        }
        _ => 64,
    }
}

fn put_create(out: &mut Vec<u8>, request: &CreateRequest, with_ttl: bool) {
    put_string(out, &request.path);
    put_buffer(out, request.data.as_deref());
    put_acl_list(out, &request.acl);
    put_int(out, request.flags);
    if with_ttl {
        put_long(out, request.ttl);
    }
}

fn put_acl_list(out: &mut Vec<u8>, acl: &[Acl]) {
    put_len(out, acl.len());
    for entry in acl {
        put_int(out, entry.perms);
        put_string(out, &entry.id.scheme);
        put_string(out, &entry.id.id);
    }
}

fn put_multi_header(out: &mut Vec<u8>, op_type: i32, done: bool, err: i32) {
    put_int(out, op_type);
    put_bool(out, done);
    put_int(out, err);
}

/// The header that ends a multi request or reply.
fn put_multi_end(out: &mut Vec<u8>) {
    put_multi_header(out, -1, true, -1);
}

fn put_multi_ops(out: &mut Vec<u8>, ops: &[MultiOp]) {
    for op in ops {
        match op {
            MultiOp::Create { op, request } => {
                put_multi_header(out, op.code(), false, -1);
                put_create(out, request, *op == OpCode::CreateTtl);
            }
            MultiOp::Delete { path, version } => {
                put_multi_header(out, OpCode::Delete.code(), false, -1);
                put_string(out, path);
                put_int(out, *version);
            }
            MultiOp::SetData {
                path,
                data,
                version,
            } => {
                put_multi_header(out, OpCode::SetData.code(), false, -1);
                put_string(out, path);
                put_buffer(out, data.as_deref());
                put_int(out, *version);
            }
            MultiOp::Check { path, version } => {
                put_multi_header(out, OpCode::Check.code(), false, -1);
                put_string(out, path);
                put_int(out, *version);
            }
            MultiOp::GetChildren { path } => {
                put_multi_header(out, OpCode::GetChildren.code(), false, -1);
                put_string(out, path);
                put_bool(out, false);
            }
            MultiOp::GetData { path } => {
                put_multi_header(out, OpCode::GetData.code(), false, -1);
                put_string(out, path);
                put_bool(out, false);
            }
        }
    }
    put_multi_end(out);
}

/// Appends length prefix + ReplyHeader{xid, zxid, err} + body (no body when
/// err != Ok, except multi replies which always carry their results).
pub fn encode_reply(xid: i32, zxid: i64, reply: &Reply, out: &mut Vec<u8>) {
    let with_body = reply.err == ErrorCode::Ok || matches!(reply.body, Response::Multi(_));
    let hint = if with_body {
        response_size_hint(&reply.body)
    } else {
        0
    };
    let start = jute::begin_frame(out, REPLY_HEADER_BYTES + hint);
    put_int(out, xid);
    put_long(out, zxid);
    put_int(out, reply.err.code());
    if with_body {
        put_response(out, &reply.body);
    }
    if jute::try_end_frame(out, start).is_err() {
        // Reads are budgeted (engine::read::ReadLimits), so only a missing
        // bound gets here: answer an error instead of a frame no client
        // could take, and keep the I/O thread alive.
        encode_reply(xid, zxid, &Reply::error(engine::read::OVER_BUDGET), out);
    }
}

/// Watch notification: xid -1, zxid -1, err 0 + WatcherEvent{type, state, path}
/// (ZK-BEHAVIOURS 14).
pub fn encode_event(event: &WatcherEvent, out: &mut Vec<u8>) {
    let start = jute::begin_frame(out, REPLY_HEADER_BYTES + 12 + event.path.len());
    put_int(out, NOTIFICATION_XID);
    put_long(out, -1);
    put_int(out, ErrorCode::Ok.code());
    put_int(out, event.event_type as i32);
    put_int(out, event.state as i32);
    put_string(out, &event.path);
    jute::end_frame(out, start);
}

/// A close estimate of a reply body's size, so the frame is reserved once.
fn response_size_hint(body: &Response) -> usize {
    match body {
        Response::Empty | Response::AddWatch | Response::GetAllChildrenNumber { .. } => 4,
        Response::Stat(_) => STAT_BYTES,
        Response::Create { path } | Response::Sync { path } => 4 + path.len(),
        Response::Create2 { path, .. } => 4 + path.len() + STAT_BYTES,
        Response::GetData { data, .. } => 4 + data.as_ref().map_or(0, Vec::len) + STAT_BYTES,
        Response::GetAcl { acl, .. } => 4 + 32 * acl.len() + STAT_BYTES,
        Response::GetChildren { children } => jute::string_vector_size(children),
        Response::GetChildren2 { children, .. } => jute::string_vector_size(children) + STAT_BYTES,
        Response::GetEphemerals { paths } => jute::string_vector_size(paths),
        Response::Multi(results) => 9 + 96 * results.len(),
        Response::WhoAmI { ids } => 4 + 32 * ids.len(),
        Response::Sasl { token } => 4 + token.as_ref().map_or(0, Vec::len),
    }
}

fn put_response(out: &mut Vec<u8>, body: &Response) {
    match body {
        Response::Empty => {}
        Response::Create { path } | Response::Sync { path } => put_string(out, path),
        Response::Create2 { path, stat } => {
            put_string(out, path);
            put_stat(out, stat);
        }
        Response::Stat(stat) => put_stat(out, stat),
        Response::GetData { data, stat } => {
            put_buffer(out, data.as_deref());
            put_stat(out, stat);
        }
        Response::GetAcl { acl, stat } => {
            put_acl_list(out, acl);
            put_stat(out, stat);
        }
        Response::GetChildren { children } => jute::put_string_vector(out, children),
        Response::GetChildren2 { children, stat } => {
            jute::put_string_vector(out, children);
            put_stat(out, stat);
        }
        Response::Multi(results) => put_multi_results(out, results),
        Response::GetEphemerals { paths } => jute::put_string_vector(out, paths),
        Response::GetAllChildrenNumber { total } => put_int(out, *total),
        Response::WhoAmI { ids } => {
            put_len(out, ids.len());
            for info in ids {
                put_string(out, &info.auth_scheme);
                put_string(out, &info.user);
            }
        }
        // `ErrorResponse { err: 0 }`, as the reference sends.
        Response::AddWatch => put_int(out, ErrorCode::Ok.code()),
        Response::Sasl { token } => put_buffer(out, token.as_deref()),
    }
}

fn put_stat(out: &mut Vec<u8>, stat: &Stat) {
    put_long(out, stat.czxid);
    put_long(out, stat.mzxid);
    put_long(out, stat.ctime);
    put_long(out, stat.mtime);
    put_int(out, stat.version);
    put_int(out, stat.cversion);
    put_int(out, stat.aversion);
    put_long(out, stat.ephemeral_owner);
    put_int(out, stat.data_length);
    put_int(out, stat.num_children);
    put_long(out, stat.pzxid);
}

/// Each result is a `MultiHeader{type, done: false, err}` and its record; an
/// error is type -1 with `ErrorResponse{err}`; a header with done set ends
/// the list.
fn put_multi_results(out: &mut Vec<u8>, results: &[MultiResult]) {
    let ok = ErrorCode::Ok.code();
    for result in results {
        match result {
            MultiResult::Create { path } => {
                put_multi_header(out, OpCode::Create.code(), false, ok);
                put_string(out, path);
            }
            MultiResult::Create2 { path, stat } => {
                put_multi_header(out, OpCode::Create2.code(), false, ok);
                put_string(out, path);
                put_stat(out, stat);
            }
            MultiResult::Delete => put_multi_header(out, OpCode::Delete.code(), false, ok),
            MultiResult::SetData { stat } => {
                put_multi_header(out, OpCode::SetData.code(), false, ok);
                put_stat(out, stat);
            }
            MultiResult::Check => put_multi_header(out, OpCode::Check.code(), false, ok),
            MultiResult::GetChildren { children } => {
                put_multi_header(out, OpCode::GetChildren.code(), false, ok);
                jute::put_string_vector(out, children);
            }
            MultiResult::GetData { data, stat } => {
                put_multi_header(out, OpCode::GetData.code(), false, ok);
                put_buffer(out, data.as_deref());
                put_stat(out, stat);
            }
            MultiResult::Error(code) => {
                put_multi_header(out, OpCode::Error.code(), false, code.code());
                put_int(out, code.code());
            }
        }
    }
    put_multi_end(out);
}

/// Reads the `ReplyHeader` at the start of a reply or notification frame
/// body, to tell notifications (xid -1) from replies before decoding further.
pub fn decode_reply_header(body: &[u8]) -> Result<ReplyHeader, DecodeError> {
    read_reply_header(&mut Reader::new(body))
}

fn read_reply_header(reader: &mut Reader<'_>) -> Result<ReplyHeader, DecodeError> {
    Ok(ReplyHeader {
        xid: reader.read_int("reply xid")?,
        zxid: reader.read_long("reply zxid")?,
        err: reader.read_int("reply err")?,
    })
}

fn read_error_code(reader: &mut Reader<'_>, what: &'static str) -> Result<ErrorCode, DecodeError> {
    let offset = reader.offset();
    let code = reader.read_int(what)?;
    ErrorCode::from_code(code).ok_or(DecodeError::InvalidValue {
        what,
        offset,
        value: i64::from(code),
    })
}

/// Decodes a reply frame body to the request `op` it answers. An error reply
/// has an empty body, except a multi's, whose results are decoded when
/// present. Trailing bytes are ignored.
pub fn decode_reply(op: OpCode, body: &[u8]) -> Result<(ReplyHeader, Reply), DecodeError> {
    use OpCode::*;
    let mut reader = Reader::new(body);
    let header = read_reply_header(&mut reader)?;
    let err = ErrorCode::from_code(header.err).ok_or(DecodeError::InvalidValue {
        what: "reply err",
        offset: 12,
        value: i64::from(header.err),
    })?;
    let reader = &mut reader;
    // Error replies have no body, except a multi's when the server sent one.
    let has_body = matches!(op, Multi | MultiRead) && !reader.is_empty();
    if err != ErrorCode::Ok && !has_body {
        return Ok((
            header,
            Reply {
                err,
                body: Response::Empty,
            },
        ));
    }
    let body = match op {
        Create => Response::Create {
            path: read_path(reader)?,
        },
        Create2 | CreateContainer | CreateTtl => Response::Create2 {
            path: read_path(reader)?,
            stat: read_stat(reader)?,
        },
        Exists | SetData | SetAcl => Response::Stat(read_stat(reader)?),
        GetData => Response::GetData {
            data: reader.read_buffer("data")?,
            stat: read_stat(reader)?,
        },
        GetAcl => Response::GetAcl {
            acl: read_acl_list(reader)?,
            stat: read_stat(reader)?,
        },
        GetChildren => Response::GetChildren {
            children: read_strings(reader, "children")?,
        },
        GetChildren2 => Response::GetChildren2 {
            children: read_strings(reader, "children")?,
            stat: read_stat(reader)?,
        },
        Sync => Response::Sync {
            path: read_nullable_path(reader)?,
        },
        Multi | MultiRead => Response::Multi(read_multi_results(reader)?),
        GetEphemerals => Response::GetEphemerals {
            paths: read_strings(reader, "ephemerals")?,
        },
        GetAllChildrenNumber => Response::GetAllChildrenNumber {
            total: reader.read_int("total")?,
        },
        WhoAmI => {
            let count = reader
                .read_count("client info count", CLIENT_INFO_MIN_BYTES)?
                .unwrap_or(0);
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                let auth_scheme = reader.read_ustring("auth scheme")?.unwrap_or_default();
                let user = reader.read_ustring("user")?.unwrap_or_default();
                ids.push(ClientInfo { auth_scheme, user });
            }
            Response::WhoAmI { ids }
        }
        AddWatch => {
            read_error_code(reader, "add watch err")?;
            Response::AddWatch
        }
        Sasl => Response::Sasl {
            token: reader.read_buffer("sasl token")?,
        },
        Notification | Delete | Ping | Check | Reconfig | CheckWatches | RemoveWatches
        | DeleteContainer | Auth | SetWatches | SetWatches2 | CreateSession | CloseSession
        | Error => Response::Empty,
    };
    Ok((header, Reply { err, body }))
}

/// A `vector<ustring>` where null reads as empty.
fn read_strings(reader: &mut Reader<'_>, what: &'static str) -> Result<Vec<String>, DecodeError> {
    Ok(reader.read_string_vector(what)?.unwrap_or_default())
}

fn read_stat(reader: &mut Reader<'_>) -> Result<Stat, DecodeError> {
    // One bounds check for the whole record, then fixed offsets.
    let bytes = reader.take(STAT_BYTES, "stat")?;
    let mut fields = Reader::new(bytes);
    Ok(Stat {
        czxid: fields.read_long("czxid")?,
        mzxid: fields.read_long("mzxid")?,
        ctime: fields.read_long("ctime")?,
        mtime: fields.read_long("mtime")?,
        version: fields.read_int("version")?,
        cversion: fields.read_int("cversion")?,
        aversion: fields.read_int("aversion")?,
        ephemeral_owner: fields.read_long("ephemeral owner")?,
        data_length: fields.read_int("data length")?,
        num_children: fields.read_int("num children")?,
        pzxid: fields.read_long("pzxid")?,
    })
}

fn read_multi_results(reader: &mut Reader<'_>) -> Result<Vec<MultiResult>, DecodeError> {
    let mut results = Vec::new();
    loop {
        let offset = reader.offset();
        let op_type = reader.read_int("multi result type")?;
        let done = reader.read_bool("multi done flag")?;
        reader.read_int("multi result err")?;
        if done {
            return Ok(results);
        }
        let result = match OpCode::from_code(op_type) {
            Some(OpCode::Create) => MultiResult::Create {
                path: read_path(reader)?,
            },
            Some(OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl) => {
                MultiResult::Create2 {
                    path: read_path(reader)?,
                    stat: read_stat(reader)?,
                }
            }
            Some(OpCode::Delete) => MultiResult::Delete,
            Some(OpCode::SetData) => MultiResult::SetData {
                stat: read_stat(reader)?,
            },
            Some(OpCode::Check) => MultiResult::Check,
            Some(OpCode::GetChildren) => MultiResult::GetChildren {
                children: read_strings(reader, "children")?,
            },
            Some(OpCode::GetData) => MultiResult::GetData {
                data: reader.read_buffer("data")?,
                stat: read_stat(reader)?,
            },
            Some(OpCode::Error) => MultiResult::Error(read_error_code(reader, "multi error")?),
            _ => {
                let value = i64::from(op_type);
                return Err(DecodeError::InvalidValue {
                    what: "multi result type",
                    offset,
                    value,
                });
            }
        };
        results.push(result);
    }
}

/// Decodes a notification frame body (ReplyHeader with xid -1, then
/// `WatcherEvent`).
pub fn decode_event(body: &[u8]) -> Result<WatcherEvent, DecodeError> {
    let mut reader = Reader::new(body);
    read_reply_header(&mut reader)?;
    let offset = reader.offset();
    let code = reader.read_int("event type")?;
    let event_type = event_type_from_code(code).ok_or(DecodeError::InvalidValue {
        what: "event type",
        offset,
        value: i64::from(code),
    })?;
    let offset = reader.offset();
    let code = reader.read_int("keeper state")?;
    let state = keeper_state_from_code(code).ok_or(DecodeError::InvalidValue {
        what: "keeper state",
        offset,
        value: i64::from(code),
    })?;
    let path = read_nullable_path(&mut reader)?;
    Ok(WatcherEvent {
        event_type,
        state,
        path,
    })
}

fn event_type_from_code(code: i32) -> Option<EventType> {
    use EventType::*;
    [
        None,
        NodeCreated,
        NodeDeleted,
        NodeDataChanged,
        NodeChildrenChanged,
        DataWatchRemoved,
        ChildWatchRemoved,
        PersistentWatchRemoved,
    ]
    .into_iter()
    .find(|event_type| *event_type as i32 == code)
}

fn keeper_state_from_code(code: i32) -> Option<KeeperState> {
    use KeeperState::*;
    [
        Disconnected,
        SyncConnected,
        AuthFailed,
        ConnectedReadOnly,
        SaslAuthenticated,
        Closed,
        Expired,
    ]
    .into_iter()
    .find(|state| *state as i32 == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jute::put_bytes;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::strategy::Union;

    // ---- helpers -------------------------------------------------------

    /// Bytes from a hex string; spaces are for readability.
    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// A request body (no length prefix) starting with its header.
    fn body(xid: i32, op: i32) -> Vec<u8> {
        let mut out = Vec::new();
        put_int(&mut out, xid);
        put_int(&mut out, op);
        out
    }

    /// Strips and checks the length prefix of one encoded frame.
    fn unframe(frame: &[u8]) -> &[u8] {
        let (prefix, rest) = frame.split_at(4);
        assert_eq!(
            i32::from_be_bytes(prefix.try_into().unwrap()) as usize,
            rest.len()
        );
        rest
    }

    /// Every decoding test goes through here.
    #[track_caller]
    fn check(body: &[u8], expected: Decoded) {
        assert_eq!(
            decode_request(body).expect("frame should be answered, not closed"),
            expected
        );
    }

    #[track_caller]
    fn check_rejected(body: &[u8], code: ErrorCode) {
        let header = decode_request(body).map(|decoded| match decoded {
            Decoded::Rejected(header, got) => {
                assert_eq!(got, code);
                header
            }
            other => panic!("expected Rejected({code:?}), got {other:?}"),
        });
        assert!(header.is_ok());
    }

    fn encoded_reply(xid: i32, zxid: i64, reply: &Reply) -> Vec<u8> {
        let mut out = Vec::new();
        encode_reply(xid, zxid, reply, &mut out);
        out
    }

    // ---- golden bytes, built by hand from the jute spec ------------------

    /// getData("/a", watch) with xid 1: length 15, xid, opcode 4, ustring, bool.
    #[test]
    fn golden_get_data_request() {
        let expected = hex("0000000f 00000001 00000004 00000002 2f61 01");
        let mut out = Vec::new();
        let request = Request::GetData {
            path: "/a".into(),
            watch: true,
        };
        encode_request(&RequestHeader { xid: 1, op: 4 }, &request, &mut out);
        assert_eq!(out, expected);
        check(
            &expected[4..],
            Decoded::Request(RequestHeader { xid: 1, op: 4 }, request),
        );
    }

    fn sample_stat() -> Stat {
        Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        }
    }

    /// create2 reply: ReplyHeader, then Create2Response{path, Stat}; the Stat
    /// fields in jute order (czxid, mzxid, ctime, mtime: long; version,
    /// cversion, aversion: int; ephemeralOwner: long; dataLength, numChildren:
    /// int; pzxid: long).
    #[test]
    fn golden_create2_reply() {
        let expected = hex("0000005a 00000005 0000000000000010 00000000 00000002 2f6e
             0000000000000001 0000000000000002 0000000000000003 0000000000000004
             00000005 00000006 00000007 0000000000000008 00000009 0000000a
             000000000000000b");
        let reply = Reply::ok(Response::Create2 {
            path: "/n".into(),
            stat: sample_stat(),
        });
        assert_eq!(encoded_reply(5, 0x10, &reply), expected);
        let header = ReplyHeader {
            xid: 5,
            zxid: 0x10,
            err: 0,
        };
        assert_eq!(
            decode_reply(OpCode::Create2, &expected[4..]),
            Ok((header, reply))
        );
    }

    /// An error reply has no body, whatever the Reply carries.
    #[test]
    fn golden_error_reply_has_no_body() {
        let reply = Reply {
            err: ErrorCode::NoNode,
            body: Response::Stat(sample_stat()),
        };
        assert_eq!(
            encoded_reply(7, 3, &reply),
            hex("00000010 00000007 0000000000000003 ffffff9b")
        );
    }

    /// NodeDataChanged on /a: xid -1, zxid -1, err 0, type 3, state 3, path.
    #[test]
    fn golden_event() {
        let mut out = Vec::new();
        let event = WatcherEvent {
            event_type: EventType::NodeDataChanged,
            state: KeeperState::SyncConnected,
            path: "/a".into(),
        };
        encode_event(&event, &mut out);
        let expected =
            hex("0000001e ffffffff ffffffffffffffff 00000000 00000003 00000003 00000002 2f61");
        assert_eq!(out, expected);
        assert_eq!(decode_event(&expected[4..]), Ok(event));
    }

    // ---- golden bytes captured from Apache ZooKeeper 3.8.0 ----------------

    /// A multi whose second op failed (ZK-BEHAVIOURS 3): earlier ops report 0,
    /// the failing op its code, later ops RuntimeInconsistency, each as type -1
    /// plus ErrorResponse; err 0 in the header.
    #[test]
    fn reference_failed_multi_reply() {
        let reply = Reply::ok(Response::Multi(vec![
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(ErrorCode::NoNode),
            MultiResult::Error(ErrorCode::RuntimeInconsistency),
        ]));
        let body = "ffffffff 00 00000000 00000000  ffffffff 00 ffffff9b ffffff9b
                    ffffffff 00 fffffffe fffffffe  ffffffff 01 ffffffff";
        let mut expected = hex("00000001 00000000000000e5 00000000");
        expected.extend(hex(body));
        let frame = encoded_reply(1, 229, &reply);
        assert_eq!(unframe(&frame), expected);
        assert_eq!(
            decode_reply(OpCode::Multi, &expected).map(|(_, r)| r),
            Ok(reply)
        );
    }

    #[test]
    fn reference_multi_read_and_check_results() {
        let cases = [
            (
                "000000080000000000000000020000000178000000097a6f6f6b6565706572ffffffff01ffffffff",
                vec![MultiResult::GetChildren {
                    children: vec!["x".into(), "zookeeper".into()],
                }],
            ),
            (
                "0000000d0000000000ffffffff01ffffffff",
                vec![MultiResult::Check],
            ),
            (
                "000000020000000000ffffffff01ffffffff",
                vec![MultiResult::Delete],
            ),
            (
                "ffffffff00ffffff9bffffff9bffffffff01ffffffff",
                vec![MultiResult::Error(ErrorCode::NoNode)],
            ),
            ("ffffffff01ffffffff", vec![]),
        ];
        for (body, results) in cases {
            let reply = Reply::ok(Response::Multi(results));
            let frame = encoded_reply(1, 0, &reply);
            assert_eq!(&unframe(&frame)[16..], hex(body).as_slice());
            assert_eq!(
                decode_reply(OpCode::MultiRead, unframe(&frame)).map(|(_, r)| r),
                Ok(reply)
            );
        }
    }

    /// A multiRead holding a write: MarshallingError in the header, and still
    /// an (empty) result list after it.
    #[test]
    fn reference_error_multi_reply_keeps_its_body() {
        let reply = Reply {
            err: ErrorCode::MarshallingError,
            body: Response::Multi(vec![]),
        };
        let frame = encoded_reply(1, 75, &reply);
        assert_eq!(
            unframe(&frame),
            hex("00000001 000000000000004b fffffffb ffffffff01ffffffff").as_slice()
        );
        assert_eq!(
            decode_reply(OpCode::MultiRead, unframe(&frame)).map(|(_, r)| r),
            Ok(reply)
        );
    }

    #[test]
    fn reference_who_am_i_and_add_watch_bodies() {
        let who = Reply::ok(Response::WhoAmI {
            ids: vec![ClientInfo {
                auth_scheme: "ip".into(),
                user: "127.0.0.1".into(),
            }],
        });
        let frame = encoded_reply(1, 108, &who);
        assert_eq!(
            &unframe(&frame)[16..],
            hex("00000001000000026970000000093132372e302e302e31")
        );
        // addWatch answers ErrorResponse{0}: four zero bytes, not an empty body.
        let frame = encoded_reply(1, 243, &Reply::ok(Response::AddWatch));
        assert_eq!(&unframe(&frame)[16..], hex("00000000"));
        assert_eq!(
            decode_reply(OpCode::AddWatch, unframe(&frame)).map(|(_, r)| r),
            Ok(Reply::ok(Response::AddWatch))
        );
    }

    /// The reference refuses a bad session with zeros and a 16-byte zero
    /// password; it writes readOnly only for clients that sent it.
    #[test]
    fn reference_connect_responses() {
        let refusal = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: false,
        };
        let mut out = Vec::new();
        encode_connect_response(&refusal, &mut out);
        let mut expected = hex("00000025 00000000 00000000 0000000000000000 00000010");
        expected.extend([0; 17]);
        assert_eq!(out, expected);

        let accepted = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 30000,
            session_id: 0x0100_0006_08b5_0001,
            passwd: hex("94c6d7561adb71a1bcc12efb27960288"),
            read_only: false,
        };
        let mut out = Vec::new();
        encode_connect_response_for(&accepted, false, &mut out);
        let expected = hex(
            "00000024 00000000 00007530 0100000608b50001 00000010 94c6d7561adb71a1bcc12efb27960288",
        );
        assert_eq!(out, expected);
        assert_eq!(decode_connect_response(&expected[4..]), Ok(accepted));
    }

    /// The frame a 3.8 client sends to start a session, readOnly included.
    #[test]
    fn connect_request_with_and_without_read_only() {
        let mut body = hex("00000000 0000000000000000 00007530 0000000000000000 00000010");
        body.extend([0; 16]);
        let mut expected = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 30000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: None,
        };
        assert_eq!(decode_connect(&body), Ok(expected.clone()));
        body.push(2);
        expected.read_only = Some(true);
        assert_eq!(decode_connect(&body), Ok(expected.clone()));
        // Trailing bytes after readOnly are ignored; a null password is empty.
        body.extend(b"garbage");
        assert_eq!(decode_connect(&body), Ok(expected.clone()));
        let mut null_password =
            hex("00000000 0000000000000000 00007530 0000000000000000 ffffffff 00");
        expected.passwd.clear();
        expected.read_only = Some(false);
        assert_eq!(decode_connect(&null_password), Ok(expected));
        // Without a password at all the reference closes the connection.
        null_password.truncate(24);
        assert!(decode_connect(&null_password).is_err());
    }

    // ---- the reference's handling of odd requests ------------------------

    /// Pings are answered with xid -2 whatever they carried; their body is
    /// never read.
    #[test]
    fn ping_xid_is_normalised() {
        let mut frame = body(7, 11);
        frame.extend(b"junk");
        check(
            &frame,
            Decoded::Request(RequestHeader { xid: -2, op: 11 }, Request::Ping),
        );
    }

    #[test]
    fn trailing_bytes_after_a_record_are_ignored() {
        let mut frame = body(1, 4);
        put_string(&mut frame, "/");
        put_bool(&mut frame, false);
        frame.extend(b"garbage");
        let request = Request::GetData {
            path: "/".into(),
            watch: false,
        };
        check(
            &frame,
            Decoded::Request(RequestHeader { xid: 1, op: 4 }, request),
        );
        let mut frame = body(1, 107);
        frame.extend(b"junk");
        check(
            &frame,
            Decoded::Request(RequestHeader { xid: 1, op: 107 }, Request::WhoAmI),
        );
    }

    /// ZK-BEHAVIOURS 11: these opcodes get Unimplemented and a closed socket.
    #[test]
    fn unknown_opcodes() {
        for op in [0, 10, 23, 108, -1, -2, 99, i32::MIN] {
            let frame = body(3, op);
            check(&frame, Decoded::UnknownOp(RequestHeader { xid: 3, op }));
        }
    }

    /// sasl (102) is answered (with a null token), not refused: clients that
    /// try SASL first then carry on, as against a reference without SASL.
    #[test]
    fn sasl_is_a_request() {
        let mut frame = body(3, 102);
        put_buffer(&mut frame, None);
        check(
            &frame,
            Decoded::Request(
                RequestHeader { xid: 3, op: 102 },
                Request::Sasl { token: None },
            ),
        );
    }

    #[test]
    fn short_headers_close_the_connection() {
        for length in 0..8 {
            assert!(decode_request(&body(1, 4)[..length]).is_err());
        }
    }

    #[test]
    fn malformed_bodies_are_marshalling_errors() {
        use ErrorCode::MarshallingError as M;
        let mut get_data_no_watch = body(1, 4);
        put_string(&mut get_data_no_watch, "/");
        check_rejected(&get_data_no_watch, M);
        check_rejected(&body(1, 4), M);
        let mut huge_length = body(1, 4);
        put_int(&mut huge_length, i32::MAX);
        huge_length.extend(b"abc");
        check_rejected(&huge_length, M);
        let mut length_minus_two = body(1, 4);
        put_int(&mut length_minus_two, -2);
        check_rejected(&length_minus_two, M);
        let mut null_path = body(1, 4);
        put_int(&mut null_path, -1);
        put_bool(&mut null_path, false);
        check_rejected(&null_path, M);
        // Creating a session inside a session.
        check_rejected(&body(1, -10), M);
    }

    /// A vector count of 2^31-1 in a 20-byte frame is refused before any
    /// allocation.
    #[test]
    fn huge_counts_are_refused_without_allocating() {
        let mut frame = body(-8, 101);
        put_long(&mut frame, 0);
        put_int(&mut frame, i32::MAX);
        assert_eq!(frame.len(), 20);
        check_rejected(&frame, ErrorCode::MarshallingError);
        let mut create = body(1, 1);
        put_string(&mut create, "/x");
        put_int(&mut create, -1);
        put_int(&mut create, i32::MAX);
        check_rejected(&create, ErrorCode::MarshallingError);
        let mut reply = hex("00000001 0000000000000001 00000000");
        put_int(&mut reply, i32::MAX);
        assert!(matches!(
            decode_reply(OpCode::GetChildren, &reply),
            Err(DecodeError::CountTooLarge {
                count: i32::MAX,
                ..
            })
        ));
    }

    /// Null paths: MarshallingError for most requests, the empty string for
    /// the few whose reference code path tolerates null.
    #[test]
    fn null_paths() {
        let null = |op: i32, tail: &[u8]| {
            let mut frame = body(1, op);
            put_int(&mut frame, -1);
            frame.extend_from_slice(tail);
            frame
        };
        let header = |op| RequestHeader { xid: 1, op };
        for (op, tail) in [
            (3, vec![0]),
            (2, vec![0xff; 4]),
            (8, vec![0]),
            (6, vec![]),
            (104, vec![]),
        ] {
            check_rejected(&null(op, &tail), ErrorCode::MarshallingError);
        }
        check_rejected(&null(17, &[0, 0, 0, 1]), ErrorCode::MarshallingError);
        check(
            &null(9, &[]),
            Decoded::Request(
                header(9),
                Request::Sync {
                    path: String::new(),
                },
            ),
        );
        check(
            &null(103, &[]),
            Decoded::Request(
                header(103),
                Request::GetEphemerals {
                    prefix: String::new(),
                },
            ),
        );
        check(
            &null(5, &hex("ffffffff ffffffff")),
            Decoded::Request(
                header(5),
                Request::SetData {
                    path: String::new(),
                    data: None,
                    version: -1,
                },
            ),
        );
        check(
            &null(106, &[0, 0, 0, 0]),
            Decoded::Request(
                header(106),
                Request::AddWatch {
                    path: String::new(),
                    mode: AddWatchMode::Persistent,
                },
            ),
        );
        check(
            &null(18, &[0, 0, 0, 3]),
            Decoded::Request(
                header(18),
                Request::RemoveWatches {
                    path: String::new(),
                    watcher_type: WatcherType::Any,
                },
            ),
        );
    }

    /// ZK-BEHAVIOURS 17: watcher type 0 (or anything outside 1..=3) and
    /// addWatch modes other than 0 and 1 are MarshallingError.
    #[test]
    fn watch_types_and_modes_out_of_range() {
        for (op, value) in [(17, 0), (17, 4), (18, 0), (18, 5), (106, 2), (106, -1)] {
            let mut frame = body(1, op);
            put_string(&mut frame, "/");
            put_int(&mut frame, value);
            check_rejected(&frame, ErrorCode::MarshallingError);
        }
    }

    /// A null ACL list or a negative count is an empty list (prep answers
    /// InvalidACL), a null scheme is empty, a null id is MarshallingError.
    #[test]
    fn acl_nulls() {
        let create = |acl: &[u8]| {
            let mut frame = body(1, 1);
            put_string(&mut frame, "/x");
            put_int(&mut frame, -1);
            frame.extend_from_slice(acl);
            put_int(&mut frame, 0);
            frame
        };
        let expect = |acl: Vec<Acl>| {
            let request = CreateRequest {
                path: "/x".into(),
                data: None,
                acl,
                flags: 0,
                ttl: -1,
            };
            Decoded::Request(
                RequestHeader { xid: 1, op: 1 },
                Request::Create {
                    op: OpCode::Create,
                    request,
                },
            )
        };
        check(&create(&hex("ffffffff")), expect(vec![]));
        check(&create(&hex("fffffffb")), expect(vec![]));
        let mut null_scheme = hex("00000001 0000001f ffffffff");
        put_string(&mut null_scheme, "anyone");
        check(
            &create(&null_scheme),
            expect(vec![Acl {
                perms: 31,
                id: Id::new("", "anyone"),
            }]),
        );
        let mut null_id = hex("00000001 0000001f");
        put_string(&mut null_id, "world");
        put_int(&mut null_id, -1);
        check_rejected(&create(&null_id), ErrorCode::MarshallingError);
    }

    #[test]
    fn set_watches_null_lists_are_marshalling_errors() {
        let mut frame = body(-8, 101);
        put_long(&mut frame, 0);
        frame.extend(hex("ffffffff 00000000 00000000"));
        check_rejected(&frame, ErrorCode::MarshallingError);
        let mut frame = body(-8, 101);
        put_long(&mut frame, 0);
        frame.extend(hex("00000001 ffffffff 00000000 00000000"));
        check_rejected(&frame, ErrorCode::MarshallingError);
        // setWatches2 needs its two extra lists.
        let mut frame = body(-8, 105);
        put_long(&mut frame, 0);
        frame.extend(hex("00000000 00000000 00000000"));
        check_rejected(&frame, ErrorCode::MarshallingError);
    }

    /// A multi ends at the first header with done set, whatever its type; a
    /// type the reference does not take in a multi, a read-only exists
    /// included, makes the whole multi MarshallingError, as does a missing
    /// terminator.
    #[test]
    fn multi_framing() {
        let check_op = |path: &str| {
            let mut out = hex("0000000d 00 ffffffff");
            put_string(&mut out, path);
            put_int(&mut out, -1);
            out
        };
        let multi = |parts: &[&[u8]]| {
            let mut frame = body(1, 14);
            for part in parts {
                frame.extend_from_slice(part);
            }
            frame
        };
        let one_check = Decoded::Request(
            RequestHeader { xid: 1, op: 14 },
            Request::Multi(vec![MultiOp::Check {
                path: "/".into(),
                version: -1,
            }]),
        );
        check(
            &multi(&[&check_op("/"), &hex("ffffffff 01 ffffffff")]),
            one_check.clone(),
        );
        check(
            &multi(&[&check_op("/"), &hex("ffffffff 02 ffffffff")]),
            one_check.clone(),
        );
        check(
            &multi(&[&check_op("/"), &hex("00000005 01 00000000")]),
            one_check,
        );
        check(
            &multi(&[&hex("0000000d 01 ffffffff"), &check_op("/")]),
            Decoded::Request(RequestHeader { xid: 1, op: 14 }, Request::Multi(vec![])),
        );
        check_rejected(&multi(&[&check_op("/")]), ErrorCode::MarshallingError);
        check_rejected(
            &multi(&[&hex("ffffffff 00 ffffffff ffffffff 01 ffffffff")]),
            ErrorCode::MarshallingError,
        );
        for op_type in ["00000003", "00000014", "00000063", "0000000b"] {
            let mut op = hex(op_type);
            op.extend(hex("00 ffffffff"));
            put_string(&mut op, "/");
            op.extend(hex("00 ffffffff 01 ffffffff"));
            check_rejected(&multi(&[&op]), ErrorCode::MarshallingError);
        }
    }

    #[test]
    fn reconfig_delete_container_and_create_session() {
        let mut reconfig = body(1, 16);
        reconfig.extend(hex("ffffffff ffffffff ffffffff ffffffffffffffff"));
        check_rejected(&reconfig, ErrorCode::ReconfigDisabled);
        check_rejected(&body(1, 16), ErrorCode::MarshallingError);
        let mut delete_container = body(1, 20);
        put_string(&mut delete_container, "/c");
        check_rejected(&delete_container, ErrorCode::BadArguments);
        check_rejected(&body(1, -10), ErrorCode::MarshallingError);

        let header = |op| RequestHeader { xid: 1, op };
        assert!(header(1).rejection_consumes_zxid(ErrorCode::MarshallingError));
        assert!(header(14).rejection_consumes_zxid(ErrorCode::MarshallingError));
        assert!(header(20).rejection_consumes_zxid(ErrorCode::BadArguments));
        assert!(header(16).rejection_consumes_zxid(ErrorCode::ReconfigDisabled));
        assert!(!header(16).rejection_consumes_zxid(ErrorCode::MarshallingError));
        assert!(!header(22).rejection_consumes_zxid(ErrorCode::MarshallingError));
        assert!(!header(4).rejection_consumes_zxid(ErrorCode::MarshallingError));
        assert!(!header(101).rejection_consumes_zxid(ErrorCode::MarshallingError));
    }

    /// A malformed auth packet closes the connection (the reference parses it
    /// outside its request pipeline); a null auth buffer becomes the empty
    /// scheme, which fails like an unknown scheme.
    #[test]
    fn auth_packets() {
        let mut truncated = body(-4, 100);
        put_int(&mut truncated, 0);
        put_string(&mut truncated, "digest");
        assert!(decode_request(&truncated).is_err());
        let mut null_auth = truncated.clone();
        put_int(&mut null_auth, -1);
        check(
            &null_auth,
            Decoded::Request(
                RequestHeader { xid: -4, op: 100 },
                Request::SetAuth {
                    auth_type: 0,
                    scheme: String::new(),
                    auth: vec![],
                },
            ),
        );
        let mut good = truncated;
        put_bytes(&mut good, b"a:b");
        check(
            &good,
            Decoded::Request(
                RequestHeader { xid: -4, op: 100 },
                Request::SetAuth {
                    auth_type: 0,
                    scheme: "digest".into(),
                    auth: b"a:b".to_vec(),
                },
            ),
        );
    }

    /// Invalid UTF-8 becomes U+FFFD, as Java decodes it: a read answers NoNode.
    #[test]
    fn invalid_utf8_paths_are_replaced() {
        let mut frame = body(1, 3);
        put_bytes(&mut frame, b"/\xff");
        put_bool(&mut frame, false);
        let request = Request::Exists {
            path: "/\u{fffd}".into(),
            watch: false,
        };
        check(
            &frame,
            Decoded::Request(RequestHeader { xid: 1, op: 3 }, request),
        );
    }

    #[test]
    fn set_watches2_with_empty_persistent_lists_round_trips() {
        let request = Request::SetWatches {
            relative_zxid: 5,
            data: vec!["/a".into()],
            exist: vec![],
            child: vec![],
            persistent: vec![],
            persistent_recursive: vec![],
        };
        for op in [101, 105] {
            let header = RequestHeader { xid: -8, op };
            let mut out = Vec::new();
            encode_request(&header, &request, &mut out);
            assert_eq!(
                out.len(),
                if op == 101 {
                    4 + 8 + 8 + 10 + 8
                } else {
                    4 + 8 + 8 + 10 + 16
                }
            );
            check(unframe(&out), Decoded::Request(header, request.clone()));
        }
    }

    // ---- property tests ---------------------------------------------------

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z/]{0,12}", ".{0,6}"]
    }

    fn data() -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(vec(any::<u8>(), 0..24))
    }

    fn acl() -> impl Strategy<Value = Vec<Acl>> {
        vec(
            (any::<i32>(), text(), text()).prop_map(|(perms, scheme, id)| Acl {
                perms,
                id: Id { scheme, id },
            }),
            0..4,
        )
    }

    fn stat() -> impl Strategy<Value = Stat> {
        (any::<[i64; 6]>(), any::<[i32; 5]>()).prop_map(|(l, i)| Stat {
            czxid: l[0],
            mzxid: l[1],
            ctime: l[2],
            mtime: l[3],
            version: i[0],
            cversion: i[1],
            aversion: i[2],
            ephemeral_owner: l[4],
            data_length: i[3],
            num_children: i[4],
            pzxid: l[5],
        })
    }

    fn create() -> impl Strategy<Value = (OpCode, CreateRequest)> {
        let op = prop_oneof![
            Just(OpCode::Create),
            Just(OpCode::Create2),
            Just(OpCode::CreateContainer),
            Just(OpCode::CreateTtl)
        ];
        (op, text(), data(), acl(), any::<i32>(), any::<i64>()).prop_map(
            |(op, path, data, acl, flags, ttl)| {
                let ttl = if op == OpCode::CreateTtl { ttl } else { -1 };
                (
                    op,
                    CreateRequest {
                        path,
                        data,
                        acl,
                        flags,
                        ttl,
                    },
                )
            },
        )
    }

    fn multi_op() -> impl Strategy<Value = MultiOp> {
        prop_oneof![
            create().prop_map(|(op, request)| MultiOp::Create { op, request }),
            (text(), any::<i32>()).prop_map(|(path, version)| MultiOp::Delete { path, version }),
            (text(), data(), any::<i32>()).prop_map(|(path, data, version)| MultiOp::SetData {
                path,
                data,
                version
            }),
            (text(), any::<i32>()).prop_map(|(path, version)| MultiOp::Check { path, version }),
            text().prop_map(|path| MultiOp::GetChildren { path }),
            text().prop_map(|path| MultiOp::GetData { path }),
        ]
    }

    fn strings() -> impl Strategy<Value = Vec<String>> {
        vec(text(), 0..4)
    }

    fn request() -> BoxedStrategy<Request> {
        let watcher_type = prop_oneof![
            Just(WatcherType::Children),
            Just(WatcherType::Data),
            Just(WatcherType::Any)
        ];
        let mode = prop_oneof![
            Just(AddWatchMode::Persistent),
            Just(AddWatchMode::PersistentRecursive)
        ];
        Union::new(vec![
            create()
                .prop_map(|(op, request)| Request::Create { op, request })
                .boxed(),
            (text(), any::<i32>())
                .prop_map(|(path, version)| Request::Delete { path, version })
                .boxed(),
            (text(), any::<bool>())
                .prop_map(|(path, watch)| Request::Exists { path, watch })
                .boxed(),
            (text(), any::<bool>())
                .prop_map(|(path, watch)| Request::GetData { path, watch })
                .boxed(),
            (text(), data(), any::<i32>())
                .prop_map(|(path, data, version)| Request::SetData {
                    path,
                    data,
                    version,
                })
                .boxed(),
            text().prop_map(|path| Request::GetAcl { path }).boxed(),
            (text(), acl(), any::<i32>())
                .prop_map(|(path, acl, version)| Request::SetAcl { path, acl, version })
                .boxed(),
            (text(), any::<bool>())
                .prop_map(|(path, watch)| Request::GetChildren { path, watch })
                .boxed(),
            (text(), any::<bool>())
                .prop_map(|(path, watch)| Request::GetChildren2 { path, watch })
                .boxed(),
            text().prop_map(|path| Request::Sync { path }).boxed(),
            Just(Request::Ping).boxed(),
            (text(), any::<i32>())
                .prop_map(|(path, version)| Request::Check { path, version })
                .boxed(),
            vec(multi_op(), 0..5).prop_map(Request::Multi).boxed(),
            vec(multi_op(), 0..5).prop_map(Request::MultiRead).boxed(),
            (text(), watcher_type.clone())
                .prop_map(|(path, watcher_type)| Request::CheckWatches { path, watcher_type })
                .boxed(),
            (text(), watcher_type)
                .prop_map(|(path, watcher_type)| Request::RemoveWatches { path, watcher_type })
                .boxed(),
            (any::<i32>(), text(), vec(any::<u8>(), 0..16))
                .prop_map(|(auth_type, scheme, auth)| Request::SetAuth {
                    auth_type,
                    scheme,
                    auth,
                })
                .boxed(),
            (
                any::<i64>(),
                strings(),
                strings(),
                strings(),
                strings(),
                strings(),
            )
                .prop_map(
                    |(relative_zxid, data, exist, child, persistent, persistent_recursive)| {
                        Request::SetWatches {
                            relative_zxid,
                            data,
                            exist,
                            child,
                            persistent,
                            persistent_recursive,
                        }
                    },
                )
                .boxed(),
            text()
                .prop_map(|prefix| Request::GetEphemerals { prefix })
                .boxed(),
            text()
                .prop_map(|path| Request::GetAllChildrenNumber { path })
                .boxed(),
            (text(), mode)
                .prop_map(|(path, mode)| Request::AddWatch { path, mode })
                .boxed(),
            Just(Request::WhoAmI).boxed(),
            Just(Request::CloseSession).boxed(),
        ])
        .boxed()
    }

    fn error_code() -> impl Strategy<Value = ErrorCode> {
        (-130i32..=0).prop_filter_map("a known code", ErrorCode::from_code)
    }

    fn multi_result() -> impl Strategy<Value = MultiResult> {
        prop_oneof![
            text().prop_map(|path| MultiResult::Create { path }),
            (text(), stat()).prop_map(|(path, stat)| MultiResult::Create2 { path, stat }),
            Just(MultiResult::Delete),
            stat().prop_map(|stat| MultiResult::SetData { stat }),
            Just(MultiResult::Check),
            strings().prop_map(|children| MultiResult::GetChildren { children }),
            (data(), stat()).prop_map(|(data, stat)| MultiResult::GetData { data, stat }),
            error_code().prop_map(MultiResult::Error),
        ]
    }

    /// A reply body and the opcode whose reply has that shape.
    fn response() -> BoxedStrategy<(OpCode, Response)> {
        use OpCode as Op;
        Union::new(vec![
            Just((Op::Delete, Response::Empty)).boxed(),
            text()
                .prop_map(|path| (Op::Create, Response::Create { path }))
                .boxed(),
            (text(), stat())
                .prop_map(|(path, stat)| (Op::Create2, Response::Create2 { path, stat }))
                .boxed(),
            stat()
                .prop_map(|stat| (Op::Exists, Response::Stat(stat)))
                .boxed(),
            (data(), stat())
                .prop_map(|(data, stat)| (Op::GetData, Response::GetData { data, stat }))
                .boxed(),
            (acl(), stat())
                .prop_map(|(acl, stat)| (Op::GetAcl, Response::GetAcl { acl, stat }))
                .boxed(),
            strings()
                .prop_map(|children| (Op::GetChildren, Response::GetChildren { children }))
                .boxed(),
            (strings(), stat())
                .prop_map(|(children, stat)| {
                    (Op::GetChildren2, Response::GetChildren2 { children, stat })
                })
                .boxed(),
            text()
                .prop_map(|path| (Op::Sync, Response::Sync { path }))
                .boxed(),
            vec(multi_result(), 0..5)
                .prop_map(|results| (Op::Multi, Response::Multi(results)))
                .boxed(),
            strings()
                .prop_map(|paths| (Op::GetEphemerals, Response::GetEphemerals { paths }))
                .boxed(),
            any::<i32>()
                .prop_map(|total| {
                    (
                        Op::GetAllChildrenNumber,
                        Response::GetAllChildrenNumber { total },
                    )
                })
                .boxed(),
            vec((text(), text()), 0..3)
                .prop_map(|pairs| {
                    let ids = pairs
                        .into_iter()
                        .map(|(auth_scheme, user)| ClientInfo { auth_scheme, user })
                        .collect();
                    (Op::WhoAmI, Response::WhoAmI { ids })
                })
                .boxed(),
            Just((Op::AddWatch, Response::AddWatch)).boxed(),
        ])
        .boxed()
    }

    fn event() -> impl Strategy<Value = WatcherEvent> {
        use EventType as E;
        use KeeperState as K;
        let event_type = proptest::sample::select(vec![
            E::None,
            E::NodeCreated,
            E::NodeDeleted,
            E::NodeDataChanged,
            E::NodeChildrenChanged,
            E::DataWatchRemoved,
            E::ChildWatchRemoved,
            E::PersistentWatchRemoved,
        ]);
        let state = proptest::sample::select(vec![
            K::Disconnected,
            K::SyncConnected,
            K::AuthFailed,
            K::ConnectedReadOnly,
            K::SaslAuthenticated,
            K::Closed,
            K::Expired,
        ]);
        (event_type, state, text()).prop_map(|(event_type, state, path)| WatcherEvent {
            event_type,
            state,
            path,
        })
    }

    /// Every opcode a client may send, for fuzzing bodies behind a valid header.
    const CLIENT_OPS: [i32; 33] = [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 100, 101, 102,
        103, 104, 105, 106, 107, -10, -11, 0, 10,
    ];

    proptest! {
        #[test]
        fn every_request_round_trips(xid in any::<i32>(), request in request()) {
            let header = RequestHeader { xid, op: request_op(&request).code() };
            let mut out = vec![0xaa];
            encode_request(&header, &request, &mut out);
            let decoded = decode_request(unframe(&out[1..]));
            let header = if request == Request::Ping {
                RequestHeader { xid: PING_XID, ..header }
            } else {
                header
            };
            prop_assert_eq!(decoded, Ok(Decoded::Request(header, request)));
        }

        #[test]
        fn every_reply_round_trips(
            xid in any::<i32>(),
            zxid in any::<i64>(),
            err in error_code(),
            (op, body) in response(),
        ) {
            let reply = Reply { err, body };
            let frame = encoded_reply(xid, zxid, &reply);
            let expected = if err == ErrorCode::Ok || matches!(reply.body, Response::Multi(_)) {
                reply
            } else {
                Reply::error(err)
            };
            let header = ReplyHeader { xid, zxid, err: err.code() };
            prop_assert_eq!(decode_reply_header(unframe(&frame)), Ok(header));
            prop_assert_eq!(decode_reply(op, unframe(&frame)), Ok((header, expected)));
        }

        #[test]
        fn events_round_trip(event in event()) {
            let mut out = Vec::new();
            encode_event(&event, &mut out);
            let header = ReplyHeader { xid: -1, zxid: -1, err: 0 };
            prop_assert_eq!(decode_reply_header(unframe(&out)), Ok(header));
            prop_assert_eq!(decode_event(unframe(&out)), Ok(event));
        }

        #[test]
        fn connect_records_round_trip(
            protocol_version in any::<i32>(),
            last_zxid_seen in any::<i64>(),
            timeout_ms in any::<i32>(),
            session_id in any::<i64>(),
            passwd in vec(any::<u8>(), 0..20),
            read_only in proptest::option::of(any::<bool>()),
        ) {
            let request = ConnectRequest {
                protocol_version, last_zxid_seen, timeout_ms, session_id,
                passwd: passwd.clone(), read_only,
            };
            let mut out = Vec::new();
            encode_connect_request(&request, &mut out);
            prop_assert_eq!(decode_connect(unframe(&out)), Ok(request));

            let response = ConnectResponse {
                protocol_version, timeout_ms, session_id, passwd,
                read_only: read_only.unwrap_or(false),
            };
            let mut out = Vec::new();
            encode_connect_response(&response, &mut out);
            prop_assert_eq!(decode_connect_response(unframe(&out)), Ok(response.clone()));
            let mut old = Vec::new();
            encode_connect_response_for(&response, false, &mut old);
            prop_assert_eq!(old.len() + 1, out.len());
            prop_assert_eq!(
                decode_connect_response(unframe(&old)),
                Ok(ConnectResponse { read_only: false, ..response })
            );
        }

        /// Any byte string: an answer or an error, never a panic, never an
        /// allocation the input cannot back (a huge count would abort here).
        #[test]
        fn decoders_never_panic(bytes in vec(any::<u8>(), 0..256)) {
            let _ = decode_request(&bytes);
            let _ = decode_connect(&bytes);
            let _ = decode_connect_response(&bytes);
            let _ = decode_event(&bytes);
            for op in CLIENT_OPS {
                if let Some(op) = OpCode::from_code(op) {
                    let _ = decode_reply(op, &bytes);
                }
            }
        }

        /// Arbitrary bodies behind a real opcode reach every body decoder. Only
        /// an auth packet may close the connection.
        #[test]
        fn request_bodies_never_panic(
            op in proptest::sample::select(CLIENT_OPS.to_vec()),
            tail in vec(any::<u8>(), 0..128),
        ) {
            let mut frame = body(1, op);
            frame.extend(tail);
            let decoded = decode_request(&frame);
            prop_assert!(decoded.is_ok() || op == 100, "{:?}", decoded);
        }

        /// Every truncation of a valid frame, and every single-byte change,
        /// is answered or refused without a panic; past the header only an
        /// auth packet may be an Err.
        #[test]
        fn damaged_frames_never_panic(
            xid in any::<i32>(),
            request in request(),
            position in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let header = RequestHeader { xid, op: request_op(&request).code() };
            let mut out = Vec::new();
            encode_request(&header, &request, &mut out);
            let frame = unframe(&out);
            let is_auth = matches!(request, Request::SetAuth { .. });
            for cut in 0..frame.len() {
                let decoded = decode_request(&frame[..cut]);
                // A cut auth packet is always incomplete, hence always fatal.
                prop_assert_eq!(decoded.is_ok(), cut >= 8 && !is_auth, "cut {}", cut);
            }
            let mut damaged = frame.to_vec();
            let at = position.index(damaged.len());
            damaged[at] = byte;
            let decoded = decode_request(&damaged);
            prop_assert!(decoded.is_ok() || is_auth || damaged[4..8] == [0, 0, 0, 100]);
        }

        #[test]
        fn damaged_replies_never_panic(
            err in error_code(),
            (op, body) in response(),
            position in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let frame = encoded_reply(1, 2, &Reply { err, body });
            let frame = unframe(&frame);
            for cut in 0..frame.len() {
                let _ = decode_reply(op, &frame[..cut]);
            }
            let mut damaged = frame.to_vec();
            let at = position.index(damaged.len());
            damaged[at] = byte;
            let _ = decode_reply(op, &damaged);
        }
    }
}
