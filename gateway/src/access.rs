//! Authorization, for now a default-deny allow list: which identity groups may act in which
//! namespaces. The identity issue replaces it with roles, bindings and JIT grants; the gateway
//! asks the same question (may this identity do this request?) either way.

use serde::Deserialize;

/// One allow rule: members of `group` may act in namespaces matching any of `namespaces`
/// (`*` matches any run of characters; `"*"` alone also allows cluster-scoped requests).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AllowRule {
    pub group: String,
    pub namespaces: Vec<String>,
}

/// The set of rules; empty means nobody may do anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    rules: Vec<AllowRule>,
}

/// What a request touches, for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Discovery, `/version`, OpenAPI: any authenticated identity may read them.
    NonResource,
    /// A namespaced request.
    Namespace(&'a str),
    /// A cluster-scoped resource (nodes, pods across all namespaces, ...).
    Cluster,
}

/// The decision and, when denied, why (shown to the user in the 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { rule: String },
    Deny { reason: String },
}

impl AccessList {
    pub fn new(rules: Vec<AllowRule>) -> Self {
        Self { rules }
    }

    pub fn decide(&self, user: &str, groups: &[String], scope: &Scope<'_>) -> Decision {
        let matching = |want: &dyn Fn(&str) -> bool| {
            self.rules.iter().find(|r| {
                groups.iter().any(|g| g == &r.group) && r.namespaces.iter().any(|n| want(n))
            })
        };
        let rule = match scope {
            Scope::NonResource => {
                return Decision::Allow {
                    rule: "non-resource".into(),
                };
            }
            Scope::Namespace(ns) => matching(&|pattern| glob(pattern, ns)),
            Scope::Cluster => matching(&|pattern| pattern == "*"),
        };
        match (rule, scope) {
            (Some(r), _) => Decision::Allow {
                rule: format!("group {} → {}", r.group, r.namespaces.join(",")),
            },
            (None, Scope::Namespace(ns)) => Decision::Deny {
                reason: format!(
                    "kubetape: user {user:?} (groups: {}) may not act in namespace {ns:?}: no allow rule for any of these groups covers it",
                    groups.join(", ")
                ),
            },
            (None, _) => Decision::Deny {
                reason: format!(
                    "kubetape: user {user:?} may not make cluster-scoped requests: no rule allows namespace \"*\""
                ),
            },
        }
    }
}

/// Matches `pattern` (with `*` wildcards) against `text`.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Classifies a request path into the scope authorization needs.
pub fn scope_of(path: &str) -> Scope<'_> {
    let rest = if let Some(r) = path.strip_prefix("/api/v1") {
        r
    } else if let Some(r) = path.strip_prefix("/apis/") {
        // /apis/{group}/{version}[/...]
        let mut it = r.splitn(3, '/');
        match (it.next(), it.next(), it.next()) {
            (Some(_), Some(_), Some(tail)) => &r[r.len() - tail.len() - 1..],
            _ => return Scope::NonResource,
        }
    } else {
        return Scope::NonResource;
    };
    if rest.is_empty() || rest == "/" {
        return Scope::NonResource;
    }
    match rest.strip_prefix("/namespaces/") {
        Some(ns_rest) => {
            let ns = ns_rest.split('/').next().unwrap_or_default();
            if ns.is_empty() {
                Scope::Cluster
            } else {
                Scope::Namespace(ns)
            }
        }
        None => Scope::Cluster,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("staging", "staging"));
        assert!(!glob("staging", "staging2"));
        assert!(glob("team-*", "team-a"));
        assert!(glob("*-dev", "x-dev"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXc"));
        assert!(glob("*", "anything"));
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn scopes() {
        assert_eq!(scope_of("/version"), Scope::NonResource);
        assert_eq!(scope_of("/api/v1"), Scope::NonResource);
        assert_eq!(scope_of("/apis/apps/v1"), Scope::NonResource);
        assert_eq!(
            scope_of("/api/v1/namespaces/prod/pods/web/exec"),
            Scope::Namespace("prod")
        );
        assert_eq!(
            scope_of("/api/v1/namespaces/prod"),
            Scope::Namespace("prod")
        );
        assert_eq!(
            scope_of("/apis/apps/v1/namespaces/dev/deployments"),
            Scope::Namespace("dev")
        );
        assert_eq!(scope_of("/api/v1/pods"), Scope::Cluster);
        assert_eq!(scope_of("/api/v1/namespaces"), Scope::Cluster);
        assert_eq!(scope_of("/api/v1/nodes/n1"), Scope::Cluster);
    }

    #[test]
    fn default_deny() {
        let list = AccessList::new(vec![AllowRule {
            group: "dev".into(),
            namespaces: vec!["staging".into(), "team-*".into()],
        }]);
        let dev = vec!["dev".to_string()];
        assert!(matches!(
            list.decide("a", &dev, &Scope::Namespace("staging")),
            Decision::Allow { .. }
        ));
        assert!(matches!(
            list.decide("a", &dev, &Scope::Namespace("team-x")),
            Decision::Allow { .. }
        ));
        assert!(matches!(
            list.decide("a", &dev, &Scope::Namespace("prod")),
            Decision::Deny { .. }
        ));
        assert!(matches!(
            list.decide("a", &dev, &Scope::Cluster),
            Decision::Deny { .. }
        ));
        assert!(matches!(
            list.decide("a", &[], &Scope::Namespace("staging")),
            Decision::Deny { .. }
        ));
        assert!(matches!(
            AccessList::default().decide("a", &dev, &Scope::Namespace("staging")),
            Decision::Deny { .. }
        ));
    }
}
