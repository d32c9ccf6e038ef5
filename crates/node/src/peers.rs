//! Asks the other members' REST APIs for their status during an election, in parallel with a 2 s
//! timeout as Patroni does. A member that does not answer counts as unreachable, never as behind.

use ferroni_decision::PeerStatus;
use ferroni_model::{ClusterView, Lsn, Role};
use serde_json::Value;
use std::time::Duration;

const PEER_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn ask_peers(client: &reqwest::Client, cluster: &ClusterView, me: &str) -> Vec<PeerStatus> {
    let asks = cluster
        .members
        .iter()
        .filter(|m| m.name != me && !m.data.api_url.is_empty())
        .map(|m| ask(client.clone(), m.name.clone(), m.data.api_url.clone()));
    futures_join_all(asks).await
}

async fn ask(client: reqwest::Client, name: String, api_url: String) -> PeerStatus {
    let answer = async {
        let resp = client.get(&api_url).timeout(PEER_TIMEOUT).send().await.ok()?;
        resp.json::<Value>().await.ok()
    };
    match tokio::time::timeout(PEER_TIMEOUT, answer).await {
        Ok(Some(v)) => parse_status(name, &v),
        _ => PeerStatus {
            name,
            reachable: false,
            role: None,
            running: false,
            lsn: 0,
            timeline: 0,
            nofailover: false,
            failover_priority: 1,
        },
    }
}

/// Reads a `/patroni` answer (Patroni's or ferroni's) into what the election compares.
pub fn parse_status(name: String, v: &Value) -> PeerStatus {
    let role = v.get("role").and_then(Value::as_str).and_then(Role::parse);
    let xlog = v.get("xlog");
    let lsn_field = |k: &str| xlog.and_then(|x| x.get(k)).and_then(lsn_value).unwrap_or(0);
    let lsn = lsn_field("location")
        .max(lsn_field("received_location"))
        .max(lsn_field("replayed_location"));
    let tags = v.get("tags");
    let nofailover = tags.and_then(|t| t.get("nofailover")).is_some_and(truthy);
    let failover_priority = tags
        .and_then(|t| t.get("failover_priority"))
        .and_then(|p| p.as_i64().or_else(|| p.as_str()?.parse().ok()));
    PeerStatus {
        name,
        reachable: true,
        role,
        running: v.get("state").and_then(Value::as_str) == Some("running"),
        lsn,
        timeline: v.get("timeline").and_then(Value::as_u64).unwrap_or(0) as u32,
        nofailover,
        failover_priority: failover_priority.unwrap_or(if nofailover { 0 } else { 1 }),
    }
}

fn lsn_value(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.parse::<Lsn>().ok().map(|l| l.0))
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1"),
        Value::Number(n) => n.as_i64() != Some(0),
        _ => false,
    }
}

async fn futures_join_all<F: std::future::Future<Output = PeerStatus> + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<PeerStatus> {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(p) = h.await {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_patroni_status() {
        let v = json!({"state": "running", "role": "replica", "timeline": 3,
            "xlog": {"received_location": 500, "replayed_location": 400},
            "tags": {"nofailover": "yes"}});
        let p = parse_status("n1".into(), &v);
        assert!(p.reachable && p.running && p.nofailover);
        assert_eq!((p.lsn, p.timeline, p.role), (500, 3, Some(Role::Replica)));
        assert_eq!(p.failover_priority, 0);
    }

    #[test]
    fn primary_location() {
        let v = json!({"state": "running", "role": "primary", "timeline": 1, "xlog": {"location": 9000}});
        let p = parse_status("n0".into(), &v);
        assert_eq!((p.lsn, p.failover_priority), (9000, 1));
    }
}
