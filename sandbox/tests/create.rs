//! Pods created through the API, as `kubectl debug --copy-to` and `kubectl debug node/NAME`
//! create them (JSON from kubectl 1.27, protobuf from 1.33 and 1.37): they run as real processes, kubectl's wait sees them running
//! and it attaches to the debug container.

mod common;

use common::{Kubectl, config, start};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_copy_to_and_node() {
    let t = start(config()).await;
    for (i, v) in ["1.27", "1.33", "1.37"].into_iter().enumerate() {
        let k = Kubectl::new(v);
        let copy = format!("demo-copy-{i}");
        let r = k
            .run(
                &t,
                &[
                    "debug",
                    "demo",
                    "-i",
                    &format!("--copy-to={copy}"),
                    "--image=busybox",
                    "--share-processes=true",
                    "--",
                    "sh",
                    "-c",
                    "read x; echo copy got $x on $HOSTNAME",
                ],
                Some(b"hello\n"),
            )
            .await;
        assert_eq!(r.code, 0, "{v}: {}", r.stderr);
        assert!(
            r.stdout().contains(&format!("copy got hello on {copy}")),
            "{v}: {}",
            r.stdout()
        );
        let r = k
            .run(
                &t,
                &[
                    "debug",
                    "node/sandbox",
                    "-i",
                    "--image=busybox",
                    "--",
                    "sh",
                    "-c",
                    "read x; echo node got $x",
                ],
                Some(b"hi\n"),
            )
            .await;
        assert_eq!(r.code, 0, "{v}: {}", r.stderr);
        assert!(r.stdout().contains("node got hi"), "{v}: {}", r.stdout());
    }
    let r = Kubectl::new("1.33")
        .run(&t, &["get", "pods", "-o", "json"], None)
        .await;
    let pods: Value = serde_json::from_slice(&r.stdout).unwrap();
    let items = pods["items"].as_array().unwrap();
    // demo, echo, then a copy and a node debugger per version.
    assert_eq!(items.len(), 2 + 3 * 2, "{pods}");
    let copy = items
        .iter()
        .find(|p| p["metadata"]["name"] == "demo-copy-0")
        .unwrap();
    let names: Vec<&str> = copy["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "shell", "the copy keeps the original container");
    assert!(names[1].starts_with("debugger-"));
    // Asked for explicitly (kubectl sends it only then), and read from protobuf too.
    for i in 0..3 {
        let c = items
            .iter()
            .find(|p| p["metadata"]["name"] == format!("demo-copy-{i}"))
            .unwrap();
        assert_eq!(c["spec"]["shareProcessNamespace"], true, "copy {i}");
    }
    let node = items
        .iter()
        .find(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("node-debugger-sandbox-")
        })
        .unwrap();
    assert_eq!(node["spec"]["nodeName"], "sandbox");
    assert_eq!(
        (&node["spec"]["hostPID"], &node["spec"]["hostNetwork"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    assert_eq!(node["spec"]["volumes"][0]["hostPath"]["path"], "/");
    // kubectl sent them as protobuf; every creation was answered 201.
    let posts: Vec<_> =
        t.sb.requests
            .snapshot()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == "/api/v1/namespaces/default/pods")
            .collect();
    assert_eq!(posts.len(), 6);
    assert!(posts.iter().all(|r| r.status == 201), "{posts:?}");
    // 1.27 sends JSON; 1.33 and 1.37 protobuf (read by proto::pod_protobuf).
    let types: Vec<&str> = posts
        .iter()
        .map(|r| r.content_type.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "application/json",
            "application/json",
            "application/vnd.kubernetes.protobuf",
            "application/vnd.kubernetes.protobuf",
            "application/vnd.kubernetes.protobuf",
            "application/vnd.kubernetes.protobuf",
        ]
    );
}

/// The API itself: JSON bodies, generateName, a taken name, bad bodies.
#[tokio::test]
async fn create_api() {
    let t = start(config()).await;
    let post = |ctype: &str, body: &[u8]| {
        let mut req = format!(
            "POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            t.sb.token,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        String::from_utf8(req).unwrap()
    };
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "gen-"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}});
    let resp = common::raw_https(&t, &post("application/json", pod.to_string().as_bytes())).await;
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let created: Value = serde_json::from_str(&resp[resp.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    let name = created["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert_eq!(created["status"]["phase"], "Running");
    // An empty protobuf body is not a pod.
    let resp = common::raw_https(&t, &post("application/vnd.kubernetes.protobuf", &[])).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("unrecognized"), "{resp}");
    for (ctype, body, status, text) in [
        ("application/yaml", "{}".to_string(), "415", "UnsupportedMediaType"),
        ("application/json", "nope".to_string(), "400", "not JSON"),
        (
            "application/json",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x","namespace":"other"},"spec":{"containers":[{"name":"c","image":"i"}]}}"#.to_string(),
            "400",
            "does not match the namespace",
        ),
        (
            "application/json",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"c"}]}}"#.to_string(),
            "422",
            "spec.containers[0].image: Required value",
        ),
        (
            "application/json",
            format!(r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},"spec":{{"containers":[{{"name":"c","image":"busybox"}}]}}}}"#),
            "409",
            "already exists",
        ),
    ] {
        let resp = common::raw_https(&t, &post(ctype, body.as_bytes())).await;
        assert!(resp.starts_with(&format!("HTTP/1.1 {status}")), "{body}: {resp}");
        assert!(resp.contains(text), "{body}: {resp}");
    }
}
