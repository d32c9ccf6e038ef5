//! The long actions of `crates/node/src/long_action.rs` on the Postgres model: each is a short
//! plan of timed phases (initdb then first start; stop then start as a replica; rewind then start;
//! ...), every phase applies its effect at its instant, and the last one reports the result through
//! the slot the daemon takes it from. A crash of the node discards the plan; a phase whose
//! precondition no longer holds (Postgres crashed meanwhile, the clone source went away) fails the
//! action, as the real step would.
//!
//! `Demote` stops Postgres, runs pg_rewind against the new upstream when there is one and
//! `use_pg_rewind` allows it, then starts as a replica; `Rejoin` stops a running Postgres (fast),
//! rewinds when allowed and starts as a replica (`long_action.rs` `run`, `rejoin`,
//! `rewind_if_allowed`). A rewind discards the WAL written after the fork point when the node
//! diverged.

use crate::clock::Millis;
use crate::pgmodel::{Data, Lineage, Pg, Src, common_prefix, diverged_from};
use crate::world::{Event, World};
use ferroni_decision::{LongAction, REMOTE_NAME, StopMode, Upstream};
use ferroni_model::PgRole;

/// The WAL position of a freshly initialised cluster (roughly what initdb leaves).
const INITDB_LSN: u64 = 0x0200_0000;
/// How often a fast shutdown's wait for its WAL senders is checked.
const DRAIN_POLL_MS: Millis = 200;
/// How much slower a base backup runs under the slow-clone fault.
const SLOW_CLONE_FACTOR: u64 = 30;

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Initdb,
    StartPrimary,
    StartReplica(Option<Src>),
    CloneFrom(Src),
    /// `pg_ctl promote`: the server is writable on a new timeline, but its control file names the
    /// old one until the checkpoint that follows.
    Promote,
    /// The checkpoint after promote (then the configuration is rewritten and reloaded).
    Checkpoint,
    /// A fast shutdown waits for its WAL senders: done when every directly connected streaming
    /// replica has everything, when Postgres is gone, or at pg_ctl's timeout.
    Drain {
        until: Millis,
    },
    Stop {
        clean: bool,
    },
    Repoint(Option<Src>),
    /// pg_rewind against this source (`rewind_if_allowed`, planned only when `use_pg_rewind`
    /// allows it): rewinds when the data diverged from it, fails when the source cannot be reached.
    Rewind(Src),
    /// Empty the data directory.
    Wipe,
    Fail(&'static str),
}

impl World {
    /// `LongActions::start`: refuses while another action occupies the slot.
    pub(crate) fn start_action(&mut self, i: usize, action: LongAction) {
        let now = self.now();
        let who = self.nodes[i].name().to_string();
        if let Some(r) = &self.nodes[i].slot {
            let line = format!(
                "not starting {}: {} is still in progress",
                action.name(),
                r.action.name()
            );
            self.log.push(now, &who, line);
            return;
        }
        self.check_action_start(i, &action);
        let mut plan = self.plan(i, &action);
        let id = self.new_action_id();
        self.log
            .push(now, &who, format!("background action starts: {}", action.name()));
        self.nodes[i].slot = Some(crate::node::RunningAction {
            action,
            id,
            result: None,
        });
        let (delay, phase) = plan.remove(0);
        self.clock.schedule(
            now + delay,
            Event::Phase {
                node: i,
                action: id,
                phase,
                rest: plan,
            },
        );
    }

    /// `AbortLongAction`: the background task is cancelled where it stands.
    pub(crate) fn abort_action(&mut self, i: usize) {
        if let Some(a) = self.nodes[i].slot.take() {
            let now = self.now();
            let who = self.nodes[i].name().to_string();
            self.log
                .push(now, &who, format!("background action aborted: {}", a.action.name()));
        }
    }

    pub(crate) fn src(&self, u: Option<&Upstream>) -> Option<Src> {
        let u = u?;
        if u.name == REMOTE_NAME {
            return Some(Src::Remote);
        }
        self.node_index(&u.name).map(Src::Node)
    }

    fn stop_ms(&mut self, mode: StopMode) -> Millis {
        match mode {
            StopMode::Immediate => self.rng.range(50, 300),
            StopMode::Fast => self.rng.range(300, 1_500),
        }
    }

    /// The phases of stopping Postgres in `mode`: a fast shutdown of a primary disconnects clients
    /// at once and drains its WAL senders before the postmaster exits. Stopping a server that does
    /// not run returns at once (`PgControl::stop`: `NotRunning`).
    fn stop_phases(&mut self, i: usize, mode: StopMode) -> Vec<(Millis, Phase)> {
        let stop = Phase::Stop {
            clean: mode == StopMode::Fast,
        };
        if !matches!(self.nodes[i].pg, Pg::Running { .. }) {
            return vec![(self.rng.range(1, 20), stop)];
        }
        let stop_ms = self.stop_ms(mode);
        if mode == StopMode::Immediate || !self.nodes[i].pg.is_primary() {
            return vec![(stop_ms, stop)];
        }
        if let Pg::Running { draining, .. } = &mut self.nodes[i].pg {
            *draining = true;
        }
        let until = self.now() + u64::from(self.nodes[i].config.postgresql.pg_ctl_timeout) * 1_000;
        vec![(DRAIN_POLL_MS, Phase::Drain { until }), (stop_ms, stop)]
    }

    /// Whether the WAL senders of node `i` have nothing left to send to a connected replica.
    fn drained(&self, i: usize) -> bool {
        let Pg::Running { data, .. } = &self.nodes[i].pg else {
            return true;
        };
        self.nodes.iter().all(|n| match &n.pg {
            Pg::Running {
                upstream: Some(Src::Node(u)),
                streaming: true,
                data: r,
                ..
            } if *u == i => r.lsn >= data.lsn,
            _ => true,
        })
    }

    fn clone_ms(&self, i: usize, src: Src) -> Millis {
        let size = match src {
            Src::Remote => self.remote.as_ref().map_or(0, |d| d.lsn),
            Src::Node(j) => self.nodes[j].pg.data().map_or(0, |d| d.lsn),
        };
        let ms = 1_000 + size * 1_000 / self.nodes[i].spec.clone_rate.max(1);
        if self.nodes[i].slow_clone {
            ms * SLOW_CLONE_FACTOR
        } else {
            ms
        }
    }

    /// `rewind_if_allowed`: the local `postgresql.use_pg_rewind` wins over the dynamic setting
    /// (which a run never changes, so the plan can ask at its start).
    fn rewind_allowed(&self, i: usize) -> bool {
        self.nodes[i]
            .config
            .postgresql
            .use_pg_rewind
            .unwrap_or(self.cfg.dynamic.use_pg_rewind)
    }

    fn plan(&mut self, i: usize, action: &LongAction) -> Vec<(Millis, Phase)> {
        let start = self.rng.range(300, 1_200);
        match action {
            LongAction::Bootstrap => vec![
                (self.rng.range(500, 1_500), Phase::Initdb),
                (start, Phase::StartPrimary),
            ],
            LongAction::CreateReplica { source, .. } => match self.src(source.as_ref()) {
                Some(src) => vec![(self.clone_ms(i, src), Phase::CloneFrom(src))],
                None => vec![(100, Phase::Fail("no replica method works without a leader"))],
            },
            LongAction::Reinitialize { source, .. } => match self.src(Some(source)) {
                Some(src) => {
                    let mut plan = self.stop_phases(i, StopMode::Immediate);
                    plan.push((10, Phase::Wipe));
                    plan.push((self.clone_ms(i, src), Phase::CloneFrom(src)));
                    plan
                }
                None => vec![(100, Phase::Fail("unknown reinitialize source"))],
            },
            LongAction::StartPrimary => vec![(start, Phase::StartPrimary)],
            LongAction::StartReplica { upstream } => vec![(start, Phase::StartReplica(self.src(upstream.as_ref())))],
            LongAction::Promote => vec![
                (self.rng.range(200, 1_000), Phase::Promote),
                (self.rng.range(50, 1_000), Phase::Checkpoint),
            ],
            LongAction::Demote { mode, upstream } => {
                let src = self.src(upstream.as_ref());
                let mut plan = self.stop_phases(i, *mode);
                // The new leader may have forked before this node's last WAL: rewind before following.
                if let Some(src) = src
                    && self.rewind_allowed(i)
                {
                    plan.push((self.rng.range(200, 2_000), Phase::Rewind(src)));
                }
                plan.push((start, Phase::StartReplica(src)));
                plan
            }
            LongAction::Follow { upstream } => {
                vec![(self.rng.range(50, 200), Phase::Repoint(self.src(upstream.as_ref())))]
            }
            LongAction::Rejoin { upstream } => match self.src(Some(upstream)) {
                Some(src) => {
                    // A demoted replica may still run: pg_rewind needs a cleanly stopped target.
                    let mut plan = self.stop_phases(i, StopMode::Fast);
                    if self.rewind_allowed(i) {
                        plan.push((self.rng.range(200, 2_000), Phase::Rewind(src)));
                    }
                    plan.push((start, Phase::StartReplica(Some(src))));
                    plan
                }
                None => vec![(100, Phase::Fail("unknown rejoin upstream"))],
            },
            LongAction::Stop { mode } => self.stop_phases(i, *mode),
            LongAction::Restart => {
                let again = match &self.nodes[i].pg {
                    Pg::Running {
                        role: PgRole::Replica,
                        upstream,
                        ..
                    } => Phase::StartReplica(*upstream),
                    _ => Phase::StartPrimary,
                };
                let mut plan = self.stop_phases(i, StopMode::Fast);
                plan.push((start, again));
                plan
            }
        }
    }

    pub(crate) fn run_phase(&mut self, i: usize, id: u64, phase: Phase, mut rest: Vec<(Millis, Phase)>) {
        let live = self.nodes[i]
            .slot
            .as_ref()
            .is_some_and(|s| s.id == id && s.result.is_none());
        if !live {
            return; // the node crashed or the action was aborted
        }
        if let Phase::Drain { until } = phase
            && self.now() < until
            && !self.drained(i)
        {
            let at = self.now() + DRAIN_POLL_MS;
            let event = Event::Phase {
                node: i,
                action: id,
                phase,
                rest,
            };
            self.clock.schedule(at, event);
            return;
        }
        let result = self.apply_phase(i, &phase);
        if result.is_ok() && !rest.is_empty() {
            let (delay, next) = rest.remove(0);
            let at = self.now() + delay;
            self.clock.schedule(
                at,
                Event::Phase {
                    node: i,
                    action: id,
                    phase: next,
                    rest,
                },
            );
            return;
        }
        let n = &mut self.nodes[i];
        let bootstrap = n.slot.as_ref().is_some_and(|s| s.action == LongAction::Bootstrap);
        let result = result.map(|_| {
            if bootstrap {
                n.pg.data().map(Data::sysid_text)
            } else {
                None
            }
        });
        let name = n.slot.as_ref().map_or("", |s| s.action.name());
        let line = match &result {
            Ok(_) => format!("background action finished: {name}"),
            Err(e) => format!("background action failed: {name}: {e}"),
        };
        if let Some(s) = &mut n.slot {
            s.result = Some(result);
        }
        let who = n.name().to_string();
        self.log.push(self.now(), &who, line);
        self.notify(i);
    }

    fn apply_phase(&mut self, i: usize, phase: &Phase) -> Result<(), String> {
        let now = self.now();
        match phase {
            Phase::Initdb => {
                let uid = self.new_uid();
                self.nodes[i].pg = Pg::Stopped {
                    data: Data {
                        lineage: Lineage {
                            sysid: 7_300_000_000_000_000_000 + uid,
                            past: vec![],
                            timeline: 1,
                            uid,
                        },
                        lsn: INITDB_LSN,
                    },
                    clean: true,
                    standby: false,
                };
                self.stats.bootstraps += 1;
                Ok(())
            }
            Phase::StartPrimary => {
                let uid = self.new_uid();
                let pg = &mut self.nodes[i].pg;
                match pg {
                    Pg::Stopped { data, standby, .. } => {
                        let mut data = data.clone();
                        if *standby {
                            // No recovery signal: crash recovery, then a primary on the same
                            // timeline number, but on WAL history of its own from here on.
                            data.fork(uid, false);
                            self.stats.promotions += 1;
                        }
                        *pg = running(data, PgRole::Primary, None, now);
                        Ok(())
                    }
                    Pg::Running {
                        role: PgRole::Primary, ..
                    } => Ok(()),
                    Pg::Running { .. } => Err("another server is running in the data directory".into()),
                    _ => Err("no data directory".into()),
                }
            }
            Phase::StartReplica(upstream) => match &self.nodes[i].pg {
                Pg::Stopped { data, .. } => {
                    self.nodes[i].pg = running(data.clone(), PgRole::Replica, *upstream, now);
                    Ok(())
                }
                Pg::Running { .. } => Err("another server is running in the data directory".into()),
                _ => Err("no data directory".into()),
            },
            Phase::CloneFrom(src) => match self.stream_source(i, *src) {
                Some(data) => {
                    self.nodes[i].pg = running(data, PgRole::Replica, Some(*src), now);
                    Ok(())
                }
                None => {
                    self.nodes[i].pg = Pg::NoData;
                    Err(format!(
                        "pg_basebackup from {} failed: not reachable or not running",
                        self.host(*src)
                    ))
                }
            },
            Phase::Promote => {
                let uid = self.new_uid();
                match &mut self.nodes[i].pg {
                    Pg::Running {
                        data,
                        role: role @ PgRole::Replica,
                        upstream,
                        ..
                    } => {
                        data.fork(uid, true);
                        *role = PgRole::Primary;
                        *upstream = None;
                        self.stats.promotions += 1;
                        self.nodes[i].checkpoint_pending = true;
                        Ok(())
                    }
                    _ => Err("server is not in standby mode".into()),
                }
            }
            Phase::Checkpoint => {
                self.nodes[i].checkpoint_pending = false;
                match self.nodes[i].pg {
                    Pg::Running { .. } => Ok(()),
                    _ => Err("postgres is not running".into()),
                }
            }
            // The signal file stays as it was: a stopped primary has none until `start_replica`
            // (or a rewind that rewound) writes `standby.signal`.
            Phase::Stop { clean } => {
                let pg = &mut self.nodes[i].pg;
                if let Pg::Running { data, role, .. } = pg {
                    *pg = Pg::Stopped {
                        data: data.clone(),
                        clean: *clean,
                        standby: *role == PgRole::Replica,
                    };
                }
                Ok(())
            }
            Phase::Repoint(upstream) => match &mut self.nodes[i].pg {
                Pg::Running {
                    role: PgRole::Replica,
                    upstream: current,
                    ..
                } => {
                    *current = *upstream;
                    Ok(())
                }
                _ => Err("postgres is not running as a replica".into()),
            },
            Phase::Rewind(src) => self.rewind(i, *src),
            Phase::Drain { .. } => Ok(()),
            Phase::Wipe => {
                self.nodes[i].pg = Pg::NoData;
                Ok(())
            }
            Phase::Fail(why) => Err((*why).to_string()),
        }
    }

    /// pg_rewind (`rewind_if_allowed`): a stopped data directory that holds WAL its new upstream
    /// does not have goes back to the fork point, takes the upstream's timeline history and gets
    /// `standby.signal`; one that did not diverge, or is on the same timeline number as the
    /// source, is left as it is ("no rewind required"). Needs the source running. A failure
    /// removes the data directory only with `remove_data_directory_on_rewind_failure`.
    fn rewind(&mut self, i: usize, src: Src) -> Result<(), String> {
        let result = self.run_pg_rewind(i, src);
        if let Err(e) = &result
            && self.nodes[i].config.postgresql.remove_data_directory_on_rewind_failure
        {
            self.nodes[i].pg = Pg::NoData;
            return Err(format!("pg_rewind failed, data directory removed: {e}"));
        }
        result.map_err(|e| format!("pg_rewind failed: {e}"))
    }

    fn run_pg_rewind(&mut self, i: usize, src: Src) -> Result<(), String> {
        let source = self.stream_source(i, src);
        // The source's control file names the timeline of its last checkpoint: the one before its
        // promotion until the checkpoint after promote.
        let checkpoint_pending = matches!(src, Src::Node(j) if self.nodes[j].checkpoint_pending);
        // For the report: the source had not finished its promotion (not promoted yet, or no
        // checkpoint yet), so it could not look diverged to pg_rewind.
        let promoting = matches!(src, Src::Node(j) if self.nodes[j]
            .slot
            .as_ref()
            .is_some_and(|s| s.action == LongAction::Promote && s.result.is_none()));
        let Pg::Stopped { data, standby, clean } = &mut self.nodes[i].pg else {
            return Err("cannot run pg_rewind: postgres is running".into());
        };
        if *standby && !*clean {
            // `PgControl::rewind`: single-user crash recovery would end a standby's recovery.
            return Err(
                "cannot rewind: the standby was not shut down cleanly; start it as a standby and stop it \
                        (fast) first, or reinitialize it"
                    .into(),
            );
        }
        let Some(source) = source else {
            return Err("could not connect to the source server".into());
        };
        if data.lineage.sysid != source.lineage.sysid {
            return Err("source and target clusters are from different systems".into());
        }
        let source_timeline = match source.lineage.past.last() {
            Some(before) if checkpoint_pending => before.timeline,
            _ => source.lineage.timeline,
        };
        if diverged_from(data, &source) {
            if data.lineage.timeline == source_timeline {
                // pg_rewind compares the timelines of the two control files first: on the same
                // number it finds nothing to rewind, whatever the histories (a source still
                // promoting, before its checkpoint; a timeline number reused without an archive).
                self.stats.rewinds_skipped_same_timeline += 1;
                self.nodes[i].rewind_skipped = Some(promoting);
                return Ok(());
            }
            data.lsn = common_prefix(data, &source);
            data.lineage = source.lineage.clone();
            *standby = true;
            self.stats.rewinds += 1;
        }
        Ok(())
    }
}

fn running(data: Data, role: PgRole, upstream: Option<Src>, since: Millis) -> Pg {
    Pg::Running {
        data,
        role,
        upstream,
        streaming: false,
        draining: false,
        since,
    }
}
