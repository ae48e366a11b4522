//! The cluster side of exec/attach: WebSocket `v5.channel.k8s.io` first, SPDY/3.1 when the
//! cluster will not give v5 — what kubectl itself does, so every cluster kubectl can exec
//! into, the gateway can too.
//!
//! ```text
//! GET  …/exec  Upgrade: websocket  Sec-WebSocket-Protocol: v5.channel.k8s.io   (only v5)
//!   101 v5 ─────────────────────────────► WebSocket upstream (stdin EOF = [255, 0])
//!   anything else (403/400 refusal, 101 with another protocol, proxy error)
//!        ▼
//! POST …/exec  Upgrade: SPDY/3.1  X-Stream-Protocol-Version: v4.channel.k8s.io
//!   101 v4 ─────────────────────────────► SPDY upstream (stdin EOF = DATA+FIN)
//!   4xx/5xx ────────────────────────────► refused: the cluster's Status, `kubetape:`-prefixed
//! ```
//! v5 alone is offered over WebSocket: a cluster that speaks only v4 there (a kubelet reached
//! without the API server's stream translator) cannot be told that stdin ended, short of
//! closing the whole socket and losing the output still to come; over SPDY it can. Offering v4
//! and dropping it after the upgrade would not do either: the command would already have
//! started once.
//!
//! Both kinds are presented to the pump the same way ([`Upstream`]): binary messages of v5
//! channel frames (`[channel] ++ payload`), so the relay loop is one for both. The SPDY side runs
//! as a task of its own translating frames ([`spdy`]).

mod spdy;

use std::pin::Pin;

use futures::{Sink, SinkExt, Stream, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use proto::exec::StreamOptions;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::status::{self, Body};

/// What the pump writes upstream: v5 channel frames as binary messages, pings, a close.
pub(crate) type UpSink = Pin<Box<dyn Sink<Message, Error = String> + Send>>;
/// What the pump reads from upstream: v5 channel frames as binary messages; the end of the
/// stream is the end of the connection.
pub(crate) type UpStream = Pin<Box<dyn Stream<Item = Result<Message, String>> + Send>>;

/// An open exec/attach stream on the cluster, whichever protocol carries it.
pub(crate) struct Upstream {
    pub tx: UpSink,
    pub rx: UpStream,
    /// `websocket-v5` or `spdy-v4`, for logs.
    pub protocol: &'static str,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

const V5: &str = "v5.channel.k8s.io";
const SPDY_V4: &str = "v4.channel.k8s.io";
/// tungstenite allocates its read buffer whole when the stream is made and zero-fills it on
/// every read, so all of it is resident for as long as the session lives, idle or not: its
/// 128 KiB default was half of an idle session's memory (the idle bench:
/// `cargo bench -p tests --bench idle`). Bulk output is read in more, smaller copies out of
/// rustls's plaintext buffer, not in more system calls.
const UPSTREAM_READ_BUFFER: usize = 8 << 10;

/// Why one upgrade attempt did not give a stream.
#[derive(Debug)]
enum Attempt {
    /// The cluster answered without upgrading (or upgraded to the wrong protocol): its code and
    /// Status message, if it sent one.
    Refused {
        code: StatusCode,
        reason: String,
        message: String,
    },
    /// No answer at all (connection, TLS).
    Failed(String),
}

impl Attempt {
    fn describe(&self) -> String {
        match self {
            Attempt::Refused { code, message, .. } if message.is_empty() => {
                format!("HTTP {}", code.as_u16())
            }
            Attempt::Refused { code, message, .. } => format!("HTTP {}: {message}", code.as_u16()),
            Attempt::Failed(e) => e.clone(),
        }
    }
}

/// Opens the stream as `headers` (already the caller's impersonation and the allow-listed
/// client headers) on `path_and_query`: WebSocket v5, else SPDY. A refusal is answered with the
/// cluster's own code and a `kubetape:` message saying what was tried.
pub(crate) async fn dial(
    client: &kube::Client,
    path_and_query: &str,
    headers: &http::HeaderMap,
    opts: &StreamOptions,
) -> Result<Upstream, Response<Body>> {
    let ws = match websocket(client, path_and_query, headers).await {
        Ok(up) => return Ok(up),
        Err(a) => a,
    };
    tracing::info!(websocket = %ws.describe(), "the cluster did not open a v5 WebSocket stream; trying SPDY");
    match spdy(client, path_and_query, headers, opts).await {
        Ok(up) => Ok(up),
        Err(Attempt::Refused {
            code,
            reason,
            message,
        }) => {
            // The cluster's answer to the protocol it does speak is the one that matters: a
            // missing pod, an RBAC denial. Said as the cluster said it, after what was tried.
            let text = if message.is_empty() {
                format!("HTTP {}", code.as_u16())
            } else {
                message
            };
            Err(status::respond(
                code,
                &reason,
                format!(
                    "kubetape: the cluster refused the stream over WebSocket v5 ({}) and over SPDY/3.1: {text}",
                    ws.describe()
                ),
            ))
        }
        Err(Attempt::Failed(e)) => {
            tracing::warn!(error = %e, "upstream stream dial failed");
            Err(status::unavailable(format!(
                "kubetape: cannot open the stream on the cluster (WebSocket v5: {}; SPDY/3.1: {e})",
                ws.describe()
            )))
        }
    }
}

/// Sends an upgrade request; on 101 the upgraded connection and the response headers.
async fn upgrade(
    client: &kube::Client,
    req: Request<kube::client::Body>,
) -> Result<(hyper::upgrade::Upgraded, http::HeaderMap), Attempt> {
    let resp = client
        .send(req)
        .await
        .map_err(|e| Attempt::Failed(e.to_string()))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let code = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let (reason, message) = match proto::status::Status::parse(&body) {
            Ok(s) => (s.reason.clone(), s.message.clone()),
            Err(_) => (
                code.canonical_reason()
                    .unwrap_or("Unknown")
                    .replace(' ', ""),
                String::from_utf8_lossy(&body[..body.len().min(512)])
                    .trim()
                    .to_string(),
            ),
        };
        return Err(Attempt::Refused {
            code,
            reason,
            message,
        });
    }
    let headers = resp.headers().clone();
    let upgraded = hyper::upgrade::on(resp)
        .await
        .map_err(|e| Attempt::Failed(format!("upgrade: {e}")))?;
    Ok((upgraded, headers))
}

fn request(
    method: http::Method,
    path_and_query: &str,
    headers: &http::HeaderMap,
) -> Request<kube::client::Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path_and_query)
        .body(kube::client::Body::empty())
        .expect("path from a valid URI");
    *req.headers_mut() = headers.clone();
    req.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    req
}

async fn websocket(
    client: &kube::Client,
    path_and_query: &str,
    headers: &http::HeaderMap,
) -> Result<Upstream, Attempt> {
    use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
    let key = generate_key();
    let mut req = request(http::Method::GET, path_and_query, headers);
    let h = req.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    h.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_str(&key).expect("base64 key"),
    );
    h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(V5));
    let (upgraded, resp_headers) = upgrade(client, req).await?;
    let protocol = resp_headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let accept = resp_headers
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if protocol != V5 || accept != derive_accept_key(key.as_bytes()) {
        // Upgraded to something else: not a stream we can use, and not one kubectl would.
        return Err(Attempt::Refused {
            code: StatusCode::SWITCHING_PROTOCOLS,
            reason: "BadProtocol".into(),
            message: format!("upgraded to {protocol:?}, not {V5}"),
        });
    }
    let ws = WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        Role::Client,
        Some(WebSocketConfig::default().read_buffer_size(UPSTREAM_READ_BUFFER)),
    )
    .await;
    let (tx, rx) = ws.split();
    Ok(Upstream {
        tx: Box::pin(tx.sink_map_err(|e| e.to_string())),
        rx: Box::pin(rx.map(|m| m.map_err(|e| e.to_string()))),
        protocol: "websocket-v5",
    })
}

async fn spdy(
    client: &kube::Client,
    path_and_query: &str,
    headers: &http::HeaderMap,
    opts: &StreamOptions,
) -> Result<Upstream, Attempt> {
    let mut req = request(http::Method::POST, path_and_query, headers);
    let h = req.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(SPDY_V4),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    let (upgraded, resp_headers) = upgrade(client, req).await?;
    let protocol = resp_headers
        .get("x-stream-protocol-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if protocol != SPDY_V4 {
        return Err(Attempt::Refused {
            code: StatusCode::SWITCHING_PROTOCOLS,
            reason: "BadProtocol".into(),
            message: format!("SPDY upgraded to {protocol:?}, not {SPDY_V4}"),
        });
    }
    Ok(spdy::spawn(TokioIo::new(upgraded), opts))
}
