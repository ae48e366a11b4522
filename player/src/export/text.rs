//! Terminal output as plain text, the way it read on screen line by line: escape sequences
//! dropped, carriage returns and backspaces applied (progress bars and line editing collapse to
//! their final state), tabs expanded. Full-screen programs (the alternate screen: vim, less,
//! top) are replaced by one note, since their redraws are not a transcript.
//!
//! Deliberately not a terminal emulator: cursor movement up/down and scroll regions are not
//! followed, so the text of a line-oriented session is exact and a full-screen one is noted.

use std::io::{self, Write};

/// Streams output bytes in, text lines out.
#[derive(Debug)]
pub struct TextRenderer<W: Write> {
    out: W,
    line: Vec<char>,
    col: usize,
    state: State,
    /// CSI parameter bytes seen so far (to spot the alternate-screen switches).
    params: Vec<u8>,
    alternate: bool,
    utf8: super::utf8::StreamDecoder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    Escape,
    /// ESC followed by intermediate bytes (charset designations like `ESC ( B`).
    EscapeIntermediate,
    Csi,
    /// OSC, DCS, APC, PM, SOS: strings ended by BEL or ST.
    String,
    StringEscape,
}

const TAB: usize = 8;
const NOTE: &str = "[full-screen program: screen updates not shown]";

impl<W: Write> TextRenderer<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            line: Vec::new(),
            col: 0,
            state: State::Ground,
            params: Vec::new(),
            alternate: false,
            utf8: Default::default(),
        }
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let text = self.utf8.decode(bytes);
        self.feed(&text)
    }

    /// Ends the text (a last line without a newline is kept) and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let rest = self.utf8.finish();
        self.feed(&rest)?;
        if !self.line.is_empty() {
            self.emit()?;
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn feed(&mut self, text: &str) -> io::Result<()> {
        for c in text.chars() {
            match self.state {
                State::Ground => self.ground(c)?,
                State::Escape => match c {
                    '[' => {
                        self.params.clear();
                        self.state = State::Csi;
                    }
                    ']' | 'P' | '_' | '^' | 'X' => self.state = State::String,
                    ' '..='/' => self.state = State::EscapeIntermediate,
                    _ => self.state = State::Ground,
                },
                State::EscapeIntermediate => {
                    if !(' '..='/').contains(&c) {
                        self.state = State::Ground;
                    }
                }
                State::Csi => match c {
                    '0'..='?' | ' '..='/' => self.params.push(c as u8),
                    '@'..='~' => {
                        self.csi(c)?;
                        self.state = State::Ground;
                    }
                    // A control character inside a sequence aborts it (as terminals do).
                    _ => self.state = State::Ground,
                },
                State::String => match c {
                    '\x07' => self.state = State::Ground,
                    '\x1b' => self.state = State::StringEscape,
                    _ => {}
                },
                State::StringEscape => {
                    self.state = if c == '\\' {
                        State::Ground
                    } else {
                        State::String
                    }
                }
            }
        }
        Ok(())
    }

    fn ground(&mut self, c: char) -> io::Result<()> {
        match c {
            '\x1b' => self.state = State::Escape,
            _ if self.alternate => {}
            '\n' => self.emit()?,
            '\r' => self.col = 0,
            '\x08' => self.col = self.col.saturating_sub(1),
            '\t' => self.col = (self.col / TAB + 1) * TAB,
            c if c.is_control() => {}
            c => {
                while self.line.len() < self.col {
                    self.line.push(' ');
                }
                if self.col < self.line.len() {
                    self.line[self.col] = c;
                } else {
                    self.line.push(c);
                }
                self.col += 1;
            }
        }
        Ok(())
    }

    fn csi(&mut self, last: char) -> io::Result<()> {
        let private_modes = |params: &[u8]| -> bool {
            params.first() == Some(&b'?')
                && params[1..]
                    .split(|&b| b == b';')
                    .any(|p| matches!(p, b"1049" | b"1047" | b"47"))
        };
        match last {
            'h' if private_modes(&self.params) && !self.alternate => {
                if !self.line.is_empty() {
                    self.emit()?;
                }
                writeln!(self.out, "{NOTE}")?;
                self.alternate = true;
            }
            'l' if private_modes(&self.params) => self.alternate = false,
            // Erase in line, to the end (the default) or all: what shells do after editing.
            'K' if !self.alternate => match self.params.as_slice() {
                b"" | b"0" => self.line.truncate(self.col),
                b"2" => self.line.clear(),
                _ => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn emit(&mut self) -> io::Result<()> {
        let text: String = self.line.iter().collect();
        writeln!(self.out, "{}", text.trim_end())?;
        self.line.clear();
        self.col = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(writes: &[&[u8]]) -> String {
        let mut r = TextRenderer::new(Vec::new());
        for w in writes {
            r.write(w).unwrap();
        }
        String::from_utf8(r.finish().unwrap()).unwrap()
    }

    #[test]
    fn escapes_are_dropped_and_edits_applied() {
        let out = render(&[
            b"\x1b]0;title\x07\x1b[01;32mapp@web\x1b[00m:~$ ",
            b"lss\x08 \x08 -l\r\n",
            b"total 0\r\n",
            b"10%\r50%\r100%\r\n",
            b"a\tb\r\n",
            b"$ echo hi\x1b[K\r\nhi\r\n$ ",
        ]);
        assert_eq!(
            out,
            "app@web:~$ ls -l\ntotal 0\n100%\na       b\n$ echo hi\nhi\n$\n"
        );
    }

    #[test]
    fn full_screen_programs_are_noted_not_dumped() {
        let out = render(&[
            b"$ vim x\r\n",
            b"\x1b[?1049h\x1b[H\x1b[2J~\r\n~\r\n\"x\" 1L",
            b"\x1b[?1049l$ exit\r\n",
        ]);
        assert_eq!(out, format!("$ vim x\n{NOTE}\n$ exit\n"));
    }

    #[test]
    fn sequences_split_across_writes() {
        let out = render(&[
            b"a\x1b",
            b"[3",
            b"1mb\x1b]2;t",
            b"\x1b",
            b"\\c\xe2\x82",
            b"\xac\n",
        ]);
        assert_eq!(out, "abc€\n");
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let mut data = Vec::new();
        for i in 0..20_000u32 {
            data.push((i.wrapping_mul(2_654_435_761) >> 13) as u8);
        }
        let out = render(&[&data, b"\x1b[", b"\x1b]", b"\x08\x08\x08"]);
        assert!(!out.contains('\x1b'));
    }
}
