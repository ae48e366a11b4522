//! Object-store I/O: where sessions are written and read. Local directory (`file://`, the
//! default), S3-compatible (`s3://bucket/prefix`), and in memory (`memory://`, for tests).
//!
//! Every write is a create-only put (`PutMode::Create`): an object, once written, is never
//! replaced, and when two writers race for one name exactly one wins; the loser learns it as
//! [`StoreError::AlreadyExists`].

mod catalog;
pub mod holds;
pub mod jit;
pub mod ledger;
pub mod lock;
pub mod read_policy;
mod reader;
pub mod reads;
mod recorder;
pub mod retention;
pub mod shred;
mod spool;
mod verify;

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

pub use self::catalog::{
    AuditStreams, SessionSummary, class_at, ended_marker, ended_since, list_audit_streams,
    list_sessions, list_streams, locate, summarize, summarize_all, summarize_at,
};
pub use self::reader::{ReadError, SessionReader};
pub use self::recorder::{
    Durability, Lag, LagProbe, MAX_UNDURABLE, OnStoreFailure, RecordError, Recorder,
    RecorderOptions,
};
pub use self::spool::{Replayed, Spool, SpoolError, SpoolStats};
pub use self::verify::{KeySource, VerifyError, seal_interrupted, verify_session, verify_stream};

/// Why the store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{path}: already exists (objects are never overwritten)")]
    AlreadyExists { path: String },
    #[error("{path}: not found")]
    NotFound { path: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: object_store::Error,
    },
}

/// Told of every request a [`Store`] makes: its operation (`put`, `get`, `head`, `delete`,
/// `list`), how long it took, and whether the store answered (a missing object or a lost
/// create-only race is an answer; a timeout or a refusal is not). The gateway counts these for
/// its metrics and its readiness; the format knows nothing of Prometheus.
pub trait StoreObserver: Send + Sync + std::fmt::Debug {
    fn observe(&self, op: &'static str, elapsed: std::time::Duration, ok: bool);
}

/// A store rooted at a prefix.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    observer: Option<Arc<dyn StoreObserver>>,
    /// The directory of a `file://` store: deleting its objects leaves their directories,
    /// which listings would report as streams ([`Self::prune_dir`]).
    local_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens a store from a URL: `file:///abs/dir` (or a plain path), `s3://bucket[/prefix]`
    /// (endpoint, region and credentials from the usual `AWS_*` environment variables;
    /// `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP=true` for a local S3 server), or `memory://`.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::BadUrl {
            url: url.to_string(),
            reason,
        };
        if url == "memory://" {
            return Ok(Self::from_object_store(
                Arc::new(object_store::memory::InMemory::new()),
                "",
                url,
            ));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("missing bucket name".into()));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            return Ok(Self::from_object_store(Arc::new(s3), prefix, url));
        }
        let dir = match url.strip_prefix("file://") {
            Some(path) => std::path::PathBuf::from(path),
            None if url.contains("://") => {
                return Err(bad(
                    "unsupported scheme (use file://, s3:// or memory://)".into()
                ));
            }
            None => std::path::PathBuf::from(url),
        };
        if !dir.is_absolute() && url.starts_with("file://") {
            return Err(bad("file:// URLs need an absolute path".into()));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
        let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| bad(e.to_string()))?;
        let mut store = Self::from_object_store(Arc::new(local), "", url);
        store.local_dir = Some(dir);
        Ok(store)
    }

    /// Wraps an already-built object store (tests, embedding).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Self {
        Self {
            inner,
            prefix: Path::from(prefix),
            url: url.to_string(),
            observer: None,
            local_dir: None,
        }
    }

    /// Removes the directories left under `dir` once all its objects are deleted, in a
    /// `file://` store (object stores have no directories; there it does nothing). Only empty
    /// directories are removed: an object written meanwhile keeps its own.
    pub fn prune_dir(&self, dir: &str) -> Result<(), StoreError> {
        let Some(root) = &self.local_dir else {
            return Ok(());
        };
        fn prune(path: &std::path::Path) -> std::io::Result<()> {
            if let Ok(entries) = std::fs::read_dir(path) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        prune(&entry.path())?;
                    }
                }
            }
            match std::fs::remove_dir(path) {
                Ok(()) => Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
                    ) =>
                {
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        let path = Path::from(dir)
            .parts()
            .fold(root.clone(), |p, part| p.join(part.as_ref()));
        prune(&path).map_err(|e| StoreError::Io {
            op: "delete",
            path: dir.to_string(),
            source: object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            },
        })
    }

    /// This store, telling `observer` of every request it makes.
    pub fn with_observer(mut self, observer: Arc<dyn StoreObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Runs `request`, telling the observer how it went (`answered` says whether a result
    /// counts as the store having answered).
    async fn observed<T>(
        &self,
        op: &'static str,
        request: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let Some(observer) = &self.observer else {
            return request.await;
        };
        let started = std::time::Instant::now();
        let result = request.await;
        let answered = !matches!(
            result,
            Err(StoreError::Io { .. } | StoreError::BadUrl { .. })
        );
        observer.observe(op, started.elapsed(), answered);
        result
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, key: &str) -> Path {
        let key = Path::from(key);
        self.prefix.parts().chain(key.parts()).collect()
    }

    /// Writes `key` only if nothing is there yet.
    pub async fn put_create(&self, key: &str, bytes: impl Into<Bytes>) -> Result<(), StoreError> {
        let bytes = bytes.into();
        self.observed("put", self.put_create_inner(key, bytes))
            .await
    }

    async fn put_create_inner(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&self.path(key), PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(StoreError::AlreadyExists {
                path: key.to_string(),
            }),
            Err(source) => Err(StoreError::Io {
                op: "put",
                path: key.to_string(),
                source,
            }),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.get_opt(key)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                path: key.to_string(),
            })
    }

    /// Reads `key`, or `None` if it does not exist.
    pub async fn get_opt(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.observed("get", self.get_opt_inner(key)).await
    }

    async fn get_opt_inner(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let io = |source| StoreError::Io {
            op: "get",
            path: key.to_string(),
            source,
        };
        match self.inner.get(&self.path(key)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(io)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(io(source)),
        }
    }

    /// Whether `key` exists (a metadata request; nothing is read).
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match self.inner.head(&self.path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(StoreError::Io {
                op: "head",
                path: key.to_string(),
                source,
            }),
        }
    }

    /// Reads a byte range of `key`.
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, StoreError> {
        self.observed("get", self.get_range_inner(key, range)).await
    }

    async fn get_range_inner(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, StoreError> {
        self.inner
            .get_range(&self.path(key), range)
            .await
            .map_err(|source| match source {
                object_store::Error::NotFound { .. } => StoreError::NotFound {
                    path: key.to_string(),
                },
                source => StoreError::Io {
                    op: "get",
                    path: key.to_string(),
                    source,
                },
            })
    }

    /// Deletes `key` (crypto-shredding a session deletes its `dek.json`).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.observed("delete", self.delete_inner(key)).await
    }

    async fn delete_inner(&self, key: &str) -> Result<(), StoreError> {
        self.inner
            .delete(&self.path(key))
            .await
            .map_err(|source| StoreError::Io {
                op: "delete",
                path: key.to_string(),
                source,
            })
    }

    /// All objects under `dir`, as (name relative to `dir`, size), sorted by name.
    pub async fn list(&self, dir: &str) -> Result<Vec<(String, u64)>, StoreError> {
        self.list_after(dir, None).await
    }

    /// As [`Self::list`], but only names (relative to `dir`) that sort after `after`. On S3
    /// the store itself skips the rest (`start-after`), so the cost of listing follows what is
    /// asked for, not everything ever written under `dir`: the listing to use under prefixes
    /// named by time-ordered ids.
    pub async fn list_after(
        &self,
        dir: &str,
        after: Option<&str>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.observed("list", self.list_after_inner(dir, after))
            .await
    }

    async fn list_after_inner(
        &self,
        dir: &str,
        after: Option<&str>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let base = self.path(dir);
        let skip = base.parts().count();
        let listing = match after {
            None => self.inner.list(Some(&base)),
            Some(after) => {
                let offset = self.path(&format!("{dir}/{after}"));
                self.inner.list_with_offset(Some(&base), &offset)
            }
        };
        let mut out: Vec<(String, u64)> = listing
            .map_ok(|meta| {
                let rel: Vec<String> = meta
                    .location
                    .parts()
                    .skip(skip)
                    .map(|p| p.as_ref().to_string())
                    .collect();
                (rel.join("/"), meta.size)
            })
            .try_collect()
            .await
            .map_err(|source| StoreError::Io {
                op: "list",
                path: dir.to_string(),
                source,
            })?;
        out.sort();
        Ok(out)
    }

    /// The immediate sub-"directories" of `dir`.
    pub async fn list_dirs(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        self.observed("list", self.list_dirs_inner(dir)).await
    }

    async fn list_dirs_inner(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let base = self.path(dir);
        let listing = self
            .inner
            .list_with_delimiter(Some(&base))
            .await
            .map_err(|source| StoreError::Io {
                op: "list",
                path: dir.to_string(),
                source,
            })?;
        let mut out: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }
}
