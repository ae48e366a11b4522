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
//! Keyframes are only taken between escape sequences (a small byte-level tracker follows the
//! parser's ground state), so a replay never starts in the middle of one.

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
    seeked: Seeked,
}

impl SeekInProgress {
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

#[derive(Debug)]
struct Keyframe {
    at_us: u64,
    pos: Position,
    size: TermSize,
    /// Length before compression; 0 when stored uncompressed.
    raw_len: usize,
    state: Box<[u8]>,
}

/// Keyframes of one session, built incrementally with [`SeekIndex::push_chunk`].
#[derive(Debug)]
pub struct SeekIndex {
    cfg: SeekConfig,
    keyframes: Vec<Keyframe>,
    state_bytes: usize,
    term: Terminal,
    ground: SeqState,
    chunks: usize,
    end_us: u64,
    last_kf_us: u64,
    since_bytes: usize,
    dirty: bool,
}

impl SeekIndex {
    /// An empty index for a session starting at `size`, with keyframe 0 (the blank screen).
    pub fn new(size: TermSize, cfg: SeekConfig) -> Self {
        let size = clamp_size(size);
        let term = Terminal::new(size);
        let mut index = Self {
            cfg,
            keyframes: Vec::new(),
            state_bytes: 0,
            term,
            ground: SeqState::default(),
            chunks: 0,
            end_us: 0,
            last_kf_us: 0,
            since_bytes: 0,
            dirty: false,
        };
        index.keyframe(0, Position::default());
        index
    }

    /// Adds the next chunk's events (chunks in order, each exactly once).
    pub fn push_chunk(&mut self, events: &[Event]) {
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

    /// Chunks pushed so far.
    pub fn chunk_count(&self) -> usize {
        self.chunks
    }

    /// Time of the last event seen.
    pub fn end_us(&self) -> u64 {
        self.end_us
    }

    /// Keyframes kept.
    pub fn keyframe_count(&self) -> usize {
        self.keyframes.len()
    }

    /// Heap bytes held by the keyframes (the running emulator not counted).
    pub fn keyframe_bytes(&self) -> usize {
        self.state_bytes + self.keyframes.capacity() * std::mem::size_of::<Keyframe>()
    }

    /// The screen as of the end of the pushed events (the live edge).
    pub fn terminal(&self) -> &Terminal {
        &self.term
    }

    /// The screen at `at_us` (every event at or before it applied): the nearest keyframe plus
    /// a replay of the events after it, read through `chunk_events(index)`.
    pub fn seek<E: std::error::Error + 'static>(
        &self,
        at_us: u64,
        mut chunk_events: impl FnMut(usize) -> Result<Vec<Event>, E>,
    ) -> Result<Seeked, SeekError<E>> {
        let mut seek = self.start_seek(at_us).map_err(|e| match e {
            SeekError::Keyframe { index } => SeekError::Keyframe { index },
            SeekError::Chunk { source, .. } => match source {},
        })?;
        while let Some(chunk) = seek.next_chunk() {
            let events =
                chunk_events(chunk).map_err(|source| SeekError::Chunk { chunk, source })?;
            seek.feed_chunk(&events);
        }
        Ok(seek.finish())
    }

    /// [`seek`](Self::seek) for callers that fetch chunks themselves (an async reader): the
    /// keyframe is restored here; then feed the chunks [`SeekInProgress::next_chunk`] asks
    /// for, and [`SeekInProgress::finish`].
    pub fn start_seek(
        &self,
        at_us: u64,
    ) -> Result<SeekInProgress, SeekError<std::convert::Infallible>> {
        let index = self
            .keyframes
            .partition_point(|k| k.at_us <= at_us)
            .saturating_sub(1);
        let kf = &self.keyframes[index];
        let mut terminal = Terminal::new(kf.size);
        if kf.raw_len == 0 {
            terminal.process(&kf.state);
        } else {
            let raw = zstd::bulk::decompress(&kf.state, kf.raw_len)
                .map_err(|_| SeekError::Keyframe { index })?;
            terminal.process(&raw);
        }
        Ok(SeekInProgress {
            at_us,
            chunks: self.chunks,
            done: kf.pos.chunk >= self.chunks,
            seeked: Seeked {
                terminal,
                next: kf.pos,
                keyframe: index,
                replayed: 0,
            },
        })
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
        self.state_bytes += state.len();
        self.keyframes.push(Keyframe {
            at_us,
            pos,
            size: self.term.size(),
            raw_len,
            state: state.into_boxed_slice(),
        });
        self.last_kf_us = at_us;
        self.since_bytes = 0;
        self.dirty = false;
        if self.state_bytes > self.cfg.max_bytes {
            self.thin();
        }
    }

    /// Drops every other keyframe (never the first) and doubles the spacing.
    fn thin(&mut self) {
        let mut i = 0;
        self.keyframes.retain(|_| {
            i += 1;
            i == 1 || i % 2 == 0
        });
        self.state_bytes = self.keyframes.iter().map(|k| k.state.len()).sum();
        self.cfg.every_bytes = self.cfg.every_bytes.saturating_mul(2);
        self.cfg.every_us = self.cfg.every_us.saturating_mul(2);
    }
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
        assert!(index.state_bytes <= 4096 + 1024, "{}", index.state_bytes);
        assert!(index.keyframe_count() > 1);
        // Every keyframe follows a complete sequence (odd event indexes end one).
        assert!(index.keyframes.iter().skip(1).all(|k| k.pos.event % 2 == 0));
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
