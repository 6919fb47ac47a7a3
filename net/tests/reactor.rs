//! The real `Reactor` on 127.0.0.1, with a fake pipeline thread in place of
//! `server::pipeline`: it preps and applies writes under the tree's write
//! lock, fires watches and posts events and replies through the mailboxes as
//! the applier does, and can hold a write (before taking the lock, or while
//! holding it, as a slow batch would) until the test releases it. Clients
//! speak hand-written jute frames over blocking sockets, and every wait is
//! bounded by a socket timeout.
//!
//! Pins DESIGN.md invariant 1 (a connection's replies in request order: a
//! read queued behind a write waits for the write's reply), invariant 2 (a
//! read that sees a change comes after the change's watch event on the wire),
//! the session rule (a read on a session that is gone or closing is answered
//! SessionExpired and its connection closed), that a malformed frame closes
//! only its own connection, and that four-letter words are answered on the
//! `fourlw` thread, so a slow one does not stall its I/O thread.

use crossbeam_channel::{Receiver, Sender};
use engine::apply::apply;
use engine::prep::{Prep, PrepConfig};
use engine::request::{Reply, Response};
use engine::session::{SessionSecret, SessionTracker};
use engine::tree::DataTree;
use engine::types::{ErrorCode, EventType, OpCode, SessionId, Zxid};
use net::clock::{Clock, SystemClock};
use net::fourlw::{
    self, ConnectionSnapshot, DumpSnapshot, FourLetterSource, FourLetterWord, ServerSnapshot,
    WatchSummary, Whitelist,
};
use net::jute::{self, put_bool, put_buffer, put_int, put_len, put_long, put_string, Reader};
use net::mailbox::{Mail, Postman, Submission};
use net::reactor::{FourLetterWords, Polls, Reactor};
use net::shared::{Settings, Shared};
use parking_lot::{Condvar, Mutex};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest any one step may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);
const MAX_FRAME_BYTES: usize = 1 << 20;
const VERSION: &str = "3.8.0-reactor-test, built on unknown";

// ---- the server under test -----------------------------------------------

#[derive(Clone, Copy)]
struct Options {
    io_threads: usize,
    /// `srvr` blocks inside the source until the test opens the gate.
    block_srvr: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            io_threads: 2,
            block_srvr: false,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hold {
    Off,
    /// Before the tree's write lock: reads go on meanwhile.
    BeforeLock,
    /// Holding the tree's write lock, as the applier does while it applies:
    /// no I/O thread can answer a read meanwhile.
    UnderLock,
}

struct Server {
    shared: Arc<Shared>,
    address: SocketAddr,
    reactor: Option<Reactor>,
    pipeline: Option<JoinHandle<()>>,
    /// Where each write waits in the fake pipeline: its xid is sent on
    /// `held`, and it is applied once `release` gets a message.
    hold: Arc<Mutex<Hold>>,
    held: Receiver<i32>,
    release: Sender<()>,
    gate: Arc<Gate>,
}

fn start(options: Options) -> Server {
    let (polls, mailboxes) = Polls::new(options.io_threads).expect("polls");
    let (submit, submissions) = crossbeam_channel::unbounded();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shared = Arc::new(Shared::new(
        DataTree::new(),
        SessionTracker::new(100, 1, clock.wall_ms()),
        mailboxes,
        submit,
        Settings {
            max_frame_bytes: MAX_FRAME_BYTES,
            connection_outstanding_limit: 2000,
            global_outstanding_limit: 10_000,
            max_outbound_bytes: 1 << 26,
            max_client_cnxns: 0,
            min_session_timeout_ms: 2_000,
            max_session_timeout_ms: 60_000,
            super_digest: None,
            read_limits: Default::default(),
            sasl: Default::default(),
            linearizable_reads: false,
        },
        clock,
        SessionSecret::new([7; 32]),
    ));
    let hold = Arc::new(Mutex::new(Hold::Off));
    let (held_tx, held) = crossbeam_channel::unbounded();
    let (release, release_rx) = crossbeam_channel::unbounded();
    let pipeline = {
        let shared = Arc::clone(&shared);
        let hold = Arc::clone(&hold);
        std::thread::Builder::new()
            .name("fake-pipeline".into())
            .spawn(move || fake_pipeline(&shared, &submissions, &hold, &held_tx, &release_rx))
            .expect("pipeline thread")
    };
    let gate = Arc::new(Gate::new(!options.block_srvr));
    let words = FourLetterWords {
        whitelist: Whitelist::All,
        source: Arc::new(Source {
            gate: Arc::clone(&gate),
        }),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let reactor =
        Reactor::start(Arc::clone(&shared), polls, listener, words).expect("start the reactor");
    Server {
        address: reactor.local_addr,
        shared,
        reactor: Some(reactor),
        pipeline: Some(pipeline),
        hold,
        held,
        release,
        gate,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Nothing the test left blocked may keep a thread from stopping.
        self.gate.open();
        *self.hold.lock() = Hold::Off;
        let _ = self.release.send(());
        self.shared.begin_shutdown();
        if let Some(reactor) = self.reactor.take() {
            reactor.join();
        }
        if let Some(pipeline) = self.pipeline.take() {
            let _ = pipeline.join();
        }
    }
}

/// The commit pipeline's behaviour at its seam, in one thread: sessions are
/// created at once; a write is prepped and applied under the tree's write
/// lock, its watch events and then its reply posted while the lock is held,
/// and the I/O threads woken after it is released.
fn fake_pipeline(
    shared: &Shared,
    submissions: &Receiver<Submission>,
    hold: &Mutex<Hold>,
    held: &Sender<i32>,
    release: &Receiver<()>,
) {
    let mut prep = Prep::new(Zxid::ZERO, PrepConfig::default());
    while !shared.is_shutting_down() {
        let Ok(submission) = submissions.recv_timeout(Duration::from_millis(20)) else {
            continue;
        };
        let now_ms = shared.clock.wall_ms();
        let hold = match &submission {
            Submission::Write { xid, .. } => Some((*xid, *hold.lock())),
            _ => None,
        };
        let wait = |xid: i32| {
            let _ = held.send(xid);
            let _ = release.recv_timeout(WAIT);
        };
        if let Some((xid, Hold::BeforeLock)) = hold {
            wait(xid);
        }
        let mut tree = shared.tree.write();
        if let Some((xid, Hold::UnderLock)) = hold {
            wait(xid);
        }
        let mut postman = Postman::new(&shared.mailboxes);
        match submission {
            Submission::CreateSession { conn, timeout_ms } => {
                let session = shared.sessions.lock().next_session_id();
                let txn = prep.prep_create_session(session, timeout_ms, now_ms);
                apply(&mut tree, &txn);
                prep.applied(txn.zxid);
                shared
                    .sessions
                    .lock()
                    .add(session, timeout_ms, shared.clock.monotonic_ms());
                shared.owners.lock().insert(session, conn);
                postman.post(Mail::SessionCreated {
                    conn,
                    session,
                    timeout_ms,
                });
            }
            Submission::Write {
                conn,
                session,
                xid,
                request,
                auth,
            } => match prep.prep(&tree, session, xid, &auth, &request, now_ms) {
                Ok(txn) => {
                    let outcome = apply(&mut tree, &txn);
                    prep.applied(txn.zxid);
                    shared.post_watch_events(&outcome.events, &mut postman);
                    postman.post(Mail::Reply {
                        conn,
                        xid,
                        zxid: txn.zxid,
                        reply: outcome.reply,
                    });
                }
                Err(code) => postman.post(Mail::Reply {
                    conn,
                    xid,
                    zxid: tree.last_zxid(),
                    reply: Reply::error(code),
                }),
            },
            Submission::Sync { conn, xid, path } => postman.post(Mail::Reply {
                conn,
                xid,
                zxid: tree.last_zxid(),
                reply: Reply::ok(Response::Sync { path }),
            }),
            Submission::Rejected { conn, xid, err, .. } => postman.post(Mail::Reply {
                conn,
                xid,
                zxid: tree.last_zxid(),
                reply: Reply::error(err),
            }),
            Submission::Forwarded { .. } => unreachable!("only a quorum driver forwards"),
            Submission::Attach { .. } => {}
        }
        drop(tree);
        drop(postman);
    }
}

/// A gate the four-letter-word source can be made to wait at.
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
    /// Set once a render has reached the gate.
    reached: AtomicBool,
}

impl Gate {
    fn new(open: bool) -> Gate {
        Gate {
            open: Mutex::new(open),
            changed: Condvar::new(),
            reached: AtomicBool::new(false),
        }
    }

    fn pass(&self) {
        self.reached.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + 2 * WAIT;
        let mut open = self.open.lock();
        while !*open && Instant::now() < deadline {
            self.changed.wait_until(&mut open, deadline);
        }
    }

    fn open(&self) {
        *self.open.lock() = true;
        self.changed.notify_all();
    }

    fn wait_reached(&self) {
        let deadline = Instant::now() + WAIT;
        while !self.reached.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "no render reached the gate");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A fixed server for the words; `server()` (behind `srvr`) waits at the gate.
struct Source {
    gate: Arc<Gate>,
}

impl FourLetterSource for Source {
    fn version(&self) -> String {
        VERSION.to_string()
    }
    fn is_serving(&self) -> bool {
        true
    }
    fn is_read_only(&self) -> bool {
        false
    }
    fn server(&self) -> ServerSnapshot {
        self.gate.pass();
        ServerSnapshot {
            mode: "standalone".to_string(),
            last_zxid: 0x1_0000_0007,
            node_count: 5,
            ..ServerSnapshot::default()
        }
    }
    fn config(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn connections(&self) -> Vec<ConnectionSnapshot> {
        Vec::new()
    }
    fn dump(&self) -> DumpSnapshot {
        DumpSnapshot::default()
    }
    fn watches_by_session(&self) -> Vec<(i64, Vec<String>)> {
        Vec::new()
    }
    fn watches_by_path(&self) -> Vec<(String, Vec<i64>)> {
        Vec::new()
    }
    fn watch_summary(&self) -> WatchSummary {
        WatchSummary::default()
    }
    fn reset_connection_stats(&self) {}
    fn reset_server_stats(&self) {}
}

// ---- a client speaking jute by hand --------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Reply { xid: i32, err: i32, body: Vec<u8> },
    Event { event_type: i32, path: String },
}

impl Frame {
    /// The data of a getData reply.
    #[track_caller]
    fn data(&self) -> Vec<u8> {
        match self {
            Frame::Reply { err: 0, body, .. } => Reader::new(body)
                .read_buffer("data")
                .expect("getData reply")
                .unwrap_or_default(),
            other => panic!("expected a successful getData reply, got {other:?}"),
        }
    }
}

struct Client {
    stream: TcpStream,
    session: SessionId,
}

/// Opens a connection without a handshake.
fn open(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.address).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Opens a connection and creates a session on it.
fn connect(server: &Server) -> Client {
    let mut stream = open(server);
    let mut out = Vec::new();
    let start = jute::begin_frame(&mut out, 45);
    put_int(&mut out, 0); // protocol version
    put_long(&mut out, 0); // last zxid seen
    put_int(&mut out, 30_000); // session timeout
    put_long(&mut out, 0); // session id: a new one
    put_buffer(&mut out, Some(&[0; 16])); // password
    put_bool(&mut out, false); // read only
    jute::end_frame(&mut out, start);
    stream.write_all(&out).expect("send connect request");
    let body = read_frame(&mut stream).expect("connect response");
    let mut reader = Reader::new(&body);
    let _protocol = reader.read_int("protocol").expect("protocol");
    let timeout_ms = reader.read_int("timeout").expect("timeout");
    let session = reader.read_long("session").expect("session");
    assert_eq!(timeout_ms, 30_000);
    assert_ne!(session, 0, "the handshake created a session");
    Client {
        stream,
        session: SessionId(session),
    }
}

/// One frame's body, or the error that ended the wait (a timeout fails the
/// caller's `expect`).
fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut prefix = [0; 4];
    stream.read_exact(&mut prefix)?;
    let length = usize::try_from(i32::from_be_bytes(prefix)).expect("frame length");
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok(body)
}

impl Client {
    fn send(&mut self, frames: &[u8]) {
        self.stream.write_all(frames).expect("send");
    }

    #[track_caller]
    fn frame(&mut self) -> Frame {
        let body = read_frame(&mut self.stream).expect("a frame within the wait");
        let mut reader = Reader::new(&body);
        let xid = reader.read_int("xid").expect("xid");
        let _zxid = reader.read_long("zxid").expect("zxid");
        let err = reader.read_int("err").expect("err");
        if xid == -1 {
            let event_type = reader.read_int("type").expect("event type");
            let _state = reader.read_int("state").expect("state");
            let path = reader.read_string("path").expect("path");
            return Frame::Event { event_type, path };
        }
        Frame::Reply {
            xid,
            err,
            body: reader.rest().to_vec(),
        }
    }

    /// Nothing arrives for `QUIET`.
    fn is_quiet(&mut self) -> bool {
        quiet(&mut self.stream)
    }

    /// The server closed the connection (within `WAIT`).
    fn is_closed(&mut self) -> bool {
        closed(&mut self.stream)
    }
}

fn quiet(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(QUIET)).expect("read timeout");
    let mut byte = [0; 1];
    let outcome = match stream.peek(&mut byte) {
        Err(error) => matches!(
            error.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        Ok(_) => false,
    };
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    outcome
}

fn closed(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(error) => error.kind() == io::ErrorKind::ConnectionReset,
    }
}

/// Everything a connection receives until the server closes it.
fn read_all(stream: &mut TcpStream) -> String {
    let mut text = Vec::new();
    stream
        .read_to_end(&mut text)
        .expect("the answer, then end of stream, within the wait");
    String::from_utf8(text).expect("text")
}

#[track_caller]
fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn request(xid: i32, op: OpCode, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    let start = jute::begin_frame(&mut out, 64);
    put_int(&mut out, xid);
    put_int(&mut out, op.code());
    body(&mut out);
    jute::end_frame(&mut out, start);
    out
}

fn get_data(xid: i32, path: &str, watch: bool) -> Vec<u8> {
    request(xid, OpCode::GetData, |out| {
        put_string(out, path);
        put_bool(out, watch);
    })
}

fn set_data(xid: i32, path: &str, data: &[u8]) -> Vec<u8> {
    request(xid, OpCode::SetData, |out| {
        put_string(out, path);
        put_buffer(out, Some(data));
        put_int(out, -1);
    })
}

/// A persistent znode open to everyone.
fn create(xid: i32, path: &str, data: &[u8]) -> Vec<u8> {
    request(xid, OpCode::Create, |out| {
        put_string(out, path);
        put_buffer(out, Some(data));
        put_len(out, 1);
        put_int(out, engine::types::perms::ALL);
        put_string(out, "world");
        put_string(out, "anyone");
        put_int(out, 0);
    })
}

#[track_caller]
fn assert_ok_reply(frame: Frame, expected_xid: i32) {
    match frame {
        Frame::Reply { xid, err: 0, .. } if xid == expected_xid => {}
        other => panic!("expected an Ok reply to xid {expected_xid}, got {other:?}"),
    }
}

// ---- tests ---------------------------------------------------------------

/// Invariant 1: a read pipelined behind a write on the same connection is
/// answered only after the write's reply, however long the write takes, and
/// sees the write. Another connection's reads are not held up meanwhile.
#[test]
fn read_behind_a_write_waits_for_the_write_reply() {
    let server = start(Options::default());
    let mut a = connect(&server);
    let mut b = connect(&server);
    a.send(&create(1, "/a", b"v1"));
    assert_ok_reply(a.frame(), 1);

    *server.hold.lock() = Hold::BeforeLock;
    let mut frames = set_data(2, "/a", b"v2");
    frames.extend(get_data(3, "/a", false));
    a.send(&frames);
    assert_eq!(
        server.held.recv_timeout(WAIT),
        Ok(2),
        "the write reached the pipeline"
    );
    assert!(a.is_quiet(), "nothing is answered while the write is held");
    b.send(&get_data(1, "/a", false));
    assert_eq!(
        b.frame().data(),
        b"v1",
        "other connections are served meanwhile"
    );

    server.release.send(()).expect("release the write");
    assert_ok_reply(a.frame(), 2);
    let read = a.frame();
    assert!(matches!(read, Frame::Reply { xid: 3, .. }), "{read:?}");
    assert_eq!(read.data(), b"v2");
}

/// Invariant 2: reads that reach an I/O thread while the applier holds the
/// write lock for a change of a watched znode are answered after the change's
/// watch event, and see the change; reads before it see the old data. The
/// I/O thread drains its mailbox before it answers reads, under the same read
/// lock, so no read can overtake the event.
#[test]
fn watch_event_precedes_any_read_that_sees_the_change() {
    const READS: i32 = 50;
    let server = start(Options::default());
    let mut a = connect(&server);
    let mut b = connect(&server);
    a.send(&create(1, "/w", b"old"));
    assert_ok_reply(a.frame(), 1);
    a.send(&get_data(2, "/w", true));
    assert_eq!(a.frame().data(), b"old");

    *server.hold.lock() = Hold::UnderLock;
    b.send(&set_data(1, "/w", b"new"));
    assert_eq!(
        server.held.recv_timeout(WAIT),
        Ok(1),
        "the write holds the lock"
    );
    let mut reads = Vec::new();
    for xid in 100..100 + READS {
        reads.extend(get_data(xid, "/w", false));
    }
    a.send(&reads);
    // Parsed and queued, waiting for the read lock (the write is in flight).
    wait_until("the reads are queued", || {
        server.shared.outstanding.load(Ordering::SeqCst) == 1 + READS as usize
    });
    assert!(a.is_quiet(), "no read is answered under the write lock");
    server.release.send(()).expect("release the write");

    assert_eq!(
        a.frame(),
        Frame::Event {
            event_type: EventType::NodeDataChanged as i32,
            path: "/w".to_string()
        },
        "the event comes first"
    );
    for xid in 100..100 + READS {
        let reply = a.frame();
        assert!(
            matches!(reply, Frame::Reply { xid: got, .. } if got == xid),
            "{reply:?}"
        );
        assert_eq!(reply.data(), b"new");
    }
    assert_ok_reply(b.frame(), 1);
}

/// A session the tracker no longer has, or has marked closing, is not served:
/// a read on it is answered SessionExpired (-112) and the connection closed.
#[test]
fn read_on_a_gone_or_closing_session_is_session_expired_then_closed() {
    let server = start(Options::default());
    let mut gone = connect(&server);
    let mut closing = connect(&server);
    let mut live = connect(&server);
    server.shared.sessions.lock().remove(gone.session);
    server.shared.sessions.lock().set_closing(closing.session);

    for client in [&mut gone, &mut closing] {
        client.send(&get_data(7, "/", false));
        assert_eq!(
            client.frame(),
            Frame::Reply {
                xid: 7,
                err: ErrorCode::SessionExpired.code(),
                body: Vec::new()
            }
        );
        assert_eq!(ErrorCode::SessionExpired.code(), -112);
        assert!(
            client.is_closed(),
            "the connection is closed after the reply"
        );
    }
    live.send(&get_data(1, "/", false));
    assert!(matches!(live.frame(), Frame::Reply { xid: 1, err: 0, .. }));
}

/// A frame that cannot be decoded (shorter than a request header, or longer
/// than jute.maxbuffer) closes that one connection; the others go on.
#[test]
fn malformed_frame_closes_only_its_connection() {
    let server = start(Options::default());
    let mut short = connect(&server);
    let mut huge = connect(&server);
    let mut other = connect(&server);

    short.send(&[0, 0, 0, 4, 0, 0, 0, 1]);
    assert!(short.is_closed(), "a frame without a whole header closes");
    let length = i32::try_from(MAX_FRAME_BYTES + 1).expect("small");
    huge.send(&length.to_be_bytes());
    assert!(huge.is_closed(), "a frame over jute.maxbuffer closes");

    for xid in 1..=3 {
        other.send(&get_data(xid, "/", false));
        assert!(matches!(other.frame(), Frame::Reply { xid: got, err: 0, .. } if got == xid));
    }
    let mut late = connect(&server);
    late.send(&get_data(1, "/", false));
    assert!(matches!(late.frame(), Frame::Reply { xid: 1, err: 0, .. }));
}

/// Four-letter words are answered through the `fourlw` thread with the text
/// the renderer makes, byte for byte, and the connection is then closed.
#[test]
fn four_letter_words_are_answered_and_closed() {
    let server = start(Options::default());
    let mut ruok = open(&server);
    ruok.write_all(b"ruok").expect("send");
    assert_eq!(read_all(&mut ruok), "imok");

    let mut srvr = open(&server);
    // A client that shuts down its side after the word still gets the answer.
    srvr.write_all(b"srvr").expect("send");
    srvr.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let text = read_all(&mut srvr);
    let source = Source {
        gate: Arc::new(Gate::new(true)),
    };
    assert_eq!(
        text,
        fourlw::render(FourLetterWord::Srvr, &Whitelist::All, &source)
    );
    assert!(text.starts_with(&format!("Zookeeper version: {VERSION}\n")));
    assert!(text.contains("Zxid: 0x100000007\n"));
}

/// A four-letter word whose source blocks (`srvr` reading the disk, say)
/// does not stall the I/O thread that received it: with one I/O thread, a
/// session is created and a read answered while the word waits.
#[test]
fn slow_four_letter_word_does_not_stall_its_io_thread() {
    let server = start(Options {
        io_threads: 1,
        block_srvr: true,
    });
    let mut word = open(&server);
    word.write_all(b"srvr").expect("send");
    server.gate.wait_reached();

    let mut client = connect(&server);
    client.send(&get_data(1, "/", false));
    assert!(matches!(
        client.frame(),
        Frame::Reply { xid: 1, err: 0, .. }
    ));
    assert!(quiet(&mut word), "the word is still being answered");

    server.gate.open();
    assert!(read_all(&mut word).starts_with("Zookeeper version: "));
}
