//! Create-only ledgers: small JSON entries appended under one prefix of the store, never
//! modified, that every gateway replica and reviewer reads alike. JIT requests and decisions,
//! revocations, and (to come) legal holds and the chain-of-custody log are ledgers; where each
//! lives is in [`crate::layout`].
//!
//! ```text
//! <prefix>/<name>        one entry per object; names are relative, e.g. `<uuidv7>.json` or
//!                        `<request id>/decision.json`
//! ```
//!
//! - **Append** ([`Ledger::append`]) is a create-only put: when two writers race for one name,
//!   exactly one succeeds and the other gets [`LedgerError::AlreadyExists`]. A ledger that needs
//!   "exactly one of" (one decision per request, one shred record per session) names the entry
//!   after its subject and lets the store decide; one that only appends names entries by time
//!   ([`new_name`]) and never collides.
//! - **Time-ordered names** ([`new_name`], UUIDv7 text) sort by creation time, so a reader that
//!   only cares about recent entries lists after a name ([`first_name_at`]) and the store skips
//!   the rest (on S3, `start-after`): the cost follows what is asked for, not the ledger's age.
//!   Writers' clocks differ, so such a cursor needs a margin for skew.
//! - **Typed reading**: a ledger's entry type says which names are its entries and decodes them
//!   ([`Entry`], usually JSON with serde through [`decode_json`]). An object that does not decode
//!   is an error naming its key, never a panic, and never stops the rest of the ledger from
//!   being read.
//! - **Following** ([`Follower`]): a replica keeps what it has read in memory (entries never
//!   change, so a copy never goes stale) and each refresh reads only names it has not seen.
//!   Unreadable objects are reported once and not read again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures::StreamExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Store, StoreError};

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Another writer (or an earlier call) already wrote this name; the store kept theirs.
    #[error("{key}: already exists (ledger entries are written once)")]
    AlreadyExists { key: String },
    /// The object is not a valid entry of this ledger.
    #[error("{key}: not a valid entry: {reason}")]
    Decode { key: String, reason: String },
    #[error("{key}: cannot encode the entry: {reason}")]
    Encode { key: String, reason: String },
    /// A name that could escape the ledger's prefix or is not one kubetape writes.
    #[error("{name:?} is not a ledger entry name (segments of A-Z a-z 0-9 . _ -, not . or ..)")]
    BadName { name: String },
    #[error(transparent)]
    Store(StoreError),
}

/// What a ledger holds: which object names are its entries, and how each is decoded.
pub trait Entry: Sized {
    /// Whether the object named `name` (relative to the ledger's prefix) is an entry of this
    /// ledger. Other names are never read: a directory store's in-progress uploads, or the
    /// objects of another entry type under the same prefix.
    fn is_entry(name: &str) -> bool {
        let _ = name;
        true
    }

    /// Decodes (and checks) the entry stored as `name`; the error is a reason for a report.
    fn decode(name: &str, bytes: &[u8]) -> Result<Self, String>;
}

/// Decodes a JSON entry with serde: what most [`Entry::decode`]s are.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Checks that `name` stays inside a ledger: `/`-separated segments of ASCII letters, digits,
/// `.`, `_` and `-`, none empty, `.` or `..`. Every name kubetape writes passes; anything a
/// caller took from a request and did not validate itself is refused here too.
pub fn check_name(name: &str) -> Result<(), LedgerError> {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if name.split('/').all(segment_ok) {
        Ok(())
    } else {
        Err(LedgerError::BadName {
            name: name.to_string(),
        })
    }
}

/// A fresh time-ordered name: a UUIDv7's text (sorts by creation time to the millisecond).
pub fn new_name() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// The smallest UUIDv7 text of the millisecond holding `at_us` (µs since the Unix epoch): every
/// name made at or after that millisecond sorts after it, every name made before sorts before.
/// The cursor for "entries since `at_us`" ([`Ledger::list_after`]).
pub fn first_name_at(at_us: u64) -> String {
    name_at(at_us, [0; 10])
}

/// The UUIDv7 text of the millisecond holding `at_us`, with `rest` as its counter and random
/// bits (version and variant bits are set over them): a name "made" at a given time, for
/// cursors and tests.
pub fn name_at(at_us: u64, rest: [u8; 10]) -> String {
    uuid::Builder::from_unix_timestamp_millis(at_us / 1_000, &rest)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A ledger: the prefix it lives under, in one store.
#[derive(Debug, Clone)]
pub struct Ledger {
    store: Store,
    prefix: &'static str,
}

impl Ledger {
    /// The ledger under `prefix` (one of [`crate::layout`]'s).
    pub fn new(store: Store, prefix: &'static str) -> Self {
        Self { store, prefix }
    }

    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store key of entry `name` (for messages).
    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// Writes `entry` (as JSON) under `name`, only if nothing is there yet: of two writers of
    /// one name exactly one succeeds, the other gets [`LedgerError::AlreadyExists`].
    pub async fn append(&self, name: &str, entry: &impl Serialize) -> Result<(), LedgerError> {
        check_name(name)?;
        let key = self.key(name);
        let body = serde_json::to_vec_pretty(entry).map_err(|e| LedgerError::Encode {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        match self.store.put_create(&key, body).await {
            Ok(()) => Ok(()),
            Err(StoreError::AlreadyExists { .. }) => Err(LedgerError::AlreadyExists { key }),
            Err(e) => Err(LedgerError::Store(e)),
        }
    }

    /// Reads entry `name`, or `None` if it does not exist.
    pub async fn get<T: Entry>(&self, name: &str) -> Result<Option<T>, LedgerError> {
        check_name(name)?;
        let key = self.key(name);
        match self.store.get_opt(&key).await {
            Ok(Some(bytes)) => decode::<T>(&key, name, &bytes).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(LedgerError::Store(e)),
        }
    }

    /// The names (relative to the prefix) of every object that sorts after `after`, or of every
    /// object when `after` is `None`, in name order. With time-ordered names and
    /// [`first_name_at`] this lists only recent entries.
    pub async fn list_after(&self, after: Option<&str>) -> Result<Vec<String>, LedgerError> {
        let listing = self
            .store
            .list_after(self.prefix, after)
            .await
            .map_err(LedgerError::Store)?;
        Ok(listing.into_iter().map(|(name, _)| name).collect())
    }

    /// Every entry after `after` (all when `None`), in name order, each decoded or with the
    /// reason it could not be: one bad object does not hide the others.
    pub async fn read_after<T: Entry>(
        &self,
        after: Option<&str>,
    ) -> Result<Vec<(String, Result<T, LedgerError>)>, LedgerError> {
        let names: Vec<String> = self
            .list_after(after)
            .await?
            .into_iter()
            .filter(|n| T::is_entry(n))
            .collect();
        let fetched = self.fetch(names).await?;
        Ok(fetched
            .into_iter()
            .map(|(name, bytes)| {
                let decoded = decode::<T>(&self.key(&name), &name, &bytes);
                (name, decoded)
            })
            .collect())
    }

    /// The bytes of each of `names` (those deleted since listing are left out), concurrently;
    /// all or nothing.
    async fn fetch(&self, names: Vec<String>) -> Result<Vec<(String, bytes::Bytes)>, LedgerError> {
        let results: Vec<_> = futures::stream::iter(names.into_iter().map(|name| async move {
            let got = self.store.get_opt(&self.key(&name)).await;
            (name, got)
        }))
        .buffered(CONCURRENCY)
        .collect()
        .await;
        let mut out = Vec::with_capacity(results.len());
        for (name, got) in results {
            if let Some(bytes) = got.map_err(LedgerError::Store)? {
                out.push((name, bytes));
            }
        }
        Ok(out)
    }
}

/// Entries read from the store at once (S3 latency hides behind concurrency).
const CONCURRENCY: usize = 16;

fn decode<T: Entry>(key: &str, name: &str, bytes: &[u8]) -> Result<T, LedgerError> {
    T::decode(name, bytes).map_err(|reason| LedgerError::Decode {
        key: key.to_string(),
        reason,
    })
}

// === Follower ===

/// A ledger's entries kept in memory and brought up to date by reading only what is new.
///
/// The lock is held only for in-memory work, never across store I/O, so readers of the entries
/// never wait for a listing. Refreshes may overlap (each reports an entry as added once).
#[derive(Debug)]
pub struct Follower<T> {
    ledger: Ledger,
    known: Mutex<Known<T>>,
}

#[derive(Debug)]
struct Known<T> {
    entries: BTreeMap<String, T>,
    /// Objects that did not decode: reported once, not read again.
    bad: BTreeSet<String>,
}

/// What one [`Follower::refresh`] found.
#[derive(Debug)]
pub struct Refreshed<T> {
    /// Entries not known before, in name order.
    pub added: Vec<(String, T)>,
    /// Objects found to be invalid entries ([`LedgerError::Decode`]), each reported once.
    pub unreadable: Vec<LedgerError>,
}

impl<T: Entry + Clone> Follower<T> {
    pub fn new(ledger: Ledger) -> Self {
        Self {
            ledger,
            known: Mutex::new(Known {
                entries: BTreeMap::new(),
                bad: BTreeSet::new(),
            }),
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn known(&self) -> MutexGuard<'_, Known<T>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists the names after `after` (all when `None`), reads those not seen yet and keeps them.
    /// Entries (and unreadable names) at or before `after` are forgotten: a follower of recent
    /// entries keeps only those. Nothing is kept from a refresh that fails.
    pub async fn refresh(&self, after: Option<&str>) -> Result<Refreshed<T>, LedgerError> {
        if let Some(after) = after {
            let mut known = self.known();
            known.entries.retain(|name, _| name.as_str() > after);
            known.bad.retain(|name| name.as_str() > after);
        }
        let listing = self.ledger.list_after(after).await?;
        let unseen: Vec<String> = {
            let known = self.known();
            listing
                .into_iter()
                .filter(|n| {
                    T::is_entry(n) && !known.entries.contains_key(n) && !known.bad.contains(n)
                })
                .collect()
        };
        let fetched = self.ledger.fetch(unseen).await?;
        let decoded: Vec<(String, Result<T, LedgerError>)> = fetched
            .into_iter()
            .map(|(name, bytes)| {
                let d = decode::<T>(&self.ledger.key(&name), &name, &bytes);
                (name, d)
            })
            .collect();
        let mut refreshed = Refreshed {
            added: Vec::new(),
            unreadable: Vec::new(),
        };
        let mut known = self.known();
        for (name, entry) in decoded {
            match entry {
                Ok(entry) => {
                    if !known.entries.contains_key(&name) {
                        known.entries.insert(name.clone(), entry.clone());
                        refreshed.added.push((name, entry));
                    }
                }
                Err(e) => {
                    if known.bad.insert(name) {
                        refreshed.unreadable.push(e);
                    }
                }
            }
        }
        Ok(refreshed)
    }

    /// Keeps an entry this process has just appended, so it is seen before the next listing.
    pub fn remember(&self, name: &str, entry: T) {
        self.known()
            .entries
            .entry(name.to_string())
            .or_insert(entry);
    }

    /// Entry `name`, if known.
    pub fn get(&self, name: &str) -> Option<T> {
        self.known().entries.get(name).cloned()
    }

    /// Runs `f` over the known entries, by name (in name order, so time order for
    /// time-ordered names). Keep `f` short: it holds the lock.
    pub fn with<R>(&self, f: impl FnOnce(&BTreeMap<String, T>) -> R) -> R {
        f(&self.known().entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
    struct Note {
        text: String,
    }

    impl Entry for Note {
        fn is_entry(name: &str) -> bool {
            name.ends_with(".json")
        }
        fn decode(_name: &str, bytes: &[u8]) -> Result<Self, String> {
            let note: Note = decode_json(bytes)?;
            if note.text.is_empty() {
                return Err("empty text".into());
            }
            Ok(note)
        }
    }

    fn note(text: &str) -> Note {
        Note { text: text.into() }
    }

    const PREFIX: &str = "test-ledger";

    #[tokio::test]
    async fn two_writers_of_one_name_one_wins() {
        // Two handles on one directory, as two gateway replicas would have.
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let (a, b) = (
            Ledger::new(Store::open(&url).unwrap(), PREFIX),
            Ledger::new(Store::open(&url).unwrap(), PREFIX),
        );
        for round in 0..20 {
            let name = format!("subject-{round}/decision.json");
            let (from_a, from_b) = (note("from a"), note("from b"));
            let (x, y) = tokio::join!(a.append(&name, &from_a), b.append(&name, &from_b));
            let lost = [&x, &y]
                .iter()
                .filter(|r| matches!(r, Err(LedgerError::AlreadyExists { .. })))
                .count();
            assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
            assert_eq!(lost, 1, "the loser learns it as AlreadyExists");
            let stored: Note = a.get(&name).await.unwrap().unwrap();
            let winner = if x.is_ok() { "from a" } else { "from b" };
            assert_eq!(stored.text, winner, "the store holds the winner's entry");
        }
    }

    #[tokio::test]
    async fn listing_after_a_name_skips_what_sorts_before() {
        let ledger = Ledger::new(Store::open("memory://").unwrap(), PREFIX);
        let day = 86_400_000_000;
        let t = 1_795_000_000_000_000;
        let names: Vec<String> = (0..5)
            .map(|i| format!("{}.json", name_at(t + i * day, [0x5a; 10])))
            .collect();
        for name in names.iter().rev() {
            ledger.append(name, &note(name)).await.unwrap();
        }
        assert_eq!(ledger.list_after(None).await.unwrap(), names, "name order");
        let cursor = first_name_at(t + 2 * day);
        assert_eq!(ledger.list_after(Some(&cursor)).await.unwrap(), names[2..]);
        let entries = ledger.read_after::<Note>(Some(&cursor)).await.unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].1.as_ref().unwrap().text, names[2]);
    }

    #[test]
    fn time_names_sort_by_time() {
        let t = 1_795_000_000_000_000; // µs; 1_795_000_000_000 ms = 0x1a1ee565e00
        assert_eq!(first_name_at(t), "01a1ee56-5e00-7000-8000-000000000000");
        let made_then = name_at(t, [0xff; 10]);
        assert!(first_name_at(t) <= made_then);
        assert!(made_then < first_name_at(t + 1_000));
        assert!(new_name() > first_name_at(t));
    }

    #[tokio::test]
    async fn bad_entries_are_reported_once_and_never_panic() {
        let store = Store::open("memory://").unwrap();
        let ledger = Ledger::new(store.clone(), PREFIX);
        ledger.append("1.json", &note("one")).await.unwrap();
        for (name, body) in [
            ("2.json", &b"{not json"[..]),
            ("3.json", br#"{"text":""}"#),
            ("4.json", br#"{"text":7}"#),
            ("5.json", b"\xff\xfe"),
            ("6.json", b""),
        ] {
            store
                .put_create(&ledger.key(name), body.to_vec())
                .await
                .unwrap();
        }
        store
            .put_create(&ledger.key("7.tmp"), b"ignored".to_vec())
            .await
            .unwrap();
        let follower = Follower::<Note>::new(ledger.clone());
        let first = follower.refresh(None).await.unwrap();
        assert_eq!(first.added, vec![("1.json".to_string(), note("one"))]);
        let keys: Vec<String> = first
            .unreadable
            .iter()
            .map(|e| match e {
                LedgerError::Decode { key, .. } => key.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            keys,
            ["2", "3", "4", "5", "6"].map(|n| format!("{PREFIX}/{n}.json")),
            "names that are not entries (7.tmp) are not read"
        );
        assert!(
            first.unreadable[1].to_string().contains("empty text"),
            "the entry type's own check is the reason"
        );
        // Nothing new: neither the good nor the bad are read again.
        ledger.append("8.json", &note("eight")).await.unwrap();
        let second = follower.refresh(None).await.unwrap();
        assert_eq!(second.added, vec![("8.json".to_string(), note("eight"))]);
        assert!(second.unreadable.is_empty());
        // A direct read reports the error too.
        assert!(matches!(
            ledger.get::<Note>("2.json").await,
            Err(LedgerError::Decode { .. })
        ));
        let all = ledger.read_after::<Note>(None).await.unwrap();
        assert_eq!(all.iter().filter(|(_, r)| r.is_ok()).count(), 2);
        assert_eq!(all.len(), 7);
    }

    #[tokio::test]
    async fn a_follower_of_recent_entries_forgets_older_ones() {
        let ledger = Ledger::new(Store::open("memory://").unwrap(), PREFIX);
        let follower = Follower::<Note>::new(ledger.clone());
        let t = 1_795_000_000_000_000;
        let old = format!("{}.json", name_at(t, [1; 10]));
        let recent = format!("{}.json", name_at(t + 10_000_000, [1; 10]));
        ledger.append(&old, &note("old")).await.unwrap();
        follower.remember(&old, note("old"));
        ledger.append(&recent, &note("recent")).await.unwrap();
        let got = follower
            .refresh(Some(&first_name_at(t + 5_000_000)))
            .await
            .unwrap();
        assert_eq!(got.added.len(), 1);
        assert_eq!(
            follower.with(|m| m.keys().cloned().collect::<Vec<_>>()),
            std::slice::from_ref(&recent)
        );
        assert!(follower.get(&old).is_none());
        assert_eq!(follower.get(&recent), Some(note("recent")));
    }

    #[tokio::test]
    async fn names_cannot_leave_the_prefix() {
        let ledger = Ledger::new(Store::open("memory://").unwrap(), PREFIX);
        for bad in ["", "../x", "a/../b", "a//b", "/a", "a/", ".", "a b", "é"] {
            assert!(
                matches!(
                    ledger.append(bad, &note("x")).await,
                    Err(LedgerError::BadName { .. })
                ),
                "{bad:?}"
            );
            assert!(ledger.get::<Note>(bad).await.is_err(), "{bad:?}");
        }
        check_name("01a1ee56-5e00-7000-8000-000000000000/decision.json").unwrap();
    }
}
