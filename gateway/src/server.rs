//! The HTTPS front door: TLS, HTTP/1.1 (with upgrades) and HTTP/2, then for every request
//! authenticate → authorize → relay a stream or proxy the call → audit line.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use storage_schema::store::Store;
use storage_schema::{FlushPolicy, Keyring};
use tokio::net::TcpListener;

use crate::access::{self, AccessList, Decision};
use crate::authn::Authenticator;
use crate::status::{self, Body};
use crate::upstream::{self, Impersonation};
use crate::{proxy, relay};

/// Everything a request handler needs; shared by all connections.
pub struct State {
    pub authn: Authenticator,
    pub access: AccessList,
    pub upstream: kube::Client,
    pub store: Store,
    pub keyring: Keyring,
    pub flush: FlushPolicy,
    pub cluster: String,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("cluster", &self.cluster)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Serves until `shutdown` resolves. Connections in flight keep running on their own tasks.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req, peer).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

async fn handle(state: &State, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (user, decision, resp) = decide_and_dispatch(state, req, peer).await;
    tracing::info!(
        target: "kubetape::audit",
        %peer, user = %user, %method, %path, decision = %decision,
        status = resp.status().as_u16(), latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

async fn decide_and_dispatch(
    state: &State,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> (String, String, Response<Body>) {
    let Some(token) = upstream::bearer_token(req.headers()) else {
        return (
            "-".into(),
            "unauthenticated".into(),
            status::unauthorized(
                "kubetape: no bearer token; use a kubeconfig whose user runs kubetape's credential plugin",
            ),
        );
    };
    let identity = match state.authn.authenticate(&token).await {
        Ok(id) => id,
        Err(e) => {
            return (
                "-".into(),
                format!("unauthenticated: {e}"),
                status::unauthorized(format!("kubetape: {e}")),
            );
        }
    };
    drop(token);
    let path = req.uri().path().to_string();
    let scope = access::scope_of(&path);
    let rule = match state
        .access
        .decide(&identity.user, &identity.groups, &scope)
    {
        Decision::Allow { rule } => rule,
        Decision::Deny { reason } => {
            return (
                identity.user.clone(),
                "denied".into(),
                status::forbidden(reason),
            );
        }
    };
    let resp = if let Some(target) = proto::exec::parse_path(&path) {
        match target.subresource {
            proto::exec::Subresource::Exec | proto::exec::Subresource::Attach => {
                relay::handle(state, req, &identity, target, peer).await
            }
            proto::exec::Subresource::PortForward => status::forbidden(
                "kubetape: port-forward is not available through this gateway yet (it cannot be recorded)",
            ),
        }
    } else if req.headers().contains_key(header::UPGRADE) {
        status::bad_request("kubetape: only exec and attach may upgrade the connection")
    } else {
        let who = Impersonation {
            user: identity.user.clone(),
            groups: identity.groups.clone(),
            session: None,
        };
        proxy::forward(&state.upstream, req, &who).await
    };
    (identity.user, format!("allowed by {rule}"), resp)
}
