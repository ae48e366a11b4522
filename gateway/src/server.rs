//! The HTTPS front door: accept, TLS, HTTP/1.1 (with upgrades) and HTTP/2 on one port, then
//! every request goes to [`crate::dispatch`].
//!
//! Nothing a client does before it is authenticated may stop the gateway or starve the
//! sessions it serves ([`crate::limits`]): an `accept()` error is logged and backed off, never
//! fatal; every connection takes a permit of the total and per-client caps before anything is
//! read from it; the TLS handshake and the first request's headers must come within the
//! handshake timeout, and a connection with no request in flight is closed after the idle
//! timeout.
//!
//! Connections run on tasks of their own, tracked so that a shutdown can stop accepting, ask
//! every connection to finish gracefully (HTTP/1 closes after the response in flight, HTTP/2
//! sends GOAWAY) and wait for them, bounded by the drain deadline. Upgraded streams
//! (exec/attach) leave hyper's hands at the 101 and keep their connection's permit; the drain
//! of [`crate::session`] ends those.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, header};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limits::{Admission, ConnectionPermit, Limits, Permit};
use crate::state::State;
use crate::status::{self, Body};

/// How long a connection asked to close (idle, handshake timeout, drain) may take to do so
/// before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

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
    limits: Limits,
    connections: Connections,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut backoff = Backoff::default();
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff.reset();
                    a
                }
                Err(e) => {
                    backoff.wait(&e).await;
                    continue;
                }
            },
            () = &mut stop => return Ok(()),
        };
        match limits.admit(peer.ip()) {
            Admission::Serve(permit) => {
                let _ = tcp.set_nodelay(true);
                connections.tracker.spawn(connection(
                    tcp,
                    peer,
                    acceptor.clone(),
                    state.clone(),
                    limits.clone(),
                    permit,
                    connections.closing.clone(),
                ));
            }
            Admission::Refuse(slot) => {
                let acceptor = acceptor.clone();
                let max = limits.max_connections();
                tokio::spawn(async move {
                    refuse(tcp, acceptor, max).await;
                    drop(slot);
                });
            }
            // Closed at once: the backlog keeps draining for everyone else.
            Admission::Drop => drop(tcp),
        }
    }
}

/// Backs off on `accept()` errors: running out of file descriptors (or memory) must slow the
/// loop down, never end it, and is said once per episode rather than per attempt.
#[derive(Debug, Default)]
struct Backoff {
    delay: Duration,
    failures: u64,
}

impl Backoff {
    async fn wait(&mut self, e: &std::io::Error) {
        let exhausted = matches!(
            e.raw_os_error(),
            Some(
                libc_errno::EMFILE | libc_errno::ENFILE | libc_errno::ENOBUFS | libc_errno::ENOMEM
            )
        );
        self.failures += 1;
        if !exhausted {
            // A connection reset before it was accepted: nothing to wait for.
            tracing::debug!(error = %e, "accept failed");
            return;
        }
        if self.failures == 1 {
            tracing::error!(error = %e, "cannot accept connections (out of file descriptors or memory); backing off, live sessions continue");
        }
        self.delay = (self.delay * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::time::sleep(self.delay).await;
    }

    fn reset(&mut self) {
        if self.failures > 0 && !self.delay.is_zero() {
            tracing::warn!(failures = self.failures, "accepting connections again");
        }
        self.failures = 0;
        self.delay = Duration::ZERO;
    }
}

/// errno values `accept()` reports when a resource is exhausted.
mod libc_errno {
    pub const EMFILE: i32 = 24;
    pub const ENFILE: i32 = 23;
    pub const ENOBUFS: i32 = 105;
    pub const ENOMEM: i32 = 12;
}

/// Requests in flight on one connection, and since when it has been idle.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Option<Instant>>,
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            // No request yet: the handshake timeout, not the idle one, applies.
            idle_since: Mutex::new(None),
            changed: Notify::new(),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        InFlight(self.clone())
    }

    /// Resolves when the connection should be closed: no first request within
    /// `handshake_deadline`, or no request in flight for `idle`.
    async fn expired(&self, handshake_deadline: Instant, idle: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let busy = self.in_flight.load(Ordering::SeqCst) > 0;
            let since = *self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
            let deadline = match (busy, since) {
                (true, _) => None,
                (false, None) => Some(handshake_deadline),
                (false, Some(t)) => Some(t + idle),
            };
            match deadline {
                Some(d) if d <= Instant::now() => return,
                Some(d) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(d) => {}
                        () = &mut changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// One request in flight; its response body holds it until the body is done (a watch or a
/// `logs -f` is in flight for as long as it streams).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// A response body that keeps its request counted as in flight until it is done.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = status::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // Also bounds how long an idle keep-alive connection waits for its next request.
        .header_read_timeout(limits.handshake_timeout);
    b.http2()
        .timer(TokioTimer::new())
        // Finds peers that vanished without a FIN (kubectl keeps one HTTP/2 connection open).
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    limits: Limits,
    permit: Permit,
    closing: CancellationToken,
) {
    let handshake_deadline = Instant::now() + limits.handshake_timeout;
    let tls = match tokio::time::timeout_at(
        handshake_deadline,
        acceptor.accept(crate::read_ahead::ReadAhead::new(tcp)),
    )
    .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let permit = ConnectionPermit::new(permit);
    let activity = Activity::new();
    let service = {
        let activity = activity.clone();
        service_fn(move |mut req| {
            let state = state.clone();
            let in_flight = activity.begin();
            req.extensions_mut().insert(permit.clone());
            async move {
                let resp = crate::dispatch::handle(&state, req, peer).await;
                Ok::<_, Infallible>(resp.map(|inner| Tracked {
                    inner,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let builder = builder(&limits);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let why = tokio::select! {
        served = conn.as_mut() => {
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        () = closing.cancelled() => "drain",
        () = activity.expired(handshake_deadline, limits.idle_timeout) => "idle or silent",
    };
    tracing::debug!(%peer, why, "closing the connection");
    conn.as_mut().graceful_shutdown();
    // A drain lets the request in flight finish (bounded by the drain deadline); an idle
    // connection has none, and one that never sent a request gets a short grace.
    let grace = if why == "drain" {
        Duration::MAX
    } else {
        CLOSE_GRACE
    };
    match tokio::time::timeout(grace, conn).await {
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
        Ok(Ok(())) => {}
        Err(_) => tracing::debug!(%peer, "connection did not close in time; dropped"),
    }
}

/// Answers one request on a connection over the total cap with a 503 that says why, then
/// closes; bounded in time, as the refusal itself must not become a way to hold a socket.
async fn refuse(tcp: TcpStream, acceptor: tokio_rustls::TlsAcceptor, max: usize) {
    let refused = async {
        let Ok(tls) = acceptor.accept(tcp).await else {
            return;
        };
        let service = service_fn(move |_req| async move {
            let mut resp: Response<Body> = status::unavailable(format!(
                "kubetape: the gateway is serving its maximum of {max} connections; try again shortly"
            ));
            resp.headers_mut()
                .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
            resp.headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            Ok::<_, Infallible>(resp)
        });
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http1().keep_alive(false);
        let _ = b.serve_connection(TokioIo::new(tls), service).await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), refused).await;
}
