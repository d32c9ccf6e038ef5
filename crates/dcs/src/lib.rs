//! The distributed configuration store: the small trait the daemon, the REST API and the CLI use,
//! Patroni's key layout and JSON under `/<namespace>/<scope>/`, and its backends (etcd v3 for real
//! clusters, an in-memory one for the decision simulation and unit tests).
//!
//! Failure story: every call either answers or fails within the configured retry timeout. "Lost a
//! race" (`Ok(false)`) is never confused with "the DCS is unavailable" (`Err`): the first makes a node
//! follow, the second makes a primary demote.

mod api;
mod codec;
mod etcd;
mod etcd_cache;
pub mod keys;
mod memory;

pub use api::{Dcs, DcsError, NodeIdentity};
pub use etcd::EtcdDcs;
pub use memory::{MemoryDcs, MemoryStore};
