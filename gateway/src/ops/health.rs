//! Readiness, and the gauges read from the state at each scrape.

use crate::revocation::Check;
use crate::state::State;

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
