//! `ServerSession::receive` on a byte stream delivered in fuzzer-chosen pieces.
//!
//! Input: byte 0 is `n` (taken mod 17), the next `n` bytes are piece lengths (0 = an empty read),
//! used cyclically; everything after them is the stream a client sends. With no lengths, or only
//! zeros, the stream arrives in one read. Like a connection, feeding stops at the first error.
//!
//! Properties:
//! - no panic, whatever the bytes and however they are split;
//! - split-invariance: the events (concatenated), the output bytes and whether it failed are the
//!   same as for a session fed the whole stream in one read (compared read by read, so nothing
//!   accumulates while memory is measured);
//! - `take_output` is whole, decodable frames: one SYN_REPLY per opened stream, in order, whose
//!   header blocks decode (one client-side inflate context) to empty header lists, and one PING
//!   echo per PING received (same ids, same order);
//! - bounded memory: a counting global allocator measures what the session keeps between reads.
//!   It may hold at most the unfinished frame plus the last read (twice over, for `Vec` growth),
//!   a few bytes per opened stream, and a fixed allowance for the two zlib contexts; never the
//!   stream, its frames or decompressed header blocks.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use proto::spdy::frame::{Frame, decode};
use proto::spdy::headers::HeaderDecoder;
use proto::spdy::session::{Event, ServerSession};

/// Live heap bytes (Rust allocations only; libFuzzer's own are C++).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System` unchanged and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The zlib contexts and the session's fixed parts: 418 KiB measured with zlib-rs 0.6 (deflate at
/// best compression is most of it), whatever the input.
const FIXED_ALLOWANCE: usize = 512 << 10;
/// Per opened stream (the session remembers stream ids).
const PER_STREAM: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (usize::from(n) % 17).min(rest.len());
    let (lens, stream) = rest.split_at(n);
    let pieces = split(stream, lens);

    // What a frame decoder sees in the stream: the bytes left buffered after each read (an
    // unfinished frame), the SYN_STREAM count and the PING ids.
    let mut all = Vec::new();
    let mut pending_after = Vec::with_capacity(pieces.len());
    let mut at = 0;
    let mut syn_streams = 0;
    let mut pings = Vec::new();
    for piece in &pieces {
        all.extend_from_slice(piece);
        while let Ok(Some((frame, used))) = decode(&all[at..]) {
            at += used;
            match frame {
                Frame::SynStream { .. } => syn_streams += 1,
                Frame::Ping { id } => pings.push(id),
                _ => {}
            }
        }
        pending_after.push(all.len() - at);
    }

    // The reference: one session, one read.
    let mut whole = ServerSession::new();
    let expected = whole.receive(stream);
    let expected_output = whole.take_output();
    drop(whole);

    // The same stream in pieces. Nothing allocated from here on outlives a read except the
    // session, so the live-heap count measures what it keeps.
    let baseline = LIVE.load(Ordering::Relaxed);
    let mut session = ServerSession::new();
    let (mut events_at, mut output_at) = (0, 0);
    let (mut needed, mut before) = (0usize, 0usize);
    let mut failed = false;
    for (piece, &pending) in pieces.iter().zip(&pending_after) {
        needed = needed.max(before + piece.len());
        let got = session.receive(piece);
        let output = session.take_output();
        match (&got, &expected) {
            (Ok(events), Ok(all_events)) => {
                let end = events_at + events.len();
                assert_eq!(Some(&events[..]), all_events.get(events_at..end), "events");
                events_at = end;
                let end = output_at + output.len();
                assert_eq!(
                    Some(&output[..]),
                    expected_output.get(output_at..end),
                    "output"
                );
                output_at = end;
            }
            (Ok(_), Err(_)) => {}
            (Err(e), _) => {
                assert!(expected.is_err(), "in pieces: {e}; whole: {expected:?}");
                failed = true;
            }
        }
        drop((got, output));
        let kept = LIVE.load(Ordering::Relaxed).saturating_sub(baseline);
        let limit = FIXED_ALLOWANCE + 2 * needed + PER_STREAM * syn_streams;
        assert!(kept <= limit, "session keeps {kept} bytes, limit {limit}");
        if failed {
            break;
        }
        before = pending;
    }
    drop(session);
    let Ok(events) = expected else {
        assert!(failed, "whole: {expected:?}; in pieces: no error");
        return;
    };
    assert_eq!(events_at, events.len(), "events");
    assert_eq!(output_at, expected_output.len(), "output");

    // The output is what a client can read.
    let opened: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::StreamOpened { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let mut client = HeaderDecoder::new();
    let (mut replies, mut echoes) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < expected_output.len() {
        let (frame, used) = decode(&expected_output[at..])
            .expect("output decodes")
            .expect("output is whole frames");
        at += used;
        match frame {
            Frame::SynReply {
                stream_id,
                fin: false,
                block,
            } => {
                assert_eq!(
                    client.decode(&block).expect("SYN_REPLY block decodes"),
                    vec![]
                );
                replies.push(stream_id);
            }
            Frame::Ping { id } => echoes.push(id),
            other => panic!("unexpected {other:?} in the output"),
        }
    }
    assert_eq!(replies, opened);
    assert_eq!(echoes, pings);
});

/// The stream in pieces of the given lengths, cycled; in one piece if there are none or all are 0
/// (after the empty reads).
fn split<'a>(stream: &'a [u8], lens: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = stream;
    if lens.iter().all(|&l| l == 0) {
        pieces.extend(lens.iter().map(|_| &rest[..0]));
        pieces.push(rest);
        return pieces;
    }
    for &len in lens.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(usize::from(len).min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}
