//! Retention inside running gateways: two in-process gateways sharing one store, both with
//! `[retention] enabled`, delete every expired session exactly once between them, never run
//! two passes at once, and each deletion is an audit record in the audit stream of the gateway
//! that made it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gateway::retention::RetentionConfig;
use gateway::retention::rules::Rule;
use storage_schema::store::ledger::name_at;
use storage_schema::store::retention::passes;
use storage_schema::store::{Recorder, SessionReader, Store, list_audit_streams, list_sessions};
use storage_schema::{
    AuditRecord, EventKind, ExitInfo, FlushPolicy, Identity, Keyring, SessionId, SessionKind,
    SessionMeta, Stream, Target,
};
use test_support::gateway::TestGateway;

const DAY_US: u64 = 86_400 * 1_000_000;

fn retention() -> RetentionConfig {
    RetentionConfig {
        enabled: true,
        interval_secs: 1,
        lease_ttl_secs: 60,
        rules: vec![Rule {
            name: "one-day".into(),
            keep_days: 1,
            clusters: vec![],
            namespaces: vec![],
            kinds: vec!["shell".into()],
            users: vec![],
            groups: vec![],
        }],
    }
}

/// A sealed exec session that started `age_us` ago (its id says so too).
async fn backdated(store: &Store, keyring: &Keyring, age_us: u64) -> SessionId {
    let mut meta = SessionMeta::new(
        SessionKind::Exec,
        Identity {
            user: "alice".into(),
            ..Identity::default()
        },
        Target {
            namespace: Some("dev".into()),
            pod: Some("web-0".into()),
            ..Target::default()
        },
        vec!["sh".into()],
        true,
    );
    meta.started_at_us -= age_us;
    let rest: [u8; 10] = SessionId::new().as_bytes()[6..].try_into().unwrap();
    meta.session = name_at(meta.started_at_us, rest).parse().unwrap();
    let rec = Recorder::start(store.clone(), keyring, meta, FlushPolicy::default())
        .await
        .unwrap();
    rec.record(EventKind::Data {
        stream: Stream::Stdout,
        bytes: b"hello\r\n".to_vec(),
    })
    .await
    .unwrap();
    let id = rec.session();
    rec.finish(Some(ExitInfo {
        code: 0,
        message: String::new(),
    }))
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_sharing_a_store_delete_each_expired_session_once() {
    let a = TestGateway::builder()
        .configure(|c| c.retention = retention())
        .start()
        .await;
    let (url, keys) = (a.files().store_url.clone(), a.files().keys.clone());
    let b = TestGateway::builder()
        .configure(move |c| {
            c.recording.store = Some(url);
            c.recording.keys = Some(keys);
            c.retention = retention();
        })
        .start()
        .await;
    let (store, keyring) = (a.store(), a.keyring());
    let mut expired = Vec::new();
    for _ in 0..5 {
        expired.push(backdated(&store, &keyring, 3 * DAY_US).await);
    }
    let young = backdated(&store, &keyring, DAY_US / 4).await;

    // Passes run every second in both; wait (with a deadline) for the expired ones to go.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = list_sessions(&store).await.unwrap();
        if expired.iter().all(|id| !left.contains(id)) {
            assert!(left.contains(&young), "a young session was deleted");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired sessions still there: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let a few more passes run (they find nothing), then stop `b` (its audit stream is
    // sealed). `a` keeps running: the store lives in its directory; its audit stream is read
    // open (records reach the store within a flush interval).
    let seen = passes(&store).await.unwrap().0.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while passes(&store).await.unwrap().0.len() < seen + 2 {
        assert!(Instant::now() < deadline, "no further passes ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.shutdown().await.unwrap();

    // Every expired session deleted by exactly one pass; passes never overlapped in time.
    let (all, bad) = passes(&store).await.unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    let mut deleted: BTreeMap<SessionId, usize> = BTreeMap::new();
    let mut spans = Vec::new();
    let mut runners = std::collections::BTreeSet::new();
    for (plan, result) in all.values() {
        let (Some(plan), Some(result)) = (plan, result) else {
            continue;
        };
        runners.insert(plan.runner.clone());
        spans.push((plan.planned_at_us, result.finished_at_us));
        for d in &result.deleted {
            *deleted.entry(d.session).or_default() += 1;
        }
    }
    let want: BTreeMap<SessionId, usize> = expired.iter().map(|id| (*id, 1)).collect();
    assert_eq!(deleted, want);
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "two passes overlapped: {w:?}");
    }

    // Each deletion is one `retention` audit record, in the stream of the gateway that made it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let audited = retention_records(&store, &keyring, &runners).await;
        if audited == want || Instant::now() > deadline {
            assert_eq!(audited, want);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.shutdown().await.unwrap();
}

/// Sessions named by `retention` audit records (allowed: deletions), how many records each.
async fn retention_records(
    store: &Store,
    keyring: &Keyring,
    runners: &std::collections::BTreeSet<String>,
) -> BTreeMap<SessionId, usize> {
    let mut audited: BTreeMap<SessionId, usize> = BTreeMap::new();
    for dir in list_audit_streams(store).await.unwrap().streams {
        let reader = SessionReader::open_at(store, keyring, dir).await.unwrap();
        let mut records = Vec::new();
        reader
            .for_each_event(|e| {
                if let EventKind::Audit { json } = &e.kind {
                    records.push(serde_json::from_str::<AuditRecord>(json).unwrap());
                }
            })
            .await
            .unwrap();
        for r in records.into_iter().filter(|r| r.verb == "retention") {
            assert!(runners.contains(&r.gateway), "{} ran no pass", r.gateway);
            assert_eq!(r.rule.as_deref(), Some("retention:one-day"));
            *audited.entry(r.session.unwrap()).or_default() += 1;
        }
    }
    audited
}
