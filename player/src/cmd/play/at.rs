//! `play --at`: where to open. Accepts what `kubetape search` prints (`850ms`, `42s`, `1m03s`,
//! `2h05m`, `#3`) and what people type (`83.5`, `1:23`, `1m 23.5s`).

use std::fmt;

/// A place in a session given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// Microseconds since the session started.
    Offset(u64),
    /// The N-th command (1-based, redacted ones counted), at the moment it was entered.
    Command(usize),
}

/// Why an `--at` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAt(String);

impl fmt::Display for BadAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a time in the session (expected e.g. 83.5, 1m23s, 1:23, 850ms, or #3 for the third command)",
            self.0
        )
    }
}

impl std::error::Error for BadAt {}

/// Longest offset accepted: a year; anything longer is a typo, and keeps the µs sum far from
/// overflowing.
const MAX_US: f64 = 366.0 * 86_400.0 * 1e6;

impl std::str::FromStr for At {
    type Err = BadAt;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadAt(text.to_string());
        let s = text.trim();
        if let Some(n) = s.strip_prefix('#') {
            return match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(At::Command(n)),
                _ => Err(bad()),
            };
        }
        let secs = if s.contains(':') {
            clock(s)
        } else if let Ok(secs) = s.parse::<f64>() {
            Some(secs)
        } else {
            units(s)
        }
        .ok_or_else(bad)?;
        let us = secs * 1e6;
        if !us.is_finite() || !(0.0..=MAX_US).contains(&us) {
            return Err(bad());
        }
        Ok(At::Offset(us.round() as u64))
    }
}

/// `m:ss` or `h:mm:ss`, the last part possibly fractional.
fn clock(s: &str) -> Option<f64> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let (last, whole) = parts.split_last()?;
    let mut secs = 0.0;
    for p in whole {
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        secs = secs * 60.0 + p.parse::<f64>().ok()?;
    }
    let tail: f64 = last.parse().ok().filter(|v: &f64| *v >= 0.0 && *v < 60.0)?;
    Some(secs * 60.0 + tail)
}

/// A sum of `<number><unit>` parts, units `h`, `m`, `s`, `ms`, spaces allowed between parts.
fn units(s: &str) -> Option<f64> {
    let mut rest = s;
    let mut total = 0.0;
    let mut any = false;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" | "min" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        rest = rest[unit_len..].trim_start();
        total += value * scale;
        any = true;
    }
    any.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Result<At, BadAt> {
        s.parse()
    }

    #[test]
    fn offsets_as_search_prints_them() {
        assert_eq!(at("850ms"), Ok(At::Offset(850_000)));
        assert_eq!(at("42s"), Ok(At::Offset(42_000_000)));
        assert_eq!(at("1m03s"), Ok(At::Offset(63_000_000)));
        assert_eq!(at("2h05m"), Ok(At::Offset(7_500_000_000)));
    }

    #[test]
    fn offsets_as_people_type_them() {
        assert_eq!(at("83.5"), Ok(At::Offset(83_500_000)));
        assert_eq!(at("0"), Ok(At::Offset(0)));
        assert_eq!(at("1m23s"), Ok(At::Offset(83_000_000)));
        assert_eq!(at("1m 23.5s"), Ok(At::Offset(83_500_000)));
        assert_eq!(at("1:23"), Ok(At::Offset(83_000_000)));
        assert_eq!(at("1:02:03.5"), Ok(At::Offset(3_723_500_000)));
        assert_eq!(at(" #3 "), Ok(At::Command(3)));
    }

    #[test]
    fn nonsense_is_refused() {
        for s in [
            "",
            "#0",
            "#",
            "#-1",
            "#x",
            "-5",
            "1x",
            "m",
            "1:",
            ":1",
            "1:60",
            "1:2:3:4",
            "a:1",
            "nan",
            "inf",
            "1e300",
            "1..2s",
            "9999999999h",
        ] {
            assert!(at(s).is_err(), "{s:?} accepted");
        }
        assert!(at("soon").unwrap_err().to_string().contains("#3"));
    }

    proptest::proptest! {
        /// Any text is an answer or a refusal, never a panic, and an accepted offset is within
        /// the bound.
        #[test]
        fn any_text_is_handled(text in ".{0,24}") {
            if let Ok(At::Offset(us)) = at(&text) {
                proptest::prop_assert!(us as f64 <= MAX_US);
            }
        }

        /// What the player's clock and `kubetape search`/`ls` print reads back as the moment
        /// shown (to the precision printed).
        #[test]
        fn printed_offsets_read_back(us in 0u64..(200 * 3_600_000_000)) {
            let tenths = us / 100_000 * 100_000;
            proptest::prop_assert_eq!(
                at(&crate::cmd::play::ui::clock(us)),
                Ok(At::Offset(tenths))
            );
            let shown = crate::format::duration_us(us);
            let At::Offset(back) = at(&shown).unwrap() else {
                panic!("{shown}: not an offset");
            };
            proptest::prop_assert!(back <= us, "{shown} -> {back} > {us}");
            proptest::prop_assert!(us - back < 60_000_000, "{shown} -> {back}, {us}");
        }
    }
}
