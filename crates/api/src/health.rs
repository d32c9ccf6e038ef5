//! The health-check rules, as pure functions of (path, query, snapshot): Patroni's generic `do_GET`,
//! `/liveness` and `/readiness`. The HTTP layer only turns the results into responses.
//!
//! These rules are the contract load balancers depend on (HAProxy `option httpchk`, Kubernetes
//! probes), so they mirror Patroni's quirks on purpose: routing by *substring* of the path, the
//! first value of a repeated query parameter, blank parameters ignored, `lag` parsed like Patroni's
//! `parse_int(value, 'B')` (hex/octal prefixes, `kB`/`MB`/`GB`/`TB`, fractions), and a `lag` that
//! does not parse meaning "no limit".
//!
//! Deliberate differences from Patroni: `/primary` also requires the Postgres role `primary`, and
//! `/replica` is never 200 for the leader-key holder, so a node in the middle of a promotion is in
//! neither pool.
//!
//! Failure story: no function here can fail or block; anything unknown answers 503.

use crate::snapshot::NodeSnapshot;
use ferroni_model::Role;
use serde_json::Value;
use std::borrow::Cow;
use std::time::Duration;

pub const OK: u16 = 200;
pub const UNAVAILABLE: u16 = 503;

/// A parsed query string with Python `parse_qs` semantics: `+` and `%XX` decoded, pairs without
/// `=` or with an empty value dropped, the first value of a key winning.
#[derive(Debug, Default)]
pub struct Query<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Query<'a> {
    pub fn parse(raw: Option<&'a str>) -> Query<'a> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Query::default();
        };
        let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
        for part in raw.split(['&', ';']) {
            let Some((k, v)) = part.split_once('=') else { continue };
            if v.is_empty() {
                continue;
            }
            let k = decode(k);
            if pairs.iter().any(|(seen, _)| *seen == k) {
                continue;
            }
            pairs.push((k, decode(v)));
        }
        Query { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
    }

    /// `tag_<key>=<value>` filters, as (key, value).
    pub fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("tag_").map(|k| (k, v.as_ref())))
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `application/x-www-form-urlencoded` decoding; invalid escapes stay literal like Python's unquote.
fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Leading integer like C `strtol(value, base=0)`: `0x` hex, leading-`0` octal, else decimal.
/// Returns the value and the unparsed rest, or `None` when no digits start the string.
fn strtol(s: &str) -> Option<(i128, &str)> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let sign = if neg { -1 } else { 1 };
    let digits_end = |t: &str, radix: u32| t.find(|c: char| !c.is_digit(radix)).unwrap_or(t.len());
    if let Some(h) = body.strip_prefix("0x") {
        let n = digits_end(h, 16);
        if n > 0 {
            let v = i128::from_str_radix(&h[..n], 16).ok()?;
            return Some((sign * v, &h[n..]));
        }
    }
    if body.starts_with('0') {
        let n = digits_end(body, 8);
        let v = i128::from_str_radix(&body[..n], 8).ok()?;
        return Some((sign * v, &body[n..]));
    }
    let n = digits_end(body, 10);
    if n == 0 {
        return None;
    }
    let v = body[..n].parse::<i128>().ok()?;
    Some((sign * v, &body[n..]))
}

/// Leading float like C `strtod`, restricted to Patroni's `[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?`.
fn strtod(s: &str) -> Option<(f64, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        i = 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut end = i;
    if i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > i + 1 {
            end = j;
        }
    }
    if end == int_start {
        return None;
    }
    let mut k = end;
    if k < b.len() && (b[k] == b'e' || b[k] == b'E') {
        let mut j = k + 1;
        if j < b.len() && (b[j] == b'-' || b[j] == b'+') {
            j += 1;
        }
        let digits = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > digits {
            k = j;
        }
    }
    s[..k].parse::<f64>().ok().map(|v| (v, &s[k..]))
}

/// A byte size as Patroni's `parse_int(value, 'B')` reads it: `1024`, `16kB`, `64MB`, `1GB`,
/// `1.5MB`, `0x400`; units are case-sensitive. `None` when it does not parse.
pub fn parse_size(value: &str) -> Option<i64> {
    let value = value.trim();
    let (mut num, mut unit) = match strtol(value) {
        Some((v, rest)) => (Some(v as f64), rest),
        None => (None, value),
    };
    let float_like = (num.is_none() && unit.starts_with('.')) || unit.starts_with(['.', 'e', 'E']);
    if float_like {
        match strtod(value) {
            Some((v, rest)) => {
                num = Some(v);
                unit = rest;
            }
            None => num = None,
        }
    }
    let num = num?;
    let unit = unit.trim();
    const KB: f64 = 1024.0;
    let (mult, round_to) = match unit {
        "" => return Some(clamp(num.round_ties_even())),
        "B" => (1.0, None),
        "kB" => (KB, Some(1.0)),
        "MB" => (KB * KB, Some(KB)),
        "GB" => (KB * KB * KB, Some(KB * KB)),
        "TB" => (KB * KB * KB * KB, Some(KB * KB * KB)),
        _ => return None,
    };
    let mut bytes = num * mult;
    // Patroni rounds a fractional size to the next smaller unit before converting.
    if let Some(r) = round_to {
        bytes = (bytes / r).round_ties_even() * r;
    }
    Some(clamp(bytes.round_ties_even()))
}

fn clamp(v: f64) -> i64 {
    // `as` saturates, which is the sane reading of an absurdly large limit.
    v as i64
}

/// Tag values compare as Patroni does: strings as is, anything else as its lower-cased text.
fn tag_matches(actual: Option<&Value>, wanted: &str) -> bool {
    match actual {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => s == wanted,
        Some(Value::Bool(b)) => wanted == if *b { "true" } else { "false" },
        Some(other) => other.to_string().to_lowercase() == wanted,
    }
}

struct Codes {
    leader: u16,
    primary: u16,
    standby_leader: u16,
    replica: u16,
}

fn code(ok: bool) -> u16 {
    if ok { OK } else { UNAVAILABLE }
}

fn codes(q: &Query<'_>, s: &NodeSnapshot) -> Codes {
    let max_lag = q.get("lag").and_then(parse_size).unwrap_or(i64::MAX);
    let leader_optime = s.leader_optime();
    let lagging = leader_optime != 0 && (leader_optime as i128) > s.replayed_location() as i128 + max_lag as i128;
    let state_ok = q
        .get("replication_state")
        .is_none_or(|w| s.replication_state() == Some(w));
    let replica_ok = !s.noloadbalance() && !lagging && s.role == Role::Replica && s.is_running() && state_ok;

    if !s.dcs_ok && s.pause {
        // Paused with the DCS unreachable: Patroni trusts the Postgres role alone, so load balancers
        // keep routing while nobody can act on the cluster anyway.
        return Codes {
            leader: code(matches!(s.role, Role::Primary | Role::StandbyLeader)),
            primary: code(s.role == Role::Primary),
            standby_leader: code(s.role == Role::StandbyLeader),
            replica: code(replica_ok),
        };
    }
    if s.is_leader {
        let (primary, standby_leader) = if s.standby_cluster {
            (false, matches!(s.role, Role::Replica | Role::StandbyLeader))
        } else {
            (s.role == Role::Primary, false)
        };
        return Codes {
            leader: OK,
            primary: code(primary),
            standby_leader: code(standby_leader),
            replica: UNAVAILABLE,
        };
    }
    Codes {
        leader: UNAVAILABLE,
        primary: UNAVAILABLE,
        standby_leader: UNAVAILABLE,
        replica: code(replica_ok),
    }
}

/// The status code of a GET/HEAD/OPTIONS health check on `path` (without the query string).
pub fn health_check(path: &str, query: Option<&str>, s: &NodeSnapshot) -> u16 {
    let q = Query::parse(query);
    let path = if path == "/" { "/primary" } else { path };
    let c = codes(&q, s);
    let mut ignore_tags = false;
    let status = if path.contains("standby_leader") || path.contains("standby-leader") {
        ignore_tags = true;
        c.standby_leader
    } else if path.contains("leader") {
        ignore_tags = true;
        c.leader
    } else if path.contains("master") || path.contains("primary") || path.contains("read-write") {
        ignore_tags = true;
        c.primary
    } else if path.contains("replica") {
        c.replica
    } else if path.contains("read-only") && !path.contains("sync") && !path.contains("quorum") {
        if c.primary == OK || c.standby_leader == OK {
            OK
        } else {
            c.replica
        }
    } else if path.contains("health") {
        code(s.is_running())
    } else if s.dcs_ok {
        // Exact paths from here on, as in Patroni; membership needs a current DCS view.
        let writable = c.primary == OK || c.standby_leader == OK;
        match path {
            "/sync" | "/synchronous" if s.sync_standby => c.replica,
            "/quorum" if s.quorum_standby => c.replica,
            "/async" | "/asynchronous" if !s.sync_standby && !s.quorum_standby => c.replica,
            "/read-only-quorum" if writable => OK,
            "/read-only-quorum" if s.quorum_standby => c.replica,
            "/read-only-sync" | "/read-only-synchronous" if writable => OK,
            "/read-only-sync" | "/read-only-synchronous" if s.sync_standby => c.replica,
            _ => UNAVAILABLE,
        }
    } else {
        UNAVAILABLE
    };

    if !ignore_tags && status == OK && !q.tags().all(|(k, v)| tag_matches(s.tags.get(k), v)) {
        return UNAVAILABLE;
    }
    status
}

/// `/liveness`: the HA loop is alive. `since_heartbeat` is the time since the last completed cycle.
///
/// Patroni measures from its *next scheduled* run (last run + `loop_wait`), so the allowance is
/// `loop_wait + ttl` on a running primary and `loop_wait + 2*ttl` elsewhere: a primary's probe should
/// only fail around when its leader key expires, a replica can be tolerated longer.
pub fn liveness(s: &NodeSnapshot, since_heartbeat: Duration) -> u16 {
    if s.pause {
        return OK;
    }
    let is_primary = s.role == Role::Primary && s.is_running();
    let threshold = u64::from(s.ttl) * if is_primary { 1 } else { 2 } + u64::from(s.loop_wait);
    code(since_heartbeat < Duration::from_secs(threshold))
}

/// `/readiness`: `Ok` when the node may receive traffic, else the reason (logged, not sent).
pub fn readiness(query: Option<&str>, s: &NodeSnapshot) -> Result<(), String> {
    if s.is_leader {
        // Only a bootstrapped or running standby ever becomes leader, so it is ready by definition.
        return Ok(());
    }
    if !s.is_running() {
        return Err("PostgreSQL is not running".into());
    }
    if s.replication_state() != Some("streaming") {
        return Err("PostgreSQL replication state is not streaming".into());
    }
    let latest_end_lsn = s.wal_receiver_latest_end_lsn.unwrap_or(0);
    if !s.dcs_ok && latest_end_lsn == 0 {
        return if s.failsafe_mode_is_active {
            Ok(())
        } else {
            Err("DCS is not accessible".into())
        };
    }
    let q = Query::parse(query);
    let write = q.get("mode") == Some("write");
    let (mode, location) = if write {
        ("write", s.received_location())
    } else {
        ("apply", s.replayed_location())
    };
    let lag = s.leader_optime() as i128 - location as i128;
    let max = q
        .get("lag")
        .and_then(parse_size)
        .map_or(s.maximum_lag_on_failover as i128, i128::from);
    if lag > max {
        return Err(format!("Replication {mode} lag {lag} exceeds maximum allowable {max}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{PgStatus, Xlog};
    use serde_json::json;

    #[test]
    fn parse_size_like_patroni() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("1024", Some(1024)),
            ("  77 ", Some(77)),
            ("16kB", Some(16 * 1024)),
            ("64MB", Some(64 << 20)),
            ("1GB", Some(1 << 30)),
            ("2TB", Some(2 << 40)),
            ("10 MB", Some(10 << 20)),
            ("100B", Some(100)),
            ("1.5MB", Some(1536 * 1024)),
            ("1.5kB", Some(1536)),
            ("0x400", Some(1024)),
            ("0x400 MB", Some(1024 << 20)),
            ("010", Some(8)),
            ("1e3", Some(1000)),
            ("-1", Some(-1)),
            ("+5", Some(5)),
            (".5kB", Some(512)),
            ("1mb", None),
            ("16KB", None),
            ("1 PB", None),
            ("nonsense", None),
            ("08", None),
            ("", None),
            ("99999999999999999999999TB", Some(i64::MAX)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_size(input), *want, "parse_size({input:?})");
        }
    }

    #[test]
    fn query_parsing() {
        let q = Query::parse(Some("lag=16kB&lag=1&empty=&flag&tag_zone=eu%2Dwest+1&tag_a=b;x=%zz"));
        assert_eq!(q.get("lag"), Some("16kB"));
        assert_eq!(q.get("empty"), None);
        assert_eq!(q.get("flag"), None);
        assert_eq!(q.get("x"), Some("%zz"));
        let tags: Vec<_> = q.tags().collect();
        assert_eq!(tags, [("zone", "eu-west 1"), ("a", "b")]);
        assert!(Query::parse(None).get("lag").is_none());
        assert_eq!(Query::parse(Some("a=%41")).get("a"), Some("A"));
        assert_eq!(Query::parse(Some("a=%4")).get("a"), Some("%4"));
        assert_eq!(Query::parse(Some("a=x%")).get("a"), Some("x%"));
    }

    fn pg(xlog: Xlog, replication_state: Option<&str>) -> Option<PgStatus> {
        Some(PgStatus {
            server_version: 160004,
            timeline: Some(1),
            xlog: Some(xlog),
            replication_state: replication_state.map(Into::into),
            ..Default::default()
        })
    }

    fn primary() -> NodeSnapshot {
        NodeSnapshot {
            state: "running".into(),
            role: Role::Primary,
            is_leader: true,
            dcs_ok: true,
            cluster_unlocked: false,
            optime: 1000,
            postgres: pg(Xlog::Primary { location: 1000 }, None),
            ..Default::default()
        }
    }

    fn replica(replayed: u64) -> NodeSnapshot {
        NodeSnapshot {
            state: "running".into(),
            role: Role::Replica,
            is_leader: false,
            dcs_ok: true,
            cluster_unlocked: false,
            optime: 1_000_000,
            postgres: pg(
                Xlog::Replica {
                    received_location: Some(replayed),
                    replayed_location: Some(replayed),
                    replayed_timestamp: None,
                    paused: false,
                },
                Some("streaming"),
            ),
            ..Default::default()
        }
    }

    fn standby_leader() -> NodeSnapshot {
        NodeSnapshot {
            standby_cluster: true,
            role: Role::StandbyLeader,
            ..replica(1_000_000)
        }
        .with(|s| s.is_leader = true)
    }

    trait With: Sized {
        fn with(self, f: impl FnOnce(&mut Self)) -> Self;
    }
    impl With for NodeSnapshot {
        fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
            f(&mut self);
            self
        }
    }

    const PATHS: [&str; 22] = [
        "/",
        "/primary",
        "/master",
        "/read-write",
        "/leader",
        "/standby-leader",
        "/standby_leader",
        "/replica",
        "/read-only",
        "/health",
        "/sync",
        "/synchronous",
        "/read-only-sync",
        "/read-only-synchronous",
        "/quorum",
        "/read-only-quorum",
        "/async",
        "/asynchronous",
        "/foo",
        "/patroni",
        "/liveness",
        "/primary/extra",
    ];

    /// Expected codes, in `PATHS` order, as a string of `2` (200) and `5` (503).
    fn check(name: &str, s: &NodeSnapshot, query: Option<&str>, expected: &str) {
        let got: String = PATHS
            .iter()
            .map(|p| if health_check(p, query, s) == OK { '2' } else { '5' })
            .collect();
        let exp: String = expected.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(got, exp, "{name}: paths {PATHS:?}");
    }

    #[test]
    fn health_table() {
        // Columns, in PATHS order:
        //  /  primary master read-write | leader standby-leader standby_leader | replica read-only health |
        //  sync synchronous read-only-sync read-only-synchronous | quorum read-only-quorum |
        //  async asynchronous | foo patroni liveness primary/extra
        check(
            "primary",
            &primary(),
            None,
            "2 2 2 2 2 5 5 5 2 2 5 5 2 2 5 2 5 5 5 5 5 2",
        );
        check(
            "replica",
            &replica(999_999),
            None,
            "5 5 5 5 5 5 5 2 2 2 5 5 5 5 5 5 2 2 5 5 5 5",
        );
        check(
            "standby leader",
            &standby_leader(),
            None,
            "5 5 5 5 2 2 2 5 2 2 5 5 2 2 5 2 5 5 5 5 5 5",
        );
        check(
            "stopped replica",
            &replica(0).with(|s| {
                s.state = "stopped".into();
                s.postgres = None;
            }),
            None,
            "5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5",
        );
        check(
            "leader still promoting",
            &replica(1_000_000).with(|s| s.is_leader = true),
            None,
            "5 5 5 5 2 5 5 5 5 2 5 5 5 5 5 5 5 5 5 5 5 5",
        );
        check(
            "primary without lock",
            &primary().with(|s| s.is_leader = false),
            None,
            "5 5 5 5 5 5 5 5 5 2 5 5 5 5 5 5 5 5 5 5 5 5",
        );
        check(
            "noloadbalance replica",
            &replica(1_000_000).with(|s| {
                s.tags.insert("noloadbalance".into(), json!(true));
            }),
            None,
            "5 5 5 5 5 5 5 5 5 2 5 5 5 5 5 5 5 5 5 5 5 5",
        );
        check(
            "replica with DCS down: async paths need the DCS",
            &replica(1_000_000).with(|s| s.dcs_ok = false),
            None,
            "5 5 5 5 5 5 5 2 2 2 5 5 5 5 5 5 5 5 5 5 5 5",
        );
        check(
            "sync standby",
            &replica(1_000_000).with(|s| s.sync_standby = true),
            None,
            "5 5 5 5 5 5 5 2 2 2 2 2 2 2 5 5 5 5 5 5 5 5",
        );
        check(
            "quorum standby",
            &replica(1_000_000).with(|s| s.quorum_standby = true),
            None,
            "5 5 5 5 5 5 5 2 2 2 5 5 5 5 2 2 5 5 5 5 5 5",
        );
        check(
            "crashed primary keeping the lock",
            &primary().with(|s| {
                s.state = "crashed".into();
                s.postgres = None;
            }),
            None,
            "2 2 2 2 2 5 5 5 2 5 5 5 2 2 5 2 5 5 5 5 5 2",
        );
    }

    #[test]
    fn paused_without_dcs_trusts_the_role() {
        let p = primary().with(|s| {
            s.pause = true;
            s.dcs_ok = false;
            s.is_leader = false;
        });
        assert_eq!(health_check("/primary", None, &p), OK);
        assert_eq!(health_check("/leader", None, &p), OK);
        assert_eq!(health_check("/standby-leader", None, &p), UNAVAILABLE);
        let sl = standby_leader().with(|s| {
            s.pause = true;
            s.dcs_ok = false;
            s.is_leader = false;
        });
        assert_eq!(health_check("/standby-leader", None, &sl), OK);
        assert_eq!(health_check("/leader", None, &sl), OK);
        assert_eq!(health_check("/primary", None, &sl), UNAVAILABLE);
        // Paused with a working DCS: the lock decides, as usual.
        let p = primary().with(|s| {
            s.pause = true;
            s.is_leader = false;
        });
        assert_eq!(health_check("/primary", None, &p), UNAVAILABLE);
    }

    #[test]
    fn replica_lag() {
        // optime 1_000_000; replayed 1_000_000 - 20_000 → lag 20_000 bytes.
        let s = replica(980_000);
        let cases: &[(Option<&str>, u16)] = &[
            (None, OK),
            (Some("lag=20000"), OK),
            (Some("lag=19999"), UNAVAILABLE),
            (Some("lag=16kB"), UNAVAILABLE),
            (Some("lag=20kB"), OK),
            (Some("lag=1MB"), OK),
            (Some("lag=garbage"), OK),
            (Some("lag="), OK),
            (Some("lag=0"), UNAVAILABLE),
        ];
        for (q, want) in cases {
            assert_eq!(health_check("/replica", *q, &s), *want, "/replica?{q:?}");
            assert_eq!(health_check("/read-only", *q, &s), *want, "/read-only?{q:?}");
            assert_eq!(health_check("/async", *q, &s), *want, "/async?{q:?}");
        }
        // Lag never disqualifies the primary on /read-only.
        assert_eq!(health_check("/read-only", Some("lag=0"), &primary()), OK);
    }

    #[test]
    fn lag_reference_is_max_of_optime_and_receiver() {
        let s = replica(980_000).with(|s| s.wal_receiver_latest_end_lsn = Some(2_000_000));
        assert_eq!(health_check("/replica", Some("lag=100000"), &s), UNAVAILABLE);
        assert_eq!(health_check("/replica", Some("lag=1020000"), &s), OK);
        // A stale DCS view does not count; the receiver alone does.
        let s = replica(980_000).with(|s| {
            s.dcs_ok = false;
            s.wal_receiver_latest_end_lsn = Some(990_000);
        });
        assert_eq!(health_check("/replica", Some("lag=10000"), &s), OK);
        assert_eq!(health_check("/replica", Some("lag=9999"), &s), UNAVAILABLE);
        // Nothing to compare with: never lagging.
        let s = replica(0).with(|s| s.optime = 0);
        assert_eq!(health_check("/replica", Some("lag=0"), &s), OK);
    }

    #[test]
    fn replication_state_filter() {
        let s = replica(1_000_000);
        assert_eq!(health_check("/replica", Some("replication_state=streaming"), &s), OK);
        assert_eq!(
            health_check("/replica", Some("replication_state=in+archive+recovery"), &s),
            UNAVAILABLE
        );
        let a = s
            .clone()
            .with(|s| s.postgres.as_mut().unwrap().replication_state = Some("in archive recovery".into()));
        assert_eq!(
            health_check("/replica", Some("replication_state=in%20archive%20recovery"), &a),
            OK
        );
        assert_eq!(
            health_check("/replica", Some("replication_state=streaming"), &a),
            UNAVAILABLE
        );
    }

    #[test]
    fn tag_filters() {
        let s = replica(1_000_000).with(|s| {
            s.tags.insert("zone".into(), json!("eu"));
            s.tags.insert("clonefrom".into(), json!(true));
            s.tags.insert("weight".into(), json!(3));
            s.tags.insert("nothing".into(), Value::Null);
        });
        let cases: &[(&str, u16)] = &[
            ("tag_zone=eu", OK),
            ("tag_zone=us", UNAVAILABLE),
            ("tag_clonefrom=true", OK),
            ("tag_clonefrom=True", UNAVAILABLE),
            ("tag_weight=3", OK),
            ("tag_missing=x", UNAVAILABLE),
            ("tag_nothing=null", UNAVAILABLE),
            ("tag_zone=eu&tag_weight=3", OK),
            ("tag_zone=eu&tag_weight=4", UNAVAILABLE),
            ("tag_zone=eu&tag_zone=us", OK),
            ("tag_zone=", OK),
        ];
        for (q, want) in cases {
            assert_eq!(health_check("/replica", Some(q), &s), *want, "/replica?{q}");
        }
        // Tags never affect leader checks.
        assert_eq!(health_check("/primary", Some("tag_zone=nowhere"), &primary()), OK);
        assert_eq!(health_check("/leader", Some("tag_zone=nowhere"), &primary()), OK);
        // But they do affect /read-only on the primary and /health.
        assert_eq!(
            health_check("/read-only", Some("tag_zone=nowhere"), &primary()),
            UNAVAILABLE
        );
        assert_eq!(
            health_check("/health", Some("tag_zone=nowhere"), &primary()),
            UNAVAILABLE
        );
    }

    #[test]
    fn liveness_thresholds() {
        let secs = Duration::from_secs;
        // ttl 30, loop_wait 10: primary 40 s, replica 70 s.
        let p = primary();
        assert_eq!(liveness(&p, secs(39)), OK);
        assert_eq!(liveness(&p, secs(40)), UNAVAILABLE);
        let r = replica(0);
        assert_eq!(liveness(&r, secs(69)), OK);
        assert_eq!(liveness(&r, secs(70)), UNAVAILABLE);
        // A stopped "primary" gets the replica allowance, as in Patroni.
        let stopped = primary().with(|s| s.state = "stopped".into());
        assert_eq!(liveness(&stopped, secs(69)), OK);
        // Paused: always alive.
        let paused = primary().with(|s| s.pause = true);
        assert_eq!(liveness(&paused, secs(100_000)), OK);
    }

    #[test]
    fn readiness_rules() {
        assert_eq!(readiness(None, &primary()), Ok(()));
        assert_eq!(readiness(None, &standby_leader()), Ok(()));
        let stopped = replica(0).with(|s| s.state = "starting".into());
        assert_eq!(readiness(None, &stopped).unwrap_err(), "PostgreSQL is not running");
        let archive = replica(1_000_000)
            .with(|s| s.postgres.as_mut().unwrap().replication_state = Some("in archive recovery".into()));
        assert!(readiness(None, &archive).unwrap_err().contains("not streaming"));

        // Default limit: maximum_lag_on_failover (1 MiB).
        assert_eq!(readiness(None, &replica(1_000_000)), Ok(()));
        let far = replica(1_000_000).with(|s| s.optime = 1_000_000 + 1_048_577);
        assert_eq!(
            readiness(None, &far).unwrap_err(),
            "Replication apply lag 1048577 exceeds maximum allowable 1048576"
        );
        assert_eq!(readiness(Some("lag=2MB"), &far), Ok(()));
        assert!(readiness(Some("lag=1kB"), &replica(998_000)).is_err());

        // mode=write measures the received position.
        let recv_ahead = replica(0).with(|s| {
            s.optime = 2_000_000;
            if let Some(Xlog::Replica { received_location, .. }) = &mut s.postgres.as_mut().unwrap().xlog {
                *received_location = Some(2_000_000);
            }
        });
        assert!(readiness(None, &recv_ahead).is_err());
        assert_eq!(readiness(Some("mode=write&lag=0"), &recv_ahead), Ok(()));

        // DCS down: tolerated only with a WAL receiver position or failsafe mode.
        let blind = replica(1_000_000).with(|s| s.dcs_ok = false);
        assert_eq!(readiness(None, &blind).unwrap_err(), "DCS is not accessible");
        let failsafe = blind.clone().with(|s| s.failsafe_mode_is_active = true);
        assert_eq!(readiness(None, &failsafe), Ok(()));
        let receiving = blind.with(|s| s.wal_receiver_latest_end_lsn = Some(1_000_100));
        assert_eq!(readiness(None, &receiving), Ok(()));
    }
}
