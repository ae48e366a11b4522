//! port-forward's wire vocabulary (kubernetes-streams.md §2), shared by its three transports:
//!
//! - **SPDY/3.1** (`POST`, `Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`;
//!   kubectl 1.27–1.30): per forwarded TCP connection the client opens an `error` and a `data`
//!   stream carrying the same `port` and `requestid` headers; see [`crate::spdy::portforward`];
//! - **the WebSocket tunnel** (`Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io`, kubectl
//!   ≥ 1.31): the very same SPDY bytes inside binary WebSocket messages, whose boundaries mean
//!   nothing;
//! - **the channel protocol** (`v4.channel.k8s.io`, kube-rs and other libraries): ports fixed up
//!   front by `?ports=`, one TCP connection per port per WebSocket; port *i* gets data channel
//!   `2i` and error channel `2i+1`, and the server's first message on each is the port, 2 bytes
//!   little-endian ([`port_prefix`]).
//!
//! Names and constants follow apimachinery `pkg/util/portforward/constants.go` and kubelet's
//! `pkg/cri/streaming/portforward`.

/// The SPDY port-forward protocol (`X-Stream-Protocol-Version`), kubelet's only one.
pub const PROTOCOL_V1: &str = "portforward.k8s.io";
/// The WebSocket subprotocol of the tunnel (KEP-4006): SPDY inside WebSocket.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// Stream headers of the SPDY protocol (lowercase on the wire).
pub const HEADER_STREAM_TYPE: &str = "streamtype";
pub const HEADER_PORT: &str = "port";
pub const HEADER_REQUEST_ID: &str = "requestid";
/// `streamtype` values.
pub const STREAM_TYPE_DATA: &str = "data";
pub const STREAM_TYPE_ERROR: &str = "error";

/// Why a port or a port list is not usable, worded as kubelet words it (these reach the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("query parameter \"port\" is required")]
    Missing,
    #[error("query parameter \"port\" cannot be empty")]
    Empty,
    #[error("unable to parse {0:?} as a port")]
    NotANumber(String),
    #[error("port {0:?} must be > 0")]
    Zero(String),
}

/// Parses one port as kubelet does (`strconv.ParseUint(s, 10, 16)`, then > 0).
pub fn parse_port(s: &str) -> Result<u16, PortError> {
    // ParseUint takes digits only: no sign, no spaces, no underscores.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError::NotANumber(s.to_string()));
    }
    match s.parse::<u16>() {
        Ok(0) => Err(PortError::Zero(s.to_string())),
        Ok(p) => Ok(p),
        Err(_) => Err(PortError::NotANumber(s.to_string())),
    }
}

/// The ports of a channel-protocol request, in order: every `ports` (the API's name) and `port`
/// (kubelet's) value, each possibly comma-separated (kube-rs sends `ports=80%2C8443`). `values`
/// are already percent-decoded query values.
pub fn parse_ports<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<u16>, PortError> {
    let mut ports = Vec::new();
    for v in values {
        if v.is_empty() {
            return Err(PortError::Empty);
        }
        for p in v.split(',') {
            ports.push(parse_port(p)?);
        }
    }
    if ports.is_empty() {
        return Err(PortError::Missing);
    }
    Ok(ports)
}

/// The first payload the server sends on each of a port's two channels.
pub fn port_prefix(port: u16) -> [u8; 2] {
    port.to_le_bytes()
}

/// Reads a port prefix (what a channel-protocol client checks first); `None` if the payload is
/// shorter than 2 bytes. Returns the port and the rest of the payload.
pub fn split_port_prefix(payload: &[u8]) -> Option<(u16, &[u8])> {
    let (prefix, rest) = payload.split_first_chunk::<2>()?;
    Some((u16::from_le_bytes(*prefix), rest))
}

/// The data channel of the `index`-th port of a channel-protocol request.
pub fn data_channel(index: usize) -> Option<u8> {
    u8::try_from(index.checked_mul(2)?).ok()
}

/// The error channel of the `index`-th port.
pub fn error_channel(index: usize) -> Option<u8> {
    u8::try_from(index.checked_mul(2)?.checked_add(1)?).ok()
}

/// Which port index and whether it is the error channel, for a channel number.
pub fn channel_port(channel: u8) -> (usize, bool) {
    (usize::from(channel / 2), channel % 2 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_prefix_is_little_endian() {
        // Port 80 on data channel 0 is the message [0, 0x50, 0x00]; on error channel 1 [1, 0x50, 0].
        assert_eq!(port_prefix(80), [0x50, 0x00]);
        assert_eq!(port_prefix(8443), [0xFB, 0x20]);
        assert_eq!(
            split_port_prefix(&[0x50, 0x00, b'x']),
            Some((80, &b"x"[..]))
        );
        assert_eq!(split_port_prefix(&[0x50]), None);
        assert_eq!((data_channel(0), error_channel(0)), (Some(0), Some(1)));
        assert_eq!((data_channel(1), error_channel(1)), (Some(2), Some(3)));
        assert_eq!((data_channel(128), error_channel(127)), (None, Some(255)));
        assert_eq!(channel_port(3), (1, true));
        assert_eq!(channel_port(4), (2, false));
    }

    #[test]
    fn ports_as_kube_rs_and_kubelet_send_them() {
        assert_eq!(parse_ports(["80,8443"]), Ok(vec![80, 8443]));
        assert_eq!(parse_ports(["80", "9090"]), Ok(vec![80, 9090]));
        assert_eq!(parse_ports([]), Err(PortError::Missing));
        assert_eq!(parse_ports([""]), Err(PortError::Empty));
        assert_eq!(
            parse_ports(["80,"]),
            Err(PortError::NotANumber(String::new()))
        );
        assert_eq!(parse_ports(["0"]), Err(PortError::Zero("0".into())));
        for bad in ["+80", " 80", "65536", "8_0", "0x50", "-1"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_port("65535"), Ok(65535));
        assert_eq!(
            PortError::NotANumber("x".into()).to_string(),
            "unable to parse \"x\" as a port"
        );
    }
}
