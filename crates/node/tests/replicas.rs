//! Replica imaging end to end (real etcd, real PostgreSQL 15): basebackup replicas and their slots,
//! custom methods in order with `no_params`/`keep_data` and the fall-through to basebackup, the
//! `clonefrom` source, `replicatefrom` cascading, and a `no_leader` restore of a lost cluster.

mod common;

use common::{TestCluster, secs};
use ferroni_testkit::node::{chown_postgres, tail};
use ferroni_testkit::wait::wait_until;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn wait_streaming(c: &TestCluster, count: usize) {
    wait_until(&format!("{count} streaming replicas"), secs(90), || {
        let view = c.load();
        view.members
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

/// A script that appends its arguments to `record` and exits with `code`.
fn recording_script(dir: &Path, name: &str, record: &Path, code: i32) -> String {
    let path = dir.join(name);
    fs::write(
        &path,
        format!("#!/bin/sh\necho \"{name} $*\" >> {}\nexit {code}\n", record.display()),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn basebackup_replicas_receive_data_and_get_slots() {
    let mut c = TestCluster::new("repl");
    // A loop_wait longer than imaging an empty cluster takes: the replicas' slots must not wait
    // for the leader's next cycle.
    let spec = |c: &TestCluster, name: &str| {
        let mut spec = c.spec(name);
        (spec.loop_wait, spec.ttl) = (4, 20);
        spec
    };
    let a = c.start(spec(&c, "a"));
    c.nodes[a].wait_role("primary", secs(60));
    for name in ["b", "c"] {
        let spec = spec(&c, name);
        c.start(spec);
    }
    wait_streaming(&c, 2);
    let leader = &c.nodes[a];
    leader
        .psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x")
        .unwrap();
    for node in &c.nodes[1..] {
        wait_until("rows on the replica", secs(20), || {
            node.psql("SELECT count(*) FROM t").is_ok_and(|v| v == "1000")
        })
        .unwrap();
        let (_, status) = node.api_get("/patroni").unwrap();
        assert_eq!(status["replication_state"], "streaming");
        // The snapshot behind the health checks is one cycle old; give it that cycle.
        for path in ["/replica", "/replica?lag=1MB", "/read-only"] {
            wait_until(&format!("{path} answers 200"), secs(10), || {
                node.api_get(path).is_ok_and(|(code, _)| code == 200)
            })
            .unwrap_or_else(|e| panic!("{e}: {:?}", node.api_get("/patroni")));
        }
    }
    wait_until("an active slot per replica on the leader", secs(20), || {
        leader
            .psql("SELECT string_agg(slot_name || ':' || active, ',' ORDER BY slot_name) FROM pg_replication_slots")
            .is_ok_and(|v| v == "b:true,c:true")
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}",
            leader.psql("SELECT slot_name, active FROM pg_replication_slots")
        )
    });
    let view = c.load();
    let b = view.member("b").unwrap();
    assert_eq!(b.data.role, "replica");
    assert!(b.data.replay_lsn.is_some() && b.data.timeline == Some(1));
    // The leader creates a joining member's slot as soon as its key appears, before the image is
    // done: the replica streams at its first try, without waiting out wal_retrieve_retry_interval.
    for node in &c.nodes[1..] {
        let pg_log = fs::read_to_string(node.data_dir().join("postmaster.log")).unwrap_or_default();
        assert!(
            !pg_log.contains("replication slot"),
            "the replica asked for its slot before the leader made it:\n{pg_log}"
        );
    }
}

#[test]
fn custom_methods_run_in_order_then_fall_through_to_basebackup() {
    let mut c = TestCluster::new("methods");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let scripts = ferroni_testkit::node::postgres_tempdir();
    let record = scripts.path().join("calls.txt");
    let first = recording_script(scripts.path(), "first", &record, 1);
    let second = recording_script(scripts.path(), "second", &record, 3);
    let mut spec = c.spec("b");
    spec.extra_postgresql = format!(
        "  create_replica_methods: [first, second, basebackup]\n  first:\n    command: {first} --fixed\n    keep_data: true\n    envdir: /etc/wal-e\n  second:\n    command: {second}\n    no_params: true\n    use_iam: 1\n"
    );
    let b = c.start(spec);
    wait_streaming(&c, 1);
    let calls = fs::read_to_string(&record).unwrap();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 2, "{calls}");
    let data = c.nodes[b].data_dir();
    let expected_first = format!(
        "first --fixed --scope=methods --role=replica --datadir={} --connstring=dbname=postgres user=replicator host=127.0.0.1 port={} --envdir=/etc/wal-e",
        data.display(),
        c.nodes[a].spec.pg_port
    );
    assert_eq!(lines[0], expected_first);
    assert_eq!(
        lines[1], "second --use_iam=1",
        "no_params drops the built-in arguments only"
    );
    assert!(c.nodes[b].log().contains("replica created with method basebackup"));
}

#[test]
fn keep_data_leaves_the_data_directory_alone() {
    let mut c = TestCluster::new("keep");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let scripts = ferroni_testkit::node::postgres_tempdir();
    let record = scripts.path().join("calls.txt");
    // The method sees the file left in PGDATA (keep_data) and fails; basebackup then builds the replica.
    let dir = ferroni_testkit::node::postgres_tempdir();
    let data = dir.path().join("data");
    let probe = scripts.path().join("probe");
    fs::write(
        &probe,
        format!(
            "#!/bin/sh\nls {} | tr '\\n' ' ' >> {}\nexit 1\n",
            data.display(),
            record.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o755)).unwrap();
    let mut spec = c.spec("b");
    spec.extra_postgresql = format!(
        "  create_replica_methods: [probe, basebackup]\n  probe:\n    command: {}\n    keep_data: true\n    no_params: true\n",
        probe.display()
    );
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("partial.restore"), "from an earlier attempt").unwrap();
    chown_postgres(&data);
    chown_postgres(&data.join("partial.restore"));
    let spec_dir = dir.path().to_path_buf();
    let node = ferroni_testkit::node::FerroniNode::start(Path::new(common::BIN), &spec_dir, spec);
    wait_until("replica streaming", secs(60), || {
        node.api_get("/patroni")
            .is_ok_and(|(_, v)| v["replication_state"] == "streaming")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&node.log(), 40)));
    let seen = fs::read_to_string(&record).unwrap();
    assert!(
        seen.contains("partial.restore"),
        "keep_data kept PGDATA for the method: {seen:?}"
    );
    drop(node);
}

#[test]
fn clone_comes_from_the_clonefrom_member() {
    let mut c = TestCluster::new("clonefrom");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let mut spec = c.spec("b");
    spec.extra_yaml = "tags:\n  clonefrom: true\n".into();
    let b = c.start(spec);
    wait_streaming(&c, 1);
    // A file only b's data directory has: pg_basebackup copies it to whoever clones from b.
    let marker = c.nodes[b].data_dir().join("cloned_from_b");
    fs::write(&marker, "b").unwrap();
    chown_postgres(&marker);
    let n = c.start(c.spec("c"));
    wait_streaming(&c, 2);
    assert!(
        c.nodes[n].data_dir().join("cloned_from_b").exists(),
        "{}",
        tail(&c.nodes[n].log(), 30)
    );
    assert!(c.nodes[n].log().contains("trying to bootstrap from replica 'b'"));
}

#[test]
fn replicatefrom_cascades_through_the_named_member() {
    let mut c = TestCluster::new("cascade");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let b = c.start(c.spec("b"));
    wait_streaming(&c, 1);
    let mut spec = c.spec("c");
    spec.extra_yaml = "tags:\n  replicatefrom: b\n".into();
    let n = c.start(spec);
    wait_streaming(&c, 2);
    let b_port = c.nodes[b].spec.pg_port.to_string();
    wait_until("c streams from b", secs(30), || {
        c.nodes[n]
            .psql("SELECT sender_port FROM pg_stat_wal_receiver")
            .is_ok_and(|p| p == b_port)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&c.nodes[n].log(), 30)));
    wait_until("b serves c through its slot", secs(30), || {
        c.nodes[b]
            .psql("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'c'")
            .is_ok_and(|v| v == "1")
            && c.nodes[b]
                .psql("SELECT active FROM pg_replication_slots WHERE slot_name = 'c'")
                .is_ok_and(|v| v == "t")
    })
    .unwrap();
    c.nodes[a]
        .psql("CREATE TABLE cascaded (x int); INSERT INTO cascaded VALUES (5)")
        .unwrap();
    wait_until("row on c", secs(20), || {
        c.nodes[n].psql("SELECT x FROM cascaded").is_ok_and(|v| v == "5")
    })
    .unwrap();
}

#[test]
fn no_leader_method_restores_a_lost_cluster_from_a_backup() {
    let mut c = TestCluster::new("restore");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    c.nodes[a]
        .psql("CREATE TABLE precious (x int); INSERT INTO precious VALUES (11)")
        .unwrap();
    let sysid = c.load().sysid().unwrap().to_string();
    // A base backup on disk, as a backup tool would keep it.
    let store = ferroni_testkit::node::postgres_tempdir();
    let backup = store.path().join("base");
    let out = std::process::Command::new("/usr/lib/postgresql/15/bin/pg_basebackup")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &c.nodes[a].spec.pg_port.to_string(),
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
    // Every node and data directory is lost; `initialize` stays in etcd.
    c.nodes[a].sigterm();
    assert_eq!(c.nodes[a].wait_exit(secs(20)), Some(0));
    fs::remove_dir_all(c.nodes[a].data_dir()).unwrap();
    assert_eq!(c.load().sysid(), Some(sysid.as_str()));

    let restore = store.path().join("restore.sh");
    fs::write(&restore, format!("#!/bin/sh\nset -e\nfor a in \"$@\"; do case $a in --datadir=*) d=${{a#--datadir=}};; esac; done\ncp -a {}/. \"$d\"/\n", backup.display())).unwrap();
    fs::set_permissions(&restore, fs::Permissions::from_mode(0o755)).unwrap();
    let mut spec = c.spec("r");
    spec.extra_postgresql = format!(
        "  create_replica_methods: [restore, basebackup]\n  restore:\n    command: {}\n    no_leader: true\n",
        restore.display()
    );
    let r = c.start(spec);
    c.nodes[r].wait_role("primary", secs(60));
    assert_eq!(c.nodes[r].psql("SELECT x FROM precious").unwrap(), "11");
    let view = c.load();
    assert_eq!(view.leader_name(), Some("r"));
    assert_eq!(
        view.sysid(),
        Some(sysid.as_str()),
        "the restored cluster keeps its identity"
    );
    assert!(c.nodes[r].log().contains("trying to bootstrap (without leader)"));
}
