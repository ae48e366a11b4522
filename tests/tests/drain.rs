//! Graceful drain: SIGTERM to a gateway with live sessions — an interactive WebSocket session
//! (kubectl 1.33), an interactive SPDY session (kubectl 1.27) and a streaming `exec -i` — ends
//! each with the reason printed by kubectl and a non-zero exit, seals every recording (sealed, not
//! open, not interrupted), keeps in each recording everything its client received, and the
//! gateway exits on its own.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::Tmux;
use tests::{Cluster, Kubectl};

/// What kubectl prints when the gateway drains (gateway::session::DRAIN_MESSAGE).
const REASON: &str = "the gateway is shutting down";

fn interactive(cluster: &Cluster, tmux: &Tmux, name: &str, version: Kubectl, marker: &str) {
    let kubectl = version.path().expect("kubectl");
    let kc = cluster.kubeconfig("bob@example.com", &["developers"]);
    let shell = format!(
        "env HOME={home} {kubectl} --kubeconfig {kc} --cache-dir {home}/.kube/cache exec -it demo -- sh; echo EXIT=$?; sleep 600",
        home = cluster.home.display(),
        kubectl = kubectl.display(),
        kc = kc.display(),
    );
    tmux.start(name, &shell);
    tmux.wait_for(name, "#");
    tmux.send(name, &format!("echo {marker}-$((6*7))"));
    tmux.wait_for(name, &format!("{marker}-42"));
}

fn cat(cluster: &Cluster, session: &str) -> Vec<u8> {
    let out = cluster
        .kubetape()
        .args(["cat", session])
        .output()
        .expect("kubetape cat");
    assert!(
        out.status.success(),
        "kubetape cat {session}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn sigterm_drains_live_sessions_and_seals_every_recording() {
    let mut cluster = Cluster::start();
    let tmux = Tmux::new("drain");
    interactive(&cluster, &tmux, "ws", Kubectl::V1_33, "ws-before-drain");
    interactive(&cluster, &tmux, "spdy", Kubectl::V1_27, "spdy-before-drain");

    // A streaming, non-interactive session: output flows until the drain.
    let kubectl = Kubectl::V1_33.path().expect("kubectl 1.33");
    let kc = cluster.kubeconfig("carol@example.com", &["developers"]);
    let mut streaming = cluster
        .kubectl(&kubectl, &kc)
        .args([
            "exec",
            "-i",
            "demo",
            "--",
            "sh",
            "-c",
            "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.005; done",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl exec -i");
    let mut stdout = streaming.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stdout.read_to_end(&mut all);
        all
    });
    let mut stderr = streaming.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all);
        all
    });
    // Three live sessions before the signal.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.sessions().len() < 3 {
        assert!(Instant::now() < deadline, "{:#?}", cluster.sessions());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        cluster.sessions().iter().all(|s| s["state"] == "open"),
        "all live: {:#?}",
        cluster.sessions()
    );

    let pid = cluster.gateway.child.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());

    // The gateway exits by itself, successfully, well within its drain deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let exited = loop {
        if let Some(status) = cluster.gateway.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the gateway did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exited.success(), "gateway exit: {exited:?}");

    // Each client printed the reason and exited non-zero.
    for name in ["ws", "spdy"] {
        let screen = tmux.wait_for(name, "EXIT=");
        assert!(screen.contains(REASON), "{name}:\n{screen}");
        assert!(!screen.contains("EXIT=0"), "{name}:\n{screen}");
    }
    let status = streaming.wait().unwrap();
    assert!(!status.success(), "exec -i exited 0 after the drain");
    let err = err_reader.join().unwrap();
    assert!(err.contains(REASON), "{err}");
    let received = reader.join().unwrap();
    assert!(received.starts_with(b"line-0\n"), "{received:?}");

    // Every recording is sealed with the drain as its end, and holds what its client saw.
    let sessions = cluster.sessions();
    assert_eq!(sessions.len(), 3, "{sessions:#?}");
    for s in &sessions {
        assert_eq!(s["state"], "sealed", "{s:#}");
        assert!(
            s["exit"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(REASON),
            "{s:#}"
        );
    }
    for s in &sessions {
        let id = s["session"].as_str().unwrap();
        let recorded = cat(&cluster, id);
        let text = String::from_utf8_lossy(&recorded);
        if s["meta"]["tty"] == true {
            assert!(
                text.contains("ws-before-drain-42") || text.contains("spdy-before-drain-42"),
                "{id}: {text}"
            );
        } else {
            assert!(
                recorded.starts_with(&received),
                "the recording of {id} lacks output its client received ({} bytes received, {} recorded)",
                received.len(),
                recorded.len()
            );
        }
        let verify = cluster.kubetape().args(["verify", id]).output().unwrap();
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
    cluster.kill_sandbox();
}
