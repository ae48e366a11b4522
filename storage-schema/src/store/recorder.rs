//! The recorder: the async writer a relay (or `kubetape record`) hands events to.
//!
//! ```text
//!  caller ──record()──► [events, bounded] ──► builder task ──► [chunks, bounded] ──► upload task ──► store
//!                                             (zstd, AES-GCM,                        (create-only puts,
//!                                              sign, 1 s / 256 KiB)                   in order)
//! ```
//! Memory per session is bounded by the two queues (events are at most 64 KiB each) plus one open
//! chunk. When the store lags, the queues fill and [`Recorder::record`] waits: back-pressure
//! reaches the caller, which either waits too (the terminal slows down, nothing is dropped) or
//! uses [`Recorder::try_record`] and decides for itself (for example, end the session: fail
//! closed). Chunks are uploaded one at a time in order, so what is in the store is always a
//! gap-free prefix of the session.

use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Store, StoreError};
use crate::builder::{ChunkBuilder, FlushPolicy, MAX_EVENT_DATA};
use crate::chunk::{ChunkError, SealedChunk};
use crate::commands::{self, CommandEntry, CommandObserver};
use crate::event::{Event, EventKind, Stream};
use crate::keys::{DataKey, KeyError, Keyring};
use crate::layout::{StreamDir, StreamRoot};
use crate::seal::{ExitInfo, SealPayload, SealState};
use crate::session::{SessionId, SessionMeta, StreamClass};

const EVENT_QUEUE: usize = 64;
const CHUNK_QUEUE: usize = 8;

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
}

enum Msg {
    Event(Event),
    Finish {
        exit: Option<ExitInfo>,
        seal: bool,
        commands: Option<Vec<CommandEntry>>,
    },
}

/// Handle to one session being recorded.
#[derive(Debug)]
pub struct Recorder {
    dir: StreamDir,
    clock: Instant,
    tx: mpsc::Sender<Msg>,
    task: JoinHandle<Result<Option<SealPayload>, RecordError>>,
}

impl Recorder {
    /// Opens a session: writes its metadata and wrapped data key (create-only), then starts the
    /// writer. Fails (and records nothing) if either write fails, so a caller can refuse the
    /// stream it was about to relay.
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
        mut meta: SessionMeta,
        policy: FlushPolicy,
        observer: Option<Box<dyn CommandObserver>>,
    ) -> Result<Self, RecordError> {
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
        store.put_create(&dir.meta(), meta_bytes.clone()).await?;
        store.put_create(&dir.dek(), wrapped).await?;
        let builder = ChunkBuilder::new(session, &meta_bytes, dek, signer, policy)?;
        let clock = Instant::now();
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let observer = observer.map(ObserverThread::spawn).transpose()?;
        let task = tokio::spawn(run(store, dir, builder, rx, clock, observer));
        Ok(Self {
            dir,
            clock,
            tx,
            task,
        })
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

    /// Resolves when the recorder stops taking events (its store failed, or it was finished):
    /// a relay selects on it to end a session, even an idle one, as soon as recording fails.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    /// Records `kind` now, waiting while the store is behind.
    pub async fn record(&self, kind: EventKind) -> Result<(), RecordError> {
        let at_us = self.now_us();
        self.tx
            .send(Msg::Event(Event { at_us, kind }))
            .await
            .map_err(|_| RecordError::Stopped)
    }

    /// Records an event with its own timestamp (imports, replays and tests). Events must come in
    /// time order; an earlier one is clamped to the last time seen.
    pub async fn record_at(&self, event: Event) -> Result<(), RecordError> {
        self.tx
            .send(Msg::Event(event))
            .await
            .map_err(|_| RecordError::Stopped)
    }

    /// Records stream bytes now, split into events of at most 64 KiB so the queue's memory stays
    /// bounded.
    pub async fn record_data(&self, stream: Stream, bytes: &[u8]) -> Result<(), RecordError> {
        for piece in bytes.chunks(MAX_EVENT_DATA) {
            self.record(EventKind::Data {
                stream,
                bytes: piece.to_vec(),
            })
            .await?;
        }
        Ok(())
    }

    /// Records `kind` now, or fails with [`RecordError::Backpressure`] instead of waiting.
    pub fn try_record(&self, kind: EventKind) -> Result<(), RecordError> {
        let at_us = self.now_us();
        self.tx
            .try_send(Msg::Event(Event { at_us, kind }))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => RecordError::Backpressure,
                mpsc::error::TrySendError::Closed(_) => RecordError::Stopped,
            })
    }

    /// Flushes everything, waits for the uploads and writes the signed seal.
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
        let _ = self
            .tx
            .send(Msg::Finish {
                exit,
                seal,
                commands,
            })
            .await;
        drop(self.tx);
        self.task
            .await
            .map_err(|e| RecordError::Task(e.to_string()))?
    }
}

async fn run(
    store: Store,
    dir: StreamDir,
    mut builder: ChunkBuilder,
    mut rx: mpsc::Receiver<Msg>,
    clock: Instant,
    observer: Option<ObserverThread>,
) -> Result<Option<SealPayload>, RecordError> {
    let session = builder.seal_payload(SealState::Sealed, None).session;
    // `ended/` markers are the feed of sessions; audit streams are not marked.
    let is_session = dir.root() == StreamRoot::of(StreamClass::Session);
    let (chunk_tx, chunk_rx) = mpsc::channel::<SealedChunk>(CHUNK_QUEUE);
    let mut uploader = tokio::spawn(upload(store.clone(), dir, chunk_rx));
    // Set when the uploader stops early (a failed put): stop taking events at once rather than at
    // the next chunk, so callers learn of it through `closed()` even on an idle session.
    let mut uploaded = None;
    // Any failure below stops accepting events; the uploader's error wins as the cause.
    type Ending = (Option<ExitInfo>, bool, Option<Vec<CommandEntry>>);
    let outcome: Result<Ending, RecordError> = async {
        loop {
            let deadline = builder.deadline_us().map(|us| {
                tokio::time::Instant::from_std(clock + std::time::Duration::from_micros(us))
            });
            let msg = tokio::select! {
                done = &mut uploader => {
                    uploaded = Some(done);
                    return Err(RecordError::Stopped);
                }
                msg = rx.recv() => msg,
                () = sleep_until(deadline) => {
                    if let Some(chunk) = builder.flush()? {
                        chunk_tx.send(chunk).await.map_err(|_| RecordError::Stopped)?;
                    }
                    continue;
                }
            };
            match msg {
                Some(Msg::Event(event)) => {
                    if let Some(observer) = &observer {
                        observer.observe(&event).await;
                    }
                    for chunk in builder.push(&event)? {
                        chunk_tx
                            .send(chunk)
                            .await
                            .map_err(|_| RecordError::Stopped)?;
                    }
                }
                Some(Msg::Finish {
                    exit,
                    seal,
                    commands,
                }) => return Ok((exit, seal, commands)),
                // Dropped without `finish`: keep what was recorded, leave the session open.
                None => return Err(RecordError::Stopped),
            }
        }
    }
    .await;
    rx.close();
    let flushed: Result<(), RecordError> = match builder.flush() {
        Ok(Some(chunk)) => chunk_tx.send(chunk).await.map_err(|_| RecordError::Stopped),
        Ok(None) => Ok(()),
        Err(e) => Err(e.into()),
    };
    drop(chunk_tx);
    let uploaded = match uploaded {
        Some(done) => done,
        None => uploader.await,
    };
    uploaded.map_err(|e| RecordError::Task(e.to_string()))??;
    flushed?;
    let (exit, write_seal, given) = outcome?;
    if !write_seal {
        return Ok(None);
    }
    let observed = match observer {
        Some(o) => o.finish().await,
        None => None,
    };
    let command_entries = given.or(observed);
    let mut seal = builder.seal_payload(SealState::Sealed, exit);
    // The commands are a convenience for search; the recording and its seal are the evidence,
    // so commands that cannot be encoded (over 64 MiB) are left out rather than the seal.
    if let Some(entries) = command_entries
        && let Ok((bytes, reference)) = commands::encode(session, builder.dek(), &entries)
    {
        store.put_create(&dir.commands(), bytes).await?;
        seal.commands = Some(reference);
    }
    store
        .put_create(&dir.seal(), seal.sign(builder.signer()))
        .await?;
    if is_session {
        super::catalog::mark_ended(&store, session, seal.sealed_at_us).await;
    }
    Ok(Some(seal))
}

/// Events an observer may have queued before the recorder waits for it.
const OBSERVER_QUEUE: usize = 256;

/// The observer on a thread of its own: terminal emulation costs about as much CPU as the
/// recording itself (~120 MB/s per core), so it runs beside the recorder rather than on its
/// task, which in `kubetape record` shares one thread with the terminal relay. The queue is
/// bounded and awaited: a slow observer slows the session down, it never loses events.
struct ObserverThread {
    tx: mpsc::Sender<Event>,
    done: tokio::sync::oneshot::Receiver<Vec<CommandEntry>>,
}

impl ObserverThread {
    fn spawn(mut observer: Box<dyn CommandObserver>) -> Result<Self, RecordError> {
        let (tx, mut rx) = mpsc::channel::<Event>(OBSERVER_QUEUE);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("kubetape-commands".into())
            .spawn(move || {
                while let Some(event) = rx.blocking_recv() {
                    observer.observe(&event);
                }
                let _ = done_tx.send(observer.finish());
            })
            .map_err(|e| RecordError::Task(format!("cannot start the command extractor: {e}")))?;
        Ok(Self { tx, done })
    }

    async fn observe(&self, event: &Event) {
        // If the thread is gone (it panicked), the commands are lost, not the recording.
        let _ = self.tx.send(event.clone()).await;
    }

    /// Ends the stream of events and waits for the commands (`None` if the thread died).
    async fn finish(self) -> Option<Vec<CommandEntry>> {
        drop(self.tx);
        self.done.await.ok()
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn upload(
    store: Store,
    dir: StreamDir,
    mut rx: mpsc::Receiver<SealedChunk>,
) -> Result<(), RecordError> {
    while let Some(chunk) = rx.recv().await {
        store
            .put_create(&dir.chunk(chunk.header.seq), chunk.encode())
            .await?;
    }
    Ok(())
}
