//! The channel protocol's decoders on arbitrary WebSocket messages:
//! - `decode_binary`, for every `Protocol`, never panics; it fails only on an empty message or (v5
//!   only) a malformed CLOSE; a decoded frame re-encodes (`encode_binary`/`encode_close`) to exactly
//!   the message, and 255 is a CLOSE only where the protocol has one;
//! - `decode_text` (the input read as UTF-8, lossily) never panics; a decoded frame has a digit
//!   channel, and `encode_text` gives back exactly the message (the base64 engine accepts only
//!   canonical padding and zero trailing bits, so there is one spelling per payload) which decodes
//!   to the same frame;
//! - `negotiate`, on the input's lines as `Sec-WebSocket-Protocol` values and a server list chosen
//!   by the first byte, returns the first offered name the server supports (checked against a
//!   straightforward re-statement of that rule).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::channel::{
    CLOSE, Frame, FrameError, Protocol, decode_binary, decode_text, encode_binary, encode_close,
    encode_text, negotiate,
};

fuzz_target!(|data: &[u8]| {
    for protocol in Protocol::ALL {
        match decode_binary(data, protocol) {
            Ok(Frame::Data { channel, payload }) => {
                assert!(
                    !(channel == CLOSE && protocol.can_close()),
                    "255 is CLOSE in v5"
                );
                assert_eq!(encode_binary(channel, &payload), data);
            }
            Ok(Frame::Close { channel }) => {
                assert!(protocol.can_close());
                assert_eq!(encode_close(channel), data);
            }
            Err(FrameError::Empty) => assert!(data.is_empty()),
            Err(FrameError::BadClose(n)) => {
                assert!(protocol.can_close() && data[0] == CLOSE);
                assert_eq!(n, data.len());
                assert_ne!(n, 2);
            }
            Err(e) => panic!("binary decoding failed with {e:?}"),
        }
    }

    let text = String::from_utf8_lossy(data);
    match decode_text(&text) {
        Ok(Frame::Data { channel, payload }) => {
            assert!(channel < 10, "text channels are one digit");
            let again = encode_text(channel, &payload);
            assert_eq!(again, text, "one base64 spelling per payload");
            assert_eq!(decode_text(&again), Ok(Frame::Data { channel, payload }));
        }
        Ok(close) => panic!("text frames are never CLOSE: {close:?}"),
        Err(FrameError::Empty) => assert!(text.is_empty()),
        Err(FrameError::BadChannelChar(c)) => {
            assert_eq!(text.chars().next(), Some(c));
            assert!(!c.is_ascii_digit());
        }
        Err(FrameError::BadBase64) => assert!(text.as_bytes()[0].is_ascii_digit()),
        Err(e) => panic!("text decoding failed with {e:?}"),
    }

    // Which protocols the server supports: the low five bits of the first byte.
    let mask = data.first().copied().unwrap_or(0);
    let supported: Vec<Protocol> = Protocol::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, p)| p)
        .collect();
    let offered = text.get(1..).unwrap_or("");
    let got = negotiate(offered.lines(), &supported);
    let expected = offered
        .lines()
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .find_map(|name| supported.iter().copied().find(|p| p.name() == name));
    assert_eq!(got, expected);
});
