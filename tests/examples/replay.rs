//! Dev tool (not committed): replay a corpus `.events` dump through the extractor.
use storage_schema::{Event, EventKind, Stream, TermSize};

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'x' => {
                    out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                    i += 4;
                }
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                }
                b'r' => {
                    out.push(b'\r');
                    i += 2;
                }
                b't' => {
                    out.push(b'\t');
                    i += 2;
                }
                b'\\' => {
                    out.push(b'\\');
                    i += 2;
                }
                b'\'' => {
                    out.push(b'\'');
                    i += 2;
                }
                b'"' => {
                    out.push(b'"');
                    i += 2;
                }
                _ => {
                    out.push(b[i]);
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let command: Vec<String> = std::env::args().skip(2).collect();
    let text = std::fs::read_to_string(path).unwrap();
    let mut events = Vec::new();
    let mut size = TermSize {
        cols: 100,
        rows: 30,
    };
    for line in text.lines() {
        let (at, rest) = line.split_once(' ').unwrap();
        let at: u64 = at.parse().unwrap();
        let kind = if let Some(b) = rest.strip_prefix("Stdin ") {
            EventKind::Data {
                stream: Stream::Stdin,
                bytes: unescape(b),
            }
        } else if let Some(b) = rest.strip_prefix("Stdout ") {
            EventKind::Data {
                stream: Stream::Stdout,
                bytes: unescape(b),
            }
        } else if rest == "Stdin" {
            EventKind::Data {
                stream: Stream::Stdin,
                bytes: b" ".to_vec(),
            }
        } else if rest == "Stdout" {
            EventKind::Data {
                stream: Stream::Stdout,
                bytes: b" ".to_vec(),
            }
        } else if let Some(r) = rest.strip_prefix("Resize { cols: ") {
            let (c, r) = r.split_once(", rows: ").unwrap();
            let r = r.trim_end_matches(" }");
            let s = TermSize {
                cols: c.parse().unwrap(),
                rows: r.parse().unwrap(),
            };
            if events.is_empty() {
                size = s;
            }
            EventKind::Resize {
                cols: s.cols,
                rows: s.rows,
            }
        } else if rest.starts_with("Exit") {
            EventKind::Exit {
                code: 0,
                message: String::new(),
            }
        } else {
            continue;
        };
        events.push(Event { at_us: at, kind });
    }
    let mut x = transcript::CommandExtractor::tty_running(size, &command);
    for e in &events {
        x.feed(e);
    }
    for c in x.finish() {
        println!(
            "{:?} {:?} inferred={} ahead={} prompt={:?}",
            c.kind, c.text, c.inferred, c.typeahead, c.prompt
        );
    }
}
