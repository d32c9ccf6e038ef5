//! The HA decision: a pure function from what one node observed (the cluster in the DCS, its local
//! PostgreSQL, its configuration, the long action it runs) to what it should do next.
//!
//! `decide` does no I/O, reads no clock and draws no random numbers: time, peer answers and the
//! outcomes of earlier actions of the same cycle arrive in the [`Observation`]. That makes every rule
//! a unit test and lets a simulation drive many nodes through crashes and partitions.
//!
//! The rules are split by situation, in the order Patroni's `_run_cycle` applies them:
//! DCS outage, long action in progress, finished long action, system identifier checks, no data
//! (bootstrap or replica imaging), Postgres stopped (recovery), Postgres running (leader or follower).

mod action;
mod bootstrap;
mod decide;
mod election;
mod leader;
mod memory;
mod observation;
mod recovery;
mod requests;
mod slots;
mod source;
mod standby;
mod switchover;

pub use action::{Action, Decision, LongAction, StopMode, Upstream};
pub use decide::decide;
pub use election::is_healthiest;
pub use memory::{BootstrapPhase, Memory};
pub use observation::{ActionResult, ActionStatus, Observation, Outcome, PeerStatus, Request};
pub use standby::REMOTE_NAME;

#[cfg(test)]
mod tests;
