//! The entry point: picks the situation the node is in and hands over to that situation's rules.

use crate::action::{Action, Decision, LongAction};
use crate::memory::{BootstrapPhase, Memory};
use crate::observation::{ActionResult, ActionStatus, Observation, Outcome};
use crate::{bootstrap, leader, recovery, requests};
use ferroni_model::{ClusterView, PgRole, PgState, Role};

/// One HA decision. Called once per cycle, and again within the cycle after a guarded action
/// (see [`Action::is_guarded`]) with its outcome added to `obs.outcomes`.
pub fn decide(obs: &Observation, mem: &mut Memory) -> Decision {
    let d = decide_inner(obs, mem);
    remember_blind_demotion(d, mem)
}

/// A demoted primary may have written past the point where the new leader's timeline forked: it
/// checks its data with pg_rewind once that leader has finished promoting, before it follows.
fn remember_blind_demotion(d: Decision, mem: &mut Memory) -> Decision {
    if d.actions
        .iter()
        .any(|a| matches!(a, Action::Start(LongAction::Demote { .. })))
    {
        mem.rewind_pending = true;
    }
    d
}

fn decide_inner(obs: &Observation, mem: &mut Memory) -> Decision {
    let Some(cluster) = obs.cluster else {
        return dcs_unreachable(obs);
    };
    if let Some(finished) = &obs.finished
        && let Some(d) = after_long_action(obs, finished, mem)
    {
        return d;
    }
    if let Some(request) = obs.request
        && let Some(d) = requests::decide_request(obs, cluster, request)
    {
        return d;
    }
    let starting_primary = matches!(obs.action, ActionStatus::Running(LongAction::StartPrimary))
        || matches!(obs.pg, PgState::Starting { .. });
    if starting_primary && let Some(d) = recovery::start_took_too_long(obs, cluster, mem) {
        mem.primary_start_at = None;
        return d;
    }
    if let ActionStatus::Running(action) = &obs.action {
        return action_in_progress(obs, action);
    }
    if !obs.pg.has_data() {
        mem.rejoin_failed = None;
        // Nothing left that could have diverged: a new image follows without pg_rewind.
        mem.rewind_pending = false;
        return bootstrap::without_data(obs, cluster, mem);
    }
    if obs.pg.is_running() {
        mem.switchover_demote = false;
        mem.primary_start_at = None;
    }
    if obs.holds_lock() {
        mem.rewind_pending = false;
    }
    let adopt = match check_system_identifier(obs, cluster) {
        Identity::Matches => None,
        Identity::Adopt(sysid) => Some(sysid),
        Identity::Refuse(d) => return d,
    };
    let mut d = match obs.pg {
        PgState::Running {
            role: PgRole::Primary, ..
        } => leader::running_primary(obs, cluster, mem),
        PgState::Running {
            role: PgRole::Replica, ..
        } => leader::running_replica(obs, cluster, mem),
        _ => recovery::not_running(obs, cluster, mem),
    };
    if let Some(sysid) = adopt {
        d.actions.insert(0, Action::SetInitialize(sysid));
    }
    add_reload(obs, cluster, &mut d);
    d
}

/// After a change of the dynamic configuration, a running server gets its configuration rendered
/// again and reloaded, unless this decision already restarts, stops or reconfigures it.
fn add_reload(obs: &Observation, cluster: &ClusterView, d: &mut Decision) {
    let busy = d
        .actions
        .iter()
        .any(|a| matches!(a, Action::Start(_) | Action::Fatal(_) | Action::Reload { .. }));
    let guarded = d.actions.last().is_some_and(Action::is_guarded);
    if obs.config_changed
        && !busy
        && !guarded
        && !obs.dynamic.pause
        && let Some(reload) = requests::reload_action(obs, cluster)
    {
        d.actions.push(reload);
    }
}

/// The role this node's Postgres plays right now, for the member key.
pub(crate) fn current_role(obs: &Observation) -> Role {
    match obs.pg {
        PgState::Running {
            role: PgRole::Primary, ..
        } => Role::Primary,
        PgState::Running { .. } | PgState::Stopped { .. } | PgState::Starting { .. } => Role::Replica,
        PgState::NoData | PgState::InvalidData { .. } => Role::Uninitialized,
    }
}

fn dcs_unreachable(obs: &Observation) -> Decision {
    let role = current_role(obs);
    if role == Role::Primary && !obs.dynamic.pause {
        // Patroni's rule: without the DCS nobody can prove who holds the lock, and another node
        // may take it once our lease runs out, so a primary must stop accepting writes now.
        return Decision::new(
            "demoting self because DCS is not accessible and I was a leader",
            Role::Demoted,
        )
        .with(Action::Start(LongAction::Demote {
            // Patroni's "offline" demotion: a fast stop hands the last WAL to connected replicas.
            mode: crate::StopMode::Fast,
            upstream: None,
        }));
    }
    Decision::new("DCS is not accessible", role)
}

/// Turns the result of a finished background action into actions, or `None` to go on deciding.
fn after_long_action(obs: &Observation, finished: &ActionResult, mem: &mut Memory) -> Option<Decision> {
    match (&finished.action, &finished.result) {
        (LongAction::Bootstrap | LongAction::CreateReplica { .. }, _)
            if obs.outcome(&[Outcome::LeaderAcquired, Outcome::LeaderLost]).is_some() =>
        {
            None
        }
        (LongAction::Bootstrap, Ok(sysid)) => {
            mem.bootstrap = BootstrapPhase::None;
            mem.bootstrap_failed = None;
            mem.last_error = None;
            let sysid = sysid
                .clone()
                .unwrap_or_else(|| obs.pg.sysid().unwrap_or_default().to_string());
            let role = if obs.dynamic.standby_cluster.is_some() {
                Role::StandbyLeader
            } else {
                Role::Primary
            };
            Some(
                Decision::new("initialized a new cluster", role)
                    .with(Action::SetInitialize(sysid))
                    .with(Action::WriteConfig(obs.config.bootstrap.dcs.clone()))
                    .with(Action::AcquireLeader),
            )
        }
        (LongAction::Bootstrap, Err(e)) => {
            mem.bootstrap = BootstrapPhase::None;
            mem.bootstrap_failed = Some((obs.now_ms, e.clone()));
            mem.last_error = Some(format!("bootstrap failed: {e}"));
            Some(
                Decision::new(
                    format!("bootstrap failed: {e}; removed the initialize key so that another node can bootstrap"),
                    Role::Uninitialized,
                )
                .with(Action::CancelInitialize),
            )
        }
        (LongAction::CreateReplica { .. }, _) if mem.bootstrap == BootstrapPhase::Running => {
            // The standby leader's imaging from the remote is this cluster's bootstrap.
            let result = finished
                .result
                .clone()
                .map(|_| Some(obs.pg.sysid().unwrap_or_default().to_string()));
            let as_bootstrap = ActionResult {
                action: LongAction::Bootstrap,
                result,
            };
            after_long_action(obs, &as_bootstrap, mem)
        }
        (LongAction::CreateReplica { .. }, Err(e)) => {
            mem.clone_failures += 1;
            mem.last_error = Some(format!("failed to create replica: {e}"));
            Some(Decision::new(
                format!("failed to create a replica ({e}); trying again in the next cycle"),
                Role::Uninitialized,
            ))
        }
        (LongAction::Promote, Ok(_)) => {
            mem.history_pending = true;
            None
        }
        (LongAction::Rejoin { .. }, Ok(_)) => {
            mem.rewind_pending = false;
            None
        }
        (LongAction::Rejoin { .. }, Err(e)) => {
            mem.rejoin_failed = Some((obs.now_ms, e.clone()));
            mem.last_error = Some(format!("rejoin failed: {e}"));
            None
        }
        (LongAction::CreateReplica { .. }, Ok(_)) => {
            mem.clone_failures = 0;
            mem.last_error = None;
            None
        }
        (action, Err(e)) => {
            mem.last_error = Some(format!("{} failed: {e}", action.name()));
            None
        }
        (_, Ok(_)) => None,
    }
}

fn action_in_progress(obs: &Observation, action: &LongAction) -> Decision {
    let role = current_role(obs);
    if obs.holds_lock() {
        return match obs.outcome(&[
            Outcome::LeaderRefreshed,
            Outcome::LeaderLost,
            Outcome::LeaderRefreshFailed,
        ]) {
            None => Decision::new(format!("updating leader lock during {}", action.name()), role)
                .with(Action::RefreshLeader),
            Some(Outcome::LeaderRefreshed) => {
                Decision::new(format!("updated leader lock during {}", action.name()), role)
            }
            Some(_) => Decision::new(format!("failed to update leader lock during {}", action.name()), role),
        };
    }
    let what = match action {
        LongAction::Bootstrap => "bootstrap".to_string(),
        LongAction::CreateReplica { source: Some(s), .. } => format!("replica creation from {}", s.name),
        other => other.name().to_string(),
    };
    Decision::new(format!("{what} in progress"), role)
}

enum Identity {
    Matches,
    Adopt(String),
    Refuse(Decision),
}

fn check_system_identifier(obs: &Observation, cluster: &ClusterView) -> Identity {
    let local = obs.pg.sysid().unwrap_or_default();
    let data_dir = obs.config.postgresql.data_dir.display();
    match cluster.initialize.as_deref() {
        Some(expected) if !expected.is_empty() => {
            if expected == local {
                return Identity::Matches;
            }
            Identity::Refuse(
                Decision::new("system identifier mismatch", current_role(obs)).with(Action::Fatal(format!(
                    "system identifier mismatch: the cluster's initialize key holds {expected}, but the data \
                     directory {data_dir} has {local}; refusing to join. Move the data directory away to \
                     rebuild this member as a replica."
                ))),
            )
        }
        // A lock holder whose `initialize` is missing or still empty publishes its own identifier,
        // as Patroni does after an interrupted bootstrap or a wiped DCS.
        _ if obs.holds_lock() => Identity::Adopt(local.to_string()),
        Some(_) => Identity::Refuse(Decision::new(
            "waiting for the node that bootstraps the cluster to finish",
            current_role(obs),
        )),
        None if cluster.leader.is_some() => Identity::Matches,
        None if is_standby_data(obs.pg) => Identity::Refuse(Decision::new(
            "the cluster has no initialize key and this member's data is a standby: \
             start ferroni on the primary first",
            current_role(obs),
        )),
        // Existing data and a DCS that never saw this cluster: import it (Patroni's "adopt").
        None => Identity::Adopt(local.to_string()),
    }
}

fn is_standby_data(pg: &PgState) -> bool {
    matches!(
        pg,
        PgState::Stopped { standby: true, .. }
            | PgState::Running {
                role: PgRole::Replica,
                ..
            }
    )
}
