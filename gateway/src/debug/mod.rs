//! `kubectl debug` through the gateway: the requests that make the cluster run something new —
//! an ephemeral container (PATCH/PUT `pods/{name}/ephemeralcontainers`) or a pod (POST `pods`,
//! for `--copy-to` and `debug node/NAME`) — are authorized twice: by the rules, as
//! `patch pods/ephemeralcontainers` and `create pods` like any request, and then by what they
//! would run, read from their bodies, against the debug limits of the roles whose rules
//! allowed them. The body forwarded is the body inspected.
//!
//! ```text
//! dispatch: rules allow it ─► debug::handle: read body (bounded) ─► spec::parse (fail closed)
//!                                  ─► limits of the allowing roles (any one may allow)
//!                                  ─► refuse 403 "…field… breaks role … debug.images"  or
//!                                  ─► remember it (link) ─► forward as read ─► attach recorded
//!                                                                            as kind `debug`
//! ```
//!
//! # Layout
//! - `spec`: a body → the containers and host access it asks for ([`spec::parse`]);
//! - `crate::policy::debug`: `[roles.debug]` ([`DebugLimits`]) and the check (policy data);
//! - `link`: allowed requests awaiting their attach ([`Pending`]).

pub mod link;
pub mod spec;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Limited};
use storage_schema::DebugInfo;

pub use self::link::Pending;
pub use self::spec::{Form, Spec, SpecError};
use crate::authn::Identity;
use crate::jit::Grant;
use crate::policy::debug::{self as limits, Verdict};
pub use crate::policy::debug::{DebugLimits, Refusal};
use crate::policy::{Allowed, Attributes, Policy};
use crate::state::State;
use crate::status::{self, Body};
use crate::upstream::Impersonation;

/// Which debug request `attrs` is, if any.
pub fn form_of(attrs: &Attributes) -> Option<Form> {
    let Attributes::Resource(r) = attrs else {
        return None;
    };
    if !r.api_group.is_empty() || r.resource != "pods" {
        return None;
    }
    match (r.subresource.as_str(), r.verb.as_str()) {
        ("ephemeralcontainers", "patch" | "update") => Some(Form::Ephemeral),
        ("", "create") => Some(Form::Pod),
        _ => None,
    }
}

/// The outcome of the inspection, before anything is forwarded.
#[derive(Debug)]
pub enum Decision {
    /// Allowed by `role`'s limits.
    Allow { role: String, verdict: Verdict },
    /// The message for the 403.
    Deny(String),
}

/// Decides a debug request's `spec` for the roles whose rules allowed it (`roles`): the first
/// role whose limits allow it wins; otherwise the refusal names the field and each role's rule.
pub fn decide(policy: &Policy, roles: &[String], form: Form, spec: &Spec, user: &str) -> Decision {
    let mut refusals = Vec::new();
    let mut without = Vec::new();
    for name in roles {
        let Some(role) = policy.role(name) else {
            continue;
        };
        match &role.debug {
            None => without.push(name.as_str()),
            Some(limits) => match limits.check(name, form, spec) {
                Ok(verdict) => {
                    return Decision::Allow {
                        role: name.clone(),
                        verdict,
                    };
                }
                Err(r) => refusals.push(r),
            },
        }
    }
    let what = match form {
        Form::Ephemeral => "a debug container",
        Form::Pod => "this pod",
    };
    let mut message = format!("kubetape: user {user:?} may not run {what}: ");
    let mut parts: Vec<String> = refusals
        .iter()
        .map(|r| format!("{}: {} (rule {})", r.field, r.message, r.rule))
        .collect();
    if !without.is_empty() && form == Form::Pod {
        parts.push(format!(
            "pods are created only within a role's [roles.debug] limits (images, privileges, host access), and role{} {} ha{} none",
            if without.len() > 1 { "s" } else { "" },
            without
                .iter()
                .map(|r| format!("{r:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            if without.len() > 1 { "ve" } else { "s" },
        ));
    } else if !without.is_empty() {
        parts.push(format!(
            "role{} {} allow{} no debugging (no [roles.debug] table: debug = false)",
            if without.len() > 1 { "s" } else { "" },
            without
                .iter()
                .map(|r| format!("{r:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            if without.len() > 1 { "" } else { "s" },
        ));
    }
    message.push_str(&parts.join("; "));
    Decision::Deny(message)
}

/// What [`handle`] answered, for the audit record.
#[derive(Debug)]
pub struct Handled {
    pub response: Response<Body>,
    /// The refusal, when the spec was refused (never forwarded).
    pub refused: Option<String>,
    /// The allowing role's debug rule, when allowed.
    pub rule: Option<String>,
}

/// Reads, inspects and (if allowed) forwards a debug request the rules allowed (`allowed`: the
/// rule, and every role whose rules allow it). A refused request never reaches the cluster.
pub async fn handle(
    state: &State,
    req: Request<hyper::body::Incoming>,
    identity: &Identity,
    (attrs, form): (&Attributes, Form),
    allowed: &Allowed,
    grant: Option<&Grant>,
) -> Handled {
    let (allowed_rule, roles) = (allowed.rule.as_str(), allowed.roles.as_slice());
    let (parts, body) = req.into_parts();
    let body: Bytes = match Limited::new(body, spec::MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let message = format!(
                "kubetape: a debug request's body must be readable and at most {} bytes: {e}",
                spec::MAX_BODY
            );
            return Handled {
                response: status::forbidden(message.clone()),
                refused: Some(message),
                rule: None,
            };
        }
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let spec = match spec::parse(form, content_type, &body) {
        Ok(s) => s,
        Err(e) => {
            let message =
                format!("kubetape: the debug request cannot be inspected, so it is refused: {e}");
            return Handled {
                response: status::forbidden(message.clone()),
                refused: Some(message),
                rule: None,
            };
        }
    };
    let policy = state.policy.current();
    let (role, verdict) = match decide(&policy, roles, form, &spec, &identity.user) {
        Decision::Allow { role, verdict } => (role, verdict),
        Decision::Deny(message) => {
            return Handled {
                response: status::forbidden(message.clone()),
                refused: Some(message),
                rule: None,
            };
        }
    };
    drop(policy);
    remember(state, identity, attrs, &spec, &verdict, allowed_rule, grant);
    let who = Impersonation {
        user: identity.user.clone(),
        groups: identity.groups.clone(),
        session: None,
    };
    let response = crate::proxy::forward_read(&state.upstream, parts, body, &who).await;
    Handled {
        response,
        refused: None,
        rule: Some(format!(
            "role {role:?} debug ({} {})",
            verdict.form, verdict.profile
        )),
    }
}

/// Keeps each container the request runs for the attach that will follow.
fn remember(
    state: &State,
    identity: &Identity,
    attrs: &Attributes,
    spec: &Spec,
    verdict: &Verdict,
    rule: &str,
    grant: Option<&Grant>,
) {
    let Attributes::Resource(r) = attrs else {
        return;
    };
    let pod_name = match &spec.pod {
        Some(p) => p.name.clone().unwrap_or_default(),
        None => r.name.clone(),
    };
    if pod_name.is_empty() {
        // `generateName` only: the name is the cluster's to choose; no link.
        return;
    }
    let node = spec.pod.as_ref().and_then(|p| p.node_name.clone());
    for c in &spec.containers {
        let Some(name) = &c.name else { continue };
        let info = DebugInfo {
            form: verdict.form.to_string(),
            image: c.image.clone().unwrap_or_default(),
            profile: limits::profile_of(c).to_string(),
            target: c.target.clone(),
            node: node.clone(),
            copied_from: None,
            rule: rule.to_string(),
            reason: grant.map(|g| g.reason.clone()),
            requested_at_us: storage_schema::time::unix_micros_now(),
        };
        state
            .debugs
            .insert(&r.namespace, &pod_name, name, &identity.user, info);
    }
}

#[cfg(test)]
mod tests;
