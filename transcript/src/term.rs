//! A terminal emulator that cannot panic: `vt100` behind clamped sizes and an unwind guard.
//!
//! Recordings are outside input: a session may resize to 0×0 or 65535×65535 and its output may
//! be any bytes. `vt100` allocates `rows × cols` cells and has a few internal `unwrap`s, so every
//! size goes through [`clamp_size`] and every call into the parser runs under `catch_unwind`.
//! If the parser ever panics, the screen is reset to a blank one of the same size and
//! [`Terminal::faults`] counts it: a damaged frame in a replay beats a crashed player.

use std::panic::{AssertUnwindSafe, catch_unwind};

use storage_schema::{Event, EventKind, Stream, TermSize};

/// Smallest and largest sizes the emulator accepts; anything outside is clamped.
/// 1000×500 cells is 16 MB per grid in `vt100` (32 bytes a cell): the upper bound on memory a
/// hostile resize can ask for.
pub const MIN_COLS: u16 = 2;
/// Two rows at least: `vt100` 0.16 panics (`col_wrap` subtracts a scroll from row 0) when
/// text wraps on a one-row screen — found by the fuzzer.
pub const MIN_ROWS: u16 = 2;
pub const MAX_COLS: u16 = 1000;
pub const MAX_ROWS: u16 = 500;

/// Size used when a recording does not say (non-TTY sessions, old metadata).
pub const DEFAULT_SIZE: TermSize = TermSize { cols: 80, rows: 24 };

/// `size` moved into the supported range.
pub fn clamp_size(size: TermSize) -> TermSize {
    TermSize {
        cols: size.cols.clamp(MIN_COLS, MAX_COLS),
        rows: size.rows.clamp(MIN_ROWS, MAX_ROWS),
    }
}

/// A shell-integration mark seen in the output (OSC 133 / OSC 7), with where the cursor was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mark {
    /// OSC 133;A — a prompt starts.
    PromptStart,
    /// OSC 133;B — the prompt ended; the command line starts at this cursor position.
    CommandStart { row: u16, col: u16, prompt: String },
    /// OSC 133;C — the command was accepted and is running.
    CommandExecuted,
    /// OSC 133;D[;code] — the command finished.
    CommandFinished { exit_code: Option<i32> },
    /// OSC 7 — the working directory (path part of the `file://host/path` URL).
    Cwd(String),
}

/// Longest OSC 7 path kept; longer ones are dropped rather than stored truncated.
const MAX_CWD_LEN: usize = 4096;

/// Receives what `vt100` does not handle itself; we only keep shell-integration marks.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    /// Marks seen since the caller last drained them; only collected when `collect` is set so a
    /// plain player does not accumulate them forever.
    marks: Vec<Mark>,
    collect: bool,
}

impl vt100::Callbacks for Hooks {
    fn unhandled_osc(&mut self, screen: &mut vt100::Screen, params: &[&[u8]]) {
        if !self.collect {
            return;
        }
        let mark = match params {
            [b"133", kind, rest @ ..] => match *kind {
                b"A" => Mark::PromptStart,
                b"B" => {
                    let (row, col) = screen.cursor_position();
                    Mark::CommandStart {
                        row,
                        col,
                        prompt: row_prefix(screen, row, col),
                    }
                }
                b"C" => Mark::CommandExecuted,
                b"D" => Mark::CommandFinished {
                    exit_code: rest
                        .first()
                        .and_then(|c| std::str::from_utf8(c).ok())
                        .and_then(|c| c.parse().ok()),
                },
                _ => return,
            },
            [b"7", url, ..] => match cwd_from_url(url) {
                Some(path) => Mark::Cwd(path),
                None => return,
            },
            _ => return,
        };
        // A hostile stream could emit marks forever without us draining; keep it bounded.
        if self.marks.len() < 4096 {
            self.marks.push(mark);
        }
    }
}

/// The text of `row` left of column `col`, blanks kept (a prompt ends in a space).
fn row_prefix(screen: &vt100::Screen, row: u16, col: u16) -> String {
    let mut out = String::new();
    for c in 0..col {
        match screen.cell(row, c) {
            Some(cell) if cell.is_wide_continuation() => {}
            Some(cell) if cell.has_contents() => out.push_str(cell.contents()),
            _ => out.push(' '),
        }
    }
    out
}

/// The path of an OSC 7 `file://host/path` URL, percent-decoded.
fn cwd_from_url(url: &[u8]) -> Option<String> {
    let url = std::str::from_utf8(url).ok()?;
    let rest = url.strip_prefix("file://")?;
    let path = &rest[rest.find('/')?..];
    if path.len() > MAX_CWD_LEN {
        return None;
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A terminal screen fed with a session's output.
pub struct Terminal {
    parser: vt100::Parser<Hooks>,
    faults: u32,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("size", &self.size())
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl Terminal {
    /// A blank screen of `size` (clamped), no scrollback.
    pub fn new(size: TermSize) -> Self {
        let size = clamp_size(size);
        Self {
            parser: vt100::Parser::new_with_callbacks(size.rows, size.cols, 0, Hooks::default()),
            faults: 0,
        }
    }

    /// Feeds output bytes (what the pod wrote to the terminal).
    pub fn process(&mut self, bytes: &[u8]) {
        let parser = &mut self.parser;
        if catch_unwind(AssertUnwindSafe(|| parser.process(bytes))).is_err() {
            self.recover();
        }
    }

    /// Applies one recorded event: output and resizes change the screen, everything else
    /// (stdin, exit, markers, port-forward) does not.
    pub fn apply(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Data {
                stream: Stream::Stdout | Stream::Stderr,
                bytes,
            } => self.process(bytes),
            EventKind::Resize { cols, rows } => self.resize(TermSize {
                cols: *cols,
                rows: *rows,
            }),
            _ => {}
        }
    }

    /// Changes the size (clamped), keeping what fits, as a real terminal does.
    pub fn resize(&mut self, size: TermSize) {
        let size = clamp_size(size);
        if size == self.size() {
            return;
        }
        let screen = self.parser.screen_mut();
        if catch_unwind(AssertUnwindSafe(|| screen.set_size(size.rows, size.cols))).is_err() {
            self.recover();
        }
    }

    /// Current size (always within the clamped range).
    pub fn size(&self) -> TermSize {
        let (rows, cols) = self.parser.screen().size();
        TermSize { cols, rows }
    }

    /// Cursor position as `(row, col)`, zero-based.
    pub fn cursor(&self) -> (u16, u16) {
        self.parser.screen().cursor_position()
    }

    /// Whether a full-screen program (vim, less, top) has switched to the alternate screen.
    pub fn alternate_screen(&self) -> bool {
        self.parser.screen().alternate_screen()
    }

    /// Whether the program hid the cursor.
    pub fn hide_cursor(&self) -> bool {
        self.parser.screen().hide_cursor()
    }

    /// The text of one row, trailing blanks removed; empty for a row outside the screen.
    pub fn row_text(&self, row: u16) -> String {
        let mut out = self.row_prefix(row, u16::MAX);
        out.truncate(out.trim_end().len());
        out
    }

    /// The text of `row` left of column `col` (clamped to the width), blanks kept.
    pub fn row_prefix(&self, row: u16, col: u16) -> String {
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        if row >= rows {
            return String::new();
        }
        row_prefix(screen, row, col.min(cols))
    }

    /// Whether `row` continues on the next row because the text wrapped at the right margin.
    pub fn row_wrapped(&self, row: u16) -> bool {
        self.parser.screen().row_wrapped(row)
    }

    /// First and last row of the logical line (rows joined by autowrap) containing `row`.
    pub(crate) fn logical_bounds(&self, row: u16) -> (u16, u16) {
        let rows = self.size().rows;
        let row = row.min(rows - 1);
        let mut s = row;
        while s > 0 && self.joins_next(s - 1) {
            s -= 1;
        }
        let mut e = row;
        while e + 1 < rows && self.joins_next(e) {
            e += 1;
        }
        (s, e)
    }

    /// Whether `row` goes on in the next one: it wrapped at the margin, or a wide character
    /// that did not fit in its last cell moved to the next row (`vt100` does not mark that
    /// row as wrapped; the cell left behind is blank, or a space a line editor put there).
    fn joins_next(&self, row: u16) -> bool {
        if self.row_wrapped(row) {
            return true;
        }
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        if row + 1 >= rows || cols < 3 {
            return false;
        }
        let blank =
            |c: Option<&vt100::Cell>| c.is_none_or(|c| !c.has_contents() || c.contents() == " ");
        blank(screen.cell(row, cols - 1))
            && !blank(screen.cell(row, cols - 2))
            && screen.cell(row + 1, 0).is_some_and(|c| c.is_wide())
    }

    /// The last part of `row` set apart by three blanks or more and ending within two cells of
    /// the margin: where a right-side prompt is, whatever it shows now.
    pub(crate) fn right_segment(&self, row: u16) -> Option<String> {
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        if row >= rows {
            return None;
        }
        let last = (0..cols).rev().find(|&c| {
            screen
                .cell(row, c)
                .is_some_and(|cell| cell.has_contents() && cell.contents() != " ")
        })?;
        if last + 3 < cols {
            return None;
        }
        let text = self.row_text(row);
        let gap = text.rfind("   ")?;
        let segment = text[gap..].trim();
        (!segment.is_empty() && !text[..gap].trim().is_empty()).then(|| segment.to_owned())
    }

    /// The styles of `row`'s first `cols` cells, one value per run of equal style (colours,
    /// bold, inverse, underline): a prompt's shape, whatever its text.
    pub(crate) fn style_runs(&self, row: u16, cols: u16) -> Vec<u32> {
        let screen = self.parser.screen();
        let mut runs: Vec<u32> = Vec::new();
        for col in 0..cols.min(screen.size().1) {
            let Some(cell) = screen.cell(row, col) else {
                break;
            };
            if cell.is_wide_continuation() {
                continue;
            }
            let colour = |c: vt100::Color| match c {
                vt100::Color::Default => 0u32,
                vt100::Color::Idx(i) => 1 + u32::from(i),
                vt100::Color::Rgb(r, g, b) => {
                    257 + (u32::from(r) >> 5) * 64 + (u32::from(g) >> 5) * 8 + (u32::from(b) >> 5)
                }
            };
            let key = colour(cell.fgcolor())
                | colour(cell.bgcolor()) << 10
                | u32::from(cell.bold()) << 20
                | u32::from(cell.inverse()) << 21
                | u32::from(cell.underline()) << 22;
            if runs.last() != Some(&key) {
                runs.push(key);
            }
        }
        runs
    }

    /// Whether `row` is filled to its last cell: a line editor that breaks long lines itself
    /// (busybox ash writes the last column, then CR LF) leaves such a row unmarked as wrapped.
    pub(crate) fn row_full(&self, row: u16) -> bool {
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        row < rows
            && screen
                .cell(row, cols - 1)
                .is_some_and(|c| c.has_contents() && c.contents() != " ")
    }

    /// The text of rows `start..=end` joined as one line, trailing blanks removed. Where a
    /// wide character did not fit at the end of a row, the blank cell it left is not part of
    /// the text (nobody typed a space there).
    pub(crate) fn logical_text(&self, start: u16, end: u16) -> String {
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        let mut text = String::new();
        for r in start..=end.min(rows.saturating_sub(1)) {
            let mut width = cols;
            let next_wide = r < end && screen.cell(r + 1, 0).is_some_and(|c| c.is_wide());
            if next_wide
                && screen
                    .cell(r, cols - 1)
                    .is_some_and(|c| !c.has_contents() || c.contents() == " ")
            {
                width -= 1;
            }
            text.push_str(&row_prefix(screen, r, width));
        }
        text.truncate(text.trim_end().len());
        text
    }

    /// Text at the right end of `row` that stands apart from what is left of `col`: a right-side
    /// prompt (zsh's RPROMPT, fish's right prompt), which ends within two cells of the margin
    /// and is separated by blanks.
    pub(crate) fn right_text(&self, row: u16, col: u16) -> Option<String> {
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        if row >= rows || col >= cols {
            return None;
        }
        let last = (col..cols).rev().find(|&c| {
            screen
                .cell(row, c)
                .is_some_and(|cell| cell.has_contents() && cell.contents() != " ")
        })?;
        if last + 3 < cols {
            return None;
        }
        let rest = row_prefix(screen, row, cols);
        let rest: String = rest.chars().skip(usize::from(col)).collect();
        let trimmed = rest.trim_start();
        let gap = rest.len() - trimmed.len();
        (gap >= 1 && !trimmed.trim_end().is_empty()).then(|| trimmed.trim_end().to_owned())
    }

    /// The whole visible screen as text, one line per row, trailing blanks removed.
    pub fn text(&self) -> String {
        let rows = self.size().rows;
        let mut lines: Vec<String> = (0..rows).map(|r| self.row_text(r)).collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines.join("\n")
    }

    /// Escape sequences that draw this screen (contents, attributes, input modes, cursor) on a
    /// blank terminal of the same size: what a renderer or an exporter writes to show "the
    /// screen at this moment".
    pub fn formatted(&self) -> Vec<u8> {
        let screen = self.parser.screen();
        let mut out = screen.state_formatted();
        out.extend_from_slice(&screen.cursor_state_formatted());
        out
    }

    /// The underlying `vt100` screen, for renderers that draw cell by cell (colours,
    /// attributes). Only read-only, non-panicking accessors are reachable through it.
    pub fn screen(&self) -> &vt100::Screen {
        self.parser.screen()
    }

    /// How many times the emulator had to be reset after an internal panic.
    pub fn faults(&self) -> u32 {
        self.faults
    }

    /// Escape sequences that rebuild this terminal on a blank one of the same size, including
    /// the primary screen hidden behind the alternate one (so leaving vim after a seek shows
    /// the shell again). Scrollback is not kept (there is none).
    pub fn snapshot(&self) -> Vec<u8> {
        if !self.alternate_screen() {
            return self.formatted();
        }
        let screen = self.parser.screen();
        let primary = catch_unwind(AssertUnwindSafe(|| {
            let (rows, cols) = screen.size();
            let mut p = vt100::Parser::new(rows, cols, 0);
            *p.screen_mut() = screen.clone();
            // Leaving the alternate screen restores the primary one and its saved cursor.
            p.process(b"\x1b[?1049l");
            let mut out = p.screen().state_formatted();
            out.extend_from_slice(&p.screen().cursor_state_formatted());
            out
        }))
        .unwrap_or_default();
        let mut out = primary;
        out.extend_from_slice(b"\x1b[?1049h");
        out.extend_from_slice(&self.formatted());
        out
    }

    /// Turns collection of shell-integration marks on (the extractor needs them; a player not).
    pub(crate) fn collect_marks(&mut self, on: bool) {
        self.parser.callbacks_mut().collect = on;
    }

    /// Marks seen since the last call, oldest first.
    pub(crate) fn take_marks(&mut self) -> Vec<Mark> {
        std::mem::take(&mut self.parser.callbacks_mut().marks)
    }

    /// After a panic inside `vt100`: a new parser around a copy of the screen as the panic left
    /// it (cursor moves are the usual casualty), or a blank screen if even that fails.
    fn recover(&mut self) {
        self.faults = self.faults.saturating_add(1);
        let size = self.size_after_panic();
        let collect = self.parser.callbacks().collect;
        let screen = &self.parser;
        let kept = catch_unwind(AssertUnwindSafe(|| {
            let screen = screen.screen().clone();
            // Prove the copy usable before trusting it.
            let _ = screen.contents_formatted();
            screen
        }));
        self.parser = vt100::Parser::new_with_callbacks(size.rows, size.cols, 0, Hooks::default());
        if let Ok(screen) = kept {
            *self.parser.screen_mut() = screen;
        }
        self.parser.callbacks_mut().collect = collect;
    }

    /// The size to rebuild with after a panic: the screen's own if it still answers sanely.
    fn size_after_panic(&self) -> TermSize {
        let screen = &self.parser;
        catch_unwind(AssertUnwindSafe(|| {
            let (rows, cols) = screen.screen().size();
            clamp_size(TermSize { cols, rows })
        }))
        .unwrap_or(DEFAULT_SIZE)
    }
}

/// Whether a panic comes from inside `vt100`, i.e. one [`Terminal`] catches and survives: panic
/// hooks use it to tell those from real failures.
pub fn is_vt100_panic(info: &std::panic::PanicHookInfo<'_>) -> bool {
    info.location()
        .is_some_and(|l| l.file().contains("/vt100-"))
}

/// Keeps the panics [`Terminal`] catches inside `vt100` (on hostile or odd input, counted in
/// [`Terminal::faults`]) from being printed by the default panic hook: in the gateway they would
/// clutter the logs, in the player they would land on the screen. Any other panic goes to the
/// hook that was installed before. Call once, early in `main`.
pub fn quiet_vt100_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !is_vt100_panic(info) {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(cols: u16, rows: u16) -> Terminal {
        Terminal::new(TermSize { cols, rows })
    }

    #[test]
    fn sizes_are_clamped() {
        assert_eq!(term(0, 0).size(), TermSize { cols: 2, rows: 2 });
        assert_eq!(
            term(u16::MAX, u16::MAX).size(),
            TermSize {
                cols: MAX_COLS,
                rows: MAX_ROWS
            }
        );
        let mut t = term(80, 24);
        t.resize(TermSize { cols: 0, rows: 0 });
        assert_eq!(t.size(), TermSize { cols: 2, rows: 2 });
        t.process(b"hello world\r\nsecond");
        t.resize(TermSize {
            cols: 65535,
            rows: 1,
        });
        assert_eq!(t.size().cols, MAX_COLS);
    }

    #[test]
    fn text_cursor_and_alternate_screen() {
        let mut t = term(20, 5);
        t.process(b"$ ls\r\na  b\r\n$ ");
        assert_eq!(t.text(), "$ ls\na  b\n$");
        assert_eq!(t.cursor(), (2, 2));
        assert!(!t.alternate_screen());
        t.process(b"\x1b[?1049h\x1b[Hvim");
        assert!(t.alternate_screen());
        assert_eq!(t.row_text(0), "vim");
        t.process(b"\x1b[?1049l");
        assert!(!t.alternate_screen());
        assert_eq!(t.row_text(1), "a  b");
        assert_eq!(t.row_text(99), "");
    }

    #[test]
    fn wrapped_rows_are_reported() {
        let mut t = term(10, 4);
        t.process(b"0123456789abc");
        assert!(t.row_wrapped(0));
        assert!(!t.row_wrapped(1));
        assert_eq!(t.row_text(1), "abc");
    }

    #[test]
    fn logical_lines_join_wrapped_rows_without_the_wide_character_gap() {
        let mut t = term(10, 4);
        // Nine cells, then a wide character that does not fit in the last one.
        t.process("$ abcdefg漢字x".as_bytes());
        assert_eq!(t.logical_bounds(1), (0, 1));
        assert_eq!(t.logical_text(0, 1), "$ abcdefg漢字x");
        // An editor that writes a space into the last cell itself.
        let mut t = term(10, 4);
        t.process("$ abcdefg \r\n漢字x".as_bytes());
        assert_eq!(t.logical_bounds(0), (0, 1));
        assert_eq!(t.logical_text(0, 1), "$ abcdefg漢字x");
        // A space that was typed at the margin is kept.
        let mut t = term(10, 4);
        t.process(b"$ abcdefg xyz");
        assert_eq!(t.logical_text(0, 1), "$ abcdefg xyz");
        // Rows that merely end short are separate lines.
        let mut t = term(10, 4);
        t.process("$ abc\r\n漢字".as_bytes());
        assert_eq!(t.logical_bounds(0), (0, 0));
    }

    #[test]
    fn right_side_text_is_found_only_at_the_margin() {
        let mut t = term(30, 3);
        t.process(b"kt$ \x1b[20C[0] 1\x1b[25D");
        assert_eq!(t.cursor(), (0, 4));
        assert_eq!(t.right_text(0, 4).as_deref(), Some("[0] 1"));
        let mut t = term(30, 3);
        t.process(b"kt$ ls -la");
        assert_eq!(t.right_text(0, 4), None);
    }

    #[test]
    fn formatted_restores_the_screen() {
        let mut t = term(30, 6);
        t.process(b"\x1b[31mred\x1b[0m plain\r\n\x1b[1mbold\x1b[0m\r\n> ");
        let mut u = term(30, 6);
        u.process(&t.formatted());
        assert_eq!(u.text(), t.text());
        assert_eq!(u.cursor(), t.cursor());
        assert_eq!(
            u.screen().cell(0, 0).map(|c| c.fgcolor()),
            Some(vt100::Color::Idx(1))
        );
    }

    #[test]
    fn osc_marks_are_collected_with_the_cursor() {
        let mut t = term(40, 5);
        t.collect_marks(true);
        t.process(b"\x1b]133;A\x07kt$ \x1b]133;B\x07ls\r\n\x1b]133;C\x07out\r\n\x1b]133;D;2\x07");
        t.process(b"\x1b]7;file://host/tmp/my%20dir\x1b\\");
        assert_eq!(
            t.take_marks(),
            vec![
                Mark::PromptStart,
                Mark::CommandStart {
                    row: 0,
                    col: 4,
                    prompt: "kt$ ".into()
                },
                Mark::CommandExecuted,
                Mark::CommandFinished { exit_code: Some(2) },
                Mark::Cwd("/tmp/my dir".into()),
            ]
        );
        assert!(t.take_marks().is_empty());
    }

    #[test]
    fn wrapping_on_the_smallest_screen_is_no_fault() {
        // The fuzzer's first find: a wrap on a 2×1 screen panicked inside vt100.
        let mut t = term(0, 0);
        t.process(b"R4(wrapping text on a tiny screen");
        assert_eq!(t.faults(), 0);
        assert_eq!(t.size(), TermSize { cols: 2, rows: 2 });
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let mut t = term(3, 1);
        let nasty: &[&[u8]] = &[
            b"\x1b[99999;99999H\x1b[99999@\x1b[99999P\x1b[99999L\x1b[99999M",
            b"\x1b[0;0r\x1b[5;2r\x1b[99999;1r\x1b[?1049h\x1b[99999X\x1b[99999b",
            "\u{1F600}\u{1F600}\u{1F600}\u{0301}\u{200D}".as_bytes(),
            b"\x1b[8;0;0t\x1b[8;65535;65535t\x1b]133;D;99999999999999\x07",
            b"\xff\xfe\xc3\x1b[\x1b]\x1bP\x90\x9c",
            b"\x1b[?1049l\x1b[?47h\x1b[?47l\x1b[?1049l\x1b8\x1b7\x1bc",
        ];
        for size in [(1, 1), (2, 1), (3, 2), (1000, 1)] {
            t.resize(TermSize {
                cols: size.0,
                rows: size.1,
            });
            for bytes in nasty {
                t.process(bytes);
                for b in bytes.iter() {
                    t.process(&[*b]);
                }
                let _ = t.text();
                let _ = t.formatted();
            }
        }
        // vt100 0.16 does panic on some of these (an overflow in `col_wrap`); the guard must
        // have caught it and left a working terminal of a sane size.
        t.resize(TermSize { cols: 10, rows: 2 });
        t.process(b"\x1bc\x1b[?1049lafter");
        assert_eq!(t.size(), TermSize { cols: 10, rows: 2 });
        assert_eq!(t.row_text(0), "after");
    }
}
