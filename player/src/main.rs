//! `kubetape`: the reviewer's command line. Record terminal sessions into tamper-evident,
//! encrypted recordings; list, verify, read, replay, search, export and seal them; query the
//! gateways' audit log; manage the keyring; ask for and decide just-in-time access. This file is
//! the command line and dispatch only; each subcommand lives in `cmd/`.

mod class;
mod cmd;
mod config;
mod custody;
mod errors;
mod format;
mod resolve;
mod stdio;
mod terminal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const ABOUT: &str = "Record terminal sessions; list, verify, replay, search and export the recordings; query the audit log; ask for or approve just-in-time access";

const LONG_ABOUT: &str = "\
Record terminal sessions; list, verify, read, replay, search, export and seal the recordings;
query the gateways' audit log; ask for or approve just-in-time access.

A recording is a series of encrypted, signed and hash-chained chunks in a store (a local
directory or an S3 bucket), closed by a signed seal. A chunk is written at most a second after
its first event, so a crash loses at most about the last second. Reading a recording needs the
keyring it was written with; checking that it is intact needs only the signing public key
(`keys export-pub`).";

const AFTER_HELP: &str = "\
Examples:
  kubetape record                      record an interactive shell
  kubetape record -- make deploy       record one command
  kubetape ls                          list recordings, newest first
  kubetape verify --all                check every recording is intact
  kubetape cat 4f1c2a9b | less -R      print a recording's output (ID as `ls` shows it)
  kubetape cat 4f1c2a9b --connection 2 --direction out
                                       a port-forward connection's bytes (capture = \"full\")
  kubetape play 4f1c2a9b --at '#3'     replay it, from the third command
  kubetape export 4f1c2a9b -o s.cast   export for asciinema
  kubetape search 'rm -rf' -n prod     who typed it, where, when
  kubetape audit --since 1h            what the gateways were asked in the last hour
  kubetape audit --reads --since 7d    who read which recordings, and why
  kubetape hold add --case C-1 --reason … --user alice
                                       keep alice's recordings whatever retention says
  kubetape shred 4f1c2a9b --reason …   destroy a recording's key; its proof remains
  kubetape report --since 30d -o report.html
                                       compliance report: sessions, grants, denials, integrity
  kubetape request prod-debug -n prod --reason 'INC-42' --ttl 30m
                                       ask the gateway for temporary access
  kubetape requests / approve ID       review access requests (approvers)

Environment:
  KUBETAPE_STORE   store URL (same as --store)
  KUBETAPE_KEYS    keyring directory (same as --keys)
  KUBETAPE_LOG     log filter for diagnostics on stderr, e.g. `debug` (default `warn`)";

#[derive(Debug, Parser)]
#[command(name = "kubetape", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    global: config::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Record(cmd::record::Args),
    Ls(cmd::ls::Args),
    Verify(cmd::verify::Args),
    Cat(cmd::cat::Args),
    Play(cmd::play::Args),
    Export(cmd::export::Args),
    Search(cmd::search::Args),
    Seal(cmd::seal::Args),
    Keys(cmd::keys::Args),
    Audit(cmd::audit::Args),
    Hold(cmd::hold::Args),
    Shred(cmd::shred::Args),
    Report(cmd::report::Args),
    Request(cmd::jit::RequestArgs),
    Requests(cmd::jit::RequestsArgs),
    Approve(cmd::jit::ApproveArgs),
    Deny(cmd::jit::DenyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    // The terminal emulator (record's extractor, search, play) catches its own panics; keep
    // them off the screen.
    transcript::quiet_vt100_panics();
    // One thread: relaying a terminal is a chain of hand-offs (pty → stdout → recorder), and
    // keeping them on one thread measured ~7% less CPU and a third fewer context switches than
    // a worker pool, whose threads mostly woke each other. Blocking work (file I/O of the local
    // store) still goes to tokio's blocking pool.
    let mut builder = tokio::runtime::Builder::new_current_thread();
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubetape: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // `record` leaves a thread blocked reading stdin (a read cannot be cancelled); waiting for
    // it would hang until the user pressed a key.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) if stdio::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubetape: {}", errors::chain(&e));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = &cli.global;
    match cli.command {
        Command::Record(args) => cmd::record::run(global, args).await,
        Command::Ls(args) => cmd::ls::run(global, args).await,
        Command::Verify(args) => match args.bundle() {
            Some((bundle, pubkey)) => cmd::bundle_verify::run(bundle, pubkey).await,
            None => cmd::verify::run(global, args).await,
        },
        Command::Cat(args) => cmd::cat::run(global, args).await,
        Command::Play(args) => cmd::play::run(global, args).await,
        Command::Export(args) => cmd::export::run(global, args).await,
        Command::Search(args) => cmd::search::run(global, args).await,
        Command::Seal(args) => cmd::seal::run(global, args).await,
        Command::Keys(args) => cmd::keys::run(global, args).await,
        Command::Audit(args) => cmd::audit::run(global, args).await,
        Command::Hold(args) => cmd::hold::run(global, args).await,
        Command::Shred(args) => cmd::shred::run(global, args).await,
        Command::Report(args) => cmd::report::run(global, args).await,
        Command::Request(args) => cmd::jit::request(args).await,
        Command::Requests(args) => cmd::jit::requests(args).await,
        Command::Approve(args) => cmd::jit::approve(args).await,
        Command::Deny(args) => cmd::jit::deny(args).await,
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBETAPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
