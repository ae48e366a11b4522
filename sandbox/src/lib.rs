//! `kubetape-sandbox`: a stand-in Kubernetes API server whose pods are local processes, speaking the
//! real streaming protocols byte for byte, for the quickstart and the end-to-end tests.
//!
//! # Layout
//! Filled by the gateway issue.
