//! `kubetape-sandbox`: runs the stand-in Kubernetes API server until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::io::AsyncWriteExt as _;

#[derive(Parser)]
#[command(
    name = "kubetape-sandbox",
    version,
    about = "A stand-in Kubernetes API server whose pods are local processes",
    long_about = "A stand-in Kubernetes API server whose pods are local processes. It serves what \
                  kubectl needs (discovery, pods, logs, exec, attach and port-forward over WebSocket and \
                  SPDY/3.1) \
                  over HTTPS with a per-run CA, and requires a bearer token. Used by the kubetape \
                  quickstart and end-to-end tests; not a real cluster.",
    after_help = "Example:\n  kubetape-sandbox serve --config sandbox/sandbox.example.toml --state-dir /tmp/sb\n  \
                  kubectl --kubeconfig /tmp/sb/kubeconfig exec -it demo -- sh"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API until SIGTERM or SIGINT; pod processes are killed on exit.
    ///
    /// Once listening, prints one line to stdout:
    /// `kubetape-sandbox: listening on https://ADDR (kubeconfig STATE_DIR/kubeconfig)`.
    Serve {
        /// TOML file describing the pods (see sandbox/sandbox.example.toml). Without it: one pod
        /// `demo` with a container `shell` idling in `sh`.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
        listen: SocketAddr,
        /// Where to write ca.crt, token, kubeconfig and requests.jsonl (created if missing).
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
        /// What exec/attach over WebSocket gets, like different clusters: `translate` (an API
        /// server ≥ 1.30), `v4-only` (no translator: v4.channel.k8s.io, v5 alone refused), or
        /// `refuse` (every WebSocket upgrade 403; kubectl falls back to SPDY). Overrides the
        /// config's `[modes] exec_websocket`.
        #[arg(long, value_enum, value_name = "MODE")]
        exec_websocket: Option<sandbox::ExecWebSocket>,
        /// Send the exit Status, then drop the connection (no close frame, no SPDY teardown).
        #[arg(long)]
        drop_after_status: bool,
        /// Exec over WebSocket: never read the client's side of the connection, then send the
        /// exit Status and close frame and hold the connection open unread for a minute (a
        /// wedged node or proxy).
        #[arg(long)]
        stall_reading: bool,
    },
    /// Run a pod port's built-in server on the listening socket passed as stdin (what the
    /// sandbox starts for `serve = "http"` / `serve = "echo"` ports; not for direct use).
    ServePort {
        #[command(flatten)]
        kind: ServerKind,
    },
}

/// Which built-in server `serve-port` runs.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct ServerKind {
    /// HTTP/1.1: GET / answers a greeting, GET /bytes/N N known bytes, a request body is echoed.
    #[arg(long)]
    http: bool,
    /// TCP echo (the write side is shut when the client shuts its own).
    #[arg(long)]
    echo: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve {
            config,
            listen,
            state_dir,
            exec_websocket,
            drop_after_status,
            stall_reading,
        } => {
            let mut config = match config {
                Some(path) => sandbox::SandboxConfig::from_toml_file(&path)
                    .with_context(|| format!("loading {}", path.display()))?,
                None => sandbox::SandboxConfig::demo(),
            };
            if let Some(mode) = exec_websocket {
                config.modes.exec_websocket = mode;
            }
            config.modes.drop_after_status |= drop_after_status;
            config.modes.stall_reading |= stall_reading;
            serve(config, listen, state_dir).await
        }
        Command::ServePort { kind } => {
            let kind = if kind.http {
                sandbox::BuiltinServer::Http
            } else {
                sandbox::BuiltinServer::Echo
            };
            sandbox::portserver::serve_stdin(kind)
                .await
                .context("serving the port (stdin must be a listening TCP socket)")
        }
    }
}

async fn serve(
    config: sandbox::SandboxConfig,
    listen: SocketAddr,
    state_dir: PathBuf,
) -> anyhow::Result<()> {
    let sb = sandbox::start(config, listen, &state_dir)
        .await
        .context("starting the sandbox")?;
    let line = format!(
        "kubetape-sandbox: listening on {} (kubeconfig {})\n",
        sb.url(),
        sb.kubeconfig_path.display()
    );
    let mut stdout = tokio::io::stdout();
    stdout.write_all(line.as_bytes()).await?;
    stdout.flush().await?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
    }
    sb.shutdown().await.context("shutting down")?;
    Ok(())
}
