//! `version`: the version of ferronictl, and with a cluster name that of each member as its REST API
//! reports it (`GET <api_url>`, Patroni's `/patroni` status), printed the way patronictl does.
//! Members that do not answer are listed with the reason; they do not make the command fail.

use crate::args::VersionArgs;
use crate::context::Ctl;
use crate::error::{CtlError, CtlResult};
use crate::output;
use ferroni_dcs::Dcs;
use serde_json::Value;
use std::time::Duration;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub fn own() -> String {
    format!("ferronictl version {}\n", env!("CARGO_PKG_VERSION"))
}

pub async fn run(ctl: &Ctl, args: &VersionArgs) -> CtlResult<()> {
    output::print(&own());
    let Some(cluster) = args.cluster_name.as_deref() else {
        return Ok(());
    };
    output::print("\n");
    let name = ctl.cluster_name(Some(cluster))?;
    let view = ctl.dcs(&name)?.load().await?;
    let client = crate::rest::client_builder(&ctl.settings.tls)?
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| CtlError::failed(format!("cannot create an HTTP client: {e}")))?;
    let mut members: Vec<_> = view.members.iter().filter(|m| !m.data.api_url.is_empty()).collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    for m in members {
        if !args.member_names.is_empty() && !args.member_names.contains(&m.name) {
            continue;
        }
        let line = match fetch(&client, &m.data.api_url).await {
            Ok(status) => describe(&status),
            Err(e) => format!("failed to get version: {e}"),
        };
        output::print(&format!("{}: {line}\n", m.name));
    }
    Ok(())
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = client.get(url).send().await.map_err(|e| e.without_url().to_string())?;
    // Patroni answers /patroni with 503 while PostgreSQL is down; the body still carries the versions.
    response.json::<Value>().await.map_err(|e| e.without_url().to_string())
}

fn describe(status: &Value) -> String {
    let version = status["patroni"]["version"].as_str().unwrap_or("unknown");
    match status["server_version"].as_u64() {
        Some(pg) => format!("Patroni {version} PostgreSQL {}", pg_version(pg)),
        None => format!("Patroni {version}"),
    }
}

/// `server_version_num` as people write it: 90624 → 9.6.24, 150018 → 15.18.
fn pg_version(v: u64) -> String {
    if v < 100_000 {
        format!("{}.{}.{}", v / 10_000, v / 100 % 100, v % 100)
    } else {
        format!("{}.{}", v / 10_000, v % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions() {
        assert_eq!(pg_version(90624), "9.6.24");
        assert_eq!(pg_version(150018), "15.18");
        assert_eq!(
            describe(&json!({"patroni": {"version": "0.1.0"}, "server_version": 150018})),
            "Patroni 0.1.0 PostgreSQL 15.18"
        );
        assert_eq!(describe(&json!({})), "Patroni unknown");
    }
}
