//! A copy of the cluster's keys kept current by one long-lived prefix watch, as Patroni's etcd3
//! `KVCache` does. An idle cycle then reads the cluster without a round trip, and a replica waits
//! for a leader change on that same watch instead of opening a watch every cycle: together those
//! were most of an idle daemon's CPU.
//!
//! Trust rules: the copy is only used while the watch is established (after its `created` reply,
//! until any error, cancellation or compaction); a read confirms the stream is alive with a
//! progress request on it ([`Cache::confirm`]) unless etcd answered within the last three quarters
//! of `retry_timeout` (a lease renewal's answer counts, [`Cache::mark_confirmed`]), so a frozen etcd makes reads fail within `retry_timeout` instead of serving an
//! old copy for long; and the copy must hold the event of the node's own last write
//! (`usable_after`), so a cycle right after a write reads what it wrote. Progress answers do not
//! advance the copy's revision: etcd before 3.4.26/3.5.8 could send one ahead of events still in
//! flight (etcd issue #15220). Confirming costs two small messages on an open stream, where a range
//! read opens a stream and transfers and decodes every key. When any rule fails the caller reads
//! etcd directly.

use etcd_client::{Client, EventType, GetOptions, KeyValue, WatchOptions};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, timeout, timeout_at};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One key as the cluster view needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedKv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    pub lease: i64,
}

impl From<&KeyValue> for CachedKv {
    fn from(kv: &KeyValue) -> CachedKv {
        CachedKv {
            key: kv.key().to_vec(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
            lease: kv.lease(),
        }
    }
}

#[derive(Default)]
struct State {
    ready: bool,
    kvs: BTreeMap<Vec<u8>, CachedKv>,
    /// The newest revision the copy reflects: the sync's header revision, then each event's.
    revision: i64,
    /// When etcd last answered a progress request on the watch.
    confirmed_at: Option<Instant>,
    /// Moves whenever `kvs` may have changed: a decoded view of the same generation is still good.
    generation: u64,
}

/// Counters that move on the changes a waiting loop wakes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    /// The leader key was written or deleted.
    pub leader: u64,
    /// A member key was created or deleted: a member joined or left.
    pub roster: u64,
}

/// The cached keys and the counters of leader and roster changes.
pub struct Cache {
    state: Mutex<State>,
    leader_key: Vec<u8>,
    members_prefix: Vec<u8>,
    leader_changes: watch::Sender<u64>,
    roster_changes: watch::Sender<u64>,
    /// Progress requests for the task to send on its watch stream.
    progress_requests: mpsc::Sender<()>,
    progress_rx: Mutex<Option<mpsc::Receiver<()>>>,
    /// Counts progress answers received; [`Cache::confirm`] waits for it to move.
    progress_answers: watch::Sender<u64>,
}

/// What a read of the cache returns: the keys and the change counters they go with.
pub struct Snapshot {
    pub kvs: Vec<CachedKv>,
    pub marks: Marks,
    /// See [`Cache::generation`].
    pub generation: u64,
}

impl Cache {
    pub fn new(leader_key: &str, members_prefix: &str) -> Cache {
        let (progress_requests, progress_rx) = mpsc::channel(1);
        Cache {
            state: Mutex::new(State::default()),
            leader_key: leader_key.as_bytes().to_vec(),
            members_prefix: members_prefix.as_bytes().to_vec(),
            leader_changes: watch::channel(0).0,
            roster_changes: watch::channel(0).0,
            progress_requests,
            progress_rx: Mutex::new(Some(progress_rx)),
            progress_answers: watch::channel(0).0,
        }
    }

    /// Asks etcd for a progress answer on the watch stream; `true` once it came before `deadline`.
    /// Concurrent callers share one request.
    pub async fn confirm(&self, deadline: Instant) -> bool {
        if !self.is_ready() {
            return false;
        }
        let mut answers = self.progress_answers.subscribe();
        let before = *answers.borrow_and_update();
        // A full channel means a request is already on its way; its answer will do.
        let _ = self.progress_requests.try_send(());
        let answered = answers.wait_for(|n| *n != before);
        matches!(timeout_at(deadline, answered).await, Ok(Ok(_))) && self.is_ready()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys, if the watch is established and the copy has seen revision `usable_after`.
    pub fn snapshot(&self, usable_after: i64) -> Option<Snapshot> {
        let state = self.lock();
        if !state.ready || state.revision < usable_after {
            return None;
        }
        Some(Snapshot {
            kvs: state.kvs.values().cloned().collect(),
            marks: self.marks(),
            generation: state.generation,
        })
    }

    /// What [`Cache::snapshot`] would return, without the keys: (generation, marks). A snapshot of
    /// the same generation had the same keys; the counters are read under the same lock as there,
    /// so they never run ahead of the keys.
    pub fn generation(&self, usable_after: i64) -> Option<(u64, Marks)> {
        let state = self.lock();
        if !state.ready || state.revision < usable_after {
            return None;
        }
        Some((state.generation, self.marks()))
    }

    fn marks(&self) -> Marks {
        Marks {
            leader: *self.leader_changes.borrow(),
            roster: *self.roster_changes.borrow(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.lock().ready
    }

    /// A receiver of the leader-change counter (see [`Marks::leader`]).
    pub fn leader_changes(&self) -> watch::Receiver<u64> {
        self.leader_changes.subscribe()
    }

    /// A receiver of the roster-change counter (see [`Marks::roster`]).
    pub fn roster_changes(&self) -> watch::Receiver<u64> {
        self.roster_changes.subscribe()
    }

    fn is_member_key(&self, key: &[u8]) -> bool {
        key.starts_with(&self.members_prefix)
    }

    /// The member keys among `kvs`, in order.
    fn roster<'a>(&'a self, kvs: &'a BTreeMap<Vec<u8>, CachedKv>) -> impl Iterator<Item = &'a [u8]> {
        kvs.range(self.members_prefix.clone()..)
            .map(|(k, _)| k.as_slice())
            .take_while(|k| self.is_member_key(k))
    }

    fn invalidate(&self) {
        let mut state = self.lock();
        state.ready = false;
        state.confirmed_at = None;
    }

    /// Replaces the copy with a fresh read at `revision`; the watch is not established yet.
    fn reset(&self, kvs: &[KeyValue], revision: i64) {
        let mut state = self.lock();
        let before = state.kvs.get(&self.leader_key).cloned();
        let roster_before: Vec<Vec<u8>> = self.roster(&state.kvs).map(<[u8]>::to_vec).collect();
        state.kvs = kvs.iter().map(|kv| (kv.key().to_vec(), CachedKv::from(kv))).collect();
        state.revision = revision;
        state.generation += 1;
        state.ready = false;
        if state.kvs.get(&self.leader_key) != before.as_ref() {
            self.leader_changes.send_modify(|n| *n += 1);
        }
        if !self.roster(&state.kvs).eq(roster_before.iter().map(Vec::as_slice)) {
            self.roster_changes.send_modify(|n| *n += 1);
        }
    }

    fn established(&self) {
        self.lock().ready = true;
    }

    fn progressed(&self) {
        self.mark_confirmed();
        self.progress_answers.send_modify(|n| *n += 1);
    }

    /// etcd answered on the watch's connection just now (a progress answer or, for the leader,
    /// a lease renewal).
    pub fn mark_confirmed(&self) {
        self.lock().confirmed_at = Some(Instant::now());
    }

    /// Whether etcd confirmed the watch within `recently`.
    pub fn confirmed_within(&self, recently: Duration) -> bool {
        self.lock().confirmed_at.is_some_and(|t| t.elapsed() < recently)
    }

    /// `key` as the copy has it, if the copy is usable (see [`Cache::snapshot`]) and etcd confirmed
    /// the watch within `recently`: `Some(None)` when the key does not exist.
    pub fn get_confirmed(&self, key: &str, usable_after: i64, recently: Duration) -> Option<Option<CachedKv>> {
        let state = self.lock();
        let fresh = state.confirmed_at.is_some_and(|t| t.elapsed() < recently);
        if !state.ready || state.revision < usable_after || !fresh {
            return None;
        }
        Some(state.kvs.get(key.as_bytes()).cloned())
    }

    fn apply(&self, events: &[etcd_client::Event]) {
        let mut state = self.lock();
        let (mut leader_changed, mut roster_changed) = (false, false);
        if !events.is_empty() {
            state.generation += 1;
        }
        for event in events {
            let Some(kv) = event.kv() else { continue };
            leader_changed |= kv.key() == self.leader_key.as_slice();
            roster_changed |= self.is_member_key(kv.key()) && joins_or_leaves(event);
            state.revision = state.revision.max(kv.mod_revision());
            match event.event_type() {
                EventType::Put => {
                    state.kvs.insert(kv.key().to_vec(), CachedKv::from(kv));
                }
                EventType::Delete => {
                    state.kvs.remove(kv.key());
                }
            }
        }
        drop(state);
        if leader_changed {
            self.leader_changes.send_modify(|n| *n += 1);
        }
        if roster_changed {
            self.roster_changes.send_modify(|n| *n += 1);
        }
    }
}

/// Whether an event on a member key is a member joining (the key's first version) or leaving (a
/// deletion, including by lease expiry); a member rewriting its key is neither.
pub fn joins_or_leaves(event: &etcd_client::Event) -> bool {
    match event.event_type() {
        EventType::Delete => true,
        EventType::Put => event.kv().is_some_and(|kv| kv.version() == 1),
    }
}

/// Keeps `cache` in step with `prefix` until the task is aborted: read everything, watch from the
/// next revision, apply events; on any failure mark the copy unusable and start over.
pub async fn run(client: Client, prefix: String, cache: std::sync::Arc<Cache>, request_timeout: Duration) {
    let Some(mut requests) = cache.progress_rx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        let result = follow(
            client.clone(),
            &prefix,
            &cache,
            request_timeout,
            &mut backoff,
            &mut requests,
        )
        .await;
        cache.invalidate();
        tracing::debug!("etcd cache watch ended: {result:?}; restarting in {backoff:?}");
        sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn follow(
    mut client: Client,
    prefix: &str,
    cache: &Cache,
    request_timeout: Duration,
    backoff: &mut Duration,
    requests: &mut mpsc::Receiver<()>,
) -> Result<(), String> {
    let resp = timeout(
        request_timeout,
        client.get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await
    .map_err(|_| "range timed out".to_string())?
    .map_err(|e| format!("range: {e}"))?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let options = WatchOptions::new().with_prefix().with_start_revision(revision + 1);
    let mut stream = timeout(request_timeout, client.watch(prefix, Some(options)))
        .await
        .map_err(|_| "watch timed out".to_string())?
        .map_err(|e| format!("watch: {e}"))?;
    cache.reset(resp.kvs(), revision);
    // Requests left from before this stream was established are answered by no one.
    while requests.try_recv().is_ok() {}
    // No timeout on the reads from here on: an idle watch is silent for as long as nothing
    // changes, and readers time out on their own confirmation. A dead connection is ended by the
    // HTTP/2 pings, which ends this stream.
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            Some(()) = requests.recv() => {
                stream.request_progress().await.map_err(|e| format!("progress request: {e}"))?;
                continue;
            }
        };
        let message = message
            .map_err(|e| format!("watch stream: {e}"))?
            .ok_or_else(|| "watch stream closed".to_string())?;
        if message.canceled() {
            return Err(format!(
                "watch cancelled (compact revision {}): {}",
                message.compact_revision(),
                message.cancel_reason()
            ));
        }
        if message.created() {
            cache.established();
            *backoff = FIRST_BACKOFF;
        } else if message.events().is_empty() {
            cache.progressed();
        }
        cache.apply(message.events());
    }
}
