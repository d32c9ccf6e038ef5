//! What the local PostgreSQL looks like to one probe: a closed set of states, so the decision never
//! has to interpret a raw error.

use crate::lsn::Lsn;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PgRole {
    Primary,
    Replica,
}

/// Replication details of a running standby.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ReplicationInfo {
    pub received: Option<Lsn>,
    pub replayed: Option<Lsn>,
    pub replayed_timestamp: Option<String>,
    pub paused: bool,
    /// `streaming` when a WAL receiver is active, else `in archive recovery`.
    pub streaming: bool,
    /// The `primary_conninfo` the server runs with (host/port), to see whether it follows the right upstream.
    pub upstream: Option<String>,
}

/// One observation of the local PostgreSQL.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PgState {
    /// The data directory is absent or empty: nothing to start.
    NoData,
    /// The data directory exists but holds no valid cluster (no `global/pg_control`).
    InvalidData { reason: String },
    /// A cluster exists and no postmaster runs.
    Stopped {
        sysid: String,
        timeline: u32,
        /// `pg_controldata` says the last shutdown was clean.
        clean_shutdown: bool,
        /// `standby.signal` or `recovery.signal` is present.
        standby: bool,
    },
    /// A postmaster runs but does not accept connections yet.
    Starting { sysid: String },
    Running {
        sysid: String,
        role: PgRole,
        timeline: u32,
        /// Primary: current write position; replica: last replayed position.
        lsn: Lsn,
        replication: Option<ReplicationInfo>,
        postmaster_start_time: Option<String>,
        server_version: u32,
    },
}

impl PgState {
    pub fn sysid(&self) -> Option<&str> {
        match self {
            PgState::Stopped { sysid, .. } | PgState::Starting { sysid } | PgState::Running { sysid, .. } => {
                Some(sysid)
            }
            _ => None,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, PgState::Running { .. })
    }

    pub fn running_role(&self) -> Option<PgRole> {
        match self {
            PgState::Running { role, .. } => Some(*role),
            _ => None,
        }
    }

    pub fn has_data(&self) -> bool {
        !matches!(self, PgState::NoData | PgState::InvalidData { .. })
    }
}
