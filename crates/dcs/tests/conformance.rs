//! One behavioural contract, two backends: every scenario below runs against [`MemoryDcs`] and against
//! [`EtcdDcs`] talking to a real etcd started for that test (own ports, own data dir), so the in-memory
//! store other crates test with cannot drift from what etcd does.
//!
//! Timing-sensitive scenarios use short TTLs (2 s) and poll with deadlines; they fail with a message
//! that says what they waited for.

use ferroni_dcs::{Dcs, DcsError, EtcdDcs, MemoryStore, NodeIdentity};
use ferroni_model::{Failover, HistoryLine, MemberData, Status};
use ferroni_testkit::etcd::Etcd;
use ferroni_testkit::ports::free_port;
use serde_json::json;
use std::future::Future;
use std::time::Duration;
use tokio::time::{Instant, sleep};

const SCOPE: &str = "batman";
const NAMESPACE: &str = "/service/";
const LONG_TTL: u32 = 30;
const SHORT_TTL: u32 = 2;
const RETRY_TIMEOUT: Duration = Duration::from_secs(3);

enum Backend {
    Memory(MemoryStore),
    Etcd(Etcd),
}

struct Harness {
    backend: Backend,
}

fn identity(name: &str, ttl: u32, retry_timeout: Duration) -> NodeIdentity {
    NodeIdentity {
        name: name.to_string(),
        scope: SCOPE.to_string(),
        namespace: NAMESPACE.to_string(),
        ttl,
        retry_timeout,
    }
}

impl Harness {
    fn memory() -> Harness {
        Harness {
            backend: Backend::Memory(MemoryStore::new()),
        }
    }

    fn etcd() -> Harness {
        Harness {
            backend: Backend::Etcd(Etcd::start()),
        }
    }

    fn node(&self, name: &str) -> Box<dyn Dcs> {
        self.node_with_ttl(name, LONG_TTL)
    }

    fn node_with_ttl(&self, name: &str, ttl: u32) -> Box<dyn Dcs> {
        let id = identity(name, ttl, RETRY_TIMEOUT);
        match &self.backend {
            Backend::Memory(store) => Box::new(store.node(id)),
            Backend::Etcd(etcd) => Box::new(EtcdDcs::connect(vec![etcd.endpoint()], None, id).expect("valid config")),
        }
    }

    /// A node whose DCS cannot be reached: a closed port for etcd, a cut-off node for memory.
    fn unreachable_node(&self, name: &str, retry_timeout: Duration) -> Box<dyn Dcs> {
        let id = identity(name, LONG_TTL, retry_timeout);
        match &self.backend {
            Backend::Memory(store) => {
                let node = store.node(id);
                node.set_unavailable(true);
                Box::new(node)
            }
            Backend::Etcd(_) => {
                let closed = format!("http://127.0.0.1:{}", free_port());
                Box::new(EtcdDcs::connect(vec![closed], None, id).expect("valid config"))
            }
        }
    }
}

fn member(state: &str) -> MemberData {
    MemberData {
        conn_url: "postgres://10.0.0.1:5432/postgres".into(),
        api_url: "http://10.0.0.1:8008/patroni".into(),
        state: state.into(),
        role: "replica".into(),
        version: "4.1.4".into(),
        ..MemberData::default()
    }
}

type BoxedCall<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), DcsError>> + Send + 'a>>;

/// Polls `check` every 100 ms until it holds; panics naming `what` after `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "waited {within:?} for {what}");
        sleep(Duration::from_millis(100)).await;
    }
}

async fn leader_of(node: &dyn Dcs) -> Option<String> {
    node.load().await.expect("load").leader.map(|l| l.name)
}

async fn leader_race(h: Harness) {
    let (a, b) = (h.node("pg0"), h.node("pg1"));
    let (ra, rb) = tokio::join!(a.acquire_leader(), b.acquire_leader());
    let (ra, rb) = (ra.expect("pg0 acquire"), rb.expect("pg1 acquire"));
    assert!(ra ^ rb, "exactly one node must win the race, got pg0={ra} pg1={rb}");
    let winner = if ra { "pg0" } else { "pg1" };
    for node in [&a, &b] {
        let view = node.load().await.expect("load");
        let leader = view.leader.expect("leader key after the race");
        assert_eq!(leader.name, winner);
        assert_ne!(leader.lease, 0, "the leader key is bound to a lease");
    }
    let (winner, loser) = if ra { (&a, &b) } else { (&b, &a) };
    assert!(
        !loser.acquire_leader().await.expect("retry"),
        "a held key cannot be acquired"
    );
    assert!(
        winner.acquire_leader().await.expect("re-acquire"),
        "the holder re-acquiring is not a loss"
    );
}

async fn update_leader_only_by_holder(h: Harness) {
    let (a, b) = (h.node("pg0"), h.node("pg1"));
    assert!(a.acquire_leader().await.expect("acquire"));
    let before = a.load().await.expect("load").leader.expect("leader");
    assert!(a.update_leader().await.expect("holder update"));
    assert!(!b.update_leader().await.expect("non-holder update"));
    let after = a.load().await.expect("load").leader.expect("leader");
    assert_eq!(after.name, "pg0");
    assert_eq!(
        after.version, before.version,
        "renewing the lease must not rewrite the leader key"
    );

    // A new TTL means a new lease; the holder's update moves the key onto it.
    a.set_ttl(LONG_TTL + 1).await;
    assert!(a.update_leader().await.expect("update on new lease"));
    let moved = a.load().await.expect("load").leader.expect("leader");
    assert_eq!(moved.name, "pg0");
    assert_ne!(moved.lease, before.lease, "the key must be re-bound to the new lease");

    // A vanished key is re-created by the node that still considers itself leader (Patroni).
    a.release_leader().await.expect("release");
    assert!(a.update_leader().await.expect("update after release"));
    assert_eq!(leader_of(a.as_ref()).await.as_deref(), Some("pg0"));
}

async fn release_only_by_holder(h: Harness) {
    let (a, b) = (h.node("pg0"), h.node("pg1"));
    assert!(a.acquire_leader().await.expect("acquire"));
    b.release_leader().await.expect("release by non-holder is not an error");
    assert_eq!(leader_of(a.as_ref()).await.as_deref(), Some("pg0"));
    a.release_leader().await.expect("release by holder");
    assert_eq!(leader_of(a.as_ref()).await, None);
    assert!(b.acquire_leader().await.expect("acquire after release"));
}

async fn initialize_race_and_cancel(h: Harness) {
    let (a, b) = (h.node("pg0"), h.node("pg1"));
    let (ra, rb) = tokio::join!(a.attempt_initialize(), b.attempt_initialize());
    let (ra, rb) = (ra.expect("pg0 init"), rb.expect("pg1 init"));
    assert!(ra ^ rb, "exactly one node may bootstrap, got pg0={ra} pg1={rb}");
    let view = a.load().await.expect("load");
    assert_eq!(
        view.initialize.as_deref(),
        Some(""),
        "bootstrap in progress is an empty initialize key"
    );
    assert_eq!(view.sysid(), None);

    a.set_initialize("7268616322854375442").await.expect("set sysid");
    assert_eq!(b.load().await.expect("load").sysid(), Some("7268616322854375442"));
    assert!(!b.attempt_initialize().await.expect("init again"));

    a.cancel_initialize().await.expect("cancel");
    assert_eq!(b.load().await.expect("load").initialize, None);
    assert!(b.attempt_initialize().await.expect("init after cancel"));
}

async fn config_and_failover_cas(h: Harness) {
    let a = h.node("pg0");
    assert!(a.write_config(&json!({"ttl": 30}), None).await.expect("create"));
    assert!(
        !a.write_config(&json!({"ttl": 99}), None).await.expect("create again"),
        "create-only must fail"
    );
    let v1 = a.load().await.expect("load").config.expect("config");
    assert_eq!(v1.value, json!({"ttl": 30}));
    assert!(
        a.write_config(&json!({"ttl": 40}), Some(v1.version))
            .await
            .expect("cas")
    );
    assert!(
        !a.write_config(&json!({"ttl": 50}), Some(v1.version))
            .await
            .expect("stale cas"),
        "stale version"
    );
    let v2 = a.load().await.expect("load").config.expect("config");
    assert_eq!(v2.value, json!({"ttl": 40}));
    assert!(v2.version > v1.version);
    a.replace_config(&json!({"loop_wait": 5})).await.expect("replace");
    assert_eq!(
        a.load().await.expect("load").config.expect("config").value,
        json!({"loop_wait": 5})
    );

    let fo = Failover {
        leader: Some("pg0".into()),
        member: Some("pg1".into()),
        scheduled_at: None,
    };
    assert!(a.write_failover(&fo, None).await.expect("failover"));
    assert!(!a.write_failover(&fo, None).await.expect("failover again"));
    let f1 = a.load().await.expect("load").failover.expect("failover");
    assert_eq!(f1.value, fo);
    assert!(!a.delete_failover(Some(f1.version + 100)).await.expect("stale delete"));
    assert!(a.delete_failover(Some(f1.version)).await.expect("delete"));
    assert!(a.load().await.expect("load").failover.is_none());
}

async fn status_history_round_trip(h: Harness) {
    let a = h.node("pg0");
    let mut status = Status {
        optime: 67_108_960,
        ..Status::default()
    };
    status.slots.insert("pg1".into(), json!(67_108_000));
    a.write_status(&status).await.expect("status");
    let history = vec![HistoryLine(
        1,
        25_165_984,
        "no recovery target specified".into(),
        Some("2026-01-01T00:00:00+00:00".into()),
        Some("pg0".into()),
    )];
    a.write_history(&history).await.expect("history");
    let view = a.load().await.expect("load");
    assert_eq!(view.status, Some(status));
    assert_eq!(view.history, Some(history));
    assert_eq!(view.timeline(), 2);
}

async fn member_keys_expire_without_renewal(h: Harness) {
    let (a, observer) = (h.node_with_ttl("pg0", SHORT_TTL), h.node("obs"));
    a.touch_member(&member("running")).await.expect("touch");
    assert!(a.acquire_leader().await.expect("acquire"));
    sleep(Duration::from_millis(800)).await;
    let view = observer.load().await.expect("load");
    assert!(view.member("pg0").is_some(), "member key must outlive part of its TTL");
    assert_eq!(view.leader_name(), Some("pg0"));
    eventually(
        "pg0's member and leader keys to expire",
        Duration::from_secs(u64::from(SHORT_TTL) + 4),
        || async {
            let view = observer.load().await.expect("load");
            view.member("pg0").is_none() && view.leader.is_none()
        },
    )
    .await;

    // The node comes back: etcd forgot its lease, so it must get a new one transparently, and the
    // free leader key is re-created by the node that still considers itself leader (Patroni).
    a.touch_member(&member("running")).await.expect("touch on a new lease");
    assert!(a.update_leader().await.expect("update after expiry"));
    let view = observer.load().await.expect("load");
    assert!(
        view.member("pg0").is_some(),
        "member key must be rewritten on the new lease"
    );
    assert_eq!(view.leader_name(), Some("pg0"));
}

async fn renewed_member_survives(h: Harness) {
    let (a, observer) = (h.node_with_ttl("pg0", SHORT_TTL), h.node("obs"));
    let until = Instant::now() + Duration::from_millis(u64::from(SHORT_TTL) * 1000 + 1500);
    while Instant::now() < until {
        a.touch_member(&member("running")).await.expect("touch");
        assert!(
            observer.load().await.expect("load").member("pg0").is_some(),
            "renewed member key vanished"
        );
        sleep(Duration::from_millis(400)).await;
    }
}

async fn expired_leader_is_taken_over(h: Harness) {
    let (a, b) = (h.node_with_ttl("pg0", SHORT_TTL), h.node("pg1"));
    assert!(a.acquire_leader().await.expect("acquire"));
    eventually(
        "pg0's leader key to expire",
        Duration::from_secs(u64::from(SHORT_TTL) + 4),
        || async { leader_of(b.as_ref()).await.is_none() },
    )
    .await;
    assert!(b.acquire_leader().await.expect("take over"));
    assert!(
        !a.update_leader().await.expect("old leader update"),
        "the old leader must learn it lost the key"
    );
    assert!(!a.acquire_leader().await.expect("old leader acquire"));
    assert_eq!(leader_of(a.as_ref()).await.as_deref(), Some("pg1"));
}

async fn shutdown_removes_member_and_leader(h: Harness) {
    let (a, b) = (h.node("pg0"), h.node("pg1"));
    a.touch_member(&member("running")).await.expect("touch a");
    b.touch_member(&member("running")).await.expect("touch b");
    assert!(a.acquire_leader().await.expect("acquire"));
    a.shutdown().await.expect("shutdown");
    let view = b.load().await.expect("load");
    assert!(
        view.member("pg0").is_none(),
        "shutdown must delete the member key at once"
    );
    assert!(
        view.leader.is_none(),
        "revoking the lease must drop the leader key at once"
    );
    assert!(view.member("pg1").is_some(), "other members are untouched");
    // A node that shut down can start over.
    a.touch_member(&member("running")).await.expect("touch after shutdown");
    assert!(a.acquire_leader().await.expect("acquire after shutdown"));
}

async fn watch_returns_early_on_leader_deletion(h: Harness) {
    let (a, b) = (h.node("pg0"), h.node("pg1"));
    assert!(a.acquire_leader().await.expect("acquire"));
    b.load().await.expect("load");
    let releaser = tokio::spawn(async move {
        sleep(Duration::from_millis(500)).await;
        a.release_leader().await.expect("release");
    });
    let started = Instant::now();
    b.watch_leader(Duration::from_secs(8)).await.expect("watch");
    let waited = started.elapsed();
    releaser.await.expect("releaser task");
    assert!(
        waited >= Duration::from_millis(400),
        "watch returned before the change: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(4),
        "watch did not return early on deletion: {waited:?}"
    );
}

async fn watch_sees_change_since_last_load(h: Harness) {
    let (a, b) = (h.node("pg0"), h.node("pg1"));
    b.load().await.expect("load");
    assert!(a.acquire_leader().await.expect("acquire"));
    let started = Instant::now();
    b.watch_leader(Duration::from_secs(8)).await.expect("watch");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a change after the last load must end the wait at once"
    );
}

async fn watch_times_out_without_leader_change(h: Harness) {
    let (a, b) = (h.node("pg0"), h.node("pg1"));
    assert!(a.acquire_leader().await.expect("acquire"));
    b.load().await.expect("load");
    let noise = tokio::spawn(async move {
        // Renewals and writes to other keys are not leader changes.
        for _ in 0..6 {
            a.update_leader().await.expect("renew");
            a.touch_member(&member("running")).await.expect("touch");
            a.write_status(&Status {
                optime: 1,
                ..Status::default()
            })
            .await
            .expect("status");
            sleep(Duration::from_millis(250)).await;
        }
    });
    let started = Instant::now();
    b.watch_leader(Duration::from_millis(1500)).await.expect("watch");
    let waited = started.elapsed();
    noise.await.expect("noise task");
    assert!(
        waited >= Duration::from_millis(1400),
        "watch ended without a leader change after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "watch overran its timeout: {waited:?}");
}

/// How long `watch` waited for the change `change` makes after 400 ms.
async fn waited_for(watch: impl Future<Output = Result<(), DcsError>>, change: impl Future<Output = ()>) -> Duration {
    let started = Instant::now();
    let change = async {
        sleep(Duration::from_millis(400)).await;
        change.await;
    };
    let (watched, ()) = tokio::join!(watch, change);
    watched.expect("watch");
    started.elapsed()
}

async fn roster_watch_wakes_on_join_and_leave(h: Harness) {
    let (a, b, c) = (h.node("pg0"), h.node("pg1"), h.node("pg2"));
    a.touch_member(&member("running")).await.expect("touch pg0");
    a.load().await.expect("load");
    let joined = waited_for(a.watch_roster(Duration::from_secs(8)), async {
        c.touch_member(&member("creating replica")).await.expect("touch pg2");
    })
    .await;
    assert!(
        joined >= Duration::from_millis(350) && joined < Duration::from_secs(3),
        "woken by pg2 joining after {joined:?}"
    );

    b.touch_member(&member("running")).await.expect("touch pg1");
    let started = Instant::now();
    a.watch_roster(Duration::from_secs(8)).await.expect("watch");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a member joining after the last load must end the wait at once"
    );

    a.load().await.expect("load");
    let left = waited_for(a.watch_roster(Duration::from_secs(8)), async {
        c.shutdown().await.expect("pg2 leaves");
    })
    .await;
    assert!(
        left >= Duration::from_millis(350) && left < Duration::from_secs(3),
        "woken by pg2 leaving after {left:?}"
    );
}

async fn roster_watch_sleeps_through_member_rewrites(h: Harness) {
    let (a, b) = (h.node("pg0"), h.node("pg1"));
    a.touch_member(&member("running")).await.expect("touch pg0");
    b.touch_member(&member("running")).await.expect("touch pg1");
    a.load().await.expect("load");
    let noise = async {
        for i in 0..6 {
            let state = if i % 2 == 0 { "streaming" } else { "running" };
            b.touch_member(&member(state)).await.expect("rewrite pg1");
            sleep(Duration::from_millis(250)).await;
        }
    };
    let started = Instant::now();
    let (watched, ()) = tokio::join!(a.watch_roster(Duration::from_millis(1500)), noise);
    watched.expect("watch");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "a member rewriting its key ended the wait after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "watch overran its timeout: {waited:?}");
}

async fn unreachable_dcs_is_unavailable_in_time(h: Harness) {
    let retry = Duration::from_millis(1500);
    let node = h.unreachable_node("pg0", retry);
    let bound = retry + Duration::from_millis(500);
    let member = member("running");
    let calls: Vec<(&str, BoxedCall<'_>)> = vec![
        ("load", Box::pin(async { node.load().await.map(drop) })),
        (
            "acquire_leader",
            Box::pin(async { node.acquire_leader().await.map(drop) }),
        ),
        (
            "update_leader",
            Box::pin(async { node.update_leader().await.map(drop) }),
        ),
        ("touch_member", Box::pin(node.touch_member(&member))),
        (
            "write_config",
            Box::pin(async { node.write_config(&json!({}), None).await.map(drop) }),
        ),
    ];
    for (what, call) in calls {
        let started = Instant::now();
        let outcome = call.await;
        assert!(
            matches!(outcome, Err(DcsError::Unavailable(_))),
            "{what}: expected Unavailable, got {outcome:?}"
        );
        assert!(started.elapsed() < bound, "{what} took {:?}", started.elapsed());
    }

    let started = Instant::now();
    let watched = node.watch_leader(Duration::from_secs(1)).await;
    let waited = started.elapsed();
    assert!(matches!(watched, Err(DcsError::Unavailable(_))), "watch: {watched:?}");
    assert!(
        waited >= Duration::from_millis(900),
        "a failing watch must not return early ({waited:?})"
    );
    assert!(
        waited < Duration::from_millis(2500),
        "watch overran its timeout: {waited:?}"
    );
}

async fn member_json_round_trip_keeps_unknown_fields(h: Harness) {
    let (a, b) = (h.node("pg0"), h.node("pg1"));
    let raw = r#"{"conn_url":"postgres://10.0.0.1:5433/postgres","api_url":"http://10.0.0.1:8008/patroni","state":"running","role":"primary","version":"4.1.4","tags":{"nofailover":true,"clonefrom":"yes"},"xlog_location":100663296,"timeline":3,"proxy_url":"postgres://proxy:6432/postgres","checkpoint_after_promote":false,"scheduled_restart":{"schedule":"2026-01-01T00:00:00+00:00"}}"#;
    let data = MemberData::from_json(raw);
    a.touch_member(&data).await.expect("touch");
    let view = b.load().await.expect("load");
    let read = &view.member("pg0").expect("member pg0").data;
    assert_eq!(read, &data);
    assert_eq!(read.extra["proxy_url"], "postgres://proxy:6432/postgres");
    assert_eq!(read.extra["scheduled_restart"]["schedule"], "2026-01-01T00:00:00+00:00");
    let original: serde_json::Value = serde_json::from_str(raw).expect("raw json");
    assert_eq!(
        serde_json::to_value(read).expect("encode"),
        original,
        "no field may be lost or changed"
    );
}

async fn delete_cluster_removes_everything(h: Harness) {
    let (a, b) = (h.node("pg0"), h.node("pg1"));
    a.attempt_initialize().await.expect("init");
    a.write_config(&json!({"ttl": 30}), None).await.expect("config");
    a.touch_member(&member("running")).await.expect("touch");
    assert!(a.acquire_leader().await.expect("acquire"));
    b.delete_cluster().await.expect("delete cluster");
    let view = b.load().await.expect("load");
    assert_eq!(view, ferroni_model::ClusterView::default());
    // The member cache must not hide the deletion once a load has shown it.
    a.load().await.expect("load");
    a.touch_member(&member("running")).await.expect("touch again");
    assert!(
        b.load().await.expect("load").member("pg0").is_some(),
        "member key must be rewritten"
    );
}

macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $scenario() { super::$scenario(super::Harness::memory()).await })*
        }
        mod etcd {
            $(#[tokio::test] async fn $scenario() { super::$scenario(super::Harness::etcd()).await })*
        }
    };
}

conformance!(
    leader_race,
    update_leader_only_by_holder,
    release_only_by_holder,
    initialize_race_and_cancel,
    config_and_failover_cas,
    status_history_round_trip,
    member_keys_expire_without_renewal,
    renewed_member_survives,
    expired_leader_is_taken_over,
    shutdown_removes_member_and_leader,
    watch_returns_early_on_leader_deletion,
    watch_sees_change_since_last_load,
    watch_times_out_without_leader_change,
    roster_watch_wakes_on_join_and_leave,
    roster_watch_sleeps_through_member_rewrites,
    unreachable_dcs_is_unavailable_in_time,
    member_json_round_trip_keeps_unknown_fields,
    delete_cluster_removes_everything,
);
