//! The policy file (TOML): roles, bindings, and their validation. A commented example is
//! `gateway/policy.example.toml`.
//!
//! Parsing is strict (`deny_unknown_fields`): a misspelt key would otherwise silently widen or
//! narrow access. Validation names the role or binding and the rule number at fault, because
//! whoever edits the file learns about mistakes only from the gateway's log.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::attributes::VERBS;

/// Why a policy file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    /// TOML syntax or a field of the wrong type; the message carries line and column.
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    /// Well-formed but meaningless or dangerous.
    #[error("{origin}: {what}: {message}")]
    Invalid {
        origin: String,
        /// `role "x" rule 2`, `binding "y"`.
        what: String,
        message: String,
    },
}

/// A validated policy: default deny, then whatever the bindings and grants allow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub bindings: Vec<Binding>,
}

/// A named set of rules; optionally requestable just in time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub rules: Vec<Rule>,
    /// Whether `kubetape request ROLE` may ask for it (then `approvers` must be set).
    #[serde(default)]
    pub requestable: bool,
    /// Groups whose members may approve requests for this role (never their own).
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Groups whose members may request it; empty: any authenticated identity.
    #[serde(default)]
    pub requesters: Vec<String>,
    /// The longest grant a request may ask for.
    #[serde(default = "default_max_ttl", deserialize_with = "duration")]
    pub max_ttl: Duration,
}

/// The longest `max_session` a binding may set (longer is what leaving it out means).
pub const MAX_SESSION_LIMIT: Duration = Duration::from_secs(31 * 86_400);

fn default_max_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// One allow rule, RBAC style: every list must match (`*` matches anything).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Namespace globs (`team-*`); `*` also covers cluster-scoped requests and lists across all
    /// namespaces.
    pub namespaces: Vec<String>,
    /// API groups (`""` is the core group, where pods live).
    #[serde(default = "core_group")]
    pub api_groups: Vec<String>,
    /// `pods`, `pods/exec`, `pods/*` (every subresource of pods), `*/scale`, `*`.
    pub resources: Vec<String>,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, `*`.
    /// exec, attach and port-forward are `create` on `pods/exec`, `pods/attach`, `pods/portforward`.
    pub verbs: Vec<String>,
    /// If not empty, only objects with these names (never lists or creates without a name).
    #[serde(default)]
    pub resource_names: Vec<String>,
    /// port-forward only: the pod ports this rule lets a forward reach (`[5432, "8000-8080"]`);
    /// empty: any port. A connection to another port is refused, the rest of the forward goes on.
    #[serde(default)]
    pub ports: Vec<PortRange>,
    /// port-forward only: what is recorded of each connection's bytes, `metadata` (ports,
    /// bytes, times, outcomes; the default) or `full` (also the bytes themselves).
    #[serde(default)]
    pub capture: Capture,
}

/// Ports a rule allows a forward to reach: one port, or an inclusive range written
/// `"8000-8080"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(i64),
            Text(String),
        }
        let port = |n: i64| {
            u16::try_from(n)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("port {n} is not 1-65535"))
        };
        let range = match Raw::deserialize(d)? {
            Raw::One(n) => port(n).map(|p| PortRange { first: p, last: p }),
            Raw::Text(t) => {
                let (a, b) = t.split_once('-').unwrap_or((&t, &t));
                match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
                    (Ok(a), Ok(b)) => port(a).and_then(|first| {
                        let last = port(b)?;
                        if first <= last {
                            Ok(PortRange { first, last })
                        } else {
                            Err(format!("port range {t:?} runs backwards"))
                        }
                    }),
                    _ => Err(format!("{t:?} is not a port or a range like \"8000-8080\"")),
                }
            }
        };
        range.map_err(serde::de::Error::custom)
    }
}

/// What a port-forward's recording keeps of each connection's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capture {
    /// Connections, ports, byte counts, times and outcomes.
    #[default]
    Metadata,
    /// All of that and every byte each way, encrypted like terminal output.
    Full,
}

impl Capture {
    pub fn name(self) -> &'static str {
        match self {
            Capture::Metadata => "metadata",
            Capture::Full => "full",
        }
    }
}

fn core_group() -> Vec<String> {
    vec![String::new()]
}

/// Who gets which roles.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub name: String,
    /// Exact usernames (as mapped by the issuer, prefixes included).
    #[serde(default)]
    pub users: Vec<String>,
    /// Exact group names (as mapped by the issuer).
    #[serde(default)]
    pub groups: Vec<String>,
    /// CI identities: a token from `issuer` whose carried claims match every glob.
    #[serde(default)]
    pub ci: Vec<ClaimMatcher>,
    pub roles: Vec<String>,
    /// Exec/attach sessions allowed by this binding are ended after this long.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_session: Option<Duration>,
}

/// Matches a CI job's token: the issuer exactly, each claim by glob. The claims must be among
/// the issuer's `carry_claims`, or they are never seen.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMatcher {
    pub issuer: String,
    pub claims: std::collections::BTreeMap<String, String>,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("duration {text:?}: {e} (e.g. \"30m\")")))
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

// === impl Policy ===

impl Policy {
    /// Parses and validates a policy; `origin` (a file name) prefixes every message.
    pub fn from_toml(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Syntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        policy.validate(origin)?;
        Ok(policy)
    }

    /// Reads and validates a policy file.
    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Policy::from_toml(&text, &path.display().to_string())
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    fn validate(&self, origin: &str) -> Result<(), PolicyError> {
        let invalid = |what: String, message: String| PolicyError::Invalid {
            origin: origin.to_string(),
            what,
            message,
        };
        let mut names = BTreeSet::new();
        for role in &self.roles {
            let what = format!("role {:?}", role.name);
            if !valid_name(&role.name) {
                return Err(invalid(
                    what,
                    "a role name is 1-63 characters of a-z, 0-9, '-', '_' or '.'".into(),
                ));
            }
            if !names.insert(role.name.as_str()) {
                return Err(invalid(what, "defined twice".into()));
            }
            if role.rules.is_empty() {
                return Err(invalid(
                    what,
                    "has no rules (it would allow nothing)".into(),
                ));
            }
            for (i, rule) in role.rules.iter().enumerate() {
                rule.validate()
                    .map_err(|m| invalid(format!("{what} rule {}", i + 1), m))?;
            }
            if role.requestable && role.approvers.iter().all(|g| g.is_empty()) {
                return Err(invalid(
                    what,
                    "is requestable but names no approvers (groups that may approve requests)"
                        .into(),
                ));
            }
            if !role.requestable && (!role.approvers.is_empty() || !role.requesters.is_empty()) {
                return Err(invalid(
                    what,
                    "has approvers or requesters but is not `requestable = true`".into(),
                ));
            }
            if role.max_ttl < Duration::from_secs(1) || role.max_ttl > Duration::from_secs(86_400) {
                return Err(invalid(what, "max_ttl must be between 1s and 24h".into()));
            }
        }
        let mut binding_names = BTreeSet::new();
        for binding in &self.bindings {
            let what = format!("binding {:?}", binding.name);
            if binding.name.is_empty() || !binding_names.insert(binding.name.as_str()) {
                return Err(invalid(what, "needs a unique, non-empty name".into()));
            }
            if binding.users.is_empty() && binding.groups.is_empty() && binding.ci.is_empty() {
                return Err(invalid(
                    what,
                    "binds nobody: give users, groups or ci matchers".into(),
                ));
            }
            if binding
                .users
                .iter()
                .chain(&binding.groups)
                .any(String::is_empty)
            {
                return Err(invalid(what, "an empty user or group name".into()));
            }
            for m in &binding.ci {
                if m.issuer.is_empty() || m.claims.is_empty() {
                    return Err(invalid(
                        what,
                        "a ci matcher needs an issuer and at least one claim (otherwise every job of that issuer matches)".into(),
                    ));
                }
            }
            if binding.roles.is_empty() {
                return Err(invalid(what, "grants no roles".into()));
            }
            for role in &binding.roles {
                if !names.contains(role.as_str()) {
                    return Err(invalid(what, format!("names an undefined role {role:?}")));
                }
            }
            if binding
                .max_session
                .is_some_and(|d| d.is_zero() || d > MAX_SESSION_LIMIT)
            {
                return Err(invalid(
                    what,
                    "max_session must be between 1s and 31 days".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Role names travel in request paths and CLI arguments: keep them plain.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

// === impl Rule ===

impl Rule {
    fn validate(&self) -> Result<(), String> {
        for (field, list) in [
            ("namespaces", &self.namespaces),
            ("resources", &self.resources),
            ("verbs", &self.verbs),
            ("api_groups", &self.api_groups),
        ] {
            if list.is_empty() {
                return Err(format!("`{field}` is empty (the rule would match nothing)"));
            }
        }
        if let Some(ns) = self.namespaces.iter().find(|n| n.is_empty()) {
            return Err(format!("empty namespace pattern {ns:?}"));
        }
        for verb in &self.verbs {
            if verb != "*" && !VERBS.contains(&verb.as_str()) {
                let hint =
                    if ["exec", "attach", "portforward", "port-forward"].contains(&verb.as_str()) {
                        format!(
                            " ({verb} is verb \"create\" on resource \"pods/{}\")",
                            verb.replace('-', "")
                        )
                    } else {
                        String::new()
                    };
                return Err(format!(
                    "unknown verb {verb:?}{hint}; verbs are {} or \"*\"",
                    VERBS.join(", ")
                ));
            }
        }
        for resource in &self.resources {
            let mut parts = resource.split('/');
            let (res, sub, extra) = (parts.next(), parts.next(), parts.next());
            if res.is_none_or(str::is_empty)
                || sub.is_some_and(str::is_empty)
                || extra.is_some()
                || (resource.contains('*') && !matches!(res, Some("*")) && sub != Some("*"))
            {
                return Err(format!(
                    "resource {resource:?} is not of the form \"pods\", \"pods/exec\", \"pods/*\", \"*/scale\" or \"*\""
                ));
            }
        }
        let forwards = self.resources.iter().any(|r| {
            let (res, sub) = r.split_once('/').unwrap_or((r, ""));
            r == "*" || (matches!(res, "pods" | "*") && matches!(sub, "portforward" | "*"))
        });
        if (!self.ports.is_empty() || self.capture != Capture::default()) && !forwards {
            return Err(
                "`ports` and `capture` are about port-forward: the rule must cover resource \"pods/portforward\""
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[roles]]
name = "developer"
[[roles.rules]]
namespaces = ["staging"]
resources = ["pods", "pods/log", "pods/exec"]
verbs = ["get", "list", "watch", "create"]

[[roles]]
name = "prod-debug"
requestable = true
approvers = ["sre"]
max_ttl = "1h"
[[roles.rules]]
namespaces = ["prod"]
resources = ["pods", "pods/exec"]
verbs = ["get", "list", "create"]

[[bindings]]
name = "developers"
groups = ["developers"]
roles = ["developer"]
max_session = "8h"

[[bindings]]
name = "deploy"
roles = ["developer"]
[[bindings.ci]]
issuer = "https://ci"
claims = { repository = "org/*" }
"#;

    #[test]
    fn a_good_policy_parses() {
        let p = Policy::from_toml(GOOD, "p.toml").unwrap();
        assert_eq!(p.roles.len(), 2);
        assert_eq!(p.roles[0].rules[0].api_groups, vec![String::new()]);
        assert_eq!(p.roles[1].max_ttl, Duration::from_secs(3600));
        assert_eq!(
            p.bindings[0].max_session,
            Some(Duration::from_secs(8 * 3600))
        );
        assert_eq!(p.bindings[1].ci[0].claims["repository"], "org/*");
    }

    /// Each bad file is refused with a message that names the fault.
    #[test]
    fn bad_policies_say_why() {
        let cases: &[(&str, &str)] = &[
            ("roles = 3", "invalid type"),
            (
                "[[roles]]\nname = \"x\"\nrules = []\n",
                "role \"x\": has no rules",
            ),
            (
                "[[roles]]\nname = \"x\"\n[[roles.rules]]\nnamespaces = [\"a\"]\nresources = [\"pods/exec\"]\nverbs = [\"exec\"]\n",
                "role \"x\" rule 1: unknown verb \"exec\" (exec is verb \"create\" on resource \"pods/exec\")",
            ),
            (
                "[[roles]]\nname = \"x\"\n[[roles.rules]]\nnamespaces = [\"a\"]\nresources = [\"pods\"]\nverbs = [\"get\"]\nverb = [\"list\"]\n",
                "unknown field `verb`",
            ),
            (
                "[[roles]]\nname = \"x\"\n[[roles.rules]]\nnamespaces = [\"a\"]\nresources = [\"po*\"]\nverbs = [\"get\"]\n",
                "resource \"po*\" is not of the form",
            ),
            (
                "[[roles]]\nname = \"x\"\nrequestable = true\n[[roles.rules]]\nnamespaces = [\"a\"]\nresources = [\"pods\"]\nverbs = [\"get\"]\n",
                "names no approvers",
            ),
            (
                "[[roles]]\nname = \"x\"\nmax_ttl = \"soon\"\n[[roles.rules]]\nnamespaces = [\"a\"]\nresources = [\"pods\"]\nverbs = [\"get\"]\n",
                "duration \"soon\"",
            ),
            (
                "[[bindings]]\nname = \"b\"\ngroups = [\"g\"]\nroles = [\"ghost\"]\n",
                "binding \"b\": names an undefined role \"ghost\"",
            ),
            (
                "[[roles]]\nname = \"x\"\n[[roles.rules]]\nnamespaces = [\"a\"]\nresources = [\"pods\"]\nverbs = [\"get\"]\n[[bindings]]\nname = \"b\"\nroles = [\"x\"]\n",
                "binds nobody",
            ),
            (
                "[[roles]]\nname = \"x\"\n[[roles.rules]]\nnamespaces = [\"a\"]\nresources = [\"pods\"]\nverbs = [\"get\"]\n[[bindings]]\nname = \"b\"\nroles = [\"x\"]\n[[bindings.ci]]\nissuer = \"https://ci\"\nclaims = {}\n",
                "at least one claim",
            ),
            (
                "[[roles]]\nname = \"x\"\n[[roles.rules]]\nnamespaces = [\"a\"]\nresources = [\"pods\"]\nverbs = [\"get\"]\n[[bindings]]\nname = \"b\"\ngroups = [\"g\"]\nroles = [\"x\"]\nmax_session = \"100000y\"\n",
                "max_session must be between 1s and 31 days",
            ),
            (
                "[[roles]]\nname = \"Bad Name\"\n[[roles.rules]]\nnamespaces = [\"a\"]\nresources = [\"pods\"]\nverbs = [\"get\"]\n",
                "a role name is",
            ),
        ];
        for (text, want) in cases {
            let err = Policy::from_toml(text, "p.toml").unwrap_err().to_string();
            assert!(err.starts_with("p.toml: "), "{err}");
            assert!(err.contains(want), "{text}\n→ {err}\n(wanted {want:?})");
        }
    }

    #[test]
    fn port_forward_rules_take_ports_and_capture() {
        let rule = |extra: &str| {
            format!(
                "[[roles]]\nname = \"x\"\n[[roles.rules]]\nnamespaces = [\"a\"]\nresources = [\"pods/portforward\"]\nverbs = [\"create\"]\n{extra}"
            )
        };
        let p = Policy::from_toml(
            &rule("ports = [5432, \"8000-8080\", \" 9 \"]\ncapture = \"full\"\n"),
            "p",
        )
        .unwrap();
        let r = &p.roles[0].rules[0];
        assert_eq!(
            r.ports,
            [
                PortRange {
                    first: 5432,
                    last: 5432
                },
                PortRange {
                    first: 8000,
                    last: 8080
                },
                PortRange { first: 9, last: 9 }
            ]
        );
        assert_eq!(r.capture, Capture::Full);
        assert!(r.ports[1].contains(8080) && !r.ports[1].contains(8081));
        assert_eq!(r.ports[1].to_string(), "8000-8080");
        let defaults = Policy::from_toml(&rule(""), "p").unwrap();
        assert_eq!(defaults.roles[0].rules[0].capture, Capture::Metadata);
        for (extra, want) in [
            ("ports = [0]\n", "port 0 is not 1-65535"),
            ("ports = [70000]\n", "port 70000 is not 1-65535"),
            ("ports = [\"90-80\"]\n", "runs backwards"),
            ("ports = [\"http\"]\n", "is not a port or a range"),
            ("capture = \"everything\"\n", "unknown variant `everything`"),
        ] {
            let err = Policy::from_toml(&rule(extra), "p")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{extra}: {err}");
        }
        // Only where port-forward is covered.
        let exec_only = "[[roles]]\nname = \"x\"\n[[roles.rules]]\nnamespaces = [\"a\"]\nresources = [\"pods/exec\"]\nverbs = [\"create\"]\nports = [80]\n";
        let err = Policy::from_toml(exec_only, "p").unwrap_err().to_string();
        assert!(
            err.contains("rule 1: `ports` and `capture` are about port-forward"),
            "{err}"
        );
        for covering in ["pods/*", "*", "*/portforward"] {
            let text = exec_only.replace("pods/exec", covering);
            assert!(Policy::from_toml(&text, "p").is_ok(), "{covering}");
        }
    }

    #[test]
    fn an_empty_policy_is_valid_and_allows_nothing() {
        assert_eq!(Policy::from_toml("", "p").unwrap(), Policy::default());
    }
}

#[cfg(test)]
mod example {
    /// The shipped example must stay valid.
    #[test]
    fn the_example_policy_is_valid() {
        let text = include_str!("../../policy.example.toml");
        let policy = super::Policy::from_toml(text, "policy.example.toml").unwrap();
        assert!(policy.role("prod-debug").is_some_and(|r| r.requestable));
    }
}
