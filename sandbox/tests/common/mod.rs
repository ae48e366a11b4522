//! Shared helpers: an in-process sandbox on 127.0.0.1:0 with its own state directory, and the
//! real kubectl binaries run against it with their own HOME and cache directory.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Stdio;

use sandbox::{ContainerSpec, PodSpec, Sandbox, SandboxConfig};
use tokio::io::AsyncWriteExt as _;

/// A running sandbox and the directory holding its state and kubectl's HOME.
pub struct TestSandbox {
    pub sb: Sandbox,
    pub dir: tempfile::TempDir,
}

/// The cluster the tests use: `demo` (idles after printing `booted`; serves HTTP on port 80 and a
/// TCP echo on 7000) and `echo` (prints a
/// greeting, then answers one line of stdin and exits 5).
pub fn config() -> SandboxConfig {
    let mut demo = ContainerSpec::new(
        "shell",
        ["sh", "-c", "echo booted; while true; do sleep 3600; done"],
    );
    demo.workdir = Some("/tmp".into());
    // HTTP on 80, TCP echo on 7000 (port-forward's targets).
    demo.ports = sandbox::config::demo_ports();
    let echo = ContainerSpec::new(
        "main",
        [
            "sh",
            "-c",
            "echo hello from main; read l; echo got $l; exit 5",
        ],
    );
    let pod = |name: &str, c: ContainerSpec| PodSpec {
        name: name.into(),
        namespace: "default".into(),
        labels: [("app".to_string(), name.to_string())].into(),
        containers: vec![c],
    };
    SandboxConfig {
        pods: vec![pod("demo", demo), pod("echo", echo)],
        ..SandboxConfig::default()
    }
}

pub async fn start(config: SandboxConfig) -> TestSandbox {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox::start(
        config,
        "127.0.0.1:0".parse().unwrap(),
        &dir.path().join("state"),
    )
    .await
    .unwrap();
    TestSandbox { sb, dir }
}

/// What a kubectl run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub stderr_bytes: Vec<u8>,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// How to invoke one kubectl build.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub version: &'static str,
    /// Extra environment, e.g. `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`.
    pub env: Vec<(&'static str, &'static str)>,
}

impl Kubectl {
    pub fn new(version: &'static str) -> Self {
        Self {
            version,
            env: Vec::new(),
        }
    }

    /// kubectl ≥ 1.30 with the WebSocket executor switched off (SPDY only).
    pub fn spdy_only(version: &'static str) -> Self {
        Self {
            version,
            env: vec![("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")],
        }
    }

    /// The binary (see [`test_support::Kubectl::path`]).
    pub fn binary(&self) -> PathBuf {
        test_support::Kubectl::from_version(self.version)
            .unwrap_or_else(|| panic!("kubectl {} is not one the tests know", self.version))
            .path()
            .unwrap_or_else(|| panic!("kubectl {} is not installed", self.version))
    }

    /// The command line (for tmux), with HOME and the cache inside the test's directory.
    pub fn command_line(&self, t: &TestSandbox, args: &str) -> String {
        let home = t.dir.path().join("home");
        let env: String = self.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        format!(
            "env HOME={home} {env}{bin} --kubeconfig {kc} --cache-dir {home}/cache {args}",
            home = home.display(),
            bin = self.binary().display(),
            kc = t.sb.kubeconfig_path.display(),
        )
    }

    /// Runs kubectl against the sandbox with `stdin` (or /dev/null), waiting for it to exit.
    pub async fn run(&self, t: &TestSandbox, args: &[&str], stdin: Option<&[u8]>) -> Run {
        self.run_with_kubeconfig(t, &t.sb.kubeconfig_path, args, stdin)
            .await
    }

    pub async fn run_with_kubeconfig(
        &self,
        t: &TestSandbox,
        kubeconfig: &Path,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Run {
        let home = t.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = tokio::process::Command::new(self.binary());
        cmd.env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/bin:/bin")
            .envs(self.env.iter().copied())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(home.join("cache"))
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary().display()));
        if let Some(input) = stdin {
            let mut w = child.stdin.take().unwrap();
            let input = input.to_vec();
            tokio::spawn(async move {
                let _ = w.write_all(&input).await;
            });
        }
        let out =
            tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
                .await
                .unwrap_or_else(|_| panic!("kubectl {} {args:?} timed out", self.version))
                .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            stderr_bytes: out.stderr,
        }
    }
}

/// Sends raw HTTP/1.1 bytes over TLS (trusting the sandbox CA, no ALPN) and returns the whole
/// response; the request should say `Connection: close`.
pub async fn raw_https(t: &TestSandbox, request: &str) -> String {
    use rustls_pki_types::pem::PemObject as _;
    use tokio::io::AsyncReadExt as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(t.sb.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(t.sb.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `tmux`'s window `s` until `done` holds, off the runtime's worker (the sandbox runs on
/// it).
#[allow(dead_code)]
pub fn wait(tmux: &test_support::Tmux, what: &str, done: impl Fn(&str) -> bool) -> String {
    tokio::task::block_in_place(|| tmux.wait("s", what, done))
}
