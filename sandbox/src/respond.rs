//! Response builders: JSON objects, Kubernetes `Status` errors, and streamed bodies (watch,
//! `logs --follow`) fed from a channel so a gone client is noticed as a closed channel.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use proto::status::Status;
use tokio::sync::mpsc;

/// Every response body the sandbox produces.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

/// A body streamed from `rx`; it ends when every sender is dropped. Dropping the body (client
/// gone) closes `rx`, which senders see as `Sender::closed`.
pub(crate) fn channel(rx: mpsc::Receiver<Bytes>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
    });
    StreamBody::new(stream).boxed_unsync()
}

pub(crate) fn json(code: StatusCode, value: &serde_json::Value) -> Response<Body> {
    with_type(
        code,
        "application/json",
        serde_json::to_vec(value).expect("JSON value serializes"),
    )
}

pub(crate) fn with_type(
    code: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// An error as the API server sends it: a `Status` body with the same code.
pub(crate) fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Response<Body> {
    let s = Status::failure(code.as_u16(), reason, message);
    with_type(code, "application/json", s.to_json())
}

/// The API server's 404 for a path it does not serve. It carries an empty `details`, and
/// kubectl relies on that: `kubectl debug` reads `details.name` of this 404 to tell "ephemeral
/// containers are disabled" and dereferences a missing `details` (a nil-pointer panic).
pub(crate) fn not_found(message: impl Into<String>) -> Response<Body> {
    let mut s = Status::failure(404, "NotFound", message);
    s.details = Some(proto::status::StatusDetails::default());
    with_type(StatusCode::NOT_FOUND, "application/json", s.to_json())
}

/// The API server's message for a missing object, e.g. `pods "x" not found`.
pub(crate) fn object_not_found(resource: &str, name: &str) -> Response<Body> {
    let mut s = Status::failure(404, "NotFound", format!("{resource} \"{name}\" not found"));
    s.details = Some(proto::status::StatusDetails {
        name: name.into(),
        kind: resource.into(),
        causes: Vec::new(),
    });
    with_type(StatusCode::NOT_FOUND, "application/json", s.to_json())
}

pub(crate) fn bad_request(message: impl Into<String>) -> Response<Body> {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

pub(crate) fn method_not_allowed() -> Response<Body> {
    status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
}

/// A rejected request, kept small until it becomes a `Status` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
    code: StatusCode,
    reason: &'static str,
    message: String,
}

impl Reject {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        status(self.code, self.reason, self.message)
    }
}
