//! The audit log: one [`AuditRecord`] per request, allowed or denied (401s included), written to
//! two sinks:
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
//! handle() ──emit()──► [bounded queue] ──► writer task ──► (journal, fail closed) ──► Recorder ──► store
//!          └─────────► [bounded queue] ──► stdout thread                                └─► spool
//! ```
//!
//! # When the store cannot be written
//! Audit streams record through the same spool as sessions (`[recording] spool_dir`), and may
//! even *open* into it: while the spool has room, a store outage costs no record and no request.
//!
//! **`audit.fail_closed = true`**: no request is answered unless its record is durable. The
//! writer appends each record to a write-ahead [`journal`] in the spool and fsyncs it before the
//! request is answered ([`AuditLog::emit`] waits; `dispatch` answers 503 instead if it fails), and
//! forgets it once the chunk that carries it is durable in the stream. Records are grouped: the
//! writer takes every record waiting, appends them with one write and one fsync, then answers
//! them all, so the cost is one fsync per batch, not per request (measured in this module's
//! tests: see `group_commit_latency`). While records cannot be made durable (the spool is full or
//! failing), every request is refused (503). If the stream's recorder gives up, the records it
//! held are written again into the next stream from the journal; after a crash, the journals
//! left in the spool are replayed the same way once the spool's sessions are back in the store.
//! The cost of being answered only after an fsync is the request's only added latency; a request
//! that changed the cluster before its record failed (the API server acted, its own audit log has
//! it) is answered 503: the gateway never tells a client "done" for something it cannot account
//! for.
//!
//! **Default (`fail_closed = false`)**: requests are served without waiting. Records wait in
//! memory (up to [`PENDING_LIMIT`]) while no stream can be written; records that do not fit, or
//! that a full queue refused, are dropped — and never silently: the writer counts them and
//! records a **gap** ([`storage_schema::Gap`], cause and count, the wall-clock window in the
//! cause) in the audit stream as soon as it can write one, so `kubetape verify` and `kubetape
//! audit` show where records are missing. A crash loses what the recorder had not made durable
//! (at most a flush interval plus `spool_after`), as for recordings.

pub mod journal;
pub mod request;
pub mod unauthenticated;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use storage_schema::layout::{StreamDir, StreamRoot};
use storage_schema::store::{Durability, Recorder, RecorderOptions, SessionReader, Spool, Store};
use storage_schema::{
    AuditRecord, EventKind, FlushPolicy, Gap, Identity as RecordedIdentity, Keyring, SessionId,
    SessionKind, SessionMeta, Target,
};
use tokio::sync::{mpsc, oneshot};

use self::journal::Journal;
pub use self::request::RequestAttrs;
pub use storage_schema::AuditDecision;

/// Records kept in memory while the store cannot be written; older ones are dropped beyond it.
pub const PENDING_LIMIT: usize = 10_000;

/// Records the writer commits (journals and syncs) at once, at most.
const MAX_BATCH: usize = 1024;

/// `[audit]` in the gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Answer no request whose record is not durable, and refuse requests (503) while records
    /// cannot be made durable. Default: false.
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

/// A request whose record could not be made durable (`fail_closed`): it is not answered as
/// served; the client gets [`Unrecorded::response`] instead.
#[derive(Debug, thiserror::Error)]
#[error(
    "kubetape: the audit log cannot be written ({0}); the request was not answered (audit.fail_closed)"
)]
pub struct Unrecorded(String);

impl Unrecorded {
    pub fn response(&self) -> http::Response<crate::status::Body> {
        crate::status::unavailable(self.to_string())
    }
}

enum Msg {
    Record(String),
    /// A record whose request waits until it is durable (fail closed).
    Durable(String, oneshot::Sender<Result<(), String>>),
    /// Records of a stream a previous process did not get into the store (from its journal).
    Recovered(journal::Leftover, Vec<String>),
    Shutdown(oneshot::Sender<()>),
}

/// What the audit log has done, for metrics (issue 17: "audit records pending and lost").
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Records waiting in memory for a stream (default mode).
    pub pending: AtomicU64,
    /// Records dropped (default mode); each loss is also recorded as a gap.
    pub lost_total: AtomicU64,
    /// Gap events written into audit streams.
    pub gaps_total: AtomicU64,
    /// Journal commits (fail closed) and the records they carried.
    pub commits_total: AtomicU64,
    pub committed_records_total: AtomicU64,
    /// Requests refused because their record could not be made durable (fail closed).
    pub refused_total: AtomicU64,
}

/// Records dropped and not yet declared in a stream.
#[derive(Debug, Default)]
struct Lost {
    count: u64,
    first_us: u64,
    last_us: u64,
    causes: Vec<&'static str>,
}

impl Lost {
    fn note(&mut self, time_us: u64, cause: &'static str) {
        if self.count == 0 {
            self.first_us = time_us;
        }
        self.count += 1;
        self.last_us = self.last_us.max(time_us);
        if !self.causes.contains(&cause) {
            self.causes.push(cause);
        }
    }
}

/// The handle requests emit records through. Cheap to share.
#[derive(Debug)]
pub struct AuditLog {
    instance: String,
    fail_closed: bool,
    store_tx: mpsc::Sender<Msg>,
    stdout_tx: Option<std::sync::mpsc::SyncSender<String>>,
    /// False while records cannot be made durable (fail closed) or the stream cannot be
    /// written (default).
    healthy: Arc<AtomicBool>,
    dropped: AtomicU64,
    lost: Arc<Mutex<Lost>>,
    stats: Arc<AuditStats>,
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
    /// Starts the sinks. Must run inside a tokio runtime. `durability` is the recordings'
    /// (`[recording]`): audit streams spool like sessions, and may open into the spool. With
    /// a spool, journals a previous process left there are replayed into the new stream.
    pub fn start(
        config: &AuditConfig,
        store: Store,
        keyring: Keyring,
        flush: FlushPolicy,
        cluster: String,
        mut durability: Durability,
    ) -> Arc<Self> {
        let instance = config.instance.clone().unwrap_or_else(default_instance);
        let healthy = Arc::new(AtomicBool::new(true));
        let (store_tx, rx) = mpsc::channel(config.queue.max(1));
        durability.open_via_spool = true;
        let lost = Arc::new(Mutex::new(Lost::default()));
        let stats = Arc::new(AuditStats::default());
        if let Some(spool) = durability.spool.clone() {
            // Listed now, before this process journals anything: every journal found is a
            // previous process's.
            match journal::leftovers(&spool) {
                Ok(leftovers) if !leftovers.is_empty() => {
                    tokio::spawn(recover_journals(
                        leftovers,
                        spool,
                        store.clone(),
                        Keyring::open(keyring.dir()).ok(),
                        store_tx.clone(),
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the audit journals in the spool cannot be read")
                }
            }
        }
        let writer = Writer {
            store,
            keyring,
            flush,
            cluster,
            instance: instance.clone(),
            rotate: Duration::from_secs(config.rotate_secs.max(1)),
            healthy: healthy.clone(),
            durability,
            fail_closed: config.fail_closed,
            lost: lost.clone(),
            stats: stats.clone(),
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
            lost,
            stats,
        })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn stats(&self) -> &AuditStats {
        &self.stats
    }

    /// True when requests must be refused: fail-closed and records cannot be made durable.
    pub fn refusing(&self) -> bool {
        self.fail_closed && !self.healthy.load(Ordering::Acquire)
    }

    /// Queues `record` for both sinks. Fail closed, returns once the record is durable, or
    /// says why it is not (the request must then not be answered as served).
    pub async fn emit(&self, record: &AuditRecord) -> Result<(), Unrecorded> {
        let line = match serde_json::to_string(record) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "audit record does not serialize");
                return Err(Unrecorded(format!("the record does not serialize: {e}")));
            }
        };
        if let Some(tx) = &self.stdout_tx
            && tx.try_send(line.clone()).is_err()
        {
            self.note_dropped("stdout");
        }
        if self.fail_closed {
            let (ack, durable) = oneshot::channel();
            let result = match self.store_tx.send(Msg::Durable(line, ack)).await {
                Ok(()) => durable
                    .await
                    .unwrap_or_else(|_| Err("the audit writer stopped".into())),
                Err(_) => Err("the audit writer stopped".into()),
            };
            return result.map_err(|why| {
                self.stats.refused_total.fetch_add(1, Ordering::Relaxed);
                Unrecorded(why)
            });
        }
        if self.store_tx.try_send(Msg::Record(line)).is_err() {
            self.note_dropped("store");
            self.lost
                .lock()
                .expect("audit losses")
                .note(record.time_us, "the audit queue was full");
        }
        Ok(())
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
    durability: Durability,
    fail_closed: bool,
    lost: Arc<Mutex<Lost>>,
    stats: Arc<AuditStats>,
}

struct Open {
    recorder: Recorder,
    rotate_at: tokio::time::Instant,
    /// Fail closed: the stream's write-ahead journal.
    journal: Option<Journal>,
    /// Records written into the stream so far (= the next record's index).
    records: u64,
    /// Fail closed: journaled records not yet known durable in the stream, by index.
    unconfirmed: VecDeque<(u64, String)>,
}

/// The writer's state between messages.
#[derive(Default)]
struct Backlog {
    /// Default mode: records waiting for a stream.
    pending: VecDeque<String>,
    /// Fail closed: records already answered (durable in an older journal) that must go into
    /// the next stream, and the journals that hold them until they do.
    redo: VecDeque<String>,
    stale: Vec<Stale>,
}

/// A journal whose records are being written again elsewhere.
enum Stale {
    Journal(Journal),
    Leftover(journal::Leftover),
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Msg>) {
        let mut current: Option<Open> = None;
        let mut backlog = Backlog::default();
        let mut retry = tokio::time::interval(Duration::from_secs(1));
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let done = loop {
            let rotate_at = current.as_ref().map(|o| o.rotate_at);
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Record(line)) => {
                        if backlog.pending.len() >= PENDING_LIMIT {
                            backlog.pending.pop_front();
                            self.lost.lock().expect("audit losses").note(
                                storage_schema::time::unix_micros_now(),
                                "the audit stream could not be written and the backlog was full",
                            );
                            self.stats.lost_total.fetch_add(1, Ordering::Relaxed);
                        }
                        backlog.pending.push_back(line);
                    }
                    Some(Msg::Durable(line, ack)) => {
                        let mut batch = vec![(line, ack)];
                        let mut shutdown = None;
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(Msg::Durable(l, a)) => batch.push((l, a)),
                                Ok(Msg::Record(l)) => backlog.pending.push_back(l),
                                Ok(Msg::Recovered(leftover, lines)) => {
                                    backlog.redo.extend(lines);
                                    backlog.stale.push(Stale::Leftover(leftover));
                                }
                                Ok(Msg::Shutdown(ack)) => {
                                    shutdown = Some(ack);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        self.commit(&mut current, &mut backlog, batch).await;
                        if let Some(ack) = shutdown {
                            break Some(ack);
                        }
                        continue;
                    }
                    Some(Msg::Recovered(leftover, lines)) => {
                        tracing::warn!(
                            stream = %leftover.stream,
                            records = lines.len(),
                            "writing again the audit records a previous gateway journaled but did not get into its stream"
                        );
                        if self.fail_closed {
                            backlog.redo.extend(lines);
                            backlog.stale.push(Stale::Leftover(leftover));
                        } else {
                            backlog.pending.extend(lines);
                            let spool = self.durability.spool.clone();
                            if let Some(spool) = spool {
                                let _ = tokio::task::spawn_blocking(move || leftover.remove(&spool)).await;
                            }
                        }
                    }
                    Some(Msg::Shutdown(ack)) => break Some(ack),
                    None => break None,
                },
                () = closed(current.as_ref()) => {
                    let open = current.take().expect("closed() pends without a stream");
                    self.failed_stream(open, &mut backlog).await;
                }
                () = sleep_until(rotate_at) => {
                    let open = current.take().expect("a rotation time implies a stream");
                    self.seal(open, &mut backlog).await;
                    continue;
                }
                _ = retry.tick(), if !self.healthy.load(Ordering::Acquire) || !backlog.redo.is_empty() => {}
            }
            self.drain(&mut current, &mut backlog).await;
        };
        // Shutdown: one last attempt, then seal.
        self.drain(&mut current, &mut backlog).await;
        if !backlog.pending.is_empty() || !backlog.redo.is_empty() {
            tracing::error!(
                pending = backlog.pending.len(),
                journaled = backlog.redo.len(),
                "AUDIT RECORDS NOT IN A STREAM at shutdown: the audit stream could not be written (journaled ones are replayed at the next start)"
            );
        }
        if let Some(open) = current.take() {
            self.seal(open, &mut backlog).await;
        }
        if let Some(ack) = done {
            let _ = ack.send(());
        }
    }

    /// Fail closed: journals `batch` (after any records to redo) with one sync, answers the
    /// requests, then writes the records into the stream.
    async fn commit(
        &self,
        current: &mut Option<Open>,
        backlog: &mut Backlog,
        batch: Vec<(String, oneshot::Sender<Result<(), String>>)>,
    ) {
        let refuse = |batch: Vec<(String, oneshot::Sender<Result<(), String>>)>, why: &str| {
            for (_, ack) in batch {
                let _ = ack.send(Err(why.to_string()));
            }
        };
        if current.is_none() {
            match self.open().await {
                Ok(open) => *current = Some(open),
                Err(e) => {
                    let why = format!("no audit stream can be opened: {e}");
                    self.down(&why);
                    return refuse(batch, &why);
                }
            }
        }
        let open = current.as_mut().expect("opened above");
        let Some(mut journal) = open.journal.take() else {
            // No spool, so no journal: durable means in the store, which takes a flush.
            return self.commit_unjournaled(current, backlog, batch).await;
        };
        let redo: Vec<String> = backlog.redo.drain(..).collect();
        let lines: Vec<String> = redo
            .iter()
            .cloned()
            .chain(batch.iter().map(|(l, _)| l.clone()))
            .collect();
        let first = journal.next_index();
        let (journal, appended) = tokio::task::spawn_blocking(move || {
            let r = journal.append(&lines);
            (journal, r.map(|()| lines))
        })
        .await
        .expect("the journal task does not panic");
        open.journal = Some(journal);
        let lines = match appended {
            Ok(lines) => lines,
            Err(e) => {
                backlog.redo.extend(redo);
                let why = format!("the audit journal cannot be written: {e}");
                self.down(&why);
                return refuse(batch, &why);
            }
        };
        self.stats.commits_total.fetch_add(1, Ordering::Relaxed);
        self.stats
            .committed_records_total
            .fetch_add(lines.len() as u64, Ordering::Relaxed);
        // Durable: the requests may be answered. Records being written again are now in this
        // journal, so the journals that held them go.
        for (_, ack) in batch {
            let _ = ack.send(Ok(()));
        }
        if !redo.is_empty() || !backlog.stale.is_empty() {
            self.drop_stale(backlog).await;
        }
        self.up();
        for (i, line) in lines.into_iter().enumerate() {
            let Some(open) = current.as_mut() else {
                // The stream failed mid-batch: the rest waits for the next one (journaled).
                backlog.redo.push_back(line);
                continue;
            };
            open.unconfirmed.push_back((first + i as u64, line.clone()));
            open.records += 1;
            if let Err(e) = open.recorder.record(EventKind::Audit { json: line }).await {
                tracing::error!(error = %e, "the audit stream stopped taking records");
                let open = current.take().expect("present");
                self.failed_stream(open, backlog).await;
            }
        }
        if let Some(open) = current.as_mut() {
            confirm(open).await;
        }
    }

    /// Fail closed without a spool: a record is durable once its chunk is in the store, so
    /// each batch is flushed by closing the stream (sealed) before the requests are answered.
    async fn commit_unjournaled(
        &self,
        current: &mut Option<Open>,
        backlog: &mut Backlog,
        batch: Vec<(String, oneshot::Sender<Result<(), String>>)>,
    ) {
        let open = current.take().expect("opened by the caller");
        let mut ok = true;
        for (line, _) in &batch {
            if open
                .recorder
                .record(EventKind::Audit { json: line.clone() })
                .await
                .is_err()
            {
                ok = false;
                break;
            }
        }
        let sealed = ok && open.recorder.finish(None).await.is_ok();
        let why = "the audit stream could not be written to the store";
        for (_, ack) in batch {
            let _ = ack.send(if sealed { Ok(()) } else { Err(why.into()) });
        }
        if sealed {
            self.up();
        } else {
            self.down(why);
        }
        let _ = backlog;
    }

    /// A stream whose recorder gave up: what it had not made durable goes into the next one.
    async fn failed_stream(&self, open: Open, backlog: &mut Backlog) {
        let session = open.recorder.session();
        let durable = open.recorder.lag().durable_events;
        let cause = open
            .recorder
            .failure()
            .unwrap_or_else(|| "stopped".to_string());
        // The recorder writes its last words (the gap it declares) in the background.
        let recorder = open.recorder;
        tokio::spawn(async move {
            let _ = recorder.finish(None).await;
        });
        let mut again: Vec<String> = open
            .unconfirmed
            .into_iter()
            .filter(|(i, _)| *i >= durable)
            .map(|(_, l)| l)
            .collect();
        if !again.is_empty() {
            tracing::warn!(stream = %session, records = again.len(), "audit records the failed stream did not keep are written again into the next");
        }
        again.extend(backlog.redo.drain(..));
        backlog.redo = again.into();
        if let Some(journal) = open.journal {
            backlog.stale.push(Stale::Journal(journal));
        }
        self.down(&format!("audit stream {session} failed: {cause}"));
    }

    /// Journals whose records now live in another journal (or stream) are deleted.
    async fn drop_stale(&self, backlog: &mut Backlog) {
        let stale = std::mem::take(&mut backlog.stale);
        let spool = self.durability.spool.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for s in stale {
                match (s, &spool) {
                    (Stale::Journal(j), _) => j.remove(),
                    (Stale::Leftover(l), Some(spool)) => l.remove(spool),
                    (Stale::Leftover(_), None) => {}
                }
            }
        })
        .await;
    }

    /// Default mode: writes pending records (and any gap they left) into the current stream,
    /// opening one if needed. Fail closed: writes records to redo, if any.
    async fn drain(&self, current: &mut Option<Open>, backlog: &mut Backlog) {
        if self.fail_closed {
            if !backlog.redo.is_empty() {
                self.commit(current, backlog, Vec::new()).await;
            }
            return;
        }
        self.stats
            .pending
            .store(backlog.pending.len() as u64, Ordering::Relaxed);
        let lost = self.lost.lock().expect("audit losses").count;
        if backlog.pending.is_empty() && lost == 0 {
            return;
        }
        if current.is_none() {
            match self.open().await {
                Ok(open) => *current = Some(open),
                Err(e) => {
                    self.down(&format!("cannot open an audit stream: {e}"));
                    return;
                }
            }
        }
        let open = current.as_mut().expect("opened above");
        // Records that were dropped are declared where the stream resumes.
        let gap = {
            let mut lost = self.lost.lock().expect("audit losses");
            (lost.count > 0).then(|| std::mem::take(&mut *lost))
        };
        if let Some(lost) = gap {
            let at = open.recorder.now_us();
            let gap = Gap {
                cause: format!(
                    "{} audit records dropped between {} and {} ({})",
                    lost.count,
                    wall_clock(lost.first_us),
                    wall_clock(lost.last_us),
                    lost.causes.join("; ")
                ),
                from_us: at,
                to_us: at,
                bytes: Default::default(),
                events: lost.count,
                chunks: None,
            };
            tracing::error!(
                lost = lost.count,
                "AUDIT RECORDS LOST; recording the gap in the audit stream"
            );
            let recorded = open
                .recorder
                .record(EventKind::Gap {
                    json: gap.to_json(),
                })
                .await;
            if recorded.is_err() {
                // Declared next time.
                {
                    let mut l = self.lost.lock().expect("audit losses");
                    l.first_us = if l.count == 0 {
                        lost.first_us
                    } else {
                        l.first_us.min(lost.first_us)
                    };
                    l.count += lost.count;
                    l.last_us = l.last_us.max(lost.last_us);
                }
                let open = current.take().expect("present");
                self.failed_stream(open, backlog).await;
                return;
            }
            self.stats.gaps_total.fetch_add(1, Ordering::Relaxed);
        }
        while let Some(line) = backlog.pending.front() {
            let open = current.as_mut().expect("present");
            if let Err(e) = open
                .recorder
                .record(EventKind::Audit { json: line.clone() })
                .await
            {
                tracing::error!(error = %e, "the audit stream stopped taking records");
                let open = current.take().expect("present");
                self.failed_stream(open, backlog).await;
                return;
            }
            open.records += 1;
            backlog.pending.pop_front();
        }
        self.stats.pending.store(0, Ordering::Relaxed);
        if current.is_some() {
            self.up();
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
        let recorder = Recorder::start_with(
            self.store.clone(),
            &self.keyring,
            meta,
            RecorderOptions {
                flush: self.flush,
                durability: self.durability.clone(),
                observer: None,
            },
        )
        .await?;
        let stream = recorder.session();
        tracing::info!(stream = %stream, instance = %self.instance, "audit stream opened");
        let journal = match (&self.durability.spool, self.fail_closed) {
            (Some(spool), true) => Some(Journal::new(spool, stream)),
            _ => None,
        };
        Ok(Open {
            recorder,
            rotate_at: tokio::time::Instant::now() + self.rotate,
            journal,
            records: 0,
            unconfirmed: VecDeque::new(),
        })
    }

    async fn seal(&self, open: Open, backlog: &mut Backlog) {
        let session = open.recorder.session();
        let durable_before = open.recorder.lag().durable_events;
        match open.recorder.finish(None).await {
            Ok(_) => {
                tracing::info!(stream = %session, "audit stream sealed");
                if let Some(journal) = open.journal {
                    let _ = tokio::task::spawn_blocking(move || journal.remove()).await;
                }
            }
            Err(e) => {
                let again: Vec<String> = open
                    .unconfirmed
                    .into_iter()
                    .filter(|(i, _)| *i >= durable_before)
                    .map(|(_, l)| l)
                    .collect();
                backlog.redo.extend(again);
                if let Some(journal) = open.journal {
                    backlog.stale.push(Stale::Journal(journal));
                }
                self.down(&format!("audit stream {session} could not be sealed: {e}"));
            }
        }
    }

    fn up(&self) {
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::warn!("audit log is being written again");
        }
    }

    fn down(&self, why: &str) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::error!(
                cause = why,
                "AUDIT LOG CANNOT BE WRITTEN; retrying every second"
            );
        } else {
            tracing::debug!(cause = why, "audit log still cannot be written");
        }
    }
}

/// Forgets journaled records the stream now holds durably.
async fn confirm(open: &mut Open) {
    let durable = open.recorder.lag().durable_events;
    while open.unconfirmed.front().is_some_and(|(i, _)| *i < durable) {
        open.unconfirmed.pop_front();
    }
    if let Some(mut journal) = open.journal.take() {
        let journal = tokio::task::spawn_blocking(move || {
            journal.confirm(durable);
            journal
        })
        .await
        .expect("the journal task does not panic");
        open.journal = Some(journal);
    }
}

/// Replays the journals a previous process left in the spool: once the spool has given each
/// journal's stream back to the store, the records the stream does not hold are sent to the
/// writer, which writes them into its stream (and, fail closed, its journal) before deleting
/// the old journal.
async fn recover_journals(
    leftovers: Vec<journal::Leftover>,
    spool: Spool,
    store: Store,
    keyring: Option<Keyring>,
    tx: mpsc::Sender<Msg>,
) {
    for leftover in leftovers {
        let stream = leftover.stream;
        // The stream's own spooled chunks go back first (the spool's replay).
        while !spool
            .session_keys(StreamDir::new(StreamRoot::Audit, stream))
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let held = match &keyring {
            Some(ring) => records_in(&store, ring, stream).await,
            None => 0,
        };
        let lines: Vec<String> = leftover
            .records
            .iter()
            .filter(|(i, _)| *i >= held)
            .map(|(_, l)| l.clone())
            .collect();
        tracing::info!(stream = %stream, journaled = leftover.records.len(), in_stream = held, "audit journal of a previous gateway found");
        if tx.send(Msg::Recovered(leftover, lines)).await.is_err() {
            return;
        }
    }
}

/// Audit records stream `id` holds in the store (read up to any damage; retried while the
/// store is down; 0 if it never got there).
async fn records_in(store: &Store, ring: &Keyring, id: SessionId) -> u64 {
    let mut backoff = Duration::from_millis(250);
    loop {
        match SessionReader::open(store, ring, id).await {
            Ok(reader) => {
                let mut n = 0;
                let _ = reader
                    .for_each_event(|e| {
                        if matches!(e.kind, EventKind::Audit { .. }) {
                            n += 1;
                        }
                    })
                    .await;
                return n;
            }
            Err(storage_schema::store::ReadError::Open(
                storage_schema::store::VerifyError::NotFound(_),
            )) => return 0,
            Err(e) => {
                tracing::debug!(error = %e, "waiting for the store to count a journaled stream's records");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn wall_clock(unix_us: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_micros(unix_us))
        .to_string()
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
mod tests;
