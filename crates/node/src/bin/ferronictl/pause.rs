//! `pause` and `resume`: maintenance mode on and off, patronictl's `toggle_pause`. The change is a
//! `PATCH /config` with `{"pause": true}` (or `{"pause": null}`, which removes the key, to resume)
//! sent to the first member that answers, the leader first; the member validates it and wakes its
//! HA loop. When no member's REST API can be reached, the same change is written to the DCS
//! `config` key with compare-and-swap, so maintenance mode can still be switched while every node
//! is down. `--wait` then watches the member keys until every member with a REST API reports the
//! new state (`pause: true` in its member data, or no `pause`).

use crate::context::Ctl;
use crate::error::{CtlError, CtlResult};
use crate::members;
use crate::output;
use crate::rest;
use crate::timestamp;
use ferroni_dcs::{Dcs, EtcdDcs};
use ferroni_model::ClusterView;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

pub async fn run(ctl: &Ctl, cluster: Option<&str>, paused: bool, wait: bool) -> CtlResult<()> {
    let name = ctl.cluster_name(cluster)?;
    let dcs = ctl.dcs(&name)?;
    let view = dcs.load().await?;
    if ferroni_api::cluster::is_paused(&view) == paused {
        return Err(CtlError::failed(if paused {
            "Cluster is already paused"
        } else {
            "Cluster is not paused"
        }));
    }
    let word = if paused { "paused" } else { "resumed" };
    let verb = if paused { "pause" } else { "resume" };
    let patch = json!({"pause": if paused { Value::Bool(true) } else { Value::Null }});

    let rest = ctl.rest()?;
    let mut answered = false;
    for m in members::leader_first(&view) {
        match rest.call(m, Method::PATCH, "config", Some(&patch), rest::SHORT).await {
            Ok(r) if r.status == 200 => {
                answered = true;
                break;
            }
            Ok(r) => {
                output::print(&format!(
                    "Failed: {verb} cluster management status code={}, ({})\n",
                    r.status, r.text
                ));
                return Err(CtlError::failed(format!(
                    "{verb} failed: member {} answered {}",
                    m.name, r.status
                )));
            }
            Err(e) => tracing::warn!("member {} is not accessible: {e}", m.name),
        }
    }
    if !answered {
        output::print(&format!(
            "{} Could not find any accessible member of cluster {name}, changing the configuration in the DCS\n",
            timestamp::now_precise()
        ));
        let Some(config) = &view.config else {
            return Err(CtlError::failed(format!(
                "The config key does not exist in the cluster {name}"
            )));
        };
        let mut next = config.value.clone();
        ferroni_config::merge_patch(&mut next, &patch);
        if !dcs.write_config(&next, Some(config.version)).await? {
            return Err(CtlError::failed(
                "Config modification aborted due to concurrent changes",
            ));
        }
    }
    if wait {
        wait_until_applied(&dcs, &view, paused).await?;
    }
    output::print(&format!("Success: cluster management is {word}\n"));
    Ok(())
}

/// patronictl's `wait_until_pause_is_applied`, with a longer deadline (`2 * loop_wait + 5` seconds
/// instead of `loop_wait + 1`) so a member in the middle of a slow cycle is not reported as lagging.
async fn wait_until_applied(dcs: &EtcdDcs, before: &ClusterView, paused: bool) -> CtlResult<()> {
    output::print(&format!(
        "'{}' request sent, waiting until it is recognized by all nodes\n",
        if paused { "pause" } else { "resume" }
    ));
    let watched: HashSet<&str> = before
        .members
        .iter()
        .filter(|m| !m.data.api_url.is_empty())
        .map(|m| m.name.as_str())
        .collect();
    let loop_wait = members::loop_wait(before);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2 * loop_wait + 5);
    loop {
        let view = dcs.load().await?;
        let lagging: Vec<&str> = view
            .members
            .iter()
            .filter(|m| watched.contains(m.name.as_str()) && m.data.pause.unwrap_or(false) != paused)
            .map(|m| m.name.as_str())
            .collect();
        if lagging.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            output::print(&format!(
                "{} members didn't recognized pause state after {} seconds\n",
                lagging.join(", "),
                2 * loop_wait + 5
            ));
            return Err(CtlError::failed(format!(
                "the configuration is changed, but {} did not report it yet",
                lagging.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
