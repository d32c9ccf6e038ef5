//! Outside events applied to the world: node starts and restarts, crashes, pauses, network cuts,
//! DCS outages, slow clones, switchover requests (through the REST API's checks or straight into the
//! DCS), writes, and the heal that ends the faults. Each logs a line, so the event log shows every
//! fault next to the decisions it provoked.

use crate::faults::Command;
use crate::pgmodel::Pg;
use crate::world::{Trigger, World};

impl World {
    /// Applies a command now and checks the invariants, as a step would.
    pub fn apply_now(&mut self, c: Command) {
        self.apply(c);
        self.check_invariants();
    }

    /// Fires the triggers waiting for `node` to run an action of this kind.
    pub(crate) fn fire_triggers(&mut self, node: usize, kind: &str) {
        let now = self.now();
        let (fire, keep): (Vec<Trigger>, Vec<Trigger>) = std::mem::take(&mut self.triggers)
            .into_iter()
            .partition(|t| t.node == node && t.action == kind && t.armed_at <= now);
        self.triggers = keep;
        for t in fire {
            let who = self.nodes[node].name().to_string();
            self.log
                .push(now, &who, format!("trigger after {kind}: {:?}", t.command));
            self.apply(t.command);
        }
    }

    /// Applies an outside event: a fault, its end, a write, a node start.
    pub fn apply(&mut self, c: Command) {
        let now = self.now();
        if let Some(kind) = c.fault_kind() {
            *self.stats.faults.entry(kind).or_default() += 1;
        }
        let name = |w: &World, i: usize| w.nodes[i].name().to_string();
        match c {
            Command::Start(i) | Command::Restart(i) => {
                use crate::node::Daemon;
                if matches!(self.nodes[i].daemon, Daemon::NotStarted | Daemon::Crashed) {
                    let d = self.fresh_daemon(i);
                    self.nodes[i].daemon = Daemon::Running(Box::new(d));
                    self.nodes[i].paused = false;
                    self.log.push(now, &name(self, i), "daemon starts");
                    let (lo, hi) = self.cfg.start_delay;
                    let at = now + self.rng.range(lo, hi);
                    self.schedule_cycle(i, at, false);
                }
            }
            Command::Crash(i) | Command::Wipe(i) => {
                let wipe = matches!(c, Command::Wipe(_));
                self.crash_node(i, wipe);
            }
            Command::PgCrash(i) => {
                if self.nodes[i].pg.is_primary() || self.nodes[i].pg.is_replica() {
                    self.nodes[i].pg.crash();
                    self.log.push(now, &name(self, i), "FAULT postgres crashed");
                }
            }
            Command::Pause(i) => {
                if self.nodes[i].daemon_alive() && !self.nodes[i].paused {
                    self.nodes[i].paused = true;
                    self.nodes[i].cycle_gen += 1;
                    self.log.push(now, &name(self, i), "FAULT daemon paused");
                }
            }
            Command::Unpause(i) => self.unpause(i),
            Command::Isolate(i, mode) => {
                self.nodes[i].isolated = true;
                self.dcs.cut_off.insert(name(self, i), mode);
                self.log.push(
                    now,
                    &name(self, i),
                    format!("FAULT cut off from the network ({mode:?})"),
                );
            }
            Command::Reconnect(i) => {
                if self.nodes[i].isolated {
                    self.nodes[i].isolated = false;
                    self.dcs.cut_off.remove(&name(self, i));
                    self.log.push(now, &name(self, i), "network back");
                }
            }
            Command::DcsDown(mode) => {
                self.dcs.outage = Some(mode);
                self.log
                    .push(now, "dcs", format!("FAULT DCS unreachable for all ({mode:?})"));
            }
            Command::DcsUp => {
                if self.dcs.outage.take().is_some() {
                    self.log.push(now, "dcs", "DCS reachable again");
                }
            }
            Command::SlowClone(i, on) => {
                self.nodes[i].slow_clone = on;
                if on {
                    self.log
                        .push(now, &name(self, i), "FAULT base backups to this node are slow");
                }
            }
            Command::Switchover(i) => self.request_switchover(i, true),
            Command::FailoverKey(i) => self.request_switchover(i, false),
            Command::WriteBurst(bytes) => {
                for n in &mut self.nodes {
                    if let Pg::Running {
                        data,
                        role: ferroni_model::PgRole::Primary,
                        draining: false,
                        ..
                    } = &mut n.pg
                    {
                        data.lsn += bytes;
                    }
                }
                if let Some(remote) = &mut self.remote {
                    remote.lsn += bytes;
                }
                self.log
                    .push(now, "app", format!("writes {bytes} bytes to every running primary"));
            }
            Command::SetWriteRate(r) => self.write_rate = r,
            Command::SetReplicationRate(i, r) => self.nodes[i].spec.replication_rate = r,
            Command::Heal => self.heal(),
        }
    }

    /// `POST /switchover` (with a leader) or `POST /failover` (without), with the API's
    /// `failover_impossible` checks when `checked`, then the `failover` key.
    fn request_switchover(&mut self, i: usize, checked: bool) {
        let now = self.now();
        let candidate = self.nodes[i].name().to_string();
        let leader = self.dcs.leader_name().map(str::to_string);
        let refusal = match self.dcs.member(&candidate) {
            _ if !checked => None,
            _ if leader.as_deref() == Some(candidate.as_str()) => Some("candidate is the leader"),
            None => Some("candidate does not exists"),
            Some(m) if m.state != "running" => Some("no good candidates have been found (not running)"),
            Some(m) if m.tag_bool("nofailover") || m.failover_priority() <= 0 => {
                Some("no good candidates have been found (nofailover)")
            }
            Some(_) => None,
        };
        self.stats.switchovers_requested += 1;
        let what = if leader.is_some() { "switchover" } else { "failover" };
        if let Some(why) = refusal {
            self.stats.switchovers_refused += 1;
            self.log
                .push(now, "api", format!("{what} to {candidate} refused: {why}"));
            return;
        }
        let from = leader.clone().unwrap_or_else(|| "(no leader)".into());
        self.dcs.request_switchover(leader, Some(candidate.clone()));
        let how = if checked {
            "through the API"
        } else {
            "written straight into the DCS"
        };
        self.log
            .push(now, "api", format!("{what} requested {how}: {from} -> {candidate}"));
    }

    fn crash_node(&mut self, i: usize, wipe: bool) {
        use crate::node::Daemon;
        let now = self.now();
        let n = &mut self.nodes[i];
        if matches!(n.daemon, Daemon::NotStarted) {
            return;
        }
        // An initdb or a base backup killed half-way leaves a data directory Postgres cannot use.
        if let Some(a) = n.slot.take()
            && a.result.is_none()
            && matches!(
                a.action,
                ferroni_decision::LongAction::Bootstrap | ferroni_decision::LongAction::CreateReplica { .. }
            )
        {
            n.pg = Pg::Invalid("interrupted initdb or base backup");
        }
        n.pg.crash();
        if wipe {
            n.pg = Pg::NoData;
        }
        if !matches!(n.daemon, Daemon::Exited(_)) {
            n.daemon = Daemon::Crashed;
        }
        n.paused = false;
        n.fence = None;
        n.cycle_gen += 1;
        let what = if wipe {
            "FAULT node crashed; its disk is replaced (no data)"
        } else {
            "FAULT node crashed (daemon and postgres)"
        };
        let who = n.name().to_string();
        self.log.push(now, &who, what);
    }

    fn unpause(&mut self, i: usize) {
        let now = self.now();
        let n = &mut self.nodes[i];
        if !n.paused {
            return;
        }
        n.paused = false;
        let Some(d) = n.daemon() else { return };
        let waiting = d.cycle.as_ref().map(|c| c.wait_until);
        let due = d.wake || d.next_cycle.is_none_or(|t| t <= now);
        let next = d.next_cycle.unwrap_or(now);
        let who = n.name().to_string();
        self.log.push(now, &who, "daemon resumes");
        if let Some(until) = waiting {
            self.schedule_cycle(i, until.max(now), true);
        } else {
            self.schedule_cycle(i, if due { now } else { next }, false);
        }
    }

    /// Faults stop: everything comes back, and the liveness deadline starts.
    fn heal(&mut self) {
        let now = self.now();
        self.log.push(
            now,
            "sim",
            "faults stop: every node is restarted, resumed and reconnected",
        );
        self.apply(Command::DcsUp);
        for i in 0..self.nodes.len() {
            self.apply(Command::Reconnect(i));
            self.apply(Command::Unpause(i));
            self.nodes[i].slow_clone = false;
            if matches!(self.nodes[i].daemon, crate::node::Daemon::Crashed) {
                self.apply(Command::Restart(i));
            }
        }
        self.heal_at = Some(now);
    }
}
