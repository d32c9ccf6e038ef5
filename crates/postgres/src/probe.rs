//! One observation of the local PostgreSQL, turned into the closed [`PgState`] the decision reads,
//! plus the details it needs around it (`pg_stat_replication`, WAL receiver, pending restart).
//!
//! Order of checks: data directory absent/empty → `NoData`; no `global/pg_control` → `InvalidData`;
//! no live postmaster for this data directory → `pg_controldata` → `Stopped`; postmaster alive →
//! one SQL round trip (two statements) over a cached superuser connection → `Running`; connecting or
//! querying fails while the postmaster lives → `Starting` with the reason in [`Probe::error`].
//!
//! Timeline: on a primary it comes from `pg_walfile_name(pg_current_wal_lsn())` because
//! `pg_control_checkpoint()` only changes at the next checkpoint after a promote; on a replica from the
//! WAL receiver's `received_tli`, else the control file.
//!
//! Failure: a probe never fails; every problem becomes a state (`InvalidData`, `Starting`) with a
//! reason. The connection is dropped after any error and re-established on the next probe.

use crate::client::{self, Target};
use crate::conf::{self, SignalFile};
use crate::conninfo;
use crate::controldata::ControlData;
use crate::error::PgError;
use crate::fsutil;
use crate::pidfile::{self, PidFile};
use crate::runner::RunAs;
use ferroni_model::{Lsn, PgRole, PgState, PostgresqlConfig, ReplicationInfo};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryRow};

/// Both connecting and querying must finish within this; the HA loop cannot wait longer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything one probe learned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub state: PgState,
    /// `pg_stat_replication`: the standbys streaming from this server.
    pub replication: Vec<ReplicationRow>,
    /// `pg_stat_wal_receiver` when this server is a standby with a receiver.
    pub wal_receiver: Option<WalReceiver>,
    /// Some setting changed that needs a restart (`pg_settings.pending_restart`).
    pub pending_restart: bool,
    /// The running postmaster's pid.
    pub postmaster_pid: Option<i32>,
    /// Why the state is `Starting` or `InvalidData`, for the log.
    pub error: Option<String>,
    #[serde(skip)]
    pub took: Duration,
}

impl Probe {
    fn bare(state: PgState) -> Probe {
        Probe {
            state,
            replication: Vec::new(),
            wal_receiver: None,
            pending_restart: false,
            postmaster_pid: None,
            error: None,
            took: Duration::ZERO,
        }
    }
}

/// One row of `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicationRow {
    pub pid: i32,
    pub usename: Option<String>,
    pub application_name: String,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub sync_priority: Option<i32>,
    pub sent_lsn: Option<Lsn>,
    pub write_lsn: Option<Lsn>,
    pub flush_lsn: Option<Lsn>,
    pub replay_lsn: Option<Lsn>,
}

/// `pg_stat_wal_receiver` of a standby.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WalReceiver {
    pub status: String,
    pub received_tli: Option<u32>,
    pub latest_end_lsn: Option<Lsn>,
    pub sender_host: Option<String>,
    pub sender_port: Option<u16>,
    pub slot_name: Option<String>,
}

/// Probe once without keeping a connection.
pub async fn probe(pg: &PostgresqlConfig, run_as: Option<RunAs>) -> Probe {
    Prober::new(pg.clone(), run_as).probe().await
}

/// Probes repeatedly, keeping one superuser connection between probes.
pub struct Prober {
    pg: PostgresqlConfig,
    run_as: Option<RunAs>,
    conn: Option<Cached>,
}

struct Cached {
    postmaster_pid: i32,
    client: Client,
}

const STATUS_SQL: &str = "SELECT pg_catalog.pg_is_in_recovery(),
 CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_lsn() END,
 CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()) END,
 pg_catalog.pg_last_wal_receive_lsn(),
 pg_catalog.pg_last_wal_replay_lsn(),
 pg_catalog.to_char(pg_catalog.pg_last_xact_replay_timestamp(), 'YYYY-MM-DD HH24:MI:SS.MS TZ'),
 CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END,
 pg_catalog.to_char(pg_catalog.pg_postmaster_start_time(), 'YYYY-MM-DD HH24:MI:SS.MS TZ'),
 pg_catalog.current_setting('server_version_num'),
 (SELECT system_identifier FROM pg_catalog.pg_control_system()),
 (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()),
 pg_catalog.current_setting('primary_conninfo'),
 (SELECT pg_catalog.count(*) > 0 FROM pg_catalog.pg_settings WHERE pending_restart),
 w.status, w.received_tli, w.latest_end_lsn, w.sender_host, w.sender_port, w.slot_name
FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_stat_wal_receiver AS w ON true;
SELECT pid, usename, application_name, client_addr, state, sync_state, sync_priority,
 sent_lsn, write_lsn, flush_lsn, replay_lsn
FROM pg_catalog.pg_stat_replication ORDER BY application_name";

impl Prober {
    pub fn new(pg: PostgresqlConfig, run_as: Option<RunAs>) -> Self {
        Prober { pg, run_as, conn: None }
    }

    /// Use a new configuration (after a reload); the connection is re-established.
    pub fn set_config(&mut self, pg: PostgresqlConfig) {
        self.pg = pg;
        self.conn = None;
    }

    /// Drop the cached connection (before stopping the server, for instance).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    pub async fn probe(&mut self) -> Probe {
        let started = Instant::now();
        let mut probe = self.observe().await;
        probe.took = started.elapsed();
        probe
    }

    async fn observe(&mut self) -> Probe {
        let data_dir = self.pg.data_dir.clone();
        // A running postmaster first: it is what every cycle of a healthy node finds, and then the
        // data directory is not looked at (as Patroni only checks it while Postgres is down).
        if let Some(pf) = pidfile::running_postmaster(&data_dir) {
            return match self.query(&pf).await {
                Ok(probe) => probe,
                Err(e) => {
                    self.conn = None;
                    self.starting(&pf, e).await
                }
            };
        }
        self.conn = None;
        // pg_control before listing the directory, which is only needed to tell an empty one from
        // a broken one.
        if !data_dir.join("global/pg_control").exists() {
            match fsutil::is_absent_or_empty(&data_dir) {
                Ok(true) => return Probe::bare(PgState::NoData),
                Ok(false) => {}
                Err(e) => return invalid(format!("cannot read data directory {}: {e}", data_dir.display())),
            }
            return invalid(format!("{} holds no global/pg_control", data_dir.display()));
        }
        self.stopped().await
    }

    async fn stopped(&self) -> Probe {
        match ControlData::read(&self.pg, self.run_as).await {
            Ok(cd) => Probe::bare(PgState::Stopped {
                sysid: cd.sysid,
                timeline: cd.timeline,
                clean_shutdown: cd.clean_shutdown,
                standby: conf::signal_file(&self.pg.data_dir) != SignalFile::None,
            }),
            Err(e) => invalid(format!("read pg_controldata: {e}")),
        }
    }

    async fn starting(&self, pf: &PidFile, why: PgError) -> Probe {
        let sysid = ControlData::read(&self.pg, self.run_as)
            .await
            .map(|cd| cd.sysid)
            .unwrap_or_default();
        let mut probe = Probe::bare(PgState::Starting { sysid });
        probe.postmaster_pid = Some(pf.pid);
        probe.error = Some(why.to_string());
        probe
    }

    async fn client_for(&mut self, pf: &PidFile) -> Result<&Client, PgError> {
        let reusable = self
            .conn
            .as_ref()
            .is_some_and(|c| c.postmaster_pid == pf.pid && !c.client.is_closed());
        if !reusable {
            let target = Target::from_pidfile(pf, &self.pg);
            let client = client::connect(&self.pg, &target, PROBE_TIMEOUT).await?;
            self.conn = Some(Cached {
                postmaster_pid: pf.pid,
                client,
            });
        }
        Ok(&self.conn.as_ref().expect("connection was just set").client)
    }

    async fn query(&mut self, pf: &PidFile) -> Result<Probe, PgError> {
        let client = self.client_for(pf).await?;
        let messages = client::with_timeout(
            client,
            PROBE_TIMEOUT,
            "query postgres status",
            client.simple_query(STATUS_SQL),
        )
        .await?;
        let mut statements = split_statements(messages);
        let replication = statements.pop().unwrap_or_default();
        let status = statements.pop().and_then(|mut rows| rows.pop());
        let Some(status) = status else {
            return Err(PgError::Invalid("status query returns no row".into()));
        };
        let mut probe = running_probe(&status)?;
        probe.replication = replication.iter().map(replication_row).collect();
        probe.postmaster_pid = Some(pf.pid);
        Ok(probe)
    }
}

fn invalid(reason: String) -> Probe {
    let mut probe = Probe::bare(PgState::InvalidData { reason: reason.clone() });
    probe.error = Some(reason);
    probe
}

/// Rows of each statement of a multi-statement simple query, in order.
fn split_statements(messages: Vec<SimpleQueryMessage>) -> Vec<Vec<SimpleQueryRow>> {
    let mut statements = Vec::new();
    let mut current = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::Row(row) => current.push(row),
            SimpleQueryMessage::CommandComplete(_) => statements.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    statements
}

fn text(row: &SimpleQueryRow, i: usize) -> Option<&str> {
    row.try_get(i).ok().flatten()
}

fn lsn(row: &SimpleQueryRow, i: usize) -> Option<Lsn> {
    text(row, i).and_then(|s| s.parse().ok())
}

fn boolean(row: &SimpleQueryRow, i: usize) -> bool {
    text(row, i) == Some("t")
}

fn number<T: std::str::FromStr>(row: &SimpleQueryRow, i: usize) -> Option<T> {
    text(row, i).and_then(|s| s.parse().ok())
}

/// The timeline from a WAL file name: its first 8 hex digits.
pub fn timeline_from_walfile(name: &str) -> Option<u32> {
    name.get(..8).and_then(|tli| u32::from_str_radix(tli, 16).ok())
}

fn running_probe(row: &SimpleQueryRow) -> Result<Probe, PgError> {
    let in_recovery = boolean(row, 0);
    let sysid = text(row, 9).ok_or_else(|| PgError::Invalid("status query returns no system identifier".into()))?;
    let wal_receiver = text(row, 13).map(|status| WalReceiver {
        status: status.to_string(),
        received_tli: number(row, 14),
        latest_end_lsn: lsn(row, 15),
        sender_host: text(row, 16).map(str::to_string),
        sender_port: number(row, 17),
        slot_name: text(row, 18).map(str::to_string),
    });
    let checkpoint_tli: u32 = number(row, 10).unwrap_or(0);
    let (role, timeline, position, replication) = if in_recovery {
        let received_tli = wal_receiver.as_ref().and_then(|w| w.received_tli).filter(|t| *t > 0);
        let streaming = wal_receiver.as_ref().is_some_and(|w| w.status == "streaming");
        // The configured upstream, so the daemon sees a wrong one even while not connected.
        let upstream = text(row, 11)
            .filter(|s| !s.is_empty())
            .and_then(conninfo::host_port)
            .or_else(|| {
                let w = wal_receiver.as_ref()?;
                Some(format!("{}:{}", w.sender_host.as_deref()?, w.sender_port?))
            });
        let info = ReplicationInfo {
            received: lsn(row, 3),
            replayed: lsn(row, 4),
            replayed_timestamp: text(row, 5).map(str::to_string),
            paused: boolean(row, 6),
            streaming,
            upstream,
        };
        (
            PgRole::Replica,
            received_tli.unwrap_or(checkpoint_tli),
            lsn(row, 4),
            Some(info),
        )
    } else {
        let timeline = text(row, 2).and_then(timeline_from_walfile).unwrap_or(checkpoint_tli);
        (PgRole::Primary, timeline, lsn(row, 1), None)
    };
    let mut probe = Probe::bare(PgState::Running {
        sysid: sysid.to_string(),
        role,
        timeline,
        lsn: position.unwrap_or_default(),
        replication,
        postmaster_start_time: text(row, 7).map(str::to_string),
        server_version: number(row, 8).unwrap_or(0),
    });
    probe.pending_restart = boolean(row, 12);
    probe.wal_receiver = wal_receiver;
    Ok(probe)
}

fn replication_row(row: &SimpleQueryRow) -> ReplicationRow {
    ReplicationRow {
        pid: number(row, 0).unwrap_or(0),
        usename: text(row, 1).map(str::to_string),
        application_name: text(row, 2).unwrap_or_default().to_string(),
        client_addr: text(row, 3).map(str::to_string),
        state: text(row, 4).map(str::to_string),
        sync_state: text(row, 5).map(str::to_string),
        sync_priority: number(row, 6),
        sent_lsn: lsn(row, 7),
        write_lsn: lsn(row, 8),
        flush_lsn: lsn(row, 9),
        replay_lsn: lsn(row, 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_from_wal_file_names() {
        assert_eq!(timeline_from_walfile("000000020000000000000003"), Some(2));
        assert_eq!(timeline_from_walfile("0000000A0000000000000003"), Some(10));
        assert_eq!(timeline_from_walfile("short"), None);
    }

    #[tokio::test]
    async fn absent_empty_and_invalid_data_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let pg = crate::conf::tests::pg_config(data.to_str().unwrap());
        assert_eq!(probe(&pg, None).await.state, PgState::NoData);
        std::fs::create_dir(&data).unwrap();
        assert_eq!(probe(&pg, None).await.state, PgState::NoData);
        std::fs::write(data.join("PG_VERSION"), "15\n").unwrap();
        let p = probe(&pg, None).await;
        assert!(
            matches!(&p.state, PgState::InvalidData { reason } if reason.contains("global/pg_control")),
            "{p:?}"
        );
    }
}
