//! Everything `decide` may look at. The node builds one per cycle; nothing in it is read lazily.

use crate::action::LongAction;
use ferroni_model::{ClusterView, Config, DynamicConfig, PgState, Role};

/// The state of the node's single background action slot.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionStatus {
    Idle,
    Running(LongAction),
}

/// A background action that ended since the previous cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionResult {
    pub action: LongAction,
    /// `Ok(Some(sysid))` after a successful bootstrap; `Err` carries the reason for the log and `/patroni`.
    pub result: Result<Option<String>, String>,
}

/// Outcome of a guarded action earlier in the same cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    InitializeWon,
    InitializeLost,
    LeaderAcquired,
    LeaderLost,
    LeaderRefreshed,
    /// The DCS did not answer the refresh in time.
    LeaderRefreshFailed,
    PeersAsked,
}

/// What another member's `/patroni` said during an election (2 s timeout).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    pub name: String,
    /// `false`: it did not answer in time.
    pub reachable: bool,
    pub role: Option<Role>,
    pub running: bool,
    /// Primary: current position; replica: the larger of received and replayed.
    pub lsn: u64,
    pub timeline: u32,
    pub nofailover: bool,
    pub failover_priority: i64,
}

/// An operator's request from the REST API, decided like everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `POST /reinitialize`: rebuild this replica from scratch.
    Reinitialize { force: bool, from_leader: bool },
    /// `POST /restart`.
    Restart,
    /// `POST /reload`.
    Reload,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observation<'a> {
    /// Monotonic milliseconds.
    pub now_ms: u64,
    /// Wall-clock epoch milliseconds, only for `scheduled_at` of a switchover.
    pub wall_ms: i64,
    pub config: &'a Config,
    /// The dynamic configuration in force (DCS `config`, or `bootstrap.dcs` before it exists).
    pub dynamic: &'a DynamicConfig,
    /// `None`: the DCS could not be read this cycle.
    pub cluster: Option<&'a ClusterView>,
    pub pg: &'a PgState,
    pub action: ActionStatus,
    pub finished: Option<ActionResult>,
    pub outcomes: Vec<Outcome>,
    pub peers: Option<Vec<PeerStatus>>,
    /// At most one operator request per decision.
    pub request: Option<Request>,
    /// The dynamic configuration changed since the last cycle: the managed configuration must be
    /// rendered again.
    pub config_changed: bool,
}

impl Observation<'_> {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn outcome(&self, wanted: &[Outcome]) -> Option<Outcome> {
        self.outcomes.iter().rev().find(|o| wanted.contains(o)).copied()
    }

    /// Whether this node holds the leader lock: the outcome of a lock operation earlier in this
    /// cycle wins over the (older) cluster view.
    pub fn holds_lock(&self) -> bool {
        match self.outcome(&[
            Outcome::LeaderAcquired,
            Outcome::LeaderRefreshed,
            Outcome::LeaderLost,
            Outcome::LeaderRefreshFailed,
        ]) {
            Some(Outcome::LeaderAcquired | Outcome::LeaderRefreshed) => true,
            Some(_) => false,
            None => self.cluster.and_then(|c| c.leader_name()) == Some(self.name()),
        }
    }

    /// The leader lock as this node knows it: `Some(name)` of another holder, or `None`.
    pub fn other_leader(&self) -> Option<&str> {
        if self.holds_lock() {
            return None;
        }
        self.cluster.and_then(|c| c.leader_name()).filter(|n| *n != self.name())
    }
}
