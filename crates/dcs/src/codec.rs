//! Patroni's value formats: decoding one read of the cluster prefix into a [`ClusterView`] and
//! encoding the JSON values ferroni writes. Shared by every backend so that the in-memory store
//! parses exactly the bytes etcd would hold.
//!
//! Failure: decoding never fails. Like Patroni, a value that does not parse degrades to "empty"
//! (config `{}` at version 0, failover from the legacy `leader:candidate` form, history `[]`) instead
//! of hiding the rest of the cluster. Encoding fails only if serde_json does, reported as
//! [`DcsError::Failed`].

use crate::api::DcsError;
use crate::keys::Keys;
use ferroni_model::{ClusterView, Failover, HistoryLine, LeaderKey, Member, MemberData, Status, Versioned};
use serde::Serialize;
use serde_json::{Map, Value};

/// One key as a backend returned it.
pub(crate) struct RawKv<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub mod_revision: i64,
    pub lease: i64,
}

/// Compact JSON, the way Patroni writes every JSON value.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, DcsError> {
    serde_json::to_string(value).map_err(|e| DcsError::Failed(format!("cannot encode value as JSON: {e}")))
}

/// Builds the view from every key under the cluster prefix; keys of other clusters are ignored.
pub(crate) fn decode_cluster<'a>(keys: &Keys, kvs: impl IntoIterator<Item = RawKv<'a>>) -> ClusterView {
    let mut view = ClusterView::default();
    let mut legacy_optime = None;
    let members_dir = "members/";
    for kv in kvs {
        let key = String::from_utf8_lossy(kv.key);
        let Some(rest) = key.strip_prefix(keys.prefix()) else {
            continue;
        };
        let value = String::from_utf8_lossy(kv.value);
        match rest {
            "initialize" => view.initialize = Some(value.into_owned()),
            "config" => view.config = Some(decode_config(&value, kv.mod_revision)),
            "leader" => {
                view.leader = Some(LeaderKey {
                    name: value.into_owned(),
                    version: kv.mod_revision,
                    lease: kv.lease,
                })
            }
            "status" => view.status = decode_status(&value),
            "optime/leader" => legacy_optime = value.trim().parse::<u64>().ok(),
            "history" => view.history = Some(decode_history(&value)),
            "failover" => {
                view.failover = Some(Versioned {
                    version: kv.mod_revision,
                    value: decode_failover(&value),
                })
            }
            "sync" => {
                view.sync = Some(Versioned {
                    version: kv.mod_revision,
                    value: object_or_empty(&value),
                })
            }
            _ => {
                if let Some(name) = rest.strip_prefix(members_dir).filter(|n| !n.is_empty()) {
                    view.members.push(Member {
                        name: name.to_string(),
                        data: MemberData::from_json(&value),
                    });
                }
            }
        }
    }
    // Patroni < 2.1 published the leader position as a bare integer; `status` supersedes it.
    if view.status.is_none() {
        view.status = legacy_optime.map(|optime| Status {
            optime,
            ..Status::default()
        });
    }
    view
}

/// Invalid JSON counts as an empty config at version 0 (Patroni's `modify_version=0`), so a CAS write
/// can repair it; valid JSON that is not an object keeps its version but reads as empty.
fn decode_config(raw: &str, mod_revision: i64) -> Versioned<Value> {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => Versioned {
            version: mod_revision,
            value: Value::Object(map),
        },
        Ok(_) => Versioned {
            version: mod_revision,
            value: Value::Object(Map::new()),
        },
        Err(_) => Versioned {
            version: 0,
            value: Value::Object(Map::new()),
        },
    }
}

fn object_or_empty(raw: &str) -> Value {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => Value::Object(Map::new()),
    }
}

fn decode_status(raw: &str) -> Option<Status> {
    serde_json::from_str(raw).ok()
}

/// JSON object, or the legacy `leader:candidate` string Patroni still accepts.
fn decode_failover(raw: &str) -> Failover {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => {
            let field = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_string);
            Failover {
                leader: field("leader"),
                member: field("member"),
                scheduled_at: field("scheduled_at"),
            }
        }
        Ok(_) => Failover::default(),
        Err(_) if raw.trim().is_empty() => Failover::default(),
        Err(_) => {
            let mut parts = raw.splitn(2, ':').map(str::trim);
            let non_empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
            let leader = non_empty(parts.next());
            let member = non_empty(parts.next());
            Failover {
                leader,
                member,
                scheduled_at: None,
            }
        }
    }
}

/// Lines of `[timeline, lsn, reason, timestamp?, new_leader?]`; older Patroni versions wrote only the
/// first three or four elements, so the tail is optional. Lines that are not of this shape are dropped.
fn decode_history(raw: &str) -> Vec<HistoryLine> {
    let Ok(Value::Array(lines)) = serde_json::from_str::<Value>(raw) else {
        return Vec::new();
    };
    lines.iter().filter_map(history_line).collect()
}

fn history_line(line: &Value) -> Option<HistoryLine> {
    let items = line.as_array()?;
    let timeline = u32::try_from(items.first()?.as_u64()?).ok()?;
    let lsn = items.get(1)?.as_u64()?;
    let text = |i: usize| items.get(i).and_then(Value::as_str).map(str::to_string);
    Some(HistoryLine(
        timeline,
        lsn,
        text(2).unwrap_or_default(),
        text(3),
        text(4),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv<'a>(key: &'a str, value: &'a str, rev: i64) -> RawKv<'a> {
        RawKv {
            key: key.as_bytes(),
            value: value.as_bytes(),
            mod_revision: rev,
            lease: 0,
        }
    }

    fn view(kvs: Vec<RawKv<'_>>) -> ClusterView {
        decode_cluster(&Keys::new("/service", "b"), kvs)
    }

    #[test]
    fn decodes_patroni_values() {
        let v = view(vec![
            kv("/service/b/config", r#"{"ttl":30}"#, 5),
            RawKv {
                key: b"/service/b/leader",
                value: b"pg0",
                mod_revision: 7,
                lease: 42,
            },
            kv("/service/b/initialize", "7268616322854375442", 2),
            kv("/service/b/members/pg0", r#"{"role":"primary","state":"running"}"#, 8),
            kv("/service/b/status", r#"{"optime":100,"slots":{"pg1":90}}"#, 9),
            kv(
                "/service/b/history",
                r#"[[1,25165984,"no recovery target specified","2024-01-01T00:00:00+00:00","pg0"],[2,100,"x"]]"#,
                10,
            ),
            kv("/service/b/failover", r#"{"leader":"pg0","member":"pg1"}"#, 11),
            kv("/service/b/sync", r#"{"leader":"pg0","sync_standby":"pg1"}"#, 12),
            kv("/service/other/leader", "zz", 13),
        ]);
        assert_eq!(
            v.config,
            Some(Versioned {
                version: 5,
                value: serde_json::json!({"ttl":30})
            })
        );
        assert_eq!(
            v.leader,
            Some(LeaderKey {
                name: "pg0".into(),
                version: 7,
                lease: 42
            })
        );
        assert_eq!(v.sysid(), Some("7268616322854375442"));
        assert_eq!(v.leader_member().map(|m| m.data.role.as_str()), Some("primary"));
        assert_eq!(v.optime(), 100);
        assert_eq!(v.timeline(), 3);
        let history = v.history.expect("history");
        assert_eq!(history[1], HistoryLine(2, 100, "x".into(), None, None));
        let failover = v.failover.expect("failover");
        assert_eq!((failover.version, failover.value.member.as_deref()), (11, Some("pg1")));
        assert_eq!(v.sync.expect("sync").value["sync_standby"], "pg1");
        assert_eq!(v.members.len(), 1);
    }

    #[test]
    fn invalid_values_degrade_like_patroni() {
        let v = view(vec![
            kv("/service/b/config", "{not json", 5),
            kv("/service/b/failover", "pg0:pg1", 6),
            kv("/service/b/history", "garbage", 7),
            kv("/service/b/optime/leader", "12345", 8),
        ]);
        assert_eq!(
            v.config,
            Some(Versioned {
                version: 0,
                value: serde_json::json!({})
            })
        );
        assert_eq!(v.optime(), 12345);
        assert_eq!(v.history, Some(vec![]));
        let f = v.failover.expect("failover").value;
        assert_eq!((f.leader.as_deref(), f.member.as_deref()), (Some("pg0"), Some("pg1")));
    }

    #[test]
    fn legacy_failover_without_candidate() {
        let f = decode_failover("pg0");
        assert_eq!((f.leader.as_deref(), f.member), (Some("pg0"), None));
        assert_eq!(decode_failover(":pg1").member.as_deref(), Some("pg1"));
        assert!(decode_failover("").is_empty());
    }

    #[test]
    fn writes_compact_json() {
        let f = Failover {
            leader: Some("a".into()),
            member: Some("b".into()),
            scheduled_at: None,
        };
        assert_eq!(to_json(&f).expect("json"), r#"{"leader":"a","member":"b"}"#);
        let h = vec![HistoryLine(1, 2, "r".into(), Some("t".into()), Some("n".into()))];
        assert_eq!(to_json(&h).expect("json"), r#"[[1,2,"r","t","n"]]"#);
    }
}
