//! The client's half of the client protocol: connect requests and request
//! frames out, connect responses, replies and watch notifications in. Only
//! benches, tests and clients written against this crate use it (cargo
//! feature `client`); the server never runs it. Decoders still treat input as
//! untrusted: a server's bytes are no more trusted than a client's.

use super::{
    put_acl_list, put_multi_end, put_multi_header, read_acl_list, read_nullable_path, read_path,
    ConnectRequest, ConnectResponse, RequestHeader, STAT_BYTES,
};
use crate::jute::{self, put_bool, put_buffer, put_int, put_long, put_string, DecodeError, Reader};
use engine::request::{ClientInfo, CreateRequest, MultiOp, MultiResult, Reply, Request, Response};
use engine::types::{ErrorCode, EventType, KeeperState, OpCode, Stat, WatcherEvent};

/// Smallest encoding of one `ClientInfo`: two empty strings.
const CLIENT_INFO_MIN_BYTES: usize = 8;

/// `ReplyHeader`: the first sixteen bytes of every reply and notification.
/// `err` stays raw so a client can report a code it does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
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
        Request::Reconfig {
            joining,
            leaving,
            new_members,
            from_config,
        } => {
            for text in [joining, leaving, new_members] {
                put_buffer(out, text.as_ref().map(String::as_bytes));
            }
            put_long(out, *from_config);
        }
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
