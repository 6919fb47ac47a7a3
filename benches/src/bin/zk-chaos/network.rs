//! The network the harness controls: a proxy of its own on every peer link
//! (one per ordered pair of members and channel, so whichever side dials,
//! and Apache ZooKeeper's members as well as ours, go through it) and on
//! every member's client port. No root is needed.
//!
//! A cut stops forwarding silently, as a real partition does: no connection
//! is closed, so the peers' and clients' failure detection must notice. A
//! slow link delays every chunk it forwards; a lossy one stalls now and
//! then (what loss looks like through TCP: a retransmission pause) and now
//! and then resets the connection.

use benches::cluster::Cluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One proxied path from a dialer to a listener, both directions.
#[derive(Default)]
struct Link {
    /// Bytes from the dialer to the listener are held.
    block_forward: AtomicBool,
    /// Bytes from the listener back to the dialer are held.
    block_back: AtomicBool,
    /// Added to every chunk forwarded, either way.
    delay_ms: AtomicU64,
    /// Chance per chunk, in thousandths, of a stall of 0.2–1.5 s.
    stall_permille: AtomicU32,
    /// Chance per chunk, in thousandths, that the connection is reset.
    reset_permille: AtomicU32,
}

impl Link {
    fn heal(&self) {
        self.block_forward.store(false, Ordering::Relaxed);
        self.block_back.store(false, Ordering::Relaxed);
        self.delay_ms.store(0, Ordering::Relaxed);
        self.stall_permille.store(0, Ordering::Relaxed);
        self.reset_permille.store(0, Ordering::Relaxed);
    }
}

pub struct Network {
    /// Peer links by (dialer, listener).
    peers: BTreeMap<(usize, usize), Arc<Link>>,
    /// Client links by member.
    clients: Vec<Arc<Link>>,
    /// Where clients reach each member through its proxy.
    client_addresses: Vec<String>,
    /// Every proxy's port, to wake its accept loop when stopping.
    ports: Vec<u16>,
    stop: Arc<AtomicBool>,
}

impl Network {
    /// A proxy per ordered pair of members and channel, and one per client
    /// port; `cluster.peer_ports` points each member's zoo.cfg at them.
    pub fn start(cluster: &mut Cluster, seed: u64) -> std::io::Result<Network> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut ports = Vec::new();
        let mut seeds = seed;
        let mut proxy_to = |upstream: u16, link: &Arc<Link>| -> std::io::Result<u16> {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let port = listener.local_addr()?.port();
            ports.push(port);
            seeds = seeds.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let (link, stop, seed) = (Arc::clone(link), Arc::clone(&stop), seeds);
            std::thread::spawn(move || accept(listener, upstream, link, stop, seed));
            Ok(port)
        };
        let n = cluster.size();
        let mut peers = BTreeMap::new();
        if n > 1 {
            for dialer in 0..n {
                for listener in (0..n).filter(|&l| l != dialer) {
                    let link = Arc::new(Link::default());
                    let (quorum, election) = cluster.nodes[listener].peer_ports();
                    let ports = (proxy_to(quorum, &link)?, proxy_to(election, &link)?);
                    cluster.peer_ports.insert((dialer, listener), ports);
                    peers.insert((dialer, listener), link);
                }
            }
        }
        let mut clients = Vec::new();
        let mut client_addresses = Vec::new();
        for node in &cluster.nodes {
            let link = Arc::new(Link::default());
            let port = proxy_to(node.client_port, &link)?;
            client_addresses.push(format!("127.0.0.1:{port}"));
            clients.push(link);
        }
        Ok(Network {
            peers,
            clients,
            client_addresses,
            ports,
            stop,
        })
    }

    /// Each member's client address through its proxy.
    pub fn client_addresses(&self) -> Vec<String> {
        self.client_addresses.clone()
    }

    /// Stops the peer bytes from `from` to `to`, on whichever connection
    /// carries them.
    pub fn cut(&self, from: usize, to: usize) {
        if let Some(link) = self.peers.get(&(from, to)) {
            link.block_forward.store(true, Ordering::Relaxed);
        }
        if let Some(link) = self.peers.get(&(to, from)) {
            link.block_back.store(true, Ordering::Relaxed);
        }
    }

    /// Clients can no longer reach `node`, nor hear from it.
    pub fn cut_clients(&self, node: usize) {
        let link = &self.clients[node];
        link.block_forward.store(true, Ordering::Relaxed);
        link.block_back.store(true, Ordering::Relaxed);
    }

    /// Every link touching `node`, peer and client.
    fn touching(&self, node: usize) -> impl Iterator<Item = &Arc<Link>> {
        self.peers
            .iter()
            .filter(move |((a, b), _)| *a == node || *b == node)
            .map(|(_, link)| link)
            .chain(std::iter::once(&self.clients[node]))
    }

    /// Every chunk to or from `node` waits `ms` more.
    pub fn slow(&self, node: usize, ms: u64) {
        for link in self.touching(node) {
            link.delay_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// The links of `node` stall and reset now and then.
    pub fn lossy(&self, node: usize, stall_permille: u32, reset_permille: u32) {
        for link in self.touching(node) {
            link.stall_permille.store(stall_permille, Ordering::Relaxed);
            link.reset_permille.store(reset_permille, Ordering::Relaxed);
        }
    }

    pub fn heal(&self) {
        for link in self.peers.values().chain(&self.clients) {
            link.heal();
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.heal();
        self.stop.store(true, Ordering::Relaxed);
        for port in &self.ports {
            // Wakes the accept loop, which then sees `stop`.
            let _ = TcpStream::connect(("127.0.0.1", *port));
        }
    }
}

fn accept(listener: TcpListener, upstream: u16, link: Arc<Link>, stop: Arc<AtomicBool>, seed: u64) {
    let mut seeds = StdRng::seed_from_u64(seed);
    for down in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(down) = down else { continue };
        let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
            continue;
        };
        let _ = (down.set_nodelay(true), up.set_nodelay(true));
        for (from, to, back) in [(&down, &up, false), (&up, &down, true)] {
            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                continue;
            };
            let (link, stop) = (Arc::clone(&link), Arc::clone(&stop));
            let rng = StdRng::seed_from_u64(seeds.gen());
            std::thread::spawn(move || pump(from, to, &link, back, &stop, rng));
        }
    }
}

/// Copies one direction: holding the bytes while that direction is cut,
/// delaying, stalling or resetting as the link says.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    link: &Link,
    back: bool,
    stop: &AtomicBool,
    mut rng: StdRng,
) {
    let blocked = if back {
        &link.block_back
    } else {
        &link.block_forward
    };
    let hold = || {
        while blocked.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut buf = vec![0u8; 64 << 10];
    loop {
        hold();
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if rng.gen_range(0..1000) < link.reset_permille.load(Ordering::Relaxed) {
            break;
        }
        let mut wait = link.delay_ms.load(Ordering::Relaxed);
        if rng.gen_range(0..1000) < link.stall_permille.load(Ordering::Relaxed) {
            wait += rng.gen_range(200..1500);
        }
        if wait > 0 {
            std::thread::sleep(Duration::from_millis(wait));
        }
        hold();
        if stop.load(Ordering::Relaxed) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
