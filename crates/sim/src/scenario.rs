//! Scripted scenarios as data: one line per step, reviewed as text, run by `tests/scenarios.rs`.
//!
//! ```text
//! # The leader crashes; the most advanced replica takes over.
//! nodes n1 n2 n3
//! node n3 replication_rate=20000          # also: nofailover failover_priority=N clone_rate=B host=h:p
//! set ttl=30 loop_wait=10 retry_timeout=10 maximum_lag_on_failover=1048576 write_rate=50000
//! mode strict                             # (default) or lease-aware; also: fencing on|off (default on),
//!                                         # cadence ferroni|patroni, standby, seed 7
//! t=0 start n1
//! t=5s start n2 n3
//! t=30s expect leader == n1
//! t=60s crash n1
//! t=60s expect leader == n2 within 45s
//! t=60s expect not_primary n3 always
//! t=120s end
//! ```
//!
//! Commands: `start <nodes..>`, `crash`, `restart`, `wipe`, `pgcrash`, `pause`, `resume`,
//! `isolate <node> [refused|timeout]`, `reconnect`, `dcs down [refused|timeout]`, `dcs up`,
//! `slow_clone <node> on|off`, `switchover <node>` (through the API's checks), `failover_key <node>`
//! (written straight into the DCS), `write <bytes>`, `write_rate <B/s>`,
//! `replication_rate <node> <B/s>`, `heal`, `end`, and `when <node> runs <Action> then <command>`
//! (fires once, right after the node runs that action, e.g. `WriteStatus`).
//!
//! Expectations (`expect <condition> [within <duration> | always]`): `leader ==|!= <node>|none|any`
//! (lock holder running as primary), `lock ==|!= <node>|none` (the key alone), `primary <node>`,
//! `not_primary <node>`, `replica <node>` (running and streaming), `running <node>`,
//! `initdb == <n>`, `primaries == <n>`, `streaming == <n>`, `violation <rule>`. Without a window the
//! condition must hold at that instant. Every invariant is checked after every step as in random
//! runs; a violation fails the scenario unless an `expect violation <rule>` line names its rule.
//! Times and durations are milliseconds, or take an `s` / `ms` suffix (`1.5s`).

use crate::clock::Millis;
use crate::config::{Cadence, NodeSpec, SimConfig, WritableRule};
use crate::dcs::FailMode;
use crate::faults::Command;
use crate::invariants::{Rule, Violation};
use crate::pgmodel::Pg;
use crate::world::{Trigger, World};
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// One of these nodes (`n2|n3`).
    Node(Vec<usize>),
    Nobody,
    Anybody,
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Leader(bool, Target),
    Lock(bool, Target),
    Primary(usize, bool),
    Replica(usize),
    Running(usize),
    Initdb(u64),
    Primaries(usize),
    Streaming(usize),
    Violation(Rule),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Window {
    Now,
    Within(Millis),
    Always,
}

#[derive(Debug, Clone)]
enum Step {
    Command(Command),
    Expect(Cond, Window),
    Trigger(usize, String, Command),
    End,
}

#[derive(Debug, Clone)]
struct Line {
    at: Millis,
    number: usize,
    text: String,
    step: Step,
}

/// A parsed scenario, ready to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub cfg: SimConfig,
    pub seed: u64,
    lines: Vec<Line>,
}

/// What running a scenario produced.
#[derive(Debug)]
pub struct Outcome {
    /// Every event (when asked for), else empty.
    pub log: Vec<String>,
    pub summary: String,
    /// One paragraph per failed expectation or unexpected violation; empty when the scenario passed.
    pub failures: Vec<String>,
    pub violations: Vec<Violation>,
}

pub fn run_file(path: &Path, full_log: bool) -> Result<Outcome, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let name = path.display().to_string();
    let scenario = parse(&text, &name)?;
    Ok(run(&scenario, full_log))
}

/// `30000`, `30s`, `1.5s`, `500ms`.
fn duration(s: &str) -> Result<Millis, String> {
    let bad = || format!("not a duration: {s:?}");
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().map_err(|_| bad());
    }
    if let Some(secs) = s.strip_suffix('s') {
        let v: f64 = secs.parse().map_err(|_| bad())?;
        return Ok((v * 1000.0).round() as Millis);
    }
    s.parse().map_err(|_| bad())
}

fn number(s: &str) -> Result<u64, String> {
    s.replace('_', "").parse().map_err(|_| format!("not a number: {s:?}"))
}

fn fail_mode(s: Option<&&str>) -> Result<FailMode, String> {
    match s.copied() {
        None | Some("refused") => Ok(FailMode::Refused),
        Some("timeout") => Ok(FailMode::Timeout),
        Some(other) => Err(format!("expected refused or timeout, got {other:?}")),
    }
}

struct Parser {
    cfg: SimConfig,
    seed: u64,
    names: Vec<String>,
}

impl Parser {
    fn node(&self, name: &str) -> Result<usize, String> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| format!("unknown node {name:?} (declare it with `nodes`)"))
    }

    fn header(&mut self, words: &[&str]) -> Result<(), String> {
        match words {
            ["nodes", names @ ..] => {
                self.names = names.iter().map(|s| s.to_string()).collect();
                let mut specs = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    let mut spec = NodeSpec::new(i);
                    spec.name = name.to_string();
                    specs.push(spec);
                }
                self.cfg.nodes = specs;
            }
            ["node", name, opts @ ..] => {
                let i = self.node(name)?;
                for opt in opts {
                    let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
                    let spec = &mut self.cfg.nodes[i];
                    match k {
                        "nofailover" => spec.nofailover = true,
                        "clonefrom" => spec.clonefrom = true,
                        "failover_priority" => {
                            spec.failover_priority = Some(v.parse().map_err(|_| format!("not a number: {opt}"))?)
                        }
                        "replication_rate" => spec.replication_rate = number(v)?,
                        "clone_rate" => spec.clone_rate = number(v)?,
                        "host" => spec.host = v.to_string(),
                        "replicatefrom" => spec.replicatefrom = Some(v.to_string()),
                        _ => return Err(format!("unknown node option {opt:?}")),
                    }
                }
            }
            ["set", pairs @ ..] => {
                for pair in pairs {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or_else(|| format!("expected key=value: {pair:?}"))?;
                    let d = &mut self.cfg.dynamic;
                    let flag = || v == "true" || v == "on";
                    match k {
                        "ttl" => d.ttl = number(v)? as u32,
                        "loop_wait" => d.loop_wait = number(v)? as u32,
                        "retry_timeout" => d.retry_timeout = number(v)? as u32,
                        "maximum_lag_on_failover" => d.maximum_lag_on_failover = number(v)?,
                        "check_timeline" => d.check_timeline = flag(),
                        "use_pg_rewind" => d.use_pg_rewind = flag(),
                        "write_rate" => self.cfg.write_rate = number(v)?,
                        "start_delay" => {
                            let ms = duration(v)?;
                            self.cfg.start_delay = (ms, ms);
                        }
                        _ => return Err(format!("unknown setting {k:?}")),
                    }
                }
            }
            ["mode", "strict"] => self.cfg.writable = WritableRule::Strict,
            ["mode", "lease-aware"] => self.cfg.writable = WritableRule::LeaseAware,
            ["cadence", "ferroni"] => self.cfg.cadence = Cadence::AfterCycle,
            ["cadence", "patroni"] => self.cfg.cadence = Cadence::FromCycleStart,
            ["fencing", v] => self.cfg.fencing = *v == "on",
            ["standby"] => self.cfg.make_standby_cluster(),
            ["seed", v] => self.seed = number(v)?,
            _ => return Err(format!("unknown line: {}", words.join(" "))),
        }
        Ok(())
    }

    fn command(&self, words: &[&str]) -> Result<Command, String> {
        let node = |i: usize| -> Result<usize, String> {
            self.node(words.get(i).ok_or_else(|| format!("{}: which node?", words[0]))?)
        };
        Ok(match words {
            ["crash", ..] => Command::Crash(node(1)?),
            ["restart", ..] => Command::Restart(node(1)?),
            ["wipe", ..] => Command::Wipe(node(1)?),
            ["pgcrash", ..] => Command::PgCrash(node(1)?),
            ["pause", ..] => Command::Pause(node(1)?),
            ["resume", ..] => Command::Unpause(node(1)?),
            ["isolate", _, rest @ ..] => Command::Isolate(node(1)?, fail_mode(rest.first())?),
            ["reconnect", ..] => Command::Reconnect(node(1)?),
            ["dcs", "down", rest @ ..] => Command::DcsDown(fail_mode(rest.first())?),
            ["dcs", "up"] => Command::DcsUp,
            ["slow_clone", _, on] => Command::SlowClone(node(1)?, *on == "on"),
            ["switchover", ..] => Command::Switchover(node(1)?),
            ["failover_key", ..] => Command::FailoverKey(node(1)?),
            ["write", bytes] => Command::WriteBurst(number(bytes)?),
            ["write_rate", rate] => Command::SetWriteRate(number(rate)?),
            ["replication_rate", _, rate] => Command::SetReplicationRate(node(1)?, number(rate)?),
            ["heal"] => Command::Heal,
            _ => return Err(format!("unknown command: {}", words.join(" "))),
        })
    }

    fn target(&self, s: &str) -> Result<Target, String> {
        Ok(match s {
            "none" => Target::Nobody,
            "any" => Target::Anybody,
            names => Target::Node(names.split('|').map(|n| self.node(n)).collect::<Result<_, _>>()?),
        })
    }

    fn condition(&self, words: &[&str]) -> Result<Cond, String> {
        let eq = |op: &str| match op {
            "==" => Ok(true),
            "!=" => Ok(false),
            _ => Err(format!("expected == or !=, got {op:?}")),
        };
        Ok(match words {
            ["leader", op, t] => Cond::Leader(eq(op)?, self.target(t)?),
            ["lock", op, t] => Cond::Lock(eq(op)?, self.target(t)?),
            ["primary", n] => Cond::Primary(self.node(n)?, true),
            ["not_primary", n] => Cond::Primary(self.node(n)?, false),
            ["replica", n] => Cond::Replica(self.node(n)?),
            ["running", n] => Cond::Running(self.node(n)?),
            ["initdb", "==", k] => Cond::Initdb(number(k)?),
            ["primaries", "==", k] => Cond::Primaries(number(k)? as usize),
            ["streaming", "==", k] => Cond::Streaming(number(k)? as usize),
            ["violation", rule] => Cond::Violation(Rule::parse(rule).ok_or_else(|| format!("unknown rule {rule:?}"))?),
            _ => return Err(format!("unknown condition: {}", words.join(" "))),
        })
    }

    fn step(&self, words: &[&str]) -> Result<Step, String> {
        match words {
            ["end"] => Ok(Step::End),
            ["start", n] => Ok(Step::Command(Command::Start(self.node(n)?))),
            ["expect", rest @ ..] => {
                let (cond, window) = match rest {
                    [c @ .., "within", d] => (c, Window::Within(duration(d)?)),
                    [c @ .., "always"] => (c, Window::Always),
                    c => (c, Window::Now),
                };
                Ok(Step::Expect(self.condition(cond)?, window))
            }
            ["when", n, "runs", action, "then", cmd @ ..] => {
                Ok(Step::Trigger(self.node(n)?, action.to_string(), self.command(cmd)?))
            }
            cmd => Ok(Step::Command(self.command(cmd)?)),
        }
    }
}

/// Parses a scenario; errors name the line.
pub fn parse(text: &str, name: &str) -> Result<Scenario, String> {
    let mut p = Parser {
        cfg: SimConfig::with_nodes(3),
        seed: 0,
        names: (1..=3).map(|i| format!("n{i}")).collect(),
    };
    p.cfg.writable = WritableRule::Strict;
    let mut lines = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let number = idx + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let words: Vec<&str> = content.split_whitespace().collect();
        let err = |e: String| format!("{name}:{number}: {e}");
        match words[0].strip_prefix("t=") {
            None => {
                if !lines.is_empty() {
                    return Err(err("settings must come before the first timed line".into()));
                }
                p.header(&words).map_err(err)?;
            }
            Some(t) => {
                let at = duration(t).map_err(err)?;
                // `start a b c` expands to one line per node.
                if words.get(1) == Some(&"start") {
                    for n in &words[2..] {
                        let step = p.step(&["start", n]).map_err(err)?;
                        lines.push(Line {
                            at,
                            number,
                            text: content.to_string(),
                            step,
                        });
                    }
                    continue;
                }
                let step = p.step(&words[1..]).map_err(err)?;
                lines.push(Line {
                    at,
                    number,
                    text: content.to_string(),
                    step,
                });
            }
        }
    }
    if let Err(e) = validate(&p.cfg) {
        return Err(format!("{name}: {e}"));
    }
    lines.sort_by_key(|l| l.at);
    Ok(Scenario {
        name: name.to_string(),
        cfg: p.cfg,
        seed: p.seed,
        lines,
    })
}

/// The rule `ferroni-config` enforces, so a scenario cannot test an impossible configuration.
fn validate(cfg: &SimConfig) -> Result<(), String> {
    let d = &cfg.dynamic;
    if d.loop_wait + 2 * d.retry_timeout > d.ttl {
        return Err(format!(
            "loop_wait + 2 * retry_timeout must not exceed ttl ({} + 2 * {} > {})",
            d.loop_wait, d.retry_timeout, d.ttl
        ));
    }
    Ok(())
}

struct Watch {
    line: usize,
    text: String,
    cond: Cond,
    from: Millis,
    deadline: Option<Millis>,
}

fn holds(w: &World, cond: &Cond, from: Millis) -> bool {
    let matches = |who: Option<usize>, t: &Target| match t {
        Target::Node(v) => who.is_some_and(|i| v.contains(&i)),
        Target::Nobody => who.is_none(),
        Target::Anybody => who.is_some(),
    };
    match cond {
        Cond::Leader(eq, t) => matches(w.leader(), t) == *eq,
        Cond::Lock(eq, t) => matches(w.dcs.leader_name().and_then(|n| w.node_index(n)), t) == *eq,
        Cond::Primary(i, yes) => w.nodes[*i].pg.is_primary() == *yes,
        Cond::Replica(i) => {
            matches!(w.nodes[*i].pg, Pg::Running { streaming: true, .. }) && w.nodes[*i].pg.is_replica()
        }
        Cond::Running(i) => matches!(w.nodes[*i].pg, Pg::Running { .. }),
        Cond::Initdb(k) => w.stats.initdb_started == *k,
        Cond::Primaries(k) => w.running_primaries().len() == *k,
        Cond::Streaming(k) => {
            w.nodes
                .iter()
                .filter(|n| matches!(n.pg, Pg::Running { streaming: true, .. }))
                .count()
                == *k
        }
        Cond::Violation(rule) => w.violations().iter().any(|v| v.rule == *rule && v.at >= from),
    }
}

fn failure(w: &World, line: usize, text: &str, why: &str) -> String {
    let now = w.now();
    let mut s = format!(
        "line {line} `{text}` failed at {}.{:03} s: {why}\nlast events:\n",
        now / 1000,
        now % 1000
    );
    for l in w.log.recent() {
        s.push_str(&format!("  {l}\n"));
    }
    s.push_str("nodes:\n");
    s.push_str(&w.describe());
    s
}

/// Steps the world up to `until`, checking the `within` and `always` watches after every step.
fn advance(w: &mut World, until: Millis, watches: &mut Vec<Watch>, failures: &mut Vec<String>) {
    loop {
        let deadline = watches.iter().filter_map(|x| x.deadline).filter(|d| *d <= until).min();
        let stop = deadline.unwrap_or(until);
        while w.next_step_at().is_some_and(|t| t <= stop) {
            w.step();
            check_watches(w, watches, failures);
        }
        w.run_until(stop);
        let now = w.now();
        watches.retain(|x| {
            let expired = x.deadline.is_some_and(|d| d <= now);
            if expired {
                failures.push(failure(w, x.line, &x.text, "not satisfied within its window"));
            }
            !expired
        });
        if deadline.is_none() {
            return;
        }
    }
}

fn check_watches(w: &World, watches: &mut Vec<Watch>, failures: &mut Vec<String>) {
    watches.retain(|x| {
        let ok = holds(w, &x.cond, x.from);
        match x.deadline {
            // `within`: done as soon as it holds.
            Some(_) => !ok,
            // `always`: a single step where it does not hold fails it.
            None if !ok => {
                failures.push(failure(w, x.line, &x.text, "stopped holding"));
                false
            }
            None => true,
        }
    });
}

pub fn run(s: &Scenario, full_log: bool) -> Outcome {
    let mut cfg = s.cfg.clone();
    cfg.full_log = full_log;
    let mut w = World::new(s.seed, cfg);
    w.checker.replay_hint = format!("cargo run -p ferroni-sim -- --scenario {} --log", s.name);
    let expected: Vec<Rule> = s
        .lines
        .iter()
        .filter_map(|l| match &l.step {
            Step::Expect(Cond::Violation(r), _) => Some(*r),
            _ => None,
        })
        .collect();
    let mut watches: Vec<Watch> = Vec::new();
    let mut failures = Vec::new();
    let mut end = s.lines.last().map_or(0, |l| l.at);
    for line in &s.lines {
        advance(&mut w, line.at, &mut watches, &mut failures);
        match &line.step {
            Step::Command(c) => {
                w.apply_now(c.clone());
                check_watches(&w, &mut watches, &mut failures);
            }
            Step::Trigger(node, action, command) => w.triggers.push(Trigger {
                armed_at: line.at,
                node: *node,
                action: action.clone(),
                command: command.clone(),
            }),
            Step::Expect(cond, window) => {
                let ok = holds(&w, cond, line.at);
                let watch = |deadline| Watch {
                    line: line.number,
                    text: line.text.clone(),
                    cond: cond.clone(),
                    from: line.at,
                    deadline,
                };
                match window {
                    Window::Now if !ok => failures.push(failure(&w, line.number, &line.text, "does not hold")),
                    Window::Within(d) if !ok => watches.push(watch(Some(line.at + d))),
                    Window::Always if !ok => failures.push(failure(&w, line.number, &line.text, "does not hold")),
                    Window::Always => watches.push(watch(None)),
                    _ => {}
                }
            }
            Step::End => {
                end = line.at;
                break;
            }
        }
    }
    advance(&mut w, end, &mut watches, &mut failures);
    for x in watches.iter().filter(|x| x.deadline.is_some()) {
        failures.push(failure(&w, x.line, &x.text, "the scenario ended before its window"));
    }
    for v in w.violations() {
        if !expected.contains(&v.rule) {
            failures.push(format!("unexpected {}", v.report));
        }
    }
    let summary = format!("{}: {} steps, {} ms of virtual time\n{}", s.name, w.steps, end, w.stats);
    Outcome {
        log: w.log.all().map(<[String]>::to_vec).unwrap_or_default(),
        summary,
        failures,
        violations: w.violations().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_errors_name_the_line() {
        assert_eq!(duration("1.5s"), Ok(1500));
        assert_eq!(duration("250ms"), Ok(250));
        assert_eq!(duration("42"), Ok(42));
        let err = parse("nodes a b\nt=0 start a\nt=1s explode a\n", "x").unwrap_err();
        assert!(err.starts_with("x:3:"), "{err}");
        let err = parse("set ttl=10 loop_wait=5 retry_timeout=5\n", "y").unwrap_err();
        assert!(err.contains("must not exceed ttl"), "{err}");
    }

    #[test]
    fn a_tiny_scenario_runs() {
        let s = parse(
            "nodes a b\nset ttl=10 loop_wait=2 retry_timeout=4\nt=0 start a b\nt=0 expect leader == any within 10s\nt=20s end\n",
            "tiny",
        )
        .expect("parse");
        let out = run(&s, false);
        assert!(out.failures.is_empty(), "{}", out.failures.join("\n"));
    }
}
