//! Carries out one decision's actions in order. DCS writes run inline, each bounded by
//! `retry_timeout`; Postgres work is handed to the single background slot. A guarded action records
//! its outcome and asks for a new decision, because what comes next depends on it.

use crate::long_action::LongActions;
use crate::peers;
use ferroni_dcs::{Dcs, DcsError};
use ferroni_decision::{Action, Outcome, PeerStatus};
use ferroni_model::{ClusterView, Config, DynamicConfig, PgState, Status};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

pub enum Step {
    /// Every action ran.
    Done,
    /// A guarded action ran: decide again with its outcome.
    Decide,
    Fatal(String),
}

pub struct Executor {
    dcs: Arc<dyn Dcs>,
    name: String,
    timeout: Duration,
    pub outcomes: Vec<Outcome>,
    pub peers: Option<Vec<PeerStatus>>,
    /// When (CLOCK_BOOTTIME) the lease renewal behind the last confirmation of this node's lock started.
    pub lock_confirmed_at: Option<Duration>,
    /// How long a confirmation stays good: the fence's deadline (ttl minus the safety margin).
    confirmation_valid_for: Duration,
}

impl Executor {
    pub fn new(dcs: Arc<dyn Dcs>, cfg: &Config, dynamic: &DynamicConfig) -> Executor {
        Executor {
            dcs,
            name: cfg.name.clone(),
            timeout: Duration::from_secs(u64::from(dynamic.retry_timeout)),
            outcomes: Vec::new(),
            peers: None,
            lock_confirmed_at: None,
            confirmation_valid_for: {
                let ttl = Duration::from_secs(u64::from(dynamic.ttl));
                ttl.saturating_sub(crate::fence::effective_margin(
                    ttl,
                    crate::fence::margin_from_config(cfg.watchdog.safety_margin, ttl),
                ))
            },
        }
    }

    /// Whether this node holds the lock after what ran this cycle.
    pub fn holds_lock(&self, cluster: Option<&ClusterView>, me: &str) -> bool {
        for o in self.outcomes.iter().rev() {
            match o {
                Outcome::LeaderAcquired | Outcome::LeaderRefreshed => return true,
                Outcome::LeaderLost | Outcome::LeaderRefreshFailed => return false,
                _ => {}
            }
        }
        cluster.and_then(|c| c.leader_name()) == Some(me)
    }

    /// When the lock a call that started at `started` confirmed runs from: the lease's last
    /// renewal, which the call may have reused instead of renewing (never later than `started`).
    fn lease_renewed_by(&self, started: Duration) -> Duration {
        self.dcs
            .lease_renewed_at()
            .map_or(started, |renewed| renewed.min(started))
    }

    pub async fn run(
        &mut self,
        actions: &[Action],
        cluster: Option<&ClusterView>,
        pg: &PgState,
        http: &reqwest::Client,
        long: &mut LongActions,
    ) -> Step {
        for action in actions {
            // A daemon stalled between confirming its lock and acting on it (SIGSTOP, swap) must not
            // act on that confirmation: its lease may be gone and another node promoted.
            if let Some(t0) = self.lock_confirmed_at
                && crate::fence::boottime().saturating_sub(t0) > self.confirmation_valid_for
            {
                warn!("the leader lock confirmation is stale (the daemon stalled); acting on nothing this cycle");
                self.lock_confirmed_at = None;
                return Step::Done;
            }
            match action {
                Action::TakeInitialize => {
                    let won = self.bounded("take initialize key", self.dcs.attempt_initialize()).await;
                    self.outcomes.push(if won == Some(true) {
                        Outcome::InitializeWon
                    } else {
                        Outcome::InitializeLost
                    });
                    return Step::Decide;
                }
                Action::AcquireLeader => {
                    let started = crate::fence::boottime();
                    let won = self.bounded("acquire leader lock", self.dcs.acquire_leader()).await;
                    if won == Some(true) {
                        self.lock_confirmed_at = Some(self.lease_renewed_by(started));
                    }
                    self.outcomes.push(if won == Some(true) {
                        Outcome::LeaderAcquired
                    } else {
                        Outcome::LeaderLost
                    });
                    return Step::Decide;
                }
                Action::RefreshLeader => {
                    let started = crate::fence::boottime();
                    let outcome = match self.bounded("update leader lock", self.dcs.update_leader()).await {
                        Some(true) => {
                            self.lock_confirmed_at = Some(self.lease_renewed_by(started));
                            Outcome::LeaderRefreshed
                        }
                        Some(false) => Outcome::LeaderLost,
                        None => Outcome::LeaderRefreshFailed,
                    };
                    self.outcomes.push(outcome);
                    return Step::Decide;
                }
                Action::AskPeers => {
                    let found = match cluster {
                        Some(c) => peers::ask_peers(http, c, &self.name).await,
                        None => Vec::new(),
                    };
                    self.peers = Some(found);
                    self.outcomes.push(Outcome::PeersAsked);
                    return Step::Decide;
                }
                Action::SetInitialize(sysid) => {
                    self.bounded("write initialize key", self.dcs.set_initialize(sysid))
                        .await;
                }
                Action::CancelInitialize => {
                    if self
                        .bounded("delete initialize key", self.dcs.cancel_initialize())
                        .await
                        .is_some()
                    {
                        info!("removed initialize key after a failed bootstrap");
                    }
                }
                Action::WriteConfig(value) => {
                    self.bounded("write config key", self.dcs.write_config(value, None))
                        .await;
                }
                Action::ReleaseLeader => {
                    self.bounded("release leader lock", self.dcs.release_leader()).await;
                }
                Action::WriteStatus { optime } => {
                    let status = Status {
                        optime: *optime,
                        ..Default::default()
                    };
                    self.bounded("write status key", self.dcs.write_status(&status)).await;
                }
                Action::ClearFailover => {
                    self.bounded("clear failover key", self.dcs.delete_failover(None)).await;
                }
                Action::SyncSlots(wanted) => sync_slots(long, wanted).await,
                Action::WriteHistory => self.write_history(cluster, pg, long).await,
                Action::AbortLongAction => long.abort(),
                Action::Reload { primary, upstream } => long.reload(*primary, upstream.as_ref()),
                Action::Start(long_action) => long.start(long_action.clone(), cluster, pg),
                Action::Fatal(msg) => return Step::Fatal(msg.clone()),
            }
        }
        Step::Done
    }

    async fn write_history(&self, cluster: Option<&ClusterView>, pg: &PgState, long: &LongActions) {
        let (Some(cluster), PgState::Running { timeline, .. }) = (cluster, pg) else {
            return;
        };
        let now = crate::history::now_iso();
        if let Some(lines) = crate::history::merged(cluster, long.pg.control.data_dir(), *timeline, &self.name, &now)
            && self
                .bounded("write history key", self.dcs.write_history(&lines))
                .await
                .is_some()
        {
            info!("recorded timeline {} in the history key", timeline.saturating_sub(1));
        }
    }

    /// Runs one DCS call within `retry_timeout`; `None` (after a warning) when it failed.
    async fn bounded<T>(&self, what: &str, call: impl Future<Output = Result<T, DcsError>>) -> Option<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                warn!("failed to {what}: {e}");
                None
            }
            Err(_) => {
                warn!(
                    "failed to {what}: DCS did not answer within {} s",
                    self.timeout.as_secs()
                );
                None
            }
        }
    }
}

async fn sync_slots(long: &LongActions, wanted: &std::collections::BTreeSet<String>) {
    match long.pg.control.sync_physical_slots(wanted).await {
        Ok(changes) => {
            for slot in &changes.created {
                info!("created replication slot {slot}");
            }
            for slot in &changes.dropped {
                info!("dropped replication slot {slot}: no member uses it any more");
            }
        }
        Err(e) => warn!("failed to synchronise replication slots: {e}"),
    }
}
