//! `kubetape verify --bundle` reads a tar file an auditor was handed: outside input.
//! - the reader (`player::bundle::reader::read`) never panics, whatever the bytes;
//! - what it accepts holds only safe, distinct paths ([`check_path`]) within the limits, each
//!   with a 64-hex-digit hash;
//! - the checks (`player::bundle::checks::check`) never panic on what the reader accepted, and
//!   never pass a bundle whose manifest has no valid signature (no key material is fuzzed, so
//!   nothing random can pass).
#![no_main]

use libfuzzer_sys::fuzz_target;
use player::bundle::checks;
use player::bundle::manifest::check_path;
use player::bundle::reader::{Limits, read};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_members: 64,
        max_member_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
    };
    let Ok(bundle) = read(data, None, &limits) else {
        return;
    };
    assert!(bundle.members.len() <= limits.max_members);
    for (path, seen) in &bundle.members {
        assert!(check_path(path).is_ok(), "{path:?}");
        assert!(seen.size <= limits.max_member_bytes);
        assert_eq!(seen.sha256.len(), 64);
    }
    for path in bundle.kept.keys() {
        assert!(bundle.members.contains_key(path));
    }
    let checked = checks::check(&bundle, None);
    if checked.passed() {
        // Only a bundle signed by a key it carries can pass without --pubkey: then the
        // signature verified over the manifest it carries.
        assert!(checked.signed_by.is_some() && checked.manifest.is_some());
    }
    for f in &checked.findings {
        assert!(!f.subject.is_empty());
    }
});
