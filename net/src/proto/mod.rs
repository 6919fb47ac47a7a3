//! ZooKeeper's client records on the wire: the connect handshake, request
//! frames into `engine::request::Request`, `Reply` values into reply frames,
//! and watch notifications. `server` is the half the reactor uses (decode
//! connect requests and requests, encode connect responses, replies and
//! events); `client` (cargo feature `client`, off by default) is the other
//! direction, for benches, tests and clients written against this crate. This
//! module holds what both halves share: the record types, the xids, and the
//! sub-records (paths, ACL lists, multi headers) that travel both ways.
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
//! Facts about the reference (Apache ZooKeeper 3.8.0) that shape this module,
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

use crate::jute::{put_bool, put_int, put_len, put_string, DecodeError, Reader};
use engine::request::Request;
use engine::types::{Acl, ErrorCode, Id, OpCode};

mod server;
pub use server::{
    decode_connect, decode_request, encode_connect_response, encode_connect_response_for,
    encode_event, encode_reply,
};

// Unit tests round-trip through both halves, so they always build this one.
#[cfg(any(test, feature = "client"))]
mod client;
#[cfg(any(test, feature = "client"))]
pub use client::{
    decode_connect_response, decode_event, decode_reply, decode_reply_header,
    encode_connect_request, encode_request, ReplyHeader,
};

#[cfg(test)]
mod tests;

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
    /// from `Decoded::Rejected` (ZK-BEHAVIOURS 2): requests its
    /// prep stage turns into txns get an error txn even when their body does
    /// not parse. The exception is reconfig, whose body is parsed before a txn
    /// exists (its refusals once parsed are the sequencer's, as error txns).
    pub fn rejection_consumes_zxid(&self) -> bool {
        use OpCode::*;
        matches!(
            OpCode::from_code(self.op),
            Some(
                Create
                    | Create2
                    | CreateContainer
                    | CreateTtl
                    | Delete
                    | DeleteContainer
                    | SetData
                    | SetAcl
                    | Check
                    | Multi
                    | CreateSession
                    | CloseSession,
            )
        )
    }
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
        Request::Reconfig { .. } => OpCode::Reconfig,
    }
}

/// A path that must not be null.
fn read_path(reader: &mut Reader<'_>) -> Result<String, DecodeError> {
    reader.read_string("path")
}

/// A path where the reference treats null like the empty string.
fn read_nullable_path(reader: &mut Reader<'_>) -> Result<String, DecodeError> {
    Ok(reader.read_ustring("path")?.unwrap_or_default())
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
        let id = if scheme == "auth" {
            // The `auth` scheme's id is unused, and kazoo (CREATOR_ALL_ACL)
            // sends it as a null string; the reference accepts that. Every
            // other scheme needs its id: a null one fails the request as a
            // marshalling error, as it does in the reference.
            reader.read_ustring("acl id")?.unwrap_or_default()
        } else {
            reader.read_string("acl id")?
        };
        acl.push(Acl {
            perms,
            id: Id { scheme, id },
        });
    }
    Ok(acl)
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
