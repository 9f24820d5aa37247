//! HTTPS with optional client certificates (RFC 8705), for every listener that serves
//! TLS: the control plane and the gateway's reverse proxies.
//!
//! A client that presents a certificate proves possession of its key in the handshake.
//! Whoever issued the certificate is not judged here: identities pin their certificates
//! by SHA-256 thumbprint, the token endpoint binds tokens to that thumbprint
//! (`cnf.x5t#S256`), and enforcement points compare it with the certificate of the
//! connection a token arrives on.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use axum::extract::Request;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::{Limits, Peer};

/// Why a TLS listener cannot be set up. Messages name the file and what to fix; they
/// never carry key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    #[error("cannot read the certificate chain `{path}`: {message}")]
    Certificate { path: String, message: String },
    #[error("`{path}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate { path: String },
    #[error("cannot read the private key `{path}` (PEM: PKCS#8, PKCS#1 or SEC1): {message}")]
    Key { path: String, message: String },
    #[error("the certificate and key do not form a usable pair: {0}")]
    Pair(String),
}

/// Whether a listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientCertificates {
    /// Never asked for: tokens bound to a certificate cannot be used here.
    None,
    /// Asked for, not required: a client without one is served like any other.
    #[default]
    Optional,
    /// Required: the handshake fails without one.
    Required,
}

/// The DER client certificate of the TLS connection a request came on, as a request
/// extension (axum routers) or in the [`Peer`] of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate(Arc<[u8]>);

impl ClientCertificate {
    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.0
    }

    /// The leaf certificate a handshake verified, if the client presented one.
    pub(crate) fn of(connection: &rustls::ServerConnection) -> Option<Self> {
        connection
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| Self(Arc::from(c.as_ref())))
    }
}

/// Makes aws-lc-rs the process-wide rustls provider (HTTP clients use it too). Harmless
/// if already done.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The rustls server configuration for a PEM certificate chain and key, offering HTTP/2
/// and HTTP/1.1 by ALPN, asking clients for certificates as `clients` says. The pair is
/// reread from its files by [`reload_certificates`] (on SIGHUP: [`reload_on_sighup`]).
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    clients: ClientCertificates,
) -> Result<Arc<rustls::ServerConfig>, ListenError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let files = Arc::new(CertificateFiles {
        current: RwLock::new(load_pair(cert_file, key_file, &provider)?),
        cert_file: cert_file.to_owned(),
        key_file: key_file.to_owned(),
        provider: provider.clone(),
    });
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ListenError::Pair(e.to_string()))?;
    let builder = match clients {
        ClientCertificates::None => builder.with_no_client_auth(),
        ClientCertificates::Optional | ClientCertificates::Required => builder
            .with_client_cert_verifier(Arc::new(AnyClientCertificate {
                algorithms: provider.signature_verification_algorithms,
                mandatory: clients == ClientCertificates::Required,
            })),
    };
    let mut config = builder.with_cert_resolver(files.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut live = RELOADABLE.lock();
    live.retain(|f| f.strong_count() > 0);
    live.push(Arc::downgrade(&files));
    Ok(Arc::new(config))
}

/// Reads and checks a PEM certificate chain and its key.
fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, ListenError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| ListenError::Certificate {
            path: cert_file.display().to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ListenError::NoCertificate {
            path: cert_file.display().to_string(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| ListenError::Key {
        path: key_file.display().to_string(),
        message: e.to_string(),
    })?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| ListenError::Pair(e.to_string()))?;
    let pair = CertifiedKey::new(certs, key);
    pair.keys_match()
        .map_err(|e| ListenError::Pair(e.to_string()))?;
    Ok(Arc::new(pair))
}

/// A TLS listener's certificate and key, as read from their files: what new handshakes
/// present. Rereading swaps the pair for new connections; open ones keep theirs.
#[derive(Debug)]
struct CertificateFiles {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertificateFiles {
    /// Rereads the pair; one that does not read or match leaves the one in force.
    fn reload(&self) -> Result<(), ListenError> {
        let pair = load_pair(&self.cert_file, &self.key_file, &self.provider)?;
        *self.current.write() = pair;
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// Every TLS listener's certificate files in this process, for [`reload_certificates`].
static RELOADABLE: Mutex<Vec<Weak<CertificateFiles>>> = Mutex::new(Vec::new());

/// Rereads the certificate and key of every TLS listener in this process (a renewed
/// certificate, without a restart or a dropped connection). Returns each certificate
/// file and how its reload went; a failed one keeps serving the pair it had.
pub fn reload_certificates() -> Vec<(PathBuf, Result<(), ListenError>)> {
    let live: Vec<Arc<CertificateFiles>> =
        RELOADABLE.lock().iter().filter_map(Weak::upgrade).collect();
    live.iter()
        .map(|f| (f.cert_file.clone(), f.reload()))
        .collect()
}

/// Rereads every TLS listener's certificate on each SIGHUP (as nginx and Envoy do), for
/// as long as the process runs, logging each outcome.
pub fn reload_on_sighup() -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            for (file, outcome) in reload_certificates() {
                match outcome {
                    Ok(()) => {
                        tracing::info!(certificate = %file.display(), "SIGHUP: certificate reloaded")
                    }
                    Err(e) => {
                        tracing::error!(certificate = %file.display(), error = %e, "SIGHUP: the certificate could not be reloaded; the previous one is still served")
                    }
                }
            }
        }
    }))
}

/// [`crate::serve`] over TLS: each request carries the connection's
/// [`ClientCertificate`] as an extension when the client presented one.
pub async fn serve_tls(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let router = crate::with_body_deadline(router, limits.body_read);
    crate::serve_peers(
        listener,
        &limits,
        crate::http_builder(&limits),
        Some(config),
        shutdown,
        move |peer: Peer| {
            let certificate = peer.certificate;
            let service =
                router
                    .clone()
                    .map_request(move |mut req: Request<hyper::body::Incoming>| {
                        if let Some(c) = &certificate {
                            req.extensions_mut().insert(c.clone());
                        }
                        req
                    });
            hyper_util::service::TowerToHyperService::new(service)
        },
    )
    .await
}

/// Asks every client for a certificate, accepts any whose key signed the handshake, and
/// leaves the decision to whoever pinned it (the token endpoint, the token's binding).
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    struct Files {
        _dir: tempfile::TempDir,
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        pem: String,
    }

    fn files() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        Files {
            _dir: dir,
            cert: c,
            key: k,
            pem: cert.pem(),
        }
    }

    /// The handshake is held to the head deadline, and a request sees the certificate
    /// its connection presented.
    #[tokio::test]
    async fn serves_tls_with_the_client_certificate_and_cuts_silent_handshakes() {
        install_crypto_provider();
        let f = files();
        let config = server_config(&f.cert, &f.key, ClientCertificates::Optional).unwrap();
        let router = axum::Router::new().route(
            "/who",
            axum::routing::get(|c: Option<axum::Extension<ClientCertificate>>| async move {
                c.map_or(0, |c| c.0.der().len()).to_string()
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            header_read: Duration::from_secs(1),
            ..Limits::default()
        };
        tokio::spawn(serve_tls(
            listener,
            router,
            limits,
            config,
            std::future::pending(),
        ));
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client_cert = rcgen::CertificateParams::new(vec!["client.test".to_owned()])
            .unwrap()
            .self_signed(&client_key)
            .unwrap();
        let identity = reqwest::Identity::from_pem(
            format!("{}{}", client_cert.pem(), client_key.serialize_pem()).as_bytes(),
        )
        .unwrap();
        let root = reqwest::Certificate::from_pem(f.pem.as_bytes()).unwrap();
        let with = reqwest::Client::builder()
            .add_root_certificate(root.clone())
            .identity(identity)
            .build()
            .unwrap();
        let without = reqwest::Client::builder()
            .add_root_certificate(root)
            .build()
            .unwrap();
        let url = format!("https://{addr}/who");
        let got = with.get(&url).send().await.unwrap().text().await.unwrap();
        assert_eq!(got, client_cert.der().len().to_string());
        let got = without
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(got, "0");
        // A connection that never finishes its handshake is closed at the deadline.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut silent, &mut buf),
        )
        .await;
        assert!(read.is_ok(), "a silent TLS connection was kept");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn unusable_files_say_which_and_why() {
        install_crypto_provider();
        let f = files();
        let e = server_config(&f.cert, &f.cert, ClientCertificates::None).unwrap_err();
        assert!(e.to_string().contains("private key"), "{e}");
        let e = server_config(&f.key, &f.key, ClientCertificates::None).unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        // A certificate with another certificate's key.
        let other = files();
        let e = server_config(&f.cert, &other.key, ClientCertificates::None).unwrap_err();
        assert!(e.to_string().contains("usable pair"), "{e}");
    }

    /// A certificate renewed in place is served to new connections once reloaded (what
    /// SIGHUP does); a reload of unusable files keeps the pair in force.
    #[tokio::test]
    async fn a_renewed_certificate_is_served_after_a_reload() {
        install_crypto_provider();
        let f = files();
        let config = server_config(&f.cert, &f.key, ClientCertificates::None).unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_tls(
            listener,
            router,
            Limits::default(),
            config,
            std::future::pending(),
        ));
        // A fresh client (no pooled connection) trusting only `pem`.
        let reaches = |pem: String| async move {
            reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
                .build()
                .unwrap()
                .get(format!("https://{addr}/"))
                .send()
                .await
                .is_ok()
        };
        let old = f.pem.clone();
        assert!(reaches(old.clone()).await);
        // Renewed in place: still the old one until reloaded.
        let renewed = files();
        std::fs::copy(&renewed.cert, &f.cert).unwrap();
        std::fs::copy(&renewed.key, &f.key).unwrap();
        assert!(!reaches(renewed.pem.clone()).await);
        let outcomes = reload_certificates();
        let ours = outcomes.iter().find(|(file, _)| *file == f.cert).unwrap();
        assert!(ours.1.is_ok(), "{:?}", ours.1);
        assert!(reaches(renewed.pem.clone()).await);
        assert!(!reaches(old).await);
        // A broken file: the reload says so, and the renewed pair is still served.
        std::fs::write(&f.cert, "not a certificate").unwrap();
        let outcomes = reload_certificates();
        let ours = outcomes.iter().find(|(file, _)| *file == f.cert).unwrap();
        assert!(ours.1.is_err());
        assert!(reaches(renewed.pem).await);
    }
}
