//! What every command needs: the resolved settings, the cluster name to act on, a DCS client for
//! that cluster, and a client for the members' REST APIs. The CLI never takes a lease: it reads, and writes only with compare-and-swap
//! (or deletes, for `remove`), so its identity is a placeholder name.

use crate::error::{CtlError, CtlResult};
use crate::rest::Rest;
use crate::settings::Settings;
use ferroni_dcs::{EtcdDcs, NodeIdentity};
use std::time::Duration;

const CLI_NAME: &str = "ferronictl";
/// Never used for a lease; `EtcdDcs` only insists that it is positive.
const TTL: u32 = 30;
/// How long one DCS operation may take, retries included, before "DCS is not accessible".
const RETRY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Ctl {
    pub settings: Settings,
}

impl Ctl {
    /// The cluster named on the command line, else `scope` from the configuration.
    pub fn cluster_name(&self, given: Option<&str>) -> CtlResult<String> {
        let name = given
            .or(self.settings.scope.as_deref())
            .map(str::trim)
            .unwrap_or_default();
        if name.is_empty() {
            return Err(CtlError::usage(
                "no cluster name: give CLUSTER_NAME, or a configuration file (-c) that sets scope",
            ));
        }
        if name.contains('/') {
            return Err(CtlError::usage(format!(
                "invalid cluster name {name:?}: it must not contain '/'"
            )));
        }
        Ok(name.to_string())
    }

    pub fn dcs(&self, scope: &str) -> CtlResult<EtcdDcs> {
        let ns = self.settings.namespace.trim_matches('/');
        let namespace = if ns.is_empty() {
            "/".to_string()
        } else {
            format!("/{ns}/")
        };
        let identity = NodeIdentity {
            name: CLI_NAME.to_string(),
            scope: scope.to_string(),
            namespace,
            ttl: TTL,
            retry_timeout: RETRY_TIMEOUT,
        };
        // Nothing is contacted yet; an error here is an unusable endpoint list (bad address, https).
        EtcdDcs::connect(
            self.settings.endpoints.clone(),
            self.settings.etcd_user.clone(),
            identity,
        )
        .map_err(|e| CtlError::usage(e.to_string()))
    }

    /// A REST API client carrying the configured credentials and certificates.
    pub fn rest(&self) -> CtlResult<Rest> {
        Rest::new(self.settings.rest_auth.clone(), &self.settings.tls)
    }
}
