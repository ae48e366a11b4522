//! The process edges shared by the binaries built on this library (`kubetape-gateway` and
//! `kubetape-quickstart`): the signals that start and cut short a shutdown, and the log
//! subscriber. Library code only emits logs and takes shutdown futures
//! (`app::Gateway::run_with`); these are for `main`.

use tokio::sync::watch;

/// SIGINT and SIGTERM, counted: the first starts the drain, a second cuts it short.
pub fn shutdown_signals() -> watch::Receiver<u32> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = watch::channel(0u32);
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot listen for shutdown signals");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tx.send_modify(|n| *n += 1);
        }
    });
    rx
}

/// The first and the second shutdown signal, as two futures (for `app::Gateway::run_with`).
pub fn first_and_second_signal() -> (
    impl std::future::Future<Output = ()> + Send + 'static,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let signals = shutdown_signals();
    let mut first = signals.clone();
    let mut again = signals;
    (
        async move {
            let _ = first.wait_for(|n| *n >= 1).await;
        },
        async move {
            let _ = again.wait_for(|n| *n >= 2).await;
        },
    )
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one line per event, colours at a terminal.
    #[default]
    Text,
    /// For log collectors: one JSON object per line, with the event's fields and those of its
    /// span (session id, kind, user, namespace, pod, grant).
    Json,
}

/// Logs to stderr, filtered by `KUBETAPE_LOG` (default `info`); colours only for a person at a
/// terminal, so logs collected from files stay plain text.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBETAPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}
