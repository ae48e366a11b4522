//! Store behaviour the format relies on: create-only puts (exactly one racer wins), time-based
//! flushing, explicit back-pressure, and sealing a session whose writer died.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use storage_schema::store::{
    KeySource, RecordError, Recorder, Store, StoreError, seal_interrupted, summarize,
    verify_session,
};
use storage_schema::{EventKind, FlushPolicy, SessionState, Stream, layout};

/// Many writers race to create one object: exactly one wins, on every store kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_only_race_has_exactly_one_winner() {
    for ts in common::all_stores() {
        for round in 0..3 {
            let key = format!("race/{round}");
            let tasks: Vec<_> = (0..16u8)
                .map(|i| {
                    let store = ts.store.clone();
                    let key = key.clone();
                    tokio::spawn(async move { (i, store.put_create(&key, vec![i; 1024]).await) })
                })
                .collect();
            let mut winners = Vec::new();
            for t in tasks {
                match t.await.unwrap() {
                    (i, Ok(())) => winners.push(i),
                    (_, Err(StoreError::AlreadyExists { .. })) => {}
                    (_, Err(e)) => panic!("{}: unexpected error {e}", ts.name),
                }
            }
            assert_eq!(winners.len(), 1, "{}: winners {winners:?}", ts.name);
            // And the stored object is the winner's, whole.
            assert_eq!(
                ts.store.get(&key).await.unwrap().to_vec(),
                vec![winners[0]; 1024],
                "{}",
                ts.name
            );
        }
    }
}

/// `list_after` returns exactly the names after the offset, sorted, on every store kind (S3
/// does it with `start-after`; the JIT listing relies on it to skip old requests).
#[tokio::test]
async fn listing_after_an_offset_skips_what_sorts_before_it() {
    for ts in common::all_stores() {
        let names = ["a/1", "a/2", "b/1", "b/2", "c/1"];
        for name in names {
            ts.store
                .put_create(&format!("dir/{name}"), name.as_bytes().to_vec())
                .await
                .unwrap();
        }
        ts.store.put_create("dis/x", vec![1]).await.unwrap();
        let listed = |after: Option<&'static str>| {
            let store = ts.store.clone();
            async move {
                let all = store.list_after("dir", after).await.unwrap();
                all.into_iter().map(|(n, _)| n).collect::<Vec<_>>()
            }
        };
        assert_eq!(listed(None).await, names, "{}", ts.name);
        assert_eq!(
            listed(Some("b")).await,
            ["b/1", "b/2", "c/1"],
            "{}",
            ts.name
        );
        assert_eq!(listed(Some("b/1")).await, ["b/2", "c/1"], "{}", ts.name);
        assert_eq!(
            listed(Some("c/1")).await,
            Vec::<String>::new(),
            "{}",
            ts.name
        );
        assert_eq!(listed(Some("0")).await, names, "{}", ts.name);
    }
}

/// A session's objects can never be overwritten through the store API.
#[tokio::test]
async fn recorded_objects_are_never_overwritten() {
    let ts = common::file();
    let (ring, _k) = common::keyring();
    let id = common::record(
        &ts.store,
        &ring,
        &common::output_events(10, 100),
        FlushPolicy::default(),
        true,
    )
    .await;
    for key in [
        layout::meta(id),
        layout::dek(id),
        layout::chunk(id, 0),
        layout::seal(id),
    ] {
        let err = ts
            .store
            .put_create(&key, b"evil".to_vec())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::AlreadyExists { .. }),
            "{key}: {err}"
        );
    }
}

/// With no further output, an open chunk is still written within the flush age: this bounds
/// what a crash can lose.
#[tokio::test]
async fn a_quiet_session_flushes_within_max_age() {
    let ts = common::file();
    let (ring, _k) = common::keyring();
    let policy = FlushPolicy {
        max_age: Duration::from_millis(300),
        ..FlushPolicy::default()
    };
    let rec = Recorder::start(ts.store.clone(), &ring, common::meta(), policy)
        .await
        .unwrap();
    let id = rec.session();
    let started = Instant::now();
    rec.record_data(Stream::Stdout, b"$ ").await.unwrap();
    // Wait (bounded) for the observable condition: chunk 0 exists while the session is open.
    let mut appeared = None;
    while started.elapsed() < Duration::from_secs(5) {
        if ts
            .store
            .get_opt(&layout::chunk(id, 0))
            .await
            .unwrap()
            .is_some()
        {
            appeared = Some(started.elapsed());
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let appeared = appeared.expect("chunk 0 was never written");
    // Each session flushes on a grid of period max_age whose phase its id picks: within
    // max_age of the first event (plus the time to write the object).
    assert!(
        appeared < Duration::from_millis(1300),
        "flush took {appeared:?} for a 300 ms policy"
    );
    assert!(ts.store.get_opt(&layout::seal(id)).await.unwrap().is_none());
    rec.finish(None).await.unwrap();
}

/// While a chunk is open the recorder takes its events in batches, leaving them queued until
/// the chunk's deadline: a caller is still never kept waiting for that deadline, neither for
/// room in the queue (many small events, or one write bigger than the free room) nor to
/// finish, and every byte is recorded in order.
///
/// On one thread, so that the recorder's task runs only when the caller waits: each wait
/// below is one the task must be woken for.
#[tokio::test]
async fn batched_events_never_wait_for_the_chunks_deadline() {
    let ts = common::memory();
    let (ring, _k) = common::keyring();
    // A deadline no step below comes near: waiting for it would show as a minute. The id's
    // last two bytes pick where on the 60 s grid the first deadline falls: at its end.
    let policy = FlushPolicy {
        max_age: Duration::from_secs(60),
        ..FlushPolicy::default()
    };
    let mut meta = common::meta();
    let mut id = *meta.session.as_bytes();
    id[14..].copy_from_slice(&[0xff, 0xff]);
    meta.session = storage_schema::SessionId::from_bytes(id);
    let rec = Recorder::start(ts.store.clone(), &ring, meta, policy)
        .await
        .unwrap();
    let id = rec.session();
    let started = Instant::now();
    let mut sent = Vec::new();
    // A few queued (the first opens the chunk), then one write of 64 events: it needs the
    // whole queue.
    for key in [b"x", b"y", b"z"] {
        rec.record_data(Stream::Stdin, key).await.unwrap();
        sent.extend_from_slice(key);
    }
    let big: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    rec.record_data(Stream::Stdin, &big).await.unwrap();
    sent.extend_from_slice(&big);
    // Many small ones: more than the queue holds.
    for i in 0..1000u32 {
        let key = [b'a' + (i % 26) as u8];
        rec.record_data(Stream::Stdin, &key).await.unwrap();
        sent.extend_from_slice(&key);
    }
    let seal = rec.finish(None).await.unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "recording and finishing took {took:?}: a caller waited for the 60 s chunk deadline"
    );
    assert_eq!(seal.bytes.stdin, sent.len() as u64);
    let reader = storage_schema::store::SessionReader::open(&ts.store, &ring, id)
        .await
        .unwrap();
    let mut back = Vec::new();
    reader
        .for_each_event(|e| {
            if let EventKind::Data {
                stream: Stream::Stdin,
                bytes,
            } = &e.kind
            {
                back.extend_from_slice(bytes);
            }
        })
        .await
        .unwrap();
    assert!(
        back == sent,
        "what was read back differs from what was recorded"
    );
}

/// When the store lags, the recorder says so instead of dropping events, and waiting callers
/// lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_is_explicit_and_lossless() {
    let slow = object_store::throttle::ThrottledStore::new(
        object_store::memory::InMemory::new(),
        object_store::throttle::ThrottleConfig {
            wait_put_per_call: Duration::from_millis(50),
            ..Default::default()
        },
    );
    let store = Store::from_object_store(Arc::new(slow), "", "throttled://");
    let (ring, _k) = common::keyring();
    let policy = FlushPolicy {
        max_bytes: 1024,
        ..FlushPolicy::default()
    };
    let rec = Recorder::start(store.clone(), &ring, common::meta(), policy)
        .await
        .unwrap();
    let id = rec.session();
    let line = vec![b'x'; 1024];
    let mut sent = 0u64;
    let mut refused = false;
    for _ in 0..10_000 {
        match rec.try_record(EventKind::Data {
            stream: Stream::Stdout,
            bytes: line.clone(),
        }) {
            Ok(()) => sent += 1,
            Err(RecordError::Backpressure) => {
                refused = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        refused,
        "10,000 KiB went into a store that takes one 1 KiB chunk per 50 ms without back-pressure"
    );
    // The waiting API takes the rest, slowly, and loses nothing.
    for _ in 0..20 {
        rec.record(EventKind::Data {
            stream: Stream::Stdout,
            bytes: line.clone(),
        })
        .await
        .unwrap();
        sent += 1;
    }
    let seal = rec.finish(None).await.unwrap();
    assert_eq!(seal.bytes.stdout, sent * 1024);
    let report = verify_session(&store, id, KeySource::Keyring(&ring))
        .await
        .unwrap();
    assert!(report.intact(), "{:?}", report.damage);
    assert_eq!(report.totals.unwrap().bytes.stdout, sent * 1024);
}

/// A writer that stops without sealing leaves an open, intact session that can be sealed later
/// as interrupted, once.
#[tokio::test]
async fn open_session_can_be_sealed_as_interrupted() {
    for ts in common::all_stores() {
        let (ring, _k) = common::keyring();
        let events = common::output_events(50, 300);
        let id = common::record(&ts.store, &ring, &events, common::small_chunks(), false).await;
        let report = verify_session(&ts.store, id, KeySource::Keyring(&ring))
            .await
            .unwrap();
        assert!(report.intact(), "{}: {:?}", ts.name, report.damage);
        assert_eq!(report.state, SessionState::Open, "{}", ts.name);
        assert_eq!(summarize(&ts.store, id).await.unwrap().state, "open");

        let seal = seal_interrupted(&ts.store, &ring, id).await.unwrap();
        assert_eq!(seal.bytes.stdout, 50 * 300);
        let report = verify_session(&ts.store, id, KeySource::Keyring(&ring))
            .await
            .unwrap();
        assert!(report.intact(), "{}: {:?}", ts.name, report.damage);
        assert!(
            matches!(report.state, SessionState::Interrupted(_)),
            "{}",
            ts.name
        );
        assert_eq!(summarize(&ts.store, id).await.unwrap().state, "interrupted");
        assert!(
            seal_interrupted(&ts.store, &ring, id).await.is_err(),
            "sealed twice"
        );
    }
}

/// A store that starts failing is noticed without further events: under the `end` policy with
/// no spool, `closed()` resolves, stream data is refused with the cause, and `finish` says the
/// session's last words could not be made durable either — so a relay can end even an idle
/// session (fail closed), and nothing is claimed that was not written.
#[tokio::test]
async fn a_failing_store_closes_the_recorder() {
    use storage_schema::store::{Durability, OnStoreFailure, RecorderOptions};
    let ts = common::file();
    let (ring, _k) = common::keyring();
    let rec = Recorder::start_with(
        ts.store.clone(),
        &ring,
        common::meta(),
        RecorderOptions {
            flush: FlushPolicy {
                max_age: Duration::from_millis(100),
                ..FlushPolicy::default()
            },
            durability: Durability {
                on_failure: OnStoreFailure::End,
                failure_timeout: Duration::from_millis(500),
                ..Durability::default()
            },
            observer: None,
        },
    )
    .await
    .unwrap();
    // Chunks can no longer be written: their directory is now a file.
    let chunks = ts
        .root
        .as_ref()
        .unwrap()
        .join(layout::chunks_dir(rec.session()));
    std::fs::write(&chunks, b"in the way").unwrap();
    rec.record_data(Stream::Stdout, b"last words")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rec.closed())
        .await
        .expect("closed() never resolved");
    assert!(matches!(
        rec.record_data(Stream::Stdout, b"more").await,
        Err(RecordError::StoreUnavailable { .. })
    ));
    let err = rec.finish(None).await.unwrap_err();
    assert!(matches!(err, RecordError::StoreUnavailable { .. }), "{err}");
}

/// Commands written with the seal come back through the reader, are covered by the seal's
/// signature (so a verifier with only the public key notices tampering), and their absence is
/// reported rather than read as "no commands".
#[tokio::test]
async fn commands_are_sealed_with_the_session() {
    use storage_schema::commands::CommandEntry;
    use storage_schema::store::SessionReader;
    use storage_schema::{Damage, Event};

    for ts in common::all_stores() {
        let (ring, _k) = common::keyring();
        let recorder = Recorder::start(
            ts.store.clone(),
            &ring,
            common::meta(),
            FlushPolicy::default(),
        )
        .await
        .unwrap();
        let id = recorder.session();
        recorder
            .record_at(Event {
                at_us: 5,
                kind: EventKind::Data {
                    stream: Stream::Stdin,
                    bytes: b"ls\r".to_vec(),
                },
            })
            .await
            .unwrap();
        let typed = vec![
            CommandEntry {
                exit_code: Some(0),
                ..CommandEntry::command(5, "ls").with_prompt("$ ")
            },
            CommandEntry::redacted(9),
        ];
        let seal = recorder
            .finish_with_commands(None, typed.clone())
            .await
            .unwrap();
        assert_eq!(seal.commands.as_ref().unwrap().count, 2, "{}", ts.name);

        let reader = SessionReader::open(&ts.store, &ring, id).await.unwrap();
        assert_eq!(reader.commands().await.unwrap(), Some(typed), "{}", ts.name);
        let public = ring.current_signing_key().unwrap().public();
        for keys in [KeySource::Keyring(&ring), KeySource::PublicKey(&public)] {
            let report = verify_session(&ts.store, id, keys).await.unwrap();
            assert!(report.intact(), "{}: {:?}", ts.name, report.damage);
        }

        // Replace the object (the store refuses overwrites, so delete and recreate it).
        let key = layout::commands(id);
        let mut bytes = ts.store.get(&key).await.unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        ts.store.delete(&key).await.unwrap();
        ts.store.put_create(&key, bytes).await.unwrap();
        for keys in [KeySource::Keyring(&ring), KeySource::PublicKey(&public)] {
            let report = verify_session(&ts.store, id, keys).await.unwrap();
            assert!(
                matches!(report.damage.as_slice(), [Damage::Commands(_)]),
                "{}: {:?}",
                ts.name,
                report.damage
            );
        }
        assert!(reader.commands().await.is_err(), "{}", ts.name);

        ts.store.delete(&key).await.unwrap();
        let report = verify_session(&ts.store, id, KeySource::Keyring(&ring))
            .await
            .unwrap();
        assert!(
            matches!(
                report.damage.as_slice(),
                [Damage::CommandsMissing { count: 2 }]
            ),
            "{}: {:?}",
            ts.name,
            report.damage
        );
        assert!(reader.commands().await.is_err(), "{}", ts.name);
    }
}

/// An observer that keeps the streams of the data events it is given.
struct Seen(Arc<std::sync::Mutex<Vec<Stream>>>, bool);

impl storage_schema::commands::CommandObserver for Seen {
    fn observe(&mut self, event: &storage_schema::Event) {
        if let EventKind::Data { stream, .. } = &event.kind {
            self.0.lock().unwrap().push(*stream);
        }
    }

    fn finish(self: Box<Self>) -> Vec<storage_schema::commands::CommandEntry> {
        Vec::new()
    }

    fn reads_output(&self) -> bool {
        self.1
    }
}

/// An observer that says output cannot change what it extracts is never given any (a copy
/// and a thread handoff saved per frame of bulk output); one that reads output gets all of
/// it. The recording keeps everything either way.
#[tokio::test]
async fn output_goes_to_the_observer_only_when_it_reads_output() {
    for reads_output in [false, true] {
        let store = Store::open("memory://").unwrap();
        let (ring, _dir) = common::keyring();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let observer = Box::new(Seen(seen.clone(), reads_output));
        let rec = Recorder::start_observed(
            store.clone(),
            &ring,
            common::meta(),
            FlushPolicy::default(),
            Some(observer),
        )
        .await
        .unwrap();
        for (stream, bytes) in [
            (Stream::Stdin, &b"ls\n"[..]),
            (Stream::Stdout, b"a b c\n"),
            (Stream::Stderr, b"warning\n"),
            (Stream::Stdin, b"exit\n"),
        ] {
            rec.record_data(stream, bytes).await.unwrap();
        }
        let id = rec.session();
        rec.finish(None).await.unwrap();
        let want: &[Stream] = if reads_output {
            &[Stream::Stdin, Stream::Stdout, Stream::Stderr, Stream::Stdin]
        } else {
            &[Stream::Stdin, Stream::Stdin]
        };
        assert_eq!(&seen.lock().unwrap()[..], want);
        let summary = summarize(&store, id).await.unwrap();
        assert_eq!(summary.state, "sealed");
    }
}
