//! `kubectl debug` through the gateway, with kubectl 1.27, 1.30, 1.33 and 1.37 against one
//! sandbox: an ephemeral busybox container attached in a real terminal (prompt, command, exit
//! code), recorded as a debug session with its image, profile and target; refusals that name
//! the field and the rule for images, profiles and roles that do not allow them, none of which
//! reach the cluster; `--copy-to` and `debug node/NAME` where the role allows them, refused
//! where it does not.

use std::path::Path;
use std::time::Duration;

use tests::{Cluster, Kubectl, run};

const T: Duration = Duration::from_secs(120);

/// The quickstart's developer (debug in `default` with busybox; copies allowed, nodes not), an
/// SRE role that may debug nodes, and operators whose role has the patch rule but no debug
/// limits.
const POLICY: &str = r#"
[[roles]]
name = "developer"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods", "pods/log", "pods/exec", "pods/attach"]
verbs = ["get", "list", "watch", "create"]
[[roles.rules]]
namespaces = ["default"]
resources = ["pods/ephemeralcontainers"]
verbs = ["patch"]
[[roles.rules]]
namespaces = ["*"]
resources = ["nodes"]
verbs = ["get"]
[roles.debug]
images = ["busybox", "busybox:*", "kubetape-sandbox/*"]
copy = true

[[roles]]
name = "node-debugger"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods", "pods/log", "pods/attach"]
verbs = ["get", "list", "watch", "create"]
[[roles.rules]]
namespaces = ["*"]
resources = ["nodes"]
verbs = ["get"]
[roles.debug]
images = ["busybox"]
node = true

[[roles]]
name = "exec-only"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods", "pods/exec", "pods/attach", "pods/ephemeralcontainers"]
verbs = ["get", "list", "watch", "create", "patch"]

[[roles]]
name = "baseline-debugger"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods", "pods/attach", "pods/ephemeralcontainers"]
verbs = ["get", "list", "watch", "create", "patch"]
[roles.debug]
images = ["busybox"]
profiles = ["baseline", "restricted"]

[[bindings]]
name = "baseline"
groups = ["baseline"]
roles = ["baseline-debugger"]

[[bindings]]
name = "developers"
groups = ["developers"]
roles = ["developer"]

[[bindings]]
name = "sre"
groups = ["sre"]
roles = ["node-debugger"]

[[bindings]]
name = "operators"
groups = ["operators"]
roles = ["exec-only"]
"#;

const VERSIONS: [Kubectl; 4] = [
    Kubectl::V1_27,
    Kubectl::V1_30,
    Kubectl::V1_33,
    Kubectl::V1_37,
];

fn kubectl(
    cluster: &Cluster,
    bin: &Path,
    kc: &Path,
    args: &[&str],
    stdin: &[u8],
) -> (i32, String, String) {
    let mut cmd = cluster.kubectl(bin, kc);
    cmd.args(args);
    let (code, out, err) = run(&mut cmd, stdin, T);
    (
        code.unwrap_or(-1),
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// `kubectl debug -it demo --image=busybox --target=shell -- sh` in tmux, as a developer.
fn debug_it(cluster: &Cluster, version: Kubectl) {
    let Some(bin) = version.path() else { return };
    let kc = cluster.kubeconfig("dana@example.com", &["developers"]);
    tests::debug_checks::debug_it(version, &bin, &kc, &cluster.home);
}

fn expect_refused(what: &str, (code, _, err): (i32, String, String), texts: &[&str]) {
    assert_ne!(code, 0, "{what}: kubectl succeeded");
    for t in texts {
        assert!(err.contains(t), "{what}: {t:?} not in:\n{err}");
    }
}

#[test]
fn kubectl_debug_through_the_gateway() {
    let cluster = Cluster::start_with_policy(POLICY);

    // 1. -it with every version, side by side.
    std::thread::scope(|s| {
        for v in VERSIONS {
            let cluster = &cluster;
            s.spawn(move || debug_it(cluster, v));
        }
    });
    let present = VERSIONS.iter().filter(|v| v.path().is_some()).count();
    let sessions = cluster.wait_for_sealed_count(present);
    let debug: Vec<&serde_json::Value> = sessions
        .iter()
        .filter(|s| s["meta"]["kind"] == "debug")
        .collect();
    assert_eq!(debug.len(), present, "{sessions:#?}");
    for s in &debug {
        let d = &s["meta"]["debug"];
        assert_eq!(d["form"], "ephemeral", "{s:#}");
        assert_eq!(d["image"], "busybox", "{s:#}");
        assert_eq!(d["target"], "shell", "{s:#}");
        assert!(
            ["legacy", "general"].contains(&d["profile"].as_str().unwrap_or("")),
            "{s:#}"
        );
        assert!(
            d["rule"].as_str().unwrap().contains("role developer"),
            "{s:#}"
        );
        assert_eq!(s["meta"]["identity"]["user"], "dana@example.com");
        assert_eq!(s["exit"]["code"], 3, "{s:#}");
        assert!(
            s["meta"]["target"]["container"]
                .as_str()
                .unwrap()
                .starts_with("debugger-"),
            "{s:#}"
        );
    }
    // `ls` marks them.
    let (code, table, _) = run(cluster.kubetape().arg("ls"), b"", T);
    assert_eq!(code, Some(0));
    assert_eq!(
        String::from_utf8_lossy(&table)
            .matches("[debug busybox]")
            .count(),
        present
    );
    let patches = |c: &Cluster| {
        c.sandbox_requests()
            .iter()
            .filter(|r| {
                r["method"] == "PATCH"
                    && r["path"]
                        .as_str()
                        .is_some_and(|p| p.contains("/ephemeralcontainers"))
            })
            .count()
    };
    let posts = |c: &Cluster| {
        c.sandbox_requests()
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"] == "/api/v1/namespaces/default/pods")
            .count()
    };
    assert_eq!(patches(&cluster), present);

    // 2. Refusals name the field and the rule, and nothing refused reaches the cluster.
    let dev = cluster.kubeconfig("dana@example.com", &["developers"]);
    let ops = cluster.kubeconfig("otto@example.com", &["operators"]);
    let sre = cluster.kubeconfig("sam@example.com", &["sre"]);
    let sre_baseline = cluster.kubeconfig("bea@example.com", &["baseline"]);
    for v in [Kubectl::V1_27, Kubectl::V1_33] {
        let Some(bin) = v.path() else { continue };
        let debug = |kc: &Path, extra: &[&str]| {
            let mut args = vec!["debug", "demo", "-i", "--target=shell"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["--", "true"]);
            kubectl(&cluster, &bin, kc, &args, b"")
        };
        expect_refused(
            "an image the role does not allow",
            debug(&dev, &["--image=alpine:3"]),
            &[
                "kubetape:",
                "image \"alpine:3\"",
                "role \"developer\" debug.images",
            ],
        );
        // kubectl 1.27 knows legacy, general, baseline and restricted only.
        if v == Kubectl::V1_27 {
            expect_refused(
                "the general profile's capability, for a role allowing only baseline",
                debug(&sre_baseline, &["--image=busybox", "--profile=general"]),
                &[
                    "capability SYS_PTRACE",
                    "role \"baseline-debugger\" debug.profiles",
                ],
            );
        } else {
            expect_refused(
                "the sysadmin profile",
                debug(&dev, &["--image=busybox", "--profile=sysadmin"]),
                &[
                    "securityContext.privileged",
                    "role \"developer\" debug.profiles",
                ],
            );
            expect_refused(
                "the netadmin profile",
                debug(&dev, &["--image=busybox", "--profile=netadmin"]),
                &["capability NET_", "role \"developer\" debug.profiles"],
            );
        }
        expect_refused(
            "a role with no debug limits",
            debug(&ops, &["--image=busybox"]),
            &["role \"exec-only\" allows no debugging"],
        );
        expect_refused(
            "node debugging for the developer",
            kubectl(
                &cluster,
                &bin,
                &dev,
                &[
                    "debug",
                    "node/sandbox",
                    "-i",
                    "--image=busybox",
                    "--",
                    "true",
                ],
                b"",
            ),
            &["role \"developer\" debug.node"],
        );
        expect_refused(
            "a copy for a role without copy",
            kubectl(
                &cluster,
                &bin,
                &sre,
                &[
                    "debug",
                    "demo",
                    "-i",
                    "--copy-to=refused-copy",
                    "--image=busybox",
                    "--",
                    "true",
                ],
                b"",
            ),
            &["role \"node-debugger\" debug.copy"],
        );
    }
    assert_eq!(
        patches(&cluster),
        present,
        "a refused patch reached the cluster"
    );
    assert_eq!(posts(&cluster), 0, "a refused pod reached the cluster");

    // 3. --copy-to and node/NAME where the role allows them (JSON from 1.27, protobuf after).
    let mut created = 0;
    for (i, v) in [Kubectl::V1_27, Kubectl::V1_37].into_iter().enumerate() {
        let Some(bin) = v.path() else { continue };
        let copy = format!("demo-copy-{i}");
        let (code, out, err) = kubectl(
            &cluster,
            &bin,
            &dev,
            &[
                "debug",
                "demo",
                "-i",
                &format!("--copy-to={copy}"),
                "--image=busybox",
                "--",
                "sh",
                "-c",
                "read x; echo copy got $x on $HOSTNAME",
            ],
            b"hello\n",
        );
        assert_eq!(code, 0, "{v:?}: {err}");
        assert!(
            out.contains(&format!("copy got hello on {copy}")),
            "{v:?}: {out}"
        );
        let (code, out, err) = kubectl(
            &cluster,
            &bin,
            &sre,
            &[
                "debug",
                "node/sandbox",
                "-i",
                "--image=busybox",
                "--",
                "sh",
                "-c",
                "read x; echo node got $x",
            ],
            b"hi\n",
        );
        assert_eq!(code, 0, "{v:?}: {err}");
        assert!(out.contains("node got hi"), "{v:?}: {out}");
        created += 2;
    }
    assert_eq!(posts(&cluster), created);
    let sessions = cluster.wait_for_sealed_count(present + created);
    let forms: Vec<&str> = sessions
        .iter()
        .filter_map(|s| s["meta"]["debug"]["form"].as_str())
        .collect();
    assert_eq!(
        forms.iter().filter(|f| **f == "copy").count(),
        created / 2,
        "{forms:?}"
    );
    assert_eq!(
        forms.iter().filter(|f| **f == "node").count(),
        created / 2,
        "{forms:?}"
    );
}
