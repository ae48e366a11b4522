//! The Kubernetes remote-command channel protocol (`channel.k8s.io` family), spoken over
//! WebSocket for exec, attach and (v4) port-forward.
//!
//! Every binary WebSocket message is one frame: byte 0 is the channel, the rest its payload. The
//! base64 variants send text messages whose first character is `'0' + channel` and whose rest is
//! standard base64. v5 adds the CLOSE frame `[255, channel]` (half-close a stream).
//!
//! Constants follow `k8s.io/apimachinery/pkg/util/remotecommand/constants.go` and
//! `pkg/util/httpstream/wsstream/conn.go`.

use base64::Engine as _;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// Server → client: the process's end as a `Status` (v4+; plain text in v1).
pub const ERROR: u8 = 3;
/// Client → server: terminal size as JSON.
pub const RESIZE: u8 = 4;
/// Client → server (v5): `[CLOSE, channel]` half-closes `channel`.
pub const CLOSE: u8 = 255;

/// A negotiated subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `channel.k8s.io`: error channel is plain text, no exit codes.
    V1,
    /// `base64.channel.k8s.io`.
    V1Base64,
    /// `v4.channel.k8s.io`: JSON Status with exit codes.
    V4,
    /// `v4.base64.channel.k8s.io`.
    V4Base64,
    /// `v5.channel.k8s.io`: v4 plus CLOSE (stdin half-close).
    V5,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Protocol::V5,
        Protocol::V4,
        Protocol::V4Base64,
        Protocol::V1,
        Protocol::V1Base64,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::V1 => "channel.k8s.io",
            Protocol::V1Base64 => "base64.channel.k8s.io",
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V4Base64 => "v4.base64.channel.k8s.io",
            Protocol::V5 => "v5.channel.k8s.io",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name.trim())
    }

    /// Text frames with base64 payloads instead of binary frames.
    pub fn is_base64(self) -> bool {
        matches!(self, Protocol::V1Base64 | Protocol::V4Base64)
    }

    /// The error channel carries a JSON `Status` (with exit codes) rather than plain text.
    pub fn has_status(self) -> bool {
        !matches!(self, Protocol::V1 | Protocol::V1Base64)
    }

    /// Streams can be half-closed with a CLOSE frame.
    pub fn can_close(self) -> bool {
        self == Protocol::V5
    }
}

/// Picks the first protocol the client offered that the server supports, as the API server does.
/// `offered` is the values of every `Sec-WebSocket-Protocol` header (comma-separated lists).
pub fn negotiate<'a>(
    offered: impl IntoIterator<Item = &'a str>,
    supported: &[Protocol],
) -> Option<Protocol> {
    offered
        .into_iter()
        .flat_map(|line| line.split(','))
        .filter_map(Protocol::from_name)
        .find(|p| supported.contains(p))
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("empty message (no channel byte)")]
    Empty,
    #[error("base64 frame has channel character {0:?}, not a digit")]
    BadChannelChar(char),
    #[error("base64 frame payload is not valid base64")]
    BadBase64,
    #[error("CLOSE frame must be exactly [255, channel], got {0} bytes")]
    BadClose(usize),
}

/// A decoded frame: channel and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        channel: u8,
        payload: Vec<u8>,
    },
    /// v5 half-close of `channel`.
    Close {
        channel: u8,
    },
}

/// Decodes a binary message.
pub fn decode_binary(msg: &[u8], protocol: Protocol) -> Result<Frame, FrameError> {
    let (&channel, payload) = msg.split_first().ok_or(FrameError::Empty)?;
    if channel == CLOSE && protocol.can_close() {
        return match payload {
            [ch] => Ok(Frame::Close { channel: *ch }),
            _ => Err(FrameError::BadClose(msg.len())),
        };
    }
    Ok(Frame::Data {
        channel,
        payload: payload.to_vec(),
    })
}

/// Decodes a base64-protocol text message.
pub fn decode_text(msg: &str) -> Result<Frame, FrameError> {
    let mut chars = msg.chars();
    let c = chars.next().ok_or(FrameError::Empty)?;
    let channel = c.to_digit(10).ok_or(FrameError::BadChannelChar(c))? as u8;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(chars.as_str())
        .map_err(|_| FrameError::BadBase64)?;
    Ok(Frame::Data { channel, payload })
}

/// Encodes a binary data message.
pub fn encode_binary(channel: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(channel);
    out.extend_from_slice(payload);
    out
}

/// Encodes a base64-protocol text message.
pub fn encode_text(channel: u8, payload: &[u8]) -> String {
    let mut out = String::with_capacity(1 + payload.len().div_ceil(3) * 4);
    out.push(char::from(b'0' + channel));
    base64::engine::general_purpose::STANDARD.encode_string(payload, &mut out);
    out
}

/// The v5 half-close message for `channel`.
pub fn encode_close(channel: u8) -> [u8; 2] {
    [CLOSE, channel]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_client_order() {
        // kube-rs sends one comma-separated line.
        assert_eq!(
            negotiate(
                ["v5.channel.k8s.io, v4.channel.k8s.io"],
                &[Protocol::V4, Protocol::V5]
            ),
            Some(Protocol::V5)
        );
        // kubectl 1.30+ offers only v5.
        assert_eq!(negotiate(["v5.channel.k8s.io"], &[Protocol::V4]), None);
        assert_eq!(
            negotiate(["x", "v4.base64.channel.k8s.io"], &Protocol::ALL),
            Some(Protocol::V4Base64)
        );
        assert_eq!(negotiate([""], &Protocol::ALL), None);
    }

    #[test]
    fn binary_frames() {
        assert_eq!(
            decode_binary(&[1, b'h', b'i'], Protocol::V5),
            Ok(Frame::Data {
                channel: 1,
                payload: b"hi".to_vec()
            })
        );
        assert_eq!(
            decode_binary(&[255, 0], Protocol::V5),
            Ok(Frame::Close { channel: 0 })
        );
        // v4 has no CLOSE: 255 is just a channel number there.
        assert_eq!(
            decode_binary(&[255, 0], Protocol::V4),
            Ok(Frame::Data {
                channel: 255,
                payload: vec![0]
            })
        );
        assert_eq!(
            decode_binary(&[255], Protocol::V5),
            Err(FrameError::BadClose(1))
        );
        assert_eq!(
            decode_binary(&[255, 0, 0], Protocol::V5),
            Err(FrameError::BadClose(3))
        );
        assert_eq!(decode_binary(&[], Protocol::V5), Err(FrameError::Empty));
        // The empty message the server sends right after the upgrade.
        assert_eq!(
            decode_binary(&[1], Protocol::V5),
            Ok(Frame::Data {
                channel: 1,
                payload: vec![]
            })
        );
        assert_eq!(encode_binary(2, b"err"), [2, b'e', b'r', b'r']);
        assert_eq!(encode_close(0), [0xff, 0x00]);
    }

    #[test]
    fn text_frames() {
        assert_eq!(encode_text(1, b"hi"), "1aGk=");
        assert_eq!(
            decode_text("1aGk="),
            Ok(Frame::Data {
                channel: 1,
                payload: b"hi".to_vec()
            })
        );
        assert_eq!(decode_text("x"), Err(FrameError::BadChannelChar('x')));
        assert_eq!(decode_text("1***"), Err(FrameError::BadBase64));
        assert_eq!(decode_text(""), Err(FrameError::Empty));
    }
}
