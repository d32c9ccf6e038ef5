//! Scenarios that once failed, pinned as regression tests (`scenarios/regressions/*.txt`; each file
//! says what went wrong, which seed found it and what fixed it).
//!
//! A bug found in `ferroni_decision`, which this crate must not change, is pinned here
//! `#[ignore]`d (run them with `cargo test -p ferroni-sim --test regressions -- --ignored`), with a
//! known-cause classifier in `src/invariants.rs` that keeps the random runs green while it is
//! open. When a fix lands: remove the `#[ignore]`, and remove the classifier so that the random
//! runs fail if the bug comes back (as was done for every one below).

use std::path::Path;

fn run(name: &str) {
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/regressions")
        .join(name);
    let out = ferroni_sim::scenario::run_file(&f, false).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.failures.is_empty(), "{}:\n{}", f.display(), out.failures.join("\n"));
}

/// switchover.rs `for_leader`: the leader refuses a candidate beyond `maximum_lag_on_failover`,
/// and the candidate checks its own eligibility (`election::may_lead`) before taking the lock.
#[test]
fn switchover_to_lagging_candidate() {
    run("switchover_to_lagging_candidate.txt");
}

/// election.rs `may_lead`: a nofailover member named in the failover key does not take the lock.
#[test]
fn nofailover_candidate_in_failover_key() {
    run("nofailover_candidate_in_failover_key.txt");
}

/// election.rs `is_healthiest`: peers that could not lead themselves are ignored, and WAL positions
/// are compared without timelines.
#[test]
fn election_deadlock_higher_timeline() {
    run("election_deadlock_higher_timeline.txt");
}

/// decide.rs / recovery.rs: a failed rejoin is retried after 2 × ttl.
#[test]
fn rejoin_failure_is_final() {
    run("rejoin_failure_is_final.txt");
}

/// A primary demoted without a known leader (`Memory::rewind_pending`) rejoins the new leader
/// through pg_rewind (`LongAction::Rejoin` stops the running replica first); a demotion with a
/// known leader rewinds against it (`long_action.rs`).
#[test]
fn demoted_primary_is_never_rewound() {
    run("demoted_primary_is_never_rewound.txt");
}

/// execute.rs: the executor does not act on a lock confirmation older than the fence deadline.
#[test]
fn stale_lock_confirmation() {
    run("stale_lock_confirmation.txt");
}

/// memory.rs / recovery.rs: `rewind_pending` is kept on disk next to the data directory
/// (`rewind_marker.rs`), so a daemon restart between a blind demotion and the Rejoin still rewinds.
#[test]
fn rewind_pending_forgotten() {
    run("rewind_pending_forgotten.txt");
}

/// recovery.rs `not_running`: a switchover's demotion (Stop, ReleaseLeader, StartReplica without
/// upstream) sets `rewind_pending`, so the old leader is checked for divergence before it follows.
#[test]
fn switchover_demotion_not_rewound() {
    run("switchover_demotion_not_rewound.txt");
}

/// recovery.rs `not_running`: former primary data started as a replica while nobody holds the lock
/// sets `rewind_pending`, and is rewound before it follows the leader that appears.
#[test]
fn former_primary_started_without_leader() {
    run("former_primary_started_without_leader.txt");
}

/// leader.rs `election` / switchover.rs `may_take_lock`: the others defer only to a named candidate
/// that may lead by its tags, lag and timeline; one that may not does not block the election.
#[test]
fn failover_key_names_ineligible_candidate() {
    run("failover_key_names_ineligible_candidate.txt");
}

/// election.rs `is_healthiest`: with check_timeline, a peer behind the cluster's timeline may not
/// lead, so it does not block the election however far ahead its WAL position is.
#[test]
fn election_deadlock_behind_check_timeline() {
    run("election_deadlock_behind_check_timeline.txt");
}

/// leader.rs `running_replica` (and `running_primary`'s Demote with upstream): pg_rewind waits for
/// the new leader's checkpoint after promote, so it sees the fork and rewinds.
#[test]
fn rewind_before_leader_checkpoint() {
    run("rewind_before_leader_checkpoint.txt");
}
