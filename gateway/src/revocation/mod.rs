//! Revocation (offboarding): from the moment a user is revoked, every gateway sharing the store
//! answers their requests with 403 — even with a token that has not expired — and ends their live
//! exec/attach sessions within a second.
//!
//! # In the store (a create-only ledger: `storage_schema::store::ledger`)
//! ```text
//! revocations/<uuidv7>.json   {"action":"revoke"|"lift","user":"…","reason":"…","by":"…","at_us":…}
//! ```
//! (prefix and names from `storage_schema::layout`.) Entries are create-only (never modified,
//! never deleted), so the prefix is also the history of who revoked and lifted whom. Names are
//! UUIDv7, so name order is time order; for each user the newest entry decides. Lifting a
//! revocation is a new `lift` entry.
//!
//! # Propagation
//! Every gateway lists the prefix every `poll_interval_ms` (≈ 250 ms; a list call, plus one get
//! per entry it has not seen yet: the ledger's `Follower`). The whole prefix is listed, not only
//! recent names: a revocation written by a replica whose clock is behind must still be found,
//! and the list stays small (one entry per revoke or lift). A user found newly revoked has their live sessions ended
//! through [`LiveSessions`]. Fail closed: the first poll happens before the gateway serves, and
//! while the list cannot be refreshed for longer than `max_staleness_ms` every request is refused
//! (a gateway that cannot learn of revocations must not keep honouring tokens).

pub mod api;
pub mod cli;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use storage_schema::layout;
use storage_schema::store::Store;
use storage_schema::store::ledger::{self, Follower, Ledger, LedgerError};
use storage_schema::time::{format_unix_micros, unix_micros_now};

use crate::live::{EndRequest, LiveSessions};

/// What kubectl prints when a live session is ended by a revocation.
pub const SESSION_ENDED_MESSAGE: &str = "kubetape: session ended: access revoked";

/// Revoke or lift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Revoke,
    Lift,
}

/// One entry in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub action: Action,
    /// The username exactly as the gateway maps it (with the issuer's prefix, if any).
    pub user: String,
    #[serde(default)]
    pub reason: String,
    /// Who wrote it: `cli:<login>` or `api:<username>`.
    pub by: String,
    /// When, microseconds since the Unix epoch.
    pub at_us: u64,
}

impl Entry {
    pub fn new(action: Action, user: &str, reason: &str, by: &str) -> Self {
        Self {
            action,
            user: user.to_string(),
            reason: reason.to_string(),
            by: by.to_string(),
            at_us: unix_micros_now(),
        }
    }
}

impl ledger::Entry for Entry {
    fn is_entry(name: &str) -> bool {
        !name.contains('/') && name.ends_with(".json")
    }

    fn decode(_name: &str, bytes: &[u8]) -> Result<Self, String> {
        ledger::decode_json(bytes)
    }
}

/// The revocation ledger of `store`.
pub fn ledger(store: &Store) -> Ledger {
    Ledger::new(store.clone(), layout::REVOCATIONS)
}

/// Why revocations could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("revocation store: {0}")]
    Store(#[from] LedgerError),
    #[error("a username is required")]
    EmptyUser,
}

/// Writes `entry` as a new create-only object; returns its store key.
pub async fn write(store: &Store, entry: &Entry) -> Result<String, RevocationError> {
    if entry.user.trim().is_empty() {
        return Err(RevocationError::EmptyUser);
    }
    let ledger = ledger(store);
    let name = layout::revocation(&ledger::new_name());
    ledger.append(&name, entry).await?;
    Ok(ledger.key(&name))
}

/// Every entry in the store, oldest first, skipping (and returning the keys and reasons of)
/// unreadable ones.
pub async fn read_all(store: &Store) -> Result<(Vec<Entry>, Vec<String>), RevocationError> {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (_, entry) in ledger(store).read_after::<Entry>(None).await? {
        match entry {
            Ok(e) => entries.push(e),
            Err(e) => bad.push(e.to_string()),
        }
    }
    Ok((entries, bad))
}

/// The users whose newest entry is a revocation, with that entry.
pub fn current(entries: &[Entry]) -> BTreeMap<String, Entry> {
    let mut latest: BTreeMap<String, &Entry> = BTreeMap::new();
    for e in entries {
        latest.insert(e.user.clone(), e);
    }
    latest
        .into_iter()
        .filter(|(_, e)| e.action == Action::Revoke)
        .map(|(u, e)| (u, e.clone()))
        .collect()
}

/// This gateway's view of the revocation list, refreshed by [`Revocations::poll`].
#[derive(Debug)]
pub struct Revocations {
    store: Store,
    live: LiveSessions,
    admin_groups: Vec<String>,
    max_staleness: Duration,
    /// Entries seen so far, by object name (name order = time order); invalid objects are
    /// logged once each.
    seen: Follower<Entry>,
    revoked: RwLock<HashMap<String, Entry>>,
    last_ok: Mutex<Option<Instant>>,
}

/// Answer of [`Revocations::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Allowed,
    /// The user is revoked: the 403 message.
    Revoked(String),
    /// The list is too old to trust: the 503 message.
    Stale(String),
}

impl Revocations {
    pub fn new(
        store: Store,
        live: LiveSessions,
        admin_groups: Vec<String>,
        max_staleness: Duration,
    ) -> Self {
        Self {
            seen: Follower::new(ledger(&store)),
            store,
            live,
            admin_groups,
            max_staleness,
            revoked: RwLock::default(),
            last_ok: Mutex::new(None),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether `groups` include a configured admin group (may use the admin API).
    pub fn is_admin(&self, groups: &[String]) -> bool {
        groups.iter().any(|g| self.admin_groups.contains(g))
    }

    /// May `user` act now?
    pub fn check(&self, user: &str) -> Check {
        let fresh = self
            .last_ok
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() <= self.max_staleness);
        if !fresh {
            return Check::Stale(
                "kubetape: the gateway cannot read the revocation list from its store; refusing requests until it can"
                    .into(),
            );
        }
        match self
            .revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
        {
            Some(e) => Check::Revoked(revoked_message(e)),
            None => Check::Allowed,
        }
    }

    /// When `user` was last revoked (even if lifted since): grants approved before then are
    /// cancelled, so lifting a revocation does not bring them back.
    pub fn last_revoked_at_us(&self, user: &str) -> Option<u64> {
        self.seen.with(|seen| {
            seen.values()
                .filter(|e| e.user == user && e.action == Action::Revoke)
                .map(|e| e.at_us)
                .max()
        })
    }

    /// Users currently revoked.
    pub fn revoked(&self) -> Vec<Entry> {
        let mut v: Vec<Entry> = self
            .revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.user.cmp(&b.user));
        v
    }

    /// Lists the store's entries, fetches new ones, recomputes the revoked set, and ends the live
    /// sessions of users newly revoked. Returns the users newly revoked.
    pub async fn poll(&self) -> Result<Vec<String>, RevocationError> {
        let found = self.seen.refresh(None).await?;
        for e in &found.unreadable {
            tracing::error!(error = %e, "ignoring an unreadable revocation entry");
        }
        let mut newly = Vec::new();
        if !found.added.is_empty() {
            let entries: Vec<Entry> = self.seen.with(|seen| seen.values().cloned().collect());
            let now: HashMap<String, Entry> = current(&entries).into_iter().collect();
            {
                let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
                for (user, e) in &now {
                    if revoked.get(user) != Some(e) {
                        newly.push(user.clone());
                    }
                }
                for user in revoked.keys() {
                    if !now.contains_key(user) {
                        tracing::info!(%user, "revocation lifted");
                    }
                }
                *revoked = now.clone();
            }
            // After the set is updated: a relay registers its session, then checks the set, so
            // every session is either refused there or ended here.
            for user in &newly {
                let e = &now[user];
                let ended = self.live.end_user(
                    user,
                    &EndRequest {
                        message: SESSION_ENDED_MESSAGE.into(),
                        marker: format!("access revoked by {}: {}", e.by, e.reason),
                    },
                );
                tracing::warn!(%user, by = %e.by, reason = %e.reason, live_sessions_ended = ended, "user revoked");
            }
        }
        *self.last_ok.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Ok(newly)
    }

    /// Polls every `interval` until dropped (the caller aborts the task at shutdown).
    pub async fn poll_forever(&self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match self.poll().await {
                Ok(_) if failing => {
                    tracing::info!("revocation list readable again");
                    failing = false;
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    tracing::error!(error = %e, "cannot refresh the revocation list; requests are refused once it is stale");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }
}

fn revoked_message(e: &Entry) -> String {
    let reason = if e.reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", e.reason)
    };
    format!(
        "kubetape: access for user {:?} was revoked at {} by {}{reason}; ask an administrator to lift it (kubetape-gateway revoke --lift --user …)",
        e.user,
        format_unix_micros(e.at_us),
        e.by
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: Action, user: &str) -> Entry {
        Entry::new(action, user, "r", "cli:test")
    }

    #[test]
    fn newest_entry_per_user_decides() {
        let entries = vec![
            entry(Action::Revoke, "a"),
            entry(Action::Revoke, "b"),
            entry(Action::Lift, "a"),
            entry(Action::Lift, "c"),
        ];
        let now = current(&entries);
        assert_eq!(now.keys().collect::<Vec<_>>(), vec!["b"]);
        assert!(current(&[]).is_empty());
    }

    #[tokio::test]
    async fn poll_revokes_ends_sessions_and_lifts() {
        let store = Store::open("memory://").unwrap();
        let live = LiveSessions::default();
        let revs = Revocations::new(
            store.clone(),
            live.clone(),
            vec!["admins".into()],
            Duration::from_secs(10),
        );
        assert!(
            matches!(revs.check("a"), Check::Stale(_)),
            "never polled: stale"
        );
        revs.poll().await.unwrap();
        assert_eq!(revs.check("a"), Check::Allowed);
        let mut session = live.register("a", storage_schema::SessionId::new());
        write(&store, &entry(Action::Revoke, "a")).await.unwrap();
        store
            .put_create(&ledger(&store).key("garbage.json"), "not json")
            .await
            .unwrap();
        assert_eq!(revs.poll().await.unwrap(), vec!["a".to_string()]);
        assert!(matches!(revs.check("a"), Check::Revoked(m) if m.contains("\"a\" was revoked")));
        assert_eq!(revs.check("b"), Check::Allowed);
        assert_eq!(session.ended().await.message, SESSION_ENDED_MESSAGE);
        // Polling again finds nothing new.
        assert!(revs.poll().await.unwrap().is_empty());
        write(&store, &entry(Action::Lift, "a")).await.unwrap();
        revs.poll().await.unwrap();
        assert_eq!(revs.check("a"), Check::Allowed);
        assert!(revs.revoked().is_empty());
        assert!(revs.is_admin(&["x".into(), "admins".into()]));
        assert!(!revs.is_admin(&["x".into()]));
    }

    /// Entries written before the shared ledger read back the same, and new ones land beside
    /// them under the same kind of name.
    #[tokio::test]
    async fn entries_written_before_the_ledger_read_back() {
        let (dir, store) = crate::jit::tests::legacy_store();
        let (entries, bad) = read_all(&store).await.unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(entries.len(), 3);
        let revoked = current(&entries);
        assert_eq!(
            revoked.keys().collect::<Vec<_>>(),
            vec!["mallory@example.com"],
            "frank was revoked, then lifted"
        );
        assert_eq!(revoked["mallory@example.com"].by, "cli:admin");

        let revs = Revocations::new(
            store.clone(),
            LiveSessions::default(),
            vec![],
            Duration::from_secs(10),
        );
        assert_eq!(revs.poll().await.unwrap(), vec!["mallory@example.com"]);
        assert!(matches!(
            revs.check("mallory@example.com"),
            Check::Revoked(_)
        ));
        assert_eq!(revs.check("frank@example.com"), Check::Allowed);
        assert!(revs.last_revoked_at_us("frank@example.com").is_some());

        let key = write(&store, &entry(Action::Lift, "mallory@example.com"))
            .await
            .unwrap();
        let name = key
            .strip_prefix("revocations/")
            .expect("same prefix as before");
        let stem = name
            .strip_suffix(".json")
            .expect("<uuidv7>.json, as before");
        assert!(uuid::Uuid::parse_str(stem).is_ok_and(|u| u.get_version_num() == 7));
        assert!(dir.path().join(&key).is_file());
        revs.poll().await.unwrap();
        assert_eq!(revs.check("mallory@example.com"), Check::Allowed);
    }

    #[tokio::test]
    async fn empty_user_is_refused() {
        let store = Store::open("memory://").unwrap();
        assert!(matches!(
            write(&store, &entry(Action::Revoke, " ")).await,
            Err(RevocationError::EmptyUser)
        ));
    }
}
