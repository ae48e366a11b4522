//! JWK Set (RFC 7517) parsing and key selection.
//!
//! Each key is bound to exactly one algorithm when it is parsed, from its type and curve: RSA → RS256,
//! EC P-256 → ES256, OKP Ed25519 → EdDSA. A key whose own `alg`, `use` or `key_ops` disagrees, or that has
//! another type (symmetric `oct` keys included), is kept only as "unusable" so that errors can say so.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use super::error::{AuthError, sanitize};
use super::jws::{Alg, PublicKey};

/// Smallest RSA modulus accepted, in bytes (2048 bits; ring refuses smaller ones too).
const MIN_RSA_MODULUS_LEN: usize = 256;

/// The usable keys of one issuer.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<Jwk>,
}

#[derive(Debug)]
struct Jwk {
    kid: Option<String>,
    /// `None`: the key exists but can verify none of the accepted algorithms.
    key: Option<PublicKey>,
}

/// The members of a JWK as RFC 7517/7518/8037 define them; unknown members are ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// The result of looking a token's key up.
#[derive(Debug)]
pub(crate) enum Selection<'a> {
    /// Candidate keys (one, unless an issuer publishes several keys under one `kid`).
    Keys(Vec<&'a PublicKey>),
    /// No key has this `kid` (or, without a `kid`, no key has this algorithm).
    Unknown,
    /// Keys have this `kid`, but none can verify this algorithm.
    Mismatch,
    /// No `kid`, and several keys have this algorithm.
    Ambiguous,
}

// === impl KeySet ===

impl KeySet {
    /// Parses a JWKS document. Keys that cannot be used are skipped (they may be encryption keys or use
    /// algorithms we refuse); a document that is not a JWKS is an error, with a fixed reason.
    pub(crate) fn parse(json: &[u8]) -> Result<KeySet, &'static str> {
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<Value>,
        }
        let raw: RawSet =
            serde_json::from_slice(json).map_err(|_| "the key set is not a JWKS document")?;
        let mut keys = Vec::with_capacity(raw.keys.len());
        for value in raw.keys {
            let Ok(jwk) = serde_json::from_value::<RawJwk>(value) else {
                tracing::debug!(reason = "not a JWK object", "skipping key");
                continue;
            };
            let kid = jwk.kid.clone();
            let key = match usable_key(&jwk) {
                Ok(key) => Some(key),
                Err(reason) => {
                    tracing::debug!(
                        kid = kid.as_deref().map(sanitize),
                        reason,
                        "key is not usable"
                    );
                    None
                }
            };
            // A key with neither a kid nor a usable algorithm can never be selected.
            if key.is_some() || kid.is_some() {
                keys.push(Jwk { kid, key });
            }
        }
        Ok(KeySet { keys })
    }

    pub(crate) fn usable_len(&self) -> usize {
        self.keys.iter().filter(|k| k.key.is_some()).count()
    }

    /// Finds the keys that may verify a token with this `kid` and algorithm. Without a `kid`, the issuer
    /// must have exactly one key for the algorithm.
    pub(crate) fn select(&self, kid: Option<&str>, alg: Alg) -> Selection<'_> {
        match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                if named.peek().is_none() {
                    return Selection::Unknown;
                }
                let keys: Vec<&PublicKey> = named.filter_map(|k| k.key_for(alg)).collect();
                if keys.is_empty() {
                    Selection::Mismatch
                } else {
                    Selection::Keys(keys)
                }
            }
            None => {
                let keys: Vec<&PublicKey> =
                    self.keys.iter().filter_map(|k| k.key_for(alg)).collect();
                match keys.len() {
                    0 => Selection::Unknown,
                    1 => Selection::Keys(keys),
                    _ => Selection::Ambiguous,
                }
            }
        }
    }
}

impl Jwk {
    fn key_for(&self, alg: Alg) -> Option<&PublicKey> {
        self.key.as_ref().filter(|k| k.alg() == alg)
    }
}

impl Selection<'_> {
    /// The error for a selection that found no key.
    pub(crate) fn error(&self, kid: Option<&str>, alg: Alg) -> AuthError {
        let shown = || kid.map_or_else(|| "(none)".to_owned(), sanitize);
        match self {
            Selection::Ambiguous => AuthError::AmbiguousKey,
            Selection::Mismatch => AuthError::KeyMismatch {
                kid: shown(),
                alg: alg.name(),
            },
            Selection::Unknown | Selection::Keys(_) => AuthError::UnknownKey(shown()),
        }
    }
}

/// Turns a JWK into a key bound to one accepted algorithm, or says why it cannot be used.
fn usable_key(jwk: &RawJwk) -> Result<PublicKey, &'static str> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("`use` is not \"sig\"");
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return Err("`key_ops` lacks \"verify\"");
    }
    let key = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let n = b64_member(&jwk.n, "RSA key without a valid `n`")?;
            let e = b64_member(&jwk.e, "RSA key without a valid `e`")?;
            let n = strip_leading_zeros(n);
            if n.len() < MIN_RSA_MODULUS_LEN {
                return Err("RSA modulus is shorter than 2048 bits");
            }
            PublicKey::Rsa {
                n,
                e: strip_leading_zeros(e),
            }
        }
        ("EC", Some("P-256")) => {
            let x = b64_member(&jwk.x, "EC key without a valid `x`")?;
            let y = b64_member(&jwk.y, "EC key without a valid `y`")?;
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates are not 32 bytes");
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            PublicKey::P256(point)
        }
        ("OKP", Some("Ed25519")) => {
            let x = b64_member(&jwk.x, "OKP key without a valid `x`")?;
            if x.len() != 32 {
                return Err("Ed25519 public key is not 32 bytes");
            }
            PublicKey::Ed25519(x)
        }
        ("EC" | "OKP", _) => return Err("unsupported curve"),
        _ => return Err("unsupported key type"),
    };
    if jwk.alg.as_deref().is_some_and(|a| a != key.alg().name()) {
        return Err("the key's `alg` is not the algorithm its type implies");
    }
    Ok(key)
}

fn b64_member(value: &Option<String>, err: &'static str) -> Result<Vec<u8>, &'static str> {
    let value = value.as_deref().ok_or(err)?;
    let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| err)?;
    if bytes.is_empty() {
        Err(err)
    } else {
        Ok(bytes)
    }
}

fn strip_leading_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros.min(v.len().saturating_sub(1)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn ed(kid: &str, fill: u8) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(&[fill; 32])})
    }

    fn ec(kid: &str) -> Value {
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&[1; 32]), "y": b64(&[2; 32])})
    }

    fn rsa(kid: &str) -> Value {
        let mut n = vec![0u8]; // a leading zero, as some encoders emit
        n.extend([0xC5; 256]);
        json!({"kty": "RSA", "kid": kid, "n": b64(&n), "e": "AQAB"})
    }

    fn set(keys: Vec<Value>) -> KeySet {
        KeySet::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn binds_each_key_to_one_algorithm() {
        let s = set(vec![ed("e", 1), ec("c"), rsa("r")]);
        assert_eq!(s.usable_len(), 3);
        assert!(matches!(s.select(Some("e"), Alg::EdDsa), Selection::Keys(k) if k.len() == 1));
        assert!(matches!(
            s.select(Some("c"), Alg::Es256),
            Selection::Keys(_)
        ));
        let Selection::Keys(k) = s.select(Some("r"), Alg::Rs256) else {
            panic!()
        };
        assert!(matches!(k[0], PublicKey::Rsa { n, e } if n.len() == 256 && e == &[1, 0, 1]));
        // Right kid, wrong algorithm: never "try the key anyway".
        assert!(matches!(
            s.select(Some("r"), Alg::EdDsa),
            Selection::Mismatch
        ));
        assert!(matches!(
            s.select(Some("e"), Alg::Rs256),
            Selection::Mismatch
        ));
        assert!(matches!(
            s.select(Some("zzz"), Alg::Rs256),
            Selection::Unknown
        ));
        // No kid: exactly one key of the algorithm.
        assert!(matches!(s.select(None, Alg::Es256), Selection::Keys(_)));
        let two = set(vec![ed("a", 1), ed("b", 2)]);
        assert!(matches!(two.select(None, Alg::EdDsa), Selection::Ambiguous));
        assert!(matches!(two.select(None, Alg::Es256), Selection::Unknown));
    }

    #[test]
    fn unusable_keys_are_kept_only_as_names() {
        let mut rs384 = rsa("rs384");
        rs384["alg"] = json!("RS384");
        let mut enc = ec("enc");
        enc["use"] = json!("enc");
        let mut ops = ed("ops", 1);
        ops["key_ops"] = json!(["encrypt"]);
        let mut rs256 = rsa("rs256");
        rs256["alg"] = json!("RS256");
        rs256["use"] = json!("sig");
        rs256["key_ops"] = json!(["verify"]);
        let small = json!({"kty": "RSA", "kid": "small", "n": b64(&[0xC5; 128]), "e": "AQAB"});
        let s = set(vec![
            json!({"kty": "oct", "kid": "hmac", "k": b64(b"secret")}),
            json!({"kty": "EC", "crv": "P-384", "kid": "p384", "x": b64(&[1; 48]), "y": b64(&[2; 48])}),
            json!({"kty": "EC", "crv": "P-256", "kid": "short", "x": b64(&[1; 31]), "y": b64(&[2; 32])}),
            json!({"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": b64(&[1; 32])}),
            json!({"kty": "OKP", "crv": "Ed25519", "kid": "padded", "x": format!("{}=", b64(&[1; 32]))}),
            json!({"kid": "no-kty"}),
            json!("not an object"),
            rs384,
            enc,
            ops,
            small,
            rs256,
        ]);
        assert_eq!(s.usable_len(), 1);
        for kid in [
            "hmac", "p384", "short", "x25519", "padded", "rs384", "enc", "ops", "small",
        ] {
            for alg in [Alg::Rs256, Alg::Es256, Alg::EdDsa] {
                assert!(
                    matches!(s.select(Some(kid), alg), Selection::Mismatch),
                    "{kid}"
                );
            }
        }
        assert!(matches!(
            s.select(Some("rs256"), Alg::Rs256),
            Selection::Keys(_)
        ));
    }

    #[test]
    fn rejects_documents_that_are_not_jwks() {
        for doc in [
            "",
            "{}",
            "[]",
            r#"{"keys": {}}"#,
            r#"{"jwks_uri": "https://x"}"#,
        ] {
            assert!(KeySet::parse(doc.as_bytes()).is_err(), "{doc}");
        }
        assert_eq!(set(vec![]).usable_len(), 0);
    }
}
