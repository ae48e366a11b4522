//! The HTTPS front door: TLS, HTTP/1.1 (with upgrades) and HTTP/2, then for every request
//! authenticate → refuse revoked users → authorize → relay a stream or proxy the call → one audit
//! record (allowed or denied, 401s included).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use storage_schema::store::Store;
use storage_schema::{FlushPolicy, Keyring};
use tokio::net::TcpListener;

use crate::audit::{AuditDecision, AuditLog, Outcome};
use crate::authn::{Authenticator, Identity};
use crate::jit::{Grant, Jit};
use crate::live::LiveSessions;
use crate::policy::{self, Decision, Elevation, PolicyWatch};
use crate::revocation::{self, Check, Revocations};
use crate::status::{self, Body};
use crate::upstream::{self, Impersonation};
use crate::{admin, proxy, relay};

/// Everything a request handler needs; shared by all connections.
pub struct State {
    pub authn: Authenticator,
    /// The policy in force (reloaded from its file in the background).
    pub policy: Arc<PolicyWatch>,
    /// Just-in-time requests and grants, in the store (refreshed in the background).
    pub jit: Arc<Jit>,
    pub upstream: kube::Client,
    pub store: Store,
    pub keyring: Arc<Keyring>,
    pub flush: FlushPolicy,
    /// Where recorders run: below the relay's priority (see [`crate::background`]).
    pub recording: crate::background::Background,
    pub cluster: String,
    pub audit: Arc<AuditLog>,
    pub revocations: Arc<Revocations>,
    /// Live exec/attach sessions, which revocations end.
    pub live: LiveSessions,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("cluster", &self.cluster)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Serves until `shutdown` resolves. Connections in flight keep running on their own tasks.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req, peer).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

async fn handle(state: &State, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let time_us = storage_schema::time::unix_micros_now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Parsed once: the policy decides on these, and the audit record names them.
    let request = policy::parse_attributes(method.as_str(), &path, req.uri().query());
    let mut outcome = Outcome::default();
    let resp = decide_and_dispatch(state, req, &request, peer, &mut outcome).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let attrs = crate::audit::RequestAttrs::of(&request, method.as_str());
    let identity = outcome.identity.take();
    let record = storage_schema::AuditRecord {
        time_us,
        gateway: state.audit.instance().to_string(),
        user: identity.as_ref().map(|i| i.user.clone()),
        groups: identity
            .as_ref()
            .map(|i| i.groups.clone())
            .unwrap_or_default(),
        issuer: identity.as_ref().map(|i| i.issuer.clone()),
        claims: identity.map(|i| i.claims).unwrap_or_default(),
        client: peer.to_string(),
        user_agent,
        method: method.to_string(),
        path,
        verb: attrs.verb,
        api_group: attrs.api_group,
        resource: attrs.resource,
        subresource: attrs.subresource,
        namespace: attrs.namespace,
        name: attrs.name,
        decision: outcome.decision,
        rule: outcome.rule,
        reason: outcome.reason,
        status: resp.status().as_u16(),
        latency_ms,
        session: outcome.session,
        grant: outcome.grant,
        extra: Default::default(),
    };
    state.audit.emit(&record).await;
    resp
}

/// The policy's decision for `identity`, with its live grants. A would-be denial re-reads the
/// grants from the store first, so an approval made a moment ago on any replica counts.
async fn authorize(
    state: &State,
    identity: &Identity,
    attrs: &policy::Attributes,
) -> (Decision, Option<Grant>) {
    let mut forced = false;
    loop {
        if forced && let Err(e) = state.jit.refresh(true).await {
            tracing::warn!(error = %e, "access grants could not be refreshed; using the cached ones");
        }
        let mut grants = state.jit.grants_for(identity);
        // A revocation cancels the grants approved before it, for good.
        if let Some(revoked_at) = state.revocations.last_revoked_at_us(&identity.user) {
            grants.retain(|g| g.granted_at_us > revoked_at);
        }
        let elevations: Vec<Elevation<'_>> = grants
            .iter()
            .map(|g| Elevation {
                id: &g.id,
                role: &g.role,
                namespace: &g.namespace,
            })
            .collect();
        let decision = state.policy.current().decide(identity, attrs, &elevations);
        match &decision {
            Decision::Deny(_) if !forced => forced = true,
            Decision::Allow(a) => {
                let grant = a
                    .grant
                    .as_ref()
                    .and_then(|id| grants.iter().find(|g| &g.id == id).cloned());
                return (decision, grant);
            }
            Decision::Deny(_) => return (decision, None),
        }
    }
}

async fn decide_and_dispatch(
    state: &State,
    req: Request<Incoming>,
    attrs: &policy::Attributes,
    peer: SocketAddr,
    outcome: &mut Outcome,
) -> Response<Body> {
    let Some(token) = upstream::bearer_token(req.headers()) else {
        let message = "kubetape: no bearer token; use a kubeconfig whose user runs kubetape's credential plugin";
        outcome.reason = Some(message.into());
        return status::unauthorized(message);
    };
    let identity = match state.authn.authenticate(&token).await {
        Ok(id) => id,
        Err(e) => {
            let message = format!("kubetape: {e}");
            outcome.reason = Some(message.clone());
            return status::unauthorized(message);
        }
    };
    drop(token);
    outcome.identity = Some(identity.clone());
    if state.audit.refusing() {
        let message = "kubetape: the audit log cannot be written; requests are refused until it can (audit.fail_closed)";
        outcome.deny("audit-unavailable", message);
        return status::unavailable(message);
    }
    match state.revocations.check(&identity.user) {
        Check::Allowed => {}
        Check::Revoked(message) => {
            outcome.deny("revoked", message.clone());
            return status::forbidden(message);
        }
        Check::Stale(message) => {
            outcome.deny("revocation-list-unavailable", message.clone());
            return status::unavailable(message);
        }
    }
    let path = req.uri().path().to_string();
    if path == revocation::api::PATH {
        let resp = revocation::api::handle(&state.revocations, req, &identity).await;
        if resp.status() == http::StatusCode::FORBIDDEN {
            outcome.deny("not-admin", "not in an admin group");
        } else {
            outcome.decision = AuditDecision::Allow;
            outcome.rule = Some("admin group".into());
        }
        return resp;
    }
    if admin::is_admin_path(&path) {
        let resp = admin::handle(state, req, &identity).await;
        if resp.status() == http::StatusCode::FORBIDDEN {
            outcome.deny("admin API", "refused by the admin API");
        } else {
            outcome.decision = AuditDecision::Allow;
            outcome.rule = Some("admin API (JIT requests)".into());
        }
        return resp;
    }
    let (allowed, grant) = match authorize(state, &identity, attrs).await {
        (Decision::Allow(a), grant) => (a, grant),
        (Decision::Deny(message), _) => {
            outcome.deny("no role allows it", message.clone());
            return status::forbidden(message);
        }
    };
    outcome.decision = AuditDecision::Allow;
    outcome.rule = Some(allowed.rule.clone());
    outcome.grant = grant.as_ref().map(|g| g.id.clone());
    if let Some(target) = proto::exec::parse_path(&path) {
        match target.subresource {
            proto::exec::Subresource::Exec | proto::exec::Subresource::Attach => {
                let limit = relay::SessionLimit::new(allowed.max_session, grant.as_ref());
                relay::handle(
                    state,
                    req,
                    &identity,
                    target,
                    peer,
                    &mut outcome.session,
                    relay::Authorized {
                        grant: grant.as_ref(),
                        limit,
                    },
                )
                .await
            }
            proto::exec::Subresource::PortForward => status::forbidden(
                "kubetape: port-forward is not available through this gateway yet (it cannot be recorded)",
            ),
        }
    } else if req.headers().contains_key(header::UPGRADE) {
        status::bad_request("kubetape: only exec and attach may upgrade the connection")
    } else {
        let who = Impersonation {
            user: identity.user.clone(),
            groups: identity.groups.clone(),
            session: None,
        };
        proxy::forward(&state.upstream, req, &who).await
    }
}
