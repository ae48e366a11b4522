//! Wiring: from a configuration to a running gateway.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use storage_schema::Keyring;
use storage_schema::store::Store;
use tokio::net::TcpListener;

use crate::authn::Authenticator;
use crate::config::GatewayConfig;
use crate::jit::Jit;
use crate::policy::PolicyWatch;
use crate::server::{self, State};
use crate::{tls, upstream};

/// A gateway ready to serve, with the listener already bound (so callers learn the port first).
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
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
        let store_url = config
            .recording
            .store
            .clone()
            .unwrap_or_else(storage_schema::defaults::store_url);
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
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listen on {}", config.listen))?;
        let state = State {
            authn,
            policy,
            upstream,
            jit: Arc::new(Jit::new(store.clone())),
            store,
            keyring,
            flush: config.recording.flush_policy(),
            cluster: config.cluster_name.clone(),
        };
        Ok(Self {
            listener,
            tls,
            state: Arc::new(state),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, reloading the policy file as it changes and the
    /// access grants every second.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let poller = self.state.policy.clone().spawn_polling();
        let grants = self.state.jit.clone().spawn_refresh();
        let served = server::serve(self.listener, self.tls, self.state, shutdown).await;
        poller.abort();
        grants.abort();
        served
    }
}
