//! exec/attach: the gateway terminates the client's stream (WebSocket v5/v4 from kubectl ≥ 1.30,
//! SPDY/3.1 from older kubectl and as every version's fallback), dials the cluster over WebSocket
//! v5, relays both ways message by message, and tees everything into a recording.
//!
//! ```text
//! kubectl ══ws/spdy══ client task ──FromClient──► pump ──ws v5──► API server
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

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Request, Response, StatusCode, header};
use proto::channel::Protocol;
use proto::exec::{StreamOptions, StreamTarget, Subresource};
use storage_schema::store::Recorder;
use storage_schema::{ExitInfo, Identity as RecordedIdentity, SessionKind, SessionMeta, Target};

use crate::authn::Identity;
use crate::jit::Grant;
use crate::server::State;
use crate::status::{self, Body};
use crate::upstream::{self, Impersonation};

/// Protocols offered to WebSocket clients, in the server's order of preference.
const WS_PROTOCOLS: [Protocol; 3] = [Protocol::V5, Protocol::V4, Protocol::V4Base64];
/// The SPDY remote-command protocol we serve (what kubelets speak).
const SPDY_PROTOCOL: &str = "v4.channel.k8s.io";

/// What the client side speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientProtocol {
    WebSocket(Protocol),
    Spdy,
}

/// Bytes and signals from the client.
#[derive(Debug)]
pub(crate) enum FromClient {
    Stdin(Vec<u8>),
    StdinEof,
    Resize(Vec<u8>),
}

/// Output for the client: one channel frame (channel byte, then payload) exactly as the cluster
/// sent it over WebSocket v5, so a binary WebSocket client gets the very same buffer (no copy)
/// and other protocols re-frame it. Channel 3 carries the final Status; closing the channel
/// after it ends the client connection.
#[derive(Debug)]
pub(crate) struct ToClient(pub bytes::Bytes);

/// The relay's view of a client connection.
#[derive(Debug)]
pub(crate) struct ClientEnd {
    pub from: tokio::sync::mpsc::Receiver<FromClient>,
    pub to: tokio::sync::mpsc::Sender<ToClient>,
}

/// When a live session must end whatever the user does, and what they are told then: the
/// binding's `max_session` or the expiry of the grant it was opened under, whichever is first.
#[derive(Debug, Clone, Default)]
pub struct SessionLimit {
    end: Option<(tokio::time::Instant, String)>,
}

/// A future that resolves, with the message for the user, when the session must end.
pub(crate) type Stop = Pin<Box<dyn Future<Output = String> + Send>>;

impl SessionLimit {
    pub fn new(max_session: Option<Duration>, grant: Option<&Grant>) -> SessionLimit {
        let now = tokio::time::Instant::now();
        // Checked: an end past what the clock can represent is no end at all.
        let by_binding = max_session.and_then(|d| now.checked_add(d)).map(|at| {
            (
                at,
                format!(
                    "kubetape: this session reached the maximum session length of {} set by the access policy and was ended",
                    humantime::format_duration(at - now)
                ),
            )
        });
        let by_grant = grant.map(|g| {
            let left = g
                .expires_at()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            (
                now.checked_add(left).unwrap_or(now),
                format!(
                    "kubetape: grant {} (role {} in namespace {}) expired at {} and the session was ended; ask again with `kubetape request {} --namespace {} --reason TEXT --ttl 30m`",
                    g.id,
                    g.role,
                    g.namespace,
                    humantime::format_rfc3339_seconds(g.expires_at()),
                    g.role,
                    g.namespace,
                ),
            )
        });
        let end = match (by_binding, by_grant) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        SessionLimit { end }
    }

    /// Resolves with the message when the limit is reached; never without a limit.
    pub(crate) fn into_stop(self) -> Stop {
        Box::pin(async move {
            match self.end {
                Some((at, message)) => {
                    tokio::time::sleep_until(at).await;
                    message
                }
                None => std::future::pending().await,
            }
        })
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
        return proto::channel::negotiate(offered, &WS_PROTOCOLS)
            .map(ClientProtocol::WebSocket)
            .ok_or("kubetape: no supported WebSocket subprotocol offered (v5.channel.k8s.io, v4.channel.k8s.io)");
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

/// Handles an authorized exec/attach request. `grant` (the JIT grant it was allowed under) goes
/// into the recording's metadata; `limit` ends the live session with a Status failure on the
/// error channel (which kubectl prints) when the grant expires or the binding's `max_session`
/// runs out; the recording is sealed as usual.
pub async fn handle(
    state: &State,
    mut req: Request<hyper::body::Incoming>,
    identity: &Identity,
    target: StreamTarget,
    client_addr: SocketAddr,
    recorded_as: &mut Option<storage_schema::SessionId>,
    Authorized { grant, limit }: Authorized<'_>,
) -> Response<Body> {
    let query = req.uri().query().unwrap_or_default().to_string();
    let opts = match proto::exec::parse_query(&query) {
        Ok(o) => o,
        Err(e) => return status::bad_request(format!("kubetape: {e}")),
    };
    let client_protocol = match negotiate(&req) {
        Ok(p) => p,
        Err(message) => return status::bad_request(message),
    };
    let mut meta = session_meta(state, &req, identity, &target, &opts, client_addr);
    meta.grant = grant.map(Grant::to_recorded);
    let session = meta.session;
    let span = tracing::info_span!("stream", session = %session, user = %identity.user, ns = %target.namespace, pod = %target.pod, grant = grant.map_or("-", |g| g.id.as_str()));

    // Dial the cluster first: a missing pod or an RBAC denial is answered as a plain HTTP error.
    let mut up_headers = req.headers().clone();
    upstream::sanitize(&mut up_headers, false);
    up_headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
    up_headers.remove(header::SEC_WEBSOCKET_KEY);
    up_headers.remove(header::SEC_WEBSOCKET_VERSION);
    up_headers.remove("sec-websocket-extensions");
    up_headers.remove("x-stream-protocol-version");
    let who = Impersonation {
        user: identity.user.clone(),
        groups: identity.groups.clone(),
        session: Some(session),
    };
    if let Err(e) = upstream::impersonate(&mut up_headers, &who) {
        return status::bad_request(format!("kubetape: identity cannot be sent upstream: {e}"));
    }
    let path = format!("{}?{}", req.uri().path(), query);
    let mut up_req = Request::get(path)
        .body(Vec::new())
        .expect("path from a valid URI");
    *up_req.headers_mut() = up_headers;
    let conn = match state.upstream.connect(up_req).await {
        Ok(c) => c,
        Err(kube::Error::Api(s)) => {
            let code = StatusCode::from_u16(s.code).unwrap_or(StatusCode::BAD_GATEWAY);
            return status::respond(code, &s.reason, s.message);
        }
        Err(e) => {
            tracing::warn!(error = %e, "upstream stream dial failed");
            return status::unavailable(format!(
                "kubetape: cannot open the stream on the cluster: {e}"
            ));
        }
    };
    if !conn.supports_stream_close() {
        tracing::info!("upstream speaks v4: stdin EOF cannot be forwarded");
    }

    // Fail closed: no recording, no stream. The commands typed are extracted on the
    // recorder's task and sealed with the session (what `kubetape search` finds).
    let commands: Box<dyn storage_schema::commands::CommandObserver> =
        Box::new(transcript::CommandExtractor::new(&meta));
    // Started on the recording runtime, so its task, uploads and extractor thread run there.
    let (store, keyring, flush) = (state.store.clone(), state.keyring.clone(), state.flush);
    let started = state.recording.spawn(async move {
        Recorder::start_observed(store, &keyring, meta, flush, Some(commands)).await
    });
    let recorder = match started
        .await
        .unwrap_or_else(|e| Err(storage_schema::store::RecordError::Task(e.to_string())))
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "recording could not be opened; refusing the stream");
            return status::unavailable(format!(
                "kubetape: this session cannot be recorded ({e}); refusing to open an unrecorded stream"
            ));
        }
    };

    // Only now is there a recording for the audit record to name.
    *recorded_as = Some(session);

    // Register before the last revocation check: the revocation poller updates its list before
    // ending sessions, so a session is either refused here or ended by the poller.
    let mut live = state.live.register(&identity.user, session);
    if let crate::revocation::Check::Revoked(message) = state.revocations.check(&identity.user) {
        let _ = recorder
            .record(storage_schema::EventKind::Marker {
                text: "access revoked before the stream opened".into(),
            })
            .await;
        let _ = recorder
            .finish(Some(ExitInfo {
                code: 1,
                message: message.clone(),
            }))
            .await;
        return status::forbidden(message);
    }

    let on_upgrade = hyper::upgrade::on(&mut req);
    let (response, client) = match client_protocol {
        ClientProtocol::WebSocket(p) => {
            let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
                return status::bad_request(
                    "kubetape: WebSocket upgrade without Sec-WebSocket-Key",
                );
            };
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
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
            (resp, client_ws::spawn(on_upgrade, p))
        }
        ClientProtocol::Spdy => {
            let resp = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "SPDY/3.1")
                .header("X-Stream-Protocol-Version", SPDY_PROTOCOL)
                .body(status::full(bytes::Bytes::new()))
                .expect("static response parts");
            (resp, client_spdy::spawn(on_upgrade, &opts))
        }
    };
    let stream = conn.into_stream();
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let exit = pump::run(stream, client, &recorder, &mut live, limit.into_stop()).await;
            drop(live);
            tracing::info!(code = exit.code, message = %exit.message, "stream ended");
            let _ = recorder
                .record(storage_schema::EventKind::Exit {
                    code: exit.code,
                    message: exit.message.clone(),
                })
                .await;
            if let Err(e) = recorder.finish(Some(exit)).await {
                tracing::error!(error = %e, "recording could not be sealed");
            }
        },
        span.clone(),
    ));
    response
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grant_in(d: Duration) -> Grant {
        Grant {
            id: "g1".into(),
            role: "prod-debug".into(),
            namespace: "prod".into(),
            reason: "r".into(),
            approver: "sam".into(),
            granted_at_us: crate::jit::now_us(),
            expires_at_us: crate::jit::now_us() + u64::try_from(d.as_micros()).unwrap(),
        }
    }

    async fn ends_within(limit: SessionLimit, within: Duration) -> Option<String> {
        tokio::time::timeout(within, limit.into_stop()).await.ok()
    }

    #[tokio::test]
    async fn the_earlier_of_grant_expiry_and_max_session_ends_the_session() {
        let hour = Duration::from_secs(3600);
        let soon = Duration::from_millis(50);
        let by_grant = SessionLimit::new(Some(hour), Some(&grant_in(soon)));
        let message = ends_within(by_grant, Duration::from_secs(5)).await.unwrap();
        assert!(
            message.contains("grant g1 (role prod-debug in namespace prod) expired"),
            "{message}"
        );
        let by_binding = SessionLimit::new(Some(soon), Some(&grant_in(hour)));
        let message = ends_within(by_binding, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            message.contains("maximum session length of 50ms"),
            "{message}"
        );
        // An already expired grant ends the session at once.
        let expired = SessionLimit::new(None, Some(&grant_in(Duration::ZERO)));
        assert!(ends_within(expired, Duration::from_secs(5)).await.is_some());
        // No limit, no end; an absurd max_session is no limit either (and no overflow).
        let unlimited = SessionLimit::new(None, None);
        assert!(
            ends_within(unlimited, Duration::from_millis(100))
                .await
                .is_none()
        );
        let absurd = SessionLimit::new(Some(Duration::MAX), None);
        assert!(
            ends_within(absurd, Duration::from_millis(100))
                .await
                .is_none()
        );
    }
}
