//! Wiring: from a configuration to a running gateway.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use storage_schema::Keyring;
use storage_schema::store::Store;
use tokio::net::TcpListener;

use crate::audit::AuditLog;
use crate::authn::Authenticator;
use crate::config::GatewayConfig;
use crate::jit::Jit;
use crate::live::LiveSessions;
use crate::policy::PolicyWatch;
use crate::revocation::Revocations;
use crate::server::{self, State};
use crate::{tls, upstream};

/// A gateway ready to serve, with the listener already bound (so callers learn the port first).
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    poll_interval: Duration,
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
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listen on {}", config.listen))?;
        let state = State {
            authn,
            policy,
            upstream,
            jit: Arc::new(Jit::new(store.clone())),
            store,
            keyring: Arc::new(keyring),
            flush: config.recording.flush_policy(),
            recording: crate::background::Background::start(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                config.recording.niceness,
            )
            .context("start the recording runtime")?,
            cluster: config.cluster_name.clone(),
            audit,
            revocations,
            live,
        };
        Ok(Self {
            listener,
            tls,
            state: Arc::new(state),
            poll_interval: Duration::from_millis(config.revocation.poll_interval_ms),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, reloading the policy file as it changes, the access
    /// grants every second and the revocation list every `poll_interval`; then seals the audit
    /// stream.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let revocations = self.state.revocations.clone();
        let interval = self.poll_interval;
        let poller = tokio::spawn(async move { revocations.poll_forever(interval).await });
        let policy = self.state.policy.clone().spawn_polling();
        let grants = self.state.jit.clone().spawn_refresh();
        let served = server::serve(self.listener, self.tls, self.state.clone(), shutdown).await;
        poller.abort();
        policy.abort();
        grants.abort();
        self.state.audit.shutdown(Duration::from_secs(10)).await;
        served
    }
}
