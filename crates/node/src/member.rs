//! What this node publishes about itself in `members/<name>`: Patroni's member JSON built from the
//! probe of Postgres, the decision's role, and the action in progress.

use ferroni_decision::{ActionStatus, LongAction};
use ferroni_model::{BootstrapMethod, Config, MemberData, PgRole, PgState, Role, VERSION};

/// Patroni's PostgresqlState string for `/patroni` and the member key.
pub fn state_text(cfg: &Config, pg: &PgState, action: &ActionStatus, phase: Option<&'static str>) -> &'static str {
    if let Some(phase) = phase.filter(|_| matches!(action, ActionStatus::Running(_))) {
        return phase;
    }
    if let ActionStatus::Running(a) = action {
        return match a {
            LongAction::Bootstrap => match cfg.bootstrap.method {
                BootstrapMethod::Initdb => "initializing new cluster",
                BootstrapMethod::Custom(_) => "running custom bootstrap script",
            },
            LongAction::CreateReplica { .. } => "creating replica",
            LongAction::StartPrimary | LongAction::StartReplica { .. } => "starting",
            LongAction::Stop { .. } => "stopping",
            LongAction::Restart => "restarting",
            LongAction::Reinitialize { .. } => "creating replica",
            LongAction::Demote { .. } | LongAction::Follow { .. } | LongAction::Rejoin { .. } => "restarting",
            LongAction::Promote => "running",
        };
    }
    match pg {
        PgState::Running { .. } => "running",
        PgState::Starting { .. } => "starting",
        PgState::Stopped {
            clean_shutdown: false, ..
        } => "crashed",
        PgState::Stopped { .. } | PgState::NoData | PgState::InvalidData { .. } => "stopped",
    }
}

pub fn member_data(cfg: &Config, pg: &PgState, role: Role, state: &str) -> MemberData {
    let mut m = MemberData {
        conn_url: format!("postgres://{}/postgres", cfg.postgresql.connect_address),
        api_url: format!("{}://{}/patroni", cfg.restapi.scheme(), cfg.restapi.connect_address),
        state: state.to_string(),
        role: role.as_str().to_string(),
        version: VERSION.to_string(),
        tags: cfg.tags.all.clone(),
        ..Default::default()
    };
    if let PgState::Running {
        role: pg_role,
        timeline,
        lsn,
        replication,
        ..
    } = pg
    {
        m.timeline = Some(*timeline);
        match pg_role {
            PgRole::Primary => m.xlog_location = Some(lsn.0),
            PgRole::Replica => {
                let r = replication.clone().unwrap_or_default();
                m.replay_lsn = Some(r.replayed.unwrap_or(*lsn).0);
                m.receive_lsn = r.received.map(|l| l.0);
                m.xlog_location = Some(r.received.unwrap_or(*lsn).0.max(lsn.0));
                m.replication_state = Some(
                    if r.streaming {
                        "streaming"
                    } else {
                        "in archive recovery"
                    }
                    .to_string(),
                );
            }
        }
    }
    m
}
