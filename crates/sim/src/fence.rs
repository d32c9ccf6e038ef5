//! The fence, as `crates/node/src/fencing.rs` and `fence.rs` run it: at the end of every cycle in
//! which a DCS call confirmed the lock (acquire or refresh), the daemon arms a heartbeat deadline of
//! `call start + ttl - min(safety_margin, ttl / 2)`; at the end of a cycle without confirmation it
//! disarms, unless a demotion is running or Postgres is still a writable primary. A separate fence
//! process, which a paused daemon does not stop, polls every 100 ms and stops Postgres (immediate
//! shutdown) once the deadline has passed. `SimConfig::fencing: false` shows ferroni without it.

use crate::clock::Millis;
use crate::world::{Event, World};
use ferroni_decision::{ActionStatus, LongAction};

/// The fence reads the heartbeat this often.
const POLL_MS: Millis = 100;

impl World {
    /// `ttl - effective_margin(ttl, margin_from_config(safety_margin, ttl))`: how long after the
    /// start of the DCS call that confirmed the lock the fence fires, and how long the executor
    /// (`Executor::confirmation_valid_for`) acts on that confirmation.
    pub(crate) fn confirmation_valid_for(&self, i: usize) -> Millis {
        let ttl = self.cfg.ttl_ms();
        let configured = self.nodes[i].config.watchdog.safety_margin;
        let margin = u64::try_from(configured).map_or(ttl / 2, |s| s * 1000);
        ttl - margin.min(ttl / 2)
    }

    /// `fence::deadline_after` with `margin_from_config` and `effective_margin`.
    fn fence_deadline(&self, i: usize, started: Millis) -> Millis {
        started + self.confirmation_valid_for(i)
    }

    /// `Daemon::fence`, at the end of the decisions of a cycle.
    pub(crate) fn fence_after_cycle(&mut self, i: usize, confirmed_at: Option<Millis>, pg_writable: bool) {
        if !self.cfg.fencing {
            return;
        }
        if let Some(started) = confirmed_at {
            let deadline = self.fence_deadline(i, started);
            self.nodes[i].fence = Some(deadline);
            let at = deadline + self.rng.range(1, POLL_MS);
            self.clock.schedule(at, Event::Fence { node: i, deadline });
            return;
        }
        let demoting = matches!(
            self.nodes[i].action_status(),
            ActionStatus::Running(LongAction::Demote { .. })
        );
        if !demoting && !pg_writable {
            self.nodes[i].fence = None;
        }
    }

    /// The fence polls after `deadline`: if the daemon did not re-arm it since, Postgres stops.
    pub(crate) fn fence_check(&mut self, i: usize, deadline: Millis) {
        if self.nodes[i].fence != Some(deadline) {
            return;
        }
        self.nodes[i].fence = None;
        if self.nodes[i].pg.is_primary() || self.nodes[i].pg.is_replica() {
            self.nodes[i].pg.crash();
            let now = self.now();
            let who = self.nodes[i].name().to_string();
            self.log.push(
                now,
                &who,
                "FENCE: heartbeat deadline passed, postgres stopped (immediate)",
            );
            self.stats.fenced += 1;
        }
    }
}
