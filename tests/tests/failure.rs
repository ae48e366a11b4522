//! When the cluster dies mid-session, kubectl gets a failure status (never a hang, never exit 0)
//! and the recording is sealed with what happened.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tests::{Cluster, Kubectl};

fn upstream_dies(version: Kubectl) {
    let Some(kubectl) = version.path() else {
        return;
    };
    let mut cluster = Cluster::start();
    let kc = cluster.kubeconfig("carol@example.com", &["developers"]);
    let mut child = cluster
        .kubectl(&kubectl, &kc)
        .args([
            "exec",
            "demo",
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 600",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first output line");
    assert_eq!(line, "started\n");

    cluster.kill_sandbox();
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "kubectl still running 30 s after the cluster died"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
    assert!(
        !status.success(),
        "kubectl exited 0 although the cluster died; stderr: {err}"
    );
    assert!(
        err.contains("lost the connection to the cluster")
            || err.contains("without an exit status"),
        "{err}"
    );

    let sessions = cluster.wait_for_sealed_count(1);
    let s = &sessions[0];
    assert_eq!(s["state"], "sealed", "{s:#}");
    assert_eq!(s["exit"]["code"], 1, "{s:#}");
    assert_eq!(
        s["bytes"]["stdout"], 8,
        "the output before the failure is kept: {s:#}"
    );
    let verify = cluster
        .kubetape()
        .args(["verify", s["session"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn cluster_dies_under_websocket_kubectl_1_33() {
    upstream_dies(Kubectl::V1_33);
}

#[test]
fn cluster_dies_under_spdy_kubectl_1_27() {
    upstream_dies(Kubectl::V1_27);
}
