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
    /// When and why the last attempt to rejoin as a replica (pg_rewind) failed: the node waits a
    /// few TTLs before it tries again (the leader may only have been restarting).
    pub rejoin_failed: Option<(u64, String)>,
    /// This node was demoted without knowing the new leader, so it could not rewind then: before it
    /// follows anyone, its data must be checked with pg_rewind.
    pub rewind_pending: bool,
    /// When the local slots were last synchronised, and to which set.
    pub slots_synced: Option<(u64, std::collections::BTreeSet<String>)>,
    /// When this lock holder began starting its primary, for `primary_start_timeout`.
    pub primary_start_at: Option<u64>,
    /// A promotion finished: the leader records the new timeline in `history`.
    pub history_pending: bool,
}
