//! What the REST API knows about this node: a [`NodeSnapshot`] the daemon fills once per HA cycle,
//! and the [`SnapshotHandle`] it publishes through.
//!
//! Health checks must never wait on the HA loop, the DCS or PostgreSQL, so every answer is computed
//! from the last published snapshot. Publishing renders the status JSON and the metrics text once,
//! which turns a health request into an `Arc` clone plus a few comparisons.
//!
//! Failure story: nothing here can fail. A snapshot that is never published stays at its default
//! (state `uninitialized`, not leader), which makes every health check answer 503; `/liveness`
//! then fails once the startup grace period (the time since the handle was created) runs out.

use crate::{metrics, status};
use axum::body::Bytes;
use ferroni_model::Role;
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

/// Patroni's `PostgresqlState` strings, as the `state` field carries them.
pub mod states {
    pub const INITDB: &str = "initializing new cluster";
    pub const INITDB_FAILED: &str = "initdb failed";
    pub const CUSTOM_BOOTSTRAP: &str = "running custom bootstrap script";
    pub const CUSTOM_BOOTSTRAP_FAILED: &str = "custom bootstrap failed";
    pub const CREATING_REPLICA: &str = "creating replica";
    pub const RUNNING: &str = "running";
    pub const STARTING: &str = "starting";
    pub const BOOTSTRAP_STARTING: &str = "starting after custom bootstrap";
    pub const START_FAILED: &str = "start failed";
    pub const RESTARTING: &str = "restarting";
    pub const RESTART_FAILED: &str = "restart failed";
    pub const STOPPING: &str = "stopping";
    pub const STOPPED: &str = "stopped";
    pub const STOP_FAILED: &str = "stop failed";
    pub const CRASHED: &str = "crashed";
    /// Not a Patroni `PostgresqlState`: reported before anything is known about the data directory.
    pub const UNINITIALIZED: &str = "uninitialized";
    /// What Patroni reports when Postgres should be running but could not be queried.
    pub const UNKNOWN: &str = "unknown";

    /// The states in Patroni's stable numbering (`patroni_postgres_state`), with their enum names.
    pub const NUMBERED: [(&str, &str); 15] = [
        (INITDB, "initdb"),
        (INITDB_FAILED, "initdb_failed"),
        (CUSTOM_BOOTSTRAP, "custom_bootstrap"),
        (CUSTOM_BOOTSTRAP_FAILED, "custom_bootstrap_failed"),
        (CREATING_REPLICA, "creating_replica"),
        (RUNNING, "running"),
        (STARTING, "starting"),
        (BOOTSTRAP_STARTING, "bootstrap_starting"),
        (START_FAILED, "start_failed"),
        (RESTARTING, "restarting"),
        (RESTART_FAILED, "restart_failed"),
        (STOPPING, "stopping"),
        (STOPPED, "stopped"),
        (STOP_FAILED, "stop_failed"),
        (CRASHED, "crashed"),
    ];

    /// Patroni's numeric index of a state; -1 for anything outside its enum (as Patroni does).
    pub fn index(state: &str) -> i32 {
        NUMBERED.iter().position(|(s, _)| *s == state).map_or(-1, |i| i as i32)
    }
}

/// The `xlog` object of the status JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Xlog {
    /// `pg_current_wal_flush_lsn()` as bytes.
    Primary { location: u64 },
    /// Patroni always writes all four keys for a standby, `null` where Postgres returned NULL.
    Replica {
        received_location: Option<u64>,
        replayed_location: Option<u64>,
        /// `pg_last_xact_replay_timestamp()`, formatted like [`PgStatus::postmaster_start_time`].
        replayed_timestamp: Option<String>,
        paused: bool,
    },
}

/// One row of `pg_stat_replication` as Patroni reports it under `replication`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ReplicationConn {
    pub usename: Option<String>,
    pub application_name: String,
    /// `None` for connections over a unix socket.
    pub client_addr: Option<String>,
    pub state: String,
    pub sync_state: String,
    pub sync_priority: i32,
}

/// What one successful query of the running Postgres returned. Absent when Postgres is not running
/// or could not be queried, which is exactly when Patroni omits these fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PgStatus {
    /// As Patroni prints it, e.g. `2024-05-01 10:00:00.123456+00:00` (`+00` and `T` also parse for
    /// the metrics).
    pub postmaster_start_time: Option<String>,
    /// `server_version_num`, e.g. 160004.
    pub server_version: u32,
    pub timeline: Option<u32>,
    pub xlog: Option<Xlog>,
    /// `streaming` or `in archive recovery` on a standby; `None` on a primary.
    pub replication_state: Option<String>,
    pub replication: Vec<ReplicationConn>,
}

/// Everything the REST API answers from, as observed by the last HA cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSnapshot {
    pub name: String,
    pub scope: String,
    /// ferroni's version, reported as `patroni.version` and `patroni_version`.
    pub version: String,
    /// One of [`states`]; free text is passed through (and counts as -1 in the metrics).
    pub state: String,
    pub role: Role,
    pub postgres: Option<PgStatus>,
    /// The node holds the leader key (and its lease has not run out).
    pub is_leader: bool,
    pub standby_cluster: bool,
    pub pause: bool,
    pub cluster_unlocked: bool,
    pub failsafe_mode_is_active: bool,
    /// This node is a synchronous standby (not produced by ferroni yet).
    pub sync_standby: bool,
    /// This node is a quorum-commit standby (not produced by ferroni yet).
    pub quorum_standby: bool,
    /// Epoch seconds of the last successful DCS read.
    pub dcs_last_seen: u64,
    /// The last DCS read succeeded. When false, `optime` is ignored for lag checks, as Patroni
    /// ignores a cluster view it could not refresh.
    pub dcs_ok: bool,
    pub tags: Map<String, Value>,
    pub database_system_identifier: Option<String>,
    pub pending_restart: bool,
    /// `{param: {old_value, new_value}}`; non-empty also implies `pending_restart`.
    pub pending_restart_reason: Map<String, Value>,
    /// The leader's last WAL position from the DCS `status` key.
    pub optime: u64,
    pub maximum_lag_on_failover: u64,
    pub ttl: u32,
    pub loop_wait: u32,
    /// When the last HA cycle completed; `None` falls back to the time of publication.
    pub last_cycle: Option<Instant>,
    /// `pg_stat_wal_receiver.latest_end_lsn` on a streaming standby.
    pub wal_receiver_latest_end_lsn: Option<u64>,
    /// Merged into the status JSON (ferroni extensions such as progress and last error). Keys that
    /// collide with Patroni's own fields are dropped so the contract fields cannot be overridden.
    pub extra: Map<String, Value>,
    /// ferroni's own metrics (`ferroni_*`), rendered after Patroni's in `/metrics`.
    pub metrics: Vec<ExtraMetric>,
}

/// One ferroni metric sample: name, Prometheus type, help text and value.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraMetric {
    pub name: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
    pub value: f64,
}

impl Default for NodeSnapshot {
    fn default() -> Self {
        NodeSnapshot {
            name: String::new(),
            scope: String::new(),
            version: ferroni_model::VERSION.to_string(),
            state: states::UNINITIALIZED.to_string(),
            role: Role::Uninitialized,
            postgres: None,
            is_leader: false,
            standby_cluster: false,
            pause: false,
            cluster_unlocked: true,
            failsafe_mode_is_active: false,
            sync_standby: false,
            quorum_standby: false,
            dcs_last_seen: 0,
            dcs_ok: false,
            tags: Map::new(),
            database_system_identifier: None,
            pending_restart: false,
            pending_restart_reason: Map::new(),
            optime: 0,
            maximum_lag_on_failover: 1_048_576,
            ttl: 30,
            loop_wait: 10,
            last_cycle: None,
            wal_receiver_latest_end_lsn: None,
            extra: Map::new(),
            metrics: Vec::new(),
        }
    }
}

impl NodeSnapshot {
    pub fn is_running(&self) -> bool {
        self.state == states::RUNNING
    }

    pub fn xlog(&self) -> Option<&Xlog> {
        self.postgres.as_ref().and_then(|p| p.xlog.as_ref())
    }

    /// Replayed position of a standby, 0 otherwise (Patroni's `.get('replayed_location', 0)`).
    pub fn replayed_location(&self) -> u64 {
        match self.xlog() {
            Some(Xlog::Replica { replayed_location, .. }) => replayed_location.unwrap_or(0),
            _ => 0,
        }
    }

    /// Received position of a standby, 0 otherwise.
    pub fn received_location(&self) -> u64 {
        match self.xlog() {
            Some(Xlog::Replica { received_location, .. }) => received_location.unwrap_or(0),
            _ => 0,
        }
    }

    pub fn replication_state(&self) -> Option<&str> {
        self.postgres.as_ref().and_then(|p| p.replication_state.as_deref())
    }

    /// The position lag is measured against: the newer of the DCS optime (only if the DCS view is
    /// current) and what the WAL receiver last heard from its upstream.
    pub fn leader_optime(&self) -> u64 {
        let dcs = if self.dcs_ok { self.optime } else { 0 };
        dcs.max(self.wal_receiver_latest_end_lsn.unwrap_or(0))
    }

    /// Tags are written by humans in YAML, so `"yes"`/`"on"` count as true like Patroni's parse_bool.
    pub fn noloadbalance(&self) -> bool {
        match self.tags.get("noloadbalance") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1"),
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            _ => false,
        }
    }

    pub fn has_pending_restart(&self) -> bool {
        self.pending_restart || !self.pending_restart_reason.is_empty()
    }
}

/// A published snapshot together with the bodies rendered from it. The daemon publishes every
/// cycle, so a body is rendered when first asked for, once per snapshot: an idle node that nobody
/// polls renders nothing, and a busy health check still serves the same bytes many times.
#[derive(Debug)]
pub struct Published {
    snapshot: NodeSnapshot,
    status_json: OnceLock<Bytes>,
    metrics: OnceLock<Bytes>,
    published_at: Instant,
}

impl Published {
    fn new(snapshot: NodeSnapshot) -> Published {
        Published {
            snapshot,
            status_json: OnceLock::new(),
            metrics: OnceLock::new(),
            published_at: Instant::now(),
        }
    }

    pub fn snapshot(&self) -> &NodeSnapshot {
        &self.snapshot
    }

    /// The status JSON (`/patroni` and every GET health check).
    pub fn status_json(&self) -> &Bytes {
        self.status_json
            .get_or_init(|| Bytes::from(status::render(&self.snapshot)))
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> &Bytes {
        self.metrics
            .get_or_init(|| Bytes::from(metrics::render(&self.snapshot)))
    }

    /// The instant `/liveness` measures from.
    pub fn heartbeat(&self) -> Instant {
        self.snapshot.last_cycle.unwrap_or(self.published_at)
    }
}

/// Where the daemon publishes and the API reads. Cloning shares the same slot.
///
/// The lock is only held to swap or clone an `Arc`, so readers never wait on rendering, and a
/// panic elsewhere cannot poison health checks (a poisoned lock is simply used as is).
#[derive(Debug, Clone)]
pub struct SnapshotHandle {
    current: Arc<RwLock<Arc<Published>>>,
}

impl Default for SnapshotHandle {
    fn default() -> Self {
        SnapshotHandle::new(NodeSnapshot::default())
    }
}

impl SnapshotHandle {
    pub fn new(initial: NodeSnapshot) -> SnapshotHandle {
        SnapshotHandle {
            current: Arc::new(RwLock::new(Arc::new(Published::new(initial)))),
        }
    }

    /// Replaces the current snapshot. Rendering happens here, outside the lock.
    pub fn publish(&self, snapshot: NodeSnapshot) {
        let next = Arc::new(Published::new(snapshot));
        let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
        *slot = next;
    }

    pub fn load(&self) -> Arc<Published> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_numbering_is_patronis() {
        assert_eq!(states::index("initializing new cluster"), 0);
        assert_eq!(states::index("creating replica"), 4);
        assert_eq!(states::index("running"), 5);
        assert_eq!(states::index("crashed"), 14);
        assert_eq!(states::index("uninitialized"), -1);
        assert_eq!(states::index("unknown"), -1);
    }

    #[test]
    fn publish_replaces_and_renders() {
        let h = SnapshotHandle::default();
        assert_eq!(h.load().snapshot().state, "uninitialized");
        let s = NodeSnapshot {
            name: "pg1".into(),
            state: "running".into(),
            ..Default::default()
        };
        h.publish(s);
        let p = h.load();
        assert_eq!(p.snapshot().name, "pg1");
        let v: Value = serde_json::from_slice(p.status_json()).unwrap();
        assert_eq!(v["state"], "running");
        assert!(
            std::str::from_utf8(p.metrics())
                .unwrap()
                .contains("patroni_postgres_running{")
        );
    }

    #[test]
    fn lag_inputs() {
        let mut s = NodeSnapshot {
            optime: 100,
            dcs_ok: true,
            wal_receiver_latest_end_lsn: Some(80),
            postgres: Some(PgStatus {
                xlog: Some(Xlog::Replica {
                    received_location: Some(70),
                    replayed_location: Some(60),
                    replayed_timestamp: None,
                    paused: false,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(s.leader_optime(), 100);
        assert_eq!(s.replayed_location(), 60);
        assert_eq!(s.received_location(), 70);
        s.dcs_ok = false;
        assert_eq!(s.leader_optime(), 80);
    }

    #[test]
    fn noloadbalance_spellings() {
        for (v, want) in [
            (Value::Bool(true), true),
            (Value::String("yes".into()), true),
            (Value::String("off".into()), false),
            (serde_json::json!(1), true),
            (serde_json::json!(0), false),
        ] {
            let mut s = NodeSnapshot::default();
            s.tags.insert("noloadbalance".into(), v.clone());
            assert_eq!(s.noloadbalance(), want, "{v}");
        }
        assert!(!NodeSnapshot::default().noloadbalance());
    }
}
