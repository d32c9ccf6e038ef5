//! Rules for a node whose data exists but whose Postgres is not running (stopped, crashed or still
//! starting): start it in the role the leader lock gives it.

use crate::action::{Action, Decision, LongAction};
use crate::memory::Memory;
use crate::observation::{Observation, Outcome};
use crate::source;
use ferroni_model::{ClusterView, PgState, Role};

pub(crate) fn not_running(obs: &Observation, cluster: &ClusterView, mem: &mut Memory) -> Decision {
    if let PgState::Starting { .. } = obs.pg {
        return starting(obs);
    }
    let PgState::Stopped {
        clean_shutdown,
        standby,
        ..
    } = obs.pg
    else {
        return Decision::new("postgres state is unknown", Role::Replica);
    };
    if obs.dynamic.pause {
        let d = Decision::new("postgres is not running (paused: not starting it)", Role::Replica);
        return if obs.holds_lock() {
            d.with(Action::RefreshLeader)
        } else {
            d
        };
    }
    if obs.holds_lock() && mem.switchover_demote {
        mem.switchover_demote = false;
        // The candidate may not have received everything this primary wrote.
        mem.rewind_pending = true;
        return Decision::new("switchover: postgres stopped, releasing the leader lock", Role::Replica)
            .with(Action::ReleaseLeader)
            .with(Action::Start(LongAction::StartReplica { upstream: None }));
    }
    if obs.holds_lock() {
        return start_as_lock_holder(obs, cluster, *clean_shutdown, mem);
    }
    if let Some(leader) = obs.other_leader()
        && !standby
    {
        return rejoin(obs, cluster, leader, mem);
    }
    if let Some(leader) = obs.other_leader() {
        let upstream = source::follow_target(obs, cluster, leader);
        return Decision::new("starting as a secondary", Role::Replica)
            .with(Action::Start(LongAction::StartReplica { upstream }));
    }
    if !standby && is_alone(obs, cluster) && !obs.config.tags.nofailover && obs.dynamic.standby_cluster.is_none() {
        return start_alone(obs);
    }
    // Without a leader a replica starts read-only and joins the election once it runs; so does a
    // former primary that has peers, because only a running server can compare its position. If
    // another node wins, the former primary's data is checked with pg_rewind before it follows.
    if !standby {
        mem.rewind_pending = true;
    }
    Decision::new("starting as a secondary (no leader yet)", Role::Replica)
        .with(Action::Start(LongAction::StartReplica { upstream: None }))
}

/// After a failed rejoin a node waits this many TTLs before trying again.
const REJOIN_RETRY_TTLS: u64 = 2;

/// A former primary joins another leader: rewound first when pg_rewind is allowed, since it may
/// have written past the point where the new leader's timeline forked.
pub(crate) fn rejoin(obs: &Observation, cluster: &ClusterView, leader: &str, mem: &Memory) -> Decision {
    if let Some((at, why)) = &mem.rejoin_failed {
        let retry_in =
            (REJOIN_RETRY_TTLS * u64::from(obs.dynamic.ttl) * 1000).saturating_sub(obs.now_ms.saturating_sub(*at));
        if retry_in > 0 {
            return Decision::new(
                format!(
                    "not rejoining as a replica of {leader}: {why}; trying again in {} s (or reinitialize this member)",
                    retry_in.div_ceil(1000)
                ),
                Role::Replica,
            );
        }
    }
    let Some(upstream) = cluster.member(leader).and_then(source::upstream) else {
        return Decision::new(
            format!("waiting for leader {leader} to publish its address"),
            Role::Replica,
        );
    };
    // Until the new leader has promoted and checkpointed, its control file still shows the old
    // timeline and pg_rewind would see no divergence (Patroni asks the leader; we read its key).
    let leader_data = cluster.member(leader).map(|m| &m.data);
    let promoting = leader_data.is_some_and(|d| {
        !matches!(d.role.as_str(), "primary" | "master" | "standby_leader")
            || d.extra.get("checkpoint_after_promote") == Some(&serde_json::Value::Bool(false))
    });
    if rewind_allowed(obs) && promoting {
        return Decision::new(
            format!("waiting for leader {leader} to finish its promotion before pg_rewind"),
            Role::Replica,
        );
    }
    if rewind_allowed(obs) {
        return Decision::new(
            format!("former primary: rejoining {leader} (pg_rewind if needed)"),
            Role::Replica,
        )
        .with(Action::Start(LongAction::Rejoin { upstream }));
    }
    Decision::new("starting as a secondary", Role::Replica).with(Action::Start(LongAction::StartReplica {
        upstream: Some(upstream),
    }))
}

/// `use_pg_rewind` from the local `postgresql` section wins over the dynamic configuration.
pub(crate) fn rewind_allowed(obs: &Observation) -> bool {
    obs.config.postgresql.use_pg_rewind.unwrap_or(obs.dynamic.use_pg_rewind)
}

fn starting(obs: &Observation) -> Decision {
    if obs.holds_lock()
        && obs
            .outcome(&[
                Outcome::LeaderRefreshed,
                Outcome::LeaderRefreshFailed,
                Outcome::LeaderLost,
            ])
            .is_none()
    {
        return Decision::new("waiting for postgres to start (updating leader lock)", Role::Primary)
            .with(Action::RefreshLeader);
    }
    Decision::new("postgres is starting", Role::Replica)
}

fn start_as_lock_holder(obs: &Observation, cluster: &ClusterView, clean: bool, mem: &mut Memory) -> Decision {
    let lock_outcomes = [
        Outcome::LeaderAcquired,
        Outcome::LeaderRefreshed,
        Outcome::LeaderRefreshFailed,
        Outcome::LeaderLost,
    ];
    match obs.outcome(&lock_outcomes) {
        None => {
            Decision::new("updating leader lock before starting postgres", Role::Primary).with(Action::RefreshLeader)
        }
        Some(Outcome::LeaderRefreshed | Outcome::LeaderAcquired) if obs.dynamic.standby_cluster.is_some() => {
            let upstream = obs.dynamic.standby_cluster.as_ref().and_then(crate::standby::remote);
            Decision::new("starting as the standby leader", Role::StandbyLeader)
                .with(Action::Start(LongAction::StartReplica { upstream }))
        }
        Some(Outcome::LeaderRefreshed | Outcome::LeaderAcquired)
            if !clean && obs.dynamic.primary_start_timeout == 0 && failover_possible(obs, cluster) =>
        {
            // primary_start_timeout 0: a crashed primary hands over at once instead of recovering.
            Decision::new(
                "primary crashed and primary_start_timeout is 0: releasing the leader lock for a failover",
                Role::Replica,
            )
            .with(Action::ReleaseLeader)
        }
        Some(Outcome::LeaderRefreshed | Outcome::LeaderAcquired) => {
            let why = if clean {
                "starting primary"
            } else {
                "starting primary after failure"
            };
            mem.primary_start_at = Some(obs.now_ms);
            Decision::new(why, Role::Primary).with(Action::Start(LongAction::StartPrimary))
        }
        Some(_) => Decision::new("lost the leader lock; starting as a secondary", Role::Replica)
            .with(Action::Start(LongAction::StartReplica { upstream: None })),
    }
}

/// A former primary with no other member in the DCS may take the lock before starting: nobody else
/// can have newer data, and starting read-only first would only cost a promotion and a timeline.
fn start_alone(obs: &Observation) -> Decision {
    match obs.outcome(&[Outcome::LeaderLost]) {
        None => Decision::new("no leader and no other member: acquiring the lock", Role::Replica)
            .with(Action::AcquireLeader),
        Some(_) => Decision::new("another node took the leader lock first", Role::Replica),
    }
}

fn is_alone(obs: &Observation, cluster: &ClusterView) -> bool {
    let timeline_ok = match obs.pg {
        PgState::Stopped { timeline, .. } => *timeline >= cluster.timeline(),
        _ => false,
    };
    timeline_ok && cluster.members.iter().all(|m| m.name == obs.name())
}

/// Whether another member could take over: a running replica that is not tagged nofailover.
pub(crate) fn failover_possible(obs: &Observation, cluster: &ClusterView) -> bool {
    cluster.members.iter().any(|m| {
        m.name != obs.name()
            && m.data.state == "running"
            && m.data.role == "replica"
            && !m.data.tag_bool("nofailover")
            && !m.data.conn_url.is_empty()
    })
}

/// A lock holder whose primary has been starting (crash recovery) for longer than
/// `primary_start_timeout` gives the lock up when another member can take over.
pub(crate) fn start_took_too_long(obs: &Observation, cluster: &ClusterView, mem: &Memory) -> Option<Decision> {
    let began = mem.primary_start_at?;
    let limit = u64::from(obs.dynamic.primary_start_timeout) * 1000;
    if !obs.holds_lock() || obs.now_ms.saturating_sub(began) <= limit || !failover_possible(obs, cluster) {
        return None;
    }
    Some(
        Decision::new(
            format!(
                "primary did not start within primary_start_timeout ({} s): stopping it and releasing the lock",
                obs.dynamic.primary_start_timeout
            ),
            Role::Replica,
        )
        .with(Action::AbortLongAction)
        .with(Action::ReleaseLeader)
        .with(Action::Start(LongAction::Stop {
            mode: crate::StopMode::Immediate,
        })),
    )
}
