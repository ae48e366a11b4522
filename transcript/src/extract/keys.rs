//! Splits what the user typed (stdin bytes) into keys, across event boundaries.
//!
//! The extractor never takes command text from keystrokes (the screen is the truth, and a
//! password typed without echo must never be stored). Keys tell it *when* a line was
//! submitted or abandoned, whether anything printable was typed, whether a bracketed paste
//! is open, and feed [`super::editor::LineModel`], which is only ever compared with what the
//! screen shows. Answers the terminal itself sends on stdin (cursor position reports, device
//! attributes, colour queries, mouse and focus reports) are recognised and are nobody's keys.

/// One key, as far as the extractor cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// A printable character (or a paste's content).
    Char(char),
    /// Enter (CR or LF) outside a paste.
    Enter,
    /// A newline inside a bracketed paste (or Alt-Enter): inserted into the line, not accepted.
    PastedNewline,
    /// Ctrl-C: the line is abandoned.
    Interrupt,
    /// Ctrl-D: end of input on an empty line (exit, or EOF to a program); else delete-char,
    /// or (to a program reading a cooked terminal) the partial line is sent.
    Eof,
    /// Ctrl-O: bash's and zsh's operate-and-get-next accepts the line like Enter (elsewhere it
    /// is a plain key: it counts as Enter only if the shell then echoes a newline).
    Accept,
    /// Ctrl-X Ctrl-E: bash's edit-and-execute-command (and zsh's edit-command-line, often bound
    /// to it): the line goes to `$EDITOR`; bash runs what comes back without any Enter.
    EditCommand,
    /// An editing key.
    Edit(Edit),
    /// Sent by the terminal, not typed (a report it was asked for).
    Report,
}

/// Editing keys the line model understands; anything else is [`Edit::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edit {
    Backspace,
    Delete,
    Left,
    Right,
    Home,
    End,
    /// Ctrl-U.
    KillToStart,
    /// Ctrl-K.
    KillToEnd,
    /// Ctrl-L: the screen is redrawn, the line is unchanged.
    Redraw,
    /// History, completion, word motions, vi keys, Alt-anything: the line changes in ways only
    /// the screen shows.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Ground,
    Esc,
    /// Inside `ESC [`.
    Csi(Csi),
    /// After `ESC O`.
    Ss3,
    /// Inside an OSC/DCS/APC/PM/SOS string (a terminal's answer to a query).
    Str,
    StrEsc,
    /// An X10 mouse report's three raw bytes after `ESC [ M`.
    Mouse(u8),
    /// After Ctrl-X.
    CtrlX,
}

/// What a control sequence has shown so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Csi {
    /// The first parameter's value (200/201 for pastes, 3 for Delete, ...).
    first: u32,
    /// A second parameter was seen (a modifier).
    more: bool,
    /// Any parameter byte was seen.
    params: bool,
    /// A private marker (`<=>?`): reports and mouse, never a plain key.
    private: bool,
    /// An intermediate byte (`$`, ` `...).
    intermediate: bool,
}

/// Streaming key splitter; keeps a partial escape sequence or UTF-8 character between calls.
#[derive(Debug, Default)]
pub(crate) struct KeyReader {
    state: State,
    in_paste: bool,
    utf8: Vec<u8>,
}

impl KeyReader {
    /// Calls `f` for every key completed by `bytes`.
    pub(crate) fn feed(&mut self, bytes: &[u8], mut f: impl FnMut(Key)) {
        for &b in bytes {
            self.byte(b, &mut f);
        }
    }

    fn byte(&mut self, b: u8, f: &mut impl FnMut(Key)) {
        match self.state {
            State::Ground => self.ground(b, f),
            State::CtrlX => {
                self.state = State::Ground;
                if b == 0x05 {
                    f(Key::EditCommand);
                } else {
                    f(Key::Edit(Edit::Other));
                    self.ground(b, f);
                }
            }
            State::Esc => match b {
                b'[' => self.state = State::Csi(Csi::default()),
                b'O' => self.state = State::Ss3,
                b']' | b'P' | b'_' | b'^' | b'X' => self.state = State::Str,
                b'\r' | b'\n' => {
                    // Alt-Enter: zsh and fish insert a newline into the line.
                    self.state = State::Ground;
                    f(Key::PastedNewline);
                }
                0x1b => f(Key::Edit(Edit::Other)),
                _ => {
                    self.state = State::Ground;
                    f(Key::Edit(Edit::Other));
                }
            },
            State::Csi(mut csi) => match b {
                b'0'..=b'9' => {
                    if !csi.more {
                        csi.first = csi
                            .first
                            .saturating_mul(10)
                            .saturating_add(u32::from(b - b'0'));
                    }
                    csi.params = true;
                    self.state = State::Csi(csi);
                }
                // Later parameters are modifiers (`1;5D`, Ctrl-Left): a word motion, Other.
                b';' | b':' => {
                    csi.more = true;
                    csi.params = true;
                    self.state = State::Csi(csi);
                }
                b'<' | b'=' | b'>' | b'?' => {
                    csi.private = true;
                    self.state = State::Csi(csi);
                }
                0x20..=0x2f => {
                    csi.intermediate = true;
                    self.state = State::Csi(csi);
                }
                0x40..=0x7e => {
                    self.state = State::Ground;
                    self.csi_final(b, csi, f);
                }
                // Not a sequence after all: drop it and start over on this byte.
                _ => {
                    self.state = State::Ground;
                    f(Key::Edit(Edit::Other));
                    self.ground(b, f);
                }
            },
            State::Ss3 => {
                self.state = State::Ground;
                f(Key::Edit(match b {
                    b'D' => Edit::Left,
                    b'C' => Edit::Right,
                    b'H' => Edit::Home,
                    b'F' => Edit::End,
                    _ => Edit::Other,
                }));
            }
            State::Str => match b {
                0x07 => {
                    self.state = State::Ground;
                    f(Key::Report);
                }
                0x1b => self.state = State::StrEsc,
                _ => {}
            },
            State::StrEsc => {
                if b == b'\\' {
                    self.state = State::Ground;
                    f(Key::Report);
                } else {
                    self.state = State::Str;
                }
            }
            State::Mouse(left) => {
                self.state = if left > 1 {
                    State::Mouse(left - 1)
                } else {
                    f(Key::Report);
                    State::Ground
                };
            }
        }
    }

    fn ground(&mut self, b: u8, f: &mut impl FnMut(Key)) {
        // A character in progress ends at the next byte that cannot continue it.
        if !self.utf8.is_empty() && !(0x80..=0xbf).contains(&b) {
            self.utf8.clear();
            f(Key::Char(char::REPLACEMENT_CHARACTER));
        }
        match b {
            0x1b => self.state = State::Esc,
            b'\r' | b'\n' if self.in_paste => f(Key::PastedNewline),
            b'\r' | b'\n' => f(Key::Enter),
            0x80..=0xff => {
                self.utf8.push(b);
                match std::str::from_utf8(&self.utf8) {
                    Ok(s) => {
                        let c = s.chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
                        self.utf8.clear();
                        f(Key::Char(c));
                    }
                    Err(e) if e.error_len().is_some() || self.utf8.len() >= 4 => {
                        self.utf8.clear();
                        f(Key::Char(char::REPLACEMENT_CHARACTER));
                    }
                    Err(_) => {}
                }
            }
            0x20..=0x7e | b'\t' if self.in_paste => f(Key::Char(char::from(b))),
            // A control byte inside a paste is pasted text, not a key (no Ctrl-C in a paste).
            _ if self.in_paste => f(Key::Edit(Edit::Other)),
            0x03 => f(Key::Interrupt),
            0x04 => f(Key::Eof),
            0x0f => f(Key::Accept),
            0x18 => self.state = State::CtrlX,
            0x7f | 0x08 => f(Key::Edit(Edit::Backspace)),
            0x01 => f(Key::Edit(Edit::Home)),
            0x05 => f(Key::Edit(Edit::End)),
            0x02 => f(Key::Edit(Edit::Left)),
            0x06 => f(Key::Edit(Edit::Right)),
            0x15 => f(Key::Edit(Edit::KillToStart)),
            0x0b => f(Key::Edit(Edit::KillToEnd)),
            0x0c => f(Key::Edit(Edit::Redraw)),
            0x20..=0x7e => f(Key::Char(char::from(b))),
            _ => f(Key::Edit(Edit::Other)),
        }
    }

    fn csi_final(&mut self, b: u8, csi: Csi, f: &mut impl FnMut(Key)) {
        let plain = !csi.more;
        let key = match b {
            b'~' if !csi.private => match csi.first {
                200 => {
                    self.in_paste = true;
                    return;
                }
                201 => {
                    self.in_paste = false;
                    return;
                }
                3 if plain => Key::Edit(Edit::Delete),
                1 | 7 if plain => Key::Edit(Edit::Home),
                4 | 8 if plain => Key::Edit(Edit::End),
                _ => Key::Edit(Edit::Other),
            },
            // Reports: cursor position (`R`), device attributes (`?…c`, `>…c`), status (`n`),
            // mode (`$y`), window (`t`), focus in/out (`I`/`O`), SGR mouse (`<…M`/`m`).
            b'R' | b'n' | b't' => Key::Report,
            b'c' if csi.private => Key::Report,
            b'y' if csi.intermediate => Key::Report,
            b'I' | b'O' if !csi.params && !csi.private => Key::Report,
            b'M' | b'm' if csi.private => Key::Report,
            b'M' if !csi.params => {
                self.state = State::Mouse(3);
                return;
            }
            _ if csi.private || csi.intermediate => Key::Edit(Edit::Other),
            b'D' if plain => Key::Edit(Edit::Left),
            b'C' if plain => Key::Edit(Edit::Right),
            b'H' if plain => Key::Edit(Edit::Home),
            b'F' if plain => Key::Edit(Edit::End),
            _ => Key::Edit(Edit::Other),
        };
        f(key);
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
            keys(&[b"l", &"é".as_bytes()[..1], &"é".as_bytes()[1..], b"\x7f\r"]),
            vec![Char('l'), Char('é'), Edit(super::Edit::Backspace), Enter]
        );
        assert_eq!(
            keys(&[b"\x1b", b"[", b"D", b"\x1bOH\x15\x17\t\x03"]),
            vec![
                Edit(super::Edit::Left),
                Edit(super::Edit::Home),
                Edit(super::Edit::KillToStart),
                Edit(super::Edit::Other),
                Edit(super::Edit::Other),
                Interrupt
            ]
        );
        assert_eq!(
            keys(&[b"\x1b[200~a\nb\x03\x1b[2", b"01~\r"]),
            vec![
                Char('a'),
                PastedNewline,
                Char('b'),
                Edit(super::Edit::Other),
                Enter
            ]
        );
    }

    #[test]
    fn terminal_reports_are_nobodys_keys() {
        use Key::*;
        // busybox asks for the cursor position; vim for attributes, colours and modes.
        let got = keys(&[
            b"\x1b[18;5R\x1b[?1;2c\x1b[>84;0;0c\x1b]11;rgb:0000/0000/0000\x1b\\",
            b"\x1b]10;rgb:ffff/ffff/ffff\x07\x1b[?12;2$y\x1b[I\x1b[O\x1b[<0;3;4M\x1b[M !!x",
        ]);
        assert_eq!(
            got,
            vec![
                Report,
                Report,
                Report,
                Report,
                Report,
                Report,
                Report,
                Report,
                Report,
                Report,
                Char('x')
            ]
        );
    }

    #[test]
    fn modified_motions_and_editor_keys() {
        use Key::*;
        assert_eq!(
            keys(&[b"\x1b[1;5D\x1b[3~\x18\x05\x18a\x0f\x1b\r"]),
            vec![
                Edit(super::Edit::Other),
                Edit(super::Edit::Delete),
                EditCommand,
                Edit(super::Edit::Other),
                Char('a'),
                Accept,
                PastedNewline
            ]
        );
    }
}
