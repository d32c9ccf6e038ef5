//! Replays one seed with its full event log:
//!
//! ```text
//! SIM_SEED=<n> cargo test -p ferroni-sim replay -- --nocapture
//! ```
//!
//! With CI's options by default (strict rule, fence on); `SIM_LEASE_AWARE=1`, `SIM_NO_FENCING=1`,
//! `SIM_STANDBY=1`, `SIM_PATRONI_CADENCE=1` and `SIM_NODES=<n>` select the other runs. Fails, like CI, when the seed
//! has a violation without a known cause. Without `SIM_SEED` it does nothing.

use ferroni_sim::{Cadence, RunOptions, WritableRule, run_seed};

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v == "true")
}

#[test]
fn replay() {
    let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse::<u64>().ok()) else {
        println!("set SIM_SEED=<n> to replay a seed");
        return;
    };
    let opts = RunOptions {
        writable: if flag("SIM_LEASE_AWARE") {
            WritableRule::LeaseAware
        } else {
            WritableRule::Strict
        },
        cadence: if flag("SIM_PATRONI_CADENCE") {
            Cadence::FromCycleStart
        } else {
            Cadence::AfterCycle
        },
        standby_cluster: flag("SIM_STANDBY"),
        fencing: !flag("SIM_NO_FENCING"),
        nodes: std::env::var("SIM_NODES").ok().and_then(|n| n.parse().ok()),
        full_log: true,
    };
    let report = run_seed(seed, &opts);
    for line in report.log.iter().flatten() {
        println!("{line}");
    }
    println!("\n{}", report.stats);
    for v in &report.violations {
        println!("\n{}", v.report);
    }
    let unknown: Vec<_> = report.violations.iter().filter(|v| v.known.is_none()).collect();
    assert!(
        unknown.is_empty(),
        "seed {seed}: {} violations without a known cause",
        unknown.len()
    );
}
