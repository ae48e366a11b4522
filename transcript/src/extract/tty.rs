//! Interactive sessions: every line typed is accounted for, from what the screen shows.
//!
//! # What becomes of a line
//! A line is submitted by Enter (or Ctrl-O), abandoned by Ctrl-C, or sent unfinished by
//! Ctrl-D to a program. Each one that shows any text ends in exactly one entry: a **command**
//! (typed at the shell's prompt, or continuing one), **input** (read by a program the shell
//! was running: an answer to its prompt, a REPL line, lines for `cat`), **redacted** (typed
//! while the terminal did not echo: no text, ever) or **aborted** (Ctrl-C before anything ran
//! it). Nothing typed is dropped for not looking like a command; where the extractor is
//! unsure, the entry says so (`inferred`).
//!
//! # Reading a line
//! * The first key of a line snapshots what is left of the cursor (the prompt it is typed at,
//!   or the prompt an OSC 133;B mark delimited) and any right-side prompt at the margin.
//! * Enter makes the line *pending*. It is resolved just before the output echoes the newline
//!   (so the screen still shows the edited line, after backspaces, Ctrl-U/W, cursor edits,
//!   history recall, search and tab completion have all been drawn), or at the next key that
//!   cannot be typed ahead of the echo (output arrived since, or [`ENTER_TIMEOUT_US`] passed).
//!   The text is the prompt's logical line (rows joined where they wrapped, pasted lines
//!   below it) minus the prompt and a right-side prompt; where an editor scrolled a long line
//!   sideways (mksh) and shows only a window of it, the keys' model of the line is taken if
//!   the window is part of it.
//! * Keys typed ahead of an echo (tmux, pastes, a fast typist on a slow link) are held back
//!   until the pending Enter is resolved, then replayed.
//! * Nothing is taken from the keystrokes themselves. If keys were typed but nothing was
//!   echoed (a password prompt), the entry is `redacted` and carries no text.
//!
//! # Whose line it is
//! * The shell's prompt is learned ([`super::prompt`]): where the session's first command was
//!   typed, what OSC 133 marks delimit, and prompts like those seen before. A line at it is a
//!   command; a line at another prompt (`Name? `, `>>> `) is input.
//! * After a command that is not complete yet ([`super::syntax`]), a line at any other
//!   prompt (`> `, `for> `, fish's indentation) continues it; Ctrl-C there aborts all of it.
//! * A line typed at no prompt at all while a command runs is *type-ahead*: the running
//!   program may read it, or the shell once the program ends. Shells that edit lines draw a
//!   line they read that way after their prompt (bash, zsh, fish, mksh, ash), dash just runs
//!   it and prints its next prompt: either way a prompt shows up that nobody typed at, and
//!   the oldest such line becomes the command it ran. The rest were the program's input,
//!   which is settled once the shell is seen waiting at its prompt after the next command.
//! * bash and zsh print `!!`, `!$` and `^old^new` expanded before running them: that is the
//!   command's text, and what was typed is kept beside it. bash runs what Ctrl-X Ctrl-E's
//!   editor leaves, echoed after it: an `inferred` command.
//! * Keys typed on the alternate screen (vim, less, top) are not lines.

use std::collections::VecDeque;

use storage_schema::commands::{CommandEntry, EntryKind};
use storage_schema::{Event, EventKind, Stream, TermSize};

use super::editor::LineModel;
use super::keys::{Edit, Key, KeyReader};
use super::prompt::{self, Match, Prompts};
use super::syntax;
use crate::term::{Mark, Terminal};

/// Keys arriving this long after an Enter whose newline never came resolve it from the
/// screen as it is (and are not held back as typed ahead). An echo is never this late.
pub(crate) const ENTER_TIMEOUT_US: u64 = 1_000_000;

/// How many rows above the cursor the prompt of a line (a paste, a search that drew below
/// it) is looked for.
const MAX_UP_ROWS: u16 = 64;

/// Most keys held back behind a pending Enter; past this (a flood into a program that
/// does not echo) the Enter is resolved from the screen as it is.
const MAX_DEFERRED: usize = 4096;

/// Longest text kept; a longer one is cut (and marked with an ellipsis).
const MAX_TEXT: usize = 64 * 1024;

/// Entries held back at most (lines typed ahead of a long-running program wait to learn who
/// read them); past this the oldest are settled as they are.
const MAX_HELD: usize = 4096;

/// The line being typed.
#[derive(Debug, Clone)]
struct Line {
    /// Text left of the cursor at the first key (or the OSC 133;B prompt).
    prompt: String,
    /// A right-side prompt at the margin when the line started.
    right: Option<String>,
    /// The colours `prompt` was drawn in.
    style: Vec<u32>,
    /// How `prompt` matched the learned shell prompts.
    start_match: Match,
    /// Printable keys typed (counted, never stored).
    printable: usize,
    /// Newlines inserted by a bracketed paste: the input spans that many more lines.
    pasted_newlines: usize,
    /// Started from keys replayed after their echo was drawn: the prompt snapshot may
    /// already contain some of the input, so the shell's known prompts are tried first.
    typed_ahead: bool,
    /// Output arrived while the line was typed (or it was replayed after its echo was drawn):
    /// the terminal echoes.
    output_seen: bool,
    /// Output really arrived while the line was typed (not assumed for a replayed line): an
    /// empty line was erased, not typed blind.
    echo_seen: bool,
    /// An OSC 133;B mark said this is the shell's prompt.
    at_mark: bool,
    /// Started while a command was running, at no prompt of the shell's.
    during_run: bool,
    /// Ctrl-X Ctrl-E was pressed: the line went to an editor.
    editor: bool,
    model: LineModel,
    cwd: Option<String>,
}

/// How a pending line was submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Submit {
    Enter,
    /// Ctrl-O: an Enter only if the shell echoes a newline for it.
    Accept,
    /// Ctrl-C.
    Abort,
    /// Ctrl-D on a non-empty line, outside the shell's prompt.
    Eof,
    /// The session ended with the line unsubmitted.
    End,
}

#[derive(Debug)]
struct Pending {
    at_us: u64,
    line: Line,
    how: Submit,
    /// Output arrived since the key (without the echoed newline).
    output_after: bool,
    /// At the shell's prompt, the line as the screen showed it when Enter was pressed.
    shown_at_key: Option<String>,
}

/// What the shell is doing, as far as the screen shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a prompt, or not known yet.
    Idle,
    /// Running a command.
    Running,
    /// Reading more lines of an incomplete command.
    Continuation,
}

#[derive(Debug)]
struct Held {
    id: u64,
    entry: CommandEntry,
    done: bool,
}

/// A line typed ahead, waiting to learn who read it.
#[derive(Debug)]
struct Queued {
    id: u64,
    at_us: u64,
    /// Its echo; `None` when it was not echoed (redacted) or empty.
    text: Option<String>,
}

/// Output expected on the next row.
#[derive(Debug)]
enum Watch {
    /// bash and zsh print a history expansion before running it.
    Expansion { id: u64, typed: String },
    /// bash echoes what its editor left before running it.
    Editor { at_us: u64, cwd: Option<String> },
}

#[derive(Debug)]
pub(crate) struct TtyExtractor {
    term: Terminal,
    keys: KeyReader,
    prompts: Prompts,
    /// The session's program is a shell (or not known): where its first line is typed is the
    /// shell's prompt.
    shell_root: bool,
    /// The shell is fish (its blocks end in `end`).
    fish: bool,
    line: Option<Line>,
    pending: Option<Pending>,
    /// Keys typed ahead of the echo of a pending line, replayed once it is resolved.
    deferred: Vec<(Key, u64)>,
    state: State,
    /// The last command may have changed the prompt: the next unfamiliar one is learned.
    relearn: bool,
    /// The last command changed directory: the next prompt ending like a learned one is the
    /// shell's (the directory in it changed).
    relearn_dir: bool,
    cwd: Option<String>,
    /// The session emits OSC 133 marks.
    marks_seen: bool,
    /// Prompt text of the last OSC 133;B not yet followed by C.
    b_prompt: Option<String>,
    /// Between OSC 133;C and the next A or D.
    mark_running: bool,
    held: VecDeque<Held>,
    next_id: u64,
    /// The command waiting for continuation lines.
    open: Option<u64>,
    /// The last command (for its exit mark).
    last_command: Option<u64>,
    /// When the last line at the shell's prompt was submitted.
    last_shell_at: Option<u64>,
    queue: Vec<Queued>,
    /// When the shell was seen reading a typed-ahead line it did not draw (dash prints only
    /// its prompt): which line is decided when the queue is settled.
    undrawn: Vec<u64>,
    watch: Option<Watch>,
    /// A line was resolved and its row has not ended yet.
    resolved_since_newline: bool,
    /// Prompts on the cursor row already counted as reading a typed-ahead line: (row, bytes).
    counted: Option<(u16, usize)>,
    /// Time of the event being handled and of the last output before it.
    now_us: u64,
    /// The output event being handled drew text before the point being resolved.
    drawn_now: bool,
    last_output_us: u64,
    done: Vec<CommandEntry>,
}

impl TtyExtractor {
    pub(crate) fn new(size: TermSize, command: &[String]) -> Self {
        let mut term = Terminal::new(size);
        term.collect_marks(true);
        let (shell_root, fish) = root_shell(command);
        Self {
            term,
            keys: KeyReader::default(),
            prompts: Prompts::default(),
            shell_root,
            fish,
            line: None,
            pending: None,
            deferred: Vec::new(),
            state: State::Idle,
            relearn: false,
            relearn_dir: false,
            cwd: None,
            marks_seen: false,
            b_prompt: None,
            mark_running: false,
            held: VecDeque::new(),
            next_id: 0,
            open: None,
            last_command: None,
            last_shell_at: None,
            queue: Vec::new(),
            undrawn: Vec::new(),
            watch: None,
            resolved_since_newline: false,
            counted: None,
            now_us: 0,
            drawn_now: false,
            last_output_us: 0,
            done: Vec::new(),
        }
    }

    pub(crate) fn feed(&mut self, event: &Event) {
        self.now_us = event.at_us;
        match &event.kind {
            EventKind::Data {
                stream: Stream::Stdin,
                bytes,
            } => self.on_keys(bytes, event.at_us),
            EventKind::Data { bytes, .. } => {
                self.on_output(bytes);
                self.last_output_us = event.at_us;
            }
            EventKind::Resize { cols, rows } => self.term.resize(TermSize {
                cols: *cols,
                rows: *rows,
            }),
            EventKind::Exit { .. } => {
                self.drawn_now = false;
                self.resolve(None);
                self.replay_deferred();
            }
            _ => {}
        }
    }

    pub(crate) fn take(&mut self) -> Vec<CommandEntry> {
        while self.held.front().is_some_and(|h| h.done) || self.held.len() > MAX_HELD {
            let h = self.held.pop_front().expect("front exists");
            self.queue.retain(|q| q.id != h.id);
            if self.open == Some(h.id) {
                self.open = None;
            }
            self.done.push(h.entry);
        }
        std::mem::take(&mut self.done)
    }

    pub(crate) fn finish(&mut self) {
        self.resolve(None);
        self.replay_deferred();
        self.resolve(None);
        if let Some(line) = self.line.take()
            && line.printable > 0
        {
            // Typed and never submitted: the session ended under it.
            let pending = Pending {
                at_us: self.now_us,
                line,
                how: Submit::End,
                output_after: false,
                shown_at_key: None,
            };
            self.pending = Some(pending);
            self.resolve(None);
        }
        let (row, col) = self.term.cursor();
        let prefix = self.term.row_prefix(row, col);
        let back_at_prompt =
            self.prompts.classify(&prefix).is_prompt() && !prompt::is_continuation_prompt(&prefix);
        if self.state == State::Continuation
            && !back_at_prompt
            && let Some(id) = self.open.take()
            && let Some(h) = self.held_mut(id)
        {
            // The session ended at a continuation prompt: the shell never got the rest, it
            // never ran.
            h.entry.kind = EntryKind::Aborted;
        }
        self.settle_queue(u64::MAX);
        for h in &mut self.held {
            h.done = true;
        }
    }

    // === keys ===

    fn on_keys(&mut self, bytes: &[u8], at_us: u64) {
        self.drawn_now = false;
        let mut keys = Vec::new();
        self.keys.feed(bytes, |k| {
            if k != Key::Report {
                keys.push((k, at_us));
            }
        });
        if keys.is_empty() {
            return;
        }
        // Keys long after an Enter whose newline never came: the program took the input
        // silently. (Late output waits for its newline instead: a slow link is not silence.)
        if let Some(p) = &self.pending
            && at_us > p.at_us.saturating_add(ENTER_TIMEOUT_US)
        {
            self.resolve(None);
            self.replay_deferred();
        }
        if self.pending.is_some() && !self.must_defer() {
            self.resolve(None);
        }
        // Keys after a submit in the same event were typed before any echo of it.
        let mut after_submit = false;
        for (key, at_us) in keys {
            if (after_submit && self.pending.is_some()) || self.must_defer() {
                self.deferred.push((key, at_us));
                if self.deferred.len() >= MAX_DEFERRED {
                    self.resolve(None);
                    self.replay_deferred();
                }
            } else {
                self.on_key(key, at_us);
                after_submit |= self.pending.is_some();
            }
        }
    }

    /// Keys now are typed ahead of the pending line's echo: nothing at all came back since
    /// that line was typed (tmux, a paste, a fast typist on a slow link), so it cannot be
    /// judged yet. (After a no-echo prompt, the program's next output has arrived by the
    /// time a person types again.)
    fn must_defer(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| !self.deferred.is_empty() || (!p.output_after && !p.line.output_seen))
    }

    /// Feeds the keys typed ahead of an echo, now that the screen has caught up with them.
    fn replay_deferred(&mut self) {
        if self.pending.is_some() {
            return;
        }
        for (key, at_us) in std::mem::take(&mut self.deferred) {
            self.on_key(key, at_us);
            // Their echo, if any, is already on screen.
            if let Some(line) = &mut self.line {
                line.output_seen = true;
                line.typed_ahead = true;
            }
            if let Some(p) = &mut self.pending {
                p.line.output_seen = true;
                p.line.typed_ahead = true;
            }
        }
    }

    fn on_key(&mut self, key: Key, at_us: u64) {
        if self.term.alternate_screen() {
            if self.line.as_ref().is_some_and(|l| l.editor) {
                self.watch = Some(Watch::Editor {
                    at_us,
                    cwd: self.cwd.clone(),
                });
            }
            self.line = None;
            return;
        }
        // A key on the shell's screen: nothing expected of the output any more.
        self.watch = None;
        match key {
            Key::Interrupt => match self.line.take() {
                Some(line) => self.submit(line, Submit::Abort, at_us),
                None if self.state == State::Continuation => self.abort_open(None),
                None => {}
            },
            Key::Eof => {
                let Some(line) = self.line.as_mut() else {
                    return;
                };
                if line.printable == 0 {
                    self.line = None;
                } else if line.during_run {
                    let line = self.line.take().expect("checked");
                    self.submit(line, Submit::Eof, at_us);
                } else {
                    line.model.key(key);
                }
            }
            Key::Enter => {
                let line = self.take_or_start_line();
                self.submit(line, Submit::Enter, at_us);
            }
            Key::Accept => {
                let line = self.take_or_start_line();
                self.submit(line, Submit::Accept, at_us);
            }
            Key::EditCommand => {
                let line = self.line_mut();
                line.editor = true;
                line.model.key(key);
            }
            Key::PastedNewline => {
                let line = self.line_mut();
                line.pasted_newlines += 1;
                line.printable += 1;
                line.model.key(key);
            }
            Key::Char(_) => {
                let line = self.line_mut();
                line.printable += 1;
                line.model.key(key);
            }
            Key::Edit(Edit::Redraw) if self.line.is_none() => {}
            Key::Edit(_) => self.line_mut().model.key(key),
            Key::Report => {}
        }
    }

    fn submit(&mut self, line: Line, how: Submit, at_us: u64) {
        // Typed ahead of the echo: resolve the earlier one from what the screen shows.
        self.resolve(None);
        let shown_at_key = (how == Submit::Enter && line.start_match.is_prompt())
            .then(|| self.read_input(&line).text);
        self.pending = Some(Pending {
            at_us,
            line,
            how,
            output_after: false,
            shown_at_key,
        });
    }

    fn take_or_start_line(&mut self) -> Line {
        match self.line.take() {
            Some(line) => line,
            None => self.start_line(),
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
        let (row, col) = self.term.cursor();
        let (mut prompt, at_mark) = match &self.b_prompt {
            Some(p) => (p.clone(), true),
            // Still on the row of a line just resolved (its newline not echoed yet): what is
            // left of the cursor is that line, not a prompt.
            None if self.resolved_since_newline => (String::new(), false),
            None => (self.term.row_prefix(row, col), false),
        };
        let style = if at_mark {
            Vec::new()
        } else {
            self.term.style_runs(row, col)
        };
        let mut start_match = if at_mark {
            Match::Exact
        } else {
            self.prompts.classify_styled(&prompt, &style)
        };
        if start_match == Match::No
            && let Some(len) = self.prompts.at_start(&prompt)
            && len < prompt.trim_end().len()
        {
            // The shell's prompt with text already on the line (Ctrl-O brought back the next
            // history line, a line typed ahead was drawn): the line starts at the prompt.
            prompt.truncate(len);
            start_match = self.prompts.classify(&prompt).max(Match::Similar);
        }
        let right = self.term.right_text(row, col);
        let at_shell = start_match.is_prompt()
            && !(self.state == State::Continuation && prompt::is_continuation_prompt(&prompt))
            && !(self.marks_seen && self.mark_running && !at_mark);
        if at_shell {
            self.shell_waits();
        }
        Line {
            prompt,
            right,
            style,
            start_match,
            printable: 0,
            pasted_newlines: 0,
            typed_ahead: false,
            output_seen: false,
            echo_seen: false,
            at_mark,
            during_run: self.state == State::Running && !at_shell,
            editor: false,
            model: LineModel::default(),
            cwd: self.cwd.clone(),
        }
    }

    /// A line starts at the shell's prompt: the shell is reading, so what it ran before is
    /// complete, and lines typed ahead before the last command were not read by the shell
    /// (it would have shown a prompt for each by now).
    fn shell_waits(&mut self) {
        if let Some(at) = self.last_shell_at {
            self.settle_queue(at);
        }
        let open = self.open;
        let queued: Vec<u64> = self.queue.iter().map(|q| q.id).collect();
        for h in &mut self.held {
            if Some(h.id) != open && !queued.contains(&h.id) {
                h.done = true;
            }
        }
        if self.state == State::Continuation {
            // Back at the main prompt without finishing: the shell dropped the rest.
            if let Some(id) = self.open.take()
                && let Some(h) = self.held_mut(id)
            {
                h.done = true;
            }
        }
        self.state = State::Idle;
    }

    /// Settles the lines typed ahead before `before_us`. The shell showed a prompt for each
    /// line it read without drawing it (dash): a prompt can only have read a line typed before
    /// it, and the running program read first, in order, so each prompt (the latest first) read
    /// the latest line typed before it that no later prompt read. The others were the
    /// program's input. (Counting prompts without their times gave a prompt shown before a
    /// line was typed to that line: a line typed to `cat` after a typed-ahead `echo` became a
    /// command.)
    fn settle_queue(&mut self, before_us: u64) {
        // Match prompts to lines over the whole queue (a prompt after a line typed later than
        // `before_us` read that line, not an earlier one), then settle the earlier lines.
        let mut shown: Vec<Option<u64>> = vec![None; self.queue.len()];
        let mut free = self.queue.len();
        for &t in self.undrawn.iter().rev() {
            while free > 0 && self.queue[free - 1].at_us >= t {
                free -= 1;
            }
            if free == 0 {
                // No line was waiting when it showed: it read none of these.
                continue;
            }
            free -= 1;
            shown[free] = Some(t);
        }
        let mut settled = Vec::new();
        let (mut kept, mut undrawn) = (Vec::new(), Vec::new());
        for (q, t) in std::mem::take(&mut self.queue).into_iter().zip(shown) {
            if q.at_us < before_us {
                settled.push((q, t));
            } else {
                undrawn.extend(t);
                kept.push(q);
            }
        }
        self.queue = kept;
        self.undrawn = undrawn;
        let known = self.prompts.known().next().map(|p| p.trim_end().to_owned());
        for (q, shown) in settled {
            let prompt = known.clone();
            if let Some(h) = self.held_mut(q.id) {
                if let Some(at) = shown
                    && h.entry.kind == EntryKind::Input
                {
                    h.entry.kind = EntryKind::Command;
                    h.entry.shown_us = Some(at);
                    if prompt.is_some() {
                        h.entry.prompt = prompt;
                    }
                }
                h.done = true;
            }
        }
    }

    // === output ===

    fn on_output(&mut self, bytes: &[u8]) {
        self.drawn_now = false;
        if let Some(line) = &mut self.line {
            line.output_seen = true;
            line.echo_seen = true;
        }
        if !self.fish && contains(bytes, "\r⏎ \r".as_bytes()) {
            // fish marks the end of output before each prompt this way.
            self.fish = true;
        }
        let mut bytes = bytes;
        // Each newline may end a pending line's row (resolving it), or a row that shows the
        // shell reading a typed-ahead line, or the row a watch waits for. A pending line is
        // also resolved where zsh or fish start drawing their next prompt (their mark for a
        // last line left without a newline): after a no-echo read there is no newline.
        while self.pending.is_some() || self.hooks_active() {
            let Some((at, newline)) = next_split(bytes, self.pending.is_some()) else {
                break;
            };
            let drawn = draws_text(&bytes[..at]);
            self.drawn_now |= drawn;
            self.term.process(&bytes[..at]);
            self.handle_marks();
            if self.pending.is_some() {
                if newline && (self.waits_for_own_echo() || self.echo_incomplete()) {
                    if let Some(p) = &mut self.pending {
                        p.output_after = true;
                    }
                } else {
                    let echo_before =
                        drawn || self.pending.as_ref().is_some_and(|p| p.output_after);
                    self.resolve(Some(echo_before));
                    self.replay_deferred();
                }
            } else if !newline || self.resolved_since_newline {
                // The newline that ends a resolved line's own row.
            } else {
                self.row_finished();
            }
            if newline {
                self.resolved_since_newline = false;
                self.counted = None;
                self.term.process(&bytes[at..=at]);
                bytes = &bytes[at + 1..];
            } else {
                bytes = &bytes[at..];
                // Past the mark, so the loop goes on to the next split.
                let skip = bytes.len().min(PROMPT_MARK_SKIP);
                if let Some(p) = &mut self.pending {
                    p.output_after = true;
                }
                self.term.process(&bytes[..skip]);
                bytes = &bytes[skip..];
            }
        }
        if !bytes.is_empty() {
            if let Some(p) = &mut self.pending {
                p.output_after = true;
            }
            self.term.process(bytes);
            self.handle_marks();
            if bytes.contains(&b'\n') {
                self.resolved_since_newline = false;
                self.counted = None;
            }
        }
        if self.queue_open() {
            self.prompts_in_a_row();
        }
    }

    fn hooks_active(&self) -> bool {
        self.watch.is_some() || self.queue_open()
    }

    fn queue_open(&self) -> bool {
        !self.queue.is_empty()
    }

    /// A typed-ahead line's Enter is only resolved at a newline that ends its own echo (the
    /// row shows what its keys typed) or a row holding the shell's prompt (the shell drew it
    /// there), not at newlines of the previous command's output.
    fn waits_for_own_echo(&self) -> bool {
        let Some(p) = &self.pending else {
            return false;
        };
        if !p.line.typed_ahead || self.prompts.is_empty() {
            return false;
        }
        let (s, e) = self.term.logical_bounds(self.term.cursor().0);
        let row = self.term.logical_text(s, e);
        if self.prompts.at_start(&row).is_some() {
            return false;
        }
        match p.line.model.text() {
            Some(m) if !m.trim().is_empty() => !row.trim_end().ends_with(m.trim()),
            _ => true,
        }
    }

    /// The pending line's echo so far is the beginning of what its keys typed: an editor broke
    /// the line at the margin itself (busybox ash), and the rest comes after this newline.
    fn echo_incomplete(&self) -> bool {
        let Some(p) = &self.pending else {
            return false;
        };
        let Some(model) = p.line.model.text() else {
            return false;
        };
        let model = model.trim();
        if model.is_empty() || p.how != Submit::Enter {
            return false;
        }
        let shown = self.read_input(&p.line).text;
        !shown.is_empty() && shown != model && lossy_prefix(&shown, model)
    }

    /// A row ended with no line pending on it: is it what a watch waits for, or the shell
    /// showing its prompt and reading a line nobody typed at it (typed ahead)?
    fn row_finished(&mut self) {
        if self.term.alternate_screen() {
            return;
        }
        let (crow, _) = self.term.cursor();
        let (s, e) = self.term.logical_bounds(crow);
        let row = self.term.logical_text(s, e);
        match self.watch.take() {
            Some(Watch::Expansion { id, typed }) => {
                if is_expansion(&typed, row.trim(), &self.prompts)
                    && let Some(h) = self.held_mut(id)
                {
                    h.entry.typed = Some(typed);
                    h.entry.text = row.trim().to_owned();
                }
                return;
            }
            Some(Watch::Editor { at_us, cwd }) => {
                let text = row.trim();
                if text.is_empty() || self.prompts.at_start(&row).is_some() {
                    // Not yet (or nothing ran): keep watching until the next key.
                    self.watch = Some(Watch::Editor { at_us, cwd });
                } else {
                    let entry = CommandEntry {
                        cwd,
                        inferred: true,
                        shown_us: Some(self.now_us),
                        ..CommandEntry::command(self.now_us.max(at_us), truncate(text))
                    };
                    self.shell_command(entry, false);
                }
                return;
            }
            None => {}
        }
        if !self.queue_open() {
            return;
        }
        let skip = match self.counted {
            Some((r, bytes)) if r == crow && bytes <= row.len() => bytes,
            _ => 0,
        };
        let mut rest = &row[skip..];
        if self.prompts.at_start(rest).is_none()
            && let Some(i) = self.prompt_in_row(rest)
        {
            // dash printed its prompt after the echo of a line still being typed ahead.
            rest = &rest[i..];
        }
        while let Some(len) = self.prompts.at_start(rest) {
            let after = &rest[len..];
            if self.prompts.at_start(after).is_some() {
                // dash: a prompt right after a prompt read a line that printed nothing.
                self.shell_reads("");
                rest = after;
                continue;
            }
            let mut shown = strip_right(after, self.prompts.right.as_deref());
            if e == s && row.chars().count() + 2 >= usize::from(self.term.size().cols) {
                // A right-side prompt that changed since it was learned (a clock, a status).
                shown = strip_right_aligned(shown);
            }
            self.shell_reads(shown.trim());
            break;
        }
    }

    /// dash prints its next prompt right after the one at which it read a typed-ahead line
    /// that printed nothing (`kt$ kt$ `): each prompt followed by another one read a line.
    fn prompts_in_a_row(&mut self) {
        let (row, col) = self.term.cursor();
        let text = self.term.row_prefix(row, col);
        let mut pos = match self.counted {
            Some((r, bytes)) if r == row && bytes <= text.len() => bytes,
            _ => 0,
        };
        if self.prompts.at_start(&text[pos..]).is_none()
            && let Some(i) = self.prompt_in_row(&text[pos..])
        {
            // After the echo of a line typed ahead (dash printed its prompts behind it).
            pos += i;
        }
        while let Some(len) = self.prompts.at_start(&text[pos..]) {
            let after = pos + len;
            if after >= text.trim_end().len() || self.prompts.at_start(&text[after..]).is_none() {
                break;
            }
            self.shell_reads("");
            pos = after;
        }
        self.counted = Some((row, pos));
    }

    /// The shell showed a prompt and went on without anyone typing at it: it read a line typed
    /// ahead. Shells that edit lines draw it after the prompt (`shown`): that one, and the
    /// lines before it were the running program's. dash draws nothing (what follows its
    /// prompt is output): counted, and settled later.
    fn shell_reads(&mut self, shown: &str) {
        let now = self.now_us;
        let drawn = (!shown.is_empty())
            .then(|| {
                self.queue
                    .iter()
                    .position(|q| q.at_us <= now && q.text.as_deref() == Some(shown))
            })
            .flatten();
        let Some(i) = drawn else {
            if self.queue.iter().any(|q| q.at_us <= now) {
                self.undrawn.push(now);
                self.state = State::Running;
            }
            return;
        };
        // FIFO: the lines before it were read by the program that was running.
        let before: Vec<u64> = self.queue[..i].iter().map(|q| q.id).collect();
        let q = self.queue.remove(i);
        for id in before {
            self.queue.retain(|x| x.id != id);
            if let Some(h) = self.held_mut(id) {
                h.done = true;
            }
        }
        let at = self.now_us;
        let known = self.prompts.known().next().map(|p| p.trim_end().to_owned());
        if let Some(h) = self.held_mut(q.id) {
            if h.entry.kind == EntryKind::Input {
                h.entry.kind = EntryKind::Command;
                h.entry.inferred = false;
                h.entry.shown_us = Some(at);
                if known.is_some() {
                    h.entry.prompt = known;
                }
            }
            // A command waits for its exit mark or the shell's next prompt.
            h.done = h.entry.kind != EntryKind::Command;
            let text = h.entry.text.clone();
            if h.entry.kind == EntryKind::Command {
                self.last_command = Some(q.id);
                if has_history_designator(&text) {
                    self.watch = Some(Watch::Expansion {
                        id: q.id,
                        typed: text,
                    });
                }
            }
        }
        self.state = State::Running;
    }

    fn handle_marks(&mut self) {
        for mark in self.term.take_marks() {
            match mark {
                Mark::PromptStart => {
                    self.marks_seen = true;
                    self.mark_running = false;
                }
                Mark::CommandStart { prompt, .. } => {
                    self.marks_seen = true;
                    self.prompts.learn(&prompt);
                    self.b_prompt = Some(prompt);
                }
                Mark::CommandExecuted => {
                    self.marks_seen = true;
                    self.mark_running = true;
                    self.b_prompt = None;
                }
                Mark::CommandFinished { exit_code } => {
                    self.marks_seen = true;
                    self.mark_running = false;
                    let queued = |id| self.queue.iter().any(|q| q.id == id);
                    if let Some(id) = self.last_command
                        && self.open != Some(id)
                        && !queued(id)
                        && let Some(h) = self.held_mut(id)
                        && h.entry.exit_code.is_none()
                    {
                        h.entry.exit_code = exit_code;
                        h.done = true;
                    }
                    self.last_command = None;
                }
                Mark::Cwd(path) => self.cwd = Some(path),
            }
        }
    }

    // === resolving a line ===

    /// Turns the pending line into an entry (or none) from what the screen shows now.
    ///
    /// `at_newline`: the output is about to echo a newline (an echoing terminal always echoes
    /// Enter as one), and whether anything was drawn since the key before it (`Some(drawn)`).
    fn resolve(&mut self, at_newline: Option<bool>) {
        let Some(Pending {
            at_us,
            line,
            how,
            output_after,
            shown_at_key,
        }) = self.pending.take()
        else {
            return;
        };
        if line.at_mark {
            self.b_prompt = None;
        }
        if self.term.alternate_screen() {
            return;
        }
        if how == Submit::Accept && at_newline.is_none() {
            // Ctrl-O that did not accept the line: it goes on.
            self.line = Some(line);
            return;
        }
        // The first moment the whole line is on the screen: the event that drew its last part
        // (with the newline), or, when that came earlier, the last output before this one.
        let shown_us = if self.drawn_now {
            self.now_us
        } else {
            self.last_output_us.max(at_us)
        };
        let mut read = self.read_input(&line);
        self.join_split_echo(&line, &mut read);
        if at_newline.is_none()
            && output_after
            && !read.text.is_empty()
            && read.found.is_prompt()
            && shown_at_key.as_deref() == Some(read.text.as_str())
        {
            // The whole line was on the screen at Enter, the shell redrew it and printed no
            // newline: its editor took the key (closing a history pager or a completion
            // menu), the line is still being edited.
            self.line = Some(line);
            return;
        }
        let mut text = read.text;
        if how == Submit::End && (text.is_empty() || !line.output_seen) {
            // Never submitted and never shown: nothing to account for.
            return;
        }
        let how = if how == Submit::End {
            Submit::Abort
        } else {
            how
        };
        if how == Submit::Abort {
            let t = text.trim_end();
            text = t.strip_suffix("^C").unwrap_or(t).trim_end().to_owned();
        }
        // Was it echoed? Output while typing says yes. Without any: at the newline, anything
        // drawn between the key and it was the (late) echo, and nothing means none (a
        // password prompt). With no newline yet: the screen shows either the late echo or,
        // after the prompt, the program's next output (bash `read -s` draws the next shell
        // prompt on the same row) or nothing; only the first is input.
        // (Nothing typed at all, only history or a line the shell put there: nothing blind.)
        let unechoed = line.printable > 0
            && match at_newline {
                Some(drawn) => !line.output_seen && !drawn,
                None => {
                    !line.echo_seen
                        && (text.is_empty()
                            || self.prompts.known().any(|p| text.starts_with(p.trim_end())))
                }
            };
        if unechoed {
            text.clear();
        }
        // Resolved before its newline, with its echo on the row: that newline ends this line's
        // row, not another one's, and the next line does not start at it.
        self.resolved_since_newline = at_newline.is_none() && !text.is_empty();
        // Nothing on screen after keys were typed: erased (an echo showed it going, or the
        // keys themselves emptied it) or typed blind.
        let erased = line.echo_seen
            || at_newline == Some(true)
            || line.model.text().is_some_and(|m| m.trim().is_empty());
        let redacted =
            line.printable > 0 && (unechoed || (text.is_empty() && !erased) || is_masked(&text));
        let prompt = (!read.prompt.trim().is_empty()).then(|| read.prompt.trim_end().to_owned());
        // Typed ahead: while a command ran, at no prompt of its own (an answer to a program's
        // prompt is not typed ahead).
        let typeahead = (line.during_run && line.prompt.trim().is_empty())
            || (line.typed_ahead && self.state == State::Running);
        if redacted {
            if how == Submit::Abort && self.state == State::Continuation {
                self.abort_open(None);
            }
            let entry = CommandEntry {
                prompt,
                cwd: line.cwd.clone(),
                typeahead,
                ..CommandEntry::redacted(at_us)
            };
            // Typed ahead, it still makes the shell show a prompt if the shell reads it: it
            // waits in the queue (kind settled, text never).
            let id = self.push(entry, !line.during_run);
            if line.during_run {
                self.queue.push(Queued {
                    id,
                    at_us,
                    text: None,
                });
            }
            return;
        }
        if how == Submit::Abort {
            self.abort(text, prompt, &line, at_us, shown_us, read.found);
            return;
        }
        if text.is_empty() {
            if line.during_run && self.state == State::Running {
                // An empty line typed ahead: no entry, but a prompt when the shell reads it.
                let id = self.new_id();
                self.queue.push(Queued {
                    id,
                    at_us,
                    text: None,
                });
            }
            return;
        }
        let text = truncate(&text);
        let at_prompt = line.start_match.is_prompt() || read.found.is_prompt();
        if self.state == State::Continuation
            && at_prompt
            && !prompt::is_continuation_prompt(&line.prompt)
            && self.redraws_open_block(&line, &read.prompt, &text, shown_us)
        {
            return;
        }
        let continues = self.state == State::Continuation
            && (prompt::is_continuation_prompt(&line.prompt)
                || !at_prompt
                || read.prompt.trim().is_empty());
        if continues {
            self.continue_open(&text, at_us, shown_us);
            return;
        }
        let marks_say_running = self.marks_seen && self.mark_running && !self.relearn;
        let mut entry = CommandEntry {
            prompt: prompt.clone(),
            cwd: line.cwd.clone(),
            typeahead,
            shown_us: Some(shown_us),
            ..CommandEntry::command(at_us, text.clone())
        };
        if (self.marks_seen && line.at_mark) || (at_prompt && !marks_say_running) {
            entry.inferred = read.inferred;
            // A prompt like a learned one is learned too (the directory in it changes); one
            // that only ends like one (output before it) is not.
            if matches!(line.start_match, Match::Exact | Match::Similar)
                && read.prompt == line.prompt
            {
                self.prompts.learn_styled(&line.prompt, &line.style);
            } else if matches!(read.found, Match::Exact | Match::Similar) {
                self.prompts.learn(&read.prompt);
            } else if matches!(line.start_match, Match::Exact | Match::Similar) {
                self.prompts.learn_styled(&line.prompt, &line.style);
            }
            self.shell_line(entry, line.right.as_deref());
            return;
        }
        let blank = line.prompt.trim().is_empty() && read.prompt.trim().is_empty();
        let after_cd = self.relearn_dir
            && !blank
            && self.state == State::Running
            && self.prompts.same_ending(&line.prompt)
            && !prompt::is_continuation_prompt(&line.prompt);
        if !blank
            && !marks_say_running
            && (self.relearn || after_cd || (self.prompts.is_empty() && self.shell_root))
        {
            // The session's first prompt, or the first after the prompt changed.
            entry.inferred = self.relearn || after_cd || read.inferred;
            self.relearn = false;
            self.relearn_dir = false;
            if read.prompt.trim().is_empty() || read.prompt == line.prompt {
                self.prompts.learn_styled(&line.prompt, &line.style);
            } else {
                self.prompts.learn(&read.prompt);
            }
            self.shell_line(entry, line.right.as_deref());
            return;
        }
        entry.kind = EntryKind::Input;
        if blank && self.state == State::Running {
            // Typed at no prompt while a command runs: the program's, or the shell's later.
            entry.inferred = true;
            entry.typeahead = true;
            let id = self.push(entry, false);
            self.queue.push(Queued {
                id,
                at_us,
                text: Some(text),
            });
            return;
        }
        if blank && self.state != State::Running && self.shell_root && !self.marks_seen {
            // At no prompt, and nothing running: a shell with an empty prompt.
            entry.kind = EntryKind::Command;
            entry.inferred = true;
            self.shell_line(entry, line.right.as_deref());
            return;
        }
        entry.inferred = blank || prompt::looks_like_a_prompt(&line.prompt);
        self.push(entry, true);
    }

    /// A command line the shell read.
    fn shell_line(&mut self, entry: CommandEntry, right: Option<&str>) {
        if let Some(r) = right {
            self.prompts.right = Some(r.to_owned());
        }
        self.last_shell_at = Some(entry.at_us);
        self.shell_command(entry, true);
    }

    fn shell_command(&mut self, entry: CommandEntry, keyed: bool) {
        let text = entry.text.clone();
        let incomplete = keyed && syntax::is_incomplete(&text, self.fish);
        let changes = prompt::changes_prompt(&text);
        let id = self.push(entry, false);
        self.last_command = Some(id);
        if keyed && has_history_designator(&text) {
            self.watch = Some(Watch::Expansion {
                id,
                typed: text.clone(),
            });
        }
        if incomplete {
            self.state = State::Continuation;
            self.open = Some(id);
        } else {
            self.state = State::Running;
            self.relearn |= changes;
            self.relearn_dir = prompt::changes_directory(&text);
        }
    }

    /// fish keeps a block in one command line and redraws all of it from its prompt: the line
    /// read at the prompt is the block's first one again. The whole block (the open command's
    /// lines and this one) is read from the screen instead.
    fn redraws_open_block(&mut self, line: &Line, prompt: &str, text: &str, shown_us: u64) -> bool {
        let Some(id) = self.open else {
            return false;
        };
        let Some(open) = self.held.iter().find(|h| h.id == id) else {
            return false;
        };
        let open_text = open.entry.text.clone();
        let first = open_text.lines().next().unwrap_or("");
        if text.lines().next() != Some(first) {
            return false;
        }
        let mut whole = line.clone();
        whole.prompt = prompt.to_owned();
        whole.start_match = Match::Exact;
        whole.typed_ahead = false;
        whole.during_run = false;
        whole.pasted_newlines += open_text.lines().count();
        let block: Vec<String> = self
            .read_input(&whole)
            .text
            .lines()
            .map(|l| l.trim().to_owned())
            .collect();
        let block = block.join("\n");
        let fish = self.fish;
        if let Some(h) = self.held_mut(id) {
            h.entry.text = truncate(&block);
            h.entry.shown_us = Some(shown_us);
        }
        if !syntax::is_incomplete(&block, fish) {
            self.open = None;
            self.state = State::Running;
            self.relearn |= prompt::changes_prompt(&block);
        }
        true
    }

    /// A line at a continuation prompt: part of the open command.
    fn continue_open(&mut self, text: &str, at_us: u64, shown_us: u64) {
        let Some(id) = self.open else {
            return;
        };
        let fish = self.fish;
        let Some(h) = self.held_mut(id) else {
            return;
        };
        let mut full = std::mem::take(&mut h.entry.text);
        if full.len() < MAX_TEXT {
            full.push('\n');
            full.push_str(text);
        }
        let complete = !syntax::is_incomplete(&full, fish);
        h.entry.text = full.clone();
        h.entry.shown_us = Some(shown_us);
        let _ = at_us;
        if complete {
            self.open = None;
            self.state = State::Running;
            self.relearn |= prompt::changes_prompt(&full);
        }
    }

    /// Ctrl-C on a line that showed `text`.
    fn abort(
        &mut self,
        text: String,
        prompt: Option<String>,
        line: &Line,
        at_us: u64,
        shown_us: u64,
        found: Match,
    ) {
        let at_prompt = line.start_match.is_prompt() || found.is_prompt();
        if self.state == State::Continuation
            && (prompt::is_continuation_prompt(&line.prompt) || !at_prompt)
        {
            self.abort_open(Some(&text));
            return;
        }
        if text.is_empty() {
            return;
        }
        let entry = CommandEntry {
            kind: EntryKind::Aborted,
            prompt,
            cwd: line.cwd.clone(),
            typeahead: line.during_run,
            shown_us: Some(shown_us),
            ..CommandEntry::command(at_us, truncate(&text))
        };
        self.push(entry, true);
        if at_prompt {
            self.state = State::Idle;
        }
    }

    /// Ctrl-C at a continuation prompt: the whole command is abandoned.
    fn abort_open(&mut self, partial: Option<&str>) {
        let Some(id) = self.open.take() else {
            self.state = State::Idle;
            return;
        };
        if let Some(h) = self.held_mut(id) {
            h.entry.kind = EntryKind::Aborted;
            if let Some(p) = partial.filter(|p| !p.is_empty()) {
                let text = &mut h.entry.text;
                text.push('\n');
                text.push_str(p);
            }
            h.done = true;
        }
        self.state = State::Idle;
    }

    fn push(&mut self, entry: CommandEntry, done: bool) -> u64 {
        let id = self.new_id();
        self.held.push_back(Held { id, entry, done });
        id
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn held_mut(&mut self, id: u64) -> Option<&mut Held> {
        self.held.iter_mut().find(|h| h.id == id)
    }

    /// The input on screen: the prompt's logical line (after a multi-line paste, the pasted
    /// lines from it down), minus the prompt and a right-side prompt, trimmed.
    fn read_input(&self, line: &Line) -> Read {
        let (crow, _) = self.term.cursor();
        let rows = self.term.size().rows;
        let own = (!line.prompt.trim().is_empty()).then_some(line.prompt.as_str());
        // Where the prompt is, looking up from the cursor (a paste, or a search drawn below).
        let prompt_at = |text: &str| -> Option<(usize, Match)> {
            // (An empty line's row ends in the prompt's own trailing blanks, trimmed away.)
            let by_own = own
                .filter(|p| text.starts_with(p) || text == p.trim_end())
                .map(|p| (p.len().min(text.len()), line.start_match));
            let by_known = self.prompts.at_start(text).map(|len| {
                let m = self.prompts.classify(&text[..len]);
                (len, m.max(Match::Similar))
            });
            if line.typed_ahead {
                by_known.or(by_own)
            } else {
                by_own.or(by_known)
            }
        };
        let (logical_start, ce) = self.term.logical_bounds(crow);
        if let Some((typed, _)) =
            self.echo_around_prompts(&self.term.logical_text(logical_start, ce), line)
        {
            // Typed ahead, its echo with the shell's prompts printed in or after it: read by
            // the shell, as typed.
            return Read {
                text: typed,
                prompt: self.prompts.known().next().unwrap_or_default().to_owned(),
                found: Match::Exact,
                inferred: true,
            };
        }
        let mut cs = logical_start;
        let mut found = None;
        if line.pasted_newlines == 0 {
            // The prompt starts the logical line, or a row in it (a row wrapped into the
            // prompt's, when the shell drew for another width before a resize reached it).
            found = (logical_start..=crow.min(ce))
                .find_map(|r| prompt_at(&self.term.logical_text(r, ce)).map(|p| (r, p)));
            if let Some((r, _)) = found {
                cs = r;
            }
        }
        let cursor_text = self.term.logical_text(cs, ce);
        // A line that started at a prompt may have been redrawn below it (a search line, a
        // multi-line paste); a typed-ahead line's echo is on the cursor row, never above.
        if found.is_none()
            && !line.typed_ahead
            && !line.during_run
            && (own.is_some() || line.at_mark)
        {
            let mut s = cs;
            let mut ups = 0;
            loop {
                let (ls, le) = self.term.logical_bounds(s);
                if let Some(p) = prompt_at(&self.term.logical_text(ls, le)) {
                    found = Some((ls, p));
                    break;
                }
                if ls == 0 || crow - ls >= MAX_UP_ROWS || ups > line.pasted_newlines {
                    break;
                }
                ups += 1;
                s = ls - 1;
            }
        }
        let (text, prompt, matched, inferred) = match found {
            Some((first, (len, m))) => {
                let mut lines = Vec::new();
                let mut r = first;
                while lines.len() <= line.pasted_newlines && r < rows {
                    let (mut ls, mut le) = self.term.logical_bounds(r);
                    if lines.is_empty() {
                        ls = first;
                    }
                    // Rows filled to the margin and broken by the editor itself go on below,
                    // as far as the cursor.
                    while le < crow && self.term.row_full(le) {
                        le = self.term.logical_bounds(le + 1).1;
                    }
                    lines.push(self.term.logical_text(ls, le));
                    r = le + 1;
                }
                let prompt = lines[0][..len].to_owned();
                lines[0] = lines[0][len..].to_owned();
                (lines.join("\n"), prompt, m, false)
            }
            None => {
                let text = cursor_text;
                let blank = line.prompt.trim().is_empty() || line.during_run;
                if let Some((i, len)) = self.prompt_inside(&text, line) {
                    // dash: typed-ahead keys echoed, then its prompt, then the rest typed.
                    let joined = format!("{}{}", &text[..i], &text[i + len..]);
                    (joined, text[i..i + len].to_owned(), Match::Exact, true)
                } else if blank {
                    // No prompt (type-ahead, a program that prints none) or fish's indent; or
                    // typed while a command ran, where the row it started on has moved on.
                    let width = if line.prompt.trim().is_empty() {
                        line.prompt.chars().count()
                    } else {
                        0
                    };
                    let cut = text
                        .char_indices()
                        .nth(width)
                        .map_or(text.len(), |(i, _)| i);
                    let (head, tail) = text.split_at(cut);
                    if head.trim().is_empty() {
                        (tail.to_owned(), line.prompt.clone(), Match::No, false)
                    } else {
                        (text.clone(), String::new(), Match::No, false)
                    }
                } else {
                    // The prompt was redrawn differently: skip its width.
                    let skip = text
                        .char_indices()
                        .nth(line.prompt.chars().count())
                        .map_or(text.len(), |(i, _)| i);
                    (
                        text[skip..].to_owned(),
                        line.prompt.clone(),
                        Match::No,
                        true,
                    )
                }
            }
        };
        let right = line.right.as_deref().or(self.prompts.right.as_deref());
        let mut text = strip_right(&text, right).trim().to_owned();
        // A right-side prompt that changed since it was seen (a clock): whatever stands apart
        // at the margin of the prompt's row, when one was seen in this session.
        if right.is_some()
            && let Some((first, _)) = found
            && let Some(live) = self.term.right_segment(first)
        {
            text = strip_right(&text, Some(live.as_str())).trim().to_owned();
        }
        // An editor that scrolls a long line sideways shows only a window of it; one without
        // Unicode support shows `?` for what it cannot draw.
        if let Some(model) = line.model.text() {
            let model = model.trim();
            if model != text && (is_window_of(&text, model) || shown_lossily(&text, model)) {
                text = model.to_owned();
            }
        }
        Read {
            text,
            prompt,
            found: matched,
            inferred,
        }
    }

    /// A line typed ahead while a command ran whose echo was cut in two by the shell's prompt
    /// (dash printed it while the line was half typed): the screen shows only the end after
    /// the prompt. When the keys' model ends with what is shown and the beginning it adds is on
    /// the screen too (echoed, a few rows up), the whole line is the model's.
    fn join_split_echo(&self, line: &Line, read: &mut Read) {
        if !(line.during_run || line.typed_ahead) || read.text.is_empty() {
            return;
        }
        let Some(model) = line.model.text() else {
            return;
        };
        let model = model.trim();
        let Some(head) = model.strip_suffix(read.text.as_str()) else {
            return;
        };
        // (What is shown was trimmed: a blank where the echo was cut belongs to neither part.)
        let head = head.trim();
        if head.is_empty() {
            return;
        }
        // Echoed where the row started (output ended with a newline), or after the shell's
        // prompt; a head of three characters or more anywhere in the row (after other output).
        let (crow, _) = self.term.cursor();
        let shown_above = (crow.saturating_sub(8)..crow).any(|r| {
            let row = self.term.row_text(r);
            let after_prompt = self.prompts.at_start(&row).map_or("", |l| &row[l..]);
            row.starts_with(head)
                || after_prompt.starts_with(head)
                || (head.chars().count() >= 3 && row.contains(head))
        });
        if shown_above {
            read.text = model.to_owned();
            read.inferred = true;
        }
    }

    /// Where a learned prompt (of three characters or more) is in `row`.
    fn prompt_in_row(&self, row: &str) -> Option<usize> {
        self.prompts
            .known()
            .filter(|p| p.trim_end().chars().count() >= 3)
            .filter_map(|p| row.find(p))
            .min()
    }

    /// A learned prompt inside a line that started at no prompt (typed ahead at dash, which
    /// printed its prompt after the first keys' echo).
    fn prompt_inside(&self, text: &str, line: &Line) -> Option<(usize, usize)> {
        if !line.during_run && !line.typed_ahead {
            return None;
        }
        self.prompts
            .known()
            .filter(|p| p.trim_end().chars().count() >= 2)
            .find_map(|p| text.find(p).map(|i| (i, p.len())))
    }

    /// A line typed ahead whose echo has the shell's prompts in it or after it (dash printed
    /// them while it was typed, before its Enter): with them taken out, the row is what the
    /// keys typed. Returns that text, and whether any prompt was taken out.
    fn echo_around_prompts(&self, text: &str, line: &Line) -> Option<(String, bool)> {
        if !line.during_run && !line.typed_ahead {
            return None;
        }
        let model = line.model.text()?;
        let model = model.trim();
        if model.is_empty() {
            return None;
        }
        // (The row's trailing blanks were trimmed: a prompt at its end lost its own.)
        let mut rest = format!("{text} ");
        let mut removed = false;
        while let Some(i) = self.prompt_in_row(&rest) {
            let len = self
                .prompts
                .known()
                .filter(|p| p.trim_end().chars().count() >= 3)
                .filter(|p| rest[i..].starts_with(*p))
                .map(str::len)
                .max()?;
            rest.replace_range(i..i + len, "");
            removed = true;
        }
        (removed && rest.trim() == model).then(|| (model.to_owned(), removed))
    }
}

/// What [`TtyExtractor::read_input`] found.
#[derive(Debug)]
struct Read {
    text: String,
    /// The prompt in front of it, as shown.
    prompt: String,
    /// How that prompt matched the learned ones.
    found: Match,
    /// The prompt could not be found where the line started: its width was skipped.
    inferred: bool,
}

/// Whether the session's program is a shell, and fish (from its command line).
fn root_shell(command: &[String]) -> (bool, bool) {
    let mut args = command.iter().map(String::as_str).peekable();
    // Through `env [-i] [VAR=value]...`.
    while let Some(a) = args.peek() {
        let base = a.rsplit('/').next().unwrap_or(a);
        if base == "env" || a.starts_with('-') && base != "-" || a.contains('=') {
            args.next();
            continue;
        }
        break;
    }
    let Some(first) = args.next() else {
        return (true, false);
    };
    let name = first
        .rsplit('/')
        .next()
        .unwrap_or(first)
        .trim_start_matches('-');
    let shell = matches!(
        name,
        "sh" | "bash"
            | "dash"
            | "ash"
            | "zsh"
            | "ksh"
            | "mksh"
            | "fish"
            | "busybox"
            | "yash"
            | "tcsh"
            | "csh"
            | "su"
            | "sudo"
            | "login"
            | "tmux"
            | "screen"
            | "ssh"
    );
    let rest: Vec<&str> = args.collect();
    let scripted = rest.contains(&"-c");
    (shell && !scripted, name == "fish")
}

/// Removes a right-side prompt from the end of a line, where it stands apart by a blank.
fn strip_right<'a>(text: &'a str, right: Option<&str>) -> &'a str {
    let Some(right) = right.filter(|r| !r.is_empty()) else {
        return text;
    };
    let t = text.trim_end();
    match t.strip_suffix(right) {
        Some(rest) if rest.ends_with(' ') => rest.trim_end(),
        _ => text,
    }
}

/// Whether output shows any character (not only controls and escape sequences).
fn draws_text(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x1b => {
                i += 1;
                match bytes.get(i) {
                    Some(b'[') => {
                        i += 1;
                        while bytes.get(i).is_some_and(|b| !(0x40..=0x7e).contains(b)) {
                            i += 1;
                        }
                    }
                    Some(b']' | b'P' | b'_' | b'^' | b'X') => {
                        while i < bytes.len()
                            && bytes[i] != 0x07
                            && !(bytes[i] == 0x1b && bytes.get(i + 1) == Some(&b'\\'))
                        {
                            i += 1;
                        }
                        i += 1;
                    }
                    Some(b'(' | b')' | b'*' | b'+') => i += 1,
                    _ => {}
                }
                i += 1;
            }
            0x20..=0x7e | 0x80..=0xff => return true,
            _ => i += 1,
        }
    }
    false
}

/// zsh marks a line left without a final newline before drawing its prompt (an inverse `%`
/// or `#`), fish with a dim `⏎`; where one starts, whatever came before is complete.
const PROMPT_MARKS: &[&[u8]] = &[
    b"\x1b[7m%\x1b[27m",
    b"\x1b[7m#\x1b[27m",
    "\x1b[2m⏎".as_bytes(),
];

/// Bytes passed over after a prompt mark's start (the shortest mark's length).
const PROMPT_MARK_SKIP: usize = 4;

/// Where `bytes` must be cut next: at a newline, or (while a line is pending) where a prompt
/// mark starts; `true` for a newline.
fn next_split(bytes: &[u8], marks: bool) -> Option<(usize, bool)> {
    let newline = bytes.iter().position(|&b| b == b'\n');
    let mark = if marks {
        PROMPT_MARKS
            .iter()
            .filter_map(|m| bytes.windows(m.len()).position(|w| w == *m))
            .min()
    } else {
        None
    };
    match (newline, mark) {
        (Some(n), Some(m)) if m < n => Some((m, false)),
        (Some(n), _) => Some((n, true)),
        (None, Some(m)) => Some((m, false)),
        (None, None) => None,
    }
}

/// Echoed as a mask, one character per key (`*`, or fish's and others' bullets): a password
/// typed where echo showed only that it was typed.
fn is_masked(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    matches!(first, '*' | '●' | '•' | '∙' | '·' | '○' | '◦' | '⁕' | '✱')
        && text.chars().all(|c| c == first)
}

/// Removes text at the right margin set apart by a wide gap (a right-side prompt).
fn strip_right_aligned(text: &str) -> &str {
    let t = text.trim_end();
    match t.rfind("   ") {
        Some(gap) if !t[gap..].trim().is_empty() && !t[..gap].trim().is_empty() => {
            t[..gap].trim_end()
        }
        _ => text,
    }
}

/// Whether `shown` is `model` drawn by an editor that shows `?` (once or once per column) for
/// each character it cannot draw (busybox built without Unicode support).
fn shown_lossily(shown: &str, model: &str) -> bool {
    fn matches(shown: &[char], model: &[char]) -> bool {
        match model.split_first() {
            None => shown.is_empty(),
            Some((m, rest)) if m.is_ascii() => {
                shown.first() == Some(m) && matches(&shown[1..], rest)
            }
            Some((_, rest)) => {
                shown.first() == Some(&'?')
                    && (matches(&shown[1..], rest)
                        || (shown.get(1) == Some(&'?') && matches(&shown[2..], rest)))
            }
        }
    }
    if shown == model || model.is_ascii() || model.len() > 4096 {
        return false;
    }
    let shown: Vec<char> = shown.chars().collect();
    let model: Vec<char> = model.chars().collect();
    matches(&shown, &model)
}

/// Whether `shown` is the beginning of `model`, maybe drawn with `?` for what the editor
/// cannot draw.
fn lossy_prefix(shown: &str, model: &str) -> bool {
    if model.starts_with(shown) {
        return true;
    }
    let m: Vec<char> = model.chars().collect();
    (1..m.len()).any(|k| {
        let prefix: String = m[..k].iter().collect();
        shown_lossily(shown, &prefix)
    })
}

/// Whether `shown` is a sideways-scrolled window of `model`: mksh marks a line cut on the
/// left or right with `<`, `>` or `*` in the last column.
fn is_window_of(shown: &str, model: &str) -> bool {
    let Some(core) = shown.trim_end().strip_suffix(['<', '>', '*']) else {
        return false;
    };
    let core = core.trim();
    core.chars().count() >= 4 && core.len() < model.len() && model.contains(core)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let cut = (0..=MAX_TEXT)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let mut out = text[..cut].to_owned();
    out.push('…');
    out
}

/// Whether bash or zsh would expand history in `text`: `!!`, `!$`, `!n`, `!-n`, `!word`,
/// `!?word?` outside single quotes, or a line starting with `^` (`^old^new`).
pub(crate) fn has_history_designator(text: &str) -> bool {
    if text.starts_with('^') {
        return true;
    }
    designators(text).next().is_some()
}

/// Byte ranges of the history designators in `text`.
fn designators(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut single = false;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'\'' {
                single = !single;
            } else if b == b'\\' {
                i += 2;
                continue;
            } else if b == b'!' && !single {
                let start = i;
                let next = bytes.get(i + 1).copied();
                let mut end = i + 1;
                match next {
                    Some(b'!' | b'$' | b'^' | b'*' | b'#') => end = i + 2,
                    Some(b'-' | b'0'..=b'9') => {
                        end = i + 2;
                        while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                            end += 1;
                        }
                    }
                    Some(b'?') => {
                        end = i + 2;
                        while bytes.get(end).is_some_and(|&c| c != b'?') {
                            end += 1;
                        }
                        end = (end + 1).min(bytes.len());
                    }
                    Some(c) if c.is_ascii_alphabetic() => {
                        while bytes
                            .get(end)
                            .is_some_and(|&c| !c.is_ascii_whitespace() && c != b';' && c != b'|')
                        {
                            end += 1;
                        }
                    }
                    _ => {
                        i += 1;
                        continue;
                    }
                }
                // A word designator (`!!:1`, `!$:h`) belongs to it.
                while bytes.get(end) == Some(&b':')
                    && bytes.get(end + 1).is_some_and(|c| !c.is_ascii_whitespace())
                {
                    end += 2;
                    while bytes.get(end).is_some_and(|c| c.is_ascii_alphanumeric()) {
                        end += 1;
                    }
                }
                i = end;
                return Some((start, end));
            }
            i += 1;
        }
        None
    })
}

/// Whether `row`, printed right after `typed` was entered, is its expansion: not a prompt,
/// not an error, no designator left, and the typed text's literal parts in place.
fn is_expansion(typed: &str, row: &str, prompts: &Prompts) -> bool {
    if row.is_empty() || row == typed || prompts.at_start(row).is_some() {
        return false;
    }
    const ERRORS: &[&str] = &[
        "event not found",
        "no such event",
        "substitution failed",
        "bad word specifier",
        "no previous",
    ];
    if ERRORS.iter().any(|e| row.contains(e)) || designators(row).next().is_some() {
        return false;
    }
    if let Some(rest) = typed.strip_prefix('^') {
        // ^old^new: the new text is in the line that ran.
        let new = rest.split('^').nth(1).unwrap_or("");
        return new.is_empty() || row.contains(new);
    }
    let mut literal = Vec::new();
    let mut last = 0;
    for (s, e) in designators(typed) {
        literal.push(&typed[last..s]);
        last = e;
    }
    literal.push(&typed[last..]);
    let first = literal.first().copied().unwrap_or("");
    let final_part = literal.last().copied().unwrap_or("");
    if !row.starts_with(first.trim_end()) || !row.ends_with(final_part.trim_start()) {
        return false;
    }
    let mut at = 0;
    for part in &literal {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        match row[at..].find(part) {
            Some(i) => at += i + part.len(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_designators() {
        for t in [
            "!!",
            "sudo !!",
            "echo !$",
            "!-2",
            "!42",
            "!ls",
            "vim !?conf?",
            "^a^b",
            "echo !!:1",
        ] {
            assert!(has_history_designator(t), "{t:?}");
        }
        for t in ["echo hi!", "echo 'a!!b'", "[ ! -f x ]", "echo \\!!", "ls"] {
            assert!(!has_history_designator(t), "{t:?}");
        }
    }

    #[test]
    fn expansions_are_told_from_output() {
        let p = Prompts::default();
        assert!(is_expansion("sudo !!", "sudo echo one", &p));
        assert!(is_expansion("!!", "echo one", &p));
        assert!(is_expansion("^one^two", "sudo echo two", &p));
        assert!(is_expansion("echo !$ done", "echo /tmp done", &p));
        assert!(!is_expansion("sudo !!", "dash: 1: sudo: not found", &p));
        assert!(!is_expansion("!!", "dash: 1: !!: not found", &p));
        assert!(!is_expansion("!foo", "bash: !foo: event not found", &p));
        assert!(!is_expansion("!foo", "zsh: event not found: foo", &p));
    }

    #[test]
    fn session_programs() {
        let argv = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(root_shell(&argv(&["bash", "--norc"])), (true, false));
        assert_eq!(
            root_shell(&argv(&["env", "KT_CASE=x", "fish", "--no-config"])),
            (true, true)
        );
        assert_eq!(root_shell(&argv(&["/usr/bin/python3"])), (false, false));
        assert_eq!(root_shell(&argv(&["sh", "-c", "top"])), (false, false));
        assert_eq!(root_shell(&[]), (true, false));
        assert_eq!(root_shell(&argv(&["-zsh"])), (true, false));
    }

    #[test]
    fn windows_and_lossy_echoes() {
        let model = "echo xxxxxxxxxx yyyyyyyyyy";
        assert!(is_window_of("xxxxx yyyyyyyyyy        <", model));
        assert!(!is_window_of("echo", model));
        assert!(!is_window_of(model, model));
        assert!(shown_lossily("echo xx??ok", "echo xx漢字ok"));
        assert!(shown_lossily("echo ?ok", "echo 漢ok"));
        assert!(!shown_lossily("echo ?ok", "echo ok"));
        assert!(!shown_lossily("echo xx", "echo xx"));
    }
}
