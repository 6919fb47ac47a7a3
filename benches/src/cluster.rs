//! The servers a benchmark starts itself: one target is a standalone server
//! or an ensemble of N nodes of the same kind (`zk-server` on either backend,
//! or Apache ZooKeeper from Debian's jar), each node on free loopback ports
//! with its own directory, config and `myid`. Used by `compare` and
//! `failover`; not the load (`run.rs`).
//!
//! Invariant: every process this starts runs in its own process group and is
//! killed with its group however the run ends — `Node` kills on drop, a
//! paused node is continued before it is asked to stop, and SIGINT, SIGTERM
//! or SIGHUP to `zk-bench` kill every live group before it exits
//! (`on_signal_kill_servers`).

use crate::conn::Conn;
use engine::request::Request;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Process groups of the live nodes, for the signal handler: 0 is a free
/// slot. More nodes than slots still run; they are only not covered.
static GROUPS: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];

fn register_group(pgid: i32) {
    for slot in &GROUPS {
        if slot
            .compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

fn unregister_group(pgid: i32) {
    for slot in &GROUPS {
        let _ = slot.compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

extern "C" fn kill_groups_and_exit(signal: libc::c_int) {
    for slot in &GROUPS {
        let pgid = slot.load(Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: killpg(2) and _exit(2) are async-signal-safe; the
            // groups are our own children's.
            unsafe {
                libc::killpg(pgid, libc::SIGCONT);
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
    // SAFETY: as above.
    unsafe { libc::_exit(128 + signal) }
}

/// Makes SIGINT, SIGTERM and SIGHUP kill every server this process started
/// (their process groups do not get the terminal's signals) before exiting.
pub fn on_signal_kill_servers() {
    let handler = kill_groups_and_exit as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs a handler that only makes async-signal-safe calls.
        unsafe {
            libc::signal(signal, handler);
        }
    }
}

/// How long a four-letter word may take before the node counts as silent.
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `zk-server` with `storage.backend=native`.
    Native,
    /// `zk-server` with `storage.backend=rocksdb`.
    Rocks,
    /// `zk-server` native with `readConsistency=linearizable`.
    Linearizable,
    /// Apache ZooKeeper: `ZooKeeperServerMain` standalone, `QuorumPeerMain`
    /// in an ensemble.
    Reference,
}

impl Kind {
    pub fn parse(name: &str) -> Result<Kind, String> {
        match name {
            "zk-server" | "native" => Ok(Kind::Native),
            "zk-server-rocksdb" | "rocksdb" => Ok(Kind::Rocks),
            "zk-server-linearizable" | "linearizable" => Ok(Kind::Linearizable),
            "zookeeper" | "reference" => Ok(Kind::Reference),
            other => Err(format!(
                "unknown target {other:?}: use zk-server, zk-server-rocksdb, zk-server-linearizable or zookeeper"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Native => "zk-server",
            Kind::Rocks => "zk-server-rocksdb",
            Kind::Linearizable => "zk-server-linearizable",
            Kind::Reference => "zookeeper",
        }
    }

    pub fn ours(self) -> bool {
        matches!(self, Kind::Native | Kind::Rocks | Kind::Linearizable)
    }
}

/// The jar Debian's `zookeeper` package installs; its manifest's
/// `Class-Path` names the dependencies beside it.
pub const DEBIAN_ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// How to run each kind.
#[derive(Clone, Debug)]
pub struct Launch {
    pub zk_server: PathBuf,
    pub zookeeper_jar: PathBuf,
    pub java: String,
    /// Extra JVM options for the reference (e.g. `-Xmx2g`); none by default.
    pub jvm_flags: Vec<String>,
}

impl Launch {
    /// An error naming what to install or build when a kind cannot run.
    pub fn check(&self, kinds: &[Kind]) -> io::Result<()> {
        if kinds.iter().any(|k| k.ours()) && !self.zk_server.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no zk-server at {} (build it: cargo build --release -p server, with --features rocksdb for the RocksDB target, or pass --zk-server)",
                    self.zk_server.display()
                ),
            ));
        }
        if kinds.contains(&Kind::Reference) && !self.zookeeper_jar.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no Apache ZooKeeper at {} (install Debian's package: apt-get install zookeeper default-jre-headless)",
                    self.zookeeper_jar.display()
                ),
            ));
        }
        Ok(())
    }
}

/// A free loopback port below the kernel's ephemeral range: a port from
/// that range can be taken, while its node is stopped, as the local port of
/// some outgoing connection, and the node could not bind it again (seen
/// with zk-chaos restarting members). Never the same port twice in one
/// process.
pub fn free_port() -> io::Result<u16> {
    use rand::Rng;
    use std::sync::Mutex;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let low = 10_000.min(ephemeral_low / 2);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = rand::thread_rng();
    for _ in 0..1_000 {
        let port = rng.gen_range(low..ephemeral_low);
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One server process of a target.
pub struct Node {
    /// `myid` (1-based) in an ensemble.
    pub id: usize,
    dir: PathBuf,
    pub client_port: u16,
    quorum_port: u16,
    election_port: u16,
    child: Option<Child>,
    /// Monotonic restarts, to keep each start's log.
    starts: u32,
    paused: bool,
}

impl Node {
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The quorum and election ports this node listens on.
    pub fn peer_ports(&self) -> (u16, u16) {
        (self.quorum_port, self.election_port)
    }

    fn signal(&self, signal: i32) {
        let Some(child) = self.child.as_ref() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on the process group our own unreaped child
            // leads (it was spawned with process_group(0)).
            unsafe {
                libc::killpg(pid, signal);
            }
        }
    }

    /// SIGKILL to the node's process group, then reap it.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
            forget_group(&child);
        }
        self.paused = false;
    }

    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.paused = true;
    }

    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
        self.paused = false;
    }

    /// SIGTERM (and SIGCONT, should it be paused), then SIGKILL after 60 s.
    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.signal(libc::SIGTERM);
        if self.paused {
            self.resume();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    // The leader is gone; take the rest of its group along.
                    self.signal(libc::SIGKILL);
                    if let Some(child) = self.child.take() {
                        forget_group(&child);
                    }
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// If the process has exited on its own: how, and the end of its log.
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().ok()??;
        forget_group(child);
        self.child = None;
        Some(format!("{status}; its log ends:\n{}", self.log_tail(4)))
    }

    /// The last `lines` lines of the current start's log.
    fn log_tail(&self, lines: usize) -> String {
        let log = self.dir.join(format!("server-{}.log", self.starts));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// An error if the process has exited on its own.
    fn check_alive(&mut self, kind: Kind) -> io::Result<()> {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait()? {
                forget_group(child);
                self.child = None;
                let tail = self.log_tail(12);
                return Err(io::Error::other(format!(
                    "{} node {} exited ({status}); see {}; its log ends:\n{tail}",
                    kind.name(),
                    self.id,
                    self.dir.display()
                )));
            }
        }
        Ok(())
    }

    /// `Mode:` of `srvr`, or `None` when the node does not answer in time
    /// (stopped, paused, or not serving).
    pub fn mode(&self) -> Option<String> {
        srvr_mode(&self.address())
    }

    /// Resident set size of the server process, bytes.
    pub fn rss(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    }
}

fn forget_group(child: &Child) {
    if let Ok(pgid) = i32::try_from(child.id()) {
        unregister_group(pgid);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.paused {
            self.resume();
        }
        self.kill();
    }
}

/// Sends a four-letter word and returns the whole answer.
pub fn four_letter(address: &str, word: &str, timeout: Duration) -> io::Result<String> {
    let addr: SocketAddr = address
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{address}: {e}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(word.as_bytes())?;
    let mut text = String::new();
    stream.take(1 << 20).read_to_string(&mut text)?;
    Ok(text)
}

/// The `Mode:` line of a `srvr` answer.
pub fn parse_mode(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("Mode:"))
        .map(|mode| mode.trim().to_string())
}

fn srvr_mode(address: &str) -> Option<String> {
    four_letter(address, "srvr", FOUR_LETTER_TIMEOUT)
        .ok()
        .as_deref()
        .and_then(parse_mode)
}

/// The node that leads when the modes show exactly one leader and every
/// other node following; `None` otherwise.
pub fn settled_leader(modes: &[Option<String>]) -> Option<usize> {
    let mut leader = None;
    for (i, mode) in modes.iter().enumerate() {
        match mode.as_deref() {
            Some("leader") if leader.is_none() => leader = Some(i),
            Some("follower") => {}
            _ => return None,
        }
    }
    leader
}

/// One target: a standalone server (one node, no `server.N` lines) or an
/// ensemble.
pub struct Cluster {
    pub kind: Kind,
    pub nodes: Vec<Node>,
    /// zoo.cfg lines every node gets beyond the shared ones.
    pub extra_config: String,
    /// Environment variables for one node's process (index, name, value).
    pub node_env: Vec<(usize, String, String)>,
    /// Where node `.0` reaches node `.1`'s quorum and election ports, if
    /// not at them (a proxy in between): the member lists differ only in
    /// ports, which the peers' handshake does not compare.
    pub peer_ports: std::collections::HashMap<(usize, usize), (u16, u16)>,
}

impl Cluster {
    pub fn new(kind: Kind, root: &Path, index: usize, size: usize) -> io::Result<Cluster> {
        let dir = root.join(format!("{index}-{}-{size}", kind.name()));
        let mut nodes = Vec::new();
        for id in 1..=size.max(1) {
            let node_dir = dir.join(format!("node{id}"));
            std::fs::create_dir_all(&node_dir)?;
            nodes.push(Node {
                id,
                dir: node_dir,
                client_port: free_port()?,
                quorum_port: free_port()?,
                election_port: free_port()?,
                child: None,
                starts: 0,
                paused: false,
            });
        }
        Ok(Cluster {
            kind,
            nodes,
            extra_config: String::new(),
            node_env: Vec::new(),
            peer_ports: std::collections::HashMap::new(),
        })
    }

    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    pub fn ensemble(&self) -> bool {
        self.nodes.len() > 1
    }

    /// `zk-server` standalone, `zk-server×3` for an ensemble.
    pub fn label(&self) -> String {
        label(self.kind, self.size())
    }

    /// Every node's client address, comma-separated (a connect string).
    pub fn connect_string(&self) -> String {
        self.nodes
            .iter()
            .map(Node::address)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(Node::address).collect()
    }

    /// The settings every target shares (fsync on, the reference's defaults
    /// otherwise), plus what this kind needs, plus the member list in an
    /// ensemble. Every AdminServer is off: a benchmark binds nothing but
    /// its client and peer ports.
    fn write_config(&self, index: usize, snap_count: u64) -> io::Result<PathBuf> {
        let node = &self.nodes[index];
        let mut cfg = format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
             clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nforceSync=yes\n\
             snapCount={snap_count}\n4lw.commands.whitelist=*\n\
             admin.enableServer=false\n",
            node.data_dir().display(),
            node.client_port
        );
        match self.kind {
            Kind::Native => cfg.push_str("storage.backend=native\n"),
            Kind::Rocks => cfg.push_str("storage.backend=rocksdb\n"),
            Kind::Linearizable => {
                cfg.push_str("storage.backend=native\nreadConsistency=linearizable\n")
            }
            Kind::Reference => {}
        }
        cfg.push_str(&self.extra_config);
        if self.ensemble() {
            for (other, member) in self.nodes.iter().enumerate() {
                let (quorum, election) = self
                    .peer_ports
                    .get(&(index, other))
                    .copied()
                    .unwrap_or((member.quorum_port, member.election_port));
                cfg.push_str(&format!(
                    "server.{}=127.0.0.1:{quorum}:{election}\n",
                    member.id
                ));
            }
            std::fs::create_dir_all(node.data_dir())?;
            std::fs::write(node.data_dir().join("myid"), format!("{}\n", node.id))?;
        }
        let path = node.dir.join("zoo.cfg");
        std::fs::write(&path, cfg)?;
        Ok(path)
    }

    /// Starts one node (not waiting for it) and returns the spawn instant.
    pub fn start_node(
        &mut self,
        index: usize,
        launch: &Launch,
        snap_count: u64,
    ) -> io::Result<Instant> {
        self.nodes[index].stop();
        let cfg = self.write_config(index, snap_count)?;
        let ensemble = self.ensemble();
        let node = &mut self.nodes[index];
        node.starts += 1;
        let log = std::fs::File::create(node.dir.join(format!("server-{}.log", node.starts)))?;
        let mut command = match self.kind {
            Kind::Native | Kind::Rocks | Kind::Linearizable => Command::new(&launch.zk_server),
            Kind::Reference => {
                let mut java = Command::new(&launch.java);
                java.args(&launch.jvm_flags)
                    .arg("-cp")
                    .arg(&launch.zookeeper_jar)
                    .arg(if ensemble {
                        "org.apache.zookeeper.server.quorum.QuorumPeerMain"
                    } else {
                        "org.apache.zookeeper.server.ZooKeeperServerMain"
                    });
                java
            }
        };
        for (_, name, value) in self.node_env.iter().filter(|(i, _, _)| *i == index) {
            command.env(name, value);
        }
        command
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let started = Instant::now();
        let child = command.spawn()?;
        if let Ok(pgid) = i32::try_from(child.id()) {
            register_group(pgid);
        }
        node.child = Some(child);
        node.paused = false;
        Ok(started)
    }

    /// Starts every node; returns when the first was spawned.
    pub fn start(&mut self, launch: &Launch, snap_count: u64) -> io::Result<Instant> {
        let started = Instant::now();
        for index in 0..self.nodes.len() {
            self.start_node(index, launch, snap_count)?;
        }
        Ok(started)
    }

    pub fn stop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
    }

    pub fn modes(&self) -> Vec<Option<String>> {
        self.nodes.iter().map(Node::mode).collect()
    }

    /// Waits until the target serves and returns when it first did. A
    /// standalone server: a session can read `path` (`None`: one
    /// connects). An ensemble: one node leads, every other follows, and a
    /// session on every node can read `path` (or connect).
    pub fn wait_serving(&mut self, path: Option<&str>, limit: Duration) -> io::Result<Instant> {
        if !self.ensemble() {
            return self.wait_node_serving(0, path, limit);
        }
        let deadline = Instant::now() + limit;
        loop {
            for node in &mut self.nodes {
                node.check_alive(self.kind)?;
            }
            if settled_leader(&self.modes()).is_some() {
                let all = self
                    .nodes
                    .iter()
                    .all(|node| node_reads(&node.address(), path, Duration::from_secs(2)));
                if all {
                    return Ok(Instant::now());
                }
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} has no settled leader serving after {limit:?} (modes {:?})",
                        self.label(),
                        self.modes()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until one node serves (in an ensemble: says it leads or
    /// follows, then reads `path`). A new attempt starts every 20 ms on its
    /// own thread rather than one after another: a server may accept a
    /// connection while still loading and leave it unanswered (Apache
    /// ZooKeeper does), and waiting out such an attempt would add its
    /// timeout to the figure. Stalled attempts end when the server
    /// answers, stops, or after `Conn`'s 30 s read timeout.
    pub fn wait_node_serving(
        &mut self,
        index: usize,
        path: Option<&str>,
        limit: Duration,
    ) -> io::Result<Instant> {
        let deadline = Instant::now() + limit;
        let ensemble = self.ensemble();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Instant>();
        loop {
            self.nodes[index].check_alive(self.kind)?;
            let address = self.nodes[index].address();
            let path = path.map(str::to_string);
            let ready_tx = ready_tx.clone();
            std::thread::spawn(move || {
                if ensemble
                    && !matches!(srvr_mode(&address).as_deref(), Some("leader" | "follower"))
                {
                    return;
                }
                if node_reads(&address, path.as_deref(), Duration::from_secs(30)) {
                    let _ = ready_tx.send(Instant::now());
                }
            });
            if let Ok(at) = ready_rx.recv_timeout(Duration::from_millis(20)) {
                return Ok(at);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} node {} not serving after {limit:?}",
                        self.kind.name(),
                        self.nodes[index].id
                    ),
                ));
            }
        }
    }

    /// Resident memory of the first node.
    pub fn rss(&self) -> Option<u64> {
        self.nodes.first()?.rss()
    }

    /// Bytes on disk under every node's data directory.
    pub fn disk_bytes(&self) -> u64 {
        self.nodes.iter().map(|n| dir_size(&n.data_dir())).sum()
    }

    pub fn remove_data(&self) {
        for node in &self.nodes {
            let _ = std::fs::remove_dir_all(node.data_dir());
        }
    }
}

pub fn label(kind: Kind, size: usize) -> String {
    if size > 1 {
        format!("{}×{size}", kind.name())
    } else {
        kind.name().to_string()
    }
}

/// Whether a new session on `address` reads `path` (or, with `None`,
/// connects) within `timeout`.
fn node_reads(address: &str, path: Option<&str>, timeout: Duration) -> bool {
    let Ok(mut conn) = Conn::connect_timeout(address, timeout, None) else {
        return false;
    };
    let ok = match path {
        None => true,
        Some(path) => matches!(
            conn.call(&Request::GetData {
                path: path.to_string(),
                watch: false
            }),
            Ok(0)
        ),
    };
    let _ = conn.close();
    ok
}

/// Bytes allocated on disk under `path` (what `du` counts: preallocated
/// but sparse space is not charged).
pub fn dir_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modes(list: &[Option<&str>]) -> Vec<Option<String>> {
        list.iter().map(|m| m.map(str::to_string)).collect()
    }

    #[test]
    fn a_leader_is_settled_only_with_every_other_node_following() {
        let f = Some("follower");
        let l = Some("leader");
        assert_eq!(settled_leader(&modes(&[f, l, f])), Some(1));
        assert_eq!(settled_leader(&modes(&[f, f, f])), None);
        assert_eq!(settled_leader(&modes(&[l, l, f])), None);
        assert_eq!(settled_leader(&modes(&[l, None, f])), None);
        assert_eq!(settled_leader(&modes(&[l, Some("looking"), f])), None);
    }

    /// The handler's table holds each live group once and frees its slot.
    #[test]
    fn process_groups_are_registered_until_reaped() {
        let live = || {
            GROUPS
                .iter()
                .filter(|g| g.load(Ordering::SeqCst) > 0)
                .count()
        };
        let before = live();
        register_group(999_991);
        register_group(999_992);
        assert_eq!(live(), before + 2);
        unregister_group(999_991);
        assert_eq!(live(), before + 1);
        unregister_group(999_992);
        assert_eq!(live(), before);
    }

    #[test]
    fn mode_line_of_srvr() {
        let text = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(parse_mode(text).as_deref(), Some("follower"));
        assert_eq!(
            parse_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }
}
