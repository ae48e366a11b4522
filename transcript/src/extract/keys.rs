//! Splits what the user typed (stdin bytes) into keys, across event boundaries.
//!
//! The extractor never takes command text from keystrokes (the screen is the truth, and a
//! password typed without echo must never be stored); it only needs to know *when* Enter was
//! pressed, whether anything printable was typed, and whether a bracketed paste is open.

/// One key, as far as the extractor cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// A printable character (or a paste's content byte).
    Printable,
    /// Enter (CR or LF) outside a paste.
    Enter,
    /// A newline inside a bracketed paste: inserted into the line, not accepted.
    PastedNewline,
    /// Ctrl-C: the line is abandoned.
    Interrupt,
    /// Ctrl-D: end of input on an empty line (exit, or EOF to a program); else delete-char.
    Eof,
    /// Anything else: editing keys, arrows, Ctrl-U/W, Tab, Backspace.
    Edit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Ground,
    Esc,
    /// Inside `ESC [` or `ESC O`; the parameter value so far (for 200~ / 201~).
    Csi(u32),
}

/// Streaming key splitter; keeps a partial escape sequence between calls.
#[derive(Debug, Default)]
pub(crate) struct KeyReader {
    state: State,
    in_paste: bool,
}

impl KeyReader {
    /// Calls `f` for every key completed by `bytes`.
    pub(crate) fn feed(&mut self, bytes: &[u8], mut f: impl FnMut(Key)) {
        for &b in bytes {
            match self.state {
                State::Ground => match b {
                    0x1b => self.state = State::Esc,
                    b'\r' | b'\n' if self.in_paste => f(Key::PastedNewline),
                    b'\r' | b'\n' => f(Key::Enter),
                    0x03 if !self.in_paste => f(Key::Interrupt),
                    0x04 if !self.in_paste => f(Key::Eof),
                    // UTF-8 continuation bytes belong to the character already counted.
                    0x80..=0xbf => {}
                    0x20..=0x7e | 0xc0..=0xff => f(Key::Printable),
                    _ => f(Key::Edit),
                },
                State::Esc => match b {
                    b'[' | b'O' => self.state = State::Csi(0),
                    0x1b => f(Key::Edit),
                    _ => {
                        self.state = State::Ground;
                        f(Key::Edit);
                    }
                },
                State::Csi(value) => match b {
                    b'0'..=b'9' => {
                        let value = value.saturating_mul(10).saturating_add(u32::from(b - b'0'));
                        self.state = State::Csi(value);
                    }
                    0x20..=0x3f => self.state = State::Csi(value),
                    0x40..=0x7e => {
                        self.state = State::Ground;
                        match (b, value) {
                            (b'~', 200) => self.in_paste = true,
                            (b'~', 201) => self.in_paste = false,
                            _ => f(Key::Edit),
                        }
                    }
                    // Not a sequence after all: drop it and start over on this byte.
                    _ => {
                        self.state = State::Ground;
                        f(Key::Edit);
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(chunks: &[&[u8]]) -> Vec<Key> {
        let mut r = KeyReader::default();
        let mut out = vec![];
        for c in chunks {
            r.feed(c, |k| out.push(k));
        }
        out
    }

    #[test]
    fn splits_keys_across_events() {
        use Key::*;
        assert_eq!(
            keys(&[b"l", "é".as_bytes(), b"\x7f\r"]),
            vec![Printable, Printable, Edit, Enter]
        );
        assert_eq!(
            keys(&[b"\x1b", b"[", b"A", b"\x1bOD\x15\x17\t\x03"]),
            vec![Edit, Edit, Edit, Edit, Edit, Interrupt]
        );
        assert_eq!(
            keys(&[b"\x1b[200~a\nb\x03\x1b[2", b"01~\r"]),
            vec![Printable, PastedNewline, Printable, Edit, Enter]
        );
    }
}
