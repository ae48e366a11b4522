//! `kubectl cp` of a 5 MB file into a pod and back through the gateway, with kubectl 1.27
//! (SPDY) and 1.37 (WebSocket): the copies are byte for byte, `kubetape search` finds each
//! file by name in the sessions' commands (`cp: PATH (upload|download, N bytes)`), and `ls`
//! counts the bytes moved, uploads (stdin) included.
//!
//! Not 1.30–1.33 for WebSocket: their client starts reading frames before it has created its
//! streams, and drops output that arrives in between ("Unknown stream id 1, discarding
//! message"; kubernetes/kubernetes#131189, fixed in 1.34 by #131203). `tar` in a sandbox pod
//! starts writing at once, and a CI run lost the head of a download that way (`invalid tar
//! header`) — behind a real API server as much as behind kubetape.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tests::{Cluster, Kubectl, run};

const T: Duration = Duration::from_secs(120);
const SIZE: usize = 5 * 1024 * 1024;

/// Incompressible, reproducible bytes.
fn content(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn copy_both_ways(cluster: &Cluster, version: Kubectl, seed: u64) -> Option<String> {
    let bin = version.path()?;
    let kc = cluster.kubeconfig("carl@example.com", &["developers"]);
    let kubectl = |args: &[&str]| {
        let mut cmd = cluster.kubectl(&bin, &kc);
        cmd.args(args);
        let (code, out, err) = run(&mut cmd, b"", T);
        assert_eq!(
            code,
            Some(0),
            "{version:?} {args:?}: {}",
            String::from_utf8_lossy(&err)
        );
        out
    };
    // The pod's files are this machine's (sandbox pods are local processes).
    let remote_dir = cluster
        .root()
        .join(format!("pod-files-{}", version.version()));
    let remote_dir = remote_dir.to_str().unwrap().to_string();
    kubectl(&["exec", "demo", "--", "mkdir", "-p", &remote_dir]);
    let local = cluster
        .root()
        .join(format!("app-{}.conf", version.version()));
    let data = content(seed);
    std::fs::write(&local, &data).unwrap();
    let remote = format!("{remote_dir}/app.conf");
    kubectl(&["cp", local.to_str().unwrap(), &format!("demo:{remote}")]);
    let back = cluster
        .root()
        .join(format!("back-{}.conf", version.version()));
    kubectl(&["cp", &format!("demo:{remote}"), back.to_str().unwrap()]);
    let sum = |p: &Path| hex::encode(Sha256::digest(std::fs::read(p).unwrap()));
    assert_eq!(
        sum(&back),
        sum(&local),
        "{version:?}: the copy came back different"
    );
    // And inside the pod, as sha256sum sees it.
    let inside = kubectl(&["exec", "demo", "--", "sha256sum", &remote]);
    assert!(
        String::from_utf8_lossy(&inside).starts_with(&sum(&local)),
        "{version:?}"
    );
    Some(remote)
}

#[test]
fn kubectl_cp_is_recorded_as_files() {
    let cluster = Cluster::start();
    let remotes: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = [(Kubectl::V1_27, 1), (Kubectl::V1_37, 2)]
            .into_iter()
            .map(|(v, seed)| {
                let cluster = &cluster;
                s.spawn(move || copy_both_ways(cluster, v, seed))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect()
    });
    // Per version: mkdir, upload, download, sha256sum.
    let sessions = cluster.wait_for_sealed_count(remotes.len() * 4);
    for remote in &remotes {
        for (direction, stream) in [("upload", "stdin"), ("download", "stdout")] {
            let pattern = format!("cp: {remote} \\({direction}, {SIZE} bytes\\)");
            let (code, out, err) = run(
                cluster.kubetape().args(["search", "--json", &pattern]),
                b"",
                T,
            );
            assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
            let hits: Vec<serde_json::Value> = String::from_utf8_lossy(&out)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(hits.len(), 1, "{pattern}: {hits:?}");
            let s = sessions
                .iter()
                .find(|s| s["session"] == hits[0]["session"])
                .expect("the hit is a session");
            assert!(
                s["bytes"][stream].as_u64().unwrap() >= SIZE as u64,
                "{direction}: {s:#}"
            );
        }
    }
    // `ls` counts the upload's stdin: every cp session shows at least 5 MiB.
    let (code, table, _) = run(cluster.kubetape().arg("ls"), b"", T);
    assert_eq!(code, Some(0));
    let table = String::from_utf8_lossy(&table);
    let big = table
        .lines()
        .filter(|l| l.contains(" MiB") || l.contains(" MB"))
        .count();
    assert_eq!(big, remotes.len() * 2, "{table}");
}
