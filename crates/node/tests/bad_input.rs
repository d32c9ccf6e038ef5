//! Bad input of every kind gets a clear error or a 4xx, and ferroni keeps running with nothing
//! lost: configuration files the daemon refuses before touching anything (the cases
//! `config_errors.rs` does not cover), REST requests a running node refuses (after each one it still
//! answers `/patroni` 200 as the primary, and the DCS `config` key is unchanged — same value, same
//! version), and `ferronictl` arguments it refuses with exit 2 and the error on the first line.

mod common;

use common::{TestCluster, secs};
use ferroni_testkit::node::{FerroniNode, postgres_tempdir, process_alive, tail};
use ferroni_testkit::ports::free_port;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferroni");
const CTL: &str = env!("CARGO_BIN_EXE_ferronictl");

const GOOD: &str = r#"name: n0
scope: s
restapi:
  listen: 127.0.0.1:18001
etcd3:
  hosts: 127.0.0.1:1
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
postgresql:
  listen: 127.0.0.1:15001
  data_dir: DATA
"#;

/// Runs the daemon (not `--validate-config`: the real start path) on `text` written as a file, with
/// `env` set; returns exit code, stdout+stderr, and whether the data directory was created.
fn run_daemon(text: &[u8], args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String, bool) {
    let dir = postgres_tempdir();
    let data = dir.path().join("data");
    let path = dir.path().join("bad.yml");
    // Invalid UTF-8 must reach the daemon as it is.
    let bytes = match std::str::from_utf8(text) {
        Ok(t) => t.replace("DATA", &data.display().to_string()).into_bytes(),
        Err(_) => text.to_vec(),
    };
    std::fs::write(&path, bytes).unwrap();
    let mut cmd = Command::new(BIN);
    common::without_patroni_env(&mut cmd);
    cmd.envs(env.iter().copied());
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("FILE", &path.display().to_string()))
        .collect();
    let out = cmd.args(&args).output().expect("run ferroni");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        data.exists(),
    )
}

#[test]
fn bad_configuration_files_are_refused_with_the_key_path_and_touch_nothing() {
    let good = GOOD.to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "ttl below the minimum",
            good.replace("ttl: 30", "ttl: 3"),
            "bootstrap.dcs.ttl: expected an integer >= 5, got 3",
        ),
        (
            "retry_timeout zero",
            good.replace("retry_timeout: 10", "retry_timeout: 0"),
            "bootstrap.dcs.retry_timeout: expected an integer >= 1, got 0",
        ),
        (
            "negative ttl",
            good.replace("ttl: 30", "ttl: -30"),
            "bootstrap.dcs.ttl: expected an integer >= 5, got -30",
        ),
        (
            "fractional ttl",
            good.replace("ttl: 30", "ttl: 30.5"),
            "bootstrap.dcs.ttl: expected an integer >= 5, got 30.5",
        ),
        (
            "ttl beyond any integer",
            good.replace("ttl: 30", "ttl: 99999999999999999999"),
            "bootstrap.dcs.ttl: expected an integer >= 5",
        ),
        (
            "retry_timeout that breaks the timing rule",
            good.replace("retry_timeout: 10", "retry_timeout: 15"),
            "loop_wait + 2*retry_timeout (40) must not exceed ttl (30)",
        ),
        (
            "maximum_lag_on_failover of the wrong type",
            good.replace(
                "retry_timeout: 10",
                "retry_timeout: 10\n    maximum_lag_on_failover: lots",
            ),
            r#"bootstrap.dcs.maximum_lag_on_failover: expected an integer >= 0, got "lots""#,
        ),
        (
            "name that is a list",
            good.replace("name: n0", "name: [a, b]"),
            "name: expected a string, got a list",
        ),
        (
            "scope missing",
            good.replace("scope: s\n", ""),
            "scope: required key is missing",
        ),
        (
            "postgresql port out of range",
            good.replace("listen: 127.0.0.1:15001", "listen: 127.0.0.1:99999"),
            r#"postgresql.listen: expected host:port, got "127.0.0.1:99999""#,
        ),
        (
            "postgresql listen without a port",
            good.replace("listen: 127.0.0.1:15001", "listen: 127.0.0.1"),
            r#"postgresql.listen: expected host:port, got "127.0.0.1""#,
        ),
        (
            "restapi listen that is no address",
            good.replace("listen: 127.0.0.1:18001", "listen: nonsense"),
            r#"restapi.listen: expected host:port, got "nonsense""#,
        ),
        (
            "etcd v2 section",
            good.replace("etcd3:", "etcd:"),
            "etcd: ferroni supports only etcd3",
        ),
        (
            "no DCS section at all",
            good.replace("etcd3:\n  hosts: 127.0.0.1:1\n", ""),
            "etcd3: required key is missing",
        ),
        (
            "postgresql.parameters that is a list",
            good.replace("  data_dir: DATA\n", "  data_dir: DATA\n  parameters: [1, 2]\n"),
            "postgresql.parameters: expected a map, got a list",
        ),
        (
            "tags.nofailover that is no boolean",
            format!("{good}tags:\n  nofailover: maybe\n"),
            r#"tags.nofailover: expected a boolean, got "maybe""#,
        ),
        (
            "log.level unknown",
            format!("{good}log:\n  level: LOUD\n"),
            r#"log.level: expected one of debug, info, warning, error, critical, got "LOUD""#,
        ),
        (
            "duplicate key",
            format!("{good}name: n1\n"),
            "duplicate mapping key: name",
        ),
        ("tab indentation", "name: n0\n\tscope: s\n".into(), "found a tab"),
        ("empty file", String::new(), "the configuration is empty"),
        (
            "a list instead of a map",
            "- a\n- b\n".into(),
            "the configuration must be a map of sections, got a list",
        ),
        (
            "a scalar instead of a map",
            "hello\n".into(),
            r#"the configuration must be a map of sections, got "hello""#,
        ),
    ];
    let mut cases: Vec<(&str, Vec<u8>, &str)> = cases.into_iter().map(|(w, t, e)| (w, t.into_bytes(), e)).collect();
    cases.push((
        "invalid UTF-8",
        b"name: \xff\xfe\n".to_vec(),
        "stream did not contain valid UTF-8",
    ));
    let mut failures = Vec::new();
    for (what, text, expected) in &cases {
        let (code, _out, err, created) = run_daemon(text, &["FILE"], &[]);
        let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("ferroni: warning:")).collect();
        let ok = code == Some(2)
            && lines.len() == 1
            && lines[0].starts_with("ferroni: invalid configuration: ")
            && lines[0].contains(expected)
            && !created;
        eprintln!("config: {what}: exit {code:?}: {}", err.trim());
        if !ok {
            failures.push(format!(
                "{what}: exit {code:?}, data dir created {created}, expected {expected:?} in one line, got {err:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What is tried, the arguments (`FILE` is the good configuration file), the environment, and the
/// text expected on the first line of the error.
type DaemonCase<'a> = (&'a str, &'a [&'a str], Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn bad_command_lines_and_environment_of_the_daemon_are_refused() {
    let cases: Vec<DaemonCase> = vec![
        (
            "missing file",
            &["/nonexistent/ferroni.yml"],
            vec![],
            "cannot read /nonexistent/ferroni.yml",
        ),
        (
            "unknown flag",
            &["--bogus", "FILE"],
            vec![],
            "unexpected argument '--bogus'",
        ),
        ("two files", &["FILE", "FILE"], vec![], "unexpected argument"),
        (
            "no configuration anywhere",
            &[],
            vec![],
            "no configuration: give a configuration file, or set PATRONI_CONFIGURATION",
        ),
        (
            "malformed PATRONI_CONFIGURATION",
            &[],
            vec![("PATRONI_CONFIGURATION", "{{{")],
            "PATRONI_CONFIGURATION: ",
        ),
        (
            "PATRONI_RESTAPI_LISTEN of the wrong form",
            &["FILE"],
            vec![("PATRONI_RESTAPI_LISTEN", "garbage")],
            r#"restapi.listen: expected host:port, got "garbage" (set by PATRONI_RESTAPI_LISTEN)"#,
        ),
        (
            "PATRONI_POSTGRESQL_LISTEN out of range",
            &["FILE"],
            vec![("PATRONI_POSTGRESQL_LISTEN", "127.0.0.1:70000")],
            "postgresql.listen: expected host:port",
        ),
    ];
    let mut failures = Vec::new();
    for (what, args, env, expected) in &cases {
        let (code, out, err, created) = run_daemon(GOOD.as_bytes(), args, env);
        let first = err.lines().next().unwrap_or_default();
        eprintln!("daemon: {what}: exit {code:?}: {}", first);
        if code != Some(2) || !first.contains(expected) || created || !out.is_empty() {
            failures.push(format!(
                "{what}: exit {code:?}, created {created}, expected {expected:?} on the first line of {err:?} (stdout {out:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What a raw HTTP exchange returned: the status (0 when the server closed without answering) and
/// the body.
fn raw(port: u16, request: &[u8], half_close: bool) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the REST API");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may answer (413, 431) and close before it has read everything; that is fine.
    let _ = stream.write_all(request);
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_default();
    (code, body)
}

fn request(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// The node, its DCS config (value and version) and its leadership, to compare after each request.
struct Baseline {
    config: (Value, i64),
    leader: String,
}

fn baseline(c: &TestCluster) -> Baseline {
    let view = c.load();
    let leader = view.leader_name().unwrap_or_default().to_string();
    let config = view.config.expect("config key");
    Baseline {
        config: (config.value, config.version),
        leader,
    }
}

/// The node still runs, answers `/patroni` 200 as a running primary, and the DCS is as it was.
fn still_fine(c: &TestCluster, node: &FerroniNode, before: &Baseline, after_what: &str) {
    let pid = node.pid().expect("daemon running") as i32;
    assert!(
        process_alive(pid),
        "the daemon died after {after_what}\n{}",
        tail(&node.log(), 40)
    );
    let (code, status) = node
        .api_get("/patroni")
        .unwrap_or_else(|e| panic!("/patroni unreachable after {after_what}: {e:#}"));
    assert_eq!(code, 200, "/patroni after {after_what}: {status}");
    assert_eq!(
        (status["role"].as_str(), status["state"].as_str()),
        (Some("primary"), Some("running")),
        "after {after_what}: {status}"
    );
    let now = baseline(c);
    assert_eq!(now.config, before.config, "the DCS config changed after {after_what}");
    assert_eq!(now.leader, before.leader, "the leader changed after {after_what}");
}

/// What is tried, method, path, body, the expected status and a text expected in the answer.
type RestCase<'a> = (&'a str, &'a str, &'a str, &'a [u8], u16, &'a str);

#[test]
fn rest_api_refuses_bad_requests_and_the_node_keeps_running_with_nothing_lost() {
    let mut c = TestCluster::new("badrest");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    c.nodes[a]
        .psql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        .unwrap();
    let node = &c.nodes[a];
    let port = node.spec.api_port;
    let before = baseline(&c);
    let mut sent = 0;

    let big = vec![b' '; 1_100_000];
    let cases: Vec<RestCase> = vec![
        (
            "truncated JSON",
            "PATCH",
            "/config",
            br#"{"ttl": "#,
            400,
            "invalid JSON",
        ),
        (
            "invalid UTF-8",
            "PATCH",
            "/config",
            b"{\"ttl\": \"\xff\xfe\"}",
            400,
            "invalid JSON",
        ),
        ("not JSON at all", "PATCH", "/config", b"ttl=30", 400, "invalid JSON"),
        (
            "a JSON array",
            "PATCH",
            "/config",
            b"[1, 2, 3]",
            400,
            "non-empty JSON object",
        ),
        (
            "a JSON string",
            "PATCH",
            "/config",
            br#""ttl""#,
            400,
            "non-empty JSON object",
        ),
        (
            "an empty object",
            "PATCH",
            "/config",
            b"{}",
            400,
            "non-empty JSON object",
        ),
        (
            "ttl of the wrong type",
            "PATCH",
            "/config",
            br#"{"ttl": "ten"}"#,
            400,
            "ttl",
        ),
        (
            "ttl below the minimum",
            "PATCH",
            "/config",
            br#"{"ttl": 3}"#,
            400,
            "expected an integer >= 5",
        ),
        (
            "contradictory timing",
            "PATCH",
            "/config",
            br#"{"loop_wait": 10}"#,
            400,
            "must not exceed ttl",
        ),
        (
            "negative retry_timeout",
            "PATCH",
            "/config",
            br#"{"retry_timeout": -1}"#,
            400,
            "retry_timeout",
        ),
        (
            "pause that is no boolean",
            "PATCH",
            "/config",
            br#"{"pause": "maybe"}"#,
            400,
            "pause",
        ),
        (
            "maximum_lag_on_failover of the wrong type",
            "PATCH",
            "/config",
            br#"{"maximum_lag_on_failover": [1]}"#,
            400,
            "maximum_lag_on_failover",
        ),
        (
            "oversized body",
            "PATCH",
            "/config",
            &big,
            413,
            "request body over 1048576 bytes",
        ),
        ("PUT of bad JSON", "PUT", "/config", b"{", 400, "invalid JSON"),
        (
            "PUT of an empty object",
            "PUT",
            "/config",
            b"{}",
            400,
            "non-empty JSON object",
        ),
        ("PUT of a wrong type", "PUT", "/config", br#"{"ttl": "x"}"#, 400, "ttl"),
        (
            "switchover with an empty body",
            "POST",
            "/switchover",
            b"",
            400,
            "invalid JSON",
        ),
        (
            "switchover of bad JSON",
            "POST",
            "/switchover",
            b"{leader: a}",
            400,
            "invalid JSON",
        ),
        (
            "switchover of {}",
            "POST",
            "/switchover",
            b"{}",
            400,
            "non-empty JSON object",
        ),
        (
            "switchover leader of the wrong type",
            "POST",
            "/switchover",
            br#"{"leader": 5}"#,
            400,
            "leader should be a string",
        ),
        (
            "switchover without a leader",
            "POST",
            "/switchover",
            br#"{"candidate": "b"}"#,
            400,
            "only from a specific leader",
        ),
        (
            "switchover to itself",
            "POST",
            "/switchover",
            br#"{"leader": "a", "candidate": "a"}"#,
            400,
            "target and source are the same",
        ),
        (
            "switchover to a member that does not exist",
            "POST",
            "/switchover",
            br#"{"leader": "a", "candidate": "ghost"}"#,
            412,
            "candidate does not exists",
        ),
        (
            "switchover from the wrong leader",
            "POST",
            "/switchover",
            br#"{"leader": "ghost"}"#,
            412,
            "leader name does not match",
        ),
        (
            "switchover with an unknown key (ignored, as by Patroni)",
            "POST",
            "/switchover",
            br#"{"leader": "a", "bogus": true}"#,
            412,
            "cluster does not have members except leader",
        ),
        (
            "switchover at an unparsable time",
            "POST",
            "/switchover",
            br#"{"leader": "a", "scheduled_at": "tomorrowish"}"#,
            422,
            "Unable to parse scheduled timestamp",
        ),
        (
            "switchover at a time without a zone",
            "POST",
            "/switchover",
            br#"{"leader": "a", "scheduled_at": "2099-01-01T00:00:00"}"#,
            400,
            "Timezone information is mandatory",
        ),
        (
            "switchover in the past",
            "POST",
            "/switchover",
            br#"{"leader": "a", "scheduled_at": "2001-01-01T00:00:00+00:00"}"#,
            422,
            "Cannot schedule switchover in the past",
        ),
        (
            "failover without a candidate",
            "POST",
            "/failover",
            br#"{"x": 1}"#,
            400,
            "only to a specific candidate",
        ),
        (
            "failover candidate of the wrong type",
            "POST",
            "/failover",
            br#"{"candidate": 7}"#,
            400,
            "candidate should be a string",
        ),
        (
            "failover that cannot be scheduled",
            "POST",
            "/failover",
            br#"{"candidate": "ghost", "scheduled_at": "2099-01-01T00:00:00+00:00"}"#,
            400,
            "Failover can't be scheduled",
        ),
        (
            "restart with an unknown key",
            "POST",
            "/restart",
            br#"{"bogus": 1}"#,
            400,
            "Unknown filter for the scheduled restart: bogus",
        ),
        (
            "restart with a bad role",
            "POST",
            "/restart",
            br#"{"role": "king"}"#,
            400,
            "role should be either",
        ),
        (
            "restart with a negative timeout",
            "POST",
            "/restart",
            br#"{"timeout": -5}"#,
            400,
            "Timeout should be a positive number",
        ),
        (
            "restart with a timeout in words",
            "POST",
            "/restart",
            br#"{"timeout": "soon"}"#,
            400,
            "Timeout should be a positive number",
        ),
        (
            "restart with a bad version",
            "POST",
            "/restart",
            br#"{"postgres_version": "abc"}"#,
            400,
            "Invalid PostgreSQL version",
        ),
        (
            "restart_pending that is no boolean",
            "POST",
            "/restart",
            br#"{"restart_pending": "yes"}"#,
            400,
            "restart_pending should be a boolean",
        ),
        (
            "restart with a JSON array",
            "POST",
            "/restart",
            b"[1]",
            400,
            "JSON object",
        ),
        ("restart with bad JSON", "POST", "/restart", b"{", 400, "invalid JSON"),
        (
            "reinitialize with bad JSON",
            "POST",
            "/reinitialize",
            b"{",
            400,
            "invalid JSON",
        ),
        (
            "DELETE /config",
            "DELETE",
            "/config",
            b"",
            501,
            "Unsupported method ('DELETE')",
        ),
        (
            "POST /config",
            "POST",
            "/config",
            b"{}",
            501,
            "Unsupported method ('POST')",
        ),
        (
            "PUT /patroni",
            "PUT",
            "/patroni",
            b"{}",
            501,
            "Unsupported method ('PUT')",
        ),
        (
            "PATCH /switchover",
            "PATCH",
            "/switchover",
            b"{}",
            501,
            "Unsupported method ('PATCH')",
        ),
        (
            "POST to an unknown path",
            "POST",
            "/nowhere",
            b"{}",
            501,
            "Unsupported method ('POST')",
        ),
        ("TRACE", "TRACE", "/", b"", 501, "Unsupported method ('TRACE')"),
        (
            "an invented method",
            "BREW",
            "/pot",
            b"",
            501,
            "Unsupported method ('BREW')",
        ),
        (
            "DELETE /switchover with none scheduled",
            "DELETE",
            "/switchover",
            b"",
            404,
            "no switchover is scheduled",
        ),
        ("DELETE /restart", "DELETE", "/restart", b"", 404, ""),
    ];
    let mut failures = Vec::new();
    for (what, method, path, body, code, text) in &cases {
        let (got, answer) = raw(port, &request(method, path, body), false);
        sent += 1;
        eprintln!(
            "REST {what}: {method} {path} -> {got} {}",
            answer.chars().take(120).collect::<String>()
        );
        if got != *code || !answer.contains(text) {
            failures.push(format!(
                "{what}: {method} {path}: expected {code} with {text:?}, got {got} {answer:?}"
            ));
        }
        still_fine(&c, node, &before, what);
    }

    // Framing problems the helper above cannot produce.
    let framing: Vec<(&str, Vec<u8>, bool, u16, &str)> = vec![
        (
            "PATCH without Content-Length",
            b"PATCH /config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            false,
            411,
            "Content-Length required",
        ),
        (
            "Content-Length that is no number",
            b"PATCH /config HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: abc\r\n\r\n{}".to_vec(),
            false,
            400,
            "",
        ),
        (
            "announced 1 GiB body (headers only)",
            b"PATCH /config HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1073741824\r\n\r\n".to_vec(),
            false,
            413,
            "request body over",
        ),
        (
            "body shorter than announced, then EOF",
            b"PATCH /config HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100\r\n\r\n{\"ttl\":".to_vec(),
            true,
            400,
            "cannot read the request body",
        ),
        (
            "garbage instead of HTTP",
            b"HELLO THERE\r\n\r\n".to_vec(),
            false,
            400,
            "",
        ),
        (
            "header of 500 kB",
            format!(
                "GET /patroni HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
                "y".repeat(500_000)
            )
            .into_bytes(),
            false,
            431,
            "",
        ),
    ];
    for (what, bytes, half_close, code, text) in &framing {
        let (got, answer) = raw(port, bytes, *half_close);
        sent += 1;
        eprintln!("REST {what}: -> {got} {}", answer.chars().take(120).collect::<String>());
        if got != *code || !answer.contains(text) {
            failures.push(format!("{what}: expected {code} with {text:?}, got {got} {answer:?}"));
        }
        still_fine(&c, node, &before, what);
    }

    // A client that announces a body and never sends it must not pin the connection.
    let started = Instant::now();
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stalled.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stalled
        .write_all(b"PATCH /config HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 50\r\n\r\n{\"ttl\"")
        .unwrap();
    // Meanwhile the node answers others.
    still_fine(&c, node, &before, "a stalled body (while it stalls)");
    let mut answer = String::new();
    let _ = stalled.read_to_string(&mut answer);
    sent += 1;
    eprintln!(
        "REST stalled body: -> {:?} after {:?}",
        answer.lines().next(),
        started.elapsed()
    );
    if !answer.starts_with("HTTP/1.1 408") || !answer.contains("timed out reading the request body") {
        failures.push(format!("stalled body: expected 408, got {answer:?}"));
    }
    still_fine(&c, node, &before, "a stalled body");

    // Unknown keys in the dynamic configuration are kept, as Patroni keeps them (other tools and
    // later versions may set them); removing one with null restores the configuration.
    let (code, answer) = raw(
        port,
        &request("PATCH", "/config", br#"{"ferroni_test_unknown": {"x": 1}}"#),
        false,
    );
    assert_eq!(code, 200, "{answer}");
    assert_eq!(c.load().config.unwrap().value["ferroni_test_unknown"]["x"], 1);
    let (code, answer) = raw(
        port,
        &request("PATCH", "/config", br#"{"ferroni_test_unknown": null}"#),
        false,
    );
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        c.load().config.unwrap().value,
        before.config.0,
        "null removes the unknown key again"
    );
    sent += 2;

    // Nothing was lost.
    assert_eq!(node.psql("SELECT x FROM kept").unwrap(), "42");
    assert!(ferroni_testkit::writable::accepts_writes(node.spec.pg_port));
    assert!(
        !node.log().contains("panicked"),
        "the daemon logged a panic:\n{}",
        tail(&node.log(), 60)
    );
    eprintln!("REST: {sent} bad requests sent; the node answered every one and kept running as the primary");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn ctl(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(CTL);
    common::isolate(&mut cmd, home.path());
    cmd.args(args).stdin(Stdio::null());
    cmd.output().expect("run ferronictl")
}

#[test]
fn ferronictl_refuses_bad_arguments_with_exit_2_and_the_error_first() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    std::fs::write(&broken, "scope: [unclosed\n").unwrap();
    let broken = broken.display().to_string();
    let dead = format!("etcd3://127.0.0.1:{}", free_port());
    // (what, arguments, text of the first stderr line, whether the error is ferronictl's own — one
    // line — or clap's usage error, which adds a usage hint below the first line)
    let cases: Vec<(&str, Vec<&str>, &str, bool)> = vec![
        (
            "unknown flag",
            vec!["--bogus", "list"],
            "error: unexpected argument '--bogus' found",
            false,
        ),
        (
            "unknown command",
            vec!["nosuchcmd"],
            "error: unrecognized subcommand 'nosuchcmd'",
            false,
        ),
        (
            "negative watch interval",
            vec!["list", "-w", "-1", "s"],
            "error: unexpected argument '-1' found",
            false,
        ),
        (
            "watch interval in words",
            vec!["list", "-w", "abc", "s"],
            "error: invalid value 'abc' for '--watch <SECONDS>'",
            false,
        ),
        (
            "unknown format",
            vec!["list", "-f", "xml", "s"],
            "error: invalid value 'xml' for '--format <FORMAT>'",
            false,
        ),
        (
            "unknown role",
            vec!["dsn", "-r", "nope", "s"],
            "error: invalid value 'nope' for '--role <ROLE>'",
            false,
        ),
        (
            "role and member together",
            vec!["dsn", "-r", "leader", "-m", "x", "s"],
            "error: the argument '--role <ROLE>' cannot be used with '--member <NAME>'",
            false,
        ),
        (
            "remove without a cluster",
            vec!["remove"],
            "error: the following required arguments were not provided",
            false,
        ),
        (
            "unknown DCS scheme",
            vec!["-d", "foo://x", "list", "s"],
            "Error: Unknown dcs scheme: foo",
            true,
        ),
        (
            "DCS port out of range",
            vec!["-d", "etcd3://127.0.0.1:99999", "list", "s"],
            r#"Error: invalid DCS URL "etcd3://127.0.0.1:99999": "99999" is not a port number"#,
            true,
        ),
        (
            "DCS port in words",
            vec!["-d", "etcd3://host:abc", "list", "s"],
            r#""abc" is not a port number"#,
            true,
        ),
        (
            "missing configuration file",
            vec!["-c", "/nonexistent.yml", "list"],
            "Error: Provided config file /nonexistent.yml not existing or no read rights",
            true,
        ),
        (
            "malformed configuration file",
            vec!["-c", &broken, "list"],
            "Error: ",
            true,
        ),
        (
            "no cluster name anywhere",
            vec!["-d", &dead, "list"],
            "Error: no cluster name: give CLUSTER_NAME",
            true,
        ),
    ];
    let mut failures = Vec::new();
    for (what, args, first, own) in &cases {
        let out = ctl(args);
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.trim_end().lines().collect();
        eprintln!(
            "ferronictl {what}: exit {:?}, {} stderr line(s): {}",
            out.status.code(),
            lines.len(),
            lines.first().unwrap_or(&"")
        );
        let one_line_ok = !own || lines.len() == 1;
        if out.status.code() != Some(2)
            || !lines
                .first()
                .is_some_and(|l| l.starts_with(first) || (*own && l.contains(first)))
            || !one_line_ok
            || !out.stdout.is_empty()
        {
            failures.push(format!(
                "{what}: exit {:?}, stdout {:?}, stderr {err:?}; expected exit 2 and {first:?} first{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                if *own { " on one line" } else { "" }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ferronictl_refuses_out_of_range_settings_against_a_live_cluster_and_writes_nothing() {
    let mut c = TestCluster::new("badctl");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let url = format!("etcd3://{}", c.etcd.host_port());
    let before = baseline(&c);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let malformed = write("malformed.yml", "ttl: [30\n");
    let list = write("list.yml", "- ttl\n- 30\n");
    let wrong = write("wrong.yml", "postgresql:\n  parameters: [1]\n");
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("ttl below the minimum", vec!["-s", "ttl=3"], "ttl"),
        ("retry_timeout zero", vec!["-s", "retry_timeout=0"], "retry_timeout"),
        ("negative loop_wait", vec!["-s", "loop_wait=-1"], "loop_wait"),
        (
            "timing rule broken",
            vec!["-s", "retry_timeout=9"],
            "must not exceed ttl",
        ),
        ("pause that is no boolean", vec!["-s", "pause=maybe"], "pause"),
        (
            "a PostgreSQL parameter without a value",
            vec!["-p", "work_mem"],
            "Invalid parameter setting postgresql.parameters.work_mem",
        ),
        (
            "--apply of a missing file",
            vec!["--apply", "/nonexistent.yml"],
            "/nonexistent.yml",
        ),
        ("--apply of malformed YAML", vec!["--apply", &malformed], ""),
        ("--apply of a list", vec!["--apply", &list], ""),
        (
            "--replace of a wrong type",
            vec!["--replace", &wrong],
            "postgresql.parameters",
        ),
    ];
    let mut failures = Vec::new();
    for (what, extra, expected) in &cases {
        let mut args = vec!["-d", url.as_str(), "edit-config", "badctl", "--force"];
        args.extend(extra.iter().copied());
        let out = ctl(&args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        eprintln!(
            "ferronictl edit-config {what}: exit {:?}: {}",
            out.status.code(),
            err.trim()
        );
        if out.status.code() != Some(2) || err.trim_end().lines().count() != 1 || !err.contains(expected) {
            failures.push(format!(
                "{what}: exit {:?}, expected 2 and one line with {expected:?}, got {err:?}",
                out.status.code()
            ));
        }
        let now = baseline(&c);
        assert_eq!(now.config, before.config, "ferronictl wrote the config after {what}");
    }
    // patronictl treats a zero or negative watch interval as "no watching": one listing, exit 0.
    for watch in [["-w", "0"], ["--watch=-5", ""]] {
        let mut args = vec!["-d", url.as_str(), "list", "badctl"];
        args.extend(watch.iter().filter(|s| !s.is_empty()).copied());
        let started = Instant::now();
        let out = ctl(&args);
        eprintln!(
            "ferronictl list {watch:?}: exit {:?} after {:?}",
            out.status.code(),
            started.elapsed()
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout)
                .matches("+ Cluster: badctl")
                .count(),
            1
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    still_fine(&c, &c.nodes[a], &before, "the ferronictl calls");
}
