//! The relay loop: client messages go upstream, upstream messages go to the client, everything is
//! recorded, and the session ends with exactly one Status to the client.

use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use proto::channel;
use proto::status::Status;
use storage_schema::store::{RecordError, Recorder};
use storage_schema::{EventKind, ExitInfo, Stream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::{ClientEnd, FromClient, Stop, ToClient, exit_of};
use crate::live::{EndRequest, LiveSession};

type Upstream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// How often the upstream connection is pinged.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);

enum End {
    /// The upstream closed; its Status (possibly split over messages) is in the buffer.
    Upstream,
    UpstreamError(String),
    ClientGone,
    Recording(RecordError),
    /// The recorder stopped on its own (its store failed); the cause comes from `finish`.
    RecorderStopped,
    /// Ended from outside (a revocation).
    Ended(EndRequest),
    /// The session's time is up (grant expiry, maximum session length): the message says why.
    Stopped(String),
}

/// Relays until either side ends, `stop` resolves or the session is ended from outside;
/// returns how the session ended.
pub(crate) async fn run(
    upstream: Upstream,
    client: ClientEnd,
    recorder: &Recorder,
    live: &mut LiveSession,
    mut stop: Stop,
) -> ExitInfo {
    let ClientEnd { mut from, to } = client;
    let (mut up_tx, mut up_rx) = upstream.split();
    let mut status_buf = Vec::new();
    // The cluster side gets no pings from kube-rs; idle sessions must survive middleboxes.
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    let end = loop {
        tokio::select! {
            () = recorder.closed() => break End::RecorderStopped,
            why = live.ended() => break End::Ended(why),
            message = &mut stop => break End::Stopped(message),
            _ = keepalive.tick() => {
                if let Err(e) = up_tx.send(Message::Ping(bytes::Bytes::new())).await {
                    break End::UpstreamError(e.to_string());
                }
            }
            msg = from.recv() => {
                let (frame, events) = match msg {
                    Some(FromClient::Stdin(b)) => {
                        (channel::encode_binary(channel::STDIN, &b), vec![EventKind::Data { stream: Stream::Stdin, bytes: b }])
                    }
                    Some(FromClient::StdinEof) => {
                        (channel::encode_close(channel::STDIN).to_vec(), vec![EventKind::StreamClose { stream: Stream::Stdin }])
                    }
                    Some(FromClient::Resize(json)) => {
                        let sizes = proto::resize::parse(&json).unwrap_or_default();
                        let events = sizes.iter().map(|s| EventKind::Resize { cols: s.width, rows: s.height }).collect();
                        (channel::encode_binary(channel::RESIZE, &json), events)
                    }
                    None => break End::ClientGone,
                };
                if let Err(e) = up_tx.send(Message::binary(frame)).await {
                    break End::UpstreamError(e.to_string());
                }
                let mut failed = None;
                for event in events {
                    if let Err(e) = recorder.record(event).await {
                        failed = Some(e);
                        break;
                    }
                }
                if let Some(e) = failed {
                    break End::Recording(e);
                }
            }
            msg = up_rx.next() => match msg {
                Some(Ok(Message::Binary(frame))) => {
                    let stream = match frame.first() {
                        Some(&channel::STDOUT) => Stream::Stdout,
                        Some(&channel::STDERR) => Stream::Stderr,
                        Some(&channel::ERROR) => {
                            status_buf.extend_from_slice(&frame[1..]);
                            continue;
                        }
                        _ => continue,
                    };
                    // Forward first (sharing the buffer): the recorder must never add latency
                    // the terminal can feel.
                    if to.send(ToClient(frame.clone())).await.is_err() {
                        break End::ClientGone;
                    }
                    if let Err(e) = recorder.record_data(stream, &frame[1..]).await {
                        break End::Recording(e);
                    }
                }
                Some(Ok(Message::Close(_))) | None => break End::Upstream,
                Some(Ok(_)) => {}
                Some(Err(e)) => break End::UpstreamError(e.to_string()),
            }
        }
    };
    let (status, exit) = match end {
        End::Upstream => match Status::parse(&status_buf) {
            Ok(s) if !status_buf.is_empty() => {
                let exit = exit_of(&s);
                (Some(status_buf), exit)
            }
            _ => synthesized("kubetape: the cluster closed the stream without an exit status"),
        },
        End::UpstreamError(e) => synthesized(&format!(
            "kubetape: lost the connection to the cluster: {e}"
        )),
        End::Recording(e) => {
            tracing::error!(error = %e, "recording failed; ending the session (fail closed)");
            synthesized(&format!(
                "kubetape: recording failed ({e}); the session was ended"
            ))
        }
        End::RecorderStopped => {
            tracing::error!("the recorder stopped; ending the session (fail closed)");
            synthesized("kubetape: recording failed; the session was ended")
        }
        End::Ended(why) => {
            tracing::warn!(reason = %why.marker, "session ended from outside");
            let _ = recorder
                .record(EventKind::Marker {
                    text: why.marker.clone(),
                })
                .await;
            let s = Status::failure(403, "Forbidden", why.message.clone());
            (
                Some(s.to_json()),
                ExitInfo {
                    code: 1,
                    message: why.message,
                },
            )
        }
        End::Stopped(message) => {
            tracing::info!(reason = %message, "ending the session");
            let _ = recorder
                .record(EventKind::Marker {
                    text: message.clone(),
                })
                .await;
            let s = Status::failure(403, "Forbidden", message.clone());
            (Some(s.to_json()), ExitInfo { code: 1, message })
        }
        End::ClientGone => (
            None,
            ExitInfo {
                code: 1,
                message: "kubetape: the client disconnected".into(),
            },
        ),
    };
    if let Some(status) = status {
        let _ = to
            .send(ToClient(
                channel::encode_binary(channel::ERROR, &status).into(),
            ))
            .await;
    }
    drop(to);
    let _ = up_tx.close().await;
    exit
}

fn synthesized(message: &str) -> (Option<Vec<u8>>, ExitInfo) {
    let s = Status::failure(500, "InternalError", message);
    (
        Some(s.to_json()),
        ExitInfo {
            code: 1,
            message: message.to_string(),
        },
    )
}
