//! `SealPayload::verify` and `SealPayload::signer_of` never panic on arbitrary bytes. A seal that
//! verifies names the fixed key, and re-signing its payload gives a seal that verifies to the same
//! payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage_schema::SealPayload;
use storage_schema_fuzz::{SIGNING_ID, public_key, signing_key};

fuzz_target!(|data: &[u8]| {
    let signer = SealPayload::signer_of(data);
    if let Ok(payload) = SealPayload::verify(data, public_key()) {
        assert_eq!(signer.as_deref(), Ok(SIGNING_ID));
        let resigned = payload.sign(signing_key());
        assert_eq!(
            SealPayload::verify(&resigned, public_key()),
            Ok(payload.clone())
        );
        assert_eq!(
            payload.final_digest().is_some(),
            payload.final_digest.len() == 64
                && payload.final_digest.bytes().all(|b| b.is_ascii_hexdigit())
        );
    }
});
