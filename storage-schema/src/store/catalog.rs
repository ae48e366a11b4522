//! Finding streams in the store and listing them for `kubetape ls` and `kubetape audit`: newest
//! first, with what can be learned cheaply (metadata, the seal's summary, the last chunk's
//! plaintext header), without decrypting anything.

use futures::StreamExt;

use super::{Store, StoreError};
use crate::chunk::{ChunkHeader, HEADER_LEN};
use crate::layout::{self, StreamDir, StreamRoot};
use crate::seal::{ExitInfo, ForwardTotals, StreamBytes};
use crate::session::{SessionId, SessionMeta, StreamClass};

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

impl SessionSummary {
    /// The stream's class, when its metadata could be read.
    pub fn class(&self) -> Option<StreamClass> {
        self.meta.as_ref().map(SessionMeta::class)
    }
}

/// Ids under `sessions/`, newest first (ids are UUIDv7, so name order is start order). Older
/// stores hold audit streams there too: a reader that wants sessions only asks each one's class.
pub async fn list_sessions(store: &Store) -> Result<Vec<SessionId>, StoreError> {
    list_ids(store, StreamRoot::Sessions).await
}

/// Every stream under every stream root, newest first (`kubetape verify --all`, resolving id
/// prefixes).
pub async fn list_streams(store: &Store) -> Result<Vec<StreamDir>, StoreError> {
    let mut all = Vec::new();
    for root in StreamRoot::ALL {
        let ids = list_ids(store, root).await?;
        all.extend(ids.into_iter().map(|id| StreamDir::new(root, id)));
    }
    all.sort_unstable_by(|a, b| b.id().cmp(&a.id()).then(a.root().cmp(&b.root())));
    Ok(all)
}

async fn list_ids(store: &Store, root: StreamRoot) -> Result<Vec<SessionId>, StoreError> {
    let mut ids: Vec<SessionId> = store
        .list_dirs(root.prefix())
        .await?
        .iter()
        .filter_map(|name| name.parse().ok())
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids)
}

/// Where stream `id` is, or `None` if no stream root holds its metadata.
pub async fn locate(store: &Store, id: SessionId) -> Result<Option<StreamDir>, StoreError> {
    for root in StreamRoot::ALL {
        let dir = StreamDir::new(root, id);
        if store.exists(&dir.meta()).await? {
            return Ok(Some(dir));
        }
    }
    Ok(None)
}

/// The store's audit streams, newest first, and the streams under `sessions/` whose class could
/// not be learned (their metadata is missing or unreadable: perhaps a damaged audit stream).
#[derive(Debug, Default)]
pub struct AuditStreams {
    pub streams: Vec<StreamDir>,
    pub unknown: Vec<(SessionId, String)>,
}

/// Every audit stream: those under `audit/`, and those older gateways wrote under `sessions/`
/// (found by their metadata's class: one read per session, concurrently). The second part costs
/// as much as reading every session's metadata; it finds nothing new once every gateway writing
/// to the store writes `audit/`, and is kept so that no existing stream is ever missed.
pub async fn list_audit_streams(store: &Store) -> Result<AuditStreams, StoreError> {
    let mut found = AuditStreams {
        streams: list_ids(store, StreamRoot::Audit)
            .await?
            .into_iter()
            .map(|id| StreamDir::new(StreamRoot::Audit, id))
            .collect(),
        unknown: Vec::new(),
    };
    let sessions = list_sessions(store).await?;
    let classes: Vec<_> = futures::stream::iter(
        sessions
            .iter()
            .map(|id| class_at(store, StreamDir::session(*id))),
    )
    .buffered(CONCURRENCY)
    .collect()
    .await;
    for (id, class) in sessions.into_iter().zip(classes) {
        match class {
            Ok(Some(StreamClass::AuditStream)) => found.streams.push(StreamDir::session(id)),
            Ok(Some(StreamClass::Session | StreamClass::PortForward)) => {}
            Ok(None) => found
                .unknown
                .push((id, "metadata missing or unreadable".into())),
            Err(e) => found.unknown.push((id, e.to_string())),
        }
    }
    found
        .streams
        .sort_unstable_by(|a, b| b.id().cmp(&a.id()).then(a.root().cmp(&b.root())));
    Ok(found)
}

/// The class of the stream in `dir`, from its metadata (`None` if that is missing or does not
/// parse).
pub async fn class_at(store: &Store, dir: StreamDir) -> Result<Option<StreamClass>, StoreError> {
    Ok(store
        .get_opt(&dir.meta())
        .await?
        .and_then(|b| serde_json::from_slice::<SessionMeta>(&b).ok())
        .map(|m| m.class()))
}

/// Streams read from the store at once (S3 latency hides behind concurrency).
const CONCURRENCY: usize = 16;

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

/// The `ended/` marker of stream `id`, if one exists on the day it started or later: proof that
/// it was sealed once, whatever became of its seal. One listing of the days, then one lookup per
/// day since it started (a session ends within a day or two of starting, so the usual cost is
/// a couple of requests; this is only asked when a seal is missing).
pub async fn ended_marker(
    store: &Store,
    id: SessionId,
    started_at_us: u64,
) -> Result<Option<String>, StoreError> {
    let first = layout::day_of(started_at_us);
    let mut days = store.list_dirs(layout::ENDED).await?;
    days.retain(|d| *d >= first);
    days.sort();
    for day in days {
        let marker = layout::ended(&day, id);
        if store.exists(&marker).await? {
            return Ok(Some(marker));
        }
    }
    Ok(None)
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
        .buffered(CONCURRENCY)
        .collect()
        .await
}

/// What can be said about one stream without keys, found by id wherever it lies.
pub async fn summarize(store: &Store, id: SessionId) -> Result<SessionSummary, StoreError> {
    // Look for the metadata under each root in turn: one read for a session, as before.
    let mut meta_bytes = None;
    let mut dir = StreamDir::session(id);
    for root in StreamRoot::ALL {
        let here = StreamDir::new(root, id);
        if let Some(bytes) = store.get_opt(&here.meta()).await? {
            (dir, meta_bytes) = (here, Some(bytes));
            break;
        }
    }
    summarize_loaded(store, dir, meta_bytes).await
}

/// [`summarize`] for the stream in `dir`.
pub async fn summarize_at(store: &Store, dir: StreamDir) -> Result<SessionSummary, StoreError> {
    let meta_bytes = store.get_opt(&dir.meta()).await?;
    summarize_loaded(store, dir, meta_bytes).await
}

async fn summarize_loaded(
    store: &Store,
    dir: StreamDir,
    meta_bytes: Option<bytes::Bytes>,
) -> Result<SessionSummary, StoreError> {
    let id = dir.id();
    let objects = store.list(&dir.dir()).await?;
    let stored_bytes = objects.iter().map(|(_, size)| size).sum();
    let last_chunk = objects
        .iter()
        .filter_map(|(name, _)| {
            name.strip_prefix("chunks/")
                .and_then(layout::parse_chunk_name)
        })
        .max();
    let chunks = last_chunk.map_or(0, |s| s + 1);
    let meta = meta_bytes.and_then(|b| serde_json::from_slice::<SessionMeta>(&b).ok());
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
    if let Some(seal) = store.get_opt(&dir.seal()).await? {
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
        && let Ok(bytes) = store.get_range(&dir.chunk(seq), 0..HEADER_LEN as u64).await
        && let Ok(header) = ChunkHeader::parse(&bytes)
    {
        summary.duration_us = header.last_us;
    }
    Ok(summary)
}
