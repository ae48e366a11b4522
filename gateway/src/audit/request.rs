//! What a request does, in Kubernetes' terms, from its method, path and query: verb, API group,
//! resource, subresource, namespace and name — the fields of an audit record. Follows the
//! API server's own request-info rules (`/api/v1/…`, `/apis/{group}/{version}/…`, the legacy
//! `/watch/` prefix, `namespaces/{ns}/status|finalize`, `?watch=true`). Anything else is a
//! non-resource request, whose verb is the lower-cased method.

use http::Method;

/// The parts of a request an audit record names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestAttrs {
    pub verb: String,
    /// `None` for non-resource requests; `Some("")` for the core group.
    pub api_group: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// Maps a request to its attributes. Never fails: odd paths are non-resource requests.
pub fn attributes(method: &Method, path: &str, query: &str) -> RequestAttrs {
    let non_resource = || RequestAttrs {
        verb: method.as_str().to_ascii_lowercase(),
        ..RequestAttrs::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => return non_resource(),
    };
    let (mut watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let mut namespace = None;
    let mut rest: &[&str] = rest;
    if let ["namespaces", ns, tail @ ..] = rest {
        namespace = Some((*ns).to_string());
        if let [first, ..] = tail
            && *first != "status"
            && *first != "finalize"
        {
            rest = tail;
        }
    }
    if rest.iter().any(|p| p.is_empty()) {
        return non_resource();
    }
    let resource = rest.first().map(|s| (*s).to_string());
    let name = rest.get(1).map(|s| (*s).to_string());
    let subresource = rest.get(2).map(|s| (*s).to_string());
    if resource.is_none() {
        return non_resource();
    }
    if !watch {
        watch = query.split('&').any(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            k == "watch" && (v == "true" || v == "1")
        });
    }
    let verb = match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if name.is_some() => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => return non_resource(),
    };
    RequestAttrs {
        verb: verb.to_string(),
        api_group: Some(group.to_string()),
        resource,
        subresource,
        namespace,
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, path: &str, query: &str) -> (String, [Option<String>; 5]) {
        let a = attributes(&method, path, query);
        (
            a.verb,
            [a.api_group, a.resource, a.subresource, a.namespace, a.name],
        )
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn resource_requests() {
        assert_eq!(
            attrs(Method::GET, "/api/v1/namespaces/default/pods", ""),
            ("list".into(), [s(""), s("pods"), None, s("default"), None])
        );
        assert_eq!(
            attrs(Method::GET, "/api/v1/namespaces/default/pods/demo", ""),
            (
                "get".into(),
                [s(""), s("pods"), None, s("default"), s("demo")]
            )
        );
        assert_eq!(
            attrs(
                Method::GET,
                "/api/v1/namespaces/default/pods/demo/exec",
                "command=sh&tty=true"
            ),
            (
                "get".into(),
                [s(""), s("pods"), s("exec"), s("default"), s("demo")]
            )
        );
        assert_eq!(
            attrs(Method::POST, "/api/v1/namespaces/prod/pods/db/attach", ""),
            (
                "create".into(),
                [s(""), s("pods"), s("attach"), s("prod"), s("db")]
            )
        );
        assert_eq!(
            attrs(
                Method::DELETE,
                "/apis/apps/v1/namespaces/dev/deployments",
                ""
            ),
            (
                "deletecollection".into(),
                [s("apps"), s("deployments"), None, s("dev"), None]
            )
        );
        assert_eq!(
            attrs(
                Method::PATCH,
                "/apis/apps/v1/namespaces/dev/deployments/web/scale",
                ""
            ),
            (
                "patch".into(),
                [s("apps"), s("deployments"), s("scale"), s("dev"), s("web")]
            )
        );
        assert_eq!(
            attrs(Method::GET, "/api/v1/nodes", "watch=true&resourceVersion=1"),
            ("watch".into(), [s(""), s("nodes"), None, None, None])
        );
        assert_eq!(
            attrs(Method::GET, "/api/v1/watch/namespaces/x/pods", ""),
            ("watch".into(), [s(""), s("pods"), None, s("x"), None])
        );
    }

    #[test]
    fn namespaces_themselves() {
        assert_eq!(
            attrs(Method::GET, "/api/v1/namespaces", ""),
            ("list".into(), [s(""), s("namespaces"), None, None, None])
        );
        assert_eq!(
            attrs(Method::GET, "/api/v1/namespaces/prod", ""),
            (
                "get".into(),
                [s(""), s("namespaces"), None, s("prod"), s("prod")]
            )
        );
        assert_eq!(
            attrs(Method::PUT, "/api/v1/namespaces/prod/finalize", ""),
            (
                "update".into(),
                [s(""), s("namespaces"), s("finalize"), s("prod"), s("prod")]
            )
        );
    }

    #[test]
    fn non_resource_and_odd_paths() {
        for (method, path) in [
            (Method::GET, "/version"),
            (Method::GET, "/api"),
            (Method::GET, "/api/v1"),
            (Method::GET, "/apis/apps/v1"),
            (Method::GET, "/openapi/v3"),
            (Method::GET, "/api/v1/namespaces/x//pods"),
            (Method::POST, "/kubetape/v1/revocations"),
            (Method::OPTIONS, "/api/v1/pods"),
            (Method::GET, ""),
            (Method::GET, "//"),
        ] {
            let a = attributes(&method, path, "");
            assert_eq!(
                a.verb,
                method.as_str().to_ascii_lowercase(),
                "{method} {path}"
            );
            assert_eq!(a.resource, None, "{method} {path}");
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let alphabet = [
            "/",
            "api",
            "apis",
            "v1",
            "namespaces",
            "x",
            "",
            "watch",
            "status",
        ];
        // Every path of up to 5 segments over a small alphabet: a cheap exhaustive check.
        let mut level = vec![String::new()];
        for _ in 0..5 {
            level = level
                .iter()
                .flat_map(|p| alphabet.iter().map(move |a| format!("{p}/{a}")))
                .collect();
            for p in &level {
                let _ = attributes(&Method::GET, p, "watch=1&a");
                let _ = attributes(&Method::DELETE, p, "");
            }
        }
    }
}
