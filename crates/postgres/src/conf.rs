//! The configuration files ferroni manages: `postgresql.conf`, `pg_hba.conf`, the pgpass file and the
//! `standby.signal` / `recovery.signal` markers.
//!
//! Rendering is pure (unit-tested without I/O); writers are small and atomic. The rules, following
//! Patroni:
//! - `postgresql.conf` starts with [`MANAGED_HEADER`], includes `postgresql.base.conf` (initdb's original,
//!   renamed once), then every parameter, sorted: dynamic `postgresql.parameters`, overridden by the local
//!   ones; cluster-wide parameters (`max_connections`, `wal_level`, ...) come from the dynamic
//!   configuration only, validated, with Patroni's defaults; `listen_addresses`, `port`, `cluster_name`,
//!   `hba_file`, `unix_socket_directories` and `hot_standby` are forced; recovery parameters
//!   (`primary_conninfo`, `restore_command`, `recovery_target*`, ...) come only from the [`ConfRole`].
//! - Booleans render as `on`/`off`, numbers bare, strings single-quoted with `'` doubled and `\` doubled
//!   (the server's config scanner treats backslash as an escape).
//! - The server targets PostgreSQL 13 or later (`wal_keep_size`, recovery settings in postgresql.conf).
//!
//! Failure: rendering never fails; dropped or corrected parameters are reported in
//! [`RenderedConf::warnings`]. Writers fail with [`PgError::Io`] naming the file.

use crate::conninfo;
use crate::error::PgError;
use crate::fsutil;
use crate::runner::RunAs;
use ferroni_model::PostgresqlConfig;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// First line of the `postgresql.conf` ferroni writes; a file starting with it may be overwritten.
pub const MANAGED_HEADER: &str = "# Managed by ferroni: do not edit, this file is overwritten. \
Put local settings in postgresql.base.conf or in ferroni's configuration.";
/// The original `postgresql.conf`, included by ours.
pub const BASE_CONF: &str = "postgresql.base.conf";
/// Patroni's header, so a node migrated from Patroni is recognised as managed.
const PATRONI_HEADER_HINT: &str = "overwritten by Patroni";

/// Parameters only the dynamic configuration may set, because replicas must match the primary
/// (Patroni's `CMDLINE_OPTIONS`): name, default, validation.
const CLUSTER_WIDE: &[(&str, &str, Check)] = &[
    ("max_connections", "100", Check::Int { min: 25 }),
    ("max_locks_per_transaction", "64", Check::Int { min: 32 }),
    ("max_worker_processes", "8", Check::Int { min: 2 }),
    ("max_prepared_transactions", "0", Check::Int { min: 0 }),
    ("wal_level", "replica", Check::WalLevel),
    ("track_commit_timestamp", "off", Check::Bool),
    ("max_wal_senders", "10", Check::Int { min: 3 }),
    ("max_replication_slots", "10", Check::Int { min: 4 }),
    ("wal_keep_size", "128MB", Check::Size),
    ("wal_log_hints", "on", Check::Bool),
];

/// Set by ferroni itself whatever the configuration says.
const FORCED: &[&str] = &[
    "listen_addresses",
    "port",
    "cluster_name",
    "hba_file",
    "unix_socket_directories",
    "hot_standby",
];

/// Recovery settings: only the role decides them, so a primary never starts with a stale upstream.
const RECOVERY: &[&str] = &[
    "primary_conninfo",
    "primary_slot_name",
    "restore_command",
    "archive_cleanup_command",
    "recovery_end_command",
    "recovery_min_apply_delay",
    "recovery_target",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_inclusive",
    "recovery_target_timeline",
    "recovery_target_action",
    "promote_trigger_file",
];

#[derive(Debug, Clone, Copy)]
enum Check {
    Int { min: i64 },
    Bool,
    WalLevel,
    Size,
}

/// How a parameter value is written.
#[derive(Debug, Clone, PartialEq)]
enum Setting {
    /// Numbers and `on`/`off`.
    Bare(String),
    /// Everything else, single-quoted.
    Quoted(String),
}

impl Setting {
    fn text(&self) -> &str {
        match self {
            Setting::Bare(s) | Setting::Quoted(s) => s,
        }
    }

    fn render(&self) -> String {
        match self {
            Setting::Bare(s) => s.clone(),
            Setting::Quoted(s) => quote_conf_value(s),
        }
    }
}

/// Single-quote a value for postgresql.conf: `'` doubled, `\` doubled.
pub fn quote_conf_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Recovery settings of a replica (or standby leader).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StandbyParams {
    /// Build it with [`primary_conninfo`]; `None` runs read-only without an upstream.
    pub primary_conninfo: Option<String>,
    pub primary_slot_name: Option<String>,
    pub restore_command: Option<String>,
    pub archive_cleanup_command: Option<String>,
    pub recovery_min_apply_delay: Option<String>,
    /// Further recovery settings (`postgresql.recovery_conf`); the fields above win.
    pub extra: BTreeMap<String, String>,
}

/// What the server is configured to be on its next start or reload.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfRole {
    Primary,
    /// Hot standby following `primary_conninfo`; adds `recovery_target_timeline = 'latest'`.
    Replica(StandbyParams),
    /// Targeted recovery after a custom bootstrap (`bootstrap.<method>.recovery_conf`). With
    /// `keep_existing_recovery_conf`, pass an empty map and leave the signal files alone.
    Recovery(BTreeMap<String, String>),
}

impl ConfRole {
    /// The signal file this role needs.
    pub fn signal_file(&self) -> SignalFile {
        match self {
            ConfRole::Primary => SignalFile::None,
            ConfRole::Replica(_) => SignalFile::Standby,
            ConfRole::Recovery(_) => SignalFile::Recovery,
        }
    }
}

/// Everything `postgresql.conf` is rendered from.
#[derive(Debug, Clone)]
pub struct ConfInput<'a> {
    pub pg: &'a PostgresqlConfig,
    /// Becomes `cluster_name`.
    pub scope: &'a str,
    /// `postgresql.parameters` of the dynamic configuration.
    pub dynamic: &'a Map<String, Value>,
    pub role: &'a ConfRole,
}

/// A rendered `postgresql.conf`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedConf {
    pub text: String,
    /// Every parameter written, with its value as the server will read it (unquoted).
    pub parameters: BTreeMap<String, String>,
    /// Parameters dropped or corrected, for the daemon to log.
    pub warnings: Vec<String>,
}

/// The directory the server puts its socket in and local connections use: the first entry of a local
/// `unix_socket_directories` parameter, else the data directory's parent (always writable by the
/// postgres user, unique per data directory, short enough for a socket path, and — unlike the data
/// directory itself — not copied by pg_basebackup). `None` when the local parameter disables sockets.
pub fn socket_dir(pg: &PostgresqlConfig) -> Option<PathBuf> {
    if let Some(value) = lookup(&pg.parameters, "unix_socket_directories") {
        let text = setting_from_json(value)
            .map(|s| s.text().to_string())
            .unwrap_or_default();
        let first = text.split(',').next().unwrap_or_default().trim().trim_matches('"');
        return (!first.is_empty()).then(|| PathBuf::from(first));
    }
    let parent = pg.data_dir.parent().filter(|p| !p.as_os_str().is_empty());
    Some(parent.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/tmp")))
}

/// Render `postgresql.conf`.
pub fn render_postgresql_conf(input: &ConfInput<'_>) -> RenderedConf {
    let mut warnings = Vec::new();
    let mut settings = merge_user_parameters(input, &mut warnings);
    for (name, setting) in cluster_wide(input.dynamic, &mut warnings) {
        settings.insert(name, setting);
    }
    for (name, setting) in forced(input) {
        settings.insert(name.to_string(), setting);
    }
    for (name, value) in role_settings(input.role) {
        settings.insert(name, Setting::Quoted(value));
    }
    let mut text = format!("{MANAGED_HEADER}\ninclude {}\n\n", quote_conf_value(BASE_CONF));
    for (name, setting) in &settings {
        text.push_str(&format!("{name} = {}\n", setting.render()));
    }
    let parameters = settings.into_iter().map(|(k, v)| (k, v.text().to_string())).collect();
    RenderedConf {
        text,
        parameters,
        warnings,
    }
}

/// Dynamic then local parameters (local wins), minus what ferroni decides itself.
fn merge_user_parameters(input: &ConfInput<'_>, warnings: &mut Vec<String>) -> BTreeMap<String, Setting> {
    let mut settings = BTreeMap::new();
    for (source, map) in [("dynamic", input.dynamic), ("local", &input.pg.parameters)] {
        for (raw_name, value) in map {
            let name = raw_name.to_ascii_lowercase();
            if !valid_name(&name) {
                warnings.push(format!(
                    "ignore {source} parameter {raw_name:?}: not a valid parameter name"
                ));
            } else if name == "wal_keep_segments" {
                // Converted into wal_keep_size by cluster_wide() when it comes from the dynamic config.
                if source == "local" {
                    warnings.push(
                        "ignore local wal_keep_segments: cluster-wide, set it in the dynamic configuration".into(),
                    );
                }
            } else if CLUSTER_WIDE.iter().any(|(n, _, _)| *n == name) {
                if source == "local" {
                    warnings.push(format!(
                        "ignore local {name}: cluster-wide, set it in the dynamic configuration"
                    ));
                }
            } else if RECOVERY.contains(&name.as_str()) {
                warnings.push(format!(
                    "ignore {source} {name}: recovery settings follow the member's role"
                ));
            } else if FORCED.contains(&name.as_str()) {
                if source == "dynamic" || name != "unix_socket_directories" {
                    warnings.push(format!("ignore {source} {name}: ferroni sets it"));
                }
            } else {
                match setting_from_json(value) {
                    Some(setting) => {
                        settings.insert(name, setting);
                    }
                    None if value.is_null() => {}
                    None => warnings.push(format!("ignore {source} {name}: unsupported value {value}")),
                }
            }
        }
    }
    settings
}

/// The cluster-wide parameters from the dynamic configuration, validated, defaulted.
fn cluster_wide(dynamic: &Map<String, Value>, warnings: &mut Vec<String>) -> Vec<(String, Setting)> {
    CLUSTER_WIDE
        .iter()
        .map(|(name, default, check)| {
            let given = lookup(dynamic, name).filter(|v| !v.is_null()).cloned().or_else(|| {
                // Before PostgreSQL 13 the knob was wal_keep_segments (16 MB each); convert it.
                (*name == "wal_keep_size")
                    .then(|| lookup(dynamic, "wal_keep_segments").and_then(json_int))
                    .flatten()
                    .map(|segments| Value::String(format!("{}MB", segments.max(0) * 16)))
            });
            let setting = match given {
                None => Setting::Bare((*default).to_string()),
                Some(v) => check_value(*check, &v).unwrap_or_else(|| {
                    warnings.push(format!("invalid {name} {v}: use {default}"));
                    Setting::Bare((*default).to_string())
                }),
            };
            (name.to_string(), setting)
        })
        .collect()
}

fn check_value(check: Check, value: &Value) -> Option<Setting> {
    match check {
        Check::Int { min } => json_int(value)
            .filter(|n| *n >= min)
            .map(|n| Setting::Bare(n.to_string())),
        Check::Bool => json_bool(value).map(|b| Setting::Bare(on_off(b).to_string())),
        Check::WalLevel => match value.as_str()?.to_ascii_lowercase().as_str() {
            "hot_standby" | "replica" => Some(Setting::Bare("replica".into())),
            "logical" => Some(Setting::Bare("logical".into())),
            _ => None,
        },
        Check::Size => {
            let text = match value {
                Value::Number(n) => n.as_u64()?.to_string(),
                Value::String(s) => s.trim().to_string(),
                _ => return None,
            };
            let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic()).trim_end();
            let unit = text[digits.len()..].trim();
            let unit_ok = ["", "kB", "MB", "GB", "TB"].contains(&unit);
            (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) && unit_ok)
                .then_some(Setting::Quoted(text))
        }
    }
}

fn forced(input: &ConfInput<'_>) -> Vec<(&'static str, Setting)> {
    let pg = input.pg;
    let socket = match lookup(&pg.parameters, "unix_socket_directories").and_then(setting_from_json) {
        Some(local) => Setting::Quoted(local.text().to_string()),
        None => Setting::Quoted(socket_dir(pg).map(|d| d.display().to_string()).unwrap_or_default()),
    };
    vec![
        ("listen_addresses", Setting::Quoted(pg.listen_host().to_string())),
        ("port", Setting::Bare(pg.port().to_string())),
        ("cluster_name", Setting::Quoted(input.scope.to_string())),
        (
            "hba_file",
            Setting::Quoted(pg.config_dir.join("pg_hba.conf").display().to_string()),
        ),
        ("unix_socket_directories", socket),
        ("hot_standby", Setting::Bare("on".into())),
    ]
}

fn role_settings(role: &ConfRole) -> BTreeMap<String, String> {
    match role {
        ConfRole::Primary => BTreeMap::new(),
        ConfRole::Recovery(map) => map.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect(),
        ConfRole::Replica(sp) => {
            let mut out: BTreeMap<String, String> = sp
                .extra
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            out.entry("recovery_target_timeline".into())
                .or_insert_with(|| "latest".into());
            let fields = [
                ("primary_conninfo", &sp.primary_conninfo),
                ("primary_slot_name", &sp.primary_slot_name),
                ("restore_command", &sp.restore_command),
                ("archive_cleanup_command", &sp.archive_cleanup_command),
                ("recovery_min_apply_delay", &sp.recovery_min_apply_delay),
            ];
            for (name, value) in fields {
                if let Some(v) = value {
                    out.insert(name.into(), v.clone());
                }
            }
            out.retain(|k, _| valid_name(k));
            out
        }
    }
}

fn setting_from_json(value: &Value) -> Option<Setting> {
    match value {
        Value::Bool(b) => Some(Setting::Bare(on_off(*b).into())),
        Value::Number(n) => Some(Setting::Bare(n.to_string())),
        Value::String(s) => Some(Setting::Quoted(s.clone())),
        // A list (e.g. shared_preload_libraries written as YAML list) is the comma-separated form.
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|i| setting_from_json(i).map(|s| s.text().to_string()))
                .collect();
            parts.map(|p| Setting::Quoted(p.join(", ")))
        }
        Value::Null | Value::Object(_) => None,
    }
}

fn json_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn json_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().filter(|n| *n == 0 || *n == 1).map(|n| n == 1),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Some(true),
            "off" | "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// GUC names are letters, digits, `_` and `.` (extension prefixes); anything else could inject lines.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

fn lookup<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// `primary_conninfo` for following `host:port`: replication user, password from the pgpass file,
/// `application_name` = member name (what `pg_stat_replication` and synchronous replication match on).
pub fn primary_conninfo(host: &str, port: u16, pg: &PostgresqlConfig, application_name: &str) -> String {
    let port = port.to_string();
    let passfile = pg.pgpass.display().to_string();
    conninfo::build(&[
        ("user", pg.replication.username.as_str()),
        ("passfile", passfile.as_str()),
        ("host", host),
        ("port", port.as_str()),
        ("sslmode", "prefer"),
        ("application_name", application_name),
        ("gssencmode", "prefer"),
        ("channel_binding", "prefer"),
    ])
}

/// Connection string for cloning from `host:port` (pg_basebackup `--dbname`, custom methods'
/// `--connstring`): replication user, no password.
pub fn clone_conninfo(host: &str, port: u16, pg: &PostgresqlConfig) -> String {
    let port = port.to_string();
    conninfo::build(&[
        ("dbname", "postgres"),
        ("user", pg.replication.username.as_str()),
        ("host", host),
        ("port", port.as_str()),
    ])
}

/// `pg_hba.conf` from the configured lines, or [`default_pg_hba`] when none are configured.
pub fn render_pg_hba(lines: Option<&[String]>, pg: &PostgresqlConfig) -> String {
    let lines = match lines {
        Some(lines) => lines.to_vec(),
        None => default_pg_hba(pg),
    };
    let mut text = String::from("# Managed by ferroni: do not edit, this file is overwritten.\n");
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// Local socket connections are trusted (the socket directory's permissions guard them; the daemon
/// and post-bootstrap scripts connect this way); every TCP connection needs a password (`md5` also
/// accepts SCRAM verifiers), replication only for the replication user.
pub fn default_pg_hba(pg: &PostgresqlConfig) -> Vec<String> {
    let repl = hba_quote(&pg.replication.username);
    vec![
        "local   all          all                   trust".into(),
        "local   replication  all                   trust".into(),
        format!("host    replication  {repl:<20} 0.0.0.0/0  md5"),
        format!("host    replication  {repl:<20} ::/0       md5"),
        "host    all          all                  0.0.0.0/0  md5".into(),
        "host    all          all                  ::/0       md5".into(),
    ]
}

/// Double-quoted so that names like `all` or `replication` lose their keyword meaning.
fn hba_quote(name: &str) -> String {
    let clean: String = name.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    format!("\"{clean}\"")
}

/// One line of a pgpass file; `*` matches anything.
#[derive(Clone, PartialEq, Eq)]
pub struct PgpassEntry {
    pub host: String,
    pub port: String,
    pub database: String,
    pub user: String,
    pub password: String,
}

// Hand-written so that a Debug print never shows the password.
impl std::fmt::Debug for PgpassEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PgpassEntry({}:{}:{}:{}:********)",
            self.host, self.port, self.database, self.user
        )
    }
}

impl PgpassEntry {
    pub fn new(host: &str, port: &str, user: &str, password: &str) -> Self {
        PgpassEntry {
            host: host.into(),
            port: port.into(),
            database: "*".into(),
            user: user.into(),
            password: password.into(),
        }
    }
}

/// Escape a pgpass field: `\` and `:` get a backslash.
pub fn pgpass_escape(field: &str) -> String {
    field.replace('\\', "\\\\").replace(':', "\\:")
}

/// Render pgpass lines. Entries with a line break in a field cannot be represented and are skipped.
pub fn render_pgpass(entries: &[PgpassEntry]) -> String {
    let mut text = String::new();
    for e in entries {
        let fields = [&e.host, &e.port, &e.database, &e.user, &e.password];
        if fields.iter().any(|f| f.contains(['\n', '\r'])) {
            tracing::warn!(user = %e.user, "skip pgpass entry: a field contains a line break");
            continue;
        }
        let line: Vec<String> = fields.iter().map(|f| pgpass_escape(f)).collect();
        text.push_str(&line.join(":"));
        text.push('\n');
    }
    text
}

/// The entries the daemon needs: the replication user towards `upstream` (any host when `None`), the
/// rewind user and the superuser anywhere (local connections, pg_rewind against the leader).
/// Credentials without a password get no entry.
pub fn pgpass_entries(pg: &PostgresqlConfig, upstream: Option<(&str, u16)>) -> Vec<PgpassEntry> {
    let mut entries = Vec::new();
    if let Some(pw) = &pg.replication.password {
        let (host, port) = match upstream {
            Some((h, p)) => (h.to_string(), p.to_string()),
            None => ("*".into(), "*".into()),
        };
        entries.push(PgpassEntry::new(&host, &port, &pg.replication.username, pw));
    }
    for creds in [pg.rewind.as_ref(), Some(&pg.superuser)].into_iter().flatten() {
        if let Some(pw) = &creds.password {
            entries.push(PgpassEntry::new("*", "*", &creds.username, pw));
        }
    }
    entries
}

/// Which recovery marker file the data directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalFile {
    None,
    Standby,
    Recovery,
}

/// Create the wanted marker file and remove the other one.
pub fn set_signal_file(data_dir: &Path, which: SignalFile, owner: Option<RunAs>) -> Result<(), PgError> {
    let standby = data_dir.join("standby.signal");
    let recovery = data_dir.join("recovery.signal");
    let (want, remove): (Option<&Path>, Vec<&Path>) = match which {
        SignalFile::None => (None, vec![&standby, &recovery]),
        SignalFile::Standby => (Some(&standby), vec![&recovery]),
        SignalFile::Recovery => (Some(&recovery), vec![&standby]),
    };
    for path in remove {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(PgError::io(format!("remove {}", path.display()))(e));
            }
            _ => {}
        }
    }
    if let Some(path) = want {
        fsutil::write_atomic(path, b"", 0o600, owner)?;
    }
    Ok(())
}

/// The marker file present in `data_dir` (standby wins when both exist, as in PostgreSQL).
pub fn signal_file(data_dir: &Path) -> SignalFile {
    if data_dir.join("standby.signal").exists() {
        SignalFile::Standby
    } else if data_dir.join("recovery.signal").exists() {
        SignalFile::Recovery
    } else {
        SignalFile::None
    }
}

/// True when the file's first line says ferroni (or Patroni) wrote it.
fn is_managed(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    let head: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
    text.starts_with(MANAGED_HEADER) || head.contains(PATRONI_HEADER_HINT)
}

/// Write the managed `postgresql.conf` into `config_dir`. The first time, initdb's original (in
/// `config_dir` or the data directory) becomes `postgresql.base.conf`; if there is none, an empty base
/// file is created so the include does not fail.
pub fn write_postgresql_conf(
    pg: &PostgresqlConfig,
    rendered: &RenderedConf,
    owner: Option<RunAs>,
) -> Result<(), PgError> {
    let conf = pg.config_dir.join("postgresql.conf");
    let base = pg.config_dir.join(BASE_CONF);
    if !base.exists() {
        preserve_original(pg, &conf, &base, owner)?;
    }
    fsutil::write_atomic(&conf, rendered.text.as_bytes(), 0o600, owner)
}

fn preserve_original(pg: &PostgresqlConfig, conf: &Path, base: &Path, owner: Option<RunAs>) -> Result<(), PgError> {
    let in_data_dir = pg.data_dir.join("postgresql.conf");
    if conf.exists() && !is_managed(conf) {
        return fs::rename(conf, base).map_err(PgError::io(format!("rename {} to {}", conf.display(), base.display())));
    }
    if in_data_dir != conf && in_data_dir.exists() && !is_managed(&in_data_dir) {
        let text = fs::read(&in_data_dir).map_err(PgError::io(format!("read {}", in_data_dir.display())))?;
        return fsutil::write_atomic(base, &text, 0o600, owner);
    }
    fsutil::write_atomic(
        base,
        b"# Created empty by ferroni: no original postgresql.conf was found.\n",
        0o600,
        owner,
    )
}

/// Write `pg_hba.conf` into `config_dir` (where the forced `hba_file` points).
pub fn write_pg_hba(pg: &PostgresqlConfig, text: &str, owner: Option<RunAs>) -> Result<(), PgError> {
    fsutil::write_atomic(&pg.config_dir.join("pg_hba.conf"), text.as_bytes(), 0o600, owner)
}

/// Write the pgpass file (mode 0600, or libpq ignores it).
pub fn write_pgpass(path: &Path, entries: &[PgpassEntry], owner: Option<RunAs>) -> Result<(), PgError> {
    fsutil::write_atomic(path, render_pgpass(entries).as_bytes(), 0o600, owner)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ferroni_model::Credentials;
    use serde_json::json;

    pub(crate) fn pg_config(data_dir: &str) -> PostgresqlConfig {
        PostgresqlConfig {
            listen: "0.0.0.0:5433".into(),
            connect_address: "10.0.0.1:5433".into(),
            data_dir: data_dir.into(),
            config_dir: data_dir.into(),
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            pgpass: "/tmp/pgpass0".into(),
            superuser: Credentials {
                username: "postgres".into(),
                password: Some("su:pw".into()),
            },
            replication: Credentials {
                username: "replicator".into(),
                password: Some("re\\pl".into()),
            },
            rewind: None,
            parameters: Map::new(),
            pg_hba: None,
            create_replica_methods: vec![],
            replica_methods: BTreeMap::new(),
            basebackup: vec![],
            recovery_conf: Default::default(),
            basebackup_attempts: 2,
            basebackup_retry_delay: 5,
            use_unix_socket: true,
            pg_ctl_timeout: 60,
            callbacks: BTreeMap::new(),
            use_pg_rewind: None,
            remove_data_directory_on_rewind_failure: false,
            remove_data_directory_on_diverged_timelines: false,
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn render(pg: &PostgresqlConfig, dynamic: Value, role: ConfRole) -> RenderedConf {
        render_postgresql_conf(&ConfInput {
            pg,
            scope: "batman",
            dynamic: &obj(dynamic),
            role: &role,
        })
    }

    #[test]
    fn quotes_strings_and_renders_booleans() {
        assert_eq!(quote_conf_value("it's"), "'it''s'");
        assert_eq!(quote_conf_value(r"C:\x"), r"'C:\\x'");
        let pg = pg_config("/var/lib/pg/data");
        let r = render(
            &pg,
            json!({"archive_mode": true, "fsync": false, "work_mem": "4MB", "shared_buffers": 128, "search_path": "\"$user\", public", "archive_command": "cp %p /a/'x'"}),
            ConfRole::Primary,
        );
        assert!(r.text.contains("\narchive_mode = on\n"), "{}", r.text);
        assert!(r.text.contains("\nfsync = off\n"));
        assert!(r.text.contains("\nwork_mem = '4MB'\n"));
        assert!(r.text.contains("\nshared_buffers = 128\n"));
        assert!(r.text.contains("\narchive_command = 'cp %p /a/''x'''\n"));
        assert_eq!(r.parameters["archive_command"], "cp %p /a/'x'");
    }

    #[test]
    fn header_include_and_forced_parameters() {
        let mut pg = pg_config("/var/lib/pg/data");
        pg.parameters = obj(json!({"port": 1, "cluster_name": "other", "hot_standby": false, "work_mem": "8MB"}));
        let r = render(
            &pg,
            json!({"work_mem": "4MB", "listen_addresses": "*"}),
            ConfRole::Primary,
        );
        let mut lines = r.text.lines();
        assert_eq!(lines.next(), Some(MANAGED_HEADER));
        assert_eq!(lines.next(), Some("include 'postgresql.base.conf'"));
        let p = &r.parameters;
        assert_eq!(p["listen_addresses"], "0.0.0.0");
        assert_eq!(p["port"], "5433");
        assert_eq!(p["cluster_name"], "batman");
        assert_eq!(p["hot_standby"], "on");
        assert_eq!(p["hba_file"], "/var/lib/pg/data/pg_hba.conf");
        assert_eq!(p["unix_socket_directories"], "/var/lib/pg");
        assert_eq!(p["work_mem"], "8MB", "local wins over dynamic");
        assert!(r.warnings.iter().any(|w| w.contains("local port")));
        assert!(r.warnings.iter().any(|w| w.contains("dynamic listen_addresses")));
    }

    #[test]
    fn cluster_wide_parameters_come_from_dynamic_config_with_defaults() {
        let mut pg = pg_config("/d/data");
        pg.parameters = obj(json!({"max_connections": 500}));
        let r = render(
            &pg,
            json!({"wal_level": "hot_standby", "max_wal_senders": "20", "max_replication_slots": 1, "wal_log_hints": "off"}),
            ConfRole::Primary,
        );
        let p = &r.parameters;
        assert_eq!(p["max_connections"], "100", "local value ignored");
        assert_eq!(p["wal_level"], "replica");
        assert_eq!(p["max_wal_senders"], "20");
        assert_eq!(p["max_replication_slots"], "10", "below minimum → default");
        assert_eq!(p["wal_log_hints"], "off");
        assert_eq!(p["max_locks_per_transaction"], "64");
        assert_eq!(p["max_worker_processes"], "8");
        assert_eq!(p["max_prepared_transactions"], "0");
        assert_eq!(p["track_commit_timestamp"], "off");
        assert_eq!(p["wal_keep_size"], "128MB");
        assert!(r.warnings.iter().any(|w| w.contains("local max_connections")));
        assert!(r.warnings.iter().any(|w| w.contains("invalid max_replication_slots")));
        let r = render(
            &pg,
            json!({"wal_keep_segments": 8, "wal_level": "minimal"}),
            ConfRole::Primary,
        );
        assert_eq!(r.parameters["wal_keep_size"], "128MB");
        assert!(!r.parameters.contains_key("wal_keep_segments"));
        assert_eq!(r.parameters["wal_level"], "replica");
        let r = render(&pg, json!({"wal_keep_segments": 4}), ConfRole::Primary);
        assert_eq!(r.parameters["wal_keep_size"], "64MB");
    }

    #[test]
    fn recovery_settings_follow_the_role() {
        let pg = pg_config("/d/data");
        let dynamic = json!({"primary_conninfo": "host=stale", "restore_command": "false"});
        let primary = render(&pg, dynamic.clone(), ConfRole::Primary);
        assert!(!primary.text.contains("primary_conninfo"));
        assert!(!primary.text.contains("recovery_target_timeline"));
        let conninfo = primary_conninfo("10.0.0.2", 5432, &pg, "node 2");
        let replica = render(
            &pg,
            dynamic,
            ConfRole::Replica(StandbyParams {
                primary_conninfo: Some(conninfo.clone()),
                primary_slot_name: Some("node_2".into()),
                restore_command: Some("cp /a/%f %p".into()),
                extra: BTreeMap::from([("recovery_target_timeline".into(), "current".into())]),
                ..Default::default()
            }),
        );
        assert_eq!(replica.parameters["primary_conninfo"], conninfo);
        assert_eq!(replica.parameters["primary_slot_name"], "node_2");
        assert_eq!(replica.parameters["restore_command"], "cp /a/%f %p");
        assert_eq!(replica.parameters["recovery_target_timeline"], "current");
        assert!(replica.text.contains(
            "primary_conninfo = 'user=replicator passfile=/tmp/pgpass0 host=10.0.0.2 port=5432 sslmode=prefer application_name=''node 2'' gssencmode=prefer channel_binding=prefer'"
        ), "{}", replica.text);
        let plain = render(&pg, json!({}), ConfRole::Replica(StandbyParams::default()));
        assert_eq!(plain.parameters["recovery_target_timeline"], "latest");
        let rec = render(
            &pg,
            json!({}),
            ConfRole::Recovery(BTreeMap::from([("recovery_target_action".into(), "promote".into())])),
        );
        assert_eq!(rec.parameters["recovery_target_action"], "promote");
        assert_eq!(ConfRole::Primary.signal_file(), SignalFile::None);
        assert_eq!(ConfRole::Recovery(BTreeMap::new()).signal_file(), SignalFile::Recovery);
    }

    #[test]
    fn rejects_injected_names_and_odd_values() {
        let pg = pg_config("/d/data");
        let r = render(
            &pg,
            json!({"bad\nname": 1, "x y": 1, "ok.ext_param": "v", "gone": null, "obj": {"a": 1}, "spl": ["a", "b"]}),
            ConfRole::Primary,
        );
        assert!(!r.text.contains("bad"));
        assert!(!r.parameters.contains_key("gone"));
        assert!(!r.parameters.contains_key("obj"));
        assert_eq!(r.parameters["ok.ext_param"], "v");
        assert_eq!(r.parameters["spl"], "a, b");
        assert_eq!(r.warnings.len(), 3, "{:?}", r.warnings);
    }

    #[test]
    fn socket_dir_defaults_to_data_dir_parent() {
        let mut pg = pg_config("/var/lib/postgresql/15/main");
        assert_eq!(socket_dir(&pg), Some(PathBuf::from("/var/lib/postgresql/15")));
        pg.parameters = obj(json!({"unix_socket_directories": "/run/pg, /tmp"}));
        assert_eq!(socket_dir(&pg), Some(PathBuf::from("/run/pg")));
        let r = render(&pg, json!({"unix_socket_directories": "/elsewhere"}), ConfRole::Primary);
        assert_eq!(r.parameters["unix_socket_directories"], "/run/pg, /tmp");
        pg.parameters = obj(json!({"unix_socket_directories": ""}));
        assert_eq!(socket_dir(&pg), None);
        assert_eq!(socket_dir(&pg_config("data")), Some(PathBuf::from("/tmp")));
    }

    #[test]
    fn pg_hba_defaults_need_passwords_over_tcp() {
        let pg = pg_config("/d/data");
        let text = render_pg_hba(None, &pg);
        assert!(text.contains("host    replication  \"replicator\""));
        assert!(
            !text.lines().any(|l| l.starts_with("host") && l.contains("trust")),
            "{text}"
        );
        let custom = render_pg_hba(Some(&["host all all 10.0.0.0/8 scram-sha-256".to_string()]), &pg);
        assert!(custom.ends_with("host all all 10.0.0.0/8 scram-sha-256\n"));
        assert_eq!(hba_quote("we\"ird"), "\"weird\"");
    }

    #[test]
    fn pgpass_escapes_and_never_debug_prints_passwords() {
        assert_eq!(pgpass_escape(r"a:b\c"), r"a\:b\\c");
        let pg = pg_config("/d/data");
        let entries = pgpass_entries(&pg, Some(("10.0.0.2", 5432)));
        assert_eq!(
            render_pgpass(&entries),
            "10.0.0.2:5432:*:replicator:re\\\\pl\n*:*:*:postgres:su\\:pw\n"
        );
        assert!(!format!("{entries:?}").contains("su:pw"));
        let any = pgpass_entries(&pg, None);
        assert!(render_pgpass(&any).starts_with("*:*:*:replicator:"));
        let broken = [PgpassEntry::new("*", "*", "u", "line\nbreak")];
        assert_eq!(render_pgpass(&broken), "");
    }

    #[test]
    fn conninfo_helpers_never_hold_passwords() {
        let pg = pg_config("/d/data");
        let c = clone_conninfo("h", 5432, &pg);
        assert_eq!(c, "dbname=postgres user=replicator host=h port=5432");
        assert!(conninfo::ensure_no_password(&primary_conninfo("h", 1, &pg, "n")).is_ok());
        assert_eq!(
            conninfo::host_port(&primary_conninfo("h", 1, &pg, "n")).as_deref(),
            Some("h:1")
        );
    }

    #[test]
    fn writers_preserve_the_original_conf_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("postgresql.conf"), "shared_buffers = 1GB\n").unwrap();
        let pg = pg_config(data.to_str().unwrap());
        let rendered = render(&pg, json!({}), ConfRole::Primary);
        write_postgresql_conf(&pg, &rendered, None).unwrap();
        write_postgresql_conf(&pg, &rendered, None).unwrap();
        assert_eq!(
            fs::read_to_string(data.join(BASE_CONF)).unwrap(),
            "shared_buffers = 1GB\n"
        );
        assert!(
            fs::read_to_string(data.join("postgresql.conf"))
                .unwrap()
                .starts_with(MANAGED_HEADER)
        );
        set_signal_file(&data, SignalFile::Standby, None).unwrap();
        assert_eq!(signal_file(&data), SignalFile::Standby);
        set_signal_file(&data, SignalFile::Recovery, None).unwrap();
        assert_eq!(signal_file(&data), SignalFile::Recovery);
        set_signal_file(&data, SignalFile::None, None).unwrap();
        assert_eq!(signal_file(&data), SignalFile::None);
    }
}

/// Recovery settings that must come only from ferroni's own `postgresql.conf`: a backup tool or a
/// restored cluster may have left them in `postgresql.auto.conf`, which PostgreSQL reads last, and
/// pg_basebackup copies that file to every new replica (Patroni's `_sanitize_auto_conf`).
const RECOVERY_PARAMETERS: &[&str] = &[
    "restore_command",
    "archive_cleanup_command",
    "recovery_end_command",
    "recovery_target",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_lsn",
    "recovery_target_inclusive",
    "recovery_target_timeline",
    "recovery_target_action",
    "recovery_min_apply_delay",
    "primary_conninfo",
    "primary_slot_name",
    "promote_trigger_file",
    "standby_mode",
];

/// `postgresql.auto.conf` without recovery settings, or `None` when it has none.
pub fn sanitize_auto_conf_text(text: &str) -> Option<String> {
    let is_recovery = |line: &str| {
        let name = line
            .trim_start()
            .split(|c: char| c == '=' || c.is_whitespace())
            .next()
            .unwrap_or("");
        RECOVERY_PARAMETERS.iter().any(|p| p.eq_ignore_ascii_case(name))
    };
    if !text.lines().any(is_recovery) {
        return None;
    }
    let kept: Vec<&str> = text.lines().filter(|l| !is_recovery(l)).collect();
    Some(format!("{}\n", kept.join("\n")))
}

/// Removes recovery settings from the data directory's `postgresql.auto.conf`; true when it changed.
pub fn sanitize_auto_conf(data_dir: &Path, owner: Option<RunAs>) -> Result<bool, PgError> {
    let path = data_dir.join("postgresql.auto.conf");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(PgError::io(format!("read {}", path.display()))(e)),
    };
    match sanitize_auto_conf_text(&text) {
        Some(clean) => fsutil::write_atomic(&path, clean.as_bytes(), 0o600, owner).map(|_| true),
        None => Ok(false),
    }
}

#[cfg(test)]
mod auto_conf_tests {
    use super::sanitize_auto_conf_text;

    #[test]
    fn strips_only_recovery_settings() {
        let text = "# Do not edit this file manually!\nwork_mem = '8MB'\nrestore_command = 'pgbackrest archive-get %f \"%p\"'\nrecovery_target_time = '2026-01-01'\n Recovery_Target_Action='promote'\n";
        let clean = sanitize_auto_conf_text(text).unwrap();
        assert_eq!(clean, "# Do not edit this file manually!\nwork_mem = '8MB'\n");
        assert_eq!(sanitize_auto_conf_text("work_mem = '8MB'\n"), None);
    }
}
