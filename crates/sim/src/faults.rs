//! What can happen to the cluster from outside, as timed [`Command`]s, and the seeded random
//! schedule of faults for one run. Scripted scenarios use the same commands, so a random failure can
//! be rewritten as a scenario line by line.

use crate::clock::Millis;
use crate::config::SimConfig;
use crate::dcs::FailMode;
use crate::rng::Rng;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Starts the daemon for the first time.
    Start(usize),
    /// The machine dies: daemon and Postgres (unclean shutdown); the DCS lease runs out by itself.
    Crash(usize),
    /// The daemon starts again (a crashed machine is back).
    Restart(usize),
    /// The machine dies and its disk is replaced: it comes back without data.
    Wipe(usize),
    /// Only Postgres dies.
    PgCrash(usize),
    /// The daemon stops taking steps (SIGSTOP, a long GC-like stall, a frozen VM); Postgres runs on.
    Pause(usize),
    Unpause(usize),
    /// The node is cut off from the network: DCS, peers and replication.
    Isolate(usize, FailMode),
    Reconnect(usize),
    /// The DCS is unreachable for every node.
    DcsDown(FailMode),
    DcsUp,
    /// Base backups to this node become very slow.
    SlowClone(usize, bool),
    /// An operator requests a switchover (or, without a leader, a failover) to this member through
    /// the REST API, which refuses candidates that are not running or tagged nofailover.
    Switchover(usize),
    /// The `failover` key is written straight into the DCS naming this member, bypassing the API's
    /// checks (what `patronictl` falls back to when the API cannot be reached).
    FailoverKey(usize),
    /// Clients write this many bytes at once to every running primary.
    WriteBurst(u64),
    SetWriteRate(u64),
    SetReplicationRate(usize, u64),
    /// Faults stop: every node is restarted, unpaused and reconnected, the DCS is up. The liveness
    /// deadline starts here.
    Heal,
}

impl Command {
    /// The fault kind counted in the statistics, if the command injects a fault.
    pub fn fault_kind(&self) -> Option<&'static str> {
        Some(match self {
            Command::Crash(_) => "node crash",
            Command::Wipe(_) => "node rebuilt without data",
            Command::PgCrash(_) => "postgres crash",
            Command::Pause(_) => "daemon paused",
            Command::Isolate(..) => "node cut off (DCS and peers)",
            Command::DcsDown(_) => "DCS down for all",
            Command::SlowClone(_, true) => "slow clone",
            Command::Switchover(_) | Command::FailoverKey(_) => "switchover request",
            Command::WriteBurst(_) => "write burst",
            _ => return None,
        })
    }
}

/// One run's timeline: node starts, faults, the heal, and the end.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub commands: Vec<(Millis, Command)>,
    pub heal_at: Millis,
    pub end_at: Millis,
}

/// Faults begin once the cluster had time to bootstrap and clone (a crash in the middle of the very
/// first initdb is a scenario of its own).
const WARMUP_MS: Millis = 25_000;
const FAULT_WINDOW_MS: Millis = 180_000;

pub fn random_schedule(rng: &mut Rng, cfg: &SimConfig) -> Schedule {
    let n = cfg.nodes.len();
    let ttl = cfg.ttl_ms();
    let mut commands = Vec::new();
    for i in 0..n {
        commands.push((rng.range(0, 3_000), Command::Start(i)));
    }
    let heal_at = WARMUP_MS + FAULT_WINDOW_MS;
    let count = rng.range(3, 12);
    for _ in 0..count {
        let t = rng.range(WARMUP_MS, heal_at);
        let node = rng.index(n);
        let mode = if rng.percent(50) {
            FailMode::Refused
        } else {
            FailMode::Timeout
        };
        match rng.weighted(&[20, 12, 15, 8, 15, 6, 5, 5, 14]) {
            0 => {
                commands.push((t, Command::Crash(node)));
                commands.push((t + rng.range(1_000, 2 * ttl + 10_000), Command::Restart(node)));
            }
            1 => {
                commands.push((t, Command::Pause(node)));
                commands.push((t + rng.range(ttl / 4, ttl * 5 / 2), Command::Unpause(node)));
            }
            2 => {
                commands.push((t, Command::Isolate(node, mode)));
                commands.push((t + rng.range(1_000, 2 * ttl), Command::Reconnect(node)));
            }
            3 => {
                commands.push((t, Command::DcsDown(mode)));
                commands.push((t + rng.range(1_000, ttl * 3 / 2), Command::DcsUp));
            }
            4 => commands.push((t, Command::PgCrash(node))),
            5 => {
                commands.push((t, Command::SlowClone(node, true)));
                if rng.percent(60) {
                    // Rebuild the node now, so that the slow clone actually happens.
                    commands.push((t, Command::Wipe(node)));
                    commands.push((t + rng.range(500, 5_000), Command::Restart(node)));
                }
                commands.push((t + rng.range(30_000, 120_000), Command::SlowClone(node, false)));
            }
            6 => {
                commands.push((t, Command::Wipe(node)));
                commands.push((t + rng.range(1_000, 20_000), Command::Restart(node)));
            }
            7 => commands.push((t, Command::Switchover(node))),
            _ => commands.push((t, Command::WriteBurst(rng.range(100_000, 4_000_000)))),
        }
    }
    commands.push((heal_at, Command::Heal));
    // Stable by time: commands at the same instant keep the order they were drawn in.
    commands.sort_by_key(|(t, _)| *t);
    let settle = 3 * (ttl + cfg.loop_wait_ms()) + 30_000;
    Schedule {
        commands,
        heal_at,
        end_at: heal_at + settle,
    }
}
