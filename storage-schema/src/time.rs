//! Wall-clock time as the format stores it: microseconds since the Unix epoch (`*_at_us`
//! fields of metadata, seals, audit records, access requests, revocations).
//!
//! One home for the clock, so that every writer agrees on the unit and on what happens at the
//! edges: a clock set before 1970 reads as 0, and one past the year 586 524 saturates instead of
//! wrapping (`u64` µs). Offsets *within* a session are not wall-clock time; they come from the
//! recorder's monotonic clock (`store::Recorder::now_us`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn unix_micros_now() -> u64 {
    unix_micros(SystemTime::now())
}

/// `t` as microseconds since the Unix epoch (0 before it, saturating far after it).
pub fn unix_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Formats Unix microseconds as RFC 3339 (UTC, whole seconds), e.g. `2023-11-14T22:13:20Z`.
pub fn format_unix_micros(us: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_micros(us)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_and_format() {
        assert_eq!(unix_micros(UNIX_EPOCH), 0);
        assert_eq!(unix_micros(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(
            unix_micros(UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456)),
            1_700_000_000_123_456
        );
        assert_eq!(
            format_unix_micros(1_700_000_000_999_999),
            "2023-11-14T22:13:20Z"
        );
        let before = unix_micros_now();
        let t = unix_micros(SystemTime::now());
        assert!(before <= t && t <= unix_micros_now());
        // After 2020, and not in seconds or nanoseconds by mistake.
        assert!((1_577_836_800_000_000..4_102_444_800_000_000).contains(&before));
    }
}
