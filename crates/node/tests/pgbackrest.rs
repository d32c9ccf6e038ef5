//! pgBackRest end to end (real etcd, real PostgreSQL 15, Debian's `pgbackrest` binary, a repository
//! in a temp directory): WAL archived with `archive-push` from the dynamic configuration, replicas
//! restored from the repository with the seeds' `create_replica_methods: [pgbackrest, basebackup]`,
//! delta restores with `keep_data`, `archive-get` as restore_command (a replica that fell behind, an
//! archive-only standby cluster), a point-in-time bootstrap with `keep_existing_recovery_conf`, a
//! `no_leader` disaster recovery, and pgBackRest's own errors when the stanza is missing or the
//! repository host is unreachable. The example configuration in `examples/pgbackrest/` is validated.
//!
//! Every pgBackRest command names the test's configuration file (`--config=`) and the node's data
//! directory (`--pg1-path=`): with `no_params: true` ferroni passes nothing, the command carries
//! everything (as in Patroni's seeds). Commands that live in the dynamic configuration, shared by
//! every member (`archive_command`, the standby cluster's `restore_command`), use `--pg1-path="$PWD"`:
//! Postgres runs them through `sh` in its data directory. On real hosts each one has its own
//! `/etc/pgbackrest/pgbackrest.conf` with `pg1-path` and neither is needed.

mod common;

use common::{TestCluster, secs};
use ferroni_testkit::node::{
    FerroniNode, NodeSpec, chown_postgres, http_request, postgres_ids, postgres_tempdir, tail,
};
use ferroni_testkit::wait::wait_until;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tempfile::TempDir;

const STANZA: &str = "main";
/// pgBackRest's detail-level line for a file a delta restore found in place and did not copy.
const DELTA_KEPT: &str = "exists and matches backup";
/// pgBackRest's warning when `--delta` finds no cluster to compare with and copies everything.
const DELTA_DISABLED: &str = "--delta and --force have been disabled";

/// A YAML single-quoted scalar.
fn yq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A pgBackRest repository on local disk and the configuration file naming it.
struct Repo {
    _dir: TempDir,
    conf: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let dir = postgres_tempdir();
        for sub in ["repo", "log", "lock"] {
            let path = dir.path().join(sub);
            fs::create_dir(&path).unwrap();
            chown_postgres(&path);
        }
        let conf = dir.path().join("pgbackrest.conf");
        fs::write(
            &conf,
            format!(
                "[global]\n\
                 repo1-path={d}/repo\n\
                 repo1-retention-full=2\n\
                 log-path={d}/log\n\
                 lock-path={d}/lock\n\
                 log-level-file=off\n\
                 start-fast=y\n\
                 archive-async=n\n\
                 compress-type=none\n\
                 \n\
                 [global:restore]\n\
                 log-level-console=info\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        chown_postgres(&conf);
        Repo { _dir: dir, conf }
    }

    /// The start of every command line: this repository's configuration and the stanza.
    fn base(&self) -> String {
        format!("pgbackrest --config={} --stanza={STANZA}", self.conf.display())
    }

    /// Runs pgBackRest as the postgres user and returns what it printed; panics when it fails.
    fn run(&self, args: &[String]) -> String {
        let mut cmd = Command::new("pgbackrest");
        cmd.arg(format!("--config={}", self.conf.display()))
            .arg(format!("--stanza={STANZA}"))
            .args(args)
            .current_dir("/");
        if let Some((uid, gid)) = postgres_ids() {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd
            .output()
            .expect("run pgbackrest (Debian's pgbackrest package; scripts/setup.sh installs it)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "pgbackrest {args:?} fails:\n{text}");
        text
    }

    /// Where pgBackRest finds a running member: data directory, port and socket directory (the
    /// harness sets `unix_socket_directories` to the node's directory).
    fn pg_args(node: &FerroniNode) -> Vec<String> {
        vec![
            format!("--pg1-path={}", node.data_dir().display()),
            format!("--pg1-port={}", node.spec.pg_port),
            format!("--pg1-socket-path={}", node.dir.display()),
        ]
    }

    fn stanza_create(&self, node: &FerroniNode) {
        let mut args = Self::pg_args(node);
        args.push("stanza-create".into());
        self.run(&args);
    }

    fn full_backup(&self, node: &FerroniNode) {
        let mut args = Self::pg_args(node);
        args.extend(["--type=full".to_string(), "backup".to_string()]);
        self.run(&args);
    }

    /// `bootstrap.dcs.postgresql.parameters` lines (8 spaces) that archive WAL with archive-push.
    fn archiving(&self) -> String {
        format!(
            "        archive_mode: 'on'\n        archive_command: {}\n",
            yq(&format!("{} --pg1-path=\"$PWD\" archive-push \"%p\"", self.base()))
        )
    }

    /// archive-get for the member whose data directory is `data`.
    fn restore_command(&self, data: &Path) -> String {
        format!("{} --pg1-path={} archive-get %f \"%p\"", self.base(), data.display())
    }

    /// The seeds' restore: a delta restore into the replica's data directory, which ferroni keeps.
    fn restore(&self, data: &Path, console: &str) -> String {
        format!(
            "{} --pg1-path={} --log-level-console={console} --delta restore",
            self.base(),
            data.display()
        )
    }

    /// `postgresql` lines (2 spaces) for a replica restored by pgBackRest, basebackup as fallback,
    /// and archive-get as its restore_command (Patroni's `postgresql.recovery_conf`).
    fn replica_config(&self, data: &Path, console: &str, flags: &str) -> String {
        format!(
            "{}  recovery_conf:\n    restore_command: {}\n",
            methods(&["pgbackrest", "basebackup"], &self.restore(data, console), flags),
            yq(&self.restore_command(data))
        )
    }
}

/// `create_replica_methods` and a `pgbackrest` section with `keep_data` and `no_params`.
fn methods(list: &[&str], command: &str, flags: &str) -> String {
    format!(
        "  create_replica_methods: [{}]\n  pgbackrest:\n    command: {}\n    keep_data: true\n    no_params: true\n{flags}",
        list.join(", "),
        yq(command)
    )
}

/// A cluster, the directories of the nodes started here, and the repository. Fields drop in this
/// order: nodes first (they stop Postgres), then their directories, then the repository.
struct Env {
    c: TestCluster,
    dirs: Vec<TempDir>,
    repo: Repo,
}

impl Env {
    fn new(scope: &str) -> Env {
        Env {
            c: TestCluster::new(scope),
            dirs: Vec::new(),
            repo: Repo::new(),
        }
    }

    /// Starts a node whose configuration can name its own data directory.
    fn start_with(&mut self, name: &str, configure: impl FnOnce(&Repo, &mut NodeSpec, &Path)) -> usize {
        let dir = postgres_tempdir();
        let mut spec = self.c.spec(name);
        configure(&self.repo, &mut spec, &dir.path().join("data"));
        let node = FerroniNode::start(Path::new(common::BIN), dir.path(), spec);
        self.dirs.push(dir);
        self.c.nodes.push(node);
        self.c.nodes.len() - 1
    }

    /// A primary archiving into the repository (archive_command in the dynamic configuration),
    /// with the stanza created.
    fn archiving_primary(&mut self, name: &str, extra_dcs: &str) -> usize {
        let mut spec = self.c.spec(name);
        spec.extra_dcs = format!("{}{extra_dcs}", self.repo.archiving());
        let a = self.c.start(spec);
        self.c.nodes[a].wait_role("primary", secs(60));
        self.repo.stanza_create(&self.c.nodes[a]);
        a
    }

    fn node(&self, i: usize) -> &FerroniNode {
        &self.c.nodes[i]
    }
}

fn fail_with_log(node: &FerroniNode, lines: usize) -> impl FnOnce(String) -> std::time::Duration + '_ {
    move |e| panic!("{e}\n--- log of {} ---\n{}", node.spec.name, tail(&node.log(), lines))
}

fn wait_streaming(node: &FerroniNode, timeout: std::time::Duration) {
    wait_until(&format!("{} streaming", node.spec.name), timeout, || {
        node.api_get("/patroni")
            .is_ok_and(|(_, v)| v["role"] == "replica" && v["replication_state"] == "streaming")
    })
    .unwrap_or_else(fail_with_log(node, 60));
}

fn wait_rows(node: &FerroniNode, sql: &str, expected: &str) {
    wait_until(&format!("{sql} = {expected} on {}", node.spec.name), secs(30), || {
        node.psql(sql).is_ok_and(|v| v == expected)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: got {:?}\n--- postmaster.log of {} ---\n{}\n--- log ---\n{}",
            node.psql(sql),
            node.spec.name,
            tail(&postmaster_log(node), 40),
            tail(&node.log(), 40)
        )
    });
}

/// Closes the current WAL segment (something must have been written since the last switch) and
/// waits until archive-push stored it in the repository.
fn switch_and_wait_archived(node: &FerroniNode) {
    let segment = node.psql("SELECT pg_walfile_name(pg_switch_wal())").unwrap();
    wait_until("WAL archived by archive-push", secs(30), || {
        node.psql(&format!(
            "SELECT coalesce(last_archived_wal >= '{segment}', false) FROM pg_stat_archiver"
        ))
        .is_ok_and(|v| v == "t")
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}\n{}",
            node.psql("SELECT * FROM pg_stat_archiver"),
            postmaster_log(node)
        )
    });
}

fn postmaster_log(node: &FerroniNode) -> String {
    fs::read_to_string(node.data_dir().join("postmaster.log")).unwrap_or_default()
}

/// Lines of a restore that pgBackRest found in place and did not copy.
fn kept_files(log: &str) -> usize {
    log.lines().filter(|l| l.contains(DELTA_KEPT)).count()
}

#[test]
fn replicas_are_restored_from_the_repository_then_stream_from_the_leader() {
    let started = Instant::now();
    let mut env = Env::new("pgbr-replicas");
    let a = env.archiving_primary("a", "");
    let leader = env.node(a);
    leader
        .psql("CREATE TABLE t AS SELECT generate_series(1, 100) AS x")
        .unwrap();
    // A file only the backup has: the leader's copy goes away once the backup is taken.
    let marker = leader.data_dir().join("only_in_the_backup");
    fs::write(&marker, "1").unwrap();
    chown_postgres(&marker);
    env.repo.full_backup(leader);
    fs::remove_file(&marker).unwrap();
    leader.psql("INSERT INTO t SELECT generate_series(101, 200)").unwrap();

    let replicas: Vec<usize> = ["b", "c"]
        .iter()
        .map(|name| {
            env.start_with(name, |repo, spec, data| {
                spec.extra_postgresql = repo.replica_config(data, "info", "");
            })
        })
        .collect();
    for &i in &replicas {
        let node = env.node(i);
        wait_streaming(node, secs(60));
        assert!(
            node.data_dir().join("only_in_the_backup").exists(),
            "{} was restored from the repository, not copied from the leader",
            node.spec.name
        );
        wait_rows(node, "SELECT count(*) FROM t", "200");
        let log = node.log();
        assert!(
            log.contains("replica created with method pgbackrest"),
            "{}",
            tail(&log, 40)
        );
        assert!(
            log.contains("restore command end: completed successfully"),
            "pgBackRest's output reaches ferroni's log"
        );
        assert!(!log.contains("run pg_basebackup"), "basebackup was not needed");
    }
    // Both restored members follow the leader through their slots.
    wait_until("an active slot per replica", secs(20), || {
        env.node(a)
            .psql("SELECT string_agg(slot_name || ':' || active, ',' ORDER BY slot_name) FROM pg_replication_slots")
            .is_ok_and(|v| v == "b:true,c:true")
    })
    .unwrap();
    eprintln!("replicas restored from the repository in {:?}", started.elapsed());
}

/// A leader with a backup and a replica `b` restored from it at pgBackRest's `detail` log level.
fn restored_replica(scope: &str) -> (Env, usize, usize) {
    let mut env = Env::new(scope);
    let a = env.archiving_primary("a", "");
    env.node(a)
        .psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x")
        .unwrap();
    env.repo.full_backup(env.node(a));
    let b = env.start_with("b", |repo, spec, data| {
        spec.extra_postgresql = repo.replica_config(data, "detail", "");
    });
    wait_streaming(env.node(b), secs(60));
    let first = env.node(b).log();
    assert!(first.contains("replica created with method pgbackrest"));
    assert_eq!(
        kept_files(&first),
        0,
        "the first restore into an empty directory copies everything"
    );
    assert!(
        first.contains(DELTA_DISABLED),
        "pgBackRest says there was nothing to compare with"
    );
    env.node(a).psql("INSERT INTO t VALUES (1001)").unwrap();
    wait_rows(env.node(b), "SELECT count(*) FROM t", "1001");
    (env, a, b)
}

/// What the restore after `offset` in `node`'s log did: files kept in place, and whether pgBackRest
/// fell back to a full copy.
fn second_restore(node: &FerroniNode, offset: usize) -> (usize, bool) {
    wait_until("b restored again and streaming", secs(60), || {
        node.log()[offset..].contains("replica created with method pgbackrest")
            && node
                .api_get("/patroni")
                .is_ok_and(|(_, v)| v["replication_state"] == "streaming")
    })
    .unwrap_or_else(fail_with_log(node, 60));
    let log = node.log();
    let again = &log[offset..];
    (kept_files(again), again.contains(DELTA_DISABLED))
}

#[test]
fn reinitialize_with_keep_data_is_a_delta_restore() {
    let (env, a, b) = restored_replica("pgbr-reinit");
    let offset = env.node(b).log().len();
    let (code, body) = http_request("POST", &env.node(b).api_url("/reinitialize"), Some("{}")).unwrap();
    assert_eq!(code, 200, "{body}");
    let (kept, disabled) = second_restore(env.node(b), offset);
    assert!(
        !disabled && kept > 100,
        "the reinitialize is a delta restore: {kept} files kept in place, delta disabled: {disabled}\n{}",
        tail(&env.node(b).log()[offset..], 40)
    );
    env.node(a).psql("INSERT INTO t VALUES (1002)").unwrap();
    wait_rows(env.node(b), "SELECT count(*) FROM t", "1002");
}

#[test]
fn an_interrupted_restore_is_finished_as_a_delta_restore() {
    let started = Instant::now();
    let (mut env, a, b) = restored_replica("pgbr-delta");
    let node = &mut env.c.nodes[b];
    node.sigterm();
    assert_eq!(node.wait_exit(secs(30)), Some(0));
    // What a restore stopped midway leaves behind: pgBackRest removes global/pg_control first (and
    // writes it last) so that such a directory cannot start.
    fs::remove_file(node.data_dir().join("global/pg_control")).unwrap();
    let offset = node.log().len();
    node.restart();
    let (kept, disabled) = second_restore(env.node(b), offset);
    assert!(
        !disabled && kept > 100,
        "the restore took the delta path: {kept} files kept in place, delta disabled: {disabled}\n{}",
        tail(&env.node(b).log()[offset..], 40)
    );
    env.node(a).psql("INSERT INTO t VALUES (1002)").unwrap();
    wait_rows(env.node(b), "SELECT count(*) FROM t", "1002");
    eprintln!(
        "delta restore of an interrupted replica: {kept} files kept, {:?} in all",
        started.elapsed()
    );
}

/// A leader that keeps no WAL for absent members, and a replica `b` (restored by pgBackRest, or
/// built by pg_basebackup) with archive-get in `postgresql.recovery_conf`; b is stopped while the
/// leader writes and recycles four segments, then started again and must catch up.
fn replica_falls_behind_and_catches_up(scope: &str, restored_by_pgbackrest: bool) {
    let started = Instant::now();
    let mut env = Env::new(scope);
    // No slots and no wal_keep_size: the leader recycles WAL that a stopped replica still needs.
    let a = env.archiving_primary("a", "        wal_keep_size: 0\n      use_slots: false\n");
    if restored_by_pgbackrest {
        env.repo.full_backup(env.node(a));
    }
    let b = env.start_with("b", |repo, spec, data| {
        spec.extra_postgresql = if restored_by_pgbackrest {
            repo.replica_config(data, "info", "")
        } else {
            format!(
                "  recovery_conf:\n    restore_command: {}\n",
                yq(&repo.restore_command(data))
            )
        };
    });
    wait_streaming(env.node(b), secs(60));
    env.node(a)
        .psql("CREATE TABLE lag (x int); INSERT INTO lag VALUES (0)")
        .unwrap();
    wait_rows(env.node(b), "SELECT count(*) FROM lag", "1");
    {
        let node = &mut env.c.nodes[b];
        node.sigterm();
        assert_eq!(node.wait_exit(secs(30)), Some(0));
    }
    let leader = env.node(a);
    let needed = leader.psql("SELECT pg_walfile_name(pg_current_wal_lsn())").unwrap();
    for i in 0..4 {
        leader
            .psql(&format!(
                "INSERT INTO lag SELECT generate_series({}, {})",
                i * 1000 + 1,
                i * 1000 + 1000
            ))
            .unwrap();
        switch_and_wait_archived(leader);
    }
    wait_until("the leader recycled the segment b needs", secs(20), || {
        leader.psql("CHECKPOINT").is_ok()
            && leader
                .psql(&format!(
                    "SELECT count(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{{24}}$' AND name <= '{needed}'"
                ))
                .is_ok_and(|v| v == "0")
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}",
            leader.psql("SELECT string_agg(name, ',') FROM pg_ls_waldir()")
        )
    });

    let offset = postmaster_log(env.node(b)).len();
    env.c.nodes[b].restart();
    let node = env.node(b);
    wait_rows(node, "SELECT count(*) FROM lag", "4001");
    wait_streaming(node, secs(30));
    let pglog = postmaster_log(node);
    assert!(
        pglog[offset..].contains(&format!("restored log file \"{needed}\" from archive")),
        "archive-get fetched {needed}, which the leader no longer had:\n{}",
        tail(&pglog[offset..], 30)
    );
    eprintln!(
        "{scope}: lagging replica caught up from the archive in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_restored_replica_that_fell_behind_fetches_wal_with_archive_get() {
    // pgBackRest's restore writes restore_command into postgresql.auto.conf; ferroni removes it
    // there and applies the same command from postgresql.recovery_conf.
    replica_falls_behind_and_catches_up("pgbr-lag-restored", true);
}

#[test]
fn a_basebackup_replica_that_fell_behind_fetches_wal_with_recovery_conf() {
    replica_falls_behind_and_catches_up("pgbr-lag-recovery-conf", false);
}

#[test]
fn an_archive_only_standby_cluster_replays_the_repository() {
    let started = Instant::now();
    let mut env = Env::new("pgbr-source");
    let a = env.archiving_primary("a", "");
    env.node(a)
        .psql("CREATE TABLE shipped (x int); INSERT INTO shipped VALUES (1)")
        .unwrap();
    env.repo.full_backup(env.node(a));
    let source_sysid = env.c.load().sysid().unwrap().to_string();
    // No host: the standby leader is imaged by a no_leader method and replays the archive only.
    let s = env.start_with("s", |repo, spec, data| {
        spec.scope = "pgbr-standby".into();
        spec.extra_dcs = format!(
            "    standby_cluster:\n      restore_command: {}\n      create_replica_methods: [pgbackrest]\n",
            yq(&format!("{} --pg1-path=\"$PWD\" archive-get %f \"%p\"", repo.base()))
        );
        spec.extra_postgresql = methods(&["pgbackrest"], &repo.restore(data, "info"), "    no_leader: true\n");
    });
    wait_until("s runs as the standby leader", secs(90), || {
        env.node(s)
            .api_get("/patroni")
            .is_ok_and(|(_, v)| v["role"] == "standby_leader" && v["state"] == "running")
    })
    .unwrap_or_else(fail_with_log(env.node(s), 60));
    wait_rows(env.node(s), "SELECT count(*) FROM shipped", "1");

    env.node(a).psql("INSERT INTO shipped VALUES (2)").unwrap();
    switch_and_wait_archived(env.node(a));
    wait_rows(
        env.node(s),
        "SELECT string_agg(x::text, ',' ORDER BY x) FROM shipped",
        "1,2",
    );
    let standby = env.node(s);
    assert!(
        standby.psql("INSERT INTO shipped VALUES (3)").is_err(),
        "a standby cluster is read-only"
    );
    assert!(
        standby.psql("SELECT count(*) FROM pg_stat_wal_receiver").unwrap() == "0",
        "archive only: no streaming connection"
    );
    assert!(standby.log().contains("replica created with method pgbackrest"));
    assert!(postmaster_log(standby).contains("restored log file"));
    let view = common::load(&env.c.etcd.host_port(), "pgbr-standby");
    assert_eq!(view.sysid(), Some(source_sysid.as_str()));
    assert_eq!(view.leader_name(), Some("s"));
    eprintln!("archive-only standby cluster in {:?}", started.elapsed());
}

/// A source cluster with a backup, rows 1 and 2 on each side of a target time (archived), and a
/// member `r` of scope `pgbr-pitr` bootstrapped to that time by pgBackRest.
fn pitr_cluster(source: &str) -> (Env, usize, String) {
    let mut env = Env::new(source);
    let a = env.archiving_primary("a", "");
    let node = env.node(a);
    node.psql("CREATE TABLE timed (x int)").unwrap();
    env.repo.full_backup(node);
    node.psql("INSERT INTO timed VALUES (1)").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let target = node.psql("SELECT now()").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    node.psql("INSERT INTO timed VALUES (2)").unwrap();
    switch_and_wait_archived(node);
    let sysid = env.c.load().sysid().unwrap().to_string();
    let r = env.start_with("r", |repo, spec, data| {
        spec.scope = "pgbr-pitr".into();
        let command = format!(
            "{} --pg1-path={} --type=time \"--target={target}\" --target-action=promote restore",
            repo.base(),
            data.display()
        );
        spec.extra_bootstrap = format!(
            "  method: pgbackrest_pitr\n  pgbackrest_pitr:\n    command: {}\n    keep_existing_recovery_conf: true\n    no_params: true\n",
            yq(&command)
        );
    });
    env.node(r).wait_role("primary", secs(90));
    let view = common::load(&env.c.etcd.host_port(), "pgbr-pitr");
    assert_eq!(
        view.sysid(),
        Some(sysid.as_str()),
        "the restored cluster keeps its identity"
    );
    assert_eq!(view.leader_name(), Some("r"));
    (env, r, target)
}

#[test]
fn a_new_cluster_bootstraps_to_a_point_in_time_from_the_repository() {
    let started = Instant::now();
    let (mut env, r, target) = pitr_cluster("pgbr-pitr-src");
    let node = env.node(r);
    assert_eq!(
        node.psql("SELECT string_agg(x::text, ',') FROM timed").unwrap(),
        "1",
        "the row written after {target} is absent"
    );
    node.psql("INSERT INTO timed VALUES (3)")
        .expect("the restored cluster is writable");
    // ferroni wrote no recovery settings (keep_existing_recovery_conf): pgBackRest's were used.
    let pglog = postmaster_log(node);
    assert!(
        pglog.contains("starting point-in-time recovery to") && pglog.contains("recovery stopping before commit"),
        "{}",
        tail(&pglog, 30)
    );
    let log = node.log();
    assert!(log.contains("bootstrap finished"), "{}", tail(&log, 30));
    assert!(log.contains("restore command end: completed successfully"));

    // Taking the settings out by hand is harmless (ferroni removes them itself; the test of
    // replicas of a point-in-time cluster checks that without this step).
    for name in ["restore_command", "recovery_target_time", "recovery_target_action"] {
        node.psql(&format!("ALTER SYSTEM RESET {name}")).unwrap();
    }
    let r2 = env.start_with("r2", |_, spec, _| spec.scope = "pgbr-pitr".into());
    wait_streaming(env.node(r2), secs(60));
    env.node(r).psql("INSERT INTO timed VALUES (4)").unwrap();
    wait_rows(
        env.node(r2),
        "SELECT string_agg(x::text, ',' ORDER BY x) FROM timed",
        "1,3,4",
    );
    assert_eq!(env.node(r2).psql("SELECT pg_is_in_recovery()").unwrap(), "t");
    eprintln!("point-in-time bootstrap and a replica in {:?}", started.elapsed());
}

#[test]
fn replicas_of_a_point_in_time_cluster_keep_following_it() {
    let (mut env, r, _) = pitr_cluster("pgbr-pitr-src2");
    let r2 = env.start_with("r2", |_, spec, _| spec.scope = "pgbr-pitr".into());
    wait_streaming(env.node(r2), secs(60));
    env.node(r).psql("INSERT INTO timed VALUES (3)").unwrap();
    wait_rows(
        env.node(r2),
        "SELECT string_agg(x::text, ',' ORDER BY x) FROM timed",
        "1,3",
    );
    // Later writes keep arriving, and the replica never ends its recovery by itself.
    std::thread::sleep(std::time::Duration::from_secs(3));
    env.node(r).psql("INSERT INTO timed VALUES (4)").unwrap();
    wait_rows(
        env.node(r2),
        "SELECT string_agg(x::text, ',' ORDER BY x) FROM timed",
        "1,3,4",
    );
    assert_eq!(env.node(r2).psql("SELECT pg_is_in_recovery()").unwrap(), "t");
    let auto = fs::read_to_string(env.node(r2).data_dir().join("postgresql.auto.conf")).unwrap();
    assert!(!auto.contains("recovery_target"), "{auto}");
}

#[test]
fn a_lost_cluster_is_restored_by_a_no_leader_member_and_archives_again() {
    let started = Instant::now();
    let mut env = Env::new("pgbr-dr");
    let a = env.archiving_primary("a", "");
    env.node(a)
        .psql("CREATE TABLE precious (x int); INSERT INTO precious VALUES (11)")
        .unwrap();
    env.repo.full_backup(env.node(a));
    env.node(a).psql("INSERT INTO precious VALUES (12)").unwrap();
    switch_and_wait_archived(env.node(a));
    let sysid = env.c.load().sysid().unwrap().to_string();
    // Every node and data directory is lost; `initialize` stays in etcd.
    {
        let node = &mut env.c.nodes[a];
        node.sigterm();
        assert_eq!(node.wait_exit(secs(30)), Some(0));
        fs::remove_dir_all(node.data_dir()).unwrap();
    }
    assert_eq!(env.c.load().sysid(), Some(sysid.as_str()));
    assert_eq!(env.c.load().leader_name(), None);

    let r = env.start_with("r", |repo, spec, data| {
        spec.extra_postgresql = repo.replica_config(data, "info", "    no_leader: true\n");
    });
    env.node(r).wait_role("primary", secs(90));
    let node = env.node(r);
    assert_eq!(
        node.psql("SELECT string_agg(x::text, ',' ORDER BY x) FROM precious")
            .unwrap(),
        "11,12",
        "the backup and the archived WAL after it"
    );
    let view = env.c.load();
    assert_eq!(view.leader_name(), Some("r"));
    assert_eq!(
        view.sysid(),
        Some(sysid.as_str()),
        "the restored cluster keeps its identity"
    );
    let log = node.log();
    assert!(
        log.contains("trying to bootstrap (without leader)"),
        "{}",
        tail(&log, 40)
    );
    assert!(log.contains("replica created with method pgbackrest"));
    // The new leader archives into the same stanza (archive_command from the dynamic configuration).
    node.psql("INSERT INTO precious VALUES (13)").unwrap();
    switch_and_wait_archived(node);
    eprintln!("disaster recovery from the repository in {:?}", started.elapsed());
}

/// A leader, `b` whose pgBackRest command fails with basebackup as its next method, and `c` with
/// pgBackRest only, whose failure stays in `/patroni`.
fn failing_method(scope: &str, command: impl Fn(&Repo, &Path) -> String, expected: &[&str]) {
    let started = Instant::now();
    let mut env = Env::new(scope);
    let a = env.c.start(env.c.spec("a"));
    env.node(a).wait_role("primary", secs(60));
    let b = env.start_with("b", |repo, spec, data| {
        spec.extra_postgresql = methods(&["pgbackrest", "basebackup"], &command(repo, data), "");
    });
    let c = env.start_with("c", |repo, spec, data| {
        spec.extra_postgresql = methods(&["pgbackrest"], &command(repo, data), "");
    });
    wait_streaming(env.node(b), secs(60));
    let log = env.node(b).log();
    for text in expected {
        assert!(
            log.contains(text),
            "pgBackRest's {text:?} in b's log:\n{}",
            tail(&log, 40)
        );
    }
    assert!(log.contains("replica method pgbackrest fails"));
    assert!(log.contains("replica created with method basebackup"));

    let mut last = serde_json::Value::Null;
    wait_until("c reports pgBackRest's error in /patroni", secs(30), || {
        if let Ok((_, v)) = env.node(c).api_get("/patroni") {
            last = v;
        }
        let status = last.to_string();
        expected.iter().all(|t| status.contains(t))
    })
    .unwrap_or_else(|e| panic!("{e}: {last}"));
    assert!(
        last["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("replica method pgbackrest fails")
    );
    assert!(env.node(c).log().contains(expected[expected.len() - 1]));
    eprintln!("{scope}: c reports {}", last["last_error"]);
    eprintln!("{scope}: failure reported and fell through in {:?}", started.elapsed());
}

#[test]
fn a_missing_stanza_shows_pgbackrests_error_and_falls_through() {
    failing_method(
        "pgbr-nostanza",
        |repo, data| {
            format!(
                "pgbackrest --config={} --stanza=nosuch --pg1-path={} --delta restore",
                repo.conf.display(),
                data.display()
            )
        },
        &[
            "has a stanza-create been performed?",
            "ERROR: [075]: no backup set found to restore",
        ],
    );
}

#[test]
fn an_unreachable_repository_shows_pgbackrests_error_and_falls_through() {
    // A repository host reached over SSH on a port where nothing listens.
    let port = ferroni_testkit::ports::free_port();
    failing_method(
        "pgbr-unreachable",
        move |repo, data| {
            format!(
                "{} --repo1-host=127.0.0.1 --repo1-host-port={port} --repo1-host-user=pgbackrest --pg1-path={} --delta restore",
                repo.base(),
                data.display()
            )
        },
        &["ERROR: [125]", "Connection refused"],
    );
}

#[test]
fn the_example_configuration_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pgbackrest");
    for file in ["node1.yml", "node2.yml", "node3.yml", "restore-pitr.yml"] {
        let path = dir.join(file);
        let out = Command::new(common::BIN)
            .arg("--validate-config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
