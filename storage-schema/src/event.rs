//! The event model: everything a session records, each stamped with microseconds since the
//! session started.
//!
//! # Wire form (inside a chunk's plaintext)
//! ```text
//! event := tag:u8  delta_us:varint  len:varint  payload[len]
//! ```
//! `delta_us` is the offset from the previous event of the same chunk (from the chunk's first
//! offset for its first event), so a typing session costs one or two bytes of time per event.
//! Every payload is length-prefixed, so a reader meets a tag it does not know as
//! [`EventKind::Unknown`] and keeps going: newer writers never break older readers.
//!
//! Format v1 chunks hold the events one after the other ([`decode_all`]). Format v2 chunks hold
//! the same events split in two ([`encode_split`], [`decode_split`]):
//! ```text
//! plaintext := payloads  heads  heads_len:u32be
//! payloads  := every event's payload, in event order
//! heads     := (tag:u8  delta_us:varint  len:varint)*   one per event
//! ```
//! Why: zstd then sees a terminal's output as the contiguous text it was, not broken by a head
//! every read. On the pipeline bench's terminal mix that makes zstd ~3% faster and its output
//! ~3% smaller (4 KiB reads; the gain grows as reads get smaller).

use std::borrow::Cow;

use crate::varint::{self, VarintError};

/// Longest payload a single event may carry. Writers split longer data; readers refuse more,
/// which bounds the memory a hostile chunk can ask for per event.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Which standard stream a data or close event concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

impl Stream {
    /// The channel number the Kubernetes channel protocol uses for this stream.
    pub fn channel(self) -> u8 {
        match self {
            Stream::Stdin => 0,
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }

    fn from_channel(channel: u8) -> Option<Self> {
        match channel {
            0 => Some(Stream::Stdin),
            1 => Some(Stream::Stdout),
            2 => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// Which way port-forwarded bytes travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client (kubectl) towards the pod.
    ToPod,
    /// From the pod back to the client.
    FromPod,
}

/// How a port-forwarded connection ended ([`EventKind::PortForwardEnd`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardOutcome {
    /// Both sides finished (each sent its FIN; kubectl resets the data stream after the pod's
    /// FIN, which counts as finishing).
    Closed,
    /// The client (kubectl) reset the connection before the pod's side finished.
    ResetByClient,
    /// The cluster (kubelet, the pod's port) reset the connection.
    ResetByCluster,
    /// The cluster reported an error on the connection's error stream (the message), e.g.
    /// nothing listens on the port.
    Error,
    /// The gateway refused the connection: its port is outside what the policy allows (the
    /// message says which rule).
    Refused,
    /// The session ended while the connection was open (revocation, grant expiry, time limit,
    /// drain, the client or the cluster going away; the message says which).
    Ended,
    /// A code written by a newer writer, kept.
    Other(u8),
}

impl ForwardOutcome {
    /// The byte the format stores.
    pub fn code(self) -> u8 {
        match self {
            ForwardOutcome::Closed => 0,
            ForwardOutcome::ResetByClient => 1,
            ForwardOutcome::ResetByCluster => 2,
            ForwardOutcome::Error => 3,
            ForwardOutcome::Refused => 4,
            ForwardOutcome::Ended => 5,
            ForwardOutcome::Other(c) => c,
        }
    }

    pub fn from_code(code: u8) -> Self {
        match code {
            0 => ForwardOutcome::Closed,
            1 => ForwardOutcome::ResetByClient,
            2 => ForwardOutcome::ResetByCluster,
            3 => ForwardOutcome::Error,
            4 => ForwardOutcome::Refused,
            5 => ForwardOutcome::Ended,
            c => ForwardOutcome::Other(c),
        }
    }

    /// A short name for listings (`closed`, `reset-by-client`, …).
    pub fn name(self) -> &'static str {
        match self {
            ForwardOutcome::Closed => "closed",
            ForwardOutcome::ResetByClient => "reset-by-client",
            ForwardOutcome::ResetByCluster => "reset-by-cluster",
            ForwardOutcome::Error => "error",
            ForwardOutcome::Refused => "refused",
            ForwardOutcome::Ended => "ended",
            ForwardOutcome::Other(_) => "other",
        }
    }
}

/// One recorded happening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Microseconds since the session started.
    pub at_us: u64,
    pub kind: EventKind,
}

/// What happened. The tag numbers are part of format v1 and never change meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// Bytes on a standard stream (tags 1, 2, 3).
    Data { stream: Stream, bytes: Vec<u8> },
    /// The terminal was resized (tag 4).
    Resize { cols: u16, rows: u16 },
    /// The process ended (tag 5): exit code (negative for "killed by signal −code") and the
    /// status message the cluster gave.
    Exit { code: i32, message: String },
    /// A labelled point in time, e.g. "grant expired" (tag 6).
    Marker { text: String },
    /// A stream was half-closed, e.g. stdin reached EOF (tag 7).
    StreamClose { stream: Stream },
    /// A port-forward connection opened (tag 8): `conn` numbers the session's connections
    /// from 1 in the order they opened; `port` is the pod's port.
    PortForwardOpen { conn: u64, port: u16 },
    /// Port-forwarded bytes (tag 9), recorded only with payload capture (`capture = "full"`).
    PortForwardData {
        conn: u64,
        direction: Direction,
        bytes: Vec<u8>,
    },
    /// A port-forward connection closed, with the error text if it failed (tag 10). Superseded
    /// by [`EventKind::PortForwardEnd`]: readers keep it, writers no longer write it.
    PortForwardClose { conn: u64, error: String },
    /// One audit record (tag 11): the JSON text of a [`crate::audit::AuditRecord`], in audit
    /// streams (sessions of kind [`crate::SessionKind::Audit`]). Kept as text so that records
    /// written by newer gateways, with fields this reader does not know, survive verbatim.
    Audit { json: String },
    // === port-forward connections (tags 16–18; see FORMAT.md "Port-forward sessions") ===
    /// Bytes connection `conn` moved since its previous bytes event (tag 16): a reader sums
    /// them. Written at most about once a second per connection while it moves data, and when
    /// it ends, so a crash loses at most the last second's count, as with stream data.
    PortForwardBytes {
        conn: u64,
        to_pod: u64,
        from_pod: u64,
    },
    /// One side of connection `conn` finished sending (tag 17): `ToPod` the client shut its
    /// write side, `FromPod` the pod's side did. The other way keeps flowing (half-close).
    PortForwardHalfClose { conn: u64, direction: Direction },
    /// Connection `conn` ended (tag 18), how, and the text that goes with it (the cluster's
    /// error, the refusal, why the session ended; empty when it closed cleanly).
    PortForwardEnd {
        conn: u64,
        outcome: ForwardOutcome,
        message: String,
    },
    /// A tag this reader does not know, kept verbatim.
    Unknown { tag: u8, payload: Vec<u8> },
}

const TAG_STDIN: u8 = 1;
const TAG_STDOUT: u8 = 2;
const TAG_STDERR: u8 = 3;
const TAG_RESIZE: u8 = 4;
const TAG_EXIT: u8 = 5;
const TAG_MARKER: u8 = 6;
const TAG_STREAM_CLOSE: u8 = 7;
const TAG_PF_OPEN: u8 = 8;
const TAG_PF_DATA: u8 = 9;
const TAG_PF_CLOSE: u8 = 10;
const TAG_AUDIT: u8 = 11;
const TAG_PF_BYTES: u8 = 16;
const TAG_PF_HALF_CLOSE: u8 = 17;
const TAG_PF_END: u8 = 18;

/// Why an event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event {index}: truncated")]
    Truncated { index: usize },
    #[error("event {index}: {field} is not a valid varint: {source}")]
    Varint {
        index: usize,
        field: &'static str,
        source: VarintError,
    },
    #[error("event {index}: payload of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    PayloadTooLarge { index: usize, len: u64 },
    #[error("event {index}: time offset overflows")]
    TimeOverflow { index: usize },
    #[error("events' layout: {0}")]
    Layout(&'static str),
    #[error("event {index} (tag {tag}): malformed payload: {reason}")]
    Payload {
        index: usize,
        tag: u8,
        reason: &'static str,
    },
}

impl Event {
    /// Number of payload bytes this event carries on a standard stream, for the seal's counters.
    pub fn stream_bytes(&self) -> Option<(Stream, usize)> {
        match &self.kind {
            EventKind::Data { stream, bytes } => Some((*stream, bytes.len())),
            _ => None,
        }
    }

    /// Appends the wire form to `out`, with the time stored relative to `prev_us`.
    ///
    /// # Panics
    /// If `self.at_us < prev_us`: writers stamp events from a monotonic clock.
    pub fn encode(&self, prev_us: u64, out: &mut Vec<u8>) {
        let (tag, payload) = self.tag_and_payload();
        write_head(tag, delta(self.at_us, prev_us), payload.len(), out);
        out.extend_from_slice(&payload);
    }

    /// Appends the v2 wire form: the head to `heads`, the payload to `payloads`.
    ///
    /// # Panics
    /// If `self.at_us < prev_us`, as [`Event::encode`].
    pub fn encode_split(&self, prev_us: u64, heads: &mut Vec<u8>, payloads: &mut Vec<u8>) {
        let (tag, payload) = self.tag_and_payload();
        write_head(tag, delta(self.at_us, prev_us), payload.len(), heads);
        payloads.extend_from_slice(&payload);
    }

    /// The tag and payload bytes; stream data (the hot path) is borrowed, not copied.
    fn tag_and_payload(&self) -> (u8, Cow<'_, [u8]>) {
        let mut owned = Vec::new();
        let tag = match &self.kind {
            EventKind::Data { stream, bytes } => return (data_tag(*stream), Cow::Borrowed(bytes)),
            EventKind::Marker { text } => return (TAG_MARKER, Cow::Borrowed(text.as_bytes())),
            EventKind::Audit { json } => return (TAG_AUDIT, Cow::Borrowed(json.as_bytes())),
            EventKind::Unknown { tag, payload } => return (*tag, Cow::Borrowed(payload)),
            EventKind::Resize { cols, rows } => {
                varint::encode(u64::from(*cols), &mut owned);
                varint::encode(u64::from(*rows), &mut owned);
                TAG_RESIZE
            }
            EventKind::Exit { code, message } => {
                varint::encode(zigzag(*code), &mut owned);
                owned.extend_from_slice(message.as_bytes());
                TAG_EXIT
            }
            EventKind::StreamClose { stream } => {
                owned.push(stream.channel());
                TAG_STREAM_CLOSE
            }
            EventKind::PortForwardOpen { conn, port } => {
                varint::encode(*conn, &mut owned);
                varint::encode(u64::from(*port), &mut owned);
                TAG_PF_OPEN
            }
            EventKind::PortForwardData {
                conn,
                direction,
                bytes,
            } => {
                varint::encode(*conn, &mut owned);
                owned.push(direction_byte(*direction));
                owned.extend_from_slice(bytes);
                TAG_PF_DATA
            }
            EventKind::PortForwardClose { conn, error } => {
                varint::encode(*conn, &mut owned);
                owned.extend_from_slice(error.as_bytes());
                TAG_PF_CLOSE
            }
            EventKind::PortForwardBytes {
                conn,
                to_pod,
                from_pod,
            } => {
                varint::encode(*conn, &mut owned);
                varint::encode(*to_pod, &mut owned);
                varint::encode(*from_pod, &mut owned);
                TAG_PF_BYTES
            }
            EventKind::PortForwardHalfClose { conn, direction } => {
                varint::encode(*conn, &mut owned);
                owned.push(direction_byte(*direction));
                TAG_PF_HALF_CLOSE
            }
            EventKind::PortForwardEnd {
                conn,
                outcome,
                message,
            } => {
                varint::encode(*conn, &mut owned);
                owned.push(outcome.code());
                owned.extend_from_slice(message.as_bytes());
                TAG_PF_END
            }
        };
        (tag, Cow::Owned(owned))
    }
}

/// Appends the v2 wire form of stream data without building an [`Event`] (the relay's path).
///
/// # Panics
/// If `at_us < prev_us`, as [`Event::encode`].
pub fn encode_data_split(
    at_us: u64,
    prev_us: u64,
    stream: Stream,
    bytes: &[u8],
    heads: &mut Vec<u8>,
    payloads: &mut Vec<u8>,
) {
    write_head(data_tag(stream), delta(at_us, prev_us), bytes.len(), heads);
    payloads.extend_from_slice(bytes);
}

/// Closes a v2 plaintext: appends `heads` and their length behind the payloads.
pub fn finish_split(payloads: &mut Vec<u8>, heads: &[u8]) {
    payloads.extend_from_slice(heads);
    let len = u32::try_from(heads.len()).expect("a chunk's heads fit in u32");
    payloads.extend_from_slice(&len.to_be_bytes());
}

/// `events` in the v2 layout, the first relative to `base_us` (tests, fuzz seeds, tools).
pub fn encode_all_split(events: &[Event], base_us: u64) -> Vec<u8> {
    let (mut heads, mut payloads) = (Vec::new(), Vec::new());
    let mut prev = base_us;
    for event in events {
        event.encode_split(prev, &mut heads, &mut payloads);
        prev = event.at_us;
    }
    finish_split(&mut payloads, &heads);
    payloads
}

fn direction_byte(direction: Direction) -> u8 {
    match direction {
        Direction::ToPod => 0,
        Direction::FromPod => 1,
    }
}

fn direction_of(byte: u8) -> Result<Direction, &'static str> {
    match byte {
        0 => Ok(Direction::ToPod),
        1 => Ok(Direction::FromPod),
        _ => Err("unknown direction"),
    }
}

fn data_tag(stream: Stream) -> u8 {
    TAG_STDIN + stream.channel()
}

fn delta(at_us: u64, prev_us: u64) -> u64 {
    at_us
        .checked_sub(prev_us)
        .expect("events are encoded in time order")
}

fn write_head(tag: u8, delta: u64, len: usize, out: &mut Vec<u8>) {
    out.push(tag);
    varint::encode(delta, out);
    varint::encode(len as u64, out);
}

fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn unzigzag(v: u64) -> Option<i32> {
    let v = u32::try_from(v).ok()?;
    Some(((v >> 1) as i32) ^ -((v & 1) as i32))
}

/// Decodes every event of a chunk's plaintext, whose first event is relative to `base_us`.
pub fn decode_all(mut input: &[u8], base_us: u64) -> Result<Vec<Event>, EventError> {
    let mut events = Vec::new();
    let mut prev = base_us;
    while !input.is_empty() {
        let (event, used) = decode_one(input, prev, events.len())?;
        prev = event.at_us;
        input = &input[used..];
        events.push(event);
    }
    Ok(events)
}

/// Decodes every event of a v2 plaintext (payloads, heads, heads' length; see the module
/// docs), the first relative to `base_us`. Every payload byte must belong to an event.
pub fn decode_split(plain: &[u8], base_us: u64) -> Result<Vec<Event>, EventError> {
    let (body, heads_len) = plain
        .split_last_chunk::<4>()
        .ok_or(EventError::Layout("shorter than the heads' length"))?;
    let split = body
        .len()
        .checked_sub(u32::from_be_bytes(*heads_len) as usize)
        .ok_or(EventError::Layout("heads' length exceeds the plaintext"))?;
    let (mut payloads, mut heads) = body.split_at(split);
    let mut events = Vec::new();
    let mut prev = base_us;
    while !heads.is_empty() {
        let index = events.len();
        let (head, used) = Head::decode(heads, index)?;
        heads = &heads[used..];
        let payload = payloads
            .split_off(..head.len)
            .ok_or(EventError::Truncated { index })?;
        let event = head.event(payload, prev, index)?;
        prev = event.at_us;
        events.push(event);
    }
    if !payloads.is_empty() {
        return Err(EventError::Layout("payload bytes beyond the last event"));
    }
    Ok(events)
}

/// Decodes one event from the front of `input`; returns it and the bytes it used.
pub fn decode_one(input: &[u8], prev_us: u64, index: usize) -> Result<(Event, usize), EventError> {
    let (head, used) = Head::decode(input, index)?;
    let payload = input[used..]
        .get(..head.len)
        .ok_or(EventError::Truncated { index })?;
    Ok((head.event(payload, prev_us, index)?, used + head.len))
}

/// An event's tag, time delta and payload length, as decoded.
struct Head {
    tag: u8,
    delta: u64,
    len: usize,
}

impl Head {
    fn decode(input: &[u8], index: usize) -> Result<(Self, usize), EventError> {
        let (&tag, rest) = input.split_first().ok_or(EventError::Truncated { index })?;
        let varint_err = |field| {
            move |source| EventError::Varint {
                index,
                field,
                source,
            }
        };
        let (delta, n1) = varint::decode(rest).map_err(varint_err("time delta"))?;
        let (len, n2) = varint::decode(&rest[n1..]).map_err(varint_err("payload length"))?;
        if len > MAX_PAYLOAD as u64 {
            return Err(EventError::PayloadTooLarge { index, len });
        }
        let head = Head {
            tag,
            delta,
            len: len as usize,
        };
        Ok((head, 1 + n1 + n2))
    }

    fn event(&self, payload: &[u8], prev_us: u64, index: usize) -> Result<Event, EventError> {
        let at_us = prev_us
            .checked_add(self.delta)
            .ok_or(EventError::TimeOverflow { index })?;
        let kind = decode_payload(self.tag, payload).map_err(|reason| EventError::Payload {
            index,
            tag: self.tag,
            reason,
        })?;
        Ok(Event { at_us, kind })
    }
}

fn decode_payload(tag: u8, payload: &[u8]) -> Result<EventKind, &'static str> {
    let take_varint = |p: &mut &[u8], what: &'static str| -> Result<u64, &'static str> {
        let (v, n) = varint::decode(p).map_err(|_| what)?;
        *p = &p[n..];
        Ok(v)
    };
    let utf8 = |p: &[u8]| String::from_utf8(p.to_vec()).map_err(|_| "text is not UTF-8");
    let mut p = payload;
    let kind = match tag {
        TAG_STDIN | TAG_STDOUT | TAG_STDERR => EventKind::Data {
            stream: Stream::from_channel(tag - TAG_STDIN).ok_or("bad stream")?,
            bytes: payload.to_vec(),
        },
        TAG_RESIZE => {
            let cols = take_varint(&mut p, "bad columns")?;
            let rows = take_varint(&mut p, "bad rows")?;
            if !p.is_empty() {
                return Err("trailing bytes after resize");
            }
            EventKind::Resize {
                cols: u16::try_from(cols).map_err(|_| "columns out of range")?,
                rows: u16::try_from(rows).map_err(|_| "rows out of range")?,
            }
        }
        TAG_EXIT => {
            let code = take_varint(&mut p, "bad exit code")?;
            EventKind::Exit {
                code: unzigzag(code).ok_or("exit code out of range")?,
                message: utf8(p)?,
            }
        }
        TAG_MARKER => EventKind::Marker { text: utf8(p)? },
        TAG_AUDIT => EventKind::Audit { json: utf8(p)? },
        TAG_STREAM_CLOSE => match p {
            [channel] => EventKind::StreamClose {
                stream: Stream::from_channel(*channel).ok_or("unknown stream")?,
            },
            _ => return Err("stream close must be one byte"),
        },
        TAG_PF_OPEN => {
            let conn = take_varint(&mut p, "bad connection id")?;
            let port = take_varint(&mut p, "bad port")?;
            if !p.is_empty() {
                return Err("trailing bytes after port-forward open");
            }
            EventKind::PortForwardOpen {
                conn,
                port: u16::try_from(port).map_err(|_| "port out of range")?,
            }
        }
        TAG_PF_DATA => {
            let conn = take_varint(&mut p, "bad connection id")?;
            let (&dir, bytes) = p.split_first().ok_or("missing direction")?;
            let direction = direction_of(dir)?;
            EventKind::PortForwardData {
                conn,
                direction,
                bytes: bytes.to_vec(),
            }
        }
        TAG_PF_CLOSE => {
            let conn = take_varint(&mut p, "bad connection id")?;
            EventKind::PortForwardClose {
                conn,
                error: utf8(p)?,
            }
        }
        TAG_PF_BYTES => {
            let conn = take_varint(&mut p, "bad connection id")?;
            let to_pod = take_varint(&mut p, "bad byte count")?;
            let from_pod = take_varint(&mut p, "bad byte count")?;
            if !p.is_empty() {
                return Err("trailing bytes after port-forward bytes");
            }
            EventKind::PortForwardBytes {
                conn,
                to_pod,
                from_pod,
            }
        }
        TAG_PF_HALF_CLOSE => {
            let conn = take_varint(&mut p, "bad connection id")?;
            match p {
                [dir] => EventKind::PortForwardHalfClose {
                    conn,
                    direction: direction_of(*dir)?,
                },
                _ => return Err("half-close direction must be one byte"),
            }
        }
        TAG_PF_END => {
            let conn = take_varint(&mut p, "bad connection id")?;
            let (&outcome, message) = p.split_first().ok_or("missing outcome")?;
            EventKind::PortForwardEnd {
                conn,
                outcome: ForwardOutcome::from_code(outcome),
                message: utf8(message)?,
            }
        }
        // Tag 0 is never written: a zeroed buffer must not decode as events.
        0 => return Err("tag 0 is reserved"),
        tag => EventKind::Unknown {
            tag,
            payload: payload.to_vec(),
        },
    };
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn byte_vectors() {
        // stdout "hi" at 300 µs after a base of 0: tag 2, delta 300 = ac 02, len 2, "hi".
        let mut out = Vec::new();
        Event {
            at_us: 300,
            kind: EventKind::Data {
                stream: Stream::Stdout,
                bytes: b"hi".to_vec(),
            },
        }
        .encode(0, &mut out);
        assert_eq!(out, [0x02, 0xac, 0x02, 0x02, b'h', b'i']);
        // resize 80x24 at the same instant: tag 4, delta 0, len 2, cols 80, rows 24.
        let mut out = Vec::new();
        Event {
            at_us: 300,
            kind: EventKind::Resize { cols: 80, rows: 24 },
        }
        .encode(300, &mut out);
        assert_eq!(out, [0x04, 0x00, 0x02, 80, 24]);
        // exit code -9 (killed by SIGKILL) zigzags to 17, message "x".
        let mut out = Vec::new();
        Event {
            at_us: 1,
            kind: EventKind::Exit {
                code: -9,
                message: "x".into(),
            },
        }
        .encode(0, &mut out);
        assert_eq!(out, [0x05, 0x01, 0x02, 17, b'x']);
        // audit record "{}" at 2 µs: tag 11, delta 2, len 2, the JSON text.
        let mut out = Vec::new();
        Event {
            at_us: 2,
            kind: EventKind::Audit { json: "{}".into() },
        }
        .encode(0, &mut out);
        assert_eq!(out, [0x0b, 0x02, 0x02, b'{', b'}']);
        assert_eq!(
            decode_all(&[0x0b, 0x00, 0x01, 0xff], 0),
            Err(EventError::Payload {
                index: 0,
                tag: 11,
                reason: "text is not UTF-8"
            })
        );
    }

    /// The port-forward connection events (tags 16–18), byte for byte.
    #[test]
    fn port_forward_byte_vectors() {
        let encode = |kind: EventKind| {
            let mut out = Vec::new();
            Event { at_us: 0, kind }.encode(0, &mut out);
            out
        };
        // Connection 3 moved 300 bytes to the pod (ac 02) and 1 back: tag 16, delta 0, len 4.
        let bytes = encode(EventKind::PortForwardBytes {
            conn: 3,
            to_pod: 300,
            from_pod: 1,
        });
        assert_eq!(bytes, [0x10, 0x00, 0x04, 3, 0xac, 0x02, 1]);
        // The pod's side of connection 3 finished: tag 17, conn 3, direction 1.
        let half = encode(EventKind::PortForwardHalfClose {
            conn: 3,
            direction: Direction::FromPod,
        });
        assert_eq!(half, [0x11, 0x00, 0x02, 3, 1]);
        // Connection 3 refused (outcome 4) with a reason: tag 18, conn, outcome, UTF-8 text.
        let end = encode(EventKind::PortForwardEnd {
            conn: 3,
            outcome: ForwardOutcome::Refused,
            message: "no".into(),
        });
        assert_eq!(end, [0x12, 0x00, 0x04, 3, 4, b'n', b'o']);
        for wire in [&bytes, &half, &end] {
            let decoded = decode_all(wire, 0).unwrap();
            let mut again = Vec::new();
            decoded[0].encode(0, &mut again);
            assert_eq!(&again, wire);
        }
        // An outcome a newer writer added survives; bad payloads are errors.
        let newer = [0x12, 0x00, 0x02, 3, 9];
        assert_eq!(
            decode_all(&newer, 0).unwrap()[0].kind,
            EventKind::PortForwardEnd {
                conn: 3,
                outcome: ForwardOutcome::Other(9),
                message: String::new()
            }
        );
        for bad in [
            &[0x10, 0x00, 0x02, 3, 1][..],
            &[0x10, 0x00, 0x05, 3, 1, 1, 1, 1],
            &[0x11, 0x00, 0x02, 3, 2],
            &[0x11, 0x00, 0x03, 3, 1, 1],
            &[0x12, 0x00, 0x01, 3],
            &[0x12, 0x00, 0x03, 3, 0, 0xff],
        ] {
            assert!(
                matches!(decode_all(bad, 0), Err(EventError::Payload { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        assert_eq!(
            decode_all(&[0x02, 0x00, 0x05, b'a'], 0),
            Err(EventError::Truncated { index: 0 })
        );
        assert!(matches!(
            decode_all(&[0x00, 0x00, 0x00], 0),
            Err(EventError::Payload { tag: 0, .. })
        ));
        assert!(matches!(
            decode_all(&[0x04, 0x00, 0x01, 0x80], 0),
            Err(EventError::Payload { tag: 4, .. })
        ));
        assert!(matches!(
            decode_all(&[0x07, 0x00, 0x01, 9], 0),
            Err(EventError::Payload { tag: 7, .. })
        ));
        assert!(matches!(
            decode_all(&[0x02, 0x00, 0xff, 0xff, 0xff, 0x7f], 0),
            Err(EventError::PayloadTooLarge { .. })
        ));
        let overflow = [
            0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00,
        ];
        assert_eq!(
            decode_all(&overflow, 5),
            Err(EventError::TimeOverflow { index: 0 })
        );
        assert_eq!(decode_all(&[], 0), Ok(vec![]));
    }

    #[test]
    fn unknown_tags_survive() {
        let event = Event {
            at_us: 7,
            kind: EventKind::Unknown {
                tag: 200,
                payload: vec![1, 2, 3],
            },
        };
        let mut out = Vec::new();
        event.encode(0, &mut out);
        assert_eq!(decode_all(&out, 0).unwrap(), vec![event]);
    }

    /// The v2 layout byte for byte: payloads, then heads, then the heads' length.
    #[test]
    fn split_byte_vectors() {
        let events = [
            Event {
                at_us: 300,
                kind: EventKind::Data {
                    stream: Stream::Stdout,
                    bytes: b"hi".to_vec(),
                },
            },
            Event {
                at_us: 300,
                kind: EventKind::Resize { cols: 80, rows: 24 },
            },
        ];
        let plain = encode_all_split(&events, 0);
        assert_eq!(
            plain,
            [
                b'h', b'i', 80, 24, // payloads
                0x02, 0xac, 0x02, 0x02, 0x04, 0x00, 0x02, // heads
                0, 0, 0, 7, // heads' length
            ]
        );
        assert_eq!(decode_split(&plain, 0).unwrap(), events);
        // The relay's path writes the same bytes as an Event would.
        let (mut heads, mut payloads) = (Vec::new(), Vec::new());
        encode_data_split(300, 0, Stream::Stdout, b"hi", &mut heads, &mut payloads);
        events[1].encode_split(300, &mut heads, &mut payloads);
        finish_split(&mut payloads, &heads);
        assert_eq!(payloads, plain);
        assert_eq!(decode_split(&[0, 0, 0, 0], 0), Ok(vec![]));
    }

    #[test]
    fn malformed_split_inputs_are_errors() {
        let layout = |r| Err(EventError::Layout(r));
        assert_eq!(
            decode_split(&[], 0),
            layout("shorter than the heads' length")
        );
        assert_eq!(
            decode_split(&[0, 0, 7], 0),
            layout("shorter than the heads' length")
        );
        assert_eq!(
            decode_split(&[1, 0, 0, 0, 9], 0),
            layout("heads' length exceeds the plaintext")
        );
        // A head asking for more payload than there is.
        assert_eq!(
            decode_split(&[b'h', 0x02, 0x00, 0x05, 0, 0, 0, 3], 0),
            Err(EventError::Truncated { index: 0 })
        );
        // Payload bytes no event claims.
        assert_eq!(
            decode_split(&[b'h', b'i', 0x02, 0x00, 0x01, 0, 0, 0, 3], 0),
            layout("payload bytes beyond the last event")
        );
        // Errors inside an event are those of v1, with the event's index.
        assert!(matches!(
            decode_split(&[b'x', 0x02, 0x00, 0x00, 0x04, 0x00, 0x01, 0, 0, 0, 6], 0),
            Err(EventError::Payload {
                index: 1,
                tag: 4,
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_all(&bytes, 0);
            let _ = decode_split(&bytes, 0);
        }

        /// Any events v1 accepts read back the same through the v2 layout.
        #[test]
        fn split_round_trips_what_v1_decodes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(events) = decode_all(&bytes, 0) {
                prop_assert_eq!(decode_split(&encode_all_split(&events, 0), 0).unwrap(), events);
            }
        }
    }
}
