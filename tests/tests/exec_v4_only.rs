//! A cluster that speaks only `v4.channel.k8s.io` over WebSocket (a kubelet reached without the
//! API server's stream translator), and drops the connection right after the exit Status: the
//! gateway does not take v4 (stdin EOF cannot be said in it) but SPDY/3.1, so every kubectl
//! gets exactly its input back, its exit codes, and an interactive session with resizes, all
//! recorded.

use tests::{Cluster, DEFAULT_POLICY, exec_checks};

#[test]
fn exec_through_a_v4_only_cluster() {
    let cluster = Cluster::start_custom(
        DEFAULT_POLICY,
        &["--exec-websocket", "v4-only", "--drop-after-status"],
    );
    exec_checks::every_version(&cluster);
    // No WebSocket exec was upgraded upstream: the gateway offered v5 alone, was refused (403)
    // and used SPDY.
    let requests = cluster.sandbox_requests();
    assert!(
        requests
            .iter()
            .filter(|r| r["method"] == "GET"
                && r["path"].as_str().is_some_and(|p| p.contains("/exec?")))
            .all(|r| r["status"] == 403),
        "{requests:#?}"
    );
}
