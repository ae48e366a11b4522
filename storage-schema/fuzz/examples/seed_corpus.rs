//! Writes small seed corpora of valid inputs (made with the fixed fuzz keys) into
//! `corpus/<target>/`, so mutations start from inputs that get past the parsers:
//!
//! ```text
//! cargo run --example seed_corpus      # from storage-schema/fuzz
//! ```
//! `chunk_open` is structure-aware (its input is `arbitrary`-decoded) and needs no seeds.

use std::fs;
use std::path::Path;

use storage_schema::{
    Direction, Event, EventKind, ExitInfo, ForwardOutcome, SealPayload, SealState, SealedChunk, Stream,
    StreamBytes, event, varint,
};
use storage_schema_fuzz::{data_key, genesis, session, signing_key};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn sample_events(base: u64) -> Vec<Event> {
    let kinds = vec![
        EventKind::Resize { cols: 80, rows: 24 },
        EventKind::Data {
            stream: Stream::Stdout,
            bytes: b"\x1b[1;32muser@pod\x1b[0m:~$ ".to_vec(),
        },
        EventKind::Data {
            stream: Stream::Stdin,
            bytes: b"ls -l\r".to_vec(),
        },
        EventKind::Data {
            stream: Stream::Stdout,
            bytes: b"-rw-r--r-- 1 root root 4096 Nov 23 15:36 Cargo.toml\r\n".to_vec(),
        },
        EventKind::Data {
            stream: Stream::Stderr,
            bytes: b"ls: cannot access 'x': No such file\r\n".to_vec(),
        },
        EventKind::Marker {
            text: "grant expired".into(),
        },
        EventKind::StreamClose {
            stream: Stream::Stdin,
        },
        EventKind::PortForwardOpen {
            conn: 1,
            port: 8080,
        },
        EventKind::PortForwardData {
            conn: 1,
            direction: Direction::ToPod,
            bytes: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        },
        EventKind::PortForwardClose {
            conn: 1,
            error: String::new(),
        },
        EventKind::PortForwardBytes {
            conn: 1,
            to_pod: 18,
            from_pod: 4096,
        },
        EventKind::PortForwardHalfClose {
            conn: 1,
            direction: Direction::ToPod,
        },
        EventKind::PortForwardEnd {
            conn: 1,
            outcome: ForwardOutcome::Refused,
            message: "port 5432 is not allowed".into(),
        },
        EventKind::Unknown {
            tag: 200,
            payload: vec![1, 2, 3],
        },
        EventKind::Exit {
            code: -9,
            message: "killed".into(),
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            at_us: base + (i as u64) * 1500,
            kind,
        })
        .collect()
}

fn encode(events: &[Event], base: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = base;
    for event in events {
        event.encode(prev, &mut out);
        prev = event.at_us;
    }
    out
}

fn main() {
    for (i, value) in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX]
        .into_iter()
        .enumerate()
    {
        let mut out = Vec::new();
        varint::encode(value, &mut out);
        write("varint", &format!("seed-{i}"), &out);
    }

    for (i, base) in [0u64, 1_000_000, u64::MAX - 100_000]
        .into_iter()
        .enumerate()
    {
        let events = sample_events(base);
        let mut input = base.to_be_bytes().to_vec();
        input.extend_from_slice(&encode(&events, base));
        write("event_decode", &format!("seed-{i}"), &input);
    }
    write(
        "event_decode",
        "seed-short",
        &encode(&sample_events(0)[1..3], 0),
    );
    // The same events in format v2's layout, which the target decodes too.
    let mut input = 0u64.to_be_bytes().to_vec();
    input.extend_from_slice(&event::encode_all_split(&sample_events(0), 0));
    write("event_decode", "seed-split", &input);

    let mut compressor = zstd::bulk::Compressor::new(3).unwrap();
    let mut prev = genesis();
    for (seq, events) in [
        vec![],
        sample_events(0),
        sample_events(5_000_000)[1..4].to_vec(),
    ]
    .into_iter()
    .enumerate()
    {
        let base = events.first().map_or(0, |e| e.at_us);
        let last = events.last().map_or(base, |e| e.at_us);
        let chunk = SealedChunk::seal(
            session(),
            seq as u64,
            prev,
            (base, last, events.len() as u32),
            &event::encode_all_split(&events, base),
            &mut compressor,
            &data_key(),
            signing_key(),
        )
        .unwrap();
        prev = chunk.digest();
        write("chunk_decode", &format!("seed-{seq}"), &chunk.encode());
    }

    let seal = SealPayload {
        format: storage_schema::FORMAT_VERSION,
        session: session(),
        state: SealState::Sealed,
        chunks: 3,
        final_digest: prev.to_hex(),
        duration_us: 16_500,
        sealed_at_us: 1_790_000_000_000_000,
        exit: Some(ExitInfo {
            code: 0,
            message: String::new(),
        }),
        bytes: StreamBytes {
            stdin: 6,
            stdout: 120,
            stderr: 37,
            port_forward: 18,
        },
        events: 15,
        commands: None,
        port_forward: None,
    };
    write("seal_parse", "seed-sealed", &seal.sign(signing_key()));
    let interrupted = SealPayload {
        state: SealState::Interrupted,
        exit: None,
        ..seal
    };
    write(
        "seal_parse",
        "seed-interrupted",
        &interrupted.sign(signing_key()),
    );
    println!(
        "seed corpora written under {}/corpus",
        env!("CARGO_MANIFEST_DIR")
    );
}
