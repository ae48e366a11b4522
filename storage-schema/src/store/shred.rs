//! Crypto-shredding and re-wrapping: the data-key objects of a stream, the only things that
//! ever change after a stream is written.
//!
//! ```text
//! <root>/<id>/dek.json            the data key wrapped by the KEK current when it was recorded
//! <root>/<id>/dek-<kek id>.json   the same key re-wrapped by a newer KEK (`keys rewrap`)
//! shredded/<id>.json              {"session","by","reason","at_us","keks":[…]}: who shredded it,
//!                                 when and why (one create-only name per stream)
//! ```
//!
//! **Shredding** ([`shred`]) writes the record first, then deletes every data-key object: a
//! crash in between leaves a record and a data key, and running it again finishes the job (the
//! record's create-only put tells the second run it is a retry). Readers refuse a stream with a
//! record whether or not a data key is left. Readers that find no
//! data key look for the record and say "shredded on … by … because …" instead of "missing".
//! What stays — metadata, the signed, chained ciphertext chunks, the seal — still proves with
//! the public key alone that the recording existed, was complete and was not altered.
//!
//! A held stream ([`super::holds`]) is never shredded.
//!
//! **Re-wrapping** ([`rewrap`]) moves a stream's data key from a retiring KEK to the current
//! one: the new wrapping is written beside the old with a create-only put, read back and
//! unwrapped, and only then are older wrappings deleted, so there is never a moment with no
//! wrapping. Afterwards the retiring KEK file can be destroyed ([`streams_needing_kek`] says
//! whether anything still needs it).
//!
//! On a versioned S3 bucket a deleted object's old versions remain until a lifecycle rule
//! expires them: shredding there is as final as that rule (see FORMAT.md).

use std::collections::BTreeMap;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use super::holds::{Holds, HoldsError};
use super::ledger::{self, Ledger, LedgerError};
use super::{Store, StoreError, VerifyError, locate};
use crate::keys::{DataKey, KeyError, Keyring, WrappedKey};
use crate::layout::{self, StreamDir};
use crate::session::SessionId;
use crate::time::{format_unix_micros, unix_micros_now};

/// The record that outlives a shredded stream's data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShredRecord {
    pub session: SessionId,
    /// Who shredded it (`cli:<login>`, or the `--as` name given).
    pub by: String,
    pub reason: String,
    pub at_us: u64,
    /// The KEKs whose wrappings were destroyed.
    #[serde(default)]
    pub keks: Vec<String>,
}

impl ShredRecord {
    /// `shredded on <time> by <who> because <reason>`: what readers print.
    pub fn describe(&self) -> String {
        format!(
            "shredded on {} by {} because {}",
            format_unix_micros(self.at_us),
            self.by,
            self.reason
        )
    }
}

impl ledger::Entry for ShredRecord {
    fn is_entry(name: &str) -> bool {
        name.strip_suffix(".json")
            .is_some_and(|id| id.parse::<SessionId>().is_ok())
    }

    fn decode(name: &str, bytes: &[u8]) -> Result<Self, String> {
        let record: ShredRecord = ledger::decode_json(bytes)?;
        if layout::shredded(record.session) != name {
            return Err(format!(
                "names session {} but is stored as {name}",
                record.session
            ));
        }
        Ok(record)
    }
}

/// Why a stream could not be shredded or re-wrapped.
#[derive(Debug, thiserror::Error)]
pub enum ShredError {
    #[error("session {0} not found in the store")]
    NotFound(SessionId),
    #[error("session {session} is under legal {hold}; lift the hold first")]
    Held { session: SessionId, hold: String },
    #[error(transparent)]
    Holds(#[from] HoldsError),
    #[error("a reason is required")]
    NoReason,
    #[error(
        "session {0} has no seal: it may still be recording (`kubetape seal` it first if its recorder died)"
    )]
    Open(SessionId),
    #[error("shred ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("session {session}: {key} is not a wrapped data key: {reason}")]
    BadWrapping {
        session: SessionId,
        key: String,
        reason: String,
    },
    #[error(
        "session {session}: the re-wrapped key did not unwrap to the same data key; nothing was deleted"
    )]
    RewrapMismatch { session: SessionId },
    #[error("session {0} has no data key and no shred record: damaged, or shredded by hand")]
    NoDataKey(SessionId),
}

/// The shred ledger of `store`.
pub fn ledger(store: &Store) -> Ledger {
    Ledger::new(store.clone(), layout::SHREDDED)
}

/// What [`shred`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shredded {
    /// This call wrote the record and deleted the data key.
    Now(ShredRecord),
    /// A record already existed (an earlier or concurrent shred); any data key left behind by
    /// an interrupted one was deleted.
    Already(ShredRecord),
}

/// Crypto-shreds stream `id`, unless a legal hold covers it.
pub async fn shred(
    store: &Store,
    id: SessionId,
    by: &str,
    reason: &str,
) -> Result<Shredded, ShredError> {
    if reason.trim().is_empty() {
        return Err(ShredError::NoReason);
    }
    let dir = locate(store, id).await?.ok_or(ShredError::NotFound(id))?;
    let meta = store
        .get_opt(&dir.meta())
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok());
    if !store.exists(&dir.seal()).await? {
        return Err(ShredError::Open(id));
    }
    let holds = Holds::load(store).await?;
    if let Some(hold) = holds.covering(id, meta.as_ref()) {
        return Err(ShredError::Held {
            session: id,
            hold: hold.label(),
        });
    }
    let wrappings = data_keys(store, dir).await?;
    let record = ShredRecord {
        session: id,
        by: by.to_string(),
        reason: reason.to_string(),
        at_us: unix_micros_now(),
        keks: wrappings.iter().map(|(_, w)| w.kek.clone()).collect(),
    };
    let ledger = ledger(store);
    let outcome = match ledger.append(&layout::shredded(id), &record).await {
        Ok(()) => Shredded::Now(record),
        Err(LedgerError::AlreadyExists { .. }) => {
            let existing = ledger
                .get::<ShredRecord>(&layout::shredded(id))
                .await?
                .ok_or(ShredError::NotFound(id))?;
            Shredded::Already(existing)
        }
        Err(e) => return Err(e.into()),
    };
    for (key, _) in wrappings {
        store.delete(&key).await?;
    }
    Ok(outcome)
}

/// The shred record of stream `id`, if it was shredded.
pub async fn record(store: &Store, id: SessionId) -> Result<Option<ShredRecord>, LedgerError> {
    ledger(store).get(&layout::shredded(id)).await
}

/// Every shred record, by session (one listing plus one read per shredded stream). Records
/// that do not decode are returned apart, by key.
pub async fn all(
    store: &Store,
) -> Result<(BTreeMap<SessionId, ShredRecord>, Vec<String>), LedgerError> {
    let mut out = BTreeMap::new();
    let mut bad = Vec::new();
    for (_, r) in ledger(store).read_after::<ShredRecord>(None).await? {
        match r {
            Ok(r) => {
                out.insert(r.session, r);
            }
            Err(e) => bad.push(e.to_string()),
        }
    }
    Ok((out, bad))
}

/// The data-key objects of the stream in `dir`: (store key, wrapping), `dek.json` first.
/// Listed after `dek` so that a stream's chunks are not listed with them.
pub async fn data_keys(
    store: &Store,
    dir: StreamDir,
) -> Result<Vec<(String, WrappedKey)>, ShredError> {
    let names: Vec<String> = store
        .list_after(&dir.dir(), Some("dek"))
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| layout::is_dek_name(name))
        .collect();
    let mut out = Vec::new();
    for name in names {
        let key = format!("{}/{name}", dir.dir());
        let Some(bytes) = store.get_opt(&key).await? else {
            continue;
        };
        let wrapped: WrappedKey =
            serde_json::from_slice(&bytes).map_err(|e| ShredError::BadWrapping {
                session: dir.id(),
                key: key.clone(),
                reason: e.to_string(),
            })?;
        out.push((key, wrapped));
    }
    out.sort_by_key(|(key, _)| !key.ends_with("/dek.json"));
    Ok(out)
}

/// Loads the data key of the stream in `dir` with whichever of its wrappings the keyring can
/// unwrap; a stream without any says who shredded it, when and why.
pub(super) async fn load_data_key(
    store: &Store,
    keyring: &Keyring,
    dir: StreamDir,
) -> Result<DataKey, VerifyError> {
    let id = dir.id();
    // A shred record forbids reading even where a data key is left (a shred interrupted
    // before its deletes, or a store that refused them: Object Lock).
    match record(store, id).await {
        Ok(Some(r)) => return Err(VerifyError::Shredded(id, r.describe())),
        Ok(None) => {}
        Err(e) => {
            return Err(VerifyError::DataKey {
                session: id,
                reason: format!("cannot tell whether it was shredded: {e}"),
            });
        }
    }
    // The common case in one read: the original wrapping, by a KEK the keyring holds.
    if let Some(bytes) = store.get_opt(&dir.dek()).await? {
        let wrapped: WrappedKey =
            serde_json::from_slice(&bytes).map_err(|e| VerifyError::DataKey {
                session: id,
                reason: e.to_string(),
            })?;
        if keyring.kek(&wrapped.kek).is_ok() {
            return Ok(keyring.unwrap_dek(id, &wrapped)?);
        }
    }
    let wrappings = data_keys(store, dir)
        .await
        .map_err(|e| VerifyError::DataKey {
            session: id,
            reason: e.to_string(),
        })?;
    if wrappings.is_empty() {
        return Err(VerifyError::DataKey {
            session: id,
            reason:
                "dek.json is missing and no shred record explains it (deleted by hand, or damaged)"
                    .into(),
        });
    }
    let mut last = None;
    // Newest KEK first: after a rewrap that is the one the keyring still has.
    for (_, wrapped) in wrappings.iter().rev() {
        match keyring.unwrap_dek(id, wrapped) {
            Ok(dek) => return Ok(dek),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one wrapping").into())
}

/// What [`rewrap`] did to one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrapped {
    /// Its key is now wrapped by `to` only (older wrappings, by `from`, deleted).
    Moved { from: Vec<String>, to: String },
    /// Already wrapped by the current KEK, or by none of the retiring ones.
    Unchanged,
    /// No data key: shredded.
    Shredded,
}

/// Re-wraps the data key of the stream in `dir` with the keyring's current KEK when every
/// wrapping it has is by a KEK for which `retiring` is true.
pub async fn rewrap(
    store: &Store,
    keyring: &Keyring,
    dir: StreamDir,
    retiring: impl Fn(&str) -> bool,
) -> Result<Rewrapped, ShredError> {
    let id = dir.id();
    let current = keyring.current_kek()?;
    let wrappings = data_keys(store, dir).await?;
    if wrappings.is_empty() {
        return if record(store, id).await?.is_some() {
            Ok(Rewrapped::Shredded)
        } else {
            Err(ShredError::NoDataKey(id))
        };
    }
    let has_current = wrappings.iter().any(|(_, w)| w.kek == current.id());
    let retired: Vec<&WrappedKey> = wrappings
        .iter()
        .map(|(_, w)| w)
        .filter(|w| w.kek != current.id() && retiring(&w.kek))
        .collect();
    let Some(first) = retired.first() else {
        return Ok(Rewrapped::Unchanged);
    };
    let dek = keyring.unwrap_dek(id, first)?;
    if !has_current {
        let wrapped = current.wrap(id, &dek)?;
        let body = serde_json::to_vec_pretty(&wrapped).expect("a wrapped key serializes");
        match store
            .put_create(&dir.rewrapped_dek(current.id()), body)
            .await
        {
            Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Read back what the store holds now and prove it opens to the same key before deleting
    // anything: a torn or foreign object must not become the only wrapping.
    let stored = data_keys(store, dir).await?;
    let back = stored
        .iter()
        .find(|(_, w)| w.kek == current.id())
        .ok_or(ShredError::RewrapMismatch { session: id })?;
    let reopened = keyring.unwrap_dek(id, &back.1)?;
    if !bool::from(reopened.bytes().ct_eq(dek.bytes())) {
        return Err(ShredError::RewrapMismatch { session: id });
    }
    let mut from = Vec::new();
    for (key, w) in &stored {
        if w.kek != current.id() && retiring(&w.kek) {
            store.delete(key).await?;
            from.push(w.kek.clone());
        }
    }
    Ok(Rewrapped::Moved {
        from,
        to: current.id().to_string(),
    })
}

/// Streams whose data key only `kek` can unwrap (nothing else wraps it): what must be
/// re-wrapped before `kek` may be destroyed. Reads every stream's data-key objects.
pub async fn streams_needing_kek(store: &Store, kek: &str) -> Result<Vec<SessionId>, ShredError> {
    let dirs = super::list_streams(store).await?;
    let found: Vec<Result<Option<SessionId>, ShredError>> =
        futures::stream::iter(dirs.into_iter().map(|dir| async move {
            let keys = data_keys(store, dir).await?;
            let only_by_kek = !keys.is_empty() && keys.iter().all(|(_, w)| w.kek == kek);
            Ok(only_by_kek.then_some(dir.id()))
        }))
        .buffered(16)
        .collect()
        .await;
    let mut out = Vec::new();
    for f in found {
        if let Some(id) = f? {
            out.push(id);
        }
    }
    Ok(out)
}
