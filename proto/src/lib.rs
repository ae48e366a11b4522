//! The wire languages kubetape speaks: Kubernetes streams and its own admin API.
//!
//! For streams, what kubectl and the API server speak: the channel protocol
//! (`v4`/`v5.channel.k8s.io` and base64 variants), SPDY/3.1 framing and header blocks, `Status`
//! and resize messages. For kubetape's admin API, the JSON bodies the gateway and the `kubetape`
//! CLI exchange. Pure functions and types over bytes; no I/O, so every decoder can be fuzzed
//! cheaply. Protocol facts (observed on real kubectl) are in
//! `../shared/reference/kubernetes-streams.md`.
//!
//! # Layout
//! - [`channel`]: channel ids, subprotocol names and negotiation, binary/base64 frames, v5 CLOSE;
//! - [`status`]: the `Status` object and exit codes; [`resize`]: terminal size messages;
//! - [`spdy`]: SPDY/3.1 frames and zlib header blocks with the SPDY dictionary, the server and
//!   client ends of a connection, and exec/attach over it (`spdy::remotecommand`);
//! - [`query`]: query strings as the API server reads them (Go's `url.ParseQuery`, apimachinery's
//!   conversions), refusals where that reading is uncertain, and the canonical form forwarded;
//! - [`exec`]: exec/attach/port-forward paths and options, read as the API server reads them;
//! - [`pod_protobuf`]: a `v1/Pod` in Kubernetes' protobuf encoding (how kubectl creates pods)
//!   read into its JSON form;
//! - [`portforward`]: port-forward's names, port lists and the channel protocol's port prefix
//!   (its SPDY streams are `spdy::portforward`);
//! - [`admin`]: kubetape's admin API (`/kubetape/v1/`): access requests and decisions.

pub mod admin;
pub mod channel;
pub mod exec;
pub mod pod_protobuf;
pub mod portforward;
pub mod query;
pub mod resize;
pub mod spdy;
pub mod status;
