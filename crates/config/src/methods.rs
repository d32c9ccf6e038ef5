//! The parts of the configuration that turn into command lines: custom bootstrap methods
//! (`bootstrap.<method>`), custom replica creation methods (`postgresql.<method>`), and the
//! `initdb` and `pg_basebackup` option lists.
//!
//! Everything here is checked when the file is loaded rather than when the command first runs,
//! because a bootstrap or replica method typically first runs at the worst moment: when a node
//! is lost and has to be rebuilt.

use crate::dynamic::name_list;
use crate::error::ConfigError;
use crate::walk::{At, join, opt_with};
use crate::yaml::{Node, quote};
use ferroni_model::shellwords;
use ferroni_model::{BootstrapMethod, CustomBootstrap, ReplicaMethod};
use std::collections::BTreeMap;

/// Option name/value pairs, without the leading `--`.
pub type Options = Vec<(String, Option<String>)>;

/// A `command` key: a string split into shell words, or a list of words.
pub fn command(at: &At<'_>) -> Result<Vec<String>, ConfigError> {
    let words = match at.node {
        Node::Str(s) => {
            shellwords::split(s).map_err(|e| at.err(format!("cannot split the command into words: {e}")))?
        }
        Node::Seq(_) => at.string_list()?,
        _ => return Err(at.err(format!("expected a command, got {}", at.node.describe()))),
    };
    if words.first().is_none_or(|w| w.is_empty()) {
        return Err(at.err("must not be empty"));
    }
    Ok(words)
}

/// A scalar as Patroni puts it into `--key=value`: Python's `str()` of what PyYAML read, so
/// `true` is passed as `True` and an empty value as `None`, exactly as Patroni passes them.
pub fn python_str(at: &At<'_>, key: &str) -> Result<String, ConfigError> {
    Ok(match at.node {
        Node::Str(s) => s.clone(),
        Node::Bool(true) => "True".to_string(),
        Node::Bool(false) => "False".to_string(),
        Node::Null => "None".to_string(),
        Node::Num(n) => number_str(n),
        Node::Seq(_) | Node::Map(_) => {
            return Err(at.err(format!(
                "expected a value to pass as --{key}=<value>, got {}",
                at.node.describe()
            )));
        }
    })
}

fn number_str(n: &serde_json::Number) -> String {
    match n.as_f64() {
        // Python prints whole floats with a trailing `.0`.
        Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e16 => format!("{f:.1}"),
        _ => n.to_string(),
    }
}

/// Keys of a bootstrap method section that are not passed as `--key=value`. `scope` and
/// `datadir` are Patroni's own arguments, so a user value would only duplicate them.
const BOOTSTRAP_RESERVED: &[&str] = &[
    "command",
    "no_params",
    "keep_existing_recovery_conf",
    "recovery_conf",
    "scope",
    "datadir",
];

/// Keys of the `bootstrap` section itself, which therefore cannot name a method.
const BOOTSTRAP_KEYS: &[&str] = &[
    "dcs",
    "method",
    "initdb",
    "post_bootstrap",
    "post_init",
    "pg_hba",
    "users",
];

/// `bootstrap.method` and the section it names.
pub fn bootstrap_method(boot: &At<'_>, warnings: &mut Vec<String>) -> Result<BootstrapMethod, ConfigError> {
    let name = opt_with(boot, "method", |v| v.non_empty_string())?.unwrap_or_else(|| "initdb".to_string());
    let method_path = boot.child_path("method");
    // Patroni silently falls back to initdb for a section without `command`, and ignores
    // sections nobody names; both have cost people their intended restore (Patroni #2244).
    for (key, value) in boot.entries()? {
        if *key != name && !BOOTSTRAP_KEYS.contains(&key.as_str()) && value.get("command").is_some() {
            warnings.push(format!(
                "{} has a command, but bootstrap.method is {}; the section is not used",
                join(boot.path(), key),
                quote(&name)
            ));
        }
    }
    if name == "initdb" {
        return Ok(BootstrapMethod::Initdb);
    }
    if BOOTSTRAP_KEYS.contains(&name.as_str()) {
        return Err(ConfigError::new(
            method_path,
            format!("{} is a key of the bootstrap section, not a method name", quote(&name)),
        ));
    }
    let Some(section) = boot.opt(&name)? else {
        return Err(ConfigError::new(
            method_path,
            format!(
                "names {}, but there is no section {}",
                quote(&name),
                join(boot.path(), &name)
            ),
        ));
    };
    let section = section.at();
    let command = command(&section.req("command")?.at())?;
    let flag = |key: &str| -> Result<bool, ConfigError> { Ok(opt_with(&section, key, |v| v.flag())?.unwrap_or(false)) };

    let recovery_conf = recovery_settings(&section)?;

    let mut extra_args = Vec::new();
    for (key, node) in section.entries()? {
        if !BOOTSTRAP_RESERVED.contains(&key.as_str()) {
            let path = join(section.path(), key);
            extra_args.push((key.clone(), python_str(&At::new(node, &path), key)?));
        }
    }
    Ok(BootstrapMethod::Custom(CustomBootstrap {
        name,
        command,
        no_params: flag("no_params")?,
        keep_existing_recovery_conf: flag("keep_existing_recovery_conf")?,
        recovery_conf,
        extra_args,
    }))
}

/// A PostgreSQL setting value as it goes into the server configuration: booleans as `on`/`off`.
/// The `recovery_conf` map of `section` (a bootstrap method or `postgresql`), values as strings.
pub(crate) fn recovery_settings(section: &At<'_>) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut recovery_conf = BTreeMap::new();
    if let Some(rc) = section.opt("recovery_conf")? {
        let rc = rc.at();
        for (key, _) in rc.entries()? {
            if let Some(value) = rc.opt(key)? {
                recovery_conf.insert(key.clone(), setting_str(&value.at())?);
            }
        }
    }
    Ok(recovery_conf)
}

fn setting_str(at: &At<'_>) -> Result<String, ConfigError> {
    match at.node {
        Node::Bool(true) => Ok("on".to_string()),
        Node::Bool(false) => Ok("off".to_string()),
        Node::Str(s) => Ok(s.clone()),
        Node::Num(n) => Ok(number_str(n)),
        _ => Err(at.err(format!("expected a setting value, got {}", at.node.describe()))),
    }
}

/// Keys of a replica method section that steer ferroni rather than being passed on.
/// `no_master` is the pre-3.0 name of `no_leader`.
const REPLICA_RESERVED: &[&str] = &["command", "no_leader", "no_master", "keep_data", "no_params"];

/// Arguments ferroni passes itself unless `no_params` is set; Patroni overwrites user values
/// for these, so keeping them would pass them twice.
const REPLICA_OWN_ARGS: &[&str] = &["scope", "role", "datadir", "connstring"];

/// One `postgresql.<name>` replica method section.
///
/// Unlike Patroni, the flags `no_leader` and `keep_data` are never passed to the command as
/// `--no_leader=1` arguments: they are instructions to ferroni, and the tools that receive them
/// (wal-e, pgBackRest wrappers) do not expect them.
pub fn replica_method(name: &str, section: &At<'_>) -> Result<ReplicaMethod, ConfigError> {
    let command = command(&section.req("command")?.at())?;
    let flag = |key: &str| -> Result<bool, ConfigError> { Ok(opt_with(section, key, |v| v.flag())?.unwrap_or(false)) };
    let no_params = flag("no_params")?;
    let mut extra_args = Vec::new();
    for (key, node) in section.entries()? {
        let own = !no_params && REPLICA_OWN_ARGS.contains(&key.as_str());
        if !REPLICA_RESERVED.contains(&key.as_str()) && !own {
            let path = join(section.path(), key);
            extra_args.push((key.clone(), python_str(&At::new(node, &path), key)?));
        }
    }
    Ok(ReplicaMethod {
        name: name.to_string(),
        command,
        no_leader: flag("no_leader")? || flag("no_master")?,
        keep_data: flag("keep_data")?,
        no_params,
        extra_args,
    })
}

/// Reads a method list (`create_replica_methods`) and checks that every custom method in it
/// has a section with a command. `basebackup` is built in.
pub fn method_list(
    list: &At<'_>,
    pg: &At<'_>,
    methods: &mut BTreeMap<String, ReplicaMethod>,
) -> Result<Vec<String>, ConfigError> {
    let names = name_list(list)?;
    for (i, name) in names.iter().enumerate() {
        if name == "basebackup" || methods.contains_key(name) {
            continue;
        }
        let Some(section) = pg.opt(name)? else {
            let item_path = match list.node {
                Node::Seq(_) => format!("{}[{i}]", list.path()),
                _ => list.path().to_string(),
            };
            return Err(ConfigError::new(
                item_path,
                format!("method {} has no section {}", quote(name), join(pg.path(), name)),
            ));
        };
        let method = replica_method(name, &section.at())?;
        methods.insert(name.clone(), method);
    }
    Ok(names)
}

/// Why an option may not be given in `bootstrap.initdb`, if it may not.
fn initdb_refusal(name: &str, _value: Option<&str>) -> Option<&'static str> {
    match name {
        "pgdata" | "pwfile" => Some("ferroni sets it"),
        "nosync" => Some("the data directory must be synced to disk"),
        "sync-only" | "version" => Some("initdb would not create a cluster"),
        _ => None,
    }
}

/// Why an option may not be given in `postgresql.basebackup`, if it may not.
fn basebackup_refusal(name: &str, value: Option<&str>) -> Option<&'static str> {
    match name {
        "pgdata" | "wal-method" | "xlog-method" | "dbname" | "host" | "port" | "username" | "password" => {
            Some("ferroni sets it")
        }
        "format" | "gzip" => Some("ferroni needs a plain data directory"),
        // Server-side compression is undone by the server before the data arrives.
        "compress" if !value.is_some_and(|v| v.starts_with("server-")) => {
            Some("ferroni needs a plain data directory; only server-side compression (server-...) is possible")
        }
        "version" => Some("pg_basebackup would not copy anything"),
        _ => None,
    }
}

pub fn initdb_options(at: &At<'_>) -> Result<Options, ConfigError> {
    option_list(at, initdb_refusal)
}

pub fn basebackup_options(at: &At<'_>) -> Result<Options, ConfigError> {
    option_list(at, basebackup_refusal)
}

/// An option list in either of Patroni's two forms: a map (`encoding: UTF8`), or a list of
/// option names and one-key maps (`- data-checksums`, `- encoding: UTF8`). Long options only.
fn option_list(at: &At<'_>, refusal: fn(&str, Option<&str>) -> Option<&'static str>) -> Result<Options, ConfigError> {
    let mut out = Vec::new();
    let mut add = |key: &str, value: &At<'_>| -> Result<(), ConfigError> {
        let name = option_name(at, key)?;
        let value = match value.node {
            // A bare `- verbose`, `verbose:` or `verbose: true` is a flag; Patroni would pass
            // `--verbose=True` for the last, which no PostgreSQL tool accepts.
            Node::Null | Node::Bool(true) => None,
            Node::Str(s) if s.is_empty() => None,
            Node::Bool(false) => return Ok(()),
            Node::Str(s) => Some(shellwords::unquote(s)),
            Node::Num(n) => Some(number_str(n)),
            _ => return Err(value.err(format!("expected an option value, got {}", value.node.describe()))),
        };
        if let Some(reason) = refusal(&name, value.as_deref()) {
            return Err(at.err(format!("option {} is not allowed ({reason})", quote(&name))));
        }
        out.push((name, value));
        Ok(())
    };
    match at.node {
        Node::Map(entries) => {
            for (key, node) in entries {
                add(key, &At::new(node, &join(at.path(), key)))?;
            }
        }
        Node::Seq(_) => {
            for item in at.items()? {
                match item.node {
                    Node::Str(name) => add(name, &At::new(&Node::Null, &item.path))?,
                    Node::Map(entries) if entries.len() == 1 => {
                        let (key, node) = &entries[0];
                        add(key, &At::new(node, &join(&item.path, key)))?;
                    }
                    Node::Map(entries) => {
                        return Err(item.at().err(format!(
                            "expected an option name or a map with one option, got a map with {} keys",
                            entries.len()
                        )));
                    }
                    other => {
                        return Err(item.at().err(format!(
                            "expected an option name or a map with one option, got {}",
                            other.describe()
                        )));
                    }
                }
            }
        }
        Node::Null => {}
        other => return Err(at.err(format!("expected a map or a list of options, got {}", other.describe()))),
    }
    Ok(out)
}

/// `--name` and `name` mean the same; short options are refused because Patroni turns every
/// name into `--name`, and a short option's meaning cannot be checked against the refusals.
fn option_name(at: &At<'_>, key: &str) -> Result<String, ConfigError> {
    let key = key.trim();
    let name = match key.strip_prefix("--") {
        Some(long) => long,
        None if key.starts_with('-') => "",
        None => key,
    };
    if name.is_empty() || name.starts_with('-') {
        return Err(at.err(format!(
            "option {} is not allowed (use long option names, such as \"max-rate\")",
            quote(key)
        )));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    fn opts(yaml: &str, f: fn(&At<'_>) -> Result<Options, ConfigError>, path: &str) -> Result<Options, String> {
        let n = parse(yaml).unwrap();
        f(&At::new(&n, path)).map_err(|e| e.to_string())
    }

    fn o(pairs: &[(&str, Option<&str>)]) -> Options {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(String::from)))
            .collect()
    }

    #[test]
    fn initdb_list_and_map_forms() {
        let list = opts(
            "- data-checksums\n- encoding: UTF8\n- locale: en_US.UTF-8\n- --auth-host: scram-sha-256",
            initdb_options,
            "bootstrap.initdb",
        )
        .unwrap();
        assert_eq!(
            list,
            o(&[
                ("data-checksums", None),
                ("encoding", Some("UTF8")),
                ("locale", Some("en_US.UTF-8")),
                ("auth-host", Some("scram-sha-256"))
            ])
        );
        let map = opts(
            "encoding: UTF8\ndata-checksums:\nlc-collate: C\nwal-segsize: 64",
            initdb_options,
            "bootstrap.initdb",
        )
        .unwrap();
        assert_eq!(
            map,
            o(&[
                ("encoding", Some("UTF8")),
                ("data-checksums", None),
                ("lc-collate", Some("C")),
                ("wal-segsize", Some("64"))
            ])
        );
    }

    #[test]
    fn initdb_refusals() {
        for (yaml, name) in [
            ("- pgdata: /x", "pgdata"),
            ("- --nosync", "nosync"),
            ("pwfile: /p", "pwfile"),
            ("- sync-only", "sync-only"),
            ("- version", "version"),
        ] {
            let e = opts(yaml, initdb_options, "bootstrap.initdb").unwrap_err();
            assert!(
                e.starts_with(&format!("bootstrap.initdb: option \"{name}\" is not allowed (")),
                "{e}"
            );
        }
        assert_eq!(
            opts("- pgdata: /x", initdb_options, "bootstrap.initdb").unwrap_err(),
            r#"bootstrap.initdb: option "pgdata" is not allowed (ferroni sets it)"#
        );
        assert!(
            opts("- -k", initdb_options, "bootstrap.initdb")
                .unwrap_err()
                .contains("long option names")
        );
        assert_eq!(
            opts("- [a]", initdb_options, "bootstrap.initdb").unwrap_err(),
            "bootstrap.initdb[0]: expected an option name or a map with one option, got a list"
        );
        assert_eq!(
            opts("- {a: 1, b: 2}", initdb_options, "bootstrap.initdb").unwrap_err(),
            "bootstrap.initdb[0]: expected an option name or a map with one option, got a map with 2 keys"
        );
        assert_eq!(
            opts("encoding: [x]", initdb_options, "bootstrap.initdb").unwrap_err(),
            "bootstrap.initdb.encoding: expected an option value, got a list"
        );
        assert_eq!(
            opts("data-checksums", initdb_options, "bootstrap.initdb").unwrap_err(),
            r#"bootstrap.initdb: expected a map or a list of options, got "data-checksums""#
        );
    }

    #[test]
    fn basebackup_forms_and_values() {
        let map = opts(
            "max-rate: '100M'\ncheckpoint: 'fast'\nverbose: true\nprogress:\nno-sync: false",
            basebackup_options,
            "postgresql.basebackup",
        )
        .unwrap();
        assert_eq!(
            map,
            o(&[
                ("max-rate", Some("100M")),
                ("checkpoint", Some("fast")),
                ("verbose", None),
                ("progress", None)
            ])
        );
        let list = opts(
            "- verbose\n- max-rate: '100M'\n- waldir: /pg-wal-mount/external-waldir\n- compress: server-zstd:5",
            basebackup_options,
            "postgresql.basebackup",
        )
        .unwrap();
        assert_eq!(
            list,
            o(&[
                ("verbose", None),
                ("max-rate", Some("100M")),
                ("waldir", Some("/pg-wal-mount/external-waldir")),
                ("compress", Some("server-zstd:5"))
            ])
        );
        // Patroni's unquote: quotes around a single word go.
        assert_eq!(
            opts("label: \"'nightly'\"", basebackup_options, "b").unwrap(),
            o(&[("label", Some("nightly"))])
        );
    }

    #[test]
    fn basebackup_refusals() {
        assert_eq!(
            opts("- format: tar", basebackup_options, "postgresql.basebackup").unwrap_err(),
            r#"postgresql.basebackup: option "format" is not allowed (ferroni needs a plain data directory)"#
        );
        for bad in [
            "pgdata",
            "format",
            "wal-method",
            "xlog-method",
            "gzip",
            "version",
            "dbname",
            "host",
            "port",
            "username",
            "password",
            "compress",
        ] {
            for form in [format!("- {bad}"), format!("- --{bad}: x"), format!("{bad}: x")] {
                let e = opts(&form, basebackup_options, "postgresql.basebackup").unwrap_err();
                assert!(
                    e.starts_with(&format!("postgresql.basebackup: option \"{bad}\" is not allowed")),
                    "{form}: {e}"
                );
            }
        }
        assert!(opts("compress: gzip:9", basebackup_options, "p").is_err());
        assert!(opts("compress: client-gzip", basebackup_options, "p").is_err());
        let e = opts("- -F: t", basebackup_options, "postgresql.basebackup").unwrap_err();
        assert_eq!(
            e,
            r#"postgresql.basebackup: option "-F" is not allowed (use long option names, such as "max-rate")"#
        );
    }

    fn boot(yaml: &str) -> Result<(BootstrapMethod, Vec<String>), String> {
        let n = parse(yaml).unwrap();
        let mut w = Vec::new();
        bootstrap_method(&At::new(&n, "bootstrap"), &mut w)
            .map(|m| (m, w))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn custom_bootstrap() {
        let (m, w) = boot(
            r#"
method: clone_with_wale
clone_with_wale:
  command: python3 /scripts/clone_with_wale.py --recovery-target-time="2024-01-01 10:00:00"
  keep_existing_recovery_conf: on
  recovery_conf:
    recovery_target_action: promote
    recovery_target_timeline: latest
    recovery_target_inclusive: false
    restore_command: envdir /etc/wal-e.d/env wal-e wal-fetch "%f" "%p"
  target_lsn:
  use_iam: 1
  dry: true
  ratio: 2.0
  envdir: /etc/wal-e.d/env
  scope: ignored
  datadir: ignored
"#,
        )
        .unwrap();
        assert!(w.is_empty());
        let BootstrapMethod::Custom(c) = m else { panic!("{m:?}") };
        assert_eq!(c.name, "clone_with_wale");
        assert_eq!(
            c.command,
            [
                "python3",
                "/scripts/clone_with_wale.py",
                "--recovery-target-time=2024-01-01 10:00:00"
            ]
        );
        assert!(c.keep_existing_recovery_conf);
        assert!(!c.no_params);
        assert_eq!(c.recovery_conf["recovery_target_action"], "promote");
        assert_eq!(c.recovery_conf["recovery_target_inclusive"], "off");
        assert_eq!(
            c.recovery_conf["restore_command"],
            r#"envdir /etc/wal-e.d/env wal-e wal-fetch "%f" "%p""#
        );
        let args: Vec<(&str, &str)> = c.extra_args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            args,
            [
                ("target_lsn", "None"),
                ("use_iam", "1"),
                ("dry", "True"),
                ("ratio", "2.0"),
                ("envdir", "/etc/wal-e.d/env")
            ]
        );
    }

    #[test]
    fn bootstrap_method_defaults_and_errors() {
        assert_eq!(boot("initdb: [data-checksums]").unwrap().0, BootstrapMethod::Initdb);
        assert_eq!(boot("method: initdb").unwrap().0, BootstrapMethod::Initdb);
        assert_eq!(
            boot("method: clone").unwrap_err(),
            r#"bootstrap.method: names "clone", but there is no section bootstrap.clone"#
        );
        assert_eq!(
            boot("method: clone\nclone: {no_params: true}").unwrap_err(),
            "bootstrap.clone.command: required key is missing"
        );
        assert_eq!(
            boot("method: clone\nclone: {command: ''}").unwrap_err(),
            "bootstrap.clone.command: must not be empty"
        );
        assert_eq!(
            boot("method: clone\nclone: {command: \"restore 'x\"}").unwrap_err(),
            "bootstrap.clone.command: cannot split the command into words: unterminated single quote"
        );
        assert_eq!(
            boot("method: clone\nclone: [x]").unwrap_err(),
            "bootstrap.clone: expected a map, got a list"
        );
        assert_eq!(
            boot("method: dcs\ndcs: {}").unwrap_err(),
            r#"bootstrap.method: "dcs" is a key of the bootstrap section, not a method name"#
        );
        assert_eq!(
            boot("method: c\nc: {command: x, opts: [1]}").unwrap_err(),
            "bootstrap.c.opts: expected a value to pass as --opts=<value>, got a list"
        );
        assert_eq!(
            boot("method: c\nc: {command: x, recovery_conf: {a: [1]}}").unwrap_err(),
            "bootstrap.c.recovery_conf.a: expected a setting value, got a list"
        );
    }

    #[test]
    fn unused_bootstrap_sections_are_reported() {
        let (m, w) = boot("pitr:\n  command: restore.sh\n").unwrap();
        assert_eq!(m, BootstrapMethod::Initdb);
        assert_eq!(
            w,
            [r#"bootstrap.pitr has a command, but bootstrap.method is "initdb"; the section is not used"#]
        );
    }

    fn replica(yaml: &str, name: &str) -> Result<ReplicaMethod, String> {
        let n = parse(yaml).unwrap();
        let path = format!("postgresql.{name}");
        replica_method(name, &At::new(n.get(name).unwrap(), &path)).map_err(|e| e.to_string())
    }

    #[test]
    fn replica_methods_from_the_docs() {
        let wal_e = replica(
            "wal_e:\n  command: patroni_wale_restore\n  no_leader: 1\n  envdir: WALE_ENV_DIR\n  use_iam: 1\n",
            "wal_e",
        )
        .unwrap();
        assert_eq!(
            wal_e,
            ReplicaMethod {
                name: "wal_e".into(),
                command: vec!["patroni_wale_restore".into()],
                no_leader: true,
                keep_data: false,
                no_params: false,
                extra_args: vec![("envdir".into(), "WALE_ENV_DIR".into()), ("use_iam".into(), "1".into())],
            }
        );
        let pgbackrest = replica(
            "pgbackrest:\n  command: /usr/bin/pgbackrest --stanza=main --delta restore\n  keep_data: True\n  no_params: True\n",
            "pgbackrest",
        )
        .unwrap();
        assert_eq!(
            pgbackrest.command,
            ["/usr/bin/pgbackrest", "--stanza=main", "--delta", "restore"]
        );
        assert!(pgbackrest.keep_data && pgbackrest.no_params && !pgbackrest.no_leader);
        assert!(pgbackrest.extra_args.is_empty());
    }

    #[test]
    fn replica_method_flags_and_own_args() {
        let m = replica(
            "m:\n  command: x\n  no_master: 'yes'\n  scope: s\n  datadir: d\n  other: o",
            "m",
        )
        .unwrap();
        assert!(m.no_leader);
        assert_eq!(m.extra_args, [("other".to_string(), "o".to_string())]);
        let m = replica("m:\n  command: x\n  no_params: on\n  scope: s", "m").unwrap();
        assert_eq!(m.extra_args, [("scope".to_string(), "s".to_string())]);
        assert_eq!(
            replica("m: {command: x, keep_data: perhaps}", "m").unwrap_err(),
            r#"postgresql.m.keep_data: expected a boolean, got "perhaps""#
        );
        assert_eq!(
            replica("m: {keep_data: true}", "m").unwrap_err(),
            "postgresql.m.command: required key is missing"
        );
    }

    #[test]
    fn command_as_list() {
        let n = parse("command: [/bin/restore, --from, 'a b']").unwrap();
        assert_eq!(
            command(&At::new(n.get("command").unwrap(), "c")).unwrap(),
            ["/bin/restore", "--from", "a b"]
        );
    }
}
