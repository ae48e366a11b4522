//! Warnings about policies that are valid but grant more than they seem to: ways to run code in
//! the cluster that kubetape does not record, and rules whose verbs reach resources they were
//! not written for.
//!
//! Why: a rule's verbs apply to every resource it lists, so the natural-looking
//! `resources = ["pods", "pods/exec"]`, `verbs = ["get", "create"]` also grants `create` on
//! `pods` — and a pod can run any command, with no recording. Each finding names the role, the
//! rule, what it grants, why that matters and how to write what was meant. `kubetape-gateway
//! check` prints them; with `--strict` they fail the check, and the shipped example policies
//! pass it.

use std::fmt;

use super::debug::DebugLimits;
use super::file::{Policy, Role, Rule};

/// One thing a policy grants that deserves a second look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `role "developer" rule 1`.
    pub place: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Subresources that open recorded streams: `create` (and `get`, for WebSocket kubectl) is all
/// they take.
const STREAMS: [&str; 3] = ["pods/exec", "pods/attach", "pods/portforward"];

/// Resources through which code runs in the cluster without going through a recorded stream.
const UNRECORDED: [(&str, &str, &str); 4] = [
    (
        "pods",
        "create",
        "a new pod runs any command unrecorded, so the gateway creates pods only within a role's [roles.debug] limits and this role has none: every such request is refused",
    ),
    (
        "nodes/proxy",
        "get",
        "the kubelet API behind it execs into any pod on the node, past the gateway",
    ),
    (
        "nodes/proxy",
        "create",
        "the kubelet API behind it execs into any pod on the node, past the gateway",
    ),
    (
        "pods/proxy",
        "create",
        "requests reach the pod's ports directly, unrecorded",
    ),
];

/// Every finding, in the policy's order.
pub fn lint(policy: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    for role in &policy.roles {
        for (i, rule) in role.rules.iter().enumerate() {
            let place = format!("role {:?} rule {}", role.name, i + 1);
            lint_rule(rule, role.debug.is_some(), &place, &mut out);
        }
        if let Some(debug) = &role.debug {
            lint_debug(role, debug, &mut out);
        }
    }
    out
}

/// Debug limits that allow more than they seem to, or that nothing can use.
fn lint_debug(role: &Role, debug: &DebugLimits, out: &mut Vec<Finding>) {
    let place = format!("role {:?} debug", role.name);
    let mut push = |message: String| {
        out.push(Finding {
            place: place.clone(),
            message,
        })
    };
    if debug.images.iter().any(|g| g == "*") {
        push("images = [\"*\"] lets a debug container run any image, with whatever tools it carries; list the debug images meant".into());
    }
    if debug.capabilities.iter().any(|c| c == "*") {
        push("capabilities = [\"*\"] allows every capability, SYS_ADMIN included (root on the node); list the capabilities meant".into());
    }
    let can_patch = role
        .rules
        .iter()
        .any(|r| grants(r, "pods/ephemeralcontainers", "patch"));
    let can_create = role.rules.iter().any(|r| grants(r, "pods", "create"));
    if !can_patch && !can_create {
        push("has debug limits but no rule grants patch on pods/ephemeralcontainers or create on pods, so they allow nothing".into());
    }
    if (debug.copy || debug.node) && !can_create {
        push(
            "copy or node debugging needs create on pods, which no rule of this role grants".into(),
        );
    }
}

fn grants(rule: &Rule, resource: &str, verb: &str) -> bool {
    let core = rule.api_groups.iter().any(|g| g.is_empty() || g == "*");
    let resource_match = rule.resources.iter().any(|r| {
        r == "*"
            || r == resource
            || (r.ends_with("/*") && resource.starts_with(&r[..r.len() - 1]))
            || (r.starts_with("*/") && resource.ends_with(&r[1..]))
    });
    let verb_match = rule.verbs.iter().any(|v| v == "*" || v == verb);
    core && resource_match && verb_match && rule.resource_names.is_empty()
}

fn lint_rule(rule: &Rule, debug: bool, place: &str, out: &mut Vec<Finding>) {
    let mut push = |message: String| {
        out.push(Finding {
            place: place.to_string(),
            message,
        })
    };
    if rule.verbs.iter().any(|v| v == "*") {
        push(
            "verbs = [\"*\"] grants every verb, today's and tomorrow's (delete, deletecollection, escalate, impersonate, ...); list the verbs meant".into(),
        );
    }
    if rule.resources.iter().any(|r| r == "*") {
        push(
            "resources = [\"*\"] covers every resource of the listed groups, secrets and pod creation among them; list the resources meant".into(),
        );
    }
    if rule.resources.iter().any(|r| r == "pods/*") {
        push("resources = [\"pods/*\"] covers every pod subresource (exec, attach, portforward, ephemeralcontainers, proxy, ...); list the subresources meant".into());
    }
    for verb in ["patch", "update"] {
        if !debug && grants(rule, "pods/ephemeralcontainers", verb) {
            push(format!(
                "grants {verb} on pods/ephemeralcontainers, but the role has no [roles.debug] table, so the gateway refuses every debug container; add one naming the images allowed"
            ));
        }
    }
    for (resource, verb, why) in UNRECORDED {
        // Pods a role with debug limits creates are held to them (images, privileges, host).
        if debug && resource == "pods" {
            continue;
        }
        if grants(rule, resource, verb) {
            let hint = if resource == "pods"
                && rule.resources.iter().any(|r| STREAMS.contains(&r.as_str()))
            {
                " — the rule lists stream subresources too, and its verbs apply to every resource it lists: put pods/exec, pods/attach, pods/portforward with verbs [\"create\"] in a rule of their own"
            } else {
                ""
            };
            push(format!("grants {verb} on {resource}: {why}{hint}"));
        }
    }
    // Verbs that mean nothing for stream subresources read as if they did something.
    if rule.resources.iter().any(|r| STREAMS.contains(&r.as_str())) {
        let stray: Vec<&str> = rule
            .verbs
            .iter()
            .map(String::as_str)
            .filter(|v| !["get", "create", "*"].contains(v))
            .collect();
        let only_streams = rule.resources.iter().all(|r| STREAMS.contains(&r.as_str()));
        if only_streams && !stray.is_empty() {
            push(format!(
                "verbs {stray:?} do nothing for exec, attach or port-forward (they are `create`); remove them"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &str) -> Policy {
        Policy::from_toml(
            &format!(
                "[[roles]]\nname = \"r\"\n{rules}\n[[bindings]]\nname = \"b\"\ngroups = [\"g\"]\nroles = [\"r\"]\n"
            ),
            "test",
        )
        .unwrap()
    }

    fn messages(p: &Policy) -> Vec<String> {
        lint(p).into_iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn verbs_that_reach_pod_creation_are_named_with_the_fix() {
        let p = policy(
            "[[roles.rules]]\nnamespaces = [\"dev\"]\nresources = [\"pods\", \"pods/log\", \"pods/exec\"]\nverbs = [\"get\", \"list\", \"create\"]",
        );
        let m = messages(&p);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with("role \"r\" rule 1: grants create on pods"),
            "{m:?}"
        );
        assert!(m[0].contains("a rule of their own"), "{m:?}");
    }

    #[test]
    fn rules_that_grant_exactly_what_they_mean_are_quiet() {
        let p = policy(
            "[[roles.rules]]\nnamespaces = [\"dev\"]\nresources = [\"pods\", \"pods/log\"]\nverbs = [\"get\", \"list\", \"watch\"]\n[[roles.rules]]\nnamespaces = [\"dev\"]\nresources = [\"pods/exec\", \"pods/attach\", \"pods/portforward\"]\nverbs = [\"create\"]",
        );
        assert!(messages(&p).is_empty(), "{:?}", messages(&p));
    }

    #[test]
    fn wildcards_debug_containers_and_node_proxies_are_named() {
        for (rules, expect) in [
            ("resources = [\"pods\"]\nverbs = [\"*\"]", "verbs = [\"*\"]"),
            (
                "resources = [\"*\"]\nverbs = [\"get\"]",
                "resources = [\"*\"]",
            ),
            ("resources = [\"pods/*\"]\nverbs = [\"create\"]", "pods/*"),
            (
                "resources = [\"pods/ephemeralcontainers\"]\nverbs = [\"patch\"]",
                "refuses every debug container",
            ),
            (
                "resources = [\"nodes/proxy\"]\nverbs = [\"get\"]",
                "kubelet API",
            ),
            (
                "resources = [\"pods/exec\"]\nverbs = [\"create\", \"delete\"]",
                "do nothing",
            ),
        ] {
            let p = policy(&format!("[[roles.rules]]\nnamespaces = [\"*\"]\n{rules}"));
            let m = messages(&p);
            assert!(m.iter().any(|m| m.contains(expect)), "{rules}: {m:?}");
        }
        // Named objects only: not a way to create arbitrary pods.
        let p = policy(
            "[[roles.rules]]\nnamespaces = [\"dev\"]\nresources = [\"pods\"]\nverbs = [\"create\"]\nresource_names = [\"fixed\"]",
        );
        assert!(messages(&p).is_empty());
    }
}

#[cfg(test)]
mod debug_tables {
    use super::*;

    fn role(rules: &str, debug: &str) -> Vec<String> {
        let p = Policy::from_toml(
            &format!("[[roles]]\nname = \"r\"\n{rules}\n[roles.debug]\n{debug}\n"),
            "test",
        )
        .unwrap();
        lint(&p).into_iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn debug_limits_are_linted() {
        let patch = "[[roles.rules]]\nnamespaces = [\"dev\"]\nresources = [\"pods/ephemeralcontainers\"]\nverbs = [\"patch\"]";
        let create =
            "[[roles.rules]]\nnamespaces = [\"dev\"]\nresources = [\"pods\"]\nverbs = [\"create\"]";
        // What the quickstart grants: quiet (pod creation is held to the limits).
        assert!(
            role(
                &format!("{patch}\n{create}"),
                "images = [\"busybox\"]\ncopy = true"
            )
            .is_empty()
        );
        let m = role(
            patch,
            "images = [\"*\"]\ncapabilities = [\"*\"]\nnode = true",
        );
        assert!(m.iter().any(|m| m.contains("run any image")), "{m:?}");
        assert!(m.iter().any(|m| m.contains("every capability")), "{m:?}");
        assert!(
            m.iter().any(|m| m.contains("needs create on pods")),
            "{m:?}"
        );
        let m = role(
            "[[roles.rules]]\nnamespaces = [\"dev\"]\nresources = [\"pods/exec\"]\nverbs = [\"create\"]",
            "images = [\"busybox\"]",
        );
        assert!(m.iter().any(|m| m.contains("allow nothing")), "{m:?}");
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    /// Every policy the project ships passes the lint: examples teach what people copy.
    #[test]
    fn the_shipped_policies_grant_exactly_what_they_mean() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in [
            "gateway/policy.example.toml",
            "deploy/base/policy.toml",
            "deploy/overlays/example/policy.toml",
        ] {
            let policy = Policy::load(&root.join(file)).unwrap();
            let findings = lint(&policy);
            assert!(findings.is_empty(), "{file}: {findings:#?}");
        }
    }
}
