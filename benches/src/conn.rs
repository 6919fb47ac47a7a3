//! One ZooKeeper client connection over a blocking std socket: the connect
//! handshake, request frames out, reply frames in. Just enough client for a
//! load generator; it is not a client library (no reconnect, no watch
//! bookkeeping, no pings: benchmark traffic keeps the session alive). A
//! caller that reconnects itself can resume a session on a new connection
//! (`open` with a `Resume`), as zk-chaos's session workload does.
//! Over TLS (`--tls-ca`, for a server's `secureClientPort`) the same frames
//! go through a rustls client session on the same blocking socket.
//!
//! Invariant: every frame read is length-checked before its buffer grows, and
//! nothing the server sends can panic this code; a malformed frame is an
//! `io::Error` that ends the connection.

use engine::request::{CreateRequest, Request};
use engine::types::{Acl, OpCode};
use net::proto::{
    decode_connect_response, decode_reply_header, encode_connect_request, encode_request,
    request_op, ConnectRequest, ReplyHeader, RequestHeader, NOTIFICATION_XID, PING_XID,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{self, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Largest reply frame accepted. Generous: `large` reads can approach the
/// server's 1 MiB jute.maxbuffer and getChildren during cleanup can exceed it.
const MAX_FRAME: usize = 64 << 20;

/// Session timeout asked for at connect.
const SESSION_TIMEOUT_MS: i32 = 30_000;

/// Write buffered output once it reaches this, as a BufWriter would.
const WRITE_CHUNK: usize = 256 << 10;

/// The socket, plain or inside a TLS session: read through the BufReader,
/// written through `get_mut`.
trait Duplex: Read + Write + Send {}
impl<T: Read + Write + Send> Duplex for T {}

/// How to reach a secure client port: the client's TLS configuration and
/// the name its certificate is checked against.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls({:?})", self.server_name)
    }
}

impl Tls {
    /// Trusts the CA certificates in `ca` (PEM); presents `cert` + `key`
    /// (PEM) when both are given, as a server with `ssl.clientAuth=need`
    /// wants.
    pub fn new(
        ca: &Path,
        cert: Option<&Path>,
        key: Option<&Path>,
        server_name: &str,
    ) -> io::Result<Tls> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .map_err(|e| invalid(format!("{}: {e}", ca.display())))?
        {
            let cert = cert.map_err(|e| invalid(format!("{}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| invalid(format!("{}: {e}", ca.display())))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .with_root_certificates(roots);
        let config = match (cert, key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| invalid(format!("{}: {e}", cert.display())))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| invalid(format!("{}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| invalid(e.to_string()))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(invalid("--tls-cert and --tls-key go together".to_string())),
        };
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| invalid(format!("--tls-server-name {server_name}: {e}")))?;
        Ok(Tls {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// A persistent create of `path` holding `data`, open to everyone.
pub fn create_request(path: String, data: Vec<u8>) -> Request {
    Request::Create {
        op: OpCode::Create,
        request: CreateRequest {
            path,
            data: Some(data),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
    }
}

/// A session to resume on another connection: what its ConnectRequest
/// carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// The highest zxid the client has seen in the session.
    pub last_zxid: i64,
}

pub struct Conn {
    reader: BufReader<Box<dyn Duplex>>,
    /// The session's id and password, as the server granted them.
    session_id: i64,
    passwd: Vec<u8>,
    /// Encoded requests not yet written.
    out: Vec<u8>,
    next_xid: i32,
    /// Reused buffer for the last frame read.
    body: Vec<u8>,
    /// Reused buffer for encoding.
    scratch: Vec<u8>,
}

fn bad_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Conn {
    /// Connects and completes the handshake. A refused session (timeout 0)
    /// is an error.
    pub fn connect(server: &str, tls: Option<&Tls>) -> io::Result<Conn> {
        Conn::connect_timeout(server, Duration::from_secs(30), tls)
    }

    /// `connect`, where connecting, the handshake and every later read and
    /// write give up after `timeout` (a timed-out read is an `io::Error`).
    pub fn connect_timeout(server: &str, timeout: Duration, tls: Option<&Tls>) -> io::Result<Conn> {
        Conn::open(server, timeout, tls, SESSION_TIMEOUT_MS, None)
    }

    /// `connect_timeout` asking for `session_timeout_ms`, and resuming
    /// `resume`'s session instead of creating one when given. A session the
    /// server no longer has (it answers timeout 0: expired) is an error of
    /// kind `ConnectionRefused`.
    pub fn open(
        server: &str,
        timeout: Duration,
        tls: Option<&Tls>,
        session_timeout_ms: i32,
        resume: Option<&Resume>,
    ) -> io::Result<Conn> {
        let address = server.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{server}: no address"))
        })?;
        let stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let stream: Box<dyn Duplex> = match tls {
            None => Box::new(stream),
            Some(tls) => {
                let session =
                    rustls::ClientConnection::new(Arc::clone(&tls.config), tls.server_name.clone())
                        .map_err(io::Error::other)?;
                Box::new(rustls::StreamOwned::new(session, stream))
            }
        };
        let mut conn = Conn {
            reader: BufReader::with_capacity(256 << 10, stream),
            session_id: 0,
            passwd: Vec::new(),
            out: Vec::with_capacity(WRITE_CHUNK),
            next_xid: 1,
            body: Vec::new(),
            scratch: Vec::new(),
        };
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: resume.map_or(0, |r| r.last_zxid),
            timeout_ms: session_timeout_ms,
            session_id: resume.map_or(0, |r| r.session_id),
            passwd: resume.map_or_else(|| vec![0; 16], |r| r.passwd.clone()),
            read_only: Some(false),
        };
        encode_connect_request(&req, &mut conn.scratch);
        conn.out.extend_from_slice(&conn.scratch);
        conn.flush()?;
        conn.read_frame()?;
        let resp = decode_connect_response(&conn.body)
            .map_err(|e| bad_data(format!("connect response: {e}")))?;
        if resp.timeout_ms <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "server refused the session",
            ));
        }
        conn.session_id = resp.session_id;
        conn.passwd = resp.passwd;
        Ok(conn)
    }

    /// What resumes this session elsewhere, given the highest zxid seen.
    pub fn resume(&self, last_zxid: i64) -> Resume {
        Resume {
            session_id: self.session_id,
            passwd: self.passwd.clone(),
            last_zxid,
        }
    }

    /// Encodes one request into the write buffer (not yet flushed) and
    /// returns its xid and opcode.
    pub fn queue(&mut self, request: &Request) -> io::Result<(i32, OpCode)> {
        let op = request_op(request);
        let xid = self.next_xid;
        // xids stay positive: negative ones are reserved for pings, auth, etc.
        self.next_xid = if self.next_xid == i32::MAX {
            1
        } else {
            self.next_xid + 1
        };
        self.scratch.clear();
        encode_request(
            &RequestHeader { xid, op: op.code() },
            request,
            &mut self.scratch,
        );
        self.out.extend_from_slice(&self.scratch);
        if self.out.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok((xid, op))
    }

    pub fn flush(&mut self) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(&self.out)?;
        self.out.clear();
        stream.flush()
    }

    /// Reads one frame into `self.body`.
    fn read_frame(&mut self) -> io::Result<()> {
        let mut len = [0u8; 4];
        self.reader.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_FRAME)
            .ok_or_else(|| bad_data(format!("bad frame length {len}")))?;
        self.body.clear();
        self.body.resize(len, 0);
        self.reader.read_exact(&mut self.body)
    }

    /// Reads frames until a reply or notification (pings are skipped) and
    /// returns its header; the whole body stays readable via `body()`.
    pub fn read_reply(&mut self) -> io::Result<ReplyHeader> {
        loop {
            self.read_frame()?;
            let header = decode_reply_header(&self.body)
                .map_err(|e| bad_data(format!("reply header: {e}")))?;
            if header.xid != PING_XID {
                return Ok(header);
            }
        }
    }

    /// Reads the reply to `xid`, skipping notifications.
    pub fn read_reply_to(&mut self, xid: i32) -> io::Result<ReplyHeader> {
        loop {
            let header = self.read_reply()?;
            if header.xid == NOTIFICATION_XID {
                continue;
            }
            if header.xid != xid {
                return Err(bad_data(format!(
                    "reply xid {} but expected {xid}",
                    header.xid
                )));
            }
            return Ok(header);
        }
    }

    /// The body of the last frame read (header included).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Sends a request and waits for its reply; returns the error code.
    pub fn call(&mut self, request: &Request) -> io::Result<i32> {
        let (xid, _) = self.queue(request)?;
        self.flush()?;
        Ok(self.read_reply_to(xid)?.err)
    }

    /// Closes the session politely (closeSession, then the socket).
    pub fn close(mut self) -> io::Result<i32> {
        self.call(&Request::CloseSession)
    }
}
