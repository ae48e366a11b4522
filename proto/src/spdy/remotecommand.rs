//! exec/attach over SPDY/3.1 (`v4.channel.k8s.io` and older names; kubernetes-streams.md §1.3),
//! both ends, without I/O:
//!
//! ```text
//! client (kubectl, Client)                 server (kubelet, the sandbox, the gateway: Server)
//! POST …/exec  Upgrade: SPDY/3.1  X-Stream-Protocol-Version: v5…, v4…, …
//!                                          101  X-Stream-Protocol-Version: v4.channel.k8s.io
//! SYN_STREAM 1 streamtype=error    ─►      ◄─ SYN_REPLY 1 (empty block)
//! SYN_STREAM 3 streamtype=stdin    ─►      ◄─ SYN_REPLY 3     … stdout 5, stderr 7 | resize
//!                                          (every expected stream open: Ready, start the process)
//! DATA 3 (stdin) … DATA 3 FIN (EOF) ─►     ◄─ DATA 5/7 (output)
//! DATA 9 {"Width":…,"Height":…}    ─►
//! PING n                           ─►      ◄─ PING n
//!                                          ◄─ DATA 5 FIN, DATA 7 FIN, DATA 1 Status+FIN, GOAWAY
//! RST_STREAM … CANCEL, GOAWAY      ─►      (close)
//! ```
//! [`Server`] is kubelet's side: it pairs streams with their `streamtype`, says when every
//! stream the request asked for is open ([`ServerEvent::Ready`]: client-go opens them one by
//! one, each waiting for its SYN_REPLY, so nothing may be written before), holds output that
//! arrives earlier, and ends with FINs, the Status and GOAWAY. [`Client`] is kubectl's side, for
//! a relay that dials a cluster over SPDY. Both sit on the connection types of
//! [`super::session`] and [`super::client`], which keep the one header context per direction.
//!
//! With `v5.channel.k8s.io` offered over SPDY, servers answer v4: stdin half-close is a
//! DATA+FIN in every SPDY version, so v5 adds nothing here.

use std::collections::VecDeque;

use super::client::{self, ClientSession};
use super::frame::{RST_CANCEL, SpdyError};
use super::headers;
use super::session::{self, ServerSession};
use crate::exec::StreamOptions;
use crate::resize::{self, TerminalSize};

/// The protocol a SPDY remote-command server answers (what kubelets speak).
pub const PROTOCOL_V4: &str = "v4.channel.k8s.io";
/// What a server accepts from a client's `X-Stream-Protocol-Version` list, in the client's
/// order of preference.
pub const SERVER_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", PROTOCOL_V4];
/// The header naming a stream's role.
pub const STREAM_TYPE: &str = "streamtype";
/// Largest Status a [`Client`] keeps from the error stream (client-go reads it whole; real ones
/// are under 1 KiB).
pub const MAX_STATUS: usize = 64 << 10;
/// Largest unfinished resize message a [`Server`] keeps waiting for the rest of it.
pub const MAX_RESIZE_BUFFER: usize = 4 << 10;
/// Output held for a client whose streams are not all open yet, past which the caller should
/// stop reading its source ([`Server::pending_len`]).
pub const MAX_PENDING: usize = 1 << 20;

/// The `streamtype` header values of exec/attach (apimachinery `remotecommand` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

impl StreamType {
    const ALL: [StreamType; 5] = [
        StreamType::Error,
        StreamType::Stdin,
        StreamType::Stdout,
        StreamType::Stderr,
        StreamType::Resize,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StreamType::Error => "error",
            StreamType::Stdin => "stdin",
            StreamType::Stdout => "stdout",
            StreamType::Stderr => "stderr",
            StreamType::Resize => "resize",
        }
    }

    pub fn from_name(v: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == v)
    }

    /// The channel-protocol channel carrying the same stream (WebSocket relays map by it).
    pub fn channel(self) -> u8 {
        match self {
            StreamType::Stdin => crate::channel::STDIN,
            StreamType::Stdout => crate::channel::STDOUT,
            StreamType::Stderr => crate::channel::STDERR,
            StreamType::Error => crate::channel::ERROR,
            StreamType::Resize => crate::channel::RESIZE,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The streams a client with these options opens, in the order client-go opens them
    /// (`streamProtocolV2.createStreams`, then resize from v3 on): error, stdin, stdout, stderr
    /// (not with a TTY: the terminal merges it), resize (only with a TTY).
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

/// Picks the protocol a server answers from a client's `X-Stream-Protocol-Version` values (one
/// per header line, or comma-separated): the first offered one in [`SERVER_PROTOCOLS`]. v5 is
/// answered as v4 (see the module doc), as kubelets do.
pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    offered
        .into_iter()
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .find(|p| SERVER_PROTOCOLS.contains(p))
        .map(|_| PROTOCOL_V4)
}

// === Server ===

/// What the client did, for the server's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A stream was opened (and already replied to).
    Opened(StreamType),
    /// Every stream the request asked for is open: start the process; output may flow.
    Ready,
    Stdin(Vec<u8>),
    /// stdin reached EOF (FIN) or was reset; reported once.
    StdinEof,
    Resize(TerminalSize),
    /// The client reset one of its streams.
    Reset(StreamType),
    /// The client is going away.
    GoAway,
}

/// The server side of one remote-command connection.
#[derive(Debug)]
pub struct Server {
    session: ServerSession,
    expected: Vec<StreamType>,
    tty: bool,
    ids: [Option<u32>; 5],
    /// Stream id → type, for the streams in use (the first of each type).
    streams: Vec<(u32, StreamType)>,
    ready: bool,
    stdin_open: bool,
    /// Resize is a JSON stream that DATA frames may split anywhere.
    resize_buf: Vec<u8>,
    /// Output queued before [`ServerEvent::Ready`].
    pending: VecDeque<(StreamType, Vec<u8>)>,
    pending_bytes: usize,
    /// The Status to end with, once ready (`Some(empty)`: end without one).
    finish: Option<Vec<u8>>,
    finished: bool,
}

impl Server {
    /// A server for a request with these options (they say which streams to wait for).
    pub fn new(opts: &StreamOptions) -> Self {
        Self {
            session: ServerSession::new(),
            expected: StreamType::expected(opts),
            tty: opts.tty,
            ids: [None; 5],
            streams: Vec::new(),
            ready: false,
            stdin_open: true,
            resize_buf: Vec::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            finish: None,
            finished: false,
        }
    }

    /// The client's stream of this type, if opened.
    pub fn id(&self, t: StreamType) -> Option<u32> {
        self.ids[t.index()]
    }

    /// The highest stream id the client opened (GOAWAY's last-good id).
    pub fn last_client_id(&self) -> u32 {
        self.session.last_opened()
    }

    /// Whether every expected stream is open.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether the final frames (FINs, Status, GOAWAY) were queued.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Output bytes held until the client's streams are open; a caller should stop reading its
    /// source above [`MAX_PENDING`].
    pub fn pending_len(&self) -> usize {
        self.pending_bytes
    }

    /// Feeds bytes read from the client; returns what the session must act on, in order.
    /// Replies and PING echoes are queued for [`Server::take_output`].
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<ServerEvent>, SpdyError> {
        let mut events = Vec::new();
        for e in self.session.receive(bytes)? {
            match e {
                session::Event::StreamOpened { id, headers, .. } => {
                    let kind = headers::get(&headers, STREAM_TYPE).and_then(StreamType::from_name);
                    // Unknown and repeated types are replied to (the session always does) but
                    // not used, like kubelet's `waitStreamReply` loop.
                    if let Some(t) = kind
                        && self.ids[t.index()].is_none()
                    {
                        self.ids[t.index()] = Some(id);
                        self.streams.push((id, t));
                        events.push(ServerEvent::Opened(t));
                        if !self.ready
                            && self.expected.iter().all(|t| self.ids[t.index()].is_some())
                        {
                            self.ready = true;
                            events.push(ServerEvent::Ready);
                            self.flush_pending();
                        }
                    }
                }
                session::Event::Data { id, data } => match self.stream_type(id) {
                    Some(StreamType::Stdin) if self.stdin_open => {
                        events.push(ServerEvent::Stdin(data));
                    }
                    Some(StreamType::Resize) => self.resize(&data, &mut events),
                    _ => {}
                },
                session::Event::Fin { id } => {
                    if self.stream_type(id) == Some(StreamType::Stdin) {
                        self.close_stdin(&mut events);
                    }
                }
                session::Event::Reset { id, .. } => {
                    if let Some(t) = self.stream_type(id) {
                        if t == StreamType::Stdin {
                            self.close_stdin(&mut events);
                        }
                        events.push(ServerEvent::Reset(t));
                    }
                }
                session::Event::GoAway => events.push(ServerEvent::GoAway),
            }
        }
        Ok(events)
    }

    fn stream_type(&self, id: u32) -> Option<StreamType> {
        self.streams.iter().find(|(i, _)| *i == id).map(|(_, t)| *t)
    }

    fn close_stdin(&mut self, events: &mut Vec<ServerEvent>) {
        if self.stdin_open {
            self.stdin_open = false;
            events.push(ServerEvent::StdinEof);
        }
    }

    fn resize(&mut self, data: &[u8], events: &mut Vec<ServerEvent>) {
        self.resize_buf.extend_from_slice(data);
        let mut it =
            serde_json::Deserializer::from_slice(&self.resize_buf).into_iter::<TerminalSize>();
        let mut consumed = 0;
        loop {
            match it.next() {
                Some(Ok(size)) => {
                    events.push(ServerEvent::Resize(size));
                    consumed = it.byte_offset();
                }
                // A partial object: wait for the rest (within bounds).
                Some(Err(e)) if e.is_eof() && self.resize_buf.len() <= MAX_RESIZE_BUFFER => break,
                // Garbage (or an endless object): drop what is buffered, keep the connection.
                Some(Err(_)) | None => {
                    consumed = self.resize_buf.len();
                    break;
                }
            }
        }
        self.resize_buf.drain(..consumed);
    }

    /// Queues output on the stream of type `t`: stdout, stderr (onto stdout with a TTY, as the
    /// runtime merges them) or error. Held until [`ServerEvent::Ready`]; dropped if the client
    /// did not ask for that stream, as the API server does.
    pub fn send(&mut self, t: StreamType, data: &[u8]) {
        if self.finish.is_some() || data.is_empty() {
            return;
        }
        if self.ready {
            if let Some(id) = self.target(t) {
                self.session.send_data(id, data);
            }
        } else {
            self.pending_bytes += data.len();
            self.pending.push_back((t, data.to_vec()));
        }
    }

    /// [`Server::send`] for a channel-protocol frame's channel (1 stdout, 2 stderr, 3 error),
    /// for relays that carry output as channel frames; other channels are dropped.
    pub fn send_channel(&mut self, channel: u8, payload: &[u8]) {
        let t = match channel {
            crate::channel::STDOUT => StreamType::Stdout,
            crate::channel::STDERR => StreamType::Stderr,
            crate::channel::ERROR => StreamType::Error,
            _ => return,
        };
        self.send(t, payload);
    }

    fn target(&self, t: StreamType) -> Option<u32> {
        match t {
            StreamType::Stderr if self.tty => self.id(StreamType::Stdout),
            StreamType::Stdout | StreamType::Stderr | StreamType::Error => self.id(t),
            StreamType::Stdin | StreamType::Resize => None,
        }
    }

    /// Ends the session after all output sent so far: FIN on stdout and stderr (client-go waits
    /// for their EOF), `status` (the Status JSON; empty if it was already sent on the error
    /// stream) with FIN on the error stream, then GOAWAY as spdystream's `Close`. Held until
    /// ready like output. Later output is dropped.
    pub fn finish(&mut self, status: &[u8]) {
        if self.finish.is_some() {
            return;
        }
        self.finish = Some(status.to_vec());
        if self.ready {
            self.flush_finish();
        }
    }

    fn flush_pending(&mut self) {
        while let Some((t, data)) = self.pending.pop_front() {
            if let Some(id) = self.target(t) {
                self.session.send_data(id, &data);
            }
        }
        self.pending_bytes = 0;
        if self.finish.is_some() {
            self.flush_finish();
        }
    }

    fn flush_finish(&mut self) {
        let Some(status) = self.finish.as_ref() else {
            return;
        };
        for t in [StreamType::Stdout, StreamType::Stderr] {
            if let Some(id) = self.id(t) {
                self.session.send_fin(id);
            }
        }
        if let Some(id) = self.id(StreamType::Error) {
            let status = status.clone();
            self.session.send_data(id, &status);
            self.session.send_fin(id);
        }
        self.session.send_goaway();
        self.finished = true;
    }

    /// Bytes queued for the client and not yet taken.
    pub fn output_len(&self) -> usize {
        self.session.output_len()
    }

    /// Bytes to write to the client now.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.session.take_output()
    }
}

// === Client ===

/// What the server did, for the client's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server accepted every stream: the process runs, input may flow.
    Ready,
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The server finished stdout or stderr.
    OutputEnd(StreamType),
    /// The error stream ended: its whole content, the Status JSON (empty if the server sent
    /// none, which client-go reads as success).
    Status(Vec<u8>),
    /// The server reset one of our streams.
    Reset {
        stream: StreamType,
        status: u32,
    },
    Pong(u32),
    GoAway,
}

/// The client side of one remote-command connection.
#[derive(Debug)]
pub struct Client {
    session: ClientSession,
    /// Opened streams in order, and whether each was replied to.
    streams: Vec<(u32, StreamType, bool)>,
    ready: bool,
    status: Vec<u8>,
    status_done: bool,
    stdin_closed: bool,
}

impl Client {
    /// Opens the streams a request with these options needs, in client-go's order. The
    /// request itself (POST with `Upgrade: SPDY/3.1` and the protocol list) is the caller's.
    pub fn new(opts: &StreamOptions) -> Self {
        let mut session = ClientSession::new();
        let streams = StreamType::expected(opts)
            .into_iter()
            .map(|t| (session.open_stream(&[(STREAM_TYPE, t.name())]), t, false))
            .collect();
        Self {
            session,
            streams,
            ready: false,
            status: Vec::new(),
            status_done: false,
            stdin_closed: false,
        }
    }

    fn find(&self, t: StreamType) -> Option<u32> {
        self.streams.iter().find(|s| s.1 == t).map(|s| s.0)
    }

    fn type_of(&self, id: u32) -> Option<StreamType> {
        self.streams.iter().find(|s| s.0 == id).map(|s| s.1)
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// What the error stream held so far (for a connection that ended without its FIN).
    pub fn status_so_far(&self) -> &[u8] {
        &self.status
    }

    /// Feeds bytes read from the server; returns what it did, in order.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<ClientEvent>, SpdyError> {
        let mut events = Vec::new();
        for e in self.session.receive(bytes)? {
            match e {
                client::Event::Reply { id, .. } => {
                    if let Some(s) = self.streams.iter_mut().find(|s| s.0 == id) {
                        s.2 = true;
                    }
                    if !self.ready && self.streams.iter().all(|s| s.2) {
                        self.ready = true;
                        events.push(ClientEvent::Ready);
                    }
                }
                client::Event::Data { id, data } => match self.type_of(id) {
                    Some(StreamType::Stdout) => events.push(ClientEvent::Stdout(data)),
                    Some(StreamType::Stderr) => events.push(ClientEvent::Stderr(data)),
                    Some(StreamType::Error) if !self.status_done => {
                        let room = MAX_STATUS.saturating_sub(self.status.len());
                        self.status.extend_from_slice(&data[..data.len().min(room)]);
                    }
                    _ => {}
                },
                client::Event::Fin { id } => match self.type_of(id) {
                    Some(t @ (StreamType::Stdout | StreamType::Stderr)) => {
                        events.push(ClientEvent::OutputEnd(t));
                    }
                    Some(StreamType::Error) if !self.status_done => {
                        self.status_done = true;
                        events.push(ClientEvent::Status(std::mem::take(&mut self.status)));
                    }
                    _ => {}
                },
                client::Event::Reset { id, status } => {
                    if let Some(stream) = self.type_of(id) {
                        events.push(ClientEvent::Reset { stream, status });
                    }
                }
                client::Event::Pong { id } => events.push(ClientEvent::Pong(id)),
                client::Event::GoAway { .. } => events.push(ClientEvent::GoAway),
            }
        }
        Ok(events)
    }

    /// Queues stdin bytes (dropped if the request had no stdin or it was closed).
    pub fn send_stdin(&mut self, data: &[u8]) {
        if let Some(id) = self.find(StreamType::Stdin)
            && !self.stdin_closed
        {
            self.session.send_data(id, data);
        }
    }

    /// stdin reached EOF: DATA+FIN on the stdin stream.
    pub fn close_stdin(&mut self) {
        if let Some(id) = self.find(StreamType::Stdin)
            && !self.stdin_closed
        {
            self.stdin_closed = true;
            self.session.send_fin(id);
        }
    }

    /// Queues a terminal size as kubectl sends it (dropped without a TTY).
    pub fn send_resize(&mut self, size: TerminalSize) {
        if let Some(id) = self.find(StreamType::Resize) {
            self.session.send_data(id, &resize::encode(size));
        }
    }

    /// Queues a PING (kubectl's keepalive); the answer is [`ClientEvent::Pong`].
    pub fn ping(&mut self) -> u32 {
        self.session.ping()
    }

    /// kubectl's teardown: RST_STREAM CANCEL on every stream, then GOAWAY.
    pub fn close(&mut self) {
        for (id, _, _) in &self.streams {
            self.session.send_reset(*id, RST_CANCEL);
        }
        self.session.send_goaway();
    }

    /// Bytes to write to the server now.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.session.take_output()
    }
}

#[cfg(test)]
mod tests;
