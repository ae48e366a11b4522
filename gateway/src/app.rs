//! Wiring: from a configuration to a running gateway.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use storage_schema::Keyring;
use storage_schema::store::{Spool, Store};
use tokio::net::TcpListener;

use crate::audit::AuditLog;
use crate::authn::Authenticator;
use crate::background::Background;
use crate::config::GatewayConfig;
use crate::jit::Jit;
use crate::lease::Leases;
use crate::limits::Limits;
use crate::live::LiveSessions;
use crate::ops::metrics::Metrics;
use crate::ops::store::StoreHealth;
use crate::ops::store::StoreMetrics;
use crate::policy::PolicyWatch;
use crate::revocation::Revocations;
use crate::server::{self, Connections};
use crate::session::{SessionParts, Sessions};
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
    /// `[server] drain_grace_secs`: how long live sessions carry on after the drain starts.
    drain_grace: Duration,
    /// `[recording] store_timeout_secs`: the longest a store request at shutdown may take.
    store_timeout: Duration,
    /// The operations listener (`[ops] listen`), if configured.
    ops: Option<TcpListener>,
    /// Retention passes, when `[retention] enabled`.
    retention: Option<RetentionTask>,
}

/// What this gateway's retention passes need.
#[derive(Debug)]
struct RetentionTask {
    store: Store,
    keyring: Arc<Keyring>,
    rules: crate::retention::Rules,
    config: crate::retention::RetentionConfig,
}

impl Gateway {
    /// Loads keys, connects the store and the cluster client, binds the listener.
    pub async fn build(config: &GatewayConfig) -> anyhow::Result<Self> {
        let tls = tls::server_config(&config.tls.cert, &config.tls.key)?;
        // A bad policy at startup stops the gateway: there is no last good one to fall back on.
        let policy = Arc::new(PolicyWatch::load(&config.policy).context("access policy")?);
        let authn = Authenticator::new(config.issuers.clone()).context("token issuers")?;
        let upstream = upstream::clients(
            config.upstream.kubeconfig.as_deref(),
            config.upstream.context.as_deref(),
        )
        .await
        .context("cluster client (upstream.kubeconfig)")?;
        let store_url = config.recording.store_url();
        let metrics = Arc::new(Metrics::new());
        let store_health = Arc::new(StoreHealth::default());
        let store = Store::open(&store_url)
            .context("recording store")?
            .with_observer(Arc::new(StoreMetrics {
                metrics: metrics.clone(),
                health: store_health.clone(),
            }));
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
        // Fail closed: no serving before the revocation list is known. A gateway (re)started
        // during a store outage waits for the store rather than exit: exiting would also stop
        // the replay of its spool (started above), and a restarted pod would only wait again.
        let mut backoff = Duration::from_millis(250);
        let mut attempts = 0u32;
        loop {
            match revocations.poll().await {
                Ok(_) => break,
                Err(e) => {
                    attempts += 1;
                    let e =
                        anyhow::Error::new(e).context("read the revocation list from the store");
                    tracing::warn!(error = %format!("{e:#}"), attempts, "the store does not answer; not serving until it does");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        publish_read_policy(&store, &config.custody, &config.cluster_name).await?;
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
        let ops_listener = match config.ops.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listen on {addr} ([ops] listen)"))?,
            ),
            None => None,
        };
        // Unique among replicas even when two share an instance name.
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        let gateway_id = format!("{}.{}", audit.instance(), &suffix[suffix.len() - 8..]);
        let retention = if config.retention.enabled {
            Some(RetentionTask {
                store: store.clone(),
                keyring: Arc::new(Keyring::open(&keys).context("recording keys (retention)")?),
                rules: crate::retention::Rules::new(&config.retention).context("[retention]")?,
                config: config.retention.clone(),
            })
        } else {
            None
        };
        let leases = Arc::new(Leases::new(
            store.clone(),
            gateway_id,
            config.lease.clone(),
            live.clone(),
        ));
        let sessions = Sessions::new(SessionParts {
            store: store.clone(),
            keyring: Arc::new(keyring),
            flush: config.recording.flush_policy(),
            runtime: Background::start(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                config.recording.niceness,
            )
            .context("start the recording runtime")?,
            live,
            revocations: revocations.clone(),
            metrics: metrics.clone(),
            leases: Some(leases.clone()),
        })
        .with_durability(durability);
        let state = State {
            authn,
            policy,
            upstream: upstream.default,
            upstream_tunnels: upstream.tunnels,
            jit: Arc::new(Jit::new(store)),
            cluster: config.cluster_name.clone(),
            audit,
            unauthenticated: Default::default(),
            revocations,
            sessions,
            limits: Limits::new(&config.server),
            metrics,
            store_health,
            leases,
            debugs: Default::default(),
        };
        Ok(Self {
            listener,
            tls,
            state: Arc::new(state),
            poll_interval: Duration::from_millis(config.revocation.poll_interval_ms),
            drain_deadline: Duration::from_secs(config.server.drain_deadline_secs),
            drain_grace: Duration::from_secs(config.server.drain_grace_secs),
            store_timeout: Duration::from_secs(config.recording.store_timeout_secs),
            ops: ops_listener,
            retention,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The operations listener's address, when `[ops] listen` is set.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(|l| l.local_addr().ok())
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
        let (first, second) = crate::edges::first_and_second_signal();
        self.run_with(first, second).await
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
        let lease_loop = tokio::spawn(lease_loop(self.state.clone()));
        let retention = self.retention.map(|r| {
            tokio::spawn(crate::retention::run_forever(
                r.store,
                r.keyring,
                r.rules,
                r.config,
                self.state.leases.gateway().to_string(),
                self.state.audit.clone(),
            ))
        });
        let connections = Connections::default();
        let ops_stop = tokio_util::sync::CancellationToken::new();
        let ops = self.ops.map(|listener| {
            let stop = ops_stop.clone();
            tokio::spawn(crate::ops::serve(
                listener,
                self.state.clone(),
                async move { stop.cancelled().await },
            ))
        });
        let served = server::serve(
            self.listener,
            self.tls,
            self.state.clone(),
            self.state.limits.clone(),
            connections.clone(),
            shutdown,
        )
        .await;
        let drain = self.state.sessions.drain().clone();
        tracing::info!(
            sessions = drain.open_sessions(),
            connections = connections.len(),
            deadline = ?self.drain_deadline,
            grace = ?self.drain_grace,
            "draining: no new connections; ending live sessions and sealing their recordings"
        );
        drain.start();
        connections.close();
        let ender = {
            let drain = drain.clone();
            let grace = self.drain_grace;
            tokio::spawn(async move {
                if !grace.is_zero() {
                    tokio::time::sleep(grace).await;
                    tracing::info!(
                        sessions = drain.open_sessions(),
                        "the drain's grace is over: ending the sessions still live"
                    );
                }
                drain.end_sessions();
            })
        };
        let drained = async {
            drain.wait().await;
            connections.wait().await;
        };
        let all_sealed = tokio::select! {
            () = drained => {
                tracing::info!("drained: every recording is sealed");
                true
            }
            () = tokio::time::sleep(self.drain_deadline) => {
                tracing::warn!(
                    sessions = drain.open_sessions(),
                    "the drain deadline passed; exiting with recordings still open (another gateway seals them as interrupted when this one's lease lapses)"
                );
                false
            }
            () = cut_short => {
                tracing::warn!(
                    sessions = drain.open_sessions(),
                    "second shutdown signal: exiting now with recordings still open (another gateway seals them as interrupted when this one's lease lapses)"
                );
                false
            }
        };
        ender.abort();
        lease_loop.abort();
        if let Some(r) = retention {
            r.abort();
        }
        // A closed lease says there is nothing to complete; with sessions still open, the lease
        // is left to lapse so another gateway seals them.
        // Bounded: a hung store must not hold the exit (the lease then lapses instead).
        if all_sealed {
            match tokio::time::timeout(self.store_timeout, self.state.leases.renew(true)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the closing heartbeat could not be written")
                }
                Err(_) => tracing::warn!("the closing heartbeat could not be written in time"),
            }
        }
        poller.abort();
        policy.abort();
        grants.abort();
        aggregates.abort();
        ops_stop.cancel();
        if let Some(ops) = ops {
            let _ = ops.await;
        }
        for record in self.state.unauthenticated.flush() {
            let _ = self.state.audit.emit(&record).await;
        }
        self.state.audit.shutdown(Duration::from_secs(10)).await;
        served
    }
}

/// Renews this gateway's lease, ends its sessions if the lease lapsed, and seals the sessions of
/// gateways whose leases lapsed (with an audit record each).
///
/// It looks at other gateways' leases twice per heartbeat: a lapse is measured from when this
/// replica first saw the dead gateway's newest heartbeat, so looking more often than heartbeats
/// are written shortens the worst case from kill to sealed (ttl + 2 heartbeats → ttl + 1).
async fn lease_loop(state: Arc<State>) {
    let leases = state.leases.clone();
    let mut tick = tokio::time::interval(leases.config().heartbeat() / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    for round in 0u64.. {
        tick.tick().await;
        let renewed = if round % 2 == 0 {
            leases.renew(false).await
        } else {
            Ok(())
        };
        match renewed {
            Ok(()) if failing => {
                failing = false;
                tracing::warn!("the liveness lease is renewed again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::error!(error = %e, "the liveness lease could not be renewed");
            }
            Err(_) => {}
        }
        leases.enforce_own_lapse();
        match leases.complete_lapsed(state.sessions.keyring()).await {
            Ok(done) => {
                for c in done {
                    state.metrics.sessions_completed.inc();
                    // Nobody waits for it; a record that cannot be made durable is logged.
                    let _ = state.audit.emit(&completion_record(&state, &c)).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not look at other gateways' leases"),
        }
    }
}

/// The audit record of a session this gateway sealed for a dead one.
fn completion_record(state: &State, c: &crate::lease::Completed) -> storage_schema::AuditRecord {
    let mut record: storage_schema::AuditRecord = serde_json::from_value(serde_json::json!({
        "time_us": storage_schema::time::unix_micros_now(),
        "gateway": state.audit.instance(),
        "client": "-",
        "method": "SEAL",
        "path": format!("/sessions/{}", c.session),
        "verb": "complete",
        "decision": "allow",
        "rule": "lease lapsed",
        "status": 200,
        "latency_ms": 0.0,
    }))
    .expect("a well-formed record");
    record.reason = Some(format!(
        "gateway {} stopped renewing its lease (last heartbeat {}); its session was sealed as interrupted by {}",
        c.gateway,
        storage_schema::time::format_unix_micros(c.last_heartbeat_us),
        state.leases.gateway(),
    ));
    record.session = Some(c.session);
    record
}

/// Publishes `[custody] reason_required`, when set, as the store's read policy unless it already
/// says the same. A gateway that cannot publish its policy does not start: readers would follow
/// an older one.
async fn publish_read_policy(
    store: &Store,
    custody: &crate::config::CustodyConfig,
    cluster: &str,
) -> anyhow::Result<()> {
    use storage_schema::store::read_policy::{self, ReadPolicy};
    let Some(patterns) = &custody.reason_required else {
        return Ok(());
    };
    if let Some(bad) = patterns.iter().find(|p| p.trim().is_empty()) {
        anyhow::bail!("[custody] reason_required: empty namespace pattern {bad:?}");
    }
    let policy = ReadPolicy {
        reason_required: patterns.clone(),
        by: format!("gateway:{cluster}"),
        at_us: storage_schema::time::unix_micros_now(),
    };
    if read_policy::publish(store, &policy)
        .await
        .context("publish the read policy ([custody]) to the store")?
    {
        tracing::info!(reason_required = ?policy.reason_required, "read policy published");
    }
    Ok(())
}
