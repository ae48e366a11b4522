//! kube-rs (what the gateway uses upstream) against the sandbox: the kubeconfig it writes,
//! TLS with its CA, list, and exec/attach over WebSocket v5 with stdin half-close and the
//! exit Status.

mod common;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, ListParams};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use common::{TestSandbox, config, start};

async fn client(t: &TestSandbox) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&t.sb.kubeconfig_path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_exec_with_kube_rs() {
    let t = start(config()).await;
    let pods: Api<Pod> = Api::namespaced(client(&t).await, "default");
    let names: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(names, ["demo", "echo"]);
    let demo = pods.get("demo").await.unwrap();
    assert_eq!(demo.status.unwrap().phase.as_deref(), Some("Running"));

    let params = AttachParams::default().stdin(true).stderr(true);
    let mut p = pods
        .exec("demo", ["sh", "-c", "cat; echo err >&2; exit 3"], &params)
        .await
        .unwrap();
    let mut stdin = p.stdin().unwrap();
    stdin.write_all(b"hello").await.unwrap();
    // kube-rs sends the v5 CLOSE only on shutdown.
    stdin.shutdown().await.unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (mut so, mut se) = (p.stdout().unwrap(), p.stderr().unwrap());
    let status = p.take_status().unwrap();
    let (a, b) = tokio::join!(so.read_to_end(&mut out), se.read_to_end(&mut err));
    a.unwrap();
    b.unwrap();
    let status = status.await.unwrap();
    assert_eq!(
        (out.as_slice(), err.as_slice()),
        (&b"hello"[..], &b"err\n"[..])
    );
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let cause = &status.details.unwrap().causes.unwrap()[0];
    assert_eq!(cause.message.as_deref(), Some("3"));
    p.join().await.unwrap();

    let request =
        t.sb.requests
            .snapshot()
            .into_iter()
            .find(|r| r.path.contains("/exec?"))
            .unwrap();
    assert_eq!(
        request.protocols,
        ["v5.channel.k8s.io", "v4.channel.k8s.io"]
    );
    assert_eq!(request.status, 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_with_kube_rs() {
    let t = start(config()).await;
    let pods: Api<Pod> = Api::namespaced(client(&t).await, "default");
    let mut p = pods
        .attach("echo", &AttachParams::default().stdin(true))
        .await
        .unwrap();
    p.stdin().unwrap().write_all(b"y\n").await.unwrap();
    let mut out = Vec::new();
    p.stdout().unwrap().read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"got y\n");
    let status = p.take_status().unwrap().await.unwrap();
    assert_eq!(
        status.details.unwrap().causes.unwrap()[0]
            .message
            .as_deref(),
        Some("5")
    );
}
