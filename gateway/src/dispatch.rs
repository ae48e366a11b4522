//! Every request's path through the gateway, after the connection is served: authenticate →
//! refuse revoked users → the admin API, or authorize → a stream kind (exec/attach,
//! port-forward) or the impersonating proxy → exactly one audit record, allowed or denied (401s
//! included).
//!
//! Each step returns its part of the audit record ([`Outcome`]) as a value with its response, so
//! the record names what was decided even when a step refuses.

use std::net::SocketAddr;
use std::time::Instant;

use http::{Request, Response, header};
use hyper::body::Incoming;

use crate::admin;
use crate::audit::{AuditDecision, Outcome};
use crate::authn::Identity;
use crate::jit::Grant;
use crate::ops::metrics::{ReasonLabel, ResultLabel};
use crate::policy::{self, Decision, Elevation};
use crate::relay::{self, Dispatched};
use crate::revocation::{self, Check};
use crate::session::SessionLimit;
use crate::state::State;
use crate::status::{self, Body};
use crate::upstream::{self, Impersonation};

/// Serves one request and emits its audit record.
pub async fn handle(state: &State, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
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
    let (resp, mut outcome) = decide_and_dispatch(state, req, &request, peer).await;
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
    if record.decision == AuditDecision::Unauthenticated
        && !state
            .unauthenticated
            .admit(peer.ip(), &record, tokio::time::Instant::now())
    {
        // Counted into this client's aggregate record, written when its window ends.
        return resp;
    }
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
) -> (Response<Body>, Outcome) {
    let mut outcome = Outcome::default();
    let token = match upstream::bearer_token(req.headers()) {
        upstream::Credential::Bearer(token) => token,
        upstream::Credential::None => {
            state
                .metrics
                .auth_failures
                .get_or_create(&ReasonLabel {
                    reason: "missing_token",
                })
                .inc();
            let message = "kubetape: no bearer token; use a kubeconfig whose user runs kubetape's credential plugin";
            outcome.reason = Some(message.into());
            return (status::unauthorized(message), outcome);
        }
        upstream::Credential::Ambiguous => {
            state
                .metrics
                .auth_failures
                .get_or_create(&ReasonLabel {
                    reason: "ambiguous_credentials",
                })
                .inc();
            let message = "kubetape: more than one credential (Authorization headers or bearer subprotocols); send exactly one";
            outcome.reason = Some(message.into());
            return (status::bad_request(message), outcome);
        }
    };
    let identity = match state.authn.authenticate(&token).await {
        Ok(id) => id,
        Err(e) => {
            state
                .metrics
                .auth_failures
                .get_or_create(&ReasonLabel { reason: e.reason() })
                .inc();
            let message = format!("kubetape: {e}");
            outcome.reason = Some(message.clone());
            return (status::unauthorized(message), outcome);
        }
    };
    drop(token);
    outcome.identity = Some(identity.clone());
    if state.audit.refusing() {
        let message = "kubetape: the audit log cannot be written; requests are refused until it can (audit.fail_closed)";
        outcome.deny("audit-unavailable", message);
        return (status::unavailable(message), outcome);
    }
    match state.revocations.check(&identity.user) {
        Check::Allowed => {}
        Check::Revoked(message) => {
            outcome.deny("revoked", message.clone());
            return (status::forbidden(message), outcome);
        }
        Check::Stale(message) => {
            outcome.deny("revocation-list-unavailable", message.clone());
            return (status::unavailable(message), outcome);
        }
    }
    let path = req.uri().path().to_string();
    if path == revocation::api::PATH {
        let resp = revocation::api::handle(&state.revocations, req, &identity).await;
        if resp.status() == http::StatusCode::FORBIDDEN {
            outcome.deny("not-admin", "not in an admin group");
        } else {
            outcome.allow("admin group");
        }
        return (resp, outcome);
    }
    if admin::is_admin_path(&path) {
        let resp = admin::handle(state, req, &identity).await;
        if resp.status() == http::StatusCode::FORBIDDEN {
            outcome.deny("admin API", "refused by the admin API");
        } else {
            outcome.allow("admin API (JIT requests)");
        }
        return (resp, outcome);
    }
    // A request the gateway cannot read as the API server would is refused, never guessed at
    // (`policy::Attributes::Invalid`): what is forwarded must be what was decided.
    if let policy::Attributes::Invalid { reason, .. } = attrs {
        let message = format!("kubetape: {reason}");
        outcome.deny("ambiguous request", message.clone());
        return (status::bad_request(message), outcome);
    }
    let (allowed, grant) = match authorize(state, &identity, attrs).await {
        (Decision::Allow(a), grant) => {
            state
                .metrics
                .policy_decisions
                .get_or_create(&ResultLabel { result: "allow" })
                .inc();
            (a, grant)
        }
        (Decision::Deny(message), _) => {
            state
                .metrics
                .policy_decisions
                .get_or_create(&ResultLabel { result: "deny" })
                .inc();
            outcome.deny("no role allows it", message.clone());
            return (status::forbidden(message), outcome);
        }
    };
    outcome.allow(allowed.rule.clone());
    outcome.grant = grant.as_ref().map(|g| g.id.clone());
    let resp = if let Some(target) = proto::exec::parse_path(&path) {
        match target.subresource {
            proto::exec::Subresource::Exec | proto::exec::Subresource::Attach => {
                let limit = SessionLimit::new(allowed.max_session, grant.as_ref(), Some(&identity));
                let Dispatched { response, session } = relay::exec::handle(
                    state,
                    req,
                    &identity,
                    target,
                    peer,
                    relay::exec::Authorized {
                        grant: grant.as_ref(),
                        limit,
                    },
                )
                .await;
                outcome.session = session;
                response
            }
            proto::exec::Subresource::PortForward => {
                let limit = SessionLimit::new(allowed.max_session, grant.as_ref(), Some(&identity));
                let Dispatched { response, session } = relay::portforward::handle(
                    state,
                    req,
                    &identity,
                    target,
                    peer,
                    relay::portforward::Authorized {
                        grant: grant.as_ref(),
                        limit,
                        rule: allowed.rule.clone(),
                        scope: allowed.forward.clone(),
                    },
                )
                .await;
                outcome.session = session;
                response
            }
        }
    } else if req.headers().contains_key(header::UPGRADE) {
        status::bad_request(
            "kubetape: only exec, attach and port-forward may upgrade the connection",
        )
    } else {
        let who = Impersonation {
            user: identity.user.clone(),
            groups: identity.groups.clone(),
            session: None,
        };
        crate::proxy::forward(&state.upstream, req, &who).await
    };
    (resp, outcome)
}
