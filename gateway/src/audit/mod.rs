//! The audit log: one [`AuditRecord`] per request, allowed or denied (401s included), written to
//! two sinks off the request path:
//!
//! - **stdout**, one JSON line per record, for log collectors (a dedicated thread; a stalled
//!   reader costs dropped lines, counted and reported, never a stalled gateway);
//! - **the object store**, as an *audit stream*: a stream of kind `audit` written by the same
//!   recorder as terminal sessions, so it is append-only, hash-chained, signed and encrypted and
//!   `kubetape verify` / `kubetape audit` check it. Its class puts it under `audit/<id>/`, apart
//!   from sessions (`storage_schema::layout`; older gateways wrote it under `sessions/`, where
//!   readers still find it). Records reach the store within the flush interval (≤ 1 s); a
//!   stream is sealed every `rotate_secs` (an hour) and at shutdown, and the next record opens a
//!   new one.
//!
//! ```text
//! handle() ──emit()──► [bounded queue] ──► writer task ──► Recorder (audit stream) ──► store
//!          └─────────► [bounded queue] ──► stdout thread
//! ```
//!
//! # When the store cannot be written
//! The writer says so loudly (an `error` log line naming the cause, and another when it
//! recovers), keeps the records it could not write (up to [`PENDING_LIMIT`]) and retries every
//! second with a new stream. By default (`audit.fail_closed = false`) requests keep being
//! served — as for recordings, only streams need the store, so a store outage does not stop
//! `kubectl get` — the records wait in memory and records that do not fit are dropped and
//! counted in the error log. With `audit.fail_closed = true` (what a security team that must
//! account for every request wants) the gateway refuses every request with 503 while the audit
//! stream is down, and [`AuditLog::emit`] waits for room in a full queue instead of dropping:
//! nothing is served that the audit log does not hold. Either way, records the recorder had
//! accepted but not yet uploaded when the store failed (at most one flush interval's worth) are
//! lost, as with recordings.

pub mod request;
pub mod unauthenticated;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use storage_schema::store::{Recorder, Store};
use storage_schema::{
    AuditRecord, EventKind, FlushPolicy, Identity as RecordedIdentity, Keyring, SessionKind,
    SessionMeta, Target,
};
use tokio::sync::{mpsc, oneshot};

pub use self::request::RequestAttrs;
pub use storage_schema::AuditDecision;

/// Records kept in memory while the store cannot be written; older ones are dropped beyond it.
pub const PENDING_LIMIT: usize = 10_000;

/// `[audit]` in the gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Refuse requests (503) while the audit stream cannot be written. Default: false.
    #[serde(default)]
    pub fail_closed: bool,
    /// Write each record as a JSON line to stdout. Default: true.
    #[serde(default = "yes")]
    pub stdout: bool,
    /// Seal the audit stream and start a new one this often, in seconds. Default: 3600.
    #[serde(default = "default_rotate_secs")]
    pub rotate_secs: u64,
    /// Name of this gateway instance in the audit streams' metadata. Default: `<hostname>-<pid>`.
    #[serde(default)]
    pub instance: Option<String>,
    /// Records queued for each sink before `emit` waits (fail closed) or drops. Default: 4096.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            fail_closed: false,
            stdout: true,
            rotate_secs: default_rotate_secs(),
            instance: None,
            queue: default_queue(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_rotate_secs() -> u64 {
    3600
}

fn default_queue() -> usize {
    4096
}

/// This host's name and process id: distinct for replicas, even two on one host.
pub fn default_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "gateway".into());
    format!("{host}-{}", std::process::id())
}

enum Msg {
    Record(String),
    Shutdown(oneshot::Sender<()>),
}

/// The handle requests emit records through. Cheap to share.
#[derive(Debug)]
pub struct AuditLog {
    instance: String,
    fail_closed: bool,
    store_tx: mpsc::Sender<Msg>,
    stdout_tx: Option<std::sync::mpsc::SyncSender<String>>,
    /// False while the audit stream cannot be written.
    healthy: Arc<AtomicBool>,
    dropped: AtomicU64,
}

/// What the pieces of the request path learned, for the record.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub identity: Option<crate::authn::Identity>,
    pub decision: AuditDecision,
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub session: Option<storage_schema::SessionId>,
    pub grant: Option<String>,
}

impl Default for Outcome {
    fn default() -> Self {
        Self {
            identity: None,
            decision: AuditDecision::Unauthenticated,
            rule: None,
            reason: None,
            session: None,
            grant: None,
        }
    }
}

impl Outcome {
    /// Marks the request allowed by `rule`.
    pub fn allow(&mut self, rule: impl Into<String>) {
        self.decision = AuditDecision::Allow;
        self.rule = Some(rule.into());
    }

    /// Marks the request denied with `rule` and the message the client got.
    pub fn deny(&mut self, rule: impl Into<String>, reason: impl Into<String>) {
        self.decision = AuditDecision::Deny;
        self.rule = Some(rule.into());
        self.reason = Some(reason.into());
    }
}

impl AuditLog {
    /// Starts the sinks. Must run inside a tokio runtime.
    pub fn start(
        config: &AuditConfig,
        store: Store,
        keyring: Keyring,
        flush: FlushPolicy,
        cluster: String,
    ) -> Arc<Self> {
        let instance = config.instance.clone().unwrap_or_else(default_instance);
        let healthy = Arc::new(AtomicBool::new(true));
        let (store_tx, rx) = mpsc::channel(config.queue.max(1));
        let writer = Writer {
            store,
            keyring,
            flush,
            cluster,
            instance: instance.clone(),
            rotate: Duration::from_secs(config.rotate_secs.max(1)),
            healthy: healthy.clone(),
        };
        tokio::spawn(writer.run(rx));
        let stdout_tx = config.stdout.then(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<String>(config.queue.max(1));
            std::thread::Builder::new()
                .name("audit-stdout".into())
                .spawn(move || {
                    use std::io::Write as _;
                    let stdout = std::io::stdout();
                    for line in rx {
                        let mut out = stdout.lock();
                        let _ = writeln!(out, "{line}");
                        let _ = out.flush();
                    }
                })
                .expect("spawn the audit stdout thread");
            tx
        });
        Arc::new(Self {
            instance,
            fail_closed: config.fail_closed,
            store_tx,
            stdout_tx,
            healthy,
            dropped: AtomicU64::new(0),
        })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// True when requests must be refused: fail-closed and the audit stream is down.
    pub fn refusing(&self) -> bool {
        self.fail_closed && !self.healthy.load(Ordering::Acquire)
    }

    /// Queues `record` for both sinks.
    pub async fn emit(&self, record: &AuditRecord) {
        let line = match serde_json::to_string(record) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "audit record does not serialize");
                return;
            }
        };
        if let Some(tx) = &self.stdout_tx
            && tx.try_send(line.clone()).is_err()
        {
            self.note_dropped("stdout");
        }
        if self.fail_closed {
            if self.store_tx.send(Msg::Record(line)).await.is_err() {
                self.note_dropped("store (audit writer stopped)");
            }
        } else if self.store_tx.try_send(Msg::Record(line)).is_err() {
            self.note_dropped("store");
        }
    }

    fn note_dropped(&self, sink: &str) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // Loud, but not one line per request under overload.
        if n.is_power_of_two() {
            tracing::error!(
                sink,
                dropped_total = n,
                "AUDIT RECORDS DROPPED: a sink cannot keep up"
            );
        }
    }

    /// Seals the current audit stream (waiting at most `timeout`). Records emitted later are
    /// dropped (and counted).
    pub async fn shutdown(&self, timeout: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.store_tx.send(Msg::Shutdown(tx)).await.is_ok()
            && tokio::time::timeout(timeout, rx).await.is_err()
        {
            tracing::error!("the audit stream was not sealed in time at shutdown");
        }
    }
}

struct Writer {
    store: Store,
    keyring: Keyring,
    flush: FlushPolicy,
    cluster: String,
    instance: String,
    rotate: Duration,
    healthy: Arc<AtomicBool>,
}

struct Open {
    recorder: Recorder,
    rotate_at: tokio::time::Instant,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Msg>) {
        let mut current: Option<Open> = None;
        let mut pending: VecDeque<String> = VecDeque::new();
        let mut lost = 0u64;
        let mut retry = tokio::time::interval(Duration::from_secs(1));
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let done = loop {
            let rotate_at = current.as_ref().map(|o| o.rotate_at);
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Record(line)) => {
                        if pending.len() >= PENDING_LIMIT {
                            pending.pop_front();
                            lost += 1;
                            if lost.is_power_of_two() {
                                tracing::error!(lost_total = lost, "AUDIT RECORDS LOST: the audit stream is down and the backlog is full");
                            }
                        }
                        pending.push_back(line);
                    }
                    Some(Msg::Shutdown(ack)) => break Some(ack),
                    None => break None,
                },
                () = closed(current.as_ref()) => {
                    let open = current.take().expect("closed() pends without a stream");
                    let session = open.recorder.session();
                    let cause = open.recorder.finish(None).await.err().map_or_else(|| "stopped".to_string(), |e| e.to_string());
                    self.down(&format!("audit stream {session} failed: {cause}"));
                }
                () = sleep_until(rotate_at) => {
                    let open = current.take().expect("a rotation time implies a stream");
                    self.seal(open).await;
                    continue;
                }
                _ = retry.tick(), if !self.healthy.load(Ordering::Acquire) => {}
            }
            self.drain(&mut current, &mut pending).await;
        };
        // Shutdown: one last attempt, then seal.
        self.drain(&mut current, &mut pending).await;
        if !pending.is_empty() {
            tracing::error!(
                count = pending.len(),
                "AUDIT RECORDS LOST at shutdown: the audit stream could not be written"
            );
        }
        if let Some(open) = current.take() {
            self.seal(open).await;
        }
        if let Some(ack) = done {
            let _ = ack.send(());
        }
    }

    /// Writes pending records into the current stream, opening one if needed.
    async fn drain(&self, current: &mut Option<Open>, pending: &mut VecDeque<String>) {
        while let Some(line) = pending.front() {
            if current.is_none() {
                match self.open().await {
                    Ok(open) => *current = Some(open),
                    Err(e) => {
                        self.down(&format!("cannot open an audit stream: {e}"));
                        return;
                    }
                }
            }
            let open = current.as_ref().expect("opened above");
            if let Err(e) = open
                .recorder
                .record(EventKind::Audit { json: line.clone() })
                .await
            {
                let open = current.take().expect("present");
                let cause = open.recorder.finish(None).await.err();
                self.down(&format!(
                    "audit stream failed: {}",
                    cause.map_or_else(|| e.to_string(), |c| c.to_string())
                ));
                return;
            }
            pending.pop_front();
        }
        if current.is_some() && !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::warn!("audit log is being written again");
        }
    }

    async fn open(&self) -> Result<Open, storage_schema::store::RecordError> {
        let meta = SessionMeta::new(
            SessionKind::Audit,
            RecordedIdentity {
                user: "kubetape-gateway".into(),
                ..RecordedIdentity::default()
            },
            Target {
                cluster: Some(self.cluster.clone()),
                host: Some(self.instance.clone()),
                ..Target::default()
            },
            Vec::new(),
            false,
        );
        let recorder = Recorder::start(self.store.clone(), &self.keyring, meta, self.flush).await?;
        tracing::info!(stream = %recorder.session(), instance = %self.instance, "audit stream opened");
        Ok(Open {
            recorder,
            rotate_at: tokio::time::Instant::now() + self.rotate,
        })
    }

    async fn seal(&self, open: Open) {
        let session = open.recorder.session();
        match open.recorder.finish(None).await {
            Ok(_) => tracing::info!(stream = %session, "audit stream sealed"),
            Err(e) => self.down(&format!("audit stream {session} could not be sealed: {e}")),
        }
    }

    fn down(&self, why: &str) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::error!(
                cause = why,
                "AUDIT LOG CANNOT BE WRITTEN to the store; retrying every second"
            );
        } else {
            tracing::debug!(cause = why, "audit log still cannot be written");
        }
    }
}

async fn closed(open: Option<&Open>) {
    match open {
        Some(o) => o.recorder.closed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_schema::layout::{StreamDir, StreamRoot};
    use storage_schema::store::{SessionReader, list_audit_streams, list_sessions, verify_session};

    fn record(n: u16) -> AuditRecord {
        AuditRecord {
            time_us: u64::from(n),
            gateway: "g".into(),
            user: Some("alice".into()),
            groups: vec![],
            issuer: None,
            claims: Default::default(),
            client: "127.0.0.1:1".into(),
            user_agent: None,
            method: "GET".into(),
            path: "/api/v1/pods".into(),
            verb: "list".into(),
            api_group: Some(String::new()),
            resource: Some("pods".into()),
            subresource: None,
            namespace: None,
            name: None,
            decision: AuditDecision::Allow,
            rule: None,
            reason: None,
            status: n,
            latency_ms: 1.0,
            session: None,
            grant: None,
            extra: Default::default(),
        }
    }

    #[tokio::test]
    async fn records_land_in_a_sealed_verified_audit_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (ring, _) = Keyring::open_or_init(&dir.path().join("keys")).unwrap();
        let store = Store::open("memory://").unwrap();
        let config = AuditConfig {
            stdout: false,
            instance: Some("gw-1".into()),
            ..AuditConfig::default()
        };
        let log = AuditLog::start(
            &config,
            store.clone(),
            Keyring::open(&dir.path().join("keys")).unwrap(),
            FlushPolicy::default(),
            "c".into(),
        );
        for n in 200..203 {
            log.emit(&record(n)).await;
        }
        log.shutdown(Duration::from_secs(10)).await;
        assert!(
            list_sessions(&store).await.unwrap().is_empty(),
            "an audit stream is not a session"
        );
        let streams = list_audit_streams(&store).await.unwrap().streams;
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].root(), StreamRoot::Audit);
        let ids: Vec<_> = streams.iter().map(StreamDir::id).collect();
        let report = verify_session(
            &store,
            ids[0],
            storage_schema::store::KeySource::Keyring(&ring),
        )
        .await
        .unwrap();
        assert!(report.intact(), "{:?}", report.damage);
        assert!(matches!(
            report.state,
            storage_schema::SessionState::Sealed(_)
        ));
        let reader = SessionReader::open(&store, &ring, ids[0]).await.unwrap();
        assert_eq!(reader.meta().kind, SessionKind::Audit);
        assert_eq!(reader.meta().target.host.as_deref(), Some("gw-1"));
        let mut statuses = Vec::new();
        reader
            .for_each_event(|e| {
                if let EventKind::Audit { json } = &e.kind {
                    statuses.push(serde_json::from_str::<AuditRecord>(json).unwrap().status);
                }
            })
            .await
            .unwrap();
        assert_eq!(statuses, vec![200, 201, 202]);
    }

    #[tokio::test]
    async fn an_unwritable_store_makes_a_fail_closed_log_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let (ring, _) = Keyring::open_or_init(&dir.path().join("keys")).unwrap();
        // A store whose root is replaced by a regular file after opening: every put fails.
        let root = dir.path().join("store");
        let store = Store::open(&format!("file://{}", root.display())).unwrap();
        let same_store = store.clone();
        std::fs::remove_dir(&root).unwrap();
        std::fs::write(&root, "x").unwrap();
        let log = AuditLog::start(
            &AuditConfig {
                stdout: false,
                fail_closed: true,
                ..AuditConfig::default()
            },
            store,
            ring,
            FlushPolicy::default(),
            "c".into(),
        );
        let open_log = AuditLog::start(
            &AuditConfig {
                stdout: false,
                ..AuditConfig::default()
            },
            same_store,
            Keyring::open(&dir.path().join("keys")).unwrap(),
            FlushPolicy::default(),
            "c".into(),
        );
        assert!(!log.refusing(), "healthy until a write fails");
        log.emit(&record(1)).await;
        open_log.emit(&record(1)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !log.refusing() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never noticed the store failing"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !open_log.healthy.load(Ordering::Acquire),
            "the other log failed too"
        );
        assert!(!open_log.refusing(), "fail_closed = false keeps serving");
    }
}
