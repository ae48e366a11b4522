//! Verification: decides whether a session is intact and, when it is not, says precisely what is
//! wrong and where. Pure logic over object bytes; [`crate::store`] feeds it from a store.
//!
//! What needs which key:
//! - the chain (order, gaps, splices, metadata binding) needs no key at all;
//! - which chunk is damaged, and the seal, need the signing **public** key;
//! - decrypting every chunk and checking the seal's byte counts needs the data key (so the KEK).
//!
//! Chunks the recorder gave up on (see [`crate::gap`]) are not damage when a gap declares them:
//! the signed seal's `gaps` (known before the chunks are read, so any key will do), or, in a
//! session not sealed yet, the gap event that opens the chunk after them (needs the data key).
//! Either way the chain is still checked across the gap, through the gap's `resume` digest, and
//! the report lists the gaps so that a session with a loss never reads as an ordinary intact one.

use crate::builder::Totals;
use crate::chunk::{ChainDigest, ChunkError, SealedChunk};
use crate::event::{Event, EventKind};
use crate::gap::Gap;
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
    /// Losses the recorder declared (in its seal, or in a gap event of an unsealed session):
    /// not damage, but not a complete recording either.
    pub gaps: Vec<Gap>,
}

impl Report {
    /// Nothing is damaged (declared gaps are not damage: see [`Self::complete`]).
    pub fn intact(&self) -> bool {
        self.damage.is_empty()
    }

    /// Intact, and nothing was declared lost.
    pub fn complete(&self) -> bool {
        self.intact() && self.gaps.is_empty()
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
    /// Totals of each decrypted chunk, by sequence number: summed at the end without the
    /// chunks a gap covers (a seal's counts leave them out).
    chunk_totals: Vec<(u64, Totals)>,
    damage: Vec<Damage>,
    /// Gaps the (signed) seal declares, known before the chunks are read.
    declared: Vec<Gap>,
    /// Gaps accepted from gap events, for missing runs the seal does not declare.
    found_gaps: Vec<Gap>,
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
            chunk_totals: Vec::new(),
            damage: Vec::new(),
            declared: Vec::new(),
            found_gaps: Vec::new(),
        }
    }

    /// Reads the gaps a stored seal declares, before the chunks, so that the chunks they cover
    /// are not reported missing. A seal that does not verify declares nothing ([`Self::finish`]
    /// reports it).
    pub fn expect_seal(&mut self, seal: &[u8]) {
        if let Ok(payload) = SealPayload::verify(seal, self.key)
            && payload.session == self.session
        {
            self.declared = payload.gaps;
        }
    }

    /// Records damage found outside the chunk stream (metadata problems, say).
    pub fn note(&mut self, damage: Damage) {
        self.damage.push(damage);
    }

    /// Checks the chunk stored under sequence number `object_seq`. Returns its events when the
    /// chunk verified and a data key was given.
    pub fn chunk(&mut self, object_seq: u64, bytes: &[u8]) -> Option<Vec<Event>> {
        // A run of chunks absent before this one: damage, unless a gap declares it (decided
        // once this chunk's link, and perhaps its gap event, are known).
        let absent = (object_seq > self.expected_seq).then(|| (self.expected_seq, object_seq - 1));
        self.expected_seq = object_seq + 1;
        let report_absent = |damage: &mut Vec<Damage>| {
            if let Some((from, to)) = absent {
                damage.push(Damage::ChunksMissing { from, to });
            }
        };
        let chunk = match SealedChunk::decode(bytes) {
            Ok(c) => c,
            Err(error) => {
                report_absent(&mut self.damage);
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
        } else {
            None
        };
        if let Some(d) = finding {
            report_absent(&mut self.damage);
            // Re-synchronise on this chunk, so one bad chunk is reported once.
            self.prev = digest;
            self.damage.push(d);
            return None;
        }
        // Authentic: open it now (with the key), as a gap event may explain an absent run.
        let opened = self.dek.as_ref().map(|dek| chunk.open(dek));
        let link_finding = match absent {
            Some((from, to)) => {
                let by_seal = self.declared.iter().any(|g| g.explains(from, to, &h.prev));
                let by_event = || match &opened {
                    Some(Ok(events)) => {
                        opening_gap(events).filter(|g| g.explains(from, to, &h.prev))
                    }
                    _ => None,
                };
                if by_seal {
                    None
                } else if let Some(gap) = by_event() {
                    if !self.found_gaps.contains(&gap) {
                        self.found_gaps.push(gap);
                    }
                    None
                } else {
                    // The chain break at this chunk is the same finding; not reported twice.
                    Some(Damage::ChunksMissing { from, to })
                }
            }
            None if !h.prev.ct_eq(&self.prev) => {
                // Right after a damaged chunk the break is already reported.
                let after_damage = matches!(self.damage.last(), Some(d) if d.seq() == Some(object_seq.wrapping_sub(1)));
                if after_damage {
                    None
                } else if object_seq == 0 {
                    Some(Damage::MetaAltered)
                } else {
                    Some(Damage::ChainBroken { seq: object_seq })
                }
            }
            None => None,
        };
        self.prev = digest;
        if let Some(d) = link_finding {
            self.damage.push(d);
            return None;
        }
        match opened? {
            Ok(events) => {
                let mut totals = Totals::default();
                for e in &events {
                    totals.count(e);
                    // Every declared loss is reported, also those no missing chunk stands for.
                    if let EventKind::Gap { json } = &e.kind
                        && let Ok(gap) = Gap::parse(json)
                        && !self.found_gaps.contains(&gap)
                    {
                        self.found_gaps.push(gap);
                    }
                }
                totals.chunks = 1;
                self.chunk_totals.push((object_seq, totals));
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

    /// Totals of the decrypted chunks, leaving out those a gap gave up on.
    fn totals(&self, gaps: &[Gap]) -> Totals {
        let mut sum = Totals::default();
        for (seq, t) in &self.chunk_totals {
            sum.last_us = sum.last_us.max(t.last_us);
            if gaps.iter().any(|g| g.covers(*seq)) {
                continue;
            }
            sum.bytes.stdin += t.bytes.stdin;
            sum.bytes.stdout += t.bytes.stdout;
            sum.bytes.stderr += t.bytes.stderr;
            sum.bytes.port_forward += t.bytes.port_forward;
            sum.forward.connections += t.forward.connections;
            sum.forward.refused += t.forward.refused;
            sum.forward.to_pod = sum.forward.to_pod.saturating_add(t.forward.to_pod);
            sum.forward.from_pod = sum.forward.from_pod.saturating_add(t.forward.from_pod);
            sum.events += t.events;
            sum.chunks += t.chunks;
        }
        sum
    }

    /// Checks the seal (if any) against everything seen.
    pub fn finish(mut self, seal: Option<&[u8]>) -> Report {
        let mut gaps = std::mem::take(&mut self.found_gaps);
        let mut seal_totals = None;
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
                        for gap in &payload.gaps {
                            if !gaps.contains(gap) {
                                gaps.push(gap.clone());
                            }
                        }
                        let totals = self.totals(&gaps);
                        if self.dek.is_some()
                            && self.damage.is_empty()
                            && payload.bytes != totals.bytes
                        {
                            self.damage.push(Damage::SealBytes {
                                sealed: payload.bytes,
                                found: totals.bytes,
                            });
                        }
                        // Seals written before port-forward totals existed have none to check.
                        if let Some(sealed) = payload.port_forward
                            && self.dek.is_some()
                            && self.damage.is_empty()
                            && sealed != totals.forward
                        {
                            self.damage.push(Damage::SealForward {
                                sealed,
                                found: totals.forward,
                            });
                        }
                        seal_totals = Some(totals);
                    }
                    match payload.state {
                        SealState::Sealed => SessionState::Sealed(payload),
                        SealState::Interrupted => SessionState::Interrupted(payload),
                    }
                }
            },
        };
        let totals = seal_totals.unwrap_or_else(|| self.totals(&gaps));
        Report {
            session: self.session,
            state,
            chunks: self.expected_seq,
            totals: self.dek.is_some().then_some(totals),
            last_digest: self.prev,
            damage: self.damage,
            gaps,
        }
    }
}

/// The gap an opened chunk starts with, if it starts with one that parses.
fn opening_gap(events: &[Event]) -> Option<Gap> {
    match events.first().map(|e| &e.kind) {
        Some(EventKind::Gap { json }) => Gap::parse(json).ok(),
        _ => None,
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
