//! Structure-aware fuzzing of sealing and opening chunks, with the fixed keys.
//!
//! - `Tamper`: fuzzer-chosen events are sealed into a valid chunk (which must open to exactly those
//!   events, with a valid signature); then fuzzer-chosen edits (bit flips, overwrites, truncation,
//!   appended bytes) are applied to the stored bytes. An edited chunk must never be accepted: if
//!   the header or ciphertext changed, decoding or opening fails and the signature is invalid; if
//!   only the signature bytes changed (the AEAD does not cover them) the signature is invalid.
//! - `Plaintext`: arbitrary bytes are sealed as a chunk's plaintext (header fields also chosen by
//!   the fuzzer), so decryption succeeds and decompression and the event decoder see them; `open`
//!   must return `Err`, not panic, when they are not the events the header declares.
//! - `Body`: the body under the AEAD is made by hand (compressed flag, plaintext length and body
//!   bytes chosen by the fuzzer, optionally a real zstd frame then edited), encrypted and signed
//!   per the documented layout of format v1 or v2 (fuzzer's choice), so the zstd decoder, both
//!   event layouts' decoders and the plaintext-length checks see hostile input that `seal` would
//!   never produce. The hand-made chunk must verify (a check of the layout as
//!   documented) and `open` must not panic.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use storage_schema::chunk::{HEADER_LEN, MAX_PLAINTEXT, SIGNATURE_LEN};
use storage_schema::{
    ChunkHeader, Direction, Event, EventKind, ForwardOutcome, SealedChunk, Stream, event,
};
use storage_schema_fuzz::{DEK_BYTES, data_key, genesis, public_key, session, signing_key};

#[derive(Arbitrary, Debug)]
enum Input {
    Tamper {
        seq: u64,
        base_us: u32,
        events: Vec<(u16, Kind)>,
        edits: Vec<Edit>,
    },
    Plaintext {
        seq: u64,
        first_us: u64,
        span: u32,
        events: u32,
        level: Level,
        plaintext: Vec<u8>,
    },
    Body(HandMade),
}

/// A chunk whose body under the AEAD is made by hand (see `Input::Body`).
#[derive(Arbitrary, Debug)]
struct HandMade {
    /// Format v1 (events inline) rather than v2 (payloads, then heads).
    v1: bool,
    seq: u64,
    first_us: u64,
    span: u32,
    events: u32,
    compressed: bool,
    plaintext_len: Len,
    body: Body,
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Data {
        stream: u8,
        bytes: Vec<u8>,
    },
    Resize {
        cols: u16,
        rows: u16,
    },
    Exit {
        code: i32,
        message: String,
    },
    Marker {
        text: String,
    },
    StreamClose {
        stream: u8,
    },
    PortForwardOpen {
        conn: u64,
        port: u16,
    },
    PortForwardData {
        conn: u64,
        from_pod: bool,
        bytes: Vec<u8>,
    },
    PortForwardClose {
        conn: u64,
        error: String,
    },
    PortForwardBytes {
        conn: u64,
        to_pod: u64,
        from_pod: u64,
    },
    PortForwardHalfClose {
        conn: u64,
        from_pod: bool,
    },
    PortForwardEnd {
        conn: u64,
        outcome: u8,
        message: String,
    },
    Unknown {
        tag: u8,
        payload: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Flip { at: u32, mask: u8 },
    Set { at: u32, byte: u8 },
    Truncate { len: u32 },
    Append { bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Level {
    Fast,
    Default,
    High,
}

#[derive(Arbitrary, Debug)]
enum Len {
    /// The true decompressed (or body) length.
    Exact,
    /// Off by a small amount from the true length.
    Delta(i16),
    /// Anything (the header parser refuses more than `MAX_PLAINTEXT`).
    Any(u32),
}

#[derive(Arbitrary, Debug)]
enum Body {
    /// Bytes as they are.
    Raw(Vec<u8>),
    /// A real zstd frame of these bytes, then edited.
    Zstd { plain: Vec<u8>, edits: Vec<Edit> },
}

fn stream(n: u8) -> Stream {
    match n % 3 {
        0 => Stream::Stdin,
        1 => Stream::Stdout,
        _ => Stream::Stderr,
    }
}

fn kind(k: Kind) -> EventKind {
    match k {
        Kind::Data { stream: s, bytes } => EventKind::Data {
            stream: stream(s),
            bytes,
        },
        Kind::Resize { cols, rows } => EventKind::Resize { cols, rows },
        Kind::Exit { code, message } => EventKind::Exit { code, message },
        Kind::Marker { text } => EventKind::Marker { text },
        Kind::StreamClose { stream: s } => EventKind::StreamClose { stream: stream(s) },
        Kind::PortForwardOpen { conn, port } => EventKind::PortForwardOpen { conn, port },
        Kind::PortForwardData {
            conn,
            from_pod,
            bytes,
        } => EventKind::PortForwardData {
            conn,
            direction: if from_pod {
                Direction::FromPod
            } else {
                Direction::ToPod
            },
            bytes,
        },
        Kind::PortForwardClose { conn, error } => EventKind::PortForwardClose { conn, error },
        Kind::PortForwardBytes {
            conn,
            to_pod,
            from_pod,
        } => EventKind::PortForwardBytes {
            conn,
            to_pod,
            from_pod,
        },
        Kind::PortForwardHalfClose { conn, from_pod } => EventKind::PortForwardHalfClose {
            conn,
            direction: if from_pod {
                Direction::FromPod
            } else {
                Direction::ToPod
            },
        },
        Kind::PortForwardEnd {
            conn,
            outcome,
            message,
        } => EventKind::PortForwardEnd {
            conn,
            outcome: ForwardOutcome::from_code(outcome),
            message,
        },
        // Tags 0..=11 and 16..=18 are taken (0 reserved); unknown ones are 12..=15, 19..=255.
        Kind::Unknown { tag, payload } => EventKind::Unknown {
            tag: match 12 + tag % 241 {
                t @ 16.. => t + 3,
                t => t,
            },
            payload,
        },
    }
}

thread_local! {
    // Making a compressor (a level-19 one above all) costs more than a typical run; keep them.
    static COMPRESSORS: RefCell<Vec<zstd::bulk::Compressor<'static>>> = RefCell::new(
        [-5, 3, 19].into_iter().map(|level| zstd::bulk::Compressor::new(level).unwrap()).collect(),
    );
}

fn with_compressor<R>(
    level: Level,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> R,
) -> R {
    COMPRESSORS.with(|c| f(&mut c.borrow_mut()[level as usize]))
}

fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
    for edit in edits {
        match edit {
            Edit::Flip { at, mask } if !bytes.is_empty() => {
                let i = *at as usize % bytes.len();
                bytes[i] ^= mask;
            }
            Edit::Set { at, byte } if !bytes.is_empty() => {
                let i = *at as usize % bytes.len();
                bytes[i] = *byte;
            }
            Edit::Truncate { len } => bytes.truncate(*len as usize),
            Edit::Append { bytes: extra } => bytes.extend_from_slice(extra),
            Edit::Flip { .. } | Edit::Set { .. } => {}
        }
    }
}

fn tamper(seq: u64, base_us: u32, kinds: Vec<(u16, Kind)>, edits: &[Edit]) {
    let mut events = Vec::with_capacity(kinds.len());
    let mut at = u64::from(base_us);
    for (delta, k) in kinds {
        at += u64::from(delta);
        events.push(Event {
            at_us: at,
            kind: kind(k),
        });
    }
    // A chunk's first event is stored relative to the chunk's first offset (so its delta is 0).
    let first = events.first().map_or(u64::from(base_us), |e| e.at_us);
    let last = events.last().map_or(first, |e| e.at_us);
    let plain = event::encode_all_split(&events, first);
    let chunk = with_compressor(Level::Default, |compressor| {
        SealedChunk::seal(
            session(),
            seq,
            genesis(),
            (first, last, events.len() as u32),
            &plain,
            compressor,
            &data_key(),
            signing_key(),
        )
    })
    .expect("sealing valid events");
    let original = chunk.encode();
    let decoded = SealedChunk::decode(&original).expect("a sealed chunk decodes");
    assert_eq!(decoded, chunk);
    assert!(
        decoded.signature_valid(public_key()),
        "a sealed chunk is validly signed"
    );
    assert_eq!(
        decoded.open(&data_key()).expect("a sealed chunk opens"),
        events
    );

    let mut edited = original.clone();
    apply(&mut edited, edits);
    let Ok(chunk) = SealedChunk::decode(&edited) else {
        assert_ne!(edited, original, "the intact chunk decodes");
        return;
    };
    let signed = chunk.signature_valid(public_key());
    let opened = chunk.open(&data_key());
    if edited == original {
        assert!(signed);
        assert_eq!(opened.expect("intact chunk opens"), events);
        return;
    }
    assert!(!signed, "an edited chunk must not carry a valid signature");
    let body_end = edited.len() - SIGNATURE_LEN;
    if edited.len() == original.len() && edited[..body_end] == original[..body_end] {
        // Only the signature bytes changed: the AEAD does not cover them, so it still opens.
        assert_eq!(opened.expect("only the signature changed"), events);
    } else {
        assert!(
            opened.is_err(),
            "an edited header or ciphertext must not decrypt: {opened:?}"
        );
    }
}

fn plaintext(seq: u64, first_us: u64, span: u32, count: u32, level: Level, plain: &[u8]) {
    let last_us = first_us.saturating_add(u64::from(span));
    let sealed = with_compressor(level, |compressor| {
        SealedChunk::seal(
            session(),
            seq,
            genesis(),
            (first_us, last_us, count),
            plain,
            compressor,
            &data_key(),
            signing_key(),
        )
    });
    let Ok(chunk) = sealed else {
        return;
    };
    let direct = chunk.open(&data_key());
    let stored = SealedChunk::decode(&chunk.encode()).expect("a sealed chunk decodes");
    assert!(stored.signature_valid(public_key()));
    assert_eq!(stored.open(&data_key()), direct);
    if let Ok(events) = direct {
        // Accepted: the plaintext really is those events, as the header declares.
        assert_eq!(events.len(), count as usize);
        assert_eq!(events.first().map_or(first_us, |e| e.at_us), first_us);
        assert_eq!(events.last().map_or(first_us, |e| e.at_us), last_us);
        let again = event::encode_all_split(&events, first_us);
        assert!(again.len() <= plain.len());
    }
}

fn body(hand_made: HandMade) {
    let HandMade {
        v1,
        seq,
        first_us,
        span,
        events,
        compressed,
        plaintext_len: len,
        body,
    } = hand_made;
    let (body, true_len) = match body {
        Body::Raw(bytes) => {
            let n = bytes.len();
            (bytes, n)
        }
        Body::Zstd { plain, edits } => {
            let mut frame = zstd::bulk::compress(&plain, 1).unwrap();
            apply(&mut frame, &edits);
            (frame, plain.len())
        }
    };
    let plaintext_len = match len {
        Len::Exact => true_len as u32,
        Len::Delta(d) => (true_len as i64 + i64::from(d)).clamp(0, i64::from(MAX_PLAINTEXT)) as u32,
        Len::Any(n) => n,
    };
    let version = if v1 { 1 } else { 2 };
    let header = ChunkHeader {
        version,
        compressed,
        session: session(),
        seq,
        first_us,
        last_us: first_us.saturating_add(u64::from(span)),
        prev: genesis(),
        events,
        plaintext_len,
        ciphertext_len: (body.len() + 16) as u32,
    };
    let header_bytes = header.to_bytes();
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(b"KTck");
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    let ciphertext = storage_schema::aead::seal(&DEK_BYTES, nonce, &header_bytes, &body).unwrap();
    let mut stored = Vec::with_capacity(HEADER_LEN + ciphertext.len() + SIGNATURE_LEN);
    stored.extend_from_slice(&header_bytes);
    stored.extend_from_slice(&ciphertext);
    stored.extend_from_slice(&[0; SIGNATURE_LEN]);
    let Ok(unsigned) = SealedChunk::decode(&stored) else {
        assert!(
            plaintext_len > MAX_PLAINTEXT,
            "only an oversized plaintext length is refused"
        );
        return;
    };
    let domain = format!("kubetape/chunk/v{version}");
    let signature = signing_key().sign(domain.as_bytes(), &unsigned.digest().0);
    let at = stored.len() - SIGNATURE_LEN;
    stored[at..].copy_from_slice(&signature);
    let chunk = SealedChunk::decode(&stored).unwrap();
    assert!(
        chunk.signature_valid(public_key()),
        "a chunk made per the documented layout verifies"
    );
    if let Ok(events) = chunk.open(&data_key()) {
        assert_eq!(events.len(), chunk.header.events as usize);
        if compressed {
            assert!(
                plaintext_len as usize >= events.len() * 3,
                "each event is at least 3 bytes"
            );
        }
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Tamper {
            seq,
            base_us,
            events,
            edits,
        } => tamper(seq, base_us, events, &edits),
        Input::Plaintext {
            seq,
            first_us,
            span,
            events,
            level,
            plaintext: plain,
        } => plaintext(seq, first_us, span, events, level, &plain),
        Input::Body(hand_made) => body(hand_made),
    }
});
