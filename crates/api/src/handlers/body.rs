//! Reading a JSON request body the way Patroni's `_read_json_content` does, with limits.
//!
//! Failure story (status codes): 411 when a required body has no Content-Length, 400 for an
//! unparsable Content-Length or bad JSON, 413 over [`MAX_BODY`], 408 when the announced body does
//! not arrive within 10 s. An optional body may be absent (no Content-Length, or 0).

use super::text;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::{Map, Value};
use std::time::Duration;

/// Largest accepted body; a dynamic config is a few kilobytes, an action request a few bytes.
pub(crate) const MAX_BODY: usize = 1 << 20;
/// A client that announced a body but does not send it must not pin a connection forever.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The parsed body; `Ok(None)` only when `optional` and the client sent none.
pub(crate) async fn read_json(headers: &HeaderMap, body: Body, optional: bool) -> Result<Option<Value>, Response> {
    let Some(len) = headers.get(header::CONTENT_LENGTH) else {
        return if optional {
            Ok(None)
        } else {
            Err(text(411, "Content-Length required"))
        };
    };
    let len: usize = len
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| text(400, "invalid Content-Length"))?;
    if len == 0 && optional {
        return Ok(None);
    }
    if len > MAX_BODY {
        return Err(text(413, format!("request body over {MAX_BODY} bytes")));
    }
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, len)).await {
        Err(_) => return Err(text(408, "timed out reading the request body")),
        Ok(Err(e)) => return Err(text(400, format!("cannot read the request body: {e}"))),
        Ok(Ok(b)) => b,
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| text(400, format!("invalid JSON: {e}")))
}

/// A JSON object body. Required bodies must be non-empty objects (Patroni ignores `{}` there);
/// an absent optional body is an empty object.
pub(crate) async fn read_object(
    headers: &HeaderMap,
    body: Body,
    optional: bool,
) -> Result<Map<String, Value>, Response> {
    match read_json(headers, body, optional).await? {
        None => Ok(Map::new()),
        Some(Value::Object(m)) if optional || !m.is_empty() => Ok(m),
        Some(_) if optional => Err(text(400, "the body must be a JSON object")),
        Some(_) => Err(text(400, "the body must be a non-empty JSON object")),
    }
}
