//! The seam for S3 Object Lock: the store itself refusing to delete what kubetape must keep.
//!
//! What kubetape would ask of a locked bucket, per object key:
//! - **legal hold** on every object of a held stream (`kubetape hold add`), off again when the
//!   last hold covering it is lifted — S3 `PutObjectLegalHold` (`PUT /<key>?legal-hold`);
//! - **retain-until** the date the retention rule gives a stream, set when it is sealed — S3
//!   `PutObjectRetention` (`PUT /<key>?retention`), or the `x-amz-object-lock-mode` and
//!   `x-amz-object-lock-retain-until-date` headers on the PutObject itself.
//!
//! `object_store` 0.12 (what every store here goes through) cannot send either: its puts carry
//! content attributes (type, encoding, cache control, user metadata) and tags, and it has no
//! call for the `?legal-hold` or `?retention` sub-resources. Its client does sign the
//! `x-amz-checksum-sha256` header S3 requires on PUTs to locked buckets, when
//! `AWS_CHECKSUM_ALGORITHM=sha256` is set — which is what a bucket whose *default retention* locks
//! every object needs, with no per-object call at all (see FORMAT.md, *Object Lock*).
//!
//! So this module names the operations ([`ObjectLock`]) and gives the one implementation that
//! exists today, [`Unsupported`], which says so instead of pretending. An S3 implementation
//! needs a SigV4-signing HTTP client for the two sub-resources (or a newer `object_store`);
//! its callers are `holds::place`/`lift` and the recorder's seal.

use std::future::Future;
use std::pin::Pin;

/// How strict a retain-until date is (S3's two modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Users with a special permission may still shorten or remove it.
    Governance,
    /// Nobody can, not even the account's root, until the date passes.
    Compliance,
}

/// Why a lock operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "this store cannot set Object Lock on objects ({0}); holds and retention are enforced by kubetape only"
    )]
    Unsupported(&'static str),
    #[error("{key}: {reason}")]
    Refused { key: String, reason: String },
}

/// A boxed future (the trait is used as `dyn`).
pub type LockFuture<'a> = Pin<Box<dyn Future<Output = Result<(), LockError>> + Send + 'a>>;

/// Per-object locks a store may support.
pub trait ObjectLock: Send + Sync + std::fmt::Debug {
    /// Places (`on`) or removes a legal hold on the object at `key`.
    fn legal_hold<'a>(&'a self, key: &'a str, on: bool) -> LockFuture<'a>;

    /// Keeps the object at `key` from deletion until `until_us` (µs since the Unix epoch).
    fn retain_until<'a>(&'a self, key: &'a str, until_us: u64, mode: LockMode) -> LockFuture<'a>;
}

/// What every store has today: no per-object locks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unsupported;

const WHY: &str = "object_store 0.12 cannot send PutObjectLegalHold or PutObjectRetention";

impl ObjectLock for Unsupported {
    fn legal_hold<'a>(&'a self, _key: &'a str, _on: bool) -> LockFuture<'a> {
        Box::pin(async { Err(LockError::Unsupported(WHY)) })
    }

    fn retain_until<'a>(
        &'a self,
        _key: &'a str,
        _until_us: u64,
        _mode: LockMode,
    ) -> LockFuture<'a> {
        Box::pin(async { Err(LockError::Unsupported(WHY)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_unsupported_lock_says_so() {
        let lock: &dyn ObjectLock = &Unsupported;
        let err = lock
            .legal_hold("sessions/x/meta.json", true)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("enforced by kubetape only"),
            "{err}"
        );
        assert!(matches!(
            lock.retain_until("k", 1, LockMode::Compliance).await,
            Err(LockError::Unsupported(_))
        ));
    }
}
