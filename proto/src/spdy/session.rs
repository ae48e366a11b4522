//! The server side of a SPDY/3.1 connection as Kubernetes remote-command and port-forward peers
//! use it, without I/O: feed received bytes to [`ServerSession::receive`], act on the returned
//! [`Event`]s, queue outgoing data with the `send_*` methods and write
//! [`ServerSession::take_output`] to the socket.
//!
//! It does what spdystream's server does: answers every SYN_STREAM with a SYN_REPLY (kubectl's
//! `CreateStream` waits for it), echoes PINGs, ignores SETTINGS and WINDOW_UPDATE (no flow control
//! in spdystream), and keeps one header-compression context per direction for the connection's
//! life.

use super::frame::{self, Frame, SpdyError};
use super::headers::{HeaderDecoder, HeaderEncoder, Headers};

/// Largest DATA payload sent in one frame (spdystream reads up to 16 MiB; kubelets send 32 KiB).
pub const MAX_DATA: usize = 32 << 10;
pub use super::frame::MAX_BUFFERED;

/// Something the peer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new stream, with its decoded headers (`streamtype`, and for port-forward `port`,
    /// `requestid`).
    StreamOpened {
        id: u32,
        headers: Headers,
        fin: bool,
    },
    Data {
        id: u32,
        data: Vec<u8>,
    },
    /// The peer finished sending on the stream (half-close).
    Fin {
        id: u32,
    },
    Reset {
        id: u32,
        status: u32,
    },
    GoAway,
}

/// One server-side connection.
#[derive(Debug, Default)]
pub struct ServerSession {
    decoder: HeaderDecoder,
    encoder: HeaderEncoder,
    inbox: frame::Inbox,
    out: Vec<u8>,
    /// Highest stream id the peer opened: what GOAWAY names as the last one processed.
    last_opened: u32,
    /// The caller answers each new stream itself ([`ServerSession::send_reply`] or
    /// [`ServerSession::send_reset`]), as kubelet's port-forward does when it rejects a stream
    /// with bad headers; remote-command servers reply to every stream at once.
    manual_replies: bool,
}

impl ServerSession {
    /// A session that replies to every new stream as it arrives.
    pub fn new() -> Self {
        Self::default()
    }

    /// A session that leaves each new stream unanswered until the caller accepts
    /// ([`ServerSession::send_reply`]) or rejects ([`ServerSession::send_reset`]) it.
    pub fn with_manual_replies() -> Self {
        Self {
            manual_replies: true,
            ..Self::default()
        }
    }

    /// Consumes received bytes; returns what the peer did, in order.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<Event>, SpdyError> {
        let mut events = Vec::new();
        let mut inbox = std::mem::take(&mut self.inbox);
        let received = inbox.receive(bytes, |f| self.handle(f, &mut events));
        self.inbox = inbox;
        received.map(|()| events)
    }

    fn handle(&mut self, f: Frame, events: &mut Vec<Event>) -> Result<(), SpdyError> {
        match f {
            Frame::SynStream {
                stream_id,
                fin,
                block,
                ..
            } => {
                let headers = self.decoder.decode(&block)?;
                self.last_opened = self.last_opened.max(stream_id);
                if !self.manual_replies {
                    self.send_reply(stream_id);
                }
                events.push(Event::StreamOpened {
                    id: stream_id,
                    headers,
                    fin,
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
            Frame::Headers { block, .. } | Frame::SynReply { block, .. } => {
                // Keep the inflate context in step even for blocks we have no use for.
                self.decoder.decode(&block)?;
            }
            Frame::RstStream { stream_id, status } => {
                events.push(Event::Reset {
                    id: stream_id,
                    status,
                });
            }
            Frame::Ping { id } => Frame::Ping { id }.encode(&mut self.out),
            Frame::GoAway { .. } => events.push(Event::GoAway),
            Frame::Settings { .. } | Frame::WindowUpdate { .. } | Frame::Unknown { .. } => {}
        }
        Ok(())
    }

    /// Accepts stream `id`: a SYN_REPLY with an empty header block (what spdystream sends).
    pub fn send_reply(&mut self, id: u32) {
        let block = self.encoder.encode(&[]);
        Frame::SynReply {
            stream_id: id,
            fin: false,
            block,
        }
        .encode(&mut self.out);
    }

    /// Highest stream id the peer opened so far.
    pub fn last_opened(&self) -> u32 {
        self.last_opened
    }

    /// Queues `data` on stream `id`, split into frames of at most [`MAX_DATA`] bytes.
    pub fn send_data(&mut self, id: u32, data: &[u8]) {
        for piece in data.chunks(MAX_DATA) {
            frame::encode_data(id, false, piece, &mut self.out);
        }
    }

    /// Half-closes stream `id` from our side (empty DATA with FIN).
    pub fn send_fin(&mut self, id: u32) {
        frame::encode_data(id, true, &[], &mut self.out);
    }

    /// Bytes queued and not yet taken: lets a caller stop reading its source while the peer is
    /// slow to take what is already queued (back-pressure).
    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    pub fn send_reset(&mut self, id: u32, status: u32) {
        Frame::RstStream {
            stream_id: id,
            status,
        }
        .encode(&mut self.out);
    }

    pub fn send_goaway(&mut self) {
        Frame::GoAway {
            last_good: self.last_opened,
            status: 0,
        }
        .encode(&mut self.out);
    }

    /// Bytes to write to the socket now.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spdy::headers::get;

    /// What kubectl does for `exec -i` over SPDY: SYN_STREAMs for error, stdin, stdout, stderr,
    /// then stdin data and FIN, a PING.
    #[test]
    fn kubectl_exec_conversation() {
        let mut client_enc = HeaderEncoder::new();
        let mut wire = Vec::new();
        for (id, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
            let block = client_enc.encode(&[("streamtype", kind)]);
            Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                block,
            }
            .encode(&mut wire);
        }
        Frame::Data {
            stream_id: 3,
            fin: false,
            data: b"a\nb\n".to_vec(),
        }
        .encode(&mut wire);
        Frame::Data {
            stream_id: 3,
            fin: true,
            data: vec![],
        }
        .encode(&mut wire);
        Frame::Ping { id: 1 }.encode(&mut wire);

        let mut s = ServerSession::new();
        // Byte-at-a-time delivery must give the same result as one read.
        let mut events = Vec::new();
        for b in &wire {
            events.extend(s.receive(std::slice::from_ref(b)).unwrap());
        }
        let kinds: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::StreamOpened { id, headers, .. } => {
                    Some((*id, get(headers, "streamtype").unwrap().to_string()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (1, "error".into()),
                (3, "stdin".into()),
                (5, "stdout".into()),
                (7, "stderr".into())
            ]
        );
        assert!(events.contains(&Event::Data {
            id: 3,
            data: b"a\nb\n".to_vec()
        }));
        assert!(events.contains(&Event::Fin { id: 3 }));

        // The server's answer: four SYN_REPLYs decodable with one client-side context, and the
        // PING echoed.
        s.send_data(5, b"out");
        s.send_fin(5);
        let out = s.take_output();
        let mut dec = HeaderDecoder::new();
        let mut at = 0;
        let mut replies = 0;
        let mut pinged = false;
        while let Some((f, used)) = frame::decode(&out[at..]).unwrap() {
            at += used;
            match f {
                Frame::SynReply { block, .. } => {
                    dec.decode(&block).unwrap();
                    replies += 1;
                }
                Frame::Ping { id: 1 } => pinged = true,
                _ => {}
            }
        }
        assert_eq!(replies, 4);
        assert!(pinged);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut s = ServerSession::new();
        assert!(s.receive(&[0x80, 0x02, 0, 1, 0, 0, 0, 0]).is_err());
    }
}
