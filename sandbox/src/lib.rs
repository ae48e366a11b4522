//! `kubetape-sandbox`: a stand-in Kubernetes API server whose pods are local processes,
//! speaking the real streaming protocols byte for byte, for the quickstart and the end-to-end
//! tests (no real cluster can run here).
//!
//! # Layout
//! - [`config`]: the TOML cluster description ([`SandboxConfig`], pods, containers);
//! - `tls`: the per-run CA and server certificate;
//! - [`requests`]: the request log (memory + `requests.jsonl`).

pub mod config;
pub mod requests;
mod tls;

pub use config::{ConfigError, ContainerSpec, PodSpec, SandboxConfig};
pub use requests::{Authorization, RequestLog, RequestRecord};
pub use tls::TlsError;
