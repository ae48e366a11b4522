//! The store's ledger entries as the gateway decodes them (`storage_schema::store::ledger`), on
//! arbitrary input split into `name \n bytes`: anyone who can write to the bucket writes these.
//! - `ledger::check_name` never panics, and a name it accepts is `/`-separated segments of
//!   `[A-Za-z0-9._-]`, none empty, `.` or `..` (it cannot leave its ledger's prefix);
//! - decoding a JIT object (`jit::Stored`) or a revocation entry never panics;
//! - a decoded JIT request sits under its own id and has a TTL of 1 s..24 h; a decision is only
//!   ever decoded from `<id>/decision.json` and a request from `<id>/request.json`;
//! - whatever decodes, encoded again as the gateway writes it, decodes to the same value.
#![no_main]

use gateway::jit::Stored;
use gateway::revocation::Entry as Revocation;
use libfuzzer_sys::fuzz_target;
use storage_schema::store::ledger::{self, Entry as _};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let name = String::from_utf8_lossy(&data[..split]);
    let bytes = data.get(split + 1..).unwrap_or_default();

    if ledger::check_name(&name).is_ok() {
        for segment in name.split('/') {
            assert!(!segment.is_empty() && segment != "." && segment != "..");
            assert!(
                segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            );
        }
    }

    if let Ok(stored) = Stored::decode(&name, bytes) {
        assert!(Stored::is_entry(&name));
        let (id, file) = name.split_once('/').expect("an entry name has a directory");
        let again = match &stored {
            Stored::Request(r) => {
                assert_eq!(file, "request.json");
                assert_eq!(r.id, id);
                assert!((1..=86_400).contains(&r.ttl_secs));
                serde_json::to_vec_pretty(r).unwrap()
            }
            Stored::Decision(v) => {
                assert_eq!(file, "decision.json");
                serde_json::to_vec_pretty(v).unwrap()
            }
        };
        assert_eq!(Stored::decode(&name, &again).unwrap(), stored);
    }

    if let Ok(entry) = Revocation::decode(&name, bytes) {
        let again = serde_json::to_vec_pretty(&entry).unwrap();
        assert_eq!(Revocation::decode(&name, &again).unwrap(), entry);
    }
});
