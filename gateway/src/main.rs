//! `kubetape-gateway`: the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The kubetape gateway: kubectl points at it; it authenticates short-lived identity tokens,
/// authorizes every request, forwards it to the cluster with impersonation, and records every
/// exec/attach session into encrypted, tamper-evident recordings.
#[derive(Debug, Parser)]
#[command(name = "kubetape-gateway", version, about, long_about = None)]
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
    /// Revoke a user's access on every gateway sharing the store, lift it, or list revocations.
    ///
    /// Example: kubetape-gateway revoke --config gateway.toml --user oidc:mallory@example.com --reason offboarded
    Revoke(gateway::revocation::cli::RevokeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gateway::edges::init_tracing();
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
            Command::Revoke(args) => gateway::revocation::cli::run(args).await,
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
    gw.run(gateway::edges::shutdown_signal()).await?;
    Ok(())
}
