//! A cluster member as Patroni publishes it in `members/<name>`: a JSON object whose known fields
//! are typed here and whose unknown fields survive a read-modify-write untouched.

use crate::config::Config;
use crate::pgstate::{PgRole, PgState};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `role` field of a member key and of `/patroni`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Replica,
    StandbyLeader,
    Uninitialized,
    Demoted,
    Promoted,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::StandbyLeader => "standby_leader",
            Role::Uninitialized => "uninitialized",
            Role::Demoted => "demoted",
            Role::Promoted => "promoted",
        }
    }

    /// Reads Patroni's spellings, including the legacy `master`.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "primary" | "master" => Role::Primary,
            "replica" => Role::Replica,
            "standby_leader" => Role::StandbyLeader,
            "uninitialized" => Role::Uninitialized,
            "demoted" => Role::Demoted,
            "promoted" => Role::Promoted,
            _ => return None,
        })
    }
}

/// The JSON value of `members/<name>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MemberData {
    #[serde(default)]
    pub conn_url: String,
    #[serde(default)]
    pub api_url: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub tags: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xlog_location: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_lsn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_lsn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_restart: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<bool>,
    /// Fields written by other Patroni versions or by ferroni extensions (progress, last error).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MemberData {
    /// What a node publishes about itself: its addresses, state, role, version, tags, and its WAL
    /// positions and timeline while Postgres runs.
    pub fn describe(cfg: &Config, pg: &PgState, role: Role, state: &str) -> MemberData {
        let mut m = MemberData {
            conn_url: format!("postgres://{}/postgres", cfg.postgresql.connect_address),
            api_url: format!("{}://{}/patroni", cfg.restapi.scheme(), cfg.restapi.connect_address),
            state: state.to_string(),
            role: role.as_str().to_string(),
            version: crate::VERSION.to_string(),
            tags: cfg.tags.all.clone(),
            ..Default::default()
        };
        if let PgState::Running {
            role: pg_role,
            timeline,
            lsn,
            replication,
            ..
        } = pg
        {
            m.timeline = Some(*timeline);
            match pg_role {
                PgRole::Primary => m.xlog_location = Some(lsn.0),
                PgRole::Replica => {
                    let r = replication.clone().unwrap_or_default();
                    m.replay_lsn = Some(r.replayed.unwrap_or(*lsn).0);
                    m.receive_lsn = r.received.map(|l| l.0);
                    m.xlog_location = Some(r.received.unwrap_or(*lsn).0.max(lsn.0));
                    m.replication_state = Some(
                        if r.streaming {
                            "streaming"
                        } else {
                            "in archive recovery"
                        }
                        .to_string(),
                    );
                }
            }
        }
        m
    }

    /// Patroni also accepts a bare `postgres://...` string as a member value.
    pub fn from_json(raw: &str) -> MemberData {
        match serde_json::from_str::<MemberData>(raw) {
            Ok(m) => m,
            Err(_) if raw.starts_with("postgres") => MemberData {
                conn_url: raw.to_string(),
                ..Default::default()
            },
            Err(_) => MemberData::default(),
        }
    }

    pub fn role(&self) -> Option<Role> {
        Role::parse(&self.role)
    }

    pub fn tag_bool(&self, tag: &str) -> bool {
        match self.tags.get(tag) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1"),
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0) != 0,
            _ => false,
        }
    }

    pub fn tag_str(&self, tag: &str) -> Option<&str> {
        self.tags.get(tag).and_then(Value::as_str)
    }

    /// `failover_priority` tag, 1 when absent, as in Patroni.
    pub fn failover_priority(&self) -> i64 {
        match self.tags.get("failover_priority") {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(1),
            Some(Value::String(s)) => s.parse().unwrap_or(1),
            _ => 1,
        }
    }

    /// Host and port from `conn_url` (`postgres://host:port/db`).
    pub fn host_port(&self) -> Option<(String, u16)> {
        let rest = self.conn_url.split_once("://")?.1;
        let hostport = rest.split('/').next()?;
        let hostport = hostport.rsplit('@').next()?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (hostport, 5432),
        };
        Some((host.to_string(), port))
    }
}

/// One member of the cluster as read from the DCS.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub data: MemberData,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_unknown_fields() {
        let raw = r#"{"conn_url":"postgres://10.0.0.1:5433/postgres","api_url":"http://10.0.0.1:8008/patroni","state":"running","role":"master","version":"4.1.4","tags":{"nofailover":"yes"},"xlog_location":100,"proxy_url":"x"}"#;
        let m = MemberData::from_json(raw);
        assert_eq!(m.role(), Some(Role::Primary));
        assert_eq!(m.host_port(), Some(("10.0.0.1".into(), 5433)));
        assert!(m.tag_bool("nofailover"));
        assert_eq!(m.extra.get("proxy_url"), Some(&Value::String("x".into())));
        let back: Value = serde_json::to_value(&m).unwrap();
        assert_eq!(back["proxy_url"], "x");
    }

    #[test]
    fn legacy_plain_conn_url() {
        let m = MemberData::from_json("postgres://h:5432/postgres");
        assert_eq!(m.conn_url, "postgres://h:5432/postgres");
    }
}

/// Patroni's replication slot name for a member: lower case, every character other than `a-z`,
/// `0-9` and `_` replaced by `_`, at most 63 bytes (PostgreSQL's limit).
pub fn slot_name(member: &str) -> String {
    let mut s: String = member
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(63);
    s
}

#[cfg(test)]
mod slot_tests {
    #[test]
    fn patroni_slot_names() {
        assert_eq!(super::slot_name("pg-node.1"), "pg_node_1");
        assert_eq!(super::slot_name("Node_A"), "node_a");
        assert_eq!(super::slot_name(&"x".repeat(80)).len(), 63);
    }
}
