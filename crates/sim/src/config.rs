//! What one simulated run looks like before it starts: the nodes and their tags and speeds, the
//! dynamic configuration, the write load, and which writable-primary rule the checker applies.
//! [`SimConfig::random`] draws all of it from a seed.

use crate::rng::Rng;
use ferroni_model::*;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// `host:port` of the remote primary a standby cluster follows.
pub const REMOTE_HOST: &str = "remote-primary:5432";

/// Which running primaries count as writable for the "never two writable primaries" invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritableRule {
    /// Every Postgres running as a primary accepts writes, whatever its daemon knows: what a client
    /// connected to it experiences. This is the real guarantee.
    Strict,
    /// A running primary counts while it holds the leader key, or while its daemon is paused (a
    /// paused daemon cannot demote it and ferroni has no fencing yet). A primary that lost the key
    /// while its daemon runs is taken to be on its way down and is not counted.
    LeaseAware,
}

/// When a daemon starts its next cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// ferroni today (`daemon.rs`): sleep a full `loop_wait` after the cycle ends.
    AfterCycle,
    /// Patroni: the next cycle starts `loop_wait` after the previous one started.
    FromCycleStart,
}

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    /// `host:port` of Postgres (`conn_url`); the REST API listens on the same host.
    pub host: String,
    pub nofailover: bool,
    pub failover_priority: Option<i64>,
    pub clonefrom: bool,
    pub replicatefrom: Option<String>,
    /// Bytes per second a replica of this node receives.
    pub replication_rate: u64,
    /// Bytes per second a base backup to this node copies.
    pub clone_rate: u64,
}

impl NodeSpec {
    pub fn new(i: usize) -> NodeSpec {
        NodeSpec {
            name: format!("n{}", i + 1),
            host: format!("10.0.0.{}:5432", i + 1),
            nofailover: false,
            failover_priority: None,
            clonefrom: false,
            replicatefrom: None,
            replication_rate: 20_000_000,
            clone_rate: 50_000_000,
        }
    }

    /// The node's ferroni configuration, as `ferroni-config` would produce it.
    pub fn ferroni_config(&self, dcs: &Value) -> Config {
        let listen = self.host.clone();
        let api = format!("{}:8008", self.host.split(':').next().unwrap_or("localhost"));
        let mut all = Map::new();
        if self.nofailover {
            all.insert("nofailover".into(), json!(true));
        }
        if let Some(p) = self.failover_priority {
            all.insert("failover_priority".into(), json!(p));
        }
        if self.clonefrom {
            all.insert("clonefrom".into(), json!(true));
        }
        if let Some(r) = &self.replicatefrom {
            all.insert("replicatefrom".into(), json!(r));
        }
        let creds = |u: &str| Credentials {
            username: u.into(),
            password: None,
        };
        Config {
            name: self.name.clone(),
            scope: "sim".into(),
            namespace: "/service/".into(),
            restapi: RestApiConfig {
                listen: api.clone(),
                connect_address: api,
                authentication: None,
                certfile: None,
                keyfile: None,
                cafile: None,
                verify_client: VerifyClient::None,
            },
            ctl: CtlConfig::default(),
            etcd3: EtcdConfig {
                hosts: vec!["etcd:2379".into()],
                protocol: "http".into(),
                username: None,
                password: None,
            },
            bootstrap: BootstrapConfig {
                dcs: dcs.clone(),
                method: BootstrapMethod::Initdb,
                initdb: vec![],
                post_bootstrap: None,
                pg_hba: vec![],
            },
            postgresql: PostgresqlConfig {
                listen: listen.clone(),
                connect_address: listen,
                data_dir: "/data/pg".into(),
                config_dir: "/data/pg".into(),
                bin_dir: "/usr/lib/postgresql/16/bin".into(),
                pgpass: "/tmp/pgpass".into(),
                superuser: creds("postgres"),
                replication: creds("replicator"),
                rewind: None,
                parameters: Map::new(),
                pg_hba: None,
                create_replica_methods: vec![],
                replica_methods: BTreeMap::new(),
                basebackup: vec![],
                recovery_conf: Default::default(),
                basebackup_attempts: 2,
                basebackup_retry_delay: 5,
                use_unix_socket: false,
                pg_ctl_timeout: 60,
                callbacks: BTreeMap::new(),
                use_pg_rewind: None,
                remove_data_directory_on_rewind_failure: false,
                remove_data_directory_on_diverged_timelines: false,
            },
            tags: Tags {
                nofailover: self.nofailover,
                failover_priority: self.failover_priority,
                clonefrom: self.clonefrom,
                replicatefrom: self.replicatefrom.clone(),
                noloadbalance: false,
                nosync: false,
                all,
            },
            // ferroni-config's default: mode automatic, safety_margin 5 s.
            watchdog: WatchdogConfig {
                mode: WatchdogMode::Automatic,
                device: None,
                safety_margin: 5,
            },
            log: LogConfig::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: Vec<NodeSpec>,
    pub dynamic: DynamicConfig,
    /// Bytes per second clients write to every running primary.
    pub write_rate: u64,
    pub writable: WritableRule,
    pub cadence: Cadence,
    /// The fencing process of the daemon (`fencing.rs`); off shows ferroni without it.
    pub fencing: bool,
    /// How long a started daemon takes to its first cycle, in ms (`lo..=hi`, drawn per start).
    pub start_delay: (u64, u64),
    /// Keep every event, not only the last few (replays).
    pub full_log: bool,
}

impl SimConfig {
    /// Three nodes with Patroni's defaults (ttl 30, loop_wait 10, retry_timeout 10).
    pub fn with_nodes(n: usize) -> SimConfig {
        let dynamic = DynamicConfig::default();
        SimConfig {
            nodes: (0..n).map(NodeSpec::new).collect(),
            dynamic,
            write_rate: 100_000,
            writable: WritableRule::Strict,
            cadence: Cadence::AfterCycle,
            fencing: true,
            start_delay: (100, 1_500),
            full_log: false,
        }
    }

    pub fn ttl_ms(&self) -> u64 {
        u64::from(self.dynamic.ttl) * 1000
    }

    pub fn loop_wait_ms(&self) -> u64 {
        u64::from(self.dynamic.loop_wait) * 1000
    }

    pub fn retry_timeout_ms(&self) -> u64 {
        u64::from(self.dynamic.retry_timeout) * 1000
    }

    /// `bootstrap.dcs` as the nodes would have it in their YAML.
    pub fn bootstrap_dcs(&self) -> Value {
        let d = &self.dynamic;
        let mut v = json!({
            "ttl": d.ttl,
            "loop_wait": d.loop_wait,
            "retry_timeout": d.retry_timeout,
            "maximum_lag_on_failover": d.maximum_lag_on_failover,
        });
        if d.standby_cluster.is_some() {
            v["standby_cluster"] = json!({"host": "remote-primary", "port": 5432});
        }
        if d.use_pg_rewind {
            v["use_pg_rewind"] = json!(true);
        }
        if d.check_timeline {
            v["check_timeline"] = json!(true);
        }
        v
    }

    /// Turns the cluster into a standby cluster replicating from a remote primary.
    pub fn make_standby_cluster(&mut self) {
        self.dynamic.standby_cluster = Some(StandbyCluster {
            host: Some("remote-primary".into()),
            port: Some(5432),
            ..StandbyCluster::default()
        });
    }

    /// A configuration drawn from `rng`: 3 to 5 nodes, a valid ttl/loop_wait/retry_timeout triple
    /// (`loop_wait + 2 * retry_timeout <= ttl`, half of the time at the boundary as with Patroni's
    /// defaults), a write load, and per node tags and speeds (some replicas too slow to keep up).
    pub fn random(rng: &mut Rng, writable: WritableRule) -> SimConfig {
        let n = rng.range(3, 5) as usize;
        let mut cfg = SimConfig::with_nodes(n);
        cfg.writable = writable;
        let ttl = [10u32, 15, 20, 30][rng.index(4)];
        let loop_wait = rng.range(1, u64::from(ttl / 3)) as u32;
        let max_retry = (ttl - loop_wait) / 2;
        let retry = if rng.percent(50) {
            max_retry
        } else {
            rng.range(1, u64::from(max_retry)) as u32
        };
        cfg.dynamic.ttl = ttl;
        cfg.dynamic.loop_wait = loop_wait;
        cfg.dynamic.retry_timeout = retry;
        cfg.dynamic.maximum_lag_on_failover = if rng.percent(25) { 262_144 } else { 1_048_576 };
        cfg.dynamic.use_pg_rewind = rng.percent(50);
        cfg.dynamic.check_timeline = rng.percent(50);
        cfg.write_rate = rng.range(10_000, 400_000);
        let names: Vec<String> = cfg.nodes.iter().map(|s| s.name.clone()).collect();
        for (i, spec) in cfg.nodes.iter_mut().enumerate() {
            // n1 stays eligible so that some node can always bootstrap and lead.
            if i > 0 && rng.percent(15) {
                spec.nofailover = true;
            }
            if i > 0 && rng.percent(15) {
                spec.failover_priority = Some(rng.range(1, 3) as i64);
            }
            if rng.percent(25) {
                // Sometimes slower than the write load: this replica falls behind during load.
                spec.replication_rate = cfg.write_rate * rng.range(5, 15) / 10;
            }
            spec.clonefrom = rng.percent(15);
            if i > 0 && rng.percent(10) {
                let other = names[rng.index(names.len())].clone();
                if other != spec.name {
                    spec.replicatefrom = Some(other);
                }
            }
            spec.clone_rate = rng.range(10_000_000, 100_000_000);
        }
        cfg
    }
}
