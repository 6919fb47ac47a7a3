//! Seeded simulation runs of whole ensembles (see `quorum::sim`).
//!
//! `cargo test -p quorum --test sim` runs a bounded set of seeds for 3- and
//! 5-voter ensembles, with and without observers. A failure prints its seed;
//! `SIM_SEED=<seed> cargo test -p quorum sim` replays it with a trace
//! of every event, and `SIM_SEEDS=<n>` runs n seeds per ensemble shape.

use quorum::sim::{Faults, Limits, Sim, Stats};
use quorum::{Prng, Role, ServerId};

/// Random events per seed before the faults stop.
const STEPS: u64 = 5_000;
/// Seeds per ensemble shape in a plain `cargo test`.
const SEEDS: u64 = 100;

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        return vec![seed.parse().expect("SIM_SEED is a number")];
    }
    let count =
        std::env::var("SIM_SEEDS").map_or(SEEDS, |n| n.parse().expect("SIM_SEEDS is a number"));
    (0..count).collect()
}

/// Run one seed: random faults for `STEPS` events, then calm (heal, restart,
/// unstall) and require a leader and a fresh commit. Returns the stats or the
/// first violated invariant.
fn run_seed(
    seed: u64,
    voters: usize,
    observers: usize,
    limits: Limits,
    reconfig_weight: f64,
) -> Result<Stats, String> {
    let mut rng = Prng::from_seed(seed ^ 0x5eed_5eed);
    let mut faults = Faults::random(&mut rng);
    faults.reconfig_weight = reconfig_weight;
    let mut sim = Sim::with_limits(seed, voters, observers, faults, limits);
    let replaying = std::env::var("SIM_SEED").is_ok();
    if replaying {
        sim.trace = Some(Vec::new());
    }
    let result = (|| {
        sim.run(STEPS)?;
        sim.calm()?;
        if !sim.settle(500, |s| s.leader().is_some())? {
            return Err("no leader after the faults stopped".to_string());
        }
        let before = sim.committed().len();
        let mut committed = false;
        for _ in 0..20 {
            sim.propose()?;
            if sim.settle(50, |s| s.committed().len() > before)? {
                committed = true;
                break;
            }
        }
        if !committed {
            return Err("nothing commits after the faults stopped".to_string());
        }
        Ok(sim.stats.clone())
    })();
    if let Err(e) = &result {
        if replaying {
            eprintln!("{}", sim.trace_text());
        }
        eprintln!("{}", sim.describe());
        eprintln!(
            "seed {seed} ({voters} voters, {observers} observers, {limits:?}) failed: {e}\n\
             replay: SIM_SEED={seed} cargo test -p quorum sim"
        );
    }
    result
}

fn run_shape(voters: usize, observers: usize, limits: Limits) {
    run_shape_with(voters, observers, limits, 0.0);
}

fn run_shape_with(voters: usize, observers: usize, limits: Limits, reconfig_weight: f64) {
    let mut failed = Vec::new();
    let mut total = Stats::default();
    for seed in seeds() {
        match run_seed(seed, voters, observers, limits, reconfig_weight) {
            Ok(stats) => {
                total.steps += stats.steps;
                total.committed += stats.committed;
                total.elections += stats.elections;
                total.crashes += stats.crashes;
                total.diffs += stats.diffs;
                total.truncs += stats.truncs;
                total.snaps += stats.snaps;
                total.delivered += stats.delivered;
                total.reads += stats.reads;
                total.reads_refused += stats.reads_refused;
            }
            Err(_) => failed.push(seed),
        }
    }
    eprintln!("{voters} voters + {observers} observers: {total:?}");
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}

#[test]
fn sim_three_voters() {
    run_shape(3, 0, Limits::default());
}

#[test]
fn sim_five_voters() {
    run_shape(5, 0, Limits::default());
}

#[test]
fn sim_three_voters_two_observers() {
    run_shape(3, 2, Limits::default());
}

/// Leaders run out of zxid counters every few writes, so epochs turn over
/// constantly, under the same faults.
#[test]
fn sim_three_voters_tiny_epochs() {
    let limits = Limits {
        max_counter: 4,
        ..Limits::default()
    };
    run_shape(3, 0, limits);
}

/// A DIFF may carry only a few txns (the sim's are ~10 bytes each), so most
/// lagging learners are sent SNAP instead, under the same faults.
#[test]
fn sim_three_voters_small_diffs() {
    let limits = Limits {
        max_diff_bytes: 40,
        ..Limits::default()
    };
    run_shape(3, 0, limits);
}

/// The leader proposes random memberships (1 to 5 voters, observers, drawn
/// from the members and two spare nodes) under the same faults: every
/// commit must hold a majority of the voters in force (and of the new ones,
/// for a change), and the committed sequence stays one.
#[test]
fn sim_reconfiguration() {
    for (voters, observers) in [(3, 0), (5, 1)] {
        let limits = Limits {
            spares: 2,
            ..Limits::default()
        };
        run_shape_with(voters, observers, limits, 1.0);
    }
}

/// Without faults an ensemble elects one leader, commits every write in order
/// and every node (observers too) applies all of them.
#[test]
fn sim_no_faults_commits_everywhere() {
    for (voters, observers) in [(1, 0), (3, 0), (5, 1)] {
        let mut sim = Sim::new(7, voters, observers, Faults::none());
        assert!(
            sim.settle(200, |s| s.leader().is_some()).unwrap(),
            "{voters} voters elect a leader"
        );
        for _ in 0..20 {
            assert!(sim.propose().unwrap().is_some());
        }
        let all = voters + observers;
        let done = sim
            .settle(200, |s| {
                (1..=all as u64).all(|id| s.node(ServerId(id)).applied.len() == 20)
            })
            .unwrap();
        assert!(done, "{voters} voters: every node applies 20 txns");
        let leader = sim.leader().unwrap();
        for id in 1..=all as u64 {
            let role = sim.node(ServerId(id)).role().unwrap();
            if ServerId(id) != leader {
                let expect = if id as usize <= voters {
                    Role::Following { leader }
                } else {
                    Role::Observing { leader }
                };
                assert_eq!(role, expect);
            }
        }
        assert_eq!(sim.established().len(), 1);
    }
}

/// A leader whose zxid counter runs out steps down; the next epoch carries
/// on, so no zxid ever wraps and nothing committed is lost.
#[test]
fn sim_counter_exhaustion_moves_to_a_new_epoch() {
    let mut sim = Sim::with_max_counter(3, 3, 0, Faults::none(), 3);
    let mut proposed = 0;
    for _ in 0..200 {
        if sim.committed().len() >= 10 {
            break;
        }
        assert!(
            sim.settle(200, |s| s.leader().is_some()).unwrap(),
            "a leader"
        );
        if sim.propose().unwrap().is_some() {
            proposed += 1;
            let target = sim.committed().len() + 1;
            sim.settle(100, |s| s.committed().len() >= target).unwrap();
        }
    }
    assert!(
        sim.committed().len() >= 10,
        "10 writes commit across epochs ({proposed} proposed)"
    );
    assert!(
        sim.committed().iter().all(|t| t.zxid.counter() <= 3),
        "no counter past the limit"
    );
    assert!(
        sim.established().len() >= 4,
        "epochs turned over: {:?}",
        sim.established()
    );
    let n = sim.committed().len();
    assert!(sim
        .settle(200, |s| (1..=3).all(|id| s
            .node(ServerId(id))
            .applied
            .len()
            == n))
        .unwrap());
}

/// The same seed gives the same run.
#[test]
fn sim_is_deterministic() {
    let a = run_seed(42, 3, 1, Limits::default(), 0.0).unwrap();
    let b = run_seed(42, 3, 1, Limits::default(), 0.0).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}
