//! `kubetape keys rewrap` and `kubetape keys retire`: moving sessions off an old key-encryption
//! key, then destroying it.
//!
//! Rotation alone leaves old sessions wrapped by old KEKs, so the keyring can never shrink. A
//! re-wrap moves each session's data key (not its content: chunks are never rewritten) to the
//! current KEK — the new wrapping is written and checked before the old one is deleted
//! (`storage_schema::store::shred::rewrap`) — after which `retire` can destroy the old KEK,
//! refusing while any stream still needs it.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use storage_schema::keys::key_created_us;
use storage_schema::store::list_streams;
use storage_schema::store::shred::{self, Rewrapped};

use crate::config::Global;
use crate::stdio::outln;

/// Streams re-wrapped at once (S3 latency hides behind concurrency).
const CONCURRENCY: usize = 8;

/// KEKs created before this are retired: a duration ago (`90d`, `0s` for every KEK but the
/// current one) or an RFC 3339 time.
pub fn parse_older_than(text: &str, now_us: u64) -> anyhow::Result<u64> {
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(now_us.saturating_sub(d.as_micros() as u64));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(storage_schema::time::unix_micros(t));
    }
    bail!("{text:?} is neither a duration (90d, 0s) nor an RFC 3339 time")
}

pub async fn rewrap(global: &Global, older_than: &str, dry_run: bool) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    let ring = global.open_keyring()?;
    let current = ring.current_kek()?.id().to_string();
    let cutoff = parse_older_than(older_than, storage_schema::time::unix_micros_now())?;
    let retiring: Vec<String> = ring
        .kek_ids()
        .filter(|id| *id != current && key_created_us(id).is_some_and(|t| t < cutoff))
        .map(str::to_string)
        .collect();
    if retiring.is_empty() {
        eprintln!(
            "kubetape: no key-encryption key but the current one is older than {older_than}; nothing to re-wrap"
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "kubetape: re-wrapping data keys wrapped by {} onto {current}{}",
        retiring.join(", "),
        if dry_run { " (dry run)" } else { "" }
    );
    let dirs = list_streams(&store).await?;
    let is_retiring = |k: &str| retiring.iter().any(|r| r == k);
    let (mut moved, mut unchanged, mut shredded, mut failed) = (0usize, 0usize, 0usize, 0usize);
    if dry_run {
        for dir in dirs {
            let keys = shred::data_keys(&store, dir).await?;
            if keys.iter().any(|(_, w)| is_retiring(&w.kek)) {
                outln!("would re-wrap {}", dir.id())?;
                moved += 1;
            }
        }
        eprintln!("kubetape: {moved} stream(s) would be re-wrapped");
        return Ok(ExitCode::SUCCESS);
    }
    let mut results = futures::stream::iter(dirs.into_iter().map(|dir| {
        let (store, ring) = (&store, &ring);
        async move { (dir, shred::rewrap(store, ring, dir, is_retiring).await) }
    }))
    .buffer_unordered(CONCURRENCY);
    while let Some((dir, result)) = results.next().await {
        match result {
            Ok(Rewrapped::Moved { from, to }) => {
                outln!("re-wrapped {} ({} -> {to})", dir.id(), from.join(", "))?;
                moved += 1;
            }
            Ok(Rewrapped::Unchanged) => unchanged += 1,
            Ok(Rewrapped::Shredded) => shredded += 1,
            Err(e) => {
                eprintln!("kubetape: {}: {e}", dir.id());
                failed += 1;
            }
        }
    }
    eprintln!(
        "kubetape: {moved} re-wrapped, {unchanged} unchanged, {shredded} shredded (no key), {failed} failed"
    );
    if failed == 0 {
        eprintln!(
            "kubetape: `kubetape keys retire KEK` now destroys a retired key-encryption key ({})",
            retiring.join(", ")
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

pub async fn retire(global: &Global, kek: &str) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    let mut ring = global.open_keyring()?;
    ring.kek(kek)?;
    let needing = shred::streams_needing_kek(&store, kek).await?;
    if let Some(first) = needing.first() {
        bail!(
            "{} stream(s) can only be read with {kek} (e.g. {first}); run `kubetape keys rewrap --older-than …` first",
            needing.len()
        );
    }
    ring.destroy_kek(kek)
        .with_context(|| format!("cannot destroy {kek}"))?;
    outln!(
        "destroyed key-encryption key {kek}; no stream in {} needed it",
        store.url()
    )?;
    Ok(ExitCode::SUCCESS)
}
