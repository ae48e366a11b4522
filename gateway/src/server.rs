//! The HTTPS front door: accept, TLS, HTTP/1.1 (with upgrades) and HTTP/2 on one port, then
//! every request goes to [`crate::dispatch`].
//!
//! Connections run on tasks of their own, tracked so that a shutdown can first stop
//! accepting, then ask every connection to finish gracefully (HTTP/1 closes after the
//! response in flight, HTTP/2 sends GOAWAY) and wait for them, bounded by the drain deadline.
//! Upgraded streams (exec/attach) leave hyper's hands at the 101; the drain of
//! [`crate::session`] ends those.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::State;

/// The connections being served, and the signal that asks them to finish.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    tracker: TaskTracker,
    closing: CancellationToken,
}

impl Connections {
    /// Asks every connection to finish its request in flight and close.
    pub fn close(&self) {
        self.tracker.close();
        self.closing.cancel();
    }

    /// Resolves once [`Self::close`] was called and every connection has ended.
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }

    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}

/// Accepts until `stop` resolves; connections keep running on `connections`' tasks.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    connections: Connections,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut stop => return Ok(()),
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let closing = connections.closing.clone();
        connections.tracker.spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(crate::dispatch::handle(&state, req, peer).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::pin!(conn);
            let served = tokio::select! {
                served = conn.as_mut() => served,
                () = closing.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
