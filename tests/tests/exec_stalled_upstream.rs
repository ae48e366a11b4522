//! A cluster that stops reading its side of an exec connection (a wedged node or proxy) while
//! kubectl still sends stdin: the gateway's writes toward it block on a full socket. When the
//! process exits, kubectl must still get its exit code at once, and the session must seal
//! within the gateway's close bound (5 s), not wait for the cluster to read again (the sandbox
//! holds the connection unread for a minute).

use std::time::{Duration, Instant};

use tests::{Cluster, DEFAULT_POLICY, Kubectl};

#[test]
fn a_cluster_that_stops_reading_does_not_hold_the_exit_status() {
    let cluster = Cluster::start_custom(DEFAULT_POLICY, &["--stall-reading"]);
    let Some(bin) = Kubectl::V1_33.path() else {
        return;
    };
    let user = "stalled@example.com";
    let kc = cluster.kubeconfig(user, &["developers"]);
    let before = cluster.sessions().len();
    // Far more stdin than the sockets between the gateway and the cluster hold (a few MiB).
    let input = vec![b'x'; 64 << 20];
    let (code, _, err) = tests::run(
        cluster.kubectl(&bin, &kc).args([
            "exec",
            "-i",
            "demo",
            "--",
            "sh",
            "-c",
            "sleep 2; exit 3",
        ]),
        &input,
        Duration::from_secs(30),
    );
    let exited = Instant::now();
    assert_eq!(code, Some(3), "kubectl: {}", String::from_utf8_lossy(&err));
    let sessions = cluster.wait_for_sealed_count(before + 1);
    let sealed_after = exited.elapsed();
    assert!(
        sealed_after < Duration::from_secs(15),
        "the session sealed {sealed_after:?} after kubectl exited"
    );
    let session = sessions
        .iter()
        .find(|s| s["meta"]["identity"]["user"] == user)
        .expect("the stalled session");
    assert_eq!(session["state"], "sealed", "{session:#}");
    assert_eq!(session["exit"]["code"], 3, "{session:#}");
}
