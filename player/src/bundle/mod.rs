//! Evidence bundles: one tar file an auditor can check without kubetape's store or keys.
//!
//! A bundle holds recordings and audit streams *exactly as stored* (their objects under
//! `store/`, named by their store keys, so the extracted `store/` is itself a `file://` store
//! that `kubetape verify` reads), the public keys that signed them (`keys/<id>.pub` in
//! `kubetape keys export-pub` form, and `keys/<id>.pem` for openssl), optional readable
//! renderings, a README, and three members that describe the rest:
//!
//! ```text
//! manifest.json   what was selected, by whom, when, on which host, with which kubetape, and
//!                 every other member's path, size and SHA-256
//! manifest.sig    64-byte Ed25519 signature over SIGN_DOMAIN ‖ manifest.json (the exporter's
//!                 current signing key)
//! SHA256SUMS      coreutils form (`sha256sum -c`), covering every member but itself
//! ```
//!
//! This module is the format only (no store, no keyring): [`manifest`] (the types, hashing),
//! [`writer`] (the tar), [`reader`] (the defensive tar parser: outside input, fuzzed) and
//! [`checks`] (signature, members, sums). `kubetape export --bundle` and `kubetape verify
//! --bundle` (`cmd/bundle.rs`, `cmd/bundle_verify.rs`) are the command line around it.

pub mod checks;
pub mod manifest;
pub mod pem;
pub mod reader;
pub mod readme;
pub mod writer;

/// The manifest's member name.
pub const MANIFEST: &str = "manifest.json";
/// The signature's member name.
pub const SIGNATURE: &str = "manifest.sig";
/// The coreutils checksum list's member name.
pub const SUMS: &str = "SHA256SUMS";
/// The auditor's instructions.
pub const README: &str = "README.txt";
/// Where the store's objects lie in a bundle: `store/<store key>`.
pub const STORE_DIR: &str = "store";
/// Public keys: `keys/<id>.pub` and `keys/<id>.pem`.
pub const KEYS_DIR: &str = "keys";
/// Readable renderings: `renderings/<short id>.txt`, `.cast`, and the matching audit records.
pub const RENDERINGS_DIR: &str = "renderings";

/// What the manifest signature signs before the manifest's bytes: keeps a manifest signature
/// from passing as a chunk's or a seal's (those have domains of their own). Ends in a newline
/// so `printf` can reproduce it for openssl (README.txt).
pub const SIGN_DOMAIN: &[u8] = b"kubetape/bundle-manifest/v1\n";

/// The manifest's `format` value.
pub const FORMAT: &str = "kubetape-bundle/v1";

/// The members the manifest does not list: itself, its signature and the sums.
pub fn is_envelope(path: &str) -> bool {
    path == MANIFEST || path == SIGNATURE || path == SUMS
}

/// Why a bundle could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a readable tar archive: {0}")]
    Tar(String),
    #[error("member {path:?}: {reason}")]
    Member { path: String, reason: String },
    #[error("the bundle has more than {0} members")]
    TooManyMembers(usize),
    #[error("the bundle's members add up to more than {0} bytes")]
    TooLarge(u64),
}
