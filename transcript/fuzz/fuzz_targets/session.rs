//! Arbitrary sessions (keystrokes, output, resizes, exits, in any order and size) through the
//! command extractor (TTY and exec), the seek index and a seek: nothing may panic, redacted
//! entries carry no text, command text stays bounded, and a seek lands on an event boundary
//! after the target.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use storage_schema::{Event, EventKind, Stream, TermSize};
use transcript::{CommandExtractor, SeekConfig, SeekIndex};

#[derive(Debug, Arbitrary)]
enum Step {
    Keys(Vec<u8>),
    Output(Vec<u8>),
    Stderr(Vec<u8>),
    Resize(u16, u16),
    Exit(i32),
    StdinClose,
    /// Time passes (milliseconds), e.g. past the extractor's Enter timeout.
    Wait(u16),
}

#[derive(Debug, Arbitrary)]
struct Input {
    cols: u16,
    rows: u16,
    command: Vec<String>,
    steps: Vec<Step>,
    /// Events per chunk for the seek index (1..=16).
    chunk_len: u8,
    seek_at: u32,
}

fuzz_target!(|input: Input| {
    transcript_fuzz::let_vt100_panics_unwind();
    let mut at_us = 0u64;
    let mut events = Vec::new();
    for step in input.steps {
        at_us += 1_000;
        let kind = match step {
            Step::Keys(bytes) => EventKind::Data {
                stream: Stream::Stdin,
                bytes,
            },
            Step::Output(bytes) => EventKind::Data {
                stream: Stream::Stdout,
                bytes,
            },
            Step::Stderr(bytes) => EventKind::Data {
                stream: Stream::Stderr,
                bytes,
            },
            // Sizes up to 511×127 keep runs fast; the clamps beyond have their own tests.
            Step::Resize(cols, rows) => EventKind::Resize {
                cols: cols % 512,
                rows: rows % 128,
            },
            Step::Exit(code) => EventKind::Exit {
                code,
                message: String::new(),
            },
            Step::StdinClose => EventKind::StreamClose {
                stream: Stream::Stdin,
            },
            Step::Wait(ms) => {
                at_us += u64::from(ms) * 1_000;
                continue;
            }
        };
        events.push(Event { at_us, kind });
    }
    let size = TermSize {
        cols: input.cols % 512,
        rows: input.rows % 128,
    };

    let mut tty = CommandExtractor::tty(size);
    let mut exec = CommandExtractor::exec(&input.command);
    let mut taken = Vec::new();
    for e in &events {
        tty.feed(e);
        exec.feed(e);
        taken.extend(tty.take());
    }
    taken.extend(tty.finish());
    taken.extend(exec.finish());
    for c in &taken {
        assert!(!c.redacted || c.text.is_empty(), "redacted entry with text: {c:?}");
        assert!(c.text.len() <= 64 * 1024 + 8 + c.text.matches('\n').count() * 64 * 1024);
    }

    let chunk_len = usize::from(input.chunk_len % 16) + 1;
    let chunks: Vec<Vec<Event>> = events.chunks(chunk_len).map(<[Event]>::to_vec).collect();
    let mut index = SeekIndex::new(
        size,
        SeekConfig {
            every_us: 3_000,
            every_bytes: 64,
            max_bytes: 16 * 1024,
        },
    );
    for c in &chunks {
        index.push_chunk(c);
    }
    let at = u64::from(input.seek_at) % (index.end_us() + 2);
    let seeked = index
        .seek(at, |i| Ok::<_, std::convert::Infallible>(chunks[i].clone()))
        .expect("in-memory chunks");
    if let Some(next) = chunks.get(seeked.next.chunk).and_then(|c| c.get(seeked.next.event)) {
        assert!(next.at_us > at);
    }
    let _ = seeked.terminal.text();
    let _ = seeked.terminal.snapshot();
});
