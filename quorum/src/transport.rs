//! The peer transport: [`wire`](crate::wire) frames over TCP between the
//! servers of one ensemble, on the quorum and election ports of zoo.cfg. This
//! is the crate's edge, where threads and sockets live (behind the `transport`
//! feature); the [`Peer`](crate::Peer) state machine never sees it, only the
//! messages it delivers.
//!
//! # Shape
//!
//! For each peer and each [`Channel`] there is one *link*: a bounded queue of
//! encoded frames and one writer thread that owns the link's connection. Each
//! connection has one reader thread that decodes frames and forwards them to
//! the one inbound channel [`Transport::start`] returns. An acceptor thread per
//! listening port hands connections it accepted, once their handshake checks
//! out, to the right link. The peers are those listed in the config, then by
//! [`Transport::set_peers`], plus any stranger let in (below).
//!
//! # Rules
//!
//! - [`Transport::send`] never blocks: it encodes the message and queues the
//!   frame, or drops it and counts why ([`Stats`]). Zab tolerates loss (every
//!   step is resent), so a slow or absent peer costs its own messages only.
//!   Frames queued while a link has no connection are dropped too: they would
//!   be stale by the time it comes back.
//! - One connection per pair and channel, chosen without negotiation: only the
//!   higher `ServerId` dials (as in Apache's election), so the two sides never
//!   race. An accepted connection from a listed lower id is refused; a new one
//!   from a higher id replaces the old (the dialer only redials once its
//!   previous connection died, so the newest is the live one).
//! - A connection opens with a [`Handshake`] each way. The acceptor refuses
//!   (and logs) a wrong magic or version, an id that is not a listed peer
//!   (unless strangers are accepted), a different ensemble fingerprint or the
//!   wrong channel; the dialer checks the reply the same way. A handshake is
//!   read under a short timeout and a small fixed size, and at most
//!   `max_handshakes` run at once, so a stranger can hold no more than that.
//! - [`Transport::set_peers`] changes the listed peers while running. A newly
//!   listed peer gets its links; one no longer listed loses them (their
//!   connections close, and messages to it count as unroutable); if a listed
//!   peer's address changed and we dial it, we close the connection and dial
//!   the new address.
//! - With `accept_strangers`, the acceptor also takes a handshake from an id
//!   not listed: a server joining the ensemble before the members list it.
//!   We cannot dial it (we have no address), so the lower-id rule does not
//!   apply to it. Its links are made on demand, never dial, and last while
//!   they have a connection, whatever `set_peers` says meanwhile, so a joiner
//!   stays reachable while the change that adds it is proposed; at most
//!   `max_strangers` servers at once. Once listed, it has an address and the
//!   rules above apply from its next connection on. A joiner with a lower id
//!   than a member must reach it too: under `accept_strangers` a server also
//!   dials ("knocks on") each higher listed id while that peer has not
//!   dialed it. A peer that does not list it (it is joining, or was removed)
//!   takes the knock as a stranger; one that lists it refuses it quietly
//!   (the lower-id rule) and dials back.
//! - A frame over the channel's limit, a bad checksum, an undecodable payload
//!   or a message on the wrong channel closes that connection only.
//! - An idle writer sends a keepalive every `keepalive_interval`; a reader
//!   that hears nothing for `idle_timeout` closes the connection, so a
//!   half-open TCP connection is noticed. A dialer whose connection closed
//!   redials with exponential backoff between `backoff_min` and `backoff_max`.
//! - [`Transport::shutdown`] (or drop) closes every socket and joins every
//!   thread it started.
//!
//! The handshake identifies; it does not authenticate. Like Apache's quorum
//! ports without quorum SASL or TLS, anything that can reach the ports and
//! knows the config can claim to be a member, so the ports belong on a
//! network only the ensemble reaches.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use tracing::{debug, info, warn};

use crate::wire::{
    encode_frame, Channel, Envelope, FrameHeader, Handshake, Packet, WireError,
    ELECTION_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, HANDSHAKE_BYTES, HANDSHAKE_PREFIX_BYTES,
};
use crate::{Message, ServerId};

/// Queued frames written together, up to about this many bytes.
const WRITE_BATCH_BYTES: usize = 256 << 10;

/// A server's two peer addresses, `server.N=host:quorumPort:electionPort`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    pub quorum: SocketAddr,
    pub election: SocketAddr,
}

impl PeerAddr {
    pub fn of(&self, channel: Channel) -> SocketAddr {
        match channel {
            Channel::Election => self.election,
            Channel::Quorum => self.quorum,
        }
    }
}

/// Bounds and timeouts. Every queue and buffer the transport keeps is bounded
/// by one of these.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest frame payload on the quorum channel, either way: it must hold
    /// the largest NEWLEADER (DIFF txns, or the SNAP state). The election
    /// channel's limit is [`ELECTION_MAX_FRAME_BYTES`].
    pub max_frame_bytes: u32,
    /// Frames queued per peer and channel before `send` drops.
    pub queue_frames: usize,
    /// Bytes queued per peer and channel before `send` drops (a frame larger
    /// than this is still queued when the queue is empty).
    pub queue_bytes: usize,
    /// Received messages waiting for the driver; a full inbound channel holds
    /// readers back, and TCP holds back the senders.
    pub inbound_messages: usize,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// How long one write may make no progress before the connection closes.
    pub write_timeout: Duration,
    pub keepalive_interval: Duration,
    /// Silence after which a reader closes its connection; above
    /// `keepalive_interval`.
    pub idle_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Accepted connections whose handshake may be in progress at once.
    pub max_handshakes: usize,
    /// Servers not listed that may have links at once (with
    /// `accept_strangers`): each holds two links and their threads.
    pub max_strangers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_bytes: 64 << 20,
            queue_frames: 4096,
            queue_bytes: 128 << 20,
            inbound_messages: 4096,
            connect_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
            max_handshakes: 16,
            max_strangers: 8,
        }
    }
}

/// Everything [`Transport::start`] needs.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub me: ServerId,
    /// Where this server listens.
    pub listen: PeerAddr,
    /// Every other member of the ensemble; `me` is ignored if present.
    /// [`Transport::set_peers`] replaces it.
    pub peers: BTreeMap<ServerId, PeerAddr>,
    /// The ensemble's [`fingerprint`](crate::wire::fingerprint); peers must
    /// agree on it.
    pub fingerprint: u64,
    pub limits: Limits,
    /// Accept connections from servers not in `peers`: a server joining the
    /// ensemble connects before the members list it (see the module docs).
    pub accept_strangers: bool,
}

/// Counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames written to a socket (keepalives excluded).
    pub sent: u64,
    /// Messages delivered to the inbound channel.
    pub received: u64,
    /// Messages dropped because the peer's queue was full.
    pub dropped_full: u64,
    /// Messages dropped because the link had no connection.
    pub dropped_disconnected: u64,
    /// Messages to an id with no link: neither listed nor a connected
    /// stranger (or this server).
    pub dropped_unroutable: u64,
    /// Messages that cannot be framed: over the channel's limit, or a SNAP
    /// without the leader's state (a driver bug; logged).
    pub dropped_unframed: u64,
    /// Connections established (dialed or accepted), both channels.
    pub connections: u64,
    /// Connections refused at the handshake, either side.
    pub refused: u64,
    /// Connections closed for a bad frame.
    pub bad_frames: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    dropped_full: AtomicU64,
    dropped_disconnected: AtomicU64,
    dropped_unroutable: AtomicU64,
    dropped_unframed: AtomicU64,
    connections: AtomicU64,
    refused: AtomicU64,
    bad_frames: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What a link's writer receives.
enum Out {
    Frame(Vec<u8>),
    /// Look at the link again: a new accepted connection, a closed one, or
    /// shutdown.
    Wake,
}

/// One (peer, channel).
struct Link {
    peer: ServerId,
    channel: Channel,
    queue: Sender<Out>,
    queued_bytes: AtomicUsize,
    /// A connection the acceptor handed over, for the writer to adopt.
    accepted: Mutex<Option<Conn>>,
    connected: AtomicBool,
    /// Set once the link has left [`Members::links`]: its writer closes
    /// everything and exits. A link in the map is never retired, so whoever
    /// hands it a connection under the map's lock knows the writer will see
    /// it.
    retired: AtomicBool,
    /// The peer's address changed: a dialer drops its connection and dials
    /// the new one.
    redial: AtomicBool,
    /// With `accept_strangers`: a higher-id peer dialed this link's live
    /// connection, so it lists us and we need not knock (see the module
    /// docs). Cleared when the connection goes.
    dialed_by_them: AtomicBool,
}

impl Link {
    /// A link and its writer's end of the queue; `accepted` is a stranger's
    /// first connection, in place before its writer looks.
    fn new(
        peer: ServerId,
        channel: Channel,
        limits: &Limits,
        accepted: Option<Conn>,
    ) -> (Arc<Link>, Receiver<Out>) {
        let (queue, rx) = crossbeam_channel::bounded(limits.queue_frames.max(1));
        let link = Link {
            peer,
            channel,
            queue,
            queued_bytes: AtomicUsize::new(0),
            accepted: Mutex::new(accepted),
            connected: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            redial: AtomicBool::new(false),
            dialed_by_them: AtomicBool::new(false),
        };
        (Arc::new(link), rx)
    }

    fn wake(&self) {
        // A full queue wakes the writer anyway.
        let _ = self.queue.try_send(Out::Wake);
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.wake();
    }
}

/// The writer's side of a connection. The reader holds a clone of the socket
/// and the same `closed` flag; the registry holds a third, for shutdown.
struct Conn {
    id: u64,
    stream: TcpStream,
    closed: Arc<AtomicBool>,
}

/// The listed peers and every link, under one lock so that whether a peer
/// is listed and whether it has links change together.
#[derive(Default)]
struct Members {
    peers: BTreeMap<ServerId, PeerAddr>,
    /// The listed peers' links and the strangers'.
    links: BTreeMap<(ServerId, Channel), Arc<Link>>,
}

impl Members {
    /// Servers not listed that have a link.
    fn strangers(&self) -> BTreeSet<ServerId> {
        self.links
            .keys()
            .map(|&(peer, _)| peer)
            .filter(|peer| !self.peers.contains_key(peer))
            .collect()
    }
}

struct Shared {
    me: ServerId,
    fingerprint: u64,
    limits: Limits,
    accept_strangers: bool,
    /// Read on every send, written by `set_peers` and for strangers; never
    /// held across socket I/O or a blocking send.
    members: RwLock<Members>,
    inbound: Sender<(ServerId, Envelope)>,
    /// A link's connection went down: a wake-up for the driver, which may
    /// act on it sooner than its next tick (see [`Transport::link_down`]).
    link_down: (Sender<ServerId>, Receiver<ServerId>),
    stop: AtomicBool,
    counters: Counters,
    /// Every open socket, so shutdown can unblock its reader and writer.
    sockets: Mutex<BTreeMap<u64, TcpStream>>,
    next_conn: AtomicU64,
    handshakes: AtomicUsize,
    /// Writer and reader threads, joined at shutdown.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The acceptor of each channel (election, quorum) that is current: an
    /// acceptor whose number is no longer here stops (`Transport::rebind`).
    acceptors: [AtomicU64; 2],
}

fn channel_index(channel: Channel) -> usize {
    match channel {
        Channel::Election => 0,
        Channel::Quorum => 1,
    }
}

// A panicking thread cannot leave these maps half-updated: critical sections
// only insert, remove, take or clone, nothing that panics halfway.

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(rwlock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rwlock
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(rwlock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rwlock
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn link(&self, peer: ServerId, channel: Channel) -> Option<Arc<Link>> {
        read(&self.members).links.get(&(peer, channel)).cloned()
    }

    fn listed(&self, peer: ServerId) -> bool {
        read(&self.members).peers.contains_key(&peer)
    }

    /// Whether an accepted handshake from `peer` may go to a link: `true` for
    /// a listed peer, `false` for a stranger let in.
    fn admit(&self, members: &Members, peer: ServerId) -> Result<bool, Refusal> {
        if members.peers.contains_key(&peer) {
            return Ok(true);
        }
        if peer == self.me || !self.accept_strangers {
            return Err(Refusal::Stranger(peer.0));
        }
        let strangers = members.strangers();
        if !strangers.contains(&peer) && strangers.len() >= self.limits.max_strangers {
            return Err(Refusal::TooManyStrangers(self.limits.max_strangers));
        }
        Ok(false)
    }

    fn max_frame(&self, channel: Channel) -> u32 {
        match channel {
            Channel::Election => ELECTION_MAX_FRAME_BYTES.min(self.limits.max_frame_bytes),
            Channel::Quorum => self.limits.max_frame_bytes,
        }
    }

    /// Record a new socket; refused once shutdown has begun, so every socket
    /// shutdown must close is in the registry when it sweeps it.
    fn register(&self, stream: &TcpStream) -> io::Result<(u64, Arc<AtomicBool>)> {
        let clone = stream.try_clone()?;
        let mut sockets = lock(&self.sockets);
        if self.stopping() {
            return Err(io::Error::other("transport shut down"));
        }
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        sockets.insert(id, clone);
        Ok((id, Arc::new(AtomicBool::new(false))))
    }

    fn close(&self, id: u64, closed: &AtomicBool) {
        closed.store(true, Ordering::SeqCst);
        if let Some(stream) = lock(&self.sockets).remove(&id) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Spawn a thread joined at shutdown; `None` once shutdown has begun.
    fn spawn(self: &Arc<Self>, name: String, f: impl FnOnce() + Send + 'static) -> Option<()> {
        let mut threads = lock(&self.threads);
        if self.stopping() {
            return None;
        }
        threads.retain(|t| !t.is_finished());
        match thread::Builder::new().name(name).spawn(f) {
            Ok(handle) => {
                threads.push(handle);
                Some(())
            }
            Err(e) => {
                warn!(error = %e, "cannot spawn a peer connection thread");
                None
            }
        }
    }
}

/// A running transport. Dropping it shuts it down.
pub struct Transport {
    shared: Arc<Shared>,
    /// The acceptors; writers and readers are in `Shared::threads`.
    threads: Vec<JoinHandle<()>>,
    local: Mutex<PeerAddr>,
}

impl Transport {
    /// Bind both ports and start connecting to the peers. Returns the
    /// transport and the channel its received messages arrive on.
    pub fn start(
        config: TransportConfig,
    ) -> io::Result<(Transport, Receiver<(ServerId, Envelope)>)> {
        let TransportConfig {
            me,
            listen,
            peers,
            fingerprint,
            limits,
            accept_strangers,
        } = config;
        let election = TcpListener::bind(listen.election)?;
        let quorum = TcpListener::bind(listen.quorum)?;
        let local = PeerAddr {
            election: election.local_addr()?,
            quorum: quorum.local_addr()?,
        };
        // The acceptors poll so that shutdown needs no wake-up connection.
        election.set_nonblocking(true)?;
        quorum.set_nonblocking(true)?;

        let (inbound, received) = crossbeam_channel::bounded(limits.inbound_messages.max(1));
        let shared = Arc::new(Shared {
            me,
            fingerprint,
            limits,
            accept_strangers,
            members: RwLock::new(Members::default()),
            inbound,
            link_down: crossbeam_channel::bounded(64),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            sockets: Mutex::new(BTreeMap::new()),
            next_conn: AtomicU64::new(0),
            handshakes: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
            acceptors: [AtomicU64::new(0), AtomicU64::new(0)],
        });

        // From here on, an early return drops the transport, which stops
        // whatever did start.
        let mut transport = Transport {
            shared: Arc::clone(&shared),
            threads: Vec::new(),
            local: Mutex::new(local),
        };
        // The links exist before the acceptors, which would otherwise take
        // an early peer for a stranger.
        update_peers(&shared, peers)?;
        for (channel, listener) in [(Channel::Election, election), (Channel::Quorum, quorum)] {
            let shared = Arc::clone(&shared);
            transport.threads.push(
                thread::Builder::new()
                    .name(format!("peer-accept-{channel:?}"))
                    .spawn(move || accept_loop(&shared, channel, listener, 0))?,
            );
        }
        info!(me = me.0, election = %local.election, quorum = %local.quorum,
              peers = read(&shared.members).peers.len(), accept_strangers,
              "peer transport listening");
        Ok((transport, received))
    }

    /// The addresses actually bound (useful when `listen` had port 0).
    pub fn local_addr(&self) -> PeerAddr {
        *lock(&self.local)
    }

    /// Listen on `listen` instead, for a reconfiguration that moved this
    /// server: each port that changed is bound anew (an error leaves that
    /// one as it was) and its old listener closes; connections already made
    /// stay. Returns the addresses now bound.
    pub fn rebind(&self, listen: PeerAddr) -> io::Result<PeerAddr> {
        let shared = &self.shared;
        let mut local = lock(&self.local);
        for channel in Channel::ALL {
            let want = listen.of(channel);
            if want == local.of(channel) {
                continue;
            }
            let listener = TcpListener::bind(want)?;
            listener.set_nonblocking(true)?;
            let bound = listener.local_addr()?;
            let index = channel_index(channel);
            let number = shared.acceptors[index].fetch_add(1, Ordering::SeqCst) + 1;
            let thread_shared = Arc::clone(shared);
            shared
                .spawn(format!("peer-accept-{channel:?}"), move || {
                    accept_loop(&thread_shared, channel, listener, number)
                })
                .ok_or_else(|| io::Error::other("transport shut down"))?;
            info!(channel = ?channel, was = %local.of(channel), now = %bound,
                  "peer port moved");
            match channel {
                Channel::Election => local.election = bound,
                Channel::Quorum => local.quorum = bound,
            }
        }
        Ok(*local)
    }

    /// Replace the listed peers (`me` is ignored if present), for a
    /// reconfiguration: newly listed peers get their links, peers no longer
    /// listed lose theirs (their connections close), and a moved peer we
    /// dial is redialed at its new address. A stranger's links are left
    /// alone (see the module docs). Never blocks on the network.
    pub fn set_peers(&self, peers: BTreeMap<ServerId, PeerAddr>) {
        // A writer that cannot start was logged, and its peer is unroutable.
        let _ = update_peers(&self.shared, peers);
    }

    /// The listed peers (strangers excluded).
    pub fn peers(&self) -> BTreeMap<ServerId, PeerAddr> {
        read(&self.shared.members).peers.clone()
    }

    /// Queue a message for a peer; never blocks. See [`Stats`] for drops.
    pub fn send(&self, to: ServerId, message: Message) {
        self.send_envelope(to, message.into());
    }

    /// Queue a message with its attached SNAP state; never blocks.
    pub fn send_envelope(&self, to: ServerId, envelope: Envelope) {
        let shared = &self.shared;
        let channel = Channel::of(&envelope.message);
        let Some(link) = shared.link(to, channel) else {
            bump(&shared.counters.dropped_unroutable);
            debug!(to = to.0, "no such peer; message dropped");
            return;
        };
        let frame = match encode_frame(&Packet::Envelope(envelope), shared.max_frame(channel)) {
            Ok(frame) => frame,
            Err(e) => {
                bump(&shared.counters.dropped_unframed);
                warn!(to = to.0, error = %e, "message cannot be framed; dropped");
                return;
            }
        };
        let len = frame.len();
        let before = link.queued_bytes.fetch_add(len, Ordering::SeqCst);
        if before > 0 && before + len > shared.limits.queue_bytes {
            link.queued_bytes.fetch_sub(len, Ordering::SeqCst);
            bump(&shared.counters.dropped_full);
            return;
        }
        if link.queue.try_send(Out::Frame(frame)).is_err() {
            link.queued_bytes.fetch_sub(len, Ordering::SeqCst);
            bump(&shared.counters.dropped_full);
        }
    }

    /// Bytes queued for `peer` on `channel` and not yet written: a sender
    /// of many large frames (a SNAP stream) waits on this to stay within
    /// the queue's bound instead of having frames dropped.
    pub fn queued_bytes(&self, peer: ServerId, channel: Channel) -> Option<usize> {
        self.shared
            .link(peer, channel)
            .map(|link| link.queued_bytes.load(Ordering::SeqCst))
    }

    /// True while both channels to `peer` have a live connection.
    pub fn is_connected(&self, peer: ServerId) -> bool {
        Channel::ALL
            .iter()
            .all(|&channel| self.is_connected_on(peer, channel))
    }

    /// Receives a peer's id each time one of its links loses its connection
    /// (as [`is_connected_on`](Self::is_connected_on) turns false). Only a
    /// wake-up: when the driver is slow to look, further ones are dropped.
    pub fn link_down(&self) -> Receiver<ServerId> {
        self.shared.link_down.1.clone()
    }

    /// True while `channel` to `peer` has a live connection.
    pub fn is_connected_on(&self, peer: ServerId, channel: Channel) -> bool {
        self.shared
            .link(peer, channel)
            .is_some_and(|link| link.connected.load(Ordering::SeqCst))
    }

    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            sent: get(&c.sent),
            received: get(&c.received),
            dropped_full: get(&c.dropped_full),
            dropped_disconnected: get(&c.dropped_disconnected),
            dropped_unroutable: get(&c.dropped_unroutable),
            dropped_unframed: get(&c.dropped_unframed),
            connections: get(&c.connections),
            refused: get(&c.refused),
            bad_frames: get(&c.bad_frames),
        }
    }

    /// Close every connection and join every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let shared = &self.shared;
        shared.stop.store(true, Ordering::SeqCst);
        for stream in std::mem::take(&mut *lock(&shared.sockets)).into_values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let links: Vec<Arc<Link>> = read(&shared.members).links.values().cloned().collect();
        for link in links {
            link.wake();
        }
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
        // Writers and readers spawned before the stop flag; none can be
        // spawned after it.
        loop {
            let handles = std::mem::take(&mut *lock(&shared.threads));
            if handles.is_empty() {
                break;
            }
            for handle in handles {
                let _ = handle.join();
            }
        }
        info!(me = shared.me.0, "peer transport stopped");
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        if !self.shared.stopping() {
            self.stop();
        }
    }
}

/// Make the links match a new peer list (see [`Transport::set_peers`]);
/// an error if a new link's writer could not start.
fn update_peers(shared: &Arc<Shared>, mut peers: BTreeMap<ServerId, PeerAddr>) -> io::Result<()> {
    peers.remove(&shared.me);
    let mut removed = Vec::new();
    let mut moved = Vec::new();
    let mut added = Vec::new();
    {
        let mut members = write(&shared.members);
        let old = std::mem::replace(&mut members.peers, peers);
        let Members { peers, links } = &mut *members;
        // Only a peer listed before loses its links: a stranger's last
        // while it is connected.
        links.retain(|&(peer, _), link| {
            let keep = peers.contains_key(&peer) || !old.contains_key(&peer);
            if !keep {
                removed.push(Arc::clone(link));
            }
            keep
        });
        for (&peer, addr) in peers.iter() {
            for channel in Channel::ALL {
                let key = (peer, channel);
                if let Some(link) = links.get(&key) {
                    if old
                        .get(&peer)
                        .is_some_and(|was| was.of(channel) != addr.of(channel))
                    {
                        moved.push(Arc::clone(link));
                    }
                } else {
                    let (link, rx) = Link::new(peer, channel, &shared.limits, None);
                    links.insert(key, Arc::clone(&link));
                    added.push((link, rx));
                }
            }
        }
    }
    if !(removed.is_empty() && moved.is_empty() && added.is_empty()) {
        let ids = |links: Vec<&Arc<Link>>| -> BTreeSet<u64> {
            links.into_iter().map(|link| link.peer.0).collect()
        };
        info!(me = shared.me.0, added = ?ids(added.iter().map(|(link, _)| link).collect()),
              removed = ?ids(removed.iter().collect()), moved = ?ids(moved.iter().collect()),
              "peer list changed");
    }
    for link in removed {
        link.retire();
    }
    for link in moved {
        link.redial.store(true, Ordering::SeqCst);
        link.wake();
    }
    let mut started = Ok(());
    for (link, rx) in added {
        if !start_writer(shared, &link, rx) {
            started = Err(io::Error::other("cannot start a peer writer thread"));
        }
    }
    started
}

/// Start a link's writer. If it cannot start, the link leaves the map (its
/// peer's messages count as unroutable rather than queue for nobody) and
/// whatever connection it was handed is closed.
fn start_writer(shared: &Arc<Shared>, link: &Arc<Link>, rx: Receiver<Out>) -> bool {
    let name = format!("peer-write-{}-{:?}", link.peer.0, link.channel);
    let (thread_shared, thread_link) = (Arc::clone(shared), Arc::clone(link));
    let spawned = shared.spawn(name, move || write_loop(&thread_shared, &thread_link, &rx));
    if spawned.is_some() {
        return true;
    }
    unlink(shared, link);
    link.retired.store(true, Ordering::SeqCst);
    if let Some(pending) = lock(&link.accepted).take() {
        shared.close(pending.id, &pending.closed);
    }
    false
}

/// Remove `link` from the map, unless another link has taken its place.
fn unlink(shared: &Shared, link: &Arc<Link>) {
    let key = (link.peer, link.channel);
    let mut members = write(&shared.members);
    if members
        .links
        .get(&key)
        .is_some_and(|l| Arc::ptr_eq(l, link))
    {
        members.links.remove(&key);
    }
}

// ---- writer -------------------------------------------------------------------

fn write_loop(shared: &Arc<Shared>, link: &Arc<Link>, rx: &Receiver<Out>) {
    let limits = &shared.limits;
    let mut conn: Option<Conn> = None;
    let mut backoff = limits.backoff_min;
    let mut next_dial = Instant::now();
    let mut last_write = Instant::now();
    loop {
        if shared.stopping() || link.retired.load(Ordering::SeqCst) {
            break;
        }
        if conn
            .as_ref()
            .is_some_and(|c| c.closed.load(Ordering::SeqCst))
        {
            drop_conn(shared, link, &mut conn);
        }
        if let Some(new) = lock(&link.accepted).take() {
            if link.peer > shared.me {
                link.dialed_by_them.store(true, Ordering::SeqCst);
            }
            if let Some(old) = conn.replace(new) {
                debug!(peer = link.peer.0, channel = ?link.channel, "replaced by a newer connection");
                shared.close(old.id, &old.closed);
            }
            link.connected.store(true, Ordering::SeqCst);
            last_write = Instant::now();
        }
        if link.redial.swap(false, Ordering::SeqCst) && shared.me > link.peer {
            // The peer moved: what we are connected to is its old address.
            if conn.is_some() {
                info!(peer = link.peer.0, channel = ?link.channel,
                      "peer address changed; redialing");
                drop_conn(shared, link, &mut conn);
            }
            next_dial = Instant::now();
            backoff = limits.backoff_min;
            link.dialed_by_them.store(false, Ordering::SeqCst);
        }
        // Only the higher id dials (see the module docs), and only a listed
        // peer: a stranger has no address, and its link ends with its
        // connection. Looked up while unconnected only, which is when it
        // matters.
        let mut dialer = false;
        if conn.is_none() {
            if shared.listed(link.peer) {
                dialer = shared.me > link.peer || knocks(shared, link);
            } else if retire_unlisted(shared, link) {
                break;
            }
        }
        if dialer && Instant::now() >= next_dial {
            match dial(shared, link) {
                Ok(new) => {
                    conn = Some(new);
                    link.connected.store(true, Ordering::SeqCst);
                    backoff = limits.backoff_min;
                    last_write = Instant::now();
                }
                Err(e) => {
                    debug!(peer = link.peer.0, channel = ?link.channel, error = %e,
                           retry = ?backoff, "cannot connect to peer");
                    next_dial = Instant::now() + backoff;
                    backoff = (backoff * 2).min(limits.backoff_max);
                }
            }
            continue;
        }
        let wait = match &conn {
            Some(_) => limits
                .keepalive_interval
                .saturating_sub(last_write.elapsed()),
            None if dialer => next_dial.saturating_duration_since(Instant::now()),
            None => limits.keepalive_interval,
        };
        match rx.recv_timeout(wait) {
            Ok(Out::Frame(frame)) => {
                link.queued_bytes.fetch_sub(frame.len(), Ordering::SeqCst);
                let Some(c) = conn.as_mut() else {
                    bump(&shared.counters.dropped_disconnected);
                    continue;
                };
                // Frames queued meanwhile go out in the same write: under
                // load a leader queues a PROPOSAL per txn per follower, and
                // one system call per frame would be the bottleneck.
                let mut batch = frame;
                let mut frames = 1;
                while batch.len() < WRITE_BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(Out::Frame(next)) => {
                            link.queued_bytes.fetch_sub(next.len(), Ordering::SeqCst);
                            batch.extend_from_slice(&next);
                            frames += 1;
                        }
                        // A wake-up only asks to look at the link again,
                        // which the loop does next anyway.
                        Ok(Out::Wake) => break,
                        Err(_) => break,
                    }
                }
                match c.stream.write_all(&batch) {
                    Ok(()) => {
                        shared.counters.sent.fetch_add(frames, Ordering::Relaxed);
                        last_write = Instant::now();
                    }
                    Err(e) => {
                        info!(peer = link.peer.0, channel = ?link.channel, error = %e,
                              "peer connection lost on write");
                        drop_conn(shared, link, &mut conn);
                    }
                }
            }
            Ok(Out::Wake) => {}
            Err(RecvTimeoutError::Timeout) => {
                if let Some(c) = conn.as_mut() {
                    if last_write.elapsed() >= limits.keepalive_interval {
                        match encode_frame(&Packet::Keepalive, shared.max_frame(link.channel)) {
                            Ok(frame) => {
                                if c.stream.write_all(&frame).is_err() {
                                    drop_conn(shared, link, &mut conn);
                                } else {
                                    last_write = Instant::now();
                                }
                            }
                            Err(e) => warn!(error = %e, "cannot frame a keepalive"),
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    drop_conn(shared, link, &mut conn);
    if let Some(pending) = lock(&link.accepted).take() {
        shared.close(pending.id, &pending.closed);
    }
}

/// Retire the link of a peer not listed (a stranger, or one `set_peers` just
/// removed) now that it has no connection; false if the peer was listed
/// meanwhile or a new connection is waiting.
fn retire_unlisted(shared: &Shared, link: &Arc<Link>) -> bool {
    let key = (link.peer, link.channel);
    let mut members = write(&shared.members);
    if members.peers.contains_key(&link.peer) {
        return false;
    }
    // Under the map's lock, so no acceptor hands over a connection between
    // this look and the retirement.
    if lock(&link.accepted).is_some() {
        return false;
    }
    link.retired.store(true, Ordering::SeqCst);
    if members
        .links
        .get(&key)
        .is_some_and(|l| Arc::ptr_eq(l, link))
    {
        members.links.remove(&key);
        debug!(peer = link.peer.0, channel = ?link.channel, "stranger gone; link removed");
    }
    true
}

fn drop_conn(shared: &Shared, link: &Link, conn: &mut Option<Conn>) {
    // The peer may have stopped listing us meanwhile (we were removed):
    // knock again until it dials.
    link.dialed_by_them.store(false, Ordering::SeqCst);
    if link.connected.swap(false, Ordering::SeqCst) {
        let _ = shared.link_down.0.try_send(link.peer);
    }
    if let Some(c) = conn.take() {
        shared.close(c.id, &c.closed);
    }
}

/// Why a handshake was refused; logged, and counted in `Stats::refused`.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("server id {0} is not a listed peer")]
    Stranger(u64),
    #[error("{0} servers not listed are connected already")]
    TooManyStrangers(usize),
    #[error("server {server} has ensemble fingerprint {theirs:#018x}, ours is {ours:#018x}: the server lists differ")]
    Fingerprint { server: u64, theirs: u64, ours: u64 },
    #[error("handshake for the {theirs:?} channel on the {ours:?} port")]
    Channel { theirs: Channel, ours: Channel },
    #[error("server {0} has a lower id and must wait to be dialed")]
    LowerId(u64),
    #[error("dialed server {expected} but server {got} answered")]
    WrongServer { expected: u64, got: u64 },
}

fn read_handshake(stream: &mut TcpStream) -> Result<Handshake, Refusal> {
    let mut bytes = [0u8; HANDSHAKE_BYTES];
    stream.read_exact(&mut bytes[..HANDSHAKE_PREFIX_BYTES])?;
    Handshake::check_prefix(&bytes[..HANDSHAKE_PREFIX_BYTES])?;
    stream.read_exact(&mut bytes[HANDSHAKE_PREFIX_BYTES..])?;
    Ok(Handshake::decode(&bytes)?)
}

/// Check a peer's handshake against the config, for either side; who may
/// connect is checked apart (the dialer knows whom it dialed, the acceptor
/// asks [`Shared::admit`]).
fn check_handshake(shared: &Shared, channel: Channel, theirs: &Handshake) -> Result<(), Refusal> {
    if theirs.channel != channel {
        return Err(Refusal::Channel {
            theirs: theirs.channel,
            ours: channel,
        });
    }
    if theirs.fingerprint != shared.fingerprint {
        return Err(Refusal::Fingerprint {
            server: theirs.server.0,
            theirs: theirs.fingerprint,
            ours: shared.fingerprint,
        });
    }
    Ok(())
}

fn dial(shared: &Arc<Shared>, link: &Arc<Link>) -> Result<Conn, Refusal> {
    let limits = &shared.limits;
    let addr = read(&shared.members)
        .peers
        .get(&link.peer)
        .map(|a| a.of(link.channel))
        .ok_or(Refusal::Stranger(link.peer.0))?;
    let mut stream = TcpStream::connect_timeout(&addr, limits.connect_timeout)?;
    let (id, closed) = shared.register(&stream)?;
    let result = (|| {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(limits.handshake_timeout))?;
        stream.set_write_timeout(Some(limits.handshake_timeout))?;
        stream.write_all(&Handshake::new(link.channel, shared.me, shared.fingerprint).encode())?;
        let theirs = read_handshake(&mut stream)?;
        check_handshake(shared, link.channel, &theirs)?;
        if theirs.server != link.peer {
            return Err(Refusal::WrongServer {
                expected: link.peer.0,
                got: theirs.server.0,
            });
        }
        stream.set_read_timeout(Some(limits.idle_timeout))?;
        stream.set_write_timeout(Some(limits.write_timeout))?;
        Ok(stream.try_clone()?)
    })();
    let reader = match result {
        Ok(reader) => reader,
        Err(e) => {
            if matches!(e, Refusal::Io(_)) {
                // The peer closed or timed out: it may be starting, or it
                // refused us and logged why.
                debug!(peer = link.peer.0, channel = ?link.channel, error = %e, "handshake failed");
            } else {
                bump(&shared.counters.refused);
                warn!(peer = link.peer.0, channel = ?link.channel, %addr, error = %e,
                      "peer refused");
            }
            shared.close(id, &closed);
            return Err(e);
        }
    };
    bump(&shared.counters.connections);
    info!(peer = link.peer.0, channel = ?link.channel, %addr, "connected to peer");
    let (reader_shared, reader_link) = (Arc::clone(shared), Arc::clone(link));
    let reader_closed = Arc::clone(&closed);
    shared
        .spawn(
            format!("peer-read-{}-{:?}", link.peer.0, link.channel),
            move || read_loop(&reader_shared, &reader_link, reader, id, &reader_closed),
        )
        .ok_or_else(|| {
            shared.close(id, &closed);
            Refusal::Io(io::Error::other("transport shut down"))
        })?;
    Ok(Conn { id, stream, closed })
}

// ---- acceptor and reader ------------------------------------------------------

const ACCEPT_POLL: Duration = Duration::from_millis(10);

fn accept_loop(shared: &Arc<Shared>, channel: Channel, listener: TcpListener, number: u64) {
    let current = &shared.acceptors[channel_index(channel)];
    while !shared.stopping() && current.load(Ordering::SeqCst) == number {
        let (stream, remote) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(e) => {
                // Out of descriptors and the like: back off rather than spin.
                warn!(channel = ?channel, error = %e, "cannot accept a peer connection");
                thread::sleep(ACCEPT_POLL * 10);
                continue;
            }
        };
        if shared.handshakes.fetch_add(1, Ordering::SeqCst) >= shared.limits.max_handshakes {
            shared.handshakes.fetch_sub(1, Ordering::SeqCst);
            bump(&shared.counters.refused);
            warn!(channel = ?channel, %remote, "too many peer handshakes in progress; refused");
            continue;
        }
        let thread_shared = Arc::clone(shared);
        let spawned = shared.spawn(format!("peer-accepted-{channel:?}"), move || {
            accepted(&thread_shared, channel, stream, remote)
        });
        if spawned.is_none() {
            shared.handshakes.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Handshake an accepted connection, hand it to its link, then read it.
/// With `accept_strangers`, a server also dials a higher id until that peer
/// has dialed it: a member that does not list it yet (it is joining) takes
/// it as a stranger; one that lists it refuses and dials it instead.
fn knocks(shared: &Shared, link: &Link) -> bool {
    shared.accept_strangers && !link.dialed_by_them.load(Ordering::SeqCst)
}

fn accepted(shared: &Arc<Shared>, channel: Channel, stream: TcpStream, remote: SocketAddr) {
    let handshake = accept_handshake(shared, channel, stream);
    shared.handshakes.fetch_sub(1, Ordering::SeqCst);
    let (link, reader, id, closed) = match handshake {
        Ok(accepted) => accepted,
        Err((e @ Refusal::LowerId(_), peer)) if shared.accept_strangers => {
            // A knock from a server we list: expected, we dial it.
            debug!(channel = ?channel, %remote, peer = ?peer, error = %e, "knock refused");
            return;
        }
        Err((e, peer)) => {
            bump(&shared.counters.refused);
            warn!(channel = ?channel, %remote, peer = ?peer, error = %e, "peer connection refused");
            return;
        }
    };
    read_loop(shared, &link, reader, id, &closed);
}

type Accepted = (Arc<Link>, TcpStream, u64, Arc<AtomicBool>);

fn accept_handshake(
    shared: &Arc<Shared>,
    channel: Channel,
    mut stream: TcpStream,
) -> Result<Accepted, (Refusal, Option<u64>)> {
    let limits = &shared.limits;
    let (id, closed) = shared.register(&stream).map_err(|e| (e.into(), None))?;
    let mut claimed = None;
    let result = (|| {
        // Accepted sockets may inherit the listener's non-blocking mode.
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(limits.handshake_timeout))?;
        stream.set_write_timeout(Some(limits.handshake_timeout))?;
        let theirs = read_handshake(&mut stream)?;
        claimed = Some(theirs.server.0);
        check_handshake(shared, channel, &theirs)?;
        let listed = shared.admit(&read(&shared.members), theirs.server)?;
        // We dial a listed lower id; a stranger we cannot dial.
        if listed && theirs.server < shared.me {
            return Err(Refusal::LowerId(theirs.server.0));
        }
        stream.write_all(&Handshake::new(channel, shared.me, shared.fingerprint).encode())?;
        stream.set_read_timeout(Some(limits.idle_timeout))?;
        stream.set_write_timeout(Some(limits.write_timeout))?;
        Ok((theirs.server, stream.try_clone()?))
    })();
    let (peer, writer) = match result {
        Ok(ok) => ok,
        Err(e) => {
            shared.close(id, &closed);
            return Err((e, claimed));
        }
    };
    let conn = Conn {
        id,
        stream: writer,
        closed: Arc::clone(&closed),
    };
    let link = adopt(shared, peer, channel, conn).map_err(|e| (e, claimed))?;
    bump(&shared.counters.connections);
    info!(peer = peer.0, channel = ?channel, "accepted peer connection");
    Ok((link, stream, id, closed))
}

/// Hand an accepted connection to its link, made on the spot for a stranger
/// let in. Admission is looked at again: `set_peers` may have run since the
/// handshake.
fn adopt(
    shared: &Arc<Shared>,
    peer: ServerId,
    channel: Channel,
    conn: Conn,
) -> Result<Arc<Link>, Refusal> {
    let key = (peer, channel);
    let mut members = write(&shared.members);
    if let Err(e) = shared.admit(&members, peer) {
        drop(members);
        shared.close(conn.id, &conn.closed);
        return Err(e);
    }
    if let Some(link) = members.links.get(&key).cloned() {
        // In the map, so not retired: its writer adopts or closes this.
        let replaced = lock(&link.accepted).replace(conn);
        drop(members);
        if let Some(old) = replaced {
            // Never adopted: a newer one arrived first.
            shared.close(old.id, &old.closed);
        }
        link.wake();
        return Ok(link);
    }
    // Only a stranger has no link yet. Its connection is in place before the
    // writer starts, which would otherwise find the link idle and retire it.
    let (link, rx) = Link::new(peer, channel, &shared.limits, Some(conn));
    members.links.insert(key, Arc::clone(&link));
    drop(members);
    info!(peer = peer.0, channel = ?channel, "server not listed connected; accepted as a stranger");
    if start_writer(shared, &link, rx) {
        Ok(link)
    } else {
        Err(Refusal::Io(io::Error::other(
            "cannot start a peer writer thread",
        )))
    }
}

/// Read frames until the connection fails, then close it and tell its writer.
fn read_loop(shared: &Shared, link: &Link, mut stream: TcpStream, id: u64, closed: &AtomicBool) {
    let (peer, channel) = (link.peer, link.channel);
    let max = shared.max_frame(channel);
    // Buffered: a burst of small frames (PROPOSALs, ACKs) costs one read.
    let mut stream = io::BufReader::with_capacity(64 << 10, &mut stream);
    let why = loop {
        match read_packet(&mut stream, max) {
            Ok(Packet::Keepalive) => {}
            Ok(Packet::Envelope(envelope)) => {
                if Channel::of(&envelope.message) != channel {
                    bump(&shared.counters.bad_frames);
                    break format!("a message for the other channel: {:?}", envelope.message);
                }
                if !deliver(shared, peer, envelope) {
                    break "transport stopped".to_string();
                }
            }
            Err(ReadError::Io(e)) if closed.load(Ordering::SeqCst) || shared.stopping() => {
                break format!("closed ({e})");
            }
            Err(ReadError::Io(e)) => {
                let idle = matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                );
                break if idle {
                    format!("silent for {:?}", shared.limits.idle_timeout)
                } else {
                    format!("{e}")
                };
            }
            Err(ReadError::Wire(e)) => {
                bump(&shared.counters.bad_frames);
                warn!(peer = peer.0, channel = ?channel, error = %e, "bad frame from peer; closing");
                break format!("bad frame: {e}");
            }
        }
    };
    info!(peer = peer.0, channel = ?channel, reason = %why, "peer connection closed");
    shared.close(id, closed);
    link.wake();
}

enum ReadError {
    Io(io::Error),
    Wire(WireError),
}

fn read_packet(stream: &mut impl Read, max: u32) -> Result<Packet, ReadError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    stream.read_exact(&mut header).map_err(ReadError::Io)?;
    let header = FrameHeader::parse(&header, max).map_err(ReadError::Wire)?;
    let len = usize::try_from(header.len).unwrap_or(usize::MAX);
    // Grow with what arrives rather than trusting the length up front: a peer
    // that announces a large frame and stalls costs only what it sent.
    let mut payload = Vec::with_capacity(len.min(64 << 10));
    let got = Read::take(&mut *stream, u64::from(header.len))
        .read_to_end(&mut payload)
        .map_err(ReadError::Io)?;
    if got < len {
        return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    header.decode(&payload).map_err(ReadError::Wire)
}

/// Hand a message to the driver, waiting while the inbound channel is full;
/// false once the transport stops or the receiver is gone.
fn deliver(shared: &Shared, peer: ServerId, envelope: Envelope) -> bool {
    let mut item = (peer, envelope);
    loop {
        match shared.inbound.send_timeout(item, Duration::from_millis(50)) {
            Ok(()) => {
                bump(&shared.counters.received);
                return true;
            }
            Err(SendTimeoutError::Timeout(back)) if !shared.stopping() => item = back,
            Err(_) => return false,
        }
    }
}
