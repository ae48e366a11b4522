//! `kubetape-gateway`: authenticates kubectl with OIDC tokens, authorizes every request,
//! forwards it to the cluster with impersonation, and records exec/attach streams through
//! `storage-schema`.
//!
//! # Layout
//! - [`server`]: TLS + HTTP/1.1 (upgrades) + HTTP/2 front door; authn → authz → dispatch → audit;
//! - [`authn`]: OIDC JWT validation against JWKS; [`policy`]: roles, bindings, default deny;
//! - [`jit`]: just-in-time access requests and grants in the object store; [`admin`]: the
//!   `/kubetape/v1/` API (requests, approvals);
//! - [`upstream`]: the gateway's own cluster identity, header sanitizing, impersonation;
//! - [`proxy`]: non-streaming requests, streamed back (watch, logs -f);
//! - [`read_ahead`]: large socket reads under TLS (rustls reads 4 KiB at a time), no buffer when idle;
//! - [`relay`]: exec/attach — client WebSocket/SPDY termination, upstream WebSocket v5, recording;
//! - [`audit`]: one record per request, to stdout and hash-chained audit streams in the store;
//! - [`copy`]: `kubectl cp` (tar over exec) read into the session's commands object;
//! - [`debug`]: `kubectl debug` — what an ephemeral container or a created pod would run,
//!   read from the request and checked against the role's debug limits;
//! - [`selfreview`]: `kubectl auth can-i` / `whoami` answered as policy AND cluster;
//! - [`retention`]: deleting expired recordings by rule, one pass at a time (a lease), planned,
//!   recorded and audited; never a held or damaged one;
//! - [`revocation`]: revoked users (store-backed, polled), the admin API route; [`live`]: the
//!   registry of live sessions that revocations (and expiring grants) end;
//! - [`app`]: from a configuration to a bound, ready gateway;
//! - [`config`], [`tls`], [`status`]: configuration file, TLS, Kubernetes Status responses;
//! - [`edges`]: the shutdown signal and log subscriber of the binaries built on this library.
//!
//! The development token issuer and the quickstart are not here: they are the `quickstart`
//! crate (`kubetape-quickstart`), which uses this library, so the production binary can mint
//! no identity and carries no sandbox.

pub mod admin;
pub mod app;
pub mod audit;
pub mod authn;
pub mod background;
pub mod check;
pub mod config;
pub mod copy;
pub mod debug;
pub mod dispatch;
pub mod edges;
pub mod jit;
pub mod lease;
pub mod limits;
pub mod live;
pub mod ops;
pub mod policy;
pub mod proxy;
pub mod read_ahead;
pub mod relay;
pub mod retention;
pub mod revocation;
pub mod selfreview;
pub mod server;
pub mod session;
pub mod state;
pub mod status;
pub mod tls;
pub mod upstream;
