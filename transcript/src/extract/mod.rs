//! Command extraction: who ran what, from a session's events.
//!
//! TTY sessions are reconstructed from the echoed screen at the moment a line was submitted,
//! and every line typed is accounted for as a command, input to a program, redacted no-echo
//! input or an aborted line ([`tty`], with [`prompt`] learning the shell's prompt, [`syntax`]
//! telling complete commands from continued ones, [`keys`] and [`editor`] following the
//! keys); non-TTY execs from their own command line and, when stdin feeds a shell, the
//! script's lines ([`exec`]). Feed events in order with [`CommandExtractor::feed`]; completed
//! entries come out of [`CommandExtractor::take`] (for live indexing) and
//! [`CommandExtractor::finish`].

mod editor;
mod exec;
mod keys;
mod prompt;
mod syntax;
mod tty;

use storage_schema::{Event, SessionMeta, TermSize};

use crate::term::DEFAULT_SIZE;

/// What the extractor produces: the recording format's command entry, so that what is
/// extracted is what the recorder stores and the reviewer's tools read: a command, input to a
/// program, redacted input or an aborted line (see [`EntryKind`]).
pub use storage_schema::commands::{CommandEntry, EntryKind};

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
            Self::tty_running(meta.size.unwrap_or(DEFAULT_SIZE), &meta.command)
        } else {
            Self::exec(&meta.command)
        }
    }

    /// An extractor for an interactive (TTY) session of a shell, starting at `size`.
    pub fn tty(size: TermSize) -> Self {
        Self::tty_running(size, &[])
    }

    /// An extractor for an interactive (TTY) session of `command` (a shell, whose first
    /// prompt is learned, or another program, whose lines are its input).
    pub fn tty_running(size: TermSize, command: &[String]) -> Self {
        Self {
            mode: Mode::Tty(Box::new(tty::TtyExtractor::new(size, command))),
        }
    }

    /// An extractor for a non-TTY exec of `command`.
    pub fn exec(command: &[String]) -> Self {
        Self {
            mode: Mode::Exec(exec::ExecExtractor::new(command)),
        }
    }

    /// Whether output changes what is extracted: with a terminal, the screen is where
    /// commands are read; without one, commands are the lines written to stdin.
    pub fn reads_output(&self) -> bool {
        matches!(self.mode, Mode::Tty(_))
    }

    /// Feeds the next event (events must come in recorded order).
    pub fn feed(&mut self, event: &Event) {
        match &mut self.mode {
            Mode::Tty(t) => t.feed(event),
            Mode::Exec(e) => e.feed(event),
        }
    }

    /// Entries completed so far and not yet taken, in order. An entry stays back until it is
    /// known to be complete (a command until its exit mark, the next prompt or the end; a line
    /// typed ahead until it is known who read it), so nothing changes after it is taken.
    pub fn take(&mut self) -> Vec<CommandEntry> {
        match &mut self.mode {
            Mode::Tty(t) => t.take(),
            Mode::Exec(e) => e.take(),
        }
    }

    /// Ends the session: everything still held back, in order.
    pub fn finish(mut self) -> Vec<CommandEntry> {
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
) -> Vec<CommandEntry> {
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
