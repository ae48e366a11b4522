//! A development OIDC issuer for the quickstart and tests, and the `kubetape-quickstart token` exec
//! credential plugin that kubectl runs to get a token from it. It lives outside the gateway on
//! purpose: the production `kubetape-gateway` binary contains no way to mint identities.
//!
//! An issuer lives in a directory:
//!
//! | file | what | mode |
//! |---|---|---|
//! | `issuer.json` | `{"issuer": …, "audience": …}` | 0644 |
//! | `signing-key.pem` | Ed25519 private key, PKCS#8 PEM | 0600 |
//! | `jwks.json` | the public key (`kid`, `alg: EdDSA`, `use: sig`); point the gateway's `jwks = { file = … }` here | 0644 |
//! | `tokens/` | the plugin's token cache, one file per (user, groups, claims, ttl) | 0700 |
//!
//! The `kid` is the RFC 7638 thumbprint of the public key. Nothing here is meant for production: the key is a
//! plain file, and anyone who can read it can mint any identity.
//!
//! kubectl runs the plugin on every invocation (client-go caches only per process), so tokens are cached on
//! disk and reused while more than [`TokenCache::MIN_REMAINING`] of their lifetime is left. A kubeconfig user:
//!
//! ```yaml
//! users:
//! - name: alice
//!   user:
//!     exec:
//!       apiVersion: client.authentication.k8s.io/v1
//!       command: kubetape-quickstart
//!       args: [token, --issuer-dir, /path/to/issuer, --user, alice, --group, dev]
//!       interactiveMode: Never   # required by the v1 API
//! ```

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use gateway::authn::{IssuerConfig, JwksSource};

/// The `apiVersion` of the exec credential plugin protocol this plugin speaks.
pub const EXEC_CREDENTIAL_API_VERSION: &str = "client.authentication.k8s.io/v1";
/// The environment variable in which kubectl passes the plugin its input (an `ExecCredential` spec).
pub const EXEC_INFO_ENV: &str = "KUBERNETES_EXEC_INFO";

const SETTINGS_FILE: &str = "issuer.json";
const KEY_FILE: &str = "signing-key.pem";
const JWKS_FILE: &str = "jwks.json";
const TOKENS_DIR: &str = "tokens";

/// Longest `--ttl` the plugin mints.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why a development issuer could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevIssuerError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not an Ed25519 PKCS#8 key")]
    InvalidKey { path: PathBuf },
    #[error("{path}: invalid issuer settings: {source}")]
    InvalidSettings {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{dir} belongs to issuer {found:?} with audience {found_audience:?}, not {issuer:?} with {audience:?}"
    )]
    Mismatch {
        dir: PathBuf,
        issuer: String,
        audience: String,
        found: String,
        found_audience: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DevIssuerError + '_ {
    move |source| DevIssuerError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Settings {
    issuer: String,
    audience: String,
}

/// A token and when it expires.
#[derive(Clone, PartialEq, Eq)]
pub struct MintedToken {
    pub token: String,
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("token", &"<redacted>")
            .field(
                "expires_at",
                &format_args!("{}", humantime::format_rfc3339_seconds(self.expires_at)),
            )
            .finish()
    }
}

/// A development token issuer with one Ed25519 (EdDSA) signing key.
pub struct DevIssuer {
    dir: PathBuf,
    settings: Settings,
    kid: String,
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("dir", &self.dir)
            .field("issuer", &self.settings.issuer)
            .field("audience", &self.settings.audience)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

// === impl DevIssuer ===

impl DevIssuer {
    /// The issuer name the quickstart uses.
    pub const DEFAULT_ISSUER: &'static str = "https://dev-issuer.kubetape.invalid";
    /// The audience the quickstart uses.
    pub const DEFAULT_AUDIENCE: &'static str = "kubetape";

    /// Opens the issuer in `dir`, creating the directory, a new key and `jwks.json` if they do not exist.
    /// Safe to race with other processes doing the same: one key wins and all use it.
    pub fn open_or_create(
        dir: &Path,
        issuer: &str,
        audience: &str,
    ) -> Result<DevIssuer, DevIssuerError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
        let wanted = Settings {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        };
        let settings_path = dir.join(SETTINGS_FILE);
        if !settings_path.exists() {
            let json = serde_json::to_vec_pretty(&wanted).expect("settings serialize");
            create_exclusive(&settings_path, &json, 0o644)?;
        }
        let key_path = dir.join(KEY_FILE);
        if !key_path.exists() {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| {
                DevIssuerError::InvalidKey {
                    path: key_path.clone(),
                }
            })?;
            create_exclusive(
                &key_path,
                pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes(),
                0o600,
            )?;
        }
        let issuer = DevIssuer::open(dir)?;
        if issuer.settings != wanted {
            return Err(DevIssuerError::Mismatch {
                dir: dir.to_owned(),
                issuer: wanted.issuer,
                audience: wanted.audience,
                found: issuer.settings.issuer,
                found_audience: issuer.settings.audience,
            });
        }
        let jwks_path = issuer.jwks_path();
        if fs::read_to_string(&jwks_path).ok().as_deref() != Some(issuer.jwks_json().as_str()) {
            write_atomic(&jwks_path, issuer.jwks_json().as_bytes(), 0o644)?;
        }
        Ok(issuer)
    }

    /// Opens an existing issuer directory (what the token plugin does; it never creates keys).
    pub fn open(dir: &Path) -> Result<DevIssuer, DevIssuerError> {
        let settings_path = dir.join(SETTINGS_FILE);
        let settings = fs::read(&settings_path).map_err(io_err(&settings_path))?;
        let settings: Settings = serde_json::from_slice(&settings).map_err(|source| {
            DevIssuerError::InvalidSettings {
                path: settings_path,
                source,
            }
        })?;
        let key_path = dir.join(KEY_FILE);
        let invalid = || DevIssuerError::InvalidKey {
            path: key_path.clone(),
        };
        let der = PrivatePkcs8KeyDer::from_pem_file(&key_path).map_err(|e| match e {
            rustls_pki_types::pem::Error::Io(source) => DevIssuerError::Io {
                path: key_path.clone(),
                source,
            },
            _ => invalid(),
        })?;
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|_| invalid())?;
        let kid = thumbprint(key.public_key().as_ref());
        Ok(DevIssuer {
            dir: dir.to_owned(),
            settings,
            kid,
            key,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub fn audience(&self) -> &str {
        &self.settings.audience
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the public key set is written.
    pub fn jwks_path(&self) -> PathBuf {
        self.dir.join(JWKS_FILE)
    }

    /// The public key set (`{"keys":[…]}`), as written to [`DevIssuer::jwks_path`].
    pub fn jwks_json(&self) -> String {
        let jwk = json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.key.public_key()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        });
        let mut s =
            serde_json::to_string_pretty(&json!({ "keys": [jwk] })).expect("jwks serializes");
        s.push('\n');
        s
    }

    /// The gateway configuration that trusts this issuer (defaults otherwise: username from `sub`, groups
    /// from `groups`, no prefixes).
    pub fn issuer_config(&self) -> IssuerConfig {
        IssuerConfig::new(
            self.issuer(),
            self.audience(),
            JwksSource::File(self.jwks_path()),
        )
    }

    /// Mints a token for `sub` in `groups`, valid for `ttl` from now, with `iss`, `aud`, `iat`, `nbf`,
    /// `exp` and a random `jti`. `extra_claims` are applied last, so they can also replace registered
    /// claims (tests use this to mint expired or mis-addressed tokens).
    pub fn mint(
        &self,
        sub: &str,
        groups: &[String],
        ttl: Duration,
        extra_claims: Map<String, Value>,
    ) -> MintedToken {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut jti = [0u8; 16];
        SystemRandom::new()
            .fill(&mut jti)
            .expect("the system RNG works");
        let mut claims = Map::new();
        claims.insert("iss".into(), self.settings.issuer.clone().into());
        claims.insert("aud".into(), self.settings.audience.clone().into());
        claims.insert("sub".into(), sub.into());
        claims.insert("groups".into(), groups.into());
        claims.insert("iat".into(), now.into());
        claims.insert("nbf".into(), now.into());
        claims.insert("exp".into(), now.saturating_add(ttl.as_secs()).into());
        claims.insert("jti".into(), URL_SAFE_NO_PAD.encode(jti).into());
        claims.extend(extra_claims);

        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": self.kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string())
        );
        let signature = self.key.sign(signing_input.as_bytes());
        MintedToken {
            token: format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)),
            expires_at: UNIX_EPOCH + Duration::from_secs(exp),
        }
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key: SHA-256 over the required members in lexical order.
fn thumbprint(public: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes a new file that appears whole or not at all; if another process got there first, keeps theirs.
fn create_exclusive(path: &Path, contents: &[u8], mode: u32) -> Result<(), DevIssuerError> {
    let tmp = write_temp(path, contents, mode)?;
    // `hard_link` fails if `path` exists, unlike `rename`, so a racing creator cannot be overwritten.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(DevIssuerError::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// Replaces a file atomically (write a temporary file beside it, then rename).
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), DevIssuerError> {
    let tmp = write_temp(path, contents, mode)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        DevIssuerError::Io {
            path: path.to_owned(),
            source: e,
        }
    })
}

fn write_temp(path: &Path, contents: &[u8], mode: u32) -> Result<PathBuf, DevIssuerError> {
    let mut nonce = [0u8; 6];
    SystemRandom::new()
        .fill(&mut nonce)
        .expect("the system RNG works");
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".tmp-{}", URL_SAFE_NO_PAD.encode(nonce)));
    let tmp = path.with_file_name(name);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(contents).and_then(|()| f.sync_all()));
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(DevIssuerError::Io {
                path: tmp,
                source: e,
            })
        }
    }
}

// === exec credential plugin ===

/// The `client.authentication.k8s.io/v1` `ExecCredential` that hands `token` to kubectl.
pub fn exec_credential_json(token: &str, expires_at: SystemTime) -> String {
    json!({
        "apiVersion": EXEC_CREDENTIAL_API_VERSION,
        "kind": "ExecCredential",
        "status": {
            "token": token,
            "expirationTimestamp": humantime::format_rfc3339_seconds(expires_at).to_string(),
        }
    })
    .to_string()
}

/// A token remembered on disk between plugin runs.
#[derive(Clone, Debug)]
pub struct TokenCache {
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct CachedToken {
    token: String,
    /// Seconds since the epoch.
    expires_at: u64,
}

impl TokenCache {
    /// A cached token is reused only while at least this much of its life is left, so that kubectl never
    /// starts a request (or a long exec) with a token about to expire.
    pub const MIN_REMAINING: Duration = Duration::from_secs(60);

    pub fn new(path: impl Into<PathBuf>) -> TokenCache {
        TokenCache { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached token, if there is one with more than [`TokenCache::MIN_REMAINING`] left.
    pub fn load(&self) -> Option<MintedToken> {
        let cached: CachedToken = serde_json::from_slice(&fs::read(&self.path).ok()?).ok()?;
        let expires_at = UNIX_EPOCH + Duration::from_secs(cached.expires_at);
        let left = expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        (left > Self::MIN_REMAINING).then_some(MintedToken {
            token: cached.token,
            expires_at,
        })
    }

    /// Remembers `token` (file mode 0600, replaced atomically).
    pub fn store(&self, token: &MintedToken) -> Result<(), DevIssuerError> {
        if let Some(parent) = self.path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err(parent))?;
        }
        let cached = CachedToken {
            token: token.token.clone(),
            expires_at: token
                .expires_at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        };
        write_atomic(
            &self.path,
            &serde_json::to_vec(&cached).expect("serializes"),
            0o600,
        )
    }
}

/// `kubetape-quickstart token`: prints an `ExecCredential` with a token from a development issuer.
#[derive(Clone, Debug, clap::Args)]
pub struct TokenArgs {
    /// The development issuer's directory (made by the quickstart).
    #[arg(long, env = "KUBETAPE_ISSUER_DIR")]
    pub issuer_dir: PathBuf,
    /// Username (the token's `sub`).
    #[arg(long)]
    pub user: String,
    /// A group (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Token lifetime, e.g. 10m or 1h (at most 24h).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// An extra string claim, e.g. repository=org/repo (repeatable), to play a CI job.
    #[arg(long = "claim", value_name = "NAME=VALUE", value_parser = parse_claim)]
    pub claims: Vec<(String, String)>,
    /// Mint a new token even if a cached one is still good.
    #[arg(long)]
    pub no_cache: bool,
}

fn parse_claim(s: &str) -> Result<(String, String), String> {
    const RESERVED: &[&str] = &["iss", "aud", "sub", "groups", "exp", "nbf", "iat", "jti"];
    let (name, value) = s.split_once('=').ok_or("expected NAME=VALUE")?;
    if name.is_empty() || RESERVED.contains(&name) {
        return Err(format!("{name:?} cannot be set with --claim"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Runs the plugin: prints the `ExecCredential` JSON on stdout.
pub fn run_token_command(args: TokenArgs) -> anyhow::Result<()> {
    let credential = token_command_output(&args, std::env::var(EXEC_INFO_ENV).ok().as_deref())?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{credential}")?;
    stdout.flush()?;
    Ok(())
}

/// [`run_token_command`] without the process edges: `exec_info` is `$KUBERNETES_EXEC_INFO`.
pub fn token_command_output(args: &TokenArgs, exec_info: Option<&str>) -> anyhow::Result<String> {
    if let Some(info) = exec_info {
        check_exec_info(info)?;
    }
    if args.ttl < Duration::from_secs(1) || args.ttl > MAX_TTL {
        bail!("--ttl must be between 1s and 24h");
    }
    let issuer = DevIssuer::open(&args.issuer_dir).with_context(|| {
        format!(
            "opening the development issuer in {}",
            args.issuer_dir.display()
        )
    })?;

    // One cache file per distinct request to this key, so changing --group or rotating the key never
    // returns a stale token.
    let request = json!({
        "issuer": issuer.issuer(), "audience": issuer.audience(), "kid": issuer.kid(),
        "user": args.user, "groups": args.groups, "claims": args.claims, "ttl": args.ttl.as_secs(),
    });
    let digest = ring::digest::digest(&ring::digest::SHA256, request.to_string().as_bytes());
    let cache = TokenCache::new(
        issuer
            .dir()
            .join(TOKENS_DIR)
            .join(format!("{}.json", URL_SAFE_NO_PAD.encode(digest))),
    );

    let token = match cache.load().filter(|_| !args.no_cache) {
        Some(token) => token,
        None => {
            let extra = args
                .claims
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            let token = issuer.mint(&args.user, &args.groups, args.ttl, extra);
            // A cache we cannot write only costs a new token next time.
            if let Err(e) = cache.store(&token) {
                eprintln!("kubetape-quickstart token: not caching the token: {e}");
            }
            token
        }
    };
    Ok(exec_credential_json(&token.token, token.expires_at))
}

/// The plugin only speaks v1; an older kubeconfig `apiVersion` would make kubectl reject the output anyway,
/// so say why clearly. Everything else in the input (cluster, interactive) is irrelevant here.
fn check_exec_info(info: &str) -> anyhow::Result<()> {
    let info: Value =
        serde_json::from_str(info).with_context(|| format!("{EXEC_INFO_ENV} is not JSON"))?;
    match info.get("apiVersion").and_then(Value::as_str) {
        Some(EXEC_CREDENTIAL_API_VERSION) => Ok(()),
        Some(other) => bail!(
            "the kubeconfig asks for {other}; set `apiVersion: {EXEC_CREDENTIAL_API_VERSION}` in its exec section"
        ),
        None => bail!("{EXEC_INFO_ENV} has no apiVersion"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway::authn::{AuthError, Authenticator};
    use std::os::unix::fs::PermissionsExt as _;

    fn args(dir: &Path) -> TokenArgs {
        TokenArgs {
            issuer_dir: dir.to_owned(),
            user: "alice".into(),
            groups: vec!["dev".into()],
            ttl: Duration::from_secs(600),
            claims: vec![],
            no_cache: false,
        }
    }

    fn credential_token(json: &str) -> (String, String) {
        let v: Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["apiVersion"], EXEC_CREDENTIAL_API_VERSION);
        assert_eq!(v["kind"], "ExecCredential");
        let status = &v["status"];
        (
            status["token"].as_str().unwrap().into(),
            status["expirationTimestamp"].as_str().unwrap().into(),
        )
    }

    #[test]
    fn creates_once_and_reopens() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("issuer");
        let a = DevIssuer::open_or_create(&dir, "https://dev", "kubetape").unwrap();
        let b = DevIssuer::open_or_create(&dir, "https://dev", "kubetape").unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.kid().len(), 43, "base64url SHA-256");
        let mode = |name: &str| fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let jwks: Value =
            serde_json::from_str(&fs::read_to_string(a.jwks_path()).unwrap()).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(
            (
                key["kid"].as_str(),
                key["alg"].as_str(),
                key["use"].as_str()
            ),
            (Some(a.kid()), Some("EdDSA"), Some("sig"))
        );
        assert!(key.get("d").is_none(), "no private part in the JWKS");
        assert!(matches!(
            DevIssuer::open_or_create(&dir, "https://other", "kubetape"),
            Err(DevIssuerError::Mismatch { .. })
        ));
        assert!(matches!(
            DevIssuer::open(&tmp.path().join("missing")),
            Err(DevIssuerError::Io { .. })
        ));
        fs::write(
            dir.join(KEY_FILE),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(matches!(
            DevIssuer::open(&dir),
            Err(DevIssuerError::InvalidKey { .. })
        ));
    }

    #[test]
    fn exec_credential_shape() {
        let json = exec_credential_json("t0k", UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert_eq!(
            json,
            r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"expirationTimestamp":"2023-11-14T22:13:20Z","token":"t0k"}}"#
        );
    }

    #[tokio::test]
    async fn plugin_caches_tokens_per_request() {
        let tmp = tempfile::tempdir().unwrap();
        let issuer = DevIssuer::open_or_create(tmp.path(), "https://dev", "kubetape").unwrap();
        let info = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#;
        let (t1, exp1) =
            credential_token(&token_command_output(&args(tmp.path()), Some(info)).unwrap());
        let (t2, exp2) = credential_token(&token_command_output(&args(tmp.path()), None).unwrap());
        assert_eq!((&t1, &exp1), (&t2, &exp2), "reused from the cache");

        let other_group = TokenArgs {
            groups: vec!["ops".into()],
            ..args(tmp.path())
        };
        let (t3, _) = credential_token(&token_command_output(&other_group, None).unwrap());
        assert_ne!(t1, t3);
        let fresh = TokenArgs {
            no_cache: true,
            ..args(tmp.path())
        };
        let (t4, _) = credential_token(&token_command_output(&fresh, None).unwrap());
        assert_ne!(t1, t4, "--no-cache mints");

        let auth = Authenticator::new(vec![issuer.issuer_config()]).unwrap();
        let id = auth.authenticate(&t1).await.unwrap();
        assert_eq!(
            (id.user.as_str(), id.groups.as_slice()),
            ("alice", ["dev".to_owned()].as_slice())
        );
        assert_eq!(
            humantime::format_rfc3339_seconds(id.expires_at).to_string(),
            exp1
        );

        // A token too close to expiry is not reused.
        let short = TokenArgs {
            ttl: Duration::from_secs(30),
            ..args(tmp.path())
        };
        let (s1, _) = credential_token(&token_command_output(&short, None).unwrap());
        let (s2, _) = credential_token(&token_command_output(&short, None).unwrap());
        assert_ne!(s1, s2);
        let cached = fs::read_dir(tmp.path().join(TOKENS_DIR))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert_eq!(
            fs::metadata(cached).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let expired_cache = TokenCache::new(tmp.path().join("c.json"));
        expired_cache
            .store(&issuer.mint("x", &[], Duration::from_secs(59), Map::new()))
            .unwrap();
        assert!(expired_cache.load().is_none());
        let good = issuer.mint("x", &[], Duration::from_secs(600), Map::new());
        expired_cache.store(&good).unwrap();
        assert_eq!(expired_cache.load(), Some(good));
        fs::write(expired_cache.path(), "garbage").unwrap();
        assert!(expired_cache.load().is_none());

        let expired = issuer.mint(
            "x",
            &[],
            Duration::ZERO,
            [("exp".to_owned(), json!(1))].into_iter().collect(),
        );
        assert_eq!(
            auth.authenticate(&expired.token).await,
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn plugin_input_checks() {
        let tmp = tempfile::tempdir().unwrap();
        DevIssuer::open_or_create(tmp.path(), "https://dev", "kubetape").unwrap();
        let beta = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{}}"#;
        let err = token_command_output(&args(tmp.path()), Some(beta)).unwrap_err();
        assert!(err.to_string().contains("v1beta1"), "{err}");
        assert!(token_command_output(&args(tmp.path()), Some("not json")).is_err());
        let long = TokenArgs {
            ttl: Duration::from_secs(48 * 3600),
            ..args(tmp.path())
        };
        assert!(token_command_output(&long, None).is_err());
        assert!(token_command_output(&args(&tmp.path().join("none")), None).is_err());
        assert!(parse_claim("repository=o/r").is_ok());
        assert!(parse_claim("exp=1").is_err());
        assert!(parse_claim("novalue").is_err());
    }
}
