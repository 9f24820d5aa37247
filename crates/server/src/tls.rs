//! HTTPS with optional client certificates (RFC 8705). TLS serving itself lives in
//! `steward_listen::tls`, shared with the gateway; this module holds the `[tls]` settings
//! and what the token endpoint reads from a client certificate. A client that presents
//! one proves possession of its key in the handshake; identities pin their certificates
//! by SHA-256 thumbprint (`credentials.tls_certificates`), which the token endpoint
//! checks (`self_signed_tls_client_auth`) and binds tokens to (`cnf.x5t#S256`).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use steward_listen::tls::{ClientCertificate, install_crypto_provider};

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

/// The thumbprint of the client certificate a request's connection presented, as the
/// token and introspection endpoints take it.
pub(crate) fn peer_thumbprint(peer: Option<&axum::Extension<ClientCertificate>>) -> Option<String> {
    peer.map(|c| steward_token::certificate_thumbprint(c.0.der()))
}

/// The rustls server configuration for `tls`: any client certificate is asked for and
/// none required (the token endpoint decides what one proves).
pub fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    steward_listen::tls::server_config(
        &tls.cert_file,
        &tls.key_file,
        steward_listen::tls::ClientCertificates::Optional,
    )
    .map_err(|e| ConfigError::Invalid {
        field: "tls",
        message: e.to_string(),
    })
}

/// Serves the API over TLS on `listener` until `shutdown` completes, then drains, within
/// the same limits as the plain listener. Each request carries the connection's
/// [`ClientCertificate`] when the client presented one.
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = state.hub.clone();
    let limits = state.inner.listen_limits;
    steward_listen::tls::serve_tls(listener, crate::router(state), limits, config, async move {
        shutdown.await;
        // Revocation streams never end on their own; end them so the drain can finish.
        hub.close();
    })
    .await
}
