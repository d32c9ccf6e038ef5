//! `PATCH /config` (JSON merge patch with compare-and-swap) and `PUT /config` (full replace).
//!
//! Both validate the resulting configuration with the daemon's validator before anything is
//! written, and wake the HA loop afterwards so the change applies at once instead of after up to
//! `loop_wait` seconds.
//!
//! Failure story (status codes): 411 without Content-Length, 413 over 1 MiB, 408 when the body does
//! not arrive within 10 s, 400 for bad JSON, a non-object or empty object, or a configuration the
//! validator rejects; PATCH: 503 when the DCS is unreachable or holds no config, 409 when the config
//! changed between read and write (the client retries); PUT: 502 when the write fails.

use super::{json, text};
use crate::merge::merge_patch;
use crate::server::ApiState;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::Value;
use std::time::Duration;

/// Largest accepted body; a dynamic config is a few kilobytes.
pub(crate) const MAX_BODY: usize = 1 << 20;
/// A client that announced a body but does not send it must not pin a connection forever.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

async fn read_json_object(headers: &HeaderMap, body: Body) -> Result<Value, Response> {
    let Some(len) = headers.get(header::CONTENT_LENGTH) else {
        return Err(text(411, "Content-Length required"));
    };
    let len: usize = len
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| text(400, "invalid Content-Length"))?;
    if len > MAX_BODY {
        return Err(text(413, format!("request body over {MAX_BODY} bytes")));
    }
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, len)).await {
        Err(_) => return Err(text(408, "timed out reading the request body")),
        Ok(Err(e)) => return Err(text(400, format!("cannot read the request body: {e}"))),
        Ok(Ok(b)) => b,
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| text(400, format!("invalid JSON: {e}")))?;
    match &value {
        Value::Object(m) if !m.is_empty() => Ok(value),
        _ => Err(text(400, "the body must be a non-empty JSON object")),
    }
}

/// The 400 answer when the validator rejects `config`.
fn rejection(api: &ApiState, config: &Value) -> Option<Response> {
    let msg = (api.validator)(config).err()?;
    tracing::warn!("rejected configuration change: {msg}");
    Some(text(400, msg))
}

pub(crate) async fn patch(api: &ApiState, headers: &HeaderMap, body: Body) -> Response {
    let patch = match read_json_object(headers, body).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let current = match api.dcs.load().await {
        Ok(view) => match view.config {
            Some(c) => c,
            None => return text(503, "no configuration in the DCS"),
        },
        Err(e) => return text(503, e.to_string()),
    };
    let mut next = current.value.clone();
    merge_patch(&mut next, &patch);
    if next != current.value {
        if let Some(resp) = rejection(api, &next) {
            return resp;
        }
        match api.dcs.write_config(&next, Some(current.version)).await {
            Ok(true) => tracing::info!("dynamic configuration changed through PATCH /config"),
            Ok(false) => return text(409, "the configuration was changed concurrently; retry"),
            Err(e) => return text(503, e.to_string()),
        }
    }
    api.wake.notify_one();
    json(200, &next)
}

pub(crate) async fn put(api: &ApiState, headers: &HeaderMap, body: Body) -> Response {
    let config = match read_json_object(headers, body).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if let Some(resp) = rejection(api, &config) {
        return resp;
    }
    // A failed read is no reason to refuse an unconditional replace; it only costs a redundant write.
    let unchanged = matches!(api.dcs.load().await, Ok(v) if v.config.as_ref().is_some_and(|c| c.value == config));
    if !unchanged {
        if let Err(e) = api.dcs.replace_config(&config).await {
            return text(502, e.to_string());
        }
        tracing::info!("dynamic configuration replaced through PUT /config");
    }
    api.wake.notify_one();
    json(200, &config)
}
