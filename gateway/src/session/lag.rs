//! How far behind durability the live sessions' recordings are, for `/metrics`
//! (`kubetape_recording_lag_seconds`): the age of the oldest output a recorder holds that is in
//! neither the store nor the spool, i.e. what a crash now would lose beyond the flush interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use storage_schema::store::LagProbe;

/// The live sessions' recorders, readable at each scrape.
#[derive(Debug, Clone, Default)]
pub struct Lags {
    probes: Arc<Mutex<HashMap<u64, LagProbe>>>,
    next: Arc<AtomicU64>,
}

/// A session's place in [`Lags`], for as long as the session lives.
#[derive(Debug)]
pub struct LagEntry {
    lags: Lags,
    key: u64,
}

impl Lags {
    pub fn add(&self, probe: LagProbe) -> LagEntry {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(key, probe);
        LagEntry {
            lags: self.clone(),
            key,
        }
    }

    /// Sessions whose recorder is readable.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The largest lag among live sessions (zero with none, or all durable).
    pub fn oldest(&self) -> Duration {
        let us = self
            .lock()
            .values()
            .map(|p| p.lag().oldest_us)
            .max()
            .unwrap_or(0);
        Duration::from_micros(us)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, LagProbe>> {
        self.probes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for LagEntry {
    fn drop(&mut self) {
        self.lags.lock().remove(&self.key);
    }
}
