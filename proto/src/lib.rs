//! Wire languages kubectl and the API server speak for streams: the channel protocol
//! (`v4`/`v5.channel.k8s.io` and base64 variants), SPDY/3.1 framing and header blocks, `Status`
//! and resize messages. Pure functions over bytes; no I/O, so every decoder can be fuzzed cheaply.
//! Protocol facts (observed on real kubectl) are in `../shared/reference/kubernetes-streams.md`.
//!
//! # Layout
//! - [`channel`]: channel ids, subprotocol names and negotiation, binary/base64 frames, v5 CLOSE;
//! - [`status`]: the `Status` object and exit codes; [`resize`]: terminal size messages;
//! - [`spdy`]: SPDY/3.1 frames and zlib header blocks with the SPDY dictionary;
//! - [`query`]: query strings as the API server reads them (Go's `url.ParseQuery`, apimachinery's
//!   conversions), refusals where that reading is uncertain, and the canonical form forwarded;
//! - [`exec`]: exec/attach/port-forward paths and options, read as the API server reads them.

pub mod channel;
pub mod exec;
pub mod query;
pub mod resize;
pub mod spdy;
pub mod status;
