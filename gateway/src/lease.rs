//! Liveness leases: every gateway says, in the store, every couple of seconds, that it is alive
//! and which sessions it is recording; when one stops saying so, a surviving replica seals that
//! gateway's open sessions as `interrupted` within seconds — exactly once — and says why in the
//! audit log. A recording is never left `open` because its gateway died.
//!
//! ```text
//! leases/gateways/<gateway>/<uuidv7>.json   {"gateway","at_us","ttl_us","sessions":[…],"closed"}
//! ```
//! Each heartbeat is a new create-only object (names are time-ordered); a gateway deletes its
//! own heartbeats but the newest two, so the prefix stays small. A clean shutdown writes a last
//! heartbeat with `closed: true` (its sessions were sealed by the drain).
//!
//! **Lapse is judged on the reader's clock**: a replica notes when it first saw a gateway's
//! newest heartbeat, and the gateway has lapsed when no newer one appeared for `ttl`. Clocks of
//! replicas never need to agree. A replica that starts after another died waits one `ttl`
//! before completing its sessions.
//!
//! **Exactly once**: completing is [`storage_schema::store::seal_interrupted`], which verifies the
//! chain and then writes the seal with a create-only put; when two replicas race, one put wins
//! and the other learns the session is sealed. Only the winner writes the audit record.
//!
//! **A gateway cut off from the store** cannot renew its lease either, and after `ttl` others may
//! seal its sessions: so when its own lease has lapsed it ends its live sessions, with a reason
//! kubectl prints, rather than keep relaying into recordings that others consider finished.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use storage_schema::store::{Store, StoreError, VerifyError};
use storage_schema::{Keyring, SessionId};
use tokio::time::Instant;

use crate::live::{EndRequest, LiveSessions};

/// Where gateways' heartbeats live.
use storage_schema::layout::GATEWAY_HEARTBEATS as PREFIX;
/// The store's lease area: the one prefix where gateways delete objects (their own old
/// heartbeats).
pub use storage_schema::layout::LEASES as ROOT;

/// `[lease]` in the gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    /// Seconds between heartbeats.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
    /// Seconds without a new heartbeat after which a gateway counts as dead and its open
    /// sessions are sealed by another. Also how long a gateway that cannot write its heartbeat
    /// keeps its sessions. At least twice the heartbeat.
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            heartbeat_secs: default_heartbeat(),
            ttl_secs: default_ttl(),
        }
    }
}

fn default_heartbeat() -> u64 {
    2
}

fn default_ttl() -> u64 {
    6
}

impl LeaseConfig {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs.max(1))
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs.max(2 * self.heartbeat_secs.max(1)))
    }
}

/// One heartbeat, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub gateway: String,
    /// When it was written, µs since the Unix epoch (for people; lapse is judged locally).
    pub at_us: u64,
    pub ttl_us: u64,
    /// Sessions being recorded when it was written.
    pub sessions: Vec<SessionId>,
    /// Written at a clean shutdown: nothing to complete.
    #[serde(default)]
    pub closed: bool,
}

/// A session this replica completed for a dead gateway (for the audit record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub session: SessionId,
    pub gateway: String,
    /// When the dead gateway's last heartbeat was written.
    pub last_heartbeat_us: u64,
}

/// This gateway's lease and its view of the others'.
#[derive(Debug)]
pub struct Leases {
    store: Store,
    gateway: String,
    config: LeaseConfig,
    live: LiveSessions,
    state: Mutex<State>,
    /// One renewal at a time: sessions opening together share a heartbeat.
    renewing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    /// Our heartbeats still in the store, oldest first.
    ours: Vec<String>,
    last_renewed: Option<Instant>,
    /// When the newest written heartbeat started (it names the sessions live then).
    last_started: Option<Instant>,
    /// Whether our live sessions were ended for a lapsed lease (once per lapse).
    ended_for_lapse: bool,
    /// Others: newest heartbeat name seen, when we first saw it, and what it said.
    others: HashMap<String, Seen>,
    /// Sessions already completed or found sealed: not looked at again.
    done: HashSet<SessionId>,
}

#[derive(Debug)]
struct Seen {
    name: String,
    first_seen: Instant,
    heartbeat: Option<Heartbeat>,
}

/// What the lease says to do with live sessions.
const LAPSED_MESSAGE: &str = "kubetape: this gateway lost contact with the recording store long enough that other gateways may seal its sessions; the session was ended (reconnect)";

impl Leases {
    /// `gateway` must be unique among live gateways sharing the store (instance name plus a
    /// per-process id).
    pub fn new(store: Store, gateway: String, config: LeaseConfig, live: LiveSessions) -> Self {
        Self {
            store,
            gateway,
            config,
            live,
            state: Mutex::default(),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    /// Makes sure a heartbeat written after `since` is in the store, naming every session live
    /// at that moment: a session just opened is covered before anything is relayed, so a
    /// gateway that dies a moment later still has it completed. Concurrent callers share one
    /// write.
    pub async fn cover(&self, since: Instant) -> Result<(), StoreError> {
        let _turn = self.renewing.lock().await;
        if self.lock().last_started.is_some_and(|t| t >= since) {
            return Ok(());
        }
        self.renew_locked(false).await
    }

    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds since our lease was last renewed (`None` before the first renewal).
    pub fn age(&self) -> Option<Duration> {
        self.lock().last_renewed.map(|t| t.elapsed())
    }

    /// Writes a heartbeat naming our live sessions, and deletes ours but the newest two.
    pub async fn renew(&self, closed: bool) -> Result<(), StoreError> {
        let _turn = self.renewing.lock().await;
        self.renew_locked(closed).await
    }

    async fn renew_locked(&self, closed: bool) -> Result<(), StoreError> {
        let started = Instant::now();
        let heartbeat = Heartbeat {
            gateway: self.gateway.clone(),
            at_us: storage_schema::time::unix_micros_now(),
            ttl_us: u64::try_from(self.config.ttl().as_micros()).unwrap_or(u64::MAX),
            sessions: self.live.ids(),
            closed,
        };
        let name = format!("{}.json", uuid::Uuid::now_v7());
        let key = format!("{PREFIX}/{}/{name}", self.gateway);
        let body = serde_json::to_vec(&heartbeat).expect("heartbeat serializes");
        self.store.put_create(&key, body).await?;
        let stale: Vec<String> = {
            let mut st = self.lock();
            st.last_renewed = Some(Instant::now());
            st.last_started = Some(started);
            st.ended_for_lapse = false;
            st.ours.push(name);
            let keep_from = st.ours.len().saturating_sub(2);
            st.ours.drain(..keep_from).collect()
        };
        for old in stale {
            if let Err(e) = self
                .store
                .delete(&format!("{PREFIX}/{}/{old}", self.gateway))
                .await
            {
                tracing::debug!(error = %e, "an old heartbeat could not be deleted");
            }
        }
        Ok(())
    }

    /// Ends our live sessions if our lease has lapsed (others may be sealing them). Returns how
    /// many were asked to end.
    pub fn enforce_own_lapse(&self) -> usize {
        let ttl = self.config.ttl();
        let lapsed = {
            let mut st = self.lock();
            let lapsed = st.last_renewed.is_some_and(|t| t.elapsed() > ttl) && !st.ended_for_lapse;
            if lapsed {
                st.ended_for_lapse = true;
            }
            lapsed
        };
        if !lapsed {
            return 0;
        }
        tracing::error!(ttl = ?ttl, "this gateway's lease lapsed: ending its live sessions");
        self.live.end_all(&EndRequest {
            message: LAPSED_MESSAGE.into(),
            marker: "the gateway's lease in the store lapsed".into(),
        })
    }

    /// Looks at every other gateway's heartbeats; seals the open sessions of those that lapsed.
    pub async fn complete_lapsed(&self, keyring: &Keyring) -> Result<Vec<Completed>, StoreError> {
        let gateways = self.store.list_dirs(PREFIX).await?;
        let ttl = self.config.ttl();
        let mut lapsed: Vec<Heartbeat> = Vec::new();
        for g in gateways.into_iter().filter(|g| *g != self.gateway) {
            let after = self.lock().others.get(&g).map(|s| s.name.clone());
            let newer = self
                .store
                .list_after(&format!("{PREFIX}/{g}"), after.as_deref())
                .await?;
            if let Some((name, _)) = newer.last() {
                let heartbeat = match self.store.get_opt(&format!("{PREFIX}/{g}/{name}")).await? {
                    Some(bytes) => serde_json::from_slice::<Heartbeat>(&bytes).ok(),
                    // Deleted by its writer since the listing: a newer one exists.
                    None => continue,
                };
                self.lock().others.insert(
                    g.clone(),
                    Seen {
                        name: name.clone(),
                        first_seen: Instant::now(),
                        heartbeat,
                    },
                );
                continue;
            }
            let st = self.lock();
            if let Some(seen) = st.others.get(&g)
                && seen.first_seen.elapsed() > ttl
                && let Some(hb) = &seen.heartbeat
                && !hb.closed
                && hb.sessions.iter().any(|s| !st.done.contains(s))
            {
                lapsed.push(hb.clone());
            }
        }
        let mut completed = Vec::new();
        for hb in lapsed {
            for &session in &hb.sessions {
                if self.lock().done.contains(&session) {
                    continue;
                }
                let sealed = storage_schema::layout::seal(session);
                if self.store.get_opt(&sealed).await?.is_some() {
                    self.lock().done.insert(session);
                    continue;
                }
                match storage_schema::store::seal_interrupted(&self.store, keyring, session).await {
                    Ok(_) => {
                        tracing::warn!(%session, gateway = %hb.gateway, "sealed a dead gateway's session as interrupted");
                        completed.push(Completed {
                            session,
                            gateway: hb.gateway.clone(),
                            last_heartbeat_us: hb.at_us,
                        });
                        self.lock().done.insert(session);
                    }
                    // Another replica won the race, or it was sealed meanwhile.
                    Err(VerifyError::AlreadySealed(..))
                    | Err(VerifyError::Store(StoreError::AlreadyExists { .. })) => {
                        self.lock().done.insert(session);
                    }
                    Err(e) => {
                        tracing::error!(%session, gateway = %hb.gateway, error = %e, "a dead gateway's session could not be sealed");
                        // Damage is reported once, not at every scan.
                        if matches!(e, VerifyError::Damaged(..) | VerifyError::NotFound(_)) {
                            self.lock().done.insert(session);
                        }
                    }
                }
            }
        }
        Ok(completed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_schema::store::{KeySource, Recorder, verify_session};
    use storage_schema::{FlushPolicy, Identity, SessionKind, SessionMeta, SessionState, Target};

    fn config() -> LeaseConfig {
        LeaseConfig {
            heartbeat_secs: 1,
            ttl_secs: 2,
        }
    }

    /// A session with one chunk in the store and no seal: what a gateway that died leaves.
    async fn open_session(store: &Store, keyring: &Keyring) -> SessionId {
        let meta = SessionMeta::new(
            SessionKind::Exec,
            Identity {
                user: "alice".into(),
                groups: vec![],
                issuer: None,
                claims: Default::default(),
            },
            Target::default(),
            vec!["sh".into()],
            true,
        );
        let id = meta.session;
        let recorder = Recorder::start(store.clone(), keyring, meta, FlushPolicy::default())
            .await
            .unwrap();
        recorder
            .record_data(storage_schema::Stream::Stdout, b"$ ")
            .await
            .unwrap();
        recorder.finish_unsealed().await.unwrap();
        id
    }

    async fn state_of(store: &Store, keyring: &Keyring, id: SessionId) -> SessionState {
        verify_session(store, id, KeySource::Keyring(keyring))
            .await
            .unwrap()
            .state
    }

    #[tokio::test]
    async fn a_dead_gateways_sessions_are_sealed_once_by_a_survivor() {
        let store = Store::open("memory://").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (keyring, _) = Keyring::open_or_init(&dir.path().join("keys")).unwrap();
        let dead_live = LiveSessions::default();
        let dead = Leases::new(store.clone(), "dead.1".into(), config(), dead_live.clone());
        let session = open_session(&store, &keyring).await;
        let _registered = dead_live.register("alice", session);
        let finished = open_session(&store, &keyring).await;
        let _also = dead_live.register("alice", finished);
        dead.renew(false).await.unwrap();
        // One of its sessions ended normally after the last heartbeat.
        storage_schema::store::seal_interrupted(&store, &keyring, finished)
            .await
            .unwrap();
        // Two survivors look; the dead one never renews again.
        let a = Leases::new(
            store.clone(),
            "a.2".into(),
            config(),
            LiveSessions::default(),
        );
        let b = Leases::new(
            store.clone(),
            "b.3".into(),
            config(),
            LiveSessions::default(),
        );
        assert!(a.complete_lapsed(&keyring).await.unwrap().is_empty());
        assert!(b.complete_lapsed(&keyring).await.unwrap().is_empty());
        assert!(matches!(
            state_of(&store, &keyring, session).await,
            SessionState::Open
        ));
        tokio::time::sleep(config().ttl() + Duration::from_millis(200)).await;
        let (by_a, by_b) = tokio::join!(a.complete_lapsed(&keyring), b.complete_lapsed(&keyring));
        let completed: Vec<Completed> = by_a.unwrap().into_iter().chain(by_b.unwrap()).collect();
        assert_eq!(
            completed.len(),
            1,
            "exactly one survivor seals it: {completed:?}"
        );
        assert_eq!(completed[0].session, session);
        assert_eq!(completed[0].gateway, "dead.1");
        assert!(matches!(
            state_of(&store, &keyring, session).await,
            SessionState::Interrupted(_)
        ));
        // Nothing more to do on later scans.
        assert!(a.complete_lapsed(&keyring).await.unwrap().is_empty());
        assert!(b.complete_lapsed(&keyring).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_live_or_cleanly_closed_gateway_is_left_alone_and_heartbeats_are_pruned() {
        let store = Store::open("memory://").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (keyring, _) = Keyring::open_or_init(&dir.path().join("keys")).unwrap();
        let live = LiveSessions::default();
        let alive = Leases::new(store.clone(), "alive.1".into(), config(), live.clone());
        let session = open_session(&store, &keyring).await;
        let _registered = live.register("alice", session);
        let closed = Leases::new(
            store.clone(),
            "closed.2".into(),
            config(),
            LiveSessions::default(),
        );
        closed.renew(true).await.unwrap();
        let watcher = Leases::new(
            store.clone(),
            "w.3".into(),
            config(),
            LiveSessions::default(),
        );
        let deadline = Instant::now() + config().ttl() * 2;
        while Instant::now() < deadline {
            alive.renew(false).await.unwrap();
            assert!(watcher.complete_lapsed(&keyring).await.unwrap().is_empty());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(matches!(
            state_of(&store, &keyring, session).await,
            SessionState::Open
        ));
        // Only the newest two heartbeats of a gateway stay in the store.
        let ours = store.list(&format!("{PREFIX}/alive.1")).await.unwrap();
        assert_eq!(ours.len(), 2, "{ours:?}");
        let hb: Heartbeat = serde_json::from_slice(
            &store
                .get(&format!("{PREFIX}/alive.1/{}", ours[1].0))
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(hb.sessions, vec![session]);
    }

    #[tokio::test]
    async fn a_gateway_whose_lease_lapsed_ends_its_own_sessions() {
        let store = Store::open("memory://").unwrap();
        let live = LiveSessions::default();
        let leases = Leases::new(store, "cut.1".into(), config(), live.clone());
        let mut s = live.register("alice", SessionId::new());
        leases.renew(false).await.unwrap();
        assert_eq!(leases.enforce_own_lapse(), 0);
        tokio::time::sleep(config().ttl() + Duration::from_millis(100)).await;
        assert_eq!(leases.enforce_own_lapse(), 1);
        assert_eq!(s.ended().await.message, LAPSED_MESSAGE);
        // Once per lapse.
        assert_eq!(leases.enforce_own_lapse(), 0);
    }
}
