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
    /// Log lines as text (default) or as one JSON object per line, for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "KUBETAPE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
    /// Check a configuration before serving it: config and policy (file and line of any error),
    /// policy warnings (grants of unrecorded code execution, wildcards), TLS and recording keys,
    /// and — unless --offline — the issuers' signing keys, the store (read and write) and the
    /// cluster. Prints what would be served; exits 1 on an error (or a warning with --strict).
    ///
    /// Example: kubetape-gateway check --config /etc/kubetape/gateway.toml --strict
    Check(gateway::check::CheckArgs),
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
    init_tracing(cli.log_format);
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
            Command::Check(args) => {
                let report = gateway::check::check(&args).await;
                print!("{}", report.summary);
                for w in &report.warnings {
                    eprintln!("warning: {w}");
                }
                for e in &report.errors {
                    eprintln!("error: {e}");
                }
                if report.ok(args.strict) {
                    println!("ok: the gateway would start with this configuration");
                    Ok(())
                } else {
                    anyhow::bail!(
                        "{} error(s), {} warning(s){}",
                        report.errors.len(),
                        report.warnings.len(),
                        if args.strict { " (--strict)" } else { "" }
                    )
                }
            }
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

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBETAPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // One object per line with the event's fields and its spans' (session id, user, ...).
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        // Colours only for a person at a terminal; logs collected from files stay plain text.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}
