//! `dsn`: the libpq connection string (`host=… port=…`) of the leader, of a member with a given
//! role, or of a named member, from the `conn_url` each member publishes.

use crate::args::{DsnArgs, RoleArg};
use crate::context::Ctl;
use crate::error::{CtlError, CtlResult};
use crate::output;
use ferroni_dcs::Dcs;
use ferroni_model::{ClusterView, Member};

const DEFAULT_PG_PORT: u16 = 5432;

pub async fn run(ctl: &Ctl, args: &DsnArgs) -> CtlResult<()> {
    let name = ctl.cluster_name(args.cluster_name.as_deref())?;
    let view = ctl.dcs(&name)?.load().await?;
    let member = match &args.member {
        Some(m) => view.member(m),
        None => pick(&view, args.role.unwrap_or(RoleArg::Leader)),
    }
    .ok_or_else(|| CtlError::failed("Can not find a suitable member"))?;
    let (host, port) = host_port(&member.data.conn_url).ok_or_else(|| {
        CtlError::failed(format!(
            "member {} publishes no usable conn_url ({:?})",
            member.name, member.data.conn_url
        ))
    })?;
    output::print(&format!("host={host} port={port}\n"));
    Ok(())
}

/// patronictl's role rules: the leader roles look at the leader-key holder, `replica` takes the
/// first other member, `any` the first member (by name, for a stable answer).
fn pick(view: &ClusterView, role: RoleArg) -> Option<&Member> {
    let leader = view.leader_member();
    let leader_role = leader.map(|m| m.data.role.as_str());
    let mut members: Vec<&Member> = view.members.iter().collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    match role {
        RoleArg::Leader => leader,
        RoleArg::Primary => leader.filter(|_| leader_role != Some("standby_leader")),
        RoleArg::StandbyLeader => leader.filter(|_| leader_role == Some("standby_leader")),
        RoleArg::Replica => members
            .into_iter()
            .find(|m| Some(m.name.as_str()) != view.leader_name()),
        RoleArg::Any => members.into_iter().next(),
    }
}

/// Host and port of `postgres://[user[:password]@]host[:port][/db][?options]`, with brackets around
/// an IPv6 address removed as libpq wants it.
fn host_port(conn_url: &str) -> Option<(String, u16)> {
    let rest = conn_url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    let port = match port {
        None | Some("") => DEFAULT_PG_PORT,
        Some(p) => p.parse().ok()?,
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroni_model::{LeaderKey, MemberData};

    #[test]
    fn conn_urls() {
        assert_eq!(
            host_port("postgres://10.0.0.1:5433/postgres"),
            Some(("10.0.0.1".into(), 5433))
        );
        assert_eq!(host_port("postgres://u:p@h/postgres"), Some(("h".into(), 5432)));
        assert_eq!(
            host_port("postgresql://[::1]:6432/db?sslmode=require"),
            Some(("::1".into(), 6432))
        );
        assert_eq!(host_port("postgres://h:x/db"), None);
        assert_eq!(host_port("nonsense"), None);
    }

    #[test]
    fn roles() {
        let m = |name: &str, role: &str| Member {
            name: name.into(),
            data: MemberData {
                role: role.into(),
                conn_url: format!("postgres://{name}:5432/postgres"),
                ..Default::default()
            },
        };
        let mut view = ClusterView {
            members: vec![m("c", "replica"), m("b", "primary"), m("a", "replica")],
            leader: Some(LeaderKey {
                name: "b".into(),
                version: 1,
                lease: 1,
            }),
            ..Default::default()
        };
        let name = |r| pick(&view, r).map(|m| m.name.clone());
        assert_eq!(name(RoleArg::Leader).as_deref(), Some("b"));
        assert_eq!(name(RoleArg::Primary).as_deref(), Some("b"));
        assert_eq!(name(RoleArg::StandbyLeader), None);
        assert_eq!(name(RoleArg::Replica).as_deref(), Some("a"));
        assert_eq!(name(RoleArg::Any).as_deref(), Some("a"));
        view.leader = None;
        assert_eq!(pick(&view, RoleArg::Leader).map(|m| m.name.clone()), None);
    }
}
