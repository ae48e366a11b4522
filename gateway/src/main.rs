//! `kubetape-gateway`: the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::edges::{LogFormat, Severity, announce};

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
    /// Log lines as text (default) or as one JSON object per line, for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "KUBETAPE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway from a configuration file. SIGTERM or Ctrl-C drains it: no new
    /// connections, every live session told why and its recording sealed, within
    /// [server] drain_deadline_secs; a second signal exits at once.
    ///
    /// Example: kubetape-gateway serve --config /etc/kubetape/gateway.toml
    Serve {
        /// TOML configuration (see gateway/gateway.example.toml).
        #[arg(long, short, env = "KUBETAPE_GATEWAY_CONFIG")]
        config: PathBuf,
    },
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
    /// Delete expired recordings by the [retention] rules now (one pass, under the lease the
    /// gateways share), or list past passes.
    ///
    /// Example: kubetape-gateway retention run --config gateway.toml --dry-run
    Retention(gateway::retention::cli::RetentionArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gateway::edges::init_tracing(cli.log_format);
    // The command extractor's terminal emulator catches its own panics; keep them out of logs.
    transcript::quiet_vt100_panics();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            announce(
                cli.log_format,
                Severity::Error,
                &format!("cannot start the runtime: {e}"),
            );
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { config } => serve(config, cli.log_format).await,
            Command::Revoke(args) => gateway::revocation::cli::run(args).await,
            Command::Retention(args) => gateway::retention::cli::run(args).await,
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
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            announce(cli.log_format, Severity::Error, &format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: PathBuf, log_format: LogFormat) -> anyhow::Result<()> {
    let config = gateway::config::GatewayConfig::load(&config)?;
    let gw = gateway::app::Gateway::build(&config).await?;
    let addr = gw.local_addr()?;
    announce(
        log_format,
        Severity::Info,
        &format!("listening on https://{addr}"),
    );
    if let Some(ops) = gw.ops_addr() {
        announce(
            log_format,
            Severity::Info,
            &format!("health and metrics on http://{ops}"),
        );
    }
    gw.run_until_signalled().await?;
    Ok(())
}
