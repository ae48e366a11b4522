//! The relay loop: client messages go upstream, upstream messages go to the client, everything is
//! recorded, and the session ends with exactly one Status to the client.

use futures::{SinkExt, StreamExt};
use proto::channel;
use proto::status::Status;
use storage_schema::store::{RecordError, Recorder};
use storage_schema::{EventKind, ExitInfo, Stream};
use tokio_tungstenite::tungstenite::Message;

use super::{ClientEnd, FromClient, ToClient, exit_of};
use crate::ops::metrics::Direction;
use crate::session::{EndReason, Ending, Relay, Tape};

use super::upstream::Upstream;

/// One exec/attach session's relay: the cluster's WebSocket and the client's end.
#[derive(Debug)]
pub(crate) struct Pump {
    pub upstream: Upstream,
    pub client: ClientEnd,
}

impl Relay for Pump {
    async fn run(self, tape: Tape<'_>) -> Ending {
        run(self.upstream, self.client, tape).await
    }
}

/// How long the final Status may take to reach the client before the session is sealed anyway.
const CLIENT_CLOSE: std::time::Duration = std::time::Duration::from_secs(5);

/// How often the upstream connection is pinged.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);

enum End {
    /// The upstream closed; its Status (possibly split over messages) is in the buffer.
    Upstream,
    UpstreamError(String),
    ClientGone,
    /// Ended by the gateway (revocation, time limit, drain, recording failure).
    Ended(EndReason),
}

/// Relays until either side ends or the session must end; returns how it ended, after the
/// client was sent its one final Status.
///
/// The two directions run as two loops side by side, never one waiting for the other: a
/// process that stops reading its stdin until its output is drained (`cat` on a large input)
/// would otherwise deadlock the session, the relay blocked writing stdin upstream while the
/// output it should be reading fills the cluster's buffers.
async fn run(upstream: Upstream, client: ClientEnd, tape: Tape<'_>) -> Ending {
    let Tape {
        recorder,
        mut ends,
        metrics,
    } = tape;
    // Resolved once: the frame loops only add to atomics.
    let to_cluster = metrics.relayed_counter(Direction::to_cluster);
    let to_client = metrics.relayed_counter(Direction::to_client);
    let recorded = metrics.bytes_recorded.clone();
    let ClientEnd {
        mut from,
        to,
        mut conn,
    } = client;
    // Whether the client connection has ended (it is polled no more once it has).
    let mut client_closed = false;
    let Upstream {
        tx: mut up_tx,
        rx: mut up_rx,
        ..
    } = upstream;
    let mut status_buf = Vec::new();
    // What was relayed but is not recorded yet: a write a paused recording holds when the
    // session must end (`record_data` is all-or-nothing, so it is either in or here).
    let shown: std::sync::Mutex<Option<(Stream, bytes::Bytes)>> = Default::default();
    let sent_in: std::sync::Mutex<Option<FromClient>> = Default::default();
    let recording = !crate::relay::unrecorded::enabled();
    let end = {
        let inbound = async {
            // The cluster side gets no pings from kube-rs; idle sessions must survive
            // middleboxes.
            let mut keepalive = tokio::time::interval(KEEPALIVE);
            keepalive.tick().await;
            loop {
                let frame = tokio::select! {
                    _ = keepalive.tick() => Message::Ping(bytes::Bytes::new()),
                    msg = from.recv() => {
                        let Some(super::Inbound { msg, _credit }) = msg else {
                            return End::ClientGone;
                        };
                        let frame = match &msg {
                            FromClient::Stdin(b) => channel::encode_binary(channel::STDIN, b),
                            FromClient::StdinEof => channel::encode_close(channel::STDIN).to_vec(),
                            FromClient::Resize(json) => channel::encode_binary(channel::RESIZE, json),
                        };
                        if let Err(e) = up_tx.send(Message::binary(frame)).await {
                            return End::UpstreamError(e.to_string());
                        }
                        if let FromClient::Stdin(b) = &msg {
                            to_cluster.inc_by(b.len() as u64);
                            recorded.inc_by(b.len() as u64);
                        }
                        if !recording {
                            continue;
                        }
                        *sent_in.lock().expect("unrecorded input") = Some(copy_of(&msg));
                        let result = record_input(recorder, msg).await;
                        sent_in.lock().expect("unrecorded input").take();
                        if let Err(e) = result {
                            return End::Ended(EndReason::recording_error(&e));
                        }
                        continue;
                    }
                };
                if let Err(e) = up_tx.send(frame).await {
                    return End::UpstreamError(e.to_string());
                }
            }
        };
        let outbound = async {
            loop {
                match up_rx.next().await {
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
                        // Forward first (sharing the buffer): the recorder must never add
                        // latency the terminal can feel. A recording that cannot keep what is
                        // shown holds the relay here instead (it pauses: see
                        // storage_schema::store::Recorder), so little is shown unrecorded.
                        if to.send(ToClient(frame.clone())).await.is_err() {
                            return End::ClientGone;
                        }
                        let n = frame.len() as u64 - 1;
                        to_client.inc_by(n);
                        recorded.inc_by(n);
                        if !recording {
                            continue;
                        }
                        *shown.lock().expect("unrecorded output") = Some((stream, frame.clone()));
                        let result = recorder.record_data(stream, &frame[1..]).await;
                        shown.lock().expect("unrecorded output").take();
                        if let Err(e) = result {
                            return End::Ended(EndReason::recording_error(&e));
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return End::Upstream,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return End::UpstreamError(e.to_string()),
                }
            }
        };
        let relay = async {
            tokio::select! {
                why = ends.wait() => End::Ended(why),
                end = inbound => end,
                end = outbound => end,
            }
        };
        tokio::pin!(relay);
        // The client connection runs beside the relay, in this task. Its end does not end the
        // relay by itself: what it queued for the cluster is relayed (and recorded) first, and
        // the loops then find its queues closed.
        loop {
            tokio::select! {
                end = &mut relay => break end,
                () = &mut conn, if !client_closed => client_closed = true,
            }
        }
    };
    // Relayed while the recording was paused, and the session ends now: recorded without
    // waiting (declared lost, if the recorder gave up).
    let output = shown.into_inner().unwrap_or_else(|p| p.into_inner());
    let input = sent_in.into_inner().unwrap_or_else(|p| p.into_inner());
    if output.is_some() || input.is_some() {
        recorder.stop_holding();
        if let Some((stream, frame)) = output {
            let _ = recorder.record_data(stream, &frame[1..]).await;
        }
        if let Some(msg) = input {
            let _ = record_input(recorder, msg).await;
        }
    }
    let mut ended_by = None;
    let (status, exit) = match end {
        End::Upstream => match Status::parse(&status_buf) {
            Ok(s) if !status_buf.is_empty() => {
                let exit = exit_of(&s);
                (Some(status_buf), exit)
            }
            _ => synthesized("kubetape: the cluster closed the stream without an exit status"),
        },
        // A cluster that sent the exit Status and then dropped the connection (no close
        // frame): the Status stands, and kubectl gets its exit code.
        End::UpstreamError(e) => match Status::parse(&status_buf) {
            Ok(s) if !status_buf.is_empty() => {
                let exit = exit_of(&s);
                (Some(status_buf), exit)
            }
            _ => synthesized(&format!(
                "kubetape: lost the connection to the cluster: {e}"
            )),
        },
        End::Ended(why) => {
            let s = Status::failure(why.code, why.reason, why.message.clone());
            let exit = why.exit();
            ended_by = Some(why);
            (Some(s.to_json()), exit)
        }
        End::ClientGone => {
            let why = EndReason::client_disconnected();
            let exit = why.exit();
            ended_by = Some(why);
            (None, exit)
        }
    };
    // The session counts as ended once the client has its final Status: a gateway shutting
    // down must not exit before then. Bounded, for a client that never reads (and a cluster
    // that takes no more: closing the upstream waits on its socket).
    let send_status = async move {
        if let Some(status) = status {
            let _ = to
                .send(ToClient(
                    channel::encode_binary(channel::ERROR, &status).into(),
                ))
                .await;
        }
        // Closing the queue tells the client connection to close.
        drop(to);
    };
    let close = async {
        let upstream = async {
            let _ = up_tx.close().await;
        };
        if client_closed {
            tokio::join!(send_status, upstream);
        } else {
            tokio::join!(send_status, conn, upstream);
        }
    };
    if tokio::time::timeout(CLIENT_CLOSE, close).await.is_err() {
        tracing::debug!("the client did not finish closing in time");
    }
    Ending { exit, ended_by }
}

/// Records what the client sent. Stdin goes through `record_data`, which splits it into
/// events of at most 64 KiB: the recorder's queue is counted in events, so its memory stays
/// bounded only if events are.
async fn record_input(recorder: &Recorder, msg: FromClient) -> Result<(), RecordError> {
    match msg {
        FromClient::Stdin(b) => recorder.record_data(Stream::Stdin, &b).await,
        FromClient::StdinEof => {
            recorder
                .record(EventKind::StreamClose {
                    stream: Stream::Stdin,
                })
                .await
        }
        FromClient::Resize(json) => {
            for s in proto::resize::parse(&json).unwrap_or_default() {
                recorder
                    .record(EventKind::Resize {
                        cols: s.width,
                        rows: s.height,
                    })
                    .await?;
            }
            Ok(())
        }
    }
}

fn copy_of(msg: &FromClient) -> FromClient {
    match msg {
        FromClient::Stdin(b) => FromClient::Stdin(b.clone()),
        FromClient::StdinEof => FromClient::StdinEof,
        FromClient::Resize(json) => FromClient::Resize(json.clone()),
    }
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
