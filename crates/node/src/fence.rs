//! Fencing Postgres when its daemon freezes.
//!
//! A daemon that is paused (SIGSTOP, a stalled VM, heavy swapping) can neither refresh its leader
//! lease nor demote its Postgres; once the lease expires another node promotes, and without a
//! fence there are two writable primaries. This module owns both halves of the fence:
//!
//! - [`Heartbeat`] (daemon side): after each successful lock refresh as primary the daemon writes
//!   a deadline into a small file; when it is not primary (or stopped Postgres itself) it removes
//!   the file.
//! - [`run_fence`] (fence side): a plain synchronous loop in a separate process, started by
//!   [`spawn_fence`] in its own session so that freezing the daemon's process group does not
//!   freeze it. When the deadline in the file has passed it stops Postgres with an immediate
//!   shutdown (SIGQUIT, then SIGKILL for the postmaster and its children after 2 s).
//!
//! Deadlines are CLOCK_BOOTTIME instants: that clock keeps counting while the machine is suspended
//! (a resumed laptop or VM must fence at once, its lease is long gone) and wall-clock steps cannot
//! move it. The file also names the boot it was written in, so a file left over from a previous
//! boot (or copied from another machine) is never enforced: its clock is meaningless here.
//!
//! How it can fail: the fence refuses to signal a process unless `postmaster.pid` names a live
//! `postgres` process whose data directory (line 2, and its cwd when readable) is ours, so a stale
//! pid file can at worst make it do nothing (logged). If the fence process itself dies, nothing
//! fences; the daemon should notice (`Child::try_wait`) and start a new one. The fence reacts at the
//! deadline (a timerfd, see `fence_wait.rs`) plus the time Postgres needs to act on SIGQUIT, which
//! the safety margin must cover.

// A file of its own beside this one (the fencing test includes this file by path).
#[path = "fence_wait.rs"]
mod wait;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// First argument that selects fence mode in the `ferroni` binary:
/// `ferroni --fence <heartbeat> <data_dir> <daemon_pid>`.
pub const FENCE_FLAG: &str = "--fence";

/// Time an immediate shutdown gets before the postmaster and its children are killed.
const QUIT_GRACE: Duration = Duration::from_secs(2);
/// Heartbeat content that tells the fence to exit (see [`Heartbeat::stop_fence`]).
const EXIT_WORD: &str = "exit";

/// Time since boot on CLOCK_BOOTTIME (includes suspend, immune to wall-clock changes).
pub fn boottime() -> Duration {
    let mut ts = nix::libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_BOOTTIME, &mut ts) };
    // Only EFAULT/EINVAL are possible, i.e. a bad pointer or a kernel older than 2.6.39: both are
    // impossible here, and continuing with a made-up clock would defeat the fence.
    assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// An instant on CLOCK_BOOTTIME after which Postgres must not be running unfenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub Duration);

impl Deadline {
    /// How long ago the deadline passed, `None` while it is still ahead.
    fn exceeded_by(self, now: Duration) -> Option<Duration> {
        now.checked_sub(self.0).filter(|d| !d.is_zero())
    }
}

/// The configured `watchdog.safety_margin` as a duration: `-1` (any negative value) means
/// `ttl / 2`, as in Patroni.
pub fn margin_from_config(safety_margin: i64, ttl: Duration) -> Duration {
    match u64::try_from(safety_margin) {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => ttl / 2,
    }
}

/// The margin the fence actually keeps: `min(safety_margin, ttl / 2)`. With a short ttl the
/// configured margin (default 5 s) could otherwise swallow the whole ttl and fence a healthy
/// primary between two refreshes; half the ttl still leaves the daemon half a ttl to refresh.
pub fn effective_margin(ttl: Duration, safety_margin: Duration) -> Duration {
    safety_margin.min(ttl / 2)
}

/// The fence deadline for a lock refresh that *started* at `start` (boottime): the lease the
/// DCS grants counts from when it processed the request, which is after `start`, so
/// `start + ttl` is never later than the real expiry; the margin covers the fence's poll
/// interval and the time Postgres takes to stop.
pub fn deadline_after(start: Duration, ttl: Duration, safety_margin: Duration) -> Deadline {
    Deadline(start + ttl - effective_margin(ttl, safety_margin))
}

/// What the heartbeat file currently says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HeartbeatState {
    /// No file: nothing to fence.
    Disarmed,
    /// Postgres must be stopped once boottime passes this deadline.
    Armed(Deadline),
    /// The daemon asked the fence to exit.
    Exit,
    /// Written during another boot (or on another machine): its clock means nothing here.
    OtherBoot,
    /// Unreadable or malformed; treated as disarmed (the daemon only writes whole files).
    Invalid(String),
}

/// The daemon's side of the fence: one file holding the current deadline.
#[derive(Debug)]
pub struct Heartbeat {
    path: PathBuf,
    /// The deadline this value last wrote: an armed fence only wakes for a rename (see
    /// `fence_wait.rs`), so a deadline earlier than the last one is renamed into place.
    last: std::cell::Cell<Option<Deadline>>,
    /// The file the last deadline was written to, open read-only so that a loop that renews
    /// nothing costs one `fstat` (is it still linked?): the deadline only moves when the lock is
    /// renewed, not every loop. Read-only, because closing a descriptor opened for writing is what
    /// wakes a fence that is not armed (it waits for `IN_CLOSE_WRITE`), so writes close theirs.
    written: std::cell::RefCell<Option<fs::File>>,
}

impl Heartbeat {
    /// `path` should not be inside the data directory: pg_basebackup and pg_rewind would copy it
    /// to another node. A sibling such as `<data_dir>.fence` works.
    pub fn new(path: impl Into<PathBuf>) -> Heartbeat {
        Heartbeat {
            path: path.into(),
            last: std::cell::Cell::new(None),
            written: std::cell::RefCell::new(None),
        }
    }

    /// Publishes `deadline`, once per loop on a primary; a deadline already in the file is not
    /// written again. Overwritten in place at a fixed width:
    /// replacing the file by a rename made ext4 write the new file back at once (its
    /// replace-via-rename heuristic), the largest part of an idle primary's CPU. The deadline is
    /// written twice so that a read torn by a concurrent write is told apart (see [`read_state`]).
    /// A deadline earlier than the last one (a shorter ttl) is renamed into place instead: an
    /// armed fence does not wake for in-place writes. No fsync: after a crash of the machine the
    /// boot id differs anyway.
    pub fn arm(&self, deadline: Deadline) -> io::Result<()> {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let last = self.last.replace(Some(deadline));
        let mut written = self.written.borrow_mut();
        // Unlinked (disarmed from outside the loop, removed by the fence when it fired, replaced
        // by a rename): the path no longer names this file, so it must be opened again.
        if let Some(file) = written.as_ref()
            && file.metadata()?.nlink() == 0
        {
            *written = None;
        }
        if last == Some(deadline) && written.is_some() {
            return Ok(());
        }
        // Until this write succeeds, the next call must not take the file for written.
        *written = None;
        let ms = deadline.0.as_millis();
        let text = format!("{ms:020} {ms:020} {}\n", boot_id());
        if last.is_some_and(|last| deadline < last) {
            drop(written);
            return self.write(&text);
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        file.write_all_at(text.as_bytes(), 0)?;
        // Longer leftovers (an `exit` never is; an older format could be) must not trail it.
        if file.metadata()?.len() != text.len() as u64 {
            file.set_len(text.len() as u64)?;
        }
        // Closed at once: its close is what wakes a fence that is not armed yet.
        drop(file);
        *written = Some(fs::File::open(&self.path)?);
        Ok(())
    }

    /// Nothing to fence (replica, Postgres stopped by the daemon, paused cluster). Idempotent.
    pub fn disarm(&self) -> io::Result<()> {
        self.last.set(None);
        self.written.take();
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Tells a running fence to exit within one poll. The daemon must call [`Heartbeat::disarm`]
    /// before starting a new fence, or the new one would exit at once.
    pub fn stop_fence(&self) -> io::Result<()> {
        self.write(&format!("{EXIT_WORD}\n"))
    }

    /// Written to a temporary file and renamed: rare, so the cost of a rename does not matter.
    fn write(&self, content: &str) -> io::Result<()> {
        self.written.take();
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        fs::write(&tmp, content)?;
        fs::rename(&tmp, &self.path)
    }
}

fn read_state(path: &Path) -> HeartbeatState {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return HeartbeatState::Disarmed,
        Err(e) => return HeartbeatState::Invalid(format!("cannot read: {e}")),
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some(first) = words.first().copied() else {
        return HeartbeatState::Invalid("empty".into());
    };
    if first == EXIT_WORD {
        return HeartbeatState::Exit;
    }
    // `<ms> <ms> <boot id>`; the older `<ms> <boot id>` is still read.
    let (copy, boot) = match words.len() {
        3 => (Some(words[1]), words.get(2).copied()),
        _ => (None, words.get(1).copied()),
    };
    let parse = |w: &str| w.parse::<u64>().ok();
    let Some(ms) = parse(first) else {
        return HeartbeatState::Invalid(format!("not a deadline: {:?}", text.trim()));
    };
    if copy.is_some_and(|c| parse(c) != Some(ms)) {
        return HeartbeatState::Invalid("torn read (the two copies differ)".into());
    }
    // Without a readable boot id (not Linux /proc) every file counts as this boot's.
    if !boot_id().is_empty() && boot != Some(boot_id()) {
        return HeartbeatState::OtherBoot;
    }
    HeartbeatState::Armed(Deadline(Duration::from_millis(ms)))
}

fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}

/// Where the fence's stderr goes: `<heartbeat>.log`.
pub fn fence_log_path(heartbeat: &Path) -> PathBuf {
    let mut p = heartbeat.as_os_str().to_owned();
    p.push(".log");
    PathBuf::from(p)
}

/// Starts `<exe> --fence <heartbeat> <data_dir> <daemon_pid>` in its own session, stdin and stdout
/// on /dev/null and stderr appended to [`fence_log_path`]. Its own session (and so its own process
/// group) means `kill -STOP -<daemon pgid>` or a terminal's Ctrl-Z/Ctrl-C do not reach it. Use
/// `/proc/self/exe` as `exe`: it still names the running binary after a package upgrade replaced
/// the file. The caller owns the returned child and must reap it.
pub fn spawn_fence(exe: &Path, heartbeat: &Path, data_dir: &Path, daemon_pid: u32) -> io::Result<Child> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(fence_log_path(heartbeat))?;
    let mut cmd = Command::new(exe);
    // `ps` then shows what it is even when `exe` is `/proc/self/exe`.
    cmd.arg0("ferroni-fence")
        .arg(FENCE_FLAG)
        .arg(heartbeat)
        .arg(data_dir)
        .arg(daemon_pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: the closure runs between fork and exec; setsid(2) is async-signal-safe and the
    // closure neither allocates nor takes locks.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
    }
    cmd.spawn()
}

/// Entry point for `ferroni --fence ...`: `args` are the arguments after [`FENCE_FLAG`].
pub fn fence_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    let pid = args.get(2).and_then(|p| p.to_str()).and_then(|p| p.parse::<i32>().ok());
    match (args.len(), pid) {
        (3, Some(pid)) if pid > 0 => {
            // The kernel's name for the process (`pgrep ferroni-fence`, top); "exe" when started
            // through /proc/self/exe otherwise. Cosmetic, so a failure is ignored.
            let _ = nix::sys::prctl::set_name(c"ferroni-fence");
            run_fence(Path::new(&args[0]), Path::new(&args[1]), pid)
        }
        _ => {
            eprintln!("usage: ferroni {FENCE_FLAG} <heartbeat file> <data dir> <daemon pid>");
            ExitCode::from(2)
        }
    }
}

/// The fence loop, woken by the heartbeat file, its deadline or the daemon's exit: an expired deadline stops Postgres and removes the heartbeat
/// (fence once; a thawed daemon re-arms it). Exits when asked (`exit` in the file), or when the
/// daemon is gone and nothing is armed. A daemon that died while armed still has a lease running
/// out in the DCS, so the deadline is enforced before exiting.
pub fn run_fence(heartbeat: &Path, data_dir: &Path, daemon_pid: i32) -> ExitCode {
    let daemon = Watched::new(daemon_pid);
    log(&format!(
        "started for daemon pid {daemon_pid}, heartbeat {}, data directory {}",
        heartbeat.display(),
        data_dir.display()
    ));
    let (mut sleeper, missing) = wait::Sleeper::new(heartbeat, daemon_pid);
    for m in missing {
        log(&format!("cannot wait on {m}"));
    }
    let mut last: Option<HeartbeatState> = None;
    // Fencing removes the file; should that fail, this keeps the fence from firing every poll.
    let mut fenced: Option<Deadline> = None;
    loop {
        let state = read_state(heartbeat);
        let now = boottime();
        // Kinds only: a new deadline every loop_wait would fill the log.
        if last.as_ref().map(std::mem::discriminant) != Some(std::mem::discriminant(&state)) {
            log_transition(&state, now);
        }
        let mut pending = None;
        match &state {
            HeartbeatState::Exit => {
                log("asked to exit");
                return ExitCode::SUCCESS;
            }
            HeartbeatState::Armed(deadline) if fenced != Some(*deadline) => match deadline.exceeded_by(now) {
                None => pending = Some(*deadline),
                Some(late) => {
                    fenced = Some(*deadline);
                    let what = fence_postgres(data_dir);
                    log(&format!(
                        "daemon pid {daemon_pid} missed its heartbeat deadline by {} ms: {what}",
                        late.as_millis()
                    ));
                    if let Err(e) = fs::remove_file(heartbeat) {
                        log(&format!("cannot remove {}: {e}", heartbeat.display()));
                    }
                    if !daemon.alive() {
                        log("daemon is gone; exiting after fencing");
                        return ExitCode::SUCCESS;
                    }
                    last = Some(HeartbeatState::Disarmed);
                    sleeper.wait(None);
                    continue;
                }
            },
            // Disarmed, from another boot, unreadable, or a deadline already fenced.
            _ => {
                if !daemon.alive() {
                    log("daemon is gone and nothing is armed; exiting");
                    return ExitCode::SUCCESS;
                }
            }
        }
        last = Some(state);
        sleeper.wait(pending);
    }
}

fn log_transition(state: &HeartbeatState, now: Duration) {
    match state {
        HeartbeatState::Armed(d) => match d.0.checked_sub(now) {
            Some(left) => log(&format!("armed, deadline in {} ms", left.as_millis())),
            None => log("armed with a deadline already passed"),
        },
        HeartbeatState::Disarmed => log("disarmed"),
        HeartbeatState::OtherBoot => log("heartbeat is from another boot; ignored"),
        HeartbeatState::Invalid(why) => log(&format!("heartbeat ignored: {why}")),
        HeartbeatState::Exit => {}
    }
}

/// Stops the Postgres of `data_dir` with an immediate shutdown; returns what it did, for the log.
fn fence_postgres(data_dir: &Path) -> String {
    let pid = match postmaster_pid(data_dir) {
        Ok(Some(pid)) => pid,
        Ok(None) => return "no postmaster.pid, nothing to stop".into(),
        Err(e) => return format!("cannot read postmaster.pid ({e}), nothing stopped"),
    };
    if let Err(why) = verify_postmaster(pid, data_dir) {
        return format!("postmaster.pid names pid {pid}, not signalled: {why}");
    }
    // Listed before signalling: once the postmaster is gone its children are re-parented and
    // could no longer be told apart from other processes.
    let children = children_of(pid);
    if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGQUIT) {
        return format!("SIGQUIT to postmaster {pid} failed: {e}");
    }
    let start = Instant::now();
    while start.elapsed() < QUIT_GRACE {
        if !process_alive(pid) {
            return format!(
                "stopped Postgres (postmaster {pid}) with SIGQUIT in {} ms",
                start.elapsed().as_millis()
            );
        }
        sleep(Duration::from_millis(10));
    }
    // Backends left behind by a killed postmaster would keep serving their open sessions.
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    for child in children.iter().chain(children_of(pid).iter()) {
        let _ = kill(Pid::from_raw(*child), Signal::SIGKILL);
    }
    format!(
        "postmaster {pid} ignored SIGQUIT for {} s; sent SIGKILL to it and {} children",
        QUIT_GRACE.as_secs(),
        children.len()
    )
}

/// First line of `<data_dir>/postmaster.pid`; a single-user backend writes its pid negated.
fn postmaster_pid(data_dir: &Path) -> io::Result<Option<i32>> {
    let text = match fs::read_to_string(data_dir.join("postmaster.pid")) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let first = text.lines().next().unwrap_or("").trim();
    match first.parse::<i32>() {
        Ok(pid) if pid != 0 => Ok(Some(pid.abs())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("first line {first:?} is not a pid"),
        )),
    }
}

/// A stale postmaster.pid may name a pid that now belongs to anything; only a live `postgres`
/// process serving this data directory is ever signalled.
fn verify_postmaster(pid: i32, data_dir: &Path) -> Result<(), String> {
    let ours = fs::canonicalize(data_dir).map_err(|e| format!("data directory: {e}"))?;
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).map_err(|e| e.to_string())?;
    let listed = text.lines().nth(1).unwrap_or("").trim();
    if fs::canonicalize(listed).ok().as_deref() != Some(ours.as_path()) {
        return Err(format!("its data directory line is {listed:?}"));
    }
    if !process_alive(pid) {
        return Err("no such live process".into());
    }
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).map_err(|e| format!("comm: {e}"))?;
    if comm.trim() != "postgres" && comm.trim() != "postmaster" {
        return Err(format!("it is {:?}, not postgres", comm.trim()));
    }
    // The postmaster chdirs into its data directory. Unreadable cwd (another user) is not a
    // refusal by itself: the checks above already tie the pid to our data directory.
    if let Ok(cwd) = fs::read_link(format!("/proc/{pid}/cwd"))
        && cwd != ours
    {
        return Err(format!("its working directory is {}", cwd.display()));
    }
    Ok(())
}

/// `/proc/<pid>/stat` fields after the command name: state is [0], ppid [1], starttime [19].
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Alive and not a zombie (an unreaped process holds no resources and serves nobody).
fn process_alive(pid: i32) -> bool {
    match stat_fields(pid) {
        Some(f) => f.first().is_some_and(|s| s != "Z" && s != "X"),
        None => false,
    }
}

fn children_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            stat_fields(*pid)
                .and_then(|f| f.get(1)?.parse::<i32>().ok())
                .is_some_and(|ppid| ppid == parent)
        })
        .collect()
}

/// The daemon, identified by pid and start time so a recycled pid does not count as the daemon.
struct Watched {
    pid: i32,
    start: Option<String>,
}

impl Watched {
    fn new(pid: i32) -> Watched {
        Watched {
            pid,
            start: stat_fields(pid).and_then(|f| f.get(19).cloned()),
        }
    }

    fn alive(&self) -> bool {
        process_alive(self.pid)
            && (self.start.is_none() || stat_fields(self.pid).and_then(|f| f.get(19).cloned()) == self.start)
    }
}

/// One line on stderr (the fence log), with a UTC timestamp: the fence has no tracing set up.
fn log(msg: &str) {
    eprintln!("{} ferroni-fence[{}]: {msg}", utc_now(), std::process::id());
}

fn utc_now() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn margin_is_capped_at_half_the_ttl() {
        assert_eq!(
            effective_margin(S(30), S(5)),
            S(5),
            "Patroni defaults: ttl 30, margin 5"
        );
        assert_eq!(effective_margin(S(10), S(5)), S(5), "exactly half");
        assert_eq!(effective_margin(S(4), S(5)), S(2), "short ttl: half of it");
        assert_eq!(effective_margin(S(3), S(5)), Duration::from_millis(1500));
        assert_eq!(effective_margin(S(10), S(0)), S(0), "no margin configured");
    }

    #[test]
    fn configured_margin_minus_one_means_half_the_ttl() {
        assert_eq!(margin_from_config(-1, S(30)), S(15));
        assert_eq!(margin_from_config(5, S(30)), S(5));
        assert_eq!(margin_from_config(0, S(30)), S(0));
    }

    #[test]
    fn deadline_counts_from_the_start_of_the_refresh() {
        assert_eq!(deadline_after(S(100), S(30), S(5)), Deadline(S(125)));
        assert_eq!(deadline_after(S(100), S(4), S(5)), Deadline(S(102)));
        assert_eq!(
            deadline_after(S(100), S(30), margin_from_config(-1, S(30))),
            Deadline(S(115))
        );
        let d = Deadline(S(10));
        assert_eq!(d.exceeded_by(S(9)), None);
        assert_eq!(d.exceeded_by(S(10)), None, "not exceeded at the deadline itself");
        assert_eq!(
            d.exceeded_by(Duration::from_millis(10_250)),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn boottime_moves_forward() {
        let a = boottime();
        std::thread::sleep(Duration::from_millis(20));
        let b = boottime();
        assert!(b > a && b - a >= Duration::from_millis(20), "{a:?} then {b:?}");
    }

    #[test]
    fn heartbeat_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hb");
        let hb = Heartbeat::new(&path);
        assert_eq!(read_state(&path), HeartbeatState::Disarmed);
        hb.arm(Deadline(Duration::from_millis(123_456_789))).unwrap();
        assert_eq!(
            read_state(&path),
            HeartbeatState::Armed(Deadline(Duration::from_millis(123_456_789)))
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("00000000000123456789 00000000000123456789 "),
            "{text:?}"
        );
        use std::os::unix::fs::MetadataExt;
        let inode = || fs::metadata(&path).unwrap().ino();
        let first = inode();
        hb.arm(Deadline(Duration::from_millis(123_456_999))).unwrap();
        assert_eq!(inode(), first, "a later deadline is written in place");
        fs::remove_file(&path).unwrap();
        hb.arm(Deadline(Duration::from_millis(123_456_999))).unwrap();
        assert_eq!(
            read_state(&path),
            HeartbeatState::Armed(Deadline(Duration::from_millis(123_456_999))),
            "the same deadline is written again once the file was removed"
        );
        let first = inode();
        hb.arm(Deadline(Duration::from_millis(5))).unwrap();
        assert_eq!(
            read_state(&path),
            HeartbeatState::Armed(Deadline(Duration::from_millis(5)))
        );
        assert_eq!(fs::read_to_string(&path).unwrap().len(), text.len(), "fixed width");
        assert_ne!(
            inode(),
            first,
            "an earlier deadline is renamed into place, which wakes an armed fence"
        );
        assert!(!dir.path().join("hb.tmp").exists(), "temporary file renamed away");
        hb.stop_fence().unwrap();
        assert_eq!(read_state(&path), HeartbeatState::Exit);
        hb.disarm().unwrap();
        assert_eq!(read_state(&path), HeartbeatState::Disarmed);
        hb.disarm().expect("disarming twice is fine");
    }

    /// A fence that is not armed waits for a heartbeat write to be closed: arming must close what
    /// it wrote, whether it created the file or moved a deadline later in place.
    #[test]
    fn arming_wakes_a_fence_that_is_not_armed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hb");
        let (mut sleeper, missing) = wait::Sleeper::new(&path, std::process::id() as i32);
        assert!(missing.is_empty(), "{missing:?}");
        let hb = std::sync::Arc::new(std::sync::Mutex::new(Heartbeat::new(&path)));
        let woken_by = |deadline_ms: u64, sleeper: &mut wait::Sleeper| {
            let (hb, unrelated) = (hb.clone(), dir.path().join("unrelated"));
            let (woke_tx, woke_rx) = std::sync::mpsc::channel::<()>();
            let arming = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                hb.lock()
                    .unwrap()
                    .arm(Deadline(Duration::from_millis(deadline_ms)))
                    .unwrap();
                // Ends the wait even if arming did not, so that a failure does not hang the test.
                if woke_rx.recv_timeout(Duration::from_secs(3)).is_err() {
                    fs::write(unrelated, "x").unwrap();
                }
            });
            let t = std::time::Instant::now();
            sleeper.wait(None);
            let woke = t.elapsed();
            let _ = woke_tx.send(());
            arming.join().unwrap();
            woke
        };
        let woke = woken_by(123_456_789, &mut sleeper);
        assert!(
            woke < Duration::from_secs(2),
            "creating the heartbeat woke the fence after {woke:?}"
        );
        assert_eq!(
            read_state(&path),
            HeartbeatState::Armed(Deadline(Duration::from_millis(123_456_789)))
        );
        let woke = woken_by(123_459_789, &mut sleeper);
        assert!(
            woke < Duration::from_secs(2),
            "a later deadline woke the fence after {woke:?}"
        );
    }

    #[test]
    fn heartbeat_from_another_boot_or_garbage_is_not_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hb");
        fs::write(&path, "5000 00000000-0000-0000-0000-000000000000\n").unwrap();
        assert_eq!(read_state(&path), HeartbeatState::OtherBoot);
        fs::write(&path, "soon\n").unwrap();
        assert!(matches!(read_state(&path), HeartbeatState::Invalid(_)));
        fs::write(
            &path,
            format!("00000000000000012345 00000000000000099999 {}\n", boot_id()),
        )
        .unwrap();
        assert!(matches!(read_state(&path), HeartbeatState::Invalid(_)), "torn");
        fs::write(&path, format!("12345 {}\n", boot_id())).unwrap();
        assert_eq!(
            read_state(&path),
            HeartbeatState::Armed(Deadline(Duration::from_millis(12345)))
        );
        fs::write(&path, "").unwrap();
        assert!(matches!(read_state(&path), HeartbeatState::Invalid(_)));
    }

    #[test]
    fn postmaster_pid_parsing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(postmaster_pid(dir.path()).unwrap(), None);
        fs::write(dir.path().join("postmaster.pid"), "4242\n/data\n").unwrap();
        assert_eq!(postmaster_pid(dir.path()).unwrap(), Some(4242));
        fs::write(dir.path().join("postmaster.pid"), "-4242\n/data\n").unwrap();
        assert_eq!(postmaster_pid(dir.path()).unwrap(), Some(4242), "single-user backend");
        fs::write(dir.path().join("postmaster.pid"), "garbage\n").unwrap();
        assert!(postmaster_pid(dir.path()).is_err());
    }

    #[test]
    fn utc_timestamp_shape() {
        let t = utc_now();
        assert_eq!(t.len(), "2026-01-02T03:04:05.678Z".len(), "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
