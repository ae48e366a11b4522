//! `kubetape audit`: query the gateways' audit log — every audit stream in the store (under
//! `audit/`, and under `sessions/` where older gateways wrote them), each verified before
//! anything it holds is shown.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use storage_schema::layout::StreamDir;
use storage_schema::store::{KeySource, SessionReader, Store, list_audit_streams, verify_stream};
use storage_schema::{AuditRecord, EventKind, Keyring, SealPayload};

use crate::config::Global;
use crate::format;
use crate::stdio::outln;

const ABOUT: &str = "Query the gateways' audit log (one record per request)";

const LONG_ABOUT: &str = "\
Query the gateways' audit log: one record per request a kubetape gateway answered, allowed or
denied, with the identity (user, groups, issuer, carried CI claims), client, verb, resource,
namespace, decision and rule, status, latency and, for exec/attach, the recording's session id.
The table shows the session's short id (what `play`, `cat` and `export` take) and fits 120
columns; --json has every field.
A port-forward also has one record per forwarded connection (RESOURCE `pods/portforward :PORT
#N`, N numbering the connections as `kubetape cat --connection` does; decision `deny` for a port
the policy refused), with its times, bytes each way and outcome under `port_forward` in --json.

Each gateway writes its records into audit streams in the store: encrypted, signed and
hash-chained like recordings. Every stream is verified before its records are used; a damaged
one is reported (naming the stream and the chunk) and makes the exit status 1, and the records
of intact streams are still printed.

With --since, a stream whose signed seal shows it was sealed more than 5 minutes before that
time holds no record to show, and is skipped unread: its chunks are most of this command's
work on a store with months of streams. Such a stream's damage, if any, is `kubetape verify
--all`'s to find. A stream without a seal that verifies is always read in full.

Records are printed oldest first, as a table or (--json) one JSON object per line. Where a
gateway had to drop records (its store and spool could not take them), the stream says so: each
such gap is printed on stderr and the exit status is 3.";

const AFTER_HELP: &str = "\
Examples:
  kubetape audit --since 1h
  kubetape audit --reads --since 30d      who read which recordings, and why
  kubetape audit --user oidc:alice@example.com --namespace prod
  kubetape audit --since 2026-11-23T09:00:00Z --json | jq 'select(.decision != \"allow\")'";

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// Only records of this user (exact username as the gateway mapped it)
    #[arg(long, value_name = "USER")]
    user: Option<String>,

    /// Only requests in this namespace
    #[arg(long, short = 'n', value_name = "NS")]
    namespace: Option<String>,

    /// Only records since a time: a duration ago (30m, 1h, 2d) or an RFC 3339 time
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    since: Option<u64>,

    /// One JSON object per line instead of a table
    #[arg(long)]
    json: bool,

    /// Show the reads log instead: every cat, play and export of a recording (reader, login,
    /// time, reason); --user matches the reader or the login, --since applies
    #[arg(long, conflicts_with = "namespace")]
    reads: bool,
}

/// `--since`: a duration before now, or an RFC 3339 timestamp; as Unix microseconds.
pub(crate) fn parse_since(text: &str) -> Result<u64, String> {
    let to_us = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .map_err(|_| "time before 1970".to_string())
    };
    if let Ok(d) = humantime::parse_duration(text) {
        return to_us(SystemTime::now() - d.min(Duration::from_secs(100 * 365 * 86400)));
    }
    match humantime::parse_rfc3339_weak(text) {
        Ok(t) => to_us(t),
        Err(_) => Err(format!(
            "{text:?} is neither a duration (30m, 1h, 2d) nor an RFC 3339 time (2026-11-23T09:00:00Z)"
        )),
    }
}

/// A filter over records.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    pub user: Option<String>,
    pub namespace: Option<String>,
    pub since_us: Option<u64>,
}

impl Filter {
    fn matches(&self, r: &AuditRecord) -> bool {
        self.user
            .as_ref()
            .is_none_or(|u| r.user.as_ref() == Some(u))
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| r.namespace.as_ref() == Some(n))
            && self.since_us.is_none_or(|s| r.time_us >= s)
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    if args.reads {
        let filter = super::audit_reads::Filter {
            since_us: args.since,
            user: args.user,
        };
        return super::audit_reads::run(&store, filter, args.json).await;
    }
    let keyring = global.open_keyring()?;
    let filter = Filter {
        user: args.user,
        namespace: args.namespace,
        since_us: args.since,
    };
    let Collected {
        records,
        failed,
        gaps,
        ..
    } = collect(&store, &keyring, &filter).await?;
    if args.json {
        for r in &records {
            outln!("{}", serde_json::to_string(r)?)?;
        }
    } else {
        print_table(&records)?;
    }
    if failed > 0 {
        eprintln!(
            "kubetape: {failed} audit stream(s) failed verification or could not be read; their records are NOT shown"
        );
        return Ok(ExitCode::FAILURE);
    }
    if gaps > 0 {
        eprintln!("kubetape: {gaps} gap(s) in the audit log: records are missing where they are");
        return Ok(ExitCode::from(super::verify::GAPS));
    }
    Ok(ExitCode::SUCCESS)
}

/// The audit log's records matching a filter, oldest first, from every stream that verifies;
/// with what could not be shown.
pub(crate) struct Collected {
    pub records: Vec<AuditRecord>,
    /// Streams that failed verification or could not be read (their records are not shown).
    pub failed: usize,
    /// Gaps the streams declare (records the gateway could not write).
    pub gaps: usize,
    /// One line per failed stream and per gap, as printed on stderr.
    pub problems: Vec<String>,
}

/// Reads every audit stream (verifying each first, skipping those sealed before the filter's
/// `since`), saying on stderr what it cannot show. `audit` and `report` both read the log
/// this way, so they show the same records.
pub(crate) async fn collect(
    store: &Store,
    keyring: &Keyring,
    filter: &Filter,
) -> anyhow::Result<Collected> {
    let streams = audit_streams(store).await?;
    if streams.is_empty() {
        eprintln!(
            "kubetape: no audit streams in {} (a gateway writes them as it serves requests)",
            store.url()
        );
    }
    let mut out = Collected {
        records: Vec::new(),
        failed: 0,
        gaps: 0,
        problems: Vec::new(),
    };
    for dir in streams {
        if let Some(since) = filter.since_us
            && sealed_before(store, keyring, dir, since).await
        {
            continue;
        }
        match read_stream(store, keyring, dir, filter).await {
            Ok((mut r, lost)) => {
                // Records the gateway could not write, declared in the stream: said, counted.
                for gap in &lost {
                    out.problems.push(format!(
                        "audit stream {}: gap: {}",
                        dir.id(),
                        gap.describe()
                    ));
                }
                out.gaps += lost.len();
                out.records.append(&mut r);
            }
            Err(e) => {
                out.problems
                    .push(format!("audit stream {}: {e:#}", dir.id()));
                out.failed += 1;
            }
        }
    }
    for p in &out.problems {
        eprintln!("kubetape: {p}");
    }
    out.records.sort_by_key(|r| r.time_us);
    Ok(out)
}

/// Audit streams in the store, oldest first: under `audit/`, and under `sessions/` where older
/// gateways wrote them.
pub(crate) async fn audit_streams(store: &Store) -> anyhow::Result<Vec<StreamDir>> {
    let found = list_audit_streams(store).await?;
    // Unreadable metadata could be an audit stream someone damaged: say so.
    for (id, why) in &found.unknown {
        eprintln!("kubetape: session {id}: cannot read its metadata: {why}");
    }
    let mut streams = found.streams;
    streams.reverse();
    Ok(streams)
}

/// Clock slack for [`sealed_before`]: a record's time and its stream's seal time come from the
/// same gateway's clock, which NTP may step a little between them.
const SEAL_SLACK_US: u64 = 5 * 60 * 1_000_000;

/// Whether stream `id` carries a seal, signed by a key in the keyring, for this very stream,
/// made more than [`SEAL_SLACK_US`] before `since_us`. The seal is written after every record
/// of its stream, and only the gateway's key can sign one, so such a stream holds nothing at
/// or after `since_us`. Any doubt (no seal, unknown key, bad signature) answers no.
pub(crate) async fn sealed_before(
    store: &Store,
    keyring: &Keyring,
    dir: StreamDir,
    since_us: u64,
) -> bool {
    let id = dir.id();
    let Ok(Some(bytes)) = store.get_opt(&dir.seal()).await else {
        return false;
    };
    let signer = SealPayload::signer_of(&bytes).ok();
    let Some(key) = signer.and_then(|signer| keyring.public_key(&signer).ok()) else {
        return false;
    };
    SealPayload::verify(&bytes, key).is_ok_and(|seal| {
        seal.session == id && seal.sealed_at_us.saturating_add(SEAL_SLACK_US) < since_us
    })
}

/// Verifies one stream, then returns its matching records.
async fn read_stream(
    store: &Store,
    keyring: &Keyring,
    dir: StreamDir,
    filter: &Filter,
) -> anyhow::Result<(Vec<AuditRecord>, Vec<storage_schema::Gap>)> {
    let report = verify_stream(store, dir, KeySource::Keyring(keyring))
        .await
        .context("cannot verify")?;
    if !report.intact() {
        let damage: Vec<String> = report.damage.iter().map(|d| d.to_string()).collect();
        bail!("DAMAGED: {}", damage.join("; "));
    }
    let reader = SessionReader::open_at(store, keyring, dir).await?;
    let mut records = Vec::new();
    let mut bad = 0usize;
    reader
        .for_each_event(|e| {
            if let EventKind::Audit { json } = &e.kind {
                match serde_json::from_str::<AuditRecord>(json) {
                    Ok(r) if filter.matches(&r) => records.push(r),
                    Ok(_) => {}
                    Err(_) => bad += 1,
                }
            }
        })
        .await?;
    if bad > 0 {
        bail!("{bad} record(s) are not valid audit records (written by an incompatible gateway?)");
    }
    Ok((records, report.gaps))
}

/// The table's width: a 120-column terminal shows a record per line.
const TABLE_WIDTH: usize = 120;

/// The table: TIME, SESSION (the recording's short id, `-` for a request that is none), USER,
/// VERB, RESOURCE (`resource/subresource`, or the path of a non-resource request), TARGET
/// (`namespace/name`), RESULT (decision and status) and, when a record carries any, CI (the
/// carried claims). The rule and the reason are in --json. Wider than 120 columns, CI, then
/// RESOURCE, TARGET and USER are cut (`…`).
fn print_table(records: &[AuditRecord]) -> std::io::Result<()> {
    let ci = records.iter().any(|r| !r.claims.is_empty());
    let mut header = [
        "TIME", "SESSION", "USER", "VERB", "RESOURCE", "TARGET", "RESULT",
    ]
    .map(String::from)
    .to_vec();
    if ci {
        header.push("CI".into());
    }
    let mut rows = vec![header];
    for r in records {
        let resource = match (&r.resource, &r.subresource) {
            (Some(res), Some(sub)) => format!("{res}/{sub}"),
            (Some(res), None) => res.clone(),
            (None, _) => r.path.clone(),
        };
        let resource = match connection_label(r) {
            Some(c) => format!("{resource} {c}"),
            None => resource,
        };
        let target = match (&r.namespace, &r.name) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (Some(ns), None) => ns.clone(),
            (None, Some(name)) => name.clone(),
            (None, None) => "-".into(),
        };
        let mut row = vec![
            format::timestamp_us(r.time_us),
            r.session.map_or_else(|| "-".into(), |id| id.short()),
            r.user.clone().unwrap_or_else(|| "-".into()),
            r.verb.clone(),
            resource,
            target,
            format!("{} {}", r.decision.name(), r.status),
        ];
        if ci {
            let claims: Vec<String> = r.claims.iter().map(|(k, v)| format!("{k}={v}")).collect();
            row.push(if claims.is_empty() {
                "-".into()
            } else {
                claims.join(",")
            });
        }
        rows.push(row);
    }
    let give_way = [
        format::Shrink::head(7, 16),
        format::Shrink::middle(4, 16),
        format::Shrink::middle(5, 16),
        format::Shrink::head(2, 12),
    ];
    for line in format::table_within(&rows, TABLE_WIDTH, &give_way) {
        outln!("{line}")?;
    }
    Ok(())
}

/// `:PORT #N` for a port-forward connection's record, from its `port_forward` field.
fn connection_label(r: &AuditRecord) -> Option<String> {
    let c = r.extra.get("port_forward")?;
    Some(format!(
        ":{} #{}",
        c.get("port")?.as_u64()?,
        c.get("connection")?.as_u64()?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_records_are_labelled_with_port_and_number() {
        let mut record: AuditRecord = serde_json::from_value(serde_json::json!({
            "time_us": 100, "gateway": "g", "user": "alice", "client": "c", "method": "GET",
            "path": "/p", "verb": "create", "decision": "allow", "status": 200, "latency_ms": 0.0
        }))
        .unwrap();
        assert_eq!(connection_label(&record), None);
        record.extra.insert(
            "port_forward".into(),
            serde_json::json!({"connection": 3, "port": 5432, "outcome": "refused"}),
        );
        assert_eq!(connection_label(&record).as_deref(), Some(":5432 #3"));
    }

    #[test]
    fn since_accepts_durations_and_times_and_refuses_the_rest() {
        let now = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_micros() as u64
        };
        let before = now();
        let hour_ago = parse_since("1h").unwrap();
        let after = now();
        assert!((before - 3_600_000_000..=after - 3_600_000_000).contains(&hour_ago));
        assert_eq!(
            parse_since("2026-11-23T09:00:00Z").unwrap(),
            1_795_424_400_000_000
        );
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("").is_err());
    }

    #[test]
    fn filter_matches_user_namespace_and_time() {
        let record: AuditRecord = serde_json::from_value(serde_json::json!({
            "time_us": 100, "gateway": "g", "user": "alice", "client": "c", "method": "GET",
            "path": "/p", "verb": "get", "namespace": "prod", "decision": "allow", "status": 200,
            "latency_ms": 1.0
        }))
        .unwrap();
        assert!(Filter::default().matches(&record));
        let f = |user: Option<&str>, ns: Option<&str>, since: Option<u64>| Filter {
            user: user.map(String::from),
            namespace: ns.map(String::from),
            since_us: since,
        };
        assert!(f(Some("alice"), Some("prod"), Some(100)).matches(&record));
        assert!(!f(Some("bob"), None, None).matches(&record));
        assert!(!f(None, Some("staging"), None).matches(&record));
        assert!(!f(None, None, Some(101)).matches(&record));
    }
}
