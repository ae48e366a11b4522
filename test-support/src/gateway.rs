//! A gateway for tests: the files it runs from ([`GatewayFiles`], shared with the end-to-end
//! harness in `tests`, which runs `kubetape-gateway serve` on them), and the gateway itself
//! in-process ([`TestGateway`]) in front of an in-process sandbox, both on `127.0.0.1:0`.
//!
//! ```no_run
//! # async fn demo() {
//! use test_support::gateway::TestGateway;
//!
//! let gw = TestGateway::start().await;
//! // kubectl: --kubeconfig gw.kubeconfig("dev@example.com", &["developers"]);
//! // kube-rs, as that user (the admin API, REST, exec):
//! let client = gw.client("dev@example.com", &["developers"]).await;
//! # let _ = client;
//! // What the gateway recorded and audited:
//! let (store, keyring) = (gw.store(), gw.keyring());
//! # let _ = (store, keyring);
//! gw.shutdown().await;
//! # }
//! ```
//!
//! Tokens come from two development issuers the gateway trusts: the default one (usernames as
//! they are, groups from `groups`, `repository` and `job_id` carried) and [`CI_ISSUER`], which
//! plays a CI system (usernames `ci:<sub>`, no groups, the job's claims carried). The policy is
//! [`DEFAULT_POLICY`] unless the test gives its own; the cluster's pods are [`SANDBOX_CONFIG`].
//!
//! Use it from integration tests (`<crate>/tests/*.rs`). From a crate's own unit tests it still
//! works over the network, but the `gateway` types it hands out are a second copy of that
//! crate, distinct from the ones under test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway::app::Gateway;
use gateway::config::GatewayConfig;
pub use quickstart::DevIssuer;
use quickstart::kubeconfig;
use storage_schema::Keyring;
use storage_schema::store::Store;
use tokio::sync::oneshot;

/// The development issuer that plays a CI system (GitHub Actions-like): usernames `ci:<sub>`,
/// no groups, and the job's claims carried into the identity.
pub const CI_ISSUER: &str = "https://ci-issuer.kubetape.invalid";

/// The tests' access policy (`{ci_issuer}` is replaced): `developers` work with pods in
/// `default` and `staging` and may read (not exec into) pods in `prod`; the `acme/shop`
/// pipeline's staging jobs may read pods and logs in `staging`; `prod-debug` (pods, exec, attach
/// in `prod`) is requestable, approved by `sre`.
pub const DEFAULT_POLICY: &str = r#"
[[roles]]
name = "developer"
[[roles.rules]]
namespaces = ["default", "staging"]
resources = ["pods", "pods/log", "pods/exec", "pods/attach"]
verbs = ["get", "list", "watch", "create"]
[[roles.rules]]
namespaces = ["prod"]
resources = ["pods", "pods/log"]
verbs = ["get", "list", "watch"]

[[roles]]
name = "pipeline-staging"
[[roles.rules]]
namespaces = ["staging"]
resources = ["pods", "pods/log"]
verbs = ["get", "list"]

[[roles]]
name = "prod-debug"
requestable = true
approvers = ["sre"]
max_ttl = "1h"
[[roles.rules]]
namespaces = ["prod"]
resources = ["pods", "pods/log", "pods/exec", "pods/attach"]
verbs = ["get", "list", "watch", "create"]

[[bindings]]
name = "developers"
groups = ["developers"]
roles = ["developer"]

[[bindings]]
name = "shop-staging-deploys"
roles = ["pipeline-staging"]
[[bindings.ci]]
issuer = "{ci_issuer}"
claims = { repository = "acme/shop", environment = "staging" }
"#;

/// The tests' cluster (a sandbox configuration): `demo` (prints `demo-started`, then idles),
/// `web` in `staging`, `echo` (a `cat` with stdin, ended by the attacher's end of input),
/// `shells` and `shells-osc` (a known prompt for the command-extraction corpus, the second with
/// OSC 133/7 shell integration) and `db` in `prod`. `demo` serves HTTP on 80 and a TCP echo on
/// 7000, `db` a TCP echo on 5432 (port-forward).
pub const SANDBOX_CONFIG: &str = r#"
[[pods]]
name = "demo"
namespace = "default"
[[pods.containers]]
name = "shell"
command = ["sh", "-c", "echo demo-started; while true; do sleep 3600; done"]
# Real servers behind the pod's ports (port-forward): HTTP with known bytes and upload echo, TCP echo.
ports = [{ port = 80, serve = "http" }, { port = 7000, serve = "echo" }]

[[pods]]
name = "web"
namespace = "staging"
[[pods.containers]]
name = "app"
command = ["sh", "-c", "while true; do sleep 3600; done"]

[[pods]]
name = "echo"
namespace = "default"
[[pods.containers]]
name = "cat"
command = ["cat"]
stdin = true
# The attacher's end of input ends the container's input (kubectl run -i --rm style).
stdin_once = true

# Interactive shells for the command-extraction corpus (tests/corpus): a known prompt and no
# history file; the corpus execs bash, dash or busybox sh in it.
[[pods]]
name = "shells"
namespace = "default"
[[pods.containers]]
name = "sh"
command = ["sh", "-c", "while true; do sleep 3600; done"]
workdir = "/tmp"
[pods.containers.env]
PS1 = "kt$ "
HISTFILE = "/dev/null"
LESSHISTFILE = "-"
LANG = "C.UTF-8"

# The same with bash shell integration: OSC 133 prompt/command/exit marks and OSC 7 cwd.
[[pods]]
name = "shells-osc"
namespace = "default"
[[pods.containers]]
name = "sh"
command = ["sh", "-c", "while true; do sleep 3600; done"]
workdir = "/tmp"
[pods.containers.env]
PS1 = '\[\e]133;A\a\]kt$ \[\e]133;B\a\]'
PS0 = '\e]133;C\a'
PROMPT_COMMAND = 'printf "\033]133;D;%s\007\033]7;file://%s%s\007" "$?" "$HOSTNAME" "$PWD"'
HISTFILE = "/dev/null"
LESSHISTFILE = "-"
LANG = "C.UTF-8"

[[pods]]
name = "db"
namespace = "prod"
[[pods.containers]]
name = "postgres"
command = ["sh", "-c", "while true; do sleep 3600; done"]
ports = [{ port = 5432, serve = "echo" }]
"#;

/// The files a test gateway runs from, in one directory:
///
/// | path | what |
/// |---|---|
/// | `gateway.toml` | the configuration (`listen = 127.0.0.1:0`, upstream = the sandbox) |
/// | `policy.toml` | the access policy (reloaded by the gateway when it changes) |
/// | `issuer/`, `ci-issuer/` | the development issuers (keys, JWKS) |
/// | `gateway-tls/` | a CA and the gateway's certificate |
/// | `store/`, `keys/` | the recording store and keyring (created by the gateway) |
#[derive(Debug, Clone)]
pub struct GatewayFiles {
    pub root: PathBuf,
    pub ca_pem: String,
    pub store_url: String,
    pub keys: PathBuf,
}

impl GatewayFiles {
    /// Writes the files into `root` for a gateway in front of the cluster `sandbox_kubeconfig`
    /// reaches, with `policy` (`{ci_issuer}` is replaced).
    pub fn write(root: &Path, sandbox_kubeconfig: &Path, policy: &str) -> GatewayFiles {
        let issuer = DevIssuer::open_or_create(
            &root.join("issuer"),
            DevIssuer::DEFAULT_ISSUER,
            DevIssuer::DEFAULT_AUDIENCE,
        )
        .expect("dev issuer");
        let ci_issuer =
            DevIssuer::open_or_create(&root.join("ci-issuer"), CI_ISSUER, issuer.audience())
                .expect("CI dev issuer");
        let files = GatewayFiles {
            root: root.to_owned(),
            ca_pem: gateway::tls::write_self_signed(&root.join("gateway-tls"))
                .expect("gateway certificate"),
            store_url: format!("file://{}", root.join("store").display()),
            keys: root.join("keys"),
        };
        files.write_policy(policy);
        let config = format!(
            r#"
listen = "127.0.0.1:0"
cluster_name = "sandbox"
policy = "policy.toml"
[tls]
cert = "{tls}/tls.crt"
key = "{tls}/tls.key"
[upstream]
kubeconfig = "{sandbox}"
[recording]
store = "{store_url}"
keys = "{keys}"
[[issuers]]
issuer = "{iss}"
audience = ["{aud}"]
jwks = {{ file = "{jwks}" }}
carry_claims = ["repository", "job_id"]
[[issuers]]
issuer = "{ci_iss}"
audience = ["{aud}"]
jwks = {{ file = "{ci_jwks}" }}
username_prefix = "ci:"
groups_claim = ""
carry_claims = ["repository", "environment", "job_id"]
[revocation]
admin_groups = ["kubetape-admins"]
"#,
            tls = root.join("gateway-tls").display(),
            sandbox = sandbox_kubeconfig.display(),
            store_url = files.store_url,
            keys = files.keys.display(),
            iss = issuer.issuer(),
            aud = issuer.audience(),
            jwks = issuer.jwks_path().display(),
            ci_iss = ci_issuer.issuer(),
            ci_jwks = ci_issuer.jwks_path().display(),
        );
        std::fs::write(files.config(), config).expect("gateway config");
        files
    }

    /// `gateway.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("gateway.toml")
    }

    /// `policy.toml`.
    pub fn policy(&self) -> PathBuf {
        self.root.join("policy.toml")
    }

    /// Replaces the policy file (`{ci_issuer}` is replaced); the gateway reloads it.
    pub fn write_policy(&self, policy: &str) {
        std::fs::write(self.policy(), policy.replace("{ci_issuer}", CI_ISSUER)).expect("policy");
    }

    /// The default development issuer's directory (what `kubetape-quickstart token` reads).
    pub fn issuer_dir(&self) -> PathBuf {
        self.root.join("issuer")
    }

    /// The CI issuer's directory.
    pub fn ci_issuer_dir(&self) -> PathBuf {
        self.root.join("ci-issuer")
    }

    /// The default development issuer (mint any token with it, expired or mis-addressed too).
    pub fn issuer(&self) -> DevIssuer {
        DevIssuer::open(&self.issuer_dir()).expect("dev issuer")
    }

    /// The CI issuer.
    pub fn ci_issuer(&self) -> DevIssuer {
        DevIssuer::open(&self.ci_issuer_dir()).expect("CI dev issuer")
    }

    /// The gateway's recording store.
    pub fn store(&self) -> Store {
        Store::open(&self.store_url).expect("open the gateway's store")
    }

    /// The gateway's keyring (it exists once the gateway has started).
    pub fn keyring(&self) -> Keyring {
        Keyring::open(&self.keys).expect("open the gateway's keyring")
    }

    /// Writes, under `root`, a kubeconfig for the gateway at `addr` whose user presents `token`
    /// (or nothing, for `None`); `name` tells the file apart.
    pub fn kubeconfig_with_token(
        &self,
        addr: SocketAddr,
        name: &str,
        token: Option<&str>,
    ) -> PathBuf {
        let path = self.root.join(format!("kubeconfig-{}", slug(name)));
        let config = kubeconfig::for_gateway(addr, &self.ca_pem, name, kubeconfig::token(token));
        kubeconfig::write(&path, &config).expect("write kubeconfig");
        path
    }
}

/// `text` with everything but ASCII letters and digits replaced, for file names.
pub fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A token from the default development issuer for `user` in `groups`, valid for 10 minutes.
pub fn mint(issuer: &DevIssuer, user: &str, groups: &[&str]) -> String {
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    issuer
        .mint(
            user,
            &groups,
            Duration::from_secs(600),
            serde_json::Map::new(),
        )
        .token
}

/// A change to the configuration ([`TestGatewayBuilder::configure`]).
type Configure = Box<dyn FnOnce(&mut GatewayConfig) + Send>;

/// How a [`TestGateway`] starts; [`TestGateway::builder`].
pub struct TestGatewayBuilder {
    policy: String,
    cluster: sandbox::SandboxConfig,
    configure: Vec<Configure>,
}

impl std::fmt::Debug for TestGatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGatewayBuilder")
            .field("policy", &self.policy)
            .field("configure", &self.configure.len())
            .finish_non_exhaustive()
    }
}

impl TestGatewayBuilder {
    /// Another access policy (`{ci_issuer}` is replaced).
    pub fn policy(mut self, policy: &str) -> Self {
        self.policy = policy.to_owned();
        self
    }

    /// Another cluster.
    pub fn cluster(mut self, cluster: sandbox::SandboxConfig) -> Self {
        self.cluster = cluster;
        self
    }

    /// Changes the configuration after it is read from `gateway.toml` and before the gateway is
    /// built (limits, intervals, audit settings…); may be given several times, applied in order.
    pub fn configure(mut self, f: impl FnOnce(&mut GatewayConfig) + Send + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// Starts the sandbox, then the gateway; returns once the gateway listens.
    pub async fn start(self) -> TestGateway {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().to_owned();
        let sandbox = sandbox::start(
            self.cluster,
            "127.0.0.1:0".parse().expect("address"),
            &root.join("sandbox-state"),
        )
        .await
        .expect("start the sandbox");
        let files = GatewayFiles::write(&root, &sandbox.kubeconfig_path, &self.policy);
        let mut config = GatewayConfig::load(&files.config()).expect("load gateway.toml");
        // The test reads the audit records from the store; stdout is the test's own output.
        config.audit.stdout = false;
        for f in self.configure {
            f(&mut config);
        }
        let built = Gateway::build(&config).await.expect("build the gateway");
        let addr = built.local_addr().expect("gateway address");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(built.run(async {
            let _ = stopped.await;
        }));
        TestGateway {
            files,
            config,
            addr,
            sandbox: Some(sandbox),
            stop: Some(stop),
            served: Some(served),
            _dir: dir,
        }
    }
}

/// A gateway in-process on `127.0.0.1:0`, in front of an in-process sandbox, recording into a
/// store of its own. Dropping it stops both (without waiting); [`TestGateway::shutdown`] stops
/// them and waits, which is what a test that reads the audit log afterwards wants.
#[derive(Debug)]
pub struct TestGateway {
    files: GatewayFiles,
    config: GatewayConfig,
    addr: SocketAddr,
    sandbox: Option<sandbox::Sandbox>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestGateway {
    /// With [`DEFAULT_POLICY`] and the [`SANDBOX_CONFIG`] cluster.
    pub async fn start() -> TestGateway {
        TestGateway::builder().start().await
    }

    pub fn builder() -> TestGatewayBuilder {
        TestGatewayBuilder {
            policy: DEFAULT_POLICY.to_owned(),
            cluster: sandbox::SandboxConfig::from_toml_str(
                SANDBOX_CONFIG,
                Path::new("test_support::gateway::SANDBOX_CONFIG"),
            )
            .expect("the tests' sandbox configuration is valid"),
            configure: Vec::new(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA that signed the gateway's certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.files.ca_pem
    }

    /// The files it runs from (configuration, policy, issuers, store, keys).
    pub fn files(&self) -> &GatewayFiles {
        &self.files
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The sandbox cluster behind it (its request log: `sandbox().requests`).
    pub fn sandbox(&self) -> &sandbox::Sandbox {
        self.sandbox
            .as_ref()
            .expect("the sandbox runs until shutdown")
    }

    /// A 10-minute token for `user` in `groups` from the default development issuer.
    pub fn token(&self, user: &str, groups: &[&str]) -> String {
        mint(&self.files.issuer(), user, groups)
    }

    /// A kubeconfig whose user presents a 10-minute token for `user` in `groups`.
    pub fn kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let name = format!("{user}-{}", groups.join("-"));
        self.files
            .kubeconfig_with_token(self.addr, &name, Some(&self.token(user, groups)))
    }

    /// A kube-rs client talking to the gateway as `user` in `groups`.
    pub async fn client(&self, user: &str, groups: &[&str]) -> kube::Client {
        client_from(&self.kubeconfig(user, groups)).await
    }

    /// The recording store the gateway writes.
    pub fn store(&self) -> Store {
        self.files.store()
    }

    /// The gateway's keyring.
    pub fn keyring(&self) -> Keyring {
        self.files.keyring()
    }

    /// Replaces the policy file; the gateway reloads it within about a second.
    pub fn write_policy(&self, policy: &str) {
        self.files.write_policy(policy);
    }

    /// Stops the gateway (which seals its audit stream) and then the sandbox, and waits for
    /// both; returns what the gateway's `run` returned.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = match self.served.take() {
            Some(task) => task.await.expect("the gateway task did not panic"),
            None => Ok(()),
        };
        if let Some(sandbox) = self.sandbox.take() {
            sandbox.shutdown().await.expect("the sandbox stops");
        }
        served
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The sandbox stops itself when dropped (and kills its pods).
    }
}

/// A kube-rs client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig");
    kube::Client::try_from(config).expect("client")
}
