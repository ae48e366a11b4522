//! The sandbox's cluster description: which pods exist, what their containers run, and the
//! bearer token the API requires. Loaded from TOML (see `sandbox/sandbox.example.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole sandbox: its pods and the credential clients must present.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// The bearer token every request must carry; a random one is generated when absent.
    #[serde(default = "generate_token")]
    pub token: String,
    /// The version `/version` reports (kubectl warns about skew, the dispatcher picks by it).
    #[serde(default = "default_version")]
    pub kubernetes_version: String,
    #[serde(default)]
    pub pods: Vec<PodSpec>,
    /// Behave like an older or locked-down cluster (for testing clients against them).
    #[serde(default)]
    pub modes: Modes,
    /// Which local program runs a container image the API is asked for (ephemeral debug
    /// containers, created pods), first match wins. Default: busybox images run `busybox`.
    #[serde(default = "default_images")]
    pub images: Vec<ImageSpec>,
}

/// A container image mapped to a local program.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Image references it matches; `*` matches any run of characters (`busybox*` matches
    /// `busybox`, `busybox:1.36`, `busybox@sha256:…`).
    pub pattern: String,
    /// Prepended to the container's command and args (e.g. `["busybox"]`, so `sh` runs
    /// `busybox sh`).
    pub command: Vec<String>,
    /// What runs when the container gives no command (the image's entrypoint).
    #[serde(default)]
    pub default: Vec<String>,
}

impl ImageSpec {
    /// Whether `image` matches the pattern.
    pub fn matches(&self, image: &str) -> bool {
        glob(self.pattern.as_bytes(), image.as_bytes())
    }
}

/// `*`-only glob matching (iterative, so no pattern can make it slow).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

fn default_images() -> Vec<ImageSpec> {
    let mut images: Vec<ImageSpec> = ["busybox*", "*/busybox*"]
        .into_iter()
        .map(|pattern| ImageSpec {
            pattern: pattern.into(),
            command: vec!["busybox".into()],
            default: vec!["sh".into()],
        })
        .collect();
    // The image configured pods report: their command runs as it is (`kubectl debug
    // --copy-to` copies such pods).
    images.push(ImageSpec {
        pattern: "kubetape-sandbox/*".into(),
        command: Vec::new(),
        default: vec!["sh".into()],
    });
    images
}

/// The local argv for a container of `image` with this command and args, by the first
/// matching mapping; `None` if no mapping matches.
pub fn local_command(
    images: &[ImageSpec],
    image: &str,
    command: &[String],
    args: &[String],
) -> Option<Vec<String>> {
    let mapping = images.iter().find(|m| m.matches(image))?;
    let mut argv = mapping.command.clone();
    if command.is_empty() && args.is_empty() {
        argv.extend(mapping.default.iter().cloned());
    } else {
        argv.extend(command.iter().cloned());
        argv.extend(args.iter().cloned());
    }
    (!argv.is_empty()).then_some(argv)
}

/// Ways the sandbox can behave like clusters other than a current, default one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modes {
    /// What exec/attach over WebSocket gets.
    #[serde(default)]
    pub exec_websocket: ExecWebSocket,
    /// After the exit Status, drop the connection at once: no WebSocket close frame, no SPDY
    /// teardown (what a crashing proxy or node does).
    #[serde(default)]
    pub drop_after_status: bool,
    /// Exec over WebSocket: never read the client's connection (the process gets no stdin),
    /// then send the exit Status and the close frame and hold the connection open, still
    /// unread, for a minute: a cluster whose side of the connection stopped taking bytes (a
    /// wedged node or proxy). A client that keeps sending finds its writes blocked.
    #[serde(default)]
    pub stall_reading: bool,
}

/// exec/attach over WebSocket, as different API servers answer it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExecWebSocket {
    /// An API server ≥ 1.30 (the stream translator): `v5.channel.k8s.io` and every older
    /// protocol.
    #[default]
    Translate,
    /// Only what kubelet speaks (an API server without the translator): `v4.channel.k8s.io`
    /// when offered; an offer of `v5.channel.k8s.io` alone is refused with 403, so kubectl
    /// falls back to SPDY.
    V4Only,
    /// Every WebSocket upgrade refused with 403 (a proxy that blocks WebSocket, or kubelet's
    /// answer to a v5-only offer), port-forward's tunnel included: kubectl falls back to SPDY,
    /// kube-rs fails.
    Refuse,
}

/// A pod: a namespace-scoped name and its containers (local processes).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub containers: Vec<ContainerSpec>,
}

/// A container: its main process (the attach target, started with the sandbox) and the
/// environment exec'd commands get.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    pub name: String,
    /// argv of the main process; looked up in `PATH`.
    pub command: Vec<String>,
    /// Run the main process in a PTY (stdout and stderr merged) rather than with pipes.
    #[serde(default)]
    pub tty: bool,
    /// The main process reads stdin (from attachers); without it stdin is `/dev/null`.
    #[serde(default)]
    pub stdin: bool,
    /// Close the main process's stdin when the first attacher closes its stdin.
    #[serde(default)]
    pub stdin_once: bool,
    /// Working directory of the main process and of exec'd commands (default `/`).
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// Extra environment for the main process and exec'd commands.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The image name the pod reports (cosmetic).
    #[serde(default = "default_image")]
    pub image: String,
    /// Ports the container serves (`kubectl port-forward` reaches them), each backed by a real
    /// local process the sandbox starts on a loopback port it picks.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
}

/// A container port and the process behind it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// The port as the pod declares it (`containerPort`), what clients forward to.
    pub port: u16,
    /// The port's name in the pod spec (optional).
    #[serde(default)]
    pub name: Option<String>,
    /// A server built into `kubetape-sandbox` (`serve-port`): `http` or `echo`.
    #[serde(default)]
    pub serve: Option<BuiltinServer>,
    /// Or any program: it must listen on `127.0.0.1:$PORT` (the sandbox picks `PORT`).
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

/// The servers `kubetape-sandbox serve-port` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuiltinServer {
    /// HTTP/1.1: `GET /` answers `portserver::HTTP_GREETING`, `GET /bytes/N` N known
    /// bytes, any request with a body gets the body back.
    Http,
    /// TCP echo: every byte back, and the write side shut when the client shuts its own.
    Echo,
}

impl BuiltinServer {
    pub fn flag(self) -> &'static str {
        match self {
            BuiltinServer::Http => "--http",
            BuiltinServer::Echo => "--echo",
        }
    }
}

fn generate_token() -> String {
    format!("sandbox-{}", uuid::Uuid::new_v4().simple())
}

fn default_version() -> String {
    "v1.33.0".into()
}

fn default_namespace() -> String {
    "default".into()
}

fn default_image() -> String {
    "kubetape-sandbox/local:latest".into()
}

// === impl SandboxConfig ===

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never print it.
        f.debug_struct("SandboxConfig")
            .field("token", &"<redacted>")
            .field("kubernetes_version", &self.kubernetes_version)
            .field("pods", &self.pods)
            .field("modes", &self.modes)
            .field("images", &self.images)
            .finish()
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            token: generate_token(),
            kubernetes_version: default_version(),
            pods: Vec::new(),
            modes: Modes::default(),
            images: default_images(),
        }
    }
}

impl SandboxConfig {
    /// Parses and validates TOML text.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            source: Box::new(e),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// The quickstart cluster: one pod `demo` in `default` with a shell container idling.
    pub fn demo() -> Self {
        Self {
            pods: vec![PodSpec {
                name: "demo".into(),
                namespace: default_namespace(),
                labels: BTreeMap::from([("app".to_string(), "demo".to_string())]),
                containers: vec![ContainerSpec {
                    ports: demo_ports(),
                    ..ContainerSpec::new("shell", ["sh", "-c", "while true; do sleep 3600; done"])
                }],
            }],
            ..Self::default()
        }
    }

    /// Checks names are usable in URLs and unique, and every container has a command.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.token.is_empty() || self.token.chars().any(|c| c.is_whitespace()) {
            return bad("token must be non-empty and contain no whitespace".into());
        }
        let mut seen = std::collections::HashSet::new();
        for pod in &self.pods {
            for name in [&pod.name, &pod.namespace] {
                if !is_dns_label(name) {
                    return bad(format!("{name:?} is not a valid DNS-1123 name"));
                }
            }
            if !seen.insert((&pod.namespace, &pod.name)) {
                return bad(format!(
                    "pod {}/{} is defined twice",
                    pod.namespace, pod.name
                ));
            }
            if pod.containers.is_empty() {
                return bad(format!("pod {} has no containers", pod.name));
            }
            let mut names = std::collections::HashSet::new();
            let mut ports = std::collections::HashSet::new();
            for p in pod.containers.iter().flat_map(|c| &c.ports) {
                if p.port == 0 || !ports.insert(p.port) {
                    return bad(format!(
                        "pod {}: bad or duplicate port {}",
                        pod.name, p.port
                    ));
                }
                match (&p.serve, &p.command) {
                    (Some(_), None) => {}
                    (None, Some(cmd)) if !cmd.is_empty() => {}
                    _ => {
                        return bad(format!(
                            "pod {} port {}: give either `serve` or a non-empty `command`",
                            pod.name, p.port
                        ));
                    }
                }
            }
            for c in &pod.containers {
                if !is_dns_label(&c.name) || !names.insert(&c.name) {
                    return bad(format!(
                        "pod {}: bad or duplicate container name {:?}",
                        pod.name, c.name
                    ));
                }
                if c.command.is_empty() {
                    return bad(format!(
                        "pod {} container {}: empty command",
                        pod.name, c.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The demo pod's ports: HTTP on 80, TCP echo on 7000.
pub fn demo_ports() -> Vec<PortSpec> {
    vec![
        PortSpec {
            port: 80,
            name: Some("http".into()),
            serve: Some(BuiltinServer::Http),
            command: None,
        },
        PortSpec {
            port: 7000,
            name: Some("echo".into()),
            serve: Some(BuiltinServer::Echo),
            command: None,
        },
    ]
}

// === impl ContainerSpec ===

impl ContainerSpec {
    /// A non-TTY container with stdin open, running `command` in `/`.
    pub fn new<S: Into<String>>(name: &str, command: impl IntoIterator<Item = S>) -> Self {
        Self {
            name: name.into(),
            command: command.into_iter().map(Into::into).collect(),
            tty: false,
            stdin: true,
            stdin_once: false,
            workdir: None,
            env: BTreeMap::new(),
            image: default_image(),
            ports: Vec::new(),
        }
    }

    /// The working directory processes start in.
    pub fn workdir(&self) -> &Path {
        self.workdir.as_deref().unwrap_or(Path::new("/"))
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses() {
        let text = include_str!("../sandbox.example.toml");
        let c = SandboxConfig::from_toml_str(text, Path::new("example")).unwrap();
        assert_eq!(c.token, "sandbox-example-token");
        assert_eq!(c.pods[0].name, "demo");
        assert_eq!(c.pods[0].containers[0].workdir(), Path::new("/tmp"));
        assert_eq!(c.pods[0].containers[0].ports, demo_ports());
    }

    #[test]
    fn images_match_by_glob() {
        let busybox = &SandboxConfig::default().images[0];
        for yes in ["busybox", "busybox:1.36", "busybox@sha256:00"] {
            assert!(busybox.matches(yes), "{yes}");
        }
        for no in ["alpine", "xbusybox", "docker.io/library/busybox"] {
            assert!(!busybox.matches(no), "{no}");
        }
        assert!(SandboxConfig::default().images[1].matches("docker.io/library/busybox"));
        assert!(glob(b"a*b*c", b"aXXbYYc") && !glob(b"a*b*c", b"aXXbYY"));
        assert!(glob(b"*", b"") && glob(b"**", b"x") && !glob(b"", b"x"));
    }

    #[test]
    fn token_is_generated_and_redacted() {
        let c = SandboxConfig::from_toml_str("", Path::new("x")).unwrap();
        assert!(c.token.starts_with("sandbox-") && c.token.len() > 30);
        assert!(!format!("{c:?}").contains(&c.token));
    }

    #[test]
    fn rejects_bad_names_and_duplicates() {
        let dup = "[[pods]]\nname='a'\n[[pods.containers]]\nname='c'\ncommand=['true']\n\
                   [[pods]]\nname='a'\n[[pods.containers]]\nname='c'\ncommand=['true']\n";
        assert!(SandboxConfig::from_toml_str(dup, Path::new("x")).is_err());
        let upper = "[[pods]]\nname='A'\n[[pods.containers]]\nname='c'\ncommand=['true']\n";
        assert!(SandboxConfig::from_toml_str(upper, Path::new("x")).is_err());
        let both = "[[pods]]\nname='a'\n[[pods.containers]]\nname='c'\ncommand=['true']\n\
                    ports=[{port=80, serve='http', command=['x']}]\n";
        assert!(SandboxConfig::from_toml_str(both, Path::new("x")).is_err());
        let dup_port = "[[pods]]\nname='a'\n[[pods.containers]]\nname='c'\ncommand=['true']\n\
                        ports=[{port=80, serve='http'}, {port=80, serve='echo'}]\n";
        assert!(SandboxConfig::from_toml_str(dup_port, Path::new("x")).is_err());
        let modes = "[modes]\nexec_websocket='v4-only'\ndrop_after_status=true\n";
        let c = SandboxConfig::from_toml_str(modes, Path::new("x")).unwrap();
        assert_eq!(
            c.modes,
            Modes {
                exec_websocket: ExecWebSocket::V4Only,
                drop_after_status: true,
                stall_reading: false,
            }
        );
        assert!(
            SandboxConfig::from_toml_str("[modes]\nexec_websocket='off'\n", Path::new("x"))
                .is_err()
        );
        let unknown = "tokn='x'\n";
        assert!(SandboxConfig::from_toml_str(unknown, Path::new("x")).is_err());
        assert!(SandboxConfig::demo().validate().is_ok());
    }
}
