//! The kubetape recording format (this crate writes v2 and reads v1 and v2): what a session is
//! on disk, and how it is written, read and verified.
//!
//! A session is a handful of objects under `sessions/<id>/` (an audit stream: `audit/<id>/`; see
//! [`layout`], which owns every prefix of the bucket): plaintext metadata, a wrapped data key, a
//! chain of encrypted and signed chunks, and a signed seal. The format's
//! design note, with byte layouts, is `FORMAT.md` beside this crate's `Cargo.toml`; the layouts
//! are repeated where the code is ([`chunk`], [`event`], [`keys`], [`seal`]).
//!
//! Properties, and the module that provides each:
//! - **append-only**: every object is written once with a create-only put ([`store`]);
//! - **bounded loss**: chunks close every ≤1 s or ≤256 KiB ([`builder::FlushPolicy`]);
//! - **confidential**: zstd then AES-256-GCM under a per-session key wrapped by a KEK ([`chunk`],
//!   [`keys`]); deleting `dek.json` crypto-shreds a session;
//! - **tamper-evident without the data key**: a hash chain from the metadata through every chunk
//!   to the seal (BLAKE3; SHA-256 in v1), each chunk and the seal signed with Ed25519 ([`chunk`],
//!   [`seal`], [`verify`]);
//! - **readable forever**: golden fixtures under `tests/fixtures/v<N>/` are read by every version.
//!
//! # Layout
//! - [`varint`], [`event`]: the event model and its compact framing;
//! - [`chunk`]: the frozen chunk header, sealing and opening chunks, chain digests;
//! - [`keys`]: keyring, data keys, wrapping, signing keys;
//! - [`session`]: ids, metadata, stream kinds and their classes ([`StreamClass`]);
//! - [`layout`]: every prefix of the bucket and every object name; [`seal`]: end-of-session seals;
//! - [`time`]: the wall clock in the format's unit (µs since the Unix epoch);
//! - [`gap`]: losses a writer admits to (in the recording and its seal);
//! - [`builder`]: events → chunks under a flush policy (sync, no I/O);
//! - [`verify`]: precise damage reports (sync, no I/O);
//! - [`audit`]: the gateway's audit record, carried by audit streams;
//! - [`store`] (feature `store`): object-store I/O — recorder, reader, catalog, verification, and
//!   [`store::ledger`], the create-only ledgers (JIT, revocations, holds to come).

pub mod aead;
pub mod audit;
pub mod builder;
pub mod chunk;
pub mod commands;
pub mod counts;
pub mod defaults;
pub mod event;
pub mod gap;
pub mod keys;
pub mod layout;
pub mod seal;
pub mod session;
pub mod time;
pub mod varint;
pub mod verify;
pub mod zstd_pool;

#[cfg(feature = "store")]
pub mod store;

/// The recording format version this crate writes.
pub const FORMAT_VERSION: u32 = 2;

pub use audit::{AuditDecision, AuditRecord};
pub use builder::{ChunkBuilder, FlushPolicy, Totals, ZstdTables};
pub use chunk::{ChainDigest, ChunkError, ChunkHeader, SealedChunk};
pub use event::{Direction, Event, EventKind, ForwardOutcome, Stream};
pub use gap::{Gap, GapChunks};
pub use keys::{DataKey, KeyError, Keyring, PublicKey, SigningKey};
pub use seal::{ExitInfo, ForwardTotals, SealPayload, SealState, StreamBytes};
pub use session::{
    DebugInfo, ForwardMeta, Identity, SessionId, SessionKind, SessionMeta, StreamClass, Target,
    TermSize,
};
pub use verify::{Damage, Report, SessionState, Verifier};
