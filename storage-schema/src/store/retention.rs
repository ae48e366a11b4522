//! What retention leaves in the store: the record of each enforcement pass, and deleting a
//! stream whole. The rules (which sessions, how long) are the gateway's configuration; this
//! module is what any reader of the store (a report, an auditor) needs to know what was deleted.
//!
//! ```text
//! retention/<pass uuidv7>/plan.json    {"pass","runner","planned_at_us",
//!                                       "delete":[{"session","root","rule","ended_at_us",
//!                                                  "expired_at_us","sealed_at_us"}],
//!                                       "kept":[{"session","why"}]}
//! retention/<pass uuidv7>/result.json  {"pass","finished_at_us","deleted":[…same items…],
//!                                       "failed":[{"session","why"}]}
//! ```
//! The plan is written (create-only) *before* anything is deleted, so a pass that dies midway
//! leaves in the store what it was doing; a later pass that finds a stream half deleted finds
//! it in an earlier plan and finishes it, instead of reporting it as damaged
//! ([`planned_deletions`]). The result is written after. Each deletion is also an audit record
//! (the gateway writes it).
//!
//! **Deleting a stream** ([`delete_stream`]) removes its `ended/` marker, seal, commands,
//! chunks (last first), data keys, and its metadata last: until the metadata goes, the stream
//! is still listed, so an interrupted deletion is seen and finished by the next pass.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ledger::{self, Ledger, LedgerError};
use super::{Store, StoreError};
use crate::layout::{self, StreamDir, StreamRoot};
use crate::session::SessionId;

/// One stream a pass deletes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub session: SessionId,
    /// `sessions` or `audit`.
    pub root: String,
    /// The rule that expired it.
    pub rule: String,
    /// When the stream ended (start + duration, from its verified seal), µs.
    pub ended_at_us: u64,
    /// When its retention ran out, µs.
    pub expired_at_us: u64,
    /// When it was sealed (its `ended/` marker's day), µs.
    #[serde(default)]
    pub sealed_at_us: u64,
}

impl Deletion {
    /// Where the stream lies.
    pub fn dir(&self) -> StreamDir {
        let root = if self.root == layout::AUDIT {
            StreamRoot::Audit
        } else {
            StreamRoot::Sessions
        };
        StreamDir::new(root, self.session)
    }
}

/// A stream a pass kept although its retention ran out, and why (held, damaged, unsealed…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub session: SessionId,
    pub why: String,
}

/// `retention/<pass>/plan.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassPlan {
    pub pass: String,
    /// Who ran it: a gateway instance, or `cli:<login>`.
    pub runner: String,
    pub planned_at_us: u64,
    pub delete: Vec<Deletion>,
    /// Expired streams kept: held, damaged, unreadable or unsealed (reported, never deleted).
    #[serde(default)]
    pub kept: Vec<Kept>,
}

/// `retention/<pass>/result.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassResult {
    pub pass: String,
    pub finished_at_us: u64,
    pub deleted: Vec<Deletion>,
    #[serde(default)]
    pub failed: Vec<Kept>,
}

/// Either record of a pass, as the ledger holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassRecord {
    Plan(PassPlan),
    Result(PassResult),
}

impl ledger::Entry for PassRecord {
    fn is_entry(name: &str) -> bool {
        matches!(
            name.split_once('/'),
            Some((
                _,
                layout::RETENTION_PLAN_FILE | layout::RETENTION_RESULT_FILE
            ))
        )
    }

    fn decode(name: &str, bytes: &[u8]) -> Result<Self, String> {
        let (pass, file) = name.split_once('/').ok_or("not a pass record name")?;
        let record = match file {
            layout::RETENTION_PLAN_FILE => PassRecord::Plan(ledger::decode_json(bytes)?),
            layout::RETENTION_RESULT_FILE => PassRecord::Result(ledger::decode_json(bytes)?),
            _ => return Err("not a pass record name".into()),
        };
        let named = match &record {
            PassRecord::Plan(p) => &p.pass,
            PassRecord::Result(r) => &r.pass,
        };
        if named != pass {
            return Err(format!("names pass {named} but is stored under {pass}"));
        }
        Ok(record)
    }
}

/// The retention ledger of `store`.
pub fn ledger(store: &Store) -> Ledger {
    Ledger::new(store.clone(), layout::RETENTION)
}

pub async fn write_plan(store: &Store, plan: &PassPlan) -> Result<(), LedgerError> {
    ledger(store)
        .append(&layout::retention_plan(&plan.pass), plan)
        .await
}

pub async fn write_result(store: &Store, result: &PassResult) -> Result<(), LedgerError> {
    ledger(store)
        .append(&layout::retention_result(&result.pass), result)
        .await
}

/// Every pass, by pass id: its plan and result when present. Records that do not decode are
/// returned apart.
pub async fn passes(
    store: &Store,
) -> Result<
    (
        BTreeMap<String, (Option<PassPlan>, Option<PassResult>)>,
        Vec<String>,
    ),
    LedgerError,
> {
    let mut out: BTreeMap<String, (Option<PassPlan>, Option<PassResult>)> = BTreeMap::new();
    let mut bad = Vec::new();
    for (_, record) in ledger(store).read_after::<PassRecord>(None).await? {
        match record {
            Ok(PassRecord::Plan(p)) => {
                let pass = p.pass.clone();
                out.entry(pass).or_default().0 = Some(p);
            }
            Ok(PassRecord::Result(r)) => {
                let pass = r.pass.clone();
                out.entry(pass).or_default().1 = Some(r);
            }
            Err(e) => bad.push(e.to_string()),
        }
    }
    Ok((out, bad))
}

/// Streams some pass planned to delete (the newest plan naming each): a stream found half
/// deleted is one of these, and is finished rather than reported as damaged.
pub async fn planned_deletions(
    store: &Store,
) -> Result<BTreeMap<SessionId, Deletion>, LedgerError> {
    let (passes, _) = passes(store).await?;
    let mut out = BTreeMap::new();
    for (plan, _) in passes.into_values() {
        for d in plan.into_iter().flat_map(|p| p.delete) {
            out.insert(d.session, d);
        }
    }
    Ok(out)
}

/// Sessions every pass deleted (from the results), for readers that must forget them (the
/// search index).
pub async fn deleted_sessions(store: &Store) -> Result<Vec<SessionId>, LedgerError> {
    let (passes, _) = passes(store).await?;
    Ok(passes
        .into_values()
        .flat_map(|(_, r)| r.into_iter().flat_map(|r| r.deleted))
        .map(|d| d.session)
        .collect())
}

/// Deletes every object of the stream in `dir` (see the module notes for the order), and its
/// `ended/` markers on the days given (the seal's day; a marker on another day is harmless:
/// readers of markers skip streams that are gone). Returns how many objects were deleted.
pub async fn delete_stream(
    store: &Store,
    dir: StreamDir,
    marker_days: &[String],
) -> Result<usize, StoreError> {
    let mut deleted = 0;
    for day in marker_days {
        let marker = layout::ended(day, dir.id());
        if store.exists(&marker).await? {
            store.delete(&marker).await?;
            deleted += 1;
        }
    }
    let mut names: Vec<String> = store
        .list(&dir.dir())
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    names.sort_by_key(|name| deletion_rank(name));
    for name in names {
        store.delete(&format!("{}/{name}", dir.dir())).await?;
        deleted += 1;
    }
    store.prune_dir(&dir.dir())?;
    Ok(deleted)
}

/// Order of deletion within a stream: what proves the stream ended first, its metadata last;
/// chunks from the end, so a half-deleted stream is a truncated one.
fn deletion_rank(name: &str) -> (u8, std::cmp::Reverse<u64>) {
    let class = match name {
        "seal.json" => 0,
        "commands" => 1,
        _ if name.starts_with("chunks/") => 2,
        _ if layout::is_dek_name(name) => 3,
        "meta.json" => 5,
        _ => 4,
    };
    let seq = name
        .strip_prefix("chunks/")
        .and_then(layout::parse_chunk_name)
        .unwrap_or(0);
    (class, std::cmp::Reverse(seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_goes_last_chunks_from_the_end() {
        let mut names = vec![
            "meta.json".to_string(),
            "dek.json".into(),
            "chunks/00000000000000000000".into(),
            "chunks/00000000000000000001".into(),
            "seal.json".into(),
            "commands".into(),
        ];
        names.sort_by_key(|n| deletion_rank(n));
        assert_eq!(
            names,
            [
                "seal.json",
                "commands",
                "chunks/00000000000000000001",
                "chunks/00000000000000000000",
                "dek.json",
                "meta.json"
            ]
        );
    }

    #[tokio::test]
    async fn pass_records_round_trip_and_a_plan_names_its_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("file://{}", dir.path().display())).unwrap();
        let d = Deletion {
            session: SessionId::new(),
            root: "sessions".into(),
            rule: "short".into(),
            ended_at_us: 1,
            expired_at_us: 2,
            sealed_at_us: 1,
        };
        let plan = PassPlan {
            pass: ledger::new_name(),
            runner: "t".into(),
            planned_at_us: 3,
            delete: vec![d.clone()],
            kept: vec![],
        };
        write_plan(&store, &plan).await.unwrap();
        assert!(matches!(
            write_plan(&store, &plan).await,
            Err(LedgerError::AlreadyExists { .. })
        ));
        assert_eq!(planned_deletions(&store).await.unwrap()[&d.session], d);
        assert!(deleted_sessions(&store).await.unwrap().is_empty());
        write_result(
            &store,
            &PassResult {
                pass: plan.pass.clone(),
                finished_at_us: 4,
                deleted: vec![d.clone()],
                failed: vec![],
            },
        )
        .await
        .unwrap();
        assert_eq!(deleted_sessions(&store).await.unwrap(), [d.session]);
        store
            .put_create(
                &format!("retention/{}/plan.json", ledger::new_name()),
                serde_json::to_vec(&plan).unwrap(),
            )
            .await
            .unwrap();
        let (_, bad) = passes(&store).await.unwrap();
        assert_eq!(bad.len(), 1, "a plan stored under another pass's name");
    }
}
