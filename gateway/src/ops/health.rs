//! Readiness, and the gauges read from the state at each scrape.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::revocation::Check;
use crate::state::State;

/// How long after its last successful write the store still counts as writable. The gateway's
/// liveness lease writes every couple of seconds, so a healthy store is never this quiet.
pub const STORE_WRITE_FRESH: Duration = Duration::from_secs(10);

/// What the store's recent writes say about it, as seen by every request the gateway makes.
#[derive(Debug, Default)]
pub struct StoreHealth {
    inner: Mutex<Writes>,
}

#[derive(Debug, Default)]
struct Writes {
    last_ok: Option<Instant>,
    last_error: Option<Instant>,
}

impl StoreHealth {
    pub fn observe_write(&self, ok: bool) {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            w.last_ok = Some(Instant::now());
        } else {
            w.last_error = Some(Instant::now());
        }
    }

    /// `None` when writable: the newest write succeeded, recently.
    pub fn problem(&self) -> Option<String> {
        let w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match (w.last_ok, w.last_error) {
            (None, None) => Some("store: nothing written yet".into()),
            (ok, Some(err)) if ok.is_none_or(|ok| err > ok) => Some(format!(
                "store: the last write failed {:.0?} ago",
                err.elapsed()
            )),
            (Some(ok), _) if ok.elapsed() > STORE_WRITE_FRESH => Some(format!(
                "store: no successful write for {:.0?}",
                ok.elapsed()
            )),
            _ => None,
        }
    }
}

/// `Ok` when the gateway should get traffic; else every reason it should not.
pub fn readiness(state: &State) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if state.sessions.drain().is_draining() {
        problems.push("draining: shutting down".to_string());
    }
    if let Some(p) = state.store_health.problem() {
        problems.push(p);
    }
    if let Check::Stale(_) = state.revocations.check("") {
        problems.push("revocation list: too old to trust (the store cannot be read)".into());
    }
    // The policy: the gateway does not start without a valid one, and a bad edit keeps the last
    // good one in force (logged), so a policy is always loaded.
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Gauges that describe state, read now.
pub fn refresh_gauges(state: &State) {
    let m = &state.metrics;
    m.draining
        .set(i64::from(state.sessions.drain().is_draining()));
    m.connections.set(state.limits.in_use() as i64);
}
