//! port-forward over WebSocket: the SPDY tunnel (`SPDY/3.1+portforward.k8s.io`: binary messages
//! are a byte stream of SPDY frames, message boundaries mean nothing) and kubelet's channel
//! protocol (`v4.channel.k8s.io`, `v4.base64.channel.k8s.io` or none, with `?ports=`).

use futures::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use proto::portforward::{self, TUNNEL_PROTOCOL};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::Dialer;
use crate::ctx::Ctx;
use crate::query::Query;
use crate::respond::{self, Body};

const V4_BINARY: &str = "v4.channel.k8s.io";
const V4_BASE64: &str = "v4.base64.channel.k8s.io";
/// Largest read from a backend: one message.
const CHUNK: usize = 32 << 10;

/// What the client's WebSocket carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Tunnel,
    Channels { base64: bool },
}

/// Validates the handshake, answers 101 and runs the session.
pub(super) async fn accept(
    ctx: &Ctx,
    mut req: Request<Incoming>,
    dialer: Dialer,
    span: tracing::Span,
) -> Response<Body> {
    // A proxy that blocks WebSocket refuses the tunnel as it refuses exec's: a bare 403, on
    // which kubectl (and the gateway) fall back to SPDY.
    if ctx.modes.exec_websocket == crate::config::ExecWebSocket::Refuse {
        tracing::info!(parent: &span, "websocket port-forward refused (mode)");
        let mut resp = Response::new(respond::empty());
        *resp.status_mut() = http::StatusCode::FORBIDDEN;
        return resp;
    }
    let headers = req.headers();
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return respond::bad_request("missing Sec-WebSocket-Key");
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return respond::bad_request("unsupported Sec-WebSocket-Version (want 13)");
    }
    let accept_key = derive_accept_key(key.as_bytes());
    // The API server's tunneling handler takes the request if it offers the tunnel; anything
    // else is proxied to kubelet, which speaks the channel protocol.
    let (offered, chosen) = super::negotiate(&req, &[TUNNEL_PROTOCOL, V4_BINARY, V4_BASE64]);
    let (mode, protocol) = match chosen {
        Some(TUNNEL_PROTOCOL) if offered.iter().any(|o| o == TUNNEL_PROTOCOL) => {
            (Mode::Tunnel, Some(TUNNEL_PROTOCOL))
        }
        Some(p) => (
            Mode::Channels {
                base64: p == V4_BASE64,
            },
            Some(p),
        ),
        // No protocol at all: kubelet's default, binary channels.
        None if offered.is_empty() => (Mode::Channels { base64: false }, None),
        None => {
            return respond::bad_request(format!(
                "unable to upgrade: requested protocol(s) are not supported: {offered:?}"
            ));
        }
    };
    let ports = match mode {
        Mode::Tunnel => Vec::new(),
        Mode::Channels { .. } => {
            let query = Query::parse(req.uri().query());
            let values: Vec<&str> = query.all("ports").chain(query.all("port")).collect();
            match portforward::parse_ports(values) {
                Ok(p) if p.len() <= 128 => p,
                Ok(_) => return respond::bad_request("too many ports"),
                Err(e) => return respond::bad_request(e.to_string()),
            }
        }
    };
    tracing::info!(parent: &span, ?mode, ?ports, "websocket port-forward upgrade");
    let mut resp =
        crate::upgrade::switch_protocols(ctx, &mut req, span, "websocket", move |io| async move {
            let mut config = WebSocketConfig::default();
            config.max_message_size = Some(64 << 20);
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            match mode {
                Mode::Tunnel => tunnel(ws, dialer).await,
                Mode::Channels { base64 } => channels(ws, dialer, ports, base64).await,
            }
        });
    let h = resp.headers_mut();
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept_key).expect("base64 is a valid header"),
    );
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    resp
}

fn close_normal() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// The tunnel: WebSocket messages in and out around the SPDY session.
async fn tunnel<S>(ws: WebSocketStream<S>, dialer: Dialer)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(8);
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
    let reader = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            let bytes = match msg {
                Ok(Message::Binary(b)) => b.to_vec(),
                Ok(Message::Close(_)) | Err(_) => return,
                // Pings are answered by tungstenite; text carries nothing here.
                Ok(_) => continue,
            };
            if in_tx.send(bytes).await.is_err() {
                return;
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(mut batch) = out_rx.recv().await {
            while batch.len() < 64 << 10 {
                match out_rx.try_recv() {
                    Ok(more) => batch.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if sink.send(Message::Binary(batch.into())).await.is_err() {
                return;
            }
        }
        let _ = sink.send(close_normal()).await;
    });
    super::spdy::run(dialer, in_rx, out_tx).await;
    reader.abort();
    let _ = writer.await;
}

/// The channel protocol: every port's prefix on both its channels, then one backend connection
/// per port; the WebSocket closes when all of them ended (or the client left).
async fn channels<S>(ws: WebSocketStream<S>, dialer: Dialer, ports: Vec<u16>, base64: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let encode = move |ch: u8, payload: &[u8]| {
        if base64 {
            Message::Text(proto::channel::encode_text(ch, payload).into())
        } else {
            Message::Binary(proto::channel::encode_binary(ch, payload).into())
        }
    };
    let (mut sink, mut stream) = ws.split();
    for (i, port) in ports.iter().enumerate() {
        let prefix = portforward::port_prefix(*port);
        for ch in [portforward::data_channel(i), portforward::error_channel(i)]
            .into_iter()
            .flatten()
        {
            if sink.send(encode(ch, &prefix)).await.is_err() {
                return;
            }
        }
    }
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
    let mut to_ports = Vec::new();
    let mut tasks = Vec::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(16);
        to_ports.push(tx);
        tasks.push(tokio::spawn(forward_port(
            dialer.clone(),
            port,
            i,
            rx,
            out_tx.clone(),
            encode,
        )));
    }
    drop(out_tx);
    let reader = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            let frame = match msg {
                Ok(Message::Binary(b)) if !base64 => {
                    proto::channel::decode_binary(&b, proto::channel::Protocol::V4)
                }
                Ok(Message::Text(t)) if base64 => proto::channel::decode_text(t.as_str()),
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => continue,
            };
            let Ok(proto::channel::Frame::Data { channel, payload }) = frame else {
                continue;
            };
            let (i, is_error) = portforward::channel_port(channel);
            if let (false, Some(tx)) = (is_error, to_ports.get(i))
                && !payload.is_empty()
            {
                let _ = tx.send(payload).await;
            }
        }
    });
    let mut reader = reader;
    loop {
        tokio::select! {
            msg = out_rx.recv() => match msg {
                Some(m) => if sink.send(m).await.is_err() { break },
                None => {
                    // Every port ended: close like kubelet's `conn.Close()`.
                    let _ = sink.send(close_normal()).await;
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut reader).await;
                    break;
                }
            },
            _ = &mut reader => break,
        }
    }
    reader.abort();
    for t in tasks {
        t.abort();
    }
}

/// One port of a channel-protocol forward. No half-close exists here: the connection ends
/// when the backend's answer ends (or the client leaves).
async fn forward_port(
    dialer: Dialer,
    port: u16,
    index: usize,
    mut from_client: mpsc::Receiver<Vec<u8>>,
    out: mpsc::Sender<Message>,
    encode: impl Fn(u8, &[u8]) -> Message,
) {
    let (Some(data_ch), Some(error_ch)) = (
        portforward::data_channel(index),
        portforward::error_channel(index),
    ) else {
        return;
    };
    let tcp = match dialer.dial(port).await {
        Ok(t) => t,
        Err(message) => {
            let _ = out.send(encode(error_ch, message.as_bytes())).await;
            return;
        }
    };
    let (mut r, mut w) = tcp.into_split();
    let upload = tokio::spawn(async move {
        while let Some(d) = from_client.recv().await {
            if w.write_all(&d).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.send(encode(data_ch, &buf[..n])).await.is_err() {
                    break;
                }
            }
        }
    }
    upload.abort();
}
