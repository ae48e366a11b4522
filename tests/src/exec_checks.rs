//! The exec behaviours every cluster mode must keep through the gateway, for one kubectl
//! version: non-TTY exit codes, stdin to EOF with exactly the input back, and an interactive
//! `-it` session with a resize — each recorded. Used by the tests of the sandbox's modes
//! (WebSocket refused, v4 only, dropped after the Status).

use std::time::Duration;

use test_support::Tmux;

use crate::{Cluster, Kubectl, run};

const T: Duration = Duration::from_secs(120);

/// How many sessions [`exec_behaves`] records.
pub const SESSIONS: usize = 4;

/// Runs the checks with `version` as `user` (a developer); returns how many sessions it
/// recorded ([`SESSIONS`], or 0 when that kubectl is not installed).
pub fn exec_behaves(cluster: &Cluster, version: Kubectl, user: &str) -> usize {
    let Some(bin) = version.path() else {
        return 0;
    };
    let kc = cluster.kubeconfig(user, &["developers"]);
    for want in [0, 3] {
        let mut cmd = cluster.kubectl(&bin, &kc);
        cmd.args([
            "exec",
            "demo",
            "--",
            "sh",
            "-c",
            &format!("echo out; exit {want}"),
        ]);
        let (code, out, err) = run(&mut cmd, b"", T);
        assert_eq!(
            code,
            Some(want),
            "{version:?} exit {want}: {}",
            String::from_utf8_lossy(&err)
        );
        assert_eq!(out, b"out\n", "{version:?}");
    }
    // printf 'a\nb\n' | kubectl exec -i demo -- cat: returns, with exactly the input.
    let mut cmd = cluster.kubectl(&bin, &kc);
    cmd.args(["exec", "-i", "demo", "--", "cat"]);
    let (code, out, err) = run(&mut cmd, b"a\nb\n", T);
    assert_eq!(
        code,
        Some(0),
        "{version:?}: {}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(out, b"a\nb\n", "{version:?}");

    let tmux = Tmux::new(&format!("modes-{version:?}"));
    let shell = format!(
        "env HOME={home} {bin} --kubeconfig {kc} --cache-dir {home}/.kube/cache exec -it demo -- sh",
        home = cluster.home.display(),
        bin = bin.display(),
        kc = kc.display(),
    );
    tmux.window("it", 100, 30, &shell);
    tmux.wait_for("it", "#");
    tmux.send("it", "stty size");
    tmux.wait_for("it", "30 100");
    tmux.run(&["resize-window", "-t", "it", "-x", "120", "-y", "40"]);
    tmux.send("it", AWAIT_40X120);
    tmux.wait_for("it", "size=40 120");
    tmux.send("it", "exit 5");
    tmux.wait_for("it", "EXIT=5");
    SESSIONS
}

/// Typed into the pod's shell after resizing its terminal to 120x40: prints `size=40 120` once
/// the pod's terminal has that size. kubectl sends the resize from its SIGWINCH handler,
/// beside the goroutine copying stdin, so a line typed right after the resize can reach the
/// pod first (it did, under CI load): the shell waits for the size, forever if it never comes
/// (and the test's wait for `size=40 120` fails).
pub const AWAIT_40X120: &str =
    r#"clear; until [ "$(stty size)" = "40 120" ]; do sleep 0.1; done; echo "size=$(stty size)""#;

/// Every recorded session of `user`, with its exit code: `[0, 3, 0, 5]` in some order per
/// version (the exit codes were recorded, not only passed on).
pub fn assert_recorded(sessions: &[serde_json::Value], user: &str, versions: usize) {
    let mut codes: Vec<i64> = sessions
        .iter()
        .filter(|s| s["meta"]["identity"]["user"] == user)
        .map(|s| s["exit"]["code"].as_i64().unwrap_or(-1))
        .collect();
    codes.sort_unstable();
    let mut want: Vec<i64> = std::iter::repeat_n([0, 0, 3, 5], versions)
        .flatten()
        .collect();
    want.sort_unstable();
    assert_eq!(codes, want, "{user}: {sessions:#?}");
    let tty = sessions
        .iter()
        .filter(|s| s["meta"]["identity"]["user"] == user && s["meta"]["tty"] == true)
        .count();
    assert_eq!(tty, versions);
}

/// The four kubectl versions of the modes' tests.
pub const VERSIONS: [Kubectl; 4] = [
    Kubectl::V1_27,
    Kubectl::V1_30,
    Kubectl::V1_33,
    Kubectl::V1_37,
];

/// Runs [`exec_behaves`] for every version side by side (each as its own user); checks what
/// was recorded.
pub fn every_version(cluster: &Cluster) {
    let recorded: Vec<(String, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = VERSIONS
            .into_iter()
            .map(|v| {
                let user = format!("user-{}@example.com", v.version());
                s.spawn(move || {
                    let n = exec_behaves(cluster, v, &user);
                    (user, n)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: usize = recorded.iter().map(|(_, n)| n).sum();
    let sessions = cluster.wait_for_sealed_count(total);
    for (user, n) in recorded.iter().filter(|(_, n)| *n > 0) {
        assert_recorded(&sessions, user, n / SESSIONS);
    }
}
