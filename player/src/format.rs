//! Human-readable renderings shared by the commands, so `ls`, `verify` and `seal` agree.

/// A duration in µs as `850ms`, `42s`, `1m03s` or `2h05m`: precise where it matters, short
/// where it does not.
pub fn duration_us(us: u64) -> String {
    let secs = us / 1_000_000;
    match secs {
        0 => format!("{}ms", us / 1000),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// A byte count in decimal units (`512 B`, `3.4 kB`, `16.8 MB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Unix µs as `2026-11-23 15:04:05Z` (UTC: the store is shared across time zones, and UTC
/// needs no time zone database).
pub fn timestamp_us(us: u64) -> String {
    storage_schema::time::format_unix_micros(us).replacen('T', " ", 1)
}

/// An exit code as the shell would show it; a death by signal (recorded as minus the signal
/// number) as `signal N`.
pub fn exit(exit: &storage_schema::ExitInfo) -> String {
    if exit.code < 0 {
        format!("signal {}", -exit.code)
    } else {
        exit.code.to_string()
    }
}

/// Rows as aligned text lines: every column but the last padded to its widest cell, two spaces
/// apart, trailing space trimmed.
pub fn table<R: AsRef<[String]>>(rows: &[R]) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let row = row.as_ref();
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_all_but_the_last_column() {
        let rows = [
            ["A".to_string(), "BB".to_string(), "last".to_string()],
            ["ccc".to_string(), "d".to_string(), "x".to_string()],
        ];
        assert_eq!(table(&rows), ["A    BB  last", "ccc  d   x"]);
    }

    #[test]
    fn durations() {
        assert_eq!(duration_us(850_000), "850ms");
        assert_eq!(duration_us(42_400_000), "42s");
        assert_eq!(duration_us(63_000_000), "1m03s");
        assert_eq!(duration_us(7_500_000_000), "2h05m");
    }

    #[test]
    fn byte_counts() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3_400), "3.4 kB");
        assert_eq!(bytes(16_788_895), "16.8 MB");
        assert_eq!(bytes(999_999), "1.0 MB");
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp_us(1_795_446_245_000_000), "2026-11-23 15:04:05Z");
    }
}
