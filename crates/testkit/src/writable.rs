//! A checker that polls every node every 100 ms and records which accept writes, so a test can fail
//! on any moment with two writable primaries and report when writes became possible again.

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
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let round = Instant::now();
                    for &port in &ports {
                        let writable = accepts_writes(port);
                        samples.lock().unwrap().push(Sample {
                            at: started.elapsed(),
                            port,
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

/// Whether the server on `port` accepts a write right now (a real INSERT, not just a role check).
pub fn accepts_writes(port: u16) -> bool {
    Command::new("/usr/lib/postgresql/15/bin/psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE TABLE IF NOT EXISTS ferroni_probe (at timestamptz); INSERT INTO ferroni_probe VALUES (now())",
        ])
        .env("PGPASSWORD", crate::node::SUPERUSER_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "1")
        .output()
        .is_ok_and(|o| o.status.success())
}
