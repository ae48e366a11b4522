//! Retention: deleting recordings whose time is up, by the rules in `[retention]`
//! ([`rules`]), one pass at a time across every gateway sharing the store ([`lease`]), each
//! deletion planned, recorded and audited ([`pass`]); never a held stream
//! (`storage_schema::store::holds`), never a damaged or unreadable one without saying so.
//!
//! Where it runs: in every gateway with `[retention] enabled = true` (each tries every
//! `interval_secs`; the lease lets one through), or by hand with `kubetape-gateway retention
//! run [--dry-run]` ([`cli`]), which takes the same lease.
//!
//! What it leaves in the store (`storage_schema::store::retention`): `retention/<pass>/plan.json`
//! before deleting, `retention/<pass>/result.json` after, and one audit record per deletion in
//! the runner's audit stream — so `kubetape audit` shows that deletions happened by policy.
//!
//! Object Lock: where the bucket has it, retain-until dates and legal holds on the objects
//! would make the store itself refuse early deletion. `object_store` 0.12 cannot set those
//! headers (see `storage_schema::store::lock`); until it can, the store enforces nothing and
//! these rules are kubetape's own.

pub mod cli;
pub mod lease;
pub mod pass;
pub mod rules;

use std::time::Duration;

use storage_schema::Keyring;
use storage_schema::store::Store;

pub use self::rules::{RetentionConfig, Rules, RulesError};

/// Runs a pass every `config.interval_secs` when this gateway gets the lease. The first
/// attempt comes one interval after start, so a fleet restarting together does not all list
/// the store at once (the lease would let only one through anyway).
pub async fn run_forever(
    store: Store,
    keyring: std::sync::Arc<Keyring>,
    rules: Rules,
    config: RetentionConfig,
    gateway: String,
    audit: std::sync::Arc<crate::audit::AuditLog>,
) {
    let interval = Duration::from_secs(config.interval_secs.max(1));
    let ttl_us = config.lease_ttl_secs.max(60) * 1_000_000;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = storage_schema::time::unix_micros_now();
        let lease = match lease::try_acquire(&store, &gateway, now, ttl_us).await {
            Ok(Ok(lease)) => lease,
            Ok(Err(busy)) => {
                tracing::debug!(%busy, "retention: another runner has the lease");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot take the lease");
                continue;
            }
        };
        match run_pass(&store, &keyring, &rules, &gateway, &lease, audit.as_ref()).await {
            Ok(done) => tracing::info!(
                pass = %done.result.pass,
                deleted = done.result.deleted.len(),
                failed = done.result.failed.len(),
                "retention pass finished"
            ),
            Err(e) => tracing::error!(error = %e, "retention pass failed"),
        }
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "retention: cannot release the lease (it expires)");
        }
    }
}

/// Plans and executes one pass under `lease`.
pub async fn run_pass(
    store: &Store,
    keyring: &Keyring,
    rules: &Rules,
    runner: &str,
    lease: &lease::Lease,
    audit: &impl pass::AuditSink,
) -> Result<pass::Executed, pass::PassError> {
    let now = storage_schema::time::unix_micros_now();
    let plan = pass::plan(store, keyring, rules, runner, now).await?;
    pass::execute(
        store,
        &plan,
        lease,
        storage_schema::time::unix_micros_now,
        audit,
        runner,
    )
    .await
}
