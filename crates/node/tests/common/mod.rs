//! Shared helpers of the daemon's integration tests: a cluster of real ferroni nodes on a real etcd,
//! and direct reads of the DCS.

#![allow(dead_code)]

use ferroni_dcs::{Dcs, EtcdDcs, NodeIdentity};
use ferroni_model::ClusterView;
use ferroni_testkit::etcd::Etcd;
use ferroni_testkit::node::{FerroniNode, NodeSpec, postgres_tempdir};
use std::path::Path;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_ferroni");

pub struct TestCluster {
    pub etcd: Etcd,
    pub scope: String,
    pub nodes: Vec<FerroniNode>,
    /// Kept so the directories outlive the nodes (dropped last).
    dirs: Vec<tempfile::TempDir>,
}

impl TestCluster {
    pub fn new(scope: &str) -> TestCluster {
        TestCluster {
            etcd: Etcd::start(),
            scope: scope.into(),
            nodes: Vec::new(),
            dirs: Vec::new(),
        }
    }

    pub fn spec(&self, name: &str) -> NodeSpec {
        NodeSpec::new(name, &self.scope, &self.etcd.host_port())
    }

    /// Starts a node and returns its index.
    pub fn start(&mut self, spec: NodeSpec) -> usize {
        let dir = postgres_tempdir();
        let node = FerroniNode::start(Path::new(BIN), dir.path(), spec);
        self.dirs.push(dir);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    pub fn load(&self) -> ClusterView {
        load(&self.etcd.host_port(), &self.scope)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Nodes first (they stop their Postgres), then the directories, then etcd.
        self.nodes.clear();
        self.dirs.clear();
    }
}

pub fn dcs(endpoint: &str, scope: &str) -> EtcdDcs {
    let identity = NodeIdentity {
        name: "test-observer".into(),
        scope: scope.into(),
        namespace: "/service/".into(),
        ttl: 30,
        retry_timeout: Duration::from_secs(5),
    };
    EtcdDcs::connect(vec![endpoint.to_string()], None, identity).expect("etcd client")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn load(endpoint: &str, scope: &str) -> ClusterView {
    runtime()
        .block_on(dcs(endpoint, scope).load())
        .expect("read cluster from etcd")
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Keeps the developer's own patronictl configuration and variables out of a `ferronictl` run.
pub fn isolate(cmd: &mut std::process::Command, home: &Path) {
    cmd.env("HOME", home)
        .env_remove("PATRONICTL_CONFIG_FILE")
        .env_remove("DCS_URL")
        .env_remove("EDITOR")
        .env_remove("RUST_LOG");
    without_patroni_env(cmd);
}

/// Removes every `PATRONI_*` variable of the test's own environment from `cmd`'s.
pub fn without_patroni_env(cmd: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PATRONI_")) {
            cmd.env_remove(key);
        }
    }
}
