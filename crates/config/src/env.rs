//! `PATRONI_*` environment variables: the layer above the configuration file.
//!
//! Reading is a pure function of a map, so it can be tested; [`process_env`] and
//! [`scrub_process_env`] are the only parts that touch the real environment.

use crate::error::ConfigError;
use crate::yaml::{self, Node};
use serde_json::Value;
use std::collections::BTreeMap;

/// The variable holding a whole YAML configuration, used when no file is given.
pub const CONFIGURATION_VAR: &str = "PATRONI_CONFIGURATION";

const PREFIX: &str = "PATRONI_";

/// Variables that set one key each (names without the `PATRONI_` prefix).
const SIMPLE: &[(&str, &[&str])] = &[
    ("NAME", &["name"]),
    ("NAMESPACE", &["namespace"]),
    ("SCOPE", &["scope"]),
    ("RESTAPI_LISTEN", &["restapi", "listen"]),
    ("RESTAPI_CONNECT_ADDRESS", &["restapi", "connect_address"]),
    ("RESTAPI_USERNAME", &["restapi", "authentication", "username"]),
    ("RESTAPI_PASSWORD", &["restapi", "authentication", "password"]),
    ("RESTAPI_CERTFILE", &["restapi", "certfile"]),
    ("RESTAPI_KEYFILE", &["restapi", "keyfile"]),
    ("RESTAPI_CAFILE", &["restapi", "cafile"]),
    ("RESTAPI_VERIFY_CLIENT", &["restapi", "verify_client"]),
    ("POSTGRESQL_LISTEN", &["postgresql", "listen"]),
    ("POSTGRESQL_CONNECT_ADDRESS", &["postgresql", "connect_address"]),
    ("POSTGRESQL_DATA_DIR", &["postgresql", "data_dir"]),
    ("POSTGRESQL_CONFIG_DIR", &["postgresql", "config_dir"]),
    ("POSTGRESQL_BIN_DIR", &["postgresql", "bin_dir"]),
    ("POSTGRESQL_PGPASS", &["postgresql", "pgpass"]),
    (
        "SUPERUSER_USERNAME",
        &["postgresql", "authentication", "superuser", "username"],
    ),
    (
        "SUPERUSER_PASSWORD",
        &["postgresql", "authentication", "superuser", "password"],
    ),
    (
        "REPLICATION_USERNAME",
        &["postgresql", "authentication", "replication", "username"],
    ),
    (
        "REPLICATION_PASSWORD",
        &["postgresql", "authentication", "replication", "password"],
    ),
    (
        "REWIND_USERNAME",
        &["postgresql", "authentication", "rewind", "username"],
    ),
    (
        "REWIND_PASSWORD",
        &["postgresql", "authentication", "rewind", "password"],
    ),
    ("ETCD3_PROTOCOL", &["etcd3", "protocol"]),
    ("ETCD3_USERNAME", &["etcd3", "username"]),
    ("ETCD3_PASSWORD", &["etcd3", "password"]),
    ("CTL_USERNAME", &["ctl", "authentication", "username"]),
    ("CTL_PASSWORD", &["ctl", "authentication", "password"]),
    ("CTL_INSECURE", &["ctl", "insecure"]),
    ("CTL_CACERT", &["ctl", "cacert"]),
    ("CTL_CERTFILE", &["ctl", "certfile"]),
    ("CTL_KEYFILE", &["ctl", "keyfile"]),
    ("LOG_LEVEL", &["log", "level"]),
    ("LOG_FORMAT", &["log", "format"]),
    ("LOG_TYPE", &["log", "type"]),
    ("ETCD3_URL", &["etcd3", "url"]),
];

/// Pre-2.0 spellings Patroni still honours when the new name is not set.
const LEGACY: &[(&str, &str, &[&str])] = &[
    ("LOGLEVEL", "LOG_LEVEL", &["log", "level"]),
    ("LOGFORMAT", "LOG_FORMAT", &["log", "format"]),
];

/// Patroni's other DCS backends and the variable suffixes that would configure them. They are
/// turned into sections so the configuration check can say that only etcd3 is supported.
const OTHER_DCS: &[&str] = &["ETCD", "CONSUL", "ZOOKEEPER", "KUBERNETES", "RAFT", "EXHIBITOR"];
const OTHER_DCS_SUFFIXES: &[&str] = &[
    "HOST",
    "HOSTS",
    "PORT",
    "URL",
    "PROXY",
    "SRV",
    "NAMESPACE",
    "LABELS",
    "SELF_ADDR",
    "PARTNER_ADDRS",
    "BIND_ADDR",
];

/// What the environment contributes: a merge patch plus, for messages, which variable set
/// which key path.
pub(crate) struct EnvLayer {
    pub patch: Node,
    pub sources: Vec<(String, String)>,
}

impl EnvLayer {
    /// Sets a key of the patch itself. Not a merge: a null must stay in the patch, where it
    /// means "delete this key from the file's configuration".
    fn set(&mut self, keys: &[&str], value: Node, var: &str) {
        let mut node = &mut self.patch;
        for key in keys {
            if !matches!(node, Node::Map(_)) {
                *node = Node::Map(Vec::new());
            }
            let Node::Map(entries) = node else { return };
            let i = match entries.iter().position(|(k, _)| k == key) {
                Some(i) => i,
                None => {
                    entries.push(((*key).to_string(), Node::Null));
                    entries.len() - 1
                }
            };
            node = &mut entries[i].1;
        }
        *node = value;
        if !var.is_empty() {
            self.sources.push((keys.join("."), var.to_string()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Adds "(set by PATRONI_X)" to an error about a key that came from the environment, since
    /// the file will not show the bad value.
    pub fn annotate(&self, mut e: ConfigError) -> ConfigError {
        let source = self.sources.iter().find(|(path, _)| {
            e.path == *path
                || e.path
                    .strip_prefix(path.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        });
        if let Some((_, var)) = source {
            e.message = format!("{} (set by {var})", e.message);
        }
        e
    }
}

/// The configuration the `PATRONI_*` variables in `env` describe, as a merge patch for the
/// file's configuration (see [`crate::merge_patch`]); a null in it deletes the file's key, as
/// when `PATRONI_ETCD3_HOST` replaces a file's `etcd3.hosts`. Empty values are ignored, like
/// Patroni.
/// `PATRONI_CONFIGURATION` is not part of it; see [`crate::load_from_env`].
pub fn env_overrides(env: &BTreeMap<String, String>) -> Result<Value, ConfigError> {
    Ok(layer(env)?.patch.to_json())
}

pub(crate) fn layer(env: &BTreeMap<String, String>) -> Result<EnvLayer, ConfigError> {
    let mut out = EnvLayer {
        patch: Node::Map(Vec::new()),
        sources: Vec::new(),
    };
    let get = |name: &str| env.get(&format!("{PREFIX}{name}")).filter(|v| !v.is_empty());

    for (name, keys) in SIMPLE {
        if let Some(value) = get(name) {
            out.set(keys, Node::Str(value.clone()), &format!("{PREFIX}{name}"));
        }
    }
    for (old, new, keys) in LEGACY {
        if let (Some(value), None) = (get(old), get(new)) {
            out.set(keys, Node::Str(value.clone()), &format!("{PREFIX}{old}"));
        }
    }

    // The endpoints from the environment replace the file's, whichever key the file used;
    // a file `hosts` next to an environment `host` would otherwise win.
    let host = get("ETCD3_HOST");
    let hosts = get("ETCD3_HOSTS");
    if let Some(value) = host {
        out.set(&["etcd3", "host"], Node::Str(value.clone()), "PATRONI_ETCD3_HOST");
        if hosts.is_none() {
            out.set(&["etcd3", "hosts"], Node::Null, "");
        }
    }
    if let Some(value) = hosts {
        let list = host_list(value).map_err(|e| ConfigError::new("PATRONI_ETCD3_HOSTS", e))?;
        out.set(&["etcd3", "hosts"], list, "PATRONI_ETCD3_HOSTS");
        if host.is_none() {
            out.set(&["etcd3", "host"], Node::Null, "");
        }
    }
    if (host.is_some() || hosts.is_some()) && get("ETCD3_URL").is_none() {
        out.set(&["etcd3", "url"], Node::Null, "");
    }

    for (var, value) in env {
        let Some(rest) = var.strip_prefix(PREFIX) else { continue };
        let Some((dcs, suffix)) = rest.split_once('_') else {
            continue;
        };
        if OTHER_DCS.contains(&dcs) && OTHER_DCS_SUFFIXES.contains(&suffix) && !value.is_empty() {
            let (section, key) = (dcs.to_ascii_lowercase(), suffix.to_ascii_lowercase());
            out.set(&[&section, &key], Node::Str(value.clone()), var);
        }
    }
    Ok(out)
}

/// `PATRONI_ETCD3_HOSTS`: a YAML list (`['a:2379', 'b:2379']`, `- a:2379`) or, like Patroni
/// reads it, a comma-separated list.
fn host_list(value: &str) -> Result<Node, String> {
    let trimmed = value.trim();
    if trimmed.starts_with('-') || trimmed.contains('[') {
        let node = yaml::parse(trimmed).map_err(|e| format!("cannot read the list: {}", e.message))?;
        return match node {
            Node::Seq(_) => Ok(node),
            other => Err(format!("expected a list of host:port, got {}", other.describe())),
        };
    }
    Ok(Node::Seq(
        trimmed
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Node::Str(s.to_string()))
            .collect(),
    ))
}

/// Every variable in `env` that [`env_overrides`] would read.
pub(crate) fn read_vars(env: &BTreeMap<String, String>) -> Vec<String> {
    let mut vars: Vec<String> = match layer(env) {
        Ok(l) => l.sources.into_iter().map(|(_, var)| var).collect(),
        // A variable that cannot even be read is still one that is being ignored.
        Err(e) => vec![e.path],
    };
    vars.sort();
    vars.dedup();
    vars
}

/// The `PATRONI_*` variables of this process. Variables whose name or value is not valid
/// UTF-8 are skipped.
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect()
}

/// Removes every `PATRONI_*` variable from this process's environment, so passwords given
/// that way do not reach PostgreSQL, callbacks, or replica method commands (Patroni pops them
/// for the same reason). Call it right after [`process_env`].
///
/// **Call it only while the process has a single thread**: at the start of `main`, before the
/// async runtime or any other thread starts. Changing the environment while another thread
/// reads it (`getenv` in libc, a DNS resolver, a TLS library) is undefined behaviour, which is
/// why `std::env::remove_var` is `unsafe`; this function is safe to call only under that rule.
pub fn scrub_process_env() {
    let names: Vec<_> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| k.to_str().is_some_and(|s| s.starts_with(PREFIX)))
        .collect();
    for name in names {
        // SAFETY: documented above: callers run this before any other thread exists.
        unsafe { std::env::remove_var(name) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_documented_variable() {
        let e = env(&[
            ("PATRONI_NAME", "pg1"),
            ("PATRONI_NAMESPACE", "/db"),
            ("PATRONI_SCOPE", "main"),
            ("PATRONI_RESTAPI_LISTEN", "0.0.0.0:8008"),
            ("PATRONI_RESTAPI_CONNECT_ADDRESS", "10.0.0.1:8008"),
            ("PATRONI_RESTAPI_USERNAME", "api"),
            ("PATRONI_RESTAPI_PASSWORD", "apipw"),
            ("PATRONI_RESTAPI_CERTFILE", "/c.pem"),
            ("PATRONI_RESTAPI_KEYFILE", "/k.pem"),
            ("PATRONI_POSTGRESQL_LISTEN", "0.0.0.0:5432"),
            ("PATRONI_POSTGRESQL_CONNECT_ADDRESS", "10.0.0.1:5432"),
            ("PATRONI_POSTGRESQL_DATA_DIR", "/data"),
            ("PATRONI_POSTGRESQL_CONFIG_DIR", "/conf"),
            ("PATRONI_POSTGRESQL_BIN_DIR", "/bin"),
            ("PATRONI_POSTGRESQL_PGPASS", "/pgpass"),
            ("PATRONI_SUPERUSER_USERNAME", "su"),
            ("PATRONI_SUPERUSER_PASSWORD", "supw"),
            ("PATRONI_REPLICATION_USERNAME", "rep"),
            ("PATRONI_REPLICATION_PASSWORD", "reppw"),
            ("PATRONI_REWIND_USERNAME", "rw"),
            ("PATRONI_REWIND_PASSWORD", "rwpw"),
            ("PATRONI_ETCD3_HOSTS", "e1:2379,e2:2379"),
            ("PATRONI_ETCD3_PROTOCOL", "https"),
            ("PATRONI_ETCD3_USERNAME", "eu"),
            ("PATRONI_ETCD3_PASSWORD", "epw"),
            ("PATRONI_CTL_USERNAME", "cu"),
            ("PATRONI_CTL_PASSWORD", "cpw"),
            ("PATRONI_LOG_LEVEL", "DEBUG"),
            ("PATRONI_LOG_FORMAT", "json"),
            ("UNRELATED", "x"),
            ("PATRONI_SOMETHING_ELSE", "x"),
        ]);
        assert_eq!(
            env_overrides(&e).unwrap(),
            json!({
                "name": "pg1", "namespace": "/db", "scope": "main",
                "restapi": {
                    "listen": "0.0.0.0:8008", "connect_address": "10.0.0.1:8008",
                    "authentication": {"username": "api", "password": "apipw"},
                    "certfile": "/c.pem", "keyfile": "/k.pem"
                },
                "postgresql": {
                    "listen": "0.0.0.0:5432", "connect_address": "10.0.0.1:5432", "data_dir": "/data",
                    "config_dir": "/conf", "bin_dir": "/bin", "pgpass": "/pgpass",
                    "authentication": {
                        "superuser": {"username": "su", "password": "supw"},
                        "replication": {"username": "rep", "password": "reppw"},
                        "rewind": {"username": "rw", "password": "rwpw"}
                    }
                },
                "etcd3": {
                    "protocol": "https", "username": "eu", "password": "epw",
                    "hosts": ["e1:2379", "e2:2379"], "host": null, "url": null
                },
                "ctl": {"authentication": {"username": "cu", "password": "cpw"}},
                "log": {"level": "DEBUG", "format": "json"}
            })
        );
    }

    #[test]
    fn empty_values_are_ignored() {
        assert_eq!(
            env_overrides(&env(&[("PATRONI_NAME", ""), ("PATRONI_SCOPE", "s")])).unwrap(),
            json!({"scope": "s"})
        );
    }

    #[test]
    fn etcd3_host_replaces_file_hosts() {
        let l = layer(&env(&[("PATRONI_ETCD3_HOST", "e:2379")])).unwrap();
        let mut file = yaml::parse("etcd3: {hosts: [a, b], protocol: http}").unwrap();
        file.merge(&l.patch);
        assert_eq!(file.to_json(), json!({"etcd3": {"protocol": "http", "host": "e:2379"}}));
    }

    #[test]
    fn etcd3_hosts_as_yaml_list() {
        for text in ["['a:1', 'b:2']", "- a:1\n- b:2", " a:1 , b:2 ,"] {
            let v = env_overrides(&env(&[("PATRONI_ETCD3_HOSTS", text)])).unwrap();
            assert_eq!(v["etcd3"]["hosts"], json!(["a:1", "b:2"]), "{text}");
        }
        let e = env_overrides(&env(&[("PATRONI_ETCD3_HOSTS", "[a, b")])).unwrap_err();
        assert_eq!(e.path, "PATRONI_ETCD3_HOSTS");
    }

    #[test]
    fn legacy_log_names() {
        let v = env_overrides(&env(&[("PATRONI_LOGLEVEL", "debug"), ("PATRONI_LOGFORMAT", "x")])).unwrap();
        assert_eq!(v, json!({"log": {"level": "debug", "format": "x"}}));
        let v = env_overrides(&env(&[("PATRONI_LOGLEVEL", "debug"), ("PATRONI_LOG_LEVEL", "error")])).unwrap();
        assert_eq!(v, json!({"log": {"level": "error"}}));
    }

    #[test]
    fn other_dcs_variables_become_sections() {
        let v = env_overrides(&env(&[
            ("PATRONI_CONSUL_HOST", "c:8500"),
            ("PATRONI_ETCD_HOSTS", "e:2379"),
        ]))
        .unwrap();
        assert_eq!(v, json!({"consul": {"host": "c:8500"}, "etcd": {"hosts": "e:2379"}}));
    }

    #[test]
    fn annotate_names_the_variable() {
        let l = layer(&env(&[("PATRONI_RESTAPI_LISTEN", "abc"), ("PATRONI_ETCD3_HOSTS", "x")])).unwrap();
        let e = l.annotate(ConfigError::new("restapi.listen", "expected host:port, got \"abc\""));
        assert_eq!(
            e.to_string(),
            "restapi.listen: expected host:port, got \"abc\" (set by PATRONI_RESTAPI_LISTEN)"
        );
        let e = l.annotate(ConfigError::new("etcd3.hosts[0]", "bad"));
        assert_eq!(e.message, "bad (set by PATRONI_ETCD3_HOSTS)");
        let e = l.annotate(ConfigError::new("restapi.listening", "bad"));
        assert_eq!(e.message, "bad");
    }

    #[test]
    fn process_env_and_scrub() {
        // The test process is multi-threaded, so only a name nothing else uses is touched, and
        // only through the functions under test plus one set_var.
        const VAR: &str = "PATRONI_FERRONI_CONFIG_TEST_SCRUB";
        // SAFETY: no other code in this test binary reads or writes this variable.
        unsafe { std::env::set_var(VAR, "secret") };
        assert_eq!(process_env().get(VAR).map(String::as_str), Some("secret"));
        // The removal only affects PATRONI_* names, which no other test sets or reads.
        scrub_process_env();
        assert!(std::env::var_os(VAR).is_none());
        assert!(!process_env().contains_key(VAR));
    }
}
