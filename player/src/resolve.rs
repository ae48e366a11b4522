//! Session ids as users type them: a full UUID; its short form (the last 8 hex digits, what `ls`
//! shows as ID: the random part, so ids made in the same second still differ); or a unique
//! prefix (ids are UUIDv7, so prefixes encode the start time and collide within a minute; kept
//! because older help and habits use them). Every stream is found, whatever its class (an audit
//! stream can be verified or sealed by id).

use anyhow::bail;
use storage_schema::SessionId;
use storage_schema::layout::StreamDir;
use storage_schema::store::{Store, list_streams, locate};

/// Resolves `text` to one stream's id in `store` (the reader finds where it lies).
pub async fn session(store: &Store, text: &str) -> anyhow::Result<SessionId> {
    match text.parse::<SessionId>() {
        Ok(id) => Ok(id),
        Err(_) => Ok(by_prefix(store, text).await?.id()),
    }
}

/// Resolves `text` to one stream in `store`, and where it lies. A full id that no stream root
/// holds resolves to where a session would be, so the caller's read reports it missing.
pub async fn stream(store: &Store, text: &str) -> anyhow::Result<StreamDir> {
    match text.parse::<SessionId>() {
        Ok(id) => Ok(locate(store, id)
            .await?
            .unwrap_or_else(|| StreamDir::session(id))),
        Err(_) => by_prefix(store, text).await,
    }
}

async fn by_prefix(store: &Store, text: &str) -> anyhow::Result<StreamDir> {
    let wanted = text.trim();
    if wanted.is_empty()
        || !wanted.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        || wanted.chars().filter(char::is_ascii_hexdigit).count() < 4
    {
        bail!(
            "{text:?} is not a session id (expected a UUID, its short form as `kubetape ls` shows it, or at least 4 of its first hex digits)"
        );
    }
    let matches: Vec<StreamDir> = list_streams(store)
        .await?
        .into_iter()
        .filter(|dir| dir.id().matches_short(wanted))
        .collect();
    match matches.as_slice() {
        [dir] => Ok(*dir),
        [] => bail!(
            "no session in {} has the short id or prefix {text:?} (`kubetape ls` lists them)",
            store.url()
        ),
        many => {
            let shown: Vec<String> = many
                .iter()
                .take(5)
                .map(|dir| format!("  {}", dir.id()))
                .collect();
            let more = if many.len() > 5 {
                format!("\n  … and {} more", many.len() - 5)
            } else {
                String::new()
            };
            bail!(
                "{text:?} matches {} sessions; give more characters:\n{}{more}",
                many.len(),
                shown.join("\n")
            )
        }
    }
}
