//! Commands typed in an interactive `kubectl exec -it` through the gateway are found by
//! `kubetape search` seconds after the session ends, with the right session, offset and target;
//! a password typed at a no-echo prompt is in no search output.

use std::time::{Duration, Instant};

use test_support::Tmux;
use tests::{Cluster, Kubectl, run};

const SECRET: &str = "s3cr3t-Passw0rd-42";

/// Waits (bounded) until the last non-empty line is a bare prompt (one of `prompts`): the shell
/// is ready for the next command (its echoed text alone would already contain the prompt
/// string, and keys typed before the prompt is drawn are echoed in front of it).
fn wait_for_prompt(tmux: &Tmux, prompts: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let screen = tmux.screen("s");
        let last = screen
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::trim);
        if last.is_some_and(|l| prompts.contains(&l)) {
            return;
        }
        assert!(Instant::now() < deadline, "no prompt:\n{screen}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn commands_typed_through_the_gateway_are_searchable_seconds_later() {
    let cluster = Cluster::start();
    let kubectl = Kubectl::V1_33.path().unwrap();
    let kubeconfig = cluster.kubeconfig("alice@example.com", &["developers"]);
    let tmux = Tmux::new("search");
    tmux.start(
        "s",
        &format!(
            "env HOME={home} {kubectl} --kubeconfig {kc} --cache-dir {home}/.kube/cache exec -it demo -- sh; echo KUBECTL-EXIT=$?; sleep 600",
            home = cluster.home.display(),
            kubectl = kubectl.display(),
            kc = kubeconfig.display(),
        ),
    );
    // A known prompt, whoever the pod's sh runs as (`# ` for root, `$ ` otherwise).
    wait_for_prompt(&tmux, &["#", "$"]);
    tmux.send("s", "PS1='ktp> '");
    wait_for_prompt(&tmux, &["ktp>"]);
    // A typo fixed with backspace: the index holds the command that ran.
    tmux.run(&[
        "send-keys",
        "-t",
        "s",
        "echo needle-$((6*7))xx",
        "BSpace",
        "BSpace",
        "Enter",
    ]);
    tmux.wait_for("s", "needle-42");
    wait_for_prompt(&tmux, &["ktp>"]);
    tmux.send(
        "s",
        "stty -echo; printf 'Password: '; read pw; stty echo; echo; echo got-${#pw}",
    );
    tmux.wait_for("s", "Password:");
    tmux.send("s", SECRET);
    tmux.wait_for("s", "got-18");
    wait_for_prompt(&tmux, &["ktp>"]);
    tmux.send("s", "exit 0");
    tmux.wait_for("s", "KUBECTL-EXIT=0");
    let ended = Instant::now();

    // Found within seconds of the end (the gateway seals, the index syncs on search).
    let deadline = ended + Duration::from_secs(20);
    let hits = loop {
        let (code, out, err) = run(
            cluster.kubetape().args(["search", "--json", "needle"]),
            b"",
            Duration::from_secs(30),
        );
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if code == Some(0) && !lines.is_empty() {
            break lines;
        }
        if Instant::now() >= deadline {
            let (_, all, _) = run(
                cluster.kubetape().args(["search", "."]),
                b"",
                Duration::from_secs(30),
            );
            for s in cluster.sessions() {
                let id = s["session"].as_str().unwrap().to_string();
                let (_, cast, _) = run(
                    cluster
                        .kubetape()
                        .args(["export", &id, "--format", "asciicast-v3"]),
                    b"",
                    Duration::from_secs(30),
                );
                eprintln!("session {s}\n{}", String::from_utf8_lossy(&cast));
            }
            panic!(
                "not found {:?} after the session ended: {}\nall commands:\n{}",
                ended.elapsed(),
                String::from_utf8_lossy(&err),
                String::from_utf8_lossy(&all)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "found {:.2} s after the session ended",
        ended.elapsed().as_secs_f64()
    );
    assert_eq!(hits.len(), 1, "{hits:?}");
    let hit = &hits[0];
    assert_eq!(hit["command"], "echo needle-$((6*7))");
    assert_eq!(hit["user"], "alice@example.com");
    assert_eq!(hit["namespace"], "default");
    assert_eq!(hit["pod"], "demo");
    assert_eq!(hit["number"], 2, "after PS1=…");
    let sessions = cluster.sessions();
    let session = sessions
        .iter()
        .find(|s| s["session"] == hit["session"])
        .unwrap_or_else(|| panic!("{} is not a recorded session: {sessions:?}", hit["session"]));
    let offset = hit["offset_us"].as_u64().unwrap();
    assert!(
        offset > 0 && offset < session["duration_us"].as_u64().unwrap(),
        "offset {offset} within the session {session}"
    );

    // The password is in no search output.
    for pattern in [".", "s3cr3t", "Passw0rd"] {
        let (_, out, _) = run(
            cluster.kubetape().args(["search", pattern]),
            b"",
            Duration::from_secs(30),
        );
        assert!(!String::from_utf8_lossy(&out).contains(SECRET), "{pattern}");
    }
}
