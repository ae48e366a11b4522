//! The spool: a bounded local directory where store writes wait, fsynced, while the store
//! cannot take them, and from which they are replayed in order when it can.
//!
//! # Why
//! A review drove a gateway with its S3 store refused, frozen, and its disk full. Output was
//! forwarded to kubectl before it was recorded, the recorder gave up when a put finally failed,
//! and what it held was dropped: 3.5 s of output lost with the store refused for 10 s, 8.3 s for
//! 60 s, 16 s with it hung for 60 s, 2.44 MB of 10.5 MB with the disk full — and the recordings
//! verified as ordinary open sessions. The recorder ([`super::Recorder`]) now writes a chunk here
//! when the store has not taken it within `spool_after` (200 ms by default; a put that fails
//! sends it, and every chunk after it, here at once), and replays the spooled chunks to the store
//! in order. Objects here are exactly the bytes the store would hold (encrypted, signed chunks;
//! seals; wrapped keys), so the spool adds no new secret at rest.
//!
//! The spool is only used on failure: on the normal path a chunk's put completes well within
//! `spool_after` and nothing is written here (measured: no spool file on a healthy store, see
//! the recorder's tests).
//!
//! # Layout
//! ```text
//! <spool_dir>/slot-<n>/LOCK                 held (flock) by the gateway process using the slot
//! <spool_dir>/slot-<n>/reserve              1 MiB kept free for a session's last words
//! <spool_dir>/slot-<n>/objects/<store key>  e.g. objects/sessions/<id>/chunks/<seq>
//! <spool_dir>/slot-<n>/journal/…            the audit log's write-ahead journal (gateway)
//! <spool_dir>/slot-<n>/stranded/<store key> objects that can no longer be replayed (below)
//! ```
//! Several gateways may share one spool directory (replicas on one host, tests): each locks a
//! slot of its own. On open, a gateway also takes over every slot nobody holds (a gateway that
//! died, or was restarted): their objects move into its own slot and are replayed by
//! [`Spool::replay_leftovers`]. A lock held by a live process is never broken, so a session's
//! spooled chunks are only ever written and replayed by one process at a time.
//!
//! # Durability
//! A write is `write(tmp) → fsync(tmp) → rename → fsync(dir)` (and every directory it created is
//! fsynced into its parent), so a spooled object survives a crash of the process or of the
//! machine, and a torn write leaves only a `*.tmp` file, removed on the next open.
//!
//! # Bounds
//! `max_bytes` (`[recording] spool_max_mib`) bounds what the spool holds; a write beyond it is
//! refused ([`SpoolError::Full`]) and the recorder pauses its session instead (see the
//! recorder's docs). A session's *last words* (its final chunk with the gap it declares, and
//! its seal: a few KiB) may exceed the bound, and if the disk itself is full, the `reserve`
//! file is deleted to make room for them: a recording that had to give up on part of its output
//! can still say so.
//!
//! # Replay after a restart
//! Leftovers (sessions found spooled when the spool is opened) belong to recorders that are
//! gone. They are uploaded in order — wrapped key, metadata, chunks, commands, seal — and a
//! session whose seal was not spooled is then sealed `interrupted` by the replayer itself (after
//! its whole chain verified with the data key, as `kubetape seal` does). That is safe because the
//! slot's lock proves its writer is dead and a session is recorded by exactly one gateway; a
//! seal written meanwhile by someone else (`kubetape seal`, a lease completer) wins the
//! create-only race, and spooled chunks that would then land after it are moved to `stranded/`
//! and reported instead of being appended to a sealed session.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Store, StoreError};
use crate::keys::Keyring;
use crate::layout::{self, StreamDir, StreamRoot};
use crate::session::{SessionId, StreamClass};

/// Room kept for last words when the disk is full.
const RESERVE_BYTES: usize = 1 << 20;
/// Slots tried before giving up: more gateways than this on one spool directory is a mistake.
const MAX_SLOTS: usize = 64;

/// Why the spool could not take or give an object.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full ({used} of {max} bytes used)")]
    Full { used: u64, max: u64 },
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("every slot of the spool {0} is held by another gateway ({MAX_SLOTS} slots)")]
    Busy(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the spool holds and has done, for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Bytes held now.
    pub bytes: u64,
    /// Objects held now (the audit journal's files are not objects, but count in `bytes`).
    pub objects: u64,
    /// Objects written since the spool was opened.
    pub written_total: u64,
    /// Writes refused (full, or the disk failed) since the spool was opened.
    pub refused_total: u64,
}

/// A handle on this process's spool slot. Cheap to clone.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

struct Inner {
    slot: PathBuf,
    max_bytes: u64,
    /// Bytes and objects held; the lock also orders the accounting with the files.
    held: Mutex<(u64, u64)>,
    written: AtomicU64,
    refused: AtomicU64,
    /// Sessions found spooled at open: their recorders are gone.
    leftovers: Vec<StreamDir>,
    /// Held for the process's lifetime: the slot is ours.
    _lock: File,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("slot", &self.inner.slot)
            .field("max_bytes", &self.inner.max_bytes)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Spool {
    /// Opens the spool under `dir` (created 0700), claims a free slot, and takes over the
    /// objects of every slot no live process holds. Blocking (file system work).
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        mkdir_all(dir)?;
        let (slot, lock) = claim_slot(dir)?;
        let objects = slot.join("objects");
        mkdir_all(&objects)?;
        mkdir_all(&slot.join("journal"))?;
        // Orphaned slots: their holder is gone (or they would be locked). Their content moves
        // here, where it is replayed; a slot held by a live gateway is left alone.
        for n in 0..MAX_SLOTS {
            let other = dir.join(format!("slot-{n}"));
            if other == slot || !other.exists() {
                continue;
            }
            let Ok(other_lock) = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(other.join("LOCK"))
            else {
                continue;
            };
            if other_lock.try_lock().is_err() {
                continue;
            }
            for sub in ["objects", "journal", "stranded"] {
                merge_tree(&other.join(sub), &slot.join(sub))?;
            }
        }
        remove_tmp_files(&slot)?;
        let (bytes, objects_held) = usage(&slot.join("objects"))?;
        let (jbytes, _) = usage(&slot.join("journal"))?;
        // Every class of stream: sessions, and the gateway's audit streams.
        let leftovers = StreamRoot::ALL
            .into_iter()
            .flat_map(|root| {
                streams_under(&objects.join(root.prefix()))
                    .into_iter()
                    .map(move |id| StreamDir::new(root, id))
            })
            .collect();
        let spool = Self {
            inner: Arc::new(Inner {
                slot,
                max_bytes,
                held: Mutex::new((bytes + jbytes, objects_held)),
                written: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                leftovers,
                _lock: lock,
            }),
        };
        spool.ensure_reserve();
        Ok(spool)
    }

    /// This process's slot directory.
    pub fn slot(&self) -> &Path {
        &self.inner.slot
    }

    /// Where the gateway's audit journal lives (inside the slot, counted in the bound).
    pub fn journal_dir(&self) -> PathBuf {
        self.inner.slot.join("journal")
    }

    pub fn stats(&self) -> SpoolStats {
        let (bytes, objects) = *self.inner.held.lock().expect("spool accounting");
        SpoolStats {
            bytes,
            objects,
            written_total: self.inner.written.load(Ordering::Relaxed),
            refused_total: self.inner.refused.load(Ordering::Relaxed),
        }
    }

    /// Sessions that were spooled when the spool was opened (their recorders are gone).
    pub fn leftovers(&self) -> &[StreamDir] {
        &self.inner.leftovers
    }

    fn path(&self, key: &str) -> PathBuf {
        self.inner.slot.join("objects").join(key)
    }

    /// Accounts `len` more bytes, or refuses (unless `last_words`: see the module docs). For
    /// what is kept beside the objects (the audit journal), which shares the bound.
    pub fn reserve_bytes(&self, len: u64, last_words: bool) -> Result<(), SpoolError> {
        let mut held = self.inner.held.lock().expect("spool accounting");
        if !last_words && held.0 + len > self.inner.max_bytes {
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            return Err(SpoolError::Full {
                used: held.0,
                max: self.inner.max_bytes,
            });
        }
        held.0 += len;
        Ok(())
    }

    /// Gives back bytes accounted with [`Self::reserve_bytes`].
    pub fn release_bytes(&self, len: u64) {
        let mut held = self.inner.held.lock().expect("spool accounting");
        held.0 = held.0.saturating_sub(len);
    }

    fn count_object(&self, added: bool) {
        let mut held = self.inner.held.lock().expect("spool accounting");
        held.1 = if added {
            held.1 + 1
        } else {
            held.1.saturating_sub(1)
        };
    }

    /// Writes the object `key` durably (see the module docs). `last_words` may exceed the
    /// bound and use the reserve. Blocking.
    pub fn write(&self, key: &str, bytes: &[u8], last_words: bool) -> Result<(), SpoolError> {
        let path = self.path(key);
        let len = bytes.len() as u64;
        if let Ok(old) = fs::metadata(&path) {
            // Written before (an earlier attempt): the same bytes, accounted already.
            if old.len() == len {
                return Ok(());
            }
            self.release_bytes(old.len());
            self.count_object(false);
        }
        self.reserve_bytes(len, last_words)?;
        let mut result = write_durably(&path, bytes);
        if last_words
            && let Err(SpoolError::Io { source, .. }) = &result
            && source.kind() == io::ErrorKind::StorageFull
            && self.drop_reserve()
        {
            result = write_durably(&path, bytes);
        }
        match result {
            Ok(()) => {
                self.inner.written.fetch_add(1, Ordering::Relaxed);
                self.count_object(true);
                Ok(())
            }
            Err(e) => {
                self.release_bytes(len);
                self.inner.refused.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Reads a spooled object back. Blocking.
    pub fn read(&self, key: &str) -> Result<Vec<u8>, SpoolError> {
        let path = self.path(key);
        fs::read(&path).map_err(io_err(&path))
    }

    /// Whether `key` is spooled.
    pub fn contains(&self, key: &str) -> bool {
        self.path(key).is_file()
    }

    /// Forgets a spooled object (it is in the store now). Empty directories go with it, and
    /// the reserve is restored if it was used. Blocking.
    pub fn remove(&self, key: &str) {
        let path = self.path(key);
        let Ok(meta) = fs::metadata(&path) else {
            return;
        };
        if fs::remove_file(&path).is_ok() {
            self.release_bytes(meta.len());
            self.count_object(false);
        }
        let root = self.inner.slot.join("objects");
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == root || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        self.ensure_reserve();
    }

    /// Where objects that can no longer be replayed are kept.
    pub fn stranded_dir(&self) -> PathBuf {
        self.inner.slot.join("stranded")
    }

    /// Keeps `bytes` under `stranded/` (an object that never reached the spool). Blocking.
    pub fn strand_bytes(&self, key: &str, bytes: &[u8]) {
        let _ = write_durably(&self.stranded_dir().join(key), bytes);
    }

    /// Moves a spooled object aside to `stranded/`: it can no longer be replayed (its session
    /// was sealed without it, or the store holds other bytes under its name). Kept for a
    /// person to look at, out of the bound's accounting. Blocking.
    pub fn strand(&self, key: &str) {
        let from = self.path(key);
        let to = self.inner.slot.join("stranded").join(key);
        if let Some(parent) = to.parent()
            && mkdir_all(parent).is_ok()
            && let Ok(meta) = fs::metadata(&from)
            && fs::rename(&from, &to).is_ok()
        {
            self.release_bytes(meta.len());
            self.count_object(false);
        }
    }

    /// The spooled objects of session `id`, in the order they must reach the store: wrapped
    /// key, metadata, chunks by sequence number, commands, seal.
    pub fn session_keys(&self, dir: StreamDir) -> Vec<String> {
        let mut keys = Vec::new();
        for key in [dir.dek(), dir.meta()] {
            if self.contains(&key) {
                keys.push(key);
            }
        }
        let chunks = self.path(&dir.chunks_dir());
        let mut seqs: Vec<u64> = fs::read_dir(&chunks)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| layout::parse_chunk_name(&e.file_name().to_string_lossy()))
            .collect();
        seqs.sort_unstable();
        keys.extend(seqs.into_iter().map(|seq| dir.chunk(seq)));
        for key in [dir.commands(), dir.seal()] {
            if self.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// Uploads the sessions left here by recorders that are gone (see the module docs), until
    /// every one is in the store: retried with back-off while the store is down, each put
    /// bounded by `put_timeout`. Returns what happened to each session.
    pub async fn replay_leftovers(
        &self,
        store: &Store,
        keyring: &Keyring,
        put_timeout: Duration,
    ) -> Vec<(SessionId, Replayed)> {
        let mut out = Vec::new();
        for &dir in self.inner.leftovers.iter() {
            let id = dir.id();
            let outcome = self.replay_session(store, keyring, dir, put_timeout).await;
            match &outcome {
                Replayed::Sealed | Replayed::SealedInterrupted => {
                    tracing::info!(session = %id, outcome = ?outcome, "spooled session replayed to the store");
                }
                other => {
                    tracing::error!(session = %id, outcome = ?other, "spooled session could not be replayed completely");
                }
            }
            out.push((id, outcome));
        }
        out
    }

    async fn replay_session(
        &self,
        store: &Store,
        keyring: &Keyring,
        dir: StreamDir,
        put_timeout: Duration,
    ) -> Replayed {
        let id = dir.id();
        let keys = self.session_keys(dir);
        let seal_key = dir.seal();
        let spooled_seal = keys.contains(&seal_key);
        for (i, key) in keys.iter().enumerate() {
            // Sealed by someone else meanwhile (a lease completer): what remains stays here,
            // rather than being appended after the seal.
            if !spooled_seal
                && retry(put_timeout, || async {
                    store.get_opt(&seal_key).await.map(|s| s.is_some())
                })
                .await
            {
                for key in &keys[i..] {
                    self.strand(key);
                }
                return Replayed::Stranded(format!(
                    "the session was sealed by someone else after {i} of {} spooled objects were replayed; the rest are in {}",
                    keys.len(),
                    self.stranded_dir().display()
                ));
            }
            let bytes = match self.read(key) {
                Ok(b) => bytes::Bytes::from(b),
                Err(e) => {
                    // An unreadable spooled chunk is a loss: the session stays open, and
                    // `kubetape verify` names the missing chunk.
                    return Replayed::Incomplete(format!("{key}: {e}"));
                }
            };
            let put = retry(put_timeout, || put_same(store, key, bytes.clone())).await;
            match put {
                PutOutcome::Written => self.remove(key),
                PutOutcome::Conflict | PutOutcome::SealedElsewhere => {
                    self.strand(key);
                    return Replayed::Stranded(format!(
                        "{key}: the store holds other bytes under this name"
                    ));
                }
            }
        }
        if spooled_seal {
            // `ended/` markers are the feed of sessions; audit streams are not marked.
            if dir.root() == StreamRoot::of(StreamClass::Session)
                && let Ok(Some(seal)) = store.get_opt(&seal_key).await
                && let Ok(sealed_at) = seal_time(&seal)
            {
                super::catalog::mark_ended(store, id, sealed_at).await;
            }
            return Replayed::Sealed;
        }
        match super::seal_interrupted(store, keyring, id).await {
            Ok(_) => Replayed::SealedInterrupted,
            Err(super::VerifyError::AlreadySealed(..)) => Replayed::Sealed,
            Err(e) => Replayed::Incomplete(format!("could not be sealed as interrupted: {e}")),
        }
    }

    /// Keeps the reserve file in place (recreated after it was used, when there is room).
    fn ensure_reserve(&self) {
        let path = self.inner.slot.join("reserve");
        if path.exists() {
            return;
        }
        let _ = write_durably(&path, &vec![0u8; RESERVE_BYTES]);
    }

    /// Deletes the reserve to free its space; true if there was one.
    fn drop_reserve(&self) -> bool {
        let path = self.inner.slot.join("reserve");
        let dropped = fs::remove_file(&path).is_ok();
        if dropped {
            tracing::warn!(spool = %self.inner.slot.display(), "the disk is full: the spool's reserve was used for a session's last words");
            let _ = sync_dir(&self.inner.slot);
        }
        dropped
    }
}

/// What became of a leftover session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// Everything reached the store, seal included.
    Sealed,
    /// Everything reached the store; the replayer sealed it as interrupted.
    SealedInterrupted,
    /// Objects that cannot be replayed were moved to `stranded/`.
    Stranded(String),
    /// Something could not be replayed; the session stays open.
    Incomplete(String),
}

pub(crate) enum PutOutcome {
    Written,
    Conflict,
    /// Not written: the session was sealed meanwhile by someone else (see the module docs).
    SealedElsewhere,
}

/// Writes `key` create-only; an existing object with the same bytes counts as written (a put
/// that timed out may have landed).
pub(crate) async fn put_same(
    store: &Store,
    key: &str,
    bytes: bytes::Bytes,
) -> Result<PutOutcome, StoreError> {
    match store.put_create(key, bytes.clone()).await {
        Ok(()) => Ok(PutOutcome::Written),
        Err(StoreError::AlreadyExists { .. }) => {
            let existing = store.get(key).await?;
            Ok(if existing == bytes {
                PutOutcome::Written
            } else {
                PutOutcome::Conflict
            })
        }
        Err(e) => Err(e),
    }
}

/// Retries `op` (each attempt bounded by `timeout`) with back-off until it succeeds.
async fn retry<T, F, Fut>(timeout: Duration, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Duration::from_millis(250);
    let mut logged = false;
    loop {
        match tokio::time::timeout(timeout, op()).await {
            Ok(Ok(v)) => return v,
            Ok(Err(e)) if !logged => {
                tracing::warn!(error = %e, "the store is unavailable; spooled sessions wait for it");
                logged = true;
            }
            Err(_) if !logged => {
                tracing::warn!(
                    ?timeout,
                    "the store does not answer; spooled sessions wait for it"
                );
                logged = true;
            }
            _ => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn seal_time(seal: &[u8]) -> Result<u64, ()> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        payload: String,
    }
    let env: Envelope = serde_json::from_slice(seal).map_err(drop)?;
    let payload: crate::seal::SealPayload = serde_json::from_str(&env.payload).map_err(drop)?;
    Ok(payload.sealed_at_us)
}

// === file system helpers ===

fn mkdir_all(dir: &Path) -> Result<(), SpoolError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        mkdir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    }
    // The new directory's entry is durable only once its parent is synced.
    if let Some(parent) = dir.parent() {
        sync_dir(parent).map_err(io_err(parent))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    let parent = path.parent().expect("spool paths have a parent");
    mkdir_all(parent)?;
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(parent)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

fn claim_slot(dir: &Path) -> Result<(PathBuf, File), SpoolError> {
    for n in 0..MAX_SLOTS {
        let slot = dir.join(format!("slot-{n}"));
        mkdir_all(&slot)?;
        let lock_path = slot.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        if lock.try_lock().is_ok() {
            return Ok((slot, lock));
        }
    }
    Err(SpoolError::Busy(dir.to_path_buf()))
}

/// Moves every file under `from` to the same place under `to` (renames: one file system).
fn merge_tree(from: &Path, to: &Path) -> Result<(), SpoolError> {
    let Ok(entries) = fs::read_dir(from) else {
        return Ok(());
    };
    mkdir_all(to)?;
    for entry in entries.flatten() {
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            merge_tree(&src, &dst)?;
            let _ = fs::remove_dir(&src);
        } else if !dst.exists() {
            fs::rename(&src, &dst).map_err(io_err(&src))?;
        }
    }
    sync_dir(to).map_err(io_err(to))
}

fn remove_tmp_files(dir: &Path) -> Result<(), SpoolError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tmp_files(&path)?;
        } else if path.extension().is_some_and(|e| e == "tmp") {
            let _ = fs::remove_file(&path);
        }
    }
    Ok(())
}

/// Bytes and files under `dir`.
fn usage(dir: &Path) -> Result<(u64, u64), SpoolError> {
    let mut total = (0, 0);
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(total);
    };
    for entry in entries.flatten() {
        let meta = entry.metadata().map_err(io_err(&entry.path()))?;
        if meta.is_dir() {
            let (b, n) = usage(&entry.path())?;
            total.0 += b;
            total.1 += n;
        } else {
            total.0 += meta.len();
            total.1 += 1;
        }
    }
    Ok(total)
}

fn streams_under(dir: &Path) -> Vec<SessionId> {
    let mut ids: Vec<SessionId> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_bounded_and_last_words_may_exceed_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1000).unwrap();
        spool
            .write("sessions/x/chunks/1", &[1; 600], false)
            .unwrap();
        let full = spool.write("sessions/x/chunks/2", &[2; 600], false);
        assert!(
            matches!(
                full,
                Err(SpoolError::Full {
                    used: 600,
                    max: 1000
                })
            ),
            "{full:?}"
        );
        assert!(!spool.contains("sessions/x/chunks/2"));
        spool
            .write("sessions/x/seal.json", &[3; 600], true)
            .unwrap();
        assert_eq!(spool.stats().bytes, 1200);
        assert_eq!(spool.read("sessions/x/chunks/1").unwrap(), vec![1; 600]);
        spool.remove("sessions/x/chunks/1");
        spool.remove("sessions/x/seal.json");
        assert_eq!(spool.stats().bytes, 0);
        // Emptied directories go too.
        assert!(!spool.slot().join("objects/sessions/x").exists());
        assert_eq!(spool.stats().refused_total, 1);
    }

    #[test]
    fn slots_are_exclusive_and_a_dead_slot_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let id = SessionId::new();
        let first = Spool::open(dir.path(), 1 << 20).unwrap();
        first.write(&layout::chunk(id, 3), b"c3", false).unwrap();
        first.write(&layout::chunk(id, 2), b"c2", false).unwrap();
        first.write(&layout::dek(id), b"k", false).unwrap();
        first.write(&layout::seal(id), b"s", false).unwrap();
        let second = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_ne!(first.slot(), second.slot(), "a held slot is not shared");
        assert!(
            second.leftovers().is_empty(),
            "a live slot is not taken over"
        );
        drop(second);
        drop(first);
        let third = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(third.leftovers(), &[StreamDir::session(id)]);
        assert_eq!(
            third.session_keys(StreamDir::session(id)),
            vec![
                layout::dek(id),
                layout::chunk(id, 2),
                layout::chunk(id, 3),
                layout::seal(id)
            ]
        );
        assert_eq!(third.stats().bytes, 6);
    }

    #[test]
    fn torn_writes_are_swept_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let torn = spool
            .slot()
            .join("objects/sessions/y/chunks/00000000000000000001.tmp");
        fs::create_dir_all(torn.parent().unwrap()).unwrap();
        fs::write(&torn, b"half").unwrap();
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(!torn.exists());
        assert_eq!(spool.stats().bytes, 0);
    }
}
