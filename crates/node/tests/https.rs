//! The REST API over HTTPS end to end: a real single-node cluster (real etcd, real PostgreSQL 15)
//! whose `restapi` has a certificate made by rcgen for 127.0.0.1, reached with reqwest on ferroni's
//! own client configuration and with the built `ferronictl`.

mod common;

use common::{TestCluster, secs};
use ferroni_api::ClientTls;
use ferroni_testkit::node::{FerroniNode, postgres_tempdir, tail};
use ferroni_testkit::wait::wait_until;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in a directory
/// the `postgres` user (which the daemon runs as) can read.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = postgres_tempdir();
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "ferroni test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write ca.pem");
        let ca = Issuer::new(params, key);
        let pki = Pki { dir };
        pki.leaf(
            &ca,
            "server",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        pki.leaf(&ca, "client", &["ferronictl.test"], ExtendedKeyUsagePurpose::ClientAuth);
        pki
    }

    fn leaf(&self, ca: &Issuer<'_, KeyPair>, name: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, ca).expect("leaf certificate");
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).expect("write certificate");
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).expect("write key");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `restapi` lines for the node's configuration.
    fn restapi(&self, extra: &str) -> String {
        format!(
            "  certfile: {}\n  keyfile: {}\n{extra}",
            self.path("server.pem").display(),
            self.path("server.key").display()
        )
    }

    fn trusting(&self) -> ClientTls {
        ClientTls {
            cafile: Some(self.path("ca.pem")),
            ..ClientTls::default()
        }
    }

    fn with_client_cert(&self) -> ClientTls {
        ClientTls {
            certfile: Some(self.path("client.pem")),
            keyfile: Some(self.path("client.key")),
            ..self.trusting()
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// One request; the status and body, or the error with its causes.
fn request(tls: &ClientTls, method: &str, url: &str, auth: bool) -> Result<(u16, String), String> {
    runtime().block_on(async {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.config().expect("client TLS"))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let mut req = client.request(method.parse().expect("method"), url);
        if auth {
            req = req.basic_auth("admin", Some("s3cret"));
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                Ok((status, r.text().await.unwrap_or_default()))
            }
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
    })
}

fn https(node: &FerroniNode, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", node.spec.api_port)
}

/// Waits until `/patroni` over HTTPS says primary and running.
fn wait_primary(node: &FerroniNode, tls: &ClientTls) {
    wait_until("the HTTPS node to run as primary", secs(90), || {
        matches!(request(tls, "GET", &https(node, "/patroni"), false),
            Ok((200, body)) if serde_json::from_str::<Value>(&body)
                .is_ok_and(|v| v["role"] == "primary" && v["state"] == "running"))
    })
    .unwrap_or_else(|e| panic!("{e}\n--- log ---\n{}", tail(&node.log(), 60)));
}

/// A patronictl-style file (scope, etcd3, then `extra`) and an isolated HOME for ferronictl.
struct Ctl {
    home: tempfile::TempDir,
    file: PathBuf,
}

impl Ctl {
    fn new(c: &TestCluster, extra: &str) -> Ctl {
        let home = tempfile::tempdir().expect("temporary HOME");
        let file = home.path().join("ctl.yml");
        std::fs::write(
            &file,
            format!(
                "scope: {}\netcd3:\n  hosts:\n  - {}\n{extra}",
                c.scope,
                c.etcd.host_port()
            ),
        )
        .expect("write ctl.yml");
        Ctl { home, file }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferronictl"));
        common::isolate(&mut cmd, self.home.path());
        cmd.arg("-c")
            .arg(&self.file)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ferronictl")
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ctl_section(pki: &Pki, lines: &[(&str, &str)]) -> String {
    let mut s = "ctl:\n  authentication:\n    username: admin\n    password: s3cret\n".to_string();
    for (key, file) in lines {
        s.push_str(&format!("  {key}: {}\n", pki.path(file).display()));
    }
    s
}

fn restart_ok(ctl: &Ctl, args: &[&str], scope: &str) {
    let mut all = args.to_vec();
    all.extend(["restart", scope, "n0", "--force"]);
    let out = ctl.run(&all);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Success: restart on member n0"),
        "ferronictl {all:?}: {}",
        text(&out)
    );
}

#[test]
fn https_rest_api_with_basic_auth_and_ferronictl() {
    let pki = Pki::new();
    let mut c = TestCluster::new("https");
    let mut spec = c.spec("n0");
    spec.extra_restapi = pki.restapi("  authentication:\n    username: admin\n    password: s3cret\n");
    let n0 = c.start(spec);
    let node = &c.nodes[n0];
    wait_primary(node, &pki.trusting());

    // Without the CA the certificate is refused; -k (insecure) takes it.
    let e = request(&ClientTls::default(), "GET", &https(node, "/patroni"), false).unwrap_err();
    assert!(e.contains("certificate"), "{e}");
    let insecure = ClientTls {
        insecure: true,
        ..ClientTls::default()
    };
    assert_eq!(
        request(&insecure, "GET", &https(node, "/liveness"), false).map(|r| r.0),
        Ok(200)
    );
    // Plain HTTP gets no answer from the HTTPS port.
    assert!(node.api_get("/patroni").is_err(), "plain HTTP answered");

    // Other members and ferronictl find the API under an https:// address.
    let member = c
        .load()
        .members
        .into_iter()
        .find(|m| m.name == "n0")
        .expect("member n0");
    assert_eq!(member.data.api_url, https(node, "/patroni"));

    // Basic auth still guards the unsafe methods over HTTPS.
    let (code, _) = request(&pki.trusting(), "POST", &https(node, "/restart"), false).expect("answer");
    assert_eq!(code, 401);

    // ferronictl: ctl.cacert trusts the CA; without it the certificate is refused; -k accepts it.
    let trusting = Ctl::new(&c, &ctl_section(&pki, &[("cacert", "ca.pem")]));
    restart_ok(&trusting, &[], &c.scope);
    wait_primary(node, &pki.trusting());
    let untrusting = Ctl::new(&c, &ctl_section(&pki, &[]));
    let out = untrusting.run(&["restart", &c.scope, "n0", "--force"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("certificate"), "{}", text(&out));
    restart_ok(&untrusting, &["-k"], &c.scope);
    wait_primary(node, &pki.trusting());
}

#[test]
fn https_rest_api_requiring_client_certificates() {
    let pki = Pki::new();
    let mut c = TestCluster::new("mtls");
    let mut spec = c.spec("n0");
    spec.extra_restapi = pki.restapi(&format!(
        "  cafile: {}\n  verify_client: required\n",
        pki.path("ca.pem").display()
    ));
    let n0 = c.start(spec);
    let node = &c.nodes[n0];
    wait_primary(node, &pki.with_client_cert());

    // No client certificate: the TLS handshake fails, for reads too.
    let e = request(&pki.trusting(), "GET", &https(node, "/liveness"), false).unwrap_err();
    assert!(e.contains("CertificateRequired"), "{e}");
    assert_eq!(
        request(&pki.with_client_cert(), "GET", &https(node, "/liveness"), false).map(|r| r.0),
        Ok(200)
    );

    // ferronictl presents ctl.certfile/ctl.keyfile.
    let without = Ctl::new(&c, &ctl_section(&pki, &[("cacert", "ca.pem")]));
    let out = without.run(&["restart", &c.scope, "n0", "--force"]);
    assert!(!out.status.success(), "{}", text(&out));
    let with = Ctl::new(
        &c,
        &ctl_section(
            &pki,
            &[
                ("cacert", "ca.pem"),
                ("certfile", "client.pem"),
                ("keyfile", "client.key"),
            ],
        ),
    );
    restart_ok(&with, &[], &c.scope);
    wait_primary(node, &pki.with_client_cert());
}

/// A certificate file the daemon cannot use stops it before it touches anything, naming the file.
#[test]
fn unusable_certificate_stops_the_daemon_at_startup() {
    let pki = Pki::new();
    let mut c = TestCluster::new("badcert");
    let mut spec = c.spec("n0");
    spec.extra_restapi = format!("  certfile: {}\n", pki.path("server.pem").display());
    let n0 = c.start(spec);
    let node = &mut c.nodes[n0];
    let code = node.wait_exit(secs(30));
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}\n{}", node.log());
    let log = node.log();
    assert!(
        log.contains(&format!(
            "restapi.certfile {}: no private key in it",
            pki.path("server.pem").display()
        )),
        "{log}"
    );
    assert!(!Path::new(&node.data_dir()).join("PG_VERSION").exists(), "initdb ran");
    assert!(c.load().members.is_empty(), "the daemon registered in the DCS");
}
