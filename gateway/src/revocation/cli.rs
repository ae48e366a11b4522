//! `kubetape-gateway revoke`: write or list revocations in the store the gateways share.

use std::path::PathBuf;

use anyhow::Context as _;
use storage_schema::store::Store;
use storage_schema::time::format_unix_micros;

use super::{Action, Entry, current, read_all, write};

const AFTER_HELP: &str = "\
Every gateway sharing the store polls it (every ~250 ms): from then on the user's requests get 403
even with a valid token, and their live exec/attach sessions end with
\"kubetape: session ended: access revoked\". Entries are never modified or deleted; lifting writes a
new entry, so the store keeps the history.

Examples:
  kubetape-gateway revoke --config gateway.toml --user oidc:mallory@example.com --reason offboarded
  kubetape-gateway revoke --config gateway.toml --list
  kubetape-gateway revoke --config gateway.toml --lift --user oidc:mallory@example.com --reason 'back from leave'

The same through the admin API (members of [revocation] admin_groups):
  POST /kubetape/v1/revocations {\"user\": \"…\", \"reason\": \"…\"}   (\"lift\": true to lift)";

/// Revoke a user's access on every gateway sharing the store (or lift it, or list revocations).
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct RevokeArgs {
    /// The gateway configuration (its [recording] store is where revocations live).
    #[arg(long, short, env = "KUBETAPE_GATEWAY_CONFIG")]
    pub config: PathBuf,
    /// The username as the gateway maps it (including the issuer's username_prefix).
    #[arg(long, required_unless_present = "list", conflicts_with = "list")]
    pub user: Option<String>,
    /// Why (kept in the store, shown in the 403 and in the recording's marker).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Lift the user's revocation instead.
    #[arg(long)]
    pub lift: bool,
    /// List the users currently revoked.
    #[arg(long)]
    pub list: bool,
}

/// Runs the command; prints what it did.
pub async fn run(args: RevokeArgs) -> anyhow::Result<()> {
    let config = crate::config::GatewayConfig::load(&args.config)?;
    let store = Store::open(&config.recording.store_url()).context("store")?;
    if args.list {
        let (entries, bad) = read_all(&store).await?;
        for why in bad {
            eprintln!("kubetape-gateway: ignoring an unreadable entry: {why}");
        }
        let revoked = current(&entries);
        if revoked.is_empty() {
            eprintln!("kubetape-gateway: nobody is revoked in {}", store.url());
        }
        for e in revoked.values() {
            println!(
                "{}\trevoked {}\tby {}\t{}",
                e.user,
                format_unix_micros(e.at_us),
                e.by,
                e.reason
            );
        }
        return Ok(());
    }
    let user = args.user.expect("clap requires --user without --list");
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let action = if args.lift {
        Action::Lift
    } else {
        Action::Revoke
    };
    let entry = Entry::new(action, &user, &args.reason, &format!("cli:{operator}"));
    let key = write(&store, &entry).await?;
    match action {
        Action::Revoke => eprintln!(
            "kubetape-gateway: revoked {user:?} ({key}); gateways sharing {} refuse their requests and end their sessions within a second",
            store.url()
        ),
        Action::Lift => {
            eprintln!("kubetape-gateway: lifted the revocation of {user:?} ({key})")
        }
    }
    Ok(())
}
