//! The command-extraction corpus: scripted interactive sessions in bash, zsh (plain and with
//! themed prompts), fish, mksh, dash and busybox ash, typed through tmux into the real shells,
//! some through the gateway (`kubectl exec -it`), some locally (`kubetape record`), recorded,
//! read back with `SessionReader` and run through `transcript`'s extractor.
//!
//! Each case is a file in `tests/corpus/` (keystroke steps that wait for screen conditions,
//! and every line it types, as the entry it must become). The test prints a diff per case,
//! precision and recall per shell and overall, and the recall of lines typed ahead; it fails
//! below [`BAR`] overall, below [`SHELL_BAR`] for any shell, if any line typed ahead is
//! missing, if extracting as events arrive differs from extracting at the end, or if any
//! secret a case typed at a no-echo prompt shows up, byte for byte, in any extracted entry,
//! any file of a search index built over the whole corpus, any `kubetape search` output or any
//! export (asciicast v2, v3, text) of any session.
//!
//! `KT_CORPUS=<part>[,<part>...]` records only the cases whose names contain one of the parts
//! (and checks no bar);
//! `KT_CORPUS_DUMP=1` writes every recording as text to `target/tmp/corpus/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use storage_schema::commands::{CommandEntry, EntryKind};
use storage_schema::store::{SessionReader, Store};
use storage_schema::{Event, EventKind, Keyring, Stream};
use test_support::Tmux;
use tests::{Cluster, Kubectl};

/// Precision and recall over the whole corpus must reach this.
const BAR: f64 = 0.97;
/// ...and over each shell's cases, this.
const SHELL_BAR: f64 = 0.95;

/// Cases recorded at once (each is a kubectl or `kubetape record` and a shell; mostly waiting
/// on screens).
const PARALLEL: usize = 6;

/// Fewest cases the corpus may have.
const MIN_CASES: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// `bash`, `zsh`, `fish`, `mksh`, `dash` or `busybox`.
    shell: String,
    /// How the session is recorded: through the gateway (`kubectl exec -it`) or locally
    /// (`kubetape record`).
    #[serde(default)]
    via: Via,
    /// A start-up file from `tests/corpus/rc/` (zsh: a `ZDOTDIR`; fish: sourced; bash:
    /// `--rcfile`; mksh, dash, ash: `ENV`).
    #[serde(default)]
    rc: Option<String>,
    /// Shown in the report under this shell name (`zsh-themed`).
    #[serde(default)]
    report_as: Option<String>,
    /// Run in the pod whose bash emits OSC 133/7 marks.
    #[serde(default)]
    osc: bool,
    /// Text every prompt shows, waited for after each Enter (default `kt$`); a list when it
    /// differs by user (`#` for root, `$` otherwise), counted together.
    #[serde(default)]
    prompt: Option<Marker>,
    /// How keys are sent: all at once (`send-keys`, like a paste) or one by one with a typist's
    /// pauses.
    #[serde(default)]
    typing: Typing,
    /// Terminal size (default 100×30).
    #[serde(default)]
    size: Option<[u16; 2]>,
    /// Extra environment for the shell (`NAME=value`).
    #[serde(default)]
    env: Vec<String>,
    /// Strings typed at no-echo prompts: must never appear anywhere.
    #[serde(default)]
    secrets: Vec<String>,
    steps: Vec<Step>,
    expect: Vec<Expect>,
}

/// What a prompt shows: one text, or any of several.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
enum Marker {
    One(String),
    Any(Vec<String>),
}

impl Marker {
    fn texts(&self) -> Vec<String> {
        match self {
            Marker::One(t) => vec![t.clone()],
            Marker::Any(ts) => ts.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Via {
    #[default]
    Gateway,
    Local,
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Typing {
    #[default]
    Burst,
    Human,
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
    /// The window is resized to this before anything is typed.
    #[serde(default)]
    resize: Option<[u16; 2]>,
    /// Wait until this text occurs more often on the screen (with history) than before the
    /// step. Default after an `Enter`: one more prompt.
    #[serde(default)]
    wait: Option<String>,
    /// How many more occurrences of `wait` to wait for.
    #[serde(default = "one")]
    wait_count: usize,
    /// Do not wait at all (keys typed at a prompt that does not echo, or typed ahead).
    #[serde(default)]
    no_wait: bool,
}

#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    text: String,
    /// `command` (default), `input`, `redacted` or `aborted`.
    #[serde(default)]
    kind: Option<String>,
    /// Shorthand for `kind = "redacted"`.
    #[serde(default)]
    redacted: bool,
    /// What was typed, when the shell ran an expansion of it.
    #[serde(default)]
    typed: Option<String>,
    /// Typed while the previous command ran: counted in the type-ahead recall (as an entry
    /// of any kind with this text).
    #[serde(default)]
    typeahead: bool,
    #[serde(default)]
    exit: Option<i32>,
    /// The working directory the shell reported (OSC 7) when the line was typed.
    #[serde(default)]
    cwd: Option<String>,
}

impl Expect {
    fn kind(&self) -> EntryKind {
        if self.redacted {
            return EntryKind::Redacted;
        }
        match self.kind.as_deref().unwrap_or("command") {
            "command" => EntryKind::Command,
            "input" => EntryKind::Input,
            "redacted" => EntryKind::Redacted,
            "aborted" => EntryKind::Aborted,
            other => panic!("unknown kind {other:?}"),
        }
    }

    fn text(&self) -> &str {
        if self.kind() == EntryKind::Redacted {
            ""
        } else {
            &self.text
        }
    }

    fn matches(&self, got: &CommandEntry) -> bool {
        got.kind == self.kind()
            && got.shown_text().unwrap_or("") == self.text()
            && (self.exit.is_none() || got.exit_code == self.exit)
            && (self.cwd.is_none() || got.cwd == self.cwd)
            && (self.typed.is_none() || got.typed == self.typed)
    }

    fn show(&self) -> String {
        let mut s = format!("{}: {:?}", self.kind().name(), self.text());
        if let Some(t) = &self.typed {
            s.push_str(&format!(" typed {t:?}"));
        }
        if let Some(x) = self.exit {
            s.push_str(&format!(" exit {x}"));
        }
        if let Some(c) = &self.cwd {
            s.push_str(&format!(" cwd {c:?}"));
        }
        if self.typeahead {
            s.push_str(" (typed ahead)");
        }
        s
    }
}

fn show(got: &CommandEntry) -> String {
    let mut s = format!("{}: {:?}", got.kind.name(), got.shown_text().unwrap_or(""));
    if let Some(t) = &got.typed {
        s.push_str(&format!(" typed {t:?}"));
    }
    if let Some(x) = got.exit_code {
        s.push_str(&format!(" exit {x}"));
    }
    if let Some(c) = &got.cwd {
        s.push_str(&format!(" cwd {c:?}"));
    }
    if got.inferred {
        s.push_str(" (inferred)");
    }
    if got.typeahead {
        s.push_str(" (typed ahead)");
    }
    s
}

fn one() -> usize {
    1
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn load_cases() -> Vec<(String, Case)> {
    let filter = std::env::var("KT_CORPUS").ok();
    let wanted = |name: &str| {
        filter
            .as_deref()
            .is_none_or(|f| f.split(',').any(|part| name.contains(part)))
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
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
        .filter(|(name, _)| wanted(name))
        .collect()
}

/// `'…'` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell's command line (environment assignments first) for `env`.
fn shell_argv(name: &str, case: &Case, scratch: &Path) -> Vec<String> {
    let rc = |f: &str| corpus_dir().join("rc").join(f).display().to_string();
    let mut argv: Vec<String> = vec![format!("KT_CASE={name}")];
    argv.extend(case.env.iter().cloned());
    match case.shell.as_str() {
        "bash" => match &case.rc {
            Some(f) => argv.extend([
                "bash".into(),
                "--rcfile".into(),
                rc(f),
                "--noprofile".into(),
                "-i".into(),
            ]),
            None => argv.extend(["bash".into(), "--norc".into(), "--noprofile".into()]),
        },
        "zsh" => match &case.rc {
            Some(dir) => argv.extend([format!("ZDOTDIR={}", rc(dir)), "zsh".into()]),
            None => argv.extend(["zsh".into(), "-f".into()]),
        },
        "fish" => {
            argv.push(format!("XDG_CONFIG_HOME={}/fish-config", scratch.display()));
            argv.push(format!("XDG_DATA_HOME={}/fish-data", scratch.display()));
            argv.extend(["fish".into(), "--no-config".into()]);
            if let Some(f) = &case.rc {
                argv.extend(["-C".into(), format!("source {}", rc(f))]);
            }
        }
        "mksh" => {
            argv.push(format!(
                "ENV={}",
                rc(case.rc.as_deref().unwrap_or("mkshrc"))
            ));
            argv.extend(["mksh".into(), "-i".into()]);
        }
        "dash" => {
            if let Some(f) = &case.rc {
                argv.push(format!("ENV={}", rc(f)));
            }
            argv.extend(["dash".into(), "-i".into()]);
        }
        "busybox" => {
            if let Some(f) = &case.rc {
                argv.push(format!("ENV={}", rc(f)));
            }
            argv.extend(["busybox".into(), "sh".into(), "-i".into()]);
        }
        other => panic!("{name}: unknown shell {other}"),
    }
    argv
}

/// Where one case is recorded and how it is driven.
struct Driver<'a> {
    cluster: &'a Cluster,
    tmux: &'a Tmux,
    kubectl: &'a Path,
    kc: &'a Path,
}

impl Driver<'_> {
    /// Plays one case in its own tmux session; returns when the shell has exited.
    fn record(&self, name: &str, case: &Case) {
        let scratch = self.cluster.root().join(format!("case-{name}"));
        std::fs::create_dir_all(&scratch).unwrap();
        let argv: Vec<String> = shell_argv(name, case, &scratch)
            .iter()
            .map(|a| quote(a))
            .collect();
        let argv = argv.join(" ");
        let cmdline = match case.via {
            Via::Gateway => format!(
                "env HOME={home} {kubectl} --kubeconfig {kc} --cache-dir {home}/.kube/cache exec -it {pod} -- env {argv}; echo KT-EXIT=$?; sleep 600",
                home = self.cluster.home.display(),
                kubectl = self.kubectl.display(),
                kc = self.kc.display(),
                pod = if case.osc { "shells-osc" } else { "shells" },
            ),
            // The environment the pod gives its shells, in a terminal of tmux's kind.
            Via::Local => format!(
                "cd /tmp && env -i PATH={path} HOME={home} TERM=tmux-256color LANG=C.UTF-8 PS1={ps1} HISTFILE=/dev/null LESSHISTFILE=- {kubetape} --store {store} --keys {keys} record -q -- env {argv}; echo KT-EXIT=$?; sleep 600",
                path = quote(&std::env::var("PATH").unwrap_or_default()),
                home = scratch.display(),
                ps1 = quote("kt$ "),
                kubetape = tests::bin("kubetape").display(),
                store = quote(&self.cluster.store_url),
                keys = self.cluster.keys.display(),
            ),
        };
        let [cols, rows] = case.size.unwrap_or([100, 30]);
        self.tmux.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            &cmdline,
        ]);
        let prompt = case
            .prompt
            .as_ref()
            .map_or_else(|| vec!["kt$".to_owned()], Marker::texts);
        let count = |texts: &[String]| {
            let history = self.tmux.history(name);
            texts
                .iter()
                .map(|t| history.matches(t.as_str()).count())
                .sum::<usize>()
        };
        self.wait_until(name, || count(&prompt) >= 1);
        let mut typist = Typist::new(name);
        for step in &case.steps {
            let wait: Option<Vec<String>> = match &step.wait {
                Some(w) => Some(vec![w.clone()]),
                None => step
                    .keys
                    .last()
                    .is_some_and(|k| k == "Enter")
                    .then(|| prompt.clone()),
            };
            let before = wait.as_deref().map_or(0, count);
            if let Some([x, y]) = step.resize {
                self.tmux.run(&[
                    "resize-window",
                    "-t",
                    name,
                    "-x",
                    &x.to_string(),
                    "-y",
                    &y.to_string(),
                ]);
            }
            if let Some(text) = &step.text {
                match case.typing {
                    Typing::Burst => {
                        self.tmux
                            .run(&["send-keys", "-t", name, "-l", &literal(text)]);
                    }
                    Typing::Human => {
                        for c in text.chars() {
                            typist.pause();
                            self.tmux.run(&[
                                "send-keys",
                                "-t",
                                name,
                                "-l",
                                &literal(&c.to_string()),
                            ]);
                        }
                    }
                }
            }
            if let Some(paste) = &step.paste {
                let buffer = format!("kt-{name}");
                self.tmux.run(&["set-buffer", "-b", &buffer, paste]);
                self.tmux
                    .run(&["paste-buffer", "-p", "-d", "-b", &buffer, "-t", name]);
            }
            if !step.keys.is_empty() {
                match case.typing {
                    Typing::Burst => {
                        let mut args = vec!["send-keys", "-t", name];
                        args.extend(step.keys.iter().map(String::as_str));
                        self.tmux.run(&args);
                    }
                    Typing::Human => {
                        for k in &step.keys {
                            typist.pause();
                            self.tmux.run(&["send-keys", "-t", name, k]);
                        }
                    }
                }
            }
            if let (Some(w), false) = (wait, step.no_wait) {
                let want = before + step.wait_count;
                self.wait_until(name, || count(&w) >= want);
            }
        }
        self.tmux.wait_count(name, "KT-EXIT=", 1);
        self.tmux.run(&["kill-session", "-t", name]);
    }
}

impl Driver<'_> {
    /// Waits (bounded) until `done` holds for the screen of `name`.
    fn wait_until(&self, name: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{name}: the screen never got there:\n{}",
                self.tmux.history(name)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `text` as one tmux argument: a `;` ending an argument separates tmux commands unless
/// escaped.
fn literal(text: &str) -> String {
    match text.strip_suffix(';') {
        Some(rest) => format!("{rest}\\;"),
        None => text.to_owned(),
    }
}

/// A typist's pauses between keys: 15–75 ms, the same for every run of a case. (This is the
/// cadence of the input being recorded, not a wait for anything.)
struct Typist(u64);

impl Typist {
    fn new(name: &str) -> Self {
        Self(name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }))
    }

    fn pause(&mut self) {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        std::thread::sleep(Duration::from_millis(15 + self.0 % 60));
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Score {
    cases: usize,
    expected: usize,
    extracted: usize,
    matched: usize,
}

impl Score {
    fn add(&mut self, other: Score) {
        self.cases += other.cases;
        self.expected += other.expected;
        self.extracted += other.extracted;
        self.matched += other.matched;
    }

    fn precision(&self) -> f64 {
        self.matched as f64 / self.extracted.max(1) as f64
    }

    fn recall(&self) -> f64 {
        self.matched as f64 / self.expected.max(1) as f64
    }
}

/// A recorded case, read back.
struct Recorded {
    events: Vec<Event>,
    entries: Vec<CommandEntry>,
}

fn read_session(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    ring: &Keyring,
    name: &str,
    id: &str,
) -> Recorded {
    rt.block_on(async {
        let reader = SessionReader::open(store, ring, id.parse().unwrap())
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
        // What the recorder sealed with the session is the same.
        let sealed = reader.commands().await.unwrap().expect("a commands object");
        assert_eq!(sealed, batch, "{name}: the sealed commands differ");
        Recorded {
            events,
            entries: batch,
        }
    })
}

fn dump(name: &str, events: &[Event]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("corpus");
    let _ = std::fs::create_dir_all(&dir);
    let text: String = events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Data { stream, bytes } => {
                format!("{} {stream:?} {}\n", e.at_us, bytes.escape_ascii())
            }
            other => format!("{} {other:?}\n", e.at_us),
        })
        .collect();
    let path = dir.join(format!("{name}.events"));
    let _ = std::fs::write(&path, text);
    path
}

#[test]
fn extraction_corpus() {
    let kubectl = Kubectl::V1_33.path().expect("kubectl 1.33");
    let cases = load_cases();
    let full = std::env::var_os("KT_CORPUS").is_none();
    if full {
        assert!(
            cases.len() >= MIN_CASES,
            "the corpus has {} cases",
            cases.len()
        );
    }
    let started = Instant::now();
    let cluster = Cluster::start();
    let kc = cluster.kubeconfig("bob@example.com", &["developers"]);
    let tmux = Tmux::new("corpus");
    // A server with a placeholder session so per-case sessions can come and go.
    tmux.run(&["new-session", "-d", "-s", "keep", "sleep 600"]);

    let queue = Arc::new(Mutex::new(cases.iter().collect::<Vec<_>>()));
    let driver = Driver {
        cluster: &cluster,
        tmux: &tmux,
        kubectl: &kubectl,
        kc: &kc,
    };
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            let queue = queue.clone();
            let driver = &driver;
            s.spawn(move || {
                loop {
                    let Some((name, case)) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    driver.record(name, case);
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
    let dump_all = std::env::var_os("KT_CORPUS_DUMP").is_some();
    let mut by_shell: BTreeMap<String, Score> = BTreeMap::new();
    let (mut ahead_expected, mut ahead_found) = (0, 0);
    let mut leaks = Vec::new();
    let mut report = String::new();
    let mut vias = [0usize; 2];
    for (name, case) in &cases {
        let id = by_case
            .get(name)
            .unwrap_or_else(|| panic!("no recorded session for {name}: {sessions:#?}"));
        vias[usize::from(case.via == Via::Local)] += 1;
        let Recorded { events, entries } = read_session(&rt, &store, &ring, name, id);
        for secret in &case.secrets {
            // The secret really was typed (so the extractor had it in front of it)...
            let typed: Vec<u8> = events
                .iter()
                .filter_map(|e| match &e.kind {
                    EventKind::Data {
                        stream: Stream::Stdin,
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
            let all = serde_json::to_string(&entries).unwrap();
            if all.contains(secret.as_str()) {
                leaks.push(format!("{name}: secret {secret:?} in {all}"));
            }
        }
        // A match: same kind and text, and the same exit code, cwd and typed text where
        // expected; each entry matches at most one expectation.
        let mut unmatched: Vec<Option<&CommandEntry>> = entries.iter().map(Some).collect();
        let mut matched = 0;
        let mut missing = Vec::new();
        for e in &case.expect {
            let hit = unmatched
                .iter_mut()
                .find(|g| g.is_some_and(|g| e.matches(g)));
            match hit {
                Some(slot) => {
                    *slot = None;
                    matched += 1;
                }
                None => missing.push(e.show()),
            }
            if e.typeahead {
                ahead_expected += 1;
                // Counted as found when any entry, of any kind, has its text.
                if entries.iter().any(|g| {
                    g.shown_text() == Some(e.text())
                        || (e.kind() == EntryKind::Redacted && g.redacted)
                }) {
                    ahead_found += 1;
                } else {
                    missing.push(format!("{} — LOST (typed ahead)", e.show()));
                }
            }
        }
        let extra: Vec<String> = unmatched.into_iter().flatten().map(show).collect();
        let family = case.report_as.clone().unwrap_or_else(|| case.shell.clone());
        by_shell.entry(family.clone()).or_default().add(Score {
            cases: 1,
            expected: case.expect.len(),
            extracted: entries.len(),
            matched,
        });
        let ok = missing.is_empty() && extra.is_empty();
        report.push_str(&format!(
            "{name} [{family}{}{}]: {} {matched}/{} expected, {} extracted\n",
            if case.osc { "+osc" } else { "" },
            if case.via == Via::Local {
                ", local"
            } else {
                ""
            },
            if ok { "ok" } else { "DIFF" },
            case.expect.len(),
            entries.len()
        ));
        for m in &missing {
            report.push_str(&format!("    - missing {m}\n"));
        }
        for x in &extra {
            report.push_str(&format!("    + extra   {x}\n"));
        }
        if !ok || dump_all {
            let path = dump(name, &events);
            if !ok {
                report.push_str("    extracted:\n");
                for g in &entries {
                    report.push_str(&format!("      {}\n", show(g)));
                }
                report.push_str(&format!("    events: {}\n", path.display()));
            }
        }
    }
    let mut total = Score::default();
    let mut table =
        String::from("shell          cases  expected  extracted  matched  precision  recall\n");
    for (shell, s) in &by_shell {
        total.add(*s);
        table.push_str(&format!(
            "{shell:<14} {:>5}  {:>8}  {:>9}  {:>7}  {:>9.3}  {:>6.3}\n",
            s.cases,
            s.expected,
            s.extracted,
            s.matched,
            s.precision(),
            s.recall()
        ));
    }
    table.push_str(&format!(
        "{:<14} {:>5}  {:>8}  {:>9}  {:>7}  {:>9.3}  {:>6.3}\n",
        "all",
        total.cases,
        total.expected,
        total.extracted,
        total.matched,
        total.precision(),
        total.recall()
    ));
    let ahead_recall = ahead_found as f64 / ahead_expected.max(1) as f64;
    println!("{report}");
    println!(
        "corpus: {} sessions ({} through the gateway, {} recorded locally), recorded in {:.1?}\n{table}type-ahead recall {ahead_recall:.3} ({ahead_found}/{ahead_expected} lines typed ahead found)",
        cases.len(),
        vias[0],
        vias[1],
        recorded,
    );

    let exposed = secrets_exposed(&cluster, &cases, &by_case);
    println!(
        "secrets: {} checked byte for byte in {} files and outputs ({} bytes); found in {}",
        cases.iter().map(|(_, c)| c.secrets.len()).sum::<usize>(),
        exposed.looked_in,
        exposed.bytes,
        exposed.found.len()
    );
    leaks.extend(exposed.found);
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
    if !full {
        return;
    }
    assert!(
        total.precision() >= BAR && total.recall() >= BAR,
        "precision {:.3} / recall {:.3} below {BAR}:\n{table}",
        total.precision(),
        total.recall()
    );
    for (shell, s) in &by_shell {
        assert!(
            s.precision() >= SHELL_BAR && s.recall() >= SHELL_BAR,
            "{shell}: precision {:.3} / recall {:.3} below {SHELL_BAR}:\n{table}",
            s.precision(),
            s.recall()
        );
    }
    assert!(
        vias[0] > 0 && vias[1] > 0,
        "sessions recorded both ways: {vias:?}"
    );
    assert_eq!(ahead_recall, 1.0, "lines typed ahead were lost:\n{report}");
}

/// Where secrets were looked for and found.
struct Exposure {
    looked_in: usize,
    bytes: usize,
    found: Vec<String>,
}

/// Every byte a reviewer or an auditor can get out of the store about these sessions: the
/// files of a search index built over all of them, `kubetape search` (commands, every line
/// typed, JSON and table), and every session exported in every format. No secret may be in
/// any of it.
fn secrets_exposed(
    cluster: &Cluster,
    cases: &[(String, Case)],
    by_case: &BTreeMap<String, String>,
) -> Exposure {
    let secrets: Vec<&String> = cases.iter().flat_map(|(_, c)| &c.secrets).collect();
    let index = cluster.root().join("corpus-index");
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let run = |args: &[&str]| -> Vec<u8> {
        let out = cluster
            .kubetape()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("kubetape {args:?}: {e}"));
        let mut bytes = out.stdout;
        bytes.extend(out.stderr);
        bytes
    };
    let index_arg = index.display().to_string();
    for args in [
        vec!["search", "--index", &index_arg, "."],
        vec!["search", "--index", &index_arg, "--json", "."],
        vec!["search", "--index", &index_arg, "--all-input", "."],
        vec![
            "search",
            "--index",
            &index_arg,
            "--all-input",
            "--json",
            ".",
        ],
    ] {
        let out = run(&args);
        assert!(!out.is_empty(), "kubetape {args:?} printed nothing");
        outputs.push((format!("kubetape {}", args.join(" ")), out));
    }
    for secret in &secrets {
        let out = run(&[
            "search",
            "--index",
            &index_arg,
            "--all-input",
            "--no-sync",
            &escape(secret),
        ]);
        outputs.push((format!("kubetape search --all-input {secret}"), out));
    }
    for path in walk(&index) {
        outputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    for (name, _) in cases {
        let id = &by_case[name];
        for format in ["asciicast-v2", "asciicast-v3", "text"] {
            let out = run(&["export", id, "--format", format]);
            outputs.push((format!("export {name} {format}"), out));
        }
    }
    let mut found = Vec::new();
    for (what, bytes) in &outputs {
        for secret in &secrets {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push(format!("secret {secret:?} in {what}"));
            }
        }
    }
    Exposure {
        looked_in: outputs.len(),
        bytes: outputs.iter().map(|(_, b)| b.len()).sum(),
        found,
    }
}

/// `text` as a regular expression that matches it literally.
fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let meta = "\\.+*?()|[]{}^$#&-~".contains(c);
            meta.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files.extend(walk(&p));
            } else {
                files.push(p);
            }
        }
    }
    files
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
    let texts: Vec<&str> = got.iter().filter_map(|c| c.shown_text()).collect();
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
