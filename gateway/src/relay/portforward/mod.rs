//! port-forward: the gateway terminates the client's protocol, dials the cluster with its own
//! SPDY session, and knows every forwarded connection (port, times, bytes each way, how it
//! ended) because it decodes every frame in between.
//!
//! ```text
//! kubectl ≥ 1.31 ══ws tunnel══╗                                ╔══ws tunnel (API server ≥ 1.31)
//! kubectl ≤ 1.30 ══SPDY═══════╬══ switch (per-connection) ═════╣   or, if refused,
//! kube-rs        ══v4 channels╝   port policy · recording      ╚══ SPDY (every API server)
//! ```
//! Client protocols, all three as the API server takes them (kubernetes-streams.md §2): the
//! WebSocket tunnel `SPDY/3.1+portforward.k8s.io` (kubectl ≥ 1.31, 1.30 with
//! `KUBECTL_PORT_FORWARD_WEBSOCKETS=true`), raw SPDY/3.1 (`POST`, `X-Stream-Protocol-Version:
//! portforward.k8s.io`; kubectl ≤ 1.30, and newer ones' fallback), and the channel protocol
//! `v4.channel.k8s.io` with `?ports=` (kube-rs and other libraries).
//!
//! Upstream the gateway always speaks SPDY port-forward, in the tunnel when the cluster takes it,
//! raw otherwise ([`upstream`]). Channel-protocol clients are carried the same way, one SPDY
//! connection pair per port, opened at once: kubelet's channel protocol has no half-close and
//! ties every port to one WebSocket, while SPDY gives each port a connection of its own whose
//! end, bytes and errors are known apart; it is also the one protocol every API server and
//! kubelet serves, so a cluster whose WebSocket path is blocked still serves kube-rs clients.
//!
//! Authorization: the request is `create` on `pods/portforward` (decided by the caller); the
//! allowing rules' `ports` bound which pod ports connections may reach. A connection to another
//! port is refused at its first stream — reset (REFUSED_STREAM), nothing sent upstream — and
//! kubectl reports `error creating error stream for port L -> P: stream reset` and carries on
//! with the others; over the channel protocol the refusal is written on the port's error
//! channel. (Text on a SPDY error stream would be clearer, but kubectl ≥ 1.23 closes the whole
//! forward when it reads any.) The refusal, with the rule, is in the recording and in the
//! connection's audit record.
//!
//! Order of operations, so that failures are clean: negotiate the client protocol → dial the
//! cluster (a missing pod or an RBAC denial is answered before anything is recorded) → open the
//! session (fail closed) → 101 → relay ([`relay`]).

mod relay;
mod switch;
mod upstream;
mod wire;

use std::net::SocketAddr;

use http::{HeaderValue, Request, Response, StatusCode, header};
use proto::channel::Protocol;
use proto::exec::StreamTarget;
use proto::portforward::{PROTOCOL_V1, TUNNEL_PROTOCOL};
use storage_schema::{
    AuditDecision, AuditRecord, ForwardMeta, Identity as RecordedIdentity, SessionKind,
    SessionMeta, Target,
};

use super::Dispatched;
use crate::authn::Identity;
use crate::jit::Grant;
use crate::limits::ConnectionPermit;
use crate::policy::ForwardScope;
use crate::session::{Opening, SessionLimit};
use crate::state::State;
use crate::status::{self, Body};
use crate::upstream::{self as up_headers, Impersonation};

use self::relay::{Audit, Forward};
use self::switch::Switch;
use self::wire::Carrier;

/// The client protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ClientProtocol {
    /// The WebSocket tunnel, with the `Sec-WebSocket-Accept` answer.
    Tunnel(String),
    Spdy,
    /// The channel protocol (`None`: no subprotocol offered, kubelet's binary default).
    Channels(Protocol, Option<&'static str>, String),
}

impl ClientProtocol {
    fn name(&self) -> &'static str {
        match self {
            ClientProtocol::Tunnel(_) => "websocket (SPDY/3.1+portforward.k8s.io)",
            ClientProtocol::Spdy => "SPDY/3.1 (portforward.k8s.io)",
            ClientProtocol::Channels(p, ..) => p.name(),
        }
    }
}

/// The channel protocols served to WebSocket clients that do not ask for the tunnel.
const CHANNEL_PROTOCOLS: [Protocol; 2] = [Protocol::V4, Protocol::V4Base64];

/// Picks the client protocol, or says (as the 400 message) why none fits.
fn negotiate(req: &Request<hyper::body::Incoming>) -> Result<ClientProtocol, String> {
    let h = req.headers();
    let upgrade = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if upgrade.eq_ignore_ascii_case("websocket") {
        let key = h
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or("kubetape: WebSocket upgrade without Sec-WebSocket-Key")?;
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let offered: Vec<&str> = h
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty() && !p.starts_with("base64url.bearer.authorization.k8s.io."))
            .collect();
        if offered.contains(&TUNNEL_PROTOCOL) {
            return Ok(ClientProtocol::Tunnel(accept));
        }
        if offered.is_empty() {
            return Ok(ClientProtocol::Channels(Protocol::V4, None, accept));
        }
        let chosen = proto::channel::negotiate(offered.iter().copied(), &CHANNEL_PROTOCOLS)
            .ok_or_else(|| {
                format!(
                    "kubetape: no supported port-forward protocol offered ({TUNNEL_PROTOCOL}, v4.channel.k8s.io, v4.base64.channel.k8s.io); offered {offered:?}"
                )
            })?;
        return Ok(ClientProtocol::Channels(
            chosen,
            Some(chosen.name()),
            accept,
        ));
    }
    if upgrade.to_ascii_lowercase().starts_with("spdy/3.1") {
        let offered: Vec<&str> = h
            .get_all("x-stream-protocol-version")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if offered.contains(&PROTOCOL_V1) {
            return Ok(ClientProtocol::Spdy);
        }
        return Err(format!(
            "kubetape: unable to negotiate protocol: client supports {offered:?}, the gateway accepts [\"{PROTOCOL_V1}\"]"
        ));
    }
    Err("Upgrade request required".into())
}

/// The ports of a channel-protocol request, checked as kubelet checks them.
fn query_ports(query: Option<&str>) -> Result<Vec<u16>, String> {
    let mut values = Vec::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "ports" || k == "port" {
            values.push(
                proto::exec::percent_decode(v)
                    .ok_or_else(|| format!("kubetape: bad percent-encoding in {k}"))?,
            );
        }
    }
    let ports = proto::portforward::parse_ports(values.iter().map(String::as_str))
        .map_err(|e| e.to_string())?;
    // Port i uses channels 2i and 2i+1, one byte each.
    if ports.len() > 128 {
        return Err("kubetape: at most 128 ports per request".into());
    }
    Ok(ports)
}

/// What the authorization of a forward decided about it.
#[derive(Debug)]
pub struct Authorized<'a> {
    /// The JIT grant it was allowed under (none when a binding allowed it).
    pub grant: Option<&'a Grant>,
    pub limit: SessionLimit,
    /// The rule that allowed it (named in refusals).
    pub rule: String,
    /// Which ports its connections may reach, and what is recorded of their bytes.
    pub scope: ForwardScope,
}

/// Handles an authorized port-forward request: negotiate the client's protocol, dial the
/// cluster (a missing pod or an RBAC denial is answered as a plain HTTP error, before anything
/// is recorded), open the session (fail closed), answer 101 and relay. Revocation, grant
/// expiry and `max_session` end it as they end a shell.
pub async fn handle(
    state: &State,
    mut req: Request<hyper::body::Incoming>,
    identity: &Identity,
    target: StreamTarget,
    client_addr: SocketAddr,
    Authorized {
        grant,
        limit,
        rule,
        scope,
    }: Authorized<'_>,
) -> Dispatched {
    let protocol = match negotiate(&req) {
        Ok(p) => p,
        Err(message) => return Dispatched::refused(status::bad_request(message)),
    };
    let ports = match &protocol {
        ClientProtocol::Channels(..) => match query_ports(req.uri().query()) {
            Ok(p) => p,
            Err(message) => return Dispatched::refused(status::bad_request(message)),
        },
        _ => Vec::new(),
    };
    let capture = scope.capture == crate::policy::Capture::Full;
    let mut meta = session_meta(state, &req, identity, &target, client_addr);
    meta.grant = grant.map(Grant::to_recorded);
    let session_id = meta.session;

    // Dial the cluster first: a missing pod or an RBAC denial is answered as a plain error.
    let mut headers = up_headers::request_headers(req.headers());
    let who = Impersonation {
        user: identity.user.clone(),
        groups: identity.groups.clone(),
        session: Some(session_id),
    };
    if let Err(e) = up_headers::impersonate(&mut headers, &who) {
        return Dispatched::refused(status::bad_request(format!(
            "kubetape: identity cannot be sent upstream: {e}"
        )));
    }
    let upstream = match upstream::dial(&state.upstream_tunnels, req.uri().path(), &headers).await {
        Ok(u) => u,
        Err(refusal) => return Dispatched::refused(refusal),
    };
    meta.port_forward = Some(ForwardMeta {
        ports: ports.clone(),
        allowed_ports: scope.describe_ports(),
        capture: scope.capture.name().into(),
        client_protocol: protocol.name().into(),
        upstream_protocol: upstream.protocol().into(),
    });
    let audit_template = audit_template(state, &req, identity, &target, client_addr, &rule, grant);
    let session = match state
        .sessions
        .open(Opening {
            meta,
            limit,
            extract_commands: false,
            connection: req.extensions().get::<ConnectionPermit>().cloned(),
        })
        .await
    {
        Ok(s) => s,
        Err(e) => return Dispatched::refused(e.response()),
    };
    session.span().in_scope(|| {
        tracing::info!(
            client = protocol.name(),
            upstream = upstream.protocol(),
            ports = %scope.describe_ports(),
            capture = scope.capture.name(),
            "port-forward opened"
        );
    });

    let on_upgrade = hyper::upgrade::on(&mut req);
    let (response, carrier, switch) = match protocol {
        ClientProtocol::Tunnel(accept) => (
            switching(websocket(&accept, Some(TUNNEL_PROTOCOL))),
            Carrier::Tunnel,
            Switch::spdy(scope, capture, rule),
        ),
        ClientProtocol::Channels(p, name, accept) => (
            switching(websocket(&accept, name)),
            Carrier::Channels(p),
            Switch::channels(p, ports, scope, capture, rule),
        ),
        ClientProtocol::Spdy => (
            switching(
                Response::builder()
                    .header(header::CONNECTION, "Upgrade")
                    .header(header::UPGRADE, "SPDY/3.1")
                    .header("X-Stream-Protocol-Version", PROTOCOL_V1),
            ),
            Carrier::Raw,
            Switch::spdy(scope, capture, rule),
        ),
    };
    let id = session.id();
    let mut audit_template = audit_template;
    audit_template.session = Some(id);
    session.spawn(Forward {
        client: on_upgrade,
        carrier,
        upstream,
        switch,
        audit: Audit {
            log: state.audit.clone(),
            template: audit_template,
        },
    });
    Dispatched {
        response,
        session: Some(id),
    }
}

fn websocket(accept: &str, protocol: Option<&'static str>) -> http::response::Builder {
    let b = Response::builder()
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    match protocol {
        Some(p) => b.header(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p)),
        None => b,
    }
}

fn switching(b: http::response::Builder) -> Response<Body> {
    b.status(StatusCode::SWITCHING_PROTOCOLS)
        .body(status::full(bytes::Bytes::new()))
        .expect("static response parts")
}

fn header_of(req: &Request<hyper::body::Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn session_meta(
    state: &State,
    req: &Request<hyper::body::Incoming>,
    identity: &Identity,
    target: &StreamTarget,
    client_addr: SocketAddr,
) -> SessionMeta {
    let mut meta = SessionMeta::new(
        SessionKind::PortForward,
        RecordedIdentity {
            user: identity.user.clone(),
            groups: identity.groups.clone(),
            issuer: Some(identity.issuer.clone()),
            claims: identity.claims.clone(),
        },
        Target {
            cluster: Some(state.cluster.clone()),
            namespace: Some(target.namespace.clone()),
            pod: Some(target.pod.clone()),
            container: None,
            host: None,
        },
        Vec::new(),
        false,
    );
    meta.client.address = Some(client_addr.to_string());
    meta.client.user_agent = header_of(req, "user-agent");
    meta.client.kubectl_session = header_of(req, "kubectl-session");
    meta
}

/// The audit record each connection's own record starts from: the forward's request.
fn audit_template(
    state: &State,
    req: &Request<hyper::body::Incoming>,
    identity: &Identity,
    target: &StreamTarget,
    client_addr: SocketAddr,
    rule: &str,
    grant: Option<&Grant>,
) -> AuditRecord {
    AuditRecord {
        time_us: 0,
        gateway: state.audit.instance().to_string(),
        user: Some(identity.user.clone()),
        groups: identity.groups.clone(),
        issuer: Some(identity.issuer.clone()),
        claims: identity.claims.clone(),
        client: client_addr.to_string(),
        user_agent: header_of(req, "user-agent"),
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        verb: "create".into(),
        api_group: Some(String::new()),
        resource: Some("pods".into()),
        subresource: Some("portforward".into()),
        namespace: Some(target.namespace.clone()),
        name: Some(target.pod.clone()),
        decision: AuditDecision::Allow,
        rule: Some(rule.to_string()),
        reason: None,
        status: 200,
        latency_ms: 0.0,
        session: None,
        grant: grant.map(|g| g.id.clone()),
        extra: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ports_are_checked_as_kubelet_checks_them() {
        assert_eq!(query_ports(Some("ports=80,7000")), Ok(vec![80, 7000]));
        assert_eq!(query_ports(Some("&ports=80%2C7000")), Ok(vec![80, 7000]));
        assert_eq!(query_ports(Some("port=80&ports=90")), Ok(vec![80, 90]));
        assert!(query_ports(None).unwrap_err().contains("is required"));
        assert!(
            query_ports(Some("ports=http"))
                .unwrap_err()
                .contains("unable to parse")
        );
        assert!(
            query_ports(Some("ports=0"))
                .unwrap_err()
                .contains("must be > 0")
        );
        assert!(
            query_ports(Some("ports=%zz"))
                .unwrap_err()
                .contains("percent")
        );
        let many: Vec<String> = (1..=129).map(|p| p.to_string()).collect();
        let q = format!("ports={}", many.join(","));
        assert!(query_ports(Some(&q)).unwrap_err().contains("at most 128"));
    }
}
