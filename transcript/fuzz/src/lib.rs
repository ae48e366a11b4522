//! Shared by the fuzz targets.

use std::sync::Once;

/// libFuzzer's panic hook aborts on every panic, even one that is caught. `Terminal` catches
/// panics from inside `vt100` on purpose (and counts them in `faults()`), so those must
/// unwind to its guard; any other panic (ours, or one escaping the guard) still aborts and is
/// reported as a crash.
pub fn let_vt100_panics_unwind() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_vt100 = info
                .location()
                .is_some_and(|l| l.file().contains("/vt100-"));
            if !in_vt100 {
                fuzzer_hook(info);
            }
        }));
    });
}
