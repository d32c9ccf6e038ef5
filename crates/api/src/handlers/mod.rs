//! Request handlers, one module per area. The dispatch table lives in `server.rs`; a new endpoint
//! is a function here plus one line there.
//!
//! - `health`: answers from the published snapshot only (health checks, `/patroni`, `/metrics`,
//!   `/liveness`, `/readiness`). No DCS or SQL, no body parsing: this is the hot path.
//! - `dcs`: read-only views that load the DCS on demand (`/cluster`, `/history`, `GET /config`).
//! - `config`: `PATCH` and `PUT /config`.
//! - `switchover`: `POST /switchover`, `POST /failover`, `DELETE /switchover`, done with the DCS
//!   `failover` key alone (the HA loops act on it).
//! - `node`: `POST`/`DELETE /restart`, `POST /reload`, `POST /reinitialize`, validated here and
//!   carried out by the daemon's [`crate::NodeControl`].
//! - `body`: JSON request bodies with Patroni's 411/400 rules and a size limit.
//!
//! Failure story: handlers never panic on input; every problem is an HTTP status with a short
//! plain-text reason.

pub(crate) mod body;
pub(crate) mod config;
pub(crate) mod dcs;
pub(crate) mod health;
pub(crate) mod node;
pub(crate) mod switchover;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

fn with_body(code: u16, content_type: HeaderValue, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(header::CONTENT_TYPE, content_type);
    resp
}

/// Status line only, what HAProxy's OPTIONS/HEAD checks and the probes read.
pub(crate) fn status_only(code: u16) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

/// Pre-rendered JSON; cloning `Bytes` only bumps a reference count.
pub(crate) fn json_bytes(code: u16, body: &Bytes) -> Response {
    with_body(code, JSON, Body::from(body.clone()))
}

pub(crate) fn json(code: u16, value: &Value) -> Response {
    match serde_json::to_vec(value) {
        Ok(v) => with_body(code, JSON, Body::from(v)),
        Err(e) => text(500, format!("cannot encode JSON: {e}")),
    }
}

pub(crate) fn text(code: u16, message: impl Into<String>) -> Response {
    with_body(code, TEXT, Body::from(message.into()))
}

/// An [`ApiError`](crate::ApiError) as a plain-text response; helpers return the small error
/// and handlers turn it into a `Response` at the end.
pub(crate) fn refuse(e: crate::ApiError) -> Response {
    text(e.status, e.message)
}

pub(crate) fn metrics_text(body: &Bytes) -> Response {
    with_body(
        200,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        Body::from(body.clone()),
    )
}
