//! `kubetape search`: sessions written the way the gateway writes them (with a commands object,
//! through storage-schema's Recorder) are found by command, filtered, incrementally indexed,
//! and passwords typed at no-echo prompts never appear — not in the output, not in the index.

use std::path::PathBuf;
use std::process::Output;

use storage_schema::commands::CommandEntry;
use storage_schema::session::{Identity, SessionKind, Target};
use storage_schema::store::{Recorder, Store};
use storage_schema::{EventKind, FlushPolicy, Keyring, SessionMeta, Stream};
use test_support::TempStore;

const PASSWORD: &str = "hunter2-very-secret";

/// A store and keyring of the test's own, and the store and keyring opened for writing
/// sessions as the gateway does.
struct Env {
    temp: TempStore,
    store: Store,
    keyring: Keyring,
}

impl Env {
    fn new() -> Self {
        let temp = TempStore::new();
        let (store, keyring) = (temp.store(), temp.keyring());
        Self {
            temp,
            store,
            keyring,
        }
    }

    fn index_dir(&self) -> PathBuf {
        self.temp.root().join("index")
    }

    fn kubetape(&self, args: &[&str]) -> Output {
        self.temp
            .kubetape(env!("CARGO_BIN_EXE_kubetape"), args)
            .env("KUBETAPE_INDEX", self.index_dir())
            .output()
            .unwrap()
    }

    fn search_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["search", "--json"];
        all.extend_from_slice(args);
        let out = self.kubetape(&all);
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success() || (out.status.code() == Some(1) && stdout.is_empty()),
            "search {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Records a session as the gateway does; `seal` false leaves it open (live).
    #[allow(clippy::too_many_arguments)] // a test fixture: each call reads as one table row
    async fn session(
        &self,
        user: &str,
        namespace: &str,
        pod: &str,
        tty: bool,
        command: &[&str],
        typed: &[(u64, Option<&str>)],
        seal: bool,
    ) -> String {
        let mut meta = SessionMeta::new(
            SessionKind::Exec,
            Identity {
                user: user.into(),
                ..Default::default()
            },
            Target {
                cluster: Some("test".into()),
                namespace: Some(namespace.into()),
                pod: Some(pod.into()),
                ..Default::default()
            },
            command.iter().map(|s| s.to_string()).collect(),
            tty,
        );
        meta.started_at_us -= 3_600_000_000; // an hour ago
        let recorder = Recorder::start(
            self.store.clone(),
            &self.keyring,
            meta,
            FlushPolicy::default(),
        )
        .await
        .unwrap();
        let id = recorder.session().to_string();
        recorder
            .record(EventKind::Data {
                stream: Stream::Stdin,
                bytes: format!("{PASSWORD}\r").into_bytes(),
            })
            .await
            .unwrap();
        let entries = typed
            .iter()
            .map(|(at_us, text)| match text {
                Some(t) => CommandEntry::command(*at_us, *t),
                None => CommandEntry::redacted(*at_us),
            })
            .collect();
        if seal {
            if tty {
                recorder.finish_with_commands(None, entries).await.unwrap();
            } else {
                recorder.finish(None).await.unwrap();
            }
        } else {
            recorder.finish_unsealed().await.unwrap();
        }
        id
    }
}

#[tokio::test]
async fn finds_commands_by_session_offset_and_target_and_never_passwords() {
    let env = Env::new();
    let alice = env
        .session(
            "alice@example.com",
            "prod",
            "web-0",
            true,
            &["sh"],
            &[
                (1_000_000, Some("ls -l /data")),
                (2_500_000, None),
                (4_000_000, Some("rm -rf /data/cache")),
            ],
            true,
        )
        .await;
    let bob = env
        .session(
            "bob@example.com",
            "staging",
            "api-1",
            true,
            &["bash"],
            &[
                (7_000_000, Some("rm -rf /tmp/x")),
                (8_000_000, Some("for f in a b\ndo\n  rm $f\ndone")),
            ],
            true,
        )
        .await;
    let ci = env
        .session(
            "ci:deploy",
            "prod",
            "db-0",
            false,
            &["pg_dump", "--all"],
            &[],
            true,
        )
        .await;

    let hits = env.search_json(&["rm -rf"]);
    assert_eq!(hits.len(), 2, "{hits:?}");
    let a = hits
        .iter()
        .find(|h| h["session"] == alice.as_str())
        .unwrap();
    assert_eq!(a["offset_us"], 4_000_000);
    assert_eq!(a["number"], 3);
    assert_eq!(a["user"], "alice@example.com");
    assert_eq!(a["namespace"], "prod");
    assert_eq!(a["pod"], "web-0");
    assert_eq!(a["command"], "rm -rf /data/cache");
    assert!(hits.iter().any(|h| h["session"] == bob.as_str()));

    let prod = env.search_json(&["rm", "--namespace", "prod"]);
    assert_eq!(prod.len(), 1);
    assert_eq!(prod[0]["session"], alice.as_str());
    assert_eq!(
        env.search_json(&["rm", "--user", "bob@*"]).len(),
        2,
        "bob: two commands"
    );
    // `^` anchors at a command's start, also inside a multi-line command.
    let anchored = env.search_json(&["^  rm \\$f"]);
    assert_eq!(anchored.len(), 1);
    assert_eq!(anchored[0]["command"], "for f in a b\ndo\n  rm $f\ndone");
    // A non-interactive exec is found by its own command line.
    let dump = env.search_json(&["pg_dump"]);
    assert_eq!(dump.len(), 1);
    assert_eq!(dump[0]["session"], ci.as_str());
    // Time filters: everything was an hour ago.
    assert!(env.search_json(&["rm", "--since", "30m"]).is_empty());
    assert_eq!(env.search_json(&["rm", "--until", "30m"]).len(), 3);

    // The password typed at the no-echo prompt: in no output, in no index file.
    for args in [&["."][..], &["hunter2"][..], &["-i", "SECRET"][..]] {
        let out = env.kubetape(&[&["search"][..], args].concat());
        assert!(!String::from_utf8_lossy(&out.stdout).contains(PASSWORD));
    }
    for file in std::fs::read_dir(env.index_dir()).unwrap().flatten() {
        let bytes = std::fs::read(file.path()).unwrap();
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "{} holds the password",
            file.path().display()
        );
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(env.index_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "the index is private");

    // The table form names the session and the command.
    let out = env.kubetape(&["search", "rm -rf /data"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains(&alice[alice.len() - 8..]) && table.contains("rm -rf /data/cache"),
        "{table}"
    );
    // No hit: exit 1 and say so.
    let out = env.kubetape(&["search", "shutdown -h"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no command matches"));
}

#[tokio::test]
async fn the_index_follows_the_store_incrementally() {
    let env = Env::new();
    env.session(
        "a",
        "ns",
        "p",
        true,
        &["sh"],
        &[(1, Some("echo one"))],
        true,
    )
    .await;
    assert_eq!(env.search_json(&["echo"]).len(), 1);
    // A live session is not indexed until it is sealed…
    let live = env
        .session(
            "b",
            "ns",
            "p",
            true,
            &["sh"],
            &[(1, Some("echo two"))],
            false,
        )
        .await;
    assert_eq!(env.search_json(&["echo"]).len(), 1);
    // …and a new sealed one is picked up on the next search, without reading the old one.
    env.session(
        "c",
        "ns",
        "p",
        true,
        &["sh"],
        &[(1, Some("echo three"))],
        true,
    )
    .await;
    let hits = env.search_json(&["echo"]);
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits.iter().all(|h| h["session"] != live.as_str()));
    let segments = std::fs::read_dir(env.index_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ktix"))
        .count();
    assert_eq!(segments, 2, "one segment per sync that found something");
    // --no-sync searches what is indexed.
    env.session(
        "d",
        "ns",
        "p",
        true,
        &["sh"],
        &[(1, Some("echo four"))],
        true,
    )
    .await;
    assert_eq!(env.search_json(&["echo", "--no-sync"]).len(), 2);
    assert_eq!(env.search_json(&["echo"]).len(), 3);

    // A damaged index says how to recover, and --reindex rebuilds it.
    let seg = std::fs::read_dir(env.index_dir())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".ktix"))
        .unwrap()
        .path();
    std::fs::write(&seg, b"KTIXgarbage").unwrap();
    let out = env.kubetape(&["search", "echo"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--reindex"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.search_json(&["echo", "--reindex"]).len(), 3);
}

#[test]
fn bad_patterns_and_times_are_clear_errors() {
    let env = Env::new();
    let out = env.kubetape(&["search", "rm (-rf"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid regular expression"));
    let out = env.kubetape(&["search", "rm", "--since", "last tuesday"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a duration"));
}

/// A session sealed without a commands object (its gateway died; `kubetape seal` closed it as
/// interrupted) is searchable too: the index extracts its commands from the recorded terminal.
#[tokio::test]
async fn interrupted_sessions_are_extracted_by_the_index() {
    let env = Env::new();
    let mut meta = SessionMeta::new(
        SessionKind::Exec,
        Identity {
            user: "dave".into(),
            ..Default::default()
        },
        Target {
            namespace: Some("prod".into()),
            pod: Some("db-0".into()),
            ..Default::default()
        },
        vec!["sh".into()],
        true,
    );
    meta.size = Some(storage_schema::TermSize { cols: 80, rows: 24 });
    let recorder = Recorder::start(
        env.store.clone(),
        &env.keyring,
        meta,
        FlushPolicy::default(),
    )
    .await
    .unwrap();
    let id = recorder.session();
    for (at_us, stream, bytes) in [
        (10_000, Stream::Stdout, &b"$ "[..]),
        (2_000_000, Stream::Stdin, &b"psql -c 'drop table x'\r"[..]),
        (
            2_000_100,
            Stream::Stdout,
            &b"psql -c 'drop table x'\r\nDROP TABLE\r\n$ "[..],
        ),
    ] {
        recorder
            .record_at(storage_schema::Event {
                at_us,
                kind: EventKind::Data {
                    stream,
                    bytes: bytes.to_vec(),
                },
            })
            .await
            .unwrap();
    }
    recorder.finish_unsealed().await.unwrap();
    storage_schema::store::seal_interrupted(&env.store, &env.keyring, id)
        .await
        .unwrap();
    let hits = env.search_json(&["drop table"]);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["session"], id.to_string());
    assert_eq!(hits[0]["command"], "psql -c 'drop table x'");
    assert_eq!(hits[0]["offset_us"], 2_000_000);
}
