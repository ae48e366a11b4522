//! `ClientSession::receive` (what a relay dialing a cluster over SPDY reads from the server) on
//! a byte stream delivered in fuzzer-chosen pieces.
//!
//! Input: byte 0 is `n` (taken mod 17), the next `n` bytes are piece lengths (0 = an empty read),
//! used cyclically; everything after them is the server's byte stream. Feeding stops at the first
//! error, as a connection does.
//!
//! Properties:
//! - no panic, whatever the bytes and however they are split;
//! - split-invariance: the events, output bytes and failure equal those of one read of the whole;
//! - the output is whole frames: an RST_STREAM REFUSED_STREAM per server-pushed SYN_STREAM and a
//!   PING echo per even-id PING, nothing else; every odd-id PING is reported as a `Pong`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::spdy::client::{ClientSession, Event};
use proto::spdy::frame::{Frame, RST_REFUSED_STREAM, decode};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (usize::from(n) % 17).min(rest.len());
    let (lens, stream) = rest.split_at(n);

    let mut whole = ClientSession::new();
    let expected = whole.receive(stream);
    let expected_output = whole.take_output();

    let mut session = ClientSession::new();
    let (mut events, mut output, mut failed) = (Vec::new(), Vec::new(), false);
    for piece in split(stream, lens) {
        match session.receive(piece) {
            Ok(e) => events.extend(e),
            Err(_) => {
                failed = true;
                break;
            }
        }
        output.extend(session.take_output());
    }
    match &expected {
        Ok(all) => {
            assert!(!failed, "failed in pieces only");
            assert_eq!(&events, all);
            assert_eq!(output, expected_output);
        }
        Err(_) => {
            assert!(failed, "failed whole only");
            return;
        }
    }

    // What the stream held, frame by frame (it decoded whole without error).
    let (mut pushed, mut server_pings, mut pongs) = (Vec::new(), Vec::new(), Vec::new());
    let mut at = 0;
    while let Ok(Some((frame, used))) = decode(&stream[at..]) {
        at += used;
        match frame {
            Frame::SynStream { stream_id, .. } => pushed.push(stream_id),
            Frame::Ping { id } if id % 2 == 0 => server_pings.push(id),
            Frame::Ping { id } => pongs.push(id),
            _ => {}
        }
    }
    let reported: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Pong { id } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(reported, pongs);
    let (mut resets, mut echoes) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < output.len() {
        let (frame, used) = decode(&output[at..])
            .expect("output decodes")
            .expect("output is whole frames");
        at += used;
        match frame {
            Frame::RstStream { stream_id, status } => {
                assert_eq!(status, RST_REFUSED_STREAM);
                resets.push(stream_id);
            }
            Frame::Ping { id } => echoes.push(id),
            other => panic!("unexpected {other:?} in the output"),
        }
    }
    assert_eq!(resets, pushed);
    assert_eq!(echoes, server_pings);
});

/// The stream in pieces of the given lengths, cycled; in one piece if there are none or all are 0.
fn split<'a>(stream: &'a [u8], lens: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = stream;
    if lens.iter().all(|&l| l == 0) {
        pieces.extend(lens.iter().map(|_| &rest[..0]));
        pieces.push(rest);
        return pieces;
    }
    for &len in lens.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(usize::from(len).min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}
