//! Shared fixtures for the fuzz targets and the seed-corpus generator: fixed keys, so a chunk or
//! seal written by `examples/seed_corpus.rs` verifies inside the targets.

use std::sync::LazyLock;

use storage_schema::{ChainDigest, DataKey, PublicKey, SessionId, SigningKey};

/// The data key every target encrypts and opens with.
pub const DEK_BYTES: [u8; 32] = [0x42; 32];
/// The Ed25519 seed every target signs with.
pub const SIGNING_SEED: [u8; 32] = [0x07; 32];
/// The signing key's id (seals name it; `SealPayload::verify` compares it first).
pub const SIGNING_ID: &str = "20260101T000000Z-fuzz";

static SIGNER: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::from_seed(SIGNING_ID, SIGNING_SEED));
static PUBLIC: LazyLock<PublicKey> = LazyLock::new(|| SIGNER.public());

pub fn data_key() -> DataKey {
    DataKey::from_bytes(DEK_BYTES)
}

pub fn signing_key() -> &'static SigningKey {
    &SIGNER
}

pub fn public_key() -> &'static PublicKey {
    &PUBLIC
}

pub fn session() -> SessionId {
    SessionId::from_bytes(*b"kubetape-fuzz-id")
}

pub fn genesis() -> ChainDigest {
    ChainDigest::genesis(session(), b"{\"fuzz\":true}")
}
