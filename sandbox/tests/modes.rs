//! The sandbox behaving like older or locked-down clusters (`[modes]`, `--exec-websocket`,
//! `--drop-after-status`), so clients and the gateway can be tested against each: WebSocket
//! exec refused (kubectl falls back to SPDY), WebSocket v4 only (v5 alone refused, v4 answered
//! when offered), and the exit Status followed by an abrupt end of the connection.

mod common;

use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use sandbox::{ExecWebSocket, Modes};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use common::{Kubectl, TestSandbox, config, start};

async fn with_modes(modes: Modes) -> TestSandbox {
    let mut c = config();
    c.modes = modes;
    start(c).await
}

async fn kube_client(t: &TestSandbox) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&t.sb.kubeconfig_path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A WebSocket handshake over TLS offering `protocols`: the HTTP status, the chosen protocol and
/// the connection (on 101).
async fn ws(t: &TestSandbox, path: &str, protocols: &str) -> (u16, Option<String>, Option<Ws>) {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(t.sb.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(t.sb.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .unwrap();
    let mut req = format!("wss://127.0.0.1:{}{path}", t.sb.addr.port())
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert(
        "authorization",
        format!("Bearer {}", t.sb.token).parse().unwrap(),
    );
    h.insert("sec-websocket-protocol", protocols.parse().unwrap());
    match tokio_tungstenite::client_async(req, stream).await {
        Ok((ws, resp)) => (
            resp.status().as_u16(),
            resp.headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_string()),
            Some(ws),
        ),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            (resp.status().as_u16(), None, None)
        }
        Err(e) => panic!("handshake: {e}"),
    }
}

const EXEC: &str = "/api/v1/namespaces/default/pods/demo/exec?command=sh&command=-c&command=exit%207&stdout=true&stderr=true";

/// What kubectl needs to work: non-TTY exit codes and stdin through to EOF.
async fn kubectl_exec_works(t: &TestSandbox, kubectl: &Kubectl) {
    let run = kubectl
        .run(t, &["exec", "demo", "--", "sh", "-c", "exit 3"], None)
        .await;
    assert_eq!(run.code, 3, "{}: {}", kubectl.version, run.stderr);
    let run = kubectl
        .run(t, &["exec", "-i", "demo", "--", "cat"], Some(b"a\nb\n"))
        .await;
    assert_eq!(
        (run.code, run.stdout.as_slice()),
        (0, &b"a\nb\n"[..]),
        "{}: {}",
        kubectl.version,
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_refused_kubectl_falls_back_to_spdy() {
    let t = with_modes(Modes {
        exec_websocket: ExecWebSocket::Refuse,
        ..Modes::default()
    })
    .await;
    let (status, _, _) = ws(&t, EXEC, "v5.channel.k8s.io").await;
    assert_eq!(status, 403);
    let (status, _, _) = ws(&t, EXEC, "v4.channel.k8s.io").await;
    assert_eq!(status, 403);
    for v in ["1.30", "1.33", "1.37"] {
        kubectl_exec_works(&t, &Kubectl::new(v)).await;
    }
    // Every WebSocket attempt was refused and followed by a SPDY POST that was served.
    let execs: Vec<_> =
        t.sb.requests
            .snapshot()
            .into_iter()
            .filter(|r| {
                r.path.contains("/exec?")
                    && r.user_agent
                        .as_deref()
                        .is_some_and(|u| u.starts_with("kubectl"))
            })
            .collect();
    assert_eq!(execs.len(), 12, "{execs:?}");
    for pair in execs.chunks(2) {
        assert_eq!(
            (
                pair[0].method.as_str(),
                pair[0].upgrade.as_deref(),
                pair[0].status
            ),
            ("GET", Some("websocket"), 403)
        );
        assert_eq!(
            (
                pair[1].method.as_str(),
                pair[1].upgrade.as_deref(),
                pair[1].status
            ),
            ("POST", Some("SPDY/3.1"), 101)
        );
    }
    // kube-rs has no SPDY: it fails with the refusal.
    let pods: Api<Pod> = Api::namespaced(kube_client(&t).await, "default");
    assert!(
        pods.exec("demo", ["true"], &AttachParams::default())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_v4_only() {
    let t = with_modes(Modes {
        exec_websocket: ExecWebSocket::V4Only,
        ..Modes::default()
    })
    .await;
    // v5 alone (kubectl's offer) is refused; v5 and v4 (kube-rs's offer) gets v4.
    let (status, _, _) = ws(&t, EXEC, "v5.channel.k8s.io").await;
    assert_eq!(status, 403);
    let (status, protocol, ws) = ws(&t, EXEC, "v5.channel.k8s.io, v4.channel.k8s.io").await;
    assert_eq!(
        (status, protocol.as_deref()),
        (101, Some("v4.channel.k8s.io"))
    );
    // v4 carries the exit code in the Status on channel 3.
    let mut ws = ws.unwrap();
    let mut status_json = Vec::new();
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Binary(b) = msg
            && b.first() == Some(&3)
        {
            status_json.extend_from_slice(&b[1..]);
        }
    }
    let st = proto::status::Status::parse(&status_json).unwrap();
    assert_eq!(st.outcome(), proto::status::ExitOutcome::Code(7));
    for v in ["1.27", "1.30", "1.33", "1.37"] {
        kubectl_exec_works(&t, &Kubectl::new(v)).await;
    }
    // kube-rs works over v4 (its stdin cannot be half-closed there).
    let pods: Api<Pod> = Api::namespaced(kube_client(&t).await, "default");
    let mut p = pods
        .exec("demo", ["sh", "-c", "exit 4"], &AttachParams::default())
        .await
        .unwrap();
    let status = p.take_status().unwrap().await.unwrap();
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_then_an_abrupt_end() {
    let t = with_modes(Modes {
        drop_after_status: true,
        ..Modes::default()
    })
    .await;
    let (status, protocol, ws) = ws(&t, EXEC, "v5.channel.k8s.io").await;
    assert_eq!(
        (status, protocol.as_deref()),
        (101, Some("v5.channel.k8s.io"))
    );
    let mut ws = ws.unwrap();
    let (mut status_json, mut closed_cleanly, mut ended_with_error) = (Vec::new(), false, false);
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Binary(b)) if b.first() == Some(&3) => {
                status_json.extend_from_slice(&b[1..]);
            }
            Ok(Message::Close(_)) => closed_cleanly = true,
            Ok(_) => {}
            Err(_) => {
                ended_with_error = true;
                break;
            }
        }
    }
    let st = proto::status::Status::parse(&status_json).unwrap();
    assert_eq!(st.outcome(), proto::status::ExitOutcome::Code(7));
    assert!(!closed_cleanly, "a close frame was sent");
    assert!(ended_with_error, "the connection did not end abruptly");
    // kube-rs stops reading at the Status: it still gets the exit code.
    let pods: Api<Pod> = Api::namespaced(kube_client(&t).await, "default");
    let mut p = pods
        .exec("demo", ["sh", "-c", "exit 9"], &AttachParams::default())
        .await
        .unwrap();
    let status = p.take_status().unwrap().await.unwrap();
    assert_eq!(
        status.details.unwrap().causes.unwrap()[0]
            .message
            .as_deref(),
        Some("9")
    );
    // kubectl over SPDY (no GOAWAY wait) still gets its code.
    let run = Kubectl::spdy_only("1.33")
        .run(&t, &["exec", "demo", "--", "sh", "-c", "exit 5"], None)
        .await;
    assert_eq!(run.code, 5, "{}", run.stderr);
}

#[test]
fn serve_takes_the_modes_on_the_command_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubetape-sandbox"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "--exec-websocket",
        "translate",
        "v4-only",
        "refuse",
        "--drop-after-status",
    ] {
        assert!(help.contains(want), "{want} missing from:\n{help}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubetape-sandbox"))
        .args([
            "serve",
            "--state-dir",
            "/nonexistent/x",
            "--exec-websocket",
            "off",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'off'"));
}
