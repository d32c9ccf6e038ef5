//! Reading Patroni's configuration: YAML files (or `PATRONI_CONFIGURATION`), `PATRONI_*`
//! environment overrides, and the dynamic configuration kept in the DCS, validated into the
//! types of `ferroni_model::config`. Every error names the key path it is about.
//!
//! Layers, lowest first: the file (or a directory of files), then the environment. The dynamic
//! configuration is validated separately with [`parse_dynamic`].

mod dynamic;
mod env;
mod error;
mod etcd;
mod load;
mod local;
mod methods;
mod patch;
mod walk;
mod yaml;

pub use dynamic::{MIN_TTL, parse_dynamic, validate_dynamic};
pub use env::{CONFIGURATION_VAR, env_overrides, process_env, scrub_process_env};
pub use error::ConfigError;
pub use etcd::DEFAULT_ETCD_PORT;
pub use ferroni_model::shellwords::split as split_command;
pub use load::{Loaded, load_file, load_file_with_env, load_from_env, parse_str};
pub use local::DEFAULT_BIN_DIR;
pub use patch::{merge_patch, set_path};

#[cfg(test)]
mod tests;
