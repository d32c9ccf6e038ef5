//! Rejoining a former primary (or any member whose history left the leader's): single-user crash
//! recovery after an unclean shutdown, the pg_rewind prerequisites, and pg_rewind itself.
//!
//! The daemon decides *whether* to rewind (timeline/LSN comparison, `use_pg_rewind`, waiting for the
//! leader's checkpoint after promote, reinitialising on failure with
//! `remove_data_directory_on_rewind_failure`); this module only knows *how*.
//!
//! Mechanisms:
//! - [`PgControl::crash_recovery`] is Patroni's `ensure_clean_shutdown`: when `pg_controldata` shows a
//!   primary that did not shut down cleanly (`in production`, `shutting down`, `in crash recovery`)
//!   and there is no `backup_label`, `postgres --single` replays the local WAL and shuts down with a
//!   checkpoint (stdin is `/dev/null`, so the backend exits at once after recovery). A standby that
//!   crashed (`in archive recovery`) is left alone, as Patroni does: single-user mode would end its
//!   recovery and write an end-of-recovery checkpoint its upstream never had, after which it can no
//!   longer stream (measured: "requested starting point 0/4000000 is ahead of the WAL flush position").
//!   It must be started as a standby to recover; if it then needs a rewind, stop it (fast) first. It runs
//!   with our `--config-file` and `-c archive_mode=on -c archive_command=false`, as Patroni does: no WAL
//!   is archived from a node that is about to be rewound, and none is deleted before it was archived
//!   (`archive_mode=off` would let the end-of-recovery checkpoint remove segments still marked
//!   `.ready`). `standby.signal` / `recovery.signal` are moved out of the way for the run (a single-user
//!   backend refuses standby mode, and recovery.signal would start an archive recovery that ends on a
//!   new timeline) and put back afterwards, whatever the result. Should the daemon die in between, the
//!   signal file is missing: the daemon always writes the signal file of the role before a start.
//! - [`PgControl::rewind`] runs crash recovery if needed, then `pg_rewind -D DATA
//!   --source-server=<conninfo> --progress --no-ensure-shutdown` (our own crash recovery replaces
//!   pg_rewind's, which would run without our settings) with `PGPASSFILE`, `LC_ALL=C`,
//!   `PGOPTIONS=-c statement_timeout=0` and `PGCONNECT_TIMEOUT=10` (a `connect_timeout` in the
//!   conninfo wins). With [`RewindOptions::restore_target_wal`] it adds `--restore-target-wal
//!   --config-file=<config_dir>/postgresql.conf`: pg_rewind then asks `postgres -C restore_command`
//!   with our configuration, so the replica configuration (the role with the `restore_command`) must be
//!   written before the call.
//!
//! What pg_rewind changes besides the relation blocks (PostgreSQL 15, `src/bin/pg_rewind/filemap.c`,
//! checked with `--dry-run --debug`): every non-relation file of the source is copied over the
//! target's and every file only the target has is removed. Never copied, and removed from the target
//! when present: `postmaster.pid`, `postmaster.opts`, `backup_label`, `tablespace_map`,
//! `backup_manifest`, `pg_internal.init`, the `*.tmp` auto-conf/log-metainfo files and the contents of
//! `pg_replslot`, `pg_stat_tmp`, `pg_dynshmem`, `pg_notify`, `pg_serial`, `pg_snapshots`,
//! `pg_subtrans`. Observed on a ferroni pair: `postgresql.conf`, `postgresql.base.conf`,
//! `pg_hba.conf`, `pg_ident.conf`, `postgresql.auto.conf`, `postmaster.log`, `backup_label.old`,
//! `pg_xact`, `pg_multixact`, `pg_logical/replorigin_checkpoint`, `pg_filenode.map`, the source's WAL
//! from the last common checkpoint on (with its `archive_status`) and its timeline history files are
//! copied; the target's diverged WAL segments and their `.ready` files, `pg_stat/pgstat.stat` and
//! `postmaster.opts` are removed. A `current_logfiles`, a `log/` directory and signal files of the
//! source would be copied the same way. Afterwards this module:
//! - puts back the target's own `postgresql.conf`, `postgresql.base.conf`, `pg_hba.conf` and
//!   `pg_ident.conf` as they were before the rewind (those present in the data directory; the daemon
//!   still rewrites its managed files before the start, as after any role change);
//! - replaces the copied `postmaster.log` (the source's log) by the end of the target's own log (the
//!   last [`LOG_KEEP`] bytes) and a line saying a rewind happened, so a failed start shows our lines;
//! - writes `standby.signal` (removing a copied `recovery.signal`): a rewound data directory carries a
//!   `backup_label` and must replay the source's WAL up to its minimum recovery point before it is
//!   consistent; started without a signal file it would come up as a second primary.
//!
//! It keeps the source's `postgresql.auto.conf` (ALTER SYSTEM is cluster-wide), and files outside the
//! data directory (the pgpass file, a `config_dir` elsewhere) are never touched. Log files of a
//! `logging_collector` writing inside the data directory are replaced by the source's (pg_rewind's
//! documented behaviour): keep `log_directory` outside the data directory.
//!
//! Failure: [`PgError::Invalid`] when postgres runs or the data directory cannot be rewound as it is
//! (unclean with a `backup_label`, or a crashed standby); [`PgError::Command`] with pg_rewind's (or
//! the single-user backend's) last stderr lines otherwise. A pg_rewind that fails before "Done!" may
//! have modified the data directory; [`PgControl::can_rewind`] tells whether another attempt is
//! possible (Patroni re-checks it: a failed attempt can leave `pg_control` unusable).

use crate::conf::{self, SignalFile};
use crate::conninfo;
use crate::control::PgControl;
use crate::controldata::ControlData;
use crate::error::PgError;
use crate::fsutil;
use crate::pidfile::{self, PidFile};
use crate::runner::{Cmd, Output, Stream};
use ferroni_model::Lsn;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much of the target's own `postmaster.log` survives a rewind.
pub const LOG_KEEP: u64 = 1024 * 1024;
/// Configuration files in the data directory that are the target's own and are put back after pg_rewind.
const OWN_CONFIG_FILES: &[&str] = &[
    "postgresql.conf",
    "postgresql.base.conf",
    "pg_hba.conf",
    "pg_ident.conf",
];
/// A configuration file larger than this is not snapshotted (it would not be ours).
const CONFIG_MAX: u64 = 4 * 1024 * 1024;

/// What [`PgControl::crash_recovery`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashRecovery {
    /// The last shutdown was clean.
    NotNeeded,
    /// A standby crashed (`in archive recovery`): it recovers by starting as a standby again.
    SkippedInArchiveRecovery,
    /// Unclean, but a `backup_label` exists: the next start must recover from it (a restored backup or
    /// a finished rewind), single-user mode would ignore what the label asks for.
    SkippedBackupLabel,
    /// Single-user mode replayed the WAL and shut down cleanly.
    Recovered { took: Duration },
}

/// What pg_rewind found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewindOutcome {
    /// The target's history is part of the source's ("no rewind required"): nothing was changed, the
    /// member can follow the source as it is.
    NotNeeded,
    /// The data directory now matches the source up to the divergence ("Done!").
    Rewound {
        /// "servers diverged at WAL location X on timeline N".
        diverged_at: Option<Lsn>,
        diverged_timeline: Option<u32>,
    },
}

/// The result of [`PgControl::rewind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewindReport {
    pub outcome: RewindOutcome,
    /// The crash recovery that ran first.
    pub crash_recovery: CrashRecovery,
    /// pg_rewind's own duration (without crash recovery).
    pub took: Duration,
}

/// How pg_rewind is run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewindOptions {
    /// `--restore-target-wal`: fetch WAL the target lacks with the configured `restore_command` (Patroni
    /// does it whenever a `restore_command` is configured). Write the configuration with it first.
    pub restore_target_wal: bool,
}

/// Whether this data directory can be rewound at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewindSupport {
    Possible,
    /// The pg_rewind binary is missing from `bin_dir`.
    MissingBinary(PathBuf),
    /// Neither data checksums nor `wal_log_hints` (as recorded in `pg_control`): hint-bit changes are
    /// not WAL-logged, so pg_rewind cannot know every changed block.
    NoChecksumsNorWalLogHints,
}

impl RewindSupport {
    pub fn is_possible(&self) -> bool {
        matches!(self, RewindSupport::Possible)
    }

    /// From `pg_controldata` alone (Patroni's `configuration_allows_rewind`).
    pub fn from_controldata(cd: &ControlData) -> RewindSupport {
        if cd.wal_log_hints || cd.data_checksums {
            RewindSupport::Possible
        } else {
            RewindSupport::NoChecksumsNorWalLogHints
        }
    }
}

impl std::fmt::Display for RewindSupport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RewindSupport::Possible => write!(f, "pg_rewind is possible"),
            RewindSupport::MissingBinary(p) => write!(f, "{} does not exist", p.display()),
            RewindSupport::NoChecksumsNorWalLogHints => write!(
                f,
                "the cluster has neither data checksums nor wal_log_hints = on in pg_control"
            ),
        }
    }
}

impl PgControl {
    /// The credentials pg_rewind connects with: `authentication.rewind` when configured, else the superuser.
    pub fn rewind_username(&self) -> &str {
        self.cfg
            .rewind
            .as_ref()
            .map(|c| c.username.as_str())
            .unwrap_or(self.cfg.superuser.username.as_str())
    }

    /// Source connection string for pg_rewind from the member at `host:port`: `dbname=postgres`, the
    /// rewind user (or the superuser) and `target_session_attrs=read-write` (as Patroni: never rewind
    /// from a server that turned out to be a standby). No password: [`crate::conf::pgpass_entries`]
    /// already writes `*:*:*:<rewind user>:<password>` (and the superuser's), which matches any leader.
    pub fn rewind_conninfo(&self, host: &str, port: u16) -> String {
        let port = port.to_string();
        conninfo::build(&[
            ("dbname", "postgres"),
            ("user", self.rewind_username()),
            ("host", host),
            ("port", port.as_str()),
            ("target_session_attrs", "read-write"),
        ])
    }

    /// Whether pg_rewind can work on this data directory: the binary exists and `pg_control` records
    /// data checksums or `wal_log_hints = on`. Whether it *should* (`use_pg_rewind`) is the daemon's call.
    pub async fn can_rewind(&self) -> Result<RewindSupport, PgError> {
        let binary = self.cfg.bin("pg_rewind");
        if !binary.is_file() {
            return Ok(RewindSupport::MissingBinary(binary));
        }
        Ok(RewindSupport::from_controldata(&self.controldata().await?))
    }

    /// Bring the data directory of a crashed primary to a clean shutdown with single-user mode (see the
    /// module documentation). Refuses while a postmaster runs. Limited to `pg_ctl_timeout`; a killed
    /// recovery leaves the directory as unclean as before, nothing worse.
    pub async fn crash_recovery(&self) -> Result<CrashRecovery, PgError> {
        self.ensure_stopped("crash recovery")?;
        let cd = self.controldata().await?;
        if cd.clean_shutdown {
            return Ok(CrashRecovery::NotNeeded);
        }
        match cd.state.as_str() {
            "in production" | "shutting down" | "in crash recovery" => {}
            "in archive recovery" => {
                tracing::info!(state = %cd.state, "skip crash recovery: a standby recovers by starting as one");
                return Ok(CrashRecovery::SkippedInArchiveRecovery);
            }
            other => {
                return Err(PgError::Invalid(format!(
                    "crash recovery: unexpected cluster state {other:?} in pg_control"
                )));
            }
        }
        let data = self.cfg.data_dir.clone();
        if data.join("backup_label").exists() {
            tracing::info!(state = %cd.state, "skip crash recovery: backup_label exists");
            return Ok(CrashRecovery::SkippedBackupLabel);
        }
        self.remove_stale_pid_file()?;
        tracing::info!(state = %cd.state, "crash recovery in single-user mode");
        let started = Instant::now();
        let signal = conf::signal_file(&data);
        conf::set_signal_file(&data, SignalFile::None, self.run_as)?;
        let timeout = Duration::from_secs(u64::from(self.cfg.pg_ctl_timeout.max(1)));
        let config_file = self.cfg.config_dir.join("postgresql.conf");
        let result = Cmd::new("crash recovery", self.cfg.bin("postgres"))
            .arg("--single")
            .arg("-D")
            .arg(&data)
            .arg(format!("--config-file={}", config_file.display()))
            .args(["-c", "archive_mode=on", "-c", "archive_command=false"])
            .arg("template1")
            .env("LC_MESSAGES", "C")
            .run_as(self.run_as)
            .timeout(Some(timeout))
            .run_checked()
            .await;
        // Put the signal file back whatever happened: a replica must stay a replica.
        let restored = conf::set_signal_file(&data, signal, self.run_as);
        result?;
        restored?;
        let cd = self.controldata().await?;
        if !cd.clean_shutdown {
            return Err(PgError::Invalid(format!(
                "crash recovery in single-user mode ends with cluster state {:?}",
                cd.state
            )));
        }
        let took = started.elapsed();
        tracing::info!(
            took_ms = took.as_millis() as u64,
            "crash recovery done: shut down cleanly"
        );
        Ok(CrashRecovery::Recovered { took })
    }

    /// Rewind the stopped data directory from the server at `source_conninfo` (no password: it comes
    /// from the pgpass file; build it with [`PgControl::rewind_conninfo`]). Runs crash recovery first
    /// when needed. See the module documentation for what the data directory looks like afterwards.
    pub async fn rewind(&self, source_conninfo: &str, options: &RewindOptions) -> Result<RewindReport, PgError> {
        conninfo::ensure_no_password(source_conninfo).map_err(PgError::Invalid)?;
        self.ensure_stopped("pg_rewind")?;
        let crash_recovery = self.crash_recovery().await?;
        match crash_recovery {
            CrashRecovery::SkippedBackupLabel => {
                return Err(PgError::Invalid(
                    "cannot rewind: the data directory was not shut down cleanly and has a backup_label; \
                     start it to finish its recovery first, or reinitialize it"
                        .into(),
                ));
            }
            CrashRecovery::SkippedInArchiveRecovery => {
                return Err(PgError::Invalid(
                    "cannot rewind: the standby was not shut down cleanly; start it as a standby and stop \
                     it (fast) first, or reinitialize it"
                        .into(),
                ));
            }
            CrashRecovery::NotNeeded | CrashRecovery::Recovered { .. } => {}
        }
        let data = self.cfg.data_dir.clone();
        let own = {
            let data = data.clone();
            blocking(move || Snapshot::take(&data)).await?
        };
        let upstream = conninfo::host_port(source_conninfo).unwrap_or_else(|| "?".into());
        tracing::info!(source = %upstream, user = self.rewind_username(), "run pg_rewind");

        let seen = Arc::new(Mutex::new(RewindLines::default()));
        let hook_seen = seen.clone();
        let mut cmd = Cmd::new("pg_rewind", self.cfg.bin("pg_rewind"))
            .arg("-D")
            .arg(&data)
            .arg(format!("--source-server={source_conninfo}"))
            .args(["--progress", "--no-ensure-shutdown"]);
        if options.restore_target_wal {
            let config_file = self.cfg.config_dir.join("postgresql.conf");
            cmd = cmd
                .arg("--restore-target-wal")
                .arg(format!("--config-file={}", config_file.display()));
        }
        let started = Instant::now();
        let out: Output = cmd
            .env("PGPASSFILE", &self.cfg.pgpass)
            .env("PGOPTIONS", "-c statement_timeout=0")
            .env("PGCONNECT_TIMEOUT", "10")
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .run_as(self.run_as)
            .quiet_if(is_progress_line)
            .on_line(Box::new(move |stream, line| {
                if stream == Stream::Stderr {
                    hook_seen.lock().unwrap_or_else(|e| e.into_inner()).feed(line);
                }
            }))
            .run_checked()
            .await?;
        let took = started.elapsed();
        let lines = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let outcome = lines.outcome().ok_or_else(|| PgError::Command {
            step: "pg_rewind".into(),
            status: "exit status 0 without \"Done!\" or \"no rewind required\"".into(),
            stderr_tail: out.stderr_tail.clone(),
        })?;
        if let RewindOutcome::Rewound {
            diverged_at,
            diverged_timeline,
        } = outcome
        {
            let owner = self.run_as;
            let (data2, source) = (data.clone(), upstream.clone());
            blocking(move || own.restore(&data2, &source, owner)).await?;
            conf::set_signal_file(&data, SignalFile::Standby, owner)?;
            tracing::info!(
                source = %upstream,
                diverged_at = ?diverged_at.map(|l| l.to_string()),
                ?diverged_timeline,
                took_ms = took.as_millis() as u64,
                "pg_rewind done; standby.signal written"
            );
        } else {
            tracing::info!(source = %upstream, "pg_rewind: no rewind required");
        }
        Ok(RewindReport {
            outcome,
            crash_recovery,
            took,
        })
    }

    fn ensure_stopped(&self, what: &str) -> Result<(), PgError> {
        match self.postmaster() {
            Some(pf) => Err(PgError::Invalid(format!(
                "cannot run {what}: postgres is running (pid {})",
                pf.pid
            ))),
            None => Ok(()),
        }
    }

    /// A `postmaster.pid` naming a dead process, or one reused by another program, makes the
    /// single-user backend refuse to start; one naming a live postmaster elsewhere is an error.
    fn remove_stale_pid_file(&self) -> Result<(), PgError> {
        let Some(pf) = PidFile::read(&self.cfg.data_dir) else {
            return Ok(());
        };
        if pidfile::is_live_postmaster(&pf) {
            return Err(PgError::Invalid(format!(
                "postmaster.pid names running postmaster {} for {}",
                pf.pid,
                pf.data_dir.display()
            )));
        }
        let path = PidFile::path(&self.cfg.data_dir);
        tracing::info!(path = %path.display(), "remove stale postmaster.pid");
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(PgError::io(format!("remove {}", path.display()))(e))
            }
            _ => Ok(()),
        }
    }
}

/// pg_rewind's progress line (`12345/67890 kB (18%) copied`), logged at debug level only.
fn is_progress_line(line: &str) -> bool {
    line.trim_end().ends_with("copied") && line.contains(" kB (")
}

/// What pg_rewind said that matters (its messages are in English under `LC_ALL=C`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RewindLines {
    done: bool,
    not_required: bool,
    diverged_at: Option<Lsn>,
    diverged_timeline: Option<u32>,
}

impl RewindLines {
    fn feed(&mut self, line: &str) {
        let msg = line.strip_prefix("pg_rewind: ").unwrap_or(line).trim();
        if msg == "Done!" {
            self.done = true;
        } else if msg == "no rewind required" {
            self.not_required = true;
        } else if let Some(rest) = msg.strip_prefix("servers diverged at WAL location ") {
            // "0/3000060 on timeline 1"
            let mut words = rest.split_whitespace();
            self.diverged_at = words.next().and_then(|w| w.parse().ok());
            self.diverged_timeline = words.nth(2).and_then(|w| w.parse().ok());
        }
    }

    fn outcome(&self) -> Option<RewindOutcome> {
        if self.not_required {
            Some(RewindOutcome::NotNeeded)
        } else if self.done {
            Some(RewindOutcome::Rewound {
                diverged_at: self.diverged_at,
                diverged_timeline: self.diverged_timeline,
            })
        } else {
            None
        }
    }
}

/// The target's own files that pg_rewind overwrites with the source's.
struct Snapshot {
    config: Vec<(String, Vec<u8>, u32)>,
    log_tail: Option<Vec<u8>>,
}

impl Snapshot {
    fn take(data: &Path) -> Result<Snapshot, PgError> {
        use std::os::unix::fs::PermissionsExt;
        let mut config = Vec::new();
        for name in OWN_CONFIG_FILES {
            let path = data.join(name);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() || meta.len() > CONFIG_MAX {
                continue;
            }
            let text = std::fs::read(&path).map_err(PgError::io(format!("read {}", path.display())))?;
            config.push((name.to_string(), text, meta.permissions().mode() & 0o777));
        }
        let log_tail = read_tail(&data.join("postmaster.log"), LOG_KEEP)?;
        Ok(Snapshot { config, log_tail })
    }

    fn restore(self, data: &Path, source: &str, owner: Option<crate::runner::RunAs>) -> Result<(), PgError> {
        for (name, text, mode) in &self.config {
            // The only copy of this node's own files since pg_rewind replaced them.
            fsutil::write_durable(&data.join(name), text, *mode, owner)?;
        }
        let log = data.join("postmaster.log");
        let mut text = self.log_tail.unwrap_or_default();
        if !text.is_empty() && !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend_from_slice(
            format!(
                "ferroni: pg_rewind from {source} replaced this data directory's files; the lines above are \
                 this server's log before the rewind\n"
            )
            .as_bytes(),
        );
        fsutil::write_atomic(&log, &text, 0o600, owner)
    }
}

/// The last `max` bytes of a file, starting at a line boundary; `None` when it does not exist.
fn read_tail(path: &Path, max: u64) -> Result<Option<Vec<u8>>, PgError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PgError::io(format!("open {}", path.display()))(e)),
    };
    let len = file
        .metadata()
        .map_err(PgError::io(format!("stat {}", path.display())))?
        .len();
    let start = len.saturating_sub(max);
    file.seek(SeekFrom::Start(start))
        .map_err(PgError::io(format!("seek {}", path.display())))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .map_err(PgError::io(format!("read {}", path.display())))?;
    if start > 0 {
        let cut = buf.iter().position(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
        buf.drain(..cut);
    }
    Ok(Some(buf))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, PgError> + Send + 'static) -> Result<T, PgError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PgError::io("run file system task")(std::io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::tests::pg_config;
    use ferroni_model::Credentials;

    #[test]
    fn parses_pg_rewind_output() {
        let mut l = RewindLines::default();
        for line in [
            "pg_rewind: servers diverged at WAL location 0/3000060 on timeline 1",
            "pg_rewind: rewinding from last common checkpoint at 0/2000060 on timeline 1",
            "pg_rewind: need to copy 53 MB (total source directory size is 72 MB)",
            "54321/54321 kB (100%) copied",
            "pg_rewind: Done!",
        ] {
            l.feed(line);
        }
        assert_eq!(
            l.outcome(),
            Some(RewindOutcome::Rewound {
                diverged_at: Some(Lsn(0x3000060)),
                diverged_timeline: Some(1)
            })
        );
        let mut l = RewindLines::default();
        l.feed("pg_rewind: source and target cluster are on the same timeline");
        l.feed("pg_rewind: no rewind required");
        assert_eq!(l.outcome(), Some(RewindOutcome::NotNeeded));
        assert_eq!(RewindLines::default().outcome(), None);
        assert!(is_progress_line("  1234/5678 kB (21%) copied"));
        assert!(!is_progress_line("pg_rewind: reading source file list"));
    }

    #[test]
    fn rewind_conninfo_uses_rewind_user_without_password() {
        let mut pg = pg_config("/d/data");
        let ctl = PgControl::new(pg.clone(), "batman", "n1");
        assert_eq!(ctl.rewind_username(), "postgres");
        assert_eq!(
            ctl.rewind_conninfo("10.0.0.2", 5433),
            "dbname=postgres user=postgres host=10.0.0.2 port=5433 target_session_attrs=read-write"
        );
        pg.rewind = Some(Credentials {
            username: "rew ind".into(),
            password: Some("pw".into()),
        });
        let ctl = PgControl::new(pg.clone(), "batman", "n1");
        let c = ctl.rewind_conninfo("h", 1);
        assert!(c.contains("user='rew ind'"), "{c}");
        assert!(conninfo::ensure_no_password(&c).is_ok());
        // The pgpass file the daemon writes has the rewind user's password for any host.
        let entries = conf::pgpass_entries(&pg, Some(("10.0.0.2", 5433)));
        assert!(
            entries
                .iter()
                .any(|e| e.user == "rew ind" && e.host == "*" && e.port == "*" && e.password == "pw")
        );
    }

    #[test]
    fn rewind_support_from_controldata() {
        let base = "Database system identifier: 1\nDatabase cluster state: shut down\n\
                    Latest checkpoint's TimeLineID: 1\n";
        let cd = |hints: &str, sums: &str| {
            ControlData::parse(&format!(
                "{base}wal_log_hints setting: {hints}\nData page checksum version: {sums}\n"
            ))
            .unwrap()
        };
        assert!(RewindSupport::from_controldata(&cd("on", "0")).is_possible());
        assert!(RewindSupport::from_controldata(&cd("off", "1")).is_possible());
        let no = RewindSupport::from_controldata(&cd("off", "0"));
        assert_eq!(no, RewindSupport::NoChecksumsNorWalLogHints);
        assert!(no.to_string().contains("wal_log_hints"));
    }

    #[test]
    fn snapshot_restores_own_files_and_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        std::fs::write(data.join("pg_hba.conf"), "ours\n").unwrap();
        let mut log = String::new();
        for i in 0..100 {
            log.push_str(&format!("line {i}\n"));
        }
        std::fs::write(data.join("postmaster.log"), &log).unwrap();
        let snap = Snapshot::take(data).unwrap();
        std::fs::write(data.join("pg_hba.conf"), "theirs\n").unwrap();
        std::fs::write(data.join("postmaster.log"), "their log\n").unwrap();
        snap.restore(data, "h:1", None).unwrap();
        assert_eq!(std::fs::read_to_string(data.join("pg_hba.conf")).unwrap(), "ours\n");
        let restored = std::fs::read_to_string(data.join("postmaster.log")).unwrap();
        assert!(restored.starts_with("line 0\n") && restored.contains("line 99\nferroni: pg_rewind from h:1"));
        assert!(!data.join("postgresql.conf").exists(), "absent files are not created");

        std::fs::write(data.join("short.log"), &log).unwrap();
        let tail = read_tail(&data.join("short.log"), 30).unwrap().unwrap();
        assert_eq!(tail, b"line 97\nline 98\nline 99\n", "cut at a line start");
        assert!(read_tail(&data.join("missing"), 30).unwrap().is_none());
        let cut = read_tail(&data.join("pg_hba.conf"), 100).unwrap().unwrap();
        assert_eq!(cut, b"ours\n");
    }
}
