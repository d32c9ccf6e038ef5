//! The one error type of ferronictl and the exit codes it maps to: 2 for what the user has to fix in
//! the command line, the configuration file or the new configuration (clap uses 2 for usage errors
//! too), 1 for everything that went wrong while doing the work (DCS unreachable, a concurrent change,
//! a refused confirmation).

use ferroni_dcs::DcsError;
use std::fmt;

#[derive(Debug)]
pub enum CtlError {
    /// Bad input: arguments, configuration file, DCS URL, or a configuration that fails validation.
    Usage(String),
    /// The operation could not be done.
    Failed(String),
}

impl CtlError {
    pub fn usage(message: impl Into<String>) -> CtlError {
        CtlError::Usage(message.into())
    }

    pub fn failed(message: impl Into<String>) -> CtlError {
        CtlError::Failed(message.into())
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Usage(_) => 2,
            CtlError::Failed(_) => 1,
        }
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtlError::Usage(m) | CtlError::Failed(m) => f.write_str(m),
        }
    }
}

impl From<DcsError> for CtlError {
    fn from(e: DcsError) -> CtlError {
        // DcsError's own text already says "DCS is not accessible: …" for the unreachable case.
        CtlError::Failed(e.to_string())
    }
}

pub type CtlResult<T> = Result<T, CtlError>;
