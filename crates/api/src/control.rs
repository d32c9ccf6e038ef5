//! What the REST API asks of the daemon: the [`NodeControl`] trait behind `POST /restart`,
//! `POST /reload` and `POST /reinitialize`.
//!
//! The API validates the request (body shape, Patroni's filters against the published snapshot)
//! and only then calls the daemon, which owns PostgreSQL and the HA loop. Switchover and failover
//! need no daemon call: they are requests written to the DCS `failover` key, which the HA loop
//! acts on (see `handlers::switchover`).
//!
//! The daemon hands its implementation to [`crate::ApiState::with_control`]; without one these
//! endpoints answer 503 `not available` (useful for tools that embed the API read-only).
//!
//! Failure story: every refusal or failure is an [`ApiError`] carrying the HTTP status and the
//! plain-text body, so the daemon decides the exact Patroni wording (e.g. 503
//! `Cluster has no leader, can not reinitialize`, `I am the leader, can not reinitialize`,
//! `restart already in progress`, `restart failed`).

use async_trait::async_trait;
use std::fmt;
use std::time::Duration;

/// A refusal or failure reported to the HTTP client as `status` with `message` as the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 503, what Patroni answers for a refused or failed action.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, message)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

/// An immediate restart as `POST /restart` requested it, after validation.
///
/// The API has already checked `role`, `postgres_version` and `restart_pending` against the
/// published snapshot (503 `restart conditions are not satisfied` when they do not match); they
/// are passed on so the daemon can re-check them against its current state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestartRequest {
    /// Restart only if PostgreSQL reports a pending restart.
    pub restart_pending: bool,
    /// Restart only if the node runs in this role: `primary`, `replica` or `standby_leader`.
    pub role: Option<String>,
    /// Restart only if the running server is older than this `X.Y` / `X.Y.Z` version.
    pub postgres_version: Option<String>,
    /// How long PostgreSQL may take to come back; past it a primary may be failed over
    /// (Patroni's `primary_start_timeout` when absent).
    pub timeout: Option<Duration>,
}

/// The node operations the REST API needs from the daemon.
///
/// `Ok(message)` becomes the response body (200, or 202 for `reload`); an empty message is
/// replaced by Patroni's default text (`restarted successfully`, `reload scheduled`,
/// `reinitialize started`). `Err` answers with its status and message.
#[async_trait]
pub trait NodeControl: Send + Sync {
    /// Restarts PostgreSQL now and returns once it is back (or failed). Patroni's answers:
    /// 200 `restarted successfully`; 503 `restart failed`, `postgres is still starting`,
    /// `<action> already in progress`.
    async fn restart(&self, req: RestartRequest) -> Result<String, ApiError>;

    /// Re-reads the local configuration, like SIGHUP. Should only schedule the work and return.
    async fn reload(&self) -> Result<String, ApiError>;

    /// Stops PostgreSQL, wipes the data directory and clones it again (replicas only).
    /// `force` cancels a running action first; `from_leader` clones from the leader with
    /// `basebackup` instead of the configured source. Should return once the job is started.
    async fn reinitialize(&self, force: bool, from_leader: bool) -> Result<String, ApiError>;
}
