//! `demote-cluster` and `promote-cluster` (patronictl 4.1's `change_cluster_role`): `PATCH /config`
//! on the leader with a `standby_cluster` section (demote) or `"standby_cluster": null` (promote),
//! then a progress line every second until the leader-key holder runs in the target role: a
//! `standby_leader` (and, after a demotion, the former leader runs again too) or a `primary`.
//!
//! Unlike patronictl, the wait ends after [`DEADLINE`]; the configuration change stays and the
//! cluster keeps converging, so the command says so and exits 1.

use crate::args::DemoteClusterArgs;
use crate::context::Ctl;
use crate::error::{CtlError, CtlResult};
use crate::members;
use crate::output;
use crate::prompt;
use crate::rest;
use crate::timestamp;
use ferroni_dcs::Dcs;
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

/// The `standby_cluster` section of a demotion, or the usage error patronictl gives.
pub fn standby_section(a: &DemoteClusterArgs) -> CtlResult<Value> {
    let host = a.host.as_deref().filter(|h| !h.is_empty());
    let restore = a.restore_command.as_deref().filter(|r| !r.is_empty());
    let port = a.port.filter(|p| *p != 0);
    if host.is_none() && port.is_none() && restore.is_none() {
        return Err(CtlError::usage(
            "At least --host, --port or --restore-command should be specified",
        ));
    }
    let mut section = Map::new();
    if let Some(h) = host {
        section.insert("host".into(), json!(h));
    }
    if let Some(p) = port {
        section.insert("port".into(), json!(p));
    }
    if let Some(s) = a.primary_slot_name.as_deref().filter(|s| !s.is_empty()) {
        section.insert("primary_slot_name".into(), json!(s));
    }
    if let Some(r) = restore {
        section.insert("restore_command".into(), json!(r));
    }
    Ok(Value::Object(section))
}

pub async fn demote(ctl: &Ctl, a: &DemoteClusterArgs) -> CtlResult<()> {
    let section = standby_section(a)?;
    change(ctl, a.cluster_name.as_deref(), a.force, section).await
}

pub async fn promote(ctl: &Ctl, cluster: Option<&str>, force: bool) -> CtlResult<()> {
    change(ctl, cluster, force, Value::Null).await
}

async fn change(ctl: &Ctl, cluster: Option<&str>, force: bool, standby: Value) -> CtlResult<()> {
    let demote = !standby.is_null();
    let (stem, target) = if demote {
        ("demot", "standby_leader")
    } else {
        ("promot", "primary")
    };
    let name = ctl.cluster_name(cluster)?;
    prompt::require_terminal(force, if demote { "demote-cluster" } else { "promote-cluster" })?;
    let dcs = ctl.dcs(&name)?;
    let view = dcs.load().await?;
    let Some(leader) = view.leader_member().filter(|m| !m.name.is_empty()) else {
        return Err(CtlError::failed(format!(
            "Cluster has no leader, {stem}ion is not possible"
        )));
    };
    if leader.data.role == target {
        return Err(CtlError::failed("Cluster is already in the required state"));
    }
    output::print("Current cluster topology\n");
    members::print_table(&view, &name);
    if !force && !prompt::confirm(&format!("Are you sure you want to {stem}e {name} cluster?"))? {
        return Err(CtlError::failed(format!("Aborted cluster {stem}ion")));
    }

    let rest = ctl.rest()?;
    let patch = json!({"standby_cluster": standby});
    match rest
        .call(leader, Method::PATCH, "config", Some(&patch), rest::SHORT)
        .await
    {
        Ok(r) if r.status == 200 => {}
        Ok(r) => {
            return Err(CtlError::failed(format!(
                "Failed to {stem}e {name} cluster: /config PATCH status code={}, ({})",
                r.status, r.text
            )));
        }
        Err(e) => return Err(CtlError::failed(format!("Failed to {stem}e {name} cluster: {e}"))),
    }

    let old_leader = leader.name.clone();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let view = match dcs.load().await {
            Ok(v) => v,
            Err(e) => {
                output::print(&format!("{} cannot read the cluster: {e}\n", timestamp::now()));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let holder = view.leader_member();
        let unlocked = view.leader_name().is_none_or(str::is_empty);
        let role = holder.map(|m| m.data.role.as_str());
        let state = holder.map(|m| m.data.state.as_str());
        let old_state = view.member(&old_leader).map(|m| m.data.state.as_str());
        if !unlocked && role == Some(target) && state == Some("running") && (!demote || old_state == Some("running")) {
            output::print(&format!("{} cluster is successfully {stem}ed\n", timestamp::now()));
            members::print_table(&view, &name);
            return Ok(());
        }
        let mut line = format!(
            "{} cluster is unlocked: {}, leader role: {}, leader state: {}",
            timestamp::now(),
            python_bool(unlocked),
            role.unwrap_or("None"),
            state.unwrap_or("None")
        );
        if demote
            && holder.is_some_and(|h| h.name != old_leader)
            && let Some(s) = old_state
        {
            line.push_str(&format!(", previous leader state: '{s}'"));
        }
        output::print(&format!("{line}\n"));
        if tokio::time::Instant::now() >= deadline {
            members::print_table(&view, &name);
            return Err(CtlError::failed(format!(
                "the cluster did not finish its {stem}ion within {} s; the configuration is changed and the members keep converging (watch with `list`)",
                DEADLINE.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn python_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(host: Option<&str>, port: Option<u16>, restore: Option<&str>, slot: Option<&str>) -> DemoteClusterArgs {
        DemoteClusterArgs {
            cluster_name: None,
            host: host.map(str::to_string),
            port,
            restore_command: restore.map(str::to_string),
            primary_slot_name: slot.map(str::to_string),
            force: true,
        }
    }

    #[test]
    fn standby_sections() {
        let err = standby_section(&args(None, None, None, Some("s"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "At least --host, --port or --restore-command should be specified"
        );
        assert_eq!(
            standby_section(&args(Some("10.0.0.9"), Some(5433), None, Some("s"))).ok(),
            Some(json!({"host": "10.0.0.9", "port": 5433, "primary_slot_name": "s"}))
        );
        assert_eq!(
            standby_section(&args(None, None, Some("cp /a/%f %p"), None)).ok(),
            Some(json!({"restore_command": "cp /a/%f %p"}))
        );
    }
}
