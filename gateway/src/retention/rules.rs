//! `[retention]` in the gateway configuration: which streams are kept how long.
//!
//! ```toml
//! [retention]
//! enabled = true            # every gateway tries to run a pass every interval_secs
//! interval_secs = 3600
//! lease_ttl_secs = 900      # one pass at a time; a pass stops deleting before its lease ends
//!
//! [[retention.rules]]       # the first rule that matches a stream decides
//! name = "prod"
//! keep_days = 400
//! clusters = ["prod*"]      # every list given must match (`*` wildcards); empty = any
//!
//! [[retention.rules]]
//! name = "default"
//! keep_days = 90
//! ```
//! Criteria: `clusters`, `namespaces`, `kinds` (`shell` = exec, attach and local recordings;
//! or `exec`, `attach`, `local`, `debug`, `port-forward`, `audit`), `users`, `groups` (any of
//! the stream's groups). A stream no rule matches is kept forever: deleting is what a rule
//! must say.
//!
//! **Audit streams** are kept at least as long as the longest rule for sessions, whatever
//! their own rule says: an audit stream holds the records of sessions that started before it
//! ended, so it must outlive every one of them ([`Rules::keep_for`]).
//!
//! **Age** runs from a stream's end (its start plus its duration, from its verified seal).

use serde::Deserialize;
use storage_schema::store::holds::glob;
use storage_schema::{SessionKind, SessionMeta, StreamClass};

/// Microseconds in a day.
pub const DAY_US: u64 = 86_400 * 1_000_000;

/// `[retention]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Run passes in this gateway (every gateway sharing the store may; one runs at a time).
    #[serde(default)]
    pub enabled: bool,
    /// Seconds between attempts to run a pass.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// How long a pass's lease lasts; a pass stops deleting before it runs out, and another
    /// gateway may start one after it (plus a margin for clock skew).
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_secs: u64,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: default_interval(),
            lease_ttl_secs: default_lease_ttl(),
            rules: Vec::new(),
        }
    }
}

fn default_interval() -> u64 {
    3600
}

fn default_lease_ttl() -> u64 {
    900
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub keep_days: u32,
    #[serde(default)]
    pub clusters: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

const KINDS: &[&str] = &[
    "shell",
    "exec",
    "attach",
    "local",
    "debug",
    "port-forward",
    "audit",
];

/// Why the rules are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("retention rule #{0} has no name")]
    NoName(usize),
    #[error("two retention rules are named {0:?}")]
    Duplicate(String),
    #[error("retention rule {0:?}: keep_days must be at least 1")]
    TooShort(String),
    #[error("retention rule {rule:?}: unknown kind {kind:?} (one of {known})")]
    UnknownKind {
        rule: String,
        kind: String,
        known: String,
    },
    #[error("retention is enabled but has no rules: nothing would ever be deleted")]
    Empty,
}

/// Checked rules.
#[derive(Debug, Clone)]
pub struct Rules {
    rules: Vec<Rule>,
    /// The longest `keep_days` of any rule that can match a session (not only audit streams).
    longest_session_days: u32,
}

/// What the rules decide for one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    pub rule: String,
    pub days: u32,
}

impl Rules {
    pub fn new(config: &RetentionConfig) -> Result<Self, RulesError> {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in config.rules.iter().enumerate() {
            if r.name.trim().is_empty() {
                return Err(RulesError::NoName(i + 1));
            }
            if !seen.insert(r.name.clone()) {
                return Err(RulesError::Duplicate(r.name.clone()));
            }
            if r.keep_days == 0 {
                return Err(RulesError::TooShort(r.name.clone()));
            }
            for k in &r.kinds {
                if !KINDS.contains(&k.as_str()) {
                    return Err(RulesError::UnknownKind {
                        rule: r.name.clone(),
                        kind: k.clone(),
                        known: KINDS.join(", "),
                    });
                }
            }
        }
        if config.enabled && config.rules.is_empty() {
            return Err(RulesError::Empty);
        }
        let longest_session_days = config
            .rules
            .iter()
            .filter(|r| r.kinds.is_empty() || r.kinds.iter().any(|k| k != "audit"))
            .map(|r| r.keep_days)
            .max()
            .unwrap_or(0);
        Ok(Self {
            rules: config.rules.clone(),
            longest_session_days,
        })
    }

    /// The shortest time anything is kept, in µs: streams younger than this are not read.
    pub fn shortest_us(&self) -> Option<u64> {
        self.rules
            .iter()
            .map(|r| u64::from(r.keep_days) * DAY_US)
            .min()
    }

    /// How long to keep the stream `meta` describes, or `None` (kept forever: no rule matches).
    pub fn keep_for(&self, meta: &SessionMeta) -> Option<Keep> {
        let rule = self.rules.iter().find(|r| matches(r, meta))?;
        let days = match meta.class() {
            // A port-forward's recording is a person's session like any other.
            StreamClass::Session | StreamClass::PortForward => rule.keep_days,
            // An audit stream outlives every session it may mention.
            StreamClass::AuditStream => rule.keep_days.max(self.longest_session_days),
        };
        Some(Keep {
            rule: rule.name.clone(),
            days,
        })
    }
}

fn kind_names(kind: SessionKind) -> &'static [&'static str] {
    match kind {
        SessionKind::Exec => &["exec", "shell"],
        SessionKind::Attach => &["attach", "shell"],
        SessionKind::Local => &["local", "shell"],
        SessionKind::Debug => &["debug"],
        SessionKind::PortForward => &["port-forward"],
        SessionKind::Audit => &["audit"],
    }
}

fn any_glob(patterns: &[String], value: Option<&str>) -> bool {
    patterns.is_empty() || value.is_some_and(|v| patterns.iter().any(|p| glob(p, v)))
}

fn matches(rule: &Rule, meta: &SessionMeta) -> bool {
    let kinds = kind_names(meta.kind);
    any_glob(&rule.clusters, meta.target.cluster.as_deref())
        && any_glob(&rule.namespaces, meta.target.namespace.as_deref())
        && (rule.kinds.is_empty() || rule.kinds.iter().any(|k| kinds.contains(&k.as_str())))
        && any_glob(&rule.users, Some(&meta.identity.user))
        && (rule.groups.is_empty()
            || meta
                .identity
                .groups
                .iter()
                .any(|g| rule.groups.iter().any(|p| glob(p, g))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_schema::{Identity, Target};

    fn config(toml_text: &str) -> RetentionConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn meta(kind: SessionKind, cluster: &str, ns: &str, user: &str) -> SessionMeta {
        SessionMeta::new(
            kind,
            Identity {
                user: user.into(),
                groups: vec!["sre".into()],
                ..Identity::default()
            },
            Target {
                cluster: Some(cluster.into()),
                namespace: Some(ns.into()),
                ..Target::default()
            },
            vec![],
            true,
        )
    }

    const RULES: &str = r#"
        enabled = true
        [[rules]]
        name = "prod"
        keep_days = 400
        clusters = ["prod*"]
        [[rules]]
        name = "debug"
        keep_days = 30
        kinds = ["debug", "port-forward"]
        [[rules]]
        name = "audit"
        keep_days = 7
        kinds = ["audit"]
        [[rules]]
        name = "rest"
        keep_days = 90
    "#;

    #[test]
    fn the_first_matching_rule_decides() {
        let rules = Rules::new(&config(RULES)).unwrap();
        let keep = |m: &SessionMeta| rules.keep_for(m).map(|k| (k.rule, k.days));
        assert_eq!(
            keep(&meta(SessionKind::Debug, "prod-eu", "x", "a")),
            Some(("prod".into(), 400))
        );
        assert_eq!(
            keep(&meta(SessionKind::Debug, "dev", "x", "a")),
            Some(("debug".into(), 30))
        );
        assert_eq!(
            keep(&meta(SessionKind::Exec, "dev", "x", "a")),
            Some(("rest".into(), 90))
        );
        // Audit streams outlive the longest session rule, whatever theirs says.
        assert_eq!(
            keep(&meta(SessionKind::Audit, "dev", "x", "kubetape-gateway")),
            Some(("audit".into(), 400))
        );
        assert_eq!(rules.shortest_us(), Some(7 * DAY_US));
    }

    #[test]
    fn users_groups_and_shell() {
        let rules = Rules::new(&config(
            r#"
            [[rules]]
            name = "ci"
            keep_days = 3
            users = ["ci:*"]
            kinds = ["shell"]
            [[rules]]
            name = "sre"
            keep_days = 5
            groups = ["sre"]
            "#,
        ))
        .unwrap();
        assert_eq!(
            rules
                .keep_for(&meta(SessionKind::Local, "c", "n", "ci:build"))
                .unwrap()
                .rule,
            "ci"
        );
        assert_eq!(
            rules
                .keep_for(&meta(SessionKind::Debug, "c", "n", "ci:build"))
                .unwrap()
                .rule,
            "sre"
        );
        let mut nobody = meta(SessionKind::Exec, "c", "n", "alice");
        nobody.identity.groups.clear();
        assert_eq!(rules.keep_for(&nobody), None, "no rule: kept forever");
    }

    #[test]
    fn bad_rules_are_refused() {
        let err = |t: &str| Rules::new(&config(t)).unwrap_err();
        assert_eq!(
            err("[[rules]]\nname='a'\nkeep_days=0"),
            RulesError::TooShort("a".into())
        );
        assert!(matches!(
            err("[[rules]]\nname='a'\nkeep_days=1\nkinds=['shel']"),
            RulesError::UnknownKind { .. }
        ));
        assert_eq!(
            err("[[rules]]\nname='a'\nkeep_days=1\n[[rules]]\nname='a'\nkeep_days=2"),
            RulesError::Duplicate("a".into())
        );
        assert_eq!(err("enabled = true"), RulesError::Empty);
        assert!(
            toml::from_str::<RetentionConfig>("[[rules]]\nname='a'\nkeep_days=1\nkeep=2").is_err()
        );
    }
}
