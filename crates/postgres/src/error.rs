//! Errors of this crate. Every variant names what was being done ("run pg_controldata", "write
//! pg_hba.conf") so a log line is enough to understand a failure; command failures carry the last
//! lines of the child's stderr because that is where PostgreSQL tools explain themselves.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A file system operation fails.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A child process cannot be started or exits unsuccessfully.
    #[error("{step} fails ({status}){}", tail_suffix(.stderr_tail))]
    Command {
        step: String,
        status: String,
        stderr_tail: Vec<String>,
    },
    /// A child process or a wait does not finish in time.
    #[error("{step} does not finish within {}s{}", .timeout.as_secs_f32(), tail_suffix(.stderr_tail))]
    Timeout {
        step: String,
        timeout: Duration,
        stderr_tail: Vec<String>,
    },
    /// A SQL connection or statement fails.
    #[error("{context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The request makes no sense as given (forbidden option, password on a command line, ...).
    #[error("{0}")]
    Invalid(String),
    /// The operation needs a running postmaster and there is none.
    #[error("postgres is not running")]
    NotRunning,
}

impl PgError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgError {
        let context = context.into();
        move |source| PgError::Io { context, source }
    }

    pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PgError {
        let context = context.into();
        move |source| PgError::Sql { context, source }
    }

    /// The child's last stderr lines, when the error comes from a child process.
    pub fn stderr_tail(&self) -> &[String] {
        match self {
            PgError::Command { stderr_tail, .. } | PgError::Timeout { stderr_tail, .. } => stderr_tail,
            _ => &[],
        }
    }
}

/// The last three stderr lines joined, enough for one readable log line; the full tail stays in the error.
fn tail_suffix(tail: &[String]) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let start = tail.len().saturating_sub(3);
    format!(": {}", tail[start..].join(" | "))
}

/// A replica creation method fails; the data directory has been cleaned as the method requires.
#[derive(Debug, thiserror::Error)]
#[error("replica method {method} fails: {source}")]
pub struct CloneError {
    pub method: String,
    #[source]
    pub source: PgError,
}

impl CloneError {
    pub(crate) fn new(method: impl Into<String>, source: PgError) -> Self {
        CloneError {
            method: method.into(),
            source,
        }
    }
}
