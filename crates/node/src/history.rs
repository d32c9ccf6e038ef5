//! The `history` key: after a promotion the leader reads the timeline history file PostgreSQL wrote
//! (`pg_wal/<TL>.history`) and appends the timelines the key does not have yet, with the time and its
//! own name as the new leader, in Patroni's `[timeline, lsn, reason, timestamp, new_leader]` form.

use ferroni_model::{ClusterView, HistoryLine, Lsn};
use std::path::Path;

/// Parses a timeline history file: `1\t0/3000140\tno recovery target specified` per line.
pub fn parse_history_file(text: &str) -> Vec<(u32, u64, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            let tl = parts.next()?.trim().parse().ok()?;
            let lsn: Lsn = parts.next()?.trim().parse().ok()?;
            Some((tl, lsn.0, parts.next().unwrap_or("").trim().to_string()))
        })
        .collect()
}

/// The history the key should hold after this node became leader on `timeline`.
pub fn merged(cluster: &ClusterView, data_dir: &Path, timeline: u32, me: &str, now: &str) -> Option<Vec<HistoryLine>> {
    let file = data_dir.join("pg_wal").join(format!("{timeline:08X}.history"));
    let text = std::fs::read_to_string(file).ok()?;
    let mut lines = cluster.history.clone().unwrap_or_default();
    let mut changed = false;
    for (tl, lsn, reason) in parse_history_file(&text) {
        if lines.iter().any(|l| l.0 == tl) {
            continue;
        }
        let newest = tl + 1 == timeline;
        let new_leader = newest.then(|| me.to_string());
        let at = newest.then(|| now.to_string());
        lines.push(HistoryLine(tl, lsn, reason, at, new_leader));
        changed = true;
    }
    changed.then_some(lines)
}

/// The current UTC time as Patroni writes it in history lines (`2026-11-22T10:00:00.123+00:00`).
pub fn now_iso() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_history() {
        let parsed =
            parse_history_file("1\t0/3000140\tno recovery target specified\n\n2\t0/5000000\tat restore point\n");
        assert_eq!(
            parsed,
            vec![
                (1, 0x3000140, "no recovery target specified".into()),
                (2, 0x5000000, "at restore point".into())
            ]
        );
    }

    #[test]
    fn appends_only_new_timelines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pg_wal")).unwrap();
        std::fs::write(
            dir.path().join("pg_wal/00000003.history"),
            "1\t0/3000140\tno recovery target specified\n2\t0/4000000\tno recovery target specified\n",
        )
        .unwrap();
        let mut view = ClusterView {
            history: Some(vec![HistoryLine(
                1,
                0x3000140,
                "no recovery target specified".into(),
                None,
                None,
            )]),
            ..Default::default()
        };
        let lines = merged(&view, dir.path(), 3, "n2", "2026-11-22T00:00:00+00:00").unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[1],
            HistoryLine(
                2,
                0x4000000,
                "no recovery target specified".into(),
                Some("2026-11-22T00:00:00+00:00".into()),
                Some("n2".into())
            )
        );
        view.history = Some(lines);
        assert!(merged(&view, dir.path(), 3, "n2", "x").is_none());
    }
}
