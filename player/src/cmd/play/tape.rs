//! The session being played: its reader, its seek index, its commands, and a small cache of
//! decoded chunks. Memory is bounded by the keyframes (the index thins itself) plus
//! [`CACHE_CHUNKS`] decoded chunks of at most [`CACHE_BYTES`] together (chunks of bulk output
//! hold up to 8 MiB each), plus the indexer's [`READ_AHEAD`] chunks in flight; events are never
//! all held at once.
//!
//! Opening does not wait for the index: building it runs the terminal emulator over every
//! chunk (~2 s for an hour and 200 MB of output), so it runs on a thread of its own
//! ([`Indexer`]) while the player shows the first screen and plays. Seeks to a time the index
//! covers are instant; a seek beyond it replays from the last keyframe when that is short
//! ([`REPLAY_PAST_INDEX`]), and otherwise reports that it must wait ([`Tape::seek`] returns
//! `None` and the player retries once [`Tape::covers`] says so). Playback never waits: it reads
//! chunks itself. What only a full pass finds (a chunk that fails verification, exit and gap
//! events, commands to extract when the session has no commands object) arrives as the pass
//! gets there, through [`Tape::sync`].
//!
//! The TUI runs on a plain thread, so the async reader is driven with the runtime handle's
//! `block_on`; the runtime's own thread keeps driving I/O meanwhile.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use storage_schema::commands::{CommandEntry, EntryKind};
use storage_schema::store::{ReadError, SessionReader, Store, summarize};
use storage_schema::{Event, EventKind, Gap, Keyring, SessionId, SessionMeta, Stream};
use tokio::runtime::Handle;
use transcript::{
    CommandExtractor, IndexReader, IndexWriter, Position, SeekConfig, SeekIndex, Seeked,
};

/// Decoded chunks kept: enough for a seek's tail replay plus playback around it.
const CACHE_CHUNKS: usize = 8;
/// Output bytes the cached chunks may hold together; the newest chunk is kept whatever its size.
const CACHE_BYTES: usize = 24 << 20;

/// Chunks the indexer reads ahead of the one it is emulating.
const READ_AHEAD: usize = 4;

/// Output a seek beyond the indexed part may replay from the last keyframe before it gives up
/// and waits for the indexer, so a key press never freezes the screen for long: 4 MiB, read
/// and emulated, measured ~60 ms (the `open_time` run in `app.rs`); 2 MiB, about half (plus at
/// most one chunk, as the budget is checked between chunks).
const REPLAY_PAST_INDEX: usize = 2 << 20;

/// Search matches kept per query; more are counted, not stored.
const MAX_MATCHES: usize = 10_000;

/// How the player shows an entry.
pub trait EntryView {
    /// Its text for a list or a status line (never a redacted entry's, which has none).
    fn label(&self) -> String;
    /// A short tag for its kind: `$` a command, `>` input to a program, `✗` aborted, `*`
    /// redacted.
    fn tag(&self) -> &'static str;
    /// When the whole line is on the screen: where `n`/`p` land.
    fn lands_at(&self) -> u64;
}

impl EntryView for CommandEntry {
    fn label(&self) -> String {
        match self.shown_text() {
            None => "[redacted: typed without echo]".into(),
            Some(t) => t.replace('\n', " ⏎ "),
        }
    }

    fn tag(&self) -> &'static str {
        match self.kind {
            EntryKind::Command => "$",
            EntryKind::Input => ">",
            EntryKind::Aborted => "✗",
            EntryKind::Redacted => "*",
            EntryKind::Other => "?",
        }
    }

    fn lands_at(&self) -> u64 {
        self.shown_us.unwrap_or(self.at_us).max(self.at_us)
    }
}

/// An open session with its seek index.
#[derive(Debug)]
pub struct Tape {
    rt: Handle,
    store: Store,
    keyring: Keyring,
    pub id: SessionId,
    /// Shared with the indexer's read-ahead tasks.
    reader: Arc<SessionReader>,
    index: IndexReader,
    indexer: Indexer,
    /// What the indexer found and has not been taken into the fields below yet.
    found: Arc<Found>,
    pub commands: Vec<CommandEntry>,
    /// Whether `commands` come from our own extraction (no sealed commands object, or one that
    /// failed its check): they fill in as the indexer gets through the session.
    extracting: bool,
    /// The extraction is to be finished once the indexer has every chunk (the session is not
    /// followed, or it ended).
    finish_extraction: bool,
    pub exit: Option<(i32, String)>,
    /// `sealed`, `interrupted` or `open`, as `kubetape ls` says.
    pub state: String,
    /// What failed verification: a chunk (everything before it plays, nothing after it is
    /// shown: a tampered recording is never shown as if intact), or the commands object (the
    /// commands are then extracted from the chunks instead).
    pub damage: Option<String>,
    /// Losses the recording declares (its seal's gaps, then gap events as they are indexed),
    /// in order.
    pub gaps: Vec<Gap>,
    /// The first chunk that failed: nothing from it on is read, even when following.
    stop: Option<usize>,
    /// Time of the last event of the last chunk listed, read (and verified) at open and when
    /// following: the duration before the indexer has got there.
    last_us: u64,
    cache: VecDeque<(usize, Arc<Vec<Event>>, usize)>,
    #[cfg(test)]
    replay_past_index: usize,
}

/// The indexing pass, on a thread of its own while it runs; between runs (`--follow` starts a
/// new one for chunks written since), what it carries over.
#[derive(Debug)]
enum Indexer {
    Running(JoinHandle<Box<Pass>>),
    Idle(Box<Pass>),
    /// The indexer is gone (its thread panicked or could not start): the index stays as far
    /// as it got, and so does playback.
    Failed,
}

/// What the indexer works with: the emulator building keyframes and, when the commands must be
/// extracted, the extractor (which needs every event in order, so it rides along).
#[derive(Debug)]
struct Pass {
    writer: IndexWriter,
    extractor: Option<CommandExtractor>,
}

/// Found by the indexer, taken by [`Tape::sync`].
#[derive(Debug, Default)]
struct Found {
    news: Mutex<News>,
    /// Set when the tape is dropped: the indexer stops before its next chunk.
    cancel: AtomicBool,
}

#[derive(Debug, Default)]
struct News {
    /// The first chunk that could not be read or verified, and what to say about it.
    damage: Option<(usize, String)>,
    exit: Option<(i32, String)>,
    gaps: Vec<Gap>,
    commands: Vec<CommandEntry>,
}

impl Found {
    fn news(&self) -> std::sync::MutexGuard<'_, News> {
        // Only plain data is written under the lock: a panic elsewhere leaves it whole.
        self.news.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A test seam: the indexer waits on this before its first chunk, so a test sees the player
/// with nothing indexed yet, for as long as it likes, without racing the indexer.
#[derive(Debug, Default)]
pub enum Hold {
    #[default]
    None,
    /// Until something is sent, or the sender is dropped.
    #[cfg(test)]
    Channel(std::sync::mpsc::Receiver<()>),
    /// Until a writer opens and closes this FIFO: `KUBETAPE_TEST_HOLD_INDEX`, honoured by debug
    /// builds only (the TUI tests run the debug binary); a release build never reads it.
    #[cfg(debug_assertions)]
    Fifo(std::path::PathBuf),
}

impl Hold {
    /// `KUBETAPE_TEST_HOLD_INDEX`, in a debug build.
    pub fn from_env() -> Self {
        #[cfg(debug_assertions)]
        if let Some(path) = std::env::var_os("KUBETAPE_TEST_HOLD_INDEX") {
            return Hold::Fifo(path.into());
        }
        Hold::None
    }

    fn wait(self) {
        match self {
            Hold::None => {}
            #[cfg(test)]
            Hold::Channel(rx) => {
                let _ = rx.recv();
            }
            #[cfg(debug_assertions)]
            Hold::Fifo(path) => {
                let _ = std::fs::read(path);
            }
        }
    }
}

impl Tape {
    /// Opens `id`: reads what the first screen needs (the metadata, the commands object, the
    /// last chunk for the duration) and starts indexing it in the background.
    pub fn open(
        rt: Handle,
        store: Store,
        keyring: Keyring,
        id: SessionId,
        hold: Hold,
    ) -> anyhow::Result<Self> {
        let reader = Arc::new(rt.block_on(SessionReader::open(&store, &keyring, id))?);
        let meta = reader.meta();
        crate::class::require_terminal(id, meta)?;
        let size = meta.size.unwrap_or(transcript::term::DEFAULT_SIZE);
        // A commands object that fails its check against the seal is not trusted: the
        // commands are extracted again from the (verified) chunks, and the damage is shown.
        let (stored, commands_damage) = match rt.block_on(reader.commands()) {
            Ok(stored) => (stored, None),
            Err(e) => (None, Some(format!("commands object: {e}"))),
        };
        let (extractor, commands) = match stored {
            Some(entries) => (None, entries),
            None => (Some(CommandExtractor::new(meta)), Vec::new()),
        };
        let (writer, index) = SeekIndex::shared(size, SeekConfig::default());
        let mut tape = Self {
            rt,
            store,
            keyring,
            id,
            gaps: reader.declared_gaps().to_vec(),
            reader,
            index,
            extracting: extractor.is_some(),
            indexer: Indexer::Idle(Box::new(Pass { writer, extractor })),
            found: Arc::default(),
            finish_extraction: false,
            commands,
            exit: None,
            state: String::new(),
            damage: commands_damage,
            stop: None,
            last_us: 0,
            cache: VecDeque::new(),
            #[cfg(test)]
            replay_past_index: REPLAY_PAST_INDEX,
        };
        tape.resume(hold);
        // While the indexer starts on the first chunks: the duration, from the last chunk.
        tape.read_last_us();
        tape.refresh_state();
        Ok(tape)
    }

    pub fn meta(&self) -> &SessionMeta {
        self.reader.meta()
    }

    /// Chunks playback may read: those listed, up to the first that failed.
    pub fn chunk_count(&self) -> usize {
        let listed = self.reader.chunk_count();
        self.stop.map_or(listed, |stop| stop.min(listed))
    }

    /// Whether the index has every chunk playback may read.
    fn indexed_all(&self) -> bool {
        self.index.chunk_count() >= self.chunk_count()
    }

    /// While the indexer is behind: chunks indexed and chunks to index.
    pub fn indexing(&self) -> Option<(usize, usize)> {
        let (done, total) = (self.index.chunk_count(), self.chunk_count());
        (done < total).then_some((done, total))
    }

    /// Time of the last event known: the indexed end once the index has every chunk, and
    /// before that the last chunk's (so the timeline has its full length from the start).
    pub fn end_us(&self) -> u64 {
        if self.indexed_all() {
            self.index.end_us()
        } else {
            self.index.end_us().max(self.last_us)
        }
    }

    /// Whether a seek to `at_us` is as fast as the index makes it: every event up to it is in
    /// an indexed chunk.
    pub fn covers(&self, at_us: u64) -> bool {
        at_us < self.index.end_us() || self.indexed_all()
    }

    /// Keyframes kept and their heap bytes.
    pub fn keyframes(&self) -> (usize, usize) {
        self.index.keyframes()
    }

    /// Whether the commands come from our own extraction (no sealed commands object, or one
    /// that failed its check), so that they fill in as the indexer gets through the session.
    pub fn extracting(&self) -> bool {
        self.extracting
    }

    /// Starts the indexer on the chunks listed that it has not seen, unless it is running,
    /// stopped at a bad chunk, or has them all.
    fn resume(&mut self, hold: Hold) {
        if self.stop.is_some() {
            return;
        }
        let pass = match std::mem::replace(&mut self.indexer, Indexer::Failed) {
            Indexer::Idle(pass) if pass.writer.chunk_count() < self.reader.chunk_count() => pass,
            other => {
                self.indexer = other;
                return;
            }
        };
        let (rt, reader, found) = (self.rt.clone(), self.reader.clone(), self.found.clone());
        let id = self.id;
        let spawned = std::thread::Builder::new()
            .name("kubetape-index".into())
            .spawn(move || {
                hold.wait();
                index(pass, &rt, &reader, &found, id)
            });
        match spawned {
            Ok(handle) => self.indexer = Indexer::Running(handle),
            Err(e) => self.indexing_failed(&format!("cannot start its thread: {e}")),
        }
    }

    /// The indexer is gone (it panicked, or had no thread): playback ends where it got to, and
    /// the player says why.
    fn indexing_failed(&mut self, why: &str) {
        tracing::error!(session = %self.id, why, "indexing failed");
        self.indexer = Indexer::Failed;
        let at = self.index.chunk_count();
        self.stop = Some(self.stop.map_or(at, |s| s.min(at)));
        self.damage = Some(format!(
            "indexing failed at chunk {at} ({why}); playback ends there"
        ));
    }

    /// Takes in what the indexer found since the last call: damage, exit and gap events,
    /// extracted commands; and, once it has finished, the extraction's last commands.
    pub fn sync(&mut self) {
        // Joined first: whatever a finished run found is in `news` by now, so a run that met
        // a bad chunk is never resumed on it.
        if matches!(&self.indexer, Indexer::Running(h) if h.is_finished()) {
            self.join();
        }
        let news = std::mem::take(&mut *self.found.news());
        if let Some((chunk, message)) = news.damage
            && self.stop.is_none_or(|stop| chunk < stop)
        {
            self.stop = Some(chunk);
            self.damage = Some(message);
        }
        if news.exit.is_some() {
            // The exit event, when there is one, over the seal's copy of it.
            self.exit = news.exit;
        }
        for gap in news.gaps {
            // The seal declares the gaps its chunks' gap events also record.
            if !self.gaps.contains(&gap) {
                self.gaps.push(gap);
            }
        }
        self.commands.extend(news.commands);
        self.finish_extraction_if_done();
    }

    /// Waits for the indexer to finish its run (tests, and `--at '#N'` when the commands are
    /// being extracted), then [`sync`](Self::sync)s.
    pub fn wait_indexed(&mut self) {
        self.join();
        self.sync();
    }

    fn join(&mut self) {
        if let Indexer::Running(handle) = std::mem::replace(&mut self.indexer, Indexer::Failed) {
            match handle.join() {
                Ok(pass) => self.indexer = Indexer::Idle(pass),
                // A bug, not the recording.
                Err(_) => self.indexing_failed("it panicked: a bug in kubetape"),
            }
        }
    }

    fn finish_extraction_if_done(&mut self) {
        if !self.finish_extraction || !self.indexed_all() {
            return;
        }
        if let Indexer::Idle(pass) = &mut self.indexer
            && let Some(x) = pass.extractor.take()
        {
            // The session is not going to grow: what the extractor still holds is complete.
            self.commands.extend(x.finish());
        }
    }

    /// For `--follow`: looks for chunks written since the last look, and the session's state,
    /// and indexes the new chunks in the background. Returns whether anything new arrived.
    /// Commands still held back by the extractor (the one being typed) appear once the next
    /// prompt shows they are complete.
    pub fn poll(&mut self) -> anyhow::Result<bool> {
        let before = self.chunk_count();
        self.reader = Arc::new(self.rt.block_on(SessionReader::open(
            &self.store,
            &self.keyring,
            self.id,
        ))?);
        self.sync();
        self.refresh_state();
        let grew = self.chunk_count() > before;
        if grew {
            self.read_last_us();
        }
        self.resume(Hold::None);
        if self.ended() {
            // Sealed or interrupted: nothing more will be written.
            self.finish_extraction = true;
            self.finish_extraction_if_done();
        }
        Ok(grew)
    }

    /// Sealed or interrupted: no chunk will be added (an unreadable state is not an end).
    pub fn ended(&self) -> bool {
        matches!(self.state.as_str(), "sealed" | "interrupted")
    }

    /// Ends extraction for a session that is not going to grow (no `--follow`): once the
    /// indexer has every chunk, the extractor's last commands are added.
    pub fn finish_commands(&mut self) {
        self.finish_extraction = true;
        self.finish_extraction_if_done();
    }

    /// The state as `kubetape ls` reports it, and the exit status the seal holds when no
    /// exit event was recorded (the gateway and `record` put it in the seal).
    fn refresh_state(&mut self) {
        match self.rt.block_on(summarize(&self.store, self.id)) {
            Ok(s) => {
                self.state = s.state;
                if self.exit.is_none() {
                    self.exit = s.exit.map(|e| (e.code, e.message));
                }
            }
            Err(_) => self.state = "unknown".into(),
        }
    }

    /// The time of the last event of the last chunk listed, read (and so verified) like any
    /// chunk. A chunk that fails leaves the duration to grow as the index does; the indexer
    /// reports it when it gets there.
    fn read_last_us(&mut self) {
        let Some(last) = self.reader.chunk_count().checked_sub(1) else {
            return;
        };
        if let Ok(events) = self.chunk(last)
            && let Some(end) = events.iter().map(|e| e.at_us).max()
        {
            self.last_us = self.last_us.max(end);
        }
    }

    /// The events of chunk `i`, from the cache or the store.
    pub fn chunk(&mut self, i: usize) -> Result<Arc<Vec<Event>>, ReadError> {
        cached(&mut self.cache, &self.rt, &self.reader, i)
    }

    /// The event at `pos` (or, past its chunk's end, the first of the next chunk) and the
    /// position after it, which is normalised so that the end of what is known is
    /// `(chunk_count, 0)`. `None` at that end. Chunks the indexer has not reached are read
    /// all the same: playback does not wait for it.
    pub fn event(&mut self, pos: Position) -> Result<Option<(Event, Position)>, ReadError> {
        let mut pos = pos;
        while pos.chunk < self.chunk_count() {
            let events = self.chunk(pos.chunk)?;
            if let Some(e) = events.get(pos.event) {
                let after = if pos.event + 1 < events.len() {
                    Position {
                        chunk: pos.chunk,
                        event: pos.event + 1,
                    }
                } else {
                    Position {
                        chunk: pos.chunk + 1,
                        event: 0,
                    }
                };
                return Ok(Some((e.clone(), after)));
            }
            pos = Position {
                chunk: pos.chunk + 1,
                event: 0,
            };
        }
        Ok(None)
    }

    /// The screen at `at_us`: nearest keyframe plus a short replay. Beyond what the index
    /// covers, the replay runs on from the last keyframe through chunks not indexed yet, up to
    /// [`REPLAY_PAST_INDEX`] of output; `None` when that is not enough: the caller waits until
    /// [`covers`](Self::covers) says the index has got there, and seeks again.
    pub fn seek(&mut self, at_us: u64) -> anyhow::Result<Option<Seeked>> {
        let covered = self.covers(at_us);
        #[cfg(test)]
        let budget = self.replay_past_index;
        #[cfg(not(test))]
        let budget = REPLAY_PAST_INDEX;
        let mut seek = self.index.start_seek_over(at_us, self.chunk_count())?;
        while let Some(i) = seek.next_chunk() {
            if !covered && seek.replayed_bytes() > budget {
                return Ok(None);
            }
            let events = self.chunk(i)?;
            seek.feed_chunk(&events);
        }
        Ok(Some(seek.finish()))
    }

    /// Makes every seek past the indexed part wait for the indexer.
    #[cfg(test)]
    pub fn never_replay_past_index(&mut self) {
        self.replay_past_index = 0;
    }

    /// Times where `query` (case-insensitive) appears in a command or in the output, sorted.
    /// Output is searched as text with escape sequences removed, chunk by chunk (a match split
    /// across two chunks is missed; chunks hold a second of output or more).
    pub fn search(&mut self, query: &str) -> anyhow::Result<Vec<u64>> {
        let re = regex::RegexBuilder::new(&regex::escape(query))
            .case_insensitive(true)
            .build()?;
        let mut hits: Vec<u64> = self
            .commands
            .iter()
            .filter(|c| c.shown_text().is_some_and(|t| re.is_match(t)))
            // Where the line is whole on the screen, so the hit can be seen.
            .map(|c| c.lands_at())
            .collect();
        let mut text = String::new();
        let mut owners: Vec<(usize, u64)> = Vec::new();
        for i in 0..self.chunk_count() {
            let events = self.chunk(i)?;
            text.clear();
            owners.clear();
            let mut strip = Strip::default();
            for e in events.iter() {
                if let EventKind::Data {
                    stream: Stream::Stdout | Stream::Stderr,
                    bytes,
                } = &e.kind
                {
                    strip.feed(bytes, &mut text);
                    owners.push((text.len(), e.at_us));
                }
            }
            for m in re.find_iter(&text) {
                // The event whose text holds the end of the match: once it is shown, so is
                // the whole match.
                let k = owners.partition_point(|(end, _)| *end < m.end());
                if let Some((_, at)) = owners.get(k) {
                    hits.push(*at);
                }
                if hits.len() >= MAX_MATCHES {
                    break;
                }
            }
            if hits.len() >= MAX_MATCHES {
                break;
            }
        }
        hits.sort_unstable();
        hits.dedup();
        Ok(hits)
    }
}

impl Drop for Tape {
    fn drop(&mut self) {
        // The player quit: the indexer stops before its next chunk (it is not waited for: a
        // store read may take a while, and the process is about to end).
        self.found.cancel.store(true, Ordering::SeqCst);
    }
}

/// The indexer's run, on its own thread: the chunks `reader` lists that `pass` has not seen, in
/// order, each into the index (and the extractor), until the last or the first that cannot be
/// read or verified. Chunks are read, verified and decrypted by tasks on the runtime's thread,
/// up to [`READ_AHEAD`] ahead, while this thread runs the emulator over the previous ones: the
/// two halves of the work overlap, and a remote store's latency is paid once, not per chunk.
fn index(
    mut pass: Box<Pass>,
    rt: &Handle,
    reader: &Arc<SessionReader>,
    found: &Found,
    id: SessionId,
) -> Box<Pass> {
    let total = reader.chunk_count();
    let mut ahead: VecDeque<tokio::task::JoinHandle<Result<Vec<Event>, ReadError>>> =
        VecDeque::new();
    let mut requested = pass.writer.chunk_count();
    while pass.writer.chunk_count() < total {
        if found.cancel.load(Ordering::SeqCst) {
            break;
        }
        let i = pass.writer.chunk_count();
        while requested < total && ahead.len() < READ_AHEAD {
            let reader = reader.clone();
            ahead.push_back(rt.spawn(async move { reader.chunk_events(requested).await }));
            requested += 1;
        }
        let handle = ahead.pop_front().expect("chunk i was requested");
        let events = match rt.block_on(handle) {
            Ok(Ok(events)) => events,
            // A read task panicked or was cancelled (the runtime is shutting down, or a bug):
            // no different from a bad chunk, unless we are quitting anyway.
            Err(e) => {
                if !found.cancel.load(Ordering::SeqCst) {
                    damaged(found, i, format!("chunk {i} could not be read: {e}"));
                }
                break;
            }
            Ok(Err(e)) => {
                tracing::warn!(session = %id, chunk = i, error = %e, "playback stops at an unreadable chunk");
                damaged(
                    found,
                    i,
                    format!("chunk {i} is unreadable, playback ends before it: {e}"),
                );
                break;
            }
        };
        // Before the chunk is published: whoever sees the index cover it finds its news too.
        let mut news = News::default();
        for e in &events {
            if let Some(x) = &mut pass.extractor {
                x.feed(e);
            }
            match &e.kind {
                EventKind::Exit { code, message } => news.exit = Some((*code, message.clone())),
                EventKind::Gap { json } => news.gaps.extend(Gap::parse(json).ok()),
                _ => {}
            }
        }
        if let Some(x) = &mut pass.extractor {
            news.commands = x.take();
        }
        if news.exit.is_some() || !news.gaps.is_empty() || !news.commands.is_empty() {
            let mut shared = found.news();
            shared.exit = news.exit.or(shared.exit.take());
            shared.gaps.append(&mut news.gaps);
            shared.commands.append(&mut news.commands);
        }
        pass.writer.push_chunk(&events);
    }
    // After a damaged chunk, or when quitting: the reads still in flight are of no use.
    for handle in ahead {
        handle.abort();
    }
    pass
}

/// Records that chunk `i` failed, unless an earlier one already did.
fn damaged(found: &Found, i: usize, message: String) {
    let mut news = found.news();
    if news.damage.as_ref().is_none_or(|(at, _)| i < *at) {
        news.damage = Some((i, message));
    }
}

/// Chunk `i` through a small most-recently-used cache.
fn cached(
    cache: &mut VecDeque<(usize, Arc<Vec<Event>>, usize)>,
    rt: &Handle,
    reader: &SessionReader,
    i: usize,
) -> Result<Arc<Vec<Event>>, ReadError> {
    if let Some(at) = cache.iter().position(|(c, ..)| *c == i) {
        let hit = cache.remove(at).expect("position is in range");
        let events = hit.1.clone();
        cache.push_front(hit);
        return Ok(events);
    }
    let events = Arc::new(rt.block_on(reader.chunk_events(i))?);
    let bytes = events
        .iter()
        .map(|e| e.stream_bytes().map_or(0, |(_, n)| n))
        .sum();
    cache.push_front((i, events.clone(), bytes));
    cache.truncate(CACHE_CHUNKS);
    let mut total: usize = cache.iter().map(|c| c.2).sum();
    while cache.len() > 1 && total > CACHE_BYTES {
        total -= cache.pop_back().map_or(0, |c| c.2);
    }
    Ok(events)
}

/// Terminal output to plain text: escape sequences dropped, control characters other than
/// newline dropped, invalid UTF-8 replaced. Keeps its state across calls so a sequence split
/// between two events is still removed.
#[derive(Debug, Default)]
struct Strip {
    state: StripState,
    utf8: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum StripState {
    #[default]
    Text,
    Esc,
    Csi,
    Str,
    StrEsc,
}

impl Strip {
    fn feed(&mut self, bytes: &[u8], out: &mut String) {
        for &b in bytes {
            self.state = match (self.state, b) {
                (StripState::Text, 0x1b) => StripState::Esc,
                (StripState::Text, b'\n') => {
                    self.flush(out);
                    out.push('\n');
                    StripState::Text
                }
                (StripState::Text, b) if b < 0x20 || b == 0x7f => StripState::Text,
                (StripState::Text, b) if b < 0x80 => {
                    self.flush(out);
                    out.push(char::from(b));
                    StripState::Text
                }
                (StripState::Text, b) => {
                    if b >= 0xc0 {
                        // A new character starts: whatever was pending is incomplete.
                        self.flush(out);
                    }
                    self.utf8.push(b);
                    if self.utf8.len() >= 4 || std::str::from_utf8(&self.utf8).is_ok() {
                        self.flush(out);
                    }
                    StripState::Text
                }
                (StripState::Esc, b'[') => StripState::Csi,
                (StripState::Esc, b']' | b'P' | b'X' | b'^' | b'_') => StripState::Str,
                (StripState::Esc, 0x20..=0x2f) => StripState::Esc,
                (StripState::Esc, _) => StripState::Text,
                (StripState::Csi, 0x40..=0x7e) => StripState::Text,
                (StripState::Csi, _) => StripState::Csi,
                (StripState::Str, 0x07) => StripState::Text,
                (StripState::Str, 0x1b) => StripState::StrEsc,
                (StripState::Str, _) => StripState::Str,
                (StripState::StrEsc, b'\\') => StripState::Text,
                (StripState::StrEsc, _) => StripState::Str,
            };
        }
    }

    fn flush(&mut self, out: &mut String) {
        // C1 controls (U+0080…U+009F) are controls too, however they were encoded.
        out.extend(
            String::from_utf8_lossy(&self.utf8)
                .chars()
                .filter(|c| !c.is_control()),
        );
        self.utf8.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(parts: &[&[u8]]) -> String {
        let mut s = Strip::default();
        let mut out = String::new();
        for p in parts {
            s.feed(p, &mut out);
        }
        out
    }

    /// Any bytes, cut anywhere: no panic, and no escape or control character gets through
    /// (recordings are outside input; what comes out is matched and shown).
    #[test]
    fn arbitrary_output_strips_to_plain_text() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet: &[u8] = b"\xc2\x1b[]P\\\x07;0123m\r\nab\xc3\xa9\xe6\xbc\xa2\xff\x9c\x18";
        for _ in 0..2000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 4 == 0 {
                        r as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let cut = (next() as usize) % (bytes.len() + 1);
            let text = strip(&[&bytes[..cut], &bytes[cut..]]);
            assert!(
                text.chars().all(|c| c == '\n' || !c.is_control()),
                "{bytes:?} -> {text:?}"
            );
        }
    }

    #[test]
    fn escapes_are_removed_even_when_split() {
        assert_eq!(
            strip(&[b"\x1b[1;3", b"1mred\x1b[0m\r\n\x1b]0;title\x07ok"]),
            "red\nok"
        );
        assert_eq!(strip(&[b"a\x1b]7;file://h/x\x1b\\b"]), "ab");
        assert_eq!(
            strip(&["né".as_bytes()[..2].as_ref(), &"né".as_bytes()[2..]]),
            "né"
        );
        assert_eq!(strip(&[b"\xffz\xc3"]), "\u{fffd}z");
        assert_eq!(strip(&[b"\xc3x"]), "\u{fffd}x");
    }
}
