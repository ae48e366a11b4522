//! The session seam with stand-in relays and an in-memory store: what every stream kind gets
//! without writing it — fail-closed open, one end, ends from outside, the seal, the drain.

use std::sync::Arc;
use std::time::Duration;

use storage_schema::store::{KeySource, SessionReader, Store, verify_session};
use storage_schema::{
    EventKind, ExitInfo, FlushPolicy, Identity, Keyring, SessionKind, SessionMeta, SessionState,
    Stream, Target,
};
use tokio::sync::oneshot;

use super::*;
use crate::background::Background;
use crate::live::{EndRequest, LiveSessions};
use crate::revocation::{self, Revocations};

const WITHIN: Duration = Duration::from_secs(10);

struct Fixture {
    sessions: Sessions,
    store: Store,
    keyring: Arc<Keyring>,
    revocations: Arc<Revocations>,
    _keys: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let store = Store::open("memory://").unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (keyring, _) = Keyring::open_or_init(&keys.path().join("keys")).unwrap();
    let keyring = Arc::new(keyring);
    let live = LiveSessions::default();
    let revocations = Arc::new(Revocations::new(
        store.clone(),
        live.clone(),
        Vec::new(),
        Duration::from_secs(3600),
    ));
    revocations.poll().await.unwrap();
    let sessions = Sessions::new(SessionParts {
        store: store.clone(),
        keyring: keyring.clone(),
        flush: FlushPolicy::default(),
        runtime: Background::start(1, 0).unwrap(),
        live,
        revocations: revocations.clone(),
        metrics: Default::default(),
        leases: None,
    });
    Fixture {
        sessions,
        store,
        keyring,
        revocations,
        _keys: keys,
    }
}

fn opening(user: &str) -> Opening {
    let meta = SessionMeta::new(
        SessionKind::Exec,
        Identity {
            user: user.into(),
            groups: vec!["dev".into()],
            issuer: None,
            claims: Default::default(),
        },
        Target {
            cluster: Some("test".into()),
            namespace: Some("default".into()),
            pod: Some("demo".into()),
            container: None,
            host: None,
        },
        vec!["sh".into()],
        false,
    );
    Opening {
        meta,
        limit: SessionLimit::none(),
        extract_commands: false,
        connection: None,
    }
}

/// Records `output`, then ends with `code` on its own.
struct Finishes {
    output: &'static [u8],
    code: i32,
}

impl Relay for Finishes {
    async fn run(self, tape: Tape<'_>) -> Ending {
        tape.recorder
            .record_data(Stream::Stdout, self.output)
            .await
            .unwrap();
        Ending {
            exit: ExitInfo {
                code: self.code,
                message: String::new(),
            },
            ended_by: None,
        }
    }
}

/// Records `output`, says it is running, then waits to be ended from outside.
struct RunsUntilEnded {
    output: &'static [u8],
    running: oneshot::Sender<()>,
    told: oneshot::Sender<EndReason>,
}

impl Relay for RunsUntilEnded {
    async fn run(self, mut tape: Tape<'_>) -> Ending {
        tape.recorder
            .record_data(Stream::Stdout, self.output)
            .await
            .unwrap();
        let _ = self.running.send(());
        let why = tape.ends.wait().await;
        let _ = self.told.send(why.clone());
        Ending {
            exit: why.exit(),
            ended_by: Some(why),
        }
    }
}

/// Every event of a sealed session, with the seal's state.
async fn read_back(f: &Fixture, id: SessionId) -> (SessionState, Vec<EventKind>) {
    let report = verify_session(&f.store, id, KeySource::Keyring(&f.keyring))
        .await
        .unwrap();
    assert!(report.intact(), "{:?}", report.damage);
    let reader = SessionReader::open(&f.store, &f.keyring, id).await.unwrap();
    let mut events = Vec::new();
    reader
        .for_each_event(|e| events.push(e.kind.clone()))
        .await
        .unwrap();
    (report.state, events)
}

fn stdout_of(events: &[EventKind]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::Data {
                stream: Stream::Stdout,
                bytes,
            } => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[tokio::test]
async fn a_relay_that_finishes_is_sealed_with_its_exit_and_everything_it_recorded() {
    let f = fixture().await;
    let session = f.sessions.open(opening("alice")).await.unwrap();
    let id = session.id();
    // Its recorder's lag is readable by /metrics while it lives (nothing held: a memory store).
    assert_eq!(f.sessions.lags().len(), 1);
    assert_eq!(f.sessions.recording_lag(), Duration::ZERO);
    session
        .spawn(Finishes {
            output: b"hello\r\n",
            code: 3,
        })
        .await
        .unwrap();
    assert!(
        f.sessions.lags().is_empty(),
        "an ended session leaves the lag gauge"
    );
    let (state, events) = read_back(&f, id).await;
    let SessionState::Sealed(seal) = state else {
        panic!("not sealed: {state:?}");
    };
    assert_eq!(seal.exit.as_ref().map(|e| e.code), Some(3));
    assert_eq!(stdout_of(&events), b"hello\r\n");
    assert!(
        matches!(events.last(), Some(EventKind::Exit { code: 3, .. })),
        "{events:?}"
    );
    assert_eq!(f.sessions.live().count("alice"), 0, "unregistered");
}

#[tokio::test]
async fn a_revocation_ends_a_live_session_with_its_reason_recorded() {
    let f = fixture().await;
    let session = f.sessions.open(opening("mallory")).await.unwrap();
    let id = session.id();
    let (running_tx, running) = oneshot::channel();
    let (told_tx, told) = oneshot::channel();
    let task = session.spawn(RunsUntilEnded {
        output: b"$ ",
        running: running_tx,
        told: told_tx,
    });
    running.await.unwrap();
    let ended = f.sessions.live().end_user(
        "mallory",
        &EndRequest {
            message: "kubetape: session ended: access revoked".into(),
            marker: "access revoked: offboarded".into(),
        },
    );
    assert_eq!(ended, 1);
    let why = tokio::time::timeout(WITHIN, told).await.unwrap().unwrap();
    assert_eq!(why.code, 403);
    assert_eq!(why.message, "kubetape: session ended: access revoked");
    tokio::time::timeout(WITHIN, task).await.unwrap().unwrap();
    let (state, events) = read_back(&f, id).await;
    assert!(matches!(state, SessionState::Sealed(_)), "{state:?}");
    assert!(
        events.iter().any(
            |e| matches!(e, EventKind::Marker { text } if text == "access revoked: offboarded")
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_drain_ends_every_live_session_and_waits_until_each_is_sealed() {
    let f = fixture().await;
    let mut ids = Vec::new();
    let mut told = Vec::new();
    for user in ["alice", "bob"] {
        let session = f.sessions.open(opening(user)).await.unwrap();
        ids.push(session.id());
        let (running_tx, running) = oneshot::channel();
        let (told_tx, told_rx) = oneshot::channel();
        session.spawn(RunsUntilEnded {
            output: b"output before the drain",
            running: running_tx,
            told: told_tx,
        });
        running.await.unwrap();
        told.push(told_rx);
    }
    let drain = f.sessions.drain().clone();
    assert_eq!(drain.open_sessions(), 2);
    drain.start();
    drain.end_sessions();
    tokio::time::timeout(WITHIN, drain.wait())
        .await
        .expect("the drain completes");
    // The drain resolved only after the seals were written: no polling needed here.
    for (id, told) in ids.into_iter().zip(told) {
        let why = told.await.unwrap();
        assert_eq!(why.message, DRAIN_MESSAGE);
        assert_eq!(why.code, 503);
        let (state, events) = read_back(&f, id).await;
        let SessionState::Sealed(seal) = state else {
            panic!("{id} not sealed after the drain: {state:?}");
        };
        assert_eq!(seal.exit.map(|e| e.message).as_deref(), Some(DRAIN_MESSAGE));
        assert_eq!(stdout_of(&events), b"output before the drain");
    }
    // New sessions are refused from then on, before anything is recorded.
    let before = storage_schema::store::list_sessions(&f.store)
        .await
        .unwrap();
    let refused = f.sessions.open(opening("carol")).await.unwrap_err();
    assert!(matches!(refused, OpenError::Draining), "{refused}");
    assert_eq!(refused.response().status(), 503);
    let after = storage_schema::store::list_sessions(&f.store)
        .await
        .unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn a_recording_that_cannot_be_opened_refuses_the_session() {
    let f = fixture().await;
    let open = opening("alice");
    // Something already holds this session's name: the create-only put of its metadata fails.
    f.store
        .put_create(&storage_schema::layout::meta(open.meta.session), "x")
        .await
        .unwrap();
    let refused = f.sessions.open(open).await.unwrap_err();
    assert!(matches!(refused, OpenError::Recording(_)), "{refused}");
    assert_eq!(refused.response().status(), 503);
    assert_eq!(f.sessions.live().count("alice"), 0);
    assert_eq!(f.sessions.drain().open_sessions(), 0);
}

#[tokio::test]
async fn a_user_revoked_while_the_session_opened_is_refused_and_the_recording_says_why() {
    let f = fixture().await;
    let open = opening("mallory");
    let id = open.meta.session;
    revocation::write(
        &f.store,
        &revocation::Entry::new(
            revocation::Action::Revoke,
            "mallory",
            "offboarded",
            "cli:root",
        ),
    )
    .await
    .unwrap();
    f.revocations.poll().await.unwrap();
    let refused = f.sessions.open(open).await.unwrap_err();
    assert!(matches!(refused, OpenError::Revoked(_)), "{refused}");
    assert_eq!(refused.response().status(), 403);
    // Sealed before `open` returned.
    let (state, events) = read_back(&f, id).await;
    assert!(matches!(state, SessionState::Sealed(_)), "{state:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EventKind::Marker { text } if text.contains("revoked")))
    );
}
