//! What ferronictl takes from its configuration file and `-d`: the default cluster name (`scope`),
//! the namespace, the etcd endpoints and etcd credentials, and the Basic-auth credentials for the
//! members' REST APIs (`ctl.authentication`, else `restapi.authentication`, as patronictl does)
//! and how to talk HTTPS to them (`ctl.insecure`, `ctl.cacert` else `restapi.cafile`,
//! `ctl.certfile`/`ctl.keyfile`).
//!
//! The file is usually a node's full configuration, which the daemon's loader validates; but
//! patronictl users also keep small files with just `scope` and the DCS section, which that loader
//! rejects (no `name`, no `postgresql.data_dir`). So a file that fails full validation is read
//! again leniently, picking out only the keys the CLI needs. Precedence follows patronictl:
//! `-d/--dcs-url` (or `DCS_URL`) replaces the file's DCS section and, when it has a path, the
//! namespace; `PATRONI_*` variables override the file.

use crate::dcs_url::{self, DEFAULT_DCS_URL};
use crate::error::{CtlError, CtlResult};
use crate::yaml_in;
use ferroni_api::ClientTls;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DEFAULT_NAMESPACE: &str = "/service";
/// Patroni backends other than etcd v3, which ferroni cannot talk to.
const OTHER_DCS: &[&str] = &["etcd", "consul", "zookeeper", "kubernetes", "raft", "exhibitor"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub scope: Option<String>,
    pub namespace: String,
    pub endpoints: Vec<String>,
    pub etcd_user: Option<(String, String)>,
    /// Username and password sent with every REST API request.
    pub rest_auth: Option<(String, String)>,
    /// Certificates for HTTPS REST APIs; `-k` sets `insecure`.
    pub tls: ClientTls,
}

/// The keys read from a configuration file, before `-d` is applied.
#[derive(Debug, Default, PartialEq, Eq)]
struct FromFile {
    scope: Option<String>,
    namespace: Option<String>,
    endpoints: Vec<String>,
    etcd_user: Option<(String, String)>,
    rest_auth: Option<(String, String)>,
    tls: ClientTls,
    /// A Patroni DCS section ferroni cannot use, named for the error message.
    other_dcs: Option<String>,
}

pub fn resolve(config_file: Option<&Path>, dcs_url: Option<&str>) -> CtlResult<Settings> {
    let from_file = match config_file {
        Some(path) => {
            if std::fs::metadata(path).is_err() {
                return Err(CtlError::usage(format!(
                    "Provided config file {} not existing or no read rights. Check the -c/--config-file parameter",
                    path.display()
                )));
            }
            read_file(path)?
        }
        None => match default_config_file().filter(|p| p.is_file()) {
            Some(path) => read_file(&path)?,
            None => FromFile::default(),
        },
    };
    combine(from_file, dcs_url)
}

fn combine(file: FromFile, dcs_url: Option<&str>) -> CtlResult<Settings> {
    let (endpoints, url_namespace) = match dcs_url.filter(|u| !u.trim().is_empty()) {
        Some(url) => {
            let parsed = dcs_url::parse(url)?;
            (parsed.endpoints, parsed.namespace)
        }
        None if !file.endpoints.is_empty() => (file.endpoints, None),
        None => {
            if let Some(other) = &file.other_dcs {
                return Err(CtlError::usage(format!(
                    "the configuration file uses DCS {other}, but ferroni supports only etcd3 \
                     (rename the section to etcd3 for etcd servers of version 3, or give -d etcd3://HOST:PORT)"
                )));
            }
            (dcs_url::parse(DEFAULT_DCS_URL)?.endpoints, None)
        }
    };
    Ok(Settings {
        scope: file.scope,
        namespace: url_namespace
            .or(file.namespace)
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
        endpoints,
        etcd_user: file.etcd_user,
        rest_auth: file.rest_auth,
        tls: file.tls,
    })
}

/// patronictl's default location, `~/.config/patroni/patronictl.yaml`.
fn default_config_file() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".config/patroni/patronictl.yaml"))
}

fn read_file(path: &Path) -> CtlResult<FromFile> {
    let env = ferroni_config::process_env();
    match ferroni_config::load_file_with_env(path, &env) {
        Ok(loaded) => {
            let c = loaded.config;
            let etcd_user = c
                .etcd3
                .username
                .clone()
                .map(|u| (u, c.etcd3.password.clone().unwrap_or_default()));
            let rest_auth = c
                .ctl
                .authentication
                .or(c.restapi.authentication)
                .map(|a| (a.username, a.password.unwrap_or_default()));
            let tls = ClientTls {
                cafile: c.ctl.cacert.or(c.restapi.cafile),
                certfile: c.ctl.certfile,
                keyfile: c.ctl.keyfile,
                insecure: c.ctl.insecure,
            };
            Ok(FromFile {
                scope: Some(c.scope).filter(|s| !s.is_empty()),
                namespace: Some(c.namespace),
                endpoints: c.etcd3.endpoints(),
                etcd_user,
                rest_auth,
                tls,
                other_dcs: None,
            })
        }
        Err(full) => {
            tracing::debug!(
                "{}: not a complete node configuration ({full}); reading it leniently",
                path.display()
            );
            let value = read_lenient(path)?;
            lenient(&value, &env).map_err(|e| CtlError::usage(format!("configuration file {}: {e}", path.display())))
        }
    }
}

/// The file (or directory of `*.yml`/`*.yaml` files, merged in name order like Patroni does) as one
/// JSON value.
fn read_lenient(path: &Path) -> CtlResult<Value> {
    let read = |file: &Path| -> CtlResult<Value> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| CtlError::usage(format!("cannot read {}: {e}", file.display())))?;
        yaml_in::parse(&text).map_err(|e| CtlError::usage(format!("{}: {e}", file.display())))
    };
    if !path.is_dir() {
        return read(path);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| CtlError::usage(format!("cannot read directory {}: {e}", path.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    let mut merged = Value::Object(Default::default());
    for file in files {
        let value = read(&file)?;
        if value.is_object() {
            ferroni_config::merge_patch(&mut merged, &value);
        }
    }
    Ok(merged)
}

fn lenient(root: &Value, env: &BTreeMap<String, String>) -> Result<FromFile, String> {
    let text = |v: Option<&Value>, what: &str| -> Result<Option<String>, String> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(format!("{what}: expected a string, got {other}")),
        }
    };
    let var = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();

    let scope = var("PATRONI_SCOPE").or(text(root.get("scope"), "scope")?);
    let namespace = var("PATRONI_NAMESPACE").or(text(root.get("namespace"), "namespace")?);

    let etcd3 = root.get("etcd3");
    let mut hosts: Vec<String> = Vec::new();
    if let Some(list) = var("PATRONI_ETCD3_HOSTS").or(var("PATRONI_ETCD3_HOST")) {
        hosts = split_hosts(&list);
    } else if let Some(etcd3) = etcd3 {
        match etcd3.get("hosts") {
            Some(Value::Array(items)) => {
                for item in items {
                    hosts.push(text(Some(item), "etcd3.hosts")?.unwrap_or_default());
                }
            }
            Some(other) => hosts = split_hosts(&text(Some(other), "etcd3.hosts")?.unwrap_or_default()),
            None => {
                for key in ["host", "url"] {
                    if let Some(h) = text(etcd3.get(key), &format!("etcd3.{key}"))? {
                        hosts = split_hosts(&h);
                        break;
                    }
                }
            }
        }
    }
    hosts.retain(|h| !h.trim().is_empty());

    let username = var("PATRONI_ETCD3_USERNAME").or(text(etcd3.and_then(|e| e.get("username")), "etcd3.username")?);
    let password = var("PATRONI_ETCD3_PASSWORD").or(text(etcd3.and_then(|e| e.get("password")), "etcd3.password")?);
    // patronictl's PatroniRequest: the ctl section's credentials, else the REST API's own.
    let mut rest_auth = None;
    for section in ["ctl", "restapi"] {
        let auth = root.get(section).and_then(|s| s.get("authentication"));
        let upper = section.to_ascii_uppercase();
        let username = var(&format!("PATRONI_{upper}_USERNAME")).or(text(
            auth.and_then(|a| a.get("username")),
            &format!("{section}.authentication.username"),
        )?);
        let password = var(&format!("PATRONI_{upper}_PASSWORD")).or(text(
            auth.and_then(|a| a.get("password")),
            &format!("{section}.authentication.password"),
        )?);
        if let Some(username) = username.filter(|u| !u.is_empty()) {
            rest_auth = Some((username, password.unwrap_or_default()));
            break;
        }
    }
    // patronictl's PatroniRequest: ctl.cacert, else restapi.cafile; client certificate from ctl.
    let path = |var_name: &str, section: &str, key: &str| -> Result<Option<PathBuf>, String> {
        let value = var(var_name).or(text(
            root.get(section).and_then(|s| s.get(key)),
            &format!("{section}.{key}"),
        )?);
        Ok(value.filter(|v| !v.is_empty()).map(PathBuf::from))
    };
    let insecure = match var("PATRONI_CTL_INSECURE") {
        Some(v) => truthy(&Value::String(v)),
        None => root.get("ctl").and_then(|c| c.get("insecure")).is_some_and(truthy),
    };
    let tls = ClientTls {
        cafile: path("PATRONI_CTL_CACERT", "ctl", "cacert")?.or(path("PATRONI_RESTAPI_CAFILE", "restapi", "cafile")?),
        certfile: path("PATRONI_CTL_CERTFILE", "ctl", "certfile")?,
        keyfile: path("PATRONI_CTL_KEYFILE", "ctl", "keyfile")?,
        insecure,
    };
    let other_dcs = (etcd3.is_none())
        .then(|| {
            OTHER_DCS
                .iter()
                .find(|k| root.get(**k).is_some())
                .map(|k| k.to_string())
        })
        .flatten();
    Ok(FromFile {
        scope: scope.filter(|s| !s.is_empty()),
        namespace,
        endpoints: hosts,
        etcd_user: username.map(|u| (u, password.unwrap_or_default())),
        rest_auth,
        tls,
        other_dcs,
    })
}

/// Patroni's `parse_bool` for `ctl.insecure`: `true`, `on`, `yes`, `1`, ...
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "true" | "on" | "yes" | "y" | "1"
        ),
        _ => false,
    }
}

fn split_hosts(list: &str) -> Vec<String> {
    list.split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_env() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[test]
    fn lenient_reads_what_the_cli_needs() {
        let v = json!({"scope": "batman", "namespace": "/ns/", "etcd3": {"hosts": ["a:1", "http://b:2"], "username": "u", "password": "p"}});
        let f = lenient(&v, &no_env()).expect("valid");
        assert_eq!(f.scope.as_deref(), Some("batman"));
        assert_eq!(f.namespace.as_deref(), Some("/ns/"));
        assert_eq!(f.endpoints, vec!["a:1", "http://b:2"]);
        assert_eq!(f.etcd_user, Some(("u".into(), "p".into())));

        let f = lenient(&json!({"etcd3": {"hosts": "a:1, b:2"}}), &no_env()).expect("valid");
        assert_eq!(f.endpoints, vec!["a:1", "b:2"]);
        let f = lenient(&json!({"etcd3": {"host": "a:1"}}), &no_env()).expect("valid");
        assert_eq!(f.endpoints, vec!["a:1"]);
        assert!(lenient(&json!({"scope": ["x"]}), &no_env()).is_err());
    }

    #[test]
    fn rest_api_credentials() {
        let both = json!({
            "ctl": {"authentication": {"username": "ctl", "password": "c"}},
            "restapi": {"authentication": {"username": "api", "password": "a"}},
        });
        let f = lenient(&both, &no_env()).expect("valid");
        assert_eq!(f.rest_auth, Some(("ctl".into(), "c".into())));
        let api_only = json!({"restapi": {"authentication": {"username": "api", "password": 7}}});
        let f = lenient(&api_only, &no_env()).expect("valid");
        assert_eq!(f.rest_auth, Some(("api".into(), "7".into())));
        assert_eq!(lenient(&json!({}), &no_env()).expect("valid").rest_auth, None);
        let env: BTreeMap<String, String> = [("PATRONI_CTL_USERNAME", "envuser"), ("PATRONI_CTL_PASSWORD", "envpw")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let f = lenient(&both, &env).expect("valid");
        assert_eq!(f.rest_auth, Some(("envuser".into(), "envpw".into())));
    }

    #[test]
    fn https_settings() {
        let v = json!({
            "restapi": {"cafile": "/tls/api-ca.pem"},
            "ctl": {"insecure": "on", "certfile": "/tls/client.pem", "keyfile": "/tls/client.key"},
        });
        let f = lenient(&v, &no_env()).expect("valid");
        assert_eq!(
            f.tls,
            ClientTls {
                cafile: Some("/tls/api-ca.pem".into()),
                certfile: Some("/tls/client.pem".into()),
                keyfile: Some("/tls/client.key".into()),
                insecure: true,
            }
        );
        let v =
            json!({"restapi": {"cafile": "/tls/api-ca.pem"}, "ctl": {"cacert": "/tls/ctl-ca.pem", "insecure": false}});
        let f = lenient(&v, &no_env()).expect("valid");
        assert_eq!(f.tls.cafile, Some("/tls/ctl-ca.pem".into()));
        assert!(!f.tls.insecure);
        assert_eq!(lenient(&json!({}), &no_env()).expect("valid").tls, ClientTls::default());
        let env: BTreeMap<String, String> = [("PATRONI_CTL_INSECURE", "yes"), ("PATRONI_CTL_CACERT", "/env/ca.pem")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let f = lenient(&v, &env).expect("valid");
        assert_eq!((f.tls.cafile, f.tls.insecure), (Some("/env/ca.pem".into()), true));
        assert!(lenient(&json!({"ctl": {"cacert": ["x"]}}), &no_env()).is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let env: BTreeMap<String, String> = [("PATRONI_SCOPE", "robin"), ("PATRONI_ETCD3_HOSTS", "c:3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let f = lenient(&json!({"scope": "batman", "etcd3": {"host": "a:1"}}), &env).expect("valid");
        assert_eq!(f.scope.as_deref(), Some("robin"));
        assert_eq!(f.endpoints, vec!["c:3"]);
    }

    #[test]
    fn dcs_url_wins_over_the_file() {
        let file = FromFile {
            endpoints: vec!["a:1".into()],
            namespace: Some("/file".into()),
            ..Default::default()
        };
        let s = combine(file, Some("etcd3://b:2/url")).expect("valid");
        assert_eq!(s.endpoints, vec!["b:2"]);
        assert_eq!(s.namespace, "/url");

        let file = FromFile {
            endpoints: vec!["a:1".into()],
            namespace: Some("/file".into()),
            ..Default::default()
        };
        let s = combine(file, Some("etcd3://b:2")).expect("valid");
        assert_eq!(s.namespace, "/file");
    }

    #[test]
    fn defaults_and_unsupported_backends() {
        let s = combine(FromFile::default(), None).expect("valid");
        assert_eq!(s.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!(s.namespace, "/service");
        assert_eq!(s.scope, None);

        let consul = lenient(&json!({"consul": {"host": "h"}}), &no_env()).expect("valid");
        assert!(combine(consul, None).unwrap_err().to_string().contains("consul"));
        let consul = lenient(&json!({"consul": {"host": "h"}}), &no_env()).expect("valid");
        assert!(combine(consul, Some("etcd3://h:1")).is_ok());
    }

    #[test]
    fn full_and_partial_files() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let full = dir.path().join("node.yml");
        std::fs::write(
            &full,
            "name: pg1\nscope: demo\nnamespace: /ns\nrestapi:\n  listen: 10.0.0.1:8008\netcd3:\n  hosts: 10.0.0.5:2379\n  \
             username: root\n  password: secret\npostgresql:\n  listen: 10.0.0.1:5432\n  data_dir: /data/pg\n\
             ctl:\n  authentication:\n    username: admin\n    password: pw\n  cacert: /tls/ca.pem\n",
        )
        .expect("write");
        let s = resolve(Some(&full), None).expect("valid");
        assert_eq!(s.scope.as_deref(), Some("demo"));
        assert_eq!(s.namespace.trim_matches('/'), "ns");
        assert_eq!(s.endpoints, vec!["http://10.0.0.5:2379"]);
        assert_eq!(s.etcd_user, Some(("root".into(), "secret".into())));
        assert_eq!(s.rest_auth, Some(("admin".into(), "pw".into())));
        assert_eq!(s.tls.cafile, Some("/tls/ca.pem".into()));

        let conf_d = dir.path().join("conf.d");
        std::fs::create_dir(&conf_d).expect("mkdir");
        std::fs::write(conf_d.join("10-dcs.yaml"), "etcd3:\n  host: 10.0.0.6:2379\n").expect("write");
        std::fs::write(conf_d.join("20-scope.yml"), "scope: other\n").expect("write");
        std::fs::write(conf_d.join("README"), "not yaml: [").expect("write");
        let s = resolve(Some(&conf_d), None).expect("valid");
        assert_eq!(
            (s.scope.as_deref(), s.endpoints),
            (Some("other"), vec!["10.0.0.6:2379".to_string()])
        );

        let broken = dir.path().join("broken.yml");
        std::fs::write(&broken, "scope: [unclosed\n").expect("write");
        assert!(matches!(resolve(Some(&broken), None), Err(CtlError::Usage(_))));
    }
}
