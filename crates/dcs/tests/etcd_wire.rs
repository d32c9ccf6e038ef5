//! etcd-only checks: the exact bytes and leases Patroni would see (read back with a raw etcd client),
//! and behaviour across etcd faults the in-memory store cannot imitate (frozen server, restart,
//! lease revoked behind the node's back, a request etcd rejects).

use etcd_client::{Client, GetOptions};
use ferroni_dcs::{Dcs, DcsError, EtcdDcs, NodeIdentity};
use ferroni_model::{Failover, MemberData};
use ferroni_testkit::etcd::Etcd;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

fn node(etcd: &Etcd, name: &str, retry_timeout: Duration) -> EtcdDcs {
    node_with_ttl(etcd, name, retry_timeout, 30)
}

fn node_with_ttl(etcd: &Etcd, name: &str, retry_timeout: Duration, ttl: u32) -> EtcdDcs {
    let identity = NodeIdentity {
        name: name.to_string(),
        scope: "batman".to_string(),
        namespace: "/service/".to_string(),
        ttl,
        retry_timeout,
    };
    // As the daemon runs it.
    EtcdDcs::connect(vec![etcd.host_port()], None, identity)
        .expect("valid config")
        .with_watched_copy()
}

/// Two daemons' clients, pg0 and pg1, with a 3 s retry_timeout.
fn pair(etcd: &Etcd) -> (EtcdDcs, EtcdDcs) {
    let retry = Duration::from_secs(3);
    (node(etcd, "pg0", retry), node(etcd, "pg1", retry))
}

async fn raw(etcd: &Etcd) -> Client {
    Client::connect([etcd.endpoint()], None).await.expect("raw client")
}

async fn raw_kv(client: &mut Client, key: &str) -> Option<etcd_client::KeyValue> {
    let mut resp = client.get(key, None).await.expect("raw get");
    resp.take_kvs().into_iter().next()
}

fn member(state: &str) -> MemberData {
    MemberData {
        conn_url: "postgres://10.0.0.1:5432/postgres".into(),
        api_url: "http://10.0.0.1:8008/patroni".into(),
        state: state.into(),
        role: "primary".into(),
        version: "4.1.4".into(),
        ..MemberData::default()
    }
}

#[tokio::test]
async fn values_and_leases_are_patronis() {
    let etcd = Etcd::start();
    let a = node(&etcd, "pg0", Duration::from_secs(3));
    let mut c = raw(&etcd).await;
    assert!(a.attempt_initialize().await.expect("init"));
    a.touch_member(&member("running")).await.expect("touch");
    assert!(a.acquire_leader().await.expect("acquire"));
    a.write_config(&json!({"ttl": 30, "postgresql": {"use_pg_rewind": true}}), None)
        .await
        .expect("config");
    let failover = Failover {
        leader: Some("pg0".into()),
        member: Some("pg1".into()),
        scheduled_at: None,
    };
    a.write_failover(&failover, None).await.expect("failover");

    let leader = raw_kv(&mut c, "/service/batman/leader").await.expect("leader key");
    let member_kv = raw_kv(&mut c, "/service/batman/members/pg0").await.expect("member key");
    let init = raw_kv(&mut c, "/service/batman/initialize")
        .await
        .expect("initialize key");
    let config = raw_kv(&mut c, "/service/batman/config").await.expect("config key");
    let failover_kv = raw_kv(&mut c, "/service/batman/failover").await.expect("failover key");

    assert_eq!(leader.value(), b"pg0", "the leader key is a plain name, not JSON");
    assert_ne!(leader.lease(), 0);
    assert_eq!(
        leader.lease(),
        member_kv.lease(),
        "leader and member key share the node's lease"
    );
    assert_eq!(a.lease_id().await, Some(leader.lease()));
    assert_eq!(
        (init.value(), init.lease()),
        (&b""[..], 0),
        "initialize is an empty string without lease"
    );
    assert_eq!(
        member_kv.value_str().expect("utf8"),
        r#"{"conn_url":"postgres://10.0.0.1:5432/postgres","api_url":"http://10.0.0.1:8008/patroni","state":"running","role":"primary","version":"4.1.4"}"#
    );
    assert_eq!(
        config.value_str().expect("utf8"),
        r#"{"postgresql":{"use_pg_rewind":true},"ttl":30}"#
    );
    assert_eq!(config.lease(), 0, "config must not vanish with a node");
    assert_eq!(
        failover_kv.value_str().expect("utf8"),
        r#"{"leader":"pg0","member":"pg1"}"#
    );

    let ttl = c.lease_time_to_live(leader.lease(), None).await.expect("ttl");
    assert_eq!(ttl.granted_ttl(), 30, "the lease TTL is the node's ttl");
}

#[tokio::test]
async fn identical_member_writes_are_skipped() {
    let etcd = Etcd::start();
    let a = node(&etcd, "pg0", Duration::from_secs(3));
    let mut c = raw(&etcd).await;
    let key = "/service/batman/members/pg0";
    a.touch_member(&member("running")).await.expect("touch");
    let first = raw_kv(&mut c, key).await.expect("member").mod_revision();
    a.touch_member(&member("running")).await.expect("touch again");
    assert_eq!(
        raw_kv(&mut c, key).await.expect("member").mod_revision(),
        first,
        "unchanged data was rewritten"
    );
    a.touch_member(&member("stopping")).await.expect("touch changed");
    assert!(
        raw_kv(&mut c, key).await.expect("member").mod_revision() > first,
        "changed data was not written"
    );
}

#[tokio::test]
async fn revoked_lease_is_replaced_transparently() {
    let etcd = Etcd::start();
    let a = node(&etcd, "pg0", Duration::from_secs(3));
    let mut c = raw(&etcd).await;
    a.touch_member(&member("running")).await.expect("touch");
    let old = a.lease_id().await.expect("lease");
    c.lease_revoke(old).await.expect("revoke behind the node's back");
    // The lease was renewed less than a second ago, so the node does not know yet; the put fails with
    // "lease not found" and must be retried on a new lease.
    a.touch_member(&member("stopping")).await.expect("touch after revoke");
    let kv = raw_kv(&mut c, "/service/batman/members/pg0")
        .await
        .expect("member rewritten");
    assert_ne!(kv.lease(), old);
    assert_eq!(Some(kv.lease()), a.lease_id().await);
    assert!(a.acquire_leader().await.expect("acquire on the new lease"));
}

#[tokio::test]
async fn frozen_etcd_is_unavailable_in_time_and_recovers() {
    let etcd = Etcd::start();
    let retry = Duration::from_millis(1500);
    let (a, b) = (node(&etcd, "pg0", retry), node(&etcd, "pg1", retry));
    assert!(a.acquire_leader().await.expect("acquire"));
    b.load().await.expect("load");

    etcd.pause();
    let bound = retry + Duration::from_millis(700);
    // A load may still be served from the watched copy for three quarters of a retry_timeout after
    // etcd last answered; within retry_timeout of the freeze loads must fail.
    let started = Instant::now();
    loop {
        let loaded = b.load().await;
        if matches!(loaded, Err(DcsError::Unavailable(_))) {
            break;
        }
        assert!(loaded.is_ok(), "load on a frozen etcd: {loaded:?}");
        assert!(
            started.elapsed() < retry * 3 / 4,
            "a copy served {:?} after the freeze",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() < bound,
        "loads failed only after {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let updated = a.update_leader().await;
    assert!(
        matches!(updated, Err(DcsError::Unavailable(_))),
        "update_leader on a frozen etcd: {updated:?}"
    );
    assert!(started.elapsed() < bound, "update_leader took {:?}", started.elapsed());
    let started = Instant::now();
    let watched = b.watch_leader(Duration::from_secs(1)).await;
    assert!(
        started.elapsed() < Duration::from_millis(1700),
        "watch took {:?}",
        started.elapsed()
    );
    assert!(watched.is_err(), "nothing could be watched: {watched:?}");

    etcd.resume();
    assert!(
        a.update_leader().await.expect("update after resume"),
        "lease outlived the freeze"
    );
    assert_eq!(b.load().await.expect("load after resume").leader_name(), Some("pg0"));
}

#[tokio::test]
async fn restart_keeps_lease_and_streams_reopen() {
    let mut etcd = Etcd::start();
    let (a, b) = pair(&etcd);
    assert!(a.acquire_leader().await.expect("acquire"));
    assert!(a.update_leader().await.expect("update opens the keep-alive stream"));
    b.load().await.expect("load");

    etcd.restart();
    // The cached keep-alive stream died with the old process; the forced keep-alive must re-open it.
    assert!(
        a.update_leader().await.expect("update after restart"),
        "leases survive an etcd restart"
    );
    let releaser = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.release_leader().await.expect("release");
    };
    let started = Instant::now();
    let (watched, ()) = tokio::join!(b.watch_leader(Duration::from_secs(6)), releaser);
    watched.expect("watch after restart");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "watch missed the release: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn rejected_request_is_failed_not_unavailable() {
    let etcd = Etcd::start();
    let a = node(&etcd, "pg0", Duration::from_secs(3));
    // Above etcd's default --max-request-bytes (1.5 MiB), below gRPC's 2 MiB message limit, so etcd
    // itself answers "request is too large".
    let huge = json!({"blob": "x".repeat(1700 * 1024)});
    let started = Instant::now();
    let written = a.replace_config(&huge).await;
    assert!(
        matches!(written, Err(DcsError::Failed(_))),
        "oversized write: {written:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a rejection must not be retried"
    );
    let mut c = raw(&etcd).await;
    let count = c
        .get(
            "/service/batman/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await;
    assert_eq!(count.expect("count").count(), 0);
}

/// How long `watch` waited while `change` ran beside it.
async fn waited(
    watch: impl std::future::Future<Output = Result<(), DcsError>>,
    change: impl std::future::Future<Output = ()>,
) -> Duration {
    let started = Instant::now();
    let (watched, ()) = tokio::join!(watch, change);
    watched.expect("watch");
    started.elapsed()
}

/// Loads until one comes from the watched copy (the first load starts its watch).
async fn served_from_the_copy(node: &EtcdDcs) {
    let started = Instant::now();
    node.load().await.expect("first load, which starts the watch");
    while node.cached_loads() == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "no load came from the copy");
        tokio::time::sleep(Duration::from_millis(20)).await;
        node.load().await.expect("load");
    }
}

/// The watched copy serves idle loads, shows other nodes' writes, always shows the node's own last
/// write, and wakes a leader watch without a watch of its own.
#[tokio::test]
async fn watched_copy_serves_loads_and_reads_its_own_writes() {
    let etcd = Etcd::start();
    let (a, b) = pair(&etcd);
    assert!(a.acquire_leader().await.expect("acquire"));
    served_from_the_copy(&b).await;

    for i in 0..20 {
        let state = format!("state {i}");
        b.touch_member(&member(&state)).await.expect("touch");
        let view = b.load().await.expect("load right after a write");
        let mine = view.members.iter().find(|m| m.name == "pg1").expect("own member");
        assert_eq!(mine.data.state, state, "a load right after a write shows it");
    }

    a.touch_member(&member("from pg0")).await.expect("touch by pg0");
    let started = Instant::now();
    loop {
        let view = b.load().await.expect("load");
        if view
            .members
            .iter()
            .any(|m| m.name == "pg0" && m.data.state == "from pg0")
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "pg0's write never showed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cached = b.cached_loads();
    b.load().await.expect("idle load");
    assert_eq!(b.cached_loads(), cached + 1, "an idle load comes from the copy");

    let release = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.release_leader().await.expect("release");
    };
    let waited = waited(b.watch_leader(Duration::from_secs(10)), release).await;
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "woken by the release after {waited:?}"
    );
    assert_eq!(b.load().await.expect("load").leader_name(), None);
}

/// The daemon's leader waits on the watched copy for members joining, not for their rewrites.
#[tokio::test]
async fn watched_copy_wakes_the_leader_when_a_member_joins() {
    let etcd = Etcd::start();
    let (a, b) = pair(&etcd);
    assert!(a.acquire_leader().await.expect("acquire"));
    a.touch_member(&member("running")).await.expect("touch pg0");
    served_from_the_copy(&a).await;

    let rewrites = async {
        for i in 0..4 {
            a.touch_member(&member(&format!("running {i}")))
                .await
                .expect("rewrite pg0");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        b.touch_member(&member("creating replica")).await.expect("pg1 joins");
    };
    let waited = waited(a.watch_roster(Duration::from_secs(10)), rewrites).await;
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(3),
        "woken by pg1 joining (not by pg0's rewrites) after {waited:?}"
    );
    let cached = a.cached_loads();
    let view = a.load().await.expect("load");
    assert!(view.member("pg1").is_some(), "the copy holds the new member");
    assert_eq!(
        a.cached_loads(),
        cached + 1,
        "the load after the wake comes from the copy"
    );
}

fn boottime() -> Duration {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME");
    Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32)
}

/// The fence counts from the renewal a lock call relied on, not from the call: `acquire_leader`
/// reuses a lease renewed a while ago, and the leader renews at most every three quarters of a
/// retry_timeout.
#[tokio::test]
async fn lock_calls_report_the_renewal_they_relied_on() {
    let etcd = Etcd::start();
    let a = node(&etcd, "pg0", Duration::from_secs(4));
    assert_eq!(a.lease_renewed_at(), None);
    a.touch_member(&member("running")).await.expect("touch");
    let granted = a.lease_renewed_at().expect("the grant counts as a renewal");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before_acquire = boottime();
    assert!(a.acquire_leader().await.expect("acquire"));
    assert_eq!(a.lease_renewed_at(), Some(granted), "acquire reused the member's lease");
    assert!(before_acquire - granted >= Duration::from_secs(1));
    assert!(a.update_leader().await.expect("update"));
    assert_eq!(
        a.lease_renewed_at(),
        Some(granted),
        "renewed 1.2 s ago: within 3/4 of retry_timeout"
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let before_update = boottime();
    assert!(a.update_leader().await.expect("update"));
    let renewed = a.lease_renewed_at().expect("renewed");
    assert!(renewed >= before_update, "due after 3 s: renewed by this call");
    assert!(a.load().await.expect("load").leader_name() == Some("pg0"));
}

/// A replica whose load needs a new confirmation renews its lease instead of asking for progress
/// when the renewal would be due before the next confirmation anyway: one message, not two.
#[tokio::test]
async fn a_replica_confirms_the_copy_with_an_early_lease_renewal() {
    let etcd = Etcd::start();
    // ttl 8: the member lease is renewed every 2 s; the copy is trusted for 1.5 s.
    let b = node_with_ttl(&etcd, "pg1", Duration::from_secs(2), 8);
    b.touch_member(&member("running")).await.expect("touch");
    b.load().await.expect("first load");
    let granted = b.lease_renewed_at().expect("granted");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let cached = b.cached_loads();
    b.load().await.expect("load");
    let renewed = b.lease_renewed_at().expect("renewed");
    assert!(
        renewed > granted,
        "the load renewed the lease ({granted:?} then {renewed:?})"
    );
    assert_eq!(b.cached_loads(), cached + 1, "and was served from the copy");
    b.load().await.expect("load");
    assert_eq!(b.lease_renewed_at(), Some(renewed), "a confirmed copy renews nothing");
}
