//! The Linux watchdog device (`watchdog.mode` off | automatic | required, as in Patroni).
//!
//! Only the leader holds the device open: opening it starts a hardware (or softdog) timer that
//! resets the machine unless [`Watchdog::keepalive`] is called within the timeout, so a frozen
//! leader is fenced even if the fence process is frozen too (the whole VM stalled). The timeout is
//! `ttl - safety_margin` (`-1` → `ttl / 2`), the same as Patroni, so the reset happens before the
//! leader key expires.
//!
//! How it can fail: the device may be missing, busy (only one process may open it), not a
//! watchdog, unable to take our timeout, or have a timeout shorter than `loop_wait` (a healthy
//! leader would be reset between two keepalives). In `automatic` mode each of these is logged and
//! the node runs without a watchdog (`Ok(None)`); in `required` mode it is an error naming the
//! device, and the node must not hold the leader lock. Dropping a [`Watchdog`] without
//! [`Watchdog::disable`] closes the device without the magic close: the timer keeps running and
//! resets the machine, which is what a crashed leader should get.

use ferroni_model::WatchdogMode;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// Patroni's default device.
pub const DEFAULT_DEVICE: &str = "/dev/watchdog";

// ioctl request numbers from <linux/watchdog.h>, encoded as the kernel's _IOR/_IOWR macros do.
// The direction bits differ on a few architectures (asm-generic vs. powerpc/mips/sparc).
#[cfg(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
))]
mod ioc {
    pub const READ: u32 = 2;
    pub const WRITE: u32 = 4;
    pub const DIR_SHIFT: u32 = 29;
}
#[cfg(not(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
mod ioc {
    pub const READ: u32 = 2;
    pub const WRITE: u32 = 1;
    pub const DIR_SHIFT: u32 = 30;
}

const fn ioc(dir: u32, nr: u32) -> u32 {
    let size = std::mem::size_of::<nix::libc::c_int>() as u32;
    (dir << ioc::DIR_SHIFT) | (size << 16) | ((b'W' as u32) << 8) | nr
}

/// `_IOWR('W', 6, int)`
const WDIOC_SETTIMEOUT: u32 = ioc(ioc::READ | ioc::WRITE, 6);
/// `_IOR('W', 7, int)`
const WDIOC_GETTIMEOUT: u32 = ioc(ioc::READ, 7);

/// The device timeout for `ttl` and an already resolved margin (see
/// `fence::margin_from_config`), in whole seconds as the ioctl wants; `None` when nothing is
/// left (margin ≥ ttl).
pub fn watchdog_timeout(ttl: Duration, safety_margin: Duration) -> Option<Duration> {
    let secs = ttl.saturating_sub(safety_margin).as_secs();
    (secs >= 1).then(|| Duration::from_secs(secs))
}

/// For the "am I healthy enough to become leader" check: in `required` mode a leader without a
/// usable device is not allowed, so a node whose device is missing or not writable must not run
/// for leader. Patroni checks the same (`os.access(device, W_OK)`).
pub fn usable(mode: WatchdogMode, device: Option<&Path>) -> bool {
    if mode != WatchdogMode::Required {
        return true;
    }
    let device = device.unwrap_or(Path::new(DEFAULT_DEVICE));
    nix::unistd::access(device, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// An open, running watchdog device.
#[derive(Debug)]
pub struct Watchdog {
    file: File,
    /// What the device actually uses (may differ from what was asked for).
    timeout: Duration,
}

impl Watchdog {
    /// Activates the watchdog (call when becoming leader). `safety_margin` is the resolved
    /// margin; the timeout becomes `ttl - safety_margin`. See the module docs for the modes.
    pub fn open(
        mode: WatchdogMode,
        device: Option<&Path>,
        ttl: Duration,
        loop_wait: Duration,
        safety_margin: Duration,
    ) -> Result<Option<Watchdog>, String> {
        if mode == WatchdogMode::Off {
            return Ok(None);
        }
        let device = device.unwrap_or(Path::new(DEFAULT_DEVICE));
        match Self::activate(device, ttl, loop_wait, safety_margin) {
            Ok(w) => {
                tracing::info!(device = %device.display(), timeout_s = w.timeout.as_secs(), "watchdog activated");
                Ok(Some(w))
            }
            Err(e) if mode == WatchdogMode::Automatic => {
                tracing::warn!("running without a watchdog: {e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn activate(device: &Path, ttl: Duration, loop_wait: Duration, margin: Duration) -> Result<Watchdog, String> {
        let shown = device.display();
        let wanted = watchdog_timeout(ttl, margin).ok_or_else(|| {
            format!(
                "watchdog {shown}: safety_margin {} s leaves no time of the ttl {} s",
                margin.as_secs(),
                ttl.as_secs()
            )
        })?;
        // Opening starts the timer (with the driver's default timeout): set ours right away.
        let file = OpenOptions::new()
            .write(true)
            .open(device)
            .map_err(|e| format!("cannot open watchdog {shown}: {e}"))?;
        let mut w = Watchdog { file, timeout: wanted };
        let set = w.ioctl_int(WDIOC_SETTIMEOUT, wanted.as_secs() as i32);
        let actual = match w.ioctl_int(WDIOC_GETTIMEOUT, 0) {
            Ok(t) => Duration::from_secs(u64::try_from(t).unwrap_or(0)),
            Err(e) => {
                let why = set.err().unwrap_or(e);
                w.magic_close();
                return Err(format!("{shown} is not a usable watchdog (timeout ioctl: {why})"));
            }
        };
        w.timeout = actual;
        if let Err(e) = set {
            tracing::warn!(device = %shown, "cannot set the watchdog timeout to {} s: {e}", wanted.as_secs());
        }
        if actual < loop_wait {
            w.magic_close();
            return Err(format!(
                "watchdog {shown}: timeout {} s is shorter than loop_wait {} s; it would reset a healthy leader",
                actual.as_secs(),
                loop_wait.as_secs()
            ));
        }
        if actual > wanted {
            // The reset would come after the leader key expired: still better than nothing.
            tracing::warn!(
                device = %shown,
                "watchdog timeout is {} s, not the {} s asked for: a frozen leader is reset only after its key expired",
                actual.as_secs(),
                wanted.as_secs()
            );
        }
        Ok(w)
    }

    /// Restarts the timer; call after every successful leader-lock refresh.
    pub fn keepalive(&mut self) -> io::Result<()> {
        // Any write is a keepalive for every driver (WDIOC_KEEPALIVE is optional); avoid 'V',
        // which arms the magic close on some drivers.
        self.file.write_all(b"1")
    }

    /// Stops the timer and closes the device (demotion, pause, shutdown). A driver built with
    /// `nowayout` ignores the magic close and will reset the machine: nothing can be done then.
    pub fn disable(mut self) -> io::Result<()> {
        self.file.write_all(b"V")
    }

    fn magic_close(&mut self) {
        let _ = self.file.write_all(b"V");
    }

    fn ioctl_int(&self, request: u32, value: i32) -> io::Result<i32> {
        let mut v: nix::libc::c_int = value;
        // SAFETY: both requests read and/or write exactly one c_int through the pointer, which
        // points at a live local; the fd is open for the duration of the call.
        let rc = unsafe { nix::libc::ioctl(self.file.as_raw_fd(), request as _, &mut v) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn ioctl_numbers_match_linux_watchdog_h() {
        assert_eq!(WDIOC_SETTIMEOUT, 0xC004_5706);
        assert_eq!(WDIOC_GETTIMEOUT, 0x8004_5707);
    }

    #[test]
    fn timeout_is_ttl_minus_margin_in_whole_seconds() {
        let s = Duration::from_secs;
        assert_eq!(watchdog_timeout(s(30), s(5)), Some(s(25)));
        assert_eq!(
            watchdog_timeout(s(25), Duration::from_millis(12_500)),
            Some(s(12)),
            "ttl/2 rounds down"
        );
        assert_eq!(watchdog_timeout(s(5), s(5)), None);
        assert_eq!(watchdog_timeout(s(5), s(9)), None);
    }
}
