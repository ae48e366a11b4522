//! Debug requests the gateway allowed, kept until the attach that follows them, so that its
//! recording says what is being debugged: kubectl patches the pod (or creates one), waits for
//! the container to run, then attaches to it by name on a new connection.
//!
//! Kept in memory for [`TTL`], bounded to [`MAX`] entries (oldest dropped): an attach served by
//! another replica, or after a restart, is recorded as a plain attach.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use storage_schema::DebugInfo;

/// How long an allowed debug request waits for its attach (kubectl waits for the container to
/// start, pulling its image: minutes at most).
pub const TTL: Duration = Duration::from_secs(15 * 60);

/// Most debug requests remembered at once.
pub const MAX: usize = 10_000;

/// `(namespace, pod, container)`.
type Key = (String, String, String);

/// The allowed debug requests awaiting their attach.
#[derive(Debug, Default)]
pub struct Pending {
    entries: Mutex<HashMap<Key, (Instant, String, DebugInfo)>>,
}

impl Pending {
    /// Remembers that `user` was allowed to run `info` as `container` of `pod`.
    pub fn insert(&self, namespace: &str, pod: &str, container: &str, user: &str, info: DebugInfo) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (at, _, _)| now.duration_since(*at) < TTL);
        if entries.len() >= MAX
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (at, _, _))| *at)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
        entries.insert(
            (namespace.into(), pod.into(), container.into()),
            (now, user.into(), info),
        );
    }

    /// What `container` of `pod` was created to debug, if the debug request is known and was
    /// made by `user` (someone else attaching to a debug container is an ordinary attach).
    pub fn lookup(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        user: &str,
    ) -> Option<DebugInfo> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, who, info) = entries.get(&(namespace.into(), pod.into(), container.into()))?;
        (at.elapsed() < TTL && who == user).then(|| info.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_by_container_and_user_only() {
        let p = Pending::default();
        let info = DebugInfo {
            form: "ephemeral".into(),
            image: "busybox".into(),
            ..DebugInfo::default()
        };
        p.insert("default", "demo", "debugger-x", "alice", info.clone());
        assert_eq!(
            p.lookup("default", "demo", "debugger-x", "alice"),
            Some(info)
        );
        assert_eq!(p.lookup("default", "demo", "debugger-x", "bob"), None);
        assert_eq!(p.lookup("default", "demo", "shell", "alice"), None);
        assert_eq!(p.lookup("prod", "demo", "debugger-x", "alice"), None);
    }
}
