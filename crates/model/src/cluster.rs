//! The cluster as one read of the DCS shows it: Patroni's keys under `/<namespace>/<scope>/`.
//! Values keep the DCS version (etcd `mod_revision`) so writers can compare-and-swap.

use crate::member::Member;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A value together with the version it was read at, for compare-and-swap.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub version: i64,
    pub value: T,
}

/// The leader key: a plain member name bound to the holder's lease.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderKey {
    pub name: String,
    pub version: i64,
    /// The lease the key is attached to (0 when unknown); lets a holder see that its lease changed.
    pub lease: i64,
}

/// `status`: the leader's last published WAL position and slot positions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub optime: u64,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub slots: serde_json::Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retain_slots: Vec<String>,
}

/// `failover`: a requested switchover or failover.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Failover {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
}

impl Failover {
    pub fn is_empty(&self) -> bool {
        self.leader.is_none() && self.member.is_none()
    }
}

/// One line of `history`: `[timeline, lsn, reason, timestamp, new_leader]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryLine(pub u32, pub u64, pub String, pub Option<String>, pub Option<String>);

/// Everything one read of the cluster prefix returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterView {
    /// `None`: no key (cluster never bootstrapped). `Some("")`: bootstrap in progress.
    pub initialize: Option<String>,
    pub config: Option<Versioned<Value>>,
    pub leader: Option<LeaderKey>,
    pub members: Vec<Member>,
    pub status: Option<Status>,
    pub failover: Option<Versioned<Failover>>,
    pub history: Option<Vec<HistoryLine>>,
    pub sync: Option<Versioned<Value>>,
}

impl ClusterView {
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    pub fn leader_name(&self) -> Option<&str> {
        self.leader.as_ref().map(|l| l.name.as_str())
    }

    pub fn leader_member(&self) -> Option<&Member> {
        self.leader_name().and_then(|n| self.member(n))
    }

    /// The system identifier in `initialize`, when bootstrap has finished.
    pub fn sysid(&self) -> Option<&str> {
        self.initialize.as_deref().filter(|s| !s.is_empty())
    }

    /// The last leader position the cluster knows of, for lag checks.
    pub fn optime(&self) -> u64 {
        self.status.as_ref().map(|s| s.optime).unwrap_or(0)
    }

    pub fn timeline(&self) -> u32 {
        self.history
            .as_ref()
            .and_then(|h| h.last())
            .map(|l| l.0 + 1)
            .unwrap_or(1)
    }
}
