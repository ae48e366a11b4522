//! The seal: a signed summary written once when a session ends (`sealed`), or later by
//! `kubetape seal` for a session whose writer died (`interrupted`), after its chain verified.
//!
//! Stored as `{"payload": "<JSON text>", "key": "<signing key id>", "signature": "<hex>"}`. The
//! signature covers the payload's exact bytes, so verification never depends on re-serializing.

use crate::chunk::ChainDigest;
use crate::keys::{PublicKey, SigningKey};
use crate::session::SessionId;

const SIGN_DOMAIN: &[u8] = b"kubetape/seal/v1";

/// How the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SealState {
    /// The writer closed the session itself.
    Sealed,
    /// The writer died; the session was sealed afterwards at the last intact chunk.
    Interrupted,
}

/// Bytes recorded per stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamBytes {
    pub stdin: u64,
    pub stdout: u64,
    pub stderr: u64,
    #[serde(default)]
    pub port_forward: u64,
}

/// A port-forward session's connections, from its events (added without a version bump: seals
/// of other sessions, and older seals, have none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForwardTotals {
    /// Connections opened (`PortForwardOpen` events), refused ones included.
    pub connections: u64,
    /// Of those, refused by the gateway's policy.
    #[serde(default)]
    pub refused: u64,
    /// Bytes moved to the pod and back, summed over `PortForwardBytes` events (whether or not
    /// the payload was captured).
    #[serde(default)]
    pub to_pod: u64,
    #[serde(default)]
    pub from_pod: u64,
}

/// The process's end, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExitInfo {
    pub code: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What a seal asserts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SealPayload {
    pub format: u32,
    pub session: SessionId,
    pub state: SealState,
    /// Number of chunks, and so the sequence number one past the last.
    pub chunks: u64,
    /// Chain digest of the last chunk (the genesis digest when there are none).
    pub final_digest: String,
    /// Offset of the last event, µs since the start.
    pub duration_us: u64,
    /// Wall clock when sealed, µs since the Unix epoch.
    pub sealed_at_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
    pub bytes: StreamBytes,
    pub events: u64,
    /// The commands object written with the seal, if the recorder extracted commands
    /// (absent in seals written before it existed, and in `interrupted` seals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<crate::commands::CommandsRef>,
    /// Port-forward connections and bytes (what `kubetape ls` shows without a key); absent
    /// when the session forwarded nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_forward: Option<ForwardTotals>,
}

/// Why a seal could not be read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("seal is not valid JSON: {0}")]
    Malformed(String),
    #[error("seal signature does not verify: seal altered, or signed by another key")]
    Signature,
    #[error("seal was signed by key {sealed_by}, not {expected}")]
    WrongKey { sealed_by: String, expected: String },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    payload: String,
    key: String,
    signature: String,
}

impl SealPayload {
    pub fn final_digest(&self) -> Option<ChainDigest> {
        ChainDigest::from_hex(&self.final_digest)
    }

    /// Signs and serializes the seal object.
    pub fn sign(&self, key: &SigningKey) -> Vec<u8> {
        let payload = serde_json::to_string(self).expect("seal payload serializes");
        let signature = hex::encode(key.sign(SIGN_DOMAIN, payload.as_bytes()));
        let env = Envelope {
            payload,
            key: key.id().to_string(),
            signature,
        };
        let mut out = serde_json::to_vec_pretty(&env).expect("envelope serializes");
        out.push(b'\n');
        out
    }

    /// The id of the key a stored seal claims to be signed with (before verifying it).
    pub fn signer_of(bytes: &[u8]) -> Result<String, SealError> {
        let env: Envelope =
            serde_json::from_slice(bytes).map_err(|e| SealError::Malformed(e.to_string()))?;
        Ok(env.key)
    }

    /// Verifies a stored seal's signature with `key` and parses its payload.
    pub fn verify(bytes: &[u8], key: &PublicKey) -> Result<Self, SealError> {
        let env: Envelope =
            serde_json::from_slice(bytes).map_err(|e| SealError::Malformed(e.to_string()))?;
        if env.key != key.id() {
            return Err(SealError::WrongKey {
                sealed_by: env.key,
                expected: key.id().to_string(),
            });
        }
        let sig: [u8; 64] = hex::decode(&env.signature)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| SealError::Malformed("signature is not 64 hex bytes".into()))?;
        if !key.verify(SIGN_DOMAIN, env.payload.as_bytes(), &sig) {
            return Err(SealError::Signature);
        }
        serde_json::from_str(&env.payload).map_err(|e| SealError::Malformed(e.to_string()))
    }
}
