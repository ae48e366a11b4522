//! The client side of a SPDY/3.1 connection, without I/O: what kubectl's spdystream does when it
//! dials an API server or kubelet for exec/attach (`remotecommand`) or port-forward. The gateway
//! uses it toward clusters that refuse the WebSocket protocols.
//!
//! Open streams with [`ClientSession::open_stream`] (odd ids from 1, a SYN_STREAM whose header
//! block is deflated by the connection's one client→server context), feed received bytes to
//! [`ClientSession::receive`] and act on the [`Event`]s (replies, data, FIN, resets, pongs,
//! GOAWAY), and write [`ClientSession::take_output`] to the socket.
//!
//! Like spdystream it does no flow control (SETTINGS and WINDOW_UPDATE are ignored), echoes the
//! server's PINGs (even ids) and reports replies to its own (odd ids) as [`Event::Pong`]. A
//! server-initiated stream is refused (RST_STREAM REFUSED_STREAM): no Kubernetes protocol has
//! one, but its header block is still inflated so the context stays in step.

use super::frame::{self, Frame, RST_REFUSED_STREAM, SpdyError};
use super::headers::{HeaderDecoder, HeaderEncoder, Headers};
use super::session::MAX_DATA;

/// Something the server did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The server accepted a stream we opened (SYN_REPLY), with its headers (empty from
    /// spdystream).
    Reply {
        id: u32,
        headers: Headers,
    },
    Data {
        id: u32,
        data: Vec<u8>,
    },
    /// The server finished sending on the stream (half-close).
    Fin {
        id: u32,
    },
    /// The server reset a stream (for one we opened: it refused or abandoned it).
    Reset {
        id: u32,
        status: u32,
    },
    /// The answer to our PING `id`.
    Pong {
        id: u32,
    },
    /// The server is going away; streams above `last_good` were not processed.
    GoAway {
        last_good: u32,
        status: u32,
    },
}

/// One client-side connection.
#[derive(Debug)]
pub struct ClientSession {
    encoder: HeaderEncoder,
    decoder: HeaderDecoder,
    inbox: frame::Inbox,
    out: Vec<u8>,
    next_stream: u32,
    next_ping: u32,
}

impl Default for ClientSession {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientSession {
    pub fn new() -> Self {
        Self {
            encoder: HeaderEncoder::new(),
            decoder: HeaderDecoder::new(),
            inbox: frame::Inbox::default(),
            out: Vec::new(),
            next_stream: 1,
            next_ping: 1,
        }
    }

    /// Queues a SYN_STREAM carrying `headers` and returns the new stream's id. The stream may be
    /// written to at once; spdystream callers wait for the [`Event::Reply`] first (kubectl does),
    /// and so should callers that want to learn of a refusal before sending.
    pub fn open_stream(&mut self, headers: &[(&str, &str)]) -> u32 {
        let id = self.next_stream;
        // Ids are odd and 31-bit; a connection never opens a billion streams.
        self.next_stream = self.next_stream.wrapping_add(2) & 0x7fff_ffff;
        let block = self.encoder.encode(headers);
        Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            block,
        }
        .encode(&mut self.out);
        id
    }

    /// Consumes received bytes; returns what the server did, in order. An error means the
    /// connection is unusable (a malformed frame or header block).
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<Event>, SpdyError> {
        let mut events = Vec::new();
        let mut inbox = std::mem::take(&mut self.inbox);
        let received = inbox.receive(bytes, |f| self.handle(f, &mut events));
        self.inbox = inbox;
        received.map(|()| events)
    }

    fn handle(&mut self, f: Frame, events: &mut Vec<Event>) -> Result<(), SpdyError> {
        match f {
            Frame::SynReply {
                stream_id,
                fin,
                block,
            } => {
                let headers = self.decoder.decode(&block)?;
                events.push(Event::Reply {
                    id: stream_id,
                    headers,
                });
                if fin {
                    events.push(Event::Fin { id: stream_id });
                }
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                if !data.is_empty() {
                    events.push(Event::Data {
                        id: stream_id,
                        data,
                    });
                }
                if fin {
                    events.push(Event::Fin { id: stream_id });
                }
            }
            Frame::SynStream {
                stream_id, block, ..
            } => {
                self.decoder.decode(&block)?;
                self.send_reset(stream_id, RST_REFUSED_STREAM);
            }
            Frame::Headers { block, .. } => {
                self.decoder.decode(&block)?;
            }
            Frame::RstStream { stream_id, status } => events.push(Event::Reset {
                id: stream_id,
                status,
            }),
            Frame::Ping { id } if id % 2 == 1 => events.push(Event::Pong { id }),
            Frame::Ping { id } => Frame::Ping { id }.encode(&mut self.out),
            Frame::GoAway { last_good, status } => {
                events.push(Event::GoAway { last_good, status });
            }
            Frame::Settings { .. } | Frame::WindowUpdate { .. } | Frame::Unknown { .. } => {}
        }
        Ok(())
    }

    /// Queues `data` on stream `id`, split into frames of at most [`MAX_DATA`] bytes.
    pub fn send_data(&mut self, id: u32, data: &[u8]) {
        for piece in data.chunks(MAX_DATA) {
            frame::encode_data(id, false, piece, &mut self.out);
        }
    }

    /// Half-closes stream `id` from our side (empty DATA with FIN, as spdystream's `Close`).
    pub fn send_fin(&mut self, id: u32) {
        frame::encode_data(id, true, &[], &mut self.out);
    }

    pub fn send_reset(&mut self, id: u32, status: u32) {
        Frame::RstStream {
            stream_id: id,
            status,
        }
        .encode(&mut self.out);
    }

    /// Queues a PING and returns its id (odd, as a client's must be); the answer is
    /// [`Event::Pong`] with the same id.
    pub fn ping(&mut self) -> u32 {
        let id = self.next_ping;
        self.next_ping = self.next_ping.wrapping_add(2) | 1;
        Frame::Ping { id }.encode(&mut self.out);
        id
    }

    /// Says we are going away (spdystream's `Close`: last-good id 0, status OK).
    pub fn send_goaway(&mut self) {
        Frame::GoAway {
            last_good: 0,
            status: 0,
        }
        .encode(&mut self.out);
    }

    /// Bytes queued and not yet taken.
    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    /// Bytes to write to the socket now.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spdy::frame::RST_CANCEL;
    use crate::spdy::session::{self, ServerSession};

    /// Moves everything queued on each side to the other until both are quiet; returns what
    /// each side saw.
    fn pump(
        client: &mut ClientSession,
        server: &mut ServerSession,
    ) -> (Vec<Event>, Vec<session::Event>) {
        let (mut c_events, mut s_events) = (Vec::new(), Vec::new());
        loop {
            let to_server = client.take_output();
            let to_client = server.take_output();
            if to_server.is_empty() && to_client.is_empty() {
                return (c_events, s_events);
            }
            s_events.extend(server.receive(&to_server).unwrap());
            c_events.extend(client.receive(&to_client).unwrap());
        }
    }

    #[test]
    fn first_syn_stream_bytes() {
        let mut c = ClientSession::new();
        assert_eq!(c.open_stream(&[("streamtype", "error")]), 1);
        let out = c.take_output();
        // Control bit + version 3, type 1 (SYN_STREAM), no flags; stream 1, associated 0,
        // priority 0, slot 0; then the block, opening the zlib stream with the SPDY
        // dictionary's id, as kubectl's first block does.
        assert_eq!(&out[..4], &[0x80, 0x03, 0x00, 0x01]);
        assert_eq!(&out[8..18], &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&out[18..24], &[0x78, 0xF9, 0xE3, 0xC6, 0xA7, 0xC2]);
        assert_eq!(c.open_stream(&[("streamtype", "data")]), 3);
    }

    #[test]
    fn streams_data_fin_reset_against_the_server_session() {
        let mut c = ClientSession::new();
        let mut s = ServerSession::new();
        let a = c.open_stream(&[("streamtype", "stdin"), ("x", "1")]);
        let b = c.open_stream(&[("streamtype", "stdout")]);
        c.send_data(a, b"hello");
        c.send_fin(a);
        let (ce, se) = pump(&mut c, &mut s);
        assert_eq!(
            se,
            [
                session::Event::StreamOpened {
                    id: 1,
                    headers: vec![
                        ("streamtype".into(), "stdin".into()),
                        ("x".into(), "1".into())
                    ],
                    fin: false
                },
                session::Event::StreamOpened {
                    id: 3,
                    headers: vec![("streamtype".into(), "stdout".into())],
                    fin: false
                },
                session::Event::Data {
                    id: 1,
                    data: b"hello".to_vec()
                },
                session::Event::Fin { id: 1 },
            ]
        );
        assert_eq!(
            ce,
            [
                Event::Reply {
                    id: a,
                    headers: vec![]
                },
                Event::Reply {
                    id: b,
                    headers: vec![]
                }
            ]
        );
        // Larger than one frame: split, and arrives whole.
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        s.send_data(b, &big);
        s.send_fin(b);
        s.send_reset(a, RST_CANCEL);
        let (ce, _) = pump(&mut c, &mut s);
        let mut got = Vec::new();
        for e in &ce[..ce.len() - 2] {
            match e {
                Event::Data { id, data } if *id == b => got.extend_from_slice(data),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, big);
        assert_eq!(
            ce[ce.len() - 2..],
            [
                Event::Fin { id: b },
                Event::Reset {
                    id: a,
                    status: RST_CANCEL
                }
            ]
        );
    }

    #[test]
    fn pings_both_ways_and_goaway() {
        let mut c = ClientSession::new();
        let mut s = ServerSession::new();
        assert_eq!(c.ping(), 1);
        assert_eq!(c.ping(), 3);
        let (ce, _) = pump(&mut c, &mut s);
        assert_eq!(ce, [Event::Pong { id: 1 }, Event::Pong { id: 3 }]);
        // A server's PING (even id) is echoed, not reported.
        assert!(
            c.receive(&Frame::Ping { id: 2 }.to_bytes())
                .unwrap()
                .is_empty()
        );
        assert_eq!(c.take_output(), Frame::Ping { id: 2 }.to_bytes());
        s.send_goaway();
        c.send_goaway();
        let (ce, se) = pump(&mut c, &mut s);
        assert_eq!(
            ce,
            [Event::GoAway {
                last_good: 0,
                status: 0
            }]
        );
        assert_eq!(se, [session::Event::GoAway]);
    }

    #[test]
    fn manual_replies_let_the_server_refuse_a_stream() {
        let mut c = ClientSession::new();
        let mut s = ServerSession::with_manual_replies();
        let bad = c.open_stream(&[("streamtype", "nonsense")]);
        let good = c.open_stream(&[("streamtype", "data")]);
        s.receive(&c.take_output()).unwrap();
        assert!(s.take_output().is_empty(), "nothing answered yet");
        s.send_reset(bad, RST_CANCEL);
        s.send_reply(good);
        let ce = c.receive(&s.take_output()).unwrap();
        assert_eq!(
            ce,
            [
                Event::Reset {
                    id: bad,
                    status: RST_CANCEL
                },
                Event::Reply {
                    id: good,
                    headers: vec![]
                }
            ]
        );
        assert_eq!(s.last_opened(), good);
    }

    #[test]
    fn server_pushed_streams_are_refused_and_bytes_split_anywhere() {
        // A server-side encoder opening a stream toward the client (no Kubernetes peer does).
        let mut server_enc = HeaderEncoder::new();
        let mut wire = Frame::SynStream {
            stream_id: 2,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            block: server_enc.encode(&[("a", "b")]),
        }
        .to_bytes();
        Frame::SynReply {
            stream_id: 1,
            fin: false,
            block: server_enc.encode(&[("k", "v")]),
        }
        .encode(&mut wire);
        frame::encode_data(1, true, b"xy", &mut wire);
        let whole = {
            let mut c = ClientSession::new();
            (c.receive(&wire).unwrap(), c.take_output())
        };
        assert_eq!(
            whole.0,
            [
                Event::Reply {
                    id: 1,
                    headers: vec![("k".into(), "v".into())]
                },
                Event::Data {
                    id: 1,
                    data: b"xy".to_vec()
                },
                Event::Fin { id: 1 }
            ]
        );
        assert_eq!(
            whole.1,
            Frame::RstStream {
                stream_id: 2,
                status: RST_REFUSED_STREAM
            }
            .to_bytes()
        );
        for cut in 0..wire.len() {
            let mut c = ClientSession::new();
            let mut events = c.receive(&wire[..cut]).unwrap();
            events.extend(c.receive(&wire[cut..]).unwrap());
            assert_eq!((events, c.take_output()), whole, "split at {cut}");
        }
        // Garbage is an error, not a panic.
        assert!(
            ClientSession::new()
                .receive(&[0x80, 0x02, 0, 1, 0, 0, 0, 0])
                .is_err()
        );
    }
}
