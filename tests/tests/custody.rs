//! The read policy end to end: a gateway configured with `[custody] reason_required` publishes
//! it to the store at start, and `kubetape` then refuses to read (cat, export) a recording of a
//! matching namespace without `--reason`, logs the reason when one is given, and reads other
//! namespaces' recordings as before. A gateway restarted with the same policy, or without the
//! setting, writes nothing new; an explicit empty list lifts the policy.

use std::path::Path;
use std::time::Duration;

use tests::{Cluster, Kubectl, run};

const T: Duration = Duration::from_secs(60);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The session `kubetape ls --json` lists in `namespace`.
fn session_in(sessions: &[serde_json::Value], namespace: &str) -> String {
    let found: Vec<&serde_json::Value> = sessions
        .iter()
        .filter(|s| s["meta"]["target"]["namespace"] == namespace)
        .collect();
    assert_eq!(found.len(), 1, "{sessions:#?}");
    found[0]["session"]
        .as_str()
        .expect("session id")
        .to_string()
}

/// Entries of the store's read-policy ledger.
fn policy_entries(cluster: &Cluster) -> usize {
    let store = cluster
        .store_url
        .strip_prefix("file://")
        .expect("file:// store");
    std::fs::read_dir(Path::new(store).join(storage_schema::layout::READ_POLICY))
        .map_or(0, |d| d.count())
}

#[test]
fn a_namespace_the_policy_names_is_read_only_with_a_reason() {
    let Some(kubectl) = Kubectl::V1_33.path() else {
        return;
    };
    let mut cluster = Cluster::start();
    let alice = cluster.kubeconfig("alice@example.com", &["developers"]);
    for (ns, pod, word) in [("default", "demo", "plain"), ("staging", "web", "secret")] {
        let (code, out, err) = run(
            cluster
                .kubectl(&kubectl, &alice)
                .args(["exec", "-n", ns, pod, "--", "echo", word]),
            b"",
            T,
        );
        assert_eq!(code, Some(0), "{}", text(&err));
        assert_eq!(text(&out), format!("{word}\n"));
    }
    let sessions = cluster.wait_for_sealed_count(2);
    let (plain, secret) = (
        session_in(&sessions, "default"),
        session_in(&sessions, "staging"),
    );
    assert_eq!(
        policy_entries(&cluster),
        0,
        "no [custody]: nothing published"
    );

    // The organisation's policy, in the gateways' configuration; a gateway started with it
    // publishes it.
    let config = cluster.gateway_config();
    let without = std::fs::read_to_string(&config).expect("gateway config");
    let toml = format!("{without}\n[custody]\nreason_required = [\"stag*\", \"payments\"]\n");
    std::fs::write(&config, toml).expect("write gateway config");
    cluster.start_second_gateway();
    assert_eq!(policy_entries(&cluster), 1);

    let reads = |cluster: &Cluster| -> Vec<serde_json::Value> {
        let out = cluster
            .kubetape()
            .args(["audit", "--reads", "--json"])
            .output()
            .expect("kubetape audit --reads");
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };
    let before = reads(&cluster).len();

    // Without a reason: refused, saying why, nothing read and nothing logged.
    for args in [
        vec!["cat", secret.as_str()],
        vec!["export", secret.as_str(), "--format", "text"],
    ] {
        let out = cluster.kubetape().args(&args).output().expect("kubetape");
        assert!(!out.status.success(), "{args:?} read without a reason");
        let err = text(&out.stderr);
        assert!(
            err.contains("needs --reason") && err.contains("stag*") && err.contains("staging"),
            "{args:?}: {err}"
        );
        assert!(
            !text(&out.stdout).contains("secret"),
            "{args:?} printed content"
        );
    }
    assert_eq!(
        reads(&cluster).len(),
        before,
        "a refused reading was logged"
    );

    // With a reason: read, and the reason is in the reads log.
    let out = cluster
        .kubetape()
        .args(["cat", &secret, "--reason", "INC-7 checking what ran"])
        .output()
        .expect("kubetape cat");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("secret"));
    let logged = reads(&cluster);
    assert_eq!(logged.len(), before + 1);
    let entry = logged.last().expect("an entry");
    assert_eq!(entry["session"], secret.as_str(), "{entry:#}");
    assert_eq!(entry["reason"], "INC-7 checking what ran", "{entry:#}");

    // A namespace the policy does not name reads as before.
    let out = cluster
        .kubetape()
        .args(["cat", &plain])
        .output()
        .expect("kubetape cat");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("plain"));

    // Another gateway with the same policy publishes nothing new, and neither does one
    // without the setting: it must not lift a policy another gateway published.
    cluster.start_second_gateway();
    assert_eq!(policy_entries(&cluster), 1);
    std::fs::write(&config, &without).expect("write gateway config");
    cluster.start_second_gateway();
    assert_eq!(policy_entries(&cluster), 1);
    let out = cluster
        .kubetape()
        .args(["cat", &secret])
        .output()
        .expect("kubetape cat");
    assert!(
        !out.status.success(),
        "the policy was lifted by a gateway without [custody]"
    );

    // An explicit empty list lifts it.
    std::fs::write(
        &config,
        format!("{without}\n[custody]\nreason_required = []\n"),
    )
    .expect("write gateway config");
    cluster.start_second_gateway();
    assert_eq!(policy_entries(&cluster), 2);
    let out = cluster
        .kubetape()
        .args(["cat", &secret])
        .output()
        .expect("kubetape cat");
    assert!(out.status.success(), "{}", text(&out.stderr));
}
