//! `kubetape search`: find sessions by the commands typed in them.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use regex::bytes::RegexBuilder;

use crate::config::Global;
use crate::format;
use player::index::{Filter, Hit, Index};

const ABOUT: &str = "Find sessions by the commands that were typed in them (or anything typed)";

const LONG_ABOUT: &str = "\
Find sessions by the commands that were typed in them, across every recording in the store.

Searches a local index (in your cache directory, readable only by you, since it holds the
decrypted command lines) that is brought up to date from the store first: every session that
ended since the last search is read and its commands added. Commands come from the recording's
commands object, which the gateway writes as it seals an interactive session (reconstructed from
the keystrokes and the screen, so edits, history recall and tab completion show as the command
that ran, and a line typed ahead while another command ran as the command it became); for a
non-interactive exec, the exec's own command line. Passwords typed at a no-echo prompt are
never in it. Port-forwards type no commands and are not searched (`kubetape audit` has one
record per connection).

Every other line typed is indexed too, and searched with --all-input: lines read by programs
(answers to their prompts, REPL lines such as `>>>` or `db>`, text typed into `cat`) and lines
abandoned with Ctrl-C before they ran.

PATTERN is a regular expression (Rust regex syntax), matched anywhere in a command; `^` and `$`
anchor at the command's start and end.";

const AFTER_HELP: &str = "\
Examples:
  kubetape search 'rm -rf'
  kubetape search '^kubectl delete' --namespace prod --since 7d
  kubetape search 'psql' --user 'alice@*' --json
  kubetape search --all-input 'DROP TABLE'      also what was typed into psql, python, ...
  kubetape play 4f1c2a9b-7b1c --at '#3'          open a hit (its session and command number)";

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// Regular expression to look for in the commands
    pattern: String,

    /// Only sessions of this user (`*` wildcards allowed)
    #[arg(long)]
    user: Option<String>,

    /// Only sessions in this namespace (`*` wildcards allowed)
    #[arg(long, short = 'n')]
    namespace: Option<String>,

    /// Only sessions in this pod (`*` wildcards allowed)
    #[arg(long)]
    pod: Option<String>,

    /// Only commands typed at or after this time: a duration ago (`90m`, `7d`) or a UTC time
    /// (`2026-11-23T18:00:00Z`, `2026-11-23 18:00`)
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,

    /// Only commands typed at or before this time (same forms as --since)
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,

    /// Match case-insensitively
    #[arg(long, short = 'i')]
    ignore_case: bool,

    /// Search everything typed, not only commands: lines typed to programs (answers to their
    /// prompts, REPLs) and lines abandoned with Ctrl-C (the KIND column says which)
    #[arg(long, short = 'a')]
    all_input: bool,

    /// One JSON object per hit
    #[arg(long)]
    json: bool,

    /// Search the index as it is, without reading new sessions from the store first
    #[arg(long, conflicts_with = "reindex")]
    no_sync: bool,

    /// Throw the local index away and rebuild it from the store
    #[arg(long)]
    reindex: bool,

    /// Index directory [default: $XDG_CACHE_HOME/kubetape/index/<store>]
    #[arg(long, env = "KUBETAPE_INDEX", value_name = "DIR")]
    index: Option<PathBuf>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let pattern = RegexBuilder::new(&args.pattern)
        .multi_line(true)
        .case_insensitive(args.ignore_case)
        .build()
        .with_context(|| format!("{:?} is not a valid regular expression", args.pattern))?;
    let now = storage_schema::time::unix_micros_now();
    let filter = Filter {
        user: args.user.clone(),
        namespace: args.namespace.clone(),
        pod: args.pod.clone(),
        since_unix_us: args
            .since
            .as_deref()
            .map(|w| parse_when(w, now))
            .transpose()?,
        until_unix_us: args
            .until
            .as_deref()
            .map(|w| parse_when(w, now))
            .transpose()?,
        all_input: args.all_input,
    };
    let store_url = global.store_url()?;
    let dir = args
        .index
        .clone()
        .unwrap_or_else(|| storage_schema::defaults::index_dir(&store_url));
    if args.reindex {
        Index::clear(&dir)?;
    }
    let mut index = Index::open(&dir)?;
    if !args.no_sync {
        let store = global.open_store()?;
        let keyring = global.open_keyring()?;
        let show = std::io::stderr().is_terminal();
        let started = Instant::now();
        let report = index
            .sync(&store, &keyring, |done, total| {
                if show && total >= 20 && (done % 10 == 0 || done == total) {
                    eprint!("\rkubetape: indexing new sessions {done}/{total}…");
                }
            })
            .await?;
        if show && report.indexed + report.open + report.unreadable >= 20 {
            eprintln!(
                "\rkubetape: indexed {} new sessions in {:.1} s ({} still open)   ",
                report.indexed,
                started.elapsed().as_secs_f64(),
                report.open
            );
        }
        if report.unreadable > 0 {
            eprintln!(
                "kubetape: {} sessions could not be read and are not searched (wrong --keys, or damaged: `kubetape verify --all`)",
                report.unreadable
            );
        }
    }
    let hits = index.search(&pattern, &filter)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = if args.json {
        hits.iter().try_for_each(|h| {
            serde_json::to_writer(&mut out, h)?;
            writeln!(out)?;
            Ok::<_, anyhow::Error>(())
        })
    } else {
        print_table(&mut out, &hits, args.all_input)
    };
    match written.and_then(|()| out.flush().map_err(Into::into)) {
        Err(e) if crate::stdio::is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
        other => other?,
    }
    if hits.is_empty() {
        if !args.json {
            eprintln!(
                "kubetape: no {} matches {:?} in {} sessions ({} lines indexed)",
                if args.all_input {
                    "line typed"
                } else {
                    "command"
                },
                args.pattern,
                index.session_count(),
                index.command_count()
            );
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The sessions (full ids) with a command matching `pattern`, from the same local index `kubetape
/// search` uses (synced first): `kubetape export --bundle --search`.
pub async fn sessions_matching(
    global: &Global,
    store: &storage_schema::store::Store,
    keyring: &storage_schema::Keyring,
    pattern: &str,
    index: Option<PathBuf>,
) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let regex = RegexBuilder::new(pattern)
        .multi_line(true)
        .build()
        .with_context(|| format!("{pattern:?} is not a valid regular expression"))?;
    let dir = index.unwrap_or_else(|| {
        storage_schema::defaults::index_dir(&global.store_url().unwrap_or_default())
    });
    let mut index = Index::open(&dir)?;
    let report = index.sync(store, keyring, |_, _| {}).await?;
    if report.unreadable > 0 {
        eprintln!(
            "kubetape: {} sessions could not be read and are not searched",
            report.unreadable
        );
    }
    Ok(index
        .search(&regex, &Filter::default())?
        .into_iter()
        .map(|h| h.session)
        .collect())
}

fn print_table(out: &mut impl std::io::Write, hits: &[Hit], kinds: bool) -> anyhow::Result<()> {
    if hits.is_empty() {
        return Ok(());
    }
    let mut header = vec!["SESSION", "TIME (UTC)", "OFFSET", "#", "USER", "TARGET"];
    if kinds {
        header.push("KIND");
    }
    header.push(if kinds { "TYPED" } else { "COMMAND" });
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for h in hits {
        let target = [h.namespace.as_deref(), h.pod.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("/");
        let mut row = vec![
            // The short id (the id's random tail): what `play`, `cat` and `export` take.
            h.session
                .parse::<storage_schema::SessionId>()
                .map_or_else(|_| h.session.clone(), |id| id.short()),
            format::timestamp_us(h.at_unix_us),
            format::duration_us(h.offset_us),
            format!("#{}", h.number),
            h.user.clone(),
            target,
        ];
        if kinds {
            row.push(h.kind.to_string());
        }
        row.push(h.command.replace('\n', " ⏎ "));
        rows.push(row);
    }
    for line in format::table(&rows) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `90m`/`7d` (that long ago) or an RFC 3339-like UTC time.
fn parse_when(text: &str, now_us: u64) -> anyhow::Result<u64> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(now_us.saturating_sub(ago.as_micros() as u64));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(storage_schema::time::unix_micros(t));
    }
    bail!("{text:?} is neither a duration (`90m`, `7d`) nor a UTC time (`2026-11-23T18:00:00Z`)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when() {
        let now = 1_000_000_000_000_000;
        assert_eq!(parse_when("90m", now).unwrap(), now - 5_400_000_000);
        assert_eq!(
            parse_when("2026-11-23T18:00:00Z", now).unwrap(),
            1_795_456_800_000_000
        );
        assert_eq!(
            parse_when("2026-11-23 18:00:00", now).unwrap(),
            1_795_456_800_000_000
        );
        assert!(parse_when("yesterday-ish", now).is_err());
    }
}
