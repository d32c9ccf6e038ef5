//! `POST /switchover`, `POST /failover` and `DELETE /switchover`: Patroni's `do_POST_failover`,
//! `is_failover_possible`, `poll_failover_result` and `do_DELETE_switchover`, done entirely with
//! the DCS. The API writes the `failover` key and wakes the local HA loop; the leader (switchover)
//! or the candidate (failover) acts on the key in its own loop, and the API watches the leader key
//! change hands.
//!
//! Candidates are judged from their member keys (state `running`, not `nofailover`), where Patroni
//! asks each member's REST API; the member key is what the HA loops decide on as well.
//!
//! Failure story (status codes, Patroni's texts): 400 for validation (no leader for a switchover,
//! no candidate for a failover, target equals source, paused without candidate, failover or
//! paused switchover with `scheduled_at`, naive `scheduled_at`), 422 for an unparsable or past
//! `scheduled_at`, 412 when the switchover is not possible (leader name mismatch, unknown
//! candidate, sync mismatch, no good candidate), 503 when the DCS cannot be read or the key cannot
//! be written, or when the switchover failed or its outcome is unknown after the poll timeout;
//! 202 when scheduled, 200 when the leader moved. DELETE: 200, 404 none scheduled, 409 CAS lost.
//! Bodies: 411 without Content-Length, 400 bad JSON or empty object, 413 over 1 MiB.

use super::body::read_object;
use super::{refuse, text};
use crate::cluster;
use crate::control::ApiError;
use crate::server::ApiState;
use crate::timestamp::{Timestamp, now_epoch_micros};
use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use ferroni_model::{ClusterView, Failover, Member, MemberData};
use serde_json::{Map, Value};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Switchover,
    Failover,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Switchover => "switchover",
            Action::Failover => "failover",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Action::Switchover => "Switchover",
            Action::Failover => "Failover",
        }
    }

    /// Patroni's `action[:-4] + 'ed'`.
    fn past(self) -> &'static str {
        match self {
            Action::Switchover => "switched",
            Action::Failover => "failed",
        }
    }
}

/// A string field where `null` and `""` mean absent, as Python's truthiness has it.
fn opt_string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::new(400, format!("{key} should be a string"))),
    }
}

/// Patroni's `parse_schedule`: 400 without timezone, 422 unparsable or in the past.
fn parse_schedule(value: &Value, action: Action) -> Result<Timestamp, ApiError> {
    let unparsable = || {
        ApiError::new(
            422,
            "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601",
        )
    };
    let ts = value
        .as_str()
        .and_then(|s| Timestamp::parse(s).ok())
        .ok_or_else(unparsable)?;
    let Some(at) = ts.epoch_micros() else {
        return Err(ApiError::new(
            400,
            format!("Timezone information is mandatory for the scheduled {}", action.name()),
        ));
    };
    if at < now_epoch_micros() {
        return Err(ApiError::new(
            422,
            format!("Cannot schedule {} in the past", action.name()),
        ));
    }
    Ok(ts)
}

/// Patroni's `Tags.nofailover`: an explicit `nofailover` decides, else `failover_priority <= 0`.
fn nofailover(data: &MemberData) -> bool {
    match data.tags.get("nofailover") {
        Some(v) if !v.is_null() => cluster::truthy(Some(v)),
        _ => data.failover_priority() <= 0,
    }
}

/// Patroni's `SyncState.matches`: the `sync` key names a leader and lists `name`.
fn sync_matches(view: &ClusterView, name: &str) -> bool {
    let has_leader = view
        .sync
        .as_ref()
        .and_then(|s| s.value.get("leader"))
        .and_then(Value::as_str)
        .is_some_and(|l| !l.is_empty());
    has_leader && cluster::in_sync_key(view, name)
}

/// Patroni's `is_failover_possible`: the reason it is not, or `None`.
fn failover_impossible(
    view: &ClusterView,
    leader: Option<&str>,
    candidate: Option<&str>,
    action: Action,
) -> Option<String> {
    if leader.is_some() && view.leader_name() != leader {
        return Some("leader name does not match".into());
    }
    let strict_sync = cluster::synchronous_mode(view) == Some("sync_standby");
    let members: Vec<&Member> = if let Some(c) = candidate {
        if action == Action::Switchover && strict_sync && !sync_matches(view, c) {
            return Some("candidate name does not match with sync_standby".into());
        }
        let found: Vec<&Member> = view.members.iter().filter(|m| m.name == c).collect();
        if found.is_empty() {
            return Some("candidate does not exists".into());
        }
        found
    } else if strict_sync {
        let found: Vec<&Member> = view.members.iter().filter(|m| sync_matches(view, &m.name)).collect();
        if found.is_empty() {
            return Some(format!("{} is not possible: can not find sync_standby", action.name()));
        }
        found
    } else {
        let current = view.leader_name();
        let found: Vec<&Member> = view
            .members
            .iter()
            .filter(|m| current.is_none() || (Some(m.name.as_str()) != current && !m.data.api_url.is_empty()))
            .collect();
        if found.is_empty() {
            return Some(format!(
                "{} is not possible: cluster does not have members except leader",
                action.name()
            ));
        }
        found
    };
    if members
        .iter()
        .any(|m| m.data.state == crate::states::RUNNING && !nofailover(&m.data))
    {
        None
    } else {
        Some(format!(
            "{} is not possible: no good candidates have been found",
            action.name()
        ))
    }
}

/// Patroni waits `2 * max(10, loop_wait)` seconds for the leader to change.
fn poll_timeout(api: &ApiState, view: &ClusterView) -> Duration {
    if let Some(t) = api.poll_timeout {
        return t;
    }
    let loop_wait = view
        .config
        .as_ref()
        .and_then(|c| c.value.get("loop_wait"))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| u64::from(api.snapshots.load().snapshot().loop_wait));
    Duration::from_secs(2 * loop_wait.max(10))
}

/// Patroni's `poll_failover_result`: watches the leader key until it names someone other than
/// `old_leader`. A failover key that disappears while the old leader keeps the lock means the
/// acting node gave up; while nobody holds the lock the leader race is still on.
async fn poll_result(
    api: &ApiState,
    old_leader: Option<&str>,
    candidate: Option<&str>,
    action: Action,
    timeout: Duration,
) -> Response {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(api.poll_interval.min(deadline - now)).await;
        let view = match api.dcs.load().await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!("error while polling the {} result: {e}", action.name());
                continue;
            }
        };
        if let Some(new) = view.leader_name().filter(|n| Some(*n) != old_leader) {
            return match candidate {
                Some(c) if c != new => text(
                    200,
                    format!(
                        "{}ed over to \"{new}\" instead of \"{c}\"",
                        &action.title()[..action.name().len() - 4]
                    ),
                ),
                _ => text(200, format!("Successfully {} over to \"{new}\"", action.past())),
            };
        }
        let pending = view.failover.as_ref().is_some_and(|f| !f.value.is_empty());
        if !pending && view.leader_name() == old_leader {
            return text(503, format!("{} failed", action.title()));
        }
    }
    text(503, format!("{} status unknown", action.title()))
}

pub(crate) async fn post(api: &ApiState, headers: &HeaderMap, body: Body, requested: Action) -> Response {
    let body = match read_object(headers, body, false).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let fields = (|| {
        let leader = opt_string(&body, "leader")?;
        let candidate = match opt_string(&body, "candidate")? {
            Some(c) => Some(c),
            None => opt_string(&body, "member")?,
        };
        Ok::<_, ApiError>((leader, candidate))
    })();
    let (leader, candidate) = match fields {
        Ok(f) => f,
        Err(e) => return refuse(e),
    };
    let scheduled_at = body
        .get("scheduled_at")
        .filter(|v| !(v.is_null() || v.as_str() == Some("")));
    let view = match api.dcs.load().await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("REST API could not read the DCS: {e}");
            return text(503, e.to_string());
        }
    };
    let paused = cluster::is_paused(&view);
    tracing::info!(
        "received {} request with leader={leader:?} candidate={candidate:?} scheduled_at={scheduled_at:?}",
        requested.name()
    );

    if requested == Action::Failover && candidate.is_none() {
        return text(400, "Failover could be performed only to a specific candidate");
    }
    if requested == Action::Switchover && leader.is_none() {
        return text(400, "Switchover could be performed only from a specific leader");
    }
    let mut scheduled = None;
    if let Some(value) = scheduled_at {
        if requested == Action::Failover {
            return text(400, "Failover can't be scheduled");
        }
        if paused {
            return text(400, "Can't schedule switchover in the paused state");
        }
        match parse_schedule(value, requested) {
            Ok(ts) => scheduled = Some(ts),
            Err(e) => return refuse(e),
        }
    }
    if paused && candidate.is_none() {
        return text(
            400,
            "Switchover is possible only to a specific candidate in a paused state",
        );
    }
    let mut action = requested;
    if requested == Action::Failover && leader.is_some() {
        tracing::warn!("received failover request with leader specified - performing switchover instead");
        action = Action::Switchover;
    }
    if leader == candidate {
        return text(400, "Switchover target and source are the same");
    }
    if scheduled.is_none()
        && let Some(reason) = failover_impossible(&view, leader.as_deref(), candidate.as_deref(), action)
    {
        return text(412, reason);
    }

    let failover = Failover {
        leader,
        member: candidate,
        scheduled_at: scheduled.map(|t| t.isoformat()),
    };
    // Patroni overwrites the key unconditionally; comparing with the version just validated against
    // also catches a concurrent request.
    let version = view.failover.as_ref().map(|f| f.version);
    match api.dcs.write_failover(&failover, version).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("the failover key changed while handling a {} request", action.name());
            return text(503, "failed to write failover key into DCS");
        }
        Err(e) => {
            tracing::warn!("could not write the failover key: {e}");
            return text(503, "failed to write failover key into DCS");
        }
    }
    api.wake.notify_one();
    if failover.scheduled_at.is_some() {
        return text(202, format!("{} scheduled", action.title()));
    }
    let timeout = poll_timeout(api, &view);
    poll_result(api, view.leader_name(), failover.member.as_deref(), action, timeout).await
}

pub(crate) async fn delete(api: &ApiState) -> Response {
    let view = match api.dcs.load().await {
        Ok(v) => v,
        Err(e) => return text(503, e.to_string()),
    };
    match view.failover {
        Some(f) if f.value.scheduled_at.is_some() => match api.dcs.delete_failover(Some(f.version)).await {
            Ok(true) => {
                tracing::info!("scheduled switchover deleted through the REST API");
                api.wake.notify_one();
                text(200, "scheduled switchover deleted")
            }
            Ok(false) => text(409, "the scheduled switchover changed concurrently; retry"),
            Err(e) => text(503, e.to_string()),
        },
        _ => text(404, "no switchover is scheduled"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroni_model::{LeaderKey, Versioned};
    use serde_json::json;

    fn member(name: &str, state: &str, tags: Value) -> Member {
        Member {
            name: name.into(),
            data: MemberData {
                api_url: format!("http://{name}:8008/patroni"),
                state: state.into(),
                tags: tags.as_object().cloned().unwrap_or_default(),
                ..Default::default()
            },
        }
    }

    fn view(members: Vec<Member>, config: Value) -> ClusterView {
        ClusterView {
            leader: Some(LeaderKey {
                name: "pg1".into(),
                version: 1,
                lease: 1,
            }),
            members,
            config: Some(Versioned {
                version: 1,
                value: config,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn possible_switchovers() {
        let v = view(
            vec![
                member("pg1", "running", json!({})),
                member("pg2", "running", json!({})),
                member("pg3", "stopped", json!({})),
                member("pg4", "running", json!({"nofailover": true})),
                member("pg5", "running", json!({"failover_priority": 0})),
                member("pg6", "running", json!({"nofailover": false, "failover_priority": 0})),
            ],
            json!({}),
        );
        let s = Action::Switchover;
        assert_eq!(failover_impossible(&v, Some("pg1"), None, s), None);
        assert_eq!(failover_impossible(&v, Some("pg1"), Some("pg2"), s), None);
        assert_eq!(failover_impossible(&v, Some("pg1"), Some("pg6"), s), None);
        assert_eq!(
            failover_impossible(&v, Some("pg2"), Some("pg1"), s).as_deref(),
            Some("leader name does not match")
        );
        assert_eq!(
            failover_impossible(&v, Some("pg1"), Some("pgX"), s).as_deref(),
            Some("candidate does not exists")
        );
        for bad in ["pg3", "pg4", "pg5"] {
            assert_eq!(
                failover_impossible(&v, Some("pg1"), Some(bad), s).as_deref(),
                Some("switchover is not possible: no good candidates have been found"),
                "{bad}"
            );
        }
        assert_eq!(
            failover_impossible(&v, None, Some("pg3"), Action::Failover).as_deref(),
            Some("failover is not possible: no good candidates have been found")
        );
        let alone = view(vec![member("pg1", "running", json!({}))], json!({}));
        assert_eq!(
            failover_impossible(&alone, Some("pg1"), None, s).as_deref(),
            Some("switchover is not possible: cluster does not have members except leader")
        );
    }

    #[test]
    fn synchronous_mode_restricts_candidates() {
        let mut v = view(
            vec![
                member("pg1", "running", json!({})),
                member("pg2", "running", json!({})),
                member("pg3", "running", json!({})),
            ],
            json!({"synchronous_mode": true}),
        );
        let s = Action::Switchover;
        assert_eq!(
            failover_impossible(&v, Some("pg1"), None, s).as_deref(),
            Some("switchover is not possible: can not find sync_standby")
        );
        v.sync = Some(Versioned {
            version: 3,
            value: json!({"leader": "pg1", "sync_standby": "pg3"}),
        });
        assert_eq!(failover_impossible(&v, Some("pg1"), None, s), None);
        assert_eq!(failover_impossible(&v, Some("pg1"), Some("pg3"), s), None);
        assert_eq!(
            failover_impossible(&v, Some("pg1"), Some("pg2"), s).as_deref(),
            Some("candidate name does not match with sync_standby")
        );
        // A manual failover may pick an asynchronous standby; quorum mode has no such rule.
        assert_eq!(failover_impossible(&v, None, Some("pg2"), Action::Failover), None);
        v.config.as_mut().unwrap().value = json!({"synchronous_mode": "quorum"});
        assert_eq!(failover_impossible(&v, Some("pg1"), Some("pg2"), s), None);
    }

    #[test]
    fn action_texts() {
        assert_eq!(
            &Action::Switchover.title()[..Action::Switchover.name().len() - 4],
            "Switch"
        );
        assert_eq!(&Action::Failover.title()[..Action::Failover.name().len() - 4], "Fail");
        assert_eq!(Action::Failover.past(), "failed");
    }
}
