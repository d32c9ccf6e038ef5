//! Fault injection with real processes (real etcd, real PostgreSQL 15, real ferroni daemons): etcd
//! frozen past `retry_timeout`, etcd restarted (gracefully, then after a kill -9 and an outage), a
//! replica killed in the middle of its clone, and the leader cut off from etcd by a black-holed
//! link between network namespaces. (kill -9 of the leader and SIGSTOP of the leader's daemon are in
//! `failover.rs`.)
//!
//! The etcd and partition tests run a [`WritableChecker`] (each node polled every 100 ms with a real
//! INSERT) and an [`AckWriter`] (a counter inserted every ~50 ms into whichever node accepts it,
//! acknowledged values recorded); they fail on any moment with two writable primaries and check every
//! acknowledged write against the final leader. Every test prints the faults it injected and the
//! figures it saw (`FAULT` / `FIGURES` lines in the test output, `--no-capture` to see them).
//!
//! Timing of the harness: ttl 10 s, loop_wait 1 s, retry_timeout 3 s.

mod common;

use common::{TestCluster, secs};
use ferroni_dcs::Dcs;
use ferroni_testkit::etcd::Etcd;
use ferroni_testkit::netns::{Forwarder, Netns, Switch, veth_pair};
use ferroni_testkit::node::{FerroniNode, NodeSpec, postgres_tempdir, process_alive, tail};
use ferroni_testkit::wait::wait_until;
use ferroni_testkit::writable::{
    AckWriter, PgTarget, Sample, WritableChecker, WriteLog, accepts_writes_at, first_writable_after, split_brain,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::Path;
use std::time::{Duration, Instant};

fn streaming(c: &TestCluster, count: usize, timeout: Duration) {
    wait_until(&format!("{count} streaming replicas"), timeout, || {
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
        .map(|n| format!("--- {} ---\n{}", n.spec.name, tail(&n.log(), 40)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn local_targets(c: &TestCluster) -> Vec<PgTarget> {
    c.nodes.iter().map(|n| PgTarget::local(n.spec.pg_port)).collect()
}

/// The last moment in `[from, to)` at which the server on `port` accepted a write.
fn last_writable_between(samples: &[Sample], port: u16, from: Duration, to: Duration) -> Option<Duration> {
    samples
        .iter()
        .filter(|s| s.port == port && s.writable && s.at >= from && s.at < to)
        .map(|s| s.at)
        .max()
}

/// The first moment at or after `after` at which the server on `port` accepted a write.
fn first_writable_on(samples: &[Sample], port: u16, after: Duration) -> Option<Duration> {
    samples
        .iter()
        .find(|s| s.port == port && s.writable && s.at >= after)
        .map(|s| s.at)
}

/// The cluster as etcd holds it, or `None` while etcd does not answer.
fn try_load(c: &TestCluster) -> Option<ferroni_model::ClusterView> {
    common::runtime()
        .block_on(common::dcs(&c.etcd.host_port(), &c.scope).load())
        .ok()
}

/// The longest stretch without an acknowledged write inside `[from, to]`.
fn longest_gap_between(log: &WriteLog, from: Duration, to: Duration) -> Duration {
    let mut times = vec![from];
    times.extend(log.acked.iter().map(|a| a.at).filter(|t| *t >= from && *t <= to));
    times.push(to);
    times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// Waits until the DCS names a leader whose server accepts writes; returns its index.
fn writable_leader(c: &TestCluster, timeout: Duration) -> usize {
    let mut found = None;
    wait_until("a leader that accepts writes", timeout, || {
        let Some(view) = try_load(c) else {
            return false;
        };
        found = view
            .leader_name()
            .and_then(|l| c.nodes.iter().position(|n| n.spec.name == l))
            .filter(|&i| accepts_writes_at(&PgTarget::local(c.nodes[i].spec.pg_port)));
        found.is_some()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(c)));
    found.unwrap()
}

/// Checks that every acknowledged write exists on the final leader; returns how many did not. In
/// these scenarios the old primary stops (or keeps the lock) while its replicas still stream from it,
/// so nothing acknowledged may be lost even with asynchronous replication.
fn check_acknowledged(log: &WriteLog, leader: &PgTarget) -> usize {
    let missing = log
        .missing_on(leader)
        .unwrap_or_else(|e| panic!("reading the acknowledged writes back: {e:#}"));
    assert!(
        missing.is_empty(),
        "LOST: {} of {} acknowledged writes are missing on the final leader: {:?}",
        missing.len(),
        log.acked.len(),
        log.acks_of(&missing)
    );
    missing.len()
}

/// Which mechanism stopped a primary that lost etcd: the decision ("demoting self because DCS is not
/// accessible", when a DCS read failed) or the fencing process (the heartbeat's deadline, the
/// lease's end minus the safety margin, passed while the daemon was blocked in DCS writes whose
/// cycle had started with a successful read).
fn demoted_by(log: &str) -> &'static str {
    if log.contains("demoting self because DCS is not accessible") {
        "the decision (DCS read failed)"
    } else {
        "the fencing process (heartbeat deadline passed while the cycle was blocked in DCS writes)"
    }
}

/// The lines of a daemon log that tell a fault's story (role changes, DCS trouble, rejoin), at most
/// `max` of them, for the test output.
fn story(log: &str, max: usize) -> String {
    const WORDS: [&str; 9] = [
        "demot",
        "not accessible",
        "promot",
        "acquired",
        "lock",
        "rewind",
        "following a leader",
        "DCS",
        "WARN",
    ];
    let mut last = String::new();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| WORDS.iter().any(|w| l.contains(w)))
        .filter(|l| {
            // Repeated status lines once only.
            let text = l.split_once("Z ").map_or(*l, |(_, t)| t).to_string();
            let new = text != last;
            last = text;
            new
        })
        .collect();
    lines[lines.len().saturating_sub(max)..].join("\n")
}

fn wait_acks_after(writer: &AckWriter, at: Duration, timeout: Duration) -> Duration {
    let start = Instant::now();
    let target = writer.acked_count();
    wait_until("acknowledged writes to resume", timeout, || {
        writer.acked_count() > target && writer.elapsed() > at
    })
    .unwrap();
    start.elapsed()
}

#[test]
fn etcd_frozen_past_retry_timeout_demotes_the_primary_and_the_cluster_recovers() {
    let mut c = TestCluster::new("etcdfreeze");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    c.start(c.spec("b"));
    streaming(&c, 1, secs(60));
    let (ttl, loop_wait, retry) = {
        let s = &c.nodes[a].spec;
        (u64::from(s.ttl), u64::from(s.loop_wait), u64::from(s.retry_timeout))
    };
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.spec.pg_port).collect();
    let checker = WritableChecker::start(ports.clone());
    let writer = AckWriter::start(local_targets(&c));
    wait_until("first acknowledged writes", secs(10), || writer.acked_count() >= 10).unwrap();

    // Past retry_timeout (and a loop) but short of the TTL, so the lease is still alive at SIGCONT.
    let freeze = secs(loop_wait + retry + 4);
    eprintln!("FAULT: SIGSTOP etcd for {freeze:?} (ttl {ttl} s, loop_wait {loop_wait} s, retry_timeout {retry} s)");
    let frozen_at = checker.elapsed();
    let frozen_w = writer.elapsed();
    let acked_before = writer.acked_count();
    c.etcd.pause();
    std::thread::sleep(freeze);
    let resumed_at = checker.elapsed();
    let resumed_w = writer.elapsed();
    let acked_during = writer.acked_count() - acked_before;
    c.etcd.resume();

    let leader = writable_leader(&c, secs(40));
    wait_acks_after(&writer, resumed_w, secs(20));
    streaming(&c, 1, secs(60));
    let samples = checker.finish();
    let log = writer.finish();

    let a_port = c.nodes[a].spec.pg_port;
    let demoted_after = last_writable_between(&samples, a_port, frozen_at, resumed_at)
        .map(|t| t - frozen_at)
        .unwrap_or_default();
    let writable_again = first_writable_after(&samples, resumed_at).map(|t| t - resumed_at);
    let recovered = log.first_ack_after(resumed_w).map(|ack| ack.at - resumed_w);
    let lost = check_acknowledged(&log, &PgTarget::local(c.nodes[leader].spec.pg_port));
    eprintln!(
        "FIGURES: a last writable {demoted_after:?} after SIGSTOP; {acked_during} writes acknowledged while etcd \
         was frozen; a writable primary again {writable_again:?} after SIGCONT (leader {}), acknowledged writes \
         again {recovered:?} after; longest write gap {:?}; {} writes acknowledged, {} attempts failed, {lost} lost",
        c.nodes[leader].spec.name,
        log.longest_gap_after(frozen_w),
        log.acked.len(),
        log.failed,
    );
    eprintln!("DEMOTED BY {}", demoted_by(&c.nodes[a].log()));
    eprintln!("TIMELINE of a:\n{}", story(&c.nodes[a].log(), 25));
    assert_eq!(split_brain(&samples), vec![], "two writable primaries");
    assert!(
        demoted_after < secs(ttl),
        "the primary must stop accepting writes before its lease could expire ({demoted_after:?})"
    );
    assert!(
        last_writable_between(&samples, a_port, frozen_at + secs(loop_wait + 2 * retry), resumed_at).is_none(),
        "a still accepted writes {} s after etcd froze\n{}",
        loop_wait + 2 * retry,
        logs(&c)
    );
}

#[test]
fn etcd_restarted_gracefully_and_after_kill9_the_cluster_keeps_or_regains_one_writable_leader() {
    let mut c = TestCluster::new("etcdrestart");
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    c.start(c.spec("b"));
    streaming(&c, 1, secs(60));
    let retry = u64::from(c.nodes[a].spec.retry_timeout);
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.spec.pg_port).collect();
    let checker = WritableChecker::start(ports);
    let writer = AckWriter::start(local_targets(&c));
    wait_until("first acknowledged writes", secs(10), || writer.acked_count() >= 10).unwrap();

    // 1. A graceful restart (SIGTERM, start again on the same ports and data).
    eprintln!("FAULT 1: etcd restarted gracefully (SIGTERM, start on the same ports and data)");
    let restart_w = writer.elapsed();
    let started = Instant::now();
    c.etcd.restart();
    let etcd_down = started.elapsed();
    let back1_w = writer.elapsed();
    let leader1 = writable_leader(&c, secs(40));
    wait_acks_after(&writer, back1_w, secs(30));
    streaming(&c, 1, secs(60));
    let settled_w = writer.elapsed();

    // 2. kill -9, an outage past retry_timeout, then a start on the same data.
    let outage = secs(retry + 3);
    eprintln!("FAULT 2: etcd killed with SIGKILL, down for {outage:?}, started again");
    let killed_at = checker.elapsed();
    let killed_w = writer.elapsed();
    c.etcd.kill();
    std::thread::sleep(outage);
    let back_at = checker.elapsed();
    c.etcd.restart();
    let back2_w = writer.elapsed();
    let leader2 = writable_leader(&c, secs(40));
    wait_acks_after(&writer, back2_w, secs(30));
    streaming(&c, 1, secs(60));

    let samples = checker.finish();
    let log = writer.finish();
    let old_port = c.nodes[leader1].spec.pg_port;
    let demoted2 = last_writable_between(&samples, old_port, killed_at, back_at).map(|t| t - killed_at);
    let gap_restart = longest_gap_between(&log, restart_w, settled_w);
    let resumed1 = log.first_ack_after(back1_w).map(|ack| ack.at - back1_w);
    let resumed2 = log.first_ack_after(back2_w).map(|ack| ack.at - back2_w);
    let lost = check_acknowledged(&log, &PgTarget::local(c.nodes[leader2].spec.pg_port));
    eprintln!(
        "FIGURES: graceful restart: etcd healthy again after {etcd_down:?}, longest write gap {gap_restart:?}, \
         writes acknowledged again {resumed1:?} after etcd was healthy, leader {}; kill -9 + {outage:?} outage: old \
         leader last writable {demoted2:?} after the kill, writes acknowledged again {resumed2:?} after etcd was healthy, longest \
         gap {:?}, leader {}; {} writes acknowledged, {} attempts failed, {lost} lost",
        c.nodes[leader1].spec.name,
        log.longest_gap_after(killed_w),
        c.nodes[leader2].spec.name,
        log.acked.len(),
        log.failed,
    );
    eprintln!("TIMELINE of a:\n{}", story(&c.nodes[a].log(), 25));
    assert_eq!(split_brain(&samples), vec![], "two writable primaries");
    if etcd_down < Duration::from_millis(1500) {
        // An etcd blip well inside retry_timeout is no reason to demote.
        assert_eq!(leader1, a, "the leader changed over a {etcd_down:?} etcd restart");
        assert!(
            gap_restart < secs(retry),
            "writes stopped for {gap_restart:?} over a {etcd_down:?} etcd restart"
        );
    }
    assert!(
        demoted2.is_none_or(|d| d < secs(u64::from(c.nodes[a].spec.ttl))),
        "the primary kept accepting writes for {demoted2:?} without etcd"
    );
}

/// Pids of processes whose command line contains `needle`.
fn pids_with(needle: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(needle))
        })
        .collect()
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A leader with ~80 MB of data and a replica `b` whose clone (pg_basebackup at 16 MB/s) has copied
/// more than 20 MB: returns `b`'s index, the pg_basebackup pids (the copy and its WAL-streaming
/// child) and the database size.
fn replica_in_the_middle_of_its_clone(c: &mut TestCluster) -> (usize, Vec<i32>, u64) {
    let a = c.start(c.spec("a"));
    c.nodes[a].wait_role("primary", secs(60));
    c.nodes[a]
        .psql("CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 200000) g")
        .unwrap();
    let size: u64 = c.nodes[a]
        .psql("SELECT sum(pg_database_size(datname)) FROM pg_database")
        .unwrap()
        .parse()
        .unwrap();
    let mut spec = c.spec("b");
    // Slow enough that the kill lands in the middle of the copy.
    spec.extra_postgresql = "  basebackup:\n    max-rate: 16M\n".into();
    let b = c.start(spec);
    let data = c.nodes[b].data_dir();
    let data_arg = format!("--pgdata={}", data.display());
    let mut basebackup = Vec::new();
    wait_until("pg_basebackup copying into b's data directory", secs(60), || {
        basebackup = pids_with(&data_arg)
            .into_iter()
            .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "pg_basebackup"))
            .collect();
        !basebackup.is_empty() && dir_size(&data) > 20 * 1024 * 1024
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&c.nodes[b].log(), 30)));
    (b, basebackup, size)
}

#[test]
fn replica_killed_mid_clone_starts_its_next_clone_clean() {
    let mut c = TestCluster::new("midclone");
    let (b, basebackup, size) = replica_in_the_middle_of_its_clone(&mut c);
    let data = c.nodes[b].data_dir();
    eprintln!(
        "FAULT: SIGKILL to b's daemon and its pg_basebackup processes {basebackup:?} (a machine failure) after \
         {} of ~{} MB were copied",
        dir_size(&data) >> 20,
        size >> 20
    );
    c.nodes[b].kill9();
    for p in &basebackup {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
    wait_until("pg_basebackup gone", secs(5), || {
        basebackup.iter().all(|p| !process_alive(*p))
    })
    .unwrap();
    let partial = dir_size(&data);
    let has_control = data.join("global/pg_control").exists();
    eprintln!(
        "FIGURES: left behind in b's data directory: {} MB, global/pg_control present: {has_control}",
        partial >> 20
    );
    assert!(
        !has_control,
        "the clone was meant to be interrupted, but it had finished"
    );
    let log_len = c.nodes[b].log().len();
    let restarted = Instant::now();
    c.nodes[b].restart();
    streaming(&c, 1, secs(80));
    let took = restarted.elapsed();
    assert_eq!(
        c.nodes[b].psql("SELECT count(*) FROM filler").unwrap(),
        "200000",
        "the new clone is complete"
    );
    c.nodes[0]
        .psql("CREATE TABLE after_clone (x int); INSERT INTO after_clone VALUES (7)")
        .unwrap();
    wait_until("b replays new writes", secs(20), || {
        c.nodes[b].psql("SELECT x FROM after_clone").is_ok_and(|v| v == "7")
    })
    .unwrap();
    let log = c.nodes[b].log();
    let second = &log[log_len..];
    eprintln!("FIGURES: after the restart b was a streaming replica in {took:?}");
    assert!(
        second.contains("empty data directory"),
        "the next clone empties the data directory first:\n{}",
        tail(second, 40)
    );
    assert!(
        !second.contains("all replica methods failed") && !second.contains("not empty"),
        "the next clone succeeds at once:\n{}",
        tail(second, 40)
    );
}

/// A daemon killed alone mid-clone leaves pg_basebackup's WAL streamer running (it forked from
/// pg_basebackup, so no parent-death signal reaches it); the restarted daemon kills it before it
/// empties the data directory, which also frees the walsender and temporary slot on the leader.
#[test]
fn restarted_daemon_kills_a_pg_basebackup_left_from_a_killed_one() {
    let mut c = TestCluster::new("orphan");
    let (b, basebackup, _) = replica_in_the_middle_of_its_clone(&mut c);
    eprintln!("FAULT: SIGKILL to b's daemon only, while pg_basebackup {basebackup:?} copies");
    let killed = Instant::now();
    c.nodes[b].kill9();
    c.nodes[b].restart();
    let gone = wait_until("b's old pg_basebackup processes to exit", secs(15), || {
        basebackup.iter().all(|p| !process_alive(*p))
    });
    let survivors: Vec<i32> = basebackup.iter().copied().filter(|p| process_alive(*p)).collect();
    let on_leader = c.nodes[0]
        .psql(
            "SELECT (SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pg_basebackup') || ' walsenders, ' \
             || (SELECT count(*) FROM pg_replication_slots WHERE temporary) || ' temporary slots'",
        )
        .unwrap_or_default();
    eprintln!(
        "FIGURES: {:?} after the kill: pg_basebackup still running: {survivors:?}; on the leader: {on_leader}",
        killed.elapsed()
    );
    for p in &survivors {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
    assert!(
        gone.is_ok(),
        "pg_basebackup {survivors:?} outlived the restart of its daemon by 15 s (leader: {on_leader})"
    );
}

/// The leader `a` lives in its own network namespace, `b` and `c` share another; etcd (root
/// namespace, 127.0.0.1) is reached from both through a forwarder listening at 10.252.0.3 in `b`/`c`'s
/// namespace. PostgreSQL and REST traffic flows over a direct veth pair (10.251.0.0/24); etcd traffic
/// from `a` crosses a bridge in a switch namespace (10.252.0.0/24), whose port for `a` is disabled to
/// black-hole it: `a` loses etcd and nothing else.
struct PartitionLab {
    nodes: Vec<FerroniNode>,
    dirs: Vec<tempfile::TempDir>,
    _forwarder: Forwarder,
    ns_a: Netns,
    ns_h: Netns,
    switch: Switch,
    etcd: Etcd,
    scope: String,
    etcd_addr: String,
}

impl PartitionLab {
    fn create(scope: &str) -> anyhow::Result<PartitionLab> {
        let etcd = Etcd::start();
        let switch = Switch::create("sw")?;
        switch.add_bridge("brc")?;
        let ns_a = Netns::create("a")?;
        let ns_h = Netns::create("h")?;
        switch.attach("brc", "pa", &ns_a, "dcs0", "10.252.0.2/24")?;
        switch.attach("brc", "ph", &ns_h, "dcs0", "10.252.0.3/24")?;
        veth_pair(&ns_a, "data0", "10.251.0.2/24", &ns_h, "data0", "10.251.0.3/24")?;
        let forwarder = Forwarder::start(
            &ns_h,
            "10.252.0.3:2379".parse()?,
            format!("127.0.0.1:{}", etcd.client_port()).parse()?,
        )?;
        Ok(PartitionLab {
            nodes: Vec::new(),
            dirs: Vec::new(),
            _forwarder: forwarder,
            ns_a,
            ns_h,
            switch,
            etcd,
            scope: scope.into(),
            etcd_addr: "10.252.0.3:2379".into(),
        })
    }

    fn start(&mut self, name: &str, in_a: bool) -> usize {
        let dir = postgres_tempdir();
        let spec = NodeSpec::new(name, &self.scope, &self.etcd_addr);
        let (ns, addr) = if in_a {
            (&self.ns_a, "10.251.0.2")
        } else {
            (&self.ns_h, "10.251.0.3")
        };
        let node = FerroniNode::start_in_netns(Path::new(common::BIN), dir.path(), spec, ns.name(), addr);
        self.dirs.push(dir);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn load(&self) -> ferroni_model::ClusterView {
        common::load(&self.etcd.host_port(), &self.scope)
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.spec.name, tail(&n.log(), 40)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn streaming(&self, count: usize, timeout: Duration) {
        wait_until(&format!("{count} streaming replicas"), timeout, || {
            self.load()
                .members
                .iter()
                .filter(|m| m.data.replication_state.as_deref() == Some("streaming") && m.data.state == "running")
                .count()
                == count
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
    }
}

impl Drop for PartitionLab {
    fn drop(&mut self) {
        // Nodes first, then their directories; the namespaces, the switch and etcd follow as fields.
        self.nodes.clear();
        self.dirs.clear();
    }
}

#[test]
fn leader_cut_off_from_etcd_by_a_black_holed_link_demotes_and_rejoins_after_the_heal() {
    if let Some(why) = ferroni_testkit::netns::unavailable() {
        eprintln!("SKIPPED: network namespaces cannot be used here: {why}");
        return;
    }
    let mut lab = PartitionLab::create("cutoff").expect("build the namespaces");
    let a = lab.start("a", true);
    lab.nodes[a].wait_role("primary", secs(60));
    lab.start("b", false);
    lab.start("c", false);
    lab.streaming(2, secs(60));
    let ttl = u64::from(lab.nodes[a].spec.ttl);
    let targets: Vec<PgTarget> = lab.nodes.iter().map(FerroniNode::target).collect();
    let checker = WritableChecker::start_targets(targets.clone());
    let writer = AckWriter::start(targets.clone());
    wait_until("first acknowledged writes", secs(10), || writer.acked_count() >= 10).unwrap();

    eprintln!("FAULT: bridge port of a's etcd link disabled (black hole; PostgreSQL/REST link to b, c kept)");
    let cut_at = checker.elapsed();
    let cut_w = writer.elapsed();
    lab.switch.block("pa").expect("disable the bridge port");
    let mut new_leader = String::new();
    let elected = wait_until("b or c to take the leader key", secs(ttl * 3), || {
        new_leader = lab.load().leader_name().unwrap_or_default().to_string();
        new_leader == "b" || new_leader == "c"
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let ni = lab.nodes.iter().position(|n| n.spec.name == new_leader).unwrap();
    wait_until("the new leader accepts writes", secs(20), || {
        accepts_writes_at(&targets[ni])
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    // Hold the partition a little longer: a must stay read-only while it cannot see etcd.
    std::thread::sleep(secs(3));
    let a_during = accepts_writes_at(&targets[a]);
    let healed_at = checker.elapsed();
    lab.switch.unblock("pa").expect("enable the bridge port");
    let rejoined = wait_until("a to rejoin as a streaming replica", secs(60), || {
        lab.load().member("a").is_some_and(|m| {
            m.data.role == "replica"
                && m.data.state == "running"
                && m.data.replication_state.as_deref() == Some("streaming")
        })
    })
    .unwrap_or_else(|e| {
        let pm = std::fs::read_to_string(lab.nodes[a].data_dir().join("postmaster.log")).unwrap_or_default();
        panic!(
            "{e}\n{}\n--- a's postmaster.log ---\n{}\n--- a's story ---\n{}",
            lab.logs(),
            tail(&pm, 30),
            story(&lab.nodes[a].log(), 40)
        )
    });
    lab.streaming(2, secs(30));
    let samples = checker.finish();
    let log = writer.finish();

    let a_port = lab.nodes[a].spec.pg_port;
    let demoted = last_writable_between(&samples, a_port, cut_at, healed_at).map(|t| t - cut_at);
    let failover = first_writable_on(&samples, lab.nodes[ni].spec.pg_port, cut_at).map(|t| t - cut_at);
    let a_log = lab.nodes[a].log();
    let rewound = a_log
        .lines()
        .rev()
        .find_map(|l| l.split_once("pg_rewind against ").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| "not run".into());
    let lost = check_acknowledged(&log, &targets[ni]);
    eprintln!(
        "FIGURES: a last writable {demoted:?} after the cut; {new_leader} took the key {elected:?} after the cut and \
         was writable {failover:?} after it; a rejoined as a streaming replica {rejoined:?} after the heal \
         (pg_rewind against {rewound}); longest write gap {:?}; {} writes acknowledged, {} attempts \
         failed, {lost} lost",
        log.longest_gap_after(cut_w),
        log.acked.len(),
        log.failed,
    );
    eprintln!("DEMOTED BY {}", demoted_by(&lab.nodes[a].log()));
    eprintln!("TIMELINE of a:\n{}", story(&lab.nodes[a].log(), 25));
    assert_eq!(split_brain(&samples), vec![], "two writable primaries");
    assert!(!a_during, "a accepted writes while cut off from etcd");
    assert!(
        demoted.is_none_or(|d| d < secs(ttl)),
        "a stopped accepting writes only {demoted:?} after the cut, not before its lease ran out"
    );
}
