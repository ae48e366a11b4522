//! Wire languages kubectl and the API server speak for streams: the channel protocol
//! (`v4`/`v5.channel.k8s.io` and base64 variants), SPDY/3.1 framing and header blocks, exec and
//! port-forward over them, `Status` and resize messages. Pure functions over bytes; no I/O, so every decoder can be fuzzed cheaply.
//! Protocol facts (observed on real kubectl) are in `../shared/reference/kubernetes-streams.md`.
//!
//! # Layout
//! - [`channel`]: channel ids, subprotocol names and negotiation, binary/base64 frames, v5 CLOSE;
//! - [`status`]: the `Status` object and exit codes; [`resize`]: terminal size messages;
//! - [`spdy`]: SPDY/3.1 frames and zlib header blocks with the SPDY dictionary, the server and
//!   client ends of a connection, and exec/attach over it (`spdy::remotecommand`);
//! - [`exec`]: exec/attach request parameters as kubectl sends them;
//! - [`portforward`]: port-forward's names, port lists and the channel protocol's port prefix
//!   (its SPDY streams are `spdy::portforward`).

pub mod channel;
pub mod exec;
pub mod portforward;
pub mod resize;
pub mod spdy;
pub mod status;
