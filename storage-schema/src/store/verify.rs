//! Verifying and late-sealing streams (sessions and audit streams) in a store.

use super::{Store, StoreError};
use crate::commands;
use crate::keys::{DataKey, KeyError, Keyring, PublicKey};
use crate::layout::{self, StreamDir, StreamRoot};
use crate::seal::{SealPayload, SealState};
use crate::session::{SessionId, SessionMeta, StreamClass};
use crate::time::unix_micros_now;
use crate::verify::{Damage, Report, SessionState, Verifier};

/// Why verification could not run at all (as opposed to finding damage).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("session {0} not found in the store")]
    NotFound(SessionId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("session {session}: data key object is missing or unreadable: {reason}")]
    DataKey { session: SessionId, reason: String },
    /// The data key was destroyed on purpose; the text is [`super::shred::ShredRecord::describe`].
    #[error("session {0} was {1}; its content can never be read again")]
    Shredded(SessionId, String),
    #[error("session {0} is damaged; refusing to seal it:\n{1}")]
    Damaged(SessionId, String),
    #[error("session {0} is already sealed ({1})")]
    AlreadySealed(SessionId, &'static str),
}

/// Which keys the verifier may use.
#[derive(Debug, Clone, Copy)]
pub enum KeySource<'a> {
    /// A keyring: public keys for signatures and KEKs for the deep, decrypting check.
    Keyring(&'a Keyring),
    /// Only a public key (an auditor's view): chain, signatures and seal, no decryption.
    PublicKey(&'a PublicKey),
}

/// A stream's metadata: its exact bytes, and what they parse to (or why they do not).
pub(super) type LoadedMeta = (bytes::Bytes, Result<SessionMeta, String>);

/// Finds stream `id` under each stream root in turn ([`StreamRoot::ALL`]) and reads its
/// metadata: one read for a session, as before audit streams had a prefix of their own.
pub(super) async fn load_meta(
    store: &Store,
    id: SessionId,
) -> Result<(StreamDir, LoadedMeta), VerifyError> {
    for root in StreamRoot::ALL {
        let dir = StreamDir::new(root, id);
        if let Some(bytes) = store.get_opt(&dir.meta()).await? {
            return Ok((dir, parse_meta(bytes)));
        }
    }
    Err(VerifyError::NotFound(id))
}

pub(super) async fn load_meta_at(store: &Store, dir: StreamDir) -> Result<LoadedMeta, VerifyError> {
    let bytes = store
        .get_opt(&dir.meta())
        .await?
        .ok_or(VerifyError::NotFound(dir.id()))?;
    Ok(parse_meta(bytes))
}

fn parse_meta(bytes: bytes::Bytes) -> LoadedMeta {
    let meta = serde_json::from_slice::<SessionMeta>(&bytes).map_err(|e| e.to_string());
    (bytes, meta)
}

pub(super) async fn load_dek(
    store: &Store,
    keyring: &Keyring,
    dir: StreamDir,
) -> Result<DataKey, VerifyError> {
    super::shred::load_data_key(store, keyring, dir).await
}

/// Verifies one stream, found by id wherever it lies; `Ok` carries the report whether or not
/// damage was found.
pub async fn verify_session(
    store: &Store,
    id: SessionId,
    keys: KeySource<'_>,
) -> Result<Report, VerifyError> {
    let (dir, loaded) = load_meta(store, id).await?;
    verify_loaded(store, dir, loaded, keys).await
}

/// Verifies the stream in `dir` (a listing already said where it is).
pub async fn verify_stream(
    store: &Store,
    dir: StreamDir,
    keys: KeySource<'_>,
) -> Result<Report, VerifyError> {
    let loaded = load_meta_at(store, dir).await?;
    verify_loaded(store, dir, loaded, keys).await
}

async fn verify_loaded(
    store: &Store,
    dir: StreamDir,
    (meta_bytes, meta): LoadedMeta,
    keys: KeySource<'_>,
) -> Result<Report, VerifyError> {
    let id = dir.id();
    let signing_id = match &meta {
        Ok(m) => m.keys.signing.clone(),
        Err(_) => String::new(),
    };
    let (public, dek) = match keys {
        KeySource::PublicKey(pk) => (pk.clone(), None),
        KeySource::Keyring(ring) => {
            let pk = match ring.public_key(&signing_id) {
                Ok(pk) => pk.clone(),
                // Metadata unreadable: the chunks still name nothing; use the newest key.
                Err(_) if meta.is_err() => ring.current_signing_key()?.public(),
                Err(e) => return Err(e.into()),
            };
            let dek = if meta.is_ok() {
                // A shredded stream is verified as an auditor would: chain, signatures and
                // seal, without content (the caller learns it was shredded from its record).
                match load_dek(store, ring, dir).await {
                    Ok(dek) => Some(dek),
                    Err(VerifyError::Shredded(..)) => None,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            (pk, dek)
        }
    };
    let mut verifier = Verifier::new(id, &meta_bytes, &public, dek.clone());
    match &meta {
        Err(e) => verifier.note(Damage::MetaUnreadable(e.clone())),
        Ok(m) if m.session != id => verifier.note(Damage::MetaForeign {
            expected: id,
            found: m.session,
        }),
        Ok(m) if !m.keys.signing.ends_with(&public.fingerprint()) => {
            verifier.note(Damage::WrongPublicKey {
                signed_with: m.keys.signing.clone(),
                given: public.id().to_string(),
            });
            return Ok(verifier.finish(None));
        }
        Ok(_) => {}
    }
    // The seal first: the gaps it declares explain the chunks they cover.
    let seal = store.get_opt(&dir.seal()).await?;
    if let Some(bytes) = &seal {
        verifier.expect_seal(bytes);
    }
    for (name, _) in store.list(&dir.chunks_dir()).await? {
        let Some(seq) = layout::parse_chunk_name(&name) else {
            continue;
        };
        let bytes = store.get(&dir.chunk(seq)).await?;
        verifier.chunk(seq, &bytes);
    }
    let mut report = verifier.finish(seal.as_deref());
    if seal.is_none()
        && let Ok(m) = &meta
        && let Some(marker) = super::catalog::ended_marker(store, id, m.started_at_us).await?
    {
        report.damage.push(Damage::SealMissing { marker });
    }
    if let SessionState::Sealed(payload) | SessionState::Interrupted(payload) = &report.state
        && let Some(reference) = &payload.commands
    {
        match store.get_opt(&dir.commands()).await? {
            None => report.damage.push(Damage::CommandsMissing {
                count: reference.count,
            }),
            Some(bytes) => {
                let checked = commands::check(&bytes, reference).and_then(|()| match &dek {
                    Some(dek) => commands::decode(&bytes, id, dek).map(drop),
                    None => Ok(()),
                });
                if let Err(e) = checked {
                    report.damage.push(Damage::Commands(e));
                }
            }
        }
    }
    Ok(report)
}

/// Seals a stream whose writer died, as `interrupted`, after verifying its whole chain with the
/// data key. Refuses damaged or already sealed streams. Gaps its recorder declared in gap
/// events go into the seal.
pub async fn seal_interrupted(
    store: &Store,
    keyring: &Keyring,
    id: SessionId,
) -> Result<SealPayload, VerifyError> {
    let (dir, loaded) = load_meta(store, id).await?;
    let meta = loaded.1.clone();
    let report = verify_loaded(store, dir, loaded, KeySource::Keyring(keyring)).await?;
    if !report.intact() {
        let list: Vec<String> = report.damage.iter().map(|d| format!("  - {d}")).collect();
        return Err(VerifyError::Damaged(id, list.join("\n")));
    }
    if !matches!(report.state, SessionState::Open) {
        return Err(VerifyError::AlreadySealed(id, report.state.name()));
    }
    let meta = meta.map_err(|e| VerifyError::Damaged(id, e))?;
    let signer = keyring
        .signing_key(&meta.keys.signing)
        .ok_or_else(|| KeyError::NoSigningKey(keyring.dir().to_path_buf()))?;
    let totals = report.totals.unwrap_or_default();
    let payload = SealPayload {
        // The seal describes the session as its writer made it.
        format: meta.format,
        session: id,
        state: SealState::Interrupted,
        chunks: report.chunks,
        final_digest: report.last_digest.to_hex(),
        duration_us: totals.last_us,
        sealed_at_us: unix_micros_now(),
        exit: None,
        bytes: totals.bytes,
        events: totals.events,
        commands: None,
        port_forward: totals.forward_summary(),
        // Losses the recorder declared in gap events before it died (its seal never came).
        gaps: report.gaps.clone(),
    };
    store.put_create(&dir.seal(), payload.sign(signer)).await?;
    match meta.class() {
        StreamClass::Session | StreamClass::PortForward => {
            super::catalog::mark_ended(store, id, payload.sealed_at_us).await;
        }
        StreamClass::AuditStream => {}
    }
    Ok(payload)
}
