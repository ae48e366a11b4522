//! The recorder: the async writer a relay (or `kubetape record`) hands events to, and the
//! guarantees it keeps when the store fails.
//!
//! ```text
//!  caller ──record()──► [gate] ──► [events, 64] ──► recorder task ──► outbox (in order) ──► store
//!                         ▲                           (zstd, AES-GCM,     │  put, create-only,
//!                         │                            sign, ≤1 s /       │  ≤ store_timeout each
//!                         └─── paused while output ──  8 MiB)             └─► spool (local, fsynced)
//!                              cannot be made durable                          when a put is late
//! ```
//!
//! # Durability: what the store's failures can and cannot cost
//! Every object a session writes — wrapped key, metadata, chunks, commands, seal — goes through
//! one ordered outbox, and is *durable* once it is in the store or in the local [`Spool`]. The
//! outbox uploads in order, one put at a time, so the store always holds a gap-free prefix.
//!
//! - **A late put.** A chunk the store has not taken within `spool_after` (200 ms by default) is
//!   also written to the spool (fsynced); once a put *fails* or times out (`store_timeout`, 10 s:
//!   a hung store is detected in bounded time), every later chunk is spooled as soon as it is
//!   sealed. The put is retried with back-off (up to 5 s apart); spooled chunks go to the store in
//!   order when it answers, and their spool files are removed. So while the spool has room, an
//!   outage costs nothing: the session continues, and what it shows is on local disk within a
//!   flush interval plus `spool_after` of being shown.
//! - **Nothing can take it.** When output cannot be made durable — the store is failing and the
//!   spool is full, broken or absent — for `2 × spool_after`, the recorder *pauses*: `record`
//!   waits (back-pressure reaches the relay: the terminal freezes). That is how the loss bound is
//!   kept against outages, not only crashes: the relay forwards output before recording it, and
//!   a paused recorder stops it from forwarding more. What a client saw but the recorder does
//!   not hold durably is then at most the open chunk (≤ the flush interval, 1 s) plus
//!   `2 × spool_after`. A pause is also how a store that is merely slow (more than
//!   [`MAX_UNDURABLE`] chunks waiting in memory) slows a session down, as before.
//! - **Giving up.** Per [`OnStoreFailure`]: `pause` (the default) gives up when a pause has
//!   lasted `failure_timeout` (30 s) without any put or spool write succeeding; `end` gives up as
//!   soon as output has waited `2 × spool_after` for a store that did not take it and no spool
//!   can. Giving up
//!   ends the session (`closed()` resolves, `record` of stream data fails with
//!   [`RecordError::StoreUnavailable`], and the gateway tells kubectl why). Markers and the exit
//!   are still taken.
//! - **Any loss is declared.** On giving up, the chunks that are in neither the store nor the
//!   spool are abandoned, and the recorder writes its *last words*: a chunk that opens with a
//!   [`Gap`] event (time range, bytes and events lost, cause, the chunks it stands for), then the
//!   session's end and a seal that lists the gap (see [`crate::gap`]). Last words may exceed the
//!   spool's bound and use its reserve, so even a full disk records the loss. `kubetape verify`
//!   reports such a session as intact *with a gap*, never as an ordinary intact one.
//!
//! Losses that cannot be declared: a process killed while output was not yet durable (at most the
//! open chunk plus `spool_after`: the crash bound), and last words that neither the store nor
//! the spool (nor its reserve) can take before the process exits.
//!
//! Memory per session stays bounded: 64 queued events (≤ 64 KiB each), one open chunk, and at
//! most [`MAX_UNDURABLE`] sealed chunks held in memory (a spooled chunk leaves memory; it is read
//! back to be uploaded).
//!
//! The outbox is also how a session opens: the wrapped data key first, then the metadata (so a
//! metadata object always has its key), and the session is open once both are in the store.
//! If they cannot be written, nothing is left behind: objects written for a session whose open
//! failed are deleted (finding 8 of issue 12). Only audit streams may open into the spool
//! (`open_via_spool`); a terminal session still fails closed when the store is down.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::spool::{PutOutcome, Spool, SpoolError, put_same};
use super::{Store, StoreError};
use crate::builder::{ChunkBuilder, FlushPolicy, MAX_EVENT_DATA, Totals};
use crate::chunk::{ChunkError, SealedChunk};
use crate::commands::{self, CommandEntry, CommandObserver};
use crate::event::{Event, EventKind, Stream};
use crate::gap::{Gap, GapChunks};
use crate::keys::{DataKey, KeyError, Keyring};
use crate::layout::{StreamDir, StreamRoot};
use crate::seal::{ExitInfo, SealPayload, SealState, StreamBytes};
use crate::session::{SessionId, SessionMeta, StreamClass};

const EVENT_QUEUE: usize = 64;

/// Events the task leaves queued while it waits for its open chunk's deadline; the sender of
/// one more wakes it. Half the queue, so that senders are not held back by a full queue the
/// task has not been told about.
const LAZY_EVENTS: usize = EVENT_QUEUE / 2;

/// The most sealed chunks a recorder holds in memory, in neither the store nor the spool, before
/// it pauses its caller (a slow store slows the session down rather than filling memory). The
/// policy lowers it for large chunks ([`crate::builder::FlushPolicy::upload_queue`]: ~2 MiB of
/// output whatever the chunk size), since queued chunks are also what a crash loses.
pub const MAX_UNDURABLE: usize = 8;

/// Why recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("chunk: {0}")]
    Chunk(#[from] ChunkError),
    #[error("the recording store is behind; the event was not accepted")]
    Backpressure,
    #[error("the recorder stopped (finish it to learn why)")]
    Stopped,
    #[error("recorder task failed: {0}")]
    Task(String),
    /// The recorder gave up (see the module docs): nothing more is recorded, and what could
    /// not be written is declared as a gap.
    #[error("the recording store is unavailable: {cause}")]
    StoreUnavailable { cause: String },
    /// The store holds other bytes under a name this session writes (create-only conflict).
    #[error("{key}: the store already holds a different object under this name")]
    Conflict { key: String },
}

/// What a recorder does when output can be made durable neither in the store nor in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreFailure {
    /// Hold the session (its recording waits, and so does its output) and give up after
    /// `failure_timeout` without progress.
    #[default]
    Pause,
    /// Give up at once.
    End,
}

/// How a recorder keeps its writes durable when the store misbehaves (module docs).
#[derive(Debug, Clone)]
pub struct Durability {
    /// Where writes wait while the store cannot take them. `None`: nowhere (the recorder pauses
    /// and then gives up, per `on_failure`).
    pub spool: Option<Spool>,
    /// A write the store has not taken this long after it was queued is also spooled.
    pub spool_after: Duration,
    /// The longest a single store request may take before it counts as failed.
    pub store_timeout: Duration,
    pub on_failure: OnStoreFailure,
    /// How long a paused recorder waits for the store or the spool before it gives up.
    pub failure_timeout: Duration,
    /// Whether the session may open with its key and metadata only in the spool (audit streams,
    /// so that records stay durable through an outage). Terminal sessions fail closed instead.
    pub open_via_spool: bool,
}

impl Default for Durability {
    fn default() -> Self {
        Self {
            spool: None,
            spool_after: Duration::from_millis(200),
            store_timeout: Duration::from_secs(10),
            on_failure: OnStoreFailure::Pause,
            failure_timeout: Duration::from_secs(30),
            open_via_spool: false,
        }
    }
}

/// Everything [`Recorder::start_with`] takes besides the session.
#[derive(Default)]
pub struct RecorderOptions {
    pub flush: FlushPolicy,
    pub durability: Durability,
    /// Its commands are written with the seal (unless [`Recorder::finish_with_commands`] gives
    /// others).
    pub observer: Option<Box<dyn CommandObserver>>,
}

impl std::fmt::Debug for RecorderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderOptions")
            .field("flush", &self.flush)
            .field("durability", &self.durability)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// How far behind a recorder is: what it shows that is not durable yet (issue 17's "recording
/// lag" and "chunks spooled").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Sealed chunks in neither the store nor the spool.
    pub undurable_chunks: u64,
    /// Their size.
    pub undurable_bytes: u64,
    /// Age of the oldest of them, in µs.
    pub oldest_us: u64,
    /// Chunks written to the spool so far.
    pub spooled_total: u64,
    /// Events in the chunks that are durable (in the store or the spool), counted from the
    /// first chunk and in order; frozen when the recorder gives up (what follows is its last
    /// words). The audit journal forgets records below it.
    pub durable_events: u64,
    /// Whether the caller is being held (paused) or the recorder gave up.
    pub paused: bool,
    pub failed: bool,
}

const OPEN: u8 = 0;
const PAUSED: u8 = 1;
const FAILED: u8 = 2;

/// What the handle and the task share.
#[derive(Debug)]
struct Shared {
    gate: AtomicU8,
    /// False once the caller asked not to be held back any more ([`Recorder::stop_holding`]).
    holding: AtomicBool,
    gate_tx: watch::Sender<u8>,
    failure: Mutex<Option<String>>,
    /// Stream data refused after giving up: shown to the client (the relay forwards first),
    /// never recorded; declared as a gap at the end.
    refused: Mutex<Refused>,
    undurable_chunks: AtomicU64,
    undurable_bytes: AtomicU64,
    oldest_us: AtomicU64,
    /// When the oldest undurable chunk was sealed (µs since the Unix epoch; 0: none), so its
    /// age can be read at any moment, also while the task waits on a hung store.
    oldest_since_unix_us: AtomicU64,
    spooled_total: AtomicU64,
    durable_events: AtomicU64,
    /// The task is not watching its queue (see [`Task::can_wait`]): a sender wakes it through
    /// [`Self::wake`] once [`LAZY_EVENTS`] are queued, or for anything but an event.
    lazy: AtomicBool,
    wake: tokio::sync::Notify,
}

fn lag_of(s: &Shared) -> Lag {
    let gate = s.gate.load(Ordering::Acquire);
    let since = s.oldest_since_unix_us.load(Ordering::Relaxed);
    // The age now, not at the task's last look (it may be waiting on a hung store).
    let oldest_us = if since == 0 {
        0
    } else {
        crate::time::unix_micros_now()
            .saturating_sub(since)
            .max(s.oldest_us.load(Ordering::Relaxed))
    };
    Lag {
        undurable_chunks: s.undurable_chunks.load(Ordering::Relaxed),
        undurable_bytes: s.undurable_bytes.load(Ordering::Relaxed),
        oldest_us,
        spooled_total: s.spooled_total.load(Ordering::Relaxed),
        durable_events: s.durable_events.load(Ordering::Relaxed),
        paused: gate == PAUSED,
        failed: gate == FAILED,
    }
}

/// Reads a recorder's [`Lag`] without holding the recorder ([`Recorder::lag_probe`]).
#[derive(Clone)]
pub struct LagProbe(Arc<Shared>);

impl std::fmt::Debug for LagProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LagProbe").field(&self.lag()).finish()
    }
}

impl LagProbe {
    pub fn lag(&self) -> Lag {
        lag_of(&self.0)
    }
}

#[derive(Debug, Default)]
struct Refused {
    bytes: StreamBytes,
    events: u64,
    from_us: Option<u64>,
    to_us: u64,
}

impl Shared {
    fn set_gate(&self, gate: u8) {
        // Once failed, always failed.
        if self.gate.load(Ordering::Acquire) == FAILED {
            return;
        }
        self.gate.store(gate, Ordering::Release);
        self.gate_tx.send_replace(gate);
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().expect("recorder failure").clone()
    }

    fn note_refused(&self, at_us: u64, kind: &EventKind) {
        match kind {
            EventKind::Data { stream, bytes } => {
                self.note_refused_data(at_us, *stream, bytes.len())
            }
            EventKind::PortForwardData { bytes, .. } => {
                let mut r = self.refused(at_us);
                r.bytes.port_forward += bytes.len() as u64;
            }
            _ => drop(self.refused(at_us)),
        }
    }

    fn note_refused_data(&self, at_us: u64, stream: Stream, len: usize) {
        let mut r = self.refused(at_us);
        let n = len as u64;
        match stream {
            Stream::Stdin => r.bytes.stdin += n,
            Stream::Stdout => r.bytes.stdout += n,
            Stream::Stderr => r.bytes.stderr += n,
        }
    }

    /// The refused-data tally, with one more event at `at_us` counted.
    fn refused(&self, at_us: u64) -> std::sync::MutexGuard<'_, Refused> {
        let mut r = self.refused.lock().expect("refused data");
        r.events += 1;
        r.from_us.get_or_insert(at_us);
        r.to_us = r.to_us.max(at_us);
        r
    }
}

/// Events the caller's peers produce (held back by a paused recorder, refused by one that gave
/// up). Markers and exits, which the gateway writes about the session, are never held back.
fn held_back(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Marker { .. } | EventKind::Exit { .. })
}

enum Msg {
    Event(Event),
    Finish {
        exit: Option<ExitInfo>,
        seal: bool,
        commands: Option<Vec<CommandEntry>>,
        reply: oneshot::Sender<Result<Option<SealPayload>, RecordError>>,
    },
}

/// Handle to one session being recorded.
#[derive(Debug)]
pub struct Recorder {
    dir: StreamDir,
    clock: Instant,
    /// Taken only when the handle is dropped.
    tx: Option<mpsc::Sender<Msg>>,
    shared: Arc<Shared>,
    gate_rx: watch::Receiver<u8>,
}

impl Drop for Recorder {
    /// Dropped without [`Recorder::finish`]: the task finds its queue closed and keeps what it
    /// has at once, not at its chunk's deadline.
    fn drop(&mut self) {
        drop(self.tx.take());
        self.shared.wake.notify_one();
    }
}

impl Recorder {
    /// Opens a session: writes its wrapped data key and then its metadata (create-only), then
    /// starts the writer. Fails (leaving nothing behind) if either write fails, so a caller can
    /// refuse the stream it was about to relay. No spool: see [`Self::start_with`].
    pub async fn start(
        store: Store,
        keyring: &Keyring,
        meta: SessionMeta,
        policy: FlushPolicy,
    ) -> Result<Self, RecordError> {
        Self::start_observed(store, keyring, meta, policy, None).await
    }

    /// [`Self::start`], with an observer whose commands [`Self::finish`] writes with the seal
    /// (unless [`Self::finish_with_commands`] gives others).
    pub async fn start_observed(
        store: Store,
        keyring: &Keyring,
        meta: SessionMeta,
        policy: FlushPolicy,
        observer: Option<Box<dyn CommandObserver>>,
    ) -> Result<Self, RecordError> {
        let options = RecorderOptions {
            flush: policy,
            observer,
            ..RecorderOptions::default()
        };
        Self::start_with(store, keyring, meta, options).await
    }

    /// Opens a session with every option (the gateway's way: a spool and a failure policy).
    pub async fn start_with(
        store: Store,
        keyring: &Keyring,
        mut meta: SessionMeta,
        options: RecorderOptions,
    ) -> Result<Self, RecordError> {
        let RecorderOptions {
            flush,
            durability,
            observer,
        } = options;
        let kek = keyring.current_kek()?;
        let signer = keyring.current_signing_key()?.clone();
        meta.keys.kek = kek.id().to_string();
        meta.keys.signing = signer.id().to_string();
        let session = meta.session;
        // The stream's class decides its prefix: audit streams under `audit/`, sessions under
        // `sessions/` (see `layout`).
        let dir = StreamDir::for_class(meta.class(), session);
        let meta_bytes = serde_json::to_vec_pretty(&meta).expect("metadata serializes");
        let dek = DataKey::generate()?;
        let wrapped =
            serde_json::to_vec_pretty(&kek.wrap(session, &dek)?).expect("wrapped key serializes");
        let builder = ChunkBuilder::new(session, &meta_bytes, dek, signer, flush)?;
        let observer = observer.map(ObserverTask::spawn);
        let clock = Instant::now();
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let (gate_tx, gate_rx) = watch::channel(OPEN);
        let shared = Arc::new(Shared {
            gate: AtomicU8::new(OPEN),
            holding: AtomicBool::new(true),
            gate_tx,
            failure: Mutex::new(None),
            refused: Mutex::new(Refused::default()),
            undurable_chunks: AtomicU64::new(0),
            undurable_bytes: AtomicU64::new(0),
            oldest_us: AtomicU64::new(0),
            oldest_since_unix_us: AtomicU64::new(0),
            spooled_total: AtomicU64::new(0),
            durable_events: AtomicU64::new(0),
            lazy: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        });
        let (opened_tx, opened) = oneshot::channel();
        let now = tokio::time::Instant::now();
        let mut outbox = VecDeque::new();
        // The key before the metadata: a metadata object always has its key.
        outbox.push_back(Item::new(dir.dek(), wrapped.into(), Kind::Key, now));
        outbox.push_back(Item::new(dir.meta(), meta_bytes.into(), Kind::Meta, now));
        let task = Task {
            store,
            durability,
            session,
            dir,
            builder,
            observer,
            rx,
            clock,
            shared: shared.clone(),
            outbox,
            put: None,
            spooling: None,
            retry_at: now,
            backoff: MIN_BACKOFF,
            store_down: false,
            spool_refused_at: None,
            progress_at: now,
            stepped_at: now,
            paused_since: None,
            accepting: true,
            opening: Some((opened_tx, now)),
            written: Vec::new(),
            finishing: None,
            failed_at: None,
            gaps: Vec::new(),
            gap_events: 0,
        };
        tokio::spawn(task.run());
        match opened.await {
            Ok(Ok(())) => Ok(Self {
                dir,
                clock,
                tx: Some(tx),
                shared,
                gate_rx,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RecordError::Task(
                "the recorder stopped while opening".into(),
            )),
        }
    }

    pub fn session(&self) -> SessionId {
        self.dir.id()
    }

    /// Where the stream is written.
    pub fn dir(&self) -> StreamDir {
        self.dir
    }

    /// Microseconds since the session started, on the recorder's monotonic clock.
    pub fn now_us(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    /// Resolves when the recorder gave up (the store and the spool failed it; see the module
    /// docs) or stopped: a relay selects on it to end a session, even an idle one.
    pub async fn closed(&self) {
        let mut gate = self.gate_rx.clone();
        tokio::select! {
            _ = gate.wait_for(|g| *g == FAILED) => {}
            () = self.tx().closed() => {}
        }
    }

    /// Why the recorder gave up, once it has.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    /// How far behind the store the recording is.
    pub fn lag(&self) -> Lag {
        lag_of(&self.shared)
    }

    /// A handle that reads this recorder's lag from elsewhere (the gateway's metrics), for as
    /// long as it is kept, without holding the recorder.
    pub fn lag_probe(&self) -> LagProbe {
        LagProbe(self.shared.clone())
    }

    fn tx(&self) -> &mpsc::Sender<Msg> {
        self.tx.as_ref().expect("taken only on drop")
    }

    /// Stops holding callers of a paused recording back: the session is ending, and what it
    /// showed must go in without waiting (it is declared lost if the recorder gives up).
    pub fn stop_holding(&self) {
        self.shared.holding.store(false, Ordering::Release);
        let gate = self.shared.gate.load(Ordering::Acquire);
        self.shared.gate_tx.send_replace(gate);
    }

    /// Waits while the recording is paused; once it gave up, `Err` for held-back events (the
    /// caller notes what was refused).
    async fn wait_gate(&self, held: bool) -> Result<(), ()> {
        // The normal path: one atomic load.
        if self.shared.gate.load(Ordering::Acquire) == OPEN {
            return Ok(());
        }
        let mut gate = self.gate_rx.clone();
        loop {
            let now = *gate.borrow_and_update();
            match now {
                OPEN => return Ok(()),
                FAILED if held => return Err(()),
                FAILED => return Ok(()),
                _ if !held || !self.shared.holding.load(Ordering::Acquire) => return Ok(()),
                _ => {
                    if gate.changed().await.is_err() {
                        // The task is gone; sending reports it.
                        return Ok(());
                    }
                }
            }
        }
    }

    /// [`Self::wait_gate`] for one event, noting it if refused.
    async fn pass(&self, at_us: u64, kind: &EventKind) -> Result<(), RecordError> {
        self.wait_gate(held_back(kind)).await.map_err(|()| {
            self.shared.note_refused(at_us, kind);
            self.unavailable()
        })
    }

    fn unavailable(&self) -> RecordError {
        RecordError::StoreUnavailable {
            cause: self
                .shared
                .failure()
                .unwrap_or_else(|| "the recorder gave up".into()),
        }
    }

    async fn send(&self, event: Event) -> Result<(), RecordError> {
        self.tx()
            .send(Msg::Event(event))
            .await
            .map_err(|_| RecordError::Stopped)?;
        self.nudge(false);
        Ok(())
    }

    /// Wakes the task if it is leaving its queue alone and should not: `urgent` (not an event),
    /// or [`LAZY_EVENTS`] queued. Waking it for every event cost a keystroke two cross-thread
    /// wake-ups of the recording runtime: about as much of the gateway's CPU per keystroke as
    /// the relay itself (`cargo bench -p tests --bench exec`, keystrokes at 100 sessions).
    fn nudge(&self, urgent: bool) {
        // Whether or not the task is lazy now: it may be about to be, and only counts events.
        // (A wake-up it was not waiting for is kept, and ends its next lazy wait at once.)
        if urgent {
            self.shared.wake.notify_one();
            return;
        }
        // Pairs with the task's fence between raising `lazy` and counting its queue: either
        // this sees the flag or the task sees what was just queued.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.shared.lazy.load(Ordering::SeqCst)
            && self.tx().max_capacity() - self.tx().capacity() >= LAZY_EVENTS
        {
            self.shared.wake.notify_one();
        }
    }

    /// Records `kind` now, waiting while the recording is paused or the queue is full.
    pub async fn record(&self, kind: EventKind) -> Result<(), RecordError> {
        let at_us = self.now_us();
        self.pass(at_us, &kind).await?;
        self.send(Event { at_us, kind }).await
    }

    /// Records an event with its own timestamp (imports, replays and tests). Events must come in
    /// time order; an earlier one is clamped to the last time seen.
    pub async fn record_at(&self, event: Event) -> Result<(), RecordError> {
        self.pass(event.at_us, &event.kind).await?;
        self.send(event).await
    }

    /// Records stream bytes now, split into events of at most 64 KiB so the queue's memory stays
    /// bounded. All or nothing (for writes up to 4 MiB): cancelled while it waits (for a paused
    /// recording, or room in the queue), nothing of it was recorded, so a caller that must
    /// stop waiting can record it again without duplicating any of it.
    pub async fn record_data(&self, stream: Stream, bytes: &[u8]) -> Result<(), RecordError> {
        let at_us = self.now_us();
        let mut pieces = bytes.chunks(MAX_EVENT_DATA).peekable();
        // An empty write is still an event.
        let empty: [&[u8]; 1] = [&[]];
        let mut groups: Vec<Vec<&[u8]>> = Vec::new();
        if pieces.peek().is_none() {
            groups.push(empty.to_vec());
        }
        while pieces.peek().is_some() {
            groups.push(pieces.by_ref().take(EVENT_QUEUE).collect());
        }
        for (i, group) in groups.iter().enumerate() {
            if self.wait_gate(true).await.is_err() {
                for piece in groups[i..].iter().flatten() {
                    self.shared.note_refused_data(at_us, stream, piece.len());
                }
                return Err(self.unavailable());
            }
            if group.len() > self.tx().capacity() {
                // Room for all of it only once the task has taken what is queued.
                self.nudge(true);
            }
            let permits = self
                .tx()
                .reserve_many(group.len())
                .await
                .map_err(|_| RecordError::Stopped)?;
            for (permit, piece) in permits.zip(group.iter()) {
                permit.send(Msg::Event(Event {
                    at_us,
                    kind: EventKind::Data {
                        stream,
                        bytes: piece.to_vec(),
                    },
                }));
            }
            self.nudge(false);
        }
        Ok(())
    }

    /// Records `kind` now, or fails with [`RecordError::Backpressure`] instead of waiting.
    pub fn try_record(&self, kind: EventKind) -> Result<(), RecordError> {
        let at_us = self.now_us();
        match self.shared.gate.load(Ordering::Acquire) {
            FAILED if held_back(&kind) => {
                self.shared.note_refused(at_us, &kind);
                return Err(self.unavailable());
            }
            PAUSED if held_back(&kind) => return Err(RecordError::Backpressure),
            _ => {}
        }
        self.tx()
            .try_send(Msg::Event(Event { at_us, kind }))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => RecordError::Backpressure,
                mpsc::error::TrySendError::Closed(_) => RecordError::Stopped,
            })?;
        self.nudge(false);
        Ok(())
    }

    /// Flushes everything, makes it durable (in the store, or in the spool from where it is
    /// uploaded later) and writes the signed seal. If the recorder gave up, the seal declares
    /// the gap; if even that cannot be made durable within `failure_timeout`, this returns
    /// [`RecordError::StoreUnavailable`] and the recorder keeps trying in the background.
    pub async fn finish(self, exit: Option<ExitInfo>) -> Result<SealPayload, RecordError> {
        self.stop(exit, true, None)
            .await?
            .ok_or(RecordError::Stopped)
    }

    /// [`Self::finish`], writing the session's extracted commands first (encrypted under the
    /// session key) and binding them into the seal.
    pub async fn finish_with_commands(
        self,
        exit: Option<ExitInfo>,
        commands: Vec<CommandEntry>,
    ) -> Result<SealPayload, RecordError> {
        self.stop(exit, true, Some(commands))
            .await?
            .ok_or(RecordError::Stopped)
    }

    /// Flushes and uploads everything but writes no seal, leaving the session open: what a
    /// recorder that must stop without knowing how the session ended (shutdown, hand-off to
    /// another process) does. `kubetape seal` can seal it later as interrupted.
    pub async fn finish_unsealed(self) -> Result<(), RecordError> {
        self.stop(None, false, None).await.map(|_| ())
    }

    async fn stop(
        self,
        exit: Option<ExitInfo>,
        seal: bool,
        commands: Option<Vec<CommandEntry>>,
    ) -> Result<Option<SealPayload>, RecordError> {
        let (reply, done) = oneshot::channel();
        self.tx()
            .send(Msg::Finish {
                exit,
                seal,
                commands,
                reply,
            })
            .await
            .map_err(|_| RecordError::Stopped)?;
        self.nudge(true);
        done.await.map_err(|_| RecordError::Stopped)?
    }
}

// === the recorder task ===

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// After the spool refused a write, how long before it is asked again.
const SPOOL_RETRY: Duration = Duration::from_millis(500);

/// What an outbox entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Key,
    Meta,
    Chunk { seq: u64 },
    Commands,
    Seal { sealed_at_us: u64 },
}

/// One object on its way to the store.
#[derive(Debug)]
struct Item {
    key: String,
    /// The bytes, while they are needed in memory: until spooled (then read back to upload).
    bytes: Option<Bytes>,
    /// In the spool: durable, not in the store yet.
    spooled: bool,
    queued: tokio::time::Instant,
    kind: Kind,
    /// May exceed the spool's bound (see [`Spool`]).
    last_words: bool,
    /// Events in it (chunks).
    events: u64,
}

impl Item {
    fn new(key: String, bytes: Bytes, kind: Kind, queued: tokio::time::Instant) -> Self {
        Self {
            key,
            bytes: Some(bytes),
            spooled: false,
            queued,
            kind,
            last_words: false,
            events: 0,
        }
    }

    fn len(&self) -> u64 {
        self.bytes.as_ref().map_or(0, |b| b.len() as u64)
    }
}

type PutResult = Result<PutOutcome, StoreError>;

struct InFlight {
    key: String,
    task: JoinHandle<Option<PutResult>>,
}

struct Spooling {
    key: String,
    task: JoinHandle<Result<(), SpoolError>>,
}

struct Finishing {
    exit: Option<ExitInfo>,
    seal: bool,
    commands: Option<Vec<CommandEntry>>,
    reply: Option<oneshot::Sender<Result<Option<SealPayload>, RecordError>>>,
    /// Set once the final chunk, commands and seal are queued.
    queued: Option<Option<SealPayload>>,
}

struct Task {
    store: Store,
    durability: Durability,
    session: SessionId,
    /// Where the stream's objects go (`sessions/` or `audit/`: its class decides).
    dir: StreamDir,
    builder: ChunkBuilder,
    observer: Option<ObserverTask>,
    rx: mpsc::Receiver<Msg>,
    clock: Instant,
    shared: Arc<Shared>,
    outbox: VecDeque<Item>,
    put: Option<InFlight>,
    spooling: Option<Spooling>,
    retry_at: tokio::time::Instant,
    backoff: Duration,
    /// A put failed or timed out and none succeeded since: spool without waiting.
    store_down: bool,
    spool_refused_at: Option<tokio::time::Instant>,
    /// Last time a put or a spool write succeeded.
    progress_at: tokio::time::Instant,
    /// The instant the last [`Self::step`] acted on: what fell due after it is still to do.
    stepped_at: tokio::time::Instant,
    paused_since: Option<tokio::time::Instant>,
    accepting: bool,
    opening: Option<(
        oneshot::Sender<Result<(), RecordError>>,
        tokio::time::Instant,
    )>,
    /// Keys this session wrote to the store (to clean up after a failed open).
    written: Vec<String>,
    finishing: Option<Finishing>,
    failed_at: Option<tokio::time::Instant>,
    gaps: Vec<Gap>,
    /// Events in the builder's totals that the gaps gave up on (left out of the seal).
    gap_events: u64,
}

enum Woke {
    Msg(Option<Msg>),
    /// A sender woke a task that was leaving its queue alone.
    Nudged,
    Deadline,
    Put(Result<Option<PutResult>, tokio::task::JoinError>),
    Spooled(Result<Result<(), SpoolError>, tokio::task::JoinError>),
    Timer,
}

impl Task {
    async fn run(mut self) {
        loop {
            self.step().await;
            if self.done() {
                break;
            }
            let deadline = self
                .builder
                .deadline_us()
                .map(|us| tokio::time::Instant::from_std(self.clock + Duration::from_micros(us)));
            let timer = self.next_timer();
            let mut lazy = self.can_wait();
            self.shared.lazy.store(lazy, Ordering::SeqCst);
            if lazy {
                // Pairs with the senders' fence (see `Recorder::nudge`).
                std::sync::atomic::fence(Ordering::SeqCst);
                lazy = self.rx.len() < LAZY_EVENTS;
            }
            let woke = tokio::select! {
                msg = self.rx.recv(), if self.accepting && !lazy => Woke::Msg(msg),
                () = self.shared.wake.notified(), if lazy => Woke::Nudged,
                () = sleep_until(deadline) => Woke::Deadline,
                r = join(&mut self.put) => Woke::Put(r),
                r = join_spool(&mut self.spooling) => Woke::Spooled(r),
                () = sleep_until(timer) => Woke::Timer,
            };
            match woke {
                Woke::Msg(Some(msg)) => self.on_msg(msg).await,
                Woke::Msg(None) => {
                    // Dropped without `finish`: keep what was recorded, leave the session open.
                    self.accepting = false;
                    self.flush();
                }
                Woke::Nudged => self.drain().await,
                Woke::Deadline => {
                    self.drain().await;
                    self.flush();
                }
                Woke::Put(r) => self.on_put(r).await,
                Woke::Spooled(r) => self.on_spooled(r),
                Woke::Timer => {}
            }
        }
        if let Some(observer) = self.observer.take() {
            drop(observer.finish());
        }
    }

    /// Whether the task may leave events queued until its open chunk's deadline (or until a
    /// sender wakes it): a chunk is open, so the deadline is set and bounds how long an event
    /// waits, and nothing else needs them sooner (a failure, a pause, the finish, the open).
    /// Events are then taken in batches, once or twice a second while someone types, instead
    /// of each on its own wake-up.
    fn can_wait(&self) -> bool {
        self.accepting
            && self.builder.deadline_us().is_some()
            && self.failed_at.is_none()
            && self.paused_since.is_none()
            && self.finishing.is_none()
            && self.opening.is_none()
    }

    /// Takes every message already queued.
    async fn drain(&mut self) {
        while self.accepting {
            match self.rx.try_recv() {
                Ok(msg) => self.on_msg(msg).await,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    // Dropped without `finish` (as `Woke::Msg(None)`).
                    self.accepting = false;
                    self.flush();
                }
            }
        }
    }

    fn done(&self) -> bool {
        !self.accepting
            && self.opening.is_none()
            && self.finishing.as_ref().is_none_or(|f| f.reply.is_none())
            && self.outbox.is_empty()
            && self.put.is_none()
            && self.spooling.is_none()
    }

    fn now_us(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    fn failed(&self) -> bool {
        self.failed_at.is_some()
    }

    /// When something is due without an outside event: a put retry, a chunk old enough to
    /// spool, a spool retry, the pause's give-up, the finish's deadline.
    fn next_timer(&self) -> Option<tokio::time::Instant> {
        let d = &self.durability;
        let mut at: Vec<tokio::time::Instant> = Vec::new();
        if self.put.is_none() && !self.outbox.is_empty() {
            at.push(self.retry_at);
        }
        if let Some(item) = self.outbox.iter().find(|i| !i.spooled) {
            at.push(item.queued + d.spool_after);
            at.push(item.queued + 2 * d.spool_after);
        }
        if let Some(t) = self.spool_refused_at {
            at.push(t + SPOOL_RETRY);
        }
        if let Some(since) = self.paused_since {
            at.push(since.max(self.progress_at) + d.failure_timeout);
        }
        if let Some(t) = self.failed_at {
            at.push(t + d.failure_timeout);
        }
        if let Some((_, t)) = &self.opening {
            at.push(*t + 2 * d.store_timeout);
        }
        // Only instants after the step before this wait: it acted on those due by then (or
        // chose to wait on something else). One that fell due while it ran (it awaits, e.g.
        // giving up) is not done yet and fires at once. Filtering against the time now instead
        // lost such an instant: a put retry falling due then was never made, and a paused
        // session stayed paused until another timer (the durability test, under CI load).
        let stepped_at = self.stepped_at;
        at.into_iter().filter(|t| *t > stepped_at).min()
    }

    async fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Event(event) => self.take(event).await,
            Msg::Finish {
                exit,
                seal,
                commands,
                reply,
            } => {
                self.accepting = false;
                // Events queued before the finish are the session's last.
                while let Ok(Msg::Event(event)) = self.rx.try_recv() {
                    self.take(event).await;
                }
                self.finishing = Some(Finishing {
                    exit,
                    seal,
                    commands,
                    reply: Some(reply),
                    queued: None,
                });
                self.queue_end().await;
            }
        }
    }

    async fn take(&mut self, event: Event) {
        if let Some(observer) = &self.observer {
            observer.observe(&event).await;
        }
        // A loss the caller declares (the audit log's dropped records) is listed in the seal
        // too, where a verifier without the data key sees it.
        if let EventKind::Gap { json } = &event.kind
            && let Ok(gap) = Gap::parse(json)
        {
            self.gaps.push(gap);
        }
        match self.builder.push(&event) {
            Ok(chunks) => chunks.into_iter().for_each(|c| self.queue_chunk(c, false)),
            Err(e) => {
                self.give_up(format!("a chunk could not be sealed: {e}"))
                    .await
            }
        }
    }

    fn flush(&mut self) {
        match self.builder.flush() {
            Ok(Some(chunk)) => self.queue_chunk(chunk, self.failed()),
            Ok(None) => {}
            // The open chunk is kept; the next flush retries.
            Err(e) => {
                tracing::error!(session = %self.session, error = %e, "a chunk could not be sealed")
            }
        }
    }

    fn queue_chunk(&mut self, chunk: SealedChunk, last_words: bool) {
        let seq = chunk.header.seq;
        let events = u64::from(chunk.header.events);
        let mut item = Item::new(
            self.dir.chunk(seq),
            chunk.into_encoded().into(),
            Kind::Chunk { seq },
            tokio::time::Instant::now(),
        );
        item.last_words = last_words;
        item.events = events;
        self.outbox.push_back(item);
    }

    /// An object just became durable (stored, or spooled) for the first time.
    fn became_durable(&self, item_events: u64) {
        if !self.failed() {
            self.shared
                .durable_events
                .fetch_add(item_events, Ordering::Relaxed);
        }
    }

    /// Queues the end: the final chunk, the commands and the seal (or, after giving up, the
    /// last words: the seal declares the gaps and the commands are left out).
    async fn queue_end(&mut self) {
        let Some(finishing) = self.finishing.as_mut() else {
            return;
        };
        if finishing.queued.is_some() {
            return;
        }
        let failed = self.failed_at.is_some();
        if failed {
            let refused = std::mem::take(&mut *self.shared.refused.lock().expect("refused data"));
            if refused.events > 0 {
                let gap = Gap {
                    cause: format!(
                        "{}; shown to the client but refused by the recorder, which had given up",
                        self.shared.failure().unwrap_or_default()
                    ),
                    from_us: refused.from_us.unwrap_or(refused.to_us),
                    to_us: refused.to_us,
                    bytes: refused.bytes,
                    events: refused.events,
                    chunks: None,
                };
                let at_us = self.now_us();
                let event = Event {
                    at_us,
                    kind: EventKind::Gap {
                        json: gap.to_json(),
                    },
                };
                if let Ok(chunks) = self.builder.push(&event) {
                    chunks.into_iter().for_each(|c| self.queue_chunk(c, true));
                }
                // The gap event itself is recorded; only its declared loss is not.
                self.gaps.push(gap);
            }
        }
        self.flush();
        let Some(finishing) = self.finishing.as_mut() else {
            return;
        };
        if !finishing.seal {
            finishing.queued = Some(None);
            return;
        }
        let observed = match self.observer.take() {
            Some(o) => o.finish().await,
            None => None,
        };
        let Some(finishing) = self.finishing.as_mut() else {
            return;
        };
        let mut seal = self
            .builder
            .seal_payload(SealState::Sealed, finishing.exit.clone());
        let lost = self.gaps.iter().filter(|g| g.chunks.is_some());
        for gap in lost {
            seal.bytes.stdin -= gap.bytes.stdin;
            seal.bytes.stdout -= gap.bytes.stdout;
            seal.bytes.stderr -= gap.bytes.stderr;
            seal.bytes.port_forward -= gap.bytes.port_forward;
        }
        seal.events -= self.gap_events;
        seal.gaps = self.gaps.clone();
        let now = tokio::time::Instant::now();
        // The commands are a convenience for search; the recording and its seal are the
        // evidence, so commands that cannot be encoded (over 64 MiB) are left out rather than
        // the seal. After giving up they are left out too: last words stay small.
        let entries = finishing.commands.take().or(observed);
        if !failed
            && let Some(entries) = entries
            && let Ok((bytes, reference)) =
                commands::encode(self.session, self.builder.dek(), &entries)
        {
            self.outbox.push_back(Item::new(
                self.dir.commands(),
                bytes.into(),
                Kind::Commands,
                now,
            ));
            seal.commands = Some(reference);
        }
        let mut item = Item::new(
            self.dir.seal(),
            seal.sign(self.builder.signer()).into(),
            Kind::Seal {
                sealed_at_us: seal.sealed_at_us,
            },
            now,
        );
        item.last_words = failed;
        self.outbox.push_back(item);
        finishing.queued = Some(Some(seal));
    }

    /// Starts what is due, then updates the gate, the give-up, the open and the finish.
    async fn step(&mut self) {
        let now = tokio::time::Instant::now();
        self.stepped_at = now;
        self.start_put(now);
        self.start_spool(now);
        self.update_gate(now);
        if !self.failed()
            && let Some(cause) = self.should_give_up(now)
        {
            self.give_up(cause).await;
            self.start_put(now);
            self.start_spool(now);
            self.update_gate(now);
        }
        self.check_open(now);
        self.check_finish(now);
    }

    fn start_put(&mut self, now: tokio::time::Instant) {
        if self.put.is_some() || now < self.retry_at {
            return;
        }
        let Some(item) = self.outbox.front() else {
            return;
        };
        let store = self.store.clone();
        let key = item.key.clone();
        let bytes = item.bytes.clone();
        let spool = self.durability.spool.clone();
        let timeout = self.durability.store_timeout;
        // Back from an outage, a session may have been sealed by another gateway meanwhile (its
        // lease lapsed while this one could not reach the store): nothing is appended after it.
        let check_seal = (self.store_down && self.opening.is_none()).then(|| self.dir.seal());
        let task = tokio::spawn(async move {
            if let Some(seal) = check_seal {
                match tokio::time::timeout(timeout, store.get_opt(&seal)).await {
                    Ok(Ok(None)) => {}
                    Ok(Ok(Some(_))) => return Some(Ok(PutOutcome::SealedElsewhere)),
                    Ok(Err(e)) => return Some(Err(e)),
                    Err(_) => return None,
                }
            }
            let bytes = match bytes {
                Some(b) => b,
                None => {
                    // Spooled and dropped from memory: read it back.
                    let spool = spool?;
                    let k = key.clone();
                    let read = tokio::task::spawn_blocking(move || spool.read(&k)).await;
                    Bytes::from(read.ok()?.ok()?)
                }
            };
            tokio::time::timeout(timeout, put_same(&store, &key, bytes))
                .await
                .ok()
        });
        self.put = Some(InFlight {
            key: item.key.clone(),
            task,
        });
    }

    fn start_spool(&mut self, now: tokio::time::Instant) {
        let Some(spool) = self.durability.spool.clone() else {
            return;
        };
        if self.spooling.is_some() || self.spool_refused_at.is_some_and(|t| now < t + SPOOL_RETRY) {
            return;
        }
        // In order: the first object not spooled yet, and only that one.
        let Some(item) = self.outbox.iter().find(|i| !i.spooled) else {
            return;
        };
        let due = self.store_down || now >= item.queued + self.durability.spool_after;
        let allowed = match item.kind {
            Kind::Key | Kind::Meta => self.durability.open_via_spool,
            _ => true,
        };
        let Some(bytes) = item.bytes.clone().filter(|_| due && allowed) else {
            return;
        };
        let key = item.key.clone();
        let last_words = item.last_words;
        let k = key.clone();
        let task = tokio::task::spawn_blocking(move || spool.write(&k, &bytes, last_words));
        self.spooling = Some(Spooling { key, task });
    }

    /// Pauses the caller while output waits too long, or in too great a quantity, for a
    /// durable place; reopens when it has one.
    fn update_gate(&mut self, now: tokio::time::Instant) {
        let undurable: Vec<&Item> = self
            .outbox
            .iter()
            .filter(|i| !i.spooled && matches!(i.kind, Kind::Chunk { .. }))
            .collect();
        let oldest = undurable.iter().map(|i| i.queued).min();
        self.shared
            .undurable_chunks
            .store(undurable.len() as u64, Ordering::Relaxed);
        self.shared
            .undurable_bytes
            .store(undurable.iter().map(|i| i.len()).sum(), Ordering::Relaxed);
        let age_us = oldest.map(|t| now.saturating_duration_since(t).as_micros() as u64);
        self.shared
            .oldest_us
            .store(age_us.unwrap_or(0), Ordering::Relaxed);
        self.shared.oldest_since_unix_us.store(
            age_us.map_or(0, |age| {
                crate::time::unix_micros_now().saturating_sub(age).max(1)
            }),
            Ordering::Relaxed,
        );
        if self.failed() {
            return;
        }
        let paused = oldest.is_some_and(|t| now >= t + 2 * self.durability.spool_after)
            || undurable.len() > self.builder.policy().upload_queue().min(MAX_UNDURABLE);
        match (paused, self.paused_since) {
            (true, None) => {
                self.paused_since = Some(now);
                tracing::warn!(
                    session = %self.session,
                    undurable = undurable.len(),
                    store_down = self.store_down,
                    "recording paused: output cannot be made durable (store and spool); the session waits"
                );
                self.shared.set_gate(PAUSED);
            }
            (false, Some(since)) => {
                self.paused_since = None;
                tracing::info!(session = %self.session, paused_for = ?now.duration_since(since), "recording resumed");
                self.shared.set_gate(OPEN);
            }
            _ => {}
        }
    }

    fn should_give_up(&self, now: tokio::time::Instant) -> Option<String> {
        let since = self.paused_since?;
        let d = &self.durability;
        let spool_state = match (&d.spool, self.spool_refused_at) {
            (None, _) => "no spool is configured",
            (Some(_), Some(_)) => "the local spool is full or failing",
            (Some(_), None) => "the local spool could not keep up",
        };
        // Output has waited past the pause threshold (not merely piled up behind a slow store).
        let overdue = self.outbox.iter().any(|i| {
            !i.spooled
                && matches!(i.kind, Kind::Chunk { .. })
                && now >= i.queued + 2 * d.spool_after
        });
        match d.on_failure {
            OnStoreFailure::End
                if overdue && (d.spool.is_none() || self.spool_refused_at.is_some()) =>
            {
                Some(format!(
                    "the recording store {} and {spool_state}",
                    if self.store_down {
                        "is failing"
                    } else {
                        "does not answer in time"
                    }
                ))
            }
            OnStoreFailure::Pause if now >= since.max(self.progress_at) + d.failure_timeout => {
                Some(format!(
                    "the recording store {} for {} s and {spool_state}",
                    if self.store_down {
                        "failed"
                    } else {
                        "made no progress"
                    },
                    d.failure_timeout.as_secs()
                ))
            }
            _ => None,
        }
    }

    /// Gives up (see the module docs): takes what was already accepted, abandons the chunks
    /// that are in neither the store nor the spool, and queues a chunk declaring the gap.
    async fn give_up(&mut self, cause: String) {
        if self.failed() {
            return;
        }
        tracing::error!(session = %self.session, cause = %cause, "RECORDING GAVE UP: ending the session; what could not be written is declared as a gap");
        *self.shared.failure.lock().expect("recorder failure") = Some(cause.clone());
        self.failed_at = Some(tokio::time::Instant::now());
        // Events accepted before the gate closed were shown: they go into chunks first.
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Event(event) => {
                    if let Ok(chunks) = self.builder.push(&event) {
                        chunks.into_iter().for_each(|c| self.queue_chunk(c, false));
                    }
                }
                Msg::Finish {
                    exit,
                    seal,
                    commands,
                    reply,
                } => {
                    self.accepting = false;
                    self.finishing = Some(Finishing {
                        exit,
                        seal,
                        commands,
                        reply: Some(reply),
                        queued: None,
                    });
                }
            }
        }
        self.shared.gate.store(FAILED, Ordering::Release);
        self.shared.gate_tx.send_replace(FAILED);
        if let Ok(Some(chunk)) = self.builder.flush() {
            self.queue_chunk(chunk, false);
        }
        // Undurable objects are a suffix of the outbox (spooling goes in order).
        let first_undurable = self
            .outbox
            .iter()
            .position(|i| !i.spooled)
            .unwrap_or(self.outbox.len());
        let abandoned: Vec<Item> = self.outbox.drain(first_undurable..).collect();
        if let Some(put) = &self.put
            && abandoned.iter().any(|i| i.key == put.key)
        {
            put.task.abort();
            self.put = None;
        }
        // A queued commands object or seal is rewritten as last words.
        if let Some(f) = self.finishing.as_mut() {
            f.queued = None;
        }
        let mut lost: Vec<(u64, SealedChunk)> = abandoned
            .iter()
            .filter_map(|i| match i.kind {
                Kind::Chunk { seq } => Some((seq, SealedChunk::decode(i.bytes.as_ref()?).ok()?)),
                _ => None,
            })
            .collect();
        lost.sort_by_key(|(seq, _)| *seq);
        if let (Some((first, first_chunk)), Some((last, last_chunk))) = (lost.first(), lost.last())
        {
            let mut totals = Totals::default();
            // The gateway's own words about the session (markers, the exit) are said again
            // after the gap: its end survives giving up.
            let mut restated = Vec::new();
            for (_, chunk) in &lost {
                if let Ok(events) = chunk.open(self.builder.dek()) {
                    events.iter().for_each(|e| totals.count(e));
                    restated.extend(events.into_iter().filter(|e| !held_back(&e.kind)));
                }
            }
            let gap = Gap {
                cause,
                from_us: first_chunk.header.first_us,
                to_us: last_chunk.header.last_us,
                bytes: totals.bytes,
                events: totals.events - restated.len() as u64,
                chunks: Some(GapChunks {
                    first: *first,
                    last: *last,
                    resume: last_chunk.digest().to_hex(),
                }),
            };
            tracing::error!(session = %self.session, gap = %gap.describe(), "recording gap");
            self.gap_events += totals.events;
            let event = Event {
                at_us: self.now_us(),
                kind: EventKind::Gap {
                    json: gap.to_json(),
                },
            };
            self.gaps.push(gap);
            // The gap is declared at once (last words), not only with the seal, in case the
            // session's end never comes.
            for event in std::iter::once(event).chain(restated) {
                if let Ok(chunks) = self.builder.push(&event) {
                    chunks.into_iter().for_each(|c| self.queue_chunk(c, true));
                }
            }
            if let Ok(Some(chunk)) = self.builder.flush() {
                self.queue_chunk(chunk, true);
            }
        }
        if self.finishing.is_some() {
            self.queue_end().await;
        }
    }

    async fn on_put(&mut self, r: Result<Option<PutResult>, tokio::task::JoinError>) {
        let Some(put) = self.put.take() else {
            return;
        };
        let now = tokio::time::Instant::now();
        let failure = match r {
            Ok(Some(Ok(PutOutcome::Written))) => None,
            Ok(Some(Ok(PutOutcome::SealedElsewhere))) => {
                self.sealed_elsewhere().await;
                return;
            }
            Ok(Some(Ok(PutOutcome::Conflict))) => {
                let key = put.key.clone();
                if self.opening.is_some() {
                    self.fail_open(RecordError::Conflict { key });
                } else {
                    self.give_up(format!(
                        "{key}: the store holds a different object under this name"
                    ))
                    .await;
                }
                return;
            }
            Ok(Some(Err(e))) => Some(e.to_string()),
            Ok(None) => Some(format!(
                "no answer within {} s",
                self.durability.store_timeout.as_secs_f32()
            )),
            Err(e) if e.is_cancelled() => return,
            Err(e) => Some(format!("the upload task failed: {e}")),
        };
        if let Some(why) = failure {
            if !self.store_down {
                tracing::warn!(session = %self.session, key = %put.key, error = %why, "the recording store failed a write; spooling until it answers");
            }
            self.store_down = true;
            self.retry_at = now + self.backoff;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            // An open fails fast on an error (a timeout or a refusal), as before spooling.
            if self.opening.is_some() && !self.durability.open_via_spool {
                self.written.push(put.key.clone());
                self.fail_open(RecordError::Store(StoreError::Io {
                    op: "put",
                    path: put.key,
                    source: object_store::Error::Generic {
                        store: "recorder",
                        source: why.into(),
                    },
                }));
            }
            return;
        }
        // Written: the front of the outbox is in the store.
        let Some(mut item) = self.outbox.pop_front() else {
            return;
        };
        // A chunk's buffer, no longer shared once written (a store that keeps it, such as
        // `memory://`, still holds it), is built in again.
        if let (Kind::Chunk { .. }, Some(bytes)) = (&item.kind, item.bytes.take())
            && let Ok(buf) = bytes.try_into_mut()
        {
            self.builder.recycle(buf.into());
        }
        debug_assert_eq!(item.key, put.key);
        if self.store_down {
            tracing::info!(session = %self.session, "the recording store answers again; replaying what was spooled");
        }
        self.store_down = false;
        self.backoff = MIN_BACKOFF;
        self.retry_at = now;
        self.progress_at = now;
        if matches!(item.kind, Kind::Key | Kind::Meta) {
            self.written.push(item.key.clone());
        }
        if !item.spooled {
            self.became_durable(item.events);
        }
        if item.spooled
            && let Some(spool) = self.durability.spool.clone()
        {
            let key = item.key.clone();
            tokio::task::spawn_blocking(move || spool.remove(&key));
        }
        // `ended/` markers are the feed of sessions; audit streams are not marked.
        if let Kind::Seal { sealed_at_us } = item.kind
            && self.dir.root() == StreamRoot::of(StreamClass::Session)
        {
            let _ = tokio::time::timeout(
                self.durability.store_timeout,
                super::catalog::mark_ended(&self.store, self.session, sealed_at_us),
            )
            .await;
        }
    }

    /// The session was sealed by another gateway while this one could not reach the store:
    /// what is not in the store is kept in the spool's `stranded/` for a person (it is not
    /// appended after the seal), and the recorder stops.
    async fn sealed_elsewhere(&mut self) {
        let items: Vec<Item> = self.outbox.drain(..).collect();
        let count = items.len();
        let where_ = match self.durability.spool.clone() {
            Some(spool) => {
                let dir = spool.stranded_dir();
                let _ = tokio::task::spawn_blocking(move || {
                    for item in items {
                        match &item.bytes {
                            Some(bytes) => spool.strand_bytes(&item.key, bytes),
                            None => spool.strand(&item.key),
                        }
                    }
                })
                .await;
                format!("kept in {}", dir.display())
            }
            None => "lost: no spool".into(),
        };
        let cause = format!(
            "the session was sealed by another gateway while this one could not reach the store; {count} objects not in the store were {where_}"
        );
        tracing::error!(session = %self.session, cause = %cause, "RECORDING STRANDED");
        *self.shared.failure.lock().expect("recorder failure") = Some(cause.clone());
        self.failed_at = Some(tokio::time::Instant::now());
        self.shared.gate.store(FAILED, Ordering::Release);
        self.shared.gate_tx.send_replace(FAILED);
        self.accepting = false;
        if let Some(f) = self.finishing.as_mut()
            && let Some(reply) = f.reply.take()
        {
            let _ = reply.send(Err(RecordError::StoreUnavailable { cause }));
        }
    }

    fn on_spooled(&mut self, r: Result<Result<(), SpoolError>, tokio::task::JoinError>) {
        let Some(spooling) = self.spooling.take() else {
            return;
        };
        let now = tokio::time::Instant::now();
        let Some(item) = self.outbox.iter_mut().find(|i| i.key == spooling.key) else {
            // Put meanwhile: the spooled copy is not needed.
            if matches!(r, Ok(Ok(())))
                && let Some(spool) = self.durability.spool.clone()
            {
                tokio::task::spawn_blocking(move || spool.remove(&spooling.key));
            }
            return;
        };
        match r {
            Ok(Ok(())) => {
                item.spooled = true;
                item.bytes = None;
                let events = item.events;
                let is_chunk = matches!(item.kind, Kind::Chunk { .. });
                self.became_durable(events);
                self.progress_at = now;
                if self.spool_refused_at.take().is_some() {
                    tracing::info!(session = %self.session, "the spool takes writes again");
                }
                if is_chunk {
                    self.shared.spooled_total.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Err(e)) => {
                if self.spool_refused_at.is_none() {
                    tracing::warn!(session = %self.session, error = %e, "the spool refused a write");
                }
                self.spool_refused_at = Some(now);
            }
            Err(e) => {
                tracing::error!(session = %self.session, error = %e, "the spool write task failed");
                self.spool_refused_at = Some(now);
            }
        }
    }

    fn check_open(&mut self, now: tokio::time::Instant) {
        let Some((_, started)) = &self.opening else {
            return;
        };
        let open = !self
            .outbox
            .iter()
            .any(|i| matches!(i.kind, Kind::Key | Kind::Meta) && !i.spooled);
        if open {
            let (reply, _) = self.opening.take().expect("opening");
            if reply.send(Ok(())).is_err() {
                // The caller went away: the session never started.
                self.accepting = false;
            }
        } else if now >= *started + 2 * self.durability.store_timeout {
            // Each of the two puts fails the open on its own error or timeout; this is for an
            // open into the spool that neither the store nor the spool takes.
            self.fail_open(RecordError::StoreUnavailable {
                cause: format!(
                    "the session's key and metadata could not be written within {} s",
                    (2 * self.durability.store_timeout).as_secs_f32()
                ),
            });
        }
    }

    /// The session cannot open: says why, and deletes whatever it wrote (a half-open session
    /// would be listed, and fail verification, forever).
    fn fail_open(&mut self, error: RecordError) {
        let Some((reply, _)) = self.opening.take() else {
            return;
        };
        let _ = reply.send(Err(error));
        self.accepting = false;
        if let Some(put) = self.put.take() {
            put.task.abort();
            // A put cut short may still land.
            self.written.push(put.key);
        }
        for item in self.outbox.drain(..) {
            if item.spooled
                && let Some(spool) = self.durability.spool.clone()
            {
                tokio::task::spawn_blocking(move || spool.remove(&item.key));
            }
        }
        let store = self.store.clone();
        let timeout = self.durability.store_timeout;
        // Metadata before key: never a metadata object without its key.
        let mut keys = std::mem::take(&mut self.written);
        keys.sort_by_key(|k| !k.ends_with("meta.json"));
        keys.dedup();
        tokio::spawn(async move {
            for key in keys {
                for attempt in 0..5u32 {
                    match tokio::time::timeout(timeout, store.delete(&key)).await {
                        Ok(Ok(())) => break,
                        _ => tokio::time::sleep(MIN_BACKOFF * 2u32.pow(attempt)).await,
                    }
                }
            }
        });
    }

    fn check_finish(&mut self, now: tokio::time::Instant) {
        let Some(finishing) = self.finishing.as_mut() else {
            return;
        };
        let Some(seal) = &finishing.queued else {
            return;
        };
        let durable = self.outbox.iter().all(|i| i.spooled);
        let reply = if durable {
            Some(Ok(seal.clone()))
        } else if self
            .failed_at
            .is_some_and(|t| now >= t + self.durability.failure_timeout)
        {
            Some(Err(RecordError::StoreUnavailable {
                cause: format!(
                    "{}; its last words are not durable yet (still retried)",
                    self.shared.failure().unwrap_or_default()
                ),
            }))
        } else {
            None
        };
        if let Some(result) = reply
            && let Some(tx) = finishing.reply.take()
        {
            let _ = tx.send(result);
        }
    }
}

async fn join(put: &mut Option<InFlight>) -> Result<Option<PutResult>, tokio::task::JoinError> {
    match put {
        Some(p) => (&mut p.task).await,
        None => std::future::pending().await,
    }
}

async fn join_spool(
    spooling: &mut Option<Spooling>,
) -> Result<Result<(), SpoolError>, tokio::task::JoinError> {
    match spooling {
        Some(s) => (&mut s.task).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Events an observer may have queued before the recorder waits for it.
const OBSERVER_QUEUE: usize = 256;

/// Output a batch may hold and still be observed on the async task: emulating 4 KiB takes
/// ~30 µs, less than handing the batch to a blocking thread and back (a futex wake and two
/// context switches on each side). Keystrokes, echoes and prompts, most of what an interactive
/// session sends, stay inline; at 100 sessions typing, the handoffs were most of the gateway's
/// CPU per keystroke (perf, `cargo bench -p tests --bench exec`).
const OBSERVE_INLINE_BYTES: usize = 4 << 10;

/// Data bytes in `events` (what the observer's cost follows).
fn batch_bytes(events: &[Event]) -> usize {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Data { bytes, .. } => bytes.len(),
            _ => 0,
        })
        .sum()
}

/// The observer off the recorder's task: terminal emulation costs about as much CPU as the
/// recording itself (~120 MB/s per core), so it runs on tokio's blocking pool rather than on
/// the recorder's task, which in `kubetape record` shares one thread with the terminal relay.
/// Small batches ([`OBSERVE_INLINE_BYTES`]) are observed on the task itself.
/// It holds a thread only while it has events to work through: the thread of its own that each
/// session had for its whole life was a stack per idle session on a gateway (the idle bench,
/// `cargo bench -p tests --bench idle`). The queue is bounded and awaited: a slow observer
/// slows the session down, it never loses events.
struct ObserverTask {
    tx: mpsc::Sender<Event>,
    done: tokio::sync::oneshot::Receiver<Vec<CommandEntry>>,
    /// [`CommandObserver::reads_output`]: output is not sent when false.
    output: bool,
}

impl ObserverTask {
    fn spawn(observer: Box<dyn CommandObserver>) -> Self {
        let output = observer.reads_output();
        let (tx, mut rx) = mpsc::channel::<Event>(OBSERVER_QUEUE);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut observer = observer;
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, OBSERVER_QUEUE).await > 0 {
                if batch_bytes(&batch) <= OBSERVE_INLINE_BYTES {
                    for event in &batch {
                        observer.observe(event);
                    }
                    batch.clear();
                    continue;
                }
                let events = std::mem::take(&mut batch);
                let worked = tokio::task::spawn_blocking(move || {
                    for event in &events {
                        observer.observe(event);
                    }
                    (observer, events)
                })
                .await;
                // A panic in the observer loses the commands, not the recording: the queue
                // closes and the recorder's sends fail quietly.
                let Ok((back, mut events)) = worked else {
                    return;
                };
                observer = back;
                events.clear();
                batch = events;
            }
            if let Ok(commands) = tokio::task::spawn_blocking(move || observer.finish()).await {
                let _ = done_tx.send(commands);
            }
        });
        Self { tx, done, output }
    }

    async fn observe(&self, event: &Event) {
        if !self.output
            && let EventKind::Data {
                stream: Stream::Stdout | Stream::Stderr,
                ..
            } = &event.kind
        {
            return;
        }
        // If the thread is gone (it panicked), the commands are lost, not the recording.
        let _ = self.tx.send(event.clone()).await;
    }

    /// Ends the stream of events and waits for the commands (`None` if the thread died).
    async fn finish(self) -> Option<Vec<CommandEntry>> {
        drop(self.tx);
        self.done.await.ok()
    }
}
