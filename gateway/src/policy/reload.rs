//! Reloading the policy file without a restart. The file is re-read about once a second and
//! swapped in only if it validates; a bad edit keeps the last good policy serving and logs
//! (once per distinct bad content) exactly why, so a typo never opens or closes the gates.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::file::{Policy, PolicyError};

/// How often the policy file is checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The current policy, shared by all requests, and where it comes from.
#[derive(Debug)]
pub struct PolicyWatch {
    path: PathBuf,
    current: RwLock<Arc<Policy>>,
    /// The file content last looked at (good or bad), so unchanged files are not re-parsed and a
    /// bad one is reported once.
    last_seen: RwLock<Vec<u8>>,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Applied,
    /// The file changed but is not valid; the previous policy stays.
    Rejected(PolicyError),
}

// === impl PolicyWatch ===

impl PolicyWatch {
    /// Loads the policy; a bad file at startup is an error (there is no last good one).
    pub fn load(path: &Path) -> Result<PolicyWatch, PolicyError> {
        let bytes = read(path)?;
        let policy = parse(path, &bytes)?;
        Ok(PolicyWatch {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(policy)),
            last_seen: RwLock::new(bytes),
        })
    }

    /// A fixed policy that is never reloaded (tests, embedding).
    pub fn fixed(policy: Policy) -> PolicyWatch {
        PolicyWatch {
            path: PathBuf::new(),
            current: RwLock::new(Arc::new(policy)),
            last_seen: RwLock::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the file and applies it if it changed and validates.
    pub fn reload(&self) -> Reload {
        if self.path.as_os_str().is_empty() {
            return Reload::Unchanged;
        }
        let bytes = match read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                // A missing or unreadable file (mid-rename, say) is not a new policy.
                let mut seen = self
                    .last_seen
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !seen.is_empty() {
                    seen.clear();
                    return Reload::Rejected(e);
                }
                return Reload::Unchanged;
            }
        };
        {
            let mut seen = self
                .last_seen
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *seen == bytes {
                return Reload::Unchanged;
            }
            seen.clone_from(&bytes);
        }
        match parse(&self.path, &bytes) {
            Ok(policy) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(policy);
                Reload::Applied
            }
            Err(e) => Reload::Rejected(e),
        }
    }

    /// Polls the file every [`POLL_INTERVAL`] until the task is dropped, logging each outcome.
    pub fn spawn_polling(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let watch = self.clone();
                let outcome = tokio::task::spawn_blocking(move || watch.reload())
                    .await
                    .unwrap_or(Reload::Unchanged);
                match outcome {
                    Reload::Unchanged => {}
                    Reload::Applied => {
                        tracing::info!(path = %self.path.display(), "policy reloaded");
                    }
                    Reload::Rejected(e) => {
                        tracing::error!(path = %self.path.display(), error = %e, "policy file rejected; the previous policy stays in force");
                    }
                }
            }
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PolicyError> {
    std::fs::read(path).map_err(|e| PolicyError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Policy, PolicyError> {
    let origin = path.display().to_string();
    let text = std::str::from_utf8(bytes).map_err(|_| PolicyError::Syntax {
        origin: origin.clone(),
        message: "not UTF-8".into(),
    })?;
    Policy::from_toml(text, &origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "[[roles]]\nname = \"a\"\n[[roles.rules]]\nnamespaces = [\"x\"]\nresources = [\"pods\"]\nverbs = [\"get\"]\n";
    const V2: &str = "[[roles]]\nname = \"b\"\n[[roles.rules]]\nnamespaces = [\"x\"]\nresources = [\"pods\"]\nverbs = [\"get\"]\n";

    #[test]
    fn a_bad_file_keeps_the_last_good_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, V1).unwrap();
        let watch = PolicyWatch::load(&path).unwrap();
        assert_eq!(watch.reload(), Reload::Unchanged);
        assert!(watch.current().role("a").is_some());

        std::fs::write(&path, V1.replace("\"get\"", "\"exec\"")).unwrap();
        let Reload::Rejected(e) = watch.reload() else {
            panic!("accepted a bad file")
        };
        assert!(
            e.to_string()
                .contains("role \"a\" rule 1: unknown verb \"exec\""),
            "{e}"
        );
        assert!(
            watch.current().role("a").is_some(),
            "the last good policy stays"
        );
        // Reported once, not every poll.
        assert_eq!(watch.reload(), Reload::Unchanged);

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            watch.reload(),
            Reload::Rejected(PolicyError::Read { .. })
        ));
        assert!(watch.current().role("a").is_some());

        std::fs::write(&path, V2).unwrap();
        assert_eq!(watch.reload(), Reload::Applied);
        assert!(watch.current().role("a").is_none());
        assert!(watch.current().role("b").is_some());
    }

    #[test]
    fn a_bad_file_at_startup_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "[[roles]]\nname = 1\n").unwrap();
        assert!(matches!(
            PolicyWatch::load(&path),
            Err(PolicyError::Syntax { .. })
        ));
        assert!(matches!(
            PolicyWatch::load(&dir.path().join("missing.toml")),
            Err(PolicyError::Read { .. })
        ));
    }
}
