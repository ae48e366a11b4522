//! Raw bytes and sizes into the terminal wrapper: nothing may panic out of it (vt100's own
//! panics are caught), the size stays within the clamped range, and a snapshot restores to
//! the same text on a fresh terminal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage_schema::TermSize;
use transcript::Terminal;
use transcript::term::{MAX_COLS, MAX_ROWS};

fuzz_target!(|data: &[u8]| {
    transcript_fuzz::let_vt100_panics_unwind();
    let (size, rest) = data.split_at(data.len().min(4));
    // Sizes up to 255×63 keep executions fast; the clamps at the extremes have unit tests,
    // and resizes below still reach past them.
    let dim = |i: usize| u16::from(size.get(i).copied().unwrap_or(80)) >> (i % 2 * 2);
    let mut t = Terminal::new(TermSize {
        cols: dim(0),
        rows: dim(1),
    });
    for piece in rest.split(|&b| b == 0xff) {
        t.process(piece);
        if piece.first() == Some(&0xfe) {
            t.resize(TermSize {
                cols: dim(2).wrapping_mul(piece.len() as u16),
                rows: dim(3),
            });
        }
    }
    let s = t.size();
    assert!(s.cols >= 2 && s.cols <= MAX_COLS && s.rows >= 1 && s.rows <= MAX_ROWS);
    let _ = t.text();
    let mut fresh = Terminal::new(s);
    fresh.process(&t.snapshot());
    if t.faults() == 0 && fresh.faults() == 0 && !t.alternate_screen() {
        assert_eq!(fresh.text(), t.text(), "snapshot restores the text");
    }
});
