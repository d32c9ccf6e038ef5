//! Where configuration text comes from: a file, a directory of files, `PATRONI_CONFIGURATION`,
//! or the `PATRONI_*` variables alone; and the order in which the layers apply.

use crate::env::{self, CONFIGURATION_VAR, EnvLayer};
use crate::error::ConfigError;
use crate::local;
use crate::yaml::{self, Node};
use ferroni_model::Config;
use std::collections::BTreeMap;
use std::path::Path;

/// A validated configuration plus what the user should hear about but that does not stop
/// ferroni (unknown sections, contradictory tags, ignored settings).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Reads a configuration file, or a directory of `*.yml`/`*.yaml` files merged in name order
/// as Patroni does, without environment overrides and discarding warnings. The daemon should
/// use [`load_file_with_env`] with [`crate::process_env`] instead.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    load_file_with_env(path, &BTreeMap::new()).map(|l| l.config)
}

/// Reads a configuration file or directory and applies the `PATRONI_*` overrides in `env`.
pub fn load_file_with_env(path: &Path, env: &BTreeMap<String, String>) -> Result<Loaded, ConfigError> {
    let node = if path.is_dir() {
        read_dir(path)?
    } else {
        read_one(path)?
    };
    with_env(node, env)
}

/// Validates YAML text (JSON is YAML too) after applying the `PATRONI_*` overrides in `env`.
pub fn parse_str(yaml: &str, env: &BTreeMap<String, String>) -> Result<Loaded, ConfigError> {
    with_env(yaml::parse(yaml)?, env)
}

/// The configuration when no file is given, as Patroni builds it: the YAML in
/// `PATRONI_CONFIGURATION` if set (other `PATRONI_*` variables are then ignored), otherwise the
/// `PATRONI_*` variables alone.
pub fn load_from_env(env: &BTreeMap<String, String>) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    if let Some(text) = env.get(CONFIGURATION_VAR).filter(|t| !t.trim().is_empty()) {
        let node =
            yaml::parse(text).map_err(|e| ConfigError::general(format!("{CONFIGURATION_VAR}: {}", e.message)))?;
        for var in env::read_vars(env) {
            warnings.push(format!("{var} is ignored because {CONFIGURATION_VAR} is set"));
        }
        let config = local::build(&node, &mut warnings)?;
        return Ok(Loaded { config, warnings });
    }
    let layer = env::layer(env)?;
    if layer.is_empty() {
        return Err(ConfigError::general(format!(
            "no configuration: give a configuration file, or set {CONFIGURATION_VAR} or PATRONI_* variables"
        )));
    }
    let config = local::build(&layer.patch, &mut warnings).map_err(|e| layer.annotate(e))?;
    Ok(Loaded { config, warnings })
}

fn with_env(mut node: Node, env: &BTreeMap<String, String>) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    if env.get(CONFIGURATION_VAR).is_some_and(|t| !t.trim().is_empty()) {
        warnings.push(format!(
            "{CONFIGURATION_VAR} is ignored because a configuration file is given"
        ));
    }
    let layer: EnvLayer = env::layer(env)?;
    if !layer.is_empty() {
        // An empty file plus variables is a configuration made of variables.
        node.merge(&layer.patch);
    }
    let config = local::build(&node, &mut warnings).map_err(|e| layer.annotate(e))?;
    Ok(Loaded { config, warnings })
}

fn read_one(path: &Path) -> Result<Node, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::general(format!("cannot read {}: {e}", path.display())))?;
    yaml::parse(&text).map_err(|e| ConfigError::general(format!("{}: {}", path.display(), e.message)))
}

/// Patroni's rule for a configuration directory: every regular file ending in `.yml` or
/// `.yaml`, sorted by name, each merged over the ones before.
fn read_dir(dir: &Path) -> Result<Node, ConfigError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ConfigError::general(format!("cannot read directory {}: {e}", dir.display())))?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ConfigError::general(format!(
            "{} has no *.yml or *.yaml files",
            dir.display()
        )));
    }
    let mut merged = Node::Map(Vec::new());
    for file in files {
        match read_one(&file)? {
            Node::Null => {}
            node @ Node::Map(_) => merged.merge(&node),
            other => {
                return Err(ConfigError::general(format!(
                    "{}: the configuration must be a map of sections, got {}",
                    file.display(),
                    other.describe()
                )));
            }
        }
    }
    Ok(merged)
}
