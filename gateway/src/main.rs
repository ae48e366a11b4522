//! `kubetape-gateway`: the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const LONG_ABOUT: &str = "\
The kubetape gateway: kubectl points at it; it authenticates short-lived identity tokens,
authorizes every request against the access policy (default deny), forwards it to the cluster
with impersonation, and records every exec/attach session and port-forward into encrypted,
tamper-evident recordings (read them with `kubetape`).

Port-forward is authorized as verb `create` on `pods/portforward`, like exec on `pods/exec`.
A rule may restrict the pod ports a forward reaches (`ports = [5432, \"8000-8080\"]`): a
connection to another port is refused, that connection only (kubectl reports `error creating
error stream for port L -> P: stream reset`; kube-rs gets the reason on the port's error
channel), the rest of the forward keeps working. Every forwarded connection is recorded — its
port, when it opened and closed, bytes each way, how it ended (closed, reset, the cluster's
error, refused) — and audited, one record per connection; with `capture = \"full\"` on the
rule its bytes each way are recorded too. Revocation, grant expiry and `max_session` end a live
forward as they end a shell.";

/// The kubetape gateway: kubectl points at it; it authenticates short-lived identity tokens,
/// authorizes every request, forwards it to the cluster with impersonation, and records every
/// exec/attach session and port-forward into encrypted, tamper-evident recordings.
#[derive(Debug, Parser)]
#[command(name = "kubetape-gateway", version, about, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway from a configuration file.
    ///
    /// Example: kubetape-gateway serve --config /etc/kubetape/gateway.toml
    Serve {
        /// TOML configuration (see gateway/gateway.example.toml).
        #[arg(long, short, env = "KUBETAPE_GATEWAY_CONFIG")]
        config: PathBuf,
    },
    /// Try kubetape in one command: a sandbox cluster with a demo pod, a development identity
    /// issuer, and the gateway, all on loopback, plus a kubeconfig that uses them.
    ///
    /// Then: export KUBECONFIG=<dir>/kubeconfig; kubectl exec -it demo -- sh; kubetape ls
    #[cfg(feature = "quickstart")]
    Quickstart(gateway::quickstart::QuickstartArgs),
    /// Print a short-lived development token as a kubectl exec credential (what the
    /// quickstart's kubeconfig runs; not for production identities).
    Token(gateway::devissuer::TokenArgs),
    /// Revoke a user's access on every gateway sharing the store, lift it, or list revocations.
    ///
    /// Example: kubetape-gateway revoke --config gateway.toml --user oidc:mallory@example.com --reason offboarded
    Revoke(gateway::revocation::cli::RevokeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Token(args) = cli.command {
        // The credential plugin must print only the credential: no runtime, no logging.
        return match gateway::devissuer::run_token_command(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kubetape-gateway token: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    init_tracing();
    // The command extractor's terminal emulator catches its own panics; keep them out of logs.
    transcript::quiet_vt100_panics();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubetape-gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { config } => serve(config).await,
            #[cfg(feature = "quickstart")]
            Command::Quickstart(args) => gateway::quickstart::run(args, shutdown_signal()).await,
            Command::Revoke(args) => gateway::revocation::cli::run(args).await,
            Command::Token(_) => unreachable!("handled above"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubetape-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: PathBuf) -> anyhow::Result<()> {
    let config = gateway::config::GatewayConfig::load(&config)?;
    let gw = gateway::app::Gateway::build(&config).await?;
    eprintln!(
        "kubetape-gateway: listening on https://{}",
        gw.local_addr()?
    );
    gw.run_until_signalled().await?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBETAPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal; logs collected from files stay plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
