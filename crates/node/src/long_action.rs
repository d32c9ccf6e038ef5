//! The single background slot for work on PostgreSQL (bootstrap, replica creation, start, stop,
//! promote, demote, re-pointing). One action at a time, so two image builds or a start racing a
//! stop cannot happen; the HA loop keeps running (and renewing the lock) while it works, and is
//! woken when it ends.

use crate::progress::{Tracker, watch_dir};
use ferroni_decision::{ActionResult, ActionStatus, LongAction, REMOTE_NAME, StopMode, Upstream};
use ferroni_model::{BootstrapMethod, ClusterView, Config, DynamicConfig, PgState, slot_name};
use ferroni_postgres::conf::{self, ConfRole, StandbyParams};
use ferroni_postgres::conninfo::parse_conn_url;
use ferroni_postgres::{CloneOptions, PgControl, PgError, Probe, Prober, RewindOptions, RunAs};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{Mutex, Notify, oneshot};
use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, warn};

type Outcome = Result<Option<String>, String>;

/// Access to the local PostgreSQL shared by the loop and the background action.
pub struct Pg {
    pub control: PgControl,
    prober: Mutex<Prober>,
    cfg: Config,
    dynamic: RwLock<DynamicConfig>,
    /// Relative method commands are resolved against the directory of the ferroni binary.
    tools_dir: PathBuf,
    /// What the background action is doing right now, for `/patroni` (`starting after custom bootstrap`).
    phase: RwLock<Option<&'static str>>,
    /// Progress of the current (or last) image build.
    pub progress: Tracker,
}

impl Pg {
    pub async fn probe(&self) -> Probe {
        self.prober.lock().await.probe().await
    }

    pub async fn stop_fast(&self) -> Result<(), PgError> {
        self.prober.lock().await.disconnect();
        self.control
            .stop(ferroni_postgres::StopMode::Fast, self.stop_timeout())
            .await
            .map(|_| ())
    }

    fn stop_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.cfg.postgresql.pg_ctl_timeout.max(1)))
    }

    pub fn phase(&self) -> Option<&'static str> {
        *self.phase.read().unwrap_or_else(|e| e.into_inner())
    }

    fn set_phase(&self, phase: Option<&'static str>) {
        *self.phase.write().unwrap_or_else(|e| e.into_inner()) = phase;
    }

    fn dynamic(&self) -> DynamicConfig {
        self.dynamic.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes pgpass, pg_hba, postgresql.conf and the signal file for `role`.
    fn configure(&self, role: &ConfRole, upstream: Option<(&str, u16)>) -> Result<(), PgError> {
        let dynamic = self.dynamic();
        self.control.write_pgpass(upstream)?;
        let hba = configured_hba(&self.cfg, &dynamic);
        self.control.write_pg_hba(hba.as_deref())?;
        let rendered = self.control.render_conf(&dynamic.parameters, role);
        for w in &rendered.warnings {
            warn!("{w}");
        }
        self.control.write_conf(&rendered)?;
        if conf::sanitize_auto_conf(self.control.data_dir(), RunAs::postgres_if_root())? {
            info!("removed recovery settings from postgresql.auto.conf (ferroni's postgresql.conf owns them)");
        }
        self.control.set_signal_file(role.signal_file())
    }

    /// Recovery settings for following `upstream`: a member (own slot, archive settings inherited in
    /// a standby cluster) or the remote primary of a standby cluster (its slot name, delay and
    /// archive settings; several hosts are tried for the writable one).
    fn replica_role(&self, upstream: Option<&Upstream>) -> (ConfRole, Option<(String, u16)>) {
        let dynamic = self.dynamic();
        let standby = dynamic.standby_cluster.as_ref();
        let remote = upstream.is_some_and(|u| u.name == REMOTE_NAME);
        let target = upstream
            .and_then(|u| parse_conn_url(&u.conn_url).ok())
            .map(|c| (c.host, c.port));
        let conninfo = target.as_ref().map(|(h, p)| {
            let base = conf::primary_conninfo(h, *p, &self.cfg.postgresql, &self.cfg.name);
            if h.contains(',') {
                format!("{base} target_session_attrs=read-write")
            } else {
                base
            }
        });
        let slot = if remote {
            standby.and_then(|sc| sc.primary_slot_name.clone())
        } else {
            // The upstream creates this slot for us within one of its cycles (Patroni's naming).
            (dynamic.use_slots && target.is_some()).then(|| slot_name(&self.cfg.name))
        };
        let leaderless = upstream.is_none() || remote;
        let params = StandbyParams {
            primary_conninfo: conninfo,
            primary_slot_name: slot,
            restore_command: standby.and_then(|sc| sc.restore_command.clone()),
            archive_cleanup_command: standby.and_then(|sc| sc.archive_cleanup_command.clone()),
            extra: self.cfg.postgresql.recovery_conf.clone(),
            recovery_min_apply_delay: standby
                .filter(|_| leaderless)
                .and_then(|sc| sc.recovery_min_apply_delay.clone()),
        };
        (ConfRole::Replica(params), target.map(|(h, p)| (pgpass_host(&h), p)))
    }

    async fn start_replica(&self, upstream: Option<&Upstream>) -> Result<(), PgError> {
        let (role, target) = self.replica_role(upstream);
        self.configure(&role, target.as_ref().map(|(h, p)| (h.as_str(), *p)))?;
        self.control.start(true).await
    }

    async fn start_primary(&self) -> Result<(), PgError> {
        self.configure(&ConfRole::Primary, None)?;
        self.control.start(true).await
    }
}

/// pgpass matches one host per line; several remote hosts share one wildcard line.
fn pgpass_host(host: &str) -> String {
    if host.contains(',') {
        "*".to_string()
    } else {
        host.to_string()
    }
}

struct Running {
    action: LongAction,
    /// The result arrives here before the loop is woken, so a woken loop always finds it.
    result: oneshot::Receiver<Outcome>,
    handle: JoinHandle<()>,
}

pub struct LongActions {
    pub pg: Arc<Pg>,
    running: Option<Running>,
    wake: Arc<Notify>,
    /// A re-read local configuration, taken over once the running action has finished.
    next_config: Option<Config>,
}

impl Pg {
    fn new(cfg: &Config, dynamic: DynamicConfig) -> Pg {
        let control = PgControl::new(cfg.postgresql.clone(), cfg.scope.clone(), cfg.name.clone())
            .with_run_as(RunAs::postgres_if_root());
        let tools_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/"));
        Pg {
            control,
            prober: Mutex::new(Prober::new(cfg.postgresql.clone(), RunAs::postgres_if_root())),
            cfg: cfg.clone(),
            dynamic: RwLock::new(dynamic),
            tools_dir,
            phase: RwLock::new(None),
            progress: Tracker::default(),
        }
    }
}

impl LongActions {
    pub fn new(cfg: &Config, dynamic: DynamicConfig, wake: Arc<Notify>) -> LongActions {
        LongActions {
            pg: Arc::new(Pg::new(cfg, dynamic)),
            running: None,
            wake,
            next_config: None,
        }
    }

    /// Takes over a re-read local configuration: at once when idle, else once the running action
    /// has finished (it keeps the configuration it started with).
    pub fn set_config(&mut self, cfg: Config) {
        if self.running.is_some() {
            self.next_config = Some(cfg);
        } else {
            self.pg = Arc::new(Pg::new(&cfg, self.pg.dynamic()));
        }
    }

    pub fn set_dynamic(&self, dynamic: DynamicConfig) {
        *self.pg.dynamic.write().unwrap_or_else(|e| e.into_inner()) = dynamic;
    }

    /// Running until its result has been taken, so a decision never sees an action neither running
    /// nor finished.
    pub fn status(&self) -> ActionStatus {
        match &self.running {
            Some(r) => ActionStatus::Running(r.action.clone()),
            None => ActionStatus::Idle,
        }
    }

    /// The result of an action that ended since the last call.
    pub fn take_finished(&mut self) -> Option<ActionResult> {
        let r = self.running.as_mut()?;
        let result = match r.result.try_recv() {
            Ok(result) => result,
            Err(oneshot::error::TryRecvError::Empty) if !r.handle.is_finished() => return None,
            Err(_) => Err(format!("{} panicked or was cancelled", r.action.name())),
        };
        let r = self.running.take()?;
        if let Some(cfg) = self.next_config.take() {
            self.set_config(cfg);
        }
        match &result {
            Ok(_) => info!("{} finished", r.action.name()),
            Err(e) => error!("{} failed: {e}", r.action.name()),
        }
        Some(ActionResult {
            action: r.action,
            result,
        })
    }

    pub fn start(&mut self, action: LongAction, _cluster: Option<&ClusterView>, _pg: &PgState) {
        if let Some(r) = &self.running {
            warn!(
                "not starting {}: {} is still in progress",
                action.name(),
                r.action.name()
            );
            return;
        }
        info!("starting background action: {}", action.name());
        let pg = self.pg.clone();
        let wake = self.wake.clone();
        let task_action = action.clone();
        let span = tracing::Span::current();
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(
            async move {
                let result = run(&pg, task_action).await;
                pg.set_phase(None);
                let _ = tx.send(result);
                wake.notify_one();
            }
            .instrument(span),
        );
        self.running = Some(Running {
            action,
            result: rx,
            handle,
        });
    }

    /// Renders the configuration for the running server's role and reloads it (quick, inline).
    pub fn reload(&self, primary: bool, upstream: Option<&Upstream>) {
        let result = if primary {
            self.pg.configure(&ConfRole::Primary, None)
        } else {
            let (role, target) = self.pg.replica_role(upstream);
            self.pg.configure(&role, target.as_ref().map(|(h, p)| (h.as_str(), *p)))
        };
        match result.and_then(|_| self.pg.control.reload()) {
            Ok(()) => info!("configuration rendered and postgres reloaded"),
            Err(e) => warn!("reload failed: {e}"),
        }
    }

    pub fn abort(&mut self) {
        if let Some(r) = self.running.take() {
            r.handle.abort();
        }
    }
}

async fn run(pg: &Pg, action: LongAction) -> Outcome {
    match action {
        LongAction::Bootstrap => bootstrap(pg).await,
        LongAction::CreateReplica { source, methods } => create_replica(pg, source.as_ref(), &methods).await,
        LongAction::StartPrimary => pg.start_primary().await.map(|_| None).map_err(|e| e.to_string()),
        LongAction::StartReplica { upstream } => pg
            .start_replica(upstream.as_ref())
            .await
            .map(|_| None)
            .map_err(|e| e.to_string()),
        LongAction::Promote => promote(pg).await,
        LongAction::Demote { mode, upstream } => {
            stop(pg, mode).await?;
            // Nothing writable is left to fence: the read-only server started next must not be
            // stopped by a heartbeat deadline that belonged to the primary.
            crate::fencing::disarm_heartbeat(&pg.cfg);
            // A cluster demoted into a standby of a remote primary rewinds against it now; a member
            // leader is rewound against by the Rejoin the decision issues once that leader has
            // finished promoting (before its checkpoint pg_rewind would see no divergence).
            if let Some(u) = upstream.as_ref().filter(|u| u.name == REMOTE_NAME) {
                rewind_if_allowed(pg, u).await?;
            }
            pg.start_replica(upstream.as_ref())
                .await
                .map(|_| None)
                .map_err(|e| e.to_string())
        }
        LongAction::Follow { upstream } => follow(pg, upstream.as_ref()),
        LongAction::Rejoin { upstream } => rejoin(pg, &upstream).await,
        LongAction::Stop { mode } => stop(pg, mode).await.map(|_| None),
        LongAction::Restart => {
            pg.prober.lock().await.disconnect();
            let timeout = pg.stop_timeout();
            pg.control
                .restart(ferroni_postgres::StopMode::Fast, timeout, true)
                .await
                .map(|_| None)
                .map_err(|e| e.to_string())
        }
        LongAction::Reinitialize { source, methods } => {
            // Each method empties the data directory unless it keeps data (a delta restore).
            stop(pg, StopMode::Immediate).await?;
            create_replica(pg, Some(&source), &methods).await
        }
    }
}

async fn stop(pg: &Pg, mode: StopMode) -> Result<(), String> {
    pg.prober.lock().await.disconnect();
    let mode = match mode {
        StopMode::Fast => ferroni_postgres::StopMode::Fast,
        StopMode::Immediate => ferroni_postgres::StopMode::Immediate,
    };
    pg.control
        .stop(mode, pg.stop_timeout())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn promote(pg: &Pg) -> Outcome {
    pg.control.promote().await.map_err(|e| e.to_string())?;
    // Until this checkpoint the control file still names the old timeline, and pg_rewind on the
    // former primary would wrongly find nothing to rewind (Patroni's checkpoint_after_promote).
    if let Err(e) = pg.control.checkpoint().await {
        warn!("checkpoint after promote failed: {e}");
    }
    // The managed config must stop naming an upstream, or the next restart would follow it again.
    pg.configure(&ConfRole::Primary, None).map_err(|e| e.to_string())?;
    pg.control.reload().map_err(|e| e.to_string())?;
    Ok(None)
}

/// A former primary follows `upstream`: pg_rewind first (crash recovery included), so WAL it wrote
/// after the new leader's timeline forked cannot break streaming. On a failed rewind the data
/// directory is removed only when `remove_data_directory_on_rewind_failure` allows it.
async fn rejoin(pg: &Pg, upstream: &Upstream) -> Outcome {
    // A demoted replica may still run: pg_rewind needs a cleanly stopped target.
    stop(pg, StopMode::Fast).await?;
    rewind_if_allowed(pg, upstream).await?;
    pg.start_replica(Some(upstream))
        .await
        .map(|_| None)
        .map_err(|e| e.to_string())
}

/// pg_rewind against `upstream` when `use_pg_rewind` allows it and the data supports it
/// (checksums or wal_log_hints). A failure keeps the data directory unless
/// `remove_data_directory_on_rewind_failure` says otherwise (then the next cycle re-images).
async fn rewind_if_allowed(pg: &Pg, upstream: &Upstream) -> Result<(), String> {
    let allowed = pg.cfg.postgresql.use_pg_rewind.unwrap_or(pg.dynamic().use_pg_rewind);
    if !allowed {
        return Ok(());
    }
    let Ok(target) = parse_conn_url(&upstream.conn_url) else {
        return Err(format!("cannot rewind: {} has no usable address", upstream.name));
    };
    match pg.control.can_rewind().await {
        Ok(support) if support.is_possible() => {}
        Ok(support) => return Err(format!("cannot rewind: {support:?}")),
        Err(e) => return Err(format!("cannot rewind: {e}")),
    }
    pg.control
        .write_pgpass(Some((pgpass_host(&target.host).as_str(), target.port)))
        .map_err(|e| e.to_string())?;
    let conninfo = pg.control.rewind_conninfo(&target.host, target.port);
    match pg.control.rewind(&conninfo, &RewindOptions::default()).await {
        Ok(report) => {
            info!("pg_rewind against {}: {:?}", upstream.name, report.outcome);
            Ok(())
        }
        Err(e) if pg.cfg.postgresql.remove_data_directory_on_rewind_failure => {
            warn!(
                "pg_rewind failed ({e}); removing the data directory as remove_data_directory_on_rewind_failure asks"
            );
            pg.control.empty_data_dir().await.map_err(|err| err.to_string())?;
            Err(format!("pg_rewind failed, data directory removed: {e}"))
        }
        Err(e) => Err(format!("pg_rewind failed: {e}")),
    }
}

/// `primary_conninfo` is reloadable since PostgreSQL 13: re-pointing needs no restart.
fn follow(pg: &Pg, upstream: Option<&Upstream>) -> Outcome {
    let (role, target) = pg.replica_role(upstream);
    pg.configure(&role, target.as_ref().map(|(h, p)| (h.as_str(), *p)))
        .map_err(|e| e.to_string())?;
    pg.control.reload().map_err(|e| e.to_string())?;
    Ok(None)
}

/// initdb (or the custom method), managed configuration, first start, roles, post_bootstrap. On any
/// failure Postgres is stopped and the data directory moved aside, so the node leaves no
/// half-initialised cluster behind when the decision releases `initialize`.
async fn bootstrap(pg: &Pg) -> Outcome {
    match bootstrap_steps(pg).await {
        Ok(sysid) => Ok(Some(sysid)),
        Err(e) => {
            let _ = stop(pg, StopMode::Immediate).await;
            match pg.control.move_data_dir_aside().await {
                Ok(Some(moved)) => warn!(
                    "moved the data directory of the failed bootstrap to {}",
                    moved.display()
                ),
                Ok(None) => {}
                Err(err) => warn!("cannot move the data directory aside: {err}"),
            }
            Err(e)
        }
    }
}

async fn bootstrap_steps(pg: &Pg) -> Result<String, String> {
    let cfg = &pg.cfg;
    pg.control.ensure_data_dir().await.map_err(|e| e.to_string())?;
    let custom = match &cfg.bootstrap.method {
        BootstrapMethod::Initdb => {
            pg.control
                .initdb(&cfg.bootstrap.initdb, &cfg.postgresql.superuser)
                .await
                .map_err(|e| e.to_string())?;
            pg.configure(&ConfRole::Primary, None).map_err(|e| e.to_string())?;
            false
        }
        BootstrapMethod::Custom(method) => {
            pg.set_phase(Some("running custom bootstrap script"));
            pg.control
                .run_custom_bootstrap(method, &pg.tools_dir)
                .await
                .map_err(|e| e.to_string())?;
            prepare_custom_data(pg, method).map_err(|e| e.to_string())?;
            pg.set_phase(Some("starting after custom bootstrap"));
            true
        }
    };
    pg.control
        .start(true)
        .await
        .map_err(|e| format!("start after bootstrap: {e}"))?;
    wait_for_primary(pg).await?;
    pg.control
        .create_roles()
        .await
        .map_err(|e| format!("create roles: {e}"))?;
    if let Some(script) = &cfg.bootstrap.post_bootstrap {
        let conninfo = pg.control.superuser_conninfo();
        pg.control
            .run_post_bootstrap(script, &conninfo)
            .await
            .map_err(|e| format!("post_bootstrap: {e}"))?;
    }
    if custom {
        // Back to the configured pg_hba and a configuration without recovery settings, so they do not
        // come back on the next start.
        pg.configure(&ConfRole::Primary, None).map_err(|e| e.to_string())?;
        pg.control.reload().map_err(|e| e.to_string())?;
    }
    let (sysid, _) = pg.control.sysid_and_timeline().await.map_err(|e| e.to_string())?;
    Ok(sysid)
}

/// Configuration of a custom bootstrap's data directory before its first start: recovery settings
/// from `recovery_conf` (with `recovery.signal`), or the tool's own kept untouched
/// (`keep_existing_recovery_conf`), or none; local connections trusted until roles are in place,
/// because the restored cluster's passwords need not be ours.
fn prepare_custom_data(pg: &Pg, method: &ferroni_model::CustomBootstrap) -> Result<(), PgError> {
    for leftover in ["promote", "promote.signal"] {
        let _ = std::fs::remove_file(pg.control.data_dir().join(leftover));
    }
    pg.control.write_pgpass(None)?;
    let mut hba = vec!["local all all trust".to_string()];
    hba.extend(configured_hba(&pg.cfg, &pg.dynamic()).unwrap_or_else(|| conf::default_pg_hba(&pg.cfg.postgresql)));
    pg.control.write_pg_hba(Some(&hba))?;
    let keep = method.keep_existing_recovery_conf && method.recovery_conf.is_empty();
    let role = if keep || !method.recovery_conf.is_empty() {
        ConfRole::Recovery(method.recovery_conf.clone())
    } else {
        ConfRole::Primary
    };
    let rendered = pg.control.render_conf(&pg.dynamic().parameters, &role);
    pg.control.write_conf(&rendered)?;
    if !keep {
        pg.control.set_signal_file(role.signal_file())?;
    }
    Ok(())
}

/// pg_hba lines from the local config, the dynamic config, or `bootstrap.pg_hba`, in that order.
fn configured_hba(cfg: &Config, dynamic: &DynamicConfig) -> Option<Vec<String>> {
    cfg.postgresql
        .pg_hba
        .clone()
        .or_else(|| dynamic.pg_hba.clone())
        .or_else(|| (!cfg.bootstrap.pg_hba.is_empty()).then(|| cfg.bootstrap.pg_hba.clone()))
}

/// Waits until the freshly bootstrapped server accepts writes (end of recovery after a custom
/// bootstrap), reporting a paused recovery instead of waiting silently.
async fn wait_for_primary(pg: &Pg) -> Result<(), String> {
    let limit = Duration::from_secs(u64::from(pg.cfg.postgresql.pg_ctl_timeout.max(60)) * 10);
    let mut deadline = tokio::time::Instant::now() + limit;
    let mut reported_pause = false;
    loop {
        let probe = pg.probe().await;
        match &probe.state {
            PgState::Running {
                role: ferroni_model::PgRole::Primary,
                ..
            } => return Ok(()),
            PgState::Running {
                replication: Some(r), ..
            } if r.paused => {
                if !reported_pause {
                    warn!(
                        "recovery is paused at its target (recovery_target_action: pause): inspect the data, then \
                         run SELECT pg_wal_replay_resume() to finish the bootstrap"
                    );
                    pg.set_phase(Some("recovery paused at target: waiting for pg_wal_replay_resume()"));
                    reported_pause = true;
                }
                // An operator decides when to resume; waiting is not a failure.
                deadline = tokio::time::Instant::now() + limit;
            }
            PgState::Stopped { .. } | PgState::NoData | PgState::InvalidData { .. } => {
                let tail = pg.control.log_tail(5).join(" | ");
                return Err(format!("postgres stopped during recovery after bootstrap: {tail}"));
            }
            _ => {}
        }
        if tokio::time::Instant::now() > deadline {
            return Err("postgres did not finish recovery after bootstrap in time".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// pg_basebackup attempts as configured, reporting progress and retries to the tracker.
fn clone_options(pg: &Pg) -> CloneOptions {
    let done = pg.progress.clone();
    let retried = pg.progress.clone();
    CloneOptions {
        attempts: pg.cfg.postgresql.basebackup_attempts,
        retry_delay: Duration::from_secs(u64::from(pg.cfg.postgresql.basebackup_retry_delay)),
        progress: true,
        on_progress: Some(Box::new(move |p| {
            done.update(p.done_kb * 1024, Some(p.total_kb * 1024))
        })),
        on_retry: Some(Box::new(move |attempt, e, delay| {
            retried.retry(attempt, &e.to_string(), delay)
        })),
    }
}

/// Runs the methods in order until one succeeds, then starts following the source.
async fn create_replica(pg: &Pg, source: Option<&Upstream>, methods: &[String]) -> Outcome {
    let target = source
        .and_then(|u| parse_conn_url(&u.conn_url).ok())
        .map(|c| (c.host, c.port));
    let clone_conninfo = target
        .as_ref()
        .map(|(h, p)| conf::clone_conninfo(h, *p, &pg.cfg.postgresql));
    pg.control
        .write_pgpass(target.as_ref().map(|(h, p)| (h.as_str(), *p)))
        .map_err(|e| e.to_string())?;
    pg.control.ensure_data_dir().await.map_err(|e| e.to_string())?;
    let mut failures = Vec::new();
    for name in methods {
        let source_name = source.map(|u| u.name.as_str());
        pg.progress.start(name, source_name);
        let result = if name == "basebackup" {
            let Some(conninfo) = &clone_conninfo else {
                continue;
            };
            pg.control
                .basebackup(conninfo, &pg.cfg.postgresql.basebackup, clone_options(pg))
                .await
        } else {
            let Some(method) = pg.cfg.postgresql.replica_methods.get(name) else {
                failures.push(format!("{name}: no section postgresql.{name}"));
                continue;
            };
            if clone_conninfo.is_none() && !method.no_leader {
                continue;
            }
            let watcher = watch_dir(pg.progress.clone(), pg.control.data_dir().to_path_buf());
            let result = pg
                .control
                .run_replica_method(method, clone_conninfo.as_deref(), &pg.tools_dir)
                .await;
            watcher.abort();
            result
        };
        pg.progress.finish(result.is_ok());
        match result {
            Ok(()) => {
                info!("replica created with method {name}");
                return pg
                    .start_replica(source)
                    .await
                    .map(|_| None)
                    .map_err(|e| format!("start replica: {e}"));
            }
            Err(e) => {
                warn!("{e}");
                failures.push(e.to_string());
            }
        }
    }
    if failures.is_empty() {
        return Err("no replica method could run (none works without a leader)".into());
    }
    Err(format!("all replica methods failed: {}", failures.join("; ")))
}
