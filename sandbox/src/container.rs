//! A container's main process: started with the sandbox, it lives as long as the sandbox (or
//! until it exits on its own; it is not restarted). Its output is kept in a bounded log (for
//! `kubectl logs`) and broadcast to every attacher; attachers' stdin and resizes go to it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use proto::exec::StreamOptions;
use proto::status::Status;
use tokio::sync::{broadcast, mpsc};

use crate::config::ContainerSpec;
use crate::process::{self, Input, Output, ProcessSpec, Session};

/// Log bytes kept per container; older output is dropped (kubelet rotates logs too).
const LOG_LIMIT: usize = 8 << 20;
/// Chunks an attacher may fall behind before it misses output.
const BROADCAST_DEPTH: usize = 256;

/// How the main process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Terminated {
    pub exit_code: u8,
    pub finished_at: SystemTime,
    pub status: Status,
}

/// A running (or finished) main process.
#[derive(Debug, Clone)]
pub(crate) struct MainProcess {
    hub: Arc<Hub>,
}

#[derive(Debug)]
struct Hub {
    state: Mutex<HubState>,
    /// Output and, last, `Output::Exit`.
    broadcast: broadcast::Sender<Output>,
    input: mpsc::Sender<Input>,
    stdin_once: bool,
    killer: Option<process::Killer>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

#[derive(Debug, Default)]
struct HubState {
    log: VecDeque<Bytes>,
    log_bytes: usize,
    terminated: Option<Terminated>,
    /// Set when an attacher closed stdin of a `stdin_once` container.
    stdin_closed: bool,
}

/// A log snapshot plus, for `follow`, the output after it.
#[derive(Debug)]
pub(crate) struct LogStream {
    pub snapshot: Vec<u8>,
    /// `None` once the process has ended (nothing more will come).
    pub follow: Option<broadcast::Receiver<Output>>,
}

impl MainProcess {
    /// Starts `spec`'s main process. `on_exit` runs once when it ends (the pod's status changes).
    pub fn start(
        spec: &ContainerSpec,
        env: Vec<(String, String)>,
        on_exit: impl FnOnce() + Send + 'static,
    ) -> Self {
        let pspec = ProcessSpec {
            argv: spec.command.clone(),
            workdir: spec.workdir().to_path_buf(),
            env,
            tty: spec.tty,
            stdin: spec.stdin,
            stdout: true,
            stderr: true,
        };
        let session = match process::spawn(&pspec) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(container = %spec.name, error = %e, "main process failed to start");
                Session::failed(e.to_status())
            }
        };
        let (broadcast, _) = broadcast::channel(BROADCAST_DEPTH);
        let hub = Arc::new(Hub {
            state: Mutex::new(HubState::default()),
            broadcast,
            input: session.input,
            stdin_once: spec.stdin_once,
            killer: session.killer,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(Hub::run(hub.clone(), session.output, on_exit));
        *hub.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        Self { hub }
    }

    /// Kills the process group now (sandbox shutdown) and stops serving its output.
    pub fn stop(&self) {
        if let Some(k) = self.hub.killer {
            k.kill();
        }
        if let Some(t) = self
            .hub
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.abort();
        }
    }

    /// How it ended, if it did.
    pub fn terminated(&self) -> Option<Terminated> {
        self.hub.lock().terminated.clone()
    }

    /// The output so far (the last `tail_lines` lines / `limit_bytes` bytes if given) and,
    /// with `follow`, a subscription to what comes next. Taken under one lock so no output falls
    /// between snapshot and subscription.
    pub fn logs(&self, follow: bool) -> LogStream {
        let state = self.hub.lock();
        let mut snapshot = Vec::with_capacity(state.log_bytes);
        for chunk in &state.log {
            snapshot.extend_from_slice(chunk);
        }
        let follow = (follow && state.terminated.is_none()).then(|| self.hub.broadcast.subscribe());
        LogStream { snapshot, follow }
    }

    /// Connects a client to the main process: its output from now on, its stdin, its terminal.
    pub fn attach(&self, opts: &StreamOptions) -> Session {
        let (out_tx, out_rx) = mpsc::channel(4);
        let (in_tx, in_rx) = mpsc::channel(16);
        let rx = {
            let state = self.hub.lock();
            if let Some(t) = &state.terminated {
                return Session::failed(t.status.clone());
            }
            self.hub.broadcast.subscribe()
        };
        let (stdout, stderr) = (opts.stdout, opts.stderr);
        tokio::spawn(forward_output(rx, out_tx, stdout, stderr));
        if opts.stdin || opts.tty {
            tokio::spawn(Hub::forward_input(self.hub.clone(), in_rx, opts.stdin));
        }
        Session {
            input: in_tx,
            output: out_rx,
            killer: None,
        }
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drains the process's output into the log and the broadcast, forever: nobody attached
    /// must not block the process.
    async fn run(hub: Arc<Hub>, mut output: mpsc::Receiver<Output>, on_exit: impl FnOnce()) {
        while let Some(msg) = output.recv().await {
            let mut state = hub.lock();
            match &msg {
                Output::Stdout(b) | Output::Stderr(b) => {
                    state.log_bytes += b.len();
                    state.log.push_back(b.clone());
                    while state.log_bytes > LOG_LIMIT {
                        let old = state.log.pop_front().expect("non-empty while over limit");
                        state.log_bytes -= old.len();
                    }
                }
                Output::Exit(status) => {
                    let exit_code = match status.outcome() {
                        proto::status::ExitOutcome::Code(c) => c,
                        proto::status::ExitOutcome::Failure => 128,
                    };
                    tracing::info!(exit_code, "main process ended");
                    state.terminated = Some(Terminated {
                        exit_code,
                        finished_at: SystemTime::now(),
                        status: status.clone(),
                    });
                }
            }
            // Sent under the lock so `logs`/`attach` see each chunk exactly once.
            let _ = hub.broadcast.send(msg);
            drop(state);
        }
        on_exit();
    }

    async fn forward_input(hub: Arc<Hub>, mut input: mpsc::Receiver<Input>, stdin: bool) {
        while let Some(msg) = input.recv().await {
            let msg = match msg {
                Input::Stdin(_) if !stdin => continue,
                Input::CloseStdin if !hub.stdin_once => continue,
                Input::CloseStdin => {
                    hub.lock().stdin_closed = true;
                    Input::CloseStdin
                }
                Input::Stdin(_) if hub.lock().stdin_closed => continue,
                other => other,
            };
            if hub.input.send(msg).await.is_err() {
                return;
            }
        }
    }
}

/// Copies broadcast output to one attacher, filtered by the streams it asked for.
async fn forward_output(
    mut rx: broadcast::Receiver<Output>,
    out: mpsc::Sender<Output>,
    stdout: bool,
    stderr: bool,
) {
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            () = out.closed() => return,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "attacher too slow; output dropped");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let end = matches!(msg, Output::Exit(_));
        let wanted = match &msg {
            Output::Stdout(_) => stdout,
            Output::Stderr(_) => stderr,
            Output::Exit(_) => true,
        };
        if wanted && out.send(msg).await.is_err() {
            return;
        }
        if end {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cmd: &[&str]) -> ContainerSpec {
        ContainerSpec::new("c", cmd.iter().copied())
    }

    fn env() -> Vec<(String, String)> {
        vec![("PATH".into(), "/usr/bin:/bin".into())]
    }

    fn opts() -> StreamOptions {
        StreamOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            ..StreamOptions::default()
        }
    }

    #[tokio::test]
    async fn attachers_share_the_main_process() {
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
        let main = MainProcess::start(
            &spec(&["sh", "-c", "read l; echo got $l; exit 4"]),
            env(),
            move || {
                let _ = exit_tx.send(());
            },
        );
        let mut a = main.attach(&opts());
        let mut b = main.attach(&opts());
        a.input
            .send(Input::Stdin(Bytes::from_static(b"hi\n")))
            .await
            .unwrap();
        for s in [&mut a, &mut b] {
            assert_eq!(
                s.output.recv().await,
                Some(Output::Stdout(Bytes::from_static(b"got hi\n")))
            );
            assert_eq!(
                s.output.recv().await,
                Some(Output::Exit(Status::exit_code(4)))
            );
        }
        exit_rx.await.unwrap();
        assert_eq!(main.terminated().unwrap().exit_code, 4);
        assert_eq!(main.logs(true).snapshot, b"got hi\n");
        assert!(main.logs(true).follow.is_none());
        // Attaching after the end reports how it ended.
        let mut late = main.attach(&opts());
        assert_eq!(
            late.output.recv().await,
            Some(Output::Exit(Status::exit_code(4)))
        );
    }
}
