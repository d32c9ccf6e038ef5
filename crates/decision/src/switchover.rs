//! Manual switchover and failover through the `failover` key: the leader stops its Postgres
//! cleanly, then releases the lock; the named candidate (or the healthiest replica) takes it and
//! promotes; the others wait for the candidate instead of racing it.

use crate::action::{Action, Decision, LongAction, StopMode};
use crate::memory::Memory;
use crate::observation::Observation;
use ferroni_model::time::parse_rfc3339_ms;
use ferroni_model::{ClusterView, Failover, Member, Role};

/// A request the leader must act on now, or why not.
pub(crate) enum LeaderRequest {
    None,
    /// Stale or impossible: clear the key, with the reason.
    Clear(String),
    /// Scheduled for later.
    Wait(String),
    /// Demote for the switchover.
    Demote(String),
}

fn request(cluster: &ClusterView) -> Option<&Failover> {
    cluster.failover.as_ref().map(|f| &f.value).filter(|f| !f.is_empty())
}

fn healthy_candidate(m: &Member) -> bool {
    m.data.state == "running" && !m.data.tag_bool("nofailover") && !m.data.conn_url.is_empty()
}

/// Healthy, allowed to lead by its tags, within maximum_lag_on_failover of the last known leader
/// position, and (with check_timeline) not on a timeline behind the cluster's: what the candidate
/// checks itself before it takes the lock (`election::may_lead`).
fn eligible_candidate(obs: &Observation, cluster: &ClusterView, m: &Member) -> bool {
    let behind_timeline = obs.dynamic.check_timeline && m.data.timeline.is_some_and(|t| t < cluster.timeline());
    healthy_candidate(m)
        && m.data.failover_priority() > 0
        && cluster.optime().saturating_sub(position(m)) <= obs.dynamic.maximum_lag_on_failover
        && !behind_timeline
}

/// The member's last published WAL position.
fn position(m: &Member) -> u64 {
    let d = &m.data;
    d.xlog_location
        .unwrap_or(0)
        .max(d.receive_lsn.unwrap_or(0))
        .max(d.replay_lsn.unwrap_or(0))
}

/// What the lock holder should do about the `failover` key.
pub(crate) fn for_leader(obs: &Observation, cluster: &ClusterView) -> LeaderRequest {
    let Some(f) = request(cluster) else {
        return LeaderRequest::None;
    };
    let me = obs.name();
    if f.leader.as_deref().is_some_and(|l| l != me) {
        return LeaderRequest::Clear(format!(
            "manual failover: leader name {:?} does not match this leader ({me})",
            f.leader.as_deref().unwrap_or_default()
        ));
    }
    if let Some(at) = &f.scheduled_at {
        match parse_rfc3339_ms(at) {
            None => return LeaderRequest::Clear(format!("manual switchover: cannot parse scheduled_at {at:?}")),
            Some(t) if t > obs.wall_ms => return LeaderRequest::Wait(format!("awaiting scheduled switchover at {at}")),
            Some(_) => {}
        }
    }
    // Patroni's is_failover_possible: a candidate too far behind this leader would lose data.
    let my_lsn = match obs.pg {
        ferroni_model::PgState::Running { lsn, .. } => lsn.0,
        _ => cluster.optime(),
    };
    let max_lag = obs.dynamic.maximum_lag_on_failover;
    let lagging = |m: &Member| my_lsn.saturating_sub(position(m)) > max_lag;
    let candidates: Vec<&Member> = cluster
        .members
        .iter()
        .filter(|m| m.name != me && healthy_candidate(m) && !lagging(m))
        .collect();
    match f.member.as_deref() {
        Some(c) if c == me => LeaderRequest::Clear("manual failover: I am already the leader".into()),
        Some(c) if !candidates.iter().any(|m| m.name == c) => LeaderRequest::Clear(format!(
            "manual switchover: candidate {c} is not a healthy member within maximum_lag_on_failover; keeping the lock"
        )),
        Some(c) => LeaderRequest::Demote(format!("manual switchover: demoting myself in favour of {c}")),
        None if candidates.is_empty() => {
            LeaderRequest::Clear("manual switchover: no healthy member to switch over to; keeping the lock".into())
        }
        None => LeaderRequest::Demote("manual switchover: demoting myself".into()),
    }
}

/// The leader's reaction to a switchover request, after renewing its lock.
pub(crate) fn leader_switchover(obs: &Observation, cluster: &ClusterView, mem: &mut Memory) -> Option<Decision> {
    if obs.dynamic.pause {
        return None;
    }
    match for_leader(obs, cluster) {
        LeaderRequest::None => None,
        LeaderRequest::Clear(why) => Some(Decision::new(why, Role::Primary).with(Action::ClearFailover)),
        LeaderRequest::Wait(why) => Some(Decision::new(why, Role::Primary)),
        LeaderRequest::Demote(why) => {
            // Stop first (a clean shutdown hands the last WAL to the replicas), release after: at no
            // point can the candidate be writable while this node still is.
            mem.switchover_demote = true;
            Some(Decision::new(why, Role::Demoted).with(Action::Start(LongAction::Stop { mode: StopMode::Fast })))
        }
    }
}

/// For a node without a leader: `Some(true)` when a request names it (or names nobody and it may
/// take part), `Some(false)` when it must leave the lock to a healthy candidate, `None` without a
/// request.
pub(crate) fn may_take_lock(obs: &Observation, cluster: &ClusterView) -> Option<bool> {
    let f = request(cluster)?;
    if f.scheduled_at
        .as_deref()
        .and_then(parse_rfc3339_ms)
        .is_some_and(|t| t > obs.wall_ms)
    {
        return None;
    }
    match f.member.as_deref() {
        Some(c) if c == obs.name() => Some(true),
        // Defer only to a candidate that can lead: one that cannot would block every election.
        Some(c) => Some(!cluster.member(c).is_some_and(|m| eligible_candidate(obs, cluster, m))),
        None => None,
    }
}

/// Whether the request names this node as its candidate.
pub(crate) fn i_am_candidate(obs: &Observation, cluster: &ClusterView) -> bool {
    request(cluster).and_then(|f| f.member.as_deref()) == Some(obs.name())
}

/// Whether a request exists that the new leader should clear after taking over.
pub(crate) fn pending(cluster: &ClusterView) -> bool {
    request(cluster).is_some()
}
