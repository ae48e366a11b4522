//! The way to the real API server: the gateway's own identity (a kubeconfig or the in-cluster
//! service account, through `kube::Config`) plus impersonation of the caller.
//!
//! Client credentials never travel upstream: `Authorization`, every `Impersonate-*` header and
//! bearer-token WebSocket subprotocols are removed before the gateway adds its own impersonation
//! headers, so the cluster's RBAC and audit see the authenticated, mapped identity and nothing a
//! client could forge.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use storage_schema::SessionId;

/// Impersonation extra key carrying the recording's session id, joining the API server's audit
/// log with kubetape recordings.
pub const SESSION_EXTRA: &str = "impersonate-extra-kubetape-session-id";

/// Who the gateway speaks as upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impersonation {
    pub user: String,
    pub groups: Vec<String>,
    pub session: Option<SessionId>,
}

/// Builds the upstream client from a kubeconfig path (and optional context), or infers one
/// (KUBECONFIG, ~/.kube/config, in-cluster).
pub async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)?;
            let opts = kube::config::KubeConfigOptions {
                context: context.map(str::to_string),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kc, &opts).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes what must never reach upstream: credentials, client-chosen impersonation, hop-by-hop
/// headers (and those named in `Connection`), and bearer tokens smuggled in WebSocket
/// subprotocols.
pub fn sanitize(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| !keep_upgrade || n != header::UPGRADE)
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in HOP_BY_HOP {
        if keep_upgrade && (h == "connection" || h == "upgrade") {
            continue;
        }
        headers.remove(h);
    }
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::HOST);
    let impersonation: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for k in impersonation {
        headers.remove(k);
    }
    let protocols: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with("base64url.bearer.authorization.k8s.io."))
        .map(str::to_string)
        .collect();
    headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
    if !protocols.is_empty()
        && let Ok(v) = HeaderValue::from_str(&protocols.join(", "))
    {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
}

/// Adds the impersonation headers for `who`.
pub fn impersonate(
    headers: &mut HeaderMap,
    who: &Impersonation,
) -> Result<(), http::header::InvalidHeaderValue> {
    headers.insert("impersonate-user", HeaderValue::from_str(&who.user)?);
    for g in &who.groups {
        headers.append("impersonate-group", HeaderValue::from_str(g)?);
    }
    if let Some(id) = who.session {
        headers.insert(SESSION_EXTRA, HeaderValue::from_str(&id.to_string())?);
    }
    Ok(())
}

/// The bearer token a request carries: `Authorization: Bearer …`, or the WebSocket subprotocol
/// form browsers and some clients use.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            p.trim()
                .strip_prefix("base64url.bearer.authorization.k8s.io.")
        })
        .and_then(|b64| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64.trim_end_matches('='))
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_credentials_and_impersonation_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer secret".parse().unwrap());
        h.insert("impersonate-user", "system:admin".parse().unwrap());
        h.append("impersonate-group", "system:masters".parse().unwrap());
        h.insert("impersonate-extra-scopes", "x".parse().unwrap());
        h.insert("connection", "Upgrade, X-Custom".parse().unwrap());
        h.insert("x-custom", "1".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert(
            "sec-websocket-protocol",
            "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.c2VjcmV0"
                .parse()
                .unwrap(),
        );
        h.insert("user-agent", "kubectl".parse().unwrap());
        sanitize(&mut h, true);
        assert!(h.get("authorization").is_none());
        assert!(h.keys().all(|k| !k.as_str().starts_with("impersonate-")));
        assert!(h.get("x-custom").is_none());
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(
            h.get("sec-websocket-protocol").unwrap(),
            "v5.channel.k8s.io"
        );
        assert_eq!(h.get("user-agent").unwrap(), "kubectl");

        let who = Impersonation {
            user: "oidc:alice".into(),
            groups: vec!["dev".into(), "ops".into()],
            session: Some(SessionId::new()),
        };
        impersonate(&mut h, &who).unwrap();
        assert_eq!(h.get_all("impersonate-group").iter().count(), 2);
        assert!(h.get(SESSION_EXTRA).is_some());
    }

    #[test]
    fn bearer_forms() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h).as_deref(), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        let mut h = HeaderMap::new();
        h.insert(
            "sec-websocket-protocol",
            "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.YWJj"
                .parse()
                .unwrap(),
        );
        assert_eq!(bearer_token(&h).as_deref(), Some("abc"));
    }
}
