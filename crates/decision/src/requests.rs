//! Operator requests from the REST API (`/reinitialize`, `/restart`, `/reload`): accepted or refused
//! with Patroni's answers, and turned into actions like any other decision. Clone and reinitialize
//! share the single background slot, so two image builds can never run at once on one node.

use crate::action::{Action, Decision, LongAction};
use crate::bootstrap::replica_methods;
use crate::decide::current_role;
use crate::observation::{ActionStatus, Observation, Request};
use crate::source;
use ferroni_model::ClusterView;

fn refuse(obs: &Observation, status: u16, why: String) -> Decision {
    let mut d = Decision::new(format!("refused request: {why}"), current_role(obs));
    d.reply = Some(Err((status, why)));
    d
}

fn accept(d: Decision, message: &str) -> Decision {
    let mut d = d;
    d.reply = Some(Ok(message.to_string()));
    d
}

/// `None` lets the normal rules run (the request needs nothing from this cycle).
pub(crate) fn decide_request(obs: &Observation, cluster: &ClusterView, request: Request) -> Option<Decision> {
    let running = match &obs.action {
        ActionStatus::Running(a) => Some(a.name()),
        ActionStatus::Idle => None,
    };
    Some(match request {
        Request::Reinitialize { force, from_leader } => {
            let Some(leader) = obs.other_leader() else {
                let why = if obs.holds_lock() {
                    "I am the leader, can not reinitialize"
                } else {
                    "Cluster has no leader, can not reinitialize"
                };
                return Some(refuse(obs, 503, why.into()));
            };
            if obs.dynamic.standby_cluster.is_some() && obs.holds_lock() {
                return Some(refuse(obs, 503, "can not reinitialize the standby leader".into()));
            }
            if let Some(name) = running.filter(|_| !force) {
                return Some(refuse(obs, 503, format!("{name} already in progress")));
            }
            let source = if from_leader {
                cluster.member(leader).and_then(source::upstream)
            } else {
                source::clone_source(obs, cluster)
            };
            let Some(source) = source else {
                return Some(refuse(
                    obs,
                    503,
                    format!("leader {leader} has not published its address"),
                ));
            };
            let methods = if from_leader {
                vec!["basebackup".to_string()]
            } else {
                replica_methods(obs)
            };
            let mut d = Decision::new(format!("reinitializing from {}", source.name), current_role(obs));
            if running.is_some() {
                d = d.with(Action::AbortLongAction);
            }
            accept(
                d.with(Action::Start(LongAction::Reinitialize { source, methods })),
                "reinitialize started",
            )
        }
        Request::Restart => {
            if let Some(name) = running {
                return Some(refuse(obs, 503, format!("{name} already in progress")));
            }
            if !obs.pg.is_running() {
                return Some(refuse(obs, 503, "postgres is not running".into()));
            }
            let d = Decision::new("restarting postgres on request", current_role(obs))
                .with(Action::Start(LongAction::Restart));
            accept(d, "restart started")
        }
        Request::Reload => {
            if let Some(name) = running {
                return Some(refuse(obs, 503, format!("{name} already in progress")));
            }
            let Some(reload) = reload_action(obs, cluster) else {
                return Some(refuse(obs, 503, "postgres is not running".into()));
            };
            accept(
                Decision::new("reloading postgres on request", current_role(obs)).with(reload),
                "reload scheduled",
            )
        }
    })
}

/// Re-render the configuration for the role the server runs in now, e.g. after the dynamic
/// configuration changed: a primary stays primary, a replica keeps following its upstream.
pub(crate) fn reload_action(obs: &Observation, cluster: &ClusterView) -> Option<Action> {
    match obs.pg.running_role()? {
        ferroni_model::PgRole::Primary => Some(Action::Reload {
            primary: true,
            upstream: None,
        }),
        ferroni_model::PgRole::Replica => {
            let upstream = obs.other_leader().and_then(|l| source::follow_target(obs, cluster, l));
            Some(Action::Reload {
                primary: false,
                upstream,
            })
        }
    }
}
