//! Write → read identity, for arbitrary event sequences, in memory (builder and verifier alone)
//! and through the recorder and reader on every store kind.

mod common;

use proptest::prelude::*;
use storage_schema::builder::MAX_EVENT_DATA;
use storage_schema::store::{KeySource, SessionReader, verify_session};
use storage_schema::{
    ChunkBuilder, DataKey, Direction, Event, EventKind, FlushPolicy, ForwardOutcome, SessionState,
    SigningKey, Stream, Verifier, ZstdTables,
};

fn arb_kind() -> impl Strategy<Value = EventKind> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..2000);
    let stream = prop_oneof![
        Just(Stream::Stdin),
        Just(Stream::Stdout),
        Just(Stream::Stderr)
    ];
    prop_oneof![
        6 => (stream.clone(), bytes.clone()).prop_map(|(stream, bytes)| EventKind::Data { stream, bytes }),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(cols, rows)| EventKind::Resize { cols, rows }),
        1 => (any::<i32>(), ".{0,40}").prop_map(|(code, message)| EventKind::Exit { code, message }),
        1 => ".{0,40}".prop_map(|text| EventKind::Marker { text }),
        1 => stream.prop_map(|stream| EventKind::StreamClose { stream }),
        1 => (any::<u64>(), any::<u16>()).prop_map(|(conn, port)| EventKind::PortForwardOpen { conn, port }),
        1 => (any::<u64>(), any::<bool>(), bytes.clone()).prop_map(|(conn, d, bytes)| EventKind::PortForwardData {
            conn,
            direction: if d { Direction::FromPod } else { Direction::ToPod },
            bytes
        }),
        1 => (any::<u64>(), ".{0,40}").prop_map(|(conn, error)| EventKind::PortForwardClose { conn, error }),
        1 => ".{0,40}".prop_map(|json| EventKind::Audit { json }),
        1 => (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(conn, to_pod, from_pod)| EventKind::PortForwardBytes { conn, to_pod, from_pod }),
        1 => (any::<u64>(), any::<bool>()).prop_map(|(conn, d)| EventKind::PortForwardHalfClose {
            conn,
            direction: if d { Direction::FromPod } else { Direction::ToPod },
        }),
        1 => (any::<u64>(), any::<u8>(), ".{0,40}").prop_map(|(conn, code, message)| EventKind::PortForwardEnd {
            conn,
            outcome: ForwardOutcome::from_code(code),
            message,
        }),
        // Tags 0..=11 and 16..=18 are taken (0 reserved).
        1 => (12u8.., bytes)
            .prop_filter("a known tag", |(tag, _)| !(16..=18).contains(tag))
            .prop_map(|(tag, payload)| EventKind::Unknown { tag, payload }),
    ]
}

fn arb_events(max: usize) -> impl Strategy<Value = Vec<Event>> {
    proptest::collection::vec((0u64..3_000_000, arb_kind()), 0..max).prop_map(|items| {
        let mut at = 0u64;
        items
            .into_iter()
            .map(|(delta, kind)| {
                at += delta;
                Event { at_us: at, kind }
            })
            .collect()
    })
}

fn arb_policy() -> impl Strategy<Value = FlushPolicy> {
    (
        prop_oneof![Just(64usize), Just(1024), Just(256 << 10)],
        -5i32..6,
        proptest::option::of((6u32..20, 6u32..20)),
    )
        .prop_map(|(max_bytes, zstd_level, tables)| FlushPolicy {
            max_bytes,
            zstd_level,
            zstd_tables: tables.map(|(hash_log, chain_log)| ZstdTables {
                hash_log,
                chain_log,
            }),
            ..FlushPolicy::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The pure pipeline: builder → chunk bytes → verifier (with the data key) → same events.
    #[test]
    fn in_memory(events in arb_events(80), policy in arb_policy()) {
        let meta = br#"{"any":"bytes"}"#;
        let session = storage_schema::SessionId::new();
        let dek = DataKey::from_bytes([9; 32]);
        let signer = SigningKey::from_seed("test", [3; 32]);
        let public = signer.public();
        let mut builder = ChunkBuilder::new(session, meta, dek.clone(), signer, policy).unwrap();
        let mut chunks = Vec::new();
        for e in &events {
            chunks.extend(builder.push(e).unwrap());
        }
        chunks.extend(builder.flush().unwrap());
        let seal = builder.seal_payload(storage_schema::SealState::Sealed, None).sign(builder.signer());

        let mut verifier = Verifier::new(session, meta, &public, Some(dek));
        let mut back = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            back.extend(verifier.chunk(i as u64, &c.encode()).expect("chunk verifies"));
        }
        let report = verifier.finish(Some(&seal));
        prop_assert!(report.intact(), "{:?}", report.damage);
        prop_assert!(matches!(report.state, SessionState::Sealed(_)));
        prop_assert_eq!(back, events);
    }
}

/// Splits data events the way the builder does, so expectations match what is stored.
fn as_stored(events: &[Event]) -> Vec<Event> {
    let mut out = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::Data { stream, bytes } if bytes.len() > MAX_EVENT_DATA => {
                for piece in bytes.chunks(MAX_EVENT_DATA) {
                    out.push(Event {
                        at_us: e.at_us,
                        kind: EventKind::Data {
                            stream: *stream,
                            bytes: piece.to_vec(),
                        },
                    });
                }
            }
            _ => out.push(e.clone()),
        }
    }
    out
}

async fn read_back(
    store: &storage_schema::store::Store,
    ring: &storage_schema::Keyring,
    id: storage_schema::SessionId,
) -> Vec<Event> {
    let reader = SessionReader::open(store, ring, id).await.unwrap();
    let mut back = Vec::new();
    reader
        .for_each_event(|e| back.push(e.clone()))
        .await
        .unwrap();
    back
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Recorder → store → reader, on memory, file and (when configured) S3 stores.
    #[test]
    fn on_every_store(events in arb_events(60), small in any::<bool>()) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (ring, _keys) = common::keyring();
        let policy = if small { common::small_chunks() } else { FlushPolicy::default() };
        for ts in common::all_stores() {
            let back = rt.block_on(async {
                let id = common::record(&ts.store, &ring, &events, policy, true).await;
                let report = verify_session(&ts.store, id, KeySource::Keyring(&ring)).await.unwrap();
                assert!(report.intact(), "{}: {:?}", ts.name, report.damage);
                read_back(&ts.store, &ring, id).await
            });
            prop_assert_eq!(&back, &as_stored(&events), "store {}", ts.name);
        }
    }
}

/// A large write is split into bounded events and still reads back byte-identical.
#[tokio::test]
async fn large_writes_split_and_rejoin() {
    let (ring, _keys) = common::keyring();
    let ts = common::file();
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let events = vec![Event {
        at_us: 5,
        kind: EventKind::Data {
            stream: Stream::Stdout,
            bytes: data.clone(),
        },
    }];
    let id = common::record(&ts.store, &ring, &events, FlushPolicy::default(), true).await;
    let back = read_back(&ts.store, &ring, id).await;
    assert!(back.iter().all(
        |e| matches!(&e.kind, EventKind::Data { bytes, .. } if bytes.len() <= MAX_EVENT_DATA)
    ));
    let joined: Vec<u8> = back
        .iter()
        .flat_map(|e| match &e.kind {
            EventKind::Data { bytes, .. } => bytes.clone(),
            _ => vec![],
        })
        .collect();
    assert_eq!(joined, data);
}

/// Random access by chunk returns exactly the events sequential reading returns.
#[tokio::test]
async fn random_access_matches_sequential() {
    let (ring, _keys) = common::keyring();
    let ts = common::memory();
    let events = common::output_events(400, 200);
    let id = common::record(&ts.store, &ring, &events, common::small_chunks(), true).await;
    let reader = SessionReader::open(&ts.store, &ring, id).await.unwrap();
    assert!(reader.chunk_count() > 10, "{} chunks", reader.chunk_count());
    let mut by_chunk = Vec::new();
    for i in (0..reader.chunk_count()).rev() {
        let header = reader.chunk_header(i).await.unwrap();
        let events = reader.chunk_events(i).await.unwrap();
        assert_eq!(events.len() as u32, header.events);
        by_chunk.push(events);
    }
    by_chunk.reverse();
    assert_eq!(by_chunk.concat(), events);
}
