//! Compact JWS (RFC 7515) parsing and signature verification with ring.
//!
//! Parsing only splits and decodes: nothing in the result is trusted until [`verify`] succeeds. The
//! algorithm allow-list is applied here, on the raw header, before any key is looked at, so a token can
//! never choose how its own signature is checked (`none`, or HS256 "signed" with an issuer's public key).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{AuthError, sanitize};

/// Tokens longer than this are refused before any decoding (real OIDC tokens are a few KiB).
pub(crate) const MAX_TOKEN_LEN: usize = 32 * 1024;

/// The only signature algorithms the gateway accepts (RFC 7518 §3.3, §3.4; RFC 8037 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 to 8192 bits.
    Rs256,
    /// ECDSA on P-256 with SHA-256, signature `r ‖ s` (64 bytes).
    Es256,
    /// Ed25519 (the only `EdDSA` curve accepted).
    EdDsa,
}

impl Alg {
    pub(crate) fn from_name(name: &str) -> Option<Alg> {
        match name {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// Public key material, already checked for shape when the JWK was parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point `04 ‖ x ‖ y`.
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl PublicKey {
    pub(crate) fn alg(&self) -> Alg {
        match self {
            PublicKey::Rsa { .. } => Alg::Rs256,
            PublicKey::P256(_) => Alg::Es256,
            PublicKey::Ed25519(_) => Alg::EdDsa,
        }
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// A decoded but not yet verified token.
#[derive(Debug)]
pub(crate) struct Unverified<'t> {
    pub(crate) alg: Alg,
    pub(crate) kid: Option<String>,
    pub(crate) claims: Map<String, Value>,
    /// `base64url(header) . base64url(payload)`: the bytes the signature covers.
    signing_input: &'t str,
    signature: Vec<u8>,
}

/// Splits and decodes a compact JWS, applying the algorithm allow-list.
pub(crate) fn parse(token: &str) -> Result<Unverified<'_>, AuthError> {
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed("token is too long"));
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "not a compact JWS (three dot-separated parts)",
        ));
    };

    let header = decode_b64(h64, "header is not base64url")?;
    let header: RawHeader = serde_json::from_slice(&header)
        .map_err(|_| AuthError::Malformed("header is not a JWS header object"))?;
    let Some(alg) = Alg::from_name(&header.alg) else {
        return Err(AuthError::UnsupportedAlgorithm(sanitize(&header.alg)));
    };
    // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; we understand none.
    if header.crit.is_some() {
        return Err(AuthError::Malformed(
            "critical header extensions are not supported",
        ));
    }

    let payload = decode_b64(p64, "payload is not base64url")?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| AuthError::Malformed("payload is not a JSON object"))?;
    let signature = decode_b64(s64, "signature is not base64url")?;

    Ok(Unverified {
        alg,
        kid: header.kid,
        claims,
        signing_input: &token[..h64.len() + 1 + p64.len()],
        signature,
    })
}

fn decode_b64(part: &str, what: &'static str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed(what))
}

impl Unverified<'_> {
    /// Verifies the signature with `key`, which must be a key for the token's algorithm.
    pub(crate) fn verify(&self, key: &PublicKey) -> Result<(), AuthError> {
        if key.alg() != self.alg {
            // Callers select keys by algorithm; this is the last line against key confusion.
            return Err(AuthError::BadSignature);
        }
        verify(key, self.signing_input.as_bytes(), &self.signature)
    }
}

/// Checks `sig` over `msg` with ring (whose comparisons are constant-time where it matters).
pub(crate) fn verify(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), AuthError> {
    let ok = match key {
        PublicKey::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
            .is_ok(),
        PublicKey::P256(point) => {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .is_ok()
        }
        PublicKey::Ed25519(x) => signature::UnparsedPublicKey::new(&signature::ED25519, x)
            .verify(msg, sig)
            .is_ok(),
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn allow_list_is_applied_to_the_raw_header() {
        for alg in [
            "none", "None", "HS256", "HS512", "RS384", "PS256", "ES384", "ES256K", "Ed25519", "",
        ] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(
                parse(&t).unwrap_err(),
                AuthError::UnsupportedAlgorithm(alg.into()),
                "{alg}"
            );
        }
        for (name, alg) in [
            ("RS256", Alg::Rs256),
            ("ES256", Alg::Es256),
            ("EdDSA", Alg::EdDsa),
        ] {
            let t = token(&format!(r#"{{"alg":"{name}","kid":"k"}}"#), r#"{"a":1}"#);
            let u = parse(&t).unwrap();
            assert_eq!((u.alg, u.kid.as_deref()), (alg, Some("k")));
            assert_eq!(u.signing_input, &t[..t.rfind('.').unwrap()]);
        }
    }

    #[test]
    fn malformed_tokens() {
        let good_header = b64(r#"{"alg":"EdDSA"}"#);
        let cases = [
            "garbage".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d.e".to_owned(),
            format!("{good_header}.e30.c2ln.extra"),
            format!("{good_header}.e30=.c2ln"), // padding is not base64url-nopad
            format!("{good_header}.e30.c2l+"),  // standard alphabet
            format!("{}.e30.c2ln", b64("[]")),  // header not an object
            format!("{}.e30.c2ln", b64("{}")),  // no alg
            format!("{}.e30.c2ln", b64(r#"{"alg":1}"#)),
            format!("{}.e30.c2ln", b64(r#"{"alg":"EdDSA","kid":7}"#)),
            format!("{good_header}.{}.c2ln", b64("[1]")), // claims not an object
            format!("{good_header}.{}.c2ln", b64("{")),
            format!("{}.e30.c2ln", b64(r#"{"alg":"EdDSA","crit":["exp"]}"#)),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ];
        for t in cases {
            assert!(
                matches!(parse(&t), Err(AuthError::Malformed(_))),
                "{t:.80}: {:?}",
                parse(&t)
            );
        }
        assert_eq!(parse("").unwrap_err(), AuthError::MissingToken);
    }

    #[test]
    fn echoed_values_are_sanitized() {
        let alg = format!("HS256\n{}", "x".repeat(200));
        let t = token(&serde_json::json!({ "alg": alg }).to_string(), "{}");
        let AuthError::UnsupportedAlgorithm(shown) = parse(&t).unwrap_err() else {
            panic!()
        };
        assert!(
            !shown.contains('\n') && shown.chars().count() <= 65,
            "{shown}"
        );
    }
}
