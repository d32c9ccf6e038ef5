//! Wall-clock times in local time like patronictl prints them: the line `list -t` prints before
//! each table (`2024-05-01 10:00:00`), the prefix of action results (`2024-05-01 10:00:00.123456`),
//! the example in the "when" prompts (`2024-05-01T11:00`), and the UTC offset a naive `--scheduled`
//! time gets. The workspace has no date crate, and local time needs the C library's time-zone
//! rules, so this asks `localtime_r` and `mktime` (through nix's re-export of libc).

use ferroni_api::timestamp::Timestamp;
use nix::libc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now() -> String {
    let secs = since_epoch(Duration::ZERO).as_secs();
    format_local(secs)
}

/// patronictl's `timestamp()`: local time with microseconds, the prefix of action results.
pub fn now_precise() -> String {
    let now = since_epoch(Duration::ZERO);
    format!("{}.{:06}", format_local(now.as_secs()), now.subsec_micros())
}

/// Local time an hour from now as `YYYY-MM-DDTHH:MM`, the example patronictl's prompts show.
pub fn next_hour_example() -> String {
    let secs = since_epoch(Duration::from_secs(3600)).as_secs();
    match local_tm(secs) {
        Some(tm) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min
        ),
        None => "2030-01-01T12:00".to_string(),
    }
}

fn since_epoch(ahead: Duration) -> Duration {
    (SystemTime::now() + ahead)
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

fn local_tm(secs: u64) -> Option<libc::tm> {
    let t = libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX);
    // SAFETY: `tm` is plain old data for which all-zero bytes are a valid value; `localtime_r` is
    // the thread-safe variant and writes only into the `tm` we pass, reading `t` by pointer.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        Some(tm)
    }
}

fn format_local(secs: u64) -> String {
    let Some(tm) = local_tm(secs) else {
        return format!("@{secs}");
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// Gives a naive timestamp the local UTC offset in force at that wall-clock time (as dateutil's
/// `tzlocal()` does for patronictl); timestamps with an offset are returned unchanged.
pub fn with_local_offset(ts: Timestamp) -> Timestamp {
    if !ts.is_naive() {
        return ts;
    }
    // SAFETY: as in `local_tm`; `mktime` reads and normalises only the `tm` we pass.
    let offset_secs = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = ts.year - 1900;
        tm.tm_mon = ts.month as libc::c_int - 1;
        tm.tm_mday = ts.day as libc::c_int;
        tm.tm_hour = ts.hour as libc::c_int;
        tm.tm_min = ts.minute as libc::c_int;
        tm.tm_sec = ts.second as libc::c_int;
        // Let the C library decide whether daylight saving time applies.
        tm.tm_isdst = -1;
        if libc::mktime(&mut tm) == -1 { 0 } else { tm.tm_gmtoff }
    };
    Timestamp {
        offset_minutes: Some(i32::try_from(offset_secs / 60).unwrap_or(0)),
        ..ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_like_patronictl() {
        let s = now();
        assert_eq!(s.len(), 19, "{s}");
        assert_eq!(&s[4..5], "-");
        assert_eq!(&s[10..11], " ");
        assert_eq!(&s[13..14], ":");
        let p = now_precise();
        assert_eq!((p.len(), &p[19..20]), (26, "."), "{p}");
        let e = next_hour_example();
        assert_eq!((e.len(), &e[10..11]), (16, "T"), "{e}");
    }

    #[test]
    fn naive_times_get_the_local_offset() {
        let aware = Timestamp::parse("2026-11-22T12:00:00+02:00").expect("valid");
        assert_eq!(with_local_offset(aware), aware);
        let naive = Timestamp::parse("2026-11-22T12:00").expect("valid");
        let local = with_local_offset(naive);
        assert!(!local.is_naive());
        assert_eq!((local.hour, local.minute), (12, 0));
        // Whatever the zone, the instant is the wall-clock time read back in local time.
        let secs = u64::try_from(local.epoch_micros().expect("aware") / 1_000_000).expect("after 1970");
        assert_eq!(format_local(secs), "2026-11-22 12:00:00");
    }
}
