//! What `/metrics` exposes, in the Prometheus text format. Every label set is bounded — kinds,
//! directions, operations, results, reasons — never user names, session ids or paths, so the
//! series count cannot grow with traffic.
//!
//! Counters are bumped where things happen (the relay, the store, authentication, the policy);
//! gauges that describe state (live sessions, grant count, the revocation list's age, drain) are
//! read from the state at each scrape ([`Metrics::encode`]), so they cannot drift from it.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Which way bytes went.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Direction {
    /// kubectl → cluster (stdin, port-forward uploads).
    to_cluster,
    /// cluster → kubectl (output, port-forward downloads).
    to_client,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    pub direction: Direction,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// A session kind's name (`exec`, `attach`, `port-forward`, ...): a closed set.
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub op: &'static str,
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// The gateway's metrics. Cheap to share (`Arc`); every method takes `&self`.
pub struct Metrics {
    registry: Registry,
    pub sessions_live: Family<KindLabel, Gauge>,
    pub sessions_total: Family<KindLabel, Counter>,
    pub bytes_relayed: Family<DirectionLabel, Counter>,
    pub bytes_recorded: Counter,
    pub store_requests: Family<StoreLabels, Counter>,
    pub store_request_duration: Family<OpLabel, Histogram>,
    pub auth_failures: Family<ReasonLabel, Counter>,
    pub policy_decisions: Family<ResultLabel, Counter>,
    pub jit_grants_live: Gauge,
    pub revocation_list_age: Gauge<f64, AtomicU64>,
    pub audit_records_pending: Gauge,
    pub audit_records_lost: Counter,
    pub spool_bytes: Gauge,
    pub chunks_spooled: Gauge,
    pub spool_writes_refused: Counter,
    pub draining: Gauge,
    pub connections: Gauge,
    pub lease_age: Gauge<f64, AtomicU64>,
    pub recording_lag: Gauge<f64, AtomicU64>,
    pub sessions_completed: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kubetape");
        // 1 ms to ~16 s: a local directory answers in microseconds, S3 in tens of
        // milliseconds, a failing store in seconds.
        let store_request_duration = Family::<OpLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        macro_rules! metric {
            ($name:literal, $help:literal, $value:expr) => {{
                let m = $value;
                registry.register($name, $help, m.clone());
                m
            }};
        }
        Self {
            sessions_live: metric!(
                "sessions_live",
                "Recorded streams live on this gateway, by kind",
                Family::default()
            ),
            sessions_total: metric!(
                "sessions",
                "Recorded streams opened, by kind",
                Family::default()
            ),
            bytes_relayed: metric!(
                "bytes_relayed",
                "Stream bytes relayed between kubectl and the cluster",
                Family::default()
            ),
            bytes_recorded: metric!(
                "bytes_recorded",
                "Stream bytes handed to recorders",
                Counter::default()
            ),
            store_requests: metric!(
                "store_requests",
                "Object store requests, by operation and result",
                Family::default()
            ),
            store_request_duration: metric!(
                "store_request_duration_seconds",
                "Object store request latency, by operation",
                store_request_duration
            ),
            auth_failures: metric!(
                "auth_failures",
                "Requests refused before authorization, by reason",
                Family::default()
            ),
            policy_decisions: metric!(
                "policy_decisions",
                "Authorization decisions, by result",
                Family::default()
            ),
            jit_grants_live: metric!(
                "jit_grants_live",
                "Just-in-time grants in force",
                Gauge::default()
            ),
            revocation_list_age: metric!(
                "revocation_list_age_seconds",
                "Seconds since the revocation list was last read from the store",
                Gauge::default()
            ),
            audit_records_pending: metric!(
                "audit_records_pending",
                "Audit records waiting to be written to the store",
                Gauge::default()
            ),
            audit_records_lost: metric!(
                "audit_records_lost",
                "Audit records that could not be kept",
                Counter::default()
            ),
            spool_bytes: metric!(
                "spool_bytes",
                "Bytes waiting in the local spool for the store (recordings and the audit journal)",
                Gauge::default()
            ),
            chunks_spooled: metric!(
                "chunks_spooled",
                "Recording objects (chunks, keys, seals) waiting in the local spool for the store",
                Gauge::default()
            ),
            spool_writes_refused: metric!(
                "spool_writes_refused",
                "Spool writes refused (the spool full, or its disk failing): sessions pause",
                Counter::default()
            ),
            draining: metric!(
                "draining",
                "1 while the gateway drains for shutdown",
                Gauge::default()
            ),
            connections: metric!(
                "connections",
                "Client connections served now",
                Gauge::default()
            ),
            lease_age: metric!(
                "lease_age_seconds",
                "Seconds since this gateway's liveness lease was last renewed in the store",
                Gauge::default()
            ),
            recording_lag: metric!(
                "recording_lag_seconds",
                "Age of the oldest relayed output of a live session that is in neither the store nor the spool (what a crash would lose beyond the flush interval)",
                Gauge::default()
            ),
            sessions_completed: metric!(
                "sessions_completed",
                "Sessions of dead gateways this gateway sealed as interrupted",
                Counter::default()
            ),
            registry,
        }
    }

    /// The text exposition (Prometheus text format 0.0.4) of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Counts one store request.
    pub fn store_request(&self, op: &'static str, elapsed: Duration, ok: bool) {
        self.store_requests
            .get_or_create(&StoreLabels {
                op,
                result: if ok { "ok" } else { "error" },
            })
            .inc();
        self.store_request_duration
            .get_or_create(&OpLabel { op })
            .observe(elapsed.as_secs_f64());
    }

    /// The counter of bytes relayed one way, to keep and bump without a lookup per frame.
    pub fn relayed_counter(&self, direction: Direction) -> Counter {
        self.bytes_relayed
            .get_or_create(&DirectionLabel { direction })
            .clone()
    }
}
