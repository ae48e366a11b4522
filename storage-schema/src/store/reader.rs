//! Reading a session back: streaming, one chunk in memory at a time, with random access by
//! chunk. Every chunk read is verified (signature, session, position, chain link) before it is
//! decrypted, so a reader never shows tampered data as if it were the recording.

use super::verify::{LoadedMeta, load_dek, load_meta, load_meta_at};
use super::{Store, StoreError};
use crate::chunk::{ChainDigest, ChunkError, ChunkHeader, HEADER_LEN, SealedChunk};
use crate::commands::{self, CommandEntry};
use crate::event::Event;
use crate::keys::{DataKey, KeyError, Keyring, PublicKey};
use crate::layout::{self, StreamDir};
use crate::session::{SessionId, SessionMeta};
use crate::store::verify::VerifyError;
use crate::verify::Damage;

/// Why a session could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Open(#[from] VerifyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("metadata unreadable: {0}")]
    Meta(String),
    #[error("chunk index {0} is past the end ({1} chunks)")]
    NoSuchChunk(usize, usize),
    #[error("session is damaged: {0} (run `kubetape verify` for the full report)")]
    Damaged(Damage),
}

/// An open session.
#[derive(Debug)]
pub struct SessionReader {
    store: Store,
    dir: StreamDir,
    meta: SessionMeta,
    meta_bytes: bytes::Bytes,
    public: PublicKey,
    dek: DataKey,
    seqs: Vec<u64>,
}

impl SessionReader {
    /// Opens stream `id`, wherever it lies (a session, or an audit stream in either place).
    pub async fn open(store: &Store, keyring: &Keyring, id: SessionId) -> Result<Self, ReadError> {
        let (dir, loaded) = load_meta(store, id).await?;
        Self::open_loaded(store, keyring, dir, loaded).await
    }

    /// Opens the stream in `dir` (a listing already said where it is).
    pub async fn open_at(
        store: &Store,
        keyring: &Keyring,
        dir: StreamDir,
    ) -> Result<Self, ReadError> {
        let loaded = load_meta_at(store, dir).await?;
        Self::open_loaded(store, keyring, dir, loaded).await
    }

    async fn open_loaded(
        store: &Store,
        keyring: &Keyring,
        dir: StreamDir,
        (meta_bytes, meta): LoadedMeta,
    ) -> Result<Self, ReadError> {
        let meta = meta.map_err(ReadError::Meta)?;
        let public = keyring.public_key(&meta.keys.signing)?.clone();
        let dek = load_dek(store, keyring, dir).await?;
        let seqs = store
            .list(&dir.chunks_dir())
            .await?
            .iter()
            .filter_map(|(name, _)| layout::parse_chunk_name(name))
            .collect();
        Ok(Self {
            store: store.clone(),
            dir,
            meta,
            meta_bytes,
            public,
            dek,
            seqs,
        })
    }

    /// Where the stream's objects are.
    pub fn dir(&self) -> StreamDir {
        self.dir
    }

    /// The session's commands object, checked against the signed seal, or `None` when the
    /// session has none (not sealed yet, sealed as interrupted, or recorded without extraction).
    pub async fn commands(&self) -> Result<Option<Vec<CommandEntry>>, ReadError> {
        let Some(seal) = self.store.get_opt(&self.dir.seal()).await? else {
            return Ok(None);
        };
        let payload = crate::seal::SealPayload::verify(&seal, &self.public)
            .map_err(|e| ReadError::Damaged(Damage::Seal(e)))?;
        if payload.session != self.meta.session {
            return Err(ReadError::Damaged(Damage::SealForeign {
                owner: payload.session,
            }));
        }
        let Some(reference) = payload.commands else {
            return Ok(None);
        };
        let bytes = self
            .store
            .get_opt(&self.dir.commands())
            .await?
            .ok_or(ReadError::Damaged(Damage::CommandsMissing {
                count: reference.count,
            }))?;
        let damaged = |e| ReadError::Damaged(Damage::Commands(e));
        commands::check(&bytes, &reference).map_err(damaged)?;
        commands::decode(&bytes, self.meta.session, &self.dek)
            .map(Some)
            .map_err(damaged)
    }

    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }

    pub fn chunk_count(&self) -> usize {
        self.seqs.len()
    }

    /// Reads the plaintext header of chunk `index` (time range, counts) without decrypting.
    pub async fn chunk_header(&self, index: usize) -> Result<ChunkHeader, ReadError> {
        let seq = *self
            .seqs
            .get(index)
            .ok_or(ReadError::NoSuchChunk(index, self.seqs.len()))?;
        let bytes = self
            .store
            .get_range(&self.dir.chunk(seq), 0..HEADER_LEN as u64)
            .await?;
        ChunkHeader::parse(&bytes)
            .map_err(|error| ReadError::Damaged(Damage::ChunkMalformed { seq, error }))
    }

    /// The events of chunk `index`, verified. The chain link is checked against the previous
    /// chunk when `prev` is given (sequential reads), and otherwise only its own authenticity.
    async fn chunk_checked(
        &self,
        index: usize,
        prev: Option<ChainDigest>,
    ) -> Result<(Vec<Event>, ChainDigest), ReadError> {
        let seq = *self
            .seqs
            .get(index)
            .ok_or(ReadError::NoSuchChunk(index, self.seqs.len()))?;
        let id = self.meta.session;
        let damaged = |d| Err(ReadError::Damaged(d));
        if seq != index as u64 {
            return damaged(Damage::ChunksMissing {
                from: index as u64,
                to: seq - 1,
            });
        }
        let bytes = self.store.get(&self.dir.chunk(seq)).await?;
        let chunk = SealedChunk::decode(&bytes)
            .map_err(|error| ReadError::Damaged(Damage::ChunkMalformed { seq, error }))?;
        let h = &chunk.header;
        if !chunk.signature_valid(&self.public) {
            return damaged(Damage::ChunkSignature { seq });
        }
        if h.session != id {
            return damaged(Damage::ChunkForeign {
                seq,
                owner: h.session,
            });
        }
        if h.seq != seq {
            return damaged(Damage::ChunkMisplaced { seq, holds: h.seq });
        }
        if let Some(prev) = prev
            && !h.prev.ct_eq(&prev)
        {
            return damaged(if seq == 0 {
                Damage::MetaAltered
            } else {
                Damage::ChainBroken { seq }
            });
        }
        let events = chunk
            .open(&self.dek)
            .map_err(|error: ChunkError| ReadError::Damaged(Damage::ChunkContent { seq, error }))?;
        Ok((events, chunk.digest()))
    }

    /// Random access: the verified events of chunk `index`.
    pub async fn chunk_events(&self, index: usize) -> Result<Vec<Event>, ReadError> {
        let prev = (index == 0).then(|| ChainDigest::genesis(self.meta.session, &self.meta_bytes));
        Ok(self.chunk_checked(index, prev).await?.0)
    }

    /// Reads every event in order, one chunk in memory at a time, checking the chain as it goes
    /// and, at the end, that the chain ends where the seal says ([`SessionReader::check_end`]):
    /// a reader that got to the end has read the whole recording, not a truncated one.
    pub async fn for_each_event(&self, mut f: impl FnMut(&Event)) -> Result<(), ReadError> {
        let mut prev = ChainDigest::genesis(self.meta.session, &self.meta_bytes);
        for index in 0..self.seqs.len() {
            let (events, digest) = self.chunk_checked(index, Some(prev)).await?;
            events.iter().for_each(&mut f);
            prev = digest;
        }
        self.check_end(&prev).await
    }

    /// Checks the end of a chain read whole up to `last` (the digest of the last chunk, or the
    /// genesis digest when there are none) against the seal: its signature, its session, its
    /// chunk count and final digest. Without a seal the stream is live, unless the store's
    /// `ended/` feed says it ended — then its seal was removed.
    pub async fn check_end(&self, last: &ChainDigest) -> Result<(), ReadError> {
        let damaged = |d| Err(ReadError::Damaged(d));
        let Some(seal) = self.store.get_opt(&self.dir.seal()).await? else {
            return match super::catalog::ended_marker(
                &self.store,
                self.meta.session,
                self.meta.started_at_us,
            )
            .await?
            {
                Some(marker) => damaged(Damage::SealMissing { marker }),
                None => Ok(()),
            };
        };
        let payload = crate::seal::SealPayload::verify(&seal, &self.public)
            .map_err(|e| ReadError::Damaged(Damage::Seal(e)))?;
        if payload.session != self.meta.session {
            return damaged(Damage::SealForeign {
                owner: payload.session,
            });
        }
        let found = self.seqs.len() as u64;
        if payload.chunks != found {
            return damaged(Damage::SealChunkCount {
                sealed: payload.chunks,
                found,
            });
        }
        if payload.final_digest().is_none_or(|d| !d.ct_eq(last)) {
            return damaged(Damage::SealDigest);
        }
        Ok(())
    }
}
