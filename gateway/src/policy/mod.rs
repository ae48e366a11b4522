//! Authorization: default deny; roles (RBAC-style rules over namespaces, API groups, resources
//! and subresources, verbs and names) given to identities by bindings (users, groups, CI claim
//! matchers) or, just in time, by grants. The gateway decides before anything reaches the
//! cluster; upstream it impersonates the mapped identity, so the cluster's RBAC applies as well.
//!
//! # Layout
//! - `attributes`: method + path + query → [`Attributes`] (the Kubernetes `RequestInfo`);
//! - `file`: the policy file's model and validation ([`Policy`], [`PolicyError`]);
//! - `decision`: [`Policy::decide`] → [`Decision`], denial messages, grant matching;
//! - `reload`: [`PolicyWatch`], polling the file and keeping the last good policy;
//! - `glob`: `*` patterns.

mod attributes;
mod decision;
mod file;
mod glob;
pub mod lint;
mod reload;

pub use self::attributes::{
    Attributes, ResourceRequest, VERBS, parse as parse_attributes,
    parse_request as parse_request_attributes,
};
pub use self::decision::{Allowed, Decision, Elevation, ForwardScope};
pub use self::file::{
    Binding, Capture, ClaimMatcher, Policy, PolicyError, PortRange, Role, Rule, valid_name,
};
pub use self::glob::glob;
pub use self::reload::{POLL_INTERVAL, PolicyWatch, Reload};
