//! What every request handler shares: the gateway's long-lived parts, built once by
//! [`crate::app`] and handed to [`crate::dispatch`], the stream kinds and the admin API.
//!
//! It lives in a module of its own, below everything that uses it, so that the front door
//! (`server`, `dispatch`) and the handlers it calls (`admin`, `relay`) all import it without
//! importing each other.

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::audit::unauthenticated::Unauthenticated;
use crate::authn::Authenticator;
use crate::jit::Jit;
use crate::lease::Leases;
use crate::limits::Limits;
use crate::ops::metrics::Metrics;
use crate::ops::store::StoreHealth;
use crate::policy::PolicyWatch;
use crate::revocation::Revocations;
use crate::session::Sessions;

/// Everything a request handler needs; shared by all connections.
pub struct State {
    pub authn: Authenticator,
    /// The policy in force (reloaded from its file in the background).
    pub policy: Arc<PolicyWatch>,
    /// Just-in-time requests and grants, in the store (refreshed in the background).
    pub jit: Arc<Jit>,
    /// The gateway's own client to the cluster (impersonation is added per request).
    pub upstream: kube::Client,
    /// The same for port-forward tunnels (TCP without Nagle: see [`crate::upstream::Clients`]).
    pub upstream_tunnels: kube::Client,
    /// Recorded as each session's cluster.
    pub cluster: String,
    pub audit: Arc<AuditLog>,
    /// 401s per client, aggregated once they repeat (see [`crate::audit::unauthenticated`]).
    pub unauthenticated: Unauthenticated,
    pub revocations: Arc<Revocations>,
    /// Opens, tracks, ends and seals recorded streams (and drains them at shutdown).
    pub sessions: Sessions,
    /// What clients may hold before they are authenticated (and how much they hold now).
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    /// The store's recent writes, for readiness.
    pub store_health: Arc<StoreHealth>,
    /// This gateway's liveness lease and its view of the others'.
    pub leases: Arc<Leases>,
    /// Allowed `kubectl debug` requests awaiting their attach (see [`crate::debug::link`]).
    pub debugs: crate::debug::link::Pending,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("cluster", &self.cluster)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}
