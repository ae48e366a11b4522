//! The revocation routes of the admin API, for members of the configured admin groups:
//!
//! - `POST /kubetape/v1/revocations` with `{"user":"…","reason":"…"}` revokes (add `"lift":true`
//!   to lift); answers 201 with the entry written;
//! - `GET /kubetape/v1/revocations` lists the users currently revoked.
//!
//! [`handle`] is mounted by the admin router; it expects an authenticated caller.

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;

use super::{Action, Entry, Revocations, write};
use crate::authn::Identity;
use crate::status::{self, Body};

/// Path of the collection.
pub const PATH: &str = "/kubetape/v1/revocations";

/// Largest request body accepted.
const MAX_BODY: usize = 16 << 10;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    user: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    lift: bool,
}

/// Answers a request for [`PATH`] from `caller`.
pub async fn handle<B>(
    revocations: &Revocations,
    req: Request<B>,
    caller: &Identity,
) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !revocations.is_admin(&caller.groups) {
        return status::forbidden(format!(
            "kubetape: user {:?} is not in an admin group (revocation.admin_groups) and may not manage revocations",
            caller.user
        ));
    }
    match *req.method() {
        Method::GET => json(StatusCode::OK, &revocations.revoked()),
        Method::POST => {
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return status::bad_request(format!(
                        "kubetape: request body unreadable or over {MAX_BODY} bytes: {e}"
                    ));
                }
            };
            let ask: RevokeRequest = match serde_json::from_slice(&body) {
                Ok(a) => a,
                Err(e) => {
                    return status::bad_request(format!(
                        "kubetape: expected {{\"user\": \"…\", \"reason\": \"…\", \"lift\": false}}: {e}"
                    ));
                }
            };
            let action = if ask.lift {
                Action::Lift
            } else {
                Action::Revoke
            };
            let entry = Entry::new(
                action,
                &ask.user,
                &ask.reason,
                &format!("api:{}", caller.user),
            );
            match write(revocations.store(), &entry).await {
                Ok(_) => {
                    tracing::warn!(user = %entry.user, by = %entry.by, action = ?entry.action, "revocation entry written");
                    json(StatusCode::CREATED, &entry)
                }
                Err(super::RevocationError::EmptyUser) => {
                    status::bad_request("kubetape: \"user\" must not be empty")
                }
                Err(e) => status::unavailable(format!("kubetape: {e}")),
            }
        }
        _ => status::respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "kubetape: use GET or POST",
        ),
    }
}

fn json(code: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(status::full(
            serde_json::to_vec(value).expect("serializable"),
        ))
        .expect("static response parts")
}
