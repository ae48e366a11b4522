//! Listing sessions for `kubetape ls`: newest first, with what can be learned cheaply (metadata,
//! the seal's summary, the last chunk's plaintext header), without decrypting anything.

use futures::StreamExt;

use super::{Store, StoreError};
use crate::chunk::{ChunkHeader, HEADER_LEN};
use crate::layout;
use crate::seal::{ExitInfo, ForwardTotals, StreamBytes};
use crate::session::{SessionId, SessionMeta};

/// One line of `kubetape ls`. Informational: `kubetape verify` is what establishes trust.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionSummary {
    pub session: SessionId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<SessionMeta>,
    /// `sealed`, `interrupted`, `open`, or `unreadable`.
    pub state: String,
    pub chunks: u64,
    pub duration_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<StreamBytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
    /// A port-forward's connections and bytes, from its seal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_forward: Option<ForwardTotals>,
    /// Bytes the session occupies in the store.
    pub stored_bytes: u64,
}

/// Session ids in the store, newest first (ids are UUIDv7, so name order is start order).
pub async fn list_sessions(store: &Store) -> Result<Vec<SessionId>, StoreError> {
    let mut ids: Vec<SessionId> = store
        .list_dirs(layout::SESSIONS)
        .await?
        .iter()
        .filter_map(|name| name.parse().ok())
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids)
}

/// Writes the `ended/` marker of a session just sealed. Best effort by design: the seal is what
/// counts, and a follower that misses the marker finds the session on its next full listing.
pub(crate) async fn mark_ended(store: &Store, id: SessionId, sealed_at_us: u64) {
    let _ = store
        .put_create(
            &layout::ended(&layout::day_of(sealed_at_us), id),
            Vec::new(),
        )
        .await;
}

/// Sessions sealed on `since_day` (`yyyy-mm-dd`, UTC) or later, from the `ended/` markers:
/// what a follower of the store lists instead of every session.
pub async fn ended_since(store: &Store, since_day: &str) -> Result<Vec<SessionId>, StoreError> {
    let mut ids = Vec::new();
    for day in store.list_dirs(layout::ENDED).await? {
        if day.as_str() < since_day {
            continue;
        }
        let dir = format!("{}/{day}", layout::ENDED);
        ids.extend(
            store
                .list(&dir)
                .await?
                .iter()
                .filter_map(|(name, _)| name.parse::<SessionId>().ok()),
        );
    }
    Ok(ids)
}

/// Summaries of many sessions, fetched concurrently, in the order given.
pub async fn summarize_all(
    store: &Store,
    ids: &[SessionId],
) -> Vec<Result<SessionSummary, StoreError>> {
    futures::stream::iter(ids.iter().map(|id| summarize(store, *id)))
        .buffered(16)
        .collect()
        .await
}

/// What can be said about one session without keys.
pub async fn summarize(store: &Store, id: SessionId) -> Result<SessionSummary, StoreError> {
    let objects = store.list(&layout::session_dir(id)).await?;
    let stored_bytes = objects.iter().map(|(_, size)| size).sum();
    let last_chunk = objects
        .iter()
        .filter_map(|(name, _)| {
            name.strip_prefix("chunks/")
                .and_then(layout::parse_chunk_name)
        })
        .max();
    let chunks = last_chunk.map_or(0, |s| s + 1);
    let meta = store
        .get_opt(&layout::meta(id))
        .await?
        .and_then(|b| serde_json::from_slice::<SessionMeta>(&b).ok());
    let mut summary = SessionSummary {
        session: id,
        state: if meta.is_some() { "open" } else { "unreadable" }.to_string(),
        meta,
        chunks,
        duration_us: 0,
        bytes: None,
        exit: None,
        port_forward: None,
        stored_bytes,
    };
    if let Some(seal) = store.get_opt(&layout::seal(id)).await? {
        // Read the payload without checking the signature: this is a listing, not a verdict.
        #[derive(serde::Deserialize)]
        struct Envelope {
            payload: String,
        }
        if let Some(p) = serde_json::from_slice::<Envelope>(&seal)
            .ok()
            .and_then(|e| serde_json::from_str::<crate::seal::SealPayload>(&e.payload).ok())
        {
            summary.state = serde_json::to_value(p.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            summary.duration_us = p.duration_us;
            summary.bytes = Some(p.bytes);
            summary.exit = p.exit;
            summary.port_forward = p.port_forward;
            return Ok(summary);
        }
        summary.state = "unreadable".into();
    }
    if let Some(seq) = last_chunk
        && let Ok(bytes) = store
            .get_range(&layout::chunk(id, seq), 0..HEADER_LEN as u64)
            .await
        && let Ok(header) = ChunkHeader::parse(&bytes)
    {
        summary.duration_us = header.last_us;
    }
    Ok(summary)
}
