//! exec and attach: validates the request like the API server (404 for an unknown pod or
//! container, 400 for bad options or a missing upgrade) *before* upgrading, then hands the
//! connection to the WebSocket ([`websocket`]) or SPDY/3.1 ([`spdy`]) front-end, which both
//! drive a [`crate::process::Session`]: a new local process for exec, the container's main process for
//! attach.

pub(crate) mod spdy;
mod websocket;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use proto::exec::StreamOptions;
use tracing::Instrument as _;

use crate::cluster::container_env;
use crate::container::MainProcess;
use crate::ctx::Ctx;
use crate::process::{self, ProcessSpec, Session};
use crate::respond::{self, Body};

/// What a session connects to, started once the client's streams are ready.
#[derive(Debug)]
pub(crate) enum Target {
    Exec(ProcessSpec),
    Attach(MainProcess, StreamOptions),
}

impl Target {
    pub fn start(self) -> Session {
        match self {
            Target::Exec(spec) => process::spawn(&spec).unwrap_or_else(|e| {
                tracing::info!(error = %e, "exec failed to start");
                Session::failed(e.to_status())
            }),
            Target::Attach(main, opts) => main.attach(&opts),
        }
    }
}

/// `GET|POST /api/v1/namespaces/{ns}/pods/{pod}/{exec|attach}`.
pub(crate) async fn handle(
    ctx: &Ctx,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    attach: bool,
) -> Response<Body> {
    let Some(p) = ctx.cluster.pod(ns, pod) else {
        return respond::object_not_found("pods", pod);
    };
    let mut opts = match proto::exec::parse_query(req.uri().query().unwrap_or("")) {
        Ok(o) => o,
        Err(e) => return respond::bad_request(e),
    };
    let container = match opts.container.as_deref().filter(|c| !c.is_empty()) {
        Some(name) => match p.find(name) {
            Some(c) => c,
            None => {
                return respond::not_found(format!("container {name:?} not found in pod {pod:?}"));
            }
        },
        None if p.containers.len() == 1 => p.containers[0].clone(),
        None => {
            let names: Vec<&str> = p.containers.iter().map(|c| c.spec.name.as_str()).collect();
            return respond::bad_request(format!(
                "a container name must be specified for pod {pod}, choose one of: [{}]",
                names.join(" ")
            ));
        }
    };
    if !attach && opts.command.is_empty() {
        return respond::bad_request("you must specify at least one command for the container");
    }
    if !opts.stdin && !opts.stdout && !opts.stderr {
        return respond::bad_request("you must specify at least 1 of stdin, stdout, stderr");
    }
    if opts.tty && opts.stderr {
        // A terminal has one output; kubelet drops stderr the same way.
        opts.stderr = false;
    }
    let target = if attach {
        Target::Attach(container.main.clone(), opts.clone())
    } else {
        Target::Exec(ProcessSpec {
            argv: opts.command.clone(),
            workdir: container.spec.workdir().to_path_buf(),
            env: container_env(&p.spec, &container.spec, opts.tty),
            tty: opts.tty,
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        })
    };
    let upgrade = req
        .headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let span = tracing::info_span!(
        "stream",
        id = %id,
        pod = %pod,
        container = %container.spec.name,
        kind = if attach { "attach" } else { "exec" },
    );
    let connection_upgrade = crate::upgrade::connection_upgrade(&req);
    match upgrade.as_str() {
        "websocket" if connection_upgrade => {
            websocket::accept(ctx, req, opts, target, span.clone())
                .instrument(span)
                .await
        }
        "spdy/3.1" if connection_upgrade => {
            spdy::accept(ctx, req, opts, target, span.clone())
                .instrument(span)
                .await
        }
        _ => respond::status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Upgrade request required",
        ),
    }
}
