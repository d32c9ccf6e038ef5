//! `postmaster.pid`: whether a postmaster runs on our data directory, and where it listens.
//!
//! PostgreSQL writes the file at startup: line 1 pid, 2 data directory, 3 start time (epoch), 4 port,
//! 5 first socket directory, 6 first listen address, 7 shared memory key, 8 status (`starting`,
//! `ready`, `standby`, `stopping`). Reading the socket directory and port from here instead of from our
//! configuration means a local connection works whatever the server was really started with.
//!
//! A pid in the file is only trusted when the process exists, is not a zombie, looks like a postgres
//! process, and the file names our data directory: after a container restart the pid is often reused
//! by an unrelated process, and trusting it would block every start.
//!
//! Failure: an unreadable or garbled file means "no running postmaster"; callers never need the reason.

use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidFile {
    pub pid: i32,
    pub data_dir: PathBuf,
    pub start_time: Option<i64>,
    pub port: Option<u16>,
    /// First entry of `unix_socket_directories`; `None` when the server has no socket.
    pub socket_dir: Option<PathBuf>,
    /// First entry of `listen_addresses` (`*` for all).
    pub listen_addr: Option<String>,
    /// `starting`, `ready`, `standby` or `stopping`.
    pub status: Option<String>,
}

impl PidFile {
    pub fn parse(text: &str) -> Option<PidFile> {
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let pid: i32 = lines.first()?.parse().ok().filter(|p| *p > 0)?;
        let non_empty = |i: usize| lines.get(i).copied().filter(|s| !s.is_empty());
        Some(PidFile {
            pid,
            data_dir: PathBuf::from(lines.get(1).copied().unwrap_or_default()),
            start_time: non_empty(2).and_then(|s| s.parse().ok()),
            port: non_empty(3).and_then(|s| s.parse().ok()),
            socket_dir: non_empty(4).map(PathBuf::from),
            listen_addr: non_empty(5).map(str::to_string),
            status: non_empty(7).map(str::to_string),
        })
    }

    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("postmaster.pid")
    }

    /// The file as written, or `None` when absent or garbled.
    pub fn read(data_dir: &Path) -> Option<PidFile> {
        PidFile::parse(&fs::read_to_string(PidFile::path(data_dir)).ok()?)
    }
}

/// The postmaster running on `data_dir`, if any.
pub fn running_postmaster(data_dir: &Path) -> Option<PidFile> {
    let file = PidFile::read(data_dir)?;
    (same_dir(&file.data_dir, data_dir) && is_live_postmaster(&file)).then_some(file)
}

/// The pid file's process exists, is not a zombie, runs a postgres binary and was started when the
/// file says (within 3 s, as Patroni checks): a reused pid fails at least one of these.
pub fn is_live_postmaster(file: &PidFile) -> bool {
    if !is_process_alive(file.pid) || !looks_like_postgres(file.pid) {
        return false;
    }
    match (file.start_time, process_start_time(file.pid)) {
        (Some(recorded), Some(actual)) => (recorded - actual).abs() <= 3,
        _ => true,
    }
}

/// `kill(pid, 0)` succeeds and the process is not a zombie. EPERM counts as dead: a postmaster we
/// manage runs as our user (or we are root and never get EPERM), so a pid we may not signal belongs
/// to someone else.
pub fn is_process_alive(pid: i32) -> bool {
    match kill(Pid::from_raw(pid), None) {
        Ok(()) => !is_zombie(pid),
        Err(_) => false,
    }
}

/// Start time of a process in seconds since the epoch, from /proc (Linux only).
fn process_start_time(pid: i32) -> Option<i64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start with field 3 (state); starttime is field 22.
    let ticks: i64 = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()?;
    let boot: i64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    // f64 keeps this portable across c_long widths; second precision is all we need.
    (hz > 0).then(|| boot + (ticks as f64 / hz as f64) as i64)
}

/// A postmaster that exited but whose parent has not reaped it (the daemon may be PID 1 in a
/// container) still answers `kill(pid, 0)`; /proc tells the truth.
fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name is in parentheses and may contain spaces; the state follows the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        == Some('Z')
}

/// The program (argv[0]) is `postgres` or `postmaster`. Without /proc (not Linux) we cannot tell and
/// trust the pid.
fn looks_like_postgres(pid: i32) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return true;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let argv0 = String::from_utf8_lossy(argv0);
    let program = argv0.rsplit('/').next().unwrap_or_default();
    program.starts_with("postgres") || program.starts_with("postmaster")
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_lines() {
        let text = "4242\n/var/lib/pg/data\n1700000000\n5432\n/var/run/postgresql\n*\n  5432001    65536\nready   \n";
        let f = PidFile::parse(text).unwrap();
        assert_eq!(f.pid, 4242);
        assert_eq!(f.data_dir, PathBuf::from("/var/lib/pg/data"));
        assert_eq!(f.start_time, Some(1_700_000_000));
        assert_eq!(f.port, Some(5432));
        assert_eq!(f.socket_dir, Some(PathBuf::from("/var/run/postgresql")));
        assert_eq!(f.listen_addr.as_deref(), Some("*"));
        assert_eq!(f.status.as_deref(), Some("ready"));
    }

    #[test]
    fn tolerates_short_and_garbled_files() {
        let f = PidFile::parse("17\n/d\n").unwrap();
        assert_eq!((f.port, f.socket_dir, f.status), (None, None, None));
        assert!(PidFile::parse("").is_none());
        assert!(PidFile::parse("abc\n").is_none());
        assert!(PidFile::parse("-5\n").is_none());
        // No socket directory configured: line 5 is empty.
        let f = PidFile::parse("17\n/d\n1\n5432\n\n127.0.0.1\n").unwrap();
        assert_eq!(f.socket_dir, None);
    }

    #[test]
    fn our_own_process_is_alive_but_not_postgres() {
        let me = std::process::id() as i32;
        assert!(is_process_alive(me));
        let file = PidFile::parse(&format!("{me}\n/d\n")).unwrap();
        assert!(!is_live_postmaster(&file), "the test binary is not a postmaster");
        assert!(!is_process_alive(i32::MAX - 1));
    }

    #[test]
    fn process_start_time_is_recent_for_ourselves() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let started = process_start_time(std::process::id() as i32).expect("/proc is readable");
        assert!(
            started <= now + 1 && now - started < 3600,
            "started {started}, now {now}"
        );
    }
}
