//! Non-streaming requests (get, list, watch, logs, apply, ...): forwarded upstream with the
//! caller impersonated, responses streamed back as they arrive (watches and `logs -f` included).

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};

use crate::status::{self, Body};
use crate::upstream::{self, Impersonation};

/// Largest request body forwarded (manifests); larger ones are refused rather than buffered.
pub const MAX_REQUEST_BODY: usize = 32 << 20;

pub async fn forward(
    client: &kube::Client,
    req: Request<hyper::body::Incoming>,
    who: &Impersonation,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body: Bytes = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return status::bad_request(format!(
                "kubetape: request body unreadable or over {MAX_REQUEST_BODY} bytes: {e}"
            ));
        }
    };
    let mut headers = upstream::request_headers(&parts.headers);
    if let Err(e) = upstream::impersonate(&mut headers, who) {
        return status::bad_request(format!("kubetape: identity cannot be sent upstream: {e}"));
    }
    // The query goes upstream as the gateway parsed it (`proto::query`, as the policy read it in
    // `dispatch`), re-encoded: whatever the client's spelling, the cluster reads the values the
    // gateway decided on. A query that does not parse was refused before this point.
    let target = match proto::query::Query::parse(parts.uri.query().unwrap_or_default()) {
        Ok(query) => query.target(parts.uri.path()),
        Err(e) => return status::bad_request(format!("kubetape: {e}")),
    };
    let mut builder = Request::builder().method(parts.method).uri(target);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let upstream_req = match builder.body(kube::client::Body::from(body)) {
        Ok(r) => r,
        Err(e) => return status::bad_request(format!("kubetape: malformed request: {e}")),
    };
    match client.send(upstream_req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            upstream::response_headers(&mut parts.headers);
            Response::from_parts(
                parts,
                body.map_err(|e| Box::new(e) as status::BoxError)
                    .boxed_unsync(),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "upstream request failed");
            status::unavailable(format!("kubetape: the cluster API is unreachable: {e}"))
        }
    }
}
