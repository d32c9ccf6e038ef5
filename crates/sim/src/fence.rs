//! What-if model of the fence of issue 4 (`crates/node/src/fence.rs`, not wired into the daemon
//! yet): after every successful lock refresh the daemon arms a deadline of `refresh start + ttl -
//! min(safety_margin, ttl / 2)`; a separate process, which a paused daemon does not stop, polls every
//! 100 ms and stops Postgres (immediate shutdown) once the deadline passes. A daemon that no longer
//! holds the lock disarms it. Only runs with `SimConfig::fencing`; by default the simulation shows
//! ferroni as it is today, without a fence.

use crate::clock::Millis;
use crate::pgmodel::Pg;
use crate::world::{Event, World};

/// `watchdog.safety_margin` default (seconds), as in Patroni.
const SAFETY_MARGIN_MS: Millis = 5_000;
/// The fence reads the heartbeat this often.
const POLL_MS: Millis = 100;

impl World {
    fn fence_margin(&self) -> Millis {
        SAFETY_MARGIN_MS.min(self.cfg.ttl_ms() / 2)
    }

    /// A lock refresh sent at `sent_at` succeeded.
    pub(crate) fn fence_arm(&mut self, i: usize, sent_at: Millis) {
        if !self.cfg.fencing {
            return;
        }
        let deadline = sent_at + self.cfg.ttl_ms() - self.fence_margin();
        self.nodes[i].fence = Some(deadline);
        let at = deadline + self.rng.range(1, POLL_MS);
        self.clock.schedule(at, Event::Fence { node: i, deadline });
    }

    pub(crate) fn fence_disarm(&mut self, i: usize) {
        self.nodes[i].fence = None;
    }

    /// The fence polls after `deadline`: if the daemon did not re-arm it since, Postgres stops.
    pub(crate) fn fence_check(&mut self, i: usize, deadline: Millis) {
        if self.nodes[i].fence != Some(deadline) {
            return;
        }
        self.nodes[i].fence = None;
        if matches!(self.nodes[i].pg, Pg::Running { .. }) {
            self.nodes[i].pg.crash();
            let now = self.now();
            let who = self.nodes[i].name().to_string();
            self.log.push(
                now,
                &who,
                "FENCE: heartbeat deadline missed, postgres stopped (immediate)",
            );
            self.stats.fenced += 1;
        }
    }
}
