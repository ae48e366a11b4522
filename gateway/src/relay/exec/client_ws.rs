//! The client side over WebSocket (`v5`/`v4`/`v4.base64.channel.k8s.io`).

use futures::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use proto::channel::{self, Frame, Protocol};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{
    CloseFrame, Role, WebSocketConfig, frame::coding::CloseCode,
};

use super::{ClientEnd, FromClient, Inbox, MAX_CLIENT_MESSAGE, ToClient};

/// Output messages queued for the client; small, so back-pressure reaches the cluster quickly.
const QUEUE: usize = 16;

pub(crate) fn spawn(on_upgrade: OnUpgrade, protocol: Protocol) -> ClientEnd {
    let (from_tx, from) = Inbox::new();
    let (to, to_rx) = mpsc::channel(QUEUE);
    let done = tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run(TokioIo::new(upgraded), protocol, from_tx, to_rx).await,
            Err(e) => tracing::warn!(error = %e, "client upgrade failed"),
        }
    });
    ClientEnd { from, to, done }
}

pub(crate) fn config() -> WebSocketConfig {
    // tungstenite zero-fills its read buffer on every read; kubectl's frames are small (a
    // keystroke, a resize), so 16 KiB instead of 128 KiB cuts that cost per message.
    WebSocketConfig::default()
        .read_buffer_size(16 << 10)
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
}

async fn run(
    io: TokioIo<hyper::upgrade::Upgraded>,
    protocol: Protocol,
    from_tx: Inbox,
    mut to_rx: mpsc::Receiver<ToClient>,
) {
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config())).await;
    let (mut tx, mut rx) = ws.split();
    let encode = |frame: bytes::Bytes| match frame.split_first() {
        Some((&ch, payload)) if protocol.is_base64() => {
            Message::text(channel::encode_text(ch, payload))
        }
        _ => Message::Binary(frame),
    };
    loop {
        tokio::select! {
            msg = rx.next() => {
                let frame = match msg {
                    Some(Ok(Message::Binary(b))) => channel::decode_binary(&b, protocol),
                    Some(Ok(Message::Text(t))) if protocol.is_base64() => channel::decode_text(t.as_str()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Text(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        // The client is gone: tell the pump by dropping our sender.
                        break;
                    }
                };
                let event = match frame {
                    Ok(Frame::Data { channel: channel::STDIN, payload }) => FromClient::Stdin(payload),
                    Ok(Frame::Data { channel: channel::RESIZE, payload }) => FromClient::Resize(payload),
                    Ok(Frame::Close { channel: channel::STDIN }) => FromClient::StdinEof,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "ignoring a malformed client frame");
                        continue;
                    }
                };
                if from_tx.send(event).await.is_err() {
                    break;
                }
            }
            out = to_rx.recv() => {
                let msg = match out {
                    Some(ToClient(frame)) => encode(frame),
                    None => {
                        let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                        let _ = tx.send(Message::Close(Some(close))).await;
                        // Let the close handshake finish so the client sees a clean close.
                        while let Some(Ok(m)) = rx.next().await {
                            if m.is_close() {
                                break;
                            }
                        }
                        break;
                    }
                };
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(from_tx);
}
