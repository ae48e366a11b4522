//! Harness for the end-to-end tests in `tests/tests/`: a sandbox cluster and a gateway started
//! as real processes from the workspace's binaries, each test in its own directory with its own
//! `HOME`, store and keys, and real `kubectl` binaries of several versions pointed at them.
//!
//! The binaries must be built (`cargo build --workspace --bins`; `scripts/test` does it).

pub mod debug_checks;
pub mod exec_checks;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use quickstart::DevIssuer;
use quickstart::kubeconfig;
pub use test_support::gateway::{CI_ISSUER, DEFAULT_POLICY, GatewayFiles, SANDBOX_CONFIG, slug};
pub use test_support::{Kubectl, Proc, bin, run, run_with_open_stdin, strict};

/// How long a server process may take to say it is ready.
const READY: Duration = Duration::from_secs(60);

/// Spawns `cmd` and waits for a line containing `ready` (see [`test_support::spawn_until`]).
fn spawn_until(cmd: Command, ready: &str, log: PathBuf) -> (Proc, String) {
    test_support::spawn_until(cmd, ready, log, READY)
}

/// `kubetape-gateway serve --config CONFIG` with `HOME` set, once it listens; its address.
fn spawn_gateway(config: &Path, home: &Path, log: PathBuf) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(bin("kubetape-gateway"));
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("HOME", home)
        .env("KUBETAPE_LOG", "info");
    let (gateway, line) = spawn_until(cmd, "listening on https://", log);
    (gateway, addr_in(&line))
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
    /// The gateway's configuration, policy, issuers and certificate.
    pub files: GatewayFiles,
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
        Self::start_custom(policy, &[])
    }

    /// [`Cluster::start_with_policy`], the sandbox started with extra `serve` arguments (its
    /// modes: `--exec-websocket refuse|v4-only`, `--drop-after-status`).
    pub fn start_custom(policy: &str, sandbox_args: &[&str]) -> Self {
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

        let files = GatewayFiles::write(&root, &root.join("sandbox-state/kubeconfig"), policy);
        let (gateway, gateway_addr) =
            spawn_gateway(&files.config(), &home, root.join("gateway.log"));
        Self {
            dir,
            home,
            sandbox: Some(sandbox),
            gateway,
            sandbox_addr,
            gateway_addr,
            ca_pem: files.ca_pem.clone(),
            store_url: files.store_url.clone(),
            keys: files.keys.clone(),
            files,
            extra_gateways: Vec::new(),
        }
    }

    /// The gateway's configuration file (shared by every gateway of this cluster).
    pub fn gateway_config(&self) -> PathBuf {
        self.files.config()
    }

    /// Starts another gateway process with the same configuration, store and keys (a replica
    /// behind a load balancer); returns its address. It lives as long as the cluster.
    pub fn start_second_gateway(&mut self) -> SocketAddr {
        let n = self.extra_gateways.len() + 2;
        let (gateway, addr) = self.start_replica(&n.to_string());
        self.extra_gateways.push(gateway);
        addr
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
        self.files.issuer()
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
        let name = slug(&format!(
            "{user}-{}-{}-{}",
            groups.join("-"),
            claim_text.join("-"),
            addr.port()
        ));
        let mut args: Vec<String> = vec![
            "token".into(),
            "--issuer-dir".into(),
            self.files.issuer_dir().display().to_string(),
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
        self.write_kubeconfig(&name, addr, user, plugin(&args))
    }

    /// A kubeconfig for a CI job: a token from the CI issuer for `sub` with these claims (and
    /// `groups`, which that issuer does not map: CI identities have none).
    pub fn kubeconfig_ci(&self, sub: &str, claims: &[(&str, &str)], groups: &[&str]) -> PathBuf {
        let name = slug(&format!("ci-{sub}-{claims:?}-{groups:?}"));
        let mut args: Vec<String> = vec![
            "token".into(),
            "--issuer-dir".into(),
            self.files.ci_issuer_dir().display().to_string(),
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
        self.write_kubeconfig(&name, self.gateway_addr, sub, plugin(&args))
    }

    /// Another gateway process with the same configuration (same store, keys, policy and
    /// issuers) on its own port: a replica behind the same load balancer.
    pub fn start_replica(&self, name: &str) -> (Proc, SocketAddr) {
        spawn_gateway(
            &self.gateway_config(),
            &self.home,
            self.root().join(format!("gateway-{name}.log")),
        )
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
        self.files.policy()
    }

    /// Replaces the policy file and waits (bounded) until the gateway logs `expect` one more
    /// time than before: `"policy reloaded"` or `"policy file rejected"`. Returns that log line.
    pub fn replace_policy(&self, policy: &str, expect: &str) -> String {
        let log = || std::fs::read_to_string(&self.gateway.log).unwrap_or_default();
        let count = |text: &str| text.lines().filter(|l| l.contains(expect)).count();
        let before = count(&log());
        self.files.write_policy(policy);
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
        self.files
            .kubeconfig_with_token(self.gateway_addr, name, token)
    }

    /// The sandbox's own kubeconfig (straight to the cluster, no gateway): the baseline.
    pub fn sandbox_kubeconfig(&self) -> PathBuf {
        self.root().join("sandbox-state/kubeconfig")
    }

    /// Writes `kubeconfig-<name>` for the gateway at `addr`, as `user` with `credentials`.
    fn write_kubeconfig(
        &self,
        name: &str,
        addr: SocketAddr,
        user: &str,
        credentials: serde_json::Value,
    ) -> PathBuf {
        let path = self.root().join(format!("kubeconfig-{name}"));
        let config = kubeconfig::for_gateway(addr, &self.files.ca_pem, user, credentials);
        kubeconfig::write(&path, &config).expect("write kubeconfig");
        path
    }

    /// `kubectl port-forward -n NAMESPACE pod/POD LOCAL:REMOTE` as `kubeconfig`, where the pod
    /// echoes on REMOTE: once kubectl says it is forwarding, `probe` goes through one connection
    /// and must come back; then kubectl gets Ctrl-C (it closes its stream to the gateway, which
    /// seals the session) and is killed if it has not exited within 10 s.
    pub fn forward_echo(
        &self,
        kubectl: &Path,
        kubeconfig: &Path,
        (namespace, pod, remote): (&str, &str, u16),
        probe: &[u8],
    ) {
        use std::io::{BufRead as _, BufReader, Read as _, Write as _};
        const T: Duration = Duration::from_secs(60);
        let local = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
            .port();
        let mut child = self
            .kubectl(kubectl, kubeconfig)
            .args(["port-forward", "-n", namespace])
            .arg(format!("pod/{pod}"))
            .arg(format!("{local}:{remote}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn kubectl port-forward");
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + T;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with("Forwarding from 127.0.0.1:") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let mut err = String::new();
                    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                    panic!("kubectl port-forward did not start: {err}");
                }
            }
        }
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", local)).expect("connect");
        conn.set_read_timeout(Some(T)).expect("read timeout");
        conn.write_all(probe).expect("write through the forward");
        let mut back = vec![0u8; probe.len()];
        conn.read_exact(&mut back).expect("the echo");
        assert_eq!(back, probe, "the pod echoes through the forward");
        drop(conn);
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
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

/// The credentials of a kubeconfig whose user runs the development token plugin
/// (`kubetape-quickstart token ARGS…`).
fn plugin(args: &[String]) -> serde_json::Value {
    kubeconfig::exec_plugin(&bin("kubetape-quickstart"), args)
}

/// `chattr -R +i DIR` for as long as it lives: even root cannot create or append to files
/// there, so every write to it fails the way a refusing store's or a broken disk's do.
#[derive(Debug)]
pub struct Immutable(PathBuf);

impl Immutable {
    pub fn set(dir: &Path) -> Immutable {
        let out = Command::new("chattr")
            .args(["-R", "+i"])
            .arg(dir)
            .output()
            .expect("chattr");
        assert!(
            out.status.success(),
            "chattr +i (needs root and an ext4/xfs/btrfs filesystem): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Immutable(dir.to_owned())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .args(["-R", "-i"])
            .arg(&self.0)
            .status();
    }
}
