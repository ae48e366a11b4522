//! The chain-of-custody log: one create-only entry per reading of a recording's content by
//! kubetape (`cat`, `play`, `export`, a search hit opened, a bundle made), written *before* the
//! content is shown — a reader that cannot write its entry is refused — so the store can answer
//! "who read this recording, when, and why" (PCI DSS 10.2.1.3: access to audit trails is
//! itself logged).
//!
//! ```text
//! reads/<yyyy-mm-dd>/<uuidv7>.json   {"session","action","reader","os_user","host","reason",
//!                                     "keyring","at_us"}
//! ```
//! By UTC day, so a query for a period lists only its days; names are UUIDv7, so entries sort
//! by time within a day. Entries are never modified or deleted (retention keeps this prefix:
//! it is the evidence that reads happened).
//!
//! **Who**: `reader` is the name the reader gave (`--as`, else `KUBETAPE_READER`, else the
//! login); `os_user` is always the login of the process, so a claimed name is never the only
//! record; `keyring` is the fingerprint of the keyring's current signing key (whose keys read
//! it). An entry proves a kubetape binary logged a read; someone holding the keyring can read
//! the objects without kubetape — that is what Object Lock and key custody are for.

use serde::{Deserialize, Serialize};

use super::Store;
use super::ledger::{self, Ledger, LedgerError};
use crate::layout;
use crate::session::SessionId;
use crate::time::unix_micros_now;

/// One reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadEntry {
    pub session: SessionId,
    /// `cat`, `play`, `export`, `search-open`, `bundle`, …
    pub action: String,
    /// The reader's name (`--as`, `KUBETAPE_READER`, or the login).
    pub reader: String,
    /// The login of the process that read.
    pub os_user: String,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Fingerprint of the keyring's current signing key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyring: String,
    pub at_us: u64,
}

impl ledger::Entry for ReadEntry {
    fn is_entry(name: &str) -> bool {
        name.split_once('/').is_some_and(|(day, rest)| {
            day.len() == 10 && !rest.contains('/') && rest.ends_with(".json")
        })
    }

    fn decode(_name: &str, bytes: &[u8]) -> Result<Self, String> {
        ledger::decode_json(bytes)
    }
}

/// The reads ledger of `store`.
pub fn ledger(store: &Store) -> Ledger {
    Ledger::new(store.clone(), layout::READS)
}

/// Appends `entry` (its day from `entry.at_us`); returns its store key.
pub async fn log(store: &Store, entry: &ReadEntry) -> Result<String, LedgerError> {
    let ledger = ledger(store);
    let name = layout::read_entry(&layout::day_of(entry.at_us), &ledger::new_name());
    ledger.append(&name, entry).await?;
    Ok(ledger.key(&name))
}

/// A new entry stamped now.
pub fn entry(
    session: SessionId,
    action: &str,
    reader: &str,
    os_user: &str,
    host: &str,
    reason: Option<&str>,
    keyring: &str,
) -> ReadEntry {
    ReadEntry {
        session,
        action: action.to_string(),
        reader: reader.to_string(),
        os_user: os_user.to_string(),
        host: host.to_string(),
        reason: reason.map(str::to_string),
        keyring: keyring.to_string(),
        at_us: unix_micros_now(),
    }
}

/// Entries made at or after `since_us` (all when `None`), oldest first, each decoded or with
/// why not. Lists only the days from `since_us`'s on.
pub async fn list(
    store: &Store,
    since_us: Option<u64>,
) -> Result<Vec<Result<ReadEntry, LedgerError>>, LedgerError> {
    // Names sort by day, then by time within it: one listing after the cursor of `since`'s
    // millisecond skips every earlier day and entry (on S3, `start-after`).
    let after = since_us.map(|s| {
        layout::read_entry(&layout::day_of(s), &ledger::first_name_at(s))
            .trim_end_matches(".json")
            .to_string()
    });
    let mut out = Vec::new();
    for (_, entry) in ledger(store)
        .read_after::<ReadEntry>(after.as_deref())
        .await?
    {
        if let (Ok(e), Some(s)) = (&entry, since_us)
            && e.at_us < s
        {
            continue;
        }
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_listed_by_time_from_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("file://{}", dir.path().display())).unwrap();
        let id = SessionId::new();
        let mut old = entry(id, "cat", "alice", "alice", "h", Some("INC-1"), "fp");
        old.at_us -= 3 * 86_400_000_000;
        log(&store, &old).await.unwrap();
        let new = entry(id, "export", "bob", "bob", "h", None, "fp");
        log(&store, &new).await.unwrap();
        let all: Vec<ReadEntry> = list(&store, None)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(all, [old.clone(), new.clone()]);
        let recent: Vec<ReadEntry> = list(&store, Some(new.at_us - 1_000_000))
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(recent, [new]);
        store
            .put_create(
                &format!("reads/{}/x.json", layout::day_of(old.at_us)),
                "nope",
            )
            .await
            .unwrap();
        let with_bad = list(&store, None).await.unwrap();
        assert_eq!(with_bad.iter().filter(|e| e.is_err()).count(), 1);
    }
}
