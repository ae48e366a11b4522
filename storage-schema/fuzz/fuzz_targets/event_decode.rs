//! The event decoders never panic, for either layout: `event::decode_all` (format v1, events
//! inline) and `event::decode_split` (format v2, payloads then heads) on the same input (the
//! first 8 bytes, when present, are the base offset). Whatever they accept round-trips:
//! re-encoding the events with the running previous offset (the first relative to `base`)
//! decodes to the same events. The re-encoding is canonical, so it is never longer than the
//! input and is a fixed point (encode∘decode of it is identity).
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage_schema::event::{Event, decode_all, decode_split, encode_all_split};

fn encode_all(events: &[Event], base: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = base;
    for event in events {
        event.encode(prev, &mut out);
        prev = event.at_us;
    }
    out
}

/// The properties above for one layout's decoder and encoder.
fn check(
    body: &[u8],
    base: u64,
    decode: fn(&[u8], u64) -> Result<Vec<Event>, storage_schema::event::EventError>,
    encode: fn(&[Event], u64) -> Vec<u8>,
) {
    let Ok(events) = decode(body, base) else {
        return;
    };
    let mut prev = base;
    for event in &events {
        assert!(event.at_us >= prev, "decoded offsets never go backwards");
        prev = event.at_us;
    }
    let out = encode(&events, base);
    assert!(
        out.len() <= body.len(),
        "re-encoding is canonical, so never longer"
    );
    let again = decode(&out, base).expect("re-encoded events decode");
    assert_eq!(again, events);
    assert_eq!(encode(&again, base), out, "canonical form is a fixed point");
}

fuzz_target!(|data: &[u8]| {
    let (base, body) = match data.split_first_chunk::<8>() {
        Some((base, body)) => (u64::from_be_bytes(*base), body),
        None => (0, data),
    };
    check(body, base, decode_all, encode_all);
    check(body, base, decode_split, encode_all_split);
});
