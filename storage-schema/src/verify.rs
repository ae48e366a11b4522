//! Verification: decides whether a session is intact and, when it is not, says precisely what is
//! wrong and where. Pure logic over object bytes; [`crate::store`] feeds it from a store.
//!
//! What needs which key:
//! - the chain (order, gaps, splices, metadata binding) needs no key at all;
//! - which chunk is damaged, and the seal, need the signing **public** key;
//! - decrypting every chunk and checking the seal's byte counts needs the data key (so the KEK).

use crate::builder::Totals;
use crate::chunk::{ChainDigest, ChunkError, SealedChunk};
use crate::event::Event;
use crate::keys::{DataKey, PublicKey};
use crate::seal::{ForwardTotals, SealError, SealPayload, SealState, StreamBytes};
use crate::session::SessionId;

/// One thing wrong with a recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error("metadata: {0}")]
    MetaUnreadable(String),
    #[error("metadata names session {found}, but it is stored as {expected}")]
    MetaForeign {
        expected: SessionId,
        found: SessionId,
    },
    #[error("recording was signed with key {signed_with}, but the public key given is {given}")]
    WrongPublicKey { signed_with: String, given: String },
    #[error("chunks {from}..={to} are missing")]
    ChunksMissing { from: u64, to: u64 },
    #[error("chunk {seq}: unreadable: {error}")]
    ChunkMalformed { seq: u64, error: ChunkError },
    #[error("chunk {seq}: signature does not verify (its header, body or signature was altered)")]
    ChunkSignature { seq: u64 },
    #[error("chunk {seq}: belongs to session {owner} (spliced in from another recording)")]
    ChunkForeign { seq: u64, owner: SessionId },
    #[error("chunk {seq}: the object holds chunk {holds} (chunks were reordered)")]
    ChunkMisplaced { seq: u64, holds: u64 },
    #[error("chunk 0: does not link to the session metadata (meta.json was altered or replaced)")]
    MetaAltered,
    #[error("chunk {seq}: does not link to chunk {prev} (a chunk was replaced or removed)", prev = seq - 1)]
    ChainBroken { seq: u64 },
    #[error("chunk {seq}: authentic but does not decrypt/decode: {error}")]
    ChunkContent { seq: u64, error: ChunkError },
    #[error("seal: {0}")]
    Seal(SealError),
    #[error("seal belongs to session {owner} (replaced by another recording's seal)")]
    SealForeign { owner: SessionId },
    #[error(
        "seal records {sealed} chunks but {found} are present; chunks {found}..{sealed} are missing or extra"
    )]
    SealChunkCount { sealed: u64, found: u64 },
    #[error("seal's final digest does not match the last chunk (the chain's end was altered)")]
    SealDigest,
    /// The store's `ended/` feed says the session ended, yet it has no seal: the seal was
    /// deleted, most likely with the chunks after it (a truncated tail looks like a live
    /// session otherwise).
    #[error(
        "seal.json is missing, but {marker} says the session ended: its seal was removed (and its tail may be truncated)"
    )]
    SealMissing { marker: String },
    #[error("commands object is missing, though the seal lists {count} commands")]
    CommandsMissing { count: u64 },
    #[error("commands: {0}")]
    Commands(crate::commands::CommandsError),
    #[error("seal's byte counts {sealed:?} do not match the recorded events {found:?}")]
    SealBytes {
        sealed: StreamBytes,
        found: StreamBytes,
    },
    #[error("seal's port-forward totals {sealed:?} do not match the recorded events {found:?}")]
    SealForward {
        sealed: ForwardTotals,
        found: ForwardTotals,
    },
}

/// Where a session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// Signed seal written by the recorder.
    Sealed(SealPayload),
    /// Signed seal written after the recorder died.
    Interrupted(SealPayload),
    /// No seal yet: live, or its writer died and nobody has sealed it.
    Open,
}

impl SessionState {
    pub fn name(&self) -> &'static str {
        match self {
            SessionState::Sealed(_) => "sealed",
            SessionState::Interrupted(_) => "interrupted",
            SessionState::Open => "open",
        }
    }
}

/// The outcome of verifying one session.
#[derive(Debug, Clone)]
pub struct Report {
    pub session: SessionId,
    pub state: SessionState,
    /// Chunks the session has (one past the highest sequence number present).
    pub chunks: u64,
    /// Totals over decrypted chunks, when a data key was available.
    pub totals: Option<Totals>,
    /// Chain digest after the last good chunk (what an `interrupted` seal records).
    pub last_digest: ChainDigest,
    pub damage: Vec<Damage>,
}

impl Report {
    pub fn intact(&self) -> bool {
        self.damage.is_empty()
    }
}

/// Checks a session chunk by chunk. Feed chunks in object order with [`Verifier::chunk`], then
/// call [`Verifier::finish`] with the seal if one exists.
#[derive(Debug)]
pub struct Verifier<'k> {
    session: SessionId,
    key: &'k PublicKey,
    dek: Option<DataKey>,
    expected_seq: u64,
    prev: ChainDigest,
    totals: Totals,
    damage: Vec<Damage>,
}

impl<'k> Verifier<'k> {
    /// Starts from the metadata bytes as stored. `dek` enables the deep (decrypting) check.
    pub fn new(
        session: SessionId,
        meta_bytes: &[u8],
        key: &'k PublicKey,
        dek: Option<DataKey>,
    ) -> Self {
        Self {
            session,
            key,
            dek,
            expected_seq: 0,
            prev: ChainDigest::genesis(session, meta_bytes),
            totals: Totals::default(),
            damage: Vec::new(),
        }
    }

    /// Records damage found outside the chunk stream (metadata problems, say).
    pub fn note(&mut self, damage: Damage) {
        self.damage.push(damage);
    }

    /// Checks the chunk stored under sequence number `object_seq`. Returns its events when the
    /// chunk verified and a data key was given.
    pub fn chunk(&mut self, object_seq: u64, bytes: &[u8]) -> Option<Vec<Event>> {
        if object_seq > self.expected_seq {
            self.damage.push(Damage::ChunksMissing {
                from: self.expected_seq,
                to: object_seq - 1,
            });
        }
        self.expected_seq = object_seq + 1;
        let chunk = match SealedChunk::decode(bytes) {
            Ok(c) => c,
            Err(error) => {
                self.damage.push(Damage::ChunkMalformed {
                    seq: object_seq,
                    error,
                });
                return None;
            }
        };
        let digest = chunk.digest();
        let h = &chunk.header;
        let finding = if !chunk.signature_valid(self.key) {
            Some(Damage::ChunkSignature { seq: object_seq })
        } else if h.session != self.session {
            Some(Damage::ChunkForeign {
                seq: object_seq,
                owner: h.session,
            })
        } else if h.seq != object_seq {
            Some(Damage::ChunkMisplaced {
                seq: object_seq,
                holds: h.seq,
            })
        } else if !h.prev.ct_eq(&self.prev) {
            // After a gap the break is already reported; do not report it twice.
            let after_gap = matches!(self.damage.last(), Some(Damage::ChunksMissing { to, .. }) if *to + 1 == object_seq)
                || matches!(self.damage.last(), Some(d) if d.seq() == Some(object_seq.wrapping_sub(1)));
            if after_gap {
                None
            } else if object_seq == 0 {
                Some(Damage::MetaAltered)
            } else {
                Some(Damage::ChainBroken { seq: object_seq })
            }
        } else {
            None
        };
        // Re-synchronise on this chunk either way, so one bad chunk is reported once.
        self.prev = digest;
        if let Some(d) = finding {
            self.damage.push(d);
            return None;
        }
        let dek = self.dek.as_ref()?;
        match chunk.open(dek) {
            Ok(events) => {
                for e in &events {
                    self.totals.count(e);
                }
                self.totals.chunks += 1;
                Some(events)
            }
            Err(error) => {
                self.damage.push(Damage::ChunkContent {
                    seq: object_seq,
                    error,
                });
                None
            }
        }
    }

    /// Checks the seal (if any) against everything seen.
    pub fn finish(mut self, seal: Option<&[u8]>) -> Report {
        let state = match seal {
            None => SessionState::Open,
            Some(bytes) => match SealPayload::verify(bytes, self.key) {
                Err(e) => {
                    self.damage.push(Damage::Seal(e));
                    SessionState::Open
                }
                Ok(payload) => {
                    if payload.session != self.session {
                        self.damage.push(Damage::SealForeign {
                            owner: payload.session,
                        });
                    } else {
                        if payload.chunks != self.expected_seq {
                            self.damage.push(Damage::SealChunkCount {
                                sealed: payload.chunks,
                                found: self.expected_seq,
                            });
                        } else if payload.final_digest().is_none_or(|d| !d.ct_eq(&self.prev)) {
                            self.damage.push(Damage::SealDigest);
                        }
                        if self.dek.is_some()
                            && self.damage.is_empty()
                            && payload.bytes != self.totals.bytes
                        {
                            self.damage.push(Damage::SealBytes {
                                sealed: payload.bytes,
                                found: self.totals.bytes,
                            });
                        }
                        // Seals written before port-forward totals existed have none to check.
                        if let Some(sealed) = payload.port_forward
                            && self.dek.is_some()
                            && self.damage.is_empty()
                            && sealed != self.totals.forward
                        {
                            self.damage.push(Damage::SealForward {
                                sealed,
                                found: self.totals.forward,
                            });
                        }
                    }
                    match payload.state {
                        SealState::Sealed => SessionState::Sealed(payload),
                        SealState::Interrupted => SessionState::Interrupted(payload),
                    }
                }
            },
        };
        Report {
            session: self.session,
            state,
            chunks: self.expected_seq,
            totals: self.dek.is_some().then_some(self.totals),
            last_digest: self.prev,
            damage: self.damage,
        }
    }
}

impl Damage {
    /// The chunk this damage is about, if it is about one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Damage::ChunkMalformed { seq, .. }
            | Damage::ChunkSignature { seq }
            | Damage::ChunkForeign { seq, .. }
            | Damage::ChunkMisplaced { seq, .. }
            | Damage::ChainBroken { seq }
            | Damage::ChunkContent { seq, .. } => Some(*seq),
            Damage::MetaAltered => Some(0),
            _ => None,
        }
    }
}
