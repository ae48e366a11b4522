//! SPDY/3.1, as Kubernetes uses it for exec/attach/port-forward with older kubectl (and as the
//! payload of the port-forward WebSocket tunnel): framing ([`frame`]) and compressed header
//! blocks ([`headers`]). Pure; the connection logic lives with the I/O.

pub mod dictionary;
pub mod frame;
pub mod headers;
pub mod session;

pub use frame::{Frame, SpdyError, decode};
pub use headers::{HeaderDecoder, HeaderEncoder, Headers};
pub use session::{Event, ServerSession};
