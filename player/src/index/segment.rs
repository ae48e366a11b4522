//! One index segment: the sessions indexed by one sync and their commands, laid out so a search
//! reads the file once and scans it without parsing it first.
//!
//! ```text
//! header (40 bytes, little-endian):
//!   magic "KTIX", version u32 = 2, sessions u32, commands u32,
//!   session table length u64, text length u64, reserved u64
//! session offsets: sessions × u32 (start of each session's JSON in the session table)
//! session table:   the sessions' JSON, back to back (parsed only for hits)
//! commands:        commands × { text start u32, session u32, at_us u64, number u32, kind u8,
//!                  reserved [u8; 3] } (24 bytes, by text start; number = 1-based position in
//!                  the session's entries; kind: 0 command, 1 input to a program, 3 aborted)
//! text:            every entry's text, each followed by '\n'
//! ```
//! Version 1 (20-byte records, commands only) is not read: the index is a cache, and
//! `Index::open` rebuilds one it cannot read.
//! A search runs the regex over `text` as one haystack (multi-line mode, so `^`/`$` match at
//! command boundaries) and maps each hit to its command by binary search over the text starts;
//! a command spanning several lines (a `for` loop) is still one command.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use storage_schema::commands::{CommandEntry, EntryKind};

const MAGIC: &[u8; 4] = b"KTIX";
const VERSION: u32 = 2;
const HEADER_LEN: usize = 40;
const COMMAND_LEN: usize = 24;

/// What the index keeps about a session: enough to filter and print hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedSession {
    pub session: String,
    pub started_at_us: u64,
    pub user: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Where the commands came from: `recorded` (the session's commands object) or
    /// `extracted` (from the events, by the index, for sessions sealed without one).
    pub source: String,
}

/// A row of the search index: what a segment keeps of one of a session's
/// [`CommandEntry`]s (the format's type): a command, a line typed to a program, or an aborted
/// line. Not the same type on purpose: a row has a position (`number`, for `play --at '#N'`)
/// that an entry only has by its place in a list, and there are rows only for entries whose
/// text may be searched, so a redacted entry has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedCommand {
    pub at_us: u64,
    /// 1-based position among the session's entries (redacted ones count but are not indexed).
    pub number: u32,
    pub kind: EntryKind,
    pub text: String,
}

/// An indexed entry, as a search reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Index of its session in the segment.
    pub session: usize,
    pub at_us: u64,
    pub number: u32,
    pub kind: EntryKind,
    pub text: &'a str,
}

fn kind_byte(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Command => 0,
        EntryKind::Input => 1,
        EntryKind::Redacted => 2,
        EntryKind::Aborted => 3,
        EntryKind::Other => 255,
    }
}

fn byte_kind(b: u8) -> EntryKind {
    match b {
        0 => EntryKind::Command,
        1 => EntryKind::Input,
        2 => EntryKind::Redacted,
        3 => EntryKind::Aborted,
        _ => EntryKind::Other,
    }
}

impl IndexedCommand {
    /// The rows for a session's entries, in order: one per entry with searchable text.
    pub fn rows(entries: &[CommandEntry]) -> Vec<IndexedCommand> {
        entries
            .iter()
            .zip(1u32..)
            .filter_map(|(e, number)| {
                e.shown_text().map(|text| IndexedCommand {
                    at_us: e.at_us,
                    number,
                    kind: e.kind,
                    text: text.to_owned(),
                })
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("not a kubetape index segment")]
    Magic,
    #[error(
        "index segment version {0} is not supported (rebuild with `kubetape search --reindex`)"
    )]
    Version(u32),
    #[error("index segment is truncated or corrupt ({0})")]
    Corrupt(&'static str),
}

/// Builds a segment in memory.
#[derive(Debug, Default)]
pub struct SegmentBuilder {
    offsets: Vec<u32>,
    table: Vec<u8>,
    commands: Vec<u8>,
    text: Vec<u8>,
    count: u32,
}

impl SegmentBuilder {
    pub fn add(&mut self, session: &IndexedSession, commands: &[IndexedCommand]) {
        let index = self.offsets.len() as u32;
        self.offsets.push(self.table.len() as u32);
        serde_json::to_writer(&mut self.table, session).expect("session serializes");
        for c in commands {
            self.commands
                .extend_from_slice(&(self.text.len() as u32).to_le_bytes());
            self.commands.extend_from_slice(&index.to_le_bytes());
            self.commands.extend_from_slice(&c.at_us.to_le_bytes());
            self.commands.extend_from_slice(&c.number.to_le_bytes());
            self.commands
                .extend_from_slice(&[kind_byte(c.kind), 0, 0, 0]);
            // Multi-line commands keep their newlines: `^`/`$` then also match inside them,
            // and a hit on any line maps back to the command by its start.
            self.text.extend_from_slice(c.text.as_bytes());
            self.text.push(b'\n');
            self.count += 1;
        }
    }

    pub fn sessions(&self) -> usize {
        self.offsets.len()
    }

    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_LEN
                + self.offsets.len() * 4
                + self.table.len()
                + self.commands.len()
                + self.text.len(),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.offsets.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&(self.table.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.text.len() as u64).to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        for o in &self.offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        out.extend_from_slice(&self.table);
        out.extend_from_slice(&self.commands);
        out.extend_from_slice(&self.text);
        out
    }
}

/// A segment read from disk, validated once, then borrowed from.
#[derive(Debug)]
pub struct Segment {
    bytes: Vec<u8>,
    sessions: usize,
    commands: usize,
    offsets: Range<usize>,
    table: Range<usize>,
    records: Range<usize>,
    text: Range<usize>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Segment {
    pub fn parse(bytes: Vec<u8>) -> Result<Self, SegmentError> {
        if bytes.len() < HEADER_LEN {
            return Err(SegmentError::Corrupt("header"));
        }
        if &bytes[0..4] != MAGIC {
            return Err(SegmentError::Magic);
        }
        let version = u32_at(&bytes, 4);
        if version != VERSION {
            return Err(SegmentError::Version(version));
        }
        let sessions = u32_at(&bytes, 8) as usize;
        let commands = u32_at(&bytes, 12) as usize;
        let table_len =
            usize::try_from(u64_at(&bytes, 16)).map_err(|_| SegmentError::Corrupt("sizes"))?;
        let text_len =
            usize::try_from(u64_at(&bytes, 24)).map_err(|_| SegmentError::Corrupt("sizes"))?;
        let offsets = HEADER_LEN..HEADER_LEN + sessions * 4;
        let table = offsets.end..offsets.end.saturating_add(table_len);
        let records = table.end..table.end.saturating_add(commands * COMMAND_LEN);
        let text = records.end..records.end.saturating_add(text_len);
        if text.end != bytes.len() {
            return Err(SegmentError::Corrupt("sizes"));
        }
        let segment = Self {
            bytes,
            sessions,
            commands,
            offsets,
            table,
            records,
            text,
        };
        // Every record must point inside the text and at a session, in order, so searching
        // never has to check again.
        let mut previous = 0;
        for i in 0..segment.commands {
            let (start, session, ..) = segment.record(i);
            if start < previous || start >= text_len || session >= segment.sessions {
                return Err(SegmentError::Corrupt("command records"));
            }
            previous = start;
        }
        for i in 0..segment.sessions {
            let start = u32_at(&segment.bytes, segment.offsets.start + i * 4) as usize;
            if start > table_len {
                return Err(SegmentError::Corrupt("session offsets"));
            }
        }
        Ok(segment)
    }

    pub fn session_count(&self) -> usize {
        self.sessions
    }

    pub fn command_count(&self) -> usize {
        self.commands
    }

    /// The haystack: every command's text followed by '\n'.
    pub fn text(&self) -> &[u8] {
        &self.bytes[self.text.clone()]
    }

    /// (text start, session index, at_us, number, kind) of entry `i`.
    fn record(&self, i: usize) -> (usize, usize, u64, u32, EntryKind) {
        let at = self.records.start + i * COMMAND_LEN;
        (
            u32_at(&self.bytes, at) as usize,
            u32_at(&self.bytes, at + 4) as usize,
            u64_at(&self.bytes, at + 8),
            u32_at(&self.bytes, at + 16),
            byte_kind(self.bytes[at + 20]),
        )
    }

    /// The command whose text holds byte `pos` of the haystack.
    pub fn command_at(&self, pos: usize) -> Option<usize> {
        if self.commands == 0 {
            return None;
        }
        // Last record whose start is ≤ pos.
        let (mut lo, mut hi) = (0, self.commands);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if self.record(mid).0 <= pos {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (self.record(lo).0 <= pos).then_some(lo)
    }

    /// Entry `i` (its text without the trailing '\n').
    pub fn command(&self, i: usize) -> Record<'_> {
        let (start, session, at_us, number, kind) = self.record(i);
        let end = if i + 1 < self.commands {
            self.record(i + 1).0
        } else {
            self.text.len()
        };
        let raw = &self.text()[start..end - 1];
        Record {
            session,
            at_us,
            number,
            kind,
            text: std::str::from_utf8(raw).unwrap_or("\u{fffd}"),
        }
    }

    /// Session `i`, parsed.
    pub fn session(&self, i: usize) -> Result<IndexedSession, SegmentError> {
        let table = &self.bytes[self.table.clone()];
        let start = u32_at(&self.bytes, self.offsets.start + i * 4) as usize;
        let end = if i + 1 < self.sessions {
            u32_at(&self.bytes, self.offsets.start + (i + 1) * 4) as usize
        } else {
            table.len()
        };
        table
            .get(start..end)
            .and_then(|json| serde_json::from_slice(json).ok())
            .ok_or(SegmentError::Corrupt("session table"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> IndexedSession {
        IndexedSession {
            session: id.into(),
            started_at_us: 1,
            user: "alice".into(),
            groups: vec![],
            cluster: None,
            namespace: Some("prod".into()),
            pod: Some("web".into()),
            container: None,
            source: "recorded".into(),
        }
    }

    fn cmd(at_us: u64, text: &str) -> IndexedCommand {
        IndexedCommand {
            at_us,
            number: at_us as u32,
            kind: EntryKind::Command,
            text: text.into(),
        }
    }

    fn rec(session: usize, at_us: u64, kind: EntryKind, text: &str) -> Record<'_> {
        Record {
            session,
            at_us,
            number: at_us as u32,
            kind,
            text,
        }
    }

    #[test]
    fn rows_number_every_entry_and_index_only_searchable_text() {
        let mut secret = CommandEntry::new(20, "hunter2".into());
        secret.redacted = true;
        let entries = [
            CommandEntry::new(10, "sudo -v".into()),
            secret,
            CommandEntry::new(30, "ls".into()),
        ];
        assert_eq!(
            IndexedCommand::rows(&entries),
            [
                IndexedCommand {
                    at_us: 10,
                    number: 1,
                    kind: EntryKind::Command,
                    text: "sudo -v".into()
                },
                IndexedCommand {
                    at_us: 30,
                    number: 3,
                    kind: EntryKind::Command,
                    text: "ls".into()
                },
            ]
        );
    }

    #[test]
    fn round_trip_and_lookup() {
        let mut b = SegmentBuilder::default();
        b.add(
            &session("a"),
            &[cmd(5, "ls -l"), cmd(9, "for i in 1 2\ndo echo $i\ndone")],
        );
        b.add(&session("empty"), &[]);
        b.add(
            &session("c"),
            &[IndexedCommand {
                kind: EntryKind::Input,
                ..cmd(7, "rm -rf /tmp/x")
            }],
        );
        let seg = Segment::parse(b.finish()).unwrap();
        assert_eq!((seg.session_count(), seg.command_count()), (3, 3));
        assert_eq!(
            seg.command(1),
            rec(0, 9, EntryKind::Command, "for i in 1 2\ndo echo $i\ndone")
        );
        assert_eq!(seg.command(2), rec(2, 7, EntryKind::Input, "rm -rf /tmp/x"));
        assert_eq!(seg.session(2).unwrap().session, "c");
        let text = seg.text();
        let pos = text.windows(4).position(|w| w == b"done").unwrap();
        assert_eq!(seg.command_at(pos), Some(1));
        assert_eq!(seg.command_at(0), Some(0));
        assert_eq!(seg.command_at(text.len() - 1), Some(2));
    }

    #[test]
    fn corrupt_segments_are_refused_not_trusted() {
        let mut b = SegmentBuilder::default();
        b.add(&session("a"), &[cmd(5, "ls"), cmd(6, "pwd")]);
        let good = b.finish();
        assert!(Segment::parse(good.clone()).is_ok());
        for len in 0..good.len() {
            assert!(
                Segment::parse(good[..len].to_vec()).is_err(),
                "truncated to {len}"
            );
        }
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(Segment::parse(bad), Err(SegmentError::Magic)));
        let mut bad = good.clone();
        bad[4] = 9;
        assert!(matches!(Segment::parse(bad), Err(SegmentError::Version(9))));
        // A command record pointing at a session that does not exist.
        let records_start = good.len() - "ls\npwd\n".len() - 2 * COMMAND_LEN;
        let mut bad = good.clone();
        bad[records_start + 4] = 7;
        assert!(Segment::parse(bad).is_err());
    }
}
