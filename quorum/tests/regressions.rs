//! One deterministic scenario per synchronization bug through which Apache
//! ZooKeeper lost (or could lose) committed txns, driven against our peers in
//! the simulator (`quorum::sim`). The simulator checks every invariant after
//! every event (a follower ACKs only what its disk holds; a commit needs a
//! quorum of durable copies; every applied sequence is a prefix of the one
//! committed sequence; a new leader's history holds every committed txn), so
//! each scenario fails the moment our peers repeat the bug; the assertions
//! below check the scenario really reached the interleaving it is about.
//!
//! Sources (issue and pull-request text; no code was taken from them):
//! - ZOOKEEPER-3911, apache/zookeeper#1445: followers ACKed NEWLEADER before
//!   persisting the txns a DIFF brought; the leader committed them; all crash.
//! - ZOOKEEPER-4646, apache/zookeeper#1993: the same after the 3911 fix,
//!   because the txns were only queued for an asynchronous log write.
//! - ZOOKEEPER-4643, apache/zookeeper#2028: a follower wrote currentEpoch on
//!   NEWLEADER before its synced txns were durable, crashed, came back with the
//!   new epoch and a short log, won the election and TRUNCated committed txns.
//! - ZOOKEEPER-4394, apache/zookeeper#1930 and #2152: a follower syncing
//!   received DIFF, PROPOSAL, COMMIT, PROPOSAL, NEWLEADER, COMMIT, UPTODATE and
//!   mishandled the COMMIT that came after its NEWLEADER ack.
//! - ZOOKEEPER-4685 (apache/zookeeper#1993, and the remix TLA+ bug list): the
//!   leader shut down when a follower's ACK of a proposal arrived before its
//!   ACK of NEWLEADER: unavailability, not data loss.
//! - ZOOKEEPER-4785, apache/zookeeper#2111: race in the follower's DIFF sync:
//!   it was bounced before writing the uncommitted txns of the DIFF to disk,
//!   after they had been counted, and lost them.
//! - ZOOKEEPER-4925, apache/zookeeper#2254 and #2266: a follower synced from a
//!   snapshot kept a hole in its in-memory committed log; as leader it sent a
//!   DIFF across the hole to another stale peer, which lost those txns.

use std::cell::Cell;
use std::rc::Rc;

use quorum::sim::{Faults, Sim};
use quorum::{Message, Role, ServerId, Zxid};

/// Unwrap a simulator result, printing the event trace if an invariant broke.
fn ok<T>(sim: &Sim, result: Result<T, String>) -> T {
    match result {
        Ok(value) => value,
        Err(violation) => {
            let trace = sim.trace_text();
            let tail: Vec<&str> = trace.lines().rev().take(80).collect();
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            panic!("invariant violated: {violation}");
        }
    }
}

/// Fail with the trace tail unless `cond`.
fn require(sim: &Sim, cond: bool, what: &str) {
    if !cond {
        let trace = sim.trace_text();
        let tail: Vec<&str> = trace.lines().rev().take(120).collect();
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
        panic!("expected: {what}");
    }
}

fn settle(sim: &mut Sim, rounds: u64, until: impl Fn(&Sim) -> bool) -> bool {
    let result = sim.settle(rounds, until);
    ok(sim, result)
}

/// A calm ensemble with an established leader.
fn ensemble(voters: usize) -> Sim {
    let mut sim = Sim::new(11, voters, 0, Faults::none());
    sim.trace = Some(Vec::new());
    let reached = settle(&mut sim, 100, |s| s.leader().is_some());
    require(&sim, reached, "a leader is elected");
    sim
}

fn leader(sim: &Sim) -> ServerId {
    sim.leader().expect("an established leader")
}

fn others(sim: &Sim, leader: ServerId) -> Vec<ServerId> {
    sim.voters()
        .iter()
        .copied()
        .filter(|&v| v != leader)
        .collect()
}

fn committed_zxids(sim: &Sim) -> Vec<Zxid> {
    sim.committed().iter().map(|t| t.zxid).collect()
}

/// Propose on the current leader and wait until the write commits.
fn commit_write(sim: &mut Sim) -> Zxid {
    assert!(
        settle(sim, 100, |s| s.leader().is_some()),
        "a leader to write to"
    );
    let leader = leader(sim);
    let result = sim.propose_on(leader);
    let zxid = ok(sim, result).expect("the leader takes the write");
    assert!(
        settle(sim, 100, |s| s.committed().iter().any(|t| t.zxid == zxid)),
        "{zxid} commits"
    );
    zxid
}

/// Propose on `leader` without waiting.
fn propose(sim: &mut Sim, leader: ServerId) -> Zxid {
    let result = sim.propose_on(leader);
    ok(sim, result).expect("the leader takes the write")
}

fn restart(sim: &mut Sim, id: ServerId) {
    let result = sim.restart(id);
    ok(sim, result);
}

/// Every live voter ends up applying the whole committed sequence.
fn all_apply_everything(sim: &mut Sim) {
    let done = settle(sim, 300, |s| {
        s.voters().iter().all(|&v| {
            let node = s.node(v);
            !node.is_up() || node.applied.len() == s.committed().len()
        })
    });
    assert!(
        done,
        "every live voter applies all {} committed txns",
        sim.committed().len()
    );
}

/// These nodes end up applying the whole committed sequence.
fn these_apply_everything(sim: &mut Sim, ids: &[ServerId]) {
    let done = settle(sim, 300, |s| {
        ids.iter()
            .all(|&v| s.node(v).applied.len() == s.committed().len())
    });
    require(sim, done, "the nodes apply every committed txn");
}

fn sent_ack_newleader(sim: &Sim, from: ServerId) -> bool {
    sim.in_flight()
        .iter()
        .any(|e| e.from == from && matches!(e.message, Message::AckNewLeader { .. }))
}

/// ZOOKEEPER-3911. The leader alone holds w4..w6 (its followers' log writes
/// never landed). Re-elected, it DIFFs them to followers whose logs are
/// stalled: no follower may ACK NEWLEADER, so the leader never establishes and
/// w4..w6 never commit. Then the leader is lost for good and the followers
/// crash, losing the unsynced DIFF: they form the next epoch without w4..w6,
/// which is right because nobody was ever told they committed.
#[test]
fn zookeeper_3911_diff_txns_durable_before_newleader_ack() {
    let mut sim = ensemble(3);
    for _ in 0..3 {
        commit_write(&mut sim);
    }
    let old = leader(&sim);
    let followers = others(&sim, old);
    for &f in &followers {
        sim.stall_log(f, true);
    }
    let unsynced: Vec<Zxid> = (0..3).map(|_| propose(&mut sim, old)).collect();
    settle(&mut sim, 3, |_| false);
    // Everyone restarts; the followers' logs are still stalled. The old
    // leader, with the longest history, is elected again and DIFFs w4..w6.
    for id in [old, followers[0], followers[1]] {
        sim.crash(id, 0);
    }
    for id in [old, followers[0], followers[1]] {
        restart(&mut sim, id);
    }
    let diffs = sim.stats.diffs;
    let reached = settle(&mut sim, 200, |s| s.stats.diffs >= diffs + 2);
    require(&sim, reached, "the new leader DIFFs its followers");
    let epochs = sim.established().len();
    for _ in 0..100 {
        settle(&mut sim, 1, |_| false);
        for &f in &followers {
            assert!(
                !sent_ack_newleader(&sim, f),
                "{f:?} ACKed NEWLEADER with its DIFF not durable"
            );
        }
    }
    assert_eq!(
        sim.established().len(),
        epochs,
        "no epoch establishes on non-durable NEWLEADER acks"
    );
    assert!(
        unsynced.iter().all(|z| !committed_zxids(&sim).contains(z)),
        "w4..w6 never commit"
    );
    // All crash; the old leader never returns; the followers lose the DIFF.
    sim.crash(old, 0);
    for &f in &followers {
        sim.crash(f, 0);
        sim.stall_log(f, false);
        restart(&mut sim, f);
    }
    commit_write(&mut sim);
    all_apply_everything(&mut sim);
    // The old leader comes back and its suffix from the abandoned epoch is cut.
    let truncs = sim.stats.truncs;
    restart(&mut sim, old);
    all_apply_everything(&mut sim);
    assert!(
        sim.stats.truncs > truncs,
        "the old leader is synced by TRUNC"
    );
    assert!(sim
        .peer(old)
        .unwrap()
        .log_txns()
        .all(|t| !unsynced.contains(&t.zxid)));
}

/// ZOOKEEPER-4646. As 3911, but one follower's log is fast and one is slow:
/// the slow follower holds the DIFF only in its write queue when it crashes.
/// It never ACKed NEWLEADER, so the epoch establishes on the leader and the
/// fast follower, the two durable copies of w4..w6; after the crash w4..w6
/// survive on the fast follower and reach the slow one again.
#[test]
fn zookeeper_4646_no_newleader_ack_before_the_log_write_lands() {
    let mut sim = ensemble(3);
    for _ in 0..3 {
        commit_write(&mut sim);
    }
    let old = leader(&sim);
    let followers = others(&sim, old);
    let (slow, fast) = (followers[0], followers[1]);
    for &f in &followers {
        sim.stall_log(f, true);
    }
    let txns: Vec<Zxid> = (0..3).map(|_| propose(&mut sim, old)).collect();
    settle(&mut sim, 3, |_| false);
    // Everyone restarts; the old leader, with the longest history, leads
    // again; only the fast follower's log works.
    for id in [old, slow, fast] {
        sim.crash(id, 0);
    }
    sim.stall_log(fast, false);
    for id in [old, slow, fast] {
        restart(&mut sim, id);
    }
    // The slow follower receives NEWLEADER but its write never lands.
    let done = settle(&mut sim, 300, |s| {
        txns.iter()
            .all(|z| s.committed().iter().any(|t| t.zxid == *z))
    });
    assert!(done, "w4..w6 commit on the leader and the fast follower");
    assert!(
        !sent_ack_newleader(&sim, slow),
        "the slow follower did not ACK NEWLEADER"
    );
    assert!(matches!(
        sim.node(slow).role(),
        Some(Role::Following { .. })
    ));
    for z in &txns {
        assert!(
            !sim.node(slow).disk.has(*z),
            "the slow follower's disk does not hold {z}"
        );
    }
    // Crash the slow follower right there, and the leader too.
    sim.crash(slow, 0);
    sim.crash(old, 0);
    sim.stall_log(slow, false);
    restart(&mut sim, slow);
    commit_write(&mut sim);
    all_apply_everything(&mut sim);
    for z in &txns {
        assert!(
            sim.node(slow).applied.iter().any(|t| t.zxid == *z),
            "{z} survives on the slow follower"
        );
    }
}

/// ZOOKEEPER-4643. A follower is DIFF-synced by a new leader while its log
/// write is stalled but its epoch file is not. It must not write the new
/// currentEpoch before the DIFF is durable: had it done so, after a crash it
/// would come back with the highest currentEpoch and a short log, win the
/// election, and TRUNCate the committed w4..w6 from the peer that holds them.
#[test]
fn zookeeper_4643_current_epoch_only_after_the_synced_log() {
    let mut sim = ensemble(3);
    for _ in 0..3 {
        commit_write(&mut sim);
    }
    let first = leader(&sim);
    let followers = others(&sim, first);
    let (behind, ahead) = (followers[0], followers[1]);
    // `behind` misses w4..w6, committed by the leader and `ahead`.
    sim.isolate(behind);
    let missed: Vec<Zxid> = (0..3).map(|_| commit_write(&mut sim)).collect();
    // The leader is lost; `ahead` leads the next epoch and DIFFs w4..w6 to
    // `behind`, whose log write stalls while its epoch writes still land.
    sim.crash(first, 0);
    sim.heal();
    sim.stall_log(behind, true);
    let diffs = sim.stats.diffs;
    let reached = settle(&mut sim, 300, |s| s.stats.diffs > diffs);
    require(&sim, reached, "`behind` is DIFF-synced");
    let epoch_before = sim.node(behind).disk.epochs.current;
    for _ in 0..100 {
        settle(&mut sim, 1, |_| false);
        assert_eq!(
            sim.node(behind).disk.epochs.current,
            epoch_before,
            "currentEpoch was written before the DIFF was durable"
        );
    }
    assert!(
        sim.node(behind).disk.epochs.accepted > epoch_before,
        "`behind` did accept the new epoch"
    );
    // Crash `behind` (losing the DIFF) and `ahead`; bring back `behind` and
    // the first leader, which holds w4..w6.
    sim.crash(behind, 0);
    sim.crash(ahead, 0);
    sim.stall_log(behind, false);
    restart(&mut sim, behind);
    restart(&mut sim, first);
    commit_write(&mut sim);
    all_apply_everything(&mut sim);
    for z in &missed {
        assert!(
            sim.node(behind).applied.iter().any(|t| t.zxid == *z),
            "committed {z} survives"
        );
    }
}

/// ZOOKEEPER-4394. A follower syncing with an established leader must take
/// from NEWLEADER only the log, not the commit point: a proposal still
/// uncommitted when NEWLEADER was built is applied only once COMMIT says so.
/// And when writes go on during its sync it receives NEWLEADER (DIFF), then
/// PROPOSALs and COMMITs, acks NEWLEADER, gets more COMMITs and then UPTODATE:
/// it must log every proposal and apply exactly the committed ones, in order.
#[test]
fn zookeeper_4394_commits_around_the_newleader_ack() {
    let mut sim = ensemble(3);
    for _ in 0..3 {
        commit_write(&mut sim);
    }
    let lead = leader(&sim);
    let late = others(&sim, lead)[0];
    let other = others(&sim, lead)[1];
    sim.crash(late, 0);
    for _ in 0..3 {
        commit_write(&mut sim);
    }
    // w7 is in the leader's log but durable nowhere when `late` syncs.
    sim.stall_log(lead, true);
    sim.stall_log(other, true);
    let pending = propose(&mut sim, lead);
    restart(&mut sim, late);
    let reached = settle(&mut sim, 100, |s| s.node(late).applied.len() == 6);
    require(
        &sim,
        reached,
        "the late follower is up to date with the six committed txns",
    );
    settle(&mut sim, 20, |_| false);
    require(
        &sim,
        !committed_zxids(&sim).contains(&pending),
        "w7 is still uncommitted",
    );
    require(
        &sim,
        sim.node(late).applied.iter().all(|t| t.zxid != pending),
        "the late follower did not apply the uncommitted w7",
    );
    sim.stall_log(lead, false);
    sim.stall_log(other, false);
    let reached = settle(&mut sim, 100, |s| s.committed().len() == 7);
    require(&sim, reached, "w7 commits");
    // Again, with writes during the sync.
    sim.crash(late, 0);
    sim.stall_log(late, true);
    restart(&mut sim, late);
    let reached = settle(&mut sim, 100, |s| {
        s.node(late).role() == Some(Role::Following { leader: lead })
    });
    require(&sim, reached, "the late follower rejoins");
    for _ in 0..4 {
        propose(&mut sim, lead);
        settle(&mut sim, 2, |_| false);
    }
    sim.stall_log(late, false);
    for _ in 0..2 {
        propose(&mut sim, lead);
        settle(&mut sim, 1, |_| false);
    }
    let reached = settle(&mut sim, 300, |s| s.committed().len() == 13);
    require(&sim, reached, "all 13 writes commit");
    all_apply_everything(&mut sim);
    // The interleaving happened: to the late follower went NEWLEADER, then a
    // PROPOSAL and a COMMIT, then UPTODATE.
    let to_late = format!("-> {late:?} ");
    let trace = sim.trace_text();
    let lines: Vec<&str> = trace.lines().filter(|l| l.contains(&to_late)).collect();
    let position = |what: &str| lines.iter().rposition(|l| l.contains(what));
    let newleader = position("NewLeader").expect("NEWLEADER sent");
    let uptodate = position("UpToDate").expect("UPTODATE sent");
    let after_newleader = |what: &str| lines.iter().skip(newleader).position(|l| l.contains(what));
    let proposal = after_newleader("Proposal").map(|p| p + newleader);
    let commit = after_newleader("Commit").map(|p| p + newleader);
    assert!(
        proposal.is_some_and(|p| p < uptodate),
        "a PROPOSAL between NEWLEADER and UPTODATE"
    );
    assert!(
        commit.is_some_and(|c| c < uptodate),
        "a COMMIT between NEWLEADER and UPTODATE"
    );
}

/// ZOOKEEPER-4685. The follower's NEWLEADER ack is lost and re-sent, so its
/// ACKs of later proposals reach the leader first. The leader ignores them
/// (the NEWLEADER ack will cover them) instead of giving up its leadership.
#[test]
fn zookeeper_4685_proposal_ack_before_newleader_ack() {
    let mut sim = ensemble(3);
    for _ in 0..3 {
        commit_write(&mut sim);
    }
    let lead = leader(&sim);
    let late = others(&sim, lead)[0];
    let epoch = sim.peer(lead).unwrap().established_epoch();
    sim.crash(late, 0);
    commit_write(&mut sim);
    // Drop the late follower's first NEWLEADER ack.
    let dropped = Rc::new(Cell::new(false));
    let flag = dropped.clone();
    sim.drop_filter = Some(Box::new(move |e| {
        let drop =
            e.from == late && matches!(e.message, Message::AckNewLeader { .. }) && !flag.get();
        if drop {
            flag.set(true);
        }
        drop
    }));
    restart(&mut sim, late);
    let mut early_acks = 0;
    for _ in 0..30 {
        propose(&mut sim, lead);
        settle(&mut sim, 1, |_| false);
        if dropped.get()
            && sim.node(late).role() == Some(Role::Following { leader: lead })
            && sim
                .in_flight()
                .iter()
                .any(|e| e.from == late && matches!(e.message, Message::Ack { .. }))
        {
            early_acks += 1;
        }
    }
    assert!(dropped.get(), "the NEWLEADER ack was dropped once");
    assert!(
        early_acks > 0,
        "proposal ACKs reached the leader around the re-sent NEWLEADER ack"
    );
    assert_eq!(
        sim.peer(lead).unwrap().established_epoch(),
        epoch,
        "the leader kept leading"
    );
    all_apply_everything(&mut sim);
}

/// ZOOKEEPER-4785. A follower DIFF-synced while its log is stalled also gets
/// new proposals that only its ACK could commit (the other follower's log is
/// stalled too). Bounced before its writes land, it must never have been
/// counted: those txns never commit, and the next epoch, formed without them,
/// loses nothing that was committed.
#[test]
fn zookeeper_4785_bounced_before_the_diff_reached_disk() {
    let mut sim = ensemble(3);
    for _ in 0..3 {
        commit_write(&mut sim);
    }
    let lead = leader(&sim);
    let followers = others(&sim, lead);
    let (a, b) = (followers[0], followers[1]);
    sim.crash(a, 0);
    commit_write(&mut sim);
    sim.stall_log(b, true);
    let uncommitted = vec![propose(&mut sim, lead)];
    sim.stall_log(a, true);
    restart(&mut sim, a);
    assert!(
        settle(&mut sim, 100, |s| s.node(a).role()
            == Some(Role::Following { leader: lead })),
        "a rejoins"
    );
    let mut uncommitted = uncommitted;
    for _ in 0..3 {
        uncommitted.push(propose(&mut sim, lead));
        settle(&mut sim, 2, |_| false);
    }
    let committed_before = sim.committed().len();
    assert_eq!(
        committed_before, 4,
        "nothing commits without a durable follower copy"
    );
    assert!(!sent_ack_newleader(&sim, a));
    // a and the leader are bounced; a's queued DIFF and proposals are lost.
    sim.crash(a, 0);
    sim.crash(lead, 0);
    sim.crash(b, 0);
    sim.stall_log(a, false);
    sim.stall_log(b, false);
    restart(&mut sim, a);
    restart(&mut sim, b);
    commit_write(&mut sim);
    all_apply_everything(&mut sim);
    assert!(uncommitted
        .iter()
        .all(|z| !committed_zxids(&sim).contains(z)));
    // The old leader returns: its uncommitted suffix is cut, nothing else.
    restart(&mut sim, lead);
    all_apply_everything(&mut sim);
}

/// ZOOKEEPER-4925. A follower synced by SNAP holds no log below the snapshot.
/// When it later leads, another stale peer whose last zxid is below that
/// floor must be sent SNAP, never a DIFF across txns the new leader's log does
/// not hold.
#[test]
fn zookeeper_4925_no_diff_across_a_hole() {
    let mut sim = ensemble(5);
    for _ in 0..3 {
        commit_write(&mut sim);
    }
    let first = leader(&sim);
    let rest = others(&sim, first);
    let (snapped, stale) = (rest[0], rest[1]);
    let (third, fourth) = (rest[2], rest[3]);
    sim.crash(snapped, 0);
    sim.crash(stale, 0);
    let mut zxids = Vec::new();
    for _ in 0..7 {
        zxids.push(commit_write(&mut sim));
    }
    all_apply_everything(&mut sim);
    // The live peers snapshot at w8 and forget the log below it.
    let floor = zxids[4];
    for id in [first, third, fourth] {
        assert!(sim.compact_to(id, floor), "{id:?} compacts to {floor}");
    }
    let snaps = sim.stats.snaps;
    restart(&mut sim, snapped);
    all_apply_everything(&mut sim);
    assert!(
        sim.stats.snaps > snaps,
        "the returning peer is synced by SNAP"
    );
    assert!(
        sim.peer(snapped).unwrap().log_floor() >= floor,
        "it holds no log below the snapshot"
    );
    // It gets the newest txn, with the first leader and `fourth`; `third`
    // is cut off and misses it.
    sim.isolate(third);
    let newest = commit_write(&mut sim);
    assert!(sim.node(snapped).disk.has(newest) && sim.node(fourth).disk.has(newest));
    these_apply_everything(&mut sim, &[first, snapped, fourth]);
    // Lose the first leader and `fourth`: the SNAP-synced peer, with the
    // highest zxid, leads `third` and the stale peer.
    sim.crash(first, 0);
    sim.crash(fourth, 0);
    sim.heal();
    restart(&mut sim, stale);
    let snaps = sim.stats.snaps;
    commit_write(&mut sim);
    assert_eq!(leader(&sim), snapped, "the SNAP-synced peer leads");
    all_apply_everything(&mut sim);
    assert!(sim.stats.snaps > snaps, "the stale peer is synced by SNAP");
    for z in &zxids {
        assert!(
            sim.node(stale).applied.iter().any(|t| t.zxid == *z),
            "{z} reaches the stale peer"
        );
    }
}

/// Found by the simulation (seed 2531 before the fix): a leader established
/// its epoch on its followers' NEWLEADER acks alone while its own currentEpoch
/// write was still in flight, committed a txn, crashed, came back with the old
/// currentEpoch and lost the next election to a peer without that txn, which
/// truncated it. The leader must not establish before its own currentEpoch is
/// durable, however many followers acked.
#[test]
fn leader_establishes_only_once_its_own_current_epoch_is_durable() {
    let mut sim = ensemble(3);
    commit_write(&mut sim);
    let voters: Vec<ServerId> = sim.voters().iter().copied().collect();
    for &id in &voters {
        sim.crash(id, 0);
    }
    for &id in &voters {
        restart(&mut sim, id);
    }
    // Let the next leader choose its epoch and make it durable, then stall
    // its disk.
    let chose = |s: &Sim, v: ServerId| match s.node(v).role() {
        Some(Role::Leading {
            epoch: Some(epoch), ..
        }) => {
            let durable = s.node(v).disk.epochs;
            (durable.accepted == epoch && durable.accepted_leader == Some(v)).then_some(epoch)
        }
        _ => None,
    };
    let reached = settle(&mut sim, 100, |s| {
        s.voters().iter().any(|&v| chose(s, v).is_some())
    });
    require(&sim, reached, "a leader chose its epoch");
    let next = *sim
        .voters()
        .iter()
        .find(|&&v| chose(&sim, v).is_some())
        .unwrap();
    let epoch = chose(&sim, next).unwrap();
    sim.stall_disk(next, true);
    let acked = settle(&mut sim, 8, |s| {
        s.voters()
            .iter()
            .filter(|&&v| v != next)
            .all(|&v| s.node(v).disk.epochs.current == epoch)
    });
    require(&sim, acked, "both followers acknowledged NEWLEADER");
    for _ in 0..5 {
        settle(&mut sim, 1, |_| false);
        require(
            &sim,
            !sim.established().contains_key(&epoch),
            "no establishment without our own currentEpoch",
        );
    }
    sim.stall_disk(next, false);
    commit_write(&mut sim);
    all_apply_everything(&mut sim);
}

/// Found by zk-chaos (seed 2; the simulation found it too once restarts
/// could replay the log as the server's do): a leader logged proposals no
/// follower received, was killed, and came back with them replayed into its
/// state. The new leader, lacking them, can only SNAP it; the returning
/// member refused every SNAP below its own state ("never un-apply") and went
/// back to electing, forever. Replayed state is not known committed: a SNAP
/// may replace it, and the uncommitted proposals are gone.
#[test]
fn a_restarted_member_with_an_abandoned_suffix_accepts_the_new_leaders_snap() {
    let mut sim = ensemble(3);
    for _ in 0..3 {
        commit_write(&mut sim);
    }
    let old = leader(&sim);
    // The old leader logs two proposals that reach no follower.
    sim.isolate(old);
    let abandoned = [propose(&mut sim, old), propose(&mut sim, old)];
    let durable = settle(&mut sim, 50, |s| {
        abandoned.iter().all(|z| s.node(old).disk.has(*z))
    });
    require(
        &sim,
        durable,
        "the abandoned proposals are on the old leader's disk",
    );
    sim.crash(old, 0);
    sim.heal();
    // The others elect a leader; it has applied nothing in its epoch yet,
    // so its state is behind the old leader's last zxid.
    let elected = settle(&mut sim, 100, |s| s.leader().is_some_and(|l| l != old));
    require(&sim, elected, "the others elect a leader");
    let new = leader(&sim);
    require(
        &sim,
        sim.peer(new).unwrap().applied() < abandoned[0],
        "the new leader's state is behind the abandoned proposals",
    );
    let snaps = sim.stats.snaps;
    let result = sim.restart_replaying(old);
    ok(&sim, result);
    require(
        &sim,
        sim.peer(old).unwrap().applied() == *abandoned.last().unwrap(),
        "the old leader's state holds its abandoned proposals",
    );
    let same = |s: &Sim| {
        let applied: Vec<Zxid> = s.node(old).applied.iter().map(|t| t.zxid).collect();
        applied == committed_zxids(s)
    };
    let caught_up = settle(&mut sim, 300, same);
    require(
        &sim,
        caught_up,
        "the old leader applies exactly the committed txns",
    );
    require(
        &sim,
        sim.stats.snaps > snaps,
        "the old leader is synced by SNAP",
    );
    let newer = commit_write(&mut sim);
    let caught_up = settle(&mut sim, 300, same);
    require(&sim, caught_up, "the old leader applies the next write");
    let applied: Vec<Zxid> = sim.node(old).applied.iter().map(|t| t.zxid).collect();
    assert!(applied.contains(&newer), "it catches up");
    assert!(
        abandoned
            .iter()
            .all(|z| !applied.contains(z) && !committed_zxids(&sim).contains(z)),
        "its abandoned proposals are gone"
    );
    let gone = settle(&mut sim, 50, |s| {
        abandoned.iter().all(|z| !s.node(old).disk.has(*z))
    });
    assert!(gone, "and gone from its disk");
}
