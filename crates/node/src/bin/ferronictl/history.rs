//! `history`: the timeline switches the leader recorded in the DCS `history` key, one row per
//! promotion: timeline, switch LSN (in bytes, as patronictl prints it), reason, time and new leader.

use crate::args::Format;
use crate::context::Ctl;
use crate::error::CtlResult;
use crate::output::{self, Table};
use ferroni_dcs::Dcs;
use ferroni_model::HistoryLine;
use serde_json::json;

pub async fn run(ctl: &Ctl, cluster: Option<&str>, format: Format) -> CtlResult<()> {
    let name = ctl.cluster_name(cluster)?;
    let view = ctl.dcs(&name)?.load().await?;
    output::print(&table(view.history.as_deref().unwrap_or_default()).render(format));
    Ok(())
}

pub fn table(lines: &[HistoryLine]) -> Table {
    let rows = lines
        .iter()
        .map(|l| {
            vec![
                json!(l.0),
                json!(l.1),
                json!(l.2),
                json!(l.3.as_deref().unwrap_or_default()),
                json!(l.4.as_deref().unwrap_or_default()),
            ]
        })
        .collect();
    Table {
        columns: vec!["TL", "LSN", "Reason", "Timestamp", "New Leader"],
        rows,
        right: vec!["TL", "LSN"],
        title: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_like_patronictl() {
        let lines = vec![
            HistoryLine(
                1,
                25165984,
                "no recovery target specified".into(),
                Some("2024-05-01T10:00:00+00:00".into()),
                Some("pg2".into()),
            ),
            HistoryLine(2, 50331808, "no recovery target specified".into(), None, None),
        ];
        let t = table(&lines);
        let pretty = t.render(Format::Pretty);
        assert!(
            pretty
                .contains("| TL |      LSN | Reason                       | Timestamp                 | New Leader |"),
            "{pretty}"
        );
        assert!(
            pretty
                .contains("|  1 | 25165984 | no recovery target specified | 2024-05-01T10:00:00+00:00 | pg2        |"),
            "{pretty}"
        );
        // Without a title, json keeps empty cells, as patronictl does for history.
        assert!(t.render(Format::Json).contains("\"TL\": 2, \"LSN\": 50331808, \"Reason\": \"no recovery target specified\", \"Timestamp\": \"\", \"New Leader\": \"\""));
    }
}
