//! The admin API on the gateway's own listener, under `/kubetape/v1/`: callers authenticate
//! with their own token exactly as kubectl does, and each route decides who may use it (the
//! policy file governs the cluster API, not this one).
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/kubetape/v1/requests` | ask for a requestable role: `{role, namespace, reason, ttl}` |
//! | GET | `/kubetape/v1/requests` | the caller's requests and those the caller may decide |
//! | POST | `/kubetape/v1/requests/{id}/approve` | approve (approver groups, never one's own) |
//! | POST | `/kubetape/v1/requests/{id}/deny` | deny, optional `{reason}` |
//!
//! The bodies are [`proto::admin`]'s types, which the `kubetape` CLI reads too. Errors are
//! Kubernetes `Status` objects, like the gateway's other refusals, so clients print one kind of
//! message.

mod requests;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use proto::admin::Decision;

use crate::authn::Identity;
use crate::state::State;
use crate::status::{self, Body};

/// Where the admin API lives.
pub const PREFIX: &str = "/kubetape/";

/// Largest request body the admin API reads.
const MAX_BODY: usize = 64 << 10;

/// Whether `path` belongs to the admin API.
pub fn is_admin_path(path: &str) -> bool {
    path.starts_with(PREFIX) || path == "/kubetape"
}

/// Routes an authenticated admin request.
pub async fn handle(
    state: &State,
    req: Request<hyper::body::Incoming>,
    who: &Identity,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return status::bad_request(format!(
                "kubetape: request body unreadable or over {MAX_BODY} bytes: {e}"
            ));
        }
    };
    let segments: Vec<&str> = path
        .strip_prefix("/kubetape/v1/")
        .unwrap_or_default()
        .split('/')
        .collect();
    let no_route = || {
        status::respond(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("kubetape: no admin API route {method} {path}"),
        )
    };
    match (&method, segments.as_slice()) {
        (&Method::POST, ["requests"]) => requests::create(state, who, &body).await,
        (&Method::GET, ["requests"]) => requests::list(state, who).await,
        (&Method::POST, ["requests", id, verb]) => match Decision::from_segment(verb) {
            Some(decision) => requests::decide(state, who, id, decision, &body).await,
            None => no_route(),
        },
        _ => no_route(),
    }
}

/// A JSON response.
fn json(code: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(status::full(
            serde_json::to_vec_pretty(value).expect("response serializes"),
        ))
        .expect("static response parts")
}
