//! Patroni's status JSON (`get_postgresql_status` + `_write_status_response`): the body of
//! `/patroni` and of every GET health check.
//!
//! Field names and presence follow Patroni exactly, because peers (leader race), patronictl,
//! dashboards and scripts parse it: Postgres details only when Postgres was queried, flags such as
//! `pause` or `pending_restart` only when true. Field order follows Patroni too, for humans.
//!
//! Failure story: rendering cannot fail for the types involved; should serde ever fail, an object
//! with only `state` is returned rather than an empty body.

use crate::snapshot::{NodeSnapshot, ReplicationConn, Xlog};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

/// Top-level keys Patroni itself may write; `extra` must not shadow them.
pub const RESERVED_KEYS: &[&str] = &[
    "state",
    "postmaster_start_time",
    "role",
    "server_version",
    "xlog",
    "timeline",
    "replication_state",
    "replication",
    "sync_standby",
    "quorum_standby",
    "pause",
    "cluster_unlocked",
    "failsafe_mode_is_active",
    "dcs_last_seen",
    "tags",
    "database_system_identifier",
    "pending_restart",
    "pending_restart_reason",
    "patroni",
    "latest_end_lsn",
];

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize)]
struct PatroniInfo<'a> {
    version: &'a str,
    scope: &'a str,
    name: &'a str,
}

/// `extra` minus the reserved keys, flattened into the top level.
struct Extra<'a>(&'a Map<String, Value>);

impl Serialize for Extra<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str())) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct StatusBody<'a> {
    state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    postmaster_start_time: Option<&'a str>,
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    xlog: Option<&'a Xlog>,
    #[serde(skip_serializing_if = "is_false")]
    sync_standby: bool,
    #[serde(skip_serializing_if = "is_false")]
    quorum_standby: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeline: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replication_state: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    replication: &'a [ReplicationConn],
    #[serde(skip_serializing_if = "is_false")]
    pause: bool,
    #[serde(skip_serializing_if = "is_false")]
    cluster_unlocked: bool,
    #[serde(skip_serializing_if = "is_false")]
    failsafe_mode_is_active: bool,
    dcs_last_seen: u64,
    #[serde(skip_serializing_if = "Map::is_empty")]
    tags: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_system_identifier: Option<&'a str>,
    #[serde(skip_serializing_if = "is_false")]
    pending_restart: bool,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pending_restart_reason: &'a Map<String, Value>,
    patroni: PatroniInfo<'a>,
    #[serde(flatten)]
    extra: Extra<'a>,
}

fn body(s: &NodeSnapshot) -> StatusBody<'_> {
    let pg = s.postgres.as_ref();
    StatusBody {
        state: &s.state,
        postmaster_start_time: pg.and_then(|p| p.postmaster_start_time.as_deref()),
        role: s.role.as_str(),
        server_version: pg.map(|p| p.server_version),
        xlog: pg.and_then(|p| p.xlog.as_ref()),
        sync_standby: s.sync_standby,
        quorum_standby: s.quorum_standby,
        timeline: pg.and_then(|p| p.timeline),
        replication_state: pg.and_then(|p| p.replication_state.as_deref()),
        replication: pg.map_or(&[], |p| p.replication.as_slice()),
        pause: s.pause,
        // Patroni: `not cluster or cluster.is_unlocked()`; a stale view cannot vouch for a leader.
        cluster_unlocked: s.cluster_unlocked || !s.dcs_ok,
        failsafe_mode_is_active: s.failsafe_mode_is_active,
        dcs_last_seen: s.dcs_last_seen,
        tags: &s.tags,
        database_system_identifier: s.database_system_identifier.as_deref().filter(|x| !x.is_empty()),
        pending_restart: s.has_pending_restart(),
        pending_restart_reason: &s.pending_restart_reason,
        patroni: PatroniInfo {
            version: &s.version,
            scope: &s.scope,
            name: &s.name,
        },
        extra: Extra(&s.extra),
    }
}

/// The status JSON as bytes (compact, like Patroni's `json.dumps`).
pub fn render(s: &NodeSnapshot) -> Vec<u8> {
    serde_json::to_vec(&body(s)).unwrap_or_else(|e| {
        tracing::error!("cannot render status JSON: {e}");
        serde_json::to_vec(&serde_json::json!({ "state": s.state })).unwrap_or_default()
    })
}

/// The status JSON as a value (for callers that want to inspect or extend it).
pub fn to_value(s: &NodeSnapshot) -> Value {
    serde_json::from_slice(&render(s)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::PgStatus;
    use ferroni_model::Role;
    use serde_json::json;

    /// Top-level keys in the order they were written (a parsed `Value` would sort them).
    fn keys(s: &NodeSnapshot) -> Vec<String> {
        let raw = String::from_utf8(render(s)).unwrap();
        let v: Value = serde_json::from_str(&raw).unwrap();
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        // Top-level keys are written before any nested key of the same name, so the first
        // occurrence gives the order.
        keys.sort_by_key(|k| raw.find(&format!("\"{k}\":")).unwrap());
        keys
    }

    fn primary() -> NodeSnapshot {
        let mut s = NodeSnapshot {
            name: "pg1".into(),
            scope: "batman".into(),
            version: "0.1.0".into(),
            state: "running".into(),
            role: Role::Primary,
            is_leader: true,
            dcs_ok: true,
            cluster_unlocked: false,
            dcs_last_seen: 1_700_000_000,
            database_system_identifier: Some("7268616322854375442".into()),
            postgres: Some(PgStatus {
                postmaster_start_time: Some("2024-05-01 10:00:00.123456+00:00".into()),
                server_version: 160004,
                timeline: Some(2),
                xlog: Some(Xlog::Primary { location: 50_331_648 }),
                replication_state: None,
                replication: vec![ReplicationConn {
                    usename: Some("replicator".into()),
                    application_name: "pg2".into(),
                    client_addr: Some("10.0.0.2".into()),
                    state: "streaming".into(),
                    sync_state: "async".into(),
                    sync_priority: 0,
                }],
            }),
            ..Default::default()
        };
        s.tags.insert("nofailover".into(), json!(false));
        s
    }

    #[test]
    fn primary_fields_in_patroni_order() {
        let v = to_value(&primary());
        assert_eq!(
            keys(&primary()),
            [
                "state",
                "postmaster_start_time",
                "role",
                "server_version",
                "xlog",
                "timeline",
                "replication",
                "dcs_last_seen",
                "tags",
                "database_system_identifier",
                "patroni"
            ]
        );
        assert_eq!(v["role"], "primary");
        assert_eq!(v["xlog"], json!({"location": 50_331_648}));
        assert_eq!(v["server_version"], 160004);
        assert_eq!(v["timeline"], 2);
        assert_eq!(
            v["replication"][0],
            json!({"usename": "replicator", "application_name": "pg2", "client_addr": "10.0.0.2",
                   "state": "streaming", "sync_state": "async", "sync_priority": 0})
        );
        assert_eq!(
            v["patroni"],
            json!({"version": "0.1.0", "scope": "batman", "name": "pg1"})
        );
    }

    #[test]
    fn replica_xlog_has_all_four_keys() {
        let mut s = primary();
        s.role = Role::Replica;
        s.is_leader = false;
        let pg = s.postgres.as_mut().unwrap();
        pg.replication.clear();
        pg.replication_state = Some("streaming".into());
        pg.xlog = Some(Xlog::Replica {
            received_location: Some(100),
            replayed_location: Some(90),
            replayed_timestamp: None,
            paused: false,
        });
        let v = to_value(&s);
        assert_eq!(
            v["xlog"],
            json!({"received_location": 100, "replayed_location": 90, "replayed_timestamp": null, "paused": false})
        );
        assert_eq!(v["replication_state"], "streaming");
        assert!(v.get("replication").is_none());
    }

    #[test]
    fn not_running_omits_postgres_details() {
        let s = NodeSnapshot {
            name: "pg1".into(),
            scope: "batman".into(),
            state: "stopped".into(),
            role: Role::Replica,
            dcs_ok: true,
            cluster_unlocked: false,
            ..Default::default()
        };
        assert_eq!(keys(&s), ["state", "role", "dcs_last_seen", "patroni"]);
    }

    #[test]
    fn flags_appear_only_when_true() {
        let mut s = primary();
        s.pause = true;
        s.cluster_unlocked = true;
        s.failsafe_mode_is_active = true;
        s.pending_restart_reason.insert(
            "max_connections".into(),
            json!({"old_value": "100", "new_value": "200"}),
        );
        let v = to_value(&s);
        assert_eq!(v["pause"], true);
        assert_eq!(v["cluster_unlocked"], true);
        assert_eq!(v["failsafe_mode_is_active"], true);
        assert_eq!(v["pending_restart"], true);
        assert_eq!(v["pending_restart_reason"]["max_connections"]["new_value"], "200");
    }

    #[test]
    fn stale_dcs_means_unlocked() {
        let mut s = primary();
        s.dcs_ok = false;
        assert_eq!(to_value(&s)["cluster_unlocked"], true);
    }

    #[test]
    fn extra_is_merged_but_cannot_override() {
        let mut s = primary();
        s.extra.insert("replica_progress".into(), json!({"percent": 46}));
        s.extra.insert("state".into(), json!("hijacked"));
        s.extra.insert("patroni".into(), json!({}));
        let raw = String::from_utf8(render(&s)).unwrap();
        assert!(!raw.contains("hijacked"));
        let v: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(v["state"], "running");
        assert_eq!(v["replica_progress"]["percent"], 46);
        assert_eq!(v["patroni"]["name"], "pg1");
    }
}
