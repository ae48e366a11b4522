//! `SealedChunk::decode` never panics on arbitrary bytes; what it accepts re-encodes to exactly the
//! input (the stored form is kept verbatim), and checking its signature and opening it with the
//! fixed keys never panic. Random bytes fail those checks; seeds written by
//! `examples/seed_corpus.rs` are valid chunks, so mutations of them reach decryption and beyond.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage_schema::SealedChunk;
use storage_schema::chunk::{HEADER_LEN, SIGNATURE_LEN};
use storage_schema_fuzz::{data_key, public_key};

fuzz_target!(|data: &[u8]| {
    let Ok(chunk) = SealedChunk::decode(data) else {
        return;
    };
    assert_eq!(
        chunk.encode(),
        data,
        "decode/encode is the identity on accepted input"
    );
    assert_eq!(chunk.encoded_len(), data.len());
    assert_eq!(
        chunk.header.ciphertext_len as usize,
        data.len() - HEADER_LEN - SIGNATURE_LEN
    );
    assert!(chunk.header.first_us <= chunk.header.last_us);
    // Both fail on anything but an intact seed (or one with only its signature bytes changed,
    // which `open` does not look at); neither may panic.
    let _ = chunk.signature_valid(public_key());
    if let Ok(events) = chunk.open(&data_key()) {
        assert_eq!(events.len(), chunk.header.events as usize);
    }
});
