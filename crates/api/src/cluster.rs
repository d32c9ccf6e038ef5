//! JSON views of one DCS read: `/cluster` (Patroni's `cluster_as_json`) and `/history`, plus the
//! few questions about the dynamic config they need (paused? standby cluster? synchronous mode?).
//!
//! patronictl and dashboards parse `/cluster`, so member fields are Patroni's: the leader-key holder
//! is `leader` (or `standby_leader` in a standby cluster), others show their replication state as
//! `state`, and non-leaders carry `receive_lsn/replay_lsn/lsn` with lags against the DCS `optime`,
//! or `"unknown"` when they did not publish a position.
//!
//! Failure story: pure functions over an already-loaded [`ClusterView`]; malformed member data or
//! config simply leaves the corresponding fields out.

use ferroni_model::{ClusterView, HistoryLine, Lsn, Member};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Patroni's `parse_bool` truthiness for config flags that humans write in YAML.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "on" | "true" | "yes" | "1"),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

fn config(view: &ClusterView) -> Option<&Value> {
    view.config.as_ref().map(|c| &c.value)
}

pub fn is_paused(view: &ClusterView) -> bool {
    truthy(config(view).and_then(|c| c.get("pause")))
}

/// A `standby_cluster` section counts only if it names a source (host, port or restore_command).
pub fn is_standby_cluster(view: &ClusterView) -> bool {
    let Some(sc) = config(view)
        .and_then(|c| c.get("standby_cluster"))
        .and_then(Value::as_object)
    else {
        return false;
    };
    ["host", "port", "restore_command"].iter().any(|k| match sc.get(*k) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::Bool(b)) => *b,
        Some(_) => true,
    })
}

/// `Some("sync_standby")` in synchronous mode, `Some("quorum_standby")` in quorum commit mode.
pub(crate) fn synchronous_mode(view: &ClusterView) -> Option<&'static str> {
    if is_standby_cluster(view) {
        return None;
    }
    let mode = config(view).and_then(|c| c.get("synchronous_mode"));
    if mode
        .and_then(Value::as_str)
        .is_some_and(|m| m.eq_ignore_ascii_case("quorum"))
    {
        Some("quorum_standby")
    } else if truthy(mode) {
        Some("sync_standby")
    } else {
        None
    }
}

/// The `sync` key lists synchronous standbys as `"a,b"`.
pub(crate) fn in_sync_key(view: &ClusterView, name: &str) -> bool {
    let Some(list) = view
        .sync
        .as_ref()
        .and_then(|s| s.value.get("sync_standby"))
        .and_then(Value::as_str)
    else {
        return false;
    };
    list.split(',').any(|m| m.trim().eq_ignore_ascii_case(name))
}

/// Host and port of a `postgres://[user@]host[:port]/db` URL; the port only when written.
fn conn_host_port(url: &str) -> Option<(String, Option<u16>)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit('@').next()?;
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        return Some((host.to_string(), after.strip_prefix(':').and_then(|p| p.parse().ok())));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some((h.to_string(), p.parse().ok())),
        _ if !hostport.is_empty() => Some((hostport.to_string(), None)),
        _ => None,
    }
}

#[derive(Serialize)]
struct Positions {
    receive_lsn: Value,
    receive_lag: Value,
    replay_lsn: Value,
    replay_lag: Value,
    lsn: Value,
    lag: Value,
}

#[derive(Serialize)]
struct MemberJson<'a> {
    name: &'a str,
    role: &'static str,
    state: &'a str,
    api_url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeline: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_restart: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_restart_reason: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_restart: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'a Map<String, Value>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    positions: Option<Positions>,
}

#[derive(Serialize)]
struct ClusterJson<'a> {
    members: Vec<MemberJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pause: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_switchover: Option<Value>,
    scope: &'a str,
}

/// `(lsn, lag)` of one position against the cluster's last known leader position.
fn position(lsn: Option<u64>, cluster_lsn: u64) -> (Value, Value) {
    match lsn {
        None | Some(0) => (json!("unknown"), json!("unknown")),
        Some(l) => (json!(Lsn(l).to_string()), json!(cluster_lsn.saturating_sub(l))),
    }
}

fn member_json<'a>(
    view: &ClusterView,
    m: &'a Member,
    standby: bool,
    sync_role: Option<&'static str>,
) -> MemberJson<'a> {
    let is_leader = view.leader_name() == Some(m.name.as_str());
    let role = if is_leader {
        if standby { "standby_leader" } else { "leader" }
    } else {
        sync_role.filter(|_| in_sync_key(view, &m.name)).unwrap_or("replica")
    };
    let d = &m.data;
    // Patroni shows a replica's replication state (`streaming`) in place of `running`.
    let state = match d.replication_state.as_deref() {
        Some(rs) if role != "leader" && !rs.is_empty() => rs,
        _ => d.state.as_str(),
    };
    let (host, port) = conn_host_port(&d.conn_url).map_or((None, None), |(h, p)| (Some(h), p));
    let positions = (!is_leader).then(|| {
        let optime = view.optime();
        let (receive_lsn, receive_lag) = position(d.receive_lsn, optime);
        let (replay_lsn, replay_lag) = position(d.replay_lsn, optime);
        let (lsn, lag) = position(d.xlog_location, optime);
        Positions {
            receive_lsn,
            receive_lag,
            replay_lsn,
            replay_lag,
            lsn,
            lag,
        }
    });
    MemberJson {
        name: &m.name,
        role,
        state,
        api_url: &d.api_url,
        host,
        port,
        timeline: d.timeline,
        pending_restart: d.pending_restart,
        pending_restart_reason: d.extra.get("pending_restart_reason"),
        scheduled_restart: d.extra.get("scheduled_restart"),
        tags: (!d.tags.is_empty()).then_some(&d.tags),
        positions,
    }
}

/// Patroni's `cluster_as_json` plus `scope`.
pub fn cluster_json(view: &ClusterView, scope: &str) -> Value {
    let standby = is_standby_cluster(view);
    let sync_role = synchronous_mode(view);
    let mut members: Vec<&Member> = view.members.iter().collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let scheduled_switchover = view.failover.as_ref().and_then(|f| {
        let at = f.value.scheduled_at.as_deref()?;
        let mut s = Map::new();
        s.insert("at".into(), json!(at));
        if let Some(from) = &f.value.leader {
            s.insert("from".into(), json!(from));
        }
        if let Some(to) = &f.value.member {
            s.insert("to".into(), json!(to));
        }
        Some(Value::Object(s))
    });
    let out = ClusterJson {
        members: members
            .into_iter()
            .map(|m| member_json(view, m, standby, sync_role))
            .collect(),
        pause: is_paused(view).then_some(true),
        scheduled_switchover,
        scope,
    };
    serde_json::to_value(out).unwrap_or(Value::Null)
}

/// `/history`: `[timeline, lsn, reason, timestamp, new_leader]` lines, trailing unknowns left out
/// as in Patroni's older three-element lines.
pub fn history_json(view: &ClusterView) -> Value {
    let lines = view.history.as_deref().unwrap_or_default();
    Value::Array(lines.iter().map(history_line).collect())
}

fn history_line(l: &HistoryLine) -> Value {
    let mut v = vec![json!(l.0), json!(l.1), json!(l.2)];
    match (&l.3, &l.4) {
        (ts, Some(leader)) => {
            v.push(json!(ts));
            v.push(json!(leader));
        }
        (Some(ts), None) => v.push(json!(ts)),
        (None, None) => {}
    }
    Value::Array(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroni_model::{Failover, LeaderKey, MemberData, Status, Versioned};

    fn member(name: &str, f: impl FnOnce(&mut MemberData)) -> Member {
        let mut data = MemberData {
            conn_url: format!("postgres://10.0.0.{}:5432/postgres", name.len()),
            api_url: format!("http://{name}:8008/patroni"),
            state: "running".into(),
            role: "replica".into(),
            version: "0.1.0".into(),
            ..Default::default()
        };
        f(&mut data);
        Member {
            name: name.into(),
            data,
        }
    }

    fn view() -> ClusterView {
        ClusterView {
            initialize: Some("7268616322854375442".into()),
            config: Some(Versioned {
                version: 3,
                value: json!({"ttl": 30}),
            }),
            leader: Some(LeaderKey {
                name: "pg1".into(),
                version: 7,
                lease: 1,
            }),
            members: vec![
                member("pg3", |d| {
                    d.replication_state = Some("streaming".into());
                    d.receive_lsn = Some(0x300_0000);
                    d.replay_lsn = Some(0x2F0_0000);
                    d.xlog_location = Some(0x2F0_0000);
                    d.timeline = Some(2);
                }),
                member("pg1", |d| {
                    d.role = "primary".into();
                    d.xlog_location = Some(0x300_0000);
                    d.timeline = Some(2);
                    d.tags.insert("nofailover".into(), json!(false));
                    d.pending_restart = Some(true);
                }),
                member("pg2", |d| {
                    d.state = "creating replica".into();
                    d.conn_url = "postgres://replicator@[fe80::1]/postgres".into();
                }),
            ],
            status: Some(Status {
                optime: 0x300_0000,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn members_roles_and_positions() {
        let v = cluster_json(&view(), "batman");
        assert_eq!(v["scope"], "batman");
        assert!(v.get("pause").is_none());
        let m = v["members"].as_array().unwrap();
        let names: Vec<_> = m.iter().map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["pg1", "pg2", "pg3"]);

        assert_eq!(
            m[0],
            json!({"name": "pg1", "role": "leader", "state": "running", "api_url": "http://pg1:8008/patroni",
                   "host": "10.0.0.3", "port": 5432, "timeline": 2, "pending_restart": true,
                   "tags": {"nofailover": false}})
        );
        assert_eq!(m[1]["role"], "replica");
        assert_eq!(m[1]["state"], "creating replica");
        assert_eq!(m[1]["host"], "fe80::1");
        assert!(m[1].get("port").is_none());
        assert_eq!(m[1]["lag"], "unknown");
        assert_eq!(m[1]["receive_lsn"], "unknown");
        assert_eq!(m[2]["state"], "streaming");
        assert_eq!(m[2]["receive_lsn"], "0/3000000");
        assert_eq!(m[2]["receive_lag"], 0);
        assert_eq!(m[2]["replay_lsn"], "0/2F00000");
        assert_eq!(m[2]["replay_lag"], 0x10_0000);
        assert_eq!(m[2]["lag"], 0x10_0000);
    }

    #[test]
    fn standby_cluster_pause_sync_and_switchover() {
        let mut v = view();
        v.config = Some(Versioned {
            version: 4,
            value: json!({"pause": "on", "standby_cluster": {"host": "remote", "port": 5432}}),
        });
        v.failover = Some(Versioned {
            version: 1,
            value: Failover {
                leader: Some("pg1".into()),
                member: Some("pg3".into()),
                scheduled_at: Some("2030-01-01T00:00:00+00:00".into()),
            },
        });
        let j = cluster_json(&v, "batman");
        assert_eq!(j["members"][0]["role"], "standby_leader");
        assert_eq!(j["pause"], true);
        assert_eq!(
            j["scheduled_switchover"],
            json!({"at": "2030-01-01T00:00:00+00:00", "from": "pg1", "to": "pg3"})
        );

        let mut v = view();
        v.config = Some(Versioned {
            version: 1,
            value: json!({"synchronous_mode": true}),
        });
        v.sync = Some(Versioned {
            version: 1,
            value: json!({"leader": "pg1", "sync_standby": "PG3"}),
        });
        let j = cluster_json(&v, "batman");
        assert_eq!(j["members"][2]["role"], "sync_standby");
        assert_eq!(j["members"][1]["role"], "replica");
        v.config = Some(Versioned {
            version: 2,
            value: json!({"synchronous_mode": "quorum"}),
        });
        assert_eq!(cluster_json(&v, "b")["members"][2]["role"], "quorum_standby");

        // An unlocked cluster has no leader entry.
        let mut v = view();
        v.leader = None;
        let j = cluster_json(&v, "batman");
        assert!(j["members"].as_array().unwrap().iter().all(|m| m["role"] == "replica"));
    }

    #[test]
    fn standby_cluster_detection() {
        let with = |c: Value| ClusterView {
            config: Some(Versioned { version: 1, value: c }),
            ..Default::default()
        };
        assert!(is_standby_cluster(&with(json!({"standby_cluster": {"host": "h"}}))));
        assert!(is_standby_cluster(&with(
            json!({"standby_cluster": {"restore_command": "cp"}})
        )));
        assert!(!is_standby_cluster(&with(
            json!({"standby_cluster": {"primary_slot_name": "s"}})
        )));
        assert!(!is_standby_cluster(&with(json!({"standby_cluster": null}))));
        assert!(!is_standby_cluster(&ClusterView::default()));
    }

    #[test]
    fn conn_urls() {
        assert_eq!(
            conn_host_port("postgres://h:5433/postgres"),
            Some(("h".into(), Some(5433)))
        );
        assert_eq!(conn_host_port("postgres://u:pw@h/db"), Some(("h".into(), None)));
        assert_eq!(
            conn_host_port("postgres://[::1]:6432/db"),
            Some(("::1".into(), Some(6432)))
        );
        assert_eq!(conn_host_port("garbage"), None);
    }

    #[test]
    fn history_lines() {
        assert_eq!(history_json(&ClusterView::default()), json!([]));
        let v = ClusterView {
            history: Some(vec![
                HistoryLine(1, 100, "no recovery target specified".into(), None, None),
                HistoryLine(
                    2,
                    200,
                    "switchover".into(),
                    Some("2024-05-01T10:00:00+00:00".into()),
                    Some("pg2".into()),
                ),
            ]),
            ..Default::default()
        };
        assert_eq!(
            history_json(&v),
            json!([
                [1, 100, "no recovery target specified"],
                [2, 200, "switchover", "2024-05-01T10:00:00+00:00", "pg2"]
            ])
        );
    }
}
