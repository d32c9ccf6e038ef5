//! Actions on chosen members through their REST APIs: `restart`, `reinit`, `reload` and `flush`,
//! with patronictl's questions, request bodies and result lines (`Success: restart on member b`,
//! `Failed: restart for member b, status code=503, (…)`).
//!
//! Each member gets its own request and its own result line, so one unreachable member does not
//! stop the others; the command exits 1 when any member failed (patronictl exits 0 and leaves that
//! to whoever reads the lines).

use crate::args::{FlushArgs, FlushTarget, ReinitArgs, ReloadArgs, RestartArgs, RoleArg};
use crate::context::Ctl;
use crate::error::{CtlError, CtlResult};
use crate::members;
use crate::output;
use crate::prompt;
use crate::rest::{self, Answer, CallError, Rest};
use crate::switchover::parse_scheduled;
use crate::timestamp;
use ferroni_dcs::Dcs;
use ferroni_model::Member;
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::hash::{BuildHasher, Hasher};
use std::io::IsTerminal;
use std::time::Duration;

/// The node answers `/restart` when PostgreSQL is back; by default it waits up to
/// `2 * pg_ctl_timeout + 10` seconds (130 s with Patroni's default pg_ctl_timeout of 60).
const RESTART_DEFAULT: Duration = Duration::from_secs(140);
/// Added to a `--timeout` for the answer to travel back.
const RESTART_MARGIN: Duration = Duration::from_secs(15);

fn failed_members(action: &str, failed: &[String]) -> CtlResult<()> {
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CtlError::failed(format!(
            "{action} failed on {}: {}",
            if failed.len() == 1 { "member" } else { "members" },
            failed.join(", ")
        )))
    }
}

/// patronictl's `check_response`: `Failed: …` for 400 and above, else `Success: …`.
fn check_response(result: &Result<Answer, CallError>, member: &str, action: &str) -> bool {
    match result {
        Ok(a) if a.status >= 400 => {
            output::print(&format!(
                "Failed: {action} for member {member}, status code={}, ({})\n",
                a.status, a.text
            ));
            false
        }
        Ok(_) => {
            output::print(&format!("Success: {action} for member {member}\n"));
            true
        }
        Err(e) => {
            output::print(&format!("Failed: {action} for member {member}, ({e})\n"));
            false
        }
    }
}

pub async fn restart(ctl: &Ctl, a: &RestartArgs) -> CtlResult<()> {
    let name = ctl.cluster_name(Some(&a.cluster_name))?;
    if let Some(when) = &a.scheduled
        && parse_scheduled(when)?.is_some()
    {
        return Err(CtlError::failed(
            "scheduled restarts are not supported by ferroni; restart now (--scheduled now) or at the time from a scheduler",
        ));
    }
    if let Some(v) = &a.pg_version {
        check_pg_version(v)?;
    }
    prompt::require_terminal(a.force, "restart")?;
    let view = ctl.dcs(&name)?.load().await?;
    let mut chosen = members::select(&view, &name, &a.member_names, a.role, a.force, "restart")?;

    let mut body = Map::new();
    if a.pending {
        body.insert("restart_pending".into(), json!(true));
        chosen.retain(|m| m.data.pending_restart == Some(true));
    }
    if a.any && chosen.len() > 1 {
        let pick = random_index(chosen.len());
        chosen = vec![chosen[pick]];
    }
    if chosen.is_empty() {
        output::print("No member has a pending restart\n");
        return Ok(());
    }
    members::confirm(&chosen, a.force, "restart")?;

    let version = match &a.pg_version {
        Some(v) => v.clone(),
        None if a.force => String::new(),
        None => prompt::ask_default(
            "Restart if the PostgreSQL version is less than provided (e.g. 9.5.2)",
            "",
        )?,
    };
    if !version.is_empty() {
        check_pg_version(&version)?;
        body.insert("postgres_version".into(), json!(version));
    }
    let wait = match &a.timeout {
        Some(t) => {
            body.insert("timeout".into(), json!(t));
            seconds(t).map_or(RESTART_DEFAULT, |s| Duration::from_secs(s) + RESTART_MARGIN)
        }
        None => RESTART_DEFAULT,
    };

    let rest = ctl.rest()?;
    let body = Value::Object(body);
    let mut failed = Vec::new();
    for m in chosen {
        let line = match rest.call(m, Method::POST, "restart", Some(&body), wait).await {
            Ok(r) if r.status == 200 => format!("Success: restart on member {}", m.name),
            Ok(r) if r.status == 202 => format!("Success: restart scheduled on member {}", m.name),
            Ok(r) if r.status == 409 => {
                failed.push(m.name.clone());
                format!("Failed: another restart is already scheduled on member {}", m.name)
            }
            Ok(r) => {
                failed.push(m.name.clone());
                format!(
                    "Failed: restart for member {}, status code={}, ({})",
                    m.name, r.status, r.text
                )
            }
            Err(e) => {
                failed.push(m.name.clone());
                format!("Failed: restart for member {}, ({e})", m.name)
            }
        };
        output::print(&format!("{line}\n"));
    }
    failed_members("restart", &failed)
}

pub async fn reinit(ctl: &Ctl, a: &ReinitArgs) -> CtlResult<()> {
    let name = ctl.cluster_name(Some(&a.cluster_name))?;
    prompt::require_terminal(a.force, "reinit")?;
    let view = ctl.dcs(&name)?.load().await?;
    let chosen = members::select(&view, &name, &a.member_names, RoleArg::Replica, a.force, "reinitialize")?;
    members::confirm(&chosen, a.force, "reinitialize")?;

    let rest = ctl.rest()?;
    let mut failed = Vec::new();
    let mut waiting = Vec::new();
    for m in chosen {
        // The postmaster start time before, so a rebuild that finishes between two polls is noticed.
        let before = match rest.call(m, Method::GET, "patroni", None, rest::SHORT).await {
            Ok(r) => r
                .json()
                .and_then(|v| v["postmaster_start_time"].as_str().map(str::to_string)),
            Err(_) => None,
        };
        let mut force = a.force;
        let started = loop {
            let body = json!({"force": force, "from_leader": a.from_leader});
            let result = rest
                .call(m, Method::POST, "reinitialize", Some(&body), rest::HA_LOOP)
                .await;
            let started = check_response(&result, &m.name, "reinitialize");
            let in_progress = matches!(&result, Ok(r) if r.text.ends_with(" already in progress"));
            if !started
                && in_progress
                && !force
                && prompt::confirm("Do you want to cancel it and reinitialize anyway?")?
            {
                force = true;
                continue;
            }
            break started;
        };
        if !started {
            failed.push(m.name.clone());
        } else if a.wait {
            waiting.push(Rebuild {
                member: m,
                before,
                left_running: false,
            });
        }
    }
    wait_for_rebuilds(&rest, waiting, &mut failed).await;
    failed_members("reinitialize", &failed)
}

struct Rebuild<'a> {
    member: &'a Member,
    /// `postmaster_start_time` before the request.
    before: Option<String>,
    /// The member was seen in a state other than `running` (or not answering) since the request.
    left_running: bool,
}

/// patronictl's `reinit --wait`: polls `/patroni` every second until each member runs again with a
/// new postmaster. A member that ends in a failed state is reported and counted as failed.
async fn wait_for_rebuilds(rest: &Rest, mut waiting: Vec<Rebuild<'_>>, failed: &mut Vec<String>) {
    let mut shown: Vec<String> = Vec::new();
    while !waiting.is_empty() {
        let names: Vec<String> = waiting.iter().map(|w| w.member.name.clone()).collect();
        if names != shown {
            output::print(&format!(
                "Waiting for reinitialize to complete on: {}\n",
                names.join(", ")
            ));
            shown = names;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut still = Vec::new();
        for mut w in waiting {
            let status = match rest.call(w.member, Method::GET, "patroni", None, rest::SHORT).await {
                Ok(r) => r.json(),
                Err(_) => None,
            };
            let Some(status) = status else {
                w.left_running = true;
                still.push(w);
                continue;
            };
            let state = status["state"].as_str().unwrap_or_default();
            if let Some(p) = status.get("progress").filter(|p| p["finished"] != true) {
                show_progress(&w.member.name, p);
            }
            let start = status["postmaster_start_time"].as_str().map(str::to_string);
            if state == "running" && (w.left_running || start != w.before) {
                output::print(&format!("Reinitialize is completed on: {}\n", w.member.name));
            } else if state.ends_with("failed") {
                output::print(&format!("Reinitialize failed on: {} (state: {state})\n", w.member.name));
                failed.push(w.member.name.clone());
            } else {
                w.left_running |= state != "running";
                still.push(w);
            }
        }
        waiting = still;
    }
}

/// One progress line per poll; on a terminal it redraws in place as a bar.
fn show_progress(member: &str, p: &serde_json::Value) {
    let text = crate::list::progress_text(p);
    if std::io::stdout().is_terminal() {
        let pct = p["percent"].as_f64().unwrap_or(0.0).clamp(0.0, 100.0);
        let filled = (pct / 5.0).round() as usize;
        output::print(&format!(
            "\r{member}: [{}{}] {text}\x1b[K",
            "#".repeat(filled),
            " ".repeat(20 - filled)
        ));
    } else {
        output::print(&format!("{member}: {text}\n"));
    }
}

pub async fn reload(ctl: &Ctl, a: &ReloadArgs) -> CtlResult<()> {
    let name = ctl.cluster_name(Some(&a.cluster_name))?;
    prompt::require_terminal(a.force, "reload")?;
    let view = ctl.dcs(&name)?.load().await?;
    let chosen = members::select(&view, &name, &a.member_names, a.role, a.force, "reload")?;
    members::confirm(&chosen, a.force, "reload")?;
    let rest = ctl.rest()?;
    let mut failed = Vec::new();
    for m in chosen {
        let line = match rest.call(m, Method::POST, "reload", None, rest::HA_LOOP).await {
            Ok(r) if r.status == 200 => format!("No changes to apply on member {}", m.name),
            Ok(r) if r.status == 202 => format!(
                "Reload request received for member {} and will be processed within {} seconds",
                m.name,
                members::loop_wait(&view)
            ),
            Ok(r) => {
                failed.push(m.name.clone());
                format!(
                    "Failed: reload for member {}, status code={}, ({})",
                    m.name, r.status, r.text
                )
            }
            Err(e) => {
                failed.push(m.name.clone());
                format!("Failed: reload for member {}, ({e})", m.name)
            }
        };
        output::print(&format!("{line}\n"));
    }
    failed_members("reload", &failed)
}

pub async fn flush(ctl: &Ctl, a: &FlushArgs) -> CtlResult<()> {
    let name = ctl.cluster_name(Some(&a.cluster_name))?;
    let (names, target) = a.target().map_err(CtlError::usage)?;
    match target {
        FlushTarget::Restart => flush_restarts(ctl, &name, names, a).await,
        FlushTarget::Switchover => flush_switchover(ctl, &name).await,
    }
}

async fn flush_restarts(ctl: &Ctl, name: &str, names: &[String], a: &FlushArgs) -> CtlResult<()> {
    prompt::require_terminal(a.force, "flush")?;
    let view = ctl.dcs(name)?.load().await?;
    let chosen = members::select(&view, name, names, a.role, a.force, "flush")?;
    members::confirm(&chosen, a.force, "flush")?;
    let rest = ctl.rest()?;
    let mut failed = Vec::new();
    for m in chosen {
        let scheduled = m
            .data
            .extra
            .get("scheduled_restart")
            .is_some_and(|v| !v.is_null() && v != &json!({}));
        if !scheduled {
            output::print(&format!("No scheduled restart for member {}\n", m.name));
            continue;
        }
        let result = rest.call(m, Method::DELETE, "restart", None, rest::SHORT).await;
        if !check_response(&result, &m.name, "flush scheduled restart") {
            failed.push(m.name.clone());
        }
    }
    failed_members("flush", &failed)
}

/// patronictl's `flush … switchover`: `DELETE /switchover` on the first member that answers, the
/// leader first; when none does, the `failover` key is deleted in the DCS (compare-and-swap).
async fn flush_switchover(ctl: &Ctl, name: &str) -> CtlResult<()> {
    let dcs = ctl.dcs(name)?;
    let view = dcs.load().await?;
    let Some(failover) = view.failover.as_ref().filter(|f| f.value.scheduled_at.is_some()) else {
        output::print("No pending scheduled switchover\n");
        return Ok(());
    };
    let rest = ctl.rest()?;
    for m in members::leader_first(&view) {
        match rest.call(m, Method::DELETE, "switchover", None, rest::SHORT).await {
            Ok(r) if r.status == 200 => {
                output::print(&format!("Success: {}\n", r.text));
                return Ok(());
            }
            Ok(r) if r.status == 404 => {
                output::print(&format!("Failed: {}\n", r.text));
                return Err(CtlError::failed(format!("flush failed: {}", r.text)));
            }
            Ok(r) => output::print(&format!(
                "Failed: member={}, status_code={}, ({})\n",
                m.name, r.status, r.text
            )),
            Err(e) => tracing::warn!("member {} is not accessible: {e}", m.name),
        }
    }
    output::print(&format!(
        "{} Could not find any accessible member of cluster {name}\n",
        timestamp::now_precise()
    ));
    if !dcs.delete_failover(Some(failover.version)).await? {
        return Err(CtlError::failed(
            "the scheduled switchover changed concurrently; nothing was deleted",
        ));
    }
    Ok(())
}

/// Patroni's `postgres_version_to_int` check: `X.Y` (X >= 10) or `X.Y.Z`.
fn check_pg_version(version: &str) -> CtlResult<()> {
    let parts: Option<Vec<u32>> = version
        .split('.')
        .map(|p| {
            let p = p.trim();
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        })
        .collect();
    let Some(parts) = parts else {
        return Err(CtlError::failed(format!("Invalid PostgreSQL version: {version}")));
    };
    let ok_shape = matches!(parts.as_slice(), [major, _] if *major >= 10) || parts.len() == 3;
    if !ok_shape {
        return Err(CtlError::failed(format!(
            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {version}"
        )));
    }
    if parts[1..].iter().any(|p| *p > 99) {
        return Err(CtlError::failed(format!("Invalid PostgreSQL version: {version}")));
    }
    Ok(())
}

/// A `--timeout` as Patroni reads it (`30`, `30s`, `2min`, `1h`, `1500ms`), in whole seconds.
fn seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number: f64 = text[..split].parse().ok()?;
    let factor = match text[split..].trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return None,
    };
    let secs = (number * factor).round();
    (secs.is_finite() && secs > 0.0).then_some(secs as u64)
}

/// An index in `0..len` from the standard library's randomly seeded hasher (no random crate here).
fn random_index(len: usize) -> usize {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    (hasher.finish() % len as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_versions() {
        assert!(check_pg_version("16.4").is_ok());
        assert!(check_pg_version("9.6.24").is_ok());
        assert_eq!(
            check_pg_version("9.6").unwrap_err().to_string(),
            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6"
        );
        assert!(check_pg_version("16").is_err());
        assert!(check_pg_version("a.b").is_err());
        assert!(check_pg_version("16.100").is_err());
    }

    #[test]
    fn timeouts() {
        assert_eq!(seconds("30"), Some(30));
        assert_eq!(seconds("2min"), Some(120));
        assert_eq!(seconds(" 1h "), Some(3600));
        assert_eq!(seconds("1500ms"), Some(2));
        assert_eq!(seconds("0"), None);
        assert_eq!(seconds("soon"), None);
    }

    #[test]
    fn random_indexes_stay_in_range() {
        for len in 1..20 {
            assert!(random_index(len) < len);
        }
    }
}
