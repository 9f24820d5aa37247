//! The floor of a latency measurement: a server that does no work, shaped like the control
//! plane (axum on its own two-worker runtime), answering every request with a fixed
//! decision. Driven by the same load at the same rate as the real server, it shows what
//! the machine, the kernel's loopback and the load generator cost by themselves — the
//! part of a p99 no change to Steward can remove.

use anyhow::{Context, Result};

/// A running floor server; stops when dropped.
pub struct Floor {
    /// `http://127.0.0.1:port`.
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Floor {
    /// Starts the server on its own runtime: two workers, as the control plane runs.
    pub fn start() -> Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("floor".into())
            .spawn(move || {
                let ready = &ready_tx;
                let served = (|| -> Result<()> {
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .thread_name("floor")
                        .enable_all()
                        .build()?;
                    rt.block_on(async move {
                        // Reads the body, as a real decision must, then answers.
                        let app = axum::Router::new().fallback(|_body: axum::body::Bytes| async {
                            (
                                [("content-type", "application/json")],
                                "{\"decision\":true}",
                            )
                        });
                        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                        let _ = ready.send(Ok(format!("http://{}", listener.local_addr()?)));
                        axum::serve(listener, app)
                            .with_graceful_shutdown(async {
                                let _ = stop_rx.await;
                            })
                            .await?;
                        Ok(())
                    })
                })();
                if let Err(e) = served {
                    let _ = ready_tx.send(Err(e));
                }
            })?;
        let base = ready_rx
            .recv()
            .context("the floor server did not start")??;
        Ok(Self {
            base,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
