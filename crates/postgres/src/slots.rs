//! Small SQL maintenance on the local server. Physical replication slots: the leader keeps one per member that streams from
//! it (Patroni's naming) plus the permanent slots of the dynamic configuration, and drops the ones
//! nobody needs any more, so a departed member cannot pin WAL forever.
//!
//! Failure story: every statement has a timeout; a slot that is in use is never dropped (Postgres
//! would refuse anyway); errors are returned, the next cycle tries again.

use crate::client::{self, Target, quote_literal};
use crate::control::PgControl;
use crate::error::PgError;
use std::collections::BTreeSet;
use std::time::Duration;

/// What one synchronisation changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SlotChanges {
    pub created: Vec<String>,
    pub dropped: Vec<String>,
}

impl PgControl {
    /// Makes the set of physical slots equal to `wanted`, leaving active slots alone.
    pub async fn sync_physical_slots(&self, wanted: &BTreeSet<String>) -> Result<SlotChanges, PgError> {
        let pf = self.postmaster().ok_or(PgError::NotRunning)?;
        let target = Target::from_pidfile(&pf, &self.cfg);
        let client = client::connect(&self.cfg, &target, Duration::from_secs(2)).await?;
        let timeout = Duration::from_secs(5);
        let rows = client::with_timeout(
            &client,
            timeout,
            "list replication slots",
            client.query(
                "SELECT slot_name::text, active FROM pg_catalog.pg_replication_slots WHERE slot_type = 'physical'",
                &[],
            ),
        )
        .await?;
        let existing: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut changes = SlotChanges::default();
        for name in wanted {
            if existing.iter().any(|(n, _)| n == name) {
                continue;
            }
            let sql = format!(
                "SELECT pg_catalog.pg_create_physical_replication_slot({}, true)",
                quote_literal(name)
            );
            client::with_timeout(&client, timeout, "create replication slot", client.batch_execute(&sql)).await?;
            changes.created.push(name.clone());
        }
        for (name, active) in &existing {
            if wanted.contains(name) || *active {
                continue;
            }
            let sql = format!("SELECT pg_catalog.pg_drop_replication_slot({})", quote_literal(name));
            client::with_timeout(&client, timeout, "drop replication slot", client.batch_execute(&sql)).await?;
            changes.dropped.push(name.clone());
        }
        Ok(changes)
    }
}

impl PgControl {
    /// `CHECKPOINT` on the local server. After a promotion it moves the new timeline into the
    /// control file, which is what pg_rewind on a former primary reads from this server.
    pub async fn checkpoint(&self) -> Result<(), PgError> {
        let pf = self.postmaster().ok_or(PgError::NotRunning)?;
        let target = Target::from_pidfile(&pf, &self.cfg);
        let client = client::connect(&self.cfg, &target, Duration::from_secs(2)).await?;
        client::with_timeout(
            &client,
            Duration::from_secs(60),
            "checkpoint",
            client.batch_execute("CHECKPOINT"),
        )
        .await
    }
}
