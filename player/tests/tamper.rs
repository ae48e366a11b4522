//! The tamper matrix at the command line: for each kind of damage to a recording made by
//! `kubetape record`, `kubetape verify` exits non-zero and says what and where.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use test_support::TempStore;

const KUBETAPE: &str = env!("CARGO_BIN_EXE_kubetape");

/// A store with two recorded sessions of many chunks; each case works on its own copy.
struct Recorded {
    temp: TempStore,
    id: String,
    other: String,
}

fn kubetape(t: &TempStore, args: &[&str]) -> Output {
    t.kubetape(KUBETAPE, args).output().unwrap()
}

fn record(t: &TempStore) -> String {
    // Small chunks: the matrix cuts, removes and forges some of several.
    let out = kubetape(
        t,
        &["record", "--chunk-kib", "256", "--", "seq", "1", "400000"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = stderr.find("session ").expect("session id on stderr") + "session ".len();
    stderr[at..at + 36].to_string()
}

impl Recorded {
    fn new() -> Self {
        let temp = TempStore::new();
        let id = record(&temp);
        let other = record(&temp);
        let r = Self { temp, id, other };
        assert!(
            r.chunks(&r.id) >= 6,
            "need several chunks, got {}",
            r.chunks(&r.id)
        );
        let ok = kubetape(&r.temp, &["verify", &r.id]);
        assert!(
            ok.status.success(),
            "the untouched recording verifies: {}",
            String::from_utf8_lossy(&ok.stdout)
        );
        r
    }

    fn session(&self, root: &Path, id: &str) -> PathBuf {
        root.join("store/sessions").join(id)
    }

    fn chunks(&self, id: &str) -> usize {
        fs::read_dir(self.session(self.temp.root(), id).join("chunks"))
            .unwrap()
            .count()
    }

    /// Applies `damage` to a copy of the store and returns `kubetape verify`'s exit and output.
    fn verify_after(&self, damage: impl FnOnce(&Path, &Path, &Path)) -> (bool, String) {
        let copy = self.temp.copy();
        damage(
            copy.root(),
            &self.session(copy.root(), &self.id),
            &self.session(copy.root(), &self.other),
        );
        let out = kubetape(&copy, &["verify", &self.id]);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

fn chunk(session: &Path, seq: u64) -> PathBuf {
    session.join("chunks").join(format!("{seq:020}"))
}

fn flip(path: &Path, offset: usize) {
    let mut b = fs::read(path).unwrap();
    b[offset] ^= 0x04;
    fs::write(path, b).unwrap();
}

#[test]
fn every_kind_of_damage_fails_verify_with_a_precise_finding() {
    let r = Recorded::new();
    let last = r.chunks(&r.id) as u64 - 1;
    type Damage = Box<dyn FnOnce(&Path, &Path, &Path)>;
    let cases: Vec<(&str, Damage, String)> = vec![
        (
            "bit flipped in a header",
            Box::new(|_, s, _| flip(&chunk(s, 2), 60)),
            "chunk 2: signature does not verify".into(),
        ),
        (
            "bit flipped in a body",
            Box::new(|_, s, _| flip(&chunk(s, 3), 200)),
            "chunk 3: signature does not verify".into(),
        ),
        (
            "bit flipped in the seal",
            Box::new(|_, s, _| {
                let path = s.join("seal.json");
                let text = fs::read_to_string(&path).unwrap();
                let at = text.find("final_digest").unwrap() + 20;
                let mut b = text.into_bytes();
                b[at] = if b[at] == b'a' { b'b' } else { b'a' };
                fs::write(path, b).unwrap();
            }),
            "seal".into(),
        ),
        (
            "chunk dropped from the middle",
            Box::new(|_, s, _| fs::remove_file(chunk(s, 2)).unwrap()),
            "chunks 2..=2 are missing".into(),
        ),
        (
            "last chunk dropped",
            Box::new(move |_, s, _| fs::remove_file(chunk(s, last)).unwrap()),
            format!("seal records {} chunks", last + 1),
        ),
        (
            "two chunks swapped",
            Box::new(|_, s, _| {
                let (a, b) = (
                    fs::read(chunk(s, 1)).unwrap(),
                    fs::read(chunk(s, 2)).unwrap(),
                );
                fs::write(chunk(s, 1), b).unwrap();
                fs::write(chunk(s, 2), a).unwrap();
            }),
            "chunk 1: the object holds chunk 2".into(),
        ),
        (
            "chunk spliced in from another session",
            Box::new(|_, s, o| {
                fs::copy(chunk(o, 2), chunk(s, 2)).unwrap();
            }),
            format!("chunk 2: belongs to session {}", r.other),
        ),
        (
            "seal replaced by another session's",
            Box::new(|_, s, o| {
                fs::copy(o.join("seal.json"), s.join("seal.json")).unwrap();
            }),
            format!("seal belongs to session {}", r.other),
        ),
        (
            "metadata edited",
            Box::new(|_, s, _| {
                let path = s.join("meta.json");
                let text = fs::read_to_string(&path).unwrap().replacen(
                    "\"tty\": false",
                    "\"tty\": true",
                    1,
                );
                fs::write(path, text).unwrap();
            }),
            "meta.json was altered".into(),
        ),
        (
            "data key object deleted (crypto-shredded)",
            Box::new(|_, s, _| fs::remove_file(s.join("dek.json")).unwrap()),
            "dek.json is missing".into(),
        ),
        (
            "key-encryption key missing from the keyring",
            Box::new(|root, _, _| {
                for e in fs::read_dir(root.join("keys")).unwrap() {
                    let p = e.unwrap().path();
                    if p.file_name().unwrap().to_str().unwrap().starts_with("kek-") {
                        fs::remove_file(p).unwrap();
                    }
                }
            }),
            "is not in the keyring".into(),
        ),
        (
            "wrong key-encryption key",
            Box::new(|root, _, _| {
                for e in fs::read_dir(root.join("keys")).unwrap() {
                    let p = e.unwrap().path();
                    if p.file_name().unwrap().to_str().unwrap().starts_with("kek-") {
                        fs::write(&p, format!("kubetape-kek-v1 {}\n", "cd".repeat(32))).unwrap();
                    }
                }
            }),
            "does not unwrap".into(),
        ),
    ];
    for (name, damage, expected) in cases {
        let (ok, output) = r.verify_after(damage);
        assert!(!ok, "{name}: verify passed:\n{output}");
        assert!(
            output.contains(&expected),
            "{name}: expected {expected:?} in:\n{output}"
        );
    }
}

#[test]
fn verify_with_the_wrong_public_key_fails() {
    let r = Recorded::new();
    let other = TempStore::new();
    let out = kubetape(&other, &["keys", "init"]);
    assert!(out.status.success());
    let pubfile = other.root().join("other.pub");
    let out = kubetape(
        &other,
        &["keys", "export-pub", "--out", pubfile.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kubetape(
        &r.temp,
        &["verify", &r.id, "--pubkey", pubfile.to_str().unwrap()],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("signed with key"), "{text}");
}

/// `kubetape verify`, `cat` and `export` of `id` in `store`: (command, success, output).
fn read_all_ways(store: &TempStore, id: &str) -> Vec<(&'static str, bool, String)> {
    let out_file = store.root().join("export.txt");
    let runs: [(&'static str, Vec<&str>); 3] = [
        ("verify", vec!["verify", id]),
        ("cat", vec!["cat", id]),
        (
            "export",
            vec![
                "export",
                id,
                "--format",
                "text",
                "-o",
                out_file.to_str().unwrap(),
            ],
        ),
    ];
    runs.into_iter()
        .map(|(name, args)| {
            let out = kubetape(store, &args);
            // cat streams what it verified before it finds the end damaged; only stderr counts.
            let text = if name == "cat" {
                String::from_utf8_lossy(&out.stderr).into_owned()
            } else {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
            };
            (name, out.status.code() == Some(1), text)
        })
        .collect()
}

/// Rewrites the seal of `session`: its payload edited by `edit`, signed by `key`.
fn reseal(
    session: &Path,
    key: &storage_schema::keys::SigningKey,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    let path = session.join("seal.json");
    let envelope: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let mut payload: serde_json::Value =
        serde_json::from_str(envelope["payload"].as_str().unwrap()).unwrap();
    edit(&mut payload);
    let payload: storage_schema::seal::SealPayload = serde_json::from_value(payload).unwrap();
    fs::write(path, payload.sign(key)).unwrap();
}

/// The key id the store's seals are signed with.
fn signer(session: &Path) -> String {
    storage_schema::seal::SealPayload::signer_of(&fs::read(session.join("seal.json")).unwrap())
        .unwrap()
}

#[test]
fn truncation_removed_and_forged_seals_fail_verify_cat_and_export() {
    let r = Recorded::new();
    let last = r.chunks(&r.id) as u64 - 1;
    // A recording of another deployment (its own keys), to take a foreign seal from.
    let elsewhere = TempStore::new();
    let foreign = record(&elsewhere);
    let foreign_seal = fs::read(
        elsewhere
            .store_dir()
            .join(storage_schema::layout::SESSIONS)
            .join(&foreign)
            .join("seal.json"),
    )
    .unwrap();
    type Damage = Box<dyn FnOnce(&Path)>;
    let cases: Vec<(&str, Damage, String)> = vec![
        (
            "seal removed (the ended/ marker remains)",
            Box::new(|s| fs::remove_file(s.join("seal.json")).unwrap()),
            "seal.json is missing, but ended/".into(),
        ),
        (
            "tail truncated: last two chunks and the seal removed",
            Box::new(move |s| {
                fs::remove_file(s.join("seal.json")).unwrap();
                fs::remove_file(chunk(s, last)).unwrap();
                fs::remove_file(chunk(s, last - 1)).unwrap();
            }),
            "seal.json is missing, but ended/".into(),
        ),
        (
            "tail truncated: last chunk cut short",
            Box::new(move |s| {
                let bytes = fs::read(chunk(s, last)).unwrap();
                fs::write(chunk(s, last), &bytes[..bytes.len() / 2]).unwrap();
            }),
            format!("chunk {last}"),
        ),
        (
            "tail truncated: last chunk removed, seal kept",
            Box::new(move |s| fs::remove_file(chunk(s, last)).unwrap()),
            format!("seal records {} chunks", last + 1),
        ),
        (
            "seal forged: payload edited to match a truncated tail, signature kept",
            Box::new(move |s| {
                fs::remove_file(chunk(s, last)).unwrap();
                let path = s.join("seal.json");
                let mut envelope: serde_json::Value =
                    serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
                let payload = envelope["payload"].as_str().unwrap().replacen(
                    &format!("\"chunks\":{}", last + 1),
                    &format!("\"chunks\":{last}"),
                    1,
                );
                envelope["payload"] = payload.into();
                fs::write(path, serde_json::to_vec(&envelope).unwrap()).unwrap();
            }),
            "seal: ".into(),
        ),
        (
            "seal forged: re-signed by an impostor key under the real key's id",
            Box::new(move |s| {
                let impostor = storage_schema::keys::SigningKey::from_seed(signer(s), [7; 32]);
                fs::remove_file(chunk(s, last)).unwrap();
                reseal(s, &impostor, |p| p["chunks"] = last.into());
            }),
            "seal: ".into(),
        ),
        (
            "foreign seal: another deployment's seal copied in",
            Box::new(move |s| fs::write(s.join("seal.json"), &foreign_seal).unwrap()),
            "seal: ".into(),
        ),
    ];
    for (name, damage, expected) in cases {
        let copy = r.temp.copy();
        damage(&r.session(copy.root(), &r.id));
        for (command, failed, output) in read_all_ways(&copy, &r.id) {
            assert!(failed, "{name}: `{command}` did not exit 1:\n{output}");
            assert!(
                output.contains(&expected),
                "{name}: `{command}`: expected {expected:?} in:\n{output}"
            );
        }
        assert!(
            !copy.root().join("export.txt").exists(),
            "{name}: export left a file behind"
        );
    }
    // The other session, untouched, still reads every way.
    for (command, failed, output) in read_all_ways(&r.temp, &r.other) {
        assert!(!failed, "untouched: `{command}` failed:\n{output}");
    }
}
