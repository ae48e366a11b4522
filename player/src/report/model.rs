//! What a report holds: the store's facts over a window, as gathered by `kubetape report`, and
//! the tallies every rendering shows (sessions per user, namespace and day). The records the
//! other commands print are kept as they print them (`ls --json`'s listing object, `audit
//! --json`'s record, the reads log's entry), so a report agrees with them value for value.

use std::collections::BTreeMap;

use serde::Serialize;
use storage_schema::store::holds::Hold;
use storage_schema::store::reads::ReadEntry;
use storage_schema::store::retention::Deletion;
use storage_schema::store::shred::ShredRecord;
use storage_schema::{AuditRecord, SessionId};

/// The report's content.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The store it was made from (its URL).
    pub store: String,
    pub generated_at_us: u64,
    /// The window: sessions started, requests made, records written in `[since, until)`.
    pub since_us: u64,
    pub until_us: u64,
    /// Sessions (terminal and port-forward) started in the window, newest first as `ls`.
    pub sessions: Vec<Session>,
    /// Just-in-time requests made in the window, and those whose grant a session in it used.
    pub grants: Vec<Grant>,
    /// Audit records of requests not allowed (denied, unauthenticated), oldest first.
    pub denials: Vec<AuditRecord>,
    /// Every session's and every audit stream's integrity, checked with public keys only.
    pub integrity: Vec<Integrity>,
    /// What retention passes deleted in the window.
    pub deletions: Vec<Deleted>,
    /// The legal holds in force when the report was made (whatever the window).
    pub holds: Vec<Hold>,
    /// Readings of recordings in the window (the chain-of-custody log), oldest first.
    pub reads: Vec<ReadEntry>,
    /// What could not be gathered, said where the reader looks (unreadable entries, a missing
    /// keyring, audit streams that failed verification).
    pub notes: Vec<String>,
}

/// One session, as `kubetape ls --json` lists it, with the fields the report groups by.
#[derive(Debug, Clone)]
pub struct Session {
    /// `ls --json`'s object for it, exactly.
    pub listing: serde_json::Value,
    pub id: SessionId,
    /// `-` where the metadata is unreadable (as `ls` shows it).
    pub user: String,
    pub namespace: String,
    /// `exec`, `attach`, `debug`, `port-forward`, `local` (the metadata's kind).
    pub kind: String,
    pub started_at_us: u64,
    /// `ls`'s state: sealed, interrupted, open or unreadable.
    pub state: String,
    /// `namespace/pod:container` (or the host of a local recording).
    pub target: String,
    /// The just-in-time grant it was opened under, if any.
    pub grant: Option<String>,
    /// A `kubectl debug` session: `IMAGE (FORM, profile PROFILE)`.
    pub debug: Option<String>,
    /// A port-forward: `N connections (R refused), ↑TO ↓FROM bytes`.
    pub forward: Option<String>,
}

/// A just-in-time access request and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    pub id: String,
    pub requester: String,
    pub role: String,
    pub namespace: String,
    pub reason: String,
    pub ttl_secs: u64,
    pub requested_at_us: u64,
    /// `approved` (in force), `expired`, `denied`, `pending` or `abandoned` (never decided).
    pub state: String,
    /// Who decided, and when, with their note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at_us: Option<u64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub decision_reason: String,
    /// An approved request's end of validity (approval + ttl).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_us: Option<u64>,
    /// Sessions opened under it (from their metadata and the audit records naming it).
    pub sessions: Vec<SessionId>,
}

/// Integrity verdicts, as `kubetape verify` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Intact and complete.
    #[serde(rename = "OK")]
    Ok,
    /// Intact, with gaps its recorder declared.
    #[serde(rename = "GAP")]
    Gap,
    /// Damaged.
    #[serde(rename = "FAIL")]
    Fail,
    /// Could not be checked (missing key, store error).
    #[serde(rename = "ERR")]
    Err,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Gap => "GAP",
            Verdict::Fail => "FAIL",
            Verdict::Err => "ERR",
        }
    }
}

/// One recording's integrity.
#[derive(Debug, Clone, Serialize)]
pub struct Integrity {
    pub session: SessionId,
    /// `session`, `port-forward` or `audit-stream`.
    pub class: String,
    pub status: Verdict,
    /// Damage, gaps, or why it could not be checked; one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Crypto-shredded: who, when and why (its proof remains; its content is gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shredded: Option<ShredRecord>,
}

/// One stream a retention pass deleted.
#[derive(Debug, Clone, Serialize)]
pub struct Deleted {
    pub pass: String,
    pub deleted_at_us: u64,
    #[serde(flatten)]
    pub deletion: Deletion,
}

impl Report {
    /// Sessions per user, by user.
    pub fn per_user(&self) -> BTreeMap<String, usize> {
        tally(self.sessions.iter().map(|s| s.user.clone()))
    }

    /// Sessions per namespace, by namespace (`-` for sessions without one: local recordings).
    pub fn per_namespace(&self) -> BTreeMap<String, usize> {
        tally(self.sessions.iter().map(|s| s.namespace.clone()))
    }

    /// Sessions per day of their start (UTC, `YYYY-MM-DD`), every day of the window included
    /// (a day without sessions is a bar of zero, not a missing day), at most
    /// [`MAX_CHART_DAYS`] days back from the window's end.
    pub fn per_day(&self) -> BTreeMap<String, usize> {
        let mut days: BTreeMap<String, usize> = BTreeMap::new();
        let last = self.until_us.saturating_sub(1);
        let first = self
            .since_us
            .max(last.saturating_sub((MAX_CHART_DAYS - 1) * DAY_US));
        if self.until_us > self.since_us {
            let mut t = first;
            while t <= last {
                days.insert(storage_schema::layout::day_of(t), 0);
                t += DAY_US;
            }
            days.insert(storage_schema::layout::day_of(last), 0);
        }
        for s in &self.sessions {
            *days
                .entry(storage_schema::layout::day_of(s.started_at_us))
                .or_default() += 1;
        }
        days
    }

    /// Debug sessions.
    pub fn debug_sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.iter().filter(|s| s.debug.is_some())
    }

    /// Port-forward sessions.
    pub fn forward_sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.iter().filter(|s| s.forward.is_some())
    }

    /// How many recordings have each verdict, and how many are shredded.
    pub fn integrity_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts: BTreeMap<&'static str, usize> = ["OK", "GAP", "FAIL", "ERR", "shredded"]
            .map(|k| (k, 0))
            .into();
        for i in &self.integrity {
            *counts.entry(i.status.name()).or_default() += 1;
            if i.shredded.is_some() {
                *counts.entry("shredded").or_default() += 1;
            }
        }
        counts
    }
}

const DAY_US: u64 = 86_400 * 1_000_000;

/// The per-day chart covers at most this many days (a year and a bit): a longer window still
/// lists every session, but a chart of thousands of bars helps nobody.
pub const MAX_CHART_DAYS: u64 = 400;

fn tally(keys: impl Iterator<Item = String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for k in keys {
        *out.entry(k).or_default() += 1;
    }
    out
}

/// Unix µs as RFC 3339 (UTC, whole seconds): the one time format of the CSV and the HTML.
pub fn time(us: u64) -> String {
    storage_schema::time::format_unix_micros(us)
}

#[cfg(test)]
pub(crate) mod fixture {
    //! A small report with hostile strings, for the renderers' tests.
    use super::*;

    pub const HOSTILE: &str = "<script>alert(\"x\")</script> & 'quoted', \"comma\"";

    pub fn session(user: &str, ns: &str, started_at_us: u64) -> Session {
        let id = SessionId::new();
        Session {
            listing: serde_json::json!({"session": id, "short": id.short(), "state": "sealed"}),
            id,
            user: user.into(),
            namespace: ns.into(),
            kind: "exec".into(),
            started_at_us,
            state: "sealed".into(),
            target: format!("{ns}/db:main"),
            grant: None,
            debug: None,
            forward: None,
        }
    }

    pub fn report() -> Report {
        let day = DAY_US;
        let t0 = 1_795_392_000_000_000; // 2026-11-23T00:00:00Z
        let mut hostile = session(HOSTILE, "prod", t0 + day);
        hostile.grant = Some("g-1".into());
        let hostile_id = hostile.id;
        let deleted = SessionId::new();
        let denial: AuditRecord = serde_json::from_value(serde_json::json!({
            "time_us": t0, "gateway": "g", "user": "mallory", "client": "c", "method": "POST",
            "path": "/api/v1/namespaces/prod/pods/db/exec", "verb": "create",
            "namespace": "prod", "decision": "deny", "status": 403, "latency_ms": 1.0,
            "reason": HOSTILE
        }))
        .unwrap();
        Report {
            store: "file:///tmp/store".into(),
            generated_at_us: t0 + 3 * day,
            since_us: t0,
            until_us: t0 + 3 * day,
            sessions: vec![session("alice", "default", t0), hostile],
            grants: vec![Grant {
                id: "g-1".into(),
                requester: "alice".into(),
                role: "prod-debug".into(),
                namespace: "prod".into(),
                reason: HOSTILE.into(),
                ttl_secs: 1800,
                requested_at_us: t0,
                state: "expired".into(),
                decided_by: Some("bob".into()),
                decided_at_us: Some(t0 + 1),
                decision_reason: String::new(),
                expires_at_us: Some(t0 + 1 + 1_800_000_000),
                sessions: vec![],
            }],
            denials: vec![denial],
            integrity: vec![Integrity {
                session: hostile_id,
                class: "session".into(),
                status: Verdict::Ok,
                problems: vec![],
                shredded: Some(ShredRecord {
                    session: hostile_id,
                    by: "cli:dpo".into(),
                    reason: format!("erasure {HOSTILE}"),
                    at_us: t0 + 2 * day,
                    keks: vec![],
                }),
            }],
            deletions: vec![Deleted {
                pass: "p-1".into(),
                deleted_at_us: t0 + day,
                deletion: Deletion {
                    session: deleted,
                    root: "sessions".into(),
                    rule: "rule-prod-1d".into(),
                    ended_at_us: t0 - 3 * day,
                    expired_at_us: t0 - 2 * day,
                    sealed_at_us: t0 - 3 * day,
                },
            }],
            holds: vec![Hold {
                id: "h-1".into(),
                case: "CASE-1".into(),
                reason: format!("hold {HOSTILE}"),
                by: "cli:legal".into(),
                placed_at_us: t0,
                select: storage_schema::store::holds::Selector {
                    users: vec!["alice".into()],
                    ..Default::default()
                },
            }],
            reads: vec![ReadEntry {
                session: hostile_id,
                action: "cat".into(),
                reader: "auditor".into(),
                os_user: "root".into(),
                host: "h".into(),
                reason: Some(format!("read {HOSTILE}")),
                keyring: "fp".into(),
                at_us: t0 + day,
            }],
            notes: vec![HOSTILE.into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_by_user_namespace_and_every_day_of_the_window() {
        let r = fixture::report();
        assert_eq!(r.per_user()["alice"], 1);
        assert_eq!(r.per_namespace()["prod"], 1);
        let days = r.per_day();
        assert_eq!(days.len(), 3, "{days:?}");
        assert_eq!(days.values().sum::<usize>(), 2);
        assert_eq!(days.values().copied().collect::<Vec<_>>(), [1, 1, 0]);
    }

    #[test]
    fn an_empty_window_has_no_days_and_a_long_one_is_capped() {
        let mut r = Report::default();
        assert!(r.per_day().is_empty());
        r.until_us = 10_000 * DAY_US;
        assert_eq!(r.per_day().len() as u64, MAX_CHART_DAYS);
    }
}
