//! exec/attach over SPDY/3.1, the server side as kubelet (moby/spdystream) speaks it
//! (kubernetes-streams.md §1.3, §2.3):
//!
//! ```text
//! client                                   server
//! POST …/exec  Upgrade: SPDY/3.1  X-Stream-Protocol-Version: v5…, v4…, …
//!                                          101  X-Stream-Protocol-Version: <chosen>
//! SYN_STREAM 1 streamtype=error    ─►      ◄─ SYN_REPLY 1 (empty block)
//! SYN_STREAM 3 streamtype=stdin    ─►      ◄─ SYN_REPLY 3     … stdout 5, stderr 7 | resize
//!                                          (all expected streams present: start the process)
//! DATA 3 (stdin) … DATA 3 FIN (EOF) ─►     ◄─ DATA 5/7 (output)
//! PING n                           ─►      ◄─ PING n
//!                                          ◄─ DATA 5 FIN, DATA 7 FIN, DATA 1 Status+FIN, GOAWAY
//! RST_STREAM … CANCEL, GOAWAY      ─►      (close)
//! ```
//! Header blocks share ONE zlib context per direction for the whole connection (every client
//! block inflated in order, even of frames we ignore; every reply deflated by one encoder):
//! [`ServerSession`] keeps both.
//!
//! [`Connection`] is the I/O-free part (unit-tested against byte vectors): `proto`'s
//! [`ServerSession`] plus what exec/attach give the streams; [`accept`] drives it over the
//! upgraded socket.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use proto::exec::StreamOptions;
use proto::resize::TerminalSize;
use proto::spdy::session::{Event as SessionEvent, ServerSession};
use proto::spdy::{Frame, SpdyError};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;

use super::Target;
use crate::ctx::Ctx;
use crate::process::{Input, Output};
use crate::respond::{self, Body};

/// Protocols the SPDY side speaks, matched in the client's order. v5 over SPDY is v4 (stdin
/// half-close is a DATA+FIN in every SPDY version); kubelets answer v4.
const SUPPORTED: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// kubelet's `streamCreationTimeout`.
const STREAM_WAIT: Duration = Duration::from_secs(30);
/// How long to wait for the client's teardown after the final frames.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Coalesce queued frames into writes of about this size.
const WRITE_BATCH: usize = 64 << 10;

/// The `streamtype` header values of exec/attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StreamType {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

impl StreamType {
    fn from_header(v: &str) -> Option<Self> {
        Some(match v {
            "error" => StreamType::Error,
            "stdin" => StreamType::Stdin,
            "stdout" => StreamType::Stdout,
            "stderr" => StreamType::Stderr,
            "resize" => StreamType::Resize,
            _ => return None,
        })
    }

    /// The streams a client with these options opens (client-go `streamProtocolV4`).
    pub fn expected(opts: &StreamOptions) -> Vec<Self> {
        let mut v = vec![StreamType::Error];
        if opts.stdin {
            v.push(StreamType::Stdin);
        }
        if opts.stdout {
            v.push(StreamType::Stdout);
        }
        if opts.stderr && !opts.tty {
            v.push(StreamType::Stderr);
        }
        if opts.tty {
            v.push(StreamType::Resize);
        }
        v
    }
}

/// What the client did, for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A stream was opened (and already replied to).
    Opened(StreamType),
    Stdin(Bytes),
    /// stdin FIN or reset.
    StdinEof,
    Resize(TerminalSize),
    /// The client reset one of its streams.
    Reset(StreamType),
    /// The client is going away.
    GoAway,
}

/// The exec/attach view of one SPDY connection: [`ServerSession`] does the framing, header
/// contexts, SYN_REPLYs and PINGs; this maps streams to their `streamtype` and decodes the
/// resize stream.
#[derive(Debug, Default)]
pub(crate) struct Connection {
    session: ServerSession,
    streams: HashMap<u32, StreamType>,
    ids: HashMap<StreamType, u32>,
    last_client_id: u32,
    /// Resize is a JSON stream that DATA frames may split anywhere.
    resize_buf: Vec<u8>,
}

impl Connection {
    pub fn new() -> Self {
        Self::default()
    }

    /// The client's stream of this type, if opened.
    pub fn id(&self, t: StreamType) -> Option<u32> {
        self.ids.get(&t).copied()
    }

    /// The highest stream id the client opened (GOAWAY's last-good id).
    pub fn last_client_id(&self) -> u32 {
        self.last_client_id
    }

    /// Feeds bytes read from the client. Frames to send back (SYN_REPLY, PING) are appended to
    /// `out`; what the session must act on is returned.
    pub fn receive(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<Vec<Event>, SpdyError> {
        let mut events = Vec::new();
        for e in self.session.receive(bytes)? {
            match e {
                SessionEvent::StreamOpened { id, headers, .. } => {
                    self.last_client_id = self.last_client_id.max(id);
                    let kind = proto::spdy::headers::get(&headers, "streamtype")
                        .and_then(StreamType::from_header);
                    match kind {
                        Some(t) if !self.ids.contains_key(&t) => {
                            self.ids.insert(t, id);
                            self.streams.insert(id, t);
                            events.push(Event::Opened(t));
                        }
                        // Replied to (the session always does) but not used.
                        other => tracing::debug!(id, ?other, "ignoring unexpected stream"),
                    }
                }
                SessionEvent::Data { id, data } => match self.streams.get(&id) {
                    Some(StreamType::Stdin) => events.push(Event::Stdin(Bytes::from(data))),
                    Some(StreamType::Resize) => {
                        self.resize_buf.extend_from_slice(&data);
                        self.parse_resizes(&mut events);
                    }
                    _ => {}
                },
                SessionEvent::Fin { id } => {
                    if self.streams.get(&id) == Some(&StreamType::Stdin) {
                        events.push(Event::StdinEof);
                    }
                }
                SessionEvent::Reset { id, .. } => {
                    if let Some(t) = self.streams.get(&id).copied() {
                        if t == StreamType::Stdin {
                            events.push(Event::StdinEof);
                        }
                        events.push(Event::Reset(t));
                    }
                }
                SessionEvent::GoAway => events.push(Event::GoAway),
            }
        }
        out.extend(self.session.take_output());
        Ok(events)
    }

    fn parse_resizes(&mut self, events: &mut Vec<Event>) {
        let mut it =
            serde_json::Deserializer::from_slice(&self.resize_buf).into_iter::<TerminalSize>();
        let mut consumed = 0;
        loop {
            match it.next() {
                Some(Ok(size)) => {
                    events.push(Event::Resize(size));
                    consumed = it.byte_offset();
                }
                // A partial object: wait for the rest.
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "bad resize message");
                    consumed = self.resize_buf.len();
                    break;
                }
                None => {
                    consumed = self.resize_buf.len();
                    break;
                }
            }
        }
        self.resize_buf.drain(..consumed);
    }
}

/// A DATA frame (server → client frames carry no header blocks).
fn data(stream_id: u32, payload: &[u8], fin: bool) -> Vec<u8> {
    let mut out = Vec::new();
    proto::spdy::frame::encode_data(stream_id, fin, payload, &mut out);
    out
}

/// Validates the protocol list, answers 101 and runs the session on the upgraded connection.
pub(super) async fn accept(
    ctx: &Ctx,
    mut req: Request<Incoming>,
    opts: StreamOptions,
    target: Target,
    span: tracing::Span,
) -> Response<Body> {
    let offered: Vec<String> = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let Some(chosen) = offered
        .iter()
        .find_map(|p| SUPPORTED.iter().find(|s| **s == p))
    else {
        // httpstream.Handshake answers a failed negotiation with 403.
        return respond::status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {SUPPORTED:?}"
            ),
        );
    };
    tracing::info!(protocol = chosen, "spdy upgrade");
    let mut resp = super::switch_protocols(ctx, &mut req, span, "SPDY/3.1", move |io| {
        run(io, opts, target)
    });
    resp.headers_mut().insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(chosen),
    );
    resp
}

/// Runs one session: wait for the streams, start the target, relay, end with the Status.
pub(crate) async fn run<IO>(io: IO, opts: StreamOptions, target: Target)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let (wtx, wrx) = mpsc::channel::<Vec<u8>>(8);
    let writer = tokio::spawn(write_loop(wr, wrx));
    let mut conn = Connection::new();
    let expected = StreamType::expected(&opts);
    let mut early = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let ready = tokio::time::timeout(STREAM_WAIT, async {
        while !expected.iter().all(|t| conn.id(*t).is_some()) {
            let n = rd.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed before the client created its streams".to_string());
            }
            let mut out = Vec::new();
            early.extend(
                conn.receive(&buf[..n], &mut out)
                    .map_err(|e| e.to_string())?,
            );
            if !out.is_empty() && wtx.send(out).await.is_err() {
                return Err("connection closed".to_string());
            }
        }
        Ok(())
    })
    .await;
    match ready {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return tracing::info!(error = %e, "session not started"),
        Err(_) => return tracing::info!("timed out waiting for client to create streams"),
    }
    let (error_id, stdout_id, stderr_id) = (
        conn.id(StreamType::Error)
            .expect("error stream is always expected"),
        conn.id(StreamType::Stdout),
        conn.id(StreamType::Stderr),
    );
    // Streams opened later are ignored, so this is the last one the session uses.
    let last_good = conn.last_client_id();
    let mut session = target.start();
    let input = session.input.clone();
    drop(session.input);
    let mut reader = tokio::spawn(read_client(rd, conn, early, wtx.clone(), input));
    loop {
        let out = tokio::select! {
            out = session.output.recv() => out,
            _ = &mut reader => {
                tracing::info!("client went away before the process ended");
                return;
            }
        };
        let frame = match out {
            Some(Output::Stdout(b)) => stdout_id.map(|id| data(id, &b, false)),
            Some(Output::Stderr(b)) => stderr_id.map(|id| data(id, &b, false)),
            Some(Output::Exit(status)) => {
                tracing::info!(status = %status.status, reason = %status.reason, "session ended");
                // All output was sent; FIN the output streams (client-go waits for their EOF),
                // then the Status and FIN on the error stream, then GOAWAY as spdystream's Close.
                let mut end = Vec::new();
                for id in [stdout_id, stderr_id].into_iter().flatten() {
                    end.extend(data(id, &[], true));
                }
                end.extend(data(error_id, &status.to_json(), true));
                Frame::GoAway {
                    last_good,
                    status: 0,
                }
                .encode(&mut end);
                let _ = wtx.send(end).await;
                break;
            }
            None => break,
        };
        if let Some(f) = frame
            && wtx.send(f).await.is_err()
        {
            reader.abort();
            return;
        }
    }
    // Let the client tear down (RST_STREAM + GOAWAY, or just close) before closing our side.
    let _ = tokio::time::timeout(CLOSE_WAIT, &mut reader).await;
    reader.abort();
    drop(wtx);
    let _ = writer.await;
}

/// Client → session, until EOF, an error or GOAWAY. Returns the connection state.
async fn read_client<R: AsyncRead + Unpin>(
    mut rd: R,
    mut conn: Connection,
    early: Vec<Event>,
    wtx: mpsc::Sender<Vec<u8>>,
    input: mpsc::Sender<Input>,
) -> Connection {
    let mut buf = vec![0u8; 64 << 10];
    let mut events = early;
    let mut stdin_open = true;
    loop {
        for e in events.drain(..) {
            let msg = match e {
                Event::Stdin(b) if stdin_open => Input::Stdin(b),
                Event::StdinEof if stdin_open => {
                    stdin_open = false;
                    Input::CloseStdin
                }
                Event::Resize(size) => Input::Resize(size),
                Event::GoAway => return conn,
                _ => continue,
            };
            // A process that stopped reading must not stop us answering pings.
            let _ = input.send(msg).await;
        }
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => return conn,
            Ok(n) => n,
        };
        let mut out = Vec::new();
        match conn.receive(&buf[..n], &mut out) {
            Ok(ev) => events = ev,
            Err(e) => {
                tracing::info!(error = %e, "bad frame from client");
                return conn;
            }
        }
        if !out.is_empty() && wtx.send(out).await.is_err() {
            return conn;
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(mut batch) = rx.recv().await {
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if wr.write_all(&batch).await.is_err() || wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::spdy::frame::RST_CANCEL;
    use proto::spdy::{HeaderDecoder, HeaderEncoder};

    /// What kubectl's side writes: SYN_STREAMs with `streamtype` headers, all deflated by one
    /// client context.
    struct Client {
        enc: HeaderEncoder,
        dec: HeaderDecoder,
    }

    impl Client {
        fn new() -> Self {
            Self {
                enc: HeaderEncoder::new(),
                dec: HeaderDecoder::new(),
            }
        }

        fn syn(&mut self, stream_id: u32, kind: &str) -> Vec<u8> {
            Frame::SynStream {
                stream_id,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                block: self.enc.encode(&[("streamtype", kind)]),
            }
            .to_bytes()
        }

        /// Decodes every frame in `bytes`, inflating header blocks with the one server→client
        /// context (which fails if the server used more than one).
        fn frames(&mut self, mut bytes: &[u8]) -> Vec<Frame> {
            let mut out = Vec::new();
            while let Some((frame, used)) = proto::spdy::decode(bytes).unwrap() {
                if let Frame::SynReply { block, .. } = &frame {
                    assert_eq!(
                        self.dec.decode(block).unwrap(),
                        vec![],
                        "SYN_REPLY has an empty block"
                    );
                }
                out.push(frame);
                bytes = &bytes[used..];
            }
            assert!(bytes.is_empty(), "trailing partial frame");
            out
        }
    }

    fn opts(stdin: bool, tty: bool) -> StreamOptions {
        StreamOptions {
            stdin,
            stdout: true,
            stderr: !tty,
            tty,
            ..StreamOptions::default()
        }
    }

    #[test]
    fn data_frame_bytes() {
        // stream 5, FIN, length 2, "hi".
        assert_eq!(
            data(5, b"hi", true),
            [0, 0, 0, 5, 0x01, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(data(7, b"", false), [0, 0, 0, 7, 0, 0, 0, 0]);
    }

    #[test]
    fn replies_to_every_stream_with_one_header_context() {
        let mut client = Client::new();
        let mut conn = Connection::new();
        let mut wire = Vec::new();
        for (id, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
            wire.extend(client.syn(id, kind));
        }
        let mut out = Vec::new();
        let events = conn.receive(&wire, &mut out).unwrap();
        use StreamType::*;
        assert_eq!(events, [Error, Stdin, Stdout, Stderr].map(Event::Opened));
        // SYN_REPLY: control bit, version 3, type 2, no flags; its first block opens the zlib
        // stream with the SPDY dictionary id, like kubectl's own first block.
        assert_eq!(&out[..4], &[0x80, 0x03, 0x00, 0x02]);
        assert_eq!(&out[8..12], &[0, 0, 0, 1]);
        assert_eq!(&out[12..18], &[0x78, 0xF9, 0xE3, 0xC6, 0xA7, 0xC2]);
        let replies: Vec<u32> = client
            .frames(&out)
            .into_iter()
            .map(|f| match f {
                Frame::SynReply {
                    stream_id,
                    fin: false,
                    ..
                } => stream_id,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(replies, [1, 3, 5, 7]);
        assert_eq!(conn.id(Stdout), Some(5));
        assert_eq!(conn.last_client_id(), 7);
        assert_eq!(
            StreamType::expected(&opts(true, false)),
            [Error, Stdin, Stdout, Stderr]
        );
        assert_eq!(
            StreamType::expected(&opts(true, true)),
            [Error, Stdin, Stdout, Resize]
        );
    }

    #[test]
    fn frames_split_anywhere_give_the_same_events() {
        let mut client = Client::new();
        let mut wire = Vec::new();
        for (id, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")] {
            wire.extend(client.syn(id, kind));
        }
        wire.extend(data(3, b"ls\r", false));
        wire.extend(data(7, b"{\"Width\":100,\"Height\":30}\n", false));
        wire.extend(Frame::Ping { id: 1 }.to_bytes());
        wire.extend(data(3, b"", true));
        let whole = {
            let mut out = Vec::new();
            (Connection::new().receive(&wire, &mut out).unwrap(), out)
        };
        for cut in 1..wire.len() {
            let mut conn = Connection::new();
            let mut out = Vec::new();
            let mut events = conn.receive(&wire[..cut], &mut out).unwrap();
            events.extend(conn.receive(&wire[cut..], &mut out).unwrap());
            assert_eq!((events, out), whole, "split at {cut}");
        }
        let tail = &whole.0[4..];
        assert_eq!(
            tail,
            [
                Event::Stdin(Bytes::from_static(b"ls\r")),
                Event::Resize(TerminalSize {
                    width: 100,
                    height: 30
                }),
                Event::StdinEof,
            ]
        );
        // The PING is echoed with the client's id.
        assert!(
            whole
                .1
                .ends_with(&[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1])
        );
    }

    #[test]
    fn resize_objects_split_across_data_frames() {
        let mut client = Client::new();
        let mut conn = Connection::new();
        let mut out = Vec::new();
        conn.receive(&client.syn(1, "resize"), &mut out).unwrap();
        assert_eq!(
            conn.receive(&data(1, b"{\"Width\":80,", false), &mut out)
                .unwrap(),
            []
        );
        let events = conn
            .receive(
                &data(1, b"\"Height\":24}\n{\"Width\":1,\"Height\":2}", false),
                &mut out,
            )
            .unwrap();
        assert_eq!(
            events,
            [
                Event::Resize(TerminalSize {
                    width: 80,
                    height: 24
                }),
                Event::Resize(TerminalSize {
                    width: 1,
                    height: 2
                })
            ]
        );
    }

    #[test]
    fn resets_goaway_and_unknown_streams() {
        let mut client = Client::new();
        let mut conn = Connection::new();
        let mut out = Vec::new();
        let mut wire = client.syn(1, "stdin");
        wire.extend(client.syn(3, "portforward-data"));
        wire.extend(
            Frame::RstStream {
                stream_id: 1,
                status: RST_CANCEL,
            }
            .to_bytes(),
        );
        wire.extend(
            Frame::GoAway {
                last_good: 3,
                status: 0,
            }
            .to_bytes(),
        );
        let events = conn.receive(&wire, &mut out).unwrap();
        assert_eq!(
            events,
            [
                Event::Opened(StreamType::Stdin),
                Event::StdinEof,
                Event::Reset(StreamType::Stdin),
                Event::GoAway
            ]
        );
        // Unknown stream types are still replied to (and their headers inflated in order).
        assert_eq!(client.frames(&out).len(), 2);
        // A header block that continues a zlib context this connection never saw (its first
        // block went elsewhere) is a protocol error.
        let mut other = Client::new();
        let _first_block_elsewhere = other.syn(1, "error");
        let second = other.syn(3, "stdin");
        assert!(Connection::new().receive(&second, &mut out).is_err());
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
        let server = tokio::spawn(run(server_io, opts(true, false), target));
        let mut client = Client::new();
        let mut wire = Vec::new();
        for (id, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
            wire.extend(client.syn(id, kind));
        }
        wire.extend(data(3, b"hello", false));
        wire.extend(data(3, b"", true));
        client_io.write_all(&wire).await.unwrap();

        // Read until GOAWAY, then tear down like kubectl.
        let (mut got, mut buf) = (Vec::new(), vec![0u8; 4096]);
        let frames = loop {
            let n = client_io.read(&mut buf).await.unwrap();
            assert!(n > 0, "server closed before GOAWAY");
            got.extend_from_slice(&buf[..n]);
            let mut probe = &got[..];
            let mut complete = false;
            while let Some((f, used)) = proto::spdy::decode(probe).unwrap() {
                complete |= matches!(f, Frame::GoAway { .. });
                probe = &probe[used..];
            }
            if complete {
                break client.frames(&got);
            }
        };
        let mut teardown = Vec::new();
        for id in [1, 3, 5, 7] {
            Frame::RstStream {
                stream_id: id,
                status: RST_CANCEL,
            }
            .encode(&mut teardown);
        }
        Frame::GoAway {
            last_good: 0,
            status: 0,
        }
        .encode(&mut teardown);
        client_io.write_all(&teardown).await.unwrap();
        server.await.unwrap();

        let (mut stdout, mut stderr, mut status, mut fins) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for f in &frames {
            if let Frame::Data {
                stream_id,
                fin,
                data,
            } = f
            {
                match stream_id {
                    5 => stdout.extend_from_slice(data),
                    7 => stderr.extend_from_slice(data),
                    1 => status.extend_from_slice(data),
                    _ => panic!("data on stream {stream_id}"),
                }
                if *fin {
                    fins.push(*stream_id);
                }
            }
        }
        assert_eq!(stdout, b"hello");
        assert_eq!(stderr, b"err\n");
        assert_eq!(
            proto::status::Status::parse(&status).unwrap(),
            proto::status::Status::exit_code(3)
        );
        assert_eq!(fins, [5, 7, 1], "output streams end before the Status");
        assert_eq!(
            frames.last(),
            Some(&Frame::GoAway {
                last_good: 7,
                status: 0
            })
        );
    }
}
