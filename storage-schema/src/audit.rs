//! The audit record: one per request a gateway answered, allowed or denied.
//!
//! Records travel as JSON text: one line each on the gateway's stdout, and one
//! [`EventKind::Audit`](crate::EventKind::Audit) event each in an *audit stream* — a session of
//! kind [`SessionKind::Audit`](crate::SessionKind::Audit) written by the ordinary recorder, so the
//! audit log is append-only, hash-chained, signed and encrypted exactly like a recording and
//! `kubetape verify` checks it. The type lives here, beside the format, because the gateway writes
//! it and `kubetape audit` reads it, and the two binaries never depend on each other.
//!
//! Compatibility: fields are only ever added (readers ignore what they do not know, and keep it
//! in [`AuditRecord::extra`]); optional fields are omitted when empty.

use std::collections::BTreeMap;

use crate::session::SessionId;

/// What the gateway decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditDecision {
    /// Authorized (the request may still have failed upstream: see the status code).
    Allow,
    /// Authenticated but refused (policy, revocation, audit log unavailable with fail-closed).
    Deny,
    /// No valid token: 401.
    Unauthenticated,
    /// A value written by a newer gateway.
    #[serde(other)]
    Other,
}

impl AuditDecision {
    pub fn name(self) -> &'static str {
        match self {
            AuditDecision::Allow => "allow",
            AuditDecision::Deny => "deny",
            AuditDecision::Unauthenticated => "unauthenticated",
            AuditDecision::Other => "other",
        }
    }
}

/// One request, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    /// When the request arrived, microseconds since the Unix epoch.
    pub time_us: u64,
    /// The gateway instance that answered (its audit stream's `target.host`).
    pub gateway: String,
    /// Who, once authenticated; `None` for a 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The issuer's `carry_claims` (a CI job's repository, run and job ids, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
    /// The client's address (`ip:port`) as the gateway saw it.
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// HTTP method and path (no query: it may carry commands, which the recording keeps).
    pub method: String,
    pub path: String,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `delete`, ...; `connect` for streams).
    pub verb: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub decision: AuditDecision,
    /// The rule that allowed or denied it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why it was denied, as the client was told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// HTTP status answered (101 for an opened stream).
    pub status: u16,
    /// Time to the response head, in milliseconds.
    pub latency_ms: f64,
    /// The recording, for exec/attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// The just-in-time grant the request was allowed under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// Fields written by newer gateways.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_decisions_survive() {
        let text = r#"{"time_us":1,"gateway":"g","client":"1.2.3.4:5","method":"GET","path":"/x",
            "verb":"get","decision":"escalated","status":200,"latency_ms":0.5,"new_field":[1]}"#;
        let r: AuditRecord = serde_json::from_str(text).unwrap();
        assert_eq!(r.decision, AuditDecision::Other);
        assert_eq!(r.extra["new_field"], serde_json::json!([1]));
        assert!(r.user.is_none() && r.groups.is_empty());
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["new_field"], serde_json::json!([1]));
        assert!(back.get("user").is_none(), "empty fields are omitted");
    }

    #[test]
    fn required_fields_are_required() {
        assert!(serde_json::from_str::<AuditRecord>(r#"{"time_us":1}"#).is_err());
    }
}
