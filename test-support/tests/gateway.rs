//! The in-process gateway as a test uses it: a developer lists and execs through it, the exec
//! is recorded in its store, a stranger is refused, and after `shutdown` nothing listens.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, ListParams};
use storage_schema::store::{SessionReader, list_sessions, summarize};
use storage_schema::{EventKind, SessionKind, Stream};
use test_support::gateway::TestGateway;
use tokio::io::AsyncReadExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizes_records_and_stops() {
    let gw = TestGateway::start().await;
    let dev: Api<Pod> = Api::namespaced(
        gw.client("dev@example.com", &["developers"]).await,
        "default",
    );
    let names: Vec<String> = dev
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert!(names.iter().any(|n| n == "demo"), "{names:?}");

    let mut attached = dev
        .exec(
            "demo",
            ["sh", "-c", "echo in-process"],
            &AttachParams::default()
                .container("shell")
                .stdout(true)
                .stderr(false),
        )
        .await
        .unwrap();
    let mut out = String::new();
    attached
        .stdout()
        .expect("stdout")
        .read_to_string(&mut out)
        .await
        .unwrap();
    attached.join().await.unwrap();
    assert_eq!(out, "in-process\n");

    let stranger: Api<Pod> =
        Api::namespaced(gw.client("mallory@example.com", &[]).await, "default");
    match stranger.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("a user with no role listed pods: {other:?}"),
    }

    // The exec is in the gateway's store, sealed, as the developer's, and holds the output.
    let store = gw.store();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut sealed = Vec::new();
        for id in list_sessions(&store).await.unwrap() {
            let s = summarize(&store, id).await.unwrap();
            if let Some(meta) = &s.meta
                && meta.kind == SessionKind::Exec
                && s.state == "sealed"
            {
                sealed.push((id, meta.identity.user.clone()));
            }
        }
        if let [(id, user)] = &sealed[..] {
            assert_eq!(user, "dev@example.com");
            let reader = SessionReader::open(&store, &gw.keyring(), *id)
                .await
                .unwrap();
            let mut stdout = Vec::new();
            reader
                .for_each_event(|e| {
                    if let EventKind::Data {
                        stream: Stream::Stdout,
                        bytes,
                    } = &e.kind
                    {
                        stdout.extend_from_slice(bytes);
                    }
                })
                .await
                .unwrap();
            assert_eq!(stdout, b"in-process\n");
            break;
        }
        assert!(sealed.len() < 2, "one exec, sessions: {sealed:?}");
        assert!(Instant::now() < deadline, "the exec was never sealed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let addr = gw.addr();
    gw.shutdown().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening after shutdown"
    );
}
