//! The client side over SPDY/3.1 (`v4.channel.k8s.io`): kubectl ≤ 1.29, and the fallback of
//! newer ones. The protocol — streams paired by `streamtype`, output held until every stream
//! the request asked for is open, SYN_REPLYs, PINGs, the final FINs, Status and GOAWAY — is
//! `proto::spdy::remotecommand::Server`, the same one the sandbox serves pods with and tested
//! there against byte vectors; this module drives it over the upgraded socket.
//!
//! Reading and writing run side by side over one [`Server`] (behind a mutex never held across
//! an await): a reader waiting for room in the queue to the pump must never stop output from
//! reaching the client, or a process that reads its stdin only after its output drained would
//! deadlock the session.

use std::sync::Mutex;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use proto::exec::StreamOptions;
use proto::spdy::remotecommand::{MAX_PENDING, Server, ServerEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

use super::{ClientEnd, FromClient, Inbox, ToClient};

/// Output messages queued for the client.
const QUEUE: usize = 16;

/// A client that never opens the streams it asked for must not hold the connection forever
/// (kubelet's `streamCreationTimeout`).
const SETUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long the client gets to tear down (RST_STREAM, GOAWAY) after the final frames.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The client's end of a session, once the upgrade completes (the pump drives it).
pub(crate) fn open(on_upgrade: OnUpgrade, opts: &StreamOptions) -> ClientEnd {
    let (from_tx, from) = Inbox::new();
    let (to, to_rx) = mpsc::channel(QUEUE);
    let opts = opts.clone();
    let conn = Box::pin(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                if let Err(e) = run(TokioIo::new(upgraded), &opts, from_tx, to_rx).await {
                    tracing::debug!(error = %e, "SPDY client connection ended with an error");
                }
            }
            Err(e) => tracing::warn!(error = %e, "client upgrade failed"),
        }
    });
    ClientEnd { from, to, conn }
}

fn lock(server: &Mutex<Server>) -> std::sync::MutexGuard<'_, Server> {
    server.lock().unwrap_or_else(|p| p.into_inner())
}

async fn run(
    io: TokioIo<hyper::upgrade::Upgraded>,
    opts: &StreamOptions,
    from_tx: Inbox,
    mut to_rx: mpsc::Receiver<ToClient>,
) -> std::io::Result<()> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let server = Mutex::new(Server::new(opts));
    // Wakes the writer when the reader queued replies (SYN_REPLY, PING) or the streams opened.
    let wake = Notify::new();
    let reader = async {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            let events = lock(&server)
                .receive(&buf[..n])
                .map_err(std::io::Error::other)?;
            wake.notify_one();
            for e in events {
                let msg = match e {
                    ServerEvent::Stdin(data) => FromClient::Stdin(data),
                    ServerEvent::StdinEof => FromClient::StdinEof,
                    ServerEvent::Resize(size) => FromClient::Resize(proto::resize::encode(size)),
                    ServerEvent::GoAway => return Ok(()),
                    ServerEvent::Opened(_) | ServerEvent::Ready | ServerEvent::Reset(_) => continue,
                };
                if from_tx.send(msg).await.is_err() {
                    return Ok(());
                }
            }
        }
    };
    let writer = async {
        let setup = tokio::time::sleep(SETUP_TIMEOUT);
        tokio::pin!(setup);
        let mut closing = false;
        loop {
            let (ready, pending) = {
                let s = lock(&server);
                (s.is_ready(), s.pending_len())
            };
            tokio::select! {
                () = wake.notified() => {}
                // Stop taking output while too much waits for streams not open yet.
                out = to_rx.recv(), if !closing && pending < MAX_PENDING => match out {
                    Some(ToClient(frame)) => {
                        if let Some((&channel, payload)) = frame.split_first() {
                            lock(&server).send_channel(channel, payload);
                        }
                    }
                    None => {
                        // The relay sent the final Status on the error stream: end the session.
                        closing = true;
                        lock(&server).finish(&[]);
                    }
                },
                () = &mut setup, if !ready => {
                    tracing::warn!("the client did not open the streams it asked for within {SETUP_TIMEOUT:?}");
                    return Ok(());
                }
            }
            let (out, finished) = {
                let mut s = lock(&server);
                (s.take_output(), s.is_finished())
            };
            if !out.is_empty() {
                wr.write_all(&out).await?;
            }
            if finished {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    let result = {
        tokio::pin!(reader);
        tokio::select! {
            r = &mut reader => r,
            w = writer => match w {
                // Finished: give the client a moment to tear down before closing our side.
                Ok(()) => tokio::time::timeout(CLOSE_WAIT, &mut reader).await.unwrap_or(Ok(())),
                Err(e) => Err(e),
            },
        }
    };
    drop(from_tx);
    let out = lock(&server).take_output();
    if !out.is_empty() {
        let _ = wr.write_all(&out).await;
    }
    let _ = wr.shutdown().await;
    result
}
