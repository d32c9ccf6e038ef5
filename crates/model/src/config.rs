//! The validated configuration: what `ferroni-config` produces from Patroni's YAML and `PATRONI_*`
//! variables. Every value here has passed validation; durations are whole seconds as in Patroni.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The whole local configuration of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub name: String,
    pub scope: String,
    /// Always starts and ends with `/`, e.g. `/service/`.
    pub namespace: String,
    pub restapi: RestApiConfig,
    pub ctl: CtlConfig,
    pub etcd3: EtcdConfig,
    pub bootstrap: BootstrapConfig,
    pub postgresql: PostgresqlConfig,
    pub tags: Tags,
    pub watchdog: WatchdogConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RestApiConfig {
    /// `host:port` to bind.
    pub listen: String,
    /// `host:port` others use; `api_url` is `http(s)://<connect_address>/patroni`.
    pub connect_address: String,
    pub authentication: Option<Credentials>,
    /// PEM certificate chain; when set the API speaks HTTPS only. May hold the private key too.
    pub certfile: Option<PathBuf>,
    /// PEM private key of `certfile`; `None` means the key is in `certfile`.
    pub keyfile: Option<PathBuf>,
    /// PEM CA certificates that client certificates must chain to (`verify_client`).
    pub cafile: Option<PathBuf>,
    pub verify_client: VerifyClient,
}

impl RestApiConfig {
    /// `https` when a certificate is configured, as Patroni decides it.
    pub fn scheme(&self) -> &'static str {
        if self.certfile.is_some() { "https" } else { "http" }
    }
}

/// `restapi.verify_client`: whether HTTPS clients must present a certificate signed by `cafile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyClient {
    /// No client certificates asked for.
    #[default]
    None,
    /// Asked for and verified when sent; the unsafe methods (POST, PUT, PATCH, DELETE) need one.
    Optional,
    /// Every connection must present one (TLS handshake fails otherwise).
    Required,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CtlConfig {
    pub authentication: Option<Credentials>,
    /// Accept any server certificate (`-k/--insecure` does the same).
    pub insecure: bool,
    /// PEM CA certificates the REST APIs' certificates must chain to; falls back to
    /// `restapi.cafile`, then to the system's trust store.
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM, may hold the key) presented to REST APIs that verify clients.
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EtcdConfig {
    /// `host:port` endpoints.
    pub hosts: Vec<String>,
    /// `http` or `https`.
    pub protocol: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl EtcdConfig {
    pub fn endpoints(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| format!("{}://{}", self.protocol, h))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapConfig {
    /// `bootstrap.dcs` as given (JSON object), written once to the `config` key.
    pub dcs: Value,
    pub method: BootstrapMethod,
    /// `bootstrap.initdb` options in order: `("encoding", Some("UTF8"))`, `("data-checksums", None)`.
    pub initdb: Vec<(String, Option<String>)>,
    pub post_bootstrap: Option<String>,
    /// Extra `pg_hba` lines used at bootstrap when `postgresql.pg_hba` is not set.
    pub pg_hba: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BootstrapMethod {
    Initdb,
    Custom(CustomBootstrap),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomBootstrap {
    pub name: String,
    /// The command split into program and arguments (shell-style words).
    pub command: Vec<String>,
    pub no_params: bool,
    pub keep_existing_recovery_conf: bool,
    pub recovery_conf: BTreeMap<String, String>,
    /// Every other key, passed as `--key=value`, in the order written.
    pub extra_args: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostgresqlConfig {
    /// `host:port` to bind (`listen_addresses` and `port`).
    pub listen: String,
    /// `host:port` others use; `conn_url` is `postgres://<connect_address>/postgres`.
    pub connect_address: String,
    pub data_dir: PathBuf,
    pub config_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub pgpass: PathBuf,
    pub superuser: Credentials,
    pub replication: Credentials,
    pub rewind: Option<Credentials>,
    /// Local `postgresql.parameters` (override the dynamic ones).
    pub parameters: Map<String, Value>,
    pub pg_hba: Option<Vec<String>>,
    /// In order; empty means `[basebackup]`.
    pub create_replica_methods: Vec<String>,
    /// Sections of custom replica methods, by name: every method named in
    /// `create_replica_methods` or in `bootstrap.dcs.standby_cluster.create_replica_methods`,
    /// plus any other `postgresql.<name>` section with a `command`, so a method list changed
    /// later in the DCS can still find its section.
    pub replica_methods: BTreeMap<String, ReplicaMethod>,
    /// `postgresql.basebackup` options in order (`max-rate`, `Some("100M")`).
    pub basebackup: Vec<(String, Option<String>)>,
    /// `postgresql.recovery_conf`: extra recovery settings of every replica (e.g. `restore_command`).
    pub recovery_conf: BTreeMap<String, String>,
    /// ferroni extension: pg_basebackup attempts per replica creation (Patroni: always 2).
    pub basebackup_attempts: u32,
    /// ferroni extension: seconds between pg_basebackup attempts (Patroni: always 5).
    pub basebackup_retry_delay: u32,
    pub use_unix_socket: bool,
    pub pg_ctl_timeout: u32,
    pub callbacks: BTreeMap<String, String>,
    pub use_pg_rewind: Option<bool>,
    pub remove_data_directory_on_rewind_failure: bool,
    pub remove_data_directory_on_diverged_timelines: bool,
}

impl PostgresqlConfig {
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    pub fn port(&self) -> u16 {
        self.listen
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(5432)
    }

    pub fn listen_host(&self) -> &str {
        self.listen.rsplit_once(':').map(|(h, _)| h).unwrap_or(&self.listen)
    }
}

/// A custom replica creation method (`postgresql.<name>`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaMethod {
    pub name: String,
    pub command: Vec<String>,
    pub no_leader: bool,
    pub keep_data: bool,
    pub no_params: bool,
    /// Every other key, passed as `--key=value`, in the order written.
    pub extra_args: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tags {
    /// Never promote this member. As in Patroni, an explicit `nofailover` decides; without it,
    /// `failover_priority <= 0` sets this.
    pub nofailover: bool,
    /// `None` when not set, and also when `nofailover` is set explicitly (the boolean wins).
    pub failover_priority: Option<i64>,
    pub clonefrom: bool,
    pub replicatefrom: Option<String>,
    pub noloadbalance: bool,
    pub nosync: bool,
    /// All tags as given, for the member key and `tag_*` filters.
    pub all: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchdogMode {
    #[default]
    Off,
    Automatic,
    Required,
}

/// `ferroni-config` yields `Automatic` when the file has no `watchdog` section or no `mode`, as
/// Patroni does (use the device if it can be opened); `Default` here is `Off`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WatchdogConfig {
    pub mode: WatchdogMode,
    pub device: Option<PathBuf>,
    /// Seconds; `-1` means `ttl / 2`, resolved by the user of the value.
    pub safety_margin: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub level: String,
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            json: false,
        }
    }
}

/// The dynamic configuration (DCS `config`, seeded from `bootstrap.dcs`), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicConfig {
    pub ttl: u32,
    pub loop_wait: u32,
    pub retry_timeout: u32,
    pub maximum_lag_on_failover: u64,
    pub primary_start_timeout: u32,
    pub primary_race_backoff: u32,
    pub check_timeline: bool,
    pub pause: bool,
    pub failsafe_mode: bool,
    pub use_pg_rewind: bool,
    pub use_slots: bool,
    /// `postgresql.parameters` of the dynamic config.
    pub parameters: Map<String, Value>,
    pub pg_hba: Option<Vec<String>>,
    pub standby_cluster: Option<StandbyCluster>,
    /// Permanent slots: name → definition (`{"type": "physical"}`).
    pub slots: Map<String, Value>,
    /// The JSON as read, for `GET /config` and merge patches.
    pub raw: Value,
}

impl Default for DynamicConfig {
    fn default() -> Self {
        DynamicConfig {
            ttl: 30,
            loop_wait: 10,
            retry_timeout: 10,
            maximum_lag_on_failover: 1_048_576,
            primary_start_timeout: 300,
            primary_race_backoff: 0,
            check_timeline: false,
            pause: false,
            failsafe_mode: false,
            use_pg_rewind: false,
            use_slots: true,
            parameters: Map::new(),
            pg_hba: None,
            standby_cluster: None,
            slots: Map::new(),
            raw: Value::Object(Map::new()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StandbyCluster {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub primary_slot_name: Option<String>,
    pub create_replica_methods: Vec<String>,
    pub restore_command: Option<String>,
    pub archive_cleanup_command: Option<String>,
    pub recovery_min_apply_delay: Option<String>,
}
