//! Snapshot-only endpoints: the generic health check, `/patroni`, `/metrics`, `/liveness`,
//! `/readiness`. Each is one `Arc` clone of the published snapshot plus the pure rules of
//! `crate::health`; bodies were rendered at publication.
//!
//! Failure story: none of these can fail; an old or default snapshot yields 503s, never an error.

use super::{json_bytes, metrics_text, status_only};
use crate::health;
use crate::server::ApiState;
use axum::response::Response;

/// Generic `do_GET`/`do_HEAD`/`do_OPTIONS`: status JSON with GET, status line only otherwise.
pub(crate) fn check(api: &ApiState, path: &str, query: Option<&str>, with_body: bool) -> Response {
    let published = api.snapshots.load();
    let code = health::health_check(path, query, published.snapshot());
    if with_body {
        json_bytes(code, published.status_json())
    } else {
        status_only(code)
    }
}

pub(crate) fn patroni(api: &ApiState) -> Response {
    json_bytes(200, api.snapshots.load().status_json())
}

pub(crate) fn metrics(api: &ApiState) -> Response {
    metrics_text(api.snapshots.load().metrics())
}

pub(crate) fn liveness(api: &ApiState) -> Response {
    let published = api.snapshots.load();
    status_only(health::liveness(published.snapshot(), published.heartbeat().elapsed()))
}

pub(crate) fn readiness(api: &ApiState, query: Option<&str>) -> Response {
    let published = api.snapshots.load();
    match health::readiness(query, published.snapshot()) {
        Ok(()) => status_only(health::OK),
        Err(reason) => {
            tracing::debug!("readiness check failed: {reason}");
            status_only(health::UNAVAILABLE)
        }
    }
}
