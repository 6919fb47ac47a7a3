//! The server's half of the client protocol: connect requests and request
//! frames in, connect responses, replies and watch notifications out. This is
//! what the reactor runs on every frame, so every decoder here treats its
//! input as untrusted (see the parent module for which failures close the
//! connection) and every encoder writes one whole frame.

use super::{
    put_acl_list, put_multi_end, put_multi_header, read_acl_list, read_nullable_path, read_path,
    ConnectRequest, ConnectResponse, Decoded, RequestHeader, NOTIFICATION_XID, PING_XID,
    STAT_BYTES,
};
use crate::jute::{
    self, put_bool, put_buffer, put_int, put_len, put_long, put_string, DecodeError, Reader,
};
use engine::request::{CreateRequest, MultiOp, MultiResult, Reply, Request, Response};
use engine::types::{AddWatchMode, ErrorCode, OpCode, Stat, WatcherEvent, WatcherType};

/// `ReplyHeader`: xid, zxid, err.
const REPLY_HEADER_BYTES: usize = 16;

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
        Reconfig => Request::Reconfig {
            joining: reader.read_ustring("joining servers")?,
            leaving: reader.read_ustring("leaving servers")?,
            new_members: reader.read_ustring("new members")?,
            from_config: reader.read_long("current config id")?,
        },
        DeleteContainer => return Err(Refusal::Code(ErrorCode::BadArguments)),
        CreateSession => return Err(Refusal::Code(ErrorCode::MarshallingError)),
        Sasl => Request::Sasl {
            token: reader.read_buffer("sasl token")?,
        },
        Notification | Error => return Err(Refusal::Unknown),
    };
    Ok(request)
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
