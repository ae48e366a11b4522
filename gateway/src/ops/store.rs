//! What the store's requests say: counted for the metrics, and its writes for readiness.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::metrics::Metrics;

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

/// The store reports each request's operation, duration and outcome here: counted, and its
/// writes tell readiness whether the store is writable.
#[derive(Debug)]
pub struct StoreMetrics {
    pub metrics: Arc<Metrics>,
    pub health: Arc<StoreHealth>,
}

impl storage_schema::store::StoreObserver for StoreMetrics {
    fn observe(&self, op: &'static str, elapsed: Duration, ok: bool) {
        self.metrics.store_request(op, elapsed, ok);
        if op == "put" {
            self.health.observe_write(ok);
        }
    }
}
