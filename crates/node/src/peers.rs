//! Asks the other members' REST APIs for their status during an election, in parallel with a 2 s
//! timeout as Patroni does. A member that does not answer counts as unreachable, never as behind.

use ferroni_api::ClientTls;
use ferroni_decision::PeerStatus;
use ferroni_model::{ClusterView, Config, Lsn, Role};
use serde_json::Value;
use std::time::Duration;

const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTP(S) client for the peers' `api_url`s. As Patroni's daemon (`PatroniRequest(config,
/// True)`) it does not verify the peers' certificates, unless `ctl.certfile` is set: then that
/// client certificate is presented (peers with `verify_client` want one) and the peers'
/// certificates must chain to `ctl.cacert`/`restapi.cafile` (host names are not checked).
/// Fails on unreadable certificate files, before the daemon starts.
pub fn client(cfg: &Config) -> anyhow::Result<reqwest::Client> {
    let tls = ClientTls {
        cafile: cfg.ctl.cacert.clone().or_else(|| cfg.restapi.cafile.clone()),
        certfile: cfg.ctl.certfile.clone(),
        keyfile: cfg.ctl.keyfile.clone(),
        insecure: true,
    }
    .config()?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot create the HTTP client for the peers: {e}"))
}

pub async fn ask_peers(client: &reqwest::Client, cluster: &ClusterView, me: &str) -> Vec<PeerStatus> {
    let asks = cluster
        .members
        .iter()
        .filter(|m| m.name != me && !m.data.api_url.is_empty())
        .map(|m| ask(client.clone(), m.name.clone(), m.data.api_url.clone()));
    futures_join_all(asks).await
}

async fn ask(client: reqwest::Client, name: String, api_url: String) -> PeerStatus {
    let answer = async {
        let resp = client.get(&api_url).timeout(PEER_TIMEOUT).send().await.ok()?;
        resp.json::<Value>().await.ok()
    };
    match tokio::time::timeout(PEER_TIMEOUT, answer).await {
        Ok(Some(v)) => parse_status(name, &v),
        _ => PeerStatus {
            name,
            reachable: false,
            role: None,
            running: false,
            lsn: 0,
            timeline: 0,
            nofailover: false,
            failover_priority: 1,
        },
    }
}

/// Reads a `/patroni` answer (Patroni's or ferroni's) into what the election compares.
pub fn parse_status(name: String, v: &Value) -> PeerStatus {
    let role = v.get("role").and_then(Value::as_str).and_then(Role::parse);
    let xlog = v.get("xlog");
    let lsn_field = |k: &str| xlog.and_then(|x| x.get(k)).and_then(lsn_value).unwrap_or(0);
    let lsn = lsn_field("location")
        .max(lsn_field("received_location"))
        .max(lsn_field("replayed_location"));
    let tags = v.get("tags");
    let nofailover = tags.and_then(|t| t.get("nofailover")).is_some_and(truthy);
    let failover_priority = tags
        .and_then(|t| t.get("failover_priority"))
        .and_then(|p| p.as_i64().or_else(|| p.as_str()?.parse().ok()));
    PeerStatus {
        name,
        reachable: true,
        role,
        running: v.get("state").and_then(Value::as_str) == Some("running"),
        lsn,
        timeline: v.get("timeline").and_then(Value::as_u64).unwrap_or(0) as u32,
        nofailover,
        failover_priority: failover_priority.unwrap_or(if nofailover { 0 } else { 1 }),
    }
}

fn lsn_value(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.parse::<Lsn>().ok().map(|l| l.0))
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1"),
        Value::Number(n) => n.as_i64() != Some(0),
        _ => false,
    }
}

async fn futures_join_all<F: std::future::Future<Output = PeerStatus> + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<PeerStatus> {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(p) = h.await {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_patroni_status() {
        let v = json!({"state": "running", "role": "replica", "timeline": 3,
            "xlog": {"received_location": 500, "replayed_location": 400},
            "tags": {"nofailover": "yes"}});
        let p = parse_status("n1".into(), &v);
        assert!(p.reachable && p.running && p.nofailover);
        assert_eq!((p.lsn, p.timeline, p.role), (500, 3, Some(Role::Replica)));
        assert_eq!(p.failover_priority, 0);
    }

    /// The daemon's peer client against HTTPS peers, as Patroni's: any server certificate is
    /// accepted unless `ctl.certfile` is set; then it is presented and the chain is checked.
    #[tokio::test]
    async fn peers_over_https() {
        use ferroni_api::{ApiState, SnapshotHandle, TlsSettings, serve_tls};
        use ferroni_dcs::{MemoryStore, NodeIdentity};
        use ferroni_model::{Member, MemberData, VerifyClient};
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        std::fs::write(path("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
        let ca = Issuer::new(ca, ca_key);
        for (name, usage) in [
            ("server", ExtendedKeyUsagePurpose::ServerAuth),
            ("client", ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            // The server's name does not match 127.0.0.1: only Patroni-style peer checks pass.
            let mut params = CertificateParams::new(vec![format!("{name}.example.org")]).unwrap();
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            std::fs::write(path(&format!("{name}.pem")), params.signed_by(&key, &ca).unwrap().pem()).unwrap();
            std::fs::write(path(&format!("{name}.key")), key.serialize_pem()).unwrap();
        }

        let serve = |verify: VerifyClient| async move {
            let dcs = std::sync::Arc::new(MemoryStore::new().node(NodeIdentity {
                name: "peer".into(),
                scope: "s".into(),
                namespace: "/service/".into(),
                ttl: 30,
                retry_timeout: Duration::from_secs(10),
            }));
            let tls = TlsSettings::load(
                &path("server.pem"),
                Some(&path("server.key")),
                Some(&path("ca.pem")),
                verify,
            )
            .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let state = ApiState::new(SnapshotHandle::default(), dcs);
            tokio::spawn(serve_tls(listener, state, std::future::pending(), tls));
            ClusterView {
                members: vec![Member {
                    name: "peer".into(),
                    data: MemberData {
                        api_url: format!("https://{addr}/patroni"),
                        ..MemberData::default()
                    },
                }],
                ..ClusterView::default()
            }
        };
        let config = |ctl: &str| {
            let yaml = format!(
                "name: me\nscope: s\nrestapi:\n  listen: 127.0.0.1:8008\netcd3:\n  hosts: 127.0.0.1:2379\n\
                 postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /data\n{ctl}"
            );
            ferroni_config::parse_str(&yaml, &Default::default()).unwrap().config
        };
        let plain = config("");
        let with_cert = config(&format!(
            "ctl:\n  cacert: {}\n  certfile: {}\n  keyfile: {}\n",
            path("ca.pem").display(),
            path("client.pem").display(),
            path("client.key").display()
        ));
        let reachable = |cfg: &Config, cluster: &ClusterView| {
            let client = client(cfg).unwrap();
            let cluster = cluster.clone();
            async move { ask_peers(&client, &cluster, "me").await[0].reachable }
        };

        let open = serve(VerifyClient::None).await;
        assert!(reachable(&plain, &open).await, "self-signed peer without ctl.certfile");
        assert!(
            reachable(&with_cert, &open).await,
            "peer with another name, chain checked"
        );
        let strict = serve(VerifyClient::Required).await;
        assert!(!reachable(&plain, &strict).await, "no client certificate");
        assert!(reachable(&with_cert, &strict).await, "ctl.certfile presented");

        let broken = config("ctl:\n  certfile: /nonexistent/client.pem\n");
        let e = client(&broken).unwrap_err().to_string();
        assert!(
            e.starts_with("ctl.certfile /nonexistent/client.pem: cannot read it"),
            "{e}"
        );
    }

    #[test]
    fn primary_location() {
        let v = json!({"state": "running", "role": "primary", "timeline": 1, "xlog": {"location": 9000}});
        let p = parse_status("n0".into(), &v);
        assert_eq!((p.lsn, p.failover_priority), (9000, 1));
    }
}
