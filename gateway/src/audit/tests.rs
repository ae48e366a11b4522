//! The audit log's sinks, its fail-closed durability (journal, group commit) and its gaps.

use std::time::Instant;

use super::*;
use storage_schema::layout::{StreamDir, StreamRoot};
use storage_schema::store::{
    KeySource, SessionReader, list_audit_streams, list_sessions, verify_session,
};

fn record(n: u16) -> AuditRecord {
    AuditRecord {
        time_us: u64::from(n),
        gateway: "g".into(),
        user: Some("alice".into()),
        groups: vec![],
        issuer: None,
        claims: Default::default(),
        client: "127.0.0.1:1".into(),
        user_agent: None,
        method: "GET".into(),
        path: "/api/v1/pods".into(),
        verb: "list".into(),
        api_group: Some(String::new()),
        resource: Some("pods".into()),
        subresource: None,
        namespace: None,
        name: None,
        decision: AuditDecision::Allow,
        rule: None,
        reason: None,
        status: n,
        latency_ms: 1.0,
        session: None,
        grant: None,
        extra: Default::default(),
    }
}

fn quiet() -> AuditConfig {
    AuditConfig {
        stdout: false,
        instance: Some("gw-1".into()),
        ..AuditConfig::default()
    }
}

fn with_spool(dir: &std::path::Path) -> (Spool, Durability) {
    let spool = Spool::open(dir, 64 << 20).unwrap();
    let durability = Durability {
        spool: Some(spool.clone()),
        spool_after: Duration::from_millis(50),
        store_timeout: Duration::from_secs(2),
        failure_timeout: Duration::from_secs(5),
        ..Durability::default()
    };
    (spool, durability)
}

/// Every event of every audit stream in the store: (statuses of the records, gaps).
async fn read_all(store: &Store, ring: &Keyring) -> (Vec<u16>, Vec<Gap>) {
    let (mut statuses, mut gaps) = (Vec::new(), Vec::new());
    let mut ids: Vec<_> = list_audit_streams(store)
        .await
        .unwrap()
        .streams
        .iter()
        .map(StreamDir::id)
        .collect();
    ids.sort();
    for id in ids {
        let report = verify_session(store, id, KeySource::Keyring(ring))
            .await
            .unwrap();
        assert!(report.intact(), "{:?}", report.damage);
        let reader = SessionReader::open(store, ring, id).await.unwrap();
        assert_eq!(reader.meta().kind, SessionKind::Audit);
        reader
            .for_each_event(|e| match &e.kind {
                EventKind::Audit { json } => {
                    statuses.push(serde_json::from_str::<AuditRecord>(json).unwrap().status)
                }
                EventKind::Gap { json } => gaps.push(Gap::parse(json).unwrap()),
                _ => {}
            })
            .await
            .unwrap();
    }
    (statuses, gaps)
}

/// A file store whose root can be swapped for a regular file (every request then fails) and
/// back: a store outage in a test.
struct Breakable {
    root: std::path::PathBuf,
    store: Store,
}

impl Breakable {
    fn new(dir: &std::path::Path) -> Self {
        let root = dir.join("store");
        let store = Store::open(&format!("file://{}", root.display())).unwrap();
        Self { root, store }
    }

    fn break_it(&self) {
        std::fs::rename(&self.root, self.root.with_extension("away")).unwrap();
        std::fs::write(&self.root, "x").unwrap();
    }

    fn mend(&self) {
        std::fs::remove_file(&self.root).unwrap();
        std::fs::rename(self.root.with_extension("away"), &self.root).unwrap();
    }
}

#[tokio::test]
async fn records_land_in_a_sealed_verified_audit_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, _) = Keyring::open_or_init(&dir.path().join("keys")).unwrap();
    let store = Store::open("memory://").unwrap();
    let log = AuditLog::start(
        &quiet(),
        store.clone(),
        Keyring::open(&dir.path().join("keys")).unwrap(),
        FlushPolicy::default(),
        "c".into(),
        Durability::default(),
    );
    for n in 200..203 {
        log.emit(&record(n)).await.unwrap();
    }
    log.shutdown(Duration::from_secs(10)).await;
    assert!(
        list_sessions(&store).await.unwrap().is_empty(),
        "an audit stream is not a session"
    );
    let streams = list_audit_streams(&store).await.unwrap().streams;
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].root(), StreamRoot::Audit);
    let ids: Vec<_> = streams.iter().map(StreamDir::id).collect();
    let report = verify_session(&store, ids[0], KeySource::Keyring(&ring))
        .await
        .unwrap();
    assert!(report.complete(), "{:?}", report.damage);
    assert!(matches!(
        report.state,
        storage_schema::SessionState::Sealed(_)
    ));
    let reader = SessionReader::open(&store, &ring, ids[0]).await.unwrap();
    assert_eq!(reader.meta().target.host.as_deref(), Some("gw-1"));
    assert_eq!(read_all(&store, &ring).await, (vec![200, 201, 202], vec![]));
}

/// Without a spool, fail closed means "in the store": a broken store refuses the request (and
/// every next one), while a log that is not fail-closed keeps serving.
#[tokio::test]
async fn an_unwritable_store_makes_a_fail_closed_log_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, _) = Keyring::open_or_init(&dir.path().join("keys")).unwrap();
    let store = Breakable::new(dir.path());
    store.break_it();
    let failing = Durability {
        store_timeout: Duration::from_secs(1),
        ..Durability::default()
    };
    let log = AuditLog::start(
        &AuditConfig {
            fail_closed: true,
            ..quiet()
        },
        store.store.clone(),
        ring,
        FlushPolicy::default(),
        "c".into(),
        failing.clone(),
    );
    let open_log = AuditLog::start(
        &quiet(),
        store.store.clone(),
        Keyring::open(&dir.path().join("keys")).unwrap(),
        FlushPolicy::default(),
        "c".into(),
        failing,
    );
    assert!(!log.refusing(), "healthy until a write fails");
    let refused = log.emit(&record(1)).await.unwrap_err();
    assert!(
        refused.to_string().contains("audit.fail_closed"),
        "{refused}"
    );
    assert_eq!(refused.response().status(), 503);
    assert!(log.refusing());
    open_log.emit(&record(1)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while open_log.healthy.load(Ordering::Acquire) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never noticed the store failing"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!open_log.refusing(), "fail_closed = false keeps serving");
}

/// Fail closed with a spool: a store outage refuses nothing — each record is in the fsynced
/// journal before its request is answered — and once the store is back every answered record is
/// in a verified audit stream, and the journal is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_records_survive_a_store_outage_through_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, _) = Keyring::open_or_init(&dir.path().join("keys")).unwrap();
    let store = Breakable::new(dir.path());
    let (spool, durability) = with_spool(&dir.path().join("spool"));
    let log = AuditLog::start(
        &AuditConfig {
            fail_closed: true,
            ..quiet()
        },
        store.store.clone(),
        Keyring::open(&dir.path().join("keys")).unwrap(),
        FlushPolicy::default(),
        "c".into(),
        durability,
    );
    log.emit(&record(100)).await.unwrap();
    store.break_it();
    for n in 101..150 {
        log.emit(&record(n)).await.expect("durable in the journal");
        assert!(!log.refusing());
    }
    assert!(
        std::fs::read_dir(spool.journal_dir()).unwrap().count() > 0,
        "journaled"
    );
    store.mend();
    log.shutdown(Duration::from_secs(20)).await;
    // The sealed stream went to the store (or the spool, replayed by its recorder).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while spool.stats().objects > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            spool.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (statuses, gaps) = read_all(&store.store, &ring).await;
    assert_eq!(statuses, (100..150).collect::<Vec<_>>());
    assert!(gaps.is_empty());
    assert_eq!(std::fs::read_dir(spool.journal_dir()).unwrap().count(), 0);
    assert_eq!(log.stats().refused_total.load(Ordering::Relaxed), 0);
}

/// The cost of fail closed: each request waits for one fsync of the journal, shared by every
/// request waiting at the same time (group commit). Prints the latency of `emit` (p50/p99) for
/// 1 and 64 concurrent emitters, fail closed and not, on this machine's disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_latency() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = Keyring::open_or_init(&dir.path().join("keys")).unwrap();
    for fail_closed in [false, true] {
        for concurrency in [1usize, 64] {
            let (_spool, durability) = with_spool(
                &dir.path()
                    .join(format!("spool-{fail_closed}-{concurrency}")),
            );
            let log = AuditLog::start(
                &AuditConfig {
                    fail_closed,
                    ..quiet()
                },
                Store::open("memory://").unwrap(),
                Keyring::open(&dir.path().join("keys")).unwrap(),
                FlushPolicy::default(),
                "c".into(),
                durability,
            );
            let per_task = 2000 / concurrency;
            let tasks: Vec<_> = (0..concurrency)
                .map(|_| {
                    let log = log.clone();
                    tokio::spawn(async move {
                        let mut lat = Vec::with_capacity(per_task);
                        for n in 0..per_task {
                            let t = Instant::now();
                            log.emit(&record(n as u16)).await.unwrap();
                            lat.push(t.elapsed());
                        }
                        lat
                    })
                })
                .collect();
            let started = Instant::now();
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await.unwrap());
            }
            let took = started.elapsed();
            lat.sort();
            let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
            let commits = log.stats().commits_total.load(Ordering::Relaxed);
            let records = log.stats().committed_records_total.load(Ordering::Relaxed);
            eprintln!(
                "audit emit, fail_closed={fail_closed}, {concurrency:>2} concurrent: p50 {:?} p99 {:?}, {:.0} records/s, {} records in {} commits",
                q(0.5),
                q(0.99),
                lat.len() as f64 / took.as_secs_f64(),
                records,
                commits
            );
            if fail_closed {
                assert_eq!(records, lat.len() as u64, "every record was journaled");
                if concurrency > 1 {
                    assert!(
                        commits < records / 4,
                        "grouped: {commits} commits for {records}"
                    );
                }
            } else {
                assert_eq!(commits, 0);
            }
            log.shutdown(Duration::from_secs(20)).await;
        }
    }
}

/// By default, records that cannot be queued are dropped — and the drop is recorded: a gap in
/// the audit stream says how many, and the counts add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_records_are_recorded_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, _) = Keyring::open_or_init(&dir.path().join("keys")).unwrap();
    let store = Store::open("memory://").unwrap();
    let log = AuditLog::start(
        &AuditConfig {
            queue: 1,
            ..quiet()
        },
        store.clone(),
        Keyring::open(&dir.path().join("keys")).unwrap(),
        FlushPolicy::default(),
        "c".into(),
        Durability::default(),
    );
    for n in 0..500 {
        log.emit(&record(n)).await.unwrap();
    }
    // Later records, after a pause, go in: the writer has caught up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    log.emit(&record(999)).await.unwrap();
    log.shutdown(Duration::from_secs(20)).await;
    let lost = log.stats().lost_total.load(Ordering::Relaxed)
        + log.lost.lock().unwrap().count
        + log.dropped.load(Ordering::Relaxed);
    assert!(lost > 0, "a queue of 1 dropped nothing out of 500");
    let (statuses, gaps) = read_all(&store, &ring).await;
    assert_eq!(statuses.last(), Some(&999));
    let declared: u64 = gaps.iter().map(|g| g.events).sum();
    assert_eq!(declared, log.dropped.load(Ordering::Relaxed), "{gaps:?}");
    assert_eq!(
        statuses.len() as u64 + declared,
        501,
        "recorded + declared lost = emitted"
    );
    assert!(
        gaps[0].cause.contains("audit records dropped"),
        "{:?}",
        gaps[0]
    );
}

/// A journal a dead gateway left in the spool (records answered but not in its stream) is
/// written again into the next gateway's stream, and then deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_gateways_journal_is_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, _) = Keyring::open_or_init(&dir.path().join("keys")).unwrap();
    let store = Store::open("memory://").unwrap();
    {
        let spool = Spool::open(&dir.path().join("spool"), 64 << 20).unwrap();
        let mut journal = Journal::new(&spool, SessionId::new());
        let lines: Vec<String> = (7..10)
            .map(|n| serde_json::to_string(&record(n)).unwrap())
            .collect();
        journal.append(&lines).unwrap();
        // The process dies here: its spool slot is unlocked with the journal in it.
    }
    let (spool, durability) = with_spool(&dir.path().join("spool"));
    let log = AuditLog::start(
        &AuditConfig {
            fail_closed: true,
            ..quiet()
        },
        store.clone(),
        Keyring::open(&dir.path().join("keys")).unwrap(),
        FlushPolicy::default(),
        "c".into(),
        durability,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        log.emit(&record(1)).await.unwrap();
        let journals: Vec<_> = std::fs::read_dir(spool.journal_dir()).unwrap().collect();
        // The old journal is gone once its records are in the new one.
        if journals.len() <= 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log.shutdown(Duration::from_secs(20)).await;
    let (statuses, _) = read_all(&store, &ring).await;
    for n in 7..10 {
        assert!(statuses.contains(&n), "record {n} recovered: {statuses:?}");
    }
}
