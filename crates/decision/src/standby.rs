//! Standby cluster rules: the lock holder is a standby leader that replicates from the remote
//! primary (`standby_cluster.host`/`port`, or only `restore_command` for an archive-only standby)
//! and never promotes by itself; removing the section promotes it, adding it to a normal cluster
//! demotes its primary into a standby leader.

use crate::action::{Action, Decision, LongAction, StopMode, Upstream};
use crate::observation::Observation;
use crate::source;
use ferroni_model::{PgState, Role, StandbyCluster};

/// The name a remote primary carries as an [`Upstream`]; no member can have it (members are never
/// named with a space and parentheses by Patroni's rules, and the name is only used in this role).
pub const REMOTE_NAME: &str = "(standby_cluster remote)";

pub(crate) fn section<'a>(obs: &Observation<'a>) -> Option<&'a StandbyCluster> {
    obs.dynamic.standby_cluster.as_ref()
}

/// The remote primary as an upstream; `None` for an archive-only standby.
pub(crate) fn remote(sc: &StandbyCluster) -> Option<Upstream> {
    let host = sc.host.as_deref().filter(|h| !h.is_empty())?;
    let port = sc.port.unwrap_or(5432);
    Some(Upstream {
        name: REMOTE_NAME.to_string(),
        conn_url: format!("postgres://{host}:{port}/postgres"),
    })
}

/// Methods that image a standby leader: `standby_cluster.create_replica_methods`, default basebackup;
/// without a remote host only methods that need no running source.
pub(crate) fn imaging_methods(obs: &Observation, sc: &StandbyCluster) -> Vec<String> {
    let mut methods = if sc.create_replica_methods.is_empty() {
        vec!["basebackup".to_string()]
    } else {
        sc.create_replica_methods.clone()
    };
    if remote(sc).is_none() {
        methods.retain(|m| {
            obs.config
                .postgresql
                .replica_methods
                .get(m)
                .is_some_and(|r| r.no_leader)
        });
    }
    methods
}

/// The lock holder of a standby cluster whose Postgres runs as a replica: keep following the remote.
pub(crate) fn standby_leader(obs: &Observation, sc: &StandbyCluster) -> Decision {
    let name = obs.name();
    let target = remote(sc);
    let current = match obs.pg {
        PgState::Running {
            replication: Some(r), ..
        } => r.upstream.as_deref(),
        _ => None,
    };
    let following = match &target {
        Some(t) => source::streams_from(current, t),
        None => current.is_none(),
    };
    if following || obs.dynamic.pause {
        return Decision::new(
            format!("no action. I am ({name}), the standby leader with the lock"),
            Role::StandbyLeader,
        );
    }
    Decision::new(
        "following the remote primary as the standby leader",
        Role::StandbyLeader,
    )
    .with(Action::Start(LongAction::Follow { upstream: target }))
}

/// A primary holding the lock when `standby_cluster` was added: it becomes a standby leader of the
/// remote (a clean stop first, so its replicas have all its WAL; pg_rewind if allowed).
pub(crate) fn demote_cluster(sc: &StandbyCluster) -> Decision {
    Decision::new(
        "demoting the cluster into a standby cluster of the remote primary",
        Role::StandbyLeader,
    )
    .with(Action::Start(LongAction::Demote {
        mode: StopMode::Fast,
        upstream: remote(sc),
    }))
}
