use super::*;
use crate::spdy::frame::{self, Frame, RST_CANCEL, RST_REFUSED_STREAM};
use crate::spdy::headers::{HeaderDecoder, HeaderEncoder};

fn rid(s: &str) -> String {
    s.to_string()
}

/// Moves bytes both ways until both sides are quiet.
fn pump(c: &mut Client, s: &mut Server) -> (Vec<ClientEvent>, Vec<ServerEvent>) {
    let (mut ce, mut se) = (Vec::new(), Vec::new());
    loop {
        let to_s = c.take_output();
        let to_c = s.take_output();
        if to_s.is_empty() && to_c.is_empty() {
            return (ce, se);
        }
        se.extend(s.receive(&to_s).unwrap());
        ce.extend(c.receive(&to_c).unwrap());
    }
}

/// kubectl's bytes for one connection to port 80, frame by frame as observed (§2.2): error
/// stream with port and requestid, FIN on it, data stream, data, FIN.
#[test]
fn kubectl_connection_byte_for_byte() {
    let mut enc = HeaderEncoder::new();
    let mut wire = Vec::new();
    for (id, kind) in [(1, "error"), (3, "data")] {
        Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            block: enc.encode(&[("streamtype", kind), ("port", "80"), ("requestid", "0")]),
        }
        .encode(&mut wire);
        if kind == "error" {
            frame::encode_data(1, true, b"", &mut wire);
        }
    }
    frame::encode_data(3, false, b"GET / HTTP/1.0\r\n\r\n", &mut wire);
    frame::encode_data(3, true, b"", &mut wire);

    let mut s = Server::new();
    let whole = s.receive(&wire).unwrap();
    assert_eq!(
        whole,
        [
            ServerEvent::Connect {
                request_id: rid("0"),
                port: 80
            },
            ServerEvent::Data {
                request_id: rid("0"),
                data: b"GET / HTTP/1.0\r\n\r\n".to_vec()
            },
            ServerEvent::DataFin {
                request_id: rid("0")
            },
        ]
    );
    // Two SYN_REPLYs (stream 1, then 3), blocks from one server context.
    let out = s.take_output();
    let mut dec = HeaderDecoder::new();
    let mut at = 0;
    let mut replies = Vec::new();
    while let Some((f, used)) = frame::decode(&out[at..]).unwrap() {
        at += used;
        let Frame::SynReply {
            stream_id, block, ..
        } = f
        else {
            panic!("{f:?}")
        };
        assert_eq!(dec.decode(&block).unwrap(), vec![]);
        replies.push(stream_id);
    }
    assert_eq!(replies, [1, 3]);
    // The same bytes split anywhere give the same events.
    for cut in 0..wire.len() {
        let mut s = Server::new();
        let mut events = s.receive(&wire[..cut]).unwrap();
        events.extend(s.receive(&wire[cut..]).unwrap());
        assert_eq!(events, whole, "split at {cut}");
    }
    // The reply, the pod's FIN, then kubelet's end: FIN error, FIN data (sent once).
    s.send("0", b"HTTP/1.0 200 OK\r\n\r\nhi");
    s.send_fin("0");
    s.close("0");
    assert!(!s.is_open("0"));
    let mut tail = Vec::new();
    frame::encode_data(3, false, b"HTTP/1.0 200 OK\r\n\r\nhi", &mut tail);
    frame::encode_data(3, true, b"", &mut tail);
    frame::encode_data(1, true, b"", &mut tail);
    assert_eq!(s.take_output(), tail);
}

#[test]
fn client_and_server_forward_two_connections_with_half_close() {
    let mut c = Client::new();
    let mut s = Server::new();
    let a = c.open(80);
    let b = c.open(7000);
    assert_eq!((a.as_str(), b.as_str()), ("0", "1"));
    let (ce, se) = pump(&mut c, &mut s);
    assert_eq!(
        se,
        [
            ServerEvent::Connect {
                request_id: a.clone(),
                port: 80
            },
            ServerEvent::Connect {
                request_id: b.clone(),
                port: 7000
            },
        ]
    );
    assert_eq!(
        ce,
        [
            ClientEvent::Ready {
                request_id: a.clone()
            },
            ClientEvent::Ready {
                request_id: b.clone()
            }
        ]
    );
    // Interleaved traffic; `b` half-closes and still gets its reply.
    c.send(&a, b"to 80");
    c.send(&b, b"to 7000");
    c.send_fin(&b);
    let (_, se) = pump(&mut c, &mut s);
    assert_eq!(
        se,
        [
            ServerEvent::Data {
                request_id: a.clone(),
                data: b"to 80".to_vec()
            },
            ServerEvent::Data {
                request_id: b.clone(),
                data: b"to 7000".to_vec()
            },
            ServerEvent::DataFin {
                request_id: b.clone()
            },
        ]
    );
    s.send(&b, b"echo: to 7000");
    s.send_fin(&b);
    s.close(&b);
    s.send(&a, b"from 80");
    let ping = c.ping();
    let (ce, _) = pump(&mut c, &mut s);
    assert_eq!(
        ce,
        [
            ClientEvent::Data {
                request_id: b.clone(),
                data: b"echo: to 7000".to_vec()
            },
            ClientEvent::Fin {
                request_id: b.clone()
            },
            ClientEvent::Data {
                request_id: a.clone(),
                data: b"from 80".to_vec()
            },
            ClientEvent::Pong(ping),
        ]
    );
    // A failed connection: the message on the error stream, then the end.
    s.fail(&a, "error forwarding port 80 to pod x, uid : refused");
    s.close(&a);
    let (ce, _) = pump(&mut c, &mut s);
    assert_eq!(
        ce,
        [
            ClientEvent::Error {
                request_id: a.clone(),
                message: "error forwarding port 80 to pod x, uid : refused".into()
            },
            ClientEvent::Fin { request_id: a }
        ]
    );
}

#[test]
fn bad_headers_are_reset_without_a_reply() {
    let mut enc = HeaderEncoder::new();
    let mut wire = Vec::new();
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("streamtype", "data")], "\"port\" header is required"),
        (
            &[("streamtype", "data"), ("port", "http")],
            "unable to parse \"http\" as a port",
        ),
        (
            &[("streamtype", "data"), ("port", "0")],
            "port \"0\" must be > 0",
        ),
        (&[("port", "80")], "\"streamtype\" header is required"),
        (
            &[("streamtype", "stdin"), ("port", "80")],
            "invalid stream type \"stdin\"",
        ),
    ];
    for (i, (h, _)) in cases.iter().enumerate() {
        Frame::SynStream {
            stream_id: 2 * i as u32 + 1,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            block: enc.encode(h),
        }
        .encode(&mut wire);
    }
    let mut s = Server::new();
    let events = s.receive(&wire).unwrap();
    let want: Vec<ServerEvent> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, reason))| ServerEvent::Refused {
            stream_id: 2 * i as u32 + 1,
            refusal: Refusal::BadHeaders(reason.to_string()),
        })
        .collect();
    assert_eq!(events, want);
    let mut resets = Vec::new();
    for i in 0..cases.len() {
        Frame::RstStream {
            stream_id: 2 * i as u32 + 1,
            status: RST_CANCEL,
        }
        .encode(&mut resets);
    }
    assert_eq!(s.take_output(), resets);
}

#[test]
fn duplicate_streams_early_data_and_resets() {
    let mut c = Client::new();
    let mut s = Server::new();
    // Hand-made: the data stream first, with data and FIN before the error stream.
    let mut enc = HeaderEncoder::new();
    let syn = |enc: &mut HeaderEncoder, id: u32, kind: &str, rid: &str| {
        Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            block: enc.encode(&[("streamtype", kind), ("port", "7000"), ("requestid", rid)]),
        }
        .to_bytes()
    };
    let mut wire = syn(&mut enc, 1, "data", "9");
    frame::encode_data(1, false, b"early", &mut wire);
    frame::encode_data(1, true, b"", &mut wire);
    assert_eq!(s.receive(&wire).unwrap(), []);
    let mut wire = syn(&mut enc, 3, "error", "9");
    wire.extend(syn(&mut enc, 5, "data", "9"));
    let events = s.receive(&wire).unwrap();
    assert_eq!(
        events,
        [
            ServerEvent::Connect {
                request_id: rid("9"),
                port: 7000
            },
            ServerEvent::Data {
                request_id: rid("9"),
                data: b"early".to_vec()
            },
            ServerEvent::DataFin {
                request_id: rid("9")
            },
        ]
    );
    // The duplicate data stream got a reply and kubelet's complaint on the error stream.
    let out = s.take_output();
    let mut at = 0;
    let mut complaint = Vec::new();
    while let Some((f, used)) = frame::decode(&out[at..]).unwrap() {
        at += used;
        if let Frame::Data {
            stream_id: 3, data, ..
        } = f
        {
            complaint.extend(data);
        }
    }
    assert_eq!(
        String::from_utf8(complaint).unwrap(),
        "error processing stream for request 9: data stream already assigned"
    );
    // A reset of either stream ends the connection.
    let mut rst = Vec::new();
    Frame::RstStream {
        stream_id: 3,
        status: RST_CANCEL,
    }
    .encode(&mut rst);
    assert_eq!(
        s.receive(&rst).unwrap(),
        [ServerEvent::Reset {
            request_id: rid("9")
        }]
    );
    assert!(!s.is_open("9"));
    // The client's reset reaches the server (a fresh connection: one header context each).
    let mut s = Server::new();
    let r = c.open(80);
    pump(&mut c, &mut s);
    c.reset(&r);
    let (_, se) = pump(&mut c, &mut s);
    assert_eq!(se, [ServerEvent::Reset { request_id: r }]);
}

/// A filtered server refuses a port's streams (REFUSED_STREAM, no reply) and keeps serving the
/// others on the same connection.
#[test]
fn a_port_filter_refuses_one_connection_and_keeps_the_rest() {
    let mut c = Client::new();
    let mut s = Server::with_port_filter(PortFilter::new(|p| p == 80));
    let denied = c.open(5432);
    let allowed = c.open(80);
    let (ce, se) = pump(&mut c, &mut s);
    assert_eq!(
        se,
        [
            ServerEvent::Refused {
                stream_id: 1,
                refusal: Refusal::PortNotAllowed {
                    port: 5432,
                    request_id: denied.clone(),
                    error_stream: true,
                },
            },
            ServerEvent::Refused {
                stream_id: 3,
                refusal: Refusal::PortNotAllowed {
                    port: 5432,
                    request_id: denied.clone(),
                    error_stream: false,
                },
            },
            ServerEvent::Connect {
                request_id: allowed.clone(),
                port: 80
            },
        ]
    );
    assert_eq!(
        ce,
        [
            ClientEvent::Reset {
                request_id: denied.clone(),
                status: RST_REFUSED_STREAM
            },
            ClientEvent::Reset {
                request_id: denied.clone(),
                status: RST_REFUSED_STREAM
            },
            ClientEvent::Ready {
                request_id: allowed.clone()
            },
        ]
    );
    assert!(!s.is_open(&denied));
    c.send(&allowed, b"GET /");
    let (_, se) = pump(&mut c, &mut s);
    assert_eq!(
        se,
        [ServerEvent::Data {
            request_id: allowed,
            data: b"GET /".to_vec()
        }]
    );
}

/// kubectl's teardown after the pod's FIN: it resets the data stream and reads the error stream
/// to its end, which the server then closes (as kubelet's deferred close does). The client side
/// of the same teardown is `Client::finish`.
#[test]
fn a_reset_data_stream_closes_the_error_stream_and_finish_resets_data_only() {
    let mut c = Client::new();
    let mut s = Server::new();
    let r = c.open(80);
    pump(&mut c, &mut s);
    s.send(&r, b"bye");
    s.send_fin(&r);
    let (ce, _) = pump(&mut c, &mut s);
    assert_eq!(
        ce,
        [
            ClientEvent::Data {
                request_id: r.clone(),
                data: b"bye".to_vec()
            },
            ClientEvent::Fin {
                request_id: r.clone()
            }
        ]
    );
    c.finish(&r);
    assert!(!c.is_open(&r));
    let out = c.take_output();
    assert_eq!(
        out,
        Frame::RstStream {
            stream_id: 3,
            status: RST_CANCEL
        }
        .to_bytes()
    );
    assert_eq!(
        s.receive(&out).unwrap(),
        [ServerEvent::Reset {
            request_id: r.clone()
        }]
    );
    // The server's answer: FIN on the error stream (1), nothing else.
    let mut fin = Vec::new();
    frame::encode_data(1, true, b"", &mut fin);
    assert_eq!(s.take_output(), fin);
    assert!(!s.is_open(&r));
}

/// A server whose pod side was reset resets both of the client's streams.
#[test]
fn server_reset_cancels_both_streams() {
    let mut c = Client::new();
    let mut s = Server::new();
    let r = c.open(7000);
    pump(&mut c, &mut s);
    s.reset(&r);
    assert!(!s.is_open(&r));
    s.send_goaway();
    let (ce, _) = pump(&mut c, &mut s);
    assert_eq!(
        ce,
        [
            ClientEvent::Reset {
                request_id: r.clone(),
                status: RST_CANCEL
            },
            ClientEvent::Reset {
                request_id: r,
                status: RST_CANCEL
            },
            ClientEvent::GoAway,
        ]
    );
}
