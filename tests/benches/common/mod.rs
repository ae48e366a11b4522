//! What the benchmarks share: the freshness check of the release binaries they run, process
//! figures from `/proc`, percentiles, a seeded RNG, and the WebSocket v5 exec client the exec
//! benchmarks drive every path with. Each bench uses part of it (`#[allow(dead_code)]` at its
//! `mod common;`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt as _};
use kube::api::AttachParams;
use tests::Proc;
use tokio_tungstenite::tungstenite::{self, Message};

/// The sandbox's pod and container every exec benchmark runs in.
pub const POD: &str = "demo";
pub const CONTAINER: &str = "shell";

/// The binaries come from `target/release/` (next to this executable): they must exist and be
/// newer than every source of the crates they are built from (`binaries`: name, crates), or the
/// numbers describe some other code. `KUBETAPE_BENCH_ALLOW_STALE=1` runs them anyway.
pub fn require_fresh_binaries(binaries: &[(&str, &[&str])]) {
    let exe = std::env::current_exe().expect("bench executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<bench>");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let build = "cargo build --release --workspace --bins";
    let allow = std::env::var_os("KUBETAPE_BENCH_ALLOW_STALE").is_some();
    for (name, crates) in binaries {
        let path = dir.join(name);
        let Ok(built) = path.metadata().and_then(|m| m.modified()) else {
            eprintln!(
                "error: {} is not built.\n       Run `{build}` first: this benchmark runs the release binaries.",
                path.display()
            );
            std::process::exit(2);
        };
        // Sources only: cargo relinks when one changes, not for every Cargo.lock edit.
        let newer = crates
            .iter()
            .find_map(|k| newest_rs(&root.join(k).join("src"), built));
        if let Some(src) = newer {
            eprintln!(
                "{}: {} is older than {}.\n       Run `{build}` first: this benchmark runs the release binaries{}.",
                if allow { "warning" } else { "error" },
                path.display(),
                src.display(),
                if allow {
                    ""
                } else {
                    " (KUBETAPE_BENCH_ALLOW_STALE=1 runs them anyway)"
                }
            );
            if !allow {
                std::process::exit(2);
            }
        }
    }
    if dir.file_name().is_some_and(|n| n != "release") {
        eprintln!(
            "note: running binaries from {} (not target/release): numbers are for that profile",
            dir.display()
        );
    }
}

/// A `.rs` file under `dir` modified after `t`, if any.
fn newest_rs(dir: &Path, t: std::time::SystemTime) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let path = e.path();
        if path.is_dir() {
            if let Some(p) = newest_rs(&path, t) {
                return Some(p);
            }
        } else if path.extension().is_some_and(|x| x == "rs")
            && e.metadata().and_then(|m| m.modified()).is_ok_and(|m| m > t)
        {
            return Some(path);
        }
    }
    None
}

/// utime + stime (+ reaped children's when `children`) from `/proc/<pid>/stat`, in seconds
/// (USER_HZ = 100). `pid` may be `self`.
pub fn cpu_seconds(pid: &str, children: bool) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14-17 of stat(5): utime stime cutime cstime; `rest` starts at field 3.
    let ticks = f[11] + f[12] + if children { f[13] + f[14] } else { 0 };
    ticks as f64 / 100.0
}

/// Resident memory of a process, KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Objects (files) and their bytes in the store whose key names the session `id`.
pub fn objects_of(store: &Path, id: &str) -> (u64, u64) {
    fn walk(dir: &Path, id: &str, under: bool, acc: &mut (u64, u64)) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let named = under || e.file_name().to_string_lossy().contains(id);
            if path.is_dir() {
                walk(&path, id, named, acc);
            } else if named {
                acc.0 += 1;
                acc.1 += e.metadata().map_or(0, |m| m.len());
            }
        }
    }
    let mut acc = (0, 0);
    walk(store, id, false, &mut acc);
    assert!(
        acc.0 > 0,
        "no object of session {id} under {}",
        store.display()
    );
    acc
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn percentile(v: &mut [Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// splitmix64: payload bytes and think times, with no dependency and a fixed seed.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0.5, 1.5) × mean`.
    pub fn around(&mut self, mean: Duration) -> Duration {
        let f = 0.5 + (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        mean.mul_f64(f)
    }
}

pub async fn client_from_kubeconfig(path: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", path.display()));
    kube::Client::try_from(config).expect("kube client")
}

/// Spawns `cmd` and waits (at most 30 s) for an output line containing `ready`, which it
/// returns with the process (killed on drop); all output goes on being written to `log`.
pub fn spawn_ready(cmd: Command, ready: &str, log: &Path) -> (Proc, String) {
    test_support::spawn_until(cmd, ready, log.to_owned(), Duration::from_secs(30))
}

/// An exec session's WebSocket (v5: `[0]`+stdin out, `[1]` stdout and `[3]` Status in).
pub trait ExecSocket:
    Stream<Item = Result<Message, tungstenite::Error>>
    + futures::Sink<Message, Error = tungstenite::Error>
    + Unpin
    + Send
    + 'static
{
}

impl<T> ExecSocket for T where
    T: Stream<Item = Result<Message, tungstenite::Error>>
        + futures::Sink<Message, Error = tungstenite::Error>
        + Unpin
        + Send
        + 'static
{
}

/// Opens an exec session on the pod; returns the WebSocket and how long opening took.
pub async fn open(
    client: &kube::Client,
    command: &[&str],
) -> Result<(impl ExecSocket + use<>, Duration), String> {
    let params = AttachParams::default()
        .container(CONTAINER)
        .stdin(true)
        .stdout(true)
        .stderr(true);
    let req = kube::core::Request::new("/api/v1/namespaces/default/pods")
        .exec(POD, command.iter().copied(), &params)
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let conn = client.connect(req).await.map_err(|e| e.to_string())?;
    if !conn.supports_stream_close() {
        return Err("server negotiated v4: no stdin close".into());
    }
    Ok((conn.into_stream(), start.elapsed()))
}

/// A stdin frame.
pub fn stdin(bytes: &[u8]) -> Message {
    let mut frame = Vec::with_capacity(bytes.len() + 1);
    frame.push(0);
    frame.extend_from_slice(bytes);
    Message::binary(frame)
}

/// The v5 CLOSE of stdin: `cat` sees EOF and exits.
pub fn close_stdin() -> Message {
    Message::binary(vec![255, 0])
}

/// Sends one keystroke and waits for its echo (the pod runs `cat`); returns the round trip.
pub async fn keystroke<S: ExecSocket>(ws: &mut S, key: &[u8]) -> Result<Duration, String> {
    use futures::SinkExt as _;
    let t = Instant::now();
    ws.send(stdin(key)).await.map_err(|e| e.to_string())?;
    let mut echoed = 0;
    while echoed < key.len() {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.first() == Some(&1) => {
                echoed += b.len() - 1;
            }
            Some(Ok(Message::Binary(b))) if b.first() == Some(&3) => {
                return Err(format!(
                    "session ended early: {}",
                    String::from_utf8_lossy(&b[1..])
                ));
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err("closed early".to_string());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
    Ok(t.elapsed())
}

/// Reads to the end of the session: stdout bytes, when the Status began, and whether it says
/// Success.
pub async fn read_to_end<S>(ws: &mut S) -> Result<(u64, Instant, bool), String>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let mut stdout = 0u64;
    let mut status = Vec::new();
    let mut status_at = None;
    while let Some(msg) = ws.next().await {
        match msg.map_err(|e| e.to_string())? {
            Message::Binary(b) => match b.first() {
                Some(1) => stdout += b.len() as u64 - 1,
                Some(3) => {
                    status_at.get_or_insert_with(Instant::now);
                    status.extend_from_slice(&b[1..]);
                }
                _ => {}
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    let at = status_at.ok_or("closed without a Status")?;
    let ok = serde_json::from_slice::<serde_json::Value>(&status)
        .is_ok_and(|s| s["status"] == "Success");
    Ok((stdout, at, ok))
}

/// Starts another gateway on the cluster's store and keys with the configuration `config`
/// (written as `gateway-NAME.toml`, logging to `gateway-NAME.log`); returns it and a copy of
/// `kubeconfig` (the harness gateway's, with the bench token) that points at it.
pub fn gateway_with(
    cluster: &tests::Cluster,
    name: &str,
    config: &str,
    kubeconfig: &Path,
) -> (Proc, PathBuf) {
    serve_gateway(
        cluster,
        name,
        config,
        kubeconfig,
        Command::new(tests::bin("kubetape-gateway")),
    )
}

/// Environment variable that makes a bench executable, started by [`relay_only_gateway`], the
/// relay-only gateway instead of the benchmark.
const RELAY_ONLY_ROLE: &str = "KUBETAPE_BENCH_RELAY_ONLY_GATEWAY";

/// [`gateway_with`], but the gateway is this bench executable run again as the library's
/// gateway with recording of exec bytes switched off (`gateway::relay::unrecorded`, a feature
/// only the benches turn on): the relay's own cost, beside the same code recording.
pub fn relay_only_gateway(
    cluster: &tests::Cluster,
    name: &str,
    config: &str,
    kubeconfig: &Path,
) -> (Proc, PathBuf) {
    let mut cmd = Command::new(std::env::current_exe().expect("bench executable path"));
    cmd.env(RELAY_ONLY_ROLE, "1");
    serve_gateway(cluster, name, config, kubeconfig, cmd)
}

/// Call first in a bench's `main`: when started by [`relay_only_gateway`], serves as that
/// gateway (the arguments are `serve --config <file>`) and exits; otherwise returns.
pub fn serve_if_relay_only_gateway() {
    if std::env::var_os(RELAY_ONLY_ROLE).is_none() {
        return;
    }
    let config = std::env::args_os()
        .skip_while(|a| a != "--config")
        .nth(1)
        .expect("serve --config <file>");
    gateway::edges::init_tracing(gateway::edges::LogFormat::Text);
    gateway::relay::unrecorded::enable_for_benchmark();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let served: Result<(), Box<dyn std::error::Error>> = runtime.block_on(async {
        let config = gateway::config::GatewayConfig::load(Path::new(&config))?;
        let gw = gateway::app::Gateway::build(&config).await?;
        println!("listening on https://{} (relay only)", gw.local_addr()?);
        gw.run_until_signalled().await?;
        Ok(())
    });
    if let Err(e) = served {
        eprintln!("relay-only gateway: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

fn serve_gateway(
    cluster: &tests::Cluster,
    name: &str,
    config: &str,
    kubeconfig: &Path,
    mut cmd: Command,
) -> (Proc, PathBuf) {
    let path = cluster.root().join(format!("gateway-{name}.toml"));
    std::fs::write(&path, config).expect("write the gateway's configuration");
    cmd.args(["serve", "--config"])
        .arg(&path)
        .env("HOME", &cluster.home)
        .env("KUBETAPE_LOG", "info");
    let log = cluster.root().join(format!("gateway-{name}.log"));
    let (server, line) = spawn_ready(cmd, "listening on https://", &log);
    let addr = line[line.find("https://").expect("ready line")..]
        .split_whitespace()
        .next()
        .expect("address")
        .to_string();
    let mut kc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kubeconfig).expect("kubeconfig")).expect("json");
    kc["clusters"][0]["cluster"]["server"] = addr.into();
    let out = cluster.root().join(format!("kubeconfig-{name}"));
    std::fs::write(&out, serde_json::to_vec(&kc).expect("json")).expect("write kubeconfig");
    (server, out)
}

/// A kubeconfig for the harness gateway with an hour's token for `bench@example.com`
/// (`developers`: exec in `default`).
pub fn bench_kubeconfig(cluster: &tests::Cluster) -> PathBuf {
    let token = cluster
        .issuer()
        .mint(
            "bench@example.com",
            &["developers".to_string()],
            Duration::from_secs(3600),
            serde_json::Map::new(),
        )
        .token;
    cluster.kubeconfig_with_token("bench", Some(&token))
}

/// `kubetape verify --all` on the harness store must pass.
pub fn verify_all(cluster: &tests::Cluster) {
    let out = cluster
        .kubetape()
        .args(["verify", "--all"])
        .output()
        .expect("kubetape verify --all");
    assert!(
        out.status.success(),
        "kubetape verify --all: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
