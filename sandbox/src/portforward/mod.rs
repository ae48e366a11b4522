//! `pods/{name}/portforward`, as the API server and kubelet serve it, in its three forms
//! (kubernetes-streams.md §2; wire vocabulary in `proto::portforward`):
//!
//! - the WebSocket tunnel `SPDY/3.1+portforward.k8s.io` (kubectl ≥ 1.31; 1.30 with
//!   `KUBECTL_PORT_FORWARD_WEBSOCKETS=true`): SPDY bytes inside binary messages ([`websocket`]);
//! - raw SPDY/3.1 (`POST`, `Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`;
//!   kubectl 1.27–1.30): the same SPDY session on the connection itself ([`spdy`]);
//! - the `v4.channel.k8s.io` channel protocol with `?ports=` (kube-rs): one backend connection per
//!   port, port prefixes first ([`websocket`]).
//!
//! Every forwarded connection dials the pod port's server (see `portserver`); a port nothing
//! serves gets kubelet's (containerd's) error text on the error stream. Half-close is kept: a
//! client's FIN shuts the backend's write side, and its answer still flows back whole.

mod spdy;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tracing::Instrument as _;

use crate::cluster::Pod;
use crate::ctx::Ctx;
use crate::respond::{self, Body};

/// Dials a pod's ports; cheap to clone into each connection's task.
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    ports: Arc<Vec<(u16, Option<SocketAddr>)>>,
    sandbox_id: String,
    netns: String,
}

impl Dialer {
    pub fn new(pod: &Pod) -> Self {
        Self {
            ports: Arc::new(pod.ports.iter().map(|p| (p.spec.port, p.addr)).collect()),
            sandbox_id: pod.sandbox_id(),
            netns: format!("/var/run/netns/cni-{}", pod.uid),
        }
    }

    /// Connects to `port`'s server; on failure, the message kubelet writes on the error stream.
    pub async fn dial(&self, port: u16) -> Result<tokio::net::TcpStream, String> {
        let addr = self
            .ports
            .iter()
            .find(|(p, _)| *p == port)
            .and_then(|(_, a)| *a);
        if let Some(addr) = addr
            && let Ok(tcp) = tokio::net::TcpStream::connect(addr).await
        {
            let _ = tcp.set_nodelay(true);
            return Ok(tcp);
        }
        Err(self.refused(port))
    }

    /// kubelet's `error forwarding port %d to pod %s, uid %v: %v` around containerd's dial
    /// error, as observed from a real cluster for a port nothing listens on.
    fn refused(&self, port: u16) -> String {
        let (id, netns) = (&self.sandbox_id, &self.netns);
        format!(
            "error forwarding port {port} to pod {id}, uid : failed to execute portforward in \
             network namespace \"{netns}\": failed to connect to localhost:{port} inside namespace \
             \"{id}\", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 dial \
             tcp6 [::1]:{port}: connect: connection refused"
        )
    }
}

/// `GET|POST /api/v1/namespaces/{ns}/pods/{pod}/portforward`.
pub(crate) async fn handle(
    ctx: &Ctx,
    mut req: Request<Incoming>,
    ns: &str,
    pod: &str,
) -> Response<Body> {
    let Some(p) = ctx.cluster.pod(ns, pod) else {
        return respond::object_not_found("pods", pod);
    };
    let dialer = Dialer::new(&p);
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let span = tracing::info_span!("portforward", id = %id, pod = %pod);
    if !crate::upgrade::connection_upgrade(&req) {
        return upgrade_required();
    }
    match crate::upgrade::upgrade_kind(&req).as_str() {
        "websocket" => {
            websocket::accept(ctx, req, dialer, span.clone())
                .instrument(span)
                .await
        }
        "spdy/3.1" => {
            let offered: Vec<String> = req
                .headers()
                .get_all("x-stream-protocol-version")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|v| v.trim().to_string())
                .collect();
            if !offered.iter().any(|p| p == proto::portforward::PROTOCOL_V1) {
                // httpstream.Handshake: 403 with the protocols the server accepts.
                let mut resp = respond::status(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [\"{}\"]",
                        proto::portforward::PROTOCOL_V1
                    ),
                );
                resp.headers_mut().insert(
                    "x-accepted-stream-protocol-versions",
                    HeaderValue::from_static(proto::portforward::PROTOCOL_V1),
                );
                return resp;
            }
            tracing::info!(parent: &span, "spdy port-forward upgrade");
            let mut resp =
                crate::upgrade::switch_protocols(ctx, &mut req, span, "SPDY/3.1", move |io| {
                    spdy::run_on(io, dialer)
                });
            resp.headers_mut().insert(
                "x-stream-protocol-version",
                HeaderValue::from_static(proto::portforward::PROTOCOL_V1),
            );
            resp
        }
        _ => upgrade_required(),
    }
}

fn upgrade_required() -> Response<Body> {
    respond::status(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "Upgrade request required",
    )
}

/// The first protocol in `offered` (header lines, comma-separated) that is in `supported`.
fn negotiate<'a>(req: &Request<Incoming>, supported: &[&'a str]) -> (Vec<String>, Option<&'a str>) {
    let offered: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    let chosen = offered
        .iter()
        .find_map(|o| supported.iter().find(|s| **s == o).copied());
    (offered, chosen)
}
