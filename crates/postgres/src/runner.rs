//! Runs one child process (a PostgreSQL tool or a user script) under tokio and reports what it said.
//!
//! Every output line is logged through `tracing` under a step name (`initdb`, `pg_basebackup`,
//! `bootstrap:<method>`), handed to an optional per-line hook (progress parsing), and the last lines of
//! stderr are kept for the error message. Lines are split on `\n` *and* `\r` because pg_basebackup
//! rewrites its progress line with carriage returns.
//!
//! The child runs in its own process group so that a timeout or a dropped future can kill the whole
//! tree it spawned (scripts often fork). `run_as` switches uid/gid for tests and harnesses that run as
//! root (PostgreSQL refuses root); the daemon itself runs as the postgres OS user and leaves it `None`.
//!
//! Failure: spawning fails (missing binary, permissions) → [`PgError::Command`]; the timeout expires →
//! [`PgError::Timeout`] after the process group is killed. A non-zero exit is not an error of
//! [`Cmd::run`]; [`Cmd::run_checked`] turns it into one.

use crate::error::PgError;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, Uid, User};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How many stderr lines are kept for error messages.
const TAIL_LINES: usize = 20;
/// A line longer than this is cut, so a child writing without newlines cannot exhaust memory.
const MAX_LINE: usize = 64 * 1024;
/// After the child exits, how long grandchildren holding the pipes open may keep us waiting for output.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// An OS identity to run children as (tests and harnesses running as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// The identity of the named OS user, if it exists.
    pub fn user(name: &str) -> Option<RunAs> {
        let user = User::from_name(name).ok()??;
        Some(RunAs {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }

    /// `postgres` when this process runs as root, else `None` (already unprivileged: run as ourselves).
    pub fn postgres_if_root() -> Option<RunAs> {
        if Uid::effective().is_root() {
            RunAs::user("postgres")
        } else {
            None
        }
    }

    /// Give `path` to this identity (files we create for the child to read or write).
    pub fn chown(&self, path: &Path) -> Result<(), PgError> {
        let (uid, gid) = (
            nix::unistd::Uid::from_raw(self.uid),
            nix::unistd::Gid::from_raw(self.gid),
        );
        nix::unistd::chown(path, Some(uid), Some(gid))
            .map_err(|e| PgError::io(format!("chown {}", path.display()))(e.into()))
    }

    fn home(&self) -> Option<PathBuf> {
        User::from_uid(Uid::from_raw(self.uid)).ok().flatten().map(|u| u.dir)
    }
}

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Called for every output line, in order of arrival.
pub type LineHook = Box<dyn FnMut(Stream, &str) + Send>;

/// What a finished child left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    /// The last stderr lines (at most 20).
    pub stderr_tail: Vec<String>,
    /// Every stdout line, only when [`Cmd::keep_stdout`] was asked for (tools whose output we parse).
    pub stdout: Vec<String>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// Describes the exit for messages: `exit status 1`, `signal 9`.
pub(crate) fn describe_status(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown exit".to_string(),
    }
}

/// A child process to run; build it, then [`Cmd::run`] or [`Cmd::run_checked`].
pub struct Cmd {
    step: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    run_as: Option<RunAs>,
    current_dir: Option<PathBuf>,
    timeout: Option<Duration>,
    on_line: Option<LineHook>,
    quiet: bool,
    silent: bool,
    quiet_if: Option<fn(&str) -> bool>,
    keep_stdout: bool,
}

impl Cmd {
    pub fn new(step: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        Cmd {
            step: step.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            run_as: None,
            current_dir: None,
            timeout: None,
            on_line: None,
            quiet: false,
            silent: false,
            quiet_if: None,
            keep_stdout: false,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// An environment variable added to the inherited environment (`PGPASSFILE`, `PGOPTIONS`).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Run as another OS user (only possible as root). Sets `HOME` to that user's home and, unless
    /// [`Cmd::current_dir`] is given, the working directory to `/`, which every user can enter.
    pub fn run_as(mut self, run_as: Option<RunAs>) -> Self {
        self.run_as = run_as;
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Kill the child's process group and fail when it runs longer than this.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn on_line(mut self, hook: LineHook) -> Self {
        self.on_line = Some(hook);
        self
    }

    /// Log output at debug level only (tools run on every probe).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Do not log output lines at all (tools whose whole output is parsed, run on every probe).
    pub fn silent(mut self) -> Self {
        self.silent = true;
        self
    }

    /// Log the lines matching `pred` at debug level only (progress lines that arrive every second).
    pub fn quiet_if(mut self, pred: fn(&str) -> bool) -> Self {
        self.quiet_if = Some(pred);
        self
    }

    /// Keep every stdout line in [`Output::stdout`].
    pub fn keep_stdout(mut self) -> Self {
        self.keep_stdout = true;
        self
    }

    pub fn step(&self) -> &str {
        &self.step
    }

    /// Run and fail on a non-zero exit.
    pub async fn run_checked(self) -> Result<Output, PgError> {
        let step = self.step.clone();
        let out = self.run().await?;
        if out.success() {
            Ok(out)
        } else {
            Err(PgError::Command {
                step,
                status: describe_status(&out.status),
                stderr_tail: out.stderr_tail,
            })
        }
    }

    /// Run to completion (or timeout), logging every line. A non-zero exit is reported in the output.
    pub async fn run(mut self) -> Result<Output, PgError> {
        let mut command = self.build();
        let mut child = command.spawn().map_err(|e| PgError::Command {
            step: self.step.clone(),
            status: format!("cannot start {}: {e}", self.program.display()),
            stderr_tail: Vec::new(),
        })?;
        let group = GroupGuard(child.id().map(|pid| Pid::from_raw(pid as i32)));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let pumps = [
            child
                .stdout
                .take()
                .map(|r| tokio::spawn(pump(r, Stream::Stdout, tx.clone()))),
            child
                .stderr
                .take()
                .map(|r| tokio::spawn(pump(r, Stream::Stderr, tx.clone()))),
        ];
        drop(tx);

        let deadline = self.timeout.map(|t| Instant::now() + t);
        let mut collected = Collected::default();
        let mut exited: Option<ExitStatus> = None;
        let mut drain_until: Option<Instant> = None;
        let mut pipes_open = true;
        loop {
            tokio::select! {
                msg = rx.recv(), if pipes_open => match msg {
                    Some((stream, line)) => self.handle_line(stream, &line, &mut collected),
                    None => pipes_open = false,
                },
                status = child.wait(), if exited.is_none() => {
                    let status = status.map_err(PgError::io(format!("wait for {}", self.step)))?;
                    exited = Some(status);
                    drain_until = Some(Instant::now() + DRAIN_GRACE);
                },
                _ = sleep_until_opt(drain_until), if drain_until.is_some() => break,
                _ = sleep_until_opt(deadline), if deadline.is_some() && exited.is_none() => {
                    group.kill();
                    let _ = child.kill().await;
                    return Err(PgError::Timeout {
                        step: self.step.clone(),
                        timeout: self.timeout.unwrap_or_default(),
                        stderr_tail: collected.tail.into(),
                    });
                },
            }
            if exited.is_some() && !pipes_open {
                break;
            }
        }
        group.disarm();
        for pump in pumps.into_iter().flatten() {
            pump.abort();
        }
        let status = exited.expect("loop ends only after the child exits");
        let level = if status.success() {
            "exits successfully"
        } else {
            "fails"
        };
        tracing::debug!(step = %self.step, status = %describe_status(&status), "{} {level}", self.step);
        Ok(Output {
            status,
            stderr_tail: collected.tail.into(),
            stdout: collected.stdout,
        })
    }

    fn build(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Own process group: timeouts and drops kill everything the child spawned, and a signal
            // aimed at the daemon's group (Ctrl-C, SIGSTOP of a frozen daemon) does not reach it.
            .process_group(0);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        if let Some(run_as) = self.run_as {
            command.uid(run_as.uid).gid(run_as.gid);
            if let Some(home) = run_as.home() {
                command.env("HOME", home);
            }
            command.current_dir(self.current_dir.clone().unwrap_or_else(|| PathBuf::from("/")));
        } else if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        tracing::debug!(step = %self.step, program = %self.program.display(), args = ?self.args, "start {}", self.step);
        command
    }

    fn handle_line(&mut self, stream: Stream, line: &str, collected: &mut Collected) {
        let quiet = self.quiet || self.quiet_if.is_some_and(|p| p(line));
        let pipe = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        if self.silent {
        } else if quiet {
            tracing::debug!(step = %self.step, pipe, "{line}");
        } else {
            tracing::info!(step = %self.step, pipe, "{line}");
        }
        if let Some(hook) = self.on_line.as_mut() {
            hook(stream, line);
        }
        match stream {
            Stream::Stderr => {
                if collected.tail.len() == TAIL_LINES {
                    collected.tail.pop_front();
                }
                collected.tail.push_back(line.to_string());
            }
            Stream::Stdout if self.keep_stdout => collected.stdout.push(line.to_string()),
            Stream::Stdout => {}
        }
    }
}

#[derive(Default)]
struct Collected {
    tail: VecDeque<String>,
    stdout: Vec<String>,
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Kills the child's process group when dropped while armed: a cancelled run must not leave a
/// pg_basebackup or a restore script behind.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a pipe and sends complete lines, split on `\n` and `\r`; empty lines are dropped (`\r\n`).
async fn pump<R: AsyncRead + Unpin>(mut reader: R, stream: Stream, tx: mpsc::UnboundedSender<(Stream, String)>) {
    let mut buf = vec![0u8; 8192];
    let mut splitter = LineSplitter::default();
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for line in splitter.feed(&buf[..n]) {
            if tx.send((stream, line)).is_err() {
                return;
            }
        }
    }
    if let Some(line) = splitter.finish() {
        let _ = tx.send((stream, line));
    }
}

/// Incremental splitting of a byte stream into lines on `\n` or `\r`.
#[derive(Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' || b == b'\r' || self.pending.len() >= MAX_LINE {
                if let Some(line) = self.take() {
                    lines.push(line);
                }
                if b == b'\n' || b == b'\r' {
                    continue;
                }
            }
            self.pending.push(b);
        }
        lines
    }

    pub(crate) fn finish(&mut self) -> Option<String> {
        self.take()
    }

    fn take(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let line = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn splits_on_newline_and_carriage_return() {
        let mut s = LineSplitter::default();
        let mut lines = s.feed(b"  10/100 kB (10%)\r  50/100 kB (50%)\r");
        lines.extend(s.feed(b"done\r\nnext"));
        lines.extend(s.finish());
        assert_eq!(lines, ["  10/100 kB (10%)", "  50/100 kB (50%)", "done", "next"]);
    }

    #[test]
    fn cuts_endless_lines() {
        let mut s = LineSplitter::default();
        let lines = s.feed(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(s.finish().unwrap().len(), 10);
    }

    #[tokio::test]
    async fn reports_exit_tail_and_lines() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let out = Cmd::new("test", "/bin/sh")
            .args([
                "-c",
                "echo out1; printf 'p1\\rp2\\r' >&2; for i in $(seq 1 30); do echo err$i >&2; done; exit 3",
            ])
            .on_line(Box::new(move |s, l| seen2.lock().unwrap().push((s, l.to_string()))))
            .keep_stdout()
            .run()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, ["out1"]);
        assert_eq!(out.stderr_tail.len(), TAIL_LINES);
        assert_eq!(out.stderr_tail.last().unwrap(), "err30");
        let seen = seen.lock().unwrap();
        assert!(seen.contains(&(Stream::Stderr, "p2".to_string())));
        assert_eq!(seen.len(), 1 + 2 + 30);
    }

    #[tokio::test]
    async fn checked_run_fails_with_tail() {
        let err = Cmd::new("failing", "/bin/sh")
            .args(["-c", "echo boom >&2; exit 1"])
            .run_checked()
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("failing fails (exit status 1): boom"), "{msg}");
    }

    #[tokio::test]
    async fn timeout_kills_the_process_group() {
        let started = Instant::now();
        let err = Cmd::new("sleeper", "/bin/sh")
            .args(["-c", "sleep 30 & sleep 30"])
            .timeout(Some(Duration::from_millis(300)))
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, PgError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn background_grandchild_does_not_block() {
        let started = Instant::now();
        let out = Cmd::new("forker", "/bin/sh")
            .args(["-c", "sleep 5 & echo done"])
            .run()
            .await
            .unwrap();
        assert!(out.success());
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn missing_program_is_an_error() {
        let err = Cmd::new("nothing", "/nonexistent/prog").run().await.unwrap_err();
        assert!(err.to_string().contains("cannot start /nonexistent/prog"), "{err}");
    }
}
