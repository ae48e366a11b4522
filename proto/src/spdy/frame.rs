//! SPDY/3.1 framing (the subset Kubernetes uses, via moby/spdystream).
//!
//! ```text
//! control: 1 | version:15 (=3) | type:16 | flags:8 | length:24 | payload
//! data:    0 | stream id:31           | flags:8 | length:24 | payload
//! ```
//! [`decode`] tells "need more bytes" (`Ok(None)`) apart from "invalid" (`Err`), so a connection
//! can keep its own buffer and call it again after each read.

/// Frame flags.
pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

const VERSION: u16 = 3;
const HEADER_LEN: usize = 8;
/// RST_STREAM status codes used by Kubernetes peers.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// Why bytes are not a SPDY/3 frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpdyError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("{kind} frame payload of {len} bytes is too short")]
    Short { kind: &'static str, len: usize },
    #[error("stream id 0 is not valid for {0}")]
    ZeroStream(&'static str),
    #[error("header block: {0}")]
    HeaderBlock(String),
}

/// A SPDY/3 frame. Header blocks stay compressed here: decompression needs the connection's
/// single, ordered zlib context ([`super::HeaderDecoder`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream_id: u32,
        fin: bool,
        data: Vec<u8>,
    },
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        block: Vec<u8>,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        block: Vec<u8>,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        block: Vec<u8>,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    /// A control frame type this decoder does not know; peers must ignore it.
    Unknown {
        kind: u16,
        flags: u8,
        payload: Vec<u8>,
    },
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn need(kind: &'static str, payload: &[u8], n: usize) -> Result<(), SpdyError> {
    if payload.len() < n {
        Err(SpdyError::Short {
            kind,
            len: payload.len(),
        })
    } else {
        Ok(())
    }
}

/// Most bytes buffered while waiting for the rest of a frame (a DATA frame's length field is
/// 24 bits, plus the header).
pub const MAX_BUFFERED: usize = (1 << 24) + 16;

/// Received bytes not yet a whole frame, for either end of a connection: bytes go in as they
/// arrive, whole frames come out in order, and the remainder never grows past [`MAX_BUFFERED`].
#[derive(Debug, Default)]
pub struct Inbox {
    buf: Vec<u8>,
}

impl Inbox {
    /// Appends `bytes` and hands every whole frame to `each`, in order. An error (a malformed
    /// frame, one `each` refuses, or too many bytes without a whole frame) means the connection
    /// is unusable.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        mut each: impl FnMut(Frame) -> Result<(), SpdyError>,
    ) -> Result<(), SpdyError> {
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        while let Some((f, used)) = decode(&self.buf[at..])? {
            at += used;
            each(f)?;
        }
        self.buf.drain(..at);
        if self.buf.len() > MAX_BUFFERED {
            return Err(SpdyError::Short {
                kind: "buffer",
                len: self.buf.len(),
            });
        }
        Ok(())
    }
}

/// Decodes one frame from the front of `buf`: `Ok(None)` if more bytes are needed, else the frame
/// and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, SpdyError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let flags = buf[4];
    let len = (u32_at(buf, 4) & 0x00ff_ffff) as usize;
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    let p = &buf[HEADER_LEN..HEADER_LEN + len];
    let fin = flags & FLAG_FIN != 0;
    let frame = if buf[0] & 0x80 == 0 {
        let stream_id = u32_at(buf, 0) & 0x7fff_ffff;
        if stream_id == 0 {
            return Err(SpdyError::ZeroStream("DATA"));
        }
        Frame::Data {
            stream_id,
            fin,
            data: p.to_vec(),
        }
    } else {
        let version = u16::from_be_bytes([buf[0] & 0x7f, buf[1]]);
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([buf[2], buf[3]]);
        match kind {
            TYPE_SYN_STREAM => {
                need("SYN_STREAM", p, 10)?;
                let stream_id = u32_at(p, 0) & 0x7fff_ffff;
                if stream_id == 0 {
                    return Err(SpdyError::ZeroStream("SYN_STREAM"));
                }
                Frame::SynStream {
                    stream_id,
                    associated_to: u32_at(p, 4) & 0x7fff_ffff,
                    priority: p[8] >> 5,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    block: p[10..].to_vec(),
                }
            }
            TYPE_SYN_REPLY => {
                need("SYN_REPLY", p, 4)?;
                Frame::SynReply {
                    stream_id: u32_at(p, 0) & 0x7fff_ffff,
                    fin,
                    block: p[4..].to_vec(),
                }
            }
            TYPE_RST_STREAM => {
                need("RST_STREAM", p, 8)?;
                Frame::RstStream {
                    stream_id: u32_at(p, 0) & 0x7fff_ffff,
                    status: u32_at(p, 4),
                }
            }
            TYPE_SETTINGS => {
                need("SETTINGS", p, 4)?;
                let n = u32_at(p, 0) as usize;
                let body = &p[4..];
                if body.len() / 8 < n {
                    return Err(SpdyError::Short {
                        kind: "SETTINGS",
                        len: p.len(),
                    });
                }
                let entries = (0..n)
                    .map(|i| {
                        let e = &body[i * 8..i * 8 + 8];
                        (e[0], u32_at(e, 0) & 0x00ff_ffff, u32_at(e, 4))
                    })
                    .collect();
                Frame::Settings { entries }
            }
            TYPE_PING => {
                need("PING", p, 4)?;
                Frame::Ping { id: u32_at(p, 0) }
            }
            TYPE_GOAWAY => {
                need("GOAWAY", p, 4)?;
                // Status was added in SPDY/3; tolerate its absence as spdystream does.
                let status = if p.len() >= 8 { u32_at(p, 4) } else { 0 };
                Frame::GoAway {
                    last_good: u32_at(p, 0) & 0x7fff_ffff,
                    status,
                }
            }
            TYPE_HEADERS => {
                need("HEADERS", p, 4)?;
                Frame::Headers {
                    stream_id: u32_at(p, 0) & 0x7fff_ffff,
                    fin,
                    block: p[4..].to_vec(),
                }
            }
            TYPE_WINDOW_UPDATE => {
                need("WINDOW_UPDATE", p, 8)?;
                Frame::WindowUpdate {
                    stream_id: u32_at(p, 0) & 0x7fff_ffff,
                    delta: u32_at(p, 4) & 0x7fff_ffff,
                }
            }
            kind => Frame::Unknown {
                kind,
                flags,
                payload: p.to_vec(),
            },
        }
    };
    Ok(Some((frame, HEADER_LEN + len)))
}

/// Appends a DATA frame for a borrowed payload: the same bytes as [`Frame::Data`]'s encoding
/// without first copying the payload into a `Frame` (relays and servers send every chunk of
/// output this way). `payload` must be < 16 MiB.
pub fn encode_data(stream_id: u32, fin: bool, payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() < 1 << 24);
    let flags = if fin { FLAG_FIN } else { 0 };
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&((u32::from(flags) << 24) | payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

fn control(out: &mut Vec<u8>, kind: u16, flags: u8, payload: &[u8]) {
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&((u32::from(flags) << 24) | payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

impl Frame {
    /// Appends the wire form to `out`. Payloads must be < 16 MiB (callers split data).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let fin = |f: bool| if f { FLAG_FIN } else { 0 };
        match self {
            Frame::Data {
                stream_id,
                fin: f,
                data,
            } => encode_data(*stream_id, *f, data, out),
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin: f,
                unidirectional,
                block,
            } => {
                let mut p = Vec::with_capacity(10 + block.len());
                p.extend_from_slice(&stream_id.to_be_bytes());
                p.extend_from_slice(&associated_to.to_be_bytes());
                p.push(priority << 5);
                p.push(0);
                p.extend_from_slice(block);
                let flags = fin(*f)
                    | if *unidirectional {
                        FLAG_UNIDIRECTIONAL
                    } else {
                        0
                    };
                control(out, TYPE_SYN_STREAM, flags, &p);
            }
            Frame::SynReply {
                stream_id,
                fin: f,
                block,
            } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend_from_slice(block);
                control(out, TYPE_SYN_REPLY, fin(*f), &p);
            }
            Frame::RstStream { stream_id, status } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(out, TYPE_RST_STREAM, 0, &p);
            }
            Frame::Settings { entries } => {
                let mut p = (entries.len() as u32).to_be_bytes().to_vec();
                for (flags, id, value) in entries {
                    p.extend_from_slice(
                        &((u32::from(*flags) << 24) | (id & 0x00ff_ffff)).to_be_bytes(),
                    );
                    p.extend_from_slice(&value.to_be_bytes());
                }
                control(out, TYPE_SETTINGS, 0, &p);
            }
            Frame::Ping { id } => control(out, TYPE_PING, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => {
                let mut p = last_good.to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(out, TYPE_GOAWAY, 0, &p);
            }
            Frame::Headers {
                stream_id,
                fin: f,
                block,
            } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend_from_slice(block);
                control(out, TYPE_HEADERS, fin(*f), &p);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend_from_slice(&delta.to_be_bytes());
                control(out, TYPE_WINDOW_UPDATE, 0, &p);
            }
            Frame::Unknown {
                kind,
                flags,
                payload,
            } => control(out, *kind, *flags, payload),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_vectors() {
        // DATA on stream 3 with FIN and payload "hi".
        let data = Frame::Data {
            stream_id: 3,
            fin: true,
            data: b"hi".to_vec(),
        };
        assert_eq!(data.to_bytes(), [0, 0, 0, 3, 0x01, 0, 0, 2, b'h', b'i']);
        // The borrowing encoder writes the same bytes; without FIN the flags byte is 0.
        let mut out = Vec::new();
        encode_data(3, true, b"hi", &mut out);
        encode_data(5, false, b"", &mut out);
        assert_eq!(
            out,
            [
                0, 0, 0, 3, 0x01, 0, 0, 2, b'h', b'i', 0, 0, 0, 5, 0, 0, 0, 0
            ]
        );
        // PING id 1: control bit + version 3, type 6, no flags, length 4.
        assert_eq!(
            Frame::Ping { id: 1 }.to_bytes(),
            [0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1]
        );
        // RST_STREAM stream 5 CANCEL.
        assert_eq!(
            Frame::RstStream {
                stream_id: 5,
                status: RST_CANCEL
            }
            .to_bytes(),
            [0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 5]
        );
    }

    #[test]
    fn incomplete_versus_invalid() {
        let bytes = Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            block: vec![1, 2, 3],
        }
        .to_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        let (frame, used) = decode(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(frame.to_bytes(), bytes);
        assert_eq!(
            decode(&[0x80, 0x02, 0, 1, 0, 0, 0, 0]),
            Err(SpdyError::Version(2))
        );
        assert_eq!(
            decode(&[0x80, 0x03, 0, 1, 0, 0, 0, 2, 0, 1]),
            Err(SpdyError::Short {
                kind: "SYN_STREAM",
                len: 2
            })
        );
        assert_eq!(
            decode(&[0, 0, 0, 0, 0, 0, 0, 0]),
            Err(SpdyError::ZeroStream("DATA"))
        );
    }

    #[test]
    fn every_frame_round_trips() {
        let frames = [
            Frame::Data {
                stream_id: 7,
                fin: false,
                data: vec![0; 300],
            },
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 2,
                fin: true,
                unidirectional: true,
                block: vec![9],
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                block: vec![],
            },
            Frame::RstStream {
                stream_id: 9,
                status: RST_REFUSED_STREAM,
            },
            Frame::Settings {
                entries: vec![(1, 4, 100), (0, 7, 65536)],
            },
            Frame::Ping { id: 3 },
            Frame::GoAway {
                last_good: 5,
                status: 0,
            },
            Frame::Headers {
                stream_id: 3,
                fin: true,
                block: vec![1, 2],
            },
            Frame::WindowUpdate {
                stream_id: 3,
                delta: 1000,
            },
            Frame::Unknown {
                kind: 42,
                flags: 3,
                payload: vec![1],
            },
        ];
        let mut wire = Vec::new();
        for f in &frames {
            f.encode(&mut wire);
        }
        let mut at = 0;
        for f in &frames {
            let (got, used) = decode(&wire[at..]).unwrap().unwrap();
            assert_eq!(&got, f);
            at += used;
        }
        assert_eq!(at, wire.len());
    }
}
