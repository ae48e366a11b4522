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
//!   nearest keyframe ≤ t + replay of the short tail. [`SeekIndex::shared`] builds it on one
//!   thread ([`IndexWriter`]) while others seek in it ([`IndexReader`]).
//! - [`extract`]: [`CommandExtractor`] → [`CommandEntry`]s (the recording format's own type,
//!   `storage_schema::commands`):
//!   TTY sessions from the echoed screen, every line typed accounted for as a command, input to
//!   a program, redacted no-echo input or an aborted line (the shell's prompt learned from the
//!   session, OSC 133/7 used when the shell emits them, type-ahead attributed to whoever read
//!   it); non-TTY execs from their command and script lines.
//!
//! # Use
//! ```
//! use storage_schema::{Event, EventKind, Stream, TermSize};
//! use transcript::{CommandExtractor, SeekConfig, SeekIndex};
//!
//! let data = |at_us, stream, bytes: &[u8]| Event {
//!     at_us,
//!     kind: EventKind::Data { stream, bytes: bytes.to_vec() },
//! };
//! // One chunk of a recording (normally `SessionReader::chunk_events(i)`).
//! let chunk = vec![
//!     data(0, Stream::Stdout, b"$ "),
//!     data(100_000, Stream::Stdin, b"ls\r"),
//!     data(110_000, Stream::Stdout, b"ls\r\nREADME\r\n$ "),
//! ];
//! let size = TermSize { cols: 80, rows: 24 };
//!
//! // Commands (the gateway: feed as events arrive, `take()` what is complete).
//! let mut x = CommandExtractor::tty(size); // or CommandExtractor::new(reader.meta())
//! chunk.iter().for_each(|e| x.feed(e));
//! let commands = x.finish();
//! assert_eq!(commands[0].text, "ls");
//! assert_eq!(commands[0].at_us, 100_000);
//!
//! // Seeking (the player: push chunks once, then seek anywhere).
//! let mut index = SeekIndex::new(size, SeekConfig::default());
//! index.push_chunk(&chunk);
//! let at = index.seek(105_000, |_i| Ok::<_, std::convert::Infallible>(chunk.clone()))?;
//! assert_eq!(at.terminal.text(), "$");
//! // Keep playing from `at.next` (chunk and event index of the next event).
//!
//! // With an async reader: fetch the chunks the seek asks for.
//! let mut seek = index.start_seek(105_000)?;
//! while let Some(i) = seek.next_chunk() {
//!     seek.feed_chunk(&chunk); // reader.chunk_events(i).await? for chunk i
//! #   let _ = i;
//! }
//! assert_eq!(seek.finish().terminal.text(), "$");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod extract;
mod observer;
pub mod seek;
pub mod term;

pub use extract::{CommandEntry, CommandExtractor, EntryKind, extract};
pub use seek::{
    IndexReader, IndexWriter, Position, SeekConfig, SeekError, SeekInProgress, SeekIndex, Seeked,
};
pub use term::{Terminal, is_vt100_panic, quiet_vt100_panics};
/// The emulator behind [`Terminal::screen`], re-exported so renderers name its cell and colour
/// types at the same version.
pub use vt100;
