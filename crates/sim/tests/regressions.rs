//! Scenarios that once failed, pinned as regression tests (`scenarios/regressions/*.txt`; each file
//! says what goes wrong and which seed found it).
//!
//! The `#[ignore]`d ones fail today because of a bug in `ferroni_decision` (or, for one, in the
//! daemon of `crates/node`), which this crate must not change; run them with
//! `cargo test -p ferroni-sim --test regressions -- --ignored`. When a fix lands: remove the
//! `#[ignore]`, and remove the matching known-cause classifier in `src/invariants.rs` so that the
//! random runs fail if the bug comes back.

use std::path::Path;

fn run(name: &str) {
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/regressions")
        .join(name);
    let out = ferroni_sim::scenario::run_file(&f, false).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.failures.is_empty(), "{}:\n{}", f.display(), out.failures.join("\n"));
}

/// switchover.rs: the leader hands over to a lagging candidate and the candidate promotes without a
/// lag check (known cause `SWITCHOVER_LAG`).
#[test]
#[ignore = "decision-core bug: switchover to a candidate beyond maximum_lag_on_failover"]
fn switchover_to_lagging_candidate() {
    run("switchover_to_lagging_candidate.txt");
}

/// leader.rs `election`: the failover key is handled before the nofailover tag.
#[test]
#[ignore = "decision-core bug: a nofailover member named in the failover key promotes"]
fn nofailover_candidate_in_failover_key() {
    run("nofailover_candidate_in_failover_key.txt");
}

/// election.rs `is_healthiest`: an ineligible peer on a higher timeline blocks every election
/// (known cause `ELECTION_DEADLOCK`).
#[test]
#[ignore = "decision-core bug: election deadlock behind an ineligible peer on a higher timeline"]
fn election_deadlock_higher_timeline() {
    run("election_deadlock_higher_timeline.txt");
}

/// decide.rs / recovery.rs: a rejoin that failed because the leader was briefly unreachable is
/// never retried (known cause `STICKY_REJOIN`).
#[test]
#[ignore = "decision-core bug: a failed rejoin is final whatever made it fail"]
fn rejoin_failure_is_final() {
    run("rejoin_failure_is_final.txt");
}

/// leader.rs `follow`: a primary demoted while running is never checked for divergence or rewound.
#[test]
#[ignore = "decision-core gap: a demoted primary that diverged is never rewound"]
fn demoted_primary_is_never_rewound() {
    run("demoted_primary_is_never_rewound.txt");
}

/// node daemon/fence (not the decision core): a daemon paused between the call that confirmed its
/// lock and the StartPrimary it decided on that outcome starts a primary long after its lease ran
/// out; the fence's deadline, taken from the old confirmation, has already passed (known cause
/// `STALE_CONFIRMATION`).
#[test]
#[ignore = "node bug: a stale lock confirmation starts Postgres as primary after a pause"]
fn stale_lock_confirmation() {
    run("stale_lock_confirmation.txt");
}
