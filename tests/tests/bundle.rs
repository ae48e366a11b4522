//! Evidence bundles end to end, for a JIT incident driven with real kubectl and the `kubetape`
//! CLI: alice requests prod access, bob approves, alice opens two exec sessions and a
//! port-forward under the grant (and one session of her own that is not part of the incident).
//! `kubetape export --bundle` selected by the grant (and by its reason) holds exactly those
//! three sessions, the grant's request and decision, and the audit records about them;
//! `kubetape verify --bundle` passes in a directory that holds only the bundle, with no store
//! and no keys; and fails, naming the member, when any member is flipped, removed or added, or
//! the manifest is edited. The bundle's readings are in the reads log.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use test_support::Tmux;
use tests::{Cluster, DEFAULT_POLICY, Kubectl, bin, run};

const T: Duration = Duration::from_secs(60);
/// A change made to a bundle's manifest.json.
type ManifestEdit = fn(&mut serde_json::Value);

const REASON: &str = "INC-42: bundle the incident";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The tests' policy, with `prod-debug` also allowing a forward of the database's port.
fn policy() -> String {
    DEFAULT_POLICY.replace(
        "max_ttl = \"1h\"\n",
        "max_ttl = \"1h\"\n[[roles.rules]]\nnamespaces = [\"prod\"]\nresources = [\"pods/portforward\"]\nverbs = [\"create\"]\nports = [5432]\n",
    )
}

/// A bundle's members, in archive order.
fn members(bundle: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, data)
        })
        .collect()
}

fn write_tar(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap().sync_all().unwrap();
}

fn member<'a>(members: &'a [(String, Vec<u8>)], path: &str) -> &'a [u8] {
    &members
        .iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("no member {path}"))
        .1
}

/// `kubetape verify --bundle FILE [ARGS]` run in `dir` as an auditor: no store, no keyring,
/// an empty HOME. Returns (exit code, stdout, stderr).
fn audit_verify(dir: &Path, bundle: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new(bin("kubetape"))
        .current_dir(dir)
        .env_remove("KUBETAPE_STORE")
        .env_remove("KUBETAPE_KEYS")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", &home)
        .args(["verify", "--bundle", bundle])
        .args(args)
        .output()
        .unwrap();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// A loopback port nothing listens on (bound, then let go).
#[test]
fn a_jit_incident_bundle_verifies_offline_and_names_every_tampered_member() {
    let Some(kubectl) = Kubectl::V1_33.path() else {
        return;
    };
    let cluster = Cluster::start_with_policy(&policy());
    let alice = cluster.kubeconfig("alice@example.com", &["developers"]);
    let bob = cluster.kubeconfig("bob@example.com", &["sre"]);

    // Not part of the incident: alice's own session in `default`, before the request.
    let (code, _, err) = run(
        cluster
            .kubectl(&kubectl, &alice)
            .args(["exec", "demo", "--", "echo", "unrelated"]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", text(&err));

    // The request, and bob's approval.
    let (code, out, err) = run(
        cluster.kubetape_as(&alice).args([
            "request",
            "prod-debug",
            "-n",
            "prod",
            "--reason",
            REASON,
            "--ttl",
            "30m",
            "--json",
        ]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", text(&err));
    let grant = serde_json::from_slice::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _, err) = run(cluster.kubetape_as(&bob).args(["approve", &grant]), b"", T);
    assert_eq!(code, Some(0), "{}", text(&err));

    // Two exec sessions under the grant: one command, one interactive shell where a command
    // is typed (its rendering must show it).
    let (code, out, err) = run(
        cluster.kubectl(&kubectl, &alice).args([
            "exec",
            "-n",
            "prod",
            "db",
            "--",
            "echo",
            "first-under-grant",
        ]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", text(&err));
    assert_eq!(text(&out), "first-under-grant\n");
    let tmux = Tmux::new("bundle");
    let shell = format!(
        "env HOME={home} {kubectl} --kubeconfig {kc} --cache-dir {home}/.kube/cache exec -it -n prod db -- sh",
        home = cluster.home.display(),
        kubectl = kubectl.display(),
        kc = alice.display(),
    );
    tmux.window("prod", 100, 30, &shell);
    tmux.wait_for("prod", "#");
    tmux.send("prod", "echo typed-$((6*7))");
    tmux.wait_for("prod", "typed-42");
    tmux.send("prod", "exit");
    tmux.wait_for("prod", "EXIT=0");
    // And a port-forward to the database under the same grant.
    cluster.forward_echo(&kubectl, &alice, ("prod", "db", 5432), b"SELECT 1;");

    // Four sessions sealed, three of them under the grant.
    let sessions = cluster.wait_for_sealed_count(4);
    let incident: BTreeSet<String> = sessions
        .iter()
        .filter(|s| s["meta"]["grant"]["id"] == grant.as_str())
        .map(|s| s["session"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(incident.len(), 3, "{sessions:#?}");
    assert!(
        sessions.iter().any(|s| s["meta"]["kind"] == "port-forward"
            && incident.contains(s["session"].as_str().unwrap())),
        "{sessions:#?}"
    );
    let shell_session = sessions
        .iter()
        .find(|s| s["meta"]["tty"] == true && incident.contains(s["session"].as_str().unwrap()))
        .expect("the interactive session")["session"]
        .as_str()
        .unwrap()
        .to_string();

    // Every request's audit record is in the store before the bundle is made.
    let deadline = Instant::now() + T;
    loop {
        let out = cluster
            .kubetape()
            .args(["audit", "--json"])
            .output()
            .unwrap();
        let records: Vec<serde_json::Value> = text(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let sessions_seen: BTreeSet<String> = records
            .iter()
            .filter_map(|r| r["session"].as_str().map(String::from))
            .collect();
        let approved = records.iter().any(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains(&format!("/requests/{grant}")))
        });
        if approved && incident.is_subset(&sessions_seen) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "audit records never appeared: {records:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The bundle, by grant id and by reason text: the same sessions.
    let work = cluster.root().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let by_grant = work.join("case-123.tar");
    let by_reason = work.join("case-123-reason.tar");
    for (path, select) in [
        (&by_grant, ["--jit", &grant]),
        (&by_reason, ["--jit-reason", "inc-42"]),
    ] {
        let out = cluster
            .kubetape()
            .arg("export")
            .arg("--bundle")
            .arg(path)
            .args(select)
            .args(["--reason", "case 123", "--as", "auditor-liaison"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let bundle = members(&by_grant);
    let manifest: serde_json::Value =
        serde_json::from_slice(member(&bundle, "manifest.json")).unwrap();
    let listed: BTreeSet<String> = manifest["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, incident, "exactly the incident's sessions");
    let reason_manifest: serde_json::Value =
        serde_json::from_slice(member(&members(&by_reason), "manifest.json")).unwrap();
    assert_eq!(reason_manifest["sessions"], manifest["sessions"]);
    assert_eq!(reason_manifest["selection"]["jit_reason"], "inc-42");
    assert_eq!(manifest["selection"]["jit"], grant.as_str());
    assert_eq!(manifest["created_by"]["reader"], "auditor-liaison");
    assert_eq!(manifest["created_by"]["reason"], "case 123");
    // Every object of every session, under its store path; nothing of any other session.
    let store_dir = PathBuf::from(cluster.store_url.trim_start_matches("file://"));
    for id in &incident {
        let dir = store_dir.join("sessions").join(id);
        let mut on_disk = Vec::new();
        for e in walk(&dir) {
            let rel = e
                .strip_prefix(&store_dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            on_disk.push(format!("store/{rel}"));
        }
        assert!(on_disk.len() >= 3, "{on_disk:?}");
        for path in &on_disk {
            let want = std::fs::read(store_dir.join(path.trim_start_matches("store/"))).unwrap();
            assert_eq!(member(&bundle, path), &want[..], "{path} exactly as stored");
        }
    }
    for (path, _) in &bundle {
        if let Some(rest) = path.strip_prefix("store/sessions/") {
            let id = rest.split('/').next().unwrap();
            let is_audit_stream = manifest["audit_streams"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["id"] == id);
            assert!(
                incident.contains(id) || is_audit_stream,
                "{path} is not the incident's"
            );
        }
    }
    // The grant's request and decision, and the audit streams with their records.
    member(&bundle, &format!("store/jit/requests/{grant}/request.json"));
    member(
        &bundle,
        &format!("store/jit/requests/{grant}/decision.json"),
    );
    assert!(
        !manifest["audit_streams"].as_array().unwrap().is_empty(),
        "{manifest:#}"
    );
    let records: Vec<serde_json::Value> = text(member(&bundle, "renderings/audit-records.jsonl"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for id in &incident {
        assert!(
            records.iter().any(|r| r["session"] == id.as_str()),
            "no audit record of {id}: {records:#?}"
        );
    }
    assert!(
        records.iter().any(|r| r["path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/requests/{grant}/approve"))
            && r["user"] == "bob@example.com"),
        "{records:#?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["method"] == "POST" && r["path"].as_str().unwrap().ends_with("/requests")),
        "the filing of the request: {records:#?}"
    );
    // The rendering is plain text with the command typed and its output.
    let short = &shell_session[shell_session.len() - 8..];
    let rendered = text(member(&bundle, &format!("renderings/{short}.txt")));
    assert!(
        rendered.contains("echo typed-$((6*7))") && rendered.contains("typed-42"),
        "{rendered}"
    );
    assert!(
        !rendered.contains('\u{1b}'),
        "no escape sequences: {rendered:?}"
    );

    // The reads log has the bundle's readings of each session.
    let out = cluster
        .kubetape()
        .args(["audit", "--reads", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reads: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for id in &incident {
        let n = reads
            .iter()
            .filter(|r| {
                r["session"] == id.as_str()
                    && r["action"] == "bundle"
                    && r["reader"] == "auditor-liaison"
                    && r["reason"] == "case 123"
            })
            .count();
        assert_eq!(n, 2, "two bundles read {id}: {reads:#?}");
    }

    // The auditor: another directory, only the bundle, no store, no keys.
    let auditor = tempfile::tempdir().unwrap();
    std::fs::copy(&by_grant, auditor.path().join("case-123.tar")).unwrap();
    let started = Instant::now();
    let (code, out, err) = audit_verify(auditor.path(), "case-123.tar", &[]);
    eprintln!(
        "verify --bundle: {:?} for {} members",
        started.elapsed(),
        bundle.len()
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    for id in &incident {
        assert!(out.contains(&format!("OK   session {id}")), "{out}");
    }
    assert!(out.contains("OK   audit stream "), "{out}");
    assert!(out.contains("SELF-ASSERTED"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    assert!(
        !auditor.path().join("home/.local").exists()
            && !auditor.path().join("home/.config").exists(),
        "verify --bundle created no store or keyring"
    );
    // Pinned to the exporter's key: passes; pinned to another key: fails.
    let pubkey = auditor.path().join("signing.pub");
    let out = cluster
        .kubetape()
        .args(["keys", "export-pub", "--out"])
        .arg(&pubkey)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (code, out, err) =
        audit_verify(auditor.path(), "case-123.tar", &["--pubkey", "signing.pub"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("the key given with --pubkey"), "{out}");
    let stranger = auditor.path().join("stranger");
    let out = Command::new(bin("kubetape"))
        .env("HOME", auditor.path())
        .arg("--keys")
        .arg(&stranger)
        .args(["keys", "init"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = Command::new(bin("kubetape"))
        .env("HOME", auditor.path())
        .arg("--keys")
        .arg(&stranger)
        .args(["keys", "export-pub", "--out"])
        .arg(auditor.path().join("stranger.pub"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (code, out, _) = audit_verify(
        auditor.path(),
        "case-123.tar",
        &["--pubkey", "stranger.pub"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("does not verify with the pinned key"), "{out}");

    // Tampering, member by member.
    let tampered = auditor.path().join("t.tar");
    let failing = |code: Option<i32>, out: &str, name: &str, what: &str| {
        assert_eq!(code, Some(1), "{what} {name}: {out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("FAIL") && l.contains(name)),
            "{what} {name}: no FAIL line names it:\n{out}"
        );
    };
    for i in 0..bundle.len() {
        let name = bundle[i].0.clone();
        // One byte flipped (an empty member gets one instead).
        let mut flipped = bundle.clone();
        let data = &mut flipped[i].1;
        if data.is_empty() {
            data.push(b'x');
        } else {
            let mid = data.len() / 2;
            data[mid] ^= 0x01;
        }
        write_tar(&tampered, &flipped);
        let (code, out, _) = audit_verify(auditor.path(), "t.tar", &[]);
        failing(code, &out, &name, "flipped");
        // Removed.
        let mut removed = bundle.clone();
        removed.remove(i);
        write_tar(&tampered, &removed);
        let (code, out, _) = audit_verify(auditor.path(), "t.tar", &[]);
        failing(code, &out, &name, "removed");
    }
    // The manifest edited: a hash, then the selection; the signature no longer verifies.
    let edits: [(&str, ManifestEdit); 2] = [
        ("hash", |m| {
            m["members"][0]["sha256"] = "0".repeat(64).into()
        }),
        ("selection", |m| {
            m["selection"]["jit"] = "0193a7c4-0000-7000-8000-000000000000".into()
        }),
    ];
    for (what, edit) in edits {
        let mut edited = bundle.clone();
        let at = edited
            .iter()
            .position(|(p, _)| p == "manifest.json")
            .unwrap();
        let mut m: serde_json::Value = serde_json::from_slice(&edited[at].1).unwrap();
        edit(&mut m);
        edited[at].1 = serde_json::to_vec_pretty(&m).unwrap();
        write_tar(&tampered, &edited);
        let (code, out, _) = audit_verify(auditor.path(), "t.tar", &[]);
        failing(code, &out, "manifest.json", what);
        assert!(out.contains("signature does not verify"), "{what}: {out}");
    }
    // An extra member.
    let mut extra = bundle.clone();
    extra.push(("renderings/planted.txt".into(), b"it was bob".to_vec()));
    write_tar(&tampered, &extra);
    let (code, out, _) = audit_verify(auditor.path(), "t.tar", &[]);
    failing(code, &out, "renderings/planted.txt", "extra");
    assert!(out.contains("EXTRA"), "{out}");
    // A link, an escaping path: refused before anything is extracted.
    for evil in ["link", "../escape"] {
        let mut b = tar::Builder::new(std::fs::File::create(&tampered).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(0);
        if evil == "link" {
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, "store/sessions", "/etc").unwrap();
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.as_old_mut().name[..9].copy_from_slice(b"../escape");
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
        }
        b.into_inner().unwrap();
        let (code, out, _) = audit_verify(auditor.path(), "t.tar", &[]);
        assert_eq!(code, Some(1), "{evil}: {out}");
        assert!(out.contains("unreadable bundle"), "{evil}: {out}");
    }
    assert!(!auditor.path().parent().unwrap().join("escape").exists());
}

/// Every file under `dir`, recursively.
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
