//! HTTPS for the REST API, both ends, with rustls on the `ring` crypto provider (the only one in
//! ferroni's build).
//!
//! Server: with `restapi.certfile` set the API speaks HTTPS only, as Patroni's does. The daemon
//! loads the files with [`TlsSettings::from_config`] before it touches anything, then hands the
//! settings to [`serve_tls`]. `restapi.verify_client` follows Patroni:
//! - `none`: no client certificates are asked for;
//! - `optional`: a certificate is asked for and, when sent, must chain to `restapi.cafile`; the
//!   unsafe methods (POST, PUT, PATCH, DELETE) answer 403 `client certificate required` without one;
//! - `required`: the TLS handshake fails without a valid client certificate.
//!
//! Basic authentication (`restapi.authentication`) still applies to the unsafe methods on top.
//!
//! Client: [`ClientTls::config`] builds the `rustls::ClientConfig` that ferronictl and the daemon's
//! peer requests hand to reqwest, mirroring Patroni's `PatroniRequest`: the CA is `ctl.cacert`,
//! else `restapi.cafile`, else the system trust store; `ctl.certfile`/`ctl.keyfile` are the client
//! certificate; `insecure` skips verification of the server's certificate, but only its host name
//! when a client certificate is configured.
//!
//! Failure story: unreadable or unusable files are [`TlsError`]s naming the key and the file, found
//! when the settings are built (startup), never on a request. A handshake that fails or takes more
//! than 10 s closes that connection only and is logged at debug level (plain-HTTP probes and port
//! scanners would flood the log otherwise).

use crate::server::{ApiState, router};
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use ferroni_model::{RestApiConfig, VerifyClient};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate, key or CA file that cannot be used; the message names the key and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes `ring` the process-wide rustls provider, for code that builds TLS configurations without
/// naming one (a reqwest `Client` on its default TLS backend panics without a provider, since
/// ferroni builds reqwest without aws-lc-rs). Idempotent; [`ApiState::new`] calls it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

// ---------------------------------------------------------------------------------------------
// PEM files

fn read(key: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("{key} {}: cannot read it: {e}", path.display())))
}

fn certificates(key: &str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{key} {}: not a valid PEM file: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{key} {}: no certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        )));
    }
    Ok(certs)
}

fn is_encrypted(pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(pem);
    text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || text.contains("Proc-Type: 4,ENCRYPTED")
}

/// The private key in `pem`; `hint` says what to do when there is none.
fn private_key(key: &str, path: &Path, pem: &[u8], hint: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    if is_encrypted(pem) {
        return Err(TlsError(format!(
            "{key} {}: the private key is encrypted, which ferroni cannot read (keyfile_password is not \
             supported); store it unencrypted, e.g. `openssl pkey -in ENCRYPTED -out PLAIN`",
            path.display()
        )));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError(format!("{key} {}: no private key in it{hint}", path.display())),
        e => TlsError(format!("{key} {}: not a valid PEM file: {e}", path.display())),
    })
}

/// Certificate chain and key: from `certfile` and `keyfile`, or both from `certfile`.
fn cert_and_key(
    section: &str,
    certfile: &Path,
    keyfile: Option<&Path>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_key = format!("{section}.certfile");
    let cert_pem = read(&cert_key, certfile)?;
    let chain = certificates(&cert_key, certfile, &cert_pem)?;
    let key = match keyfile {
        Some(keyfile) => {
            let key_key = format!("{section}.keyfile");
            private_key(&key_key, keyfile, &read(&key_key, keyfile)?, "")?
        }
        None => private_key(
            &cert_key,
            certfile,
            &cert_pem,
            &format!(" (set {section}.keyfile, or append the key to the certificate file)"),
        )?,
    };
    Ok((chain, key))
}

fn root_store(key: &str, path: &Path) -> Result<RootCertStore, TlsError> {
    let pem = read(key, path)?;
    let mut roots = RootCertStore::empty();
    for cert in certificates(key, path, &pem)? {
        roots
            .add(cert)
            .map_err(|e| TlsError(format!("{key} {}: unusable CA certificate: {e}", path.display())))?;
    }
    Ok(roots)
}

fn describe_pair(section: &str, certfile: &Path, keyfile: Option<&Path>) -> String {
    match keyfile {
        Some(k) => format!(
            "{section}.certfile {} and {section}.keyfile {}",
            certfile.display(),
            k.display()
        ),
        None => format!("{section}.certfile {}", certfile.display()),
    }
}

// ---------------------------------------------------------------------------------------------
// Server

/// The loaded server side: certificate, key and client verification, ready for [`serve_tls`].
#[derive(Clone)]
pub struct TlsSettings {
    acceptor: TlsAcceptor,
    verify_client: VerifyClient,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("verify_client", &self.verify_client)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Reads `restapi.certfile`/`keyfile`/`cafile`; `None` when no certificate is configured (the
    /// API speaks plain HTTP then).
    pub fn from_config(cfg: &RestApiConfig) -> Result<Option<TlsSettings>, TlsError> {
        let Some(certfile) = &cfg.certfile else {
            return Ok(None);
        };
        TlsSettings::load(
            certfile,
            cfg.keyfile.as_deref(),
            cfg.cafile.as_deref(),
            cfg.verify_client,
        )
        .map(Some)
    }

    /// `keyfile: None` takes the key from `certfile`. `cafile` is needed (and only read) when
    /// `verify_client` is not `None`.
    pub fn load(
        certfile: &Path,
        keyfile: Option<&Path>,
        cafile: Option<&Path>,
        verify_client: VerifyClient,
    ) -> Result<TlsSettings, TlsError> {
        let provider = provider();
        let (chain, key) = cert_and_key("restapi", certfile, keyfile)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS setup: {e}")))?;
        let builder = match verify_client {
            VerifyClient::None => builder.with_no_client_auth(),
            VerifyClient::Optional | VerifyClient::Required => {
                let cafile = cafile.ok_or_else(|| {
                    TlsError("restapi.verify_client needs restapi.cafile, the CA of the client certificates".into())
                })?;
                let roots = root_store("restapi.cafile", cafile)?;
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if verify_client == VerifyClient::Optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError(format!("restapi.cafile {}: {e}", cafile.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError(format!("{}: {e}", describe_pair("restapi", certfile, keyfile))))?;
        Ok(TlsSettings {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            verify_client,
        })
    }
}

/// Serves the API over HTTPS on a listener the daemon bound, until `shutdown` completes; open
/// connections are then closed gracefully. Plain-HTTP clients fail the handshake.
pub async fn serve_tls<F>(listener: TcpListener, mut state: ApiState, shutdown: F, tls: TlsSettings) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    state.client_cert_for_unsafe = tls.verify_client != VerifyClient::None;
    let listener = TlsListener {
        tcp: listener,
        acceptor: tls.acceptor,
        handshakes: JoinSet::new(),
    };
    axum::serve(listener, router(state).into_make_service_with_connect_info::<TlsPeer>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Accepts TCP connections and yields them once their TLS handshake is done. Handshakes run in
/// their own tasks, so a client that connects and says nothing cannot hold up the others.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    fn start_handshake(&mut self, tcp: TcpStream, addr: SocketAddr) {
        // Health checks are tiny request/response pairs; Nagle would only add latency.
        let _ = tcp.set_nodelay(true);
        let acceptor = self.acceptor.clone();
        self.handshakes.spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => Some((stream, addr)),
                Ok(Err(e)) => {
                    tracing::debug!("REST API: TLS handshake with {addr} failed: {e}");
                    None
                }
                Err(_) => {
                    tracing::debug!("REST API: TLS handshake with {addr} timed out");
                    None
                }
            }
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, addr)) => self.start_handshake(tcp, addr),
                    Err(e) => accept_error(e).await,
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// As axum does for TCP: errors of one connection are skipped; others (out of file descriptors)
/// are logged and retried after a pause.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("REST API: accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// What the handlers learn about an HTTPS connection (a request extension as
/// `ConnectInfo<TlsPeer>`; plain-HTTP requests have none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsPeer {
    /// A client certificate was presented (and verified against `restapi.cafile`).
    pub client_cert: bool,
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let (_, conn) = stream.io().get_ref();
        TlsPeer {
            client_cert: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client

/// How a client (ferronictl, or the daemon asking its peers) talks HTTPS to the REST APIs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificates the servers' certificates must chain to (`ctl.cacert`, else
    /// `restapi.cafile`); `None` uses the system trust store.
    pub cafile: Option<PathBuf>,
    /// Client certificate (`ctl.certfile`), presented to servers that ask for one.
    pub certfile: Option<PathBuf>,
    /// Its key (`ctl.keyfile`); `None` takes it from `certfile`.
    pub keyfile: Option<PathBuf>,
    /// Do not verify the server's certificate (`-k`, `ctl.insecure`); with a client certificate
    /// only its host name goes unchecked, as in Patroni.
    pub insecure: bool,
}

impl ClientTls {
    /// The rustls configuration (ring provider) for reqwest's `tls_backend_preconfigured`.
    /// Reads the files it needs now, so a bad path is an error at startup.
    pub fn config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS setup: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = if self.insecure && self.certfile.is_none() {
            Arc::new(FixedVerdict {
                provider,
                refusal: None,
            })
        } else {
            let roots = match &self.cafile {
                Some(path) => root_store("CA file", path)?,
                None => system_roots(),
            };
            if roots.is_empty() {
                Arc::new(FixedVerdict {
                    provider,
                    refusal: Some(
                        "no trusted CA certificates: set ctl.cacert (or restapi.cafile), or use -k/--insecure",
                    ),
                })
            } else {
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| TlsError(format!("TLS setup: {e}")))?;
                if self.insecure {
                    Arc::new(AnyHostName(webpki))
                } else {
                    webpki
                }
            }
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        match &self.certfile {
            None => Ok(builder.with_no_client_auth()),
            Some(certfile) => {
                let (chain, key) = cert_and_key("ctl", certfile, self.keyfile.as_deref())?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    TlsError(format!(
                        "{}: {e}",
                        describe_pair("ctl", certfile, self.keyfile.as_deref())
                    ))
                })
            }
        }
    }
}

fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!("system CA certificates: {e}");
    }
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    roots
}

fn signature_schemes(provider: &CryptoProvider) -> Vec<SignatureScheme> {
    provider.signature_verification_algorithms.supported_schemes()
}

/// A verifier that does not look at the server certificate. With no `refusal` (`insecure` without
/// a client certificate) every certificate is accepted; the handshake signatures are still checked,
/// so the connection is encrypted to whoever holds that key. With a `refusal` (no CA configured and
/// none in the system trust store) every certificate is refused with that message, which says what
/// to configure; plain-HTTP members still work.
#[derive(Debug)]
struct FixedVerdict {
    provider: Arc<CryptoProvider>,
    refusal: Option<&'static str>,
}

impl ServerCertVerifier for FixedVerdict {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.refusal {
            None => Ok(ServerCertVerified::assertion()),
            Some(why) => Err(rustls::Error::General(why.into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        signature_schemes(&self.provider)
    }
}

/// `insecure` with a client certificate: the chain must lead to a trusted CA, the host name may
/// differ (Patroni's `assert_hostname = False`).
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_keys_are_recognised() {
        assert!(is_encrypted(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n"));
        assert!(is_encrypted(
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n"
        ));
        assert!(!is_encrypted(b"-----BEGIN PRIVATE KEY-----\nAAAA\n"));
    }

    #[test]
    fn missing_files_are_named() {
        let e = TlsSettings::load(Path::new("/nonexistent/rest.pem"), None, None, VerifyClient::None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("restapi.certfile /nonexistent/rest.pem: cannot read it"),
            "{e}"
        );
        let c = ClientTls {
            cafile: Some("/nonexistent/ca.pem".into()),
            ..ClientTls::default()
        };
        let e = c.config().unwrap_err();
        assert!(
            e.to_string().starts_with("CA file /nonexistent/ca.pem: cannot read it"),
            "{e}"
        );
    }

    #[test]
    fn insecure_client_needs_no_files() {
        let c = ClientTls {
            insecure: true,
            ..ClientTls::default()
        };
        assert!(c.config().is_ok());
    }
}
