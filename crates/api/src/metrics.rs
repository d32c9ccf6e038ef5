//! `/metrics`: Patroni's Prometheus text (`do_GET_metrics`), written by hand from a snapshot.
//!
//! Names, HELP texts, types and the `{scope, name}` labels are Patroni's, so existing dashboards
//! and alerts keep working. One deliberate fix: Patroni prints
//! `patroni_postgres_server_version {scope=...}` with a stray space; we print it without.
//!
//! Failure story: rendering cannot fail. Timestamps that do not parse count as 0, like a NULL does
//! in Patroni; label values are escaped so a strange scope or name cannot break the format.

use crate::snapshot::{NodeSnapshot, Xlog, states};
use ferroni_model::Role;
use std::fmt::Write;

/// `0.1.0` → `000100`, `4.1.4` → `040104` (Patroni pads each component to two digits).
fn padded_semver(version: &str) -> String {
    version
        .split('.')
        .map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            format!("{digits:0>2}")
        })
        .collect()
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch seconds of a Postgres/Python timestamp: `YYYY-MM-DD[ T]HH:MM:SS[.f][Z|±HH[[:]MM]]`.
/// No offset means UTC.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.trim();
    let num = |t: &str| -> Option<i64> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (date, rest) = (s.get(..10)?, s.get(10..)?);
    let mut d = date.split('-');
    let (y, mo, da) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let rest = rest.strip_prefix([' ', 'T'])?;
    let (h, mi, se) = (num(rest.get(0..2)?)?, num(rest.get(3..5)?)?, num(rest.get(6..8)?)?);
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    let mut rest = &rest[8..];
    let mut frac = 0.0;
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
        frac = format!("0.{}", &f[..n]).parse().ok()?;
        rest = &f[n..];
    }
    let offset = match rest.trim() {
        "" | "Z" => 0,
        o => {
            let sign = match o.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let o = o[1..].replace(':', "");
            let (oh, om) = match o.len() {
                2 => (num(&o)?, 0),
                4 => (num(&o[..2])?, num(&o[2..])?),
                _ => return None,
            };
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some(secs as f64 + frac)
}

struct Out<'a> {
    text: String,
    labels: &'a str,
}

impl Out<'_> {
    fn metric(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        let _ = writeln!(self.text, "{name}{} {value}", self.labels);
    }
}

fn flag(b: bool) -> u8 {
    u8::from(b)
}

/// The whole `/metrics` body.
pub fn render(s: &NodeSnapshot) -> String {
    let labels = format!(
        "{{scope=\"{}\",name=\"{}\"}}",
        escape_label(&s.scope),
        escape_label(&s.name)
    );
    let mut o = Out {
        text: String::with_capacity(4096),
        labels: &labels,
    };
    let pg = s.postgres.as_ref();
    let xlog = s.xlog();
    let (location, received, replayed, replayed_ts, paused) = match xlog {
        Some(Xlog::Primary { location }) => (*location, 0, 0, None, false),
        Some(Xlog::Replica {
            received_location,
            replayed_location,
            replayed_timestamp,
            paused,
        }) => (
            0,
            received_location.unwrap_or(0),
            replayed_location.unwrap_or(0),
            replayed_timestamp.as_deref(),
            *paused,
        ),
        None => (0, 0, 0, None, false),
    };
    let server_version = pg.map_or(0, |p| p.server_version);
    let epoch = |t: Option<&str>| t.and_then(parse_timestamp).unwrap_or(0.0);

    o.metric(
        "patroni_version",
        "gauge",
        "Patroni semver without periods.",
        padded_semver(&s.version),
    );
    o.metric(
        "patroni_postgres_running",
        "gauge",
        "Value is 1 if Postgres is running, 0 otherwise.",
        flag(s.is_running()),
    );
    o.metric(
        "patroni_postmaster_start_time",
        "gauge",
        "Epoch seconds since Postgres started.",
        epoch(pg.and_then(|p| p.postmaster_start_time.as_deref())),
    );
    o.metric(
        "patroni_primary",
        "gauge",
        "Value is 1 if this node is the leader, 0 otherwise.",
        flag(s.role == Role::Primary),
    );
    o.metric(
        "patroni_xlog_location",
        "counter",
        "Current location of the Postgres transaction log, 0 if this node is not the leader.",
        location,
    );
    o.metric(
        "patroni_standby_leader",
        "gauge",
        "Value is 1 if this node is the standby_leader, 0 otherwise.",
        flag(s.role == Role::StandbyLeader),
    );
    o.metric(
        "patroni_replica",
        "gauge",
        "Value is 1 if this node is a replica, 0 otherwise.",
        flag(s.role == Role::Replica),
    );
    o.metric(
        "patroni_sync_standby",
        "gauge",
        "Value is 1 if this node is a sync standby, 0 otherwise.",
        flag(s.sync_standby),
    );
    o.metric(
        "patroni_quorum_standby",
        "gauge",
        "Value is 1 if this node is a quorum standby, 0 otherwise.",
        flag(s.quorum_standby),
    );
    o.metric(
        "patroni_xlog_received_location",
        "counter",
        "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
        received,
    );
    o.metric(
        "patroni_xlog_replayed_location",
        "counter",
        "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
        replayed,
    );
    o.metric(
        "patroni_xlog_replayed_timestamp",
        "gauge",
        "Current timestamp of the replayed Postgres transaction log, 0 if null.",
        epoch(replayed_ts),
    );
    o.metric(
        "patroni_xlog_paused",
        "gauge",
        "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
        flag(paused),
    );
    // Patroni only knows these from pg_stat_wal_receiver, which exists from 9.6 on; without a
    // queried server (version 0) they are left out, as Patroni does.
    if server_version >= 90600 {
        o.metric(
            "patroni_postgres_streaming",
            "gauge",
            "Value is 1 if Postgres is streaming, 0 otherwise.",
            flag(s.replication_state() == Some("streaming")),
        );
        o.metric(
            "patroni_postgres_in_archive_recovery",
            "gauge",
            "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
            flag(s.replication_state() == Some("in archive recovery")),
        );
    }
    o.metric(
        "patroni_postgres_server_version",
        "gauge",
        "Version of Postgres (if running), 0 otherwise.",
        server_version,
    );
    o.metric(
        "patroni_cluster_unlocked",
        "gauge",
        "Value is 1 if the cluster is unlocked, 0 if locked.",
        flag(s.cluster_unlocked || !s.dcs_ok),
    );
    o.metric(
        "patroni_failsafe_mode_is_active",
        "gauge",
        "Value is 1 if failsafe mode is active, 0 if inactive.",
        flag(s.failsafe_mode_is_active),
    );
    o.metric(
        "patroni_postgres_timeline",
        "counter",
        "Postgres timeline of this node (if running), 0 otherwise.",
        pg.and_then(|p| p.timeline).unwrap_or(0),
    );
    o.metric(
        "patroni_dcs_last_seen",
        "gauge",
        "Epoch timestamp when DCS was last contacted successfully by Patroni.",
        s.dcs_last_seen,
    );
    o.metric(
        "patroni_pending_restart",
        "gauge",
        "Value is 1 if the node needs a restart, 0 otherwise.",
        flag(s.has_pending_restart()),
    );
    o.metric(
        "patroni_is_paused",
        "gauge",
        "Value is 1 if auto failover is disabled, 0 otherwise.",
        flag(s.pause),
    );

    let values: Vec<String> = states::NUMBERED
        .iter()
        .enumerate()
        .map(|(i, (_, name))| format!("{i}={name}"))
        .collect();
    let _ = writeln!(
        o.text,
        "# HELP patroni_postgres_state Numeric representation of Postgres state."
    );
    let _ = writeln!(o.text, "# Values: {}", values.join(", "));
    let _ = writeln!(o.text, "# TYPE patroni_postgres_state gauge");
    let _ = writeln!(o.text, "patroni_postgres_state{labels} {}", states::index(&s.state));
    for m in &s.metrics {
        o.metric(m.name, m.kind, m.help, m.value);
    }
    o.text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::PgStatus;

    /// Splits a sample line into (name, labels, value); `None` if it is not `name{labels} value`.
    fn parse_sample(line: &str) -> Option<(&str, &str, f64)> {
        let open = line.find('{')?;
        let close = line.rfind('}')?;
        let name = &line[..open];
        let value = line[close + 1..].strip_prefix(' ')?;
        let ok_name = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !ok_name || value.contains(' ') {
            return None;
        }
        Some((name, &line[open + 1..close], value.parse().ok()?))
    }

    fn replica() -> NodeSnapshot {
        NodeSnapshot {
            name: "pg2".into(),
            scope: "batman".into(),
            version: "4.1.4".into(),
            state: "running".into(),
            role: Role::Replica,
            dcs_ok: true,
            cluster_unlocked: false,
            dcs_last_seen: 1_700_000_000,
            postgres: Some(PgStatus {
                postmaster_start_time: Some("2024-05-01 10:00:00.5+02:00".into()),
                server_version: 160004,
                timeline: Some(3),
                xlog: Some(Xlog::Replica {
                    received_location: Some(200),
                    replayed_location: Some(150),
                    replayed_timestamp: Some("2024-05-01 08:00:01+00".into()),
                    paused: true,
                }),
                replication_state: Some("streaming".into()),
                replication: vec![],
            }),
            ..Default::default()
        }
    }

    fn samples(text: &str) -> Vec<(String, String, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (n, lab, v) = parse_sample(l).unwrap_or_else(|| panic!("bad sample line {l:?}"));
                (n.to_string(), lab.to_string(), v)
            })
            .collect()
    }

    fn value(text: &str, name: &str) -> Option<f64> {
        samples(text).into_iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v)
    }

    #[test]
    fn every_sample_line_parses_and_has_help_and_type() {
        let text = render(&replica());
        let lines: Vec<&str> = text.lines().collect();
        let all = samples(&text);
        assert_eq!(all.len(), 23);
        for (name, labels, _) in &all {
            assert_eq!(labels, r#"scope="batman",name="pg2""#);
            assert!(
                lines.contains(&format!("# TYPE {name} gauge").as_str())
                    || lines.contains(&format!("# TYPE {name} counter").as_str())
            );
            assert!(
                lines.iter().any(|l| l.starts_with(&format!("# HELP {name} "))),
                "{name}"
            );
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn values_from_the_snapshot() {
        let t = render(&replica());
        assert_eq!(value(&t, "patroni_version"), Some(40104.0));
        assert!(t.contains("patroni_version{scope=\"batman\",name=\"pg2\"} 040104\n"));
        assert_eq!(value(&t, "patroni_postgres_running"), Some(1.0));
        assert_eq!(value(&t, "patroni_postmaster_start_time"), Some(1_714_550_400.5));
        assert_eq!(value(&t, "patroni_primary"), Some(0.0));
        assert_eq!(value(&t, "patroni_replica"), Some(1.0));
        assert_eq!(value(&t, "patroni_xlog_location"), Some(0.0));
        assert_eq!(value(&t, "patroni_xlog_received_location"), Some(200.0));
        assert_eq!(value(&t, "patroni_xlog_replayed_location"), Some(150.0));
        assert_eq!(value(&t, "patroni_xlog_replayed_timestamp"), Some(1_714_550_401.0));
        assert_eq!(value(&t, "patroni_xlog_paused"), Some(1.0));
        assert_eq!(value(&t, "patroni_postgres_streaming"), Some(1.0));
        assert_eq!(value(&t, "patroni_postgres_in_archive_recovery"), Some(0.0));
        assert_eq!(value(&t, "patroni_postgres_server_version"), Some(160004.0));
        assert_eq!(value(&t, "patroni_cluster_unlocked"), Some(0.0));
        assert_eq!(value(&t, "patroni_postgres_timeline"), Some(3.0));
        assert_eq!(value(&t, "patroni_dcs_last_seen"), Some(1_700_000_000.0));
        assert_eq!(value(&t, "patroni_pending_restart"), Some(0.0));
        assert_eq!(value(&t, "patroni_is_paused"), Some(0.0));
        assert_eq!(value(&t, "patroni_postgres_state"), Some(5.0));
        assert!(t.contains(
            "# Values: 0=initdb, 1=initdb_failed, 2=custom_bootstrap, 3=custom_bootstrap_failed, \
             4=creating_replica, 5=running, 6=starting, 7=bootstrap_starting, 8=start_failed, 9=restarting, \
             10=restart_failed, 11=stopping, 12=stopped, 13=stop_failed, 14=crashed\n"
        ));
    }

    #[test]
    fn primary_and_stopped_nodes() {
        let mut p = replica();
        p.role = Role::Primary;
        p.postgres.as_mut().unwrap().xlog = Some(Xlog::Primary { location: 4242 });
        p.postgres.as_mut().unwrap().replication_state = None;
        let t = render(&p);
        assert_eq!(value(&t, "patroni_primary"), Some(1.0));
        assert_eq!(value(&t, "patroni_xlog_location"), Some(4242.0));
        assert_eq!(value(&t, "patroni_xlog_replayed_location"), Some(0.0));
        assert_eq!(value(&t, "patroni_postgres_streaming"), Some(0.0));

        let stopped = NodeSnapshot {
            state: "creating replica".into(),
            pause: true,
            ..Default::default()
        };
        let t = render(&stopped);
        assert_eq!(value(&t, "patroni_postgres_state"), Some(4.0));
        assert_eq!(value(&t, "patroni_postgres_running"), Some(0.0));
        assert_eq!(value(&t, "patroni_postmaster_start_time"), Some(0.0));
        assert_eq!(value(&t, "patroni_is_paused"), Some(1.0));
        assert_eq!(value(&t, "patroni_cluster_unlocked"), Some(1.0));
        assert_eq!(
            value(&t, "patroni_postgres_streaming"),
            None,
            "omitted without a server version"
        );
        assert_eq!(samples(&t).len(), 21);
        let odd = NodeSnapshot {
            state: "uninitialized".into(),
            ..Default::default()
        };
        assert_eq!(value(&render(&odd), "patroni_postgres_state"), Some(-1.0));
    }

    #[test]
    fn labels_are_escaped() {
        let s = NodeSnapshot {
            scope: "a\"b\\c".into(),
            name: "x\ny".into(),
            ..Default::default()
        };
        let t = render(&s);
        assert!(t.contains(r#"patroni_is_paused{scope="a\"b\\c",name="x\ny"} 0"#));
    }

    #[test]
    fn semver_padding() {
        assert_eq!(padded_semver("0.1.0"), "000100");
        assert_eq!(padded_semver("4.1.4"), "040104");
        assert_eq!(padded_semver("10.2.13-dev"), "100213");
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0.0));
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_timestamp("2024-05-01 10:00:00+00:00"), Some(1_714_557_600.0));
        assert_eq!(parse_timestamp("2024-05-01 10:00:00+00"), Some(1_714_557_600.0));
        assert_eq!(parse_timestamp("2024-05-01 12:30:00+0230"), Some(1_714_557_600.0));
        assert_eq!(parse_timestamp("2024-05-01 05:00:00-05"), Some(1_714_557_600.0));
        assert_eq!(parse_timestamp("2024-05-01 10:00:00.25"), Some(1_714_557_600.25));
        assert_eq!(parse_timestamp("2000-02-29 00:00:00"), Some(951_782_400.0));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2024-13-01 00:00:00"), None);
        assert_eq!(parse_timestamp("2024-05-01 10:00:00 UTC"), None);
    }
}
