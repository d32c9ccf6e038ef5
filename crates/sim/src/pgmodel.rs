//! A model of one node's PostgreSQL: no data, a stopped data directory, or a running server (primary
//! or replica) with a WAL position on a timeline. Writes advance a primary; a replica streaming from
//! a running upstream catches up at its replication rate; a promotion starts a new timeline.
//!
//! Every data directory carries its [`Lineage`]: the system identifier and the timelines it went
//! through, each with a unique id. Real timelines are numbered, and two nodes promoted apart can both
//! be on "timeline 2" with different WAL; the unique ids let the simulation compute the ground truth
//! that Postgres itself cannot see: how much WAL two nodes really share ([`common_prefix`]). A replica
//! that holds WAL its upstream does not have has diverged and can never stream from it until
//! pg_rewind (`actions.rs`) takes it back to the fork point.

use crate::clock::Millis;
use ferroni_model::{Lsn, PgRole, PgState, ReplicationInfo};

/// A timeline that ended: the WAL up to `end` was written on timeline `uid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub uid: u64,
    pub timeline: u32,
    pub end: u64,
}

/// Where a data directory's WAL came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    pub sysid: u64,
    pub past: Vec<Segment>,
    pub timeline: u32,
    /// Unique id of the current timeline (never reused, unlike the number).
    pub uid: u64,
}

/// A data directory: its lineage and how far its WAL goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    pub lineage: Lineage,
    pub lsn: u64,
}

impl Data {
    pub fn sysid_text(&self) -> String {
        self.lineage.sysid.to_string()
    }

    /// Ends the current timeline at the current position and starts a new one: what a promotion
    /// does. `bump_number: false` models a standby started as a primary, which Postgres brings up
    /// after crash recovery on the same timeline number, but it is new WAL history all the same.
    pub fn fork(&mut self, uid: u64, bump_number: bool) {
        self.lineage.past.push(Segment {
            uid: self.lineage.uid,
            timeline: self.lineage.timeline,
            end: self.lsn,
        });
        self.lineage.uid = uid;
        if bump_number {
            self.lineage.timeline += 1;
        }
    }

    fn spans(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = self.lineage.past.iter().map(|s| (s.uid, s.end)).collect();
        v.push((self.lineage.uid, self.lsn));
        v
    }
}

/// How many bytes of WAL `a` and `b` really share: 0 for different clusters, else the position
/// where their histories part (or the shorter one ends).
pub fn common_prefix(a: &Data, b: &Data) -> u64 {
    if a.lineage.sysid != b.lineage.sysid {
        return 0;
    }
    let mut common = 0;
    for ((ua, ea), (ub, eb)) in a.spans().into_iter().zip(b.spans()) {
        if ua != ub {
            break;
        }
        common = ea.min(eb);
        if ea != eb {
            break;
        }
    }
    common
}

/// Whether `d` holds WAL that `upstream` does not have: it cannot stream from it.
pub fn diverged_from(d: &Data, upstream: &Data) -> bool {
    common_prefix(d, upstream) < d.lsn
}

/// Where a replica streams from: another node, or the remote primary of a standby cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    Node(usize),
    Remote,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Pg {
    NoData,
    /// A data directory that holds no valid cluster (an interrupted initdb or base backup).
    Invalid(&'static str),
    Stopped {
        data: Data,
        clean: bool,
        standby: bool,
    },
    Running {
        data: Data,
        role: PgRole,
        /// What it streams from (replicas only).
        upstream: Option<Src>,
        /// Whether the WAL receiver is connected right now.
        streaming: bool,
        /// A primary in a fast shutdown: no new writes, its WAL senders drain to the replicas.
        draining: bool,
        since: Millis,
    },
}

impl Pg {
    pub fn data(&self) -> Option<&Data> {
        match self {
            Pg::Stopped { data, .. } | Pg::Running { data, .. } => Some(data),
            _ => None,
        }
    }

    pub fn data_mut(&mut self) -> Option<&mut Data> {
        match self {
            Pg::Stopped { data, .. } | Pg::Running { data, .. } => Some(data),
            _ => None,
        }
    }

    pub fn is_primary(&self) -> bool {
        matches!(
            self,
            Pg::Running {
                role: PgRole::Primary,
                ..
            }
        )
    }

    /// A primary that accepts writes: running and not in a fast shutdown.
    pub fn is_writable(&self) -> bool {
        matches!(
            self,
            Pg::Running {
                role: PgRole::Primary,
                draining: false,
                ..
            }
        )
    }

    pub fn is_replica(&self) -> bool {
        matches!(
            self,
            Pg::Running {
                role: PgRole::Replica,
                ..
            }
        )
    }

    /// Postgres dies (crash, `kill -9`, node power loss): the data stays, the shutdown is unclean.
    pub fn crash(&mut self) {
        if let Pg::Running { data, role, .. } = self {
            *self = Pg::Stopped {
                data: data.clone(),
                clean: false,
                standby: *role == PgRole::Replica,
            };
        }
    }

    /// What ferroni's prober would report. `host` gives the `host:port` of an upstream.
    pub fn probe(&self, host: impl Fn(Src) -> String) -> PgState {
        match self {
            Pg::NoData => PgState::NoData,
            Pg::Invalid(reason) => PgState::InvalidData {
                reason: (*reason).to_string(),
            },
            Pg::Stopped { data, clean, standby } => PgState::Stopped {
                sysid: data.sysid_text(),
                timeline: data.lineage.timeline,
                clean_shutdown: *clean,
                standby: *standby,
            },
            Pg::Running {
                data,
                role,
                upstream,
                streaming,
                ..
            } => PgState::Running {
                sysid: data.sysid_text(),
                role: *role,
                timeline: data.lineage.timeline,
                lsn: Lsn(data.lsn),
                replication: (*role == PgRole::Replica).then(|| ReplicationInfo {
                    received: Some(Lsn(data.lsn)),
                    replayed: Some(Lsn(data.lsn)),
                    replayed_timestamp: None,
                    paused: false,
                    streaming: *streaming,
                    // The prober normalises primary_conninfo to host:port.
                    upstream: upstream.map(host),
                }),
                postmaster_start_time: None,
                server_version: 160_000,
            },
        }
    }
}

/// One step of streaming replication: `replica` receives up to `budget` bytes from `upstream`.
/// Returns whether the WAL receiver is connected. A replica whose history is a prefix of the
/// upstream's follows it across timeline switches; one that diverged stays disconnected.
pub fn stream(replica: &mut Data, upstream: &Data, budget: u64) -> bool {
    if replica.lineage.sysid != upstream.lineage.sysid {
        return false;
    }
    let common = common_prefix(replica, upstream);
    if common >= replica.lsn {
        if replica.lineage != upstream.lineage {
            replica.lineage = upstream.lineage.clone();
        }
        replica.lsn = upstream.lsn.min(replica.lsn.saturating_add(budget)).max(replica.lsn);
        return true;
    }
    // The upstream is behind on the same timeline (a lagging cascade): connected, nothing to fetch.
    common == upstream.lsn && replica.lineage.uid == upstream.lineage.uid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(lsn: u64) -> Data {
        Data {
            lineage: Lineage {
                sysid: 7,
                past: vec![],
                timeline: 1,
                uid: 1,
            },
            lsn,
        }
    }

    #[test]
    fn a_replica_catches_up_and_follows_a_promotion_it_has_not_passed() {
        let mut primary = data(1000);
        let mut replica = data(400);
        assert!(stream(&mut replica, &primary, 100));
        assert_eq!(replica.lsn, 500);
        primary.fork(2, true);
        primary.lsn = 1500;
        assert!(stream(&mut replica, &primary, 10_000));
        assert_eq!((replica.lsn, replica.lineage.timeline), (1500, 2));
    }

    #[test]
    fn an_old_primary_with_unreplicated_wal_has_diverged() {
        let mut old = data(1200);
        let mut new = data(1000);
        new.fork(2, true);
        new.lsn = 3000;
        assert_eq!(common_prefix(&old, &new), 1000);
        assert!(diverged_from(&old, &new));
        assert!(!stream(&mut old, &new, 10_000));
        assert_eq!(old.lsn, 1200, "a diverged replica receives nothing");
    }

    #[test]
    fn different_clusters_share_nothing() {
        let a = data(10);
        let mut b = data(10);
        b.lineage.sysid = 8;
        assert_eq!(common_prefix(&a, &b), 0);
    }
}
