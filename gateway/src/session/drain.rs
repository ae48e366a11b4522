//! Graceful drain: at shutdown the gateway stops taking new sessions, tells every live one why it
//! ends, and waits for each to be sealed before it exits.
//!
//! A session holds a [`DrainGuard`] from the moment its recording is open until its seal is
//! written, so [`Drain::wait`] resolves exactly when no recording is left open. The signal to end
//! reaches sessions through the same [`Ends`](super::Ends) future that revocations and time
//! limits use, so a drained session ends the way every other session ends: one final Status to
//! the client, everything relayed flushed into the recording, then the seal.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// The drain state shared by the front door and every session.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Cancelled when the drain starts; sessions select on it.
    started: CancellationToken,
    /// Counts sessions whose recording is not sealed yet.
    open: TaskTracker,
}

/// Held by a session until its recording is sealed.
#[derive(Debug)]
pub struct DrainGuard {
    _token: TaskTrackerToken,
    started: CancellationToken,
}

impl Drain {
    /// Whether the drain has started: new sessions are refused from then on.
    pub fn is_draining(&self) -> bool {
        self.inner.started.is_cancelled()
    }

    /// Starts the drain: every live session is asked to end. Idempotent.
    pub fn start(&self) {
        self.inner.open.close();
        self.inner.started.cancel();
    }

    /// Resolves once the drain has started and every session's recording is sealed.
    pub async fn wait(&self) {
        self.inner.open.wait().await;
    }

    /// Sessions whose recording is still open.
    pub fn open_sessions(&self) -> usize {
        self.inner.open.len()
    }

    pub(crate) fn guard(&self) -> DrainGuard {
        DrainGuard {
            _token: self.inner.open.token(),
            started: self.inner.started.clone(),
        }
    }
}

impl DrainGuard {
    /// Resolves when the drain starts (at once if it already has). Cancel-safe.
    pub async fn started(&self) {
        self.started.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wait_resolves_only_after_the_drain_starts_and_every_guard_is_dropped() {
        let drain = Drain::default();
        let a = drain.guard();
        let b = drain.guard();
        assert_eq!(drain.open_sessions(), 2);
        // Not started: waiting never resolves, even with guards gone.
        let early = tokio::time::timeout(Duration::from_millis(20), drain.wait()).await;
        assert!(early.is_err());
        assert!(!drain.is_draining());
        drain.start();
        assert!(drain.is_draining());
        // Every guard learns it.
        tokio::time::timeout(Duration::from_secs(5), a.started())
            .await
            .expect("a guard sees the drain");
        drop(a);
        let still_open = tokio::time::timeout(Duration::from_millis(20), drain.wait()).await;
        assert!(still_open.is_err(), "one session is still open");
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), drain.wait())
            .await
            .expect("drained");
        // A guard taken after the start sees the drain at once.
        let late = drain.guard();
        tokio::time::timeout(Duration::from_secs(5), late.started())
            .await
            .expect("late guard sees the drain");
    }
}
