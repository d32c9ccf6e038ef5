//! One simulated machine: its ferroni daemon (memory, DCS lease, the cycle in progress, what its
//! REST API would answer), its Postgres model and its single background action slot. The daemon
//! and Postgres fail separately: a node crash kills both, a Postgres crash only the server, a paused
//! daemon takes no steps while its Postgres keeps running and accepting writes.
//!
//! `member_data` and `state_text` mirror `crates/node/src/member.rs`, which the simulation cannot
//! depend on (it pulls in tokio); keep them in step.

use crate::clock::Millis;
use crate::config::NodeSpec;
use crate::dcs::Client;
use crate::pgmodel::{Pg, Src};
use ferroni_decision::{Action, ActionResult, ActionStatus, Decision, LongAction, Memory, Outcome, PeerStatus};
use ferroni_model::{ClusterView, Config, MemberData, PgRole, PgState, Role};
use std::collections::VecDeque;

/// What the node's `/patroni` answers: built at the end of each cycle, like the daemon's snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub role: Role,
    pub state: &'static str,
    pub lsn: u64,
    pub timeline: u32,
}

/// A cycle between its observation and its end: the daemon may wait for the DCS or a peer between
/// two actions, and other nodes act meanwhile.
#[derive(Debug)]
pub struct CycleState {
    pub started: Millis,
    pub finished: Option<ActionResult>,
    /// The cluster as read at the start of the cycle (stale by the end of it, as in the daemon).
    pub cluster: Option<ClusterView>,
    /// `leader_epoch` of the DCS when the cluster was read: a later change fires the watch.
    pub leader_epoch: u64,
    /// Probed once the DCS read returned.
    pub pg: Option<PgState>,
    pub outcomes: Vec<Outcome>,
    pub peers: Option<Vec<PeerStatus>>,
    pub decisions: usize,
    pub redecide: bool,
    /// Actions of the current decision not run yet.
    pub pending: VecDeque<Action>,
    pub decision: Option<Decision>,
    /// The member key was written (or failed); what `/patroni` will answer from the end of the cycle.
    pub published: Option<Snapshot>,
    /// The call the cycle waits for returns at this instant (a pause does not shorten it).
    pub wait_until: Millis,
    /// When the DCS call that last confirmed the lock in this cycle started (arms the fence).
    pub lock_confirmed_at: Option<Millis>,
}

#[derive(Debug)]
pub struct DaemonState {
    pub memory: Memory,
    pub client: Client,
    /// Virtual time the daemon process started (its `now_ms` counts from here, like `Instant`).
    pub started_at: Millis,
    pub last_role: Role,
    pub snapshot: Option<Snapshot>,
    pub cycle: Option<CycleState>,
    /// A wake-up arrived while the daemon was busy (tokio's `Notify` keeps one permit).
    pub wake: bool,
    /// When the daemon sleeps, the time it wakes up on its own.
    pub next_cycle: Option<Millis>,
    /// When a lock refresh (or acquisition) that succeeded was last sent.
    pub last_refresh: Option<Millis>,
}

#[derive(Debug)]
pub enum Daemon {
    NotStarted,
    Crashed,
    /// Exited with `Action::Fatal`; an operator has to act.
    Exited(String),
    Running(Box<DaemonState>),
}

/// The background slot: the action, its id, its phases still to come and its result once done.
#[derive(Debug)]
pub struct RunningAction {
    pub action: LongAction,
    pub id: u64,
    pub result: Option<Result<Option<String>, String>>,
}

#[derive(Debug)]
pub struct Node {
    pub idx: usize,
    pub spec: NodeSpec,
    pub config: Config,
    pub pg: Pg,
    pub daemon: Daemon,
    pub paused: bool,
    /// Cut off from the network: no DCS, no peers, no replication.
    pub isolated: bool,
    pub slot: Option<RunningAction>,
    pub slow_clone: bool,
    /// The fence's heartbeat deadline, when armed (see `fence.rs`; modelled only with `fencing`).
    pub fence: Option<Millis>,
    /// Incremented to invalidate cycle events scheduled before a crash, pause or wake-up.
    pub cycle_gen: u64,
    /// Its Postgres ran as a primary and has not streamed from anyone since: a former primary that
    /// still has to rejoin (through pg_rewind when it wrote past the new leader's fork).
    pub former_primary: bool,
    /// Promoted, but the checkpoint after promote has not happened: the control file still names
    /// the previous timeline.
    pub checkpoint_pending: bool,
    /// pg_rewind found "no rewind required" on the same timeline number although the data had
    /// diverged, and it has not streamed since: `Some(true)` when the source was still promoting
    /// (before its checkpoint), `Some(false)` when the two timelines only share their number.
    pub rewind_skipped: Option<bool>,
    /// The daemon's `Memory::rewind_pending` on disk: a new daemon starts from it.
    pub rewind_marker: bool,
}

impl Node {
    pub fn new(idx: usize, spec: NodeSpec, config: Config) -> Node {
        Node {
            idx,
            spec,
            config,
            pg: Pg::NoData,
            daemon: Daemon::NotStarted,
            paused: false,
            isolated: false,
            slot: None,
            slow_clone: false,
            fence: None,
            cycle_gen: 0,
            former_primary: false,
            checkpoint_pending: false,
            rewind_skipped: None,
            rewind_marker: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn daemon(&self) -> Option<&DaemonState> {
        match &self.daemon {
            Daemon::Running(d) => Some(d),
            _ => None,
        }
    }

    pub fn daemon_mut(&mut self) -> Option<&mut DaemonState> {
        match &mut self.daemon {
            Daemon::Running(d) => Some(d),
            _ => None,
        }
    }

    pub fn daemon_alive(&self) -> bool {
        matches!(self.daemon, Daemon::Running(_))
    }

    /// Whether the daemon can take a step now.
    pub fn active(&self) -> bool {
        self.daemon_alive() && !self.paused
    }

    /// The slot as the decision sees it: running until its result has been taken.
    pub fn action_status(&self) -> ActionStatus {
        match &self.slot {
            Some(r) => ActionStatus::Running(r.action.clone()),
            None => ActionStatus::Idle,
        }
    }

    /// Takes the result of a finished action (`LongActions::take_finished`).
    pub fn take_finished(&mut self) -> Option<ActionResult> {
        let done = self.slot.as_ref().is_some_and(|r| r.result.is_some());
        if !done {
            return None;
        }
        let r = self.slot.take()?;
        Some(ActionResult {
            action: r.action,
            result: r.result.unwrap_or(Ok(None)),
        })
    }

    /// What a peer's `/patroni` request gets: `reachable: false` for a dead, paused or cut-off
    /// daemon, or one that has not finished a cycle since it started.
    pub fn peer_status(&self, asker_isolated: bool) -> PeerStatus {
        let tags = &self.config.tags;
        let priority = tags.failover_priority.unwrap_or(if tags.nofailover { 0 } else { 1 });
        let snapshot = self.daemon().and_then(|d| d.snapshot.clone());
        match snapshot {
            Some(s) if !self.paused && !self.isolated && !asker_isolated => PeerStatus {
                name: self.name().to_string(),
                reachable: true,
                role: Some(s.role),
                running: s.state == "running",
                lsn: s.lsn,
                timeline: s.timeline,
                nofailover: tags.nofailover,
                failover_priority: priority,
            },
            _ => PeerStatus {
                name: self.name().to_string(),
                reachable: false,
                role: None,
                running: false,
                lsn: 0,
                timeline: 0,
                nofailover: false,
                failover_priority: 1,
            },
        }
    }

    /// One line for failure reports; `names` are the names of all nodes, by index.
    pub fn describe(&self, names: &[String]) -> String {
        let daemon = match &self.daemon {
            Daemon::NotStarted => "not started".to_string(),
            Daemon::Crashed => "crashed".to_string(),
            Daemon::Exited(m) => format!("exited: {m}"),
            Daemon::Running(d) => format!(
                "running (role {}, lease {:?}){}",
                d.last_role.as_str(),
                d.client.lease,
                if self.paused { ", PAUSED" } else { "" }
            ),
        };
        let pg = match &self.pg {
            Pg::NoData => "no data".to_string(),
            Pg::Invalid(r) => format!("invalid data ({r})"),
            Pg::Stopped { data, clean, standby } => format!(
                "stopped ({}, {}) tl {} lsn {} sysid {}",
                if *clean { "clean" } else { "crashed" },
                if *standby { "standby" } else { "primary data" },
                data.lineage.timeline,
                data.lsn,
                data.lineage.sysid
            ),
            Pg::Running {
                data,
                role,
                upstream,
                streaming,
                ..
            } => format!(
                "running {} tl {} (uid {}) lsn {}{}",
                if *role == PgRole::Primary { "PRIMARY" } else { "replica" },
                data.lineage.timeline,
                data.lineage.uid,
                data.lsn,
                match upstream {
                    Some(u) => format!(
                        " <- {}{}",
                        match u {
                            Src::Node(j) => names.get(*j).cloned().unwrap_or_default(),
                            Src::Remote => "remote primary".to_string(),
                        },
                        if *streaming { "" } else { " (not streaming)" }
                    ),
                    None => String::new(),
                }
            ),
        };
        let action = match &self.slot {
            Some(a) if a.result.is_some() => format!(", {} finished", a.action.name()),
            Some(a) => format!(", {} running", a.action.name()),
            None => String::new(),
        };
        format!(
            "{}: daemon {daemon}; postgres {pg}{action}{}",
            self.name(),
            if self.isolated { "; ISOLATED" } else { "" }
        )
    }
}

/// Patroni's state string (`member::state_text`).
pub fn state_text(pg: &PgState, action: &ActionStatus) -> &'static str {
    if let ActionStatus::Running(a) = action {
        return match a {
            LongAction::Bootstrap => "initializing new cluster",
            LongAction::CreateReplica { .. } => "creating replica",
            LongAction::StartPrimary | LongAction::StartReplica { .. } => "starting",
            LongAction::Stop { .. } => "stopping",
            LongAction::Restart => "restarting",
            LongAction::Reinitialize { .. } => "creating replica",
            LongAction::Demote { .. } | LongAction::Follow { .. } | LongAction::Rejoin { .. } => "restarting",
            LongAction::Promote => "running",
        };
    }
    match pg {
        PgState::Running { .. } => "running",
        PgState::Starting { .. } => "starting",
        PgState::Stopped {
            clean_shutdown: false, ..
        } => "crashed",
        _ => "stopped",
    }
}

/// The member key, built as the daemon builds it.
pub fn member_data(cfg: &Config, pg: &PgState, role: Role, state: &str) -> MemberData {
    MemberData::describe(cfg, pg, role, state)
}

/// The position and timeline `/patroni` reports (`peers::parse_status` reads them back).
pub fn reported_position(pg: &PgState) -> (u64, u32) {
    match pg {
        PgState::Running {
            lsn,
            timeline,
            replication,
            ..
        } => {
            let received = replication.as_ref().and_then(|r| r.received).map_or(0, |l| l.0);
            (lsn.0.max(received), *timeline)
        }
        _ => (0, 0),
    }
}
