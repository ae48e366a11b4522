//! `kubectl port-forward` (1.27, 1.30, 1.33, 1.37; the WebSocket tunnel and raw SPDY) and
//! kube-rs (`v4.channel.k8s.io`) straight against the sandbox: the demo pod's HTTP server on 80
//! answers known bytes, its TCP echo on 7000 returns 4 × 20 MB concurrent uploads byte for byte,
//! a client that shuts its write side still reads the whole reply, and a port nothing serves
//! gets kubelet's error text.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use common::{Kubectl, TestSandbox, config, start};

/// Bytes each echo connection sends (and must get back).
const ECHO_BYTES: usize = 20 << 20;
/// A port the demo pod declares nothing on.
const CLOSED_PORT: u16 = 7001;

/// A running `kubectl port-forward pod/demo :80 :7000 :7001`, with the local ports it chose.
struct Forward {
    child: tokio::process::Child,
    local: Vec<(u16, SocketAddr)>,
    stderr: tokio::task::JoinHandle<String>,
}

impl Forward {
    async fn start(t: &TestSandbox, kubectl: &Kubectl) -> Self {
        let home = t.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut child = tokio::process::Command::new(kubectl.binary())
            .env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/bin:/bin")
            .envs(kubectl.env.iter().copied())
            .arg("--kubeconfig")
            .arg(&t.sb.kubeconfig_path)
            .arg("--cache-dir")
            .arg(home.join("cache"))
            .args(["port-forward", "pod/demo", ":80", ":7000"])
            .arg(format!(":{CLOSED_PORT}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut err = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s).await;
            s
        });
        let mut local = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while local.len() < 3 {
            let line = tokio::time::timeout_at(deadline, lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("kubectl {} did not start forwarding", kubectl.version))
                .unwrap()
                .unwrap_or_else(|| panic!("kubectl {} exited", kubectl.version));
            // "Forwarding from 127.0.0.1:PORT -> REMOTE"
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                let (l, r) = rest.split_once(" -> ").unwrap();
                local.push((
                    r.parse().unwrap(),
                    format!("127.0.0.1:{l}").parse().unwrap(),
                ));
            }
        }
        // Keep draining stdout ("Handling connection for …").
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            local,
            stderr,
        }
    }

    fn addr(&self, remote: u16) -> SocketAddr {
        self.local.iter().find(|(r, _)| *r == remote).unwrap().1
    }

    /// Stops kubectl and returns what it printed on stderr.
    async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.stderr.await.unwrap()
    }
}

/// Sends `request`, shuts the write side, reads to EOF.
async fn half_closed_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut got))
        .await
        .expect("reply did not end")
        .unwrap();
    got
}

/// Deterministic, incompressible-looking bytes for connection `seed`.
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

/// Uploads `ECHO_BYTES` while reading the echo; returns (sent, received) SHA-256 and the count.
async fn echo_both_ways(addr: SocketAddr, seed: u64) -> ([u8; 32], [u8; 32], usize) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = tcp.into_split();
    let data = pattern(seed, ECHO_BYTES);
    let sent: [u8; 32] = Sha256::digest(&data).into();
    let writer = tokio::spawn(async move {
        for chunk in data.chunks(64 << 10) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
    });
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut n = 0;
    loop {
        // Only a hang detector: on a loaded 2-core machine a debug build can pause for long.
        let got = tokio::time::timeout(Duration::from_secs(180), r.read(&mut buf))
            .await
            .expect("echo stalled")
            .unwrap();
        if got == 0 {
            break;
        }
        hasher.update(&buf[..got]);
        n += got;
    }
    writer.await.unwrap();
    (sent, hasher.finalize().into(), n)
}

/// Everything the issue asks of one kubectl build and transport.
async fn forward_with(kubectl: Kubectl, transport: &str) {
    let t = start(config()).await;
    let mut fwd = Forward::start(&t, &kubectl).await;
    let v = kubectl.version;

    // curl-like: the known bytes, and an upload echoed by the HTTP server.
    let got = half_closed_exchange(
        fwd.addr(80),
        b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{v}: {text}");
    assert!(
        got.ends_with(sandbox::portserver::HTTP_GREETING),
        "{v}: {text}"
    );

    // A client that shuts its write side first still reads the whole (1 MB) reply.
    let body = pattern(99, 1 << 20);
    let mut req = format!(
        "POST /upload HTTP/1.1\r\nHost: demo\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let got = half_closed_exchange(fwd.addr(80), &req).await;
    assert!(got.ends_with(&body), "{v}: upload not echoed whole");
    let echoed = half_closed_exchange(fwd.addr(7000), &body).await;
    assert_eq!(echoed.len(), body.len(), "{v}");
    assert!(echoed == body, "{v}: echo differs");

    // 4 concurrent connections, 20 MB each way.
    let started = Instant::now();
    let runs: Vec<_> = (0..4)
        .map(|i| tokio::spawn(echo_both_ways(fwd.addr(7000), i)))
        .collect();
    for r in runs {
        let (sent, received, n) = r.await.unwrap();
        assert_eq!(n, ECHO_BYTES, "{v}: bytes back");
        assert_eq!(sent, received, "{v}: SHA-256 of what came back");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "kubectl {v} ({transport}): 4 × 20 MB echoed both ways in {secs:.2} s ({:.0} MB/s each way)",
        (4 * ECHO_BYTES) as f64 / secs / 1e6
    );

    // A port nothing serves: kubelet's message on the error stream, which kubectl prints.
    let _ = tokio::net::TcpStream::connect(fwd.addr(CLOSED_PORT))
        .await
        .unwrap()
        .read(&mut [0u8; 16])
        .await;
    let want = format!("error forwarding port {CLOSED_PORT} to pod ");
    // kubectl ends the forward on such an error ("lost connection to pod"); wait for that.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fwd.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stderr = fwd.stop().await;
    assert!(stderr.contains(&want), "{v}: {stderr}");
    assert!(
        stderr.contains(&format!(
            "dial tcp4 127.0.0.1:{CLOSED_PORT}: connect: connection refused"
        )),
        "{v}: {stderr}"
    );

    // The API saw the upgrades (and nothing else for port-forward).
    let log = t.sb.requests.snapshot();
    let pf: Vec<_> = log
        .iter()
        .filter(|r| r.path.contains("/pods/demo/portforward"))
        .collect();
    assert!(!pf.is_empty(), "{v}: no port-forward request logged");
    for r in &pf {
        assert_eq!(r.status, 101, "{v}: {r:?}");
        let want = if transport == "tunnel" {
            ("GET", "websocket", "SPDY/3.1+portforward.k8s.io")
        } else {
            ("POST", "SPDY/3.1", "portforward.k8s.io")
        };
        assert_eq!(
            (
                r.method.as_str(),
                r.upgrade.as_deref().unwrap_or(""),
                r.protocols.first().map(String::as_str).unwrap_or("")
            ),
            want,
            "{v}"
        );
    }
}

fn with_env(version: &'static str, key: &'static str, value: &'static str) -> Kubectl {
    Kubectl {
        version,
        env: vec![(key, value)],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_raw_spdy() {
    forward_with(Kubectl::new("1.27"), "spdy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_30_raw_spdy_and_tunnel() {
    forward_with(Kubectl::new("1.30"), "spdy").await;
    forward_with(
        with_env("1.30", "KUBECTL_PORT_FORWARD_WEBSOCKETS", "true"),
        "tunnel",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_tunnel_and_raw_spdy() {
    forward_with(Kubectl::new("1.33"), "tunnel").await;
    forward_with(
        with_env("1.33", "KUBECTL_PORT_FORWARD_WEBSOCKETS", "false"),
        "spdy",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_37_tunnel() {
    forward_with(Kubectl::new("1.37"), "tunnel").await;
}

/// kube-rs's `Api::portforward`: the channel protocol with `?ports=`, port prefixes checked by
/// kube-rs itself, and the error channel for a closed port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_channel_protocol() {
    let t = start(config()).await;
    let kubeconfig = kube::config::Kubeconfig::read_from(&t.sb.kubeconfig_path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    let mut pf = pods
        .portforward("demo", &[80, 7000, CLOSED_PORT])
        .await
        .unwrap();
    let mut http = pf.take_stream(80).unwrap();
    http.write_all(b"GET /bytes/100000 HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut echo = pf.take_stream(7000).unwrap();
    let data = pattern(7, 3 << 20);
    let (mut er, mut ew) = tokio::io::split(&mut echo);
    let send = async {
        ew.write_all(&data).await.unwrap();
    };
    let recv = async {
        let mut got = vec![0u8; data.len()];
        er.read_exact(&mut got).await.unwrap();
        got
    };
    let ((), got) =
        tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(send, recv) })
            .await
            .expect("echo over v4 stalled");
    assert!(got == data, "echo over v4 differs");
    // The channel protocol has no per-port EOF (the WebSocket closes when every port ended,
    // and the echo port has not), so read until the whole known body is in.
    let want: Vec<u8> = (0..100_000).map(sandbox::portserver::known_byte).collect();
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    while !answer.ends_with(&want) {
        let n = tokio::time::timeout(Duration::from_secs(30), http.read(&mut buf))
            .await
            .expect("HTTP answer stalled")
            .unwrap();
        assert!(n > 0, "port 80 ended early after {} bytes", answer.len());
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let error = tokio::time::timeout(Duration::from_secs(30), pf.take_error(CLOSED_PORT).unwrap())
        .await
        .expect("no error for the closed port");
    let error = error.unwrap_or_default();
    assert!(
        error.starts_with(&format!("error forwarding port {CLOSED_PORT} to pod ")),
        "{error:?}"
    );
    drop((http, echo));
    pf.abort();
    let log = t.sb.requests.snapshot();
    let r = log
        .iter()
        .find(|r| r.path.contains("/portforward"))
        .unwrap();
    assert!(r.path.contains("ports=80%2C7000%2C7001"), "{}", r.path);
    assert_eq!((r.status, r.upgrade.as_deref()), (101, Some("websocket")));
}

/// Refusals answer before any upgrade, as the API server and kubelet do.
#[tokio::test]
async fn bad_requests_are_refused() {
    let t = start(config()).await;
    let req = |method: &str, path: &str, extra: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n{extra}Connection: close\r\n\r\n",
            t.sb.token
        )
    };
    let ws = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    for (request, status, text) in [
        (
            req(
                "GET",
                "/api/v1/namespaces/default/pods/nope/portforward",
                ws,
            ),
            "404",
            "pods \\\"nope\\\" not found",
        ),
        (
            req(
                "GET",
                "/api/v1/namespaces/default/pods/demo/portforward",
                "",
            ),
            "400",
            "Upgrade request required",
        ),
        (
            req(
                "GET",
                "/api/v1/namespaces/default/pods/demo/portforward",
                &format!("{ws}Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n"),
            ),
            "400",
            "query parameter \\\"port\\\" is required",
        ),
        (
            req(
                "GET",
                "/api/v1/namespaces/default/pods/demo/portforward?ports=http",
                &format!("{ws}Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n"),
            ),
            "400",
            "unable to parse \\\"http\\\" as a port",
        ),
        (
            req(
                "POST",
                "/api/v1/namespaces/default/pods/demo/portforward",
                "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
            ),
            "403",
            "unable to negotiate protocol",
        ),
    ] {
        let resp = common::raw_https(&t, &request).await;
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {status}")),
            "{request}\n{resp}"
        );
        assert!(resp.contains(text), "{request}\n{resp}");
    }
}
