//! Re-reading the local configuration on SIGHUP and `POST /reload`, as Patroni does. The file (and
//! the `PATRONI_*` variables the daemon started with) is validated whole before anything changes;
//! what a running daemon cannot take over (its identity, the DCS client, the REST listener, the
//! data directory) is kept and named, to take effect at the next start.

use ferroni_config::{ConfigError, Loaded};
use ferroni_model::Config;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the configuration came from at start.
pub struct ConfigSource {
    path: Option<PathBuf>,
    /// The `PATRONI_*` variables as they were before the daemon removed them from its environment.
    env: BTreeMap<String, String>,
}

impl ConfigSource {
    pub fn new(path: Option<PathBuf>, env: BTreeMap<String, String>) -> ConfigSource {
        ConfigSource { path, env }
    }

    pub fn load(&self) -> Result<Loaded, ConfigError> {
        match &self.path {
            Some(path) => ferroni_config::load_file_with_env(path, &self.env),
            None => ferroni_config::load_from_env(&self.env),
        }
    }
}

/// `new` with the settings fixed at start taken from `old`, and the keys of those that differed.
pub fn keep_fixed(old: &Config, mut new: Config) -> (Config, Vec<&'static str>) {
    let mut kept = Vec::new();
    fn keep<T: PartialEq + Clone>(kept: &mut Vec<&'static str>, key: &'static str, old: &T, new: &mut T) {
        if old != new {
            kept.push(key);
            *new = old.clone();
        }
    }
    keep(&mut kept, "name", &old.name, &mut new.name);
    keep(&mut kept, "scope", &old.scope, &mut new.scope);
    keep(&mut kept, "namespace", &old.namespace, &mut new.namespace);
    keep(&mut kept, "etcd3", &old.etcd3, &mut new.etcd3);
    keep(&mut kept, "ctl", &old.ctl, &mut new.ctl);
    keep(&mut kept, "watchdog", &old.watchdog, &mut new.watchdog);
    keep(&mut kept, "log", &old.log, &mut new.log);
    keep(
        &mut kept,
        "postgresql.data_dir",
        &old.postgresql.data_dir,
        &mut new.postgresql.data_dir,
    );
    // The address members and clients are told is published each cycle; the listener is not rebound.
    let connect_address = std::mem::replace(&mut new.restapi.connect_address, old.restapi.connect_address.clone());
    keep(&mut kept, "restapi", &old.restapi, &mut new.restapi);
    new.restapi.connect_address = connect_address;
    (new, kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(yaml: &str) -> Config {
        ferroni_config::parse_str(yaml, &BTreeMap::new()).expect("valid").config
    }

    const BASE: &str = "name: a\nscope: s\nrestapi:\n  listen: 127.0.0.1:8008\n  connect_address: 127.0.0.1:8008\n\
etcd3:\n  hosts: 127.0.0.1:2379\npostgresql:\n  listen: 127.0.0.1:5432\n  connect_address: 127.0.0.1:5432\n  \
data_dir: /d\n  authentication:\n    superuser:\n      username: postgres\n    replication:\n      username: r\n";

    #[test]
    fn live_settings_change_and_fixed_ones_are_kept_and_named() {
        let old = parse(BASE);
        let changed = BASE
            .replace("name: a", "name: b")
            .replace("data_dir: /d", "data_dir: /e")
            .replace(
                "listen: 127.0.0.1:8008\n  connect_address: 127.0.0.1:8008",
                "listen: 127.0.0.1:9009\n  connect_address: 10.0.0.1:8008",
            )
            + "tags:\n  nofailover: true\n";
        let (new, kept) = keep_fixed(&old, parse(&changed));
        assert_eq!(kept, vec!["name", "postgresql.data_dir", "restapi"]);
        assert_eq!((new.name.as_str(), new.postgresql.data_dir.to_str()), ("a", Some("/d")));
        assert_eq!(new.restapi.listen, "127.0.0.1:8008");
        assert_eq!(
            new.restapi.connect_address, "10.0.0.1:8008",
            "the published address follows the file"
        );
        assert!(new.tags.nofailover, "tags apply at once");
        assert_eq!(keep_fixed(&old, old.clone()), (old, vec![]));
    }
}
