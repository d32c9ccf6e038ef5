//! What a node must remember between cycles. Everything else is observed afresh each cycle.

/// Progress of a bootstrap this node started.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BootstrapPhase {
    #[default]
    None,
    /// This node holds `initialize = ""` and runs the bootstrap.
    Running,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Memory {
    pub bootstrap: BootstrapPhase,
    /// When this node's last bootstrap failed, and why: it steps back so another node can try.
    pub bootstrap_failed: Option<(u64, String)>,
    /// The last error of a background action, for `/patroni` and `ferronictl list -e`.
    pub last_error: Option<String>,
    /// The last `status.optime` this node wrote as leader.
    pub last_written_optime: Option<u64>,
    /// Replica creation attempts that failed in a row.
    pub clone_failures: u32,
    /// This leader stops Postgres for a switchover; once stopped it releases the lock.
    pub switchover_demote: bool,
    /// Why the last attempt to rejoin as a replica (pg_rewind) failed: the node stays out until the
    /// data changes or an operator reinitializes it.
    pub rejoin_failed: Option<String>,
    /// A promotion finished: the leader records the new timeline in `history`.
    pub history_pending: bool,
}
