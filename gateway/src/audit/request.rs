//! What a request does, as an audit record names it: the fields of the attributes the policy
//! decided on ([`crate::policy::Attributes`], the API server's `RequestInfo` rules), so the
//! record says exactly what was authorized — e.g. verb `create` for an exec, whichever of
//! WebSocket `GET` or SPDY `POST` carried it.

use crate::policy::Attributes;

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

impl RequestAttrs {
    /// The record's fields for `attrs`; `method` gives the verb of requests that are not on an
    /// API resource (discovery, and paths the gateway refuses to interpret).
    pub fn of(attrs: &Attributes, method: &str) -> Self {
        let Attributes::Resource(r) = attrs else {
            return Self {
                verb: method.to_ascii_lowercase(),
                ..Self::default()
            };
        };
        let given = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Self {
            verb: r.verb.clone(),
            api_group: Some(r.api_group.clone()),
            resource: Some(r.resource.clone()),
            subresource: given(&r.subresource),
            namespace: given(&r.namespace),
            name: given(&r.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_attributes;

    fn record(method: &str, path: &str, query: Option<&str>) -> RequestAttrs {
        RequestAttrs::of(&parse_attributes(method, path, query), method)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn resource_requests_name_what_was_authorized() {
        assert_eq!(
            record(
                "GET",
                "/api/v1/namespaces/prod/pods/db/exec",
                Some("command=sh")
            ),
            RequestAttrs {
                verb: "create".into(),
                api_group: s(""),
                resource: s("pods"),
                subresource: s("exec"),
                namespace: s("prod"),
                name: s("db"),
            }
        );
        assert_eq!(
            record("DELETE", "/apis/apps/v1/namespaces/dev/deployments", None),
            RequestAttrs {
                verb: "deletecollection".into(),
                api_group: s("apps"),
                resource: s("deployments"),
                ..RequestAttrs::default()
            }
            .with_namespace("dev")
        );
        assert_eq!(
            record("GET", "/api/v1/nodes", Some("watch=true")),
            RequestAttrs {
                verb: "watch".into(),
                api_group: s(""),
                resource: s("nodes"),
                ..RequestAttrs::default()
            }
        );
    }

    /// The record names what the API server will do, whatever the spelling (issue 12: a
    /// `wat%63h=true` list was once authorized and audited as a list, and served as a watch).
    #[test]
    fn records_name_what_the_api_server_reads() {
        for query in ["wat%63h=true", "watch=yes", "watch", "%77atch=1"] {
            assert_eq!(
                record("GET", "/api/v1/namespaces/dev/pods", Some(query)).verb,
                "watch",
                "{query}"
            );
        }
        assert_eq!(
            record(
                "GET",
                "/api/v1/namespaces/dev/pods",
                Some("fieldSelector=metadata.name%3Dweb&watch=true")
            ),
            RequestAttrs {
                verb: "watch".into(),
                api_group: s(""),
                resource: s("pods"),
                name: s("web"),
                ..RequestAttrs::default()
            }
            .with_namespace("dev")
        );
        // Refused requests are named by their method only: nothing was interpreted.
        assert_eq!(
            record("GET", "/api/v1/pods", Some("watch=0&watch=1")),
            RequestAttrs {
                verb: "get".into(),
                ..RequestAttrs::default()
            }
        );
    }

    #[test]
    fn other_requests_are_named_by_their_method() {
        for (method, path) in [
            ("GET", "/version"),
            ("GET", "/apis/apps/v1"),
            ("POST", "/kubetape/v1/revocations"),
            ("GET", "/api/v1/namespaces/x//pods"),
            ("GET", "/api/v1/namespaces/%2e%2e/pods"),
        ] {
            assert_eq!(
                record(method, path, None),
                RequestAttrs {
                    verb: method.to_ascii_lowercase(),
                    ..RequestAttrs::default()
                },
                "{path}"
            );
        }
    }

    impl RequestAttrs {
        fn with_namespace(mut self, ns: &str) -> Self {
            self.namespace = s(ns);
            self
        }
    }
}
