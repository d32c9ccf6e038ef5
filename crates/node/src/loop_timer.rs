//! The sleep between two cycles, on a timerfd. tokio's timer wheel wakes a one-second sleep twice
//! (at the start of its 64 ms slot, then at the deadline), and on an idle primary each wake-up
//! costs more than the syscalls around it; a timerfd wakes the loop once. Without one (seccomp,
//! descriptor limits) the loop falls back to tokio's sleep.

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub struct LoopTimer {
    fd: Option<AsyncFd<Timer>>,
}

/// tokio wants `AsRawFd`; nix's timerfd only offers `AsFd`.
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl LoopTimer {
    pub fn new() -> LoopTimer {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()
        .and_then(|t| {
            // SAFETY: `Timer` owns the descriptor and neither replaces nor closes it while
            // registered; it is dropped with the AsyncFd.
            unsafe { AsyncFd::register_with_interest(Timer(t), Interest::READABLE) }.ok()
        });
        LoopTimer { fd }
    }

    /// Resolves after `duration`. Cancel-safe: the next call re-arms the timer, which also
    /// discards an expiry nobody waited for.
    pub async fn sleep(&self, duration: Duration) {
        let Some(fd) = &self.fd else {
            return tokio::time::sleep(duration).await;
        };
        if duration.is_zero() {
            return;
        }
        let armed = fd.get_ref().0.set(
            Expiration::OneShot(TimeSpec::from_duration(duration)),
            TimerSetTimeFlags::empty(),
        );
        if armed.is_err() {
            return tokio::time::sleep(duration).await;
        }
        loop {
            let Ok(mut ready) = fd.readable().await else {
                return tokio::time::sleep(duration).await;
            };
            // A readiness left from an earlier, cancelled sleep reads EAGAIN: wait again.
            match ready.try_io(|inner| inner.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(Ok(())) => return,
                Ok(Err(_)) => return tokio::time::sleep(duration).await,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test(flavor = "current_thread")]
    async fn sleeps_for_the_duration_and_survives_a_cancelled_sleep() {
        let timer = LoopTimer::new();
        assert!(timer.fd.is_some(), "timerfd available on Linux");
        // Cancelled before it fires: its expiry must not end the next sleep early.
        let _ = tokio::time::timeout(Duration::from_millis(5), timer.sleep(Duration::from_millis(20))).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let started = Instant::now();
        timer.sleep(Duration::from_millis(50)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(50), "woke after {took:?}");
        assert!(took < Duration::from_millis(500), "woke after {took:?}");
    }
}
