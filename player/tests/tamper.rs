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
    let out = kubetape(t, &["record", "--", "seq", "1", "400000"]);
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
