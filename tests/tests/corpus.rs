//! The command-extraction corpus: scripted interactive sessions in bash, dash and busybox ash,
//! typed through tmux into real `kubectl exec -it` through the gateway, recorded, read back
//! with `SessionReader` and run through `transcript`'s extractor.
//!
//! Each case is a file in `tests/corpus/` (keystroke steps that wait for screen conditions,
//! and the commands expected). The test prints a diff per case, overall precision and recall,
//! fails below [`BAR`] either way, and fails if any secret a case typed at a no-echo prompt
//! shows up anywhere in what was extracted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use storage_schema::Keyring;
use storage_schema::store::{SessionReader, Store};
use test_support::Tmux;
use tests::{Cluster, Kubectl};

/// Both precision and recall must reach this.
const BAR: f64 = 0.95;

/// Cases recorded at once (each is a kubectl + a shell; mostly waiting on screens).
const PARALLEL: usize = 6;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// `bash`, `dash` or `busybox`.
    shell: String,
    /// Run in the pod whose bash emits OSC 133/7 marks.
    #[serde(default)]
    osc: bool,
    /// Strings typed at no-echo prompts: must never appear in any extracted field.
    #[serde(default)]
    secrets: Vec<String>,
    steps: Vec<Step>,
    expect: Vec<Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    /// Typed literally (`send-keys -l`).
    #[serde(default)]
    text: Option<String>,
    /// tmux key names sent after `text` (`Enter`, `BSpace`, `C-u`, `Left`, `Tab`, `Up`…).
    #[serde(default)]
    keys: Vec<String>,
    /// Pasted as a bracketed paste (`paste-buffer -p`) before `keys`.
    #[serde(default)]
    paste: Option<String>,
    /// Wait until this text occurs more often on the screen (with history) than before the
    /// step. Default after an `Enter`: a new `kt$` prompt.
    #[serde(default)]
    wait: Option<String>,
    /// How many more occurrences of `wait` to wait for: 2 when the typed text itself echoes
    /// it once (`read -p 'Name? '` waits for the echo *and* the prompt).
    #[serde(default = "one")]
    wait_count: usize,
    /// Do not wait at all (keys typed at a prompt that does not echo).
    #[serde(default)]
    no_wait: bool,
}

#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    text: String,
    #[serde(default)]
    redacted: bool,
    #[serde(default)]
    exit: Option<i32>,
    /// The working directory the shell reported (OSC 7) when the line was typed.
    #[serde(default)]
    cwd: Option<String>,
}

impl Expect {
    fn key(&self) -> String {
        if self.redacted {
            "<redacted>".into()
        } else {
            self.text.clone()
        }
    }
}

const PROMPT: &str = "kt$";

fn one() -> usize {
    1
}

fn load_cases() -> Vec<(String, Case)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/corpus")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            let case: Case =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, case)
        })
        .collect()
}

/// Plays one case in its own tmux session; returns when the shell has exited.
fn record(cluster: &Cluster, tmux: &Tmux, kubectl: &Path, kc: &Path, name: &str, case: &Case) {
    let pod = if case.osc { "shells-osc" } else { "shells" };
    let shell = match case.shell.as_str() {
        "bash" => "bash --norc --noprofile",
        "dash" => "dash -i",
        "busybox" => "busybox sh -i",
        other => panic!("{name}: unknown shell {other}"),
    };
    let cmdline = format!(
        "env HOME={home} {kubectl} --kubeconfig {kc} --cache-dir {home}/.kube/cache exec -it {pod} -- env KT_CASE={name} {shell}; echo KT-EXIT=$?; sleep 600",
        home = cluster.home.display(),
        kubectl = kubectl.display(),
        kc = kc.display(),
    );
    tmux.start(name, &cmdline);
    tmux.wait_count(name, PROMPT, 1);
    for step in &case.steps {
        let wait = step.wait.clone().or_else(|| {
            (step.keys.last().is_some_and(|k| k == "Enter")).then(|| PROMPT.to_owned())
        });
        let before = wait
            .as_deref()
            .map_or(0, |w| tmux.history(name).matches(w).count());
        if let Some(text) = &step.text {
            tmux.run(&["send-keys", "-t", name, "-l", text]);
        }
        if let Some(paste) = &step.paste {
            let buffer = format!("kt-{name}");
            tmux.run(&["set-buffer", "-b", &buffer, paste]);
            tmux.run(&["paste-buffer", "-p", "-d", "-b", &buffer, "-t", name]);
        }
        if !step.keys.is_empty() {
            let mut args = vec!["send-keys", "-t", name];
            args.extend(step.keys.iter().map(String::as_str));
            tmux.run(&args);
        }
        if let (Some(w), false) = (wait, step.no_wait) {
            tmux.wait_count(name, &w, before + step.wait_count);
        }
    }
    tmux.wait_count(name, "KT-EXIT=", 1);
    tmux.run(&["kill-session", "-t", name]);
}

/// An extracted command as compared: text (or `<redacted>`), exit code, cwd.
type Got = (String, Option<i32>, Option<String>);

#[derive(Debug, Default)]
struct Score {
    expected: usize,
    extracted: usize,
    matched: usize,
}

#[test]
fn extraction_corpus() {
    let kubectl = Kubectl::V1_33.path().expect("kubectl 1.33");
    let cases = load_cases();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    let started = Instant::now();
    let cluster = Cluster::start();
    let kc = cluster.kubeconfig("bob@example.com", &["developers"]);
    let tmux = Tmux::new("corpus");
    // A server with a placeholder session so per-case sessions can come and go.
    tmux.run(&["new-session", "-d", "-s", "keep", "sleep 600"]);

    let queue = Arc::new(Mutex::new(cases.iter().collect::<Vec<_>>()));
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            let queue = queue.clone();
            let (cluster, tmux, kubectl, kc) = (&cluster, &tmux, &kubectl, &kc);
            s.spawn(move || {
                loop {
                    let Some((name, case)) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    record(cluster, tmux, kubectl, kc, name, case);
                }
            });
        }
    });
    let recorded = started.elapsed();

    let sessions = cluster.wait_for_sealed_count(cases.len());
    let by_case: BTreeMap<String, String> = sessions
        .iter()
        .filter_map(|s| {
            let command = s["meta"]["command"].as_array()?;
            let tag = command
                .iter()
                .filter_map(|a| a.as_str()?.strip_prefix("KT_CASE="))
                .next()?;
            Some((tag.to_owned(), s["session"].as_str()?.to_owned()))
        })
        .collect();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::open(&cluster.store_url).unwrap();
    let ring = Keyring::open(&cluster.keys).unwrap();
    let mut total = Score::default();
    let mut leaks = Vec::new();
    let mut report = String::new();
    for (name, case) in &cases {
        let id = by_case
            .get(name)
            .unwrap_or_else(|| panic!("no recorded session for {name}: {sessions:#?}"));
        let (got, events) = rt.block_on(async {
            let reader = SessionReader::open(&store, &ring, id.parse().unwrap())
                .await
                .unwrap();
            let mut events = Vec::new();
            reader
                .for_each_event(|e| events.push(e.clone()))
                .await
                .unwrap();
            let batch = transcript::extract(reader.meta(), &events);
            // The gateway's way: take() after every event, as a live session is indexed.
            let mut live = transcript::CommandExtractor::new(reader.meta());
            let mut taken = Vec::new();
            for e in &events {
                live.feed(e);
                taken.extend(live.take());
            }
            taken.extend(live.finish());
            assert_eq!(taken, batch, "{name}: incremental extraction differs");
            (batch, events)
        });
        for secret in &case.secrets {
            // The secret really was typed (so the extractor had it in front of it)...
            let typed: Vec<u8> = events
                .iter()
                .filter_map(|e| match &e.kind {
                    storage_schema::EventKind::Data {
                        stream: storage_schema::Stream::Stdin,
                        bytes,
                    } => Some(bytes.as_slice()),
                    _ => None,
                })
                .flatten()
                .copied()
                .collect();
            assert!(
                typed.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{name}: secret {secret:?} was never typed"
            );
            // ...and none of it comes out.
            let all = format!("{got:?}");
            if all.contains(secret.as_str()) {
                leaks.push(format!("{name}: secret {secret:?} in {all}"));
            }
        }
        let got_keys: Vec<Got> = got
            .iter()
            .map(|c| {
                let key = if c.redacted {
                    "<redacted>".to_owned()
                } else {
                    c.text.clone()
                };
                (key, c.exit_code, c.cwd.clone())
            })
            .collect();
        // A match: same text (or both redacted), and the same exit code and cwd where expected.
        let mut unmatched: Vec<Option<&Got>> = got_keys.iter().map(Some).collect();
        let mut matched = 0;
        let mut missing = Vec::new();
        for e in &case.expect {
            let hit = unmatched.iter_mut().find(|g| {
                g.is_some_and(|(text, exit, cwd)| {
                    *text == e.key()
                        && (e.exit.is_none() || *exit == e.exit)
                        && (e.cwd.is_none() || *cwd == e.cwd)
                })
            });
            match hit {
                Some(slot) => {
                    *slot = None;
                    matched += 1;
                }
                None => missing.push(format!(
                    "{:?} (exit {:?}, cwd {:?})",
                    e.key(),
                    e.exit,
                    e.cwd
                )),
            }
        }
        let extra: Vec<String> = unmatched
            .into_iter()
            .flatten()
            .map(|(t, x, c)| format!("{t:?} (exit {x:?}, cwd {c:?})"))
            .collect();
        total.expected += case.expect.len();
        total.extracted += got.len();
        total.matched += matched;
        let status = if missing.is_empty() && extra.is_empty() {
            "ok"
        } else {
            "DIFF"
        };
        report.push_str(&format!(
            "{name} [{}{}]: {status} {matched}/{} expected, {} extracted\n",
            case.shell,
            if case.osc { "+osc" } else { "" },
            case.expect.len(),
            got.len()
        ));
        for m in &missing {
            report.push_str(&format!("    - missing {m}\n"));
        }
        for x in &extra {
            report.push_str(&format!("    + extra   {x}\n"));
        }
        if status != "ok" {
            report.push_str(&format!("    extracted: {got_keys:?}\n"));
            // The recording, for a closer look (timestamps and escaped bytes).
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("corpus");
            let _ = std::fs::create_dir_all(&dir);
            let dump: String = events
                .iter()
                .map(|e| match &e.kind {
                    storage_schema::EventKind::Data { stream, bytes } => {
                        format!("{} {stream:?} {}\n", e.at_us, bytes.escape_ascii())
                    }
                    other => format!("{} {other:?}\n", e.at_us),
                })
                .collect();
            let path = dir.join(format!("{name}.events"));
            let _ = std::fs::write(&path, dump);
            report.push_str(&format!("    events: {}\n", path.display()));
        }
    }
    let precision = total.matched as f64 / total.extracted.max(1) as f64;
    let recall = total.matched as f64 / total.expected.max(1) as f64;
    println!("{report}");
    println!(
        "corpus: {} cases, recorded in {:.1?}; {} expected, {} extracted, {} matched; precision {precision:.3}, recall {recall:.3} (bar {BAR})",
        cases.len(),
        recorded,
        total.expected,
        total.extracted,
        total.matched,
    );
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
    assert!(
        precision >= BAR && recall >= BAR,
        "precision {precision:.3} / recall {recall:.3} below {BAR}:\n{report}"
    );
}

/// A non-TTY exec whose stdin is a script for a shell: the exec's own command (with its exit
/// code) and each script line, in order; comments and blank lines are not commands.
#[test]
fn non_tty_exec_script() {
    let kubectl = Kubectl::V1_33.path().expect("kubectl 1.33");
    let cluster = Cluster::start();
    let kc = cluster.kubeconfig("bob@example.com", &["developers"]);
    let script = b"echo one\n# a comment\n\nuname -s\nfor i in 1 2; do echo $i; done\nexit 3\n";
    let (code, stdout, stderr) = tests::run(
        cluster.kubectl(&kubectl, &kc).args([
            "exec",
            "-i",
            "shells",
            "--",
            "env",
            "KT_CASE=script",
            "sh",
        ]),
        script,
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(3), "{}", String::from_utf8_lossy(&stderr));
    assert_eq!(String::from_utf8_lossy(&stdout), "one\nLinux\n1\n2\n");
    let sessions = cluster.wait_for_sealed_count(1);
    let id = sessions[0]["session"].as_str().unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got = rt.block_on(async {
        let store = Store::open(&cluster.store_url).unwrap();
        let ring = Keyring::open(&cluster.keys).unwrap();
        let reader = SessionReader::open(&store, &ring, id).await.unwrap();
        assert!(!reader.meta().tty);
        let mut events = Vec::new();
        reader
            .for_each_event(|e| events.push(e.clone()))
            .await
            .unwrap();
        transcript::extract(reader.meta(), &events)
    });
    let texts: Vec<&str> = got.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "env KT_CASE=script sh",
            "echo one",
            "uname -s",
            "for i in 1 2; do echo $i; done",
            "exit 3"
        ]
    );
    assert_eq!(got[0].exit_code, Some(3));
    assert!(got.windows(2).all(|w| w[0].at_us <= w[1].at_us));
}
