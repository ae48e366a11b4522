//! The decision: default deny; a request is allowed if a rule of a role bound to the identity
//! (by user, group or CI claims) covers it, or a rule of a role granted to the identity just in
//! time covers it in the grant's namespace. Denials say what was asked, by whom, and which
//! requestable role would allow it.

use std::time::Duration;

use super::attributes::{Attributes, ResourceRequest};
use super::file::{Binding, Capture, Policy, PortRange, Role, Rule};
use super::glob::glob;
use crate::authn::Identity;

/// A just-in-time grant as the decision needs it: `role` in `namespace`, already known to be
/// for this identity and unexpired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elevation<'a> {
    pub id: &'a str,
    pub role: &'a str,
    pub namespace: &'a str,
}

/// Why a request is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// For the audit line: `binding developers → role developer rule 1`, `grant <id> → role …`.
    pub rule: String,
    /// The most generous session limit of the bindings that allow it (`None`: unlimited).
    pub max_session: Option<Duration>,
    /// The grant that allowed it, when no binding did.
    pub grant: Option<String>,
    /// For a port-forward: the ports it may reach and what is recorded of its bytes.
    pub forward: ForwardScope,
}

/// What a port-forward may reach, and what its recording keeps: the ports of every rule that
/// allows it together (any port if one of those rules names none), and the fullest capture any
/// of them asks for (recording more is the safe way to resolve a disagreement).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardScope {
    /// `None`: any port.
    pub ports: Option<Vec<PortRange>>,
    pub capture: Capture,
}

impl ForwardScope {
    fn of<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> Self {
        let mut scope = ForwardScope {
            ports: Some(Vec::new()),
            capture: Capture::Metadata,
        };
        for rule in rules {
            scope.capture = scope.capture.max(rule.capture);
            match (&mut scope.ports, rule.ports.is_empty()) {
                (ports @ Some(_), true) => *ports = None,
                (Some(list), false) => list.extend(rule.ports.iter().copied()),
                (None, _) => {}
            }
        }
        scope
    }

    /// Whether a connection to `port` is allowed.
    pub fn allows(&self, port: u16) -> bool {
        self.ports
            .as_ref()
            .is_none_or(|list| list.iter().any(|r| r.contains(port)))
    }

    /// `80, 8000-8080`, or `any`.
    pub fn describe_ports(&self) -> String {
        match &self.ports {
            None => "any".into(),
            Some(list) => list
                .iter()
                .map(PortRange::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Allowed),
    /// The message for the 403 Status (what was asked, by whom, how to ask for it).
    Deny(String),
}

// === impl Policy ===

impl Policy {
    /// Decides `attrs` for `who`, considering `grants` (which the caller has filtered to this
    /// identity and to unexpired ones).
    pub fn decide(&self, who: &Identity, attrs: &Attributes, grants: &[Elevation<'_>]) -> Decision {
        let req = match attrs {
            Attributes::NonResource { method, path } => {
                return if method == "get" || method == "head" {
                    Decision::Allow(Allowed {
                        rule: "non-resource read (any authenticated identity)".into(),
                        max_session: None,
                        grant: None,
                        forward: ForwardScope::default(),
                    })
                } else {
                    Decision::Deny(format!(
                        "kubetape: user {:?} may not {} {path:?}: only reads of non-resource paths are allowed",
                        who.user,
                        method.to_uppercase()
                    ))
                };
            }
            Attributes::Resource(r) => r,
            Attributes::Invalid { path, reason } => {
                return Decision::Deny(format!(
                    "kubetape: the request for {path:?} is refused: {reason}"
                ));
            }
        };

        let mut allowed: Option<Allowed> = None;
        for binding in self.bindings.iter().filter(|b| b.matches(who)) {
            for role_name in &binding.roles {
                let Some(role) = self.role(role_name) else {
                    continue;
                };
                if let Some(i) = role.rules.iter().position(|r| r.allows(req)) {
                    let rule = format!(
                        "binding {} → role {} rule {}",
                        binding.name,
                        role.name,
                        i + 1
                    );
                    match &mut allowed {
                        None => {
                            allowed = Some(Allowed {
                                rule,
                                max_session: binding.max_session,
                                grant: None,
                                forward: ForwardScope::default(),
                            });
                        }
                        // Several bindings allow it: the most generous limit wins, as with roles.
                        Some(a) => {
                            a.max_session = match (a.max_session, binding.max_session) {
                                (Some(x), Some(y)) => Some(x.max(y)),
                                _ => None,
                            };
                        }
                    }
                }
            }
        }
        if let Some(mut a) = allowed {
            if is_port_forward(req) {
                a.forward = ForwardScope::of(
                    self.bindings
                        .iter()
                        .filter(|b| b.matches(who))
                        .flat_map(|b| &b.roles)
                        .filter_map(|name| self.role(name))
                        .flat_map(|role| &role.rules)
                        .filter(|rule| rule.allows(req)),
                );
            }
            return Decision::Allow(a);
        }
        for grant in grants {
            if req.namespace.is_empty() || req.namespace != grant.namespace {
                continue;
            }
            let Some(role) = self.role(grant.role).filter(|r| r.requestable) else {
                continue;
            };
            if let Some(i) = role.rules.iter().position(|r| r.allows(req)) {
                let forward = if is_port_forward(req) {
                    ForwardScope::of(role.rules.iter().filter(|r| r.allows(req)))
                } else {
                    ForwardScope::default()
                };
                return Decision::Allow(Allowed {
                    rule: format!("grant {} → role {} rule {}", grant.id, role.name, i + 1),
                    max_session: None,
                    grant: Some(grant.id.to_string()),
                    forward,
                });
            }
        }
        Decision::Deny(self.denial(who, req))
    }

    fn denial(&self, who: &Identity, req: &ResourceRequest) -> String {
        let groups = if who.groups.is_empty() {
            "none".to_string()
        } else {
            who.groups.join(", ")
        };
        let what = Attributes::Resource(req.clone());
        let mut message = format!(
            "kubetape: user {:?} (groups: {groups}) may not {what}: no role bound to this identity or granted to it allows verb {:?} on resource {:?}{} in {}",
            who.user,
            req.verb,
            req.resource_path(),
            if req.api_group.is_empty() {
                String::new()
            } else {
                format!(" of API group {:?}", req.api_group)
            },
            if req.namespace.is_empty() {
                "cluster scope".to_string()
            } else {
                format!("namespace {:?}", req.namespace)
            },
        );
        let requestable: Vec<&Role> = self
            .roles
            .iter()
            .filter(|r| r.requestable && r.may_request(who) && !req.namespace.is_empty())
            .filter(|r| r.rules.iter().any(|rule| rule.allows(req)))
            .collect();
        for role in requestable {
            message.push_str(&format!(
                ". To ask for temporary access: kubetape request {} --namespace {} --reason TEXT --ttl 30m (approvers: {}; at most {})",
                role.name,
                req.namespace,
                role.approvers.join(", "),
                humantime::format_duration(role.max_ttl),
            ));
        }
        message
    }
}

// === impl Role ===

impl Role {
    /// Whether `who` may request this role (it must also be requestable).
    pub fn may_request(&self, who: &Identity) -> bool {
        self.requesters.is_empty() || self.requesters.iter().any(|g| who.groups.contains(g))
    }

    /// Whether `who` may approve or deny requests for this role (never their own: the caller
    /// checks that).
    pub fn may_approve(&self, who: &Identity) -> bool {
        self.approvers.iter().any(|g| who.groups.contains(g))
    }

    /// Whether some rule of this role could apply in `namespace` (a request must name one).
    pub fn covers_namespace(&self, namespace: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.namespaces.iter().any(|p| glob(p, namespace)))
    }
}

// === impl Rule ===

impl Rule {
    /// Whether this rule allows the request. Cluster-scoped requests (no namespace) need the
    /// namespace pattern `*`.
    pub fn allows(&self, req: &ResourceRequest) -> bool {
        let namespace_ok = if req.namespace.is_empty() {
            self.namespaces.iter().any(|p| p == "*")
        } else {
            self.namespaces.iter().any(|p| glob(p, &req.namespace))
        };
        namespace_ok
            && self
                .api_groups
                .iter()
                .any(|g| g == "*" || *g == req.api_group)
            && self.resources.iter().any(|r| resource_matches(r, req))
            && self.verbs.iter().any(|v| v == "*" || *v == req.verb)
            && (self.resource_names.is_empty()
                || (!req.name.is_empty() && self.resource_names.contains(&req.name)))
    }
}

fn is_port_forward(req: &ResourceRequest) -> bool {
    req.resource == "pods" && req.subresource == "portforward" && req.api_group.is_empty()
}

/// RBAC's resource matching: `pods` is the resource alone, `pods/exec` one subresource,
/// `pods/*` any subresource of pods, `*/scale` that subresource of anything, `*` anything.
fn resource_matches(pattern: &str, req: &ResourceRequest) -> bool {
    if pattern == "*" {
        return true;
    }
    let (res, sub) = pattern.split_once('/').unwrap_or((pattern, ""));
    let res_ok = res == "*" || res == req.resource;
    let sub_ok = if sub == "*" {
        !req.subresource.is_empty()
    } else {
        sub == req.subresource
    };
    res_ok && sub_ok
}

// === impl Binding ===

impl Binding {
    /// Whether this binding applies to `who`.
    pub fn matches(&self, who: &Identity) -> bool {
        self.users.contains(&who.user)
            || self.groups.iter().any(|g| who.groups.contains(g))
            || self.ci.iter().any(|m| {
                m.issuer == who.issuer
                    && m.claims
                        .iter()
                        .all(|(k, pattern)| who.claims.get(k).is_some_and(|v| glob(pattern, v)))
            })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::super::attributes::parse;
    use super::*;

    const POLICY: &str = r#"
[[roles]]
name = "developer"
[[roles.rules]]
namespaces = ["staging", "team-*"]
resources = ["pods", "pods/log", "pods/exec"]
verbs = ["get", "list", "watch", "create"]
[[roles.rules]]
namespaces = ["*"]
resources = ["namespaces"]
verbs = ["list"]

[[roles]]
name = "deployer"
[[roles.rules]]
namespaces = ["staging"]
api_groups = ["apps"]
resources = ["deployments", "deployments/scale"]
verbs = ["get", "patch"]
resource_names = ["api"]

[[roles]]
name = "prod-debug"
requestable = true
approvers = ["sre"]
[[roles.rules]]
namespaces = ["prod"]
resources = ["pods/*"]
verbs = ["create"]

[[bindings]]
name = "devs"
groups = ["developers"]
roles = ["developer"]
max_session = "1h"

[[bindings]]
name = "alice-long"
users = ["alice"]
roles = ["developer"]

[[bindings]]
name = "pipeline"
roles = ["deployer"]
[[bindings.ci]]
issuer = "https://ci"
claims = { repository = "org/app", environment = "staging*" }
"#;

    fn who(user: &str, groups: &[&str], issuer: &str, claims: &[(&str, &str)]) -> Identity {
        Identity {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            issuer: issuer.into(),
            claims: claims
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            expires_at: SystemTime::now(),
            session_grace: std::time::Duration::ZERO,
        }
    }

    fn decide(
        p: &Policy,
        w: &Identity,
        method: &str,
        path: &str,
        grants: &[Elevation<'_>],
    ) -> Decision {
        p.decide(w, &parse(method, path, None), grants)
    }

    fn allowed(d: &Decision) -> bool {
        matches!(d, Decision::Allow(_))
    }

    #[test]
    fn matrix() {
        let p = Policy::from_toml(POLICY, "p").unwrap();
        let dev = who("dan", &["developers"], "https://idp", &[]);
        let ci = who(
            "ci:1",
            &[],
            "https://ci",
            &[("repository", "org/app"), ("environment", "staging-eu")],
        );
        let other_repo = who(
            "ci:2",
            &[],
            "https://ci",
            &[("repository", "org/other"), ("environment", "staging")],
        );
        let wrong_issuer = who(
            "ci:3",
            &[],
            "https://idp",
            &[("repository", "org/app"), ("environment", "staging")],
        );
        let nobody = who("eve", &["outsiders"], "https://idp", &[]);
        #[rustfmt::skip]
        let cases: &[(&Identity, &str, &str, bool)] = &[
            (&dev, "GET", "/api/v1/namespaces/staging/pods", true),
            (&dev, "GET", "/api/v1/namespaces/staging/pods/web/exec", true),
            (&dev, "POST", "/api/v1/namespaces/team-a/pods/web/exec", true),
            (&dev, "GET", "/api/v1/namespaces/staging/pods/web/attach", false),
            (&dev, "DELETE", "/api/v1/namespaces/staging/pods/web", false),
            (&dev, "GET", "/api/v1/namespaces/prod/pods/db/exec", false),
            (&dev, "GET", "/api/v1/namespaces/prod/pods", false),
            (&dev, "GET", "/api/v1/pods", false),
            (&dev, "GET", "/api/v1/namespaces", true),
            (&dev, "GET", "/apis/apps/v1/namespaces/staging/deployments/api", false),
            (&dev, "GET", "/version", true),
            (&dev, "GET", "/api/v1/namespaces/staging/pods/web%2Fexec", false),
            (&dev, "GET", "/version/../api/v1/namespaces/prod/pods", false),
            (&dev, "POST", "/version", false),
            (&ci, "PATCH", "/apis/apps/v1/namespaces/staging/deployments/api/scale", true),
            (&ci, "GET", "/apis/apps/v1/namespaces/staging/deployments/api", true),
            (&ci, "GET", "/apis/apps/v1/namespaces/staging/deployments/web", false),
            (&ci, "GET", "/apis/apps/v1/namespaces/staging/deployments", false),
            (&ci, "GET", "/apis/apps/v1/namespaces/prod/deployments/api", false),
            (&ci, "GET", "/api/v1/namespaces/staging/pods/web/exec", false),
            (&other_repo, "GET", "/apis/apps/v1/namespaces/staging/deployments/api", false),
            (&wrong_issuer, "GET", "/apis/apps/v1/namespaces/staging/deployments/api", false),
            (&nobody, "GET", "/api/v1/namespaces/staging/pods", false),
            (&nobody, "GET", "/api", true),
        ];
        for (w, method, path, want) in cases {
            let d = decide(&p, w, method, path, &[]);
            assert_eq!(allowed(&d), *want, "{} {method} {path}: {d:?}", w.user);
        }
        assert!(!allowed(&decide(
            &Policy::default(),
            &dev,
            "GET",
            "/api/v1/namespaces/staging/pods",
            &[]
        )));
    }

    #[test]
    fn session_limits_come_from_the_bindings() {
        let p = Policy::from_toml(POLICY, "p").unwrap();
        let path = "/api/v1/namespaces/staging/pods/web/exec";
        let Decision::Allow(a) =
            decide(&p, &who("dan", &["developers"], "i", &[]), "GET", path, &[])
        else {
            panic!()
        };
        assert_eq!(a.max_session, Some(Duration::from_secs(3600)));
        assert_eq!(a.rule, "binding devs → role developer rule 1");
        // alice is also bound without a limit: the more generous binding wins.
        let Decision::Allow(a) = decide(
            &p,
            &who("alice", &["developers"], "i", &[]),
            "GET",
            path,
            &[],
        ) else {
            panic!()
        };
        assert_eq!(a.max_session, None);
    }

    #[test]
    fn grants_allow_their_role_in_their_namespace_only() {
        let p = Policy::from_toml(POLICY, "p").unwrap();
        let dev = who("dan", &["developers"], "i", &[]);
        let grant = Elevation {
            id: "g1",
            role: "prod-debug",
            namespace: "prod",
        };
        let d = decide(
            &p,
            &dev,
            "GET",
            "/api/v1/namespaces/prod/pods/db/exec",
            &[grant],
        );
        let Decision::Allow(a) = d else {
            panic!("{d:?}")
        };
        assert_eq!(a.grant.as_deref(), Some("g1"));
        // Not outside the role's rules, nor in another namespace, nor for a non-requestable role.
        assert!(!allowed(&decide(
            &p,
            &dev,
            "GET",
            "/api/v1/namespaces/prod/pods",
            &[grant]
        )));
        let elsewhere = Elevation {
            namespace: "prod2",
            ..grant
        };
        assert!(!allowed(&decide(
            &p,
            &dev,
            "GET",
            "/api/v1/namespaces/prod2/pods/db/exec",
            &[elsewhere]
        )));
        let not_requestable = Elevation {
            role: "deployer",
            namespace: "staging",
            ..grant
        };
        assert!(!allowed(&decide(
            &p,
            &dev,
            "GET",
            "/apis/apps/v1/namespaces/staging/deployments/api",
            &[not_requestable]
        )));
    }

    #[test]
    fn port_forward_scope_joins_the_allowing_rules() {
        let policy = r#"
[[roles]]
name = "db"
[[roles.rules]]
namespaces = ["prod"]
resources = ["pods/portforward"]
verbs = ["create"]
ports = [5432]
capture = "full"
[[roles.rules]]
namespaces = ["prod", "staging"]
resources = ["pods/portforward"]
verbs = ["create"]
ports = ["8000-8080"]
[[roles.rules]]
namespaces = ["dev"]
resources = ["pods/*"]
verbs = ["create"]

[[roles]]
name = "db-oncall"
requestable = true
approvers = ["sre"]
[[roles.rules]]
namespaces = ["prod"]
resources = ["pods/portforward"]
verbs = ["create"]
ports = [9187]

[[bindings]]
name = "dbas"
groups = ["dba"]
roles = ["db"]
"#;
        let p = Policy::from_toml(policy, "p").unwrap();
        let dba = who("d", &["dba"], "i", &[]);
        let scope = |ns: &str, grants: &[Elevation<'_>], w: &Identity| match decide(
            &p,
            w,
            "POST",
            &format!("/api/v1/namespaces/{ns}/pods/db/portforward"),
            grants,
        ) {
            Decision::Allow(a) => Some(a.forward),
            Decision::Deny(_) => None,
        };
        // prod: both rules allow it; their ports together, the fuller capture.
        let prod = scope("prod", &[], &dba).unwrap();
        assert!(prod.allows(5432) && prod.allows(8000) && prod.allows(8080));
        assert!(!prod.allows(5433) && !prod.allows(22));
        assert_eq!(prod.capture, Capture::Full);
        assert_eq!(prod.describe_ports(), "5432, 8000-8080");
        // staging: only the range, metadata; dev: any port.
        let staging = scope("staging", &[], &dba).unwrap();
        assert!(!staging.allows(5432) && staging.allows(8001));
        assert_eq!(staging.capture, Capture::Metadata);
        let dev = scope("dev", &[], &dba).unwrap();
        assert!(dev.allows(1) && dev.allows(65535));
        assert_eq!(dev.describe_ports(), "any");
        // A grant: its role's rules only.
        let outsider = who("o", &[], "i", &[]);
        assert_eq!(scope("prod", &[], &outsider), None);
        let grant = Elevation {
            id: "g",
            role: "db-oncall",
            namespace: "prod",
        };
        let granted = scope("prod", &[grant], &outsider).unwrap();
        assert!(granted.allows(9187) && !granted.allows(5432));
        // Other requests carry no port limits.
        let Decision::Allow(a) =
            decide(&p, &dba, "POST", "/api/v1/namespaces/dev/pods/x/exec", &[])
        else {
            panic!()
        };
        assert_eq!(a.forward, ForwardScope::default());
        assert!(a.forward.allows(1));
    }

    #[test]
    fn denials_name_what_is_missing_and_how_to_ask() {
        let p = Policy::from_toml(POLICY, "p").unwrap();
        let dev = who("dan", &["developers"], "i", &[]);
        let Decision::Deny(m) =
            decide(&p, &dev, "GET", "/api/v1/namespaces/prod/pods/db/exec", &[])
        else {
            panic!()
        };
        assert!(m.contains("user \"dan\" (groups: developers) may not create pods/exec \"db\" in namespace \"prod\""), "{m}");
        assert!(
            m.contains("verb \"create\" on resource \"pods/exec\" in namespace \"prod\""),
            "{m}"
        );
        assert!(m.contains("kubetape request prod-debug --namespace prod --reason TEXT --ttl 30m (approvers: sre"), "{m}");
        // No hint when no requestable role would help.
        let Decision::Deny(m) = decide(
            &p,
            &dev,
            "DELETE",
            "/api/v1/namespaces/staging/pods/web",
            &[],
        ) else {
            panic!()
        };
        assert!(!m.contains("kubetape request"), "{m}");
    }
}
