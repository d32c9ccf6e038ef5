//! Write-ahead log positions. Patroni stores them as plain integers in the DCS; Postgres prints them
//! as `X/Y` hex pairs. Both forms convert here.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hi, lo) = s.trim().split_once('/').ok_or_else(|| format!("not an LSN: {s:?}"))?;
        let hi = u64::from_str_radix(hi, 16).map_err(|_| format!("not an LSN: {s:?}"))?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| format!("not an LSN: {s:?}"))?;
        if hi > u32::MAX as u64 || lo > u32::MAX as u64 {
            return Err(format!("not an LSN: {s:?}"));
        }
        Ok(Lsn((hi << 32) | lo))
    }
}

impl Lsn {
    /// Bytes by which `self` is behind `ahead`; zero when it is not behind.
    pub fn lag_behind(self, ahead: Lsn) -> u64 {
        ahead.0.saturating_sub(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_postgres_text() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn(0));
        assert!("zz".parse::<Lsn>().is_err());
        assert!("1/100000000".parse::<Lsn>().is_err());
    }

    #[test]
    fn lag_saturates() {
        assert_eq!(Lsn(10).lag_behind(Lsn(25)), 15);
        assert_eq!(Lsn(30).lag_behind(Lsn(25)), 0);
    }
}
