//! The TCP peer transport on loopback: messages both ways between three
//! servers, strangers and bad frames refused without disturbing the others,
//! reconnection after a restart, drops instead of blocking, and three real
//! `Peer`s electing a leader and committing a txn over it. Every wait is
//! bounded.
#![cfg(feature = "transport")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use quorum::transport::{Limits, PeerAddr, Transport, TransportConfig};
use quorum::wire::{
    encode_frame, fingerprint, Channel, Envelope, Handshake, Packet, HANDSHAKE_BYTES, MAGIC,
};
use quorum::{
    Action, Config, Epoch, Message, Peer, PeerState, Prng, Role, ServerId, SyncMode, Txn, Vote,
    Zxid,
};

const WAIT: Duration = Duration::from_secs(10);

type Inbox = Receiver<(ServerId, Envelope)>;

/// A free loopback port below the ephemeral range, so that no outgoing
/// connection (the transports dial a lot) takes it while a test has a
/// server stopped for a restart.
fn free_addr() -> SocketAddr {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = u64::from(std::process::id()) * 97;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < 12_000, "no free port");
        let port = u16::try_from(20_000 + (start + n) % 12_000).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

/// Addresses for servers 1..=n (all configured, not all necessarily started).
fn ensemble(n: u64) -> BTreeMap<ServerId, PeerAddr> {
    (1..=n)
        .map(|id| {
            (
                ServerId(id),
                PeerAddr {
                    quorum: free_addr(),
                    election: free_addr(),
                },
            )
        })
        .collect()
}

fn print(peers: &BTreeMap<ServerId, PeerAddr>) -> u64 {
    fingerprint(&peers.keys().copied().collect(), &BTreeSet::new())
}

fn limits() -> Limits {
    Limits {
        handshake_timeout: Duration::from_millis(500),
        write_timeout: Duration::from_secs(1),
        keepalive_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_secs(1),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        max_frame_bytes: 1 << 20,
        ..Limits::default()
    }
}

fn start(id: u64, peers: &BTreeMap<ServerId, PeerAddr>) -> (Transport, Inbox) {
    start_with(id, peers, limits())
}

fn start_with(id: u64, peers: &BTreeMap<ServerId, PeerAddr>, limits: Limits) -> (Transport, Inbox) {
    Transport::start(TransportConfig {
        me: ServerId(id),
        listen: peers[&ServerId(id)],
        peers: peers.clone(),
        fingerprint: print(peers),
        limits,
    })
    .unwrap_or_else(|e| panic!("server {id} cannot start: {e}"))
}

#[track_caller]
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn ping(session: u64) -> Message {
    Message::Ping {
        session,
        last_zxid: Zxid(session),
        committed: Zxid(0),
    }
}

fn notification(round: u64) -> Message {
    Message::Notification {
        vote: Vote {
            epoch: Epoch(0),
            zxid: Zxid(0),
            leader: ServerId(1),
        },
        round,
        state: PeerState::Looking,
    }
}

/// The next message, within the bound.
#[track_caller]
fn next(inbox: &Inbox) -> (ServerId, Message) {
    let (from, envelope) = inbox.recv_timeout(WAIT).expect("a message in time");
    (from, envelope.message)
}

#[track_caller]
fn expect_all(inbox: &Inbox, mut expected: Vec<(ServerId, Message)>) {
    while !expected.is_empty() {
        let got = next(inbox);
        let i = expected
            .iter()
            .position(|e| *e == got)
            .unwrap_or_else(|| panic!("unexpected {got:?}; still waiting for {expected:?}"));
        expected.remove(i);
    }
}

#[test]
fn three_transports_exchange_messages_both_ways() {
    let peers = ensemble(3);
    let nodes: Vec<(Transport, Inbox)> = (1..=3).map(|id| start(id, &peers)).collect();
    for (i, (transport, _)) in nodes.iter().enumerate() {
        for other in (1..=3).filter(|&o| o != i as u64 + 1) {
            wait_until("connections", || transport.is_connected(ServerId(other)));
        }
    }
    for (i, (transport, _)) in nodes.iter().enumerate() {
        let me = i as u64 + 1;
        for to in (1..=3).filter(|&o| o != me) {
            transport.send(ServerId(to), ping(me * 10 + to));
            transport.send(ServerId(to), notification(me * 10 + to));
        }
    }
    for (i, (_, inbox)) in nodes.iter().enumerate() {
        let me = i as u64 + 1;
        let expected = (1..=3)
            .filter(|&o| o != me)
            .flat_map(|from| {
                [
                    (ServerId(from), ping(from * 10 + me)),
                    (ServerId(from), notification(from * 10 + me)),
                ]
            })
            .collect();
        expect_all(inbox, expected);
    }
    for (transport, _) in nodes {
        let stats = transport.stats();
        assert_eq!(stats.received, 4);
        assert_eq!((stats.refused, stats.bad_frames), (0, 0));
        transport.shutdown();
    }
}

/// A raw socket to a transport's port, with a bounded read.
fn raw(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// The transport closes this connection (after whatever it had sent).
#[track_caller]
fn expect_closed(mut stream: TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("connection not closed: {e}"),
        }
    }
}

/// Handshake as `id` and check the transport answers as `expect`.
#[track_caller]
fn handshake_as(addr: SocketAddr, channel: Channel, id: u64, print: u64, expect: u64) -> TcpStream {
    let mut stream = raw(addr);
    stream
        .write_all(&Handshake::new(channel, ServerId(id), print).encode())
        .unwrap();
    let mut reply = [0u8; HANDSHAKE_BYTES];
    stream.read_exact(&mut reply).unwrap();
    let reply = Handshake::decode(&reply).unwrap();
    assert_eq!((reply.server, reply.channel), (ServerId(expect), channel));
    stream
}

fn frame(message: Message) -> Vec<u8> {
    encode_frame(&Packet::Envelope(message.into()), 1 << 20).unwrap()
}

#[test]
fn strangers_and_bad_frames_are_refused_and_the_others_keep_working() {
    // Server 4 is configured but never started: the tests speak for it.
    let peers = ensemble(4);
    let (one, inbox_one) = start(1, &peers);
    let (two, inbox_two) = start(2, &peers);
    wait_until("1 and 2 connected", || one.is_connected(ServerId(2)));
    let quorum_one = peers[&ServerId(1)].quorum;
    let good = print(&peers);

    // Refused at the handshake, each for its own reason.
    let mut refusals: Vec<(&str, Vec<u8>)> = vec![
        (
            "an id outside the config",
            Handshake::new(Channel::Quorum, ServerId(9), good)
                .encode()
                .to_vec(),
        ),
        (
            "another ensemble",
            Handshake::new(Channel::Quorum, ServerId(4), good ^ 1)
                .encode()
                .to_vec(),
        ),
        (
            "the election handshake on the quorum port",
            Handshake::new(Channel::Election, ServerId(4), good)
                .encode()
                .to_vec(),
        ),
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("silence", Vec::new()),
    ];
    let mut other_version = Handshake::new(Channel::Quorum, ServerId(4), good).encode();
    other_version[4] = quorum::wire::VERSION + 1;
    refusals.push(("another protocol version", other_version.to_vec()));
    let mut wrong_magic = Handshake::new(Channel::Quorum, ServerId(4), good).encode();
    assert_eq!(wrong_magic[..4], MAGIC);
    wrong_magic[0] ^= 0x20;
    refusals.push(("a wrong magic", wrong_magic.to_vec()));
    let count = refusals.len() as u64;
    for (what, bytes) in refusals {
        let mut stream = raw(quorum_one);
        stream.write_all(&bytes).unwrap();
        eprintln!("expecting refusal of {what}");
        expect_closed(stream);
    }
    wait_until("refusals counted", || one.stats().refused == count);
    // A lower id must not dial: server 1 claiming to dial server 2.
    let mut stream = raw(peers[&ServerId(2)].quorum);
    stream
        .write_all(&Handshake::new(Channel::Quorum, ServerId(1), good).encode())
        .unwrap();
    expect_closed(stream);
    wait_until("lower id refused", || two.stats().refused == 1);

    // A well-behaved peer 4 is heard, then closed for an oversized frame.
    let mut four = handshake_as(quorum_one, Channel::Quorum, 4, good, 1);
    four.write_all(&frame(ping(44))).unwrap();
    assert_eq!(next(&inbox_one), (ServerId(4), ping(44)));
    let mut oversized = ((1u32 << 20) + 1).to_le_bytes().to_vec();
    oversized.extend_from_slice(&[0; 4]);
    four.write_all(&oversized).unwrap();
    expect_closed(four);
    // A corrupted frame closes its connection.
    let mut four = handshake_as(quorum_one, Channel::Quorum, 4, good, 1);
    let mut corrupt = frame(ping(45));
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    four.write_all(&corrupt).unwrap();
    expect_closed(four);
    // A notification belongs on the election port.
    let mut four = handshake_as(quorum_one, Channel::Quorum, 4, good, 1);
    four.write_all(&frame(notification(1))).unwrap();
    expect_closed(four);
    // The election port's limit is small: a big message is refused there.
    let mut four = handshake_as(peers[&ServerId(1)].election, Channel::Election, 4, good, 1);
    let mut big = 8192u32.to_le_bytes().to_vec();
    big.extend_from_slice(&[0; 4]);
    four.write_all(&big).unwrap();
    expect_closed(four);
    wait_until("bad frames counted", || one.stats().bad_frames == 4);

    // 1 and 2 never noticed.
    one.send(ServerId(2), ping(12));
    two.send(ServerId(1), ping(21));
    assert_eq!(next(&inbox_two), (ServerId(1), ping(12)));
    assert_eq!(next(&inbox_one), (ServerId(2), ping(21)));
    assert!(inbox_one.try_recv().is_err(), "nothing from the strangers");
    assert_eq!(two.stats().bad_frames, 0);
    one.shutdown();
    two.shutdown();
}

#[test]
fn a_restarted_peer_is_reconnected() {
    let peers = ensemble(3);
    let (one, inbox_one) = start(1, &peers);
    let (two, inbox_two) = start(2, &peers);
    let (three, _) = start(3, &peers);
    wait_until("3 connected to 1", || three.is_connected(ServerId(1)));

    // Server 3 dials: after its restart it dials again.
    three.shutdown();
    wait_until("1 noticed 3 leave", || !one.is_connected(ServerId(3)));
    let (three, inbox_three) = start(3, &peers);
    wait_until("3 back", || {
        one.is_connected(ServerId(3)) && two.is_connected(ServerId(3))
    });
    three.send(ServerId(1), ping(31));
    one.send(ServerId(3), ping(13));
    assert_eq!(next(&inbox_one), (ServerId(3), ping(31)));
    assert_eq!(next(&inbox_three), (ServerId(1), ping(13)));

    // Server 1 is dialed: the others notice it leave and redial it.
    one.shutdown();
    wait_until("3 noticed 1 leave", || !three.is_connected(ServerId(1)));
    let (one, inbox_one) = start(1, &peers);
    wait_until("1 back", || {
        one.is_connected(ServerId(2)) && one.is_connected(ServerId(3))
    });
    for from in [2, 3] {
        let transport = if from == 2 { &two } else { &three };
        transport.send(ServerId(1), notification(from));
        one.send(ServerId(from), notification(10 + from));
    }
    expect_all(
        &inbox_one,
        vec![
            (ServerId(2), notification(2)),
            (ServerId(3), notification(3)),
        ],
    );
    assert_eq!(next(&inbox_two), (ServerId(1), notification(12)));
    assert_eq!(next(&inbox_three), (ServerId(1), notification(13)));
    for transport in [one, two, three] {
        transport.shutdown();
    }
}

#[test]
fn send_never_blocks_it_drops_and_counts() {
    let peers = ensemble(4);
    let small_queue = Limits {
        queue_frames: 8,
        ..limits()
    };
    let (one, _inbox) = start_with(1, &peers, small_queue);
    one.send(ServerId(77), ping(1));
    one.send(ServerId(1), ping(1));
    assert_eq!(one.stats().dropped_unroutable, 2);
    let huge = Message::Proposal {
        session: 1,
        prev: Zxid(0),
        txn: Txn {
            zxid: Zxid(1),
            data: vec![0; 2 << 20],
        },
    };
    one.send(ServerId(4), huge);
    assert_eq!(one.stats().dropped_unframed, 1);
    // A SNAP without the leader's state cannot be framed either.
    one.send(
        ServerId(4),
        Message::NewLeader {
            session: 1,
            epoch: Epoch(1),
            sync: SyncMode::Snap { zxid: Zxid(1) },
            txns: vec![],
        },
    );
    assert_eq!(one.stats().dropped_unframed, 2);

    // Server 4 connects and never reads: the socket fills, then the queue.
    let _four = handshake_as(
        peers[&ServerId(1)].quorum,
        Channel::Quorum,
        4,
        print(&peers),
        1,
    );
    wait_until("4 adopted", || one.stats().connections == 1);
    let proposal = |counter| Message::Proposal {
        session: 1,
        prev: Zxid(0),
        txn: Txn {
            zxid: Zxid(counter),
            data: vec![7; 256 << 10],
        },
    };
    for counter in 0..200 {
        one.send(ServerId(4), proposal(counter));
    }
    let stats = one.stats();
    assert!(stats.dropped_full > 0, "{stats:?}");
    one.shutdown();
}

// ---- three real peers over TCP ---------------------------------------------

#[derive(Clone, Debug, Default)]
struct Status {
    role: Option<Role>,
    applied: Vec<Txn>,
    proposed: Vec<Zxid>,
}

/// A peer's driver loop: real ticks, the transport, and storage that is
/// durable the moment it is asked.
fn run_node(
    id: u64,
    transport: Transport,
    inbox: Inbox,
    proposals: Receiver<Vec<u8>>,
    status: Arc<Mutex<Status>>,
    stop: Arc<AtomicBool>,
) {
    let voters: BTreeSet<ServerId> = (1..=3).map(ServerId).collect();
    let mut peer = Peer::new(
        Config::new(ServerId(id), voters, BTreeSet::new()),
        Prng::from_seed(id),
    )
    .unwrap();
    let tick = Duration::from_millis(20);
    let mut next_tick = Instant::now() + tick;
    let mut log: BTreeMap<Zxid, Txn> = BTreeMap::new();
    let mut applied = Zxid::ZERO;
    while !stop.load(Ordering::SeqCst) {
        loop {
            let actions = peer.take_actions();
            if actions.is_empty() {
                break;
            }
            for action in actions {
                match action {
                    Action::Send { to, message } => {
                        let snapshot = matches!(
                            message,
                            Message::NewLeader {
                                sync: SyncMode::Snap { .. },
                                ..
                            }
                        )
                        .then(Vec::new);
                        transport.send_envelope(to, Envelope { message, snapshot });
                    }
                    Action::Append { txns } => {
                        let last = txns.last().map(|t| t.zxid);
                        for txn in txns {
                            log.insert(txn.zxid, txn);
                        }
                        if let Some(last) = last {
                            peer.persisted(last);
                        }
                    }
                    Action::Truncate { after } => {
                        log.retain(|&zxid, _| zxid <= after);
                        peer.persisted(after);
                    }
                    Action::InstallSnapshot { zxid } => {
                        log.clear();
                        peer.persisted(zxid);
                    }
                    Action::PersistEpochs(_) => peer.persisted_epochs(),
                    Action::ReadIndex { .. } | Action::Activate { .. } => {}
                    Action::Commit { upto } => {
                        let mut status = status.lock().unwrap();
                        for (&zxid, txn) in log.range(..=upto) {
                            if zxid > applied {
                                status.applied.push(txn.clone());
                            }
                        }
                        applied = applied.max(upto);
                    }
                }
            }
        }
        status.lock().unwrap().role = Some(peer.role());
        while let Ok(data) = proposals.try_recv() {
            if let Ok(zxid) = peer.propose(data) {
                status.lock().unwrap().proposed.push(zxid);
            }
        }
        let wait = next_tick.saturating_duration_since(Instant::now());
        match inbox.recv_timeout(wait) {
            Ok((from, envelope)) => peer.step(from, envelope.message),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= next_tick {
            peer.tick();
            next_tick += tick;
        }
    }
    transport.shutdown();
}

#[test]
fn three_peers_elect_a_leader_and_commit_over_tcp() {
    let peers = ensemble(3);
    let stop = Arc::new(AtomicBool::new(false));
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let (transport, inbox) = start(id, &peers);
        let (propose, proposals) = crossbeam_channel::bounded(16);
        let status = Arc::new(Mutex::new(Status::default()));
        let (thread_status, thread_stop) = (Arc::clone(&status), Arc::clone(&stop));
        let handle = thread::spawn(move || {
            run_node(id, transport, inbox, proposals, thread_status, thread_stop)
        });
        nodes.push((propose, status, handle));
    }
    let established = |status: &Status| {
        matches!(
            status.role,
            Some(Role::Leading {
                established: true,
                ..
            })
        )
    };
    let committed_everywhere = |zxid: Zxid| {
        nodes.iter().all(|(_, status, _)| {
            status
                .lock()
                .unwrap()
                .applied
                .iter()
                .any(|t| t.zxid == zxid && t.data == b"hello")
        })
    };
    // Propose on whoever leads until one proposal is committed on all three;
    // a leadership change in between only means proposing again.
    let deadline = Instant::now() + WAIT;
    let zxid = loop {
        assert!(
            Instant::now() < deadline,
            "no txn committed on all three in time"
        );
        let leader = nodes
            .iter()
            .find(|(_, status, _)| established(&status.lock().unwrap()));
        if let Some((propose, status, _)) = leader {
            let before = status.lock().unwrap().proposed.len();
            propose.send(b"hello".to_vec()).unwrap();
            let until = Instant::now() + Duration::from_secs(2);
            let mut committed = None;
            while Instant::now() < until && committed.is_none() {
                let proposed = status.lock().unwrap().proposed.get(before).copied();
                if let Some(zxid) = proposed.filter(|&zxid| committed_everywhere(zxid)) {
                    committed = Some(zxid);
                }
                thread::sleep(Duration::from_millis(5));
            }
            if let Some(zxid) = committed {
                break zxid;
            }
        }
        thread::sleep(Duration::from_millis(10));
    };
    stop.store(true, Ordering::SeqCst);
    let mut histories = Vec::new();
    for (_, status, handle) in nodes {
        handle.join().unwrap();
        histories.push(status.lock().unwrap().applied.clone());
    }
    // Every replica applied the same txns in the same order, ending with it
    // (apart from any later one the next proposal round committed).
    assert!(histories.iter().all(|h| h.iter().any(|t| t.zxid == zxid)));
    let shortest = histories.iter().map(Vec::len).min().unwrap_or(0);
    for history in &histories {
        assert_eq!(history[..shortest], histories[0][..shortest]);
    }
}
