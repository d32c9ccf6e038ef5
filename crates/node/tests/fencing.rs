//! Fencing a frozen daemon, with real processes: a real PostgreSQL 15, a stand-in "daemon"
//! (`sleep`), and the fence loop run in a thread (or, for session handling, spawned as a process).
//! The modules are compiled in directly so they can be tested before the daemon uses them; their
//! own unit tests (deadline math, file format, ioctl numbers) run here too.

// Only part of each module's API is exercised from here; the daemon uses the rest.
#[allow(dead_code)]
#[path = "../src/fence.rs"]
mod fence;
#[allow(dead_code)]
#[path = "../src/watchdog.rs"]
mod watchdog;

use fence::{Heartbeat, boottime, deadline_after, fence_log_path, run_fence, spawn_fence};
use ferroni_model::WatchdogMode;
use ferroni_testkit::node::{chown_postgres, postgres_ids, postgres_tempdir};
use ferroni_testkit::ports::free_port;
use ferroni_testkit::wait::wait_until;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread::{JoinHandle, sleep};
use std::time::{Duration, Instant};
use watchdog::Watchdog;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `<fields after the command name>` of /proc/<pid>/stat: state [0], ppid [1], pgrp [2], session [3].
fn stat(pid: i32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

/// Runs a Postgres binary as the postgres user (the tests run as root in CI).
fn pg_command(bin: &str) -> Command {
    let mut cmd = Command::new(Path::new(PG_BIN).join(bin));
    if let Some((uid, gid)) = postgres_ids() {
        cmd.uid(uid).gid(gid);
    }
    cmd.env_remove("PGDATA").env("LC_ALL", "C");
    cmd
}

/// A running PostgreSQL 15; stopped (immediate, then SIGKILL) on drop.
struct Pg {
    dir: tempfile::TempDir,
    data: PathBuf,
}

impl Pg {
    fn start() -> Pg {
        let dir = postgres_tempdir();
        let data = dir.path().join("data");
        let out = pg_command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let opts = format!(
            "-p {} -k {} -c listen_addresses='' -c shared_buffers=16MB -c max_connections=10",
            free_port(),
            dir.path().display()
        );
        let out = pg_command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("pg.log"))
            .args(["-o", &opts])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run pg_ctl start");
        let pg = Pg { dir, data };
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            fs::read_to_string(pg.dir.path().join("pg.log")).unwrap_or_default()
        );
        assert!(alive(pg.pid()), "postmaster running");
        pg
    }

    fn pid(&self) -> i32 {
        let text = fs::read_to_string(self.data.join("postmaster.pid")).expect("postmaster.pid");
        text.lines().next().unwrap().trim().parse().unwrap()
    }

    fn heartbeat_path(&self) -> PathBuf {
        // Outside the data directory, as the daemon must do it.
        self.dir.path().join("fence")
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let pid = fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok());
        let _ = pg_command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(pid) = pid.filter(|p| alive(*p)) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// A stand-in for the daemon: a process whose pid the fence watches. Killed and reaped on drop.
struct FakeDaemon(Child);

impl FakeDaemon {
    fn start() -> FakeDaemon {
        FakeDaemon(Command::new("sleep").arg("1000").spawn().expect("spawn sleep"))
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Kills it but leaves it unreaped: a zombie must count as a dead daemon.
    fn kill_leaving_zombie(&self) {
        kill(Pid::from_raw(self.pid()), Signal::SIGKILL).unwrap();
        wait_until("daemon to become a zombie", ms(2000), || !alive(self.pid())).unwrap();
        assert!(stat(self.pid()).is_some(), "still a zombie, not reaped");
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `run_fence` in a thread of the test; told to exit on drop if it has not.
struct FenceThread {
    heartbeat: PathBuf,
    handle: Option<JoinHandle<ExitCode>>,
}

impl FenceThread {
    fn start(heartbeat: &Path, data_dir: &Path, daemon_pid: i32) -> FenceThread {
        let (hb, dd) = (heartbeat.to_path_buf(), data_dir.to_path_buf());
        FenceThread {
            heartbeat: heartbeat.to_path_buf(),
            handle: Some(std::thread::spawn(move || run_fence(&hb, &dd, daemon_pid))),
        }
    }

    fn running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Waits for the loop to return; true when it did within `timeout`.
    fn exited_within(&mut self, timeout: Duration) -> bool {
        let done = wait_until("fence loop to exit", timeout, || !self.running()).is_ok();
        if done && let Some(h) = self.handle.take() {
            h.join().expect("fence thread panicked");
        }
        done
    }
}

impl Drop for FenceThread {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = Heartbeat::new(&self.heartbeat).stop_fence();
            let _ = h.join();
            let _ = fs::remove_file(&self.heartbeat);
        }
    }
}

/// Waits (polling every 10 ms) until `pid` is gone; the boottime at which it was seen gone.
fn wait_gone(pid: i32, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if !alive(pid) {
            return Some(boottime());
        }
        sleep(ms(10));
    }
    None
}

#[test]
fn expired_heartbeat_stops_postgres_promptly_and_only_once() {
    let pg = Pg::start();
    let daemon = FakeDaemon::start();
    let hb_path = pg.heartbeat_path();
    let hb = Heartbeat::new(&hb_path);
    // A refresh that started now with ttl 2 s and the default 5 s margin (capped at 1 s).
    let start = boottime();
    let deadline = start + Duration::from_secs(1);
    hb.arm(deadline_after(start, Duration::from_secs(2), Duration::from_secs(5)))
        .unwrap();
    let mut fence = FenceThread::start(&hb_path, &pg.data, daemon.pid());
    let postmaster = pg.pid();

    sleep((deadline - ms(200)).saturating_sub(boottime()));
    assert!(alive(postmaster), "Postgres still running just before the deadline");
    let gone_at = wait_gone(postmaster, Duration::from_secs(5)).expect("Postgres stopped by the fence");
    let late = gone_at.saturating_sub(deadline);
    eprintln!("Postgres gone {} ms after the deadline", late.as_millis());
    assert!(gone_at > deadline, "not before the deadline");
    assert!(late <= ms(500), "stopped {} ms after the deadline", late.as_millis());
    wait_until("heartbeat removed", ms(1000), || !hb_path.exists()).unwrap();
    // The daemon is still there (it may thaw): the fence keeps guarding, then exits once it is gone.
    sleep(ms(300));
    assert!(fence.running(), "fence keeps running while the daemon lives");
    drop(daemon);
    assert!(fence.exited_within(ms(1000)), "fence exits after the daemon");
}

#[test]
fn heartbeat_rearmed_every_200ms_keeps_postgres_running_and_disarm_stops_fencing() {
    let pg = Pg::start();
    let daemon = FakeDaemon::start();
    let hb_path = pg.heartbeat_path();
    let hb = Heartbeat::new(&hb_path);
    let (ttl, margin) = (Duration::from_secs(2), Duration::from_secs(5));
    hb.arm(deadline_after(boottime(), ttl, margin)).unwrap();
    let fence = FenceThread::start(&hb_path, &pg.data, daemon.pid());
    let postmaster = pg.pid();

    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        sleep(ms(200));
        hb.arm(deadline_after(boottime(), ttl, margin)).unwrap();
        assert!(alive(postmaster), "Postgres running after {:?}", start.elapsed());
    }

    // Disarmed (e.g. demoted to replica): the last deadline passes without fencing.
    hb.disarm().unwrap();
    sleep(Duration::from_secs(2));
    assert!(alive(postmaster), "no fencing after disarm, even past the old deadline");
    assert!(fence.running());
}

#[test]
fn daemon_gone_without_heartbeat_ends_the_fence() {
    let dir = tempfile::tempdir().unwrap();
    let hb_path = dir.path().join("fence");
    let daemon = FakeDaemon::start();
    let mut fence = FenceThread::start(&hb_path, dir.path(), daemon.pid());
    sleep(ms(300));
    assert!(fence.running(), "nothing armed, daemon alive: keeps watching");
    daemon.kill_leaving_zombie();
    assert!(fence.exited_within(ms(1000)), "exits once the daemon is a zombie");
}

#[test]
fn daemon_gone_with_armed_heartbeat_still_enforces_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let hb_path = dir.path().join("fence");
    let daemon = FakeDaemon::start();
    let start = boottime();
    Heartbeat::new(&hb_path)
        .arm(deadline_after(start, Duration::from_secs(1), Duration::ZERO))
        .unwrap();
    daemon.kill_leaving_zombie();
    let mut fence = FenceThread::start(&hb_path, dir.path(), daemon.pid());
    sleep(ms(400));
    assert!(
        fence.running(),
        "a crashed daemon's lease still runs out: wait for the deadline"
    );
    assert!(fence.exited_within(ms(2000)), "exits after enforcing the deadline");
    assert!(boottime() >= start + Duration::from_secs(1), "not before the deadline");
    assert!(!hb_path.exists(), "heartbeat removed by the fence");
}

#[test]
fn exit_word_stops_the_fence() {
    let dir = tempfile::tempdir().unwrap();
    let hb_path = dir.path().join("fence");
    let daemon = FakeDaemon::start();
    let hb = Heartbeat::new(&hb_path);
    hb.arm(deadline_after(
        boottime(),
        Duration::from_secs(30),
        Duration::from_secs(5),
    ))
    .unwrap();
    let mut fence = FenceThread::start(&hb_path, dir.path(), daemon.pid());
    sleep(ms(200));
    assert!(fence.running());
    hb.stop_fence().unwrap();
    assert!(fence.exited_within(ms(1000)));
}

#[test]
fn postmaster_pid_naming_another_process_is_never_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    let daemon = FakeDaemon::start();
    // A stale pid file whose pid now belongs to something else, even one running in our data
    // directory with the right data directory line.
    let mut victim = Command::new("sleep").arg("1000").current_dir(&data).spawn().unwrap();
    let victim_pid = victim.id() as i32;
    for second_line in [data.display().to_string(), "/somewhere/else".to_string()] {
        fs::write(
            data.join("postmaster.pid"),
            format!("{victim_pid}\n{second_line}\n1700000000\n5432\n"),
        )
        .unwrap();
        let hb_path = dir.path().join("fence");
        // A deadline already passed: the fence acts on its first poll.
        Heartbeat::new(&hb_path)
            .arm(deadline_after(boottime() - ms(500), ms(200), Duration::ZERO))
            .unwrap();
        let _fence = FenceThread::start(&hb_path, &data, daemon.pid());
        wait_until("fence to act on the expired heartbeat", ms(2000), || !hb_path.exists()).unwrap();
        sleep(ms(2500));
        assert!(alive(victim_pid), "sleep was not signalled ({second_line})");
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn postmaster_ignoring_sigquit_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    // A stand-in postmaster: a copy of sleep named `postgres`, running in the data directory,
    // with SIGQUIT ignored (the disposition survives exec) as a wedged postmaster would behave.
    let fake = dir.path().join("postgres");
    fs::copy("/bin/sleep", &fake).unwrap();
    let mut cmd = Command::new(&fake);
    cmd.arg("1000").current_dir(&data);
    // SAFETY: only signal(2), async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::signal::signal(Signal::SIGQUIT, nix::sys::signal::SigHandler::SigIgn)
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let mut postmaster = cmd.spawn().unwrap();
    let pm_pid = postmaster.id() as i32;
    fs::write(
        data.join("postmaster.pid"),
        format!("{pm_pid}\n{}\n1700000000\n5432\n", data.display()),
    )
    .unwrap();
    let daemon = FakeDaemon::start();
    let hb_path = dir.path().join("fence");
    Heartbeat::new(&hb_path)
        .arm(deadline_after(boottime() - ms(500), ms(200), Duration::ZERO))
        .unwrap();
    let started = Instant::now();
    let _fence = FenceThread::start(&hb_path, &data, daemon.pid());
    sleep(ms(1500));
    assert!(alive(pm_pid), "SIGQUIT ignored: still running during the grace period");
    wait_until("SIGKILL after the grace period", ms(3000), || !alive(pm_pid)).unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    postmaster.wait().unwrap();
}

#[test]
fn spawned_fence_runs_in_its_own_session_with_the_expected_arguments() {
    let dir = postgres_tempdir();
    let exe = dir.path().join("fake-ferroni");
    let args_file = dir.path().join("args");
    fs::write(
        &exe,
        format!(
            "#!/bin/sh\necho \"$@\" > {}\necho fence-stderr >&2\nexec sleep 30\n",
            args_file.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    chown_postgres(&exe);
    let hb_path = dir.path().join("fence");
    let data = dir.path().join("data");

    let mut child = spawn_fence(&exe, &hb_path, &data, 4242).expect("spawn fence");
    let pid = child.id() as i32;
    wait_until("fence script to start", ms(5000), || {
        fs::read_to_string(&args_file).is_ok_and(|s| s.ends_with('\n'))
    })
    .unwrap();
    let args = fs::read_to_string(&args_file).unwrap();
    assert_eq!(
        args.trim(),
        format!("--fence {} {} 4242", hb_path.display(), data.display())
    );
    let child_stat = stat(pid).expect("child running");
    let own_stat = stat(std::process::id() as i32).unwrap();
    assert_eq!(child_stat[3], pid.to_string(), "the fence leads its own session");
    assert_eq!(child_stat[2], pid.to_string(), "and its own process group");
    assert_ne!(child_stat[3], own_stat[3], "not the spawner's session");
    wait_until("stderr in the fence log", ms(2000), || {
        fs::read_to_string(fence_log_path(&hb_path)).is_ok_and(|s| s.contains("fence-stderr"))
    })
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn watchdog_off_opens_nothing() {
    let w = Watchdog::open(
        WatchdogMode::Off,
        Some(Path::new("/nonexistent/watchdog")),
        Duration::from_secs(30),
        Duration::from_secs(10),
        Duration::from_secs(5),
    );
    assert!(matches!(w, Ok(None)));
    assert!(watchdog::usable(
        WatchdogMode::Off,
        Some(Path::new("/nonexistent/watchdog"))
    ));
}

#[test]
fn watchdog_automatic_without_a_device_runs_without_one() {
    for device in [Path::new("/nonexistent/watchdog"), Path::new("/dev/null")] {
        let w = Watchdog::open(
            WatchdogMode::Automatic,
            Some(device),
            Duration::from_secs(30),
            Duration::from_secs(10),
            Duration::from_secs(5),
        );
        assert!(matches!(w, Ok(None)), "{device:?}: {w:?}");
    }
    assert!(watchdog::usable(
        WatchdogMode::Automatic,
        Some(Path::new("/nonexistent/watchdog"))
    ));
}

#[test]
fn watchdog_required_without_a_device_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_watchdog = dir.path().join("not-a-watchdog");
    fs::write(&not_a_watchdog, "").unwrap();
    let cases = [
        (PathBuf::from("/nonexistent/watchdog"), "cannot open"),
        (not_a_watchdog.clone(), "not a usable watchdog"),
        (PathBuf::from("/dev/null"), "not a usable watchdog"),
    ];
    for (device, why) in cases {
        let err = Watchdog::open(
            WatchdogMode::Required,
            Some(&device),
            Duration::from_secs(30),
            Duration::from_secs(10),
            Duration::from_secs(5),
        )
        .expect_err("required mode without a watchdog");
        assert!(err.contains(&device.display().to_string()), "{err}");
        assert!(err.contains(why), "{err}");
    }
    // Default device: none in this sandbox (skip the check where one exists).
    if !Path::new(watchdog::DEFAULT_DEVICE).exists() {
        let err = Watchdog::open(
            WatchdogMode::Required,
            None,
            Duration::from_secs(30),
            Duration::from_secs(10),
            Duration::from_secs(5),
        )
        .expect_err("no /dev/watchdog");
        assert!(err.contains("/dev/watchdog"), "{err}");
        assert!(!watchdog::usable(WatchdogMode::Required, None));
    }
    // A margin that eats the whole ttl can never work.
    let err = Watchdog::open(
        WatchdogMode::Required,
        Some(&not_a_watchdog),
        Duration::from_secs(5),
        Duration::from_secs(1),
        Duration::from_secs(5),
    )
    .expect_err("no timeout left");
    assert!(err.contains("safety_margin"), "{err}");
    assert!(watchdog::usable(WatchdogMode::Required, Some(&not_a_watchdog)));
}
