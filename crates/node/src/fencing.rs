//! The daemon's side of fencing: it arms the heartbeat (and pets the watchdog device) after every
//! confirmed hold of the leader lock, disarms when it no longer leads, and keeps the fencing
//! process alive. If the daemon freezes, the heartbeat's deadline — the lease's end minus a safety
//! margin — passes and the fence stops Postgres before another node can be promoted.

use crate::fence::{self, Heartbeat};
use crate::watchdog::{self, Watchdog};
use ferroni_model::{Config, DynamicConfig, WatchdogMode};
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;
use tracing::{error, info, warn};

/// Where the heartbeat of a data directory lives: next to it, never inside it, so pg_basebackup
/// and pg_rewind cannot carry it to another node.
fn heartbeat_path(cfg: &Config) -> PathBuf {
    let mut path = cfg.postgresql.data_dir.clone().into_os_string();
    path.push(".fence");
    PathBuf::from(path)
}

/// The program the fence runs as: the small `ferroni-fence` installed next to this binary, whose
/// whole resident size is about a megabyte; else this binary again (`--fence`), which maps far
/// more of itself than the loop needs. `/proc/self/exe` still names the running binary after a
/// package upgrade replaced the file.
fn fence_executable() -> PathBuf {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("ferroni-fence")));
    match sibling {
        Some(path) if path.is_file() => path,
        _ => PathBuf::from("/proc/self/exe"),
    }
}

/// Disarms the heartbeat from outside the loop (a demotion that has stopped the primary).
pub fn disarm_heartbeat(cfg: &Config) {
    let _ = Heartbeat::new(heartbeat_path(cfg)).disarm();
}

pub struct Fencing {
    heartbeat: Heartbeat,
    heartbeat_path: PathBuf,
    data_dir: PathBuf,
    fence: Option<Child>,
    watchdog: Option<Watchdog>,
    mode: WatchdogMode,
    device: Option<PathBuf>,
    safety_margin: i64,
    armed: bool,
    /// The device was tried in this leadership term; an `automatic` failure is reported once.
    watchdog_tried: bool,
}

impl Fencing {
    /// Starts the fencing process.
    pub fn start(cfg: &Config) -> Fencing {
        let data_dir = cfg.postgresql.data_dir.clone();
        let heartbeat_path = heartbeat_path(cfg);
        let heartbeat = Heartbeat::new(&heartbeat_path);
        let _ = heartbeat.disarm();
        let mut f = Fencing {
            heartbeat,
            heartbeat_path,
            data_dir,
            fence: None,
            watchdog: None,
            mode: cfg.watchdog.mode,
            device: cfg.watchdog.device.clone(),
            safety_margin: cfg.watchdog.safety_margin,
            armed: false,
            watchdog_tried: false,
        };
        f.ensure_fence();
        f
    }

    /// Whether this node may lead at all: `watchdog.mode: required` without a usable device may not.
    pub fn may_lead(cfg: &Config) -> bool {
        cfg.watchdog.mode != WatchdogMode::Required
            || watchdog::usable(cfg.watchdog.mode, cfg.watchdog.device.as_deref())
    }

    /// (Re)starts the fencing process if it is not running.
    pub fn ensure_fence(&mut self) {
        if let Some(child) = &mut self.fence
            && matches!(child.try_wait(), Ok(None))
        {
            return;
        }
        if self.fence.is_some() {
            error!("the fencing process exited; starting it again");
        }
        match fence::spawn_fence(
            &fence_executable(),
            &self.heartbeat_path,
            &self.data_dir,
            std::process::id(),
        ) {
            Ok(child) => self.fence = Some(child),
            Err(e) => error!("cannot start the fencing process: {e}"),
        }
    }

    /// The lock was confirmed by a DCS call that started at `started` (CLOCK_BOOTTIME).
    pub fn confirmed(&mut self, started: Duration, dynamic: &DynamicConfig) {
        let ttl = Duration::from_secs(u64::from(dynamic.ttl));
        let margin = fence::margin_from_config(self.safety_margin, ttl);
        match self.heartbeat.arm(fence::deadline_after(started, ttl, margin)) {
            Ok(()) => self.armed = true,
            Err(e) => warn!("cannot arm the fencing heartbeat: {e}"),
        }
        if self.watchdog.is_none() && self.mode != WatchdogMode::Off && !self.watchdog_tried {
            self.watchdog_tried = true;
            let loop_wait = Duration::from_secs(u64::from(dynamic.loop_wait));
            match Watchdog::open(self.mode, self.device.as_deref(), ttl, loop_wait, margin) {
                Ok(Some(w)) => {
                    info!("watchdog device activated");
                    self.watchdog = Some(w);
                }
                Ok(None) => {}
                Err(e) => error!("watchdog: {e}"),
            }
        }
        if let Some(w) = &mut self.watchdog
            && let Err(e) = w.keepalive()
        {
            warn!("watchdog keepalive failed: {e}");
        }
    }

    /// Nothing to fence: this node does not lead (or has stopped Postgres itself).
    pub fn release(&mut self) {
        self.watchdog_tried = false;
        if self.armed {
            let _ = self.heartbeat.disarm();
            self.armed = false;
        }
        if let Some(w) = self.watchdog.take()
            && let Err(e) = w.disable()
        {
            warn!("cannot disable the watchdog: {e}");
        }
    }

    /// Graceful shutdown: disarm, stop the fencing process, disable the watchdog.
    pub fn shutdown(&mut self) {
        self.release();
        let _ = self.heartbeat.stop_fence();
        if let Some(mut child) = self.fence.take() {
            for _ in 0..20 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
