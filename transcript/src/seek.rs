//! Keyframes for instant seeking in long sessions.
//!
//! [`SeekIndex`] is built in one pass over a session's chunks. Every
//! [`SeekConfig::every_us`] of session time or [`SeekConfig::every_bytes`] of output (whichever
//! comes first, and only if the screen changed) it stores a keyframe: the escape sequences
//! that redraw the screen ([`Terminal::snapshot`]), zstd-compressed, plus where in the event
//! stream it was taken. `seek(t)` restores the nearest keyframe at or before `t` into a fresh
//! emulator and replays the short tail, asking the caller for chunk events on demand, so the
//! crate stays free of I/O.
//!
//! Memory stays bounded: a keyframe is a few KiB compressed, and when the keyframes together
//! pass [`SeekConfig::max_bytes`], every other one is dropped and the spacing doubles.
//!
//! The pass costs ~11 CPU-s per GB of output, too long to wait for when a long session opens,
//! so it can run on a thread of its own: [`SeekIndex::shared`] splits the index into an
//! [`IndexWriter`] (the running emulator), which publishes each chunk's keyframes behind a
//! lock, and [`IndexReader`]s, which seek in what is published so far. A seek past that
//! replays from the last keyframe through chunks the writer has not reached yet
//! ([`IndexReader::start_seek_over`]), or waits for the writer to get there.
//!
//! Keyframes are only taken between escape sequences (a small byte-level tracker follows the
//! parser's ground state), so a replay never starts in the middle of one.

use std::sync::{Arc, PoisonError, RwLock};

use storage_schema::{Event, EventKind, Stream, TermSize};

use crate::term::{Terminal, clamp_size};

/// When keyframes are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeekConfig {
    /// Session time between keyframes (microseconds), if the screen changed.
    pub every_us: u64,
    /// Output bytes between keyframes: bounds the replay after a restore.
    pub every_bytes: usize,
    /// Compressed keyframe bytes kept before the index thins itself out.
    pub max_bytes: usize,
}

impl Default for SeekConfig {
    /// 5 s / 256 KiB: a tail replay is at most 256 KiB of output (a few ms of `vt100`);
    /// 32 MiB of keyframes holds ~10,000 of them before thinning.
    fn default() -> Self {
        Self {
            every_us: 5_000_000,
            every_bytes: 256 * 1024,
            max_bytes: 32 * 1024 * 1024,
        }
    }
}

/// A place in the event stream: the event `event` of chunk `chunk` (the next one to apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub chunk: usize,
    pub event: usize,
}

/// Why a seek failed.
#[derive(Debug, thiserror::Error)]
pub enum SeekError<E: std::error::Error + 'static> {
    /// The caller could not supply a chunk's events.
    #[error("reading the events of chunk {chunk}")]
    Chunk {
        chunk: usize,
        #[source]
        source: E,
    },
    /// A keyframe would not decompress (memory corruption; never expected).
    #[error("keyframe {index} is damaged")]
    Keyframe { index: usize },
}

/// The result of a seek: the screen at the target time and where to continue playing.
#[derive(Debug)]
pub struct Seeked {
    pub terminal: Terminal,
    /// The first event not yet applied (its time is after the target).
    pub next: Position,
    /// Which keyframe was restored and how many events were replayed after it.
    pub keyframe: usize,
    pub replayed: usize,
}

/// A seek whose tail is being replayed, chunk by chunk, as the caller fetches them.
#[derive(Debug)]
pub struct SeekInProgress {
    at_us: u64,
    chunks: usize,
    done: bool,
    bytes: usize,
    seeked: Seeked,
}

impl SeekInProgress {
    fn new(at_us: u64, chunks: usize, terminal: Terminal, from: Position, keyframe: usize) -> Self {
        Self {
            at_us,
            chunks,
            done: from.chunk >= chunks,
            bytes: 0,
            seeked: Seeked {
                terminal,
                next: from,
                keyframe,
                replayed: 0,
            },
        }
    }

    /// Output bytes replayed after the keyframe so far: what the seek has cost (the emulator
    /// runs at ~100 MB/s).
    pub fn replayed_bytes(&self) -> usize {
        self.bytes
    }

    /// The chunk whose events are needed next, or `None` when the screen is complete.
    pub fn next_chunk(&self) -> Option<usize> {
        (!self.done).then_some(self.seeked.next.chunk)
    }

    /// Applies the events of the chunk [`next_chunk`](Self::next_chunk) named, up to the
    /// target time.
    pub fn feed_chunk(&mut self, events: &[Event]) {
        if self.done {
            return;
        }
        let s = &mut self.seeked;
        while let Some(event) = events.get(s.next.event) {
            if event.at_us > self.at_us {
                self.done = true;
                return;
            }
            s.terminal.apply(event);
            s.replayed += 1;
            if let Some((Stream::Stdout | Stream::Stderr, n)) = event.stream_bytes() {
                self.bytes += n;
            }
            s.next.event += 1;
        }
        s.next = Position {
            chunk: s.next.chunk + 1,
            event: 0,
        };
        self.done = s.next.chunk >= self.chunks;
    }

    /// The screen at the target time, and where to continue playing.
    pub fn finish(self) -> Seeked {
        self.seeked
    }
}

#[derive(Debug, Clone)]
struct Keyframe {
    at_us: u64,
    pos: Position,
    size: TermSize,
    /// Length before compression; 0 when stored uncompressed.
    raw_len: usize,
    state: Box<[u8]>,
}

impl Keyframe {
    /// The emulator as it was when this keyframe was taken.
    fn restore(&self, index: usize) -> Result<Terminal, SeekError<std::convert::Infallible>> {
        let mut terminal = Terminal::new(self.size);
        if self.raw_len == 0 {
            terminal.process(&self.state);
        } else {
            let raw = zstd::bulk::decompress(&self.state, self.raw_len)
                .map_err(|_| SeekError::Keyframe { index })?;
            terminal.process(&raw);
        }
        Ok(terminal)
    }
}

/// The keyframes taken so far and how far into the session they reach: everything a seek
/// reads. Only whole chunks are ever published into it (their keyframes, count and end time
/// together), so a seek never sees a keyframe inside a chunk it does not know about.
#[derive(Debug, Default)]
struct Keyframes {
    keyframes: Vec<Keyframe>,
    state_bytes: usize,
    chunks: usize,
    end_us: u64,
}

impl Keyframes {
    /// Chunks indexed.
    fn chunk_count(&self) -> usize {
        self.chunks
    }

    /// Time of the last event of the indexed chunks. Events are in time order, so every event
    /// at or before a time strictly below this one is in an indexed chunk.
    fn end_us(&self) -> u64 {
        self.end_us
    }

    /// Keyframes kept.
    fn keyframe_count(&self) -> usize {
        self.keyframes.len()
    }

    /// Heap bytes held by the keyframes.
    fn keyframe_bytes(&self) -> usize {
        self.state_bytes + self.keyframes.capacity() * std::mem::size_of::<Keyframe>()
    }

    /// The nearest keyframe at or before `at_us`, and its number.
    fn pick(&self, at_us: u64) -> (usize, &Keyframe) {
        let index = self
            .keyframes
            .partition_point(|k| k.at_us <= at_us)
            .saturating_sub(1);
        (index, &self.keyframes[index])
    }

    /// Adds a chunk's keyframes; drops every other keyframe while over `max_bytes`, and says
    /// how many times it did (the builder doubles its spacing as often).
    fn publish(
        &mut self,
        taken: &mut Vec<Keyframe>,
        chunks: usize,
        end_us: u64,
        max_bytes: usize,
    ) -> u32 {
        self.state_bytes += taken.iter().map(|k| k.state.len()).sum::<usize>();
        self.keyframes.append(taken);
        self.chunks = chunks;
        self.end_us = end_us;
        let mut thinned = 0;
        while self.state_bytes > max_bytes && self.thin() {
            thinned += 1;
        }
        thinned
    }

    /// Drops every other keyframe (never the first); whether any was dropped.
    fn thin(&mut self) -> bool {
        let before = self.keyframes.len();
        let mut i = 0;
        self.keyframes.retain(|_| {
            i += 1;
            i == 1 || i % 2 == 0
        });
        self.state_bytes = self.keyframes.iter().map(|k| k.state.len()).sum();
        self.keyframes.len() < before
    }

    /// A seek over these keyframes, the tail replayed through chunks below `chunks`.
    fn start_seek(
        &self,
        at_us: u64,
        chunks: usize,
    ) -> Result<SeekInProgress, SeekError<std::convert::Infallible>> {
        let (index, kf) = self.pick(at_us);
        let terminal = kf.restore(index)?;
        Ok(SeekInProgress::new(at_us, chunks, terminal, kf.pos, index))
    }
}

/// Runs the emulator over the chunks pushed and takes the keyframes; they are handed to a
/// `Keyframes` at each chunk's end.
#[derive(Debug)]
struct Builder {
    cfg: SeekConfig,
    term: Terminal,
    ground: SeqState,
    chunks: usize,
    end_us: u64,
    last_kf_us: u64,
    since_bytes: usize,
    dirty: bool,
    /// Keyframes of the chunk being pushed, not yet published.
    taken: Vec<Keyframe>,
}

impl Builder {
    /// A builder with keyframe 0 (the blank screen) taken.
    fn new(size: TermSize, cfg: SeekConfig) -> Self {
        let mut builder = Self {
            cfg,
            term: Terminal::new(clamp_size(size)),
            ground: SeqState::default(),
            chunks: 0,
            end_us: 0,
            last_kf_us: 0,
            since_bytes: 0,
            dirty: false,
            taken: Vec::new(),
        };
        builder.keyframe(0, Position::default());
        builder
    }

    fn push_chunk(&mut self, events: &[Event]) {
        let chunk = self.chunks;
        for (i, event) in events.iter().enumerate() {
            self.end_us = self.end_us.max(event.at_us);
            match &event.kind {
                EventKind::Data {
                    stream: Stream::Stdout | Stream::Stderr,
                    bytes,
                } => {
                    self.term.process(bytes);
                    self.ground.feed(bytes);
                    self.since_bytes += bytes.len();
                    self.dirty = true;
                }
                EventKind::Resize { .. } => {
                    self.term.apply(event);
                    self.dirty = true;
                }
                _ => continue,
            }
            let due = self.since_bytes >= self.cfg.every_bytes
                || event.at_us.saturating_sub(self.last_kf_us) >= self.cfg.every_us;
            if due && self.dirty && self.ground.is_ground() {
                self.keyframe(
                    event.at_us,
                    Position {
                        chunk,
                        event: i + 1,
                    },
                );
            }
        }
        self.chunks += 1;
    }

    /// Hands the keyframes taken so far to `frames`, with the chunk count and end time.
    fn publish(&mut self, frames: &mut Keyframes) {
        let thinned = frames.publish(
            &mut self.taken,
            self.chunks,
            self.end_us,
            self.cfg.max_bytes,
        );
        // Spacing doubles with each thinning, so the kept keyframes stay evenly spread.
        for _ in 0..thinned {
            self.cfg.every_bytes = self.cfg.every_bytes.saturating_mul(2);
            self.cfg.every_us = self.cfg.every_us.saturating_mul(2);
        }
    }

    fn keyframe(&mut self, at_us: u64, pos: Position) {
        let raw = self.term.snapshot();
        let raw_len = raw.len();
        // Level 1: keyframes are taken often and restored rarely; screens compress ~10×.
        // Kept raw if compression fails (raw_len == 0 marks an uncompressed blob of any size).
        let (state, raw_len) = match zstd::bulk::compress(&raw, 1) {
            Ok(c) => (c, raw_len),
            Err(_) => (raw, 0),
        };
        self.taken.push(Keyframe {
            at_us,
            pos,
            size: self.term.size(),
            raw_len,
            state: state.into_boxed_slice(),
        });
        self.last_kf_us = at_us;
        self.since_bytes = 0;
        self.dirty = false;
    }
}

/// Keyframes of one session, built incrementally with [`SeekIndex::push_chunk`] and sought
/// on the same thread. [`SeekIndex::shared`] splits the same work between a thread that builds
/// and others that seek meanwhile.
#[derive(Debug)]
pub struct SeekIndex {
    builder: Builder,
    frames: Keyframes,
}

impl SeekIndex {
    /// An empty index for a session starting at `size`, with keyframe 0 (the blank screen).
    pub fn new(size: TermSize, cfg: SeekConfig) -> Self {
        let mut builder = Builder::new(size, cfg);
        let mut frames = Keyframes::default();
        builder.publish(&mut frames);
        Self { builder, frames }
    }

    /// An index built by an [`IndexWriter`] (on a thread of its own: it runs the emulator over
    /// every chunk) while [`IndexReader`]s seek in what it has published so far. A player opens
    /// a long session this way without first waiting for the whole pass.
    pub fn shared(size: TermSize, cfg: SeekConfig) -> (IndexWriter, IndexReader) {
        let index = Self::new(size, cfg);
        let frames = Arc::new(RwLock::new(index.frames));
        let reader = IndexReader {
            frames: frames.clone(),
        };
        (
            IndexWriter {
                builder: index.builder,
                frames,
            },
            reader,
        )
    }

    /// Adds the next chunk's events (chunks in order, each exactly once).
    pub fn push_chunk(&mut self, events: &[Event]) {
        self.builder.push_chunk(events);
        self.builder.publish(&mut self.frames);
    }

    /// Chunks pushed so far.
    pub fn chunk_count(&self) -> usize {
        self.frames.chunk_count()
    }

    /// Time of the last event seen.
    pub fn end_us(&self) -> u64 {
        self.frames.end_us()
    }

    /// Keyframes kept.
    pub fn keyframe_count(&self) -> usize {
        self.frames.keyframe_count()
    }

    /// Heap bytes held by the keyframes (the running emulator not counted).
    pub fn keyframe_bytes(&self) -> usize {
        self.frames.keyframe_bytes()
    }

    /// The screen as of the end of the pushed events (the live edge).
    pub fn terminal(&self) -> &Terminal {
        &self.builder.term
    }

    /// The screen at `at_us` (every event at or before it applied): the nearest keyframe plus
    /// a replay of the events after it, read through `chunk_events(index)`.
    pub fn seek<E: std::error::Error + 'static>(
        &self,
        at_us: u64,
        chunk_events: impl FnMut(usize) -> Result<Vec<Event>, E>,
    ) -> Result<Seeked, SeekError<E>> {
        run_seek(self.start_seek(at_us), chunk_events)
    }

    /// [`seek`](Self::seek) for callers that fetch chunks themselves (an async reader): the
    /// keyframe is restored here; then feed the chunks [`SeekInProgress::next_chunk`] asks
    /// for, and [`SeekInProgress::finish`].
    pub fn start_seek(
        &self,
        at_us: u64,
    ) -> Result<SeekInProgress, SeekError<std::convert::Infallible>> {
        self.frames.start_seek(at_us, self.frames.chunks)
    }
}

/// Builds a shared index: [`push_chunk`](Self::push_chunk) runs the emulator without holding
/// any lock, then publishes the chunk (its keyframes, count and end time) in one short write.
#[derive(Debug)]
pub struct IndexWriter {
    builder: Builder,
    frames: Arc<RwLock<Keyframes>>,
}

impl IndexWriter {
    /// Adds the next chunk's events (chunks in order, each exactly once) and publishes them.
    pub fn push_chunk(&mut self, events: &[Event]) {
        self.builder.push_chunk(events);
        self.builder.publish(&mut write(&self.frames));
    }

    /// Chunks pushed so far.
    pub fn chunk_count(&self) -> usize {
        self.builder.chunks
    }

    /// Time of the last event pushed.
    pub fn end_us(&self) -> u64 {
        self.builder.end_us
    }

    /// The screen as of the end of the pushed events.
    pub fn terminal(&self) -> &Terminal {
        &self.builder.term
    }

    /// Another handle for seeking in this index.
    pub fn reader(&self) -> IndexReader {
        IndexReader {
            frames: self.frames.clone(),
        }
    }
}

/// Seeks in a shared index while its [`IndexWriter`] may still be adding chunks. Each call sees
/// the index as of some chunk boundary; the lock is held only to pick a keyframe (a copy of a
/// few KiB), never while restoring it or replaying.
#[derive(Debug, Clone)]
pub struct IndexReader {
    frames: Arc<RwLock<Keyframes>>,
}

impl IndexReader {
    /// Chunks indexed so far.
    pub fn chunk_count(&self) -> usize {
        read(&self.frames).chunk_count()
    }

    /// Time of the last event indexed so far: a seek to any time strictly before it needs no
    /// chunk the index has not seen.
    pub fn end_us(&self) -> u64 {
        read(&self.frames).end_us()
    }

    /// Keyframes kept and their heap bytes.
    pub fn keyframes(&self) -> (usize, usize) {
        let frames = read(&self.frames);
        (frames.keyframe_count(), frames.keyframe_bytes())
    }

    /// The screen at `at_us`, the tail replayed through the indexed chunks only: complete when
    /// `at_us` is before [`end_us`](Self::end_us) (or the index has every chunk).
    pub fn seek<E: std::error::Error + 'static>(
        &self,
        at_us: u64,
        chunk_events: impl FnMut(usize) -> Result<Vec<Event>, E>,
    ) -> Result<Seeked, SeekError<E>> {
        run_seek(self.start_seek(at_us), chunk_events)
    }

    /// [`seek`](Self::seek) with the chunks fed by the caller.
    pub fn start_seek(
        &self,
        at_us: u64,
    ) -> Result<SeekInProgress, SeekError<std::convert::Infallible>> {
        self.start_seek_over(at_us, 0)
    }

    /// A seek whose tail may run past the indexed chunks, through the first `chunks` of the
    /// session (those that exist; fewer than indexed counts as indexed): the screen is correct
    /// for any `at_us`, at the cost of replaying everything after the last keyframe. Callers
    /// bound that cost with [`SeekInProgress::replayed_bytes`].
    pub fn start_seek_over(
        &self,
        at_us: u64,
        chunks: usize,
    ) -> Result<SeekInProgress, SeekError<std::convert::Infallible>> {
        let (index, kf, indexed) = {
            let frames = read(&self.frames);
            let (index, kf) = frames.pick(at_us);
            (index, kf.clone(), frames.chunks)
        };
        let terminal = kf.restore(index)?;
        Ok(SeekInProgress::new(
            at_us,
            chunks.max(indexed),
            terminal,
            kf.pos,
            index,
        ))
    }
}

/// The keyframes for reading. A panic while they were locked (never expected: publishing only
/// moves and drops keyframes) leaves them usable, so the poison is ignored.
fn read(frames: &RwLock<Keyframes>) -> std::sync::RwLockReadGuard<'_, Keyframes> {
    frames.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(frames: &RwLock<Keyframes>) -> std::sync::RwLockWriteGuard<'_, Keyframes> {
    frames.write().unwrap_or_else(PoisonError::into_inner)
}

/// Feeds a started seek the chunks it asks for.
fn run_seek<E: std::error::Error + 'static>(
    started: Result<SeekInProgress, SeekError<std::convert::Infallible>>,
    mut chunk_events: impl FnMut(usize) -> Result<Vec<Event>, E>,
) -> Result<Seeked, SeekError<E>> {
    let mut seek = started.map_err(|e| match e {
        SeekError::Keyframe { index } => SeekError::Keyframe { index },
        SeekError::Chunk { source, .. } => match source {},
    })?;
    while let Some(chunk) = seek.next_chunk() {
        let events = chunk_events(chunk).map_err(|source| SeekError::Chunk { chunk, source })?;
        seek.feed_chunk(&events);
    }
    Ok(seek.finish())
}

/// Follows whether a VT parser is between sequences, byte by byte (a small subset of the
/// DEC parser state machine: enough to never cut a CSI, OSC/DCS string or UTF-8 character).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum SeqState {
    #[default]
    Idle,
    Esc,
    Csi,
    /// OSC, DCS, SOS, PM, APC: until BEL or ST.
    Str,
    StrEsc,
    /// UTF-8 continuation bytes still expected.
    Utf8(u8),
}

impl SeqState {
    fn is_ground(self) -> bool {
        self == SeqState::Idle
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            *self = match (*self, b) {
                (SeqState::Str, 0x07) => SeqState::Idle,
                (SeqState::Str, 0x1b) => SeqState::StrEsc,
                (SeqState::Str, _) => SeqState::Str,
                (SeqState::StrEsc, b'\\') => SeqState::Idle,
                (SeqState::StrEsc, _) => SeqState::Str,
                (_, 0x18 | 0x1a) => SeqState::Idle,
                (_, 0x1b) => SeqState::Esc,
                (SeqState::Esc, b'[') => SeqState::Csi,
                (SeqState::Esc, b']' | b'P' | b'X' | b'^' | b'_') => SeqState::Str,
                (SeqState::Esc, 0x20..=0x2f) => SeqState::Esc,
                (SeqState::Esc, _) => SeqState::Idle,
                (SeqState::Csi, 0x40..=0x7e) => SeqState::Idle,
                (SeqState::Csi, _) => SeqState::Csi,
                (SeqState::Utf8(n), 0x80..=0xbf) if n > 1 => SeqState::Utf8(n - 1),
                (SeqState::Utf8(_), 0x80..=0xbf) => SeqState::Idle,
                (_, 0xc0..=0xdf) => SeqState::Utf8(1),
                (_, 0xe0..=0xef) => SeqState::Utf8(2),
                (_, 0xf0..=0xf7) => SeqState::Utf8(3),
                _ => SeqState::Idle,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(at_us: u64, bytes: &[u8]) -> Event {
        Event {
            at_us,
            kind: EventKind::Data {
                stream: Stream::Stdout,
                bytes: bytes.to_vec(),
            },
        }
    }

    /// A session exercising what restores must get right: colours, wrapped rows, the
    /// alternate screen over a primary one, resizes, and sequences split across events.
    fn session() -> Vec<Vec<Event>> {
        let mut chunks = Vec::new();
        let mut t = 0;
        for c in 0..40u64 {
            let mut chunk = Vec::new();
            for i in 0..25u64 {
                t += 37_000;
                let n = c * 25 + i;
                let bytes: Vec<u8> = match n % 11 {
                    0 => format!("\x1b[3{}mline {n}\x1b[0m plain text {n}\r\n", n % 8).into_bytes(),
                    1 => b"\x1b[?1049h\x1b[H\x1b[2J".to_vec(),
                    2 => format!("\x1b[{};5Hfull-screen {n}", n % 20 + 1).into_bytes(),
                    3 => b"\x1b[?1049l".to_vec(),
                    4 => format!("{}\r\n", "w".repeat((n % 150) as usize)).into_bytes(),
                    5 => b"split \x1b[".to_vec(),
                    6 => b"1;32mgreen\x1b[0m\r\n".to_vec(),
                    7 => {
                        chunk.push(Event {
                            at_us: t,
                            kind: EventKind::Resize {
                                cols: 60 + (n % 40) as u16,
                                rows: 20 + (n % 10) as u16,
                            },
                        });
                        continue;
                    }
                    8 => "ünïcødé 漢字\r\n".as_bytes().to_vec(),
                    9 => b"\x1b]0;title".to_vec(),
                    _ => b"\x07$ ".to_vec(),
                };
                chunk.push(out(t, &bytes));
                if n % 13 == 0 {
                    // Events sharing a timestamp.
                    chunk.push(out(t, b"same-time "));
                }
            }
            chunks.push(chunk);
        }
        chunks
    }

    fn replay(chunks: &[Vec<Event>], at_us: u64) -> Terminal {
        let mut t = Terminal::new(TermSize { cols: 80, rows: 24 });
        for e in chunks.iter().flatten().filter(|e| e.at_us <= at_us) {
            t.apply(e);
        }
        t
    }

    type NoError = std::convert::Infallible;

    #[test]
    fn seek_matches_a_full_replay_everywhere() {
        let chunks = session();
        let cfg = SeekConfig {
            every_us: 200_000,
            every_bytes: 300,
            ..SeekConfig::default()
        };
        let mut index = SeekIndex::new(TermSize { cols: 80, rows: 24 }, cfg);
        for c in &chunks {
            index.push_chunk(c);
        }
        assert!(index.keyframe_count() > 50, "{}", index.keyframe_count());
        let end = index.end_us();
        let mut targets: Vec<u64> = (0..=end + 100_000).step_by(99_991).collect();
        targets.extend(chunks.iter().flatten().step_by(7).map(|e| e.at_us));
        for at in targets {
            let got = index
                .seek(at, |i| Ok::<_, NoError>(chunks[i].clone()))
                .unwrap();
            let want = replay(&chunks, at);
            let g = &got.terminal;
            assert_eq!(g.text(), want.text(), "text at {at}");
            assert_eq!(g.cursor(), want.cursor(), "cursor at {at}");
            assert_eq!(g.size(), want.size(), "size at {at}");
            assert_eq!(g.alternate_screen(), want.alternate_screen(), "alt at {at}");
            assert_eq!(
                g.screen().contents_formatted(),
                want.screen().contents_formatted(),
                "attributes at {at}"
            );
            // Leaving the alternate screen after a seek shows the same primary screen.
            let (mut g2, mut w2) = (got.terminal, want);
            g2.process(b"\x1b[?1049l");
            w2.process(b"\x1b[?1049l");
            assert_eq!(g2.text(), w2.text(), "primary screen at {at}");
            // `next` is the first event after the target.
            let next = chunks
                .get(got.next.chunk)
                .and_then(|c| c.get(got.next.event));
            assert!(next.is_none_or(|e| e.at_us > at), "next at {at}");
        }
    }

    fn assert_same_screen(got: &Terminal, want: &Terminal, what: &str) {
        assert_eq!(got.text(), want.text(), "text {what}");
        assert_eq!(got.cursor(), want.cursor(), "cursor {what}");
        assert_eq!(got.size(), want.size(), "size {what}");
        assert_eq!(
            got.screen().contents_formatted(),
            want.screen().contents_formatted(),
            "attributes {what}"
        );
    }

    fn small_keyframes() -> SeekConfig {
        SeekConfig {
            every_us: 200_000,
            every_bytes: 300,
            ..SeekConfig::default()
        }
    }

    /// At every stage of building: a seek before the published end needs only indexed chunks
    /// and is right; a seek anywhere, replayed past the indexed chunks, is right too; both
    /// equal what the finished index gives.
    #[test]
    fn a_shared_index_seeks_correctly_while_it_is_built() {
        let chunks = session();
        let mut full = SeekIndex::new(TermSize { cols: 80, rows: 24 }, small_keyframes());
        for c in &chunks {
            full.push_chunk(c);
        }
        let (mut writer, reader) =
            SeekIndex::shared(TermSize { cols: 80, rows: 24 }, small_keyframes());
        // Each target's screen from a replay and from the finished index, worked out once.
        let targets: Vec<(u64, Terminal, Seeked)> = (0..=full.end_us() + 50_000)
            .step_by(246_913)
            .map(|at| {
                let whole = full
                    .seek(at, |i| Ok::<_, NoError>(chunks[i].clone()))
                    .unwrap();
                (at, replay(&chunks, at), whole)
            })
            .collect();
        for pushed in 0..=chunks.len() {
            assert_eq!(reader.chunk_count(), pushed);
            assert_eq!(writer.chunk_count(), pushed);
            // Every stage would be slow in a debug build: the first ones, then every third.
            let stage = pushed < 4 || pushed % 3 == 0 || pushed == chunks.len();
            let here = if stage { &targets[..] } else { &[] };
            for (at, want, whole) in here.iter().skip(pushed % 4).step_by(4) {
                let at = *at;
                if at < reader.end_us() {
                    let got = reader
                        .seek(at, |i| {
                            assert!(i < pushed, "asked for chunk {i} of {pushed} indexed");
                            Ok::<_, NoError>(chunks[i].clone())
                        })
                        .unwrap();
                    let what = format!("at {at}, {pushed} indexed");
                    assert_same_screen(&got.terminal, want, &what);
                    assert_eq!(got.next, whole.next, "next at {at}");
                }
                let mut over = reader.start_seek_over(at, chunks.len()).unwrap();
                while let Some(i) = over.next_chunk() {
                    over.feed_chunk(&chunks[i]);
                }
                let bytes = over.replayed_bytes();
                let got = over.finish();
                assert_same_screen(
                    &got.terminal,
                    want,
                    &format!("over at {at}, {pushed} indexed"),
                );
                assert_eq!(got.next, whole.next, "next over at {at}");
                if got.replayed == 0 {
                    assert_eq!(bytes, 0, "bytes replayed at {at}");
                }
            }
            if let Some(c) = chunks.get(pushed) {
                writer.push_chunk(c);
            }
        }
        assert_eq!(reader.end_us(), full.end_us());
        assert_eq!(reader.keyframes().0, full.keyframe_count());
        assert_eq!(writer.terminal().text(), full.terminal().text());
    }

    /// A writer on its own thread, thinning as it goes, while this one seeks: every screen is
    /// right whatever the writer had published, and the finished index is the one a single
    /// thread builds.
    #[test]
    fn seeks_are_right_while_another_thread_builds_and_thins() {
        let chunks = session();
        let cfg = SeekConfig {
            every_us: 50_000,
            every_bytes: 64,
            max_bytes: 3_000,
        };
        let mut full = SeekIndex::new(TermSize { cols: 80, rows: 24 }, cfg);
        for c in &chunks {
            full.push_chunk(c);
        }
        let (mut writer, reader) = SeekIndex::shared(TermSize { cols: 80, rows: 24 }, cfg);
        let end = full.end_us();
        let mut seed = 7u64;
        let mut seeks = 0;
        std::thread::scope(|scope| {
            let build = scope.spawn(|| {
                for c in &chunks {
                    writer.push_chunk(c);
                }
                writer
            });
            while seeks < 50 || !build.is_finished() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let at = (seed >> 33) % (end + 1);
                let mut s = reader.start_seek_over(at, chunks.len()).unwrap();
                while let Some(i) = s.next_chunk() {
                    s.feed_chunk(&chunks[i]);
                }
                let got = s.finish();
                assert_same_screen(&got.terminal, &replay(&chunks, at), &format!("at {at}"));
                seeks += 1;
            }
            let writer = build.join().unwrap();
            assert_eq!(writer.chunk_count(), chunks.len());
        });
        assert_eq!(
            reader.keyframes(),
            (full.keyframe_count(), full.keyframe_bytes())
        );
        let state = read(&reader.frames).state_bytes;
        assert!(state <= cfg.max_bytes, "{state}");
    }

    #[test]
    fn keyframes_are_bounded_and_never_inside_a_sequence() {
        let mut index = SeekIndex::new(
            TermSize { cols: 80, rows: 24 },
            SeekConfig {
                every_us: 1,
                every_bytes: 1,
                max_bytes: 4096,
            },
        );
        let mut t = 0;
        for _ in 0..200 {
            let chunk: Vec<Event> = (0..50)
                .map(|i| {
                    t += 1000;
                    out(t, if i % 2 == 0 { b"\x1b[1;" } else { b"31mx\r\n" })
                })
                .collect();
            index.push_chunk(&chunk);
        }
        assert!(
            index.frames.state_bytes <= 4096,
            "{}",
            index.frames.state_bytes
        );
        assert!(index.keyframe_count() > 1);
        // Every keyframe follows a complete sequence (odd event indexes end one).
        assert!(
            index
                .frames
                .keyframes
                .iter()
                .skip(1)
                .all(|k| k.pos.event % 2 == 0)
        );
    }

    #[test]
    fn start_seek_with_chunks_fed_by_the_caller_equals_seek() {
        let chunks = session();
        let mut index = SeekIndex::new(TermSize { cols: 80, rows: 24 }, SeekConfig::default());
        for c in &chunks {
            index.push_chunk(c);
        }
        for at in (0..index.end_us() + 50_000).step_by(777_777) {
            let mut s = index.start_seek(at).unwrap();
            let mut asked = Vec::new();
            while let Some(i) = s.next_chunk() {
                asked.push(i);
                s.feed_chunk(&chunks[i]);
            }
            let got = s.finish();
            let want = index
                .seek(at, |i| Ok::<_, NoError>(chunks[i].clone()))
                .unwrap();
            assert_eq!(got.terminal.text(), want.terminal.text(), "at {at}");
            assert_eq!(got.next, want.next);
            assert!(asked.windows(2).all(|w| w[1] == w[0] + 1), "{asked:?}");
        }
    }

    #[test]
    fn chunk_errors_are_reported() {
        let chunks = session();
        let mut index = SeekIndex::new(TermSize { cols: 80, rows: 24 }, SeekConfig::default());
        for c in &chunks {
            index.push_chunk(c);
        }
        let err = index
            .seek(index.end_us(), |i| {
                Err(std::io::Error::other(format!("chunk {i} is gone")))
            })
            .unwrap_err();
        assert!(matches!(err, SeekError::Chunk { .. }), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
