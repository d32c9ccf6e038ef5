//! A checker that polls every node every 100 ms and records which accept writes, so a test can fail
//! on any moment with two writable primaries and report when writes became possible again.
//!
//! Also: [`PgTarget`] for servers reached by address or from inside a network namespace, and
//! [`AckWriter`], which inserts a counter every ~50 ms into whichever server accepts it and records
//! the acknowledged values, so a test can check after its faults that none was lost.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One poll of one node.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    pub port: u16,
    pub writable: bool,
}

pub struct WritableChecker {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    started: Instant,
    thread: Option<JoinHandle<()>>,
}

impl WritableChecker {
    /// Starts polling the PostgreSQL servers on `ports` (127.0.0.1, superuser from the test config).
    pub fn start(ports: Vec<u16>) -> WritableChecker {
        Self::start_targets(ports.into_iter().map(PgTarget::local).collect())
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops polling and returns every sample.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

impl Drop for WritableChecker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Moments (poll rounds) in which more than one server accepted writes, as `(time, ports)`.
pub fn split_brain(samples: &[Sample]) -> Vec<(Duration, Vec<u16>)> {
    let mut out = Vec::new();
    let mut by_port: std::collections::BTreeMap<u16, (Duration, bool)> = Default::default();
    for s in samples {
        by_port.insert(s.port, (s.at, s.writable));
        // Only samples within one poll interval of each other describe the same moment.
        let writable: Vec<u16> = by_port
            .iter()
            .filter(|(_, (at, w))| *w && s.at.saturating_sub(*at) < Duration::from_millis(150))
            .map(|(p, _)| *p)
            .collect();
        if writable.len() > 1 {
            out.push((s.at, writable));
        }
    }
    out
}

/// The first moment after `after` at which some server accepted writes.
pub fn first_writable_after(samples: &[Sample], after: Duration) -> Option<Duration> {
    samples.iter().find(|s| s.at >= after && s.writable).map(|s| s.at)
}

/// Whether the server on `port` (127.0.0.1) accepts a write right now (a real INSERT, not just a
/// role check).
pub fn accepts_writes(port: u16) -> bool {
    accepts_writes_at(&PgTarget::local(port))
}

// ---------------------------------------------------------------------------------------------
// Servers reached by address (optionally inside a network namespace), and a writer that records
// which writes were acknowledged.
// ---------------------------------------------------------------------------------------------

const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";

/// Where one PostgreSQL server is reached: `host:port`, from inside the network namespace `netns`
/// when set (the probe then runs as `ip netns exec NETNS psql …`). Ports identify the servers in
/// samples and acknowledgements, so the servers of one test must have distinct ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    pub host: String,
    pub port: u16,
    pub netns: Option<String>,
}

impl PgTarget {
    /// A server on 127.0.0.1 of this network namespace, like the harness's nodes.
    pub fn local(port: u16) -> PgTarget {
        PgTarget {
            host: "127.0.0.1".into(),
            port,
            netns: None,
        }
    }

    /// A server reached from inside the network namespace `netns`.
    pub fn in_netns(netns: &str, host: &str, port: u16) -> PgTarget {
        PgTarget {
            host: host.into(),
            port,
            netns: Some(netns.into()),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, PSQL]);
                c
            }
            None => Command::new(PSQL),
        };
        cmd.args(["-X", "-A", "-t", "-h", &self.host, "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1"])
            .env("PGPASSWORD", crate::node::SUPERUSER_PASSWORD)
            .env("PGCONNECT_TIMEOUT", "1")
            // A statement stuck on a frozen or demoting server must not hold the probe for long.
            .env("PGOPTIONS", "-c statement_timeout=1500")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    }
}

/// Runs `sql` on `target` as the superuser; the client is killed after `timeout` (an answer that
/// never comes is an error, not a hang). Returns the unaligned, tuples-only output.
pub fn psql_at(target: &PgTarget, sql: &str, timeout: Duration) -> anyhow::Result<String> {
    use anyhow::{Context, bail};
    use std::io::Read;
    let mut child = target.command().args(["-c", sql]).spawn().context("run psql")?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().context("wait for psql")? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "psql on {}:{} gave no answer within {timeout:?}",
                target.host,
                target.port
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    if !status.success() {
        bail!("psql on {}:{} failed: {}", target.host, target.port, err.trim());
    }
    Ok(out.trim().to_string())
}

/// [`accepts_writes`] for a server reached by address or inside a network namespace.
pub fn accepts_writes_at(target: &PgTarget) -> bool {
    psql_at(
        target,
        "CREATE TABLE IF NOT EXISTS ferroni_probe (at timestamptz); INSERT INTO ferroni_probe VALUES (now())",
        Duration::from_secs(3),
    )
    .is_ok()
}

impl WritableChecker {
    /// Like [`WritableChecker::start`], for servers given by [`PgTarget`]; samples carry their ports.
    pub fn start_targets(targets: Vec<PgTarget>) -> WritableChecker {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let round = Instant::now();
                    for target in &targets {
                        let writable = accepts_writes_at(target);
                        samples.lock().unwrap().push(Sample {
                            at: started.elapsed(),
                            port: target.port,
                            writable,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100).saturating_sub(round.elapsed()));
                }
            })
        };
        WritableChecker {
            stop,
            samples,
            started,
            thread: Some(thread),
        }
    }
}

/// The table [`AckWriter`] writes to: one row per acknowledged value.
pub const ACK_TABLE: &str = "ferroni_acked";

/// One write the server acknowledged (the INSERT's transaction committed and psql exited 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub value: i64,
    pub port: u16,
    pub at: Duration,
}

/// What an [`AckWriter`] did: every acknowledged write and how many attempts failed.
#[derive(Debug, Clone, Default)]
pub struct WriteLog {
    pub acked: Vec<Ack>,
    pub attempts: u64,
    pub failed: u64,
}

/// A writer that inserts a counter about every 50 ms into whichever server currently accepts
/// writes and records the values that were acknowledged, so a test can check after its faults
/// that every acknowledged write exists on the final leader ([`WriteLog::missing_on`]).
///
/// Each attempt uses a new value, so a write whose answer was lost (timeout, broken connection)
/// may exist without being counted as acknowledged; only the other direction is a loss. A failed
/// attempt moves on to the next server at once, so the writer finds a new leader quickly.
pub struct AckWriter {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<WriteLog>>,
    started: Instant,
    thread: Option<JoinHandle<()>>,
}

impl AckWriter {
    /// Starts writing every 50 ms.
    pub fn start(targets: Vec<PgTarget>) -> AckWriter {
        AckWriter::start_every(targets, Duration::from_millis(50))
    }

    pub fn start_every(targets: Vec<PgTarget>, interval: Duration) -> AckWriter {
        assert!(!targets.is_empty(), "AckWriter needs at least one server");
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(WriteLog::default()));
        let started = Instant::now();
        let thread = {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || {
                let mut next: i64 = 1;
                let mut current = 0;
                while !stop.load(Ordering::Relaxed) {
                    let round = Instant::now();
                    // One acknowledged write per round at most; on failure try the others at once.
                    for _ in 0..targets.len() {
                        let target = &targets[current];
                        let value = next;
                        next += 1;
                        let sql = format!(
                            "CREATE TABLE IF NOT EXISTS {ACK_TABLE} (v bigint PRIMARY KEY, port int, \
                             at timestamptz DEFAULT now()); INSERT INTO {ACK_TABLE} (v, port) VALUES ({value}, {})",
                            target.port
                        );
                        let ok = psql_at(target, &sql, Duration::from_secs(3)).is_ok();
                        let mut log = log.lock().unwrap();
                        log.attempts += 1;
                        if ok {
                            log.acked.push(Ack {
                                value,
                                port: target.port,
                                at: started.elapsed(),
                            });
                            break;
                        }
                        log.failed += 1;
                        current = (current + 1) % targets.len();
                    }
                    std::thread::sleep(interval.saturating_sub(round.elapsed()));
                }
            })
        };
        AckWriter {
            stop,
            log,
            started,
            thread: Some(thread),
        }
    }

    /// Time since the writer started (the clock of [`Ack::at`]).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Acknowledged writes so far.
    pub fn acked_count(&self) -> usize {
        self.log.lock().unwrap().acked.len()
    }

    /// Stops writing (after the attempt in flight) and returns the log.
    pub fn finish(mut self) -> WriteLog {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for AckWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl WriteLog {
    /// Acknowledged values that `target`'s table does not hold, in order.
    pub fn missing_on(&self, target: &PgTarget) -> anyhow::Result<Vec<i64>> {
        let rows = psql_at(target, &format!("SELECT v FROM {ACK_TABLE}"), Duration::from_secs(10))?;
        let present: std::collections::HashSet<i64> = rows.lines().filter_map(|l| l.trim().parse().ok()).collect();
        Ok(self
            .acked
            .iter()
            .map(|a| a.value)
            .filter(|v| !present.contains(v))
            .collect())
    }

    /// The acknowledged writes whose values are in `values` (e.g. the missing ones).
    pub fn acks_of(&self, values: &[i64]) -> Vec<Ack> {
        let wanted: std::collections::HashSet<i64> = values.iter().copied().collect();
        self.acked
            .iter()
            .filter(|a| wanted.contains(&a.value))
            .copied()
            .collect()
    }

    /// The longest stretch between two acknowledged writes after `after` (writes unavailable).
    pub fn longest_gap_after(&self, after: Duration) -> Duration {
        let times: Vec<Duration> = self.acked.iter().map(|a| a.at).filter(|at| *at >= after).collect();
        let first_gap = times.first().map(|t| t.saturating_sub(after)).unwrap_or_default();
        times.windows(2).map(|w| w[1] - w[0]).fold(first_gap, Duration::max)
    }

    /// The first acknowledged write at or after `after`.
    pub fn first_ack_after(&self, after: Duration) -> Option<Ack> {
        self.acked.iter().find(|a| a.at >= after).copied()
    }

    /// The last acknowledged write on `port`.
    pub fn last_ack_on(&self, port: u16) -> Option<Ack> {
        self.acked.iter().rev().find(|a| a.port == port).copied()
    }
}
