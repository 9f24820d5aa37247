//! HTTPS with optional client certificates (RFC 8705). A client that presents a
//! certificate proves possession of its key in the TLS handshake; Steward does not judge
//! the certificate's issuer here — identities pin their certificates by SHA-256 thumbprint
//! (`credentials.tls_certificates`), which the token endpoint checks
//! (`self_signed_tls_client_auth`) and binds tokens to (`cnf.x5t#S256`).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::AppState;
use crate::ConfigError;

/// The `[tls]` settings, validated.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert_file: PathBuf,
    /// PEM private key of the server (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The SHA-256 thumbprint (base64url) of the client certificate of this connection, as a
/// request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate(pub String);

/// Makes aws-lc-rs the process-wide rustls provider (the HTTP client fetching issuer keys
/// uses it too). Harmless if already done.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The RFC 8705 thumbprint of a DER certificate.
pub fn thumbprint(der: &[u8]) -> String {
    steward_token::certificate_thumbprint(der)
}

/// Asks every client for a certificate, accepts any (the handshake proves the key), and
/// leaves the decision to the token endpoint's pinning.
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn client_auth_mandatory(&self) -> bool {
        false
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

/// The rustls server configuration for `tls`.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        field: "tls",
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| {
            invalid(format!(
                "cannot read the certificate chain `{}`: {e}",
                tls.cert_file.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "`{}` holds no certificate",
            tls.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| {
        invalid(format!(
            "cannot read the private key `{}`: {e}",
            tls.key_file.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(AnyClientCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            invalid(format!(
                "the certificate and key do not form a usable pair: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves the API over TLS on `listener` until `shutdown` completes. Each request carries
/// the connection's [`PeerCertificate`] when the client presented one.
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let streams = state.clone();
    let limits = state.inner.listen_limits;
    let router = steward_listen::with_body_deadline(crate::router(state), limits.body_read);
    let builder = steward_listen::http_builder(&limits);
    // The connection cap of the plain listener: a slot is taken before accepting.
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return Ok(()),
            },
            () = &mut shutdown => {
                streams.close_streams();
                return Ok(());
            }
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => {
                streams.close_streams();
                return Ok(());
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, router, builder) = (acceptor.clone(), router.clone(), builder.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(limits.header_read, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| PeerCertificate(thumbprint(c)));
            let service = router.map_request(move |mut req: Request<hyper::body::Incoming>| {
                if let Some(c) = &cert {
                    req.extensions_mut().insert(c.clone());
                }
                req
            });
            let service = hyper_util::service::TowerToHyperService::new(service);
            if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
