//! The client-facing reactor: one `mio::Poll` event loop per I/O thread, each
//! owning its connections for life. Thread 0 also owns the listening socket
//! and deals accepted connections round-robin to every thread.
//!
//! A connection's requests are answered strictly in the order they arrived
//! (DESIGN.md invariant 1): reads are served on the I/O thread from the shared
//! tree, writes go to the pipeline, and a read queued behind a write waits
//! until that write's reply has come back. An I/O thread never blocks on disk
//! or on a lock held across I/O; the tree's read lock is held only while
//! answering reads from memory.
//!
//! Four-letter words are answered on one `fourlw` thread the reactor starts:
//! their source may read the data directories and `/proc` or walk the watch
//! registry, none of which may hold up an I/O thread. The I/O thread hands the
//! word over and reads nothing more from that connection; the text comes back
//! as `Mail::Text`, is written, and the connection is closed.
//!
//! Backpressure: a connection with `connection_outstanding_limit` requests
//! queued or in flight is not read from until they drain, nor is any connection
//! while the server has `global_outstanding_limit` outstanding; a connection
//! whose unsent replies pass `max_outbound_bytes` is closed.

use crate::fourlw::{self, FourLetterSource, FourLetterWord, Whitelist};
use crate::mailbox::{Mail, Mailbox, Submission};
use crate::proto::{self, ConnectResponse, Decoded};
use crate::shared::{ConnectionEntry, ReadIndexRequest, Shared};
use crate::stats::RequestKind;
use crate::tls::{SecurePort, Stream, TlsServer};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use engine::read::{self, ReadContext};
use engine::request::{Reply, Request, Response};
use engine::tree::DataTree;
use engine::types::{ErrorCode, Id, OpCode, SessionId, WatcherId, Zxid};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// The secure client port's listener, far above any connection serial.
const SECURE_LISTENER: Token = Token(usize::MAX - 1);
/// Connection serials start above the reserved tokens.
const FIRST_SERIAL: u64 = 2;
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Reads wait while a connection has this much unsent output, so a slow
/// reader throttles itself before it reaches `max_outbound_bytes`.
const OUTBOUND_SOFT_LIMIT_BYTES: usize = 1024 * 1024;
/// Four-letter words handed to the `fourlw` thread and not yet answered. One
/// past this is refused by closing its connection: monitoring that polls
/// faster than the words render gets no answer rather than an ever longer
/// queue.
const WORD_BACKLOG: usize = 1024;

/// What the reactor needs besides `Shared` to answer four-letter words.
pub struct FourLetterWords {
    pub whitelist: Whitelist,
    pub source: Arc<dyn FourLetterSource + Send + Sync>,
}

/// One poll per I/O thread, created before `Shared` so that its mailboxes can
/// hold the wakers.
pub struct Polls {
    polls: Vec<Poll>,
}

impl Polls {
    pub fn new(threads: usize) -> io::Result<(Polls, Vec<Mailbox>)> {
        assert!(
            (1..=64).contains(&threads),
            "io threads must be in 1..=64, got {threads}"
        );
        let mut polls = Vec::with_capacity(threads);
        let mut mailboxes = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = Poll::new()?;
            mailboxes.push(Mailbox::new(mio::Waker::new(poll.registry(), WAKER)?));
            polls.push(poll);
        }
        Ok((Polls { polls }, mailboxes))
    }
}

/// A four-letter word waiting for the `fourlw` thread.
struct WordJob {
    conn: WatcherId,
    word: FourLetterWord,
}

pub struct Reactor {
    threads: Vec<JoinHandle<()>>,
    /// Stops once every I/O thread has stopped (they hold its channel).
    words: JoinHandle<()>,
    /// The plain client port's address, or the secure port's when there is
    /// no plain port.
    pub local_addr: SocketAddr,
    /// The secure client port's address, if there is one.
    pub secure_addr: Option<SocketAddr>,
}

impl Reactor {
    /// Starts one thread per poll, thread 0 accepting on `listener`, and the
    /// `fourlw` thread that answers four-letter words.
    pub fn start(
        shared: Arc<Shared>,
        polls: Polls,
        listener: std::net::TcpListener,
        words: FourLetterWords,
    ) -> io::Result<Reactor> {
        Reactor::start_ports(shared, polls, Some(listener), None, words)
    }

    /// `start` with the plain client port, the secure one (TLS), or both;
    /// thread 0 accepts on each.
    pub fn start_ports(
        shared: Arc<Shared>,
        polls: Polls,
        listener: Option<std::net::TcpListener>,
        secure: Option<SecurePort>,
        words: FourLetterWords,
    ) -> io::Result<Reactor> {
        assert_eq!(
            polls.polls.len(),
            shared.mailboxes.len(),
            "one mailbox per poll"
        );
        let mut secure = match secure {
            Some(SecurePort { listener, server }) => {
                listener.set_nonblocking(true)?;
                Some((TcpListener::from_std(listener), server))
            }
            None => None,
        };
        let secure_addr = match &secure {
            Some((listener, _)) => Some(listener.local_addr()?),
            None => None,
        };
        let mut listener = match listener {
            Some(listener) => {
                listener.set_nonblocking(true)?;
                Some(TcpListener::from_std(listener))
            }
            None => None,
        };
        let local_addr = match (&listener, secure_addr) {
            (Some(listener), _) => listener.local_addr()?,
            (None, Some(address)) => address,
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "neither a client port nor a secure client port",
                ))
            }
        };
        let (word_jobs, jobs) = crossbeam_channel::bounded(WORD_BACKLOG);
        let words = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("fourlw".into())
                .spawn(move || answer_words(&shared, &words, &jobs))?
        };
        let mut threads = Vec::new();
        for (index, poll) in polls.polls.into_iter().enumerate() {
            let mut listener = listener.take();
            if let Some(listener) = listener.as_mut() {
                poll.registry()
                    .register(listener, LISTENER, Interest::READABLE)?;
            }
            let mut secure_listener = secure.take();
            if let Some((listener, _)) = secure_listener.as_mut() {
                poll.registry()
                    .register(listener, SECURE_LISTENER, Interest::READABLE)?;
            }
            let io = IoThread {
                index,
                poll,
                listener,
                secure_listener,
                handshakes: VecDeque::new(),
                shared: Arc::clone(&shared),
                words: word_jobs.clone(),
                conns: HashMap::new(),
                next_serial: FIRST_SERIAL,
                next_target: 0,
                dirty: Vec::new(),
                paused: Vec::new(),
                mail: Vec::new(),
                read_chunk: vec![0; READ_CHUNK_BYTES],
                clock: Instant::now(),
                monotonic_ms: shared.clock.monotonic_ms(),
                // Ticket 0 counts as passed: the first read waits for 1.
                fence: Fence {
                    next: 1,
                    ..Fence::default()
                },
            };
            let handle = std::thread::Builder::new()
                .name(format!("io-{index}"))
                .spawn(move || io.run())?;
            threads.push(handle);
        }
        Ok(Reactor {
            threads,
            words,
            local_addr,
            secure_addr,
        })
    }

    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
        let _ = self.words.join();
    }
}

/// The `fourlw` thread: renders each word and posts the text to the I/O
/// thread that owns the connection. Ends when every I/O thread has dropped
/// its sender.
fn answer_words(shared: &Shared, words: &FourLetterWords, jobs: &Receiver<WordJob>) {
    for WordJob { conn, word } in jobs.iter() {
        let text = fourlw::render(word, &words.whitelist, &*words.source);
        let mailbox = &shared.mailboxes[conn.thread()];
        mailbox.post(Mail::Text { conn, text });
        mailbox.wake();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Waiting for the ConnectRequest (or a four-letter word).
    Handshake,
    /// A new session is being created by the pipeline.
    Connecting,
    Open,
    /// A four-letter word is being answered on the `fourlw` thread: nothing
    /// more is read, and `Mail::Text` brings the answer.
    Word,
}

/// A request waiting its turn on its connection.
struct Pending {
    xid: i32,
    work: Work,
    received: Instant,
    /// Under linearizable reads, the thread's fence a read must wait for:
    /// the first asked after it arrived (`Fence`).
    fence: u64,
}

/// Linearizable reads (`Settings::linearizable_reads`): a read is answered
/// only after a fence asked after it arrived has passed, that is, once the
/// tree holds every txn committed before the fence was asked (the leader's
/// read index, confirmed by a quorum). One fence is asked at a time per I/O
/// thread and serves every read that arrived before it, so the cost of a
/// round is shared by all the reads of a round.
#[derive(Default)]
struct Fence {
    /// The ticket a read arriving now waits for: the next one asked.
    next: u64,
    /// The ticket asked and not answered yet.
    asked: Option<u64>,
    /// Every ticket up to this one passed.
    passed: u64,
    /// A read waits for `next`: ask it once `asked` is answered.
    wanted: bool,
    /// Connections with a read waiting on a fence.
    waiting: Vec<u64>,
}

enum Work {
    Request(Request),
    /// A frame the reference answers with an error code and keeps serving.
    Reject(ErrorCode),
    /// The same, for a write: the error still consumes a zxid, so it goes
    /// through the pipeline.
    RejectWrite(ErrorCode),
    /// An unknown opcode: Unimplemented with zxid -1, then close.
    Unknown,
    /// closeSession on a read-only connection: the session ends here (a
    /// read-only session) or is only detached (one from the quorum, which
    /// its leader will expire); OK, then close.
    CloseReadOnly,
}

impl Work {
    /// Writes and syncs go through the pipeline; everything else is answered
    /// here.
    fn goes_to_pipeline(&self) -> bool {
        match self {
            Work::Request(request) => request.is_write() || matches!(request, Request::Sync { .. }),
            Work::RejectWrite(_) => true,
            Work::Reject(_) | Work::Unknown | Work::CloseReadOnly => false,
        }
    }

    /// What a read-only server does instead: every write, check and sync is
    /// NotReadOnly before anything else is looked at, as the reference's
    /// read-only request processor answers by opcode alone.
    fn read_only(self) -> Work {
        match self {
            Work::Request(Request::CloseSession) => Work::CloseReadOnly,
            Work::Request(request)
                if request.is_write() || matches!(request, Request::Sync { .. }) =>
            {
                Work::Reject(ErrorCode::NotReadOnly)
            }
            Work::RejectWrite(_) => Work::Reject(ErrorCode::NotReadOnly),
            work => work,
        }
    }

    /// auth and sasl are how a connection authenticates, so
    /// `enforce.auth.enabled` lets them through, as the reference does;
    /// everything else (pings, closeSession, unknown opcodes) is refused.
    fn authenticates(&self) -> bool {
        matches!(
            self,
            Work::Request(Request::Sasl { .. } | Request::SetAuth { .. })
        )
    }
}

struct Connection {
    id: WatcherId,
    stream: Stream,
    entry: Arc<ConnectionEntry>,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    out_pos: usize,
    phase: Phase,
    /// The client's ConnectRequest carried the trailing readOnly flag; old
    /// clients that omit it get a response without it too.
    sent_read_only: bool,
    /// Attached while the server serves read-only: writes are refused with
    /// NotReadOnly, and closeSession only detaches.
    read_only: bool,
    session: SessionId,
    auth: Arc<Vec<Id>>,
    queue: VecDeque<Pending>,
    /// Requests handed to the pipeline: when each arrived, and its opcode.
    in_flight: VecDeque<(Instant, OpCode)>,
    /// Stopped reading because of a limit; resumed by `resume_paused`.
    read_paused: bool,
    /// Stop reading and close once the output is flushed.
    close_after_flush: bool,
    /// Already in this iteration's dirty list.
    scheduled: bool,
    /// The peer closed its side or the socket failed.
    dead: bool,
    /// Where this connection's SASL exchange stands.
    sasl: crate::sasl::Exchange,
}

impl Connection {
    fn outstanding(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    fn unsent(&self) -> usize {
        self.outbuf.len() - self.out_pos
    }
}

struct IoThread {
    index: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    /// The secure client port and its TLS configuration (thread 0).
    secure_listener: Option<(TcpListener, Arc<TlsServer>)>,
    /// TLS connections by handshake deadline, oldest first: each is closed
    /// if still handshaking then (`expire_handshakes`).
    handshakes: VecDeque<(Instant, u64)>,
    shared: Arc<Shared>,
    /// To the `fourlw` thread.
    words: Sender<WordJob>,
    conns: HashMap<u64, Connection>,
    next_serial: u64,
    next_target: usize,
    /// Connections with work this iteration: reads to pump, output to flush.
    dirty: Vec<u64>,
    /// Connections whose reading is paused by a limit.
    paused: Vec<u64>,
    mail: Vec<Mail>,
    /// Socket reads land here first; allocated once, because zeroing a
    /// fresh 64 KiB buffer on every read showed up in profiles.
    read_chunk: Vec<u8>,
    /// The time, read once per batch of work rather than per request: on
    /// VMs without a vDSO clock every read is a system call, and two per
    /// request showed up in profiles. Latencies are then accurate to one
    /// loop iteration.
    clock: Instant,
    /// `shared.clock`'s monotonic time at the same moment, for session
    /// liveness.
    monotonic_ms: i64,
    fence: Fence,
}

impl IoThread {
    fn read_clock(&mut self) {
        self.clock = Instant::now();
        self.monotonic_ms = self.shared.clock.monotonic_ms();
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            if self.shared.is_shutting_down() {
                break;
            }
            // Paused connections have no event to wake them when a limit
            // clears on another thread, so poll them at a short interval.
            let timeout = (!self.paused.is_empty()).then(|| Duration::from_millis(5));
            let timeout = self.handshake_timeout(timeout);
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(thread = self.index, %error, "poll failed; I/O thread stops");
                break;
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    SECURE_LISTENER => self.accept_secure(),
                    WAKER => self.take_incoming(),
                    Token(token) => {
                        let serial = token as u64;
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.fill(serial);
                        }
                        self.schedule(serial);
                    }
                }
            }
            self.expire_handshakes();
            self.resume_paused();
            self.serve();
            self.ask_fence();
            self.flush_dirty();
        }
        // An I/O thread that stops on its own (its poll failed) stops the
        // server: its connections would otherwise hang unanswered.
        self.shared.begin_shutdown();
        let serials: Vec<u64> = self.conns.keys().copied().collect();
        for serial in serials {
            self.close(serial, "server shutting down");
        }
    }

    fn schedule(&mut self, serial: u64) {
        if let Some(conn) = self.conns.get_mut(&serial) {
            if !conn.scheduled {
                conn.scheduled = true;
                self.dirty.push(serial);
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // Out of descriptors and the like: log and wait for the
                    // next readiness event rather than spin.
                    tracing::warn!(%error, "accept failed");
                    return;
                }
            };
            if !self.admit(peer) {
                continue;
            }
            let target = self.next_target % self.shared.mailboxes.len();
            self.next_target = self.next_target.wrapping_add(1);
            if target == self.index {
                self.register(Stream::Plain(stream), peer);
            } else {
                self.shared.mailboxes[target].hand_over(Stream::Plain(stream), peer);
            }
        }
    }

    /// Enforces `maxClientCnxns` per client address.
    fn admit(&self, peer: SocketAddr) -> bool {
        let limit = self.shared.settings.max_client_cnxns;
        let mut per_ip = self.shared.per_ip.lock();
        let count = per_ip.entry(peer.ip()).or_insert(0);
        if limit != 0 && *count >= limit {
            tracing::warn!(client = %peer.ip(), max = limit, "too many connections from one address; refusing");
            return false;
        }
        *count += 1;
        true
    }

    fn take_incoming(&mut self) {
        if self.index == 0 {
            self.move_client_port();
        }
        for (stream, peer) in self.shared.mailboxes[self.index].take_incoming() {
            self.register(stream, peer);
        }
    }

    /// `Shared::move_client_port`: accept on the new listener from now on.
    fn move_client_port(&mut self) {
        let Some(listener) = self.shared.client_port_move.lock().take() else {
            return;
        };
        let moved = (|| -> io::Result<SocketAddr> {
            listener.set_nonblocking(true)?;
            let mut listener = TcpListener::from_std(listener);
            let address = listener.local_addr()?;
            self.poll
                .registry()
                .register(&mut listener, LISTENER, Interest::READABLE)?;
            if let Some(mut old) = self.listener.replace(listener) {
                let _ = self.poll.registry().deregister(&mut old);
            }
            Ok(address)
        })();
        match moved {
            Ok(address) => {
                *self.shared.client_addr.lock() = Some(address);
                tracing::info!(%address, "client port moved");
            }
            Err(error) => {
                tracing::error!(%error, "cannot move the client port; keeping the old one")
            }
        }
    }

    fn register(&mut self, mut stream: Stream, peer: SocketAddr) {
        let serial = self.next_serial;
        self.next_serial += 1;
        let id = WatcherId::new(self.index, serial);
        let _ = stream.set_nodelay(true);
        if let Err(error) = self.poll.registry().register(
            &mut stream,
            Token(serial as usize),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!(%peer, %error, "could not register connection");
            self.release_ip(peer);
            return;
        }
        let auth = Arc::new(vec![Id::new("ip", &peer.ip().to_string())]);
        let entry = Arc::new(ConnectionEntry::new(peer, Arc::clone(&auth)));
        self.shared
            .connections
            .lock()
            .insert(id, Arc::clone(&entry));
        self.shared.stats.connection_opened();
        tracing::debug!(%peer, conn = id.0, "accepted connection");
        let conn = Connection {
            id,
            stream,
            entry,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            out_pos: 0,
            phase: Phase::Handshake,
            sent_read_only: true,
            read_only: false,
            session: SessionId(0),
            auth,
            queue: VecDeque::new(),
            in_flight: VecDeque::new(),
            read_paused: false,
            close_after_flush: false,
            scheduled: false,
            dead: false,
            sasl: crate::sasl::Exchange::new(),
        };
        if let Some(deadline) = conn.stream.handshake_deadline() {
            self.handshakes.push_back((deadline, serial));
        }
        self.conns.insert(serial, conn);
        // Data may already be waiting; edge-triggered readiness would not
        // report it again.
        self.fill(serial);
        self.schedule(serial);
    }

    fn release_ip(&self, peer: SocketAddr) {
        let mut per_ip = self.shared.per_ip.lock();
        if let Some(count) = per_ip.get_mut(&peer.ip()) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&peer.ip());
            }
        }
    }

    /// Reads from the socket and parses frames until the socket is drained or
    /// a limit pauses the connection.
    fn fill(&mut self, serial: u64) {
        self.clock = Instant::now();
        let mut chunk = std::mem::take(&mut self.read_chunk);
        self.fill_from(serial, &mut chunk);
        self.read_chunk = chunk;
    }

    fn fill_from(&mut self, serial: u64, chunk: &mut [u8]) {
        loop {
            let Some(conn) = self.conns.get_mut(&serial) else {
                return;
            };
            if conn.dead || conn.close_after_flush || conn.phase == Phase::Word {
                return;
            }
            if let Some(outcome) = conn.stream.take_established() {
                match outcome {
                    Ok(ids) if ids.is_empty() => {}
                    Ok(ids) => add_identities(conn, ids),
                    Err(_) => {
                        self.kill(serial, "x509 authentication failed");
                        return;
                    }
                }
            }
            match self.parse(serial) {
                ParseOutcome::Paused => {
                    self.pause(serial);
                    return;
                }
                ParseOutcome::Close(reason) => {
                    self.kill(serial, reason);
                    return;
                }
                ParseOutcome::NeedMore => {}
            }
            let Some(conn) = self.conns.get_mut(&serial) else {
                return;
            };
            // What was parsed may have ended the input (a word, a refused
            // handshake). Reading on could find the client's end of stream
            // and drop the connection before its answer is written: a client
            // that shuts down its side right after a word got no answer.
            if conn.close_after_flush || conn.phase == Phase::Word {
                return;
            }
            match conn.stream.read(chunk) {
                Ok(0) => {
                    self.kill(serial, "client closed the connection");
                    return;
                }
                Ok(n) => conn.inbuf.extend_from_slice(&chunk[..n]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    conn.read_paused = false;
                    return;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.kill(serial, "read failed");
                    return;
                }
            }
        }
    }

    fn pause(&mut self, serial: u64) {
        if let Some(conn) = self.conns.get_mut(&serial) {
            if !conn.read_paused {
                conn.read_paused = true;
                self.paused.push(serial);
            }
        }
    }

    fn resume_paused(&mut self) {
        if self.paused.is_empty() {
            return;
        }
        let paused = std::mem::take(&mut self.paused);
        for serial in paused {
            let Some(conn) = self.conns.get_mut(&serial) else {
                continue;
            };
            conn.read_paused = false;
            self.fill(serial);
            self.schedule(serial);
        }
    }

    /// Splits whole frames off the input buffer.
    fn parse(&mut self, serial: u64) -> ParseOutcome {
        let received = self.clock;
        let max_frame = self.shared.settings.max_frame_bytes;
        let limit = self.shared.settings.connection_outstanding_limit;
        let Some(conn) = self.conns.get_mut(&serial) else {
            return ParseOutcome::NeedMore;
        };
        let mut pos = 0;
        let outcome = loop {
            if conn.close_after_flush {
                break ParseOutcome::NeedMore;
            }
            if conn.outstanding() >= limit
                || conn.unsent() >= OUTBOUND_SOFT_LIMIT_BYTES
                || self.shared.over_global_limit()
            {
                break ParseOutcome::Paused;
            }
            let rest = &conn.inbuf[pos..];
            let Some(prefix) = rest.get(..4) else {
                break ParseOutcome::NeedMore;
            };
            let length = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
            if conn.phase == Phase::Handshake {
                if let Some(word) = fourlw::command_from_code(length) {
                    self.shared.stats.packet_received_bytes(4);
                    // Whatever follows the word is ignored, as the reference
                    // ignores it.
                    pos = conn.inbuf.len();
                    match self.words.try_send(WordJob {
                        conn: conn.id,
                        word,
                    }) {
                        Ok(()) => {
                            conn.phase = Phase::Word;
                            break ParseOutcome::NeedMore;
                        }
                        Err(TrySendError::Full(_)) => {
                            tracing::warn!(
                                peer = %conn.entry.remote, word = word.name(), backlog = WORD_BACKLOG,
                                "too many four-letter words waiting; closing the connection"
                            );
                            break ParseOutcome::Close("four-letter words backlog full");
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            break ParseOutcome::Close("server shutting down");
                        }
                    }
                }
            }
            let Ok(length) = usize::try_from(length) else {
                break ParseOutcome::Close("negative frame length");
            };
            if length > max_frame {
                tracing::warn!(
                    peer = %conn.entry.remote, length, max = max_frame,
                    "frame larger than jute.maxbuffer; closing the connection"
                );
                break ParseOutcome::Close("frame too large");
            }
            let Some(body) = rest.get(4..4 + length) else {
                break ParseOutcome::NeedMore;
            };
            pos += 4 + length;
            self.shared.stats.packet_received_bytes(4 + length as u64);
            conn.entry.stats.packet_received();
            if conn.phase == Phase::Handshake {
                let body = body.to_vec();
                if let Err(reason) = handshake(&self.shared, conn, &body) {
                    break ParseOutcome::Close(reason);
                }
                continue;
            }
            let (xid, work) = match proto::decode_request(body) {
                Ok(Decoded::Request(header, request)) => (header.xid, Work::Request(request)),
                Ok(Decoded::Rejected(header, _))
                    if OpCode::from_code(header.op) == Some(OpCode::Sasl) =>
                {
                    // The reference reads the sasl record as it arrives and
                    // drops the connection when it does not parse.
                    tracing::info!(peer = %conn.entry.remote, "malformed sasl request; closing the connection");
                    break ParseOutcome::Close("malformed sasl request");
                }
                Ok(Decoded::Rejected(header, code)) if header.rejection_consumes_zxid() => {
                    (header.xid, Work::RejectWrite(code))
                }
                Ok(Decoded::Rejected(header, code)) => (header.xid, Work::Reject(code)),
                Ok(Decoded::UnknownOp(header)) => {
                    tracing::info!(peer = %conn.entry.remote, op = header.op, "unknown opcode");
                    (header.xid, Work::Unknown)
                }
                Err(error) => {
                    tracing::info!(peer = %conn.entry.remote, %error, "malformed request; closing the connection");
                    break ParseOutcome::Close("malformed request");
                }
            };
            let work = if conn.read_only {
                work.read_only()
            } else {
                work
            };
            self.shared.outstanding.fetch_add(1, Ordering::Relaxed);
            conn.queue.push_back(Pending {
                xid,
                work,
                received,
                fence: self.fence.next,
            });
        };
        conn.inbuf.drain(..pos);
        outcome
    }

    /// Drains the mailbox and answers queued requests, under the tree's read
    /// lock (see `mailbox` for why the two go together).
    fn serve(&mut self) {
        if self.dirty.is_empty() && !self.shared.mailboxes[self.index].has_mail() {
            return;
        }
        self.read_clock();
        let shared = Arc::clone(&self.shared);
        let tree = shared.tree.read();
        self.shared.mailboxes[self.index].drain(&mut self.mail);
        let mut mail = std::mem::take(&mut self.mail);
        for item in mail.drain(..) {
            self.deliver(item);
        }
        self.mail = mail;
        let dirty = self.dirty.clone();
        for serial in dirty {
            self.pump(serial, &tree);
        }
    }

    /// Asks for the fence that reads wait for, if none is asked already.
    fn ask_fence(&mut self) {
        if !self.fence.wanted || self.fence.asked.is_some() {
            return;
        }
        let ticket = self.fence.next;
        self.fence.next += 1;
        self.fence.asked = Some(ticket);
        self.fence.wanted = false;
        let request = ReadIndexRequest {
            thread: self.index,
            ticket,
        };
        // The receiver lives as long as `shared`; a send cannot fail.
        let _ = self.shared.read_index.0.send(request);
    }

    /// A fence was answered: the reads waiting on it go on (or, if it could
    /// not pass, ask again; the member closes its connections when it stops
    /// serving).
    fn fence_answered(&mut self, ticket: u64, ok: bool) {
        if self.fence.asked == Some(ticket) {
            self.fence.asked = None;
        }
        if ok {
            self.fence.passed = self.fence.passed.max(ticket);
        }
        for serial in std::mem::take(&mut self.fence.waiting) {
            self.schedule(serial);
        }
    }

    fn deliver(&mut self, mail: Mail) {
        let now = self.clock;
        let conn_id = match mail {
            Mail::ReadFence { ticket, ok, .. } => return self.fence_answered(ticket, ok),
            ref mail => mail.conn().expect("mail for a connection"),
        };
        let serial = conn_id.0 & ((1 << 56) - 1);
        let Some(conn) = self.conns.get_mut(&serial) else {
            return;
        };
        match mail {
            Mail::Reply {
                xid, zxid, reply, ..
            } => {
                let received = conn.in_flight.pop_front();
                assert!(received.is_some(), "reply without a request in flight");
                self.shared.outstanding.fetch_sub(1, Ordering::Relaxed);
                if let Some((received, op)) = received {
                    let latency = now.saturating_duration_since(received);
                    self.shared
                        .stats
                        .record_request_latency(latency, RequestKind::Update);
                    conn.entry.stats.record_op(op);
                    conn.entry.stats.record_reply(latency, xid, zxid.0);
                }
                let start = conn.outbuf.len();
                proto::encode_reply(xid, zxid.0, &reply, &mut conn.outbuf);
                self.shared
                    .stats
                    .record_response_frames(conn.outbuf.get(start..).unwrap_or_default());
                self.shared.stats.packet_sent();
                conn.entry.stats.packet_sent();
            }
            Mail::Event { event, .. } => {
                let start = conn.outbuf.len();
                proto::encode_event(&event, &mut conn.outbuf);
                self.shared
                    .stats
                    .record_response_frames(conn.outbuf.get(start..).unwrap_or_default());
                self.shared.stats.packet_sent();
                conn.entry.stats.packet_sent();
            }
            Mail::SessionCreated {
                session,
                timeout_ms,
                ..
            } => {
                conn.session = session;
                conn.phase = Phase::Open;
                conn.entry.session.store(session.0, Ordering::Relaxed);
                conn.entry.timeout_ms.store(timeout_ms, Ordering::Relaxed);
                let response = ConnectResponse {
                    protocol_version: 0,
                    timeout_ms,
                    session_id: session.0,
                    passwd: self.shared.session_secret.password(session).to_vec(),
                    read_only: false,
                };
                proto::encode_connect_response_for(
                    &response,
                    conn.sent_read_only,
                    &mut conn.outbuf,
                );
                self.shared.stats.packet_sent();
                conn.entry.stats.packet_sent();
                tracing::debug!(%session, timeout_ms, "session established");
            }
            Mail::Close { .. } => {
                conn.close_after_flush = true;
            }
            Mail::Text { text, .. } => {
                conn.outbuf.extend_from_slice(text.as_bytes());
                conn.close_after_flush = true;
            }
            Mail::ReadFence { .. } => unreachable!("taken above"),
        }
        self.schedule(serial);
    }

    /// Answers the connection's queued requests in order, stopping at a read
    /// that must wait for an earlier write.
    fn pump(&mut self, serial: u64, tree: &DataTree) {
        let (now, monotonic_ms) = (self.clock, self.monotonic_ms);
        let Some(conn) = self.conns.get_mut(&serial) else {
            return;
        };
        if conn.phase != Phase::Open || conn.dead {
            return;
        }
        let shared = &*self.shared;
        // A session that is closing or gone is not served: its requests are
        // answered SessionExpired and the connection closed (writes are
        // refused the same way by the sequencer). Without this a connection
        // whose session expired, or was closed from another connection, went
        // on answering reads and pings: a lock holder would believe it still
        // held its lock.
        let live = conn.queue.is_empty()
            || conn.session.0 == 0
            || shared.sessions.lock().touch(conn.session, monotonic_ms);
        while let Some(front) = conn.queue.front() {
            if conn.close_after_flush {
                break;
            }
            if !front.work.authenticates() && !shared.settings.sasl.admits(&conn.auth) {
                // `enforce.auth.enabled`: as the reference, refuse with
                // SessionClosedRequireSaslAuth (zxid 0, no body) and close
                // the connection; the session itself lives on until it
                // expires. Earlier replies go out first.
                if !conn.in_flight.is_empty() {
                    break;
                }
                let Some(pending) = conn.queue.pop_front() else {
                    break;
                };
                shared.outstanding.fetch_sub(1, Ordering::Relaxed);
                let schemes: Vec<&str> = conn.auth.iter().map(|id| id.scheme.as_str()).collect();
                tracing::warn!(peer = %conn.entry.remote, session = %conn.session, ?schemes,
                    enforced = ?shared.settings.sasl.enforce_auth_schemes,
                    "request from a connection not authenticated with an enforced scheme; closing the connection");
                proto::encode_reply(
                    pending.xid,
                    0,
                    &Reply::error(ErrorCode::SessionClosedRequireSaslAuth),
                    &mut conn.outbuf,
                );
                shared.stats.packet_sent();
                conn.entry.stats.packet_sent();
                conn.close_after_flush = true;
                break;
            }
            if front.work.goes_to_pipeline() {
                let Some(Pending {
                    xid,
                    work,
                    received,
                    ..
                }) = conn.queue.pop_front()
                else {
                    break;
                };
                let submission = match work {
                    Work::RejectWrite(err) => {
                        conn.in_flight.push_back((received, OpCode::Error));
                        Submission::Rejected {
                            conn: conn.id,
                            session: conn.session,
                            xid,
                            err,
                        }
                    }
                    Work::Request(request) => {
                        conn.in_flight
                            .push_back((received, proto::request_op(&request)));
                        match request {
                            Request::Sync { path } => Submission::Sync {
                                conn: conn.id,
                                xid,
                                path,
                            },
                            request => Submission::Write {
                                conn: conn.id,
                                session: conn.session,
                                xid,
                                request,
                                auth: Arc::clone(&conn.auth),
                            },
                        }
                    }
                    Work::Reject(_) | Work::Unknown | Work::CloseReadOnly => {
                        unreachable!("answered locally")
                    }
                };
                if shared.submit.send(submission).is_err() {
                    // The pipeline is gone: the server is stopping.
                    conn.close_after_flush = true;
                }
                continue;
            }
            if !conn.in_flight.is_empty() || conn.unsent() >= OUTBOUND_SOFT_LIMIT_BYTES {
                break;
            }
            if front.fence > self.fence.passed
                && shared.settings.linearizable_reads
                && !conn.read_only
                && matches!(&front.work, Work::Request(request) if request.is_read())
            {
                self.fence.wanted = true;
                self.fence.waiting.push(serial);
                break;
            }
            let Some(pending) = conn.queue.pop_front() else {
                break;
            };
            if !live {
                // Everything submitted earlier has been answered (the queue
                // waited for it), so a closeSession's own reply is not lost.
                shared.outstanding.fetch_sub(1, Ordering::Relaxed);
                tracing::info!(peer = %conn.entry.remote, session = %conn.session,
                    "request on an expired or closed session; closing the connection");
                proto::encode_reply(
                    pending.xid,
                    tree.last_zxid().0,
                    &Reply::error(ErrorCode::SessionExpired),
                    &mut conn.outbuf,
                );
                shared.stats.packet_sent();
                conn.entry.stats.packet_sent();
                conn.close_after_flush = true;
                break;
            }
            shared.outstanding.fetch_sub(1, Ordering::Relaxed);
            let last_zxid = tree.last_zxid();
            if let Work::Request(request) = &pending.work {
                conn.entry.stats.record_op(proto::request_op(request));
            }
            let start = conn.outbuf.len();
            match pending.work {
                Work::Unknown => {
                    proto::encode_reply(
                        pending.xid,
                        Zxid::NONE.0,
                        &Reply::error(ErrorCode::Unimplemented),
                        &mut conn.outbuf,
                    );
                    conn.close_after_flush = true;
                }
                Work::Reject(code) => {
                    proto::encode_reply(
                        pending.xid,
                        last_zxid.0,
                        &Reply::error(code),
                        &mut conn.outbuf,
                    );
                }
                Work::CloseReadOnly => {
                    let session = conn.session;
                    if shared.read_only_sessions.lock().remove(&session) {
                        shared.sessions.lock().remove(session);
                    }
                    proto::encode_reply(
                        pending.xid,
                        last_zxid.0,
                        &Reply::ok(Response::Empty),
                        &mut conn.outbuf,
                    );
                    conn.close_after_flush = true;
                }
                Work::RejectWrite(_) => unreachable!("goes to the pipeline"),
                Work::Request(request) => serve_local(shared, conn, tree, pending.xid, request),
            }
            shared
                .stats
                .record_response_frames(conn.outbuf.get(start..).unwrap_or_default());
            let latency = now.saturating_duration_since(pending.received);
            shared
                .stats
                .record_request_latency(latency, RequestKind::Read);
            shared.stats.packet_sent();
            conn.entry
                .stats
                .record_reply(latency, pending.xid, last_zxid.0);
            conn.entry.stats.packet_sent();
        }
        conn.entry
            .queued
            .store(conn.outstanding() as u64, Ordering::Relaxed);
        if conn.unsent() > shared.settings.max_outbound_bytes {
            tracing::warn!(peer = %conn.entry.remote, bytes = conn.unsent(),
                "client is not reading its replies; closing the connection");
            conn.dead = true;
        }
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for serial in dirty {
            let Some(conn) = self.conns.get_mut(&serial) else {
                continue;
            };
            conn.scheduled = false;
            if conn.dead {
                self.close(serial, "connection closed");
                continue;
            }
            while conn.out_pos < conn.outbuf.len() {
                match conn.stream.write(&conn.outbuf[conn.out_pos..]) {
                    Ok(0) => {
                        conn.dead = true;
                        break;
                    }
                    Ok(n) => conn.out_pos += n,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        conn.dead = true;
                        break;
                    }
                }
            }
            // TLS: what the session still holds must reach the socket too.
            let flushed = match conn.stream.flush() {
                Ok(()) => true,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => false,
                Err(_) => {
                    conn.dead = true;
                    false
                }
            };
            if conn.out_pos == conn.outbuf.len() {
                conn.outbuf.clear();
                conn.out_pos = 0;
                if conn.close_after_flush && flushed {
                    conn.dead = true;
                }
            } else if conn.out_pos > READ_CHUNK_BYTES && conn.out_pos * 2 > conn.outbuf.len() {
                conn.outbuf.drain(..conn.out_pos);
                conn.out_pos = 0;
            }
            if conn.dead {
                self.close(serial, "connection closed");
            } else if conn.unsent() < OUTBOUND_SOFT_LIMIT_BYTES
                && (conn.read_paused || (!conn.queue.is_empty() && conn.in_flight.is_empty()))
            {
                // Output drained: reading may resume on the next turn, and
                // reads the output limit held back in the queue are answered
                // then. Nothing else would wake a connection whose client
                // waits for those answers before sending more.
                if !self.paused.contains(&serial) {
                    self.paused.push(serial);
                }
            }
        }
    }

    fn kill(&mut self, serial: u64, reason: &'static str) {
        if let Some(conn) = self.conns.get_mut(&serial) {
            tracing::debug!(peer = %conn.entry.remote, reason, "closing connection");
            conn.dead = true;
        }
        self.schedule(serial);
    }

    fn close(&mut self, serial: u64, reason: &str) {
        let Some(mut conn) = self.conns.remove(&serial) else {
            return;
        };
        tracing::debug!(peer = %conn.entry.remote, session = %conn.session, reason, "connection closed");
        conn.stream.close_notify();
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.shared
            .outstanding
            .fetch_sub(conn.outstanding(), Ordering::Relaxed);
        self.shared.watches.remove_watcher(conn.id);
        self.shared.connections.lock().remove(&conn.id);
        self.shared.stats.connection_closed();
        self.release_ip(conn.entry.remote);
        if conn.session.0 != 0 {
            let mut owners = self.shared.owners.lock();
            if owners.get(&conn.session) == Some(&conn.id) {
                owners.remove(&conn.session);
            }
        }
        self.paused.retain(|s| *s != serial);
    }
}

enum ParseOutcome {
    NeedMore,
    Paused,
    Close(&'static str),
}

/// Handles the ConnectRequest: a new session goes to the pipeline; a known
/// session id with its password moves the session to this connection.
fn handshake(shared: &Shared, conn: &mut Connection, body: &[u8]) -> Result<(), &'static str> {
    let request = proto::decode_connect(body).map_err(|error| {
        tracing::info!(peer = %conn.entry.remote, %error, "malformed connect request");
        "malformed connect request"
    })?;
    conn.sent_read_only = request.read_only.is_some();
    if !shared.replica.is_serving() {
        // Electing or synchronizing: Apache closes the connection too, and
        // the client tries the next server of its connect string.
        tracing::debug!(peer = %conn.entry.remote, "not serving yet; closing");
        return Err("server not serving");
    }
    let read_only = shared.replica.is_read_only();
    if read_only && request.read_only != Some(true) {
        // The reference's read-only server refuses such a client the same
        // way: it goes on to the next server of its connect string.
        tracing::info!(peer = %conn.entry.remote, "serving read-only; refusing a client that did not ask for it");
        return Err("not a read-only client");
    }
    let last_zxid = shared.tree.read().last_zxid();
    if request.last_zxid_seen > last_zxid.0 {
        tracing::info!(
            peer = %conn.entry.remote,
            client_zxid = %Zxid(request.last_zxid_seen), server_zxid = %last_zxid,
            "client has seen a newer zxid than this server; refusing"
        );
        return Err("client ahead of server");
    }
    let timeout_ms = shared.settings.negotiate_timeout(request.timeout_ms);
    if request.session_id == 0 && read_only {
        // No txn can create it: the session is this server's alone, tracked
        // here until read-only mode ends.
        let session = {
            let mut sessions = shared.sessions.lock();
            let session = sessions.next_session_id();
            sessions.add(session, timeout_ms, shared.clock.monotonic_ms());
            session
        };
        shared.read_only_sessions.lock().insert(session);
        tracing::debug!(%session, "read-only session created");
        attach(shared, conn, session, timeout_ms, true);
        return Ok(());
    }
    if request.session_id == 0 {
        conn.phase = Phase::Connecting;
        shared
            .submit
            .send(Submission::CreateSession {
                conn: conn.id,
                timeout_ms,
            })
            .map_err(|_| "server shutting down")?;
        return Ok(());
    }
    let session = SessionId(request.session_id);
    let valid = shared.password_matches(session, &request.passwd)
        && shared
            .sessions
            .lock()
            .touch(session, shared.clock.monotonic_ms());
    if !valid {
        tracing::info!(peer = %conn.entry.remote, %session, "session expired or password wrong");
        let refusal = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: false,
        };
        proto::encode_connect_response_for(&refusal, conn.sent_read_only, &mut conn.outbuf);
        conn.close_after_flush = true;
        return Ok(());
    }
    attach(shared, conn, session, timeout_ms, read_only);
    if !read_only {
        // In an ensemble the leader learns the session is here now.
        let _ = shared.submit.send(Submission::Attach { session });
    }
    tracing::debug!(%session, read_only, "session reattached");
    Ok(())
}

/// Makes `conn` the session's connection (closing any earlier one) and
/// answers the ConnectRequest.
fn attach(
    shared: &Shared,
    conn: &mut Connection,
    session: SessionId,
    timeout_ms: i32,
    read_only: bool,
) {
    let previous = shared.owners.lock().insert(session, conn.id);
    if let Some(previous) = previous.filter(|previous| *previous != conn.id) {
        tracing::info!(%session, "session moved to a new connection; closing the old one");
        let mailbox = &shared.mailboxes[previous.thread()];
        mailbox.post(Mail::Close { conn: previous });
        mailbox.wake();
    }
    conn.session = session;
    conn.read_only = read_only;
    conn.phase = Phase::Open;
    conn.entry.session.store(session.0, Ordering::Relaxed);
    conn.entry.timeout_ms.store(timeout_ms, Ordering::Relaxed);
    let response = ConnectResponse {
        protocol_version: 0,
        timeout_ms,
        session_id: session.0,
        passwd: shared.session_secret.password(session).to_vec(),
        read_only,
    };
    proto::encode_connect_response_for(&response, conn.sent_read_only, &mut conn.outbuf);
    shared.stats.packet_sent();
    conn.entry.stats.packet_sent();
}

/// Adds authenticated identities to the connection (skipping ones it
/// holds), in both the copy its requests carry and the one watch events
/// are checked against.
fn add_identities(conn: &mut Connection, ids: Vec<Id>) {
    let merged = Arc::make_mut(&mut conn.auth);
    for id in ids {
        if !merged.contains(&id) {
            merged.push(id);
        }
    }
    *conn.entry.auth.lock() = Arc::clone(&conn.auth);
}

/// Answers a request that needs no txn: reads, pings, auth, watch management.
fn serve_local(
    shared: &Shared,
    conn: &mut Connection,
    tree: &DataTree,
    xid: i32,
    request: Request,
) {
    let last_zxid = tree.last_zxid().0;
    match request {
        Request::Ping => {
            proto::encode_reply(
                xid,
                last_zxid,
                &Reply::ok(Response::Empty),
                &mut conn.outbuf,
            );
        }
        Request::Sasl { token } => {
            // Replies carry zxid 0, as the reference's.
            let answer = conn.sasl.answer(
                &shared.settings.sasl,
                token.as_deref(),
                conn.entry.remote,
                conn.session,
            );
            match answer {
                crate::sasl::Answer::Token(token) => {
                    proto::encode_reply(
                        xid,
                        0,
                        &Reply::ok(Response::Sasl { token }),
                        &mut conn.outbuf,
                    );
                }
                crate::sasl::Answer::Authenticated { token, identities } => {
                    add_identities(conn, identities);
                    let reply = Reply::ok(Response::Sasl { token: Some(token) });
                    proto::encode_reply(xid, 0, &reply, &mut conn.outbuf);
                }
                crate::sasl::Answer::Refuse { code, close } => {
                    crate::sasl::encode_refusal(xid, code, &mut conn.outbuf);
                    conn.close_after_flush |= close;
                }
            }
        }
        Request::SetAuth { scheme, auth, .. } => {
            // `addauth x509` succeeds on a connection whose certificate gave
            // it an x509 identity, as the reference's provider does.
            let x509 = scheme == "x509" && conn.auth.iter().any(|id| id.scheme == "x509");
            let outcome = if x509 {
                Ok(Vec::new())
            } else {
                engine::acl::authenticate(&scheme, &auth, shared.settings.super_digest.as_deref())
            };
            match outcome {
                Ok(ids) => {
                    add_identities(conn, ids);
                    proto::encode_reply(xid, 0, &Reply::ok(Response::Empty), &mut conn.outbuf);
                }
                Err(code) => {
                    // The reference answers AuthFailed and drops the
                    // connection; the session itself lives on.
                    tracing::info!(peer = %conn.entry.remote, scheme, "authentication failed");
                    proto::encode_reply(xid, 0, &Reply::error(code), &mut conn.outbuf);
                    conn.close_after_flush = true;
                }
            }
        }
        request => {
            if let Request::GetData { path, .. } = &request {
                crate::failpoint::check(crate::failpoint::IO, path);
            }
            let context = ReadContext {
                session: conn.session,
                auth: &conn.auth,
                watcher: conn.id,
                watches: &shared.watches,
            };
            // setWatches fires what changed while the client was away at
            // once, ahead of its own reply, as the reference does.
            if let Some(events) = read::set_watches_request(tree, &context, &request) {
                for event in &events {
                    proto::encode_event(event, &mut conn.outbuf);
                }
                proto::encode_reply(
                    xid,
                    last_zxid,
                    &Reply::ok(Response::Empty),
                    &mut conn.outbuf,
                );
                return;
            }
            let reply = read::read_bounded(tree, &context, &request, &shared.settings.read_limits);
            proto::encode_reply(xid, last_zxid, &reply, &mut conn.outbuf);
        }
    }
}

/// The secure client port: accepting TLS connections and bounding their
/// handshakes. Everything after the handshake is the plain path.
impl IoThread {
    fn accept_secure(&mut self) {
        loop {
            let Some((listener, server)) = self.secure_listener.as_ref() else {
                return;
            };
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    tracing::warn!(%error, "accept failed on the secure client port");
                    return;
                }
            };
            let stream = match Stream::tls(stream, peer, server) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%peer, %error, "cannot start a TLS session");
                    continue;
                }
            };
            // After the session exists, so that a refusal here needs no
            // release of the address's count.
            if !self.admit(peer) {
                continue;
            }
            let target = self.next_target % self.shared.mailboxes.len();
            self.next_target = self.next_target.wrapping_add(1);
            if target == self.index {
                self.register(stream, peer);
            } else {
                self.shared.mailboxes[target].hand_over(stream, peer);
            }
        }
    }

    /// The poll timeout, shortened to wake for the oldest handshake
    /// deadline.
    fn handshake_timeout(&self, timeout: Option<Duration>) -> Option<Duration> {
        let Some(&(deadline, _)) = self.handshakes.front() else {
            return timeout;
        };
        let until = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(1);
        Some(timeout.map_or(until, |timeout| timeout.min(until)))
    }

    /// Closes TLS connections still handshaking at their deadline: a client
    /// that stalls, or sends half a handshake, holds a connection for at
    /// most `ssl.handshakeTimeoutMillis`.
    fn expire_handshakes(&mut self) {
        if self.handshakes.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(&(deadline, serial)) = self.handshakes.front() {
            if deadline > now {
                break;
            }
            self.handshakes.pop_front();
            let Some(conn) = self.conns.get(&serial) else {
                continue;
            };
            if conn.stream.is_handshaking() {
                tracing::info!(peer = %conn.entry.remote, "TLS handshake timed out; closing the connection");
                self.kill(serial, "TLS handshake timed out");
            }
        }
    }
}
