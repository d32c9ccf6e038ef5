//! Rejoining a former primary against real PostgreSQL 15: single-user crash recovery, pg_rewind after a
//! real divergence, a clean former primary that needs no rewind, the rewind prerequisites, and a rewind
//! that cannot reach its source. Every server a test starts is stopped by the [`Node`] drop guard.

mod common;

use common::{Node, environment};
use ferroni_model::{PgRole, PgState};
use ferroni_postgres::conf::{self, SignalFile};
use ferroni_postgres::{CrashRecovery, PgError, RewindOptions, RewindOutcome, RewindSupport, StopMode, StopOutcome};
use serde_json::{Map, json};
use std::time::{Duration, Instant};

const ROWS: &str = "SELECT v FROM t ORDER BY v";

/// A primary with data checksums and a streaming replica of it, sharing table `t` with row `common`.
async fn primary_and_replica(run_as: Option<ferroni_postgres::RunAs>) -> (Node, Node) {
    let a = Node::new("node_a", run_as);
    a.init_primary().await;
    a.execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('common')")
        .await;
    let b = Node::new("node_b", run_as);
    b.clone_and_follow(&a).await;
    b.wait_strings(ROWS, &["common"]).await;
    (a, b)
}

fn state(node: &Node) -> String {
    let out = std::process::Command::new(format!("{}/pg_controldata", common::BIN))
        .arg(node.ctl.data_dir())
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("Database cluster state:"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn read(node: &Node, file: &str) -> String {
    std::fs::read_to_string(node.ctl.data_dir().join(file)).unwrap_or_default()
}

/// The former primary A diverged from the promoted B and crashed: crash recovery, pg_rewind, and A
/// follows B with B's history only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diverged_former_primary_is_rewound_and_follows() {
    let Some(run_as) = environment() else { return };
    let (a, b) = primary_and_replica(run_as).await;

    // Split brain: B is promoted while A keeps accepting writes.
    b.ctl.promote().await.unwrap();
    b.execute("INSERT INTO t VALUES ('written on b')").await;
    a.execute("INSERT INTO t VALUES ('diverged on a'); SELECT pg_switch_wal()")
        .await;
    a.execute("CREATE TABLE only_on_a AS SELECT g FROM generate_series(1, 10000) g")
        .await;
    a.ctl.stop(StopMode::Immediate, Duration::from_secs(30)).await.unwrap();
    assert_eq!(state(&a), "in production", "an immediate stop is unclean");
    let a_conf = read(&a, "postgresql.conf");
    let a_hba = read(&a, "pg_hba.conf");
    assert!(a_conf.contains(&format!("port = {}", a.port)));

    // Rewind needs a stopped target and a password-free conninfo.
    let source = a.ctl.rewind_conninfo("127.0.0.1", b.port);
    assert!(source.contains("user=rewinder") && !source.contains("password"));
    let err = a
        .ctl
        .rewind(&format!("{source} password=x"), &RewindOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::Invalid(_)), "{err}");
    assert!(a.ctl.can_rewind().await.unwrap().is_possible());

    // The password of the rewind user comes from A's pgpass file.
    a.ctl.write_pgpass(Some(("127.0.0.1", b.port))).unwrap();
    let started = Instant::now();
    let report = a.ctl.rewind(&source, &RewindOptions::default()).await.unwrap();
    let total = started.elapsed();
    println!("rewind report: {report:?}, total with crash recovery {total:?}");
    assert!(
        matches!(report.crash_recovery, CrashRecovery::Recovered { .. }),
        "{report:?}"
    );
    let RewindOutcome::Rewound {
        diverged_at,
        diverged_timeline,
    } = report.outcome
    else {
        panic!("expected a rewind: {report:?}")
    };
    assert!(diverged_at.is_some_and(|l| l.0 > 0));
    assert_eq!(diverged_timeline, Some(1));

    // What pg_rewind leaves: a backup_label, standby.signal, and A's own configuration and log.
    assert!(a.ctl.data_dir().join("backup_label").exists());
    assert_eq!(conf::signal_file(a.ctl.data_dir()), SignalFile::Standby);
    assert_eq!(read(&a, "postgresql.conf"), a_conf, "A's postgresql.conf is put back");
    assert_eq!(read(&a, "pg_hba.conf"), a_hba);
    let log = read(&a, "postmaster.log");
    assert!(
        log.trim_end()
            .ends_with("the lines above are this server's log before the rewind"),
        "{log}"
    );
    assert!(!log.contains(&format!("port {}", b.port)), "B's log was not kept");

    // A follows B: B's rows, not its own diverged ones, on B's timeline.
    a.configure_replica_of(&b);
    a.ctl.start(true).await.unwrap();
    let p = a.wait_streaming_from(&b).await;
    assert!(
        matches!(
            p.state,
            PgState::Running {
                role: PgRole::Replica,
                timeline: 2,
                ..
            }
        ),
        "{p:?}"
    );
    b.execute("INSERT INTO t VALUES ('after rewind')").await;
    a.wait_strings(ROWS, &["after rewind", "common", "written on b"]).await;
    let tables = a
        .strings("SELECT relname::text FROM pg_class WHERE relname = 'only_on_a'")
        .await;
    assert!(tables.is_empty(), "A's diverged table is gone: {tables:?}");

    a.ctl.stop(StopMode::Fast, Duration::from_secs(30)).await.unwrap();
    b.ctl.stop(StopMode::Fast, Duration::from_secs(30)).await.unwrap();
}

/// A former primary stopped cleanly before the promotion has nothing to undo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_former_primary_needs_no_rewind() {
    let Some(run_as) = environment() else { return };
    let (a, b) = primary_and_replica(run_as).await;

    // Switchover: A stops cleanly (its shutdown checkpoint reaches B), then B is promoted.
    a.ctl.stop(StopMode::Fast, Duration::from_secs(30)).await.unwrap();
    assert_eq!(state(&a), "shut down");
    b.ctl.promote().await.unwrap();
    b.execute("INSERT INTO t VALUES ('written on b')").await;

    let a_conf = read(&a, "postgresql.conf");
    a.ctl.write_pgpass(Some(("127.0.0.1", b.port))).unwrap();
    let source = a.ctl.rewind_conninfo("127.0.0.1", b.port);
    let report = a.ctl.rewind(&source, &RewindOptions::default()).await.unwrap();
    println!("rewind report: {report:?}");
    assert_eq!(report.outcome, RewindOutcome::NotNeeded, "{report:?}");
    assert_eq!(report.crash_recovery, CrashRecovery::NotNeeded);
    assert!(!a.ctl.data_dir().join("backup_label").exists());
    assert_eq!(read(&a, "postgresql.conf"), a_conf, "nothing was touched");
    assert_eq!(conf::signal_file(a.ctl.data_dir()), SignalFile::None);

    a.configure_replica_of(&b);
    a.ctl.start(true).await.unwrap();
    a.wait_streaming_from(&b).await;
    a.wait_strings(ROWS, &["common", "written on b"]).await;

    a.ctl.stop(StopMode::Fast, Duration::from_secs(30)).await.unwrap();
    b.ctl.stop(StopMode::Fast, Duration::from_secs(30)).await.unwrap();
}

/// Without checksums and with wal_log_hints off pg_rewind is impossible; turning wal_log_hints on (and
/// restarting, so pg_control records it) makes it possible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_rewind_follows_checksums_and_wal_log_hints() {
    let Some(run_as) = environment() else { return };
    let node = Node::new("node_c", run_as);
    let no_hints: Map<_, _> = json!({"wal_log_hints": false}).as_object().unwrap().clone();
    let options = [("encoding".to_string(), Some("UTF8".to_string()))];
    node.init_primary_with(&options, &no_hints).await;
    assert_eq!(
        node.ctl.can_rewind().await.unwrap(),
        RewindSupport::NoChecksumsNorWalLogHints
    );
    node.ctl.stop(StopMode::Fast, Duration::from_secs(30)).await.unwrap();
    let cd = node.ctl.controldata().await.unwrap();
    assert!(!cd.data_checksums && !cd.wal_log_hints);
    assert!(!node.ctl.can_rewind().await.unwrap().is_possible());

    // Ferroni's default is wal_log_hints = on.
    node.configure(ferroni_postgres::ConfRole::Primary);
    node.ctl.start(true).await.unwrap();
    node.ctl.stop(StopMode::Fast, Duration::from_secs(30)).await.unwrap();
    assert_eq!(node.ctl.can_rewind().await.unwrap(), RewindSupport::Possible);
}

/// A rewind whose source is unreachable fails with pg_rewind's own message and leaves the data
/// directory as it was (crash recovery aside); neither step runs while postgres runs, nor with a
/// backup_label in an unclean data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_against_unreachable_source_fails_and_keeps_data() {
    let Some(run_as) = environment() else { return };
    let a = Node::new("node_d", run_as);
    a.init_primary().await;
    a.execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')")
        .await;

    // Refused while running.
    let nowhere = a.ctl.rewind_conninfo("127.0.0.1", common::free_port());
    let err = a.ctl.rewind(&nowhere, &RewindOptions::default()).await.unwrap_err();
    assert!(matches!(&err, PgError::Invalid(m) if m.contains("running")), "{err}");
    let err = a.ctl.crash_recovery().await.unwrap_err();
    assert!(matches!(&err, PgError::Invalid(m) if m.contains("running")), "{err}");

    a.ctl.stop(StopMode::Immediate, Duration::from_secs(30)).await.unwrap();
    let (sysid, tli) = a.ctl.sysid_and_timeline().await.unwrap();
    let conf_before = read(&a, "postgresql.conf");
    a.ctl.write_pgpass(None).unwrap();

    // A backup_label means "recover from me at the next start": no single-user run, no rewind.
    let label = a.ctl.data_dir().join("backup_label");
    std::fs::write(
        &label,
        "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n",
    )
    .unwrap();
    assert_eq!(a.ctl.crash_recovery().await.unwrap(), CrashRecovery::SkippedBackupLabel);
    let err = a.ctl.rewind(&nowhere, &RewindOptions::default()).await.unwrap_err();
    assert!(
        matches!(&err, PgError::Invalid(m) if m.contains("backup_label")),
        "{err}"
    );
    assert_eq!(state(&a), "in production");
    std::fs::remove_file(&label).unwrap();
    let started = Instant::now();
    let err = a.ctl.rewind(&nowhere, &RewindOptions::default()).await.unwrap_err();
    println!("unreachable source fails after {:?}: {err}", started.elapsed());
    assert!(matches!(err, PgError::Command { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("pg_rewind fails (exit status 1)"), "{msg}");
    assert!(
        err.stderr_tail()
            .iter()
            .any(|l| l.contains("Connection refused") || l.contains("could not connect")),
        "{:?}",
        err.stderr_tail()
    );

    // Crash recovery ran, nothing else changed.
    assert_eq!(state(&a), "shut down");
    assert_eq!(a.ctl.sysid_and_timeline().await.unwrap(), (sysid, tli));
    assert!(!a.ctl.data_dir().join("backup_label").exists());
    assert_eq!(conf::signal_file(a.ctl.data_dir()), SignalFile::None);
    assert_eq!(read(&a, "postgresql.conf"), conf_before);
    a.ctl.start(true).await.unwrap();
    assert_eq!(a.strings(ROWS).await, ["kept"]);
    let outcome = a.ctl.stop(StopMode::Fast, Duration::from_secs(30)).await.unwrap();
    assert!(matches!(outcome, StopOutcome::Stopped { .. }));
}

/// A crashed replica is not crash-recovered in single-user mode (that would write WAL its primary never
/// had): it restarts as a standby and streams again; a rewind is refused until it was stopped cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_replica_restarts_as_a_replica() {
    let Some(run_as) = environment() else { return };
    let (a, b) = primary_and_replica(run_as).await;
    a.execute("INSERT INTO t VALUES ('before crash')").await;
    b.wait_strings(ROWS, &["before crash", "common"]).await;
    b.ctl.stop(StopMode::Immediate, Duration::from_secs(30)).await.unwrap();
    assert_eq!(state(&b), "in archive recovery");

    assert_eq!(
        b.ctl.crash_recovery().await.unwrap(),
        CrashRecovery::SkippedInArchiveRecovery
    );
    assert_eq!(state(&b), "in archive recovery", "untouched");
    assert_eq!(conf::signal_file(b.ctl.data_dir()), SignalFile::Standby);
    b.ctl.write_pgpass(Some(("127.0.0.1", a.port))).unwrap();
    let source = b.ctl.rewind_conninfo("127.0.0.1", a.port);
    let err = b.ctl.rewind(&source, &RewindOptions::default()).await.unwrap_err();
    assert!(matches!(&err, PgError::Invalid(m) if m.contains("standby")), "{err}");

    b.ctl.start(true).await.unwrap();
    b.wait_streaming_from(&a).await;
    a.execute("INSERT INTO t VALUES ('after crash')").await;
    b.wait_strings(ROWS, &["after crash", "before crash", "common"]).await;

    // Stopped cleanly, the same standby can be "rewound": its history is the primary's.
    b.ctl.stop(StopMode::Fast, Duration::from_secs(30)).await.unwrap();
    assert_eq!(state(&b), "shut down in recovery");
    let report = b.ctl.rewind(&source, &RewindOptions::default()).await.unwrap();
    assert_eq!(report.outcome, RewindOutcome::NotNeeded, "{report:?}");
    assert_eq!(report.crash_recovery, CrashRecovery::NotNeeded);

    a.ctl.stop(StopMode::Fast, Duration::from_secs(30)).await.unwrap();
}
