//! `kubetape-gateway`: authenticates kubectl with OIDC tokens, authorizes, forwards with
//! impersonation, and records exec/attach streams through `storage-schema`.
//!
//! # Layout
//! Filled by the gateway issue.
