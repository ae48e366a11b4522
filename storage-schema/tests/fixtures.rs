//! Golden fixtures: sessions written by each format version, committed under
//! `tests/fixtures/v<N>/`, that this and every later version must read and verify exactly.
//!
//! Fixtures for a new format version (existing bytes must never change; this refuses to
//! overwrite a version's directory):
//! `cargo test -p storage-schema --test fixtures -- --ignored regenerate`

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use storage_schema::store::{
    KeySource, Recorder, SessionReader, Store, list_sessions, seal_interrupted, verify_session,
};
use storage_schema::{
    Direction, Event, EventKind, ExitInfo, FlushPolicy, Keyring, SessionState, Stream,
};

/// Every format version with fixtures: all of them, from 1 to the one this crate writes.
const VERSIONS: std::ops::RangeInclusive<u32> = 1..=storage_schema::FORMAT_VERSION;

fn fixture_dir(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/v{version}"))
}

/// Every event kind, over several chunks.
fn fixture_events() -> Vec<Event> {
    let mut at = 0;
    let mut next = |step: u64, kind: EventKind| {
        at += step;
        Event { at_us: at, kind }
    };
    let mut v = vec![
        next(0, EventKind::Resize { cols: 80, rows: 24 }),
        next(
            1_000,
            EventKind::Data {
                stream: Stream::Stdout,
                bytes: b"$ ".to_vec(),
            },
        ),
    ];
    for (i, key) in b"ls -l\r".iter().enumerate() {
        v.push(next(
            120_000 + i as u64,
            EventKind::Data {
                stream: Stream::Stdin,
                bytes: vec![*key],
            },
        ));
        v.push(next(
            300,
            EventKind::Data {
                stream: Stream::Stdout,
                bytes: vec![*key],
            },
        ));
    }
    for i in 0..200 {
        v.push(next(
            50,
            EventKind::Data {
                stream: Stream::Stdout,
                bytes: format!("-rw-r--r-- 1 app app {i:5} Nov 23 15:04 file-{i}.log\r\n")
                    .into_bytes(),
            },
        ));
    }
    v.push(next(
        2_000,
        EventKind::Data {
            stream: Stream::Stderr,
            bytes: b"warning: \xff not utf-8\n".to_vec(),
        },
    ));
    v.push(next(
        10,
        EventKind::Resize {
            cols: 132,
            rows: 43,
        },
    ));
    v.push(next(
        10,
        EventKind::Marker {
            text: "grant g-1 expires in 60 s".into(),
        },
    ));
    v.push(next(
        10,
        EventKind::PortForwardOpen {
            conn: 1,
            port: 8080,
        },
    ));
    v.push(next(
        10,
        EventKind::PortForwardData {
            conn: 1,
            direction: Direction::ToPod,
            bytes: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        },
    ));
    v.push(next(
        10,
        EventKind::PortForwardData {
            conn: 1,
            direction: Direction::FromPod,
            bytes: b"HTTP/1.1 200 OK\r\n".to_vec(),
        },
    ));
    v.push(next(
        10,
        EventKind::PortForwardClose {
            conn: 1,
            error: String::new(),
        },
    ));
    v.push(next(
        10,
        EventKind::StreamClose {
            stream: Stream::Stdin,
        },
    ));
    v.push(next(
        10,
        EventKind::Unknown {
            tag: 99,
            payload: vec![1, 2, 3],
        },
    ));
    v.push(next(
        5_000_000,
        EventKind::Exit {
            code: 3,
            message: "command terminated with non-zero exit code".into(),
        },
    ));
    v
}

fn dump(events: &[Event]) -> String {
    events.iter().map(|e| format!("{e:?}\n")).collect()
}

/// Copies the committed fixtures somewhere writable, restoring the 0600 mode git does not keep.
fn checkout(version: u32) -> (tempfile::TempDir, Store, Keyring) {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir(version), tmp.path());
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

#[tokio::test]
async fn every_versions_fixtures_read_and_verify() {
    for version in VERSIONS {
        fixtures_read_and_verify(version).await;
    }
}

async fn fixtures_read_and_verify(version: u32) {
    let (_tmp, store, ring) = checkout(version);
    let ids = list_sessions(&store).await.unwrap();
    assert_eq!(ids.len(), 3, "v{version} fixture sessions");
    let expected = fs::read_to_string(fixture_dir(version).join("expected-events.txt")).unwrap();
    let mut seen = Vec::new();
    for id in ids {
        let report = verify_session(&store, id, KeySource::Keyring(&ring))
            .await
            .unwrap();
        assert!(report.intact(), "v{version} {id}: {:?}", report.damage);
        let reader = SessionReader::open(&store, &ring, id).await.unwrap();
        assert_eq!(reader.meta().format, version, "{id}");
        let name = reader.meta().command[0].clone();
        let mut events = Vec::new();
        reader
            .for_each_event(|e| events.push(e.clone()))
            .await
            .unwrap();
        match name.as_str() {
            "fixture-sealed" => {
                assert!(
                    matches!(&report.state, SessionState::Sealed(s) if s.exit.as_ref().map(|e| e.code) == Some(3))
                );
                assert!(reader.chunk_count() > 1, "fixture spans chunks");
                for i in 0..reader.chunk_count() {
                    let header = reader.chunk_header(i).await.unwrap();
                    assert_eq!(u32::from(header.version), version, "{id} chunk {i}");
                }
                assert_eq!(dump(&events), expected);
            }
            "fixture-interrupted" => {
                assert!(matches!(report.state, SessionState::Interrupted(_)));
                assert!(expected.starts_with(&dump(&events)));
            }
            "fixture-open" => {
                assert_eq!(report.state, SessionState::Open);
                assert!(expected.starts_with(&dump(&events)));
            }
            other => panic!("unexpected fixture {other}"),
        }
        seen.push(name);
    }
    seen.sort();
    assert_eq!(
        seen,
        ["fixture-interrupted", "fixture-open", "fixture-sealed"]
    );
}

#[tokio::test]
#[ignore = "writes new fixture bytes; run by hand only when adding fixtures"]
async fn regenerate() {
    let dir = fixture_dir(storage_schema::FORMAT_VERSION);
    assert!(
        !dir.join("store").exists(),
        "{} exists; fixture bytes must never be rewritten",
        dir.display()
    );
    let (ring, _) = Keyring::open_or_init(&dir.join("keys")).unwrap();
    let store = Store::open(&format!("file://{}", dir.join("store").display())).unwrap();
    let events = fixture_events();
    let policy = FlushPolicy {
        max_bytes: 2048,
        ..FlushPolicy::default()
    };
    for (name, cut, seal) in [
        ("fixture-sealed", events.len(), true),
        ("fixture-interrupted", 120, false),
        ("fixture-open", 60, false),
    ] {
        let mut meta = common::meta();
        meta.command = vec![name.into()];
        let rec = Recorder::start(store.clone(), &ring, meta, policy)
            .await
            .unwrap();
        let id = rec.session();
        for e in &events[..cut] {
            rec.record_at(e.clone()).await.unwrap();
        }
        if seal {
            rec.finish(Some(ExitInfo {
                code: 3,
                message: "command terminated with non-zero exit code".into(),
            }))
            .await
            .unwrap();
        } else {
            rec.finish_unsealed().await.unwrap();
            if name == "fixture-interrupted" {
                seal_interrupted(&store, &ring, id).await.unwrap();
            }
        }
    }
    fs::write(dir.join("expected-events.txt"), dump(&events)).unwrap();
}

// === port-forward sessions (events 16–18, the seal's and metadata's port-forward fields) ===

/// The port-forward fixture: written by format v2 once those events existed, in a directory of
/// its own (the v2 directory's bytes are frozen). Every later version must read it exactly.
fn forward_fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2-portforward")
}

/// A forward of three connections: one curl-like exchange with half-close and full capture,
/// one refused by the policy, one ended with the session.
fn forward_fixture_events() -> Vec<Event> {
    use storage_schema::ForwardOutcome;
    let mut at = 0;
    let mut next = |step: u64, kind: EventKind| {
        at += step;
        Event { at_us: at, kind }
    };
    let data = |conn, direction, bytes: &[u8]| EventKind::PortForwardData {
        conn,
        direction,
        bytes: bytes.to_vec(),
    };
    vec![
        next(0, EventKind::PortForwardOpen { conn: 1, port: 80 }),
        next(
            900,
            data(1, Direction::ToPod, b"GET / HTTP/1.1\r\nHost: demo\r\n\r\n"),
        ),
        next(
            10,
            EventKind::PortForwardHalfClose {
                conn: 1,
                direction: Direction::ToPod,
            },
        ),
        next(
            1_200,
            data(1, Direction::FromPod, b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nhi\n"),
        ),
        next(
            5,
            EventKind::PortForwardHalfClose {
                conn: 1,
                direction: Direction::FromPod,
            },
        ),
        next(
            5,
            EventKind::PortForwardBytes {
                conn: 1,
                to_pod: 30,
                from_pod: 41,
            },
        ),
        next(
            1,
            EventKind::PortForwardEnd {
                conn: 1,
                outcome: ForwardOutcome::Closed,
                message: String::new(),
            },
        ),
        next(
            2_000_000,
            EventKind::PortForwardOpen {
                conn: 2,
                port: 5432,
            },
        ),
        next(
            0,
            EventKind::PortForwardEnd {
                conn: 2,
                outcome: ForwardOutcome::Refused,
                message: "kubetape: port 5432 is not allowed: the access policy (binding developers → role developer rule 1) lets this forward reach ports 80, 7000 only".into(),
            },
        ),
        next(1_000_000, EventKind::PortForwardOpen { conn: 3, port: 7000 }),
        next(100, data(3, Direction::ToPod, &[0xde, 0xad, 0xbe, 0xef])),
        next(100, data(3, Direction::FromPod, &[0xde, 0xad, 0xbe, 0xef])),
        next(
            1_000_000,
            EventKind::PortForwardBytes {
                conn: 3,
                to_pod: 4,
                from_pod: 4,
            },
        ),
        next(
            10,
            EventKind::Marker {
                text: "kubetape: access for alice@example.com was revoked".into(),
            },
        ),
        next(
            0,
            EventKind::PortForwardEnd {
                conn: 3,
                outcome: ForwardOutcome::Ended,
                message: "kubetape: access for alice@example.com was revoked".into(),
            },
        ),
        next(
            5,
            EventKind::Exit {
                code: 1,
                message: "kubetape: access for alice@example.com was revoked".into(),
            },
        ),
    ]
}

fn forward_meta() -> storage_schema::SessionMeta {
    let mut meta = common::meta();
    meta.kind = storage_schema::SessionKind::PortForward;
    meta.command = vec!["fixture-port-forward".into()];
    meta.tty = false;
    meta.size = None;
    meta.target.container = None;
    meta.port_forward = Some(storage_schema::ForwardMeta {
        ports: vec![],
        allowed_ports: "80, 7000".into(),
        capture: "full".into(),
        client_protocol: "websocket (SPDY/3.1+portforward.k8s.io)".into(),
        upstream_protocol: "SPDY/3.1 (portforward.k8s.io)".into(),
    });
    meta
}

#[tokio::test]
async fn the_port_forward_fixture_reads_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&forward_fixture_dir(), tmp.path());
    for entry in fs::read_dir(tmp.path().join("keys")).unwrap() {
        fs::set_permissions(entry.unwrap().path(), fs::Permissions::from_mode(0o600)).unwrap();
    }
    let store = Store::open(&format!("file://{}", tmp.path().join("store").display())).unwrap();
    let ring = Keyring::open(&tmp.path().join("keys")).unwrap();
    let ids = list_sessions(&store).await.unwrap();
    assert_eq!(ids.len(), 1);
    let report = verify_session(&store, ids[0], KeySource::Keyring(&ring))
        .await
        .unwrap();
    assert!(report.intact(), "{:?}", report.damage);
    let SessionState::Sealed(seal) = &report.state else {
        panic!("{:?}", report.state)
    };
    assert_eq!(
        seal.port_forward,
        Some(storage_schema::ForwardTotals {
            connections: 3,
            refused: 1,
            to_pod: 34,
            from_pod: 45,
        })
    );
    assert_eq!(seal.bytes.port_forward, 30 + 41 + 4 + 4);
    let reader = SessionReader::open(&store, &ring, ids[0]).await.unwrap();
    assert_eq!(reader.meta(), &{
        let mut m = forward_meta();
        m.session = ids[0];
        m.started_at_us = reader.meta().started_at_us;
        m.keys = reader.meta().keys.clone();
        m
    });
    let mut events = Vec::new();
    reader
        .for_each_event(|e| events.push(e.clone()))
        .await
        .unwrap();
    let expected = fs::read_to_string(forward_fixture_dir().join("expected-events.txt")).unwrap();
    assert_eq!(dump(&events), expected);
    assert_eq!(dump(&forward_fixture_events()), expected);
}

#[tokio::test]
#[ignore = "writes new fixture bytes; run by hand only when adding fixtures"]
async fn regenerate_port_forward() {
    let dir = forward_fixture_dir();
    assert!(
        !dir.join("store").exists(),
        "{} exists; fixture bytes must never be rewritten",
        dir.display()
    );
    let (ring, _) = Keyring::open_or_init(&dir.join("keys")).unwrap();
    let store = Store::open(&format!("file://{}", dir.join("store").display())).unwrap();
    let events = forward_fixture_events();
    let rec = Recorder::start(store.clone(), &ring, forward_meta(), FlushPolicy::default())
        .await
        .unwrap();
    for e in &events {
        rec.record_at(e.clone()).await.unwrap();
    }
    rec.finish(Some(ExitInfo {
        code: 1,
        message: "kubetape: access for alice@example.com was revoked".into(),
    }))
    .await
    .unwrap();
    fs::write(dir.join("expected-events.txt"), dump(&events)).unwrap();
    fs::write(
        dir.join("README.md"),
        "Golden port-forward recording written by format v2 once its connection events (tags 16-18)\n\
         and the seal's and metadata's `port_forward` fields existed (see `../../fixtures.rs`). The\n\
         keys are test keys made for this fixture only. Never rewrite these bytes.\n",
    )
    .unwrap();
}
