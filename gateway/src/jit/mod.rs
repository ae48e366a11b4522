//! Just-in-time elevation: access requests, their approval or denial, and the grants that
//! follow, kept in the recording object store so every gateway replica sees the same ones.
//!
//! # Objects (a create-only ledger: `storage_schema::store::ledger`)
//! ```text
//! jit/requests/<id>/request.json    who asks for which role, in which namespace, why, how long
//! jit/requests/<id>/decision.json   approved or denied, by whom, when
//! ```
//! (prefix and names from `storage_schema::layout`.) The local filesystem store cannot do
//! conditional updates, so a request's life is two objects: whoever writes `decision.json`
//! first wins, the others get "already exists" (exactly one of approve/deny, even across
//! replicas). A grant is an approved request; it runs from the approval for the requested TTL
//! and then simply stops matching.
//!
//! Gateways cache what they read (objects are immutable, so cached copies never go stale; the
//! ledger's `Follower` reads only names it has not seen) and list the prefix again every
//! [`REFRESH`] in the background ([`Jit::spawn_refresh`]), and at once before answering a
//! would-be denial, so a fresh approval works on the next request on every replica. Store I/O
//! never happens under the cache's lock: requests read grants without waiting for a listing.
//!
//! Only requests that can still matter are listed and cached: those made in the last
//! [`LISTED_FOR`]. Ids are UUIDv7, so names sort by creation time and the listing starts after
//! the first id that old (on S3 the store skips the rest itself). Without this every replica
//! re-read a listing of every request ever made, every second, and kept them all in memory.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use storage_schema::layout;
use storage_schema::store::ledger::{self, Follower, Ledger, LedgerError};
use storage_schema::store::{Store, StoreError};

use crate::authn::Identity;

/// How stale the grant cache may be for an ordinary (allowed) request.
pub const REFRESH: Duration = Duration::from_secs(1);
/// Forced refreshes (on would-be denials) start at least this far apart, and concurrent ones
/// share one listing, so a flood of denied requests cannot turn into a flood of store listings.
const MIN_FORCED_REFRESH: Duration = Duration::from_millis(100);

/// An approved request: the role in the namespace for the user until `expires_at_us`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub role: String,
    pub namespace: String,
    pub reason: String,
    pub approver: String,
    /// When it was approved (a revocation of the user after this cancels it).
    pub granted_at_us: u64,
    pub expires_at_us: u64,
}

impl Grant {
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.expires_at_us)
    }

    /// What the recording keeps.
    pub fn to_recorded(&self) -> storage_schema::session::Grant {
        storage_schema::session::Grant {
            id: self.id.clone(),
            reason: self.reason.clone(),
            approver: self.approver.clone(),
            expires_at_us: self.expires_at_us,
        }
    }
}

/// Why a JIT operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("request {0} already has a decision")]
    AlreadyDecided(String),
    #[error("request {0} already exists")]
    Duplicate(String),
    #[error("access request store: {0}")]
    Store(#[source] StoreError),
    #[error("access request object {key} is not valid: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("access request store: {0}")]
    Ledger(#[source] LedgerError),
}

/// A request with its decision, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub request: AccessRequest,
    pub verdict: Option<Verdict>,
}

/// How long a request may wait for a decision: an approval days later would grant access for
/// a reason that is likely stale.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(86_400);

/// How far back requests are listed and cached. A request can be decided for
/// [`PENDING_LIFETIME`] after it is made, and its grant lasts at most [`MAX_TTL_SECS`] after
/// that; the extra hour absorbs clock skew between the replicas that made the ids. Older
/// requests grant nothing; their history is in the audit log, and `get` still reads one by id.
pub const LISTED_FOR: Duration =
    Duration::from_secs(PENDING_LIFETIME.as_secs() + MAX_TTL_SECS + 3_600);

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    /// Approved and not yet expired: a live grant.
    Approved,
    Denied,
    /// Approved and past its TTL.
    Expired,
    /// Never decided within [`PENDING_LIFETIME`]; it can no longer be.
    Abandoned,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Abandoned => "abandoned",
        }
    }
}

impl Entry {
    /// Where the request stands at `now_us`.
    pub fn state(&self, now_us: u64) -> State {
        match (&self.verdict, self.grant()) {
            (None, _) => {
                let age = now_us.saturating_sub(self.request.created_at_us);
                if Duration::from_micros(age) > PENDING_LIFETIME {
                    State::Abandoned
                } else {
                    State::Pending
                }
            }
            (Some(v), _) if !v.approved => State::Denied,
            (_, Some(g)) if g.expires_at_us > now_us => State::Approved,
            _ => State::Expired,
        }
    }

    /// The grant this entry amounts to, if it was approved (expired or not).
    pub fn grant(&self) -> Option<Grant> {
        let v = self.verdict.as_ref().filter(|v| v.approved)?;
        Some(Grant {
            id: self.request.id.clone(),
            role: self.request.role.clone(),
            namespace: self.request.namespace.clone(),
            reason: self.request.reason.clone(),
            approver: v.by.clone(),
            granted_at_us: v.at_us,
            expires_at_us: v
                .at_us
                .saturating_add(self.request.ttl_secs.saturating_mul(1_000_000)),
        })
    }
}

/// Requests and grants in the store, with a cache.
#[derive(Debug)]
pub struct Jit {
    /// The ledger, and what this replica has read of it (recent requests only: see
    /// [`LISTED_FOR`]). Its lock is held for in-memory lookups only, never across I/O.
    ledger: Follower<Stored>,
    /// When the last listing started (the cache is fresh as of then).
    refreshed: std::sync::Mutex<Option<Instant>>,
    /// One refresh at a time (a forced one waits for a running one, then usually finds the
    /// cache fresh).
    refreshing: tokio::sync::Mutex<()>,
}

pub use storage_schema::time::unix_micros_now as now_us;
// The ledger's objects as stored, shared with `kubetape report` (which reads the ledger too).
pub use storage_schema::store::jit::{AccessRequest, MAX_TTL_SECS, Stored, Verdict};

/// Whether `id` looks like one of ours (a UUID), before it is used in a store key.
pub fn valid_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok_and(|u| u.hyphenated().to_string() == id)
}

/// A ledger error as the JIT reports it.
fn jit_error(e: LedgerError) -> JitError {
    match e {
        LedgerError::Store(e) => JitError::Store(e),
        LedgerError::Decode { key, reason } => JitError::Corrupt { key, reason },
        other => JitError::Ledger(other),
    }
}

// === impl Jit ===

impl Jit {
    pub fn new(store: Store) -> Jit {
        Jit {
            ledger: Follower::new(Ledger::new(store, layout::JIT_REQUESTS)),
            refreshed: std::sync::Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    fn refreshed(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.refreshed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refreshes every [`REFRESH`] until the task is dropped or aborted.
    pub fn spawn_refresh(self: std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.refresh(false).await {
                    tracing::warn!(error = %e, "access grants could not be refreshed");
                }
            }
        })
    }

    /// Stores a new request (its id must be fresh).
    pub async fn create(&self, request: &AccessRequest) -> Result<(), JitError> {
        let name = layout::jit_request(&request.id);
        match self.ledger.ledger().append(&name, request).await {
            Ok(()) => {}
            Err(LedgerError::AlreadyExists { .. }) => {
                return Err(JitError::Duplicate(request.id.clone()));
            }
            Err(e) => return Err(jit_error(e)),
        }
        self.ledger
            .remember(&name, Stored::Request(request.clone()));
        Ok(())
    }

    /// Records the decision on request `id`; exactly one decision ever succeeds.
    pub async fn decide(&self, id: &str, verdict: &Verdict) -> Result<(), JitError> {
        let name = layout::jit_decision(id);
        match self.ledger.ledger().append(&name, verdict).await {
            Ok(()) => {}
            Err(LedgerError::AlreadyExists { .. }) => {
                return Err(JitError::AlreadyDecided(id.to_string()));
            }
            Err(e) => return Err(jit_error(e)),
        }
        self.ledger
            .remember(&name, Stored::Decision(verdict.clone()));
        Ok(())
    }

    /// One request, read from the store (not the cache) so a decision made elsewhere shows.
    pub async fn get(&self, id: &str) -> Result<Option<Entry>, JitError> {
        let ledger = self.ledger.ledger();
        let request = match ledger.get::<Stored>(&layout::jit_request(id)).await {
            Ok(Some(Stored::Request(r))) => r,
            Ok(_) => return Ok(None),
            Err(e) => return Err(jit_error(e)),
        };
        let verdict = match ledger.get::<Stored>(&layout::jit_decision(id)).await {
            Ok(Some(Stored::Decision(v))) => Some(v),
            Ok(_) => None,
            Err(e) => return Err(jit_error(e)),
        };
        Ok(Some(Entry { request, verdict }))
    }

    /// Lists the store again, reading only objects not seen before: if the cache is older than
    /// [`REFRESH`], or, when `force`, unless a listing started after this call (forced
    /// listings are at least [`MIN_FORCED_REFRESH`] apart).
    pub async fn refresh(&self, force: bool) -> Result<(), JitError> {
        let asked = Instant::now();
        let _one = self.refreshing.lock().await;
        let last = *self.refreshed();
        if let Some(last) = last {
            if force {
                // A listing that started after we asked has everything we could want.
                if last >= asked {
                    return Ok(());
                }
                // Rate limit by waiting, not skipping: skipping could miss an approval
                // written just before this request.
                tokio::time::sleep_until((last + MIN_FORCED_REFRESH).into()).await;
            } else if last.elapsed() < REFRESH {
                return Ok(());
            }
        }
        let started = Instant::now();
        // Only requests that can still matter: names are UUIDv7, so the listing starts at the
        // first id made LISTED_FOR ago and older entries are forgotten.
        let oldest = ledger::first_name_at(now_us().saturating_sub(LISTED_FOR.as_micros() as u64));
        let found = self
            .ledger
            .refresh(Some(&oldest))
            .await
            .map_err(jit_error)?;
        for e in found.unreadable {
            tracing::error!(error = %e, "ignoring an unreadable access request object");
        }
        // Fresh as of when the listing started: anything written after it is not in it.
        *self.refreshed() = Some(started);
        Ok(())
    }

    /// Every request known to the cache, newest first.
    pub fn entries(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = self.ledger.with(|objects| {
            objects
                .values()
                .filter_map(|o| match o {
                    Stored::Request(r) => Some(Entry {
                        request: r.clone(),
                        verdict: verdict_of(objects, &r.id),
                    }),
                    Stored::Decision(_) => None,
                })
                .collect()
        });
        out.sort_by(|a, b| b.request.id.cmp(&a.request.id));
        out
    }

    /// The unexpired grants of `who`, from the cache (refresh first).
    pub fn grants_for(&self, who: &Identity) -> Vec<Grant> {
        let now = now_us();
        self.ledger.with(|objects| {
            objects
                .values()
                .filter_map(|o| match o {
                    Stored::Request(r) if r.user == who.user && r.issuer == who.issuer => Some(r),
                    _ => None,
                })
                .filter_map(|r| {
                    Entry {
                        request: r.clone(),
                        verdict: verdict_of(objects, &r.id),
                    }
                    .grant()
                })
                .filter(|g| g.expires_at_us > now)
                .collect()
        })
    }
}

/// The decision on request `id` among the objects read.
fn verdict_of(objects: &BTreeMap<String, Stored>, id: &str) -> Option<Verdict> {
    match objects.get(&layout::jit_decision(id)) {
        Some(Stored::Decision(v)) => Some(v.clone()),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn request(id: &str, user: &str) -> AccessRequest {
        AccessRequest {
            id: id.into(),
            user: user.into(),
            issuer: "https://i".into(),
            groups: vec![],
            claims: BTreeMap::new(),
            role: "prod-debug".into(),
            namespace: "prod".into(),
            reason: "incident 7".into(),
            ttl_secs: 60,
            created_at_us: now_us(),
        }
    }

    fn identity(user: &str) -> Identity {
        Identity {
            user: user.into(),
            groups: vec![],
            issuer: "https://i".into(),
            claims: BTreeMap::new(),
            expires_at: SystemTime::now(),
            session_grace: std::time::Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn exactly_one_decision_wins_across_replicas() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let (a, b) = (
            Jit::new(Store::open(&url).unwrap()),
            Jit::new(Store::open(&url).unwrap()),
        );
        let id = uuid::Uuid::now_v7().to_string();
        a.create(&request(&id, "dan")).await.unwrap();
        assert!(matches!(
            b.create(&request(&id, "dan")).await,
            Err(JitError::Duplicate(_))
        ));
        let approve = Verdict {
            approved: true,
            by: "sam".into(),
            reason: String::new(),
            at_us: now_us(),
        };
        let deny = Verdict {
            approved: false,
            ..approve.clone()
        };
        let (x, y) = tokio::join!(a.decide(&id, &approve), b.decide(&id, &deny));
        assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
        let winner = if x.is_ok() { approve } else { deny };

        // The other replica sees the request and the one decision.
        b.refresh(true).await.unwrap();
        let entry = b.get(&id).await.unwrap().unwrap();
        assert_eq!(entry.verdict.as_ref(), Some(&winner));
        assert_eq!(
            b.grants_for(&identity("dan")).len(),
            usize::from(winner.approved)
        );
        assert!(b.grants_for(&identity("eve")).is_empty());
    }

    #[tokio::test]
    async fn grants_expire_and_bad_objects_are_skipped() {
        let store = Store::open("memory://").unwrap();
        let jit = Jit::new(store.clone());
        let id = uuid::Uuid::now_v7().to_string();
        jit.create(&request(&id, "dan")).await.unwrap();
        let long_ago = now_us() - 120_000_000;
        jit.decide(
            &id,
            &Verdict {
                approved: true,
                by: "sam".into(),
                reason: String::new(),
                at_us: long_ago,
            },
        )
        .await
        .unwrap();
        assert!(
            jit.grants_for(&identity("dan")).is_empty(),
            "60 s TTL, approved 2 min ago"
        );

        let bad = format!("{}/{}", layout::JIT_REQUESTS, layout::jit_request("x"));
        store.put_create(&bad, &b"{not json"[..]).await.unwrap();
        let other = Jit::new(store);
        other.refresh(true).await.unwrap();
        assert_eq!(other.entries().len(), 1);
    }

    /// Requests older than LISTED_FOR are neither listed nor kept; recent ones are, whichever
    /// replica made them.
    #[tokio::test]
    async fn only_requests_that_can_still_matter_are_listed() {
        let store = Store::open("memory://").unwrap();
        let jit = Jit::new(store.clone());
        let day = 86_400_000_000;
        let now = now_us();
        let (old, recent) = (
            ledger::name_at(now - 3 * day, [0x5a; 10]),
            ledger::name_at(now - day, [0x5a; 10]),
        );
        // The old one made through this replica (so it is cached), the recent one elsewhere.
        jit.create(&AccessRequest {
            created_at_us: now - 3 * day,
            ..request(&old, "dan")
        })
        .await
        .unwrap();
        Jit::new(store.clone())
            .create(&AccessRequest {
                created_at_us: now - day,
                ..request(&recent, "dan")
            })
            .await
            .unwrap();
        assert_eq!(jit.entries().len(), 1, "only what this replica made so far");
        jit.refresh(true).await.unwrap();
        let ids: Vec<String> = jit.entries().into_iter().map(|e| e.request.id).collect();
        assert_eq!(
            ids,
            std::slice::from_ref(&recent),
            "the old request is forgotten"
        );
        // Still readable by id (approve and deny read the request itself).
        assert!(jit.get(&old).await.unwrap().is_some());
        assert!(ledger::first_name_at(now - 2 * day).as_str() > old.as_str());
        assert!(ledger::first_name_at(now - 2 * day).as_str() < recent.as_str());
    }

    #[test]
    fn first_ids_sort_by_time() {
        let t = 1_795_000_000_000_000; // µs; 1_795_000_000_000 ms = 0x1a1ee565e00
        assert_eq!(
            ledger::first_name_at(t),
            "01a1ee56-5e00-7000-8000-000000000000"
        );
        let made_then = ledger::name_at(t, [0xff; 10]);
        assert!(ledger::first_name_at(t) <= made_then);
        assert!(made_then < ledger::first_name_at(t + 1_000));
    }

    /// A copy of a store written before the ledger existed (see the fixture's README).
    pub(crate) fn legacy_store() -> (tempfile::TempDir, Store) {
        fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let dest = to.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    copy_tree(&entry.path(), &dest);
                } else {
                    std::fs::copy(entry.path(), dest).unwrap();
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        copy_tree(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../storage-schema/tests/fixtures/legacy-layout/store"),
            dir.path(),
        );
        let store = Store::open(&format!("file://{}", dir.path().display())).unwrap();
        (dir, store)
    }

    /// Requests and decisions written by the gateway before the shared ledger read back the
    /// same, and a decision made now lands beside its request under the same name.
    #[tokio::test]
    async fn requests_written_before_the_ledger_read_back() {
        let (dir, store) = legacy_store();
        let jit = Jit::new(store);
        let (approved, pending) = (
            "01a24188-c0ab-76c2-8e3a-8c5445e38e3d",
            "01a24188-c0ab-76c2-8e3a-8c55c8eea419",
        );
        let entry = jit.get(approved).await.unwrap().unwrap();
        assert_eq!(entry.request.user, "dan@example.com");
        assert_eq!(entry.request.ttl_secs, 3600);
        let verdict = entry.verdict.as_ref().unwrap();
        assert!(verdict.approved && verdict.by == "sam@example.com");
        let decided_at = verdict.at_us;
        assert_eq!(entry.state(decided_at + 1), State::Approved);
        assert_eq!(entry.state(decided_at + 3_600_000_000), State::Expired);
        let grant = entry.grant().unwrap();
        assert_eq!(grant.expires_at_us, decided_at + 3_600_000_000);

        let entry = jit.get(pending).await.unwrap().unwrap();
        assert!(entry.verdict.is_none());
        assert_eq!(entry.state(entry.request.created_at_us), State::Pending);
        let deny = Verdict {
            approved: false,
            by: "sam@example.com".into(),
            reason: "no".into(),
            at_us: now_us(),
        };
        jit.decide(pending, &deny).await.unwrap();
        assert!(
            dir.path()
                .join(format!("jit/requests/{pending}/decision.json"))
                .is_file(),
            "the same object name as before"
        );
        assert!(matches!(
            jit.decide(approved, &deny).await,
            Err(JitError::AlreadyDecided(_))
        ));
        assert_eq!(
            Jit::new(jit.ledger.ledger().store().clone())
                .get(pending)
                .await
                .unwrap()
                .unwrap()
                .verdict,
            Some(deny)
        );
    }

    #[test]
    fn states() {
        let now = now_us();
        let hour = 3_600_000_000;
        let mut entry = Entry {
            request: AccessRequest {
                created_at_us: now - hour,
                ..request("x", "dan")
            },
            verdict: None,
        };
        assert_eq!(entry.state(now), State::Pending);
        assert_eq!(entry.state(now + 24 * hour), State::Abandoned);
        entry.verdict = Some(Verdict {
            approved: true,
            by: "sam".into(),
            reason: String::new(),
            at_us: now,
        });
        assert_eq!(entry.state(now + 59_000_000), State::Approved, "60 s TTL");
        assert_eq!(entry.state(now + 60_000_000), State::Expired);
        entry.verdict.as_mut().unwrap().approved = false;
        assert_eq!(entry.state(now), State::Denied);
    }

    #[test]
    fn ids_are_checked_before_use_in_keys() {
        assert!(valid_id(&uuid::Uuid::now_v7().to_string()));
        for bad in [
            "",
            "../x",
            "0196F3A2-0000-7000-8000-000000000000",
            "x/../../y",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
