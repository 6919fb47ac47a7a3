//! State shared by the I/O threads and the commit pipeline. The tree sits
//! behind a read-write lock: I/O threads read it, the single applier writes it.
//! Everything else here has its own short-held lock or is atomic. No lock in
//! this struct is ever held across socket or disk I/O.

use crate::clock::Clock;
use crate::mailbox::{Mail, Mailbox, Postman, Submission};
use crate::stats::{ConnectionStats, ServerStats};
use engine::apply::Fired;
use engine::session::{SessionSecret, SessionTracker};
use engine::tree::DataTree;
use engine::types::perms;
use engine::types::{SessionId, WatcherId};
use engine::watch::WatchRegistry;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Limits and negotiation bounds the reactor enforces.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest request frame accepted (`jute.maxbuffer`), header included.
    pub max_frame_bytes: usize,
    /// Requests one connection may have queued or in flight before the
    /// reactor stops reading from it.
    pub connection_outstanding_limit: usize,
    /// `globalOutstandingLimit`: the same bound for the whole server.
    pub global_outstanding_limit: usize,
    /// A connection whose unsent output passes this is closed: the client is
    /// not reading its replies.
    pub max_outbound_bytes: usize,
    /// `maxClientCnxns` per client IP; 0 means no limit.
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub super_digest: Option<String>,
    /// `maxResponseBytes`, `maxMultiOps`: what one read may cost.
    pub read_limits: engine::read::ReadLimits,
    /// The JAAS login the `sasl` request is answered with, and
    /// `enforce.auth.*` / `allowSaslFailedClients`.
    pub sasl: crate::sasl::SaslSettings,
    /// `readConsistency=linearizable`: in an ensemble every read waits for
    /// a read index confirmed by a quorum (`ReadIndexRequest`) and for this
    /// member to have applied it.
    pub linearizable_reads: bool,
}

impl Settings {
    pub fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        requested_ms.clamp(self.min_session_timeout_ms, self.max_session_timeout_ms)
    }
}

/// What one open connection shows to `cons`, `wchc` and friends.
pub struct ConnectionEntry {
    pub remote: std::net::SocketAddr,
    pub session: std::sync::atomic::AtomicI64,
    pub timeout_ms: std::sync::atomic::AtomicI32,
    /// Requests received and not yet answered.
    pub queued: std::sync::atomic::AtomicU64,
    pub stats: ConnectionStats,
    /// The identities the connection has authenticated as (its ip first),
    /// as of its last setAuth: the applier checks a watch event's READ
    /// permission against them when the event fires, as the reference does.
    pub auth: Mutex<Arc<Vec<engine::types::Id>>>,
}

impl ConnectionEntry {
    pub fn new(remote: std::net::SocketAddr, auth: Arc<Vec<engine::types::Id>>) -> ConnectionEntry {
        ConnectionEntry {
            remote,
            session: 0.into(),
            timeout_ms: 0.into(),
            queued: 0.into(),
            stats: ConnectionStats::new(),
            auth: Mutex::new(auth),
        }
    }
}

/// What a server is in its ensemble (Apache's `Mode:` and
/// `zk_server_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Standalone,
    /// Electing or synchronizing: not serving clients.
    Looking,
    Leader,
    Follower,
    Observer,
    /// Cut off from the quorum with `readonlymode.enabled`: serving
    /// read-only clients from the last state, refusing writes.
    ReadOnly,
}

impl Mode {
    /// The word Apache prints for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Standalone => "standalone",
            Mode::Looking => "looking",
            Mode::Leader => "leader",
            Mode::Follower => "follower",
            Mode::Observer => "observer",
            Mode::ReadOnly => "read-only",
        }
    }
}

/// The quorum driver's report of where this server stands, for the
/// four-letter words, the AdminServer and metrics.
#[derive(Clone, Debug, Default)]
pub struct ReplicaView {
    pub mode: Mode,
    /// The leader's id while following, ours while leading.
    pub leader: Option<u64>,
    /// The epoch served in, once serving.
    pub epoch: u32,
    /// Voters in the ensemble (`zk_quorum_size`), 0 standalone.
    pub voters: usize,
    /// On a leader: learners connected, and those synced by kind.
    pub learners: usize,
    pub synced_followers: usize,
    pub synced_observers: usize,
    /// Proposal sizes in bytes on a leader: last, smallest, largest.
    pub last_proposal_size: usize,
    pub min_proposal_size: usize,
    pub max_proposal_size: usize,
    /// How long the last election took, from LOOKING to serving.
    pub last_election_ms: u64,
}

/// `serving` says whether clients may be served: always standalone; in an
/// ensemble only while this server leads an established epoch or follows
/// one up to date. The reactor refuses handshakes while it is false.
pub struct Replica {
    serving: AtomicBool,
    read_only: AtomicBool,
    view: Mutex<ReplicaView>,
}

impl Replica {
    pub fn standalone() -> Replica {
        Replica {
            serving: AtomicBool::new(true),
            read_only: AtomicBool::new(false),
            view: Mutex::new(ReplicaView::default()),
        }
    }

    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// Serving in read-only mode: only clients that asked for it, reads
    /// only, sessions of its own.
    pub fn is_read_only(&self) -> bool {
        self.read_only.load(Ordering::Acquire)
    }

    pub fn view(&self) -> ReplicaView {
        self.view.lock().clone()
    }

    /// The driver's update; `serving` and `read_only` follow `view.mode`.
    pub fn set(&self, view: ReplicaView) {
        let serving = view.mode != Mode::Looking;
        let read_only = view.mode == Mode::ReadOnly;
        *self.view.lock() = view;
        self.read_only.store(read_only, Ordering::Release);
        self.serving.store(serving, Ordering::Release);
    }
}

pub struct Shared {
    /// Where this server stands in its ensemble (standalone: serving).
    pub replica: Replica,
    pub tree: RwLock<DataTree>,
    pub watches: WatchRegistry,
    pub sessions: Mutex<SessionTracker>,
    /// The connection each session is currently attached to.
    pub owners: Mutex<HashMap<SessionId, WatcherId>>,
    pub connections: Mutex<HashMap<WatcherId, Arc<ConnectionEntry>>>,
    pub per_ip: Mutex<HashMap<IpAddr, u32>>,
    pub stats: ServerStats,
    /// Requests received and not yet answered, over all connections.
    pub outstanding: AtomicUsize,
    pub mailboxes: Vec<Mailbox>,
    pub submit: crossbeam_channel::Sender<Submission>,
    pub settings: Settings,
    pub shutdown: AtomicBool,
    /// Wall time for what is stored, monotonic time for session liveness.
    pub clock: Arc<dyn Clock>,
    /// What session passwords derive from (kept in the data directory).
    pub session_secret: SessionSecret,
    /// Sessions brought over from Apache ZooKeeper by `zk-migrate`, whose
    /// clients may still present Apache's password for them; a session
    /// leaves the set when it closes.
    pub migrated_sessions: Mutex<std::collections::HashSet<SessionId>>,
    /// Sessions created while serving read-only: local to this server (no
    /// txn made them), so they end with read-only mode.
    pub read_only_sessions: Mutex<std::collections::HashSet<SessionId>>,
    /// I/O threads' read fences (`ReadIndexRequest`), to the quorum driver.
    pub read_index: (
        crossbeam_channel::Sender<ReadIndexRequest>,
        crossbeam_channel::Receiver<ReadIndexRequest>,
    ),
    /// Where the plain client port listens (set once the reactor runs).
    pub client_addr: Mutex<Option<std::net::SocketAddr>>,
    /// A listener for the plain client port to move to (a reconfiguration
    /// changed this server's client address); I/O thread 0 takes it.
    pub client_port_move: Mutex<Option<std::net::TcpListener>>,
}

/// An I/O thread asks for a read fence: its reads that arrived before this
/// are answered once `Mail::ReadFence` with the same ticket comes back,
/// which the applier sends once the tree holds every txn committed before
/// the request (the leader's read index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadIndexRequest {
    pub thread: usize,
    pub ticket: u64,
}

impl Shared {
    /// The shared state of a server starting with `tree`, the sessions it
    /// recovered, one mailbox per I/O thread and nothing else yet: no
    /// connection, watch or outstanding request.
    pub fn new(
        tree: DataTree,
        sessions: SessionTracker,
        mailboxes: Vec<Mailbox>,
        submit: crossbeam_channel::Sender<Submission>,
        settings: Settings,
        clock: Arc<dyn Clock>,
        session_secret: SessionSecret,
    ) -> Shared {
        Shared {
            replica: Replica::standalone(),
            tree: RwLock::new(tree),
            watches: WatchRegistry::new(),
            sessions: Mutex::new(sessions),
            owners: Mutex::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
            per_ip: Mutex::new(HashMap::new()),
            stats: ServerStats::new(),
            outstanding: AtomicUsize::new(0),
            mailboxes,
            submit,
            settings,
            shutdown: AtomicBool::new(false),
            clock,
            session_secret,
            migrated_sessions: Mutex::new(std::collections::HashSet::new()),
            read_only_sessions: Mutex::new(std::collections::HashSet::new()),
            read_index: crossbeam_channel::unbounded(),
            client_addr: Mutex::new(None),
            client_port_move: Mutex::new(None),
        }
    }

    /// Moves the plain client port to `listener`: I/O thread 0 accepts on
    /// it from its next wake-up and closes the old one (connections made
    /// through the old one stay).
    pub fn move_client_port(&self, listener: std::net::TcpListener) {
        *self.client_port_move.lock() = Some(listener);
        if let Some(first) = self.mailboxes.first() {
            first.wake();
        }
    }

    /// Whether `passwd` opens `session`: ours, or Apache's for a session
    /// `zk-migrate` brought over.
    pub fn password_matches(&self, session: SessionId, passwd: &[u8]) -> bool {
        passwd == self.session_secret.password(session).as_slice()
            || (self.migrated_sessions.lock().contains(&session)
                && passwd == engine::session::reference_password(session).as_slice())
    }

    /// Fires the watches of an applied txn's changes and posts each event
    /// to its connection, if that connection's identities may READ the
    /// changed node (for NodeChildrenChanged, the parent), as the reference
    /// checks at delivery; other watchers' events are dropped, their one-shot
    /// watches consumed all the same. Call it with the tree's write lock
    /// held, as the applier does (DESIGN.md invariant 2).
    pub fn post_watch_events(&self, fired: &[Fired], postman: &mut Postman<'_>) {
        for fired in fired {
            let triggered = self.watches.trigger(&fired.path, fired.event_type);
            if triggered.is_empty() {
                continue;
            }
            let connections = self.connections.lock();
            for (conn, event) in triggered {
                let readable = connections.get(&conn).is_some_and(|entry| {
                    engine::acl::check(&fired.acl, perms::READ, &entry.auth.lock())
                });
                if readable {
                    postman.post(Mail::Event { conn, event });
                } else {
                    tracing::trace!(conn = conn.0, path = %fired.path, "watch event filtered by ACL");
                }
            }
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Asks every I/O thread to stop; the pipeline stops when its channel
    /// closes.
    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        for mailbox in &self.mailboxes {
            mailbox.wake();
        }
    }

    /// Closes every client connection once what is queued for it is
    /// flushed: a server that stops serving (it lost its leader or its
    /// quorum) sends its clients elsewhere, as Apache does.
    pub fn close_all_connections(&self) {
        let conns: Vec<WatcherId> = self.connections.lock().keys().copied().collect();
        let mut postman = Postman::new(&self.mailboxes);
        for conn in conns {
            postman.post(Mail::Close { conn });
        }
    }

    pub fn over_global_limit(&self) -> bool {
        self.outstanding.load(Ordering::Relaxed) >= self.settings.global_outstanding_limit
    }

    pub fn session_of(&self, conn: WatcherId) -> Option<SessionId> {
        let connections = self.connections.lock();
        let entry = connections.get(&conn)?;
        let session = entry.session.load(Ordering::Relaxed);
        (session != 0).then_some(SessionId(session))
    }
}
