//! Runs real `ferroni` daemons for integration tests: writes a Patroni-style config per node, starts
//! the binary as the `postgres` user (tests run as root in CI), keeps its log, and stops it (and
//! the Postgres it started) when the guard drops.

use crate::ports::free_port;
use crate::wait::wait_until;
use crate::writable::PgTarget;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub const SUPERUSER_PASSWORD: &str = "test-superuser-secret";
pub const REPLICATION_PASSWORD: &str = "test-replication-secret";

/// uid and gid of the `postgres` OS user, when the tests run as root.
pub fn postgres_ids() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres").ok().flatten()?;
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// A temporary directory the `postgres` user owns.
pub fn postgres_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ferroni-test-")
        .tempdir()
        .expect("create temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    chown_postgres(dir.path());
    dir
}

pub fn chown_postgres(path: &Path) {
    if let Some((uid, gid)) = postgres_ids() {
        nix::unistd::chown(path, Some(uid.into()), Some(gid.into())).expect("chown to postgres");
    }
}

/// The ferroni binary (and `ferroni-fence` beside it), copied to a place the `postgres` user can
/// execute it from (the build tree may live under a home directory it cannot enter). One copy per
/// build, shared by every test process: nextest runs each test in a process of its own, and a copy
/// per process once filled /tmp with hundreds of 74 MB binaries.
pub fn ferroni_binary(built: &Path) -> PathBuf {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        let meta = fs::metadata(built).expect("the ferroni binary is built");
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("ferroni-bin-{}-{modified}", meta.len()));
        if !dir.join("ferroni").exists() {
            // Built under a name of our own, then renamed into place: another test process may be
            // doing the same, and whichever rename comes second fails harmlessly.
            let tmp = std::env::temp_dir().join(format!(".ferroni-bin-{}", std::process::id()));
            let _ = fs::remove_dir_all(&tmp);
            fs::create_dir_all(&tmp).expect("create binary dir");
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).expect("chmod binary dir");
            let mut programs = vec![built.to_path_buf()];
            // The daemon starts the fence from the program installed next to it, when there is one.
            programs.extend(built.parent().map(|d| d.join("ferroni-fence")).filter(|f| f.is_file()));
            for program in programs {
                let name = if program == built {
                    "ferroni".into()
                } else {
                    program.file_name().expect("a file name").to_owned()
                };
                let copy = tmp.join(name);
                fs::copy(&program, &copy).expect("copy a ferroni binary");
                fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod a ferroni binary");
            }
            if fs::rename(&tmp, &dir).is_err() {
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        dir.join("ferroni")
    })
    .clone()
}

/// Settings of one test node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub scope: String,
    pub etcd: String,
    pub pg_port: u16,
    pub api_port: u16,
    pub ttl: u32,
    pub loop_wait: u32,
    pub retry_timeout: u32,
    /// Extra YAML appended verbatim at the top level (must not repeat keys written here).
    pub extra_yaml: String,
    /// Extra YAML lines inside `restapi:` (indented by the caller with 2 spaces).
    pub extra_restapi: String,
    /// Extra YAML lines inside `postgresql:` (indented by the caller with 2 spaces).
    pub extra_postgresql: String,
    /// Extra YAML lines inside `bootstrap:` (indented with 2 spaces).
    pub extra_bootstrap: String,
    /// Extra YAML lines inside `bootstrap.dcs:` (indented with 4 spaces).
    pub extra_dcs: String,
}

impl NodeSpec {
    pub fn new(name: &str, scope: &str, etcd: &str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            scope: scope.into(),
            etcd: etcd.trim_start_matches("http://").into(),
            pg_port: free_port(),
            api_port: free_port(),
            ttl: 10,
            loop_wait: 1,
            retry_timeout: 3,
            extra_yaml: String::new(),
            extra_restapi: String::new(),
            extra_postgresql: String::new(),
            extra_bootstrap: String::new(),
            extra_dcs: String::new(),
        }
    }

    pub fn yaml(&self, dir: &Path) -> String {
        let data_dir = dir.join("data");
        format!(
            r#"name: {name}
scope: {scope}
namespace: /service
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
{extra_restapi}etcd3:
  hosts: {etcd}
log:
  level: INFO
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry}
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
        max_connections: 30
        shared_buffers: 16MB
{extra_dcs}  initdb:
    - encoding: UTF8
    - data-checksums
{extra_bootstrap}postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {data}
  pgpass: {dir}/pgpass
  authentication:
    superuser:
      username: postgres
      password: {su}
    replication:
      username: replicator
      password: {repl}
  parameters:
    unix_socket_directories: {dir}
{extra_pg}{extra}"#,
            name = self.name,
            scope = self.scope,
            api = self.api_port,
            etcd = self.etcd,
            ttl = self.ttl,
            loop_wait = self.loop_wait,
            retry = self.retry_timeout,
            pg = self.pg_port,
            data = data_dir.display(),
            dir = dir.display(),
            su = SUPERUSER_PASSWORD,
            repl = REPLICATION_PASSWORD,
            extra_bootstrap = self.extra_bootstrap,
            extra_dcs = self.extra_dcs,
            extra_pg = self.extra_postgresql,
            extra = self.extra_yaml,
            extra_restapi = self.extra_restapi,
        )
    }
}

/// A running ferroni daemon.
pub struct FerroniNode {
    pub spec: NodeSpec,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    binary: PathBuf,
    child: Option<Child>,
    /// Set for a node inside a network namespace: its name, and the address the node listens on
    /// there (for PostgreSQL and the REST API) in place of 127.0.0.1.
    netns: Option<(String, String)>,
}

impl FerroniNode {
    /// Writes the config into `dir` (a directory the postgres user owns) and starts the daemon.
    pub fn start(binary: &Path, dir: &Path, spec: NodeSpec) -> FerroniNode {
        Self::launch(binary, dir, spec, None)
    }

    /// Like [`FerroniNode::start`], inside the network namespace `netns`, listening on `addr`
    /// there for both PostgreSQL and the REST API (`spec.etcd` must be reachable from `netns`).
    pub fn start_in_netns(binary: &Path, dir: &Path, spec: NodeSpec, netns: &str, addr: &str) -> FerroniNode {
        Self::launch(binary, dir, spec, Some((netns.to_string(), addr.to_string())))
    }

    fn launch(binary: &Path, dir: &Path, spec: NodeSpec, netns: Option<(String, String)>) -> FerroniNode {
        let config_path = dir.join("ferroni.yml");
        let mut yaml = spec.yaml(dir);
        if let Some((_, addr)) = &netns {
            for port in [spec.api_port, spec.pg_port] {
                yaml = yaml.replace(&format!("127.0.0.1:{port}"), &format!("{addr}:{port}"));
            }
        }
        fs::write(&config_path, yaml).expect("write config");
        chown_postgres(&config_path);
        let mut node = FerroniNode {
            log_path: dir.join("ferroni.log"),
            config_path,
            dir: dir.to_path_buf(),
            binary: ferroni_binary(binary),
            spec,
            child: None,
            netns,
        };
        node.restart();
        node
    }

    /// Starts the daemon again with the same config (after `stop`, `sigterm` or `kill9`).
    pub fn restart(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open log");
        // `ip netns exec` and `setpriv` both exec, so the child's pid is the daemon's.
        let mut cmd = match &self.netns {
            Some((name, _)) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", name])
                    .args(["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"])
                    .arg(&self.binary)
                    .env("HOME", &self.dir);
                cmd
            }
            None => Command::new(&self.binary),
        };
        cmd.arg(&self.config_path)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .env(
                "RUST_LOG",
                "warn,ferroni=debug,ferroni_postgres=debug,ferroni_dcs=info,ferroni_api=info",
            )
            .process_group(0);
        if let (None, Some((uid, gid))) = (&self.netns, postgres_ids()) {
            cmd.uid(uid).gid(gid).env("HOME", &self.dir);
        }
        self.child = Some(cmd.spawn().expect("start ferroni"));
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where PostgreSQL listens, as seen from the node's own network namespace.
    pub fn target(&self) -> PgTarget {
        match &self.netns {
            Some((name, addr)) => PgTarget::in_netns(name, addr, self.spec.pg_port),
            None => PgTarget::local(self.spec.pg_port),
        }
    }

    pub fn api_url(&self, path: &str) -> String {
        let host = self.netns.as_ref().map_or("127.0.0.1", |(_, addr)| addr.as_str());
        format!("http://{host}:{}{}", self.spec.api_port, path)
    }

    /// GET on the REST API (sent from inside the node's namespace, if it has one): status code and
    /// JSON body (Null when there is none).
    pub fn api_get(&self, path: &str) -> Result<(u16, Value)> {
        match &self.netns {
            Some((name, _)) => {
                let name = name.clone();
                http_request_via("GET", &self.api_url(path), None, move |addr, timeout| {
                    crate::netns::in_netns(&name, move || std::net::TcpStream::connect_timeout(&addr, timeout))
                })
            }
            None => http_request("GET", &self.api_url(path), None),
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    }

    pub fn sigterm(&self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    /// Kills the daemon with SIGKILL; its Postgres keeps running (it has its own session).
    pub fn kill9(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        self.wait_exit(Duration::from_secs(5));
    }

    /// Waits for the daemon to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The postmaster pid from `postmaster.pid`, if the file exists.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Runs SQL through psql over TCP as the superuser; returns unaligned tuples-only output.
    pub fn psql(&self, sql: &str) -> Result<String> {
        match &self.netns {
            Some(_) => crate::writable::psql_at(&self.target(), sql, Duration::from_secs(10)),
            None => psql(self.spec.pg_port, sql),
        }
    }

    /// Waits until `/patroni` reports the given role and state `running`.
    pub fn wait_role(&self, role: &str, timeout: Duration) {
        wait_until(
            &format!("{} to run as {role}", self.spec.name),
            timeout,
            || matches!(self.api_get("/patroni"), Ok((_, v)) if v["role"] == role && v["state"] == "running"),
        )
        .unwrap_or_else(|e| panic!("{e}\n--- log of {} ---\n{}", self.spec.name, tail(&self.log(), 60)));
    }
}

impl Drop for FerroniNode {
    fn drop(&mut self) {
        self.sigterm();
        if self.wait_exit(Duration::from_secs(10)).is_none() {
            self.signal(nix::sys::signal::Signal::SIGKILL);
            self.wait_exit(Duration::from_secs(5));
        }
        // A daemon killed with SIGKILL leaves its Postgres running: stop it too.
        if let Some(pid) = self.postmaster_pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGQUIT);
        }
        if std::thread::panicking() {
            eprintln!("--- log of {} ---\n{}", self.spec.name, tail(&self.log(), 80));
        }
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn psql(port: u16, sql: &str) -> Result<String> {
    let out = Command::new("/usr/lib/postgresql/15/bin/psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", SUPERUSER_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "2")
        .output()
        .context("run psql")?;
    if !out.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A minimal blocking HTTP/1.1 client, so tests need no runtime: method, URL, optional JSON body.
/// The answer is its status and its body as JSON, or as a JSON string when it is plain text.
pub fn http_request(method: &str, url: &str, body: Option<&str>) -> Result<(u16, Value)> {
    http_request_via(method, url, body, |addr, timeout| {
        std::net::TcpStream::connect_timeout(&addr, timeout)
    })
}

/// [`http_request`] over a connection made by `connect` (e.g. from inside a network namespace).
pub fn http_request_via(
    method: &str,
    url: &str,
    body: Option<&str>,
    connect: impl FnOnce(std::net::SocketAddr, Duration) -> std::io::Result<std::net::TcpStream>,
) -> Result<(u16, Value)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").context("only http:// URLs")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let addr: std::net::SocketAddr = host.parse().context("host:port")?;
    let mut stream = connect(addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let code: u16 = text.split_whitespace().nth(1).context("status line")?.parse()?;
    let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let payload = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(payload)
    } else {
        payload.to_string()
    };
    let value = serde_json::from_str(&payload).unwrap_or_else(|_| Value::String(payload.trim().to_string()));
    Ok((code, value))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Whether `pid` runs. A zombie counts as gone: in some sandboxes PID 1 never reaps the postmasters
/// that pg_ctl daemonized.
pub fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}
