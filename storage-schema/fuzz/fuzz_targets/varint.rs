//! `varint::decode` never panics, and what it accepts round-trips:
//! - a decoded value re-encodes canonically (never longer than the input used) and decodes back;
//! - a canonical input (no trailing 0x00 group) re-encodes to exactly the bytes used;
//! - `Incomplete` means "fewer than ten bytes, all with the continuation bit": read more;
//! - any u64 (the first 8 input bytes) encodes to ≤ 10 bytes and decodes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage_schema::varint::{self, MAX_LEN, VarintError};

fuzz_target!(|data: &[u8]| {
    match varint::decode(data) {
        Ok((value, used)) => {
            assert!((1..=MAX_LEN).contains(&used) && used <= data.len());
            let mut enc = Vec::new();
            varint::encode(value, &mut enc);
            assert!(enc.len() <= used, "canonical encoding is the shortest");
            assert_eq!(varint::decode(&enc), Ok((value, enc.len())));
            let canonical = used == 1 || data[used - 1] != 0;
            if canonical {
                assert_eq!(
                    &enc[..],
                    &data[..used],
                    "canonical input re-encodes identically"
                );
            }
        }
        Err(VarintError::Incomplete) => {
            assert!(data.len() < MAX_LEN && data.iter().all(|b| b & 0x80 != 0));
        }
        Err(VarintError::Overflow) => {
            assert!(data.len() >= MAX_LEN);
        }
    }

    if let Some(first) = data.get(..8) {
        let value = u64::from_le_bytes(first.try_into().unwrap());
        let mut enc = Vec::new();
        varint::encode(value, &mut enc);
        assert!(enc.len() <= MAX_LEN);
        // Trailing bytes after a varint are not its business.
        enc.extend_from_slice(&data[8..]);
        let len = enc.len() - (data.len() - 8);
        assert_eq!(varint::decode(&enc), Ok((value, len)));
    }
});
