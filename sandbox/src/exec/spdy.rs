//! exec/attach over SPDY/3.1, the server side as kubelet (moby/spdystream) speaks it
//! (kubernetes-streams.md §1.3, §2.3). The protocol itself — stream pairing by `streamtype`,
//! readiness, SYN_REPLYs, PINGs, the final FINs, Status and GOAWAY, one header context per
//! direction — is `proto::spdy::remotecommand::Server`, I/O-free and tested there against byte
//! vectors; this module drives it over the upgraded socket and connects it to a process.
//!
//! Two tasks share the [`Server`] (behind a mutex never held across an await): a reader that
//! answers the client and forwards stdin, resizes and EOF to the process, and the session loop
//! that sends the process's output. They must be apart: a process that stops reading stdin
//! while its output is not drained would otherwise deadlock the connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use proto::exec::StreamOptions;
use proto::spdy::remotecommand::{self, Server, ServerEvent, StreamType};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use super::Target;
use crate::ctx::Ctx;
use crate::process::{Input, Output};
use crate::respond::{self, Body};

/// kubelet's `streamCreationTimeout`.
const STREAM_WAIT: Duration = Duration::from_secs(30);
/// How long to wait for the client's teardown after the final frames.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Validates the protocol list, answers 101 and runs the session on the upgraded connection.
pub(super) async fn accept(
    ctx: &Ctx,
    mut req: Request<Incoming>,
    opts: StreamOptions,
    target: Target,
    span: tracing::Span,
) -> Response<Body> {
    let offered: Vec<&str> = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let Some(chosen) = remotecommand::negotiate(offered.iter().copied()) else {
        // httpstream.Handshake answers a failed negotiation with 403.
        return respond::status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {:?}",
                remotecommand::SERVER_PROTOCOLS
            ),
        );
    };
    tracing::info!(protocol = chosen, "spdy upgrade");
    let drop_after_status = ctx.modes.drop_after_status;
    let mut resp = crate::upgrade::switch_protocols(ctx, &mut req, span, "SPDY/3.1", move |io| {
        run(io, opts, target, drop_after_status)
    });
    resp.headers_mut().insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(chosen),
    );
    resp
}

type Shared = Arc<Mutex<Server>>;

fn lock(server: &Shared) -> std::sync::MutexGuard<'_, Server> {
    server.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs one session: wait for the streams, start the target, relay, end with the Status.
pub(crate) async fn run<IO>(io: IO, opts: StreamOptions, target: Target, drop_after_status: bool)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let (wtx, wrx) = mpsc::channel::<Vec<u8>>(8);
    let writer = tokio::spawn(crate::upgrade::write_loop(wr, wrx));
    let server: Shared = Arc::new(Mutex::new(Server::new(&opts)));
    let (ready_tx, ready_rx) = oneshot::channel();
    let (input_tx, input_rx) = oneshot::channel();
    let mut reader = tokio::spawn(read_client(
        rd,
        server.clone(),
        wtx.clone(),
        ready_tx,
        input_rx,
    ));
    match tokio::time::timeout(STREAM_WAIT, ready_rx).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => {
            return tracing::info!("connection ended before the client created its streams");
        }
        Err(_) => {
            reader.abort();
            return tracing::info!("timed out waiting for client to create streams");
        }
    }
    let mut session = target.start();
    let _ = input_tx.send(session.input.clone());
    drop(session.input);
    loop {
        let out = tokio::select! {
            out = session.output.recv() => out,
            _ = &mut reader => {
                tracing::info!("client went away before the process ended");
                return;
            }
        };
        let bytes = {
            let mut s = lock(&server);
            match &out {
                Some(Output::Stdout(b)) => s.send(StreamType::Stdout, b),
                Some(Output::Stderr(b)) => s.send(StreamType::Stderr, b),
                Some(Output::Exit(status)) => {
                    tracing::info!(status = %status.status, reason = %status.reason, "session ended");
                    s.finish(&status.to_json());
                }
                None => {}
            }
            s.take_output()
        };
        let end = !matches!(out, Some(Output::Stdout(_) | Output::Stderr(_)));
        if !bytes.is_empty() && wtx.send(bytes).await.is_err() {
            reader.abort();
            return;
        }
        if end {
            break;
        }
    }
    // Let the client tear down (RST_STREAM + GOAWAY, or just close) before closing our side,
    // unless the mode is to drop the connection right after the Status.
    if drop_after_status {
        tracing::info!("dropping the connection after the Status");
    } else {
        let _ = tokio::time::timeout(CLOSE_WAIT, &mut reader).await;
    }
    reader.abort();
    drop(wtx);
    let _ = writer.await;
}

/// Client → session, until EOF, an error or GOAWAY: answers (SYN_REPLY, PING) go out at once;
/// `ready` fires when every expected stream is open, after which input goes to the process.
async fn read_client<R: AsyncRead + Unpin>(
    mut rd: R,
    server: Shared,
    wtx: mpsc::Sender<Vec<u8>>,
    ready: oneshot::Sender<()>,
    input: oneshot::Receiver<mpsc::Sender<Input>>,
) {
    let mut buf = vec![0u8; 64 << 10];
    let (mut ready, mut input) = (Some(ready), Some(input));
    let mut to_process: Option<mpsc::Sender<Input>> = None;
    // Input that arrived before the process started.
    let mut early: Vec<Input> = Vec::new();
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let (events, out) = {
            let mut s = lock(&server);
            match s.receive(&buf[..n]) {
                Ok(events) => (events, s.take_output()),
                Err(e) => return tracing::info!(error = %e, "bad frame from client"),
            }
        };
        if !out.is_empty() && wtx.send(out).await.is_err() {
            return;
        }
        for e in events {
            let msg = match e {
                ServerEvent::Ready => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                    // The process starts now; wait for its stdin.
                    if let Some(rx) = input.take() {
                        match rx.await {
                            Ok(tx) => to_process = Some(tx),
                            Err(_) => return,
                        }
                    }
                    continue;
                }
                ServerEvent::Stdin(b) => Input::Stdin(b.into()),
                ServerEvent::StdinEof => Input::CloseStdin,
                ServerEvent::Resize(size) => Input::Resize(size),
                ServerEvent::GoAway => return,
                ServerEvent::Opened(_) | ServerEvent::Reset(_) => continue,
            };
            match &to_process {
                // A process that stopped reading must not stop us answering pings for long:
                // the channel is bounded, and a closed one just drops input.
                Some(tx) => {
                    for m in early.drain(..) {
                        let _ = tx.send(m).await;
                    }
                    let _ = tx.send(msg).await;
                }
                None => early.push(msg),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::spdy::remotecommand::{Client, ClientEvent};
    use proto::status::Status;

    fn opts(stdin: bool, tty: bool) -> StreamOptions {
        StreamOptions {
            stdin,
            stdout: true,
            stderr: !tty,
            tty,
            ..StreamOptions::default()
        }
    }

    /// The whole server over an in-memory pipe: streams, a process, its output, the Status.
    #[tokio::test]
    async fn session_over_a_pipe() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut client_io, server_io) = tokio::io::duplex(1 << 16);
        let target = Target::Exec(crate::process::ProcessSpec {
            argv: ["sh", "-c", "cat; echo err >&2; exit 3"]
                .map(String::from)
                .to_vec(),
            workdir: "/".into(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        });
        let o = opts(true, false);
        let server = tokio::spawn(run(server_io, o.clone(), target, false));
        // kube's side, as the gateway would dial it: proto's remote-command client.
        let mut client = Client::new(&o);
        client_io.write_all(&client.take_output()).await.unwrap();
        let (mut events, mut buf) = (Vec::new(), vec![0u8; 4096]);
        while !events.contains(&ClientEvent::GoAway) {
            let n = client_io.read(&mut buf).await.unwrap();
            assert!(n > 0, "server closed before GOAWAY");
            for e in client.receive(&buf[..n]).unwrap() {
                if e == ClientEvent::Ready {
                    client.send_stdin(b"hello");
                    client.close_stdin();
                    client_io.write_all(&client.take_output()).await.unwrap();
                }
                events.push(e);
            }
        }
        // Tear down like kubectl; the server task ends.
        client.close();
        client_io.write_all(&client.take_output()).await.unwrap();
        server.await.unwrap();

        // stdout and stderr come from two pipes: their relative order is the process's.
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        events.retain(|e| match e {
            ClientEvent::Stdout(b) => {
                stdout.extend_from_slice(b);
                false
            }
            ClientEvent::Stderr(b) => {
                stderr.extend_from_slice(b);
                false
            }
            _ => true,
        });
        assert_eq!((&stdout[..], &stderr[..]), (&b"hello"[..], &b"err\n"[..]));
        assert_eq!(
            events,
            [
                ClientEvent::Ready,
                // Output streams end before the Status.
                ClientEvent::OutputEnd(StreamType::Stdout),
                ClientEvent::OutputEnd(StreamType::Stderr),
                ClientEvent::Status(Status::exit_code(3).to_json()),
                ClientEvent::GoAway,
            ]
        );
    }
}
