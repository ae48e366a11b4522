//! kubetape's own admin API on the gateway's listener: the wire types of just-in-time access
//! requests (`/kubetape/v1/requests`), written by the gateway and read by `kubetape request`,
//! `requests`, `approve` and `deny`.
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | POST | [`REQUESTS_PATH`] | [`NewAccessRequest`] → 201 [`AccessRequestView`] |
//! | GET | [`REQUESTS_PATH`] | — → 200 [`AccessRequestList`] (the caller's, and those the caller may decide) |
//! | POST | [`decision_path`]`(id, Approve)` | [`DecisionBody`] (may be empty) → 200 [`AccessRequestView`] |
//! | POST | [`decision_path`]`(id, Deny)` | [`DecisionBody`] (may be empty) → 200 [`AccessRequestView`] |
//!
//! Refusals are Kubernetes `Status` objects ([`crate::status`]), like every other refusal of the
//! gateway, so clients print one kind of message.
//!
//! Compatibility: what a client sends is strict (the gateway refuses unknown fields, so a typo
//! is an error rather than an ignored setting); what the gateway answers is lenient (clients
//! ignore fields they do not know and read a state they do not know as
//! [`AccessRequestState::Unknown`]), so a newer gateway can add to its answers without breaking
//! older CLIs. JSON field names are part of the contract; the tests pin them.

use serde::{Deserialize, Serialize};

/// The collection of access requests.
pub const REQUESTS_PATH: &str = "/kubetape/v1/requests";

/// What an approver decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

impl Decision {
    /// The last path segment: `approve` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        }
    }

    /// The decision a path segment names.
    pub fn from_segment(segment: &str) -> Option<Decision> {
        match segment {
            "approve" => Some(Decision::Approve),
            "deny" => Some(Decision::Deny),
            _ => None,
        }
    }
}

/// `POST /kubetape/v1/requests/{id}/{approve|deny}`.
pub fn decision_path(id: &str, decision: Decision) -> String {
    format!("{REQUESTS_PATH}/{id}/{}", decision.as_str())
}

/// Body of `POST /kubetape/v1/requests`: ask for a requestable role in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccessRequest {
    pub role: String,
    pub namespace: String,
    /// Why: kept with the grant and every session opened under it.
    pub reason: String,
    /// How long the grant lasts once approved, as a duration (`30m`, `2h`).
    pub ttl: String,
}

/// Body of `POST …/approve|deny`; an empty body means no reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[serde(default)]
    pub reason: String,
}

/// Where an access request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessRequestState {
    /// Waiting for an approver.
    Pending,
    /// Approved and not yet expired: a live grant.
    Approved,
    /// Approved, and past its TTL.
    Expired,
    Denied,
    /// Never decided in time; it can no longer be.
    Abandoned,
    /// A state this client does not know (from a newer gateway). Never sent.
    #[serde(other)]
    Unknown,
}

impl AccessRequestState {
    /// The wire name (`pending`, `approved`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AccessRequestState::Pending => "pending",
            AccessRequestState::Approved => "approved",
            AccessRequestState::Expired => "expired",
            AccessRequestState::Denied => "denied",
            AccessRequestState::Abandoned => "abandoned",
            AccessRequestState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for AccessRequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An access request as the admin API shows it to one caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequestView {
    pub id: String,
    /// Who asked.
    pub user: String,
    pub role: String,
    pub namespace: String,
    pub reason: String,
    /// The grant's length once approved, as a duration (`30m`).
    pub ttl: String,
    /// When it was asked, RFC 3339 (UTC, seconds).
    #[serde(default)]
    pub requested_at: String,
    pub state: AccessRequestState,
    /// The approver or denier, once decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The decider's note.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub decision_reason: String,
    /// When the grant ends (RFC 3339), once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The caller made it.
    #[serde(default)]
    pub mine: bool,
    /// The caller may approve or deny it now.
    #[serde(default)]
    pub can_decide: bool,
}

/// Answer of `GET /kubetape/v1/requests`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequestList {
    pub requests: Vec<AccessRequestView>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn approved() -> AccessRequestView {
        AccessRequestView {
            id: "0190c1c4-0000-7000-8000-000000000001".into(),
            user: "dev@example.com".into(),
            role: "prod-debug".into(),
            namespace: "prod".into(),
            reason: "INC-42: db is slow".into(),
            ttl: "5m".into(),
            requested_at: "2026-11-23T09:00:00Z".into(),
            state: AccessRequestState::Approved,
            decided_by: Some("sre@example.com".into()),
            decision_reason: "go".into(),
            expires_at: Some("2026-11-23T09:05:00Z".into()),
            mine: false,
            can_decide: false,
        }
    }

    fn pending() -> AccessRequestView {
        AccessRequestView {
            state: AccessRequestState::Pending,
            decided_by: None,
            decision_reason: String::new(),
            expires_at: None,
            mine: true,
            ..approved()
        }
    }

    #[test]
    fn round_trips() {
        let list = AccessRequestList {
            requests: vec![approved(), pending()],
        };
        let text = serde_json::to_string(&list).unwrap();
        assert_eq!(
            serde_json::from_str::<AccessRequestList>(&text).unwrap(),
            list
        );
        let new = NewAccessRequest {
            role: "prod-debug".into(),
            namespace: "prod".into(),
            reason: "why".into(),
            ttl: "30m".into(),
        };
        let text = serde_json::to_string(&new).unwrap();
        assert_eq!(
            serde_json::from_str::<NewAccessRequest>(&text).unwrap(),
            new
        );
        let body = DecisionBody {
            reason: "ok".into(),
        };
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(serde_json::from_str::<DecisionBody>(&text).unwrap(), body);
    }

    /// The JSON field names are the contract between gateways and CLIs of different versions.
    #[test]
    fn field_names_are_pinned() {
        assert_eq!(
            serde_json::to_value(approved()).unwrap(),
            json!({
                "id": "0190c1c4-0000-7000-8000-000000000001",
                "user": "dev@example.com",
                "role": "prod-debug",
                "namespace": "prod",
                "reason": "INC-42: db is slow",
                "ttl": "5m",
                "requested_at": "2026-11-23T09:00:00Z",
                "state": "approved",
                "decided_by": "sre@example.com",
                "decision_reason": "go",
                "expires_at": "2026-11-23T09:05:00Z",
                "mine": false,
                "can_decide": false,
            })
        );
        // Undecided: the decision's fields are left out, not null.
        let pending = serde_json::to_value(pending()).unwrap();
        for absent in ["decided_by", "decision_reason", "expires_at"] {
            assert!(pending.get(absent).is_none(), "{absent} in {pending}");
        }
        assert_eq!(pending["state"], "pending");
        assert_eq!(
            serde_json::to_value(NewAccessRequest {
                role: "r".into(),
                namespace: "n".into(),
                reason: "w".into(),
                ttl: "1h".into(),
            })
            .unwrap(),
            json!({"role": "r", "namespace": "n", "reason": "w", "ttl": "1h"})
        );
        assert_eq!(
            serde_json::to_value(DecisionBody::default()).unwrap(),
            json!({"reason": ""})
        );
        for (state, name) in [
            (AccessRequestState::Pending, "pending"),
            (AccessRequestState::Approved, "approved"),
            (AccessRequestState::Expired, "expired"),
            (AccessRequestState::Denied, "denied"),
            (AccessRequestState::Abandoned, "abandoned"),
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), json!(name));
            assert_eq!(state.as_str(), name);
        }
        assert_eq!(
            decision_path("abc", Decision::Approve),
            "/kubetape/v1/requests/abc/approve"
        );
        assert_eq!(
            decision_path("abc", Decision::Deny),
            "/kubetape/v1/requests/abc/deny"
        );
        for d in [Decision::Approve, Decision::Deny] {
            assert_eq!(Decision::from_segment(d.as_str()), Some(d));
        }
        assert_eq!(Decision::from_segment("approved"), None);
    }

    #[test]
    fn requests_are_strict_and_answers_lenient() {
        // A typo in what a client sends is an error, not an ignored setting.
        assert!(
            serde_json::from_value::<NewAccessRequest>(
                json!({"role": "r", "namespace": "n", "reason": "w", "ttl": "1h", "tll": "2h"})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<NewAccessRequest>(json!({"role": "r", "namespace": "n"}))
                .is_err()
        );
        assert!(serde_json::from_value::<DecisionBody>(json!({"reason": "x", "by": "y"})).is_err());
        assert_eq!(
            serde_json::from_value::<DecisionBody>(json!({})).unwrap(),
            DecisionBody::default()
        );
        // An answer from a newer gateway: an extra field and a state this client does not know.
        let mut newer = serde_json::to_value(pending()).unwrap();
        newer["state"] = json!("escalated");
        newer["ticket"] = json!("INC-42");
        let view: AccessRequestView = serde_json::from_value(newer).unwrap();
        assert_eq!(view.state, AccessRequestState::Unknown);
        assert_eq!(view.id, pending().id);
        // ...and from an older one, without `requested_at` or the decision's fields.
        let older = json!({"id": "i", "user": "u", "role": "r", "namespace": "n", "reason": "w",
            "ttl": "5m", "state": "denied"});
        let view: AccessRequestView = serde_json::from_value(older).unwrap();
        assert_eq!(
            (view.state, view.requested_at.as_str(), view.mine),
            (AccessRequestState::Denied, "", false)
        );
        // Required fields stay required.
        assert!(serde_json::from_value::<AccessRequestView>(json!({"id": "i"})).is_err());
    }
}
