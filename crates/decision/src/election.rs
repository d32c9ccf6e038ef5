//! Whether this node is the best candidate to become the leader (Patroni's `is_healthiest_node`):
//! eligible by its tags, close enough to the last known leader position, on the cluster's timeline,
//! and not behind any other eligible member that answered.

use crate::observation::Observation;
use ferroni_model::ClusterView;

/// `Ok(())` when this node should try to take the lock; `Err(reason)` otherwise.
pub fn is_healthiest(obs: &Observation, cluster: &ClusterView, my_lsn: u64, my_timeline: u32) -> Result<(), String> {
    may_lead(obs, cluster, my_lsn, my_timeline)?;
    let my_priority = obs.config.tags.failover_priority.unwrap_or(1);
    let max_lag = obs.dynamic.maximum_lag_on_failover;
    for peer in obs
        .peers
        .iter()
        .flatten()
        .filter(|p| p.name != obs.name() && p.reachable)
    {
        if peer.running && peer.role == Some(ferroni_model::Role::Primary) {
            return Err(format!("{} is still running as primary", peer.name));
        }
        // Only a peer that could lead itself can stand in the way: one that is not allowed to, is
        // too far behind the last known leader position, or (with check_timeline) is on a timeline
        // behind the cluster's, must not block the election (it would wait for a leader that never
        // comes). Patroni lets such a peer block; a diverged former primary that cannot stream is
        // numerically ahead, and nobody would lead.
        let eligible = !peer.nofailover
            && peer.failover_priority > 0
            && cluster.optime().saturating_sub(peer.lsn) <= max_lag
            && !(obs.dynamic.check_timeline && peer.timeline < cluster.timeline());
        if !eligible {
            continue;
        }
        // Patroni compares WAL positions only; timelines decide nothing here (check_timeline does).
        if peer.lsn > my_lsn {
            return Err(format!("{} is ahead of me", peer.name));
        }
        if peer.lsn == my_lsn && peer.failover_priority > my_priority {
            return Err(format!("{} has a higher failover_priority", peer.name));
        }
    }
    Ok(())
}

/// The conditions this node must meet by itself to lead, whoever else answers: its tags, its lag
/// behind the last known leader position, and (with `check_timeline`) its timeline. A manual
/// failover's candidate must meet them too.
pub fn may_lead(obs: &Observation, cluster: &ClusterView, my_lsn: u64, my_timeline: u32) -> Result<(), String> {
    let tags = &obs.config.tags;
    if tags.nofailover {
        return Err("tagged nofailover".into());
    }
    let my_priority = tags.failover_priority.unwrap_or(1);
    if my_priority <= 0 {
        return Err(format!("failover_priority is {my_priority}"));
    }
    let lag = cluster.optime().saturating_sub(my_lsn);
    if lag > obs.dynamic.maximum_lag_on_failover {
        return Err(format!(
            "my lag of {lag} bytes exceeds maximum_lag_on_failover ({})",
            obs.dynamic.maximum_lag_on_failover
        ));
    }
    if obs.dynamic.check_timeline && my_timeline < cluster.timeline() {
        return Err(format!(
            "my timeline {my_timeline} is behind the cluster's {}",
            cluster.timeline()
        ));
    }
    Ok(())
}
