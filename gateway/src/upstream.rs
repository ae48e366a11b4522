//! The way to the real API server: the gateway's own identity (a kubeconfig or the in-cluster
//! service account, through `kube::Config`) plus impersonation of the caller.
//!
//! What a client sends reaches the cluster only through an allow-list ([`request_headers`]):
//! content negotiation, the user agent and kubectl's own request tags. Everything else — the
//! client's `Authorization`, `Impersonate-*`, front-proxy identity headers (`X-Remote-User`,
//! `X-Remote-Group`, `X-Remote-Extra-*`, which an API server configured with a request-header
//! authenticator would believe), bearer-token WebSocket subprotocols, and whatever a header
//! invented tomorrow means to some proxy — is dropped, by construction rather than by a list of
//! what to remove. Then the gateway adds its own impersonation headers, so the cluster's RBAC and
//! audit see the authenticated, mapped identity and nothing a client could forge.

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

/// The gateway's clients to the cluster, from one configuration.
#[derive(Clone)]
pub struct Clients {
    /// kube's own client stack: REST, exec, attach, self-reviews.
    pub default: kube::Client,
    /// The same, over TCP connections with Nagle's algorithm off, for port-forward tunnels.
    /// A tunnel's small frames (a new stream, its first bytes) otherwise wait for the peer's
    /// delayed ACK: each forwarded connection's set-up took 43 ms through the gateway against
    /// 1 ms direct; with this client 1.25 ms (`cargo bench -p tests --bench portforward`).
    /// Exec keeps the default: a keystroke is one small write with nothing in flight, which
    /// Nagle does not hold back, and the keystroke bench showed no gain from this client
    /// that stood out from its run-to-run spread.
    pub tunnels: kube::Client,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

/// The upstream configuration from a kubeconfig path (and optional context), or inferred
/// (KUBECONFIG, ~/.kube/config, in-cluster).
async fn config(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Config> {
    Ok(match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)?;
            let opts = kube::config::KubeConfigOptions {
                context: context.map(str::to_string),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kc, &opts).await?
        }
        None => kube::Config::infer().await?,
    })
}

/// The gateway's upstream clients (see [`Clients`] and [`config`]).
pub async fn clients(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> anyhow::Result<Clients> {
    let config = config(kubeconfig, context).await?;
    let default = kube::Client::try_from(config.clone())?;
    // kube's own stack speaks to proxies; the no-delay one does not.
    let tunnels = if config.proxy_url.is_some() {
        default.clone()
    } else {
        no_delay_client(config)?
    };
    Ok(Clients { default, tunnels })
}

/// kube's default client alone (what `check` needs to reach the cluster).
pub async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(config(kubeconfig, context).await?)?)
}

/// kube's client stack (TLS with the kubeconfig's CA and client identity, base URI, auth,
/// extra headers) over TCP connections with Nagle's algorithm off. Timeouts: kube's connect
/// timeout is kept; its per-read timeout is not, since it would also apply to upgraded
/// streams (a tunnel is kept alive by the relay's own pings).
fn no_delay_client(config: kube::Config) -> anyhow::Result<kube::Client> {
    use kube::client::ConfigExt as _;

    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(config.connect_timeout);
    // rustls reads its transport 4 KiB at a time: see crate::read_ahead.
    let tcp = tower::ServiceExt::map_response(tcp, read_ahead);
    let https = config.rustls_https_connector_with_connector(tcp)?;
    let http: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http);
    Ok(kube::Client::new(service, config.default_namespace))
}

fn read_ahead(
    io: hyper_util::rt::TokioIo<tokio::net::TcpStream>,
) -> hyper_util::rt::TokioIo<crate::read_ahead::ReadAhead<tokio::net::TcpStream>> {
    hyper_util::rt::TokioIo::new(crate::read_ahead::ReadAhead::new(io.into_inner()))
}

/// Request headers forwarded to the cluster (lowercase). Upgrade headers of streams are not
/// here: the stream relays build their own upstream handshakes.
pub const FORWARDED_REQUEST_HEADERS: [&str; 10] = [
    "accept",
    "accept-encoding",
    "accept-language",
    "content-type",
    "content-encoding",
    "user-agent",
    // kubectl tags its requests with the command and an invocation id (KEP-859); the API
    // server's audit log records them.
    "kubectl-command",
    "kubectl-session",
    // Distributed tracing (the API server joins spans on them).
    "traceparent",
    "tracestate",
];

/// The headers of a client request that may go upstream: the allow-list, copied. Credentials,
/// impersonation and identity headers are never among them.
pub fn request_headers(from: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in FORWARDED_REQUEST_HEADERS {
        for value in from.get_all(name) {
            out.append(HeaderName::from_static(name), value.clone());
        }
    }
    out
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

/// Removes from a response of the cluster what is the connection's, not the response's:
/// hop-by-hop headers and those named in `Connection`.
pub fn response_headers(headers: &mut HeaderMap) {
    sanitize(headers, false);
}

/// Removes credentials, impersonation, hop-by-hop headers (and those named in `Connection`), and
/// bearer tokens smuggled in WebSocket subprotocols.
fn sanitize(headers: &mut HeaderMap, keep_upgrade: bool) {
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

/// What credential a request carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential {
    None,
    Bearer(String),
    /// More than one (two `Authorization` headers, or one beside a bearer subprotocol): which
    /// one a proxy or the cluster would believe is anybody's guess, so the request is refused.
    Ambiguous,
}

/// The bearer token a request carries: `Authorization: Bearer …`, or the WebSocket subprotocol
/// form browsers and some clients use — exactly one of them.
pub fn bearer_token(headers: &HeaderMap) -> Credential {
    let authorization: Vec<&HeaderValue> = headers.get_all(header::AUTHORIZATION).iter().collect();
    let subprotocol: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| {
            p.trim()
                .strip_prefix("base64url.bearer.authorization.k8s.io.")
        })
        .collect();
    match (authorization.as_slice(), subprotocol.as_slice()) {
        ([], []) => Credential::None,
        ([v], []) => {
            let token = v.to_str().ok().and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_string())
            });
            token.map_or(Credential::None, Credential::Bearer)
        }
        ([], [b64]) => {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64.trim_end_matches('='))
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .map_or(Credential::None, Credential::Bearer)
        }
        _ => Credential::Ambiguous,
    }
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
    fn only_allowed_headers_reach_the_cluster() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer secret"),
            ("impersonate-user", "system:admin"),
            ("impersonate-group", "system:masters"),
            ("x-remote-user", "system:admin"),
            ("x-remote-group", "system:masters"),
            ("x-remote-extra-scopes", "all"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-something-new", "1"),
            ("cookie", "session=1"),
            ("host", "evil"),
            (
                "sec-websocket-protocol",
                "base64url.bearer.authorization.k8s.io.c2VjcmV0",
            ),
            ("accept", "application/json;as=Table;g=meta.k8s.io;v=v1"),
            ("user-agent", "kubectl/v1.33.0"),
            ("kubectl-command", "kubectl get"),
            ("content-type", "application/merge-patch+json"),
        ] {
            h.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let up = request_headers(&h);
        let mut names: Vec<&str> = up.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["accept", "content-type", "kubectl-command", "user-agent"]
        );
        assert_eq!(up.get("user-agent").unwrap(), "kubectl/v1.33.0");
    }

    #[test]
    fn bearer_forms() {
        let bearer = |t: &str| Credential::Bearer(t.into());
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h), bearer("abc"));
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), Credential::None);
        assert_eq!(bearer_token(&HeaderMap::new()), Credential::None);
        let mut ws = HeaderMap::new();
        ws.insert(
            "sec-websocket-protocol",
            "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.YWJj"
                .parse()
                .unwrap(),
        );
        assert_eq!(bearer_token(&ws), bearer("abc"));
        // Two credentials: refused, whichever would have been read first.
        let mut two = HeaderMap::new();
        two.append("authorization", "Bearer abc".parse().unwrap());
        two.append("authorization", "Bearer def".parse().unwrap());
        assert_eq!(bearer_token(&two), Credential::Ambiguous);
        let mut both = ws.clone();
        both.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&both), Credential::Ambiguous);
        let mut two_protocols = HeaderMap::new();
        two_protocols.insert(
            "sec-websocket-protocol",
            "base64url.bearer.authorization.k8s.io.YWJj, base64url.bearer.authorization.k8s.io.ZGVm"
                .parse()
                .unwrap(),
        );
        assert_eq!(bearer_token(&two_protocols), Credential::Ambiguous);
    }
}
