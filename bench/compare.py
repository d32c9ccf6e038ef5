#!/usr/bin/env python3
"""Side-by-side benchmark of ferroni against Patroni (and against doing it by hand).

Not a test: it measures, from the outside, the same scenarios against both daemons with the same
etcd, the same PostgreSQL 15, the same generated YAML file and the same settings (ttl 20,
loop_wait 1, retry_timeout 4):

  1. start to writable primary (single node, empty cluster)  vs  initdb + pg_ctl start by hand
  2. replica creation against a ~1 GiB leader (pgbench scale 70)  vs  pg_basebackup by hand
  3. failover: kill -9 of the leader's daemon and postmaster until a replica accepts writes
  4. switchover (POST /switchover) until the candidate accepts writes
  5. idle daemon RSS and CPU seconds over 60 s, per node of a 3-node cluster
  6. GET /primary and GET /patroni throughput and latency (wrk, 4 connections, 10 s)

"writable" = a successful INSERT through psql over TCP, polled every 50 ms; "replica ready" =
pg_stat_wal_receiver.status = 'streaming' on the new node. Prints a Markdown table of medians and
writes it to bench/results/<timestamp>.{md,json} (daemon logs in bench/results/<timestamp>-logs/).

Run through bench/run.sh (which installs wrk, builds ferroni and the Patroni virtualenv), as root:
the daemons and PostgreSQL run as the postgres user. Standard library only.
"""

import argparse
import base64
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PGBIN = "/usr/lib/postgresql/15/bin"
ETCD = "/usr/bin/etcd"
PG_USER = "postgres"
SUPER_USER, SUPER_PW = "postgres", "bench-super-pw"
REPL_USER, REPL_PW = "replicator", "bench-repl-pw"
TTL, LOOP_WAIT, RETRY_TIMEOUT = 20, 1, 4
POLL = 0.05
SYSTEMS = ("ferroni", "patroni")
# pg_hba method for TCP connections (--hba-method). md5 accepts md5- and SCRAM-stored passwords.
HBA_METHOD = "md5"
WRITE_SQL = "CREATE TABLE IF NOT EXISTS bench_w(x int); INSERT INTO bench_w VALUES (1)"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# --------------------------------------------------------------------------------------------
# Process and temp-dir bookkeeping: everything started is registered and torn down in cleanup().
# --------------------------------------------------------------------------------------------


class Registry:
    def __init__(self):
        self.procs = []  # Popen objects (etcd, daemons), each in its own session
        self.data_dirs = []  # PostgreSQL data dirs whose postmaster.pid we kill at the end
        self.lock = threading.Lock()

    def add_proc(self, p):
        with self.lock:
            self.procs.append(p)

    def add_data_dir(self, d):
        with self.lock:
            self.data_dirs.append(d)

    def cleanup(self):
        with self.lock:
            procs, dirs = list(self.procs), list(self.data_dirs)
        for p in procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 15
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    p.kill()
                    p.wait(timeout=5)
                except Exception:
                    pass
        for d in dirs:
            kill_postmaster(d, signal.SIGQUIT)
        time.sleep(0.5)
        for d in dirs:
            kill_postmaster(d, signal.SIGKILL)
        with self.lock:
            self.procs = [p for p in self.procs if p.poll() is None]
            self.data_dirs = []


REG = Registry()


def postmaster_pid(data_dir):
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as f:
            pid = int(f.readline().strip())
    except (OSError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
    except OSError:
        return None
    # a reused pid must not be killed: the postmaster's argv names the postgres binary
    return pid if cmd and b"postgres" in os.path.basename(cmd[0]) else None


def kill_postmaster(data_dir, sig):
    pid = postmaster_pid(data_dir)
    if pid:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


_taken_ports = set()


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _taken_ports and port < 60000:
            _taken_ports.add(port)
            return port


def pg_ids():
    import pwd

    pw = pwd.getpwnam(PG_USER)
    return pw.pw_uid, pw.pw_gid


def mkdir_pg(path):
    os.makedirs(path, exist_ok=True)
    uid, gid = pg_ids()
    os.chown(path, uid, gid)
    os.chmod(path, 0o750)
    return path


def run_as_pg(cmd, **kw):
    """Run a command as the postgres user (like setpriv --reuid=postgres --init-groups)."""
    uid, gid = pg_ids()
    env = kw.pop("env", None) or base_env(kw.get("cwd") or "/tmp")
    return subprocess.run(cmd, user=uid, group=gid, extra_groups=[], env=env, **kw)


def run_pg_step(cmd, **kw):
    """run_as_pg for a timed by-hand step: output discarded, a failure raised with its stderr."""
    r = run_as_pg(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{os.path.basename(cmd[0])} exited with {r.returncode}: {r.stderr.strip()[-500:]}")


def base_env(home):
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }


# --------------------------------------------------------------------------------------------
# Tiny YAML emitter (the same file is fed to ferroni and Patroni) and the node configuration.
# --------------------------------------------------------------------------------------------


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if s == "" or re.search(r": |:$| #|[{}\[\],&*!|>'\"%@`]|^[\s#?:-]|\s$", s) \
            or re.fullmatch(r"[-+.\d_:eE]+", s) or s.lower() in (
        "true", "false", "yes", "no", "on", "off", "null", "~"
    ):
        return "'" + s.replace("'", "''") + "'"
    return s


def to_yaml(obj, indent=0):
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 1))
            else:
                out.append(f"{pad}{k}: {_scalar(v) if not isinstance(v, (dict, list)) else '{}' if isinstance(v, dict) else '[]'}")
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict):
                items = list(v.items())
                k0, v0 = items[0]
                first = to_yaml({k0: v0}, indent + 1).lstrip()
                out.append(f"{pad}- {first}")
                if len(items) > 1:
                    out.append(to_yaml(dict(items[1:]), indent + 1))
            else:
                out.append(f"{pad}- {_scalar(v)}")
    return "\n".join(out)


def node_config(scope, name, etcd_port, rest_port, pg_port, node_dir):
    return {
        "scope": scope,
        "namespace": "/service/",
        "name": name,
        "restapi": {"listen": f"127.0.0.1:{rest_port}", "connect_address": f"127.0.0.1:{rest_port}"},
        "etcd3": {"hosts": f"127.0.0.1:{etcd_port}"},
        "bootstrap": {
            "dcs": {
                "ttl": TTL,
                "loop_wait": LOOP_WAIT,
                "retry_timeout": RETRY_TIMEOUT,
                "maximum_lag_on_failover": 1048576,
                "postgresql": {"use_pg_rewind": True, "use_slots": True},
            },
            "initdb": [{"encoding": "UTF8"}, "data-checksums"],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{pg_port}",
            "connect_address": f"127.0.0.1:{pg_port}",
            "data_dir": os.path.join(node_dir, "data"),
            "bin_dir": PGBIN,
            "pgpass": os.path.join(node_dir, "pgpass"),
            "authentication": {
                "superuser": {"username": SUPER_USER, "password": SUPER_PW},
                "replication": {"username": REPL_USER, "password": REPL_PW},
            },
            "parameters": {"unix_socket_directories": node_dir},
            "pg_hba": [
                "local all all trust",
                f"host all all 127.0.0.1/32 {HBA_METHOD}",
                f"host replication {REPL_USER} 127.0.0.1/32 {HBA_METHOD}",
            ],
        },
    }


# --------------------------------------------------------------------------------------------
# Outside observation: psql over TCP, the REST API, etcd's leader key.
# --------------------------------------------------------------------------------------------


def psql(port, sql, timeout=5, user=SUPER_USER, password=SUPER_PW):
    env = dict(base_env("/tmp"), PGPASSWORD=password, PGCONNECT_TIMEOUT="1")
    try:
        r = subprocess.run(
            [f"{PGBIN}/psql", "-X", "-w", "-q", "-At", "-h", "127.0.0.1", "-p", str(port), "-U", user,
             "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql],
            env=env, capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False, ""
    return r.returncode == 0, r.stdout.strip()


def writable(port):
    return psql(port, WRITE_SQL)[0]


def streaming(port):
    ok, out = psql(port, "SELECT status FROM pg_stat_wal_receiver")
    return ok and out == "streaming"


def wait_until(pred, timeout, what, interval=POLL):
    """Poll pred every `interval` s; returns the monotonic time at which it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def http_json(url, method="GET", body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            code = r.status
    except urllib.error.HTTPError as e:
        raw, code = e.read(), e.code
    except (urllib.error.URLError, OSError, ValueError):
        return None, None
    try:
        return code, json.loads(raw)
    except ValueError:
        return code, raw.decode(errors="replace")


class LeaderKeyWatch(threading.Thread):
    """Watches /service/<scope>/leader through etcd's v3 JSON gateway; records (monotonic, value or
    None on delete) for every change, as it arrives."""

    def __init__(self, etcd_port, scope):
        super().__init__(daemon=True)
        self.port = etcd_port
        self.key = base64.b64encode(f"/service/{scope}/leader".encode()).decode()
        self.events = []
        self.conn = None
        self.ready = threading.Event()

    def run(self):
        import http.client

        try:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=None)
            self.conn.request("POST", "/v3/watch", json.dumps({"create_request": {"key": self.key}}))
            resp = self.conn.getresponse()
            while True:
                line = resp.readline()
                if not line:
                    break
                now = time.monotonic()
                try:
                    result = json.loads(line).get("result", {})
                except ValueError:
                    continue
                if result.get("created"):
                    self.ready.set()
                for ev in result.get("events", []):
                    if ev.get("type") == "DELETE":
                        self.events.append((now, None))
                    else:
                        self.events.append((now, base64.b64decode(ev["kv"].get("value", "")).decode()))
        except (OSError, ValueError):
            pass
        finally:
            self.ready.set()

    def start(self):
        super().start()
        self.ready.wait(5)

    def stop(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass
        self.join(5)


# --------------------------------------------------------------------------------------------
# etcd, daemons, nodes
# --------------------------------------------------------------------------------------------


class Etcd:
    def __init__(self, workdir):
        self.dir = tempfile.mkdtemp(prefix="etcd-", dir=workdir)
        self.port, peer = free_port(), free_port()
        self.log = open(os.path.join(self.dir, "etcd.log"), "w")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "bench", "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", f"http://127.0.0.1:{self.port}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"bench=http://127.0.0.1:{peer}"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        REG.add_proc(self.proc)
        wait_until(lambda: http_json(f"http://127.0.0.1:{self.port}/health")[0] == 200, 30, "etcd", 0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Node:
    """One ferroni or Patroni node: its directory, generated YAML and daemon process."""

    def __init__(self, bench, system, scope, name, etcd):
        self.bench, self.system, self.scope, self.name, self.etcd = bench, system, scope, name, etcd
        self.dir = mkdir_pg(os.path.join(bench.workdir, f"{scope}-{name}"))
        self.data_dir = os.path.join(self.dir, "data")
        self.rest_port, self.pg_port = free_port(), free_port()
        self.rest = f"http://127.0.0.1:{self.rest_port}"
        self.cfg_path = os.path.join(self.dir, "node.yml")
        with open(self.cfg_path, "w") as f:
            f.write(to_yaml(node_config(scope, name, etcd.port, self.rest_port, self.pg_port, self.dir)) + "\n")
        uid, gid = pg_ids()
        os.chown(self.cfg_path, uid, gid)
        os.chmod(self.cfg_path, 0o600)
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.proc = None
        REG.add_data_dir(self.data_dir)

    def cmd(self):
        return [self.bench.ferroni, self.cfg_path] if self.system == "ferroni" else [self.bench.patroni, self.cfg_path]

    def start(self):
        uid, gid = pg_ids()
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.cmd(), user=uid, group=gid, extra_groups=[], cwd=self.dir, env=base_env(self.dir),
            stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        REG.add_proc(self.proc)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def postmaster(self):
        return postmaster_pid(self.data_dir)

    def status(self):
        return http_json(f"{self.rest}/patroni", timeout=2)[1]

    def stop(self, save_log_as=None):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        kill_postmaster(self.data_dir, signal.SIGQUIT)
        for _ in range(50):
            if not postmaster_pid(self.data_dir):
                break
            time.sleep(0.1)
        kill_postmaster(self.data_dir, signal.SIGKILL)
        if self.proc is not None:
            self.logf.close()
        if save_log_as:
            self.bench.save_log(self.log_path, save_log_as)
            # ferroni sends the postmaster's log to <data_dir>/postmaster.log (Patroni: to its stdout)
            pglog = os.path.join(self.data_dir, "postmaster.log")
            if os.path.exists(pglog):
                self.bench.save_log(pglog, save_log_as.replace(".log", "-postgres.log"))
        shutil.rmtree(self.dir, ignore_errors=True)


def process_tree(root_pid):
    """root_pid and its descendants that are not PostgreSQL processes (nor under one)."""
    children = {}
    comm = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                st = f.read()
        except OSError:
            continue
        rp = st.rindex(")")
        name = st[st.index("(") + 1:rp]
        ppid = int(st[rp + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        comm[int(entry)] = name
    out, stack = [], [root_pid]
    while stack:
        p = stack.pop()
        if p != root_pid and comm.get(p, "").startswith(("postgres", "postmaster")):
            continue
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def proc_cpu(pid):
    """(comm, utime+stime, cutime+cstime) in clock ticks, or None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    comm = st[st.index("(") + 1:st.rindex(")")]
    fields = st[st.rindex(")") + 2:].split()
    # fields[11..14] = utime stime cutime cstime (stat fields 14..17)
    return comm, int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def thread_runtimes(pid):
    """{tid: nanoseconds on CPU} of the process's live threads (/proc/<pid>/task/*/schedstat), or
    None when unreadable. Exact, where utime+stime comes in 10 ms ticks: too coarse for a 60 s
    window of a daemon that uses a few ticks in it."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[int(tid)] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
    return out


def own_cpu_seconds(before_ticks, now_ticks, threads_before, threads_now, hz):
    """CPU seconds of one process over the window: the exact per-thread runtimes when no thread
    exited meanwhile (an exited thread's time survives only in the ticks), else the ticks."""
    if threads_before is not None and threads_now is not None and set(threads_before) <= set(threads_now):
        return sum(ns - threads_before.get(tid, 0) for tid, ns in threads_now.items()) / 1e9, "schedstat"
    return (now_ticks - before_ticks) / hz, "ticks"


def mem_detail(pid):
    """VmRSS split (RssAnon/RssFile) and Pss (shared pages divided among their users), in KiB."""
    out = {}
    for path, keys in ((f"/proc/{pid}/status", ("VmRSS", "RssAnon", "RssFile")),
                       (f"/proc/{pid}/smaps_rollup", ("Pss",))):
        try:
            with open(path) as f:
                for line in f:
                    k = line.split(":")[0]
                    if k in keys:
                        out[k] = int(line.split()[1])
        except OSError:
            pass
    return out


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.runs = args.runs if args.runs else (1 if args.quick else 3)
        # An image's duration varies by ±10% from run to run, more than the target's 5% margin:
        # scenario 2 (3 s a run) takes more samples than the others.
        self.replica_runs = args.replica_runs if args.replica_runs else (self.runs if args.quick else max(self.runs, 7))
        self.scale = args.scale if args.scale else (5 if args.quick else 70)
        self.idle_s = args.idle if args.idle else (10 if args.quick else 60)
        self.wrk_s = args.wrk_duration if args.wrk_duration else (3 if args.quick else 10)
        self.settle_s = args.settle if args.settle is not None else (3 if args.quick else 10)
        self.scenarios = sorted({int(s) for s in args.scenarios.split(",") if s.strip()})
        self.workdir = mkdir_pg(tempfile.mkdtemp(prefix="ferroni-cmp-", dir="/tmp"))
        os.chmod(self.workdir, 0o755)
        bindir = os.path.join(self.workdir, "bin")
        os.makedirs(bindir)
        os.chmod(bindir, 0o755)
        # copy the binaries: a concurrent `cargo build` must not swap them under a running benchmark
        self.ferroni = os.path.join(bindir, "ferroni")
        shutil.copy2(args.ferroni, self.ferroni)
        os.chmod(self.ferroni, 0o755)
        # the daemon runs its fence from the program next to it (else from its own binary)
        fence = os.path.join(os.path.dirname(args.ferroni), "ferroni-fence")
        if os.path.exists(fence):
            shutil.copy2(fence, os.path.join(bindir, "ferroni-fence"))
            os.chmod(os.path.join(bindir, "ferroni-fence"), 0o755)
        self.patroni = args.patroni
        self.stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.results_dir = os.path.join(ROOT, "bench", "results")
        self.logs_dir = os.path.join(self.results_dir, f"{self.stamp}-logs")
        os.makedirs(self.logs_dir, exist_ok=True)
        self.samples = {}  # metric -> system -> [values]
        self.events = []  # per-run details for the JSON
        self.config_check = {}
        self.load = {"start": loadavg()}
        self.errors = []

    # ---- bookkeeping ----

    def add(self, metric, system, value):
        self.samples.setdefault(metric, {}).setdefault(system, []).append(value)

    def save_log(self, path, name):
        try:
            shutil.copy(path, os.path.join(self.logs_dir, name))
        except OSError:
            pass

    def order(self, run):
        # alternate who goes first, so a slow patch of machine load does not always hit the same one
        return SYSTEMS if run % 2 == 1 else tuple(reversed(SYSTEMS))

    def scope(self, system, scenario, run):
        return f"{system[0]}{scenario}r{run}-{os.getpid()}"

    # ---- configuration check: the same file for both ----

    def check_config(self):
        etcd = Etcd(self.workdir)
        try:
            self._check_config(etcd.port)
        finally:
            etcd.stop()

    def _check_config(self, etcd_port):
        rest, pgp = free_port(), free_port()
        d = mkdir_pg(os.path.join(self.workdir, "cfgcheck"))
        path = os.path.join(d, "node.yml")
        with open(path, "w") as f:
            f.write(to_yaml(node_config("cfgcheck", "node1", etcd_port, rest, pgp, d)) + "\n")
        os.chown(path, *pg_ids())
        self.sample_yaml = open(path).read()
        for system, cmd in (("ferroni", [self.ferroni, "--validate-config", path]),
                            ("patroni", [self.patroni, "--validate-config", path])):
            r = run_as_pg(cmd, capture_output=True, text=True, cwd=d)
            self.config_check[system] = {"exit": r.returncode, "output": (r.stdout + r.stderr).strip()}
            log(f"{system} --validate-config: exit {r.returncode} {(r.stdout + r.stderr).strip()[:300]}")
        shutil.rmtree(d, ignore_errors=True)

    # ---- scenario 1 ----

    def by_hand_start(self, run):
        d = mkdir_pg(os.path.join(self.workdir, f"hand1r{run}"))
        data = os.path.join(d, "data")
        REG.add_data_dir(data)
        port = free_port()
        pwfile = os.path.join(d, "pw")
        with open(pwfile, "w") as f:
            f.write(SUPER_PW + "\n")
        os.chown(pwfile, *pg_ids())
        def steps():
            run_pg_step([f"{PGBIN}/initdb", "-D", data, "-E", "UTF8", "--data-checksums", "-U", SUPER_USER,
                         f"--pwfile={pwfile}", "--auth-local=trust", f"--auth-host={HBA_METHOD}"],
                        cwd=d)
            run_pg_step([f"{PGBIN}/pg_ctl", "start", "-w", "-D", data, "-l", os.path.join(d, "pg.log"), "-o",
                         f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={d}"],
                        cwd=d)

        os.sync()
        t0 = time.monotonic()
        t1, _ = self.by_hand_polled(steps, lambda: writable(port), "by-hand primary writable")
        run_as_pg([f"{PGBIN}/pg_ctl", "stop", "-D", data, "-m", "immediate"], cwd=d,
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)
        return t1 - t0

    def by_hand_polled(self, steps, ready, what, timeout=120):
        """Runs the by-hand commands in a thread while this one polls `ready` every 50 ms from the
        start, exactly as for the daemons (the polling psql processes cost the same CPU in both)."""
        failure = []

        def run():
            try:
                steps()
            except Exception as e:  # noqa: BLE001 - reported below
                failure.append(e)

        th = threading.Thread(target=run, daemon=True)
        th.start()
        t1 = wait_until(lambda: ready() or bool(failure), timeout, what)
        th.join(timeout)
        if failure:
            raise RuntimeError(f"{what}: {failure[0]}")
        return t1, th

    def scenario1(self):
        log("== scenario 1: start to writable primary")
        for run in range(1, self.runs + 1):
            etcd = Etcd(self.workdir)
            try:
                whos = ("hand",) + SYSTEMS
                k = (run - 1) % 3  # rotate who goes first
                for who in whos[k:] + whos[:k]:
                    if who == "hand":
                        v = self.by_hand_start(run)
                    else:
                        node = Node(self, who, self.scope(who, 1, run), "node1", etcd)
                        os.sync()
                        t0 = time.monotonic()
                        node.start()
                        try:
                            t1 = wait_until(lambda: writable(node.pg_port) or not node.alive(), 120,
                                            f"{who} primary writable")
                            if not node.alive():
                                raise RuntimeError(f"{who} exited: see {node.log_path}")
                            # information only: when the REST API also says "primary" (leader lock held)
                            t2 = wait_until(lambda: http_json(f"{node.rest}/primary", timeout=1)[0] == 200, 60,
                                            f"{who} GET /primary 200")
                            self.add("start_primary_rest", who, t2 - t0)
                        finally:
                            node.stop(save_log_as=f"s1-r{run}-{who}.log")
                        v = t1 - t0
                    self.add("start_primary", who, v)
                    log(f"run {run}: {who} start to writable primary {v:.3f} s (load {loadavg()})")
            finally:
                etcd.stop()

    # ---- scenario 2 ----

    def by_hand_replica(self, leader, run):
        d = mkdir_pg(os.path.join(self.workdir, f"hand2r{run}"))
        data = os.path.join(d, "data")
        REG.add_data_dir(data)
        port = free_port()
        env = dict(base_env(d), PGPASSWORD=REPL_PW)
        psql(leader.pg_port, "CHECKPOINT")
        marks = {}

        def steps():
            run_pg_step([f"{PGBIN}/pg_basebackup", f"--pgdata={data}", "-X", "stream", "-R",
                         f"--dbname=host=127.0.0.1 port={leader.pg_port} user={REPL_USER}"],
                        cwd=d, env=env)
            marks["bb"] = time.monotonic()
            run_pg_step([f"{PGBIN}/pg_ctl", "start", "-w", "-D", data, "-l", os.path.join(d, "pg.log"), "-o",
                         f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={d} "
                         f"-c hba_file={leader.data_dir}/pg_hba.conf -c ident_file={leader.data_dir}/pg_ident.conf"],
                        cwd=d)

        os.sync()
        t0 = time.monotonic()
        t1, _ = self.by_hand_polled(steps, lambda: streaming(port), "by-hand replica streaming", 600)
        t_bb = marks["bb"]
        run_as_pg([f"{PGBIN}/pg_ctl", "stop", "-D", data, "-m", "immediate"], cwd=d,
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.save_log(os.path.join(d, "pg.log"), f"s2-r{run}-hand-replica-postgres.log")
        shutil.rmtree(d, ignore_errors=True)
        return t_bb - t0, t1 - t0

    def scenario2(self):
        log(f"== scenario 2: replica creation against a pgbench scale {self.scale} leader")
        etcd = Etcd(self.workdir)
        try:
            for i, system in enumerate(self.order(1)):
                self._scenario2(i, system, etcd)
        finally:
            etcd.stop()

    def _scenario2(self, i, system, etcd):
        """One leader per system (pgbench data); each run adds a replica, and by hand a copy, against it."""
        leader = Node(self, system, self.scope(system, 2, 0), "leader", etcd)
        try:
            leader.start()
            # fully bootstrapped (roles created, leader lock held), not only writable
            wait_until(lambda: writable(leader.pg_port)
                       and http_json(f"{leader.rest}/primary", timeout=1)[0] == 200, 120, f"{system} leader ready")
            t = time.monotonic()
            env = dict(base_env("/tmp"), PGPASSWORD=SUPER_PW)
            subprocess.run([f"{PGBIN}/pgbench", "-i", "-q", "-s", str(self.scale), "-h", "127.0.0.1",
                            "-p", str(leader.pg_port), "-U", SUPER_USER, "postgres"],
                           env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, size = psql(leader.pg_port, "SELECT pg_database_size('postgres')")
            self.leader_size_mib = int(size) / 1048576 if size.isdigit() else None
            log(f"{system} leader: pgbench -i -s {self.scale} in {time.monotonic() - t:.0f} s, "
                f"database {self.leader_size_mib:.0f} MiB")
            # The first image after pgbench -i was ~2 s slower than the rest whoever took it (the
            # leader's files not yet settled); an untimed one first keeps that out of the medians.
            bb, _ = self.by_hand_replica(leader, f"{system[0]}0")
            log(f"warm-up: by hand pg_basebackup {bb:.2f} s (not counted)")
            for run in range(1, self.replica_runs + 1):
                # alternate by hand before/after the daemon's replica
                steps = ("daemon", "hand") if (run + i) % 2 else ("hand", "daemon")
                for step in steps:
                    if step == "hand":
                        bb, total = self.by_hand_replica(leader, f"{system[0]}{run}")
                        # ferroni/by hand pairs samples taken against the same leader, interleaved
                        sfx = "" if system == "ferroni" else "_patroni_leader"
                        self.add("replica" + sfx, "hand", total)
                        self.add("basebackup_only" + sfx, "hand", bb)
                        log(f"run {run}: by hand pg_basebackup {bb:.2f} s, to streaming {total:.2f} s "
                            f"(load {loadavg()})")
                        continue
                    psql(leader.pg_port, "CHECKPOINT")
                    rep = Node(self, system, leader.scope, f"replica{run}", etcd)
                    os.sync()
                    t0 = time.monotonic()
                    rep.start()
                    try:
                        t1 = wait_until(lambda: streaming(rep.pg_port) or not rep.alive(), 900,
                                        f"{system} replica streaming")
                        if not rep.alive():
                            raise RuntimeError(f"{system} replica exited: see {rep.log_path}")
                    finally:
                        rep.stop(save_log_as=f"s2-r{run}-{system}-replica.log")
                    self.add("replica", system, t1 - t0)
                    if system == "patroni":
                        self.add("replica_patroni_leader", system, t1 - t0)
                    log(f"run {run}: {system} replica to streaming {t1 - t0:.2f} s (load {loadavg()})")
        finally:
            leader.stop(save_log_as=f"s2-{system}-leader.log")

    # ---- scenarios 3-6 on 3-node clusters ----

    def start_cluster(self, system, run, etcd):
        scope = self.scope(system, 3, run)
        nodes = [Node(self, system, scope, f"node{i}", etcd) for i in (1, 2, 3)]
        nodes[0].start()
        wait_until(lambda: writable(nodes[0].pg_port), 120, f"{system} node1 writable")
        nodes[1].start()
        nodes[2].start()
        self.wait_healthy(nodes, 180)
        return nodes

    def cluster_view(self, nodes):
        for n in nodes:
            if not n.alive():
                continue
            code, j = http_json(f"{n.rest}/cluster", timeout=2)
            if code == 200 and isinstance(j, dict):
                return j
        return None

    def wait_healthy(self, nodes, timeout):
        """One running leader, every other live node streaming (REST /cluster and pg_stat_wal_receiver)."""
        live = [n for n in nodes if n.alive()]

        def ok():
            j = self.cluster_view(live)
            if not j:
                return False
            members = {m.get("name"): m for m in j.get("members", [])}
            leaders = [m for m in members.values() if m.get("role") in ("leader", "primary")]
            if len(leaders) != 1 or leaders[0].get("state") != "running":
                return False
            for n in live:
                m = members.get(n.name)
                if not m:
                    return False
                if m is not leaders[0] and (m.get("state") != "streaming" or not streaming(n.pg_port)):
                    return False
            return True

        wait_until(ok, timeout, "a healthy cluster", 0.2)

    def leader_of(self, nodes):
        j = self.cluster_view(nodes)
        for m in (j or {}).get("members", []):
            if m.get("role") in ("leader", "primary"):
                return next(n for n in nodes if n.name == m["name"])
        raise RuntimeError("no leader")

    def idle(self, system, run, nodes):
        """RSS (mean of samples every 5 s) and CPU seconds over the window, of each daemon and its
        descendants that are not PostgreSQL; CPU includes children the daemon reaped meanwhile."""
        time.sleep(self.settle_s)
        leader = self.leader_of(nodes)
        roots = {n.name: n.proc.pid for n in nodes}
        start = {name: {p: proc_cpu(p) for p in process_tree(pid)} for name, pid in roots.items()}
        start_threads = {p: thread_runtimes(p) for procs in start.values() for p in procs}
        rss = {name: [] for name in roots}
        pss = {name: [] for name in roots}
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.idle_s:
            for name, pid in roots.items():
                mem = [mem_detail(p) for p in process_tree(pid)]
                rss[name].append(sum(m.get("VmRSS", 0) for m in mem))
                pss[name].append(sum(m.get("Pss", 0) for m in mem))
            time.sleep(min(5, max(0.0, self.idle_s - (time.monotonic() - t0))))
        elapsed = time.monotonic() - t0
        hz = os.sysconf("SC_CLK_TCK")
        scale = 60.0 / elapsed
        per_node = {}
        for name, pid in roots.items():
            detail, total = {}, 0.0
            for p in process_tree(pid):
                threads_now = thread_runtimes(p)
                now = proc_cpu(p)
                if now is None:
                    continue
                known = start[name].get(p)
                before = known or (now[0], 0, 0)
                # A process born in the window counts from zero, which its threads also do.
                own, method = own_cpu_seconds(before[1], now[1], start_threads.get(p) if known else {},
                                              threads_now, hz)
                reaped = ((now[2] - before[2]) if p == pid else 0) / hz
                detail[f"{p} {now[0]}"] = {"cpu_s": own * scale, "cpu_method": method,
                                           "reaped_children_cpu_s": reaped * scale, "mem_kib": mem_detail(p)}
                total += own + reaped
            per_node[name] = {
                "cpu_s": total * scale,
                "rss_mib": statistics.mean(rss[name]) / 1024,
                "pss_mib": statistics.mean(pss[name]) / 1024,
                "processes": detail,
                "role": "leader" if name == leader.name else "replica",
            }
        for name, v in per_node.items():
            self.add(f"idle_rss_{v['role']}", system, v["rss_mib"])
            self.add(f"idle_pss_{v['role']}", system, v["pss_mib"])
            self.add(f"idle_cpu_{v['role']}", system, v["cpu_s"])
        self.events.append({"scenario": 5, "system": system, "run": run, "window_s": elapsed, "nodes": per_node})
        log(f"run {run}: {system} idle: " + ", ".join(
            f"{k} ({v['role']}) {v['rss_mib']:.1f} MiB {v['cpu_s']:.3f} s CPU/60s [{len(v['processes'])} proc]"
            for k, v in per_node.items()) + f" (load {loadavg()})")

    def wrk(self, system, run, nodes):
        leader = self.leader_of(nodes)
        for path in ("primary", "patroni"):
            r = subprocess.run(["wrk", "-t2", "-c4", f"-d{self.wrk_s}s", "--latency", f"{leader.rest}/{path}"],
                               capture_output=True, text=True)
            out = r.stdout
            m = re.search(r"Requests/sec:\s+([\d.]+)", out)
            rps = float(m.group(1)) if m else 0.0
            lat = {}
            for pct in ("50", "99"):
                mm = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
                if mm:
                    lat[pct] = float(mm.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[mm.group(2)]
            non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
            errors = re.search(r"Socket errors:.*", out)
            self.add(f"rps_{path}", system, rps)
            if "50" in lat:
                self.add(f"p50_{path}", system, lat["50"])
            if "99" in lat:
                self.add(f"p99_{path}", system, lat["99"])
            self.events.append({"scenario": 6, "system": system, "run": run, "path": path, "rps": rps,
                                "latency_ms": lat, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
                                "socket_errors": errors.group(0) if errors else None})
            log(f"run {run}: {system} GET /{path}: {rps:.0f} req/s, p50 {fmt(lat.get('50'), 'ms', 3)}, "
                f"p99 {fmt(lat.get('99'), 'ms', 3)}"
                + (f", {non2xx.group(1)} non-2xx" if non2xx else "") + (f", {errors.group(0)}" if errors else ""))

    def poll_writable(self, candidates, timeout):
        """Polls every candidate in its own thread; returns (monotonic time, node) of the first write."""
        won = []
        done = threading.Event()

        def poll(n):
            deadline = time.monotonic() + timeout
            while not done.is_set() and time.monotonic() < deadline:
                if writable(n.pg_port):
                    won.append((time.monotonic(), n))
                    done.set()
                    return
                time.sleep(POLL)

        threads = [threading.Thread(target=poll, args=(n,), daemon=True) for n in candidates]
        for t in threads:
            t.start()
        return done, won, threads

    def key_breakdown(self, watch, t0, old, new):
        gone = next((t - t0 for t, v in watch.events if t >= t0 and v is None), None)
        taken = next((t - t0 for t, v in watch.events if t >= t0 and v == new), None)
        return gone, taken

    def switchover(self, system, run, nodes, etcd):
        self.wait_healthy(nodes, 120)
        leader = self.leader_of(nodes)
        cand = next(n for n in nodes if n is not leader)
        watch = LeaderKeyWatch(etcd.port, leader.scope)
        watch.start()
        time.sleep(0.2)
        done, won, threads = self.poll_writable([cand], 60)
        t0 = time.monotonic()
        wall0 = time.time()
        code, body = http_json(f"{leader.rest}/switchover", "POST",
                               {"leader": leader.name, "candidate": cand.name}, timeout=60)
        t_resp = time.monotonic() - t0
        done.wait(60)
        watch.stop()
        if not won:
            raise RuntimeError(f"{system} switchover: {cand.name} never accepted writes "
                               f"(POST /switchover -> {code} {body})")
        v = won[0][0] - t0
        gone, taken = self.key_breakdown(watch, t0, leader.name, cand.name)
        self.add("switchover", system, v)
        if gone is not None:
            self.add("switchover_key_released", system, gone)
        if taken is not None:
            self.add("switchover_key_taken", system, taken)
            self.add("switchover_key_to_writable", system, v - taken)
        self.events.append({"scenario": 4, "system": system, "run": run, "seconds": v, "post_status": code,
                            "post_response": body, "post_returned_after_s": t_resp, "wall_start": wall0,
                            "leader_key_released_after_s": gone, "leader_key_taken_after_s": taken,
                            "from": leader.name, "to": cand.name})
        log(f"run {run}: {system} switchover {leader.name}->{cand.name}: writable after {v:.3f} s "
            f"(POST -> {code} after {t_resp:.2f} s; leader key released {fmt(gone)}, taken {fmt(taken)}) "
            f"(load {loadavg()})")

    def failover(self, system, run, nodes, etcd):
        try:
            self.wait_healthy(nodes, 120)
        except TimeoutError:
            log(f"run {run}: {system}: cluster not fully healthy before failover; going on")
        leader = self.leader_of(nodes)
        others = [n for n in nodes if n is not leader and n.alive()]
        pm = leader.postmaster()
        watch = LeaderKeyWatch(etcd.port, leader.scope)
        watch.start()
        time.sleep(0.2)
        done, won, threads = self.poll_writable(others, TTL * 4)
        t0 = time.monotonic()
        wall0 = time.time()
        os.kill(leader.proc.pid, signal.SIGKILL)
        if pm:
            os.kill(pm, signal.SIGKILL)
        done.wait(TTL * 4)
        watch.stop()
        if not won:
            raise RuntimeError(f"{system} failover: no replica accepted writes within {TTL * 4} s")
        v = won[0][0] - t0
        gone, taken = self.key_breakdown(watch, t0, leader.name, won[0][1].name)
        self.add("failover", system, v)
        if gone is not None:
            self.add("failover_key_expired", system, gone)
        if taken is not None:
            self.add("failover_key_taken", system, taken)
            self.add("failover_key_to_writable", system, v - taken)
        self.events.append({"scenario": 3, "system": system, "run": run, "seconds": v, "wall_kill": wall0,
                            "leader_key_expired_after_s": gone, "leader_key_taken_after_s": taken,
                            "killed": leader.name, "new_leader": won[0][1].name})
        log(f"run {run}: {system} failover (kill -9 {leader.name}): {won[0][1].name} writable after {v:.3f} s "
            f"(leader key expired {fmt(gone)}, taken {fmt(taken)}) (load {loadavg()})")

    def scenario_cluster(self):
        todo = [s for s in (5, 6, 4, 3) if s in self.scenarios]
        log(f"== scenarios {', '.join(map(str, sorted(todo)))} on 3-node clusters")
        for run in range(1, self.runs + 1):
            etcd = Etcd(self.workdir)
            try:
                for system in self.order(run):
                    t = time.monotonic()
                    nodes = self.start_cluster(system, run, etcd)
                    log(f"run {run}: {system} 3-node cluster healthy in {time.monotonic() - t:.1f} s")
                    try:
                        for s in todo:
                            try:
                                {5: self.idle, 6: self.wrk}.get(s, lambda *a: None)(system, run, nodes)
                                if s == 4:
                                    self.switchover(system, run, nodes, etcd)
                                if s == 3:
                                    self.failover(system, run, nodes, etcd)
                            except (RuntimeError, TimeoutError, StopIteration) as e:
                                self.errors.append(f"scenario {s} run {run} {system}: {e}")
                                log(f"ERROR scenario {s} run {run} {system}: {e}")
                    finally:
                        for n in nodes:
                            n.stop(save_log_as=f"s3-6-r{run}-{system}-{n.name}.log")
            finally:
                etcd.stop()

    # ---- report ----

    def median(self, metric, system):
        v = self.samples.get(metric, {}).get(system)
        return statistics.median(v) if v else None

    def rows(self):
        F, P, H = "ferroni", "patroni", "hand"
        spec = [
            # (scenario, label, metric, unit, target kind, target value)
            (1, "start to writable primary", "start_primary", "s", "hand", 1.2),
            (1, "└ start until GET /primary answers 200", "start_primary_rest", "s", None, None),
            (2, "replica to streaming", "replica", "s", "hand", 1.05),
            (2, "└ pg_basebackup alone", "basebackup_only", "s", None, None),
            (2, "└ by hand against the Patroni-managed leader", "replica_patroni_leader", "s", None, None),
            (3, "failover (kill -9 leader daemon + postmaster → replica writable)", "failover", "s", "abs", TTL + 1),
            (3, "└ kill → leader key expired in etcd", "failover_key_expired", "s", None, None),
            (3, "└ kill → new leader key in etcd", "failover_key_taken", "s", None, None),
            (3, "└ new leader key → writable", "failover_key_to_writable", "s", None, None),
            (4, "switchover (POST /switchover → candidate writable)", "switchover", "s", "abs", 1.5),
            (4, "└ POST → old leader key released", "switchover_key_released", "s", None, None),
            (4, "└ POST → candidate holds leader key", "switchover_key_taken", "s", None, None),
            (4, "└ candidate holds leader key → writable", "switchover_key_to_writable", "s", None, None),
            (5, "idle RSS, leader", "idle_rss_leader", "MiB", "patroni_le", 1 / 5),
            (5, "idle RSS, replica", "idle_rss_replica", "MiB", "patroni_le", 1 / 5),
            (5, "└ idle PSS, leader (shared pages split)", "idle_pss_leader", "MiB", None, None),
            (5, "└ idle PSS, replica", "idle_pss_replica", "MiB", None, None),
            (5, "idle CPU over 60 s, leader", "idle_cpu_leader", "s", "patroni_le", 1 / 5),
            (5, "idle CPU over 60 s, replica", "idle_cpu_replica", "s", "patroni_le", 1 / 5),
            (6, "GET /primary throughput", "rps_primary", "req/s", "patroni_ge", 10),
            (6, "└ GET /primary latency p50", "p50_primary", "ms", None, None),
            (6, "└ GET /primary latency p99", "p99_primary", "ms", None, None),
            (6, "GET /patroni throughput", "rps_patroni", "req/s", "patroni_ge", 10),
            (6, "└ GET /patroni latency p50", "p50_patroni", "ms", None, None),
            (6, "└ GET /patroni latency p99", "p99_patroni", "ms", None, None),
        ]
        out = []
        for sc, label, metric, unit, kind, tv in spec:
            if metric not in self.samples:
                continue
            h, f, p = (self.median(metric, s) for s in (H, F, P))
            fp = f / p if f is not None and p else None
            fh = f / h if f is not None and h else None
            target, met = "", None
            if kind == "hand":
                target = f"≤ {tv} × by hand"
                met = fh is not None and fh <= tv
            elif kind == "abs":
                target = f"≤ {tv} s"
                met = f is not None and f <= tv
            elif kind == "patroni_le":
                target = "≤ 1/5 of Patroni"
                met = fp is not None and fp <= tv
            elif kind == "patroni_ge":
                target = f"≥ {tv} × Patroni"
                met = fp is not None and fp >= tv
            out.append({
                "scenario": sc, "label": label, "metric": metric, "unit": unit,
                "by_hand": h, "ferroni": f, "patroni": p, "ferroni_over_patroni": fp, "ferroni_over_by_hand": fh,
                "target": target, "met": met if kind else None,
                "samples": self.samples.get(metric, {}),
            })
        return out

    def report(self, versions):
        self.load["end"] = loadavg()
        rows = self.rows()
        now = datetime.datetime.now().astimezone()

        def num(v, unit):
            if v is None:
                return "–"
            if unit == "req/s":
                return f"{v:,.0f}"
            if unit == "MiB":
                return f"{v:.1f}"
            return f"{v:.3f}" if v < 10 else f"{v:.2f}"

        def ratio(v):
            return "–" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")

        lines = [
            f"# ferroni vs Patroni — {now.strftime('%Y-%m-%d %H:%M %Z')}",
            "",
            f"- machine: {os.cpu_count()} cores, {platform_desc()}; load average at start {self.load['start']}, "
            f"at end {self.load['end']}",
            f"- {versions.get('ferroni')}; {versions.get('patroni')}; {versions.get('postgres')}; "
            f"{versions.get('etcd')}",
            f"- settings: ttl {TTL}, loop_wait {LOOP_WAIT}, retry_timeout {RETRY_TIMEOUT}; medians of {self.runs} "
            f"run(s) ({self.replica_runs} in scenario 2); pgbench scale {self.scale}"
            + (f" ({self.leader_size_mib:.0f} MiB database)" if getattr(self, "leader_size_mib", None) else "")
            + f"; idle window {self.idle_s} s; wrk -t2 -c4 -d{self.wrk_s}s",
            "",
            "| # | scenario | by hand | ferroni | Patroni | ferroni/Patroni | ferroni/by hand | target | met? |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
            lines.append(
                f"| {r['scenario']} | {r['label']} ({r['unit']}) | {num(r['by_hand'], r['unit'])} | "
                f"{num(r['ferroni'], r['unit'])} | {num(r['patroni'], r['unit'])} | {ratio(r['ferroni_over_patroni'])} | "
                f"{ratio(r['ferroni_over_by_hand'])} | {r['target']} | {met} |")
        lines += [
            "",
            "Definitions: *writable* = `CREATE TABLE IF NOT EXISTS …; INSERT …` through psql over TCP succeeds "
            "(polled every 50 ms); *by hand* (1) = `initdb` (same options, `--pwfile`) + `pg_ctl start -w` until "
            "writable (polled from the start, as for the daemons); *by hand* (2) = `pg_basebackup -X stream -R` + "
            "`pg_ctl start -w` until "
            "`pg_stat_wal_receiver.status = 'streaming'`, against the same (ferroni-managed) leader, interleaved "
            "with ferroni's replicas, after the same `CHECKPOINT`, and after one untimed image of each leader; "
            "every timed start in 1 and 2 follows a `sync`; "
            "leader-key times come from an etcd watch on `/service/<scope>/leader`; RSS = VmRSS of the daemon plus "
            "its non-PostgreSQL descendants (ferroni: the daemon and `ferroni-fence`; Patroni: the python "
            "process), mean of samples every 5 s; CPU = on-CPU time of the same processes, summed over their "
            "threads from `/proc/<pid>/task/*/schedstat` (nanoseconds; utime+stime in 10 ms ticks for a process "
            "one of whose threads exited in the window), plus children reaped in the window, scaled to 60 s; "
            "wrk -t2 -c4 against the leader.",
            "",
        ]
        for system, c in self.config_check.items():
            out = " ".join(c["output"].split())
            lines.append(f"- `{system} --validate-config` on the shared YAML: exit {c['exit']}"
                         + (f": `{out[:500]}`" if out else ""))
        if "must not contain" in self.config_check.get("patroni", {}).get("output", ""):
            lines.append("  (Patroni's validator refuses loopback connect addresses; the daemon itself runs with "
                         "them, so every key of the file is used by both.)")
        errs = {}
        for e in self.events:
            m = re.search(r"read (\d+)", e.get("socket_errors") or "") if e.get("scenario") == 6 else None
            if m and int(m.group(1)):
                errs.setdefault(e["system"], []).append(int(m.group(1)))
        for system, v in errs.items():
            lines.append(f"- wrk against {system}: socket read errors in {len(v)} of the wrk runs "
                         f"({min(v)}–{max(v)} per run)"
                         + (": Patroni's HTTP/1.0 server closes the connection after each answer, so wrk "
                            "reconnects; requests/s counts completed answers" if system == "patroni" else ""))
        if self.errors:
            lines.append("")
            lines.append("Errors:")
            lines.extend(f"- {e}" for e in self.errors)
        md = "\n".join(lines) + "\n"
        os.makedirs(self.results_dir, exist_ok=True)
        base = os.path.join(self.results_dir, self.stamp)
        with open(base + ".md", "w") as f:
            f.write(md)
        with open(base + ".json", "w") as f:
            json.dump({
                "date": now.isoformat(), "cores": os.cpu_count(), "load_average": self.load,
                "versions": versions, "settings": {"ttl": TTL, "loop_wait": LOOP_WAIT,
                                                   "retry_timeout": RETRY_TIMEOUT, "runs": self.runs,
                                                   "replica_runs": self.replica_runs,
                                                   "pgbench_scale": self.scale, "idle_seconds": self.idle_s,
                                                   "wrk_seconds": self.wrk_s, "scenarios": self.scenarios},
                "leader_size_mib": getattr(self, "leader_size_mib", None),
                "config_check": self.config_check, "sample_config": getattr(self, "sample_yaml", None),
                "rows": rows, "events": self.events, "errors": self.errors,
            }, f, indent=2, default=str)
        print()
        print(md)
        print(f"written: {base}.md, {base}.json (daemon logs in {self.logs_dir})")

    def run(self):
        self.check_config()
        steps = []
        if 1 in self.scenarios:
            steps.append((1, self.scenario1))
        if 2 in self.scenarios:
            steps.append((2, self.scenario2))
        if any(s in self.scenarios for s in (3, 4, 5, 6)):
            steps.append((3, self.scenario_cluster))
        for sc, step in steps:
            self.load[f"scenario {sc} start"] = loadavg()
            try:
                step()
            except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as e:
                self.errors.append(f"scenario {sc}: {type(e).__name__}: {e}")
                log(f"ERROR scenario {sc}: {e}")
                REG.cleanup()

    def remove_workdir(self):
        shutil.rmtree(self.workdir, ignore_errors=True)


def fmt(v, unit="s", digits=2):
    return "–" if v is None else f"{v:.{digits}f} {unit}"


def platform_desc():
    try:
        with open("/etc/os-release") as f:
            m = re.search(r'PRETTY_NAME="([^"]+)"', f.read())
            return m.group(1) if m else ""
    except OSError:
        return ""


def git_desc():
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f" (git {head}{', working tree modified' if dirty else ''})" if head else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def versions(args):
    def out(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except Exception as e:  # noqa: BLE001
            return f"{cmd[0]}: {e}"

    return {
        "ferroni": out([args.ferroni, "--version"]) + git_desc() + time.strftime(
            " (binary built %Y-%m-%d %H:%M)", time.localtime(os.path.getmtime(args.ferroni))),
        "patroni": out([args.patroni, "--version"]),
        "postgres": out([f"{PGBIN}/postgres", "--version"]),
        "etcd": out([ETCD, "--version"]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=0, help="runs per scenario (default 3; 1 with --quick)")
    ap.add_argument("--replica-runs", type=int, default=0,
                    help="runs of scenario 2 (default: --runs, at least 7; 1 with --quick)")
    ap.add_argument("--scenarios", default="1,2,3,4,5,6", help="comma-separated subset of 1..6")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: pgbench scale 5, 1 run, 10 s idle window, 3 s wrk")
    ap.add_argument("--scale", type=int, default=0, help="pgbench scale of scenario 2's leader (default 70)")
    ap.add_argument("--idle", type=int, default=0, help="idle window of scenario 5 in seconds (default 60)")
    ap.add_argument("--wrk-duration", type=int, default=0, help="wrk duration in seconds (default 10)")
    host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout
    host = next((line.split(": ", 1)[1] for line in host.splitlines() if line.startswith("host: ")), "")
    # scripts/build-release.sh's static build
    ap.add_argument("--ferroni", default=os.path.join(ROOT, "target", host, "release", "ferroni"))
    ap.add_argument("--patroni", default=os.path.join(ROOT, "bench", ".venv", "bin", "patroni"))
    ap.add_argument("--hba-method", default="md5", choices=("md5", "scram-sha-256"),
                    help="pg_hba method of the generated host lines (default md5)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (debugging)")
    ap.add_argument("--settle", type=int, default=None,
                    help="seconds between a healthy cluster and the idle window (default 10; 3 with --quick)")
    ap.add_argument("--systems", default="ferroni,patroni",
                    help="daemons to run (default both; one alone is for iterating, its ratios stay empty)")
    args = ap.parse_args()
    args.ferroni, args.patroni = os.path.abspath(args.ferroni), os.path.abspath(args.patroni)
    global HBA_METHOD, SYSTEMS
    HBA_METHOD = args.hba_method
    SYSTEMS = tuple(x.strip() for x in args.systems.split(",") if x.strip())
    if not SYSTEMS or not set(SYSTEMS) <= {"ferroni", "patroni"}:
        sys.exit(f"compare.py: --systems takes ferroni and/or patroni, got {args.systems!r}")
    if args.settle is not None and args.settle < 0:
        sys.exit(f"compare.py: --settle takes seconds (0 or more), got {args.settle}")
    if os.geteuid() != 0:
        sys.exit("compare.py: run as root (daemons and PostgreSQL are started as the postgres user)")
    try:
        chosen = {int(x) for x in args.scenarios.split(",") if x.strip()}
    except ValueError:
        chosen = set()
    if not chosen or not chosen <= {1, 2, 3, 4, 5, 6}:
        sys.exit(f"compare.py: --scenarios takes numbers from 1 to 6, got {args.scenarios!r}")
    for p in (getattr(args, s) for s in SYSTEMS):
        if not os.access(p, os.X_OK):
            sys.exit(f"compare.py: {p} is missing: run bench/run.sh")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    vers = versions(args)
    bench = None
    interrupted = False
    try:
        bench = Bench(args)
        log(f"workdir {bench.workdir}; {os.cpu_count()} cores; load {loadavg()}; "
            f"runs {bench.runs}; scenarios {bench.scenarios}")
        bench.run()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        REG.cleanup()
        if bench is not None:
            if not args.keep:
                bench.remove_workdir()
            if bench.samples:
                if interrupted:
                    bench.errors.append("interrupted: partial results")
                bench.report(vers)
    sys.exit(130 if interrupted else (1 if bench is None or bench.errors else 0))


if __name__ == "__main__":
    main()
