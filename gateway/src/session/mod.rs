//! The life of every recorded stream, whatever its kind (exec/attach today; port-forward and
//! debug plug in the same way): one place that opens the recording, keeps the session known
//! while it is live, ends it when it must, and seals it.
//!
//! ```text
//! stream kind (relay::exec, …)            session (this module)
//! ─────────────────────────────           ─────────────────────────────────────────────────
//! parse, negotiate, dial the cluster ──►  Sessions::open: recording open (fail closed),
//!                                         live registration, revocation and drain re-check
//! 101 to the client                  ◄──  Session (or a refusal the client is told)
//! Session::spawn(relay)              ──►  task: relay.run(tape) until an end ─┐
//!                                         Ends: revocation · grant expiry ·   │
//!                                         max_session · drain · recorder stop ◄┘
//!                                         marker + exit event, seal, unregister
//! ```
//! A stream kind implements [`Relay`]: it pumps bytes between the client and the cluster,
//! records them through the [`Tape`], and when [`Ends::wait`] resolves it tells its client why
//! in its own protocol (exec: a Status on the error channel) and returns its [`Ending`]. The
//! session does everything else, so every kind gets the same guarantees:
//! - **fail closed**: no recording, no stream ([`Sessions::open`] fails before any upgrade);
//! - **exactly one end**: the relay returns one [`Ending`], which becomes the recording's exit
//!   event and its seal;
//! - **ended from outside** by revocation, grant expiry, `max_session`, a failed recorder or a
//!   drain, each with a reason the client sees and the recording keeps as a marker;
//! - **drain**: a session holds a [`DrainGuard`] until its seal is written, so shutdown waits
//!   for every recording to be sealed ([`drain`]).

pub mod drain;
pub mod lag;
pub mod limit;

use std::future::Future;
use std::sync::Arc;

use storage_schema::commands::CommandObserver;
use storage_schema::store::{Durability, RecordError, Recorder, RecorderOptions, Store};
use storage_schema::{
    EventKind, ExitInfo, FlushPolicy, Keyring, SessionId, SessionKind, SessionMeta,
};
use tracing::Instrument as _;

use crate::background::Background;
use crate::lease::Leases;
use crate::limits::ConnectionPermit;
use crate::live::{LiveSession, LiveSessions};
use crate::ops::metrics::{KindLabel, Metrics};
use crate::revocation::{Check, Revocations};
use crate::status::{self, Body};

pub use self::drain::{Drain, DrainGuard};
pub use self::limit::SessionLimit;

/// What kubectl prints when the gateway ends a session to shut down.
pub const DRAIN_MESSAGE: &str = "kubetape: the gateway is shutting down; the session was ended and its recording sealed (reconnect to continue)";

/// The parts every session needs, shared by all of them.
pub struct Sessions {
    store: Store,
    keyring: Arc<Keyring>,
    flush: FlushPolicy,
    /// Where recorders run: below the relay's priority (see [`crate::background`]).
    runtime: Background,
    live: LiveSessions,
    revocations: Arc<Revocations>,
    drain: Drain,
    metrics: Arc<Metrics>,
    /// This gateway's liveness lease: a session is named in a heartbeat before it relays, so
    /// a replica can seal it if this gateway dies (none in unit tests).
    leases: Option<Arc<Leases>>,
    /// How recordings get through a store outage (spool, failure policy).
    durability: Durability,
    /// The live sessions' recorders, for the recording-lag gauge.
    lags: lag::Lags,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("store", &self.store)
            .field("open", &self.drain.open_sessions())
            .field("draining", &self.drain.is_draining())
            .finish_non_exhaustive()
    }
}

/// What [`Sessions`] is built from.
#[derive(Debug)]
pub struct SessionParts {
    pub store: Store,
    pub keyring: Arc<Keyring>,
    pub flush: FlushPolicy,
    /// Where recorders run: below the relay's priority (see [`crate::background`]).
    pub runtime: Background,
    pub live: LiveSessions,
    pub revocations: Arc<Revocations>,
    pub metrics: Arc<Metrics>,
    /// This gateway's liveness lease (none in unit tests).
    pub leases: Option<Arc<Leases>>,
}

/// What a stream kind asks to open.
#[derive(Debug)]
pub struct Opening {
    pub meta: SessionMeta,
    pub limit: SessionLimit,
    /// Terminal streams have their typed commands extracted (what `kubetape search` finds).
    pub extract_commands: bool,
    /// The client connection's share of the connection caps, held while the session lives.
    pub connection: Option<ConnectionPermit>,
}

/// Why a session was not opened; the client gets [`OpenError::response`] instead of an upgrade.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the recording could not be opened: {0}")]
    Recording(#[source] RecordError),
    #[error("{0}")]
    Revoked(String),
    #[error("the gateway is shutting down")]
    Draining,
}

impl OpenError {
    /// The refusal the client is told, as a Kubernetes Status kubectl prints.
    pub fn response(&self) -> http::Response<Body> {
        match self {
            OpenError::Recording(e) => status::unavailable(format!(
                "kubetape: this session cannot be recorded ({e}); refusing to open an unrecorded stream"
            )),
            OpenError::Revoked(message) => status::forbidden(message.clone()),
            OpenError::Draining => status::unavailable(
                "kubetape: the gateway is shutting down and takes no new sessions; try again (another replica will serve it)",
            ),
        }
    }
}

/// Counts a session as live, by kind, for as long as it is held.
#[derive(Debug)]
struct LiveGauge(prometheus_client::metrics::gauge::Gauge);

impl LiveGauge {
    fn new(metrics: &Metrics, kind: SessionKind) -> Self {
        let label = KindLabel {
            kind: kind_name(kind),
        };
        metrics.sessions_total.get_or_create(&label).inc();
        let gauge = metrics.sessions_live.get_or_create(&label).clone();
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for LiveGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A session kind's name, as its metrics label and in logs.
pub fn kind_name(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Exec => "exec",
        SessionKind::Attach => "attach",
        SessionKind::Debug => "debug",
        SessionKind::PortForward => "port-forward",
        SessionKind::Local => "local",
        SessionKind::Audit => "audit",
    }
}

/// An open session, before its relay runs.
#[derive(Debug)]
pub struct Session {
    recorder: Recorder,
    live: LiveSession,
    limit: SessionLimit,
    guard: DrainGuard,
    span: tracing::Span,
    connection: Option<ConnectionPermit>,
    gauge: LiveGauge,
    metrics: Arc<Metrics>,
    /// Keeps the recorder's lag readable by `/metrics` while the session lives.
    _lag: lag::LagEntry,
}

/// A stream kind's side of a session: relay between client and cluster until either ends or
/// [`Ends::wait`] says the session must end, then tell the client in its protocol.
pub trait Relay: Send + 'static {
    fn run(self, tape: Tape<'_>) -> impl Future<Output = Ending> + Send;
}

/// What the relay records into and watches for an end.
#[derive(Debug)]
pub struct Tape<'a> {
    pub recorder: &'a Recorder,
    pub ends: Ends<'a>,
    /// For the relay's byte counters.
    pub metrics: &'a Metrics,
}

/// How a session ended: its exit (the seal's and the exit event's), and, when it was ended from
/// outside, why (recorded as a marker).
#[derive(Debug)]
pub struct Ending {
    pub exit: ExitInfo,
    pub ended_by: Option<EndReason>,
}

/// Why the gateway ended a session; the client is told `message` with `code`/`reason` as its
/// Status, the recording keeps `marker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndReason {
    pub message: String,
    pub marker: String,
    pub code: u16,
    pub reason: &'static str,
}

/// The marker of a session whose client went away: it has no exit of its own (the process may
/// well run on), so it is sealed without one rather than as a failure.
pub const CLIENT_DISCONNECTED: &str = "client disconnected";

impl EndReason {
    /// The client disconnected: nobody is told (nobody is left), the recording keeps the marker
    /// and is sealed without an exit code.
    pub fn client_disconnected() -> Self {
        Self {
            message: CLIENT_DISCONNECTED.into(),
            marker: CLIENT_DISCONNECTED.into(),
            code: 499,
            reason: "ClientClosedRequest",
        }
    }

    /// Whether this is [`EndReason::client_disconnected`].
    pub fn is_client_disconnect(&self) -> bool {
        self.marker == CLIENT_DISCONNECTED
    }

    /// The exit the recording is sealed with.
    pub fn exit(&self) -> ExitInfo {
        ExitInfo {
            code: 1,
            message: self.message.clone(),
        }
    }

    fn recording_failed() -> Self {
        let message = "kubetape: recording failed; the session was ended".to_string();
        Self {
            marker: message.clone(),
            message,
            code: 500,
            reason: "InternalError",
        }
    }

    /// The recording store (and the spool) could not take the session's output for longer
    /// than the policy allows: it ends rather than run unrecorded, and says so.
    pub fn store_unavailable(cause: &str) -> Self {
        let message = format!(
            "kubetape: the session was ended because its recording cannot be stored ({cause}); what could not be recorded is marked in the recording; try again once the recording store is back"
        );
        Self {
            marker: message.clone(),
            message,
            code: 503,
            reason: "ServiceUnavailable",
        }
    }

    /// A recorder that refused an event: the session ends rather than run unrecorded.
    pub fn recording_error(e: &RecordError) -> Self {
        if let RecordError::StoreUnavailable { cause } = e {
            tracing::error!(cause = %cause, "the recording store is unavailable; ending the session (fail closed)");
            return Self::store_unavailable(cause);
        }
        tracing::error!(error = %e, "recording failed; ending the session (fail closed)");
        let message = format!("kubetape: recording failed ({e}); the session was ended");
        Self {
            marker: message.clone(),
            message,
            code: 500,
            reason: "InternalError",
        }
    }
}

/// Everything that can end a session from outside its two peers.
pub struct Ends<'a> {
    live: &'a mut LiveSession,
    stop: limit::Stop,
    guard: &'a DrainGuard,
    recorder: &'a Recorder,
}

impl std::fmt::Debug for Ends<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ends")
            .field("session", &self.live.session())
            .finish_non_exhaustive()
    }
}

impl Ends<'_> {
    /// Resolves when the session must end: a revocation, the end of its grant or of its
    /// maximum length, a drain, or a recorder that stopped (its store failed). Cancel-safe, so
    /// a relay can select on it beside its I/O.
    pub async fn wait(&mut self) -> EndReason {
        tokio::select! {
            why = self.live.ended() => EndReason {
                message: why.message,
                marker: why.marker,
                code: 403,
                reason: "Forbidden",
            },
            message = &mut self.stop => {
                tracing::info!(reason = %message, "ending the session");
                EndReason {
                    marker: message.clone(),
                    message,
                    code: 403,
                    reason: "Forbidden",
                }
            }
            () = self.guard.ending() => EndReason {
                message: DRAIN_MESSAGE.into(),
                marker: "gateway shutdown (drain)".into(),
                code: 503,
                reason: "ServiceUnavailable",
            },
            () = self.recorder.closed() => match self.recorder.failure() {
                Some(cause) => {
                    tracing::error!(cause = %cause, "the recorder gave up; ending the session (fail closed)");
                    EndReason::store_unavailable(&cause)
                }
                None => {
                    tracing::error!("the recorder stopped; ending the session (fail closed)");
                    EndReason::recording_failed()
                }
            }
        }
    }
}

impl Sessions {
    pub fn new(parts: SessionParts) -> Self {
        let SessionParts {
            store,
            keyring,
            flush,
            runtime,
            live,
            revocations,
            metrics,
            leases,
        } = parts;
        Self {
            store,
            keyring,
            flush,
            runtime,
            live,
            revocations,
            drain: Drain::default(),
            metrics,
            leases,
            durability: Durability::default(),
            lags: lag::Lags::default(),
        }
    }

    /// Records through a spool and a failure policy (`[recording]`; default: no spool, pause).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The spool recordings wait in while the store is down, if there is one (for metrics).
    pub fn spool(&self) -> Option<&storage_schema::store::Spool> {
        self.durability.spool.as_ref()
    }

    /// The largest recording lag among live sessions (see [`lag`]).
    pub fn recording_lag(&self) -> std::time::Duration {
        self.lags.oldest()
    }

    /// The live sessions' recorders, as `/metrics` reads them.
    pub fn lags(&self) -> &lag::Lags {
        &self.lags
    }

    /// The keyring recordings are written with (completing a dead gateway's sessions needs it).
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn drain(&self) -> &Drain {
        &self.drain
    }

    pub fn live(&self) -> &LiveSessions {
        &self.live
    }

    /// Opens a session: its recording first (if that fails nothing is relayed), then its live
    /// registration, then the last checks that could refuse it (a revocation or a drain that
    /// started meanwhile; a refused session's recording is sealed with the reason).
    pub async fn open(&self, opening: Opening) -> Result<Session, OpenError> {
        let Opening {
            meta,
            limit,
            extract_commands,
            connection,
        } = opening;
        if self.drain.is_draining() {
            return Err(OpenError::Draining);
        }
        let session = meta.session;
        let kind = meta.kind;
        let container = meta.target.container.clone();
        let client = meta.client.address.clone();
        let user = meta.identity.user.clone();
        let span = tracing::info_span!(
            "session",
            session = %session,
            kind = kind_name(meta.kind),
            user = %user,
            ns = meta.target.namespace.as_deref().unwrap_or("-"),
            pod = meta.target.pod.as_deref().unwrap_or("-"),
            grant = meta.grant.as_ref().map_or("-", |g| g.id.as_str()),
        );
        let commands: Option<Box<dyn CommandObserver>> = extract_commands.then(|| {
            Box::new(transcript::CommandExtractor::new(&meta)) as Box<dyn CommandObserver>
        });
        // `kubectl cp` sessions also list the files their tar stream moves.
        let commands = crate::copy::observe(&meta, commands);
        // Started on the recording runtime, so its task, uploads and extractor thread run there.
        let (store, keyring) = (self.store.clone(), self.keyring.clone());
        let options = RecorderOptions {
            flush: self.flush,
            durability: self.durability.clone(),
            observer: commands,
        };
        let started = self
            .runtime
            .spawn(async move { Recorder::start_with(store, &keyring, meta, options).await });
        let recorder = started
            .await
            .unwrap_or_else(|e| Err(RecordError::Task(e.to_string())))
            .map_err(|e| {
                span.in_scope(|| {
                    tracing::error!(error = %e, "recording could not be opened; refusing the stream");
                });
                OpenError::Recording(e)
            })?;
        // Register before the last checks: the revocation poller updates its list before
        // ending sessions, and the drain starts before it waits, so a session is either
        // refused here or ended by them.
        let live = self.live.register(&user, session);
        let registered = tokio::time::Instant::now();
        let guard = self.drain.guard();
        let refused = match self.revocations.check(&user) {
            Check::Revoked(message) => Some((
                "access revoked before the stream opened",
                OpenError::Revoked(message),
            )),
            _ if self.drain.is_draining() => Some((
                "gateway shutdown before the stream opened",
                OpenError::Draining,
            )),
            _ => None,
        };
        if let Some((marker, refusal)) = refused {
            let _ = recorder
                .record(EventKind::Marker {
                    text: marker.into(),
                })
                .await;
            let _ = recorder
                .finish(Some(ExitInfo {
                    code: 1,
                    message: refusal.to_string(),
                }))
                .await;
            return Err(refusal);
        }
        span.in_scope(|| {
            tracing::info!(
                event = "session_start",
                container = container.as_deref().unwrap_or("-"),
                client = client.as_deref().unwrap_or("-"),
                "session opened"
            )
        });
        if let Some(leases) = &self.leases
            && let Err(e) = leases.cover(registered).await
        {
            // The next heartbeat names it; only a crash in between would leave it open.
            span.in_scope(|| tracing::warn!(error = %e, "the liveness lease could not name the new session yet"));
        }
        let lag = self.lags.add(recorder.lag_probe());
        Ok(Session {
            _lag: lag,
            recorder,
            live,
            limit,
            guard,
            span,
            connection,
            gauge: LiveGauge::new(&self.metrics, kind),
            metrics: self.metrics.clone(),
        })
    }
}

impl Session {
    pub fn id(&self) -> SessionId {
        self.live.session()
    }

    /// The session's tracing span (for the stream kind's own logs).
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Runs `relay` to the session's end on a task of its own, then records the end and seals.
    pub fn spawn(self, relay: impl Relay) -> tokio::task::JoinHandle<()> {
        let span = self.span.clone();
        tokio::spawn(self.run(relay).instrument(span))
    }

    async fn run(self, relay: impl Relay) {
        let Session {
            recorder,
            mut live,
            limit,
            guard,
            span: _,
            connection,
            gauge,
            metrics,
            _lag,
        } = self;
        let ends = Ends {
            live: &mut live,
            stop: limit.into_stop(),
            guard: &guard,
            recorder: &recorder,
        };
        let Ending { exit, ended_by } = relay
            .run(Tape {
                recorder: &recorder,
                ends,
                metrics: &metrics,
            })
            .await;
        // Unregistered at once: nothing can end it any more.
        drop(live);
        let disconnected = ended_by
            .as_ref()
            .is_some_and(EndReason::is_client_disconnect);
        let outcome = match &ended_by {
            Some(why) => why.marker.clone(),
            None if exit.code == 0 => "exited".to_string(),
            None => "exited non-zero".to_string(),
        };
        if let Some(why) = ended_by {
            tracing::warn!(reason = %why.marker, "session ended by the gateway");
            let _ = recorder
                .record(EventKind::Marker { text: why.marker })
                .await;
        }
        if !disconnected {
            let _ = recorder
                .record(EventKind::Exit {
                    code: exit.code,
                    message: exit.message.clone(),
                })
                .await;
        }
        let code = exit.code;
        let message = exit.message.clone();
        match recorder.finish((!disconnected).then_some(exit)).await {
            // The one structured event per session end (the span carries session, kind, user,
            // namespace, pod, grant).
            Ok(seal) => tracing::info!(
                event = "session_end",
                exit_code = code,
                exit_message = %message,
                outcome = %outcome,
                bytes_stdin = seal.bytes.stdin,
                bytes_stdout = seal.bytes.stdout,
                bytes_stderr = seal.bytes.stderr,
                bytes_forwarded = seal.bytes.port_forward,
                duration_s = seal.duration_us as f64 / 1e6,
                chunks = seal.chunks,
                "session ended and sealed"
            ),
            Err(e) => tracing::error!(
                event = "session_end",
                exit_code = code,
                outcome = %outcome,
                error = %e,
                "session ended; its recording could not be sealed"
            ),
        }
        // Only now is the recording sealed: a drain may complete.
        drop(guard);
        drop(connection);
        drop(gauge);
    }
}

#[cfg(test)]
mod tests;
