//! ISO 8601 timestamps as `scheduled_at` carries them, without a date-time dependency.
//!
//! Accepted: `YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]][offset]` where the offset is `Z`, `±HH:MM`,
//! `±HHMM`, `±HH` or `UTC`/`GMT` (optionally after a space), and a bare `YYYY-MM-DD`. That covers
//! what patronictl sends (Python's `datetime.isoformat()`) and what people type; Patroni's
//! `dateutil` parser accepts more free-form text, which is not worth imitating.
//!
//! Failure story: anything else is [`TimestampError`]; a timestamp without offset parses but is
//! [`Timestamp::is_naive`], which the caller rejects (Patroni: timezone information is mandatory).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A calendar timestamp with an optional UTC offset, to microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
    /// Minutes east of UTC; `None` for a naive timestamp.
    pub offset_minutes: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampError(pub String);

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid timestamp: {}", self.0)
    }
}

impl std::error::Error for TimestampError {}

/// Reads exactly `n` ASCII digits from the front of `s`.
fn digits(s: &mut &[u8], n: usize) -> Option<u32> {
    if s.len() < n || !s[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s[..n].iter().fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    *s = &s[n..];
    Some(v)
}

fn eat(s: &mut &[u8], c: u8) -> bool {
    if s.first() == Some(&c) {
        *s = &s[1..];
        true
    } else {
        false
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_offset(s: &mut &[u8]) -> Option<i32> {
    match s.first()? {
        b'Z' | b'z' => {
            *s = &s[1..];
            Some(0)
        }
        b'U' | b'G' if s.eq_ignore_ascii_case(b"UTC") || s.eq_ignore_ascii_case(b"GMT") => {
            *s = &s[3..];
            Some(0)
        }
        sign @ (b'+' | b'-') => {
            let negative = *sign == b'-';
            *s = &s[1..];
            let hours = digits(s, 2)?;
            let minutes = if eat(s, b':') {
                digits(s, 2)?
            } else {
                digits(s, 2).unwrap_or(0)
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = (hours * 60 + minutes) as i32;
            Some(if negative { -total } else { total })
        }
        _ => None,
    }
}

impl Timestamp {
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let err = || TimestampError(text.to_string());
        let mut s = text.trim().as_bytes();
        let year = digits(&mut s, 4).ok_or_else(err)? as i32;
        let month = eat(&mut s, b'-').then(|| digits(&mut s, 2)).flatten().ok_or_else(err)?;
        let day = eat(&mut s, b'-').then(|| digits(&mut s, 2)).flatten().ok_or_else(err)?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(err());
        }
        let mut ts = Timestamp {
            year,
            month,
            day,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
            offset_minutes: None,
        };
        if s.is_empty() {
            return Ok(ts);
        }
        if !(eat(&mut s, b'T') || eat(&mut s, b't') || eat(&mut s, b' ')) {
            return Err(err());
        }
        ts.hour = digits(&mut s, 2).ok_or_else(err)?;
        ts.minute = eat(&mut s, b':').then(|| digits(&mut s, 2)).flatten().ok_or_else(err)?;
        if eat(&mut s, b':') {
            ts.second = digits(&mut s, 2).ok_or_else(err)?;
            if eat(&mut s, b'.') || eat(&mut s, b',') {
                let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
                if n == 0 {
                    return Err(err());
                }
                // Microseconds, like Python's datetime; further digits are dropped.
                let mut micros = 0;
                for i in 0..6 {
                    micros = micros * 10 + s.get(i).filter(|_| i < n).map_or(0, |b| u32::from(b - b'0'));
                }
                ts.micros = micros;
                s = &s[n..];
            }
        }
        if ts.hour > 23 || ts.minute > 59 || ts.second > 59 {
            return Err(err());
        }
        if s.first() == Some(&b' ') {
            s = &s[1..];
            if s.is_empty() {
                return Err(err());
            }
        }
        if !s.is_empty() {
            ts.offset_minutes = Some(parse_offset(&mut s).ok_or_else(err)?);
            if !s.is_empty() {
                return Err(err());
            }
        }
        Ok(ts)
    }

    /// No UTC offset was given, so the instant is ambiguous.
    pub fn is_naive(&self) -> bool {
        self.offset_minutes.is_none()
    }

    /// Microseconds since the Unix epoch; `None` for a naive timestamp.
    pub fn epoch_micros(&self) -> Option<i64> {
        let offset = i64::from(self.offset_minutes?);
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400 + i64::from(self.hour * 3600 + self.minute * 60 + self.second) - offset * 60;
        Some(secs * 1_000_000 + i64::from(self.micros))
    }

    /// Python's `datetime.isoformat()`, which is how Patroni writes `scheduled_at`:
    /// `2026-07-14T20:27:00+00:00`, with `.ffffff` only when there are microseconds.
    pub fn isoformat(&self) -> String {
        let mut out = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if self.micros != 0 {
            out.push_str(&format!(".{:06}", self.micros));
        }
        if let Some(off) = self.offset_minutes {
            let sign = if off < 0 { '-' } else { '+' };
            out.push_str(&format!("{sign}{:02}:{:02}", off.abs() / 60, off.abs() % 60));
        }
        out
    }
}

/// The current time in microseconds since the Unix epoch.
pub fn now_epoch_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(s: &str) -> i64 {
        Timestamp::parse(s).unwrap().epoch_micros().unwrap()
    }

    #[test]
    fn rfc3339_and_python_isoformat() {
        assert_eq!(epoch("1970-01-01T00:00:00Z"), 0);
        assert_eq!(epoch("1970-01-01T01:00:00+01:00"), 0);
        assert_eq!(epoch("1969-12-31T23:00:00-0100"), 0);
        assert_eq!(epoch("2000-03-01T00:00:00+00"), 951_868_800_000_000);
        assert_eq!(epoch("2024-02-29 12:30:15.5 UTC"), 1_709_209_815_500_000);
        assert_eq!(epoch("2024-02-29T12:30:15,123456789z"), 1_709_209_815_123_456);
        assert_eq!(epoch("2024-02-29T12:30 +02:00"), 1_709_202_600_000_000);
        let t = Timestamp::parse("2026-07-14T20:27:00.250+05:30").unwrap();
        assert_eq!(t.isoformat(), "2026-07-14T20:27:00.250000+05:30");
        assert_eq!(
            Timestamp::parse("2026-07-14t20:27Z").unwrap().isoformat(),
            "2026-07-14T20:27:00+00:00"
        );
        assert_eq!(
            Timestamp::parse("2026-07-14T20:27:00-08:00").unwrap().isoformat(),
            "2026-07-14T20:27:00-08:00"
        );
    }

    #[test]
    fn naive_timestamps_parse_without_instant() {
        for s in ["2026-07-14T20:27:00", "2026-07-14 20:27", "2026-07-14"] {
            let t = Timestamp::parse(s).unwrap();
            assert!(t.is_naive(), "{s}");
            assert_eq!(t.epoch_micros(), None);
        }
    }

    #[test]
    fn garbage_is_rejected() {
        for s in [
            "",
            "now",
            "tomorrow",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-07-14T24:00:00Z",
            "2026-07-14T20:60:00Z",
            "2026-07-14T20:27:61Z",
            "2026-07-14T20:27:00+25:00",
            "2026-07-14T20:27:00.Z",
            "2026-07-14T20:27:00Zjunk",
            "2026-7-14T20:27:00Z",
            "2026-07-14X20:27:00Z",
            "1784060820",
        ] {
            assert!(Timestamp::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now_epoch_micros() > epoch("2024-01-01T00:00:00Z"));
    }
}
