//! Audit records of unauthenticated requests, aggregated per client once they repeat.
//!
//! Every 401 became a record in the store's audit stream, with no limit, so anybody who could
//! reach the port could make the gateway write as fast as they could send garbage tokens — a cost
//! and a way to bury the records that matter. Now each client address gets its first
//! [`INDIVIDUAL`] 401s of a minute recorded one by one (enough to see what it tried); the rest of
//! that minute become one record that says how many there were ([`AuditRecord::extra`] field
//! `repeated`), written when the minute ends. Nothing is dropped silently: the count is exact.
//! The table of clients is bounded; beyond [`MAX_CLIENTS`] addresses, further ones share one
//! entry (`client` = "*").

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use storage_schema::{AuditDecision, AuditRecord};
use tokio::time::Instant;

/// 401s a client gets recorded one by one per window.
pub const INDIVIDUAL: u32 = 10;
/// The aggregation window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Client addresses tracked at once.
pub const MAX_CLIENTS: usize = 10_000;

#[derive(Debug)]
struct Window {
    started: Instant,
    recorded: u32,
    /// The first record not written one by one, kept as the template of the aggregate.
    sample: Option<AuditRecord>,
    suppressed: u64,
}

/// Per-client windows of unauthenticated requests.
#[derive(Debug, Default)]
pub struct Unauthenticated {
    windows: Mutex<HashMap<Option<IpAddr>, Window>>,
}

impl Unauthenticated {
    /// Whether `record` (a 401 from `ip`) is written now; if not, it is counted into its
    /// client's aggregate.
    pub fn admit(&self, ip: IpAddr, record: &AuditRecord, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let key = if windows.len() >= MAX_CLIENTS && !windows.contains_key(&Some(ip)) {
            None
        } else {
            Some(ip)
        };
        let w = windows.entry(key).or_insert_with(|| Window {
            started: now,
            recorded: 0,
            sample: None,
            suppressed: 0,
        });
        if w.recorded < INDIVIDUAL {
            w.recorded += 1;
            return true;
        }
        if w.sample.is_none() {
            w.sample = Some(record.clone());
        }
        w.suppressed += 1;
        false
    }

    /// The aggregate records of windows that ended by `now`; their clients start afresh.
    pub fn expired(&self, now: Instant) -> Vec<AuditRecord> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        windows.retain(|key, w| {
            if now < w.started + WINDOW {
                return true;
            }
            if let Some(mut r) = w.sample.take() {
                if key.is_none() {
                    r.client = "*".into();
                }
                r.decision = AuditDecision::Unauthenticated;
                r.reason = Some(format!(
                    "{} more unauthenticated requests from this client in {} s after the first {INDIVIDUAL} (aggregated; the first is shown)",
                    w.suppressed,
                    WINDOW.as_secs()
                ));
                r.extra
                    .insert("repeated".into(), serde_json::Value::from(w.suppressed));
                out.push(r);
            }
            false
        });
        out
    }

    /// Everything still counted, as aggregates (at shutdown).
    pub fn flush(&self) -> Vec<AuditRecord> {
        self.expired(Instant::now() + WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(client: &str) -> AuditRecord {
        serde_json::from_value(serde_json::json!({
            "time_us": 1, "gateway": "g", "client": client, "method": "GET", "path": "/api",
            "verb": "get", "decision": "unauthenticated", "status": 401, "latency_ms": 0.1,
        }))
        .unwrap()
    }

    #[test]
    fn a_flood_from_one_client_becomes_one_counted_record_per_window() {
        let u = Unauthenticated::default();
        let t0 = Instant::now();
        let flooder: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let written = (0..1000)
            .filter(|_| u.admit(flooder, &record("10.0.0.1:1"), t0))
            .count();
        assert_eq!(written, INDIVIDUAL as usize);
        // Another client is not affected by the flood.
        assert!(u.admit(other, &record("10.0.0.2:1"), t0));
        assert!(u.expired(t0 + WINDOW / 2).is_empty());
        let aggregated = u.expired(t0 + WINDOW);
        assert_eq!(
            aggregated.len(),
            1,
            "only the flooder had requests left over"
        );
        assert_eq!(aggregated[0].extra["repeated"], 990);
        assert_eq!(aggregated[0].client, "10.0.0.1:1");
        // A new window starts afresh.
        assert!(u.admit(flooder, &record("10.0.0.1:1"), t0 + WINDOW));
    }

    #[test]
    fn the_table_of_clients_is_bounded() {
        let u = Unauthenticated::default();
        let t0 = Instant::now();
        for i in 0..(MAX_CLIENTS + 50) {
            let ip = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            for _ in 0..=INDIVIDUAL {
                u.admit(ip, &record("x:1"), t0);
            }
        }
        assert!(u.windows.lock().unwrap().len() <= MAX_CLIENTS + 1);
        let all = u.flush();
        let total: u64 = all
            .iter()
            .map(|r| r.extra["repeated"].as_u64().unwrap())
            .sum();
        // Every request beyond the individually written ones is counted, none lost.
        let written = MAX_CLIENTS as u64 * u64::from(INDIVIDUAL) + u64::from(INDIVIDUAL);
        assert_eq!(
            total + written,
            (MAX_CLIENTS as u64 + 50) * u64::from(INDIVIDUAL + 1)
        );
        assert!(all.iter().any(|r| r.client == "*"));
    }
}
