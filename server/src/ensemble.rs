//! From zoo.cfg's `server.N` lines to what the quorum driver runs with: the
//! Zab peer's membership and timing, the peer transport's addresses, and the
//! session secret every member shares.
//!
//! Timing. A quorum tick is `QUORUM_TICK` (50 ms), not `tickTime`:
//! - a learner or leader that hears nothing from the other side for
//!   `min(syncLimit × tickTime, FAILURE_TIMEOUT)` (1.5 s by default) gives up
//!   and elects again. Apache waits the whole `syncLimit × tickTime` (10 s
//!   by default) before it notices a paused leader;
//! - election notifications are re-sent every 200 ms;
//! - discovery and synchronization may take `initLimit × tickTime` (20 s by
//!   default), as in Apache, since a SNAP of a large tree takes time.

use crate::config::ensemble::ServerSpec;
use crate::config::{reconfig, Config, LearnerRole};
use crate::pipeline::replica::ReplicaSetup;
use anyhow::Context;
use engine::session::SessionSecret;
use quorum::transport::{Limits, PeerAddr, TransportConfig};
use quorum::ServerId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub const QUORUM_TICK: Duration = Duration::from_millis(50);
/// The longest silence tolerated from a leader or a quorum of followers.
pub const FAILURE_TIMEOUT: Duration = Duration::from_millis(1500);
const ELECTION_RESEND: Duration = Duration::from_millis(200);
/// Largest quorum frame: a NEWLEADER with a DIFF of up to `DIFF_WINDOW`
/// txns (a SNAP's state streams in ~1 MiB frames ahead of it).
const MAX_PEER_FRAME_BYTES: u32 = 1 << 30;

fn ticks(duration: Duration) -> u32 {
    (duration.as_millis() / QUORUM_TICK.as_millis()).clamp(1, u128::from(u32::MAX)) as u32
}

pub fn setup(config: &Config) -> anyhow::Result<ReplicaSetup> {
    let origin = config.origin();
    let me = config
        .my_id
        .context("a replicated server needs a myid file in dataDir")?;
    let quorum::Membership { voters, observers } = membership_of(&config.servers);
    let peers = peer_addrs(&origin, &config.servers)?;
    let listen = *peers
        .get(&ServerId(me))
        .with_context(|| format!("{origin}: myid {me} is not in the server.N list"))?;
    let tick_time = Duration::from_millis(u64::from(config.tick_time_ms.max(1)));
    let mut quorum = quorum::Config::new(ServerId(me), voters.clone(), observers.clone());
    quorum.version = quorum::Zxid(config.config_version.unwrap_or(0));
    quorum.election_timeout_ticks = ticks(ELECTION_RESEND);
    quorum.init_limit_ticks = ticks(tick_time * config.init_limit.max(1));
    quorum.sync_limit_ticks = ticks((tick_time * config.sync_limit.max(1)).min(FAILURE_TIMEOUT));
    quorum.unsafe_commit_alone = net::failpoint::hit(net::failpoint::COMMIT_ALONE, "unsafe");
    // With dynamic reconfiguration members disagree on the list while a
    // change activates, so the fingerprint names no members (a static and
    // a reconfigurable member still refuse each other).
    let fingerprint = if config.reconfig_enabled {
        quorum.reconfig_of = reconfig_of;
        quorum::wire::fingerprint(&BTreeSet::new(), &BTreeSet::new())
    } else {
        quorum::wire::fingerprint(&voters, &observers)
    };
    Ok(ReplicaSetup {
        quorum,
        transport: TransportConfig {
            me: ServerId(me),
            listen,
            peers,
            fingerprint,
            // A server joining by reconfig connects before the members
            // list it.
            accept_strangers: config.reconfig_enabled,
            limits: Limits {
                max_frame_bytes: MAX_PEER_FRAME_BYTES,
                // A leader queues a PROPOSAL per txn per follower: a
                // follower a few thousand txns behind must not lose one
                // (it would resynchronize and drop its clients). Bytes
                // stay bounded by `queue_bytes`.
                queue_frames: 1 << 16,
                ..Limits::default()
            },
        },
        epochs_path: config.data_dir.join("quorum_epochs"),
        config_file: config.source.clone(),
        servers: config.servers.clone(),
        tick: QUORUM_TICK,
        // The reference waits max(2 s, tickTime) of LOOKING before it
        // starts its read-only server.
        read_only_after: config
            .read_only_mode
            .then(|| tick_time.max(Duration::from_secs(2))),
    })
}

/// Who votes and who observes in a member list.
pub fn membership_of(servers: &BTreeMap<u64, ServerSpec>) -> quorum::Membership {
    let mut membership = quorum::Membership::default();
    for (&id, spec) in servers {
        match spec.role {
            LearnerRole::Participant => membership.voters.insert(ServerId(id)),
            LearnerRole::Observer => membership.observers.insert(ServerId(id)),
        };
    }
    membership
}

/// The peer addresses of a member list (each server's first address).
pub fn peer_addrs(
    origin: &str,
    servers: &BTreeMap<u64, ServerSpec>,
) -> anyhow::Result<BTreeMap<ServerId, PeerAddr>> {
    servers
        .values()
        .map(|spec| Ok((ServerId(spec.id), peer_addr(origin, spec)?)))
        .collect()
}

/// One server's peer addresses (its first address).
pub fn peer_addr(origin: &str, spec: &ServerSpec) -> anyhow::Result<PeerAddr> {
    let id = spec.id;
    let address = spec
        .addresses
        .first()
        .with_context(|| format!("{origin}: server.{id} has no address"))?;
    let resolve = |port: u16| -> anyhow::Result<SocketAddr> {
        (address.host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .with_context(|| {
                format!(
                    "{origin}: server.{id}: cannot resolve {}:{port}",
                    address.host
                )
            })
    };
    Ok(PeerAddr {
        quorum: resolve(address.quorum_port)?,
        election: resolve(address.election_port)?,
    })
}

/// The membership a reconfig txn makes, read out of its encoding (the
/// quorum peer's `Config::reconfig_of`).
fn reconfig_of(data: &[u8]) -> Option<quorum::Membership> {
    let list = reconfig::parse_stored(&engine::persist::reconfig_data(data)?).ok()?;
    Some(membership_of(&list.servers))
}

/// The text of `/zookeeper/config` once a reconfig txn has written it
/// (until then each member holds its own static list there).
pub fn written_config(tree: &engine::tree::DataTree) -> Option<Vec<u8>> {
    let node = tree.get(engine::tree::CONFIG)?;
    (node.stat().mzxid != 0).then(|| node.data().unwrap_or_default().to_vec())
}

/// The change a member list's text names: its version (the zxid of the
/// txn that made it) and who votes and observes.
pub fn change_of_text(text: &[u8]) -> Option<(quorum::Zxid, quorum::Membership)> {
    let list = reconfig::parse_stored(text).ok()?;
    Some((quorum::Zxid(list.version), membership_of(&list.servers)))
}

/// The change a recovered tree holds and the config file does not: the
/// last reconfig txn the log had, not known committed, so pending until
/// the ensemble says (`quorum::Config::pending`).
pub fn recovered_pending(
    config: &Config,
    tree: &engine::tree::DataTree,
) -> Option<(quorum::Zxid, quorum::Membership)> {
    change_of_text(&written_config(tree)?)
        .filter(|(version, _)| version.0 > config.config_version.unwrap_or(0))
}

/// What `/zookeeper/config` holds on a member started from its config
/// file: the reference's text of the member list
/// (`config::reconfig::render`), at the dynamic file's version (0 for a
/// static config).
pub fn static_config_data(config: &Config) -> Vec<u8> {
    crate::config::reconfig::render(&config.servers, config.config_version.unwrap_or(0))
        .into_bytes()
}

/// The session secret of an ensemble: the same on every member, since a
/// session created through one must reconnect through any. It derives from
/// the membership, which makes passwords as predictable to someone who
/// knows the config as Apache's (which derive from a constant): they bind a
/// reconnect to its session, they are not an access control. Under
/// `reconfigEnabled` the fingerprint names no members, so the secret is a
/// constant too, and a session outlives membership changes.
pub fn session_secret(setup: &ReplicaSetup) -> SessionSecret {
    let mut bytes = [0u8; SessionSecret::LEN];
    let mut state = setup.transport.fingerprint ^ 0x9e37_79b9_7f4a_7c15;
    for chunk in bytes.chunks_mut(8) {
        // splitmix64: spreads the fingerprint over the whole secret.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
    SessionSecret::new(bytes)
}

#[cfg(test)]
mod tests {
    use super::static_config_data;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn static_config_renders_as_the_reference_does() {
        let text = "dataDir=/var/lib/zk\nclientPort=2181\ninitLimit=5\nsyncLimit=2\n\
                    server.1=10.0.0.1:2888:3888\n\
                    server.2=10.0.0.2:2888:3888:participant;2181\n\
                    server.3=10.0.0.3:2888:3888:observer;127.0.0.1:2182\n";
        let config = Config::parse(text, Path::new("zoo.cfg"), "").unwrap();
        assert_eq!(
            String::from_utf8(static_config_data(&config)).unwrap(),
            "server.1=10.0.0.1:2888:3888:participant\n\
             server.2=10.0.0.2:2888:3888:participant;0.0.0.0:2181\n\
             server.3=10.0.0.3:2888:3888:observer;127.0.0.1:2182\n\
             version=0"
        );
    }
}
