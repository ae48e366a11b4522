//! `kubectl port-forward` through the gateway, end to end, with real kubectl 1.27, 1.30, 1.33
//! and 1.37 (the WebSocket tunnel and raw SPDY) and kube-rs (the channel protocol) against the
//! sandbox's demo pod (HTTP on 80, TCP echo on 7000): the known bytes, 4 × 20 MB echoed both
//! ways byte for byte, half-close, per-port policy (one connection refused, the rest working),
//! a 403 naming the rule, revocation and grant expiry within a second, the cluster killed
//! mid-transfer, and recordings that list every connection, verify, and with full capture give
//! back exactly the bytes that moved.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tests::{Cluster, Kubectl, run};

const T: Duration = Duration::from_secs(60);
/// Bytes each echo connection sends (and must get back).
const ECHO_BYTES: usize = 20 << 20;
/// What the sandbox's HTTP server answers to `GET /`.
const GREETING: &[u8] = b"hello from kubetape-sandbox (pod port 80)\n";

/// `developers` may forward the demo pod's two ports in `default`; full capture on request.
fn policy(ports: &str, capture: &str) -> String {
    format!(
        r#"
[[roles]]
name = "developer"
[[roles.rules]]
namespaces = ["default", "staging"]
resources = ["pods", "pods/log", "pods/exec"]
verbs = ["get", "list", "watch", "create"]
[[roles.rules]]
namespaces = ["default"]
resources = ["pods/portforward"]
verbs = ["create"]
ports = [{ports}]
capture = "{capture}"

[[roles]]
name = "db-forward"
requestable = true
approvers = ["sre"]
max_ttl = "1h"
[[roles.rules]]
namespaces = ["prod"]
resources = ["pods", "pods/portforward"]
verbs = ["get", "create"]
ports = [5432]

[[bindings]]
name = "developers"
groups = ["developers"]
roles = ["developer"]
"#
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A loopback port nothing listens on (bound, then let go).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How kubectl talks to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tunnel,
    Spdy,
}

/// A running `kubectl port-forward`, with its local ports.
struct Forward {
    child: Child,
    local: Vec<(u16, SocketAddr)>,
    stderr: Option<std::thread::JoinHandle<String>>,
    name: String,
}

impl Forward {
    fn start(
        cluster: &Cluster,
        kubectl: &Path,
        kubeconfig: &Path,
        transport: Option<Transport>,
        target: &[&str],
        remotes: &[u16],
    ) -> Self {
        let mut cmd = cluster.kubectl(kubectl, kubeconfig);
        if let Some(t) = transport {
            cmd.env(
                "KUBECTL_PORT_FORWARD_WEBSOCKETS",
                if t == Transport::Tunnel {
                    "true"
                } else {
                    "false"
                },
            );
        }
        cmd.arg("port-forward").args(target);
        let mut wanted = Vec::new();
        for r in remotes {
            let l = free_port();
            cmd.arg(format!("{l}:{r}"));
            wanted.push((*r, format!("127.0.0.1:{l}").parse().unwrap()));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let name = format!("{} {target:?}", kubectl.display());
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut ready = 0;
        let deadline = Instant::now() + T;
        while ready < remotes.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                // "Forwarding from 127.0.0.1:PORT -> REMOTE"
                Ok(line) if line.starts_with("Forwarding from 127.0.0.1:") => ready += 1,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{name} did not start forwarding: {}",
                        stderr.join().unwrap_or_default()
                    );
                }
            }
        }
        // Keep draining stdout ("Handling connection for …").
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Self {
            child,
            local: wanted,
            stderr: Some(stderr),
            name,
        }
    }

    fn addr(&self, remote: u16) -> SocketAddr {
        self.local.iter().find(|(r, _)| *r == remote).unwrap().1
    }

    /// Waits (bounded) for kubectl to exit on its own; returns its exit code and stderr.
    fn wait_exit(mut self, within: Duration) -> (Option<i32>, String, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), self.stderr_text(), started.elapsed());
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr_text();
                panic!("{} did not exit within {within:?}: {stderr}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops kubectl (as Ctrl-C would); returns its stderr.
    fn stop(mut self) -> String {
        let _ = rustix_kill(&self.child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr_text()
    }

    fn stderr_text(&mut self) -> String {
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIGINT, as a user's Ctrl-C: kubectl closes its connection to the gateway itself.
fn rustix_kill(child: &Child) -> std::io::Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("kill failed"))
    }
}

/// Sends `request`, shuts the write side, reads to EOF.
fn half_closed_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(T)).unwrap();
    let writer = {
        let mut w = tcp.try_clone().unwrap();
        let request = request.to_vec();
        std::thread::spawn(move || {
            w.write_all(&request).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut got = Vec::new();
    tcp.read_to_end(&mut got).expect("the reply did not end");
    writer.join().unwrap();
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

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Uploads `len` bytes while reading the echo; (sent, received) SHA-256 and bytes back.
fn echo_both_ways(addr: SocketAddr, seed: u64, len: usize) -> (String, String, usize) {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(T)).unwrap();
    let data = pattern(seed, len);
    let sent = sha(&data);
    let mut w = tcp.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for chunk in data.chunks(64 << 10) {
            w.write_all(chunk).unwrap();
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut n = 0;
    let mut r = tcp;
    loop {
        let got = r.read(&mut buf).expect("echo stalled");
        if got == 0 {
            break;
        }
        hasher.update(&buf[..got]);
        n += got;
    }
    writer.join().unwrap();
    (sent, hex::encode(hasher.finalize()), n)
}

/// The newest session of the store as `kubetape ls --json` lists it, once sealed.
fn newest_sealed(cluster: &Cluster) -> serde_json::Value {
    let deadline = Instant::now() + T;
    loop {
        let sessions = cluster.sessions();
        if let Some(s) = sessions.first()
            && s["state"] != "open"
        {
            return s.clone();
        }
        assert!(Instant::now() < deadline, "not sealed: {sessions:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The recording's connections, from its events: (conn, port, to_pod, from_pod, outcome,
/// message), and its markers.
#[derive(Debug, Default)]
struct Recorded {
    conns: Vec<(u64, u16, u64, u64, String, String)>,
    markers: Vec<String>,
}

fn recorded(cluster: &Cluster, session: &str) -> Recorded {
    use storage_schema::store::{SessionReader, Store};
    use storage_schema::{EventKind, Keyring};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(&cluster.store_url).unwrap();
        let ring = Keyring::open(&cluster.keys).unwrap();
        let reader = SessionReader::open(&store, &ring, session.parse().unwrap())
            .await
            .unwrap();
        let mut r = Recorded::default();
        reader
            .for_each_event(|e| match &e.kind {
                EventKind::PortForwardOpen { conn, port } => {
                    r.conns
                        .push((*conn, *port, 0, 0, String::new(), String::new()));
                }
                EventKind::PortForwardBytes {
                    conn,
                    to_pod,
                    from_pod,
                } => {
                    let c = r.conns.iter_mut().find(|c| c.0 == *conn).unwrap();
                    c.2 += to_pod;
                    c.3 += from_pod;
                }
                EventKind::PortForwardEnd {
                    conn,
                    outcome,
                    message,
                } => {
                    let c = r.conns.iter_mut().find(|c| c.0 == *conn).unwrap();
                    c.4 = outcome.name().into();
                    c.5 = message.clone();
                }
                EventKind::Marker { text } => r.markers.push(text.clone()),
                _ => {}
            })
            .await
            .unwrap();
        r
    })
}

fn verify(cluster: &Cluster, session: &str) {
    let (code, out, err) = run(cluster.kubetape().args(["verify", session]), b"", T);
    assert_eq!(code, Some(0), "verify: {}{}", text(&out), text(&err));
}

/// Port-forward requests the sandbox (the cluster) answered.
fn sandbox_forwards(cluster: &Cluster) -> Vec<serde_json::Value> {
    cluster
        .sandbox_requests()
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/portforward"))
        })
        .collect()
}

/// Everything the issue asks of one kubectl build and transport, in the quickstart's shape.
fn forward_with(cluster: &Cluster, kubectl: Kubectl, transport: Option<Transport>) {
    let Some(path) = kubectl.path() else { return };
    let kc = cluster.kubeconfig("dev@example.com", &["developers"]);
    let before = sandbox_forwards(cluster).len();
    let fwd = Forward::start(cluster, &path, &kc, transport, &["pod/demo"], &[80, 7000]);
    let v = format!("{kubectl:?} {transport:?}");

    // curl: the known bytes.
    let got = half_closed_exchange(
        fwd.addr(80),
        b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n",
    );
    assert!(
        got.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{v}: {}",
        text(&got)
    );
    assert!(got.ends_with(GREETING), "{v}: {}", text(&got));

    // A client that shuts its write side first still reads the whole (1 MB) reply.
    let body = pattern(99, 1 << 20);
    let echoed = half_closed_exchange(fwd.addr(7000), &body);
    assert_eq!(echoed.len(), body.len(), "{v}");
    assert!(echoed == body, "{v}: echo differs");

    // 4 concurrent connections, 20 MB each way.
    let started = Instant::now();
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let addr = fwd.addr(7000);
            std::thread::spawn(move || echo_both_ways(addr, i, ECHO_BYTES))
        })
        .collect();
    for r in runs {
        let (sent, received, n) = r.join().unwrap();
        assert_eq!(n, ECHO_BYTES, "{v}: bytes back");
        assert_eq!(sent, received, "{v}: SHA-256 of what came back");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{v}: 4 × 20 MB echoed both ways through the gateway in {secs:.2} s ({:.0} MB/s each way)",
        (4 * ECHO_BYTES) as f64 / secs / 1e6
    );
    let stderr = fwd.stop();
    assert!(!stderr.contains("error"), "{v}: {stderr}");

    // The recording: every connection, its port and bytes, closed cleanly; verify passes.
    let s = newest_sealed(cluster);
    assert_eq!(s["meta"]["kind"], "port-forward", "{s:#}");
    assert_eq!(s["state"], "sealed", "{s:#}");
    let id = s["session"].as_str().unwrap().to_string();
    verify(cluster, &id);
    let pf = &s["port_forward"];
    assert_eq!(pf["connections"], 6, "{v}: {s:#}");
    let r = recorded(cluster, &id);
    let ports: Vec<u16> = r.conns.iter().map(|c| c.1).collect();
    assert_eq!(ports, [80, 7000, 7000, 7000, 7000, 7000], "{v}");
    assert!(
        r.conns.iter().all(|c| c.4 == "closed"),
        "{v}: {:?}",
        r.conns
    );
    let (to, from): (u64, u64) = r.conns.iter().fold((0, 0), |(t, f), c| (t + c.2, f + c.3));
    let moved = (1u64 << 20) + 4 * ECHO_BYTES as u64;
    assert_eq!(r.conns[1].2, 1 << 20, "{v}");
    assert_eq!(r.conns[1].3, 1 << 20, "{v}");
    assert!(to > moved && from > moved, "{v}: {to} {from}");
    assert_eq!(pf["to_pod"], to, "{v}");
    assert_eq!(pf["from_pod"], from, "{v}");
    let forwards = sandbox_forwards(cluster);
    assert_eq!(
        forwards.len(),
        before + 1,
        "{v}: one upstream forward per kubectl forward"
    );
    assert_eq!(forwards[before]["status"], 101, "{v}");
}

#[test]
fn kubectl_1_27_and_1_30_over_spdy_and_the_tunnel() {
    let cluster = Cluster::start_with_policy(&policy("80, 7000", "metadata"));
    forward_with(&cluster, Kubectl::V1_27, None);
    forward_with(&cluster, Kubectl::V1_30, None);
    forward_with(&cluster, Kubectl::V1_30, Some(Transport::Tunnel));
}

#[test]
fn kubectl_1_33_and_1_37_over_the_tunnel_and_spdy() {
    let cluster = Cluster::start_with_policy(&policy("80, 7000", "metadata"));
    forward_with(&cluster, Kubectl::V1_33, None);
    forward_with(&cluster, Kubectl::V1_33, Some(Transport::Spdy));
    forward_with(&cluster, Kubectl::V1_37, None);
}

fn kubetape_cat(cluster: &Cluster, id: &str, conn: u64, direction: &str) -> Vec<u8> {
    let (code, out, err) = run(
        cluster.kubetape().args([
            "cat",
            id,
            "--connection",
            &conn.to_string(),
            "--direction",
            direction,
        ]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", text(&err));
    out
}

/// With `capture = "full"`, `kubetape cat --connection` gives back exactly what moved.
#[test]
fn full_capture_gives_back_every_byte() {
    let cluster = Cluster::start_with_policy(&policy("80, 7000", "full"));
    let kubectl = Kubectl::V1_33.path().unwrap();
    let kc = cluster.kubeconfig("dev@example.com", &["developers"]);
    let fwd = Forward::start(&cluster, &kubectl, &kc, None, &["pod/demo"], &[80, 7000]);
    let request = b"GET /bytes/300000 HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n";
    let answer = half_closed_exchange(fwd.addr(80), request);
    let upload = pattern(5, 3 << 20);
    let echoed = half_closed_exchange(fwd.addr(7000), &upload);
    assert!(echoed == upload);
    fwd.stop();
    let s = newest_sealed(&cluster);
    let id = s["session"].as_str().unwrap().to_string();
    verify(&cluster, &id);
    assert_eq!(s["meta"]["port_forward"]["capture"], "full", "{s:#}");
    assert_eq!(sha(&kubetape_cat(&cluster, &id, 1, "in")), sha(request));
    assert_eq!(sha(&kubetape_cat(&cluster, &id, 1, "out")), sha(&answer));
    assert_eq!(sha(&kubetape_cat(&cluster, &id, 2, "in")), sha(&upload));
    assert_eq!(sha(&kubetape_cat(&cluster, &id, 2, "out")), sha(&echoed));
    // A connection that does not exist, and a metadata-only recording, say so.
    let (code, _, err) = run(
        cluster.kubetape().args(["cat", &id, "--connection", "9"]),
        b"",
        T,
    );
    assert_eq!(code, Some(1));
    assert!(
        text(&err).contains("has no connection 9 (it recorded 2)"),
        "{}",
        text(&err)
    );
    // `ls` shows the connections and bytes.
    let (code, out, _) = run(cluster.kubetape().arg("ls"), b"", T);
    assert_eq!(code, Some(0));
    assert!(
        text(&out).contains("default/demo portforward") && text(&out).contains("2 conn ↑"),
        "{}",
        text(&out)
    );
    // A port-forward is its own class of stream: `verify` describes its connections, and the
    // commands that need a terminal say where to look instead of printing nothing.
    let (code, out, _) = run(cluster.kubetape().args(["verify", &id]), b"", T);
    assert_eq!(code, Some(0));
    assert!(
        text(&out).contains("port-forward, 2 connections ↑"),
        "{}",
        text(&out)
    );
    for args in [vec!["cat", &id], vec!["export", &id, "--format", "text"]] {
        let (code, out, err) = run(cluster.kubetape().args(&args), b"", T);
        assert_ne!(code, Some(0), "{args:?} printed {}", text(&out));
        assert!(
            text(&err).contains("is a port-forward, not a terminal session")
                && text(&err).contains("--connection N"),
            "{args:?}: {}",
            text(&err)
        );
    }
    let (code, out, _) = run(cluster.kubetape().args(["search", "."]), b"", T);
    assert!(
        !text(&out).contains(&id[..8]),
        "search lists a port-forward: {code:?} {}",
        text(&out)
    );
}

/// A port outside the role fails that connection only (kubectl reports it, the other port keeps
/// working, nothing reaches the pod), and the recording and the audit log say which rule.
#[test]
fn a_port_outside_the_role_fails_alone() {
    let cluster = Cluster::start_with_policy(&policy("80", "metadata"));
    let kc = cluster.kubeconfig("dev@example.com", &["developers"]);
    for (kubectl, transport) in [
        (Kubectl::V1_27, None),
        (Kubectl::V1_33, None),
        (Kubectl::V1_37, None),
    ] {
        let Some(path) = kubectl.path() else { continue };
        let fwd = Forward::start(&cluster, &path, &kc, transport, &["pod/demo"], &[80, 7000]);
        // The echo port is refused: nothing comes back, kubectl closes the connection (a reset,
        // as data it never read was pending).
        let mut tcp = TcpStream::connect(fwd.addr(7000)).unwrap();
        tcp.set_read_timeout(Some(T)).unwrap();
        let _ = tcp.write_all(b"would be echoed by the pod");
        let mut got = Vec::new();
        match tcp.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        assert!(
            got.is_empty(),
            "{kubectl:?}: the refused port answered {}",
            text(&got)
        );
        // The allowed port still works, before and after.
        for _ in 0..2 {
            let got = half_closed_exchange(
                fwd.addr(80),
                b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n",
            );
            assert!(got.ends_with(GREETING), "{kubectl:?}: {}", text(&got));
        }
        let stderr = fwd.stop();
        let lower = stderr.to_lowercase();
        assert!(
            // "Stream reset" in 1.27's spdystream, "stream reset" later; 1.37 logs it
            // structured: `"Error creating error stream" err="Stream reset" ... remotePort=7000`.
            (lower.contains("-> 7000: stream reset")
                || (lower.contains("err=\"stream reset\"") && lower.contains("remoteport=7000")))
                && lower.contains("error creating error stream"),
            "{kubectl:?}: {stderr}"
        );
        let s = newest_sealed(&cluster);
        let id = s["session"].as_str().unwrap().to_string();
        verify(&cluster, &id);
        let r = recorded(&cluster, &id);
        assert_eq!(r.conns.len(), 3, "{:?}", r.conns);
        assert_eq!((r.conns[0].1, r.conns[0].4.as_str()), (7000, "refused"));
        assert!(
            r.conns[0].5.contains("port 7000 is not allowed")
                && r.conns[0]
                    .5
                    .contains("binding developers → role developer rule 2")
                && r.conns[0].5.contains("ports 80 only"),
            "{}",
            r.conns[0].5
        );
        assert!(r.conns[1..].iter().all(|c| c.1 == 80 && c.4 == "closed"));
        assert_eq!(s["port_forward"]["refused"], 1);
    }
    // The audit log: one record per connection, the refused one a denial naming the port.
    let deadline = Instant::now() + T;
    let records = loop {
        let (code, out, err) = run(cluster.kubetape().args(["audit", "--json"]), b"", T);
        assert_eq!(code, Some(0), "{}", text(&err));
        let records: Vec<serde_json::Value> = text(&out)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|r: &serde_json::Value| r.get("port_forward").is_some())
            .collect();
        if records.len() >= 3 || Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let denied: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["decision"] == "deny").collect();
    assert!(!denied.is_empty(), "{records:#?}");
    assert!(denied.iter().all(|r| r["port_forward"]["port"] == 7000
        && r["port_forward"]["outcome"] == "refused"
        && r["reason"].as_str().unwrap().contains("not allowed")));
    assert!(
        records
            .iter()
            .filter(|r| r["decision"] == "allow")
            .all(|r| r["port_forward"]["port"] == 80)
    );
}

/// kube-rs (the channel protocol): the refused port's reason arrives on its error channel, the
/// allowed port works, and the recording holds both.
#[test]
fn kube_rs_channel_protocol_with_a_refused_port() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let cluster = Cluster::start_with_policy(&policy("80", "metadata"));
    let kc = cluster.kubeconfig("dev@example.com", &["developers"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&kc).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(client, "default");
        let mut pf = pods.portforward("demo", &[80, 7000]).await.unwrap();
        let error = tokio::time::timeout(T, pf.take_error(7000).unwrap())
            .await
            .expect("no error for the refused port");
        let error = error.unwrap_or_default();
        assert!(error.contains("port 7000 is not allowed"), "{error:?}");
        let mut http = pf.take_stream(80).unwrap();
        http.write_all(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = vec![0u8; 4096];
        while !answer.ends_with(GREETING) {
            let n = tokio::time::timeout(T, http.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "port 80 ended early: {}", text(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
        drop(http);
        pf.abort();
    });
    let s = newest_sealed(&cluster);
    let id = s["session"].as_str().unwrap().to_string();
    verify(&cluster, &id);
    assert_eq!(
        s["meta"]["port_forward"]["ports"],
        serde_json::json!([80, 7000])
    );
    assert_eq!(
        s["meta"]["port_forward"]["client_protocol"],
        "v4.channel.k8s.io"
    );
    let r = recorded(&cluster, &id);
    let summary: Vec<(u16, &str)> = r.conns.iter().map(|c| (c.1, c.4.as_str())).collect();
    assert!(summary.contains(&(7000, "refused")), "{summary:?}");
    assert!(
        r.conns.iter().any(|c| c.1 == 80 && c.3 > 0),
        "{:?}",
        r.conns
    );
}

/// A forward no role allows is a 403 naming what is missing and the requestable role; neither
/// it nor a refused port reaches the cluster.
#[test]
fn a_forward_no_role_allows_is_a_403_naming_the_rule() {
    let cluster = Cluster::start_with_policy(&policy("80", "metadata"));
    let kc = cluster.kubeconfig("dev@example.com", &["developers"]);
    for kubectl in [Kubectl::V1_27, Kubectl::V1_33, Kubectl::V1_37] {
        let Some(path) = kubectl.path() else { continue };
        let (code, _, err) = run(
            cluster.kubectl(&path, &kc).args([
                "port-forward",
                "-n",
                "prod",
                "pod/db",
                "15432:5432",
            ]),
            b"",
            T,
        );
        let err = text(&err);
        assert_ne!(code, Some(0), "{kubectl:?}");
        assert!(
            err.contains("may not get pods \"db\" in namespace \"prod\"")
                || err.contains("may not create pods/portforward \"db\" in namespace \"prod\""),
            "{kubectl:?}: {err}"
        );
        assert!(
            err.contains("kubetape request db-forward --namespace prod"),
            "{kubectl:?}: {err}"
        );
    }
    // Straight at the forward (kubectl asks for the pod first): the 403 names the subresource.
    let (code, _, err) = run(
        cluster.kubectl(&Kubectl::V1_33.path().unwrap(), &kc).args([
            "get",
            "--raw",
            "/api/v1/namespaces/prod/pods/db/portforward",
        ]),
        b"",
        T,
    );
    assert_ne!(code, Some(0));
    assert!(
        text(&err)
            .contains("verb \"create\" on resource \"pods/portforward\" in namespace \"prod\""),
        "{}",
        text(&err)
    );
    assert!(
        sandbox_forwards(&cluster).is_empty(),
        "a refused forward reached the cluster"
    );
}

/// Revocation ends a live forward — one moving data, one idle — within a second, and the
/// recording says why.
#[test]
fn revocation_ends_a_live_forward_within_a_second() {
    let cluster = Cluster::start_with_policy(&policy("80, 7000", "metadata"));
    let user = "mallory@example.com";
    let kc = cluster.kubeconfig(user, &["developers"]);
    let kubectl = Kubectl::V1_33.path().unwrap();
    let fwd = Forward::start(&cluster, &kubectl, &kc, None, &["pod/demo"], &[7000]);
    // A connection in the middle of a transfer: the echo keeps it busy.
    let mut tcp = TcpStream::connect(fwd.addr(7000)).unwrap();
    tcp.write_all(b"live?").unwrap();
    let mut buf = [0u8; 5];
    tcp.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"live?");
    let (code, _, err) = run(
        cluster
            .gateway_admin()
            .args(["--user", user, "--reason", "offboarded"]),
        b"",
        T,
    );
    let revoked = Instant::now();
    assert_eq!(code, Some(0), "{}", text(&err));
    // The local connection ends, then kubectl (it prints the reason the gateway gave).
    tcp.set_read_timeout(Some(T)).unwrap();
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    let conn_ended = revoked.elapsed();
    let (code, stderr, _) = fwd.wait_exit(T);
    let exited = revoked.elapsed();
    eprintln!(
        "revoke command exit → forwarded connection closed {:.0} ms, kubectl exited {:.0} ms",
        conn_ended.as_secs_f64() * 1000.0,
        exited.as_secs_f64() * 1000.0
    );
    assert!(conn_ended < Duration::from_secs(1), "{conn_ended:?}");
    assert!(exited < Duration::from_secs(1), "{exited:?}");
    assert_ne!(code, Some(0));
    assert!(stderr.contains("access revoked"), "{stderr}");
    let s = newest_sealed(&cluster);
    assert_eq!(
        s["exit"]["message"], "kubetape: session ended: access revoked",
        "{s:#}"
    );
    let r = recorded(&cluster, s["session"].as_str().unwrap());
    assert!(
        r.markers
            .iter()
            .any(|m| m.contains("access revoked") && m.contains("offboarded")),
        "{:?}",
        r.markers
    );
    assert_eq!(r.conns.len(), 1);
    assert_eq!(r.conns[0].4, "ended");
    assert!(r.conns[0].5.contains("access revoked"), "{:?}", r.conns);
}

/// A forward opened under a just-in-time grant ends within a second of the grant's expiry.
#[test]
fn grant_expiry_ends_a_live_forward_within_a_second() {
    const TTL: u64 = 6;
    let cluster = Cluster::start_with_policy(&policy("80", "metadata"));
    let alice = cluster.kubeconfig("alice@example.com", &["developers"]);
    let bob = cluster.kubeconfig("bob@example.com", &["sre"]);
    let (code, out, err) = run(
        cluster.kubetape_as(&alice).args([
            "request",
            "db-forward",
            "--namespace",
            "prod",
            "--reason",
            "INC-7 slow queries",
            "--ttl",
            &format!("{TTL}s"),
            "--json",
        ]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", text(&err));
    let request: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let id = request["id"].as_str().unwrap().to_string();
    let (code, _, err) = run(cluster.kubetape_as(&bob).args(["approve", &id]), b"", T);
    let approved = Instant::now();
    assert_eq!(code, Some(0), "{}", text(&err));
    // 1.33 prints the reason the gateway gives; 1.37 says only "lost connection to pod" (it
    // exits on the tunnel's end before it reports the connection's error).
    let kubectl = Kubectl::V1_33.path().unwrap();
    let fwd = Forward::start(
        &cluster,
        &kubectl,
        &alice,
        None,
        &["-n", "prod", "pod/db"],
        &[5432],
    );
    let mut tcp = TcpStream::connect(fwd.addr(5432)).unwrap();
    tcp.write_all(b"ok?").unwrap();
    let mut buf = [0u8; 3];
    tcp.read_exact(&mut buf).unwrap();
    let (code, stderr, _) = fwd.wait_exit(Duration::from_secs(TTL + 30));
    let ended = approved.elapsed();
    eprintln!("grant of {TTL}s: the forward ended {ended:?} after the approval");
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains(&format!("grant {id}")) && stderr.contains("expired"),
        "{stderr}"
    );
    // The approval was given before `approved` was taken, so the grant expired before
    // `approved + TTL`: ending by `approved + TTL + 1 s` is within a second of the expiry.
    assert!(ended < Duration::from_secs(TTL + 1), "{ended:?}");
    let s = newest_sealed(&cluster);
    assert_eq!(s["meta"]["grant"]["id"], id.as_str(), "{s:#}");
    assert!(
        s["exit"]["message"].as_str().unwrap().contains("expired"),
        "{s:#}"
    );
}

/// The cluster dies in the middle of a transfer: kubectl reports an error and exits, nothing
/// hangs, and the recording is sealed, saying so.
#[test]
fn killing_the_cluster_mid_transfer() {
    let mut cluster = Cluster::start_with_policy(&policy("80, 7000", "metadata"));
    let kc = cluster.kubeconfig("dev@example.com", &["developers"]);
    let kubectl = Kubectl::V1_33.path().unwrap();
    let fwd = Forward::start(&cluster, &kubectl, &kc, None, &["pod/demo"], &[7000]);
    let tcp = TcpStream::connect(fwd.addr(7000)).unwrap();
    tcp.set_read_timeout(Some(T)).unwrap();
    let mut w = tcp.try_clone().unwrap();
    let (moving_tx, moving_rx) = mpsc::channel();
    let writer = std::thread::spawn(move || {
        let chunk = pattern(1, 64 << 10);
        loop {
            if w.write_all(&chunk).is_err() {
                return;
            }
            let _ = moving_tx.send(());
        }
    });
    let mut r = tcp;
    let mut buf = vec![0u8; 64 << 10];
    let mut got = 0;
    while got < 4 << 20 {
        got += r.read(&mut buf).unwrap();
    }
    moving_rx.recv().unwrap();
    cluster.kill_sandbox();
    let killed = Instant::now();
    // The local connection ends (EOF or reset), and kubectl exits with an error.
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let (code, stderr, _) = fwd.wait_exit(T);
    eprintln!("cluster killed → kubectl exited in {:?}", killed.elapsed());
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("lost connection to pod")
            || stderr.contains("lost the connection to the cluster"),
        "{stderr}"
    );
    let _ = writer.join();
    let s = newest_sealed(&cluster);
    assert!(
        s["state"] == "sealed" || s["state"] == "interrupted",
        "{s:#}"
    );
    assert!(
        s["exit"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("lost the connection to the cluster"),
        "{s:#}"
    );
    verify(&cluster, s["session"].as_str().unwrap());
}

/// A cluster whose WebSocket path is blocked: the gateway falls back to SPDY upstream, and a
/// tunnel client (kubectl 1.33) still forwards.
#[test]
fn a_cluster_refusing_websocket_is_dialled_over_spdy() {
    let cluster = Cluster::start_with_policy_and_sandbox_args(
        &policy("80, 7000", "metadata"),
        &["--exec-websocket", "refuse"],
    );
    let kc = cluster.kubeconfig("dev@example.com", &["developers"]);
    let kubectl = Kubectl::V1_33.path().unwrap();
    let fwd = Forward::start(&cluster, &kubectl, &kc, None, &["pod/demo"], &[80]);
    let got = half_closed_exchange(
        fwd.addr(80),
        b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n",
    );
    assert!(got.ends_with(GREETING), "{}", text(&got));
    fwd.stop();
    let forwards = sandbox_forwards(&cluster);
    let summary: Vec<(String, String, u64)> = forwards
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default().to_string(),
                r["upgrade"].as_str().unwrap_or_default().to_string(),
                r["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("GET".into(), "websocket".into(), 403),
            ("POST".into(), "SPDY/3.1".into(), 101)
        ]
    );
    let s = newest_sealed(&cluster);
    assert_eq!(
        s["meta"]["port_forward"]["upstream_protocol"],
        "SPDY/3.1 (portforward.k8s.io)"
    );
    assert_eq!(
        s["meta"]["port_forward"]["client_protocol"],
        "websocket (SPDY/3.1+portforward.k8s.io)"
    );
}
