//! Where a session's objects live in the store. One prefix per session so a session can be
//! listed, copied or deleted as a unit:
//!
//! ```text
//! sessions/<id>/meta.json              plaintext metadata (exact bytes are chained)
//! sessions/<id>/dek.json               the data key, wrapped by a KEK (delete = crypto-shred)
//! sessions/<id>/chunks/<seq:020>       encrypted, signed, chained event chunks
//! sessions/<id>/commands              encrypted commands typed (optional, before the seal)
//! sessions/<id>/seal.json              signed end-of-session summary
//! ```
//! Every object is written once with a create-only put and never modified.

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
