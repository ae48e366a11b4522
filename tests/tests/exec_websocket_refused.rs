//! A cluster that refuses WebSocket exec (a proxy that blocks WebSocket upgrades): the gateway
//! falls back to SPDY/3.1 upstream, so every kubectl (1.27 SPDY, 1.30+ WebSocket to the
//! gateway) still gets its exit codes, stdin EOF and an interactive session with resizes, all
//! recorded.

use tests::{Cluster, DEFAULT_POLICY, exec_checks};

#[test]
fn exec_through_a_cluster_that_refuses_websocket() {
    let cluster = Cluster::start_custom(DEFAULT_POLICY, &["--exec-websocket", "refuse"]);
    exec_checks::every_version(&cluster);
    // The gateway asked for WebSocket, was refused, and used SPDY: both reached the sandbox.
    let requests = cluster.sandbox_requests();
    let exec = |method: &str| {
        requests
            .iter()
            .filter(|r| {
                r["method"] == method && r["path"].as_str().is_some_and(|p| p.contains("/exec?"))
            })
            .count()
    };
    assert!(
        exec("GET") > 0 && exec("POST") >= exec("GET"),
        "{requests:#?}"
    );
}
