//! `kubetape-sandbox`: a stand-in Kubernetes API server whose pods are local processes,
//! speaking the real streaming protocols byte for byte, for the quickstart and the end-to-end
//! tests (no real cluster can run here).
//!
//! # Layout
//! - [`config`]: the TOML cluster description ([`SandboxConfig`], pods, containers);
//! - `tls`: the per-run CA and server certificate;
//! - [`requests`]: the request log (memory + `requests.jsonl`);
//! - `cluster`, `container`: pods and each container's main process (logs, attach hub);
//! - `exec::process`: local processes, PTY or pipes, with back-pressure.

#![allow(dead_code)] // the API that serves these comes next

mod cluster;
pub mod config;
mod container;
mod exec;
pub mod requests;
mod tls;

pub use config::{ConfigError, ContainerSpec, PodSpec, SandboxConfig};
pub use requests::{Authorization, RequestLog, RequestRecord};
pub use tls::TlsError;
