//! The REST API over real sockets: an in-process server on 127.0.0.1:0 backed by the in-memory DCS,
//! driven by reqwest and by raw TCP (HAProxy's HTTP/1.0 checks without a Host header).

mod common;

use ferroni_api::{ApiState, NodeSnapshot, PgStatus, SnapshotHandle, Xlog, serve};
use ferroni_dcs::{Dcs, MemoryDcs, MemoryStore, NodeIdentity};
use ferroni_model::{HistoryLine, MemberData, Role, Status};
use reqwest::Method;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

struct Server {
    addr: SocketAddr,
    base: String,
    http: reqwest::Client,
    snapshots: SnapshotHandle,
    store: MemoryStore,
    dcs: Arc<MemoryDcs>,
    wake: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

fn identity(name: &str) -> NodeIdentity {
    NodeIdentity {
        name: name.into(),
        scope: "batman".into(),
        namespace: "/service/".into(),
        ttl: 30,
        retry_timeout: Duration::from_secs(10),
    }
}

async fn start(configure: impl FnOnce(ApiState, &MemoryStore) -> ApiState) -> Server {
    let store = MemoryStore::new();
    let dcs = Arc::new(store.node(identity("pg1")));
    let snapshots = SnapshotHandle::default();
    let wake = Arc::new(Notify::new());
    let state = configure(
        ApiState::new(snapshots.clone(), dcs.clone()).with_wake(wake.clone()),
        &store,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        snapshots,
        store,
        dcs,
        wake,
        stop: Some(stop),
        task,
    }
}

async fn plain() -> Server {
    start(|s, _| s).await
}

impl Server {
    async fn call(&self, method: Method, path: &str) -> (u16, String) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.call(Method::GET, path).await
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let (code, body) = self.get(path).await;
        (
            code,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body:?}")),
        )
    }

    async fn send(&self, method: Method, path: &str, body: &str) -> reqwest::Response {
        self.http
            .request(method, format!("{}{path}", self.base))
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn config(&self) -> Option<(i64, Value)> {
        self.dcs.load().await.unwrap().config.map(|c| (c.version, c.value))
    }

    async fn shutdown(mut self) {
        common::stop_server(self.stop.take().unwrap(), self.task).await;
    }
}

/// One raw request; the server closes the connection after answering (HTTP/1.0 or `close`).
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

fn primary() -> NodeSnapshot {
    NodeSnapshot {
        name: "pg1".into(),
        scope: "batman".into(),
        state: "running".into(),
        role: Role::Primary,
        is_leader: true,
        dcs_ok: true,
        cluster_unlocked: false,
        optime: 5000,
        last_cycle: Some(Instant::now()),
        postgres: Some(PgStatus {
            postmaster_start_time: Some("2024-05-01 10:00:00+00:00".into()),
            server_version: 150018,
            timeline: Some(1),
            xlog: Some(Xlog::Primary { location: 5000 }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn replica(replayed: u64) -> NodeSnapshot {
    NodeSnapshot {
        role: Role::Replica,
        is_leader: false,
        postgres: Some(PgStatus {
            server_version: 150018,
            timeline: Some(1),
            replication_state: Some("streaming".into()),
            xlog: Some(Xlog::Replica {
                received_location: Some(replayed),
                replayed_location: Some(replayed),
                replayed_timestamp: None,
                paused: false,
            }),
            ..Default::default()
        }),
        ..primary()
    }
}

#[tokio::test]
async fn health_checks_follow_the_published_snapshot() {
    let srv = plain().await;
    // Nothing published yet: the default snapshot is healthy nowhere.
    assert_eq!(srv.get("/primary").await.0, 503);
    assert_eq!(srv.get("/replica").await.0, 503);

    srv.snapshots.publish(primary());
    for path in [
        "/",
        "/primary",
        "/master",
        "/read-write",
        "/leader",
        "/read-only",
        "/health",
        "/primary?lag=0",
    ] {
        let (code, body) = srv.get_json(path).await;
        assert_eq!(code, 200, "GET {path}");
        assert_eq!(body["state"], "running");
        assert_eq!(body["role"], "primary");
        assert_eq!(body["patroni"]["name"], "pg1");
    }
    // 503 answers still carry the status JSON, also on unknown paths.
    for path in ["/replica", "/standby-leader", "/sync", "/nonsense"] {
        let (code, body) = srv.get_json(path).await;
        assert_eq!(code, 503, "GET {path}");
        assert_eq!(body["xlog"]["location"], 5000);
    }
    for method in [Method::HEAD, Method::OPTIONS] {
        assert_eq!(srv.call(method.clone(), "/primary").await, (200, String::new()));
        assert_eq!(srv.call(method.clone(), "/replica").await, (503, String::new()));
        assert_eq!(srv.call(method.clone(), "/whatever").await, (503, String::new()));
    }

    srv.snapshots.publish(replica(4000));
    assert_eq!(srv.get("/primary").await.0, 503);
    assert_eq!(srv.get("/replica").await.0, 200);
    assert_eq!(srv.get("/replica?lag=1000").await.0, 200);
    assert_eq!(srv.get("/replica?lag=999").await.0, 503);
    assert_eq!(srv.get("/async?lag=1kB").await.0, 200);
    assert_eq!(
        srv.call(Method::OPTIONS, "/replica?lag=1kB&replication_state=streaming")
            .await
            .0,
        200
    );
    assert_eq!(srv.call(Method::HEAD, "/read-only?tag_dc=eu").await.0, 503);
    srv.shutdown().await;
}

#[tokio::test]
async fn haproxy_http10_without_host() {
    let srv = plain().await;
    srv.snapshots.publish(primary());
    let resp = raw(srv.addr, "OPTIONS /primary HTTP/1.0\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp:?}");
    assert!(resp.ends_with("\r\n\r\n"), "no body expected: {resp:?}");
    let resp = raw(srv.addr, "OPTIONS /replica HTTP/1.0\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.0 503"), "{resp:?}");
    let resp = raw(srv.addr, "HEAD /primary HTTP/1.0\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp:?}");
    let resp = raw(srv.addr, "GET /primary HTTP/1.0\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp:?}");
    assert!(resp.contains("\"role\":\"primary\""), "{resp:?}");

    // After a demotion the same check fails.
    srv.snapshots.publish(replica(5000));
    let resp = raw(srv.addr, "OPTIONS /primary HTTP/1.0\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.0 503"), "{resp:?}");
    let resp = raw(srv.addr, "OPTIONS /replica HTTP/1.0\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp:?}");
    srv.shutdown().await;
}

#[tokio::test]
async fn patroni_metrics_liveness_readiness() {
    let srv = plain().await;
    let stopped = NodeSnapshot {
        name: "pg1".into(),
        state: "stopped".into(),
        role: Role::Replica,
        ..Default::default()
    };
    srv.snapshots.publish(stopped);
    let (code, body) = srv.get_json("/patroni").await;
    assert_eq!(code, 200, "/patroni is 200 whatever the state");
    assert_eq!(body["state"], "stopped");
    assert!(body.get("xlog").is_none());
    assert_eq!(srv.get("/patroni/anything").await.0, 200, "routing by first segment");
    // Patroni has no HEAD handler for /patroni: it falls into the generic health check.
    assert_eq!(srv.call(Method::HEAD, "/patroni").await.0, 503);

    srv.snapshots.publish(primary());
    let r = srv.http.get(format!("{}/metrics", srv.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains("patroni_primary{scope=\"batman\",name=\"pg1\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("patroni_postgres_server_version{scope=\"batman\",name=\"pg1\"} 150018\n"));

    assert_eq!(srv.get("/liveness").await, (200, String::new()));
    assert_eq!(srv.get("/readiness").await, (200, String::new()));
    let stale = Instant::now().checked_sub(Duration::from_secs(3600)).unwrap();
    srv.snapshots.publish(NodeSnapshot {
        last_cycle: Some(stale),
        ..primary()
    });
    assert_eq!(srv.get("/liveness").await.0, 503);
    srv.snapshots.publish(NodeSnapshot {
        last_cycle: Some(stale),
        pause: true,
        ..primary()
    });
    assert_eq!(srv.get("/liveness").await.0, 200);

    srv.snapshots.publish(replica(5000));
    assert_eq!(srv.get("/readiness").await.0, 200);
    srv.snapshots.publish(replica(1000));
    assert_eq!(srv.get("/readiness?lag=100").await.0, 503);
    assert_eq!(srv.get("/readiness?lag=4000").await.0, 200);
    srv.shutdown().await;
}

#[tokio::test]
async fn cluster_history_and_config_reads() {
    let srv = plain().await;
    assert_eq!(srv.get("/config").await.0, 502, "no config key yet");
    assert_eq!(srv.get_json("/history").await, (200, json!([])));
    assert_eq!(
        srv.get_json("/cluster").await,
        (200, json!({"members": [], "scope": "batman"}))
    );

    let dcs = &srv.dcs;
    assert!(
        dcs.write_config(&json!({"ttl": 30, "pause": true}), None)
            .await
            .unwrap()
    );
    assert!(dcs.acquire_leader().await.unwrap());
    dcs.touch_member(&MemberData {
        conn_url: "postgres://10.0.0.1:5432/postgres".into(),
        api_url: "http://10.0.0.1:8008/patroni".into(),
        state: "running".into(),
        role: "primary".into(),
        xlog_location: Some(5000),
        timeline: Some(1),
        ..Default::default()
    })
    .await
    .unwrap();
    let other = srv.store.node(identity("pg2"));
    other
        .touch_member(&MemberData {
            conn_url: "postgres://10.0.0.2:5432/postgres".into(),
            api_url: "http://10.0.0.2:8008/patroni".into(),
            state: "running".into(),
            role: "replica".into(),
            replication_state: Some("streaming".into()),
            receive_lsn: Some(4500),
            replay_lsn: Some(4000),
            xlog_location: Some(4000),
            ..Default::default()
        })
        .await
        .unwrap();
    dcs.write_status(&Status {
        optime: 5000,
        ..Default::default()
    })
    .await
    .unwrap();
    dcs.write_history(&[HistoryLine(
        1,
        4096,
        "no recovery target specified".into(),
        Some("2024-05-01T10:00:00+00:00".into()),
        Some("pg1".into()),
    )])
    .await
    .unwrap();

    assert_eq!(srv.get_json("/config").await, (200, json!({"ttl": 30, "pause": true})));
    assert_eq!(
        srv.get_json("/history").await,
        (
            200,
            json!([[
                1,
                4096,
                "no recovery target specified",
                "2024-05-01T10:00:00+00:00",
                "pg1"
            ]])
        )
    );
    let (code, c) = srv.get_json("/cluster").await;
    assert_eq!(code, 200);
    assert_eq!(c["scope"], "batman");
    assert_eq!(c["pause"], true);
    assert_eq!(c["members"][0]["name"], "pg1");
    assert_eq!(c["members"][0]["role"], "leader");
    assert_eq!(c["members"][0]["host"], "10.0.0.1");
    assert_eq!(c["members"][1]["role"], "replica");
    assert_eq!(c["members"][1]["state"], "streaming");
    assert_eq!(c["members"][1]["receive_lag"], 500);
    assert_eq!(c["members"][1]["replay_lsn"], "0/FA0");
    assert_eq!(c["members"][1]["lag"], 1000);

    srv.store.set_unavailable(true);
    for path in ["/cluster", "/history", "/config"] {
        assert_eq!(srv.get(path).await.0, 503, "{path} with the DCS down");
    }
    srv.store.set_unavailable(false);
    srv.shutdown().await;
}

#[tokio::test]
async fn patch_config_merges_with_cas_and_wakes_the_loop() {
    let srv = plain().await;
    let (code, _) = (
        srv.send(Method::PATCH, "/config", r#"{"ttl": 20}"#)
            .await
            .status()
            .as_u16(),
        (),
    );
    assert_eq!(code, 503, "no config in the DCS yet");

    let initial = json!({"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"work_mem": "4MB", "max_connections": 100}},
                         "standby_cluster": {"host": "remote"}});
    srv.dcs.write_config(&initial, None).await.unwrap();
    let (v0, _) = srv.config().await.unwrap();

    let r = srv
        .send(
            Method::PATCH,
            "/config",
            r#"{"ttl": 20, "standby_cluster": null, "postgresql": {"parameters": {"work_mem": null, "max_connections": 200}}, "slots": {"s1": {"type": "physical", "database": null}}}"#,
        )
        .await;
    assert_eq!(r.status(), 200);
    let want = json!({"ttl": 20, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 200}},
                      "slots": {"s1": {"type": "physical"}}});
    assert_eq!(r.json::<Value>().await.unwrap(), want);
    let (v1, stored) = srv.config().await.unwrap();
    assert_eq!(stored, want);
    assert!(v1 > v0);
    tokio::time::timeout(Duration::from_secs(1), srv.wake.notified())
        .await
        .expect("HA loop woken");

    // A patch that changes nothing writes nothing (same version) but still answers 200.
    let r = srv.send(Method::PATCH, "/config", r#"{"ttl": 20}"#).await;
    assert_eq!(r.status(), 200);
    assert_eq!(srv.config().await.unwrap().0, v1);

    // Malformed requests.
    for (body, code) in [("{", 400), ("[1,2]", 400), ("{}", 400), ("\"x\"", 400), ("null", 400)] {
        assert_eq!(
            srv.send(Method::PATCH, "/config", body).await.status().as_u16(),
            code,
            "body {body:?}"
        );
    }
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(1 << 20));
    assert_eq!(srv.send(Method::PATCH, "/config", &big).await.status(), 413);
    let resp = raw(
        srv.addr,
        "PATCH /config HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 411"), "{resp:?}");
    let resp = raw(
        srv.addr,
        "PATCH /config HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5000000\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp:?}");
    assert_eq!(srv.config().await.unwrap().1, want, "nothing written by bad requests");

    srv.store.set_unavailable(true);
    assert_eq!(srv.send(Method::PATCH, "/config", r#"{"ttl": 25}"#).await.status(), 503);
    srv.store.set_unavailable(false);
    srv.shutdown().await;
}

#[tokio::test]
async fn patch_config_validation_and_conflict() {
    // The validator doubles as a hook between the read and the CAS write: when asked to, it lets
    // "another client" change the config first, so the write must lose with 409.
    let race = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let race2 = race.clone();
    let srv = start(move |s, store| {
        let store = store.clone();
        s.with_validator(Arc::new(move |cfg: &Value| {
            if race2.load(std::sync::atomic::Ordering::SeqCst) {
                store.put_raw("/service/batman/config", r#"{"ttl":99}"#);
            }
            match cfg.get("ttl").and_then(Value::as_u64) {
                Some(t) if t < 20 => Err(format!("ttl {t} is below the minimum of 20")),
                _ => Ok(()),
            }
        }))
    })
    .await;
    srv.dcs.write_config(&json!({"ttl": 30}), None).await.unwrap();

    let r = srv.send(Method::PATCH, "/config", r#"{"ttl": 5}"#).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.text().await.unwrap(), "ttl 5 is below the minimum of 20");
    assert_eq!(srv.config().await.unwrap().1, json!({"ttl": 30}));

    race.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = srv.send(Method::PATCH, "/config", r#"{"ttl": 40}"#).await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        srv.config().await.unwrap().1,
        json!({"ttl": 99}),
        "the other writer's value survives"
    );
    race.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(srv.send(Method::PATCH, "/config", r#"{"ttl": 40}"#).await.status(), 200);
    assert_eq!(srv.config().await.unwrap().1, json!({"ttl": 40}));

    // PUT is validated too.
    let r = srv.send(Method::PUT, "/config", r#"{"ttl": 1}"#).await;
    assert_eq!(r.status(), 400);
    assert_eq!(srv.config().await.unwrap().1, json!({"ttl": 40}));
    srv.shutdown().await;
}

#[tokio::test]
async fn put_config_replaces() {
    let srv = plain().await;
    // PUT works even without an existing config.
    let r = srv
        .send(Method::PUT, "/config", r#"{"ttl": 30, "loop_wait": 10}"#)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"ttl": 30, "loop_wait": 10}));
    tokio::time::timeout(Duration::from_secs(1), srv.wake.notified())
        .await
        .expect("HA loop woken");
    let (v1, stored) = srv.config().await.unwrap();
    assert_eq!(stored, json!({"ttl": 30, "loop_wait": 10}));

    // Same content: no write.
    assert_eq!(
        srv.send(Method::PUT, "/config", r#"{"loop_wait": 10, "ttl": 30}"#)
            .await
            .status(),
        200
    );
    assert_eq!(srv.config().await.unwrap().0, v1);

    // Full replace drops keys that are not sent.
    assert_eq!(srv.send(Method::PUT, "/config", r#"{"ttl": 40}"#).await.status(), 200);
    assert_eq!(srv.config().await.unwrap().1, json!({"ttl": 40}));

    assert_eq!(srv.send(Method::PUT, "/config", "not json").await.status(), 400);
    srv.store.set_unavailable(true);
    assert_eq!(srv.send(Method::PUT, "/config", r#"{"ttl": 50}"#).await.status(), 502);
    srv.store.set_unavailable(false);
    srv.shutdown().await;
}

#[tokio::test]
async fn basic_auth_guards_unsafe_methods_only() {
    let srv = start(|s, _| s.with_basic_auth("admin", "s3cret")).await;
    srv.dcs.write_config(&json!({"ttl": 30}), None).await.unwrap();
    srv.snapshots.publish(primary());

    let url = format!("{}/config", srv.base);
    let r = srv.http.patch(&url).body(r#"{"ttl": 35}"#).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"Patroni\"");
    assert_eq!(r.text().await.unwrap(), "no auth header received");
    let r = srv
        .http
        .patch(&url)
        .basic_auth("admin", Some("wrong"))
        .body(r#"{"ttl": 35}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), "not authenticated");
    let r = srv.http.put(&url).body(r#"{"ttl": 35}"#).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(srv.config().await.unwrap().1, json!({"ttl": 30}));

    let r = srv
        .http
        .patch(&url)
        .basic_auth("admin", Some("s3cret"))
        .body(r#"{"ttl": 35}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(srv.config().await.unwrap().1, json!({"ttl": 35}));

    // Reads and health checks stay open.
    assert_eq!(srv.get("/config").await.0, 200);
    assert_eq!(srv.get("/primary").await.0, 200);
    assert_eq!(srv.call(Method::OPTIONS, "/primary").await.0, 200);

    // Unsafe methods are checked before routing; authenticated but unknown → 501.
    let unknown = format!("{}/nonexistent", srv.base);
    assert_eq!(srv.http.post(&unknown).body("{}").send().await.unwrap().status(), 401);
    let r = srv
        .http
        .post(&unknown)
        .basic_auth("admin", Some("s3cret"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    // The actions are guarded the same way; authenticated, an empty body is a 400.
    let sw = format!("{}/switchover", srv.base);
    assert_eq!(srv.http.post(&sw).body("{}").send().await.unwrap().status(), 401);
    assert_eq!(srv.http.delete(&sw).send().await.unwrap().status(), 401);
    let restart = format!("{}/restart", srv.base);
    assert_eq!(srv.http.post(&restart).body("{}").send().await.unwrap().status(), 401);
    let r = srv
        .http
        .post(&sw)
        .basic_auth("admin", Some("s3cret"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    srv.shutdown().await;
}

#[tokio::test]
async fn unsupported_methods() {
    let srv = plain().await;
    assert_eq!(srv.send(Method::PATCH, "/cluster", "{}").await.status(), 501);
    assert_eq!(srv.send(Method::DELETE, "/config", "").await.status(), 501);
    assert_eq!(srv.send(Method::POST, "/config", "{}").await.status(), 501);
    assert_eq!(srv.send(Method::PUT, "/switchover", "{}").await.status(), 501);
    assert_eq!(srv.call(Method::TRACE, "/").await.0, 501);
    srv.shutdown().await;
}

/// Reads one HTTP/1.1 response with a Content-Length body from a keep-alive connection; returns
/// the status code.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> u16 {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap().to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let code = head[9..12].parse().unwrap();
                buf.drain(..end + 4 + len);
                return code;
            }
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Throughput of `GET /primary` over keep-alive connections and of HAProxy-style checks. Not a pass/fail test (the client
/// shares the CPU with the server); run it with
/// `cargo test -p ferroni-api --release --test http -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_get_primary() {
    const CONNECTIONS: usize = 8;
    const REQUESTS: usize = 5_000;
    let srv = plain().await;
    srv.snapshots.publish(primary());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut buf = Vec::new();
            for _ in 0..REQUESTS {
                s.write_all(b"GET /primary HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
                assert_eq!(read_response(&mut s, &mut buf).await, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let total = CONNECTIONS * REQUESTS;
    println!(
        "GET /primary, keep-alive: {total} requests in {secs:.2} s = {:.0} req/s",
        total as f64 / secs
    );

    // HAProxy's way: one HTTP/1.0 connection per check.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            for _ in 0..REQUESTS / 5 {
                assert!(
                    raw(addr, "OPTIONS /primary HTTP/1.0\r\n\r\n")
                        .await
                        .starts_with("HTTP/1.0 200")
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let total = CONNECTIONS * REQUESTS / 5;
    println!(
        "OPTIONS /primary, HTTP/1.0: {total} connections in {secs:.2} s = {:.0} req/s",
        total as f64 / secs
    );
    srv.shutdown().await;
}
