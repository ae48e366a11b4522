//! `kubectl debug POD --image=busybox` straight against the sandbox: the ephemeral container is
//! added through `pods/ephemeralcontainers` (kubectl's strategic-merge patch), runs as a real
//! busybox process, shows up in the pod's status so kubectl's list+watch sees it running, and
//! is attached to, in a real terminal for `-it`.

mod common;

use common::{Kubectl, TestSandbox, config, start, wait};
use serde_json::Value;
use test_support::Tmux;

/// The pod as JSON, through kubectl itself.
async fn pod_json(t: &TestSandbox) -> Value {
    let r = Kubectl::new("1.33")
        .run(t, &["get", "pod", "demo", "-o", "json"], None)
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_slice(&r.stdout).unwrap()
}

/// `kubectl debug -it demo --image=busybox --target=shell -- sh` in tmux: the attach notice,
/// a command's output, `exit 3`, and the container's end in the pod status.
async fn interactive(version: &'static str) {
    let t = start(config()).await;
    let k = Kubectl::new(version);
    let tmux = Tmux::new("sandbox-debug");
    let cmd = format!(
        "{}; echo kubectl-exited-$?; sleep 600",
        k.command_line(&t, "debug -it demo --image=busybox --target=shell -- sh")
    );
    tmux.window("s", 120, 40, &cmd);
    wait(&tmux, "the attach notice", |s| {
        s.contains("If you don't see a command prompt, try pressing enter.")
    });
    // The shell printed its prompt before the attach; Enter gets a fresh one.
    tmux.run(&["send-keys", "-t", "s", "Enter"]);
    tmux.run(&[
        "send-keys",
        "-t",
        "s",
        "echo dbg-$((6*7)) $(busybox | head -1 | cut -c1-7)",
        "Enter",
    ]);
    wait(&tmux, "the command's output", |s| {
        s.contains("dbg-42 BusyBox")
    });
    tmux.run(&["send-keys", "-t", "s", "exit 3", "Enter"]);
    let screen = wait(&tmux, "kubectl to exit", |s| s.contains("kubectl-exited-"));
    // kubectl takes a non-zero exit of the attached process as a failed attach, says so with
    // the exit code, falls back to the container's logs and exits 0: what it does against any
    // cluster.
    assert!(
        screen.contains("couldn't attach to pod/demo, falling back to streaming logs: command terminated with exit code 3"),
        "{version}:\n{screen}"
    );
    assert!(screen.contains("kubectl-exited-0"), "{version}:\n{screen}");
    let pod = pod_json(&t).await;
    let spec = &pod["spec"]["ephemeralContainers"][0];
    assert_eq!(spec["image"], "busybox", "{version}");
    assert_eq!(spec["targetContainerName"], "shell", "{version}");
    assert_eq!(
        (&spec["stdin"], &spec["tty"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    let status = &pod["status"]["ephemeralContainerStatuses"][0];
    assert_eq!(status["name"], spec["name"]);
    assert_eq!(
        status["state"]["terminated"]["exitCode"], 3,
        "{version}: {status}"
    );
    // What kubectl sent: the patch, list+watch narrowed to the pod, then attach (TTY).
    let log = t.sb.requests.snapshot();
    let patch = log
        .iter()
        .position(|r| r.method == "PATCH" && r.path.ends_with("/pods/demo/ephemeralcontainers"))
        .expect("no PATCH");
    assert_eq!(log[patch].status, 200);
    let attach = log
        .iter()
        .position(|r| r.path.contains("/pods/demo/attach?") && r.path.contains("tty=true"))
        .expect("no attach");
    assert!(attach > patch);
    assert!(log[attach].status == 101, "{:?}", log[attach]);
    assert!(
        log[patch..attach]
            .iter()
            .any(|r| r.path.contains("watch=true")
                && r.path.contains("fieldSelector=metadata.name%3Ddemo")),
        "{version}: no watch between patch and attach"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_it_1_27() {
    interactive("1.27").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_it_1_30() {
    interactive("1.30").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_it_1_33() {
    interactive("1.33").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_it_1_37() {
    interactive("1.37").await;
}

/// `kubectl debug -i` without a terminal: stdin reaches the container, its output comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_with_stdin_and_two_containers() {
    let t = start(config()).await;
    for (i, v) in ["1.27", "1.37"].into_iter().enumerate() {
        let r = Kubectl::new(v)
            .run(
                &t,
                &[
                    "debug",
                    "-i",
                    "demo",
                    "--image=busybox:1.36",
                    "--target=shell",
                    "--",
                    "sh",
                    "-c",
                    "read x; echo got $x from $HOSTNAME",
                ],
                Some(b"hello\n"),
            )
            .await;
        assert_eq!(r.code, 0, "{v}: {}", r.stderr);
        assert!(
            r.stdout().contains("got hello from demo"),
            "{v}: {}",
            r.stdout()
        );
        let pod = pod_json(&t).await;
        // The second debug adds a second container; the first stays as it was.
        assert_eq!(
            pod["spec"]["ephemeralContainers"].as_array().unwrap().len(),
            i + 1
        );
        assert_eq!(
            pod["status"]["ephemeralContainerStatuses"][i]["state"]["terminated"]["exitCode"],
            0
        );
    }
}

/// The API itself: JSON patch, validation (422), an image mapped to no program (waiting
/// ImagePullBackOff, as an image that cannot be pulled), unknown media types (415).
#[tokio::test]
async fn the_patch_api() {
    let t = start(config()).await;
    let patch = |ctype: &str, body: &str| {
        format!(
            "PATCH /api/v1/namespaces/default/pods/demo/ephemeralcontainers HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            t.sb.token,
            body.len()
        )
    };
    let json_body = |resp: &str| -> Value {
        serde_json::from_str(&resp[resp.find("\r\n\r\n").unwrap() + 4..]).unwrap()
    };
    // An image nothing runs: added, but waiting.
    let resp = common::raw_https(
        &t,
        &patch(
            "application/json-patch+json",
            // The pod has no list yet (the API leaves empty lists out), so the whole list.
            r#"[{"op":"add","path":"/spec/ephemeralContainers","value":[{"name":"dbg","image":"alpine:3","command":["sh"]}]}]"#,
        ),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let pod = json_body(&resp);
    let waiting = &pod["status"]["ephemeralContainerStatuses"][0]["state"]["waiting"];
    assert_eq!(waiting["reason"], "ImagePullBackOff", "{pod}");
    assert!(waiting["message"].as_str().unwrap().contains("alpine:3"));
    assert_eq!(
        pod["spec"]["ephemeralContainers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    for (ctype, body, status, text) in [
        (
            "application/strategic-merge-patch+json",
            r#"{"spec":{"ephemeralContainers":[{"name":"dbg","image":"busybox"}]}}"#,
            "422",
            "may not be changed",
        ),
        (
            "application/strategic-merge-patch+json",
            r#"{"spec":{"ephemeralContainers":[{"name":"shell","image":"busybox"}]}}"#,
            "422",
            "Duplicate value",
        ),
        (
            "application/strategic-merge-patch+json",
            r#"{"spec":{"ephemeralContainers":[{"name":"d2"}]}}"#,
            "422",
            "image: Required value",
        ),
        (
            "application/strategic-merge-patch+json",
            r#"{"spec":{"ephemeralContainers":[{"name":"d3","image":"busybox","targetContainerName":"nope"}]}}"#,
            "422",
            "targetContainerName: Not found",
        ),
        (
            "application/merge-patch+json",
            r#"{"spec":{"ephemeralContainers":[]}}"#,
            "422",
            "may not be changed",
        ),
        (
            "application/json-patch+json",
            r#"[{"op":"add","path":"/spec/nodeName/x","value":1}]"#,
            "422",
            "parent is not a container",
        ),
        ("application/yaml", "{}", "415", "UnsupportedMediaType"),
        ("application/json-patch+json", "nope", "400", "not JSON"),
    ] {
        let resp = common::raw_https(&t, &patch(ctype, body)).await;
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {status}")),
            "{body}: {resp}"
        );
        assert!(resp.contains(text), "{body}: {resp}");
    }
    // Nothing refused was added.
    let pod = pod_json(&t).await;
    assert_eq!(
        pod["spec"]["ephemeralContainers"].as_array().unwrap().len(),
        1
    );
}
