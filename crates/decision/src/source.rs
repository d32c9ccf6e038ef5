//! Which member to clone from and which to stream from.

use crate::action::Upstream;
use crate::observation::Observation;
use ferroni_model::{ClusterView, Member};

pub(crate) fn upstream(member: &Member) -> Option<Upstream> {
    if member.data.conn_url.is_empty() {
        return None;
    }
    Some(Upstream {
        name: member.name.clone(),
        conn_url: member.data.conn_url.clone(),
    })
}

fn is_running(member: &Member) -> bool {
    member.data.state == "running"
}

/// Patroni's `get_clone_member`, made deterministic: among running members tagged `clonefrom` on the
/// leader's timeline, the one with the least lag; otherwise the leader.
pub(crate) fn clone_source(obs: &Observation, cluster: &ClusterView) -> Option<Upstream> {
    let leader = cluster.leader_member();
    let timeline = leader.and_then(|l| l.data.timeline);
    let position = |m: &Member| {
        m.data
            .xlog_location
            .or(m.data.replay_lsn)
            .or(m.data.receive_lsn)
            .unwrap_or(0)
    };
    let best = cluster
        .members
        .iter()
        .filter(|m| m.name != obs.name() && m.data.tag_bool("clonefrom") && is_running(m))
        .filter(|m| timeline.is_none() || m.data.timeline == timeline)
        .filter(|m| !m.data.conn_url.is_empty())
        .max_by(|a, b| position(a).cmp(&position(b)).then_with(|| b.name.cmp(&a.name)));
    best.or(leader).and_then(upstream)
}

/// The member a replica streams from: its `replicatefrom` member while that one runs, else the leader.
pub(crate) fn follow_target(obs: &Observation, cluster: &ClusterView, leader: &str) -> Option<Upstream> {
    if let Some(name) = obs.config.tags.replicatefrom.as_deref()
        && name != obs.name()
        && let Some(m) = cluster.member(name).filter(|m| is_running(m))
        && let Some(u) = upstream(m)
    {
        return Some(u);
    }
    cluster.member(leader).and_then(upstream)
}

/// Whether the running server's `primary_conninfo` points at `target` (`host:port` or conninfo).
pub(crate) fn streams_from(current: Option<&str>, target: &Upstream) -> bool {
    let Some(current) = current else { return false };
    let Some((host, port)) = host_port(&target.conn_url) else {
        return false;
    };
    let compact = current.replace(' ', "");
    compact == format!("{host}:{port}")
        || (compact.contains(&format!("host={host}")) && compact.contains(&format!("port={port}")))
}

fn host_port(conn_url: &str) -> Option<(String, u16)> {
    let rest = conn_url.split_once("://")?.1;
    let hostport = rest.split('/').next()?.rsplit('@').next()?;
    match hostport.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((hostport.to_string(), 5432)),
    }
}
