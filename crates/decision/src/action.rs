//! What a decision asks the node to do. DCS writes are quick and run inline; everything that touches
//! PostgreSQL is a [`LongAction`] that runs in the background, one at a time.

use ferroni_model::Role;
use serde_json::Value;
use std::collections::BTreeSet;

/// The member a replica streams from or clones from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    /// `postgres://host:port/postgres` from the member key.
    pub conn_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    Fast,
    Immediate,
}

/// Work on PostgreSQL that takes longer than a DCS call. The node runs at most one at a time and
/// reports its result back through [`crate::Observation::finished`].
#[derive(Debug, Clone, PartialEq)]
pub enum LongAction {
    /// initdb or the custom method, managed configuration, first start, end of recovery, roles,
    /// post_bootstrap. On failure the runner stops Postgres and moves the data directory aside.
    Bootstrap,
    /// Build a data directory with the configured replica methods, then start following `source`.
    /// `source: None` runs only methods that work without a leader (`no_leader`).
    CreateReplica {
        source: Option<Upstream>,
        methods: Vec<String>,
    },
    /// Configure as primary and start.
    StartPrimary,
    /// Configure as a replica of `upstream` (none: read-only without upstream) and start.
    StartReplica { upstream: Option<Upstream> },
    /// Promote a running replica.
    Promote,
    /// Stop a running primary and start it again as a replica of `upstream`.
    Demote { mode: StopMode, upstream: Option<Upstream> },
    /// Point a running replica at another upstream.
    Follow { upstream: Option<Upstream> },
    /// Make a former primary follow `upstream`: crash recovery if needed, pg_rewind (when allowed),
    /// then start as a replica.
    Rejoin { upstream: Upstream },
    /// Stop PostgreSQL.
    Stop { mode: StopMode },
    /// Stop and start PostgreSQL in its current role.
    Restart,
    /// Stop PostgreSQL, empty the data directory and build it again from `source`.
    Reinitialize { source: Upstream, methods: Vec<String> },
}

impl LongAction {
    /// The name used in log lines and `/patroni`.
    pub fn name(&self) -> &'static str {
        match self {
            LongAction::Bootstrap => "bootstrap",
            LongAction::CreateReplica { .. } => "creating replica",
            LongAction::StartPrimary | LongAction::StartReplica { .. } => "starting",
            LongAction::Promote => "promote",
            LongAction::Demote { .. } => "demote",
            LongAction::Follow { .. } => "follow",
            LongAction::Rejoin { .. } => "rejoin",
            LongAction::Stop { .. } => "stopping",
            LongAction::Restart => "restart",
            LongAction::Reinitialize { .. } => "reinitialize",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create `initialize` = "". Guarded: the outcome decides whether to bootstrap.
    TakeInitialize,
    /// Write the system identifier into `initialize`.
    SetInitialize(String),
    /// Delete `initialize` so another node may bootstrap.
    CancelInitialize,
    /// Create `config` from this value if it does not exist.
    WriteConfig(Value),
    /// Create `leader` = own name. Guarded.
    AcquireLeader,
    /// Renew the lease and the `leader` key. Guarded.
    RefreshLeader,
    /// Delete `leader` if it still names this node.
    ReleaseLeader,
    /// Publish the leader's WAL position in `status`.
    WriteStatus { optime: u64 },
    /// Remove the `failover` key after acting on it.
    ClearFailover,
    /// Append the timelines of the local history file to the `history` key.
    WriteHistory,
    /// Make the local physical replication slots exactly these (active ones are never dropped).
    SyncSlots(BTreeSet<String>),
    /// Ask the other members' REST APIs for their status (an election needs it); decide runs again.
    AskPeers,
    /// Start a background action on PostgreSQL.
    Start(LongAction),
    /// Cancel the background action in progress (a forced reinitialize).
    AbortLongAction,
    /// Rewrite the managed configuration for the current role (primary, or replica of `upstream`)
    /// and reload PostgreSQL.
    Reload { primary: bool, upstream: Option<Upstream> },
    /// Stop the daemon with this message: continuing would damage data (system identifier mismatch).
    Fatal(String),
}

impl Action {
    /// Actions whose outcome the next rule depends on: the node stops the list after a failed one
    /// and runs `decide` again with the outcome.
    pub fn is_guarded(&self) -> bool {
        matches!(
            self,
            Action::TakeInitialize | Action::AcquireLeader | Action::RefreshLeader | Action::AskPeers
        )
    }
}

/// The result of one `decide` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// One line in Patroni's style: "no action. I am (n0), the leader with the lock".
    pub reason: String,
    /// The role to publish in the member key.
    pub role: Role,
    /// The answer to the operator's request: `Ok(message)` or `Err((http status, message))`.
    pub reply: Option<Result<String, (u16, String)>>,
}

impl Decision {
    pub fn new(reason: impl Into<String>, role: Role) -> Decision {
        Decision {
            actions: Vec::new(),
            reason: reason.into(),
            role,
            reply: None,
        }
    }

    pub fn with(mut self, action: Action) -> Decision {
        self.actions.push(action);
        self
    }
}
