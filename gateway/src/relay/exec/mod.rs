//! exec/attach: the gateway terminates the client's stream (WebSocket v5/v4 from kubectl ≥ 1.30,
//! SPDY/3.1 from older kubectl and as every version's fallback), dials the cluster over WebSocket
//! v5, relays both ways message by message, and tees everything into a recording.
//!
//! ```text
//! kubectl ══ws/spdy══ client end  ──FromClient──► pump ──ws v5──► API server
//!                                 ◄─ToClient────      ◄──────────
//!                                                   └─► Recorder (storage-schema)
//! ```
//! Order of operations, so that failures are clean: authorize (done by the caller) → negotiate
//! the client protocol → dial upstream (a missing pod is answered before any upgrade) → open the
//! recording (if that fails the stream is refused: fail closed) → 101 → relay. Every session
//! ends with a Status on the error channel carrying the true exit code, synthesized if the
//! upstream died, because a close without one makes kubectl exit 0.

mod client_spdy;
mod client_ws;
mod pump;
mod upstream;

use std::net::SocketAddr;

use http::{HeaderValue, Request, Response, StatusCode, header};
use proto::channel::Protocol;
use proto::exec::{StreamOptions, StreamTarget, Subresource};
use storage_schema::{ExitInfo, Identity as RecordedIdentity, SessionKind, SessionMeta, Target};

use super::Dispatched;
use crate::authn::Identity;
use crate::jit::Grant;
use crate::limits::ConnectionPermit;
use crate::session::{Opening, SessionLimit};
use crate::state::State;
use crate::status::{self, Body};
use crate::upstream::{self as upstream_headers, Impersonation};

/// Protocols offered to WebSocket clients, in the server's order of preference.
const WS_PROTOCOLS: [Protocol; 3] = [Protocol::V5, Protocol::V4, Protocol::V4Base64];
/// The SPDY remote-command protocol we serve (what kubelets speak).
const SPDY_PROTOCOL: &str = "v4.channel.k8s.io";

/// What the client side speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ClientProtocol {
    /// The subprotocol, and the `Sec-WebSocket-Accept` answer to the client's key.
    WebSocket(Protocol, String),
    Spdy,
}

/// Bytes and signals from the client.
#[derive(Debug)]
pub(crate) enum FromClient {
    Stdin(Vec<u8>),
    StdinEof,
    Resize(Vec<u8>),
}

/// Client bytes a session may hold between reading them from the client and writing them to
/// the cluster. Bounded in bytes, not messages: a client that pushes stdin the pod never reads
/// is held back by TCP once this much waits (six such sessions once took the gateway from
/// 112 MB to 1.9 GB with 64 MiB messages read 16 deep).
pub(crate) const READ_AHEAD: usize = 256 << 10;

/// Largest message a client may send: kubectl writes stdin in 32 KiB pieces (`kubectl cp`
/// included), kube-rs in 4 KiB ones, keystrokes and resizes are tiny. A larger message closes
/// the stream (WebSocket close 1009).
pub(crate) const MAX_CLIENT_MESSAGE: usize = 256 << 10;

/// One message from the client with its share of the read-ahead budget, given back when the
/// pump has written it upstream.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub msg: FromClient,
    _credit: tokio::sync::OwnedSemaphorePermit,
}

/// The client end's side of the queue to the pump.
#[derive(Debug, Clone)]
pub(crate) struct Inbox {
    tx: tokio::sync::mpsc::Sender<Inbound>,
    budget: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Inbox {
    /// A queue to the pump and its receiving end.
    pub fn new() -> (Self, tokio::sync::mpsc::Receiver<Inbound>) {
        // Messages are also counted, so empty ones cannot pile up without bound.
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let budget = std::sync::Arc::new(tokio::sync::Semaphore::new(READ_AHEAD));
        (Self { tx, budget }, rx)
    }

    /// Waits for room, then queues `msg`; an error means the pump is gone.
    pub async fn send(&self, msg: FromClient) -> Result<(), ()> {
        let len = match &msg {
            FromClient::Stdin(b) | FromClient::Resize(b) => b.len(),
            FromClient::StdinEof => 0,
        };
        let want = u32::try_from(len.clamp(1, READ_AHEAD)).unwrap_or(u32::MAX);
        let credit = self
            .budget
            .clone()
            .acquire_many_owned(want)
            .await
            .map_err(|_| ())?;
        self.tx
            .send(Inbound {
                msg,
                _credit: credit,
            })
            .await
            .map_err(|_| ())
    }
}

/// Output for the client: one channel frame (channel byte, then payload) exactly as the cluster
/// sent it over WebSocket v5, so a binary WebSocket client gets the very same buffer (no copy)
/// and other protocols re-frame it. Channel 3 carries the final Status; closing the channel
/// after it ends the client connection.
#[derive(Debug)]
pub(crate) struct ToClient(pub bytes::Bytes);

/// The relay's view of a client connection.
pub(crate) struct ClientEnd {
    pub from: tokio::sync::mpsc::Receiver<Inbound>,
    pub to: tokio::sync::mpsc::Sender<ToClient>,
    /// The client connection itself, driven by the pump in the session's own task (not a task
    /// of its own: handing every frame to another task cost a thread wake-up per frame each
    /// way, the largest item of the relay's CPU after TLS). Done once the final Status was
    /// written and the connection closed (a drain waits for it, so kubectl always gets the
    /// reason), or when the client went away.
    pub conn: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for ClientEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEnd").finish_non_exhaustive()
    }
}

/// Picks the client protocol, or says (as the 400 message) why none fits.
fn negotiate(req: &Request<hyper::body::Incoming>) -> Result<ClientProtocol, &'static str> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if upgrade.eq_ignore_ascii_case("websocket") {
        let offered = req
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let protocol = proto::channel::negotiate(offered, &WS_PROTOCOLS)
            .ok_or("kubetape: no supported WebSocket subprotocol offered (v5.channel.k8s.io, v4.channel.k8s.io)")?;
        let key = req
            .headers()
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or("kubetape: WebSocket upgrade without Sec-WebSocket-Key")?;
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        return Ok(ClientProtocol::WebSocket(protocol, accept));
    }
    if upgrade.to_ascii_lowercase().starts_with("spdy/3.1") {
        let offered = req
            .headers()
            .get_all("x-stream-protocol-version")
            .iter()
            .filter_map(|v| v.to_str().ok());
        if offered
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == SPDY_PROTOCOL)
        {
            return Ok(ClientProtocol::Spdy);
        }
        return Err("kubetape: SPDY client offered no supported protocol (v4.channel.k8s.io)");
    }
    Err("Upgrade request required")
}

/// What the authorization of a stream decided about it.
#[derive(Debug)]
pub struct Authorized<'a> {
    /// The JIT grant it was allowed under (none when a binding allowed it).
    pub grant: Option<&'a Grant>,
    pub limit: SessionLimit,
}

/// Handles an authorized exec/attach request: negotiate the client's protocol, dial the
/// cluster (a missing pod or an RBAC denial is answered as a plain HTTP error, before anything
/// is recorded), open the session (fail closed), answer 101 and relay. `grant` goes into the
/// recording's metadata; `limit` (grant expiry, the binding's `max_session`) ends the live
/// session with a Status kubectl prints, like a revocation or a drain does.
pub async fn handle(
    state: &State,
    mut req: Request<hyper::body::Incoming>,
    identity: &Identity,
    target: StreamTarget,
    client_addr: SocketAddr,
    Authorized { grant, limit }: Authorized<'_>,
) -> Dispatched {
    let opts = match proto::query::Query::parse(req.uri().query().unwrap_or_default())
        .and_then(|q| StreamOptions::from_query(&q, target.subresource))
    {
        Ok(o) => o,
        Err(e) => return Dispatched::refused(status::bad_request(format!("kubetape: {e}"))),
    };
    // What the cluster is asked for is exactly what is recorded: the options as parsed,
    // re-encoded, never the client's own spelling of them.
    let query = opts.to_query(target.subresource);
    let client_protocol = match negotiate(&req) {
        Ok(p) => p,
        Err(message) => return Dispatched::refused(status::bad_request(message)),
    };
    let mut meta = session_meta(state, &req, identity, &target, &opts, client_addr);
    meta.grant = grant.map(Grant::to_recorded);
    // The attach that follows an allowed `kubectl debug` is recorded as that debug session.
    if target.subresource == Subresource::Attach
        && let Some(container) = &opts.container
        && let Some(info) =
            state
                .debugs
                .lookup(&target.namespace, &target.pod, container, &identity.user)
    {
        meta.kind = SessionKind::Debug;
        meta.debug = Some(info);
    }
    let session_id = meta.session;

    // Dial the cluster first: a missing pod or an RBAC denial is answered as a plain HTTP error.
    let conn = match dial(state, &req, identity, session_id, &query, &opts).await {
        Ok(c) => c,
        Err(refusal) => return Dispatched::refused(refusal),
    };
    let session = match state
        .sessions
        .open(Opening {
            meta,
            limit,
            extract_commands: true,
            connection: req.extensions().get::<ConnectionPermit>().cloned(),
        })
        .await
    {
        Ok(s) => s,
        Err(e) => return Dispatched::refused(e.response()),
    };
    session
        .span()
        .in_scope(|| tracing::debug!(upstream = conn.protocol, "stream open on the cluster"));

    let on_upgrade = hyper::upgrade::on(&mut req);
    let (response, client) = match client_protocol {
        ClientProtocol::WebSocket(p, accept) => {
            let resp = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "websocket")
                .header(header::SEC_WEBSOCKET_ACCEPT, accept)
                .header(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    HeaderValue::from_static(p.name()),
                )
                .body(status::full(bytes::Bytes::new()))
                .expect("static response parts");
            (resp, client_ws::open(on_upgrade, p))
        }
        ClientProtocol::Spdy => {
            let resp = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "SPDY/3.1")
                .header("X-Stream-Protocol-Version", SPDY_PROTOCOL)
                .body(status::full(bytes::Bytes::new()))
                .expect("static response parts");
            (resp, client_spdy::open(on_upgrade, &opts))
        }
    };
    let id = session.id();
    session.spawn(pump::Pump {
        upstream: conn,
        client,
    });
    Dispatched {
        response,
        session: Some(id),
    }
}

/// Opens the stream on the cluster as the caller (impersonated), with the request's path, the
/// canonical query of the recorded options, and none of the client's credentials: WebSocket
/// v5, else SPDY ([`upstream`]).
async fn dial(
    state: &State,
    req: &Request<hyper::body::Incoming>,
    identity: &Identity,
    session: storage_schema::SessionId,
    query: &proto::query::Query,
    opts: &StreamOptions,
) -> Result<upstream::Upstream, Response<Body>> {
    let mut up_headers = upstream_headers::request_headers(req.headers());
    let who = Impersonation {
        user: identity.user.clone(),
        groups: identity.groups.clone(),
        session: Some(session),
    };
    if let Err(e) = upstream_headers::impersonate(&mut up_headers, &who) {
        return Err(status::bad_request(format!(
            "kubetape: identity cannot be sent upstream: {e}"
        )));
    }
    let path = query.target(req.uri().path());
    upstream::dial(&state.upstream, &path, &up_headers, opts).await
}

fn session_meta(
    state: &State,
    req: &Request<hyper::body::Incoming>,
    identity: &Identity,
    target: &StreamTarget,
    opts: &StreamOptions,
    client_addr: SocketAddr,
) -> SessionMeta {
    let kind = match target.subresource {
        Subresource::Exec => SessionKind::Exec,
        Subresource::Attach => SessionKind::Attach,
        Subresource::PortForward => SessionKind::PortForward,
    };
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut meta = SessionMeta::new(
        kind,
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
            container: opts.container.clone(),
            host: None,
        },
        opts.command.clone(),
        opts.tty,
    );
    meta.client.address = Some(client_addr.to_string());
    meta.client.user_agent = header("user-agent");
    meta.client.kubectl_session = header("kubectl-session");
    meta
}

/// Converts the upstream's final Status into what the recording keeps.
pub(crate) fn exit_of(status: &proto::status::Status) -> ExitInfo {
    match status.outcome() {
        proto::status::ExitOutcome::Code(code) => ExitInfo {
            code: i32::from(code),
            message: status.message.clone(),
        },
        proto::status::ExitOutcome::Failure => ExitInfo {
            code: 1,
            message: status.message.clone(),
        },
    }
}
