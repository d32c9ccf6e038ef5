//! The safety and liveness properties checked after every step, and the report a violation
//! produces: rule, seed, step, virtual time, the last events and the state of every node.
//!
//! - **two-writable-primaries**: at no instant do two nodes run Postgres as a writable primary
//!   ([`WritableRule`] says which primaries count).
//! - **promotion-lag**: no node starts to promote (or to run as primary) with more than
//!   `maximum_lag_on_failover` bytes less than the last leader position published in `status`,
//!   measured on the real WAL history (WAL on another timeline does not count as received).
//! - **nofailover-promoted**: no node tagged `nofailover` promotes.
//! - **second-initdb**: exactly one node runs initdb per cluster.
//! - **standby-promoted**: a standby cluster never runs a primary of its own.
//! - **liveness**: after the faults stop, a leader (lock holder running as primary) exists within
//!   `ttl + loop_wait`, unless no node may lead (every candidate beyond the allowed lag).
//! - **convergence**: at the end, every other live node streams from the leader's history, is
//!   still building itself, or has diverged (counted, needs pg_rewind).
//! - **fatal-exit**: no daemon exits with a fatal error.
//!
//! Violations with a known cause outside the decision core carry that cause in `known`.

use crate::clock::Millis;
use crate::config::WritableRule;
use crate::pgmodel::{Data, Pg, Src, common_prefix, diverged_from};
use crate::world::World;
use ferroni_decision::LongAction;
use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    TwoWritablePrimaries,
    PromotionLag,
    NofailoverPromoted,
    SecondInitdb,
    StandbyPromoted,
    Liveness,
    Convergence,
    FatalExit,
    Panic,
}

impl Rule {
    pub const ALL: [Rule; 9] = [
        Rule::TwoWritablePrimaries,
        Rule::PromotionLag,
        Rule::NofailoverPromoted,
        Rule::SecondInitdb,
        Rule::StandbyPromoted,
        Rule::Liveness,
        Rule::Convergence,
        Rule::FatalExit,
        Rule::Panic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::TwoWritablePrimaries => "two-writable-primaries",
            Rule::PromotionLag => "promotion-lag",
            Rule::NofailoverPromoted => "nofailover-promoted",
            Rule::SecondInitdb => "second-initdb",
            Rule::StandbyPromoted => "standby-promoted",
            Rule::Liveness => "liveness",
            Rule::Convergence => "convergence",
            Rule::FatalExit => "fatal-exit",
            Rule::Panic => "panic",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == s)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A split brain the fence prevents, in a run without it: every primary but one had its lease run
/// out before its daemon could demote it (the daemon was paused, dead, or stuck in DCS timeouts).
pub const NO_FENCING: &str = "[no fence] a primary outlived its lease because its daemon was paused or stuck, in a run \
     with the fencing process switched off (what-if)";
/// A diverged node whose LSN on its own timeline is numerically ahead passes the lag check.
pub const CROSS_TIMELINE_LAG: &str = "[Patroni semantics: cross-timeline lag] the lag check compares LSNs of different histories, so a \
     diverged node numerically ahead of status.optime may promote; check_timeline (off by default) only catches a \
     timeline number behind the cluster's, not a sibling fork that reused the number";
/// Two timelines forked apart under the same number: pg_rewind cannot tell them apart.
pub const REUSED_TIMELINE: &str = "[Patroni semantics: reused timeline number] a node promoted from an older timeline \
     took the same timeline number as another fork (without a WAL archive it cannot know the number is taken; \
     check_timeline is off by default); pg_rewind compares the control files' timeline numbers, finds them equal and \
     reports \"no rewind required\", so the former primary stays diverged";

/// The `[tag]` a known cause starts with, for tables.
pub fn known_tag(known: &str) -> &str {
    known
        .strip_prefix('[')
        .and_then(|k| k.split_once(']'))
        .map_or(known, |(tag, _)| tag)
}

#[derive(Debug, Clone)]
pub struct Violation {
    pub rule: Rule,
    pub seed: u64,
    pub step: u64,
    pub at: Millis,
    pub detail: String,
    pub known: Option<&'static str>,
    /// The full failure report (seed, replay command, recent events, node states).
    pub report: String,
}

/// The checker's memory between steps.
#[derive(Debug)]
pub struct Checker {
    pub mode: WritableRule,
    pub violations: Vec<Violation>,
    /// The set of writable primaries of the split brain in progress (reported once per episode).
    split: Option<BTreeSet<usize>>,
    standby_reported: bool,
    /// The node whose promotion was checked, while it keeps holding the leader key (re-bindings
    /// after a restart included): promoting again in the same tenure is the same decision.
    pub(crate) promotion_checked: Option<usize>,
    liveness_settled: bool,
    last_at: Millis,
    /// How to replay this run, printed in every report.
    pub replay_hint: String,
}

impl Checker {
    pub fn new(mode: WritableRule) -> Checker {
        Checker {
            mode,
            violations: Vec::new(),
            split: None,
            standby_reported: false,
            promotion_checked: None,
            liveness_settled: false,
            last_at: 0,
            replay_hint: String::new(),
        }
    }
}

impl World {
    pub(crate) fn record(&mut self, rule: Rule, detail: String, known: Option<&'static str>) {
        let now = self.now();
        let c = &self.cfg;
        let d = &c.dynamic;
        let mut report = format!(
            "VIOLATION of {rule} at step {}, virtual time {}.{:03} s (seed {})\n  {detail}\n",
            self.steps,
            now / 1000,
            now % 1000,
            self.seed
        );
        if let Some(k) = known {
            report.push_str(&format!("  known cause: {k}\n"));
        }
        report.push_str(&format!("replay: {}\n", self.checker.replay_hint));
        report.push_str(&format!(
            "config: {} nodes, ttl {} s, loop_wait {} s, retry_timeout {} s, maximum_lag_on_failover {}, write rate {} B/s, \
             {:?} writable rule, {:?} cadence{}\n",
            c.nodes.len(),
            d.ttl,
            d.loop_wait,
            d.retry_timeout,
            d.maximum_lag_on_failover,
            c.write_rate,
            c.writable,
            c.cadence,
            if d.standby_cluster.is_some() { ", standby cluster" } else { "" }
        ));
        report.push_str(&format!("last {} events:\n", crate::log::RECENT));
        for line in self.log.recent() {
            report.push_str(&format!("  {line}\n"));
        }
        report.push_str("nodes:\n");
        report.push_str(&self.describe());
        self.log.push(now, "CHECK", format!("VIOLATION of {rule}: {detail}"));
        self.checker.violations.push(Violation {
            rule,
            seed: self.seed,
            step: self.steps,
            at: now,
            detail,
            known,
            report,
        });
    }

    pub fn check_invariants(&mut self) {
        let now = self.now();
        let primaries = self.running_primaries();
        if primaries.len() >= 2 {
            self.stats.two_primaries_ms += now - self.checker.last_at;
        }
        self.checker.last_at = now;
        self.check_writable(&primaries);
        self.check_standby(&primaries);
        self.check_liveness();
    }

    fn check_writable(&mut self, primaries: &BTreeSet<usize>) {
        let leader = self.dcs.leader_name();
        let writable: BTreeSet<usize> = primaries
            .iter()
            .copied()
            .filter(|i| {
                let n = &self.nodes[*i];
                match self.checker.mode {
                    WritableRule::Strict => true,
                    WritableRule::LeaseAware => leader == Some(n.name()) || !n.active(),
                }
            })
            .collect();
        if writable.len() < 2 {
            self.checker.split = None;
            return;
        }
        if self.checker.split.as_ref() == Some(&writable) {
            return;
        }
        let safe = writable.iter().filter(|i| !self.outlived_lease(**i)).count();
        let known = (safe <= 1 && !self.cfg.fencing).then_some(NO_FENCING);
        let who: Vec<String> = writable
            .iter()
            .map(|i| {
                let n = &self.nodes[*i];
                let holds = if leader == Some(n.name()) {
                    "holds the leader key"
                } else {
                    "does not hold the key"
                };
                let daemon = if n.paused {
                    "daemon paused"
                } else if n.daemon_alive() {
                    "daemon running"
                } else {
                    "daemon gone"
                };
                format!("{} ({holds}, {daemon})", n.name())
            })
            .collect();
        let detail = format!(
            "{} run Postgres as writable primaries at the same time ({:?} rule): {}",
            writable.len(),
            self.checker.mode,
            who.join(", ")
        );
        self.checker.split = Some(writable);
        self.record(Rule::TwoWritablePrimaries, detail, known);
    }

    /// A running primary whose daemon is paused or gone, or has not renewed the lock for longer
    /// than the fence would allow (`ttl - min(5 s, ttl / 2)`).
    fn outlived_lease(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        let allowed = self.cfg.ttl_ms() - 5_000u64.min(self.cfg.ttl_ms() / 2);
        let stale = n
            .daemon()
            .and_then(|d| d.last_refresh)
            .is_none_or(|r| self.now() >= r + allowed);
        !n.active() || stale
    }

    fn check_standby(&mut self, primaries: &BTreeSet<usize>) {
        if self.cfg.dynamic.standby_cluster.is_none() || self.checker.standby_reported {
            return;
        }
        if let Some(i) = primaries.iter().next() {
            self.checker.standby_reported = true;
            let detail = format!(
                "{} runs Postgres as a primary in a standby cluster",
                self.nodes[*i].name()
            );
            self.record(Rule::StandbyPromoted, detail, None);
        }
    }

    fn check_liveness(&mut self) {
        let Some(heal) = self.heal_at else { return };
        if self.checker.liveness_settled {
            return;
        }
        let now = self.now();
        if self.leader().is_some() {
            self.checker.liveness_settled = true;
            self.stats.max_ms_to_leader_after_heal = self.stats.max_ms_to_leader_after_heal.max(now - heal);
            return;
        }
        let allowed = self.cfg.ttl_ms() + self.cfg.loop_wait_ms();
        if now <= heal + allowed {
            return;
        }
        self.checker.liveness_settled = true;
        if !self.someone_may_lead() {
            self.stats.leaderless_by_design += 1;
            self.log.push(
                now,
                "CHECK",
                "no leader, and by the configured rules no node may lead (no data, tags, maximum_lag_on_failover or check_timeline)",
            );
            return;
        }
        let detail = format!(
            "no leader {} ms after the faults stopped (allowed: ttl + loop_wait = {allowed} ms), although a node \
             is eligible",
            now - heal
        );
        self.record(Rule::Liveness, detail, None);
    }

    /// Bytes of the last published leader position that `data` does not really have.
    fn gap_to_published(&self, data: &Data) -> Option<(u64, u64)> {
        let optime = self.dcs.optime()?;
        let writer = self.status_writer.as_ref()?;
        let shared = common_prefix(data, writer).min(data.lsn);
        Some((optime, optime.saturating_sub(shared)))
    }

    /// Whether some live node may lead by the configured rules: eligible by its tags, within
    /// `maximum_lag_on_failover` of the published position on the real history and, with
    /// `check_timeline`, not on a timeline behind the cluster's.
    fn someone_may_lead(&self) -> bool {
        let max = self.cfg.dynamic.maximum_lag_on_failover;
        let timeline_ok =
            |d: &Data| !self.cfg.dynamic.check_timeline || d.lineage.timeline >= self.dcs.cluster_timeline();
        self.nodes.iter().any(|n| {
            let tags = &n.config.tags;
            n.daemon_alive()
                && !tags.nofailover
                && tags.failover_priority.is_none_or(|p| p > 0)
                && n.pg
                    .data()
                    .is_some_and(|d| timeline_ok(d) && self.gap_to_published(d).is_none_or(|(_, gap)| gap <= max))
        })
    }

    /// Called when a node's background action is about to start: initdb and promotions are the
    /// moments the bootstrap and promotion rules are about.
    pub(crate) fn check_action_start(&mut self, i: usize, action: &LongAction) {
        let name = self.nodes[i].name().to_string();
        let standby = self.cfg.dynamic.standby_cluster.is_some();
        match action {
            LongAction::Bootstrap => {
                self.stats.initdb_started += 1;
                let others: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|n| n.idx != i)
                    .filter(|n| {
                        n.pg.data().is_some() || n.slot.as_ref().is_some_and(|s| s.action == LongAction::Bootstrap)
                    })
                    .map(|n| n.name().to_string())
                    .collect();
                if !others.is_empty() {
                    let detail = format!(
                        "{name} starts initdb although {} already has (or is creating) a cluster",
                        others.join(", ")
                    );
                    self.record(Rule::SecondInitdb, detail, None);
                }
            }
            LongAction::StartPrimary | LongAction::Promote => {
                let Some(data) = self.nodes[i].pg.data().cloned() else {
                    return;
                };
                if self.checker.promotion_checked == Some(i) {
                    return;
                }
                self.checker.promotion_checked = Some(i);
                if self.nodes[i].config.tags.nofailover {
                    let detail = format!("{name} (tagged nofailover) starts {}", action.name());
                    self.record(Rule::NofailoverPromoted, detail, None);
                }
                if standby {
                    let detail = format!("{name} starts {} in a standby cluster", action.name());
                    self.record(Rule::StandbyPromoted, detail, None);
                }
                let Some((optime, gap)) = self.gap_to_published(&data) else {
                    return;
                };
                self.stats.max_promotion_lag = self.stats.max_promotion_lag.max(gap);
                let max = self.cfg.dynamic.maximum_lag_on_failover;
                if gap > max {
                    let detail = format!(
                        "{name} starts {} ({}) {gap} bytes behind the last published leader position {optime}, \
                         beyond maximum_lag_on_failover {max}; its lsn is {} on timeline {} (numeric lag {}), its \
                         history shares {} bytes with the last leader's",
                        action.name(),
                        if matches!(self.nodes[i].pg, Pg::Stopped { standby: false, .. }) {
                            "former primary data"
                        } else {
                            "replica data"
                        },
                        data.lsn,
                        data.lineage.timeline,
                        optime.saturating_sub(data.lsn),
                        self.status_writer.as_ref().map_or(0, |w| common_prefix(&data, w)),
                    );
                    let numeric = optime.saturating_sub(data.lsn);
                    let known = (numeric <= max
                        && (!self.cfg.dynamic.check_timeline || data.lineage.timeline >= self.dcs.cluster_timeline()))
                    .then_some(CROSS_TIMELINE_LAG);
                    self.record(Rule::PromotionLag, detail, known);
                }
            }
            _ => {}
        }
    }

    pub(crate) fn fatal_exit(&mut self, i: usize, msg: &str) {
        let detail = format!("{} exited: {msg}", self.nodes[i].name());
        self.record(Rule::FatalExit, detail, None);
    }

    /// End-of-run checks: one cluster, and every live node back in it.
    pub fn final_checks(&mut self) {
        let sysids: BTreeSet<u64> = self
            .nodes
            .iter()
            .filter_map(|n| n.pg.data().map(|d| d.lineage.sysid))
            .collect();
        if sysids.len() > 1 {
            let detail = format!(
                "the data directories hold {} different clusters: {sysids:?}",
                sysids.len()
            );
            self.record(Rule::SecondInitdb, detail, None);
        }
        if self.dcs.failover_pending() {
            self.stats.switchovers_pending_at_end += 1;
        }
        let Some(leader) = self.leader() else { return };
        let Some(leader_data) = self.nodes[leader].pg.data().cloned() else {
            return;
        };
        let mut found = Vec::new();
        for j in 0..self.nodes.len() {
            let n = &self.nodes[j];
            if j == leader || !n.daemon_alive() || n.slot.is_some() {
                continue;
            }
            let diverged = |d: &Data| {
                let upstream = match &n.pg {
                    Pg::Running {
                        upstream: Some(Src::Node(u)),
                        ..
                    } => self.nodes[*u].pg.data(),
                    _ => None,
                };
                diverged_from(d, &leader_data) || upstream.is_some_and(|u| diverged_from(d, u))
            };
            match &n.pg {
                Pg::Running { streaming: true, .. } => {}
                Pg::Running { data, .. } | Pg::Stopped { data, .. } if diverged(data) => {
                    self.stats.diverged_at_end += 1;
                    // A replica that diverged (it received WAL a lagging new leader never had) needs
                    // an operator; a former primary must have been rewound when pg_rewind is allowed.
                    let rewind = n
                        .config
                        .postgresql
                        .use_pg_rewind
                        .unwrap_or(self.cfg.dynamic.use_pg_rewind);
                    if n.former_primary && rewind {
                        let detail = format!(
                            "{}, a former primary, still holds WAL that leader {} does not have at the end of the \
                             run although use_pg_rewind is on: {}",
                            n.name(),
                            self.nodes[leader].name(),
                            n.describe(&self.names())
                        );
                        found.push((detail, self.never_rewound_cause(j)));
                    }
                }
                _ => {
                    let detail = format!(
                        "{} has not rejoined the cluster of leader {} by the end of the run: {}",
                        n.name(),
                        self.nodes[leader].name(),
                        n.describe(&self.names())
                    );
                    found.push((detail, None));
                }
            }
        }
        for (detail, known) in found {
            self.record(Rule::Convergence, detail, known);
        }
    }

    /// Why a former primary was never rewound, when the cause is a known gap: only Patroni's
    /// semantics of a reused timeline number are left.
    fn never_rewound_cause(&self, i: usize) -> Option<&'static str> {
        (self.nodes[i].rewind_skipped == Some(false)).then_some(REUSED_TIMELINE)
    }
}
