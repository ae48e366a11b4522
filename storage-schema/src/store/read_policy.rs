//! The read policy: which namespaces' recordings may be read only with a stated reason
//! (`--reason`), so the chain-of-custody log (`reads/`) says why for those readings (PCI DSS
//! 10.2.1.3 asks for a record of every access to audit trails; an auditor will also ask why).
//!
//! The organisation sets it in the gateways' configuration (`[custody] reason_required`); a
//! gateway publishes it at start as an entry of a ledger (`policies/reads/<uuidv7>.json`), only
//! when it differs from the newest entry, and every `kubetape` reader follows the newest. It
//! lives in the store because readers have no gateway configuration, and as a ledger because
//! nothing in the store is modified in place: the entries also say who set which policy when.
//!
//! Like the reads log it is enforced by the reader's tool: a reader holding the keyring could
//! decrypt a recording without kubetape. What it guarantees is that no reading *through
//! kubetape* of such a recording happens without a reason in the log.

use serde::{Deserialize, Serialize};

use super::Store;
use super::holds::glob;
use super::ledger::{self, Ledger, LedgerError};
use crate::layout;

/// One entry of the read-policy ledger: the whole policy as of `at_us`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReadPolicy {
    /// Namespace patterns (`*` matches any run of characters) whose recordings need a reason.
    #[serde(default)]
    pub reason_required: Vec<String>,
    /// Who published it (`gateway:<instance>`).
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub at_us: u64,
}

impl ReadPolicy {
    /// The pattern that makes reading a recording in `namespace` need a reason, if any.
    pub fn requires_reason(&self, namespace: &str) -> Option<&str> {
        self.reason_required
            .iter()
            .find(|p| glob(p, namespace))
            .map(String::as_str)
    }

    /// Whether two policies say the same (who and when aside).
    pub fn same_rules(&self, other: &ReadPolicy) -> bool {
        self.reason_required == other.reason_required
    }
}

impl ledger::Entry for ReadPolicy {
    fn is_entry(name: &str) -> bool {
        !name.contains('/') && name.ends_with(".json")
    }

    fn decode(_name: &str, bytes: &[u8]) -> Result<Self, String> {
        let policy: ReadPolicy = ledger::decode_json(bytes)?;
        if policy.reason_required.iter().any(|p| p.trim().is_empty()) {
            return Err("an empty namespace pattern".into());
        }
        Ok(policy)
    }
}

fn ledger_of(store: &Store) -> Ledger {
    Ledger::new(store.clone(), layout::READ_POLICY)
}

/// The policy in force: the newest entry (none: no reason is required). An entry that cannot
/// be read is an error, not an absent policy: the policy fails closed.
pub async fn current(store: &Store) -> Result<Option<ReadPolicy>, LedgerError> {
    let ledger = ledger_of(store);
    let names = ledger.list_after(None).await?;
    let Some(newest) = names
        .iter()
        .rev()
        .find(|n| <ReadPolicy as ledger::Entry>::is_entry(n))
    else {
        return Ok(None);
    };
    ledger.get::<ReadPolicy>(newest).await
}

/// Publishes `policy` unless the newest entry already says the same; returns whether it wrote.
pub async fn publish(store: &Store, policy: &ReadPolicy) -> Result<bool, LedgerError> {
    let newest = current(store).await?;
    let unchanged = match &newest {
        Some(p) => p.same_rules(policy),
        None => policy.reason_required.is_empty(),
    };
    if unchanged {
        return Ok(false);
    }
    ledger_of(store)
        .append(&format!("{}.json", ledger::new_name()), policy)
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patterns: &[&str]) -> ReadPolicy {
        ReadPolicy {
            reason_required: patterns.iter().map(|p| p.to_string()).collect(),
            by: "gateway:test".into(),
            at_us: 1,
        }
    }

    #[test]
    fn patterns_match_namespaces() {
        let p = policy(&["prod*", "payments"]);
        assert_eq!(p.requires_reason("prod"), Some("prod*"));
        assert_eq!(p.requires_reason("prod-eu"), Some("prod*"));
        assert_eq!(p.requires_reason("payments"), Some("payments"));
        assert_eq!(p.requires_reason("payments-dev"), None);
        assert_eq!(p.requires_reason("default"), None);
    }

    #[tokio::test]
    async fn the_newest_entry_rules_and_an_unchanged_policy_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("file://{}", dir.path().display())).unwrap();
        assert_eq!(current(&store).await.unwrap(), None);
        // An empty policy on an empty ledger says nothing new.
        assert!(!publish(&store, &policy(&[])).await.unwrap());
        assert!(publish(&store, &policy(&["prod*"])).await.unwrap());
        assert!(!publish(&store, &policy(&["prod*"])).await.unwrap());
        assert_eq!(
            current(&store).await.unwrap().unwrap().reason_required,
            ["prod*"]
        );
        // Lifting it is a new entry too: the newest rules.
        assert!(publish(&store, &policy(&[])).await.unwrap());
        assert_eq!(
            current(&store)
                .await
                .unwrap()
                .unwrap()
                .requires_reason("prod"),
            None
        );
        assert_eq!(ledger_of(&store).list_after(None).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_unreadable_newest_entry_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("file://{}", dir.path().display())).unwrap();
        publish(&store, &policy(&["prod*"])).await.unwrap();
        let key = format!("{}/{}.json", layout::READ_POLICY, ledger::new_name());
        store.put_create(&key, b"{not json".to_vec()).await.unwrap();
        assert!(current(&store).await.is_err());
    }
}
