//! Unbuffered access to our stdout. `std::io::Stdout` is line-buffered (it would split a 64 KiB
//! read into a write per line) and `tokio::io::Stdout` hands every write to a blocking thread;
//! passing a terminal's output through needs neither, just one write(2) per read.

use std::io;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;

/// A handle that writes straight to file descriptor 1.
#[derive(Debug, Clone, Copy)]
pub struct RawStdout;

impl RawStdout {
    /// Writes all of `buf`, blocking while the reader of our stdout is slower than the command:
    /// that is the back-pressure a terminal is expected to apply.
    pub fn put(self, mut buf: &[u8]) -> io::Result<()> {
        let fd = rustix::stdio::stdout();
        while !buf.is_empty() {
            match rustix::io::write(fd, buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(Errno::INTR) => {}
                // Someone else (the shell, another program sharing the terminal) made the file
                // description non-blocking; wait as a blocking write would.
                Err(Errno::AGAIN) => match poll(&mut [PollFd::new(&fd, PollFlags::OUT)], None) {
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl io::Write for RawStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put(buf).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `println!` that returns an error when stdout is closed (`kubetape ls | head -1`) instead of
/// panicking; `main` ends quietly on a broken pipe, as a Unix filter should.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}
pub(crate) use outln;

/// Whether `error` comes from writing to a reader that went away.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
