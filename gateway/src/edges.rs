//! The process edges shared by the binaries built on this library (`kubetape-gateway` and
//! `kubetape-quickstart`): the signal that starts a shutdown and the log subscriber. Library
//! code only emits logs and takes a shutdown future (`app::Gateway::run`); these are for `main`.

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
    }
}

/// Logs to stderr, filtered by `KUBETAPE_LOG` (default `info`); colours only for a person at a
/// terminal, so logs collected from files stay plain text.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBETAPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
