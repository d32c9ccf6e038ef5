//! The wall-clock line `list -t` prints before each table, in local time like patronictl
//! (`2024-05-01 10:00:00`). The workspace has no date crate, and the local offset needs the C
//! library's time-zone rules, so this asks `localtime_r` (through nix's re-export of libc).

use nix::libc;

pub fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_local(secs)
}

fn format_local(secs: u64) -> String {
    let t = libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX);
    // SAFETY: `tm` is plain old data for which all-zero bytes are a valid value; `localtime_r` is
    // the thread-safe variant and writes only into the `tm` we pass, reading `t` by pointer.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return format!("@{secs}");
        }
        tm
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
    }
}
