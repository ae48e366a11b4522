//! Access requests: create, list, approve, deny. The rules that make just-in-time access safe
//! live here:
//! only requestable roles, only in namespaces the role covers, never longer than the role's
//! `max_ttl`, decided only by members of the role's approver groups, and never by the requester.

use std::time::Duration;

use http::{Response, StatusCode};
use proto::admin::{
    AccessRequestList, AccessRequestState, AccessRequestView, Decision, DecisionBody,
    NewAccessRequest,
};
use storage_schema::time::format_unix_micros;

use super::json;
use crate::authn::Identity;
use crate::jit::{self, AccessRequest, Entry, JitError, Verdict};
use crate::state::State;
use crate::status::{self, Body};

const MAX_REASON: usize = 1024;

pub(super) async fn create(state: &State, who: &Identity, body: &[u8]) -> Response<Body> {
    let new: NewAccessRequest = match serde_json::from_slice(body) {
        Ok(n) => n,
        Err(e) => {
            return status::bad_request(format!(
                "kubetape: an access request is {{\"role\", \"namespace\", \"reason\", \"ttl\"}}: {e}"
            ));
        }
    };
    let policy = state.policy.current();
    let Some(role) = policy.role(&new.role).filter(|r| r.requestable) else {
        let requestable: Vec<&str> = policy
            .roles
            .iter()
            .filter(|r| r.requestable && r.may_request(who))
            .map(|r| r.name.as_str())
            .collect();
        return status::respond(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "kubetape: there is no requestable role {:?}; roles you may request: {}",
                new.role,
                if requestable.is_empty() {
                    "none".to_string()
                } else {
                    requestable.join(", ")
                }
            ),
        );
    };
    if !role.may_request(who) {
        return status::forbidden(format!(
            "kubetape: user {:?} may not request role {:?}: only members of {} may",
            who.user,
            role.name,
            role.requesters.join(", ")
        ));
    }
    if !valid_namespace(&new.namespace) {
        return status::bad_request(format!(
            "kubetape: {:?} is not a namespace name",
            new.namespace
        ));
    }
    if !role.covers_namespace(&new.namespace) {
        return status::forbidden(format!(
            "kubetape: role {:?} does not apply in namespace {:?}",
            role.name, new.namespace
        ));
    }
    let reason = new.reason.trim();
    if reason.is_empty() || reason.len() > MAX_REASON || reason.chars().any(char::is_control) {
        return status::bad_request(format!(
            "kubetape: a reason is required: one line of at most {MAX_REASON} bytes (say why, e.g. the incident)"
        ));
    }
    let ttl = match humantime::parse_duration(&new.ttl) {
        Ok(t) if t >= Duration::from_secs(1) && t <= role.max_ttl => t,
        Ok(_) => {
            return status::bad_request(format!(
                "kubetape: ttl {} is outside 1s..{} (role {:?}'s max_ttl)",
                new.ttl,
                humantime::format_duration(role.max_ttl),
                role.name
            ));
        }
        Err(e) => {
            return status::bad_request(format!("kubetape: ttl {:?}: {e}", new.ttl));
        }
    };
    let request = AccessRequest {
        id: uuid::Uuid::now_v7().to_string(),
        user: who.user.clone(),
        issuer: who.issuer.clone(),
        groups: who.groups.clone(),
        claims: who.claims.clone(),
        role: role.name.clone(),
        namespace: new.namespace,
        reason: reason.to_string(),
        ttl_secs: ttl.as_secs(),
        created_at_us: jit::now_us(),
    };
    if let Err(e) = state.jit.create(&request).await {
        tracing::error!(error = %e, "access request could not be stored");
        return status::unavailable(format!("kubetape: the request could not be stored: {e}"));
    }
    tracing::info!(id = %request.id, user = %request.user, role = %request.role, namespace = %request.namespace, ttl_secs = request.ttl_secs, "access request created");
    let entry = Entry {
        request,
        verdict: None,
    };
    json(StatusCode::CREATED, &view(state, who, &entry))
}

pub(super) async fn list(state: &State, who: &Identity) -> Response<Body> {
    if let Err(e) = state.jit.refresh(true).await {
        return status::unavailable(format!("kubetape: cannot read access requests: {e}"));
    }
    let requests = state
        .jit
        .entries()
        .iter()
        .map(|e| view(state, who, e))
        .filter(|v| v.mine || v.can_decide)
        .collect();
    json(StatusCode::OK, &AccessRequestList { requests })
}

pub(super) async fn decide(
    state: &State,
    who: &Identity,
    id: &str,
    decision: Decision,
    body: &[u8],
) -> Response<Body> {
    let not_found = || {
        status::respond(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("kubetape: no access request {id:?}"),
        )
    };
    let body: DecisionBody = if body.iter().all(u8::is_ascii_whitespace) {
        DecisionBody::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(d) => d,
            Err(e) => return status::bad_request(format!("kubetape: {{\"reason\"}}: {e}")),
        }
    };
    if body.reason.len() > MAX_REASON || body.reason.chars().any(char::is_control) {
        return status::bad_request(format!(
            "kubetape: the reason must be one line of at most {MAX_REASON} bytes"
        ));
    }
    if !jit::valid_id(id) {
        return not_found();
    }
    let entry = match state.jit.get(id).await {
        Ok(Some(e)) => e,
        Ok(None) => return not_found(),
        Err(e) => return status::unavailable(format!("kubetape: cannot read the request: {e}")),
    };
    let verb = decision.as_str();
    let approve = decision == Decision::Approve;
    // Separation of duties: whatever groups the requester is in.
    if entry.request.user == who.user {
        return status::forbidden(format!(
            "kubetape: separation of duties: {:?} may not {verb} their own request {id}; someone else in the approver groups must",
            who.user
        ));
    }
    let policy = state.policy.current();
    let Some(role) = policy.role(&entry.request.role).filter(|r| r.requestable) else {
        return status::respond(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "kubetape: role {:?} is no longer requestable; the request cannot be decided",
                entry.request.role
            ),
        );
    };
    if !role.may_approve(who) {
        return status::forbidden(format!(
            "kubetape: user {:?} (groups: {}) may not {verb} requests for role {:?}: approvers are members of {}",
            who.user,
            who.groups.join(", "),
            role.name,
            role.approvers.join(", ")
        ));
    }
    if let Some(v) = &entry.verdict {
        return already_decided(id, v);
    }
    if entry.state(jit::now_us()) == jit::State::Abandoned {
        return status::respond(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "kubetape: request {id} waited more than {} for a decision and can no longer be decided; the requester may ask again",
                humantime::format_duration(jit::PENDING_LIFETIME)
            ),
        );
    }
    let verdict = Verdict {
        approved: approve,
        by: who.user.clone(),
        reason: body.reason,
        at_us: jit::now_us(),
    };
    match state.jit.decide(id, &verdict).await {
        Ok(()) => {}
        Err(JitError::AlreadyDecided(_)) => {
            // Someone else, perhaps on another replica, was faster: say who.
            return match state.jit.get(id).await {
                Ok(Some(Entry {
                    verdict: Some(v), ..
                })) => already_decided(id, &v),
                _ => status::respond(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!("kubetape: request {id} was already decided"),
                ),
            };
        }
        Err(e) => {
            tracing::error!(error = %e, "access decision could not be stored");
            return status::unavailable(format!("kubetape: the decision could not be stored: {e}"));
        }
    }
    tracing::info!(%id, by = %who.user, approved = approve, requester = %entry.request.user, role = %entry.request.role, namespace = %entry.request.namespace, "access request decided");
    let entry = Entry {
        verdict: Some(verdict),
        ..entry
    };
    json(StatusCode::OK, &view(state, who, &entry))
}

fn already_decided(id: &str, v: &Verdict) -> Response<Body> {
    status::respond(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "kubetape: request {id} was already {} by {:?}",
            if v.approved { "approved" } else { "denied" },
            v.by
        ),
    )
}

fn view(state: &State, who: &Identity, entry: &Entry) -> AccessRequestView {
    let r = &entry.request;
    let grant = entry.grant();
    let state_name = entry.state(jit::now_us());
    let mine = r.user == who.user && r.issuer == who.issuer;
    let can_decide = state_name == jit::State::Pending
        && r.user != who.user
        && state
            .policy
            .current()
            .role(&r.role)
            .is_some_and(|role| role.requestable && role.may_approve(who));
    AccessRequestView {
        id: r.id.clone(),
        user: r.user.clone(),
        role: r.role.clone(),
        namespace: r.namespace.clone(),
        reason: r.reason.clone(),
        ttl: humantime::format_duration(Duration::from_secs(r.ttl_secs)).to_string(),
        requested_at: format_unix_micros(r.created_at_us),
        state: wire_state(state_name),
        decided_by: entry.verdict.as_ref().map(|v| v.by.clone()),
        decision_reason: entry
            .verdict
            .as_ref()
            .map(|v| v.reason.clone())
            .unwrap_or_default(),
        expires_at: grant.map(|g| format_unix_micros(g.expires_at_us)),
        mine,
        can_decide,
    }
}

/// The API's name for a request's state (a new state in `jit` must be given one here).
fn wire_state(state: jit::State) -> AccessRequestState {
    match state {
        jit::State::Pending => AccessRequestState::Pending,
        jit::State::Approved => AccessRequestState::Approved,
        jit::State::Denied => AccessRequestState::Denied,
        jit::State::Expired => AccessRequestState::Expired,
        jit::State::Abandoned => AccessRequestState::Abandoned,
    }
}

/// A Kubernetes namespace name (an RFC 1123 label).
fn valid_namespace(ns: &str) -> bool {
    !ns.is_empty()
        && ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-')
}
