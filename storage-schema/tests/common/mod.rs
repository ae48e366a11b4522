//! Shared set-up for the storage-schema integration tests: stores of every kind, keyrings, and
//! sessions written through the real recorder.
#![allow(dead_code)]

pub mod faulty;

use std::path::PathBuf;
use std::sync::Arc;

use storage_schema::store::{Recorder, Store};
use storage_schema::{
    Event, EventKind, ExitInfo, FlushPolicy, Identity, Keyring, SessionId, SessionKind,
    SessionMeta, Stream, Target,
};

/// A store plus whatever keeps it alive.
pub struct TestStore {
    pub store: Store,
    pub name: &'static str,
    /// Root directory, for file stores (the tamper tests edit objects in place).
    pub root: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

pub fn memory() -> TestStore {
    TestStore {
        store: Store::open("memory://").unwrap(),
        name: "memory",
        root: None,
        _dir: None,
    }
}

pub fn file() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = Store::open(&format!("file://{}", root.display())).unwrap();
    TestStore {
        store,
        name: "file",
        root: Some(root),
        _dir: Some(dir),
    }
}

/// An S3 store on the moto server `scripts/test` starts, under a fresh prefix. `None` (with a
/// note) when no server is configured, unless `KUBETAPE_REQUIRE_S3` says one must be.
pub fn s3() -> Option<TestStore> {
    let Ok(endpoint) = std::env::var("KUBETAPE_TEST_S3_ENDPOINT") else {
        assert!(
            std::env::var_os("KUBETAPE_REQUIRE_S3").is_none(),
            "KUBETAPE_REQUIRE_S3 is set but KUBETAPE_TEST_S3_ENDPOINT is not"
        );
        eprintln!("note: S3 tests skipped (run scripts/test, which starts a moto server)");
        return None;
    };
    let bucket =
        std::env::var("KUBETAPE_TEST_S3_BUCKET").unwrap_or_else(|_| "kubetape-test".into());
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(&bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let prefix = format!("t-{}", SessionId::new());
    let store = Store::from_object_store(Arc::new(s3), &prefix, &format!("s3://{bucket}/{prefix}"));
    Some(TestStore {
        store,
        name: "s3",
        root: None,
        _dir: None,
    })
}

/// Every store kind available in this run.
pub fn all_stores() -> Vec<TestStore> {
    let mut v = vec![memory(), file()];
    v.extend(s3());
    v
}

pub fn keyring() -> (Keyring, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (ring, created) = Keyring::open_or_init(&dir.path().join("keys")).unwrap();
    assert!(created);
    (ring, dir)
}

pub fn meta() -> SessionMeta {
    let mut m = SessionMeta::new(
        SessionKind::Exec,
        Identity {
            user: "alice@example.com".into(),
            groups: vec!["dev".into()],
            ..Default::default()
        },
        Target {
            cluster: Some("test".into()),
            namespace: Some("staging".into()),
            pod: Some("web-0".into()),
            container: Some("app".into()),
            host: None,
        },
        vec!["sh".into()],
        true,
    );
    m.size = Some(storage_schema::TermSize { cols: 80, rows: 24 });
    m
}

/// Terminal-ish output events at 10 ms intervals, `n` of them, ~`size` bytes each.
pub fn output_events(n: usize, size: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let line = format!(
                "{i:08} \x1b[32mok\x1b[0m some terminal output {}\r\n",
                "x".repeat(i % 17)
            );
            let bytes = line.as_bytes().iter().cycle().take(size).copied().collect();
            Event {
                at_us: i as u64 * 10_000,
                kind: EventKind::Data {
                    stream: Stream::Stdout,
                    bytes,
                },
            }
        })
        .collect()
}

/// Writes `events` as a session through the recorder, sealed with exit `code` unless `seal` is
/// false (then the recorder is dropped without finishing, leaving the session open).
pub async fn record(
    store: &Store,
    ring: &Keyring,
    events: &[Event],
    policy: FlushPolicy,
    seal: bool,
) -> SessionId {
    let rec = Recorder::start(store.clone(), ring, meta(), policy)
        .await
        .unwrap();
    let id = rec.session();
    for e in events {
        rec.record_at(e.clone()).await.unwrap();
    }
    if seal {
        rec.finish(Some(ExitInfo {
            code: 0,
            message: String::new(),
        }))
        .await
        .unwrap();
    } else {
        // Let the writer flush and upload before it notices the drop: finishing without a seal
        // is what a crash after the last upload looks like.
        let err = rec.finish_unsealed().await;
        assert!(err.is_ok(), "{err:?}");
    }
    id
}

/// A policy that closes a chunk every few KiB, so small tests produce many chunks.
pub fn small_chunks() -> FlushPolicy {
    FlushPolicy {
        max_bytes: 4 << 10,
        ..FlushPolicy::default()
    }
}
