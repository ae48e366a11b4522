//! Both ends of port-forward over SPDY (`proto::spdy::portforward`) on peer bytes: the control
//! frames with `streamtype`/`port`/`requestid` headers a client (or a server) can send.
//!
//! Input: byte 0: bit 7 = client side (else server side); bit 6 = server: a port filter
//! allowing even ports only (a relay's policy), client: the first connection is `finish`ed
//! before the peer's bytes; bits 0–5 = piece length (0 = one read). The rest is what the peer
//! sends.
//!
//! Properties:
//! - no panic, whatever the bytes and however they are split; the same events in pieces as whole;
//! - server: `Connect` at most once per request id, with a port > 0 (and even, when filtered);
//!   `Data` and `DataFin` only for a request id that was connected (and not reset since); every
//!   `Refused` stream got an RST_STREAM (CANCEL for bad headers, REFUSED_STREAM for a filtered
//!   port, which only a filtered server refuses) and no SYN_REPLY, and no other stream was
//!   reset; the output is whole frames;
//! - client: `Error` messages never exceed `MAX_ERROR` bytes of the peer's data; a finished
//!   connection gets no `Data` or `Fin` (its data stream is gone), and at most one `Error`.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use proto::spdy::frame::{Frame, RST_CANCEL, RST_REFUSED_STREAM, decode};
use proto::spdy::portforward::{
    Client, ClientEvent, MAX_ERROR, PortFilter, Refusal, Server, ServerEvent,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let piece = match usize::from(mode & 0x3f) {
        0 => stream.len().max(1),
        n => n,
    };
    let flag = mode & 0x40 != 0;
    if mode & 0x80 != 0 {
        client(stream, piece, flag);
    } else {
        server(stream, piece, flag);
    }
});

fn new_server(filtered: bool) -> Server {
    if filtered {
        Server::with_port_filter(PortFilter::new(|p| p % 2 == 0))
    } else {
        Server::new()
    }
}

fn server(stream: &[u8], piece: usize, filtered: bool) {
    let mut whole = new_server(filtered);
    let expected = whole.receive(stream);
    let mut s = new_server(filtered);
    let (mut events, mut output, mut failed) = (Vec::new(), Vec::new(), false);
    for chunk in stream.chunks(piece) {
        match s.receive(chunk) {
            Ok(e) => events.extend(e),
            Err(_) => {
                failed = true;
                break;
            }
        }
        output.extend(s.take_output());
    }
    match &expected {
        Ok(all) => assert!(!failed && &events == all, "split changed the events"),
        Err(_) => assert!(failed, "failed whole only"),
    }
    let mut live: HashSet<String> = HashSet::new();
    let mut ever: HashSet<String> = HashSet::new();
    let mut refused = Vec::new();
    for e in &events {
        match e {
            ServerEvent::Connect { request_id, port } => {
                assert!(*port > 0);
                assert!(!filtered || port % 2 == 0, "a filtered port connected");
                assert!(ever.insert(request_id.clone()) || !live.contains(request_id));
                live.insert(request_id.clone());
            }
            ServerEvent::Data { request_id, .. } | ServerEvent::DataFin { request_id } => {
                assert!(
                    live.contains(request_id),
                    "data for {request_id:?} before Connect"
                );
            }
            ServerEvent::Reset { request_id } => {
                live.remove(request_id);
            }
            ServerEvent::Refused { stream_id, refusal } => {
                let status = match refusal {
                    Refusal::BadHeaders(_) => RST_CANCEL,
                    Refusal::PortNotAllowed { port, .. } => {
                        assert!(filtered && port % 2 == 1, "refused port {port}");
                        RST_REFUSED_STREAM
                    }
                };
                refused.push((*stream_id, status));
            }
            ServerEvent::GoAway => {}
        }
    }
    let mut at = 0;
    let (mut resets, mut replies) = (Vec::new(), HashSet::new());
    while at < output.len() {
        let (f, used) = decode(&output[at..])
            .expect("output decodes")
            .expect("output is whole frames");
        at += used;
        match f {
            Frame::RstStream { stream_id, status } => resets.push((stream_id, status)),
            Frame::SynReply { stream_id, .. } => {
                replies.insert(stream_id);
            }
            _ => {}
        }
    }
    assert_eq!(resets, refused);
    assert!(refused.iter().all(|(id, _)| !replies.contains(id)));
}

fn client(stream: &[u8], piece: usize, finish: bool) {
    let mut c = Client::new();
    let a = c.open(80);
    let _b = c.open(7000);
    c.send(&a, b"x");
    let mut whole = Client::new();
    whole.open(80);
    whole.open(7000);
    if finish {
        c.finish(&a);
        whole.finish(&a);
    }
    let expected = whole.receive(stream);
    let (mut events, mut failed) = (Vec::new(), false);
    for chunk in stream.chunks(piece) {
        match c.receive(chunk) {
            Ok(e) => events.extend(e),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    match &expected {
        Ok(all) => assert!(!failed && &events == all, "split changed the events"),
        Err(_) => assert!(failed, "failed whole only"),
    }
    let mut errors_for_a = 0;
    for e in &events {
        match e {
            ClientEvent::Error {
                message,
                request_id,
            } => {
                assert!(!message.is_empty());
                // Lossy UTF-8 may grow each bad byte to 3.
                assert!(message.len() <= 3 * MAX_ERROR);
                errors_for_a += usize::from(*request_id == a);
            }
            ClientEvent::Data { request_id, .. } | ClientEvent::Fin { request_id } => {
                assert!(!finish || *request_id != a, "data on a finished connection");
            }
            _ => {}
        }
    }
    assert!(!finish || errors_for_a <= 1, "{errors_for_a} errors after finish");
}
