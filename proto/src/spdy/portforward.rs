//! port-forward over SPDY/3.1 (`portforward.k8s.io`, raw or inside the WebSocket tunnel), both
//! ends, without I/O (kubernetes-streams.md §2.2):
//!
//! ```text
//! client (kubectl, Client)                                   server (kubelet, Server)
//! SYN_STREAM 1 streamtype=error port=80 requestid=0   ─►     ◄─ SYN_REPLY 1
//! DATA 1 FIN (kubectl never writes on it)             ─►
//! SYN_STREAM 3 streamtype=data  port=80 requestid=0   ─►     ◄─ SYN_REPLY 3
//!                                                            (pair complete: Connect, dial port)
//! DATA 3 … (to the pod)                               ─►     ◄─ DATA 3 … (from the pod)
//! DATA 3 FIN (local client shut its write side)       ─►     (shut the backend's write side;
//!                                                            keep relaying its reply)
//!                                                            ◄─ DATA 1 "error forwarding …" (if any)
//!                                                            ◄─ DATA 1 FIN, DATA 3 FIN
//! ```
//! One connection carries any number of such pairs, told apart by `requestid` (a per-kubectl
//! counter from 0). A stream whose headers are invalid is reset without a reply, with kubelet's
//! checks (`port` present, a number 1–65535; `streamtype` `error` or `data`).
//!
//! A server built with [`Server::with_port_filter`] also resets, without a reply, every stream
//! naming a port the filter refuses ([`Refusal::PortNotAllowed`]): a relay that authorizes ports
//! refuses one forwarded connection this way and keeps the others. kubectl creates the error
//! stream first and gives up on the connection when it is reset ("error creating error stream
//! for port L -> P: stream reset"), without ending the forward; text on the error stream, the
//! other way to refuse, makes kubectl (since 1.23) close the whole forward when it reads it.

use std::collections::HashMap;

use super::client::{self, ClientSession};
use super::frame::{RST_CANCEL, RST_REFUSED_STREAM, SpdyError};
use super::headers::{self, Headers};
use super::session::{self, ServerSession};
use crate::portforward::{
    HEADER_PORT, HEADER_REQUEST_ID, HEADER_STREAM_TYPE, STREAM_TYPE_DATA, STREAM_TYPE_ERROR,
    parse_port,
};

/// Client data held for a pair that is not complete yet (kubectl never sends any; a peer that
/// does gets its pair failed past this).
pub const MAX_EARLY_DATA: usize = 256 << 10;
/// Largest error message a [`Client`] keeps per connection.
pub const MAX_ERROR: usize = 64 << 10;

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// kubelet's message for the stream's headers (`"port" header is required`, …).
    BadHeaders(String),
    /// The stream names a port the server's filter refuses ([`Server::with_port_filter`]);
    /// reset with REFUSED_STREAM.
    PortNotAllowed {
        port: u16,
        request_id: String,
        /// Whether it was the error stream (kubectl's first) or the data stream.
        error_stream: bool,
    },
}

/// Which ports a [`Server`] accepts streams for.
pub struct PortFilter(Box<dyn Fn(u16) -> bool + Send + Sync>);

impl PortFilter {
    pub fn new(allows: impl Fn(u16) -> bool + Send + Sync + 'static) -> Self {
        Self(Box::new(allows))
    }

    pub fn allows(&self, port: u16) -> bool {
        (self.0)(port)
    }
}

impl std::fmt::Debug for PortFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortFilter")
    }
}

// === Server ===

/// What the client did, per forwarded connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The error and data streams of `request_id` are both open: connect to `port` now.
    Connect { request_id: String, port: u16 },
    /// Bytes for the pod.
    Data { request_id: String, data: Vec<u8> },
    /// The client shut its side (FIN on the data stream): shut the backend's write side and
    /// keep relaying its reply.
    DataFin { request_id: String },
    /// The client reset a stream of the connection: drop it. If it was the data stream, the
    /// error stream was closed (FIN) as kubelet closes it when its forward returns: kubectl
    /// resets the data stream once the pod's side ended, then reads the error stream to its
    /// end before it closes the local connection.
    Reset { request_id: String },
    /// A stream was reset without a reply for the reason given.
    Refused { stream_id: u32, refusal: Refusal },
    /// The client is going away.
    GoAway,
}

#[derive(Debug, Default)]
struct Pair {
    port: u16,
    error: Option<u32>,
    data: Option<u32>,
    connected: bool,
    early: Vec<u8>,
    early_fin: bool,
    data_fin_sent: bool,
}

/// The server side of one port-forward connection.
#[derive(Debug)]
pub struct Server {
    session: ServerSession,
    pairs: HashMap<String, Pair>,
    /// Stream id → request id, for the streams of live pairs.
    streams: HashMap<u32, String>,
    filter: Option<PortFilter>,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

/// kubelet's `httpStreamReceived` checks, in its order.
fn check_headers(h: &Headers) -> Result<(u16, bool), String> {
    let port = headers::get(h, HEADER_PORT).unwrap_or("");
    if port.is_empty() {
        return Err(format!("{HEADER_PORT:?} header is required"));
    }
    let port = parse_port(port).map_err(|e| match e {
        crate::portforward::PortError::Zero(p) => format!("port {p:?} must be > 0"),
        _ => format!("unable to parse {port:?} as a port"),
    })?;
    match headers::get(h, HEADER_STREAM_TYPE).unwrap_or("") {
        "" => Err(format!("{HEADER_STREAM_TYPE:?} header is required")),
        STREAM_TYPE_ERROR => Ok((port, true)),
        STREAM_TYPE_DATA => Ok((port, false)),
        other => Err(format!("invalid stream type {other:?}")),
    }
}

impl Server {
    pub fn new() -> Self {
        Self {
            session: ServerSession::with_manual_replies(),
            pairs: HashMap::new(),
            streams: HashMap::new(),
            filter: None,
        }
    }

    /// A server that refuses (RST_STREAM REFUSED_STREAM, no reply) every stream naming a port
    /// `filter` does not allow, reported as [`Refusal::PortNotAllowed`].
    pub fn with_port_filter(filter: PortFilter) -> Self {
        Self {
            filter: Some(filter),
            ..Self::new()
        }
    }

    /// Feeds bytes read from the client; returns what to act on, in order.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<ServerEvent>, SpdyError> {
        let mut events = Vec::new();
        for e in self.session.receive(bytes)? {
            match e {
                session::Event::StreamOpened { id, headers, fin } => {
                    self.opened(id, &headers, fin, &mut events);
                }
                session::Event::Data { id, data } => {
                    let Some(rid) = self.streams.get(&id).cloned() else {
                        continue;
                    };
                    self.data(rid, id, data, &mut events);
                }
                session::Event::Fin { id } => {
                    let Some(rid) = self.streams.get(&id).cloned() else {
                        continue;
                    };
                    let Some(pair) = self.pairs.get_mut(&rid) else {
                        continue;
                    };
                    // FIN on the error stream is kubectl saying it will not write there.
                    if pair.data == Some(id) {
                        if pair.connected {
                            events.push(ServerEvent::DataFin { request_id: rid });
                        } else {
                            pair.early_fin = true;
                        }
                    }
                }
                session::Event::Reset { id, .. } => {
                    if let Some(rid) = self.streams.get(&id).cloned() {
                        if let Some(pair) = self.pairs.get(&rid)
                            && pair.data == Some(id)
                            && let Some(error) = pair.error
                        {
                            self.session.send_fin(error);
                        }
                        self.forget(&rid);
                        events.push(ServerEvent::Reset { request_id: rid });
                    }
                }
                session::Event::GoAway => events.push(ServerEvent::GoAway),
            }
        }
        Ok(events)
    }

    fn opened(&mut self, id: u32, h: &Headers, fin: bool, events: &mut Vec<ServerEvent>) {
        let (port, is_error) = match check_headers(h) {
            Ok(v) => v,
            Err(reason) => {
                // spdystream's Reset: RST_STREAM CANCEL, no SYN_REPLY.
                self.session.send_reset(id, RST_CANCEL);
                events.push(ServerEvent::Refused {
                    stream_id: id,
                    refusal: Refusal::BadHeaders(reason),
                });
                return;
            }
        };
        let rid = headers::get(h, HEADER_REQUEST_ID).unwrap_or("").to_string();
        if self.filter.as_ref().is_some_and(|f| !f.allows(port)) {
            self.session.send_reset(id, RST_REFUSED_STREAM);
            events.push(ServerEvent::Refused {
                stream_id: id,
                refusal: Refusal::PortNotAllowed {
                    port,
                    request_id: rid,
                    error_stream: is_error,
                },
            });
            return;
        }
        self.session.send_reply(id);
        let pair = self.pairs.entry(rid.clone()).or_default();
        let slot = if is_error {
            &mut pair.error
        } else {
            &mut pair.data
        };
        if slot.is_some() {
            let which = if is_error { "error" } else { "data" };
            let msg = format!(
                "error processing stream for request {rid}: {which} stream already assigned"
            );
            if let Some(err) = pair.error {
                self.session.send_data(err, msg.as_bytes());
            }
            return;
        }
        *slot = Some(id);
        // The data stream's port is the one kubelet forwards to.
        if !is_error || pair.data.is_none() {
            pair.port = port;
        }
        if fin && !is_error {
            pair.early_fin = true;
        }
        let complete = pair.error.is_some() && pair.data.is_some() && !pair.connected;
        let mut early = Vec::new();
        let mut early_fin = false;
        if complete {
            pair.connected = true;
            early = std::mem::take(&mut pair.early);
            early_fin = pair.early_fin;
            events.push(ServerEvent::Connect {
                request_id: rid.clone(),
                port: pair.port,
            });
        }
        self.streams.insert(id, rid.clone());
        if !early.is_empty() {
            events.push(ServerEvent::Data {
                request_id: rid.clone(),
                data: early,
            });
        }
        if early_fin {
            events.push(ServerEvent::DataFin { request_id: rid });
        }
    }

    fn data(&mut self, rid: String, id: u32, data: Vec<u8>, events: &mut Vec<ServerEvent>) {
        let Some(pair) = self.pairs.get_mut(&rid) else {
            return;
        };
        if pair.data != Some(id) {
            // Nothing is read from the error stream.
            return;
        }
        if pair.connected {
            events.push(ServerEvent::Data {
                request_id: rid,
                data,
            });
        } else if pair.early.len() + data.len() <= MAX_EARLY_DATA {
            pair.early.extend_from_slice(&data);
        } else {
            self.fail(&rid, "too much data before the error stream was created");
            self.close(&rid);
        }
    }

    fn forget(&mut self, rid: &str) {
        if let Some(pair) = self.pairs.remove(rid) {
            for id in [pair.error, pair.data].into_iter().flatten() {
                self.streams.remove(&id);
            }
        }
    }

    /// Whether `request_id` is a live connection.
    pub fn is_open(&self, request_id: &str) -> bool {
        self.pairs.contains_key(request_id)
    }

    /// Queues bytes from the pod on the connection's data stream.
    pub fn send(&mut self, request_id: &str, data: &[u8]) {
        if let Some(id) = self.pairs.get(request_id).and_then(|p| p.data) {
            self.session.send_data(id, data);
        }
    }

    /// The pod closed its side: FIN on the data stream (the client still may send).
    pub fn send_fin(&mut self, request_id: &str) {
        if let Some(pair) = self.pairs.get_mut(request_id)
            && let Some(id) = pair.data
            && !pair.data_fin_sent
        {
            pair.data_fin_sent = true;
            self.session.send_fin(id);
        }
    }

    /// Writes `message` on the connection's error stream (kubectl prints it and, since 1.29 or
    /// so, ends the whole forward).
    pub fn fail(&mut self, request_id: &str, message: &str) {
        if let Some(id) = self.pairs.get(request_id).and_then(|p| p.error) {
            self.session.send_data(id, message.as_bytes());
        }
    }

    /// Ends the connection as kubelet's `portForward` returns: FIN on the error stream, then on
    /// the data stream (if not sent yet), and forgets it.
    pub fn close(&mut self, request_id: &str) {
        let Some(pair) = self.pairs.get(request_id) else {
            return;
        };
        let (error, data, fin_sent) = (pair.error, pair.data, pair.data_fin_sent);
        if let Some(id) = error {
            self.session.send_fin(id);
        }
        if let Some(id) = data
            && !fin_sent
        {
            self.session.send_fin(id);
        }
        self.forget(request_id);
    }

    /// Abandons the connection (its peer on the pod's side reset it): RST_STREAM CANCEL on
    /// both streams, and forgets it.
    pub fn reset(&mut self, request_id: &str) {
        if let Some(pair) = self.pairs.get(request_id) {
            for id in [pair.error, pair.data].into_iter().flatten() {
                self.session.send_reset(id, RST_CANCEL);
            }
            self.forget(request_id);
        }
    }

    /// Says the server is going away (GOAWAY naming the last stream it processed).
    pub fn send_goaway(&mut self) {
        self.session.send_goaway();
    }

    /// The live connections' request ids.
    pub fn open_requests(&self) -> impl Iterator<Item = &str> {
        self.pairs.keys().map(String::as_str)
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

/// What the server did, per forwarded connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Both streams of `request_id` were accepted.
    Ready {
        request_id: String,
    },
    /// Bytes from the pod.
    Data {
        request_id: String,
        data: Vec<u8>,
    },
    /// The pod closed its side.
    Fin {
        request_id: String,
    },
    /// The error stream ended with this (non-empty) message: the forward failed.
    Error {
        request_id: String,
        message: String,
    },
    /// The server reset a stream of the connection (refused or abandoned).
    Reset {
        request_id: String,
        status: u32,
    },
    Pong(u32),
    GoAway,
}

#[derive(Debug, Default)]
struct ClientPair {
    error: u32,
    data: u32,
    replies: u8,
    message: Vec<u8>,
    /// [`Client::finish`]ed: only its error stream's end is still awaited.
    finished: bool,
}

/// The client side of one port-forward connection (what kubectl does per local connection).
#[derive(Debug, Default)]
pub struct Client {
    session: ClientSession,
    next_request: u64,
    pairs: HashMap<String, ClientPair>,
    streams: HashMap<u32, String>,
}

impl Client {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts forwarding a new connection to `port`: the error stream (closed at once: the
    /// client never writes there) and the data stream, with the next request id. Returns it.
    pub fn open(&mut self, port: u16) -> String {
        let rid = self.next_request.to_string();
        self.next_request += 1;
        let port_s = port.to_string();
        let error = self.session.open_stream(&[
            (HEADER_STREAM_TYPE, STREAM_TYPE_ERROR),
            (HEADER_PORT, &port_s),
            (HEADER_REQUEST_ID, &rid),
        ]);
        self.session.send_fin(error);
        let data = self.session.open_stream(&[
            (HEADER_STREAM_TYPE, STREAM_TYPE_DATA),
            (HEADER_PORT, &port_s),
            (HEADER_REQUEST_ID, &rid),
        ]);
        self.streams.insert(error, rid.clone());
        self.streams.insert(data, rid.clone());
        self.pairs.insert(
            rid.clone(),
            ClientPair {
                error,
                data,
                ..ClientPair::default()
            },
        );
        rid
    }

    /// Feeds bytes read from the server; returns what it did, in order.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<ClientEvent>, SpdyError> {
        let mut events = Vec::new();
        for e in self.session.receive(bytes)? {
            let id = match &e {
                client::Event::Reply { id, .. }
                | client::Event::Data { id, .. }
                | client::Event::Fin { id }
                | client::Event::Reset { id, .. } => *id,
                client::Event::Pong { id } => {
                    events.push(ClientEvent::Pong(*id));
                    continue;
                }
                client::Event::GoAway { .. } => {
                    events.push(ClientEvent::GoAway);
                    continue;
                }
            };
            let Some(rid) = self.streams.get(&id).cloned() else {
                continue;
            };
            let Some(pair) = self.pairs.get_mut(&rid) else {
                continue;
            };
            let on_error = pair.error == id;
            match e {
                client::Event::Reply { .. } => {
                    pair.replies += 1;
                    if pair.replies == 2 {
                        events.push(ClientEvent::Ready { request_id: rid });
                    }
                }
                client::Event::Data { data, .. } if on_error => {
                    let room = MAX_ERROR.saturating_sub(pair.message.len());
                    pair.message
                        .extend_from_slice(&data[..data.len().min(room)]);
                }
                client::Event::Data { data, .. } => events.push(ClientEvent::Data {
                    request_id: rid,
                    data,
                }),
                client::Event::Fin { .. } if on_error => {
                    let finished = pair.finished;
                    if !pair.message.is_empty() {
                        let message = String::from_utf8_lossy(&pair.message).into_owned();
                        pair.message.clear();
                        events.push(ClientEvent::Error {
                            request_id: rid.clone(),
                            message,
                        });
                    }
                    if finished {
                        self.pairs.remove(&rid);
                        self.streams.remove(&id);
                    }
                }
                client::Event::Fin { .. } => events.push(ClientEvent::Fin { request_id: rid }),
                client::Event::Reset { status, .. } => events.push(ClientEvent::Reset {
                    request_id: rid,
                    status,
                }),
                client::Event::Pong { .. } | client::Event::GoAway { .. } => {}
            }
        }
        Ok(events)
    }

    /// Queues bytes for the pod on the connection's data stream.
    pub fn send(&mut self, request_id: &str, data: &[u8]) {
        if let Some(p) = self.pairs.get(request_id).filter(|p| !p.finished) {
            self.session.send_data(p.data, data);
        }
    }

    /// The local client shut its write side: FIN on the data stream.
    pub fn send_fin(&mut self, request_id: &str) {
        if let Some(p) = self.pairs.get(request_id).filter(|p| !p.finished) {
            self.session.send_fin(p.data);
        }
    }

    /// Ends a connection whose pod side is done, as kubectl does once it read the pod's FIN
    /// (or its local side failed): RST_STREAM CANCEL on the data stream only, discarding what is
    /// unsent. Like kubectl, it still reads the error stream to its end, reports its message
    /// ([`ClientEvent::Error`]) if there is one, and then forgets the connection.
    pub fn finish(&mut self, request_id: &str) {
        if let Some(p) = self.pairs.get_mut(request_id)
            && !p.finished
        {
            p.finished = true;
            self.streams.remove(&p.data);
            self.session.send_reset(p.data, RST_CANCEL);
        }
    }

    /// Whether `request_id` is a live connection (not reset, nor finished).
    pub fn is_open(&self, request_id: &str) -> bool {
        self.pairs.get(request_id).is_some_and(|p| !p.finished)
    }

    /// Abandons the connection (kubectl resets both streams when the local side is gone).
    pub fn reset(&mut self, request_id: &str) {
        if let Some(p) = self.pairs.remove(request_id) {
            for id in [p.error, p.data] {
                self.streams.remove(&id);
                self.session.send_reset(id, RST_CANCEL);
            }
        }
    }

    pub fn ping(&mut self) -> u32 {
        self.session.ping()
    }

    pub fn send_goaway(&mut self) {
        self.session.send_goaway();
    }

    /// Bytes queued and not yet taken.
    pub fn output_len(&self) -> usize {
        self.session.output_len()
    }

    /// Bytes to write to the server now.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.session.take_output()
    }
}

#[cfg(test)]
mod tests;
