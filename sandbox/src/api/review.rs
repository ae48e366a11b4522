//! The self-review APIs (`kubectl auth can-i`, `can-i --list`), as a cluster with no RBAC of its
//! own answers them: the sandbox allows whoever holds its token everything, as whoever they
//! impersonate. A gateway in front ANDs this with its own policy.

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::respond::{self, Body};

/// `access` (SelfSubjectAccessReview) or rules (SelfSubjectRulesReview).
pub(crate) async fn review(req: Request<Incoming>, access: bool) -> Response<Body> {
    let user = req
        .headers()
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("the token holder")
        .to_string();
    let body = match Limited::new(req.into_body(), 64 << 10).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return respond::bad_request(format!("reading the body: {e}")),
    };
    let Ok(mut object) = serde_json::from_slice::<Value>(&body) else {
        return respond::bad_request("the review is not JSON");
    };
    object["status"] = if access {
        json!({"allowed": true, "reason": format!("the sandbox allows {user} everything")})
    } else {
        json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        })
    };
    respond::json(StatusCode::CREATED, &object)
}
