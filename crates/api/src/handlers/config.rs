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

use super::body::read_object;
use super::{json, text};
use crate::server::ApiState;
use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use ferroni_config::merge_patch;
use serde_json::Value;

async fn read_json_object(headers: &HeaderMap, body: Body) -> Result<Value, Response> {
    read_object(headers, body, false).await.map(Value::Object)
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
