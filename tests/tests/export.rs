//! `kubetape export` of a session recorded through the gateway: kubectl sends the terminal's
//! size as a resize right after the stream opens (the session's metadata has none), and the
//! asciicast header carries that size, not asciinema's 80×24 default; the real asciinema 2.x
//! accepts the file and reproduces the session's output.

use std::time::{Duration, Instant};

use test_support::Tmux;
use tests::{Cluster, Kubectl};

#[test]
fn the_asciicast_header_has_the_terminal_size_kubectl_sent() {
    let cluster = Cluster::start();
    let tmux = Tmux::new("export");
    let kubectl = Kubectl::V1_33.path().expect("kubectl 1.33");
    let kc = cluster.kubeconfig("bob@example.com", &["developers"]);
    let shell = format!(
        "env HOME={home} {kubectl} --kubeconfig {kc} --cache-dir {home}/.kube/cache exec -it demo -- sh",
        home = cluster.home.display(),
        kubectl = kubectl.display(),
        kc = kc.display(),
    );
    tmux.window("wide", 120, 35, &shell);
    tmux.wait_for("wide", "#");
    tmux.send("wide", "echo size-$(stty size | tr ' ' x)");
    // The pod's terminal has the window's size: kubectl sent it.
    tmux.wait_for("wide", "size-35x120");
    tmux.send("wide", "exit");
    tmux.wait_for("wide", "EXIT=0");

    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        let sessions = cluster.sessions();
        if let Some(s) = sessions.iter().find(|s| s["state"] == "sealed") {
            break s["session"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "{sessions:#?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let cast = cluster.root().join("wide.cast");
    let out = cluster
        .kubetape()
        .args(["export", &id, "-o"])
        .arg(&cast)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&cast).unwrap();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(120), Some(35)),
        "{header}"
    );

    let Some(asciinema) = test_support::asciinema() else {
        return;
    };
    let played = std::process::Command::new(&asciinema)
        .arg("cat")
        .arg(&cast)
        .output()
        .unwrap();
    assert!(
        played.status.success(),
        "asciinema cat: {}",
        String::from_utf8_lossy(&played.stderr)
    );
    assert!(
        String::from_utf8_lossy(&played.stdout).contains("size-35x120"),
        "{}",
        String::from_utf8_lossy(&played.stdout)
    );
}
