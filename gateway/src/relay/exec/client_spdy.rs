//! The client side over SPDY/3.1 (`v4.channel.k8s.io`): kubectl ≤ 1.29, and the fallback of
//! newer ones. kubectl opens one stream per channel, each tagged with a `streamtype` header.

use std::collections::VecDeque;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use proto::exec::StreamOptions;
use proto::spdy::{Event, ServerSession, headers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{ClientEnd, FromClient, Inbox, ToClient};

const QUEUE: usize = 16;

/// Stream ids by type, learnt from the client's SYN_STREAMs.
#[derive(Debug, Default)]
struct Streams {
    error: Option<u32>,
    stdin: Option<u32>,
    stdout: Option<u32>,
    stderr: Option<u32>,
    resize: Option<u32>,
}

impl Streams {
    /// Whether kubectl has opened every stream the request asked for. It opens them one by one,
    /// each waiting for our SYN_REPLY, so nothing is written (and nothing is closed) before then.
    fn ready(&self, opts: &StreamOptions) -> bool {
        self.error.is_some()
            && (!opts.stdin || self.stdin.is_some())
            && (!opts.stdout || self.stdout.is_some())
            && (!opts.stderr || opts.tty || self.stderr.is_some())
            && (!opts.tty || self.resize.is_some())
    }
}

pub(crate) fn spawn(on_upgrade: OnUpgrade, opts: &StreamOptions) -> ClientEnd {
    let (from_tx, from) = Inbox::new();
    let (to, to_rx) = mpsc::channel(QUEUE);
    let opts = opts.clone();
    let done = tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                if let Err(e) = run(TokioIo::new(upgraded), &opts, from_tx, to_rx).await {
                    tracing::debug!(error = %e, "SPDY client connection ended with an error");
                }
            }
            Err(e) => tracing::warn!(error = %e, "client upgrade failed"),
        }
    });
    ClientEnd { from, to, done }
}

async fn run(
    io: TokioIo<hyper::upgrade::Upgraded>,
    opts: &StreamOptions,
    from_tx: Inbox,
    mut to_rx: mpsc::Receiver<ToClient>,
) -> std::io::Result<()> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut session = ServerSession::new();
    let mut streams = Streams::default();
    // Output that arrived before kubectl opened the stream it belongs to.
    let mut pending: VecDeque<ToClient> = VecDeque::new();
    let mut buf = vec![0u8; 64 << 10];
    // Set once the relay has sent the final Status: finish delivering, then half-close.
    let mut closing = false;
    let mut done = false;
    // A client that never opens the streams it asked for must not hold the connection forever.
    let setup_timeout = std::time::Duration::from_secs(30);
    let deadline = tokio::time::sleep(setup_timeout);
    tokio::pin!(deadline);
    while !done {
        tokio::select! {
            n = rd.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    break;
                }
                let events = session.receive(&buf[..n]).map_err(std::io::Error::other)?;
                for e in events {
                    let msg = match e {
                        Event::StreamOpened { id, headers, .. } => {
                            match headers::get(&headers, "streamtype") {
                                Some("error") => streams.error = Some(id),
                                Some("stdin") => streams.stdin = Some(id),
                                Some("stdout") => streams.stdout = Some(id),
                                Some("stderr") => streams.stderr = Some(id),
                                Some("resize") => streams.resize = Some(id),
                                other => tracing::debug!(?other, "ignoring a stream of unknown type"),
                            }
                            None
                        }
                        Event::Data { id, data } if Some(id) == streams.stdin => Some(FromClient::Stdin(data)),
                        Event::Data { id, data } if Some(id) == streams.resize => Some(FromClient::Resize(data)),
                        Event::Fin { id } if Some(id) == streams.stdin => Some(FromClient::StdinEof),
                        Event::Reset { .. } | Event::GoAway => {
                            done = true;
                            None
                        }
                        _ => None,
                    };
                    if let Some(msg) = msg && !closing && from_tx.send(msg).await.is_err() {
                        done = true;
                    }
                }
            }
            // Stop taking output while it cannot be delivered (streams not open yet): back-pressure.
            out = to_rx.recv(), if !closing && pending.len() < 64 => match out {
                Some(out) => pending.push_back(out),
                None => closing = true,
            },
            () = &mut deadline => {
                if streams.ready(opts) {
                    deadline.as_mut().reset(tokio::time::Instant::now() + std::time::Duration::from_secs(86_400));
                } else {
                    tracing::warn!("the client did not open the streams it asked for within {setup_timeout:?}");
                    done = true;
                }
            }
        }
        let ready = streams.ready(opts);
        while ready && let Some(out) = pending.pop_front() {
            deliver(&mut session, &streams, out);
        }
        if closing && ready && pending.is_empty() && !done {
            // Everything delivered: half-close every stream we write on.
            for id in [streams.error, streams.stdout, streams.stderr]
                .into_iter()
                .flatten()
            {
                session.send_fin(id);
            }
            done = true;
        }
        let out = session.take_output();
        if !out.is_empty() {
            wr.write_all(&out).await?;
        }
    }
    drop(from_tx);
    wr.shutdown().await
}

/// Queues `out` on its stream (once every expected stream is open). Output for a stream the
/// request did not ask for is dropped, as the API server does.
fn deliver(session: &mut ServerSession, streams: &Streams, ToClient(frame): ToClient) {
    let Some((&ch, payload)) = frame.split_first() else {
        return;
    };
    let id = match ch {
        proto::channel::STDOUT => streams.stdout,
        // With a TTY the runtime merges stderr into stdout.
        proto::channel::STDERR => streams.stderr.or(streams.stdout),
        proto::channel::ERROR => streams.error,
        _ => None,
    };
    if let Some(id) = id {
        session.send_data(id, payload);
    }
}
