//! The WebSocket channel protocol byte for byte, with a tungstenite client: the initial empty
//! message, framing per channel, v5 CLOSE, the Status, close 1000, pings, the base64 variant,
//! negotiation and the errors before upgrading.

mod common;

use std::sync::Arc;

use futures::{SinkExt as _, StreamExt as _};
use proto::status::Status;
use rustls_pki_types::pem::PemObject as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message, handshake::client::generate_key};

use common::{TestSandbox, config, start};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `path` offering `protocols` (one header line, as kube-rs does).
async fn connect(
    t: &TestSandbox,
    path: &str,
    protocols: &str,
) -> Result<(Ws, http::Response<Option<Vec<u8>>>), tungstenite::Error> {
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
    let mut req = http::Request::get(format!("wss://{}{path}", t.sb.addr))
        .header("host", t.sb.addr.to_string())
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", generate_key())
        .header("authorization", format!("Bearer {}", t.sb.token));
    if !protocols.is_empty() {
        req = req.header("sec-websocket-protocol", protocols);
    }
    let (ws, resp) = tokio_tungstenite::client_async(req.body(()).unwrap(), stream).await?;
    Ok((ws, resp))
}

/// Every message until the server's close frame, and that frame's code.
async fn drain(ws: &mut Ws) -> (Vec<Message>, Option<CloseCode>) {
    let mut msgs = Vec::new();
    while let Some(m) = ws.next().await {
        match m.unwrap() {
            Message::Close(frame) => return (msgs, frame.map(|f| f.code)),
            m => msgs.push(m),
        }
    }
    (msgs, None)
}

fn binary(msgs: &[Message], channel: u8) -> Vec<u8> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Binary(b) if b.first() == Some(&channel) => Some(b[1..].to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

const EXEC: &str = "/api/v1/namespaces/default/pods/demo/exec";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_exec_byte_for_byte() {
    let t = start(config()).await;
    let q = "?command=sh&command=-c&command=cat%3B+echo+err+%3E%262%3B+exit+3&container=shell&stderr=true&stdin=true&stdout=true";
    let (mut ws, resp) = connect(&t, &format!("{EXEC}{q}"), "v5.channel.k8s.io")
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "v5.channel.k8s.io"
    );
    // Right after the upgrade: the empty message on the lowest writable channel.
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Binary(vec![1].into())
    );
    ws.send(Message::Binary(b"\x00hello".to_vec().into()))
        .await
        .unwrap();
    ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    ws.send(Message::Binary(vec![255, 0].into())).await.unwrap();
    let (msgs, close) = drain(&mut ws).await;
    assert!(
        msgs.contains(&Message::Pong(b"p".to_vec().into())),
        "{msgs:?}"
    );
    assert_eq!(binary(&msgs, 1), b"hello");
    assert_eq!(binary(&msgs, 2), b"err\n");
    assert_eq!(binary(&msgs, 3), Status::exit_code(3).to_json());
    // The Status is the last data message, then a normal close.
    let last_data = msgs
        .iter()
        .rev()
        .find(|m| matches!(m, Message::Binary(_)))
        .unwrap();
    assert_eq!(last_data.clone().into_data()[0], 3);
    assert_eq!(close, Some(CloseCode::Normal));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_offer_line_gets_v5_and_output_is_chunked_at_32k() {
    let t = start(config()).await;
    let q =
        "?&stdin=false&stdout=true&command=head&command=-c&command=100000&command=%2Fdev%2Fzero";
    let (mut ws, resp) = connect(
        &t,
        &format!("{EXEC}{q}"),
        "v5.channel.k8s.io, v4.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "v5.channel.k8s.io"
    );
    let (msgs, close) = drain(&mut ws).await;
    assert_eq!(binary(&msgs, 1).len(), 100_000);
    assert!(
        msgs.iter().all(|m| m.len() <= 1 + 32 * 1024),
        "a message exceeds 32 KiB"
    );
    assert_eq!(binary(&msgs, 3), Status::success().to_json());
    assert_eq!(close, Some(CloseCode::Normal));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_base64_uses_text_frames() {
    let t = start(config()).await;
    let q = "?command=sh&command=-c&command=printf+hi%3B+exit+2&stdout=true";
    let (mut ws, resp) = connect(&t, &format!("{EXEC}{q}"), "v4.base64.channel.k8s.io")
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "v4.base64.channel.k8s.io"
    );
    let (msgs, close) = drain(&mut ws).await;
    assert_eq!(msgs[0], Message::Text("1".into()));
    assert_eq!(msgs[1], Message::Text("1aGk=".into()));
    let status = proto::channel::encode_text(3, &Status::exit_code(2).to_json());
    assert_eq!(msgs[2], Message::Text(status.into()));
    assert_eq!(close, Some(CloseCode::Normal));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_only_starts_on_channel_2_and_tty_resizes() {
    let t = start(config()).await;
    let q = "?command=sh&command=-c&command=echo+e+%3E%262&stderr=true";
    let (mut ws, _) = connect(&t, &format!("{EXEC}{q}"), "v5.channel.k8s.io")
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Binary(vec![2].into())
    );
    let (msgs, _) = drain(&mut ws).await;
    assert_eq!(binary(&msgs, 2), b"e\n");

    let q = "?command=sh&command=-c&command=read+x%3B+stty+size&stdin=true&stdout=true&tty=true";
    let (mut ws, _) = connect(&t, &format!("{EXEC}{q}"), "v5.channel.k8s.io")
        .await
        .unwrap();
    // Two sizes in one message, the way a stream decoder must accept them; the last one wins.
    ws.send(Message::Binary(
        b"\x04{\"Width\":1,\"Height\":2}\n{\"Width\":120,\"Height\":40}\n"
            .to_vec()
            .into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Binary(b"\x00go\r".to_vec().into()))
        .await
        .unwrap();
    let (msgs, _) = drain(&mut ws).await;
    let out = String::from_utf8(binary(&msgs, 1)).unwrap();
    assert!(out.contains("40 120"), "{out:?}");
    assert!(binary(&msgs, 2).is_empty(), "a TTY has one output stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_happen_before_the_upgrade() {
    let t = start(config()).await;
    let q = "?command=true&stdout=true";
    // kubectl 1.30+ falls back to SPDY on any non-101.
    let err = connect(&t, &format!("{EXEC}{q}"), "v3.channel.k8s.io")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, tungstenite::Error::Http(r) if r.status() == 400),
        "{err:?}"
    );
    let err = connect(
        &t,
        &format!("/api/v1/namespaces/default/pods/nope/exec{q}"),
        "v5.channel.k8s.io",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, tungstenite::Error::Http(r) if r.status() == 404),
        "{err:?}"
    );

    let resp = common::raw_https(
        &t,
        &format!(
            "POST {EXEC}{q} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            t.sb.token
        ),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(
        resp.contains(r#""message":"Upgrade request required""#),
        "{resp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_going_away_kills_the_process() {
    let t = start(config()).await;
    let marker = format!("sbx-gone-{}", uuid::Uuid::new_v4().simple());
    let q = format!(
        "?command=sh&command=-c&command=echo+started%3B+sleep+1000%3B+echo+{marker}&stdout=true"
    );
    let (mut ws, _) = connect(&t, &format!("{EXEC}{q}"), "v5.channel.k8s.io")
        .await
        .unwrap();
    let _ = ws.next().await; // [1]
    let _ = ws.next().await; // "started"
    let alive = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        })
    };
    // The shell (whose command line holds the marker) waits for `sleep`, in the same group.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !alive() {
        assert!(std::time::Instant::now() < deadline, "process never seen");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(ws);
    while alive() {
        assert!(
            std::time::Instant::now() < deadline,
            "process outlived its client"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
