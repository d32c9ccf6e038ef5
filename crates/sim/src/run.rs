//! Running seeds: one seed is one random configuration, one random fault schedule and one run;
//! many seeds run on all cores and are summed. A panic inside a run is caught and reported with
//! its seed like any violation.

use crate::clock::Millis;
use crate::config::{Cadence, SimConfig, WritableRule};
use crate::faults::random_schedule;
use crate::invariants::{Rule, Violation, known_tag};
use crate::rng::Rng;
use crate::stats::Stats;
use crate::world::World;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How random runs are set up.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub writable: WritableRule,
    pub cadence: Cadence,
    /// Run every seed as a standby cluster (the decision core has no rules for it yet).
    pub standby_cluster: bool,
    /// The daemon's fencing process (on, as in ferroni; off shows what it prevents).
    pub fencing: bool,
    /// Force this many nodes instead of 3 to 5.
    pub nodes: Option<usize>,
    pub full_log: bool,
}

impl Default for RunOptions {
    /// What CI runs: ferroni as it is (fence on), held to the strict rule; see the crate docs.
    fn default() -> Self {
        RunOptions {
            writable: WritableRule::Strict,
            cadence: Cadence::AfterCycle,
            standby_cluster: false,
            fencing: true,
            nodes: None,
            full_log: false,
        }
    }
}

#[derive(Debug)]
pub struct RunReport {
    pub seed: u64,
    pub stats: Stats,
    pub violations: Vec<Violation>,
    /// Every event, when `full_log` was set.
    pub log: Option<Vec<String>>,
    pub end_at: Millis,
}

/// The configuration and the world of `seed`, ready to run, with the time its run ends.
pub fn build(seed: u64, opts: &RunOptions) -> (World, Millis) {
    let mut setup = Rng::stream(seed, 1);
    let mut cfg = SimConfig::random(&mut setup, opts.writable);
    if let Some(n) = opts.nodes {
        let mut more = cfg.nodes.clone();
        more.resize_with(n, || crate::config::NodeSpec::new(0));
        for (i, spec) in more.iter_mut().enumerate().skip(cfg.nodes.len()) {
            *spec = crate::config::NodeSpec::new(i);
        }
        cfg.nodes = more;
    }
    cfg.cadence = opts.cadence;
    cfg.fencing = opts.fencing;
    cfg.full_log = opts.full_log;
    if opts.standby_cluster {
        cfg.make_standby_cluster();
    }
    let schedule = random_schedule(&mut Rng::stream(seed, 2), &cfg);
    let deadline = schedule.heal_at + cfg.ttl_ms() + cfg.loop_wait_ms() + 1;
    let mut world = World::new(seed, cfg);
    world.checker.replay_hint = format!("SIM_SEED={seed} cargo test -p ferroni-sim replay -- --nocapture");
    for (t, c) in schedule.commands {
        world.schedule_command(t, c);
    }
    world.schedule_check(deadline);
    (world, schedule.end_at)
}

pub fn run_seed(seed: u64, opts: &RunOptions) -> RunReport {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let (mut world, end) = build(seed, opts);
        world.run_until(end);
        world.final_checks();
        world.stats.seeds = 1;
        RunReport {
            seed,
            log: world.log.all().map(<[String]>::to_vec),
            violations: world.checker.violations,
            stats: world.stats,
            end_at: end,
        }
    }));
    outcome.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        RunReport {
            seed,
            stats: Stats {
                seeds: 1,
                ..Stats::default()
            },
            violations: vec![Violation {
                rule: Rule::Panic,
                seed,
                step: 0,
                at: 0,
                detail: msg.clone(),
                known: None,
                report: format!(
                    "PANIC in seed {seed}: {msg}\nreplay: SIM_SEED={seed} cargo test -p ferroni-sim replay -- --nocapture\n"
                ),
            }],
            log: None,
            end_at: 0,
        }
    })
}

/// The result of many seeds.
#[derive(Debug, Default)]
pub struct Summary {
    pub stats: Stats,
    pub violations: Vec<Violation>,
    pub elapsed: Duration,
}

impl Summary {
    pub fn unknown(&self) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(|v| v.known.is_none())
    }

    pub fn known(&self) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(|v| v.known.is_some())
    }

    /// Counts per rule (and known cause) with the first seeds; unknown ones first.
    pub fn violation_table(&self) -> String {
        let mut rows: Vec<(bool, String, Vec<u64>)> = Vec::new();
        for v in &self.violations {
            let key = match v.known {
                Some(k) => format!("{} (known: {})", v.rule, known_tag(k)),
                None => v.rule.to_string(),
            };
            match rows.iter_mut().find(|(_, k, _)| *k == key) {
                Some((_, _, seeds)) => seeds.push(v.seed),
                None => rows.push((v.known.is_some(), key, vec![v.seed])),
            }
        }
        rows.sort();
        let mut s = String::new();
        for (_, key, seeds) in rows {
            let mut unique = seeds.clone();
            unique.dedup();
            let shown: Vec<String> = unique.iter().take(8).map(u64::to_string).collect();
            s.push_str(&format!(
                "  {key}: {} in {} seeds (e.g. {})\n",
                seeds.len(),
                unique.len(),
                shown.join(", ")
            ));
        }
        if s.is_empty() {
            s.push_str("  none\n");
        }
        s
    }
}

/// Runs `seeds` on every core; reports come back sorted by seed.
pub fn run_seeds(seeds: std::ops::Range<u64>, opts: &RunOptions) -> Summary {
    let started = Instant::now();
    let next = AtomicU64::new(seeds.start);
    let reports = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get()).min(16);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    let r = run_seed(seed, opts);
                    reports.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                }
            });
        }
    });
    let mut reports = reports.into_inner().unwrap_or_else(|p| p.into_inner());
    reports.sort_by_key(|r| r.seed);
    let mut summary = Summary::default();
    for r in reports {
        summary.stats.merge(&r.stats);
        summary.violations.extend(r.violations);
    }
    summary.elapsed = started.elapsed();
    summary
}
