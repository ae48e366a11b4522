//! Command extraction: who ran what, from a session's events.
//!
//! TTY sessions are reconstructed from the echoed screen at the moment Enter was pressed
//! ([`tty`]); non-TTY execs from their own command line and, when stdin feeds a shell, the
//! script's lines ([`exec`]). Feed events in order with [`CommandExtractor::feed`]; completed
//! commands come out of [`CommandExtractor::take`] (for live indexing) and
//! [`CommandExtractor::finish`].

mod exec;
mod keys;
mod tty;

use storage_schema::{Event, SessionMeta, TermSize};

use crate::term::DEFAULT_SIZE;

/// What the extractor produces: the recording format's command entry, so that what is
/// extracted is what the recorder stores and the reviewer's tools read.
pub use storage_schema::commands::CommandEntry;
// The extractor's modules build entries under this shorter name.
use storage_schema::commands::CommandEntry as Command;

/// Reconstructs the commands of one session from its events, fed in order.
#[derive(Debug)]
pub struct CommandExtractor {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Tty(Box<tty::TtyExtractor>),
    Exec(exec::ExecExtractor),
}

impl CommandExtractor {
    /// An extractor for the session `meta` describes (TTY or not, command, initial size).
    pub fn new(meta: &SessionMeta) -> Self {
        if meta.tty {
            Self::tty(meta.size.unwrap_or(DEFAULT_SIZE))
        } else {
            Self::exec(&meta.command)
        }
    }

    /// An extractor for an interactive (TTY) session starting at `size`.
    pub fn tty(size: TermSize) -> Self {
        Self {
            mode: Mode::Tty(Box::new(tty::TtyExtractor::new(size))),
        }
    }

    /// An extractor for a non-TTY exec of `command`.
    pub fn exec(command: &[String]) -> Self {
        Self {
            mode: Mode::Exec(exec::ExecExtractor::new(command)),
        }
    }

    /// Feeds the next event (events must come in recorded order).
    pub fn feed(&mut self, event: &Event) {
        match &mut self.mode {
            Mode::Tty(t) => t.feed(event),
            Mode::Exec(e) => e.feed(event),
        }
    }

    /// Commands completed so far and not yet taken. A command stays back until it is known to
    /// be complete (its exit mark, the next prompt, or the end), so text never changes after
    /// it is taken.
    pub fn take(&mut self) -> Vec<Command> {
        match &mut self.mode {
            Mode::Tty(t) => t.take(),
            Mode::Exec(e) => e.take(),
        }
    }

    /// Ends the session: everything still held back, in order.
    pub fn finish(mut self) -> Vec<Command> {
        match &mut self.mode {
            Mode::Tty(t) => t.finish(),
            Mode::Exec(e) => e.finish(),
        }
        self.take()
    }
}

/// All commands of a session in one call.
pub fn extract<'a>(
    meta: &SessionMeta,
    events: impl IntoIterator<Item = &'a Event>,
) -> Vec<Command> {
    let mut x = CommandExtractor::new(meta);
    for e in events {
        x.feed(e);
    }
    x.finish()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod prop;
