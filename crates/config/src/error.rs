//! The one error type of this crate: a key path plus a sentence, so every message can point at the
//! exact place in the YAML that needs fixing.

use std::fmt;

/// A configuration problem.
///
/// `path` is the dotted key path (`bootstrap.dcs.loop_wait`, `postgresql.create_replica_methods[1]`),
/// or empty when the problem is not about one key (a YAML syntax error, an unreadable file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An error that is not about one key.
    pub fn general(message: impl Into<String>) -> Self {
        ConfigError::new("", message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_path() {
        let e = ConfigError::new("postgresql.data_dir", "required key is missing");
        assert_eq!(e.to_string(), "postgresql.data_dir: required key is missing");
        assert_eq!(
            ConfigError::general("line 1 column 2: boom").to_string(),
            "line 1 column 2: boom"
        );
    }
}
