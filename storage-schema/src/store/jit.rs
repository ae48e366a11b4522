//! The just-in-time access ledger's objects, as stored (`jit/requests/<id>/request.json` and
//! `decision.json`: see [`crate::layout`]). The gateway writes and follows them (its `jit`
//! module holds the states and grants made of them); `kubetape report` reads them. One
//! definition here, so the two read the same bytes the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ledger;
use crate::layout;

/// A request for a role, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: String,
    pub user: String,
    pub issuer: String,
    pub groups: Vec<String>,
    /// The requester's carried claims (CI job ids), for the audit trail.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    pub role: String,
    pub namespace: String,
    pub reason: String,
    pub ttl_secs: u64,
    pub created_at_us: u64,
}

/// The answer to a request, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub approved: bool,
    pub by: String,
    #[serde(default)]
    pub reason: String,
    pub at_us: u64,
}

/// An object of the JIT ledger, as stored: under `<id>/`, a request and (at most) one decision.
/// Public for the fuzz target of its decoding (`gateway/fuzz`, through `gateway::jit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Request(AccessRequest),
    Decision(Verdict),
}

impl ledger::Entry for Stored {
    fn is_entry(name: &str) -> bool {
        matches!(
            name.split_once('/'),
            Some((_, layout::JIT_REQUEST_FILE | layout::JIT_DECISION_FILE))
        )
    }

    fn decode(name: &str, bytes: &[u8]) -> Result<Self, String> {
        match name.split_once('/') {
            Some((id, layout::JIT_REQUEST_FILE)) => parse_request(id, bytes).map(Stored::Request),
            Some((_, layout::JIT_DECISION_FILE)) => {
                ledger::decode_json::<Verdict>(bytes).map(Stored::Decision)
            }
            _ => Err("not a request or a decision".into()),
        }
    }
}

/// The longest grant any role may give (`max_ttl` is at most this); longer stored requests are
/// taken for corrupt rather than honoured.
pub const MAX_TTL_SECS: u64 = 86_400;

/// Parses a stored request (under `<id>/`) and checks what the gateway relies on.
fn parse_request(id: &str, bytes: &[u8]) -> Result<AccessRequest, String> {
    let r: AccessRequest = ledger::decode_json(bytes)?;
    if r.id != id {
        return Err("its id is not its directory's".into());
    }
    if r.ttl_secs == 0 || r.ttl_secs > MAX_TTL_SECS {
        return Err("its ttl is outside 1s..24h".into());
    }
    Ok(r)
}
