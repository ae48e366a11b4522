//! The operations listener: plain HTTP on its own address (`[ops] listen`), for the kubelet's
//! probes and Prometheus, never for kubectl. Kept off the TLS port so probes need no client
//! certificate or token, and so a flood of the public port cannot starve them.
//!
//! | path | answers |
//! |---|---|
//! | `/healthz` | 200 while the process serves requests at all (liveness: restart only a wedged process) |
//! | `/readyz` | 200 when it should get traffic: policy loaded, store writable, revocation list fresh, not draining; else 503 naming what is wrong |
//! | `/metrics` | Prometheus text format ([`metrics`]) |
//!
//! Liveness deliberately ignores the store: a store outage must make every replica unready (so
//! nobody sends it new sessions), not restart them all (which would cut live ones).

pub mod health;
pub mod metrics;
pub mod store;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::state::State;

pub use crate::config::OpsConfig;

/// Serves the operations endpoints on `listener` until `stop` resolves.
pub async fn serve(listener: TcpListener, state: Arc<State>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "ops listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&state, &req)) }
            });
            let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            b.http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(5));
            let _ = b.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

fn answer(state: &State, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let text = |code: StatusCode, body: String| {
        Response::builder()
            .status(code)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts")
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/healthz" | "/livez" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match health::readiness(state) {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(problems) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                problems.iter().map(|p| format!("{p}\n")).collect(),
            ),
        },
        "/metrics" => {
            health::refresh_gauges(state);
            Response::builder()
                .status(StatusCode::OK)
                .header(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )
                .body(Full::new(Bytes::from(state.metrics.encode())))
                .expect("static response parts")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /healthz, /readyz, /metrics\n".into(),
        ),
    }
}
