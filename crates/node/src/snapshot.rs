//! Builds the snapshot the REST API answers from, once per cycle, out of what the cycle observed.

use ferroni_api::{NodeSnapshot, PgStatus, ReplicationConn, SnapshotHandle, Xlog};
use ferroni_decision::ActionStatus;
use ferroni_model::{ClusterView, Config, DynamicConfig, PgRole, PgState, Role, VERSION};
use ferroni_postgres::Probe;
use serde_json::Value;
use std::time::Instant;

pub type Publisher = SnapshotHandle;

pub struct Inputs<'a> {
    pub cfg: &'a Config,
    pub dynamic: &'a DynamicConfig,
    pub cluster: Option<&'a ClusterView>,
    pub probe: &'a Probe,
    pub role: Role,
    pub state: &'a str,
    pub is_leader: bool,
    pub dcs_last_seen: Option<u64>,
    pub last_error: Option<&'a str>,
    pub action: &'a ActionStatus,
    pub progress: Option<&'a Value>,
    pub metrics: Vec<ferroni_api::ExtraMetric>,
}

pub fn build(i: Inputs) -> NodeSnapshot {
    let mut extra = serde_json::Map::new();
    if let Some(err) = i.last_error {
        extra.insert("last_error".into(), Value::String(err.to_string()));
    }
    if let ActionStatus::Running(a) = i.action {
        extra.insert("action".into(), Value::String(a.name().to_string()));
    }
    if let Some(p) = i.progress {
        extra.insert("progress".into(), p.clone());
    }
    NodeSnapshot {
        name: i.cfg.name.clone(),
        scope: i.cfg.scope.clone(),
        version: VERSION.to_string(),
        state: i.state.to_string(),
        role: i.role,
        postgres: pg_status(i.probe),
        is_leader: i.is_leader,
        standby_cluster: i.dynamic.standby_cluster.is_some(),
        pause: i.dynamic.pause,
        cluster_unlocked: i.cluster.is_some_and(|c| c.leader.is_none()),
        dcs_last_seen: i.dcs_last_seen.unwrap_or(0),
        dcs_ok: i.cluster.is_some(),
        tags: i.cfg.tags.all.clone(),
        database_system_identifier: i.probe.state.sysid().map(str::to_string),
        pending_restart: i.probe.pending_restart,
        optime: i.cluster.map(ClusterView::optime).unwrap_or(0),
        maximum_lag_on_failover: i.dynamic.maximum_lag_on_failover,
        ttl: i.dynamic.ttl,
        loop_wait: i.dynamic.loop_wait,
        last_cycle: Some(Instant::now()),
        wal_receiver_latest_end_lsn: i
            .probe
            .wal_receiver
            .as_ref()
            .and_then(|w| w.latest_end_lsn)
            .map(|l| l.0),
        extra,
        metrics: i.metrics,
        ..NodeSnapshot::default()
    }
}

fn pg_status(probe: &Probe) -> Option<PgStatus> {
    let PgState::Running {
        role,
        timeline,
        lsn,
        replication,
        postmaster_start_time,
        server_version,
        ..
    } = &probe.state
    else {
        return None;
    };
    let xlog = match role {
        PgRole::Primary => Xlog::Primary { location: lsn.0 },
        PgRole::Replica => {
            let r = replication.clone().unwrap_or_default();
            Xlog::Replica {
                received_location: r.received.map(|l| l.0),
                replayed_location: Some(r.replayed.unwrap_or(*lsn).0),
                replayed_timestamp: r.replayed_timestamp.clone(),
                paused: r.paused,
            }
        }
    };
    let replication_state = match (role, replication) {
        (PgRole::Replica, Some(r)) if r.streaming => Some("streaming".to_string()),
        (PgRole::Replica, _) => Some("in archive recovery".to_string()),
        _ => None,
    };
    Some(PgStatus {
        postmaster_start_time: postmaster_start_time.clone(),
        server_version: *server_version,
        timeline: Some(*timeline),
        xlog: Some(xlog),
        replication_state,
        replication: probe
            .replication
            .iter()
            .map(|r| ReplicationConn {
                usename: r.usename.clone(),
                application_name: r.application_name.clone(),
                client_addr: r.client_addr.clone(),
                state: r.state.clone().unwrap_or_default(),
                sync_state: r.sync_state.clone().unwrap_or_default(),
                sync_priority: r.sync_priority.unwrap_or(0),
            })
            .collect(),
    })
}
