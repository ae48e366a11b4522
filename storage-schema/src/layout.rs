//! Where a session's objects live in the store. One prefix per session so a session can be
//! listed, copied or deleted as a unit:
//!
//! ```text
//! sessions/<id>/meta.json              plaintext metadata (exact bytes are chained)
//! sessions/<id>/dek.json               the data key, wrapped by a KEK (delete = crypto-shred)
//! sessions/<id>/chunks/<seq:020>       encrypted, signed, chained event chunks
//! sessions/<id>/commands             encrypted commands typed (optional, before the seal)
//! sessions/<id>/seal.json              signed end-of-session summary
//! ended/<yyyy-mm-dd>/<id>              empty marker: the session was sealed that day (UTC)
//! ```
//! Every object is written once with a create-only put and never modified. The `ended/` markers
//! are a feed for readers that follow the store (the search index): they list a day's markers
//! instead of every session. They are a convenience, not evidence: nothing is verified through
//! them, and a reader that misses one finds the session on its next full listing.

use crate::session::SessionId;

pub const SESSIONS: &str = "sessions";

pub fn session_dir(id: SessionId) -> String {
    format!("{SESSIONS}/{id}")
}

pub fn meta(id: SessionId) -> String {
    format!("{SESSIONS}/{id}/meta.json")
}

pub fn dek(id: SessionId) -> String {
    format!("{SESSIONS}/{id}/dek.json")
}

pub fn chunks_dir(id: SessionId) -> String {
    format!("{SESSIONS}/{id}/chunks")
}

pub fn chunk(id: SessionId, seq: u64) -> String {
    format!("{SESSIONS}/{id}/chunks/{seq:020}")
}

pub fn commands(id: SessionId) -> String {
    format!("{SESSIONS}/{id}/commands")
}

pub const ENDED: &str = "ended";

/// The marker of a session sealed on `day` (`yyyy-mm-dd`, UTC).
pub fn ended(day: &str, id: SessionId) -> String {
    format!("{ENDED}/{day}/{id}")
}

/// The UTC day (`yyyy-mm-dd`) of a time in µs since the Unix epoch.
pub fn day_of(unix_us: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(unix_us);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_string()
}

pub fn seal(id: SessionId) -> String {
    format!("{SESSIONS}/{id}/seal.json")
}

/// The sequence number a chunk object's name holds, if it is one.
pub fn parse_chunk_name(name: &str) -> Option<u64> {
    if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}
