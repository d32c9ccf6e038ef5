//! `list` and `topology`: the members of a cluster as one read of the DCS shows them, in patronictl's
//! table (title with the system identifier, columns Member, Host, Role, State, TL, Lag in MB, and
//! with `-e` Pending restart, Scheduled restart, Tags, and Last error when a member publishes one:
//! ferroni's `last_error` member field, cut to [`LAST_ERROR_WIDTH`] characters in the pretty table).
//!
//! Member fields come from the same `cluster_as_json` view the REST API serves at `/cluster`, so the
//! CLI and the API agree on roles (Leader, Standby Leader, Sync Standby, Replica) and states. The lag
//! is measured against the newest leader position the DCS knows of: the larger of `status.optime`
//! and the leader's own `xlog_location`, so a cluster whose leader has not published `status` yet
//! still shows real lags.

use crate::args::Format;
use crate::context::Ctl;
use crate::error::CtlResult;
use crate::output::{self, Table};
use crate::timestamp;
use ferroni_dcs::Dcs;
use ferroni_model::ClusterView;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::time::Duration;

const BYTES_PER_MB: f64 = 1024.0 * 1024.0;
const DEFAULT_PG_PORT: u64 = 5432;
/// Longest `Last error` cell of the pretty table; machine formats carry the whole text.
pub const LAST_ERROR_WIDTH: usize = 60;

pub struct ListOptions {
    pub extended: bool,
    pub timestamp: bool,
    pub format: Format,
    pub interval: Option<Duration>,
    pub topology: bool,
}

pub async fn run(ctl: &Ctl, names: &[String], opts: &ListOptions) -> CtlResult<()> {
    let names = if names.is_empty() {
        vec![ctl.cluster_name(None)?]
    } else {
        names.to_vec()
    };
    for name in &names {
        let dcs = ctl.dcs(name)?;
        loop {
            if opts.interval.is_some() && std::io::stdout().is_terminal() {
                output::print("\x1b[2J\x1b[H");
            }
            if opts.timestamp {
                output::print(&format!("{}\n", timestamp::now()));
            }
            match dcs.load().await {
                Ok(view) => output::print(&render(&view, name, opts)),
                // A watch is for riding out trouble: report and keep refreshing.
                Err(e) if opts.interval.is_some() => eprintln!("Error: {e}"),
                Err(e) => return Err(e.into()),
            }
            match opts.interval {
                Some(every) => tokio::time::sleep(every).await,
                None => break,
            }
        }
    }
    Ok(())
}

/// The whole output for one read: the table, then (pretty only) notes about pause and a scheduled
/// switchover.
pub fn render(view: &ClusterView, name: &str, opts: &ListOptions) -> String {
    let mut table = members_table(view, name, opts.extended, opts.topology);
    if opts.format == Format::Pretty
        && let Some(i) = table.columns.iter().position(|c| *c == "Last error")
    {
        for row in &mut table.rows {
            if let Some(Value::String(text)) = row.get_mut(i) {
                *text = shorten(text, LAST_ERROR_WIDTH);
            }
        }
    }
    if opts.format == Format::Pretty
        && let Some(i) = table.columns.iter().position(|c| *c == "Progress")
    {
        for row in &mut table.rows {
            if let Some(cell) = row.get_mut(i) {
                *cell = json!(progress_text(cell));
            }
        }
    }
    let mut out = table.render(opts.format);
    if opts.format == Format::Pretty {
        let info = service_info(view, name);
        if !info.is_empty() {
            out.push(' ');
            out.push_str(&info.join("\n "));
            out.push('\n');
        }
    }
    out
}

pub fn title(view: &ClusterView, name: &str) -> String {
    let init = match view.initialize.as_deref() {
        None => "uninitialized",
        Some("") => "initializing",
        Some(sysid) => sysid,
    };
    format!(" Cluster: {name} ({init}) ")
}

pub fn members_table(view: &ClusterView, name: &str, extended: bool, topology: bool) -> Table {
    let cluster = ferroni_api::cluster::cluster_json(view, name);
    let mut members: Vec<Value> = cluster["members"].as_array().cloned().unwrap_or_default();
    if topology {
        members = topology_sort(members);
    }

    let mut columns = vec!["Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"];
    for (column, key) in [
        ("Pending restart", "pending_restart"),
        ("Scheduled restart", "scheduled_restart"),
        ("Tags", "tags"),
    ] {
        if extended || members.iter().any(|m| truthy(m.get(key))) {
            columns.push(column);
        }
    }

    let last_error = |name: &str| {
        view.member(name)
            .and_then(|m| m.data.extra.get("last_error"))
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
    };
    if extended && view.members.iter().any(|m| last_error(&m.name).is_some()) {
        columns.push("Last error");
    }
    let progress = |name: &str| view.member(name).and_then(|m| m.data.extra.get("progress")).cloned();
    if view.members.iter().any(|m| progress(&m.name).is_some()) {
        columns.push("Progress");
    }

    // Like patronictl: ports are shown only when they tell members apart or are not the default.
    let with_host: Vec<&Value> = members.iter().filter(|m| m.get("host").is_some()).collect();
    let distinct_hosts: HashSet<&str> = with_host.iter().filter_map(|m| m["host"].as_str()).collect();
    let append_port = with_host.iter().any(|m| port(m) != DEFAULT_PG_PORT) || distinct_hosts.len() < with_host.len();

    let cluster_lsn = cluster_lsn(view);
    let leader = view.leader_name();
    let rows = members
        .iter()
        .map(|m| {
            let member = m["name"].as_str().unwrap_or_default();
            let real_name = m.get("real_name").and_then(Value::as_str).unwrap_or(member);
            let mut host = m.get("host").and_then(Value::as_str).unwrap_or_default().to_string();
            if append_port && !host.is_empty() {
                host = format!("{host}:{}", port(m));
            }
            let role = title_case(m["role"].as_str().unwrap_or_default());
            let lag = if leader == Some(real_name) {
                json!("")
            } else {
                lag_cell(view, real_name, cluster_lsn)
            };
            let mut row: BTreeMap<&str, Value> = BTreeMap::from([
                ("Cluster", json!(name)),
                ("Member", json!(member)),
                ("Host", json!(host)),
                ("Role", json!(role)),
                ("State", m.get("state").cloned().unwrap_or(json!(""))),
                ("TL", m.get("timeline").cloned().unwrap_or(json!(""))),
                ("Lag in MB", lag),
                (
                    "Pending restart",
                    json!(if truthy(m.get("pending_restart")) { "*" } else { "" }),
                ),
                (
                    "Scheduled restart",
                    json!(scheduled_restart(m.get("scheduled_restart"))),
                ),
                ("Tags", m.get("tags").cloned().unwrap_or(json!(""))),
                ("Last error", json!(last_error(real_name).unwrap_or_default())),
                ("Progress", progress(real_name).unwrap_or(json!(""))),
            ]);
            columns.iter().map(|c| row.remove(c).unwrap_or(json!(""))).collect()
        })
        .collect();
    Table {
        columns,
        rows,
        right: vec!["TL", "Lag in MB"],
        title: Some(title(view, name)),
    }
}

/// An image build's progress in one cell: `basebackup 45% 117/260 MB 30.2 MB/s ETA 5s`.
pub fn progress_text(p: &Value) -> String {
    let Some(method) = p.get("method").and_then(Value::as_str) else {
        return String::new();
    };
    let mb = |v: &Value| v.as_f64().map(|b| b / BYTES_PER_MB);
    let mut out = method.to_string();
    if let Some(pct) = p.get("percent").and_then(Value::as_f64) {
        out.push_str(&format!(" {pct:.0}%"));
    }
    match (p.get("bytes_done").and_then(mb), p.get("bytes_total").and_then(mb)) {
        (Some(done), Some(total)) => out.push_str(&format!(" {done:.0}/{total:.0} MB")),
        (Some(done), None) => out.push_str(&format!(" {done:.0} MB")),
        _ => {}
    }
    if p.get("finished") == Some(&Value::Bool(true)) {
        let secs = p.get("elapsed_s").and_then(Value::as_f64).unwrap_or(0.0);
        out.push_str(&format!(" done in {secs:.1}s"));
        return out;
    }
    if let Some(rate) = p.get("rate_bytes_per_s").and_then(mb).filter(|r| *r > 0.0) {
        out.push_str(&format!(" {rate:.1} MB/s"));
    }
    if let Some(eta) = p.get("eta_s").and_then(Value::as_f64) {
        out.push_str(&format!(" ETA {eta:.0}s"));
    }
    if let Some(note) = p.get("note").and_then(Value::as_str) {
        out.push_str(&format!(" ({note})"));
    }
    out
}

/// `text` on one line and at most `width` characters, ending in `...` when cut.
fn shorten(text: &str, width: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= width {
        return flat;
    }
    let mut cut: String = flat.chars().take(width.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

fn port(m: &Value) -> u64 {
    m.get("port").and_then(Value::as_u64).unwrap_or(DEFAULT_PG_PORT)
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
    }
}

/// `standby_leader` → `Standby Leader`, Python's `str.title()` after replacing underscores.
fn title_case(role: &str) -> String {
    role.split('_')
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(f) => f.to_uppercase().chain(cs.flat_map(char::to_lowercase)).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join(" ")
}

/// `{schedule, postgres_version}` as patronictl shows it.
fn scheduled_restart(v: Option<&Value>) -> String {
    let Some(Value::Object(s)) = v else {
        return String::new();
    };
    let mut text = s
        .get("schedule")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(version) = s.get("postgres_version").and_then(Value::as_str) {
        text.push_str(&format!(" if version < {version}"));
    }
    text
}

/// The newest leader position known: `status.optime` or the leader's published `xlog_location`.
fn cluster_lsn(view: &ClusterView) -> Option<u64> {
    let leader_lsn = view.leader_member().and_then(|m| m.data.xlog_location).unwrap_or(0);
    Some(view.optime().max(leader_lsn)).filter(|l| *l > 0)
}

/// A replica's lag in whole MB (rounded half to even like Python's `round`), or `unknown` when
/// either side's position is not published.
fn lag_cell(view: &ClusterView, member: &str, cluster_lsn: Option<u64>) -> Value {
    let position = view.member(member).and_then(|m| {
        let d = &m.data;
        d.xlog_location
            .or_else(|| d.receive_lsn.max(d.replay_lsn))
            .filter(|p| *p > 0)
    });
    match (position, cluster_lsn) {
        (Some(p), Some(c)) => json!(lag_mb(c.saturating_sub(p))),
        _ => json!("unknown"),
    }
}

fn lag_mb(bytes: u64) -> u64 {
    // An f64 holds every lag below 8 PB exactly enough for whole megabytes.
    (bytes as f64 / BYTES_PER_MB).round_ties_even() as u64
}

/// Members in replication-tree order with names indented by depth (`+ name`, `  + name`): each
/// replica under the member named by its `replicatefrom` tag when that is another replica, else
/// under the leader. Members a broken chain would hide (a `replicatefrom` loop) are shown under the
/// leader rather than dropped.
fn topology_sort(members: Vec<Value>) -> Vec<Value> {
    let is_leader = |m: &Value| m["role"].as_str().is_some_and(|r| r.ends_with("leader"));
    let name_of = |m: &Value| m["name"].as_str().unwrap_or_default().to_string();
    let leader = members.iter().find(|m| is_leader(m)).map(name_of);
    let replicas: HashSet<String> = members.iter().filter(|m| !is_leader(m)).map(name_of).collect();
    let mut children: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        if is_leader(m) {
            continue;
        }
        let own = name_of(m);
        let parent = m["tags"]["replicatefrom"]
            .as_str()
            .filter(|p| *p != own && replicas.contains(*p))
            .map(str::to_string)
            .or_else(|| leader.clone());
        children.entry(parent).or_default().push(i);
    }

    let mut order: Vec<(usize, usize)> = Vec::new();
    let mut seen = HashSet::new();
    fn walk(
        parent: Option<String>,
        level: usize,
        members: &[Value],
        children: &BTreeMap<Option<String>, Vec<usize>>,
        seen: &mut HashSet<usize>,
        order: &mut Vec<(usize, usize)>,
    ) {
        for &i in children.get(&parent).into_iter().flatten() {
            if seen.insert(i) {
                order.push((i, level));
                let name = members[i]["name"].as_str().map(str::to_string);
                walk(name, level + 1, members, children, seen, order);
            }
        }
    }
    if let Some(l) = members.iter().position(is_leader) {
        seen.insert(l);
        order.push((l, 0));
    }
    walk(leader.clone(), 1, &members, &children, &mut seen, &mut order);
    for i in 0..members.len() {
        if !seen.contains(&i) {
            seen.insert(i);
            order.push((i, 1));
            walk(
                Some(name_of(&members[i])),
                2,
                &members,
                &children,
                &mut seen,
                &mut order,
            );
        }
    }

    order
        .into_iter()
        .map(|(i, level)| {
            let mut m = members[i].clone();
            if level > 0 {
                let name = name_of(&m);
                m["real_name"] = json!(name);
                m["name"] = json!(format!("{}+ {name}", " ".repeat((level - 1) * 2)));
            }
            m
        })
        .collect()
}

/// Notes patronictl prints under the pretty table.
fn service_info(view: &ClusterView, name: &str) -> Vec<String> {
    let cluster = ferroni_api::cluster::cluster_json(view, name);
    let mut info = Vec::new();
    if cluster.get("pause").and_then(Value::as_bool) == Some(true) {
        info.push("Maintenance mode: on".to_string());
    }
    if let Some(s) = cluster.get("scheduled_switchover") {
        let mut text = format!("Switchover scheduled at: {}", s["at"].as_str().unwrap_or_default());
        for key in ["from", "to"] {
            if let Some(v) = s.get(key).and_then(Value::as_str) {
                text.push_str(&format!("\n{key:>24}: {v}"));
            }
        }
        info.push(text);
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroni_model::{LeaderKey, Member, MemberData, Status, Versioned};
    use serde_json::Map;

    fn member(name: &str, port: u16, f: impl FnOnce(&mut MemberData)) -> Member {
        let mut data = MemberData {
            conn_url: format!("postgres://127.0.0.1:{port}/postgres"),
            api_url: format!("http://127.0.0.1:{}/patroni", port + 3000),
            state: "running".into(),
            role: "replica".into(),
            timeline: Some(2),
            ..Default::default()
        };
        f(&mut data);
        Member {
            name: name.into(),
            data,
        }
    }

    fn view() -> ClusterView {
        const MB: u64 = 1024 * 1024;
        ClusterView {
            initialize: Some("7268616322854375442".into()),
            config: Some(Versioned {
                version: 5,
                value: json!({"ttl": 30}),
            }),
            leader: Some(LeaderKey {
                name: "pg1".into(),
                version: 7,
                lease: 1,
            }),
            members: vec![
                member("pg3", 5434, |d| {
                    d.xlog_location = Some(100 * MB - 3 * MB - MB / 2);
                    d.replication_state = Some("streaming".into());
                    d.tags = Map::from_iter([("replicatefrom".to_string(), json!("pg2"))]);
                }),
                member("pg1", 5432, |d| {
                    d.role = "primary".into();
                    d.xlog_location = Some(100 * MB);
                }),
                member("pg2", 5433, |d| {
                    d.xlog_location = Some(100 * MB);
                    d.replication_state = Some("streaming".into());
                }),
                member("pg4", 5435, |d| d.state = "starting".into()),
            ],
            status: Some(Status {
                optime: 99 * MB,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn opts(format: Format, topology: bool) -> ListOptions {
        ListOptions {
            extended: false,
            timestamp: false,
            format,
            interval: None,
            topology,
        }
    }

    #[test]
    fn pretty_list() {
        let out = render(&view(), "batman", &opts(Format::Pretty, false));
        let expected = "\
+ Cluster: batman (7268616322854375442) --------+----+-----------+--------------------+
| Member | Host           | Role    | State     | TL | Lag in MB | Tags               |
+--------+----------------+---------+-----------+----+-----------+--------------------+
| pg1    | 127.0.0.1:5432 | Leader  | running   |  2 |           |                    |
| pg2    | 127.0.0.1:5433 | Replica | streaming |  2 |         0 |                    |
| pg3    | 127.0.0.1:5434 | Replica | streaming |  2 |         4 | replicatefrom: pg2 |
| pg4    | 127.0.0.1:5435 | Replica | starting  |  2 |   unknown |                    |
+--------+----------------+---------+-----------+----+-----------+--------------------+
";
        assert_eq!(out, expected);
    }

    #[test]
    fn lag_rounds_like_python() {
        const MB: u64 = 1024 * 1024;
        assert_eq!(lag_mb(0), 0);
        assert_eq!(lag_mb(MB / 2), 0);
        assert_eq!(lag_mb(3 * MB / 2), 2);
        assert_eq!(lag_mb(5 * MB / 2), 2);
        assert_eq!(lag_mb(5 * MB / 2 + 1), 3);
    }

    #[test]
    fn lag_against_the_leader_when_status_is_older() {
        let out = render(&view(), "batman", &opts(Format::Json, false));
        // The leader's xlog_location (100 MB) is newer than status.optime (99 MB).
        assert!(out.contains("\"Member\": \"pg2\", \"Host\": \"127.0.0.1:5433\", \"Role\": \"Replica\", \"State\": \"streaming\", \"TL\": 2, \"Lag in MB\": 0"), "{out}");
        assert!(out.contains("\"Lag in MB\": \"unknown\""), "{out}");
        assert!(!out.contains("\"Member\": \"pg1\", \"Host\": \"127.0.0.1:5432\", \"Role\": \"Leader\", \"State\": \"running\", \"TL\": 2, \"Lag"), "{out}");
    }

    #[test]
    fn titles() {
        let mut v = view();
        assert_eq!(title(&v, "b"), " Cluster: b (7268616322854375442) ");
        v.initialize = Some(String::new());
        assert_eq!(title(&v, "b"), " Cluster: b (initializing) ");
        v.initialize = None;
        assert_eq!(title(&v, "b"), " Cluster: b (uninitialized) ");
    }

    #[test]
    fn topology_indents_cascading_replicas() {
        let out = render(&view(), "batman", &opts(Format::Pretty, true));
        let names: Vec<&str> = out
            .lines()
            .skip(3)
            .filter_map(|l| l.split('|').nth(1))
            .map(str::trim_end)
            .collect();
        assert_eq!(names, vec![" pg1", " + pg2", "   + pg3", " + pg4"], "{out}");
    }

    #[test]
    fn topology_survives_replicatefrom_loops() {
        let mut v = view();
        v.members.retain(|m| m.name != "pg1");
        v.leader = None;
        for m in &mut v.members {
            let other = if m.name == "pg2" { "pg3" } else { "pg2" };
            m.data.tags = Map::from_iter([("replicatefrom".to_string(), json!(other))]);
        }
        let t = members_table(&v, "batman", false, true);
        assert_eq!(t.rows.len(), 3);
    }

    #[test]
    fn progress_column_shows_image_builds() {
        let mut v = view();
        v.members[1].data.extra.insert(
            "progress".into(),
            json!({"method": "basebackup", "source": "pg1", "bytes_done": 52428800u64, "bytes_total": 104857600u64,
                   "percent": 50.0, "rate_bytes_per_s": 10485760.0, "eta_s": 5.0, "elapsed_s": 5.0, "attempt": 1, "finished": false}),
        );
        let out = render(&v, "batman", &opts(Format::Pretty, false));
        assert!(out.contains("basebackup 50% 50/100 MB 10.0 MB/s ETA 5s"), "{out}");
        let out = render(&v, "batman", &opts(Format::Json, false));
        assert!(out.contains("\"Progress\": {"), "{out}");
    }

    #[test]
    fn last_error_column_in_extended_output() {
        let mut v = view();
        let long = format!("failed to create replica: {}", "x".repeat(100));
        v.members[0].data.extra.insert("last_error".into(), json!(long));
        let plain = render(&v, "batman", &opts(Format::Pretty, false));
        assert!(!plain.contains("Last error"), "only with -e: {plain}");
        let mut extended = opts(Format::Pretty, false);
        extended.extended = true;
        let out = render(&v, "batman", &extended);
        assert!(out.contains("| Last error "), "{out}");
        let cell = format!("{}...", &long[..LAST_ERROR_WIDTH - 3]);
        assert!(out.contains(&format!("| {cell} |")), "{out}");
        extended.format = Format::Json;
        let out = render(&v, "batman", &extended);
        assert!(out.contains(&format!("\"Last error\": \"{long}\"")), "{out}");
        assert_eq!(shorten("a\nb", 60), "a b");
    }

    #[test]
    fn standby_leader_and_pause() {
        let mut v = view();
        v.config = Some(Versioned {
            version: 5,
            value: json!({"pause": true, "standby_cluster": {"host": "h"}}),
        });
        let out = render(&v, "batman", &opts(Format::Pretty, false));
        assert!(out.contains("| Standby Leader |"), "{out}");
        assert!(out.ends_with(" Maintenance mode: on\n"), "{out}");
    }
}
