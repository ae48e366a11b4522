//! The retention lease: one enforcement pass at a time among every gateway (and
//! `kubetape-gateway retention run`) sharing a store, with nothing but create-only puts.
//!
//! ```text
//! leases/retention/<seq:020>            {"holder","acquired_at_us","expires_at_us"}
//! leases/retention/<seq:020>.released   empty: the holder finished before expiry
//! ```
//! **Acquire**: list the prefix, take the highest sequence number `n`; if lease `n` is neither
//! released nor expired (its holder's `expires_at_us` plus [`SKEW_MARGIN_US`], on the reader's
//! clock), someone is running a pass: give up. Otherwise create lease `n + 1`; of two
//! contenders exactly one put succeeds, the other learns `AlreadyExists` and gives up.
//!
//! **Hold**: the holder stops deleting [`SKEW_MARGIN_US`] before its own `expires_at_us`
//! ([`Lease::valid_at`]), and the next lease can only be taken after `expires_at_us` plus the
//! margin: with clocks within the margin of each other, two passes never overlap.
//!
//! **Release**: `<n>.released`, so the next pass need not wait for the expiry. The holder also
//! deletes leases older than the last [`KEEP_LEASES`] (the lease area is where gateways may
//! delete; these objects carry no evidence: the pass records in `retention/` do).

use serde::{Deserialize, Serialize};
use storage_schema::layout;
use storage_schema::store::{Store, StoreError};

/// Allowance for clock skew between gateways.
pub const SKEW_MARGIN_US: u64 = 30 * 1_000_000;

/// Leases kept in the store (older ones are deleted by a new holder).
pub const KEEP_LEASES: u64 = 16;

/// One lease, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseBody {
    pub holder: String,
    pub acquired_at_us: u64,
    pub expires_at_us: u64,
}

/// A lease this process holds.
#[derive(Debug, Clone)]
pub struct Lease {
    pub seq: u64,
    pub body: LeaseBody,
    store: Store,
}

/// Why the lease was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Busy {
    /// Lease `seq` is held by `holder` until `expires_at_us`.
    Held {
        seq: u64,
        holder: String,
        expires_at_us: u64,
    },
    /// Another contender created lease `seq` first.
    Lost { seq: u64 },
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Busy::Held {
                seq,
                holder,
                expires_at_us,
            } => write!(
                f,
                "retention lease {seq} is held by {holder} until {}",
                storage_schema::time::format_unix_micros(*expires_at_us)
            ),
            Busy::Lost { seq } => write!(f, "another runner took retention lease {seq} first"),
        }
    }
}

fn key(seq: u64) -> String {
    format!(
        "{}/{}",
        layout::RETENTION_LEASES,
        layout::retention_lease(seq)
    )
}

fn released_key(seq: u64) -> String {
    format!("{}.released", key(seq))
}

/// Tries to take the next retention lease at time `now_us`, for `ttl_us`.
pub async fn try_acquire(
    store: &Store,
    holder: &str,
    now_us: u64,
    ttl_us: u64,
) -> Result<Result<Lease, Busy>, StoreError> {
    let listing = store.list(layout::RETENTION_LEASES).await?;
    let latest = listing
        .iter()
        .filter_map(|(name, _)| layout::parse_chunk_name(name))
        .max();
    if let Some(seq) = latest {
        let released = listing
            .iter()
            .any(|(name, _)| *name == format!("{}.released", layout::retention_lease(seq)));
        if !released && let Some(bytes) = store.get_opt(&key(seq)).await? {
            // An unreadable lease stops every pass until an operator removes it: never run
            // beside a pass we cannot see.
            let body: Option<LeaseBody> = serde_json::from_slice(&bytes).ok();
            let expires_at_us = body
                .as_ref()
                .map_or(now_us.saturating_add(ttl_us), |b| b.expires_at_us);
            if now_us < expires_at_us.saturating_add(SKEW_MARGIN_US) {
                return Ok(Err(Busy::Held {
                    seq,
                    holder: body.map_or_else(|| "(unreadable lease)".into(), |b| b.holder),
                    expires_at_us,
                }));
            }
        }
    }
    let seq = latest.map_or(1, |s| s + 1);
    let body = LeaseBody {
        holder: holder.to_string(),
        acquired_at_us: now_us,
        expires_at_us: now_us.saturating_add(ttl_us),
    };
    let bytes = serde_json::to_vec_pretty(&body).expect("a lease serializes");
    match store.put_create(&key(seq), bytes).await {
        Ok(()) => {}
        Err(StoreError::AlreadyExists { .. }) => return Ok(Err(Busy::Lost { seq })),
        Err(e) => return Err(e),
    }
    // Old leases go; failures only leave litter.
    for (name, _) in &listing {
        let stem = name.trim_end_matches(".released");
        if let Some(old) = layout::parse_chunk_name(stem)
            && old + KEEP_LEASES < seq
        {
            let _ = store
                .delete(&format!("{}/{name}", layout::RETENTION_LEASES))
                .await;
        }
    }
    Ok(Ok(Lease {
        seq,
        body,
        store: store.clone(),
    }))
}

impl Lease {
    /// Whether the holder may still act at `now_us`: until the margin before its expiry.
    pub fn valid_at(&self, now_us: u64) -> bool {
        now_us.saturating_add(SKEW_MARGIN_US) < self.body.expires_at_us
    }

    /// Says the pass is over, so the next one need not wait for the expiry.
    pub async fn release(self) -> Result<(), StoreError> {
        match self
            .store
            .put_create(&released_key(self.seq), Vec::new())
            .await
        {
            Ok(()) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const TTL: u64 = 600 * 1_000_000;

    fn stores() -> (tempfile::TempDir, Store, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        (dir, Store::open(&url).unwrap(), Store::open(&url).unwrap())
    }

    #[tokio::test]
    async fn racing_contenders_one_wins_and_the_other_waits_for_release_or_expiry() {
        let (_dir, a, b) = stores();
        let now = 1_800_000_000_000_000;
        for round in 0..10u64 {
            let (x, y) = tokio::join!(
                try_acquire(&a, "gw-a", now, TTL),
                try_acquire(&b, "gw-b", now, TTL)
            );
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(x.is_ok() != y.is_ok(), "round {round}: {x:?} {y:?}");
            let lease = x.or(y).unwrap();
            assert_eq!(lease.seq, round + 1);
            // While held: nobody else, not even a moment before expiry plus the margin.
            let busy = try_acquire(&a, "gw-a", now + TTL + SKEW_MARGIN_US - 1, TTL)
                .await
                .unwrap();
            assert!(matches!(busy, Err(Busy::Held { seq, .. }) if seq == round + 1));
            assert!(lease.valid_at(now) && !lease.valid_at(now + TTL - SKEW_MARGIN_US));
            lease.release().await.unwrap();
        }
        // A holder that never releases: its lease is taken after expiry plus the margin.
        let stale = try_acquire(&a, "gw-a", now, TTL).await.unwrap().unwrap();
        let later = try_acquire(&b, "gw-b", now + TTL + SKEW_MARGIN_US, TTL)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(later.seq, stale.seq + 1);
        // Old leases were cleaned up as new ones were taken.
        let left = a.list(layout::RETENTION_LEASES).await.unwrap();
        assert!(
            left.len() <= 2 * (KEEP_LEASES as usize + 1),
            "{}",
            left.len()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_gateways_never_run_a_pass_at_once() {
        let (_dir, a, b) = stores();
        let running = Arc::new(AtomicBool::new(false));
        let passes = Arc::new(AtomicUsize::new(0));
        let gateway = |store: Store, name: &'static str| {
            let (running, passes) = (running.clone(), passes.clone());
            async move {
                for _ in 0..40 {
                    let now = storage_schema::time::unix_micros_now();
                    let Ok(lease) = try_acquire(&store, name, now, TTL).await.unwrap() else {
                        tokio::task::yield_now().await;
                        continue;
                    };
                    assert!(
                        !running.swap(true, Ordering::SeqCst),
                        "{name}: a pass was already running"
                    );
                    passes.fetch_add(1, Ordering::SeqCst);
                    // The "pass": real store work, so the other gateway gets to try meanwhile.
                    for _ in 0..3 {
                        store.list(layout::RETENTION_LEASES).await.unwrap();
                        tokio::task::yield_now().await;
                    }
                    running.store(false, Ordering::SeqCst);
                    lease.release().await.unwrap();
                }
            }
        };
        let (x, y) = tokio::join!(
            tokio::spawn(gateway(a, "gw-a")),
            tokio::spawn(gateway(b, "gw-b"))
        );
        x.unwrap();
        y.unwrap();
        assert!(passes.load(Ordering::SeqCst) > 2);
    }

    #[tokio::test]
    async fn an_unreadable_lease_counts_as_held() {
        let (_dir, a, _) = stores();
        a.put_create(&key(5), "garbage").await.unwrap();
        let now = 1_800_000_000_000_000;
        assert!(matches!(
            try_acquire(&a, "gw", now, TTL).await.unwrap(),
            Err(Busy::Held { seq: 5, .. })
        ));
    }
}
