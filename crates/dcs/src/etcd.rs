//! The etcd v3 backend, with Patroni's `etcd3` semantics (one lease per node shared by the leader key
//! and the member key, CAS through transactions on `create_revision`, `mod_revision` and value).
//!
//! Owns: the gRPC client (created on first use), the node's lease and its keep-alive stream, and the
//! bookkeeping that lets `touch_member` skip identical writes and `watch_leader` notice changes made
//! after the last `load`.
//!
//! Failure: every call is bounded by `retry_timeout`. Inside that budget, failures that look like
//! connectivity (refused connections, timeouts, "no leader") are retried with a short backoff; when the
//! budget is spent they surface as [`DcsError::Unavailable`]. An answer from etcd that rejects the request
//! is [`DcsError::Failed`] at once. Streams (lease keep-alive, watch) carry no deadline of their own in
//! etcd-client, so every read on them is wrapped in a timeout and a broken stream is re-opened.

use crate::api::{Dcs, DcsError, NodeIdentity};
use crate::codec::{self, RawKv};
use crate::etcd_cache::{self, Cache, Marks, joins_or_leaves};
use crate::keys::Keys;
use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KeyValue, LeaseKeepAliveStream, LeaseKeeper,
    PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use ferroni_model::{ClusterView, Failover, HistoryLine, MemberData, Status};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::{Instant, sleep, timeout_at};
use tonic::Code;

/// Unforced renewals (member key only) happen at most this often, and at least every quarter ttl
/// (see [`EtcdDcs::ensure_lease`]): the member key then always has three quarters of its ttl
/// left, and an idle replica does not renew every second. The leader's renewals are forced.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);
/// A forced renewal (the leader's) is skipped when one started within this, and at least within
/// [`EtcdDcs::leader_renew_every`]: a leader's `load` renews the lease to confirm the watched copy,
/// and its `update_leader` a moment later need not renew it again.
const JUST_RENEWED: Duration = Duration::from_millis(250);
/// HTTP/2 ping interval: a ping goes out once nothing was read for this long, and tears down a
/// black-holed connection if unanswered (etcd's default `--grpc-keepalive-min-time` is 5 s; it
/// answers pings that come more often with GOAWAY "too_many_pings"). A healthy daemon reads every
/// few seconds and never pings, but hyper re-arms the ping timer each time it expires, and its
/// firing (with the timer wheel's moves before it) was three wakes per period: a sixth of an idle
/// node's CPU at 6 s. Calls fail on their own deadlines meanwhile, so the interval only bounds how
/// long a dead endpoint stays in the channel (here 15 s plus the ping timeout, within a ttl).
const H2_PING_EVERY: Duration = Duration::from_secs(15);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How one etcd call failed, before it is reduced to a [`DcsError`].
#[derive(Debug)]
enum Fail {
    Unavailable(String),
    /// A put or keep-alive named a lease etcd no longer has (it expired or was revoked).
    LeaseGone(String),
    Failed(String),
}

impl From<Fail> for DcsError {
    fn from(f: Fail) -> DcsError {
        match f {
            Fail::Unavailable(m) => DcsError::Unavailable(m),
            Fail::LeaseGone(m) | Fail::Failed(m) => DcsError::Failed(m),
        }
    }
}

fn classify(what: &str, err: etcd_client::Error) -> Fail {
    use etcd_client::Error as E;
    let msg = format!("etcd {what}: {err}");
    match &err {
        E::GRpcStatus(status) => match status.code() {
            // etcd's only NotFound on KV and lease calls is "requested lease not found".
            Code::NotFound if status.message().contains("lease") => Fail::LeaseGone(msg),
            // etcd's rate limit is worth a retry; its other ResourceExhausted answers (database
            // space exceeded, message over the gRPC size limit) will not change by retrying.
            Code::ResourceExhausted if status.message().contains("too many requests") => Fail::Unavailable(msg),
            // tonic reports its own client-side timeout as Cancelled and h2 failures as
            // Unknown/Internal; etcd uses Unavailable for "no leader" and "request timed out".
            Code::Cancelled
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Internal
            | Code::Unavailable => Fail::Unavailable(msg),
            _ => Fail::Failed(msg),
        },
        E::TransportError(_) | E::IoError(_) | E::WatchError(_) | E::LeaseKeepAliveError(_) | E::EndpointError(_) => {
            Fail::Unavailable(msg)
        }
        _ => Fail::Failed(msg),
    }
}

/// The node's lease and the stream its keep-alives travel on.
#[derive(Default)]
struct LeaseState {
    id: Option<i64>,
    renewed_at: Option<Instant>,
    stream: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
}

impl LeaseState {
    fn forget(&mut self) {
        *self = LeaseState::default();
    }
}

/// The etcd v3 DCS of one node.
pub struct EtcdDcs {
    identity: NodeIdentity,
    keys: Keys,
    endpoints: Vec<String>,
    options: ConnectOptions,
    client: Mutex<Option<Client>>,
    lease: Mutex<LeaseState>,
    ttl: AtomicU32,
    /// Header revision of the last successful direct `load`; `watch_leader` starts after it.
    last_load_revision: AtomicI64,
    /// The watched copy of the cluster's keys, and the task that keeps it current.
    cache: Arc<Cache>,
    /// Whether `load` may use the watched copy at all (see [`EtcdDcs::with_watched_copy`]).
    cache_enabled: bool,
    cache_task: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    /// Revision of this node's last write into the cluster: the copy is used once it has seen it.
    last_write: AtomicI64,
    /// The cache's change counters as of the last `load` served from it; `None` after a direct
    /// read, when `watch_leader` and `watch_roster` open a watch of their own.
    loaded_marks: std::sync::Mutex<Option<Marks>>,
    /// Whether this node holds the leader key, as its last acquire/update/release found.
    leading: std::sync::atomic::AtomicBool,
    /// When the last successful renewal (or grant) of the lease started, in CLOCK_BOOTTIME
    /// nanoseconds; 0 before the first.
    renewed_boottime_ns: std::sync::atomic::AtomicU64,
    /// The view decoded from the watched copy and the copy's generation it was decoded at.
    decoded: std::sync::Mutex<Option<(u64, ClusterView)>>,
    /// Loads served from the watched copy (for tests and metrics).
    cached_loads: std::sync::atomic::AtomicU64,
    /// Value and lease of the last member-key write, to skip identical rewrites as Patroni does.
    member_written: std::sync::Mutex<Option<(String, i64)>>,
}

impl EtcdDcs {
    /// Prepares a client for `endpoints` (`host:port` or `http://host:port`). Nothing is contacted
    /// here: the connection is made by the first operation, so this succeeds while etcd is down.
    /// Errors only for an unusable configuration (no endpoints, `https`, ttl 0).
    pub fn connect(
        endpoints: Vec<String>,
        user: Option<(String, String)>,
        identity: NodeIdentity,
    ) -> Result<EtcdDcs, DcsError> {
        let endpoints = normalize_endpoints(endpoints)?;
        if identity.ttl == 0 || identity.retry_timeout.is_zero() {
            return Err(DcsError::Failed("ttl and retry_timeout must be positive".into()));
        }
        let keys = Keys::new(&identity.namespace, &identity.scope);
        Ok(EtcdDcs {
            options: connect_options(identity.retry_timeout, user),
            cache: Arc::new(Cache::new(&keys.leader(), &keys.members_prefix())),
            keys,
            ttl: AtomicU32::new(identity.ttl),
            identity,
            endpoints,
            client: Mutex::new(None),
            lease: Mutex::new(LeaseState::default()),
            last_load_revision: AtomicI64::new(0),
            cache_enabled: false,
            cache_task: std::sync::Mutex::new(None),
            last_write: AtomicI64::new(0),
            loaded_marks: std::sync::Mutex::new(None),
            cached_loads: std::sync::atomic::AtomicU64::new(0),
            leading: std::sync::atomic::AtomicBool::new(false),
            renewed_boottime_ns: std::sync::atomic::AtomicU64::new(0),
            decoded: std::sync::Mutex::new(None),
            member_written: std::sync::Mutex::new(None),
        })
    }

    /// Serve `load` from a watched copy of the cluster's keys (see `etcd_cache`), for a long-lived
    /// client that loads every cycle: the daemon. Without it every `load` is a range read, which
    /// short-lived clients (ferronictl) and observers of other processes' writes want.
    pub fn with_watched_copy(mut self) -> EtcdDcs {
        self.cache_enabled = true;
        self
    }

    /// Records a write this node made into the cluster's keys (its response's header revision).
    fn wrote(&self, header: Option<&etcd_client::ResponseHeader>) {
        if let Some(h) = header {
            self.last_write.fetch_max(h.revision(), Ordering::SeqCst);
        }
    }

    /// Starts the task that keeps [`Cache`] current, once a client exists.
    async fn ensure_cache_task(&self) {
        if !self.cache_enabled {
            return;
        }
        if self.cache_task.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return;
        }
        let Ok(client) = self.client(self.deadline()).await else {
            return;
        };
        let mut slot = self.cache_task.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let task = etcd_cache::run(
                client,
                self.keys.prefix().to_string(),
                self.cache.clone(),
                self.identity.retry_timeout,
            );
            *slot = Some(tokio::spawn(task).abort_handle());
        }
    }

    fn set_loaded_marks(&self, marks: Option<Marks>) {
        *self.loaded_marks.lock().unwrap_or_else(|p| p.into_inner()) = marks;
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// How many `load`s were served from the watched copy rather than a range read.
    pub fn cached_loads(&self) -> u64 {
        self.cached_loads.load(Ordering::Relaxed)
    }

    /// The lease this node currently holds (as far as it knows).
    pub async fn lease_id(&self) -> Option<i64> {
        self.lease.lock().await.id
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.identity.retry_timeout
    }

    /// How long etcd's last answer on the watch's connection vouches for the watched copy: three
    /// quarters of retry_timeout, leaving the last quarter to wait for a new answer, so a frozen
    /// etcd still fails reads within retry_timeout. Every confirmation is a message and etcd's
    /// ping after it (grpc-go probes the bandwidth after each DATA frame it receives), and that
    /// round trip was a sixth of an idle node's CPU: at half a retry_timeout it came
    /// every other loop with loop_wait 1, now every third.
    fn trusted_for(&self) -> Duration {
        self.identity.retry_timeout * 3 / 4
    }

    /// What is left of retry_timeout to get a confirmation before reading etcd directly.
    fn confirm_budget(&self) -> Duration {
        self.identity.retry_timeout - self.trusted_for()
    }

    fn timed_out(&self, what: &str) -> Fail {
        Fail::Unavailable(format!(
            "etcd {what}: no answer within {:?}",
            self.identity.retry_timeout
        ))
    }

    async fn client(&self, deadline: Instant) -> Result<Client, Fail> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        // Without credentials this only builds the channel; with them it authenticates, which needs
        // etcd, so a failure leaves the slot empty and the next call tries again.
        let connecting = Client::connect(&self.endpoints, Some(self.options.clone()));
        let client = match timeout_at(deadline, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(classify("connect", e)),
            Err(_) => return Err(self.timed_out("connect")),
        };
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Runs `op` until it succeeds, fails for a reason other than connectivity, or `deadline` passes.
    async fn call<T, F, Fut>(&self, deadline: Instant, what: &str, mut op: F) -> Result<T, Fail>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let client = self.client(deadline).await?;
            let fail = match timeout_at(deadline, op(client)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => classify(what, e),
                Err(_) => return Err(self.timed_out(what)),
            };
            if !matches!(fail, Fail::Unavailable(_)) || Instant::now() + backoff >= deadline {
                return Err(fail);
            }
            tracing::debug!("retrying after: {fail:?}");
            sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn txn(&self, deadline: Instant, what: &str, txn: Txn) -> Result<TxnResponse, Fail> {
        self.call(deadline, what, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }

    async fn put(&self, key: String, value: String, lease: i64) -> Result<(), DcsError> {
        let options = PutOptions::new().with_lease(lease);
        let resp = self
            .call(self.deadline(), "put", |mut c| {
                let (key, value, options) = (key.clone(), value.clone(), options.clone());
                async move { c.put(key, value, Some(options)).await }
            })
            .await?;
        self.wrote(resp.header());
        Ok(())
    }

    async fn delete(&self, key: String, options: Option<DeleteOptions>) -> Result<(), DcsError> {
        let resp = self
            .call(self.deadline(), "delete", |mut c| {
                let (key, options) = (key.clone(), options.clone());
                async move { c.delete(key, options).await }
            })
            .await?;
        if resp.deleted() > 0 {
            self.wrote(resp.header());
        }
        Ok(())
    }

    /// Writes `key` only if `compare` holds; `Ok(false)` when it did not.
    async fn put_if(&self, what: &str, compare: Compare, key: String, value: String) -> Result<bool, DcsError> {
        let txn = Txn::new().when([compare]).and_then([TxnOp::put(key, value, None)]);
        self.txn_wrote_if_succeeded(what, txn).await
    }

    /// Runs a conditional write; `Ok(false)` when its comparison failed (nothing written).
    async fn txn_wrote_if_succeeded(&self, what: &str, txn: Txn) -> Result<bool, DcsError> {
        let resp = self.txn(self.deadline(), what, txn).await?;
        if resp.succeeded() {
            self.wrote(resp.header());
        }
        Ok(resp.succeeded())
    }

    /// `None`: create only if absent; `Some(v)`: replace only if the key's mod_revision is still `v`.
    fn version_compare(key: &str, version: Option<i64>) -> Compare {
        match version {
            None => Compare::create_revision(key, CompareOp::Equal, 0),
            Some(v) => Compare::mod_revision(key, CompareOp::Equal, v),
        }
    }

    /// The view last decoded from the watched copy, if the copy is still at `generation`.
    fn decoded_view(&self, generation: u64) -> Option<ClusterView> {
        match &*self.decoded.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((g, view)) if *g == generation => Some(view.clone()),
            _ => None,
        }
    }

    fn set_renewed_boottime(&self, at: Duration) {
        self.renewed_boottime_ns.store(
            u64::try_from(at.as_nanos()).unwrap_or(u64::MAX).max(1),
            Ordering::SeqCst,
        );
    }

    /// How often the leader renews its lease: every cycle with Patroni's defaults (loop_wait 10 s),
    /// every third one with loop_wait 1 and retry_timeout 4. The key then always has at least three
    /// quarters of its ttl left, the renewal confirms the watched copy as often as a load needs
    /// ([`EtcdDcs::trusted_for`]), and the fence counts from the renewal itself
    /// ([`Dcs::lease_renewed_at`]), so fencing keeps its whole safety margin.
    fn leader_renew_every(&self) -> Duration {
        let ttl = Duration::from_secs(u64::from(self.ttl.load(Ordering::SeqCst)));
        self.trusted_for().min(ttl / 4).max(JUST_RENEWED)
    }

    /// How old the member key's lease may get: a quarter of the ttl, at least [`KEEPALIVE_EVERY`].
    fn member_renew_every(&self) -> Duration {
        (Duration::from_secs(u64::from(self.ttl.load(Ordering::SeqCst))) / 4).max(KEEPALIVE_EVERY)
    }

    /// The node's lease, granted if there is none and renewed if the last renewal is older than
    /// [`EtcdDcs::member_renew_every`] (when `force`, older than [`EtcdDcs::leader_renew_every`]).
    /// A lease etcd has forgotten is replaced.
    async fn ensure_lease(&self, deadline: Instant, force: bool) -> Result<i64, Fail> {
        let mut state = self.lease.lock().await;
        if let Some(id) = state.id {
            let max_age = if force {
                self.leader_renew_every()
            } else {
                self.member_renew_every()
            };
            if state.renewed_at.is_some_and(|t| t.elapsed() < max_age) || self.renew(&mut state, id, deadline).await? {
                return Ok(id);
            }
            tracing::info!(lease = id, "etcd lease expired, granting a new one");
            state.forget();
        }
        let ttl = i64::from(self.ttl.load(Ordering::SeqCst));
        let started_boottime = boottime();
        let granted = self
            .call(deadline, "lease grant", |mut c| async move {
                c.lease_grant(ttl, None).await
            })
            .await?;
        if !granted.error().is_empty() {
            return Err(Fail::Failed(format!("etcd lease grant: {}", granted.error())));
        }
        state.id = Some(granted.id());
        state.renewed_at = Some(Instant::now());
        self.set_renewed_boottime(started_boottime);
        Ok(granted.id())
    }

    /// Renews the lease `id`; `Ok(false)` when etcd no longer knows it. `renewed_at` is when the
    /// renewal started: the lease runs at least its ttl from then. A renewal's answer comes on the
    /// watch's connection, after every event sent before it: it confirms the watched copy.
    async fn renew(&self, state: &mut LeaseState, id: i64, deadline: Instant) -> Result<bool, Fail> {
        let started = Instant::now();
        let started_boottime = boottime();
        let alive = self.keep_alive(state, id, deadline).await?;
        if alive {
            state.renewed_at = Some(started);
            self.set_renewed_boottime(started_boottime);
            self.cache.mark_confirmed();
        }
        Ok(alive)
    }

    /// A replica's confirmation of the watched copy, made by renewing its lease when that would be
    /// due before the next confirmation anyway: the renewal is the same one message (and etcd's
    /// ping after it) a progress request is, and it saves the renewal that would have followed.
    /// `false` (nothing renewed) when there is no lease yet or it is too fresh.
    async fn renew_early(&self, deadline: Instant) -> bool {
        let mut state = self.lease.lock().await;
        let early = self.member_renew_every().saturating_sub(self.trusted_for());
        match (state.id, state.renewed_at) {
            (Some(id), Some(at)) if at.elapsed() >= early => match self.renew(&mut state, id, deadline).await {
                Ok(true) => true,
                Ok(false) => {
                    // The next write grants a new lease, as `ensure_lease` would.
                    state.forget();
                    false
                }
                Err(_) => false,
            },
            _ => false,
        }
    }

    /// One keep-alive round trip. `Ok(false)`: etcd no longer knows the lease.
    async fn keep_alive(&self, state: &mut LeaseState, id: i64, deadline: Instant) -> Result<bool, Fail> {
        if let Some((keeper, stream)) = state.stream.as_mut() {
            let round = async {
                keeper.keep_alive().await?;
                stream.message().await
            };
            match timeout_at(deadline, round).await {
                Ok(Ok(Some(resp))) if resp.id() == id => return Ok(resp.ttl() > 0),
                // Broken, closed or stale (etcd restarted): drop it and open a fresh one below.
                outcome => tracing::debug!("lease keep-alive stream unusable: {outcome:?}"),
            }
            state.stream = None;
        }
        // Opening the stream is itself a keep-alive; etcd-client reports an unknown lease as
        // LeaseKeepAliveError, which is the only error it raises with that variant at this point.
        let opened = self
            .call(deadline, "lease keep-alive", |mut c| async move {
                match c.lease_keep_alive(id).await {
                    Ok(pair) => Ok(Some(pair)),
                    Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        let alive = opened.is_some();
        state.stream = opened;
        Ok(alive)
    }

    async fn drop_lease(&self, id: i64) {
        let mut state = self.lease.lock().await;
        if state.id == Some(id) {
            state.forget();
        }
    }

    /// Runs a write bound to the node's lease; if etcd says the lease is gone, grants a new one and
    /// tries once more (Patroni does the same on `LeaseNotFound`).
    async fn with_lease<T, F, Fut>(&self, force: bool, mut op: F) -> Result<T, DcsError>
    where
        F: FnMut(i64, Instant) -> Fut,
        Fut: Future<Output = Result<T, Fail>>,
    {
        let deadline = self.deadline();
        let lease = self.ensure_lease(deadline, force).await?;
        match op(lease, deadline).await {
            Err(Fail::LeaseGone(msg)) => {
                tracing::info!(lease, "{msg}; granting a new lease");
                self.drop_lease(lease).await;
                let lease = self.ensure_lease(deadline, false).await?;
                Ok(op(lease, deadline).await?)
            }
            other => Ok(other?),
        }
    }

    fn member_slot(&self) -> std::sync::MutexGuard<'_, Option<(String, i64)>> {
        self.member_written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the cached member write when a read shows the key differs (deleted, rewritten or
    /// on another lease), so the next `touch_member` writes it again.
    fn check_member_cache<'a>(&self, mut kvs: impl Iterator<Item = RawKv<'a>>) {
        let key = self.keys.member(&self.identity.name);
        let mut cached = self.member_slot();
        let Some((value, lease)) = cached.as_ref() else { return };
        let still_there = kvs.any(|kv| kv.key == key.as_bytes() && kv.value == value.as_bytes() && kv.lease == *lease);
        if !still_there {
            *cached = None;
        }
    }

    /// Waits for a change of `what` since the last load, or `timeout`: on the cache's watch when
    /// the last load was served from it, else on a watch of its own, re-opened after failures.
    async fn watch(&self, what: Watched, timeout: Duration) -> Result<(), DcsError> {
        let deadline = Instant::now() + timeout;
        let loaded = *self.loaded_marks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(marks) = loaded
            && self.cache.is_ready()
        {
            let (mut changes, seen) = match what {
                Watched::Leader => (self.cache.leader_changes(), marks.leader),
                Watched::Roster => (self.cache.roster_changes(), marks.roster),
            };
            let changed = changes.wait_for(|seq| *seq != seen);
            let _ = timeout_at(deadline, changed).await;
            return Ok(());
        }
        let mut start = match self.last_load_revision.load(Ordering::SeqCst) {
            0 => None,
            rev => Some(rev + 1),
        };
        let mut backoff = FIRST_BACKOFF;
        loop {
            let fail = match self.watch_once(what, deadline, &mut start).await {
                Ok(()) => return Ok(()),
                Err(fail) => fail,
            };
            if Instant::now() + backoff >= deadline {
                tokio::time::sleep_until(deadline).await;
                return Err(fail.into());
            }
            tracing::debug!("re-opening the {what:?} watch after: {fail:?}");
            sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Opens a watch on `what` from `start` (or from now) and waits for one change of it.
    async fn watch_once(&self, what: Watched, deadline: Instant, start: &mut Option<i64>) -> Result<(), Fail> {
        let options = start.map_or_else(WatchOptions::new, |rev| WatchOptions::new().with_start_revision(rev));
        let (key, options) = match what {
            Watched::Leader => (self.keys.leader(), options),
            Watched::Roster => (self.keys.members_prefix(), options.with_prefix()),
        };
        let mut stream = self
            .call(deadline, "watch", |mut c| {
                let (key, options) = (key.clone(), options.clone());
                async move { c.watch(key, Some(options)).await }
            })
            .await?;
        loop {
            let message = match timeout_at(deadline, stream.message()).await {
                Err(_) => return Ok(()),
                Ok(message) => message.map_err(|e| classify("watch", e))?,
            };
            if watch_says_changed(what, message, start)? {
                return Ok(());
            }
        }
    }
}

/// What a waiting loop wakes for.
#[derive(Debug, Clone, Copy)]
enum Watched {
    /// The leader key is written or deleted.
    Leader,
    /// A member joins or leaves.
    Roster,
}

/// Interprets one watch message: `Ok(true)` for a change of `what` (or a compaction that may have
/// hidden one), `Ok(false)` for the creation reply or other events, an error for a closed or
/// cancelled watch.
fn watch_says_changed(
    what: Watched,
    message: Option<etcd_client::WatchResponse>,
    start: &mut Option<i64>,
) -> Result<bool, Fail> {
    let Some(resp) = message else {
        return Err(Fail::Unavailable("etcd watch: stream closed".into()));
    };
    if resp.created() && start.is_none() {
        // Re-opened watches must resume here rather than at "now", or an event could fall between.
        *start = resp.header().map(|h| h.revision() + 1);
    }
    if resp.canceled() {
        if resp.compact_revision() > 0 {
            return Ok(true);
        }
        return Err(Fail::Unavailable(format!(
            "etcd watch cancelled: {}",
            resp.cancel_reason()
        )));
    }
    Ok(match what {
        Watched::Leader => !resp.events().is_empty(),
        Watched::Roster => resp.events().iter().any(joins_or_leaves),
    })
}

/// Accepts `host[:port]` and `http://host[:port]` (port 2379 when omitted, as in Patroni); https needs
/// TLS support that is not built in.
fn normalize_endpoints(raw: Vec<String>) -> Result<Vec<String>, DcsError> {
    let mut endpoints = Vec::with_capacity(raw.len());
    for ep in raw {
        let ep = ep.trim();
        if ep.starts_with("https://") {
            return Err(DcsError::Failed(format!(
                "etcd endpoint {ep}: https is not supported yet"
            )));
        }
        let invalid = || DcsError::Failed(format!("invalid etcd endpoint {ep:?}, expected host:port"));
        let host_port = ep.strip_prefix("http://").unwrap_or(ep).trim_end_matches('/');
        if host_port.is_empty() || host_port.contains('/') {
            return Err(invalid());
        }
        // `[v6addr]` alone has colons but no port.
        match host_port.rsplit_once(':').filter(|_| !host_port.ends_with(']')) {
            Some((host, port)) => {
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(invalid());
                }
                endpoints.push(format!("http://{host_port}"));
            }
            _ => endpoints.push(format!("http://{host_port}:2379")),
        }
    }
    if endpoints.is_empty() {
        return Err(DcsError::Failed("no etcd endpoints configured".into()));
    }
    Ok(endpoints)
}

fn connect_options(retry_timeout: Duration, user: Option<(String, String)>) -> ConnectOptions {
    // Leave room inside retry_timeout for a second attempt (another endpoint, a reconnect).
    let request = (retry_timeout / 2).max(Duration::from_millis(500));
    let connect = (retry_timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(2));
    let ping_timeout = (retry_timeout / 2).clamp(Duration::from_secs(1), Duration::from_secs(5));
    let options = ConnectOptions::new()
        .with_connect_timeout(connect)
        .with_timeout(request)
        // Pings tear down a black-holed connection so the channel reconnects; only while streams
        // are open, because etcd counts pings on an idle connection as abuse.
        .with_keep_alive(H2_PING_EVERY, ping_timeout)
        .with_keep_alive_while_idle(false)
        // A member cut off from its quorum must not serve (or keep watching) stale data.
        .with_require_leader(true);
    match user {
        Some((name, password)) => options.with_user(name, password).with_auto_token_refresh(true),
        None => options,
    }
}

impl Drop for EtcdDcs {
    fn drop(&mut self) {
        if let Some(task) = self.cache_task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

fn nested_txn(resp: &TxnResponse) -> Option<TxnResponse> {
    resp.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Txn(t) => Some(t),
        _ => None,
    })
}

fn first_kv(resp: &TxnResponse) -> Option<KeyValue> {
    resp.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(mut g) => g.take_kvs().into_iter().next(),
        _ => None,
    })
}

#[async_trait]
impl Dcs for EtcdDcs {
    fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    fn lease_renewed_at(&self) -> Option<Duration> {
        match self.renewed_boottime_ns.load(Ordering::SeqCst) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    async fn load(&self) -> Result<ClusterView, DcsError> {
        self.ensure_cache_task().await;
        let deadline = self.deadline();
        // A quarter of the budget at most, so a progress answer that never comes (newer etcd defers
        // it for a watcher still catching up) leaves time for the direct read.
        let confirm_by = Instant::now() + self.confirm_budget();
        // Reads soon enough after etcd's last answer on the watch's connection need no new one: a
        // frozen etcd then fails reads within retry_timeout (three quarters of it unconfirmed, a
        // quarter waiting for an answer), as a range read would.
        let recent = self.cache.confirmed_within(self.trusted_for());
        let confirmed = self.cache.is_ready()
            && if self.leading.load(Ordering::SeqCst) {
                // The leader renews its lease when due anyway: that round trip on the same
                // connection confirms the copy, and `update_leader` then skips its own renewal.
                self.ensure_lease(confirm_by, true).await.is_ok()
                    && (self.cache.confirmed_within(self.trusted_for()) || self.cache.confirm(confirm_by).await)
            } else {
                recent || self.renew_early(confirm_by).await || self.cache.confirm(confirm_by).await
            };
        let usable_after = self.last_write.load(Ordering::SeqCst);
        if confirmed
            && let Some((generation, marks)) = self.cache.generation(usable_after)
            && let Some(view) = self.decoded_view(generation)
        {
            // Nothing changed since the last decode (the usual idle cycle).
            self.set_loaded_marks(Some(marks));
            self.cached_loads.fetch_add(1, Ordering::Relaxed);
            return Ok(view);
        }
        if confirmed && let Some(snap) = self.cache.snapshot(usable_after) {
            let raw = || {
                snap.kvs.iter().map(|kv| RawKv {
                    key: &kv.key,
                    value: &kv.value,
                    mod_revision: kv.mod_revision,
                    lease: kv.lease,
                })
            };
            let view = codec::decode_cluster(&self.keys, raw());
            self.check_member_cache(raw());
            *self.decoded.lock().unwrap_or_else(|p| p.into_inner()) = Some((snap.generation, view.clone()));
            self.set_loaded_marks(Some(snap.marks));
            self.cached_loads.fetch_add(1, Ordering::Relaxed);
            return Ok(view);
        }
        self.set_loaded_marks(None);
        let prefix = self.keys.prefix().to_string();
        let resp = self
            .call(deadline, "load", |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let kvs = resp.kvs();
        let view = codec::decode_cluster(
            &self.keys,
            kvs.iter().map(|kv| RawKv {
                key: kv.key(),
                value: kv.value(),
                mod_revision: kv.mod_revision(),
                lease: kv.lease(),
            }),
        );
        if let Some(header) = resp.header() {
            self.last_load_revision.store(header.revision(), Ordering::SeqCst);
        }
        self.set_loaded_marks(None);
        self.check_member_cache(kvs.iter().map(|kv| RawKv {
            key: kv.key(),
            value: kv.value(),
            mod_revision: kv.mod_revision(),
            lease: kv.lease(),
        }));
        Ok(view)
    }

    async fn attempt_initialize(&self) -> Result<bool, DcsError> {
        let key = self.keys.initialize();
        self.put_if("initialize", Self::version_compare(&key, None), key, String::new())
            .await
    }

    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        self.put(self.keys.initialize(), sysid.to_string(), 0).await
    }

    async fn cancel_initialize(&self) -> Result<(), DcsError> {
        self.delete(self.keys.initialize(), None).await
    }

    async fn acquire_leader(&self) -> Result<bool, DcsError> {
        let key = self.keys.leader();
        let name = self.identity.name.clone();
        let result = self
            .with_lease(false, |lease, deadline| {
                let txn = Txn::new()
                    .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        key.as_str(),
                        name.as_str(),
                        Some(PutOptions::new().with_lease(lease)),
                    )])
                    .or_else([TxnOp::get(key.as_str(), None)]);
                let name = name.clone();
                async move {
                    let resp = self.txn(deadline, "acquire leader", txn).await?;
                    if resp.succeeded() {
                        self.wrote(resp.header());
                    }
                    // A retried request whose first attempt did win finds the key already ours.
                    let ours = first_kv(&resp).is_some_and(|kv| kv.value() == name.as_bytes() && kv.lease() == lease);
                    Ok(resp.succeeded() || ours)
                }
            })
            .await;
        self.leading.store(matches!(result, Ok(true)), Ordering::SeqCst);
        result
    }

    async fn update_leader(&self) -> Result<bool, DcsError> {
        let key = self.keys.leader();
        let name = self.identity.name.clone();
        let result = self
            .with_lease(true, |lease, deadline| {
                // As Patroni does: a renewed lease that the (just confirmed) watched copy shows holding
                // our leader key needs no transaction (the usual cycle, so nothing is built for it).
                let recently = self.trusted_for();
                let cached = self
                    .cache
                    .get_confirmed(&key, self.last_write.load(Ordering::SeqCst), recently);
                let held = matches!(cached, Some(Some(kv)) if kv.value == name.as_bytes() && kv.lease == lease);
                let (key, name) = (&key, &name);
                async move {
                    if held {
                        return Ok(true);
                    }
                    let put = || TxnOp::put(key.as_str(), name.as_str(), Some(PutOptions::new().with_lease(lease)));
                    // Patroni's fallbacks, nested so one round trip decides: still ours on our lease →
                    // nothing to do; ours on an old lease → re-bind it; gone → create it.
                    let create = Txn::new()
                        .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                        .and_then([put()]);
                    let rebind = Txn::new()
                        .when([Compare::value(key.as_str(), CompareOp::Equal, name.as_str())])
                        .and_then([put()])
                        .or_else([TxnOp::txn(create)]);
                    let txn = Txn::new()
                        .when([
                            Compare::value(key.as_str(), CompareOp::Equal, name.as_str()),
                            Compare::lease(key.as_str(), CompareOp::Equal, lease),
                        ])
                        .or_else([TxnOp::txn(rebind)]);
                    let resp = self.txn(deadline, "update leader", txn).await?;
                    let rebound = nested_txn(&resp);
                    let created = rebound.as_ref().and_then(nested_txn);
                    let rewritten = rebound.is_some_and(|t| t.succeeded()) || created.is_some_and(|t| t.succeeded());
                    if rewritten {
                        self.wrote(resp.header());
                    }
                    Ok(resp.succeeded() || rewritten)
                }
            })
            .await;
        self.leading.store(matches!(result, Ok(true)), Ordering::SeqCst);
        result
    }

    async fn release_leader(&self) -> Result<(), DcsError> {
        self.leading.store(false, Ordering::SeqCst);
        let key = self.keys.leader();
        let txn = Txn::new()
            .when([Compare::value(
                key.as_str(),
                CompareOp::Equal,
                self.identity.name.as_str(),
            )])
            .and_then([TxnOp::delete(key.as_str(), None)]);
        self.txn_wrote_if_succeeded("release leader", txn).await?;
        Ok(())
    }

    async fn touch_member(&self, data: &MemberData) -> Result<(), DcsError> {
        let value = codec::to_json(data)?;
        let key = self.keys.member(&self.identity.name);
        self.with_lease(false, |lease, deadline| {
            let (key, value) = (key.clone(), value.clone());
            async move {
                if self
                    .member_slot()
                    .as_ref()
                    .is_some_and(|(v, l)| *v == value && *l == lease)
                {
                    return Ok(());
                }
                let options = PutOptions::new().with_lease(lease);
                let resp = self
                    .call(deadline, "touch member", |mut c| {
                        let (key, value, options) = (key.clone(), value.clone(), options.clone());
                        async move { c.put(key, value, Some(options)).await }
                    })
                    .await?;
                self.wrote(resp.header());
                *self.member_slot() = Some((value, lease));
                Ok(())
            }
        })
        .await
    }

    async fn shutdown(&self) -> Result<(), DcsError> {
        self.leading.store(false, Ordering::SeqCst);
        *self.member_slot() = None;
        if let Some(task) = self.cache_task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        self.delete(self.keys.member(&self.identity.name), None).await?;
        let lease = {
            let mut state = self.lease.lock().await;
            let id = state.id;
            state.forget();
            id
        };
        let Some(id) = lease else { return Ok(()) };
        match self
            .call(self.deadline(), "lease revoke", |mut c| async move {
                c.lease_revoke(id).await
            })
            .await
        {
            Ok(_) | Err(Fail::LeaseGone(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn write_config(&self, value: &Value, version: Option<i64>) -> Result<bool, DcsError> {
        let key = self.keys.config();
        self.put_if(
            "write config",
            Self::version_compare(&key, version),
            key,
            codec::to_json(value)?,
        )
        .await
    }

    async fn replace_config(&self, value: &Value) -> Result<(), DcsError> {
        self.put(self.keys.config(), codec::to_json(value)?, 0).await
    }

    async fn write_status(&self, status: &Status) -> Result<(), DcsError> {
        self.put(self.keys.status(), codec::to_json(status)?, 0).await
    }

    async fn write_history(&self, history: &[HistoryLine]) -> Result<(), DcsError> {
        self.put(self.keys.history(), codec::to_json(history)?, 0).await
    }

    async fn write_failover(&self, failover: &Failover, version: Option<i64>) -> Result<bool, DcsError> {
        let key = self.keys.failover();
        self.put_if(
            "write failover",
            Self::version_compare(&key, version),
            key,
            codec::to_json(failover)?,
        )
        .await
    }

    async fn delete_failover(&self, version: Option<i64>) -> Result<bool, DcsError> {
        let key = self.keys.failover();
        let Some(v) = version else {
            self.delete(key, None).await?;
            return Ok(true);
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, v)])
            .and_then([TxnOp::delete(key.as_str(), None)]);
        self.txn_wrote_if_succeeded("delete failover", txn).await
    }

    async fn watch_leader(&self, timeout: Duration) -> Result<(), DcsError> {
        self.watch(Watched::Leader, timeout).await
    }

    async fn watch_roster(&self, timeout: Duration) -> Result<(), DcsError> {
        self.watch(Watched::Roster, timeout).await
    }

    async fn set_ttl(&self, ttl: u32) {
        if self.ttl.swap(ttl, Ordering::SeqCst) != ttl {
            // Like Patroni: a new TTL needs a new lease. The old one is not revoked, so the keys on it
            // stay until they are rewritten on the new lease.
            self.lease.lock().await.forget();
        }
    }

    async fn delete_cluster(&self) -> Result<(), DcsError> {
        self.delete(self.keys.prefix().to_string(), Some(DeleteOptions::new().with_prefix()))
            .await
    }
}

/// Time since boot on CLOCK_BOOTTIME (the fence's clock: it counts suspended time).
fn boottime() -> Duration {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized() {
        let eps =
            normalize_endpoints(vec!["127.0.0.1:2380".into(), " http://h:1/ ".into(), "etcd1".into()]).expect("valid");
        assert_eq!(eps, vec!["http://127.0.0.1:2380", "http://h:1", "http://etcd1:2379"]);
        assert!(normalize_endpoints(vec!["h:notaport".into()]).is_err());
        assert!(normalize_endpoints(vec![]).is_err());
        assert!(normalize_endpoints(vec!["https://h:1".into()]).is_err());
        assert!(normalize_endpoints(vec!["http://".into()]).is_err());
    }

    #[test]
    fn grpc_codes_are_classified() {
        let status = |code: Code, msg: &str| etcd_client::Error::GRpcStatus(tonic::Status::new(code, msg));
        assert!(matches!(
            classify("x", status(Code::Unavailable, "etcdserver: no leader")),
            Fail::Unavailable(_)
        ));
        assert!(matches!(
            classify("x", status(Code::Cancelled, "Timeout expired")),
            Fail::Unavailable(_)
        ));
        let gone = status(Code::NotFound, "etcdserver: requested lease not found");
        assert!(matches!(classify("x", gone), Fail::LeaseGone(_)));
        assert!(matches!(
            classify("x", status(Code::InvalidArgument, "bad")),
            Fail::Failed(_)
        ));
        assert!(matches!(
            classify("x", status(Code::PermissionDenied, "no")),
            Fail::Failed(_)
        ));
        let busy = status(Code::ResourceExhausted, "etcdserver: too many requests");
        assert!(matches!(classify("x", busy), Fail::Unavailable(_)));
        let full = status(Code::ResourceExhausted, "etcdserver: mvcc: database space exceeded");
        assert!(matches!(classify("x", full), Fail::Failed(_)));
    }
}
