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

/// How serious an [`announce`]d line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Error,
}

/// A line for the operator that must reach stderr whatever `KUBETAPE_LOG` filters (the listening
/// addresses, the reason the process exits). In JSON mode it is a JSON object like the log
/// lines, so a collector parsing stderr line by line never meets plain text.
pub fn announce(format: LogFormat, severity: Severity, message: &str) {
    eprintln!("{}", announcement(format, severity, message));
}

fn announcement(format: LogFormat, severity: Severity, message: &str) -> String {
    match format {
        LogFormat::Text => format!("kubetape-gateway: {message}"),
        LogFormat::Json => serde_json::json!({
            "timestamp": storage_schema::time::format_unix_micros(
                storage_schema::time::unix_micros_now()
            ),
            "level": match severity {
                Severity::Info => "INFO",
                Severity::Error => "ERROR",
            },
            "fields": { "message": message },
            "target": "kubetape_gateway",
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_are_json_in_json_mode() {
        let line = announcement(LogFormat::Json, Severity::Error, "bad \"config\"\nline 2");
        assert!(!line.contains('\n'), "one line: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["fields"]["message"], "bad \"config\"\nline 2");
        assert_eq!(
            announcement(LogFormat::Text, Severity::Info, "listening on x"),
            "kubetape-gateway: listening on x"
        );
    }
}
