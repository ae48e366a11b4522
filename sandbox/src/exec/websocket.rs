//! The WebSocket channel protocol (`v5`/`v4`/`v1.channel.k8s.io` and the base64 variants), as
//! the API server and kubelet serve it (kubernetes-streams.md §1.4–1.8):
//!
//! 1. 101 with the first client-offered protocol the server supports;
//! 2. an empty message on the lowest writable channel (`[1]`, else `[2]`, else `[3]`);
//! 3. `[1]`/`[2]` + output (≤32 KiB each); stdin `[0]…`, resize `[4]{json}…`, v5 `[255,0]`;
//! 4. at exit, all output first, then `[3]` + Status, then close 1000.

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use proto::channel::{self, Protocol};
use proto::exec::StreamOptions;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::Target;
use crate::config::ExecWebSocket;
use crate::ctx::Ctx;
use crate::process::{Input, Output};
use crate::respond::{self, Body};

/// How long to wait for the client's close frame after ours.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a stalled session (`stall_reading`) holds its connection after the close frame.
const STALL_HOLD: std::time::Duration = std::time::Duration::from_secs(60);

/// The fault modes a session acts out (see [`crate::config::Modes`]).
#[derive(Debug, Clone, Copy)]
struct Faults {
    drop_after_status: bool,
    stall_reading: bool,
}

/// Validates the handshake, answers 101 and runs the session on the upgraded connection.
pub(super) async fn accept(
    ctx: &Ctx,
    mut req: Request<Incoming>,
    opts: StreamOptions,
    target: Target,
    span: tracing::Span,
) -> Response<Body> {
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
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let supported: Vec<Protocol> = match ctx.modes.exec_websocket {
        ExecWebSocket::Translate => Protocol::ALL.to_vec(),
        // kubelet's list: no v5 (the API server's translator adds it).
        ExecWebSocket::V4Only => Protocol::ALL
            .into_iter()
            .filter(|p| *p != Protocol::V5)
            .collect(),
        ExecWebSocket::Refuse => Vec::new(),
    };
    // No protocol offered at all: kubelet's default, the v1 binary channel protocol.
    let protocol = if offered.iter().all(|o| o.trim().is_empty()) && !supported.is_empty() {
        None
    } else {
        match channel::negotiate(offered.iter().copied(), &supported) {
            Some(p) => Some(p),
            // Without the translator the upgrade reaches kubelet, whose x/net/websocket
            // handshake answers a protocol it does not know with a bare 403: kubectl takes
            // any non-101 as an upgrade failure and falls back to SPDY.
            None if ctx.modes.exec_websocket != ExecWebSocket::Translate => {
                tracing::info!(?offered, mode = ?ctx.modes.exec_websocket, "websocket refused");
                let mut resp = Response::new(respond::empty());
                *resp.status_mut() = http::StatusCode::FORBIDDEN;
                return resp;
            }
            None => {
                return respond::bad_request(format!(
                    "unable to upgrade: requested protocol(s) are not supported: {offered:?}"
                ));
            }
        }
    };
    let faults = Faults {
        drop_after_status: ctx.modes.drop_after_status,
        stall_reading: ctx.modes.stall_reading,
    };
    let accept_key = derive_accept_key(key.as_bytes());
    tracing::info!(
        protocol = protocol.map_or("", Protocol::name),
        "websocket upgrade"
    );
    let mut resp =
        crate::upgrade::switch_protocols(ctx, &mut req, span, "websocket", move |io| async move {
            let mut config = WebSocketConfig::default();
            config.max_message_size = Some(64 << 20);
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            run(ws, protocol.unwrap_or(Protocol::V1), opts, target, faults).await;
        });
    let h = resp.headers_mut();
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept_key).expect("base64 is a valid header"),
    );
    if let Some(p) = protocol {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(p.name()),
        );
    }
    resp
}

fn encode(protocol: Protocol, ch: u8, payload: &[u8]) -> Message {
    if protocol.is_base64() {
        Message::Text(channel::encode_text(ch, payload).into())
    } else {
        Message::Binary(channel::encode_binary(ch, payload).into())
    }
}

/// The error-channel payload for how the process ended: JSON Status from v4 on, plain text
/// (only on failure) in v1.
fn status_payload(protocol: Protocol, status: &proto::status::Status) -> Option<Vec<u8>> {
    if protocol.has_status() {
        Some(status.to_json())
    } else if status.status == "Success" {
        None
    } else {
        Some(status.message.clone().into_bytes())
    }
}

async fn run<S>(
    ws: WebSocketStream<S>,
    protocol: Protocol,
    opts: StreamOptions,
    target: Target,
    faults: Faults,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, stream) = ws.split();
    let first = if opts.stdout {
        channel::STDOUT
    } else if opts.stderr {
        channel::STDERR
    } else {
        channel::ERROR
    };
    if sink.send(encode(protocol, first, &[])).await.is_err() {
        return;
    }
    let mut session = target.start();
    let input = session.input;
    let mut reader = if faults.stall_reading {
        // Holds the connection without reading it; the process's stdin closes at once.
        drop(input);
        tokio::spawn(async move {
            let _unread = stream;
            std::future::pending::<()>().await;
        })
    } else {
        tokio::spawn(read_client(stream, protocol, opts.stdin, input))
    };
    let mut client_gone = false;
    loop {
        let out = tokio::select! {
            out = session.output.recv() => out,
            _ = &mut reader => { client_gone = true; None }
        };
        let (ch, payload) = match out {
            Some(Output::Stdout(b)) => (channel::STDOUT, b),
            Some(Output::Stderr(b)) => (channel::STDERR, b),
            Some(Output::Exit(status)) => {
                tracing::info!(status = %status.status, reason = %status.reason, "session ended");
                if let Some(p) = status_payload(protocol, &status)
                    && sink
                        .send(encode(protocol, channel::ERROR, &p))
                        .await
                        .is_err()
                {
                    reader.abort();
                    return;
                }
                if faults.stall_reading {
                    let close = CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    tracing::info!("holding the connection unread after the Status");
                    tokio::time::sleep(STALL_HOLD).await;
                    reader.abort();
                    return;
                }
                if faults.drop_after_status {
                    // No close frame: the connection just ends (the reader holds the socket).
                    tracing::info!("dropping the connection after the Status");
                    reader.abort();
                    return;
                }
                break;
            }
            None => break,
        };
        if sink.send(encode(protocol, ch, &payload)).await.is_err() {
            tracing::info!("client gone");
            reader.abort();
            return;
        }
    }
    if client_gone {
        tracing::info!("client closed the connection before the process ended");
        return;
    }
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    if sink.send(Message::Close(Some(close))).await.is_ok() {
        // Let the reader see the client's close reply so the closing handshake completes.
        let _ = tokio::time::timeout(CLOSE_WAIT, reader).await;
    }
}

/// Client → process: stdin, resize and v5 CLOSE frames, until the client closes or goes away.
async fn read_client<S>(
    mut stream: futures::stream::SplitStream<WebSocketStream<S>>,
    protocol: Protocol,
    stdin: bool,
    input: mpsc::Sender<Input>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(msg) = stream.next().await {
        let frame = match msg {
            Ok(Message::Binary(b)) if !protocol.is_base64() => channel::decode_binary(&b, protocol),
            Ok(Message::Text(t)) if protocol.is_base64() => channel::decode_text(t.as_str()),
            Ok(Message::Close(_)) | Err(_) => return,
            // Pings are answered by tungstenite while reading; other kinds carry nothing.
            Ok(_) => continue,
        };
        let msgs: Vec<Input> = match frame {
            Ok(channel::Frame::Data {
                channel: channel::STDIN,
                payload,
            }) if stdin && !payload.is_empty() => {
                vec![Input::Stdin(Bytes::from(payload))]
            }
            Ok(channel::Frame::Data {
                channel: channel::RESIZE,
                payload,
            }) => match proto::resize::parse(&payload) {
                Ok(sizes) => sizes.into_iter().map(Input::Resize).collect(),
                Err(e) => {
                    tracing::debug!(error = %e, "bad resize message");
                    Vec::new()
                }
            },
            Ok(channel::Frame::Close {
                channel: channel::STDIN,
            }) => vec![Input::CloseStdin],
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::debug!(error = %e, "bad frame");
                Vec::new()
            }
        };
        for m in msgs {
            if input.send(m).await.is_err() {
                // The process no longer takes input; keep reading for close and pings.
                break;
            }
        }
    }
}
