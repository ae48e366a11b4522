//! exec benchmark: one sandbox pod reached five ways in the same run, at 1, 10 and 100
//! concurrent sessions (DESIGN.md §7: gateway throughput ≥ 90% of a pass-through relay; keystroke
//! round trip added by the gateway p99 < 1 ms at 100 interactive sessions).
//!
//! - **direct**: kube-rs → sandbox (its own kubeconfig: TLS, bearer token, WebSocket v5).
//! - **gateway**: kube-rs → `kubetape-gateway` (TLS, dev-issuer JWT, recording on, to `file://`)
//!   → sandbox over WebSocket v5.
//! - **gateway-mem**: the same through a second gateway recording to `memory://`: the relay's
//!   cost without store writes (issue 18, target 1).
//! - **relay-only**: the same gateway code recording no bytes, run by this bench executable
//!   itself (`gateway::relay::unrecorded`, a feature only the benches turn on, so no shipped
//!   gateway can be configured to skip recording): what relaying alone costs (target 1).
//! - **kubectl-proxy**: kube-rs → `kubectl proxy` (plain HTTP; a byte relay after the upgrade)
//!   → sandbox over TLS: the peer pass-through relay.
//!
//! It ends with one line per issue-18 target it measures, each with its target and PASS/FAIL:
//! relay CPU per GB vs kubectl proxy [1], objects per GB and per interactive session-hour with
//! their S3 request cost [3], the keystroke round trip added [4], and the gateway's CPU split
//! into relay and recording, throughput vs direct and vs kubectl proxy [7].
//!
//! Two measurements, every path driven by the same WebSocket v5 client (`[0]`+stdin out,
//! `[1]` stdout and `[3]` Status in):
//! - **throughput**: every session runs `read go; exec head -c N <file>`; once all sessions are
//!   open the client sends the newline to all and reads stdout to the Status. Aggregate MB/s over
//!   the wall time from that start to the last Status; per-process CPU over the same window
//!   (plus the time the processes take to go idle afterwards, e.g. the recorder's last flush).
//! - **keystroke round trip**: every session runs `cat` (no TTY); the client sends one byte and
//!   times its echo, with a random think time between keystrokes, all sessions at once.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p tests --bench exec`.
//! The binaries are run from `target/release/`, so they must be built (and fresh) first: the
//! benchmark checks and says so. Knobs (environment):
//! - `KUBETAPE_BENCH_SESSIONS` (default `1,10,100`)
//! - `KUBETAPE_BENCH_MB` MiB streamed per throughput cell, split over its sessions (default 256)
//! - `KUBETAPE_BENCH_PAYLOAD` comma-separated, of `random` (incompressible: the recorder's worst
//!   case), `text` (log lines, typical terminal output) and `zero` (`/dev/zero`, its best case);
//!   default `random,text`
//! - `KUBETAPE_BENCH_REPS` repetitions of every cell, paths interleaved (default 3)
//! - `KUBETAPE_BENCH_KEYS` keystrokes per session per repetition (default 70, so 210 in all)
//! - `KUBETAPE_BENCH_THINK_MS` mean think time between keystrokes, uniform in 0.5–1.5× (default
//!   30: 33 keys/s per session, 3,300/s at 100 sessions, several times what people type; 0 makes
//!   every session send its next keystroke as soon as the echo arrives)
//! - `KUBETAPE_BENCH_ONLY` `throughput` or `keystrokes` (default both)
//! - `KUBETAPE_BENCH_SAMPLES=<file>` write every round trip as CSV (path, sessions, repetition,
//!   ms since the run began, round trip µs), to see when slow ones happen
//! - `KUBETAPE_BENCH_GATEWAY_RECORDING` TOML lines for the gateway's `[recording]` table (e.g.
//!   `max_chunk_kib = 1024`; a key given replaces the harness's, e.g. `store`): the gateway path
//!   then goes through a second gateway started with them, to measure what a policy costs.
//!   Target 4 on S3: `scripts/lib/moto.sh env AWS_ENDPOINT_URL=… KUBETAPE_BENCH_GATEWAY_RECORDING=
//!   'store = "s3://kubetape-test/bench"' KUBETAPE_BENCH_ONLY=keystrokes cargo bench -p tests
//!   --bench exec` (the line then says "on S3" and holds it to 2 ms)
//! - `KUBETAPE_BENCH_KUBECTL` the kubectl used for `kubectl proxy` (default the SDK's 1.33)
//! - `KUBETAPE_BENCH_PIN=1` the relays (both gateways, kubectl proxy) on the last CPU and
//!   everything else (client, sandbox, pods) on the others, with `taskset`: what the figures
//!   would be with the gateway on cores of its own (target 7)
//! - `KUBETAPE_BENCH_ALLOW_STALE=1` run binaries older than their sources (with a warning)

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::SinkExt as _;
use tests::{Cluster, Proc};

#[allow(dead_code)]
mod common;
use common::{
    ExecSocket, Rng, bench_kubeconfig, client_from_kubeconfig, close_stdin, cpu_seconds,
    gateway_with, keystroke, median, ms, open, percentile, read_to_end, require_fresh_binaries,
    spawn_ready, stdin, verify_all,
};

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
/// The binaries this runs, each with the workspace crates it is built from (freshness check).
const BINARIES: [(&str, &[&str]); 2] = [
    ("kubetape-sandbox", &["proto", "sandbox"]),
    (
        "kubetape-gateway",
        &["proto", "storage-schema", "transcript", "gateway"],
    ),
];

fn main() {
    common::serve_if_relay_only_gateway();
    let settings = Settings::from_env();
    require_fresh_binaries(&BINARIES);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());

    let cluster = Cluster::start();
    let (proxy, proxy_url) = kubectl_proxy(&cluster, &settings.kubectl);
    let bench_kc = bench_kubeconfig(&cluster);
    let mut gateway_kubeconfig = bench_kc.clone();
    let mut gateway_pid = cluster.gateway.child.id();
    let tuned = settings.gateway_recording.as_deref().map(|extra| {
        let (server, kubeconfig) = tuned_gateway(&cluster, "tuned", extra, &gateway_kubeconfig);
        gateway_kubeconfig = kubeconfig;
        gateway_pid = server.child.id();
        server
    });
    // The memory gateway takes the same overrides, all but the store.
    let mut mem_recording: String = settings
        .gateway_recording
        .as_deref()
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_once('=').is_none_or(|(k, _)| k.trim() != "store"))
        .map(|l| format!("{l}\n"))
        .collect();
    mem_recording.push_str("store = \"memory://\"");
    let (gateway_mem, mem_kubeconfig) =
        tuned_gateway(&cluster, "memory", &mem_recording, &bench_kc);
    let (relay_only, relay_only_kubeconfig) = {
        let config = recording_config(&cluster, &mem_recording);
        common::relay_only_gateway(&cluster, "relay-only", &config, &bench_kc)
    };
    let procs = Procs {
        sandbox: cluster
            .sandbox
            .as_ref()
            .expect("sandbox running")
            .child
            .id(),
        gateway: gateway_pid,
        gateway_mem: gateway_mem.child.id(),
        relay_only: relay_only.child.id(),
        proxy: proxy.child.id(),
    };
    if settings.pin {
        pin(procs);
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config = if tuned.is_some() {
        "gateway-tuned.toml"
    } else {
        "gateway.toml"
    };
    let store = store_dir(&cluster.root().join(config));
    rt.block_on(async {
        let routes = [
            Route {
                via: Via::Direct,
                client: client_from_kubeconfig(&cluster.sandbox_kubeconfig()).await,
                store: None,
            },
            Route {
                via: Via::Gateway,
                client: client_from_kubeconfig(&gateway_kubeconfig).await,
                store: store.clone(),
            },
            Route {
                via: Via::GatewayMem,
                client: client_from_kubeconfig(&mem_kubeconfig).await,
                store: None,
            },
            Route {
                via: Via::RelayOnly,
                client: client_from_kubeconfig(&relay_only_kubeconfig).await,
                store: None,
            },
            Route {
                via: Via::Proxy,
                client: kube::Client::try_from(kube::Config::new(
                    proxy_url.parse().expect("proxy URL"),
                ))
                .expect("client for kubectl proxy"),
                store: None,
            },
        ];
        print_header(&settings, cpus);
        let cost_before = store.as_deref().map(object_cost);
        if let (Some(dir), Some(cost)) = (&store, cost_before) {
            println!(
                "Gateway store: {} (creating one 64 KiB object there: {:.0} us; writing new files there: {:.2} CPU-s per GB)",
                dir.display(),
                cost.as_secs_f64() * 1e6,
                file_write_cost(dir)
            );
        }
        println!();
        let before = (Instant::now(), machine_busy(), Cpu::now(procs));
        let mut throughput = Vec::new();
        let mut payload_files = Vec::new();
        for &payload in settings.payloads.iter().filter(|_| settings.throughput) {
            let file = payload.file(cluster.root(), settings.total_bytes);
            payload_files.push(file.clone());
            let t = run_throughput(&settings, &routes, &file, procs).await;
            print_throughput(&settings, payload, &t);
            throughput.push((payload, t));
        }
        let keys = if settings.keystrokes {
            let k = run_keystrokes(&settings, &routes, procs).await;
            print_keystrokes(&settings, &k);
            if let Some(path) = &settings.samples {
                write_samples(path, &settings, &k);
            }
            Some(k)
        } else {
            None
        };
        // What else ran on the machine meanwhile (other builds, tests): it takes CPU from all
        // three paths and makes the figures noisier and lower.
        let wall = before.0.elapsed().as_secs_f64();
        let ours: f64 = Cpu::now(procs).since(before.2).0.iter().sum();
        let other = ((machine_busy() - before.1 - ours) / (wall * cpus as f64)).max(0.0);
        print_verdict(&settings, &throughput, keys.as_ref(), cpus, other);
        // The gateway path's sessions: (sessions, stdout bytes its clients received).
        let mut expected = (0usize, 0u64);
        for (_, cells) in &throughput {
            for (i, cell) in cells.iter().enumerate() {
                let runs = &cell[Via::Gateway.index()];
                expected.0 += settings.sessions[i] * runs.len();
                expected.1 += runs.iter().map(|r| r.bytes).sum::<u64>();
            }
        }
        for (i, cell) in keys.iter().flatten().enumerate() {
            expected.0 += settings.sessions[i] * settings.reps;
            expected.1 += cell[Via::Gateway.index()].keystrokes as u64;
        }
        let harness_store = store_dir(&cluster.root().join("gateway.toml"));
        if store.is_some() && store == harness_store {
            check_recordings(&cluster, expected, &payload_files);
        } else {
            println!(
                "note: the gateway recorded to another store than the harness's: its recordings are not checked"
            );
        }
        if let (Some(dir), Some(before)) = (&store, cost_before) {
            println!(
                "note: creating an object in the gateway's store took {:.0} us at the start and {:.0} us at the end; the recorder writes one per chunk (at least one a second per active session)",
                before.as_secs_f64() * 1e6,
                object_cost(dir).as_secs_f64() * 1e6
            );
        }
    });
    drop((tuned, gateway_mem, relay_only, proxy, cluster));
}

// === settings ===

#[derive(Debug)]
struct Settings {
    sessions: Vec<usize>,
    total_bytes: u64,
    payloads: Vec<Payload>,
    reps: usize,
    keys: usize,
    think: Duration,
    kubectl: PathBuf,
    throughput: bool,
    keystrokes: bool,
    samples: Option<PathBuf>,
    pin: bool,
    gateway_recording: Option<String>,
}

impl Settings {
    fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) => v.trim().parse().unwrap_or_else(|_| {
                    eprintln!("error: {name}={v:?} is not valid");
                    std::process::exit(2)
                }),
                Err(_) => default,
            }
        }
        let sessions: String = var("KUBETAPE_BENCH_SESSIONS", "1,10,100".to_string());
        let sessions: Vec<usize> = sessions
            .split(',')
            .map(|s| {
                s.trim().parse().ok().filter(|&n| n > 0).unwrap_or_else(|| {
                    eprintln!("error: KUBETAPE_BENCH_SESSIONS: {s:?} is not a session count");
                    std::process::exit(2)
                })
            })
            .collect();
        let payloads: String = var("KUBETAPE_BENCH_PAYLOAD", "random,text".to_string());
        let payloads = payloads
            .split(',')
            .map(|p| {
                Payload::ALL
                    .into_iter()
                    .find(|k| k.name() == p.trim())
                    .unwrap_or_else(|| {
                        eprintln!(
                            "error: KUBETAPE_BENCH_PAYLOAD: {p:?}: want random, text or zero"
                        );
                        std::process::exit(2)
                    })
            })
            .collect();
        let only: String = var("KUBETAPE_BENCH_ONLY", String::new());
        let (throughput, keystrokes) = match only.as_str() {
            "" => (true, true),
            "throughput" => (true, false),
            "keystrokes" => (false, true),
            other => {
                eprintln!("error: KUBETAPE_BENCH_ONLY={other:?}: want throughput or keystrokes");
                std::process::exit(2)
            }
        };
        Self {
            samples: std::env::var_os("KUBETAPE_BENCH_SAMPLES").map(PathBuf::from),
            pin: var("KUBETAPE_BENCH_PIN", 0u8) == 1,
            gateway_recording: std::env::var("KUBETAPE_BENCH_GATEWAY_RECORDING").ok(),
            throughput,
            keystrokes,
            sessions,
            total_bytes: var::<u64>("KUBETAPE_BENCH_MB", 256) << 20,
            payloads,
            reps: var("KUBETAPE_BENCH_REPS", 3usize).max(1),
            keys: var("KUBETAPE_BENCH_KEYS", 70usize).max(1),
            think: Duration::from_secs_f64(var("KUBETAPE_BENCH_THINK_MS", 30.0f64).max(0.0) / 1e3),
            kubectl: var("KUBETAPE_BENCH_KUBECTL", PathBuf::from(KUBECTL)),
        }
    }
}

/// What the throughput sessions stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// Incompressible bytes (compressed archives, `kubectl cp` of binaries): the recorder's worst
    /// case, every byte is compressed in vain, encrypted, hashed and written.
    Random,
    /// Log-like lines with varying fields (zstd keeps ~1/5): typical terminal output.
    Text,
    /// `/dev/zero` (zstd keeps ~1/1000): the recorder's best case.
    Zero,
}

impl Payload {
    const ALL: [Payload; 3] = [Payload::Random, Payload::Text, Payload::Zero];

    fn name(self) -> &'static str {
        match self {
            Payload::Random => "random",
            Payload::Text => "text",
            Payload::Zero => "zero",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Payload::Random => "random bytes: incompressible, the recorder's worst case",
            Payload::Text => "log-like text lines: typical terminal output",
            Payload::Zero => "/dev/zero: compresses ~1000x, the recorder's best case",
        }
    }

    /// The file the sessions read from, `bytes` long, written once into `dir`.
    fn file(self, dir: &Path, bytes: u64) -> PathBuf {
        let path = match self {
            Payload::Zero => return PathBuf::from("/dev/zero"),
            Payload::Random => dir.join("payload-random.bin"),
            Payload::Text => dir.join("payload-text.log"),
        };
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("payload file"));
        let mut rng = Rng(0x6b75_6265_7461_7065);
        let mut block = Vec::with_capacity(1 << 20);
        let mut left = bytes;
        while left > 0 {
            block.clear();
            while block.len() < 1 << 20 {
                match self {
                    Payload::Random => block.extend_from_slice(&rng.next().to_le_bytes()),
                    _ => log_line(&mut rng, &mut block),
                }
            }
            let n = left.min(block.len() as u64) as usize;
            out.write_all(&block[..n]).expect("write payload");
            left -= n as u64;
        }
        out.flush().expect("write payload");
        path
    }
}

/// One access-log line with a timestamp, ids, a path, a status and sizes that vary.
fn log_line(rng: &mut Rng, out: &mut Vec<u8>) {
    const PATHS: [&str; 6] = [
        "/api/v1/namespaces/default/pods",
        "/apis/apps/v1/namespaces/prod/deployments/web",
        "/healthz",
        "/api/v1/namespaces/staging/configmaps/app-config",
        "/metrics",
        "/api/v1/nodes",
    ];
    const LEVELS: [&str; 4] = ["INFO", "INFO", "WARN", "DEBUG"];
    let r = rng.next();
    let t = rng.next() % 86_400_000_000;
    let _ = writeln!(
        out,
        "2026-11-23T{:02}:{:02}:{:02}.{:06}Z {:<5} request id={:016x} method=GET path={} status={} bytes={} duration={}.{:03}ms",
        t / 3_600_000_000,
        t / 60_000_000 % 60,
        t / 1_000_000 % 60,
        t % 1_000_000,
        LEVELS[(r % 4) as usize],
        rng.next(),
        PATHS[(r >> 8) as usize % PATHS.len()],
        [200, 200, 200, 201, 404, 500][(r >> 16) as usize % 6],
        (r >> 24) % 100_000,
        (r >> 40) % 300,
        (r >> 50) % 1000,
    );
}

// === the three paths ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Direct,
    Gateway,
    /// The same gateway build and configuration recording to `memory://`: the relay's cost
    /// with no store writes (target 1 compares it with kubectl proxy).
    GatewayMem,
    /// The same gateway code recording nothing (run by this bench, never shipped: see
    /// `gateway::relay::unrecorded`): what relaying alone costs.
    RelayOnly,
    Proxy,
}

/// The paths every cell runs.
const PATHS: usize = 5;

impl Via {
    const ALL: [Via; PATHS] = [
        Via::Direct,
        Via::Gateway,
        Via::GatewayMem,
        Via::RelayOnly,
        Via::Proxy,
    ];

    fn name(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::Gateway => "gateway",
            Via::GatewayMem => "gateway-mem",
            Via::RelayOnly => "relay-only",
            Via::Proxy => "kubectl-proxy",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

struct Route {
    via: Via,
    client: kube::Client,
    /// The directory its recordings go to, where objects are counted (target 3).
    store: Option<PathBuf>,
}

impl Route {
    /// Objects in the route's store: chunks (what grows with the output), and all (with each
    /// session's metadata, commands and seal, the audit records, leases); zero without one.
    fn objects(&self) -> Objects {
        fn walk(dir: &Path, acc: &mut Objects) {
            let chunks = dir.file_name().is_some_and(|n| n == "chunks");
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), acc);
                } else {
                    acc.all += 1;
                    acc.chunks += u64::from(chunks);
                }
            }
        }
        let mut acc = Objects::default();
        if let Some(dir) = &self.store {
            walk(dir, &mut acc);
        }
        acc
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Objects {
    chunks: u64,
    all: u64,
}

impl std::ops::Sub for Objects {
    type Output = Objects;
    fn sub(self, before: Objects) -> Objects {
        Objects {
            chunks: self.chunks - before.chunks,
            all: self.all - before.all,
        }
    }
}

impl std::ops::AddAssign for Objects {
    fn add_assign(&mut self, more: Objects) {
        self.chunks += more.chunks;
        self.all += more.all;
    }
}

/// `kubectl proxy` on the sandbox's kubeconfig, exec/attach allowed (they are rejected by
/// default); returns it and its `http://` URL.
fn kubectl_proxy(cluster: &Cluster, kubectl: &Path) -> (Proc, String) {
    assert!(
        kubectl.is_file(),
        "{} not found (set KUBETAPE_BENCH_KUBECTL)",
        kubectl.display()
    );
    let mut cmd = cluster.kubectl(kubectl, &cluster.sandbox_kubeconfig());
    cmd.args(["proxy", "--port=0", "--reject-paths=^$"]);
    let log = cluster.root().join("kubectl-proxy.log");
    let (server, line) = spawn_ready(cmd, "Starting to serve on ", &log);
    let addr = &line[line.find("Starting to serve on ").expect("ready line") + 21..];
    (server, format!("http://{}", addr.trim()))
}

/// A second gateway like the harness's but with `extra` lines in its `[recording]` table (to
/// measure what a recording policy costs); returns it and a kubeconfig for it, made from
/// `kubeconfig` (the harness gateway's, with the bench token).
fn tuned_gateway(cluster: &Cluster, name: &str, extra: &str, kubeconfig: &Path) -> (Proc, PathBuf) {
    let config = recording_config(cluster, extra);
    gateway_with(cluster, name, &config, kubeconfig)
}

/// The harness gateway's configuration with `extra` lines in its `[recording]` table.
fn recording_config(cluster: &Cluster, extra: &str) -> String {
    let base = std::fs::read_to_string(cluster.root().join("gateway.toml")).expect("gateway.toml");
    // A key given in `extra` replaces the harness's (e.g. `store`).
    let keys: Vec<&str> = extra
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .collect();
    let kept: String = base
        .lines()
        .filter(|l| {
            !l.split_once('=')
                .is_some_and(|(k, _)| keys.contains(&k.trim()))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let config = kept.replacen("[recording]\n", &format!("[recording]\n{extra}\n"), 1);
    assert_ne!(
        config, kept,
        "the harness's gateway.toml has no [recording] table"
    );
    config
}

/// Opens `n` sessions at once; panics (naming the path) if any fails.
async fn open_all(
    route: &Route,
    n: usize,
    command: &[&str],
) -> Vec<(impl ExecSocket + use<>, Duration)> {
    let opens = (0..n).map(|_| open(&route.client, command));
    futures::future::try_join_all(opens)
        .await
        .unwrap_or_else(|e| panic!("{}: opening {n} sessions: {e}", route.via.name()))
}

// === CPU accounting ===

/// `KUBETAPE_BENCH_PIN=1`: every thread of the relays on the last CPU, every thread of the
/// client and the sandbox (and so the pods it starts later) on the others.
fn pin(p: Procs) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "KUBETAPE_BENCH_PIN needs at least 2 CPUs");
    let relay = (cpus - 1).to_string();
    let rest = format!("0-{}", cpus - 2);
    let me = std::process::id();
    for (pid, cpus) in [
        (p.gateway, &relay),
        (p.gateway_mem, &relay),
        (p.relay_only, &relay),
        (p.proxy, &relay),
        (p.sandbox, &rest),
        (me, &rest),
    ] {
        let out = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid.to_string()])
            .output()
            .expect("taskset (util-linux)");
        assert!(
            out.status.success(),
            "taskset -a -p -c {cpus} {pid}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[derive(Debug, Clone, Copy)]
struct Procs {
    sandbox: u32,
    gateway: u32,
    gateway_mem: u32,
    relay_only: u32,
    proxy: u32,
}

/// CPU seconds so far, by process: [`CLIENT`], [`SANDBOX`] (with the pods it reaped),
/// [`GATEWAY`], [`GATEWAY_MEM`], [`RELAY_ONLY`], [`PROXY`].
#[derive(Debug, Clone, Copy, Default)]
struct Cpu([f64; 6]);

const CLIENT: usize = 0;
const SANDBOX: usize = 1;
const GATEWAY: usize = 2;
const GATEWAY_MEM: usize = 3;
const RELAY_ONLY: usize = 4;
const PROXY: usize = 5;

impl Cpu {
    fn now(p: Procs) -> Self {
        Self([
            cpu_seconds("self", false),
            cpu_seconds(&p.sandbox.to_string(), true),
            cpu_seconds(&p.gateway.to_string(), false),
            cpu_seconds(&p.gateway_mem.to_string(), false),
            cpu_seconds(&p.relay_only.to_string(), false),
            cpu_seconds(&p.proxy.to_string(), false),
        ])
    }

    /// The process that relays on `via`'s path (none for direct).
    fn relay(self, via: Via) -> f64 {
        match via {
            Via::Direct => 0.0,
            Via::Gateway => self.0[GATEWAY],
            Via::GatewayMem => self.0[GATEWAY_MEM],
            Via::RelayOnly => self.0[RELAY_ONLY],
            Via::Proxy => self.0[PROXY],
        }
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu(std::array::from_fn(|i| self.0[i] - before.0[i]))
    }

    fn servers(self) -> f64 {
        self.0[SANDBOX..].iter().sum()
    }
}

/// Busy CPU seconds of the whole machine (all CPUs) from `/proc/stat`.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: u64 = f
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy as f64 / 100.0
}

/// Waits until the servers are idle (< 5% CPU over 200 ms; at most 15 s), so that work left
/// from one cell (recorder flushes, process teardown) is charged to it and not to the next.
async fn settle(p: Procs) -> Cpu {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = Cpu::now(p);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = Cpu::now(p);
        if now.since(last).servers() <= 0.01 || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

// === throughput ===

#[derive(Debug, Clone, Copy)]
struct ThroughputRun {
    bytes: u64,
    mb_per_s: f64,
    cpu: Cpu,
    /// Objects the run added to the route's store.
    objects: Objects,
}

/// runs[session count index][via index] = one result per repetition.
type ThroughputResults = Vec<[Vec<ThroughputRun>; PATHS]>;

async fn run_throughput(
    s: &Settings,
    routes: &[Route; PATHS],
    payload: &Path,
    procs: Procs,
) -> ThroughputResults {
    let mut results = ThroughputResults::new();
    for &n in &s.sessions {
        let each = s.total_bytes / n as u64;
        let mut cell: [Vec<ThroughputRun>; PATHS] = Default::default();
        for rep in 0..s.reps {
            for k in 0..PATHS {
                // Rotate the order so that no path always runs first (or right after another).
                let route = &routes[(k + rep) % PATHS];
                let run = throughput_once(route, n, each, payload, procs).await;
                eprintln!(
                    "  throughput {:>3} sessions  {:<13} rep {}: {:>7.1} MB/s",
                    n,
                    route.via.name(),
                    rep + 1,
                    run.mb_per_s
                );
                cell[route.via.index()].push(run);
            }
        }
        results.push(cell);
    }
    results
}

async fn throughput_once(
    route: &Route,
    n: usize,
    each: u64,
    payload: &Path,
    procs: Procs,
) -> ThroughputRun {
    let script = format!("read go; exec head -c {each} {}", payload.display());
    let sessions = open_all(route, n, &["sh", "-c", &script]).await;
    let objects = route.objects();
    let before = Cpu::now(procs);
    let start = Instant::now();
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|(mut ws, _)| {
            tokio::spawn(async move {
                ws.send(stdin(b"\n")).await.map_err(|e| e.to_string())?;
                read_to_end(&mut ws).await
            })
        })
        .collect();
    let mut end = start;
    for task in tasks {
        let (got, at, ok) = task
            .await
            .expect("session task")
            .unwrap_or_else(|e| panic!("{}: session failed: {e}", route.via.name()));
        assert!(
            got == each && ok,
            "{}: a session got {got} of {each} bytes (status success: {ok})",
            route.via.name()
        );
        end = end.max(at);
    }
    let elapsed = end - start;
    let cpu = settle(procs).await.since(before);
    ThroughputRun {
        objects: route.objects() - objects,
        bytes: each * n as u64,
        mb_per_s: (each * n as u64) as f64 / 1e6 / elapsed.as_secs_f64(),
        cpu,
    }
}

/// Median MB/s of a cell and the CPU of that median run.
fn summarize(runs: &[ThroughputRun]) -> (f64, f64, f64, Cpu) {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.mb_per_s.total_cmp(&b.mb_per_s));
    let mid = sorted[sorted.len() / 2];
    (
        mid.mb_per_s,
        sorted[0].mb_per_s,
        sorted[sorted.len() - 1].mb_per_s,
        mid.cpu,
    )
}

// === keystroke round trip ===

#[derive(Debug, Default)]
struct KeyCell {
    rtt: Vec<Duration>,
    /// (repetition, when the keystroke was sent since its run began, round trip).
    trace: Vec<(usize, Duration, Duration)>,
    open: Vec<Duration>,
    cpu: Cpu,
    keystrokes: usize,
    /// Objects the repetitions added to the route's store, and the session-seconds they held.
    objects: Objects,
    session_secs: f64,
}

type KeyResults = Vec<[KeyCell; PATHS]>;

async fn run_keystrokes(s: &Settings, routes: &[Route; PATHS], procs: Procs) -> KeyResults {
    let mut results = KeyResults::new();
    for &n in &s.sessions {
        let mut cell: [KeyCell; PATHS] = Default::default();
        for rep in 0..s.reps {
            for k in 0..PATHS {
                let route = &routes[(k + rep) % PATHS];
                let c = &mut cell[route.via.index()];
                let seed = (n * 1000 + rep * 10 + k) as u64;
                keystrokes_once(s, route, n, seed, procs, rep, c).await;
                eprintln!(
                    "  keystrokes {:>3} sessions  {:<13} rep {}: p99 so far {:.3} ms",
                    n,
                    route.via.name(),
                    rep + 1,
                    ms(percentile(&mut c.rtt, 0.99))
                );
            }
        }
        results.push(cell);
    }
    results
}

async fn keystrokes_once(
    s: &Settings,
    route: &Route,
    n: usize,
    seed: u64,
    procs: Procs,
    rep: usize,
    cell: &mut KeyCell,
) {
    let (keys, think) = (s.keys, s.think);
    let sessions = open_all(route, n, &["cat"]).await;
    let objects = route.objects();
    let before = Cpu::now(procs);
    let start = Instant::now();
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, (mut ws, opened))| {
            let mut rng = Rng(seed << 16 | i as u64);
            tokio::spawn(async move {
                let mut rtt = Vec::with_capacity(keys);
                // Spread the sessions' first keystrokes over one think time.
                tokio::time::sleep(think.mul_f64((rng.next() % 1000) as f64 / 1000.0)).await;
                for _ in 0..keys {
                    tokio::time::sleep(rng.around(think)).await;
                    let t = Instant::now();
                    let took = keystroke(&mut ws, b"k").await?;
                    rtt.push((t - start, took));
                }
                Ok::<_, String>((ws, rtt, opened))
            })
        })
        .collect();
    // Every session has typed all its keys before any ends: ending 100 sessions at once (seals,
    // commands, audit records, pods exiting) landed on the last keystrokes of the others still
    // typing, and those were most of a repetition's slow round trips (`KUBETAPE_BENCH_SAMPLES`:
    // they clustered in the last 200 ms). Ending sessions is measured by the throughput cells.
    let mut typed = Vec::with_capacity(tasks.len());
    for task in tasks {
        typed.push(
            task.await
                .expect("session task")
                .unwrap_or_else(|e| panic!("{}: keystroke session failed: {e}", route.via.name())),
        );
    }
    let ends = typed.iter_mut().map(|(ws, _, _)| async move {
        // v5 CLOSE of stdin: cat sees EOF and exits.
        ws.send(close_stdin()).await.map_err(|e| e.to_string())?;
        let (_, _, ok) = read_to_end(ws).await?;
        if ok {
            Ok(())
        } else {
            Err("cat did not exit with Success".to_string())
        }
    });
    futures::future::try_join_all(ends)
        .await
        .unwrap_or_else(|e| panic!("{}: ending a keystroke session: {e}", route.via.name()));
    for (_, rtt, opened) in typed {
        cell.keystrokes += rtt.len();
        cell.rtt.extend(rtt.iter().map(|&(_, d)| d));
        cell.trace
            .extend(rtt.into_iter().map(|(at, d)| (rep, at, d)));
        cell.open.push(opened);
    }
    cell.session_secs += n as f64 * start.elapsed().as_secs_f64();
    let cpu = settle(procs).await.since(before);
    cell.objects += route.objects() - objects;
    cell.cpu = Cpu(std::array::from_fn(|i| cell.cpu.0[i] + cpu.0[i]));
}

fn write_samples(path: &Path, s: &Settings, results: &KeyResults) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("samples file"));
    writeln!(out, "path,sessions,rep,at_ms,rtt_us").expect("write samples");
    for (i, &n) in s.sessions.iter().enumerate() {
        for via in Via::ALL {
            for &(rep, at, rtt) in &results[i][via.index()].trace {
                writeln!(
                    out,
                    "{},{n},{},{:.3},{:.1}",
                    via.name(),
                    rep + 1,
                    ms(at),
                    rtt.as_secs_f64() * 1e6
                )
                .expect("write samples");
            }
        }
    }
    out.flush().expect("write samples");
    eprintln!("round trips written to {}", path.display());
}

/// The p99 round trip of one repetition.
fn rep_p99(cell: &KeyCell, rep: usize) -> Duration {
    let mut v: Vec<Duration> = cell
        .trace
        .iter()
        .filter(|t| t.0 == rep)
        .map(|t| t.2)
        .collect();
    percentile(&mut v, 0.99)
}

// === report ===

fn print_header(s: &Settings, cpus: usize) {
    println!();
    println!("kubetape exec benchmark (release binaries), one sandbox pod reached five ways:");
    println!("  direct        kube-rs -> sandbox (TLS, WebSocket v5)");
    println!(
        "  gateway       kube-rs -> kubetape-gateway (TLS, JWT, recording to the directory) -> sandbox (TLS, WebSocket v5)"
    );
    println!(
        "  gateway-mem   the same, a second gateway recording to memory:// (the relay's cost without store writes)"
    );
    println!(
        "  relay-only    the same gateway code recording no bytes, run by this bench (a yardstick never shipped)"
    );
    println!(
        "  kubectl-proxy kube-rs -> kubectl proxy (plain HTTP, byte relay) -> sandbox (TLS) [{}]",
        s.kubectl.display()
    );
    println!(
        "Machine: {cpus} CPUs shared by the client (this process), the sandbox and its pods, the gateway and kubectl proxy:"
    );
    println!(
        "  every figure is a whole-machine figure; the client does the same work on every path (plus TLS on two)."
    );
    if s.pin {
        println!(
            "Pinned (KUBETAPE_BENCH_PIN): the gateways and kubectl proxy on CPU {}, the client, sandbox and pods on the others.",
            cpus - 1
        );
    }
    if let Some(extra) = &s.gateway_recording {
        println!(
            "Gateway [recording] overrides (KUBETAPE_BENCH_GATEWAY_RECORDING): {}",
            extra.replace('\n', "; ")
        );
    }
    if s.throughput {
        println!("Throughput payloads:");
        for p in &s.payloads {
            println!("  {:<7} {}", p.name(), p.describe());
        }
    }
}

/// The local directory the gateway records to, from its config (`store = "file://…"`).
fn store_dir(config: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config).expect("gateway config");
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        let url = v.trim().trim_matches('"');
        (k.trim() == "store").then(|| url.strip_prefix("file://").map(PathBuf::from))?
    })
}

/// A temporary directory on the same file system as `dir` (which may not exist yet).
fn scratch_dir_beside(dir: &Path) -> tempfile::TempDir {
    let mut base = dir;
    while !base.is_dir() {
        base = base.parent().expect("an existing ancestor");
    }
    tempfile::tempdir_in(base).expect("temporary directory")
}

/// CPU seconds per GB this machine spends writing new files into `dir`'s file system (the
/// kernel's copy into fresh page cache, one thread, so wall time is CPU time). The recorder's
/// output all goes this way, so this is the floor of "recording to the directory" in target
/// 7: on a VM whose host backs guest memory lazily (free page reporting) it can be several
/// times a plain memory copy, because every new page-cache page is a host page fault.
fn file_write_cost(dir: &Path) -> f64 {
    let tmp = scratch_dir_beside(dir);
    let piece = vec![0xa5_u8; 8 << 20];
    const PIECES: u64 = 32;
    let start = Instant::now();
    for i in 0..PIECES {
        std::fs::write(tmp.path().join(i.to_string()), &piece).expect("write a file");
    }
    let secs = start.elapsed().as_secs_f64();
    secs / (PIECES as f64 * piece.len() as f64 / 1e9)
}

/// How long creating one 64 KiB object takes in `dir`'s file system, the way object_store's
/// local create-only put does it (a staged file, hard-linked, unlinked). The recorder writes one
/// per chunk, at least every second per active session, and the cost varies a lot between file
/// systems (and with their state): it shows in the gateway's CPU and tail latency.
fn object_cost(dir: &Path) -> Duration {
    let tmp = scratch_dir_beside(dir);
    let data = vec![0x5a_u8; 64 << 10];
    const N: u32 = 200;
    let start = Instant::now();
    for i in 0..N {
        let staged = tmp.path().join(format!("{i}.chunk#1"));
        let mut f = std::fs::File::create_new(&staged).expect("create staged object");
        f.write_all(&data).expect("write staged object");
        drop(f);
        std::fs::hard_link(&staged, tmp.path().join(format!("{i}.chunk"))).expect("link object");
        std::fs::remove_file(&staged).expect("remove staged object");
    }
    start.elapsed() / N
}

fn print_throughput(s: &Settings, payload: Payload, results: &ThroughputResults) {
    println!(
        "== exec throughput, {} payload: `head -c N`, {} MiB per cell split over its sessions; MB/s (10^6 B), median (min-max) of {}",
        payload.name(),
        s.total_bytes >> 20,
        s.reps
    );
    println!(
        "{:>8} {:>10} | {:>17} {:>17} {:>17} {:>17} {:>17} | {:>9} {:>9}",
        "sessions",
        "N each",
        "direct",
        "gateway",
        "gateway-mem",
        "relay-only",
        "kubectl-proxy",
        "gw/direct",
        "gw/proxy"
    );
    for (i, &n) in s.sessions.iter().enumerate() {
        let m: Vec<_> = results[i].iter().map(|r| summarize(r)).collect();
        let fmt = |(med, lo, hi, _): (f64, f64, f64, Cpu)| format!("{med:.0} ({lo:.0}-{hi:.0})");
        let g = Via::Gateway.index();
        println!(
            "{:>8} {:>10} | {:>17} {:>17} {:>17} {:>17} {:>17} | {:>8.2}x {:>8.2}x",
            n,
            human_bytes(s.total_bytes / n as u64),
            fmt(m[0]),
            fmt(m[1]),
            fmt(m[2]),
            fmt(m[3]),
            fmt(m[4]),
            m[g].0 / m[Via::Direct.index()].0,
            m[g].0 / m[Via::Proxy.index()].0,
        );
    }
    println!();
    println!("CPU seconds per GB streamed (the median run), by process:");
    println!(
        "{:>8} {:<13} | {:>7} {:>13} {:>8} {:>8} {:>8} {:>8} | {:>6}",
        "sessions",
        "path",
        "client",
        "sandbox+pods",
        "gateway",
        "gw-mem",
        "relay",
        "kproxy",
        "total"
    );
    for (i, &n) in s.sessions.iter().enumerate() {
        for via in Via::ALL {
            let cpu = per_gb(&results[i][via.index()]);
            println!(
                "{:>8} {:<13} | {:>7.2} {:>13.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} | {:>6.2}",
                n,
                via.name(),
                cpu.0[CLIENT],
                cpu.0[SANDBOX],
                cpu.0[GATEWAY],
                cpu.0[GATEWAY_MEM],
                cpu.0[RELAY_ONLY],
                cpu.0[PROXY],
                cpu.0.iter().sum::<f64>()
            );
        }
    }
    println!();
}

/// CPU seconds per GB of a cell's median run, by process.
fn per_gb(runs: &[ThroughputRun]) -> Cpu {
    let (_, _, _, cpu) = summarize(runs);
    let gb = runs[0].bytes as f64 / 1e9;
    Cpu(cpu.0.map(|x| x / gb))
}

fn human_bytes(b: u64) -> String {
    if b >= 10 << 20 {
        format!("{} MiB", b >> 20)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

fn print_keystrokes(s: &Settings, results: &KeyResults) {
    println!(
        "== keystroke round trip: `cat` (no TTY), 1 byte in -> its echo out; {} per session x {} reps, think time {:.0} ms +/-50%, all sessions at once",
        s.keys,
        s.reps,
        ms(s.think)
    );
    println!(
        "{:>8} {:<13} | {:>8} {:>8} {:>8} {:>8} | {:>9} {:>9} | {:>16}",
        "sessions",
        "path",
        "samples",
        "p50 ms",
        "p99 ms",
        "max ms",
        "open p50",
        "open p99",
        "CPU us/key: relay"
    );
    for (i, &n) in s.sessions.iter().enumerate() {
        for via in Via::ALL {
            let c = &results[i][via.index()];
            let mut rtt = c.rtt.clone();
            let mut open = c.open.clone();
            // CPU time comes in 10 ms ticks: below 1,000 keystrokes a per-key figure is noise.
            let relay = if c.keystrokes < 1000 || via == Via::Direct {
                "-".to_string()
            } else {
                format!("{:.0}", c.cpu.relay(via) * 1e6 / c.keystrokes as f64)
            };
            println!(
                "{:>8} {:<13} | {:>8} {:>8.3} {:>8.3} {:>8.3} | {:>9.1} {:>9.1} | {:>16}",
                n,
                via.name(),
                rtt.len(),
                ms(percentile(&mut rtt, 0.5)),
                ms(percentile(&mut rtt, 0.99)),
                ms(percentile(&mut rtt, 1.0)),
                ms(percentile(&mut open, 0.5)),
                ms(percentile(&mut open, 0.99)),
                relay,
            );
        }
    }
    println!();
}

/// S3 Standard list price of a PUT (USD per 1,000 requests, us-east-1) and of storing a GB for a
/// month (first 50 TB).
const S3_PUT_PER_1000: f64 = 0.005;
const S3_GB_MONTH: f64 = 0.023;
/// Target 3: objects written per GB of bulk output.
const OBJECTS_PER_GB_TARGET: f64 = 300.0;
/// Target 4: the keystroke round trip the gateway adds, p99, with the store on the directory,
/// and on S3 (moto).
const ADDED_P99_TARGET_MS: f64 = 1.0;
const ADDED_P99_TARGET_S3_MS: f64 = 2.0;

fn print_verdict(
    s: &Settings,
    tput: &[(Payload, ThroughputResults)],
    keys: Option<&KeyResults>,
    cpus: usize,
    other_load: f64,
) {
    let counts = s
        .sessions
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("/");
    let mark = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let joined = |v: &[f64], unit: &str, prec: usize| {
        v.iter()
            .map(|x| format!("{x:.prec$}{unit}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "== targets (issue 18){}",
        if s.pin {
            ", relays pinned to their own CPU (KUBETAPE_BENCH_PIN)"
        } else {
            ""
        }
    );
    for (payload, tput) in tput {
        let p = payload.name();
        // Target 1: the relay's CPU per GB (its own process only), vs kubectl proxy: the gateway
        // recording to memory, and the same code recording nothing.
        let of = |via: Via, column: usize| -> Vec<f64> {
            tput.iter()
                .map(|c| per_gb(&c[via.index()]).0[column])
                .collect()
        };
        let mem = of(Via::GatewayMem, GATEWAY_MEM);
        let relay = of(Via::RelayOnly, RELAY_ONLY);
        let proxy = of(Via::Proxy, PROXY);
        for (what, cost) in [
            ("gateway recording to memory://", &mem),
            ("relay only (no recording)", &relay),
        ] {
            let ratio: Vec<f64> = cost.iter().zip(&proxy).map(|(m, p)| m / p).collect();
            println!(
                "[1] relay cost, {p}: {what} {} CPU-s/GB vs kubectl proxy {} at {counts} sessions = {} (target <= 1.00x): {}",
                joined(cost, "", 2),
                joined(&proxy, "", 2),
                joined(&ratio, "x", 2),
                mark(ratio.iter().all(|&r| r <= 1.0))
            );
        }
        // Target 7: the gateway's CPU split into relay (the relay-only gateway) and recording
        // (the file gateway's excess over it).
        let file = of(Via::Gateway, GATEWAY);
        let recording: Vec<f64> = file.iter().zip(&relay).map(|(f, m)| f - m).collect();
        println!(
            "[7] gateway CPU-s/GB, {p}: {} = relay {} + recording to the directory {} at {counts} sessions (recording cost vs zstd alone: `cargo bench -p storage-schema --bench pipeline`, target 2)",
            joined(&file, "", 2),
            joined(&relay, "", 2),
            joined(&recording, "", 2),
        );
        // Target 3: objects per GB of bulk output (the chunks: the rest is a few per session
        // whatever its size), and what their PUTs cost on S3.
        let mut fixed = Vec::new();
        let per_gb_objects: Vec<f64> = tput
            .iter()
            .zip(&s.sessions)
            .map(|(c, &n)| {
                let runs = &c[Via::Gateway.index()];
                let mut objects = Objects::default();
                runs.iter().for_each(|r| objects += r.objects);
                let bytes: u64 = runs.iter().map(|r| r.bytes).sum();
                fixed.push((objects.all - objects.chunks) as f64 / (n * runs.len()) as f64);
                objects.chunks as f64 / (bytes as f64 / 1e9)
            })
            .collect();
        let cost = per_gb_objects
            .iter()
            .map(|o| format!("${:.4}", o / 1000.0 * S3_PUT_PER_1000))
            .collect::<Vec<_>>()
            .join(" / ");
        println!(
            "[3] store cost, {p}: {} chunk objects per GB at {counts} sessions = {} in S3 PUTs per GB (storing a GB: ${S3_GB_MONTH}/month), plus {} other objects per session; a session is one chunk at least, so at {} per session the floor is {} per GB (target <= {OBJECTS_PER_GB_TARGET:.0} per GB): {}",
            joined(&per_gb_objects, "", 0),
            cost,
            joined(&fixed, "", 1),
            s.sessions
                .iter()
                .map(|&n| human_bytes(s.total_bytes / n as u64))
                .collect::<Vec<_>>()
                .join(" / "),
            joined(
                &s.sessions
                    .iter()
                    .map(|&n| 1e9 / (s.total_bytes / n as u64) as f64)
                    .collect::<Vec<_>>(),
                "",
                0
            ),
            mark(per_gb_objects.iter().all(|&o| o <= OBJECTS_PER_GB_TARGET))
        );
        // Target 7 (as before): throughput against the other paths, shared cores.
        for other in [Via::Direct, Via::Proxy] {
            let ratios: Vec<f64> = tput
                .iter()
                .map(|cell| {
                    summarize(&cell[Via::Gateway.index()]).0 / summarize(&cell[other.index()]).0
                })
                .collect();
            println!(
                "[7] throughput gateway/{} = {} at {counts} sessions, {p} (DESIGN.md target >= 0.90): {}",
                other.name(),
                joined(&ratios, "x", 2),
                mark(ratios.iter().all(|&r| r >= 0.90))
            );
        }
    }
    if let Some(keys) = keys {
        for (i, &n) in s.sessions.iter().enumerate() {
            let c = &keys[i][Via::Gateway.index()];
            let hours = c.session_secs / 3600.0;
            // Objects are counted in a directory store only.
            if hours > 0.0 && c.objects.all > 0 {
                let per_hour = c.objects.chunks as f64 / hours;
                println!(
                    "[3] store cost, interactive: {per_hour:.0} chunk objects per session-hour of typing at {n} sessions = ${:.3} in S3 PUTs per session-hour, plus {:.1} other objects per session (a chunk a second at most while output flows, none while idle)",
                    per_hour / 1000.0 * S3_PUT_PER_1000,
                    (c.objects.all - c.objects.chunks) as f64 / (n * s.reps) as f64
                );
            }
        }
        let last = keys.len() - 1;
        let n = s.sessions[last];
        let (gw, direct) = (
            &keys[last][Via::Gateway.index()],
            &keys[last][Via::Direct.index()],
        );
        // Per repetition, the two paths ran back to back: their difference is less exposed to
        // the machine's moods than the difference of the pooled p99s.
        let per_rep: Vec<f64> = (0..s.reps)
            .map(|r| ms(rep_p99(gw, r)) - ms(rep_p99(direct, r)))
            .collect();
        let added = median(per_rep.clone());
        let pooled = |c: &KeyCell| ms(percentile(&mut c.rtt.clone(), 0.99));
        // The store the gateway path records to, as KUBETAPE_BENCH_GATEWAY_RECORDING may set it.
        let s3 = s.gateway_recording.as_deref().is_some_and(|r| {
            r.lines().any(|l| {
                l.split_once('=').is_some_and(|(k, v)| {
                    k.trim() == "store" && v.trim().trim_matches('"').starts_with("s3://")
                })
            })
        });
        let (store, target) = if s3 {
            ("on S3", ADDED_P99_TARGET_S3_MS)
        } else {
            ("on the directory", ADDED_P99_TARGET_MS)
        };
        println!(
            "[4] p99 added round trip = {added:.3} ms at {n} sessions, store {store} (target < {target} ms): {} [median of the repetitions' gateway p99 - direct p99: {} ms; pooled p99: gateway {:.3} ms, direct {:.3} ms]",
            mark(added < target),
            joined(&per_rep, "", 3),
            pooled(gw),
            pooled(direct),
        );
    }
    println!(
        "[2] recording cost vs zstd alone: `cargo bench -p storage-schema --bench pipeline`; [5] idle scale: `cargo bench -p tests --bench idle`; [6] reviewer side: `cargo bench -p player --bench search`, `cargo bench -p transcript --bench seek`"
    );
    println!(
        "note: the client, the servers and the pods share {cpus} CPUs: throughput is CPU-bound, so its ratios compare the CPU each path spends per byte."
    );
    println!(
        "note: other processes used {:.0}% of the machine during the run{}",
        other_load * 100.0,
        if other_load > 0.05 {
            " -- the figures are depressed and noisy; rerun on a quiet machine"
        } else {
            ""
        }
    );
}

/// No loss: every session of the gateway path is sealed, `kubetape verify --all` passes, the
/// stdout the recordings hold adds up to what the clients received, and one throughput session
/// per payload reads back (`kubetape cat`) as exactly the bytes of the payload file it streamed.
fn check_recordings(cluster: &Cluster, (sessions, stdout): (usize, u64), payloads: &[PathBuf]) {
    let listed = cluster.wait_for_sealed_count(sessions);
    assert_eq!(listed.len(), sessions, "sessions in the store");
    verify_all(cluster);
    let recorded: u64 = listed
        .iter()
        .map(|s| s["bytes"]["stdout"].as_u64().expect("bytes.stdout"))
        .sum();
    assert_eq!(
        recorded, stdout,
        "stdout recorded by the gateway vs received by its clients"
    );
    let mut read_back = 0;
    for file in payloads.iter().filter(|f| f.is_file()) {
        let name = file.display().to_string();
        let Some(s) = listed.iter().find(|s| {
            s["meta"]["command"]
                .as_array()
                .and_then(|c| c.last())
                .and_then(|c| c.as_str())
                .is_some_and(|c| c.ends_with(&name))
        }) else {
            continue;
        };
        let id = s["session"].as_str().expect("session id");
        let out = cluster
            .kubetape()
            .args(["cat", id, "--reason", "exec bench: no loss"])
            .output()
            .expect("kubetape cat");
        assert!(out.status.success(), "kubetape cat {id}");
        let want = std::fs::read(file).expect("payload file");
        let len = out.stdout.len();
        assert!(
            len as u64 == s["bytes"]["stdout"].as_u64().unwrap_or(0)
                && out.stdout[..] == want[..len],
            "session {id}: `kubetape cat` is not the {len} bytes of {name} it streamed"
        );
        read_back += len;
    }
    println!(
        "recordings: {sessions} gateway sessions sealed, `kubetape verify --all` passed, {} recorded = {} received by the clients, {} read back with `kubetape cat` equal to the payload",
        human_bytes(recorded),
        human_bytes(stdout),
        human_bytes(read_back as u64),
    );
}
