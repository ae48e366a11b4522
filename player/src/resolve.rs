//! Session ids as users type them: a full UUID, or any unique prefix of one (ids are UUIDv7, so
//! the first few characters mostly encode the start time and a short prefix is usually enough).

use anyhow::bail;
use storage_schema::SessionId;
use storage_schema::store::{Store, list_sessions};

/// Resolves `text` to one session in `store`.
pub async fn session(store: &Store, text: &str) -> anyhow::Result<SessionId> {
    if let Ok(id) = text.parse::<SessionId>() {
        return Ok(id);
    }
    let prefix = text.trim().to_ascii_lowercase();
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        bail!("{text:?} is not a session id (expected a UUID, or the first characters of one)");
    }
    let matches: Vec<SessionId> = list_sessions(store)
        .await?
        .into_iter()
        .filter(|id| id.to_string().starts_with(&prefix))
        .collect();
    match matches.as_slice() {
        [id] => Ok(*id),
        [] => bail!(
            "no session in {} starts with {text:?} (`kubetape ls` lists them)",
            store.url()
        ),
        many => {
            let shown: Vec<String> = many.iter().take(5).map(|id| format!("  {id}")).collect();
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
