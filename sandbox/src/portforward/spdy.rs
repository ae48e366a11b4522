//! The SPDY port-forward session (raw, or inside the WebSocket tunnel): `proto`'s
//! `spdy::portforward::Server` over a byte stream, one task per forwarded connection.
//!
//! The session reads the client's bytes from `inbound` and writes its own to `outbound`, so the
//! transport (an upgraded socket, or WebSocket messages) is the caller's. Every piece of output
//! is queued and taken in one critical section on the shared `Server`, so each task's frames
//! leave in the order it made them and header blocks in the order they were deflated.
//!
//! Flow: a connection's client→pod data goes through a bounded channel; a backend that reads
//! slowly stalls the whole session's reading, as spdystream (no flow control) does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use proto::spdy::portforward::{Server, ServerEvent};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Dialer;

/// Largest read from a backend: one DATA frame, as kubelets send.
const CHUNK: usize = 32 << 10;
/// Client chunks queued per connection before the session stops reading.
const TO_BACKEND_DEPTH: usize = 16;

type Shared = Arc<Mutex<Server>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Server> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Client → pod, per connection.
#[derive(Debug)]
enum ToBackend {
    Data(Vec<u8>),
    /// The client shut its write side.
    Fin,
}

/// Runs the session on a raw upgraded connection.
pub(super) async fn run_on<IO>(io: IO, dialer: Dialer)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(8);
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(16);
    let writer = tokio::spawn(crate::upgrade::write_loop(wr, out_rx));
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if in_tx.send(buf[..n].to_vec()).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    run(dialer, in_rx, out_tx).await;
    reader.abort();
    let _ = writer.await;
}

/// The session: until the client goes away (EOF, GOAWAY, a protocol error). Ends every
/// forwarded connection with it.
pub(super) async fn run(
    dialer: Dialer,
    mut inbound: mpsc::Receiver<Vec<u8>>,
    outbound: mpsc::Sender<Vec<u8>>,
) {
    let server: Shared = Arc::new(Mutex::new(Server::new()));
    let mut conns: HashMap<String, (mpsc::Sender<ToBackend>, JoinHandle<()>)> = HashMap::new();
    'session: while let Some(bytes) = inbound.recv().await {
        let (events, out) = {
            let mut s = lock(&server);
            match s.receive(&bytes) {
                Ok(events) => (events, s.take_output()),
                Err(e) => {
                    tracing::info!(error = %e, "bad frame from client");
                    break;
                }
            }
        };
        if !out.is_empty() && outbound.send(out).await.is_err() {
            break;
        }
        for e in events {
            match e {
                ServerEvent::Connect { request_id, port } => {
                    tracing::debug!(%request_id, port, "connection");
                    let (tx, rx) = mpsc::channel(TO_BACKEND_DEPTH);
                    let task = tokio::spawn(forward(
                        dialer.clone(),
                        server.clone(),
                        outbound.clone(),
                        request_id.clone(),
                        port,
                        rx,
                    ));
                    conns.insert(request_id, (tx, task));
                }
                ServerEvent::Data { request_id, data } => {
                    if let Some((tx, _)) = conns.get(&request_id) {
                        let _ = tx.send(ToBackend::Data(data)).await;
                    }
                }
                ServerEvent::DataFin { request_id } => {
                    if let Some((tx, _)) = conns.get(&request_id) {
                        let _ = tx.send(ToBackend::Fin).await;
                    }
                }
                ServerEvent::Reset { request_id } => {
                    if let Some((_, task)) = conns.remove(&request_id) {
                        task.abort();
                    }
                }
                ServerEvent::Refused { stream_id, refusal } => {
                    tracing::info!(stream_id, ?refusal, "stream refused");
                }
                ServerEvent::GoAway => break 'session,
            }
        }
        // Forget connections that ended on their own.
        conns.retain(|_, (_, task)| !task.is_finished());
    }
    for (_, (_, task)) in conns {
        task.abort();
    }
}

/// One forwarded connection: dial, relay both ways (half-close kept), then end as kubelet does.
async fn forward(
    dialer: Dialer,
    server: Shared,
    outbound: mpsc::Sender<Vec<u8>>,
    rid: String,
    port: u16,
    mut from_client: mpsc::Receiver<ToBackend>,
) {
    let send = |f: &dyn Fn(&mut Server)| {
        let mut s = lock(&server);
        f(&mut s);
        s.take_output()
    };
    let tcp = match dialer.dial(port).await {
        Ok(t) => t,
        Err(message) => {
            tracing::info!(%rid, port, "nothing listens on the port");
            let out = send(&|s| {
                s.fail(&rid, &message);
                s.close(&rid);
            });
            let _ = outbound.send(out).await;
            return;
        }
    };
    let (mut r, mut w) = tcp.into_split();
    let upload = async {
        while let Some(msg) = from_client.recv().await {
            match msg {
                ToBackend::Data(d) => {
                    if w.write_all(&d).await.is_err() {
                        break;
                    }
                }
                ToBackend::Fin => {
                    let _ = w.shutdown().await;
                    break;
                }
            }
        }
        (w, from_client)
    };
    let download = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let out = send(&|s| s.send(&rid, &buf[..n]));
                    if outbound.send(out).await.is_err() {
                        return;
                    }
                }
            }
        }
        let out = send(&|s| s.send_fin(&rid));
        let _ = outbound.send(out).await;
    };
    // Both directions end before the connection does: the client's FIN (or reset) ends the
    // upload, the backend's EOF the download.
    let ((w, mut from_client), ()) = tokio::join!(upload, download);
    drop(w);
    from_client.close();
    let out = send(&|s| s.close(&rid));
    let _ = outbound.send(out).await;
}
