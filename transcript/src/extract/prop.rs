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

// === No evasion: every echoed line lands in exactly one entry ===
//
// A second model, of a whole session rather than one line editor: commands typed at the
// prompt, commands that run a while with lines typed ahead of the prompt (echoed by the
// terminal while the command runs, then read by the shell: re-echoed after the prompt by a
// shell with a line editor, not re-echoed by one without, like dash), output between typed
// lines, lines typed to a program (`cat`), lines abandoned with Ctrl-C, commands interrupted
// with Ctrl-C, and resizes anywhere between them. Whatever the interleaving, every line the
// terminal echoed must come out in exactly one entry, of the kind it was.

/// One step of a session.
#[derive(Debug, Clone)]
enum Act {
    /// A command typed at the prompt in `batches` events, then Enter; it prints `output` lines.
    Run { batches: usize, output: usize },
    /// A command that runs a while; `ahead` lines are typed (and echoed by the terminal) while
    /// it runs, with `between` lines of its output after each (`split`: the first one's output
    /// arrives in the middle of its typing); the shell runs them after it.
    Slow {
        ahead: usize,
        between: usize,
        split: bool,
    },
    /// `cat`, with lines typed to it, ended by Ctrl-D.
    Cat { lines: usize },
    /// A line typed at the prompt and abandoned with Ctrl-C.
    Abandon,
    /// A command interrupted with Ctrl-C while it runs.
    Interrupt,
    /// The terminal resized (at the prompt, with nothing typed).
    Resize { cols: u16 },
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => (1..4usize, 0..3usize).prop_map(|(batches, output)| Act::Run { batches, output }),
        3 => (1..4usize, 0..2usize, prop::bool::weighted(0.3))
            .prop_map(|(ahead, between, split)| Act::Slow { ahead, between, split }),
        1 => (1..3usize).prop_map(|lines| Act::Cat { lines }),
        1 => Just(Act::Abandon),
        1 => Just(Act::Interrupt),
        1 => (40..140u16).prop_map(|cols| Act::Resize { cols }),
    ]
}

/// What a session's line must come out as.
#[derive(Debug)]
struct Want {
    text: String,
    kind: Option<super::EntryKind>,
}

/// Builds the session: the events, and every line typed with what it must become.
struct Session {
    rec: Recording,
    /// The shell re-echoes typed-ahead lines after its prompt (a line editor).
    editor: bool,
    want: Vec<Want>,
    words: std::vec::IntoIter<String>,
    n: usize,
}

impl Session {
    fn out(&mut self, s: &str) {
        self.rec.push(Stream::Stdout, s.as_bytes().to_vec());
    }

    fn key(&mut self, s: &str) {
        self.rec.push(Stream::Stdin, s.as_bytes().to_vec());
    }

    /// A fresh line of text (distinct from every other line and from any output).
    fn line(&mut self, head: &str) -> String {
        self.n += 1;
        let word = self.words.next().unwrap_or_default();
        format!("{head} l{}{word}", self.n)
    }

    /// Types `text` in `batches` events, each echoed as it arrives.
    fn type_echoed(&mut self, text: &str, batches: usize) {
        let chars: Vec<char> = text.chars().collect();
        let per = chars.len().div_ceil(batches.max(1)).max(1);
        for part in chars.chunks(per) {
            let part: String = part.iter().collect();
            self.key(&part);
            self.out(&part);
        }
    }

    fn prompt(&mut self) {
        self.out(PROMPT);
    }

    fn output(&mut self, lines: usize) {
        for i in 0..lines {
            self.n += 1;
            let s = format!("output {} of {}\r\n", i, self.n);
            self.out(&s);
        }
    }

    fn act(&mut self, a: &Act) {
        use super::EntryKind::{Aborted, Command, Input};
        match *a {
            Act::Run { batches, output } => {
                let text = self.line("echo");
                self.type_echoed(&text, batches);
                self.key("\r");
                self.out("\r\n");
                self.output(output);
                self.prompt();
                self.want.push(Want {
                    text,
                    kind: Some(Command),
                });
            }
            Act::Slow {
                ahead,
                between,
                split,
            } => {
                let text = self.line("sleep");
                self.type_echoed(&text, 1);
                self.key("\r");
                self.out("\r\n");
                self.want.push(Want {
                    text,
                    kind: Some(Command),
                });
                let mut lines = vec![];
                for i in 0..ahead {
                    // Echoed by the terminal (cooked mode) as it is typed.
                    let line = self.line("echo");
                    if split && i == 0 {
                        let half = line.len() / 2;
                        self.type_echoed(&line[..half], 1);
                        self.output(1);
                        self.type_echoed(&line[half..], 1);
                    } else {
                        self.type_echoed(&line, 2);
                    }
                    self.key("\r");
                    self.out("\r\n");
                    self.output(between);
                    lines.push(line);
                }
                self.prompt();
                for line in lines {
                    if self.editor {
                        // The line editor reads the line and draws it after its prompt.
                        self.out(&line);
                        self.out("\r\n");
                    }
                    self.output(1);
                    self.prompt();
                    // Typed ahead: counted as an entry of any kind (the shell ran it).
                    self.want.push(Want {
                        text: line,
                        kind: None,
                    });
                }
            }
            Act::Cat { lines } => {
                let text = self.line("cat -");
                self.type_echoed(&text, 1);
                self.key("\r");
                self.out("\r\n");
                self.want.push(Want {
                    text,
                    kind: Some(Command),
                });
                for _ in 0..lines {
                    let line = self.line("to cat");
                    self.type_echoed(&line, 2);
                    self.key("\r");
                    self.out("\r\n");
                    let back = format!("{line}\r\n");
                    self.out(&back);
                    self.want.push(Want {
                        text: line,
                        kind: Some(Input),
                    });
                }
                self.key("\x04");
                self.prompt();
            }
            Act::Abandon => {
                let text = self.line("rm");
                self.type_echoed(&text, 2);
                self.key("\x03");
                self.out("^C\r\n");
                self.prompt();
                self.want.push(Want {
                    text,
                    kind: Some(Aborted),
                });
            }
            Act::Interrupt => {
                let text = self.line("sleep");
                self.type_echoed(&text, 1);
                self.key("\r");
                self.out("\r\n");
                self.output(1);
                self.key("\x03");
                self.out("^C\r\n");
                self.prompt();
                self.want.push(Want {
                    text,
                    kind: Some(Command),
                });
            }
            Act::Resize { cols } => {
                self.rec.at += 7_000;
                self.rec.events.push(Event {
                    at_us: self.rec.at,
                    kind: EventKind::Resize { cols, rows: 24 },
                });
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_echoed_line_lands_in_exactly_one_entry(
        acts in prop::collection::vec(act(), 1..10),
        editor in prop::bool::ANY,
        cols in 40..160u16,
        words in prop::collection::vec("( [a-z0-9./-]{1,12}){0,4}", 40),
    ) {
        let mut s = Session {
            rec: Recording { at: 0, events: vec![] },
            editor,
            want: vec![],
            words: words.into_iter(),
            n: 0,
        };
        s.prompt();
        for a in &acts {
            s.act(a);
        }
        let mut x = CommandExtractor::tty(TermSize { cols, rows: 24 });
        for e in &s.rec.events {
            x.feed(e);
        }
        let got = x.finish();
        for w in &s.want {
            let holding: Vec<_> = got.iter().filter(|e| e.text == w.text).collect();
            prop_assert_eq!(holding.len(), 1, "{:?} in {} entries: {:#?}", w, holding.len(), got);
            if let Some(kind) = w.kind {
                prop_assert_eq!(holding[0].kind, kind, "{:?}: {:#?}", w, got);
            } else {
                prop_assert!(holding[0].kind != super::EntryKind::Redacted, "{:?}", w);
            }
        }
        // Nothing else: no entry made of output, none split off a line.
        prop_assert_eq!(got.len(), s.want.len(), "{:#?}\nwanted {:#?}", got, s.want);
    }
}
