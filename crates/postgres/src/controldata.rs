//! `pg_controldata`: the cluster's identity and shutdown state read from `global/pg_control` while
//! PostgreSQL is stopped (or starting, when SQL is not available yet).
//!
//! The tool runs with `LC_ALL=C` because its labels are translated otherwise and we parse them.
//!
//! Failure: the tool fails (corrupt or missing control file) → [`PgError::Command`]; its output lacks
//! the fields we need → [`PgError::Invalid`].

use crate::error::PgError;
use crate::runner::{Cmd, RunAs};
use ferroni_model::{Lsn, PostgresqlConfig};
use std::collections::BTreeMap;
use std::time::Duration;

/// What ferroni needs from `pg_controldata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlData {
    /// "Database system identifier" (a u64 as decimal text, as Patroni stores it).
    pub sysid: String,
    /// The timeline the data is on: "Min recovery ending loc's timeline" for a cluster stopped in
    /// recovery (when set), else "Latest checkpoint's TimeLineID".
    pub timeline: u32,
    /// "Database cluster state", e.g. `shut down`, `in production`.
    pub state: String,
    /// The last shutdown was clean (`shut down` or `shut down in recovery`).
    pub clean_shutdown: bool,
    pub checkpoint_lsn: Option<Lsn>,
    /// "wal_log_hints setting" is on (pg_rewind needs it or checksums).
    pub wal_log_hints: bool,
    /// "Data page checksum version" is non-zero.
    pub data_checksums: bool,
    /// Every `label: value` line, for anything else a caller needs.
    pub raw: BTreeMap<String, String>,
}

impl ControlData {
    pub fn parse(text: &str) -> Result<ControlData, PgError> {
        let raw: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let get = |k: &str| raw.get(k).map(String::as_str);
        let missing = |k: &str| PgError::Invalid(format!("pg_controldata output lacks {k:?}"));
        let sysid = get("Database system identifier").ok_or_else(|| missing("Database system identifier"))?;
        let state = get("Database cluster state").ok_or_else(|| missing("Database cluster state"))?;
        let checkpoint_tli: u32 = get("Latest checkpoint's TimeLineID")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| missing("Latest checkpoint's TimeLineID"))?;
        let min_recovery_tli: u32 = get("Min recovery ending loc's timeline")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // A standby's control file checkpoint lags behind what it replayed; the minimum recovery point
        // carries the timeline it really reached (Patroni does the same).
        let in_recovery = matches!(state, "shut down in recovery" | "in archive recovery");
        let timeline = if in_recovery && min_recovery_tli > 0 {
            min_recovery_tli
        } else {
            checkpoint_tli
        };
        Ok(ControlData {
            sysid: sysid.to_string(),
            timeline,
            state: state.to_string(),
            clean_shutdown: matches!(state, "shut down" | "shut down in recovery"),
            checkpoint_lsn: get("Latest checkpoint location").and_then(|v| v.parse().ok()),
            wal_log_hints: get("wal_log_hints setting") == Some("on"),
            data_checksums: get("Data page checksum version").is_some_and(|v| v != "0"),
            raw: raw.clone(),
        })
    }

    /// Run `pg_controldata` on the configured data directory and parse it.
    pub async fn read(cfg: &PostgresqlConfig, run_as: Option<RunAs>) -> Result<ControlData, PgError> {
        let out = Cmd::new("pg_controldata", cfg.bin("pg_controldata"))
            .arg(&cfg.data_dir)
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .run_as(run_as)
            .timeout(Some(Duration::from_secs(10)))
            .keep_stdout()
            .silent()
            .run_checked()
            .await?;
        ControlData::parse(&out.stdout.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7301234567890123456
Database cluster state:               shut down in recovery
pg_control last modified:             Sat 22 Nov 2025 00:00:00 UTC
Latest checkpoint location:           0/3000060
Latest checkpoint's REDO location:    0/3000028
Latest checkpoint's TimeLineID:       1
Minimum recovery ending location:     0/4000000
Min recovery ending loc's timeline:   2
wal_log_hints setting:                on
Data page checksum version:           0
";

    #[test]
    fn parses_identity_and_state() {
        let cd = ControlData::parse(SAMPLE).unwrap();
        assert_eq!(cd.sysid, "7301234567890123456");
        assert!(cd.clean_shutdown);
        assert_eq!(cd.checkpoint_lsn, Some(Lsn(0x3000060)));
        assert!(cd.wal_log_hints);
        assert!(!cd.data_checksums);
        assert_eq!(cd.raw["Catalog version number"], "202209061");
    }

    #[test]
    fn uses_min_recovery_timeline_when_stopped_in_recovery() {
        let text = SAMPLE.to_string();
        assert_eq!(ControlData::parse(&text).unwrap().timeline, 2);
        let primary = text.replace("shut down in recovery", "in production");
        let cd = ControlData::parse(&primary).unwrap();
        assert_eq!(cd.timeline, 1);
        assert!(!cd.clean_shutdown, "in production means it crashed or still runs");
        assert!(
            ControlData::parse(&text.replace("shut down in recovery", "shut down"))
                .unwrap()
                .clean_shutdown
        );
    }

    #[test]
    fn rejects_output_without_identity() {
        let err = ControlData::parse("pg_control version number: 1300\n").unwrap_err();
        assert!(err.to_string().contains("Database system identifier"), "{err}");
    }
}
