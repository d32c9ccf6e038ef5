//! The local configuration (Patroni's YAML file after environment overrides) validated into a
//! [`Config`]. Problems that stop ferroni are errors naming the key path; things Patroni
//! would silently ignore become warnings, so nobody is surprised later.

use crate::dynamic::{self, parameters};
use crate::error::ConfigError;
use crate::etcd;
use crate::methods;
use crate::walk::{At, Child, opt_with};
use crate::yaml::{Node, quote, to_json_map};
use ferroni_model::{
    BootstrapConfig, BootstrapMethod, Config, Credentials, CtlConfig, LogConfig, PostgresqlConfig, ReplicaMethod,
    RestApiConfig, Tags, VerifyClient, WatchdogConfig, WatchdogMode,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Top-level sections ferroni reads.
const SECTIONS: &[&str] = &[
    "name",
    "scope",
    "namespace",
    "restapi",
    "ctl",
    "etcd3",
    "bootstrap",
    "postgresql",
    "tags",
    "watchdog",
    "log",
];

/// Patroni keys that tune Python internals; nothing to do for ferroni.
const SILENTLY_IGNORED: &[&str] = &["thread_pool_size", "thread_stack_size", "failsafe"];

/// Dynamic-configuration keys people put at the top of the local file. Patroni ignores them
/// there (only `bootstrap.dcs` and the DCS count), which is worth saying out loud.
const DYNAMIC_KEYS: &[&str] = &[
    "ttl",
    "loop_wait",
    "retry_timeout",
    "maximum_lag_on_failover",
    "maximum_lag_on_syncnode",
    "primary_start_timeout",
    "master_start_timeout",
    "primary_stop_timeout",
    "master_stop_timeout",
    "primary_race_backoff",
    "check_timeline",
    "max_timelines_history",
    "synchronous_mode",
    "synchronous_mode_strict",
    "synchronous_node_count",
    "failsafe_mode",
    "pause",
    "member_slots_ttl",
    "slots",
    "ignore_slots",
    "standby_cluster",
];

/// Keys of the `postgresql` section; any other map in it may be a replica method.
const POSTGRESQL_KEYS: &[&str] = &[
    "listen",
    "connect_address",
    "proxy_address",
    "data_dir",
    "config_dir",
    "bin_dir",
    "bin_name",
    "pgpass",
    "authentication",
    "callbacks",
    "custom_conf",
    "use_unix_socket",
    "use_unix_socket_repl",
    "pg_ctl_timeout",
    "pre_promote",
    "before_stop",
    "parameters",
    "parameters_primary",
    "parameters_replica",
    "parameters_standby_leader",
    "pg_hba",
    "pg_hba_primary",
    "pg_hba_replica",
    "pg_hba_standby_leader",
    "pg_ident",
    "pg_ident_primary",
    "pg_ident_replica",
    "pg_ident_standby_leader",
    "recovery_conf",
    "use_pg_rewind",
    "use_slots",
    "rewind",
    "remove_data_directory_on_rewind_failure",
    "remove_data_directory_on_diverged_timelines",
    "create_replica_methods",
    "create_replica_method",
    "basebackup",
    "basebackup_attempts",
    "basebackup_retry_delay",
    "name",
    "replication",
    "superuser",
    "pg_rewind",
    "cancel",
    "retry_timeout",
];

const CALLBACKS: &[&str] = &["on_start", "on_stop", "on_restart", "on_reload", "on_role_change"];

/// Patroni reserves this member name for its quorum bookkeeping.
const RESERVED_NAME: &str = "__patroni_strict_sync_replica_placeholder__";

pub const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

pub fn build(root: &Node, warnings: &mut Vec<String>) -> Result<Config, ConfigError> {
    let at = At::new(root, "");
    match root {
        Node::Map(_) => {}
        Node::Null => return Err(ConfigError::general("the configuration is empty")),
        other => {
            return Err(ConfigError::general(format!(
                "the configuration must be a map of sections, got {}",
                other.describe()
            )));
        }
    }
    top_level_warnings(&at, warnings)?;

    let name = at.req("name")?.at().non_empty_string()?;
    if name == RESERVED_NAME {
        return Err(ConfigError::new(
            "name",
            format!("{} is reserved by Patroni", quote(&name)),
        ));
    }
    let scope = at.req("scope")?.at().non_empty_string()?;
    let namespace =
        normalise_namespace(&opt_with(&at, "namespace", |v| v.string())?.unwrap_or_else(|| "/service".into()));

    let restapi = restapi(&at.req("restapi")?.at(), warnings)?;
    let ctl = match at.opt("ctl")? {
        Some(c) => ctl(&c.at())?,
        None => CtlConfig::default(),
    };
    let etcd3 = etcd::etcd3(&at, warnings)?;
    let mut postgresql = postgresql(&at.req("postgresql")?.at(), &name, warnings)?;
    let bootstrap = match at.opt("bootstrap")? {
        Some(b) => bootstrap(&b.at(), warnings)?,
        None => BootstrapConfig {
            dcs: Value::Object(Map::new()),
            method: BootstrapMethod::Initdb,
            initdb: Vec::new(),
            post_bootstrap: None,
            pg_hba: Vec::new(),
        },
    };
    standby_methods(&at, &mut postgresql.replica_methods)?;
    unused_method_sections(&at, &mut postgresql.replica_methods, warnings)?;

    Ok(Config {
        name,
        scope,
        namespace,
        restapi,
        ctl,
        etcd3,
        bootstrap,
        postgresql,
        tags: match at.opt("tags")? {
            Some(t) => tags(&t.at(), warnings)?,
            None => Tags::default(),
        },
        watchdog: watchdog(&at)?,
        log: match at.opt("log")? {
            Some(l) => log(&l.at())?,
            None => LogConfig::default(),
        },
    })
}

fn top_level_warnings(at: &At<'_>, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    for (key, _) in at.entries()? {
        let key = key.as_str();
        if SECTIONS.contains(&key) || etcd::OTHER_DCS.contains(&key) || SILENTLY_IGNORED.contains(&key) {
            continue;
        }
        if DYNAMIC_KEYS.contains(&key) {
            warnings.push(format!(
                "{} belongs to the dynamic configuration (bootstrap.dcs, or patronictl edit-config once the cluster exists) and is ignored here",
                quote(key)
            ));
        } else if key == "citus" {
            warnings.push("section \"citus\" is ignored: ferroni does not support Citus clusters".to_string());
        } else {
            warnings.push(format!("unknown section {} is ignored", quote(key)));
        }
    }
    Ok(())
}

/// Patroni builds keys as `/<namespace>/<scope>/...` and collapses repeated slashes.
fn normalise_namespace(namespace: &str) -> String {
    let parts: Vec<&str> = namespace.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        "/".to_string()
    } else {
        format!("/{}/", parts.join("/"))
    }
}

/// Splits `host:port` (`[::1]:8008` for IPv6). With `multi_host`, the host part may be a
/// comma-separated list, as in `postgresql.listen: 10.0.0.1,127.0.0.1:5432`.
fn host_port(at: &At<'_>, multi_host: bool) -> Result<(String, u16), ConfigError> {
    let text = at.string()?;
    let bad = || at.err(format!("expected host:port, got {}", quote(&text)));
    let (host, port) = text.trim().rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.trim().parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    let host = host.trim();
    let hosts: Vec<&str> = if multi_host {
        host.split(',').map(str::trim).collect()
    } else {
        vec![host]
    };
    // An empty host is fine for a single listen address (all interfaces), not inside a list.
    if (hosts.len() > 1 && hosts.iter().any(|h| h.is_empty())) || hosts.iter().any(|h| h.contains(char::is_whitespace))
    {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

fn is_wildcard(host: &str) -> bool {
    matches!(host.trim(), "" | "*" | "0.0.0.0" | "::" | "[::]")
}

/// The address other members use when `connect_address` is not set: the first listen host.
fn default_connect(section: &str, listen: &str, host: &str, port: u16, warnings: &mut Vec<String>) -> String {
    let first = host.split(',').next().unwrap_or("").trim();
    if is_wildcard(first) {
        warnings.push(format!(
            "{section}.connect_address is not set and {section}.listen ({listen}) is not an address other members can reach; set {section}.connect_address"
        ));
    }
    format!("{first}:{port}")
}

pub(crate) fn string_of(child: Option<Child<'_>>) -> Result<Option<String>, ConfigError> {
    child.map(|c| c.at().string()).transpose()
}

fn path_of(child: Option<Child<'_>>) -> Result<Option<PathBuf>, ConfigError> {
    Ok(string_of(child)?.filter(|s| !s.is_empty()).map(PathBuf::from))
}

/// An `authentication`-style map. With a `default_user`, the username may be left out.
fn credentials(at: &At<'_>, default_user: Option<&str>) -> Result<Credentials, ConfigError> {
    let username = match (at.opt("username")?, default_user) {
        (Some(u), _) => u.at().non_empty_string()?,
        (None, Some(d)) => d.to_string(),
        (None, None) => at.req("username")?.at().non_empty_string()?,
    };
    Ok(Credentials {
        username,
        password: string_of(at.opt("password")?)?,
    })
}

fn restapi(at: &At<'_>, warnings: &mut Vec<String>) -> Result<RestApiConfig, ConfigError> {
    at.entries()?;
    let listen_at = at.req("listen")?;
    let (host, port) = host_port(&listen_at.at(), false)?;
    let listen = listen_at.at().string()?.trim().to_string();
    let connect_address = match at.opt("connect_address")? {
        Some(c) => {
            host_port(&c.at(), false)?;
            c.at().string()?.trim().to_string()
        }
        None => default_connect("restapi", &listen, &host, port, warnings),
    };
    let (certfile, keyfile, cafile, verify_client) = restapi_tls(at, warnings)?;
    Ok(RestApiConfig {
        listen,
        connect_address,
        authentication: at
            .opt("authentication")?
            .map(|a| credentials(&a.at(), None))
            .transpose()?,
        certfile,
        keyfile,
        cafile,
        verify_client,
    })
}

/// `certfile`, `keyfile`, `cafile`, `verify_client` of `restapi`.
type RestApiTls = (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>, VerifyClient);

/// `restapi.certfile`, `keyfile`, `cafile`, `verify_client`. The files are read when the daemon
/// starts (the CLI reads the same configuration and may not be allowed to read the key); a
/// `certfile` without `keyfile` must then hold the key too, as Python's `load_cert_chain` allows.
fn restapi_tls(at: &At<'_>, warnings: &mut Vec<String>) -> Result<RestApiTls, ConfigError> {
    let certfile = path_of(at.opt("certfile")?)?;
    let keyfile = path_of(at.opt("keyfile")?)?;
    let cafile = path_of(at.opt("cafile")?)?;
    let verify_at = at.opt("verify_client")?;
    let verify_client = match &verify_at {
        None => VerifyClient::None,
        Some(v) => {
            let v = v.at();
            let expected = || {
                v.err(format!(
                    "expected none, optional or required, got {}",
                    v.node.describe()
                ))
            };
            match v.string().map_err(|_| expected())?.trim().to_ascii_lowercase().as_str() {
                "none" => VerifyClient::None,
                "optional" => VerifyClient::Optional,
                "required" => VerifyClient::Required,
                _ => return Err(expected()),
            }
        }
    };
    if certfile.is_none() {
        // `cafile` is still the CA ferronictl trusts (patronictl's fallback for ctl.cacert).
        for key in ["keyfile", "verify_client", "keyfile_password", "ciphers"] {
            if at.has(key) {
                warnings.push(format!(
                    "restapi.{key} has no effect without restapi.certfile (the REST API speaks plain HTTP)"
                ));
            }
        }
        return Ok((None, None, cafile, VerifyClient::None));
    }
    if let Some(v) = verify_at.filter(|_| verify_client != VerifyClient::None && cafile.is_none()) {
        return Err(v
            .at()
            .err("needs restapi.cafile, the CA certificates that client certificates must be signed by"));
    }
    if at.has("keyfile_password") {
        warnings.push(
            "restapi.keyfile_password is ignored: ferroni cannot decrypt private keys; give an unencrypted key"
                .to_string(),
        );
    }
    if at.has("ciphers") {
        warnings.push("restapi.ciphers is ignored: ferroni offers only TLS 1.2/1.3 with strong ciphers".to_string());
    }
    Ok((certfile, keyfile, cafile, verify_client))
}

fn ctl(at: &At<'_>) -> Result<CtlConfig, ConfigError> {
    Ok(CtlConfig {
        authentication: at
            .opt("authentication")?
            .map(|a| credentials(&a.at(), None))
            .transpose()?,
        insecure: opt_with(at, "insecure", |v| v.boolean())?.unwrap_or(false),
        cacert: path_of(at.opt("cacert")?)?,
        certfile: path_of(at.opt("certfile")?)?,
        keyfile: path_of(at.opt("keyfile")?)?,
    })
}

fn postgresql(at: &At<'_>, name: &str, warnings: &mut Vec<String>) -> Result<PostgresqlConfig, ConfigError> {
    at.entries()?;
    let listen_at = at.req("listen")?;
    let (host, port) = host_port(&listen_at.at(), true)?;
    let listen = listen_at.at().string()?.trim().to_string();
    let connect_address = match at.opt("connect_address")? {
        Some(c) => {
            host_port(&c.at(), false)?;
            c.at().string()?.trim().to_string()
        }
        None => default_connect("postgresql", &listen, &host, port, warnings),
    };
    let data_dir = PathBuf::from(at.req("data_dir")?.at().non_empty_string()?);
    let config_dir = path_of(at.opt("config_dir")?)?.unwrap_or_else(|| data_dir.clone());
    // An explicit empty bin_dir means "find the programs on PATH", as in Patroni.
    let bin_dir = match at.opt("bin_dir")? {
        Some(b) => PathBuf::from(b.at().string()?),
        None => PathBuf::from(DEFAULT_BIN_DIR),
    };
    let pgpass = path_of(at.opt("pgpass")?)?.unwrap_or_else(|| PathBuf::from(format!("/tmp/pgpass_{name}")));

    let auth = at.opt("authentication")?;
    let user = |kind: &str| -> Result<Option<Child<'_>>, ConfigError> {
        match &auth {
            Some(a) => a.at().opt(kind),
            None => Ok(None),
        }
    };
    let with_default = |kind: &str, default: &str| -> Result<Credentials, ConfigError> {
        match user(kind)? {
            Some(u) => credentials(&u.at(), Some(default)),
            None => Ok(Credentials {
                username: default.to_string(),
                password: None,
            }),
        }
    };
    let superuser = with_default("superuser", "postgres")?;
    let replication = with_default("replication", "replicator")?;
    let rewind = user("rewind")?.map(|u| credentials(&u.at(), None)).transpose()?;

    let mut replica_methods = BTreeMap::new();
    let list = match at.opt("create_replica_methods")? {
        Some(l) => Some(l),
        None => at.opt("create_replica_method")?,
    };
    let create_replica_methods = match list {
        Some(l) => methods::method_list(&l.at(), at, &mut replica_methods)?,
        None => Vec::new(),
    };

    let mut callbacks = BTreeMap::new();
    if let Some(cb) = at.opt("callbacks")? {
        let cb = cb.at();
        for (key, _) in cb.entries()? {
            if !CALLBACKS.contains(&key.as_str()) {
                return Err(ConfigError::new(
                    cb.child_path(key),
                    format!("unknown callback (expected one of {})", CALLBACKS.join(", ")),
                ));
            }
            if let Some(cmd) = cb.opt(key)? {
                callbacks.insert(key.clone(), cmd.at().non_empty_string()?);
            }
        }
    }

    let flag = |key: &str| -> Result<bool, ConfigError> { Ok(opt_with(at, key, |v| v.boolean())?.unwrap_or(false)) };
    Ok(PostgresqlConfig {
        listen,
        connect_address,
        data_dir,
        config_dir,
        bin_dir,
        pgpass,
        superuser,
        replication,
        rewind,
        parameters: match at.opt("parameters")? {
            Some(p) => parameters(&p.at())?,
            None => Map::new(),
        },
        pg_hba: opt_with(at, "pg_hba", |v| v.string_list())?,
        create_replica_methods,
        replica_methods,
        basebackup: match at.opt("basebackup")? {
            Some(b) => methods::basebackup_options(&b.at())?,
            None => Vec::new(),
        },
        recovery_conf: methods::recovery_settings(at)?,
        basebackup_attempts: opt_with(at, "basebackup_attempts", |v| v.u32_min(1))?.unwrap_or(2),
        basebackup_retry_delay: opt_with(at, "basebackup_retry_delay", |v| v.u32_min(0))?.unwrap_or(5),
        use_unix_socket: flag("use_unix_socket")?,
        pg_ctl_timeout: opt_with(at, "pg_ctl_timeout", |v| v.u32_min(1))?.unwrap_or(60),
        callbacks,
        use_pg_rewind: opt_with(at, "use_pg_rewind", |v| v.boolean())?,
        remove_data_directory_on_rewind_failure: flag("remove_data_directory_on_rewind_failure")?,
        remove_data_directory_on_diverged_timelines: flag("remove_data_directory_on_diverged_timelines")?,
    })
}

/// Methods named by `bootstrap.dcs.standby_cluster.create_replica_methods` live under
/// `postgresql` too, and must exist just the same.
fn standby_methods(root: &At<'_>, methods: &mut BTreeMap<String, ReplicaMethod>) -> Result<(), ConfigError> {
    let Some(boot) = root.opt("bootstrap")? else {
        return Ok(());
    };
    let Some(dcs) = boot.at().opt("dcs")? else {
        return Ok(());
    };
    let Some(sc) = dcs.at().opt("standby_cluster")? else {
        return Ok(());
    };
    let Some(list) = sc.at().opt("create_replica_methods")? else {
        return Ok(());
    };
    let pg = root.req("postgresql")?;
    methods::method_list(&list.at(), &pg.at(), methods)?;
    Ok(())
}

/// Sections of `postgresql` with a `command` that no method list names are probably replica
/// methods someone forgot to list; they are kept (a method list changed later in the DCS may
/// name them) and reported.
fn unused_method_sections(
    root: &At<'_>,
    found: &mut BTreeMap<String, ReplicaMethod>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let pg = root.req("postgresql")?;
    let pg = pg.at();
    for (key, value) in pg.entries()? {
        if POSTGRESQL_KEYS.contains(&key.as_str()) || found.contains_key(key) || value.get("command").is_none() {
            continue;
        }
        let path = pg.child_path(key);
        match methods::replica_method(key, &At::new(value, &path)) {
            Ok(method) => {
                warnings.push(format!(
                    "{path} looks like a replica method (it has a command), but no create_replica_methods list names it"
                ));
                found.insert(key.clone(), method);
            }
            // Unused, so not fatal; but it would fail the day a method list names it.
            Err(e) => warnings.push(format!(
                "{e} (the section is not named by any create_replica_methods list)"
            )),
        }
    }
    Ok(())
}

fn bootstrap(at: &At<'_>, warnings: &mut Vec<String>) -> Result<BootstrapConfig, ConfigError> {
    at.entries()?;
    let dcs = match at.opt("dcs")? {
        Some(d) => {
            dynamic::parse_node(&d.at())?;
            d.node.to_json()
        }
        None => Value::Object(Map::new()),
    };
    let initdb = match at.opt("initdb")? {
        Some(i) => methods::initdb_options(&i.at())?,
        None => Vec::new(),
    };
    // `post_init` is the older name of `post_bootstrap`.
    let post_bootstrap = match at.opt("post_bootstrap")? {
        Some(p) => Some(p.at().non_empty_string()?),
        None => opt_with(at, "post_init", |v| v.non_empty_string())?,
    };
    if at.has("users") {
        warnings.push(
            "bootstrap.users is ignored: Patroni 4 removed it; create users in bootstrap.post_bootstrap".to_string(),
        );
    }
    Ok(BootstrapConfig {
        dcs,
        method: methods::bootstrap_method(at, warnings)?,
        initdb,
        post_bootstrap,
        pg_hba: opt_with(at, "pg_hba", |v| v.string_list())?.unwrap_or_default(),
    })
}

fn tags(at: &At<'_>, warnings: &mut Vec<String>) -> Result<Tags, ConfigError> {
    let entries = at.entries()?;
    let flag = |key: &str| -> Result<Option<bool>, ConfigError> { opt_with(at, key, |v| v.boolean()) };
    let nofailover = flag("nofailover")?;
    let failover_priority = opt_with(at, "failover_priority", |v| v.int_in(i64::MIN, i64::MAX))?;
    if let (Some(nf), Some(fp)) = (nofailover, failover_priority) {
        warnings.push(format!(
            "tags: nofailover ({nf}) and failover_priority ({fp}) are both set; nofailover wins and failover_priority is ignored"
        ));
    }
    if at.has("nosync") && at.has("sync_priority") {
        warnings.push("tags: nosync and sync_priority are both set; nosync wins".to_string());
    }
    Ok(Tags {
        // As in Patroni: an explicit nofailover decides; otherwise a priority of 0 or less
        // means "never promote".
        nofailover: nofailover.unwrap_or_else(|| failover_priority.is_some_and(|p| p <= 0)),
        failover_priority: if nofailover.is_some() { None } else { failover_priority },
        clonefrom: flag("clonefrom")?.unwrap_or(false),
        replicatefrom: opt_with(at, "replicatefrom", |v| v.non_empty_string())?,
        noloadbalance: flag("noloadbalance")?.unwrap_or(false),
        nosync: flag("nosync")?.unwrap_or(false),
        all: to_json_map(entries),
    })
}

fn watchdog(root: &At<'_>) -> Result<WatchdogConfig, ConfigError> {
    // Patroni's default mode is automatic: use /dev/watchdog when it can be opened.
    let Some(w) = root.opt("watchdog")? else {
        return Ok(WatchdogConfig {
            mode: WatchdogMode::Automatic,
            device: None,
            safety_margin: 5,
        });
    };
    let w = w.at();
    let mode = match w.opt("mode")? {
        None => WatchdogMode::Automatic,
        Some(m) => {
            let m = m.at();
            match m.node {
                Node::Bool(false) => WatchdogMode::Off,
                Node::Bool(true) => WatchdogMode::Automatic,
                Node::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "off" | "disable" | "disabled" => WatchdogMode::Off,
                    "automatic" | "auto" => WatchdogMode::Automatic,
                    "required" | "require" => WatchdogMode::Required,
                    _ => {
                        return Err(m.err(format!(
                            "expected off, automatic or required, got {}",
                            m.node.describe()
                        )));
                    }
                },
                _ => {
                    return Err(m.err(format!(
                        "expected off, automatic or required, got {}",
                        m.node.describe()
                    )));
                }
            }
        }
    };
    Ok(WatchdogConfig {
        mode,
        device: path_of(w.opt("device")?)?,
        // -1 means "ttl / 2", resolved where the ttl is known.
        safety_margin: opt_with(&w, "safety_margin", |v| v.int_in(-1, i64::from(u32::MAX)))?.unwrap_or(5),
    })
}

fn log(at: &At<'_>) -> Result<LogConfig, ConfigError> {
    at.entries()?;
    let level = match at.opt("level")? {
        None => "info".to_string(),
        Some(l) => {
            let l = l.at();
            let text = l
                .string()
                .map_err(|_| l.err(format!("expected a log level, got {}", l.node.describe())))?;
            match text.trim().to_ascii_lowercase().as_str() {
                lvl @ ("debug" | "info" | "warning" | "error" | "critical") => lvl.to_string(),
                "warn" => "warning".to_string(),
                "fatal" => "critical".to_string(),
                _ => {
                    return Err(l.err(format!(
                        "expected one of debug, info, warning, error, critical, got {}",
                        l.node.describe()
                    )));
                }
            }
        }
    };
    // Patroni 4 selects JSON with `type: json`; `format: json` is accepted too. Any other
    // `format` is a Python logging format string, which has no meaning here: plain text.
    let is_json = |key: &str| matches!(at.node.get(key), Some(Node::Str(s)) if s.trim().eq_ignore_ascii_case("json"));
    Ok(LogConfig {
        level,
        json: is_json("type") || is_json("format"),
    })
}
