//! A throwaway single-member etcd for integration tests.
//!
//! [`Etcd::start`] runs `/usr/bin/etcd` (or `$FERRONI_ETCD_BIN`) on 127.0.0.1 with free client and peer
//! ports and a data directory inside its own temporary directory, and returns once `GET /health`
//! answers `{"health":"true"}` (i.e. the member has elected itself and serves writes). The process
//! is killed when the guard drops; `pause`/`resume` freeze it with SIGSTOP/SIGCONT to imitate a
//! black-holed server, and `restart` brings it back on the same ports with the same data.
//!
//! Failure: the harness panics with a message naming what it waited for and the tail of etcd's log
//! (`etcd.log` in the temporary directory) when etcd cannot be started or does not become healthy
//! within 20 s. A port taken by another process between [`free_port`] and etcd's bind is retried
//! with new ports.

use crate::ports::free_port;
use anyhow::{Context, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const DEFAULT_BIN: &str = "/usr/bin/etcd";
const BIN_ENV: &str = "FERRONI_ETCD_BIN";
const STARTUP_DEADLINE: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Attempts with fresh ports when another process took ours (only possible at first start).
const PORT_ATTEMPTS: usize = 3;
const LOG_TAIL_LINES: usize = 40;

/// A running etcd; killed on drop.
pub struct Etcd {
    bin: PathBuf,
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl Etcd {
    /// Starts etcd and waits until it is healthy; panics with the log tail if it does not come up.
    pub fn start() -> Etcd {
        match Etcd::try_start() {
            Ok(etcd) => etcd,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// Like [`Etcd::start`], but returns the error instead of panicking.
    pub fn try_start() -> anyhow::Result<Etcd> {
        let bin = std::env::var_os(BIN_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| DEFAULT_BIN.into());
        let dir = tempfile::Builder::new()
            .prefix("ferroni-etcd-")
            .tempdir()
            .context("creating etcd's temporary directory")?;
        let mut etcd = Etcd {
            bin,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        for attempt in 1..=PORT_ATTEMPTS {
            match etcd.launch() {
                Ok(()) => return Ok(etcd),
                Err(e) if attempt < PORT_ATTEMPTS && etcd.log_mentions("address already in use") => {
                    eprintln!("etcd could not bind its ports, retrying with new ones: {e:#}");
                    // The data dir records the old peer URL; a fresh member needs a fresh dir.
                    let _ = std::fs::remove_dir_all(etcd.data_dir());
                    etcd.client_port = free_port();
                    etcd.peer_port = free_port();
                }
                Err(e) => return Err(e),
            }
        }
        bail!("etcd: no free ports after {PORT_ATTEMPTS} attempts")
    }

    /// `http://127.0.0.1:PORT`, the client URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.host_port())
    }

    /// `127.0.0.1:PORT`, the client address in Patroni's `etcd3.host` form.
    pub fn host_port(&self) -> String {
        format!("{}:{}", Ipv4Addr::LOCALHOST, self.client_port)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The process id, `None` after `stop`/`kill`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Whether the process is still alive (a paused process counts as alive).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, then SIGKILL if etcd has not exited within 10 s. A no-op when not running.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = pid_of(&child);
        // A stopped process would not act on SIGTERM until continued.
        let _ = kill(pid, Signal::SIGCONT);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGKILL (a crash). A no-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes etcd with SIGSTOP: connections stay open but nothing answers, like a black hole.
    pub fn pause(&self) {
        self.signal(Signal::SIGSTOP);
        // kill(2) returns before every thread has stopped, and a thread still running could answer
        // a request sent right after: wait until all of them show the stopped state.
        let Some(child) = self.child.as_ref() else { return };
        let tasks = format!("/proc/{}/task", child.id());
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(2) && !all_threads_stopped(&tasks) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Undoes [`Etcd::pause`].
    pub fn resume(&self) {
        self.signal(Signal::SIGCONT);
    }

    /// Stops etcd (if running) and starts it again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.launch() {
            panic!("{e:#}");
        }
    }

    fn signal(&self, sig: Signal) {
        let child = self
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("etcd: {sig} sent while etcd is not running"));
        if let Err(e) = kill(pid_of(child), sig) {
            panic!("etcd: sending {sig} to pid {}: {e}", child.id());
        }
    }

    /// Spawns etcd and waits for health; on failure the process is killed and the error carries the
    /// log tail.
    fn launch(&mut self) -> anyhow::Result<()> {
        let child = self.spawn()?;
        self.child = Some(child);
        match self.wait_healthy() {
            Ok(()) => Ok(()),
            Err(e) => {
                self.kill();
                Err(e.context(format!(
                    "etcd ({}) on {} did not start; last lines of {}:\n{}",
                    self.bin.display(),
                    self.endpoint(),
                    self.log_path().display(),
                    log_tail(&self.log_path(), LOG_TAIL_LINES)
                )))
            }
        }
    }

    fn spawn(&self) -> anyhow::Result<Child> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("opening {}", self.log_path().display()))?;
        let log_err = log.try_clone().context("duplicating the etcd log handle")?;
        let client_url = format!("http://127.0.0.1:{}", self.client_port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        // A name and token unique per instance keep parallel test etcds from ever joining each other.
        let name = format!("ferroni-test-{}", self.client_port);
        Command::new(&self.bin)
            .arg("--name")
            .arg(&name)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("{name}={peer_url}"))
            .arg("--initial-cluster-token")
            .arg(&name)
            .arg("--initial-cluster-state")
            .arg("new")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .with_context(|| format!("spawning {} (override with ${BIN_ENV})", self.bin.display()))
    }

    fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        let mut last = String::from("no attempt yet");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "etcd exited with {status} before GET {}/health answered",
                    self.endpoint()
                );
            }
            match health(self.client_port) {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(anyhow!(
            "waited {}s for GET {}/health to answer {{\"health\":\"true\"}}; last answer: {last}",
            STARTUP_DEADLINE.as_secs(),
            self.endpoint()
        ))
    }

    fn log_mentions(&self, needle: &str) -> bool {
        std::fs::read_to_string(self.log_path()).is_ok_and(|s| s.contains(needle))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pid_of(child: &Child) -> Pid {
    // Linux pids fit in i32; the cast cannot truncate a real pid.
    Pid::from_raw(child.id() as i32)
}

/// One plain-HTTP `GET /health`; Ok when etcd reports itself healthy (it has a leader).
fn health(port: u16) -> anyhow::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).context("TCP connect")?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .context("reading the /health answer")?;
    let status_ok = answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200");
    if status_ok && answer.replace(' ', "").contains(r#""health":"true""#) {
        Ok(())
    } else {
        bail!("{}", answer.lines().last().unwrap_or_default())
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Err(e) = File::open(path).and_then(|mut f| f.read_to_string(&mut text)) {
        return format!("(log unreadable: {e})");
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether every thread listed under `/proc/<pid>/task` is stopped (`T`) or gone.
fn all_threads_stopped(tasks: &str) -> bool {
    let Ok(dir) = std::fs::read_dir(tasks) else { return true };
    dir.flatten().all(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // The state follows the parenthesised command name, which may itself contain ')'.
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_none_or(|state| state == "T" || state == "t")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_pauses_restarts_and_dies_with_its_guard() {
        let mut etcd = Etcd::start();
        let pid = etcd.pid().expect("running etcd has a pid");
        health(etcd.client_port()).expect("healthy after start");

        etcd.pause();
        assert!(health(etcd.client_port()).is_err(), "a paused etcd must not answer");
        etcd.resume();
        health(etcd.client_port()).expect("healthy after resume");

        etcd.restart();
        assert_ne!(etcd.pid(), Some(pid), "restart runs a new process");
        health(etcd.client_port()).expect("healthy after restart");

        let pid = etcd.pid().expect("running");
        drop(etcd);
        assert!(
            kill(Pid::from_raw(pid as i32), None).is_err(),
            "etcd must be gone after drop"
        );
    }

    #[test]
    fn missing_binary_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut etcd = Etcd {
            bin: dir.path().join("no-such-etcd"),
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        let err = etcd.launch().expect_err("a missing binary cannot start");
        assert!(format!("{err:#}").contains("no-such-etcd"), "{err:#}");
    }
}
