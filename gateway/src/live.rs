//! The live exec/attach sessions of this gateway process, by user, so that something outside the
//! relay (a revocation, an expiring grant) can end them.
//!
//! A relay registers its session before it starts pumping and holds the returned [`LiveSession`]
//! for the session's life; dropping it unregisters. [`LiveSessions::end_user`] sends every
//! session of a user the reason it must end; the relay selects on [`LiveSession::ended`] and
//! closes the stream with a Status carrying that reason, so kubectl prints it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use storage_schema::SessionId;
use tokio::sync::watch;

/// Why a live session is being ended from outside; `message` is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndRequest {
    /// What kubectl prints, e.g. `kubetape: session ended: access revoked`.
    pub message: String,
    /// The marker written into the recording, e.g. `access revoked: offboarded`.
    pub marker: String,
}

type Senders = HashMap<SessionId, watch::Sender<Option<EndRequest>>>;

/// Registry of live sessions: user → session → end signal.
#[derive(Debug, Clone, Default)]
pub struct LiveSessions {
    inner: Arc<Mutex<HashMap<String, Senders>>>,
}

/// One registered session; unregisters on drop.
#[derive(Debug)]
pub struct LiveSession {
    registry: LiveSessions,
    user: String,
    session: SessionId,
    ended: watch::Receiver<Option<EndRequest>>,
}

impl LiveSessions {
    /// Registers `session` of `user`.
    pub fn register(&self, user: &str, session: SessionId) -> LiveSession {
        let (tx, rx) = watch::channel(None);
        self.lock()
            .entry(user.to_string())
            .or_default()
            .insert(session, tx);
        LiveSession {
            registry: self.clone(),
            user: user.to_string(),
            session,
            ended: rx,
        }
    }

    /// Asks every live session of `user` to end; returns how many were asked.
    pub fn end_user(&self, user: &str, why: &EndRequest) -> usize {
        let map = self.lock();
        let Some(sessions) = map.get(user) else {
            return 0;
        };
        for tx in sessions.values() {
            tx.send_replace(Some(why.clone()));
        }
        sessions.len()
    }

    /// Asks one session to end; false if it is not live here.
    pub fn end_session(&self, session: SessionId, why: &EndRequest) -> bool {
        let map = self.lock();
        match map.values().find_map(|s| s.get(&session)) {
            Some(tx) => {
                tx.send_replace(Some(why.clone()));
                true
            }
            None => false,
        }
    }

    /// Asks every live session to end (this gateway's lease lapsed); returns how many.
    pub fn end_all(&self, why: &EndRequest) -> usize {
        let map = self.lock();
        let mut n = 0;
        for tx in map.values().flat_map(HashMap::values) {
            tx.send_replace(Some(why.clone()));
            n += 1;
        }
        n
    }

    /// Every live session, in no particular order.
    pub fn ids(&self) -> Vec<SessionId> {
        self.lock()
            .values()
            .flat_map(|s| s.keys().copied())
            .collect()
    }

    /// Number of live sessions of `user`.
    pub fn count(&self, user: &str) -> usize {
        self.lock().get(user).map_or(0, HashMap::len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Senders>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LiveSession {
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Resolves with the reason once the session has been asked to end (at once if it already
    /// was). Cancel-safe.
    pub async fn ended(&mut self) -> EndRequest {
        loop {
            if let Some(why) = self.ended.borrow_and_update().clone() {
                return why;
            }
            if self.ended.changed().await.is_err() {
                // The registry entry is gone, which only `drop(self)` does: never resolves.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        let mut map = self.registry.lock();
        if let Some(sessions) = map.get_mut(&self.user) {
            sessions.remove(&self.session);
            if sessions.is_empty() {
                map.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why() -> EndRequest {
        EndRequest {
            message: "m".into(),
            marker: "k".into(),
        }
    }

    #[tokio::test]
    async fn ends_only_the_users_sessions_and_unregisters_on_drop() {
        let live = LiveSessions::default();
        let mut a1 = live.register("alice", SessionId::new());
        let mut a2 = live.register("alice", SessionId::new());
        let mut b = live.register("bob", SessionId::new());
        assert_eq!(live.end_user("alice", &why()), 2);
        assert_eq!(a1.ended().await, why());
        assert_eq!(a2.ended().await, why());
        let bob_ended = tokio::time::timeout(std::time::Duration::from_millis(20), b.ended()).await;
        assert!(bob_ended.is_err(), "bob's session must keep running");
        drop(a1);
        assert_eq!(live.count("alice"), 1);
        drop(a2);
        assert_eq!(live.count("alice"), 0);
        assert_eq!(live.end_user("alice", &why()), 0);
        assert!(live.end_session(b.session(), &why()));
        assert_eq!(b.ended().await, why());
    }
}
