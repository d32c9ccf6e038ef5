//! Choosing the members an action applies to, with patronictl's rules (`get_all_members`,
//! `get_members`, `confirm_members_action`): a role filter, member names given on the command
//! line, a question when none were given, and a last confirmation unless `--force`.

use crate::args::RoleArg;
use crate::error::{CtlError, CtlResult};
use crate::list::{self, ListOptions};
use crate::output;
use crate::prompt;
use ferroni_model::{ClusterView, Member};
use serde_json::Value;

/// Members with `role`, sorted by name. The leader roles look at the leader-key holder and its
/// published role; `replica` is every other member.
pub fn with_role(view: &ClusterView, role: RoleArg) -> Vec<&Member> {
    let leader = view.leader_member().filter(|m| !m.name.is_empty());
    let leader_role = leader.map(|m| m.data.role.as_str());
    let mut members: Vec<&Member> = match role {
        RoleArg::Leader => leader.into_iter().collect(),
        RoleArg::Primary => leader
            .filter(|_| leader_role != Some("standby_leader"))
            .into_iter()
            .collect(),
        RoleArg::StandbyLeader => leader
            .filter(|_| !matches!(leader_role, Some("primary" | "master")))
            .into_iter()
            .collect(),
        RoleArg::Replica => view
            .members
            .iter()
            .filter(|m| Some(m.name.as_str()) != view.leader_name())
            .collect(),
        RoleArg::Any => view.members.iter().collect(),
    };
    members.sort_by(|a, b| a.name.cmp(&b.name));
    members
}

/// Members with a REST API, the leader first (patronictl's `get_all_members_leader_first`).
pub fn leader_first(view: &ClusterView) -> Vec<&Member> {
    let mut members: Vec<&Member> = view.members.iter().filter(|m| !m.data.api_url.is_empty()).collect();
    members.sort_by_key(|m| (Some(m.name.as_str()) != view.leader_name(), m.name.clone()));
    members
}

/// The member table as `list` prints it.
pub fn print_table(view: &ClusterView, cluster: &str) {
    let opts = ListOptions {
        extended: false,
        timestamp: false,
        format: crate::args::Format::Pretty,
        interval: None,
        topology: false,
    };
    output::print(&list::render(view, cluster, &opts));
}

/// patronictl's `get_members`: prints the table, then picks the members named on the command line
/// that have `role`, or all members with `role` when none are named (except for `reinitialize`,
/// which never defaults to every replica), asking which member when that leaves none. Names that
/// are no member at all are an error, where patronictl ignores them as long as another name fits.
pub fn select<'a>(
    view: &'a ClusterView,
    cluster: &str,
    names: &[String],
    role: RoleArg,
    force: bool,
    action: &str,
) -> CtlResult<Vec<&'a Member>> {
    let candidates = with_role(view, role);
    if names.is_empty() && candidates.is_empty() {
        return Err(CtlError::failed(format!("{cluster} cluster doesn't have any members")));
    }
    print_table(view, cluster);

    let mut chosen: Vec<String> = Vec::new();
    if !names.is_empty() {
        if let Some(unknown) = names.iter().find(|n| view.member(n).is_none()) {
            return Err(CtlError::failed(format!("{unknown} is not a member of cluster")));
        }
        for name in names {
            if candidates.iter().any(|m| &m.name == name) && !chosen.contains(name) {
                chosen.push(name.clone());
            }
        }
        if chosen.is_empty() {
            return Err(CtlError::failed(format!("No {} among provided members", role.name())));
        }
    } else if action != "reinitialize" {
        chosen = candidates.iter().map(|m| m.name.clone()).collect();
    }

    if chosen.is_empty() {
        if force {
            return Err(CtlError::failed(format!(
                "name the members to {action} (with --force nobody is asked)"
            )));
        }
        let listed: Vec<&str> = candidates.iter().map(|m| m.name.as_str()).collect();
        let answer = prompt::ask_default(
            &format!("Which member do you want to {action} [{}]?", listed.join(", ")),
            "",
        )?;
        if !candidates.iter().any(|m| m.name == answer) {
            return Err(CtlError::failed(format!("{answer} is not a member of cluster")));
        }
        chosen.push(answer);
    }
    Ok(candidates.into_iter().filter(|m| chosen.contains(&m.name)).collect())
}

/// patronictl's `confirm_members_action`.
pub fn confirm(members: &[&Member], force: bool, action: &str) -> CtlResult<()> {
    if force {
        return Ok(());
    }
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    if prompt::confirm(&format!(
        "Are you sure you want to {action} members {}?",
        names.join(", ")
    ))? {
        Ok(())
    } else {
        Err(CtlError::failed(format!("Aborted {action}")))
    }
}

/// `loop_wait` of the dynamic configuration (Patroni's default 10).
pub fn loop_wait(view: &ClusterView) -> u64 {
    view.config
        .as_ref()
        .and_then(|c| c.value.get("loop_wait"))
        .and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|l| *l > 0)
        .unwrap_or(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroni_model::{LeaderKey, MemberData};

    fn view(leader_role: &str) -> ClusterView {
        let m = |name: &str, role: &str| Member {
            name: name.into(),
            data: MemberData {
                role: role.into(),
                api_url: format!("http://{name}:8008/patroni"),
                ..Default::default()
            },
        };
        ClusterView {
            members: vec![m("c", "replica"), m("b", leader_role), m("a", "replica")],
            leader: Some(LeaderKey {
                name: "b".into(),
                version: 1,
                lease: 1,
            }),
            ..Default::default()
        }
    }

    fn names(members: Vec<&Member>) -> Vec<&str> {
        members.into_iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn roles() {
        let v = view("primary");
        assert_eq!(names(with_role(&v, RoleArg::Leader)), vec!["b"]);
        assert_eq!(names(with_role(&v, RoleArg::Primary)), vec!["b"]);
        assert!(with_role(&v, RoleArg::StandbyLeader).is_empty());
        assert_eq!(names(with_role(&v, RoleArg::Replica)), vec!["a", "c"]);
        assert_eq!(names(with_role(&v, RoleArg::Any)), vec!["a", "b", "c"]);
        let standby = view("standby_leader");
        assert!(with_role(&standby, RoleArg::Primary).is_empty());
        assert_eq!(names(with_role(&standby, RoleArg::StandbyLeader)), vec!["b"]);
        assert_eq!(names(leader_first(&v)), vec!["b", "a", "c"]);
    }

    #[test]
    fn selection() {
        let v = view("primary");
        let pick = |names: &[&str], role, action| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            select(&v, "batman", &names, role, true, action)
                .map(|m| m.iter().map(|m| m.name.clone()).collect::<Vec<_>>())
        };
        assert_eq!(
            pick(&["c", "a"], RoleArg::Any, "restart").ok(),
            Some(vec!["a".into(), "c".into()])
        );
        assert_eq!(
            pick(&[], RoleArg::Replica, "reload").ok(),
            Some(vec!["a".into(), "c".into()])
        );
        let err = pick(&["b"], RoleArg::Replica, "reinitialize").unwrap_err();
        assert_eq!(err.to_string(), "No replica among provided members");
        let err = pick(&["x"], RoleArg::Any, "restart").unwrap_err();
        assert_eq!(err.to_string(), "x is not a member of cluster");
        assert!(pick(&[], RoleArg::Replica, "reinitialize").is_err());
    }

    #[test]
    fn loop_wait_default() {
        let mut v = view("primary");
        assert_eq!(loop_wait(&v), 10);
        v.config = Some(ferroni_model::Versioned {
            version: 1,
            value: serde_json::json!({"loop_wait": 3}),
        });
        assert_eq!(loop_wait(&v), 3);
    }
}
