//! Waiting for the reviewer's keys without spinning on a terminal that went away.
//!
//! crossterm 0.29 reads its terminal in a loop that only stops at "would block": a terminal
//! that hung up (its tmux server or ssh connection gone) reads 0 bytes forever, so
//! `event::poll` never returns, the player never sees SIGHUP's stop flag, and it burns a core
//! until killed (two such players ran for an hour after a failed TUI test). The wait is ours
//! instead: `poll(2)` on the terminal, which reports the hang-up, and crossterm is only asked
//! for what is already there.

use std::io;
use std::time::Duration;

use ratatui::crossterm::event;
use rustix::event::{PollFd, PollFlags, Timespec};

/// Waits up to `wait` for terminal input; `Ok(true)` once crossterm has an event to read.
/// An error once the terminal is gone.
pub fn poll(wait: Duration) -> io::Result<bool> {
    if event::poll(Duration::ZERO)? {
        // Parsed already (several keys arrive in one read).
        return Ok(true);
    }
    let stdin = crate::terminal::stdin();
    if crate::terminal::is_tty(stdin) {
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        if gone(fds[0].revents()) {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the terminal went away (hung up)",
            ));
        }
        // Input, or the time is up, or a signal (a resize: crossterm queued its own event).
        return event::poll(Duration::ZERO);
    }
    // Not a terminal on stdin: crossterm reads /dev/tty, which it waits on itself.
    event::poll(wait)
}

fn gone(revents: PollFlags) -> bool {
    revents.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_up_or_closed_terminal_is_gone_and_input_is_not() {
        assert!(gone(PollFlags::IN | PollFlags::HUP));
        assert!(gone(PollFlags::ERR));
        assert!(gone(PollFlags::NVAL));
        assert!(!gone(PollFlags::IN));
        assert!(!gone(PollFlags::empty()));
    }
}
