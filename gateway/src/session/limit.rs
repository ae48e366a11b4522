//! When a live session must end whatever its user does: the binding's `max_session`, or the
//! expiry of the JIT grant it was opened under, whichever comes first.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use crate::jit::Grant;

/// The end a policy puts on a session, and what its user is told then.
#[derive(Debug, Clone, Default)]
pub struct SessionLimit {
    end: Option<(tokio::time::Instant, String)>,
}

/// A future that resolves, with the message for the user, when the session must end.
pub(crate) type Stop = Pin<Box<dyn Future<Output = String> + Send>>;

impl SessionLimit {
    /// No end.
    pub fn none() -> SessionLimit {
        SessionLimit::default()
    }

    pub fn new(max_session: Option<Duration>, grant: Option<&Grant>) -> SessionLimit {
        let now = tokio::time::Instant::now();
        // Checked: an end past what the clock can represent is no end at all.
        let by_binding = max_session.and_then(|d| now.checked_add(d)).map(|at| {
            (
                at,
                format!(
                    "kubetape: this session reached the maximum session length of {} set by the access policy and was ended",
                    humantime::format_duration(at - now)
                ),
            )
        });
        let by_grant = grant.map(|g| {
            let left = g
                .expires_at()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            (
                now.checked_add(left).unwrap_or(now),
                format!(
                    "kubetape: grant {} (role {} in namespace {}) expired at {} and the session was ended; ask again with `kubetape request {} --namespace {} --reason TEXT --ttl 30m`",
                    g.id,
                    g.role,
                    g.namespace,
                    humantime::format_rfc3339_seconds(g.expires_at()),
                    g.role,
                    g.namespace,
                ),
            )
        });
        let end = match (by_binding, by_grant) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        SessionLimit { end }
    }

    /// Resolves with the message when the limit is reached; never without a limit.
    pub(crate) fn into_stop(self) -> Stop {
        Box::pin(async move {
            match self.end {
                Some((at, message)) => {
                    tokio::time::sleep_until(at).await;
                    message
                }
                None => std::future::pending().await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant_in(d: Duration) -> Grant {
        Grant {
            id: "g1".into(),
            role: "prod-debug".into(),
            namespace: "prod".into(),
            reason: "r".into(),
            approver: "sam".into(),
            granted_at_us: crate::jit::now_us(),
            expires_at_us: crate::jit::now_us() + u64::try_from(d.as_micros()).unwrap(),
        }
    }

    async fn ends_within(limit: SessionLimit, within: Duration) -> Option<String> {
        tokio::time::timeout(within, limit.into_stop()).await.ok()
    }

    #[tokio::test]
    async fn the_earlier_of_grant_expiry_and_max_session_ends_the_session() {
        let hour = Duration::from_secs(3600);
        let soon = Duration::from_millis(50);
        let by_grant = SessionLimit::new(Some(hour), Some(&grant_in(soon)));
        let message = ends_within(by_grant, Duration::from_secs(5)).await.unwrap();
        assert!(
            message.contains("grant g1 (role prod-debug in namespace prod) expired"),
            "{message}"
        );
        let by_binding = SessionLimit::new(Some(soon), Some(&grant_in(hour)));
        let message = ends_within(by_binding, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            message.contains("maximum session length of 50ms"),
            "{message}"
        );
        // An already expired grant ends the session at once.
        let expired = SessionLimit::new(None, Some(&grant_in(Duration::ZERO)));
        assert!(ends_within(expired, Duration::from_secs(5)).await.is_some());
        // No limit, no end; an absurd max_session is no limit either (and no overflow).
        let unlimited = SessionLimit::new(None, None);
        assert!(
            ends_within(unlimited, Duration::from_millis(100))
                .await
                .is_none()
        );
        let absurd = SessionLimit::new(Some(Duration::MAX), None);
        assert!(
            ends_within(absurd, Duration::from_millis(100))
                .await
                .is_none()
        );
    }
}
