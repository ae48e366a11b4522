//! Evidence bundles through the `kubetape` binary on a local store: every selection option
//! (ids, --search, --user, -n, --since/--until) picks what it says, bad selections are refused,
//! a crypto-shredded session still verifies inside a bundle and is reported as shredded, and
//! `verify --bundle` names a recording damaged before it was bundled. (The JIT incident, the
//! audit records and tampering with every member: `tests/tests/bundle.rs`.)

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{Env, KUBETAPE, text};

/// `export --bundle NAME ARGS…` in `env`'s directory, which must succeed; the bundle's manifest.
fn bundle(env: &Env, name: &str, args: &[&str]) -> serde_json::Value {
    let path = path(env, name);
    let mut all = vec!["export", "--bundle", path.as_str()];
    all.extend_from_slice(args);
    env.ok(&all);
    serde_json::from_slice(&member(Path::new(&path), "manifest.json").unwrap()).unwrap()
}

fn path(env: &Env, name: &str) -> String {
    env.temp.root().join(name).to_string_lossy().into_owned()
}

fn member(bundle: &Path, path: &str) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == path {
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            return Some(data);
        }
    }
    None
}

fn ids(manifest: &serde_json::Value) -> BTreeSet<String> {
    manifest["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// `verify --bundle` in a directory of its own holding a copy of the bundle, with no store and
/// no keyring.
fn audit_verify(bundle: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(bundle, dir.path().join("b.tar")).unwrap();
    let out = Command::new(KUBETAPE)
        .current_dir(dir.path())
        .env_remove("KUBETAPE_STORE")
        .env_remove("KUBETAPE_KEYS")
        .env("HOME", dir.path())
        .args(["verify", "--bundle", "b.tar"])
        .output()
        .unwrap();
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_selection_option_selects_what_it_says() {
    let env = Env::new();
    let drop = env
        .session(
            "alice",
            "prod",
            "psql -c 'DROP TABLE orders'",
            "DROP TABLE\r\n",
        )
        .await;
    let staging = env.session("alice", "staging", "ls", "a b\r\n").await;
    let bobs = env.session("bob", "prod", "whoami", "bob\r\n").await;

    assert_eq!(
        ids(&bundle(&env, "u.tar", &["--user", "alice"])),
        set(&[&drop, &staging])
    );
    assert_eq!(
        ids(&bundle(&env, "un.tar", &["--user", "alice", "-n", "prod"])),
        set(&[&drop])
    );
    assert_eq!(
        ids(&bundle(&env, "n.tar", &["-n", "prod"])),
        set(&[&drop, &bobs])
    );
    let searched = bundle(&env, "s.tar", &["--search", "DROP TABLE"]);
    assert_eq!(ids(&searched), set(&[&drop]));
    assert_eq!(searched["selection"]["search"], "DROP TABLE");
    let short = |id: &str| id[id.len() - 8..].to_string();
    let named = bundle(&env, "i.tar", &[&short(&bobs), &staging]);
    assert_eq!(ids(&named), set(&[&bobs, &staging]));
    assert_eq!(
        ids(&bundle(&env, "t.tar", &["--since", "1h", "--user", "bob"])),
        set(&[&bobs])
    );
    // Everything given must hold: a named session of another user is not selected.
    assert!(
        env.fails(&[
            "export",
            "--bundle",
            &path(&env, "x.tar"),
            &bobs,
            "--user",
            "alice"
        ])
        .contains("no session in")
    );
    assert!(
        env.fails(&["export", "--bundle", &path(&env, "x.tar"), "--until", "1h"])
            .contains("matches the selection")
    );
    assert!(!Path::new(&path(&env, "x.tar")).exists(), "nothing written");
    assert!(
        env.fails(&["export", "--bundle", &path(&env, "x.tar")])
            .contains("say what goes into the bundle")
    );
    let absent = "01a24375-64eb-7564-a46b-8a26425e99d4";
    assert!(
        env.fails(&["export", "--bundle", &path(&env, "x.tar"), absent])
            .contains("is not in")
    );
    // Without --bundle, export is what it was: one session.
    assert!(
        env.fails(&["export", &drop, &bobs])
            .contains("exactly one session")
    );
    assert!(
        env.fails(&["export", &drop, "--user", "alice"])
            .contains("--bundle")
    );
    let (out, _) = env.ok(&["export", &drop, "--format", "text"]);
    assert!(out.contains("DROP TABLE"), "{out}");

    // The renderings read without kubetape; the manifest says who, how, with which kubetape.
    let rendered = member(
        Path::new(&path(&env, "un.tar")),
        &format!("renderings/{}.txt", short(&drop)),
    )
    .unwrap();
    assert_eq!(text(&rendered), "DROP TABLE\n");
    let m = bundle(
        &env,
        "r.tar",
        &["-n", "staging", "--reason", "case 9", "--no-render"],
    );
    assert_eq!(m["created_by"]["login"], "tester");
    assert_eq!(m["created_by"]["reason"], "case 9");
    assert_eq!(m["kubetape_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        m["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| !m["path"].as_str().unwrap().starts_with("renderings/")),
        "{m:#}"
    );
    let (code, out) = audit_verify(&path(&env, "s.tar"));
    assert_eq!(code, Some(0), "{out}");
    without_kubetape(&path(&env, "s.tar"));
}

/// The checks README.txt gives an auditor, run as it says: `sha256sum -c SHA256SUMS`, and the
/// manifest's signature with `openssl pkeyutl` (OpenSSL 3); then, on a copy whose manifest was
/// edited, both fail.
fn without_kubetape(bundle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sh = |script: &str| {
        let out = Command::new("sh")
            .current_dir(dir.path())
            .args(["-c", script])
            .output()
            .unwrap();
        (out.status.success(), text(&out.stdout) + &text(&out.stderr))
    };
    let (ok, out) = sh(&format!("tar -xf {bundle}"));
    assert!(ok, "{out}");
    let readme = std::fs::read_to_string(dir.path().join("README.txt")).unwrap();
    assert!(readme.contains("sha256sum -c SHA256SUMS"), "{readme}");
    // The openssl lines, exactly as README.txt writes them.
    let lines: Vec<&str> = readme.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("> signed.bin"))
        .unwrap_or_else(|| panic!("{readme}"));
    let script = format!(
        "{}\n{}\n{}",
        lines[at].trim(),
        lines[at + 1].trim(),
        lines[at + 2].trim()
    );
    let (ok, out) = sh("sha256sum -c SHA256SUMS");
    assert!(ok, "{out}");
    if !sh("openssl version").0 {
        eprintln!("no openssl: the signature check without kubetape is not run");
        return;
    }
    let (ok, out) = sh(&script);
    assert!(
        ok && out.contains("Signature Verified Successfully"),
        "{script}\n{out}"
    );
    let (ok, _) = sh("sed -i 's/\"tester\"/\"mallory\"/' manifest.json");
    assert!(ok);
    let (ok, out) = sh(&script);
    assert!(!ok, "an edited manifest verified: {out}");
    assert!(!sh("sha256sum -c SHA256SUMS").0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shredded_session_still_verifies_in_a_bundle_and_a_damaged_one_is_named() {
    let env = Env::new();
    let kept = env.session("alice", "prod", "id", "uid=0\r\n").await;
    let secret = env
        .session("alice", "prod", "cat secret", "hunter2\r\n")
        .await;
    env.ok(&["shred", &secret, "--reason", "GDPR erasure #7"]);
    let m = bundle(&env, "b.tar", &[&kept, &secret]);
    let entry = m["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == secret.as_str())
        .unwrap();
    assert!(
        entry["shredded"]
            .as_str()
            .unwrap()
            .contains("GDPR erasure #7"),
        "{entry:#}"
    );
    assert!(entry.get("renderings").is_none(), "{entry:#}");
    let bundle = PathBuf::from(path(&env, "b.tar"));
    assert!(member(&bundle, &format!("store/shredded/{secret}.json")).is_some());
    assert!(member(&bundle, &format!("store/sessions/{secret}/dek.json")).is_none());
    let (code, out) = audit_verify(&path(&env, "b.tar"));
    assert_eq!(code, Some(0), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("OK   session {secret}")))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("shredded on ") && line.contains("because GDPR erasure #7"),
        "{line}"
    );

    // A recording damaged in the store before it is bundled: the bundle holds it as it is
    // (export says it could not render it), and verify --bundle names the session.
    let damaged = env.session("bob", "prod", "ls", "x\r\n").await;
    let chunk = env
        .temp
        .root()
        .join("store/sessions")
        .join(&damaged)
        .join("chunks/00000000000000000000");
    let chunk = if chunk.exists() {
        chunk
    } else {
        find_chunk(&env.temp.root().join("store"), &damaged)
    };
    let mut bytes = std::fs::read(&chunk).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&chunk, bytes).unwrap();
    let path = path(&env, "d.tar");
    let out = env.run(&["export", "--bundle", &path, &damaged]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no rendering"),
        "{}",
        text(&out.stderr)
    );
    let (code, out) = audit_verify(&path);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("FAIL session {damaged}")), "{out}");
}

/// The first chunk of session `id` under a store directory, wherever the store root is.
fn find_chunk(root: &Path, id: &str) -> PathBuf {
    for e in walk(root) {
        let p = e.to_string_lossy();
        if p.contains(id) && p.contains("/chunks/") {
            return e;
        }
    }
    panic!("no chunk of {id} under {}", root.display());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
