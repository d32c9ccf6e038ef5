//! Counters of one run, summed over many: how much the simulation exercised (steps, cycles,
//! faults per kind, elections, promotions) and what it observed that is not a violation (WAL lost
//! at promotions within the allowed lag, diverged former primaries, ignored switchover requests).

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub seeds: u64,
    pub steps: u64,
    pub cycles: u64,
    pub decisions: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub bootstraps: u64,
    /// Bootstrap actions started (initdb runs), whether they finished or not.
    pub initdb_started: u64,
    pub leader_acquired: u64,
    pub promotions: u64,
    pub rewinds: u64,
    /// pg_rewind runs that found "no rewind required" because target and source were on the same
    /// timeline number although their histories had diverged (the source had not finished its
    /// promotion, or a timeline number was reused): the node stays diverged.
    pub rewinds_skipped_same_timeline: u64,
    /// Postgres servers stopped by the fence (only with fencing modelled).
    pub fenced: u64,
    /// Cycles whose executor refused to act on a lock confirmation older than the fence deadline.
    pub stale_confirmations: u64,
    /// Largest WAL gap (bytes, measured on the real history) between the last published leader
    /// position and a node that started to promote.
    pub max_promotion_lag: u64,
    /// Virtual milliseconds during which two or more Postgres servers ran as primaries, whatever
    /// the cause (the strict reading of split brain).
    pub two_primaries_ms: u64,
    /// Replicas that could not stream at the end because they hold WAL the leader does not have
    /// (a former primary not rewound, or a replica that received WAL a lagging new leader never had).
    pub diverged_at_end: u64,
    pub switchovers_requested: u64,
    /// Refused by the API's checks (candidate not running, tagged nofailover, is the leader).
    pub switchovers_refused: u64,
    /// Runs that ended with a `failover` key still present.
    pub switchovers_pending_at_end: u64,
    /// Runs that ended the faults with no node allowed to lead (every candidate too far behind).
    pub leaderless_by_design: u64,
    pub max_ms_to_leader_after_heal: u64,
}

impl Stats {
    pub fn merge(&mut self, o: &Stats) {
        self.seeds += o.seeds;
        self.steps += o.steps;
        self.cycles += o.cycles;
        self.decisions += o.decisions;
        for (k, v) in &o.faults {
            *self.faults.entry(k).or_default() += v;
        }
        self.bootstraps += o.bootstraps;
        self.initdb_started += o.initdb_started;
        self.leader_acquired += o.leader_acquired;
        self.promotions += o.promotions;
        self.rewinds += o.rewinds;
        self.rewinds_skipped_same_timeline += o.rewinds_skipped_same_timeline;
        self.fenced += o.fenced;
        self.stale_confirmations += o.stale_confirmations;
        self.max_promotion_lag = self.max_promotion_lag.max(o.max_promotion_lag);
        self.two_primaries_ms += o.two_primaries_ms;
        self.diverged_at_end += o.diverged_at_end;
        self.switchovers_requested += o.switchovers_requested;
        self.switchovers_refused += o.switchovers_refused;
        self.switchovers_pending_at_end += o.switchovers_pending_at_end;
        self.leaderless_by_design += o.leaderless_by_design;
        self.max_ms_to_leader_after_heal = self.max_ms_to_leader_after_heal.max(o.max_ms_to_leader_after_heal);
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seeds {}, steps {}, daemon cycles {}, decisions {}",
            self.seeds, self.steps, self.cycles, self.decisions
        )?;
        writeln!(f, "faults injected:")?;
        for (k, v) in &self.faults {
            writeln!(f, "  {k:<30} {v}")?;
        }
        writeln!(
            f,
            "bootstraps {}, leader locks acquired {}, promotions {} (largest gap to the published leader position: {} \
             bytes), pg_rewinds {} (found nothing to rewind on the same timeline number although diverged: {})",
            self.bootstraps,
            self.leader_acquired,
            self.promotions,
            self.max_promotion_lag,
            self.rewinds,
            self.rewinds_skipped_same_timeline
        )?;
        writeln!(
            f,
            "two postgres primaries running at once: {} ms in total (strict reading, any cause); fenced {}; stale lock \
             confirmations not acted on {}",
            self.two_primaries_ms, self.fenced, self.stale_confirmations
        )?;
        writeln!(
            f,
            "after the faults: longest wait for a leader {} ms; runs left leaderless by design {}; \
             diverged replicas (need pg_rewind or a rebuild) {}",
            self.max_ms_to_leader_after_heal, self.leaderless_by_design, self.diverged_at_end
        )?;
        write!(
            f,
            "switchover/failover requests {} (refused by the API {}), key still present at the end of a run {}",
            self.switchovers_requested, self.switchovers_refused, self.switchovers_pending_at_end
        )
    }
}
