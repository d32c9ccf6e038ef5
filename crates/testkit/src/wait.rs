//! Polling waits that say what they waited for when they give up.

use std::time::{Duration, Instant};

/// Polls `cond` every 100 ms until it holds or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        if cond() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out after {:?} waiting for {what}", timeout));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
