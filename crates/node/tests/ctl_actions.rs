//! `ferronictl`'s actions end to end: the built binary against real ferroni nodes (real etcd, real
//! PostgreSQL 15) for switchover, failover, restart, reload, reinit, flush, pause and resume; and
//! against member keys written straight into etcd whose REST APIs are a small scripted HTTP server
//! (or nothing at all) for credentials, failure lines, the DCS fallbacks and argument checks.
//!
//! The CLI finds the cluster through a patronictl-style `ctl.yml` (scope and etcd3 hosts only) and
//! runs without a terminal, so every action that would ask needs `--force`.

mod common;

use common::{TestCluster, secs};
use ferroni_dcs::{Dcs, EtcdDcs, NodeIdentity};
use ferroni_model::{ClusterView, MemberData};
use ferroni_testkit::etcd::Etcd;
use ferroni_testkit::node::tail;
use ferroni_testkit::ports::free_port;
use ferroni_testkit::wait::wait_until;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest any single ferronictl run may take here (a reinit with --wait is the slowest).
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// A patronictl-style configuration file and an isolated HOME for the CLI.
struct Ctl {
    home: tempfile::TempDir,
    file: PathBuf,
}

impl Ctl {
    /// `extra` is appended to the file (e.g. an authentication section).
    fn new(scope: &str, etcd: &Etcd, extra: &str) -> Ctl {
        let home = tempfile::tempdir().expect("temporary HOME");
        let file = home.path().join("ctl.yml");
        std::fs::write(
            &file,
            format!("scope: {scope}\netcd3:\n  hosts:\n  - {}\n{extra}", etcd.host_port()),
        )
        .expect("write ctl.yml");
        Ctl { home, file }
    }

    fn for_cluster(c: &TestCluster) -> Ctl {
        Ctl::new(&c.scope, &c.etcd, "")
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferronictl"));
        common::isolate(&mut cmd, self.home.path());
        cmd.arg("-c").arg(&self.file).args(args);
        run_limited(cmd, args)
    }

    /// Runs the CLI on a pseudo-terminal (util-linux `script`) answering its questions with
    /// `answers`; `None` when `script` is not installed.
    fn run_in_terminal(&self, args: &[&str], answers: &str) -> Option<Output> {
        let script = ["/usr/bin/script", "/bin/script"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let line = format!(
            "'{}' -c '{}' {}",
            env!("CARGO_BIN_EXE_ferronictl"),
            self.file.display(),
            args.join(" ")
        );
        let mut cmd = Command::new(script);
        common::isolate(&mut cmd, self.home.path());
        cmd.args(["-q", "-e", "-c", &line, "/dev/null"]);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(answers.as_bytes())
            .expect("answers written");
        Some(child.wait_with_output().expect("script finishes"))
    }
}

/// Runs the CLI without a terminal on stdin, killing it after [`RUN_LIMIT`].
fn run_limited(mut cmd: Command, args: &[&str]) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferronictl starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(RUN_LIMIT) {
        Ok(out) => out.expect("ferronictl finishes"),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let out = rx.recv().expect("output").expect("ferronictl finishes");
            panic!(
                "ferronictl {args:?} did not finish within {RUN_LIMIT:?}\nstdout:\n{}\nstderr:\n{}",
                stdout(&out),
                stderr(&out)
            );
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts the exit code and returns stdout and stderr joined (the result lines go to stdout, the
/// one-line error to stderr).
#[track_caller]
fn assert_exit(o: &Output, code: i32) -> String {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "errors are one line: {err}");
    format!("{}{err}", stdout(o))
}

fn streaming(c: &TestCluster, count: usize) {
    wait_until(&format!("{count} streaming replicas"), secs(90), || {
        c.load()
            .members
            .iter()
            .filter(|m| m.data.replication_state.as_deref() == Some("streaming") && m.data.state == "running")
            .count()
            == count
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(c)));
}

fn logs(c: &TestCluster) -> String {
    c.nodes
        .iter()
        .map(|n| format!("--- {} ---\n{}", n.spec.name, tail(&n.log(), 30)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A naive local time an hour from now, the way people type `--scheduled`.
fn local_time_in_an_hour() -> String {
    let out = Command::new("date")
        .args(["-d", "+1 hour", "+%Y-%m-%dT%H:%M"])
        .output()
        .expect("date runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn switchover_and_failover_through_the_cli() {
    let mut c = TestCluster::new("ctlswitch");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let b = c.start(c.spec("b"));
    streaming(&c, 1);
    let ctl = Ctl::for_cluster(&c);

    // No terminal and no --force: refused before anything is sent.
    let refused = assert_exit(&ctl.run(&["switchover", "--leader", "a", "--candidate", "b"]), 1);
    assert!(refused.contains("--force"), "{refused}");
    let wrong = assert_exit(&ctl.run(&["switchover", "--leader", "b", "--force"]), 1);
    assert!(
        wrong.contains("Member b is not the leader of cluster ctlswitch"),
        "{wrong}"
    );
    let no_candidate = assert_exit(&ctl.run(&["failover", "--force"]), 1);
    assert!(
        no_candidate.contains("Failover could be performed only to a specific candidate"),
        "{no_candidate}"
    );
    assert_eq!(c.load().leader_name(), Some("a"));

    let out = assert_ok(&ctl.run(&["switchover", "--leader", "a", "--candidate", "b", "--force"]));
    assert!(
        out.starts_with("Current cluster topology\n+ Cluster: ctlswitch ("),
        "{out}"
    );
    assert!(out.contains("Successfully switched over to \"b\""), "{out}");
    assert_eq!(c.load().leader_name(), Some("b"));
    assert!(
        out.trim_end().ends_with('+'),
        "the new topology closes the output: {out}"
    );
    c.nodes[b].wait_role("primary", secs(10));
    wait_until("a streams from b", secs(45), || {
        c.nodes[a]
            .api_get("/patroni")
            .is_ok_and(|(_, v)| v["role"] == "replica" && v["replication_state"] == "streaming")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&c)));
    // The member key must say so too: the candidate check reads it.
    streaming(&c, 1);

    let out = assert_ok(&ctl.run(&["failover", "--candidate", "a", "--force"]));
    assert!(out.contains("Successfully failed over to \"a\""), "{out}");
    c.nodes[a].wait_role("primary", secs(10));
    assert_eq!(c.load().leader_name(), Some("a"));
    let same = assert_exit(&ctl.run(&["failover", "--candidate", "a", "--force"]), 1);
    assert!(
        same.contains("Member a is already the leader of cluster ctlswitch"),
        "{same}"
    );
}

#[test]
fn restart_reload_and_reinit_members() {
    let mut c = TestCluster::new("ctlmembers");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let b = c.start(c.spec("b"));
    streaming(&c, 1);
    let ctl = Ctl::for_cluster(&c);

    let before = c.nodes[b].postmaster_pid().expect("b runs");
    let out = assert_ok(&ctl.run(&["restart", "ctlmembers", "b", "--force"]));
    assert!(
        out.starts_with("+ Cluster: ctlmembers ("),
        "the table comes first: {out}"
    );
    assert!(out.contains("Success: restart on member b\n"), "{out}");
    let after = c.nodes[b].postmaster_pid().expect("b runs again");
    assert_ne!(before, after, "a new postmaster");
    let unknown = assert_exit(&ctl.run(&["restart", "ctlmembers", "nobody", "--force"]), 1);
    assert!(unknown.contains("nobody is not a member of cluster"), "{unknown}");
    let scheduled = assert_exit(
        &ctl.run(&[
            "restart",
            "ctlmembers",
            "b",
            "--scheduled",
            "2099-01-01T00:00+00:00",
            "--force",
        ]),
        1,
    );
    assert!(
        scheduled.contains("scheduled restarts are not supported"),
        "{scheduled}"
    );

    let out = assert_ok(&ctl.run(&["reload", "ctlmembers", "--role", "replica", "--force"]));
    assert!(
        out.contains("Reload request received for member b and will be processed within 1 seconds")
            || out.contains("No changes to apply on member b"),
        "{out}"
    );
    assert!(
        !out.contains("member a"),
        "--role replica leaves the leader alone: {out}"
    );

    let leader = assert_exit(&ctl.run(&["reinit", "ctlmembers", "a", "--force"]), 1);
    assert!(leader.contains("No replica among provided members"), "{leader}");

    let marker = c.nodes[b].data_dir().join("stale_marker");
    std::fs::write(&marker, "old").expect("write marker");
    ferroni_testkit::node::chown_postgres(&marker);
    let out = assert_ok(&ctl.run(&["reinit", "ctlmembers", "b", "--force", "--wait"]));
    assert!(out.contains("Success: reinitialize for member b\n"), "{out}");
    assert!(out.contains("Waiting for reinitialize to complete on: b\n"), "{out}");
    assert!(out.ends_with("Reinitialize is completed on: b\n"), "{out}");
    assert!(!marker.exists(), "the data directory was rebuilt");
    streaming(&c, 1);
    c.nodes[a]
        .psql("CREATE TABLE after_reinit (x int); INSERT INTO after_reinit VALUES (7)")
        .expect("write on the leader");
    wait_until("the row reaches b", secs(20), || {
        c.nodes[b].psql("SELECT x FROM after_reinit").is_ok_and(|v| v == "7")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&c)));
}

#[test]
fn scheduled_switchover_flush_pause_and_resume() {
    let mut c = TestCluster::new("ctlpause");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    c.start(c.spec("b"));
    streaming(&c, 1);
    let ctl = Ctl::for_cluster(&c);

    let out = assert_ok(&ctl.run(&["flush", "ctlpause", "switchover"]));
    assert_eq!(out, "No pending scheduled switchover\n");

    let when = local_time_in_an_hour();
    let out = assert_ok(&ctl.run(&["switchover", "--candidate", "b", "--scheduled", &when, "--force"]));
    assert!(out.contains(" Switchover scheduled\n"), "{out}");
    let failover = c.load().failover.expect("the failover key is written").value;
    assert_eq!(
        (failover.leader.as_deref(), failover.member.as_deref()),
        (Some("a"), Some("b"))
    );
    let at = failover.scheduled_at.expect("scheduled");
    assert!(at.starts_with(&when), "{at} is {when} local time, with its offset");
    assert!(at.len() > when.len() + 3, "an offset was added: {at}");
    let listed = assert_ok(&ctl.run(&["list"]));
    assert!(listed.contains(" Switchover scheduled at: "), "{listed}");
    assert!(listed.contains("                      to: b"), "{listed}");

    let out = assert_ok(&ctl.run(&["flush", "ctlpause", "switchover", "--force"]));
    assert_eq!(out, "Success: scheduled switchover deleted\n");
    assert!(c.load().failover.is_none(), "the scheduled switchover is gone");
    assert_eq!(c.load().leader_name(), Some("a"));

    let out = assert_ok(&ctl.run(&["pause", "--wait"]));
    assert!(
        out.starts_with("'pause' request sent, waiting until it is recognized by all nodes\n"),
        "{out}"
    );
    assert!(out.ends_with("Success: cluster management is paused\n"), "{out}");
    let view = c.load();
    assert!(
        view.members.iter().all(|m| m.data.pause == Some(true)),
        "{:?}",
        view.members
    );
    assert_eq!(view.config.expect("config").value["pause"], json!(true));
    let listed = assert_ok(&ctl.run(&["list"]));
    assert!(listed.ends_with("+\n Maintenance mode: on\n"), "{listed}");
    let again = assert_exit(&ctl.run(&["pause"]), 1);
    assert!(again.contains("Cluster is already paused"), "{again}");
    let paused = assert_exit(
        &ctl.run(&["switchover", "--candidate", "b", "--scheduled", &when, "--force"]),
        1,
    );
    assert!(
        paused.contains("Can't schedule switchover in the paused state"),
        "{paused}"
    );

    let out = assert_ok(&ctl.run(&["resume", "--wait"]));
    assert!(out.ends_with("Success: cluster management is resumed\n"), "{out}");
    let view = c.load();
    assert!(
        view.members.iter().all(|m| m.data.pause != Some(true)),
        "{:?}",
        view.members
    );
    assert!(
        view.config.expect("config").value.get("pause").is_none(),
        "resume removes the key"
    );
    assert!(!assert_ok(&ctl.run(&["list"])).contains("Maintenance mode"));
    let not = assert_exit(&ctl.run(&["resume"]), 1);
    assert!(not.contains("Cluster is not paused"), "{not}");
}

// --- Without PostgreSQL: member keys written directly, REST APIs scripted or absent. ---

/// Member keys live on these clients' leases, long enough for any test.
fn client(etcd: &Etcd, name: &str, scope: &str) -> EtcdDcs {
    let identity = NodeIdentity {
        name: name.to_string(),
        scope: scope.to_string(),
        namespace: "/service/".to_string(),
        ttl: 600,
        retry_timeout: Duration::from_secs(5),
    };
    EtcdDcs::connect(vec![etcd.endpoint()], None, identity).expect("valid etcd client settings")
}

fn member(api_url: &str, role: &str, port: u16) -> MemberData {
    MemberData {
        conn_url: format!("postgres://127.0.0.1:{port}/postgres"),
        api_url: api_url.to_string(),
        state: "running".into(),
        role: role.into(),
        version: "0.1.0".into(),
        timeline: Some(1),
        ..Default::default()
    }
}

/// Writes a cluster: `members[0]` holds the leader key. Returns the clients (keep them alive).
async fn write_cluster(etcd: &Etcd, scope: &str, members: Vec<(&str, MemberData)>) -> Vec<EtcdDcs> {
    let mut clients = Vec::new();
    for (name, data) in members {
        let c = client(etcd, name, scope);
        c.touch_member(&data).await.expect("member key written");
        clients.push(c);
    }
    let leader = &clients[0];
    assert!(leader.acquire_leader().await.expect("etcd answers"));
    leader.set_initialize("7268616322854375442").await.expect("initialize");
    assert!(
        leader
            .write_config(&json!({"ttl": 30, "loop_wait": 10}), None)
            .await
            .expect("etcd answers")
    );
    clients
}

/// A scripted REST API: records every request (method, path, headers, body) and answers by
/// `METHOD /path` from `answers`, 404 otherwise.
struct FakeApi {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    fn start(answers: &[(&str, u16, &str)]) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let answers: Vec<(String, u16, String)> = answers
            .iter()
            .map(|(k, s, b)| (k.to_string(), *s, b.to_string()))
            .collect();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let request_line = head.lines().next().unwrap_or_default().to_string();
                let key: String = request_line.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                seen.lock()
                    .expect("lock")
                    .push(format!("{head}\r\n{}", String::from_utf8_lossy(&body)));
                let (status, text) = answers
                    .iter()
                    .find(|(k, _, _)| *k == key)
                    .map(|(_, s, b)| (*s, b.clone()))
                    .unwrap_or((404, "not found".into()));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        FakeApi { port, requests }
    }

    fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/patroni", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

/// An api_url nobody listens on.
fn closed_api() -> String {
    format!("http://127.0.0.1:{}/patroni", free_port())
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "authorization: basic {}",
        ferroni_api::auth::base64(format!("{user}:{password}").as_bytes()).to_ascii_lowercase()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_and_failure_lines() {
    let etcd = Etcd::start();
    let api = FakeApi::start(&[
        ("POST /reload", 202, "reload scheduled"),
        ("POST /restart", 503, "restart conditions are not satisfied"),
    ]);
    let mut pg2 = member(&closed_api(), "replica", 5433);
    pg2.extra.insert(
        "last_error".into(),
        json!("failed to create replica: pg_basebackup exited with code 1: could not connect to server"),
    );
    let _clients = write_cluster(
        &etcd,
        "fake",
        vec![("pg1", member(&api.api_url(), "primary", 5432)), ("pg2", pg2)],
    )
    .await;

    // ctl.authentication wins over restapi.authentication.
    let ctl = Ctl::new(
        "fake",
        &etcd,
        "ctl:\n  authentication:\n    username: admin\n    password: secret\n\
         restapi:\n  authentication:\n    username: api\n    password: pw\n",
    );
    let out = assert_ok(&ctl.run(&["reload", "fake", "pg1", "--force"]));
    assert!(
        out.ends_with("Reload request received for member pg1 and will be processed within 10 seconds\n"),
        "{out}"
    );
    let sent = api.requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("POST /reload HTTP/1.1\r\n"), "{sent:?}");
    assert!(
        sent[0].to_ascii_lowercase().contains(&basic("admin", "secret")),
        "{sent:?}"
    );

    // Only the REST API's own credentials: patronictl uses those.
    let api_only = Ctl::new(
        "fake",
        &etcd,
        "restapi:\n  listen: 0.0.0.0:8008\n  authentication:\n    username: api\n    password: pw\n",
    );
    assert_ok(&api_only.run(&["reload", "fake", "pg1", "--force"]));
    assert!(api.requests()[1].to_ascii_lowercase().contains(&basic("api", "pw")));

    // One line per member; any failure makes the exit code 1.
    let out = assert_exit(&ctl.run(&["restart", "fake", "--force"]), 1);
    assert!(
        out.contains("Failed: restart for member pg1, status code=503, (restart conditions are not satisfied)\n"),
        "{out}"
    );
    assert!(out.contains("Failed: restart for member pg2, ("), "{out}");
    assert!(out.contains("Error: restart failed on members: pg1, pg2"), "{out}");
    let restart = api.requests()[2].clone();
    assert!(restart.starts_with("POST /restart HTTP/1.1\r\n"), "{restart}");
    assert!(restart.ends_with("\r\n\r\n{}"), "an empty JSON object: {restart}");
    let version = assert_exit(
        &ctl.run(&["restart", "fake", "pg1", "--pg-version", "9.6", "--force"]),
        1,
    );
    assert!(
        version.contains("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6"),
        "{version}"
    );

    // Questions need a terminal.
    let asks = assert_exit(&ctl.run(&["reload", "fake", "pg1"]), 1);
    assert!(asks.contains("use --force"), "{asks}");
    assert_eq!(api.requests().len(), 3, "nothing more was sent");

    // list -e shows ferroni's last_error, cut in the pretty table, whole in JSON.
    let plain = assert_ok(&ctl.run(&["list"]));
    assert!(!plain.contains("Last error"), "{plain}");
    let extended = assert_ok(&ctl.run(&["list", "-e"]));
    assert!(extended.contains("| Last error "), "{extended}");
    assert!(
        extended.contains("| failed to create replica: pg_basebackup exited with code ... |"),
        "{extended}"
    );
    let rows: Vec<Value> =
        serde_json::from_str(&assert_ok(&ctl.run(&["list", "-e", "-f", "json"]))).expect("valid JSON");
    assert_eq!(
        rows[1]["Last error"],
        json!("failed to create replica: pg_basebackup exited with code 1: could not connect to server")
    );

    // Cluster role changes: argument checks and state checks.
    let no_source = assert_exit(&ctl.run(&["demote-cluster", "--force"]), 2);
    assert!(
        no_source.contains("At least --host, --port or --restore-command should be specified"),
        "{no_source}"
    );
    let already = assert_exit(&ctl.run(&["promote-cluster", "--force"]), 1);
    assert!(
        already.contains("Cluster is already in the required state"),
        "{already}"
    );
    let bad_port = ctl.run(&["demote-cluster", "--port", "lots", "--force"]);
    assert_eq!(bad_port.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn dcs_fallbacks_when_no_member_answers() {
    let etcd = Etcd::start();
    let _clients = write_cluster(
        &etcd,
        "ghost",
        vec![
            ("g1", member(&closed_api(), "primary", 5432)),
            ("g2", member(&closed_api(), "replica", 5433)),
        ],
    )
    .await;
    let observer = client(&etcd, "observer", "ghost");
    let view = || async { observer.load().await.expect("etcd answers") };
    let ctl = Ctl::new("ghost", &etcd, "");

    let out = assert_ok(&ctl.run(&["pause"]));
    assert!(
        out.contains(" Could not find any accessible member of cluster ghost"),
        "{out}"
    );
    assert!(out.ends_with("Success: cluster management is paused\n"), "{out}");
    let config: ClusterView = view().await;
    assert_eq!(
        config.config.expect("config").value,
        json!({"ttl": 30, "loop_wait": 10, "pause": true})
    );
    assert_ok(&ctl.run(&["resume"]));
    assert_eq!(
        view().await.config.expect("config").value,
        json!({"ttl": 30, "loop_wait": 10})
    );

    let out = assert_ok(&ctl.run(&[
        "switchover",
        "--candidate",
        "g2",
        "--scheduled",
        "2099-01-01T00:00+00:00",
        "--force",
    ]));
    assert!(
        out.contains(" Could not switchover using Patroni api, falling back to DCS\n"),
        "{out}"
    );
    let failover = view().await.failover.expect("written to the DCS").value;
    assert_eq!(
        (
            failover.leader.as_deref(),
            failover.member.as_deref(),
            failover.scheduled_at.as_deref()
        ),
        (Some("g1"), Some("g2"), Some("2099-01-01T00:00:00+00:00"))
    );
    let out = assert_ok(&ctl.run(&["flush", "ghost", "switchover"]));
    assert!(
        out.ends_with(" Could not find any accessible member of cluster ghost\n"),
        "{out}"
    );
    assert!(view().await.failover.is_none(), "deleted in the DCS");

    // With a terminal, the questions: leader (default the current one), candidate (default: let
    // the cluster choose), when (default now), and the confirmation.
    if let Some(out) = ctl.run_in_terminal(&["switchover", "ghost"], "\n\n\nn\n") {
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("Primary [g1]: "), "{text}");
        assert!(text.contains("Candidate ['g2'] []: "), "{text}");
        assert!(text.contains("When should the switchover take place (e.g. "), "{text}");
        assert!(
            text.contains("Are you sure you want to switchover cluster ghost, demoting current leader g1? [y/N]: "),
            "{text}"
        );
        assert!(text.contains("Aborting switchover"), "{text}");
        assert!(view().await.failover.is_none(), "nothing written when the answer is no");
        let out = ctl
            .run_in_terminal(&["reinit", "ghost"], "g2\ny\n")
            .expect("script exists");
        let text = stdout(&out);
        assert!(
            text.contains("Which member do you want to reinitialize [g2]? []: "),
            "{text}"
        );
        assert!(
            text.contains("Are you sure you want to reinitialize members g2? [y/N]: "),
            "{text}"
        );
        assert!(text.contains("Failed: reinitialize for member g2, ("), "{text}");
        assert_eq!(out.status.code(), Some(1), "{text}");
    }

    let no_leader = assert_exit(&ctl.run(&["promote-cluster", "nobody", "--force"]), 1);
    assert!(
        no_leader.contains("Cluster has no leader, promotion is not possible"),
        "{no_leader}"
    );
    let nobody = assert_exit(&ctl.run(&["switchover", "nobody", "--force"]), 1);
    assert!(nobody.contains("This cluster has no leader"), "{nobody}");
}

/// SIGHUP (systemd's reload) and `POST /reload` re-read the YAML: a Postgres parameter and a tag
/// take effect without a restart, an invalid file changes nothing, and the daemon lives on.
#[test]
fn sighup_and_post_reload_reread_the_configuration() {
    let mut c = TestCluster::new("reread");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    let node = &c.nodes[a];
    let rewrite = |extra_pg: &str, extra: &str| {
        let mut spec = node.spec.clone();
        spec.extra_postgresql = extra_pg.into();
        spec.extra_yaml = extra.into();
        std::fs::write(&node.config_path, spec.yaml(&node.dir)).expect("rewrite the config");
    };
    let work_mem = || node.psql("SHOW work_mem").unwrap_or_default();
    let alive = || nix::sys::signal::kill(nix::unistd::Pid::from_raw(node.pid().unwrap() as i32), None).is_ok();

    rewrite("    work_mem: 7MB\n", "tags:\n  nofailover: true\n");
    node.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until("work_mem 7MB after SIGHUP", secs(20), || work_mem() == "7MB")
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&node.log(), 30)));
    wait_until("the tag published", secs(20), || {
        node.api_get("/patroni")
            .is_ok_and(|(_, v)| v["tags"]["nofailover"] == json!(true))
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", node.api_get("/patroni")));
    assert!(alive(), "SIGHUP must not end the daemon");

    std::fs::write(&node.config_path, "name: [unclosed\n").expect("break the config");
    node.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until("the invalid file refused", secs(20), || {
        node.log().contains("keeping the configuration in force")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&node.log(), 30)));
    assert!(alive());
    assert_eq!(work_mem(), "7MB");

    rewrite("    work_mem: 9MB\n", "");
    let (code, body) =
        ferroni_testkit::node::http_request("POST", &node.api_url("/reload"), None).expect("POST /reload");
    assert_eq!(code, 202, "{body}");
    wait_until("work_mem 9MB after POST /reload", secs(20), || work_mem() == "9MB")
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&node.log(), 30)));
    wait_until("the tag gone", secs(20), || {
        node.api_get("/patroni")
            .is_ok_and(|(_, v)| v["tags"].get("nofailover").is_none())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", node.api_get("/patroni")));
}
