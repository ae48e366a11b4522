//! Front-proxy identity headers never reach the cluster (issue 12, finding 4), end to end through
//! the real gateway and sandbox. An API server with request-header authentication believes
//! `X-Remote-User`, `X-Remote-Group` and `X-Remote-Extra-*` from a connection it trusts, and the
//! gateway's connection is one; so a client's copies must be dropped on both of the gateway's
//! ways upstream, the REST proxy and the exec relay. The sandbox records every `X-Remote-*`
//! header it receives (`remote_headers` in its request log), so their absence is observed, not
//! assumed; the request itself must still arrive, as the caller, with its allowed headers.

use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use tests::{Cluster, run};
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(60);

const POLICY: &str = r#"
[[roles]]
name = "exec"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods", "pods/exec"]
verbs = ["get", "list", "create"]

[[bindings]]
name = "execs"
groups = ["execs"]
roles = ["exec"]
"#;

/// What a client claiming to be a front proxy sends: cluster-admin's identity, in the spellings
/// an API server's request-header authenticator reads (header names are case-insensitive).
const CLAIMS: [(&str, &str); 5] = [
    ("X-Remote-User", "system:admin"),
    ("X-Remote-Group", "system:masters"),
    ("x-remote-group", "system:nodes"),
    ("X-REMOTE-EXTRA-SCOPES", "all"),
    (
        "X-Remote-Extra-Authentication.kubernetes.io%2fpod-name",
        "x",
    ),
];

/// Every `X-Remote-*` header any request to the sandbox carried, with its path.
fn remote_headers_upstream(cluster: &Cluster) -> Vec<(String, serde_json::Value)> {
    cluster
        .sandbox_requests()
        .into_iter()
        .filter(|r| r.get("remote_headers").is_some())
        .map(|r| {
            (
                r["path"].as_str().unwrap_or_default().to_string(),
                r["remote_headers"].clone(),
            )
        })
        .collect()
}

/// The sandbox's record of the one request whose path starts with `prefix`.
fn upstream_request(cluster: &Cluster, prefix: &str) -> serde_json::Value {
    let mut found: Vec<_> = cluster
        .sandbox_requests()
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
        .collect();
    assert_eq!(found.len(), 1, "requests for {prefix}: {found:#?}");
    found.remove(0)
}

#[test]
fn rest_requests_reach_the_cluster_without_the_clients_front_proxy_headers() {
    let cluster = Cluster::start_with_policy(POLICY);
    let token = cluster
        .issuer()
        .mint("fay@example.com", &["execs".into()], T, Default::default())
        .token;
    let ca = cluster.root().join("gateway-tls/ca.crt");
    let pods = "/api/v1/namespaces/default/pods";
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--http1.1",
        "--max-time",
        "20",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ])
    .arg("--cacert")
    .arg(&ca)
    .args(["-H", &format!("Authorization: Bearer {token}")])
    .args(["-H", "User-Agent: front-proxy-test"]);
    for (name, value) in CLAIMS {
        cmd.args(["-H", &format!("{name}: {value}")]);
    }
    cmd.arg(format!("https://{}{pods}", cluster.gateway_addr));
    let (code, out, err) = run(&mut cmd, b"", T);
    assert_eq!(code, Some(0), "curl: {}", String::from_utf8_lossy(&err));
    let out = String::from_utf8_lossy(&out);
    assert!(out.ends_with("\n200"), "{out}");
    assert!(
        out.contains("\"demo\""),
        "the cluster's list came back: {out}"
    );

    // It arrived as the caller, with an allowed header of the client's, and no claim of its own.
    let r = upstream_request(&cluster, pods);
    assert_eq!(r["impersonate_user"], "fay@example.com", "{r:#}");
    assert_eq!(r["user_agent"], "front-proxy-test", "{r:#}");
    assert_eq!(
        remote_headers_upstream(&cluster),
        [],
        "front-proxy headers upstream"
    );
}

#[test]
fn exec_reaches_the_cluster_without_the_clients_front_proxy_headers() {
    let cluster = Cluster::start_with_policy(POLICY);
    let kc = cluster.kubeconfig("fay@example.com", &["execs"]);
    let exec = "/api/v1/namespaces/default/pods/demo/exec";
    let target = format!("{exec}?command=echo&command=through&stdout=true");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stdout = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&kc).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let mut req = hyper::Request::get(target.as_str());
        for (name, value) in CLAIMS {
            req = req.header(name, value);
        }
        let mut ws = client
            .connect(req.body(Vec::new()).unwrap())
            .await
            .expect("exec through the gateway")
            .into_stream();
        let mut stdout = Vec::new();
        while let Some(msg) = ws.next().await {
            match msg.expect("WebSocket message") {
                Message::Binary(b) if b.first() == Some(&1) => stdout.extend_from_slice(&b[1..]),
                Message::Close(_) => break,
                _ => {}
            }
        }
        stdout
    });
    assert_eq!(String::from_utf8_lossy(&stdout), "through\n");

    let r = upstream_request(&cluster, exec);
    assert_eq!(r["impersonate_user"], "fay@example.com", "{r:#}");
    assert_eq!(r["status"], 101, "{r:#}");
    assert_eq!(
        remote_headers_upstream(&cluster),
        [],
        "front-proxy headers upstream"
    );
}
