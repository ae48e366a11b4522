//! attach through the gateway, and fail-closed recording: a stream that cannot be recorded is
//! refused before it starts.

use std::time::Duration;

use tests::{Cluster, Kubectl, run};

const T: Duration = Duration::from_secs(60);

#[test]
fn attach_is_relayed_and_recorded() {
    let Some(kubectl) = Kubectl::V1_33.path() else {
        return;
    };
    let cluster = Cluster::start();
    let kc = cluster.kubeconfig("alice@example.com", &["developers"]);
    // The pod's main process is `cat`: what we send comes back, and our EOF ends it.
    let (code, out, err) = run(
        cluster
            .kubectl(&kubectl, &kc)
            .args(["attach", "-i", "echo", "-c", "cat"]),
        b"hello attach\n",
        T,
    );
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    assert!(
        String::from_utf8_lossy(&out).contains("hello attach"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let sessions = cluster.wait_for_sealed_count(1);
    assert_eq!(sessions[0]["meta"]["kind"], "attach", "{:#}", sessions[0]);
    assert_eq!(sessions[0]["meta"]["target"]["pod"], "echo");
    let stdin = cluster
        .kubetape()
        .args([
            "cat",
            "--stream",
            "stdin",
            sessions[0]["session"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(stdin.stdout, b"hello attach\n");
}

#[test]
fn a_stream_that_cannot_be_recorded_is_refused() {
    let Some(kubectl) = Kubectl::V1_33.path() else {
        return;
    };
    let cluster = Cluster::start();
    let kc = cluster.kubeconfig("alice@example.com", &["developers"]);
    // Make the store unwritable for new sessions: its `sessions` directory becomes a file.
    let sessions = cluster
        .root()
        .join("store")
        .join(storage_schema::layout::SESSIONS);
    let _ = std::fs::remove_dir_all(&sessions);
    std::fs::create_dir_all(sessions.parent().unwrap()).unwrap();
    std::fs::write(&sessions, b"not a directory").unwrap();

    let (code, out, err) = run(
        cluster
            .kubectl(&kubectl, &kc)
            .args(["exec", "demo", "--", "echo", "unrecorded"]),
        b"",
        T,
    );
    let err = String::from_utf8_lossy(&err);
    assert_ne!(
        code,
        Some(0),
        "an unrecorded stream ran: {}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        !String::from_utf8_lossy(&out).contains("unrecorded"),
        "the command must not run"
    );
    assert!(err.contains("cannot be recorded"), "{err}");
    // Ordinary calls still work: only streams need a recording.
    let (code, _, err) = run(cluster.kubectl(&kubectl, &kc).args(["get", "pods"]), b"", T);
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
}
