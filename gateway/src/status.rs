//! HTTP responses carrying a Kubernetes `Status`, which kubectl prints as is. Every refusal the
//! gateway makes goes through here, so clients always get a machine-readable reason.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use proto::status::Status;

/// The response body type of every handler.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A Status response: `reason` is the Kubernetes reason (`Unauthorized`, `Forbidden`, ...).
pub fn respond(code: StatusCode, reason: &str, message: impl Into<String>) -> Response<Body> {
    let status = Status::failure(code.as_u16(), reason, message);
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(status.to_json()))
        .expect("static response parts are valid")
}

pub fn unauthorized(message: impl Into<String>) -> Response<Body> {
    respond(StatusCode::UNAUTHORIZED, "Unauthorized", message)
}

pub fn forbidden(message: impl Into<String>) -> Response<Body> {
    respond(StatusCode::FORBIDDEN, "Forbidden", message)
}

pub fn bad_request(message: impl Into<String>) -> Response<Body> {
    respond(StatusCode::BAD_REQUEST, "BadRequest", message)
}

pub fn internal(message: impl Into<String>) -> Response<Body> {
    respond(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
}

pub fn unavailable(message: impl Into<String>) -> Response<Body> {
    respond(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        message,
    )
}
