//! One retention pass: plan (what expired, what is kept and why), then — holding the lease —
//! write the plan, delete, audit each deletion, write the result.
//!
//! **Planning reads little**: a stream's id is a UUIDv7, so streams younger than the shortest
//! rule are skipped unread; the others' metadata is read (one request each), and only streams
//! whose metadata says they may have expired are verified (with the public key: signatures,
//! chain and seal, no decryption), because the verified seal is what says when a stream ended.
//!
//! **Never silently**: a stream that is damaged, unreadable or not sealed is never deleted — it
//! is kept, listed in the plan's `kept`, logged as an error and written to the audit log —
//! unless an earlier pass's plan named it, in which case it is a deletion that was interrupted
//! midway and is finished. A held stream is kept (and listed) whatever its age.

use std::collections::BTreeMap;

use futures::StreamExt as _;
use storage_schema::layout::{self, StreamDir};
use storage_schema::store::holds::{Hold, Holds, HoldsError};
use storage_schema::store::ledger::{self, LedgerError};
use storage_schema::store::retention::{
    self, Deletion, Kept, PassPlan, PassResult, planned_deletions,
};
use storage_schema::store::{KeySource, Store, StoreError, list_streams, verify_stream};
use storage_schema::time::format_unix_micros;
use storage_schema::{
    AuditRecord, Keyring, SealPayload, SessionId, SessionMeta, SessionState, StreamClass,
};

use super::lease::Lease;
use super::rules::{DAY_US, Rules};

/// Streams read at once while planning.
const CONCURRENCY: usize = 16;

/// Why a pass could not run.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Holds(#[from] HoldsError),
    #[error("retention ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where audit records of a pass go (the gateway's audit log).
pub trait AuditSink {
    fn emit(&self, record: &AuditRecord) -> impl Future<Output = ()>;
}

impl AuditSink for crate::audit::AuditLog {
    async fn emit(&self, record: &AuditRecord) {
        // The pass's own ledger holds what it did either way; a lost audit record is the audit
        // log's to report (it counts and declares it), and is logged here too.
        if let Err(e) = crate::audit::AuditLog::emit(self, record).await {
            tracing::error!(error = %e, "a retention audit record could not be made durable");
        }
    }
}

/// What one stream is, as far as planning is concerned.
struct Seen {
    dir: StreamDir,
    meta: Option<SessionMeta>,
}

/// Decides what a pass at `now_us` would delete and what it keeps (nothing is written).
pub async fn plan(
    store: &Store,
    keyring: &Keyring,
    rules: &Rules,
    runner: &str,
    now_us: u64,
) -> Result<PassPlan, PassError> {
    let holds = Holds::load(store).await?;
    let earlier = planned_deletions(store).await?;
    let mut plan = PassPlan {
        pass: ledger::new_name(),
        runner: runner.to_string(),
        planned_at_us: now_us,
        delete: Vec::new(),
        kept: Vec::new(),
    };
    let Some(shortest) = rules.shortest_us() else {
        return Ok(plan);
    };
    let cutoff = now_us.saturating_sub(shortest);
    let old: Vec<StreamDir> = list_streams(store)
        .await?
        .into_iter()
        .filter(|d| {
            d.id().created_at_us().is_none_or(|t| t < cutoff) || earlier.contains_key(&d.id())
        })
        .collect();
    let seen: Vec<Result<Seen, StoreError>> =
        futures::stream::iter(old.into_iter().map(|dir| async move {
            let meta = store
                .get_opt(&dir.meta())
                .await?
                .and_then(|b| serde_json::from_slice::<SessionMeta>(&b).ok());
            Ok(Seen { dir, meta })
        }))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let seen: Vec<Seen> = seen.into_iter().collect::<Result<_, _>>()?;

    // Held sessions' spans: an audit stream that overlaps one is evidence of it.
    let mut held_sessions: Vec<(u64, u64, Hold)> = Vec::new();
    for s in &seen {
        if let Some(meta) = &s.meta
            && matches!(
                meta.class(),
                StreamClass::Session | StreamClass::PortForward
            )
            && let Some(hold) = holds.covering(s.dir.id(), Some(meta))
        {
            let end = sealed_end(store, keyring, s.dir, meta)
                .await
                .unwrap_or(u64::MAX);
            held_sessions.push((meta.started_at_us, end, hold.clone()));
        }
    }

    for s in seen {
        let id = s.dir.id();
        let Some(meta) = &s.meta else {
            match earlier.get(&id) {
                Some(d) => plan.delete.push(resumed(d, s.dir)),
                None => plan.kept.push(kept(
                    id,
                    "metadata missing or unreadable: not deleted (run `kubetape verify`)",
                )),
            }
            continue;
        };
        let Some(keep) = rules.keep_for(meta) else {
            continue;
        };
        let keep_us = u64::from(keep.days) * DAY_US;
        if meta.started_at_us.saturating_add(keep_us) > now_us && !earlier.contains_key(&id) {
            continue;
        }
        let report = match keyring.public_key(&meta.keys.signing) {
            Ok(public) => verify_stream(store, s.dir, KeySource::PublicKey(public)).await,
            Err(e) => {
                plan.kept
                    .push(kept(id, &format!("cannot be verified ({e}): not deleted")));
                continue;
            }
        };
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                plan.kept
                    .push(kept(id, &format!("cannot be verified ({e}): not deleted")));
                continue;
            }
        };
        if !report.intact() {
            match earlier.get(&id) {
                Some(d) => plan.delete.push(resumed(d, s.dir)),
                None => plan.kept.push(kept(
                    id,
                    &format!(
                        "damaged ({}): not deleted (run `kubetape verify {id}`)",
                        report
                            .damage
                            .first()
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    ),
                )),
            }
            continue;
        }
        let payload = match &report.state {
            SessionState::Sealed(p) | SessionState::Interrupted(p) => p,
            SessionState::Open => {
                plan.kept.push(kept(
                    id,
                    "not sealed (live, or its gateway died): not deleted",
                ));
                continue;
            }
        };
        let ended = meta.started_at_us.saturating_add(payload.duration_us);
        let expired_at = ended.saturating_add(keep_us);
        if expired_at > now_us {
            continue;
        }
        let hold = match meta.class() {
            StreamClass::Session | StreamClass::PortForward => holds.covering(id, Some(meta)),
            StreamClass::AuditStream => {
                holds.covering_audit(id, Some(meta), (meta.started_at_us, ended), &held_sessions)
            }
        };
        if let Some(hold) = hold {
            plan.kept.push(kept(
                id,
                &format!("expired, but under legal {}", hold.label()),
            ));
            continue;
        }
        plan.delete.push(Deletion {
            session: id,
            root: s.dir.root().prefix().to_string(),
            rule: keep.rule,
            ended_at_us: ended,
            expired_at_us: expired_at,
            sealed_at_us: payload.sealed_at_us,
        });
    }
    plan.delete.sort_by_key(|d| d.session);
    plan.kept.sort_by_key(|k| k.session);
    Ok(plan)
}

/// When a sealed session ended (start + duration, from its seal verified with the keyring's
/// public key), or `None` if that cannot be established.
async fn sealed_end(
    store: &Store,
    keyring: &Keyring,
    dir: StreamDir,
    meta: &SessionMeta,
) -> Option<u64> {
    let bytes = store.get_opt(&dir.seal()).await.ok()??;
    let public = keyring.public_key(&meta.keys.signing).ok()?;
    let payload = SealPayload::verify(&bytes, public).ok()?;
    Some(meta.started_at_us.saturating_add(payload.duration_us))
}

fn kept(session: SessionId, why: &str) -> Kept {
    Kept {
        session,
        why: why.to_string(),
    }
}

fn resumed(earlier: &Deletion, dir: StreamDir) -> Deletion {
    Deletion {
        root: dir.root().prefix().to_string(),
        ..earlier.clone()
    }
}

/// What [`execute`] did.
#[derive(Debug, Clone)]
pub struct Executed {
    pub result: PassResult,
    /// Deletions not attempted because the lease was running out (the next pass does them).
    pub postponed: usize,
}

/// Writes `plan`, deletes what it names while `lease` is valid (by `now`'s clock), writes an
/// audit record per deletion and per stream kept for damage, and writes the result.
pub async fn execute(
    store: &Store,
    plan: &PassPlan,
    lease: &Lease,
    now: impl Fn() -> u64,
    audit: &impl AuditSink,
    gateway: &str,
) -> Result<Executed, PassError> {
    retention::write_plan(store, plan).await?;
    for k in &plan.kept {
        if !k.why.contains("legal hold") {
            tracing::error!(session = %k.session, why = %k.why, "retention: an expired stream is kept and needs attention");
            audit.emit(&kept_record(gateway, &plan.pass, k)).await;
        }
    }
    let mut result = PassResult {
        pass: plan.pass.clone(),
        finished_at_us: 0,
        deleted: Vec::new(),
        failed: Vec::new(),
    };
    let mut postponed = 0;
    for d in &plan.delete {
        if !lease.valid_at(now()) {
            postponed += 1;
            result.failed.push(kept(
                d.session,
                "postponed: the pass's lease was running out",
            ));
            continue;
        }
        let days: Vec<String> = [d.sealed_at_us, d.ended_at_us]
            .iter()
            .filter(|t| **t > 0)
            .map(|t| layout::day_of(*t))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        match retention::delete_stream(store, d.dir(), &days).await {
            Ok(objects) => {
                tracing::info!(session = %d.session, rule = %d.rule, objects, "retention: deleted");
                audit.emit(&deletion_record(gateway, &plan.pass, d)).await;
                result.deleted.push(d.clone());
            }
            Err(e) => {
                tracing::error!(session = %d.session, error = %e, "retention: could not delete");
                result.failed.push(kept(d.session, &e.to_string()));
            }
        }
    }
    result.finished_at_us = now();
    retention::write_result(store, &result).await?;
    Ok(Executed { result, postponed })
}

fn record(gateway: &str, pass: &str, d: SessionId, root: &str) -> AuditRecord {
    serde_json::from_value(serde_json::json!({
        "time_us": storage_schema::time::unix_micros_now(),
        "gateway": gateway,
        "user": "kubetape-retention",
        "client": "-",
        "method": "DELETE",
        "path": format!("/{root}/{d}"),
        "verb": "retention",
        "decision": "allow",
        "status": 200,
        "latency_ms": 0.0,
        "session": d,
        "retention_pass": pass,
    }))
    .expect("a well-formed record")
}

/// The audit record of one deletion: what, by which rule, when it ended and expired.
pub fn deletion_record(gateway: &str, pass: &str, d: &Deletion) -> AuditRecord {
    let mut r = record(gateway, pass, d.session, &d.root);
    r.rule = Some(format!("retention:{}", d.rule));
    r.reason = Some(format!(
        "deleted by retention rule {:?}: ended {}, expired {}",
        d.rule,
        format_unix_micros(d.ended_at_us),
        format_unix_micros(d.expired_at_us)
    ));
    r
}

/// The audit record of an expired stream kept because it is damaged or unreadable.
pub fn kept_record(gateway: &str, pass: &str, k: &Kept) -> AuditRecord {
    let mut r = record(gateway, pass, k.session, "streams");
    r.method = "KEEP".into();
    r.decision = storage_schema::AuditDecision::Deny;
    r.status = 409;
    r.rule = Some("retention:kept".into());
    r.reason = Some(k.why.clone());
    r
}

/// Sessions by rule, for a summary.
pub fn by_rule(plan: &PassPlan) -> BTreeMap<&str, usize> {
    let mut out = BTreeMap::new();
    for d in &plan.delete {
        *out.entry(d.rule.as_str()).or_default() += 1;
    }
    out
}
