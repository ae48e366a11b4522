//! `kubetape keys`: the keyring recordings are encrypted and signed with.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use storage_schema::Keyring;

use crate::config::Global;
use crate::stdio::outln;

const ABOUT: &str = "Create, rotate, list and export the keys recordings use";

const LONG_ABOUT: &str = "\
Create, rotate, list and export the keys recordings use.

A keyring holds key-encryption keys (which wrap each session's own data key) and Ed25519 signing
keys (which sign chunks and seals). New sessions use the newest of each; older sessions name
their keys, so they stay readable after a rotation as long as the old keys are kept — or until
`keys rewrap` has moved their data keys to the current key-encryption key, after which `keys
retire` destroys the old one. Losing the
keyring makes its recordings unreadable: back it up. The public half of a signing key lets anyone
verify recordings without being able to read them.";

const AFTER_HELP: &str = "\
Examples:
  kubetape keys init
  kubetape keys list
  kubetape keys rotate
  kubetape keys rewrap --older-than 0s        move every session to the current KEK
  kubetape keys retire 20261204T180421.123456Z-1a2b3c4d
  kubetape keys export-pub --out signing.pub
  kubetape --keys /secure/kubetape-keys keys list";

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create the keyring (with a first key-encryption key and signing key) if it does not exist
    Init,
    /// Add a new key-encryption key and signing key, used by new sessions from now on
    Rotate,
    /// List the keys, marking the current ones
    List,
    /// Re-wrap the data keys of sessions wrapped by old key-encryption keys with the current
    /// one, so the old ones can be destroyed (`keys retire`)
    Rewrap {
        /// Re-wrap what KEKs created before this wrap: a duration ago (90d; 0s for every KEK
        /// but the current one) or an RFC 3339 time
        #[arg(long, value_name = "WHEN")]
        older_than: String,
        /// Only list the sessions that would be re-wrapped
        #[arg(long)]
        dry_run: bool,
    },
    /// Destroy a key-encryption key, refused while any session still needs it
    Retire {
        /// The key-encryption key's id (`keys list`)
        kek: String,
    },
    /// Print the current signing public key, for auditors' `kubetape verify --pubkey FILE`
    ExportPub {
        /// Write it to FILE instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Init => {
            let (ring, created) = global.open_or_init_keyring()?;
            if !created {
                outln!(
                    "keyring {} already exists (key-encryption key {}, signing key {})",
                    ring.dir().display(),
                    ring.current_kek()?.id(),
                    ring.current_signing_key()?.id()
                )?;
            }
        }
        Action::Rotate => {
            let mut ring = global.open_keyring()?;
            let (kek, public) = ring.rotate().context("cannot rotate the keys")?;
            let (kek, public) = (kek.id().to_string(), public.id().to_string());
            outln!(
                "new key-encryption key {kek}, new signing key {public}; new sessions use them"
            )?;
            outln!(
                "keep the old keys until `kubetape keys rewrap` has moved the sessions recorded with them"
            )?;
        }
        Action::List => list(&global.open_keyring()?)?,
        Action::Rewrap {
            older_than,
            dry_run,
        } => return super::keys_rewrap::rewrap(global, &older_than, dry_run).await,
        Action::Retire { kek } => return super::keys_rewrap::retire(global, &kek).await,
        Action::ExportPub { out } => {
            let ring = global.open_keyring()?;
            let line = ring.current_signing_key()?.public().to_line();
            match out {
                Some(path) => {
                    std::fs::write(&path, &line)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!(
                        "kubetape: wrote the signing public key to {}",
                        path.display()
                    );
                }
                None => {
                    use std::io::Write as _;
                    write!(std::io::stdout(), "{line}")?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(ring: &Keyring) -> anyhow::Result<()> {
    let current_kek = ring.current_kek().ok().map(|k| k.id().to_string());
    let current_signing = ring.current_signing_key().ok().map(|k| k.id().to_string());
    outln!("keyring {}", ring.dir().display())?;
    outln!("key-encryption keys:")?;
    for id in ring.kek_ids() {
        let mark = if Some(id) == current_kek.as_deref() {
            "  (current)"
        } else {
            ""
        };
        outln!("  {id}{mark}")?;
    }
    outln!("signing keys:")?;
    for public in ring.public_keys() {
        let id = public.id();
        let mark = if Some(id) == current_signing.as_deref() {
            "  (current)"
        } else if ring.signing_key(id).is_none() {
            "  (public key only: verifies, cannot sign)"
        } else {
            ""
        };
        outln!("  {id}{mark}")?;
    }
    Ok(())
}
