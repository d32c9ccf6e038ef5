//! Showing the work (real etcd, real PostgreSQL 15): a basebackup of a few hundred MB reports rising
//! progress that ends at 100 % in `/patroni` and the member key; a failing custom method's stderr
//! reaches the log and `/patroni`; `/metrics` parses as Prometheus text with Patroni's names.

mod common;

use common::{TestCluster, secs};
use ferroni_testkit::node::tail;
use ferroni_testkit::wait::wait_until;
use serde_json::Value;
use std::time::Duration;

#[test]
fn basebackup_progress_rises_to_100_percent_in_patroni_and_the_member_key() {
    let mut c = TestCluster::new("progress");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    c.nodes[a]
        .psql("CREATE TABLE big AS SELECT g, repeat(md5(g::text), 6) AS pad FROM generate_series(1, 1200000) g")
        .unwrap();
    let size: u64 = c.nodes[a]
        .psql("SELECT pg_database_size('postgres')")
        .unwrap()
        .parse()
        .unwrap();
    assert!(size > 200 * 1024 * 1024, "database of {size} bytes");
    let mut spec = c.spec("b");
    // Slow enough to be watched several times a second.
    spec.extra_postgresql = "  basebackup:\n    max-rate: 64M\n".into();
    let b = c.start(spec);
    let node = &c.nodes[b];
    let mut seen: Vec<f64> = Vec::new();
    let mut in_member_key = false;
    let mut finished = None;
    let deadline = std::time::Instant::now() + secs(120);
    while std::time::Instant::now() < deadline {
        if let Ok((_, v)) = node.api_get("/patroni")
            && let Some(p) = v.get("progress")
        {
            if let Some(pct) = p["percent"].as_f64() {
                seen.push(pct);
            }
            if p["finished"] == true {
                finished = Some(p.clone());
                break;
            }
        }
        if !in_member_key {
            let view = c.load();
            in_member_key = view
                .member("b")
                .and_then(|m| m.data.extra.get("progress"))
                .is_some_and(|p| p["method"] == "basebackup");
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let finished = finished.unwrap_or_else(|| panic!("no finished progress; seen {seen:?}\n{}", tail(&node.log(), 30)));
    assert_eq!(finished["percent"], 100.0, "{finished}");
    assert_eq!(finished["method"], "basebackup");
    assert_eq!(finished["source"], "a");
    assert!(
        finished["bytes_total"].as_u64().unwrap_or(0) > 200 * 1024 * 1024,
        "{finished}"
    );
    assert!(seen.len() >= 3, "progress observed only {} times: {seen:?}", seen.len());
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress must rise: {seen:?}");
    assert!(
        seen.iter().any(|p| *p > 0.0 && *p < 100.0),
        "intermediate progress seen: {seen:?}"
    );
    assert!(in_member_key, "progress carried in the member key");
    wait_until("b streaming", secs(60), || {
        node.api_get("/patroni")
            .is_ok_and(|(_, v)| v["replication_state"] == "streaming")
    })
    .unwrap();
}

#[test]
fn failing_method_stderr_reaches_the_log_and_patroni() {
    let mut c = TestCluster::new("stderr");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let tools = ferroni_testkit::node::postgres_tempdir();
    let script = tools.path().join("broken.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'restoring...'\necho 'ERROR: [055]: unable to load info file' >&2\nexit 2\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut spec = c.spec("b");
    spec.extra_postgresql = format!(
        "  create_replica_methods: [broken]\n  broken:\n    command: {}\n",
        script.display()
    );
    let b = c.start(spec);
    let node = &c.nodes[b];
    wait_until("the failure in /patroni", secs(30), || {
        node.api_get("/patroni").is_ok_and(|(_, v)| {
            v["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("unable to load info file"))
        })
    })
    .unwrap_or_else(|e| panic!("{e}\n{:?}\n{}", node.api_get("/patroni"), tail(&node.log(), 30)));
    let log = node.log();
    assert!(
        log.contains("ERROR: [055]: unable to load info file"),
        "{}",
        tail(&log, 30)
    );
    assert!(log.contains("restoring..."), "stdout is logged too");
    let view = c.load();
    let key_error = view
        .member("b")
        .and_then(|m| m.data.extra.get("last_error").cloned())
        .unwrap_or(Value::Null);
    assert!(
        key_error
            .as_str()
            .is_some_and(|e| e.contains("unable to load info file")),
        "{key_error}"
    );
}

#[test]
fn metrics_parse_as_prometheus_text_with_patroni_names() {
    let mut c = TestCluster::new("metrics");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let url = c.nodes[a].api_url("/metrics");
    let (code, body) = ferroni_testkit::node::http_request("GET", &url, None).unwrap();
    assert_eq!(code, 200);
    let text = body.as_str().expect("metrics are text").to_string();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let value = |name: &str| {
        scrape.samples.iter().find(|s| s.metric == name).map(|s| match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
    };
    for name in [
        "patroni_version",
        "patroni_postgres_running",
        "patroni_primary",
        "patroni_xlog_location",
        "patroni_replica",
        "patroni_postgres_timeline",
        "patroni_dcs_last_seen",
        "patroni_is_paused",
        "patroni_postgres_state",
        "ferroni_ha_cycle_seconds",
        "ferroni_dcs_read_seconds",
        "ferroni_leader_changes_total",
    ] {
        assert!(value(name).is_some(), "{name} missing from\n{text}");
    }
    assert_eq!(value("patroni_primary"), Some(1.0));
    assert_eq!(value("patroni_postgres_running"), Some(1.0));
    assert_eq!(value("patroni_postgres_state"), Some(5.0), "running");
    let sample = scrape.samples.iter().find(|s| s.metric == "patroni_primary").unwrap();
    assert_eq!(sample.labels.get("scope"), Some("metrics"));
    assert_eq!(sample.labels.get("name"), Some("a"));
}
