//! The audit log's write-ahead journal, for `audit.fail_closed = true`: a request is answered
//! only once its record is durable, and a record reaches the store only with the chunk that
//! holds it (within a flush interval), so each record is first appended to a local journal and
//! fsynced — in groups (group commit): the writer takes every record waiting, appends them with
//! one write, syncs once and then answers all of their requests. The journal lives in the
//! recording spool's slot (`journal/`), counts against its bound, and holds records only until
//! the chunks that carry them are durable in the audit stream (in the store or the spool).
//!
//! ```text
//! journal/<stream id>-<first record index, 20 digits>.jnl    one segment of a stream's journal
//!     line n = the JSON of the stream's record (first + n), then '\n'
//! ```
//! A segment closes at 1 MiB and is deleted once every record in it is durable in the stream.
//! Records are JSON as written to stdout (who did what, not session content): the journal
//! adds no secret at rest beyond what the stdout log already shows, and its directory is 0700.
//!
//! After a crash, the journals found in the spool belong to streams whose writer is gone:
//! their records beyond those the stream holds (read back from the store, after the spool has
//! been replayed) are written again, into the new stream ([`super`]). A torn last line (its
//! sync never finished, so its request was never answered) is ignored.

use std::fs::{self, File};
use std::io::{self, BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use storage_schema::SessionId;
use storage_schema::store::{Spool, SpoolError};

/// A segment is closed at this size.
const SEGMENT_BYTES: u64 = 1 << 20;

/// One audit stream's journal, appended by the writer task.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    spool: Spool,
    stream: SessionId,
    /// Open segment: file, first record index, bytes.
    current: Option<(File, u64, u64)>,
    /// Closed segments: path, first index, one past the last index, bytes.
    closed: Vec<(PathBuf, u64, u64, u64)>,
    next: u64,
}

fn segment_path(dir: &Path, stream: SessionId, first: u64) -> PathBuf {
    dir.join(format!("{stream}-{first:020}.jnl"))
}

impl Journal {
    pub fn new(spool: &Spool, stream: SessionId) -> Self {
        Self {
            dir: spool.journal_dir(),
            spool: spool.clone(),
            stream,
            current: None,
            closed: Vec::new(),
            next: 0,
        }
    }

    /// Index the next appended record gets.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Appends `lines` (records' JSON) and syncs them: when this returns, they survive a crash.
    /// Refused when the spool is full. Blocking.
    pub fn append(&mut self, lines: &[String]) -> Result<(), SpoolError> {
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        let len = buf.len() as u64;
        self.spool.reserve_bytes(len, false)?;
        let written = self.write(&buf);
        match written {
            Ok(()) => {
                self.next += lines.len() as u64;
                if let Some((_, _, bytes)) = &mut self.current {
                    *bytes += len;
                }
                Ok(())
            }
            Err(e) => {
                self.spool.release_bytes(len);
                Err(e)
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> Result<(), SpoolError> {
        let full = matches!(&self.current, Some((_, _, bytes)) if *bytes >= SEGMENT_BYTES);
        if full && let Some((_, first, bytes)) = self.current.take() {
            self.closed.push((
                segment_path(&self.dir, self.stream, first),
                first,
                self.next,
                bytes,
            ));
        }
        let path = segment_path(
            &self.dir,
            self.stream,
            self.current.as_ref().map_or(self.next, |c| c.1),
        );
        let io = |source| SpoolError::Io {
            path: path.clone(),
            source,
        };
        if self.current.is_none() {
            let file = File::options()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io)?;
            // The new segment's name must survive a crash too.
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
            self.current = Some((file, self.next, 0));
        }
        let (file, _, _) = self.current.as_mut().expect("opened above");
        file.write_all(buf).map_err(io)?;
        file.sync_data().map_err(io)
    }

    /// Every record below `durable` is in the stream, durably: segments entirely below it go.
    /// Blocking.
    pub fn confirm(&mut self, durable: u64) {
        let spool = &self.spool;
        self.closed.retain(|(path, _, end, bytes)| {
            if *end <= durable {
                if fs::remove_file(path).is_ok() {
                    spool.release_bytes(*bytes);
                }
                false
            } else {
                true
            }
        });
    }

    /// The whole stream is durable (sealed): the journal goes. Blocking.
    pub fn remove(mut self) {
        self.confirm(u64::MAX);
        if let Some((_, first, bytes)) = self.current.take()
            && fs::remove_file(segment_path(&self.dir, self.stream, first)).is_ok()
        {
            self.spool.release_bytes(bytes);
        }
    }
}

/// Records of a journal a previous process left: its stream, and its records by index.
#[derive(Debug)]
pub struct Leftover {
    pub stream: SessionId,
    pub records: Vec<(u64, String)>,
    segments: Vec<(PathBuf, u64)>,
}

impl Leftover {
    /// Deletes the journal's files (its records are in a stream now). Blocking.
    pub fn remove(self, spool: &Spool) {
        for (path, bytes) in self.segments {
            if fs::remove_file(&path).is_ok() {
                spool.release_bytes(bytes);
            }
        }
    }
}

/// The journals in the spool when it was opened, by stream. Blocking.
pub fn leftovers(spool: &Spool) -> io::Result<Vec<Leftover>> {
    let dir = spool.journal_dir();
    let mut by_stream: std::collections::BTreeMap<SessionId, Leftover> = Default::default();
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((stream, first)) = name
            .strip_suffix(".jnl")
            .and_then(|n| n.rsplit_once('-'))
            .and_then(|(s, f)| Some((s.parse::<SessionId>().ok()?, f.parse::<u64>().ok()?)))
        else {
            continue;
        };
        let path = entry.path();
        let bytes = entry.metadata()?.len();
        let leftover = by_stream.entry(stream).or_insert_with(|| Leftover {
            stream,
            records: Vec::new(),
            segments: Vec::new(),
        });
        let mut reader = io::BufReader::new(File::open(&path)?);
        let mut line = String::new();
        let mut index = first;
        loop {
            line.clear();
            let n = reader.read_line(&mut line)?;
            // A line without its newline was torn by the crash: never synced, never answered.
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            leftover
                .records
                .push((index, line.trim_end_matches('\n').to_string()));
            index += 1;
        }
        leftover.segments.push((path, bytes));
    }
    let mut out: Vec<Leftover> = by_stream.into_values().collect();
    for l in &mut out {
        l.records.sort_by_key(|(i, _)| *i);
        l.records.dedup_by_key(|(i, _)| *i);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_records_survive_and_confirmed_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 64 << 20).unwrap();
        let stream = SessionId::new();
        let mut journal = Journal::new(&spool, stream);
        let big = "x".repeat(600 << 10);
        journal.append(&[big.clone(), "b".into()]).unwrap();
        journal.append(std::slice::from_ref(&big)).unwrap(); // the first segment is full: a second one
        journal.append(&["c".into()]).unwrap();
        assert_eq!(journal.next_index(), 4);
        // A torn line at the end of the open segment.
        let current = segment_path(&spool.journal_dir(), stream, 3);
        fs::OpenOptions::new()
            .append(true)
            .open(&current)
            .unwrap()
            .write_all(b"{\"torn")
            .unwrap();
        let found = leftovers(&spool).unwrap();
        assert_eq!(found.len(), 1);
        let indices: Vec<u64> = found[0].records.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, [0, 1, 2, 3]);
        assert_eq!(found[0].records[3].1, "c");
        journal.confirm(2);
        assert_eq!(
            leftovers(&spool).unwrap()[0].records.len(),
            4,
            "not all of segment 0 is durable"
        );
        journal.confirm(3);
        assert_eq!(leftovers(&spool).unwrap()[0].records[0].0, 3);
        journal.remove();
        assert!(leftovers(&spool).unwrap().is_empty());
    }

    #[test]
    fn a_full_spool_refuses_appends() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 10).unwrap();
        let mut journal = Journal::new(&spool, SessionId::new());
        journal.append(&["12345678".into()]).unwrap();
        assert!(matches!(
            journal.append(&["too much".into()]),
            Err(SpoolError::Full { .. })
        ));
        assert_eq!(journal.next_index(), 1);
    }
}
