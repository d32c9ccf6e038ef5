//! The REST API over HTTPS: an in-process [`serve_tls`] server with certificates made by rcgen,
//! driven by reqwest on the [`ClientTls`] configurations ferronictl and the daemon use.

mod common;

use ferroni_api::{ApiState, ClientTls, SnapshotHandle, TlsSettings, serve_tls};
use ferroni_dcs::{MemoryStore, NodeIdentity};
use ferroni_model::VerifyClient;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A CA and what it signed, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Pki::ca(&dir, "ca");
        Pki { dir, ca }
    }

    /// A self-signed CA written to `<name>.pem`.
    fn ca(dir: &tempfile::TempDir, name: &str) -> Issuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("ferroni test {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
        Issuer::new(params, key)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A leaf certificate for `names` signed by `issuer`: `<name>.pem` and `<name>.key`.
    fn leaf(&self, issuer: &Issuer<'_, KeyPair>, name: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
    }

    fn server(&self, name: &str, names: &[&str]) {
        self.leaf(&self.ca, name, names, ExtendedKeyUsagePurpose::ServerAuth);
    }

    fn client(&self, name: &str) {
        self.leaf(&self.ca, name, &["client.test"], ExtendedKeyUsagePurpose::ClientAuth);
    }
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(tls: TlsSettings, basic_auth: bool) -> Server {
        let store = MemoryStore::new();
        let dcs = Arc::new(store.node(NodeIdentity {
            name: "pg1".into(),
            scope: "batman".into(),
            namespace: "/service/".into(),
            ttl: 30,
            retry_timeout: Duration::from_secs(10),
        }));
        let mut state = ApiState::new(SnapshotHandle::default(), dcs);
        if basic_auth {
            state = state.with_basic_auth("admin", "s3cret");
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_tls(
            listener,
            state,
            async {
                let _ = stopped.await;
            },
            tls,
        ));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    async fn shutdown(mut self) {
        common::stop_server(self.stop.take().unwrap(), self.task).await;
    }
}

fn client(tls: ClientTls) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls.config().unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn trusting(pki: &Pki) -> ClientTls {
    ClientTls {
        cafile: Some(pki.path("ca.pem")),
        ..ClientTls::default()
    }
}

fn with_client_cert(pki: &Pki, name: &str) -> ClientTls {
    ClientTls {
        certfile: Some(pki.path(&format!("{name}.pem"))),
        keyfile: Some(pki.path(&format!("{name}.key"))),
        ..trusting(pki)
    }
}

/// The status code, or the whole error chain when no answer came.
async fn status(c: &reqwest::Client, method: reqwest::Method, url: &str) -> Result<u16, String> {
    match c.request(method, url).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            Err(text)
        }
    }
}

async fn get(c: &reqwest::Client, url: &str) -> Result<u16, String> {
    status(c, reqwest::Method::GET, url).await
}

fn settings(pki: &Pki, server: &str, verify_client: VerifyClient) -> TlsSettings {
    TlsSettings::load(
        &pki.path(&format!("{server}.pem")),
        Some(&pki.path(&format!("{server}.key"))),
        Some(&pki.path("ca.pem")),
        verify_client,
    )
    .unwrap()
}

#[tokio::test]
async fn https_with_a_trusted_ca() {
    let pki = Pki::new();
    pki.server("server", &["127.0.0.1", "localhost"]);
    let srv = Server::start(settings(&pki, "server", VerifyClient::None), false).await;

    let body = client(trusting(&pki))
        .get(srv.url("/patroni"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("\"state\""), "{body}");
    assert_eq!(get(&client(trusting(&pki)), &srv.url("/liveness")).await, Ok(200));

    // A client that does not trust the CA (system trust store only) refuses the server.
    let e = get(&client(ClientTls::default()), &srv.url("/liveness"))
        .await
        .unwrap_err();
    assert!(e.contains("certificate"), "{e}");
    // -k accepts it.
    let insecure = ClientTls {
        insecure: true,
        ..ClientTls::default()
    };
    assert_eq!(get(&client(insecure), &srv.url("/liveness")).await, Ok(200));

    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let e = get(&plain, &format!("http://{}/liveness", srv.addr)).await;
    assert!(e.is_err(), "{e:?}");
    // ... and does not disturb the server.
    assert_eq!(get(&client(trusting(&pki)), &srv.url("/liveness")).await, Ok(200));
    srv.shutdown().await;
}

#[tokio::test]
async fn host_names_are_checked_unless_insecure_with_a_client_certificate() {
    let pki = Pki::new();
    pki.server("elsewhere", &["db.example.org"]);
    pki.client("client");
    let srv = Server::start(settings(&pki, "elsewhere", VerifyClient::None), false).await;

    let e = get(&client(trusting(&pki)), &srv.url("/liveness")).await.unwrap_err();
    assert!(e.contains("certificate"), "{e}");
    // Patroni's daemon and `ctl.insecure` with a client certificate: the chain is verified, the
    // name is not.
    let chain_only = ClientTls {
        insecure: true,
        ..with_client_cert(&pki, "client")
    };
    assert_eq!(get(&client(chain_only), &srv.url("/liveness")).await, Ok(200));

    // The chain still has to lead to the configured CA.
    let other = tempfile::tempdir().unwrap();
    Pki::ca(&other, "other");
    let wrong_ca = ClientTls {
        cafile: Some(other.path().join("other.pem")),
        insecure: true,
        ..with_client_cert(&pki, "client")
    };
    let e = get(&client(wrong_ca), &srv.url("/liveness")).await.unwrap_err();
    assert!(e.contains("certificate"), "{e}");
    srv.shutdown().await;
}

#[tokio::test]
async fn verify_client_required_rejects_connections_without_a_certificate() {
    let pki = Pki::new();
    pki.server("server", &["127.0.0.1"]);
    pki.client("client");
    let rogue = tempfile::tempdir().unwrap();
    let rogue_ca = Pki::ca(&rogue, "rogue");
    pki.leaf(
        &rogue_ca,
        "intruder",
        &["client.test"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let srv = Server::start(settings(&pki, "server", VerifyClient::Required), true).await;

    let e = get(&client(trusting(&pki)), &srv.url("/liveness")).await.unwrap_err();
    assert!(e.contains("CertificateRequired"), "{e}");
    let e = get(&client(with_client_cert(&pki, "intruder")), &srv.url("/liveness"))
        .await
        .unwrap_err();
    assert!(e.contains("fatal alert"), "{e}");
    let good = client(with_client_cert(&pki, "client"));
    assert_eq!(get(&good, &srv.url("/liveness")).await, Ok(200));
    // Basic auth still guards the unsafe methods.
    assert_eq!(status(&good, reqwest::Method::POST, &srv.url("/reload")).await, Ok(401));
    let authed = good
        .post(srv.url("/reload"))
        .basic_auth("admin", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(authed.status().as_u16(), 503, "no NodeControl in this test");
    srv.shutdown().await;
}

#[tokio::test]
async fn verify_client_optional_needs_a_certificate_for_unsafe_methods() {
    let pki = Pki::new();
    pki.server("server", &["127.0.0.1"]);
    pki.client("client");
    let srv = Server::start(settings(&pki, "server", VerifyClient::Optional), false).await;

    let anonymous = client(trusting(&pki));
    assert_eq!(get(&anonymous, &srv.url("/liveness")).await, Ok(200));
    let r = anonymous.post(srv.url("/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(r.text().await.unwrap(), "client certificate required");

    let with_cert = client(with_client_cert(&pki, "client"));
    assert_eq!(get(&with_cert, &srv.url("/liveness")).await, Ok(200));
    assert_eq!(
        status(&with_cert, reqwest::Method::POST, &srv.url("/reload")).await,
        Ok(503)
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn certificate_and_key_in_one_file() {
    let pki = Pki::new();
    pki.server("server", &["127.0.0.1"]);
    let combined = pki.path("combined.pem");
    let pem = std::fs::read_to_string(pki.path("server.pem")).unwrap()
        + &std::fs::read_to_string(pki.path("server.key")).unwrap();
    std::fs::write(&combined, pem).unwrap();
    let tls = TlsSettings::load(&combined, None, None, VerifyClient::None).unwrap();
    let srv = Server::start(tls, false).await;
    assert_eq!(get(&client(trusting(&pki)), &srv.url("/liveness")).await, Ok(200));
    srv.shutdown().await;
}

fn load_err(certfile: &Path, keyfile: Option<&Path>, cafile: Option<&Path>, verify: VerifyClient) -> String {
    TlsSettings::load(certfile, keyfile, cafile, verify)
        .unwrap_err()
        .to_string()
}

#[test]
fn unusable_files_are_named() {
    let pki = Pki::new();
    pki.server("server", &["127.0.0.1"]);
    pki.server("other", &["127.0.0.1"]);
    let cert = pki.path("server.pem");
    let key = pki.path("server.key");

    let e = load_err(&cert, None, None, VerifyClient::None);
    assert_eq!(
        e,
        format!(
            "restapi.certfile {}: no private key in it (set restapi.keyfile, or append the key to the certificate file)",
            cert.display()
        )
    );
    let e = load_err(&key, Some(&key), None, VerifyClient::None);
    assert_eq!(
        e,
        format!(
            "restapi.certfile {}: no certificate (-----BEGIN CERTIFICATE-----) in it",
            key.display()
        )
    );
    let missing = pki.path("missing.key");
    let e = load_err(&cert, Some(&missing), None, VerifyClient::None);
    assert!(
        e.starts_with(&format!("restapi.keyfile {}: cannot read it:", missing.display())),
        "{e}"
    );
    let e = load_err(&cert, Some(&pki.path("other.key")), None, VerifyClient::None);
    assert!(
        e.starts_with(&format!("restapi.certfile {} and restapi.keyfile", cert.display())),
        "{e}"
    );
    let encrypted = pki.path("encrypted.key");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = load_err(&cert, Some(&encrypted), None, VerifyClient::None);
    assert!(e.contains("the private key is encrypted"), "{e}");
    let e = load_err(&cert, Some(&key), Some(&key), VerifyClient::Required);
    assert!(
        e.starts_with(&format!("restapi.cafile {}: no certificate", key.display())),
        "{e}"
    );
    let e = load_err(&cert, Some(&key), None, VerifyClient::Optional);
    assert!(e.contains("needs restapi.cafile"), "{e}");
    // The CA is read only when client certificates are verified.
    assert!(TlsSettings::load(&cert, Some(&key), Some(&missing), VerifyClient::None).is_ok());

    let c = ClientTls {
        certfile: Some(cert.clone()),
        ..ClientTls::default()
    };
    let e = c.config().unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("ctl.certfile {}: no private key", cert.display())),
        "{e}"
    );
}
