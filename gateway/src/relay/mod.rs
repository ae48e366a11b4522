//! The stream kinds the gateway relays and records. Each kind owns only its protocol: how to
//! parse the request, speak to the client, dial the cluster and pump bytes between them; the
//! life of the recording (open, live registration, ends, seal, drain) is [`crate::session`]'s.
//!
//! To add a kind: a module here that builds a [`crate::session::Opening`], calls
//! [`crate::session::Sessions::open`], answers the upgrade, and hands a
//! [`crate::session::Relay`] to [`crate::session::Session::spawn`]; then route its
//! subresource to it in [`crate::dispatch`].

pub mod exec;
pub mod portforward;
pub mod unrecorded;

use http::Response;
use storage_schema::SessionId;

use crate::status::Body;

/// What a stream handler answered, and the recording it opened (which the audit record names).
#[derive(Debug)]
pub struct Dispatched {
    pub response: Response<Body>,
    pub session: Option<SessionId>,
}

impl Dispatched {
    /// A response that opened no recording (a refusal, an error).
    pub fn refused(response: Response<Body>) -> Self {
        Self {
            response,
            session: None,
        }
    }
}
