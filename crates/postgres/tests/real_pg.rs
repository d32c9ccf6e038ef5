//! Integration tests against real PostgreSQL 15 binaries: initdb, managed configuration, start, probe,
//! stop, crash, pg_basebackup, streaming replica, promote, custom replica methods and bootstrap scripts.
//!
//! Every test gets its own temporary directory (owned by `postgres` when the tests run as root, since
//! PostgreSQL refuses to run as root) and its own free port. Every server a test starts is stopped by
//! the [`Node`] drop guard (SIGQUIT to the postmaster) even when the test fails. Tests that need the
//! binaries print a message and pass when `/usr/lib/postgresql/15/bin/initdb` is absent.

use ferroni_model::{CustomBootstrap, PgRole, PgState, ReplicaMethod};
use ferroni_postgres::conf::{self, ConfRole, SignalFile, StandbyParams};
use ferroni_postgres::{BasebackupProgress, CloneOptions, PgError, Prober, StopMode, StopOutcome};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::*;

async fn wait_for<F: FnMut(&ferroni_postgres::Probe) -> bool>(
    prober: &mut Prober,
    what: &str,
    mut f: F,
) -> ferroni_postgres::Probe {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = prober.probe().await;
        if f(&p) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last probe: {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect_tcp(port: u16, user: &str, password: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(user)
        .password(password)
        .dbname("postgres");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_lifecycle_start_probe_stop_crash() {
    let Some(run_as) = environment() else { return };
    let node = Node::new("node1", run_as);
    let mut prober = node.prober();
    assert_eq!(prober.probe().await.state, PgState::NoData);
    node.init_primary().await;

    // Running primary whose identity matches the control file.
    let p = prober.probe().await;
    let (sysid, tli) = node.ctl.sysid_and_timeline().await.unwrap();
    match &p.state {
        PgState::Running {
            sysid: s,
            role,
            timeline,
            lsn,
            replication,
            postmaster_start_time,
            server_version,
        } => {
            assert_eq!(s, &sysid);
            assert_eq!((*role, *timeline, tli), (PgRole::Primary, 1, 1));
            assert!(lsn.0 > 0);
            assert!(replication.is_none());
            assert!(postmaster_start_time.is_some());
            assert!(*server_version >= 150000, "{server_version}");
        }
        other => panic!("expected a running primary, got {other:?} ({:?})", p.error),
    }
    assert!(p.replication.is_empty() && p.wal_receiver.is_none() && !p.pending_restart);
    let fastest = futures_min_probe(&mut prober, 5).await;
    println!("fastest of 5 cached probes: {fastest:?}");
    assert!(fastest < Duration::from_millis(50), "probe takes {fastest:?}");

    // The superuser password set through the pwfile works over TCP (md5), a wrong one does not.
    assert!(connect_tcp(node.port, "postgres", SUPERUSER_PW).await.is_ok());
    assert!(connect_tcp(node.port, "postgres", "wrong").await.is_err());
    assert!(connect_tcp(node.port, "replicator", REPLICATION_PW).await.is_ok());
    assert!(connect_tcp(node.port, "rewinder", "rewind-pw").await.is_ok());
    // Running create_roles again (roles exist now: ALTER) still logs no password.
    node.ctl.create_roles().await.unwrap();
    let log = std::fs::read_to_string(node.ctl.log_file()).unwrap();
    assert!(
        log.contains("statement: SELECT pg_catalog.pg_is_in_recovery()"),
        "statement logging is on"
    );
    assert!(
        log.contains("SET LOCAL log_statement = 'none'"),
        "the silencing batch itself is logged"
    );
    for secret in ["su pass", "repl:pass", "rewind-pw"] {
        assert!(!log.contains(secret), "the server log shows a password: {log}");
    }

    // post_bootstrap gets the conninfo as its only argument and the environment Patroni gives it.
    node.ctl.write_pgpass(None).unwrap();
    let record = node.path("post_bootstrap.out");
    let script = node.script(
        "post.sh",
        &format!(
            "{{ echo \"argc=$#\"; echo \"arg=$1\"; echo \"PGOPTIONS=$PGOPTIONS\"; echo \"PGPASSFILE=$PGPASSFILE\"; {BIN}/psql -X -tA \"$1\" -c 'SHOW synchronous_commit'; }} > {} 2>&1",
            record.display()
        ),
    );
    let conninfo = node.ctl.superuser_conninfo();
    assert!(!conninfo.contains("password"));
    node.ctl
        .run_post_bootstrap(&format!("{} ", script.display()), &conninfo)
        .await
        .unwrap();
    let out = std::fs::read_to_string(&record).unwrap();
    assert!(out.contains("argc=1\n"), "{out}");
    assert!(out.contains(&format!("arg={conninfo}\n")), "{out}");
    assert!(
        out.contains("PGOPTIONS=-c synchronous_commit=local -c statement_timeout=0\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("PGPASSFILE={}\n", node.ctl.cfg.pgpass.display())),
        "{out}"
    );
    assert!(
        out.ends_with("local\n"),
        "psql through the conninfo sees PGOPTIONS: {out}"
    );

    // Clean stop.
    let outcome = node.ctl.stop(StopMode::Fast, Duration::from_secs(30)).await.unwrap();
    assert!(matches!(outcome, StopOutcome::Stopped { .. }), "{outcome:?}");
    assert_eq!(
        node.ctl.stop(StopMode::Fast, Duration::from_secs(1)).await.unwrap(),
        StopOutcome::NotRunning
    );
    let p = prober.probe().await;
    assert_eq!(
        p.state,
        PgState::Stopped {
            sysid: sysid.clone(),
            timeline: 1,
            clean_shutdown: true,
            standby: false
        }
    );

    // A leftover postmaster.pid whose pid now belongs to another program (container restart) neither
    // fools the probe nor blocks the start.
    let pidfile_path = node.ctl.data_dir().join("postmaster.pid");
    let data = node.ctl.data_dir().display();
    std::fs::write(
        &pidfile_path,
        format!("{}\n{data}\n1\n{}\n/tmp\n*\n", std::process::id(), node.port),
    )
    .unwrap();
    assert!(matches!(
        prober.probe().await.state,
        PgState::Stopped {
            clean_shutdown: true,
            ..
        }
    ));

    // Start without waiting: Starting or Running at once, Running soon.
    node.ctl.start(false).await.unwrap();
    let first = prober.probe().await;
    assert!(
        matches!(first.state, PgState::Starting { .. } | PgState::Running { .. }),
        "{first:?}"
    );
    wait_for(&mut prober, "running again", |p| p.state.is_running()).await;

    // kill -9: the probe sees an unclean stop, and a new start recovers.
    let pid = node.ctl.postmaster().unwrap().pid;
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let p = wait_for(&mut prober, "stopped after SIGKILL", |p| {
        matches!(p.state, PgState::Stopped { .. })
    })
    .await;
    assert_eq!(
        p.state,
        PgState::Stopped {
            sysid: sysid.clone(),
            timeline: 1,
            clean_shutdown: false,
            standby: false
        }
    );
    // Orphaned backends may still hold the shared memory for a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = node.ctl.start(true).await {
        assert!(Instant::now() < deadline, "restart after crash fails: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p = prober.probe().await;
    assert!(
        matches!(
            p.state,
            PgState::Running {
                role: PgRole::Primary,
                ..
            }
        ),
        "{p:?}"
    );
}

async fn futures_min_probe(prober: &mut Prober, n: usize) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..n {
        let p = prober.probe().await;
        assert!(p.state.is_running(), "{p:?}");
        best = best.min(p.took);
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basebackup_replica_streams_and_promotes() {
    let Some(run_as) = environment() else { return };
    let primary = Node::new("node1", run_as);
    primary.init_primary().await;
    let replica = Node::new("node2", run_as);

    // Clone with progress reports; the password comes from the replica's pgpass file.
    replica.ctl.write_pgpass(Some(("127.0.0.1", primary.port))).unwrap();
    let progress: Arc<Mutex<Vec<BasebackupProgress>>> = Arc::default();
    let seen = progress.clone();
    let opts = CloneOptions {
        on_progress: Some(Box::new(move |p| seen.lock().unwrap().push(p))),
        ..CloneOptions::default()
    };
    let source = conf::clone_conninfo("127.0.0.1", primary.port, &replica.ctl.cfg);
    let options = [("checkpoint".to_string(), Some("fast".to_string()))];
    replica.ctl.basebackup(&source, &options, opts).await.unwrap();
    let progress = progress.lock().unwrap().clone();
    assert!(!progress.is_empty(), "no progress reported");
    assert_eq!(progress.last().unwrap().percent, 100, "{progress:?}");
    assert!(
        !replica.ctl.log_file().exists(),
        "the primary's postmaster log is not kept"
    );

    // Start it as a replica of the primary.
    let primary_conninfo = conf::primary_conninfo("127.0.0.1", primary.port, &replica.ctl.cfg, "node2");
    replica.configure(ConfRole::Replica(StandbyParams {
        primary_conninfo: Some(primary_conninfo),
        ..Default::default()
    }));
    assert_eq!(conf::signal_file(replica.ctl.data_dir()), SignalFile::Standby);
    replica.ctl.start(true).await.unwrap();

    let primary_sysid = primary.ctl.sysid_and_timeline().await.unwrap().0;
    let mut rprober = replica.prober();
    let p = wait_for(
        &mut rprober,
        "streaming replica",
        |p| matches!(&p.state, PgState::Running { replication: Some(r), .. } if r.streaming),
    )
    .await;
    let PgState::Running {
        sysid,
        role,
        timeline,
        replication: Some(info),
        ..
    } = &p.state
    else {
        unreachable!()
    };
    assert_eq!((sysid, *role, *timeline), (&primary_sysid, PgRole::Replica, 1));
    assert_eq!(
        info.upstream.as_deref(),
        Some(format!("127.0.0.1:{}", primary.port).as_str())
    );
    assert!(info.received.is_some() && info.replayed.is_some() && !info.paused);
    let receiver = p.wal_receiver.as_ref().unwrap();
    assert_eq!(
        (receiver.status.as_str(), receiver.sender_port),
        ("streaming", Some(primary.port))
    );

    // The primary lists it in pg_stat_replication.
    let mut pprober = primary.prober();
    let pp = wait_for(&mut pprober, "replica in pg_stat_replication", |p| {
        p.replication
            .iter()
            .any(|r| r.application_name == "node2" && r.state.as_deref() == Some("streaming"))
    })
    .await;
    let row = pp.replication.iter().find(|r| r.application_name == "node2").unwrap();
    assert_eq!(row.usename.as_deref(), Some("replicator"));
    assert_eq!(row.client_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(row.sync_state.as_deref(), Some("async"));

    // Promote: the new timeline shows at once, without waiting for a checkpoint.
    replica.ctl.promote().await.unwrap();
    let p = rprober.probe().await;
    assert!(
        matches!(
            p.state,
            PgState::Running {
                role: PgRole::Primary,
                timeline: 2,
                ..
            }
        ),
        "{p:?}"
    );

    // After a clean stop the control file shows the new timeline too.
    replica.ctl.stop(StopMode::Fast, Duration::from_secs(30)).await.unwrap();
    assert_eq!(replica.ctl.sysid_and_timeline().await.unwrap().1, 2);
}

/// A replica-method script that records its arguments, whether a marker file in the data directory
/// existed, and PGPASSFILE, then exits with the code written in `exit_code`.
fn recording_script(node: &Node) -> PathBuf {
    let data = node.ctl.data_dir().display().to_string();
    let dir = node.dir.path().display().to_string();
    node.script(
        "record.sh",
        &format!(
            "out={dir}/calls\n\
             echo '--- call' >> $out\n\
             for a in \"$@\"; do echo \"arg:$a\" >> $out; done\n\
             if [ -e {data}/marker ]; then echo marker:yes >> $out; else echo marker:no >> $out; fi\n\
             echo \"pgpass:$PGPASSFILE\" >> $out\n\
             touch {data}/restored\n\
             code=$(cat {dir}/exit_code 2>/dev/null || echo 0)\n\
             [ \"$code\" = 0 ] || echo \"restore fails with $code\" >&2\n\
             exit $code"
        ),
    )
}

fn last_call(node: &Node) -> Vec<String> {
    let text = std::fs::read_to_string(node.path("calls")).unwrap();
    let last = text.rsplit("--- call\n").next().unwrap();
    last.lines().map(str::to_string).collect()
}

fn put_marker(node: &Node) {
    std::fs::create_dir_all(node.ctl.data_dir()).unwrap();
    if let Some(r) = node.run_as {
        r.chown(node.ctl.data_dir()).unwrap();
    }
    std::fs::write(node.ctl.data_dir().join("marker"), "x").unwrap();
}

fn set_exit_code(node: &Node, code: i32) {
    std::fs::write(node.path("exit_code"), code.to_string()).unwrap();
}

#[tokio::test]
async fn custom_replica_method_arguments_no_params_and_keep_data() {
    let Some(run_as) = environment() else { return };
    let node = Node::new("node3", run_as);
    let script = recording_script(&node);
    let data = node.ctl.data_dir().display().to_string();
    let pgpass = node.ctl.cfg.pgpass.display().to_string();
    let extra = vec![
        ("envdir".to_string(), "/etc/wal-e".to_string()),
        ("use_iam".to_string(), "1".to_string()),
    ];

    // Default: fixed parameters, then extras; the data directory is emptied first. The relative
    // command is found in the tools directory.
    put_marker(&node);
    let method = ReplicaMethod {
        name: "wal_e".into(),
        command: vec!["record.sh".into()],
        no_leader: false,
        keep_data: false,
        no_params: false,
        extra_args: extra.clone(),
    };
    let source = "dbname=postgres user=replicator host=10.0.0.1 port=5432";
    node.ctl
        .run_replica_method(&method, Some(source), node.dir.path())
        .await
        .unwrap();
    let expected: Vec<String> = [
        "arg:--scope=batman".to_string(),
        "arg:--role=replica".into(),
        format!("arg:--datadir={data}"),
        format!("arg:--connstring={source}"),
        "arg:--envdir=/etc/wal-e".into(),
        "arg:--use_iam=1".into(),
        "marker:no".into(),
        format!("pgpass:{pgpass}"),
    ]
    .into();
    assert_eq!(last_call(&node), expected);

    // no_leader: an empty connection string.
    node.ctl
        .run_replica_method(&method, None, node.dir.path())
        .await
        .unwrap();
    assert!(last_call(&node).contains(&"arg:--connstring=".to_string()));

    // no_params + keep_data: only the command's own words and the extras; the data stays.
    std::fs::remove_file(node.ctl.data_dir().join("restored")).unwrap();
    put_marker(&node);
    let quiet = ReplicaMethod {
        command: vec![script.display().to_string(), "--stanza=main".into()],
        no_params: true,
        keep_data: true,
        ..method.clone()
    };
    node.ctl
        .run_replica_method(&quiet, Some(source), Path::new("/nonexistent"))
        .await
        .unwrap();
    let call = last_call(&node);
    assert_eq!(
        call[..4],
        [
            "arg:--stanza=main",
            "arg:--envdir=/etc/wal-e",
            "arg:--use_iam=1",
            "marker:yes"
        ]
    );

    // Failure without keep_data: the error carries stderr, the data directory is emptied after.
    set_exit_code(&node, 3);
    let err = node
        .ctl
        .run_replica_method(&method, Some(source), node.dir.path())
        .await
        .unwrap_err();
    assert_eq!(err.method, "wal_e");
    assert_eq!(err.source.stderr_tail(), ["restore fails with 3"]);
    assert!(err.to_string().contains("exit status 3"), "{err}");
    assert_eq!(
        std::fs::read_dir(node.ctl.data_dir()).unwrap().count(),
        0,
        "data directory emptied after failure"
    );

    // Failure with keep_data: what the tool restored stays for the next (resuming) attempt.
    put_marker(&node);
    node.ctl
        .run_replica_method(&quiet, Some(source), node.dir.path())
        .await
        .unwrap_err();
    assert!(node.ctl.data_dir().join("marker").exists() && node.ctl.data_dir().join("restored").exists());

    // A password in the connection string is refused before anything runs.
    let err = node
        .ctl
        .run_replica_method(&method, Some("host=x password=secret"), node.dir.path())
        .await
        .unwrap_err();
    assert!(matches!(err.source, PgError::Invalid(_)), "{err}");
    let err = node
        .ctl
        .basebackup("host=x password=secret", &[], CloneOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err.source, PgError::Invalid(_)), "{err}");
    let format = [("format".to_string(), Some("tar".to_string()))];
    assert!(
        node.ctl
            .basebackup("host=x", &format, CloneOptions::default())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn custom_bootstrap_arguments_and_failure_tail() {
    let Some(run_as) = environment() else { return };
    let node = Node::new("node4", run_as);
    let out = node.path("bootstrap.args");
    let script = node.script(
        "bootstrap.sh",
        &format!(
            "for a in \"$@\"; do echo \"$a\"; done > {}\n\
             i=1; while [ $i -le 25 ]; do echo \"bootstrap line $i\" >&2; i=$((i+1)); done\n\
             grep -q -- --fail {} && exit 1\n\
             exit 0",
            out.display(),
            out.display()
        ),
    );
    let mut method = CustomBootstrap {
        name: "restore".into(),
        command: vec![script.display().to_string()],
        no_params: false,
        keep_existing_recovery_conf: false,
        recovery_conf: BTreeMap::new(),
        extra_args: vec![("backup".into(), "latest".into())],
    };
    node.ctl.run_custom_bootstrap(&method, node.dir.path()).await.unwrap();
    let args = std::fs::read_to_string(&out).unwrap();
    let data = node.ctl.data_dir().display();
    assert_eq!(args, format!("--scope=batman\n--datadir={data}\n--backup=latest\n"));

    method.no_params = true;
    method.extra_args.push(("fail".into(), "yes".into()));
    let err = node
        .ctl
        .run_custom_bootstrap(&method, node.dir.path())
        .await
        .unwrap_err();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "--backup=latest\n--fail=yes\n");
    let tail = err.stderr_tail();
    assert_eq!(tail.len(), 20, "{tail:?}");
    assert_eq!(tail.first().unwrap(), "bootstrap line 6");
    assert_eq!(tail.last().unwrap(), "bootstrap line 25");
    let msg = err.to_string();
    assert!(msg.starts_with("bootstrap:restore fails (exit status 1)"), "{msg}");
    assert!(msg.ends_with("bootstrap line 25"), "{msg}");
}

#[tokio::test]
async fn initdb_rejects_forbidden_options_and_reports_failures() {
    let Some(run_as) = environment() else { return };
    let node = Node::new("node5", run_as);
    let su = node.ctl.cfg.superuser.clone();
    let err = node
        .ctl
        .initdb(&[("pwfile".into(), Some("/etc/passwd".into()))], &su)
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::Invalid(_)), "{err}");
    // A bad locale makes initdb fail after the pwfile was written (its removal is unit-tested).
    let err = node
        .ctl
        .initdb(&[("locale".into(), Some("xx_NOPE".into()))], &su)
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::Command { .. }), "{err}");
    assert!(!err.stderr_tail().is_empty());
    assert!(!err.to_string().contains(SUPERUSER_PW));
}
