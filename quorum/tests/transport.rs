//! The TCP peer transport on loopback: messages both ways between three
//! servers, strangers and bad frames refused without disturbing the others,
//! reconnection after a restart, drops instead of blocking, the peer list
//! changed while running (a server added, one removed, one moved, strangers
//! let in), and three real `Peer`s electing a leader and committing a txn
//! over it. Every wait is bounded.
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
    encode_frame, fingerprint, Channel, Envelope, FrameHeader, Handshake, Packet,
    FRAME_HEADER_BYTES, HANDSHAKE_BYTES, MAGIC,
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
    start_as(Node {
        id,
        listen: peers[&ServerId(id)],
        peers: peers.clone(),
        fingerprint: print(peers),
        limits,
        accept_strangers: false,
    })
}

/// A server whose list need not be the ensemble's (nor hold itself).
struct Node {
    id: u64,
    listen: PeerAddr,
    peers: BTreeMap<ServerId, PeerAddr>,
    fingerprint: u64,
    limits: Limits,
    accept_strangers: bool,
}

impl Node {
    /// Server `id` of `all`, listing only `listed`.
    fn of(id: u64, all: &BTreeMap<ServerId, PeerAddr>, listed: &[u64]) -> Node {
        Node {
            id,
            listen: all[&ServerId(id)],
            peers: only(all, listed),
            fingerprint: print(all),
            limits: limits(),
            accept_strangers: false,
        }
    }
}

fn start_as(node: Node) -> (Transport, Inbox) {
    let id = node.id;
    Transport::start(TransportConfig {
        me: ServerId(id),
        listen: node.listen,
        peers: node.peers,
        fingerprint: node.fingerprint,
        limits: node.limits,
        accept_strangers: node.accept_strangers,
    })
    .unwrap_or_else(|e| panic!("server {id} cannot start: {e}"))
}

/// The servers of `all` named in `ids`.
fn only(all: &BTreeMap<ServerId, PeerAddr>, ids: &[u64]) -> BTreeMap<ServerId, PeerAddr> {
    ids.iter()
        .map(|&id| (ServerId(id), all[&ServerId(id)]))
        .collect()
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

/// Servers 1..=n (`nodes[i]` is server i + 1) connect to one another and
/// each pair exchanges a ping and a notification both ways.
fn all_pairs_exchange(nodes: &[(&Transport, &Inbox)]) {
    let n = nodes.len() as u64;
    for (i, (transport, _)) in nodes.iter().enumerate() {
        for other in (1..=n).filter(|&o| o != i as u64 + 1) {
            wait_until("connections", || transport.is_connected(ServerId(other)));
        }
    }
    for (i, (transport, _)) in nodes.iter().enumerate() {
        let me = i as u64 + 1;
        for to in (1..=n).filter(|&o| o != me) {
            transport.send(ServerId(to), ping(me * 10 + to));
            transport.send(ServerId(to), notification(me * 10 + to));
        }
    }
    for (i, (_, inbox)) in nodes.iter().enumerate() {
        let me = i as u64 + 1;
        let expected = (1..=n)
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
}

#[test]
fn three_transports_exchange_messages_both_ways() {
    let peers = ensemble(3);
    let nodes: Vec<(Transport, Inbox)> = (1..=3).map(|id| start(id, &peers)).collect();
    let refs: Vec<(&Transport, &Inbox)> = nodes.iter().map(|(t, i)| (t, i)).collect();
    all_pairs_exchange(&refs);
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

// ---- the peer list changed while running --------------------------------------

/// Neither channel to `peer` is connected.
fn cut_off(transport: &Transport, peer: u64) -> bool {
    Channel::ALL
        .iter()
        .all(|&channel| !transport.is_connected_on(ServerId(peer), channel))
}

/// The next message a transport writes to a raw socket, keepalives skipped.
#[track_caller]
fn read_message(stream: &mut TcpStream) -> Message {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no message in time");
        let mut header = [0u8; FRAME_HEADER_BYTES];
        stream.read_exact(&mut header).unwrap();
        let header = FrameHeader::parse(&header, 1 << 20).unwrap();
        let mut payload = vec![0; header.len as usize];
        stream.read_exact(&mut payload).unwrap();
        match header.decode(&payload).unwrap() {
            Packet::Keepalive => continue,
            Packet::Envelope(envelope) => return envelope.message,
        }
    }
}

#[test]
fn set_peers_adds_a_server_and_messages_flow_both_ways() {
    // 1 and 3 run without 2; then they list it. 2 has a higher id than 1
    // (it dials 1) and a lower one than 3 (3 dials it).
    let all = ensemble(3);
    let (one, inbox_one) = start_as(Node::of(1, &all, &[1, 3]));
    let (three, inbox_three) = start_as(Node::of(3, &all, &[1, 3]));
    let (two, inbox_two) = start_as(Node::of(2, &all, &[1, 2, 3]));
    wait_until("1 and 3 connected", || three.is_connected(ServerId(1)));
    wait_until("2 refused by 1", || one.stats().refused > 0);
    one.send(ServerId(2), ping(12));
    assert_eq!(one.stats().dropped_unroutable, 1);
    assert_eq!(one.peers(), only(&all, &[3]));

    for transport in [&one, &three] {
        transport.set_peers(all.clone());
    }
    assert_eq!(one.peers(), only(&all, &[2, 3]));
    assert_eq!(three.peers(), only(&all, &[1, 2]));
    let nodes = [
        (&one, &inbox_one),
        (&two, &inbox_two),
        (&three, &inbox_three),
    ];
    all_pairs_exchange(&nodes);
    for transport in [one, two, three] {
        transport.shutdown();
    }
}

#[test]
fn set_peers_removing_a_peer_closes_its_links() {
    let peers = ensemble(3);
    let nodes: Vec<(Transport, Inbox)> = (1..=3).map(|id| start(id, &peers)).collect();
    let [(one, inbox_one), (two, inbox_two), (three, _)] = <[_; 3]>::try_from(nodes).ok().unwrap();
    for (a, b) in [(&one, 2), (&one, 3), (&two, 3)] {
        wait_until("connections", || a.is_connected(ServerId(b)));
    }

    // 1 is dialed by 3: it closes 3's connections and refuses its redials.
    one.set_peers(only(&peers, &[1, 2]));
    assert_eq!(one.peers(), only(&peers, &[2]));
    wait_until("3 cut off from 1", || cut_off(&three, 1));
    wait_until("3's redials refused", || one.stats().refused >= 2);
    assert!(cut_off(&one, 3));
    assert_eq!(one.queued_bytes(ServerId(3), Channel::Quorum), None);
    one.send(ServerId(3), ping(13));
    one.send(ServerId(3), notification(13));
    assert_eq!(one.stats().dropped_unroutable, 2);

    // 3 dials 2: it closes its connections, and 2, the lower id, waits.
    three.set_peers(only(&peers, &[1]));
    wait_until("2 cut off from 3", || cut_off(&two, 3));
    three.send(ServerId(2), ping(32));
    assert_eq!(three.stats().dropped_unroutable, 1);
    thread::sleep(Duration::from_millis(300));
    assert!(
        cut_off(&two, 3) && cut_off(&three, 2),
        "3 no longer dials 2"
    );
    assert_eq!(two.stats().refused, 0);

    // 1 and 2 never noticed.
    one.send(ServerId(2), ping(12));
    two.send(ServerId(1), ping(21));
    assert_eq!(next(&inbox_two), (ServerId(1), ping(12)));
    assert_eq!(next(&inbox_one), (ServerId(2), ping(21)));
    for transport in [one, two, three] {
        transport.shutdown();
    }
}

#[test]
fn strangers_connect_only_where_accepted() {
    let all = ensemble(4);
    let good = print(&all);
    // 2 lists nobody and lets strangers in; 4 lists nobody and does not.
    // The raw strangers stay silent, so 2 waits for them patiently.
    let (two, inbox_two) = start_as(Node {
        accept_strangers: true,
        limits: Limits {
            idle_timeout: WAIT,
            ..limits()
        },
        ..Node::of(2, &all, &[2])
    });
    let (four, _) = start_as(Node::of(4, &all, &[4]));

    // A higher stranger: 3 lists 2 and dials it as usual.
    let (three, inbox_three) = start_as(Node::of(3, &all, &[2, 3]));
    wait_until("3 and 2 connected", || {
        three.is_connected(ServerId(2)) && two.is_connected(ServerId(3))
    });
    assert!(two.peers().is_empty(), "a stranger is not listed");
    three.send(ServerId(2), ping(32));
    two.send(ServerId(3), ping(23));
    two.send(ServerId(3), notification(23));
    assert_eq!(next(&inbox_two), (ServerId(3), ping(32)));
    expect_all(
        &inbox_three,
        vec![(ServerId(2), ping(23)), (ServerId(2), notification(23))],
    );

    // A lower stranger: 1 dials 2, which cannot dial it.
    let quorum_two = all[&ServerId(2)].quorum;
    let mut one = handshake_as(quorum_two, Channel::Quorum, 1, good, 2);
    one.write_all(&frame(ping(12))).unwrap();
    assert_eq!(next(&inbox_two), (ServerId(1), ping(12)));
    two.send(ServerId(1), ping(21));
    assert_eq!(read_message(&mut one), ping(21));

    // A stranger's link ends with its connection.
    let seven = handshake_as(quorum_two, Channel::Quorum, 7, good, 2);
    wait_until("7 adopted", || {
        two.is_connected_on(ServerId(7), Channel::Quorum)
    });
    drop(seven);
    wait_until("7's link gone", || {
        two.queued_bytes(ServerId(7), Channel::Quorum).is_none()
    });
    two.send(ServerId(7), ping(27));
    assert_eq!(two.stats().dropped_unroutable, 1);

    // Without accept_strangers, 4 refuses them, lower and higher alike.
    let quorum_four = all[&ServerId(4)].quorum;
    for id in [1, 9] {
        let mut stream = raw(quorum_four);
        stream
            .write_all(&Handshake::new(Channel::Quorum, ServerId(id), good).encode())
            .unwrap();
        expect_closed(stream);
    }
    wait_until("4 refused both", || four.stats().refused == 2);
    assert_eq!(four.stats().connections, 0);

    // A set_peers that does not list a stranger leaves it connected, and
    // one that lists it keeps its connection: 3 still dials, and 1, now a
    // lower listed peer, is dialed once its connection closes.
    let connections = two.stats().connections;
    two.set_peers(only(&all, &[3]));
    two.send(ServerId(1), ping(121));
    assert_eq!(read_message(&mut one), ping(121));
    let listener = TcpListener::bind(all[&ServerId(1)].quorum).unwrap();
    listener.set_nonblocking(true).unwrap();
    two.set_peers(only(&all, &[1, 3]));
    two.send(ServerId(1), ping(122));
    assert_eq!(read_message(&mut one), ping(122));
    three.send(ServerId(2), ping(321));
    assert_eq!(next(&inbox_two), (ServerId(3), ping(321)));
    assert_eq!(two.stats().connections, connections);
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock),
        "2 does not dial 1 while 1's connection lives"
    );
    drop(one);
    let mut dialed = None;
    wait_until("2 dials 1", || {
        dialed = listener.accept().ok().map(|(stream, _)| stream);
        dialed.is_some()
    });
    let mut dialed = dialed.unwrap();
    dialed.set_nonblocking(false).unwrap();
    dialed.set_read_timeout(Some(WAIT)).unwrap();
    let mut hello = [0u8; HANDSHAKE_BYTES];
    dialed.read_exact(&mut hello).unwrap();
    let hello = Handshake::decode(&hello).unwrap();
    assert_eq!(
        (hello.server, hello.channel),
        (ServerId(2), Channel::Quorum)
    );
    for transport in [two, three, four] {
        transport.shutdown();
    }
}

#[test]
fn a_joiner_with_a_lower_id_knocks_and_is_dialed_once_listed() {
    let all = ensemble(3);
    // 3 runs listing only 2; 1 joins listing 2 and 3, which do not list it.
    let reconfigurable = |id, listed: &[u64]| Node {
        accept_strangers: true,
        ..Node::of(id, &all, listed)
    };
    let (two, _inbox_two) = start_as(reconfigurable(2, &[3]));
    let (three, inbox_three) = start_as(reconfigurable(3, &[2]));
    let (one, inbox_one) = start_as(reconfigurable(1, &[2, 3]));
    wait_until("1 reached 3 as a stranger", || {
        one.is_connected(ServerId(3)) && three.is_connected(ServerId(1))
    });
    assert!(!three.peers().contains_key(&ServerId(1)));
    one.send(ServerId(3), ping(13));
    assert_eq!(next(&inbox_three), (ServerId(1), ping(13)));
    three.send(ServerId(1), ping(31));
    assert_eq!(next(&inbox_one), (ServerId(3), ping(31)));

    // Listed by 3, 1 is dialed by it once the knocked connection closes:
    // 1 drops 3 from its list (closing it), and the connection that comes
    // back can only be 3's, since 1 no longer knows 3's address.
    three.set_peers(only(&all, &[1, 2]));
    let dialed = one.stats().connections;
    one.set_peers(only(&all, &[2]));
    wait_until("3 dialed 1", || {
        one.stats().connections > dialed && one.is_connected(ServerId(3))
    });
    one.set_peers(only(&all, &[2, 3]));
    three.send(ServerId(1), ping(311));
    assert_eq!(next(&inbox_one), (ServerId(3), ping(311)));
    for transport in [one, two, three] {
        transport.shutdown();
    }
}

#[test]
fn an_address_change_makes_the_dialer_reconnect() {
    let before = ensemble(2);
    let (one_before, inbox_before) = start(1, &before);
    let (two, inbox_two) = start(2, &before);
    wait_until("2 connected to 1", || {
        two.is_connected(ServerId(1)) && one_before.is_connected(ServerId(2))
    });

    // Server 1 moves; the old instance still runs, so only the new address
    // (not a dead connection) makes 2 leave it.
    let mut after = before.clone();
    after.insert(
        ServerId(1),
        PeerAddr {
            quorum: free_addr(),
            election: free_addr(),
        },
    );
    let (one_after, inbox_after) = start(1, &after);
    two.set_peers(after.clone());
    wait_until("2 left the old address", || cut_off(&one_before, 2));
    wait_until("2 at the new address", || {
        one_after.is_connected(ServerId(2)) && two.is_connected(ServerId(1))
    });
    two.send(ServerId(1), ping(21));
    two.send(ServerId(1), notification(21));
    expect_all(
        &inbox_after,
        vec![(ServerId(2), ping(21)), (ServerId(2), notification(21))],
    );
    one_after.send(ServerId(2), ping(12));
    assert_eq!(next(&inbox_two), (ServerId(1), ping(12)));
    assert!(
        inbox_before.try_recv().is_err(),
        "nothing at the old address"
    );
    assert_eq!(two.stats().refused, 0);
    for transport in [one_before, one_after, two] {
        transport.shutdown();
    }
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

#[test]
fn a_rebound_server_is_reached_at_its_new_ports() {
    let before = ensemble(2);
    let (one, inbox_one) = start(1, &before);
    let (two, _inbox_two) = start(2, &before);
    wait_until("1 and 2 connected", || {
        two.is_connected(ServerId(1)) && one.is_connected(ServerId(2))
    });
    let moved = PeerAddr {
        quorum: free_addr(),
        election: free_addr(),
    };
    assert_eq!(one.rebind(moved).unwrap(), moved);
    assert_eq!(one.local_addr(), moved);
    // The old ports close.
    wait_until("the old quorum port closed", || {
        TcpStream::connect(before[&ServerId(1)].quorum).is_err()
    });
    let mut after = before.clone();
    after.insert(ServerId(1), moved);
    two.set_peers(after);
    // The old connections may still be up when set_peers returns: wait
    // for 2 to have dialed both channels a second time.
    wait_until("2 dialed 1's new ports", || {
        two.stats().connections >= 4 && two.is_connected(ServerId(1))
    });
    two.send(ServerId(1), ping(21));
    two.send(ServerId(1), notification(21));
    expect_all(
        &inbox_one,
        vec![(ServerId(2), ping(21)), (ServerId(2), notification(21))],
    );
    // Unchanged ports are left alone.
    assert_eq!(one.rebind(moved).unwrap(), moved);
    for transport in [one, two] {
        transport.shutdown();
    }
}
