//! ferroni's REST API: Patroni-compatible answers for load balancers (HAProxy `option httpchk`,
//! Kubernetes probes), patronictl, monitoring and scripts.
//!
//! The daemon owns the HA loop and publishes a [`NodeSnapshot`] through a [`SnapshotHandle`] once
//! per cycle; health endpoints answer from that snapshot alone (no DCS or SQL on the hot path), while
//! `/cluster`, `/history` and `/config` read the DCS on demand. The daemon binds the port itself and
//! hands the listener to [`serve`], or to [`serve_tls`] when `restapi.certfile` is set (HTTPS;
//! see [`tls`]).
//!
//! Actions: `POST /switchover` and `/failover` write the DCS `failover` key and wait for the leader
//! key to move (the HA loops act on the key); `/restart`, `/reload` and `/reinitialize` are
//! validated here and carried out by the daemon through the [`NodeControl`] trait.
//!
//! ```ignore
//! let snapshots = SnapshotHandle::default();
//! let wake = Arc::new(tokio::sync::Notify::new());
//! let state = ApiState::new(snapshots.clone(), dcs.clone())
//!     .with_validator(Arc::new(|cfg| ferroni_config::validate_dynamic(cfg).map(|_| ()).map_err(|e| e.to_string())))
//!     .with_wake(wake.clone())
//!     .with_credentials(config.restapi.authentication.as_ref())
//!     .with_control(Arc::new(daemon_control)); // impl NodeControl: restart, reload, reinitialize
//! tokio::spawn(ferroni_api::serve(listener, state, shutdown_signal));
//! // each HA cycle:
//! snapshots.publish(NodeSnapshot { .. });
//! // in the loop's sleep: tokio::select! { _ = wake.notified() => {}, _ = sleep(loop_wait) => {} }
//! ```
//!
//! Failure story: the server itself only fails to start if the listener is unusable (the daemon
//! sees that as the error of [`serve`]). Per request, DCS trouble turns into 502/503 answers, bad
//! input into 400/411/413, and a stale snapshot into honest 503s from the health checks.

pub mod auth;
pub mod cluster;
pub mod control;
mod handlers;
pub mod health;
pub mod metrics;
pub mod server;
pub mod snapshot;
pub mod status;
pub mod timestamp;
pub mod tls;

pub use control::{ApiError, NodeControl, RestartRequest};
pub use server::{ApiState, ConfigValidator, router, serve};
pub use snapshot::{ExtraMetric, NodeSnapshot, PgStatus, Published, ReplicationConn, SnapshotHandle, Xlog, states};
pub use tls::{ClientTls, TlsError, TlsSettings, serve_tls};
