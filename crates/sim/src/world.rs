//! The simulated cluster: nodes, the DCS, the virtual clock and the event loop. One step runs one
//! event (a cycle phase, a long action phase, a command) or one lease expiry, after moving every
//! Postgres model forward to that instant; the invariants are checked after every step.

use crate::actions::Phase;
use crate::clock::{Clock, Millis};
use crate::config::SimConfig;
use crate::dcs::Dcs;
use crate::faults::Command;
use crate::invariants::{Checker, Violation};
use crate::log::EventLog;
use crate::node::{DaemonState, Node};
use crate::pgmodel::{self, Data, Lineage, Pg, Src};
use crate::rng::Rng;
use crate::stats::Stats;
use ferroni_decision::Memory;
use ferroni_model::Role;
use std::collections::BTreeSet;

#[derive(Debug)]
pub enum Event {
    /// A daemon starts a cycle: reads the DCS.
    Cycle {
        node: usize,
        epoch: u64,
    },
    /// A daemon's cycle continues after waiting for the DCS or a peer.
    Resume {
        node: usize,
        epoch: u64,
    },
    /// A phase of a long action takes effect on Postgres.
    Phase {
        node: usize,
        action: u64,
        phase: Phase,
        rest: Vec<(Millis, Phase)>,
    },
    Command(Command),
    /// Nothing happens; the invariants are checked at this instant (a deadline).
    Tick,
    /// The fence process polls its heartbeat after this deadline.
    Fence {
        node: usize,
        deadline: Millis,
    },
}

/// A command applied right after `node` runs an action of kind `action` (e.g. `WriteStatus`) at or
/// after `armed_at`, once: lets a scenario cut a node off in the middle of its cycle.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub armed_at: Millis,
    pub node: usize,
    pub action: String,
    pub command: Command,
}

pub struct World {
    pub seed: u64,
    pub cfg: SimConfig,
    pub clock: Clock<Event>,
    /// Jitter of the runtime (cycle latencies, action durations); the schedule has its own stream.
    pub rng: Rng,
    pub dcs: Dcs,
    pub nodes: Vec<Node>,
    /// `host:port` of every node, as the prober reports an upstream.
    pub hosts: Vec<String>,
    /// The remote primary a standby cluster replicates from (standby clusters only).
    pub remote: Option<Data>,
    pub log: EventLog,
    pub checker: Checker,
    pub stats: Stats,
    pub steps: u64,
    /// The data of the node that last wrote `status`, as it was then: the ground truth the
    /// promotion-lag invariant compares a candidate with.
    pub status_writer: Option<Data>,
    pub heal_at: Option<Millis>,
    /// Commands a scenario fires right after a node runs a given action (see [`Trigger`]).
    pub triggers: Vec<Trigger>,
    pub(crate) write_rate: u64,
    pg_time: Millis,
    next_uid: u64,
    next_action: u64,
}

impl World {
    pub fn new(seed: u64, cfg: SimConfig) -> World {
        let dcs_json = cfg.bootstrap_dcs();
        let nodes: Vec<Node> = cfg
            .nodes
            .iter()
            .enumerate()
            .map(|(i, spec)| Node::new(i, spec.clone(), spec.ferroni_config(&dcs_json)))
            .collect();
        let remote = cfg.dynamic.standby_cluster.is_some().then(|| Data {
            lineage: Lineage {
                sysid: 7_100_000_000_000_000_001,
                past: vec![],
                timeline: 1,
                uid: 1,
            },
            lsn: 0x0400_0000,
        });
        World {
            seed,
            remote,
            hosts: cfg.nodes.iter().map(|s| s.host.clone()).collect(),
            clock: Clock::default(),
            rng: Rng::stream(seed, 3),
            dcs: Dcs::new(cfg.dynamic.ttl),
            log: EventLog::new(cfg.full_log),
            checker: Checker::new(cfg.writable),
            stats: Stats::default(),
            steps: 0,
            status_writer: None,
            heal_at: None,
            triggers: Vec::new(),
            write_rate: cfg.write_rate,
            pg_time: 0,
            next_uid: 1,
            next_action: 1,
            nodes,
            cfg,
        }
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// `host:port` of an upstream, as the prober reports it.
    pub fn host(&self, src: Src) -> String {
        match src {
            Src::Node(j) => self.hosts[j].clone(),
            Src::Remote => crate::config::REMOTE_HOST.to_string(),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name().to_string()).collect()
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name() == name)
    }

    pub fn violations(&self) -> &[Violation] {
        &self.checker.violations
    }

    pub fn schedule_command(&mut self, at: Millis, c: Command) {
        self.clock.schedule(at, Event::Command(c));
    }

    /// Makes sure the invariants are checked at `at` even if nothing else happens then.
    pub fn schedule_check(&mut self, at: Millis) {
        self.clock.schedule(at, Event::Tick);
    }

    /// Runs steps until virtual time reaches `until` (events at `until` included).
    pub fn run_until(&mut self, until: Millis) {
        while self.next_step_at().is_some_and(|t| t <= until) {
            self.step();
        }
        self.clock.advance_to(until);
        self.advance_pg(until);
    }

    /// When the next step happens (an event or a lease expiry), if anything is left to happen.
    pub fn next_step_at(&self) -> Option<Millis> {
        match (self.clock.next_at(), self.dcs.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs one event or lease expiry, then checks the invariants.
    pub fn step(&mut self) {
        let Some(at) = self.next_step_at() else { return };
        // A lease that runs out at the same instant as an event is gone for that event, as a sweep
        // before every MemoryDcs operation would make it.
        if self.dcs.next_expiry() == Some(at) {
            self.clock.advance_to(at);
            self.advance_pg(at);
            self.expire_leases();
        } else if let Some(event) = self.clock.pop() {
            self.advance_pg(self.now());
            self.handle(event);
        }
        self.steps += 1;
        self.stats.steps += 1;
        self.check_invariants();
    }

    fn expire_leases(&mut self) {
        let epoch = self.dcs.leader_epoch;
        let now = self.now();
        for owner in self.dcs.expire(now) {
            self.log
                .push(now, &owner, "lease expired: its member key (and leader key) are gone");
        }
        if self.dcs.leader_epoch != epoch {
            self.log.push(now, "dcs", "leader key vanished");
            self.leader_changed();
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Cycle { node, epoch } if self.current(node, epoch) => self.start_cycle(node),
            Event::Resume { node, epoch } if self.current(node, epoch) => self.resume_cycle(node),
            Event::Phase {
                node,
                action,
                phase,
                rest,
            } => self.run_phase(node, action, phase, rest),
            Event::Command(c) => self.apply(c),
            Event::Fence { node, deadline } => self.fence_check(node, deadline),
            Event::Tick | Event::Cycle { .. } | Event::Resume { .. } => {}
        }
    }

    fn current(&self, node: usize, epoch: u64) -> bool {
        let n = &self.nodes[node];
        n.cycle_gen == epoch && n.active()
    }

    /// Schedules the node's next cycle event, cancelling any earlier one.
    pub(crate) fn schedule_cycle(&mut self, i: usize, at: Millis, resume: bool) {
        let n = &mut self.nodes[i];
        n.cycle_gen += 1;
        let epoch = n.cycle_gen;
        let event = if resume {
            Event::Resume { node: i, epoch }
        } else {
            if let Some(d) = n.daemon_mut() {
                d.next_cycle = Some(at);
            }
            Event::Cycle { node: i, epoch }
        };
        self.clock.schedule(at, event);
    }

    /// The leader key was written or deleted: sleeping followers wake up (the daemon's
    /// `watch_leader`); a follower in the middle of a cycle notices when the cycle ends.
    pub(crate) fn leader_changed(&mut self) {
        let now = self.now();
        let holder = self.dcs.leader_name().and_then(|n| self.node_index(n));
        if self.checker.promotion_checked.is_some() && self.checker.promotion_checked != holder {
            self.checker.promotion_checked = None;
        }
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            let Some(d) = n.daemon() else { continue };
            let watching = n.active() && d.cycle.is_none() && d.last_role != Role::Primary;
            if watching && self.dcs.reachable(n.name()).is_ok() {
                let at = now + self.rng.range(1, 30);
                self.schedule_cycle(i, at, false);
            }
        }
    }

    /// The background action of node `i` ended: wake its daemon (tokio `Notify`, which keeps a
    /// permit if the daemon is busy or paused).
    pub(crate) fn notify(&mut self, i: usize) {
        let now = self.now();
        let n = &mut self.nodes[i];
        let paused = n.paused;
        let Some(d) = n.daemon_mut() else { return };
        if d.cycle.is_some() || paused {
            d.wake = true;
            return;
        }
        self.schedule_cycle(i, now, false);
    }

    /// Moves every Postgres forward to `to`: primaries (and a standby cluster's remote primary)
    /// take writes, replicas stream from their upstream.
    pub(crate) fn advance_pg(&mut self, to: Millis) {
        let dt = to.saturating_sub(self.pg_time);
        self.pg_time = self.pg_time.max(to);
        let written = self.write_rate * dt / 1000;
        if let Some(remote) = &mut self.remote {
            remote.lsn += written;
        }
        for n in &mut self.nodes {
            if let Pg::Running {
                data,
                role: ferroni_model::PgRole::Primary,
                draining: false,
                ..
            } = &mut n.pg
            {
                data.lsn += written;
            }
        }
        for i in 0..self.nodes.len() {
            let Pg::Running { upstream: Some(u), .. } = &self.nodes[i].pg else {
                continue;
            };
            let source = self.stream_source(i, *u);
            let budget = self.nodes[i].spec.replication_rate * dt / 1000;
            if let Pg::Running { data, streaming, .. } = &mut self.nodes[i].pg {
                *streaming = match &source {
                    Some(up) => pgmodel::stream(data, up, budget),
                    None => false,
                };
            }
        }
        for n in &mut self.nodes {
            // Crash recovery ends with a checkpoint of its own.
            if !matches!(n.pg, Pg::Running { .. }) {
                n.checkpoint_pending = false;
            }
            match &n.pg {
                Pg::Running { streaming: true, .. } | Pg::NoData | Pg::Invalid(_) => {
                    n.former_primary = false;
                    n.rewind_skipped = None;
                }
                p if p.is_primary() => n.former_primary = true,
                _ => {}
            }
        }
    }

    /// The data node `i` can stream from `src` right now, if the network and the upstream allow.
    pub(crate) fn stream_source(&self, i: usize, src: Src) -> Option<Data> {
        if self.nodes[i].isolated {
            return None;
        }
        match src {
            Src::Remote => self.remote.clone(),
            Src::Node(u) if u == i || self.nodes[u].isolated => None,
            Src::Node(u) => match &self.nodes[u].pg {
                Pg::Running { data, .. } => Some(data.clone()),
                _ => None,
            },
        }
    }

    pub(crate) fn new_uid(&mut self) -> u64 {
        self.next_uid += 1;
        self.next_uid
    }

    pub(crate) fn new_action_id(&mut self) -> u64 {
        self.next_action += 1;
        self.next_action
    }

    pub(crate) fn fresh_daemon(&self, i: usize) -> DaemonState {
        DaemonState {
            memory: Memory {
                rewind_pending: self.nodes[i].rewind_marker,
                ..Memory::default()
            },
            client: crate::dcs::Client {
                name: self.nodes[i].name().to_string(),
                lease: None,
            },
            started_at: self.now(),
            last_role: Role::Uninitialized,
            snapshot: None,
            cycle: None,
            wake: false,
            next_cycle: None,
            last_refresh: None,
        }
    }

    /// The node that holds the leader key with a live daemon and runs Postgres as a primary (in a
    /// standby cluster: as the standby leader, a replica).
    pub fn leader(&self) -> Option<usize> {
        let name = self.dcs.leader_name()?;
        let i = self.node_index(name)?;
        let n = &self.nodes[i];
        let serving = if self.cfg.dynamic.standby_cluster.is_some() {
            n.pg.is_replica()
        } else {
            n.pg.is_primary()
        };
        (n.daemon_alive() && serving).then_some(i)
    }

    pub fn running_primaries(&self) -> BTreeSet<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].pg.is_primary())
            .collect()
    }

    /// The state of every node and of the DCS, for reports.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let names = self.names();
        for n in &self.nodes {
            s.push_str(&format!("  {}\n", n.describe(&names)));
        }
        s.push_str(&format!(
            "  dcs: leader {:?}, initialize {:?}, optime {:?}, outage {:?}, cut off {:?}, failover key {}\n",
            self.dcs.leader_name(),
            self.dcs.initialize(),
            self.dcs.optime(),
            self.dcs.outage,
            self.dcs.cut_off.keys().collect::<Vec<_>>(),
            if self.dcs.failover_pending() {
                "present"
            } else {
                "absent"
            },
        ));
        s
    }
}
