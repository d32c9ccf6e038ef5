//! `ferronictl` end to end: the built binary against a real etcd started for each test, with a
//! cluster written the way ferroni nodes write it (through `EtcdDcs`): `initialize` with a system
//! identifier, the dynamic `config`, the leader lock, four member keys with WAL positions, `status`
//! and `history`.
//!
//! The cluster (`batman`): pg1 leads at 100 MB; pg2 is a streaming replica at 100 MB (lag 0); pg3
//! cascades from pg2 (tag `replicatefrom`) 3.5 MB behind (lag 4, Python rounding); pg4 has published
//! no position yet (lag unknown).

mod common;

use ferroni_dcs::{Dcs, EtcdDcs, NodeIdentity};
use ferroni_model::{ClusterView, HistoryLine, MemberData, Status};
use ferroni_testkit::etcd::Etcd;
use ferroni_testkit::ports::free_port;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SCOPE: &str = "batman";
const SYSID: &str = "7268616322854375442";
const MB: u64 = 1024 * 1024;
/// Long enough that member and leader keys outlive any test, as nothing renews their leases.
const LEASE_TTL: u32 = 600;

struct Cluster {
    etcd: Etcd,
    /// The member keys live on these clients' leases.
    _nodes: Vec<EtcdDcs>,
    /// A client for checking what the CLI wrote.
    observer: EtcdDcs,
    home: tempfile::TempDir,
}

fn client(etcd: &Etcd, name: &str, scope: &str) -> EtcdDcs {
    let identity = NodeIdentity {
        name: name.to_string(),
        scope: scope.to_string(),
        namespace: "/service/".to_string(),
        ttl: LEASE_TTL,
        retry_timeout: Duration::from_secs(5),
    };
    EtcdDcs::connect(vec![etcd.endpoint()], None, identity).expect("valid etcd client settings")
}

fn member(port: u16, role: &str, f: impl FnOnce(&mut MemberData)) -> MemberData {
    let mut data = MemberData {
        conn_url: format!("postgres://127.0.0.1:{port}/postgres"),
        api_url: format!("http://127.0.0.1:{}/patroni", port + 3000),
        state: "running".into(),
        role: role.into(),
        version: "0.1.0".into(),
        timeline: Some(2),
        ..Default::default()
    };
    f(&mut data);
    data
}

fn initial_config() -> Value {
    json!({
        "ttl": 30,
        "loop_wait": 10,
        "retry_timeout": 10,
        "maximum_lag_on_failover": 1048576,
        "postgresql": {"use_pg_rewind": true, "parameters": {"max_connections": 100, "wal_level": "replica"}},
    })
}

impl Cluster {
    async fn start() -> Cluster {
        Cluster::start_with(|_| {}).await
    }

    /// `tweak` may change pg1's member data before it is written (e.g. its api_url).
    async fn start_with(tweak: impl FnOnce(&mut MemberData)) -> Cluster {
        let etcd = Etcd::start();
        let observer = client(&etcd, "observer", SCOPE);
        let mut pg1 = member(5432, "primary", |d| d.xlog_location = Some(100 * MB));
        tweak(&mut pg1);
        let members = [
            ("pg1", pg1),
            (
                "pg2",
                member(5433, "replica", |d| {
                    d.xlog_location = Some(100 * MB);
                    d.receive_lsn = Some(100 * MB);
                    d.replay_lsn = Some(100 * MB);
                    d.replication_state = Some("streaming".into());
                }),
            ),
            (
                "pg3",
                member(5434, "replica", |d| {
                    d.xlog_location = Some(100 * MB - 7 * MB / 2);
                    d.replication_state = Some("streaming".into());
                    d.tags.insert("replicatefrom".into(), json!("pg2"));
                }),
            ),
            ("pg4", member(5435, "replica", |d| d.state = "starting".into())),
        ];
        let mut nodes = Vec::new();
        for (name, data) in members {
            let node = client(&etcd, name, SCOPE);
            node.touch_member(&data).await.expect("member key written");
            nodes.push(node);
        }
        let leader = &nodes[0];
        assert!(
            leader.acquire_leader().await.expect("etcd answers"),
            "pg1 takes the leader key"
        );
        leader.set_initialize(SYSID).await.expect("initialize written");
        assert!(
            leader
                .write_config(&initial_config(), None)
                .await
                .expect("etcd answers")
        );
        leader
            .write_status(&Status {
                optime: 100 * MB,
                ..Default::default()
            })
            .await
            .expect("status written");
        let history = [HistoryLine(
            1,
            25_165_984,
            "no recovery target specified".into(),
            Some("2024-05-01T10:00:00.123456+00:00".into()),
            Some("pg1".into()),
        )];
        leader.write_history(&history).await.expect("history written");
        Cluster {
            etcd,
            _nodes: nodes,
            observer,
            home: tempfile::tempdir().expect("temporary HOME"),
        }
    }

    fn dcs_url(&self) -> String {
        format!("etcd3://{}", self.etcd.host_port())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferronictl"));
        cmd.arg("-d").arg(self.dcs_url()).args(args);
        common::isolate(&mut cmd, self.home.path());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        run_with_stdin(self.command(args), "")
    }

    fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(self.command(args), stdin)
    }

    async fn view(&self) -> ClusterView {
        self.observer.load().await.expect("etcd answers")
    }

    async fn config(&self) -> (Value, i64) {
        let c = self.view().await.config.expect("config key exists");
        (c.value, c.version)
    }
}

fn run_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferronictl starts");
    if let Some(mut pipe) = child.stdin.take() {
        // The CLI may exit before reading everything (a refused confirmation); that is not an error here.
        let _ = pipe.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("ferronictl finishes")
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
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn list_pretty() {
    let c = Cluster::start().await;
    let out = assert_ok(&c.run(&["list", SCOPE]));
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

    let extended = assert_ok(&c.run(&["list", "-e", SCOPE]));
    assert!(
        extended.contains("| Member | Host           | Role    | State     | TL | Lag in MB | Pending restart | Scheduled restart | Tags               |"),
        "{extended}"
    );

    let stamped = assert_ok(&c.run(&["list", "-t", SCOPE]));
    let first = stamped.lines().next().unwrap_or_default();
    assert!(
        first.len() == 19 && first.as_bytes()[4] == b'-' && first.as_bytes()[13] == b':',
        "{stamped}"
    );

    let tsv = assert_ok(&c.run(&["list", "-f", "tsv", SCOPE]));
    assert!(
        tsv.starts_with("Cluster\tMember\tHost\tRole\tState\tTL\tLag in MB\tTags\n"),
        "{tsv}"
    );
    assert!(
        tsv.contains("batman\tpg3\t127.0.0.1:5434\tReplica\tstreaming\t2\t4\t{replicatefrom: pg2}\n"),
        "{tsv}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_json_and_yaml() {
    let c = Cluster::start().await;
    let out = assert_ok(&c.run(&["list", "-f", "json", SCOPE]));
    assert_eq!(out.lines().count(), 1, "one line like json.dumps: {out}");
    assert!(
        out.starts_with(
            "[{\"Cluster\": \"batman\", \"Member\": \"pg1\", \"Host\": \"127.0.0.1:5432\", \"Role\": \"Leader\""
        ),
        "{out}"
    );
    let rows: Vec<Value> = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(
        rows[0],
        json!({"Cluster": "batman", "Member": "pg1", "Host": "127.0.0.1:5432", "Role": "Leader", "State": "running", "TL": 2})
    );
    assert_eq!(rows[1]["Lag in MB"], json!(0));
    assert_eq!(rows[2]["Lag in MB"], json!(4));
    assert_eq!(rows[2]["Tags"], json!({"replicatefrom": "pg2"}));
    assert_eq!(rows[3]["Lag in MB"], json!("unknown"));
    assert_eq!(rows[3]["State"], json!("starting"));

    let yaml = assert_ok(&c.run(&["list", "-f", "yaml", SCOPE]));
    assert!(
        yaml.starts_with(
            "- Cluster: batman\n  Host: 127.0.0.1:5432\n  Member: pg1\n  Role: Leader\n  State: running\n  TL: 2\n- "
        ),
        "{yaml}"
    );
    let parsed: Value = serde_saphyr::from_str(&yaml).expect("valid YAML");
    assert_eq!(parsed, Value::Array(rows));
}

#[tokio::test(flavor = "multi_thread")]
async fn list_uninitialized_cluster_and_config_file_scope() {
    let c = Cluster::start().await;
    let out = assert_ok(&c.run(&["list", "robin"]));
    assert!(out.starts_with("+ Cluster: robin (uninitialized) "), "{out}");

    // A patronictl-style file without node-only keys (name, postgresql) still gives scope and hosts.
    let file = c.home.path().join("ctl.yml");
    std::fs::write(
        &file,
        format!("scope: {SCOPE}\netcd3:\n  hosts:\n  - {}\n", c.etcd.host_port()),
    )
    .expect("write");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferronictl"));
    common::isolate(&mut cmd, c.home.path());
    cmd.env("PATRONICTL_CONFIG_FILE", &file).arg("list");
    let out = assert_ok(&run_with_stdin(cmd, ""));
    assert!(out.starts_with("+ Cluster: batman (7268616322854375442) "), "{out}");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferronictl"));
    common::isolate(&mut cmd, c.home.path());
    cmd.arg("-c").arg(c.home.path().join("missing.yml")).arg("list");
    let err = assert_exit(&run_with_stdin(cmd, ""), 2);
    assert!(err.contains("missing.yml not existing"), "{err}");

    let err = assert_exit(&c.run(&["list"]), 2);
    assert!(err.contains("no cluster name"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn topology_indents_cascading_replicas() {
    let c = Cluster::start().await;
    let out = assert_ok(&c.run(&["topology", SCOPE]));
    let members: Vec<&str> = out
        .lines()
        .skip(3)
        .filter_map(|l| l.split('|').nth(1))
        .map(str::trim_end)
        .collect();
    assert_eq!(members, vec![" pg1", " + pg2", "   + pg3", " + pg4"], "{out}");
    assert!(
        out.contains("|   + pg3 | 127.0.0.1:5434 | Replica | streaming |  2 |         4 |"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn show_config_and_set() {
    let c = Cluster::start().await;
    let shown = assert_ok(&c.run(&["show-config", SCOPE]));
    let expected = "\
loop_wait: 10
maximum_lag_on_failover: 1048576
postgresql:
  parameters:
    max_connections: 100
    wal_level: replica
  use_pg_rewind: true
retry_timeout: 10
ttl: 30
";
    assert_eq!(shown, expected);

    let (_, before) = c.config().await;
    let out = assert_ok(&c.run(&["edit-config", SCOPE, "--set", "ttl=40", "--force"]));
    assert!(out.contains("-ttl: 30\n+ttl: 40\n"), "{out}");
    assert!(out.contains("@@ "), "{out}");
    assert!(out.ends_with("Configuration changed\n"), "{out}");
    let (config, after) = c.config().await;
    assert_eq!(config["ttl"], json!(40));
    assert!(after > before, "the config version moves on ({before} → {after})");
    assert!(assert_ok(&c.run(&["show-config", SCOPE])).contains("\nttl: 40\n"));

    // Quiet, several keys, a deletion; the same change again is no change.
    let out = assert_ok(&c.run(&[
        "edit-config",
        SCOPE,
        "-q",
        "-s",
        "loop_wait=5",
        "-s",
        "maximum_lag_on_failover=",
        "--force",
    ]));
    assert_eq!(out, "Configuration changed\n");
    let (config, _) = c.config().await;
    assert_eq!(config["loop_wait"], json!(5));
    assert!(config.get("maximum_lag_on_failover").is_none(), "{config}");
    let out = assert_ok(&c.run(&["edit-config", SCOPE, "-s", "loop_wait=5", "--force"]));
    assert_eq!(out, "Not changed\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_configuration_is_not_written() {
    let c = Cluster::start().await;
    let (config, version) = c.config().await;
    let err = assert_exit(&c.run(&["edit-config", SCOPE, "--set", "loop_wait=ten", "--force"]), 2);
    assert!(err.contains("loop_wait"), "the error names the key: {err}");
    let err = assert_exit(&c.run(&["edit-config", SCOPE, "--set", "ttl=10", "--force"]), 2);
    assert!(err.contains("ttl"), "{err}");
    let err = assert_exit(&c.run(&["edit-config", SCOPE, "--set", "novalue", "--force"]), 2);
    assert!(err.contains("Invalid parameter setting novalue"), "{err}");
    assert_eq!(c.config().await, (config, version), "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_parameters_and_apply() {
    let c = Cluster::start().await;
    let out = assert_ok(&c.run(&[
        "edit-config",
        SCOPE,
        "-p",
        "max_connections=200",
        "-p",
        "auto_explain.log_min_duration=250ms",
        "--force",
    ]));
    assert!(out.contains("-    max_connections: 100\n"), "{out}");
    assert!(out.contains("+    max_connections: 200\n"), "{out}");
    assert!(out.contains("+    auto_explain.log_min_duration: 250ms\n"), "{out}");
    let (config, _) = c.config().await;
    assert_eq!(config["postgresql"]["parameters"]["max_connections"], json!(200));
    assert_eq!(
        config["postgresql"]["parameters"]["auto_explain.log_min_duration"],
        json!("250ms")
    );

    let patch = c.home.path().join("patch.yml");
    std::fs::write(
        &patch,
        "loop_wait: 5\npostgresql:\n  parameters:\n    wal_level: logical\n    work_mem: 8MB\n  use_pg_rewind: null\n",
    )
    .expect("write");
    let path = patch.to_string_lossy().into_owned();
    assert_ok(&c.run(&["edit-config", SCOPE, "--apply", &path, "--force"]));
    let (config, _) = c.config().await;
    assert_eq!(config["loop_wait"], json!(5));
    assert_eq!(
        config["postgresql"],
        json!({"parameters": {"max_connections": 200, "auto_explain.log_min_duration": "250ms", "wal_level": "logical", "work_mem": "8MB"}})
    );

    // From standard input: refused without --force (no way left to confirm), applied with it.
    let (before, version) = c.config().await;
    let refused = c.run_stdin(&["edit-config", SCOPE, "--apply", "-"], "ttl: 60\n");
    let err = assert_exit(&refused, 1);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(c.config().await, (before, version));
    let out = assert_ok(&c.run_stdin(
        &["edit-config", SCOPE, "--apply", "-", "--force"],
        "ttl: 60\npause: on\n",
    ));
    assert!(out.contains("+pause: true\n"), "{out}");
    let (config, _) = c.config().await;
    assert_eq!(
        (config["ttl"].clone(), config["pause"].clone()),
        (json!(60), json!(true))
    );

    // --replace swaps the whole configuration.
    assert_ok(&c.run_stdin(&["edit-config", SCOPE, "--replace", "-", "--force"], "ttl: 30\n"));
    assert_eq!(c.config().await.0, json!({"ttl": 30}));

    let err = assert_exit(
        &c.run_stdin(&["edit-config", SCOPE, "--apply", "-", "--force"], "- a list\n"),
        2,
    );
    assert!(err.contains("expected a map"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn confirmation_needs_a_terminal() {
    let c = Cluster::start().await;
    let before = c.config().await;
    let err = assert_exit(&c.run_stdin(&["edit-config", SCOPE, "--set", "ttl=40"], "y\n"), 1);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(c.config().await, before);
}

/// Writes an executable shell script (an editor stand-in).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn editor_and_concurrent_change() {
    let c = Cluster::start().await;
    let editor = script(c.home.path(), "edit.sh", r#"sed -i 's/^ttl: 30$/ttl: 40/' "$1""#);
    let mut cmd = c.command(&["edit-config", SCOPE, "--force"]);
    cmd.env("EDITOR", &editor);
    let out = assert_ok(&run_with_stdin(cmd, ""));
    assert!(out.contains("-ttl: 30\n+ttl: 40\n"), "{out}");
    assert_eq!(c.config().await.0["ttl"], json!(40));

    // An editor that leaves the file alone changes nothing.
    let mut cmd = c.command(&["edit-config", SCOPE, "--force"]);
    cmd.env("EDITOR", "true");
    assert_eq!(assert_ok(&run_with_stdin(cmd, "")), "Not changed\n");

    let mut cmd = c.command(&["edit-config", SCOPE, "--force"]);
    cmd.env("EDITOR", "false");
    let err = assert_exit(&run_with_stdin(cmd, ""), 1);
    assert!(err.contains("Editor exited with return code 1"), "{err}");

    // While "the user edits", someone else changes the configuration: the CAS write must refuse.
    let sneaky = script(
        c.home.path(),
        "sneaky.sh",
        &format!(
            "'{bin}' -d '{url}' edit-config {SCOPE} -q --set loop_wait=5 --force >/dev/null\nsed -i 's/^ttl: 40$/ttl: 45/' \"$1\"",
            bin = env!("CARGO_BIN_EXE_ferronictl"),
            url = c.dcs_url()
        ),
    );
    let mut cmd = c.command(&["edit-config", SCOPE, "--force"]);
    cmd.env("EDITOR", &sneaky);
    let err = assert_exit(&run_with_stdin(cmd, ""), 1);
    assert!(err.contains("concurrent changes"), "{err}");
    let (config, _) = c.config().await;
    assert_eq!(
        (config["ttl"].clone(), config["loop_wait"].clone()),
        (json!(40), json!(5)),
        "only the other change landed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn history() {
    let c = Cluster::start().await;
    let out = assert_ok(&c.run(&["history", SCOPE]));
    assert!(
        out.contains(
            "| TL |      LSN | Reason                       | Timestamp                        | New Leader |"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "|  1 | 25165984 | no recovery target specified | 2024-05-01T10:00:00.123456+00:00 | pg1        |"
        ),
        "{out}"
    );
    let json_out = assert_ok(&c.run(&["history", "-f", "json", SCOPE]));
    let rows: Vec<Value> = serde_json::from_str(&json_out).expect("valid JSON");
    assert_eq!(rows[0]["LSN"], json!(25_165_984));
    assert_eq!(rows[0]["New Leader"], json!("pg1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn dsn() {
    let c = Cluster::start().await;
    assert_eq!(assert_ok(&c.run(&["dsn", SCOPE])), "host=127.0.0.1 port=5432\n");
    assert_eq!(
        assert_ok(&c.run(&["dsn", SCOPE, "-r", "primary"])),
        "host=127.0.0.1 port=5432\n"
    );
    assert_eq!(
        assert_ok(&c.run(&["dsn", SCOPE, "-r", "replica"])),
        "host=127.0.0.1 port=5433\n"
    );
    assert_eq!(
        assert_ok(&c.run(&["dsn", SCOPE, "-m", "pg3"])),
        "host=127.0.0.1 port=5434\n"
    );
    let err = assert_exit(&c.run(&["dsn", SCOPE, "-m", "nobody"]), 1);
    assert!(err.contains("Can not find a suitable member"), "{err}");
    let err = assert_exit(&c.run(&["dsn", SCOPE, "-r", "standby-leader"]), 1);
    assert!(err.contains("Can not find a suitable member"), "{err}");
    let usage = c.run(&["dsn", SCOPE, "-r", "replica", "-m", "pg3"]);
    assert_eq!(usage.status.code(), Some(2), "--role and --member exclude each other");
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_asks_before_deleting() {
    let c = Cluster::start().await;
    let wrong = c.run_stdin(&["remove", SCOPE], "robin\n");
    let err = assert_exit(&wrong, 1);
    assert!(err.contains("Cluster names specified do not match"), "{err}");
    let not_aware = c.run_stdin(&["remove", SCOPE], "batman\nyes\n");
    assert!(assert_exit(&not_aware, 1).contains("Yes I am aware"));
    let wrong_leader = c.run_stdin(&["remove", SCOPE], "batman\nYes I am aware\npg2\n");
    assert!(assert_exit(&wrong_leader, 1).contains("current leader"));
    let no_answer = c.run_stdin(&["remove", SCOPE], "batman\n");
    assert!(assert_exit(&no_answer, 1).contains("Aborted"));
    assert_eq!(
        c.view().await.initialize.as_deref(),
        Some(SYSID),
        "nothing was removed yet"
    );

    let out = assert_ok(&c.run_stdin(&["remove", SCOPE], "batman\nYes I am aware\npg1\n"));
    assert!(
        out.starts_with("+ Cluster: batman (7268616322854375442) "),
        "the members are shown first: {out}"
    );
    assert!(out.contains("Please confirm the cluster name to remove: "), "{out}");
    assert!(out.contains("please type: \"Yes I am aware\": "), "{out}");
    assert!(out.contains("Please specify the leader name to continue: "), "{out}");
    assert_eq!(c.view().await, ClusterView::default(), "every key is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn version_of_cli_and_members() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = std::thread::spawn(move || {
        let body = r#"{"state": "running", "role": "primary", "server_version": 150018, "patroni": {"version": "0.1.0", "scope": "batman"}}"#;
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let c = Cluster::start_with(|d| d.api_url = format!("http://127.0.0.1:{port}/patroni")).await;
    let own = format!("ferronictl version {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(assert_ok(&c.run(&["version"])), own);
    let out = assert_ok(&c.run(&["version", SCOPE, "pg1", "pg2"]));
    assert!(
        out.starts_with(&format!(
            "{own}\npg1: Patroni 0.1.0 PostgreSQL 15.18\npg2: failed to get version: "
        )),
        "{out}"
    );
    assert!(!out.contains("pg3"), "{out}");
    let _ = server.join();
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_dcs() {
    let home = tempfile::tempdir().expect("temporary HOME");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferronictl"));
    common::isolate(&mut cmd, home.path());
    cmd.args(["-d", &format!("etcd3://127.0.0.1:{}", free_port()), "list", SCOPE]);
    let started = Instant::now();
    let out = run_with_stdin(cmd, "");
    let err = assert_exit(&out, 1);
    assert!(err.starts_with("Error: DCS is not accessible: "), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up in {:?}",
        started.elapsed()
    );
    assert!(out.stdout.is_empty());

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferronictl"));
    common::isolate(&mut cmd, home.path());
    cmd.args(["-d", "consul://127.0.0.1:8500", "list", SCOPE]);
    let err = assert_exit(&run_with_stdin(cmd, ""), 2);
    assert!(err.contains("only etcd"), "{err}");
}
