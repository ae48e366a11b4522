//! Legal holds: a case's claim on recordings that nothing may delete — neither retention nor
//! crypto-shredding — until the hold is lifted.
//!
//! ```text
//! holds/<uuidv7>.json   {"action":"place","hold":"<uuidv7>","case":"…","reason":"…","by":"…",
//!                        "at_us":…,"select":{"sessions":[…],"users":[…],"namespaces":[…],
//!                        "since_us":…,"until_us":…}}
//!                       {"action":"lift","hold":"<uuidv7>","case":"…","reason":"…","by":"…","at_us":…}
//! ```
//! A create-only ledger ([`super::ledger`]), read like revocations: entries are never modified
//! or deleted, so the prefix is also the history (who placed and lifted what, when, why). A
//! hold's id is the name of its `place` entry; a `lift` names it; the newest entry per hold
//! decides.
//!
//! **What a hold covers** ([`Selector`]): every criterion given must match (sessions by id;
//! users; namespaces, `*` wildcards allowed; a time range the stream's start falls in). An
//! audit stream is covered when its own start falls in a held time range, when it is named, or
//! when it overlaps a held session ([`Holds::covering_audit`]): the audit records of a case's
//! sessions are evidence too.
//!
//! **Fail closed**: a hold entry that does not decode might be a hold, so [`Holds::load`]
//! returns it as [`HoldsError::Unreadable`] and deleters stop rather than guess.

use serde::{Deserialize, Serialize};

use super::Store;
use super::ledger::{self, Ledger, LedgerError};
use crate::layout;
use crate::session::{SessionId, SessionMeta};
use crate::time::unix_micros_now;

/// Place or lift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldAction {
    Place,
    Lift,
}

/// What a hold covers: every criterion given must match; an empty list matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<SessionId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Namespaces, with `*` wildcards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Streams that started at or after this time (µs since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_us: Option<u64>,
    /// Streams that started at or before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_us: Option<u64>,
}

impl Selector {
    /// True when nothing narrows it: such a hold would freeze the whole store, which is
    /// refused (name the time range instead if that is what a case needs).
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
            && self.users.is_empty()
            && self.namespaces.is_empty()
            && self.since_us.is_none()
            && self.until_us.is_none()
    }

    /// Whether a stream with this id and metadata (`None`: unreadable metadata) is covered.
    /// Unreadable metadata matches any hold that does not name sessions only by id: a stream
    /// whose user and namespace cannot be read might be the held one.
    pub fn matches(&self, id: SessionId, meta: Option<&SessionMeta>) -> bool {
        if !self.sessions.is_empty() && !self.sessions.contains(&id) {
            return false;
        }
        let Some(meta) = meta else {
            return true;
        };
        let user_ok = self.users.is_empty() || self.users.contains(&meta.identity.user);
        let ns_ok = self.namespaces.is_empty()
            || meta
                .target
                .namespace
                .as_deref()
                .is_some_and(|ns| self.namespaces.iter().any(|p| glob(p, ns)));
        let t = meta.started_at_us;
        user_ok
            && ns_ok
            && self.since_us.is_none_or(|s| t >= s)
            && self.until_us.is_none_or(|u| t <= u)
    }

    /// One line for people: `sessions=… users=… namespaces=… since=… until=…`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.sessions.is_empty() {
            let ids: Vec<String> = self.sessions.iter().map(|s| s.short()).collect();
            parts.push(format!("sessions={}", ids.join(",")));
        }
        if !self.users.is_empty() {
            parts.push(format!("users={}", self.users.join(",")));
        }
        if !self.namespaces.is_empty() {
            parts.push(format!("namespaces={}", self.namespaces.join(",")));
        }
        if let Some(s) = self.since_us {
            parts.push(format!("since={}", crate::time::format_unix_micros(s)));
        }
        if let Some(u) = self.until_us {
            parts.push(format!("until={}", crate::time::format_unix_micros(u)));
        }
        parts.join(" ")
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let tail: Vec<&str> = parts.collect();
    let Some((last, middle)) = tail.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// One entry of the holds ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldEntry {
    pub action: HoldAction,
    /// The hold's id: the stem of its `place` entry's name.
    pub hold: String,
    /// The legal case, e.g. `CASE-123`.
    pub case: String,
    pub reason: String,
    /// Who wrote it (`cli:<login>`, or the `--as` name given).
    pub by: String,
    pub at_us: u64,
    /// What is held (`place` entries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Selector>,
}

impl ledger::Entry for HoldEntry {
    fn is_entry(name: &str) -> bool {
        !name.contains('/') && name.ends_with(".json")
    }

    fn decode(name: &str, bytes: &[u8]) -> Result<Self, String> {
        let entry: HoldEntry = ledger::decode_json(bytes)?;
        match (entry.action, &entry.select) {
            (HoldAction::Place, None) => return Err("a place entry without a selector".into()),
            (HoldAction::Place, Some(s)) if s.is_empty() => {
                return Err("a place entry whose selector is empty".into());
            }
            (HoldAction::Place, _) if name.strip_suffix(".json") != Some(entry.hold.as_str()) => {
                return Err(format!("names hold {} but is stored as {name}", entry.hold));
            }
            _ => {}
        }
        Ok(entry)
    }
}

/// A hold in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub id: String,
    pub case: String,
    pub reason: String,
    pub by: String,
    pub placed_at_us: u64,
    pub select: Selector,
}

impl Hold {
    /// `hold <id> (case …)`, for messages.
    pub fn label(&self) -> String {
        format!("hold {} (case {})", self.id, self.case)
    }
}

/// Why holds could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum HoldsError {
    #[error("holds ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error(
        "{count} legal-hold entr(y/ies) cannot be read ({first}); refusing to delete anything until they are fixed"
    )]
    Unreadable { count: usize, first: String },
    #[error("a hold must name what it holds (--session, --user, --namespace, --since/--until)")]
    EmptySelector,
    #[error("a hold needs a case id and a reason")]
    MissingCase,
    #[error("no hold in force is named {0:?} (`kubetape hold ls` lists them)")]
    NoSuchHold(String),
}

/// The holds ledger of `store`.
pub fn ledger(store: &Store) -> Ledger {
    Ledger::new(store.clone(), layout::HOLDS)
}

/// Places a hold; returns it.
pub async fn place(
    store: &Store,
    case: &str,
    reason: &str,
    by: &str,
    select: Selector,
) -> Result<Hold, HoldsError> {
    if select.is_empty() {
        return Err(HoldsError::EmptySelector);
    }
    if case.trim().is_empty() || reason.trim().is_empty() {
        return Err(HoldsError::MissingCase);
    }
    let id = ledger::new_name();
    let entry = HoldEntry {
        action: HoldAction::Place,
        hold: id.clone(),
        case: case.to_string(),
        reason: reason.to_string(),
        by: by.to_string(),
        at_us: unix_micros_now(),
        select: Some(select.clone()),
    };
    ledger(store).append(&format!("{id}.json"), &entry).await?;
    Ok(Hold {
        id,
        case: entry.case,
        reason: entry.reason,
        by: entry.by,
        placed_at_us: entry.at_us,
        select,
    })
}

/// Lifts the hold in force whose id is `hold` (or ends with it: holds are UUIDv7 too, and
/// their short form is the tail). Returns the lifted hold.
pub async fn lift(store: &Store, hold: &str, reason: &str, by: &str) -> Result<Hold, HoldsError> {
    if reason.trim().is_empty() {
        return Err(HoldsError::MissingCase);
    }
    let holds = Holds::load(store).await?;
    let wanted = hold.trim().to_ascii_lowercase();
    let found: Vec<&Hold> = holds
        .active
        .iter()
        .filter(|h| h.id == wanted || (wanted.len() >= 4 && h.id.ends_with(&wanted)))
        .collect();
    let [held] = found.as_slice() else {
        return Err(HoldsError::NoSuchHold(hold.to_string()));
    };
    let entry = HoldEntry {
        action: HoldAction::Lift,
        hold: held.id.clone(),
        case: held.case.clone(),
        reason: reason.to_string(),
        by: by.to_string(),
        at_us: unix_micros_now(),
        select: None,
    };
    ledger(store)
        .append(&format!("{}.json", ledger::new_name()), &entry)
        .await?;
    Ok((*held).clone())
}

/// The holds in force in a store.
#[derive(Debug, Clone, Default)]
pub struct Holds {
    pub active: Vec<Hold>,
}

impl Holds {
    /// Reads the whole ledger (it is small: one entry per place or lift). Fails, rather than
    /// leaving a hold out, when an entry cannot be read.
    pub async fn load(store: &Store) -> Result<Self, HoldsError> {
        let mut entries = Vec::new();
        let mut bad = Vec::new();
        for (_, entry) in ledger(store).read_after::<HoldEntry>(None).await? {
            match entry {
                Ok(e) => entries.push(e),
                Err(e) => bad.push(e.to_string()),
            }
        }
        if let Some(first) = bad.first() {
            return Err(HoldsError::Unreadable {
                count: bad.len(),
                first: first.clone(),
            });
        }
        Ok(Self::from_entries(&entries))
    }

    /// The holds in force after `entries` (in ledger order: the newest entry per hold decides).
    pub fn from_entries(entries: &[HoldEntry]) -> Self {
        let mut active: Vec<Hold> = Vec::new();
        for e in entries {
            match (e.action, &e.select) {
                (HoldAction::Place, Some(select)) => {
                    active.retain(|h| h.id != e.hold);
                    active.push(Hold {
                        id: e.hold.clone(),
                        case: e.case.clone(),
                        reason: e.reason.clone(),
                        by: e.by.clone(),
                        placed_at_us: e.at_us,
                        select: select.clone(),
                    });
                }
                (HoldAction::Lift, _) => active.retain(|h| h.id != e.hold),
                (HoldAction::Place, None) => {}
            }
        }
        Self { active }
    }

    /// The first hold covering the stream `id` with metadata `meta`, if any.
    pub fn covering(&self, id: SessionId, meta: Option<&SessionMeta>) -> Option<&Hold> {
        self.active.iter().find(|h| h.select.matches(id, meta))
    }

    /// The hold covering an audit stream that ran from `start_us` to `end_us`: one that covers
    /// it directly, or one that covers a session in `held_sessions` (start, end, hold) whose
    /// time overlaps the stream's, since that stream may hold the session's audit records.
    pub fn covering_audit<'a>(
        &'a self,
        id: SessionId,
        meta: Option<&SessionMeta>,
        (start_us, end_us): (u64, u64),
        held_sessions: &'a [(u64, u64, Hold)],
    ) -> Option<&'a Hold> {
        self.covering(id, meta).or_else(|| {
            held_sessions
                .iter()
                .find(|(s, e, _)| *s <= end_us && start_us <= *e)
                .map(|(_, _, h)| h)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Identity, SessionKind, Target};

    fn meta(user: &str, ns: &str, started_at_us: u64) -> SessionMeta {
        let mut m = SessionMeta::new(
            SessionKind::Exec,
            Identity {
                user: user.into(),
                ..Identity::default()
            },
            Target {
                namespace: Some(ns.into()),
                pod: Some("p".into()),
                ..Target::default()
            },
            vec![],
            true,
        );
        m.started_at_us = started_at_us;
        m
    }

    #[test]
    fn globs() {
        assert!(glob("prod*", "prod-eu"));
        assert!(glob("*", ""));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("prod*", "staging"));
        assert!(!glob("prod", "prod-eu"));
        assert!(!glob("*-eu", "prod-us"));
        assert!(!glob("ab*ba", "aba"), "the ends may not overlap");
    }

    #[test]
    fn every_criterion_must_match() {
        let m = meta("alice", "prod-eu", 1_000);
        let sel = Selector {
            users: vec!["alice".into()],
            namespaces: vec!["prod*".into()],
            since_us: Some(500),
            until_us: Some(2_000),
            ..Selector::default()
        };
        assert!(sel.matches(m.session, Some(&m)));
        assert!(!sel.matches(m.session, Some(&meta("bob", "prod-eu", 1_000))));
        assert!(!sel.matches(m.session, Some(&meta("alice", "dev", 1_000))));
        assert!(!sel.matches(m.session, Some(&meta("alice", "prod-eu", 3_000))));
        let by_id = Selector {
            sessions: vec![m.session],
            ..Selector::default()
        };
        assert!(by_id.matches(m.session, None));
        assert!(!by_id.matches(SessionId::new(), None));
        assert!(
            sel.matches(SessionId::new(), None),
            "unreadable metadata may be held"
        );
    }

    #[test]
    fn the_newest_entry_per_hold_decides() {
        let place = |hold: &str| HoldEntry {
            action: HoldAction::Place,
            hold: hold.into(),
            case: "C-1".into(),
            reason: "r".into(),
            by: "t".into(),
            at_us: 1,
            select: Some(Selector {
                users: vec!["alice".into()],
                ..Selector::default()
            }),
        };
        let lift = |hold: &str| HoldEntry {
            action: HoldAction::Lift,
            select: None,
            ..place(hold)
        };
        let holds = Holds::from_entries(&[place("a"), place("b"), lift("a")]);
        let ids: Vec<&str> = holds.active.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["b"]);
    }

    #[tokio::test]
    async fn place_lift_and_an_unreadable_entry_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("file://{}", dir.path().display())).unwrap();
        let m = meta("alice", "prod", 10);
        let held = place(
            &store,
            "CASE-1",
            "litigation",
            "cli:t",
            Selector {
                sessions: vec![m.session],
                ..Selector::default()
            },
        )
        .await
        .unwrap();
        let holds = Holds::load(&store).await.unwrap();
        assert_eq!(holds.covering(m.session, Some(&m)).unwrap().id, held.id);
        assert!(matches!(
            place(&store, "C", "r", "t", Selector::default()).await,
            Err(HoldsError::EmptySelector)
        ));
        lift(&store, &held.id[held.id.len() - 8..], "settled", "cli:t")
            .await
            .unwrap();
        assert!(Holds::load(&store).await.unwrap().active.is_empty());
        assert!(matches!(
            lift(&store, &held.id, "again", "cli:t").await,
            Err(HoldsError::NoSuchHold(_))
        ));

        store
            .put_create(
                "holds/01930000-0000-7000-8000-000000000000.json",
                "{not json",
            )
            .await
            .unwrap();
        assert!(matches!(
            Holds::load(&store).await,
            Err(HoldsError::Unreadable { count: 1, .. })
        ));
    }
}
