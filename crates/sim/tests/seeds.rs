//! The seeded random simulation CI runs: 1,000 seeds, each a random 3-5 node configuration and a
//! random fault schedule of a few virtual minutes, invariants checked after every step.
//!
//! CI fails on any violation without a known cause. Known causes (decision-core bugs pinned in
//! `tests/regressions.rs`, Patroni semantics, the missing fence in what-if runs) are counted and
//! printed, not failed. A failure prints the
//! seed, the last events and every node's state; `SIM_SEED=<n> cargo test -p ferroni-sim replay --
//! --nocapture` replays it with the full log.

use ferroni_sim::{Rule, RunOptions, Summary, WritableRule, run_seed, run_seeds};

const SEEDS: u64 = 1_000;

fn report(title: &str, s: &Summary) {
    println!(
        "== {title}: {} seeds in {:.1} s\n{}\nviolations:\n{}",
        s.stats.seeds,
        s.elapsed.as_secs_f64(),
        s.stats,
        s.violation_table()
    );
}

fn assert_no_unknown(s: &Summary) {
    let unknown: Vec<_> = s.unknown().collect();
    if let Some(first) = unknown.first() {
        panic!(
            "{} violations without a known cause (seeds {:?}); the first one:\n{}",
            unknown.len(),
            unknown.iter().map(|v| v.seed).collect::<Vec<_>>(),
            first.report
        );
    }
}

/// CI's main run: ferroni as it is (the daemon's fence modelled), held to the strict rule.
#[test]
fn random_seeds() {
    let s = run_seeds(0..SEEDS, &RunOptions::default());
    report("strict rule, fence on (CI)", &s);
    assert_no_unknown(&s);
    assert_eq!(s.stats.two_primaries_ms, 0, "two primaries at once");
    assert!(!s.violations.iter().any(|v| v.rule == Rule::TwoWritablePrimaries));
    // The run must have exercised what it claims to.
    assert_eq!(s.stats.seeds, SEEDS);
    for kind in [
        "node crash",
        "daemon paused",
        "node cut off (DCS and peers)",
        "DCS down for all",
        "postgres crash",
    ] {
        assert!(
            s.stats.faults.get(kind).copied().unwrap_or(0) > 100,
            "too few faults of kind {kind}"
        );
    }
    assert!(
        s.stats.promotions > SEEDS / 2,
        "too few promotions: {}",
        s.stats.promotions
    );
    assert!(s.stats.fenced > 0, "the fence never fired: the faults did not test it");
    assert_eq!(s.stats.initdb_started, SEEDS, "exactly one initdb per run");
}

/// What-if without the fencing process, under the lease-aware rule (issue 4's original setting):
/// the only split brains are primaries that outlived their lease, and there are some.
#[test]
fn random_seeds_without_the_fence() {
    let opts = RunOptions {
        writable: WritableRule::LeaseAware,
        fencing: false,
        ..RunOptions::default()
    };
    let s = run_seeds(0..SEEDS, &opts);
    report("lease-aware rule, fence off (what-if)", &s);
    assert_no_unknown(&s);
    assert!(
        s.violations.iter().any(|v| v.rule == Rule::TwoWritablePrimaries),
        "without the fence the paused primaries should have split"
    );
}

/// Standby clusters replicate from a remote primary and must never run a primary of their own.
#[test]
fn random_standby_clusters_never_promote() {
    let opts = RunOptions {
        standby_cluster: true,
        ..RunOptions::default()
    };
    let s = run_seeds(0..SEEDS / 4, &opts);
    report("standby clusters", &s);
    assert!(s.violations.is_empty(), "{}", s.violations[0].report);
    assert_eq!(s.stats.promotions, 0);
}

#[test]
fn a_seed_reproduces_exactly() {
    let opts = RunOptions {
        full_log: true,
        ..RunOptions::default()
    };
    let (a, b) = (run_seed(7, &opts), run_seed(7, &opts));
    assert!(a.log.as_ref().is_some_and(|l| l.len() > 100));
    assert_eq!(a.log, b.log);
    assert_eq!(a.stats.steps, b.stats.steps);
}
