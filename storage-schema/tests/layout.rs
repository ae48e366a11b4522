//! The bucket layout end to end: audit streams are written under `audit/`, streams written by
//! older gateways under `sessions/` are still found, read and verified, and the ledgers of an
//! existing store read back through `store::ledger`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use storage_schema::layout::{self, StreamDir, StreamRoot};
use storage_schema::store::ledger::{Entry, Ledger, decode_json};
use storage_schema::store::{
    KeySource, Recorder, SessionReader, Store, class_at, list_audit_streams, list_sessions,
    list_streams, locate, seal_interrupted, summarize, verify_session, verify_stream,
};
use storage_schema::{
    AuditRecord, EventKind, FlushPolicy, Identity, Keyring, SessionId, SessionKind, SessionMeta,
    SessionState, StreamClass, Target,
};

/// The fixture's streams (see `tests/fixtures/legacy-layout/README.md`).
const LEGACY_SESSION: &str = "01a24188-c09f-70c4-a3b1-1cc088b5870b";
const LEGACY_AUDIT: &str = "01a24188-c0a8-7343-97fb-44af079b3d28";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-layout")
}

/// The legacy store, copied somewhere writable (key modes restored: git does not keep them).
fn checkout() -> (tempfile::TempDir, Store, Keyring) {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture(), tmp.path());
    for entry in fs::read_dir(tmp.path().join("keys")).unwrap() {
        fs::set_permissions(entry.unwrap().path(), fs::Permissions::from_mode(0o600)).unwrap();
    }
    let store = Store::open(&format!("file://{}", tmp.path().join("store").display())).unwrap();
    let ring = Keyring::open(&tmp.path().join("keys")).unwrap();
    (tmp, store, ring)
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn audit_meta(instance: &str) -> SessionMeta {
    SessionMeta::new(
        SessionKind::Audit,
        Identity {
            user: "kubetape-gateway".into(),
            ..Identity::default()
        },
        Target {
            cluster: Some("test".into()),
            host: Some(instance.into()),
            ..Target::default()
        },
        Vec::new(),
        false,
    )
}

async fn audit_statuses(reader: &SessionReader) -> Vec<u16> {
    let mut statuses = Vec::new();
    reader
        .for_each_event(|e| {
            if let EventKind::Audit { json } = &e.kind {
                statuses.push(serde_json::from_str::<AuditRecord>(json).unwrap().status);
            }
        })
        .await
        .unwrap();
    statuses
}

#[test]
fn every_kind_has_one_class() {
    use SessionKind::*;
    for kind in [Exec, Attach, Debug, PortForward, Local] {
        let want = if kind == PortForward {
            StreamClass::PortForward
        } else {
            StreamClass::Session
        };
        assert_eq!(kind.class(), want, "{kind:?}");
        assert_eq!(
            StreamRoot::of(kind.class()).prefix(),
            layout::SESSIONS,
            "{kind:?}"
        );
    }
    assert_eq!(Audit.class(), StreamClass::AuditStream);
    assert_eq!(StreamRoot::of(Audit.class()).prefix(), layout::AUDIT);
}

#[tokio::test]
async fn audit_streams_in_the_old_place_are_found_read_and_verified() {
    let (_tmp, store, ring) = checkout();
    let (session, audit): (SessionId, SessionId) = (
        LEGACY_SESSION.parse().unwrap(),
        LEGACY_AUDIT.parse().unwrap(),
    );
    // Both live under sessions/; only their class tells them apart.
    assert_eq!(list_sessions(&store).await.unwrap(), vec![audit, session]);
    assert_eq!(
        class_at(&store, StreamDir::session(session)).await.unwrap(),
        Some(StreamClass::Session)
    );
    assert_eq!(
        class_at(&store, StreamDir::session(audit)).await.unwrap(),
        Some(StreamClass::AuditStream)
    );
    let found = list_audit_streams(&store).await.unwrap();
    assert_eq!(found.streams, vec![StreamDir::session(audit)]);
    assert!(found.unknown.is_empty(), "{:?}", found.unknown);
    // By id, wherever it is.
    assert_eq!(
        locate(&store, audit).await.unwrap(),
        Some(StreamDir::session(audit))
    );
    let report = verify_session(&store, audit, KeySource::Keyring(&ring))
        .await
        .unwrap();
    assert!(report.intact(), "{:?}", report.damage);
    assert!(matches!(report.state, SessionState::Sealed(_)));
    let reader = SessionReader::open(&store, &ring, audit).await.unwrap();
    assert_eq!(reader.meta().class(), StreamClass::AuditStream);
    assert_eq!(reader.dir(), StreamDir::session(audit));
    assert_eq!(audit_statuses(&reader).await, vec![200, 403]);
    let summary = summarize(&store, audit).await.unwrap();
    assert_eq!(summary.state, "sealed");
    assert_eq!(summary.class(), Some(StreamClass::AuditStream));
}

#[tokio::test]
async fn new_audit_streams_go_to_their_own_prefix_beside_the_old_ones() {
    let (tmp, store, ring) = checkout();
    let legacy: SessionId = LEGACY_AUDIT.parse().unwrap();
    let rec = Recorder::start(
        store.clone(),
        &ring,
        audit_meta("gw-new"),
        FlushPolicy::default(),
    )
    .await
    .unwrap();
    let new = rec.session();
    assert_eq!(rec.dir(), StreamDir::new(StreamRoot::Audit, new));
    let record = |status: u16| {
        serde_json::json!({
            "time_us": 1, "gateway": "gw-new", "client": "c", "method": "GET", "path": "/",
            "verb": "get", "decision": "allow", "status": status, "latency_ms": 0.1
        })
        .to_string()
    };
    for status in [201, 202] {
        rec.record(EventKind::Audit {
            json: record(status),
        })
        .await
        .unwrap();
    }
    let seal = rec.finish(None).await.unwrap();
    // On disk: under audit/, nothing under sessions/, no ended marker.
    let root = tmp.path().join("store");
    assert!(root.join(format!("audit/{new}/seal.json")).is_file());
    assert!(!root.join(format!("sessions/{new}")).exists());
    let day = layout::day_of(seal.sealed_at_us);
    assert!(!root.join(layout::ended(&day, new)).exists());

    assert!(
        !list_sessions(&store).await.unwrap().contains(&new),
        "sessions/ holds sessions (and old audit streams) only"
    );
    let found = list_audit_streams(&store).await.unwrap();
    assert_eq!(
        found.streams,
        vec![
            StreamDir::new(StreamRoot::Audit, new),
            StreamDir::session(legacy)
        ],
        "both places, newest first"
    );
    assert_eq!(list_streams(&store).await.unwrap().len(), 3);
    for dir in &found.streams {
        let report = verify_stream(&store, *dir, KeySource::Keyring(&ring))
            .await
            .unwrap();
        assert!(report.intact(), "{dir}: {:?}", report.damage);
    }
    let reader = SessionReader::open(&store, &ring, new).await.unwrap();
    assert_eq!(reader.dir().root(), StreamRoot::Audit);
    assert_eq!(audit_statuses(&reader).await, vec![201, 202]);
    let summary = summarize(&store, new).await.unwrap();
    assert_eq!((summary.state.as_str(), summary.chunks), ("sealed", 1));
    assert!(summary.stored_bytes > 0);
}

#[tokio::test]
async fn an_interrupted_audit_stream_is_sealed_where_it_lies() {
    let store = Store::open("memory://").unwrap();
    let (ring, _dir) = common::keyring();
    let rec = Recorder::start(
        store.clone(),
        &ring,
        audit_meta("gw"),
        FlushPolicy::default(),
    )
    .await
    .unwrap();
    let id = rec.session();
    rec.record(EventKind::Audit { json: "{}".into() })
        .await
        .unwrap();
    rec.finish_unsealed().await.unwrap();
    let dir = StreamDir::new(StreamRoot::Audit, id);
    assert!(store.get_opt(&dir.seal()).await.unwrap().is_none());
    seal_interrupted(&store, &ring, id).await.unwrap();
    assert!(store.get_opt(&dir.seal()).await.unwrap().is_some());
    assert!(store.get_opt(&layout::seal(id)).await.unwrap().is_none());
    let report = verify_stream(&store, dir, KeySource::Keyring(&ring))
        .await
        .unwrap();
    assert!(matches!(report.state, SessionState::Interrupted(_)));
    assert!(
        store.list(layout::ENDED).await.unwrap().is_empty(),
        "audit streams get no ended/ marker"
    );
}

#[tokio::test]
async fn unknown_ids_are_not_found_anywhere() {
    let (_tmp, store, ring) = checkout();
    let id = SessionId::new();
    assert_eq!(locate(&store, id).await.unwrap(), None);
    assert!(SessionReader::open(&store, &ring, id).await.is_err());
    assert!(
        verify_session(&store, id, KeySource::Keyring(&ring))
            .await
            .is_err()
    );
}

/// Any JSON object: enough to read the gateway's ledgers from here (their types live in the
/// gateway, whose own tests read this fixture with them).
#[derive(Debug, Clone)]
struct Json(serde_json::Value);

impl Entry for Json {
    fn is_entry(name: &str) -> bool {
        name.ends_with(".json")
    }
    fn decode(_name: &str, bytes: &[u8]) -> Result<Self, String> {
        decode_json(bytes).map(Json)
    }
}

#[tokio::test]
async fn the_ledgers_of_an_existing_store_read_back() {
    let (_tmp, store, _ring) = checkout();
    let jit = Ledger::new(store.clone(), layout::JIT_REQUESTS);
    let entries = jit.read_after::<Json>(None).await.unwrap();
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "01a24188-c0ab-76c2-8e3a-8c5445e38e3d/decision.json",
            "01a24188-c0ab-76c2-8e3a-8c5445e38e3d/request.json",
            "01a24188-c0ab-76c2-8e3a-8c55c8eea419/request.json",
        ]
    );
    assert_eq!(entries[0].1.as_ref().unwrap().0["approved"], true);
    let revocations = Ledger::new(store, layout::REVOCATIONS);
    let users: Vec<String> = revocations
        .read_after::<Json>(None)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.unwrap().0["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        users,
        [
            "mallory@example.com",
            "frank@example.com",
            "frank@example.com"
        ]
    );
}

/// Locating, listing and reading both classes on every store kind (S3 when a moto server is
/// configured: `locate` is a HEAD request there).
#[tokio::test]
async fn both_classes_on_every_store() {
    let (ring, _dir) = common::keyring();
    for ts in common::all_stores() {
        let store = &ts.store;
        let session = Recorder::start(store.clone(), &ring, common::meta(), FlushPolicy::default())
            .await
            .unwrap();
        let audit = Recorder::start(
            store.clone(),
            &ring,
            audit_meta("gw"),
            FlushPolicy::default(),
        )
        .await
        .unwrap();
        let (s, a) = (session.session(), audit.session());
        session.finish(None).await.unwrap();
        audit.finish(None).await.unwrap();
        assert_eq!(list_sessions(store).await.unwrap(), vec![s], "{}", ts.name);
        assert_eq!(
            list_audit_streams(store).await.unwrap().streams,
            vec![StreamDir::new(StreamRoot::Audit, a)],
            "{}",
            ts.name
        );
        assert_eq!(locate(store, s).await.unwrap(), Some(StreamDir::session(s)));
        assert_eq!(
            locate(store, a).await.unwrap(),
            Some(StreamDir::new(StreamRoot::Audit, a)),
            "{}",
            ts.name
        );
        for id in [s, a] {
            let report = verify_session(store, id, KeySource::Keyring(&ring))
                .await
                .unwrap();
            assert!(report.intact(), "{} {id}: {:?}", ts.name, report.damage);
        }
    }
}
