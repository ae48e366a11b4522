//! exec through the gateway with every supported kubectl: stdout/stderr separation, exit codes,
//! stdin, large binary output, and the recording of each.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tests::{Cluster, Kubectl, run};

const T: Duration = Duration::from_secs(120);

fn exec_behaves_like_the_cluster(version: Kubectl) {
    let Some(kubectl) = version.path() else {
        return;
    };
    let cluster = Cluster::start();
    let kc = cluster.kubeconfig("alice@example.com", &["developers"]);
    let exec = |args: &[&str], stdin: &[u8]| {
        let mut cmd = cluster.kubectl(&kubectl, &kc);
        cmd.arg("exec");
        if !stdin.is_empty() {
            cmd.arg("-i");
        }
        cmd.args(["demo", "--"]).args(args);
        run(&mut cmd, stdin, T)
    };

    // Separate stdout and stderr.
    let (code, out, err) = exec(&["sh", "-c", "echo to-stdout; echo to-stderr >&2"], b"");
    assert_eq!(
        code,
        Some(0),
        "{version:?}: {}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(out, b"to-stdout\n", "{version:?}");
    assert!(
        String::from_utf8_lossy(&err).contains("to-stderr"),
        "{version:?}: {}",
        String::from_utf8_lossy(&err)
    );
    assert!(!String::from_utf8_lossy(&out).contains("to-stderr"));

    // Exit codes reach kubectl's own exit code.
    for want in [0, 3, 137] {
        let (code, _, err) = exec(&["sh", "-c", &format!("exit {want}")], b"");
        assert_eq!(
            code,
            Some(want),
            "{version:?} exit {want}: {}",
            String::from_utf8_lossy(&err)
        );
    }

    // stdin, to EOF.
    let (code, out, err) = exec(&["cat"], b"a\nb\n");
    assert_eq!(
        code,
        Some(0),
        "{version:?}: {}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(out, b"a\nb\n", "{version:?}");

    // 50 MB of binary output arrives intact, and the recording holds exactly it.
    let (code, out, err) = exec(&["sh", "-c", "head -c 50000000 /dev/urandom"], b"");
    assert_eq!(
        code,
        Some(0),
        "{version:?}: {}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(out.len(), 50_000_000, "{version:?}");
    let sessions = cluster.wait_for_sealed_count(6);
    assert_eq!(sessions.len(), 6, "one recording per exec");
    let big = &sessions[0];
    assert_eq!(big["bytes"]["stdout"], 50_000_000, "{big:#}");
    let (code, recorded, err) = run(
        cluster
            .kubetape()
            .args(["cat", big["session"].as_str().unwrap()]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    assert_eq!(
        Sha256::digest(&recorded),
        Sha256::digest(&out),
        "{version:?}: kubetape cat differs from what kubectl received"
    );

    // Every recording verifies and names who and where.
    let (code, verified, err) = run(cluster.kubetape().args(["verify", "--all"]), b"", T);
    assert_eq!(
        code,
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&verified),
        String::from_utf8_lossy(&err)
    );
    let exit_codes: Vec<_> = sessions
        .iter()
        .map(|s| s["exit"]["code"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(
        exit_codes,
        [0, 0, 137, 3, 0, 0],
        "newest first: big, cat, 137, 3, 0, separation"
    );
    for s in &sessions {
        assert_eq!(s["meta"]["identity"]["user"], "alice@example.com");
        assert_eq!(s["meta"]["target"]["pod"], "demo");
        assert_eq!(s["meta"]["target"]["namespace"], "default");
    }
}

#[test]
fn kubectl_1_27_spdy() {
    exec_behaves_like_the_cluster(Kubectl::V1_27);
}

#[test]
fn kubectl_1_29_spdy() {
    exec_behaves_like_the_cluster(Kubectl::V1_29);
}

#[test]
fn kubectl_1_30_websocket() {
    exec_behaves_like_the_cluster(Kubectl::V1_30);
}

#[test]
fn kubectl_1_33_websocket() {
    exec_behaves_like_the_cluster(Kubectl::V1_33);
}

#[test]
fn kubectl_1_37_websocket() {
    exec_behaves_like_the_cluster(Kubectl::V1_37);
}
