//! The session being played: its reader, the seek index built in one pass, its commands, and a
//! small cache of decoded chunks. Memory is bounded by the keyframes (the index thins itself)
//! plus [`CACHE_CHUNKS`] decoded chunks of at most [`CACHE_BYTES`] together (chunks of bulk
//! output hold up to 8 MiB each); events are never all held at once.
//!
//! The TUI runs on a plain thread, so the async reader is driven with the runtime handle's
//! `block_on`; the runtime's own thread keeps driving I/O meanwhile.

use std::collections::VecDeque;
use std::sync::Arc;

use storage_schema::commands::{CommandEntry, EntryKind};
use storage_schema::store::{ReadError, SessionReader, Store, summarize};
use storage_schema::{Event, EventKind, Keyring, SessionId, SessionMeta, Stream};
use tokio::runtime::Handle;
use transcript::{CommandExtractor, Position, SeekConfig, SeekIndex, Seeked};

/// Decoded chunks kept: enough for a seek's tail replay plus playback around it.
const CACHE_CHUNKS: usize = 8;
/// Output bytes the cached chunks may hold together; the newest chunk is kept whatever its size.
const CACHE_BYTES: usize = 24 << 20;

/// Chunks read ahead while the index is built.
const READ_AHEAD: usize = 4;

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
    /// Shared with the read-ahead tasks of [`Self::ingest`].
    reader: Arc<SessionReader>,
    index: SeekIndex,
    /// Set when the commands come from our own extraction (no sealed commands object): it keeps
    /// running as a live session grows.
    extractor: Option<CommandExtractor>,
    pub commands: Vec<CommandEntry>,
    pub exit: Option<(i32, String)>,
    /// `sealed`, `interrupted` or `open`, as `kubetape ls` says.
    pub state: String,
    /// What failed verification: a chunk (everything before it plays, nothing after it is
    /// shown: a tampered recording is never shown as if intact), or the commands object (the
    /// commands are then extracted from the chunks instead).
    pub damage: Option<String>,
    /// Losses the recording declares (gap events), in order.
    pub gaps: Vec<storage_schema::Gap>,
    /// A chunk failed: nothing after it is read, even when following.
    stopped: bool,
    cache: VecDeque<(usize, Arc<Vec<Event>>, usize)>,
}

impl Tape {
    /// Opens `id` and builds its index in one pass over the chunks, calling `progress(done,
    /// total)` after each.
    pub fn open(
        rt: Handle,
        store: Store,
        keyring: Keyring,
        id: SessionId,
        mut progress: impl FnMut(usize, usize),
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
        let mut tape = Self {
            rt,
            store,
            keyring,
            id,
            reader,
            index: SeekIndex::new(size, SeekConfig::default()),
            extractor,
            commands,
            exit: None,
            state: String::new(),
            damage: commands_damage,
            gaps: Vec::new(),
            stopped: false,
            cache: VecDeque::new(),
        };
        tape.ingest(&mut progress);
        tape.refresh_state();
        Ok(tape)
    }

    pub fn meta(&self) -> &SessionMeta {
        self.reader.meta()
    }

    /// Time of the last event known.
    pub fn end_us(&self) -> u64 {
        self.index.end_us()
    }

    pub fn chunk_count(&self) -> usize {
        self.index.chunk_count()
    }

    /// Keyframes kept and their heap bytes.
    pub fn keyframes(&self) -> (usize, usize) {
        (self.index.keyframe_count(), self.index.keyframe_bytes())
    }

    /// Chunks the reader lists that the index has not seen yet: pushed in order. Stops for
    /// good at the first chunk that cannot be read or verified ([`Self::damage`]).
    fn ingest(&mut self, progress: &mut impl FnMut(usize, usize)) {
        if self.stopped {
            return;
        }
        let total = self.reader.chunk_count();
        // Chunks are read, verified and decrypted by tasks on the runtime's thread, up to
        // READ_AHEAD ahead, while this thread runs the emulator over the previous ones: the two
        // halves of the work overlap, and a remote store's latency is paid once, not per chunk.
        let mut ahead: VecDeque<tokio::task::JoinHandle<Result<Vec<Event>, ReadError>>> =
            VecDeque::new();
        let mut requested = self.index.chunk_count();
        for i in self.index.chunk_count()..total {
            while requested < total && ahead.len() < READ_AHEAD {
                let reader = self.reader.clone();
                ahead.push_back(
                    self.rt
                        .spawn(async move { reader.chunk_events(requested).await }),
                );
                requested += 1;
            }
            let handle = ahead.pop_front().expect("chunk i was requested");
            let read = match self.rt.block_on(handle) {
                Ok(read) => read,
                Err(e) => {
                    // A read task panicked or was cancelled: no different from a bad chunk.
                    self.damage = Some(format!("chunk {i} could not be read: {e}"));
                    self.stopped = true;
                    break;
                }
            };
            let events = match read {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(session = %self.id, chunk = i, error = %e, "playback stops at an unreadable chunk");
                    self.damage = Some(format!(
                        "chunk {i} is unreadable, playback ends before it: {e}"
                    ));
                    self.stopped = true;
                    break;
                }
            };
            self.index.push_chunk(&events);
            for e in events.iter() {
                if let Some(x) = &mut self.extractor {
                    x.feed(e);
                }
                if let EventKind::Exit { code, message } = &e.kind {
                    self.exit = Some((*code, message.clone()));
                }
                if let EventKind::Gap { json } = &e.kind
                    && let Ok(gap) = storage_schema::Gap::parse(json)
                {
                    self.gaps.push(gap);
                }
            }
            if let Some(x) = &mut self.extractor {
                self.commands.extend(x.take());
            }
            progress(i + 1, total);
        }
        // After a damaged chunk: the reads still in flight are of no use.
        for handle in ahead {
            handle.abort();
        }
    }

    /// For `--follow`: looks for chunks written since the last look, and the session's state.
    /// Returns whether anything new arrived. Commands still held back by the extractor (the
    /// one being typed) appear once the next prompt shows they are complete.
    pub fn poll(&mut self) -> anyhow::Result<bool> {
        let before = self.index.chunk_count();
        self.reader = Arc::new(self.rt.block_on(SessionReader::open(
            &self.store,
            &self.keyring,
            self.id,
        ))?);
        self.ingest(&mut |_, _| {});
        self.refresh_state();
        if self.ended()
            && let Some(x) = self.extractor.take()
        {
            // The session ended: what the extractor still holds is complete now.
            self.commands.extend(x.finish());
        }
        Ok(self.index.chunk_count() > before)
    }

    /// Sealed or interrupted: no chunk will be added (an unreadable state is not an end).
    pub fn ended(&self) -> bool {
        matches!(self.state.as_str(), "sealed" | "interrupted")
    }

    /// Ends extraction for a session that is not going to grow (no `--follow`).
    pub fn finish_commands(&mut self) {
        if let Some(x) = self.extractor.take() {
            self.commands.extend(x.finish());
        }
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

    /// The events of chunk `i`, from the cache or the store.
    pub fn chunk(&mut self, i: usize) -> Result<Arc<Vec<Event>>, ReadError> {
        cached(&mut self.cache, &self.rt, &self.reader, i)
    }

    /// The event at `pos` (or, past its chunk's end, the first of the next chunk) and the
    /// position after it, which is normalised so that the end of what is known is
    /// `(chunk_count, 0)`. `None` at that end.
    pub fn event(&mut self, pos: Position) -> Result<Option<(Event, Position)>, ReadError> {
        let mut pos = pos;
        while pos.chunk < self.index.chunk_count() {
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

    /// The screen at `at_us`: nearest keyframe plus a short replay.
    pub fn seek(&mut self, at_us: u64) -> anyhow::Result<Seeked> {
        let Self {
            index,
            cache,
            rt,
            reader,
            ..
        } = self;
        Ok(index.seek(at_us, |i| {
            cached(cache, rt, reader, i).map(|e| Vec::clone(&e))
        })?)
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
        for i in 0..self.index.chunk_count() {
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
