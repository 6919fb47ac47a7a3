//! A deterministic simulation of an ensemble in one thread, for tests: peers,
//! a network that loses, duplicates, delays and reorders messages and can be
//! partitioned (both ways or one way), disks whose writes complete late (slow
//! or stalled) and are lost if the node crashes first, and ticks that drift
//! between nodes. Everything random comes from one seed, so a run replays
//! exactly. It does no I/O either: disks and network are in memory.
//!
//! After every step it checks Zab's invariants (see the crate docs) and stops
//! with a description of the first violation:
//! - at most one leader establishes itself per epoch;
//! - a follower sends ACK (or NEWLEADER ack) only for what its disk holds, and
//!   a NEWLEADER ack only once its disk says currentEpoch is the new epoch;
//! - a zxid is announced committed only when a quorum of voters' disks hold it;
//! - every node's applied sequence is a prefix of one global committed
//!   sequence (nothing committed is lost, reordered or applied twice);
//! - an established leader's initial history starts with every committed txn;
//! - with reconfiguration on, a commit holds a majority of the voters in
//!   force at its place in the committed sequence (and of the new voters, for
//!   a change), and a peer activates only a committed change.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use crate::{
    Action, Config, Durable, Epoch, Epochs, Membership, Message, Peer, Prng, Role, ServerId,
    SyncMode, Txn, Zxid,
};

/// How hostile the environment is. Probabilities are per message; weights are
/// relative to the scheduler's other events.
#[derive(Clone, Debug)]
pub struct Faults {
    pub loss: f64,
    pub duplicate: f64,
    /// A message is delivered 0..=max_delay steps after it is sent, and in any
    /// order among those that are due.
    pub max_delay: u64,
    pub crash_weight: f64,
    pub partition_weight: f64,
    pub compact_weight: f64,
    /// Weight of toggling a node's disk between stalled and working.
    pub stall_weight: f64,
    /// Disks differ in speed (1 = uniform).
    pub disk_speed_spread: u32,
    /// Nodes' ticks differ in rate (1 = uniform).
    pub tick_spread: u32,
    /// The chance that a (re)start replays the whole durable log into the
    /// state machine, as the server does, instead of recovering the
    /// snapshot with the log above it: the peer's floor is then its last
    /// durable zxid, and none of it is settled (the server records nothing
    /// of what was committed).
    pub replay_restarts: f64,
    /// Weight of the established leader proposing a random membership (of
    /// the members and the spare nodes, see `Limits::spares`).
    pub reconfig_weight: f64,
}

impl Faults {
    pub fn none() -> Faults {
        Faults {
            loss: 0.0,
            duplicate: 0.0,
            max_delay: 0,
            crash_weight: 0.0,
            partition_weight: 0.0,
            compact_weight: 0.0,
            stall_weight: 0.0,
            disk_speed_spread: 1,
            tick_spread: 1,
            replay_restarts: 0.0,
            reconfig_weight: 0.0,
        }
    }

    /// A fault profile drawn from the seed, so seeds explore different mixes.
    pub fn random(rng: &mut Prng) -> Faults {
        let mut pick = |max: f64| (rng.below(1001) as f64 / 1000.0) * max;
        let loss = pick(0.12);
        let duplicate = pick(0.05);
        let crash_weight = pick(0.6);
        let partition_weight = pick(0.5);
        let compact_weight = pick(0.6);
        let stall_weight = pick(0.3);
        Faults {
            loss,
            duplicate,
            max_delay: rng.below(10),
            crash_weight,
            partition_weight,
            compact_weight,
            stall_weight,
            disk_speed_spread: 1 + rng.below(8) as u32,
            tick_spread: 1 + rng.below(3) as u32,
            replay_restarts: 0.5,
            reconfig_weight: 0.0,
        }
    }
}

/// A message in flight.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub from: ServerId,
    pub to: ServerId,
    pub message: Message,
    pub deliver_at: u64,
    /// The leader's state attached to a SNAP.
    pub snapshot: Option<Vec<Txn>>,
}

/// Decides which messages a scenario drops.
pub type DropFilter = Box<dyn Fn(&Envelope) -> bool>;

/// A write waiting for the disk.
#[derive(Clone, Debug)]
enum Write {
    Append(Vec<Txn>),
    Truncate(Zxid),
    Install(Zxid, Vec<Txn>),
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub epochs: Epochs,
    /// The state machine's snapshot: every txn up to the floor.
    pub snapshot: Vec<Txn>,
    pub log: Vec<Txn>,
    /// The newest snapshot the driver took of settled state. A SNAP's
    /// installed state is not settled (its leader may never establish).
    pub settled: Zxid,
    /// The last `Action::Activate`: the membership in force and the zxid of
    /// the change that made it (the server's dynamic config file).
    pub active: Option<(Zxid, Membership)>,
}

impl Disk {
    pub fn floor(&self) -> Zxid {
        self.snapshot.last().map_or(Zxid::ZERO, |t| t.zxid)
    }

    /// The txn with this zxid, from the log or the snapshot.
    pub fn get(&self, zxid: Zxid) -> Option<&Txn> {
        for part in [&self.log, &self.snapshot] {
            if let Ok(i) = part.binary_search_by(|t| t.zxid.cmp(&zxid)) {
                return Some(&part[i]);
            }
        }
        None
    }

    /// True if the disk holds `zxid` (zero is the empty history, always held).
    pub fn has(&self, zxid: Zxid) -> bool {
        zxid == Zxid::ZERO || self.get(zxid).is_some()
    }

    pub fn last(&self) -> Zxid {
        self.log.last().map_or(self.floor(), |t| t.zxid)
    }

    /// Every durable txn: the snapshot's, then the log's.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &Txn> {
        self.snapshot.iter().chain(self.log.iter())
    }
}

pub struct Node {
    pub id: ServerId,
    pub peer: Option<Peer>,
    pub disk: Disk,
    pending_log: VecDeque<Write>,
    pending_epochs: VecDeque<Epochs>,
    /// The state machine at the in-memory floor.
    base: Vec<Txn>,
    /// Mirror of the peer's in-memory log, built from its actions.
    mem_log: Vec<Txn>,
    /// This incarnation's state machine: the txns applied, in order.
    pub applied: Vec<Txn>,
    applied_checked: usize,
    staged: Option<Vec<Txn>>,
    pub disk_stalled: bool,
    /// Only log writes are stalled; epoch writes still land.
    pub log_stalled: bool,
    disk_speed: u32,
    tick_weight: u32,
    pub incarnation: u32,
}

impl Node {
    pub fn is_up(&self) -> bool {
        self.peer.is_some()
    }

    pub fn role(&self) -> Option<Role> {
        self.peer.as_ref().map(Peer::role)
    }

    /// The node's whole history as its peer sees it: snapshot, then log.
    pub fn history(&self) -> impl Iterator<Item = &Txn> {
        self.base.iter().chain(self.mem_log.iter())
    }

    pub fn has_pending_writes(&self) -> bool {
        !self.pending_log.is_empty() || !self.pending_epochs.is_empty()
    }
}

/// Counts for the closing report.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub steps: u64,
    /// NEWLEADER messages sent, by sync mode.
    pub diffs: u64,
    pub truncs: u64,
    pub snaps: u64,
    pub committed: usize,
    pub elections: usize,
    pub crashes: usize,
    pub delivered: u64,
    /// Read indexes a leader answered (`Peer::read_index`), and refused.
    pub reads: u64,
    pub reads_refused: u64,
}

pub struct Sim {
    pub seed: u64,
    rng: Prng,
    now: u64,
    pub nodes: BTreeMap<ServerId, Node>,
    voters: BTreeSet<ServerId>,
    observers: BTreeSet<ServerId>,
    net: Vec<Envelope>,
    blocked: BTreeSet<(ServerId, ServerId)>,
    pub faults: Faults,
    /// The global committed sequence.
    committed: Vec<Txn>,
    leaders: BTreeMap<Epoch, ServerId>,
    proposals: u64,
    pub stats: Stats,
    /// When set, every event is recorded for printing.
    pub trace: Option<Vec<String>>,
    /// A hook to drop chosen messages (scenarios).
    pub drop_filter: Option<DropFilter>,
    pub max_counter: u32,
    /// `Config::max_diff_bytes` of every node.
    pub max_diff_bytes: usize,
    /// Read indexes asked and not yet answered: ctx → (the peer asked, the
    /// global commit point when asked).
    reads: BTreeMap<u64, (ServerId, Zxid)>,
    next_read: u64,
}

/// The peer limits a simulation runs under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_counter: u32,
    pub max_diff_bytes: usize,
    /// Nodes outside the initial membership, running from the start (servers
    /// that a reconfiguration may add).
    pub spares: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_counter: u32::MAX,
            max_diff_bytes: crate::DEFAULT_MAX_DIFF_BYTES,
            spares: 0,
        }
    }
}

/// The txn a simulated reconfiguration proposes: `reconfig:<voters>|<observers>`,
/// ids comma-separated.
pub fn encode_reconfig(membership: &Membership) -> Vec<u8> {
    let list = |ids: &BTreeSet<ServerId>| {
        ids.iter()
            .map(|id| id.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "reconfig:{}|{}",
        list(&membership.voters),
        list(&membership.observers)
    )
    .into_bytes()
}

/// `Config::reconfig_of` in the simulation: reads `encode_reconfig`'s txns.
pub fn reconfig_of(data: &[u8]) -> Option<Membership> {
    let text = std::str::from_utf8(data).ok()?.strip_prefix("reconfig:")?;
    let (voters, observers) = text.split_once('|')?;
    let parse = |list: &str| -> Option<BTreeSet<ServerId>> {
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().ok().map(ServerId))
            .collect()
    };
    Some(Membership {
        voters: parse(voters)?,
        observers: parse(observers)?,
    })
}

/// The newest membership change among `txns`.
fn last_change<'a>(txns: impl DoubleEndedIterator<Item = &'a Txn>) -> Option<(Zxid, Membership)> {
    txns.rev()
        .find_map(|t| reconfig_of(&t.data).map(|m| (t.zxid, m)))
}

impl Sim {
    pub fn new(seed: u64, voters: usize, observers: usize, faults: Faults) -> Sim {
        Sim::with_max_counter(seed, voters, observers, faults, u32::MAX)
    }

    /// Like `new`, with leaders limited to `max_counter` zxids per epoch.
    pub fn with_max_counter(
        seed: u64,
        voters: usize,
        observers: usize,
        faults: Faults,
        max_counter: u32,
    ) -> Sim {
        let limits = Limits {
            max_counter,
            ..Limits::default()
        };
        Sim::with_limits(seed, voters, observers, faults, limits)
    }

    /// Like `new`, with the peers' limits set.
    pub fn with_limits(
        seed: u64,
        voters: usize,
        observers: usize,
        faults: Faults,
        limits: Limits,
    ) -> Sim {
        let mut rng = Prng::from_seed(seed);
        let voter_ids: BTreeSet<ServerId> = (1..=voters as u64).map(ServerId).collect();
        let observer_ids: BTreeSet<ServerId> = (voters as u64 + 1..=(voters + observers) as u64)
            .map(ServerId)
            .collect();
        let first_spare = (voters + observers) as u64 + 1;
        let spare_ids: Vec<ServerId> = (first_spare..first_spare + limits.spares as u64)
            .map(ServerId)
            .collect();
        let mut nodes = BTreeMap::new();
        for &id in voter_ids
            .iter()
            .chain(observer_ids.iter())
            .chain(&spare_ids)
        {
            nodes.insert(
                id,
                Node {
                    id,
                    peer: None,
                    disk: Disk::default(),
                    pending_log: VecDeque::new(),
                    pending_epochs: VecDeque::new(),
                    base: Vec::new(),
                    mem_log: Vec::new(),
                    applied: Vec::new(),
                    applied_checked: 0,
                    staged: None,
                    disk_stalled: false,
                    log_stalled: false,
                    disk_speed: 1 + rng.below(u64::from(faults.disk_speed_spread.max(1))) as u32,
                    tick_weight: 4 + rng.below(u64::from(faults.tick_spread.max(1)) * 4) as u32,
                    incarnation: 0,
                },
            );
        }
        let mut sim = Sim {
            seed,
            rng,
            now: 0,
            nodes,
            voters: voter_ids,
            observers: observer_ids,
            net: Vec::new(),
            blocked: BTreeSet::new(),
            faults,
            committed: Vec::new(),
            leaders: BTreeMap::new(),
            proposals: 0,
            stats: Stats::default(),
            trace: None,
            drop_filter: None,
            max_counter: limits.max_counter,
            max_diff_bytes: limits.max_diff_bytes,
            reads: BTreeMap::new(),
            next_read: 0,
        };
        let ids: Vec<ServerId> = sim.nodes.keys().copied().collect();
        for id in ids {
            sim.start(id).expect("a fresh node starts");
        }
        sim
    }

    /// The config `id` (re)starts with: the membership its disk says is
    /// active (the initial one if none), and the change its durable state
    /// holds above that, pending.
    pub fn config(&self, id: ServerId) -> Config {
        let disk = &self.nodes[&id].disk;
        let mut config = match &disk.active {
            Some((zxid, m)) => {
                let mut config = Config::new(id, m.voters.clone(), m.observers.clone());
                config.version = *zxid;
                config
            }
            None => Config::new(id, self.voters.clone(), self.observers.clone()),
        };
        config.pending = last_change(disk.history()).filter(|(zxid, _)| *zxid > config.version);
        config.reconfig_of = reconfig_of;
        config.max_counter = self.max_counter;
        config.max_diff_bytes = self.max_diff_bytes;
        config
    }

    /// The initial voters.
    pub fn voters(&self) -> &BTreeSet<ServerId> {
        &self.voters
    }

    /// The voters in force at the end of the committed sequence.
    pub fn voters_in_force(&self) -> BTreeSet<ServerId> {
        last_change(self.committed.iter()).map_or_else(|| self.voters.clone(), |(_, m)| m.voters)
    }

    /// The global committed sequence so far.
    pub fn committed(&self) -> &[Txn] {
        &self.committed
    }

    /// Epochs and the leader that established each.
    pub fn established(&self) -> &BTreeMap<Epoch, ServerId> {
        &self.leaders
    }

    pub fn node(&self, id: ServerId) -> &Node {
        &self.nodes[&id]
    }

    pub fn peer(&self, id: ServerId) -> Option<&Peer> {
        self.nodes[&id].peer.as_ref()
    }

    /// The live, established leader with the highest epoch.
    pub fn leader(&self) -> Option<ServerId> {
        self.nodes
            .values()
            .filter_map(|n| {
                n.peer
                    .as_ref()
                    .and_then(|p| p.established_epoch().map(|e| (e, n.id)))
            })
            .max()
            .map(|(_, id)| id)
    }

    fn note(&mut self, event: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            trace.push(format!("[{}] {}", self.now, event()));
        }
    }

    /// Every node's state, one a line (for failure reports).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (id, node) in &self.nodes {
            let _ = match &node.peer {
                None => writeln!(out, "{id:?}: down"),
                Some(p) => writeln!(
                    out,
                    "{id:?}: {:?} round {} vote {:?} last {} committed {} epochs {:?} \
                     membership {:?} of {} pending {:?}",
                    p.role(),
                    p.round(),
                    p.vote(),
                    p.last_zxid(),
                    p.committed(),
                    p.epochs(),
                    p.config().membership(),
                    p.config().version,
                    p.pending_membership(),
                ),
            };
        }
        out
    }

    /// The recorded events, one a line.
    pub fn trace_text(&self) -> String {
        let mut out = String::new();
        for line in self.trace.iter().flatten() {
            let _ = writeln!(out, "{line}");
        }
        out
    }

    // ---- node lifecycle -----------------------------------------------------

    /// Starts a node, replaying its log or not as `Faults::replay_restarts`
    /// draws.
    fn start(&mut self, id: ServerId) -> Result<(), String> {
        let replay =
            self.faults.replay_restarts > 0.0 && self.rng.chance(self.faults.replay_restarts);
        self.start_as(id, replay)
    }

    fn start_as(&mut self, id: ServerId, replay: bool) -> Result<(), String> {
        let config = self.config(id);
        let prng = Prng::from_seed(self.rng.next_u64());
        let node = self.nodes.get_mut(&id).expect("node");
        // Replaying, the state is every durable txn and none of it settled,
        // as in the server; otherwise the snapshot, with the log above it.
        let (base, log, settled) = if replay {
            (
                node.disk.history().cloned().collect(),
                Vec::new(),
                Zxid::ZERO,
            )
        } else {
            (
                node.disk.snapshot.clone(),
                node.disk.log.clone(),
                node.disk.settled,
            )
        };
        let durable = Durable {
            epochs: node.disk.epochs,
            floor: base.last().map_or(Zxid::ZERO, |t: &Txn| t.zxid),
            log: log.clone(),
            settled,
        };
        node.base = base;
        node.mem_log = log;
        node.applied = node.base.clone();
        node.applied_checked = 0;
        node.staged = None;
        node.pending_log.clear();
        node.pending_epochs.clear();
        node.incarnation += 1;
        let peer = Peer::recover(config, prng, durable).map_err(|e| e.to_string())?;
        node.peer = Some(peer);
        let how = if replay { ", replaying its log" } else { "" };
        self.note(|| format!("{id:?} starts{how}"));
        self.after_call(id)
    }

    /// Crash a node. Of its unfinished writes, the first `survive` reach the
    /// disk anyway (a write can land without its completion being seen); the
    /// rest are lost.
    pub fn crash(&mut self, id: ServerId, survive: usize) {
        let node = self.nodes.get_mut(&id).expect("node");
        if node.peer.take().is_none() {
            return;
        }
        for _ in 0..survive {
            let Some(write) = node.pending_log.pop_front() else {
                break;
            };
            apply_write(&mut node.disk, write);
        }
        if survive > 0 {
            if let Some(epochs) = node.pending_epochs.pop_front() {
                node.disk.epochs = epochs;
            }
        }
        node.pending_log.clear();
        node.pending_epochs.clear();
        node.mem_log.clear();
        node.applied.clear();
        node.staged = None;
        self.stats.crashes += 1;
        self.note(|| format!("{id:?} crashes ({survive} unfinished writes land)"));
    }

    pub fn restart(&mut self, id: ServerId) -> Result<(), String> {
        if self.nodes[&id].is_up() {
            return Ok(());
        }
        self.start(id)?;
        self.check()
    }

    /// Restarts a node as the server does: its whole durable log replayed
    /// into its state, nothing of it known committed.
    pub fn restart_replaying(&mut self, id: ServerId) -> Result<(), String> {
        if self.nodes[&id].is_up() {
            return Ok(());
        }
        self.start_as(id, true)?;
        self.check()
    }

    /// Stall only the log: epoch writes still complete.
    pub fn stall_log(&mut self, id: ServerId, stalled: bool) {
        self.nodes.get_mut(&id).expect("node").log_stalled = stalled;
        self.note(|| format!("{id:?} log stalled={stalled}"));
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> &[Envelope] {
        &self.net
    }

    pub fn stall_disk(&mut self, id: ServerId, stalled: bool) {
        self.nodes.get_mut(&id).expect("node").disk_stalled = stalled;
        self.note(|| format!("{id:?} disk stalled={stalled}"));
    }

    /// Cut every link between `a` and the others, both ways.
    pub fn isolate(&mut self, a: ServerId) {
        let ids: Vec<ServerId> = self.nodes.keys().copied().collect();
        for b in ids {
            if b != a {
                self.blocked.insert((a, b));
                self.blocked.insert((b, a));
            }
        }
        self.note(|| format!("{a:?} isolated"));
    }

    /// Cut messages from `from` to `to` only.
    pub fn block(&mut self, from: ServerId, to: ServerId) {
        self.blocked.insert((from, to));
        self.note(|| format!("{from:?} -> {to:?} blocked"));
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
        self.note(|| "network healed".to_string());
    }

    // ---- driving peers --------------------------------------------------------

    /// Carry out a peer's actions the way a server would, checking the
    /// per-action rules.
    fn after_call(&mut self, id: ServerId) -> Result<(), String> {
        let Some(peer) = self.nodes.get_mut(&id).and_then(|n| n.peer.as_mut()) else {
            return Ok(());
        };
        let actions = peer.take_actions();
        // What an established leader knows committed is committed before any
        // of its actions (an `Activate` of it among them) is carried out.
        if peer.established_epoch().is_some() {
            let committed = peer.committed();
            self.observe_commit(id, committed)?;
        }
        for action in actions {
            self.perform(id, action)?;
        }
        // A leader's commit point is a commit announcement even before it is sent.
        let node = &self.nodes[&id];
        if let Some(peer) = &node.peer {
            if peer.established_epoch().is_some() {
                let committed = peer.committed();
                self.observe_commit(id, committed)?;
            }
        }
        Ok(())
    }

    fn perform(&mut self, id: ServerId, action: Action) -> Result<(), String> {
        let node = self.nodes.get_mut(&id).expect("node");
        let is_voter = node.peer.as_ref().is_some_and(|p| {
            p.config().is_voter(id)
                || p.pending_membership()
                    .is_some_and(|(_, m)| m.voters.contains(&id))
        });
        match action {
            Action::Send { to, message } => {
                let peer = node.peer.as_ref().expect("live");
                match &message {
                    Message::Ack { zxid, .. } if is_voter && !node.disk.has(*zxid) => {
                        return Err(format!("{id:?} acked {zxid} which its disk does not hold"));
                    }
                    Message::AckNewLeader { zxid, epoch, .. } => {
                        if !node.disk.has(*zxid) {
                            return Err(format!(
                                "{id:?} acked NEWLEADER up to {zxid} not on its disk"
                            ));
                        }
                        let accepted = peer.epochs().accepted;
                        if node.disk.epochs.current != accepted || *epoch != accepted {
                            return Err(format!(
                                "{id:?} acked NEWLEADER of epoch {accepted:?} with currentEpoch {:?} on disk",
                                node.disk.epochs.current
                            ));
                        }
                    }
                    _ => {}
                }
                match &message {
                    Message::NewLeader {
                        sync: SyncMode::Diff,
                        ..
                    } => self.stats.diffs += 1,
                    Message::NewLeader {
                        sync: SyncMode::Trunc { .. },
                        ..
                    } => self.stats.truncs += 1,
                    Message::NewLeader {
                        sync: SyncMode::Snap { .. },
                        ..
                    } => self.stats.snaps += 1,
                    _ => {}
                }
                let node = self.nodes.get_mut(&id).expect("node");
                let mut snapshot = None;
                if let Message::NewLeader {
                    sync: SyncMode::Snap { zxid },
                    ..
                } = &message
                {
                    let at = node.applied.last().map_or(Zxid::ZERO, |t| t.zxid);
                    if at != *zxid {
                        return Err(format!("{id:?} sent SNAP at {zxid} with its state at {at}"));
                    }
                    snapshot = Some(node.applied.clone());
                }
                let announced = match &message {
                    Message::Commit { zxid, .. } => Some(*zxid),
                    Message::UpToDate { committed, .. }
                    | Message::Inform { committed, .. }
                    | Message::Ping { committed, .. } => Some(*committed),
                    _ => None,
                };
                if let Some(zxid) = announced {
                    self.observe_commit(id, zxid)?;
                }
                self.send(id, to, message, snapshot);
            }
            Action::Append { txns } => {
                let last = node.mem_log.last().map_or_else(
                    || node.base.last().map_or(Zxid::ZERO, |t| t.zxid),
                    |t| t.zxid,
                );
                if txns.first().is_some_and(|t| t.zxid <= last)
                    || txns.windows(2).any(|w| w[0].zxid >= w[1].zxid)
                {
                    return Err(format!("{id:?} appended out of order after {last}"));
                }
                node.mem_log.extend(txns.iter().cloned());
                node.pending_log.push_back(Write::Append(txns));
            }
            Action::Truncate { after } => {
                let applied = node.applied.last().map_or(Zxid::ZERO, |t| t.zxid);
                if after < applied {
                    return Err(format!(
                        "{id:?} truncated to {after} below applied {applied}"
                    ));
                }
                node.mem_log.retain(|t| t.zxid <= after);
                node.pending_log.push_back(Write::Truncate(after));
            }
            Action::InstallSnapshot { zxid } => {
                let Some(state) = node.staged.take() else {
                    return Err(format!("{id:?} installs a snapshot it never received"));
                };
                if state.last().map_or(Zxid::ZERO, |t| t.zxid) != zxid {
                    return Err(format!(
                        "{id:?} installs snapshot {zxid} but received another"
                    ));
                }
                // Only the checked (settled) part may never be undone.
                let settled = &node.applied[..node.applied_checked];
                if settled.len() > state.len() || settled.iter().zip(&state).any(|(a, b)| a != b) {
                    return Err(format!("{id:?} SNAP at {zxid} would undo applied txns"));
                }
                node.base = state.clone();
                node.mem_log.clear();
                node.applied = state.clone();
                // The state's last membership change is pending until the
                // peer learns it committed (the server reads it out of the
                // snapshot's /zookeeper/config).
                let latest = last_change(state.iter());
                if let Some(peer) = node.peer.as_mut() {
                    peer.installed_membership(latest);
                }
                node.pending_log.push_back(Write::Install(zxid, state));
            }
            Action::Activate { zxid, membership } => {
                // Applied here, or heard of from a peer that activated it
                // (`Message::Membership`): either way committed.
                let Some(txn) = self.committed.iter().find(|t| t.zxid == zxid) else {
                    return Err(format!("{id:?} activates {zxid}, which is not committed"));
                };
                if reconfig_of(&txn.data).as_ref() != Some(&membership) {
                    return Err(format!(
                        "{id:?} activates {membership:?} of {zxid}, which committed something else"
                    ));
                }
                if node.disk.active.as_ref().is_some_and(|(z, _)| *z >= zxid) {
                    return Err(format!(
                        "{id:?} activates {zxid}, not after its active change"
                    ));
                }
                node.disk.active = Some((zxid, membership.clone()));
                self.note(|| format!("{id:?} activates {membership:?} of {zxid}"));
            }
            Action::PersistEpochs(epochs) => node.pending_epochs.push_back(epochs),
            Action::ReadIndex { ctx, zxid } => {
                let Some((asked, floor)) = self.reads.remove(&ctx) else {
                    return Err(format!("{id:?} answered read {ctx} nobody asked"));
                };
                if asked != id {
                    return Err(format!("{id:?} answered read {ctx} asked of {asked:?}"));
                }
                let Some(zxid) = zxid else {
                    self.stats.reads_refused += 1;
                    return Ok(());
                };
                // Linearizable: nothing committed before the read was asked
                // may be missing from its index, and the index is committed.
                if zxid < floor {
                    return Err(format!(
                        "{id:?} answered read {ctx} with {zxid}, before {floor} committed when it was asked (stale read)"
                    ));
                }
                let last = self.committed.last().map_or(Zxid::ZERO, |t| t.zxid);
                if zxid != Zxid::ZERO
                    && (zxid > last || !self.committed.iter().any(|t| t.zxid == zxid))
                {
                    return Err(format!(
                        "{id:?} answered read {ctx} with {zxid}, which is not committed"
                    ));
                }
                self.stats.reads += 1;
            }
            Action::Commit { upto } => {
                let from = node.applied.last().map_or(Zxid::ZERO, |t| t.zxid);
                if upto <= from {
                    return Err(format!(
                        "{id:?} asked to apply up to {upto}, already at {from}"
                    ));
                }
                let start = node.mem_log.partition_point(|t| t.zxid <= from);
                let contiguous = from == node.base.last().map_or(Zxid::ZERO, |t| t.zxid)
                    || (start > 0 && node.mem_log[start - 1].zxid == from);
                if !contiguous || !node.mem_log.iter().any(|t| t.zxid == upto) {
                    return Err(format!(
                        "{id:?} asked to apply {from}..{upto} which its log lacks"
                    ));
                }
                let txns: Vec<Txn> = node.mem_log[start..]
                    .iter()
                    .take_while(|t| t.zxid <= upto)
                    .cloned()
                    .collect();
                node.applied.extend(txns);
            }
        }
        Ok(())
    }

    fn send(&mut self, from: ServerId, to: ServerId, message: Message, snapshot: Option<Vec<Txn>>) {
        if self.blocked.contains(&(from, to))
            || (self.faults.loss > 0.0 && self.rng.chance(self.faults.loss))
        {
            return;
        }
        let copies = if self.faults.duplicate > 0.0 && self.rng.chance(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.below(self.faults.max_delay + 1);
            self.net.push(Envelope {
                from,
                to,
                message: message.clone(),
                deliver_at: self.now + delay,
                snapshot: snapshot.clone(),
            });
        }
    }

    fn deliver(&mut self, index: usize) -> Result<(), String> {
        let envelope = self.net.remove(index);
        if self.blocked.contains(&(envelope.from, envelope.to))
            || self.drop_filter.as_ref().is_some_and(|f| f(&envelope))
        {
            return Ok(());
        }
        let to = envelope.to;
        let node = self.nodes.get_mut(&to).expect("node");
        let Some(peer) = node.peer.as_mut() else {
            return Ok(());
        };
        if envelope.snapshot.is_some() {
            node.staged = envelope.snapshot;
        }
        self.stats.delivered += 1;
        let was_looking = peer.role() == Role::Looking;
        let from = envelope.from;
        let message = envelope.message;
        if self.trace.is_some() {
            let text = format!("{from:?} -> {to:?} {message:?}");
            self.note(|| text);
        }
        let peer = self
            .nodes
            .get_mut(&to)
            .and_then(|n| n.peer.as_mut())
            .expect("live");
        peer.step(from, message);
        if !was_looking && peer.role() == Role::Looking {
            self.stats.elections += 1;
        }
        self.after_call(to)
    }

    pub fn tick(&mut self, id: ServerId) -> Result<(), String> {
        let Some(peer) = self.nodes.get_mut(&id).and_then(|n| n.peer.as_mut()) else {
            return Ok(());
        };
        let was_looking = peer.role() == Role::Looking;
        peer.tick();
        if !was_looking && peer.role() == Role::Looking {
            self.stats.elections += 1;
        }
        self.note(|| format!("{id:?} ticks"));
        self.after_call(id)
    }

    /// Finish the node's oldest log write, then tell its peer.
    pub fn complete_write(&mut self, id: ServerId) -> Result<(), String> {
        let node = self.nodes.get_mut(&id).expect("node");
        let Some(write) = node.pending_log.pop_front() else {
            return Ok(());
        };
        let end = match &write {
            Write::Append(txns) => txns.last().map_or(Zxid::ZERO, |t| t.zxid),
            Write::Truncate(after) => *after,
            Write::Install(zxid, _) => *zxid,
        };
        if let Write::Append(txns) = &write {
            if txns.first().is_some_and(|t| t.zxid <= node.disk.last()) {
                return Err(format!(
                    "{id:?} disk append out of order after {}",
                    node.disk.last()
                ));
            }
        }
        apply_write(&mut node.disk, write);
        if let Some(peer) = node.peer.as_mut() {
            peer.persisted(end);
        }
        self.note(|| format!("{id:?} disk: durable up to {end}"));
        self.after_call(id)
    }

    pub fn complete_epochs(&mut self, id: ServerId) -> Result<(), String> {
        let node = self.nodes.get_mut(&id).expect("node");
        let Some(epochs) = node.pending_epochs.pop_front() else {
            return Ok(());
        };
        node.disk.epochs = epochs;
        if let Some(peer) = node.peer.as_mut() {
            peer.persisted_epochs();
        }
        self.note(|| format!("{id:?} disk: epochs {epochs:?}"));
        self.after_call(id)
    }

    /// A client write sent to the established leader, if any.
    pub fn propose(&mut self) -> Result<Option<Zxid>, String> {
        let Some(id) = self.leader() else {
            return Ok(None);
        };
        self.propose_on(id)
    }

    pub fn propose_on(&mut self, id: ServerId) -> Result<Option<Zxid>, String> {
        self.proposals += 1;
        let data = format!("write-{}", self.proposals).into_bytes();
        let Some(peer) = self.nodes.get_mut(&id).and_then(|n| n.peer.as_mut()) else {
            return Ok(None);
        };
        let zxid = peer.propose(data).ok();
        self.note(|| format!("{id:?} propose -> {zxid:?}"));
        self.after_call(id)?;
        Ok(zxid)
    }

    /// The established leader proposes a random membership of the nodes
    /// (1 to 5 voters, some observers), when a quorum of its voters is
    /// synced with it, as the server requires.
    pub fn propose_reconfig(&mut self) -> Result<Option<Zxid>, String> {
        let Some(id) = self.leader() else {
            return Ok(None);
        };
        let ids: Vec<ServerId> = self.nodes.keys().copied().collect();
        let want = 1 + self.rng.below(ids.len().min(5) as u64) as usize;
        let mut pool = ids.clone();
        let mut membership = Membership::default();
        while membership.voters.len() < want {
            let i = self.rng.below(pool.len() as u64) as usize;
            membership.voters.insert(pool.swap_remove(i));
        }
        for other in pool {
            if self.rng.chance(0.3) {
                membership.observers.insert(other);
            }
        }
        let Some(peer) = self.nodes.get_mut(&id).and_then(|n| n.peer.as_mut()) else {
            return Ok(None);
        };
        if !membership.is_quorum(&peer.synced()) {
            return Ok(None);
        }
        let zxid = peer.propose(encode_reconfig(&membership)).ok();
        self.note(|| format!("{id:?} proposes membership {membership:?} -> {zxid:?}"));
        self.after_call(id)?;
        Ok(zxid)
    }

    /// A linearizable read asked of `id` (answered, checked, in `perform`).
    pub fn read_on(&mut self, id: ServerId) -> Result<(), String> {
        let floor = self.committed.last().map_or(Zxid::ZERO, |t| t.zxid);
        let Some(peer) = self.nodes.get_mut(&id).and_then(|n| n.peer.as_mut()) else {
            return Ok(());
        };
        self.next_read += 1;
        let ctx = self.next_read;
        self.reads.insert(ctx, (id, floor));
        peer.read_index(ctx);
        self.note(|| format!("{id:?} read index {ctx} (committed {floor})"));
        self.after_call(id)
    }

    /// Take a snapshot at a random applied and durable zxid and compact.
    fn compact(&mut self, id: ServerId) -> Result<(), String> {
        let node = &self.nodes[&id];
        if !node.is_up() {
            return Ok(());
        }
        let candidates: Vec<Zxid> = node
            .applied
            .iter()
            .map(|t| t.zxid)
            .filter(|&z| node.disk.has(z) && node.peer.as_ref().is_some_and(|p| z <= p.settled()))
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let upto = candidates[self.rng.below(candidates.len() as u64) as usize];
        self.compact_to(id, upto);
        Ok(())
    }

    /// The node's driver snapshots its state at `upto` (applied and durable)
    /// and its peer forgets the log up to it. Returns whether it did.
    pub fn compact_to(&mut self, id: ServerId, upto: Zxid) -> bool {
        let node = self.nodes.get_mut(&id).expect("node");
        let Some(peer) = node.peer.as_mut() else {
            return false;
        };
        let Some(i) = node.applied.iter().position(|t| t.zxid == upto) else {
            return false;
        };
        if !node.disk.has(upto) || peer.compact(upto).is_err() {
            return false;
        }
        let state: Vec<Txn> = node.applied[..=i].to_vec();
        node.disk.snapshot = state.clone();
        node.disk.log.retain(|t| t.zxid > upto);
        node.disk.settled = upto;
        node.base = state;
        node.mem_log.retain(|t| t.zxid > upto);
        self.note(|| format!("{id:?} compacts to {upto}"));
        true
    }

    // ---- invariants ----------------------------------------------------------

    /// `id` says everything up to `zxid` is committed: extend the global
    /// sequence from its history, checking each new txn is on a quorum of disks.
    fn observe_commit(&mut self, id: ServerId, zxid: Zxid) -> Result<(), String> {
        let known = self.committed.last().map_or(Zxid::ZERO, |t| t.zxid);
        if zxid <= known {
            return Ok(());
        }
        let node = &self.nodes[&id];
        let history: Vec<&Txn> = node.history().collect();
        let start = history.partition_point(|t| t.zxid <= known);
        if known != Zxid::ZERO && (start == 0 || history[start - 1].zxid != known) {
            return Err(format!(
                "{id:?} announces commit {zxid} but its history does not contain committed {known}"
            ));
        }
        let mut in_force = self.voters_in_force();
        for txn in history[start..].iter().take_while(|t| t.zxid <= zxid) {
            let change = reconfig_of(&txn.data);
            let new = change.as_ref().map(|m| &m.voters);
            for voters in std::iter::once(&in_force).chain(new) {
                let copies = voters
                    .iter()
                    .filter(|v| {
                        self.nodes
                            .get(v)
                            .is_some_and(|n| n.disk.get(txn.zxid).is_some_and(|t| t == *txn))
                    })
                    .count();
                if copies * 2 <= voters.len() {
                    return Err(format!(
                        "{id:?} announces {} committed with {copies} durable copies of voters {voters:?}",
                        txn.zxid,
                    ));
                }
            }
            if let Some(m) = change {
                in_force = m.voters;
            }
            self.committed.push((*txn).clone());
        }
        let last = self.committed.last().map_or(Zxid::ZERO, |t| t.zxid);
        if last < zxid && !history.iter().any(|t| t.zxid == zxid) {
            return Err(format!(
                "{id:?} announces commit {zxid} which it does not have"
            ));
        }
        self.stats.committed = self.committed.len();
        Ok(())
    }

    /// The whole-state invariants, after every step.
    pub fn check(&mut self) -> Result<(), String> {
        let ids: Vec<ServerId> = self.nodes.keys().copied().collect();
        for id in ids {
            let node = &self.nodes[&id];
            let Some(peer) = &node.peer else { continue };
            if let Some(epoch) = peer.established_epoch() {
                match self.leaders.get(&epoch) {
                    Some(&other) if other != id => {
                        return Err(format!(
                            "two leaders established epoch {epoch:?}: {other:?} and {id:?}"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        // A new leader's initial history holds every txn
                        // committed in an earlier epoch. (A leader of epoch e
                        // whose last step was slow can finish establishing
                        // after epoch e+1 committed; it cannot hold those
                        // txns, and it can commit nothing new, since its
                        // quorum has moved on.)
                        let history: Vec<&Txn> = node.history().collect();
                        let earlier = self.committed.partition_point(|t| t.zxid.epoch() < epoch);
                        for (i, txn) in self.committed[..earlier].iter().enumerate() {
                            if history.get(i) != Some(&txn) {
                                return Err(format!(
                                    "{id:?} established epoch {epoch:?} without committed {}",
                                    txn.zxid
                                ));
                            }
                        }
                        self.leaders.insert(epoch, id);
                        self.note(|| format!("{id:?} established epoch {epoch:?}"));
                    }
                }
            }
            let node = self.nodes.get_mut(&id).expect("node");
            // What the peer holds settled must be committed; the state
            // above it (replayed at start-up, or a SNAP before UPTODATE) is
            // checked once it settles.
            let settled = node.peer.as_ref().map_or(Zxid::ZERO, Peer::settled);
            let mut checked = node.applied_checked;
            for i in node.applied_checked..node.applied.len() {
                if node.applied[i].zxid > settled {
                    break;
                }
                checked = i + 1;
                match self.committed.get(i) {
                    Some(txn) if *txn == node.applied[i] => {}
                    Some(txn) => {
                        return Err(format!(
                            "{id:?} applied {} at position {i} where {} was committed",
                            node.applied[i].zxid, txn.zxid
                        ))
                    }
                    None => {
                        return Err(format!(
                            "{id:?} applied {} which is not committed",
                            node.applied[i].zxid
                        ))
                    }
                }
            }
            node.applied_checked = checked;
        }
        Ok(())
    }

    // ---- schedulers ----------------------------------------------------------

    /// One random event, then the invariants.
    pub fn step(&mut self) -> Result<(), String> {
        self.now += 1;
        self.stats.steps += 1;
        let ready: Vec<usize> = (0..self.net.len())
            .filter(|&i| self.net[i].deliver_at <= self.now)
            .collect();
        let up: Vec<ServerId> = self
            .nodes
            .values()
            .filter(|n| n.is_up())
            .map(|n| n.id)
            .collect();
        let down: Vec<ServerId> = self
            .nodes
            .values()
            .filter(|n| !n.is_up())
            .map(|n| n.id)
            .collect();
        let disk_ready: Vec<(ServerId, u32)> = self
            .nodes
            .values()
            .filter(|n| n.is_up() && !n.disk_stalled && !n.log_stalled && !n.pending_log.is_empty())
            .map(|n| (n.id, n.disk_speed))
            .collect();
        let epochs_ready: Vec<ServerId> = self
            .nodes
            .values()
            .filter(|n| n.is_up() && !n.disk_stalled && !n.pending_epochs.is_empty())
            .map(|n| n.id)
            .collect();
        let f = self.faults.clone();
        let events: [(f64, u8); 12] = [
            (if ready.is_empty() { 0.0 } else { 40.0 }, 0),
            (if up.is_empty() { 0.0 } else { 10.0 }, 1),
            (if disk_ready.is_empty() { 0.0 } else { 15.0 }, 2),
            (if epochs_ready.is_empty() { 0.0 } else { 8.0 }, 3),
            (4.0, 4),
            (if up.is_empty() { 0.0 } else { f.crash_weight }, 5),
            (if down.is_empty() { 0.0 } else { 3.0 }, 6),
            (f.partition_weight, 7),
            (if self.blocked.is_empty() { 0.0 } else { 1.5 }, 8),
            (if up.is_empty() { 0.0 } else { f.compact_weight }, 9),
            (f.stall_weight, 10),
            (f.reconfig_weight, 11),
        ];
        let total: f64 = events.iter().map(|e| e.0).sum();
        let mut roll = (self.rng.below(1_000_000) as f64 / 1_000_000.0) * total;
        let mut event = 1;
        for (weight, kind) in events {
            if roll < weight {
                event = kind;
                break;
            }
            roll -= weight;
        }
        match event {
            0 => {
                let i = ready[self.rng.below(ready.len() as u64) as usize];
                self.deliver(i)?;
            }
            1 => {
                let total: u64 = up
                    .iter()
                    .map(|id| u64::from(self.nodes[id].tick_weight))
                    .sum();
                let mut roll = self.rng.below(total.max(1));
                for &id in &up {
                    let w = u64::from(self.nodes[&id].tick_weight);
                    if roll < w {
                        self.tick(id)?;
                        break;
                    }
                    roll -= w;
                }
            }
            2 => {
                let total: u64 = disk_ready.iter().map(|(_, w)| u64::from(*w)).sum();
                let mut roll = self.rng.below(total.max(1));
                for &(id, w) in &disk_ready {
                    if roll < u64::from(w) {
                        self.complete_write(id)?;
                        break;
                    }
                    roll -= u64::from(w);
                }
            }
            3 => {
                let id = epochs_ready[self.rng.below(epochs_ready.len() as u64) as usize];
                self.complete_epochs(id)?;
            }
            4 => {
                // Reads go to any peer that thinks it leads, a deposed one
                // included: that is the one that must not answer stale.
                let leading: Vec<ServerId> = up
                    .iter()
                    .copied()
                    .filter(|id| {
                        self.nodes[id]
                            .peer
                            .as_ref()
                            .is_some_and(|p| matches!(p.role(), Role::Leading { .. }))
                    })
                    .collect();
                if !leading.is_empty() && self.rng.chance(0.5) {
                    let id = leading[self.rng.below(leading.len() as u64) as usize];
                    self.read_on(id)?;
                } else {
                    self.propose()?;
                }
            }
            5 => {
                let id = up[self.rng.below(up.len() as u64) as usize];
                let pending = self.nodes[&id].pending_log.len() as u64;
                let survive = self.rng.below(pending + 1) as usize;
                self.crash(id, survive);
                // A crashed peer's connections close: the transport tells
                // some of the others at once (the driver's peer_unreachable).
                let others: Vec<ServerId> = up.iter().copied().filter(|o| *o != id).collect();
                for other in others {
                    if self.rng.chance(0.5) {
                        if let Some(peer) = self.nodes.get_mut(&other).and_then(|n| n.peer.as_mut())
                        {
                            peer.peer_unreachable(id);
                        }
                        self.note(|| format!("{other:?} sees {id:?}'s connection close"));
                        self.after_call(other)?;
                        self.check()?;
                    }
                }
            }
            6 => {
                let id = down[self.rng.below(down.len() as u64) as usize];
                self.start(id)?;
            }
            7 => {
                let ids: Vec<ServerId> = self.nodes.keys().copied().collect();
                if self.rng.chance(0.5) {
                    // Symmetric: split into two sides.
                    let side: BTreeSet<ServerId> = ids
                        .iter()
                        .copied()
                        .filter(|_| self.rng.chance(0.5))
                        .collect();
                    for &a in &ids {
                        for &b in &ids {
                            if side.contains(&a) != side.contains(&b) {
                                self.blocked.insert((a, b));
                            }
                        }
                    }
                    self.note(|| format!("partition {side:?} | rest"));
                } else {
                    let a = ids[self.rng.below(ids.len() as u64) as usize];
                    let b = ids[self.rng.below(ids.len() as u64) as usize];
                    if a != b {
                        self.block(a, b);
                    }
                }
            }
            8 => self.heal(),
            9 => {
                let id = up[self.rng.below(up.len() as u64) as usize];
                self.compact(id)?;
            }
            10 => {
                let ids: Vec<ServerId> = self.nodes.keys().copied().collect();
                let id = ids[self.rng.below(ids.len() as u64) as usize];
                let stalled = !self.nodes[&id].disk_stalled;
                self.stall_disk(id, stalled);
            }
            _ => {
                self.propose_reconfig()?;
            }
        }
        self.check()
    }

    /// Run `steps` random events, then heal everything and let the ensemble
    /// settle, checking that it commits again (liveness after faults stop).
    pub fn run(&mut self, steps: u64) -> Result<Stats, String> {
        for _ in 0..steps {
            self.step()?;
        }
        Ok(self.stats.clone())
    }

    /// Stop every fault: heal the network, unstall disks, restart nodes.
    pub fn calm(&mut self) -> Result<(), String> {
        self.heal();
        self.faults = Faults::none();
        let ids: Vec<ServerId> = self.nodes.keys().copied().collect();
        for id in ids {
            let node = self.nodes.get_mut(&id).expect("node");
            node.disk_stalled = false;
            node.log_stalled = false;
            if !self.nodes[&id].is_up() {
                self.start(id)?;
            }
        }
        self.check()
    }

    /// A deterministic scheduler for scenarios, in rounds: deliver the
    /// messages in flight at the start of the round in the order sent, finish
    /// the disk writes then pending (except on stalled disks), tick every live
    /// node. Stops when `until` holds (checked after every event) or after
    /// `max_rounds`; returns whether `until` held.
    pub fn settle(
        &mut self,
        max_rounds: u64,
        until: impl Fn(&Sim) -> bool,
    ) -> Result<bool, String> {
        for _ in 0..max_rounds {
            if until(self) {
                return Ok(true);
            }
            let batch = self.net.len();
            for _ in 0..batch {
                if self.net.is_empty() {
                    break;
                }
                self.now += 1;
                self.stats.steps += 1;
                self.deliver(0)?;
                self.check()?;
                if until(self) {
                    return Ok(true);
                }
            }
            let ids: Vec<ServerId> = self.nodes.keys().copied().collect();
            for &id in &ids {
                let node = &self.nodes[&id];
                if !node.is_up() || node.disk_stalled {
                    continue;
                }
                let writes = if node.log_stalled {
                    0
                } else {
                    node.pending_log.len()
                };
                let epochs = node.pending_epochs.len();
                for _ in 0..writes {
                    self.complete_write(id)?;
                }
                for _ in 0..epochs {
                    self.complete_epochs(id)?;
                }
                self.check()?;
                if until(self) {
                    return Ok(true);
                }
            }
            for &id in &ids {
                self.now += 1;
                self.tick(id)?;
            }
            self.check()?;
        }
        Ok(until(self))
    }
}

fn apply_write(disk: &mut Disk, write: Write) {
    match write {
        Write::Append(txns) => disk.log.extend(txns),
        Write::Truncate(after) => disk.log.retain(|t| t.zxid <= after),
        Write::Install(_, state) => {
            disk.snapshot = state;
            disk.log.clear();
        }
    }
}
