//! When a live session must end whatever its user does: the binding's `max_session`, the
//! expiry of the JIT grant it was opened under, or the expiry of the identity token that opened
//! it (plus its issuer's grace), whichever comes first. A stream cannot be re-authenticated once
//! open — kubectl has no way to send a fresh token into it — so without the last bound a token
//! valid for minutes could hold a shell open for days.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use crate::authn::Identity;
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

    pub fn new(
        max_session: Option<Duration>,
        grant: Option<&Grant>,
        token: Option<&Identity>,
    ) -> SessionLimit {
        let now = tokio::time::Instant::now();
        let by_token = token.map(|id| {
            let ends = id.expires_at + id.session_grace;
            let left = ends.duration_since(SystemTime::now()).unwrap_or_default();
            (
                now.checked_add(left).unwrap_or(now),
                format!(
                    "kubetape: the identity token this session was opened with expired at {}; the session was ended (a running stream cannot take a new token: reconnect to continue)",
                    humantime::format_rfc3339_seconds(id.expires_at),
                ),
            )
        });
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
        let end = [by_binding, by_grant, by_token]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at);
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

    fn token_expiring_in(d: Duration, grace: Duration) -> Identity {
        Identity {
            user: "alice".into(),
            groups: vec![],
            issuer: "https://i".into(),
            claims: Default::default(),
            expires_at: SystemTime::now() + d,
            session_grace: grace,
        }
    }

    #[tokio::test]
    async fn a_session_ends_when_its_token_expires_plus_the_issuers_grace() {
        let hour = Duration::from_secs(3600);
        let soon = Duration::from_millis(50);
        let by_token = SessionLimit::new(
            Some(hour),
            Some(&grant_in(hour)),
            Some(&token_expiring_in(soon, Duration::ZERO)),
        );
        let message = ends_within(by_token, Duration::from_secs(5)).await.unwrap();
        assert!(
            message.contains("identity token this session was opened with expired"),
            "{message}"
        );
        // The grace postpones it.
        let graced = SessionLimit::new(None, None, Some(&token_expiring_in(soon, hour)));
        assert!(
            ends_within(graced, Duration::from_millis(200))
                .await
                .is_none()
        );
    }

    async fn ends_within(limit: SessionLimit, within: Duration) -> Option<String> {
        tokio::time::timeout(within, limit.into_stop()).await.ok()
    }

    #[tokio::test]
    async fn the_earlier_of_grant_expiry_and_max_session_ends_the_session() {
        let hour = Duration::from_secs(3600);
        let soon = Duration::from_millis(50);
        let by_grant = SessionLimit::new(Some(hour), Some(&grant_in(soon)), None);
        let message = ends_within(by_grant, Duration::from_secs(5)).await.unwrap();
        assert!(
            message.contains("grant g1 (role prod-debug in namespace prod) expired"),
            "{message}"
        );
        let by_binding = SessionLimit::new(Some(soon), Some(&grant_in(hour)), None);
        let message = ends_within(by_binding, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            message.contains("maximum session length of 50ms"),
            "{message}"
        );
        // An already expired grant ends the session at once.
        let expired = SessionLimit::new(None, Some(&grant_in(Duration::ZERO)), None);
        assert!(ends_within(expired, Duration::from_secs(5)).await.is_some());
        // No limit, no end; an absurd max_session is no limit either (and no overflow).
        let unlimited = SessionLimit::new(None, None, None);
        assert!(
            ends_within(unlimited, Duration::from_millis(100))
                .await
                .is_none()
        );
        let absurd = SessionLimit::new(Some(Duration::MAX), None, None);
        assert!(
            ends_within(absurd, Duration::from_millis(100))
                .await
                .is_none()
        );
    }
}
