//! The trait every DCS backend implements.

use async_trait::async_trait;
use ferroni_model::{ClusterView, Failover, HistoryLine, MemberData, Status};
use serde_json::Value;
use std::time::Duration;

/// Who is talking to the DCS, and where its cluster lives.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeIdentity {
    pub name: String,
    pub scope: String,
    /// `/service/` style, with leading and trailing slash.
    pub namespace: String,
    /// Lease TTL in seconds; the leader and member keys vanish this long after the node stops renewing.
    pub ttl: u32,
    /// Upper bound for one DCS operation, including retries.
    pub retry_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DcsError {
    /// The DCS could not be reached or did not answer in time.
    #[error("DCS is not accessible: {0}")]
    Unavailable(String),
    /// The DCS answered but the request was invalid or a value could not be encoded.
    #[error("DCS request failed: {0}")]
    Failed(String),
}

/// Operations on one cluster's keys. Every write that can lose a race returns `Ok(false)` when it did.
#[async_trait]
pub trait Dcs: Send + Sync {
    fn identity(&self) -> &NodeIdentity;

    /// When (CLOCK_BOOTTIME) the lease that `acquire_leader`/`update_leader` bind the leader key to
    /// last started a successful renewal: the key lasts at least ttl from then, and a fence must
    /// count from then, not from the call (which may reuse a recent renewal). `None` when every
    /// such call renews the lock itself.
    fn lease_renewed_at(&self) -> Option<Duration> {
        None
    }

    /// Reads every key of the cluster in one request.
    async fn load(&self) -> Result<ClusterView, DcsError>;

    /// Creates `initialize` with the value `""` if it does not exist. `Ok(false)`: it existed.
    async fn attempt_initialize(&self) -> Result<bool, DcsError>;
    /// Writes the system identifier into `initialize` (overwrites).
    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError>;
    /// Deletes `initialize` (a failed bootstrap gives the next node its turn).
    async fn cancel_initialize(&self) -> Result<(), DcsError>;

    /// Creates `leader` = own name on own lease if absent. `Ok(false)`: another node holds it.
    async fn acquire_leader(&self) -> Result<bool, DcsError>;
    /// Renews the lease and makes sure `leader` still names this node on its current lease.
    /// `Ok(false)`: the key is held by someone else (or vanished and was taken). As in Patroni, a key
    /// that vanished and is still free is created again; one still naming this node on an older lease
    /// (after a lease re-grant or `set_ttl`) is moved onto the current lease.
    async fn update_leader(&self) -> Result<bool, DcsError>;
    /// Deletes `leader` only if it still names this node.
    async fn release_leader(&self) -> Result<(), DcsError>;

    /// Writes `members/<name>` on the node's lease (renewing the lease when needed).
    async fn touch_member(&self, data: &MemberData) -> Result<(), DcsError>;
    /// Deletes the own member key and revokes the lease (graceful shutdown).
    async fn shutdown(&self) -> Result<(), DcsError>;

    /// Writes `config`. `version: None` creates it only if absent; `Some(v)` replaces it only if its
    /// version is still `v`. `Ok(false)`: the condition failed.
    async fn write_config(&self, value: &Value, version: Option<i64>) -> Result<bool, DcsError>;
    /// Replaces `config` unconditionally.
    async fn replace_config(&self, value: &Value) -> Result<(), DcsError>;

    async fn write_status(&self, status: &Status) -> Result<(), DcsError>;
    async fn write_history(&self, history: &[HistoryLine]) -> Result<(), DcsError>;

    /// Writes `failover`, with the same version semantics as `write_config`.
    async fn write_failover(&self, failover: &Failover, version: Option<i64>) -> Result<bool, DcsError>;
    /// Deletes `failover`; with `Some(version)` only if unchanged.
    async fn delete_failover(&self, version: Option<i64>) -> Result<bool, DcsError>;

    /// Waits until the `leader` key changes (written or deleted, including by lease expiry) or
    /// `timeout` passes, and never longer. A change made after this node's last `load` counts even if
    /// it happened before the call, so a change between reading the cluster and waiting is not missed.
    /// A leader that merely renews its lease does not rewrite the key and wakes nobody.
    /// Connection errors are retried until `timeout`; if the DCS could not be watched at all the
    /// call returns `Err(Unavailable)` at the timeout (not early, so a loop around it cannot spin).
    async fn watch_leader(&self, timeout: Duration) -> Result<(), DcsError>;

    /// Like [`Dcs::watch_leader`], for a member joining (its key created) or leaving (its key
    /// deleted or expired). A member rewriting its key wakes nobody. The leader waits on this so a
    /// new member's replication slot exists before that member's image is done.
    async fn watch_roster(&self, timeout: Duration) -> Result<(), DcsError>;

    /// Changes the lease TTL. Like Patroni, the current lease is abandoned (not revoked) and the next
    /// operation grants one with the new TTL; `update_leader` then moves the leader key onto it.
    /// `identity().ttl` keeps showing the TTL the node was created with.
    async fn set_ttl(&self, ttl: u32);

    /// Deletes every key of the cluster (`ferronictl remove`).
    async fn delete_cluster(&self) -> Result<(), DcsError>;
}
