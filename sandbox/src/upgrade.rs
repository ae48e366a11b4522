//! HTTP/1.1 upgrades, as every streaming subresource (exec, attach, port-forward) answers
//! them: the 101 response, the session task on the upgraded connection (aborted at shutdown),
//! and the batched writer the SPDY sessions use.

use std::future::Future;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::ctx::Ctx;
use crate::respond::{self, Body};

/// Coalesce queued frames into writes of about this size.
const WRITE_BATCH: usize = 64 << 10;

/// Whether `Connection` lists `upgrade`.
pub(crate) fn connection_upgrade<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
}

/// The `Upgrade` header, lowercased (empty without one).
pub(crate) fn upgrade_kind<B>(req: &Request<B>) -> String {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Answers 101 (`Connection: Upgrade`, `Upgrade: <upgrade>`; the caller adds its protocol's
/// headers) and runs `session` on the upgraded connection in a task that shutdown aborts.
pub(crate) fn switch_protocols<F, Fut>(
    ctx: &Ctx,
    req: &mut Request<Incoming>,
    span: tracing::Span,
    upgrade: &'static str,
    session: F,
) -> Response<Body>
where
    F: FnOnce(TokioIo<Upgraded>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let on_upgrade = hyper::upgrade::on(req);
    ctx.spawn(
        async move {
            match on_upgrade.await {
                Ok(upgraded) => session(TokioIo::new(upgraded)).await,
                Err(e) => tracing::warn!(error = %e, "upgrade failed"),
            }
        }
        .instrument(span),
    );
    let mut resp = Response::new(respond::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static(upgrade));
    resp
}

/// Writes what `rx` yields, coalescing what is queued into batches, until every sender is gone;
/// then shuts the write side.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(mut batch) = rx.recv().await {
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if wr.write_all(&batch).await.is_err() || wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}
