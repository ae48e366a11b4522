//! Bearer-token authentication against real keys of every accepted type, the attacks it must refuse,
//! key rotation (file and URL), and a second ("CI") issuer. Keys are generated per test with ring, except
//! the RSA one (ring cannot generate RSA keys), which is the committed test key `fixtures/rsa-test-key.pem`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway::authn::{AuthError, Authenticator, ConfigError, IssuerConfig, JwksSource};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Map, Value, json};
use test_support::gateway::DevIssuer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "kubetape";

// === test keys and tokens ===

/// A private key that signs test tokens, or a way of making a token that must not verify.
enum Key {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl Key {
    fn ed() -> Key {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Key::Ed(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    fn ec() -> Key {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).unwrap();
        Key::Ec(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &SystemRandom::new()).unwrap())
    }

    /// The committed 2048-bit test key.
    fn rsa() -> Key {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa-test-key.pem");
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(path).unwrap();
        Key::Rsa(RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            Key::Ed(_) => "EdDSA",
            Key::Ec(_) => "ES256",
            Key::Rsa(_) => "RS256",
        }
    }

    /// The public JWK, as an issuer would publish it.
    fn jwk(&self, kid: &str) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match self {
            Key::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(k.public_key().as_ref())})
            }
            Key::Ec(k) => {
                let point = k.public_key().as_ref(); // 04 ‖ x ‖ y
                json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            Key::Rsa(k) => {
                let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
                json!({"kty": "RSA", "kid": kid, "n": b64(&public.n), "e": b64(&public.e), "alg": "RS256", "use": "sig"})
            }
        }
    }

    /// The public key's raw bytes (what a careless verifier would use as an HMAC secret).
    fn public_bytes(&self) -> Vec<u8> {
        match self {
            Key::Ed(k) => k.public_key().as_ref().to_vec(),
            Key::Ec(k) => k.public_key().as_ref().to_vec(),
            Key::Rsa(k) => k.public().as_ref().to_vec(),
        }
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            Key::Ed(k) => k.sign(msg).as_ref().to_vec(),
            Key::Ec(k) => k.sign(&SystemRandom::new(), msg).unwrap().as_ref().to_vec(),
            Key::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    msg,
                    &mut sig,
                )
                .unwrap();
                sig
            }
        }
    }

    /// A token with this key's algorithm and `kid`.
    fn token(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": self.alg(), "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = kid.into();
        }
        let input = signing_input(&header, claims);
        let sig = self.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Good claims for [`ISSUER`]: alice in dev and ops, valid for 10 minutes.
fn claims() -> Value {
    let now = now();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "groups": ["dev", "ops"],
           "iat": now, "nbf": now, "exp": now + 600})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn write_jwks(path: &Path, keys: &[Value]) {
    // Replace atomically, as a rotation tool would (a reader never sees half a file).
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json!({ "keys": keys }).to_string()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// A file-backed issuer at [`ISSUER`] with the given public keys.
struct FileIssuer {
    _dir: tempfile::TempDir,
    jwks: PathBuf,
    config: IssuerConfig,
}

impl FileIssuer {
    fn new(keys: &[Value]) -> FileIssuer {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        write_jwks(&jwks, keys);
        let config = IssuerConfig::new(ISSUER, AUDIENCE, JwksSource::File(jwks.clone()));
        FileIssuer {
            _dir: dir,
            jwks,
            config,
        }
    }

    fn auth(&self) -> Authenticator {
        Authenticator::new(vec![self.config.clone()]).unwrap()
    }
}

/// Asserts the outcome and that the error text, which goes to the client, does not echo the token.
async fn rejected(auth: &Authenticator, token: &str) -> AuthError {
    let err = auth
        .authenticate(token)
        .await
        .expect_err("token must be rejected");
    let shown = err.to_string();
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(!shown.contains(part), "error {shown:?} echoes the token");
    }
    err
}

// === accepted tokens ===

#[tokio::test]
async fn eddsa_token_from_dev_issuer_maps_user_groups_and_claims() {
    let dir = tempfile::tempdir().unwrap();
    let dev = DevIssuer::open_or_create(
        dir.path(),
        DevIssuer::DEFAULT_ISSUER,
        DevIssuer::DEFAULT_AUDIENCE,
    )
    .unwrap();
    let config = IssuerConfig {
        username_prefix: Some("oidc:".into()),
        groups_prefix: Some("oidc:".into()),
        carry_claims: vec!["environment".into(), "jti".into(), "missing".into()],
        ..dev.issuer_config()
    };
    let auth = Authenticator::new(vec![config]).unwrap();
    let extra: Map<String, Value> = [("environment".to_owned(), json!("prod"))]
        .into_iter()
        .collect();
    let minted = dev.mint(
        "alice",
        &["dev".into(), "ops".into()],
        Duration::from_secs(600),
        extra,
    );

    let id = auth.authenticate(&minted.token).await.unwrap();
    assert_eq!(id.user, "oidc:alice");
    assert_eq!(id.groups, ["oidc:dev", "oidc:ops"]);
    assert_eq!(id.issuer, DevIssuer::DEFAULT_ISSUER);
    assert_eq!(
        id.claims.get("environment").map(String::as_str),
        Some("prod")
    );
    assert_eq!(
        id.claims.get("jti").map(String::len),
        Some(22),
        "16 random bytes, base64url"
    );
    assert!(!id.claims.contains_key("missing"));
    assert_eq!(id.expires_at, minted.expires_at);
    let left = id.expires_at.duration_since(SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(590) && left <= Duration::from_secs(600),
        "{left:?}"
    );
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_are_accepted() {
    let (rsa, ec, ed) = (Key::rsa(), Key::ec(), Key::ed());
    let issuer = FileIssuer::new(&[rsa.jwk("r"), ec.jwk("e"), ed.jwk("d")]);
    let auth = issuer.auth();
    for (key, kid) in [(&rsa, "r"), (&ec, "e"), (&ed, "d")] {
        let id = auth
            .authenticate(&key.token(Some(kid), &claims()))
            .await
            .unwrap();
        assert_eq!(
            (id.user.as_str(), id.groups.as_slice()),
            ("alice", ["dev".to_owned(), "ops".to_owned()].as_slice())
        );
    }
}

#[tokio::test]
async fn token_without_kid_uses_the_only_key_of_its_algorithm() {
    let (ed, ec) = (Key::ed(), Key::ec());
    let issuer = FileIssuer::new(&[ed.jwk("d"), ec.jwk("e")]);
    let auth = issuer.auth();
    auth.authenticate(&ed.token(None, &claims())).await.unwrap();
    auth.authenticate(&ec.token(None, &claims())).await.unwrap();

    let issuer = FileIssuer::new(&[ed.jwk("d1"), Key::ed().jwk("d2")]);
    assert_eq!(
        rejected(&issuer.auth(), &ed.token(None, &claims())).await,
        AuthError::AmbiguousKey
    );
}

// === rejected tokens ===

#[tokio::test]
async fn missing_and_garbled_tokens_are_malformed() {
    let ed = Key::ed();
    let issuer = FileIssuer::new(&[ed.jwk("d")]);
    let auth = issuer.auth();
    assert_eq!(auth.authenticate("").await, Err(AuthError::MissingToken));
    let good = ed.token(Some("d"), &claims());
    let parts: Vec<&str> = good.split('.').collect();
    for garbled in [
        "not-a-jwt".to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.extra"),
        format!("{}.!!!.{}", parts[0], parts[2]),
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode("not json"),
            parts[2]
        ),
        good.replace('.', ""),
    ] {
        assert!(
            matches!(rejected(&auth, &garbled).await, AuthError::Malformed(_)),
            "{garbled}"
        );
    }
}

#[tokio::test]
async fn tampered_claims_fail_the_signature() {
    let ed = Key::ed();
    let issuer = FileIssuer::new(&[ed.jwk("d")]);
    let good = ed.token(Some("d"), &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let admin = URL_SAFE_NO_PAD.encode(with(claims(), "groups", json!(["admins"])).to_string());
    let forged = format!("{}.{admin}.{}", parts[0], parts[2]);
    assert_eq!(
        rejected(&issuer.auth(), &forged).await,
        AuthError::BadSignature
    );
}

#[tokio::test]
async fn expiry_and_not_before_respect_the_skew() {
    let ed = Key::ed();
    let issuer = FileIssuer::new(&[ed.jwk("d")]); // 30 s skew
    let auth = issuer.auth();
    let t = |c: Value| ed.token(Some("d"), &c);
    auth.authenticate(&t(with(claims(), "exp", json!(now() - 10))))
        .await
        .unwrap();
    assert_eq!(
        rejected(&auth, &t(with(claims(), "exp", json!(now() - 120)))).await,
        AuthError::Expired
    );
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        rejected(&auth, &t(no_exp)).await,
        AuthError::MissingClaim("exp".into())
    );
    auth.authenticate(&t(with(claims(), "nbf", json!(now() + 10))))
        .await
        .unwrap();
    assert_eq!(
        rejected(&auth, &t(with(claims(), "nbf", json!(now() + 120)))).await,
        AuthError::NotYetValid
    );
    assert_eq!(
        rejected(&auth, &t(with(claims(), "iat", json!(now() + 120)))).await,
        AuthError::NotYetValid
    );
}

#[tokio::test]
async fn wrong_issuer_and_audience() {
    let ed = Key::ed();
    let issuer = FileIssuer::new(&[ed.jwk("d")]);
    let auth = issuer.auth();
    let t = |c: Value| ed.token(Some("d"), &c);
    for iss in [
        "https://evil.example",
        "https://idp.example/",
        "HTTPS://IDP.EXAMPLE",
    ] {
        assert_eq!(
            rejected(&auth, &t(with(claims(), "iss", json!(iss)))).await,
            AuthError::UnknownIssuer
        );
    }
    assert_eq!(
        rejected(&auth, &t(with(claims(), "aud", json!("other")))).await,
        AuthError::WrongAudience
    );
    assert_eq!(
        rejected(&auth, &t(with(claims(), "aud", json!(["a", "b"])))).await,
        AuthError::WrongAudience
    );
    auth.authenticate(&t(with(claims(), "aud", json!(["other", AUDIENCE]))))
        .await
        .unwrap();
}

#[tokio::test]
async fn alg_none_is_refused() {
    let ed = Key::ed();
    let issuer = FileIssuer::new(&[ed.jwk("d")]);
    let auth = issuer.auth();
    for alg in ["none", "NONE", "nOnE"] {
        let input = signing_input(&json!({"alg": alg, "kid": "d"}), &claims());
        for token in [
            format!("{input}."),
            format!("{input}.{}", URL_SAFE_NO_PAD.encode("x")),
        ] {
            assert_eq!(
                rejected(&auth, &token).await,
                AuthError::UnsupportedAlgorithm(alg.into())
            );
        }
    }
}

/// The classic key-confusion attack: HS256 "signed" with the issuer's public key as the HMAC secret, in
/// every form a verifier might hold it (JWK JSON, raw bytes, DER). It must fail on the algorithm, before
/// any key is chosen.
#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let (rsa, ec) = (Key::rsa(), Key::ec());
    let issuer = FileIssuer::new(&[rsa.jwk("r"), ec.jwk("e")]);
    let auth = issuer.auth();
    for (key, kid) in [(&rsa, "r"), (&ec, "e")] {
        for secret in [key.jwk(kid).to_string().into_bytes(), key.public_bytes()] {
            for alg in ["HS256", "HS384", "HS512"] {
                let input =
                    signing_input(&json!({"alg": alg, "kid": kid, "typ": "JWT"}), &claims());
                let hmac_alg = match alg {
                    "HS256" => ring::hmac::HMAC_SHA256,
                    "HS384" => ring::hmac::HMAC_SHA384,
                    _ => ring::hmac::HMAC_SHA512,
                };
                let tag =
                    ring::hmac::sign(&ring::hmac::Key::new(hmac_alg, &secret), input.as_bytes());
                let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag));
                assert_eq!(
                    rejected(&auth, &token).await,
                    AuthError::UnsupportedAlgorithm(alg.into())
                );
            }
        }
    }
}

#[tokio::test]
async fn token_alg_must_fit_the_key() {
    let (ed, ec) = (Key::ed(), Key::ec());
    let mut rs384 = Key::rsa().jwk("rs384");
    rs384["alg"] = json!("RS384");
    let mut enc = ec.jwk("enc");
    enc["use"] = json!("enc");
    let issuer = FileIssuer::new(&[ed.jwk("d"), rs384, enc]);
    let auth = issuer.auth();
    // An ES256 token naming the Ed25519 key.
    let err = rejected(&auth, &ec.token(Some("d"), &claims())).await;
    assert_eq!(
        err,
        AuthError::KeyMismatch {
            kid: "d".into(),
            alg: "ES256"
        }
    );
    // An RS256 token naming a key published for RS384 only.
    let err = rejected(&auth, &Key::rsa().token(Some("rs384"), &claims())).await;
    assert_eq!(
        err,
        AuthError::KeyMismatch {
            kid: "rs384".into(),
            alg: "RS256"
        }
    );
    // A signature made with an encryption-only key.
    let err = rejected(&auth, &ec.token(Some("enc"), &claims())).await;
    assert_eq!(
        err,
        AuthError::KeyMismatch {
            kid: "enc".into(),
            alg: "ES256"
        }
    );
}

#[tokio::test]
async fn unknown_kid_and_foreign_keys() {
    let (ours, theirs) = (Key::ed(), Key::ed());
    let issuer = FileIssuer::new(&[ours.jwk("k1")]);
    let auth = issuer.auth();
    assert_eq!(
        rejected(&auth, &ours.token(Some("k2"), &claims())).await,
        AuthError::UnknownKey("k2".into())
    );
    // Another key claiming our kid.
    assert_eq!(
        rejected(&auth, &theirs.token(Some("k1"), &claims())).await,
        AuthError::BadSignature
    );
    // Another key and no kid: our single key is tried, and fails.
    assert_eq!(
        rejected(&auth, &theirs.token(None, &claims())).await,
        AuthError::BadSignature
    );
}

#[tokio::test]
async fn issuer_b_key_cannot_sign_for_issuer_a() {
    let (key_a, key_b) = (Key::ed(), Key::ed());
    let a = FileIssuer::new(&[key_a.jwk("a-1")]);
    let b_dir = tempfile::tempdir().unwrap();
    let b_jwks = b_dir.path().join("jwks.json");
    write_jwks(&b_jwks, &[key_b.jwk("b-1")]);
    let b = IssuerConfig::new("https://b.example", AUDIENCE, JwksSource::File(b_jwks));
    let auth = Authenticator::new(vec![a.config.clone(), b]).unwrap();

    // Genuine tokens of both issuers pass.
    auth.authenticate(&key_a.token(Some("a-1"), &claims()))
        .await
        .unwrap();
    let b_claims = with(claims(), "iss", json!("https://b.example"));
    assert_eq!(
        auth.authenticate(&key_b.token(Some("b-1"), &b_claims))
            .await
            .unwrap()
            .issuer,
        "https://b.example"
    );

    // B's key, A's iss: B's kid is unknown to A, and without a kid A's own key does not verify it.
    assert_eq!(
        rejected(&auth, &key_b.token(Some("b-1"), &claims())).await,
        AuthError::UnknownKey("b-1".into())
    );
    assert_eq!(
        rejected(&auth, &key_b.token(Some("a-1"), &claims())).await,
        AuthError::BadSignature
    );
    assert_eq!(
        rejected(&auth, &key_b.token(None, &claims())).await,
        AuthError::BadSignature
    );
}

// === key rotation ===

#[tokio::test]
async fn jwks_file_rotation_is_picked_up_without_restart() {
    let (old, new) = (Key::ed(), Key::ec());
    let issuer = FileIssuer::new(&[old.jwk("2024")]);
    let auth = issuer.auth();
    auth.authenticate(&old.token(Some("2024"), &claims()))
        .await
        .unwrap();
    assert_eq!(
        rejected(&auth, &new.token(Some("2025"), &claims())).await,
        AuthError::UnknownKey("2025".into())
    );

    // Publish the new key next to the old one, then retire the old one.
    write_jwks(&issuer.jwks, &[old.jwk("2024"), new.jwk("2025")]);
    auth.authenticate(&new.token(Some("2025"), &claims()))
        .await
        .unwrap();
    auth.authenticate(&old.token(Some("2024"), &claims()))
        .await
        .unwrap();
    write_jwks(&issuer.jwks, &[new.jwk("2025")]);
    auth.authenticate(&new.token(Some("2025"), &claims()))
        .await
        .unwrap();
    assert_eq!(
        rejected(&auth, &old.token(Some("2024"), &claims())).await,
        AuthError::UnknownKey("2024".into())
    );

    // A broken or missing file keeps the last good keys rather than locking everyone out.
    std::fs::write(&issuer.jwks, "{ not json").unwrap();
    auth.authenticate(&new.token(Some("2025"), &claims()))
        .await
        .unwrap();
    std::fs::remove_file(&issuer.jwks).unwrap();
    auth.authenticate(&new.token(Some("2025"), &claims()))
        .await
        .unwrap();
}

#[tokio::test]
async fn missing_jwks_file_is_a_jwks_error() {
    let ed = Key::ed();
    let config = IssuerConfig::new(
        ISSUER,
        AUDIENCE,
        JwksSource::File("/nonexistent/kubetape/jwks.json".into()),
    );
    let auth = Authenticator::new(vec![config]).unwrap();
    let err = rejected(&auth, &ed.token(Some("d"), &claims())).await;
    assert!(matches!(err, AuthError::Jwks(_)), "{err:?}");
    assert!(
        !err.to_string().contains("/nonexistent"),
        "no paths in client-facing errors: {err}"
    );
    assert_eq!(auth.preload().await.len(), 1);
}

// === a second, CI issuer ===

#[tokio::test]
async fn ci_issuer_carries_job_claims() {
    let (people_key, ci_key) = (Key::ed(), Key::rsa());
    let people = FileIssuer::new(&[people_key.jwk("p")]);
    let ci_dir = tempfile::tempdir().unwrap();
    let ci_jwks = ci_dir.path().join("jwks.json");
    write_jwks(&ci_jwks, &[ci_key.jwk("ci-1")]);
    let ci: IssuerConfig = toml::from_str(&format!(
        r#"
        issuer = "https://token.actions.example"
        audience = ["kubetape-ci"]
        jwks = {{ file = "{}" }}
        username_prefix = "ci:"
        groups_claim = ""
        carry_claims = ["repository", "ref", "environment", "workflow", "run_id", "job_id"]
        "#,
        ci_jwks.display()
    ))
    .unwrap();
    let auth = Authenticator::new(vec![people.config.clone(), ci]).unwrap();

    let now = now();
    let job = json!({
        "iss": "https://token.actions.example", "aud": "kubetape-ci", "exp": now + 300, "iat": now,
        "sub": "repo:acme/shop:environment:prod", "repository": "acme/shop", "ref": "refs/heads/main",
        "environment": "prod", "workflow": "deploy", "run_id": "4242", "job_id": 17,
        "groups": ["system:masters"],
    });
    let id = auth
        .authenticate(&ci_key.token(Some("ci-1"), &job))
        .await
        .unwrap();
    assert_eq!(id.user, "ci:repo:acme/shop:environment:prod");
    assert!(id.groups.is_empty(), "the CI issuer asserts no groups");
    assert_eq!(id.issuer, "https://token.actions.example");
    let want: BTreeMap<String, String> = [
        ("repository", "acme/shop"),
        ("ref", "refs/heads/main"),
        ("environment", "prod"),
        ("workflow", "deploy"),
        ("run_id", "4242"),
        ("job_id", "17"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    assert_eq!(id.claims, want);

    // Audiences are per issuer; and each issuer only trusts its own keys.
    let wrong_aud = with(job.clone(), "aud", json!(AUDIENCE));
    assert_eq!(
        rejected(&auth, &ci_key.token(Some("ci-1"), &wrong_aud)).await,
        AuthError::WrongAudience
    );
    assert_eq!(
        rejected(&auth, &people_key.token(Some("ci-1"), &job)).await,
        AuthError::KeyMismatch {
            kid: "ci-1".into(),
            alg: "EdDSA"
        }
    );
    // The people issuer still works alongside.
    assert_eq!(
        auth.authenticate(&people_key.token(Some("p"), &claims()))
            .await
            .unwrap()
            .user,
        "alice"
    );
}

// === keys over HTTP(S) ===

/// A tiny HTTP/1.1 server on 127.0.0.1 serving a discovery document and a JWKS that tests can replace,
/// counting the JWKS requests. Over TLS when given an acceptor.
struct KeyServer {
    base: String,
    jwks: Arc<Mutex<String>>,
    jwks_hits: Arc<AtomicUsize>,
}

impl KeyServer {
    async fn start(keys: &[Value], tls: Option<tokio_rustls::TlsAcceptor>) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!(
            "{scheme}://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let jwks = Arc::new(Mutex::new(json!({ "keys": keys }).to_string()));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let discovery = json!({"issuer": base, "jwks_uri": format!("{base}/keys")}).to_string();
        let (state, hits) = (jwks.clone(), jwks_hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (state, hits, discovery, tls) =
                    (state.clone(), hits.clone(), discovery.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve_one(stream, &state, &hits, &discovery).await;
                            }
                        }
                        None => serve_one(tcp, &state, &hits, &discovery).await,
                    }
                });
            }
        });
        KeyServer {
            base,
            jwks,
            jwks_hits,
        }
    }

    fn publish(&self, keys: &[Value]) {
        *self.jwks.lock().unwrap() = json!({ "keys": keys }).to_string();
    }

    fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }
}

async fn serve_one<S>(mut stream: S, jwks: &Mutex<String>, hits: &AtomicUsize, discovery: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = match path {
        "/.well-known/openid-configuration" => ("200 OK", discovery.to_owned()),
        "/keys" => {
            hits.fetch_add(1, Ordering::SeqCst);
            ("200 OK", jwks.lock().unwrap().clone())
        }
        _ => ("404 Not Found", String::new()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn claims_for(iss: &str) -> Value {
    with(claims(), "iss", json!(iss))
}

#[tokio::test]
async fn jwks_by_discovery_with_rate_limited_refresh_on_unknown_kid() {
    let (old, new) = (Key::ed(), Key::ec());
    let server = KeyServer::start(&[old.jwk("old")], None).await;
    // The issuer URL as the key source means OpenID discovery.
    let mut config = IssuerConfig::new(
        server.base.clone(),
        AUDIENCE,
        JwksSource::Url(server.base.clone()),
    );
    config.jwks_min_refresh_secs = 3600;
    let slow = Authenticator::new(vec![config.clone()]).unwrap();
    config.jwks_min_refresh_secs = 0;
    let eager = Authenticator::new(vec![config]).unwrap();

    let claims = claims_for(&server.base);
    slow.authenticate(&old.token(Some("old"), &claims))
        .await
        .unwrap();
    eager
        .authenticate(&old.token(Some("old"), &claims))
        .await
        .unwrap();
    assert_eq!(server.hits(), 2);
    // Cached: no more fetches.
    slow.authenticate(&old.token(Some("old"), &claims))
        .await
        .unwrap();
    assert_eq!(server.hits(), 2);

    server.publish(&[new.jwk("new")]);
    // An unknown kid refreshes (the eager gateway sees the rotation)...
    eager
        .authenticate(&new.token(Some("new"), &claims))
        .await
        .unwrap();
    assert_eq!(server.hits(), 3);
    // ...but at most once per interval: made-up kids cannot make the gateway hammer the issuer.
    for i in 0..5 {
        let kid = format!("bogus-{i}");
        assert_eq!(
            rejected(&slow, &new.token(Some(&kid), &claims)).await,
            AuthError::UnknownKey(kid)
        );
    }
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn jwks_over_https_trusts_the_configured_ca_only() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let ed = Key::ed();
    // Many keys, so the body spans many TLS records and reads.
    let mut keys: Vec<Value> = (0..400)
        .map(|i| Key::ed().jwk(&format!("filler-{i}")))
        .collect();
    keys.push(ed.jwk("k"));
    let server = KeyServer::start(&keys, Some(Arc::new(server_config).into())).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();

    // A direct JWKS URL (not the issuer URL): no discovery.
    let mut config = IssuerConfig::new(
        server.base.clone(),
        AUDIENCE,
        JwksSource::Url(format!("{}/keys", server.base)),
    );
    config.ca_file = Some(ca);
    let auth = Authenticator::new(vec![config.clone()]).unwrap();
    assert!(auth.preload().await.is_empty());
    auth.authenticate(&ed.token(Some("k"), &claims_for(&server.base)))
        .await
        .unwrap();

    // Without the CA the server is not trusted, and the client is told only that keys are unavailable.
    config.ca_file = None;
    match Authenticator::new(vec![config]) {
        Ok(untrusting) => {
            let err = rejected(&untrusting, &ed.token(Some("k"), &claims_for(&server.base))).await;
            assert!(matches!(err, AuthError::Jwks(_)), "{err:?}");
            assert!(!err.to_string().contains("127.0.0.1"), "{err}");
        }
        // A machine without a system CA bundle refuses the https source up front.
        Err(e) => assert!(matches!(e, ConfigError::TrustRoots { .. }), "{e}"),
    }
}
