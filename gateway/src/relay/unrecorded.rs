//! The exec benchmark's yardstick: a gateway that relays exec streams exactly as it always
//! does but records none of their bytes, so the benchmark can tell what relaying alone costs
//! (issue 18's target 1) from what recording adds.
//!
//! It exists only with the `bench-relay-only` feature, which nothing but the benchmarks'
//! dev-dependency turns on, and it is switched on by a library call, never by a setting: no
//! configuration file, flag or environment variable of a shipped gateway reaches it, and a
//! gateway built for release (`cargo build --release`) does not contain it.

#[cfg(feature = "bench-relay-only")]
static ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stops this process's exec relays from recording bytes (sessions still open and seal their
/// recordings, empty). For the benchmark harness only.
#[cfg(feature = "bench-relay-only")]
pub fn enable_for_benchmark() {
    ON.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether exec relays skip recording bytes: always false without the feature.
#[inline]
pub(crate) fn enabled() -> bool {
    #[cfg(feature = "bench-relay-only")]
    {
        ON.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(feature = "bench-relay-only"))]
    {
        false
    }
}
