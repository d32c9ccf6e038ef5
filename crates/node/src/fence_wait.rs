//! How the fencing process sleeps between two looks at the heartbeat: until the file changes
//! (inotify on its directory), the armed deadline passes (a CLOCK_BOOTTIME timerfd, so time spent
//! suspended counts) or the daemon exits (a pidfd). A replica's fence then costs no CPU at all; the
//! 100 ms poll it replaces cost more CPU than the daemon itself. Each facility that cannot be set
//! up (old kernel, inotify limits) falls back to a timeout, never to not noticing.
//!
//! While a deadline is armed the fence does not wake for in-place writes (the daemon's heartbeat
//! every cycle, which only moves the deadline later): the timer wakes it at the old deadline and
//! it reads the new one then. Renames and deletions still wake it at once; the daemon renames
//! when it moves a deadline earlier.

use super::Deadline;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// The timeout when a change of the heartbeat cannot be waited for (the old fixed poll).
const FALLBACK_POLL: Duration = Duration::from_millis(100);
/// The timeout when only the daemon's exit cannot be waited for: exiting late costs nothing.
const DAEMON_POLL: Duration = Duration::from_secs(1);

pub struct Sleeper {
    inotify: Option<Inotify>,
    dir: std::path::PathBuf,
    /// Whether in-place writes wake the fence (only while nothing is armed).
    watching_writes: bool,
    timer: Option<TimerFd>,
    daemon: Option<OwnedFd>,
    daemon_exited: bool,
}

impl Sleeper {
    /// Sets up the waits; what could not be set up is returned for the log.
    pub fn new(heartbeat: &Path, daemon_pid: i32) -> (Sleeper, Vec<String>) {
        let mut missing = Vec::new();
        let dir = match heartbeat.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .and_then(|i| i.add_watch(dir, watch_mask(true)).map(|_| i))
            .map_err(|e| missing.push(format!("inotify on {} ({e}): polling every 100 ms", dir.display())))
            .ok();
        let timer = TimerFd::new(
            ClockId::CLOCK_BOOTTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(|e| missing.push(format!("timerfd ({e}): polling every 100 ms while armed")))
        .ok();
        let daemon = pidfd_open(daemon_pid)
            .map_err(|e| missing.push(format!("pidfd for the daemon ({e}): checking it every second")))
            .ok();
        let sleeper = Sleeper {
            inotify,
            dir: dir.to_path_buf(),
            watching_writes: true,
            timer,
            daemon,
            daemon_exited: false,
        };
        (sleeper, missing)
    }

    /// Sleeps until the heartbeat may have changed, `deadline` (when armed) has passed, or the
    /// daemon has exited. Spurious returns are fine: the caller looks again and sleeps again.
    pub fn wait(&mut self, deadline: Option<Deadline>) {
        let want_writes = deadline.is_none() || self.timer.is_none();
        if want_writes != self.watching_writes
            && let Some(i) = &self.inotify
        {
            // Replaces the directory's watch mask. A write that came between the caller's look and
            // a widened mask was not reported: return so that the caller looks again.
            let changed = i.add_watch(self.dir.as_path(), watch_mask(want_writes)).is_ok();
            if changed {
                self.watching_writes = want_writes;
                if want_writes {
                    return;
                }
            }
        }
        let timed = match (&self.timer, deadline) {
            (Some(t), Some(d)) => {
                // One millisecond past it, so that the deadline is exceeded when the caller looks.
                let at = TimeSpec::from_duration(d.0 + Duration::from_millis(1));
                t.set(Expiration::OneShot(at), TimerSetTimeFlags::TFD_TIMER_ABSTIME)
                    .is_ok()
            }
            (Some(t), None) => {
                let _ = t.unset();
                true
            }
            (None, None) => true,
            (None, Some(_)) => false,
        };
        let timeout = if self.inotify.is_none() || !timed {
            Some(FALLBACK_POLL)
        } else if self.daemon.is_none() && !self.daemon_exited {
            Some(DAEMON_POLL)
        } else {
            None
        };
        let mut fds = Vec::with_capacity(3);
        for fd in [
            self.inotify.as_ref().map(|i| i.as_fd()),
            self.timer.as_ref().map(|t| t.as_fd()),
            self.daemon.as_ref().map(|d| d.as_fd()),
        ]
        .into_iter()
        .flatten()
        {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let timeout = timeout.map_or(PollTimeout::NONE, |d| {
            PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX)
        });
        // EINTR and friends: return and let the caller look again.
        let ready = poll(&mut fds, timeout).unwrap_or(0);
        let daemon_ready = self.daemon.is_some() && fds.last().and_then(PollFd::revents).is_some_and(|r| !r.is_empty());
        drop(fds);
        if ready > 0 {
            self.drain();
        }
        if daemon_ready {
            // A pidfd stays readable once its process exited: stop polling it.
            self.daemon = None;
            self.daemon_exited = true;
        }
    }

    fn drain(&self) {
        if let Some(i) = &self.inotify {
            while matches!(i.read_events(), Ok(events) if !events.is_empty()) {}
        }
        if let Some(t) = &self.timer {
            let mut buf = [0u8; 8];
            let _ = nix::unistd::read(t.as_fd(), &mut buf);
        }
    }
}

/// Renames (exit, a deadline moved earlier), deletions (disarm) and the directory going away;
/// in-place writes too when `writes`.
fn watch_mask(writes: bool) -> AddWatchFlags {
    let always = AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF;
    if writes {
        always | AddWatchFlags::IN_CLOSE_WRITE
    } else {
        always
    }
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::super::boottime;
    use super::*;
    use std::time::Instant;

    #[test]
    fn wakes_on_a_heartbeat_write_and_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let hb = dir.path().join("hb");
        let (mut s, missing) = Sleeper::new(&hb, std::process::id() as i32);
        assert!(missing.is_empty(), "{missing:?}");
        let writer = {
            let hb = hb.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150));
                std::fs::write(&hb, "x").unwrap();
            })
        };
        let t = Instant::now();
        s.wait(None);
        let woke = t.elapsed();
        writer.join().unwrap();
        assert!(
            woke >= Duration::from_millis(100) && woke < Duration::from_secs(5),
            "{woke:?}"
        );

        let deadline = Deadline(boottime() + Duration::from_millis(200));
        let t = Instant::now();
        while boottime() <= deadline.0 {
            s.wait(Some(deadline));
        }
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    /// How long a wait lasted while `background` changed the heartbeat file.
    fn timed_wait(s: &mut Sleeper, until: Option<Deadline>, background: std::thread::JoinHandle<()>) -> Duration {
        let t = Instant::now();
        s.wait(until);
        let woke = t.elapsed();
        background.join().unwrap();
        woke
    }

    #[test]
    fn an_armed_wait_sleeps_through_in_place_writes_but_not_renames_or_deletions() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let hb = dir.path().join("hb");
        std::fs::write(&hb, "x").unwrap();
        let (mut s, missing) = Sleeper::new(&hb, std::process::id() as i32);
        assert!(missing.is_empty(), "{missing:?}");
        let far = Deadline(boottime() + Duration::from_secs(30));
        let in_background = |f: Box<dyn FnOnce() + Send>| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150));
                f();
                std::thread::sleep(Duration::from_millis(250));
            })
        };
        let rewrite = {
            let hb = hb.clone();
            move || {
                let f = std::fs::OpenOptions::new().write(true).open(&hb).unwrap();
                f.write_all_at(b"y", 0).unwrap();
            }
        };
        let rename = {
            let (hb, tmp) = (hb.clone(), dir.path().join("hb.tmp"));
            move || {
                std::fs::write(&tmp, "z").unwrap();
                std::fs::rename(&tmp, &hb).unwrap();
            }
        };
        let writer = in_background(Box::new(move || {
            rewrite();
            std::thread::sleep(Duration::from_millis(250));
            rename();
        }));
        let woke = timed_wait(&mut s, Some(far), writer);
        assert!(
            woke >= Duration::from_millis(350) && woke < Duration::from_secs(5),
            "{woke:?}"
        );

        let remover = {
            let hb = hb.clone();
            in_background(Box::new(move || std::fs::remove_file(&hb).unwrap()))
        };
        let woke = timed_wait(&mut s, Some(far), remover);
        assert!(
            woke >= Duration::from_millis(100) && woke < Duration::from_secs(5),
            "{woke:?}"
        );
        // Disarmed again: plain writes wake it (the first call only widens the mask).
        s.wait(None);
        let writer = {
            let hb = hb.clone();
            in_background(Box::new(move || std::fs::write(&hb, "w").unwrap()))
        };
        let woke = timed_wait(&mut s, None, writer);
        assert!(
            woke >= Duration::from_millis(100) && woke < Duration::from_secs(5),
            "{woke:?}"
        );
    }

    #[test]
    fn notices_the_daemon_exit_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep").arg("0.2").spawn().unwrap();
        let (mut s, missing) = Sleeper::new(&dir.path().join("hb"), child.id() as i32);
        assert!(missing.is_empty(), "{missing:?}");
        let t = Instant::now();
        s.wait(None);
        assert!(t.elapsed() < Duration::from_secs(5));
        child.wait().unwrap();
        assert!(s.daemon_exited && s.daemon.is_none());
    }
}
