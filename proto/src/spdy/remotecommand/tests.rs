use super::*;
use crate::spdy::frame::{self, Frame, RST_CANCEL};
use crate::spdy::headers::{HeaderDecoder, HeaderEncoder};
use crate::status::Status;

/// What kubectl's side writes, frame by frame: SYN_STREAMs with `streamtype` headers, all
/// deflated by one client context.
struct Kubectl {
    enc: HeaderEncoder,
    dec: HeaderDecoder,
}

impl Kubectl {
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
        while let Some((frame, used)) = frame::decode(bytes).unwrap() {
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

fn data(stream_id: u32, payload: &[u8], fin: bool) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_data(stream_id, fin, payload, &mut out);
    out
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
fn negotiation_answers_v4() {
    assert_eq!(
        negotiate([
            "v5.channel.k8s.io",
            "v4.channel.k8s.io",
            "v3.channel.k8s.io"
        ]),
        Some(PROTOCOL_V4)
    );
    assert_eq!(
        negotiate(["v3.channel.k8s.io, v4.channel.k8s.io"]),
        Some(PROTOCOL_V4)
    );
    assert_eq!(negotiate(["v3.channel.k8s.io", "channel.k8s.io"]), None);
    assert_eq!(negotiate([]), None);
}

#[test]
fn replies_to_every_stream_with_one_header_context() {
    let mut client = Kubectl::new();
    let mut server = Server::new(&opts(true, false));
    let mut wire = Vec::new();
    for (id, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
        wire.extend(client.syn(id, kind));
    }
    let events = server.receive(&wire).unwrap();
    use StreamType::*;
    let mut want: Vec<ServerEvent> = [Error, Stdin, Stdout, Stderr]
        .map(ServerEvent::Opened)
        .to_vec();
    want.push(ServerEvent::Ready);
    assert_eq!(events, want);
    let out = server.take_output();
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
    assert_eq!(server.id(Stdout), Some(5));
    assert_eq!(server.last_client_id(), 7);
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
    let mut client = Kubectl::new();
    let mut wire = Vec::new();
    for (id, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")] {
        wire.extend(client.syn(id, kind));
    }
    wire.extend(data(3, b"ls\r", false));
    wire.extend(data(7, b"{\"Width\":100,\"Height\":30}\n", false));
    wire.extend(Frame::Ping { id: 1 }.to_bytes());
    wire.extend(data(3, b"", true));
    let o = opts(true, true);
    let whole = {
        let mut s = Server::new(&o);
        (s.receive(&wire).unwrap(), s.take_output())
    };
    for cut in 1..wire.len() {
        let mut s = Server::new(&o);
        let mut events = s.receive(&wire[..cut]).unwrap();
        events.extend(s.receive(&wire[cut..]).unwrap());
        assert_eq!((events, s.take_output()), whole, "split at {cut}");
    }
    // Four Opened, Ready, then what the client sent.
    assert_eq!(whole.0[4], ServerEvent::Ready);
    assert_eq!(
        whole.0[5..],
        [
            ServerEvent::Stdin(b"ls\r".to_vec()),
            ServerEvent::Resize(TerminalSize {
                width: 100,
                height: 30
            }),
            ServerEvent::StdinEof,
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
    let mut client = Kubectl::new();
    let mut s = Server::new(&opts(true, true));
    s.receive(&client.syn(1, "resize")).unwrap();
    assert_eq!(s.receive(&data(1, b"{\"Width\":80,", false)).unwrap(), []);
    let events = s
        .receive(&data(
            1,
            b"\"Height\":24}\n{\"Width\":1,\"Height\":2}",
            false,
        ))
        .unwrap();
    assert_eq!(
        events,
        [
            ServerEvent::Resize(TerminalSize {
                width: 80,
                height: 24
            }),
            ServerEvent::Resize(TerminalSize {
                width: 1,
                height: 2
            })
        ]
    );
    // Garbage is dropped and the stream keeps working; an endless object is not kept.
    assert_eq!(s.receive(&data(1, b"]]", false)).unwrap(), []);
    let mut endless = b"{\"Width\":".to_vec();
    endless.extend(std::iter::repeat_n(b' ', MAX_RESIZE_BUFFER));
    assert_eq!(s.receive(&data(1, &endless, false)).unwrap(), []);
    assert_eq!(
        s.receive(&data(1, b"{\"Width\":3,\"Height\":4}", false))
            .unwrap(),
        [ServerEvent::Resize(TerminalSize {
            width: 3,
            height: 4
        })]
    );
}

#[test]
fn resets_goaway_and_unknown_streams() {
    let mut client = Kubectl::new();
    let mut s = Server::new(&opts(true, false));
    let mut wire = client.syn(1, "stdin");
    wire.extend(client.syn(3, "portforward-data"));
    wire.extend(client.syn(5, "stdin"));
    wire.extend(
        Frame::RstStream {
            stream_id: 1,
            status: RST_CANCEL,
        }
        .to_bytes(),
    );
    wire.extend(data(1, b"after reset", true));
    wire.extend(
        Frame::GoAway {
            last_good: 3,
            status: 0,
        }
        .to_bytes(),
    );
    let events = s.receive(&wire).unwrap();
    assert_eq!(
        events,
        [
            ServerEvent::Opened(StreamType::Stdin),
            ServerEvent::StdinEof,
            ServerEvent::Reset(StreamType::Stdin),
            ServerEvent::GoAway
        ]
    );
    // Unknown and repeated stream types are still replied to (headers inflated in order).
    assert_eq!(client.frames(&s.take_output()).len(), 3);
    // A header block that continues a zlib context this connection never saw (its first
    // block went elsewhere) is a protocol error.
    let mut other = Kubectl::new();
    let _first_block_elsewhere = other.syn(1, "error");
    let second = other.syn(3, "stdin");
    assert!(Server::new(&opts(true, false)).receive(&second).is_err());
}

/// Output that arrives before the client opened every stream is held, then sent in order;
/// stderr goes to stdout with a TTY; the end is FINs, the Status, GOAWAY.
#[test]
fn output_waits_for_readiness_and_ends_with_status() {
    let mut client = Kubectl::new();
    let mut s = Server::new(&opts(true, true));
    s.send(StreamType::Stdout, b"early ");
    s.send_channel(crate::channel::STDERR, b"merged");
    s.send_channel(9, b"unknown channel: dropped");
    s.finish(&Status::exit_code(3).to_json());
    s.send(StreamType::Stdout, b"after finish: dropped");
    assert_eq!(s.pending_len(), 12);
    let mut wire = client.syn(1, "error");
    wire.extend(client.syn(3, "stdin"));
    wire.extend(client.syn(5, "stdout"));
    s.receive(&wire).unwrap();
    assert!(!s.is_ready() && !s.is_finished());
    let replies = client.frames(&s.take_output());
    assert_eq!(replies.len(), 3);
    assert_eq!(
        s.receive(&client.syn(7, "resize")).unwrap(),
        [ServerEvent::Opened(StreamType::Resize), ServerEvent::Ready]
    );
    assert!(s.is_finished());
    assert_eq!(s.pending_len(), 0);
    let frames = client.frames(&s.take_output());
    let status = Status::exit_code(3).to_json();
    assert_eq!(
        frames[1..],
        [
            Frame::Data {
                stream_id: 5,
                fin: false,
                data: b"early ".to_vec()
            },
            Frame::Data {
                stream_id: 5,
                fin: false,
                data: b"merged".to_vec()
            },
            Frame::Data {
                stream_id: 5,
                fin: true,
                data: vec![]
            },
            Frame::Data {
                stream_id: 1,
                fin: false,
                data: status
            },
            Frame::Data {
                stream_id: 1,
                fin: true,
                data: vec![]
            },
            Frame::GoAway {
                last_good: 7,
                status: 0
            },
        ]
    );
}

/// The two ends in memory: what the gateway's SPDY upstream ([`Client`]) and a kubelet-like
/// server ([`Server`]) say to each other for `exec -i` with stdin EOF and a non-zero exit.
#[test]
fn client_and_server_hold_a_whole_exec() {
    let o = opts(true, false);
    let mut client = Client::new(&o);
    let mut server = Server::new(&o);
    let mut to_server = client.take_output();
    let mut server_events = server.receive(&to_server).unwrap();
    assert_eq!(server_events.last(), Some(&ServerEvent::Ready));
    let mut client_events = client.receive(&server.take_output()).unwrap();
    assert_eq!(client_events, [ClientEvent::Ready]);

    client.send_stdin(b"a\nb\n");
    client.close_stdin();
    client.send_stdin(b"after EOF: dropped");
    let ping = client.ping();
    to_server = client.take_output();
    server_events = server.receive(&to_server).unwrap();
    assert_eq!(
        server_events,
        [
            ServerEvent::Stdin(b"a\nb\n".to_vec()),
            ServerEvent::StdinEof
        ]
    );
    // The process echoes stdin and fails with 3.
    server.send(StreamType::Stdout, b"a\nb\n");
    server.send(StreamType::Stderr, b"oops\n");
    server.finish(&Status::exit_code(3).to_json());
    client_events = client.receive(&server.take_output()).unwrap();
    assert_eq!(
        client_events,
        [
            ClientEvent::Pong(ping),
            ClientEvent::Stdout(b"a\nb\n".to_vec()),
            ClientEvent::Stderr(b"oops\n".to_vec()),
            ClientEvent::OutputEnd(StreamType::Stdout),
            ClientEvent::OutputEnd(StreamType::Stderr),
            ClientEvent::Status(Status::exit_code(3).to_json()),
            ClientEvent::GoAway,
        ]
    );
    let ClientEvent::Status(json) = &client_events[5] else {
        unreachable!()
    };
    assert_eq!(
        Status::parse(json).unwrap().outcome(),
        crate::status::ExitOutcome::Code(3)
    );
    // kubectl's teardown reaches the server as resets and GOAWAY.
    client.close();
    let teardown = server.receive(&client.take_output()).unwrap();
    assert_eq!(teardown.last(), Some(&ServerEvent::GoAway));
    assert!(teardown.contains(&ServerEvent::Reset(StreamType::Stdout)));
}

#[test]
fn client_with_a_tty_sends_resizes_and_reads_a_refusal() {
    let o = opts(true, true);
    let mut client = Client::new(&o);
    let mut server = Server::new(&o);
    server.receive(&client.take_output()).unwrap();
    client.receive(&server.take_output()).unwrap();
    assert!(client.is_ready());
    let size = TerminalSize {
        width: 120,
        height: 40,
    };
    client.send_resize(size);
    assert_eq!(
        server.receive(&client.take_output()).unwrap(),
        [ServerEvent::Resize(size)]
    );
    // The server gives up on stdin: the client learns which stream was reset.
    let mut rst = Vec::new();
    Frame::RstStream {
        stream_id: server.id(StreamType::Stdin).unwrap(),
        status: RST_CANCEL,
    }
    .encode(&mut rst);
    assert_eq!(
        client.receive(&rst).unwrap(),
        [ClientEvent::Reset {
            stream: StreamType::Stdin,
            status: RST_CANCEL
        }]
    );
    // An error stream that never ends keeps what it got, bounded.
    let mut big = Vec::new();
    frame::encode_data(
        server.id(StreamType::Error).unwrap(),
        false,
        &vec![b'x'; MAX_STATUS + 10],
        &mut big,
    );
    assert_eq!(client.receive(&big).unwrap(), []);
    assert_eq!(client.status_so_far().len(), MAX_STATUS);
}
