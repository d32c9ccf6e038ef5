//! The daemon loop: observe (DCS, Postgres), decide, execute, publish; then sleep until `loop_wait`
//! passes, the leader key changes, a background action ends, the REST API changes the config, or a
//! signal arrives. Only this module owns the runtime; the rules live in `ferroni-decision`.

use crate::callbacks::Callbacks;
use crate::control::{Pending, Reply};
use crate::execute::{Executor, Step};
use crate::fencing::Fencing;
use crate::long_action::LongActions;
use crate::member;
use crate::reread::{ConfigSource, keep_fixed};
use crate::rewind_marker::RewindMarker;
use crate::snapshot;
use anyhow::Result;
use ferroni_dcs::Dcs;
use ferroni_decision::{ActionResult, Decision, LongAction, Memory, Observation, Request, decide};
use ferroni_model::{ClusterView, Config, DynamicConfig, PgState, Role};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// Guarded actions re-run `decide` with their outcome; a decision never needs more than a few.
const MAX_DECISIONS_PER_CYCLE: usize = 6;
/// The DCS watches' own bound: the loop timer ends their wait, and a tokio timer due within
/// seconds costs wakes even when it never fires. The timer wheel files a timer by the highest time
/// bit in which its deadline differs from now, and wakes at the start of its slot to move it
/// down: a 1.2 s timeout that crosses a 4.096 s boundary (every fourth cycle) woke the loop there.
/// Due in an hour, the slot starts minutes away.
const WATCH_BOUND: Duration = Duration::from_secs(3600);

pub struct Daemon {
    pub cfg: Config,
    pub dynamic: DynamicConfig,
    pub dcs: Arc<dyn Dcs>,
    pub long: LongActions,
    pub memory: Memory,
    pub wake: Arc<Notify>,
    pub publisher: snapshot::Publisher,
    pub http: reqwest::Client,
    callbacks: Callbacks,
    fencing: Fencing,
    rewind_marker: RewindMarker,
    source: ConfigSource,
    /// Set by SIGHUP: re-read the local configuration.
    reread: Arc<AtomicBool>,
    metrics: crate::metrics::LoopMetrics,
    requests: mpsc::Receiver<Pending>,
    /// A restart answers when it has finished, not when it starts.
    restart_reply: Option<Reply>,
    config_changed: bool,
    started: Instant,
    last_reason: String,
    dcs_last_seen: Option<u64>,
    last_role: Role,
}

/// How a cycle ended.
pub enum CycleEnd {
    Continue,
    Fatal(String),
}

/// How the loop talks to the REST API and to the other members.
pub struct Links {
    /// Woken by the API (config changed, operator request) and by finished background actions.
    pub wake: Arc<Notify>,
    pub publisher: snapshot::Publisher,
    pub requests: mpsc::Receiver<Pending>,
    /// The client for the other members' REST APIs.
    pub http: reqwest::Client,
    /// Set (and `wake` notified) on SIGHUP.
    pub reread: Arc<AtomicBool>,
}

impl Daemon {
    pub fn new(
        cfg: Config,
        source: ConfigSource,
        dynamic: DynamicConfig,
        dcs: Arc<dyn Dcs>,
        long: LongActions,
        links: Links,
    ) -> Daemon {
        let Links {
            wake,
            publisher,
            requests,
            http,
            reread,
        } = links;
        let rewind_marker = RewindMarker::new(&cfg.postgresql.data_dir);
        Daemon {
            callbacks: Callbacks::new(&cfg),
            fencing: Fencing::start(&cfg),
            memory: Memory {
                rewind_pending: rewind_marker.pending(),
                ..Memory::default()
            },
            rewind_marker,
            source,
            reread,
            metrics: Default::default(),
            cfg,
            dynamic,
            dcs,
            long,
            wake,
            publisher,
            http,
            requests,
            restart_reply: None,
            config_changed: false,
            started: Instant::now(),
            last_reason: String::new(),
            dcs_last_seen: None,
            last_role: Role::Uninitialized,
        }
    }

    /// Runs cycles until `shutdown` resolves, then stops Postgres and leaves the cluster.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let timer = crate::loop_timer::LoopTimer::new();
        loop {
            if let CycleEnd::Fatal(msg) = self.cycle().await {
                error!("{msg}");
                anyhow::bail!(msg);
            }
            let wait = Duration::from_secs(u64::from(self.dynamic.loop_wait));
            let follower = self.last_role != Role::Primary;
            let dcs = self.dcs.clone();
            tokio::select! {
                _ = timer.sleep(wait) => {}
                _ = self.wake.notified() => {}
                // Replicas wake on a leader change so an election starts at once, not after loop_wait;
                // the primary wakes on a member joining, so its slot exists before the member's image
                // is done and streams at its first try (Postgres retries a missing slot only after
                // wal_retrieve_retry_interval, 5 s).
                _ = dcs.watch_leader(WATCH_BOUND), if follower => {}
                _ = dcs.watch_roster(WATCH_BOUND), if !follower => {}
                _ = &mut shutdown => {
                    self.shutdown().await;
                    return Ok(());
                }
            }
        }
    }

    async fn cycle(&mut self) -> CycleEnd {
        let cycle_started = Instant::now();
        let finished = self.long.take_finished();
        let dcs_started = Instant::now();
        let cluster = self.load_cluster().await;
        self.metrics
            .dcs_read(dcs_started.elapsed(), cluster.as_ref().and_then(|c| c.leader_name()));
        self.refresh_dynamic(cluster.as_ref());
        let mut pending = self.requests.try_recv().ok();
        if pending.is_some() && !self.requests.is_empty() {
            // One request per cycle; the next cycle comes at once for the others.
            self.wake.notify_one();
        }
        let reload_request = pending.as_ref().is_some_and(|p| p.request == Request::Reload);
        if self.reread.swap(false, Ordering::SeqCst) || reload_request {
            self.reread_config();
        }
        let probe = self.long.pg.probe().await;
        let mut exec = Executor::new(self.dcs.clone(), &self.cfg, &self.dynamic);
        let mut decision: Option<Decision> = None;
        for _ in 0..MAX_DECISIONS_PER_CYCLE {
            let obs = Observation {
                now_ms: self.started.elapsed().as_millis() as u64,
                wall_ms: epoch_millis(),
                config: &self.cfg,
                dynamic: &self.dynamic,
                cluster: cluster.as_ref(),
                pg: &probe.state,
                action: self.long.status(),
                finished: finished.clone(),
                outcomes: exec.outcomes.clone(),
                peers: exec.peers.clone(),
                request: pending.as_ref().map(|p| p.request),
                config_changed: self.config_changed,
            };
            let d = decide(&obs, &mut self.memory);
            // On disk before the demotion that set it runs.
            self.rewind_marker.store(self.memory.rewind_pending);
            if let (Some(reply), Some(p)) = (d.reply.clone(), pending.take()) {
                self.answer(p, reply);
            }
            let step = exec
                .run(&d.actions, cluster.as_ref(), &probe.state, &self.http, &mut self.long)
                .await;
            decision = Some(d);
            match step {
                Step::Done => break,
                Step::Decide => continue,
                Step::Fatal(msg) => return CycleEnd::Fatal(msg),
            }
        }
        if let Some(p) = pending {
            // The decision did not consider the request (another rule came first): try next cycle.
            let _ = p
                .reply
                .send(Err((503, "the request could not be handled now; try again".into())));
        }
        self.config_changed = false;
        self.fence(&exec, &probe.state);
        if let Some(f) = &finished
            && matches!(f.action, LongAction::Restart)
            && let Some(reply) = self.restart_reply.take()
        {
            let _ = reply.send(
                f.result
                    .clone()
                    .map(|_| "restarted successfully".to_string())
                    .map_err(|e| (503, format!("restart failed: {e}"))),
            );
        }
        let Some(decision) = decision else {
            return CycleEnd::Continue;
        };
        self.log_reason(&decision);
        if let Some(event) = finished.as_ref().and_then(callback_for) {
            self.callbacks.fire(event, decision.role);
        }
        self.metrics.cycle(cycle_started.elapsed());
        self.publish(cluster.as_ref(), &probe, &decision, &exec).await;
        self.last_role = decision.role;
        CycleEnd::Continue
    }

    async fn load_cluster(&mut self) -> Option<ClusterView> {
        let timeout = Duration::from_secs(u64::from(self.dynamic.retry_timeout));
        match tokio::time::timeout(timeout, self.dcs.load()).await {
            Ok(Ok(view)) => {
                self.dcs_last_seen = Some(epoch_secs());
                Some(view)
            }
            Ok(Err(e)) => {
                warn!("{e}");
                None
            }
            Err(_) => {
                warn!(
                    "DCS did not answer within retry_timeout ({} s)",
                    self.dynamic.retry_timeout
                );
                None
            }
        }
    }

    /// Re-reads the local configuration (SIGHUP, `POST /reload`). An invalid file changes nothing.
    fn reread_config(&mut self) {
        let loaded = match self.source.load() {
            Ok(loaded) => loaded,
            Err(e) => {
                error!("keeping the configuration in force: the new one is invalid: {e}");
                return;
            }
        };
        for w in &loaded.warnings {
            warn!("configuration: {w}");
        }
        let (mut cfg, kept) = keep_fixed(&self.cfg, loaded.config);
        for key in kept {
            warn!("{key} changed in the configuration: it takes effect when ferroni restarts");
        }
        if !Fencing::may_lead(&cfg) {
            cfg.tags.nofailover = true;
        }
        if cfg == self.cfg {
            info!("configuration re-read: nothing changed");
            return;
        }
        info!("configuration re-read: applying the changes");
        self.callbacks = Callbacks::new(&cfg);
        self.long.set_config(cfg.clone());
        self.cfg = cfg;
        self.config_changed = true;
    }

    /// Takes the dynamic configuration from the DCS when it is there and valid; a bad value written
    /// by hand keeps the previous configuration in force and says why.
    fn refresh_dynamic(&mut self, cluster: Option<&ClusterView>) {
        let Some(cfg) = cluster.and_then(|c| c.config.as_ref()) else {
            return;
        };
        if cfg.value == self.dynamic.raw {
            return;
        }
        match ferroni_config::parse_dynamic(&cfg.value, "config") {
            Ok(new) => {
                if new.ttl != self.dynamic.ttl {
                    let dcs = self.dcs.clone();
                    let ttl = new.ttl;
                    tokio::spawn(async move { dcs.set_ttl(ttl).await });
                }
                info!("dynamic configuration changed (config version {})", cfg.version);
                self.config_changed = true;
                self.long.set_dynamic(new.clone());
                self.dynamic = new;
            }
            Err(e) => warn!("ignoring invalid dynamic configuration in the DCS: {e}"),
        }
    }

    /// Arms the fence after a confirmed lock; disarms once this node neither leads nor is still
    /// demoting a primary (a demotion that stalls must still be fenced).
    fn fence(&mut self, exec: &Executor, pg: &PgState) {
        self.fencing.ensure_fence();
        if self.dynamic.pause {
            self.fencing.release();
            return;
        }
        if let Some(started) = exec.lock_confirmed_at {
            self.fencing.confirmed(started, &self.dynamic);
            return;
        }
        let demoting = matches!(
            self.long.status(),
            ferroni_decision::ActionStatus::Running(LongAction::Demote { .. })
        );
        let writable = pg.running_role() == Some(ferroni_model::PgRole::Primary);
        if !demoting && !writable {
            self.fencing.release();
        }
    }

    fn answer(&mut self, p: Pending, reply: Result<String, (u16, String)>) {
        if matches!(p.request, ferroni_decision::Request::Restart) && reply.is_ok() {
            self.restart_reply = Some(p.reply);
            return;
        }
        let _ = p.reply.send(reply);
    }

    fn log_reason(&mut self, d: &Decision) {
        // Patroni logs its reason every cycle; so do we, at info, like its operators expect.
        info!("{}", d.reason);
        self.last_reason = d.reason.clone();
    }

    async fn publish(
        &mut self,
        cluster: Option<&ClusterView>,
        probe: &ferroni_postgres::Probe,
        d: &Decision,
        exec: &Executor,
    ) {
        let action = self.long.status();
        let mut state = member::state_text(&self.cfg, &probe.state, &action, self.long.pg.phase());
        if self.memory.bootstrap_failed.is_some() && !probe.state.has_data() {
            state = match self.cfg.bootstrap.method {
                ferroni_model::BootstrapMethod::Initdb => "initdb failed",
                ferroni_model::BootstrapMethod::Custom(_) => "custom bootstrap failed",
            };
        }
        let role = published_role(
            d.role,
            &probe.state,
            exec.holds_lock(cluster, &self.cfg.name),
            &self.dynamic,
        );
        let progress_now = self.long.pg.progress.snapshot();
        let progress = progress_now.as_ref().and_then(|p| serde_json::to_value(p).ok());
        if cluster.is_some() {
            let mut data = member::member_data(&self.cfg, &probe.state, role, state);
            if matches!(action, ferroni_decision::ActionStatus::Running(LongAction::Promote)) {
                data.extra
                    .insert("checkpoint_after_promote".into(), serde_json::Value::Bool(false));
            }
            if let Some(err) = &self.memory.last_error {
                data.extra
                    .insert("last_error".into(), serde_json::Value::String(err.clone()));
            }
            if self.dynamic.pause {
                data.pause = Some(true);
            }
            if let Some(p) = &progress {
                data.extra.insert("progress".into(), p.clone());
            }
            let timeout = Duration::from_secs(u64::from(self.dynamic.retry_timeout));
            match tokio::time::timeout(timeout, self.dcs.touch_member(&data)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!("failed to update member key: {e}"),
                Err(_) => warn!("failed to update member key: DCS did not answer in time"),
            }
        }
        let holds = exec.holds_lock(cluster, &self.cfg.name);
        self.publisher.publish(snapshot::build(snapshot::Inputs {
            cfg: &self.cfg,
            dynamic: &self.dynamic,
            cluster,
            probe,
            role,
            state,
            is_leader: holds,
            dcs_last_seen: self.dcs_last_seen,
            progress: progress.as_ref(),
            metrics: self.metrics.samples(progress_now.as_ref()),
            last_error: self.memory.last_error.as_deref(),
            action: &action,
        }));
    }

    async fn shutdown(&mut self) {
        info!("shutting down: stopping postgres");
        self.long.abort();
        match self.long.pg.stop_fast().await {
            Ok(()) => self.callbacks.fire("on_stop", self.last_role),
            Err(e) => warn!("failed to stop postgres: {e}"),
        }
        let timeout = Duration::from_secs(u64::from(self.dynamic.retry_timeout).min(5));
        let released = tokio::time::timeout(timeout, self.dcs.release_leader()).await;
        let _ = tokio::time::timeout(timeout, self.dcs.shutdown()).await;
        self.fencing.shutdown();
        // Only a leader has a key to release; a replica saying so misled operators reading logs.
        match (self.last_role, released) {
            (Role::Primary | Role::StandbyLeader, Ok(Ok(()))) => info!("leader key released; exiting"),
            (Role::Primary | Role::StandbyLeader, _) => warn!("could not release the leader key; exiting"),
            _ => info!("member key removed; exiting"),
        }
    }
}

/// `standby_leader` instead of `primary` for the lock holder of a standby cluster.
fn published_role(role: Role, pg: &PgState, holds_lock: bool, dynamic: &DynamicConfig) -> Role {
    if holds_lock && dynamic.standby_cluster.is_some() && pg.running_role() == Some(ferroni_model::PgRole::Replica) {
        return Role::StandbyLeader;
    }
    role
}

fn epoch_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The callback a finished background action triggers.
fn callback_for(finished: &ActionResult) -> Option<&'static str> {
    if finished.result.is_err() {
        return None;
    }
    match finished.action {
        LongAction::Bootstrap
        | LongAction::CreateReplica { .. }
        | LongAction::StartPrimary
        | LongAction::StartReplica { .. }
        | LongAction::Rejoin { .. } => Some("on_start"),
        LongAction::Stop { .. } => Some("on_stop"),
        LongAction::Promote | LongAction::Demote { .. } => Some("on_role_change"),
        LongAction::Restart => Some("on_restart"),
        LongAction::Follow { .. } => None,
        LongAction::Reinitialize { .. } => Some("on_start"),
    }
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
