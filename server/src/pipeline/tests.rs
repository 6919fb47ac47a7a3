//! The pipeline's stages driven by hand, and once through their threads over
//! a fake storage whose appends become durable only when the test says so.
//! Pins DESIGN.md invariants 1 (replies in sequence order), 2 (watch events
//! before the reply, under the write lock) and 7 (nothing answered before
//! committed), and the session rules: writes of a closing session refused,
//! closeSession closing the session's current connection, expiry on
//! monotonic time only.

use super::applier::Applier;
use super::reconfig::{Reconfigs, Rules};
use super::sequencer::Sequencer;
use super::{Pipeline, Proposal};
use engine::prep::{Prep, PrepConfig};
use engine::request::{CreateRequest, Request, Response};
use engine::session::{SessionSecret, SessionTracker};
use engine::storage::{Checkpoint, Checkpointer, DurableWait, Storage, StorageError, Ticket};
use engine::tree::DataTree;
use engine::txn::{Txn, TxnOp};
use engine::types::{
    perms, Acl, ErrorCode, EventType, Id, OpCode, SessionId, WatcherId, WatcherType, Zxid,
};
use net::clock::{Clock, ManualClock};
use net::mailbox::{Mail, Submission};
use net::reactor::Polls;
use net::shared::{ConnectionEntry, Settings, Shared};
use parking_lot::{Condvar, Mutex, RwLock};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK_MS: u64 = 100;

struct Fixture {
    shared: Arc<Shared>,
    clock: Arc<ManualClock>,
    submissions: crossbeam_channel::Receiver<Submission>,
    // Wakers need their polls alive.
    _polls: Polls,
}

fn fixture() -> Fixture {
    let (polls, mailboxes) = Polls::new(1).expect("polls");
    let (submit, submissions) = crossbeam_channel::unbounded();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let shared = Arc::new(Shared::new(
        DataTree::new(),
        SessionTracker::new(TICK_MS as u32, 1, clock.wall_ms()),
        mailboxes,
        submit,
        Settings {
            max_frame_bytes: 1 << 20,
            connection_outstanding_limit: 1000,
            global_outstanding_limit: 1000,
            max_outbound_bytes: 1 << 26,
            max_client_cnxns: 0,
            min_session_timeout_ms: 200,
            max_session_timeout_ms: 4000,
            super_digest: None,
            read_limits: Default::default(),
            sasl: Default::default(),
            linearizable_reads: false,
        },
        Arc::clone(&clock) as Arc<dyn Clock>,
        SessionSecret::new([7; 32]),
    ));
    Fixture {
        shared,
        clock,
        submissions,
        _polls: polls,
    }
}

fn conn(serial: u64) -> WatcherId {
    WatcherId::new(0, serial)
}

fn create(path: &str) -> Request {
    Request::Create {
        op: OpCode::Create,
        request: CreateRequest {
            path: path.to_string(),
            data: Some(b"x".to_vec()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
    }
}

fn write(conn: WatcherId, session: SessionId, xid: i32, request: Request) -> Submission {
    write_as(conn, session, xid, request, Vec::new())
}

fn write_as(
    conn: WatcherId,
    session: SessionId,
    xid: i32,
    request: Request,
    auth: Vec<Id>,
) -> Submission {
    Submission::Write {
        conn,
        session,
        xid,
        request,
        auth: Arc::new(auth),
    }
}

/// A create whose node only `user` (digest scheme) may do anything with.
fn create_private(path: &str, user: &Id) -> Request {
    let mut request = create(path);
    if let Request::Create { request, .. } = &mut request {
        request.acl = vec![Acl {
            perms: perms::ALL,
            id: user.clone(),
        }];
    }
    request
}

fn events_to(mail: &[Mail], watcher: WatcherId) -> Vec<(EventType, String)> {
    mail.iter()
        .filter_map(|mail| match mail {
            Mail::Event { conn, event } if *conn == watcher => {
                Some((event.event_type, event.path.clone()))
            }
            _ => None,
        })
        .collect()
}

impl Fixture {
    /// Registers connection `id` as the reactor does, authenticated as `auth`.
    fn connect(&self, id: WatcherId, auth: Vec<Id>) {
        let entry = ConnectionEntry::new("127.0.0.1:1".parse().expect("address"), Arc::new(auth));
        self.shared.connections.lock().insert(id, Arc::new(entry));
    }

    fn stages(&self) -> (Sequencer, Applier) {
        let applier = Applier::new(Arc::clone(&self.shared), Zxid::ZERO, None);
        let sequencer = self.sequencer_after(
            Zxid::ZERO,
            &applier,
            Reconfigs::new(Rules::default(), false),
        );
        (sequencer, applier)
    }

    /// A leader's stages (a session on connection 1) whose
    /// `/zookeeper/config` lists participants 1..=`voters`, on ports
    /// 2888+i, 3888+i and client port 2181+i, at version 0.
    fn leading_with_members(&self, voters: u16, rules: Rules) -> (Sequencer, Applier, SessionId) {
        let (_, applier, session) = self.stages_with_session(conn(1));
        let mut lines: Vec<String> = (0..voters)
            .map(|i| {
                format!(
                    "server.{}=127.0.0.1:{}:{}:participant;0.0.0.0:{}",
                    i + 1,
                    2888 + i,
                    3888 + i,
                    2181 + i
                )
            })
            .collect();
        lines.push("version=0".into());
        let list = lines.join("\n");
        self.shared
            .tree
            .write()
            .set_static_config(list.as_bytes(), 0);
        let sequencer = self.sequencer_after(Zxid(1), &applier, Reconfigs::new(rules, true));
        (sequencer, applier, session)
    }

    /// A sequencer whose last zxid is `last`, feeding `applier`.
    fn sequencer_after(&self, last: Zxid, applier: &Applier, reconfigs: Reconfigs) -> Sequencer {
        Sequencer::new(
            Arc::clone(&self.shared),
            Prep::new(last, PrepConfig::default()),
            TICK_MS,
            60_000,
            applier.applied_handle(),
            reconfigs,
        )
    }

    fn sequence(&self, sequencer: &mut Sequencer, submissions: Vec<Submission>) -> Proposal {
        let tree = self.shared.tree.read();
        sequencer.sequence(&tree, submissions)
    }

    fn mail(&self) -> Vec<Mail> {
        let mut mail = Vec::new();
        self.shared.mailboxes[0].drain(&mut mail);
        mail
    }

    /// Proposes `proposal` and commits all of it at once.
    fn commit_whole(applier: &mut Applier, proposal: Proposal) {
        let last = proposal.last_zxid().expect("a proposal with txns");
        applier.propose(proposal);
        applier.commit(last);
    }

    /// The stages, with one session already created through them on `on`.
    fn stages_with_session(&self, on: WatcherId) -> (Sequencer, Applier, SessionId) {
        let (mut sequencer, mut applier) = self.stages();
        let session = self.session(&mut sequencer, &mut applier, on);
        (sequencer, applier, session)
    }

    /// A session created through the stages, attached to `on`.
    fn session(
        &self,
        sequencer: &mut Sequencer,
        applier: &mut Applier,
        on: WatcherId,
    ) -> SessionId {
        let proposal = self.sequence(
            sequencer,
            vec![Submission::CreateSession {
                conn: on,
                timeout_ms: 1000,
            }],
        );
        Fixture::commit_whole(applier, proposal);
        match self.mail().as_slice() {
            [Mail::SessionCreated { session, .. }] => *session,
            other => panic!("expected SessionCreated, got {other:?}"),
        }
    }
}

fn reply_xids(mail: &[Mail]) -> Vec<(i32, ErrorCode)> {
    mail.iter()
        .filter_map(|mail| match mail {
            Mail::Reply { xid, reply, .. } => Some((*xid, reply.err)),
            _ => None,
        })
        .collect()
}

#[test]
fn nothing_is_answered_before_it_is_committed() {
    let fixture = fixture();
    let (mut sequencer, mut applier, session) = fixture.stages_with_session(conn(2));
    let proposal = fixture.sequence(
        &mut sequencer,
        vec![
            write(conn(2), session, 1, create("/a")),
            write(conn(2), session, 2, create("/b")),
        ],
    );
    let zxids: Vec<Zxid> = proposal.txns.iter().map(|txn| txn.zxid).collect();
    applier.propose(proposal);
    assert!(fixture.mail().is_empty(), "answered before any commit");
    applier.commit(zxids[0]);
    assert_eq!(reply_xids(&fixture.mail()), vec![(1, ErrorCode::Ok)]);
    assert!(
        fixture.shared.tree.read().get("/b").is_none(),
        "/b applied before its commit"
    );
    applier.commit(zxids[1]);
    assert_eq!(reply_xids(&fixture.mail()), vec![(2, ErrorCode::Ok)]);
    assert!(fixture.shared.tree.read().get("/b").is_some());
}

#[test]
fn answers_keep_sequence_order_across_refusals_and_syncs() {
    let fixture = fixture();
    let (mut sequencer, mut applier, session) = fixture.stages_with_session(conn(2));
    let proposal = fixture.sequence(
        &mut sequencer,
        vec![
            write(conn(2), session, 1, create("/a")),
            // Refused in prep (no txn): must still wait for /a.
            write(
                conn(2),
                session,
                2,
                Request::Delete {
                    path: "/missing".into(),
                    version: -1,
                },
            ),
            Submission::Sync {
                conn: conn(2),
                xid: 3,
                path: "/".into(),
            },
            write(conn(2), session, 4, create("/b")),
        ],
    );
    let last = proposal.last_zxid().expect("txns");
    applier.propose(proposal);
    assert!(
        fixture.mail().is_empty(),
        "a refusal overtook an uncommitted write"
    );
    applier.commit(last);
    let mail = fixture.mail();
    let replies = reply_xids(&mail);
    let xids: Vec<i32> = replies.iter().map(|(xid, _)| *xid).collect();
    assert_eq!(xids, vec![1, 2, 3, 4], "{mail:?}");
    assert_eq!(replies[1].1, ErrorCode::NoNode);
}

#[test]
fn watch_events_are_posted_before_the_reply_of_their_change() {
    let fixture = fixture();
    let (mut sequencer, mut applier, session) = fixture.stages_with_session(conn(2));
    let watcher = conn(3);
    fixture.connect(watcher, Vec::new());
    fixture.shared.watches.add_data("/a", watcher);
    let proposal = fixture.sequence(
        &mut sequencer,
        vec![write(conn(2), session, 1, create("/a"))],
    );
    Fixture::commit_whole(&mut applier, proposal);
    let mail = fixture.mail();
    assert!(
        matches!(
            mail.as_slice(),
            [Mail::Event { conn: to, event }, Mail::Reply { xid: 1, .. }]
                if *to == watcher && event.event_type == EventType::NodeCreated
        ),
        "{mail:?}"
    );
}

#[test]
fn watch_events_go_only_to_watchers_that_may_read_the_changed_node() {
    // The reference checks READ for the watcher's identities against the
    // changed node's ACL when the event fires; a recursive watch is checked
    // against the node that changed, not the one it was set on
    // (CVE-2024-23944), and NodeChildrenChanged against the parent.
    let fixture = fixture();
    let (mut sequencer, mut applier) = fixture.stages();
    let owner = Id::new("digest", "alice:hash");
    let (writer, stranger, friend) = (conn(2), conn(3), conn(4));
    fixture.connect(writer, vec![owner.clone()]);
    fixture.connect(stranger, vec![Id::new("ip", "127.0.0.1")]);
    fixture.connect(friend, vec![Id::new("ip", "127.0.0.1"), owner.clone()]);
    let session = fixture.session(&mut sequencer, &mut applier, writer);
    for watcher in [stranger, friend] {
        fixture.shared.watches.add_data("/p/secret", watcher);
        fixture.shared.watches.add_child("/p", watcher);
        fixture.shared.watches.add_persistent("/", watcher, true);
    }
    let proposal = fixture.sequence(
        &mut sequencer,
        vec![
            write(writer, session, 1, create("/p")),
            write_as(
                writer,
                session,
                2,
                create_private("/p/secret", &owner),
                vec![owner.clone()],
            ),
            write_as(
                writer,
                session,
                3,
                Request::SetData {
                    path: "/p/secret".into(),
                    data: Some(b"new".to_vec()),
                    version: -1,
                },
                vec![owner.clone()],
            ),
            write_as(
                writer,
                session,
                4,
                Request::Delete {
                    path: "/p/secret".into(),
                    version: -1,
                },
                vec![owner.clone()],
            ),
        ],
    );
    Fixture::commit_whole(&mut applier, proposal);
    let mail = fixture.mail();
    let open = |path: &str, event_type| (event_type, path.to_string());
    assert_eq!(
        events_to(&mail, stranger),
        vec![
            open("/p", EventType::NodeCreated),
            open("/p", EventType::NodeChildrenChanged),
        ],
        "the stranger may read /p only: {mail:?}"
    );
    assert_eq!(
        events_to(&mail, friend),
        vec![
            open("/p", EventType::NodeCreated),
            open("/p/secret", EventType::NodeCreated),
            open("/p", EventType::NodeChildrenChanged),
            open("/p/secret", EventType::NodeDataChanged),
            open("/p/secret", EventType::NodeDeleted),
        ],
        "{mail:?}"
    );
    // The one-shot watches (/p's children, /p/secret's data) fired once;
    // the stranger's was consumed all the same, though never delivered.
    assert!(!fixture
        .shared
        .watches
        .contains("/p/secret", stranger, WatcherType::Data));
}

#[test]
fn writes_behind_a_close_session_are_refused() {
    let fixture = fixture();
    let (mut sequencer, mut applier, session) = fixture.stages_with_session(conn(2));
    let proposal = fixture.sequence(
        &mut sequencer,
        vec![
            write(conn(2), session, 1, Request::CloseSession),
            write(conn(2), session, 2, create("/after")),
        ],
    );
    Fixture::commit_whole(&mut applier, proposal);
    let replies = reply_xids(&fixture.mail());
    assert_eq!(
        replies,
        vec![(1, ErrorCode::Ok), (2, ErrorCode::SessionExpired)]
    );
    assert!(fixture.shared.tree.read().get("/after").is_none());
}

#[test]
fn close_session_closes_the_session_current_connection() {
    // The session reattached on connection 3 after connection 2 submitted
    // its closeSession: both must be closed, or 3 serves a dead session.
    let fixture = fixture();
    let (mut sequencer, mut applier, session) = fixture.stages_with_session(conn(2));
    let proposal = fixture.sequence(
        &mut sequencer,
        vec![write(conn(2), session, 1, Request::CloseSession)],
    );
    fixture.shared.owners.lock().insert(session, conn(3));
    Fixture::commit_whole(&mut applier, proposal);
    let closed: Vec<WatcherId> = fixture
        .mail()
        .iter()
        .filter_map(|mail| match mail {
            Mail::Close { conn } => Some(*conn),
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![conn(2), conn(3)]);
    assert!(fixture.shared.sessions.lock().get(session).is_none());
}

#[test]
fn expiry_follows_monotonic_time_not_the_wall_clock() {
    let fixture = fixture();
    let (mut sequencer, _applier, session) = fixture.stages_with_session(conn(2));
    // An NTP step of a day, ticks passing: nothing expires.
    fixture.clock.step_wall(86_400_000);
    fixture.clock.advance(TICK_MS as i64 * 3);
    let proposal = fixture.sequence(&mut sequencer, vec![]);
    assert!(proposal.is_empty(), "a wall-clock step expired a session");
    // The session's timeout passing on the monotonic clock expires it.
    fixture.clock.advance(2_000);
    let proposal = fixture.sequence(&mut sequencer, vec![]);
    assert_eq!(proposal.txns.len(), 1, "{proposal:?}");
    assert_eq!(proposal.txns[0].session, session);
}

#[test]
fn a_long_commit_releases_the_write_lock_between_slices() {
    // A reader waiting for the lock gets it while one big commit is being
    // applied, not only after it.
    let fixture = fixture();
    let (mut sequencer, mut applier, session) = fixture.stages_with_session(conn(2));
    let count = super::applier::SLICE_CHECK_TXNS * 1000;
    let submissions = (0..count)
        .map(|i| write(conn(2), session, i as i32, create(&format!("/n{i}"))))
        .collect();
    let proposal = fixture.sequence(&mut sequencer, submissions);
    let last = proposal.last_zxid().expect("txns");
    applier.propose(proposal);
    let shared = Arc::clone(&fixture.shared);
    let base = shared.tree.read().node_count();
    let started = Arc::new(AtomicBool::new(false));
    let reader_started = Arc::clone(&started);
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.last().copied() != Some(count) && Instant::now() < deadline {
            reader_started.store(true, std::sync::atomic::Ordering::SeqCst);
            let tree = shared.tree.read();
            let applied = tree.node_count() - base;
            if seen.last() != Some(&applied) {
                seen.push(applied);
            }
        }
        seen
    });
    while !started.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::yield_now();
    }
    applier.commit(last);
    let seen = reader.join().expect("reader");
    // Every count the reader saw is a whole number of txns applied; with the
    // lock held for the whole commit it could only see 0 and `count`.
    assert_eq!(seen.last(), Some(&count));
    assert!(
        seen.iter().any(|n| *n > 0 && *n < count),
        "the reader saw only {seen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}

/// A storage whose appends become durable only when the test releases them.
#[derive(Default)]
struct Gate {
    durable: Mutex<u64>,
    released: Condvar,
    wakers: Mutex<Vec<crossbeam_channel::Sender<()>>>,
}

impl Gate {
    fn release(&self, upto: u64) {
        *self.durable.lock() = upto;
        self.released.notify_all();
        for waker in self.wakers.lock().iter() {
            let _ = waker.try_send(());
        }
    }
}

struct GatedStorage {
    gate: Arc<Gate>,
    appended: u64,
}

impl DurableWait for Gate {
    fn wait(&self, ticket: Ticket) -> Result<(), StorageError> {
        let mut durable = self.durable.lock();
        while *durable < ticket.0 {
            self.released.wait(&mut durable);
        }
        Ok(())
    }

    fn durable(&self) -> Result<Ticket, StorageError> {
        Ok(Ticket(*self.durable.lock()))
    }

    fn wakeups(&self) -> crossbeam_channel::Receiver<()> {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        self.wakers.lock().push(sender);
        receiver
    }
}

struct NoCheckpoints;

impl Checkpointer for NoCheckpoints {
    fn take(&self, _tree: &RwLock<DataTree>) -> Result<Checkpoint, StorageError> {
        Err(StorageError::Snapshot("none in this test".into()))
    }

    fn purge(&self, _retain: usize) -> Result<usize, StorageError> {
        Ok(0)
    }
}

impl Storage for GatedStorage {
    fn append(&mut self, _txns: &[Txn]) -> Result<Ticket, StorageError> {
        self.appended += 1;
        Ok(Ticket(self.appended))
    }

    fn waiter(&self) -> Arc<dyn DurableWait> {
        Arc::clone(&self.gate) as Arc<dyn DurableWait>
    }

    fn recover(&mut self) -> Result<(DataTree, Zxid), StorageError> {
        Ok((DataTree::new(), Zxid::ZERO))
    }

    fn read_log(&self, _after: Zxid, _max: usize) -> Result<Vec<Txn>, StorageError> {
        Ok(Vec::new())
    }

    fn log_floor(&self) -> Result<Zxid, StorageError> {
        Ok(Zxid::ZERO)
    }

    fn truncate_after(&mut self, _zxid: Zxid) -> Result<(), StorageError> {
        Ok(())
    }

    fn install(&mut self, _tree: &DataTree) -> Result<(), StorageError> {
        Ok(())
    }

    fn checkpointer(&self) -> Arc<dyn Checkpointer> {
        Arc::new(NoCheckpoints)
    }

    fn name(&self) -> &'static str {
        "gated"
    }
}

/// Waits (bounded) for mail to arrive.
fn wait_mail(fixture: &Fixture, within: Duration) -> Vec<Mail> {
    let deadline = Instant::now() + within;
    loop {
        let mail = fixture.mail();
        if !mail.is_empty() || Instant::now() >= deadline {
            return mail;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn the_threads_answer_only_once_the_log_is_durable() {
    let fixture = fixture();
    let gate = Arc::new(Gate::default());
    let pipeline = Pipeline {
        shared: Arc::clone(&fixture.shared),
        storage: Box::new(GatedStorage {
            gate: Arc::clone(&gate),
            appended: 0,
        }),
        prep: Prep::new(Zxid::ZERO, PrepConfig::default()),
        submissions: fixture.submissions.clone(),
        tick_ms: TICK_MS,
        container_check_interval_ms: 60_000,
        snapshots: None,
        replica: None,
        reconfig: Rules::default(),
    };
    let running = std::thread::spawn(move || pipeline.run());
    let release = |upto: u64| gate.release(upto);
    let submit = |submission| fixture.shared.submit.send(submission).expect("submit");

    submit(Submission::CreateSession {
        conn: conn(2),
        timeout_ms: 1000,
    });
    assert!(
        wait_mail(&fixture, Duration::from_millis(100)).is_empty(),
        "session created before durable"
    );
    release(1);
    let session = match wait_mail(&fixture, Duration::from_secs(10)).as_slice() {
        [Mail::SessionCreated { session, .. }] => *session,
        other => panic!("{other:?}"),
    };
    submit(write(conn(2), session, 1, create("/a")));
    assert!(
        wait_mail(&fixture, Duration::from_millis(100)).is_empty(),
        "answered before durable"
    );
    assert!(
        fixture.shared.tree.read().get("/a").is_none(),
        "applied before durable"
    );
    release(2);
    let mail = wait_mail(&fixture, Duration::from_secs(10));
    assert!(
        matches!(mail.as_slice(), [Mail::Reply { xid: 1, reply, .. }] if matches!(reply.body, Response::Create { .. })),
        "{mail:?}"
    );
    fixture.shared.begin_shutdown();
    running
        .join()
        .expect("pipeline thread")
        .expect("pipeline result");
}

/// On a leader, a learner's new session is live from its prep on: the
/// learner answers its client once the txn is applied there, and the
/// client's first write can reach the leader's sequencer before the
/// leader's own applier has applied the session (found by kazoo's suite on
/// a 3-node ensemble: SessionExpired 8 ms after connecting).
#[test]
fn a_forwarded_write_right_behind_its_forwarded_session_is_not_refused() {
    use net::mailbox::Forward;
    let fixture = fixture();
    let (mut sequencer, mut applier) = fixture.stages();
    let session = SessionId(0x0200_0000_0000_0001);
    let proposal = fixture.sequence(
        &mut sequencer,
        vec![
            Submission::Forwarded {
                from: 2,
                forward: Forward::CreateSession {
                    session,
                    timeout_ms: 4000,
                },
            },
            Submission::Forwarded {
                from: 2,
                forward: Forward::Write {
                    session,
                    xid: 1,
                    request: create("/from-a-learner"),
                    auth: vec![],
                },
            },
        ],
    );
    Fixture::commit_whole(&mut applier, proposal);
    assert!(fixture.shared.tree.read().get("/from-a-learner").is_some());
    assert!(fixture.shared.sessions.lock().get(session).is_some());
    assert!(
        fixture.mail().is_empty(),
        "the learner answers its client, not the leader"
    );
}

/// On a leader, once a session attached to another server its requests
/// still coming through the first one are refused with SessionMoved (an
/// error txn each, as the reference's owner check makes); closeSession is
/// not checked.
#[test]
fn a_session_moved_to_another_learner_is_refused_through_the_first() {
    use net::mailbox::Forward;
    use TxnOp;
    let fixture = fixture();
    let (mut sequencer, _applier) = fixture.stages();
    sequencer.track_owners();
    let session = SessionId(0x0200_0000_0000_0001);
    let write = |from: u64, xid: i32, path: &str| Submission::Forwarded {
        from,
        forward: Forward::Write {
            session,
            xid,
            request: create(path),
            auth: vec![],
        },
    };
    let proposal = fixture.sequence(
        &mut sequencer,
        vec![
            Submission::Forwarded {
                from: 2,
                forward: Forward::CreateSession {
                    session,
                    timeout_ms: 4000,
                },
            },
            write(2, 1, "/a"),
            // The client reconnected through server 3.
            Submission::Forwarded {
                from: 3,
                forward: Forward::Attach { session },
            },
            write(2, 2, "/late"),
            write(3, 3, "/b"),
            // Then through the leader itself.
            Submission::Attach { session },
            write(3, 4, "/late-too"),
        ],
    );
    let ops: Vec<(i32, bool)> = proposal
        .txns
        .iter()
        .skip(1)
        .map(|txn| (txn.cxid, txn.op == TxnOp::Error(ErrorCode::SessionMoved)))
        .collect();
    assert_eq!(ops, [(1, false), (2, true), (3, false), (4, true)]);
}

/// On a learner, a committed txn answers the forwarded request it was made
/// from, found by (session, cxid); a sync's marker txn answers the sync.
#[test]
fn a_learner_answers_its_forwarded_requests_when_their_txns_apply() {
    use super::forward::{Forwarding, Waiting};
    use super::Origin;
    let fixture = fixture();
    let (mut leader, leader_applier) = fixture.stages();
    let forwarding = Arc::new(Forwarding::default());
    let mut learner = Applier::new(Arc::clone(&fixture.shared), Zxid::ZERO, None)
        .with_forwarding(Arc::clone(&forwarding));
    let session = SessionId(0x0300_0000_0000_0001);
    forwarding.wait(
        session,
        0,
        Waiting::Origin(Origin::CreateSession {
            conn: conn(4),
            timeout_ms: 4000,
        }),
    );
    forwarding.wait(
        session,
        1,
        Waiting::Origin(Origin::Client {
            conn: conn(4),
            xid: 1,
        }),
    );
    forwarding.wait(
        session,
        2,
        Waiting::Sync {
            conn: conn(4),
            xid: 2,
            path: "/".into(),
        },
    );
    // The leader's txns for them, replayed on the learner as replicated.
    let proposal = fixture.sequence(
        &mut leader,
        vec![
            Submission::Forwarded {
                from: 2,
                forward: net::mailbox::Forward::CreateSession {
                    session,
                    timeout_ms: 4000,
                },
            },
            Submission::Forwarded {
                from: 2,
                forward: net::mailbox::Forward::Write {
                    session,
                    xid: 1,
                    request: create("/x"),
                    auth: vec![],
                },
            },
            Submission::Forwarded {
                from: 2,
                forward: net::mailbox::Forward::Sync { session, xid: 2 },
            },
        ],
    );
    let txns = proposal.txns.clone();
    drop(leader_applier);
    let mut replicated = Proposal::default();
    for txn in txns {
        replicated.push_txn(txn, Origin::Replicated);
    }
    Fixture::commit_whole(&mut learner, replicated);
    let mail = fixture.mail();
    assert!(
        matches!(mail.first(), Some(Mail::SessionCreated { session: s, .. }) if *s == session),
        "{mail:?}"
    );
    assert_eq!(
        reply_xids(&mail),
        vec![(1, ErrorCode::Ok), (2, ErrorCode::Ok)]
    );
    assert!(mail.iter().any(|m| matches!(
        m,
        Mail::Reply { xid: 2, reply, .. } if matches!(reply.body, Response::Sync { .. })
    )));
    assert_eq!(forwarding.len(), 0);
}

fn reconfig(joining: Option<&str>, leaving: Option<&str>, from_config: i64) -> Request {
    Request::Reconfig {
        joining: joining.map(str::to_string),
        leaving: leaving.map(str::to_string),
        new_members: None,
        from_config,
    }
}

/// The one txn a proposal holds: its op.
fn only_op(proposal: &Proposal) -> &TxnOp {
    match proposal.txns.as_slice() {
        [txn] => &txn.op,
        other => panic!("expected one txn, got {other:?}"),
    }
}

#[test]
fn reconfig_standalone_is_disabled_or_unimplemented_as_in_the_reference() {
    let fixture = fixture();
    let (mut sequencer, _applier, session) = fixture.stages_with_session(conn(1));
    let request = reconfig(None, Some("2"), -1);
    let proposal = fixture.sequence(&mut sequencer, vec![write(conn(1), session, 1, request)]);
    assert_eq!(
        only_op(&proposal),
        &TxnOp::Error(ErrorCode::ReconfigDisabled)
    );

    let applier = Applier::new(Arc::clone(&fixture.shared), Zxid::ZERO, None);
    let rules = Rules {
        enabled: true,
        ..Rules::default()
    };
    let mut sequencer = fixture.sequencer_after(Zxid(10), &applier, Reconfigs::new(rules, false));
    let request = reconfig(None, Some("2"), -1);
    let proposal = fixture.sequence(&mut sequencer, vec![write(conn(1), session, 2, request)]);
    assert_eq!(only_op(&proposal), &TxnOp::Error(ErrorCode::Unimplemented));
}

#[test]
fn a_leader_decides_reconfig_in_the_reference_order() {
    let fixture = fixture();
    let rules = Rules {
        enabled: true,
        standalone_enabled: true,
        ..Rules::default()
    };
    let (mut sequencer, mut applier, session) = fixture.leading_with_members(3, rules);
    let view = sequencer.membership_view();
    let superuser = vec![Id::new("super", "")];
    let observer = "server.4=127.0.0.1:2891:3891:observer;0.0.0.0:2184";
    let mut propose = |request: Request, auth: &[Id]| {
        let submission = write_as(conn(1), session, 1, request, auth.to_vec());
        fixture.sequence(&mut sequencer, vec![submission])
    };
    let decide = |propose: &mut dyn FnMut(Request, &[Id]) -> Proposal, request, auth: &[Id]| {
        only_op(&propose(request, auth)).clone()
    };
    let refused = TxnOp::Error;

    // The leader alone is no quorum of {1, 2, 3}, even for an observer.
    view.lock().synced = [1].into();
    assert_eq!(
        decide(&mut propose, reconfig(Some(observer), None, -1), &superuser),
        refused(ErrorCode::NewConfigNoQuorum)
    );
    view.lock().synced = [1, 3].into();
    // Version and arguments come before the quorum and the caller's rights.
    assert_eq!(
        decide(&mut propose, reconfig(Some(observer), None, 7), &[]),
        refused(ErrorCode::BadVersion)
    );
    assert_eq!(
        decide(&mut propose, reconfig(Some("some thing"), None, -1), &[]),
        refused(ErrorCode::BadArguments)
    );
    assert_eq!(
        decide(&mut propose, reconfig(None, Some("1,2"), -1), &superuser),
        refused(ErrorCode::BadArguments)
    );
    // Removing 3 leaves {1, 2}, of which only 1 is synced.
    assert_eq!(
        decide(&mut propose, reconfig(None, Some("3"), -1), &superuser),
        refused(ErrorCode::NewConfigNoQuorum)
    );
    assert_eq!(
        decide(&mut propose, reconfig(Some(observer), None, -1), &[]),
        refused(ErrorCode::NoAuth)
    );

    let proposal = propose(reconfig(Some(observer), None, 0), &superuser);
    let zxid = proposal.txns[0].zxid.0;
    let TxnOp::Reconfig { data } = only_op(&proposal).clone() else {
        panic!("the change is decided: {proposal:?}");
    };
    let text = String::from_utf8(data).unwrap();
    assert!(text.contains(observer), "{text}");
    assert!(
        text.ends_with(&format!("version={zxid:x}")),
        "{text} at {zxid:x}"
    );
    // A second change waits until the first is applied...
    assert_eq!(
        decide(&mut propose, reconfig(None, Some("4"), -1), &superuser),
        refused(ErrorCode::ReconfigInProgress)
    );
    Fixture::commit_whole(&mut applier, proposal);
    // ... and while the driver says one is pending.
    view.lock().pending = true;
    assert_eq!(
        decide(&mut propose, reconfig(None, Some("4"), -1), &superuser),
        refused(ErrorCode::ReconfigInProgress)
    );
    view.lock().pending = false;
    let TxnOp::Reconfig { data } =
        decide(&mut propose, reconfig(None, Some("4"), zxid), &superuser)
    else {
        panic!("the second change is decided from the first's version");
    };
    assert!(!String::from_utf8(data).unwrap().contains("server.4"));
}

#[test]
fn skip_acl_lets_any_client_reconfig_and_a_whole_list_replaces_the_old() {
    let fixture = fixture();
    let rules = Rules {
        enabled: true,
        skip_acl: true,
        ..Rules::default()
    };
    let (mut sequencer, _applier, session) = fixture.leading_with_members(2, rules);
    sequencer.membership_view().lock().synced = [1, 3].into();
    let members = "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181,\
                   server.3=127.0.0.1:2890:3890:participant;0.0.0.0:2183";
    let request = Request::Reconfig {
        joining: None,
        leaving: None,
        new_members: Some(members.to_string()),
        from_config: -1,
    };
    let proposal = fixture.sequence(&mut sequencer, vec![write(conn(1), session, 1, request)]);
    let TxnOp::Reconfig { data } = only_op(&proposal) else {
        panic!("decided without super: {proposal:?}");
    };
    let text = String::from_utf8(data.clone()).unwrap();
    assert!(
        text.starts_with("server.1=") && text.contains("\nserver.3="),
        "{text}"
    );
    assert!(!text.contains("server.2="), "{text}");
}
