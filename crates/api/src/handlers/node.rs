//! Actions on this node, carried out by the daemon through [`NodeControl`]: `POST /restart`,
//! `DELETE /restart`, `POST /reload`, `POST /reinitialize`.
//!
//! The API does Patroni's request validation and the restart filters (against the published
//! snapshot) itself, so the daemon only sees well-formed requests.
//!
//! Failure story (status codes): 503 `not available` when no [`NodeControl`] is configured;
//! otherwise, for `/restart`: 400 for unknown keys or bad values (Patroni's messages), 500 for a
//! `schedule` while paused, 400 `scheduled restarts are not supported yet` for any other
//! `schedule`, 503 `restart conditions are not satisfied` when a filter does not match; then the
//! daemon's answer (200, or its [`ApiError`]). `DELETE /restart` is always 404 since restarts
//! cannot be scheduled. `/reload` answers 202, `/reinitialize` 200, or the daemon's error.
//! Bodies: 400 bad JSON, 413 over 1 MiB; an absent body is an empty request.

use super::body::read_object;
use super::{refuse, text};
use crate::control::{ApiError, NodeControl, RestartRequest};
use crate::server::ApiState;
use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use ferroni_model::Role;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const NOT_AVAILABLE: &str = "not available";
pub(crate) const CONDITIONS_NOT_SATISFIED: &str = "restart conditions are not satisfied";

fn control(api: &ApiState) -> Result<&Arc<dyn NodeControl>, ApiError> {
    api.control.as_ref().ok_or_else(|| ApiError::unavailable(NOT_AVAILABLE))
}

/// `Ok` is answered with `code` and the daemon's message (or Patroni's default text).
fn answer(result: Result<String, ApiError>, code: u16, default: &str) -> Response {
    match result {
        Ok(msg) if msg.is_empty() => text(code, default),
        Ok(msg) => text(code, msg),
        Err(e) => refuse(e),
    }
}

/// Patroni's `postgres_version_to_int`: `X.Y` (X >= 10) or `X.Y.Z`, e.g. `9.6.3` → 90603,
/// `16.4` → 160004.
pub(crate) fn postgres_version_to_int(version: &str) -> Result<u32, String> {
    let components: Vec<u32> = version
        .split('.')
        .map(|c| {
            let c = c.trim();
            if c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            c.parse().ok()
        })
        .collect::<Option<_>>()
        .ok_or_else(|| format!("Invalid PostgreSQL version: {version}"))?;
    let mut components = match components.as_slice() {
        [major, _] if *major >= 10 => components,
        [_, _, _] => components,
        _ => {
            return Err(format!(
                "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {version}"
            ));
        }
    };
    if components.len() == 2 {
        components.insert(1, 0);
    }
    if components[1] > 99 || components[2] > 99 {
        return Err(format!("Invalid PostgreSQL version: {version}"));
    }
    Ok(components[0].saturating_mul(10_000) + components[1] * 100 + components[2])
}

/// Patroni's `parse_int(value, 's')`: a number of seconds, or a string with an optional unit
/// (`ms`, `s`, `min`, `h`, `d`), rounded to whole seconds.
pub(crate) fn parse_timeout(value: &Value) -> Option<i64> {
    let seconds = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => {
            let s = s.trim();
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+')))
                .unwrap_or(s.len());
            let number: f64 = s[..split].parse().ok()?;
            let factor = match s[split..].trim() {
                "" | "s" => 1.0,
                "ms" => 0.001,
                "min" => 60.0,
                "h" => 3600.0,
                "d" => 86_400.0,
                _ => return None,
            };
            number * factor
        }
        _ => return None,
    };
    seconds.is_finite().then(|| seconds.round() as i64)
}

/// Validates the body of `POST /restart` the way Patroni's `do_POST_restart` does.
fn restart_request(body: &Map<String, Value>) -> Result<(RestartRequest, bool), ApiError> {
    let mut req = RestartRequest::default();
    let mut scheduled = false;
    for (key, value) in body {
        match key.as_str() {
            "schedule" => scheduled = true,
            "role" => {
                let role = value.as_str().and_then(Role::parse);
                if !matches!(role, Some(Role::Primary | Role::Replica | Role::StandbyLeader)) {
                    return Err(ApiError::new(
                        400,
                        "PostgreSQL role should be either primary, standby_leader, or replica",
                    ));
                }
                req.role = value.as_str().map(str::to_string);
            }
            "postgres_version" => {
                let Some(v) = value.as_str() else {
                    return Err(ApiError::new(400, format!("Invalid PostgreSQL version: {value}")));
                };
                postgres_version_to_int(v).map_err(|e| ApiError::new(400, e))?;
                req.postgres_version = Some(v.to_string());
            }
            "timeout" => match parse_timeout(value) {
                Some(secs) if secs > 0 => req.timeout = Some(Duration::from_secs(secs as u64)),
                _ => return Err(ApiError::new(400, "Timeout should be a positive number of seconds")),
            },
            "restart_pending" => match value {
                Value::Bool(b) => req.restart_pending = *b,
                _ => return Err(ApiError::new(400, "restart_pending should be a boolean")),
            },
            other => {
                return Err(ApiError::new(
                    400,
                    format!("Unknown filter for the scheduled restart: {other}"),
                ));
            }
        }
    }
    Ok((req, scheduled))
}

pub(crate) async fn restart(api: &ApiState, headers: &HeaderMap, body: Body) -> Response {
    let body = match read_object(headers, body, true).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let published = api.snapshots.load();
    let snapshot = published.snapshot();
    if body.contains_key("schedule") && snapshot.pause {
        return text(500, "Can't schedule restart in the paused state");
    }
    let (req, scheduled) = match restart_request(&body) {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    if scheduled {
        return text(400, "scheduled restarts are not supported yet");
    }
    // Patroni's `restart_matches`.
    let role_mismatch = req
        .role
        .as_deref()
        .and_then(Role::parse)
        .is_some_and(|r| r != snapshot.role);
    let server_version = snapshot.postgres.as_ref().map_or(0, |p| p.server_version);
    let version_mismatch = server_version > 0
        && req
            .postgres_version
            .as_deref()
            .and_then(|v| postgres_version_to_int(v).ok())
            .is_some_and(|wanted| wanted <= server_version);
    let pending_mismatch = req.restart_pending && !snapshot.has_pending_restart();
    if role_mismatch || version_mismatch || pending_mismatch {
        tracing::info!(
            role_mismatch,
            version_mismatch,
            pending_mismatch,
            "not proceeding with the restart requested through the REST API"
        );
        return text(503, CONDITIONS_NOT_SATISFIED);
    }
    let control = match control(api) {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    drop(published);
    tracing::info!(?req, "restart requested through the REST API");
    answer(control.restart(req).await, 200, "restarted successfully")
}

pub(crate) fn delete_restart() -> Response {
    text(404, "no restarts are scheduled")
}

pub(crate) async fn reload(api: &ApiState) -> Response {
    let control = match control(api) {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    tracing::info!("reload requested through the REST API");
    answer(control.reload().await, 202, "reload scheduled")
}

pub(crate) async fn reinitialize(api: &ApiState, headers: &HeaderMap, body: Body) -> Response {
    let body = match read_object(headers, body, true).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    // Patroni reads these with `parse_bool` and ignores other keys; the docs spell `from-leader`.
    let flag = |k: &str| crate::cluster::truthy(body.get(k));
    let force = flag("force");
    let from_leader = flag("from_leader") || flag("from-leader");
    let control = match control(api) {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    tracing::info!(force, from_leader, "reinitialize requested through the REST API");
    answer(
        control.reinitialize(force, from_leader).await,
        200,
        "reinitialize started",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_like_patroni() {
        assert_eq!(postgres_version_to_int("9.5.3"), Ok(90503));
        assert_eq!(postgres_version_to_int("9.3.13"), Ok(90313));
        assert_eq!(postgres_version_to_int("10.1"), Ok(100001));
        assert_eq!(postgres_version_to_int("16.4"), Ok(160004));
        assert_eq!(
            postgres_version_to_int("10"),
            Err("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 10".into())
        );
        assert_eq!(
            postgres_version_to_int("9.6"),
            Err("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6".into())
        );
        assert_eq!(
            postgres_version_to_int("a.b.c"),
            Err("Invalid PostgreSQL version: a.b.c".into())
        );
        assert!(postgres_version_to_int("1.2.3.4").is_err());
        assert!(postgres_version_to_int("").is_err());
    }

    #[test]
    fn timeouts_like_parse_int() {
        assert_eq!(parse_timeout(&json!(30)), Some(30));
        assert_eq!(parse_timeout(&json!(2.6)), Some(3));
        assert_eq!(parse_timeout(&json!("30")), Some(30));
        assert_eq!(parse_timeout(&json!("30s")), Some(30));
        assert_eq!(parse_timeout(&json!(" 2 min ")), Some(120));
        assert_eq!(parse_timeout(&json!("1h")), Some(3600));
        assert_eq!(parse_timeout(&json!("1500ms")), Some(2));
        assert_eq!(parse_timeout(&json!("-5")), Some(-5));
        assert_eq!(parse_timeout(&json!("5 parsecs")), None);
        assert_eq!(parse_timeout(&json!("abc")), None);
        assert_eq!(parse_timeout(&json!(true)), None);
        assert_eq!(parse_timeout(&json!(null)), None);
    }

    #[test]
    fn restart_body_validation() {
        let ok = |v: Value| restart_request(v.as_object().unwrap()).map(|r| r.0).ok();
        assert_eq!(ok(json!({})), Some(RestartRequest::default()));
        assert_eq!(
            ok(json!({"restart_pending": true, "role": "replica", "postgres_version": "17.1", "timeout": "1min"})),
            Some(RestartRequest {
                restart_pending: true,
                role: Some("replica".into()),
                postgres_version: Some("17.1".into()),
                timeout: Some(Duration::from_secs(60)),
            })
        );
        for bad in [
            json!({"foo": 1}),
            json!({"role": "leader"}),
            json!({"role": 1}),
            json!({"postgres_version": "9.6"}),
            json!({"postgres_version": 16}),
            json!({"timeout": 0}),
            json!({"timeout": "soon"}),
            json!({"restart_pending": "yes"}),
        ] {
            assert_eq!(ok(bad.clone()), None, "{bad}");
        }
        let (_, scheduled) = restart_request(json!({"schedule": "x"}).as_object().unwrap()).unwrap();
        assert!(scheduled);
    }
}
