//! What this node publishes about itself in `members/<name>`: Patroni's member JSON built from the
//! probe of Postgres, the decision's role, and the action in progress.

use ferroni_decision::{ActionStatus, LongAction};
use ferroni_model::{BootstrapMethod, Config, MemberData, PgState, Role};

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
    MemberData::describe(cfg, pg, role, state)
}
