//! Whether this node is the best candidate to become the leader (Patroni's `is_healthiest_node`):
//! eligible by its tags, close enough to the last known leader position, on the cluster's timeline,
//! and not behind any other eligible member that answered.

use crate::observation::Observation;
use ferroni_model::ClusterView;

/// `Ok(())` when this node should try to take the lock; `Err(reason)` otherwise.
pub fn is_healthiest(obs: &Observation, cluster: &ClusterView, my_lsn: u64, my_timeline: u32) -> Result<(), String> {
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
    for peer in obs
        .peers
        .iter()
        .flatten()
        .filter(|p| p.name != obs.name() && p.reachable)
    {
        if peer.running && peer.role == Some(ferroni_model::Role::Primary) {
            return Err(format!("{} is still running as primary", peer.name));
        }
        let eligible = !peer.nofailover && peer.failover_priority > 0;
        if !eligible {
            continue;
        }
        if peer.timeline > my_timeline || (peer.timeline == my_timeline && peer.lsn > my_lsn) {
            return Err(format!("{} is ahead of me", peer.name));
        }
        if peer.lsn == my_lsn && peer.timeline == my_timeline && peer.failover_priority > my_priority {
            return Err(format!("{} has a higher failover_priority", peer.name));
        }
    }
    Ok(())
}
