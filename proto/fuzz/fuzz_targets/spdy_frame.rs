//! `spdy::frame::decode` over the input as a connection's receive buffer: decode from the front,
//! drop the bytes used, repeat until it asks for more (`Ok(None)`) or fails. It never panics, and:
//! - a frame uses exactly its 8-byte header plus the declared 24-bit length, and every shorter
//!   prefix of those bytes is `Ok(None)` ("read more"), never an error or a different frame;
//! - `Ok(None)` is returned only when the buffer really holds less than one whole frame;
//! - the re-encoding (`Frame::encode`) is a fixed point: it decodes to the same frame, using all
//!   of its bytes;
//! - the re-encoding equals the consumed bytes exactly when they are in canonical form (see
//!   [`canonical`]): the decoder deliberately drops some wire bits, and nothing else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::spdy::frame::{FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame, decode};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match decode(rest) {
            Ok(None) => {
                assert!(rest.len() < 8 || rest.len() < 8 + declared_len(rest));
                break;
            }
            Err(_) => break,
            Ok(Some((frame, used))) => {
                assert!(rest.len() >= 8);
                assert_eq!(used, 8 + declared_len(rest));
                let consumed = &rest[..used];
                // Frames arrive in pieces: a partial frame is never an error or a frame.
                for cut in [0, 1, 7, 8, used / 2, used - 1] {
                    if cut < used {
                        assert_eq!(decode(&consumed[..cut]), Ok(None), "prefix of {cut} bytes");
                    }
                }
                let again = frame.to_bytes();
                assert_eq!(
                    decode(&again),
                    Ok(Some((frame.clone(), again.len()))),
                    "fixed point"
                );
                assert_eq!(
                    again == consumed,
                    canonical(&frame, consumed),
                    "re-encoding of {frame:?} from {consumed:02x?} is {again:02x?}"
                );
                rest = &rest[used..];
            }
        }
    }
});

fn declared_len(b: &[u8]) -> usize {
    u32::from_be_bytes([0, b[5], b[6], b[7]]) as usize
}

/// Whether `wire` (one whole frame that decoded to `frame`) is the form `Frame::encode` writes.
/// The decoder keeps what Kubernetes peers use and drops the rest, so re-encoding cannot give
/// these back and they are excluded from the byte-exact property:
/// - flags a frame type does not define (DATA, SYN_REPLY and HEADERS keep only FIN, SYN_STREAM
///   FIN and UNIDIRECTIONAL; the other control frames none, so e.g. SETTINGS' CLEAR_SETTINGS flag
///   is dropped);
/// - the reserved high bit of every 31-bit stream id (stream, associated-to, last-good) and of
///   WINDOW_UPDATE's delta;
/// - SYN_STREAM's 5 unused bits after the 3-bit priority, and its slot byte (SPDY/3.1 unused);
/// - bytes past the fixed-size payload of RST_STREAM, PING, GOAWAY and WINDOW_UPDATE, and past
///   SETTINGS' declared entries; and a 4-byte GOAWAY (no status, tolerated as spdystream does)
///   re-encodes with an explicit status 0, so it grows.
///
/// DATA payloads, header blocks (kept compressed) and unknown control frames (kind, flags and
/// payload kept whole) are never touched.
fn canonical(frame: &Frame, wire: &[u8]) -> bool {
    let flags = wire[4];
    let p = &wire[8..];
    let reserved_clear = |at: usize| p[at] & 0x80 == 0;
    match frame {
        Frame::Data { .. } => flags & !FLAG_FIN == 0,
        Frame::SynStream { .. } => {
            flags & !(FLAG_FIN | FLAG_UNIDIRECTIONAL) == 0
                && reserved_clear(0)
                && reserved_clear(4)
                && p[8] & 0x1f == 0
                && p[9] == 0
        }
        Frame::SynReply { .. } | Frame::Headers { .. } => {
            flags & !FLAG_FIN == 0 && reserved_clear(0)
        }
        Frame::RstStream { .. } => flags == 0 && p.len() == 8 && reserved_clear(0),
        Frame::Settings { entries } => flags == 0 && p.len() == 4 + 8 * entries.len(),
        Frame::Ping { .. } => flags == 0 && p.len() == 4,
        Frame::GoAway { .. } => flags == 0 && p.len() == 8 && reserved_clear(0),
        Frame::WindowUpdate { .. } => {
            flags == 0 && p.len() == 8 && reserved_clear(0) && reserved_clear(4)
        }
        Frame::Unknown { .. } => true,
    }
}
