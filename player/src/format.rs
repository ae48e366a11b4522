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

/// How a column of [`table_within`] gives way: down to `min` characters, keeping the start of
/// a cut cell (names, claims) or its start and end (paths: the resource and the last segment).
#[derive(Debug, Clone, Copy)]
pub struct Shrink {
    column: usize,
    min: usize,
    keep_end: bool,
}

impl Shrink {
    pub fn head(column: usize, min: usize) -> Self {
        Self {
            column,
            min,
            keep_end: false,
        }
    }

    pub fn middle(column: usize, min: usize) -> Self {
        Self {
            column,
            min,
            keep_end: true,
        }
    }
}

/// [`table`] within `max_width` columns: while the table is wider, the columns of `give_way`
/// are narrowed in their order, each down to its minimum before the next, and cells longer
/// than their column are cut with a `…`. Wider than that it stays.
pub fn table_within<R: AsRef<[String]>>(
    rows: &[R],
    max_width: usize,
    give_way: &[Shrink],
) -> Vec<String> {
    let n = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let mut widths = vec![0usize; n];
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
    let mut keep_end = vec![false; n];
    for s in give_way.iter().filter(|s| s.column < n) {
        let over = total(&widths).saturating_sub(max_width);
        let room = widths[s.column].saturating_sub(s.min);
        widths[s.column] -= over.min(room);
        keep_end[s.column] = s.keep_end;
    }
    let fitted: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.as_ref()
                .iter()
                .enumerate()
                .map(|(i, cell)| cut(cell, widths[i], keep_end[i]))
                .collect()
        })
        .collect();
    table(&fitted)
}

/// `cell` in at most `width` characters, cut with a `…` at its end or in its middle.
fn cut(cell: &str, width: usize, keep_end: bool) -> String {
    let len = cell.chars().count();
    if len <= width || width < 2 {
        return cell.to_string();
    }
    let keep = width - 1;
    let head = if keep_end { keep / 2 } else { keep };
    let start: String = cell.chars().take(head).collect();
    let end: String = cell.chars().skip(len - (keep - head)).collect();
    format!("{start}…{end}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_within_a_width_cuts_the_columns_that_give_way_in_order() {
        let rows = vec![
            vec!["A".to_string(), "PATH".into(), "NAME".into()],
            vec![
                "short".to_string(),
                "/api/v1/namespaces/default/pods/a-very-long-pod-name-indeed/exec".into(),
                "alice@example.com".into(),
            ],
        ];
        let lines = table_within(&rows, 40, &[Shrink::middle(1, 16), Shrink::head(2, 8)]);
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:#?}");
        // The path gives way first (start and end kept), then the name (its start kept).
        assert_eq!(lines[1], "short  /api/v1…eed/exec  alice@example.…");
        // Narrow enough already: unchanged.
        assert_eq!(
            table_within(&rows, 200, &[Shrink::middle(1, 16)]),
            table(&rows)
        );
        // Nothing may give way: as wide as it must be.
        assert_eq!(table_within(&rows, 10, &[]), table(&rows));
    }

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
