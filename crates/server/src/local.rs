//! A control plane serving on a loopback port inside this process: what the demo, the
//! benchmarks and the tests start, built one way so they exercise what `steward serve`
//! runs.

use std::net::SocketAddr;

use steward_store::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::tokens::StartError;
use crate::{AppState, ServerConfig};

/// A running in-process control plane. Dropping it stops serving; [`LocalServer::stop`]
/// also waits for the drain and closes the store.
pub struct LocalServer {
    /// `http://<addr>`, or `https://<addr>` when the configuration has a `[tls]` section.
    pub base: String,
    pub addr: SocketAddr,
    /// The bootstrap central-admin credential (the store was fresh).
    pub admin_token: String,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl LocalServer {
    /// Opens the store `config` names and serves it (see [`LocalServer::start_on`]).
    pub async fn start(config: ServerConfig) -> Result<Self, StartError> {
        let store = crate::open_store(&config).await?;
        Self::start_on(store, config).await
    }

    /// Bootstraps the first admin credential of the fresh `store`, binds `config.listen`
    /// (port 0 picks one; the token issuer follows the bound address) and serves, over
    /// TLS when configured, as `steward serve` does.
    pub async fn start_on(store: Store, mut config: ServerConfig) -> Result<Self, StartError> {
        let admin_token = crate::bootstrap(&store)
            .await?
            .ok_or(StartError::NotFresh)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        config.tokens.listening_on(addr);
        let tls = match &config.tls {
            Some(t) => Some(crate::tls::server_config(t)?),
            None => None,
        };
        let state = AppState::new(store, &config).await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = match tls {
            Some(tls) => tokio::spawn(crate::tls::serve_tls(listener, state.clone(), tls, stopped)),
            None => tokio::spawn(crate::serve(listener, state.clone(), stopped)),
        };
        Ok(Self {
            base: format!("{scheme}://{addr}"),
            addr,
            admin_token,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The store it serves.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Stops serving, waits for open requests to finish and closes the store.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.map_err(std::io::Error::other)??;
        }
        self.state.store.close().await;
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
