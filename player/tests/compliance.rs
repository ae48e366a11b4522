//! Compliance through the `kubetape` binary: crypto-shredding (readers refuse, verification
//! still passes and says so, the search index forgets), legal holds, the reads log behind every
//! `cat`/`play`/`export`, key rotation with re-wrapping and retirement, and short ids that stay
//! unique for sessions made together. Sessions are written as the gateway writes them, through
//! storage-schema's Recorder (with a commands object).

use std::time::{Duration, Instant};

use storage_schema::session::{Identity, SessionKind, Target};
use storage_schema::{Keyring, SessionMeta};
use test_support::{TempStore, Tmux};

mod common;
use common::{Env, KUBETAPE, text};

fn short(id: &str) -> &str {
    &id[id.len() - 8..]
}

/// Every file under `dir`, concatenated (to look for text that must not be there).
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn a_shredded_session_is_refused_verified_and_forgotten() {
    let env = Env::new();
    let secret = env
        .session(
            "alice",
            "prod",
            "cat /etc/top-secret-plans",
            "the plans\r\n",
        )
        .await;
    let other = env.session("bob", "dev", "ls -la /tmp", "a b c\r\n").await;
    // Indexed while it could be read.
    let (hits, _) = env.ok(&["search", "--json", "top-secret-plans"]);
    assert_eq!(hits.lines().count(), 1, "{hits}");

    let (_, said) = env.ok(&["shred", short(&secret), "--reason", "GDPR erasure #4411"]);
    assert!(
        said.contains("shredded on ") && said.contains("because GDPR erasure #4411"),
        "{said}"
    );
    assert!(
        !env.temp
            .store_dir()
            .join(format!("sessions/{secret}/dek.json"))
            .exists()
    );

    for read in [
        vec!["cat", secret.as_str()],
        vec!["export", secret.as_str(), "--format", "text"],
        vec!["export", secret.as_str(), "-o", "out.cast"],
    ] {
        let stderr = env.fails(&read);
        assert!(
            stderr.contains("shredded on ") && stderr.contains("because GDPR erasure #4411"),
            "{read:?}: {stderr}"
        );
        assert!(stderr.contains("by cli:tester"), "{stderr}");
    }
    // The other session reads as before.
    let (out, _) = env.ok(&["cat", &other]);
    assert_eq!(out, "a b c\r\n");

    // The auditor's check: intact, and the line says shredded, when, why.
    let public = env.temp.root().join("signing.pub");
    env.ok(&["keys", "export-pub", "--out", public.to_str().unwrap()]);
    for verify in [
        vec!["verify", "--all", "--pubkey", public.to_str().unwrap()],
        vec!["verify", "--all"],
    ] {
        let (stdout, _) = env.ok(&verify);
        let line = stdout
            .lines()
            .find(|l| l.contains(&secret))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(
            line.starts_with("OK ")
                && line.contains("sealed")
                && line.contains("shredded on ")
                && line.contains("because GDPR erasure #4411"),
            "{verify:?}: {line}"
        );
        let other_line = stdout.lines().find(|l| l.contains(&other)).unwrap();
        assert!(!other_line.contains("shredded"), "{other_line}");
    }

    // The index forgets the shredded session's commands: not found, and not on disk.
    let out = env.run(&["search", "--json", "top-secret-plans"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let (hits, _) = env.ok(&["search", "--json", "ls -la"]);
    assert_eq!(hits.lines().count(), 1);
    let on_disk = all_bytes(&env.index_dir());
    assert!(
        !on_disk
            .windows(b"top-secret-plans".len())
            .any(|w| w == b"top-secret-plans"),
        "the index still holds the shredded session's command"
    );
    // A second shred changes nothing and says so.
    let (_, again) = env.ok(&["shred", &secret, "--reason", "again"]);
    assert!(
        again.contains("already") && again.contains("GDPR erasure #4411"),
        "{again}"
    );
}

#[tokio::test]
async fn a_held_session_cannot_be_shredded_until_the_hold_is_lifted() {
    let env = Env::new();
    let id = env.session("alice", "prod-eu", "whoami", "alice\r\n").await;
    let spared = env.session("bob", "prod-eu", "whoami", "bob\r\n").await;
    assert!(
        env.fails(&["hold", "add", "--case", "C-1", "--reason", "r"])
            .contains("must name what it holds")
    );
    let (hold, _) = env.ok(&[
        "hold",
        "add",
        "--case",
        "CASE-123",
        "--reason",
        "litigation",
        "--user",
        "alice",
        "-n",
        "prod*",
    ]);
    let hold = hold.trim().to_string();
    let (listing, _) = env.ok(&["hold", "ls"]);
    assert!(
        listing.contains(&hold) && listing.contains("CASE-123") && listing.contains("users=alice"),
        "{listing}"
    );
    let refused = env.fails(&["shred", short(&id), "--reason", "erasure"]);
    assert!(
        refused.contains("legal hold") && refused.contains("CASE-123"),
        "{refused}"
    );
    env.ok(&["cat", &id]);
    // Not held: bob's.
    env.ok(&["shred", &spared, "--reason", "erasure"]);

    assert!(
        env.fails(&["hold", "remove", "ffffffff", "--reason", "x"])
            .contains("no hold in force")
    );
    env.ok(&["hold", "remove", short(&hold), "--reason", "case closed"]);
    let (listing, _) = env.ok(&["hold", "ls", "--json"]);
    assert!(listing.trim().is_empty(), "{listing}");
    env.ok(&["shred", &id, "--reason", "erasure"]);
    // The ledger keeps the history: one place and one lift.
    let entries = std::fs::read_dir(env.temp.store_dir().join("holds"))
        .unwrap()
        .count();
    assert_eq!(entries, 2);
}

#[tokio::test]
async fn every_read_is_in_the_reads_log_and_an_unloggable_read_is_refused() {
    let env = Env::new();
    let id = env
        .session("alice", "prod", "uptime", "up 3 days\r\n")
        .await;
    let before = storage_schema::time::unix_micros_now();
    env.ok(&[
        "cat",
        short(&id),
        "--reason",
        "INC-42 triage",
        "--as",
        "auditor-ann",
    ]);
    env.ok(&["export", &id, "--format", "text", "--reason", "evidence"]);
    env.ok(&[
        "export",
        &id[..13],
        "-o",
        env.temp.root().join("s.cast").to_str().unwrap(),
    ]);
    let reads = env.reads();
    let summary: Vec<(String, String, String, Option<String>)> = reads
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["reader"].as_str().unwrap().to_string(),
                r["os_user"].as_str().unwrap().to_string(),
                r["reason"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "cat".into(),
                "auditor-ann".into(),
                "tester".into(),
                Some("INC-42 triage".into())
            ),
            (
                "export".into(),
                "tester".into(),
                "tester".into(),
                Some("evidence".into())
            ),
            ("export".into(), "tester".into(), "tester".into(), None),
        ]
    );
    for r in &reads {
        assert_eq!(r["session"], id.as_str());
        let at = r["at_us"].as_u64().unwrap();
        assert!(at >= before && at <= storage_schema::time::unix_micros_now());
    }
    // The table names reader, time and reason.
    let (table, _) = env.ok(&["audit", "--reads", "--user", "auditor-ann"]);
    assert!(
        table.contains("auditor-ann")
            && table.contains("INC-42 triage")
            && table.contains(short(&id)),
        "{table}"
    );
    assert_eq!(table.lines().count(), 2, "{table}");

    // A store where the reads log cannot be written: nothing is read.
    let broken = env.temp.copy();
    std::fs::remove_dir_all(broken.store_dir().join("reads")).unwrap();
    std::fs::write(broken.store_dir().join("reads"), b"not a directory").unwrap();
    let out = broken.kubetape(KUBETAPE, &["cat", &id]).output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "content shown without a log entry");
    assert!(
        text(&out.stderr).contains("cannot write the reads log"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn play_is_logged_and_a_shredded_session_is_refused() {
    let env = Env::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (kept, shredded) = rt.block_on(async {
        (
            env.session("alice", "prod", "echo hi", "hello from the recording\r\n")
                .await,
            env.session("alice", "prod", "echo bye", "bye\r\n").await,
        )
    });
    env.ok(&["shred", &shredded, "--reason", "court order 7"]);
    let tmux = Tmux::new("compliance-play");
    let line = |args: &str| format!("USER=tester {}", env.temp.kubetape_line(KUBETAPE, args));
    tmux.window(
        "refused",
        100,
        30,
        &line(&format!("play {}", short(&shredded))),
    );
    let screen = tmux.wait("refused", "play to refuse", |s| s.contains("EXIT="));
    let flat = screen.replace('\n', "");
    assert!(
        flat.contains("shredded on")
            && flat.contains("because court order 7")
            && flat.contains("EXIT=1"),
        "{screen}"
    );
    tmux.window(
        "play",
        100,
        30,
        &line(&format!("play {} --reason 'review INC-9'", short(&kept))),
    );
    tmux.wait("play", "the recording on screen", |s| {
        s.contains("hello from the recording")
    });
    tmux.keys("play", &["q"]);
    tmux.wait("play", "play to quit", |s| s.contains("EXIT=0"));
    let reads = env.reads();
    let plays: Vec<&serde_json::Value> = reads.iter().filter(|r| r["action"] == "play").collect();
    assert_eq!(plays.len(), 2, "{reads:?}");
    assert_eq!(plays[1]["session"], kept.as_str());
    assert_eq!(plays[1]["reason"], "review INC-9");
    assert_eq!(
        plays[0]["session"],
        shredded.as_str(),
        "the refused attempt is logged too"
    );
}

#[tokio::test]
async fn keys_rotate_rewrap_and_retire_keep_every_session_readable() {
    let env = Env::new();
    let old = [
        env.session("alice", "prod", "date", "one\r\n").await,
        env.session("bob", "prod", "date", "two\r\n").await,
    ];
    let old_kek = env.keyring.current_kek().unwrap().id().to_string();
    env.ok(&["keys", "rotate"]);
    // Recorded after the rotation: wrapped by the new KEK from the start.
    let mut ring = Keyring::open(&env.temp.keys_dir()).unwrap();
    let new_kek = ring.current_kek().unwrap().id().to_string();
    assert_ne!(new_kek, old_kek);
    let newer = {
        let fresh = Env {
            temp: TempStore::new(),
            store: env.store.clone(),
            keyring: Keyring::open(&env.temp.keys_dir()).unwrap(),
        };
        fresh.session("carol", "prod", "date", "three\r\n").await
    };
    let refused = env.fails(&["keys", "retire", &old_kek]);
    assert!(
        refused.contains("2 stream(s) can only be read with"),
        "{refused}"
    );

    let (dry, _) = env.ok(&["keys", "rewrap", "--older-than", "0s", "--dry-run"]);
    assert_eq!(dry.lines().count(), 2, "{dry}");
    let (moved, summary) = env.ok(&["keys", "rewrap", "--older-than", "0s"]);
    assert_eq!(moved.lines().count(), 2, "{moved}");
    assert!(summary.contains("2 re-wrapped, 1 unchanged"), "{summary}");
    env.ok(&["keys", "retire", &old_kek]);
    assert!(
        !env.temp
            .keys_dir()
            .join(format!("kek-{old_kek}.key"))
            .exists()
    );
    let (list, _) = env.ok(&["keys", "list"]);
    assert!(!list.contains(&old_kek), "{list}");
    ring = Keyring::open(&env.temp.keys_dir()).unwrap();
    assert!(ring.kek(&old_kek).is_err());

    for (id, want) in [
        (&old[0], "one\r\n"),
        (&old[1], "two\r\n"),
        (&newer, "three\r\n"),
    ] {
        let (out, _) = env.ok(&["cat", id]);
        assert_eq!(out, want);
    }
    let (verified, _) = env.ok(&["verify", "--all"]);
    assert_eq!(
        verified.lines().filter(|l| l.starts_with("OK ")).count(),
        3,
        "{verified}"
    );
}

#[tokio::test]
async fn two_hundred_sessions_made_within_a_second_have_distinct_short_ids() {
    let env = Env::new();
    let started = Instant::now();
    let mut ids = Vec::new();
    let mut batch = Vec::new();
    for i in 0..200 {
        let meta = SessionMeta::new(
            SessionKind::Exec,
            Identity {
                user: format!("user{i}"),
                ..Default::default()
            },
            Target::default(),
            vec!["true".into()],
            false,
        );
        batch.push(meta);
    }
    // All metadata (so all ids, and start times) made first, within the second.
    let made = started.elapsed();
    assert!(made < Duration::from_secs(1), "{made:?}");
    let first_start = batch[0].started_at_us;
    let last_start = batch[199].started_at_us;
    assert!(last_start - first_start < 1_000_000);
    for (i, meta) in batch.into_iter().enumerate() {
        // The last one stays open, for `seal`.
        ids.push(
            env.write(meta, "true", &format!("out{i}\r\n"), i != 199)
                .await,
        );
    }
    let (listing, _) = env.ok(&["ls", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listing).unwrap();
    let shorts: std::collections::BTreeSet<&str> = listed
        .iter()
        .map(|s| s["short"].as_str().unwrap())
        .collect();
    assert_eq!(shorts.len(), 200, "short ids collide");
    let prefixes: std::collections::BTreeSet<&str> = ids.iter().map(|i| &i[..8]).collect();
    assert!(
        prefixes.len() < 10,
        "the old 8-character prefixes collide: {}",
        prefixes.len()
    );
    let (table, _) = env.ok(&["ls", "--limit", "3"]);
    assert!(
        table.lines().nth(1).unwrap().contains(short(&ids[199])),
        "{table}"
    );

    // Every command that takes a session takes its short id.
    let s = |i: usize| short(&ids[i]).to_string();
    let (out, _) = env.ok(&["cat", &s(3)]);
    assert_eq!(out, "out3\r\n");
    let (out, _) = env.ok(&["export", &s(4), "--format", "text"]);
    assert!(out.contains("out4"), "{out}");
    let (out, _) = env.ok(&["verify", &s(5), &s(6)]);
    assert!(out.contains(&ids[5]) && out.contains(&ids[6]), "{out}");
    env.ok(&["seal", &s(199)]);
    env.ok(&["shred", &s(7), "--reason", "test"]);
    let (hold, _) = env.ok(&[
        "hold",
        "add",
        "--case",
        "C",
        "--reason",
        "r",
        "--session",
        &s(8),
    ]);
    let (held, _) = env.ok(&["hold", "ls", "--json"]);
    assert!(
        held.contains(&ids[8]) && held.contains(hold.trim()),
        "{held}"
    );
    // (`play` takes it too: play_is_logged_and_a_shredded_session_is_refused.)
    // An ambiguous prefix is refused, naming the candidates.
    let ambiguous = env.fails(&["cat", &ids[0][..8]]);
    assert!(
        ambiguous.contains("matches") && ambiguous.contains("give more characters"),
        "{ambiguous}"
    );
    // Unknown and malformed ones are errors.
    assert!(env.fails(&["cat", "zz"]).contains("not a session id"));
    assert!(env.fails(&["cat", "0000ffff"]).contains("no session"));
}
