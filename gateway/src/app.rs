//! Wiring: from a configuration to a running gateway.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use storage_schema::Keyring;
use storage_schema::store::{Spool, Store};
use tokio::net::TcpListener;

use tokio::sync::watch;

use crate::audit::AuditLog;
use crate::authn::Authenticator;
use crate::background::Background;
use crate::config::GatewayConfig;
use crate::jit::Jit;
use crate::limits::Limits;
use crate::live::LiveSessions;
use crate::policy::PolicyWatch;
use crate::revocation::Revocations;
use crate::server::{self, Connections};
use crate::session::Sessions;
use crate::state::State;
use crate::{tls, upstream};

/// A gateway ready to serve, with the listener already bound (so callers learn the port first).
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    poll_interval: Duration,
    drain_deadline: Duration,
    limits: Limits,
}

impl Gateway {
    /// Loads keys, connects the store and the cluster client, binds the listener.
    pub async fn build(config: &GatewayConfig) -> anyhow::Result<Self> {
        let tls = tls::server_config(&config.tls.cert, &config.tls.key)?;
        // A bad policy at startup stops the gateway: there is no last good one to fall back on.
        let policy = Arc::new(PolicyWatch::load(&config.policy).context("access policy")?);
        let authn = Authenticator::new(config.issuers.clone()).context("token issuers")?;
        let upstream = upstream::client(
            config.upstream.kubeconfig.as_deref(),
            config.upstream.context.as_deref(),
        )
        .await
        .context("cluster client (upstream.kubeconfig)")?;
        let store_url = config.recording.store_url();
        let store = Store::open(&store_url).context("recording store")?;
        let keys = config
            .recording
            .keys
            .clone()
            .unwrap_or_else(storage_schema::defaults::keys_dir);
        let (keyring, created) = Keyring::open_or_init(&keys).context("recording keys")?;
        if created {
            tracing::warn!(dir = %keys.display(), "created a new recording keyring; back it up: recordings cannot be read without it");
        }
        // Where writes wait while the store is down; what a previous gateway left there is
        // replayed in the background (started first: the steps below may wait for the store).
        let spool_dir = config.recording.spool_dir();
        let spool = Spool::open(&spool_dir, config.recording.spool_max_mib << 20)
            .with_context(|| format!("recording spool {}", spool_dir.display()))?;
        let durability = config.recording.durability(Some(spool.clone()));
        if !spool.leftovers().is_empty() {
            tracing::warn!(
                sessions = spool.leftovers().len(),
                spool = %spool.slot().display(),
                "the spool holds sessions a previous gateway could not write to the store; replaying them"
            );
            let (store, ring) = (
                store.clone(),
                Keyring::open(&keys).context("recording keys (spool)")?,
            );
            let timeout = durability.store_timeout;
            tokio::spawn(async move {
                spool.replay_leftovers(&store, &ring, timeout).await;
            });
        }
        let live = LiveSessions::default();
        let revocations = Arc::new(Revocations::new(
            store.clone(),
            live.clone(),
            config.revocation.admin_groups.clone(),
            Duration::from_millis(config.revocation.max_staleness_ms),
        ));
        // Fail closed: no serving before the revocation list is known.
        revocations
            .poll()
            .await
            .context("read the revocation list from the store")?;
        let audit = AuditLog::start(
            &config.audit,
            store.clone(),
            // A second handle on the same keyring for the audit writer task.
            Keyring::open(&keys).context("recording keys (audit)")?,
            config.recording.flush_policy(),
            config.cluster_name.clone(),
            durability.clone(),
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listen on {}", config.listen))?;
        let sessions = Sessions::new(
            store.clone(),
            Arc::new(keyring),
            config.recording.flush_policy(),
            Background::start(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                config.recording.niceness,
            )
            .context("start the recording runtime")?,
            live,
            revocations.clone(),
        )
        .with_durability(durability);
        let state = State {
            authn,
            policy,
            upstream,
            jit: Arc::new(Jit::new(store)),
            cluster: config.cluster_name.clone(),
            audit,
            unauthenticated: Default::default(),
            revocations,
            sessions,
        };
        Ok(Self {
            listener,
            tls,
            state: Arc::new(state),
            poll_interval: Duration::from_millis(config.revocation.poll_interval_ms),
            drain_deadline: Duration::from_secs(config.server.drain_deadline_secs),
            limits: Limits::new(&config.server),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (for in-process tests and embedding).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains (see [`Self::run_with`]) for at most the
    /// drain deadline.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        self.run_with(shutdown, std::future::pending()).await
    }

    /// Serves until SIGINT or SIGTERM, then drains; a second signal cuts the drain short.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        let signals = shutdown_signals();
        let mut first = signals.clone();
        let mut again = signals;
        self.run_with(
            async move {
                let _ = first.wait_for(|n| *n >= 1).await;
            },
            async move {
                let _ = again.wait_for(|n| *n >= 2).await;
            },
        )
        .await
    }

    /// Serves until `shutdown` resolves, reloading the policy file as it changes, the access
    /// grants every second and the revocation list every `poll_interval`. Then drains: stops
    /// accepting, ends every live session with a Status that says why (kubectl prints it),
    /// waits until every recording is sealed and every connection has finished, for at most the
    /// drain deadline — `cut_short` resolving ends the wait at once — and seals the audit
    /// stream.
    pub async fn run_with(
        self,
        shutdown: impl Future<Output = ()>,
        cut_short: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let revocations = self.state.revocations.clone();
        let interval = self.poll_interval;
        let poller = tokio::spawn(async move { revocations.poll_forever(interval).await });
        let policy = self.state.policy.clone().spawn_polling();
        let grants = self.state.jit.clone().spawn_refresh();
        let aggregates = {
            let state = self.state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    for record in state.unauthenticated.expired(tokio::time::Instant::now()) {
                        // Nobody waits for these (aggregates); a failure is logged by the log.
                        let _ = state.audit.emit(&record).await;
                    }
                }
            })
        };
        let connections = Connections::default();
        let served = server::serve(
            self.listener,
            self.tls,
            self.state.clone(),
            self.limits.clone(),
            connections.clone(),
            shutdown,
        )
        .await;
        let drain = self.state.sessions.drain().clone();
        tracing::info!(
            sessions = drain.open_sessions(),
            connections = connections.len(),
            deadline = ?self.drain_deadline,
            "draining: no new connections; ending live sessions and sealing their recordings"
        );
        drain.start();
        connections.close();
        let drained = async {
            drain.wait().await;
            connections.wait().await;
        };
        tokio::select! {
            () = drained => tracing::info!("drained: every recording is sealed"),
            () = tokio::time::sleep(self.drain_deadline) => tracing::warn!(
                sessions = drain.open_sessions(),
                "the drain deadline passed; exiting with recordings still open (they can be sealed as interrupted)"
            ),
            () = cut_short => tracing::warn!(
                sessions = drain.open_sessions(),
                "second shutdown signal: exiting now with recordings still open"
            ),
        }
        poller.abort();
        policy.abort();
        grants.abort();
        aggregates.abort();
        for record in self.state.unauthenticated.flush() {
            let _ = self.state.audit.emit(&record).await;
        }
        self.state.audit.shutdown(Duration::from_secs(10)).await;
        served
    }
}

/// SIGINT and SIGTERM, counted: the first starts the drain, a second cuts it short.
pub fn shutdown_signals() -> watch::Receiver<u32> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = watch::channel(0u32);
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot listen for shutdown signals");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tx.send_modify(|n| *n += 1);
        }
    });
    rx
}
