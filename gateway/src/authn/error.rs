use thiserror::Error;

/// Why a bearer token was not accepted.
///
/// The `Display` text is safe to send to the client (the gateway answers every variant with a 401 Status):
/// it never contains the token, key material, file paths or URLs; the few values it echoes (`alg`, `kid`)
/// come from the client's own token and are truncated and stripped of control characters.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No bearer token was presented.
    #[error("no bearer token")]
    MissingToken,
    /// Not a compact JWS with a JSON header and claims; the reason is fixed text.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token's `iss` is not a configured issuer.
    #[error("token issuer is not trusted")]
    UnknownIssuer,
    /// The header's `alg` is not one of RS256, ES256, EdDSA (`none`, HS*, … are never accepted).
    #[error("unsupported token signing algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// No key with this `kid` in the issuer's key set, even after a refresh.
    #[error("no signing key {0:?} is known for this issuer")]
    UnknownKey(String),
    /// The token has no `kid` and the issuer has more than one key for its algorithm.
    #[error("token has no key id and the issuer has several keys")]
    AmbiguousKey,
    /// The key named by `kid` is not usable for the token's algorithm (key type, JWK `alg`, `use`, `key_ops`).
    #[error("signing key {kid:?} cannot verify {alg} tokens")]
    KeyMismatch { kid: String, alg: &'static str },
    /// The signature does not verify with the selected key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is in the past (beyond the tolerated skew).
    #[error("token has expired")]
    Expired,
    /// `exp` lies further past `iat` (or now) than the issuer's `max_token_lifetime_secs` allows.
    #[error("token lifetime exceeds the {0} s this gateway accepts from its issuer")]
    LifetimeTooLong(u64),
    /// `nbf` or `iat` is in the future (beyond the tolerated skew).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `aud` contains none of the configured audiences.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// A required claim is absent.
    #[error("token lacks the {0:?} claim")]
    MissingClaim(String),
    /// A claim has the wrong type or value.
    #[error("token claim {0:?} is invalid")]
    InvalidClaim(String),
    /// The mapped username or a group falls in the reserved `system:` namespace of Kubernetes.
    #[error("token claim {0:?} maps to a reserved Kubernetes name")]
    ReservedName(String),
    /// The issuer's keys could not be loaded; the reason is fixed text (details are logged).
    #[error("signing keys of this issuer are unavailable: {0}")]
    Jwks(&'static str),
}

impl AuthError {
    /// A short, fixed name for metrics labels and log fields (a closed set).
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::Malformed(_) => "malformed",
            AuthError::UnknownIssuer => "unknown_issuer",
            AuthError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            AuthError::UnknownKey(_) => "unknown_key",
            AuthError::AmbiguousKey => "ambiguous_key",
            AuthError::KeyMismatch { .. } => "key_mismatch",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::LifetimeTooLong(_) => "lifetime_too_long",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::InvalidClaim(_) => "invalid_claim",
            AuthError::ReservedName(_) => "reserved_name",
            AuthError::Jwks(_) => "keys_unavailable",
        }
    }
}

/// A rejected authentication configuration (found when the gateway starts).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("issuer {issuer:?}: {reason}")]
    Invalid { issuer: String, reason: String },
    #[error("issuer {0:?} is configured twice")]
    DuplicateIssuer(String),
    #[error("issuer {issuer:?}: TLS trust roots: {reason}")]
    TrustRoots { issuer: String, reason: String },
}

/// Values echoed from a client's token into errors and logs: short and printable.
pub(crate) fn sanitize(value: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX)
        .collect();
    if value.chars().count() > MAX {
        out.push('…');
    }
    out
}
