//! SPDY/3.1, as Kubernetes uses it for exec/attach/port-forward with older kubectl (and as the
//! payload of the port-forward WebSocket tunnel): framing ([`frame`]) and compressed header
//! blocks ([`headers`]), the two ends of a connection ([`session`] for servers, [`client`] for
//! clients), and exec/attach ([`remotecommand`]) and port-forward ([`portforward`]) on top. Pure: callers own the sockets.

pub mod client;
pub mod dictionary;
pub mod frame;
pub mod headers;
pub mod portforward;
pub mod remotecommand;
pub mod session;

pub use client::ClientSession;
pub use frame::{Frame, SpdyError, decode};
pub use headers::{HeaderDecoder, HeaderEncoder, Headers};
pub use session::{Event, ServerSession};
