//! Failover end to end (real etcd, real PostgreSQL 15): the leader's node dies, the best replica
//! takes over within the TTL, lagging and `nofailover` replicas never win, nobody else stays
//! writable, and callbacks see the role changes.

mod common;

use common::{TestCluster, secs};
use ferroni_testkit::node::tail;
use ferroni_testkit::wait::wait_until;
use ferroni_testkit::writable::{WritableChecker, first_writable_after, split_brain};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::Duration;

fn streaming(c: &TestCluster, count: usize) {
    wait_until(&format!("{count} streaming replicas"), secs(90), || {
        c.load()
            .members
            .iter()
            .filter(|m| m.data.replication_state.as_deref() == Some("streaming") && m.data.state == "running")
            .count()
            == count
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            c.nodes
                .iter()
                .map(|n| tail(&n.log(), 25))
                .collect::<Vec<_>>()
                .join("\n---\n")
        )
    });
}

/// Kills the node's daemon and its postmaster with SIGKILL, as a machine failure would.
fn kill_node(c: &mut TestCluster, i: usize) {
    let pm = c.nodes[i].postmaster_pid();
    c.nodes[i].kill9();
    if let Some(pid) = pm {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[test]
fn kill_of_the_leader_promotes_a_replica_and_the_other_follows_it() {
    let mut c = TestCluster::new("failover");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    for name in ["b", "c"] {
        let spec = c.spec(name);
        c.start(spec);
    }
    streaming(&c, 2);
    c.nodes[a]
        .psql("CREATE TABLE before_failover (x int); INSERT INTO before_failover VALUES (1)")
        .unwrap();
    wait_until("row replicated", secs(10), || {
        c.nodes[1..]
            .iter()
            .all(|n| n.psql("SELECT x FROM before_failover").is_ok_and(|v| v == "1"))
    })
    .unwrap();
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.spec.pg_port).collect();
    let checker = WritableChecker::start(ports);
    std::thread::sleep(Duration::from_millis(300));
    let killed_at = checker.elapsed();
    kill_node(&mut c, a);
    wait_until("a new leader", secs(40), || {
        c.load().leader_name().is_some_and(|l| l != "a")
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            c.nodes[1..]
                .iter()
                .map(|n| tail(&n.log(), 30))
                .collect::<Vec<_>>()
                .join("\n---\n")
        )
    });
    let leader = c.load().leader_name().unwrap().to_string();
    let (new, other) = if leader == "b" { (1, 2) } else { (2, 1) };
    wait_until("the new leader accepts writes", secs(20), || {
        c.nodes[new].psql("INSERT INTO before_failover VALUES (2)").is_ok()
    })
    .unwrap();
    let new_port = c.nodes[new].spec.pg_port;
    let other_port = c.nodes[other].spec.pg_port;
    wait_until("the other replica follows the new leader", secs(30), || {
        c.nodes[other]
            .psql("SELECT sender_port FROM pg_stat_wal_receiver")
            .is_ok_and(|p| p == new_port.to_string())
            && c.nodes[other]
                .psql("SELECT count(*) FROM before_failover")
                .is_ok_and(|v| v == "2")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&c.nodes[other].log(), 40)));
    let samples = checker.finish();
    let writable_at = first_writable_after(&samples, killed_at).expect("some node became writable");
    eprintln!(
        "failover: writable again {:?} after kill -9 (ttl {} s)",
        writable_at - killed_at,
        c.nodes[new].spec.ttl
    );
    assert!(writable_at - killed_at <= Duration::from_secs(u64::from(c.nodes[new].spec.ttl) + 3));
    assert_eq!(split_brain(&samples), vec![], "two writable primaries");
    assert!(samples.iter().filter(|s| s.port == other_port).all(|s| !s.writable));
    wait_until("history records the new timeline", secs(10), || {
        c.load()
            .history
            .is_some_and(|h| h.iter().any(|l| l.0 == 1 && l.4.as_deref() == Some(leader.as_str())))
    })
    .unwrap();
    let view = c.load();
    assert_eq!(view.member(&leader).unwrap().data.role, "primary");
    assert_eq!(view.member(&leader).unwrap().data.timeline, Some(2));
}

#[test]
fn lagging_and_nofailover_replicas_never_win() {
    let mut c = TestCluster::new("eligible");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let lagging = c.start(c.spec("lagging"));
    let mut spec = c.spec("nofail");
    spec.extra_yaml = "tags:\n  nofailover: true\n".into();
    let nofail = c.start(spec);
    let good = c.start(c.spec("good"));
    streaming(&c, 3);
    // Freeze the lagging replica's WAL receiver, then write more than maximum_lag_on_failover (1 MiB).
    let walreceiver: i32 = c.nodes[lagging]
        .psql("SELECT pid FROM pg_stat_wal_receiver")
        .unwrap()
        .parse()
        .unwrap();
    kill(Pid::from_raw(walreceiver), Signal::SIGSTOP).unwrap();
    c.nodes[a]
        .psql("CREATE TABLE bulk AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 40000) g")
        .unwrap();
    wait_until("the leader publishes its new position", secs(10), || {
        let view = c.load();
        let optime = view.status.as_ref().map(|s| s.optime).unwrap_or(0);
        let lag_pos = view
            .member("lagging")
            .and_then(|m| m.data.receive_lsn.or(m.data.replay_lsn))
            .unwrap_or(0);
        optime > lag_pos + 2 * 1024 * 1024
    })
    .unwrap();
    wait_until("good has the data", secs(20), || {
        c.nodes[good]
            .psql("SELECT count(*) FROM bulk")
            .is_ok_and(|v| v == "40000")
    })
    .unwrap();
    kill_node(&mut c, a);
    wait_until("a new leader", secs(40), || {
        c.load().leader_name().is_some_and(|l| l != "a")
    })
    .unwrap();
    assert_eq!(
        c.load().leader_name(),
        Some("good"),
        "only the healthy, eligible replica may win"
    );
    let _ = kill(Pid::from_raw(walreceiver), Signal::SIGCONT);
    assert!(
        c.nodes[nofail]
            .log()
            .contains("not the healthiest node: tagged nofailover"),
        "{}",
        tail(&c.nodes[nofail].log(), 20)
    );
    let lag_log = c.nodes[lagging].log();
    assert!(
        lag_log.contains("exceeds maximum_lag_on_failover") || lag_log.contains("is ahead of me"),
        "{}",
        tail(&lag_log, 20)
    );
}

#[test]
fn callbacks_see_the_role_changes() {
    let mut c = TestCluster::new("callbacks");
    let dir = ferroni_testkit::node::postgres_tempdir();
    let record = dir.path().join("calls.txt");
    let script = dir.path().join("cb.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1 $2 $3\" >> {}\n", record.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let callbacks = format!(
        "  callbacks:\n    on_start: {s}\n    on_stop: {s}\n    on_role_change: {s}\n",
        s = script.display()
    );
    let mut spec = c.spec("a");
    spec.extra_postgresql = callbacks.clone();
    let a = c.start(spec);
    c.nodes[a].wait_role("primary", secs(60));
    let mut spec = c.spec("b");
    spec.extra_postgresql = callbacks;
    c.start(spec);
    streaming(&c, 1);
    kill_node(&mut c, a);
    wait_until("b promoted", secs(40), || c.load().leader_name() == Some("b")).unwrap();
    wait_until("callbacks recorded", secs(10), || {
        std::fs::read_to_string(&record).is_ok_and(|t| t.contains("on_role_change primary callbacks"))
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", std::fs::read_to_string(&record)));
    let calls = std::fs::read_to_string(&record).unwrap();
    assert!(calls.contains("on_start primary callbacks"), "{calls}");
    assert!(calls.contains("on_start replica callbacks"), "{calls}");
}

fn post(node: &ferroni_testkit::node::FerroniNode, path: &str, body: &str) -> (u16, serde_json::Value, String) {
    let url = node.api_url(path);
    let (code, value) = ferroni_testkit::node::http_request("POST", &url, Some(body)).expect("POST");
    let text = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
    (code, value, text)
}

#[test]
fn switchover_to_a_named_candidate_and_back() {
    let mut c = TestCluster::new("switch");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let b = c.start(c.spec("b"));
    streaming(&c, 1);
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.spec.pg_port).collect();
    let checker = WritableChecker::start(ports);
    for (from, to, name_from, name_to) in [(a, b, "a", "b"), (b, a, "b", "a")] {
        let started = std::time::Instant::now();
        let (code, _, text) = post(
            &c.nodes[from],
            "/switchover",
            &format!(r#"{{"leader": "{name_from}", "candidate": "{name_to}"}}"#),
        );
        assert_eq!(
            code,
            200,
            "{text}\n{}\n{}",
            tail(&c.nodes[from].log(), 30),
            tail(&c.nodes[to].log(), 30)
        );
        assert!(
            text.contains(&format!("Successfully switched over to \"{name_to}\"")),
            "{text}"
        );
        wait_until("the candidate accepts writes", secs(10), || {
            ferroni_testkit::writable::accepts_writes(c.nodes[to].spec.pg_port)
        })
        .unwrap();
        eprintln!(
            "switchover {name_from} -> {name_to}: candidate writable after {:?}",
            started.elapsed()
        );
        c.nodes[to].wait_role("primary", secs(10));
        c.nodes[from].wait_role("replica", secs(30));
        wait_until("the old leader streams from the new one", secs(30), || {
            c.nodes[from]
                .api_get("/patroni")
                .is_ok_and(|(_, v)| v["replication_state"] == "streaming")
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&c.nodes[from].log(), 40)));
    }
    let samples = checker.finish();
    assert_eq!(split_brain(&samples), vec![], "two writable primaries");
    assert!(c.load().failover.is_none(), "the failover key is cleared");
}

#[test]
fn reinitialize_rebuilds_a_replica_and_is_refused_on_the_leader() {
    let mut c = TestCluster::new("reinit");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let b = c.start(c.spec("b"));
    streaming(&c, 1);
    let (code, _, text) = post(&c.nodes[a], "/reinitialize", "{}");
    assert_eq!((code, text.as_str()), (503, "I am the leader, can not reinitialize"));
    let marker = c.nodes[b].data_dir().join("stale_marker");
    std::fs::write(&marker, "old").unwrap();
    ferroni_testkit::node::chown_postgres(&marker);
    let (code, _, text) = post(&c.nodes[b], "/reinitialize", r#"{"from_leader": true}"#);
    assert_eq!((code, text.as_str()), (200, "reinitialize started"));
    wait_until("b rebuilt and streaming", secs(60), || {
        !marker.exists()
            && c.nodes[b]
                .api_get("/patroni")
                .is_ok_and(|(_, v)| v["replication_state"] == "streaming")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&c.nodes[b].log(), 40)));
    c.nodes[a]
        .psql("CREATE TABLE after_reinit (x int); INSERT INTO after_reinit VALUES (9)")
        .unwrap();
    wait_until("row on b", secs(20), || {
        c.nodes[b].psql("SELECT x FROM after_reinit").is_ok_and(|v| v == "9")
    })
    .unwrap();
}

#[test]
fn former_primary_rejoins_through_pg_rewind_after_writes_on_both_sides() {
    let mut c = TestCluster::new("rewind");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let b = c.start(c.spec("b"));
    streaming(&c, 1);
    c.nodes[a].psql("CREATE TABLE sides (who text)").unwrap();
    wait_until("table on b", secs(10), || {
        c.nodes[b].psql("SELECT count(*) FROM sides").is_ok()
    })
    .unwrap();
    // b goes away; a writes something b never sees; then a's machine dies.
    c.nodes[b].sigterm();
    assert_eq!(c.nodes[b].wait_exit(secs(20)), Some(0));
    c.nodes[a].psql("INSERT INTO sides VALUES ('only on a')").unwrap();
    kill_node(&mut c, a);
    // b comes back, waits out a's lease, and becomes the leader; it writes too.
    c.nodes[b].restart();
    wait_until("b leads", secs(60), || c.load().leader_name() == Some("b"))
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&c.nodes[b].log(), 40)));
    wait_until("b writable", secs(20), || {
        c.nodes[b].psql("INSERT INTO sides VALUES ('on b')").is_ok()
    })
    .unwrap();
    // a returns: its data diverged, so it must be rewound before it can follow b.
    c.nodes[a].restart();
    wait_until("a streams from b", secs(60), || {
        c.nodes[a]
            .api_get("/patroni")
            .is_ok_and(|(_, v)| v["role"] == "replica" && v["replication_state"] == "streaming")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&c.nodes[a].log(), 50)));
    assert_eq!(
        c.nodes[a].psql("SELECT string_agg(who, ',') FROM sides").unwrap(),
        "on b"
    );
    assert!(
        c.nodes[a].log().contains("pg_rewind against b: Rewound"),
        "{}",
        tail(&c.nodes[a].log(), 40)
    );
}

#[test]
fn frozen_leader_daemon_is_fenced_and_rejoins_as_a_replica() {
    let mut c = TestCluster::new("frozen");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let b = c.start(c.spec("b"));
    streaming(&c, 1);
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.spec.pg_port).collect();
    let checker = WritableChecker::start(ports);
    std::thread::sleep(Duration::from_millis(300));
    let frozen_at = checker.elapsed();
    // SIGSTOP freezes the daemon only: its Postgres and its fencing process have their own sessions.
    c.nodes[a].signal(Signal::SIGSTOP);
    let ttl = u64::from(c.nodes[a].spec.ttl);
    wait_until("b leads", secs(ttl * 4), || c.load().leader_name() == Some("b"))
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&c.nodes[b].log(), 30)));
    wait_until("b writable", secs(20), || {
        ferroni_testkit::writable::accepts_writes(c.nodes[b].spec.pg_port)
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    c.nodes[a].signal(Signal::SIGCONT);
    wait_until("a rejoins as a streaming replica", secs(60), || {
        c.nodes[a]
            .api_get("/patroni")
            .is_ok_and(|(_, v)| v["role"] == "replica" && v["replication_state"] == "streaming")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&c.nodes[a].log(), 40)));
    let samples = checker.finish();
    let a_port = c.nodes[a].spec.pg_port;
    let a_last_writable = samples
        .iter()
        .filter(|s| s.port == a_port && s.writable)
        .map(|s| s.at)
        .max()
        .unwrap();
    let b_port = c.nodes[b].spec.pg_port;
    let b_first = samples
        .iter()
        .find(|s| s.port == b_port && s.writable && s.at >= frozen_at)
        .map(|s| s.at)
        .unwrap();
    eprintln!(
        "frozen leader: a fenced {:?} after SIGSTOP, b writable {:?} after it (ttl {ttl} s)",
        a_last_writable.saturating_sub(frozen_at),
        b_first - frozen_at
    );
    assert_eq!(
        split_brain(&samples),
        vec![],
        "two writable primaries while the daemon was frozen"
    );
    assert!(a_last_writable < b_first, "a was fenced before b became writable");
}

#[test]
fn short_ttl_of_five_seconds_fails_over_within_six() {
    let mut c = TestCluster::new("ttl5");
    let fast = |mut s: ferroni_testkit::node::NodeSpec| {
        s.ttl = 5;
        s.loop_wait = 1;
        s.retry_timeout = 2;
        s
    };
    let a = c.start(fast(c.spec("a")));
    c.nodes[a].wait_role("primary", secs(60));
    let b = c.start(fast(c.spec("b")));
    streaming(&c, 1);
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.spec.pg_port).collect();
    let checker = WritableChecker::start(ports);
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = checker.elapsed();
    kill_node(&mut c, a);
    wait_until("b writable", secs(30), || {
        ferroni_testkit::writable::accepts_writes(c.nodes[b].spec.pg_port)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&c.nodes[b].log(), 30)));
    std::thread::sleep(Duration::from_millis(300));
    let samples = checker.finish();
    let b_port = c.nodes[b].spec.pg_port;
    let writable = samples
        .iter()
        .find(|s| s.port == b_port && s.writable && s.at >= killed_at)
        .map(|s| s.at)
        .unwrap();
    eprintln!("ttl 5: b writable {:?} after kill -9 of a", writable - killed_at);
    // The 6 s target is measured by the benchmark; here only a gross regression fails the test.
    assert!(
        writable - killed_at <= Duration::from_secs(10),
        "failover took {:?}",
        writable - killed_at
    );
    assert_eq!(split_brain(&samples), vec![]);
}
