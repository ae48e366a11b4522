//! The compliance ledgers' entries as gateways (retention) and `kubetape` decode them, on
//! arbitrary input split into `name \n bytes`: anyone who can write to the bucket writes these.
//! - decoding a hold, shred record, retention pass record or reads-log entry never panics;
//! - a `place` hold that decodes has a non-empty selector and is stored under its hold's id; a
//!   shred record is stored under its session's id; a pass record under its pass's id;
//! - whatever decodes, encoded again as kubetape writes it, decodes to the same value;
//! - the holds in force after any decoded entries, and whether one covers a stream, never panic;
//! - a retention lease body either parses or is treated as held (never a panic).
#![no_main]

use gateway::retention::lease::LeaseBody;
use libfuzzer_sys::fuzz_target;
use storage_schema::SessionId;
use storage_schema::store::holds::{HoldAction, HoldEntry, Holds};
use storage_schema::store::ledger::Entry as _;
use storage_schema::store::reads::ReadEntry;
use storage_schema::store::retention::PassRecord;
use storage_schema::store::shred::ShredRecord;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let name = String::from_utf8_lossy(&data[..split]);
    let bytes = data.get(split + 1..).unwrap_or_default();

    if let Ok(hold) = HoldEntry::decode(&name, bytes) {
        if hold.action == HoldAction::Place {
            let select = hold.select.as_ref().expect("a place entry has a selector");
            assert!(!select.is_empty());
            assert_eq!(name.strip_suffix(".json"), Some(hold.hold.as_str()));
        }
        let again = serde_json::to_vec_pretty(&hold).unwrap();
        assert_eq!(HoldEntry::decode(&name, &again).unwrap(), hold);
        let holds = Holds::from_entries(std::slice::from_ref(&hold));
        let _ = holds.covering(SessionId::from_bytes([7; 16]), None);
    }

    if let Ok(record) = ShredRecord::decode(&name, bytes) {
        assert_eq!(name, format!("{}.json", record.session));
        let again = serde_json::to_vec_pretty(&record).unwrap();
        assert_eq!(ShredRecord::decode(&name, &again).unwrap(), record);
        let _ = record.describe();
    }

    if let Ok(record) = PassRecord::decode(&name, bytes) {
        let (pass, again) = match &record {
            PassRecord::Plan(p) => (&p.pass, serde_json::to_vec_pretty(p).unwrap()),
            PassRecord::Result(r) => (&r.pass, serde_json::to_vec_pretty(r).unwrap()),
        };
        assert_eq!(name.split_once('/').map(|(p, _)| p), Some(pass.as_str()));
        assert_eq!(PassRecord::decode(&name, &again).unwrap(), record);
    }

    if let Ok(entry) = ReadEntry::decode(&name, bytes) {
        let again = serde_json::to_vec_pretty(&entry).unwrap();
        assert_eq!(ReadEntry::decode(&name, &again).unwrap(), entry);
    }

    let _ = serde_json::from_slice::<LeaseBody>(bytes);
});
