//! Interactive sessions: the command line is read from the screen when Enter is pressed.
//!
//! # Method
//! * The first key of a line snapshots the prompt: the cursor row left of the cursor (or the
//!   prompt an OSC 133;B mark delimited).
//! * Enter makes the line *pending*. It is resolved just before the output echoes the newline
//!   (so the screen still shows the edited line, after backspaces, Ctrl-U/W, cursor edits,
//!   history recall and tab completion have all been drawn), or at the next key that cannot
//!   be typed ahead of the echo (output arrived since, or [`ENTER_TIMEOUT_US`] passed). The
//!   text is the cursor's logical line (rows joined where they wrapped) minus the prompt.
//! * Keys typed ahead of an echo (tmux, pastes, a fast typist on a slow link) are held back
//!   until the pending Enter is resolved, then replayed; a typed-ahead line's prompt is the
//!   shell's known one, since its own echo may already be on screen when it is replayed.
//! * Nothing is ever taken from the keystrokes themselves. If keys were typed but the input
//!   area stayed empty (the terminal did not echo: a password prompt), the entry is
//!   `redacted` and carries no text.
//! * A line typed at a PS2 prompt (`> `) continues the previous command (for loops, here-docs).
//! * Keys typed on the alternate screen (vim, less, top) are not commands.
//! * With OSC 133 marks, only lines typed after a `B` mark are commands and `D` gives the exit
//!   code; without them, a line counts when its prompt looks like a shell's (ends in `$`, `#`,
//!   `%`, `>` or a themed glyph such as `❯`), so answers typed to a program's own prompt
//!   (`Name: `) are not commands.

use storage_schema::{Event, EventKind, Stream, TermSize};

use super::Command;
use super::keys::{Key, KeyReader};
use crate::term::{Mark, Terminal};

/// Keys arriving this long after an Enter whose newline never came resolve it from the
/// screen as it is (and are not held back as typed ahead).
pub(crate) const ENTER_TIMEOUT_US: u64 = 1_000_000;

/// How many rows above the cursor a multi-line paste is looked for.
const MAX_PASTE_ROWS: u16 = 64;

/// Most keys held back behind a pending Enter; past this (a flood into a program that
/// does not echo) the Enter is resolved from the screen as it is.
const MAX_DEFERRED: usize = 4096;

/// Longest command text kept; a longer one is cut (and marked with an ellipsis).
const MAX_TEXT: usize = 64 * 1024;

/// The line being typed.
#[derive(Debug)]
struct Line {
    prompt: String,
    /// Printable keys typed (counted, never stored).
    printable: usize,
    /// Newlines inserted by a bracketed paste: the input spans that many more lines.
    pasted_newlines: usize,
    /// Started from keys replayed after their echo was drawn: the prompt snapshot may
    /// already contain some of the input, so the shell's known prompt is tried first.
    typed_ahead: bool,
    /// Output arrived while the line was typed: the terminal echoes.
    output_seen: bool,
    /// An OSC 133;B mark said this is the shell's prompt.
    at_shell: bool,
    cwd: Option<String>,
}

#[derive(Debug)]
struct Enter {
    at_us: u64,
    line: Line,
    /// Output arrived since Enter (without the echoed newline).
    output_after: bool,
}

#[derive(Debug)]
pub(crate) struct TtyExtractor {
    term: Terminal,
    keys: KeyReader,
    line: Option<Line>,
    enter: Option<Enter>,
    /// The last accepted command, held until a continuation, its exit mark or the next prompt.
    held: Option<Command>,
    /// Entries that came after `held` (redacted inputs) and must be emitted after it.
    queued: Vec<Command>,
    done: Vec<Command>,
    cwd: Option<String>,
    /// The last prompt that was the shell's: used to strip a redrawn prompt.
    shell_prompt: Option<String>,
    /// The session emits OSC 133 marks: trust them instead of guessing.
    marks_seen: bool,
    /// Prompt text of the last OSC 133;B not yet followed by C.
    b_prompt: Option<String>,
    /// Between OSC 133;C and D: the held command is running and waits for its exit code.
    running: bool,
    /// Keys typed ahead of the echo of a pending Enter, replayed once it is resolved.
    deferred: Vec<(Key, u64)>,
}

impl TtyExtractor {
    pub(crate) fn new(size: TermSize) -> Self {
        let mut term = Terminal::new(size);
        term.collect_marks(true);
        Self {
            term,
            keys: KeyReader::default(),
            line: None,
            enter: None,
            held: None,
            queued: Vec::new(),
            done: Vec::new(),
            cwd: None,
            shell_prompt: None,
            marks_seen: false,
            b_prompt: None,
            running: false,
            deferred: Vec::new(),
        }
    }

    pub(crate) fn feed(&mut self, event: &Event) {
        // Keys long after an Enter whose newline never came: the program took the input
        // silently. (Late output waits for its newline instead: a slow link is not silence.)
        let is_key = matches!(
            event.kind,
            EventKind::Data {
                stream: Stream::Stdin,
                ..
            }
        );
        if let Some(enter) = &self.enter
            && is_key
            && event.at_us > enter.at_us.saturating_add(ENTER_TIMEOUT_US)
        {
            self.resolve_enter();
            self.replay_deferred();
        }
        match &event.kind {
            EventKind::Data {
                stream: Stream::Stdin,
                bytes,
            } => {
                let mut keys = Vec::new();
                self.keys.feed(bytes, |k| keys.push((k, event.at_us)));
                if self.enter.is_some() && !self.must_defer() {
                    self.resolve_enter();
                }
                // Keys after an Enter in the same event were typed before any echo of it.
                let mut after_enter = false;
                for (key, at_us) in keys {
                    if (after_enter && self.enter.is_some()) || self.must_defer() {
                        self.deferred.push((key, at_us));
                        if self.deferred.len() >= MAX_DEFERRED {
                            self.resolve_enter();
                            self.replay_deferred();
                        }
                    } else {
                        self.on_key(key, at_us);
                        after_enter |= key == Key::Enter;
                    }
                }
            }
            EventKind::Data { bytes, .. } => self.on_output(bytes),
            EventKind::Resize { cols, rows } => self.term.resize(TermSize {
                cols: *cols,
                rows: *rows,
            }),
            EventKind::Exit { .. } => {
                self.resolve_enter();
                self.replay_deferred();
            }
            _ => {}
        }
    }

    pub(crate) fn take(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.done)
    }

    pub(crate) fn finish(&mut self) {
        self.resolve_enter();
        self.replay_deferred();
        self.resolve_enter();
        self.flush();
    }

    /// Keys now are typed ahead of the pending Enter's echo: nothing at all came back since
    /// that line was typed (tmux, a paste, a fast typist on a slow link), so the Enter cannot
    /// be judged yet. (After a no-echo prompt, the program's next output has arrived by the
    /// time a person types again.)
    fn must_defer(&self) -> bool {
        self.enter.as_ref().is_some_and(|enter| {
            !self.deferred.is_empty() || (!enter.output_after && !enter.line.output_seen)
        })
    }

    /// Feeds the keys typed ahead of an echo, now that the screen has caught up with them.
    fn replay_deferred(&mut self) {
        if self.enter.is_some() {
            return;
        }
        for (key, at_us) in std::mem::take(&mut self.deferred) {
            self.on_key(key, at_us);
            // Their echo, if any, is already on screen.
            if let Some(line) = &mut self.line {
                line.output_seen = true;
                line.typed_ahead = true;
            }
            if let Some(enter) = &mut self.enter {
                enter.line.output_seen = true;
                enter.line.typed_ahead = true;
            }
        }
    }

    fn on_key(&mut self, key: Key, at_us: u64) {
        if self.term.alternate_screen() {
            self.line = None;
            return;
        }
        match key {
            Key::Interrupt => self.line = None,
            Key::Eof => {
                if self.line.as_ref().is_none_or(|l| l.printable == 0) {
                    self.line = None;
                }
            }
            Key::Enter => {
                // Typed ahead of the echo: resolve the earlier Enter from what the screen shows.
                self.resolve_enter();
                let line = match self.line.take() {
                    Some(line) => line,
                    None => self.start_line(),
                };
                self.enter = Some(Enter {
                    at_us,
                    line,
                    output_after: false,
                });
            }
            Key::PastedNewline => {
                let line = self.line_mut();
                line.pasted_newlines += 1;
                line.printable += 1;
            }
            Key::Printable => self.line_mut().printable += 1,
            Key::Edit => {
                self.line_mut();
            }
        }
    }

    fn line_mut(&mut self) -> &mut Line {
        if self.line.is_none() {
            let line = self.start_line();
            self.line = Some(line);
        }
        self.line.as_mut().expect("just set")
    }

    fn start_line(&mut self) -> Line {
        let (prompt, at_shell) = match &self.b_prompt {
            Some(p) => (p.clone(), true),
            None => {
                let (row, col) = self.term.cursor();
                (self.term.row_prefix(row, col), false)
            }
        };
        // A new prompt ends the held command, unless it is a PS2 continuation or the shell
        // said the command is still running (its own prompts come before the exit mark).
        if !is_continuation_prompt(&prompt) && !self.running {
            self.flush();
        }
        Line {
            prompt,
            printable: 0,
            pasted_newlines: 0,
            typed_ahead: false,
            output_seen: false,
            at_shell,
            cwd: self.cwd.clone(),
        }
    }

    fn on_output(&mut self, bytes: &[u8]) {
        if let Some(line) = &mut self.line {
            line.output_seen = true;
        }
        let mut bytes = bytes;
        // Each echoed newline may resolve a pending Enter; keys typed ahead are replayed right
        // after, so their own Enter can be resolved by a later newline of the same output.
        while self.enter.is_some()
            && let Some(nl) = bytes.iter().position(|&b| b == b'\n')
        {
            let drawn = bytes[..nl].iter().any(|&b| b != b'\r');
            self.term.process(&bytes[..nl]);
            self.handle_marks();
            if !self.waits_for_prompt_row() {
                let echo_before = drawn || self.enter.as_ref().is_some_and(|e| e.output_after);
                self.resolve(Some(echo_before));
                self.replay_deferred();
            } else if let Some(enter) = &mut self.enter {
                enter.output_after = true;
            }
            self.term.process(&bytes[nl..=nl]);
            bytes = &bytes[nl + 1..];
        }
        if !bytes.is_empty()
            && let Some(enter) = &mut self.enter
        {
            enter.output_after = true;
        }
        self.term.process(bytes);
        self.handle_marks();
    }

    /// A typed-ahead line's Enter is only resolved at a newline that ends a row holding the
    /// shell's prompt (its own echo), not at newlines of the previous command's output.
    fn waits_for_prompt_row(&self) -> bool {
        let (Some(enter), Some(sp)) = (&self.enter, &self.shell_prompt) else {
            return false;
        };
        if !enter.line.typed_ahead {
            return false;
        }
        let rows = self.term.size().rows;
        let (s, e) = self.logical_bounds(self.term.cursor().0, rows);
        !self.logical_text(s, e).starts_with(sp.as_str())
    }

    fn handle_marks(&mut self) {
        for mark in self.term.take_marks() {
            match mark {
                Mark::PromptStart => {
                    self.marks_seen = true;
                    self.running = false;
                    self.flush();
                }
                Mark::CommandStart { prompt, .. } => {
                    self.marks_seen = true;
                    self.b_prompt = Some(prompt);
                }
                Mark::CommandExecuted => {
                    self.marks_seen = true;
                    self.running = true;
                    self.b_prompt = None;
                }
                Mark::CommandFinished { exit_code } => {
                    self.marks_seen = true;
                    self.running = false;
                    if let Some(held) = &mut self.held {
                        held.exit_code = exit_code;
                    }
                    self.flush();
                }
                Mark::Cwd(path) => self.cwd = Some(path),
            }
        }
    }

    fn flush(&mut self) {
        self.done.extend(self.held.take());
        self.done.append(&mut self.queued);
    }

    /// Resolves a pending Enter when something other than the echoed newline comes first.
    fn resolve_enter(&mut self) {
        self.resolve(None);
    }

    /// Turns the pending Enter into a command (or nothing) from what the screen shows now.
    ///
    /// `at_newline`: the output is about to echo a newline (an echoing terminal always echoes
    /// Enter as one), and whether anything was drawn since Enter before it (`Some(drawn)`).
    fn resolve(&mut self, at_newline: Option<bool>) {
        let Some(Enter { at_us, line, .. }) = self.enter.take() else {
            return;
        };
        // The B mark delimited this line's prompt only; a PS2 continuation comes without one.
        if line.at_shell {
            self.b_prompt = None;
        }
        if self.term.alternate_screen() {
            return;
        }
        let (mut input, mut prompt_used) = self.read_input(&line);
        // Was the input echoed? Output while typing says yes. Without any: at the newline,
        // anything drawn between Enter and it was the (late) echo, and nothing means none (a
        // password prompt). With no newline yet: the screen shows either the late echo or,
        // after the prompt, the program's next output (bash `read -s` draws the next shell
        // prompt on the same row) or nothing; only the first is input.
        let unechoed = !line.output_seen
            && match at_newline {
                Some(drawn) => !drawn,
                None => {
                    input.is_empty()
                        || self
                            .shell_prompt
                            .as_deref()
                            .is_some_and(|sp| input.starts_with(sp.trim_end()))
                }
            };
        if unechoed {
            input.clear();
            prompt_used = PromptUsed::None;
        }
        let prompt = line.prompt.trim_end().to_owned();
        // Typed but not echoed, or echoed as stars: the fact is kept, never the text.
        let redacted = line.printable > 0
            && (unechoed || (!input.is_empty() && input.chars().all(|c| c == '*')));
        if redacted {
            let mut entry = Command::new(at_us, String::new());
            entry.redacted = true;
            entry.prompt = (!prompt.is_empty()).then_some(prompt);
            entry.cwd = line.cwd;
            self.queued.push(entry);
            return;
        }
        if input.is_empty() {
            return;
        }
        if is_continuation_prompt(&line.prompt)
            && !line.at_shell
            && let Some(held) = &mut self.held
            && self.queued.is_empty()
        {
            if held.text.len() < MAX_TEXT {
                held.text.push('\n');
                held.text.push_str(&input);
            }
            return;
        }
        let is_shell = if self.marks_seen {
            line.at_shell
        } else {
            // The prompt must still be in front of the input: keys typed into a program that
            // draws on the primary screen (top) start a line at its prompt-less cursor, and
            // the shell's prompt redrawn in front of the input says the shell got it after
            // all; a shell prompt no longer there means the input went elsewhere.
            match prompt_used {
                PromptUsed::Line => looks_like_shell_prompt(&line.prompt),
                PromptUsed::Shell => true,
                PromptUsed::None => false,
            }
        };
        if !is_shell {
            // An answer to a program's own prompt, not a command.
            return;
        }
        self.flush();
        let prompt = match prompt_used {
            PromptUsed::Line => {
                self.shell_prompt = Some(line.prompt.clone());
                prompt
            }
            PromptUsed::Shell => self
                .shell_prompt
                .as_deref()
                .unwrap_or_default()
                .trim_end()
                .to_owned(),
            PromptUsed::None => prompt,
        };
        let mut cmd = Command::new(at_us, input);
        cmd.prompt = (!prompt.is_empty()).then_some(prompt);
        cmd.cwd = line.cwd;
        self.held = Some(cmd);
    }

    /// The input on screen: the cursor's logical line (after a multi-line paste, the pasted
    /// lines from the prompt's line down), minus the prompt, trimmed.
    fn read_input(&self, line: &Line) -> (String, PromptUsed) {
        let rows = self.term.size().rows;
        let (crow, _) = self.term.cursor();
        let (cs, ce) = self.logical_bounds(crow, rows);
        let text = if line.pasted_newlines == 0 {
            self.logical_text(cs, ce)
        } else {
            // The cursor may be on any of the pasted lines: find the prompt's line above it.
            let has_prompt = |t: &str| {
                (!line.prompt.is_empty() && t.starts_with(&line.prompt))
                    || self
                        .shell_prompt
                        .as_deref()
                        .is_some_and(|sp| t.starts_with(sp))
            };
            let mut first = cs;
            let mut s = cs;
            loop {
                let (ls, le) = self.logical_bounds(s, rows);
                if has_prompt(&self.logical_text(ls, le)) {
                    first = ls;
                    break;
                }
                if ls == 0 || crow - ls >= MAX_PASTE_ROWS {
                    break;
                }
                s = ls - 1;
            }
            let mut lines = Vec::new();
            let mut r = first;
            while lines.len() <= line.pasted_newlines && r < rows {
                let (ls, le) = self.logical_bounds(r, rows);
                lines.push(self.logical_text(ls, le));
                r = le + 1;
            }
            lines.join("\n")
        };
        let by_line = (!line.prompt.is_empty() && text.starts_with(&line.prompt))
            .then_some((line.prompt.len(), PromptUsed::Line));
        let by_shell = self
            .shell_prompt
            .as_deref()
            .filter(|sp| text.starts_with(*sp))
            .map(|sp| (sp.len(), PromptUsed::Shell));
        let found = if line.typed_ahead {
            by_shell.or(by_line)
        } else {
            by_line.or(by_shell)
        };
        let (input, used) = match found {
            Some((len, used)) => (&text[len..], used),
            None => {
                let skip: usize = text
                    .char_indices()
                    .nth(line.prompt.chars().count())
                    .map_or(text.len(), |(i, _)| i);
                (&text[skip..], PromptUsed::None)
            }
        };
        let mut input = input.trim().to_owned();
        if input.len() > MAX_TEXT {
            let cut = (0..=MAX_TEXT)
                .rev()
                .find(|&i| input.is_char_boundary(i))
                .unwrap_or(0);
            input.truncate(cut);
            input.push('…');
        }
        (input, used)
    }

    /// First and last row of the logical line (rows joined by autowrap) containing `row`.
    fn logical_bounds(&self, row: u16, rows: u16) -> (u16, u16) {
        let mut s = row;
        while s > 0 && self.term.row_wrapped(s - 1) {
            s -= 1;
        }
        let mut e = row;
        while e + 1 < rows && self.term.row_wrapped(e) {
            e += 1;
        }
        (s, e)
    }

    fn logical_text(&self, start: u16, end: u16) -> String {
        let mut text = String::new();
        for r in start..end {
            text.push_str(&self.term.row_prefix(r, u16::MAX));
        }
        text.push_str(&self.term.row_text(end));
        text
    }
}

/// Which prompt was found in front of the input on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PromptUsed {
    /// The one on screen when the line's first key was typed.
    Line,
    /// The shell's last known prompt, redrawn.
    Shell,
    /// Neither: the prompt's width was skipped.
    None,
}

/// PS2: bash, dash and ash all default to `> `.
fn is_continuation_prompt(prompt: &str) -> bool {
    prompt.trim_end() == ">"
}

/// Shell prompts end in `$`, `#`, `%` or `>` (or a glyph popular in themed prompts: `❯ » → λ
/// ➜`), then blanks; program prompts ("Password:", "Name? ", "") do not.
fn looks_like_shell_prompt(prompt: &str) -> bool {
    matches!(
        prompt.trim_end().chars().last(),
        Some('$' | '#' | '%' | '>' | '❯' | '»' | '→' | 'λ' | '➜')
    )
}
