//! Request parsing parity with the API server, end to end (issue 12, finding 3), through the
//! real gateway and sandbox with real kubectl and crafted raw requests:
//! - `?wat%63h=true` is a watch: refused for a list-only role and audited as a watch, allowed for
//!   a role with watch, audited as one and forwarded as `watch=true`;
//! - a `fieldSelector` naming a pod makes a list of it (`kubectl get pods --field-selector
//!   metadata.name=demo`) fall under `resource_names`, as RBAC has it;
//! - `comm%61nd=`, `t%74y=yes` run, and are recorded, as the API server reads them, and the
//!   cluster is sent the recorded options, not the client's spelling;
//! - a repeated `container=`, a raw `;`, a repeated `watch` are refused with a 400 that says why,
//!   and never reach the cluster.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tests::{Cluster, Kubectl, run};
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(60);

const POLICY: &str = r#"
[[roles]]
name = "lister"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods"]
verbs = ["list"]

[[roles]]
name = "watcher"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods"]
verbs = ["list", "watch"]

[[roles]]
name = "demo-only"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods"]
verbs = ["get", "list", "watch"]
resource_names = ["demo"]

[[roles]]
name = "exec"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods", "pods/exec"]
verbs = ["get", "create"]

[[bindings]]
name = "listers"
groups = ["listers"]
roles = ["lister"]

[[bindings]]
name = "watchers"
groups = ["watchers"]
roles = ["watcher"]

[[bindings]]
name = "demo-only"
groups = ["demo-only"]
roles = ["demo-only"]

[[bindings]]
name = "execs"
groups = ["execs"]
roles = ["exec"]
"#;

fn token(cluster: &Cluster, user: &str, group: &str) -> String {
    cluster
        .issuer()
        .mint(user, &[group.into()], T, Default::default())
        .token
}

/// `curl` to the gateway with `token`; returns (HTTP status, body).
fn curl(cluster: &Cluster, token: &str, target: &str, extra: &[&str]) -> (u16, String) {
    let ca = cluster.root().join("gateway-tls/ca.crt");
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--http1.1",
        "--globoff",
        "--path-as-is",
        "--max-time",
        "20",
    ])
    .args(["-o", "-", "-w", "\n%{http_code}", "--cacert"])
    .arg(&ca)
    .args(["-H", &format!("Authorization: Bearer {token}")])
    .args(extra)
    .arg(format!("https://{}{target}", cluster.gateway_addr));
    let (code, out, err) = run(&mut cmd, b"", T);
    assert_eq!(code, Some(0), "curl: {}", String::from_utf8_lossy(&err));
    let out = String::from_utf8_lossy(&out).into_owned();
    let (body, status) = out.rsplit_once('\n').expect("status line");
    (
        status.trim().parse().expect("HTTP status"),
        body.to_string(),
    )
}

/// The audit record of the request for `path` made by `user` (the gateway prints each record on
/// stdout before it answers), waiting a little for the log line to be written.
fn audited(cluster: &Cluster, user: &str, path: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(cluster.root().join("gateway.log")).unwrap_or_default();
        let found = log
            .lines()
            .rev()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| r["user"] == user && r["path"] == path);
        if let Some(r) = found {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no audit record for {user} {path}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Paths (with their queries) the sandbox received, containing `part`.
fn upstream(cluster: &Cluster, part: &str) -> Vec<String> {
    cluster
        .sandbox_requests()
        .into_iter()
        .filter_map(|r| r["path"].as_str().map(str::to_string))
        .filter(|p| p.contains(part))
        .collect()
}

#[test]
fn a_spelled_watch_is_a_watch() {
    let cluster = Cluster::start_with_policy(POLICY);
    let pods = "/api/v1/namespaces/default/pods";

    // A list-only role: the spelled watch is refused, and audited as the watch it is.
    let lister = token(&cluster, "lee@example.com", "listers");
    for query in ["wat%63h=true", "%77atch=1", "watch=yes", "watch"] {
        let (status, body) = curl(&cluster, &lister, &format!("{pods}?{query}"), &[]);
        assert_eq!(status, 403, "?{query}: {body}");
        let r = audited(&cluster, "lee@example.com", pods);
        assert_eq!(r["verb"], "watch", "?{query}: {r:#}");
        assert_eq!(r["decision"], "deny", "{r:#}");
    }
    assert!(
        upstream(&cluster, "watch").is_empty(),
        "no watch reached the cluster: {:?}",
        upstream(&cluster, "watch")
    );
    // What is a list stays one, and is forwarded as it was read.
    let (status, body) = curl(&cluster, &lister, &format!("{pods}?wat%63h=FALSE"), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"demo\""), "{body}");
    assert_eq!(audited(&cluster, "lee@example.com", pods)["verb"], "list");
    assert_eq!(upstream(&cluster, "watch"), [format!("{pods}?watch=FALSE")]);
    // A repeated watch is refused before anything is decided: 400, with the reason.
    let (status, body) = curl(
        &cluster,
        &lister,
        &format!("{pods}?watch=false&watch=true"),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("kubetape: query parameter \\\"watch\\\" is given more than once"),
        "{body}"
    );
    let (status, body) = curl(
        &cluster,
        &lister,
        &format!("{pods}?watch=false;watch=true"),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("raw \\\";\\\""), "{body}");
    assert_eq!(
        upstream(&cluster, "watch").len(),
        1,
        "{:?}",
        upstream(&cluster, "watch")
    );

    // A role with watch: allowed, audited as a watch, and the cluster gets `watch=true`.
    let watcher = token(&cluster, "wes@example.com", "watchers");
    let (status, body) = curl(
        &cluster,
        &watcher,
        &format!("{pods}?wat%63h=true&timeoutSeconds=1"),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ADDED\""), "a watch's events: {body}");
    let r = audited(&cluster, "wes@example.com", pods);
    assert_eq!(
        (&r["verb"], &r["decision"]),
        (&"watch".into(), &"allow".into()),
        "{r:#}"
    );
    assert!(
        upstream(&cluster, "timeoutSeconds")
            .contains(&format!("{pods}?watch=true&timeoutSeconds=1")),
        "{:?}",
        upstream(&cluster, "watch")
    );
    // `yes` is true to the API server too: a watch, served as one.
    let (status, body) = curl(
        &cluster,
        &watcher,
        &format!("{pods}?watch=yes&timeoutSeconds=1"),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ADDED\""), "a watch's events: {body}");
    assert_eq!(audited(&cluster, "wes@example.com", pods)["verb"], "watch");
}

#[test]
fn a_field_selector_names_the_object_of_a_list() {
    let Some(kubectl) = Kubectl::V1_33.path() else {
        return;
    };
    let cluster = Cluster::start_with_policy(POLICY);
    let kc = cluster.kubeconfig("nia@example.com", &["demo-only"]);
    // `resource_names = ["demo"]`: a list of everything is not a list of demo...
    let (code, _, err) = run(cluster.kubectl(&kubectl, &kc).args(["get", "pods"]), b"", T);
    assert_eq!(code, Some(1));
    assert!(
        String::from_utf8_lossy(&err).contains("Forbidden"),
        "{}",
        String::from_utf8_lossy(&err)
    );
    // ...but a list narrowed to demo by a field selector is, as the API server names it.
    let (code, out, err) = run(
        cluster.kubectl(&kubectl, &kc).args([
            "get",
            "pods",
            "--field-selector",
            "metadata.name=demo",
            "-o",
            "name",
        ]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    assert_eq!(String::from_utf8_lossy(&out).trim(), "pod/demo");
    let r = audited(
        &cluster,
        "nia@example.com",
        "/api/v1/namespaces/default/pods",
    );
    assert_eq!(
        (&r["verb"], &r["name"]),
        (&"list".into(), &"demo".into()),
        "{r:#}"
    );
    // Naming another pod is not allowed.
    let (code, _, _) = run(
        cluster.kubectl(&kubectl, &kc).args([
            "get",
            "pods",
            "--field-selector",
            "metadata.name=echo",
        ]),
        b"",
        T,
    );
    assert_eq!(code, Some(1));
}

/// Opens an exec with exactly `target` (path and query as the client spells them) over
/// WebSocket, as kube-rs does; returns the stdout bytes received.
async fn exec_raw(kubeconfig: &std::path::Path, target: &str) -> Result<Vec<u8>, String> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let req = hyper::Request::get(target).body(Vec::new()).unwrap();
    let mut ws = client
        .connect(req)
        .await
        .map_err(|e| e.to_string())?
        .into_stream();
    let mut stdout = Vec::new();
    while let Some(msg) = ws.next().await {
        match msg.map_err(|e| e.to_string())? {
            Message::Binary(b) if b.first() == Some(&1) => stdout.extend_from_slice(&b[1..]),
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(stdout)
}

#[test]
fn exec_spellings_run_and_are_recorded_as_the_api_server_reads_them() {
    let cluster = Cluster::start_with_policy(POLICY);
    let kc = cluster.kubeconfig("eve@example.com", &["execs"]);
    let exec = "/api/v1/namespaces/default/pods/demo/exec";
    let rt = tokio::runtime::Runtime::new().unwrap();

    // A spelled command, container and tty; `tty=yes` is true to the API server.
    let spelled = format!(
        "{exec}?comm%61nd=sh&command=-c&command=test+-t+1+%26%26+echo+with-a-tty&%63ontainer=shell&stdout=true&t%74y=yes"
    );
    let stdout = rt.block_on(exec_raw(&kc, &spelled)).unwrap();
    assert!(
        String::from_utf8_lossy(&stdout).contains("with-a-tty"),
        "{:?}",
        String::from_utf8_lossy(&stdout)
    );
    let sessions = cluster.wait_for_sealed_count(1);
    let meta = &sessions[0]["meta"];
    assert_eq!(
        meta["command"],
        serde_json::json!(["sh", "-c", "test -t 1 && echo with-a-tty"]),
        "{meta:#}"
    );
    assert_eq!(meta["tty"], true, "{meta:#}");
    assert_eq!(meta["target"]["container"], "shell", "{meta:#}");
    // The cluster was asked for the recorded options, spelled canonically.
    assert_eq!(
        upstream(&cluster, "/exec"),
        [format!(
            "{exec}?command=sh&command=-c&command=test+-t+1+%26%26+echo+with-a-tty&container=shell&stdout=true&tty=true"
        )]
    );
    // And the recording holds what the client saw.
    let (code, recorded, err) = run(
        cluster
            .kubetape()
            .args(["cat", sessions[0]["session"].as_str().unwrap()]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    assert_eq!(recorded, stdout);

    // Refused with a 400 that says why, and never sent to the cluster: a repeated container, a
    // raw `;`, a non-ASCII boolean.
    let eve = token(&cluster, "eve@example.com", "execs");
    let ws = [
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "-H",
        "Sec-WebSocket-Protocol: v5.channel.k8s.io",
    ];
    for (query, why) in [
        (
            "command=id&stdout=true&container=shell&container=other",
            "\\\"container\\\" is given more than once",
        ),
        ("command=id;rm&stdout=true", "raw \\\";\\\""),
        (
            "command=id&stdout=true&tty=fal%C5%BFe",
            "not a boolean kubetape accepts",
        ),
        ("command=%zz&stdout=true", "invalid URL escape"),
    ] {
        let (status, body) = curl(&cluster, &eve, &format!("{exec}?{query}"), &ws);
        assert_eq!(status, 400, "?{query}: {body}");
        assert!(body.contains(why), "?{query}: {body}");
    }
    assert_eq!(
        upstream(&cluster, "/exec").len(),
        1,
        "{:?}",
        upstream(&cluster, "/exec")
    );
    assert_eq!(
        cluster.sessions().len(),
        1,
        "refused requests leave no recording"
    );
}
