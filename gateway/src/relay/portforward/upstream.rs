//! Dialling the cluster for a forward: the WebSocket tunnel first
//! (`SPDY/3.1+portforward.k8s.io`, API servers ≥ 1.31 — and the only way through proxies that
//! pass WebSocket but not SPDY upgrades), then raw SPDY (`POST`, `Upgrade: SPDY/3.1`), which
//! every API server and kubelet speaks, when the tunnel is refused.
//!
//! kube's `Client::connect` offers only `v5/v4.channel.k8s.io`, so the handshakes are built
//! here and sent with `Client::send`, which adds the gateway's own credentials and TLS; the
//! upgraded connection comes from `hyper::upgrade::on` (kubernetes-streams.md §2.4).

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
use hyper_util::rt::TokioIo;
use proto::portforward::{PROTOCOL_V1, TUNNEL_PROTOCOL};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::wire::{Io, Ws};
use crate::status::{self, Body};

/// Largest refusal body read from the cluster (a `Status` is well under this).
const MAX_REFUSAL: usize = 64 << 10;

/// The upgraded connection to the cluster.
#[derive(Debug)]
pub(crate) enum Upstream {
    /// Boxed: a WebSocket stream is several times the size of the raw connection.
    Tunnel(Box<Ws>),
    Spdy(Io),
}

impl Upstream {
    /// How the recording names the upstream protocol.
    pub fn protocol(&self) -> &'static str {
        match self {
            Upstream::Tunnel(_) => "websocket (SPDY/3.1+portforward.k8s.io)",
            Upstream::Spdy(_) => "SPDY/3.1 (portforward.k8s.io)",
        }
    }
}

/// WebSocket limits for the tunnel: SPDY frames are split across messages anyway, and the API
/// server forwards what kubelet writes (32 KiB data frames).
pub(crate) fn tunnel_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// A non-101 answer, as the cluster gave it.
#[derive(Debug)]
struct Refused {
    code: StatusCode,
    body: bytes::Bytes,
}

impl Refused {
    /// Whether the answer refuses the protocol rather than the request: an API server without
    /// the tunnel (kubelet answers 400 to an unknown subprotocol), a proxy that blocks
    /// WebSocket (403), or an upgrade it does not take (405, 426, 501). A missing pod (404),
    /// bad credentials (401) or an outage (5xx) are the same over SPDY, and are answered as is.
    fn refuses_protocol(&self) -> bool {
        matches!(self.code.as_u16(), 400 | 403 | 405 | 426 | 501)
    }

    /// The cluster's answer, for the client: its Status when it sent one.
    fn response(&self) -> Response<Body> {
        match proto::status::Status::parse(&self.body) {
            Ok(s) => status::respond(self.code, &s.reason, s.message),
            Err(_) => status::respond(
                self.code,
                self.code.canonical_reason().unwrap_or("Error"),
                format!(
                    "kubetape: the cluster refused the port-forward: {}",
                    String::from_utf8_lossy(&self.body).trim()
                ),
            ),
        }
    }
}

/// Opens the forward on the cluster at `path` (with `query` for the channel protocol's
/// `?ports=`, ignored by the tunnel and SPDY) with `headers` (allow-listed client headers and
/// the impersonation). A refusal is answered to the client as the cluster worded it.
pub(crate) async fn dial(
    client: &kube::Client,
    path: &str,
    headers: &HeaderMap,
) -> Result<Upstream, Response<Body>> {
    let tunnel = match tunnel(client, path, headers).await {
        Ok(ws) => return Ok(Upstream::Tunnel(Box::new(ws))),
        Err(DialError::Refused(r)) if r.refuses_protocol() => r,
        Err(DialError::Refused(r)) => return Err(r.response()),
        Err(DialError::Transport(e)) => return Err(unreachable(&e)),
    };
    tracing::info!(
        status = tunnel.code.as_u16(),
        "the cluster refused the WebSocket tunnel; port-forward falls back to SPDY"
    );
    match spdy(client, path, headers).await {
        Ok(io) => Ok(Upstream::Spdy(io)),
        Err(DialError::Refused(r)) => Err(r.response()),
        Err(DialError::Transport(e)) => Err(unreachable(&e)),
    }
}

fn unreachable(e: &str) -> Response<Body> {
    tracing::warn!(error = %e, "upstream port-forward dial failed");
    status::unavailable(format!(
        "kubetape: cannot open the port-forward on the cluster: {e}"
    ))
}

#[derive(Debug)]
enum DialError {
    Refused(Refused),
    Transport(String),
}

async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    headers: HeaderMap,
) -> Result<Response<kube::client::Body>, DialError> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(kube::client::Body::from(Vec::new()))
        .map_err(|e| DialError::Transport(e.to_string()))?;
    *req.headers_mut() = headers;
    let resp = client
        .send(req)
        .await
        .map_err(|e| DialError::Transport(e.to_string()))?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(resp);
    }
    let code = resp.status();
    let body = Limited::new(resp.into_body(), MAX_REFUSAL)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Err(DialError::Refused(Refused { code, body }))
}

async fn upgrade(resp: Response<kube::client::Body>) -> Result<Io, DialError> {
    hyper::upgrade::on(resp)
        .await
        .map(TokioIo::new)
        .map_err(|e| DialError::Transport(format!("upgrade failed: {e}")))
}

async fn tunnel(client: &kube::Client, path: &str, headers: &HeaderMap) -> Result<Ws, DialError> {
    let key = generate_key();
    let mut h = headers.clone();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    h.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_str(&key).map_err(|e| DialError::Transport(e.to_string()))?,
    );
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(TUNNEL_PROTOCOL),
    );
    let resp = send(client, Method::GET, path, h).await?;
    let accepted = resp
        .headers()
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .is_some_and(|v| v.as_bytes() == derive_accept_key(key.as_bytes()).as_bytes());
    let protocol = resp
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !accepted || protocol != TUNNEL_PROTOCOL {
        return Err(DialError::Transport(format!(
            "the cluster's WebSocket handshake is not valid (accept key {}, protocol {protocol:?})",
            if accepted { "right" } else { "wrong" }
        )));
    }
    let io = upgrade(resp).await?;
    Ok(WebSocketStream::from_raw_socket(io, Role::Client, Some(tunnel_config())).await)
}

async fn spdy(client: &kube::Client, path: &str, headers: &HeaderMap) -> Result<Io, DialError> {
    let mut h = headers.clone();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(PROTOCOL_V1),
    );
    let resp = send(client, Method::POST, path, h).await?;
    let protocol = resp
        .headers()
        .get("x-stream-protocol-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if protocol != PROTOCOL_V1 {
        return Err(DialError::Transport(format!(
            "the cluster answered the SPDY upgrade with protocol {protocol:?}, not {PROTOCOL_V1}"
        )));
    }
    upgrade(resp).await
}
