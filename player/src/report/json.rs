//! The report as one JSON document. Sessions are `kubetape ls --json`'s objects, denials are
//! `kubetape audit --json`'s records and reads are `kubetape audit --reads --json`'s entries,
//! each exactly as those commands print them, so a script can join them.
//!
//! ```text
//! { "report": {store, since, until, generated_at, *_us},
//!   "summary": {sessions, users, namespaces, grants, denials, debug, port_forward,
//!               integrity: {OK, GAP, FAIL, ERR, shredded}, deleted, holds, reads},
//!   "sessions_per_user": [{user, sessions}], "sessions_per_namespace": [{namespace, sessions}],
//!   "sessions_per_day": [{day, sessions}],
//!   "sessions": [ls objects], "grants": [...], "denials": [audit records],
//!   "debug": [session ids], "port_forward": [session ids],
//!   "integrity": [{session, class, status, problems?, shredded?}],
//!   "retention_deleted": [{pass, deleted_at_us, session, root, rule, …}],
//!   "holds": [hold ls objects], "reads": [reads entries], "notes": [text] }
//! ```

use serde_json::{Value, json};

use super::model::{Report, time};

/// The document.
pub fn render(r: &Report) -> Value {
    let c = r.integrity_counts();
    json!({
        "report": {
            "store": r.store,
            "since": time(r.since_us),
            "until": time(r.until_us),
            "generated_at": time(r.generated_at_us),
            "since_us": r.since_us,
            "until_us": r.until_us,
            "generated_at_us": r.generated_at_us,
        },
        "summary": {
            "sessions": r.sessions.len(),
            "users": r.per_user().len(),
            "namespaces": r.per_namespace().len(),
            "grants": r.grants.len(),
            "denials": r.denials.len(),
            "debug": r.debug_sessions().count(),
            "port_forward": r.forward_sessions().count(),
            "integrity": c,
            "deleted": r.deletions.len(),
            "holds": r.holds.len(),
            "reads": r.reads.len(),
        },
        "sessions_per_user": r.per_user().into_iter()
            .map(|(user, n)| json!({"user": user, "sessions": n})).collect::<Vec<_>>(),
        "sessions_per_namespace": r.per_namespace().into_iter()
            .map(|(ns, n)| json!({"namespace": ns, "sessions": n})).collect::<Vec<_>>(),
        "sessions_per_day": r.per_day().into_iter()
            .map(|(day, n)| json!({"day": day, "sessions": n})).collect::<Vec<_>>(),
        "sessions": r.sessions.iter().map(|s| s.listing.clone()).collect::<Vec<_>>(),
        "grants": r.grants,
        "denials": r.denials,
        "debug": r.debug_sessions().map(|s| s.id).collect::<Vec<_>>(),
        "port_forward": r.forward_sessions().map(|s| s.id).collect::<Vec<_>>(),
        "integrity": r.integrity,
        "retention_deleted": r.deletions,
        "holds": r.holds,
        "reads": r.reads,
        "notes": r.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::fixture::{HOSTILE, report};
    use super::*;

    #[test]
    fn sections_carry_the_records_as_other_commands_print_them() {
        let r = report();
        let doc = render(&r);
        assert_eq!(doc["summary"]["sessions"], 2);
        assert_eq!(doc["sessions"][0], r.sessions[0].listing);
        assert_eq!(
            doc["denials"][0],
            serde_json::to_value(&r.denials[0]).unwrap()
        );
        assert_eq!(doc["grants"][0]["reason"], HOSTILE);
        assert_eq!(doc["grants"][0]["decided_by"], "bob");
        assert_eq!(doc["sessions_per_day"].as_array().unwrap().len(), 3);
        assert_eq!(doc["summary"]["integrity"]["OK"], 1);
        assert_eq!(doc["summary"]["integrity"]["shredded"], 1);
        assert_eq!(doc["integrity"][0]["status"], "OK");
        assert_eq!(doc["retention_deleted"][0]["rule"], "rule-prod-1d");
        assert_eq!(doc["retention_deleted"][0]["pass"], "p-1");
        assert_eq!(doc["holds"][0]["case"], "CASE-1");
        assert_eq!(doc["reads"][0], serde_json::to_value(&r.reads[0]).unwrap());
        // Round trip through text.
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc);
    }
}
