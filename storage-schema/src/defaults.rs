//! Where recordings and keys live when nobody says otherwise, shared by every kubetape binary so
//! that `kubetape ls` finds what `kubetape record` or the quickstart gateway wrote.
//!
//! - store: `$XDG_DATA_HOME/kubetape/store` (default `~/.local/share/kubetape/store`)
//! - keys:  `$XDG_CONFIG_HOME/kubetape/keys` (default `~/.config/kubetape/keys`)

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

/// The default keyring directory.
pub fn keys_dir() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join("kubetape/keys")
}
