//! `kubetape report`: the compliance report over a window — sessions per user, namespace and
//! day, JIT grants and the sessions under them, denied requests, debug and port-forward use,
//! every recording's integrity, what retention deleted, what is held, who read what — as one
//! HTML page, one CSV table or one JSON document (`player::report`).
//!
//! Gathering reuses the other commands' own code, so the report agrees with them: `ls`'s
//! listing, `audit`'s reading of the audit log, `audit --reads`' reading of the reads log, and
//! the verifier with public keys only; the JIT ledger through the gateway's own types
//! (`storage_schema::store::jit`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use player::report::model::{self, Deleted, Grant, Integrity, Report, Session, Verdict};
use storage_schema::layout::{self, StreamDir};
use storage_schema::store::jit::Stored;
use storage_schema::store::ledger::Ledger;
use storage_schema::store::{
    KeySource, SessionSummary, Store, StoreError, holds, list_audit_streams, list_sessions,
    retention, shred, verify_stream,
};
use storage_schema::time::unix_micros_now;
use storage_schema::{AuditDecision, Keyring, PublicKey, SessionId, SessionKind, SessionMeta};

use crate::config::Global;
use crate::format;

const ABOUT: &str = "Compliance report over a window: sessions, JIT grants, denials, integrity, retention, holds, reads";

const LONG_ABOUT: &str = "\
A compliance report over a window (--since, --until): sessions per user, per namespace and per
day, with their kind (exec, attach, debug, port-forward); every just-in-time request with its
requester, approver, reason, validity and the sessions opened under it; requests the gateways
did not allow (denied, or unauthenticated: every audit record whose decision is not `allow`); debug
and port-forward use; the integrity of every recording (OK, GAP, FAIL, ERR, and whether it was
crypto-shredded); what retention deleted; the legal holds in force; and every reading of a
recording (the chain-of-custody log, as `kubetape audit --reads`).

Making a report is not a reading of any recording: it uses session metadata, seals, the store's
ledgers (JIT, holds, retention, shredding, reads) and signing public keys only, decrypts no
session, and writes nothing to the store (nor to the reads log). The gateways' audit log is
itself encrypted, so denied requests need the keyring (--keys), as `kubetape audit` does; without
one the report is made anyway and says that part is missing. Integrity is checked with the public
key each recording names, from the keyring, or with --pubkey (what an auditor has).

What is in the window: sessions that started in it, JIT requests made in it (and older ones whose
grant a session in it used), audit records and reads made in it, deletions done in it. Holds are
those in force now. Values are exactly those of `kubetape ls --json` (sessions, which the JSON
report carries unchanged) and `kubetape audit --json` (denials, likewise).

Formats (--format, or from -o's extension; HTML by default):
  html  one self-contained page (inline CSS and SVG charts, no script, no external reference);
        every section has an id and a heading of its own colour
  json  one document: report, summary, sessions_per_user, sessions_per_namespace,
        sessions_per_day, sessions, grants, denials, debug, port_forward, integrity,
        retention_deleted, holds, reads, notes
  csv   one table (not one file per section, so a report stays one file) with the columns
        section,id,time,user,namespace,kind,state,ref,by,reason,detail,count; the first names
        the section, the others mean, per section (times RFC 3339 UTC):
          summary        id = measure, count
          per_user / per_namespace / per_day   user / namespace / time = day, count
          session        id, time = start, user, namespace, kind, state, ref = grant,
                         detail = target
          grant          id = request, time = requested, user = requester, namespace, kind = role,
                         state, ref = its sessions (space separated), by = approver, reason,
                         detail = ttl, decided, valid_until; count = its sessions
          denial         id = session, time, user, namespace, kind = verb resource,
                         state = decision status, ref = rule, by = gateway, reason, detail = path
          debug / port_forward   id, time, user, namespace, kind, detail
          integrity      id, kind = class, state = OK|GAP|FAIL|ERR, detail = problems; if shredded:
                         time, by, reason of the shredding
          deleted        id, time = deleted, kind = root, ref = pass, reason = rule, detail
          hold           id, time = placed, ref = case, by, reason, detail = what it holds
          read           id = session, time, user = reader, kind = action, ref = keyring,
                         by = login@host, reason
        Values are unaltered: open it in a spreadsheet with every column as text.

Progress of the integrity check is shown on stderr for stores with many recordings. The exit
status is 0 when every part was gathered and every recording is intact, 3 when some recordings
(or the audit log) have declared gaps only, and 1 otherwise (the report is still written, and says what is missing).";

const AFTER_HELP: &str = "\
Examples:
  kubetape report --since 30d -o report.html
  kubetape report --since 2026-11-01T00:00:00Z --until 2026-12-01T00:00:00Z --format csv -o nov.csv
  kubetape report --since 7d --format json | jq '.grants[] | {requester, reason, sessions}'
  kubetape report --since 90d --pubkey signing.pub -o q4.html     (integrity with the auditor's key)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Html,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// Start of the window: a duration ago (30d, 12h) or an RFC 3339 time
    #[arg(long, value_name = "WHEN", default_value = "30d", value_parser = super::audit::parse_since)]
    since: u64,

    /// End of the window (exclusive): a duration ago or an RFC 3339 time [default: now]
    #[arg(long, value_name = "WHEN", value_parser = super::audit::parse_since)]
    until: Option<u64>,

    /// Output format [default: from -o's extension, else html]
    #[arg(long, value_enum)]
    format: Option<Format>,

    /// Write the report to FILE instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,

    /// Check integrity with this signing public key (`keys export-pub`) instead of the keyring's
    #[arg(long, value_name = "FILE")]
    pubkey: Option<PathBuf>,
}

impl Args {
    fn format(&self) -> Format {
        self.format.unwrap_or_else(|| {
            match self
                .output
                .as_ref()
                .and_then(|p| p.extension())
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("csv") => Format::Csv,
                Some("json") => Format::Json,
                _ => Format::Html,
            }
        })
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let now = unix_micros_now();
    let until = args.until.unwrap_or(now);
    if args.since >= until {
        anyhow::bail!(
            "--since ({}) is not before --until ({})",
            model::time(args.since),
            model::time(until)
        );
    }
    let store = global.open_store()?;
    let pubkey =
        match &args.pubkey {
            Some(path) => Some(PublicKey::read_file(path).with_context(|| {
                format!("cannot use {} as a signing public key", path.display())
            })?),
            None => None,
        };
    let mut report = Report {
        store: store.url().to_string(),
        generated_at_us: now,
        since_us: args.since,
        until_us: until,
        ..Report::default()
    };
    let keyring = match global.open_keyring() {
        Ok(k) => Some(k),
        Err(e) => {
            let note = format!(
                "denied requests and audit-stream integrity are not included: the audit log needs the keyring ({})",
                crate::errors::chain(&e)
            );
            eprintln!("kubetape: {note}");
            report.notes.push(note);
            None
        }
    };
    let in_window = |t: u64| args.since <= t && t < until;

    // Sessions, as `ls` lists them. Ids are UUIDv7, made when the session starts: ids far
    // outside the window are not summarized at all (a year's store, a month's report).
    let all: Vec<SessionId> = list_sessions(&store)
        .await?
        .into_iter()
        .filter(|id| {
            id.created_at_us().is_none_or(|t| {
                t.saturating_add(ID_SLACK_US) >= args.since && t < until.saturating_add(ID_SLACK_US)
            })
        })
        .collect();
    let (ids, summaries) = super::ls::sessions_only(&store, &all, None).await;
    for (id, summary) in ids.iter().zip(&summaries) {
        let session = session(id, summary);
        if in_window(session.started_at_us) {
            report.sessions.push(session);
        }
    }

    // The audit log: denials, and which sessions each grant allowed.
    let mut grant_sessions: BTreeMap<String, BTreeSet<SessionId>> = BTreeMap::new();
    for s in &report.sessions {
        if let Some(g) = &s.grant {
            grant_sessions.entry(g.clone()).or_default().insert(s.id);
        }
    }
    let mut complete = true;
    let mut audit_gaps = 0;
    if let Some(keyring) = &keyring {
        let filter = super::audit::Filter {
            since_us: Some(args.since),
            ..Default::default()
        };
        let collected = super::audit::collect(&store, keyring, &filter).await?;
        complete &= collected.failed == 0;
        audit_gaps = collected.gaps;
        report.notes.extend(collected.problems);
        for r in collected.records.into_iter().filter(|r| r.time_us < until) {
            if let (Some(g), Some(s)) = (&r.grant, r.session) {
                grant_sessions.entry(g.clone()).or_default().insert(s);
            }
            if r.decision != AuditDecision::Allow {
                report.denials.push(r);
            }
        }
    }

    // The JIT ledger.
    let (grants, bad) = jit_grants(&store, now).await?;
    for b in bad {
        eprintln!("kubetape: {b}");
        report.notes.push(b);
        complete = false;
    }
    for mut g in grants {
        let used = grant_sessions.remove(&g.id).unwrap_or_default();
        if in_window(g.requested_at_us) || !used.is_empty() {
            g.sessions = used.into_iter().collect();
            report.grants.push(g);
        }
    }
    for (id, sessions) in grant_sessions {
        report.notes.push(format!(
            "grant {id} allowed {} session(s) in the window but is not in the JIT ledger",
            sessions.len()
        ));
    }

    // Integrity, with public keys only.
    let (shredded, bad) = shred::all(&store).await?;
    for b in bad {
        report
            .notes
            .push(format!("an unreadable shred record: {b}"));
        complete = false;
    }
    let mut dirs: Vec<(StreamDir, &'static str)> = report
        .sessions
        .iter()
        .map(|s| {
            let class = if s.kind == "port-forward" {
                "port-forward"
            } else {
                "session"
            };
            (StreamDir::session(s.id), class)
        })
        .collect();
    if let Some(keyring) = &keyring {
        let found = list_audit_streams(&store).await?;
        for dir in found.streams {
            let created = dir.id().created_at_us().unwrap_or(0);
            if created < until
                && !super::audit::sealed_before(&store, keyring, dir, args.since).await
            {
                dirs.push((dir, "audit-stream"));
            }
        }
    }
    let total = dirs.len();
    for (n, (dir, class)) in dirs.into_iter().enumerate() {
        let mut i = integrity(&store, dir, class, pubkey.as_ref(), keyring.as_ref()).await;
        i.shredded = shredded.get(&dir.id()).cloned();
        report.integrity.push(i);
        if total >= PROGRESS_EVERY && ((n + 1) % PROGRESS_EVERY == 0 || n + 1 == total) {
            eprintln!("kubetape: checked {}/{total} recordings", n + 1);
        }
    }

    // Retention, holds, reads.
    let (passes, bad) = retention::passes(&store).await?;
    for b in bad {
        report
            .notes
            .push(format!("an unreadable retention record: {b}"));
        complete = false;
    }
    for (pass, (_, result)) in passes {
        let Some(result) = result.filter(|r| in_window(r.finished_at_us)) else {
            continue;
        };
        for deletion in result.deleted {
            report.deletions.push(Deleted {
                pass: pass.clone(),
                deleted_at_us: result.finished_at_us,
                deletion,
            });
        }
    }
    report.holds = holds::Holds::load(&store).await?.active;
    let reads_filter = super::audit_reads::Filter {
        since_us: Some(args.since),
        user: None,
    };
    let (reads, bad) = super::audit_reads::collect(&store, &reads_filter).await?;
    complete &= bad.is_empty();
    report.notes.extend(bad);
    report.reads = reads.into_iter().filter(|e| e.at_us < until).collect();

    let text = match args.format() {
        Format::Html => player::report::html::render(&report),
        Format::Csv => player::report::csv::render(&report),
        Format::Json => {
            let mut t = serde_json::to_string_pretty(&player::report::json::render(&report))?;
            t.push('\n');
            t
        }
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write the report to {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    let counts = report.integrity_counts();
    eprintln!(
        "kubetape: report of {} to {}: {} sessions, {} JIT requests, {} denials, {} recordings checked ({} OK, {} GAP, {} FAIL, {} ERR)",
        model::time(args.since),
        model::time(until),
        report.sessions.len(),
        report.grants.len(),
        report.denials.len(),
        report.integrity.len(),
        counts["OK"],
        counts["GAP"],
        counts["FAIL"],
        counts["ERR"]
    );
    Ok(
        if !complete || counts["FAIL"] + counts["ERR"] > 0 || keyring.is_none() {
            ExitCode::FAILURE
        } else if counts["GAP"] + audit_gaps > 0 {
            ExitCode::from(super::verify::GAPS)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// How far a session's id time may be from its metadata's start time and still be looked at:
/// both are the recorder's clock at the start, but a session made by `kubetape record` on a
/// host with a wrong clock is still found.
const ID_SLACK_US: u64 = 86_400 * 1_000_000;

/// Progress of the integrity check is said every this many recordings.
const PROGRESS_EVERY: usize = 25;

/// One listed session as the report groups it; `listing` is `ls --json`'s object.
fn session(id: &SessionId, summary: &Result<SessionSummary, StoreError>) -> Session {
    let listing = super::ls::json(id, summary);
    let meta = summary.as_ref().ok().and_then(|s| s.meta.as_ref());
    let started_at_us = meta
        .map(|m| m.started_at_us)
        .or_else(|| id.created_at_us())
        .unwrap_or(0);
    let state = summary
        .as_ref()
        .map_or_else(|_| "unreadable".to_string(), |s| s.state.clone());
    let forward = match (meta, summary) {
        (Some(m), Ok(s)) if m.kind == SessionKind::PortForward => {
            let t = s.port_forward.unwrap_or_default();
            Some(format!(
                "{} connection(s) ({} refused), ↑{} ↓{}",
                t.connections,
                t.refused,
                format::bytes(t.to_pod),
                format::bytes(t.from_pod)
            ))
        }
        _ => None,
    };
    Session {
        listing,
        id: *id,
        user: meta.map_or_else(|| "-".into(), |m| m.identity.user.clone()),
        namespace: meta
            .and_then(|m| m.target.namespace.clone())
            .unwrap_or_else(|| "-".into()),
        kind: meta.map_or_else(|| "-".into(), |m| kind_name(m.kind)),
        started_at_us,
        state,
        target: meta.map_or_else(|| "-".into(), |m| m.target.to_string()),
        grant: meta.and_then(|m| m.grant.as_ref()).map(|g| g.id.clone()),
        debug: meta
            .and_then(|m| m.debug.as_ref())
            .map(|d| format!("{} ({}, profile {})", d.image, d.form, d.profile)),
        forward,
    }
}

/// A kind as the metadata spells it (`port-forward`).
fn kind_name(kind: SessionKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// One stream's integrity, as `verify --pubkey` establishes it: with `pubkey`, or else the
/// keyring's public key that the stream's metadata names. Never decrypts.
async fn integrity(
    store: &Store,
    dir: StreamDir,
    class: &str,
    pubkey: Option<&PublicKey>,
    keyring: Option<&Keyring>,
) -> Integrity {
    let mut out = Integrity {
        session: dir.id(),
        class: class.to_string(),
        status: Verdict::Err,
        problems: Vec::new(),
        shredded: None,
    };
    let key = match pubkey {
        Some(k) => k,
        None => {
            let meta = match store.get_opt(&dir.meta()).await {
                Ok(Some(bytes)) => serde_json::from_slice::<SessionMeta>(&bytes).ok(),
                _ => None,
            };
            let Some(meta) = meta else {
                out.problems
                    .push("cannot read its metadata (which names its signing key)".into());
                return out;
            };
            match keyring.map(|k| k.public_key(&meta.keys.signing)) {
                Some(Ok(k)) => k,
                Some(Err(e)) => {
                    out.problems.push(format!("no public key to check it: {e}"));
                    return out;
                }
                None => {
                    out.problems
                        .push("no public key to check it (give --pubkey or --keys)".into());
                    return out;
                }
            }
        }
    };
    match verify_stream(store, dir, KeySource::PublicKey(key)).await {
        Ok(report) => {
            out.status = super::verify::verdict(&report);
            out.problems
                .extend(report.damage.iter().map(|d| d.to_string()));
            out.problems
                .extend(report.gaps.iter().map(|g| format!("gap {}", g.describe())));
        }
        Err(e) => out.problems.push(format!("cannot verify: {e}")),
    }
    out
}

/// How long a request may wait for a decision (the gateway's `PENDING_LIFETIME`).
const PENDING_US: u64 = 86_400 * 1_000_000;

/// Every request in the JIT ledger, oldest first, with its decision and where it stands at
/// `now` (as `kubetape requests` would say); and the objects that could not be read.
async fn jit_grants(store: &Store, now: u64) -> anyhow::Result<(Vec<Grant>, Vec<String>)> {
    let ledger = Ledger::new(store.clone(), layout::JIT_REQUESTS);
    let mut requests = Vec::new();
    let mut verdicts = BTreeMap::new();
    let mut bad = Vec::new();
    for (name, object) in ledger.read_after::<Stored>(None).await? {
        match object {
            Ok(Stored::Request(r)) => requests.push(r),
            Ok(Stored::Decision(v)) => {
                let id = name.split_once('/').map_or(name.as_str(), |(id, _)| id);
                verdicts.insert(id.to_string(), v);
            }
            Err(e) => bad.push(format!("an unreadable JIT ledger object: {e}")),
        }
    }
    requests.sort_by_key(|r| (r.created_at_us, r.id.clone()));
    let grants = requests
        .into_iter()
        .map(|r| {
            let v = verdicts.remove(&r.id);
            let expires = v
                .as_ref()
                .filter(|v| v.approved)
                .map(|v| v.at_us.saturating_add(r.ttl_secs.saturating_mul(1_000_000)));
            let state = match (&v, expires) {
                (None, _) if now.saturating_sub(r.created_at_us) > PENDING_US => "abandoned",
                (None, _) => "pending",
                (Some(v), _) if !v.approved => "denied",
                (_, Some(e)) if e > now => "approved",
                _ => "expired",
            };
            Grant {
                id: r.id,
                requester: r.user,
                role: r.role,
                namespace: r.namespace,
                reason: r.reason,
                ttl_secs: r.ttl_secs,
                requested_at_us: r.created_at_us,
                state: state.into(),
                decided_by: v.as_ref().map(|v| v.by.clone()),
                decided_at_us: v.as_ref().map(|v| v.at_us),
                decision_reason: v.map(|v| v.reason).unwrap_or_default(),
                expires_at_us: expires,
                sessions: Vec::new(),
            }
        })
        .collect();
    for id in verdicts.keys() {
        bad.push(format!(
            "a JIT decision for request {id}, which is not in the ledger"
        ));
    }
    Ok((grants, bad))
}

#[cfg(test)]
mod tests {
    use storage_schema::store::jit::{AccessRequest, Verdict};

    use super::*;

    fn request(id: &str, created_at_us: u64) -> AccessRequest {
        AccessRequest {
            id: id.into(),
            user: "alice".into(),
            issuer: "https://i".into(),
            groups: vec![],
            claims: BTreeMap::new(),
            role: "prod-debug".into(),
            namespace: "prod".into(),
            reason: "INC-1".into(),
            ttl_secs: 600,
            created_at_us,
        }
    }

    #[tokio::test]
    async fn the_jit_ledger_reads_as_requests_with_their_decisions_and_states() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("file://{}", dir.path().display())).unwrap();
        let ledger = Ledger::new(store.clone(), layout::JIT_REQUESTS);
        let now = 10 * PENDING_US;
        let ids = [
            "01a00000-0000-7000-8000-000000000001",
            "01a00000-0000-7000-8000-000000000002",
            "01a00000-0000-7000-8000-000000000003",
            "01a00000-0000-7000-8000-000000000004",
            "01a00000-0000-7000-8000-000000000005",
        ];
        let decide = |approved, at_us| Verdict {
            approved,
            by: "bob".into(),
            reason: "ok".into(),
            at_us,
        };
        // Approved and running; approved and over; denied; waiting; never decided.
        let plan = [
            (now - 1_000, Some(decide(true, now - 500))),
            (now - 2 * PENDING_US, Some(decide(true, now - PENDING_US))),
            (now - 3_000, Some(decide(false, now - 2_000))),
            (now - 4_000, None),
            (now - 2 * PENDING_US, None),
        ];
        for (id, (created, verdict)) in ids.iter().zip(plan) {
            ledger
                .append(&layout::jit_request(id), &request(id, created))
                .await
                .unwrap();
            if let Some(v) = verdict {
                ledger.append(&layout::jit_decision(id), &v).await.unwrap();
            }
        }
        // Damage is reported, not fatal: a request whose ttl is out of range, and a decision
        // without its request.
        let mut bad = request("01a00000-0000-7000-8000-000000000006", now);
        bad.ttl_secs = 0;
        ledger
            .append(&layout::jit_request(&bad.id), &bad)
            .await
            .unwrap();
        ledger
            .append(
                &layout::jit_decision("01a00000-0000-7000-8000-000000000007"),
                &decide(true, now),
            )
            .await
            .unwrap();

        let (grants, problems) = jit_grants(&store, now).await.unwrap();
        let states: BTreeMap<&str, &str> = grants
            .iter()
            .map(|g| (g.id.as_str(), g.state.as_str()))
            .collect();
        assert_eq!(
            states,
            BTreeMap::from([
                (ids[0], "approved"),
                (ids[1], "expired"),
                (ids[2], "denied"),
                (ids[3], "pending"),
                (ids[4], "abandoned"),
            ])
        );
        let running = grants.iter().find(|g| g.id == ids[0]).unwrap();
        assert_eq!(running.decided_by.as_deref(), Some("bob"));
        assert_eq!(running.expires_at_us, Some(now - 500 + 600_000_000));
        assert_eq!(running.requester, "alice");
        assert!(
            grants
                .iter()
                .find(|g| g.id == ids[2])
                .unwrap()
                .expires_at_us
                .is_none()
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("ttl")), "{problems:?}");
        assert!(
            problems.iter().any(|p| p.contains("000000000007")),
            "{problems:?}"
        );
    }
}
