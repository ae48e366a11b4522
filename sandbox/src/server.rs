//! The HTTPS server: TLS (with and without ALPN), HTTP/1.1 with upgrades and HTTP/2 on the same
//! port, bearer-token authentication, the request log, and the state-directory files clients
//! use (`ca.crt`, `token`, `kubeconfig`, `requests.jsonl`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::Instrument as _;

use crate::cluster::Cluster;
use crate::config::SandboxConfig;
use crate::ctx::Ctx;
use crate::requests::{Authorization, RequestLog, RequestRecord};
use crate::respond::{self, Body};
use crate::tls;

/// Why the sandbox could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration")]
    Config(#[from] crate::config::ConfigError),
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the listener's address")]
    LocalAddr(#[source] std::io::Error),
    #[error("writing {path}")]
    StateFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("preparing TLS")]
    Tls(#[from] tls::TlsError),
    #[error("accepting connections")]
    Accept(#[source] std::io::Error),
    #[error("the server task failed")]
    Join(#[from] tokio::task::JoinError),
}

/// Authenticates, routes and logs one request.
async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let auth = ctx.authorization(&req);
    let mut record = RequestRecord::from_request(&req, auth);
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path());
    let resp = async {
        if auth != Authorization::Valid {
            tracing::info!(?auth, "unauthorized");
            return respond::status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
        }
        crate::api::route(&ctx, req).await
    }
    .instrument(span)
    .await;
    record.status = resp.status().as_u16();
    tracing::debug!(status = record.status, path = %record.path, "answered");
    ctx.log.push(record);
    Ok(resp)
}

/// A sandbox bound and ready to serve, before its accept loop runs.
struct Prepared {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    ctx: Arc<Ctx>,
    info: Info,
}

/// What a started sandbox tells its users.
#[derive(Debug, Clone)]
struct Info {
    addr: SocketAddr,
    ca_pem: String,
    token: String,
    kubeconfig_path: PathBuf,
    state_dir: PathBuf,
    requests: RequestLog,
}

fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |source| Error::StateFile {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(err)?;
    f.write_all(contents).map_err(err)
}

/// A kubeconfig with one cluster, user and context, all named `kubetape-sandbox`.
pub(crate) fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: kubetape-sandbox\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n\
         - name: kubetape-sandbox\n  user:\n    token: {token}\n\
         contexts:\n\
         - name: kubetape-sandbox\n  context:\n    cluster: kubetape-sandbox\n    user: kubetape-sandbox\n    namespace: default\n\
         current-context: kubetape-sandbox\n"
    )
}

impl Prepared {
    fn new(listener: TcpListener, config: &SandboxConfig, state_dir: &Path) -> Result<Self, Error> {
        config.validate()?;
        let addr = listener.local_addr().map_err(Error::LocalAddr)?;
        let tls = tls::generate(addr.ip())?;
        std::fs::create_dir_all(state_dir).map_err(|source| Error::StateFile {
            path: state_dir.to_path_buf(),
            source,
        })?;
        // Clients reach an unspecified (0.0.0.0) listener via loopback.
        let host = if addr.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        } else {
            addr
        };
        let kubeconfig_path = state_dir.join("kubeconfig");
        write_file(&state_dir.join("ca.crt"), tls.ca_pem.as_bytes(), false)?;
        write_file(&state_dir.join("token"), config.token.as_bytes(), true)?;
        write_file(
            &kubeconfig_path,
            kubeconfig(&format!("https://{host}"), &tls.ca_pem, &config.token).as_bytes(),
            true,
        )?;
        let log_path = state_dir.join("requests.jsonl");
        let requests = RequestLog::with_file(&log_path).map_err(|source| Error::StateFile {
            path: log_path,
            source,
        })?;
        let cluster = Cluster::start(config);
        let ctx = Arc::new(Ctx::new(
            cluster,
            config.modes.clone(),
            config.token.clone(),
            requests.clone(),
        ));
        Ok(Self {
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(tls.config),
            ctx,
            info: Info {
                addr: host,
                ca_pem: tls.ca_pem,
                token: config.token.clone(),
                kubeconfig_path,
                state_dir: state_dir.to_path_buf(),
                requests,
            },
        })
    }

    async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let Self {
            listener,
            acceptor,
            ctx,
            info,
        } = self;
        tracing::info!(addr = %info.addr, pods = ctx.cluster.pods().len(), "sandbox serving");
        tokio::pin!(shutdown);
        let result = loop {
            let (tcp, peer) = tokio::select! {
                () = &mut shutdown => break Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    // Out of file descriptors and the like: transient for a test server.
                    Err(e) if is_transient(&e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                    Err(e) => break Err(Error::Accept(e)),
                },
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, conn_ctx) = (acceptor.clone(), ctx.clone());
            ctx.spawn(
                async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(t) => t,
                        Err(e) => return tracing::debug!(error = %e, "TLS handshake failed"),
                    };
                    let svc = service_fn(move |req| handle(conn_ctx.clone(), req));
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    if let Err(e) = builder
                        .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                        .await
                    {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                .instrument(tracing::debug_span!("conn", %peer)),
            );
        };
        tracing::info!("sandbox shutting down");
        ctx.abort_tasks();
        ctx.cluster.stop();
        result
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e.raw_os_error().is_some_and(|c| c == 23 || c == 24) // ENFILE, EMFILE
}

/// Serves the sandbox on `listener` until `shutdown` resolves, then kills every pod process.
/// Writes `ca.crt`, `token`, `kubeconfig` and `requests.jsonl` into `state_dir` first.
pub async fn run(
    listener: TcpListener,
    config: SandboxConfig,
    state_dir: &Path,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    Prepared::new(listener, &config, state_dir)?
        .serve(shutdown)
        .await
}

/// A running sandbox. Dropping it stops the server (asynchronously); [`Sandbox::shutdown`]
/// stops it and waits.
#[derive(Debug)]
pub struct Sandbox {
    /// Where it listens (loopback if bound to an unspecified address).
    pub addr: SocketAddr,
    /// The CA certificate (PEM) that signed the server certificate.
    pub ca_pem: String,
    /// The bearer token every request must carry.
    pub token: String,
    /// `state_dir/kubeconfig`: server, CA and token, for kubectl's `--kubeconfig`.
    pub kubeconfig_path: PathBuf,
    pub state_dir: PathBuf,
    /// Every request so far (also in `state_dir/requests.jsonl`).
    pub requests: RequestLog,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), Error>>>,
}

impl Sandbox {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops accepting, ends every connection and kills every pod process.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds `listen` (use port 0 for an ephemeral port), writes the state files and serves in a
/// background task.
pub async fn start(
    config: SandboxConfig,
    listen: SocketAddr,
    state_dir: &Path,
) -> Result<Sandbox, Error> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
    let prepared = Prepared::new(listener, &config, state_dir)?;
    let info = prepared.info.clone();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(prepared.serve(async {
        let _ = stopped.await;
    }));
    Ok(Sandbox {
        addr: info.addr,
        ca_pem: info.ca_pem,
        token: info.token,
        kubeconfig_path: info.kubeconfig_path,
        state_dir: info.state_dir,
        requests: info.requests,
        stop: Some(stop),
        task: Some(task),
    })
}
