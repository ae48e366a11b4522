//! `kubetape-quickstart`: everything a newcomer needs to see kubetape work, on loopback, in one
//! command: a sandbox cluster with a demo pod, a development OIDC issuer, the gateway (the
//! `gateway` library, as `kubetape-gateway serve` runs it) recording into the default store, and
//! a kubeconfig whose user gets short-lived tokens from an exec credential plugin (this
//! binary's `token` subcommand).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use gateway::app::Gateway;
use gateway::config::{GatewayConfig, RecordingConfig, TlsConfig, UpstreamConfig};

use crate::devissuer::DevIssuer;
use crate::kubeconfig;

#[derive(Debug, Clone, clap::Args)]
pub struct QuickstartArgs {
    /// Where the quickstart keeps its cluster, issuer, certificates and kubeconfig
    /// [default: ~/.local/share/kubetape/quickstart].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Gateway address (loopback; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The identity the kubeconfig's tokens carry.
    #[arg(long, default_value = "dev@example.com")]
    pub user: String,
    /// The group the kubeconfig's tokens carry (may exec in namespace `default`, and may ask
    /// for temporary access to namespace `prod`).
    #[arg(long, default_value = "developers")]
    pub group: String,
    /// A second identity, in group `sre`, who may approve access requests (`kubeconfig-approver`).
    #[arg(long, default_value = "sre@example.com")]
    pub approver: String,
    /// Recording store URL (what `kubetape ls` reads) [default: ~/.local/share/kubetape/store].
    #[arg(long, env = "KUBETAPE_STORE")]
    pub store: Option<String>,
    /// Recording keyring [default: ~/.config/kubetape/keys].
    #[arg(long, env = "KUBETAPE_KEYS")]
    pub keys: Option<PathBuf>,
}

/// Starts everything, prints what to type, and serves until `shutdown`.
pub async fn run(
    args: QuickstartArgs,
    shutdown: impl Future<Output = ()>,
    cut_short: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(default_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;

    // The demo pod, plus a "production" one that takes an approved request to reach.
    let mut pods = sandbox::SandboxConfig::demo();
    pods.pods.push(sandbox::PodSpec {
        name: "db".into(),
        namespace: "prod".into(),
        labels: Default::default(),
        containers: vec![sandbox::ContainerSpec::new(
            "postgres",
            ["sh", "-c", "while true; do sleep 3600; done"],
        )],
    });
    let cluster = sandbox::start(pods, "127.0.0.1:0".parse()?, &dir.join("sandbox"))
        .await
        .context("start the sandbox cluster")?;
    let issuer = DevIssuer::open_or_create(
        &dir.join("issuer"),
        DevIssuer::DEFAULT_ISSUER,
        DevIssuer::DEFAULT_AUDIENCE,
    )
    .context("development issuer")?;
    let tls_dir = dir.join("gateway");
    let ca_pem = gateway::tls::write_self_signed(&tls_dir).context("gateway certificate")?;

    let policy = dir.join("policy.toml");
    let kept = prepare_policy(&policy, &quickstart_policy(&args.group))
        .with_context(|| format!("write {}", policy.display()))?;
    let config = GatewayConfig {
        server: Default::default(),
        ops: Default::default(),
        lease: Default::default(),
        retention: Default::default(),
        custody: Default::default(),
        listen: args.listen,
        cluster_name: "sandbox".into(),
        tls: TlsConfig {
            cert: tls_dir.join("tls.crt"),
            key: tls_dir.join("tls.key"),
        },
        upstream: UpstreamConfig {
            kubeconfig: Some(cluster.kubeconfig_path.clone()),
            context: None,
        },
        recording: RecordingConfig {
            store: args.store.clone(),
            keys: args.keys.clone(),
            ..RecordingConfig::default()
        },
        issuers: vec![issuer.issuer_config()],
        policy: policy.clone(),
        // The terminal shows the instructions; the audit log still goes to the store.
        audit: gateway::audit::AuditConfig {
            stdout: false,
            ..Default::default()
        },
        revocation: Default::default(),
    };
    let gateway = Gateway::build(&config).await?;
    let addr = gateway.local_addr()?;
    let kubeconfig = dir.join("kubeconfig");
    write_kubeconfig(&kubeconfig, addr, &ca_pem, &issuer, &args.user, &args.group)
        .context("write the kubeconfig")?;
    let approver_kubeconfig = dir.join("kubeconfig-approver");
    write_kubeconfig(
        &approver_kubeconfig,
        addr,
        &ca_pem,
        &issuer,
        &args.approver,
        "sre",
    )
    .context("write the approver's kubeconfig")?;

    // The reviewer's CLI is built next to this binary; name it so the instructions work as pasted.
    let kubetape = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("kubetape")))
        .filter(|p| p.is_file())
        .map_or_else(|| "kubetape".to_string(), |p| p.display().to_string());
    if kept {
        println!(
            "Keeping your edited {} (the quickstart's own is in {}).\n",
            policy.display(),
            policy.with_extension("default.toml").display()
        );
    }
    println!(
        "kubetape quickstart is running (Ctrl-C stops it).\n\n  \
         gateway   https://{addr}  → sandbox cluster https://{} (pod `demo` in namespace `default`)\n  \
         identity  {} in group {} (short-lived tokens from a development issuer)\n\n\
         In another terminal:\n\n  \
         export KUBECONFIG={}\n  \
         kubectl get pods\n  \
         kubectl exec -it demo -- sh      # work, then `exit`\n  \
         {kubetape} ls          # the session you just recorded\n  \
         {kubetape} cat <SESSION>   # what the terminal showed\n  \
         {kubetape} verify <SESSION>\n\n\
         Port-forward (the demo pod serves HTTP on 80 and a TCP echo on 7000; each connection is\n\
         recorded: port, times, bytes each way, how it ended):\n\n  \
         kubectl port-forward pod/demo 18080:80 17000:7000   # leave it running\n  \
         curl -s localhost:18080/                            # in a third terminal\n  \
         {kubetape} ls          # the forward: its connections and bytes\n  \
         {kubetape} play <SESSION>  # its connections on a timeline\n\n\
         Just-in-time access to namespace `prod` (policy: {}, reloaded when you edit it):\n\n  \
         kubectl exec -n prod db -- id    # 403: says which rule is missing and how to ask\n  \
         {kubetape} request prod-debug --namespace prod --reason 'look at the db' --ttl 5m\n  \
         {kubetape} requests --kubeconfig {}   # the approver ({}) sees it\n  \
         {kubetape} approve <ID> --kubeconfig {}\n  \
         kubectl exec -it -n prod db -- sh  # allowed until the grant expires\n",
        cluster.addr,
        args.user,
        args.group,
        kubeconfig.display(),
        policy.display(),
        approver_kubeconfig.display(),
        args.approver,
        approver_kubeconfig.display(),
    );
    let served = gateway.run_with(shutdown, cut_short).await;
    if let Err(e) = cluster.shutdown().await {
        tracing::warn!(error = %e, "sandbox cluster did not stop cleanly");
    }
    served?;
    Ok(())
}

fn default_dir() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".local/share")
        });
    data.join("kubetape/quickstart")
}

/// Writes the quickstart's policy `default` to `path` unless the file there was edited since
/// the quickstart last wrote it: the banner invites editing, and a restart must not undo the
/// edit. The default it last wrote is kept beside it (`policy.default.toml`), so an unedited
/// file still follows the default (a new `--group`, a newer quickstart). Returns whether an
/// edited file was kept.
fn prepare_policy(path: &Path, default: &str) -> std::io::Result<bool> {
    let written = path.with_extension("default.toml");
    let current = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let last_default = std::fs::read_to_string(&written).ok();
    let edited = match (&current, &last_default) {
        (None, _) => false,
        (Some(text), Some(last)) => text != last,
        // A file the quickstart did not write (or from before it kept its default): the
        // user's, unless it is the default itself.
        (Some(text), None) => text != default,
    };
    std::fs::write(&written, default)?;
    if !edited {
        std::fs::write(path, default)?;
    }
    Ok(edited)
}

/// The quickstart's policy: `group` may work with pods in `default` and may ask for `prod`;
/// group `sre` approves.
fn quickstart_policy(group: &str) -> String {
    format!(
        r#"# kubetape access policy (reloaded about a second after you save; a bad edit is
# rejected and the previous policy stays). Default deny. See gateway/policy.example.toml.

[[roles]]
name = "developer"
description = "work with pods in the default namespace"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods", "pods/log", "pods/exec", "pods/attach"]
verbs = ["get", "list", "watch", "create"]
# kubectl port-forward to the demo pod's HTTP (80) and echo (7000) servers; a connection to any
# other port is refused (that connection only). Each connection is recorded (port, times, bytes,
# outcome); `capture = "full"` would record its bytes too.
[[roles.rules]]
namespaces = ["default"]
resources = ["pods/portforward"]
verbs = ["create"]
ports = [80, 7000]
capture = "metadata"
# kubectl debug: an ephemeral container in a pod (`kubectl debug -it demo --image=busybox`).
[[roles.rules]]
namespaces = ["default"]
resources = ["pods/ephemeralcontainers"]
verbs = ["patch"]
# What debugging may run: the gateway reads every debug container and created pod and refuses
# other images, privileged containers, added capabilities beyond the profiles', host access.
[roles.debug]
images = ["busybox", "busybox:*", "kubetape-sandbox/*"]
profiles = ["legacy", "general", "baseline", "restricted"]
copy = true    # kubectl debug --copy-to
node = false   # kubectl debug node/NAME

[[roles]]
name = "prod-debug"
description = "shell access to production pods, on request"
requestable = true
approvers = ["sre"]
max_ttl = "1h"
[[roles.rules]]
namespaces = ["prod"]
resources = ["pods", "pods/log", "pods/exec", "pods/attach"]
verbs = ["get", "list", "watch", "create"]

[[bindings]]
name = "developers"
groups = [{group:?}]
roles = ["developer"]
max_session = "8h"
"#
    )
}

fn write_kubeconfig(
    path: &Path,
    addr: SocketAddr,
    ca_pem: &str,
    issuer: &DevIssuer,
    user: &str,
    group: &str,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locate this binary for the credential plugin")?;
    let args: Vec<String> = [
        "token",
        "--issuer-dir",
        &issuer.dir().display().to_string(),
        "--user",
        user,
        "--group",
        group,
        "--ttl",
        "10m",
    ]
    .map(String::from)
    .into();
    let credentials = kubeconfig::exec_plugin(&exe, &args);
    kubeconfig::write(
        path,
        &kubeconfig::for_gateway(addr, ca_pem, user, credentials),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway::policy::{Decision, Policy, parse_attributes};

    #[test]
    fn an_edited_policy_survives_a_restart_and_an_unedited_one_follows_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        assert!(!prepare_policy(&path, "default 1\n").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "default 1\n");
        // Unedited: a new default replaces it.
        assert!(!prepare_policy(&path, "default 2\n").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "default 2\n");
        // Edited: kept, whatever the default now says; the default is beside it.
        std::fs::write(&path, "my edit\n").unwrap();
        assert!(prepare_policy(&path, "default 3\n").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "my edit\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("policy.default.toml")).unwrap(),
            "default 3\n"
        );
        assert!(prepare_policy(&path, "default 3\n").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "my edit\n");
        // A file the quickstart never wrote is the user's too.
        let other = dir.path().join("other.toml");
        std::fs::write(&other, "hand written\n").unwrap();
        assert!(prepare_policy(&other, "default\n").unwrap());
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "hand written\n");
    }

    /// The newcomer's policy lets the developer forward the demo pod's two ports, no other.
    #[test]
    fn the_quickstart_policy_forwards_the_demo_pods_ports() {
        let policy = Policy::from_toml(&quickstart_policy("developers"), "quickstart").unwrap();
        let dev = gateway::authn::Identity {
            user: "dev@example.com".into(),
            groups: vec!["developers".into()],
            issuer: "i".into(),
            claims: Default::default(),
            expires_at: std::time::SystemTime::now(),
            session_grace: std::time::Duration::ZERO,
        };
        let attrs = parse_attributes(
            "GET",
            "/api/v1/namespaces/default/pods/demo/portforward",
            None,
        );
        let Decision::Allow(a) = policy.decide(&dev, &attrs, &[]) else {
            panic!("the developer may not forward");
        };
        assert!(a.forward.allows(80) && a.forward.allows(7000));
        assert!(!a.forward.allows(22));
        let prod = parse_attributes("POST", "/api/v1/namespaces/prod/pods/db/portforward", None);
        assert!(matches!(policy.decide(&dev, &prod, &[]), Decision::Deny(_)));
    }
}
