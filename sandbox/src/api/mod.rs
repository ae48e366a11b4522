//! The REST surface kubectl needs, routed by path: discovery, namespaces, pods (get, list,
//! watch, Table), logs, events, the node, and the exec/attach and port-forward upgrades (handed
//! to [`crate::exec`] and [`crate::portforward`]).
//! Anything else is a 404 `Status`, like an API server without that resource.

mod create;
mod discovery;
mod ephemeral;
pub(crate) mod logs;
mod objects;
pub(crate) mod resources;
mod review;
mod selector;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::ctx::Ctx;
use crate::respond::{self, Body};
use objects::Kind;
use resources::{Form, Query};

/// Answers one authenticated request.
pub(crate) async fn route(ctx: &Ctx, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = req.method().clone();
    let query = Query::parse(req.uri().query());
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let form = Form::from_request(accept, &query);
    let cluster = &ctx.cluster;
    let read = method == Method::GET || method == Method::HEAD;

    // Streaming subresources take the request itself (they upgrade the connection).
    if let [
        "api",
        "v1",
        "namespaces",
        ns,
        "pods",
        pod,
        sub @ ("exec" | "attach"),
    ] = segments.as_slice()
    {
        if method != Method::GET && method != Method::POST {
            return respond::method_not_allowed();
        }
        let (ns, pod, attach) = (ns.to_string(), pod.to_string(), *sub == "attach");
        return crate::exec::handle(ctx, req, &ns, &pod, attach).await;
    }
    if let [
        "api",
        "v1",
        "namespaces",
        ns,
        "pods",
        pod,
        "ephemeralcontainers",
    ] = segments.as_slice()
    {
        let (ns, pod) = (ns.to_string(), pod.to_string());
        return ephemeral::handle(cluster, req, &ns, &pod).await;
    }
    if let ["api", "v1", "namespaces", ns, "pods", pod, "portforward"] = segments.as_slice() {
        if method != Method::GET && method != Method::POST {
            return respond::method_not_allowed();
        }
        let (ns, pod) = (ns.to_string(), pod.to_string());
        return crate::portforward::handle(ctx, req, &ns, &pod).await;
    }
    if let ["api", "v1", "namespaces", ns, "pods"] = segments.as_slice()
        && method == Method::POST
    {
        let ns = ns.to_string();
        return create::create(cluster, req, &ns).await;
    }
    if method == Method::POST
        && let ["apis", "authorization.k8s.io", "v1", which] = segments.as_slice()
        && (*which == "selfsubjectaccessreviews" || *which == "selfsubjectrulesreviews")
    {
        return review::review(req, *which == "selfsubjectaccessreviews").await;
    }
    if !read {
        return respond::method_not_allowed();
    }
    match segments.as_slice() {
        ["version"] => respond::json(StatusCode::OK, &discovery::version(cluster)),
        ["api"] => respond::json(StatusCode::OK, &discovery::api_versions()),
        ["apis"] => respond::json(StatusCode::OK, &discovery::api_groups()),
        ["api", "v1"] => respond::json(StatusCode::OK, &discovery::core_v1_resources()),
        ["healthz" | "livez" | "readyz"] => {
            respond::with_type(StatusCode::OK, "text/plain; charset=utf-8", "ok")
        }
        ["api", "v1", resource] => match kind_of(resource) {
            Some(kind) => resources::list(cluster, kind, None, &query, form),
            None => not_found(),
        },
        ["api", "v1", resource @ ("namespaces" | "nodes"), name] => {
            let kind = kind_of(resource).expect("matched above");
            resources::get(cluster, kind, None, name, form)
        }
        [
            "api",
            "v1",
            "namespaces",
            ns,
            resource @ ("pods" | "events"),
        ] => {
            let kind = kind_of(resource).expect("matched above");
            resources::list(cluster, kind, Some(ns), &query, form)
        }
        ["api", "v1", "namespaces", ns, "pods", name] => {
            resources::get(cluster, Kind::Pod, Some(ns), name, form)
        }
        ["api", "v1", "namespaces", ns, "pods", name, "log"] => match cluster.pod(ns, name) {
            Some(pod) => logs::logs(&pod, &query),
            None => respond::object_not_found("pods", name),
        },
        _ => not_found(),
    }
}

fn kind_of(resource: &str) -> Option<Kind> {
    match resource {
        "pods" => Some(Kind::Pod),
        "namespaces" => Some(Kind::Namespace),
        "nodes" => Some(Kind::Node),
        "events" => Some(Kind::Event),
        _ => None,
    }
}

fn not_found() -> Response<Body> {
    respond::not_found("the server could not find the requested resource")
}
