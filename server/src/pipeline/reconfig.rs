//! The reconfig request (opcode 16) on the sequencer: the leader decides it
//! into a txn that writes the next member list to `/zookeeper/config`, or
//! into an error txn, checking in the reference's order: reconfig enabled
//! (ReconfigDisabled; Unimplemented standalone), no change in progress
//! (ReconfigInProgress), the client's version and the specs
//! (`config::reconfig::next`: BadVersion, BadArguments), a synced quorum of
//! the new voters (NewConfigNoQuorum), then the right to write the config
//! node (NoAuth, unless super or `skipACL`). The txn's text carries its own
//! zxid as the new version; Zab commits it under joint quorums and each
//! member activates it on apply (see the quorum crate).
//!
//! What the leader knows of the ensemble (a change logged and not yet
//! active, the learners synced with it) is the driver's, published into a
//! [`MembershipView`] it updates every tick. That view can be a tick stale,
//! so the driver checks again when it proposes (`Peer::propose` refuses a
//! second change) and answers such a request with ReconfigInProgress.

use crate::config::ensemble::{LearnerRole, ServerSpec};
use crate::config::reconfig::{self, Change, Refusal};
use engine::prep::Prep;
use engine::request::Request;
use engine::tree::{self, DataTree};
use engine::txn::Txn;
use engine::types::{perms, ErrorCode, Id, SessionId, Zxid};
use parking_lot::Mutex;
use quorum::transport::PeerAddr;
use quorum::ServerId;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// Where member lists come from, in messages.
const CONFIG_ORIGIN: &str = "/zookeeper/config";

/// The config keys that shape the answer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rules {
    /// `reconfigEnabled`.
    pub enabled: bool,
    /// `skipACL`: no right is needed.
    pub skip_acl: bool,
    /// `standaloneEnabled`: a list needs at least 2 voters.
    pub standalone_enabled: bool,
    /// `multiAddress.enabled`: specs may list `|`-separated addresses.
    pub multi_address: bool,
}

/// The leader's driver's view of the ensemble, for the sequencer.
#[derive(Clone, Debug, Default)]
pub struct MembershipView {
    /// A membership change is logged and not yet active.
    pub pending: bool,
    /// This server and the learners synced with it, as it leads.
    pub synced: BTreeSet<u64>,
}

/// The sequencer's reconfig state.
pub(super) struct Reconfigs {
    rules: Rules,
    /// Standalone: reconfig is unimplemented, as in the reference.
    distributed: bool,
    view: Arc<Mutex<MembershipView>>,
    /// The last reconfig this sequencer prepped: until the tree holds it, a
    /// second one is in progress whatever the driver's view says.
    last: Zxid,
    /// Leading a new term under reconfigEnabled: the static list may need
    /// its version (`version_static`).
    unversioned: bool,
}

impl Reconfigs {
    pub(super) fn new(rules: Rules, distributed: bool) -> Reconfigs {
        Reconfigs {
            rules,
            distributed,
            view: Arc::default(),
            last: Zxid(0),
            unversioned: false,
        }
    }

    /// The view the driver publishes into.
    pub(super) fn view(&self) -> Arc<Mutex<MembershipView>> {
        Arc::clone(&self.view)
    }

    /// A new term: nothing this sequencer prepped before is in flight.
    pub(super) fn reset(&mut self) {
        self.last = Zxid(0);
        self.unversioned = self.rules.enabled && self.distributed;
    }

    /// The first leader of an ensemble with reconfigEnabled versions the
    /// static member list, as the reference does (ZOOKEEPER-1783): a no-op
    /// reconfig txn whose list is the one in force, so that every member
    /// writes it down as a dynamic file and it outranks the unversioned
    /// list a joining server starts from. The reference gives it the zxid of
    /// its NEWLEADER; ours is the zxid of this txn, the first of the epoch,
    /// so that a list's version is always the zxid of the txn that made it.
    pub(super) fn version_static(
        &mut self,
        prep: &mut Prep,
        tree: &DataTree,
        clock: &dyn net::clock::Clock,
    ) -> Option<Txn> {
        if !std::mem::take(&mut self.unversioned) || self.view.lock().pending {
            return None;
        }
        let node = tree.get(tree::CONFIG)?;
        if node.stat().mzxid != 0 {
            return None;
        }
        let current = reconfig::parse_stored(node.data().unwrap_or_default()).ok()?;
        if current.version != 0 {
            return None;
        }
        let txn = prep.prep_reconfig(SessionId(0), 0, clock.wall_ms(), |zxid| {
            Ok(reconfig::render(&current.servers, zxid.0 as u64).into_bytes())
        });
        tracing::info!(
            version = format!("{:x}", txn.zxid.0),
            "versioning the static member list"
        );
        self.last = txn.zxid;
        Some(txn)
    }

    /// The txn answering `request` (a `Request::Reconfig`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prep(
        &mut self,
        prep: &mut Prep,
        tree: &DataTree,
        applied: Zxid,
        session: SessionId,
        cxid: i32,
        auth: &[Id],
        request: &Request,
        now_ms: i64,
    ) -> Txn {
        let txn = prep.prep_reconfig(session, cxid, now_ms, |zxid| {
            self.decide(tree, applied, zxid, auth, request)
        });
        if matches!(txn.op, engine::txn::TxnOp::Reconfig { .. }) {
            self.last = txn.zxid;
        }
        txn
    }

    fn decide(
        &self,
        tree: &DataTree,
        applied: Zxid,
        zxid: Zxid,
        auth: &[Id],
        request: &Request,
    ) -> Result<Vec<u8>, ErrorCode> {
        let Request::Reconfig {
            joining,
            leaving,
            new_members,
            from_config,
        } = request
        else {
            return Err(ErrorCode::Unimplemented);
        };
        let rules = &self.rules;
        if !rules.enabled {
            return Err(ErrorCode::ReconfigDisabled);
        }
        if !self.distributed {
            return Err(ErrorCode::Unimplemented);
        }
        let view = self.view.lock().clone();
        if view.pending || applied < self.last {
            return Err(ErrorCode::ReconfigInProgress);
        }
        let node = tree.get(tree::CONFIG).ok_or(ErrorCode::SystemError)?;
        let current = reconfig::parse_stored(node.data().unwrap_or_default()).map_err(|error| {
            tracing::error!(%error, "/zookeeper/config does not parse; reconfig refused");
            ErrorCode::SystemError
        })?;
        let change = Change {
            joining: joining.as_deref(),
            leaving: leaving.as_deref(),
            new_members: new_members.as_deref(),
            from_config: *from_config,
        };
        let next = reconfig::next(
            &current,
            &change,
            rules.multi_address,
            rules.standalone_enabled,
        )
        .map_err(|refusal| {
            tracing::info!(?refusal, "reconfig refused");
            match refusal {
                Refusal::BadVersion(_) => ErrorCode::BadVersion,
                Refusal::BadArguments(_) => ErrorCode::BadArguments,
            }
        })?;
        let voters: BTreeSet<u64> = next
            .values()
            .filter(|s| s.role == LearnerRole::Participant)
            .map(|s| s.id)
            .collect();
        let synced = voters.intersection(&view.synced).count();
        if synced <= voters.len() / 2 {
            tracing::info!(?voters, synced = ?view.synced, "reconfig refused: no synced quorum of the new voters");
            return Err(ErrorCode::NewConfigNoQuorum);
        }
        if !rules.skip_acl && !engine::acl::check(node.acl(), perms::WRITE, auth) {
            return Err(ErrorCode::NoAuth);
        }
        Ok(reconfig::render(&next, zxid.0 as u64).into_bytes())
    }
}

/// The member lists a quorum driver knows, with their addresses: the one in
/// force and those logged after it (pending, or proposed and not yet known
/// committed). The peer transport reaches every server of all of them, so
/// the voters of a change can ack it before it is active.
pub(super) struct Members {
    me: u64,
    /// Where the activated list is written (`crate::dynamic_config`);
    /// `None` when the server started without a config file.
    config_file: Option<PathBuf>,
    active: BTreeMap<u64, ServerSpec>,
    version: u64,
    logged: BTreeMap<u64, BTreeMap<u64, ServerSpec>>,
}

impl Members {
    pub(super) fn new(
        me: u64,
        config_file: Option<PathBuf>,
        active: BTreeMap<u64, ServerSpec>,
        version: u64,
    ) -> Members {
        Members {
            me,
            config_file,
            active,
            version,
            logged: BTreeMap::new(),
        }
    }

    /// A reconfig txn's text, logged here (appended, or in an installed
    /// state): true if it names servers the transport must now reach.
    pub(super) fn logged(&mut self, text: &[u8]) -> bool {
        let Ok(list) = reconfig::parse_stored(text) else {
            tracing::error!("a reconfig txn's member list does not parse; ignored");
            return false;
        };
        if list.version <= self.version {
            return false;
        }
        let known = self.peer_ids();
        let new = list.servers.keys().any(|id| !known.contains(id));
        self.logged.insert(list.version, list.servers);
        new
    }

    /// The log was cut after `after`: the lists logged later are gone.
    pub(super) fn truncate(&mut self, after: u64) {
        self.logged.retain(|&version, _| version <= after);
    }

    fn peer_ids(&self) -> BTreeSet<u64> {
        self.lists().flat_map(|list| list.keys().copied()).collect()
    }

    fn lists(&self) -> impl Iterator<Item = &BTreeMap<u64, ServerSpec>> {
        std::iter::once(&self.active).chain(self.logged.values())
    }

    /// Every server of every list, at its newest address. One that does
    /// not resolve is left out (and logged), not the others with it.
    pub(super) fn peers(&self) -> BTreeMap<ServerId, PeerAddr> {
        let mut servers = BTreeMap::new();
        for list in self.lists() {
            servers.extend(list.iter());
        }
        servers
            .into_values()
            .filter_map(
                |spec| match crate::ensemble::peer_addr(CONFIG_ORIGIN, spec) {
                    Ok(addr) => Some((ServerId(spec.id), addr)),
                    Err(error) => {
                        tracing::warn!(%error, "a member's address does not resolve");
                        None
                    }
                },
            )
            .collect()
    }

    /// Where the list in force says this server takes clients, if it says.
    pub(super) fn own_client_addr(&self) -> Option<std::net::SocketAddr> {
        use std::net::ToSocketAddrs;
        let (host, port) = self.active.get(&self.me)?.client.clone()?;
        (host.as_str(), port).to_socket_addrs().ok()?.next()
    }

    /// Where the list in force says this server listens for its peers.
    pub(super) fn own_peer_addr(&self) -> Option<PeerAddr> {
        crate::ensemble::peer_addr(CONFIG_ORIGIN, self.active.get(&self.me)?).ok()
    }

    /// The change made by the txn at `version` is active: it becomes the
    /// list in force, and is written next to the config file before the
    /// driver carries out anything else. `Ok(false)` if this driver never
    /// saw that txn (a peer told it of the change): the list stays as it
    /// was until a sync brings the txn.
    pub(super) fn activate(&mut self, version: u64) -> std::io::Result<bool> {
        let Some(list) = self.logged.remove(&version) else {
            return Ok(false);
        };
        self.logged.retain(|&v, _| v > version);
        if let Some(file) = &self.config_file {
            let path = crate::dynamic_config::write_activated(
                file,
                &reconfig::render(&list, version),
                version,
                list.get(&self.me).is_some_and(|spec| spec.client.is_some()),
            )?;
            tracing::info!(path = %path.display(), version = format!("{version:x}"),
                           "wrote the activated member list");
        }
        self.active = list;
        self.version = version;
        Ok(true)
    }
}
