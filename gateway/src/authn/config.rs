//! Per-issuer settings, as they appear in the gateway's TOML config:
//!
//! ```toml
//! [[authn.issuers]]
//! issuer = "https://token.actions.githubusercontent.com"
//! audience = ["kubetape"]
//! jwks = { url = "https://token.actions.githubusercontent.com" }   # discovery; or { file = "/etc/kubetape/jwks.json" }
//! username_claim = "sub"
//! username_prefix = "ci:"
//! groups_claim = ""                                                 # "" = this issuer asserts no groups
//! carry_claims = ["repository", "ref", "environment", "workflow", "run_id", "job_id"]
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::error::ConfigError;

/// Where an issuer's signing keys (a JWKS document) come from.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JwksSource {
    /// A local JWKS file, re-read when it changes (mtime, size or inode), so rotating it needs no restart.
    File(PathBuf),
    /// An `https://` URL (`http://` only for loopback hosts). The issuer URL itself means OpenID discovery
    /// (`{issuer}/.well-known/openid-configuration` → `jwks_uri`); any other URL may serve either a discovery
    /// document or the JWKS itself.
    Url(String),
}

/// One trusted token issuer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` value of this issuer's tokens.
    pub issuer: String,
    /// Accepted audiences: a token's `aud` must contain at least one. A single string is accepted too.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Where the verification keys come from.
    pub jwks: JwksSource,
    /// Claim that names the user (a string).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Prepended to the username, e.g. `"oidc:"`, so that issuers cannot collide with each other or with
    /// Kubernetes' own users.
    #[serde(default)]
    pub username_prefix: Option<String>,
    /// Claim that lists the user's groups (a string or an array of strings); `None` (or `""` in TOML) means
    /// this issuer asserts no groups.
    #[serde(default = "default_groups_claim", deserialize_with = "empty_is_none")]
    pub groups_claim: Option<String>,
    /// Prepended to every group.
    #[serde(default)]
    pub groups_prefix: Option<String>,
    /// Claims copied into [`Identity::claims`](super::Identity::claims) for audit and policy (strings as they
    /// are, numbers and booleans in JSON form, arrays and objects as compact JSON). Absent claims are skipped.
    #[serde(default)]
    pub carry_claims: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (at most 300).
    #[serde(default = "default_max_skew_secs")]
    pub max_skew_secs: u64,
    /// Extra PEM CA certificates trusted (besides the system's) when fetching keys over HTTPS.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How long fetched keys are used before they are fetched again, in seconds.
    #[serde(default = "default_jwks_ttl_secs")]
    pub jwks_ttl_secs: u64,
    /// Minimum time between two fetches, in seconds: a token with an unknown `kid` triggers a refresh (key
    /// rotation) at most this often, so random `kid`s cannot make the gateway hammer the issuer.
    #[serde(default = "default_jwks_min_refresh_secs")]
    pub jwks_min_refresh_secs: u64,
    /// The longest validity accepted, in seconds: a token whose `exp` lies further than this past its
    /// `iat` (or, without `iat`, past now) is refused, so a leaked long-lived token is not a standing
    /// credential. Default: 24 hours.
    #[serde(default = "default_max_token_lifetime_secs")]
    pub max_token_lifetime_secs: u64,
    /// How long a stream (exec, attach, port-forward) may go on after the token that opened it
    /// expired, in seconds; then it is ended with a message saying so. kubectl cannot present a new
    /// token to a running stream, and credential plugins hand out cached tokens that may have
    /// minutes left, so the default is an hour: sessions end at most an hour after their token.
    /// 0 ends them with the token (plus the skew). A binding's `max_session` bounds them too.
    #[serde(default = "default_session_grace_secs")]
    pub session_grace_secs: u64,
}

/// The largest `max_skew_secs` accepted: more would keep expired tokens alive for long.
pub const MAX_SKEW_LIMIT_SECS: u64 = 300;

fn default_username_claim() -> String {
    "sub".to_owned()
}
fn default_groups_claim() -> Option<String> {
    Some("groups".to_owned())
}
fn default_max_skew_secs() -> u64 {
    30
}
fn default_jwks_ttl_secs() -> u64 {
    300
}
fn default_jwks_min_refresh_secs() -> u64 {
    30
}
fn default_session_grace_secs() -> u64 {
    3600
}
fn default_max_token_lifetime_secs() -> u64 {
    24 * 3600
}

// === impl IssuerConfig ===

impl IssuerConfig {
    /// An issuer with the defaults: username from `sub`, groups from `groups`, no prefixes, no carried
    /// claims, 30 s skew, keys cached 5 min and refreshed at most every 30 s.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: JwksSource) -> Self {
        IssuerConfig {
            issuer: issuer.into(),
            audience: vec![audience.into()],
            jwks,
            username_claim: default_username_claim(),
            username_prefix: None,
            groups_claim: default_groups_claim(),
            groups_prefix: None,
            carry_claims: Vec::new(),
            max_skew_secs: default_max_skew_secs(),
            ca_file: None,
            jwks_ttl_secs: default_jwks_ttl_secs(),
            jwks_min_refresh_secs: default_jwks_min_refresh_secs(),
            max_token_lifetime_secs: default_max_token_lifetime_secs(),
            session_grace_secs: default_session_grace_secs(),
        }
    }

    /// Checks what can be checked without I/O.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            issuer: self.issuer.clone(),
            reason: reason.to_owned(),
        };
        if self.issuer.is_empty() {
            return Err(invalid("`issuer` is empty"));
        }
        if self.audience.is_empty() || self.audience.iter().any(String::is_empty) {
            return Err(invalid("`audience` needs at least one non-empty value"));
        }
        if self.username_claim.is_empty() {
            return Err(invalid("`username_claim` is empty"));
        }
        if self.max_skew_secs > MAX_SKEW_LIMIT_SECS {
            return Err(invalid("`max_skew_secs` is above 300"));
        }
        if let JwksSource::Url(url) = &self.jwks {
            super::fetch::parse_url(url)
                .map_err(|reason| invalid(&format!("jwks url: {reason}")))?;
        }
        Ok(())
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

fn empty_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_defaults_and_shapes() {
        let cfg: IssuerConfig = toml::from_str(
            r#"
            issuer = "https://issuer.example"
            audience = "kubetape"
            jwks = { file = "/etc/kubetape/jwks.json" }
            "#,
        )
        .unwrap();
        assert_eq!(
            cfg,
            IssuerConfig::new(
                "https://issuer.example",
                "kubetape",
                JwksSource::File("/etc/kubetape/jwks.json".into())
            )
        );
        cfg.validate().unwrap();

        let cfg: IssuerConfig = toml::from_str(
            r#"
            issuer = "https://ci.example"
            audience = ["a", "b"]
            jwks.url = "https://ci.example"
            username_prefix = "ci:"
            groups_claim = ""
            carry_claims = ["repository", "run_id"]
            max_skew_secs = 5
            "#,
        )
        .unwrap();
        assert_eq!(cfg.audience, ["a", "b"]);
        assert_eq!(cfg.jwks, JwksSource::Url("https://ci.example".into()));
        assert_eq!(cfg.groups_claim, None);
        assert_eq!(cfg.username_prefix.as_deref(), Some("ci:"));
        cfg.validate().unwrap();
    }

    #[test]
    fn rejects_typos_and_bad_values() {
        let typo = toml::from_str::<IssuerConfig>(
            r#"
            issuer = "i"
            audience = "a"
            jwks = { file = "j" }
            usernme_claim = "email"
            "#,
        );
        assert!(typo.is_err());

        let mut cfg =
            IssuerConfig::new("i", "a", JwksSource::Url("http://idp.example/jwks".into()));
        assert!(cfg.validate().is_err(), "plain http to a remote host");
        cfg.jwks = JwksSource::Url("http://127.0.0.1:8080/jwks".into());
        cfg.validate().unwrap();
        cfg.max_skew_secs = 3600;
        assert!(cfg.validate().is_err());
        cfg.max_skew_secs = 30;
        cfg.audience = vec![];
        assert!(cfg.validate().is_err());
    }
}
