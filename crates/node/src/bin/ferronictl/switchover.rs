//! `switchover` and `failover`, patronictl's `_do_failover_or_switchover`: check the leader and the
//! candidate against the DCS, ask what was not given (unless `--force`), confirm, then `POST
//! /switchover` or `/failover` to the leader's REST API and print its answer and the new topology.
//!
//! The request goes to the leader (for a failover without leader, to the candidate). Only when that
//! member cannot be connected to at all is the next member with a REST API tried, and when none can
//! be reached the `failover` key is written in the DCS directly, as patronictl falls back to. A
//! member that took the request but did not answer in time is not retried elsewhere, since the
//! switchover may be under way.

use crate::context::Ctl;
use crate::error::{CtlError, CtlResult};
use crate::members;
use crate::output;
use crate::prompt;
use crate::timestamp;
use ferroni_api::timestamp::Timestamp;
use ferroni_dcs::Dcs;
use ferroni_model::{ClusterView, Failover, Member, MemberData};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
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
}

pub struct Request<'a> {
    pub action: Action,
    pub cluster: Option<&'a str>,
    pub leader: Option<&'a str>,
    pub candidate: Option<&'a str>,
    pub scheduled: Option<&'a str>,
    pub force: bool,
}

pub async fn run(ctl: &Ctl, req: Request<'_>) -> CtlResult<()> {
    let action = req.action;
    let name = ctl.cluster_name(req.cluster)?;
    prompt::require_terminal(req.force, action.name())?;
    let dcs = ctl.dcs(&name)?;
    let view = dcs.load().await?;
    output::print("Current cluster topology\n");
    members::print_table(&view, &name);

    let cluster_leader = view.leader_name().filter(|l| !l.is_empty()).map(str::to_string);
    let mut switchover_leader = None;
    if action == Action::Switchover {
        let Some(current) = cluster_leader.clone() else {
            return Err(CtlError::failed("This cluster has no leader"));
        };
        let given = match req.leader {
            Some(l) => l.to_string(),
            None if req.force => current.clone(),
            None => {
                let label = if ferroni_api::cluster::is_standby_cluster(&view) {
                    "Standby Leader"
                } else {
                    "Primary"
                };
                prompt::ask_default(label, &current)?
            }
        };
        if given != current {
            return Err(CtlError::failed(format!(
                "Member {given} is not the leader of cluster {name}"
            )));
        }
        switchover_leader = Some(given);
    }

    let mut candidates: Vec<&str> = view
        .members
        .iter()
        .filter(|m| Some(&m.name) != cluster_leader.as_ref() && !nofailover(&m.data))
        .map(|m| m.name.as_str())
        .collect();
    candidates.sort_unstable();
    if candidates.is_empty() {
        return Err(CtlError::failed(format!("No candidates found to {} to", action.name())));
    }
    let candidate = match req.candidate {
        Some(c) => c.to_string(),
        None if req.force => String::new(),
        None => prompt::ask_default(&format!("Candidate {}", python_list(&candidates)), "")?,
    };
    if action == Action::Failover && candidate.is_empty() {
        return Err(CtlError::failed(
            "Failover could be performed only to a specific candidate",
        ));
    }
    if !candidate.is_empty() && !candidates.contains(&candidate.as_str()) {
        if Some(&candidate) == cluster_leader.as_ref() {
            return Err(CtlError::failed(format!(
                "Member {candidate} is already the leader of cluster {name}"
            )));
        }
        return Err(CtlError::failed(format!(
            "Member {candidate} does not exist in cluster {name} or is tagged as nofailover"
        )));
    }
    if !req.force && action == Action::Failover && async_candidate(&view, &candidate) {
        let question = format!("Are you sure you want to failover to the asynchronous node {candidate}?");
        if !prompt::confirm(&question)? {
            return Err(CtlError::failed(format!("Aborting {}", action.name())));
        }
    }

    let mut scheduled_at = None;
    if action == Action::Switchover {
        let when = match req.scheduled {
            Some(s) => s.to_string(),
            None if req.force => "now".to_string(),
            None => prompt::ask_default(
                &format!(
                    "When should the switchover take place (e.g. {} )",
                    timestamp::next_hour_example()
                ),
                "now",
            )?,
        };
        scheduled_at = parse_scheduled(&when)?;
        if scheduled_at.is_some() && ferroni_api::cluster::is_paused(&view) {
            return Err(CtlError::failed("Can't schedule switchover in the paused state"));
        }
    }

    let candidate = Some(candidate).filter(|c| !c.is_empty());
    let mut body = Map::new();
    if let Some(c) = &candidate {
        body.insert("candidate".into(), json!(c));
    }
    if let Some(l) = &switchover_leader {
        body.insert("leader".into(), json!(l));
    }
    if let Some(at) = &scheduled_at {
        body.insert("scheduled_at".into(), json!(at));
    }

    if !req.force {
        let demote = cluster_leader
            .as_ref()
            .map(|l| format!(", demoting current leader {l}"))
            .unwrap_or_default();
        let question = match &scheduled_at {
            Some(at) => format!("Are you sure you want to schedule switchover of cluster {name} at {at}{demote}?"),
            None => format!("Are you sure you want to {} cluster {name}{demote}?", action.name()),
        };
        if !prompt::confirm(&question)? {
            let what = if scheduled_at.is_some() { "scheduled " } else { "" };
            return Err(CtlError::failed(format!("Aborting {what}{}", action.name())));
        }
    }

    let rest = ctl.rest()?;
    let timeout = request_timeout(&view);
    let body = Value::Object(body);
    for member in targets(&view, candidate.as_deref()) {
        match rest
            .call(member, Method::POST, action.name(), Some(&body), timeout)
            .await
        {
            Ok(answer) if matches!(answer.status, 200 | 202) => {
                output::print(&format!("{} {}\n", timestamp::now_precise(), answer.text));
                let view = dcs.load().await.unwrap_or(view);
                members::print_table(&view, &name);
                return Ok(());
            }
            Ok(answer) => {
                output::print(&format!(
                    "{} failed, details: {}, {}\n",
                    action.title(),
                    answer.status,
                    answer.text
                ));
                return Err(CtlError::failed(format!(
                    "{} failed: {} answered {}",
                    action.name(),
                    member.name,
                    answer.status
                )));
            }
            Err(e) if e.not_sent => {
                tracing::warn!("member {} is not accessible: {e}", member.name);
            }
            Err(e) => {
                return Err(CtlError::failed(format!(
                    "{} status unknown: member {} took the request but gave no answer ({e}); check with `list`",
                    action.name(),
                    member.name
                )));
            }
        }
    }

    output::print(&format!(
        "{} Could not {} using Patroni api, falling back to DCS\n",
        timestamp::now_precise(),
        action.name()
    ));
    let failover = Failover {
        leader: switchover_leader,
        member: candidate,
        scheduled_at,
    };
    let version = view.failover.as_ref().map(|f| f.version);
    if !dcs.write_failover(&failover, version).await? {
        return Err(CtlError::failed(
            "the failover key changed concurrently; nothing was written",
        ));
    }
    let view = dcs.load().await.unwrap_or(view);
    members::print_table(&view, &name);
    Ok(())
}

/// The member to send the request to first (the leader, or the candidate when there is none), then
/// every other member with a REST API.
fn targets<'a>(view: &'a ClusterView, candidate: Option<&str>) -> Vec<&'a Member> {
    let mut list = members::leader_first(view);
    if view.leader_member().is_none()
        && let Some(pos) = candidate.and_then(|c| list.iter().position(|m| m.name == c))
    {
        let first = list.remove(pos);
        list.insert(0, first);
    }
    list
}

/// The API answers once the leader key has moved, after at most `2 * max(10, loop_wait)` seconds.
fn request_timeout(view: &ClusterView) -> Duration {
    let poll = 2 * members::loop_wait(view).max(10);
    Duration::from_secs((poll + 10).max(30))
}

/// Patroni's `Tags.nofailover`: an explicit `nofailover` tag decides, else `failover_priority <= 0`.
fn nofailover(data: &MemberData) -> bool {
    match data.tags.get("nofailover") {
        Some(v) if !v.is_null() => ferroni_api::cluster::truthy(Some(v)),
        _ => data.failover_priority() <= 0,
    }
}

/// A failover in synchronous mode to a member the `sync` key does not list may lose transactions.
fn async_candidate(view: &ClusterView, candidate: &str) -> bool {
    let config = view.config.as_ref().map(|c| &c.value);
    let mode = config.and_then(|c| c.get("synchronous_mode"));
    let synchronous = ferroni_api::cluster::truthy(mode)
        || mode
            .and_then(Value::as_str)
            .is_some_and(|m| m.eq_ignore_ascii_case("quorum"));
    let Some(sync) = view.sync.as_ref().map(|s| &s.value) else {
        return false;
    };
    let sync_leader = sync.get("leader").and_then(Value::as_str).unwrap_or_default();
    if !synchronous || sync_leader.is_empty() {
        return false;
    }
    let listed = sync
        .get("sync_standby")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(',')
        .any(|m| m.trim().eq_ignore_ascii_case(candidate));
    !(listed || sync_leader == candidate)
}

/// patronictl's `parse_scheduled`: `now` (or nothing) means at once; other text must be an ISO 8601
/// timestamp, local time unless it carries an offset. The answer is what the REST API expects.
pub fn parse_scheduled(text: &str) -> CtlResult<Option<String>> {
    let text = text.trim();
    if text.is_empty() || text == "now" {
        return Ok(None);
    }
    let ts = Timestamp::parse(text).map_err(|_| {
        CtlError::failed(format!(
            "Unable to parse scheduled timestamp ({text}). It should be in an unambiguous format (e.g. ISO 8601)"
        ))
    })?;
    Ok(Some(timestamp::with_local_offset(ts).isoformat()))
}

/// A list of names as Python prints one: `['a', 'b']`.
fn python_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroni_model::{LeaderKey, Versioned};

    #[test]
    fn scheduled_times() {
        assert_eq!(parse_scheduled("now").ok(), Some(None));
        assert_eq!(parse_scheduled("").ok(), Some(None));
        assert_eq!(
            parse_scheduled("2026-11-22T12:00+02:00").ok(),
            Some(Some("2026-11-22T12:00:00+02:00".into()))
        );
        let local = parse_scheduled("2026-11-22 12:00").expect("valid").expect("a time");
        assert!(local.starts_with("2026-11-22T12:00:00"), "{local}");
        assert!(local.len() > 19, "an offset is added: {local}");
        let err = parse_scheduled("tomorrow").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Unable to parse scheduled timestamp (tomorrow)")
        );
    }

    #[test]
    fn candidates_and_targets() {
        let m = |name: &str, tags: Value| Member {
            name: name.into(),
            data: MemberData {
                api_url: format!("http://{name}:8008/patroni"),
                tags: tags.as_object().cloned().unwrap_or_default(),
                ..Default::default()
            },
        };
        assert!(nofailover(&m("a", json!({"nofailover": true})).data));
        assert!(nofailover(&m("a", json!({"failover_priority": 0})).data));
        assert!(!nofailover(
            &m("a", json!({"nofailover": false, "failover_priority": 0})).data
        ));
        assert!(!nofailover(&m("a", json!({})).data));

        let mut view = ClusterView {
            members: vec![m("a", json!({})), m("b", json!({})), m("c", json!({}))],
            ..Default::default()
        };
        let names = |v: &ClusterView, c| targets(v, c).iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&view, Some("c")), vec!["c", "a", "b"]);
        view.leader = Some(LeaderKey {
            name: "b".into(),
            version: 1,
            lease: 1,
        });
        assert_eq!(names(&view, Some("c")), vec!["b", "a", "c"]);
        assert_eq!(python_list(&["a", "b"]), "['a', 'b']");
    }

    #[test]
    fn asynchronous_candidates() {
        let mut view = ClusterView {
            config: Some(Versioned {
                version: 1,
                value: json!({"synchronous_mode": true}),
            }),
            sync: Some(Versioned {
                version: 1,
                value: json!({"leader": "a", "sync_standby": "b"}),
            }),
            ..Default::default()
        };
        assert!(!async_candidate(&view, "b"));
        assert!(async_candidate(&view, "c"));
        view.config = None;
        assert!(!async_candidate(&view, "c"));
    }
}
