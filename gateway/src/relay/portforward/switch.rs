//! The relay's state, without I/O: the client's protocol on one side, our own SPDY client toward
//! the cluster on the other, and the table of forwarded connections between them.
//!
//! ```text
//! kubectl ── SPDY server (proto) ─┐                      ┌─ SPDY client (proto) ── cluster
//! kube-rs ── channel protocol ────┴─ connections by key ─┴─ (our own request ids, headers
//!                                    port · bytes · FINs      deflated by our own context)
//! ```
//! Both sides are terminated here: the gateway decodes every frame the client sends and writes
//! its own toward the cluster. That is what lets it refuse one connection (its streams reset
//! toward the client, nothing sent upstream) and keep the rest: dropping a SYN_STREAM from a
//! relayed byte stream would desynchronise the peer's header decompressor
//! (kubernetes-streams.md §2.3).
//!
//! Every operation queues what the client and the cluster must be sent (`take_*_output`) and
//! what must be recorded ([`Note`]); the caller writes both, in the order taken. A connection is
//! keyed by the client's name for it: the SPDY `requestid`, or the port's index in `?ports=`.
//!
//! Half-close is forwarded as half-close: a client's FIN becomes our FIN on the upstream data
//! stream and the pod's answer keeps flowing back; the connection ends when both sides
//! finished, or either reset it, as kubectl and kubelet end theirs.

use std::collections::{HashMap, HashSet};

use proto::channel::{self, Frame, Protocol};
use proto::portforward as pf;
use proto::spdy::SpdyError;
use proto::spdy::portforward::{Client, ClientEvent, PortFilter, Refusal, Server, ServerEvent};
use storage_schema::{Direction, ForwardOutcome};

use crate::policy::ForwardScope;

/// Refused request ids remembered so that a client that opens both streams of a refused pair
/// is recorded once; a client cycling through more ids than this is recorded per stream.
const REFUSED_MEMORY: usize = 1024;

/// Something to record (and, for an end, to audit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Note {
    Opened {
        conn: u64,
        port: u16,
    },
    /// Payload, with `capture = "full"` only.
    Data {
        conn: u64,
        direction: Direction,
        bytes: Vec<u8>,
    },
    /// Bytes moved since the connection's previous `Bytes` note.
    Bytes {
        conn: u64,
        to_pod: u64,
        from_pod: u64,
    },
    HalfClose {
        conn: u64,
        direction: Direction,
    },
    Ended(Ended),
}

/// A connection's end, with what its audit record needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ended {
    pub conn: u64,
    pub port: u16,
    /// The client's name for it (SPDY `requestid`, or the port's index).
    pub key: String,
    pub opened_at_us: u64,
    pub to_pod: u64,
    pub from_pod: u64,
    pub outcome: ForwardOutcome,
    pub message: String,
}

/// The client's protocol.
#[derive(Debug)]
enum Side {
    /// kubectl: SPDY, raw or inside the WebSocket tunnel (boxed: its stream table is much
    /// larger than the channel side).
    Spdy(Box<Server>),
    /// kube-rs and other libraries: `v4.channel.k8s.io`, ports fixed by `?ports=`.
    Channels {
        protocol: Protocol,
        /// Channel frames queued for the client (channel byte, then payload).
        out: Vec<Vec<u8>>,
    },
}

#[derive(Debug)]
struct Conn {
    n: u64,
    port: u16,
    up: String,
    opened_at_us: u64,
    to_pod: u64,
    from_pod: u64,
    unreported_to: u64,
    unreported_from: u64,
    client_fin: bool,
    pod_fin: bool,
    error: Option<String>,
}

/// Why the relay must end the session, as the switch learned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The client sent GOAWAY, or (channel protocol) every port's connection ended.
    ClientDone,
    /// The cluster sent GOAWAY.
    UpstreamGoAway,
}

/// The relay's state.
#[derive(Debug)]
pub(crate) struct Switch {
    side: Side,
    up: Client,
    conns: HashMap<String, Conn>,
    /// Upstream request id → client key.
    by_up: HashMap<String, String>,
    next_conn: u64,
    capture: bool,
    scope: ForwardScope,
    /// The rule that allowed the forward, for refusals.
    rule: String,
    refused: HashSet<String>,
    notes: Vec<Note>,
    stop: Option<Stop>,
    /// Why the session ended ([`Switch::end_all`]): a connection the client opens while it is
    /// being closed is told so and recorded, never dialled.
    ended: Option<String>,
    /// Bytes relayed so far (to the pod, from the pod), for the gateway's metrics.
    relayed: (u64, u64),
}

fn now_us() -> u64 {
    storage_schema::time::unix_micros_now()
}

impl Switch {
    /// A switch for a SPDY client (kubectl): connections arrive as stream pairs; a port the
    /// policy does not allow is refused at its first stream.
    pub fn spdy(scope: ForwardScope, capture: bool, rule: String) -> Self {
        let allowed = scope.clone();
        let server = Server::with_port_filter(PortFilter::new(move |p| allowed.allows(p)));
        Self::new(Side::Spdy(Box::new(server)), scope, capture, rule)
    }

    /// A switch for a channel-protocol client: every port of `?ports=` is a connection,
    /// opened at once; its prefixes go out first (what kubelet sends), and a port the policy
    /// does not allow gets the refusal on its error channel.
    pub fn channels(
        protocol: Protocol,
        ports: Vec<u16>,
        scope: ForwardScope,
        capture: bool,
        rule: String,
    ) -> Self {
        let side = Side::Channels {
            protocol,
            out: Vec::new(),
        };
        let mut s = Self::new(side, scope, capture, rule);
        for (i, port) in ports.iter().copied().enumerate() {
            let prefix = pf::port_prefix(port);
            if let (Some(d), Some(e)) = (pf::data_channel(i), pf::error_channel(i)) {
                s.channel_out(d, &prefix);
                s.channel_out(e, &prefix);
            }
        }
        for (i, port) in ports.into_iter().enumerate() {
            let key = i.to_string();
            if s.scope.allows(port) {
                s.open(key, port);
            } else {
                let message = s.refusal(port);
                s.fail_client(&key, &message);
                let n = s.next();
                s.notes.push(Note::Opened { conn: n, port });
                s.notes.push(Note::Ended(Ended {
                    conn: n,
                    port,
                    key,
                    opened_at_us: now_us(),
                    to_pod: 0,
                    from_pod: 0,
                    outcome: ForwardOutcome::Refused,
                    message,
                }));
            }
        }
        s.check_channels_done();
        s
    }

    fn new(side: Side, scope: ForwardScope, capture: bool, rule: String) -> Self {
        Self {
            side,
            up: Client::new(),
            conns: HashMap::new(),
            by_up: HashMap::new(),
            next_conn: 1,
            capture,
            scope,
            rule,
            refused: HashSet::new(),
            ended: None,
            notes: Vec::new(),
            stop: None,
            relayed: (0, 0),
        }
    }

    fn next(&mut self) -> u64 {
        let n = self.next_conn;
        self.next_conn += 1;
        n
    }

    /// The message a refused connection is recorded (and, over the channel protocol, answered)
    /// with.
    fn refusal(&self, port: u16) -> String {
        format!(
            "kubetape: port {port} is not allowed: the access policy ({}) lets this forward reach ports {} only",
            self.rule,
            self.scope.describe_ports()
        )
    }

    fn open(&mut self, key: String, port: u16) {
        if let Some(message) = self.ended.clone() {
            let n = self.next();
            self.fail_client(&key, &message);
            if let Side::Spdy(server) = &mut self.side {
                server.close(&key);
            }
            self.notes.push(Note::Opened { conn: n, port });
            self.notes.push(Note::Ended(Ended {
                conn: n,
                port,
                key,
                opened_at_us: now_us(),
                to_pod: 0,
                from_pod: 0,
                outcome: ForwardOutcome::Ended,
                message,
            }));
            return;
        }
        let n = self.next();
        let up = self.up.open(port);
        self.by_up.insert(up.clone(), key.clone());
        self.conns.insert(
            key,
            Conn {
                n,
                port,
                up,
                opened_at_us: now_us(),
                to_pod: 0,
                from_pod: 0,
                unreported_to: 0,
                unreported_from: 0,
                client_fin: false,
                pod_fin: false,
                error: None,
            },
        );
        self.notes.push(Note::Opened { conn: n, port });
    }

    // === from the client ===

    /// Bytes from a SPDY client (raw, or the tunnel's messages joined).
    pub fn on_client_bytes(&mut self, bytes: &[u8]) -> Result<(), SpdyError> {
        let Side::Spdy(server) = &mut self.side else {
            return Ok(());
        };
        for event in server.receive(bytes)? {
            match event {
                ServerEvent::Connect { request_id, port } => self.open(request_id, port),
                ServerEvent::Data { request_id, data } => self.send_to_pod(&request_id, data),
                ServerEvent::DataFin { request_id } => {
                    if let Some(c) = self.conns.get_mut(&request_id) {
                        c.client_fin = true;
                        self.up.send_fin(&c.up);
                        self.notes.push(Note::HalfClose {
                            conn: c.n,
                            direction: Direction::ToPod,
                        });
                    }
                    self.maybe_complete(&request_id);
                }
                ServerEvent::Reset { request_id } => {
                    // The server already closed the client's error stream; kubectl resets
                    // the data stream once the pod's side ended, so after the pod's FIN this
                    // is the normal end.
                    if let Some(c) = self.conns.get(&request_id) {
                        let up = c.up.clone();
                        let outcome = match (&c.error, c.pod_fin) {
                            (Some(_), _) => ForwardOutcome::Error,
                            (None, true) => ForwardOutcome::Closed,
                            (None, false) => ForwardOutcome::ResetByClient,
                        };
                        let message = c.error.clone().unwrap_or_default();
                        self.up.finish(&up);
                        self.end(&request_id, outcome, message);
                    }
                }
                ServerEvent::Refused {
                    refusal:
                        Refusal::PortNotAllowed {
                            port, request_id, ..
                        },
                    ..
                } => {
                    if self.refused.len() >= REFUSED_MEMORY {
                        self.refused.clear();
                    }
                    if self.refused.insert(request_id.clone()) {
                        let message = self.refusal(port);
                        tracing::info!(port, request_id = %request_id, "connection refused: port not allowed");
                        let n = self.next();
                        self.notes.push(Note::Opened { conn: n, port });
                        self.notes.push(Note::Ended(Ended {
                            conn: n,
                            port,
                            key: request_id,
                            opened_at_us: now_us(),
                            to_pod: 0,
                            from_pod: 0,
                            outcome: ForwardOutcome::Refused,
                            message,
                        }));
                    }
                }
                ServerEvent::Refused {
                    stream_id,
                    refusal: Refusal::BadHeaders(reason),
                } => {
                    tracing::info!(stream_id, %reason, "client stream refused: bad headers");
                }
                ServerEvent::GoAway => {
                    self.stop.get_or_insert(Stop::ClientDone);
                }
            }
        }
        Ok(())
    }

    /// One message from a channel-protocol client.
    pub fn on_client_frame(&mut self, frame: Frame) {
        if let Frame::Data { channel, payload } = frame {
            let (index, is_error) = pf::channel_port(channel);
            if !is_error && !payload.is_empty() {
                self.send_to_pod(&index.to_string(), payload);
            }
        }
    }

    fn send_to_pod(&mut self, key: &str, data: Vec<u8>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        self.up.send(&c.up, &data);
        let n = data.len() as u64;
        self.relayed.0 += n;
        c.to_pod += n;
        c.unreported_to += n;
        if self.capture {
            self.notes.push(Note::Data {
                conn: c.n,
                direction: Direction::ToPod,
                bytes: data,
            });
        }
    }

    // === from the cluster ===

    /// Bytes from the cluster (raw SPDY, or the tunnel's messages joined).
    pub fn on_upstream_bytes(&mut self, bytes: &[u8]) -> Result<(), SpdyError> {
        for event in self.up.receive(bytes)? {
            let (up, event) = match event {
                ClientEvent::Ready { .. } | ClientEvent::Pong(_) => continue,
                ClientEvent::GoAway => {
                    self.stop.get_or_insert(Stop::UpstreamGoAway);
                    continue;
                }
                ClientEvent::Data { ref request_id, .. }
                | ClientEvent::Fin { ref request_id }
                | ClientEvent::Error { ref request_id, .. }
                | ClientEvent::Reset { ref request_id, .. } => (request_id.clone(), event),
            };
            let Some(key) = self.by_up.get(&up).cloned() else {
                continue;
            };
            match event {
                ClientEvent::Data { data, .. } => self.on_pod_data(&key, data),
                ClientEvent::Fin { .. } => {
                    if let Some(c) = self.conns.get_mut(&key) {
                        c.pod_fin = true;
                        self.notes.push(Note::HalfClose {
                            conn: c.n,
                            direction: Direction::FromPod,
                        });
                        if let Side::Spdy(server) = &mut self.side {
                            server.send_fin(&key);
                        }
                    }
                    self.maybe_complete(&key);
                }
                ClientEvent::Error { message, .. } => {
                    self.fail_client(&key, &message);
                    if let Some(c) = self.conns.get_mut(&key) {
                        c.error = Some(message);
                    }
                    // The channel protocol has no FIN: an error ends the port's connection.
                    if matches!(self.side, Side::Channels { .. }) {
                        self.up.finish(&up);
                        self.end(&key, ForwardOutcome::Error, String::new());
                    }
                }
                ClientEvent::Reset { status, .. } => {
                    if let Side::Spdy(server) = &mut self.side {
                        server.reset(&key);
                    }
                    let message = format!("the cluster reset the connection (status {status})");
                    self.by_up.remove(&up);
                    self.end(&key, ForwardOutcome::ResetByCluster, message);
                }
                ClientEvent::Ready { .. } | ClientEvent::Pong(_) | ClientEvent::GoAway => {}
            }
        }
        Ok(())
    }

    fn on_pod_data(&mut self, key: &str, data: Vec<u8>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let n = data.len() as u64;
        self.relayed.1 += n;
        c.from_pod += n;
        c.unreported_from += n;
        let conn = c.n;
        match &mut self.side {
            Side::Spdy(server) => server.send(key, &data),
            Side::Channels { out, protocol, .. } => {
                if let Some(ch) = key.parse().ok().and_then(pf::data_channel) {
                    out.push(encode(*protocol, ch, &data));
                }
            }
        }
        if self.capture {
            self.notes.push(Note::Data {
                conn,
                direction: Direction::FromPod,
                bytes: data,
            });
        }
    }

    /// Writes `message` where the client reads a connection's errors.
    fn fail_client(&mut self, key: &str, message: &str) {
        match &mut self.side {
            Side::Spdy(server) => server.fail(key, message),
            Side::Channels { .. } => {
                if let Some(ch) = key.parse().ok().and_then(pf::error_channel) {
                    self.channel_out(ch, message.as_bytes());
                }
            }
        }
    }

    fn channel_out(&mut self, ch: u8, payload: &[u8]) {
        if let Side::Channels { out, protocol, .. } = &mut self.side {
            out.push(encode(*protocol, ch, payload));
        }
    }

    /// Ends a SPDY connection whose two sides both finished.
    fn maybe_complete(&mut self, key: &str) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        let channels = matches!(self.side, Side::Channels { .. });
        // The channel protocol has no half-close: the pod's end is the connection's.
        if !(c.pod_fin && (c.client_fin || channels)) {
            return;
        }
        let up = c.up.clone();
        let (outcome, message) = match &c.error {
            Some(_) => (ForwardOutcome::Error, String::new()),
            None => (ForwardOutcome::Closed, String::new()),
        };
        if let Side::Spdy(server) = &mut self.side {
            server.close(key);
        }
        self.up.finish(&up);
        self.end(key, outcome, message);
    }

    /// Forgets a connection and notes its end (its last byte counts first).
    fn end(&mut self, key: &str, outcome: ForwardOutcome, message: String) {
        let Some(c) = self.conns.remove(key) else {
            return;
        };
        self.by_up.remove(&c.up);
        if c.unreported_to > 0 || c.unreported_from > 0 {
            self.notes.push(Note::Bytes {
                conn: c.n,
                to_pod: c.unreported_to,
                from_pod: c.unreported_from,
            });
        }
        let message = if message.is_empty() {
            c.error.unwrap_or_default()
        } else {
            message
        };
        self.notes.push(Note::Ended(Ended {
            conn: c.n,
            port: c.port,
            key: key.to_string(),
            opened_at_us: c.opened_at_us,
            to_pod: c.to_pod,
            from_pod: c.from_pod,
            outcome,
            message,
        }));
        self.check_channels_done();
    }

    fn check_channels_done(&mut self) {
        if matches!(self.side, Side::Channels { .. }) && self.conns.is_empty() {
            self.stop.get_or_insert(Stop::ClientDone);
        }
    }

    // === the relay's other duties ===

    /// Notes the bytes every connection moved since its last note (called about once a
    /// second, the recording's loss bound).
    pub fn tick(&mut self) {
        let mut open: Vec<&mut Conn> = self.conns.values_mut().collect();
        open.sort_by_key(|c| c.n);
        for c in open {
            if c.unreported_to > 0 || c.unreported_from > 0 {
                self.notes.push(Note::Bytes {
                    conn: c.n,
                    to_pod: std::mem::take(&mut c.unreported_to),
                    from_pod: std::mem::take(&mut c.unreported_from),
                });
            }
        }
    }

    /// A keepalive toward the cluster (kube-rs and the tunnel send none of their own; idle
    /// middleboxes cut silent connections).
    pub fn ping_upstream(&mut self) {
        self.up.ping();
    }

    /// Ends the session: every open connection is told `message` (kubectl prints it, then
    /// ends the forward) and closed, the cluster's side reset and sent GOAWAY. The client gets
    /// its GOAWAY later ([`Switch::goaway_client`]): on a GOAWAY, kubectl's SPDY connection
    /// closes itself as soon as its streams are closed, and kubectl then exits with "lost
    /// connection to pod", racing the printing of the error it was just sent.
    pub fn end_all(&mut self, message: &str) {
        self.ended = Some(message.to_string());
        let mut keys: Vec<(u64, String)> =
            self.conns.iter().map(|(k, c)| (c.n, k.clone())).collect();
        keys.sort();
        for (_, key) in keys {
            self.fail_client(&key, message);
            if let Side::Spdy(server) = &mut self.side {
                server.close(&key);
            }
            if let Some(c) = self.conns.get(&key) {
                let up = c.up.clone();
                self.up.reset(&up);
            }
            self.end(&key, ForwardOutcome::Ended, message.to_string());
        }
        self.up.send_goaway();
    }

    /// GOAWAY to a client that did not close the tunnel itself after [`Switch::end_all`].
    pub fn goaway_client(&mut self) {
        if let Side::Spdy(server) = &mut self.side {
            server.send_goaway();
        }
    }

    /// Why the session must end, if the switch learned it.
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// Bytes relayed since the start (to the pod, from the pod).
    pub fn relayed(&self) -> (u64, u64) {
        self.relayed
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// What to record, in order.
    pub fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }

    /// For the client: bytes (SPDY) or channel frames (one per message), in order.
    pub fn take_client_output(&mut self) -> Vec<Vec<u8>> {
        match &mut self.side {
            Side::Spdy(server) => {
                let out = server.take_output();
                if out.is_empty() {
                    Vec::new()
                } else {
                    vec![out]
                }
            }
            Side::Channels { out, .. } => std::mem::take(out),
        }
    }

    /// For the cluster: SPDY bytes.
    pub fn take_upstream_output(&mut self) -> Vec<u8> {
        self.up.take_output()
    }
}

/// A channel frame as the client's protocol carries it: binary (channel byte, payload), or for
/// `v4.base64.channel.k8s.io` the text form's bytes (channel digit, base64).
fn encode(protocol: Protocol, ch: u8, payload: &[u8]) -> Vec<u8> {
    if protocol.is_base64() {
        channel::encode_text(ch, payload).into_bytes()
    } else {
        channel::encode_binary(ch, payload)
    }
}

#[cfg(test)]
mod tests;
