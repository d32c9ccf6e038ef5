//! Rules for a node whose data exists but whose Postgres is not running (stopped, crashed or still
//! starting): start it in the role the leader lock gives it.

use crate::action::{Action, Decision, LongAction};
use crate::observation::{Observation, Outcome};
use crate::source;
use ferroni_model::{ClusterView, PgState, Role};

pub(crate) fn not_running(obs: &Observation, cluster: &ClusterView) -> Decision {
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
    if obs.holds_lock() {
        return start_as_lock_holder(obs, *clean_shutdown);
    }
    if let Some(leader) = obs.other_leader() {
        let upstream = source::follow_target(obs, cluster, leader);
        return Decision::new("starting as a secondary", Role::Replica)
            .with(Action::Start(LongAction::StartReplica { upstream }));
    }
    if !standby && is_alone(obs, cluster) && !obs.config.tags.nofailover {
        return start_alone(obs);
    }
    // Without a leader a replica starts read-only and joins the election once it runs; so does a
    // former primary that has peers, because only a running server can compare its position.
    Decision::new("starting as a secondary (no leader yet)", Role::Replica)
        .with(Action::Start(LongAction::StartReplica { upstream: None }))
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

fn start_as_lock_holder(obs: &Observation, clean: bool) -> Decision {
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
        Some(Outcome::LeaderRefreshed | Outcome::LeaderAcquired) => {
            let why = if clean {
                "starting primary"
            } else {
                "starting primary after failure"
            };
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
