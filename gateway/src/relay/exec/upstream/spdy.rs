//! A SPDY/3.1 exec/attach connection to the cluster (`proto::spdy::remotecommand::Client`,
//! kubectl's side of the protocol), presented to the pump as v5 channel frames.
//!
//! | pump → cluster | SPDY |
//! |---|---|
//! | `[0] ++ bytes` | DATA on the stdin stream |
//! | `[255, 0]` (stdin EOF) | empty DATA+FIN on the stdin stream |
//! | `[4] ++ JSON` (resize) | DATA on the resize stream, one message per size |
//! | ping | PING |
//! | close | RST_STREAM CANCEL on every stream, GOAWAY |
//!
//! | cluster → pump | frame |
//! |---|---|
//! | stdout / stderr DATA | `[1] ++ bytes` / `[2] ++ bytes` |
//! | error stream ended (FIN) | `[3] ++ Status` (an empty error stream is success, as client-go reads it) |
//! | GOAWAY, or the connection closed | end of stream |
//!
//! The task ends its side (RST_STREAMs, GOAWAY, as kubectl does) once the Status arrived.

use futures::SinkExt;
use hyper_util::rt::TokioIo;
use proto::channel;
use proto::exec::StreamOptions;
use proto::spdy::remotecommand::{Client, ClientEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::PollSender;

use super::Upstream;

/// Frames buffered each way between the pump and the connection.
const QUEUE: usize = 16;

pub(super) fn spawn(io: TokioIo<hyper::upgrade::Upgraded>, opts: &StreamOptions) -> Upstream {
    let (to_cluster, from_pump) = mpsc::channel::<Message>(QUEUE);
    let (to_pump, from_cluster) = mpsc::channel::<Result<Message, String>>(QUEUE);
    let client = Client::new(opts);
    tokio::spawn(async move {
        if let Err(e) = run(io, client, from_pump, to_pump.clone()).await {
            let _ = to_pump.send(Err(e)).await;
        }
    });
    let tx = PollSender::new(to_cluster).sink_map_err(|_| "the SPDY connection ended".to_string());
    Upstream {
        tx: Box::pin(tx),
        rx: Box::pin(tokio_stream_from(from_cluster)),
        protocol: "spdy-v4",
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn run(
    io: TokioIo<hyper::upgrade::Upgraded>,
    mut client: Client,
    mut from_pump: mpsc::Receiver<Message>,
    to_pump: mpsc::Sender<Result<Message, String>>,
) -> Result<(), String> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let io_err = |e: std::io::Error| e.to_string();
    wr.write_all(&client.take_output()).await.map_err(io_err)?;
    let mut buf = vec![0u8; 64 << 10];
    let mut pump_open = true;
    loop {
        tokio::select! {
            n = rd.read(&mut buf) => {
                let n = n.map_err(io_err)?;
                if n == 0 {
                    return Ok(());
                }
                let events = client.receive(&buf[..n]).map_err(|e| e.to_string())?;
                let mut done = false;
                for e in events {
                    let frame = match e {
                        ClientEvent::Stdout(d) => channel::encode_binary(channel::STDOUT, &d),
                        ClientEvent::Stderr(d) => channel::encode_binary(channel::STDERR, &d),
                        ClientEvent::Status(json) => {
                            let json = if json.is_empty() {
                                proto::status::Status::success().to_json()
                            } else {
                                json
                            };
                            done = true;
                            channel::encode_binary(channel::ERROR, &json)
                        }
                        ClientEvent::GoAway => {
                            done = true;
                            continue;
                        }
                        ClientEvent::Ready
                        | ClientEvent::OutputEnd(_)
                        | ClientEvent::Reset { .. }
                        | ClientEvent::Pong(_) => continue,
                    };
                    if to_pump.send(Ok(Message::binary(frame))).await.is_err() {
                        done = true;
                        break;
                    }
                }
                let out = client.take_output();
                if !out.is_empty() {
                    wr.write_all(&out).await.map_err(io_err)?;
                }
                if done {
                    // kubectl's teardown; the cluster closes after it.
                    client.close();
                    let _ = wr.write_all(&client.take_output()).await;
                    let _ = wr.shutdown().await;
                    return Ok(());
                }
            }
            msg = from_pump.recv(), if pump_open => {
                match msg {
                    Some(Message::Binary(frame)) => match channel::decode_binary(&frame, channel::Protocol::V5) {
                        Ok(channel::Frame::Data { channel: channel::STDIN, payload }) => client.send_stdin(&payload),
                        Ok(channel::Frame::Data { channel: channel::RESIZE, payload }) => {
                            for size in proto::resize::parse(&payload).unwrap_or_default() {
                                client.send_resize(size);
                            }
                        }
                        Ok(channel::Frame::Close { channel: channel::STDIN }) => client.close_stdin(),
                        _ => {}
                    },
                    Some(Message::Ping(_)) => {
                        client.ping();
                    }
                    Some(Message::Close(_)) | None => {
                        pump_open = false;
                        client.close();
                    }
                    Some(_) => {}
                }
                let out = client.take_output();
                if !out.is_empty() {
                    wr.write_all(&out).await.map_err(io_err)?;
                }
                if !pump_open {
                    let _ = wr.shutdown().await;
                    return Ok(());
                }
            }
        }
    }
}
