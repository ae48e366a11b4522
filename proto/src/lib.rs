//! Wire languages kubectl and the API server speak for streams: the channel protocol
//! (`v4`/`v5.channel.k8s.io`), SPDY/3.1 framing and header blocks, port-forward framing, `Status`
//! and resize messages. Pure functions over bytes; no I/O, so every decoder can be fuzzed cheaply.
//!
//! # Layout
//! Filled by the gateway issue; the recording format only needs the stream identifiers, which live
//! in `storage-schema` until the gateway brings the full protocol here.
