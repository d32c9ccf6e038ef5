//! One daemon cycle, as `crates/node/src/daemon.rs` and `execute.rs` run it: take the finished
//! background result, read the cluster, probe Postgres, then decide and execute until no guarded
//! action asks for another decision (at most six), write the member key, publish what `/patroni`
//! answers, and sleep until `loop_wait` passes, the background action ends or (followers) the
//! leader key changes.
//!
//! A cycle is not atomic: every DCS call and the peer poll take virtual time (at once when refused,
//! `retry_timeout` when the DCS drops packets, two seconds for a peer that does not answer), and
//! other nodes act in between, on the same stale-view terms as the real daemon.

use crate::clock::Millis;
use crate::config::Cadence;
use crate::dcs::{DcsResult, FailMode};
use crate::node::{CycleState, Daemon, Snapshot, member_data, reported_position, state_text};
use crate::rng::Rng;
use crate::world::World;
use ferroni_decision::{Action, ActionStatus, Decision, LongAction, Observation, Outcome, PeerStatus, decide};
use ferroni_model::{ClusterView, DynamicConfig, HistoryLine, PgRole, PgState, Role};

/// Guarded actions re-run `decide` with their outcome; the daemon stops after six decisions.
const MAX_DECISIONS_PER_CYCLE: usize = 6;
/// `peers.rs`: every member is asked in parallel with a two second timeout.
const PEER_TIMEOUT_MS: Millis = 2_000;
/// The wall clock at virtual time zero (only scheduled switchovers read it).
const WALL_CLOCK_BASE_MS: i64 = 1_800_000_000_000;

/// What the cycle does after one action.
enum Flow {
    /// Run the next action after this many milliseconds.
    Next(Millis),
    /// A guarded action ran: decide again after this many milliseconds.
    Decide(Millis),
    Fatal(String),
}

/// How long a DCS call took: a few milliseconds when answered, nothing when refused, the daemon's
/// `retry_timeout` bound when the request was lost.
fn dcs_wait<T>(rng: &mut Rng, r: &DcsResult<T>, retry_ms: Millis) -> Millis {
    match r {
        Ok(_) => rng.range(0, 3),
        Err(e) if e.mode == FailMode::Refused => rng.range(0, 5),
        Err(_) => retry_ms,
    }
}

/// `Executor::holds_lock`: the last lock outcome of the cycle, else the cluster view.
fn holds_lock(outcomes: &[Outcome], cluster: Option<&ClusterView>, me: &str) -> bool {
    for o in outcomes.iter().rev() {
        match o {
            Outcome::LeaderAcquired | Outcome::LeaderRefreshed => return true,
            Outcome::LeaderLost | Outcome::LeaderRefreshFailed => return false,
            _ => {}
        }
    }
    cluster.and_then(|c| c.leader_name()) == Some(me)
}

/// `history::merged`: the timelines of the leader's history file that the key does not have yet,
/// the newest one naming this node. `None` when there is nothing to add.
fn history_lines(
    cluster: Option<&ClusterView>,
    data: Option<&crate::pgmodel::Data>,
    me: &str,
) -> Option<Vec<HistoryLine>> {
    let (cluster, data) = (cluster?, data?);
    let mut lines = cluster.history.clone().unwrap_or_default();
    let current = data.lineage.timeline;
    let mut changed = false;
    // The history file lists each parent timeline once, with the position it ended at.
    for seg in data.lineage.past.iter().filter(|s| s.timeline < current) {
        if lines.iter().any(|l| l.0 == seg.timeline) {
            continue;
        }
        let newest = seg.timeline + 1 == current;
        lines.push(HistoryLine(
            seg.timeline,
            seg.end,
            "no recovery target specified".into(),
            newest.then(|| "2027-01-15T08:00:00+00:00".to_string()),
            newest.then(|| me.to_string()),
        ));
        changed = true;
    }
    changed.then_some(lines)
}

/// `daemon::published_role`: `standby_leader` for the lock holder of a standby cluster.
fn published_role(role: Role, pg: &PgState, holds: bool, dynamic: &DynamicConfig) -> Role {
    if holds && dynamic.standby_cluster.is_some() && pg.running_role() == Some(PgRole::Replica) {
        return Role::StandbyLeader;
    }
    role
}

fn describe_decision(d: &Decision, outcomes: &[Outcome]) -> String {
    let mut s = format!("[{}] {}", d.role.as_str(), d.reason);
    if !d.actions.is_empty() {
        let names: Vec<String> = d.actions.iter().map(action_name).collect();
        s.push_str(&format!(" => {}", names.join(", ")));
    }
    if let Some(o) = outcomes.last() {
        s.push_str(&format!("  (after {o:?})"));
    }
    s
}

/// The variant name of an action, as scenario triggers name it.
pub fn action_kind(a: &Action) -> &'static str {
    match a {
        Action::TakeInitialize => "TakeInitialize",
        Action::SetInitialize(_) => "SetInitialize",
        Action::CancelInitialize => "CancelInitialize",
        Action::WriteConfig(_) => "WriteConfig",
        Action::AcquireLeader => "AcquireLeader",
        Action::RefreshLeader => "RefreshLeader",
        Action::ReleaseLeader => "ReleaseLeader",
        Action::WriteStatus { .. } => "WriteStatus",
        Action::ClearFailover => "ClearFailover",
        Action::WriteHistory => "WriteHistory",
        Action::SyncSlots(_) => "SyncSlots",
        Action::AskPeers => "AskPeers",
        Action::Start(_) => "Start",
        Action::AbortLongAction => "AbortLongAction",
        Action::Reload { .. } => "Reload",
        Action::Fatal(_) => "Fatal",
    }
}

fn action_name(a: &Action) -> String {
    match a {
        Action::Start(l) => match l {
            LongAction::CreateReplica { source, .. } => {
                format!("Start(CreateReplica from {:?})", source.as_ref().map(|s| &s.name))
            }
            LongAction::Demote { upstream, mode } => {
                format!("Start(Demote {mode:?} -> {:?})", upstream.as_ref().map(|s| &s.name))
            }
            LongAction::Follow { upstream } => {
                format!("Start(Follow {:?})", upstream.as_ref().map(|s| &s.name))
            }
            LongAction::StartReplica { upstream } => {
                format!("Start(StartReplica -> {:?})", upstream.as_ref().map(|s| &s.name))
            }
            other => format!("Start({})", other.name()),
        },
        Action::WriteConfig(_) => "WriteConfig".into(),
        Action::Fatal(_) => "Fatal".into(),
        other => format!("{other:?}"),
    }
}

impl World {
    /// The cycle starts: the finished background result is taken and the cluster is read.
    pub(crate) fn start_cycle(&mut self, i: usize) {
        let now = self.now();
        let retry_ms = self.cfg.retry_timeout_ms();
        self.stats.cycles += 1;
        let finished = self.nodes[i].take_finished();
        let Some(d) = self.nodes[i].daemon_mut() else { return };
        d.next_cycle = None;
        d.wake = false;
        let load = self.dcs.load(&d.client);
        let wait = dcs_wait(&mut self.rng, &load, retry_ms) + self.rng.range(1, 20);
        d.cycle = Some(CycleState {
            started: now,
            finished,
            cluster: load.ok(),
            leader_epoch: self.dcs.leader_epoch,
            pg: None,
            outcomes: Vec::new(),
            peers: None,
            decisions: 0,
            redecide: true,
            pending: Default::default(),
            decision: None,
            published: None,
            lock_confirmed_at: None,
            wait_until: now + wait,
        });
        self.schedule_cycle(i, now + wait, true);
    }

    /// Continues a cycle until it has to wait again or ends.
    pub(crate) fn resume_cycle(&mut self, i: usize) {
        let now = self.now();
        let Some(mut st) = self.nodes[i].daemon_mut().and_then(|d| d.cycle.take()) else {
            return;
        };
        if st.pg.is_none() {
            st.pg = Some(self.nodes[i].pg.probe(|src| self.host(src)));
        }
        loop {
            if st.published.is_some() {
                return self.end_cycle(i, st);
            }
            let Some(action) = st.pending.pop_front() else {
                if st.redecide && st.decisions < MAX_DECISIONS_PER_CYCLE {
                    self.decide_once(i, &mut st);
                    continue;
                }
                let writable = matches!(
                    st.pg,
                    Some(PgState::Running {
                        role: PgRole::Primary,
                        ..
                    })
                );
                self.fence_after_cycle(i, st.lock_confirmed_at, writable);
                let wait = self.publish(i, &mut st);
                if wait == 0 {
                    return self.end_cycle(i, st);
                }
                return self.suspend(i, st, now + wait);
            };
            // `Executor::run`: a confirmation older than the fence allows is not acted on; the rest
            // of the decision is dropped and the cycle ends as if every action had run.
            if let Some(t0) = st.lock_confirmed_at
                && now.saturating_sub(t0) > self.confirmation_valid_for(i)
            {
                let who = self.nodes[i].name().to_string();
                self.log.push(
                    now,
                    &who,
                    "the leader lock confirmation is stale (the daemon stalled); acting on nothing this cycle",
                );
                self.stats.stale_confirmations += 1;
                st.lock_confirmed_at = None;
                st.pending.clear();
                st.redecide = false;
                continue;
            }
            match self.execute(i, &action, &mut st) {
                Flow::Next(0) => {}
                Flow::Next(wait) => return self.suspend(i, st, now + wait),
                Flow::Decide(wait) => {
                    st.pending.clear();
                    st.redecide = true;
                    if wait > 0 {
                        return self.suspend(i, st, now + wait);
                    }
                }
                Flow::Fatal(msg) => {
                    let who = self.nodes[i].name().to_string();
                    self.log.push(now, &who, format!("FATAL: {msg}"));
                    self.nodes[i].daemon = Daemon::Exited(msg.clone());
                    self.nodes[i].cycle_gen += 1;
                    self.fatal_exit(i, &msg);
                    return;
                }
            }
        }
    }

    fn suspend(&mut self, i: usize, mut st: CycleState, at: Millis) {
        st.wait_until = at;
        if let Some(d) = self.nodes[i].daemon_mut() {
            d.cycle = Some(st);
        }
        self.schedule_cycle(i, at, true);
    }

    fn decide_once(&mut self, i: usize, st: &mut CycleState) {
        let now = self.now();
        let n = &mut self.nodes[i];
        let action = n.action_status();
        let Daemon::Running(d) = &mut n.daemon else { return };
        let Some(pg) = st.pg.as_ref() else { return };
        let obs = Observation {
            now_ms: now - d.started_at,
            wall_ms: WALL_CLOCK_BASE_MS + now as i64,
            config: &n.config,
            dynamic: &self.cfg.dynamic,
            cluster: st.cluster.as_ref(),
            pg,
            action,
            finished: st.finished.clone(),
            outcomes: st.outcomes.clone(),
            peers: st.peers.clone(),
            request: None,
            config_changed: false,
        };
        let decision = decide(&obs, &mut d.memory);
        // The daemon's rewind marker next to the data directory (`rewind_marker.rs`).
        n.rewind_marker = d.memory.rewind_pending;
        self.stats.decisions += 1;
        let line = describe_decision(&decision, &st.outcomes);
        let who = n.name().to_string();
        self.log.push(now, &who, line);
        st.pending = decision.actions.iter().cloned().collect();
        st.decision = Some(decision);
        st.decisions += 1;
        st.redecide = false;
    }

    fn execute(&mut self, i: usize, action: &Action, st: &mut CycleState) -> Flow {
        let now = self.now();
        let retry_ms = self.cfg.retry_timeout_ms();
        let epoch = self.dcs.leader_epoch;
        let who = self.nodes[i].name().to_string();
        let history = match action {
            Action::WriteHistory => history_lines(st.cluster.as_ref(), self.nodes[i].pg.data(), &who),
            _ => None,
        };
        let Some(d) = self.nodes[i].daemon_mut() else {
            return Flow::Next(0);
        };
        let client = &mut d.client;
        let flow = match action {
            Action::TakeInitialize => {
                let r = self.dcs.attempt_initialize(client);
                st.outcomes.push(if r == Ok(true) {
                    Outcome::InitializeWon
                } else {
                    Outcome::InitializeLost
                });
                Flow::Decide(dcs_wait(&mut self.rng, &r, retry_ms))
            }
            Action::AcquireLeader => {
                let r = self.dcs.acquire_leader(client, now);
                st.outcomes.push(if r == Ok(true) {
                    Outcome::LeaderAcquired
                } else {
                    Outcome::LeaderLost
                });
                if r == Ok(true) {
                    self.stats.leader_acquired += 1;
                    self.refreshed(i, now, st);
                }
                Flow::Decide(dcs_wait(&mut self.rng, &r, retry_ms))
            }
            Action::RefreshLeader => {
                let r = self.dcs.update_leader(client, now);
                st.outcomes.push(match r {
                    Ok(true) => Outcome::LeaderRefreshed,
                    Ok(false) => Outcome::LeaderLost,
                    Err(_) => Outcome::LeaderRefreshFailed,
                });
                if r == Ok(true) {
                    self.refreshed(i, now, st);
                }
                Flow::Decide(dcs_wait(&mut self.rng, &r, retry_ms))
            }
            Action::AskPeers => {
                let peers = self.ask_peers(i, st.cluster.as_ref());
                let all_answered = peers.iter().all(|p| p.reachable);
                let line = peers
                    .iter()
                    .map(|p| match p.reachable {
                        true => format!("{}:{:?}/{}@tl{}", p.name, p.role.map(Role::as_str), p.lsn, p.timeline),
                        false => format!("{}:unreachable", p.name),
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                self.log.push(now, &who, format!("asked peers: {line}"));
                st.peers = Some(peers);
                st.outcomes.push(Outcome::PeersAsked);
                let wait = if all_answered {
                    self.rng.range(1, 20)
                } else {
                    PEER_TIMEOUT_MS
                };
                Flow::Decide(wait)
            }
            Action::SetInitialize(sysid) => {
                let r = self.dcs.set_initialize(client, sysid);
                Flow::Next(dcs_wait(&mut self.rng, &r, retry_ms))
            }
            Action::CancelInitialize => {
                let r = self.dcs.cancel_initialize(client);
                Flow::Next(dcs_wait(&mut self.rng, &r, retry_ms))
            }
            Action::WriteConfig(v) => {
                let r = self.dcs.write_config(client, v);
                Flow::Next(dcs_wait(&mut self.rng, &r, retry_ms))
            }
            Action::ReleaseLeader => {
                let r = self.dcs.release_leader(client);
                Flow::Next(dcs_wait(&mut self.rng, &r, retry_ms))
            }
            Action::WriteStatus { optime } => {
                let r = self.dcs.write_status(client, *optime);
                if r.is_ok() {
                    self.status_writer = self.nodes[i].pg.data().cloned();
                }
                Flow::Next(dcs_wait(&mut self.rng, &r, retry_ms))
            }
            Action::ClearFailover => {
                let r = self.dcs.delete_failover(client);
                Flow::Next(dcs_wait(&mut self.rng, &r, retry_ms))
            }
            Action::WriteHistory => match history {
                Some(lines) => {
                    let r = self.dcs.write_history(client, lines);
                    Flow::Next(dcs_wait(&mut self.rng, &r, retry_ms))
                }
                None => Flow::Next(0),
            },
            // Slots make no difference to the model: WAL is never recycled under a replica.
            Action::SyncSlots(_) => Flow::Next(0),
            Action::AbortLongAction => {
                self.abort_action(i);
                Flow::Next(0)
            }
            Action::Reload { primary, upstream } => {
                let src = self.src(upstream.as_ref());
                if let crate::pgmodel::Pg::Running {
                    role: PgRole::Replica,
                    upstream,
                    ..
                } = &mut self.nodes[i].pg
                    && !primary
                {
                    *upstream = src;
                }
                Flow::Next(0)
            }
            Action::Start(long) => {
                self.start_action(i, long.clone());
                Flow::Next(0)
            }
            Action::Fatal(msg) => Flow::Fatal(msg.clone()),
        };
        if !self.triggers.is_empty() {
            self.fire_triggers(i, action_kind(action));
        }
        if self.dcs.leader_epoch != epoch {
            let holder = self.dcs.leader_name().unwrap_or("nobody").to_string();
            self.log.push(now, &who, format!("leader key now held by {holder}"));
            self.leader_changed();
        }
        flow
    }

    fn refreshed(&mut self, i: usize, sent_at: Millis, st: &mut CycleState) {
        if let Some(d) = self.nodes[i].daemon_mut() {
            d.last_refresh = Some(sent_at);
        }
        st.lock_confirmed_at = Some(sent_at);
    }

    /// `peers::ask_peers`: every member of the (possibly stale) cluster view but this node.
    fn ask_peers(&self, i: usize, cluster: Option<&ClusterView>) -> Vec<PeerStatus> {
        let Some(cluster) = cluster else { return Vec::new() };
        let me = self.nodes[i].name();
        let asker_isolated = self.nodes[i].isolated;
        cluster
            .members
            .iter()
            .filter(|m| m.name != me && !m.data.api_url.is_empty())
            .map(|m| match self.node_index(&m.name) {
                Some(j) => self.nodes[j].peer_status(asker_isolated),
                None => PeerStatus {
                    name: m.name.clone(),
                    reachable: false,
                    role: None,
                    running: false,
                    lsn: 0,
                    timeline: 0,
                    nofailover: false,
                    failover_priority: 1,
                },
            })
            .collect()
    }

    /// Writes the member key (when the cluster could be read this cycle) and prepares the snapshot
    /// `/patroni` answers from; returns how long the write took.
    fn publish(&mut self, i: usize, st: &mut CycleState) -> Millis {
        let now = self.now();
        let retry_ms = self.cfg.retry_timeout_ms();
        let n = &mut self.nodes[i];
        let (Some(pg), Some(decision)) = (st.pg.as_ref(), st.decision.as_ref()) else {
            st.published = Some(Snapshot {
                role: Role::Uninitialized,
                state: "stopped",
                lsn: 0,
                timeline: 0,
            });
            return 0;
        };
        let action = n.action_status();
        let state = state_text(pg, &action);
        let holds = holds_lock(&st.outcomes, st.cluster.as_ref(), &n.spec.name);
        let role = published_role(decision.role, pg, holds, &self.cfg.dynamic);
        let (lsn, timeline) = reported_position(pg);
        st.published = Some(Snapshot {
            role,
            state,
            lsn,
            timeline,
        });
        if st.cluster.is_none() {
            return 0;
        }
        let mut data = member_data(&n.config, pg, role, state);
        if matches!(action, ActionStatus::Running(LongAction::Promote)) {
            // Until the checkpoint that ends a promotion, pg_rewind against this node would find
            // nothing to rewind: a former primary waits for it before it rejoins.
            data.extra
                .insert("checkpoint_after_promote".into(), serde_json::Value::Bool(false));
        }
        let Daemon::Running(d) = &mut n.daemon else { return 0 };
        let r = self.dcs.touch_member(&mut d.client, data, now);
        dcs_wait(&mut self.rng, &r, retry_ms)
    }

    /// The cycle is over: publish the snapshot and go to sleep until the next wake-up.
    fn end_cycle(&mut self, i: usize, st: CycleState) {
        let now = self.now();
        let loop_wait = self.cfg.loop_wait_ms();
        let cadence = self.cfg.cadence;
        let epoch = self.dcs.leader_epoch;
        let reachable = self.dcs.reachable(self.nodes[i].name()).is_ok();
        let Some(d) = self.nodes[i].daemon_mut() else { return };
        d.snapshot = st.published;
        if let Some(decision) = &st.decision {
            d.last_role = decision.role;
        }
        let base = match cadence {
            Cadence::AfterCycle => now + loop_wait,
            Cadence::FromCycleStart => (st.started + loop_wait).max(now),
        };
        // `watch_leader` reports a change made after this cycle's read at once, even one made
        // before the watch began; it never returns early while the DCS cannot be reached.
        let watch_fired = d.last_role != Role::Primary && epoch != st.leader_epoch && reachable;
        let at = if d.wake || watch_fired { now } else { base };
        self.schedule_cycle(i, at, false);
    }
}
