//! Custom bootstrap end to end (real etcd, real PostgreSQL 15): a new cluster cloned from another
//! with a pg_basebackup command, a point-in-time restore from a base backup and a WAL archive with
//! `recovery_conf`, a tool's own recovery settings kept with `keep_existing_recovery_conf`, and a
//! failing method that releases `initialize` for another node.

mod common;

use common::{TestCluster, secs};
use ferroni_testkit::node::{REPLICATION_PASSWORD, SUPERUSER_PASSWORD, chown_postgres, postgres_tempdir, tail};
use ferroni_testkit::wait::wait_until;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// A pgpass file the postgres user can read, for scripts that connect to the source cluster.
fn pgpass(dir: &Path, port: u16) -> String {
    let path = dir.join("source.pgpass");
    fs::write(
        &path,
        format!(
            "127.0.0.1:{port}:*:replicator:{REPLICATION_PASSWORD}\n127.0.0.1:{port}:*:postgres:{SUPERUSER_PASSWORD}\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    chown_postgres(&path);
    path.display().to_string()
}

fn base_backup(port: u16, target: &Path) {
    let out = Command::new("/usr/lib/postgresql/15/bin/pg_basebackup")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "replicator",
            "-X",
            "stream",
            "-c",
            "fast",
            "-D",
        ])
        .arg(target)
        .env("PGPASSWORD", REPLICATION_PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(target)
        .status()
        .unwrap();
}

#[test]
fn clone_an_existing_cluster_into_a_new_scope() {
    let mut src = TestCluster::new("source");
    let a = src.start(src.spec("a"));
    src.nodes[a].wait_role("primary", secs(60));
    src.nodes[a]
        .psql("CREATE TABLE cloned (x int); INSERT INTO cloned VALUES (1), (2)")
        .unwrap();
    let source_sysid = src.load().sysid().unwrap().to_string();
    let tools = postgres_tempdir();
    let pass = pgpass(tools.path(), src.nodes[a].spec.pg_port);
    let clone = script(
        tools.path(),
        "clone.sh",
        &format!(
            "for a in \"$@\"; do case $a in --datadir=*) d=${{a#--datadir=}};; --source_port=*) p=${{a#--source_port=}};; esac; done\n\
             PGPASSFILE={pass} /usr/lib/postgresql/15/bin/pg_basebackup -h 127.0.0.1 -p $p -U replicator -X stream -c fast -D \"$d\""
        ),
    );
    let mut spec = src.spec("x");
    spec.scope = "copy".into();
    spec.extra_bootstrap = format!(
        "  method: clone\n  clone:\n    command: {clone}\n    source_port: {}\n",
        src.nodes[a].spec.pg_port
    );
    let x = src.start(spec);
    src.nodes[x].wait_role("primary", secs(60));
    assert_eq!(src.nodes[x].psql("SELECT count(*) FROM cloned").unwrap(), "2");
    src.nodes[x]
        .psql("INSERT INTO cloned VALUES (3)")
        .expect("the clone is writable");
    let copy = common::load(&src.etcd.host_port(), "copy");
    assert_eq!(
        copy.sysid(),
        Some(source_sysid.as_str()),
        "initialize holds the restored cluster's identifier"
    );
    assert_eq!(copy.leader_name(), Some("x"));
    assert!(
        src.load().member("x").is_none(),
        "the clone never shows in the source's members"
    );
    assert!(!src.nodes[x].data_dir().join("standby.signal").exists());
}

/// A primary archiving WAL into `archive`, with rows before and after a recorded target time.
fn archived_cluster(c: &mut TestCluster, archive: &Path, backup: &Path) -> (usize, String) {
    let mut spec = c.spec("a");
    // Appended under the harness's `postgresql.parameters`, which comes last in its YAML.
    spec.extra_postgresql = format!(
        "    archive_mode: 'on'\n    archive_command: 'cp %p {}/%f'\n",
        archive.display()
    );
    let a = c.start(spec);
    c.nodes[a].wait_role("primary", secs(60));
    let node = &c.nodes[a];
    node.psql("CREATE TABLE timed (x int)").unwrap();
    base_backup(node.spec.pg_port, backup);
    node.psql("INSERT INTO timed VALUES (1)").unwrap();
    node.psql("SELECT pg_switch_wal()").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let target = node.psql("SELECT now()").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    node.psql("INSERT INTO timed VALUES (2)").unwrap();
    let segment = node.psql("SELECT pg_walfile_name(pg_switch_wal())").unwrap();
    wait_until("WAL archived", secs(20), || {
        node.psql(&format!(
            "SELECT coalesce(last_archived_wal >= '{segment}', false) FROM pg_stat_archiver"
        ))
        .is_ok_and(|v| v == "t")
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", node.psql("SELECT * FROM pg_stat_archiver")));
    (a, target)
}

fn archive_dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let store = postgres_tempdir();
    let archive = store.path().join("archive");
    let backup = store.path().join("base");
    fs::create_dir_all(&archive).unwrap();
    chown_postgres(&archive);
    (store, archive, backup)
}

#[test]
fn point_in_time_restore_with_recovery_conf() {
    let mut c = TestCluster::new("pitr-src");
    let (store, archive, backup) = archive_dirs();
    let (_, target) = archived_cluster(&mut c, &archive, &backup);
    let restore = script(
        store.path(),
        "restore.sh",
        &format!(
            "for a in \"$@\"; do case $a in --datadir=*) d=${{a#--datadir=}};; esac; done\ncp -a {}/. \"$d\"/",
            backup.display()
        ),
    );
    let mut spec = c.spec("r");
    spec.scope = "pitr".into();
    spec.extra_bootstrap = format!(
        "  method: pitr\n  pitr:\n    command: {restore}\n    recovery_conf:\n      recovery_target_time: '{target}'\n      recovery_target_action: promote\n      recovery_target_timeline: latest\n      restore_command: cp {}/%f %p\n",
        archive.display()
    );
    let r = c.start(spec);
    c.nodes[r].wait_role("primary", secs(90));
    assert_eq!(
        c.nodes[r].psql("SELECT string_agg(x::text, ',') FROM timed").unwrap(),
        "1",
        "rows after the target are absent"
    );
    let conf = fs::read_to_string(c.nodes[r].data_dir().join("postgresql.conf")).unwrap();
    assert!(
        !conf.contains("recovery_target_time"),
        "recovery settings do not survive the bootstrap:\n{conf}"
    );
    assert!(!c.nodes[r].data_dir().join("recovery.signal").exists());
    let log = c.nodes[r].log();
    assert!(log.contains("bootstrap finished"), "{}", tail(&log, 30));
}

#[test]
fn keep_existing_recovery_conf_keeps_the_tools_settings() {
    let mut c = TestCluster::new("keep-src");
    let (store, archive, backup) = archive_dirs();
    let (_, target) = archived_cluster(&mut c, &archive, &backup);
    // Like pgBackRest: the tool restores and writes its own recovery settings and recovery.signal.
    let restore = script(
        store.path(),
        "tool.sh",
        &format!(
            "for a in \"$@\"; do case $a in --datadir=*) d=${{a#--datadir=}};; esac; done\ncp -a {}/. \"$d\"/\n\
             printf \"restore_command = 'cp {}/%%f %%p'\\nrecovery_target_time = '{target}'\\nrecovery_target_action = 'promote'\\n\" >> \"$d/postgresql.auto.conf\"\n\
             touch \"$d/recovery.signal\"",
            backup.display(),
            archive.display()
        ),
    );
    let mut spec = c.spec("k");
    spec.scope = "kept".into();
    spec.extra_bootstrap =
        format!("  method: tool\n  tool:\n    command: {restore}\n    keep_existing_recovery_conf: true\n");
    let k = c.start(spec);
    c.nodes[k].wait_role("primary", secs(90));
    assert_eq!(
        c.nodes[k].psql("SELECT string_agg(x::text, ',') FROM timed").unwrap(),
        "1",
        "the tool's recovery target was used"
    );
}

#[test]
fn failing_method_releases_initialize_and_another_node_bootstraps() {
    let mut c = TestCluster::new("failing");
    let tools = postgres_tempdir();
    let record = tools.path().join("args.txt");
    let broken = script(
        tools.path(),
        "broken.sh",
        &format!(
            "echo \"$@\" > {}\necho 'restore: no such backup' >&2\nexit 1",
            record.display()
        ),
    );
    let mut spec = c.spec("f");
    spec.extra_bootstrap = format!(
        "  method: broken\n  broken:\n    command: {broken} --fixed\n    arg1: value1\n    arg2: value2\n    keep_existing_recovery_conf: false\n    no_params: false\n    recovery_conf:\n      restore_command: x\n"
    );
    let f = c.start(spec);
    wait_until("the failed bootstrap is reported", secs(30), || {
        c.nodes[f]
            .api_get("/patroni")
            .is_ok_and(|(_, v)| v["state"] == "custom bootstrap failed")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&c.nodes[f].log(), 30)));
    let args = fs::read_to_string(&record).unwrap();
    let data = c.nodes[f].data_dir();
    assert_eq!(
        args.trim(),
        format!(
            "--fixed --scope=failing --datadir={} --arg1=value1 --arg2=value2",
            data.display()
        )
    );
    assert!(
        c.nodes[f].log().contains("restore: no such backup"),
        "the method's stderr reaches the log"
    );
    assert!(c.load().initialize.is_none(), "initialize released");
    assert!(
        Path::new(&format!("{}.failed", data.display())).exists(),
        "data directory moved aside"
    );
    let (_, status) = c.nodes[f].api_get("/patroni").unwrap();
    assert!(status.to_string().contains("no such backup"), "{status}");
    let g = c.start(c.spec("g"));
    c.nodes[g].wait_role("primary", secs(60));
    assert_eq!(c.load().leader_name(), Some("g"));
}
