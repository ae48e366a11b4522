//! `kubetape-gateway retention run [--dry-run]` and `kubetape-gateway retention ls`: a pass by
//! hand (under the same lease the gateways take), and the history of passes.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use storage_schema::Keyring;
use storage_schema::store::Store;
use storage_schema::time::{format_unix_micros, unix_micros_now};

use super::{lease, pass, rules::Rules};

const AFTER_HELP: &str = "\
A pass deletes whole the recordings (and audit streams) whose retention rule has run out —
never one under legal hold (`kubetape hold`), never a damaged, unreadable or unsealed one
(those are listed as kept, and written to the audit log). Before deleting, the pass writes its
plan to the store; each deletion is an audit record (`kubetape audit`); the result is written
after. Gateways with [retention] enabled = true run passes themselves; this command takes the
same lease, so it never runs beside one.

Examples:
  kubetape-gateway retention run --config gateway.toml --dry-run
  kubetape-gateway retention run --config gateway.toml
  kubetape-gateway retention ls --config gateway.toml";

/// Retention: run a pass now, or list past passes.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct RetentionArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Run a pass now (or only say what it would delete)
    Run {
        /// The gateway configuration ([retention] rules, [recording] store and keys)
        #[arg(long, short, env = "KUBETAPE_GATEWAY_CONFIG")]
        config: PathBuf,
        /// Only list what would be deleted and what is kept; write and delete nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// List past passes: when, by whom, how many deleted, kept, failed
    Ls {
        #[arg(long, short, env = "KUBETAPE_GATEWAY_CONFIG")]
        config: PathBuf,
    },
}

pub async fn run(args: RetentionArgs) -> anyhow::Result<()> {
    match args.action {
        Action::Run { config, dry_run } => run_once(&config, dry_run).await,
        Action::Ls { config } => list(&config).await,
    }
}

fn open(config: &crate::config::GatewayConfig) -> anyhow::Result<(Store, PathBuf)> {
    let store = Store::open(&config.recording.store_url()).context("store")?;
    let keys = config
        .recording
        .keys
        .clone()
        .unwrap_or_else(storage_schema::defaults::keys_dir);
    Ok((store, keys))
}

async fn run_once(path: &std::path::Path, dry_run: bool) -> anyhow::Result<()> {
    let config = crate::config::GatewayConfig::load(path)?;
    let rules = Rules::new(&config.retention).context("[retention]")?;
    if config.retention.rules.is_empty() {
        bail!("[retention] has no rules: nothing is ever deleted");
    }
    let (store, keys) = open(&config)?;
    let keyring = Keyring::open(&keys).context("recording keys")?;
    let login = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let runner = format!("cli:{login}");
    let now = unix_micros_now();
    if dry_run {
        let plan = pass::plan(&store, &keyring, &rules, &runner, now).await?;
        for d in &plan.delete {
            println!(
                "would delete {}/{}  rule {}  ended {}  expired {}",
                d.root,
                d.session,
                d.rule,
                format_unix_micros(d.ended_at_us),
                format_unix_micros(d.expired_at_us)
            );
        }
        print_kept(&plan.kept);
        eprintln!(
            "kubetape-gateway: dry run: {} would be deleted, {} kept; nothing was written",
            plan.delete.len(),
            plan.kept.len()
        );
        return Ok(());
    }
    let ttl_us = config.retention.lease_ttl_secs.max(60) * 1_000_000;
    let lease = match lease::try_acquire(&store, &runner, now, ttl_us).await? {
        Ok(lease) => lease,
        Err(busy) => bail!("{busy}; try again after it"),
    };
    let mut audit_config = config.audit.clone();
    audit_config.stdout = false;
    audit_config.instance = Some(format!("retention-{runner}"));
    let audit = crate::audit::AuditLog::start(
        &audit_config,
        store.clone(),
        Keyring::open(&keys).context("recording keys (audit)")?,
        config.recording.flush_policy(),
        config.cluster_name.clone(),
        // No spool: a pass runs apart from the gateways (a CronJob), and its records go to the
        // store directly or the pass reports that they could not.
        config.recording.durability(None),
    );
    let outcome = super::run_pass(&store, &keyring, &rules, &runner, &lease, audit.as_ref()).await;
    audit.shutdown(std::time::Duration::from_secs(30)).await;
    if let Err(e) = lease.release().await {
        eprintln!("kubetape-gateway: the lease could not be released (it expires): {e}");
    }
    let done = outcome?;
    for d in &done.result.deleted {
        println!(
            "deleted {}/{}  rule {}  ended {}  expired {}",
            d.root,
            d.session,
            d.rule,
            format_unix_micros(d.ended_at_us),
            format_unix_micros(d.expired_at_us)
        );
    }
    for f in &done.result.failed {
        println!("failed  {}  {}", f.session, f.why);
    }
    let (passes, _) = storage_schema::store::retention::passes(&store).await?;
    if let Some((Some(plan), _)) = passes.get(&done.result.pass) {
        print_kept(&plan.kept);
    }
    eprintln!(
        "kubetape-gateway: pass {}: {} deleted, {} failed or postponed",
        done.result.pass,
        done.result.deleted.len(),
        done.result.failed.len()
    );
    if !done.result.failed.is_empty() {
        bail!("some deletions failed");
    }
    Ok(())
}

fn print_kept(kept: &[storage_schema::store::retention::Kept]) {
    for k in kept {
        println!("kept    {}  {}", k.session, k.why);
    }
}

async fn list(path: &std::path::Path) -> anyhow::Result<()> {
    let config = crate::config::GatewayConfig::load(path)?;
    let (store, _) = open(&config)?;
    let (passes, bad) = storage_schema::store::retention::passes(&store).await?;
    for b in bad {
        eprintln!("kubetape-gateway: an unreadable retention record: {b}");
    }
    if passes.is_empty() {
        eprintln!(
            "kubetape-gateway: no retention pass has run on {}",
            store.url()
        );
    }
    for (id, (plan, result)) in passes {
        let (when, runner, kept) = plan.as_ref().map_or(("?".into(), "?".into(), 0), |p| {
            (
                format_unix_micros(p.planned_at_us),
                p.runner.clone(),
                p.kept.len(),
            )
        });
        let (deleted, failed) = result.as_ref().map_or(("unfinished".to_string(), 0), |r| {
            (r.deleted.len().to_string(), r.failed.len())
        });
        println!("{id}  {when}  {runner}  deleted {deleted}  kept {kept}  failed {failed}");
    }
    Ok(())
}
