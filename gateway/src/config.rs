//! The gateway's configuration file (TOML). A commented example is `gateway.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::authn::IssuerConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on (HTTPS).
    pub listen: SocketAddr,
    /// Name recorded as the sessions' cluster.
    #[serde(default = "default_cluster")]
    pub cluster_name: String,
    pub tls: TlsConfig,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub recording: RecordingConfig,
    /// Trusted token issuers; a token from anyone else is refused.
    pub issuers: Vec<IssuerConfig>,
    /// The policy file (roles, bindings; see `policy.example.toml`), relative to this file's
    /// directory unless absolute. Reloaded when it changes; default deny.
    pub policy: PathBuf,
    /// The audit log (stdout and the store).
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
    /// Revocations: who may revoke through the admin API, and how often the store is polled.
    #[serde(default)]
    pub revocation: RevocationConfig,
    /// The front door: shutdown and connection limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// The operations listener: health and metrics.
    #[serde(default)]
    pub ops: OpsConfig,
    /// Liveness leases: how often this gateway says it is alive, and how soon a silent one's
    /// sessions are sealed by another.
    #[serde(default)]
    pub lease: crate::lease::LeaseConfig,
    /// Retention: rules for how long recordings are kept, and whether this gateway enforces
    /// them (`crate::retention`).
    #[serde(default)]
    pub retention: crate::retention::RetentionConfig,
    /// Chain of custody on the readers' side: which namespaces' recordings `kubetape` reads
    /// only with a stated reason.
    #[serde(default)]
    pub custody: CustodyConfig,
}

/// `[custody]`: published to the store at start as the read policy
/// (`storage_schema::store::read_policy`), which every `kubetape` reader follows.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyConfig {
    /// Namespace patterns (`*`: any run of characters), e.g. `["prod*", "payments"]`: reading
    /// a recording of a session in one of them (`kubetape cat`, `play`, `export`) needs
    /// `--reason`, which the reads log keeps. `[]` lifts the policy. Absent (the default): this
    /// gateway leaves the store's policy as it is, so a gateway started without the setting
    /// never lifts a policy another one published.
    #[serde(default)]
    pub reason_required: Option<Vec<String>>,
}

/// `[server]`: shutdown and what clients may hold before they are authenticated (see
/// [`crate::limits`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// At shutdown (SIGTERM, Ctrl-C), how long live sessions get to be told and sealed before
    /// the gateway exits anyway. A Kubernetes pod's `terminationGracePeriodSeconds` must be
    /// longer.
    #[serde(default = "default_drain_deadline_secs")]
    pub drain_deadline_secs: u64,
    /// At shutdown, how long live sessions may carry on by themselves (the gateway already
    /// unready and refusing new ones) before they are told to end. Counted within
    /// `drain_deadline_secs`, so it must be shorter. Default 0: sessions are ended at once.
    #[serde(default)]
    pub drain_grace_secs: u64,
    /// Connections served at once, live sessions included. Default: what the open-file limit
    /// allows (each session also holds a connection to the cluster and to the store).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Connections one client address may hold at once. Default: 512 (a NAT gateway carries
    /// many engineers; raise it for big offices).
    #[serde(default = "default_per_client")]
    pub max_connections_per_client: usize,
    /// Seconds a new connection has for its TLS handshake and first request headers (also how
    /// long an idle HTTP/1 connection waits for its next request).
    #[serde(default = "default_handshake_secs")]
    pub handshake_timeout_secs: u64,
    /// Seconds a connection may sit with no request in flight before it is closed.
    #[serde(default = "default_idle_secs")]
    pub idle_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            drain_deadline_secs: default_drain_deadline_secs(),
            drain_grace_secs: 0,
            max_connections: None,
            max_connections_per_client: default_per_client(),
            handshake_timeout_secs: default_handshake_secs(),
            idle_timeout_secs: default_idle_secs(),
        }
    }
}

fn default_drain_deadline_secs() -> u64 {
    25
}

fn default_per_client() -> usize {
    512
}

fn default_handshake_secs() -> u64 {
    10
}

fn default_idle_secs() -> u64 {
    300
}

/// `[ops]` in the gateway configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    /// Plain-HTTP address of `/healthz`, `/readyz` and `/metrics`. Omit to serve none (the
    /// quickstart and tests); a production gateway sets it.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// Members of these groups may use the admin API's revocation routes.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// How often the store's revocation list is polled (a revoked user's sessions end within
    /// about this long plus one store round trip).
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Refuse every request once the list could not be refreshed for this long (fail closed).
    #[serde(default = "default_staleness_ms")]
    pub max_staleness_ms: u64,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        Self {
            admin_groups: Vec::new(),
            poll_interval_ms: default_poll_ms(),
            max_staleness_ms: default_staleness_ms(),
        }
    }
}

fn default_poll_ms() -> u64 {
    250
}

fn default_staleness_ms() -> u64 {
    10_000
}

fn default_cluster() -> String {
    "kubernetes".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain presented to kubectl.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Kubeconfig holding the gateway's own identity; default: KUBECONFIG, ~/.kube/config, or
    /// the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Store URL (`file:///dir`, `s3://bucket/prefix`); default: the kubetape data dir.
    pub store: Option<String>,
    /// Keyring directory; default: the kubetape config dir. Created on first start.
    pub keys: Option<PathBuf>,
    /// A chunk is written at most this long after its first event (the most a crash loses).
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
    /// ... or once it holds this much.
    #[serde(default = "default_chunk_kib")]
    pub max_chunk_kib: usize,
    /// How far below the relay the recording work runs (`nice` steps, 0..=19; 0 = same
    /// priority). See `gateway::background`.
    #[serde(default = "default_niceness")]
    pub niceness: u8,
    /// Where recordings (and audit records) wait, fsynced, while the store cannot take them;
    /// replayed in order when it can, also after a restart. Default: the kubetape data dir's
    /// `spool` (`~/.local/share/kubetape/spool`). Several gateways may share one directory.
    pub spool_dir: Option<PathBuf>,
    /// The most the spool holds, in MiB. When it is full and the store still fails, sessions
    /// are paused (see `on_store_failure`).
    #[serde(default = "default_spool_mib")]
    pub spool_max_mib: u64,
    /// What a session does when its output can be made durable neither in the store nor in
    /// the spool: `pause` (its output waits, the terminal freezes; after
    /// `store_failure_timeout_secs` without progress it ends with a reason) or `end` (it ends
    /// at once with a reason). Either way, what could not be written is recorded as a gap.
    #[serde(default)]
    pub on_store_failure: storage_schema::store::OnStoreFailure,
    /// How long a paused session waits for the store or the spool before it is ended.
    #[serde(default = "default_failure_timeout_secs")]
    pub store_failure_timeout_secs: u64,
    /// The longest one store request may take before it counts as failed (a hung store is
    /// noticed in this time; its writes go to the spool much sooner, see `spool_after_ms`).
    #[serde(default = "default_store_timeout_secs")]
    pub store_timeout_secs: u64,
    /// A chunk the store has not taken this long after it was sealed is also spooled: with the
    /// flush interval, the most of a session's output a crash during an outage can lose.
    #[serde(default = "default_spool_after_ms")]
    pub spool_after_ms: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            store: None,
            keys: None,
            flush_interval_ms: default_flush_ms(),
            max_chunk_kib: default_chunk_kib(),
            niceness: default_niceness(),
            spool_dir: None,
            spool_max_mib: default_spool_mib(),
            on_store_failure: storage_schema::store::OnStoreFailure::default(),
            store_failure_timeout_secs: default_failure_timeout_secs(),
            store_timeout_secs: default_store_timeout_secs(),
            spool_after_ms: default_spool_after_ms(),
        }
    }
}

fn default_spool_mib() -> u64 {
    1024
}

fn default_failure_timeout_secs() -> u64 {
    30
}

fn default_store_timeout_secs() -> u64 {
    10
}

fn default_spool_after_ms() -> u64 {
    200
}

fn default_flush_ms() -> u64 {
    1000
}

fn default_chunk_kib() -> usize {
    storage_schema::FlushPolicy::default().max_bytes >> 10
}

fn default_niceness() -> u8 {
    crate::background::DEFAULT_NICENESS
}

impl RecordingConfig {
    pub fn flush_policy(&self) -> storage_schema::FlushPolicy {
        storage_schema::FlushPolicy {
            max_age: Duration::from_millis(self.flush_interval_ms),
            max_bytes: self.max_chunk_kib << 10,
            ..Default::default()
        }
    }
}

impl RecordingConfig {
    /// The spool directory (see `spool_dir`).
    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir
            .clone()
            .unwrap_or_else(storage_schema::defaults::spool_dir)
    }

    /// How recorders keep writes durable through a store outage, spooling into `spool`.
    pub fn durability(
        &self,
        spool: Option<storage_schema::store::Spool>,
    ) -> storage_schema::store::Durability {
        storage_schema::store::Durability {
            spool,
            spool_after: Duration::from_millis(self.spool_after_ms),
            store_timeout: Duration::from_secs(self.store_timeout_secs),
            on_failure: self.on_store_failure,
            failure_timeout: Duration::from_secs(self.store_failure_timeout_secs),
            open_via_spool: false,
        }
    }

    /// The store URL, defaulting like `kubetape` does so both find the same data.
    pub fn store_url(&self) -> String {
        self.store
            .clone()
            .unwrap_or_else(storage_schema::defaults::store_url)
    }
}

impl GatewayConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut config: Self =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if config.revocation.poll_interval_ms == 0
            || config.revocation.max_staleness_ms < 2 * config.revocation.poll_interval_ms
        {
            anyhow::bail!(
                "{}: [revocation] poll_interval_ms must be > 0 and max_staleness_ms at least twice it",
                path.display()
            );
        }
        if config.server.drain_grace_secs > 0
            && config.server.drain_grace_secs >= config.server.drain_deadline_secs
        {
            anyhow::bail!(
                "{}: [server] drain_grace_secs must be shorter than drain_deadline_secs (the grace is counted within the deadline, and sessions need time to be told and sealed after it)",
                path.display()
            );
        }
        let r = &config.recording;
        if r.spool_max_mib == 0
            || r.store_timeout_secs == 0
            || r.store_failure_timeout_secs == 0
            || r.spool_after_ms == 0
            || r.spool_after_ms >= r.store_timeout_secs * 1000
        {
            anyhow::bail!(
                "{}: [recording] spool_max_mib, store_timeout_secs, store_failure_timeout_secs and spool_after_ms must be > 0, and spool_after_ms below store_timeout_secs",
                path.display()
            );
        }
        if config.policy.is_relative()
            && let Some(dir) = path.parent()
        {
            config.policy = dir.join(&config.policy);
        }
        if config.issuers.is_empty() {
            anyhow::bail!(
                "{}: no [[issuers]]: the gateway would accept nobody",
                path.display()
            );
        }
        crate::retention::Rules::new(&config.retention)
            .map_err(|e| anyhow::anyhow!("{}: [retention]: {e}", path.display()))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_with_audit_and_revocation_sections() {
        let config: GatewayConfig =
            toml::from_str(include_str!("../gateway.example.toml")).unwrap();
        assert!(!config.audit.fail_closed);
        assert_eq!(config.audit.rotate_secs, 3600);
        assert_eq!(config.revocation.admin_groups, vec!["platform-admins"]);
        assert_eq!(config.revocation.poll_interval_ms, 250);
        let r = &config.recording;
        assert_eq!(
            r.spool_dir.as_deref(),
            Some(Path::new("/var/lib/kubetape/spool"))
        );
        assert_eq!(r.spool_max_mib, 1024);
        assert_eq!(
            r.on_store_failure,
            storage_schema::store::OnStoreFailure::Pause
        );
        assert_eq!(r.store_failure_timeout_secs, 30);
        let d = r.durability(None);
        assert_eq!(d.spool_after, Duration::from_millis(200));
        assert_eq!(d.store_timeout, Duration::from_secs(10));
    }

    #[test]
    fn a_drain_grace_must_fit_within_the_drain_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        let example = include_str!("../gateway.example.toml");
        assert!(example.contains("drain_grace_secs = 0"));
        std::fs::write(
            &path,
            example.replace("drain_grace_secs = 0", "drain_grace_secs = 25"),
        )
        .unwrap();
        let err = GatewayConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("drain_grace_secs"), "{err}");
        std::fs::write(
            &path,
            example.replace("drain_grace_secs = 0", "drain_grace_secs = 10"),
        )
        .unwrap();
        let config = GatewayConfig::load(&path).unwrap();
        assert_eq!(config.server.drain_grace_secs, 10);
        assert_eq!(config.server.drain_deadline_secs, 25);
    }

    #[test]
    fn recording_durability_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        let example = include_str!("../gateway.example.toml");
        for (from, to) in [
            ("spool_max_mib = 1024", "spool_max_mib = 0"),
            ("spool_after_ms = 200", "spool_after_ms = 10000"),
            ("store_timeout_secs = 10", "store_timeout_secs = 0"),
        ] {
            assert!(example.contains(from), "{from}");
            std::fs::write(&path, example.replace(from, to)).unwrap();
            let err = GatewayConfig::load(&path).unwrap_err().to_string();
            assert!(err.contains("[recording]"), "{to}: {err}");
        }
        let end = example.replace(
            r#"on_store_failure = "pause""#,
            r#"on_store_failure = "end""#,
        );
        let config: GatewayConfig = toml::from_str(&end).unwrap();
        assert_eq!(
            config.recording.on_store_failure,
            storage_schema::store::OnStoreFailure::End
        );
        let typo = example.replace(
            r#"on_store_failure = "pause""#,
            r#"on_store_failure = "stop""#,
        );
        assert!(toml::from_str::<GatewayConfig>(&typo).is_err());
    }

    #[test]
    fn bad_revocation_timing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        let text = include_str!("../gateway.example.toml")
            .replace("max_staleness_ms = 10000", "max_staleness_ms = 300");
        std::fs::write(&path, text).unwrap();
        let err = GatewayConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("max_staleness_ms"), "{err}");
        let typo = include_str!("../gateway.example.toml").replace("rotate_secs", "rotate_sec");
        assert!(toml::from_str::<GatewayConfig>(&typo).is_err());
    }

    #[test]
    fn the_example_config_parses_and_its_policy_is_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, include_str!("../gateway.example.toml")).unwrap();
        let config = GatewayConfig::load(&path).unwrap();
        assert_eq!(config.policy, dir.path().join("policy.toml"));
        assert_eq!(config.issuers.len(), 2);
    }
}
