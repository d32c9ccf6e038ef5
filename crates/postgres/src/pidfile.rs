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
    if kill(Pid::from_raw(file.pid), None).is_err() {
        return false;
    }
    // One read of /proc/<pid>/stat serves the zombie check and the start time (every cycle).
    let stat = read_proc(&format!("/proc/{}/stat", file.pid));
    if stat.as_deref().is_some_and(stat_says_zombie) {
        return false;
    }
    // A process is its pid and start time: once its program was checked, it need not be again.
    let identity = stat.as_deref().and_then(start_ticks).map(|t| (file.pid, t));
    let known = identity.is_some() && *VERIFIED.lock().unwrap_or_else(|p| p.into_inner()) == identity;
    if !known && !looks_like_postgres(file.pid) {
        return false;
    }
    let live = match (file.start_time, stat.as_deref().and_then(start_time_from_stat)) {
        (Some(recorded), Some(actual)) => (recorded - actual).abs() <= 3,
        _ => true,
    };
    if live && !known {
        *VERIFIED.lock().unwrap_or_else(|p| p.into_inner()) = identity;
    }
    live
}

/// The last process found to be a postgres binary: (pid, start time in clock ticks).
static VERIFIED: std::sync::Mutex<Option<(i32, u64)>> = std::sync::Mutex::new(None);

/// A /proc file in one read: `read_to_string` grows its buffer from 32 bytes, and the kernel
/// renders the whole file again for every read call.
fn read_proc(path: &str) -> Option<String> {
    read_proc_bytes(path).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn read_proc_bytes(path: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; 4096];
    let mut file = fs::File::open(path).ok()?;
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) => return None,
        }
    }
    buf.truncate(len);
    Some(buf)
}

fn start_ticks(stat: &str) -> Option<u64> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
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

/// Start time in seconds since the epoch, from the text of `/proc/<pid>/stat` (Linux only).
fn start_time_from_stat(stat: &str) -> Option<i64> {
    // Fields after the parenthesised command name start with field 3 (state); starttime is field 22.
    let ticks = start_ticks(stat)?;
    let (boot, hz) = boot_time_and_hz()?;
    // f64 keeps this portable across c_long widths; second precision is all we need.
    Some(boot + (ticks as f64 / hz as f64) as i64)
}

/// The boot time (`btime` of /proc/stat) and clock ticks per second: fixed for the life of the
/// process, so read once.
fn boot_time_and_hz() -> Option<(i64, i64)> {
    static CACHED: std::sync::OnceLock<Option<(i64, i64)>> = std::sync::OnceLock::new();
    *CACHED.get_or_init(|| {
        let boot: i64 = fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
        (hz > 0).then_some((boot, hz))
    })
}

/// A postmaster that exited but whose parent has not reaped it (the daemon may be PID 1 in a
/// container) still answers `kill(pid, 0)`; /proc tells the truth.
fn is_zombie(pid: i32) -> bool {
    read_proc(&format!("/proc/{pid}/stat")).is_some_and(|stat| stat_says_zombie(&stat))
}

fn stat_says_zombie(stat: &str) -> bool {
    // The command name is in parentheses and may contain spaces; the state follows the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        == Some('Z')
}

/// The program (argv[0]) is `postgres` or `postmaster`. Without /proc (not Linux) we cannot tell and
/// trust the pid.
fn looks_like_postgres(pid: i32) -> bool {
    let Some(cmdline) = read_proc_bytes(&format!("/proc/{pid}/cmdline")) else {
        return true;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let argv0 = String::from_utf8_lossy(argv0);
    let program = argv0.rsplit('/').next().unwrap_or_default();
    program.starts_with("postgres") || program.starts_with("postmaster")
}

fn same_dir(a: &Path, b: &Path) -> bool {
    // The usual case, checked every cycle: the postmaster was started with our exact path.
    if a == b {
        return true;
    }
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
        let stat = fs::read_to_string(format!("/proc/{}/stat", std::process::id())).expect("/proc is readable");
        let started = start_time_from_stat(&stat).expect("a start time");
        assert!(
            started <= now + 1 && now - started < 3600,
            "started {started}, now {now}"
        );
    }
}
