//! The foundation end to end, against real etcd and PostgreSQL 15: bootstrap of a new cluster,
//! exactly-once initdb, adoption on restart, crash restart, and a graceful stop that frees the lock.

mod common;

use common::{TestCluster, load, secs};
use ferroni_testkit::node::{process_alive, tail};
use ferroni_testkit::wait::wait_until;
use std::time::{Duration, Instant};

#[test]
fn single_node_bootstraps_to_a_writable_primary_with_patroni_keys() {
    let mut c = TestCluster::new("single");
    let n = c.start(c.spec("n0"));
    let node = &c.nodes[n];
    node.wait_role("primary", secs(60));
    node.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .expect("write on the primary");
    assert_eq!(node.psql("SHOW cluster_name").unwrap(), "single");

    let (code, status) = node.api_get("/patroni").unwrap();
    assert_eq!(code, 200);
    let sysid = status["database_system_identifier"]
        .as_str()
        .expect("sysid in /patroni")
        .to_string();
    assert_eq!(status["patroni"]["scope"], "single");
    assert_eq!(status["timeline"], 1);
    assert_eq!(node.api_get("/primary").unwrap().0, 200);
    assert_eq!(node.api_get("/leader").unwrap().0, 200);
    assert_eq!(node.api_get("/health").unwrap().0, 200);
    assert_eq!(node.api_get("/replica").unwrap().0, 503);

    let view = load(&c.etcd.host_port(), "single");
    assert_eq!(
        view.initialize.as_deref(),
        Some(sysid.as_str()),
        "initialize holds the system identifier"
    );
    assert_eq!(view.leader_name(), Some("n0"));
    let config = &view
        .config
        .as_ref()
        .expect("config key written from bootstrap.dcs")
        .value;
    assert_eq!(config["ttl"], 10);
    let me = view.member("n0").expect("member key");
    assert_eq!(me.data.role, "primary");
    assert_eq!(me.data.state, "running");
    assert_eq!(
        me.data.conn_url,
        format!("postgres://127.0.0.1:{}/postgres", node.spec.pg_port)
    );
    assert_eq!(
        me.data.api_url,
        format!("http://127.0.0.1:{}/patroni", node.spec.api_port)
    );
    assert!(
        view.status.as_ref().is_some_and(|s| s.optime > 0),
        "status.optime published"
    );

    let data = node.data_dir();
    assert!(
        data.join("postgresql.base.conf").exists(),
        "initdb's config kept as postgresql.base.conf"
    );
    let conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
    assert!(conf.contains("include 'postgresql.base.conf'"), "{conf}");
    let roles = node
        .psql("SELECT rolname FROM pg_roles WHERE rolreplication AND rolname = 'replicator'")
        .unwrap();
    assert_eq!(roles, "replicator", "replication role created");
}

#[test]
fn three_nodes_started_at_once_run_initdb_exactly_once() {
    let mut c = TestCluster::new("trio");
    for name in ["a", "b", "c"] {
        let spec = c.spec(name);
        c.start(spec);
    }
    wait_until("one primary and two streaming replicas", secs(90), || {
        let view = c.load();
        let running = view.members.iter().filter(|m| m.data.state == "running").count();
        let streaming = view
            .members
            .iter()
            .filter(|m| m.data.replication_state.as_deref() == Some("streaming") && m.data.state == "running")
            .count();
        view.leader.is_some() && running == 3 && streaming == 2
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            c.nodes
                .iter()
                .map(|n| tail(&n.log(), 30))
                .collect::<Vec<_>>()
                .join("\n---\n")
        )
    });
    let view = c.load();
    let sysid = view.sysid().expect("initialize holds a sysid").to_string();
    let mut initdb_runs = 0;
    for node in &c.nodes {
        let (_, status) = node.api_get("/patroni").unwrap();
        assert_eq!(
            status["database_system_identifier"].as_str(),
            Some(sysid.as_str()),
            "{} joined the same cluster",
            node.spec.name
        );
        if node.log().contains("step=initdb") {
            initdb_runs += 1;
        }
    }
    assert_eq!(initdb_runs, 1, "exactly one node ran initdb");
    let leader = view.leader_name().unwrap().to_string();
    let primary = c.nodes.iter().find(|n| n.spec.name == leader).unwrap();
    primary
        .psql("CREATE TABLE replicated (x int); INSERT INTO replicated VALUES (42)")
        .unwrap();
    for node in c.nodes.iter().filter(|n| n.spec.name != leader) {
        wait_until(&format!("row on {}", node.spec.name), secs(20), || {
            node.psql("SELECT x FROM replicated")
                .map(|v| v == "42")
                .unwrap_or(false)
        })
        .unwrap();
        wait_until("/replica answers 200", secs(10), || {
            node.api_get("/replica").is_ok_and(|(code, _)| code == 200)
        })
        .unwrap();
        assert_eq!(node.api_get("/primary").unwrap().0, 503);
    }
}

#[test]
fn restarted_daemon_adopts_its_data_and_keeps_the_cluster() {
    let mut c = TestCluster::new("restart");
    let n = c.start(c.spec("n0"));
    c.nodes[n].wait_role("primary", secs(60));
    c.nodes[n]
        .psql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
        .unwrap();
    let sysid = c.load().sysid().unwrap().to_string();

    // SIGKILL: Postgres keeps running in its own session; the new daemon takes over its lock.
    c.nodes[n].kill9();
    c.nodes[n].restart();
    c.nodes[n].wait_role("primary", secs(30));
    assert_eq!(c.nodes[n].psql("SELECT x FROM kept").unwrap(), "7");

    // SIGTERM stops Postgres; the next daemon starts it again as the primary of the same cluster.
    c.nodes[n].sigterm();
    assert_eq!(c.nodes[n].wait_exit(secs(20)), Some(0), "clean exit after SIGTERM");
    c.nodes[n].restart();
    c.nodes[n].wait_role("primary", secs(30));
    assert_eq!(c.nodes[n].psql("SELECT x FROM kept").unwrap(), "7");
    let view = c.load();
    assert_eq!(view.sysid(), Some(sysid.as_str()));
    assert_eq!(view.leader_name(), Some("n0"));
}

#[test]
fn daemon_refuses_data_of_another_cluster_naming_both_identifiers() {
    let mut c = TestCluster::new("mismatch");
    let n = c.start(c.spec("n0"));
    c.nodes[n].wait_role("primary", secs(60));
    let local = c.load().sysid().unwrap().to_string();
    c.nodes[n].sigterm();
    assert_eq!(c.nodes[n].wait_exit(secs(20)), Some(0));
    let rt = common::runtime();
    let dcs = common::dcs(&c.etcd.host_port(), "mismatch");
    rt.block_on(ferroni_dcs::Dcs::set_initialize(&dcs, "7000000000000000042"))
        .unwrap();
    c.nodes[n].restart();
    let code = c.nodes[n].wait_exit(secs(30));
    assert_ne!(code, Some(0), "the daemon must refuse to run");
    assert!(code.is_some(), "the daemon must exit");
    let log = c.nodes[n].log();
    assert!(
        log.contains("7000000000000000042") && log.contains(&local),
        "{}",
        tail(&log, 20)
    );
}

#[test]
fn killed_postmaster_is_restarted_by_the_leader() {
    let mut c = TestCluster::new("crash");
    let n = c.start(c.spec("n0"));
    let node = &c.nodes[n];
    node.wait_role("primary", secs(60));
    node.psql("CREATE TABLE durable (x int); INSERT INTO durable VALUES (3)")
        .unwrap();
    let pid = node.postmaster_pid().expect("postmaster.pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let took = wait_until("a new postmaster accepting writes", secs(30), || {
        node.postmaster_pid().is_some_and(|p| p != pid) && node.psql("INSERT INTO durable VALUES (4)").is_ok()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&node.log(), 40)));
    eprintln!("primary writable again {took:?} after kill -9 of the postmaster");
    assert_eq!(node.psql("SELECT count(*) FROM durable").unwrap(), "2");
    assert_eq!(c.load().leader_name(), Some("n0"), "the lock stayed with the node");
    assert!(
        node.log().contains("starting primary after failure"),
        "{}",
        tail(&node.log(), 30)
    );
}

#[test]
fn sigterm_stops_postgres_and_frees_the_leader_key_within_a_second() {
    let mut c = TestCluster::new("term");
    let n = c.start(c.spec("n0"));
    c.nodes[n].wait_role("primary", secs(60));
    let endpoint = c.etcd.host_port();
    assert_eq!(load(&endpoint, "term").leader_name(), Some("n0"));
    let pid = c.nodes[n].postmaster_pid().unwrap();
    let start = Instant::now();
    c.nodes[n].sigterm();
    let freed = wait_until("the leader key to disappear", secs(5), || {
        load(&endpoint, "term").leader.is_none()
    })
    .unwrap();
    assert!(freed < Duration::from_secs(1), "leader key freed after {freed:?}");
    assert_eq!(c.nodes[n].wait_exit(secs(20)), Some(0));
    eprintln!(
        "leader key gone {:?} after SIGTERM; daemon exited after {:?}",
        freed,
        start.elapsed()
    );
    assert!(!process_alive(pid), "postgres stopped");
    assert!(
        c.nodes[n].postmaster_pid().is_none(),
        "postmaster.pid removed by a clean shutdown"
    );
    let view = load(&endpoint, "term");
    assert!(view.member("n0").is_none(), "member key removed");
}
