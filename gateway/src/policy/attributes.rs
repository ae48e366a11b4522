//! What a request asks to do, derived from its method, path and query exactly as the Kubernetes
//! API server's `RequestInfo` derives it (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`,
//! `NewRequestInfo`), so that policy rules read like RBAC rules and decide what the cluster will
//! do, and audit records name what the cluster's own audit would.
//!
//! ```text
//! /api/v1/namespaces/{ns}/{resource}/{name}/{subresource}      core group ("")
//! /apis/{group}/{version}/namespaces/{ns}/{resource}/{name}/…  named groups
//! /api/v1/{resource}[/{name}]                                  cluster-scoped (or all namespaces)
//! /api/v1/{watch|proxy}/…                                      legacy verb prefixes
//! /api, /apis, /apis/{group}[/{version}], /version, /openapi/… non-resource (discovery)
//! ```
//!
//! Verbs, as `RequestInfo` has them:
//! - by method, matched case-sensitively as Go's `req.Method ==` does: `GET`/`HEAD` → `get`,
//!   `POST` → `create`, `PUT` → `update`, `PATCH` → `patch`, `DELETE` → `delete`, any other
//!   method → `""` (which only a `*` rule matches, as in RBAC);
//! - a first segment `watch` or `proxy` after the version is the verb whatever the method
//!   (`proxy` takes no subresource); with nothing after it, the API server fails the request;
//! - `get` without a name is `list`, or `watch` per the `watch` parameter
//!   (`Convert_Slice_string_To_bool`: anything but `0`/`false` is true); and if the
//!   `fieldSelector` pins `metadata.name` (see [`field_selector`]), that is the name — unless
//!   decoding the list options fails (a bad `fieldSelector`, `labelSelector`, `limit` or
//!   `timeoutSeconds`), when there is no name;
//! - `delete` without a name is `deletecollection`.
//!
//! **Streams are `create`.** The exec, attach and port-forward requests the gateway relays itself
//! (`proto::exec::parse_path`) are decided as verb `create` whatever the HTTP method: kubectl
//! ≥ 1.30 opens them with a WebSocket `GET`, older ones with a SPDY `POST`, and a rule must not
//! allow a shell through one protocol and refuse it through the other (RBAC asks for `create`
//! on these subresources too). This is the one place the gateway deliberately differs from
//! `RequestInfo`.
//!
//! **Refused, not guessed** ([`Attributes::Invalid`], answered 400): paths the API server would
//! decode or split differently (percent-escapes, `\`, empty or dot segments); queries
//! [`proto::query`] refuses; in a list or watch, a repeated `watch`, `fieldSelector`,
//! `labelSelector`, `limit` or `timeoutSeconds`, a non-ASCII `watch`, and a `labelSelector`
//! beside a `fieldSelector` that names an object (whether the API server names it then depends
//! on the label selector parsing, which the gateway does not model).

mod field_selector;

use std::fmt;

use proto::query::{Query, QueryError, parse_bool};

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

/// Verbs given by a path prefix (`specialVerbs`); `proxy` takes no subresource.
const PREFIX_VERBS: [&str; 2] = ["proxy", "watch"];

/// The parameters `RequestInfo` reads for a list or watch (`metav1.ListOptions` fields whose
/// conversion can fail, or that decide the verb and name).
mod list_param {
    pub const WATCH: &str = "watch";
    pub const FIELD_SELECTOR: &str = "fieldSelector";
    pub const LABEL_SELECTOR: &str = "labelSelector";
    pub const LIMIT: &str = "limit";
    pub const TIMEOUT_SECONDS: &str = "timeoutSeconds";
}

/// A request as authorization sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    /// Discovery, `/version`, OpenAPI, health: `method` is the lower-case HTTP method.
    NonResource {
        path: String,
        method: String,
    },
    Resource(ResourceRequest),
    /// A request the gateway will not interpret, and why (see the module notes): it is refused
    /// rather than decided on a guess of what the API server would make of it.
    Invalid {
        path: String,
        reason: String,
    },
}

/// A request on an API resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `proxy`, or `""` for a method with no verb (no rule but `*` names those).
    pub verb: String,
    /// `""` for the core group.
    pub api_group: String,
    pub version: String,
    /// Empty for cluster-scoped requests (and lists across all namespaces).
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    /// Empty for collections (unless a `fieldSelector` names the object of a list or watch).
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
            Attributes::Invalid { path, reason } => write!(f, "send {path:?} ({reason})"),
            Attributes::Resource(r) => {
                if r.verb.is_empty() {
                    write!(f, "use a method with no verb on {}", r.resource_path())?;
                } else {
                    write!(f, "{} {}", r.verb, r.resource_path())?;
                }
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

/// Derives the attributes of a request from its raw query (`None`: no `?`). Total: every input
/// gives an answer.
pub fn parse(method: &str, path: &str, query: Option<&str>) -> Attributes {
    match Query::parse(query.unwrap_or_default()) {
        Ok(q) => parse_request(method, path, &q),
        Err(e) => Attributes::Invalid {
            path: path.to_string(),
            reason: e.to_string(),
        },
    }
}

/// Derives the attributes of a request whose query is already parsed.
pub fn parse_request(method: &str, path: &str, query: &Query) -> Attributes {
    let invalid = |reason: String| Attributes::Invalid {
        path: path.to_string(),
        reason,
    };
    let non_resource = || Attributes::NonResource {
        path: path.to_string(),
        method: method.to_ascii_lowercase(),
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
        return invalid(
            "the path has percent-escapes, a backslash, or empty or dot segments, which the API server may decode or split differently".into(),
        );
    }
    let (api_group, version, mut rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return non_resource(),
    };
    let mut verb = match method {
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
    .to_string();
    if PREFIX_VERBS.contains(&rest[0]) {
        if rest.len() < 2 {
            return invalid(format!(
                "nothing follows the verb {:?} in the path (the API server fails such requests)",
                rest[0]
            ));
        }
        verb = rest[0].to_string();
        rest = &rest[1..];
    }
    let mut namespace = String::new();
    if rest[0] == "namespaces" && rest.len() > 1 {
        namespace = rest[1].to_string();
        // `/namespaces/{ns}` (and its `status`, `finalize`) is the namespace object itself:
        // resource namespaces, name ns, as the API server has it.
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
        }
    }
    let resource = rest[0].to_string();
    let mut name = rest.get(1).copied().unwrap_or_default().to_string();
    let subresource = match rest.get(2) {
        Some(sub) if verb != "proxy" => sub.to_string(),
        _ => String::new(),
    };

    if name.is_empty() && verb == "get" {
        let list = match ListRead::of(query) {
            Ok(l) => l,
            Err(reason) => return invalid(reason),
        };
        verb = if list.watch { "watch" } else { "list" }.into();
        name = list.name;
    }
    if name.is_empty() && verb == "delete" {
        verb = "deletecollection".into();
    }
    if proto::exec::parse_path(path).is_some() {
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

/// What `RequestInfo` reads from the query of a `get` without a name: it decodes the
/// `ListOptions` (`metainternalversionscheme.ParameterCodec.DecodeParameters`, through
/// `autoConvert_url_Values_To_v1_ListOptions` and `Convert_v1_ListOptions_To_internalversion_…`,
/// apimachinery `pkg/apis/meta/…`) and, if that fails, reads only `watch`.
#[derive(Debug)]
struct ListRead {
    watch: bool,
    /// The object a `fieldSelector` names, or `""`.
    name: String,
}

impl ListRead {
    fn of(query: &Query) -> Result<Self, String> {
        use list_param::*;
        let scalar = |key| query.scalar(key).map_err(|e| e.to_string());
        for key in [
            WATCH,
            FIELD_SELECTOR,
            LABEL_SELECTOR,
            LIMIT,
            TIMEOUT_SECONDS,
        ] {
            scalar(key)?;
        }
        // The decoded and the fall-back readings of `watch` agree on ASCII values (EqualFold
        // and ToLower against "false"); the gateway takes no other.
        let watch = match scalar(WATCH)? {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| {
                QueryError::Boolean {
                    key: WATCH.into(),
                    value: v.into(),
                }
                .to_string()
            })?,
        };
        // `IsPathSegmentName` (apimachinery `pkg/api/validate/content/path.go`): a name that
        // cannot be a path segment is not taken.
        let named = match field_selector::exact_match(
            scalar(FIELD_SELECTOR)?.unwrap_or_default(),
            "metadata.name",
        ) {
            Ok(Some(n)) if n != "." && n != ".." && !n.contains(['/', '%']) => n,
            // The selector does not parse: decoding fails, there is no name.
            _ => {
                return Ok(Self {
                    watch,
                    name: String::new(),
                });
            }
        };
        // `limit` and `timeoutSeconds` are `strconv.ParseInt(s, 10, 64)` (`Convert_Slice_string_To_int64`
        // and `_Pointer_int64`), which Rust's `i64::from_str` matches: optional sign, digits.
        let integers_decode = [LIMIT, TIMEOUT_SECONDS]
            .iter()
            .all(|key| query.values(key).all(|v| v.parse::<i64>().is_ok()));
        if !integers_decode {
            return Ok(Self {
                watch,
                name: String::new(),
            });
        }
        if !scalar(LABEL_SELECTOR)?.unwrap_or_default().is_empty() && !named.is_empty() {
            return Err(format!(
                "a labelSelector beside a fieldSelector naming {named:?}: whether the API server then names the object depends on parsing the label selector; send one or the other"
            ));
        }
        Ok(Self { watch, name: named })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (verb, group, namespace, resource, subresource, name).
    type Want<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str);

    fn resource(method: &str, path: &str, query: Option<&str>) -> ResourceRequest {
        match parse(method, path, query) {
            Attributes::Resource(r) => r,
            other => panic!("{method} {path} {query:?}: {other:?}"),
        }
    }

    fn check(cases: &[(&str, &str, Option<&str>, Want<'_>)]) {
        for (method, path, query, want) in cases {
            let r = resource(method, path, *query);
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

    /// `TestGetAPIRequestInfo`'s success cases (apiserver
    /// `pkg/endpoints/request/requestinfo_test.go`), verbatim.
    #[test]
    fn apiserver_request_info_table() {
        #[rustfmt::skip]
        check(&[
            ("GET", "/api/v1/namespaces", None, ("list", "", "", "namespaces", "", "")),
            ("GET", "/api/v1/namespaces/other", None, ("get", "", "other", "namespaces", "", "other")),
            ("GET", "/api/v1/namespaces/other/pods", None, ("list", "", "other", "pods", "", "")),
            ("GET", "/api/v1/namespaces/other/pods/foo", None, ("get", "", "other", "pods", "", "foo")),
            ("HEAD", "/api/v1/namespaces/other/pods/foo", None, ("get", "", "other", "pods", "", "foo")),
            ("GET", "/api/v1/pods", None, ("list", "", "", "pods", "", "")),
            ("HEAD", "/api/v1/pods", None, ("list", "", "", "pods", "", "")),
            ("GET", "/api/v1/proxy/namespaces/other/pods/foo", None, ("proxy", "", "other", "pods", "", "foo")),
            ("GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", None, ("proxy", "", "other", "pods", "", "foo")),
            ("GET", "/api/v1/watch/pods", None, ("watch", "", "", "pods", "", "")),
            ("GET", "/api/v1/pods", Some("watch=true"), ("watch", "", "", "pods", "", "")),
            ("GET", "/api/v1/pods", Some("watch=false"), ("list", "", "", "pods", "", "")),
            ("GET", "/api/v1/watch/namespaces/other/pods", None, ("watch", "", "other", "pods", "", "")),
            ("GET", "/api/v1/namespaces/other/pods", Some("watch=1"), ("watch", "", "other", "pods", "", "")),
            ("GET", "/api/v1/namespaces/other/pods", Some("watch=0"), ("list", "", "other", "pods", "", "")),
            ("GET", "/api/v1/namespaces/other/pods/foo/status", None, ("get", "", "other", "pods", "status", "foo")),
            ("GET", "/api/v1/namespaces/other/pods/foo/proxy/subpath", None, ("get", "", "other", "pods", "proxy", "foo")),
            ("PUT", "/api/v1/namespaces/other/finalize", None, ("update", "", "other", "namespaces", "finalize", "other")),
            ("PUT", "/api/v1/namespaces/other/status", None, ("update", "", "other", "namespaces", "status", "other")),
            ("PATCH", "/api/v1/namespaces/other/pods/foo", None, ("patch", "", "other", "pods", "", "foo")),
            ("DELETE", "/api/v1/namespaces/other/pods/foo", None, ("delete", "", "other", "pods", "", "foo")),
            ("POST", "/api/v1/namespaces/other/pods", None, ("create", "", "other", "pods", "", "")),
            ("DELETE", "/api/v1/nodes", None, ("deletecollection", "", "", "nodes", "", "")),
            ("DELETE", "/api/v1/namespaces", None, ("deletecollection", "", "", "namespaces", "", "")),
            ("DELETE", "/api/v1/namespaces/other/pods", None, ("deletecollection", "", "other", "pods", "", "")),
            ("DELETE", "/apis/extensions/v1/namespaces/other/pods", None, ("deletecollection", "extensions", "other", "pods", "", "")),
            ("POST", "/apis/extensions/v1/namespaces/other/pods", None, ("create", "extensions", "other", "pods", "", "")),
            ("POST", "/apis/extensions/v1beta3/namespaces/other/pods", None, ("create", "extensions", "other", "pods", "", "")),
        ]);
    }

    /// `TestSelectorParsing` (same file): a `fieldSelector` on `metadata.name` names the object
    /// of a list or watch, unless the selector does not parse; not for the `/watch/` prefix.
    #[test]
    fn apiserver_selector_table() {
        #[rustfmt::skip]
        check(&[
            ("GET", "/apis/group/version/resource", None, ("list", "group", "", "resource", "", "")),
            ("GET", "/apis/group/version/resource", Some("fieldSelector=metadata.name=name1"), ("list", "group", "", "resource", "", "name1")),
            ("GET", "/apis/group/version/resource", Some("watch=true&fieldSelector=metadata.name=name1"), ("watch", "group", "", "resource", "", "name1")),
            ("GET", "/apis/group/version/resource", Some("fieldSelector=foo=bar&labelSelector=baz=qux"), ("list", "group", "", "resource", "", "")),
            ("GET", "/apis/group/version/resource", Some("fieldSelector=metadata.name=name1,foo"), ("list", "group", "", "resource", "", "")),
            ("GET", "/apis/group/version/resource", Some("fieldSelector=metadata.name=name1,foo&watch=true"), ("watch", "group", "", "resource", "", "")),
            ("GET", "/apis/group/version/resource", Some("fieldSelector=metadata.name=name1,foo&watch=false"), ("list", "group", "", "resource", "", "")),
            ("DELETE", "/apis/group/version/resource", Some("fieldSelector=foo=bar&labelSelector=baz=qux"), ("deletecollection", "group", "", "resource", "", "")),
            ("GET", "/apis/group/version/resource/name", Some("fieldSelector=foo=bar&labelSelector=foo=bar"), ("get", "group", "", "resource", "", "name")),
            ("GET", "/apis/group/version/watch/resource", Some("fieldSelector=metadata.name=foo&labelSelector=foo=bar"), ("watch", "group", "", "resource", "", "")),
            ("GET", "/apis/group/version/watch/resource/name", Some("fieldSelector=metadata.name=foo&labelSelector=foo=bar"), ("watch", "group", "", "resource", "", "name")),
            // kubectl get pod web -w (1.33): a watch of one object.
            ("GET", "/api/v1/namespaces/dev/pods", Some("fieldSelector=metadata.name%3Dweb&resourceVersion=7&watch=true"), ("watch", "", "dev", "pods", "", "web")),
            // A name that cannot be a path segment is not taken (`IsPathSegmentName`).
            ("GET", "/api/v1/pods", Some("fieldSelector=metadata.name%3D.."), ("list", "", "", "pods", "", "")),
            ("GET", "/api/v1/pods", Some("fieldSelector=metadata.name%3Da%2Fb"), ("list", "", "", "pods", "", "")),
            // Decoding fails on a bad integer: no name (and the API server answers 400 itself).
            ("GET", "/api/v1/pods", Some("fieldSelector=metadata.name%3Dweb&limit=x"), ("list", "", "", "pods", "", "")),
            ("GET", "/api/v1/pods", Some("fieldSelector=metadata.name%3Dweb&timeoutSeconds=&watch=1"), ("watch", "", "", "pods", "", "")),
            ("GET", "/api/v1/pods", Some("fieldSelector=metadata.name%3Dweb&limit=%2B5&labelSelector="), ("list", "", "", "pods", "", "web")),
        ]);
    }

    /// The review's cases and the rest of the verb rules.
    #[test]
    fn verbs_read_as_the_api_server_reads_them() {
        #[rustfmt::skip]
        check(&[
            // Keys are percent-decoded: a list-only role does not get a watch by spelling.
            ("GET", "/api/v1/namespaces/dev/pods", Some("wat%63h=true"), ("watch", "", "dev", "pods", "", "")),
            ("GET", "/api/v1/namespaces/dev/pods", Some("watch=yes"), ("watch", "", "dev", "pods", "", "")),
            ("GET", "/api/v1/namespaces/dev/pods", Some("watch="), ("watch", "", "dev", "pods", "", "")),
            ("GET", "/api/v1/namespaces/dev/pods", Some("watch"), ("watch", "", "dev", "pods", "", "")),
            ("GET", "/api/v1/namespaces/dev/pods", Some("watch=FALSE"), ("list", "", "dev", "pods", "", "")),
            ("GET", "/api/v1/namespaces/dev/pods", Some("Watch=true"), ("list", "", "dev", "pods", "", "")),
            // The legacy prefixes are the verb whatever the method.
            ("DELETE", "/api/v1/watch/namespaces/dev/pods/web", None, ("watch", "", "dev", "pods", "", "web")),
            ("POST", "/api/v1/proxy/nodes/n1/x", None, ("proxy", "", "", "nodes", "", "n1")),
            ("GET", "/api/v1/watch/namespaces/dev/pods/web/status", None, ("watch", "", "dev", "pods", "status", "web")),
            // Methods are case-sensitive; unknown ones have no verb.
            ("OPTIONS", "/api/v1/namespaces/prod/pods", None, ("", "", "prod", "pods", "", "")),
            ("get", "/api/v1/namespaces/prod/pods", None, ("", "", "prod", "pods", "", "")),
            // The stream subresources the gateway relays are `create`, whatever the method...
            ("GET", "/api/v1/namespaces/prod/pods/db/exec", Some("command=sh&stdin=true"), ("create", "", "prod", "pods", "exec", "db")),
            ("POST", "/api/v1/namespaces/prod/pods/db/exec", None, ("create", "", "prod", "pods", "exec", "db")),
            ("GET", "/api/v1/namespaces/prod/pods/db/attach", None, ("create", "", "prod", "pods", "attach", "db")),
            ("GET", "/api/v1/namespaces/prod/pods/db/portforward", None, ("create", "", "prod", "pods", "portforward", "db")),
            // ...and nothing else is: these are not streams the gateway relays.
            ("GET", "/api/v1/watch/namespaces/prod/pods/db/exec", None, ("watch", "", "prod", "pods", "exec", "db")),
            ("GET", "/api/v1/namespaces/prod/pods/db/exec/x", None, ("get", "", "prod", "pods", "exec", "db")),
            ("PATCH", "/api/v1/namespaces/prod/pods/db/ephemeralcontainers", None, ("patch", "", "prod", "pods", "ephemeralcontainers", "db")),
            ("GET", "/apis/apps/v1/namespaces/dev/deployments/api/scale", None, ("get", "apps", "dev", "deployments", "scale", "api")),
            ("GET", "/apis/apps/v1/deployments", None, ("list", "apps", "", "deployments", "", "")),
            ("GET", "/api/v1/nodes/n1", None, ("get", "", "", "nodes", "", "n1")),
            ("GET", "/api/v1/namespaces/prod/pods/", None, ("list", "", "prod", "pods", "", "")),
            ("GET", "/api/v1/namespaces/prod/pods/web/log", Some("follow=true"), ("get", "", "prod", "pods", "log", "web")),
        ]);
    }

    /// `TestGetNonAPIRequestInfo` (same file), and other discovery paths.
    #[test]
    fn non_resource_paths() {
        for path in [
            "/not-api/version/resource",
            "/apis/extensions/v1beta1",
            "/apis/extensions/v1beta1/",
            "/api/version",
            "/api",
            "/",
            "",
            "/version",
            "/apis",
            "/apis/apps",
            "/openapi/v3",
            "/healthz",
        ] {
            assert!(
                matches!(parse("GET", path, None), Attributes::NonResource { .. }),
                "{path}"
            );
        }
    }

    /// Paths the API server might decode or split differently, and queries whose reading is
    /// uncertain, are refused, not interpreted.
    #[test]
    fn ambiguous_requests_are_invalid() {
        for path in [
            "/api/v1//pods",
            "/api/v1/namespaces/../pods",
            "/api/v1/namespaces/prod/pods/db%2Fexec",
            "/api/v1/namespaces/staging%2F..%2Fprod/pods",
            "/version/./x",
            "//api/v1/pods",
            "/api/v1/namespaces/prod/pods/db\\exec",
            // The API server fails these (`unable to determine kind and namespace`).
            "/api/v1/watch",
            "/apis/apps/v1/proxy/",
        ] {
            assert!(
                matches!(parse("GET", path, None), Attributes::Invalid { .. }),
                "{path}"
            );
        }
        for (path, query) in [
            ("/api/v1/pods", "watch=true;x"),
            ("/api/v1/pods", "wat%zzch=true"),
            ("/api/v1/pods", "watch=%ff"),
            ("/api/v1/pods", "watch=false&watch=true"),
            ("/api/v1/pods", "watch=fal%C5%BFe"),
            (
                "/api/v1/pods",
                "fieldSelector=a%3Db&fieldSelector=metadata.name%3Dx",
            ),
            ("/api/v1/pods", "limit=1&limit=2"),
            (
                "/api/v1/pods",
                "fieldSelector=metadata.name%3Dweb&labelSelector=app%3Dx",
            ),
            // Any query the gateway cannot forward faithfully, on any path.
            ("/api/v1/namespaces/prod/pods/db/exec", "command=a;b"),
            ("/version", "x=%"),
        ] {
            let a = parse("GET", path, Some(query));
            assert!(
                matches!(a, Attributes::Invalid { .. }),
                "{path}?{query}: {a:?}"
            );
        }
        // Only read where `RequestInfo` reads them: a named get ignores list parameters.
        check(&[(
            "GET",
            "/api/v1/namespaces/dev/pods/web",
            Some("watch=1&watch=0&limit=x&limit=y"),
            ("get", "", "dev", "pods", "", "web"),
        )]);
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
        let a = parse("GET", "/api/v1/pods", Some("watch=1&watch=1"));
        assert!(
            a.to_string().starts_with(
                "send \"/api/v1/pods\" (query parameter \"watch\" is given more than once"
            ),
            "{a}"
        );
    }
}
