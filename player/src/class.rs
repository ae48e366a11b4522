//! What each command does with each class of stream ([`StreamClass`]). The class, not the kind,
//! is what commands ask: `ls`, `play`, `cat`, `export` and `search` show sessions, `audit` reads
//! audit streams, `verify` and `seal` take any. Port-forwards are listed, verified and sealed
//! like sessions; `play` shows them as a timeline of connections and `cat --connection` prints
//! a connection's bytes, while `export` and `search`, which need a terminal, refuse or skip them. A new class fails to compile here (and in
//! `verify`'s description and the search index) until each command has decided.

use storage_schema::{SessionId, SessionMeta, StreamClass};

/// Whether `ls` lists a stream of `class` (`None`: its metadata is unreadable, and it is listed
/// as such). Audit streams live under `audit/`, but older gateways wrote them under `sessions/`.
pub fn listed_by_ls(class: Option<StreamClass>) -> bool {
    match class {
        Some(StreamClass::Session | StreamClass::PortForward) | None => true,
        Some(StreamClass::AuditStream) => false,
    }
}

/// Refuses a stream that has no terminal to show, for `play`, `cat` and `export`.
pub fn require_terminal(id: SessionId, meta: &SessionMeta) -> anyhow::Result<()> {
    match meta.class() {
        StreamClass::Session => Ok(()),
        StreamClass::PortForward => anyhow::bail!(
            "session {id} is a port-forward, not a terminal session: `kubetape play {id}` shows its connections, \
             `kubetape cat {id} --connection N` prints one's bytes when they were captured"
        ),
        StreamClass::AuditStream => anyhow::bail!(
            "session {id} is a gateway's audit log, not a terminal session (`kubetape audit` reads it)"
        ),
    }
}
