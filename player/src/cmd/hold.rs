//! `kubetape hold add|remove|ls`: legal holds. A held recording is never deleted by retention
//! and never shredded until the hold is lifted (`storage_schema::store::holds`).

use std::process::ExitCode;

use anyhow::bail;
use storage_schema::store::holds::{self, Selector};
use storage_schema::time::unix_micros_now;

use crate::config::Global;
use crate::stdio::outln;
use crate::{custody, format, resolve};

const ABOUT: &str = "Place, lift and list legal holds (held recordings are never deleted)";

const LONG_ABOUT: &str = "\
Place, lift and list legal holds.

A hold names what it keeps — sessions by id, users, namespaces (`*` wildcards), a time range of
session starts; every criterion given must match — with a case id and a reason. While it is in
force, retention does not delete what it covers (nor the gateways' audit streams that overlap a
held session) and `kubetape shred` refuses it.

Holds are create-only entries in the store (`holds/`): lifting one writes a new entry, so the
store keeps who placed and lifted what, when and why.";

const AFTER_HELP: &str = "\
Examples:
  kubetape hold add --case CASE-123 --reason 'litigation hold' --user alice@example.com
  kubetape hold add --case CASE-123 --reason 'incident' -n 'prod*' --since 2026-11-01T00:00:00Z --until 2026-11-08T00:00:00Z
  kubetape hold add --case CASE-9 --reason 'evidence' --session 4f1c2a9b
  kubetape hold ls
  kubetape hold remove 7d3e0a11 --reason 'case closed'";

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Place a hold
    Add(AddArgs),
    /// Lift a hold in force (by its id or the id's last characters)
    Remove {
        hold: String,
        /// Why it is lifted
        #[arg(long)]
        reason: String,
        /// Who lifts it, when not the login
        #[arg(long = "as", value_name = "NAME", env = "KUBETAPE_READER")]
        by: Option<String>,
    },
    /// List the holds in force
    Ls {
        /// One JSON object per hold
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    /// The legal case, e.g. CASE-123
    #[arg(long)]
    case: String,
    /// Why
    #[arg(long)]
    reason: String,
    /// A session (short id, full id or unique prefix); repeatable
    #[arg(long = "session", value_name = "SESSION")]
    sessions: Vec<String>,
    /// A user (exact, as recorded); repeatable
    #[arg(long = "user", value_name = "USER")]
    users: Vec<String>,
    /// A namespace (`*` wildcards); repeatable
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    namespaces: Vec<String>,
    /// Sessions that started at or after: a duration ago (30d) or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Sessions that started at or before: a duration ago or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// Who places it, when not the login
    #[arg(long = "as", value_name = "NAME", env = "KUBETAPE_READER")]
    by: Option<String>,
}

/// A duration ago or an RFC 3339 time, as µs since the Unix epoch.
fn when(text: &str) -> anyhow::Result<u64> {
    super::keys_rewrap::parse_older_than(text, unix_micros_now())
}

fn by(name: Option<&str>) -> String {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => format!("{n} (login {})", custody::login()),
        None => format!("cli:{}", custody::login()),
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    match args.action {
        Action::Add(a) => {
            let mut sessions = Vec::new();
            for text in &a.sessions {
                sessions.push(resolve::session(&store, text).await?);
            }
            let select = Selector {
                sessions,
                users: a.users,
                namespaces: a.namespaces,
                since_us: a.since.as_deref().map(when).transpose()?,
                until_us: a.until.as_deref().map(when).transpose()?,
            };
            if let (Some(s), Some(u)) = (select.since_us, select.until_us)
                && s > u
            {
                bail!("--since is after --until");
            }
            let hold =
                holds::place(&store, &a.case, &a.reason, &by(a.by.as_deref()), select).await?;
            outln!("{}", hold.id)?;
            eprintln!(
                "kubetape: placed hold {} (case {}): {}",
                hold.id,
                hold.case,
                hold.select.describe()
            );
        }
        Action::Remove {
            hold,
            reason,
            by: who,
        } => {
            let lifted = holds::lift(&store, &hold, &reason, &by(who.as_deref())).await?;
            eprintln!(
                "kubetape: lifted hold {} (case {}); retention and shredding apply again to what it held",
                lifted.id, lifted.case
            );
        }
        Action::Ls { json } => {
            let held = holds::Holds::load(&store).await?;
            if json {
                for h in &held.active {
                    outln!("{}", serde_json::to_string(h)?)?;
                }
            } else if held.active.is_empty() {
                eprintln!("kubetape: no hold in force in {}", store.url());
            } else {
                let mut rows =
                    vec![["HOLD", "CASE", "PLACED", "BY", "HOLDS", "REASON"].map(String::from)];
                for h in &held.active {
                    rows.push([
                        h.id.clone(),
                        h.case.clone(),
                        format::timestamp_us(h.placed_at_us),
                        h.by.clone(),
                        h.select.describe(),
                        h.reason.clone(),
                    ]);
                }
                for line in format::table(&rows) {
                    outln!("{line}")?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
