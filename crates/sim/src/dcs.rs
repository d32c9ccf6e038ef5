//! A synchronous in-memory DCS on the virtual clock, with the semantics of
//! `ferroni_dcs::MemoryDcs` (which is async and tokio-timed, so the simulation cannot use it):
//! one lease per node, granted on first use and renewed by every lease-bound write; the leader and
//! member keys are attached to it and vanish when it is not renewed for `ttl`; `acquire_leader` is
//! create-if-absent; `update_leader` succeeds only while the key names this node (moving it onto
//! the node's current lease) or is free.
//!
//! Failure: an operation of a node that cannot reach the DCS returns [`Unreachable`] and says how
//! long the caller waited for that answer (at once for a refused connection, `retry_timeout` for a
//! partition that drops packets). Leases keep running out meanwhile, as in `MemoryStore`.

use crate::clock::Millis;
use ferroni_model::{ClusterView, Failover, HistoryLine, LeaderKey, Member, MemberData, Status, Versioned};
use serde_json::Value;
use std::collections::BTreeMap;

pub type LeaseId = u64;

/// How a node experiences an unreachable DCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Connection refused: every call fails at once.
    Refused,
    /// Packets dropped: every call fails after the caller's bound (`retry_timeout`).
    Timeout,
}

/// The DCS did not answer; `mode` says how long the call took to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreachable {
    pub mode: FailMode,
}

pub type DcsResult<T> = Result<T, Unreachable>;

/// One node's connection: its name and the lease it holds (lost when the daemon dies).
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub name: String,
    pub lease: Option<LeaseId>,
}

#[derive(Debug, Clone)]
struct Lease {
    owner: String,
    expires: Millis,
}

#[derive(Debug, Clone)]
struct Leader {
    name: String,
    lease: LeaseId,
    version: i64,
}

#[derive(Debug, Clone)]
struct MemberKey {
    data: MemberData,
    lease: LeaseId,
}

#[derive(Debug, Default)]
pub struct Dcs {
    ttl_ms: Millis,
    revision: i64,
    initialize: Option<String>,
    config: Option<Versioned<Value>>,
    leader: Option<Leader>,
    members: BTreeMap<String, MemberKey>,
    status: Option<Status>,
    failover: Option<Versioned<Failover>>,
    history: Option<Vec<HistoryLine>>,
    leases: BTreeMap<LeaseId, Lease>,
    next_lease: LeaseId,
    /// The whole DCS is unreachable for everybody.
    pub outage: Option<FailMode>,
    /// Nodes cut off from the DCS.
    pub cut_off: BTreeMap<String, FailMode>,
    /// Bumped whenever the leader key is written or deleted (what `watch_leader` reports); a renewal
    /// that does not rewrite the key does not bump it.
    pub leader_epoch: u64,
}

impl Dcs {
    pub fn new(ttl_secs: u32) -> Dcs {
        Dcs {
            ttl_ms: u64::from(ttl_secs) * 1000,
            next_lease: 1,
            ..Dcs::default()
        }
    }

    pub fn reachable(&self, name: &str) -> DcsResult<()> {
        match self.outage.or_else(|| self.cut_off.get(name).copied()) {
            Some(mode) => Err(Unreachable { mode }),
            None => Ok(()),
        }
    }

    /// When the next lease runs out, if any lease exists.
    pub fn next_expiry(&self) -> Option<Millis> {
        self.leases.values().map(|l| l.expires).min()
    }

    /// Deletes the keys of every lease whose TTL ran out by `now`, as etcd's lessor does; returns
    /// the owners of the expired leases.
    pub fn expire(&mut self, now: Millis) -> Vec<String> {
        let expired: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut owners = Vec::new();
        for id in expired {
            if let Some(l) = self.leases.remove(&id) {
                owners.push(l.owner);
            }
            self.members.retain(|_, m| m.lease != id);
            if self.leader.as_ref().is_some_and(|l| l.lease == id) {
                self.leader = None;
                self.bump_leader();
            }
        }
        owners
    }

    /// The holder of the leader key right now (after expiry), for invariants and scenarios.
    pub fn leader_name(&self) -> Option<&str> {
        self.leader.as_ref().map(|l| l.name.as_str())
    }

    pub fn optime(&self) -> Option<u64> {
        self.status.as_ref().map(|s| s.optime)
    }

    pub fn initialize(&self) -> Option<&str> {
        self.initialize.as_deref()
    }

    pub fn load(&self, c: &Client) -> DcsResult<ClusterView> {
        self.reachable(&c.name)?;
        Ok(ClusterView {
            initialize: self.initialize.clone(),
            config: self.config.clone(),
            leader: self.leader.as_ref().map(|l| LeaderKey {
                name: l.name.clone(),
                version: l.version,
                lease: l.lease as i64,
            }),
            members: self
                .members
                .iter()
                .map(|(name, m)| Member {
                    name: name.clone(),
                    data: m.data.clone(),
                })
                .collect(),
            status: self.status.clone(),
            failover: self.failover.clone(),
            history: self.history.clone(),
            sync: None,
        })
    }

    pub fn attempt_initialize(&mut self, c: &Client) -> DcsResult<bool> {
        self.reachable(&c.name)?;
        if self.initialize.is_some() {
            return Ok(false);
        }
        self.revision += 1;
        self.initialize = Some(String::new());
        Ok(true)
    }

    pub fn set_initialize(&mut self, c: &Client, sysid: &str) -> DcsResult<()> {
        self.reachable(&c.name)?;
        self.revision += 1;
        self.initialize = Some(sysid.to_string());
        Ok(())
    }

    pub fn cancel_initialize(&mut self, c: &Client) -> DcsResult<()> {
        self.reachable(&c.name)?;
        self.revision += 1;
        self.initialize = None;
        Ok(())
    }

    pub fn acquire_leader(&mut self, c: &mut Client, now: Millis) -> DcsResult<bool> {
        self.reachable(&c.name)?;
        let lease = self.ensure_lease(c, now);
        match &self.leader {
            None => {
                self.put_leader(&c.name, lease);
                Ok(true)
            }
            Some(l) => Ok(l.name == c.name && l.lease == lease),
        }
    }

    pub fn update_leader(&mut self, c: &mut Client, now: Millis) -> DcsResult<bool> {
        self.reachable(&c.name)?;
        let lease = self.ensure_lease(c, now);
        match &self.leader {
            Some(l) if l.name == c.name && l.lease == lease => Ok(true),
            Some(l) if l.name != c.name => Ok(false),
            // Ours on an older lease (the daemon restarted within the TTL), or free: (re)create it.
            _ => {
                self.put_leader(&c.name, lease);
                Ok(true)
            }
        }
    }

    pub fn release_leader(&mut self, c: &Client) -> DcsResult<()> {
        self.reachable(&c.name)?;
        if self.leader.as_ref().is_some_and(|l| l.name == c.name) {
            self.leader = None;
            self.bump_leader();
        }
        Ok(())
    }

    pub fn touch_member(&mut self, c: &mut Client, data: MemberData, now: Millis) -> DcsResult<()> {
        self.reachable(&c.name)?;
        let lease = self.ensure_lease(c, now);
        self.revision += 1;
        self.members.insert(c.name.clone(), MemberKey { data, lease });
        Ok(())
    }

    pub fn write_config(&mut self, c: &Client, value: &Value) -> DcsResult<bool> {
        self.reachable(&c.name)?;
        if self.config.is_some() {
            return Ok(false);
        }
        self.revision += 1;
        self.config = Some(Versioned {
            version: self.revision,
            value: value.clone(),
        });
        Ok(true)
    }

    pub fn write_status(&mut self, c: &Client, optime: u64) -> DcsResult<()> {
        self.reachable(&c.name)?;
        self.revision += 1;
        self.status = Some(Status {
            optime,
            ..Default::default()
        });
        Ok(())
    }

    pub fn write_history(&mut self, c: &Client, lines: Vec<HistoryLine>) -> DcsResult<()> {
        self.reachable(&c.name)?;
        self.revision += 1;
        self.history = Some(lines);
        Ok(())
    }

    /// Writes `failover` as `ferronictl switchover` would (the operator's side, never cut off).
    pub fn request_switchover(&mut self, leader: Option<String>, member: Option<String>) {
        self.revision += 1;
        self.failover = Some(Versioned {
            version: self.revision,
            value: Failover {
                leader,
                member,
                scheduled_at: None,
            },
        });
    }

    /// A member key as an operator's tool reads it (not subject to a node's reachability).
    pub fn member(&self, name: &str) -> Option<&MemberData> {
        self.members.get(name).map(|m| &m.data)
    }

    /// `ClusterView::timeline`: one past the last timeline in `history`.
    pub fn cluster_timeline(&self) -> u32 {
        self.history.as_ref().and_then(|h| h.last()).map_or(1, |l| l.0 + 1)
    }

    /// The member a pending `failover` key names.
    pub fn failover_candidate(&self) -> Option<&str> {
        self.failover.as_ref().and_then(|f| f.value.member.as_deref())
    }

    pub fn failover_pending(&self) -> bool {
        self.failover.is_some()
    }

    pub fn delete_failover(&mut self, c: &Client) -> DcsResult<()> {
        self.reachable(&c.name)?;
        self.revision += 1;
        self.failover = None;
        Ok(())
    }

    /// Renews the client's lease, or grants a new one when it has none or it ran out.
    fn ensure_lease(&mut self, c: &mut Client, now: Millis) -> LeaseId {
        if let Some(id) = c.lease
            && let Some(l) = self.leases.get_mut(&id)
        {
            l.expires = now + self.ttl_ms;
            return id;
        }
        let id = self.next_lease;
        self.next_lease += 1;
        self.leases.insert(
            id,
            Lease {
                owner: c.name.clone(),
                expires: now + self.ttl_ms,
            },
        );
        c.lease = Some(id);
        id
    }

    fn put_leader(&mut self, name: &str, lease: LeaseId) {
        self.revision += 1;
        self.leader = Some(Leader {
            name: name.to_string(),
            lease,
            version: self.revision,
        });
        self.bump_leader();
    }

    fn bump_leader(&mut self) {
        self.revision += 1;
        self.leader_epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str) -> Client {
        Client {
            name: name.into(),
            lease: None,
        }
    }

    #[test]
    fn leader_key_follows_the_lease() {
        let mut d = Dcs::new(10);
        let (mut a, mut b) = (client("a"), client("b"));
        assert_eq!(d.acquire_leader(&mut a, 0), Ok(true));
        assert_eq!(d.acquire_leader(&mut b, 1), Ok(false));
        assert_eq!(d.update_leader(&mut b, 2), Ok(false), "b may not take a's key");
        assert_eq!(d.update_leader(&mut a, 5_000), Ok(true));
        assert_eq!(
            d.expire(12_002),
            vec!["b".to_string()],
            "b's lease, renewed at 2 ms, runs out first"
        );
        assert_eq!(d.leader_name(), Some("a"));
        assert_eq!(d.expire(14_999), Vec::<String>::new());
        assert_eq!(d.expire(15_000), vec!["a".to_string()]);
        assert_eq!(d.leader_name(), None);
        assert_eq!(d.acquire_leader(&mut b, 15_001), Ok(true));
    }

    #[test]
    fn a_restarted_daemon_rebinds_its_key_to_a_new_lease() {
        let mut d = Dcs::new(10);
        let mut a = client("a");
        assert_eq!(d.acquire_leader(&mut a, 0), Ok(true));
        let mut restarted = client("a");
        assert_eq!(
            d.acquire_leader(&mut restarted, 1),
            Ok(false),
            "acquire needs the same lease"
        );
        assert_eq!(d.update_leader(&mut restarted, 1), Ok(true));
        d.expire(10_000);
        assert_eq!(d.leader_name(), Some("a"), "the key moved to the new lease");
    }

    #[test]
    fn cut_off_nodes_fail_and_others_do_not() {
        let mut d = Dcs::new(10);
        d.cut_off.insert("a".into(), FailMode::Timeout);
        assert!(d.load(&client("a")).is_err());
        assert!(d.load(&client("b")).is_ok());
        d.outage = Some(FailMode::Refused);
        assert!(d.load(&client("b")).is_err());
    }
}
