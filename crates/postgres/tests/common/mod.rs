//! Harness shared by the real-PostgreSQL integration tests: per-test temporary directories owned by
//! `postgres` when running as root, free ports, a [`Node`] whose drop SIGQUITs its postmaster, probe
//! polling and SQL over TCP with the superuser password.
//!
//! Tests that need the binaries print a message and pass when `/usr/lib/postgresql/15/bin/initdb` is
//! absent ([`environment`] returns `None`).

// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

use ferroni_model::{Credentials, PostgresqlConfig};
use ferroni_postgres::conf::{self, ConfRole, StandbyParams};
use ferroni_postgres::{CloneOptions, PgControl, Probe, Prober, RunAs, pidfile};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const BIN: &str = "/usr/lib/postgresql/15/bin";
pub const SUPERUSER_PW: &str = "su pass'with:odd\\chars";
pub const REPLICATION_PW: &str = "repl:pass\\x";
pub const REWIND_PW: &str = "rewind-pw";

/// `None` (after saying why) when the machine cannot run these tests; else the identity to run
/// PostgreSQL as (`Some(postgres)` when the tests run as root).
pub fn environment() -> Option<Option<RunAs>> {
    if !Path::new(BIN).join("initdb").exists() {
        println!("skipping: {BIN}/initdb is absent");
        return None;
    }
    if nix::unistd::Uid::effective().is_root() {
        match RunAs::postgres_if_root() {
            Some(run_as) => Some(Some(run_as)),
            None => {
                println!("skipping: running as root and there is no postgres OS user");
                None
            }
        }
    } else {
        Some(None)
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn pg_config(dir: &Path, port: u16) -> PostgresqlConfig {
    let data = dir.join("data");
    // log_statement = all: the tests check that no password reaches the server log.
    let parameters = json!({"shared_buffers": "16MB", "fsync": false, "log_statement": "all"});
    PostgresqlConfig {
        listen: format!("127.0.0.1:{port}"),
        connect_address: format!("127.0.0.1:{port}"),
        data_dir: data.clone(),
        config_dir: data,
        bin_dir: BIN.into(),
        pgpass: dir.join("pgpass"),
        superuser: Credentials {
            username: "postgres".into(),
            password: Some(SUPERUSER_PW.into()),
        },
        replication: Credentials {
            username: "replicator".into(),
            password: Some(REPLICATION_PW.into()),
        },
        rewind: Some(Credentials {
            username: "rewinder".into(),
            password: Some(REWIND_PW.into()),
        }),
        parameters: parameters.as_object().unwrap().clone(),
        pg_hba: None,
        create_replica_methods: vec![],
        replica_methods: BTreeMap::new(),
        basebackup: vec![],
        recovery_conf: Default::default(),
        basebackup_attempts: 2,
        basebackup_retry_delay: 5,
        use_unix_socket: true,
        pg_ctl_timeout: 60,
        callbacks: BTreeMap::new(),
        use_pg_rewind: None,
        remove_data_directory_on_rewind_failure: false,
        remove_data_directory_on_diverged_timelines: false,
    }
}

/// One member: a temp dir, a port, its control. Dropping it kills its postmaster.
pub struct Node {
    pub ctl: PgControl,
    pub run_as: Option<RunAs>,
    pub port: u16,
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new(name: &str, run_as: Option<RunAs>) -> Node {
        let dir = tempfile::Builder::new().prefix("ferroni-pg-").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        if let Some(r) = run_as {
            r.chown(dir.path()).unwrap();
        }
        let port = free_port();
        let ctl = PgControl::new(pg_config(dir.path(), port), "batman", name).with_run_as(run_as);
        Node {
            ctl,
            run_as,
            port,
            name: name.to_string(),
            dir,
        }
    }

    pub fn prober(&self) -> Prober {
        Prober::new(self.ctl.cfg.clone(), self.run_as)
    }

    /// A shell script in the node's directory, executable by the run_as user.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        if let Some(r) = self.run_as {
            r.chown(&path).unwrap();
        }
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// initdb with `options`, managed configuration as a primary with `dynamic` parameters, start, roles.
    pub async fn init_primary_with(&self, options: &[(String, Option<String>)], dynamic: &Map<String, Value>) {
        self.ctl.initdb(options, &self.ctl.cfg.superuser).await.unwrap();
        self.configure_with(ConfRole::Primary, dynamic);
        self.ctl.start(true).await.unwrap();
        self.ctl.create_roles().await.unwrap();
    }

    /// initdb with data checksums, primary, started, roles created.
    pub async fn init_primary(&self) {
        let options = [
            ("encoding".to_string(), Some("UTF8".to_string())),
            ("data-checksums".to_string(), None),
        ];
        self.init_primary_with(&options, &Map::new()).await;
    }

    pub fn configure(&self, role: ConfRole) {
        self.configure_with(role, &Map::new());
    }

    pub fn configure_with(&self, role: ConfRole, dynamic: &Map<String, Value>) {
        let rendered = self.ctl.render_conf(dynamic, &role);
        assert!(rendered.warnings.is_empty(), "{:?}", rendered.warnings);
        self.ctl.write_conf(&rendered).unwrap();
        self.ctl.write_pg_hba(None).unwrap();
        self.ctl.set_signal_file(role.signal_file()).unwrap();
    }

    /// Managed configuration as a streaming replica of `upstream` (pgpass included).
    pub fn configure_replica_of(&self, upstream: &Node) {
        self.ctl.write_pgpass(Some(("127.0.0.1", upstream.port))).unwrap();
        let conninfo = conf::primary_conninfo("127.0.0.1", upstream.port, &self.ctl.cfg, &self.name);
        self.configure(ConfRole::Replica(StandbyParams {
            primary_conninfo: Some(conninfo),
            ..Default::default()
        }));
    }

    /// pg_basebackup from `primary`, configure as its replica, start, wait until it streams.
    pub async fn clone_and_follow(&self, primary: &Node) {
        self.ctl.write_pgpass(Some(("127.0.0.1", primary.port))).unwrap();
        let source = conf::clone_conninfo("127.0.0.1", primary.port, &self.ctl.cfg);
        let options = [("checkpoint".to_string(), Some("fast".to_string()))];
        self.ctl
            .basebackup(&source, &options, CloneOptions::default())
            .await
            .unwrap();
        self.configure_replica_of(primary);
        self.ctl.start(true).await.unwrap();
        self.wait_streaming_from(primary).await;
    }

    /// Wait until the WAL receiver streams from `upstream`.
    pub async fn wait_streaming_from(&self, upstream: &Node) -> Probe {
        let mut prober = self.prober();
        wait_for(&mut prober, "streaming replica", |p| {
            p.wal_receiver
                .as_ref()
                .is_some_and(|r| r.status == "streaming" && r.sender_port == Some(upstream.port))
        })
        .await
    }

    /// A superuser connection over TCP.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect_tcp(self.port, "postgres", SUPERUSER_PW).await.unwrap()
    }

    pub async fn execute(&self, sql: &str) {
        self.client().await.batch_execute(sql).await.unwrap();
    }

    /// The first column of every row, as text.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        let rows = self.client().await.query(sql, &[]).await.unwrap();
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    }

    /// Poll `sql` until it returns `want` (a replica replaying).
    pub async fn wait_strings(&self, sql: &str, want: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = match connect_tcp(self.port, "postgres", SUPERUSER_PW).await {
                Ok(c) => c
                    .query(sql, &[])
                    .await
                    .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>())
                    .ok(),
                Err(_) => None,
            };
            if got.as_deref().is_some_and(|g| g == want) {
                return;
            }
            assert!(Instant::now() < deadline, "{sql} gives {got:?}, expected {want:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let Some(pf) = pidfile::running_postmaster(self.ctl.data_dir()) else {
            return;
        };
        let _ = kill(Pid::from_raw(pf.pid), Signal::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while pidfile::is_process_alive(pf.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub async fn wait_for<F: FnMut(&Probe) -> bool>(prober: &mut Prober, what: &str, mut f: F) -> Probe {
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

pub async fn connect_tcp(
    port: u16,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(user)
        .password(password)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}
