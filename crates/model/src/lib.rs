//! The vocabulary every ferroni crate shares: members, LSNs, roles, the cluster as read from the DCS,
//! and the validated configuration. Nothing here does I/O; parsing of configuration text lives in
//! `ferroni-config`, the DCS key layout in `ferroni-dcs`.

pub mod cluster;
pub mod config;
pub mod lsn;
pub mod member;
pub mod pgstate;
pub mod shellwords;
pub mod time;

pub use cluster::{ClusterView, Failover, HistoryLine, LeaderKey, Status, Versioned};
pub use config::*;
pub use lsn::Lsn;
pub use member::{Member, MemberData, Role, slot_name};
pub use pgstate::{PgRole, PgState, ReplicationInfo};

/// The version string ferroni puts in member keys and `/patroni`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
