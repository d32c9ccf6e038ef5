//! Standby clusters end to end (two scopes in one etcd, real PostgreSQL 15): a standby leader that
//! streams from the remote primary through a permanent slot, a cascade replica, re-election of the
//! standby leader, promotion by removing `standby_cluster`, and an archive-only standby.

mod common;

use common::{TestCluster, secs};
use ferroni_testkit::node::{FerroniNode, NodeSpec, http_request, postgres_tempdir, tail};
use ferroni_testkit::wait::wait_until;
use std::path::Path;

/// Starts a node of another scope on the same etcd; its directory lives as long as `dirs`.
fn start_in(c: &TestCluster, dirs: &mut Vec<tempfile::TempDir>, spec: NodeSpec) -> FerroniNode {
    let dir = postgres_tempdir();
    let node = FerroniNode::start(Path::new(common::BIN), dir.path(), spec);
    dirs.push(dir);
    let _ = c;
    node
}

fn standby_spec(c: &TestCluster, name: &str, section: &str) -> NodeSpec {
    let mut spec = c.spec(name);
    spec.scope = "stby".into();
    spec.extra_dcs = section.to_string();
    spec
}

fn wait_standby_role(node: &FerroniNode, role: &str) {
    wait_until(&format!("{} as {role}", node.spec.name), secs(90), || {
        node.api_get("/patroni")
            .is_ok_and(|(_, v)| v["role"] == role && v["state"] == "running")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&node.log(), 40)));
}

#[test]
fn standby_cluster_follows_the_remote_elects_and_promotes() {
    let mut c = TestCluster::new("prim");
    let mut spec = c.spec("p1");
    spec.extra_dcs = "    slots:\n      standby_slot:\n        type: physical\n".into();
    let p1 = c.start(spec);
    c.nodes[p1].wait_role("primary", secs(60));
    let remote_port = c.nodes[p1].spec.pg_port;
    let section = format!(
        "    standby_cluster:\n      host: 127.0.0.1\n      port: {remote_port}\n      primary_slot_name: standby_slot\n"
    );
    let mut dirs = Vec::new();
    let s1 = start_in(&c, &mut dirs, standby_spec(&c, "s1", &section));
    wait_standby_role(&s1, "standby_leader");
    let s2 = start_in(&c, &mut dirs, standby_spec(&c, "s2", &section));
    wait_standby_role(&s2, "replica");

    // The standby leader streams from the remote through the permanent slot; s2 cascades from s1.
    wait_until("slot active on the remote", secs(30), || {
        c.nodes[p1]
            .psql("SELECT active FROM pg_replication_slots WHERE slot_name = 'standby_slot'")
            .is_ok_and(|v| v == "t")
    })
    .unwrap();
    wait_until("s2 streams from s1", secs(30), || {
        s2.psql("SELECT sender_port FROM pg_stat_wal_receiver")
            .is_ok_and(|p| p == s1.spec.pg_port.to_string())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&s2.log(), 30)));
    c.nodes[p1]
        .psql("CREATE TABLE from_remote (x int); INSERT INTO from_remote VALUES (1)")
        .unwrap();
    wait_until("the row reaches the cascade replica", secs(30), || {
        s2.psql("SELECT x FROM from_remote").is_ok_and(|v| v == "1")
    })
    .unwrap();
    assert_eq!(s1.api_get("/standby-leader").unwrap().0, 200);
    assert_eq!(s1.api_get("/standby_leader").unwrap().0, 200);
    assert_eq!(s1.api_get("/leader").unwrap().0, 200);
    assert_eq!(s1.api_get("/primary").unwrap().0, 503);
    let stby = common::load(&c.etcd.host_port(), "stby");
    assert_eq!(stby.member("s1").unwrap().data.role, "standby_leader");
    assert!(
        c.load().member("s1").is_none(),
        "the standby cluster is not in the primary's members"
    );

    // Kill the standby leader: s2 is elected and streams from the remote.
    let mut s1 = s1;
    let pm = s1.postmaster_pid();
    s1.kill9();
    if let Some(pid) = pm {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let killed = std::time::Instant::now();
    wait_standby_role(&s2, "standby_leader");
    eprintln!(
        "standby leader re-elected {:?} after kill -9 (ttl {})",
        killed.elapsed(),
        s2.spec.ttl
    );
    wait_until("s2 streams from the remote", secs(30), || {
        s2.psql("SELECT sender_port FROM pg_stat_wal_receiver")
            .is_ok_and(|p| p == remote_port.to_string())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&s2.log(), 30)));
    c.nodes[p1].psql("INSERT INTO from_remote VALUES (2)").unwrap();
    wait_until("the row reaches s2", secs(30), || {
        s2.psql("SELECT count(*) FROM from_remote").is_ok_and(|v| v == "2")
    })
    .unwrap();
    assert!(
        s2.psql("INSERT INTO from_remote VALUES (3)").is_err(),
        "a standby cluster never accepts writes by itself"
    );

    // Promote the standby cluster by removing the section.
    let (code, body) = http_request("PATCH", &s2.api_url("/config"), Some(r#"{"standby_cluster": null}"#)).unwrap();
    assert_eq!(code, 200, "{body}");
    wait_standby_role(&s2, "primary");
    s2.psql("INSERT INTO from_remote VALUES (4)")
        .expect("the promoted cluster accepts writes");
    drop(s2);
    drop(s1);
}

#[test]
fn a_normal_cluster_is_demoted_into_a_standby_of_another() {
    // "prim" is the original cluster; "stby" starts as its standby and is promoted; then "prim" is
    // demoted into a standby cluster of "stby" (the data-centre swap).
    let mut c = TestCluster::new("prim");
    let p1 = c.start(c.spec("p1"));
    c.nodes[p1].wait_role("primary", secs(60));
    let section = format!(
        "    standby_cluster:\n      host: 127.0.0.1\n      port: {}\n",
        c.nodes[p1].spec.pg_port
    );
    let mut dirs = Vec::new();
    let s1 = start_in(&c, &mut dirs, standby_spec(&c, "s1", &section));
    wait_standby_role(&s1, "standby_leader");
    let (code, body) = http_request("PATCH", &s1.api_url("/config"), Some(r#"{"standby_cluster": null}"#)).unwrap();
    assert_eq!(code, 200, "{body}");
    wait_standby_role(&s1, "primary");
    s1.psql("CREATE TABLE after_swap (x int); INSERT INTO after_swap VALUES (1)")
        .unwrap();

    let patch = format!(
        r#"{{"standby_cluster": {{"host": "127.0.0.1", "port": {}}}}}"#,
        s1.spec.pg_port
    );
    let (code, body) = http_request("PATCH", &c.nodes[p1].api_url("/config"), Some(&patch)).unwrap();
    assert_eq!(code, 200, "{body}");
    wait_standby_role(&c.nodes[p1], "standby_leader");
    wait_until("p1 streams from s1", secs(60), || {
        c.nodes[p1]
            .psql("SELECT sender_port FROM pg_stat_wal_receiver")
            .is_ok_and(|p| p == s1.spec.pg_port.to_string())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&c.nodes[p1].log(), 40)));
    s1.psql("INSERT INTO after_swap VALUES (2)").unwrap();
    wait_until("rows from s1 on p1", secs(30), || {
        c.nodes[p1]
            .psql("SELECT count(*) FROM after_swap")
            .is_ok_and(|v| v == "2")
    })
    .unwrap();
    assert_eq!(
        c.load().leader_name(),
        Some("p1"),
        "the demoted primary keeps its cluster's lock"
    );
    drop(s1);
}

#[test]
fn archive_only_standby_replays_from_restore_command() {
    let mut c = TestCluster::new("arch");
    let store = postgres_tempdir();
    let archive = store.path().join("archive");
    let backup = store.path().join("base");
    std::fs::create_dir_all(&archive).unwrap();
    ferroni_testkit::node::chown_postgres(&archive);
    let mut spec = c.spec("p1");
    spec.extra_postgresql = format!(
        "    archive_mode: 'on'\n    archive_command: 'cp %p {}/%f'\n",
        archive.display()
    );
    let p1 = c.start(spec);
    c.nodes[p1].wait_role("primary", secs(60));
    let out = std::process::Command::new("/usr/lib/postgresql/15/bin/pg_basebackup")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &c.nodes[p1].spec.pg_port.to_string(),
            "-U",
            "replicator",
            "-X",
            "stream",
            "-c",
            "fast",
            "-D",
        ])
        .arg(&backup)
        .env("PGPASSWORD", ferroni_testkit::node::REPLICATION_PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::process::Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(store.path())
        .status()
        .unwrap();
    let restore = store.path().join("restore.sh");
    std::fs::write(
        &restore,
        format!("#!/bin/sh\nset -e\nfor a in \"$@\"; do case $a in --datadir=*) d=${{a#--datadir=}};; esac; done\ncp -a {}/. \"$d\"/\n", backup.display()),
    )
    .unwrap();
    std::fs::set_permissions(&restore, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let section = format!(
        "    standby_cluster:\n      restore_command: cp {}/%f %p\n      create_replica_methods: [restore]\n",
        archive.display()
    );
    let mut dirs = Vec::new();
    let mut spec = standby_spec(&c, "a1", &section);
    spec.scope = "archonly".into();
    spec.extra_postgresql = format!("  restore:\n    command: {}\n    no_leader: true\n", restore.display());
    let a1 = start_in(&c, &mut dirs, spec);
    wait_standby_role(&a1, "standby_leader");
    c.nodes[p1]
        .psql("CREATE TABLE shipped (x int); INSERT INTO shipped VALUES (7)")
        .unwrap();
    c.nodes[p1].psql("SELECT pg_switch_wal()").unwrap();
    wait_until("the archived row on the archive-only standby", secs(60), || {
        a1.psql("SELECT x FROM shipped").is_ok_and(|v| v == "7")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&a1.log(), 40)));
    let (_, status) = a1.api_get("/patroni").unwrap();
    assert_eq!(status["replication_state"], "in archive recovery");
    drop(a1);
}
