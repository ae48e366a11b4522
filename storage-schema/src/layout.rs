//! The bucket's layout: every prefix in the store, in one place. No other module spells a store
//! path; code that needs one asks here, so retention, holds and shredding can know every object
//! kubetape writes and whom it belongs to. `FORMAT.md` (*Bucket layout*) is the same table in
//! prose, and a test keeps the two in step.
//!
//! ```text
//! sessions/<id>/…                  recorded sessions (exec, attach, debug, local): see StreamDir
//! audit/<id>/…                     gateways' audit streams, same objects as a session
//! ended/<yyyy-mm-dd>/<id>          empty marker: session <id> (under sessions/) was sealed that day
//! jit/requests/<id>/request.json   JIT access request (ledger)
//! jit/requests/<id>/decision.json  its one approval or denial (ledger; the race has one winner)
//! revocations/<uuidv7>.json        revoke / lift entries (ledger)
//!
//! holds/<uuidv7>.json              legal-hold place / lift entries (ledger)
//! retention/<uuidv7>/plan.json     one retention pass's plan, written before it deletes anything
//! retention/<uuidv7>/result.json   what it deleted (by which rule), kept for holds, reported
//! shredded/<id>.json               a crypto-shredded session's record: who, when, why (one per id)
//! leases/<purpose>/…               create-only leases with an expiry: `leases/retention/<seq>`
//!                                  (one enforcement pass at a time), `leases/gateways/<instance>/
//!                                  <uuidv7>.json` (a gateway's liveness heartbeats)
//! reads/<yyyy-mm-dd>/<uuidv7>.json chain-of-custody log: one entry per reading of a recording
//! policies/reads/<uuidv7>.json     the read policy (namespaces whose recordings need a reason to
//!                                  be read), published by gateways; the newest entry rules
//! ```
//!
//! Every object is written once with a create-only put and never modified. Deletion is for
//! whole sessions only (retention) and for `dek.json` (crypto-shredding). Ledgers
//! ([`crate::store::ledger`]) are prefixes of small JSON entries whose names sort by time, so a
//! reader lists only what is new.
//!
//! # Streams and where they live
//! A recorded stream — a session or an audit stream — is a directory of objects under the prefix
//! of its [`StreamClass`] ([`StreamRoot::of`]); [`StreamDir`] names its objects. Stores written
//! before audit streams had their own prefix hold them under `sessions/`: readers of
//! `sessions/` ask each stream's class (its metadata's kind) instead of assuming, readers of
//! audit streams also look there ([`crate::store::list_audit_streams`]), and a lookup by id tries
//! [`StreamRoot::ALL`] in order ([`crate::store::locate`]).

use std::fmt;

use crate::session::{SessionId, StreamClass};

/// Recorded sessions: one directory per session ([`StreamDir`]).
pub const SESSIONS: &str = "sessions";
/// Gateways' audit streams: one directory per stream ([`StreamDir`]), objects as for a session.
pub const AUDIT: &str = "audit";
/// `ended/<day>/<id>`: the feed of sessions sealed per day ([`ended`]).
pub const ENDED: &str = "ended";
/// The JIT ledger: `<id>/request.json` and `<id>/decision.json` per access request.
pub const JIT_REQUESTS: &str = "jit/requests";
/// The revocation ledger: `<uuidv7>.json` per revoke or lift.
pub const REVOCATIONS: &str = "revocations";

/// Legal holds: a ledger of `<uuidv7>.json` place/lift entries, read like
/// the revocation ledger (the newest entry per hold decides).
pub const HOLDS: &str = "holds";
/// Retention: a ledger of `<uuidv7>/plan.json` and `<uuidv7>/result.json`, one pair per
/// enforcement pass, naming what it meant to delete and what it deleted, by which rule (each
/// deletion is also an audit record).
pub const RETENTION: &str = "retention";
/// Crypto-shredding: `<session id>.json`, the record that outlives the
/// deleted `dek.json` (who, when, why). One name per session, so two shredders race for one
/// create-only put and exactly one record is written.
pub const SHREDDED: &str = "shredded";
/// Leases: create-only objects whose body carries an expiry.
/// `leases/retention/<seq:020>`: whoever creates the next sequence number's lease runs the next
/// retention pass.
/// `leases/gateways/<instance>/<uuidv7>.json`: a gateway's heartbeats, naming its live sessions,
/// so a surviving replica can seal the sessions of one whose heartbeats stopped.
pub const LEASES: &str = "leases";
/// Gateways' liveness heartbeats: `<instance>/<uuidv7>.json` (the gateway's `lease` module).
pub const GATEWAY_HEARTBEATS: &str = "leases/gateways";
/// The chain-of-custody log: `<yyyy-mm-dd>/<uuidv7>.json`, one entry per
/// reading of a recording (who, what, when, why), by day so a query lists only its days.
pub const READS: &str = "reads";
/// The read policy ([`crate::store::read_policy`]): `<uuidv7>.json` entries, the newest rules.
pub const READ_POLICY: &str = "policies/reads";

/// Whether kubetape writes an area yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    InUse,
    /// Named and documented so nothing else takes the prefix; the issue that will write it.
    Reserved(&'static str),
}

/// One top-level area of the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    pub prefix: &'static str,
    pub holds: &'static str,
    pub writers: &'static str,
    pub status: Use,
}

/// Every area of the bucket. Nothing kubetape writes lies outside these prefixes.
pub const AREAS: &[Area] = &[
    Area {
        prefix: SESSIONS,
        holds: "recorded sessions (and, in older stores, audit streams)",
        writers: "gateway relays, `kubetape record`; `kubetape seal` adds a seal",
        status: Use::InUse,
    },
    Area {
        prefix: AUDIT,
        holds: "gateways' audit streams",
        writers: "gateway audit writer; `kubetape seal` adds a seal",
        status: Use::InUse,
    },
    Area {
        prefix: ENDED,
        holds: "per-day markers of sealed sessions",
        writers: "whoever seals a session",
        status: Use::InUse,
    },
    Area {
        prefix: JIT_REQUESTS,
        holds: "JIT access requests and their decisions (ledger)",
        writers: "gateway admin API",
        status: Use::InUse,
    },
    Area {
        prefix: REVOCATIONS,
        holds: "revoke / lift entries (ledger)",
        writers: "gateway admin API, `kubetape-gateway revoke`",
        status: Use::InUse,
    },
    Area {
        prefix: HOLDS,
        holds: "legal-hold place / lift entries (ledger)",
        writers: "`kubetape hold`",
        status: Use::InUse,
    },
    Area {
        prefix: RETENTION,
        holds: "retention pass records (ledger)",
        writers: "retention enforcement",
        status: Use::InUse,
    },
    Area {
        prefix: SHREDDED,
        holds: "shred records, one per session",
        writers: "`kubetape shred`",
        status: Use::InUse,
    },
    Area {
        prefix: LEASES,
        holds: "expiring create-only leases (retention pass, gateway liveness)",
        writers: "gateways",
        status: Use::InUse,
    },
    Area {
        prefix: READS,
        holds: "chain-of-custody log (ledger, by day)",
        writers: "`kubetape` readers",
        status: Use::InUse,
    },
    Area {
        prefix: READ_POLICY,
        holds: "the read policy: namespaces whose recordings need a reason to be read (ledger)",
        writers: "gateways at start, from `[custody] reason_required`",
        status: Use::InUse,
    },
];

// === streams ===

/// A prefix that holds streams, one directory each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamRoot {
    Sessions,
    Audit,
}

impl StreamRoot {
    /// Every stream root, in the order a lookup by id tries them (sessions are the common case).
    pub const ALL: [StreamRoot; 2] = [StreamRoot::Sessions, StreamRoot::Audit];

    pub fn prefix(self) -> &'static str {
        match self {
            StreamRoot::Sessions => SESSIONS,
            StreamRoot::Audit => AUDIT,
        }
    }

    /// Where new streams of `class` are written. (Older stores also hold audit streams under
    /// `sessions/`; see the module notes.)
    pub fn of(class: StreamClass) -> Self {
        match class {
            StreamClass::Session | StreamClass::PortForward => StreamRoot::Sessions,
            StreamClass::AuditStream => StreamRoot::Audit,
        }
    }
}

/// Where one stream's objects live:
///
/// ```text
/// <root>/<id>/meta.json              plaintext metadata (exact bytes are chained)
/// <root>/<id>/dek.json               the data key, wrapped by a KEK (delete = crypto-shred)
/// <root>/<id>/dek-<kek id>.json      the same key re-wrapped by a newer KEK (`keys rewrap`)
/// <root>/<id>/chunks/<seq:020>       encrypted, signed, chained event chunks
/// <root>/<id>/commands               encrypted commands typed (optional, before the seal)
/// <root>/<id>/seal.json              signed end-of-stream summary
/// ```
/// One directory per stream, so a stream can be listed, copied or deleted as a unit. Nothing in
/// an object depends on its root: a stream verifies the same wherever it lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamDir {
    root: StreamRoot,
    id: SessionId,
}

impl StreamDir {
    pub fn new(root: StreamRoot, id: SessionId) -> Self {
        Self { root, id }
    }

    /// A stream under `sessions/`.
    pub fn session(id: SessionId) -> Self {
        Self::new(StreamRoot::Sessions, id)
    }

    /// Where a new stream of `class` is written.
    pub fn for_class(class: StreamClass, id: SessionId) -> Self {
        Self::new(StreamRoot::of(class), id)
    }

    pub fn root(&self) -> StreamRoot {
        self.root
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The stream's directory (`<root>/<id>`).
    pub fn dir(&self) -> String {
        format!("{}/{}", self.root.prefix(), self.id)
    }

    pub fn meta(&self) -> String {
        format!("{}/meta.json", self.dir())
    }

    pub fn dek(&self) -> String {
        format!("{}/dek.json", self.dir())
    }

    /// The data key re-wrapped by KEK `kek` (`kubetape keys rewrap`): written beside
    /// `dek.json` with a create-only put, checked, and only then is the older wrapping deleted,
    /// so a crash between the two leaves two good wrappings and never none.
    pub fn rewrapped_dek(&self, kek: &str) -> String {
        format!("{}/{DEK_REWRAPPED_PREFIX}{kek}.json", self.dir())
    }

    pub fn chunks_dir(&self) -> String {
        format!("{}/chunks", self.dir())
    }

    pub fn chunk(&self, seq: u64) -> String {
        format!("{}/chunks/{seq:020}", self.dir())
    }

    pub fn commands(&self) -> String {
        format!("{}/commands", self.dir())
    }

    pub fn seal(&self) -> String {
        format!("{}/seal.json", self.dir())
    }
}

impl fmt::Display for StreamDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.root.prefix(), self.id)
    }
}

// Shorthands for streams under `sessions/` (what every stream was before audit streams moved).

pub fn session_dir(id: SessionId) -> String {
    StreamDir::session(id).dir()
}

pub fn meta(id: SessionId) -> String {
    StreamDir::session(id).meta()
}

pub fn dek(id: SessionId) -> String {
    StreamDir::session(id).dek()
}

pub fn chunks_dir(id: SessionId) -> String {
    StreamDir::session(id).chunks_dir()
}

pub fn chunk(id: SessionId, seq: u64) -> String {
    StreamDir::session(id).chunk(seq)
}

pub fn commands(id: SessionId) -> String {
    StreamDir::session(id).commands()
}

pub fn seal(id: SessionId) -> String {
    StreamDir::session(id).seal()
}

/// Names (relative to a stream's directory) of re-wrapped data keys start with this.
pub const DEK_REWRAPPED_PREFIX: &str = "dek-";

/// Whether `name` (relative to a stream's directory) is one of its data-key objects: deleting
/// all of them crypto-shreds the stream.
pub fn is_dek_name(name: &str) -> bool {
    name == "dek.json"
        || name
            .strip_prefix(DEK_REWRAPPED_PREFIX)
            .is_some_and(|rest| rest.ends_with(".json") && !rest.contains('/'))
}

/// The sequence number a chunk object's name holds, if it is one.
pub fn parse_chunk_name(name: &str) -> Option<u64> {
    if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

// === ended markers ===
//
// The `ended/` markers are a feed for readers that follow the store (the search index): they list
// a day's markers instead of every session. They are a convenience, not evidence: nothing is
// verified through them, and a reader that misses one finds the session on its next full listing.
// A marker names a stream under `sessions/` (older stores also marked audit streams, which lived
// there too; readers ask the class of what a marker names). Audit streams are not marked.

/// The marker of a session sealed on `day` (`yyyy-mm-dd`, UTC).
pub fn ended(day: &str, id: SessionId) -> String {
    format!("{ENDED}/{day}/{id}")
}

/// The UTC day (`yyyy-mm-dd`) of a time in µs since the Unix epoch.
pub fn day_of(unix_us: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(unix_us);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_string()
}

// === ledgers: names of entries, relative to the ledger's prefix ===

/// The JIT ledger's entry for request `id` (a UUIDv7, so entries sort by creation time).
pub fn jit_request(id: &str) -> String {
    format!("{id}/{JIT_REQUEST_FILE}")
}

/// The JIT ledger's entry for the decision on request `id`.
pub fn jit_decision(id: &str) -> String {
    format!("{id}/{JIT_DECISION_FILE}")
}

pub const JIT_REQUEST_FILE: &str = "request.json";
pub const JIT_DECISION_FILE: &str = "decision.json";

/// The revocation ledger's entry named by `stem` (a UUIDv7 text).
pub fn revocation(stem: &str) -> String {
    format!("{stem}.json")
}

/// The holds ledger's entry named by `stem` (a UUIDv7 text; a `place` entry's stem is its hold's
/// id).
pub fn hold(stem: &str) -> String {
    format!("{stem}.json")
}

/// The shred record of stream `id`, relative to [`SHREDDED`]: one name per stream, so of two
/// shredders exactly one writes it.
pub fn shredded(id: SessionId) -> String {
    format!("{id}.json")
}

/// The plan a retention pass writes before it deletes anything, relative to [`RETENTION`].
pub fn retention_plan(pass: &str) -> String {
    format!("{pass}/{RETENTION_PLAN_FILE}")
}

/// What a retention pass did, relative to [`RETENTION`].
pub fn retention_result(pass: &str) -> String {
    format!("{pass}/{RETENTION_RESULT_FILE}")
}

pub const RETENTION_PLAN_FILE: &str = "plan.json";
pub const RETENTION_RESULT_FILE: &str = "result.json";

/// Retention leases: `leases/retention/<seq:020>` (see the gateway's `retention::lease`).
pub const RETENTION_LEASES: &str = "leases/retention";

/// The retention lease with sequence number `seq`, relative to [`RETENTION_LEASES`].
pub fn retention_lease(seq: u64) -> String {
    format!("{seq:020}")
}

/// A chain-of-custody entry made on `day` (`yyyy-mm-dd`), named by `stem` (a UUIDv7 text),
/// relative to [`READS`].
pub fn read_entry(day: &str, stem: &str) -> String {
    format!("{day}/{stem}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_are_distinct_and_none_contains_another() {
        for (i, a) in AREAS.iter().enumerate() {
            for b in &AREAS[i + 1..] {
                let (x, y) = (format!("{}/", a.prefix), format!("{}/", b.prefix));
                assert!(
                    !x.starts_with(&y) && !y.starts_with(&x),
                    "{} and {} overlap",
                    a.prefix,
                    b.prefix
                );
            }
        }
        for root in StreamRoot::ALL {
            assert!(AREAS.iter().any(|a| a.prefix == root.prefix()));
        }
    }

    /// FORMAT.md's bucket layout names every area, in use or reserved, so the documentation
    /// cannot forget one this module knows.
    #[test]
    fn format_md_documents_every_area() {
        let doc = include_str!("../FORMAT.md");
        let section = doc
            .split("## Bucket layout")
            .nth(1)
            .expect("FORMAT.md has a Bucket layout section");
        for area in AREAS {
            assert!(
                section.contains(&format!("`{}/", area.prefix)),
                "FORMAT.md's bucket layout does not mention `{}/`",
                area.prefix
            );
        }
    }

    #[test]
    fn stream_objects_are_named_under_their_root() {
        let id: SessionId = "01a24188-c0a8-7343-97fb-44af079b3d28".parse().unwrap();
        let audit = StreamDir::for_class(StreamClass::AuditStream, id);
        assert_eq!(
            audit.chunk(7),
            "audit/01a24188-c0a8-7343-97fb-44af079b3d28/chunks/00000000000000000007"
        );
        assert_eq!(
            audit.seal(),
            "audit/01a24188-c0a8-7343-97fb-44af079b3d28/seal.json"
        );
        let session = StreamDir::for_class(StreamClass::Session, id);
        assert_eq!(session, StreamDir::session(id));
        assert_eq!(
            meta(id),
            "sessions/01a24188-c0a8-7343-97fb-44af079b3d28/meta.json"
        );
        assert_eq!(session.to_string(), session.dir());
        assert_eq!(jit_decision("x"), "x/decision.json");
    }
}
