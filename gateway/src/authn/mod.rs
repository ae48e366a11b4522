//! Authentication: OIDC JWT bearer tokens from people (an IdP) and CI jobs (e.g. GitHub Actions' issuer).
//!
//! [`Authenticator::authenticate`] checks, in this order, and stops at the first failure:
//!
//! 1. the token is a compact JWS of reasonable size with JSON header and claims ([`AuthError::Malformed`]);
//! 2. the header's `alg` is RS256, ES256 or EdDSA — decided on the raw header, *before* any key is chosen, so
//!    `none` and the HS256-with-the-public-key confusion attack fail here ([`AuthError::UnsupportedAlgorithm`]);
//! 3. the (still unverified) `iss` names a configured issuer, by exact match ([`AuthError::UnknownIssuer`]);
//! 4. that issuer's JWKS has a key with the token's `kid` (refreshed once, rate-limited, on a miss: key
//!    rotation), and the key is bound to the token's algorithm by its type and curve and allows it by its
//!    own `alg`/`use`/`key_ops` (without a `kid`, the issuer must have exactly one key for the algorithm);
//! 5. the signature verifies with that key (ring);
//! 6. `exp` is present and not past, `nbf` and `iat` are not in the future (each with `max_skew_secs`), and
//!    `aud` contains a configured audience;
//! 7. the claims map to an [`Identity`]: username and groups (with prefixes, never in Kubernetes' `system:`
//!    namespace), plus the `carry_claims` for audit.
//!
//! Only asymmetric algorithms exist here, so no secret is ever compared; ring verifies signatures.
//! Tokens are never logged; events carry `issuer`, `subject`, `kid`, `alg` and `reason` only.
//!
//! # Layout
//! - `config`: [`IssuerConfig`], [`JwksSource`] (serde, TOML).
//! - `jws`: compact JWS parsing, the algorithm allow-list, signature verification.
//! - `jwks`: JWK Set parsing and key selection.
//! - `cache`: per-issuer key cache (file mtime, TTL, unknown-`kid` refresh, rate limit).
//! - `fetch`: minimal HTTPS GET for JWKS and discovery documents.
//! - `claims`: time and audience checks, claim mapping, [`Identity`].

mod cache;
mod claims;
mod config;
mod error;
mod fetch;
mod jwks;
mod jws;

use std::collections::HashMap;
use std::time::SystemTime;

pub use self::claims::Identity;
pub use self::config::{IssuerConfig, JwksSource, MAX_SKEW_LIMIT_SECS};
pub use self::error::{AuthError, ConfigError};

use self::cache::KeyCache;
use self::error::sanitize;
use self::jwks::Selection;
use self::jws::Alg;

/// Validates bearer tokens against a set of trusted issuers. Cheap to share (`Arc`); all methods take
/// `&self`.
#[derive(Debug)]
pub struct Authenticator {
    issuers: HashMap<String, Issuer>,
}

#[derive(Debug)]
struct Issuer {
    config: IssuerConfig,
    keys: KeyCache,
}

// === impl Authenticator ===

impl Authenticator {
    /// Checks the configuration; keys are loaded on first use (or by [`Authenticator::preload`]).
    pub fn new(configs: Vec<IssuerConfig>) -> Result<Authenticator, ConfigError> {
        let mut issuers = HashMap::with_capacity(configs.len());
        for config in configs {
            config.validate()?;
            let keys = KeyCache::new(&config)?;
            if issuers.contains_key(&config.issuer) {
                return Err(ConfigError::DuplicateIssuer(config.issuer));
            }
            issuers.insert(config.issuer.clone(), Issuer { config, keys });
        }
        Ok(Authenticator { issuers })
    }

    /// The configured issuers.
    pub fn issuers(&self) -> impl Iterator<Item = &IssuerConfig> {
        self.issuers.values().map(|i| &i.config)
    }

    /// Loads every issuer's keys now, so that problems show at startup rather than on the first request.
    /// Returns the issuers whose keys could not be loaded (each also logged); they are retried on use.
    pub async fn preload(&self) -> Vec<(String, AuthError)> {
        let mut failed = Vec::new();
        for (name, issuer) in &self.issuers {
            if let Err(e) = issuer.keys.keys().await {
                failed.push((name.clone(), e));
            }
        }
        failed
    }

    /// Verifies `token` (the bearer credential itself, without the `Bearer ` scheme) and returns who it
    /// speaks for.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        let mut seen = Seen::default();
        let result = self.check(token, SystemTime::now(), &mut seen).await;
        let (issuer, kid, alg) = (
            seen.issuer.as_deref(),
            seen.kid.as_deref(),
            seen.alg.map(Alg::name),
        );
        match &result {
            Ok(id) => tracing::debug!(issuer, subject = %id.user, kid, alg, "token accepted"),
            Err(reason) => tracing::debug!(issuer, kid, alg, %reason, "token rejected"),
        }
        result
    }

    async fn check(
        &self,
        token: &str,
        now: SystemTime,
        seen: &mut Seen,
    ) -> Result<Identity, AuthError> {
        let jws = jws::parse(token)?;
        seen.alg = Some(jws.alg);
        seen.kid = jws.kid.as_deref().map(sanitize);
        let issuer = match jws.claims.get("iss") {
            Some(serde_json::Value::String(iss)) => self.issuers.get(iss).ok_or_else(|| {
                seen.issuer = Some(sanitize(iss));
                AuthError::UnknownIssuer
            })?,
            Some(_) => return Err(AuthError::InvalidClaim("iss".into())),
            None => return Err(AuthError::MissingClaim("iss".into())),
        };
        seen.issuer = Some(issuer.config.issuer.clone());

        let kid = jws.kid.as_deref();
        let mut keys = issuer.keys.keys().await?;
        let mut selection = keys.select(kid, jws.alg);
        if matches!(selection, Selection::Unknown) {
            // Perhaps the issuer rotated its keys since we loaded them.
            if let Some(fresh) = issuer.keys.refresh_for_unknown_kid().await {
                keys = fresh;
                selection = keys.select(kid, jws.alg);
            }
        }
        let Selection::Keys(candidates) = &selection else {
            return Err(selection.error(kid, jws.alg));
        };
        // Several candidates only when an issuer publishes one `kid` twice; any of them may have signed.
        if !candidates.iter().any(|key| jws.verify(key).is_ok()) {
            return Err(AuthError::BadSignature);
        }
        claims::check_and_map(&issuer.config, &jws.claims, now)
    }
}

/// What is known about a token so far, for the log line (never the token itself).
#[derive(Default)]
struct Seen {
    /// The configured issuer, or the sanitized claim of an unknown one.
    issuer: Option<String>,
    kid: Option<String>,
    alg: Option<Alg>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_issuers_are_refused() {
        let cfg = IssuerConfig::new("https://i", "a", JwksSource::File("k.json".into()));
        assert!(matches!(
            Authenticator::new(vec![cfg.clone(), cfg]),
            Err(ConfigError::DuplicateIssuer(i)) if i == "https://i"
        ));
    }
}
