//! Bulk stdin through the gateway to a process that writes as it reads (`cat`): every byte comes
//! back, in order, over WebSocket and over SPDY. The relay moves the two directions side by side;
//! a relay that waited for the cluster to take stdin before reading its output would deadlock
//! here once the buffers on the way (a few MB) are full, as `kubectl cp` into a pod can.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tests::{Cluster, Kubectl, run};

/// More than every buffer between kubectl and the pod holds.
const SIZE: usize = 24 << 20;

fn input() -> Vec<u8> {
    // Incompressible-ish and position-dependent, so reordering or loss shows.
    let mut out = Vec::with_capacity(SIZE);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while out.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(SIZE);
    out
}

fn cat_round_trip(version: Kubectl) {
    let Some(kubectl) = version.path() else {
        return;
    };
    let cluster = Cluster::start();
    let kc = cluster.kubeconfig("alice@example.com", &["developers"]);
    let data = input();
    let (code, out, err) = run(
        cluster
            .kubectl(&kubectl, &kc)
            .args(["exec", "-i", "demo", "--", "cat"]),
        &data,
        Duration::from_secs(180),
    );
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    assert_eq!(out.len(), data.len(), "bytes back");
    assert_eq!(Sha256::digest(&out), Sha256::digest(&data), "same bytes");
    let sessions = cluster.wait_for_sealed_count(1);
    assert_eq!(
        sessions[0]["bytes"]["stdin"], SIZE as u64,
        "{:#}",
        sessions[0]
    );
    assert_eq!(
        sessions[0]["bytes"]["stdout"], SIZE as u64,
        "{:#}",
        sessions[0]
    );
}

#[test]
fn bulk_stdin_websocket_kubectl_1_33() {
    cat_round_trip(Kubectl::V1_33);
}

#[test]
fn bulk_stdin_spdy_kubectl_1_27() {
    cat_round_trip(Kubectl::V1_27);
}
