//! Which physical replication slots a running member keeps: one per member that streams from it
//! (the leader serves everyone without a running `replicatefrom` member; a replica serves the members
//! that name it), plus, on the leader, the permanent physical slots of the dynamic configuration.

use crate::action::Action;
use crate::memory::Memory;
use crate::observation::Observation;
use ferroni_model::{ClusterView, Member, slot_name};
use serde_json::Value;
use std::collections::BTreeSet;

/// `None` when slots are not managed (`use_slots: false`, or the cluster is paused).
pub(crate) fn wanted(obs: &Observation, cluster: &ClusterView) -> Option<BTreeSet<String>> {
    if !obs.dynamic.use_slots || obs.dynamic.pause {
        return None;
    }
    let me = obs.name();
    let leader = obs.holds_lock();
    let mut slots: BTreeSet<String> = cluster
        .members
        .iter()
        .filter(|m| m.name != me && streams_from_me(cluster, m, me, leader))
        .map(|m| slot_name(&m.name))
        .collect();
    if leader {
        for (name, def) in &obs.dynamic.slots {
            let physical = def.get("type").and_then(Value::as_str).is_none_or(|t| t == "physical");
            if physical {
                slots.insert(name.clone());
            }
        }
    }
    slots.remove(&slot_name(me));
    Some(slots)
}

/// The member `m` cascades from, when it names a running one.
fn upstream_of<'a>(cluster: &'a ClusterView, m: &Member) -> Option<&'a str> {
    let name = m.data.tag_str("replicatefrom")?;
    let up = cluster
        .member(name)
        .filter(|u| u.name != m.name && u.data.state == "running")?;
    Some(up.name.as_str())
}

fn streams_from_me(cluster: &ClusterView, m: &Member, me: &str, leader: bool) -> bool {
    match upstream_of(cluster, m) {
        Some(up) => up == me,
        None => leader,
    }
}

/// How often unchanged slots are checked again (a slot dropped by hand comes back this fast).
const RESYNC_MS: u64 = 30_000;

/// `SyncSlots` when the wanted set changed since the last synchronisation or it is due again; an
/// idle cluster then does not query its slots every cycle.
pub(crate) fn sync_if_due(obs: &Observation, cluster: &ClusterView, mem: &mut Memory) -> Option<Action> {
    let wanted = wanted(obs, cluster)?;
    let due = match &mem.slots_synced {
        Some((at, last)) => *last != wanted || obs.now_ms.saturating_sub(*at) >= RESYNC_MS,
        None => true,
    };
    if !due {
        return None;
    }
    mem.slots_synced = Some((obs.now_ms, wanted.clone()));
    Some(Action::SyncSlots(wanted))
}
