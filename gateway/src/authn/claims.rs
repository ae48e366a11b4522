//! Claim checks (RFC 7519 §4.1) and the mapping of verified claims to an [`Identity`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::config::IssuerConfig;
use super::error::AuthError;

/// Kubernetes reserves this prefix for its own users and groups (`system:masters`, `system:node:…`).
const RESERVED_PREFIX: &str = "system:";

/// Who a verified token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Username: `username_prefix` + the username claim.
    pub user: String,
    /// Groups: `groups_prefix` + each entry of the groups claim, in token order.
    pub groups: Vec<String>,
    /// The issuer that vouched for it (its configured `issuer`).
    pub issuer: String,
    /// The `carry_claims` the token had, as strings (JSON text for non-string values).
    pub claims: BTreeMap<String, String>,
    /// The token's `exp`: nothing it authorizes should outlive it.
    pub expires_at: SystemTime,
    /// How long a stream it opened may outlive `expires_at` (the issuer's skew plus its
    /// `session_grace_secs`).
    pub session_grace: Duration,
}

/// Checks the registered claims of a token whose signature has been verified, then maps it.
pub(crate) fn check_and_map(
    cfg: &IssuerConfig,
    claims: &Map<String, Value>,
    now: SystemTime,
) -> Result<Identity, AuthError> {
    if claims.get("iss").and_then(Value::as_str) != Some(cfg.issuer.as_str()) {
        // Issuers are chosen by this very claim; reaching here means a bug, not a bad token.
        return Err(AuthError::UnknownIssuer);
    }

    let now = seconds_since_epoch(now);
    let skew = i64::try_from(cfg.max_skew_secs).unwrap_or(i64::MAX);
    let exp = numeric_date(claims, "exp")?.ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
    if now >= exp.saturating_add(skew) {
        return Err(AuthError::Expired);
    }
    for name in ["nbf", "iat"] {
        if numeric_date(claims, name)?.is_some_and(|t| t > now.saturating_add(skew)) {
            return Err(AuthError::NotYetValid);
        }
    }
    // From when it was issued, or (without `iat`) from now: either way no further out than allowed.
    let issued = numeric_date(claims, "iat")?.unwrap_or(now).min(now);
    let lifetime = i64::try_from(cfg.max_token_lifetime_secs).unwrap_or(i64::MAX);
    if exp.saturating_sub(issued) > lifetime.saturating_add(skew) {
        return Err(AuthError::LifetimeTooLong(cfg.max_token_lifetime_secs));
    }
    check_audience(cfg, claims)?;

    let user = match claims.get(&cfg.username_claim) {
        None | Some(Value::Null) => {
            return Err(AuthError::MissingClaim(cfg.username_claim.clone()));
        }
        Some(Value::String(s)) if !s.is_empty() => prefixed(&cfg.username_prefix, s),
        Some(_) => return Err(AuthError::InvalidClaim(cfg.username_claim.clone())),
    };
    if user.starts_with(RESERVED_PREFIX) {
        return Err(AuthError::ReservedName(cfg.username_claim.clone()));
    }

    let mut groups = Vec::new();
    if let Some(claim) = &cfg.groups_claim {
        let invalid = || AuthError::InvalidClaim(claim.clone());
        let raw: Vec<&str> = match claims.get(claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items
                .iter()
                .map(Value::as_str)
                .collect::<Option<_>>()
                .ok_or_else(invalid)?,
            Some(_) => return Err(invalid()),
        };
        for group in raw.into_iter().filter(|g| !g.is_empty()) {
            let group = prefixed(&cfg.groups_prefix, group);
            if group.starts_with(RESERVED_PREFIX) {
                return Err(AuthError::ReservedName(claim.clone()));
            }
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
    }

    let carried = cfg
        .carry_claims
        .iter()
        .filter_map(|name| {
            let value = match claims.get(name)? {
                Value::Null => return None,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((name.clone(), value))
        })
        .collect();

    Ok(Identity {
        user,
        groups,
        issuer: cfg.issuer.clone(),
        claims: carried,
        expires_at: UNIX_EPOCH + Duration::from_secs(u64::try_from(exp).unwrap_or(0)),
        session_grace: Duration::from_secs(
            cfg.max_skew_secs.saturating_add(cfg.session_grace_secs),
        ),
    })
}

fn check_audience(cfg: &IssuerConfig, claims: &Map<String, Value>) -> Result<(), AuthError> {
    let invalid = || AuthError::InvalidClaim("aud".into());
    let auds: Vec<&str> = match claims.get("aud") {
        None | Some(Value::Null) => return Err(AuthError::MissingClaim("aud".into())),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(invalid)?,
        Some(_) => return Err(invalid()),
    };
    if auds
        .iter()
        .any(|aud| cfg.audience.iter().any(|want| want == aud))
    {
        Ok(())
    } else {
        Err(AuthError::WrongAudience)
    }
}

/// A NumericDate claim (seconds since the epoch, possibly fractional), floored to whole seconds.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            // `as` saturates, so absurd values stay absurd rather than wrapping.
            .or_else(|| n.as_f64().map(|f| f.floor() as i64))
            .map(Some)
            .ok_or_else(|| AuthError::InvalidClaim(name.into())),
        Some(_) => Err(AuthError::InvalidClaim(name.into())),
    }
}

fn seconds_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn prefixed(prefix: &Option<String>, value: &str) -> String {
    match prefix {
        Some(p) => format!("{p}{value}"),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::JwksSource;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn cfg() -> IssuerConfig {
        IssuerConfig::new("https://iss", "aud", JwksSource::File("unused".into()))
    }

    fn check(cfg: &IssuerConfig, claims: Value) -> Result<Identity, AuthError> {
        let Value::Object(map) = claims else { panic!() };
        check_and_map(cfg, &map, UNIX_EPOCH + Duration::from_secs(NOW as u64))
    }

    fn base() -> Value {
        json!({"iss": "https://iss", "aud": "aud", "sub": "alice", "exp": NOW + 60})
    }

    fn with(mut v: Value, key: &str, value: Value) -> Value {
        v[key] = value;
        v
    }

    fn without(mut v: Value, key: &str) -> Value {
        v.as_object_mut().unwrap().remove(key);
        v
    }

    #[test]
    fn tokens_valid_for_longer_than_the_issuer_allows_are_refused() {
        let c = IssuerConfig {
            max_token_lifetime_secs: 3600,
            max_skew_secs: 0,
            ..cfg()
        };
        let day = with(base(), "exp", json!(NOW + 86_400));
        assert_eq!(
            check(&c, day.clone()),
            Err(AuthError::LifetimeTooLong(3600))
        );
        // Counted from iat when there is one: an hour-long token issued 30 min ago is fine...
        let issued = with(
            with(base(), "iat", json!(NOW - 1800)),
            "exp",
            json!(NOW + 1800),
        );
        assert!(check(&c, issued).is_ok());
        // ...but a token issued an hour ago and valid for a day more is not.
        let stretched = with(
            with(base(), "iat", json!(NOW - 3600)),
            "exp",
            json!(NOW + 86_400),
        );
        assert_eq!(check(&c, stretched), Err(AuthError::LifetimeTooLong(3600)));
        // A future iat cannot shorten the count.
        let backdated = with(
            with(base(), "iat", json!(NOW + 86_000)),
            "exp",
            json!(NOW + 86_400),
        );
        assert!(check(&c, backdated).is_err());
        let id = check(&c, with(base(), "exp", json!(NOW + 3600))).unwrap();
        assert_eq!(id.session_grace, Duration::from_secs(3600));
    }

    #[test]
    fn time_claims_with_skew() {
        let c = cfg(); // 30 s skew
        assert!(check(&c, base()).is_ok());
        assert!(check(&c, with(base(), "exp", json!(NOW - 29))).is_ok());
        assert_eq!(
            check(&c, with(base(), "exp", json!(NOW - 30))),
            Err(AuthError::Expired)
        );
        assert_eq!(
            check(&c, with(base(), "exp", json!(-5))),
            Err(AuthError::Expired)
        );
        assert!(check(&c, with(base(), "exp", json!(NOW as f64 + 0.5))).is_ok());
        // Absurdly far: over the issuer's maximum lifetime (below), not an overflow.
        assert_eq!(
            check(&c, with(base(), "exp", json!(1e300))),
            Err(AuthError::LifetimeTooLong(24 * 3600))
        );
        assert_eq!(
            check(&c, without(base(), "exp")),
            Err(AuthError::MissingClaim("exp".into()))
        );
        assert_eq!(
            check(&c, with(base(), "exp", json!("soon"))),
            Err(AuthError::InvalidClaim("exp".into()))
        );
        for claim in ["nbf", "iat"] {
            assert!(check(&c, with(base(), claim, json!(NOW + 30))).is_ok());
            assert_eq!(
                check(&c, with(base(), claim, json!(NOW + 31))),
                Err(AuthError::NotYetValid)
            );
            assert!(check(&c, with(base(), claim, json!(NOW - 3600))).is_ok());
        }
        let strict = IssuerConfig {
            max_skew_secs: 0,
            ..cfg()
        };
        assert_eq!(
            check(&strict, with(base(), "exp", json!(NOW))),
            Err(AuthError::Expired)
        );
        assert_eq!(
            check(&strict, with(base(), "nbf", json!(NOW + 1))),
            Err(AuthError::NotYetValid)
        );
        let id = check(&c, base()).unwrap();
        assert_eq!(
            id.expires_at,
            UNIX_EPOCH + Duration::from_secs((NOW + 60) as u64)
        );
    }

    #[test]
    fn audience() {
        let c = IssuerConfig {
            audience: vec!["a".into(), "b".into()],
            ..cfg()
        };
        assert!(check(&c, with(base(), "aud", json!("b"))).is_ok());
        assert!(check(&c, with(base(), "aud", json!(["x", "a"]))).is_ok());
        assert_eq!(
            check(&c, with(base(), "aud", json!(["x", "y"]))),
            Err(AuthError::WrongAudience)
        );
        assert_eq!(
            check(&c, with(base(), "aud", json!([]))),
            Err(AuthError::WrongAudience)
        );
        assert_eq!(
            check(&c, with(base(), "aud", json!("A"))),
            Err(AuthError::WrongAudience)
        );
        assert_eq!(
            check(&c, with(base(), "aud", json!(["a", 1]))),
            Err(AuthError::InvalidClaim("aud".into()))
        );
        assert_eq!(
            check(&c, without(base(), "aud")),
            Err(AuthError::MissingClaim("aud".into()))
        );
    }

    #[test]
    fn username_and_groups() {
        let c = IssuerConfig {
            username_claim: "email".into(),
            username_prefix: Some("oidc:".into()),
            groups_prefix: Some("oidc:".into()),
            ..cfg()
        };
        let claims = with(
            with(base(), "email", json!("a@corp")),
            "groups",
            json!(["dev", "", "ops", "dev"]),
        );
        let id = check(&c, claims).unwrap();
        assert_eq!(
            (id.user.as_str(), id.groups),
            ("oidc:a@corp", vec!["oidc:dev".into(), "oidc:ops".into()])
        );

        let single = with(
            with(base(), "email", json!("a@corp")),
            "groups",
            json!("dev"),
        );
        assert_eq!(check(&c, single).unwrap().groups, ["oidc:dev"]);
        assert_eq!(
            check(&c, base()),
            Err(AuthError::MissingClaim("email".into()))
        );
        assert_eq!(
            check(&c, with(base(), "email", json!(""))),
            Err(AuthError::InvalidClaim("email".into()))
        );
        assert_eq!(
            check(&c, with(base(), "email", json!(7))),
            Err(AuthError::InvalidClaim("email".into()))
        );
        let bad_groups = with(with(base(), "email", json!("a")), "groups", json!([1]));
        assert_eq!(
            check(&c, bad_groups),
            Err(AuthError::InvalidClaim("groups".into()))
        );

        // Without prefixes, Kubernetes' reserved names are refused rather than passed on.
        let plain = cfg();
        let admin = with(base(), "sub", json!("system:admin"));
        assert_eq!(
            check(&plain, admin),
            Err(AuthError::ReservedName("sub".into()))
        );
        let masters = with(base(), "groups", json!(["dev", "system:masters"]));
        assert_eq!(
            check(&plain, masters.clone()),
            Err(AuthError::ReservedName("groups".into()))
        );
        // A prefix makes them harmless, and no groups claim means no groups.
        assert_eq!(
            check(&c, with(masters.clone(), "email", json!("a")))
                .unwrap()
                .groups[1],
            "oidc:system:masters"
        );
        let no_groups = IssuerConfig {
            groups_claim: None,
            ..cfg()
        };
        assert!(check(&no_groups, masters).unwrap().groups.is_empty());
    }

    #[test]
    fn carried_claims() {
        let c = IssuerConfig {
            carry_claims: vec!["repository".into(), "run_id".into(), "x".into(), "n".into()],
            ..cfg()
        };
        let claims = json!({
            "iss": "https://iss", "aud": "aud", "sub": "repo:o/r", "exp": NOW + 60,
            "repository": "o/r", "run_id": 42, "x": {"a": [1]}, "n": null, "other": "dropped"
        });
        let id = check(&c, claims).unwrap();
        let want: BTreeMap<String, String> = [
            ("repository", "o/r"),
            ("run_id", "42"),
            ("x", r#"{"a":[1]}"#),
        ]
        .map(|(k, v)| (k.into(), v.into()))
        .into();
        assert_eq!(id.claims, want);
        assert_eq!(id.issuer, "https://iss");
    }
}
