//! Terminal emulation (vt100), keyframes for seeking and command extraction, shared by the gateway
//! (which indexes commands as it seals) and the player (which replays and searches them).
//!
//! The crate does no I/O and never pulls in tokio: callers read a session with
//! `storage_schema::store::SessionReader` and hand events (or a closure returning a chunk's
//! events) to the types here.
//!
//! # Layout
//! - [`term`]: [`Terminal`], `vt100` behind clamped sizes and a panic guard; screen text, cursor,
//!   alternate-screen flag, a formatted dump for renderers.
//! - [`seek`]: [`SeekIndex`], keyframes built in one pass over a session's chunks; `seek(t)` =
//!   nearest keyframe ≤ t + replay of the short tail.
//! - [`extract`]: [`CommandExtractor`] → [`Command`]s: TTY sessions from the echoed screen at
//!   Enter (with OSC 133/7 when the shell emits them, redaction of unechoed input), non-TTY
//!   execs from their command and script lines.

pub mod extract;
pub mod seek;
pub mod term;

pub use extract::{Command, CommandExtractor, extract};
pub use seek::{Position, SeekConfig, SeekError, SeekIndex, Seeked};
pub use term::Terminal;
