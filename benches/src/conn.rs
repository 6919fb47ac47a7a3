//! One ZooKeeper client connection over a blocking std socket: the connect
//! handshake, request frames out, reply frames in. Just enough client for a
//! load generator; it is not a client library (no reconnect, no watch
//! bookkeeping, no pings: benchmark traffic keeps the session alive).
//!
//! Invariant: every frame read is length-checked before its buffer grows, and
//! nothing the server sends can panic this code; a malformed frame is an
//! `io::Error` that ends the connection.

use engine::request::Request;
use engine::types::OpCode;
use net::proto::{
    decode_connect_response, decode_reply_header, encode_connect_request, encode_request,
    request_op, ConnectRequest, ReplyHeader, RequestHeader, NOTIFICATION_XID, PING_XID,
};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest reply frame accepted. Generous: `large` reads can approach the
/// server's 1 MiB jute.maxbuffer and getChildren during cleanup can exceed it.
const MAX_FRAME: usize = 64 << 20;

/// Session timeout asked for at connect.
const SESSION_TIMEOUT_MS: i32 = 30_000;

pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
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
    pub fn connect(server: &str) -> io::Result<Conn> {
        Conn::connect_timeout(server, Duration::from_secs(30))
    }

    /// `connect`, where connecting, the handshake and every later read and
    /// write give up after `timeout` (a timed-out read is an `io::Error`).
    pub fn connect_timeout(server: &str, timeout: Duration) -> io::Result<Conn> {
        let address = server.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{server}: no address"))
        })?;
        let stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut conn = Conn {
            reader: BufReader::with_capacity(256 << 10, stream.try_clone()?),
            writer: BufWriter::with_capacity(256 << 10, stream),
            next_xid: 1,
            body: Vec::new(),
            scratch: Vec::new(),
        };
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: SESSION_TIMEOUT_MS,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        };
        encode_connect_request(&req, &mut conn.scratch);
        conn.writer.write_all(&conn.scratch)?;
        conn.writer.flush()?;
        conn.read_frame()?;
        let resp = decode_connect_response(&conn.body)
            .map_err(|e| bad_data(format!("connect response: {e}")))?;
        if resp.timeout_ms <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "server refused the session",
            ));
        }
        Ok(conn)
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
        self.writer.write_all(&self.scratch)?;
        Ok((xid, op))
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
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
