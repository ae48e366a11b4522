//! The user's terminal: raw mode while a session is recorded, and its size.

use std::os::fd::BorrowedFd;

use rustix::termios::{OptionalActions, Termios, tcgetattr, tcsetattr};
use storage_schema::TermSize;

/// Used when there is no terminal to ask (stdin is a pipe or a file) and `$COLUMNS`/`$LINES`
/// say nothing: the classic VT100 size, which is also what most programs assume.
pub const DEFAULT_SIZE: TermSize = TermSize { cols: 80, rows: 24 };

pub fn stdin() -> BorrowedFd<'static> {
    rustix::stdio::stdin()
}

pub fn is_tty(fd: BorrowedFd<'_>) -> bool {
    rustix::termios::isatty(fd)
}

/// The terminal's size, or `None` when it does not know one (a serial line, some CI ptys).
pub fn window_size(fd: BorrowedFd<'_>) -> Option<TermSize> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some(TermSize {
        cols: ws.ws_col,
        rows: ws.ws_row,
    })
}

/// The size a program would assume without a terminal: `$COLUMNS` x `$LINES` when set.
pub fn size_from_env() -> TermSize {
    let var = |name| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u16>().ok())
            .filter(|&n| n > 0)
    };
    TermSize {
        cols: var("COLUMNS").unwrap_or(DEFAULT_SIZE.cols),
        rows: var("LINES").unwrap_or(DEFAULT_SIZE.rows),
    }
}

/// The terminal in raw mode for as long as this lives: keystrokes (including ^C and ^Z) go to
/// the recorded program byte for byte instead of being interpreted by our side of the
/// terminal. Dropping it restores the settings found on entry, on every way out: normal return,
/// `?`, panic unwinding, and the signals `record` handles.
#[derive(Debug)]
pub struct RawMode {
    fd: BorrowedFd<'static>,
    saved: Termios,
}

impl RawMode {
    pub fn enter(fd: BorrowedFd<'static>) -> rustix::io::Result<Self> {
        let saved = tcgetattr(fd)?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(fd, OptionalActions::Now, &raw)?;
        Ok(Self { fd, saved })
    }

    /// The settings before raw mode, which the recorded program's pty starts with so that it
    /// sees the user's erase and interrupt characters, flow control and so on.
    pub fn saved(&self) -> &Termios {
        &self.saved
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(e) = tcsetattr(self.fd, OptionalActions::Now, &self.saved) {
            // Nothing else can be done from a destructor; `stty sane` is the user's recourse.
            eprintln!("kubetape: could not restore the terminal settings ({e}); run `stty sane`");
        }
    }
}
