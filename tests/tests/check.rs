//! `kubetape-gateway check --config`: a working configuration passes and says what it would
//! serve, reaching the issuers, the store and the cluster; a broken configuration or policy is
//! refused with its file and line; the policy lint warns about grants of unrecorded code
//! execution and fails the check with `--strict`.

use std::path::Path;
use std::process::Command;

use tests::Cluster;

fn check(config: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(tests::bin("kubetape-gateway"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .args(extra)
        .output()
        .expect("kubetape-gateway check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_working_configuration_passes_and_a_broken_one_names_file_and_line() {
    let cluster = Cluster::start();
    let config = cluster.gateway_config();
    let (ok, out, err) = check(&config, &[]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("kubectl connects to"), "{out}");
    assert!(out.contains("cluster               Kubernetes"), "{out}");
    assert!(out.contains("ok: the gateway would start"), "{out}");
    // The harness's policy lets developers `create` in a rule that lists pods: warned about.
    assert!(
        err.contains("warning:") && err.contains("grants create on pods"),
        "{err}"
    );
    let (ok, _, err) = check(&config, &["--strict"]);
    assert!(!ok, "--strict must fail on warnings: {err}");

    // A syntax error in the configuration: file and line.
    let text = std::fs::read_to_string(&config).unwrap();
    let broken = cluster.root().join("broken.toml");
    let line = text.lines().count() + 2;
    std::fs::write(
        &broken,
        format!("{text}\n[server\ndrain_deadline_secs = 5\n"),
    )
    .unwrap();
    let (ok, _, err) = check(&broken, &["--offline"]);
    assert!(!ok);
    assert!(err.contains("broken.toml"), "{err}");
    assert!(err.contains(&format!("line {line}")), "line {line}: {err}");

    // A policy that does not parse: its file and line.
    let bad_policy = cluster.root().join("bad-policy.toml");
    std::fs::write(&bad_policy, "[[roles]]\nname = \"x\"\nrules = 5\n").unwrap();
    let with_bad_policy = cluster.root().join("bad-policy-gateway.toml");
    std::fs::write(
        &with_bad_policy,
        text.replace("policy = \"policy.toml\"", "policy = \"bad-policy.toml\""),
    )
    .unwrap();
    let (ok, _, err) = check(&with_bad_policy, &["--offline"]);
    assert!(!ok);
    assert!(
        err.contains("bad-policy.toml") && err.contains("line 3"),
        "{err}"
    );

    // An unreachable cluster is an error when online, not with --offline.
    let no_cluster = cluster.root().join("no-cluster.toml");
    std::fs::write(
        &no_cluster,
        text.replace("sandbox-state/kubeconfig", "nowhere/kubeconfig"),
    )
    .unwrap();
    let (ok, _, err) = check(&no_cluster, &[]);
    assert!(!ok && err.contains("[upstream]"), "{err}");
    let (ok, out, err) = check(&no_cluster, &["--offline"]);
    assert!(ok, "{out}\n{err}");
}
