//! The request log: what reached the API and with which identity headers, so tests can assert
//! what a gateway forwarded (impersonation, paths, the upgrade kind). Kept in memory for
//! in-process tests and appended as JSON lines to `requests.jsonl` for tests in other processes.
//! The bearer token itself is never written: only whether it matched.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// How the request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Authorization {
    /// `Authorization: Bearer <the sandbox token>`.
    Valid,
    /// An `Authorization` header with anything else.
    Invalid,
    /// No `Authorization` header.
    Missing,
}

/// One request as it arrived, with the status the sandbox answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// RFC 3339 arrival time.
    pub time: String,
    pub method: String,
    /// Path and query exactly as received.
    pub path: String,
    pub authorization: Authorization,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonate_user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub impersonate_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonate_uid: Option<String>,
    /// `Impersonate-Extra-<key>` values by lowercased key (still percent-encoded, as sent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub impersonate_extra: BTreeMap<String, Vec<String>>,
    /// Every `X-Remote-*` header (`X-Remote-User`, `-Group`, `-Extra-<key>`: a front proxy's
    /// claim of who the user is, which an API server with request-header authentication
    /// believes) by lowercased name, so tests can show that no client's claim gets through.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub remote_headers: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The `Upgrade` header (`websocket`, `SPDY/3.1`), for streaming requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<String>,
    /// The request body's `Content-Type` (kubectl creates pods as protobuf from 1.30 or so, as
    /// JSON before), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Offered `Sec-WebSocket-Protocol` / `X-Stream-Protocol-Version` values, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<String>,
    /// The HTTP status of the response head (101 for upgrades).
    pub status: u16,
}

impl RequestRecord {
    /// Builds a record from request headers; `status` is filled in when the response is known.
    pub(crate) fn from_request<B>(req: &http::Request<B>, authorization: Authorization) -> Self {
        let h = req.headers();
        let one = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let all = |name: &str| {
            h.get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut remote: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in h {
            if let Some(key) = name.as_str().strip_prefix("impersonate-extra-")
                && let Ok(v) = value.to_str()
            {
                extra
                    .entry(key.to_string())
                    .or_default()
                    .push(v.to_string());
            }
            // Any bytes at all: a claim in a strange encoding is still a claim that got through.
            if name.as_str().starts_with("x-remote-") {
                remote
                    .entry(name.to_string())
                    .or_default()
                    .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
            }
        }
        let mut protocols = Vec::new();
        for name in ["sec-websocket-protocol", "x-stream-protocol-version"] {
            for line in all(name) {
                protocols.extend(
                    line.split(',')
                        .map(|p| p.trim().to_string())
                        .filter(|p| !p.is_empty()),
                );
            }
        }
        Self {
            time: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            method: req.method().to_string(),
            path: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().path().to_string(), |p| p.to_string()),
            authorization,
            impersonate_user: one("impersonate-user"),
            impersonate_groups: all("impersonate-group"),
            impersonate_uid: one("impersonate-uid"),
            impersonate_extra: extra,
            remote_headers: remote,
            user_agent: one("user-agent"),
            upgrade: one("upgrade"),
            content_type: one("content-type"),
            protocols,
            status: 0,
        }
    }
}

/// Every request the sandbox answered, in order; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    records: Vec<RequestRecord>,
    file: Option<File>,
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.inner.lock().map(|i| i.records.len()).unwrap_or(0);
        f.debug_struct("RequestLog").field("records", &n).finish()
    }
}

impl RequestLog {
    /// A log that also appends to `path` (created or truncated).
    pub(crate) fn with_file(path: &Path) -> std::io::Result<Self> {
        let file = File::create(path)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                records: Vec::new(),
                file: Some(file),
            })),
        })
    }

    /// Records one request. File errors are logged, not returned: losing a log line must not
    /// fail the request being served.
    pub(crate) fn push(&self, record: RequestRecord) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = inner.file.as_mut() {
            let mut line = serde_json::to_vec(&record).expect("record serializes");
            line.push(b'\n');
            if let Err(e) = file.write_all(&line) {
                tracing::warn!(error = %e, "cannot append to requests.jsonl");
            }
        }
        inner.records.push(record);
    }

    /// A copy of every record so far.
    pub fn snapshot(&self) -> Vec<RequestRecord> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .records
            .clone()
    }

    /// Reads a `requests.jsonl` written by a sandbox in another process.
    pub fn read_file(path: impl AsRef<Path>) -> std::io::Result<Vec<RequestRecord>> {
        let text = std::fs::read_to_string(path)?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_identity_headers_but_never_the_token() {
        let req = http::Request::get("/api/v1/pods?limit=500")
            .header("authorization", "Bearer secret-token")
            .header("impersonate-user", "gw:alice")
            .header("impersonate-group", "dev")
            .header("impersonate-group", "ops")
            .header("impersonate-extra-gw-session-id", "abc")
            .header("user-agent", "kubectl/v1.33.0")
            .header("X-Remote-User", "system:admin")
            .header("x-remote-group", "system:masters")
            .header("x-remote-extra-scopes", "all")
            .body(())
            .unwrap();
        let mut r = RequestRecord::from_request(&req, Authorization::Valid);
        r.status = 200;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.jsonl");
        let log = RequestLog::with_file(&path).unwrap();
        log.push(r.clone());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("secret-token"));
        assert!(text.contains(r#""authorization":"valid""#));
        assert_eq!(RequestLog::read_file(&path).unwrap(), vec![r.clone()]);
        assert_eq!(r.impersonate_groups, ["dev", "ops"]);
        assert_eq!(r.impersonate_extra["gw-session-id"], ["abc"]);
        assert_eq!(
            r.remote_headers,
            BTreeMap::from([
                ("x-remote-extra-scopes".to_string(), vec!["all".to_string()]),
                (
                    "x-remote-group".to_string(),
                    vec!["system:masters".to_string()]
                ),
                (
                    "x-remote-user".to_string(),
                    vec!["system:admin".to_string()]
                ),
            ])
        );
        assert_eq!(r.path, "/api/v1/pods?limit=500");
        assert_eq!(log.snapshot().len(), 1);
    }
}
