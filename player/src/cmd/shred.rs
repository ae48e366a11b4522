//! `kubetape shred`: crypto-shred a recording (`storage_schema::store::shred`).

use std::process::ExitCode;

use storage_schema::store::shred::{self, Shredded};

use crate::config::Global;
use crate::{custody, resolve};

const ABOUT: &str = "Destroy a recording's data key so its content can never be read again";

const LONG_ABOUT: &str = "\
Crypto-shred a recording: destroy its data key so its content can never be read again, by
anyone, while keeping the proof that it existed. What remains (metadata, the encrypted and
signed chunks, the seal) still verifies with the signing public key alone, and `verify`, `cat`,
`play` and `export` say when it was shredded, by whom and why. A search index forgets its
commands on its next sync.

Refused for a session under legal hold (`kubetape hold ls`) and for one not sealed yet. The
record (`shredded/<id>.json`) is written before the key is deleted; running the command again
finishes an interrupted shred.

On an S3 bucket with versioning, a deleted object's older versions remain until the bucket's
lifecycle rule expires them: the shred is as final as that rule.";

const AFTER_HELP: &str = "\
Examples:
  kubetape shred 4f1c2a9b --reason 'GDPR erasure request #4411'";

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// The session: its short id (as `ls` shows it), full id, or a unique prefix
    session: String,
    /// Why (kept in the shred record; shown by every reader)
    #[arg(long)]
    reason: String,
    /// Who shreds it, when not the login
    #[arg(long = "as", value_name = "NAME", env = "KUBETAPE_READER")]
    by: Option<String>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    let id = resolve::session(&store, &args.session).await?;
    let by = match args.by.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => format!("{n} (login {})", custody::login()),
        None => format!("cli:{}", custody::login()),
    };
    match shred::shred(&store, id, &by, &args.reason).await? {
        Shredded::Now(r) => eprintln!("kubetape: session {id} {}", r.describe()),
        Shredded::Already(r) => {
            eprintln!("kubetape: session {id} was already {}", r.describe())
        }
    }
    Ok(ExitCode::SUCCESS)
}
