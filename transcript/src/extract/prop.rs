//! Property: whatever editing keys a user types at a line editor, the extracted command is
//! the line the editor held at Enter; lines typed without echo come out redacted and their
//! text never appears; abandoned lines (Ctrl-C) are not commands. The "shell" here is a
//! small line editor that redraws its whole line after every key, as readline-likes do, and
//! keys reach it (and its echo comes back) in batches of varying size.

use proptest::prelude::*;
use storage_schema::{Event, EventKind, Stream, TermSize};

use super::CommandExtractor;

#[derive(Debug, Clone)]
enum Edit {
    Insert(char),
    Backspace,
    Left,
    Right,
    Home,
    End,
    KillLine,
    KillWord,
}

#[derive(Debug, Clone)]
enum Line {
    /// Edits in batches (keys of a batch arrive in one event), then Enter or Ctrl-C.
    Edited {
        batches: Vec<Vec<Edit>>,
        interrupt: bool,
        /// Enter travels in the last batch's event, ahead of that batch's echo.
        enter_in_batch: bool,
    },
    /// Typed at a no-echo password prompt.
    Secret(String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        6 => prop::sample::select(&b"abcdefghij0123456789 -_./$"[..]).prop_map(|c| Edit::Insert(char::from(c))),
        1 => Just(Edit::Backspace),
        1 => Just(Edit::Left),
        1 => Just(Edit::Right),
        1 => Just(Edit::Home),
        1 => Just(Edit::End),
        1 => Just(Edit::KillLine),
        1 => Just(Edit::KillWord),
    ]
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        8 => (
            prop::collection::vec(prop::collection::vec(edit(), 1..6), 1..12),
            prop::bool::weighted(0.1),
            prop::bool::ANY,
        )
            .prop_map(|(batches, interrupt, enter_in_batch)| Line::Edited {
                batches,
                interrupt,
                enter_in_batch,
            }),
        1 => "[a-z0-9]{6,12}".prop_map(|s| Line::Secret(format!("pw-{s}"))),
    ]
}

const PROMPT: &str = "p$ ";

/// The editor: buffer and cursor, and the bytes a key sends.
#[derive(Default)]
struct Editor {
    buf: Vec<char>,
    pos: usize,
}

impl Editor {
    fn key(&mut self, e: &Edit) -> &'static [u8] {
        match e {
            Edit::Insert(c) => {
                self.buf.insert(self.pos, *c);
                self.pos += 1;
                b""
            }
            Edit::Backspace => {
                if self.pos > 0 {
                    self.pos -= 1;
                    self.buf.remove(self.pos);
                }
                b"\x7f"
            }
            Edit::Left => {
                self.pos = self.pos.saturating_sub(1);
                b"\x1b[D"
            }
            Edit::Right => {
                self.pos = (self.pos + 1).min(self.buf.len());
                b"\x1b[C"
            }
            Edit::Home => {
                self.pos = 0;
                b"\x01"
            }
            Edit::End => {
                self.pos = self.buf.len();
                b"\x05"
            }
            Edit::KillLine => {
                self.buf.drain(..self.pos);
                self.pos = 0;
                b"\x15"
            }
            Edit::KillWord => {
                let mut start = self.pos;
                while start > 0 && self.buf[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && self.buf[start - 1] != ' ' {
                    start -= 1;
                }
                self.buf.drain(start..self.pos);
                self.pos = start;
                b"\x17"
            }
        }
    }

    /// The whole line redrawn, cursor put back where it is.
    fn redraw(&self) -> Vec<u8> {
        let text: String = self.buf.iter().collect();
        let mut out = format!("\r\x1b[K{PROMPT}{text}");
        let back = self.buf.len() - self.pos;
        if back > 0 {
            out.push_str(&format!("\x1b[{back}D"));
        }
        out.into_bytes()
    }
}

struct Recording {
    at: u64,
    events: Vec<Event>,
}

impl Recording {
    fn push(&mut self, stream: Stream, bytes: Vec<u8>) {
        self.at += 7_000;
        self.events.push(Event {
            at_us: self.at,
            kind: EventKind::Data { stream, bytes },
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn extraction_follows_the_line_editor(lines in prop::collection::vec(line(), 1..8)) {
        let mut rec = Recording { at: 0, events: vec![] };
        let mut expected: Vec<Option<String>> = vec![];
        let mut secrets = vec![];
        rec.push(Stream::Stdout, PROMPT.as_bytes().to_vec());
        for line in &lines {
            match line {
                Line::Edited { batches, interrupt, enter_in_batch } => {
                    let mut ed = Editor::default();
                    let together = *enter_in_batch && !*interrupt;
                    for (i, batch) in batches.iter().enumerate() {
                        let last = i + 1 == batches.len();
                        let mut keys = Vec::new();
                        let mut echo = Vec::new();
                        for e in batch {
                            let sent = ed.key(e);
                            match e {
                                Edit::Insert(c) => keys.extend(c.to_string().bytes()),
                                _ => keys.extend_from_slice(sent),
                            }
                            echo.extend(ed.redraw());
                        }
                        if last && together {
                            keys.push(b'\r');
                            echo.extend_from_slice(format!("\r\nran\r\n{PROMPT}").as_bytes());
                        }
                        rec.push(Stream::Stdin, keys);
                        rec.push(Stream::Stdout, echo);
                    }
                    let text: String = ed.buf.iter().collect();
                    let text = text.trim().to_owned();
                    if together {
                        if !text.is_empty() {
                            expected.push(Some(text));
                        }
                        continue;
                    }
                    if *interrupt {
                        rec.push(Stream::Stdin, b"\x03".to_vec());
                        rec.push(Stream::Stdout, format!("^C\r\n{PROMPT}").into_bytes());
                        continue;
                    }
                    rec.push(Stream::Stdin, b"\r".to_vec());
                    rec.push(Stream::Stdout, format!("\r\nran\r\n{PROMPT}").into_bytes());
                    if !text.is_empty() {
                        expected.push(Some(text));
                    }
                }
                Line::Secret(secret) => {
                    // A command that asks for a password without echo, then the secret.
                    rec.push(Stream::Stdin, b"login\r".to_vec());
                    rec.push(Stream::Stdout, b"login\r\nPassword: ".to_vec());
                    rec.push(Stream::Stdin, secret.as_bytes().to_vec());
                    rec.push(Stream::Stdin, b"\r".to_vec());
                    rec.push(Stream::Stdout, format!("\r\n{PROMPT}").into_bytes());
                    expected.push(Some("login".into()));
                    expected.push(None);
                    secrets.push(secret.clone());
                }
            }
        }
        let mut x = CommandExtractor::tty(TermSize { cols: 200, rows: 10 });
        for e in &rec.events {
            x.feed(e);
        }
        let got = x.finish();
        let got_view: Vec<Option<String>> = got
            .iter()
            .filter(|c| matches!(c.kind, super::EntryKind::Command | super::EntryKind::Redacted))
            .map(|c| c.shown_text().map(str::to_owned))
            .collect();
        prop_assert_eq!(&got_view, &expected);
        let all = format!("{got:?}");
        for s in &secrets {
            prop_assert!(!all.contains(s.as_str()), "secret {} in {}", s, all);
        }
    }
}
