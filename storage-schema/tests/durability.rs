//! What a store outage may cost a recording: nothing while the spool has room, a pause when
//! nothing can take the output, and an explicit, verifiable gap when the recorder gives up.
//! Also: a failed open leaves nothing behind, and a spool left by a dead process is replayed.

mod common;

use std::time::Duration;

use common::faulty::{Faulty, Mode};
use storage_schema::layout::StreamDir;
use storage_schema::store::{
    Durability, KeySource, OnStoreFailure, RecordError, Recorder, RecorderOptions, Replayed,
    SessionReader, Spool, Store, list_sessions, verify_session,
};
use storage_schema::{
    EventKind, ExitInfo, FlushPolicy, Gap, Keyring, SessionId, SessionState, Stream, layout,
};

const WITHIN: Duration = Duration::from_secs(20);

fn durability(spool: Option<Spool>) -> Durability {
    Durability {
        spool,
        spool_after: Duration::from_millis(50),
        store_timeout: Duration::from_secs(2),
        on_failure: OnStoreFailure::Pause,
        failure_timeout: Duration::from_secs(2),
        open_via_spool: false,
    }
}

fn quick_chunks() -> FlushPolicy {
    FlushPolicy {
        max_age: Duration::from_millis(100),
        ..FlushPolicy::default()
    }
}

async fn start(store: &Store, ring: &Keyring, durability: Durability) -> Recorder {
    Recorder::start_with(
        store.clone(),
        ring,
        common::meta(),
        RecorderOptions {
            flush: quick_chunks(),
            durability,
            observer: None,
        },
    )
    .await
    .unwrap()
}

/// Records a numbered line every `every` for `lines` lines; returns what was recorded.
async fn stream_lines(rec: &Recorder, from: usize, lines: usize, every: Duration) -> Vec<u8> {
    let mut shown = Vec::new();
    for i in from..from + lines {
        let line = format!("line {i:06}\n");
        shown.extend_from_slice(line.as_bytes());
        rec.record_data(Stream::Stdout, line.as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(every).await;
    }
    shown
}

async fn stdout_of(store: &Store, ring: &Keyring, id: SessionId) -> (Vec<u8>, Vec<Gap>) {
    let reader = SessionReader::open(store, ring, id).await.unwrap();
    let (mut out, mut gaps) = (Vec::new(), Vec::new());
    reader
        .for_each_event(|e| match &e.kind {
            EventKind::Data {
                stream: Stream::Stdout,
                bytes,
            } => out.extend_from_slice(bytes),
            EventKind::Gap { json } => gaps.push(Gap::parse(json).unwrap()),
            _ => {}
        })
        .await
        .unwrap();
    (out, gaps)
}

async fn wait_until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The spool costs nothing on the normal path: a healthy store takes every chunk within
/// `spool_after`, so nothing is ever written to the spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_store_never_touches_the_spool() {
    let faulty = Faulty::new();
    let store = faulty.store();
    let (ring, _k) = common::keyring();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 64 << 20).unwrap();
    let rec = start(&store, &ring, durability(Some(spool.clone()))).await;
    let shown = stream_lines(&rec, 0, 200, Duration::from_millis(2)).await;
    let id = rec.session();
    let lag = rec.lag();
    rec.finish(None).await.unwrap();
    assert_eq!(spool.stats().written_total, 0, "{:?}", spool.stats());
    assert_eq!(lag.spooled_total, 0);
    assert!(faulty.puts() > 4, "several chunks: {}", faulty.puts());
    assert_eq!(stdout_of(&store, &ring, id).await.0, shown);
}

/// Refused or hung, the store's outage costs nothing while the spool has room: the session is
/// never paused, its chunks are spooled, and replayed in order when the store returns; the
/// recording is complete (no gap) and its spool files are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_bridged_by_the_spool() {
    for mode in [Mode::Refuse, Mode::Hang] {
        let faulty = Faulty::new();
        let store = faulty.store();
        let (ring, _k) = common::keyring();
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 64 << 20).unwrap();
        let rec = start(&store, &ring, durability(Some(spool.clone()))).await;
        let id = rec.session();
        let mut shown = stream_lines(&rec, 0, 20, Duration::from_millis(5)).await;
        faulty.set(mode);
        let started = tokio::time::Instant::now();
        shown.extend(stream_lines(&rec, 20, 100, Duration::from_millis(10)).await);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "{mode:?}: 1 s of output took {took:?}: the session was held"
        );
        assert!(
            !rec.lag().paused && !rec.lag().failed,
            "{mode:?}: {:?}",
            rec.lag()
        );
        wait_until("chunks spooled", async || spool.stats().objects >= 3).await;
        faulty.set(Mode::Healthy);
        rec.finish(Some(ExitInfo {
            code: 0,
            message: String::new(),
        }))
        .await
        .unwrap();
        wait_until("spool drained", async || spool.stats().objects == 0).await;
        let report = verify_session(&store, id, KeySource::Keyring(&ring))
            .await
            .unwrap();
        assert!(
            report.complete(),
            "{mode:?}: {:?} {:?}",
            report.damage,
            report.gaps
        );
        assert!(matches!(report.state, SessionState::Sealed(_)));
        assert_eq!(stdout_of(&store, &ring, id).await.0, shown, "{mode:?}");
        assert!(spool.stats().written_total >= 3, "{mode:?}");
    }
}

/// With the store down and no room in the spool, the recorder holds its caller (the relay, and
/// so the terminal) instead of letting output through that it cannot keep; when the store
/// returns, it resumes and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nowhere_to_write_the_caller_is_paused_then_resumed() {
    let faulty = Faulty::new();
    let store = faulty.store();
    let (ring, _k) = common::keyring();
    let mut d = durability(None);
    d.failure_timeout = Duration::from_secs(60);
    let rec = start(&store, &ring, d).await;
    let id = rec.session();
    faulty.set(Mode::Refuse);
    let mut shown = Vec::new();
    // Lines go in until the recorder pauses; a paused `record_data` does not return.
    let mut paused_at = None;
    for i in 0..2000 {
        let line = format!("line {i:06}\n");
        let r = tokio::time::timeout(
            Duration::from_millis(500),
            rec.record_data(Stream::Stdout, line.as_bytes()),
        )
        .await;
        match r {
            Ok(Ok(())) => shown.extend_from_slice(line.as_bytes()),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => {
                paused_at = Some(i);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let paused_at = paused_at.expect("the recorder never paused its caller");
    assert!(rec.lag().paused, "{:?}", rec.lag());
    // Held output is bounded: about a flush interval plus 2 × spool_after of it.
    assert!(paused_at < 200, "paused only after {paused_at} lines");
    assert!(
        matches!(
            rec.try_record(EventKind::Resize { cols: 1, rows: 1 }),
            Err(RecordError::Backpressure)
        ),
        "try_record says so"
    );
    faulty.set(Mode::Healthy);
    let line = format!("line {paused_at:06}\n");
    tokio::time::timeout(WITHIN, rec.record_data(Stream::Stdout, line.as_bytes()))
        .await
        .expect("resumed")
        .unwrap();
    shown.extend_from_slice(line.as_bytes());
    rec.finish(None).await.unwrap();
    let report = verify_session(&store, id, KeySource::Keyring(&ring))
        .await
        .unwrap();
    assert!(report.complete(), "{:?} {:?}", report.damage, report.gaps);
    assert_eq!(stdout_of(&store, &ring, id).await.0, shown);
}

/// When nothing can take the output for `failure_timeout`, the recorder gives up: the caller
/// learns why, and the loss is declared — a gap event where it happened and in the signed
/// seal — in last words that the spool takes beyond its bound. Once the store is back, the
/// recording verifies intact but not complete, and holds everything but the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_declares_the_loss_as_a_gap() {
    let faulty = Faulty::new();
    let store = faulty.store();
    let (ring, _k) = common::keyring();
    let dir = tempfile::tempdir().unwrap();
    // Room for one small chunk, not more.
    let spool = Spool::open(dir.path(), 600).unwrap();
    let rec = start(&store, &ring, durability(Some(spool.clone()))).await;
    let id = rec.session();
    let before = stream_lines(&rec, 0, 30, Duration::from_millis(5)).await;
    wait_until("the first lines are in the store", async || {
        store
            .get_opt(&layout::chunk(id, 0))
            .await
            .unwrap()
            .is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    faulty.set(Mode::Hang);
    let mut during = Vec::new();
    let err = loop {
        let line = format!("line {:06}\n", 30 + during.len() / 12);
        match rec.record_data(Stream::Stdout, line.as_bytes()).await {
            Ok(()) => during.extend_from_slice(line.as_bytes()),
            Err(e) => break e,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(matches!(err, RecordError::StoreUnavailable { .. }), "{err}");
    tokio::time::timeout(WITHIN, rec.closed())
        .await
        .expect("closed() resolves once the recorder gave up");
    let cause = rec.failure().expect("a cause");
    assert!(cause.contains("spool"), "{cause}");
    // The session's end is still taken.
    rec.record(EventKind::Marker {
        text: "ended: store unavailable".into(),
    })
    .await
    .unwrap();
    let seal = rec
        .finish(Some(ExitInfo {
            code: 1,
            message: "store unavailable".into(),
        }))
        .await
        .expect("the last words are durable in the spool");
    assert_eq!(seal.gaps.len(), 2, "{:?}", seal.gaps);
    let lost = &seal.gaps[0];
    assert!(lost.chunks.is_some(), "{lost:?}");
    assert!(lost.bytes.stdout > 0 && lost.events > 0, "{lost:?}");
    let refused = &seal.gaps[1];
    assert!(
        refused.chunks.is_none() && refused.bytes.stdout > 0,
        "the line refused: {refused:?}"
    );
    assert!(
        spool.stats().bytes > 600,
        "last words exceed the bound: {:?}",
        spool.stats()
    );

    // The store returns; the recorder (still alive) replays its spool.
    faulty.set(Mode::Healthy);
    wait_until("spool drained", async || spool.stats().objects == 0).await;
    let report = verify_session(&store, id, KeySource::Keyring(&ring))
        .await
        .unwrap();
    assert!(
        report.intact(),
        "a declared gap is not damage: {:?}",
        report.damage
    );
    assert!(!report.complete(), "but the recording is not complete");
    assert_eq!(report.gaps, seal.gaps);
    assert!(matches!(report.state, SessionState::Sealed(_)));
    // The same verdict with only the public key: the seal declares the gap.
    let public = ring.current_signing_key().unwrap().public();
    let keyless = verify_session(&store, id, KeySource::PublicKey(&public))
        .await
        .unwrap();
    assert!(keyless.intact(), "{:?}", keyless.damage);
    assert_eq!(keyless.gaps, seal.gaps);
    // Readers step over the lost chunks and meet the gap events.
    let (out, gaps) = stdout_of(&store, &ring, id).await;
    assert_eq!(gaps, seal.gaps);
    assert!(out.starts_with(&before), "what was durable is all there");
    let recorded_during = out.len() - before.len();
    assert_eq!(
        recorded_during as u64 + lost.bytes.stdout,
        during.len() as u64,
        "every line shown is either recorded or declared lost"
    );
    // Seal counts leave the gap out, and the deep check agrees with them.
    assert_eq!(seal.bytes.stdout, out.len() as u64);
}

/// `end`: with a failing store and no spool, the recorder gives up as soon as output cannot be
/// kept, without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_policy_gives_up_at_once() {
    let faulty = Faulty::new();
    let store = faulty.store();
    let (ring, _k) = common::keyring();
    let mut d = durability(None);
    d.on_failure = OnStoreFailure::End;
    d.failure_timeout = Duration::from_secs(600);
    let rec = start(&store, &ring, d).await;
    faulty.set(Mode::Refuse);
    let started = tokio::time::Instant::now();
    let err = loop {
        if let Err(e) = rec.record_data(Stream::Stdout, b"output\n").await {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(matches!(err, RecordError::StoreUnavailable { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A session whose key and metadata cannot both be written leaves nothing in the store: the
/// key is written first (so a metadata object always has its key) and deleted when the
/// metadata fails. An object that is not the session's own (a name conflict) is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_open_leaves_no_debris() {
    let faulty = Faulty::new();
    let store = faulty.store();
    let (ring, _k) = common::keyring();
    faulty.only_puts_to("meta.json");
    faulty.set(Mode::Refuse);
    let err = Recorder::start(store.clone(), &ring, common::meta(), FlushPolicy::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RecordError::Store(_)), "{err}");
    wait_until("no session left behind", async || {
        list_sessions(&store).await.unwrap().is_empty()
            && store.list("sessions").await.unwrap().is_empty()
    })
    .await;

    // A hung metadata put: the open fails in bounded time, and nothing is left either.
    faulty.set(Mode::Hang);
    let started = tokio::time::Instant::now();
    let mut d = durability(None);
    d.store_timeout = Duration::from_millis(300);
    let err = Recorder::start_with(
        store.clone(),
        &ring,
        common::meta(),
        RecorderOptions {
            durability: d,
            ..RecorderOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, RecordError::Store(_)), "{err}");
    wait_until("no session left behind", async || {
        store.list("sessions").await.unwrap().is_empty()
    })
    .await;

    // Someone else's metadata under this session's name: the open fails, theirs stays.
    faulty.set(Mode::Healthy);
    let meta = common::meta();
    let id = meta.session;
    store.put_create(&layout::meta(id), "theirs").await.unwrap();
    let err = Recorder::start(store.clone(), &ring, meta, FlushPolicy::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RecordError::Conflict { .. }), "{err}");
    wait_until("our key deleted", async || {
        store.get_opt(&layout::dek(id)).await.unwrap().is_none()
    })
    .await;
    assert_eq!(&store.get(&layout::meta(id)).await.unwrap()[..], b"theirs");
}

/// An audit stream may open with its key and metadata only in the spool; they reach the store,
/// key first, when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_stream_opens_into_the_spool() {
    let faulty = Faulty::new();
    let store = faulty.store();
    let (ring, _k) = common::keyring();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 64 << 20).unwrap();
    faulty.set(Mode::Hang);
    let mut d = durability(Some(spool.clone()));
    d.open_via_spool = true;
    let rec = tokio::time::timeout(WITHIN, start(&store, &ring, d))
        .await
        .expect("opened through the spool");
    let id = rec.session();
    rec.record(EventKind::Audit { json: "{}".into() })
        .await
        .unwrap();
    let spooled = spool.session_keys(StreamDir::session(id));
    assert_eq!(spooled[..2], [layout::dek(id), layout::meta(id)]);
    faulty.set(Mode::Healthy);
    rec.finish(None).await.unwrap();
    wait_until("spool drained", async || spool.stats().objects == 0).await;
    let report = verify_session(&store, id, KeySource::Keyring(&ring))
        .await
        .unwrap();
    assert!(report.complete(), "{:?}", report.damage);
}

/// A process that dies with chunks in its spool: the next one to open the spool finds the
/// session, uploads it in order when the store answers, and seals it as interrupted.
#[test]
fn a_dead_processs_spool_is_replayed_and_sealed_by_the_next() {
    let faulty = Faulty::new();
    let store = faulty.store();
    let (ring, _k) = common::keyring();
    let dir = tempfile::tempdir().unwrap();
    let (id, shown) = {
        // The first "process": its runtime is dropped mid-session, as a SIGKILL would.
        let rt = tokio::runtime::Runtime::new().unwrap();
        let out = rt.block_on(async {
            let spool = Spool::open(dir.path(), 64 << 20).unwrap();
            let rec = start(&store, &ring, durability(Some(spool.clone()))).await;
            let id = rec.session();
            faulty.set(Mode::Refuse);
            let shown = stream_lines(&rec, 0, 50, Duration::from_millis(5)).await;
            // Everything flushed and spooled before the "kill".
            wait_until("spooled", async || {
                rec.lag().undurable_chunks == 0 && spool.stats().objects >= 3
            })
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            (id, shown, rec)
        });
        let (id, shown, rec) = out;
        std::mem::forget(rec);
        drop(rt);
        (id, shown)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let spool = Spool::open(dir.path(), 64 << 20).unwrap();
        assert_eq!(spool.leftovers(), &[StreamDir::session(id)]);
        faulty.set(Mode::Healthy);
        let replayed = spool
            .replay_leftovers(&store, &ring, Duration::from_secs(2))
            .await;
        assert_eq!(replayed, vec![(id, Replayed::SealedInterrupted)]);
        assert_eq!(spool.stats().objects, 0);
        let report = verify_session(&store, id, KeySource::Keyring(&ring))
            .await
            .unwrap();
        assert!(report.complete(), "{:?}", report.damage);
        assert!(matches!(report.state, SessionState::Interrupted(_)));
        assert_eq!(stdout_of(&store, &ring, id).await.0, shown);
    });
}

/// A gateway cut off from the store may have its session sealed meanwhile by another (a lease
/// completer). Back in contact, it does not append its spooled chunks after that seal: they
/// are kept in the spool's `stranded/`, the recorder stops saying why, and the stored
/// recording still verifies. The same holds for a spool replayed after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_appended_after_a_seal_written_elsewhere() {
    let faulty = Faulty::new();
    let store = faulty.store();
    let (ring, _k) = common::keyring();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 64 << 20).unwrap();
    let rec = start(&store, &ring, durability(Some(spool.clone()))).await;
    let id = rec.session();
    stream_lines(&rec, 0, 10, Duration::from_millis(5)).await;
    wait_until("chunk 0 stored", async || {
        store
            .get_opt(&layout::chunk(id, 0))
            .await
            .unwrap()
            .is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    faulty.set(Mode::Refuse);
    stream_lines(&rec, 10, 30, Duration::from_millis(10)).await;
    wait_until("spooled", async || spool.stats().objects >= 1).await;
    // Another gateway seals the session as interrupted, from what the store holds.
    let sealed = storage_schema::store::seal_interrupted(&faulty.backdoor(), &ring, id)
        .await
        .unwrap();
    faulty.set(Mode::Healthy);
    tokio::time::timeout(WITHIN, rec.closed())
        .await
        .expect("the recorder stops");
    assert!(
        rec.failure().unwrap().contains("sealed by another gateway"),
        "{:?}",
        rec.failure()
    );
    let chunks = store.list(&layout::chunks_dir(id)).await.unwrap();
    assert_eq!(chunks.len() as u64, sealed.chunks, "nothing after the seal");
    let report = verify_session(&store, id, KeySource::Keyring(&ring))
        .await
        .unwrap();
    assert!(report.complete(), "{:?}", report.damage);
    assert!(
        std::fs::read_dir(spool.stranded_dir().join(layout::chunks_dir(id)))
            .unwrap()
            .count()
            >= 1,
        "the spooled chunks are kept"
    );
    drop(rec);

    // A spool replayed after a restart: the same.
    let faulty = Faulty::new();
    let store = faulty.store();
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let spool = Spool::open(dir.path(), 64 << 20).unwrap();
        let rec = start(&store, &ring, durability(Some(spool.clone()))).await;
        faulty.set(Mode::Refuse);
        stream_lines(&rec, 0, 20, Duration::from_millis(10)).await;
        wait_until("spooled", async || spool.stats().objects >= 1).await;
        let id = rec.session();
        std::mem::forget(rec);
        id
    };
    // (The recorder above still runs; a new spool on another directory stands for the next
    // process, holding a copy of what the first one spooled.)
    let next = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), next.path());
    std::fs::remove_file(next.path().join("slot-0/LOCK")).unwrap();
    let spool = Spool::open(next.path(), 64 << 20).unwrap();
    assert_eq!(spool.leftovers(), &[StreamDir::session(id)]);
    storage_schema::store::seal_interrupted(&faulty.backdoor(), &ring, id)
        .await
        .unwrap();
    faulty.set(Mode::Healthy);
    let replayed = spool
        .replay_leftovers(&store, &ring, Duration::from_secs(2))
        .await;
    assert!(
        matches!(replayed[0].1, Replayed::Stranded(_)),
        "{replayed:?}"
    );
    let report = verify_session(&faulty.backdoor(), id, KeySource::Keyring(&ring))
        .await
        .unwrap();
    assert!(report.complete(), "{:?}", report.damage);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// A lag probe (what the gateway's `kubetape_recording_lag_seconds` reads) reports the age of
/// output that is not durable as of the moment it is read, also while the recorder waits on a
/// hung store, and zero once that output is in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lag_probe_reads_the_age_of_output_a_hung_store_holds() {
    let faulty = Faulty::new();
    let store = faulty.store();
    let (ring, _k) = common::keyring();
    // The hung put times out after a second; the probe is read well before that.
    let rec = start(
        &store,
        &ring,
        Durability {
            failure_timeout: Duration::from_secs(30),
            store_timeout: Duration::from_secs(1),
            ..durability(None)
        },
    )
    .await;
    let probe = rec.lag_probe();
    stream_lines(&rec, 0, 5, Duration::from_millis(5)).await;
    wait_until("the first lines are durable", async || {
        probe.lag().oldest_us == 0 && probe.lag().undurable_chunks == 0
    })
    .await;
    faulty.set(Mode::Hang);
    rec.record_data(Stream::Stdout, b"held by a hung store\n")
        .await
        .unwrap();
    wait_until("the probe sees the held chunk age", async || {
        probe.lag().oldest_us >= 300_000
    })
    .await;
    // Read twice: the age is the probe's now, not the recorder task's last look.
    let first = probe.lag().oldest_us;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = probe.lag().oldest_us;
    assert!(second >= first + 150_000, "{first} then {second}");
    assert_eq!(probe.lag().undurable_chunks, 1, "{:?}", probe.lag());
    faulty.set(Mode::Healthy);
    // The hung put is retried once it times out; then nothing is held.
    rec.finish(None).await.unwrap();
    assert_eq!(probe.lag().oldest_us, 0, "{:?}", probe.lag());
}
