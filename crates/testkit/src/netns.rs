//! Network namespaces for partition tests: namespaces the test creates and deletes (guards), veth
//! pairs and a bridge in a "switch" namespace whose port state turns a link into a black hole, a TCP
//! forwarder that makes a server of the root namespace (etcd on 127.0.0.1) reachable at an address
//! inside a namespace, and ferroni nodes run inside a namespace (`ip netns exec NS setpriv …`).
//!
//! Only 10.x addresses inside namespaces created here are used; the root namespace gets no address,
//! route or link. Every namespace is deleted when its guard drops (the veth ends inside go with it);
//! namespaces left behind by a test process that died without unwinding (their names carry its pid)
//! are deleted by the next [`Netns::create`].
//!
//! Failure: [`unavailable`] says why namespaces cannot be used here (not root, no `ip`/`bridge`/
//! `setpriv`, `ip netns add` refused), so a test can skip with that reason instead of failing. Any
//! later `ip` failure is an error naming the command and its stderr.

use crate::node::{http_request_via, postgres_ids};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Names of namespaces made here: `fzn<pid>-<suffix>`.
const PREFIX: &str = "fzn";

/// Why network namespaces cannot be used on this machine right now, or `None` when they can.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root".into());
    }
    if postgres_ids().is_none() {
        return Some("no postgres OS user".into());
    }
    for tool in ["ip", "bridge", "setpriv"] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    let probe = format!("{PREFIX}{}-probe", std::process::id());
    match ip(&["netns", "add", &probe]) {
        Ok(_) => {
            let veth = ip(&["-n", &probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1"]);
            let _ = ip(&["netns", "del", &probe]);
            veth.err().map(|e| format!("veth pairs are not permitted: {e:#}"))
        }
        Err(e) => Some(format!("`ip netns add` is not permitted: {e:#}")),
    }
}

/// Runs `ip ARGS`; the error carries the command and its stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace of this test process; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `fzn<pid>-<suffix>` with its loopback up.
    pub fn create(suffix: &str) -> Result<Netns> {
        remove_leftovers();
        let name = format!("{PREFIX}{}-{suffix}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `ip netns exec NAME PROGRAM`, to be completed by the caller.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `f` on a thread that has entered this namespace: sockets it creates live there.
    pub fn enter<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        in_netns(&self.name, f)
    }

    /// A TCP connection made from inside this namespace.
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
        self.enter(move || TcpStream::connect_timeout(&addr, timeout))
    }

    /// An HTTP request sent from inside this namespace (see [`crate::node::http_request`]).
    pub fn http_request(&self, method: &str, url: &str, body: Option<&str>) -> Result<(u16, Value)> {
        let name = self.name.clone();
        http_request_via(method, url, body, move |addr, timeout| {
            in_netns(&name, move || TcpStream::connect_timeout(&addr, timeout))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("netns: could not delete {}: {e:#}", self.name);
        }
    }
}

/// Deletes namespaces named by this module for processes that no longer exist.
fn remove_leftovers() {
    let Ok(list) = ip(&["netns", "list"]) else { return };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else { continue };
        let Ok(pid) = pid.parse::<i32>() else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Runs `f` on a new thread that entered the namespace `name` (only that thread moves).
pub fn in_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let file = fs::File::open(&path)?;
        // SAFETY: setns on a namespace file descriptor we own; it changes only this thread's
        // network namespace, and the thread ends when `f` returns.
        let rc = unsafe { nix::libc::setns(file.as_raw_fd(), nix::libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("namespace thread panicked")))
}

/// A switch: a namespace holding bridges. Hosts (namespaces) are wired to a bridge by veth pairs;
/// disabling a host's bridge port drops its packets silently (a black hole, carrier stays up), and
/// enabling it heals the link.
pub struct Switch {
    ns: Netns,
}

impl Switch {
    pub fn create(suffix: &str) -> Result<Switch> {
        Ok(Switch {
            ns: Netns::create(suffix)?,
        })
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    pub fn add_bridge(&self, bridge: &str) -> Result<()> {
        self.ns.ip(&["link", "add", bridge, "type", "bridge"])?;
        self.ns.ip(&["link", "set", bridge, "up"])?;
        Ok(())
    }

    /// Wires `host` to `bridge`: port `port` in the switch, interface `ifname` with `cidr` (e.g.
    /// `10.252.0.2/24`) in the host.
    pub fn attach(&self, bridge: &str, port: &str, host: &Netns, ifname: &str, cidr: &str) -> Result<()> {
        self.ns.ip(&[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            host.name(),
        ])?;
        self.ns.ip(&["link", "set", port, "master", bridge])?;
        self.ns.ip(&["link", "set", port, "up"])?;
        host.ip(&["addr", "add", cidr, "dev", ifname])?;
        host.ip(&["link", "set", ifname, "up"])?;
        Ok(())
    }

    /// Drops every packet through `port` (bridge port state disabled).
    pub fn block(&self, port: &str) -> Result<()> {
        run(
            "bridge",
            &["-n", self.ns.name(), "link", "set", "dev", port, "state", "0"],
        )
        .map(|_| ())
    }

    /// Forwards through `port` again (state forwarding).
    pub fn unblock(&self, port: &str) -> Result<()> {
        run(
            "bridge",
            &["-n", self.ns.name(), "link", "set", "dev", port, "state", "3"],
        )
        .map(|_| ())
    }
}

/// Wires two namespaces directly with a veth pair (`a_if` with `a_cidr`, `b_if` with `b_cidr`).
pub fn veth_pair(a: &Netns, a_if: &str, a_cidr: &str, b: &Netns, b_if: &str, b_cidr: &str) -> Result<()> {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    a.ip(&["addr", "add", a_cidr, "dev", a_if])?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["addr", "add", b_cidr, "dev", b_if])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}

/// A TCP forwarder listening at an address inside a namespace and connecting, from this process's
/// own namespace, to `target` (e.g. etcd on 127.0.0.1). Stopped, with its connections closed, on
/// drop. A black-holed link between a client and the listener stays a black hole: the forwarder
/// only copies bytes.
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    pub fn start(ns: &Netns, listen: SocketAddr, target: SocketAddr) -> Result<Forwarder> {
        let listener = ns
            .enter(move || TcpListener::bind(listen))
            .with_context(|| format!("bind {listen} in {}", ns.name()))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, conns, accepted) = (stop.clone(), conns.clone(), accepted.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            let _ = client.set_nonblocking(false);
                            match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
                                Ok(server) => splice(client, server, &conns),
                                Err(_) => drop(client),
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        Ok(Forwarder {
            stop,
            conns,
            accepted,
            thread: Some(thread),
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// Copies bytes both ways on two threads; either side closing closes both.
fn splice(client: TcpStream, server: TcpStream, conns: &Arc<Mutex<Vec<TcpStream>>>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let pairs = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
        conns.lock().unwrap().extend([c, s]);
    }
    for pair in pairs {
        if let (Ok(mut from), Ok(mut to)) = pair {
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match from.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
            });
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}
