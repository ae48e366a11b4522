//! `kubetape-quickstart`: the command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use quickstart::QuickstartArgs;
use quickstart::devissuer::TokenArgs;

/// Try kubetape in one command: a sandbox cluster with a demo pod, a development identity
/// issuer and the gateway, all on loopback, plus a kubeconfig that uses them. For trying
/// kubetape and for tests only: the issuer mints any identity.
///
/// Then: export KUBECONFIG=<dir>/kubeconfig; kubectl exec -it demo -- sh; kubetape ls
#[derive(Debug, Parser)]
#[command(name = "kubetape-quickstart", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: QuickstartArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a short-lived development token as a kubectl exec credential (what the
    /// quickstart's kubeconfig runs; not for production identities).
    Token(TokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Token(args)) = cli.command {
        // The credential plugin must print only the credential: no runtime, no logging.
        return match quickstart::devissuer::run_token_command(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kubetape-quickstart token: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    gateway::edges::init_tracing(gateway::edges::LogFormat::Text);
    // The command extractor's terminal emulator catches its own panics; keep them out of logs.
    transcript::quiet_vt100_panics();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubetape-quickstart: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Ctrl-C drains like the production gateway: live sessions are told why and sealed; a
    // second Ctrl-C exits at once.
    match runtime.block_on(async {
        let (first, second) = gateway::edges::first_and_second_signal();
        quickstart::run::run(cli.run, first, second).await
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubetape-quickstart: {e:#}");
            ExitCode::FAILURE
        }
    }
}
