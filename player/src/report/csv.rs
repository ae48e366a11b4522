//! The report as one CSV table (RFC 4180: a header row, `,` separated, fields quoted when they
//! hold `,`, `"`, a line break or edge spaces, `"` doubled). One table rather than one file per
//! section, so the report stays one file like the HTML and JSON ones; the first column names the
//! section and the other columns mean, per section:
//!
//! ```text
//! section        id           time         user       namespace  kind      state      ref        by           reason   detail                count
//! summary        <measure>                                                                                                                    n
//! per_user                                 user                                                                                               n
//! per_namespace                                       namespace                                                                               n
//! per_day                     YYYY-MM-DD                                                                                                      n
//! session        session id   started      user       namespace  kind      ls state   grant id                        target
//! grant          request id   requested    requester  namespace  role      state      sessions   decided by   reason   ttl, decided, valid   n sessions
//! denial         session id   time         user       namespace  verb res  decision   rule       gateway      reason   path
//! debug          session id   started      user       namespace  debug                                                debug image, form
//! port_forward   session id   started      user       namespace  port-forward                                         connections, bytes
//! integrity      stream id    shredded at                        class     OK|GAP|FAIL|ERR       shredded by  why shredded  problems
//! deleted        stream id    deleted                            root                 pass                    rule     ended, expired
//! hold           hold id      placed                                                  case       placed by    reason   what it holds
//! read           session id   time         reader                action               keyring    login@host   reason
//! ```
//!
//! Times are RFC 3339 UTC; `ref` of a grant is its sessions' ids, space separated. Values are
//! the store's, unaltered (a spreadsheet should open the file with every column as text).

use std::fmt::Write as _;

use super::model::{Report, time};

pub const HEADER: [&str; 12] = [
    "section",
    "id",
    "time",
    "user",
    "namespace",
    "kind",
    "state",
    "ref",
    "by",
    "reason",
    "detail",
    "count",
];

/// One row, by column name ([`HEADER`]); unnamed columns are empty.
struct Row(Vec<(&'static str, String)>);

impl Row {
    fn new(section: &str) -> Self {
        Row(vec![("section", section.to_string())])
    }

    fn set(mut self, column: &'static str, value: impl Into<String>) -> Self {
        debug_assert!(HEADER.contains(&column), "{column}");
        self.0.push((column, value.into()));
        self
    }

    fn line(&self) -> String {
        let cells: Vec<String> = HEADER
            .iter()
            .map(|h| {
                self.0
                    .iter()
                    .rev()
                    .find(|(c, _)| c == h)
                    .map_or_else(String::new, |(_, v)| field(v))
            })
            .collect();
        cells.join(",")
    }
}

/// One field, quoted when it must be.
pub fn field(value: &str) -> String {
    let needs =
        value.contains([',', '"', '\n', '\r']) || value.starts_with(' ') || value.ends_with(' ');
    if needs {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// The table, header first, one `\n`-terminated line per row.
pub fn render(r: &Report) -> String {
    let mut rows: Vec<Row> = Vec::new();
    let c = r.integrity_counts();
    let summary = [
        ("sessions", r.sessions.len()),
        ("users", r.per_user().len()),
        ("namespaces", r.per_namespace().len()),
        ("grants", r.grants.len()),
        ("denials", r.denials.len()),
        ("debug", r.debug_sessions().count()),
        ("port_forward", r.forward_sessions().count()),
        ("integrity_ok", c["OK"]),
        ("integrity_gap", c["GAP"]),
        ("integrity_fail", c["FAIL"]),
        ("integrity_err", c["ERR"]),
        ("shredded", c["shredded"]),
        ("deleted", r.deletions.len()),
        ("holds", r.holds.len()),
        ("reads", r.reads.len()),
    ];
    for (k, n) in summary {
        rows.push(Row::new("summary").set("id", k).set("count", n.to_string()));
    }
    for (u, n) in r.per_user() {
        rows.push(
            Row::new("per_user")
                .set("user", u)
                .set("count", n.to_string()),
        );
    }
    for (ns, n) in r.per_namespace() {
        rows.push(
            Row::new("per_namespace")
                .set("namespace", ns)
                .set("count", n.to_string()),
        );
    }
    for (d, n) in r.per_day() {
        rows.push(
            Row::new("per_day")
                .set("time", d)
                .set("count", n.to_string()),
        );
    }
    for s in &r.sessions {
        rows.push(
            Row::new("session")
                .set("id", s.id.to_string())
                .set("time", time(s.started_at_us))
                .set("user", s.user.clone())
                .set("namespace", s.namespace.clone())
                .set("kind", s.kind.clone())
                .set("state", s.state.clone())
                .set("ref", s.grant.clone().unwrap_or_default())
                .set("detail", s.target.clone()),
        );
    }
    for g in &r.grants {
        let mut detail = format!("ttl={}s", g.ttl_secs);
        if let Some(at) = g.decided_at_us {
            let _ = write!(detail, "; decided={}", time(at));
        }
        if let Some(until) = g.expires_at_us {
            let _ = write!(detail, "; valid_until={}", time(until));
        }
        if !g.decision_reason.is_empty() {
            let _ = write!(detail, "; note={}", g.decision_reason);
        }
        let sessions: Vec<String> = g.sessions.iter().map(ToString::to_string).collect();
        rows.push(
            Row::new("grant")
                .set("id", g.id.clone())
                .set("time", time(g.requested_at_us))
                .set("user", g.requester.clone())
                .set("namespace", g.namespace.clone())
                .set("kind", g.role.clone())
                .set("state", g.state.clone())
                .set("ref", sessions.join(" "))
                .set("by", g.decided_by.clone().unwrap_or_default())
                .set("reason", g.reason.clone())
                .set("detail", detail)
                .set("count", g.sessions.len().to_string()),
        );
    }
    for a in &r.denials {
        let resource = match (&a.resource, &a.subresource) {
            (Some(res), Some(sub)) => format!("{res}/{sub}"),
            (Some(res), None) => res.clone(),
            (None, _) => String::new(),
        };
        rows.push(
            Row::new("denial")
                .set("id", a.session.map(|s| s.to_string()).unwrap_or_default())
                .set("time", time(a.time_us))
                .set("user", a.user.clone().unwrap_or_default())
                .set("namespace", a.namespace.clone().unwrap_or_default())
                .set(
                    "kind",
                    format!("{} {resource}", a.verb).trim_end().to_string(),
                )
                .set("state", format!("{} {}", a.decision.name(), a.status))
                .set("ref", a.rule.clone().unwrap_or_default())
                .set("by", a.gateway.clone())
                .set("reason", a.reason.clone().unwrap_or_default())
                .set("detail", a.path.clone()),
        );
    }
    for (section, sessions) in [
        ("debug", r.debug_sessions().collect::<Vec<_>>()),
        ("port_forward", r.forward_sessions().collect()),
    ] {
        for s in sessions {
            rows.push(
                Row::new(section)
                    .set("id", s.id.to_string())
                    .set("time", time(s.started_at_us))
                    .set("user", s.user.clone())
                    .set("namespace", s.namespace.clone())
                    .set("kind", s.kind.clone())
                    .set(
                        "detail",
                        s.debug
                            .clone()
                            .or_else(|| s.forward.clone())
                            .unwrap_or_default(),
                    ),
            );
        }
    }
    for i in &r.integrity {
        let mut row = Row::new("integrity")
            .set("id", i.session.to_string())
            .set("kind", i.class.clone())
            .set("state", i.status.name())
            .set("detail", i.problems.join("; "));
        if let Some(s) = &i.shredded {
            row = row
                .set("time", time(s.at_us))
                .set("by", s.by.clone())
                .set("reason", s.reason.clone());
        }
        rows.push(row);
    }
    for d in &r.deletions {
        rows.push(
            Row::new("deleted")
                .set("id", d.deletion.session.to_string())
                .set("time", time(d.deleted_at_us))
                .set("kind", d.deletion.root.clone())
                .set("ref", d.pass.clone())
                .set("reason", d.deletion.rule.clone())
                .set(
                    "detail",
                    format!(
                        "ended={}; expired={}",
                        time(d.deletion.ended_at_us),
                        time(d.deletion.expired_at_us)
                    ),
                ),
        );
    }
    for h in &r.holds {
        rows.push(
            Row::new("hold")
                .set("id", h.id.clone())
                .set("time", time(h.placed_at_us))
                .set("ref", h.case.clone())
                .set("by", h.by.clone())
                .set("reason", h.reason.clone())
                .set("detail", h.select.describe()),
        );
    }
    for e in &r.reads {
        rows.push(
            Row::new("read")
                .set("id", e.session.to_string())
                .set("time", time(e.at_us))
                .set("user", e.reader.clone())
                .set("kind", e.action.clone())
                .set("ref", e.keyring.clone())
                .set("by", format!("{}@{}", e.os_user, e.host))
                .set("reason", e.reason.clone().unwrap_or_default()),
        );
    }
    let mut out = HEADER.join(",");
    out.push('\n');
    for row in rows {
        out.push_str(&row.line());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::model::fixture::{HOSTILE, report};
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field(" edge"), "\" edge\"");
        assert_eq!(field(""), "");
    }

    /// A strict reading of what [`render`] writes: quoted fields may hold anything, an
    /// unquoted one no quote; every record has the header's width.
    fn parse(text: &str) -> Vec<Vec<String>> {
        let mut records = vec![];
        let mut record = vec![];
        let mut fieldv = String::new();
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        let mut at_start = true;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (false, '"') if at_start => quoted = true,
                (false, '"') => panic!("a quote inside an unquoted field"),
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    fieldv.push('"');
                }
                (true, '"') => {
                    quoted = false;
                    assert!(
                        matches!(chars.peek(), Some(',' | '\n')),
                        "text after a quote"
                    );
                }
                (false, ',') => {
                    record.push(std::mem::take(&mut fieldv));
                    at_start = true;
                    continue;
                }
                (false, '\n') => {
                    record.push(std::mem::take(&mut fieldv));
                    records.push(std::mem::take(&mut record));
                    at_start = true;
                    continue;
                }
                (_, c) => fieldv.push(c),
            }
            at_start = false;
        }
        assert!(
            !quoted && record.is_empty() && fieldv.is_empty(),
            "unterminated"
        );
        records
    }

    #[test]
    fn the_table_parses_back_to_the_values() {
        let r = report();
        let records = parse(&render(&r));
        assert_eq!(records[0], HEADER);
        assert!(records.iter().all(|rec| rec.len() == HEADER.len()));
        let grant = records.iter().find(|rec| rec[0] == "grant").unwrap();
        assert_eq!(grant[9], HOSTILE);
        assert_eq!(grant[8], "bob");
        let denial = records.iter().find(|rec| rec[0] == "denial").unwrap();
        assert_eq!(denial[9], HOSTILE);
        assert_eq!(denial[5], "create");
        let sessions: Vec<&Vec<String>> =
            records.iter().filter(|rec| rec[0] == "session").collect();
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[1][3], HOSTILE);
        assert_eq!(sessions[1][7], "g-1");
        let one = |section: &str| {
            let rows: Vec<&Vec<String>> = records.iter().filter(|rec| rec[0] == section).collect();
            assert_eq!(rows.len(), 1, "{section}");
            rows[0].clone()
        };
        assert_eq!(one("integrity")[9], format!("erasure {HOSTILE}"));
        assert_eq!(one("integrity")[6], "OK");
        assert_eq!(one("deleted")[9], "rule-prod-1d");
        assert_eq!(one("hold")[7], "CASE-1");
        assert_eq!(one("hold")[9], format!("hold {HOSTILE}"));
        assert_eq!(one("read")[3], "auditor");
        assert_eq!(one("read")[9], format!("read {HOSTILE}"));
        let summary = |k: &str| -> String {
            records
                .iter()
                .find(|rec| rec[0] == "summary" && rec[1] == k)
                .unwrap()[11]
                .clone()
        };
        assert_eq!(summary("shredded"), "1");
        assert_eq!(summary("deleted"), "1");
    }
}
