//! asciicast v2 and v3 (asciinema's newline-delimited JSON): a header line, then one
//! `[time, code, data]` line per event. v2 times are seconds since the start; v3 times are
//! intervals since the previous event and v3 adds the exit status (`"x"`).
//!
//! Only what the session showed goes in: output (`"o"`, stdout and stderr alike, as a terminal
//! mixes them), resizes (`"r"`), markers (`"m"`) and, in v3, the exit status. Keystrokes are
//! never exported: a password typed at a no-echo prompt is in the recording's stdin, and an
//! export is a file that leaves the audit store.

use std::io::{self, Write};

use serde_json::json;
use storage_schema::{Event, EventKind, SessionMeta, Stream};

use super::utf8::StreamDecoder;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2,
    V3,
}

/// Writes one session as asciicast, event by event.
#[derive(Debug)]
pub struct AsciicastWriter<W: Write> {
    out: W,
    version: Version,
    last_us: u64,
    stdout: StreamDecoder,
    stderr: StreamDecoder,
    /// The header, until it is written. kubectl sends the terminal's size as a resize right
    /// after the stream opens, so the metadata seldom has it, and the pod may have printed
    /// (a prompt) before it arrived: events are held back until the first resize (or
    /// [`HOLD_BYTES`] of output, or [`HOLD_US`] into the session), whose size the header takes.
    header: Option<Header>,
    held: Vec<Event>,
    held_bytes: usize,
    /// Events written (after the header).
    pub events: u64,
}

/// Output held back waiting for the first resize, at most.
const HOLD_BYTES: usize = 1 << 20;
/// How far into the session the first resize may come to size the header.
const HOLD_US: u64 = 10_000_000;

#[derive(Debug)]
struct Header {
    timestamp: u64,
    command: String,
    title: String,
    size: (u16, u16),
    /// The metadata had no size: the first resize gives it.
    from_first_resize: bool,
}

/// The terminal size a session's metadata gives (80x24 when it has none, as asciinema
/// assumes); a resize before the first output overrides it (see [`AsciicastWriter`]).
pub fn initial_size(meta: &SessionMeta) -> (u16, u16) {
    meta.size.map_or((80, 24), |s| (s.cols, s.rows))
}

fn title(meta: &SessionMeta) -> String {
    let target = [
        meta.target.namespace.as_deref(),
        meta.target.pod.as_deref(),
        meta.target.container.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("/");
    let command = meta.command.join(" ");
    match (target.is_empty(), command.is_empty()) {
        (true, _) => format!("{}: {command}", meta.identity.user),
        (false, true) => format!("{} @ {target}", meta.identity.user),
        (false, false) => format!("{} @ {target}: {command}", meta.identity.user),
    }
}

impl<W: Write> AsciicastWriter<W> {
    /// A writer for one session; the header line is written at the session's first resize
    /// (whose size it takes), or once holding back for one was long enough (see `header`).
    pub fn new(out: W, version: Version, meta: &SessionMeta) -> io::Result<Self> {
        Ok(Self {
            out,
            version,
            last_us: 0,
            stdout: StreamDecoder::default(),
            stderr: StreamDecoder::default(),
            header: Some(Header {
                timestamp: meta.started_at_us / 1_000_000,
                command: meta.command.join(" "),
                title: title(meta),
                size: initial_size(meta),
                from_first_resize: meta.size.is_none(),
            }),
            held: Vec::new(),
            held_bytes: 0,
            events: 0,
        })
    }

    fn write_header(&mut self) -> io::Result<()> {
        let Some(h) = self.header.take() else {
            return Ok(());
        };
        let (cols, rows) = h.size;
        let header = match self.version {
            Version::V2 => json!({
                "version": 2,
                "width": cols,
                "height": rows,
                "timestamp": h.timestamp,
                "command": h.command,
                "title": h.title,
                "env": {"TERM": "xterm-256color"},
            }),
            Version::V3 => json!({
                "version": 3,
                "term": {"cols": cols, "rows": rows, "type": "xterm-256color"},
                "timestamp": h.timestamp,
                "command": h.command,
                "title": h.title,
            }),
        };
        serde_json::to_writer(&mut self.out, &header)?;
        self.out.write_all(b"\n")
    }

    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        let Some(h) = self.header.as_mut() else {
            return self.emit(event);
        };
        if !h.from_first_resize {
            self.release()?;
            return self.emit(event);
        }
        // The first resize is the client terminal's size: the header's, not an event.
        if let EventKind::Resize { cols, rows } = &event.kind {
            h.size = (*cols, *rows);
            return self.release();
        }
        if let EventKind::Data { bytes, .. } = &event.kind {
            self.held_bytes += bytes.len();
        }
        self.held.push(event.clone());
        if self.held_bytes > HOLD_BYTES || event.at_us > HOLD_US {
            self.release()?;
        }
        Ok(())
    }

    /// Writes the header (if not yet) and the events held back for it.
    fn release(&mut self) -> io::Result<()> {
        self.write_header()?;
        if self.held.is_empty() {
            return Ok(());
        }
        for event in std::mem::take(&mut self.held) {
            self.emit(&event)?;
        }
        self.held_bytes = 0;
        Ok(())
    }

    fn emit(&mut self, event: &Event) -> io::Result<()> {
        match &event.kind {
            EventKind::Data { stream, bytes } => {
                let text = match stream {
                    Stream::Stdout => self.stdout.decode(bytes),
                    Stream::Stderr => self.stderr.decode(bytes),
                    Stream::Stdin => return Ok(()),
                };
                if !text.is_empty() {
                    self.line(event.at_us, "o", &text)?;
                }
            }
            EventKind::Resize { cols, rows } => {
                self.line(event.at_us, "r", &format!("{cols}x{rows}"))?
            }
            EventKind::Marker { text } => self.line(event.at_us, "m", text)?,
            EventKind::Exit { code, .. } if self.version == Version::V3 => {
                self.line(event.at_us, "x", &code.to_string())?
            }
            _ => {}
        }
        Ok(())
    }

    /// Flushes held-back partial characters and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.release()?;
        for text in [self.stdout.finish(), self.stderr.finish()] {
            if !text.is_empty() {
                self.line(self.last_us, "o", &text)?;
            }
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn line(&mut self, at_us: u64, code: &str, data: &str) -> io::Result<()> {
        self.write_header()?;
        let at_us = at_us.max(self.last_us);
        let time_us = match self.version {
            Version::V2 => at_us,
            Version::V3 => at_us - self.last_us,
        };
        self.last_us = at_us;
        // Microsecond precision, as asciinema writes it.
        write!(
            self.out,
            "[{}.{:06}, ",
            time_us / 1_000_000,
            time_us % 1_000_000
        )?;
        serde_json::to_writer(&mut self.out, code)?;
        self.out.write_all(b", ")?;
        serde_json::to_writer(&mut self.out, data)?;
        self.out.write_all(b"]\n")?;
        self.events += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_schema::session::{Identity, SessionKind, Target, TermSize};

    fn meta() -> SessionMeta {
        let mut m = SessionMeta::new(
            SessionKind::Exec,
            Identity {
                user: "alice".into(),
                ..Default::default()
            },
            Target {
                namespace: Some("prod".into()),
                pod: Some("web-1".into()),
                ..Default::default()
            },
            vec!["sh".into()],
            true,
        );
        m.size = Some(TermSize {
            cols: 100,
            rows: 30,
        });
        m.started_at_us = 1_700_000_000_123_456;
        m
    }

    fn ev(at_us: u64, kind: EventKind) -> Event {
        Event { at_us, kind }
    }

    fn out(at_us: u64, s: &[u8]) -> Event {
        ev(
            at_us,
            EventKind::Data {
                stream: Stream::Stdout,
                bytes: s.to_vec(),
            },
        )
    }

    fn export(version: Version) -> Vec<serde_json::Value> {
        let mut w = AsciicastWriter::new(Vec::new(), version, &meta()).unwrap();
        for e in [
            out(1_500_000, b"$ "),
            ev(
                1_600_000,
                EventKind::Data {
                    stream: Stream::Stdin,
                    bytes: b"secret\r".to_vec(),
                },
            ),
            out(2_000_000, b"\xe2\x82"),
            out(2_250_000, b"\xac\r\n"),
            ev(
                3_000_000,
                EventKind::Resize {
                    cols: 120,
                    rows: 40,
                },
            ),
            ev(
                4_000_001,
                EventKind::Exit {
                    code: 5,
                    message: String::new(),
                },
            ),
        ] {
            w.event(&e).unwrap();
        }
        let bytes = w.finish().unwrap();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn without_a_recorded_size_the_first_resize_sizes_the_header() {
        let mut m = meta();
        m.size = None;
        let mut w = AsciicastWriter::new(Vec::new(), Version::V2, &m).unwrap();
        for e in [
            // The pod's prompt may come before kubectl's first resize.
            out(5_000, b"# "),
            ev(
                10_000,
                EventKind::Resize {
                    cols: 120,
                    rows: 35,
                },
            ),
            out(20_000, b"$ "),
            ev(30_000, EventKind::Resize { cols: 90, rows: 20 }),
        ] {
            w.event(&e).unwrap();
        }
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            (&lines[0]["width"], &lines[0]["height"]),
            (&json!(120), &json!(35))
        );
        // The first resize is the header; a later one stays an event.
        assert_eq!(
            lines[1..],
            [
                json!([0.005, "o", "# "]),
                json!([0.02, "o", "$ "]),
                json!([0.03, "r", "90x20"])
            ]
        );
        // No event at all: still a header, of the metadata's size.
        let empty = AsciicastWriter::new(Vec::new(), Version::V3, &meta()).unwrap();
        let text = String::from_utf8(empty.finish().unwrap()).unwrap();
        let header: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(header["term"]["cols"], 100);
    }

    #[test]
    fn v2_has_absolute_times_and_no_keystrokes() {
        let lines = export(Version::V2);
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(lines[0]["width"], 100);
        assert_eq!(lines[0]["height"], 30);
        assert_eq!(lines[0]["timestamp"], 1_700_000_000);
        assert_eq!(lines[0]["title"], "alice @ prod/web-1: sh");
        assert_eq!(
            lines[1..],
            [
                json!([1.5, "o", "$ "]),
                json!([2.25, "o", "€\r\n"]),
                json!([3.0, "r", "120x40"]),
            ]
        );
    }

    #[test]
    fn v3_has_intervals_and_the_exit_status() {
        let lines = export(Version::V3);
        assert_eq!(lines[0]["version"], 3);
        assert_eq!(lines[0]["term"]["cols"], 100);
        assert_eq!(
            lines[1..],
            [
                json!([1.5, "o", "$ "]),
                json!([0.75, "o", "€\r\n"]),
                json!([0.75, "r", "120x40"]),
                json!([1.000001, "x", "5"]),
            ]
        );
    }
}
