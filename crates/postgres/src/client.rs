//! SQL connections to the local server as the superuser.
//!
//! Where to connect comes from `postmaster.pid` (socket directory and port the server really uses),
//! falling back to TCP on loopback when the server has no socket. The password, if any, is handed to
//! tokio-postgres in memory and never logged. Connecting is bounded by a timeout because a frozen
//! postmaster accepts the socket connection and then never answers.
//!
//! Failure: [`PgError::Sql`] for refused/failed connections, [`PgError::Timeout`] when the server does
//! not answer in time.

use crate::error::PgError;
use crate::pidfile::PidFile;
use ferroni_model::PostgresqlConfig;
use std::time::Duration;
use tokio_postgres::{Client, Config, NoTls};

/// Where a running server accepts local connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Socket { dir: std::path::PathBuf, port: u16 },
    Tcp { host: String, port: u16 },
}

impl Target {
    pub(crate) fn from_pidfile(pf: &PidFile, pg: &PostgresqlConfig) -> Target {
        let port = pf.port.unwrap_or_else(|| pg.port());
        // An abstract-namespace socket (`@name`) cannot be given to libpq as a directory.
        match &pf.socket_dir {
            Some(dir) if !dir.to_string_lossy().starts_with('@') => Target::Socket { dir: dir.clone(), port },
            _ => Target::Tcp {
                host: loopback_for(pf.listen_addr.as_deref()),
                port,
            },
        }
    }

    /// The libpq `host` value: the socket directory or the address.
    pub(crate) fn host(&self) -> String {
        match self {
            Target::Socket { dir, .. } => dir.display().to_string(),
            Target::Tcp { host, .. } => host.clone(),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        match self {
            Target::Socket { port, .. } | Target::Tcp { port, .. } => *port,
        }
    }
}

/// The address to reach a server listening on `listen`: wildcard addresses mean loopback.
fn loopback_for(listen: Option<&str>) -> String {
    match listen.map(str::trim) {
        None | Some("") | Some("*") | Some("0.0.0.0") | Some("localhost") => "127.0.0.1".into(),
        Some("::") => "::1".into(),
        Some(addr) => addr.to_string(),
    }
}

/// Connect as the superuser to database `postgres`, spawning the connection task.
pub(crate) async fn connect(pg: &PostgresqlConfig, target: &Target, timeout: Duration) -> Result<Client, PgError> {
    let mut config = Config::new();
    config
        .user(&pg.superuser.username)
        .dbname("postgres")
        .application_name("ferroni")
        .connect_timeout(timeout)
        .port(target.port());
    match target {
        Target::Socket { dir, .. } => config.host_path(dir),
        Target::Tcp { host, .. } => config.host(host),
    };
    if let Some(pw) = &pg.superuser.password {
        config.password(pw);
    }
    let connecting = config.connect(NoTls);
    let (client, connection) = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| PgError::Timeout {
            step: "connect to postgres".into(),
            timeout,
            stderr_tail: vec![],
        })?
        .map_err(PgError::sql(format!(
            "connect to postgres at {}:{}",
            target.host(),
            target.port()
        )))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "local postgres connection ends");
        }
    });
    Ok(client)
}

/// Run `fut` with a timeout; on expiry cancel the query on the server so it does not keep running.
pub(crate) async fn with_timeout<T>(
    client: &Client,
    timeout: Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, PgError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result.map_err(PgError::sql(what.to_string())),
        Err(_) => {
            let _ = client.cancel_token().cancel_query(NoTls).await;
            Err(PgError::Timeout {
                step: what.to_string(),
                timeout,
                stderr_tail: vec![],
            })
        }
    }
}

/// `E'...'` literal: works whatever `standard_conforming_strings` says.
pub(crate) fn quote_literal(value: &str) -> String {
    format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Double-quoted identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_sql() {
        assert_eq!(quote_literal(r"it's \x"), r"E'it''s \\x'");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn target_prefers_the_socket() {
        let pg = crate::conf::tests::pg_config("/d/data");
        let pf = PidFile::parse("1\n/d/data\n0\n5499\n/d\n*\n").unwrap();
        assert_eq!(
            Target::from_pidfile(&pf, &pg),
            Target::Socket {
                dir: "/d".into(),
                port: 5499
            }
        );
        let pf = PidFile::parse("1\n/d/data\n0\n5499\n\n*\n").unwrap();
        assert_eq!(
            Target::from_pidfile(&pf, &pg),
            Target::Tcp {
                host: "127.0.0.1".into(),
                port: 5499
            }
        );
        let pf = PidFile::parse("1\n/d/data\n0\n\n@abstract\n::\n").unwrap();
        assert_eq!(
            Target::from_pidfile(&pf, &pg),
            Target::Tcp {
                host: "::1".into(),
                port: 5433
            }
        );
    }
}
