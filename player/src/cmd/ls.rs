//! `kubetape ls`: the sessions in the store, newest first, from what can be read without keys.

use std::process::ExitCode;

use storage_schema::store::{SessionSummary, StoreError, list_sessions, summarize_all};

use crate::class;
use crate::config::Global;
use crate::format;
use crate::stdio::outln;

const ABOUT: &str = "List recorded sessions, newest first";

const LONG_ABOUT: &str = "\
List recorded sessions, newest first.

Reads only plaintext metadata and seals, so no keyring is needed. The listing is informational:
`kubetape verify` is what checks a session is intact. STATE is `sealed` (ended normally),
`interrupted` (its recorder died and it was sealed later), `open` (live, or its recorder died and
nobody has run `kubetape seal` yet) or `unreadable`. BYTES counts the recorded input and output
(stdin, stdout and stderr: an upload by `kubectl cp` is stdin) when the seal says, and
otherwise the space the session takes in the store. For a port-forward (TARGET ends in
`portforward`) it is `N conn ↑TO ↓FROM`: the connections it forwarded, the bytes sent to the
pod and those received from it (`kubetape play` shows them as a timeline, `kubetape cat
--connection N` prints one's bytes if they were captured). A `kubectl debug` session's TARGET
ends in `[debug IMAGE]`.

ID is the session's short id (the last 8 hex digits of its id, its random part): every command
that takes a session accepts it, the full id, or a unique prefix.

The gateways' audit streams are not sessions and are not listed (`kubetape audit` reads them).";

const AFTER_HELP: &str = "\
Examples:
  kubetape ls
  kubetape ls --limit 5
  kubetape ls --json | jq '.[] | select(.state != \"sealed\") | .session'";

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// Print one JSON array of session summaries instead of a table
    #[arg(long)]
    json: bool,

    /// Show only the N newest sessions
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    let all = list_sessions(&store).await?;
    let (ids, summaries) = sessions_only(&store, &all, args.limit).await;
    if ids.is_empty() {
        if args.json {
            outln!("[]")?;
        }
        eprintln!(
            "kubetape: no sessions in {} yet; record one with `kubetape record` (a shell) or `kubetape record -- CMD`",
            store.url()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        let values: Vec<serde_json::Value> = ids
            .iter()
            .zip(&summaries)
            .map(|(id, s)| json(id, s))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&values)?)?;
    } else {
        print_table(&ids, &summaries)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The summaries of `ids` that `ls` lists by their class ([`class::listed_by_ls`]), at most
/// `limit` of them (summarized in batches, so a small limit
/// stays cheap on a big store).
pub(crate) async fn sessions_only(
    store: &storage_schema::store::Store,
    ids: &[storage_schema::SessionId],
    limit: Option<usize>,
) -> (
    Vec<storage_schema::SessionId>,
    Vec<Result<SessionSummary, StoreError>>,
) {
    let want = limit.unwrap_or(usize::MAX);
    let (mut kept_ids, mut kept) = (Vec::new(), Vec::new());
    for batch in ids.chunks(limit.map_or(ids.len().max(1), |l| l.max(16))) {
        for (id, summary) in batch.iter().zip(summarize_all(store, batch).await) {
            if class::listed_by_ls(summary.as_ref().ok().and_then(SessionSummary::class))
                && kept.len() < want
            {
                kept_ids.push(*id);
                kept.push(summary);
            }
        }
        if kept.len() >= want {
            break;
        }
    }
    (kept_ids, kept)
}

pub(crate) fn json(
    id: &storage_schema::SessionId,
    summary: &Result<SessionSummary, StoreError>,
) -> serde_json::Value {
    match summary {
        Ok(s) => match serde_json::to_value(s) {
            Ok(mut value) => {
                value["short"] = serde_json::Value::String(id.short());
                value
            }
            Err(e) => serde_json::json!({ "session": id, "error": e.to_string() }),
        },
        Err(e) => {
            serde_json::json!({ "session": id, "short": id.short(), "state": "unreadable", "error": e.to_string() })
        }
    }
}

fn print_table(
    ids: &[storage_schema::SessionId],
    summaries: &[Result<SessionSummary, StoreError>],
) -> std::io::Result<()> {
    let mut rows = vec![
        [
            "SESSION", "ID", "USER", "TARGET", "START", "DURATION", "BYTES", "STATE", "EXIT",
        ]
        .map(String::from),
    ];
    for (id, summary) in ids.iter().zip(summaries) {
        rows.push(match summary {
            Ok(s) => row(s),
            Err(e) => {
                tracing::warn!("session {id}: {e}");
                [
                    id.to_string(),
                    id.short(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "unreadable".into(),
                    "-".into(),
                ]
            }
        });
    }
    for line in format::table(&rows) {
        outln!("{line}")?;
    }
    Ok(())
}

fn row(s: &SessionSummary) -> [String; 9] {
    let (user, target, start) = match &s.meta {
        Some(m) => (
            m.identity.user.clone(),
            match &m.debug {
                Some(d) => format!("{} [debug {}]", m.target, d.image),
                None => m.target.to_string(),
            },
            format::timestamp_us(m.started_at_us),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    let bytes = match (forward_bytes(s), s.bytes) {
        (Some(f), _) => f,
        (None, Some(b)) => format::bytes(b.stdin + b.stdout + b.stderr),
        (None, None) => format!("{} stored", format::bytes(s.stored_bytes)),
    };
    let exit = s
        .exit
        .as_ref()
        .map_or_else(|| "-".to_string(), format::exit);
    let target = match &s.meta {
        Some(m) if m.kind == storage_schema::SessionKind::PortForward => {
            format!("{target} portforward")
        }
        _ => target,
    };
    [
        s.session.to_string(),
        s.session.short(),
        user,
        target,
        start,
        format::duration_us(s.duration_us),
        bytes,
        s.state.clone(),
        exit,
    ]
}

/// A port-forward's connections and bytes each way, from its seal (`None` for other sessions;
/// `live` for one still open, whose totals come with its seal).
fn forward_bytes(s: &SessionSummary) -> Option<String> {
    let meta = s.meta.as_ref()?;
    if meta.kind != storage_schema::SessionKind::PortForward {
        return None;
    }
    let t = s.port_forward.unwrap_or_default();
    Some(match (s.state.as_str(), s.bytes) {
        ("open", None) => format!("live, {} stored", format::bytes(s.stored_bytes)),
        _ => format!(
            "{} conn ↑{} ↓{}",
            t.connections,
            format::bytes(t.to_pod),
            format::bytes(t.from_pod)
        ),
    })
}
