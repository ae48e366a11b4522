//! What a request asks to do, derived from its method, path and query the way the Kubernetes
//! API server's `RequestInfo` does, so that policy rules read like RBAC rules.
//!
//! ```text
//! /api/v1/namespaces/{ns}/{resource}/{name}/{subresource}      core group ("")
//! /apis/{group}/{version}/namespaces/{ns}/{resource}/{name}/…  named groups
//! /api/v1/{resource}[/{name}]                                  cluster-scoped (or all namespaces)
//! /api, /apis, /apis/{group}[/{version}], /version, /openapi/… non-resource (discovery)
//! ```
//!
//! Verbs: GET/HEAD → `get`, or `list` without a name (`watch` with `?watch=true` or the legacy
//! `/watch/` prefix); POST → `create`; PUT → `update`; PATCH → `patch`; DELETE → `delete`, or
//! `deletecollection` without a name.
//!
//! **Streams are `create`.** `pods/exec`, `pods/attach` and `pods/portforward` are decided as verb
//! `create` whatever the HTTP method: kubectl ≥ 1.30 opens them with a WebSocket `GET`, older
//! ones with a SPDY `POST`, and a rule must not allow a shell through one protocol and refuse it
//! through the other (Kubernetes RBAC asks for `create` on these subresources too).

use std::fmt;

/// The verbs a policy rule may name (besides `*`).
pub const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// Subresources of the namespace object (`/api/v1/namespaces/{ns}/status`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Subresources that open an interactive stream: always verb `create`.
const STREAM_SUBRESOURCES: [&str; 3] = ["exec", "attach", "portforward"];

/// A request as authorization sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    /// Discovery, `/version`, OpenAPI, health: `method` is the lower-case HTTP method.
    NonResource {
        path: String,
        method: String,
    },
    Resource(ResourceRequest),
    /// A path the gateway will not interpret: percent-escapes, `.`/`..` or empty segments.
    /// The API server decodes and splits paths its own way; rather than guess how, such paths
    /// are always denied (kubectl never sends them, and no Kubernetes name contains `%`).
    Invalid {
        path: String,
    },
}

/// A request on an API resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or the
    /// lower-case HTTP method when it maps to none of them (no rule can name it, so it is denied).
    pub verb: String,
    /// `""` for the core group.
    pub api_group: String,
    pub version: String,
    /// Empty for cluster-scoped requests (and lists across all namespaces).
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    /// Empty for collections.
    pub name: String,
}

impl ResourceRequest {
    /// `pods/exec`, or `pods` without a subresource: how rules name resources.
    pub fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

impl fmt::Display for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attributes::NonResource { path, method } => write!(f, "{method} {path}"),
            Attributes::Invalid { path } => write!(f, "use the path {path:?}"),
            Attributes::Resource(r) => {
                write!(f, "{} {}", r.verb, r.resource_path())?;
                if !r.api_group.is_empty() {
                    write!(f, ".{}", r.api_group)?;
                }
                if !r.name.is_empty() {
                    write!(f, " {:?}", r.name)?;
                }
                if r.namespace.is_empty() {
                    write!(f, " (cluster-wide)")
                } else {
                    write!(f, " in namespace {:?}", r.namespace)
                }
            }
        }
    }
}

/// Derives the attributes of a request. Total: every input gives an answer (a path that is not
/// an API resource is non-resource, which only reads are allowed on).
pub fn parse(method: &str, path: &str, query: Option<&str>) -> Attributes {
    let method_lc = method.to_ascii_lowercase();
    let non_resource = || Attributes::NonResource {
        path: path.to_string(),
        method: method_lc.clone(),
    };
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let parts: Vec<&str> = trimmed.split('/').collect();
    if path.contains(['%', '\\'])
        || (!trimmed.is_empty()
            && parts
                .iter()
                .any(|p| p.is_empty() || *p == "." || *p == ".."))
    {
        return Attributes::Invalid {
            path: path.to_string(),
        };
    }
    let (api_group, version, mut rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return non_resource(),
    };
    let mut verb = match method_lc.as_str() {
        "get" | "head" => "get",
        "post" => "create",
        "put" => "update",
        "patch" => "patch",
        "delete" => "delete",
        other => other,
    }
    .to_string();
    // The legacy `/watch/` prefix.
    if rest.first() == Some(&"watch") && verb == "get" {
        verb = "watch".into();
        rest = &rest[1..];
    }
    let mut namespace = String::new();
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        namespace = rest[1].to_string();
        // `/namespaces/{ns}` (and its `status`, `finalize`) is the namespace object itself:
        // resource namespaces, name ns, as the API server has it.
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
        }
    }
    let resource = rest.first().copied().unwrap_or_default().to_string();
    let name = rest.get(1).copied().unwrap_or_default().to_string();
    let subresource = rest.get(2).copied().unwrap_or_default().to_string();
    if resource.is_empty() {
        return non_resource();
    }

    let query_value = |key: &str| {
        query
            .unwrap_or_default()
            .split('&')
            .filter_map(|p| p.split_once('=').or(Some((p, ""))))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    };
    if name.is_empty() {
        match verb.as_str() {
            "get" => {
                verb = if matches!(query_value("watch").as_deref(), Some("true" | "1")) {
                    "watch".into()
                } else {
                    "list".into()
                };
            }
            "delete" => verb = "deletecollection".into(),
            _ => {}
        }
    }
    if resource == "pods" && STREAM_SUBRESOURCES.contains(&subresource.as_str()) {
        verb = "create".into();
    }
    Attributes::Resource(ResourceRequest {
        verb,
        api_group: api_group.to_string(),
        version: version.to_string(),
        namespace,
        resource,
        subresource,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (verb, group, namespace, resource, subresource, name).
    type Want<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str);

    /// (method, path, query) → [`Want`].
    #[test]
    fn request_info_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, Option<&str>, Want<'_>)] = &[
            ("GET", "/api/v1/namespaces/staging/pods", None, ("list", "", "staging", "pods", "", "")),
            ("GET", "/api/v1/namespaces/staging/pods", Some("watch=true&resourceVersion=1"), ("watch", "", "staging", "pods", "", "")),
            ("GET", "/api/v1/watch/namespaces/staging/pods", None, ("watch", "", "staging", "pods", "", "")),
            ("GET", "/api/v1/namespaces/staging/pods/web", None, ("get", "", "staging", "pods", "", "web")),
            ("HEAD", "/api/v1/namespaces/staging/pods/web", None, ("get", "", "staging", "pods", "", "web")),
            ("GET", "/api/v1/namespaces/staging/pods/web/log", Some("follow=true"), ("get", "", "staging", "pods", "log", "web")),
            ("GET", "/api/v1/namespaces/prod/pods/db/exec", Some("command=sh&stdin=true"), ("create", "", "prod", "pods", "exec", "db")),
            ("POST", "/api/v1/namespaces/prod/pods/db/exec", None, ("create", "", "prod", "pods", "exec", "db")),
            ("GET", "/api/v1/namespaces/prod/pods/db/attach", None, ("create", "", "prod", "pods", "attach", "db")),
            ("GET", "/api/v1/namespaces/prod/pods/db/portforward", None, ("create", "", "prod", "pods", "portforward", "db")),
            ("PATCH", "/api/v1/namespaces/prod/pods/db/ephemeralcontainers", None, ("patch", "", "prod", "pods", "ephemeralcontainers", "db")),
            ("POST", "/api/v1/namespaces/staging/pods", None, ("create", "", "staging", "pods", "", "")),
            ("PUT", "/api/v1/namespaces/staging/configmaps/c", None, ("update", "", "staging", "configmaps", "", "c")),
            ("DELETE", "/api/v1/namespaces/staging/pods/web", None, ("delete", "", "staging", "pods", "", "web")),
            ("DELETE", "/api/v1/namespaces/staging/pods", None, ("deletecollection", "", "staging", "pods", "", "")),
            ("GET", "/apis/apps/v1/namespaces/dev/deployments/api/scale", None, ("get", "apps", "dev", "deployments", "scale", "api")),
            ("GET", "/apis/apps/v1/deployments", None, ("list", "apps", "", "deployments", "", "")),
            ("GET", "/api/v1/pods", None, ("list", "", "", "pods", "", "")),
            ("GET", "/api/v1/nodes/n1", None, ("get", "", "", "nodes", "", "n1")),
            ("GET", "/api/v1/namespaces", None, ("list", "", "", "namespaces", "", "")),
            ("GET", "/api/v1/namespaces/prod", None, ("get", "", "prod", "namespaces", "", "prod")),
            ("PUT", "/api/v1/namespaces/prod/finalize", None, ("update", "", "prod", "namespaces", "finalize", "prod")),
            ("GET", "/api/v1/namespaces/prod/pods/", None, ("list", "", "prod", "pods", "", "")),
            ("OPTIONS", "/api/v1/namespaces/prod/pods", None, ("options", "", "prod", "pods", "", "")),
        ];
        for (method, path, query, want) in cases {
            let Attributes::Resource(r) = parse(method, path, *query) else {
                panic!("{method} {path}: non-resource");
            };
            let got = (
                r.verb.as_str(),
                r.api_group.as_str(),
                r.namespace.as_str(),
                r.resource.as_str(),
                r.subresource.as_str(),
                r.name.as_str(),
            );
            assert_eq!(&got, want, "{method} {path} {query:?}");
        }
    }

    #[test]
    fn non_resource_paths() {
        for path in [
            "/version",
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/openapi/v3",
            "/healthz",
            "/",
            "",
        ] {
            assert!(
                matches!(parse("GET", path, None), Attributes::NonResource { .. }),
                "{path}"
            );
        }
    }

    /// Paths the API server might decode or split differently are never interpreted.
    #[test]
    fn ambiguous_paths_are_invalid() {
        for path in [
            "/api/v1//pods",
            "/api/v1/namespaces/../pods",
            "/api/v1/namespaces/prod/pods/db%2Fexec",
            "/api/v1/namespaces/staging%2F..%2Fprod/pods",
            "/version/./x",
            "//api/v1/pods",
            "/api/v1/namespaces/prod/pods/db\\exec",
        ] {
            assert!(
                matches!(parse("GET", path, None), Attributes::Invalid { .. }),
                "{path}"
            );
        }
    }

    #[test]
    fn display_names_what_was_asked() {
        let a = parse("GET", "/api/v1/namespaces/prod/pods/db/exec", None);
        assert_eq!(
            a.to_string(),
            "create pods/exec \"db\" in namespace \"prod\""
        );
        let a = parse("GET", "/apis/apps/v1/deployments", None);
        assert_eq!(a.to_string(), "list deployments.apps (cluster-wide)");
    }
}
