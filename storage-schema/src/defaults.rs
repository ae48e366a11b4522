//! Where recordings and keys live when nobody says otherwise, shared by every kubetape binary so
//! that `kubetape ls` finds what `kubetape record` or the quickstart gateway wrote.
//!
//! - store: `$XDG_DATA_HOME/kubetape/store` (default `~/.local/share/kubetape/store`)
//! - spool (the gateway's, for a store outage): `$XDG_DATA_HOME/kubetape/spool`
//! - keys:  `$XDG_CONFIG_HOME/kubetape/keys` (default `~/.config/kubetape/keys`)
//! - search index: `$XDG_CACHE_HOME/kubetape/index/<store hash>` (default under `~/.cache`)

use std::path::PathBuf;

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"))
            .join(fallback),
    }
}

/// The default store, as a `file://` URL.
pub fn store_url() -> String {
    format!(
        "file://{}",
        xdg("XDG_DATA_HOME", ".local/share")
            .join("kubetape/store")
            .display()
    )
}

/// The default spool directory of a gateway (where writes wait while the store is down).
pub fn spool_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join("kubetape/spool")
}

/// The default keyring directory.
pub fn keys_dir() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join("kubetape/keys")
}

/// The default directory of `kubetape`'s local search index for the store at `store_url`:
/// `$XDG_CACHE_HOME/kubetape/index/<hash of the URL>` (one index per store; rebuildable, so a
/// cache).
pub fn index_dir(store_url: &str) -> PathBuf {
    use sha2::Digest as _;
    let hash = hex::encode(&sha2::Sha256::digest(store_url.as_bytes())[..8]);
    xdg("XDG_CACHE_HOME", ".cache")
        .join("kubetape/index")
        .join(hash)
}
