//! Issue 12, finding 2: what a store outage costs a recording, measured through the real
//! gateway, real kubectl and a real S3 server (moto) behind a proxy the test cuts.
//!
//! Each case streams `date +%s.%N` every 10 ms through `kubectl exec`, makes the store fail
//! (refused or hung, 10 s and 60 s; a full disk under a `file://` store), restores it, ends the
//! session, waits until the gateway's spool has been replayed, and compares what kubectl
//! displayed with what `kubetape cat` returns: the lines displayed but not recorded must span
//! at most 1 s, or `kubetape verify` must report the recording's gap (exit status 3). Also: a
//! gateway restarted during an outage replays its spool, and with `audit.fail_closed` no
//! request is answered whose audit record is lost.
//!
//! The long cases run in parallel threads (each with its own cluster, proxy and S3 prefix), so
//! the file takes about as long as its longest case (~100 s).

#[path = "common/outage.rs"]
mod outage;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use outage::{Mode, Proxy};
use tests::{Cluster, Kubectl, Proc, bin};

/// Output lines are 10 ms apart.
const LINE: Duration = Duration::from_millis(10);

/// The moto server `scripts/test` starts, or `None` (with a note) in a run without one.
fn moto() -> Option<(SocketAddr, String)> {
    let Ok(endpoint) = std::env::var("KUBETAPE_TEST_S3_ENDPOINT") else {
        assert!(
            !tests::strict(),
            "KUBETAPE_REQUIRE_S3/CI is set but KUBETAPE_TEST_S3_ENDPOINT is not"
        );
        eprintln!("note: store outage tests need moto (run scripts/test); skipped");
        return None;
    };
    let addr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("moto endpoint host:port");
    let bucket = std::env::var("KUBETAPE_TEST_S3_URL")
        .unwrap_or_else(|_| "s3://kubetape-test".into())
        .trim_start_matches("s3://")
        .to_string();
    Some((addr, bucket))
}

fn s3_env(cmd: &mut Command, endpoint: SocketAddr) {
    cmd.env("AWS_ENDPOINT_URL", format!("http://{endpoint}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE");
}

/// Where a case's gateway records, and how `kubetape` reads it back (never through the proxy).
#[derive(Debug, Clone)]
struct StoreSpec {
    url: String,
    /// The S3 endpoint the gateway uses (the proxy) and the one readers use (moto itself).
    s3: Option<(SocketAddr, SocketAddr)>,
}

/// A gateway restarted with `[recording]` settings of the case's own.
struct Case {
    cluster: Cluster,
    store: StoreSpec,
    spool: PathBuf,
    config: PathBuf,
    name: &'static str,
}

impl Case {
    fn start(name: &'static str, store: StoreSpec, recording: &str, extra: &str) -> Self {
        let cluster = Cluster::start();
        let spool = cluster.root().join("spool");
        let original = std::fs::read_to_string(cluster.gateway_config()).unwrap();
        let mut config = String::new();
        for line in original.lines() {
            if line.starts_with("store = ") {
                config.push_str(&format!("store = \"{}\"\n", store.url));
                continue;
            }
            config.push_str(line);
            config.push('\n');
            if line == "[recording]" {
                config.push_str(&format!(
                    "spool_dir = \"{}\"\n{recording}\n",
                    spool.display()
                ));
            }
        }
        config.push_str(extra);
        // The ops listener: the spool's metrics are read during the outage.
        config.push_str("\n[ops]\nlisten = \"127.0.0.1:0\"\n");
        let path = cluster.root().join("gateway-outage.toml");
        std::fs::write(&path, config).unwrap();
        let mut case = Self {
            cluster,
            store,
            spool,
            config: path,
            name,
        };
        case.restart_gateway();
        case
    }

    /// Kills the gateway (if running) and starts it again on the case's config.
    fn restart_gateway(&mut self) {
        let _ = self.cluster.gateway.child.kill();
        let _ = self.cluster.gateway.child.wait();
        let (proc, addr) = self.spawn_gateway();
        self.cluster.gateway = proc;
        self.cluster.gateway_addr = addr;
    }

    fn spawn_gateway(&self) -> (Proc, SocketAddr) {
        let mut cmd = Command::new(bin("kubetape-gateway"));
        cmd.args(["serve", "--config"])
            .arg(&self.config)
            .env("HOME", &self.cluster.home)
            .env("KUBETAPE_LOG", "info");
        if let Some((via, _)) = self.store.s3 {
            s3_env(&mut cmd, via);
        }
        let log = self.cluster.root().join(format!(
            "gateway-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        ));
        spawn_until(cmd, "listening on https://", log)
    }

    /// `kubetape` on the case's store, read directly (not through the proxy).
    fn kubetape(&self) -> Command {
        let mut cmd = Command::new(bin("kubetape"));
        cmd.env("HOME", &self.cluster.home)
            .arg("--store")
            .arg(&self.store.url)
            .arg("--keys")
            .arg(&self.cluster.keys);
        if let Some((_, direct)) = self.store.s3 {
            s3_env(&mut cmd, direct);
        }
        cmd
    }

    fn sessions(&self) -> Vec<serde_json::Value> {
        let out = self.kubetape().args(["ls", "--json"]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Objects waiting in the spool (every slot).
    fn spooled(&self) -> usize {
        fn count(dir: &Path) -> usize {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        }
        std::fs::read_dir(&self.spool)
            .into_iter()
            .flatten()
            .flatten()
            .map(|slot| count(&slot.path().join("objects")))
            .sum()
    }

    /// Waits (bounded) until the newest exec session is sealed or interrupted and the spool is
    /// empty: everything the gateway held is in the store.
    fn wait_recorded(&self, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let sessions = self.sessions();
            let done = sessions.iter().find(|s| {
                s["meta"]["kind"] == "exec"
                    && (s["state"] == "sealed" || s["state"] == "interrupted")
            });
            if let Some(s) = done
                && self.spooled() == 0
            {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{}: not recorded in time (spooled {}): {sessions:#?}\n{}",
                self.name,
                self.spooled(),
                self.gateway_log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// One sample of `/metrics` on the ops listener: `name`'s value.
    fn metric(&self, name: &str) -> Option<f64> {
        let log = self.gateway_log();
        let at = log.find("health and metrics on http://")? + "health and metrics on ".len();
        let url = log[at..].split_whitespace().next()?;
        let out = Command::new("curl")
            .args(["-s", "-m", "2"])
            .arg(format!("{url}/metrics"))
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// The gateway's resident set, in KiB.
    fn rss_kib(&self) -> u64 {
        let pid = self.cluster.gateway.child.id();
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn gateway_log(&self) -> String {
        std::fs::read_to_string(&self.cluster.gateway.log).unwrap_or_default()
    }

    /// Starts the streaming session; returns kubectl and what it has displayed so far.
    fn stream(&self) -> (Child, Arc<Mutex<Vec<u8>>>) {
        let kubectl = Kubectl::V1_33.path().expect("kubectl 1.33");
        let kc = self
            .cluster
            .kubeconfig("carol@example.com", &["developers"]);
        let mut child = self
            .cluster
            .kubectl(&kubectl, &kc)
            .args([
                "exec",
                "demo",
                "--",
                "sh",
                "-c",
                "while true; do date +%s.%N; sleep 0.01; done",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl exec");
        let shown = Arc::new(Mutex::new(Vec::new()));
        let mut out = child.stdout.take().unwrap();
        let s = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while shown.lock().unwrap().len() < 100 {
            assert!(Instant::now() < deadline, "{}: no output", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
        (child, shown)
    }

    fn cat(&self, session: &str) -> (Option<i32>, Vec<u8>, String) {
        let out = self.kubetape().args(["cat", session]).output().unwrap();
        (
            out.status.code(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn verify(&self, session: &str) -> (Option<i32>, String) {
        let out = self.kubetape().args(["verify", session]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// Spawns `cmd`, waits (bounded) for a line containing `ready`, drains its output to `log`.
fn spawn_until(mut cmd: Command, ready: &str, log: PathBuf) -> (Proc, SocketAddr) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let (tx, log) = (tx.clone(), log.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(ready) => {
                let start = line.find("https://").unwrap() + "https://".len();
                let end = line[start..]
                    .find(char::is_whitespace)
                    .map_or(line.len(), |i| start + i);
                let addr = line[start..end].parse().unwrap();
                return (Proc { child, log }, addr);
            }
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{cmd:?} never printed {ready:?}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
    }
}

/// Complete `date +%s.%N` lines of `bytes`, as seconds.
fn times(bytes: &[u8]) -> Vec<f64> {
    String::from_utf8_lossy(bytes)
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .collect()
}

/// What one case measured.
#[derive(Debug)]
struct Figures {
    case: &'static str,
    displayed: usize,
    recorded: usize,
    /// Displayed but not recorded: how many lines, over how long a span.
    missing: usize,
    missing_span: Duration,
    verify: Option<i32>,
    spooled_max: usize,
    /// Peaks read from the gateway during the outage: `/metrics` and its resident set.
    peaks: Peaks,
    /// From the store's return (or the session's end) until everything was in the store.
    caught_up: Duration,
    ended: String,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<28} displayed {:>5} lines, recorded {:>5}, displayed-not-recorded {:>3} lines ({:.2} s), verify exit {:?}, spool peak {} objects{}, in the store {:.1} s later; {}",
            self.case,
            self.displayed,
            self.recorded,
            self.missing,
            self.missing_span.as_secs_f64(),
            self.verify,
            self.spooled_max,
            if self.peaks.rss_kib > 0 {
                format!(
                    " ({} per /metrics, {} KiB), gateway RSS peak {} KiB",
                    self.peaks.chunks_spooled,
                    self.peaks.spool_bytes / 1024,
                    self.peaks.rss_kib
                )
            } else {
                String::new()
            },
            self.caught_up.as_secs_f64(),
            self.ended
        )
    }
}

/// The most the gateway reported (or used) while sampled.
#[derive(Debug, Default, Clone, Copy)]
struct Peaks {
    chunks_spooled: u64,
    spool_bytes: u64,
    rss_kib: u64,
}

impl Peaks {
    fn sample(&mut self, case: &Case) {
        let m = |name| case.metric(name).unwrap_or(0.0) as u64;
        self.chunks_spooled = self.chunks_spooled.max(m("kubetape_chunks_spooled"));
        self.spool_bytes = self.spool_bytes.max(m("kubetape_spool_bytes"));
        self.rss_kib = self.rss_kib.max(case.rss_kib());
    }
}

/// Compares what kubectl displayed with what the recording holds, and checks the bound.
fn judge(case: &Case, shown: &[u8], stderr: String, spooled_max: usize) -> Figures {
    judge_within(case, shown, stderr, spooled_max, Duration::from_secs(1))
}

/// [`judge`] with another bound on what may be shown but not recorded without a gap.
fn judge_within(
    case: &Case,
    shown: &[u8],
    stderr: String,
    spooled_max: usize,
    bound: Duration,
) -> Figures {
    let since = Instant::now();
    let summary = case.wait_recorded(Duration::from_secs(120));
    let caught_up = since.elapsed();
    let id = summary["session"].as_str().unwrap().to_string();
    let (cat_code, recorded, cat_err) = case.cat(&id);
    let (verify, report) = case.verify(&id);
    let displayed = times(shown);
    let kept: std::collections::HashSet<u64> =
        times(&recorded).iter().map(|t| t.to_bits()).collect();
    let missing: Vec<f64> = displayed
        .iter()
        .copied()
        .filter(|t| !kept.contains(&t.to_bits()))
        .collect();
    let span = match (missing.first(), missing.last()) {
        (Some(a), Some(b)) => Duration::from_secs_f64(b - a) + LINE,
        _ => Duration::ZERO,
    };
    let figures = Figures {
        case: case.name,
        displayed: displayed.len(),
        recorded: times(&recorded).len(),
        missing: missing.len(),
        missing_span: span,
        verify,
        spooled_max,
        peaks: Peaks::default(),
        caught_up,
        ended: stderr.lines().last().unwrap_or("").to_string(),
    };
    eprintln!("{figures}");
    // Either at most 1 s of what was shown is missing, or the recording says where it is.
    if span > bound {
        assert_eq!(
            verify,
            Some(3),
            "{}: {:.2} s displayed but not recorded, and no gap reported:\n{report}",
            case.name,
            span.as_secs_f64()
        );
        assert!(cat_err.contains("gap"), "{}: cat: {cat_err}", case.name);
    } else {
        assert!(
            matches!(verify, Some(0) | Some(3)),
            "{}: verify {verify:?}:\n{report}",
            case.name
        );
        assert!(
            matches!(cat_code, Some(0) | Some(3)),
            "{}: {cat_err}",
            case.name
        );
    }
    figures
}

/// One outage through the proxy: `mode` for `outage`, during a streaming session.
fn proxied_outage(name: &'static str, mode: Mode, outage: Duration) -> Option<Figures> {
    let (moto, bucket) = moto()?;
    let proxy = Proxy::start(moto);
    let prefix = format!("outage-{}", uuid_like());
    let store = StoreSpec {
        url: format!("s3://{bucket}/{prefix}"),
        s3: Some((proxy.addr(), moto)),
    };
    // A lease longer than the outage, as docs/operations.md advises for riding one out (with
    // the default 6 s lease the gateway ends its sessions when it cannot renew: see
    // `a_lapsed_lease_ends_the_session_and_the_spool_keeps_everything_shown`).
    let case = Case::start(name, store, "", "\n[lease]\nttl_secs = 120\n");
    let (mut kubectl, shown) = case.stream();
    std::thread::sleep(Duration::from_secs(2));
    proxy.set(mode);
    let mut spooled_max = 0;
    let mut peaks = Peaks::default();
    let until = Instant::now() + outage;
    while Instant::now() < until {
        spooled_max = spooled_max.max(case.spooled());
        peaks.sample(&case);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        kubectl.try_wait().unwrap().is_none(),
        "{name}: the session did not ride out the outage:\n{}",
        case.gateway_log()
    );
    proxy.set(Mode::Pass);
    std::thread::sleep(Duration::from_secs(3));
    let _ = kubectl.kill();
    let _ = kubectl.wait();
    let mut err = String::new();
    let _ = kubectl.stderr.take().unwrap().read_to_string(&mut err);
    let shown = shown.lock().unwrap().clone();
    let mut figures = judge(&case, &shown, err, spooled_max);
    figures.peaks = peaks;
    eprintln!("{figures}  (peaks)");
    assert!(
        figures.spooled_max > 0,
        "{name}: nothing was spooled during the outage"
    );
    assert!(
        peaks.chunks_spooled > 0 && peaks.spool_bytes > 0,
        "{name}: /metrics never showed the spool in use: {peaks:?}"
    );
    drop(proxy);
    Some(figures)
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The four proxied cases side by side (each ~15-75 s).
#[test]
fn s3_refused_or_hung_for_10_s_and_60_s_loses_nothing_shown() {
    if moto().is_none() {
        return;
    }
    let cases: Vec<(&'static str, Mode, u64)> = vec![
        ("S3 refused 10 s", Mode::Refuse, 10),
        ("S3 refused 60 s", Mode::Refuse, 60),
        ("S3 hung 10 s", Mode::Freeze, 10),
        ("S3 hung 60 s", Mode::Freeze, 60),
    ];
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(name, mode, secs)| {
            std::thread::spawn(move || proxied_outage(name, mode, Duration::from_secs(secs)))
        })
        .collect();
    let mut failed = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Some(f)) => {
                assert_eq!(f.missing, 0, "{f}");
                assert_eq!(f.verify, Some(0), "{f}");
            }
            Ok(None) => {}
            Err(e) => failed.push(e),
        }
    }
    if let Some(e) = failed.pop() {
        std::panic::resume_unwind(e);
    }
}

/// A tmpfs mounted for a test (unmounted on drop): a disk that can be filled. `None`, with a
/// note, where this process may not mount (not root, or no CAP_SYS_ADMIN).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "note: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); the full-disk case is skipped"
            );
            return None;
        }
        Some(Self {
            path: path.to_path_buf(),
        })
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(ok.success(), "remount {}", self.path.display());
    }

    /// Fills what is left with a file; returns it (delete it to free the space).
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        top_up(&filler);
        filler
    }
}

/// Appends to `filler` until its filesystem has not one byte left; returns the bytes added
/// (space something else gave back since the last top-up).
fn top_up(filler: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(filler)
        .unwrap();
    let mut added = 0u64;
    // To the last byte: a few KiB left free would still take a handful of audit records.
    let mut size = 64 << 10;
    while size > 0 {
        let block = vec![0x5a; size];
        while f.write_all(&block).is_ok() {
            added += size as u64;
        }
        size /= 2;
    }
    let _ = f.sync_all();
    added
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The session's output, for cases that compare bytes: random text, then a last line.
fn run_to_end(case: &Case, script: &str) -> (Option<i32>, Vec<u8>, String) {
    let kubectl = Kubectl::V1_33.path().expect("kubectl 1.33");
    let kc = case
        .cluster
        .kubeconfig("carol@example.com", &["developers"]);
    tests::run(
        case.cluster
            .kubectl(&kubectl, &kc)
            .args(["exec", "demo", "--", "sh", "-c", script]),
        b"",
        Duration::from_secs(300),
    )
    .pipe(|(code, out, err)| (code, out, String::from_utf8_lossy(&err).into_owned()))
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

/// The disk under a `file://` store fills up mid-session (the review lost 2.44 MB of 10.5 MB
/// this way): the spool, on another disk, takes the chunks, and once there is room again the
/// recording is exactly what kubectl displayed.
#[test]
fn a_full_disk_under_the_store_loses_nothing_shown() {
    let mnt = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&mnt.path().join("disk"), "3m") else {
        return;
    };
    let store = StoreSpec {
        url: format!("file://{}", disk.path.join("store").display()),
        s3: None,
    };
    let case = Case::start(
        "file store, disk full",
        store,
        "",
        "\n[lease]\nttl_secs = 3600\n",
    );
    // ~10.8 MB of incompressible text through a 3 MiB disk.
    let (code, out, err) = run_to_end(&case, "head -c 8000000 /dev/urandom | base64; echo END");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.ends_with(b"END\n"), "kubectl saw the whole output");
    // The last chunk is sealed as the session ends and spooled once its put fails: poll.
    let deadline = Instant::now() + Duration::from_secs(60);
    let spooled_max = loop {
        let n = case.spooled();
        if n > 0 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "the disk never filled: nothing was spooled"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    disk.resize("64m");
    let since = Instant::now();
    let summary = case.wait_recorded(Duration::from_secs(120));
    let id = summary["session"].as_str().unwrap();
    let (cat_code, recorded, cat_err) = case.cat(id);
    assert_eq!(cat_code, Some(0), "{cat_err}");
    let (verify, report) = case.verify(id);
    eprintln!(
        "{:<28} displayed {} bytes, recorded {} bytes, verify exit {verify:?}, spool {} objects after the session, in the store {:.1} s after the disk had room",
        case.name,
        out.len(),
        recorded.len(),
        spooled_max,
        since.elapsed().as_secs_f64()
    );
    assert_eq!(verify, Some(0), "{report}");
    assert!(
        recorded == out,
        "the recording differs from what kubectl displayed"
    );
}

/// Neither the store (refused) nor the spool (its disk full) can take the output: the session
/// pauses, then ends with one Status saying why — at once under `end`, after
/// `store_failure_timeout_secs` under `pause` — and what it could not keep is declared as a
/// gap that `verify` (exit 3) and `cat` report once the store is back.
#[test]
fn with_store_and_spool_full_the_session_ends_with_a_reason_and_a_declared_gap() {
    let Some((moto, bucket)) = moto() else {
        return;
    };
    let handles: Vec<_> = [("pause", "pause, spool full"), ("end", "end, spool full")]
        .into_iter()
        .map(|(policy, name)| {
            let bucket = bucket.clone();
            std::thread::spawn(move || nowhere_to_write(moto, bucket, policy, name))
        })
        .collect();
    for h in handles {
        if let Err(e) = h.join() {
            std::panic::resume_unwind(e);
        }
    }
}

fn nowhere_to_write(moto: SocketAddr, bucket: String, policy: &str, name: &'static str) {
    let mnt = tempfile::tempdir().unwrap();
    let Some(spool_disk) = Tmpfs::mount(&mnt.path().join("spool"), "2m") else {
        return;
    };
    let proxy = Proxy::start(moto);
    let store = StoreSpec {
        url: format!("s3://{bucket}/nowhere-{}", uuid_like()),
        s3: Some((proxy.addr(), moto)),
    };
    let mut case = Case::start(
        name,
        store,
        &format!("on_store_failure = \"{policy}\"\nstore_failure_timeout_secs = 3\n"),
        "\n[lease]\nttl_secs = 3600\n",
    );
    // The spool lives on the small disk.
    case.spool = spool_disk.path.clone();
    let config = std::fs::read_to_string(&case.config).unwrap().replace(
        &format!(
            "spool_dir = \"{}\"",
            case.cluster.root().join("spool").display()
        ),
        &format!("spool_dir = \"{}\"", spool_disk.path.display()),
    );
    std::fs::write(&case.config, config).unwrap();
    case.restart_gateway();
    let kubectl = Kubectl::V1_33.path().expect("kubectl 1.33");
    let kc = case
        .cluster
        .kubeconfig("carol@example.com", &["developers"]);
    // Incompressible output fills the spool fast; the date lines are what is compared.
    let mut child = case
        .cluster
        .kubectl(&kubectl, &kc)
        .args([
            "exec",
            "demo",
            "--",
            "sh",
            "-c",
            "while true; do head -c 3000 /dev/urandom | base64 -w0; echo; date +%s.%N; sleep 0.01; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let shown = Arc::new(Mutex::new(Vec::new()));
    let mut out = child.stdout.take().unwrap();
    let s = shown.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            s.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while shown.lock().unwrap().len() < 100_000 {
        assert!(Instant::now() < deadline, "{name}: no output");
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy.set(Mode::Refuse);
    let started = Instant::now();
    let mut spooled_max = 0;
    let status = loop {
        spooled_max = spooled_max.max(case.spooled());
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{name}: the session was never ended:\n{}",
            case.gateway_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let ended_after = started.elapsed();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    reader.join().unwrap();
    assert!(!status.success(), "{name}: kubectl exited 0");
    assert!(
        err.contains("recording cannot be stored"),
        "{name}: kubectl did not say why: {err}"
    );
    assert_eq!(
        err.matches("kubetape:").count(),
        1,
        "{name}: exactly one Status: {err}"
    );
    eprintln!(
        "{name}: ended {:.1} s into the outage",
        ended_after.as_secs_f64()
    );
    proxy.set(Mode::Pass);
    let shown = shown.lock().unwrap().clone();
    let figures = judge(&case, &shown, err, spooled_max);
    assert_eq!(figures.verify, Some(3), "{figures}: the loss is declared");
    drop(proxy);
}

/// With the default lease (6 s), a gateway that cannot renew it ends its sessions (others may
/// seal them): the session ends with that reason, and nothing it showed is lost — the spool
/// holds the end of the recording and its seal until the store is back.
#[test]
fn a_lapsed_lease_ends_the_session_and_the_spool_keeps_everything_shown() {
    let Some((moto, bucket)) = moto() else {
        return;
    };
    let proxy = Proxy::start(moto);
    let store = StoreSpec {
        url: format!("s3://{bucket}/lease-{}", uuid_like()),
        s3: Some((proxy.addr(), moto)),
    };
    let case = Case::start("S3 refused, default lease", store, "", "");
    let (mut kubectl, shown) = case.stream();
    std::thread::sleep(Duration::from_secs(1));
    proxy.set(Mode::Refuse);
    let started = Instant::now();
    let mut spooled_max = 0;
    while kubectl.try_wait().unwrap().is_none() {
        spooled_max = spooled_max.max(case.spooled());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not ended by the lease"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut err = String::new();
    let _ = kubectl.stderr.take().unwrap().read_to_string(&mut err);
    assert!(
        err.contains("lost contact with the recording store"),
        "{err}"
    );
    proxy.set(Mode::Pass);
    let shown = shown.lock().unwrap().clone();
    let figures = judge(&case, &shown, err, spooled_max);
    assert_eq!(figures.missing, 0, "{figures}");
    assert_eq!(figures.verify, Some(0), "{figures}");
}

/// A gateway restarted during an outage replays its spool: stopped cleanly (SIGTERM: its
/// drain seals the session into the spool) or killed (SIGKILL: the next one seals it as
/// interrupted), it comes back while the store is still down, and once the store answers the
/// recording is in it. Killed, a crash may take the open chunk and what was not spooled yet:
/// at most the flush interval plus `spool_after_ms` (1.2 s).
#[test]
fn a_gateway_restarted_during_an_outage_replays_its_spool() {
    let Some((moto, bucket)) = moto() else {
        return;
    };
    let handles: Vec<_> = [false, true]
        .into_iter()
        .map(|kill| {
            let bucket = bucket.clone();
            std::thread::spawn(move || restart_during_outage(moto, bucket, kill))
        })
        .collect();
    for h in handles {
        if let Err(e) = h.join() {
            std::panic::resume_unwind(e);
        }
    }
}

fn restart_during_outage(moto: SocketAddr, bucket: String, kill: bool) {
    let proxy = Proxy::start(moto);
    let store = StoreSpec {
        url: format!("s3://{bucket}/restart-{}", uuid_like()),
        s3: Some((proxy.addr(), moto)),
    };
    let name = if kill {
        "restart (SIGKILL) in outage"
    } else {
        "restart (SIGTERM) in outage"
    };
    let mut case = Case::start(name, store, "", "\n[lease]\nttl_secs = 3600\n");
    let (mut kubectl, shown) = case.stream();
    std::thread::sleep(Duration::from_secs(1));
    proxy.set(Mode::Refuse);
    std::thread::sleep(Duration::from_secs(3));
    let pid = case.cluster.gateway.child.id().to_string();
    if kill {
        Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    } else {
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while case.cluster.gateway.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "{name}: the gateway did not exit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let spooled = case.spooled();
    assert!(spooled > 0, "{name}: nothing spooled");
    let _ = kubectl.wait();
    let mut err = String::new();
    let _ = kubectl.stderr.take().unwrap().read_to_string(&mut err);
    if !kill {
        assert!(err.contains("shutting down"), "{name}: {err}");
    }
    // The next gateway starts while the store is still down, and comes up once it is back.
    let restart = {
        let config = case.config.clone();
        let home = case.cluster.home.clone();
        let log = case.cluster.root().join("gateway-after-restart.log");
        let via = proxy.addr();
        std::thread::spawn(move || {
            let mut cmd = Command::new(bin("kubetape-gateway"));
            cmd.args(["serve", "--config"])
                .arg(&config)
                .env("HOME", &home)
                .env("KUBETAPE_LOG", "info");
            s3_env(&mut cmd, via);
            spawn_until(cmd, "listening on https://", log)
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    proxy.set(Mode::Pass);
    let (proc, addr) = restart.join().unwrap();
    case.cluster.gateway = proc;
    case.cluster.gateway_addr = addr;
    let shown = shown.lock().unwrap().clone();
    let figures = if kill {
        judge_within(&case, &shown, err, spooled, Duration::from_millis(1200))
    } else {
        judge(&case, &shown, err, spooled)
    };
    let log = case.gateway_log();
    assert!(
        log.contains("replaying them"),
        "{name}: the spool was not replayed:\n{log}"
    );
    if !kill {
        assert_eq!(figures.missing, 0, "{figures}");
    }
    let state = case.sessions()[0]["state"].clone();
    assert_eq!(
        state,
        if kill { "interrupted" } else { "sealed" },
        "{figures}"
    );
    drop(proxy);
}

/// `audit.fail_closed = true`: while records can be made durable (the store down, the spool
/// up) requests are served; when they cannot (the spool's disk full too) requests are refused
/// (503); and every request that was served has its record in the audit log afterwards.
///
/// The disk is kept full: before each request the filler takes whatever space appeared since
/// (the audit stream's recorder frees its spooled chunks when it gives up on the store), so a
/// served request's record can only have been made durable in space that existed before it.
#[test]
fn fail_closed_audit_never_serves_a_request_whose_record_is_lost() {
    let Some((moto, bucket)) = moto() else {
        return;
    };
    let mnt = tempfile::tempdir().unwrap();
    let Some(spool_disk) = Tmpfs::mount(&mnt.path().join("spool"), "2m") else {
        return;
    };
    let proxy = Proxy::start(moto);
    let store = StoreSpec {
        url: format!("s3://{bucket}/audit-{}", uuid_like()),
        s3: Some((proxy.addr(), moto)),
    };
    let mut case = Case::start(
        "audit fail closed",
        store,
        "store_failure_timeout_secs = 3\n",
        "\n[lease]\nttl_secs = 3600\n",
    );
    let config = std::fs::read_to_string(&case.config)
        .unwrap()
        .replace(
            &format!(
                "spool_dir = \"{}\"",
                case.cluster.root().join("spool").display()
            ),
            &format!("spool_dir = \"{}\"", spool_disk.path.display()),
        )
        .replace(
            "[revocation]\n",
            "[revocation]\nmax_staleness_ms = 3600000\n",
        )
        + "\n[audit]\nfail_closed = true\nstdout = false\n";
    std::fs::write(&case.config, config).unwrap();
    case.spool = spool_disk.path.clone();
    case.restart_gateway();
    let kubectl = Kubectl::V1_33.path().expect("kubectl 1.33");
    let kc = case
        .cluster
        .kubeconfig("carol@example.com", &["developers"]);
    let mut served = Vec::new();
    let mut refused = 0;
    let request = |i: usize, served: &mut Vec<usize>, refused: &mut usize| {
        let (_, _, err) = tests::run(
            case.cluster
                .kubectl(&kubectl, &kc)
                .args(["get", "pod", &format!("req-{i}")]),
            b"",
            Duration::from_secs(120),
        );
        let err = String::from_utf8_lossy(&err);
        if err.contains(&format!("\"req-{i}\" not found")) {
            served.push(i);
        } else if err.contains("audit log cannot be written") {
            *refused += 1;
        } else {
            panic!("request {i}: neither served nor refused for the audit log: {err}");
        }
    };
    for i in 0..3 {
        request(i, &mut served, &mut refused);
    }
    proxy.set(Mode::Refuse);
    // The store is down, the spool is up: records are durable in its journal.
    for i in 3..8 {
        request(i, &mut served, &mut refused);
    }
    assert_eq!(refused, 0, "refused while the spool could take the records");
    // The spool's disk fills up: records can no longer be made durable anywhere.
    // Records still fit in the journal's last allocated page for a while (and are durable
    // there); requests go on until one is refused, within a bound.
    let filler = Tmpfs::fill(&spool_disk);
    let mut i = 8;
    let mut given_back = 0;
    while refused == 0 {
        assert!(
            i < 60,
            "served {} requests with the spool's disk full ({given_back} bytes given back)",
            i - 8
        );
        given_back += top_up(&filler);
        request(i, &mut served, &mut refused);
        i += 1;
    }
    let refused_after = i - 8;
    std::fs::remove_file(filler).unwrap();
    proxy.set(Mode::Pass);
    for i in 100..103 {
        request(i, &mut served, &mut refused);
    }
    // A clean stop seals the audit stream; everything reaches the store.
    let pid = case.cluster.gateway.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let _ = case.cluster.gateway.child.wait();
    case.restart_gateway();
    let deadline = Instant::now() + Duration::from_secs(120);
    let recorded = loop {
        let out = case.kubetape().args(["audit", "--json"]).output().unwrap();
        let paths: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|r| r["path"].as_str().map(str::to_string))
            .collect();
        let missing: Vec<usize> = served
            .iter()
            .copied()
            .filter(|i| !paths.iter().any(|p| p.ends_with(&format!("/pods/req-{i}"))))
            .collect();
        if missing.is_empty() {
            break paths;
        }
        assert!(
            Instant::now() < deadline,
            "served requests without an audit record: {missing:?}\n{}",
            case.gateway_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "audit fail closed: {} requests served (each with its record, {} records in all), {refused} refused while records could not be made durable (the first refusal: request {refused_after} after the disk filled; {given_back} bytes given back meanwhile)",
        served.len(),
        recorded.len()
    );
    drop(proxy);
}
