//! The action endpoints over real sockets: `/switchover`, `/failover` (against the in-memory DCS,
//! with a background task playing the HA loops), and `/restart`, `/reload`, `/reinitialize`
//! (against a fake `NodeControl`).

mod common;

use async_trait::async_trait;
use ferroni_api::{ApiError, ApiState, NodeControl, NodeSnapshot, PgStatus, RestartRequest, SnapshotHandle, serve};
use ferroni_dcs::{Dcs, DcsError, MemoryDcs, MemoryStore, NodeIdentity};
use ferroni_model::{ClusterView, Failover, HistoryLine, MemberData, Role, Status};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// Harness

fn identity(name: &str) -> NodeIdentity {
    NodeIdentity {
        name: name.into(),
        scope: "batman".into(),
        namespace: "/service/".into(),
        ttl: 30,
        retry_timeout: Duration::from_secs(10),
    }
}

/// A `Dcs` that delegates to a `MemoryDcs` but can lose compare-and-swap races on the failover
/// key on demand: before the write or delete, it changes the key behind the caller's back.
struct RacyDcs {
    inner: MemoryDcs,
    race_failover: AtomicBool,
}

impl RacyDcs {
    async fn interfere(&self) {
        if self.race_failover.swap(false, Ordering::SeqCst) {
            let other = Failover {
                leader: Some("pg1".into()),
                member: Some("pg3".into()),
                scheduled_at: Some("2099-01-01T00:00:00+00:00".into()),
            };
            assert!(
                self.inner.write_failover(&other, None).await.unwrap() || {
                    let v = self.inner.load().await.unwrap().failover.unwrap().version;
                    self.inner.write_failover(&other, Some(v)).await.unwrap()
                }
            );
        }
    }
}

#[async_trait]
impl Dcs for RacyDcs {
    fn identity(&self) -> &NodeIdentity {
        self.inner.identity()
    }
    async fn load(&self) -> Result<ClusterView, DcsError> {
        self.inner.load().await
    }
    async fn attempt_initialize(&self) -> Result<bool, DcsError> {
        self.inner.attempt_initialize().await
    }
    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        self.inner.set_initialize(sysid).await
    }
    async fn cancel_initialize(&self) -> Result<(), DcsError> {
        self.inner.cancel_initialize().await
    }
    async fn acquire_leader(&self) -> Result<bool, DcsError> {
        self.inner.acquire_leader().await
    }
    async fn update_leader(&self) -> Result<bool, DcsError> {
        self.inner.update_leader().await
    }
    async fn release_leader(&self) -> Result<(), DcsError> {
        self.inner.release_leader().await
    }
    async fn touch_member(&self, data: &MemberData) -> Result<(), DcsError> {
        self.inner.touch_member(data).await
    }
    async fn shutdown(&self) -> Result<(), DcsError> {
        self.inner.shutdown().await
    }
    async fn write_config(&self, value: &Value, version: Option<i64>) -> Result<bool, DcsError> {
        self.inner.write_config(value, version).await
    }
    async fn replace_config(&self, value: &Value) -> Result<(), DcsError> {
        self.inner.replace_config(value).await
    }
    async fn write_status(&self, status: &Status) -> Result<(), DcsError> {
        self.inner.write_status(status).await
    }
    async fn write_history(&self, history: &[HistoryLine]) -> Result<(), DcsError> {
        self.inner.write_history(history).await
    }
    async fn write_failover(&self, failover: &Failover, version: Option<i64>) -> Result<bool, DcsError> {
        self.interfere().await;
        self.inner.write_failover(failover, version).await
    }
    async fn delete_failover(&self, version: Option<i64>) -> Result<bool, DcsError> {
        self.interfere().await;
        self.inner.delete_failover(version).await
    }
    async fn watch_leader(&self, timeout: Duration) -> Result<(), DcsError> {
        self.inner.watch_leader(timeout).await
    }
    async fn watch_roster(&self, timeout: Duration) -> Result<(), DcsError> {
        self.inner.watch_roster(timeout).await
    }
    async fn set_ttl(&self, ttl: u32) {
        self.inner.set_ttl(ttl).await
    }
    async fn delete_cluster(&self) -> Result<(), DcsError> {
        self.inner.delete_cluster().await
    }
}

/// Records every call and answers with `next_error` once if set.
#[derive(Default)]
struct FakeControl {
    calls: Mutex<Vec<String>>,
    restarts: Mutex<Vec<RestartRequest>>,
    next_error: Mutex<Option<ApiError>>,
    reply: Mutex<String>,
}

impl FakeControl {
    fn fail_next(&self, status: u16, message: &str) {
        *self.next_error.lock().unwrap() = Some(ApiError::new(status, message));
    }

    fn answer(&self, call: String) -> Result<String, ApiError> {
        self.calls.lock().unwrap().push(call);
        match self.next_error.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(self.reply.lock().unwrap().clone()),
        }
    }

    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

#[async_trait]
impl NodeControl for FakeControl {
    async fn restart(&self, req: RestartRequest) -> Result<String, ApiError> {
        self.restarts.lock().unwrap().push(req);
        self.answer("restart".into())
    }
    async fn reload(&self) -> Result<String, ApiError> {
        self.answer("reload".into())
    }
    async fn reinitialize(&self, force: bool, from_leader: bool) -> Result<String, ApiError> {
        self.answer(format!("reinitialize force={force} from_leader={from_leader}"))
    }
}

struct Server {
    addr: SocketAddr,
    base: String,
    http: reqwest::Client,
    snapshots: SnapshotHandle,
    store: MemoryStore,
    dcs: Arc<RacyDcs>,
    wake: Arc<Notify>,
    control: Arc<FakeControl>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(configure: impl FnOnce(ApiState) -> ApiState) -> Server {
    let store = MemoryStore::new();
    let dcs = Arc::new(RacyDcs {
        inner: store.node(identity("pg1")),
        race_failover: AtomicBool::new(false),
    });
    let snapshots = SnapshotHandle::default();
    let wake = Arc::new(Notify::new());
    let state = configure(
        ApiState::new(snapshots.clone(), dcs.clone())
            .with_wake(wake.clone())
            .with_failover_poll(Duration::from_millis(10), Some(Duration::from_secs(5))),
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
        control: Arc::new(FakeControl::default()),
        stop: Some(stop),
        task,
    }
}

/// A server whose API uses `control` as its `NodeControl`.
async fn with_control() -> Server {
    let control = Arc::new(FakeControl::default());
    let c = control.clone();
    let mut srv = start(move |s| s.with_control(c)).await;
    srv.control = control;
    srv
}

impl Server {
    async fn post(&self, path: &str, body: &str) -> (u16, String) {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, String) {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    async fn request(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> (u16, String) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// A request without Content-Length (and without body), over raw TCP.
    async fn post_without_length(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        let req = format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let code = text[9..12].parse().unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (code, body)
    }

    fn node(&self, name: &str) -> MemoryDcs {
        self.store.node(identity(name))
    }

    async fn failover_key(&self) -> Option<Value> {
        self.store
            .dump()
            .get("/service/batman/failover")
            .map(|raw| serde_json::from_str(raw).unwrap())
    }

    async fn shutdown(mut self) {
        common::stop_server(self.stop.take().unwrap(), self.task).await;
    }
}

fn member_data(state: &str, role: &str, tags: Value) -> MemberData {
    MemberData {
        conn_url: "postgres://127.0.0.1:5432/postgres".into(),
        api_url: "http://127.0.0.1:8008/patroni".into(),
        state: state.into(),
        role: role.into(),
        version: "0.1.0".into(),
        tags: tags.as_object().cloned().unwrap_or_default(),
        ..Default::default()
    }
}

/// pg1 leads; pg2 and pg3 are running replicas, pg4 is stopped, pg5 is tagged `nofailover`.
/// Returns the member nodes so their leases (and member keys) stay alive.
async fn cluster(srv: &Server, config: Value) -> Vec<MemoryDcs> {
    srv.dcs.write_config(&config, None).await.unwrap();
    assert!(srv.dcs.acquire_leader().await.unwrap());
    srv.dcs
        .touch_member(&member_data("running", "primary", json!({})))
        .await
        .unwrap();
    let mut nodes = Vec::new();
    for (name, state, tags) in [
        ("pg2", "running", json!({})),
        ("pg3", "running", json!({})),
        ("pg4", "stopped", json!({})),
        ("pg5", "running", json!({"nofailover": true})),
    ] {
        let node = srv.node(name);
        node.touch_member(&member_data(state, "replica", tags)).await.unwrap();
        nodes.push(node);
    }
    nodes
}

#[derive(Clone, Copy)]
enum Daemon {
    /// The named member (or the requested candidate) takes the leader key, then the key is cleared.
    Promote(Option<&'static str>),
    /// The acting node clears the failover key without anybody taking over.
    GiveUp,
}

/// Plays the HA loops: waits for a non-empty failover key, then acts. Resolves to the key's value.
fn daemon(srv: &Server, mode: Daemon) -> JoinHandle<Value> {
    let store = srv.store.clone();
    tokio::spawn(async move {
        let observer = store.node(identity("observer"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            assert!(tokio::time::Instant::now() < deadline, "no failover key appeared");
            let view = observer.load().await.unwrap();
            if let Some(f) = view.failover.filter(|f| !f.value.is_empty()) {
                let seen = serde_json::to_value(&f.value).unwrap();
                if let Daemon::Promote(winner) = mode {
                    let winner = winner.or(f.value.member.as_deref()).unwrap_or("pg3").to_string();
                    if let Some(old) = view.leader.as_ref() {
                        store.node(identity(&old.name)).release_leader().await.unwrap();
                    }
                    assert!(store.node(identity(&winner)).acquire_leader().await.unwrap());
                }
                assert!(observer.delete_failover(Some(f.version)).await.unwrap());
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

async fn leader(srv: &Server) -> Option<String> {
    srv.dcs.load().await.unwrap().leader.map(|l| l.name)
}

fn in_an_hour() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    // Civil date from days since the epoch (Howard Hinnant's civil_from_days).
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------------
// POST /switchover, POST /failover

#[tokio::test]
async fn switchover_to_a_candidate_waits_for_the_new_leader() {
    let srv = start(|s| s).await;
    let _nodes = cluster(&srv, json!({"ttl": 30, "loop_wait": 10})).await;
    let acting = daemon(&srv, Daemon::Promote(None));
    let (code, body) = srv
        .post("/switchover", r#"{"leader": "pg1", "candidate": "pg2"}"#)
        .await;
    assert_eq!((code, body.as_str()), (200, r#"Successfully switched over to "pg2""#));
    assert_eq!(acting.await.unwrap(), json!({"leader": "pg1", "member": "pg2"}));
    assert_eq!(leader(&srv).await.as_deref(), Some("pg2"));
    // The HA loop was woken up to act at once.
    tokio::time::timeout(Duration::from_secs(1), srv.wake.notified())
        .await
        .expect("wake notified");
    srv.shutdown().await;
}

#[tokio::test]
async fn switchover_without_candidate_and_to_someone_else() {
    let srv = start(|s| s).await;
    let _nodes = cluster(&srv, json!({})).await;
    let acting = daemon(&srv, Daemon::Promote(Some("pg3")));
    let (code, body) = srv.post("/switchover", r#"{"leader": "pg1"}"#).await;
    assert_eq!((code, body.as_str()), (200, r#"Successfully switched over to "pg3""#));
    assert_eq!(acting.await.unwrap(), json!({"leader": "pg1"}));

    // pg3 leads now; a switchover to pg2 that ends with pg1 in charge says so.
    let acting = daemon(&srv, Daemon::Promote(Some("pg1")));
    let (code, body) = srv
        .post("/switchover", r#"{"leader": "pg3", "candidate": "pg2"}"#)
        .await;
    assert_eq!(
        (code, body.as_str()),
        (200, r#"Switched over to "pg1" instead of "pg2""#)
    );
    acting.await.unwrap();
    srv.shutdown().await;
}

#[tokio::test]
async fn failover_to_a_candidate() {
    let srv = start(|s| s).await;
    let _nodes = cluster(&srv, json!({})).await;
    // The leader is gone: a manual failover names only the candidate.
    srv.dcs.release_leader().await.unwrap();
    let acting = daemon(&srv, Daemon::Promote(None));
    let (code, body) = srv.post("/failover", r#"{"candidate": "pg2"}"#).await;
    assert_eq!((code, body.as_str()), (200, r#"Successfully failed over to "pg2""#));
    assert_eq!(acting.await.unwrap(), json!({"member": "pg2"}));

    // With a leader given, a failover is a switchover (Patroni's texts say so, too).
    let acting = daemon(&srv, Daemon::Promote(None));
    let (code, body) = srv.post("/failover", r#"{"leader": "pg2", "candidate": "pg3"}"#).await;
    assert_eq!((code, body.as_str()), (200, r#"Successfully switched over to "pg3""#));
    assert_eq!(acting.await.unwrap(), json!({"leader": "pg2", "member": "pg3"}));
    srv.shutdown().await;
}

#[tokio::test]
async fn switchover_failed_and_status_unknown() {
    let srv = start(|s| s.with_failover_poll(Duration::from_millis(10), Some(Duration::from_millis(400)))).await;
    let _nodes = cluster(&srv, json!({})).await;
    let acting = daemon(&srv, Daemon::GiveUp);
    let (code, body) = srv
        .post("/switchover", r#"{"leader": "pg1", "candidate": "pg2"}"#)
        .await;
    assert_eq!((code, body.as_str()), (503, "Switchover failed"));
    acting.await.unwrap();
    assert_eq!(leader(&srv).await.as_deref(), Some("pg1"));

    // Nobody acts on the key: the outcome is unknown when the poll times out; the key stays.
    let started = std::time::Instant::now();
    let (code, body) = srv
        .post("/switchover", r#"{"leader": "pg1", "candidate": "pg2"}"#)
        .await;
    assert_eq!((code, body.as_str()), (503, "Switchover status unknown"));
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        srv.failover_key().await,
        Some(json!({"leader": "pg1", "member": "pg2"}))
    );

    // A failover without a leader fails once the key is cleared and still nobody leads.
    srv.dcs.release_leader().await.unwrap();
    srv.dcs.delete_failover(None).await.unwrap();
    let acting = daemon(&srv, Daemon::GiveUp);
    let (code, body) = srv.post("/failover", r#"{"candidate": "pg2"}"#).await;
    assert_eq!((code, body.as_str()), (503, "Failover failed"));
    acting.await.unwrap();
    srv.shutdown().await;
}

#[tokio::test]
async fn switchover_validation() {
    let srv = start(|s| s).await;
    let _nodes = cluster(&srv, json!({})).await;
    let cases: &[(&str, &str, u16, &str)] = &[
        (
            "/switchover",
            r#"{"candidate": "pg2"}"#,
            400,
            "Switchover could be performed only from a specific leader",
        ),
        (
            "/switchover",
            r#"{"leader": null, "candidate": "pg2"}"#,
            400,
            "Switchover could be performed only from a specific leader",
        ),
        (
            "/failover",
            r#"{"leader": "pg1"}"#,
            400,
            "Failover could be performed only to a specific candidate",
        ),
        (
            "/failover",
            r#"{"candidate": "pg2", "scheduled_at": "2099-01-01T00:00:00+00:00"}"#,
            400,
            "Failover can't be scheduled",
        ),
        (
            "/switchover",
            r#"{"leader": "pg1", "candidate": "pg1"}"#,
            400,
            "Switchover target and source are the same",
        ),
        (
            "/failover",
            r#"{"leader": "pg2", "candidate": "pg2"}"#,
            400,
            "Switchover target and source are the same",
        ),
        ("/switchover", r#"{"leader": 1}"#, 400, "leader should be a string"),
        (
            "/switchover",
            r#"{"leader": "pg1", "candidate": ["pg2"]}"#,
            400,
            "candidate should be a string",
        ),
        (
            "/switchover",
            r#"{"leader": "pg2", "candidate": "pg3"}"#,
            412,
            "leader name does not match",
        ),
        (
            "/switchover",
            r#"{"leader": "pg1", "candidate": "pgX"}"#,
            412,
            "candidate does not exists",
        ),
        (
            "/switchover",
            r#"{"leader": "pg1", "candidate": "pg4"}"#,
            412,
            "switchover is not possible: no good candidates have been found",
        ),
        (
            "/switchover",
            r#"{"leader": "pg1", "candidate": "pg5"}"#,
            412,
            "switchover is not possible: no good candidates have been found",
        ),
        (
            "/failover",
            r#"{"candidate": "pg4"}"#,
            412,
            "failover is not possible: no good candidates have been found",
        ),
        ("/failover", r#"{"candidate": "pgX"}"#, 412, "candidate does not exists"),
        (
            "/switchover",
            r#"{"leader": "pg1", "candidate": "pg2", "scheduled_at": "2099-01-01T00:00:00"}"#,
            400,
            "Timezone information is mandatory for the scheduled switchover",
        ),
        (
            "/switchover",
            r#"{"leader": "pg1", "scheduled_at": "next tuesday"}"#,
            422,
            "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601",
        ),
        (
            "/switchover",
            r#"{"leader": "pg1", "scheduled_at": 1234}"#,
            422,
            "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601",
        ),
        (
            "/switchover",
            r#"{"leader": "pg1", "scheduled_at": "2020-01-01T00:00:00+00:00"}"#,
            422,
            "Cannot schedule switchover in the past",
        ),
        ("/switchover", "{}", 400, "the body must be a non-empty JSON object"),
        ("/switchover", "[1]", 400, "the body must be a non-empty JSON object"),
    ];
    for (path, body, code, text) in cases {
        assert_eq!(
            srv.post(path, body).await,
            (*code, text.to_string()),
            "POST {path} {body}"
        );
    }
    let (code, body) = srv.post("/switchover", "{not json").await;
    assert_eq!(code, 400);
    assert!(body.starts_with("invalid JSON"), "{body}");
    assert_eq!(srv.post_without_length("/switchover").await.0, 411);
    assert_eq!(srv.post_without_length("/failover").await.0, 411);
    let huge = format!(r#"{{"leader": "{}"}}"#, "x".repeat(1 << 20));
    assert_eq!(srv.post("/switchover", &huge).await.0, 413);
    // Nothing was written by any of these.
    assert_eq!(srv.failover_key().await, None);
    srv.shutdown().await;
}

#[tokio::test]
async fn switchover_while_paused_needs_a_candidate_and_cannot_be_scheduled() {
    let srv = start(|s| s.with_failover_poll(Duration::from_millis(10), Some(Duration::from_millis(100)))).await;
    let _nodes = cluster(&srv, json!({"pause": true})).await;
    assert_eq!(
        srv.post("/switchover", r#"{"leader": "pg1"}"#).await,
        (
            400,
            "Switchover is possible only to a specific candidate in a paused state".into()
        )
    );
    let at = in_an_hour();
    assert_eq!(
        srv.post(
            "/switchover",
            &format!(r#"{{"leader": "pg1", "candidate": "pg2", "scheduled_at": "{at}"}}"#)
        )
        .await,
        (400, "Can't schedule switchover in the paused state".into())
    );
    // With a candidate it is accepted (nobody acts here, hence unknown).
    assert_eq!(
        srv.post("/switchover", r#"{"leader": "pg1", "candidate": "pg2"}"#)
            .await,
        (503, "Switchover status unknown".into())
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn synchronous_mode_switchover_needs_a_sync_standby() {
    let srv = start(|s| s).await;
    let _nodes = cluster(&srv, json!({"synchronous_mode": true})).await;
    assert_eq!(
        srv.post("/switchover", r#"{"leader": "pg1"}"#).await,
        (412, "switchover is not possible: can not find sync_standby".into())
    );
    assert_eq!(
        srv.post("/switchover", r#"{"leader": "pg1", "candidate": "pg2"}"#)
            .await,
        (412, "candidate name does not match with sync_standby".into())
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn scheduled_switchover_is_written_and_can_be_deleted() {
    let srv = start(|s| s).await;
    let _nodes = cluster(&srv, json!({})).await;
    assert_eq!(
        srv.delete("/switchover").await,
        (404, "no switchover is scheduled".into())
    );

    let at = in_an_hour();
    let (code, body) = srv
        .post(
            "/switchover",
            &format!(r#"{{"leader": "pg1", "candidate": "pg2", "scheduled_at": "{at}"}}"#),
        )
        .await;
    assert_eq!((code, body.as_str()), (202, "Switchover scheduled"));
    // Stored as Python's isoformat(), the way Patroni writes it.
    let want_at = at.replace('Z', "+00:00");
    assert_eq!(
        srv.failover_key().await,
        Some(json!({"leader": "pg1", "member": "pg2", "scheduled_at": want_at}))
    );
    let (_, cluster_json) = srv.request(reqwest::Method::GET, "/cluster", None).await;
    let cluster_json: Value = serde_json::from_str(&cluster_json).unwrap();
    assert_eq!(
        cluster_json["scheduled_switchover"],
        json!({"at": want_at, "from": "pg1", "to": "pg2"})
    );
    assert_eq!(leader(&srv).await.as_deref(), Some("pg1"));

    // Without a candidate, and with an offset: rendered the same way.
    let (code, _) = srv
        .post(
            "/switchover",
            r#"{"leader": "pg1", "scheduled_at": "2099-12-31 23:59:59.5+0530"}"#,
        )
        .await;
    assert_eq!(code, 202);
    assert_eq!(
        srv.failover_key().await,
        Some(json!({"leader": "pg1", "scheduled_at": "2099-12-31T23:59:59.500000+05:30"}))
    );

    assert_eq!(
        srv.delete("/switchover").await,
        (200, "scheduled switchover deleted".into())
    );
    assert_eq!(srv.failover_key().await, None);
    assert_eq!(
        srv.delete("/switchover").await,
        (404, "no switchover is scheduled".into())
    );

    // An immediate request in flight is not a scheduled switchover.
    srv.dcs
        .write_failover(
            &Failover {
                leader: Some("pg1".into()),
                member: Some("pg2".into()),
                scheduled_at: None,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        srv.delete("/switchover").await,
        (404, "no switchover is scheduled".into())
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn lost_races_on_the_failover_key() {
    let srv = start(|s| s).await;
    let _nodes = cluster(&srv, json!({})).await;
    let at = in_an_hour();
    let schedule = format!(r#"{{"leader": "pg1", "candidate": "pg2", "scheduled_at": "{at}"}}"#);
    assert_eq!(srv.post("/switchover", &schedule).await.0, 202);

    // Someone rewrites the key between our read and our delete: 409, and their value survives.
    srv.dcs.race_failover.store(true, Ordering::SeqCst);
    let (code, _) = srv.delete("/switchover").await;
    assert_eq!(code, 409);
    assert_eq!(srv.failover_key().await.unwrap()["member"], "pg3");

    // Someone writes the key between our read and our write: 503, as Patroni's failed write.
    srv.dcs.race_failover.store(true, Ordering::SeqCst);
    assert_eq!(
        srv.post("/switchover", &schedule).await,
        (503, "failed to write failover key into DCS".into())
    );
    assert_eq!(srv.failover_key().await.unwrap()["member"], "pg3");

    // Without interference, a new request replaces an existing key (Patroni overwrites it).
    assert_eq!(srv.post("/switchover", &schedule).await.0, 202);
    assert_eq!(srv.failover_key().await.unwrap()["member"], "pg2");
    srv.shutdown().await;
}

#[tokio::test]
async fn dcs_unavailable() {
    let srv = start(|s| s).await;
    let _nodes = cluster(&srv, json!({})).await;
    srv.store.set_unavailable(true);
    let (code, body) = srv
        .post("/switchover", r#"{"leader": "pg1", "candidate": "pg2"}"#)
        .await;
    assert_eq!(code, 503);
    assert!(body.contains("not accessible"), "{body}");
    assert_eq!(srv.delete("/switchover").await.0, 503);
    srv.store.set_unavailable(false);
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// POST /restart, DELETE /restart, POST /reload, POST /reinitialize

fn running_replica() -> NodeSnapshot {
    NodeSnapshot {
        name: "pg1".into(),
        scope: "batman".into(),
        state: "running".into(),
        role: Role::Replica,
        postgres: Some(PgStatus {
            server_version: 160004,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn actions_without_control_are_not_available() {
    let srv = start(|s| s).await;
    srv.snapshots.publish(running_replica());
    assert_eq!(srv.post("/restart", "{}").await, (503, "not available".into()));
    assert_eq!(srv.post("/reload", "").await, (503, "not available".into()));
    assert_eq!(srv.post("/reinitialize", "{}").await, (503, "not available".into()));
    // Validation still comes first.
    assert_eq!(srv.post("/restart", r#"{"foo": 1}"#).await.0, 400);
    assert_eq!(srv.delete("/restart").await, (404, "no restarts are scheduled".into()));
    srv.shutdown().await;
}

#[tokio::test]
async fn restart_calls_the_daemon() {
    let srv = with_control().await;
    srv.snapshots.publish(running_replica());
    assert_eq!(srv.post("/restart", "{}").await, (200, "restarted successfully".into()));
    // The body is optional: no Content-Length at all, or an empty one.
    assert_eq!(
        srv.post_without_length("/restart").await,
        (200, "restarted successfully".into())
    );
    assert_eq!(srv.post("/restart", "").await, (200, "restarted successfully".into()));
    assert_eq!(
        srv.post(
            "/restart",
            r#"{"role": "replica", "postgres_version": "16.5", "timeout": "2min", "restart_pending": false}"#
        )
        .await,
        (200, "restarted successfully".into())
    );
    let restarts = std::mem::take(&mut *srv.control.restarts.lock().unwrap());
    assert_eq!(restarts.len(), 4);
    assert_eq!(restarts[0], RestartRequest::default());
    assert_eq!(
        restarts[3],
        RestartRequest {
            restart_pending: false,
            role: Some("replica".into()),
            postgres_version: Some("16.5".into()),
            timeout: Some(Duration::from_secs(120)),
        }
    );

    // The daemon's own message and its errors are passed through.
    *srv.control.reply.lock().unwrap() = "restart initiated".into();
    assert_eq!(srv.post("/restart", "{}").await, (200, "restart initiated".into()));
    srv.control.fail_next(503, "restart failed");
    assert_eq!(srv.post("/restart", "{}").await, (503, "restart failed".into()));
    srv.control.fail_next(503, "reinitialize already in progress");
    assert_eq!(
        srv.post("/restart", "{}").await,
        (503, "reinitialize already in progress".into())
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn restart_filters_and_validation() {
    let srv = with_control().await;
    srv.snapshots.publish(running_replica());
    let not_satisfied = (503, "restart conditions are not satisfied".to_string());
    assert_eq!(srv.post("/restart", r#"{"role": "primary"}"#).await, not_satisfied);
    assert_eq!(
        srv.post("/restart", r#"{"role": "standby_leader"}"#).await,
        not_satisfied
    );
    assert_eq!(
        srv.post("/restart", r#"{"restart_pending": true}"#).await,
        not_satisfied
    );
    assert_eq!(
        srv.post("/restart", r#"{"postgres_version": "16.4"}"#).await,
        not_satisfied
    );
    assert_eq!(
        srv.post("/restart", r#"{"postgres_version": "15.8"}"#).await,
        not_satisfied
    );
    assert!(srv.control.calls().is_empty(), "the daemon was not asked");

    // A pending restart satisfies `restart_pending`.
    let mut pending = running_replica();
    pending.pending_restart = true;
    srv.snapshots.publish(pending);
    assert_eq!(
        srv.post("/restart", r#"{"restart_pending": true, "role": "replica"}"#)
            .await,
        (200, "restarted successfully".into())
    );
    assert_eq!(srv.control.calls(), ["restart"]);

    let cases: &[(&str, u16, &str)] = &[
        (r#"{"foo": 1}"#, 400, "Unknown filter for the scheduled restart: foo"),
        (
            r#"{"role": "leader"}"#,
            400,
            "PostgreSQL role should be either primary, standby_leader, or replica",
        ),
        (
            r#"{"role": 7}"#,
            400,
            "PostgreSQL role should be either primary, standby_leader, or replica",
        ),
        (
            r#"{"postgres_version": "9.6"}"#,
            400,
            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6",
        ),
        (r#"{"postgres_version": "x.y"}"#, 400, "Invalid PostgreSQL version: x.y"),
        (
            r#"{"timeout": 0}"#,
            400,
            "Timeout should be a positive number of seconds",
        ),
        (
            r#"{"timeout": "soon"}"#,
            400,
            "Timeout should be a positive number of seconds",
        ),
        (
            r#"{"restart_pending": "yes"}"#,
            400,
            "restart_pending should be a boolean",
        ),
        (
            r#"{"schedule": "2099-01-01T00:00:00+00:00"}"#,
            400,
            "scheduled restarts are not supported yet",
        ),
        ("[]", 400, "the body must be a JSON object"),
    ];
    for (body, code, text) in cases {
        assert_eq!(
            srv.post("/restart", body).await,
            (*code, text.to_string()),
            "POST /restart {body}"
        );
    }
    let (code, body) = srv.post("/restart", "{oops").await;
    assert_eq!(code, 400);
    assert!(body.starts_with("invalid JSON"), "{body}");
    let huge = format!(r#"{{"role": "{}"}}"#, "x".repeat(1 << 20));
    assert_eq!(srv.post("/restart", &huge).await.0, 413);

    let mut paused = running_replica();
    paused.pause = true;
    srv.snapshots.publish(paused);
    assert_eq!(
        srv.post("/restart", r#"{"schedule": "2099-01-01T00:00:00+00:00"}"#)
            .await,
        (500, "Can't schedule restart in the paused state".into())
    );
    assert!(srv.control.calls().is_empty());
    assert_eq!(srv.delete("/restart").await, (404, "no restarts are scheduled".into()));
    srv.shutdown().await;
}

#[tokio::test]
async fn reload_is_scheduled() {
    let srv = with_control().await;
    assert_eq!(srv.post("/reload", "").await, (202, "reload scheduled".into()));
    assert_eq!(
        srv.post_without_length("/reload").await,
        (202, "reload scheduled".into())
    );
    srv.control.fail_next(500, "cannot read the configuration");
    assert_eq!(
        srv.post("/reload", "").await,
        (500, "cannot read the configuration".into())
    );
    assert_eq!(srv.control.calls(), ["reload", "reload", "reload"]);
    srv.shutdown().await;
}

#[tokio::test]
async fn reinitialize_passes_flags_and_refusals() {
    let srv = with_control().await;
    assert_eq!(
        srv.post_without_length("/reinitialize").await,
        (200, "reinitialize started".into())
    );
    assert_eq!(
        srv.post("/reinitialize", "{}").await,
        (200, "reinitialize started".into())
    );
    assert_eq!(
        srv.post("/reinitialize", r#"{"force": true, "from_leader": true}"#)
            .await,
        (200, "reinitialize started".into())
    );
    // The docs' spelling, Patroni's parse_bool strings, and unknown keys (ignored).
    assert_eq!(srv.post("/reinitialize", r#"{"from-leader": true}"#).await.0, 200);
    assert_eq!(
        srv.post("/reinitialize", r#"{"force": "yes", "other": 1}"#).await.0,
        200
    );
    assert_eq!(
        srv.control.calls(),
        [
            "reinitialize force=false from_leader=false",
            "reinitialize force=false from_leader=false",
            "reinitialize force=true from_leader=true",
            "reinitialize force=false from_leader=true",
            "reinitialize force=true from_leader=false",
        ]
    );
    for reason in [
        "Cluster has no leader, can not reinitialize",
        "I am the leader, can not reinitialize",
        "restart already in progress",
    ] {
        srv.control.fail_next(503, reason);
        assert_eq!(srv.post("/reinitialize", "{}").await, (503, reason.to_string()));
    }
    let (code, _) = srv.post("/reinitialize", "{bad").await;
    assert_eq!(code, 400);
    assert_eq!(srv.post("/reinitialize", "true").await.0, 400);
    srv.shutdown().await;
}

#[tokio::test]
async fn actions_require_credentials_when_configured() {
    let control = Arc::new(FakeControl::default());
    let c = control.clone();
    let srv = start(move |s| s.with_control(c).with_basic_auth("admin", "s3cret")).await;
    let _nodes = cluster(&srv, json!({})).await;
    for (path, body) in [
        ("/restart", "{}"),
        ("/reload", ""),
        ("/reinitialize", "{}"),
        ("/switchover", r#"{"leader": "pg1", "candidate": "pg2"}"#),
        ("/failover", r#"{"candidate": "pg2"}"#),
    ] {
        assert_eq!(
            srv.post(path, body).await,
            (401, "no auth header received".into()),
            "{path}"
        );
    }
    assert_eq!(srv.delete("/switchover").await.0, 401);
    assert_eq!(srv.delete("/restart").await.0, 401);
    assert!(control.calls().is_empty());
    assert_eq!(srv.failover_key().await, None);

    let r = srv
        .http
        .post(format!("{}/reload", srv.base))
        .basic_auth("admin", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(control.calls(), ["reload"]);
    srv.shutdown().await;
}
