//! Readiness, and the gauges read from the state at each scrape.

use std::sync::atomic::Ordering;

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
    m.recording_lag
        .set(state.sessions.recording_lag().as_secs_f64());
    let audit = state.audit.stats();
    m.audit_records_pending
        .set(audit.pending.load(Ordering::Relaxed) as i64);
    // A counter follows the log's own running total (never goes back).
    let lost = audit.lost_total.load(Ordering::Relaxed);
    let shown = m.audit_records_lost.get();
    if lost > shown {
        m.audit_records_lost.inc_by(lost - shown);
    }
    if let Some(spool) = state.sessions.spool() {
        let s = spool.stats();
        m.spool_bytes.set(s.bytes as i64);
        m.chunks_spooled.set(s.objects as i64);
        let refused = m.spool_writes_refused.get();
        if s.refused_total > refused {
            m.spool_writes_refused.inc_by(s.refused_total - refused);
        }
    }
}
