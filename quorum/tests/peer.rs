//! Single-peer tests: a peer driven by hand through the driver API.

use std::collections::BTreeSet;

use quorum::{
    Action, Config, Durable, Epoch, Epochs, Error, Message, Peer, PeerState, Prng, Role, ServerId,
    Vote, Zxid,
};

fn ids(range: std::ops::RangeInclusive<u64>) -> BTreeSet<ServerId> {
    range.map(ServerId).collect()
}

fn config(id: u64, voters: u64) -> Config {
    Config::new(ServerId(id), ids(1..=voters), BTreeSet::new())
}

/// Carry out a lone peer's storage actions at once; return its messages.
fn drive(peer: &mut Peer) -> Vec<(ServerId, Message)> {
    let mut sent = Vec::new();
    loop {
        let actions = peer.take_actions();
        if actions.is_empty() {
            return sent;
        }
        for action in actions {
            match action {
                Action::Send { to, message } => sent.push((to, message)),
                Action::Append { txns } => peer.persisted(txns.last().unwrap().zxid),
                Action::Truncate { after } => peer.persisted(after),
                Action::InstallSnapshot { zxid } => peer.persisted(zxid),
                Action::PersistEpochs(_) => peer.persisted_epochs(),
                Action::Commit { .. } | Action::ReadIndex { .. } | Action::Activate { .. } => {}
            }
        }
    }
}

/// A read index: a lone voter is its own quorum and answers at once with
/// its commit point; a peer that does not lead answers None.
#[test]
fn read_index_of_a_lone_voter_and_of_a_looking_peer() {
    let mut peer = Peer::new(config(1, 1), Prng::from_seed(1)).unwrap();
    drive(&mut peer);
    let zxid = peer.propose(b"x".to_vec()).unwrap();
    peer.persisted(zxid);
    peer.take_actions();
    peer.read_index(7);
    assert_eq!(
        peer.take_actions(),
        vec![Action::ReadIndex {
            ctx: 7,
            zxid: Some(zxid)
        }]
    );
    let mut looking = Peer::new(config(1, 3), Prng::from_seed(1)).unwrap();
    looking.take_actions();
    looking.read_index(8);
    assert_eq!(
        looking.take_actions(),
        vec![Action::ReadIndex { ctx: 8, zxid: None }]
    );
}

#[test]
fn a_single_voter_leads_and_commits_alone() {
    let mut peer = Peer::new(config(1, 1), Prng::from_seed(1)).unwrap();
    drive(&mut peer);
    assert_eq!(peer.established_epoch(), Some(Epoch(1)));
    assert_eq!(
        peer.epochs(),
        Epochs {
            accepted: Epoch(1),
            accepted_leader: Some(ServerId(1)),
            current: Epoch(1)
        }
    );
    let zxid = peer.propose(b"x".to_vec()).unwrap();
    assert_eq!(zxid, Zxid::new(Epoch(1), 1));
    // Not committed before it is durable.
    let actions = peer.take_actions();
    assert_eq!(actions.len(), 1, "only the append: {actions:?}");
    peer.persisted(zxid);
    assert_eq!(peer.take_actions(), vec![Action::Commit { upto: zxid }]);
}

#[test]
fn propose_refuses_when_not_the_established_leader() {
    let mut peer = Peer::new(config(1, 3), Prng::from_seed(1)).unwrap();
    assert_eq!(
        peer.propose(b"x".to_vec()),
        Err(Error::NotLeader { leader: None })
    );
}

/// A server outside the membership may run (it is joining, and learns as a
/// non-voter); a server may not be voter and observer at once.
#[test]
fn config_names_this_server_at_most_once() {
    let joining = Peer::new(config(4, 3), Prng::from_seed(1)).unwrap();
    assert_eq!(joining.role(), quorum::Role::Looking);
    let mut both = config(1, 3);
    both.observers.insert(ServerId(1));
    assert!(Peer::new(both, Prng::from_seed(1)).is_err());
}

#[test]
fn votes_order_by_epoch_then_zxid_then_id() {
    let vote = |epoch, zxid, id| Vote {
        epoch: Epoch(epoch),
        zxid: Zxid(zxid),
        leader: ServerId(id),
    };
    assert!(vote(2, 0, 1) > vote(1, 99, 9));
    assert!(vote(1, 5, 1) > vote(1, 4, 9));
    assert!(vote(1, 5, 2) > vote(1, 5, 1));
}

/// Make peer 1 (of three) join `leader` by out-of-election notifications;
/// return the session of the FOLLOWERINFO it sends.
fn join(peer: &mut Peer, leader: u64, follower: u64) -> u64 {
    let vote = Vote {
        epoch: Epoch(4),
        zxid: Zxid::ZERO,
        leader: ServerId(leader),
    };
    peer.step(
        ServerId(leader),
        Message::Notification {
            vote,
            round: 1,
            state: PeerState::Leading,
        },
    );
    peer.step(
        ServerId(follower),
        Message::Notification {
            vote,
            round: 1,
            state: PeerState::Following,
        },
    );
    assert_eq!(
        peer.role(),
        Role::Following {
            leader: ServerId(leader)
        }
    );
    drive(peer)
        .into_iter()
        .find_map(|(to, m)| match m {
            Message::FollowerInfo { session, .. } if to == ServerId(leader) => Some(session),
            _ => None,
        })
        .expect("FOLLOWERINFO sent")
}

/// A voter that accepted epoch 5 from one leader never acknowledges epoch 5
/// from another: that is what keeps two leaders from both gathering a quorum
/// for one epoch. It does acknowledge it again from the same leader.
#[test]
fn an_accepted_epoch_is_acknowledged_to_its_leader_only() {
    let durable = Durable {
        epochs: Epochs {
            accepted: Epoch(5),
            accepted_leader: Some(ServerId(3)),
            current: Epoch(4),
        },
        ..Durable::default()
    };
    let mut peer = Peer::recover(config(1, 3), Prng::from_seed(1), durable.clone()).unwrap();
    drive(&mut peer);
    let session = join(&mut peer, 2, 3);
    peer.step(
        ServerId(2),
        Message::LeaderInfo {
            session,
            epoch: Epoch(5),
        },
    );
    let sent = drive(&mut peer);
    assert!(
        !sent
            .iter()
            .any(|(_, m)| matches!(m, Message::AckEpoch { .. })),
        "{sent:?}"
    );
    assert_eq!(peer.role(), Role::Looking);

    let mut peer = Peer::recover(config(1, 3), Prng::from_seed(1), durable).unwrap();
    drive(&mut peer);
    let session = join(&mut peer, 3, 2);
    peer.step(
        ServerId(3),
        Message::LeaderInfo {
            session,
            epoch: Epoch(5),
        },
    );
    let sent = drive(&mut peer);
    assert!(
        sent.iter()
            .any(|(to, m)| *to == ServerId(3) && matches!(m, Message::AckEpoch { .. })),
        "{sent:?}"
    );
}

/// A follower acknowledges NEWLEADER only after its log and then its
/// currentEpoch are durable, and acknowledges proposals only once durable.
#[test]
fn a_follower_acks_only_what_is_durable() {
    let mut peer = Peer::new(config(1, 3), Prng::from_seed(1)).unwrap();
    peer.take_actions();
    let session = join(&mut peer, 3, 2);
    peer.step(
        ServerId(3),
        Message::LeaderInfo {
            session,
            epoch: Epoch(1),
        },
    );
    let actions = peer.take_actions();
    assert!(
        matches!(actions.as_slice(), [Action::PersistEpochs(_)]),
        "{actions:?}"
    );
    peer.persisted_epochs();
    let actions = peer.take_actions();
    assert!(matches!(
        actions.as_slice(),
        [Action::Send {
            message: Message::AckEpoch { .. },
            ..
        }]
    ));
    let txn = quorum::Txn {
        zxid: Zxid::new(Epoch(0), 1),
        data: b"a".to_vec(),
    };
    peer.step(
        ServerId(3),
        Message::NewLeader {
            session,
            epoch: Epoch(1),
            sync: quorum::SyncMode::Diff,
            txns: vec![txn.clone()],
        },
    );
    let actions = peer.take_actions();
    assert_eq!(
        actions,
        vec![Action::Append {
            txns: vec![txn.clone()]
        }],
        "the log first, nothing else"
    );
    peer.persisted(txn.zxid);
    let actions = peer.take_actions();
    assert!(
        matches!(
            actions.as_slice(),
            [Action::PersistEpochs(Epochs {
                current: Epoch(1),
                ..
            })]
        ),
        "then currentEpoch: {actions:?}"
    );
    peer.persisted_epochs();
    let actions = peer.take_actions();
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Send {
                message: Message::AckNewLeader { .. },
                ..
            }
        )),
        "then the ack: {actions:?}"
    );
    peer.step(
        ServerId(3),
        Message::UpToDate {
            session,
            committed: txn.zxid,
        },
    );
    assert_eq!(peer.take_actions(), vec![Action::Commit { upto: txn.zxid }]);
    let next = quorum::Txn {
        zxid: Zxid::new(Epoch(1), 1),
        data: b"b".to_vec(),
    };
    peer.step(
        ServerId(3),
        Message::Proposal {
            session,
            prev: txn.zxid,
            txn: next.clone(),
        },
    );
    let actions = peer.take_actions();
    assert_eq!(
        actions,
        vec![Action::Append {
            txns: vec![next.clone()]
        }],
        "no ACK before durable"
    );
    peer.persisted(next.zxid);
    let actions = peer.take_actions();
    assert!(matches!(
        actions.as_slice(),
        [Action::Send { message: Message::Ack { zxid, .. }, .. }] if *zxid == next.zxid
    ));
}

/// The driver's transport saw the leader's connection close: its follower
/// elects at once; news of any other peer changes nothing; `App` messages
/// (the driver's own traffic) never reach the protocol.
#[test]
fn a_follower_elects_at_once_when_its_leader_is_unreachable() {
    let mut peer = Peer::new(config(1, 3), Prng::from_seed(3)).unwrap();
    peer.take_actions();
    join(&mut peer, 3, 2);
    peer.step(
        ServerId(3),
        Message::App {
            payload: b"not zab".to_vec(),
        },
    );
    assert!(peer.take_actions().is_empty());
    peer.peer_unreachable(ServerId(2));
    assert_eq!(
        peer.role(),
        Role::Following {
            leader: ServerId(3)
        }
    );
    let round = peer.round();
    peer.peer_unreachable(ServerId(3));
    assert_eq!(peer.role(), Role::Looking);
    assert!(peer.round() > round, "a new election round");
    let notified: BTreeSet<ServerId> = drive(&mut peer)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Notification { .. }))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(notified, ids(2..=3));
}

/// An election started by the leader's loss does not wait for that leader's
/// vote: once every other voter agrees it decides at once, where a voter
/// merely not heard from yet still gets the finalize tick.
#[test]
fn an_election_does_not_wait_for_the_vote_of_an_unreachable_voter() {
    let better = Vote {
        epoch: Epoch(100),
        zxid: Zxid::ZERO,
        leader: ServerId(2),
    };
    let looking_with = |peer: &mut Peer| {
        let round = peer.round();
        peer.step(
            ServerId(2),
            Message::Notification {
                vote: better,
                round,
                state: PeerState::Looking,
            },
        );
    };

    let mut peer = Peer::new(config(1, 3), Prng::from_seed(5)).unwrap();
    peer.take_actions();
    join(&mut peer, 3, 2);
    peer.peer_unreachable(ServerId(3));
    assert_eq!(peer.role(), Role::Looking);
    looking_with(&mut peer);
    assert_eq!(
        peer.role(),
        Role::Following {
            leader: ServerId(2)
        },
        "decided without waiting for the lost leader"
    );

    // Voter 3 silent but not known lost: the decision waits for a tick.
    let mut peer = Peer::new(config(1, 3), Prng::from_seed(5)).unwrap();
    peer.take_actions();
    looking_with(&mut peer);
    assert_eq!(peer.role(), Role::Looking);
    peer.tick();
    assert_eq!(
        peer.role(),
        Role::Following {
            leader: ServerId(2)
        }
    );
}

/// A looking peer that hears a worse vote in its own round answers it with
/// its own: the sender may have missed ours (it was still following when it
/// came) and would otherwise wait for the periodic resend.
#[test]
fn a_worse_vote_in_the_same_round_is_answered() {
    let mut peer = Peer::new(config(3, 3), Prng::from_seed(7)).unwrap();
    drive(&mut peer);
    let round = peer.round();
    let worse = Vote {
        epoch: Epoch(0),
        zxid: Zxid::ZERO,
        leader: ServerId(2),
    };
    assert!(worse < peer.vote());
    peer.step(
        ServerId(2),
        Message::Notification {
            vote: worse,
            round,
            state: PeerState::Looking,
        },
    );
    let answers: Vec<(ServerId, Vote)> = drive(&mut peer)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::Notification { vote, .. } => Some((to, vote)),
            _ => None,
        })
        .collect();
    assert_eq!(answers, vec![(ServerId(2), peer.vote())]);
}

/// A NEWLEADER ack names its epoch: a leader that stepped down and was
/// elected again keeps a learner's session, and that learner's late ack of
/// the earlier NEWLEADER (its currentEpoch then the earlier epoch) must not
/// count for the new one. (Found by the simulation, seed 492 of
/// sim_three_voters_tiny_epochs: the leader counted such an ack, committed a
/// txn only its own disk held, and announced it.)
#[test]
fn a_newleader_ack_of_another_epoch_does_not_count() {
    let mut peer = Peer::new(config(1, 2), Prng::from_seed(1)).unwrap();
    drive(&mut peer);
    let vote = Vote {
        epoch: Epoch(0),
        zxid: Zxid::ZERO,
        leader: ServerId(1),
    };
    peer.step(
        ServerId(2),
        Message::Notification {
            vote,
            round: 1,
            state: PeerState::Looking,
        },
    );
    drive(&mut peer);
    for _ in 0..3 {
        peer.tick();
        drive(&mut peer);
    }
    assert!(
        matches!(peer.role(), Role::Leading { .. }),
        "{:?}",
        peer.role()
    );
    let session = 42;
    peer.step(
        ServerId(2),
        Message::FollowerInfo {
            session,
            accepted_epoch: Epoch(0),
        },
    );
    let sent = drive(&mut peer);
    let epoch = sent
        .iter()
        .find_map(|(_, m)| match m {
            Message::LeaderInfo { epoch, .. } => Some(*epoch),
            _ => None,
        })
        .expect("LEADERINFO sent");
    assert_eq!(epoch, Epoch(1));
    peer.step(
        ServerId(2),
        Message::AckEpoch {
            session,
            current_epoch: Epoch(0),
            last_zxid: Zxid::ZERO,
            floor: Zxid::ZERO,
            epoch_ends: Vec::new(),
        },
    );
    let sent = drive(&mut peer);
    assert!(
        sent.iter()
            .any(|(_, m)| matches!(m, Message::NewLeader { .. })),
        "NEWLEADER sent: {sent:?}"
    );
    // A late ack of an earlier term's NEWLEADER on the same session.
    peer.step(
        ServerId(2),
        Message::AckNewLeader {
            session,
            epoch: Epoch(0),
            zxid: Zxid::ZERO,
        },
    );
    drive(&mut peer);
    assert_eq!(peer.established_epoch(), None, "a stale ack counted");
    peer.step(
        ServerId(2),
        Message::AckNewLeader {
            session,
            epoch: Epoch(1),
            zxid: Zxid::ZERO,
        },
    );
    drive(&mut peer);
    assert_eq!(peer.established_epoch(), Some(Epoch(1)));
}
