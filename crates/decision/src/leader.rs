//! Rules for a node whose Postgres runs: keep the lock as a primary, follow the leader as a replica,
//! or run the election when nobody holds the lock. Never two writable primaries: a primary that
//! cannot prove it holds the lock demotes.

use crate::action::{Action, Decision, LongAction, StopMode};
use crate::election;
use crate::memory::Memory;
use crate::observation::{Observation, Outcome};
use crate::slots;
use crate::source;
use crate::standby;
use crate::switchover;
use ferroni_model::{ClusterView, PgState, Role};

const LOCK_OUTCOMES: [Outcome; 4] = [
    Outcome::LeaderAcquired,
    Outcome::LeaderLost,
    Outcome::LeaderRefreshed,
    Outcome::LeaderRefreshFailed,
];

pub(crate) fn running_primary(obs: &Observation, cluster: &ClusterView, mem: &mut Memory) -> Decision {
    let name = obs.name();
    match obs.outcome(&LOCK_OUTCOMES) {
        Some(Outcome::LeaderAcquired | Outcome::LeaderRefreshed) => {
            if let Some(sc) = standby::section(obs)
                && !obs.dynamic.pause
            {
                return standby::demote_cluster(sc);
            }
            return leader_duties(obs, cluster, mem);
        }
        Some(Outcome::LeaderRefreshFailed) if !obs.dynamic.pause => {
            return demote("demoting self because DCS is not accessible and I was a leader", None);
        }
        Some(Outcome::LeaderLost) if !obs.dynamic.pause => {
            let upstream = obs.other_leader().and_then(|l| source::follow_target(obs, cluster, l));
            return demote(
                "demoting self because I do not have the lock and I was a leader",
                upstream,
            );
        }
        Some(_) => return Decision::new("failed to update leader lock (paused: not demoting)", Role::Primary),
        None => {}
    }
    if obs.holds_lock() {
        return Decision::new(format!("updating leader lock of {name}"), Role::Primary).with(Action::RefreshLeader);
    }
    if let Some(leader) = obs.other_leader() {
        if obs.dynamic.pause {
            return Decision::new(
                format!("another node ({leader}) holds the lock (paused: not demoting)"),
                Role::Primary,
            );
        }
        let upstream = source::follow_target(obs, cluster, leader);
        return demote(
            "demoting self because I do not have the lock and I was a leader",
            upstream,
        );
    }
    // Nobody holds the lock and this node runs as primary: it is the natural candidate, unless the
    // cluster already moved to a newer timeline without it.
    let (_, timeline) = position(obs.pg);
    if timeline < cluster.timeline() && !obs.dynamic.pause {
        return demote("demoting self because my timeline is behind the cluster's", None);
    }
    Decision::new("acquiring session lock as a leader", Role::Primary).with(Action::AcquireLeader)
}

/// What the holder of the lock does once per cycle after renewing it.
fn leader_duties(obs: &Observation, cluster: &ClusterView, mem: &mut Memory) -> Decision {
    let name = obs.name();
    let acquired = obs.outcome(&[Outcome::LeaderAcquired]).is_some();
    let reason = if acquired {
        format!("acquired session lock as a leader. I am ({name}), the leader with the lock")
    } else {
        format!("no action. I am ({name}), the leader with the lock")
    };
    if let Some(d) = switchover::leader_switchover(obs, cluster, mem) {
        return d;
    }
    let mut d = Decision::new(reason, Role::Primary);
    let (optime, _) = position(obs.pg);
    if mem.last_written_optime != Some(optime) || cluster.optime() != optime {
        mem.last_written_optime = Some(optime);
        d.actions.push(Action::WriteStatus { optime });
    }
    if cluster.config.is_none() {
        d.actions.push(Action::WriteConfig(obs.config.bootstrap.dcs.clone()));
    }
    if cluster.sysid().is_none()
        && let Some(sysid) = obs.pg.sysid()
    {
        d.actions.push(Action::SetInitialize(sysid.to_string()));
    }
    if mem.history_pending {
        mem.history_pending = false;
        d.actions.push(Action::WriteHistory);
    }
    d.actions.extend(slots::sync_if_due(obs, cluster, mem));
    d
}

pub(crate) fn running_replica(obs: &Observation, cluster: &ClusterView, mem: &mut Memory) -> Decision {
    let name = obs.name();
    let outcome = obs.outcome(&LOCK_OUTCOMES);
    if obs.holds_lock() {
        if outcome.is_none() {
            return Decision::new("updating leader lock", Role::Replica).with(Action::RefreshLeader);
        }
        if let Some(sc) = standby::section(obs) {
            // A standby leader replicates from the remote and never promotes by itself.
            let mut d = standby::standby_leader(obs, sc);
            if d.actions.is_empty() {
                d.actions.extend(slots::sync_if_due(obs, cluster, mem));
            }
            return d;
        }
        if obs.dynamic.pause {
            return Decision::new(
                format!("I am ({name}) holding the lock as a replica (paused: not promoting)"),
                Role::Replica,
            );
        }
        let d = Decision::new("promoted self to leader by acquiring session lock", Role::Promoted)
            .with(Action::Start(LongAction::Promote));
        return if switchover::pending(cluster) {
            d.with(Action::ClearFailover)
        } else {
            d
        };
    }
    if let Some(leader) = obs.other_leader() {
        if mem.rewind_pending && crate::recovery::rewind_allowed(obs) {
            return crate::recovery::rejoin(obs, cluster, leader, mem);
        }
        return follow(obs, cluster, leader, mem);
    }
    if matches!(outcome, Some(Outcome::LeaderLost)) {
        return Decision::new(
            "lost the leader race; following the new leader next cycle",
            Role::Replica,
        );
    }
    election(obs, cluster)
}

fn follow(obs: &Observation, cluster: &ClusterView, leader: &str, mem: &mut Memory) -> Decision {
    let name = obs.name();
    let Some(target) = source::follow_target(obs, cluster, leader) else {
        return Decision::new(
            format!("following leader ({leader}), whose address is not published yet"),
            Role::Replica,
        );
    };
    let current = match obs.pg {
        PgState::Running {
            replication: Some(r), ..
        } => r.upstream.as_deref(),
        _ => None,
    };
    if source::streams_from(current, &target) || obs.dynamic.pause {
        let d = Decision::new(
            format!("no action. I am ({name}), a secondary, and following a leader ({leader})"),
            Role::Replica,
        );
        return match slots::sync_if_due(obs, cluster, mem) {
            Some(a) => d.with(a),
            None => d,
        };
    }
    Decision::new(
        format!("changing upstream to {} and following a leader ({leader})", target.name),
        Role::Replica,
    )
    .with(Action::Start(LongAction::Follow { upstream: Some(target) }))
}

fn election(obs: &Observation, cluster: &ClusterView) -> Decision {
    if obs.dynamic.pause {
        return Decision::new("no leader, but the cluster is paused: not promoting", Role::Replica);
    }
    match switchover::may_take_lock(obs, cluster) {
        Some(false) => {
            return Decision::new("following: a manual failover names another candidate", Role::Replica);
        }
        Some(true) if switchover::i_am_candidate(obs, cluster) => {
            // A named candidate skips the comparison with its peers, never its own eligibility.
            let (lsn, timeline) = position(obs.pg);
            if let Err(why) = election::may_lead(obs, cluster, lsn, timeline) {
                return Decision::new(
                    format!("manual failover: I am the candidate but cannot lead: {why}"),
                    Role::Replica,
                );
            }
            return Decision::new(
                "manual failover: I am the candidate, acquiring session lock",
                Role::Replica,
            )
            .with(Action::AcquireLeader);
        }
        _ => {}
    }
    let (lsn, timeline) = position(obs.pg);
    // Without peer answers only the local conditions are checked; a node that passes them asks the
    // others and decides again with their positions.
    match election::is_healthiest(obs, cluster, lsn, timeline) {
        Err(why) => Decision::new(
            format!("following a different leader because I am not the healthiest node: {why}"),
            Role::Replica,
        ),
        Ok(()) if obs.peers.is_none() => {
            Decision::new("no leader: asking the other members for their positions", Role::Replica)
                .with(Action::AskPeers)
        }
        Ok(()) => {
            Decision::new("acquiring session lock to become the leader", Role::Replica).with(Action::AcquireLeader)
        }
    }
}

fn position(pg: &PgState) -> (u64, u32) {
    match pg {
        PgState::Running {
            lsn,
            timeline,
            replication,
            ..
        } => {
            let received = replication.as_ref().and_then(|r| r.received).map(|l| l.0).unwrap_or(0);
            (lsn.0.max(received), *timeline)
        }
        PgState::Stopped { timeline, .. } => (0, *timeline),
        _ => (0, 0),
    }
}

fn demote(reason: &str, upstream: Option<crate::action::Upstream>) -> Decision {
    Decision::new(reason, Role::Demoted).with(Action::Start(LongAction::Demote {
        mode: StopMode::Immediate,
        upstream,
    }))
}
