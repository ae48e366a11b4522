//! Discovery: `/version`, `/api`, `/apis`, `/api/v1`. Only the legacy (unaggregated) forms:
//! kubectl ≥ 1.27 asks for aggregated discovery (`as=APIGroupDiscoveryList`) first, but falls
//! back to these when the response's Content-Type is plain `application/json`.

use serde_json::{Value, json};

use crate::cluster::Cluster;

/// `GET /version`.
pub(crate) fn version(cluster: &Cluster) -> Value {
    let v = cluster.kubernetes_version.trim_start_matches('v');
    let mut parts = v.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("33");
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{v}"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `GET /api`.
pub(crate) fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    })
}

/// `GET /apis`: no groups beyond the core one.
pub(crate) fn api_groups() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
}

fn resource(name: &str, kind: &str, namespaced: bool, verbs: &[&str], short: &[&str]) -> Value {
    let singular = if name.contains('/') { "" } else { kind };
    let mut r = json!({
        "name": name,
        "singularName": singular.to_lowercase(),
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if !short.is_empty() {
        r["shortNames"] = json!(short);
    }
    if name == "pods" {
        r["categories"] = json!(["all"]);
    }
    r
}

/// `GET /api/v1`: the resources the sandbox serves, with the verbs and kinds of a real server.
pub(crate) fn core_v1_resources() -> Value {
    const CRUD: &[&str] = &[
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            resource("events", "Event", true, CRUD, &["ev"]),
            resource("namespaces", "Namespace", false, &["create", "delete", "get", "list", "patch", "update", "watch"], &["ns"]),
            resource("nodes", "Node", false, CRUD, &["no"]),
            resource("pods", "Pod", true, CRUD, &["po"]),
            resource("pods/attach", "PodAttachOptions", true, &["create", "get"], &[]),
            resource("pods/ephemeralcontainers", "Pod", true, &["get", "patch", "update"], &[]),
            resource("pods/exec", "PodExecOptions", true, &["create", "get"], &[]),
            resource("pods/log", "Pod", true, &["get"], &[]),
            resource("pods/portforward", "PodPortForwardOptions", true, &["create", "get"], &[]),
            resource("pods/status", "Pod", true, &["get", "patch", "update"], &[]),
            resource("namespaces/status", "Namespace", false, &["get", "patch", "update"], &[]),
        ],
    })
}
