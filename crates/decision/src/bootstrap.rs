//! Rules for a node without a data directory: bootstrap a new cluster (exactly one node, the one
//! that wins `initialize`) or build a replica of an existing one.

use crate::action::{Action, Decision, LongAction};
use crate::memory::{BootstrapPhase, Memory};
use crate::observation::{Observation, Outcome};
use crate::source;
use crate::standby;
use ferroni_model::{ClusterView, Role};

/// After a failed bootstrap a node waits this many TTLs before it races for `initialize` again, so
/// that another node gets its turn and a broken method does not loop.
const BOOTSTRAP_BACKOFF_TTLS: u64 = 3;

pub(crate) fn without_data(obs: &Observation, cluster: &ClusterView, mem: &mut Memory) -> Decision {
    let mut d = decide_without_data(obs, cluster, mem);
    if obs.holds_lock() {
        // A leader without data cannot serve; let another node take over (Patroni does the same).
        d.actions.insert(0, Action::ReleaseLeader);
    }
    d
}

fn decide_without_data(obs: &Observation, cluster: &ClusterView, mem: &mut Memory) -> Decision {
    let waiting = |why: &str| Decision::new(why.to_string(), Role::Uninitialized);
    if obs.dynamic.pause {
        return waiting("data directory is empty; not bootstrapping because the cluster is paused");
    }
    let leader = obs.other_leader();
    if cluster.initialize.is_none() && leader.is_none() {
        return race_for_initialize(obs, mem);
    }
    if let Some(leader) = leader {
        if cluster.initialize.as_deref() == Some("") {
            return waiting("waiting for leader to bootstrap");
        }
        return match source::clone_source(obs, cluster) {
            Some(src) => {
                let from = if src.name == leader { "leader" } else { "replica" };
                Decision::new(
                    format!("trying to bootstrap from {from} '{}'", src.name),
                    Role::Uninitialized,
                )
                .with(Action::Start(LongAction::CreateReplica {
                    source: Some(src),
                    methods: replica_methods(obs),
                }))
            }
            None => waiting(&format!(
                "waiting for leader '{leader}' to publish its connection address"
            )),
        };
    }
    without_leader(obs, cluster)
}

fn race_for_initialize(obs: &Observation, mem: &mut Memory) -> Decision {
    let role = Role::Uninitialized;
    if obs.config.tags.nofailover {
        return Decision::new(
            "waiting for leader to bootstrap (this member is tagged nofailover)",
            role,
        );
    }
    if let Some((at, reason)) = &mem.bootstrap_failed {
        let backoff = BOOTSTRAP_BACKOFF_TTLS * u64::from(obs.dynamic.ttl) * 1000;
        let ago = obs.now_ms.saturating_sub(*at);
        if ago < backoff {
            return Decision::new(
                format!(
                    "bootstrap failed {} s ago ({reason}); stepping back so that another node can bootstrap",
                    ago / 1000
                ),
                role,
            );
        }
    }
    match obs.outcome(&[Outcome::InitializeWon, Outcome::InitializeLost]) {
        Some(Outcome::InitializeWon) => {
            mem.bootstrap = BootstrapPhase::Running;
            if let Some(sc) = standby::section(obs) {
                let source = standby::remote(sc);
                let methods = standby::imaging_methods(obs, sc);
                return Decision::new("trying to bootstrap a standby leader from the remote primary", role)
                    .with(Action::Start(LongAction::CreateReplica { source, methods }));
            }
            Decision::new("trying to bootstrap a new cluster", role).with(Action::Start(LongAction::Bootstrap))
        }
        Some(_) => Decision::new("failed to acquire initialize lock", role),
        None => Decision::new("trying to bootstrap a new cluster", role).with(Action::TakeInitialize),
    }
}

/// No leader, but the cluster exists: restore it with a `no_leader` method, or explain the wait.
fn without_leader(obs: &Observation, cluster: &ClusterView) -> Decision {
    let role = Role::Uninitialized;
    let Some(sysid) = cluster.sysid() else {
        return Decision::new("waiting for leader to bootstrap", role);
    };
    let no_leader: Vec<String> = replica_methods(obs)
        .into_iter()
        .filter(|m| {
            obs.config
                .postgresql
                .replica_methods
                .get(m)
                .is_some_and(|r| r.no_leader)
        })
        .collect();
    if !no_leader.is_empty() {
        return Decision::new("trying to bootstrap (without leader)", role).with(Action::Start(
            LongAction::CreateReplica {
                source: None,
                methods: no_leader,
            },
        ));
    }
    Decision::new(
        format!(
            "waiting for leader to bootstrap: the cluster was initialized (system identifier {sysid}) but no \
             member holds the leader lock; start a member that has data, or add a replica method with \
             no_leader to restore it from a backup"
        ),
        role,
    )
}

/// `postgresql.create_replica_methods`, `[basebackup]` when empty.
pub(crate) fn replica_methods(obs: &Observation) -> Vec<String> {
    let methods = &obs.config.postgresql.create_replica_methods;
    if methods.is_empty() {
        vec!["basebackup".to_string()]
    } else {
        methods.clone()
    }
}
