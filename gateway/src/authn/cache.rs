//! One issuer's key set, loaded lazily and kept fresh.
//!
//! | event | file source | URL source |
//! |---|---|---|
//! | first use | read | fetch (failures retried at most every [`INITIAL_RETRY`]) |
//! | file changed (mtime, size or inode) | re-read at once | — |
//! | TTL elapsed | re-read | re-fetch, serving the old keys meanwhile and if it fails |
//! | unknown `kid` | re-read | re-fetch |
//!
//! Every re-read or re-fetch except the first load and a changed file waits `min_refresh` since the
//! previous attempt, so a stream of tokens with made-up `kid`s costs the issuer at most one request per
//! interval. Refreshes are single-flight; readers never wait for one while old keys exist.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::time::Instant;

use super::config::{IssuerConfig, JwksSource};
use super::error::{AuthError, ConfigError};
use super::fetch::{FetchUrl, Fetcher, parse_url};
use super::jwks::KeySet;

/// Back-off between failed first loads, while the issuer has no keys at all.
const INITIAL_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(crate) struct KeyCache {
    issuer: String,
    source: Source,
    ttl: Duration,
    min_refresh: Duration,
    current: RwLock<Snapshot>,
    /// Held while loading; remembers the last attempt.
    refresh: tokio::sync::Mutex<Option<Attempt>>,
}

#[derive(Debug)]
enum Source {
    File(PathBuf),
    Url {
        url: FetchUrl,
        discover: bool,
        fetcher: Fetcher,
    },
}

#[derive(Clone, Debug, Default)]
struct Snapshot {
    keys: Option<Arc<KeySet>>,
    loaded_at: Option<Instant>,
    stamp: Option<FileStamp>,
}

/// What identifies a version of a key file without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

#[derive(Clone, Copy, Debug)]
struct Attempt {
    at: Instant,
    /// Why it failed (fixed text for the client), if it did.
    error: Option<&'static str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    Initial,
    FileChanged,
    Ttl,
    UnknownKid,
}

// === impl KeyCache ===

impl KeyCache {
    pub(crate) fn new(cfg: &IssuerConfig) -> Result<KeyCache, ConfigError> {
        let source = match &cfg.jwks {
            JwksSource::File(path) => Source::File(path.clone()),
            JwksSource::Url(raw) => {
                let invalid = |reason: String| ConfigError::Invalid {
                    issuer: cfg.issuer.clone(),
                    reason,
                };
                // The issuer URL itself means OpenID discovery.
                let discover = raw.trim_end_matches('/') == cfg.issuer.trim_end_matches('/');
                let raw = if discover {
                    format!(
                        "{}/.well-known/openid-configuration",
                        raw.trim_end_matches('/')
                    )
                } else {
                    raw.clone()
                };
                let url = parse_url(&raw).map_err(|r| invalid(format!("jwks url: {r}")))?;
                let fetcher = Fetcher::new(cfg.ca_file.as_deref());
                if let Some(reason) = fetcher.tls_error()
                    && (url.needs_tls() || cfg.ca_file.is_some())
                {
                    return Err(ConfigError::TrustRoots {
                        issuer: cfg.issuer.clone(),
                        reason: reason.to_owned(),
                    });
                }
                Source::Url {
                    url,
                    discover,
                    fetcher,
                }
            }
        };
        Ok(KeyCache {
            issuer: cfg.issuer.clone(),
            source,
            ttl: Duration::from_secs(cfg.jwks_ttl_secs),
            min_refresh: Duration::from_secs(cfg.jwks_min_refresh_secs),
            current: RwLock::new(Snapshot::default()),
            refresh: tokio::sync::Mutex::new(None),
        })
    }

    fn snapshot(&self) -> Snapshot {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current keys, loading or refreshing them when due.
    pub(crate) async fn keys(&self) -> Result<Arc<KeySet>, AuthError> {
        let snap = self.snapshot();
        let Some(keys) = snap.keys.clone() else {
            // Nothing to serve: wait for (or do) the first load.
            let mut last = self.refresh.lock().await;
            if let Some(keys) = self.snapshot().keys {
                return Ok(keys);
            }
            return self.reload(&mut last, Why::Initial).await;
        };
        let why = if self.file_changed(&snap) {
            Why::FileChanged
        } else if snap.loaded_at.is_none_or(|t| t.elapsed() >= self.ttl) {
            Why::Ttl
        } else {
            return Ok(keys);
        };
        // Someone else is refreshing: the keys we have are still good for now.
        let Ok(mut last) = self.refresh.try_lock() else {
            return Ok(keys);
        };
        Ok(self.reload(&mut last, why).await.unwrap_or(keys))
    }

    /// Called when a token names a key the current set lacks: reloads unless that happened too recently.
    /// Returns the new set, or `None` when no reload was allowed (or it failed).
    pub(crate) async fn refresh_for_unknown_kid(&self) -> Option<Arc<KeySet>> {
        let before = self.snapshot().loaded_at;
        let mut last = self.refresh.lock().await;
        // Another task reloaded while we waited: use its result rather than reloading again.
        let snap = self.snapshot();
        if snap.loaded_at != before {
            return snap.keys;
        }
        self.reload(&mut last, Why::UnknownKid).await.ok()
    }

    /// Loads the key set if the rate limit allows; the caller holds the refresh lock.
    async fn reload(&self, last: &mut Option<Attempt>, why: Why) -> Result<Arc<KeySet>, AuthError> {
        let wait = match why {
            Why::FileChanged => Duration::ZERO,
            Why::Initial => INITIAL_RETRY.min(self.min_refresh),
            Why::Ttl | Why::UnknownKid => self.min_refresh,
        };
        if let Some(last) = last.filter(|a| a.at.elapsed() < wait) {
            return Err(AuthError::Jwks(
                last.error.unwrap_or("refresh is rate-limited"),
            ));
        }
        let attempt = last.insert(Attempt {
            at: Instant::now(),
            error: None,
        });
        let stamp = self.stamp();
        match self.load().await {
            Ok(set) => {
                let set = Arc::new(set);
                tracing::debug!(issuer = %self.issuer, reason = ?why, keys = set.usable_len(), "loaded signing keys");
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Snapshot {
                    keys: Some(set.clone()),
                    loaded_at: Some(Instant::now()),
                    stamp,
                };
                Ok(set)
            }
            Err((public, detail)) => {
                tracing::warn!(issuer = %self.issuer, reason = %detail, "cannot load signing keys");
                if why == Why::FileChanged {
                    // Keep the old keys, and try again when the file changes once more (or the TTL ends),
                    // not on every request.
                    self.current
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .stamp = stamp;
                }
                attempt.error = Some(public);
                Err(AuthError::Jwks(public))
            }
        }
    }

    /// Reads or fetches the key set. Errors: a fixed reason for the client and a detail for the log.
    async fn load(&self) -> Result<KeySet, (&'static str, String)> {
        let bytes: bytes::Bytes = match &self.source {
            Source::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| {
                    (
                        "cannot read the key file",
                        format!("{}: {e}", path.display()),
                    )
                })?
                .into(),
            Source::Url {
                url,
                discover,
                fetcher,
            } => {
                let body = fetcher
                    .get(url)
                    .await
                    .map_err(|e| ("cannot fetch the key set", e))?;
                match discovered_jwks_uri(&body, &self.issuer, *discover)
                    .map_err(|e| ("invalid discovery document", format!("{url}: {e}")))?
                {
                    Some(jwks_url) => fetcher
                        .get(&jwks_url)
                        .await
                        .map_err(|e| ("cannot fetch the key set", e))?,
                    None => body,
                }
            }
        };
        let set = KeySet::parse(&bytes).map_err(|e| (e, e.to_owned()))?;
        if set.usable_len() == 0 {
            return Err((
                "the key set has no usable keys",
                "no RS256/ES256/EdDSA signing keys".to_owned(),
            ));
        }
        Ok(set)
    }

    fn stamp(&self) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt as _;
        let Source::File(path) = &self.source else {
            return None;
        };
        // A stat per authentication: cheap next to the signature check, and what makes rotation immediate.
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            ino: meta.ino(),
        })
    }

    fn file_changed(&self, snap: &Snapshot) -> bool {
        matches!(self.source, Source::File(_)) && self.stamp() != snap.stamp
    }
}

/// If `body` is an OpenID discovery document, returns its vetted `jwks_uri`; if it is a JWKS, `None`.
fn discovered_jwks_uri(
    body: &[u8],
    issuer: &str,
    must_discover: bool,
) -> Result<Option<FetchUrl>, String> {
    #[derive(Deserialize)]
    struct Discovery {
        #[serde(default)]
        issuer: Option<String>,
        #[serde(default)]
        jwks_uri: Option<String>,
        #[serde(default)]
        keys: Option<serde_json::Value>,
    }
    let doc: Discovery =
        serde_json::from_slice(body).map_err(|_| "not a JSON object".to_owned())?;
    if doc.keys.is_some() && !must_discover {
        return Ok(None);
    }
    let jwks_uri = doc.jwks_uri.ok_or("no `jwks_uri`")?;
    // OpenID Connect Discovery §4.3: the document's issuer must be the one we asked about.
    if doc.issuer.as_deref() != Some(issuer) {
        return Err("its `issuer` is not the configured issuer".to_owned());
    }
    parse_url(&jwks_uri)
        .map(Some)
        .map_err(|e| format!("`jwks_uri`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_documents() {
        let iss = "https://idp.example";
        let jwks = br#"{"keys": []}"#;
        assert!(discovered_jwks_uri(jwks, iss, false).unwrap().is_none());
        assert!(discovered_jwks_uri(jwks, iss, true).is_err());
        let doc =
            br#"{"issuer": "https://idp.example", "jwks_uri": "https://keys.idp.example/jwks"}"#;
        let url = discovered_jwks_uri(doc, iss, true).unwrap().unwrap();
        assert_eq!(url.to_string(), "https://keys.idp.example/jwks");
        let other =
            br#"{"issuer": "https://evil.example", "jwks_uri": "https://evil.example/jwks"}"#;
        assert!(discovered_jwks_uri(other, iss, false).is_err());
        let plain =
            br#"{"issuer": "https://idp.example", "jwks_uri": "http://keys.idp.example/jwks"}"#;
        assert!(discovered_jwks_uri(plain, iss, true).is_err());
        assert!(discovered_jwks_uri(b"<html>", iss, false).is_err());
    }
}
