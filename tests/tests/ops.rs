//! Operating the gateway: what an on-call engineer relies on.
//!
//! - Gateways sharing a store complete each other's sessions: SIGKILL one of three during a
//!   live session and a survivor seals it `interrupted` within 10 s, exactly once, with one
//!   audit record saying who sealed it and why.
//! - A real Prometheus scrapes `/metrics` during an exec: the live session and the relayed bytes
//!   are in its series; `promtool check metrics` accepts the exposition and `promtool check
//!   rules` the shipped alerting rules.
//! - `/readyz` turns unready when the store refuses writes, and while the gateway drains.
//! - `--log-format json`: every line the gateway writes to stderr parses as JSON, and session
//!   events carry the session's id.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::{Cluster, Kubectl, Proc, bin};

/// The tests of this file run one at a time: each starts two to four gateways (and one a
/// Prometheus) on a 2-core machine, and a live exec through a loaded replica could miss its
/// deadline when they ran side by side.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Polls `f` every 100 ms until it returns `Some`, failing with `what` after `limit`.
fn wait<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `curl -s URL`: (HTTP status, body).
fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A live exec through the gateway `kubeconfig` points at: prints a marker and `bytes` bytes,
/// then waits (stdin open) until killed. Returns once the marker arrived.
struct LiveExec {
    child: Child,
}

impl LiveExec {
    fn start(cluster: &Cluster, kubeconfig: &Path, bytes: usize) -> LiveExec {
        let kubectl = Kubectl::V1_33.path().expect("kubectl 1.33");
        let script = format!("head -c {bytes} /dev/zero | tr '\\0' x; echo; echo LIVE-MARKER; cat");
        let mut child = cluster
            .kubectl(&kubectl, kubeconfig)
            .args(["exec", "-i", "demo", "--", "sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl exec");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                if line.starts_with(b"LIVE-MARKER") {
                    let _ = tx.send(());
                }
                line.clear();
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the exec printed its marker");
        LiveExec { child }
    }
}

impl Drop for LiveExec {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The newest live session's id.
fn live_session(cluster: &Cluster) -> String {
    wait(
        Duration::from_secs(30),
        "a live session in the store",
        || {
            cluster
                .sessions()
                .into_iter()
                .find(|s| s["state"] == "open")
                .and_then(|s| s["session"].as_str().map(str::to_string))
        },
    )
}

/// The address after `prefix` in the first line of `log` that has it.
fn address_in_log(log: &Path, prefix: &str) -> SocketAddr {
    wait(Duration::from_secs(30), prefix, || {
        let text = std::fs::read_to_string(log).ok()?;
        let line = text.lines().find(|l| l.contains(prefix))?;
        let start = line.find(prefix)? + prefix.len();
        let rest = &line[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal}");
}

/// Gateway `pid`'s heartbeat objects (names, oldest first).
fn heartbeats(cluster: &Cluster) -> Vec<(String, String)> {
    let root = cluster
        .root()
        .join("store")
        .join(storage_schema::layout::GATEWAY_HEARTBEATS);
    let mut out = Vec::new();
    for gw in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for hb in std::fs::read_dir(gw.path()).into_iter().flatten().flatten() {
            out.push((
                gw.file_name().to_string_lossy().into_owned(),
                hb.file_name().to_string_lossy().into_owned(),
            ));
        }
    }
    out
}

#[test]
fn a_killed_gateways_sessions_are_sealed_interrupted_by_a_survivor_exactly_once() {
    let _serial = serial();
    let mut cluster = Cluster::start();
    let victim = cluster.start_second_gateway();
    let _third = cluster.start_second_gateway();
    let kc = cluster.kubeconfig("bob@example.com", &["developers"]);
    let via_victim = cluster.via(&kc, victim);
    let exec = LiveExec::start(&cluster, &via_victim, 1000);
    let session = live_session(&cluster);

    // SIGKILL: no drain, no closing heartbeat.
    cluster.extra_gateways[0].child.kill().expect("SIGKILL");
    cluster.extra_gateways[0].child.wait().expect("reaped");
    let killed = Instant::now();
    let summary = wait(Duration::from_secs(30), "the session sealed", || {
        cluster
            .sessions()
            .into_iter()
            .find(|s| s["session"] == session.as_str() && s["state"] != "open")
    });
    let took = killed.elapsed();
    eprintln!("sealed interrupted {took:?} after SIGKILL");
    assert_eq!(summary["state"], "interrupted", "{summary:#}");
    assert!(
        took < Duration::from_secs(10),
        "sealed {took:?} after the kill (must be < 10 s)"
    );
    drop(exec);

    // Both survivors must have looked again after the seal: wait for two more heartbeats from
    // each (a gateway completes lapsed sessions right after each heartbeat).
    let before: std::collections::HashSet<_> = heartbeats(&cluster).into_iter().collect();
    wait(
        Duration::from_secs(30),
        "two more heartbeats per survivor",
        || {
            let mut fresh = std::collections::HashMap::<String, usize>::new();
            for (gw, name) in heartbeats(&cluster) {
                if !before.contains(&(gw.clone(), name)) {
                    *fresh.entry(gw).or_default() += 1;
                }
            }
            (fresh.len() >= 2 && fresh.values().all(|n| *n >= 2)).then_some(())
        },
    );

    let records = wait(
        Duration::from_secs(30),
        "the completion audit record",
        || {
            let out = cluster
                .kubetape()
                .args(["audit", "--json"])
                .output()
                .expect("kubetape audit");
            let found: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|r| r["verb"] == "complete" && r["session"] == session.as_str())
                .collect();
            (!found.is_empty()).then_some(found)
        },
    );
    assert_eq!(records.len(), 1, "exactly one completion: {records:#?}");
    let reason = records[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("stopped renewing its lease"),
        "the record says why: {reason}"
    );
    let out = cluster
        .kubetape()
        .args(["verify", &session])
        .output()
        .expect("kubetape verify");
    assert!(
        out.status.success(),
        "the completed recording verifies: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A gateway of `cluster` with `[ops] listen` and extra arguments; its log, HTTPS and ops
/// addresses.
fn ops_gateway(
    cluster: &Cluster,
    name: &str,
    args: &[&str],
) -> (Proc, PathBuf, SocketAddr, SocketAddr) {
    ops_gateway_with(cluster, name, args, "")
}

/// [`ops_gateway`] with `extra` TOML appended to its configuration.
fn ops_gateway_with(
    cluster: &Cluster,
    name: &str,
    args: &[&str],
    extra: &str,
) -> (Proc, PathBuf, SocketAddr, SocketAddr) {
    let config = cluster.root().join(format!("gateway-{name}.toml"));
    let text = std::fs::read_to_string(cluster.gateway_config()).expect("config");
    std::fs::write(
        &config,
        format!("{text}\n[ops]\nlisten = \"127.0.0.1:0\"\n{extra}"),
    )
    .expect("config");
    let log = cluster.root().join(format!("gateway-{name}.log"));
    let mut cmd = Command::new(bin("kubetape-gateway"));
    cmd.args(args)
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(cluster.root())
        .env("HOME", &cluster.home)
        .env("KUBETAPE_LOG", "info");
    let (proc, _) = test_support::spawn_until(
        cmd,
        "health and metrics on http://",
        log.clone(),
        Duration::from_secs(60),
    );
    let https = address_in_log(&log, "listening on https://");
    let ops = address_in_log(&log, "health and metrics on http://");
    (proc, log, https, ops)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Prometheus' instant query `q`: the first sample's value.
fn query(prometheus: &str, q: &str) -> Option<f64> {
    let url = format!(
        "{prometheus}/api/v1/query?query={}",
        q.replace(' ', "%20")
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
    );
    let (code, body) = get(&url);
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_a_live_session_and_readyz_follows_store_and_drain() {
    let _serial = serial();
    let cluster = Cluster::start();
    // A drain grace keeps the session live for a while after SIGTERM, so that readiness can be
    // seen failing while a session is still being served (without it the drain ends it at once
    // and the gateway may be gone before a probe lands).
    let (mut gateway, _log, https, ops) = ops_gateway_with(
        &cluster,
        "ops",
        &[],
        "[server]\ndrain_grace_secs = 30\ndrain_deadline_secs = 60\n",
    );
    let ops_url = format!("http://{ops}");
    wait(Duration::from_secs(30), "ready", || {
        (get(&format!("{ops_url}/readyz")).0 == 200).then_some(())
    });

    // A real Prometheus scraping it every second.
    let prom_dir = cluster.root().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    std::fs::write(
        prom_dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kubetape\n    static_configs:\n      - targets: ['{ops}']\n"
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!(
        "--config.file={}",
        prom_dir.join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        prom_dir.join("data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
    let (_prometheus, _) = test_support::spawn_until(
        cmd,
        "Server is ready to receive web requests",
        cluster.root().join("prometheus.log"),
        Duration::from_secs(60),
    );
    let prom = format!("http://127.0.0.1:{prom_port}");

    let kc = cluster.kubeconfig("bob@example.com", &["developers"]);
    let exec = LiveExec::start(&cluster, &cluster.via(&kc, https), 1 << 20);
    let live = wait(
        Duration::from_secs(60),
        "the live session in Prometheus",
        || query(&prom, r#"sum(kubetape_sessions_live{kind="exec"})"#).filter(|v| *v >= 1.0),
    );
    assert_eq!(live, 1.0);
    let relayed = wait(
        Duration::from_secs(60),
        "relayed bytes in Prometheus",
        || query(&prom, "sum(kubetape_bytes_relayed_total)").filter(|v| *v >= (1 << 20) as f64),
    );
    assert!(relayed >= (1 << 20) as f64, "{relayed}");

    // The exposition and the shipped rules pass promtool.
    let (code, metrics) = get(&format!("{ops_url}/metrics"));
    assert_eq!(code, 200);
    // Every metric the shipped alert rules use is exported.
    for name in ["kubetape_recording_lag_seconds ", "kubetape_sessions_live{"] {
        assert!(metrics.contains(name), "{name} not in:\n{metrics}");
    }
    let (status, _, stderr) = tests::run(
        Command::new("promtool").args(["check", "metrics"]),
        metrics.as_bytes(),
        Duration::from_secs(30),
    );
    assert_eq!(
        status,
        Some(0),
        "promtool check metrics: {}",
        String::from_utf8_lossy(&stderr)
    );
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/rules.yml");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check rules: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The store refuses writes: unready, with the reason; writable again: ready.
    let store = cluster.root().join("store");
    {
        let _frozen = tests::Immutable::set(&store);
        let body = wait(
            Duration::from_secs(30),
            "unready on a failing store",
            || {
                let (code, body) = get(&format!("{ops_url}/readyz"));
                (code == 503).then_some(body)
            },
        );
        assert!(body.contains("store"), "{body}");
    }
    wait(Duration::from_secs(30), "ready again", || {
        (get(&format!("{ops_url}/readyz")).0 == 200).then_some(())
    });

    // SIGTERM with the session live: unready while it drains, the session still served (its
    // kubectl has not exited), then the gateway exits once the session ends by itself.
    send_signal(&gateway.child, "-TERM");
    let body = wait(Duration::from_secs(20), "unready while draining", || {
        let (code, body) = get(&format!("{ops_url}/readyz"));
        (code == 503).then_some(body)
    });
    assert!(body.contains("draining"), "{body}");
    let mut exec = exec;
    assert!(
        exec.child.try_wait().expect("kubectl").is_none(),
        "within the drain's grace the live session carries on"
    );
    drop(exec);
    let status = wait(Duration::from_secs(60), "the gateway to exit", || {
        gateway.child.try_wait().ok().flatten()
    });
    assert!(status.success(), "a drained gateway exits 0: {status:?}");
}

#[test]
fn json_logs_parse_line_by_line() {
    let _serial = serial();
    let cluster = Cluster::start();
    let (mut gateway, log, https, _ops) = ops_gateway(&cluster, "json", &["--log-format", "json"]);
    let kc = cluster.kubeconfig("bob@example.com", &["developers"]);
    let via = cluster.via(&kc, https);
    let kubectl = Kubectl::V1_33.path().expect("kubectl 1.33");
    let (status, stdout, _) = tests::run(
        cluster
            .kubectl(&kubectl, &via)
            .args(["exec", "demo", "--", "echo", "json-logs"]),
        b"",
        Duration::from_secs(60),
    );
    assert_eq!(status, Some(0));
    assert!(String::from_utf8_lossy(&stdout).contains("json-logs"));
    send_signal(&gateway.child, "-TERM");
    wait(Duration::from_secs(60), "the gateway to exit", || {
        gateway.child.try_wait().ok().flatten()
    });
    // The log file is appended by reader threads; the exit line is the last to arrive.
    let text = wait(Duration::from_secs(10), "the whole log", || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("session_end").then_some(text)
    });
    let mut sessions = 0;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        // Log lines (stderr) carry a level and a timestamp; audit records (stdout) their time.
        assert!(
            (v["level"].is_string() && v["timestamp"].is_string()) || v["time_us"].is_u64(),
            "{line}"
        );
        if line.contains("session_end") {
            sessions += 1;
            assert!(
                line.contains("\"session\""),
                "a session event carries its id: {line}"
            );
        }
    }
    assert!(sessions >= 1, "the exec's end was logged: {text}");
}
