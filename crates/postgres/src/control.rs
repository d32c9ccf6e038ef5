//! Effects on the local PostgreSQL: initdb, start/stop/restart/reload/promote, roles after bootstrap,
//! replica creation (pg_basebackup and custom methods), custom bootstrap, post-bootstrap scripts and
//! data directory housekeeping. The daemon decides *when*; [`PgControl`] only knows *how*.
//!
//! Mechanisms:
//! - Start: `pg_ctl start -l <data_dir>/postmaster.log -o --config-file=...`. pg_ctl forks the postmaster
//!   into its own session (setsid) and exits, so the postmaster is neither our child (no zombie to reap
//!   unless the daemon is PID 1, which must then reap orphans) nor in our process group (freezing or
//!   killing the daemon does not touch it). Its stdout/stderr go to the log file, not into our log.
//! - Stop/reload: signals to the postmaster pid from `postmaster.pid` (SIGTERM smart, SIGINT fast,
//!   SIGQUIT immediate, SIGHUP reload), then polling until the process is gone: quicker than pg_ctl.
//! - Promote: `pg_ctl promote -w`, then waiting until `pg_is_in_recovery()` is false.
//! - Passwords never reach a command line or an environment variable: initdb gets a temporary pwfile
//!   (0600, removed afterwards), libpq tools get `PGPASSFILE`, roles get escaped SQL literals inside a
//!   transaction that turns statement logging off.
//!
//! Failure: every method returns [`PgError`] (or [`CloneError`] for replica creation) saying what was
//! being done, with the child's stderr tail where there is one.

use crate::client::{self, Target, quote_ident, quote_literal};
use crate::conf::{self, ConfInput, ConfRole, RenderedConf, SignalFile};
use crate::conninfo;
use crate::controldata::ControlData;
use crate::error::{CloneError, PgError};
use crate::fsutil;
use crate::pidfile::{self, PidFile};
use crate::runner::{Cmd, RunAs, Stream, describe_status};
use ferroni_model::{Credentials, CustomBootstrap, PostgresqlConfig, ReplicaMethod};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Map, Value};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// initdb options Patroni forbids: ferroni sets them itself or they make no sense for a cluster.
const INITDB_FORBIDDEN: &[&str] = &["pgdata", "nosync", "pwfile", "sync-only", "version"];
/// pg_basebackup options ferroni sets itself or that would produce something we cannot start.
const BASEBACKUP_FORBIDDEN: &[&str] = &[
    "pgdata",
    "format",
    "wal-method",
    "xlog-method",
    "gzip",
    "version",
    "dbname",
    "host",
    "port",
    "username",
    "password",
];
/// How often a stop or start is polled.
const POLL: Duration = Duration::from_millis(20);
/// Grace for pg_ctl itself on top of its own `-t` timeout.
const PG_CTL_GRACE: Duration = Duration::from_secs(10);

/// Shutdown modes and the postmaster signal for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// SIGTERM: wait for clients to disconnect.
    Smart,
    /// SIGINT: disconnect clients, checkpoint, exit cleanly.
    Fast,
    /// SIGQUIT: exit at once; crash recovery on next start.
    Immediate,
}

impl StopMode {
    fn signal(self) -> Signal {
        match self {
            StopMode::Smart => Signal::SIGTERM,
            StopMode::Fast => Signal::SIGINT,
            StopMode::Immediate => Signal::SIGQUIT,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    NotRunning,
    Stopped { pid: i32, took: Duration },
}

/// One pg_basebackup progress report (`52341/113322 kB (46%), 0/1 tablespace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasebackupProgress {
    pub done_kb: u64,
    pub total_kb: u64,
    pub percent: u8,
}

impl BasebackupProgress {
    pub fn parse(line: &str) -> Option<BasebackupProgress> {
        let (sizes, rest) = line.trim_start().split_once(" kB (")?;
        let (done, total) = sizes.split_once('/')?;
        let percent = rest.split_once("%)")?.0;
        Some(BasebackupProgress {
            done_kb: done.trim().parse().ok()?,
            total_kb: total.trim().parse().ok()?,
            percent: percent.trim().parse().ok()?,
        })
    }
}

pub type ProgressHook = Box<dyn FnMut(BasebackupProgress) + Send>;

/// How pg_basebackup is retried and observed. Defaults are Patroni's: 2 attempts, 5 s apart.
pub struct CloneOptions {
    pub attempts: u32,
    pub retry_delay: Duration,
    /// Add `--progress` (unless the options already have it) so progress can be reported.
    pub progress: bool,
    pub on_progress: Option<ProgressHook>,
    /// Told about a failed attempt (attempt number, error, delay before the next one).
    pub on_retry: Option<RetryHook>,
}

pub type RetryHook = Box<dyn FnMut(u32, &PgError, Duration) + Send>;

impl Default for CloneOptions {
    fn default() -> Self {
        CloneOptions {
            attempts: 2,
            retry_delay: Duration::from_secs(5),
            progress: true,
            on_progress: None,
            on_retry: None,
        }
    }
}

/// Acts on the PostgreSQL of one member.
#[derive(Clone)]
pub struct PgControl {
    pub cfg: PostgresqlConfig,
    pub scope: String,
    pub name: String,
    /// Run binaries as this user (tests/harnesses running as root); `None` in the daemon.
    pub run_as: Option<RunAs>,
}

// Hand-written: the configuration holds passwords and must never reach a log through `{:?}`.
impl std::fmt::Debug for PgControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgControl")
            .field("data_dir", &self.cfg.data_dir)
            .field("scope", &self.scope)
            .field("name", &self.name)
            .field("run_as", &self.run_as)
            .finish_non_exhaustive()
    }
}

impl PgControl {
    pub fn new(cfg: PostgresqlConfig, scope: impl Into<String>, name: impl Into<String>) -> Self {
        PgControl {
            cfg,
            scope: scope.into(),
            name: name.into(),
            run_as: None,
        }
    }

    pub fn with_run_as(mut self, run_as: Option<RunAs>) -> Self {
        self.run_as = run_as;
        self
    }

    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
    }

    /// Where the postmaster's stdout/stderr go (what it logs before/without `logging_collector`).
    pub fn log_file(&self) -> PathBuf {
        self.cfg.data_dir.join("postmaster.log")
    }

    /// The live postmaster of our data directory.
    pub fn postmaster(&self) -> Option<PidFile> {
        pidfile::running_postmaster(&self.cfg.data_dir)
    }

    pub fn is_running(&self) -> bool {
        self.postmaster().is_some()
    }

    fn cmd(&self, step: &str, binary: &str) -> Cmd {
        Cmd::new(step, self.cfg.bin(binary)).run_as(self.run_as)
    }

    // ----- configuration files -----

    /// Render `postgresql.conf` for `role` with the dynamic `postgresql.parameters`.
    pub fn render_conf(&self, dynamic: &Map<String, Value>, role: &ConfRole) -> RenderedConf {
        conf::render_postgresql_conf(&ConfInput {
            pg: &self.cfg,
            scope: &self.scope,
            dynamic,
            role,
        })
    }

    pub fn write_conf(&self, rendered: &RenderedConf) -> Result<(), PgError> {
        conf::write_postgresql_conf(&self.cfg, rendered, self.run_as)
    }

    /// Write `pg_hba.conf` from `lines` (local, dynamic or bootstrap `pg_hba`, the daemon picks), or the
    /// defaults when `None`.
    pub fn write_pg_hba(&self, lines: Option<&[String]>) -> Result<(), PgError> {
        conf::write_pg_hba(&self.cfg, &conf::render_pg_hba(lines, &self.cfg), self.run_as)
    }

    /// Write the pgpass file with the entries the daemon needs (replication towards `upstream`).
    pub fn write_pgpass(&self, upstream: Option<(&str, u16)>) -> Result<(), PgError> {
        conf::write_pgpass(
            &self.cfg.pgpass,
            &conf::pgpass_entries(&self.cfg, upstream),
            self.run_as,
        )
    }

    pub fn set_signal_file(&self, which: SignalFile) -> Result<(), PgError> {
        conf::set_signal_file(&self.cfg.data_dir, which, self.run_as)
    }

    // ----- data directory -----

    /// Create the data directory (mode 0700) if missing.
    pub async fn ensure_data_dir(&self) -> Result<(), PgError> {
        let (dir, owner) = (self.cfg.data_dir.clone(), self.run_as);
        blocking(move || fsutil::ensure_private_dir(&dir, owner)).await
    }

    /// Remove the data directory's contents, keeping the directory (mode 0700).
    pub async fn empty_data_dir(&self) -> Result<(), PgError> {
        let (dir, owner) = (self.cfg.data_dir.clone(), self.run_as);
        tracing::info!(data_dir = %dir.display(), "empty data directory");
        // A daemon killed mid-clone leaves pg_basebackup's WAL-streaming child behind, still
        // writing into this directory and pinning WAL on the source through its slot.
        for pid in stray_basebackups(&dir) {
            tracing::warn!(pid, "killing a pg_basebackup left over from an interrupted clone");
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        blocking(move || {
            fsutil::ensure_private_dir(&dir, owner)?;
            fsutil::remove_contents(&dir)
        })
        .await
    }

    /// Rename the data directory to `<data_dir>.failed` (replacing an older one) after a failed
    /// bootstrap, keeping the evidence. Returns the new path, or `None` when there was no data directory.
    pub async fn move_data_dir_aside(&self) -> Result<Option<PathBuf>, PgError> {
        let dir = self.cfg.data_dir.clone();
        blocking(move || {
            if !dir.exists() {
                return Ok(None);
            }
            let mut failed = dir.clone().into_os_string();
            failed.push(".failed");
            let failed = PathBuf::from(failed);
            if failed.exists() {
                std::fs::remove_dir_all(&failed).map_err(PgError::io(format!("remove {}", failed.display())))?;
            }
            std::fs::rename(&dir, &failed).map_err(PgError::io(format!(
                "rename {} to {}",
                dir.display(),
                failed.display()
            )))?;
            tracing::warn!(from = %dir.display(), to = %failed.display(), "move data directory aside");
            Ok(Some(failed))
        })
        .await
    }

    pub async fn controldata(&self) -> Result<ControlData, PgError> {
        ControlData::read(&self.cfg, self.run_as).await
    }

    /// System identifier and timeline from `pg_controldata`.
    pub async fn sysid_and_timeline(&self) -> Result<(String, u32), PgError> {
        let cd = self.controldata().await?;
        Ok((cd.sysid, cd.timeline))
    }

    // ----- bootstrap -----

    /// Run initdb with `options` (`--key=value` / `--flag`), the superuser name and, if it has one, its
    /// password through a temporary pwfile. Local connections are trusted and TCP ones need a password
    /// (our own pg_hba.conf replaces initdb's before the first start anyway).
    pub async fn initdb(&self, options: &[(String, Option<String>)], superuser: &Credentials) -> Result<(), PgError> {
        if let Some((bad, _)) = options.iter().find(|(k, _)| INITDB_FORBIDDEN.contains(&k.as_str())) {
            return Err(PgError::Invalid(format!("initdb option {bad:?} is not allowed")));
        }
        self.ensure_data_dir().await?;
        let pwfile = match &superuser.password {
            Some(pw) => Some(SecretFile::create("pwfile", &format!("{pw}\n"), self.run_as)?),
            None => None,
        };
        let mut cmd = self
            .cmd("initdb", "initdb")
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"]);
        cmd = cmd.args(long_options(options));
        cmd = cmd.arg(format!("--username={}", superuser.username));
        if let Some(pwfile) = &pwfile {
            cmd = cmd.arg(format!("--pwfile={}", pwfile.path.display()));
        }
        cmd.arg("-D").arg(&self.cfg.data_dir).run_checked().await?;
        Ok(())
    }

    /// Run a custom bootstrap method: `command [--scope=S --datadir=D] [--key=value ...]`. A relative
    /// program is looked up in `tools_dir` (the ferroni binary's directory) first.
    pub async fn run_custom_bootstrap(&self, method: &CustomBootstrap, tools_dir: &Path) -> Result<(), PgError> {
        let (program, mut args) = resolve_command(&method.command, tools_dir)?;
        if !method.no_params {
            args.push(format!("--scope={}", self.scope));
            args.push(format!("--datadir={}", self.cfg.data_dir.display()));
        }
        args.extend(method.extra_args.iter().map(|(k, v)| format!("--{k}={v}")));
        tracing::info!(method = %method.name, "run custom bootstrap");
        Cmd::new(format!("bootstrap:{}", method.name), program)
            .args(args)
            .run_as(self.run_as)
            .run_checked()
            .await?;
        Ok(())
    }

    /// Run `bootstrap.post_bootstrap`: the script (shell words) gets the superuser connection string as
    /// its only extra argument; the password comes from `PGPASSFILE`, and `PGOPTIONS` keeps its
    /// statements from waiting for a synchronous standby or timing out.
    pub async fn run_post_bootstrap(&self, script: &str, superuser_conninfo: &str) -> Result<(), PgError> {
        conninfo::ensure_no_password(superuser_conninfo).map_err(PgError::Invalid)?;
        let words = ferroni_model::shellwords::split(script)
            .map_err(|e| PgError::Invalid(format!("post_bootstrap {script:?}: {e}")))?;
        let (program, args) = words
            .split_first()
            .ok_or_else(|| PgError::Invalid("post_bootstrap is empty".into()))?;
        Cmd::new("post_bootstrap", program)
            .args(args)
            .arg(superuser_conninfo)
            .env("PGPASSFILE", &self.cfg.pgpass)
            .env("PGOPTIONS", "-c synchronous_commit=local -c statement_timeout=0")
            .run_as(self.run_as)
            .run_checked()
            .await?;
        Ok(())
    }

    /// Connection string for the local server as the superuser, without password.
    pub fn superuser_conninfo(&self) -> String {
        let target = self.local_target();
        let port = target.port().to_string();
        let host = target.host();
        conninfo::build(&[
            ("dbname", "postgres"),
            ("user", self.cfg.superuser.username.as_str()),
            ("host", host.as_str()),
            ("port", port.as_str()),
        ])
    }

    /// The running server's socket, else where our configuration puts it.
    fn local_target(&self) -> Target {
        if let Some(pf) = self.postmaster() {
            return Target::from_pidfile(&pf, &self.cfg);
        }
        match conf::socket_dir(&self.cfg) {
            Some(dir) => Target::Socket {
                dir,
                port: self.cfg.port(),
            },
            None => Target::Tcp {
                host: "127.0.0.1".into(),
                port: self.cfg.port(),
            },
        }
    }

    /// Create or update the replication and rewind roles after bootstrap, and set the superuser's
    /// password, in one transaction.
    ///
    /// Statement logging is switched off by a first round trip: the server decides whether to log a
    /// query string when it receives it, so settings in the same string would come too late and the
    /// passwords would reach the server log with `log_statement = all`.
    pub async fn create_roles(&self) -> Result<(), PgError> {
        let pf = self.postmaster().ok_or(PgError::NotRunning)?;
        let client = client::connect(&self.cfg, &Target::from_pidfile(&pf, &self.cfg), Duration::from_secs(5)).await?;
        let timeout = Duration::from_secs(30);
        let quiet = "BEGIN; SET LOCAL log_statement = 'none'; SET LOCAL log_min_duration_statement = -1; \
                     SET LOCAL log_min_error_statement = 'panic'; SET LOCAL synchronous_commit = 'local'";
        client::with_timeout(
            &client,
            timeout,
            "silence statement logging",
            client.batch_execute(quiet),
        )
        .await?;
        let statements = self.role_statements(&client).await?;
        // A failure leaves the transaction open; dropping the connection rolls it back.
        client::with_timeout(&client, timeout, "create roles", client.batch_execute(&statements)).await?;
        client::with_timeout(&client, timeout, "commit roles", client.batch_execute("COMMIT")).await?;
        let rewind = self.cfg.rewind.as_ref().map(|r| &r.username);
        tracing::info!(replication = %self.cfg.replication.username, ?rewind, "roles are in place");
        Ok(())
    }

    /// The statements `create_roles` runs; they embed passwords and must never be logged.
    async fn role_statements(&self, client: &tokio_postgres::Client) -> Result<String, PgError> {
        let su = &self.cfg.superuser;
        let mut statements = Vec::new();
        if let Some(pw) = &su.password {
            let (name, pw) = (quote_ident(&su.username), quote_literal(pw));
            statements.push(format!("ALTER ROLE {name} WITH PASSWORD {pw}"));
        }
        let repl = &self.cfg.replication;
        if repl.username != su.username {
            statements.push(role_statement(client, repl, "REPLICATION LOGIN").await?);
        }
        if let Some(rewind) = self.cfg.rewind.as_ref().filter(|r| r.username != su.username) {
            statements.push(role_statement(client, rewind, "LOGIN").await?);
            statements.extend(rewind_grants(&rewind.username));
        }
        Ok(statements.join(";\n"))
    }

    // ----- lifecycle -----

    /// Start the server with our `postgresql.conf`. With `wait`, return once it accepts connections
    /// (pg_ctl's `-w -t pg_ctl_timeout`; a replica that is still catching up gives
    /// [`PgError::Timeout`] while it keeps starting). Without, return once the postmaster runs.
    /// Starting a running server is a no-op.
    pub async fn start(&self, wait: bool) -> Result<(), PgError> {
        if let Some(pf) = self.postmaster() {
            tracing::info!(pid = pf.pid, "postgres is already running");
            return Ok(());
        }
        self.remove_stale_pidfile()?;
        let timeout = Duration::from_secs(u64::from(self.cfg.pg_ctl_timeout.max(1)));
        let config_file = self.cfg.config_dir.join("postgresql.conf");
        let cmd = self
            .cmd("pg_ctl start", "pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(&self.cfg.data_dir)
            .arg("-l")
            .arg(self.log_file())
            .arg("-o")
            .arg(format!(
                "--config-file={}",
                sh_quote(&config_file.display().to_string())
            ))
            .args(if wait {
                vec!["-w".to_string(), "-t".into(), timeout.as_secs().to_string()]
            } else {
                vec!["-W".into()]
            })
            .env("LC_MESSAGES", "C")
            .timeout(Some(timeout + PG_CTL_GRACE));
        let out = cmd.run().await?;
        if !out.success() {
            return Err(self.start_failure(&out.status, out.stderr_tail, timeout));
        }
        if !wait {
            self.wait_for_postmaster(Duration::from_secs(10)).await?;
        }
        tracing::info!(pid = ?self.postmaster().map(|p| p.pid), "postgres starts");
        Ok(())
    }

    fn start_failure(&self, status: &std::process::ExitStatus, mut tail: Vec<String>, timeout: Duration) -> PgError {
        let timed_out = tail.iter().any(|l| l.contains("did not start in time"));
        tail.extend(self.log_tail(10));
        if timed_out && self.is_running() {
            return PgError::Timeout {
                step: "pg_ctl start".into(),
                timeout,
                stderr_tail: tail,
            };
        }
        PgError::Command {
            step: "pg_ctl start".into(),
            status: describe_status(status),
            stderr_tail: tail,
        }
    }

    /// A `postmaster.pid` whose pid is dead or reused by another program would make the server refuse
    /// to start ("lock file already exists"). One naming a live postmaster under another path (the
    /// directory was renamed while running) is kept: removing it would allow two postmasters on the
    /// same data.
    fn remove_stale_pidfile(&self) -> Result<(), PgError> {
        let path = PidFile::path(&self.cfg.data_dir);
        if let Some(pf) = PidFile::read(&self.cfg.data_dir).filter(pidfile::is_live_postmaster) {
            return Err(PgError::Invalid(format!(
                "postmaster.pid names running postmaster {} for {}; not starting a second one",
                pf.pid,
                pf.data_dir.display()
            )));
        }
        if path.exists() {
            tracing::info!(path = %path.display(), "remove stale postmaster.pid");
            std::fs::remove_file(&path).map_err(PgError::io(format!("remove {}", path.display())))?;
        }
        Ok(())
    }

    async fn wait_for_postmaster(&self, limit: Duration) -> Result<(), PgError> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.is_running() {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        Err(PgError::Timeout {
            step: "wait for postmaster.pid".into(),
            timeout: limit,
            stderr_tail: self.log_tail(10),
        })
    }

    /// The last lines of the postmaster log (why a start failed).
    pub fn log_tail(&self, lines: usize) -> Vec<String> {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|l| l.to_string())
            .collect()
    }

    /// Signal the postmaster and wait until it is gone.
    pub async fn stop(&self, mode: StopMode, timeout: Duration) -> Result<StopOutcome, PgError> {
        let Some(pf) = self.postmaster() else {
            return Ok(StopOutcome::NotRunning);
        };
        let started = Instant::now();
        tracing::info!(pid = pf.pid, ?mode, "stop postgres");
        if kill(Pid::from_raw(pf.pid), mode.signal()).is_err() {
            return Ok(StopOutcome::NotRunning);
        }
        while pidfile::is_process_alive(pf.pid) {
            if started.elapsed() > timeout {
                return Err(PgError::Timeout {
                    step: format!("{mode:?} shutdown"),
                    timeout,
                    stderr_tail: self.log_tail(5),
                });
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(StopOutcome::Stopped {
            pid: pf.pid,
            took: started.elapsed(),
        })
    }

    pub async fn restart(&self, mode: StopMode, timeout: Duration, wait: bool) -> Result<(), PgError> {
        self.stop(mode, timeout).await?;
        self.start(wait).await
    }

    /// SIGHUP: re-read the configuration files.
    pub fn reload(&self) -> Result<(), PgError> {
        let pf = self.postmaster().ok_or(PgError::NotRunning)?;
        kill(Pid::from_raw(pf.pid), Signal::SIGHUP).map_err(|e| PgError::io("send SIGHUP to postmaster")(e.into()))
    }

    /// Promote a standby and wait until it accepts writes.
    pub async fn promote(&self) -> Result<(), PgError> {
        let pf = self.postmaster().ok_or(PgError::NotRunning)?;
        let timeout = Duration::from_secs(u64::from(self.cfg.pg_ctl_timeout.max(1)));
        self.cmd("pg_ctl promote", "pg_ctl")
            .args(["promote", "-w", "-t", &timeout.as_secs().to_string(), "-D"])
            .arg(&self.cfg.data_dir)
            .env("LC_MESSAGES", "C")
            .timeout(Some(timeout + PG_CTL_GRACE))
            .run_checked()
            .await?;
        // pg_ctl returns when the control file says "in production"; recovery ends a moment later.
        let client = client::connect(&self.cfg, &Target::from_pidfile(&pf, &self.cfg), Duration::from_secs(2)).await?;
        let deadline = Instant::now() + timeout;
        loop {
            let row = client::with_timeout(
                &client,
                Duration::from_secs(2),
                "query pg_is_in_recovery",
                client.query_one("SELECT pg_catalog.pg_is_in_recovery()", &[]),
            )
            .await?;
            if !row.get::<_, bool>(0) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(PgError::Timeout {
                    step: "wait for end of recovery".into(),
                    timeout,
                    stderr_tail: vec![],
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    // ----- replica creation -----

    /// Clone the data directory with `pg_basebackup --pgdata=D -X stream --dbname=<conninfo> <options>`
    /// from `source_conninfo` (no password: it comes from `PGPASSFILE`). The data directory is emptied
    /// before each attempt and after the last failure.
    pub async fn basebackup(
        &self,
        source_conninfo: &str,
        options: &[(String, Option<String>)],
        opts: CloneOptions,
    ) -> Result<(), CloneError> {
        let fail = |e| CloneError::new("basebackup", e);
        validate_basebackup_options(options).map_err(fail)?;
        conninfo::ensure_no_password(source_conninfo).map_err(|e| fail(PgError::Invalid(e)))?;
        let add_progress = opts.progress && !options.iter().any(|(k, _)| k == "progress");
        let hook = Arc::new(Mutex::new(ProgressLog {
            hook: opts.on_progress,
            last_logged: None,
        }));
        let attempts = opts.attempts.max(1);
        let mut on_retry = opts.on_retry;
        let mut last_error = None;
        for attempt in 1..=attempts {
            self.empty_data_dir().await.map_err(fail)?;
            let mut cmd = self
                .cmd("pg_basebackup", "pg_basebackup")
                .arg(format!("--pgdata={}", self.cfg.data_dir.display()))
                .args(["-X", "stream"])
                .arg(format!("--dbname={source_conninfo}"))
                .args(long_options(options))
                .env("PGPASSFILE", &self.cfg.pgpass)
                .env("LC_MESSAGES", "C")
                .quiet_if(|l| BasebackupProgress::parse(l).is_some());
            if add_progress {
                cmd = cmd.arg("--progress");
            }
            let hook = hook.clone();
            cmd = cmd.on_line(Box::new(move |stream, line| {
                if let (Stream::Stderr, Some(p)) = (stream, BasebackupProgress::parse(line)) {
                    hook.lock().unwrap_or_else(|e| e.into_inner()).report(p);
                }
            }));
            tracing::info!(attempt, attempts, "run pg_basebackup");
            match cmd.run_checked().await {
                Ok(_) => {
                    // The source's postmaster log came along; it describes another server.
                    let _ = std::fs::remove_file(self.log_file());
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "pg_basebackup fails");
                    last_error = Some(e);
                }
            }
            if attempt < attempts {
                tracing::info!(
                    attempt = attempt + 1,
                    attempts,
                    "next pg_basebackup attempt in {} s",
                    opts.retry_delay.as_secs()
                );
                if let (Some(hook), Some(e)) = (on_retry.as_mut(), last_error.as_ref()) {
                    hook(attempt, e, opts.retry_delay);
                }
                tokio::time::sleep(opts.retry_delay).await;
            }
        }
        if let Err(e) = self.empty_data_dir().await {
            tracing::warn!(error = %e, "cannot clean the data directory after a failed basebackup");
        }
        Err(fail(last_error.expect("at least one attempt ran")))
    }

    /// Run a custom replica method: `command [--scope=S --role=replica --datadir=D --connstring=C]
    /// [--key=value ...]`. `conninfo` is `None` for a `no_leader` method (an empty `--connstring=`). The
    /// data directory is emptied before and after a failure unless `keep_data`.
    pub async fn run_replica_method(
        &self,
        method: &ReplicaMethod,
        conninfo: Option<&str>,
        tools_dir: &Path,
    ) -> Result<(), CloneError> {
        let fail = |e| CloneError::new(method.name.clone(), e);
        if let Some(c) = conninfo {
            conninfo::ensure_no_password(c).map_err(|e| fail(PgError::Invalid(e)))?;
        }
        let (program, mut args) = resolve_command(&method.command, tools_dir).map_err(fail)?;
        if !method.no_params {
            args.push(format!("--scope={}", self.scope));
            args.push("--role=replica".into());
            args.push(format!("--datadir={}", self.cfg.data_dir.display()));
            args.push(format!("--connstring={}", conninfo.unwrap_or_default()));
        }
        args.extend(method.extra_args.iter().map(|(k, v)| format!("--{k}={v}")));
        if !method.keep_data {
            self.empty_data_dir().await.map_err(fail)?;
        }
        tracing::info!(method = %method.name, "run replica method");
        let result = Cmd::new(format!("replica:{}", method.name), program)
            .args(args)
            .env("PGPASSFILE", &self.cfg.pgpass)
            .run_as(self.run_as)
            .run_checked()
            .await;
        if let Err(e) = result {
            if !method.keep_data
                && let Err(clean) = self.empty_data_dir().await
            {
                tracing::warn!(error = %clean, "cannot clean the data directory after a failed replica method");
            }
            return Err(fail(e));
        }
        Ok(())
    }
}

/// Logs progress at every 10 % step and forwards every report to the caller's hook.
struct ProgressLog {
    hook: Option<ProgressHook>,
    last_logged: Option<u8>,
}

impl ProgressLog {
    fn report(&mut self, p: BasebackupProgress) {
        let decile = p.percent / 10;
        if self.last_logged != Some(decile) {
            self.last_logged = Some(decile);
            tracing::info!(
                done_kb = p.done_kb,
                total_kb = p.total_kb,
                percent = p.percent,
                "pg_basebackup progress"
            );
        }
        if let Some(hook) = self.hook.as_mut() {
            hook(p);
        }
    }
}

/// `CREATE ROLE` or `ALTER ROLE` (when it exists) with `attributes` and the password, if any.
async fn role_statement(
    client: &tokio_postgres::Client,
    creds: &Credentials,
    attributes: &str,
) -> Result<String, PgError> {
    let exists = client::with_timeout(
        client,
        Duration::from_secs(5),
        "look up role",
        client.query_opt(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
            &[&creds.username],
        ),
    )
    .await?
    .is_some();
    let verb = if exists { "ALTER" } else { "CREATE" };
    let password = creds
        .password
        .as_deref()
        .map(|pw| format!(" PASSWORD {}", quote_literal(pw)))
        .unwrap_or_default();
    Ok(format!(
        "{verb} ROLE {} WITH {attributes}{password}",
        quote_ident(&creds.username)
    ))
}

/// What pg_rewind needs from a non-superuser on PostgreSQL 11+.
fn rewind_grants(user: &str) -> Vec<String> {
    [
        "pg_catalog.pg_ls_dir(text, boolean, boolean)",
        "pg_catalog.pg_stat_file(text, boolean)",
        "pg_catalog.pg_read_binary_file(text)",
        "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
    ]
    .iter()
    .map(|f| format!("GRANT EXECUTE ON FUNCTION {f} TO {}", quote_ident(user)))
    .collect()
}

fn validate_basebackup_options(options: &[(String, Option<String>)]) -> Result<(), PgError> {
    for (key, value) in options {
        if BASEBACKUP_FORBIDDEN.contains(&key.as_str()) {
            return Err(PgError::Invalid(format!("basebackup option {key:?} is not allowed")));
        }
        // Client-side compression produces a tar we could not start from.
        if key == "compress" && !value.as_deref().unwrap_or_default().starts_with("server-") {
            return Err(PgError::Invalid(
                "basebackup option \"compress\" must be server-side (server-...)".into(),
            ));
        }
    }
    Ok(())
}

/// `--key=value` or `--flag`.
fn long_options(options: &[(String, Option<String>)]) -> Vec<String> {
    options
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("--{k}={v}"),
            None => format!("--{k}"),
        })
        .collect()
}

/// Program and leading arguments of a configured command; a relative program found in `tools_dir`
/// (next to the ferroni binary) is taken from there, otherwise it is looked up in `PATH`.
fn resolve_command(command: &[String], tools_dir: &Path) -> Result<(PathBuf, Vec<String>), PgError> {
    let (first, rest) = command
        .split_first()
        .ok_or_else(|| PgError::Invalid("the method has an empty command".into()))?;
    let program = Path::new(first);
    let program = if program.is_absolute() || !tools_dir.join(program).is_file() {
        program.to_path_buf()
    } else {
        tools_dir.join(program)
    };
    Ok((program, rest.to_vec()))
}

/// Quote for `sh`: pg_ctl hands `-o` to a shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A file holding a secret for a child (initdb's pwfile): mode 0600, readable by `run_as`, removed on
/// drop whatever happens.
struct SecretFile {
    path: PathBuf,
}

impl SecretFile {
    fn create(kind: &str, contents: &str, run_as: Option<RunAs>) -> Result<SecretFile, PgError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let unique = format!(
            "ferroni-{kind}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        // create_new: never write a secret through a symlink someone planted.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(PgError::io(format!("create {}", path.display())))?;
        let secret = SecretFile { path };
        file.write_all(contents.as_bytes())
            .map_err(PgError::io(format!("write {}", secret.path.display())))?;
        if let Some(owner) = run_as {
            owner.chown(&secret.path)?;
        }
        Ok(secret)
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, PgError> + Send + 'static) -> Result<T, PgError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PgError::io("run file system task")(std::io::Error::other(e)))?
}

/// pg_basebackup processes (the main one and its forked WAL streamer share the command line) that
/// write into `data_dir`.
fn stray_basebackups(data_dir: &Path) -> Vec<i32> {
    let wanted = format!("--pgdata={}", data_dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let mut args = raw.split(|b| *b == 0).map(String::from_utf8_lossy);
            let is_basebackup = args.next().is_some_and(|a| a.ends_with("pg_basebackup"));
            is_basebackup && args.any(|a| a == wanted)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_progress_lines() {
        let p = BasebackupProgress::parse("  52341/113322 kB (46%), 0/1 tablespace").unwrap();
        assert_eq!(
            p,
            BasebackupProgress {
                done_kb: 52341,
                total_kb: 113322,
                percent: 46
            }
        );
        let p = BasebackupProgress::parse("113322/113322 kB (100%), 1/1 tablespace (/data/base/1/123)").unwrap();
        assert_eq!(p.percent, 100);
        assert!(BasebackupProgress::parse("pg_basebackup: error: connection failed").is_none());
        assert!(BasebackupProgress::parse("waiting for checkpoint").is_none());
    }

    #[test]
    fn forbids_dangerous_basebackup_options() {
        let opt = |k: &str, v: Option<&str>| vec![(k.to_string(), v.map(str::to_string))];
        assert!(validate_basebackup_options(&opt("max-rate", Some("100M"))).is_ok());
        assert!(validate_basebackup_options(&opt("verbose", None)).is_ok());
        assert!(validate_basebackup_options(&opt("format", Some("tar"))).is_err());
        assert!(validate_basebackup_options(&opt("compress", Some("gzip"))).is_err());
        assert!(validate_basebackup_options(&opt("compress", Some("server-gzip"))).is_ok());
        assert_eq!(
            long_options(&[("a".into(), Some("1".into())), ("b".into(), None)]),
            ["--a=1", "--b"]
        );
    }

    #[test]
    fn resolves_commands_next_to_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("restore.sh"), "").unwrap();
        let cmd = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let (p, args) = resolve_command(&cmd("restore.sh --x"), dir.path()).unwrap();
        assert_eq!((p, args), (dir.path().join("restore.sh"), vec!["--x".to_string()]));
        assert_eq!(
            resolve_command(&cmd("pgbackrest"), dir.path()).unwrap().0,
            PathBuf::from("pgbackrest")
        );
        assert_eq!(
            resolve_command(&cmd("/abs/x"), dir.path()).unwrap().0,
            PathBuf::from("/abs/x")
        );
        assert!(resolve_command(&[], dir.path()).is_err());
    }

    #[test]
    fn secret_file_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let path = {
            let f = SecretFile::create("test", "s3cret\n", None).unwrap();
            assert_eq!(std::fs::metadata(&f.path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::read_to_string(&f.path).unwrap(), "s3cret\n");
            f.path.clone()
        };
        assert!(!path.exists());
    }

    #[test]
    fn rewind_grants_cover_pg_rewind_functions() {
        let g = rewind_grants("rew ind");
        assert_eq!(g.len(), 4);
        assert!(g[3].contains("pg_read_binary_file(text, bigint, bigint, boolean) TO \"rew ind\""));
    }
}
