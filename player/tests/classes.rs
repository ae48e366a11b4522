//! The CLI over a store holding both classes of stream in both places: the legacy-layout
//! fixture (a session and an audit stream under `sessions/`, as older gateways wrote them) plus
//! streams written now (an audit stream under `audit/`, an open one there, a session with
//! commands). Each command shows what its class says: `ls`, `play`, `cat`, `export` and
//! `search` sessions only, `audit` every audit stream, `verify --all` and `seal` both.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use storage_schema::commands::CommandEntry;
use storage_schema::layout::{self, StreamDir, StreamRoot};
use storage_schema::session::{Identity, SessionKind, Target};
use storage_schema::store::{Recorder, Store};
use storage_schema::{EventKind, FlushPolicy, Keyring, SessionMeta, Stream};

/// The fixture's streams (see `storage-schema/tests/fixtures/legacy-layout/README.md`).
const LEGACY_SESSION: &str = "01a24188-c09f-70c4-a3b1-1cc088b5870b";
const LEGACY_AUDIT: &str = "01a24188-c0a8-7343-97fb-44af079b3d28";

struct Env {
    dir: tempfile::TempDir,
    store: Store,
    keyring: Keyring,
    /// Streams written by the test.
    session: String,
    audit: String,
    open_audit: String,
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn audit_meta() -> SessionMeta {
    SessionMeta::new(
        SessionKind::Audit,
        Identity {
            user: "kubetape-gateway".into(),
            ..Identity::default()
        },
        Target {
            cluster: Some("test".into()),
            host: Some("gw-new".into()),
            ..Target::default()
        },
        Vec::new(),
        false,
    )
}

fn record_json(user: &str, status: u16) -> String {
    serde_json::json!({
        "time_us": storage_schema::time::unix_micros_now(), "gateway": "gw-new",
        "user": user, "client": "127.0.0.1:1", "method": "GET", "path": "/api/v1/pods",
        "verb": "list", "resource": "pods", "namespace": "default", "decision": "allow",
        "status": status, "latency_ms": 0.5
    })
    .to_string()
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../storage-schema/tests/fixtures/legacy-layout"),
            dir.path(),
        );
        for entry in fs::read_dir(dir.path().join("keys")).unwrap() {
            fs::set_permissions(entry.unwrap().path(), fs::Permissions::from_mode(0o600)).unwrap();
        }
        let store = Store::open(&format!("file://{}", dir.path().join("store").display())).unwrap();
        let keyring = Keyring::open(&dir.path().join("keys")).unwrap();

        // A new audit stream, sealed, and one left open (its gateway died).
        let rec = Recorder::start(
            store.clone(),
            &keyring,
            audit_meta(),
            FlushPolicy::default(),
        )
        .await
        .unwrap();
        let audit = rec.session().to_string();
        rec.record(EventKind::Audit {
            json: record_json("carol@example.com", 201),
        })
        .await
        .unwrap();
        rec.finish(None).await.unwrap();
        let rec = Recorder::start(
            store.clone(),
            &keyring,
            audit_meta(),
            FlushPolicy::default(),
        )
        .await
        .unwrap();
        let open_audit = rec.session().to_string();
        rec.record(EventKind::Audit {
            json: record_json("dave@example.com", 202),
        })
        .await
        .unwrap();
        rec.finish_unsealed().await.unwrap();

        // A new session with a commands object, as the gateway writes one.
        let meta = SessionMeta::new(
            SessionKind::Exec,
            Identity {
                user: "bob@example.com".into(),
                ..Default::default()
            },
            Target {
                cluster: Some("test".into()),
                namespace: Some("prod".into()),
                pod: Some("db-0".into()),
                ..Default::default()
            },
            vec!["sh".into()],
            true,
        );
        let rec = Recorder::start(store.clone(), &keyring, meta, FlushPolicy::default())
            .await
            .unwrap();
        let session = rec.session().to_string();
        rec.record_data(
            Stream::Stdout,
            b"$ kubectl get pods\r\nnew-session-output\r\n",
        )
        .await
        .unwrap();
        rec.finish_with_commands(None, vec![CommandEntry::new(1, "kubectl get pods".into())])
            .await
            .unwrap();
        Self {
            dir,
            store,
            keyring,
            session,
            audit,
            open_audit,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kubetape"))
            .env_remove("KUBETAPE_STORE")
            .env_remove("KUBETAPE_KEYS")
            .env_remove("KUBETAPE_LOG")
            .env("KUBETAPE_INDEX", self.dir.path().join("index"))
            .arg("--store")
            .arg(format!("file://{}", self.root().display()))
            .arg("--keys")
            .arg(self.dir.path().join("keys"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `run`, on a terminal (`script` gives it a pseudo-terminal: `play` needs one), ended
    /// after 30 s should it wait for keys. Its stdout and stderr arrive together, as stdout.
    fn run_on_terminal(&self, args: &[&str]) -> Output {
        let line = format!(
            "timeout 30 env -u KUBETAPE_STORE -u KUBETAPE_KEYS -u KUBETAPE_LOG KUBETAPE_INDEX='{}' '{}' --store 'file://{}' --keys '{}' {}",
            self.dir.path().join("index").display(),
            env!("CARGO_BIN_EXE_kubetape"),
            self.root().display(),
            self.dir.path().join("keys").display(),
            args.join(" ")
        );
        Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
        (stdout, stderr)
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_store_holds_both_classes_in_both_places() {
    let env = Env::new().await;
    let root = env.root();
    assert!(
        root.join(format!("sessions/{LEGACY_AUDIT}/meta.json"))
            .is_file()
    );
    for id in [&env.audit, &env.open_audit] {
        let dir = StreamDir::new(StreamRoot::Audit, id.parse().unwrap());
        assert!(root.join(dir.meta()).is_file(), "{dir}");
        assert!(!root.join(layout::SESSIONS).join(id).exists());
    }
    assert!(
        root.join(layout::session_dir(env.session.parse().unwrap()))
            .is_dir()
    );
}

#[tokio::test]
async fn ls_lists_sessions_only() {
    let env = Env::new().await;
    let (stdout, _) = env.ok(&["ls", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let ids: Vec<&str> = listed
        .iter()
        .map(|s| s["session"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [env.session.as_str(), LEGACY_SESSION], "{stdout}");
    let (table, _) = env.ok(&["ls"]);
    assert!(!table.contains(LEGACY_AUDIT) && !table.contains(&env.audit));
    assert!(table.contains("bob@example.com") && table.contains("alice@example.com"));
}

#[tokio::test]
async fn audit_reads_every_audit_stream_old_and_new() {
    let env = Env::new().await;
    let (stdout, stderr) = env.ok(&["audit", "--json"]);
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut seen: Vec<(String, u64)> = records
        .iter()
        .map(|r| {
            (
                r["user"].as_str().unwrap().to_string(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("alice@example.com".to_string(), 200),
            ("carol@example.com".to_string(), 201),
            ("dave@example.com".to_string(), 202),
            ("mallory@example.com".to_string(), 403),
        ],
        "the legacy stream, the new one and the open one: {stderr}"
    );
    let times: Vec<u64> = records
        .iter()
        .map(|r| r["time_us"].as_u64().unwrap())
        .collect();
    assert!(times.is_sorted(), "oldest first");
    let (stdout, _) = env.ok(&["audit", "--json", "--user", "mallory@example.com"]);
    assert_eq!(stdout.lines().count(), 1);
    let (stdout, _) = env.ok(&["audit", "--json", "--user", "carol@example.com"]);
    assert_eq!(stdout.lines().count(), 1);
}

#[tokio::test]
async fn a_damaged_audit_stream_in_audit_is_reported_by_audit_and_verify() {
    let env = Env::new().await;
    let chunk = env
        .root()
        .join(StreamDir::new(StreamRoot::Audit, env.audit.parse().unwrap()).chunk(0));
    let mut bytes = fs::read(&chunk).unwrap();
    let i = 100.min(bytes.len() - 1);
    bytes[i] ^= 1;
    fs::write(&chunk, bytes).unwrap();
    let out = env.run(&["audit", "--json"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("audit stream {}", env.audit))
            && stderr.contains("chunk 0: signature does not verify"),
        "{stderr}"
    );
    assert!(!stdout.contains("carol"), "nothing from a damaged stream");
    assert!(stdout.contains("mallory"), "intact streams are still shown");
    let out = env.run(&["verify", "--all"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains(&format!("FAIL {}", env.audit)), "{stdout}");
}

#[tokio::test]
async fn verify_all_checks_every_stream_and_names_audit_streams() {
    let env = Env::new().await;
    let (stdout, stderr) = env.ok(&["verify", "--all"]);
    let line = |id: &str| {
        stdout
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} not verified: {stdout}"))
            .to_string()
    };
    for id in [LEGACY_AUDIT, env.audit.as_str()] {
        assert!(
            line(id).starts_with(&format!("OK   {id}  audit stream, sealed")),
            "{stdout}"
        );
    }
    assert!(
        line(&env.open_audit).starts_with(&format!("OK   {}  audit stream, open", env.open_audit))
    );
    for id in [LEGACY_SESSION, env.session.as_str()] {
        let l = line(id);
        assert!(l.starts_with(&format!("OK   {id}  sealed")), "{l}");
    }
    assert!(stderr.contains("5 sessions: 5 intact"), "{stderr}");
    // By a prefix of an id under audit/.
    let (stdout, _) = env.ok(&["verify", &env.audit[..30]]);
    assert!(stdout.starts_with(&format!("OK   {}  audit stream", env.audit)));
}

#[tokio::test]
async fn seal_finds_an_open_audit_stream_where_it_lies() {
    let env = Env::new().await;
    let (stdout, _) = env.ok(&["seal", &env.open_audit]);
    assert!(stdout.contains("as interrupted"), "{stdout}");
    let dir = StreamDir::new(StreamRoot::Audit, env.open_audit.parse().unwrap());
    assert!(env.root().join(dir.seal()).is_file());
    assert!(
        !env.root().join(layout::seal(dir.id())).exists(),
        "not under sessions/"
    );
    let (stdout, _) = env.ok(&["verify", &env.open_audit]);
    assert!(stdout.contains("audit stream, interrupted"), "{stdout}");
    // Its records are still read, now from a sealed stream.
    let (stdout, _) = env.ok(&["audit", "--json", "--user", "dave@example.com"]);
    assert_eq!(stdout.lines().count(), 1);
}

#[tokio::test]
async fn terminal_commands_refuse_audit_streams_in_either_place() {
    let env = Env::new().await;
    for id in [LEGACY_AUDIT, env.audit.as_str()] {
        for args in [
            vec!["cat", id],
            vec!["export", id, "--format", "text"],
            vec!["play", id],
        ] {
            let out = if args[0] == "play" {
                env.run_on_terminal(&args)
            } else {
                env.run(&args)
            };
            let (stdout, stderr) = text(&out);
            let stderr = stderr + &stdout;
            assert!(!out.status.success(), "{args:?}");
            assert!(
                stderr.contains("is a gateway's audit log, not a terminal session"),
                "{args:?}: {stderr}"
            );
        }
    }
    let (stdout, _) = env.ok(&["cat", LEGACY_SESSION]);
    assert!(stdout.contains("legacy"), "{stdout}");
    let (stdout, _) = env.ok(&["cat", &env.session]);
    assert!(stdout.contains("new-session-output"), "{stdout}");
}

#[tokio::test]
async fn search_indexes_sessions_and_skips_audit_streams() {
    let env = Env::new().await;
    let mut index = player::index::Index::open(&env.dir.path().join("lib-index")).unwrap();
    let report = index
        .sync(&env.store, &env.keyring, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (report.indexed, report.open, report.unreadable),
        (2, 0, 0),
        "the two sessions; the audit stream under sessions/ is skipped, those under audit/ never listed"
    );
    let (stdout, stderr) = env.ok(&["search", "--json", "kubectl get"]);
    let hits: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hits.len(), 1, "{stdout}{stderr}");
    assert_eq!(hits[0]["session"], env.session.as_str());
}
