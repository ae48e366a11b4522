//! `README.txt`: what an auditor reads first, saying how to check the bundle with coreutils and
//! OpenSSL alone. `player/tests/bundle.rs` runs those very commands (`sha256sum -c`, `openssl
//! pkeyutl -verify` with the `.pem` key) on a bundle, and on one with an edited manifest.

/// README.txt: how an auditor checks and reads the bundle without kubetape.
pub fn text(signing_key: &str) -> String {
    let domain = String::from_utf8_lossy(super::SIGN_DOMAIN);
    let domain = domain.trim_end();
    format!(
        "\
kubetape evidence bundle
========================

What is here
  manifest.json    what was selected (and how), by whom, when, on which host, with which
                   kubetape version, and the size and SHA-256 of every other member
  manifest.sig     Ed25519 signature (64 raw bytes) over the manifest, by key {signing_key}
  SHA256SUMS       SHA-256 of every member but itself (coreutils format)
  keys/ID.pub      the public signing keys (kubetape format), keys/ID.pem the same as PEM
  store/           the recordings and the gateways' audit streams exactly as they were stored
                   (encrypted, signed, hash-chained chunks and signed seals), under their
                   store paths; store/jit/ holds the JIT access requests and their decisions
  renderings/      readable copies: SHORT-ID.txt (the terminal output as text), SHORT-ID.cast
                   (asciicast v2: `asciinema play FILE`), audit-records.jsonl (the matching
                   audit records, one JSON object per line). Renderings are a convenience; the
                   recordings under store/ are the evidence.

Checking it without kubetape
  1. Every member is intact:
       sha256sum -c SHA256SUMS
  2. The manifest is authentic (OpenSSL 3): the signature covers the line
     \"{domain}\" (with its newline) followed by manifest.json:
       {{ printf '{domain}\\n'; cat manifest.json; }} > signed.bin
       openssl pkeyutl -verify -pubin -inkey keys/{signing_key}.pem -rawin \\
           -in signed.bin -sigfile manifest.sig
     Compare the key with one you obtained from the organisation another way
     (`kubetape keys export-pub` on their side): a key that comes inside the bundle proves
     only that the bundle is whole, not who made it.
  3. Every file is listed in manifest.json (\"members\") and nothing else is present.

Checking it with kubetape (no store, no private key needed)
  kubetape verify --bundle THIS.tar --pubkey THEIR-KEY.pub
  checks all of the above and, in addition, every recording's chunks, chain, signatures and
  seal, and every audit stream, and says which sessions were crypto-shredded.
"
    )
}
