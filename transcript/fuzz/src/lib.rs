//! Shared by the fuzz targets.

/// libFuzzer's panic hook aborts on every panic, even one that is caught. `Terminal` catches
/// panics from inside `vt100` on purpose (and counts them in `faults()`), so those must
/// unwind to its guard; any other panic (ours, or one escaping the guard) still aborts and is
/// reported as a crash.
pub fn let_vt100_panics_unwind() {
    // The same hook the gateway and the player install: vt100 panics are passed over, any
    // other goes to the hook found at the first call (here, libFuzzer's).
    transcript::quiet_vt100_panics();
}
