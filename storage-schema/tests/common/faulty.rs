//! An object store that fails on command, the way a real one does in an outage: refusing every
//! request (an error at once), or hanging (a request that never answers). Wraps an in-memory
//! store; tests switch its mode while a recorder writes to it.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// How the store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Healthy,
    /// Every request fails at once (connection refused, disk full).
    Refuse,
    /// Every request waits forever (a frozen server).
    Hang,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    /// Only puts to keys containing this fail (None: every request).
    only: Option<String>,
    puts: u64,
}

/// Cheap to clone; every clone controls the same store.
#[derive(Debug, Clone)]
pub struct Faulty {
    inner: Arc<dyn ObjectStore>,
    state: Arc<Mutex<State>>,
}

impl Faulty {
    pub fn new() -> Self {
        Self::over(Arc::new(object_store::memory::InMemory::new()))
    }

    /// Misbehaves in front of `inner` (a directory store, for fixtures).
    pub fn over(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            state: Arc::new(Mutex::new(State {
                mode: Mode::Healthy,
                only: None,
                puts: 0,
            })),
        }
    }

    pub fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// From now on only puts whose key contains `part` misbehave (per the mode).
    pub fn only_puts_to(&self, part: &str) {
        self.state.lock().unwrap().only = Some(part.into());
    }

    /// Puts that succeeded.
    pub fn puts(&self) -> u64 {
        self.state.lock().unwrap().puts
    }

    /// The store behind the faults: another writer that can reach it (a replica elsewhere).
    pub fn backdoor(&self) -> storage_schema::store::Store {
        storage_schema::store::Store::from_object_store(self.inner.clone(), "", "backdoor://")
    }

    pub fn store(&self) -> storage_schema::store::Store {
        storage_schema::store::Store::from_object_store(Arc::new(self.clone()), "", "faulty://")
    }

    async fn gate(&self, put_key: Option<&Path>) -> object_store::Result<()> {
        let mode = {
            let s = self.state.lock().unwrap();
            match (&s.only, put_key) {
                (Some(part), Some(key)) if !key.as_ref().contains(part.as_str()) => Mode::Healthy,
                (Some(_), None) => Mode::Healthy,
                _ => s.mode,
            }
        };
        match mode {
            Mode::Healthy => Ok(()),
            Mode::Refuse => Err(object_store::Error::Generic {
                store: "faulty",
                source: "connection refused".into(),
            }),
            Mode::Hang => std::future::pending().await,
        }
    }
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({:?})", self.state.lock().unwrap().mode)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.gate(Some(location)).await?;
        let r = self.inner.put_opts(location, payload, opts).await?;
        self.state.lock().unwrap().puts += 1;
        Ok(r)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.gate(Some(location)).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.gate(None).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> object_store::Result<Bytes> {
        self.gate(None).await?;
        self.inner.get_range(location, range).await
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.gate(None).await?;
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.gate(None).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.gate(None).await?;
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.gate(None).await?;
        self.inner.copy_if_not_exists(from, to).await
    }
}
