//! What a line would hold if the keys typed were all the editor saw: characters, backspace,
//! delete, cursor motions, Ctrl-U/Ctrl-K. Any other key (completion, history, word motions,
//! vi mode) makes the model inexact, and an inexact model is never used.
//!
//! The screen stays the source of command text. The model only helps where the screen cannot
//! show the whole line: an editor that scrolls a long line sideways (mksh, ksh) shows a window
//! of it, and the model's text is taken only when that window is part of it. It also tells a
//! typed-ahead line's own echo from other rows. It is never consulted for a line that was not
//! echoed, so a password typed without echo never reaches any text.

use super::keys::{Edit, Key};

/// Characters kept at most; past this the model is inexact (and unused).
const MAX_CHARS: usize = 64 * 1024;

#[derive(Debug, Clone, Default)]
pub(crate) struct LineModel {
    buf: Vec<char>,
    pos: usize,
    inexact: bool,
}

impl LineModel {
    pub(crate) fn key(&mut self, key: Key) {
        if self.inexact {
            return;
        }
        match key {
            Key::Char(c) => {
                if self.buf.len() >= MAX_CHARS {
                    self.inexact = true;
                    return;
                }
                self.buf.insert(self.pos, c);
                self.pos += 1;
            }
            Key::PastedNewline => {
                self.buf.insert(self.pos, '\n');
                self.pos += 1;
            }
            Key::Eof => {
                // Delete-char on a non-empty line (on an empty one the line ends anyway).
                if self.pos < self.buf.len() {
                    self.buf.remove(self.pos);
                }
            }
            Key::Edit(edit) => self.edit(edit),
            Key::Report => {}
            Key::Enter | Key::Interrupt | Key::Accept | Key::EditCommand => self.inexact = true,
        }
    }

    fn edit(&mut self, edit: Edit) {
        match edit {
            Edit::Backspace => {
                if self.pos > 0 {
                    self.pos -= 1;
                    self.buf.remove(self.pos);
                }
            }
            Edit::Delete => {
                if self.pos < self.buf.len() {
                    self.buf.remove(self.pos);
                }
            }
            Edit::Left => self.pos = self.pos.saturating_sub(1),
            Edit::Right => self.pos = (self.pos + 1).min(self.buf.len()),
            Edit::Home => self.pos = 0,
            Edit::End => self.pos = self.buf.len(),
            // bash kills back to the cursor, zsh and a cooked terminal the whole line: the
            // same only with the cursor at the end.
            Edit::KillToStart if self.pos == self.buf.len() => {
                self.buf.clear();
                self.pos = 0;
            }
            Edit::KillToEnd => self.buf.truncate(self.pos),
            Edit::Redraw => {}
            Edit::KillToStart | Edit::Other => self.inexact = true,
        }
    }

    /// The line, if every key was understood.
    pub(crate) fn text(&self) -> Option<String> {
        (!self.inexact).then(|| self.buf.iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(keys: &[Key]) -> Option<String> {
        let mut m = LineModel::default();
        keys.iter().for_each(|k| m.key(*k));
        m.text()
    }

    #[test]
    fn edits_are_followed_and_the_rest_gives_up() {
        use Key::*;
        let typed = |s: &str| s.chars().map(Char).collect::<Vec<_>>();
        let mut keys = typed("lss");
        keys.push(Edit(super::Edit::Backspace));
        keys.extend([Edit(super::Edit::Home), Char('>'), Edit(super::Edit::End)]);
        assert_eq!(model(&keys).as_deref(), Some(">ls"));
        let mut keys = typed("abc");
        keys.extend([Edit(super::Edit::Left), Edit(super::Edit::KillToEnd)]);
        assert_eq!(model(&keys).as_deref(), Some("ab"));
        keys.push(Edit(super::Edit::Other));
        assert_eq!(model(&keys), None);
        // Ctrl-U in the middle of a line means different things to different shells.
        let mut keys = typed("abc");
        keys.extend([Edit(super::Edit::Left), Edit(super::Edit::KillToStart)]);
        assert_eq!(model(&keys), None);
    }
}
