//! Crypto-shredding, re-wrapping, holds and deleting streams whole, on every store kind (S3
//! when a moto server is configured: `scripts/lib/moto.sh cargo test -p storage-schema --test
//! compliance`).

mod common;

use common::{all_stores, keyring, output_events, record, small_chunks};
use storage_schema::layout::{self, StreamDir};
use storage_schema::store::holds::{self, Selector};
use storage_schema::store::shred::{self, Rewrapped, ShredError, Shredded};
use storage_schema::store::{
    KeySource, ReadError, SessionReader, VerifyError, retention, verify_session,
};
use storage_schema::{Keyring, SessionState};

#[tokio::test]
async fn a_shredded_session_cannot_be_read_but_still_verifies_with_the_public_key() {
    for t in all_stores() {
        let (ring, _keys) = keyring();
        let store = &t.store;
        let id = record(store, &ring, &output_events(50, 300), small_chunks(), true).await;
        let kept = record(store, &ring, &output_events(5, 10), small_chunks(), true).await;

        let done = shred::shred(store, id, "cli:tester", "GDPR erasure request 42")
            .await
            .unwrap();
        let Shredded::Now(record) = done else {
            panic!("{}: first shred must write the record: {done:?}", t.name)
        };
        assert!(!store.exists(&layout::dek(id)).await.unwrap(), "{}", t.name);
        // A second shred finds the record and changes nothing.
        assert!(matches!(
            shred::shred(store, id, "cli:other", "again").await.unwrap(),
            Shredded::Already(r) if r == record
        ));

        let err = SessionReader::open(store, &ring, id).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ReadError::Open(VerifyError::Shredded(..))),
            "{}: {text}",
            t.name
        );
        assert!(
            text.contains("shredded on ") && text.contains("because GDPR erasure request 42"),
            "{}: {text}",
            t.name
        );

        // The auditor's view: chain, signatures and seal, without content.
        let public = ring.current_signing_key().unwrap().public();
        let report = verify_session(store, id, KeySource::PublicKey(&public))
            .await
            .unwrap();
        assert!(report.intact(), "{}: {:?}", t.name, report.damage);
        assert!(matches!(report.state, SessionState::Sealed(_)));
        // With the keyring too (verify --all): intact, content not checked.
        let deep = verify_session(store, id, KeySource::Keyring(&ring))
            .await
            .unwrap();
        assert!(deep.intact() && deep.totals.is_none(), "{}", t.name);
        // Others are untouched.
        assert!(SessionReader::open(store, &ring, kept).await.is_ok());
        let (all, bad) = shred::all(store).await.unwrap();
        assert!(bad.is_empty());
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), [id]);
    }
}

#[tokio::test]
async fn a_held_session_is_not_shredded_until_the_hold_is_lifted() {
    for t in all_stores() {
        let (ring, _keys) = keyring();
        let store = &t.store;
        let id = record(store, &ring, &output_events(3, 10), small_chunks(), true).await;
        let hold = holds::place(
            store,
            "CASE-7",
            "litigation",
            "cli:legal",
            Selector {
                users: vec!["alice@example.com".into()],
                ..Selector::default()
            },
        )
        .await
        .unwrap();
        let err = shred::shred(store, id, "cli:t", "erasure")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ShredError::Held { hold, .. } if hold.contains("CASE-7")),
            "{}: {err}",
            t.name
        );
        assert!(store.exists(&layout::dek(id)).await.unwrap());
        holds::lift(store, &hold.id, "case closed", "cli:legal")
            .await
            .unwrap();
        assert!(shred::shred(store, id, "cli:t", "erasure").await.is_ok());
    }
}

#[tokio::test]
async fn a_shred_record_forbids_reading_even_with_a_data_key_left() {
    // A shred interrupted between its record and its deletes (or a store that refused them).
    let t = common::file();
    let (ring, _keys) = keyring();
    let id = record(&t.store, &ring, &output_events(3, 10), small_chunks(), true).await;
    let record = shred::ShredRecord {
        session: id,
        by: "cli:t".into(),
        reason: "court order".into(),
        at_us: 1,
        keks: vec![],
    };
    shred::ledger(&t.store)
        .append(&layout::shredded(id), &record)
        .await
        .unwrap();
    assert!(t.store.exists(&layout::dek(id)).await.unwrap());
    let err = SessionReader::open(&t.store, &ring, id).await.unwrap_err();
    assert!(err.to_string().contains("because court order"), "{err}");
    // Shredding again finishes the job.
    assert!(matches!(
        shred::shred(&t.store, id, "cli:t", "again").await.unwrap(),
        Shredded::Already(r) if r == record
    ));
    assert!(!t.store.exists(&layout::dek(id)).await.unwrap());
}

#[tokio::test]
async fn an_open_session_is_not_shredded() {
    let t = common::file();
    let (ring, _keys) = keyring();
    let id = record(
        &t.store,
        &ring,
        &output_events(3, 10),
        small_chunks(),
        false,
    )
    .await;
    assert!(matches!(
        shred::shred(&t.store, id, "cli:t", "x").await,
        Err(ShredError::Open(_))
    ));
    assert!(matches!(
        shred::shred(&t.store, id, "cli:t", " ").await,
        Err(ShredError::NoReason)
    ));
}

#[tokio::test]
async fn rewrapped_sessions_read_after_the_old_kek_is_destroyed() {
    for t in all_stores() {
        let (mut ring, keys) = keyring();
        let store = &t.store;
        let old_kek = ring.current_kek().unwrap().id().to_string();
        let ids = [
            record(store, &ring, &output_events(20, 100), small_chunks(), true).await,
            record(store, &ring, &output_events(2, 10), small_chunks(), true).await,
        ];
        let shredded = record(store, &ring, &output_events(2, 10), small_chunks(), true).await;
        shred::shred(store, shredded, "cli:t", "test")
            .await
            .unwrap();
        ring.rotate().unwrap();
        let new_kek = ring.current_kek().unwrap().id().to_string();
        assert_eq!(
            shred::streams_needing_kek(store, &old_kek)
                .await
                .unwrap()
                .len(),
            2,
            "{}",
            t.name
        );
        for id in ids {
            let dir = StreamDir::session(id);
            let moved = shred::rewrap(store, &ring, dir, |k| k == old_kek)
                .await
                .unwrap();
            assert_eq!(
                moved,
                Rewrapped::Moved {
                    from: vec![old_kek.clone()],
                    to: new_kek.clone()
                }
            );
            // Idempotent.
            assert_eq!(
                shred::rewrap(store, &ring, dir, |k| k == old_kek)
                    .await
                    .unwrap(),
                Rewrapped::Unchanged
            );
        }
        assert_eq!(
            shred::rewrap(store, &ring, StreamDir::session(shredded), |_| true)
                .await
                .unwrap(),
            Rewrapped::Shredded
        );
        assert!(
            shred::streams_needing_kek(store, &old_kek)
                .await
                .unwrap()
                .is_empty()
        );
        std::fs::remove_file(keys.path().join("keys").join(format!("kek-{old_kek}.key"))).unwrap();
        let ring = Keyring::open(&keys.path().join("keys")).unwrap();
        assert!(ring.kek(&old_kek).is_err());
        for id in ids {
            let reader = SessionReader::open(store, &ring, id).await.unwrap();
            let mut n = 0;
            reader.for_each_event(|_| n += 1).await.unwrap();
            assert!(n > 0);
            let report = verify_session(store, id, KeySource::Keyring(&ring))
                .await
                .unwrap();
            assert!(report.intact() && report.totals.is_some(), "{}", t.name);
        }
    }
}

#[tokio::test]
async fn deleting_a_stream_removes_every_object_and_its_marker() {
    for t in all_stores() {
        let (ring, _keys) = keyring();
        let store = &t.store;
        let gone = record(store, &ring, &output_events(30, 300), small_chunks(), true).await;
        let kept = record(store, &ring, &output_events(3, 10), small_chunks(), true).await;
        let dir = StreamDir::session(gone);
        let before = store.list(&dir.dir()).await.unwrap().len();
        assert!(before > 4, "{}", t.name);
        let today = layout::day_of(storage_schema::time::unix_micros_now());
        let n = retention::delete_stream(store, dir, std::slice::from_ref(&today))
            .await
            .unwrap();
        assert_eq!(n, before + 1, "{}: objects and the ended marker", t.name);
        assert!(store.list(&dir.dir()).await.unwrap().is_empty());
        // Not listed as a stream any more (a directory store keeps no empty directory).
        let listed = storage_schema::store::list_streams(store).await.unwrap();
        assert!(listed.iter().all(|d| d.id() != gone), "{}", t.name);
        assert!(listed.iter().any(|d| d.id() == kept), "{}", t.name);
        assert!(!store.exists(&layout::ended(&today, gone)).await.unwrap());
        assert!(store.exists(&layout::ended(&today, kept)).await.unwrap());
        assert!(SessionReader::open(store, &ring, kept).await.is_ok());
    }
}
