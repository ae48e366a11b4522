//! An interactive `kubectl exec -it` through the gateway, driven like a person would through
//! tmux: prompt, typed command and its output, a window resize reaching the pod, the exit code,
//! and all of it in the recording.

use storage_schema::store::{SessionReader, Store};
use storage_schema::{EventKind, Keyring};
use test_support::Tmux;
use tests::{Cluster, Kubectl};

fn interactive_session(version: Kubectl) {
    let Some(kubectl) = version.path() else {
        return;
    };
    let cluster = Cluster::start();
    let kc = cluster.kubeconfig("bob@example.com", &["developers"]);
    let tmux = Tmux::new(&format!("interactive-{version:?}"));
    let shell = format!(
        "env HOME={home} {kubectl} --kubeconfig {kc} --cache-dir {home}/.kube/cache exec -it demo -- sh; echo EXIT=$?; sleep 600",
        home = cluster.home.display(),
        kubectl = kubectl.display(),
        kc = kc.display(),
    );
    tmux.start("kt", &shell);
    // capture-pane trims trailing spaces, so the prompt "# " shows as "#".
    tmux.wait_for("kt", "#");
    tmux.run(&["send-keys", "-t", "kt", "echo hello-$((6*7))", "Enter"]);
    tmux.wait_for("kt", "hello-42");
    tmux.run(&["send-keys", "-t", "kt", "stty size", "Enter"]);
    tmux.wait_for("kt", "30 100");
    tmux.run(&["resize-window", "-t", "kt", "-x", "120", "-y", "40"]);
    tmux.send("kt", tests::exec_checks::AWAIT_40X120);
    tmux.wait_for("kt", "size=40 120");
    tmux.run(&["send-keys", "-t", "kt", "exit 5", "Enter"]);
    tmux.wait_for("kt", "EXIT=5");

    let sessions = cluster.wait_for_sealed_count(1);
    let s = &sessions[0];
    assert_eq!(s["exit"]["code"], 5, "{s:#}");
    assert_eq!(s["meta"]["tty"], true);
    let out = cluster
        .kubetape()
        .args(["cat", s["session"].as_str().unwrap()])
        .output()
        .expect("kubetape cat");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("hello-42") && shown.contains("size=40 120"),
        "{shown}"
    );

    // The resize itself is in the recording, as an event, not only in its effect on output.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let resizes = rt.block_on(async {
        let store = Store::open(&cluster.store_url).unwrap();
        let ring = Keyring::open(&cluster.keys).unwrap();
        let reader = SessionReader::open(
            &store,
            &ring,
            s["session"].as_str().unwrap().parse().unwrap(),
        )
        .await
        .unwrap();
        let mut sizes = Vec::new();
        reader
            .for_each_event(|e| {
                if let EventKind::Resize { cols, rows } = e.kind {
                    sizes.push((cols, rows));
                }
            })
            .await
            .unwrap();
        sizes
    });
    assert_eq!(
        resizes.first(),
        Some(&(100, 30)),
        "initial size: {resizes:?}"
    );
    assert!(
        resizes.contains(&(120, 40)),
        "window resize recorded: {resizes:?}"
    );
    let stdin = cluster
        .kubetape()
        .args(["cat", "--stream", "stdin", s["session"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&stdin.stdout).contains("echo hello-$((6*7))\r"));
}

#[test]
fn interactive_websocket_kubectl_1_33() {
    interactive_session(Kubectl::V1_33);
}

#[test]
fn interactive_spdy_kubectl_1_27() {
    interactive_session(Kubectl::V1_27);
}
