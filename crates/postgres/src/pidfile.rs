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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileExt, MetadataExt};
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
        // Read every cycle: one read call into a page, not read_to_string's stat and growing buffer.
        let bytes = read_file_bytes(&PidFile::path(data_dir))?;
        PidFile::parse(std::str::from_utf8(&bytes).ok()?)
    }
}

/// The postmaster running on `data_dir`, if any.
pub fn running_postmaster(data_dir: &Path) -> Option<PidFile> {
    let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    let reusable = kept
        .take()
        .filter(|k| k.data_dir == data_dir && k.file.metadata().is_ok_and(|m| m.nlink() > 0));
    let file = match reusable {
        Some(k) => k.file,
        None => fs::File::open(PidFile::path(data_dir)).ok()?,
    };
    let pf = PidFile::parse(std::str::from_utf8(&read_from_start(&file)?).ok()?)?;
    let live = same_dir(&pf.data_dir, data_dir) && is_live_postmaster(&pf);
    if live {
        *kept = Some(Kept {
            data_dir: data_dir.to_path_buf(),
            file,
        });
    }
    live.then_some(pf)
}

/// The `postmaster.pid` of a live postmaster, kept open so that the check every cycle is an fstat
/// and a read, not a path lookup: Postgres rewrites the file in place and unlinks it when it
/// exits, so while it still has a link it is the file at that path. Dropped as soon as the
/// postmaster is not live, so a stopped server's data directory holds no descriptor of ours.
struct Kept {
    data_dir: PathBuf,
    file: fs::File,
}

static KEPT: std::sync::Mutex<Option<Kept>> = std::sync::Mutex::new(None);

/// The whole file in as few reads as it takes: a regular file, like the /proc files read here,
/// returns less than asked only at its end, so a read that does not fill the buffer is the last.
fn read_from_start(file: &fs::File) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(n) => len += n,
            Err(_) => return None,
        }
        if len < buf.len() {
            break;
        }
        buf.resize(buf.len() * 2, 0);
    }
    buf.truncate(len);
    Some(buf)
}

/// The pid file's process exists, is not a zombie, runs a postgres binary and was started when the
/// file says (within 3 s, as Patroni checks): a reused pid fails at least one of these.
pub fn is_live_postmaster(file: &PidFile) -> bool {
    let mut verified = VERIFIED.lock().unwrap_or_else(|p| p.into_inner());
    // Checked every cycle: a pidfd pins the process it was opened for, so while it has not become
    // readable (the process exited) the pid is still the postgres process checked before.
    if let Some(v) = verified.as_ref()
        && v.pid == file.pid
        && v.pidfd.as_ref().is_some_and(pidfd_still_running)
    {
        return started_as_recorded(file.start_time, v.start_time);
    }
    if kill(Pid::from_raw(file.pid), None).is_err() {
        return false;
    }
    // One read of /proc/<pid>/stat serves the zombie check and the start time.
    let stat = read_proc(&format!("/proc/{}/stat", file.pid));
    if stat.as_deref().is_some_and(stat_says_zombie) {
        return false;
    }
    // A process is its pid and start time: once its program was checked, it need not be again.
    let ticks = stat.as_deref().and_then(start_ticks);
    let known = ticks.is_some() && verified.as_ref().map(|v| (v.pid, v.start_ticks)) == Some((file.pid, ticks));
    if !known && !looks_like_postgres(file.pid) {
        return false;
    }
    let start_time = stat.as_deref().and_then(start_time_from_stat);
    let live = started_as_recorded(file.start_time, start_time);
    if live && !known && ticks.is_some() {
        // The pid could have been reused between the checks above and the pidfd's opening: keep
        // the pidfd only if /proc still shows the same start.
        let pidfd = pidfd_open(file.pid).filter(|_| {
            read_proc(&format!("/proc/{}/stat", file.pid))
                .as_deref()
                .and_then(start_ticks)
                == ticks
        });
        *verified = Some(Verified {
            pid: file.pid,
            start_ticks: ticks,
            start_time,
            pidfd,
        });
    }
    live
}

fn started_as_recorded(recorded: Option<i64>, actual: Option<i64>) -> bool {
    match (recorded, actual) {
        (Some(recorded), Some(actual)) => (recorded - actual).abs() <= 3,
        _ => true,
    }
}

/// The last process found to be a postgres binary.
struct Verified {
    pid: i32,
    start_ticks: Option<u64>,
    /// Seconds since the epoch, from /proc.
    start_time: Option<i64>,
    /// `None` on kernels before 5.3: every check then goes through /proc.
    pidfd: Option<OwnedFd>,
}

static VERIFIED: std::sync::Mutex<Option<Verified>> = std::sync::Mutex::new(None);

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative return is a descriptor this process now owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A pidfd becomes readable when its process exits (zombies included).
fn pidfd_still_running(fd: &OwnedFd) -> bool {
    let mut pfd = nix::libc::pollfd {
        fd: fd.as_raw_fd(),
        events: nix::libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { nix::libc::poll(&mut pfd, 1, 0) };
    n == 0
}

/// A /proc file in one read: `read_to_string` grows its buffer from 32 bytes, and the kernel
/// renders the whole file again for every read call.
fn read_proc(path: &str) -> Option<String> {
    read_file_bytes(Path::new(path)).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn read_file_bytes(path: &Path) -> Option<Vec<u8>> {
    read_from_start(&fs::File::open(path).ok()?)
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
    let Some(cmdline) = read_file_bytes(Path::new(&format!("/proc/{pid}/cmdline"))) else {
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
    fn a_verified_postmaster_that_exits_is_dead_at_once_even_as_a_zombie() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg0("postgres")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Until it has exec'd, the child is a copy of this test binary.
        for _ in 0..200 {
            if looks_like_postgres(pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let started = start_time_from_stat(&stat).unwrap();
        let file = PidFile::parse(&format!("{pid}\n/d\n{started}\n")).unwrap();
        assert!(is_live_postmaster(&file), "first check, through /proc");
        assert!(is_live_postmaster(&file), "second check, through the pidfd");
        let wrong_start = PidFile::parse(&format!("{pid}\n/d\n{}\n", started - 100)).unwrap();
        assert!(
            !is_live_postmaster(&wrong_start),
            "a file from another start of the same pid"
        );
        child.kill().unwrap();
        // Not reaped yet: a zombie, which kill(pid, 0) still finds.
        for _ in 0..100 {
            if fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| stat_says_zombie(&s)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!is_live_postmaster(&file), "a zombie is not a live postmaster");
        child.wait().unwrap();
        assert!(!is_live_postmaster(&file), "reaped");
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
