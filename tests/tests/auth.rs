//! `kubectl auth can-i`, `auth can-i --list` and `auth whoami` through the gateway with kubectl
//! 1.27, 1.30, 1.33 and 1.37: answered from the gateway's policy (live grants included) AND the
//! cluster's answer for the impersonated identity; whoami names the mapped identity, its groups
//! and kubetape's extras.

use std::path::Path;
use std::time::Duration;

use tests::{Cluster, Kubectl, run};

const T: Duration = Duration::from_secs(60);

const VERSIONS: [Kubectl; 4] = [
    Kubectl::V1_27,
    Kubectl::V1_30,
    Kubectl::V1_33,
    Kubectl::V1_37,
];

fn kubectl(cluster: &Cluster, bin: &Path, kc: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = cluster.kubectl(bin, kc);
    cmd.args(args);
    let (code, out, err) = run(&mut cmd, b"", T);
    (
        code.unwrap_or(-1),
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

fn can_i(cluster: &Cluster, version: Kubectl, kc: &Path, granted: bool) {
    let Some(bin) = version.path() else { return };
    let (code, out, err) = kubectl(
        cluster,
        &bin,
        kc,
        &["auth", "can-i", "create", "pods/exec", "-n", "default"],
    );
    assert_eq!((code, out.trim()), (0, "yes"), "{version:?}: {err}");
    let (code, out, err) = kubectl(
        cluster,
        &bin,
        kc,
        &["auth", "can-i", "create", "pods/exec", "-n", "prod"],
    );
    if granted {
        assert_eq!(
            (code, out.trim()),
            (0, "yes"),
            "{version:?} prod, granted: {err}"
        );
    } else {
        // "no - <why>": the denial says how to ask for access.
        assert_eq!(code, 1, "{version:?} prod: {out}{err}");
        assert!(out.starts_with("no"), "{version:?}: {out}");
        assert!(
            out.contains("kubetape request prod-debug"),
            "{version:?}: {out}"
        );
    }
    // The subresource itself, as --subresource asks it.
    let (code, out, err) = kubectl(
        cluster,
        &bin,
        kc,
        &[
            "auth",
            "can-i",
            "create",
            "pods",
            "--subresource=exec",
            "-n",
            "default",
        ],
    );
    assert_eq!((code, out.trim()), (0, "yes"), "{version:?}: {err}");
    let (code, out, err) = kubectl(
        cluster,
        &bin,
        kc,
        &["auth", "can-i", "delete", "pods", "-n", "default"],
    );
    assert_eq!(code, 1, "{version:?}: {out}{err}");
    assert!(out.starts_with("no"), "{version:?}: {out}");
}

fn list_and_whoami(cluster: &Cluster, version: Kubectl, kc: &Path) {
    let Some(bin) = version.path() else { return };
    let (code, out, err) = kubectl(
        cluster,
        &bin,
        kc,
        &["auth", "can-i", "--list", "-n", "default"],
    );
    assert_eq!(code, 0, "{version:?}: {err}");
    let row = |resource: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(resource))
            .unwrap_or_else(|| panic!("{version:?}: no {resource} in\n{out}"))
            .to_string()
    };
    assert!(
        row("pods/exec").contains("[get list watch create]"),
        "{version:?}:\n{out}"
    );
    assert!(
        row("pods").contains("[get list watch create]"),
        "{version:?}:\n{out}"
    );
    assert!(!out.contains("secrets"), "{version:?}:\n{out}");
    // Nothing in prod without a grant.
    let (_, prod, _) = kubectl(
        cluster,
        &bin,
        kc,
        &["auth", "can-i", "--list", "-n", "prod"],
    );
    assert!(!prod.contains("pods/exec"), "{version:?}:\n{prod}");

    let (code, out, err) = kubectl(cluster, &bin, kc, &["auth", "whoami", "-o", "json"]);
    assert_eq!(code, 0, "{version:?}: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let info = &v["status"]["userInfo"];
    assert_eq!(info["username"], "alice@example.com", "{version:?}: {v}");
    assert_eq!(
        info["groups"],
        serde_json::json!(["developers"]),
        "{version:?}: {v}"
    );
    assert_eq!(
        info["extra"]["kubetape.io/issuer"][0],
        tests::DevIssuer::DEFAULT_ISSUER,
        "{version:?}: {v}"
    );
    let (code, table, _) = kubectl(cluster, &bin, kc, &["auth", "whoami"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("alice@example.com") && table.contains("[developers]"),
        "{table}"
    );
}

#[test]
fn auth_can_i_and_whoami() {
    let cluster = Cluster::start();
    let alice = cluster.kubeconfig("alice@example.com", &["developers"]);
    let bob = cluster.kubeconfig("bob@example.com", &["sre"]);
    std::thread::scope(|s| {
        for v in VERSIONS {
            let (cluster, alice) = (&cluster, &alice);
            s.spawn(move || {
                can_i(cluster, v, alice, false);
                list_and_whoami(cluster, v, alice);
            });
        }
    });

    // A live grant changes the answer, at once.
    let (code, out, err) = run(
        cluster.kubetape_as(&alice).args([
            "request",
            "prod-debug",
            "--namespace",
            "prod",
            "--reason",
            "INC-9",
            "--ttl",
            "10m",
            "--json",
        ]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    let id = serde_json::from_slice::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _, err) = run(cluster.kubetape_as(&bob).args(["approve", &id]), b"", T);
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    std::thread::scope(|s| {
        for v in VERSIONS {
            let (cluster, alice) = (&cluster, &alice);
            s.spawn(move || can_i(cluster, v, alice, true));
        }
    });
    let bin = Kubectl::V1_33.path().unwrap();
    let (_, prod, _) = kubectl(
        &cluster,
        &bin,
        &alice,
        &["auth", "can-i", "--list", "-n", "prod"],
    );
    assert!(prod.contains("pods/exec"), "{prod}");
    let (_, who, _) = kubectl(&cluster, &bin, &alice, &["auth", "whoami", "-o", "json"]);
    let who: serde_json::Value = serde_json::from_str(&who).unwrap();
    let grants = who["status"]["userInfo"]["extra"]["kubetape.io/grants"].to_string();
    assert!(
        grants.contains("prod-debug in prod") && grants.contains(&id),
        "{who}"
    );
    // The cluster was asked about the impersonated identity.
    let reviews = cluster
        .sandbox_requests()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("selfsubjectaccessreviews"))
        })
        .count();
    assert!(
        reviews >= 12,
        "{reviews} access reviews reached the cluster"
    );
}
