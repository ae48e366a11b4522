//! The report as one self-contained HTML page: inline CSS, inline SVG charts ([`super::chart`]),
//! no script, no external reference (no `src=`, no link to anything), so it can be mailed,
//! archived and opened offline years later. Tables are plain HTML and read without CSS.
//!
//! Every string that came from the store — usernames, reasons, commands, pod names, which the
//! people being audited choose — goes through [`escape`].
//!
//! Each section has an `id` and a heading on a band of its own solid colour ([`PALETTE`]), so a
//! screenshot shows which sections rendered (the end-to-end test looks for each colour).
//!
//! The page also carries a Content-Security-Policy ([`CSP`]) that forbids every script and every
//! load, so even a missed escape could run nothing and fetch nothing.

use std::fmt::Write as _;

use storage_schema::AuditRecord;

use super::chart;
use super::escape::escape;
use super::model::{Report, time};

/// A section of the page: its `id`, its heading, and its heading band's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    pub id: &'static str,
    pub title: &'static str,
    /// `#rrggbb`, solid: no two sections share one, and none is [`chart::BAR_COLOUR`].
    pub colour: &'static str,
}

/// Every section, in page order, with its band colour.
pub const PALETTE: &[Section] = &[
    Section {
        id: "summary",
        title: "Summary",
        colour: "#4a148c",
    },
    Section {
        id: "per-day",
        title: "Sessions per day",
        colour: "#b71c1c",
    },
    Section {
        id: "per-namespace",
        title: "Sessions per namespace",
        colour: "#1b5e20",
    },
    Section {
        id: "per-user",
        title: "Sessions per user",
        colour: "#e65100",
    },
    Section {
        id: "sessions",
        title: "Sessions",
        colour: "#0d47a1",
    },
    Section {
        id: "grants",
        title: "Just-in-time grants",
        colour: "#880e4f",
    },
    Section {
        id: "denials",
        title: "Denied requests",
        colour: "#3e2723",
    },
    Section {
        id: "debug-forward",
        title: "Debug and port-forward use",
        colour: "#006064",
    },
    Section {
        id: "integrity",
        title: "Integrity of recordings",
        colour: "#33691e",
    },
    Section {
        id: "retention",
        title: "Deleted by retention",
        colour: "#827717",
    },
    Section {
        id: "holds",
        title: "Legal holds in force",
        colour: "#311b92",
    },
    Section {
        id: "reads",
        title: "Reads of recordings",
        colour: "#263238",
    },
];

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut page = String::new();
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    // The browser's own guarantee that the page runs nothing and loads nothing, should an
    // escape ever be missed: no script, no fetch of any kind, inline styles only.
    let _ = write!(
        page,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
    );
    let _ = write!(
        page,
        "<title>kubetape report {} – {}</title><style>{}",
        escape(&time(r.since_us)),
        escape(&time(r.until_us)),
        CSS
    );
    for s in PALETTE {
        let _ = write!(page, "#{} > h2{{background:{}}}", s.id, s.colour);
    }
    page.push_str("</style></head><body>\n");
    let _ = write!(
        page,
        "<h1>kubetape compliance report</h1><p class=\"window\">{} to {} (UTC), store <code>{}</code>, made {}</p>\n<nav><ul>",
        escape(&time(r.since_us)),
        escape(&time(r.until_us)),
        escape(&r.store),
        escape(&time(r.generated_at_us))
    );
    for s in PALETTE {
        let _ = write!(page, "<li><a href=\"#{}\">{}</a></li>", s.id, s.title);
    }
    page.push_str("</ul></nav>\n");
    for s in PALETTE {
        let _ = writeln!(
            page,
            "<section id=\"{}\"><h2>{}</h2>",
            s.id,
            escape(s.title)
        );
        page.push_str(&body(s.id, r));
        page.push_str("</section>\n");
    }
    page.push_str("</body></html>\n");
    page
}

/// The page's Content-Security-Policy: nothing but its own inline styles.
pub const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0 24px 48px;color:#111;background:#fff}\
h1{font-size:22px;margin:16px 0 4px}\
section{margin:20px 0}\
section>h2{color:#fff;font-size:17px;margin:0 0 8px;padding:8px 12px}\
table{border-collapse:collapse;margin:6px 0;font-size:13px}\
th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}\
td{white-space:pre-line;overflow-wrap:break-word}\
th{background:#eee}\
td.n{text-align:right}\
code{font-size:12px}\
nav ul{margin:4px 0;padding:0}nav li{display:inline;margin-right:12px}\
svg.chart text{font-size:11px;fill:#222}\
.none{color:#555;font-style:italic}";

fn body(id: &str, r: &Report) -> String {
    match id {
        "summary" => summary(r),
        "per-day" => {
            let days: Vec<(String, usize)> = r.per_day().into_iter().collect();
            let mut out = chart::bars("Sessions per day", &days);
            let busy: Vec<Vec<String>> = days
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(d, n)| vec![d.clone(), n.to_string()])
                .collect();
            out.push_str(&table(&["Day (UTC)", "Sessions"], &busy));
            out
        }
        "per-namespace" => {
            let per: Vec<(String, usize)> = r.per_namespace().into_iter().collect();
            let mut out = chart::bars("Sessions per namespace", &per);
            out.push_str(&counts(&["Namespace", "Sessions"], &per));
            out
        }
        "per-user" => {
            let per: Vec<(String, usize)> = r.per_user().into_iter().collect();
            counts(&["User", "Sessions"], &per)
        }
        "sessions" => table(
            &[
                "Started",
                "Session",
                "User",
                "Namespace",
                "Kind",
                "Target",
                "State",
                "Grant",
            ],
            &r.sessions
                .iter()
                .map(|s| {
                    vec![
                        time(s.started_at_us),
                        s.id.to_string(),
                        s.user.clone(),
                        s.namespace.clone(),
                        s.kind.clone(),
                        s.target.clone(),
                        s.state.clone(),
                        s.grant.clone().unwrap_or_default(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        "grants" => table(
            &[
                "Request",
                "Requested",
                "Requester",
                "Role",
                "Namespace",
                "Reason",
                "TTL",
                "State",
                "Decided by",
                "Decided",
                "Valid until",
                "Sessions under it",
            ],
            &r.grants
                .iter()
                .map(|g| {
                    vec![
                        g.id.clone(),
                        time(g.requested_at_us),
                        g.requester.clone(),
                        g.role.clone(),
                        g.namespace.clone(),
                        g.reason.clone(),
                        humantime::format_duration(std::time::Duration::from_secs(g.ttl_secs))
                            .to_string(),
                        g.state.clone(),
                        g.decided_by.clone().unwrap_or_default(),
                        g.decided_at_us.map(time).unwrap_or_default(),
                        g.expires_at_us.map(time).unwrap_or_default(),
                        g.sessions
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        "denials" => table(
            &[
                "Time", "User", "Verb", "Resource", "Target", "Result", "Rule", "Reason",
            ],
            &r.denials.iter().map(denial_row).collect::<Vec<_>>(),
        ),
        "debug-forward" => {
            let mut out = String::from("<h3>kubectl debug</h3>");
            out.push_str(&table(
                &["Started", "Session", "User", "Namespace", "Target", "Debug"],
                &r.debug_sessions()
                    .map(|s| {
                        vec![
                            time(s.started_at_us),
                            s.id.to_string(),
                            s.user.clone(),
                            s.namespace.clone(),
                            s.target.clone(),
                            s.debug.clone().unwrap_or_default(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            ));
            out.push_str("<h3>Port-forward</h3>");
            out.push_str(&table(
                &[
                    "Started",
                    "Session",
                    "User",
                    "Namespace",
                    "Target",
                    "Forwarded",
                ],
                &r.forward_sessions()
                    .map(|s| {
                        vec![
                            time(s.started_at_us),
                            s.id.to_string(),
                            s.user.clone(),
                            s.namespace.clone(),
                            s.target.clone(),
                            s.forward.clone().unwrap_or_default(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            ));
            out
        }
        "integrity" => {
            let c = r.integrity_counts();
            let mut out = format!(
                "<p>Checked with public keys only: {} OK, {} with declared gaps, {} damaged, {} could not be checked; {} shredded.</p>",
                c["OK"], c["GAP"], c["FAIL"], c["ERR"], c["shredded"]
            );
            out.push_str(&table(
                &["Recording", "Class", "Status", "Shredded", "Problems"],
                &r.integrity
                    .iter()
                    .map(|i| {
                        vec![
                            i.session.to_string(),
                            i.class.clone(),
                            i.status.name().to_string(),
                            i.shredded
                                .as_ref()
                                .map(|s| s.describe())
                                .unwrap_or_default(),
                            i.problems.join("; "),
                        ]
                    })
                    .collect::<Vec<_>>(),
            ));
            out
        }
        "retention" => table(
            &[
                "Deleted", "Stream", "Root", "Rule", "Ended", "Expired", "Pass",
            ],
            &r.deletions
                .iter()
                .map(|d| {
                    vec![
                        time(d.deleted_at_us),
                        d.deletion.session.to_string(),
                        d.deletion.root.clone(),
                        d.deletion.rule.clone(),
                        time(d.deletion.ended_at_us),
                        time(d.deletion.expired_at_us),
                        d.pass.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        "holds" => table(
            &["Hold", "Case", "Placed", "By", "Holds", "Reason"],
            &r.holds
                .iter()
                .map(|h| {
                    vec![
                        h.id.clone(),
                        h.case.clone(),
                        time(h.placed_at_us),
                        h.by.clone(),
                        h.select.describe(),
                        h.reason.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        "reads" => table(
            &["Time", "Reader", "Login", "Action", "Recording", "Reason"],
            &r.reads
                .iter()
                .map(|e| {
                    vec![
                        time(e.at_us),
                        e.reader.clone(),
                        format!("{}@{}", e.os_user, e.host),
                        e.action.clone(),
                        e.session.to_string(),
                        e.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        _ => String::new(),
    }
}

fn summary(r: &Report) -> String {
    let c = r.integrity_counts();
    let rows = [
        ("Sessions", r.sessions.len()),
        ("Users", r.per_user().len()),
        ("Namespaces", r.per_namespace().len()),
        ("Just-in-time requests", r.grants.len()),
        ("Denied requests", r.denials.len()),
        ("Debug sessions", r.debug_sessions().count()),
        ("Port-forwards", r.forward_sessions().count()),
        ("Recordings intact (OK)", c["OK"]),
        ("Recordings with declared gaps", c["GAP"]),
        ("Recordings damaged (FAIL)", c["FAIL"]),
        ("Recordings not checkable", c["ERR"]),
        ("Recordings shredded", c["shredded"]),
        ("Deleted by retention", r.deletions.len()),
        ("Legal holds in force", r.holds.len()),
        ("Reads of recordings", r.reads.len()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let mut out = counts(&["", "Count"], &rows);
    if !r.notes.is_empty() {
        out.push_str("<h3>Could not be gathered</h3><ul class=\"notes\">");
        for n in &r.notes {
            let _ = write!(out, "<li>{}</li>", escape(n));
        }
        out.push_str("</ul>");
    }
    out
}

/// One denied request as a row: what `kubetape audit` shows, with the rule and the reason.
fn denial_row(a: &AuditRecord) -> Vec<String> {
    let resource = match (&a.resource, &a.subresource) {
        (Some(res), Some(sub)) => format!("{res}/{sub}"),
        (Some(res), None) => res.clone(),
        (None, _) => a.path.clone(),
    };
    let target = match (&a.namespace, &a.name) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        (Some(ns), None) => ns.clone(),
        (None, Some(name)) => name.clone(),
        (None, None) => String::new(),
    };
    vec![
        time(a.time_us),
        a.user.clone().unwrap_or_default(),
        a.verb.clone(),
        resource,
        target,
        format!("{} {}", a.decision.name(), a.status),
        a.rule.clone().unwrap_or_default(),
        a.reason.clone().unwrap_or_default(),
    ]
}

/// A two-column table of counts.
fn counts(headers: &[&str], rows: &[(String, usize)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, n)| vec![k.clone(), n.to_string()])
        .collect();
    table(headers, &rows)
}

/// A table with a header row; every cell escaped. No rows: a line that says so instead.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "<p class=\"none\">None in this window.</p>\n".into();
    }
    let mut out = String::from("<table><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let numeric = !cell.is_empty() && cell.bytes().all(|b| b.is_ascii_digit());
            let class = if numeric { " class=\"n\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::model::fixture::{HOSTILE, report};
    use super::*;

    #[test]
    fn hostile_strings_from_the_store_are_escaped_everywhere() {
        let page = render(&report());
        // The hostile user, the grant's reason, the denial's reason and a note: all escaped.
        assert!(!page.contains("<script"), "a script tag got through");
        assert!(!page.contains(HOSTILE));
        let escaped = escape(HOSTILE);
        // The user (twice: sessions, per-user), the grant's and the denial's reasons, the note,
        // the shred, hold and read reasons.
        assert!(page.matches(&escaped).count() >= 8, "{page}");
        for text in ["rule-prod-1d", "CASE-1", "auditor", "shredded on "] {
            assert!(page.contains(text), "{text}");
        }
    }

    #[test]
    fn the_page_is_self_contained_and_has_every_section() {
        let page = render(&report());
        for bad in [
            "http://", "https://", "src=", "<script", "<link", "@import", "url(",
        ] {
            assert!(!page.contains(bad), "{bad} in the page");
        }
        for s in PALETTE {
            assert!(
                page.contains(&format!("<section id=\"{}\"><h2>", s.id)),
                "{}",
                s.id
            );
            assert!(page.contains(&format!("#{} > h2{{background:{}}}", s.id, s.colour)));
        }
        assert_eq!(page.matches("<svg ").count(), 2, "two charts");
        assert!(page.contains("content=\"default-src 'none'; style-src 'unsafe-inline'"));
    }

    #[test]
    fn the_palette_is_distinct_and_solid() {
        let mut seen = std::collections::BTreeSet::new();
        for s in PALETTE {
            assert!(
                s.colour.len() == 7
                    && s.colour.starts_with('#')
                    && s.colour[1..].bytes().all(|b| b.is_ascii_hexdigit()),
                "{}",
                s.colour
            );
            assert!(seen.insert(s.colour), "{} twice", s.colour);
            assert!(seen.insert(s.id), "{} twice", s.id);
        }
        assert!(!seen.contains(chart::BAR_COLOUR));
    }
}
