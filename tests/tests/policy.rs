//! The access policy through the gateway with real kubectl: what a developer group and a CI job
//! from a second issuer may do (and nothing more), denials that name the missing rule, and a
//! policy file edited while the gateway runs (a bad edit keeps the old policy serving).

use std::time::Duration;

use tests::{Cluster, DEFAULT_POLICY, Kubectl, run};

const T: Duration = Duration::from_secs(60);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn policy_matrix_for_a_developer_group_and_a_ci_pipeline() {
    let Some(kubectl) = Kubectl::V1_33.path() else {
        return;
    };
    let cluster = Cluster::start();
    let kc = |path: &std::path::Path| cluster.kubectl(&kubectl, path);

    // A developer: pods and exec in staging; only reads in prod.
    let dev = cluster.kubeconfig("dan@example.com", &["developers"]);
    let (code, out, err) = run(kc(&dev).args(["get", "pods", "-n", "staging"]), b"", T);
    assert_eq!(code, Some(0), "{}", text(&err));
    assert!(text(&out).contains("web"), "{}", text(&out));
    let (code, out, err) = run(
        kc(&dev).args(["exec", "-n", "staging", "web", "--", "echo", "in-staging"]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", text(&err));
    assert_eq!(text(&out), "in-staging\n");
    let (code, _, err) = run(
        kc(&dev).args(["exec", "-n", "prod", "db", "--", "echo", "in-prod"]),
        b"",
        T,
    );
    assert_ne!(code, Some(0));
    let err = text(&err);
    for part in [
        "user \"dan@example.com\" (groups: developers) may not create pods/exec \"db\" in namespace \"prod\"",
        "allows verb \"create\" on resource \"pods/exec\" in namespace \"prod\"",
        "kubetape request prod-debug --namespace prod --reason TEXT --ttl 30m (approvers: sre",
    ] {
        assert!(err.contains(part), "missing {part:?} in:\n{err}");
    }

    // The staging deploy job of acme/shop, from the CI issuer: reads pods and logs in staging.
    let job = [
        ("repository", "acme/shop"),
        ("environment", "staging"),
        ("job_id", "4711"),
    ];
    let ci = cluster.kubeconfig_ci("repo:acme/shop:environment:staging", &job, &[]);
    let (code, out, err) = run(kc(&ci).args(["get", "pods", "-n", "staging"]), b"", T);
    assert_eq!(code, Some(0), "{}", text(&err));
    assert!(text(&out).contains("web"), "{}", text(&out));
    let (code, _, err) = run(kc(&ci).args(["logs", "-n", "staging", "web"]), b"", T);
    assert_eq!(code, Some(0), "{}", text(&err));
    let ci_user = "ci:repo:acme/shop:environment:staging";
    // ... and nothing else: no exec, no other namespace, no writes.
    let denied: [(&[&str], &str); 4] = [
        (
            &["exec", "-n", "staging", "web", "--", "true"],
            "may not create pods/exec \"web\" in namespace \"staging\"",
        ),
        (
            &["get", "pods", "-n", "default"],
            "may not list pods in namespace \"default\"",
        ),
        (
            &["get", "pods", "-n", "prod"],
            "may not list pods in namespace \"prod\"",
        ),
        (
            &["delete", "pod", "-n", "staging", "web", "--wait=false"],
            "may not delete pods \"web\" in namespace \"staging\"",
        ),
    ];
    for (args, want) in denied {
        let (code, _, err) = run(kc(&ci).args(args), b"", T);
        assert_ne!(code, Some(0), "{args:?} was allowed");
        let err = text(&err);
        assert!(
            err.contains(&format!("user {ci_user:?} (groups: none) {want}")),
            "{args:?}: {err}"
        );
    }
    // Another repository's job, or a CI token claiming a group, gets nothing: the binding
    // matches claims, and the CI issuer maps no groups.
    let other = cluster.kubeconfig_ci(
        "repo:acme/other:environment:staging",
        &[("repository", "acme/other"), ("environment", "staging")],
        &["developers"],
    );
    for ns in ["staging", "default"] {
        let (code, _, err) = run(kc(&other).args(["get", "pods", "-n", ns]), b"", T);
        assert_ne!(code, Some(0), "acme/other allowed in {ns}");
        assert!(
            text(&err).contains("(groups: none) may not list pods"),
            "{}",
            text(&err)
        );
    }

    // The cluster saw only what was allowed.
    let requests = cluster.sandbox_requests();
    for r in &requests {
        let path = r["path"].as_str().unwrap_or_default();
        let user = r["impersonate_user"].as_str().unwrap_or_default();
        assert!(!path.contains("/namespaces/prod/pods/db/exec"), "{r:#}");
        assert_ne!(r["method"], "DELETE", "{r:#}");
        if user.starts_with("ci:") {
            assert_eq!(user, ci_user, "{r:#}");
            assert!(
                path.starts_with("/api/v1/namespaces/staging/pods") && !path.contains("/exec")
                    || !path.contains("/namespaces/"),
                "a CI request outside its binding reached the cluster: {r:#}"
            );
            assert!(
                r["impersonate_groups"].as_array().is_none_or(Vec::is_empty),
                "{r:#}"
            );
        }
    }
    assert!(
        requests.iter().any(|r| r["impersonate_user"] == ci_user
            && r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/api/v1/namespaces/staging/pods?"))),
        "the CI job's allowed list reached the cluster as itself: {requests:#?}"
    );
    assert_eq!(
        cluster.sessions().len(),
        1,
        "only the developer's staging exec was recorded"
    );
}

#[test]
fn a_bad_policy_file_is_rejected_and_the_old_policy_keeps_serving() {
    let Some(kubectl) = Kubectl::V1_33.path() else {
        return;
    };
    let cluster = Cluster::start();
    let dev = cluster.kubeconfig("dan@example.com", &["developers"]);
    let get_staging = || {
        run(
            cluster
                .kubectl(&kubectl, &dev)
                .args(["get", "pods", "-n", "staging"]),
            b"",
            T,
        )
    };
    assert_eq!(get_staging().0, Some(0));

    // exec is not a verb: the file is refused with the role, the rule and the fix.
    let bad = DEFAULT_POLICY.replacen(
        "verbs = [\"get\", \"list\", \"watch\", \"create\"]",
        "verbs = [\"get\", \"list\", \"watch\", \"exec\"]",
        1,
    );
    assert_ne!(bad, DEFAULT_POLICY);
    let line = cluster.replace_policy(&bad, "policy file rejected");
    assert!(
        line.contains("role \"developer\" rule 1: unknown verb \"exec\" (exec is verb \"create\" on resource \"pods/exec\")"),
        "{line}"
    );
    let (code, out, err) = get_staging();
    assert_eq!(code, Some(0), "the last good policy serves: {}", text(&err));
    assert!(text(&out).contains("web"));

    // A good edit applies without a restart: developers lose staging.
    let narrower = DEFAULT_POLICY.replacen(
        "namespaces = [\"default\", \"staging\"]",
        "namespaces = [\"default\"]",
        1,
    );
    assert_ne!(narrower, DEFAULT_POLICY);
    cluster.replace_policy(&narrower, "policy reloaded");
    let (code, _, err) = get_staging();
    assert_ne!(code, Some(0));
    assert!(
        text(&err).contains("may not list pods in namespace \"staging\""),
        "{}",
        text(&err)
    );
}

/// A binding's `max_session` ends a live session with a message, on both client protocols.
#[test]
fn max_session_ends_live_sessions() {
    let policy = tests::DEFAULT_POLICY.replacen(
        "groups = [\"developers\"]\nroles = [\"developer\"]",
        "groups = [\"developers\"]\nroles = [\"developer\"]\nmax_session = \"2s\"",
        1,
    );
    assert_ne!(policy, tests::DEFAULT_POLICY);
    let cluster = Cluster::start_with_policy(&policy);
    let dev = cluster.kubeconfig("dan@example.com", &["developers"]);
    // 1.27 speaks SPDY, 1.33 WebSocket.
    for version in [Kubectl::V1_27, Kubectl::V1_33] {
        let Some(kubectl) = version.path() else {
            continue;
        };
        let started = std::time::Instant::now();
        // `cat` would wait for input forever; stdin stays open (run keeps it until exit).
        let (code, out, err) = tests::run_with_open_stdin(
            cluster.kubectl(&kubectl, &dev).args([
                "exec",
                "-i",
                "-n",
                "staging",
                "web",
                "--",
                "sh",
                "-c",
                "echo up; cat",
            ]),
            b"",
            T,
        );
        let elapsed = started.elapsed();
        assert_ne!(code, Some(0), "{version:?}");
        assert_eq!(text(&out), "up\n", "{version:?}");
        assert!(
            text(&err).contains("maximum session length of 2s set by the access policy"),
            "{version:?}: {}",
            text(&err)
        );
        assert!(
            elapsed >= Duration::from_secs(2),
            "{version:?}: {elapsed:?}"
        );
    }
}
