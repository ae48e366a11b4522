//! port-forward benchmark: the sandbox's echo port (7000) reached five ways in the same run.
//!
//! - **direct**: a Rust client (proto's SPDY port-forward client inside the WebSocket tunnel,
//!   as kubectl ≥ 1.31 speaks it) → sandbox: the floor.
//! - **gateway-metadata** / **gateway-full**: the same client → `kubetape-gateway` (TLS,
//!   dev-issuer JWT, per-connection recording to `file://`, payload capture off / on: the two
//!   users are bound to rules with `capture = "metadata"` and `"full"`) → sandbox, the gateway
//!   dialling it in the tunnel as well.
//! - **kubectl-direct**: `kubectl port-forward` straight to the sandbox, driven through its
//!   local port: what people use without the gateway.
//! - **kubectl-gateway**: `kubectl port-forward` through the gateway (metadata): what people use
//!   with it.
//!
//! Two measurements, every path with the same workload:
//! - **throughput**: C concurrent connections each send M/C bytes and read their echo (both
//!   ways at once, half-close at the end, SHA-256 compared). MB/s each way over the wall time;
//!   CPU seconds of the gateway, the sandbox, this client and kubectl over the same window.
//! - **connection setup**: K connections one after another, each opened and timed to its first
//!   echoed byte (the SYN_STREAM pair through the relay and the backend's dial), then closed.
//!
//! Then what a forward holds while it is open: the gateway's (and, for the direct path, the
//! sandbox's) resident memory grown by N connections held open on one forward (each has moved
//! one byte each way, so both ends exist), and by S forwards of one connection each: RSS per
//! connection and per session.
//!
//! After the runs the gateway's recordings are checked: every forward sealed, `verify` passes,
//! its connection count and the bytes its seal counts equal what the client moved, and with full
//! capture the captured payload equals them too. Their objects in the store are counted: objects
//! and stored bytes per GB forwarded (what a forward costs the bucket in requests and space).
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p tests --bench portforward`.
//! The binaries are run from `target/release/`; the benchmark refuses stale ones
//! (`KUBETAPE_BENCH_ALLOW_STALE=1` runs them anyway). Knobs: `KUBETAPE_BENCH_MB` MiB per
//! throughput cell, each way (default 128), `KUBETAPE_BENCH_CONNS` concurrent connections per
//! cell (default `1,4`), `KUBETAPE_BENCH_REPS` repetitions, paths interleaved (default 3),
//! `KUBETAPE_BENCH_SETUPS` connections timed for setup per path and repetition (default 100),
//! `KUBETAPE_BENCH_HELD` connections held open to measure RSS per connection (default 200),
//! `KUBETAPE_BENCH_FORWARDS` forwards held open to measure RSS per session (default 50),
//! `KUBETAPE_BENCH_KUBECTL` (default the SDK's 1.33).

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use proto::spdy::portforward::{Client, ClientEvent};
use sha2::{Digest as _, Sha256};
use tests::Cluster;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

#[allow(dead_code)]
mod common;
use common::{cpu_seconds, median, objects_of, percentile, require_fresh_binaries, rss_kib};

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
const PORT: u16 = 7000;
/// The binaries this runs, each with the workspace crates it is built from (freshness check).
const BINARIES: [(&str, &[&str]); 3] = [
    ("kubetape-sandbox", &["proto", "sandbox"]),
    (
        "kubetape-gateway",
        &[
            "proto",
            "storage-schema",
            "transcript",
            "sandbox",
            "gateway",
        ],
    ),
    ("kubetape", &["storage-schema", "transcript", "player"]),
];

const POLICY: &str = r#"
[[roles]]
name = "forward-metadata"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods", "pods/portforward"]
verbs = ["get", "create"]
ports = [7000]

[[roles]]
name = "forward-full"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods", "pods/portforward"]
verbs = ["get", "create"]
ports = [7000]
capture = "full"

[[bindings]]
name = "metadata"
groups = ["bench-metadata"]
roles = ["forward-metadata"]

[[bindings]]
name = "full"
groups = ["bench-full"]
roles = ["forward-full"]

[[bindings]]
name = "held"
groups = ["bench-held"]
roles = ["forward-metadata"]
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Direct,
    GatewayMetadata,
    GatewayFull,
    KubectlDirect,
    KubectlGateway,
}

impl Via {
    const ALL: [Via; 5] = [
        Via::Direct,
        Via::GatewayMetadata,
        Via::GatewayFull,
        Via::KubectlDirect,
        Via::KubectlGateway,
    ];

    fn name(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::GatewayMetadata => "gateway-metadata",
            Via::GatewayFull => "gateway-full",
            Via::KubectlDirect => "kubectl-direct",
            Via::KubectlGateway => "kubectl-gateway",
        }
    }

    fn through_gateway(self) -> bool {
        matches!(
            self,
            Via::GatewayMetadata | Via::GatewayFull | Via::KubectlGateway
        )
    }
}

#[derive(Debug)]
struct Settings {
    bytes: u64,
    conns: Vec<usize>,
    reps: usize,
    setups: usize,
    held: usize,
    forwards: usize,
    kubectl: PathBuf,
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
        let conns: String = var("KUBETAPE_BENCH_CONNS", "1,4".to_string());
        Self {
            bytes: var::<u64>("KUBETAPE_BENCH_MB", 128) << 20,
            conns: conns
                .split(',')
                .map(|c| {
                    c.trim().parse().ok().filter(|&n| n > 0).unwrap_or_else(|| {
                        eprintln!("error: KUBETAPE_BENCH_CONNS: {c:?} is not a count");
                        std::process::exit(2)
                    })
                })
                .collect(),
            reps: var("KUBETAPE_BENCH_REPS", 3usize).max(1),
            setups: var("KUBETAPE_BENCH_SETUPS", 100usize).max(1),
            held: var("KUBETAPE_BENCH_HELD", 200usize).max(1),
            forwards: var("KUBETAPE_BENCH_FORWARDS", 50usize).max(1),
            kubectl: var("KUBETAPE_BENCH_KUBECTL", PathBuf::from(KUBECTL)),
        }
    }
}

// === a port-forward client: proto's SPDY client in the WebSocket tunnel ===

/// What one forwarded connection receives.
#[derive(Debug)]
enum Got {
    Data(Vec<u8>),
    Fin,
    Error(String),
}

enum Cmd {
    Open(oneshot::Sender<(String, mpsc::Receiver<Got>)>),
    Send(String, Vec<u8>, oneshot::Sender<()>),
    Fin(String),
    Finish(String),
}

/// One forward (a WebSocket tunnel), any number of connections over it.
#[derive(Clone)]
struct Tunnel {
    cmds: mpsc::Sender<Cmd>,
}

impl Tunnel {
    /// Dials `pods/demo/portforward` with `client` (its TLS and credentials) in the tunnel.
    async fn dial(client: &kube::Client) -> Tunnel {
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        let req = http::Request::get("/api/v1/namespaces/default/pods/demo/portforward")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", key)
            .header(
                "sec-websocket-protocol",
                proto::portforward::TUNNEL_PROTOCOL,
            )
            .body(kube::client::Body::from(Vec::new()))
            .expect("request");
        let resp = client.send(req).await.expect("dial the forward");
        assert_eq!(resp.status(), 101, "the forward was refused");
        let io = TokioIo::new(hyper::upgrade::on(resp).await.expect("upgrade"));
        let ws = WebSocketStream::from_raw_socket(io, Role::Client, None).await;
        let (cmds, rx) = mpsc::channel(64);
        tokio::spawn(drive(ws, rx));
        Tunnel { cmds }
    }

    async fn open(&self) -> Conn {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Open(tx))
            .await
            .map_err(|_| ())
            .expect("tunnel alive");
        let (rid, got) = rx.await.expect("tunnel alive");
        Conn {
            rid,
            got,
            cmds: self.cmds.clone(),
        }
    }
}

struct Conn {
    rid: String,
    got: mpsc::Receiver<Got>,
    cmds: mpsc::Sender<Cmd>,
}

impl Conn {
    /// Sends `data`; resolves once it is written to the socket (so senders are paced by it).
    async fn send(&self, data: Vec<u8>) {
        let (tx, rx) = oneshot::channel();
        if self
            .cmds
            .send(Cmd::Send(self.rid.clone(), data, tx))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    async fn fin(&self) {
        let _ = self.cmds.send(Cmd::Fin(self.rid.clone())).await;
    }

    async fn finish(&self) {
        let _ = self.cmds.send(Cmd::Finish(self.rid.clone())).await;
    }
}

async fn drive<S>(ws: WebSocketStream<S>, mut cmds: mpsc::Receiver<Cmd>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    let mut client = Client::new();
    let mut conns: HashMap<String, mpsc::Sender<Got>> = HashMap::new();
    let mut ping = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            msg = rx.next() => {
                let Some(Ok(Message::Binary(b))) = msg else {
                    if matches!(msg, Some(Ok(_))) { continue }
                    return;
                };
                let Ok(events) = client.receive(&b) else { return };
                for e in events {
                    let (rid, got) = match e {
                        ClientEvent::Data { request_id, data } => (request_id, Got::Data(data)),
                        ClientEvent::Fin { request_id } => (request_id, Got::Fin),
                        ClientEvent::Error { request_id, message } => (request_id, Got::Error(message)),
                        ClientEvent::Reset { request_id, .. } => (request_id, Got::Error("reset".into())),
                        _ => continue,
                    };
                    if let Some(c) = conns.get(&rid) {
                        let _ = c.send(got).await;
                    }
                }
            }
            cmd = cmds.recv() => {
                let mut done = None;
                match cmd {
                    None => return,
                    Some(Cmd::Open(reply)) => {
                        let rid = client.open(PORT);
                        let (tx, rx) = mpsc::channel(64);
                        conns.insert(rid.clone(), tx);
                        let _ = reply.send((rid, rx));
                    }
                    Some(Cmd::Send(rid, data, written)) => {
                        client.send(&rid, &data);
                        done = Some(written);
                    }
                    Some(Cmd::Fin(rid)) => client.send_fin(&rid),
                    Some(Cmd::Finish(rid)) => {
                        client.finish(&rid);
                        conns.remove(&rid);
                    }
                }
                let out = client.take_output();
                if !out.is_empty() && tx.send(Message::binary(out)).await.is_err() {
                    return;
                }
                if let Some(d) = done { let _ = d.send(()); }
            }
            _ = ping.tick() => {
                client.ping();
                if tx.send(Message::binary(client.take_output())).await.is_err() { return }
            }
        }
    }
}

// === the workloads ===

/// Deterministic, incompressible bytes.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const PIECE: usize = 32 << 10;

/// One echo connection over a tunnel: (bytes back, hashes equal).
async fn echo_tunnel(t: &Tunnel, seed: u64, len: usize) -> (u64, bool) {
    let Conn { rid, mut got, cmds } = t.open().await;
    let data = pattern(seed, len);
    let sent = Sha256::digest(&data);
    let reader = async {
        let mut h = Sha256::new();
        let mut n = 0u64;
        while let Some(g) = got.recv().await {
            match g {
                Got::Data(d) => {
                    n += d.len() as u64;
                    h.update(&d);
                }
                Got::Fin => break,
                Got::Error(e) => panic!("echo connection failed: {e}"),
            }
        }
        (n, h.finalize())
    };
    let writer = async {
        for piece in data.chunks(PIECE) {
            conn_send(&cmds, &rid, piece.to_vec()).await;
        }
        let _ = cmds.send(Cmd::Fin(rid.clone())).await;
    };
    let ((n, back), ()) = tokio::join!(reader, writer);
    let _ = cmds.send(Cmd::Finish(rid.clone())).await;
    (n, back == sent)
}

async fn conn_send(cmds: &mpsc::Sender<Cmd>, rid: &str, data: Vec<u8>) {
    let (tx, rx) = oneshot::channel();
    if cmds
        .send(Cmd::Send(rid.to_string(), data, tx))
        .await
        .is_ok()
    {
        let _ = rx.await;
    }
}

/// One echo connection through a local port (kubectl): (bytes back, hashes equal).
fn echo_tcp(addr: SocketAddr, seed: u64, len: usize) -> (u64, bool) {
    let tcp = TcpStream::connect(addr).expect("connect to kubectl");
    let data = pattern(seed, len);
    let sent = Sha256::digest(&data);
    let mut w = tcp.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for piece in data.chunks(64 << 10) {
            w.write_all(piece).expect("write");
        }
        w.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut r = tcp;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).expect("read");
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    writer.join().unwrap();
    (n, h.finalize() == sent)
}

/// A new connection that has echoed one byte: both its ends exist, through every relay.
async fn open_echoed(t: &Tunnel) -> Conn {
    let mut conn = t.open().await;
    conn.send(vec![b'x']).await;
    match conn.got.recv().await {
        Some(Got::Data(_)) => conn,
        other => panic!("no echo: {other:?}"),
    }
}

/// Half-closes, reads to the echo's end, and forgets the connection.
async fn close(mut conn: Conn) {
    conn.fin().await;
    while let Some(g) = conn.got.recv().await {
        if matches!(g, Got::Fin | Got::Error(_)) {
            break;
        }
    }
    conn.finish().await;
}

/// The first echoed byte of a new connection, then its end.
async fn setup_tunnel(t: &Tunnel) -> Duration {
    let start = Instant::now();
    let conn = open_echoed(t).await;
    let took = start.elapsed();
    close(conn).await;
    took
}

fn setup_tcp(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    tcp.read_exact(&mut b).expect("echo");
    let took = start.elapsed();
    tcp.shutdown(Shutdown::Write).unwrap();
    let _ = tcp.read_to_end(&mut Vec::new());
    took
}

// === processes ===

struct Kubectl {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kubectl_forward(cluster: &Cluster, kubectl: &Path, kubeconfig: &Path) -> Kubectl {
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = cluster.root().join(format!("kubectl-{local}.log"));
    let mut child = cluster
        .kubectl(kubectl, kubeconfig)
        .args(["port-forward", "pod/demo", &format!("{local}:{PORT}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("kubectl log"))
        .spawn()
        .expect("kubectl port-forward");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("Forwarding from 127.0.0.1:") => break,
            Some(Ok(_)) => {}
            _ => panic!("kubectl port-forward did not start"),
        }
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Kubectl {
        child,
        addr: format!("127.0.0.1:{local}").parse().unwrap(),
        log,
    }
}

fn self_cpu() -> f64 {
    cpu_seconds("self", false)
}

/// Waits until the gateway and the sandbox are idle (under 5% CPU over 200 ms; at most 15 s),
/// so that work left from one cell (the recorder's last flush, closing streams) is charged to
/// it and not to the next.
fn settle(p: Pids) -> Cpu {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = Cpu::now(p);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = Cpu::now(p);
        let busy = now.0[0] - last.0[0] + now.0[1] - last.0[1];
        if busy <= 0.01 || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// CPU seconds: gateway, sandbox, this client, kubectl.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu([f64; 4]);

#[derive(Debug, Clone, Copy)]
struct Pids {
    gateway: u32,
    sandbox: u32,
    kubectl: Option<u32>,
}

impl Cpu {
    fn now(p: Pids) -> Self {
        Self([
            cpu_seconds(&p.gateway.to_string(), false),
            cpu_seconds(&p.sandbox.to_string(), false),
            self_cpu(),
            p.kubectl
                .map_or(0.0, |pid| cpu_seconds(&pid.to_string(), false)),
        ])
    }

    fn since(self, b: Cpu) -> Cpu {
        Cpu(std::array::from_fn(|i| self.0[i] - b.0[i]))
    }
}

#[derive(Debug, Clone, Copy)]
struct Run {
    mb_per_s: f64,
    cpu: Cpu,
    /// Bytes each way.
    bytes: u64,
}

fn main() {
    let s = Settings::from_env();
    require_fresh_binaries(&BINARIES);
    let cluster = Cluster::start_with_policy(POLICY);
    let sandbox_pid = cluster.sandbox.as_ref().expect("sandbox").child.id();
    let gateway_pid = cluster.gateway.child.id();
    let mint = |group: &str| {
        let token = cluster
            .issuer()
            .mint(
                &format!("{group}@example.com"),
                &[group.to_string()],
                Duration::from_secs(3600),
                serde_json::Map::new(),
            )
            .token;
        cluster.kubeconfig_with_token(group, Some(&token))
    };
    let kc_meta = mint("bench-metadata");
    let kc_full = mint("bench-full");
    let kc_held = mint("bench-held");
    let kc_direct = cluster.sandbox_kubeconfig();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let clients = rt.block_on(async {
        // Without Nagle, as the gateway dials tunnels: kube's default client holds each
        // connection's small first frames back for the peer's delayed ACK (~43 ms), which
        // would hide the gateway's set-up cost behind the bench's own.
        let c = |p: PathBuf| async move {
            gateway::upstream::clients(Some(&p), None)
                .await
                .expect("client")
                .tunnels
        };
        (
            c(kc_direct.clone()).await,
            c(kc_meta.clone()).await,
            c(kc_full.clone()).await,
            c(kc_held.clone()).await,
        )
    });
    let kubectl_direct = kubectl_forward(&cluster, &s.kubectl, &kc_direct);
    let kubectl_gateway = kubectl_forward(&cluster, &s.kubectl, &kc_meta);
    // One tunnel per client path for the whole run (a forward carries any number of
    // connections, as kubectl's does).
    let tunnels = rt.block_on(async {
        (
            Tunnel::dial(&clients.0).await,
            Tunnel::dial(&clients.1).await,
            Tunnel::dial(&clients.2).await,
        )
    });

    println!("port-forward benchmark: the sandbox pod's TCP echo (port 7000), five paths, one run");
    println!(
        "  {cpus} CPUs · {} MiB each way per throughput cell · connections {:?} · {} repetitions · {} setups per path and repetition · kubectl {}",
        s.bytes >> 20,
        s.conns,
        s.reps,
        s.setups,
        s.kubectl.display()
    );
    println!();

    let pids = |via: Via| Pids {
        gateway: gateway_pid,
        sandbox: sandbox_pid,
        kubectl: match via {
            Via::KubectlDirect => Some(kubectl_direct.child.id()),
            Via::KubectlGateway => Some(kubectl_gateway.child.id()),
            _ => None,
        },
    };
    // Connections and bytes (each way) every path moved, to check the recordings against.
    let mut moved = HashMap::<&'static str, (u64, u64)>::new();
    let mut record = |via: Via, conns: u64, bytes: u64| {
        let e = moved.entry(via.name()).or_default();
        e.0 += conns;
        e.1 += bytes;
    };

    // Throughput.
    let mut table: Vec<(usize, HashMap<&'static str, Vec<Run>>)> = Vec::new();
    for &conns in &s.conns {
        let each = (s.bytes / conns as u64) as usize;
        let mut cell: HashMap<&'static str, Vec<Run>> = HashMap::new();
        for rep in 0..s.reps {
            for k in 0..Via::ALL.len() {
                let via = Via::ALL[(k + rep) % Via::ALL.len()];
                let before = (Instant::now(), Cpu::now(pids(via)));
                let results: Vec<(u64, bool)> = match via {
                    Via::Direct | Via::GatewayMetadata | Via::GatewayFull => {
                        let t = match via {
                            Via::Direct => &tunnels.0,
                            Via::GatewayMetadata => &tunnels.1,
                            _ => &tunnels.2,
                        };
                        rt.block_on(futures::future::join_all(
                            (0..conns).map(|i| echo_tunnel(t, (rep * 10 + i) as u64, each)),
                        ))
                    }
                    Via::KubectlDirect | Via::KubectlGateway => {
                        let k = if via == Via::KubectlDirect {
                            &kubectl_direct
                        } else {
                            &kubectl_gateway
                        };
                        let addr = k.addr;
                        let handles: Vec<_> = (0..conns)
                            .map(|i| {
                                std::thread::spawn(move || {
                                    echo_tcp(addr, (rep * 10 + i) as u64, each)
                                })
                            })
                            .collect();
                        let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
                        if results.iter().any(Result::is_err) {
                            let tail = |p: &Path| {
                                let t = std::fs::read_to_string(p).unwrap_or_default();
                                let lines: Vec<&str> = t.lines().collect();
                                lines[lines.len().saturating_sub(30)..].join("\n")
                            };
                            panic!(
                                "{}: a connection failed\nkubectl:\n{}\ngateway:\n{}",
                                via.name(),
                                tail(&k.log),
                                tail(&cluster.root().join("gateway.log"))
                            );
                        }
                        results.into_iter().map(Result::unwrap).collect()
                    }
                };
                let wall = before.0.elapsed().as_secs_f64();
                let cpu = settle(pids(via)).since(before.1);
                for (n, same) in &results {
                    assert_eq!(*n as usize, each, "{}: bytes back", via.name());
                    assert!(same, "{}: echo differs", via.name());
                }
                let bytes = (each * conns) as u64;
                record(via, conns as u64, bytes);
                let run = Run {
                    mb_per_s: bytes as f64 / wall / 1e6,
                    cpu,
                    bytes,
                };
                eprintln!(
                    "  throughput {conns} conn  {:<17} rep {}: {:>7.1} MB/s each way",
                    via.name(),
                    rep + 1,
                    run.mb_per_s
                );
                cell.entry(via.name()).or_default().push(run);
            }
        }
        table.push((conns, cell));
    }

    // Connection setup.
    let mut setups: HashMap<&'static str, Vec<Duration>> = HashMap::new();
    for rep in 0..s.reps {
        for k in 0..Via::ALL.len() {
            let via = Via::ALL[(k + rep) % Via::ALL.len()];
            let mut v = Vec::with_capacity(s.setups);
            for _ in 0..s.setups {
                v.push(match via {
                    Via::Direct => rt.block_on(setup_tunnel(&tunnels.0)),
                    Via::GatewayMetadata => rt.block_on(setup_tunnel(&tunnels.1)),
                    Via::GatewayFull => rt.block_on(setup_tunnel(&tunnels.2)),
                    Via::KubectlDirect => setup_tcp(kubectl_direct.addr),
                    Via::KubectlGateway => setup_tcp(kubectl_gateway.addr),
                });
            }
            record(via, s.setups as u64, s.setups as u64);
            setups.entry(via.name()).or_default().extend(v);
        }
    }

    // Memory held per open connection: N connections on the one forward of each path.
    let mut memory = Vec::new();
    for via in [Via::Direct, Via::GatewayMetadata, Via::GatewayFull] {
        let (t, pid) = match via {
            Via::Direct => (&tunnels.0, sandbox_pid),
            Via::GatewayMetadata => (&tunnels.1, gateway_pid),
            _ => (&tunnels.2, gateway_pid),
        };
        settle(pids(via));
        let before = rss_kib(pid);
        let conns = rt.block_on(futures::future::join_all(
            (0..s.held).map(|_| open_echoed(t)),
        ));
        let grown = rss_kib(pid).saturating_sub(before);
        rt.block_on(futures::future::join_all(conns.into_iter().map(close)));
        record(via, s.held as u64, s.held as u64);
        memory.push((via, "connection", s.held, grown));
    }
    // Memory held per open forward: S more forwards of one connection each, straight to the
    // sandbox and through the gateway (recorded under their own group, checked apart).
    let mut held_forwards = 0;
    for (via, client, pid) in [
        (Via::Direct, &clients.0, sandbox_pid),
        (Via::GatewayMetadata, &clients.3, gateway_pid),
    ] {
        settle(pids(via));
        let before = rss_kib(pid);
        let open = rt.block_on(futures::future::join_all((0..s.forwards).map(|_| async {
            let t = Tunnel::dial(client).await;
            let c = open_echoed(&t).await;
            (t, c)
        })));
        let grown = rss_kib(pid).saturating_sub(before);
        rt.block_on(futures::future::join_all(open.into_iter().map(
            |(t, c)| async move {
                close(c).await;
                drop(t);
            },
        )));
        if via.through_gateway() {
            held_forwards += s.forwards;
        }
        memory.push((via, "session", s.forwards, grown));
    }

    // End every forward so that the gateway seals its recordings.
    drop(tunnels);
    drop(kubectl_gateway);
    drop(kubectl_direct);

    print_results(&s, &table, &mut setups);
    print_memory(&memory);
    check_recordings(&cluster, &moved, held_forwards);
    drop(rt);
}

/// RSS grown per connection or forward held open: (path, what, how many, KiB grown).
fn print_memory(memory: &[(Via, &str, usize, u64)]) {
    println!();
    println!(
        "Memory held open (VmRSS grown while N are open; the sandbox's for direct, the gateway's otherwise)"
    );
    println!(
        "  {:<17} {:<11} {:>6} {:>12} {:>10}",
        "path", "per", "N", "grown KiB", "KiB each"
    );
    for (via, what, n, kib) in memory {
        println!(
            "  {:<17} {:<11} {:>6} {:>12} {:>10.1}",
            via.name(),
            what,
            n,
            kib,
            *kib as f64 / *n as f64
        );
    }
}

fn print_results(
    s: &Settings,
    table: &[(usize, HashMap<&'static str, Vec<Run>>)],
    setups: &mut HashMap<&'static str, Vec<Duration>>,
) {
    println!();
    println!(
        "Throughput (median of {} repetitions; MB/s each way; CPU seconds per GB moved each way)",
        s.reps
    );
    println!(
        "  {:<6} {:<17} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "conns", "path", "MB/s", "gateway", "sandbox", "client", "kubectl"
    );
    for (conns, cell) in table {
        for via in Via::ALL {
            let runs = &cell[via.name()];
            let per_gb = |i: usize| {
                median(
                    runs.iter()
                        .map(|r| r.cpu.0[i] / (r.bytes as f64 / 1e9))
                        .collect(),
                )
            };
            println!(
                "  {:<6} {:<17} {:>9.1} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
                conns,
                via.name(),
                median(runs.iter().map(|r| r.mb_per_s).collect()),
                if via.through_gateway() {
                    per_gb(0)
                } else {
                    0.0
                },
                per_gb(1),
                per_gb(2),
                per_gb(3),
            );
        }
        let mbs = |v: Via| median(cell[v.name()].iter().map(|r| r.mb_per_s).collect());
        println!(
            "  {conns} conn ratios: gateway-metadata/direct {:.2} · gateway-full/direct {:.2} · kubectl-gateway/kubectl-direct {:.2} · gateway-metadata/kubectl-direct {:.2}",
            mbs(Via::GatewayMetadata) / mbs(Via::Direct),
            mbs(Via::GatewayFull) / mbs(Via::Direct),
            mbs(Via::KubectlGateway) / mbs(Via::KubectlDirect),
            mbs(Via::GatewayMetadata) / mbs(Via::KubectlDirect),
        );
        let gw = |v: Via| {
            median(
                cell[v.name()]
                    .iter()
                    .map(|r| r.cpu.0[0] / (r.bytes as f64 / 1e9))
                    .collect(),
            )
        };
        println!(
            "  {conns} conn gateway CPU-s/GB (each way): metadata {:.2} · full {:.2} (capture costs {:.2}) · under kubectl {:.2}",
            gw(Via::GatewayMetadata),
            gw(Via::GatewayFull),
            gw(Via::GatewayFull) - gw(Via::GatewayMetadata),
            gw(Via::KubectlGateway),
        );
    }
    println!();
    println!("Connection setup: new connection → first echoed byte (ms)");
    println!("  {:<17} {:>8} {:>8} {:>8}", "path", "p50", "p90", "p99");
    let mut p50 = HashMap::new();
    for via in Via::ALL {
        let v = setups.get_mut(via.name()).unwrap();
        let (a, b, c) = (percentile(v, 0.5), percentile(v, 0.9), percentile(v, 0.99));
        p50.insert(via.name(), a);
        println!(
            "  {:<17} {:>8.2} {:>8.2} {:>8.2}",
            via.name(),
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            c.as_secs_f64() * 1e3
        );
    }
    let r = |a: Via, b: Via| p50[a.name()].as_secs_f64() / p50[b.name()].as_secs_f64();
    println!(
        "  p50 ratios: gateway-metadata/direct {:.2} · gateway-full/direct {:.2} · kubectl-gateway/kubectl-direct {:.2}",
        r(Via::GatewayMetadata, Via::Direct),
        r(Via::GatewayFull, Via::Direct),
        r(Via::KubectlGateway, Via::KubectlDirect)
    );
}

/// The gateway's recordings hold exactly what the client moved.
fn check_recordings(
    cluster: &Cluster,
    moved: &HashMap<&'static str, (u64, u64)>,
    held_forwards: usize,
) {
    let group = |s: &serde_json::Value| {
        s["meta"]["identity"]["groups"][0]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (sessions, held) = loop {
        let all = cluster.sessions();
        let (held, forwards): (Vec<serde_json::Value>, Vec<serde_json::Value>) = all
            .into_iter()
            .filter(|s| s["meta"]["kind"] == "port-forward")
            .partition(|s| group(s) == "bench-held");
        if forwards.len() == 3
            && held.len() == held_forwards
            && forwards.iter().chain(&held).all(|s| s["state"] == "sealed")
        {
            break (forwards, held);
        }
        assert!(
            Instant::now() < deadline,
            "recordings not sealed: {forwards:#?} {held:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for s in &held {
        assert_eq!(s["port_forward"]["connections"], 1, "{s:#}");
        assert_eq!(s["port_forward"]["to_pod"], 1, "{s:#}");
        assert_eq!(s["port_forward"]["from_pod"], 1, "{s:#}");
    }
    let store = PathBuf::from(
        cluster
            .store_url
            .strip_prefix("file://")
            .expect("the harness records to file://"),
    );
    println!();
    println!(
        "Recordings: {} forwards held open for the memory figures sealed with 1 connection each; the three below verified",
        held.len()
    );
    println!(
        "  {:<17} {:>6} {:>14} {:>8} {:>8} {:>11} {:>10} {:>12}",
        "path",
        "conns",
        "bytes each way",
        "captured",
        "objects",
        "stored",
        "objects/GB",
        "stored/moved"
    );
    for s in &sessions {
        let group = group(s);
        let group = group.as_str();
        let agent = s["meta"]["client"]["user_agent"]
            .as_str()
            .unwrap_or_default();
        let via = match (group, agent.starts_with("kubectl")) {
            ("bench-full", _) => Via::GatewayFull,
            (_, true) => Via::KubectlGateway,
            _ => Via::GatewayMetadata,
        };
        let (conns, bytes) = moved[via.name()];
        let pf = &s["port_forward"];
        let id = s["session"].as_str().unwrap();
        let out = cluster
            .kubetape()
            .args(["verify", id])
            .output()
            .expect("kubetape verify");
        assert!(
            out.status.success(),
            "verify {id}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(pf["connections"], conns, "{}: {s:#}", via.name());
        assert_eq!(pf["to_pod"], bytes, "{}: {s:#}", via.name());
        assert_eq!(pf["from_pod"], bytes, "{}: {s:#}", via.name());
        let captured = s["bytes"]["port_forward"].as_u64().unwrap_or_default();
        if via == Via::GatewayFull {
            assert_eq!(captured, 2 * bytes, "full capture: {s:#}");
        } else {
            assert_eq!(captured, 0, "metadata only: {s:#}");
        }
        let (objects, stored) = objects_of(&store, id);
        let gb = 2.0 * bytes as f64 / 1e9;
        println!(
            "  {:<17} {:>6} {:>14} {:>8} {:>8} {:>11} {:>10.1} {:>12.4}",
            via.name(),
            conns,
            bytes,
            captured,
            objects,
            stored,
            objects as f64 / gb,
            stored as f64 / (2.0 * bytes as f64),
        );
    }
    println!(
        "  (GB = bytes moved both ways, 10^9; every recording sealed and `kubetape verify` passed)"
    );
}
