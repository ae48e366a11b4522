//! `kubetape-sandbox`: a stand-in Kubernetes API server whose pods are local processes,
//! speaking the real streaming protocols byte for byte, for the quickstart and the end-to-end
//! tests (no real cluster can run here). Real kubectl (1.27–1.37) and kube-rs talk to it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sandbox::Error> {
//! let dir = std::path::Path::new("/tmp/sandbox-state");
//! let sb = sandbox::start(sandbox::SandboxConfig::demo(), "127.0.0.1:0".parse().unwrap(), dir).await?;
//! // kubectl --kubeconfig <sb.kubeconfig_path> exec demo -- echo hi
//! println!("{} {}", sb.url(), sb.kubeconfig_path.display());
//! sb.shutdown().await
//! # }
//! ```
//!
//! # Layout
//! Bottom-up; each module uses only those above it in this list (`tests/modules.rs` checks there
//! is no cycle).
//! - [`config`]: the TOML cluster description ([`SandboxConfig`], pods, containers);
//! - `tls`: the per-run CA and server certificate; `respond`: response builders; `query`:
//!   query strings;
//! - [`requests`]: the request log (memory + `requests.jsonl`);
//! - `guardian`: the helper process that kills every pod process group if the sandbox dies
//!   without cleaning up (SIGKILL);
//! - `process`: local processes as container processes (PTY or pipes, back-pressure), each in
//!   its own process group watched by the guardian;
//! - [`portserver`]: the processes behind pod ports (built-in HTTP and echo servers run as
//!   `kubetape-sandbox serve-port`, or any command), on loopback ports the sandbox picks;
//! - `container`, `cluster`: each container's main process (logs, attach hub) and the pods,
//!   with their ephemeral containers;
//! - `ctx`: what handlers share (cluster, token, request log, tasks shutdown aborts);
//! - `upgrade`: the 101 answer and session task of every streaming subresource;
//! - `exec`: exec/attach — `websocket` (channel protocol v1/v4/v5, base64), `spdy` (drives
//!   `proto::spdy::remotecommand`);
//! - `portforward`: port-forward — `websocket` (the SPDY tunnel and the v4 channel protocol),
//!   `spdy` (drives `proto::spdy::portforward`, one task per forwarded connection);
//! - `api`: discovery, get/list/watch/Table for pods, namespaces, nodes, events; logs;
//!   ephemeral containers (`kubectl debug`: GET/PATCH, patch kinds, validation); pod creation
//!   (`create`: protobuf or JSON, for `debug --copy-to` and `debug node/…`); routes
//!   streams to `exec` and `portforward`;
//! - `server`: TLS + HTTP/1.1 (upgrades) + HTTP/2, bearer auth, state files, [`start`]/[`run`].
//!
//! Protocol facts come from `shared/reference/kubernetes-streams.md`; wire encodings from the
//! `proto` crate.

mod api;
mod cluster;
pub mod config;
mod container;
mod ctx;
mod exec;
mod guardian;
mod portforward;
pub mod portserver;
mod process;
mod query;
pub mod requests;
mod respond;
mod server;
mod tls;
mod upgrade;

pub use config::{
    BuiltinServer, ConfigError, ContainerSpec, ExecWebSocket, Modes, PodSpec, PortSpec,
    SandboxConfig,
};
pub use requests::{Authorization, RequestLog, RequestRecord};
pub use server::{Error, Sandbox, run, start};
pub use tls::TlsError;
