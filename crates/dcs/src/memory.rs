//! An in-memory DCS with etcd's semantics, for unit tests and the decision simulation.
//!
//! A [`MemoryStore`] is one "etcd cluster": keys with create/mod revisions, leases with TTLs measured on
//! tokio's clock (so `#[tokio::test(start_paused = true)]` can fast-forward lease expiry), and a change
//! signal for watches. Each [`MemoryDcs`] is one node talking to it, with its own lease, exactly like
//! [`crate::EtcdDcs`]: the leader key and the node's member key share that lease. Values are stored as
//! the same JSON strings etcd would hold and read back through the same decoder.
//!
//! Failure: nothing fails on its own. Tests inject faults with [`MemoryStore::set_unavailable`] (the
//! whole DCS is down), [`MemoryDcs::set_unavailable`] (one node is cut off) and the lease helpers;
//! an unavailable call returns [`DcsError::Unavailable`] at once, `watch_leader` after its timeout.

use crate::api::{Dcs, DcsError, NodeIdentity};
use crate::codec::{self, RawKv};
use crate::keys::Keys;
use async_trait::async_trait;
use ferroni_model::{ClusterView, Failover, HistoryLine, MemberData, Status};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// A shared in-memory key-value store; clone it to hand the same store to several nodes.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Carries the store revision after every write, to wake watchers.
    changes: watch::Sender<i64>,
}

#[derive(Default)]
struct State {
    revision: i64,
    kvs: BTreeMap<String, Entry>,
    /// Revision of the last put or delete of every key ever written, so a watch can tell whether a key
    /// changed after a given revision even when the key is gone now.
    changed_at: HashMap<String, i64>,
    leases: HashMap<i64, Lease>,
    next_lease: i64,
    unavailable: bool,
}

#[derive(Clone)]
struct Entry {
    value: String,
    create_revision: i64,
    mod_revision: i64,
    lease: i64,
}

struct Lease {
    ttl: Duration,
    expires: Instant,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        let state = State {
            next_lease: 1,
            ..State::default()
        };
        MemoryStore {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                changes: watch::channel(0).0,
            }),
        }
    }

    /// A node using this store.
    pub fn node(&self, identity: NodeIdentity) -> MemoryDcs {
        MemoryDcs::new(self.clone(), identity)
    }

    /// While `true`, every call of every node fails with [`DcsError::Unavailable`]. Leases keep
    /// running out meanwhile, as they would on a real etcd that nobody can reach.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    /// Expires every lease now, deleting the keys attached to them (as if every node had stopped
    /// renewing more than a TTL ago).
    pub fn expire_leases_now(&self) {
        let mut st = self.lock();
        let ids: Vec<i64> = st.leases.keys().copied().collect();
        for id in ids {
            st.revoke(id);
        }
        self.publish(&st);
    }

    /// Every key and its raw value, for assertions on the exact bytes a backend would store.
    pub fn dump(&self) -> BTreeMap<String, String> {
        let mut st = self.lock();
        st.sweep(Instant::now());
        st.kvs.iter().map(|(k, e)| (k.clone(), e.value.clone())).collect()
    }

    /// Writes a raw value without a lease, e.g. a legacy Patroni format a test wants decoded.
    pub fn put_raw(&self, key: &str, value: &str) {
        let mut st = self.lock();
        st.put(key, value, 0);
        self.publish(&st);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread leaves consistent data behind (every mutation is a few
        // assignments), so a poisoned lock is still usable.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, st: &State) {
        self.shared.changes.send_replace(st.revision);
    }
}

impl State {
    /// Deletes the keys of every lease whose TTL ran out, as etcd's lessor does.
    fn sweep(&mut self, now: Instant) {
        let expired: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.revoke(id);
        }
    }

    fn revoke(&mut self, lease: i64) -> bool {
        if self.leases.remove(&lease).is_none() {
            return false;
        }
        let keys: Vec<String> = self
            .kvs
            .iter()
            .filter(|(_, e)| e.lease == lease)
            .map(|(k, _)| k.clone())
            .collect();
        if !keys.is_empty() {
            self.revision += 1;
            for key in keys {
                self.kvs.remove(&key);
                self.changed_at.insert(key, self.revision);
            }
        }
        true
    }

    fn put(&mut self, key: &str, value: &str, lease: i64) {
        self.revision += 1;
        let create_revision = self.kvs.get(key).map_or(self.revision, |e| e.create_revision);
        let entry = Entry {
            value: value.to_string(),
            create_revision,
            mod_revision: self.revision,
            lease,
        };
        self.kvs.insert(key.to_string(), entry);
        self.changed_at.insert(key.to_string(), self.revision);
    }

    fn delete(&mut self, key: &str) -> bool {
        if self.kvs.remove(key).is_none() {
            return false;
        }
        self.revision += 1;
        self.changed_at.insert(key.to_string(), self.revision);
        true
    }

    fn delete_prefix(&mut self, prefix: &str) {
        let keys: Vec<String> = self.kvs.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        if keys.is_empty() {
            return;
        }
        self.revision += 1;
        for key in keys {
            self.kvs.remove(&key);
            self.changed_at.insert(key, self.revision);
        }
    }

    /// etcd compares an absent key's revisions as 0.
    fn create_revision(&self, key: &str) -> i64 {
        self.kvs.get(key).map_or(0, |e| e.create_revision)
    }

    fn mod_revision(&self, key: &str) -> i64 {
        self.kvs.get(key).map_or(0, |e| e.mod_revision)
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.kvs.get(key).map(|e| e.value.as_str())
    }

    fn lease_of(&self, key: &str) -> Option<i64> {
        self.kvs.get(key).map(|e| e.lease)
    }

    fn grant(&mut self, ttl: u32, now: Instant) -> i64 {
        let id = self.next_lease;
        self.next_lease += 1;
        let ttl = Duration::from_secs(u64::from(ttl));
        self.leases.insert(
            id,
            Lease {
                ttl,
                expires: now + ttl,
            },
        );
        id
    }

    /// `false`: the lease no longer exists.
    fn keep_alive(&mut self, id: i64, now: Instant) -> bool {
        match self.leases.get_mut(&id) {
            Some(l) => {
                l.expires = now + l.ttl;
                true
            }
            None => false,
        }
    }

    fn expiry_of_key(&self, key: &str) -> Option<Instant> {
        let lease = self.kvs.get(key)?.lease;
        self.leases.get(&lease).map(|l| l.expires)
    }

    /// Whether a key under `prefix` was created or deleted after revision `since`.
    fn joined_or_left_since(&self, prefix: &str, since: i64) -> bool {
        self.changed_at
            .iter()
            .filter(|(k, rev)| k.starts_with(prefix) && **rev > since)
            .any(|(k, _)| self.kvs.get(k).is_none_or(|e| e.create_revision > since))
    }

    /// The earliest expiry among the keys under `prefix`.
    fn expiry_under(&self, prefix: &str) -> Option<Instant> {
        self.kvs
            .keys()
            .filter(|k| k.starts_with(prefix))
            .filter_map(|k| self.expiry_of_key(k))
            .min()
    }
}

/// What a waiting loop wakes for.
#[derive(Clone, Copy)]
enum Watched {
    Leader,
    Roster,
}

/// `last_load_revision` before the first `load` (revisions start at 0 in an empty store).
const NEVER_LOADED: i64 = -1;

enum WatchCheck {
    Unavailable,
    Changed,
    /// `expires`: when the lease of a watched key runs out next, if one has a lease.
    Unchanged {
        expires: Option<Instant>,
    },
}

/// One node's view of a [`MemoryStore`].
pub struct MemoryDcs {
    store: MemoryStore,
    identity: NodeIdentity,
    keys: Keys,
    ttl: AtomicU32,
    lease: Mutex<Option<i64>>,
    cut_off: AtomicBool,
    /// Store revision of this node's last `load`; `watch_leader` reports changes after it.
    last_load_revision: AtomicI64,
    /// Value and lease of the last member-key write, to skip identical rewrites as Patroni does.
    member_written: Mutex<Option<(String, i64)>>,
}

impl MemoryDcs {
    pub fn new(store: MemoryStore, identity: NodeIdentity) -> MemoryDcs {
        MemoryDcs {
            keys: Keys::new(&identity.namespace, &identity.scope),
            ttl: AtomicU32::new(identity.ttl),
            store,
            identity,
            lease: Mutex::new(None),
            cut_off: AtomicBool::new(false),
            last_load_revision: AtomicI64::new(NEVER_LOADED),
            member_written: Mutex::new(None),
        }
    }

    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// While `true`, every call of this node fails with [`DcsError::Unavailable`] (a partition
    /// between this node and the DCS); other nodes are unaffected and this node's lease runs out.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.cut_off.store(unavailable, Ordering::SeqCst);
    }

    /// The node's current lease, if it holds one.
    pub fn lease_id(&self) -> Option<i64> {
        *self.lease_slot()
    }

    /// Expires this node's lease now (its leader and member keys vanish), as if it had stopped
    /// renewing for a whole TTL.
    pub fn expire_lease(&self) {
        // Taken before the store lock: the store lock is always acquired first elsewhere.
        let lease = self.lease_slot().take();
        if let Some(id) = lease {
            let mut st = self.store.lock();
            st.revoke(id);
            self.store.publish(&st);
        }
    }

    fn lease_slot(&self) -> MutexGuard<'_, Option<i64>> {
        self.lease.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn member_slot(&self) -> MutexGuard<'_, Option<(String, i64)>> {
        self.member_written.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_available(&self, st: &State) -> bool {
        !st.unavailable && !self.cut_off.load(Ordering::SeqCst)
    }

    /// Runs one operation under the store lock, after expiring overdue leases; publishes the new
    /// revision for watchers when the operation wrote.
    fn with_store<T>(&self, op: impl FnOnce(&mut State) -> T) -> Result<T, DcsError> {
        let mut st = self.store.lock();
        st.sweep(Instant::now());
        if !self.is_available(&st) {
            return Err(DcsError::Unavailable("in-memory DCS is marked unavailable".into()));
        }
        let before = st.revision;
        let out = op(&mut st);
        if st.revision != before {
            self.store.publish(&st);
        }
        Ok(out)
    }

    /// Renews the node's lease or grants a new one when it is gone, like the etcd backend.
    fn ensure_lease(&self, st: &mut State) -> i64 {
        let now = Instant::now();
        let mut slot = self.lease_slot();
        if let Some(id) = *slot
            && st.keep_alive(id, now)
        {
            return id;
        }
        let id = st.grant(self.ttl.load(Ordering::SeqCst), now);
        *slot = Some(id);
        id
    }

    fn put_versioned(&self, key: &str, value: &str, version: Option<i64>) -> Result<bool, DcsError> {
        self.with_store(|st| {
            let ok = match version {
                None => st.create_revision(key) == 0,
                Some(v) => st.mod_revision(key) == v,
            };
            if ok {
                st.put(key, value, 0);
            }
            ok
        })
    }

    /// Forgets the cached member write when the last read shows the key differs (e.g. someone
    /// deleted it), so the next `touch_member` writes it again.
    fn check_member_cache(&self, st: &State) {
        let key = self.keys.member(&self.identity.name);
        let mut cached = self.member_slot();
        let matches = match (&*cached, st.kvs.get(&key)) {
            (Some((value, lease)), Some(e)) => e.value == *value && e.lease == *lease,
            _ => false,
        };
        if !matches {
            *cached = None;
        }
    }

    fn changed_since(&self, what: Watched, since: i64) -> WatchCheck {
        let mut st = self.store.lock();
        st.sweep(Instant::now());
        if !self.is_available(&st) {
            return WatchCheck::Unavailable;
        }
        let (changed, expires) = match what {
            Watched::Leader => {
                let key = self.keys.leader();
                let changed = st.changed_at.get(&key).is_some_and(|rev| *rev > since);
                (changed, st.expiry_of_key(&key))
            }
            Watched::Roster => {
                let prefix = self.keys.members_prefix();
                (st.joined_or_left_since(&prefix, since), st.expiry_under(&prefix))
            }
        };
        if changed {
            WatchCheck::Changed
        } else {
            WatchCheck::Unchanged { expires }
        }
    }

    async fn watch(&self, what: Watched, timeout: Duration) -> Result<(), DcsError> {
        let deadline = Instant::now() + timeout;
        let mut changes = self.store.shared.changes.subscribe();
        let since = match self.last_load_revision.load(Ordering::SeqCst) {
            NEVER_LOADED => self.store.lock().revision,
            rev => rev,
        };
        loop {
            let next_expiry = match self.changed_since(what, since) {
                WatchCheck::Unavailable => return self.wait_out(deadline).await,
                WatchCheck::Changed => return Ok(()),
                WatchCheck::Unchanged { expires } => expires,
            };
            // Lease expiry is only noticed by a sweep, so wake up for it as well as for writes.
            let wake = next_expiry.map_or(deadline, |e| e.min(deadline));
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
        }
    }

    async fn wait_out(&self, deadline: Instant) -> Result<(), DcsError> {
        tokio::time::sleep_until(deadline).await;
        Err(DcsError::Unavailable("in-memory DCS is marked unavailable".into()))
    }
}

#[async_trait]
impl Dcs for MemoryDcs {
    fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    async fn load(&self) -> Result<ClusterView, DcsError> {
        self.with_store(|st| {
            let prefix = self.keys.prefix();
            let kvs = st
                .kvs
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, e)| RawKv {
                    key: k.as_bytes(),
                    value: e.value.as_bytes(),
                    mod_revision: e.mod_revision,
                    lease: e.lease,
                });
            let view = codec::decode_cluster(&self.keys, kvs);
            self.last_load_revision.store(st.revision, Ordering::SeqCst);
            self.check_member_cache(st);
            view
        })
    }

    async fn attempt_initialize(&self) -> Result<bool, DcsError> {
        self.put_versioned(&self.keys.initialize(), "", None)
    }

    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        self.with_store(|st| st.put(&self.keys.initialize(), sysid, 0))
    }

    async fn cancel_initialize(&self) -> Result<(), DcsError> {
        self.with_store(|st| {
            st.delete(&self.keys.initialize());
        })
    }

    async fn acquire_leader(&self) -> Result<bool, DcsError> {
        let key = self.keys.leader();
        let name = &self.identity.name;
        self.with_store(|st| {
            let lease = self.ensure_lease(st);
            if st.create_revision(&key) == 0 {
                st.put(&key, name, lease);
                return true;
            }
            st.value(&key) == Some(name.as_str()) && st.lease_of(&key) == Some(lease)
        })
    }

    async fn update_leader(&self) -> Result<bool, DcsError> {
        let key = self.keys.leader();
        let name = &self.identity.name;
        self.with_store(|st| {
            let lease = self.ensure_lease(st);
            let ours = st.value(&key) == Some(name.as_str());
            if ours && st.lease_of(&key) == Some(lease) {
                return true;
            }
            if ours || st.create_revision(&key) == 0 {
                st.put(&key, name, lease);
                return true;
            }
            false
        })
    }

    async fn release_leader(&self) -> Result<(), DcsError> {
        let key = self.keys.leader();
        self.with_store(|st| {
            if st.value(&key) == Some(self.identity.name.as_str()) {
                st.delete(&key);
            }
        })
    }

    async fn touch_member(&self, data: &MemberData) -> Result<(), DcsError> {
        let value = codec::to_json(data)?;
        let key = self.keys.member(&self.identity.name);
        self.with_store(|st| {
            let lease = self.ensure_lease(st);
            let mut cached = self.member_slot();
            // Like the etcd backend, trust the cache until a `load` shows the key differs.
            if cached.as_ref() == Some(&(value.clone(), lease)) {
                return;
            }
            st.put(&key, &value, lease);
            *cached = Some((value, lease));
        })
    }

    async fn shutdown(&self) -> Result<(), DcsError> {
        self.with_store(|st| {
            st.delete(&self.keys.member(&self.identity.name));
            if let Some(id) = self.lease_slot().take() {
                st.revoke(id);
            }
            *self.member_slot() = None;
        })
    }

    async fn write_config(&self, value: &Value, version: Option<i64>) -> Result<bool, DcsError> {
        self.put_versioned(&self.keys.config(), &codec::to_json(value)?, version)
    }

    async fn replace_config(&self, value: &Value) -> Result<(), DcsError> {
        let json = codec::to_json(value)?;
        self.with_store(|st| st.put(&self.keys.config(), &json, 0))
    }

    async fn write_status(&self, status: &Status) -> Result<(), DcsError> {
        let json = codec::to_json(status)?;
        self.with_store(|st| st.put(&self.keys.status(), &json, 0))
    }

    async fn write_history(&self, history: &[HistoryLine]) -> Result<(), DcsError> {
        let json = codec::to_json(history)?;
        self.with_store(|st| st.put(&self.keys.history(), &json, 0))
    }

    async fn write_failover(&self, failover: &Failover, version: Option<i64>) -> Result<bool, DcsError> {
        self.put_versioned(&self.keys.failover(), &codec::to_json(failover)?, version)
    }

    async fn delete_failover(&self, version: Option<i64>) -> Result<bool, DcsError> {
        let key = self.keys.failover();
        self.with_store(|st| {
            if version.is_some_and(|v| st.mod_revision(&key) != v) {
                return false;
            }
            st.delete(&key);
            true
        })
    }

    async fn watch_leader(&self, timeout: Duration) -> Result<(), DcsError> {
        self.watch(Watched::Leader, timeout).await
    }

    async fn watch_roster(&self, timeout: Duration) -> Result<(), DcsError> {
        self.watch(Watched::Roster, timeout).await
    }

    async fn set_ttl(&self, ttl: u32) {
        // Like Patroni: a new TTL needs a new lease; the old one is left to run out.
        if self.ttl.swap(ttl, Ordering::SeqCst) != ttl {
            *self.lease_slot() = None;
        }
    }

    async fn delete_cluster(&self) -> Result<(), DcsError> {
        self.with_store(|st| st.delete_prefix(self.keys.prefix()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str, ttl: u32) -> NodeIdentity {
        NodeIdentity {
            name: name.into(),
            scope: "b".into(),
            namespace: "/service".into(),
            ttl,
            retry_timeout: Duration::from_secs(3),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn leases_run_on_tokios_clock() {
        let store = MemoryStore::new();
        let (a, b) = (store.node(identity("a", 10)), store.node(identity("b", 10)));
        a.touch_member(&MemberData::default()).await.expect("touch");
        assert!(a.acquire_leader().await.expect("acquire"));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(b.load().await.expect("load").leader_name(), Some("a"));
        tokio::time::advance(Duration::from_secs(2)).await;
        let view = b.load().await.expect("load");
        assert!(
            view.leader.is_none() && view.members.is_empty(),
            "keys outlived their lease"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn watch_wakes_on_leader_expiry() {
        let store = MemoryStore::new();
        let (a, b) = (store.node(identity("a", 10)), store.node(identity("b", 10)));
        assert!(a.acquire_leader().await.expect("acquire"));
        b.load().await.expect("load");
        let started = Instant::now();
        b.watch_leader(Duration::from_secs(60)).await.expect("watch");
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(10),
            "watch must end when the lease runs out"
        );
    }

    #[tokio::test]
    async fn fault_injection() {
        let store = MemoryStore::new();
        let (a, b) = (store.node(identity("a", 30)), store.node(identity("b", 30)));
        assert!(a.acquire_leader().await.expect("acquire"));
        a.set_unavailable(true);
        assert!(matches!(a.update_leader().await, Err(DcsError::Unavailable(_))));
        assert!(b.load().await.is_ok(), "cutting one node off leaves the others working");
        a.set_unavailable(false);
        store.set_unavailable(true);
        assert!(matches!(b.load().await, Err(DcsError::Unavailable(_))));
        store.set_unavailable(false);

        a.expire_lease();
        assert!(b.load().await.expect("load").leader.is_none());
        assert!(b.acquire_leader().await.expect("acquire"));
        store.expire_leases_now();
        assert!(b.load().await.expect("load").leader.is_none());
        assert!(
            b.lease_id().is_some(),
            "the node learns of the expiry on its next renewal"
        );
        assert!(b.update_leader().await.expect("update re-creates on a new lease"));
    }

    #[tokio::test]
    async fn stores_patronis_bytes() {
        let store = MemoryStore::new();
        let a = store.node(identity("a", 30));
        assert!(a.acquire_leader().await.expect("acquire"));
        a.write_config(&serde_json::json!({"ttl": 30}), None)
            .await
            .expect("config");
        store.put_raw("/service/b/failover", "a:c");
        let dump = store.dump();
        assert_eq!(dump["/service/b/leader"], "a");
        assert_eq!(dump["/service/b/config"], r#"{"ttl":30}"#);
        let view = a.load().await.expect("load");
        assert_eq!(view.failover.expect("failover").value.member.as_deref(), Some("c"));
    }
}
