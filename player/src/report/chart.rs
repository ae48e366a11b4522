//! Bar charts as inline SVG: the report's HTML is one file with no script and no external
//! asset, so its charts are drawn here, as markup, with every label escaped.

use std::fmt::Write as _;

use super::escape::escape;

/// The one fill of every bar (in [`super::html::PALETTE`]'s table too, so a screenshot test
/// can look for it).
pub const BAR_COLOUR: &str = "#2e86de";

const WIDTH: u32 = 960;
const HEIGHT: u32 = 240;
/// Room for the value axis on the left and the labels below.
const LEFT: u32 = 40;
const BOTTOM: u32 = 60;
const TOP: u32 = 16;
/// The widest a bar gets, in pixels.
const MAX_BAR: f64 = 56.0;

/// A vertical bar chart of `bars` (label, count), in order, titled `title` for screen readers.
/// No bars (or only zeros) draws the frame and says so; a bar of zero is drawn as nothing.
/// Labels are thinned to about 20 so they stay readable with many bars (every bar keeps a
/// `<title>` tooltip with its label and count).
pub fn bars(title: &str, bars: &[(String, usize)]) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
    let plot_w = WIDTH - LEFT - 8;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_h;
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#555\"/>",
        WIDTH - 8
    );
    let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(0);
    if max == 0 {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"empty\">No sessions in this window</text></svg>",
            LEFT + plot_w / 2,
            TOP + plot_h / 2
        );
        return svg;
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{max}</text><text x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>",
        LEFT - 4,
        TOP + 10,
        LEFT - 4
    );
    let n = bars.len() as u32;
    let slot = plot_w as f64 / f64::from(n);
    let gap = (slot * 0.15).min(8.0);
    // A few bars stay bar-shaped rather than filling the width.
    let bar_w = (slot - gap).clamp(1.0, MAX_BAR);
    let label_every = bars.len().div_ceil(20).max(1);
    for (i, (label, count)) in bars.iter().enumerate() {
        let x = f64::from(LEFT) + slot * i as f64;
        let h = (f64::from(plot_h) * *count as f64 / max as f64).round();
        if *count > 0 {
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{h:.1}\" fill=\"{BAR_COLOUR}\"><title>{}: {count}</title></rect>",
                x + (slot - bar_w) / 2.0,
                f64::from(base) - h,
                escape(label)
            );
            // The count over the bar, where there is room for it.
            if slot >= 18.0 {
                let _ = write!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{count}</text>",
                    x + slot / 2.0,
                    f64::from(base) - h - 3.0
                );
            }
        }
        if i % label_every == 0 {
            let cx = x + slot / 2.0;
            let _ = write!(
                svg,
                "<text x=\"{cx:.1}\" y=\"{}\" text-anchor=\"end\" transform=\"rotate(-35 {cx:.1} {})\">{}</text>",
                base + 14,
                base + 14,
                escape(&shorten(label, 24))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// `label` cut to `max` characters with a `…`.
fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: usize) -> Vec<(String, usize)> {
        (0..n)
            .map(|i| (format!("2026-11-{:02}", i % 28 + 1), i % 3))
            .collect()
    }

    fn rects(svg: &str) -> usize {
        svg.matches("<rect ").count()
    }

    #[test]
    fn zero_days_draw_a_frame_that_says_so() {
        let svg = bars("Sessions per day", &[]);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert_eq!(rects(&svg), 0);
        assert!(svg.contains("No sessions in this window"));
        // Days with no sessions are the same: nothing to draw.
        let svg = bars("Sessions per day", &[("2026-11-01".into(), 0)]);
        assert_eq!(rects(&svg), 0);
        assert!(svg.contains("No sessions in this window"));
    }

    #[test]
    fn one_day_is_one_full_height_bar() {
        let svg = bars("Sessions per day", &[("2026-11-01".into(), 4)]);
        assert_eq!(rects(&svg), 1);
        assert!(svg.contains(&format!("fill=\"{BAR_COLOUR}\"")));
        assert!(svg.contains("2026-11-01: 4"));
        let full = format!("height=\"{:.1}\"", f64::from(HEIGHT - TOP - BOTTOM));
        assert!(svg.contains(&full), "{svg}");
    }

    #[test]
    fn many_days_draw_a_bar_per_nonzero_day_and_thin_the_labels() {
        let data = days(90);
        let svg = bars("Sessions per day", &data);
        assert_eq!(rects(&svg), data.iter().filter(|(_, n)| *n > 0).count());
        // Every bar has its tooltip; at most ~20 axis labels (plus the two value labels).
        assert_eq!(svg.matches("<title>").count(), 1 + rects(&svg));
        let labels = svg.matches("rotate(-35").count();
        assert!((15..=20).contains(&labels), "{labels}");
        // Every bar fits in the frame.
        assert!(!svg.contains("width=\"-"));
    }

    #[test]
    fn labels_are_escaped_and_shortened() {
        let svg = bars(
            "t<",
            &[("<script>alert(1)</script>-a-very-long-namespace".into(), 1)],
        );
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("aria-label=\"t&lt;\""));
    }
}
