//! `kubetape-gateway check --config FILE`: everything the gateway would refuse at startup, and
//! what it would serve, found before a rollout rather than by a crash-looping pod.
//!
//! It reads the configuration and the policy (a syntax error names the file, line and column),
//! lints the policy ([`crate::policy::lint`]: grants that reach unrecorded code execution,
//! wildcards, verbs that reach resources they were not written for), loads the TLS key pair and
//! the recording keyring (never creating keys), and — unless `--offline` — fetches every issuer's
//! signing keys, lists the store and writes (then removes) a probe object in its lease area, and
//! asks the cluster for its version. It prints a summary of what would be served. Exit status:
//! 0 when the gateway would start; 1 on any error, or on a lint finding with `--strict`.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;

use crate::authn::Authenticator;
use crate::config::GatewayConfig;
use crate::policy::{Policy, lint};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The gateway configuration (TOML) to check.
    #[arg(long, short, env = "KUBETAPE_GATEWAY_CONFIG")]
    pub config: PathBuf,
    /// Treat policy warnings as errors.
    #[arg(long)]
    pub strict: bool,
    /// Check files only: do not reach the issuers, the store or the cluster.
    #[arg(long)]
    pub offline: bool,
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// What the gateway would serve, for people.
    pub summary: String,
}

impl Report {
    pub fn ok(&self, strict: bool) -> bool {
        self.errors.is_empty() && (!strict || self.warnings.is_empty())
    }
}

/// Runs every check; never stops at the first problem, so one run lists them all.
pub async fn check(args: &CheckArgs) -> Report {
    let mut r = Report::default();
    let config = match GatewayConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            r.errors.push(format!("{e:#}"));
            return r;
        }
    };
    let s = &mut r.summary;
    let _ = writeln!(s, "configuration {}", args.config.display());
    let _ = writeln!(
        s,
        "  kubectl connects to   https://{} (cluster {:?})",
        config.listen, config.cluster_name
    );
    match config.ops.listen {
        Some(a) => {
            let _ = writeln!(
                s,
                "  health and metrics    http://{a}/healthz /readyz /metrics"
            );
        }
        None => r.warnings.push(
            "[ops] listen is not set: no /healthz, /readyz or /metrics for probes and Prometheus"
                .into(),
        ),
    }
    match Policy::load(&config.policy) {
        Ok(policy) => {
            let requestable: Vec<&str> = policy
                .roles
                .iter()
                .filter(|r| r.requestable)
                .map(|r| r.name.as_str())
                .collect();
            let _ = writeln!(
                r.summary,
                "  policy                {} ({} roles, {} bindings; requestable: {})",
                config.policy.display(),
                policy.roles.len(),
                policy.bindings.len(),
                if requestable.is_empty() {
                    "none".into()
                } else {
                    requestable.join(", ")
                }
            );
            for finding in lint::lint(&policy) {
                r.warnings
                    .push(format!("{}: {finding}", config.policy.display()));
            }
        }
        Err(e) => r.errors.push(e.to_string()),
    }
    if let Err(e) = crate::tls::server_config(&config.tls.cert, &config.tls.key) {
        r.errors.push(format!("[tls] {e:#}"));
    }
    let keys = config
        .recording
        .keys
        .clone()
        .unwrap_or_else(storage_schema::defaults::keys_dir);
    match storage_schema::Keyring::open(&keys) {
        Ok(ring) => {
            let kek = ring.current_kek().map(|k| k.id().to_string());
            let signing = ring.current_signing_key().map(|k| k.id().to_string());
            match (kek, signing) {
                (Ok(kek), Ok(signing)) => {
                    let _ = writeln!(
                        r.summary,
                        "  recording keys        {} (key-encryption key {kek}, signing key {signing})",
                        keys.display()
                    );
                }
                (Err(e), _) | (_, Err(e)) => r.errors.push(format!("[recording] keys: {e}")),
            }
        }
        Err(e) => r
            .errors
            .push(format!("[recording] keys {}: {e}", keys.display())),
    }
    let store_url = config.recording.store_url();
    let _ = writeln!(r.summary, "  recording store       {store_url}");
    let authn = match Authenticator::new(config.issuers.clone()) {
        Ok(a) => Some(a),
        Err(e) => {
            r.errors.push(format!("[[issuers]] {e}"));
            None
        }
    };
    for issuer in &config.issuers {
        let _ = writeln!(
            r.summary,
            "  trusts tokens from    {} (audience {})",
            issuer.issuer,
            issuer.audience.join(", ")
        );
    }
    let _ = writeln!(
        r.summary,
        "  limits                {} connections ({} per client), handshake {} s, idle {} s, drain {} s",
        crate::limits::Limits::new(&config.server).max_connections(),
        config.server.max_connections_per_client,
        config.server.handshake_timeout_secs,
        config.server.idle_timeout_secs,
        config.server.drain_deadline_secs,
    );
    if args.offline {
        return r;
    }
    if let Some(authn) = authn {
        for (issuer, e) in authn.preload().await {
            r.errors.push(format!(
                "issuer {issuer}: its signing keys cannot be loaded: {e}"
            ));
        }
    }
    match storage_schema::store::Store::open(&store_url) {
        Ok(store) => {
            if let Err(e) = store.list_dirs("").await {
                r.errors
                    .push(format!("store {store_url}: cannot list: {e}"));
            } else {
                let probe = format!("{}/check/{}.json", crate::lease::ROOT, uuid::Uuid::now_v7());
                match store.put_create(&probe, "{}").await {
                    Ok(()) => {
                        if let Err(e) = store.delete(&probe).await {
                            r.warnings.push(format!(
                                "store {store_url}: the probe {probe} could not be removed ({e}); gateways delete their old heartbeats under {}/ too",
                                crate::lease::ROOT
                            ));
                        }
                    }
                    Err(e) => r
                        .errors
                        .push(format!("store {store_url}: cannot write: {e}")),
                }
            }
        }
        Err(e) => r.errors.push(format!("store: {e}")),
    }
    match crate::upstream::client(
        config.upstream.kubeconfig.as_deref(),
        config.upstream.context.as_deref(),
    )
    .await
    {
        Ok(client) => match client.apiserver_version().await {
            Ok(v) => {
                let _ = writeln!(
                    r.summary,
                    "  cluster               Kubernetes {}.{} ({})",
                    v.major, v.minor, v.git_version
                );
            }
            Err(e) => r
                .errors
                .push(format!("cluster: cannot reach the API server: {e}")),
        },
        Err(e) => r.errors.push(format!("[upstream] {e:#}")),
    }
    r
}
