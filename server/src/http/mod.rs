//! The server's two small HTTP endpoints: the AdminServer (`admin.*`,
//! port 8080: Apache ZooKeeper's commands as JSON, in `commands`) and the
//! Prometheus scrape endpoint (`metricsProvider.*`, port 7000: `/metrics`, in
//! `metrics`). This file is the HTTP/1.1 server both run on.
//!
//! It is not on the client path and has no async runtime: one acceptor
//! thread hands accepted sockets to a bounded queue drained by a fixed pool
//! of worker threads, each answering one request per connection (the answer
//! carries `Connection: close`). `httparse` parses the request head.
//! Invariants: every connection, queue and buffer has a bound — at most
//! [`HttpLimits::workers`] requests are served at once and
//! [`HttpLimits::queued_connections`] wait (more are answered 503 at once),
//! a request head is at most [`MAX_HEAD_BYTES`] (431 beyond), request bodies
//! are never read, and each read or write waits at most the idle timeout
//! (`admin.idleTimeout`). Bytes from the network are untrusted: nothing here
//! panics on them. Only GET and HEAD are served (405 otherwise).

pub mod commands;
mod json;
pub mod metrics;

use crate::config::Config;
use anyhow::Context;
use commands::{AdminServer, AdminSource};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use metrics::{MetricsEndpoint, MetricsSource};
use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The largest request line plus headers accepted. Admin and scrape requests
/// are a few hundred bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Headers parsed per request; more is a 431 like an oversized head.
const MAX_HEADERS: usize = 32;

/// How a server bounds its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Threads answering requests.
    pub workers: usize,
    /// Accepted connections waiting for a worker; beyond, 503.
    pub queued_connections: usize,
    /// The longest a connection may stay silent while we read its request,
    /// or refuse our answer (the reference's `admin.idleTimeout`).
    pub idle_timeout: Duration,
}

impl HttpLimits {
    pub fn with_idle_timeout(idle_timeout: Duration) -> HttpLimits {
        HttpLimits {
            workers: 2,
            queued_connections: 16,
            idle_timeout,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Other,
}

/// One parsed request: the method, the percent-decoded path, and the query
/// parameters in order (decoded; `+` is a space, as in an HTML form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl Request {
    /// The first value of query parameter `name`, as a servlet's
    /// `getParameter` gives it.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status: 200,
            content_type,
            body: body.into(),
        }
    }

    /// A short plain-text error page.
    pub fn error(status: u16) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{status} {}\n", reason(status)).into_bytes(),
        }
    }
}

/// What answers requests. Called on a worker thread; must not panic.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &Request) -> Response;
}

/// A running endpoint. [`HttpServer::stop`] (or drop) stops accepting.
pub struct HttpServer {
    name: &'static str,
    local_addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    listener: Arc<TcpListener>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves `handler` on `listener` (already bound, so that a taken port
    /// is the caller's start-up error). Threads are named `<name>-accept`
    /// and `<name>-<n>`.
    pub fn start(
        name: &'static str,
        listener: TcpListener,
        limits: HttpLimits,
        handler: Arc<dyn Handler>,
    ) -> io::Result<HttpServer> {
        let local_addr = listener.local_addr()?;
        let listener = Arc::new(listener);
        let stopping = Arc::new(AtomicBool::new(false));
        let (queue, accepted) = crossbeam_channel::bounded(limits.queued_connections.max(1));
        for worker in 0..limits.workers.max(1) {
            let accepted: Receiver<TcpStream> = accepted.clone();
            let handler = Arc::clone(&handler);
            std::thread::Builder::new()
                .name(format!("{name}-{worker}"))
                .spawn(move || {
                    // Ends when the acceptor drops the queue's sender.
                    for stream in accepted {
                        serve_connection(stream, limits.idle_timeout, handler.as_ref());
                    }
                })?;
        }
        let acceptor = {
            let listener = Arc::clone(&listener);
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name(format!("{name}-accept"))
                .spawn(move || accept_loop(name, &listener, &stopping, queue))?
        };
        tracing::info!(endpoint = name, address = %local_addr, "serving HTTP");
        Ok(HttpServer {
            name,
            local_addr,
            stopping,
            listener,
            acceptor: Some(acceptor),
        })
    }

    /// Stops accepting and waits for the acceptor. A worker finishes the
    /// request in hand (bounded by the idle timeout) and then exits; it is not
    /// waited for, so shutdown never waits on a slow HTTP client.
    pub fn stop(mut self) {
        self.stop_accepting();
    }

    fn stop_accepting(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        wake_acceptor(&self.listener, self.local_addr);
        if acceptor.join().is_err() {
            tracing::warn!(endpoint = self.name, "HTTP acceptor panicked");
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_accepting();
    }
}

/// The reference's Prometheus endpoint keeps Jetty's default idle timeout.
const METRICS_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The configured endpoints' sockets, bound before recovery so that a port
/// in use stops start-up at once, as it stops the reference.
pub struct Endpoints {
    admin: Option<TcpListener>,
    metrics: Option<TcpListener>,
    command_url: String,
    admin_idle_timeout: Duration,
}

/// Binds the AdminServer (`admin.enableServer`, default on) and the
/// Prometheus endpoint (when `metricsProvider.className` names it).
pub fn bind(config: &Config) -> anyhow::Result<Endpoints> {
    let admin = if config.admin_enable_server {
        Some(
            bind_listener(&config.admin_server_address, config.admin_server_port).with_context(
                || {
                    format!(
                "cannot start the AdminServer on {}:{} (admin.serverAddress, admin.serverPort; \
                 admin.enableServer=false turns it off)",
                config.admin_server_address, config.admin_server_port
            )
                },
            )?,
        )
    } else {
        None
    };
    let metrics = match config.prometheus_endpoint()? {
        Some(endpoint) => Some(bind_listener(&endpoint.host, endpoint.port).with_context(|| {
            format!(
                "cannot start the Prometheus endpoint on {}:{} (metricsProvider.httpHost, metricsProvider.httpPort)",
                endpoint.host, endpoint.port
            )
        })?),
        None => None,
    };
    Ok(Endpoints {
        admin,
        metrics,
        command_url: config.admin_command_url.clone(),
        admin_idle_timeout: Duration::from_millis(u64::from(config.admin_idle_timeout_ms)),
    })
}

fn bind_listener(host: &str, port: u16) -> io::Result<TcpListener> {
    let mut last_error = io::Error::new(
        io::ErrorKind::NotFound,
        "the host name resolves to no address",
    );
    for address in (host, port).to_socket_addrs()? {
        match TcpListener::bind(address) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

impl Endpoints {
    /// Starts serving what was bound, from `source`.
    pub fn start<S: AdminSource + MetricsSource + 'static>(
        self,
        source: Arc<S>,
    ) -> anyhow::Result<Running> {
        let mut servers = Vec::new();
        if let Some(listener) = self.admin {
            let handler = AdminServer::new(source.clone(), &self.command_url);
            let limits = HttpLimits::with_idle_timeout(self.admin_idle_timeout);
            servers.push(
                HttpServer::start("admin-http", listener, limits, Arc::new(handler))
                    .context("cannot start the AdminServer threads")?,
            );
        }
        if let Some(listener) = self.metrics {
            let handler = MetricsEndpoint::new(source);
            let limits = HttpLimits::with_idle_timeout(METRICS_IDLE_TIMEOUT);
            servers.push(
                HttpServer::start("metrics-http", listener, limits, Arc::new(handler))
                    .context("cannot start the Prometheus endpoint threads")?,
            );
        }
        Ok(Running(servers))
    }
}

/// The endpoints being served; [`Running::stop`] stops them.
pub struct Running(Vec<HttpServer>);

impl Running {
    pub fn stop(self) {
        for server in self.0 {
            server.stop();
        }
    }
}

/// Unblocks an `accept` in progress: shutting a listening socket down makes
/// Linux's `accept` fail at once; elsewhere, a connection to ourselves does.
fn wake_acceptor(listener: &TcpListener, local_addr: SocketAddr) {
    use std::os::fd::AsRawFd;
    // SAFETY: shutdown on a socket we own; it touches nothing else.
    let shut = unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) } == 0;
    if !shut {
        let mut target = local_addr;
        if target.ip().is_unspecified() {
            target.set_ip(match target {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&target, Duration::from_secs(1));
    }
}

fn accept_loop(
    name: &'static str,
    listener: &TcpListener,
    stopping: &AtomicBool,
    queue: Sender<TcpStream>,
) {
    loop {
        let accepted = listener.accept();
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, _peer)) => match queue.try_send(stream) {
                Ok(()) => {}
                Err(TrySendError::Full(stream)) => refuse_busy(stream),
                Err(TrySendError::Disconnected(_)) => return,
            },
            Err(error) => {
                // Out of file descriptors and the like: back off instead of
                // spinning; the listener itself stays usable.
                tracing::warn!(endpoint = name, "HTTP accept failed: {error}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Every worker is busy and the queue is full: say so without waiting.
fn refuse_busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = write_response(&mut stream, &Response::error(503), false);
    let _ = stream.shutdown(Shutdown::Both);
}

/// Reads one request, answers it and closes the connection.
fn serve_connection(mut stream: TcpStream, idle_timeout: Duration, handler: &dyn Handler) {
    // A zero timeout would mean "block forever" to the socket API.
    let timeout = Some(idle_timeout.max(Duration::from_millis(1)));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return;
    }
    let _ = stream.set_nodelay(true);
    let response = match read_head(&mut stream) {
        Ok(Some(head)) => match parse_head(&head) {
            Ok(request) if request.method == Method::Other => {
                Some((Response::error(405), request.method))
            }
            Ok(request) => Some((handler.handle(&request), request.method)),
            Err(status) => Some((Response::error(status), Method::Get)),
        },
        Ok(None) => Some((Response::error(431), Method::Get)),
        // Silent past the idle timeout, or gone: nothing to answer.
        Err(_) => None,
    };
    if let Some((response, method)) = response {
        let _ = write_response(&mut stream, &response, method != Method::Head);
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// The bytes up to and including the blank line that ends the head;
/// `Ok(None)` if the head passes [`MAX_HEAD_BYTES`].
fn read_head(stream: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let searched_from = head.len().saturating_sub(3);
        head.extend_from_slice(chunk.get(..read).unwrap_or_default());
        if let Some(end) = find_head_end(&head, searched_from) {
            if end > MAX_HEAD_BYTES {
                return Ok(None);
            }
            head.truncate(end);
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD_BYTES {
            return Ok(None);
        }
    }
}

/// The end of `\r\n\r\n` (or a bare `\n\n`) at or after `from`.
fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    let tail = bytes.get(from..)?;
    tail.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| from + at + 4)
        .or_else(|| {
            tail.windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| from + at + 2)
        })
}

/// Parses a complete request head; an error is the status to answer.
fn parse_head(head: &[u8]) -> Result<Request, u16> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(400),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    }
    let method = match parsed.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => Method::Other,
    };
    let target = parsed.path.ok_or(400u16)?;
    // An absolute-form target (`http://host/path`) names the path after the host.
    let target = match target.find("://") {
        Some(scheme_end) => {
            let after = target.get(scheme_end + 3..).unwrap_or_default();
            after
                .find('/')
                .and_then(|at| after.get(at..))
                .unwrap_or("/")
        }
        None => target,
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    };
    let path = percent_decode(path, false).ok_or(400u16)?;
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(key, true)?, percent_decode(value, true)?))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or(400u16)?;
    Ok(Request {
        method,
        path,
        query,
    })
}

/// `%XX` escapes (and, in a query, `+` for a space) decoded; `None` if an
/// escape is malformed or the result is not UTF-8.
fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'%' => {
                let hex = bytes.get(index + 1..index + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                index += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                index += 1;
            }
            _ => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn write_response(stream: &mut impl Write, response: &Response, with_body: bool) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes())?;
    if with_body {
        stream.write_all(&response.body)?;
    }
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Handler for Echo {
        fn handle(&self, request: &Request) -> Response {
            let query: Vec<String> = request
                .query
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            Response::ok(
                "text/plain",
                format!("{} {}", request.path, query.join("&")),
            )
        }
    }

    fn start(limits: HttpLimits) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        HttpServer::start("test-http", listener, limits, Arc::new(Echo)).expect("start")
    }

    /// Sends `request` raw and returns the whole answer.
    fn exchange(server: &HttpServer, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(server.local_addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(request).expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }

    fn status_and_body(answer: &str) -> (&str, &str) {
        let status = answer.split("\r\n").next().unwrap_or_default();
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        (status, body)
    }

    /// Path and query arrive decoded, first value kept in order; the answer
    /// closes the connection and says how long it is.
    #[test]
    fn get_decodes_path_and_query() {
        let server = start(HttpLimits::with_idle_timeout(Duration::from_secs(5)));
        let answer = exchange(
            &server,
            b"GET /commands/set%5Ftrace_mask?traceMask=5&x=a+b%21 HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(
            status_and_body(&answer),
            (
                "HTTP/1.1 200 OK",
                "/commands/set_trace_mask traceMask=5&x=a b!"
            )
        );
        assert!(answer.contains("Connection: close\r\n"));
        assert!(answer.contains("Content-Length: 43\r\n"));
        server.stop();
    }

    /// HEAD gets the headers only; other methods 405; garbage 400; a head
    /// past the bound 431 — and none of it stops the server.
    #[test]
    fn bad_and_other_requests_get_status_codes() {
        let server = start(HttpLimits::with_idle_timeout(Duration::from_secs(5)));
        let head = exchange(&server, b"HEAD /x HTTP/1.1\r\n\r\n");
        assert_eq!(status_and_body(&head), ("HTTP/1.1 200 OK", ""));
        assert!(head.contains("Content-Length: 3\r\n"));
        let post = exchange(&server, b"POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nab");
        assert_eq!(status_and_body(&post).0, "HTTP/1.1 405 Method Not Allowed");
        let garbage = exchange(&server, b"\x00\x01\x02 nonsense\r\n\r\n");
        assert_eq!(status_and_body(&garbage).0, "HTTP/1.1 400 Bad Request");
        let bad_escape = exchange(&server, b"GET /a%zz HTTP/1.1\r\n\r\n");
        assert_eq!(status_and_body(&bad_escape).0, "HTTP/1.1 400 Bad Request");
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES + 10));
        huge.extend_from_slice(b"\r\n\r\n");
        let huge = exchange(&server, &huge);
        assert_eq!(
            status_and_body(&huge).0,
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
        let fine = exchange(&server, b"GET /still HTTP/1.0\r\n\r\n");
        assert_eq!(status_and_body(&fine), ("HTTP/1.1 200 OK", "/still "));
        server.stop();
    }

    /// A client that connects and says nothing holds its worker only until
    /// the idle timeout; with every worker held and the queue full, a new
    /// connection is told 503 at once instead of waiting.
    #[test]
    fn silent_clients_time_out_and_overflow_is_refused() {
        let server = start(HttpLimits {
            workers: 1,
            queued_connections: 1,
            idle_timeout: Duration::from_millis(1500),
        });
        let silent = TcpStream::connect(server.local_addr).expect("connect");
        std::thread::sleep(Duration::from_millis(100));
        let queued = TcpStream::connect(server.local_addr).expect("connect");
        std::thread::sleep(Duration::from_millis(100));
        let refused = exchange(&server, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            status_and_body(&refused).0,
            "HTTP/1.1 503 Service Unavailable"
        );
        drop(queued);
        // The silent connection is dropped by the server after the timeout
        // (reads then see EOF), and the worker serves again.
        let mut silent = silent;
        silent
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut rest = Vec::new();
        let _ = silent.read_to_end(&mut rest);
        assert!(rest.is_empty(), "nothing is answered to a silent client");
        // The worker may not have taken the dropped queued connection off
        // the queue yet, and a full queue is answered 503: ask again for a
        // bounded while until the freed worker serves.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let served = loop {
            let served = exchange(&server, b"GET /after HTTP/1.1\r\n\r\n");
            if status_and_body(&served).0 != "HTTP/1.1 503 Service Unavailable"
                || std::time::Instant::now() > deadline
            {
                break served;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status_and_body(&served), ("HTTP/1.1 200 OK", "/after "));
        server.stop();
    }

    /// Stopping returns promptly even with no client ever connecting, and the
    /// port stops accepting.
    #[test]
    fn stop_unblocks_the_acceptor() {
        let server = start(HttpLimits::with_idle_timeout(Duration::from_secs(30)));
        let address = server.local_addr;
        let started = std::time::Instant::now();
        server.stop();
        assert!(started.elapsed() < Duration::from_secs(5));
        let answer = TcpStream::connect_timeout(&address, Duration::from_secs(1))
            .and_then(|mut stream| {
                stream.set_read_timeout(Some(Duration::from_secs(2)))?;
                stream.write_all(b"GET / HTTP/1.1\r\n\r\n")?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer)?;
                Ok(answer)
            })
            .unwrap_or_default();
        assert!(answer.is_empty(), "served after stop: {answer}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c", false).as_deref(), Some("a b+c"));
        assert_eq!(percent_decode("a%20b+c", true).as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%", true), None);
        assert_eq!(percent_decode("%4", true), None);
        assert_eq!(percent_decode("%ff", true), None, "not UTF-8");
        assert_eq!(
            parse_head(b"GET http://h:1/commands/ruok?a=1&a=2 HTTP/1.1\r\n\r\n")
                .map(|r| (r.path.clone(), r.param("a").map(str::to_string))),
            Ok(("/commands/ruok".to_string(), Some("1".to_string())))
        );
    }
}
