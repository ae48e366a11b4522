//! The API server's reading of requests, modelled from its Go sources ([`model`]), and the
//! differential property the gateway must keep against it ([`parity`]). Shared by
//! `tests/apiserver_parity.rs` and the `apiserver_parity` fuzz target (which includes this
//! directory by path).

pub mod model;
pub mod parity;
