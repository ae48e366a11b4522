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
/// Under bulk output the queue is full whenever the connection writes (the pump fills it in the
/// same task first), so its depth is the session's output in memory: 4 frames of up to 32 KiB
/// are one full write. With 16, the relay faulted in 16k fresh pages per GB at 100 bulk
/// sessions; with 4, 10k (kubectl proxy: 4k; issue 18, perf stat on the exec bench).
const QUEUE: usize = 4;

/// The client's end of a session, once the upgrade completes (the pump drives it).
pub(crate) fn open(on_upgrade: OnUpgrade, protocol: Protocol) -> ClientEnd {
    let (from_tx, from) = Inbox::new();
    let (to, to_rx) = mpsc::channel(QUEUE);
    let conn = Box::pin(async move {
        match on_upgrade.await {
            Ok(upgraded) => run(TokioIo::new(upgraded), protocol, from_tx, to_rx).await,
            Err(e) => tracing::warn!(error = %e, "client upgrade failed"),
        }
    });
    ClientEnd { from, to, conn }
}

pub(crate) fn config() -> WebSocketConfig {
    // tungstenite allocates its read buffer whole with the stream and zero-fills it on every
    // read, so all of it stays resident for the session's life: kubectl's frames are small (a
    // keystroke, a resize), and 4 KiB instead of the default 128 KiB is both less to zero per
    // message and less memory per idle session (the idle bench). A large frame (bulk stdin)
    // is assembled across reads, so the buffer does not bound it.
    WebSocketConfig::default()
        .read_buffer_size(4 << 10)
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
    // Reading and writing run side by side: a reader waiting for room in the queue to the
    // pump must never stop output from reaching the client (see the pump's note on deadlock).
    let reader = async {
        while let Some(msg) = rx.next().await {
            let frame = match msg {
                Ok(Message::Binary(b)) => channel::decode_binary(&b, protocol),
                Ok(Message::Text(t)) if protocol.is_base64() => channel::decode_text(t.as_str()),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Text(_)) => {
                    continue;
                }
                // The client is gone: the pump learns it when our sender drops.
                Ok(Message::Close(_)) | Err(_) => return,
            };
            let event = match frame {
                Ok(Frame::Data {
                    channel: channel::STDIN,
                    payload,
                }) => FromClient::Stdin(payload),
                Ok(Frame::Data {
                    channel: channel::RESIZE,
                    payload,
                }) => FromClient::Resize(payload),
                Ok(Frame::Close {
                    channel: channel::STDIN,
                }) => FromClient::StdinEof,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "ignoring a malformed client frame");
                    continue;
                }
            };
            if from_tx.send(event).await.is_err() {
                return;
            }
        }
    };
    let writer = async {
        // What is queued goes out together, flushed once: under bulk output that is one write
        // (and fewer, fuller TLS records) for several frames; a lone keystroke's echo is
        // flushed at once, as before.
        while let Some(ToClient(frame)) = to_rx.recv().await {
            if tx.feed(encode(frame)).await.is_err() {
                return false;
            }
            while let Ok(ToClient(frame)) = to_rx.try_recv() {
                if tx.feed(encode(frame)).await.is_err() {
                    return false;
                }
            }
            if tx.flush().await.is_err() {
                return false;
            }
        }
        // The relay is done (its last frame was the Status): close cleanly.
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        tx.send(Message::Close(Some(close))).await.is_ok()
    };
    let closed_by_us = tokio::select! {
        () = reader => false,
        sent = writer => sent,
    };
    drop(from_tx);
    if closed_by_us {
        // Let the close handshake finish so the client sees a clean close.
        while let Some(Ok(m)) = rx.next().await {
            if m.is_close() {
                break;
            }
        }
    }
}
