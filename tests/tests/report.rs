//! `kubetape report` end to end: a small, realistic store made through a real gateway with real
//! kubectl and the real CLI — two users' exec sessions in two namespaces, requests denied by
//! policy, a JIT grant (with a hostile reason) and two sessions under it, a port-forward, a legal
//! hold, a logged reading, a crypto-shredded session and one deleted by retention — then the
//! report in every format:
//!
//! - JSON and CSV (read by a strict CSV parser) agree with `kubetape ls --json`,
//!   `kubetape audit --json` and `kubetape audit --reads --json` on the same store: the same
//!   sessions, users, namespaces and counts, the same denials, the same grant and its sessions,
//!   and the integrity verdicts of `kubetape verify --all --pubkey` (one session shredded);
//! - the HTML page references nothing outside itself, and headless Chromium renders it: a
//!   screenshot shows every section's heading colour and the charts' bar colour, and the DOM
//!   Chromium builds has every heading, a user and the escaped reason, and no script ran.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufReader, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use player::report::chart::BAR_COLOUR;
use player::report::html::PALETTE;
use serde_json::Value;
use tests::{Cluster, DEFAULT_POLICY, Kubectl, bin, run};

const T: Duration = Duration::from_secs(60);

/// The JIT reason: markup and both quotes, as an attacker would type it.
const REASON: &str = "INC-9 <script>alert(\"x\")</script> it's \"urgent\", really";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The tests' policy, plus port-forwards to `default` pods' port 7000 for developers.
fn policy() -> String {
    let anchor = "[[roles]]\nname = \"pipeline-staging\"";
    assert!(DEFAULT_POLICY.contains(anchor));
    DEFAULT_POLICY.replacen(
        anchor,
        &format!(
            "[[roles.rules]]\nnamespaces = [\"default\"]\nresources = [\"pods/portforward\"]\n\
             verbs = [\"create\"]\nports = [7000]\ncapture = \"metadata\"\n\n{anchor}"
        ),
        1,
    )
}

fn kubetape_ok(cluster: &Cluster, args: &[&str]) -> Vec<u8> {
    let (code, out, err) = run(cluster.kubetape().args(args), b"", T);
    assert_eq!(code, Some(0), "kubetape {args:?}: {}", text(&err));
    out
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    text(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Runs Chromium headless in its own process group with a fresh profile, killing the whole
/// group when it ends or after `timeout`, and checking nothing of it is left; its stdout.
fn chromium(args: &[&str], profile: &Path, timeout: Duration) -> Vec<u8> {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .process_group(0);
    let mut child = cmd
        .spawn()
        .expect("chromium (Debian package `chromium`) is installed");
    let group = child.id().to_string();
    let kill_group = || {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .stderr(Stdio::null())
            .status();
    };
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > timeout {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever it left (crash handler, zygote), ended with it.
    kill_group();
    let _ = child.wait();
    let out = reader.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new("kill")
        .args(["-0", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            Instant::now() < deadline,
            "chromium's processes outlived it"
        );
        kill_group();
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = status.unwrap_or_else(|| panic!("chromium {args:?} ran past {timeout:?}"));
    assert!(status.success(), "chromium {args:?}: {status}");
    out
}

/// `#rrggbb` as bytes.
fn rgb(hex: &str) -> [u8; 3] {
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap();
    [byte(1), byte(3), byte(5)]
}

/// Every colour in a PNG (RGB or RGBA, 8 bits).
fn colours(png_path: &Path) -> (u32, u32, HashSet<[u8; 3]>) {
    let decoder = png::Decoder::new(BufReader::new(std::fs::File::open(png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("screenshot colour type {other:?}"),
    };
    let seen = buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, seen)
}

/// Writes a sealed session that started five days ago in namespace `old`, as the gateway writes
/// them (its UUIDv7 id backdated too), then runs `kubetape-gateway retention run` with a rule
/// keeping `old` one day (everything else ten years); returns the deleted session's id.
fn retention_deletes_an_old_session(cluster: &Cluster) -> String {
    use storage_schema::store::{Recorder, Store};
    use storage_schema::{
        Event, EventKind, ExitInfo, FlushPolicy, Identity, Keyring, SessionKind, SessionMeta,
        Stream, Target,
    };
    let keyring = Keyring::open(&cluster.keys).unwrap();
    let store = Store::open(&cluster.store_url).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = runtime.block_on(async {
        let mut meta = SessionMeta::new(
            SessionKind::Exec,
            Identity {
                user: "dave@example.com".into(),
                ..Identity::default()
            },
            Target {
                cluster: Some("sandbox".into()),
                namespace: Some("old".into()),
                pod: Some("legacy".into()),
                ..Target::default()
            },
            vec!["true".into()],
            false,
        );
        meta.started_at_us -= 5 * 86_400 * 1_000_000;
        let random: [u8; 10] = storage_schema::SessionId::new().as_bytes()[6..]
            .try_into()
            .unwrap();
        meta.session = storage_schema::store::ledger::name_at(meta.started_at_us, random)
            .parse()
            .unwrap();
        let recorder = Recorder::start(store, &keyring, meta, FlushPolicy::default())
            .await
            .unwrap();
        let id = recorder.session().to_string();
        recorder
            .record_at(Event {
                at_us: 1,
                kind: EventKind::Data {
                    stream: Stream::Stdout,
                    bytes: b"old\n".to_vec(),
                },
            })
            .await
            .unwrap();
        recorder
            .finish(Some(ExitInfo {
                code: 0,
                message: String::new(),
            }))
            .await
            .unwrap();
        id
    });
    let config = cluster.root().join("gateway-retention.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[retention]\n[[retention.rules]]\nname = \"old-one-day\"\nkeep_days = 1\n\
             namespaces = [\"old\"]\n[[retention.rules]]\nname = \"ten-years\"\nkeep_days = 3650\n",
            std::fs::read_to_string(cluster.gateway_config()).unwrap()
        ),
    )
    .unwrap();
    let (code, out, err) = run(
        Command::new(bin("kubetape-gateway"))
            .env("HOME", &cluster.home)
            .args(["retention", "run", "--config"])
            .arg(&config),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}{}", text(&out), text(&err));
    assert!(
        text(&out).contains(&id) || text(&err).contains(&id),
        "{}{}",
        text(&out),
        text(&err)
    );
    id
}

fn report(cluster: &Cluster, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["report", "--since", "1d"];
    all.extend_from_slice(args);
    kubetape_ok(cluster, &all)
}

#[test]
fn report_agrees_with_ls_and_audit_and_renders_in_chromium() {
    let Some(kubectl) = Kubectl::V1_33.path() else {
        return;
    };
    let cluster = Cluster::start_with_policy(&policy());
    let alice = cluster.kubeconfig("alice@example.com", &["developers"]);
    let bob = cluster.kubeconfig("bob@example.com", &["developers", "sre"]);
    let carol = cluster.kubeconfig("carol@example.com", &["developers"]);
    let exec = |kc: &Path, ns: &str, pod: &str, word: &str| {
        run(
            cluster
                .kubectl(&kubectl, kc)
                .args(["exec", "-n", ns, pod, "--", "echo", word]),
            b"",
            T,
        )
    };
    let exec_ok = |kc: &Path, ns: &str, pod: &str, word: &str| {
        let (code, out, err) = exec(kc, ns, pod, word);
        assert_eq!(code, Some(0), "{}", text(&err));
        assert_eq!(text(&out), format!("{word}\n"));
    };

    // Two users, two namespaces.
    exec_ok(&alice, "default", "demo", "a1");
    exec_ok(&bob, "staging", "web", "b1");
    exec_ok(&alice, "default", "demo", "a2");
    // Denied by policy: two requests.
    assert_ne!(exec(&carol, "prod", "db", "no").0, Some(0));
    assert_ne!(exec(&alice, "prod", "db", "not-yet").0, Some(0));
    // A JIT grant, approved by bob, with two sessions under it.
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
    let request: Value = serde_json::from_slice(&out).unwrap();
    let grant_id = request["id"].as_str().unwrap().to_string();
    let (code, _, err) = run(
        cluster.kubetape_as(&bob).args(["approve", &grant_id]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", text(&err));
    exec_ok(&alice, "prod", "db", "g1");
    exec_ok(&alice, "prod", "db", "g2");
    // A port-forward.
    cluster.forward_echo(&kubectl, &alice, ("default", "demo", 7000), b"ping\n");

    let sessions = cluster.wait_for_sealed_count(6);
    assert_eq!(sessions.len(), 6, "{sessions:#?}");
    let id_of = |s: &Value| s["session"].as_str().unwrap().to_string();
    let bob_session = sessions
        .iter()
        .find(|s| s["meta"]["identity"]["user"] == "bob@example.com")
        .map(id_of)
        .unwrap();
    // A hold and a logged reading.
    kubetape_ok(
        &cluster,
        &[
            "hold",
            "add",
            "--case",
            "CASE-1",
            "--reason",
            "litigation",
            "--user",
            "bob@example.com",
        ],
    );
    kubetape_ok(
        &cluster,
        &[
            "cat",
            &bob_session,
            "--reason",
            "report test",
            "--as",
            "auditor",
        ],
    );

    // A session from five days ago, deleted now by a retention rule of one day.
    let expired = retention_deletes_an_old_session(&cluster);

    // A crypto-shredded session: its content is gone, its proof stays (and the report says so).
    let shredded = sessions
        .iter()
        .find(|s| s["meta"]["command"] == serde_json::json!(["echo", "a1"]))
        .map(id_of)
        .unwrap();
    kubetape_ok(&cluster, &["shred", &shredded, "--reason", "GDPR erasure"]);

    // The audit log is written by the gateway a second at a time: wait for both denials and
    // the grant's two sessions to be in it.
    let deadline = Instant::now() + T;
    let audit = loop {
        let audit = json_lines(&kubetape_ok(&cluster, &["audit", "--json"]));
        let denied = audit.iter().filter(|r| r["decision"] != "allow").count();
        let granted = audit
            .iter()
            .filter(|r| r["grant"] == grant_id.as_str() && r["session"].is_string())
            .count();
        if denied >= 2 && granted >= 2 {
            break audit;
        }
        assert!(
            Instant::now() < deadline,
            "audit log incomplete: {audit:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let ls: Vec<Value> = serde_json::from_slice(&kubetape_ok(&cluster, &["ls", "--json"])).unwrap();
    let reads = json_lines(&kubetape_ok(&cluster, &["audit", "--reads", "--json"]));
    assert_eq!(reads.len(), 1);
    let denials: Vec<&Value> = audit.iter().filter(|r| r["decision"] != "allow").collect();
    let grant_sessions: BTreeSet<String> = ls
        .iter()
        .filter(|s| s["meta"]["grant"]["id"] == grant_id.as_str())
        .map(id_of)
        .collect();
    assert_eq!(grant_sessions.len(), 2);
    let mut per_user: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_ns: BTreeMap<String, usize> = BTreeMap::new();
    for s in &ls {
        *per_user
            .entry(s["meta"]["identity"]["user"].as_str().unwrap().into())
            .or_default() += 1;
        *per_ns
            .entry(s["meta"]["target"]["namespace"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(per_user["alice@example.com"], 5);
    assert_eq!(per_ns.len(), 3, "{per_ns:?}");

    // JSON.
    let doc: Value = serde_json::from_slice(&report(&cluster, &["--format", "json"])).unwrap();
    assert_eq!(
        doc["sessions"],
        Value::Array(ls.clone()),
        "sessions are ls --json's"
    );
    assert_eq!(
        doc["denials"],
        Value::Array(denials.iter().map(|v| (*v).clone()).collect()),
        "denials are audit --json's"
    );
    assert_eq!(doc["reads"], Value::Array(reads.clone()));
    let counted = |key: &str, name: &str| -> BTreeMap<String, usize> {
        doc[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e[name].as_str().unwrap().to_string(),
                    e["sessions"].as_u64().unwrap() as usize,
                )
            })
            .collect()
    };
    assert_eq!(counted("sessions_per_user", "user"), per_user);
    assert_eq!(counted("sessions_per_namespace", "namespace"), per_ns);
    let per_day: usize = counted("sessions_per_day", "day").values().sum();
    assert_eq!(per_day, ls.len());
    assert_eq!(doc["summary"]["sessions"], ls.len());
    assert_eq!(doc["summary"]["denials"], denials.len());
    let grants = doc["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{grants:#?}");
    let g = &grants[0];
    assert_eq!(g["id"], grant_id.as_str());
    assert_eq!(g["requester"], "alice@example.com");
    assert_eq!(g["decided_by"], "bob@example.com");
    assert_eq!(g["reason"], REASON);
    assert_eq!(g["role"], "prod-debug");
    assert_eq!(g["state"], "approved");
    assert_eq!(g["ttl_secs"], 1800);
    let under: BTreeSet<String> = g["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(under, grant_sessions);
    let forward: Vec<String> = ls
        .iter()
        .filter(|s| s["meta"]["kind"] == "port-forward")
        .map(id_of)
        .collect();
    assert_eq!(forward.len(), 1);
    assert_eq!(doc["port_forward"], serde_json::json!(forward));
    assert_eq!(doc["debug"], serde_json::json!([]));
    // Every session's recording, and the audit stream, intact.
    let integrity = doc["integrity"].as_array().unwrap();
    for s in &ls {
        let i = integrity
            .iter()
            .find(|i| i["session"] == s["session"])
            .unwrap_or_else(|| panic!("no integrity line for {}", s["session"]));
        assert_eq!(i["status"], "OK", "{i:#}");
    }
    assert!(
        integrity.iter().any(|i| i["class"] == "audit-stream"),
        "{integrity:#?}"
    );
    let shred = integrity
        .iter()
        .find(|i| i["session"] == shredded.as_str())
        .unwrap();
    assert_eq!(shred["shredded"]["reason"], "GDPR erasure", "{shred:#}");
    assert_eq!(doc["summary"]["integrity"]["shredded"], 1);
    // The same verdicts as `kubetape verify --all --pubkey`, and the same report with --pubkey.
    let public = cluster.root().join("signing.pub");
    kubetape_ok(
        &cluster,
        &["keys", "export-pub", "--out", public.to_str().unwrap()],
    );
    let verified: BTreeSet<(String, String)> = text(&kubetape_ok(
        &cluster,
        &["verify", "--all", "--pubkey", public.to_str().unwrap()],
    ))
    .lines()
    .filter(|l| !l.starts_with(' '))
    .map(|l| {
        let mut words = l.split_whitespace();
        let status = words.next().unwrap().to_string();
        (words.next().unwrap().to_string(), status)
    })
    .collect();
    let reported = |doc: &Value| -> BTreeSet<(String, String)> {
        doc["integrity"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["session"].as_str().unwrap().to_string(),
                    i["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(reported(&doc), verified);
    let with_pubkey: Value = serde_json::from_slice(&report(
        &cluster,
        &["--format", "json", "--pubkey", public.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(reported(&with_pubkey), verified);
    let deleted = doc["retention_deleted"].as_array().unwrap();
    assert_eq!(deleted.len(), 1, "{deleted:#?}");
    assert_eq!(deleted[0]["session"], expired.as_str());
    assert_eq!(deleted[0]["rule"], "old-one-day");
    assert!(
        !ls.iter().any(|s| s["session"] == expired.as_str()),
        "retention deleted it"
    );
    let holds = doc["holds"].as_array().unwrap();
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0]["case"], "CASE-1");
    assert_eq!(doc["notes"], serde_json::json!([]));

    // CSV, read strictly (every record as wide as the header, quotes well formed).
    let csv_bytes = report(&cluster, &["--format", "csv"]);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(csv_bytes.as_slice());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, player::report::csv::HEADER);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let section =
        |name: &str| -> Vec<&csv::StringRecord> { rows.iter().filter(|r| &r[0] == name).collect() };
    let csv_sessions = section("session");
    assert_eq!(csv_sessions.len(), ls.len());
    for (row, s) in csv_sessions.iter().zip(&ls) {
        assert_eq!(&row[col("id")], s["session"].as_str().unwrap());
        assert_eq!(
            &row[col("user")],
            s["meta"]["identity"]["user"].as_str().unwrap()
        );
        assert_eq!(
            &row[col("namespace")],
            s["meta"]["target"]["namespace"].as_str().unwrap()
        );
        assert_eq!(&row[col("kind")], s["meta"]["kind"].as_str().unwrap());
        assert_eq!(&row[col("state")], s["state"].as_str().unwrap());
    }
    let csv_counts = |name: &str, key: &str| -> BTreeMap<String, usize> {
        section(name)
            .iter()
            .map(|r| (r[col(key)].to_string(), r[col("count")].parse().unwrap()))
            .collect()
    };
    assert_eq!(csv_counts("per_user", "user"), per_user);
    assert_eq!(csv_counts("per_namespace", "namespace"), per_ns);
    let csv_denials = section("denial");
    assert_eq!(csv_denials.len(), denials.len());
    for (row, d) in csv_denials.iter().zip(&denials) {
        assert_eq!(&row[col("user")], d["user"].as_str().unwrap());
        assert_eq!(&row[col("reason")], d["reason"].as_str().unwrap_or(""));
    }
    let csv_grants = section("grant");
    assert_eq!(csv_grants.len(), 1);
    assert_eq!(&csv_grants[0][col("id")], grant_id.as_str());
    assert_eq!(&csv_grants[0][col("reason")], REASON);
    assert_eq!(&csv_grants[0][col("by")], "bob@example.com");
    let csv_under: BTreeSet<String> = csv_grants[0][col("ref")]
        .split(' ')
        .map(String::from)
        .collect();
    assert_eq!(csv_under, grant_sessions);
    assert_eq!(section("port_forward").len(), 1);
    assert_eq!(section("hold").len(), 1);
    assert_eq!(section("read").len(), 1);
    let csv_deleted = section("deleted");
    assert_eq!(csv_deleted.len(), 1);
    assert_eq!(&csv_deleted[0][col("id")], expired.as_str());
    assert_eq!(&csv_deleted[0][col("reason")], "old-one-day");
    let csv_shred: Vec<_> = section("integrity")
        .into_iter()
        .filter(|r| !r[col("reason")].is_empty())
        .collect();
    assert_eq!(csv_shred.len(), 1);
    assert_eq!(&csv_shred[0][col("id")], shredded.as_str());
    assert_eq!(&csv_shred[0][col("reason")], "GDPR erasure");

    // HTML: self-contained, escaped.
    let dir = cluster.root().join("report-html");
    std::fs::create_dir_all(&dir).unwrap();
    let page_path = dir.join("report.html");
    kubetape_ok(
        &cluster,
        &["report", "--since", "1d", "-o", page_path.to_str().unwrap()],
    );
    let page = std::fs::read_to_string(&page_path).unwrap();
    for external in ["http://", "https://", "src=", "<link", "@import", "url("] {
        assert!(!page.contains(external), "{external} in the HTML report");
    }
    assert!(
        !page.contains("<script"),
        "markup from the store got through"
    );
    assert!(page.contains("INC-9 &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; it&#39;s"));

    // Headless Chromium. `--blink-settings=scriptEnabled=false` is not used: Chromium 156's
    // headless mode takes screenshots and DOM dumps through page script, and with it produces
    // neither. The page forbids script itself (Content-Security-Policy), checked below.
    let height = 6000;
    let shot = dir.join("report.png");
    let started = Instant::now();
    chromium(
        &[
            &format!("--window-size=1280,{height}"),
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", page_path.display()),
        ],
        &dir.join("profile-shot"),
        T,
    );
    let shot_time = started.elapsed();
    let (w, h, seen) = colours(&shot);
    assert!(w == 1280 && h >= 2000, "screenshot {w}x{h}");
    for s in PALETTE {
        assert!(
            seen.contains(&rgb(s.colour)),
            "section {} heading colour {} not in the screenshot {}",
            s.id,
            s.colour,
            shot.display()
        );
    }
    assert!(
        seen.contains(&rgb(BAR_COLOUR)),
        "no chart bar in the screenshot"
    );

    let started = Instant::now();
    let dom = text(&chromium(
        &["--dump-dom", &format!("file://{}", page_path.display())],
        &dir.join("profile-dom"),
        T,
    ));
    let dom_time = started.elapsed();
    for s in PALETTE {
        assert!(
            dom.contains(&format!("<section id=\"{}\"><h2>{}</h2>", s.id, s.title)),
            "{} missing from the DOM",
            s.id
        );
    }
    assert!(dom.contains("alice@example.com") && dom.contains("bob@example.com"));
    assert!(dom.contains("INC-9 &lt;script&gt;alert(\"x\")&lt;/script&gt; it's"));
    assert!(!dom.contains("<script"), "a script element in the DOM");

    // The page's policy stops a script even if one got in.
    let probe = dir.join("probe.html");
    std::fs::write(
        &probe,
        page.replacen(
            "</body>",
            "<script>document.querySelector('h1').textContent='SCRIPT-RAN'</script></body>",
            1,
        ),
    )
    .unwrap();
    let dom = text(&chromium(
        &["--dump-dom", &format!("file://{}", probe.display())],
        &dir.join("profile-probe"),
        T,
    ));
    assert!(dom.contains("<h1>kubetape compliance report</h1>"), "{dom}");
    // For a person to look at: KUBETAPE_TEST_KEEP_REPORT=DIR keeps the page and screenshot.
    if let Some(keep) = std::env::var_os("KUBETAPE_TEST_KEEP_REPORT") {
        let keep = Path::new(&keep);
        std::fs::create_dir_all(keep).unwrap();
        for f in ["report.html", "report.png"] {
            std::fs::copy(dir.join(f), keep.join(f)).unwrap();
        }
    }
    eprintln!(
        "report.rs: chromium screenshot {:.2}s, DOM dump {:.2}s",
        shot_time.as_secs_f64(),
        dom_time.as_secs_f64()
    );
}

#[test]
fn bad_windows_and_formats_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let kubetape = || {
        let mut cmd = Command::new(bin("kubetape"));
        cmd.arg("--store")
            .arg(&store)
            .arg("--keys")
            .arg(dir.path().join("keys"));
        cmd
    };
    for (args, want) in [
        (
            vec!["report", "--since", "1d", "--until", "2d"],
            "is not before --until",
        ),
        (
            vec!["report", "--since", "yesterday"],
            "is neither a duration",
        ),
        (vec!["report", "--format", "xml"], "invalid value 'xml'"),
    ] {
        let (code, _, err) = run(kubetape().args(&args), b"", T);
        assert_ne!(code, Some(0), "{args:?}");
        assert!(text(&err).contains(want), "{args:?}: {}", text(&err));
    }
    // An empty store without a keyring: the report is made, says what is missing, exits 1.
    let out = dir.path().join("r.json");
    let (code, _, err) = run(
        kubetape().args(["report", "-o", out.to_str().unwrap()]),
        b"",
        T,
    );
    assert_eq!(code, Some(1), "{}", text(&err));
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["sessions"], serde_json::json!([]));
    assert!(
        doc["notes"][0]
            .as_str()
            .unwrap()
            .contains("the audit log needs the keyring"),
        "{doc:#}"
    );
}
