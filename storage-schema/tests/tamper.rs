//! The tamper matrix: each kind of damage to a stored session is detected by `verify_session`
//! with a specific finding, and the reader refuses to present damaged data as the recording.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use storage_schema::layout;
use storage_schema::seal::SealError;
use storage_schema::store::{KeySource, SessionReader, VerifyError, verify_session};
use storage_schema::{Damage, KeyError, Keyring, PublicKey, SessionId, SessionState};

const CHUNKS: u64 = 6;

struct Fixture {
    ts: common::TestStore,
    ring: Keyring,
    _keys: tempfile::TempDir,
    id: SessionId,
    other: SessionId,
}

impl Fixture {
    async fn new() -> Self {
        let ts = common::file();
        let (ring, keys) = common::keyring();
        // ~6 chunks of 4 KiB each.
        let events = common::output_events(120, 200);
        let id = common::record(&ts.store, &ring, &events, common::small_chunks(), true).await;
        let other = common::record(&ts.store, &ring, &events, common::small_chunks(), true).await;
        let f = Self {
            ts,
            ring,
            _keys: keys,
            id,
            other,
        };
        assert_eq!(f.chunk_files(id).len() as u64, CHUNKS, "fixture shape");
        f
    }

    /// `key` in the file store.
    fn path(&self, key: &str) -> PathBuf {
        self.ts.root.as_ref().unwrap().join(key)
    }

    fn chunk(&self, id: SessionId, seq: u64) -> PathBuf {
        self.path(&layout::chunk(id, seq))
    }

    fn chunk_files(&self, id: SessionId) -> Vec<PathBuf> {
        fs::read_dir(self.path(&layout::chunks_dir(id)))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    async fn damage(&self) -> Vec<Damage> {
        let report = verify_session(&self.ts.store, self.id, KeySource::Keyring(&self.ring))
            .await
            .unwrap();
        // Whatever the damage, the public-key-only view must see it too, unless it is only
        // visible inside the ciphertext.
        let public = self.ring.public_key(&self.signing_id()).unwrap().clone();
        let shallow = verify_session(&self.ts.store, self.id, KeySource::PublicKey(&public))
            .await
            .unwrap();
        assert!(
            !shallow.intact(),
            "public-key verification missed it; keyring found {:?}",
            report.damage
        );
        report.damage
    }

    fn signing_id(&self) -> String {
        let meta: serde_json::Value =
            serde_json::from_slice(&fs::read(self.path(&layout::meta(self.id))).unwrap()).unwrap();
        meta["keys"]["signing"].as_str().unwrap().to_string()
    }

    async fn reader_refuses(&self) {
        let reader = SessionReader::open(&self.ts.store, &self.ring, self.id).await;
        let result = match reader {
            Ok(r) => r.for_each_event(|_| {}).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        assert!(result.is_err(), "the reader accepted a damaged session");
    }
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn intact_session_verifies() {
    let f = Fixture::new().await;
    let report = verify_session(&f.ts.store, f.id, KeySource::Keyring(&f.ring))
        .await
        .unwrap();
    assert!(report.intact(), "{:?}", report.damage);
    assert!(matches!(report.state, SessionState::Sealed(_)));
    assert_eq!(report.chunks, CHUNKS);
}

#[tokio::test]
async fn header_bit_flip() {
    let f = Fixture::new().await;
    flip(&f.chunk(f.id, 2), 60); // inside the previous-digest link
    assert_eq!(f.damage().await, vec![Damage::ChunkSignature { seq: 2 }]);
    f.reader_refuses().await;
}

#[tokio::test]
async fn header_bit_flip_that_breaks_structure() {
    let f = Fixture::new().await;
    flip(&f.chunk(f.id, 2), 36); // first-event time now after the last-event time
    let damage = f.damage().await;
    assert!(
        matches!(
            damage.as_slice(),
            [Damage::ChunkMalformed {
                seq: 2,
                error: storage_schema::ChunkError::BadHeader("time range")
            }]
        ),
        "{damage:?}"
    );
    f.reader_refuses().await;
}

#[tokio::test]
async fn body_bit_flip() {
    let f = Fixture::new().await;
    flip(&f.chunk(f.id, 3), 100);
    assert_eq!(f.damage().await, vec![Damage::ChunkSignature { seq: 3 }]);
    f.reader_refuses().await;
}

#[tokio::test]
async fn signature_bit_flip() {
    let f = Fixture::new().await;
    let path = f.chunk(f.id, 1);
    let len = fs::metadata(&path).unwrap().len() as usize;
    flip(&path, len - 5);
    assert_eq!(f.damage().await, vec![Damage::ChunkSignature { seq: 1 }]);
}

#[tokio::test]
async fn seal_bit_flip() {
    let f = Fixture::new().await;
    let path = f.path(&layout::seal(f.id));
    let text = fs::read_to_string(&path).unwrap();
    // Change one hex digit of the recorded final digest inside the signed payload.
    let at = text.find("final_digest").unwrap() + "final_digest\\\":\\\"".len() + 3;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    fs::write(&path, bytes).unwrap();
    assert_eq!(f.damage().await, vec![Damage::Seal(SealError::Signature)]);
}

#[tokio::test]
async fn chunk_dropped_from_the_middle() {
    let f = Fixture::new().await;
    fs::remove_file(f.chunk(f.id, 2)).unwrap();
    assert_eq!(
        f.damage().await,
        vec![Damage::ChunksMissing { from: 2, to: 2 }]
    );
    f.reader_refuses().await;
}

#[tokio::test]
async fn last_chunk_dropped() {
    let f = Fixture::new().await;
    fs::remove_file(f.chunk(f.id, CHUNKS - 1)).unwrap();
    assert_eq!(
        f.damage().await,
        vec![Damage::SealChunkCount {
            sealed: CHUNKS,
            found: CHUNKS - 1
        }]
    );
}

#[tokio::test]
async fn two_chunks_swapped() {
    let f = Fixture::new().await;
    let (a, b) = (f.chunk(f.id, 1), f.chunk(f.id, 2));
    let (ba, bb) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
    fs::write(&a, bb).unwrap();
    fs::write(&b, ba).unwrap();
    assert_eq!(
        f.damage().await,
        vec![
            Damage::ChunkMisplaced { seq: 1, holds: 2 },
            Damage::ChunkMisplaced { seq: 2, holds: 1 }
        ]
    );
    f.reader_refuses().await;
}

#[tokio::test]
async fn chunk_spliced_from_another_session() {
    let f = Fixture::new().await;
    fs::copy(f.chunk(f.other, 2), f.chunk(f.id, 2)).unwrap();
    assert_eq!(
        f.damage().await,
        vec![Damage::ChunkForeign {
            seq: 2,
            owner: f.other
        }]
    );
    f.reader_refuses().await;
}

#[tokio::test]
async fn seal_replaced_by_another_sessions() {
    let f = Fixture::new().await;
    fs::copy(f.path(&layout::seal(f.other)), f.path(&layout::seal(f.id))).unwrap();
    assert_eq!(
        f.damage().await,
        vec![Damage::SealForeign { owner: f.other }]
    );
}

#[tokio::test]
async fn metadata_altered() {
    let f = Fixture::new().await;
    let path = f.path(&layout::meta(f.id));
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("alice@example.com", "mallory@example.com");
    fs::write(&path, text).unwrap();
    assert_eq!(f.damage().await, vec![Damage::MetaAltered]);
    f.reader_refuses().await;
}

#[tokio::test]
async fn extra_chunk_appended_after_seal() {
    let f = Fixture::new().await;
    fs::copy(f.chunk(f.other, CHUNKS - 1), f.chunk(f.id, CHUNKS)).unwrap();
    let damage = f.damage().await;
    assert!(
        damage.contains(&Damage::ChunkForeign {
            seq: CHUNKS,
            owner: f.other
        }),
        "{damage:?}"
    );
    assert!(
        damage.contains(&Damage::SealChunkCount {
            sealed: CHUNKS,
            found: CHUNKS + 1
        }),
        "{damage:?}"
    );
}

#[tokio::test]
async fn wrong_public_key() {
    let f = Fixture::new().await;
    let (other_ring, _d) = common::keyring();
    let wrong: PublicKey = other_ring.current_signing_key().unwrap().public();
    let report = verify_session(&f.ts.store, f.id, KeySource::PublicKey(&wrong))
        .await
        .unwrap();
    assert!(
        matches!(report.damage.as_slice(), [Damage::WrongPublicKey { .. }]),
        "{:?}",
        report.damage
    );
}

#[tokio::test]
async fn a_forged_key_with_the_right_id_is_caught_by_the_signatures() {
    let f = Fixture::new().await;
    // An attacker's key file claiming the recording's key id: the fingerprint check refuses it.
    let (other_ring, _d) = common::keyring();
    let line = other_ring.current_signing_key().unwrap().public().to_line();
    let forged = line.replacen(
        other_ring.current_signing_key().unwrap().id(),
        &f.signing_id(),
        1,
    );
    assert!(PublicKey::from_line(forged.trim()).is_err());
}

#[tokio::test]
async fn missing_kek() {
    let f = Fixture::new().await;
    // A keyring that has the recording's public key but not its key-encryption key.
    let (other, dir) = common::keyring();
    let pubfile = format!("signing-{}.pub", f.signing_id());
    fs::copy(f.ring.dir().join(&pubfile), other.dir().join(&pubfile)).unwrap();
    let other = Keyring::open(other.dir()).unwrap();
    let err = verify_session(&f.ts.store, f.id, KeySource::Keyring(&other))
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Keys(KeyError::KekMissing(_))),
        "{err}"
    );
    drop(dir);
}

#[tokio::test]
async fn wrong_kek() {
    let f = Fixture::new().await;
    // Same key ids, different key-encryption key bytes.
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    fs::create_dir(&keys).unwrap();
    for entry in fs::read_dir(f.ring.dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let dest = keys.join(&name);
        if name.starts_with("kek-") {
            fs::write(&dest, format!("kubetape-kek-v1 {}\n", "ab".repeat(32))).unwrap();
        } else {
            fs::copy(&path, &dest).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let wrong = Keyring::open(&keys).unwrap();
    let err = verify_session(&f.ts.store, f.id, KeySource::Keyring(&wrong))
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Keys(KeyError::UnwrapFailed(_))),
        "{err}"
    );
}

#[tokio::test]
async fn crypto_shredded_session_cannot_be_read_but_still_verifies_by_public_key() {
    let f = Fixture::new().await;
    f.ts.store
        .delete(&storage_schema::layout::dek(f.id))
        .await
        .unwrap();
    let err = verify_session(&f.ts.store, f.id, KeySource::Keyring(&f.ring))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::DataKey { .. }), "{err}");
    let public = f.ring.public_key(&f.signing_id()).unwrap().clone();
    let report = verify_session(&f.ts.store, f.id, KeySource::PublicKey(&public))
        .await
        .unwrap();
    assert!(report.intact(), "{:?}", report.damage);
}
