//! Both ends of exec/attach over SPDY (`proto::spdy::remotecommand`) on peer bytes.
//!
//! Input: byte 0 picks the side and the request's options: bit 0 = stdin, bit 1 = stdout, bit 2 =
//! stderr, bit 3 = tty, bit 7 = client side (else server side). Byte 1 is a piece length
//! (0 = one read). The rest is what the peer sends.
//!
//! Properties:
//! - no panic, whatever the bytes and however they are split; the same events in pieces as whole;
//! - server: `Ready` at most once, after an `Opened` for every expected stream type and never
//!   before; `StdinEof` at most once and no `Stdin` after it; output queued with `send` and
//!   `finish` before readiness is held (no DATA in the output) and is sent once ready;
//! - client: `Ready` at most once; at most one `Status`, never larger than `MAX_STATUS`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::exec::StreamOptions;
use proto::spdy::frame::{Frame, decode};
use proto::spdy::remotecommand::{
    Client, ClientEvent, MAX_STATUS, Server, ServerEvent, StreamType,
};

fuzz_target!(|data: &[u8]| {
    let [mode, piece, stream @ ..] = data else {
        return;
    };
    let opts = StreamOptions {
        stdin: mode & 1 != 0,
        stdout: mode & 2 != 0,
        stderr: mode & 4 != 0,
        tty: mode & 8 != 0,
        ..StreamOptions::default()
    };
    let piece = if *piece == 0 {
        stream.len().max(1)
    } else {
        usize::from(*piece)
    };
    if mode & 0x80 != 0 {
        client(&opts, stream, piece);
    } else {
        server(&opts, stream, piece);
    }
});

fn server(opts: &StreamOptions, stream: &[u8], piece: usize) {
    let mut whole = Server::new(opts);
    let expected = whole.receive(stream);

    let mut s = Server::new(opts);
    s.send(StreamType::Stdout, b"early");
    s.finish(b"{}");
    let mut events = Vec::new();
    let mut output = Vec::new();
    let mut failed = false;
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

    let wanted = StreamType::expected(opts);
    let mut opened = Vec::new();
    let (mut ready, mut eof) = (false, false);
    for e in &events {
        match e {
            ServerEvent::Opened(t) => opened.push(*t),
            ServerEvent::Ready => {
                assert!(!ready, "Ready twice");
                assert!(wanted.iter().all(|t| opened.contains(t)), "Ready too early");
                ready = true;
            }
            ServerEvent::Stdin(_) => assert!(!eof, "stdin after EOF"),
            ServerEvent::StdinEof => {
                assert!(!eof, "EOF twice");
                eof = true;
            }
            _ => {}
        }
    }
    if !failed && wanted.iter().all(|t| opened.contains(t)) {
        assert!(ready && s.is_ready(), "all streams open but not ready");
    }
    // Before readiness nothing but replies and PING echoes goes out; once ready the held
    // output and the end follow.
    let mut data_frames = 0;
    let mut at = 0;
    while let Ok(Some((f, used))) = decode(&output[at..]) {
        at += used;
        if matches!(f, Frame::Data { .. } | Frame::GoAway { .. }) {
            data_frames += 1;
        }
    }
    assert_eq!(at, output.len(), "output is whole frames");
    if !ready {
        assert_eq!(data_frames, 0, "output before readiness");
    } else {
        assert!(s.is_finished() && data_frames > 0);
    }
}

fn client(opts: &StreamOptions, stream: &[u8], piece: usize) {
    let mut whole = Client::new(opts);
    let expected = whole.receive(stream);
    let mut c = Client::new(opts);
    let mut events = Vec::new();
    let mut failed = false;
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
    let readies = events.iter().filter(|e| **e == ClientEvent::Ready).count();
    assert!(readies <= 1);
    let statuses: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Status(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(statuses.len() <= 1);
    assert!(statuses.iter().all(|s| s.len() <= MAX_STATUS));
    assert!(c.status_so_far().len() <= MAX_STATUS);
}
